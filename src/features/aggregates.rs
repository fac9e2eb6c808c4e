//! The fold over a relationship's events: running totals and a window of
//! recent per-day detail, updated one event at a time. The store keeps it
//! beside the events; training and as-of scoring rebuild it from the events
//! up to T with the same [`Aggregates::apply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Event, EventBody, EventFold, InteractionKind};

use super::kinds::KindHistory;
use crate::time::{day_of, Timestamp};

/// Length of the "recent" windows (spend, tickets, visits...).
pub const WINDOW_DAYS: i32 = 90;
/// How far behind its newest event an aggregate keeps per-event detail.
const RECENT_KEEP_DAYS: i32 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum RecentKind {
    Purchase,
    Ticket,
    Complaint,
    Visit,
    Survey,
    Payment,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Recent {
    day: i32,
    kind: RecentKind,
    value: f32,
}

/// Running totals over a relationship's events, plus the last ~400 days of
/// per-event detail for windowed features.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    pub event_count: u64,
    pub first_purchase: Option<Timestamp>,
    pub last_purchase: Option<Timestamp>,
    /// Distinct purchase days: same-day purchases are one occasion.
    pub occasions: u32,
    pub spend_total: f64,
    pub items_total: u64,
    /// Days between the latest purchase occasion and the one before it.
    pub last_gap_days: f64,
    /// Product id → number of purchases that included it.
    pub products: BTreeMap<String, u32>,
    pub tickets: u32,
    pub complaints: u32,
    pub visits: u32,
    pub surveys: u32,
    pub survey_sum: f64,
    pub payments: u32,
    pub days_late_sum: f64,
    pub last_event: Option<Timestamp>,
    pub(super) recent: Vec<Recent>,
    /// Deliveries, orders, deals and invoices; `None` for a relationship
    /// without any, which keeps a customer's aggregates as small as before.
    pub kinds: Option<Box<KindHistory>>,
}

