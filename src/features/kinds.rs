//! The kind-specific part of the fold: a supplier's deliveries and our
//! orders with it, a partner's deals, an account's invoices. Kept beside
//! [`super::Aggregates`] only for relationships that have such events, so a
//! customer's aggregates carry one empty option and nothing more.
//!
//! Detail is kept for [`KIND_KEEP_DAYS`] behind the newest event: enough for
//! a year's window and the year before it, which trends compare against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{DealOutcome, EventBody};
use crate::time::{day_of, Timestamp, SECONDS_PER_DAY};

/// How far behind its newest event kind-specific detail is kept.
pub const KIND_KEEP_DAYS: i32 = 730;

/// One delivery, as the fold keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub day: i32,
    /// Arrival minus promise, in days; negative is early.
    pub days_late: f32,
    pub ordered: f32,
    pub received: f32,
    pub rejected: f32,
    pub unit_price: f32,
    /// Index into [`KindHistory::categories`].
    pub category: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub day: i32,
    pub amount: f64,
    pub category: u16,
}

/// A deal in the latest state recorded for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DealRecord {
    pub at: Timestamp,
    pub value: f64,
    pub outcome: DealOutcome,
}

/// An invoice in the latest state recorded for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InvoiceRecord {
    pub issued: Timestamp,
    pub terms_days: u32,
    pub amount: f64,
    pub paid_at: Option<Timestamp>,
}

