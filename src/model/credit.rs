//! An account's payment behaviour against its terms and its credit risk.
//!
//! Facts come from the account's invoices as of T (an invoice paid after T
//! is open at T). Credit risk is the probability that an invoice falling due
//! within the horizon is paid more than `serious_late_days` after its due
//! date (or is that far overdue and still open), learned from the book's
//! invoice histories cut at several times and calibrated; it is unknown,
//! not low, with fewer than `min_invoices` invoices in the year before T.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::features::kinds::{InvoiceRecord, KindHistory};
use crate::model::risk::{RiskLogit, RiskRow};
use crate::time::{Timestamp, SECONDS_PER_DAY};

/// The history credit facts look at: the year before T.
pub const HISTORY_DAYS: i64 = 365;
/// "Recent" within that year.
pub const RECENT_DAYS: i64 = 90;

/// The spec's `[account]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CreditParams {
    /// Paid more than this many days after the due date is a serious late payment.
    pub serious_late_days: f64,
    /// Credit risk is about invoices falling due within this many days.
    pub horizon_days: u32,
    /// Fewer invoices issued in the year before make the risk unknown.
    pub min_invoices: u32,
    /// Ridge penalty of the logistic regression.
    pub l2: f64,
}

impl Default for CreditParams {
    fn default() -> Self {
        CreditParams {
            serious_late_days: 15.0,
            horizon_days: 90,
            min_invoices: 3,
            l2: 1.0,
        }
    }
}

impl CreditParams {
    /// # Errors
    /// A message naming the bad field.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(self.serious_late_days.is_finite() && self.serious_late_days >= 0.0) {
            return Err("account.serious_late_days must be finite and >= 0".into());
        }
        if !(1..=730).contains(&self.horizon_days) {
            return Err("account.horizon_days must be 1 to 730".into());
        }
        if self.min_invoices == 0 {
            return Err("account.min_invoices must be at least 1".into());
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err("account.l2 must be finite and >= 0".into());
        }
        Ok(())
    }

    /// Days after its due date an invoice was paid, or (open at `t`) is overdue.
    fn days_late_at(invoice: &InvoiceRecord, t: Timestamp) -> Option<f64> {
        let due = invoice.due();
        match invoice.paid_at.filter(|p| *p <= t) {
            Some(paid) => Some(days(paid - due)),
            None => (t > due).then(|| days(t - due)),
        }
    }

    /// Whether the invoice was (by `t`) paid or left open more than the
    /// tolerance after its due date.
    pub fn is_serious(&self, invoice: &InvoiceRecord, t: Timestamp) -> bool {
        Self::days_late_at(invoice, t).is_some_and(|d| d > self.serious_late_days)
    }
}

fn days(seconds: i64) -> f64 {
    seconds as f64 / SECONDS_PER_DAY as f64
}

/// What an account's invoices say as of T.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreditFacts {
    /// Invoices issued in the year before T.
    pub invoices: u32,
    /// Mean days after the due date of the invoices paid in the last 90
    /// days, and of those paid in the 275 days before; negative is early.
    pub recent_days_late: Option<f64>,
    pub prior_days_late: Option<f64>,
    /// The year's invoices paid, or open, more than the tolerance past due.
    pub serious_late: u32,
    /// Invoiced and not paid by T, and the part of it past its due date.
    pub open_amount: f64,
    pub overdue_amount: f64,
    /// Invoiced in the year before T.
    pub invoiced_year: f64,
    /// Days sales outstanding: open_amount / (invoiced in the last 90 days / 90).
    pub dso: Option<f64>,
    /// Mean payment terms of the year's invoices.
    pub terms_days: Option<f64>,
}

/// The inputs of the credit-risk model, in [`CreditFacts::features`] order,
/// with their units.
pub const FEATURES: [(&str, &str); 5] = [
    ("recent_days_late", "days"),
    ("lateness_trend_days", "days"),
    ("serious_late_share", "share of invoices"),
    ("overdue_share", "share of the year's invoicing"),
    ("dso_beyond_terms", "days"),
];