impl Aggregates {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut agg = Aggregates::default();
        for e in events {
            agg.apply(e);
        }
        agg
    }

    /// Folds one event in. Order-insensitive for totals; events older than the
    /// detail window only count in the totals.
    pub fn apply(&mut self, event: &Event) {
        let day = day_of(event.at);
        self.event_count += 1;
        self.last_event = Some(self.last_event.map_or(event.at, |t| t.max(event.at)));
        let (kind, value) = match &event.body {
            EventBody::Purchase {
                amount,
                product_ids,
                quantity,
            } => {
                let same_day = self.last_purchase.is_some_and(|t| day_of(t) == day)
                    || self
                        .recent
                        .iter()
                        .any(|r| r.day == day && r.kind == RecentKind::Purchase);
                if !same_day {
                    self.occasions += 1;
                    if let Some(last) = self.last_purchase.filter(|t| event.at > *t) {
                        self.last_gap_days = (day - day_of(last)) as f64;
                    }
                }
                self.first_purchase =
                    Some(self.first_purchase.map_or(event.at, |t| t.min(event.at)));
                self.last_purchase = Some(self.last_purchase.map_or(event.at, |t| t.max(event.at)));
                self.spend_total += amount;
                self.items_total += u64::from((*quantity).max(1));
                for p in product_ids {
                    *self.products.entry(p.clone()).or_default() += 1;
                }
                (RecentKind::Purchase, *amount)
            }
            EventBody::Interaction { kind, survey_score } => match kind {
                InteractionKind::SupportTicket => {
                    self.tickets += 1;
                    (RecentKind::Ticket, 1.0)
                }
                InteractionKind::Complaint => {
                    self.complaints += 1;
                    (RecentKind::Complaint, 1.0)
                }
                InteractionKind::Visit => {
                    self.visits += 1;
                    (RecentKind::Visit, 1.0)
                }
                InteractionKind::Survey => {
                    let score = survey_score.unwrap_or(0.0);
                    self.surveys += 1;
                    self.survey_sum += score;
                    (RecentKind::Survey, score)
                }
            },
            EventBody::Payment { days_late, .. } => {
                self.payments += 1;
                self.days_late_sum += days_late;
                (RecentKind::Payment, *days_late)
            }
            EventBody::Delivery { .. }
            | EventBody::PurchaseOrder { .. }
            | EventBody::PartnerDeal { .. }
            | EventBody::Invoice { .. } => {
                self.kinds
                    .get_or_insert_with(Default::default)
                    .apply(event.at, &event.body);
                return;
            }
        };
        let newest = self.last_event.map_or(day, day_of);
        if day > newest - RECENT_KEEP_DAYS {
            let at = self.recent.partition_point(|r| r.day <= day);
            // Windows only need a day's total of a kind, so a busy relationship's
            // detail grows with its active days, not its events; that keeps the
            // value the writer rewrites per event small. Payments stay one entry
            // each: their recent feature is an average.
            let same = (kind != RecentKind::Payment)
                .then(|| {
                    self.recent[..at]
                        .iter()
                        .rev()
                        .take_while(|r| r.day == day)
                        .position(|r| r.kind == kind)
                        .map(|back| at - 1 - back)
                })
                .flatten();
            match same {
                Some(i) => self.recent[i].value += value as f32,
                None => self.recent.insert(
                    at,
                    Recent {
                        day,
                        kind,
                        value: value as f32,
                    },
                ),
            }
            let cut = self
                .recent
                .partition_point(|r| r.day <= newest - RECENT_KEEP_DAYS);
            self.recent.drain(..cut);
        }
    }

    /// About how much memory this takes, for caches that keep many.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Aggregates>()
            + self.recent.capacity() * std::mem::size_of::<Recent>()
            + self
                .products
                .keys()
                .map(|p| p.capacity() + 3 * std::mem::size_of::<usize>() + 8)
                .sum::<usize>()
            + self.kinds.as_ref().map_or(0, |k| k.approx_bytes())
    }

    pub fn owns(&self, product_id: &str) -> bool {
        self.products.contains_key(product_id)
    }

    /// The windowed sums as of day `to`, in one pass over the detail.
    pub(super) fn windows(&self, to: i32) -> Windows {
        let mut w = Windows::default();
        let mut last_purchase_day = None;
        for r in self.recent.iter().rev() {
            if r.day > to {
                continue;
            }
            let age = to - r.day;
            if age >= 2 * WINDOW_DAYS {
                break;
            }
            let value = f64::from(r.value);
            if r.kind == RecentKind::Purchase {
                w.spend_180 += value;
            }
            if age >= WINDOW_DAYS {
                continue;
            }
            match r.kind {
                RecentKind::Purchase => {
                    w.spend_90 += value;
                    if last_purchase_day != Some(r.day) {
                        w.purchase_days_90 += 1;
                        last_purchase_day = Some(r.day);
                    }
                }
                // Merged entries hold the day's count in `value` (see `apply`).
                RecentKind::Ticket => w.tickets_90 += value,
                RecentKind::Complaint => w.complaints_90 += value,
                RecentKind::Visit => w.visits_90 += value,
                RecentKind::Survey => {}
                RecentKind::Payment => {
                    w.days_late_90 += value;
                    w.payments_90 += 1;
                }
            }
        }
        w
    }
}

/// Sums over the detail window, as of one day.
#[derive(Debug, Default)]
pub(super) struct Windows {
    pub(super) spend_90: f64,
    pub(super) spend_180: f64,
    pub(super) purchase_days_90: u32,
    pub(super) tickets_90: f64,
    pub(super) complaints_90: f64,
    pub(super) visits_90: f64,
    pub(super) days_late_90: f64,
    pub(super) payments_90: u32,
}

impl EventFold for Aggregates {
    /// 2 since `kinds`.
    const ENCODING: u64 = 2;

    fn apply(&mut self, event: &Event) {
        Aggregates::apply(self, event);
    }

    fn approx_bytes(&self) -> usize {
        Aggregates::approx_bytes(self)
    }

    fn last_event(&self) -> Option<Timestamp> {
        self.last_event
    }
}