impl InvoiceRecord {
    pub fn due(&self) -> Timestamp {
        self.issued + i64::from(self.terms_days) * SECONDS_PER_DAY
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindHistory {
    /// Category names, each once; records refer to them by index.
    pub categories: Vec<String>,
    /// In arrival order.
    pub deliveries: Vec<DeliveryRecord>,
    /// In time order.
    pub orders: Vec<OrderRecord>,
    pub deals: BTreeMap<String, DealRecord>,
    pub invoices: BTreeMap<String, InvoiceRecord>,
    newest_day: i32,
}

impl KindHistory {
    /// Folds a kind-specific event in; false (and nothing changed) for the
    /// events every kind has.
    pub fn apply(&mut self, at: Timestamp, body: &EventBody) -> bool {
        let day = day_of(at);
        match body {
            EventBody::Delivery {
                promised_at,
                category,
                ordered,
                received,
                rejected,
                unit_price,
            } => {
                let record = DeliveryRecord {
                    day,
                    days_late: ((at - promised_at) as f64 / SECONDS_PER_DAY as f64) as f32,
                    ordered: *ordered as f32,
                    received: *received as f32,
                    rejected: *rejected as f32,
                    unit_price: *unit_price as f32,
                    category: self.category_index(category),
                };
                let i = self.deliveries.partition_point(|d| d.day <= day);
                self.deliveries.insert(i, record);
            }
            EventBody::PurchaseOrder { amount, category } => {
                let record = OrderRecord {
                    day,
                    amount: *amount,
                    category: self.category_index(category),
                };
                let i = self.orders.partition_point(|o| o.day <= day);
                self.orders.insert(i, record);
            }
            EventBody::PartnerDeal {
                deal_id,
                value,
                outcome,
            } => {
                let record = DealRecord {
                    at,
                    value: *value,
                    outcome: *outcome,
                };
                let entry = self.deals.entry(deal_id.clone()).or_insert(record);
                if at >= entry.at {
                    *entry = record;
                }
            }
            EventBody::Invoice {
                invoice_id,
                amount,
                terms_days,
                paid_at,
            } => {
                let record = InvoiceRecord {
                    issued: at,
                    terms_days: *terms_days,
                    amount: *amount,
                    paid_at: *paid_at,
                };
                let entry = self.invoices.entry(invoice_id.clone()).or_insert(record);
                // A payment once recorded stays recorded, whatever order the
                // issue and payment records arrive in.
                let paid_at = record.paid_at.or(entry.paid_at);
                *entry = InvoiceRecord { paid_at, ..record };
            }
            _ => return false,
        }
        self.newest_day = self.newest_day.max(day);
        self.prune();
        true
    }

    fn category_index(&mut self, name: &str) -> u16 {
        match self.categories.iter().position(|c| c == name) {
            Some(i) => i as u16,
            None => {
                // More categories than fit are pooled in the last slot.
                if self.categories.len() < usize::from(u16::MAX) {
                    self.categories.push(name.to_string());
                }
                (self.categories.len() - 1) as u16
            }
        }
    }

    fn prune(&mut self) {
        let cut = self.newest_day - KIND_KEEP_DAYS;
        let d = self.deliveries.partition_point(|r| r.day <= cut);
        self.deliveries.drain(..d);
        let o = self.orders.partition_point(|r| r.day <= cut);
        self.orders.drain(..o);
        let cut_at = i64::from(cut) * SECONDS_PER_DAY;
        self.deals.retain(|_, d| d.at > cut_at);
        self.invoices.retain(|_, i| i.issued > cut_at);
    }

    pub fn category(&self, index: u16) -> &str {
        &self.categories[usize::from(index)]
    }

    /// About how much memory this takes.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<KindHistory>()
            + self
                .categories
                .iter()
                .map(|c| c.capacity() + 24)
                .sum::<usize>()
            + self.deliveries.capacity() * std::mem::size_of::<DeliveryRecord>()
            + self.orders.capacity() * std::mem::size_of::<OrderRecord>()
            + self.deals.keys().map(|k| k.capacity() + 64).sum::<usize>()
            + self
                .invoices
                .keys()
                .map(|k| k.capacity() + 64)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = SECONDS_PER_DAY;

    fn delivery(day: i64, late: i64, category: &str) -> EventBody {
        let _ = day;
        EventBody::Delivery {
            promised_at: (day - late) * DAY,
            category: category.into(),
            ordered: 10.0,
            received: 10.0,
            rejected: 0.0,
            unit_price: 3.0,
        }
    }

    #[test]
    fn deliveries_keep_time_order_and_lateness_and_age_out() {
        let mut h = KindHistory::default();
        assert!(h.apply(20 * DAY, &delivery(20, 4, "resin")));
        assert!(h.apply(10 * DAY, &delivery(10, -1, "steel")));
        assert_eq!(h.deliveries.len(), 2);
        assert_eq!(h.deliveries[0].day, 10);
        assert_eq!(h.deliveries[0].days_late, -1.0);
        assert_eq!(h.deliveries[1].days_late, 4.0);
        assert_eq!(h.category(h.deliveries[1].category), "resin");
        h.apply(1000 * DAY, &delivery(1000, 0, "resin"));
        assert_eq!(h.deliveries.len(), 1, "older than {KIND_KEEP_DAYS} days");
        assert_eq!(h.categories.len(), 2);
        let purchase = EventBody::Payment {
            amount: 1.0,
            days_late: 0.0,
        };
        assert!(!h.apply(1000 * DAY, &purchase));
    }

    #[test]
    fn the_latest_record_of_a_deal_or_invoice_counts_and_a_payment_stays() {
        let mut h = KindHistory::default();
        let deal = |value, outcome| EventBody::PartnerDeal {
            deal_id: "d1".into(),
            value,
            outcome,
        };
        h.apply(5 * DAY, &deal(100.0, DealOutcome::Open));
        h.apply(9 * DAY, &deal(120.0, DealOutcome::Won));
        h.apply(7 * DAY, &deal(90.0, DealOutcome::Open));
        assert_eq!(h.deals["d1"].outcome, DealOutcome::Won);
        assert_eq!(h.deals["d1"].value, 120.0);
        let invoice = |paid_at| EventBody::Invoice {
            invoice_id: "i1".into(),
            amount: 50.0,
            terms_days: 30,
            paid_at,
        };
        h.apply(DAY, &invoice(Some(40 * DAY)));
        h.apply(DAY, &invoice(None));
        assert_eq!(h.invoices["i1"].paid_at, Some(40 * DAY));
        assert_eq!(h.invoices["i1"].due(), 31 * DAY);
    }
}