impl CreditFacts {
    pub fn of(history: &KindHistory, t: Timestamp, params: &CreditParams) -> CreditFacts {
        let year = t - HISTORY_DAYS * SECONDS_PER_DAY;
        let recent = t - RECENT_DAYS * SECONDS_PER_DAY;
        let mut f = CreditFacts::default();
        let (mut recent_late, mut prior_late) = (Vec::new(), Vec::new());
        let (mut invoiced_90, mut terms) = (0.0, 0.0);
        for inv in history.invoices.values().filter(|i| i.issued <= t) {
            let paid = inv.paid_at.filter(|p| *p <= t);
            if paid.is_none() {
                f.open_amount += inv.amount;
                if t > inv.due() {
                    f.overdue_amount += inv.amount;
                }
            }
            if let Some(p) = paid.filter(|p| *p > year) {
                let late = days(p - inv.due());
                if p > recent {
                    recent_late.push(late);
                } else {
                    prior_late.push(late);
                }
            }
            if inv.issued > year {
                f.invoices += 1;
                f.invoiced_year += inv.amount;
                terms += f64::from(inv.terms_days);
                if params.is_serious(inv, t) {
                    f.serious_late += 1;
                }
                if inv.issued > recent {
                    invoiced_90 += inv.amount;
                }
            }
        }
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        f.recent_days_late = mean(&recent_late);
        f.prior_days_late = mean(&prior_late);
        f.terms_days = (f.invoices > 0).then(|| terms / f64::from(f.invoices));
        f.dso = (invoiced_90 > 0.0).then(|| f.open_amount / (invoiced_90 / RECENT_DAYS as f64));
        f
    }

    /// Recent lateness minus the earlier year's; `None` without both.
    pub fn lateness_trend(&self) -> Option<f64> {
        Some(self.recent_days_late? - self.prior_days_late?)
    }

    pub fn features(&self) -> Vec<f64> {
        let late = self
            .recent_days_late
            .or(self.prior_days_late)
            .unwrap_or(0.0);
        let dso_beyond = match (self.dso, self.terms_days) {
            (Some(dso), Some(terms)) => (dso - terms).clamp(-365.0, 365.0),
            _ => 0.0,
        };
        vec![
            late,
            self.lateness_trend().unwrap_or(0.0),
            f64::from(self.serious_late) / f64::from(self.invoices.max(1)),
            if self.invoiced_year > 0.0 {
                (self.overdue_amount / self.invoiced_year).min(1.0)
            } else {
                0.0
            },
            dso_beyond,
        ]
    }
}

/// The fitted credit-risk model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditModel {
    pub params: CreditParams,
    pub logit: RiskLogit,
    pub training_rows: usize,
}

impl CreditModel {
    /// # Errors
    /// `Training` when the rows are too few or hold one outcome only.
    pub fn fit(
        params: &CreditParams,
        rows: &[RiskRow],
    ) -> Result<(CreditModel, Vec<(String, f64)>)> {
        let (logit, metrics) = RiskLogit::fit(rows, params.l2, "account.credit_risk")?;
        let training_rows = rows.iter().filter(|r| !r.holdout).count();
        Ok((
            CreditModel {
                params: params.clone(),
                logit,
                training_rows,
            },
            metrics,
        ))
    }

    /// The credit risk, or `None` when the history is too short to tell.
    pub fn risk(&self, facts: &CreditFacts) -> Option<f64> {
        (facts.invoices >= self.params.min_invoices)
            .then(|| self.logit.probability(&facts.features()))
    }

    pub fn contributions(&self, facts: &CreditFacts) -> Vec<f64> {
        self.logit.contributions(&facts.features())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventBody;

    const DAY: i64 = SECONDS_PER_DAY;

    /// Monthly invoices on 30-day terms, the k-th paid `late(k)` days after
    /// due; each event is dated when issued, as `Invoice` events are.
    fn history(late: impl Fn(i64) -> i64, months: i64) -> KindHistory {
        let mut h = KindHistory::default();
        for k in 0..months {
            let issued = 1000 * DAY + k * 30 * DAY;
            let paid_at = issued + (30 + late(k)) * DAY;
            let body = EventBody::Invoice {
                invoice_id: format!("i{k}"),
                amount: 100.0,
                terms_days: 30,
                paid_at: Some(paid_at),
            };
            h.apply(issued, &body);
        }
        h
    }

    #[test]
    fn facts_see_lateness_rise_and_count_what_is_open_at_t() {
        let params = CreditParams::default();
        let h = history(|k| if k < 9 { 0 } else { 40 }, 12);
        let t = 1000 * DAY + 12 * 30 * DAY + 20 * DAY;
        let f = CreditFacts::of(&h, t, &params);
        // The first invoice was issued more than a year before t.
        assert_eq!(f.invoices, 11);
        assert!(f.recent_days_late.unwrap() > 30.0, "{f:?}");
        assert_eq!(f.prior_days_late, Some(0.0));
        assert!(f.lateness_trend().unwrap() > 30.0);
        assert!(f.serious_late >= 2, "{f:?}");
        // The last invoice, due 20 days before t, is paid after t: open and overdue.
        assert_eq!((f.open_amount, f.overdue_amount), (100.0, 100.0), "{f:?}");
        assert!(f.dso.unwrap() > 30.0, "{f:?}");
        let steady = CreditFacts::of(&history(|_| 0, 12), t, &params);
        assert_eq!(steady.serious_late, 0);
        assert!(steady.dso.unwrap() < f.dso.unwrap());
    }
}
