//! What an account's payments say, as of a time: days late against terms,
//! days sales outstanding and their trend, what is open and overdue, and the
//! credit risk with its reasons (see `model::credit`). Shared by Score and
//! Recommend so they agree.

use crate::domain::RelationshipKind;
use crate::model::credit::FEATURES;
use crate::model::{CreditFacts, CreditModel, CreditParams};
use crate::numbers::fmt_num;

use super::evaluate::Evaluated;
use super::score::Reason;

#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    /// `None`: too few invoices, or no credit model.
    pub credit_risk: Option<f64>,
    pub horizon_days: u32,
    pub serious_late_days: f64,
    pub min_invoices: u32,
    pub facts: CreditFacts,
    /// The last 90 days' payments are later than the rest of the year's.
    pub lateness_rising: bool,
    /// Contributions to the credit risk's log-odds, largest first;
    /// RAISES_CHURN reads "raises credit risk".
    pub reasons: Vec<Reason>,
    has_model: bool,
}

impl AccountView {
    /// The view of an account; `None` for other kinds.
    pub(crate) fn of(e: &Evaluated, max_reasons: usize) -> Option<AccountView> {
        if e.data.relationship.kind != RelationshipKind::Account {
            return None;
        }
        let model = e.model.bundle.credit.as_ref();
        let default_params = CreditParams::default();
        let params = model.map_or(&default_params, |m| &m.params);
        let empty = Default::default();
        let history = e.data.aggregates.kinds.as_deref().unwrap_or(&empty);
        let facts = CreditFacts::of(history, e.as_of, params);
        let credit_risk = model.and_then(|m| m.risk(&facts));
        let reasons = match (model, credit_risk) {
            (Some(m), Some(_)) => reasons(m, &facts, max_reasons),
            _ => Vec::new(),
        };
        Some(AccountView {
            credit_risk,
            horizon_days: params.horizon_days,
            serious_late_days: params.serious_late_days,
            min_invoices: params.min_invoices,
            lateness_rising: facts.lateness_trend().is_some_and(|t| t > 0.0),
            reasons,
            facts,
            has_model: model.is_some(),
        })
    }

    /// Why the credit risk is unknown, when it is.
    pub fn unknown_because(&self) -> Option<String> {
        if self.credit_risk.is_some() {
            return None;
        }
        Some(if !self.has_model {
            "the active model has no credit-risk model (its book had too few accounts with invoices)".to_string()
        } else {
            format!(
                "{} invoices in the last 365 days, fewer than the {} credit risk needs",
                self.facts.invoices, self.min_invoices
            )
        })
    }
}

fn reasons(m: &CreditModel, f: &CreditFacts, max: usize) -> Vec<Reason> {
    let values = f.features();
    let out: Vec<Reason> = FEATURES
        .iter()
        .zip(values)
        .zip(m.contributions(f))
        .map(|(((name, unit), value), contribution)| {
            let what = match *name {
                // The feature falls back to the earlier year's lateness when
                // nothing was paid in the last 90 days; the sentence says which.
                "recent_days_late" if f.recent_days_late.is_none() => format!(
                    "no invoice was paid in the last 90 days; those paid in the year before were paid {} days after their due date on average",
                    fmt_num(value)
                ),
                "recent_days_late" => format!(
                    "invoices paid in the last 90 days were paid {} days after their due date on average",
                    fmt_num(value)
                ),
                "lateness_trend_days" => format!(
                    "payments moved by {} days against the rest of the year",
                    fmt_num(value)
                ),
                "serious_late_share" => format!(
                    "{} of {} invoices this year were paid or left open more than {} days past due",
                    f.serious_late,
                    f.invoices,
                    fmt_num(m.params.serious_late_days)
                ),
                "overdue_share" => format!(
                    "{} is overdue, {:.0}% of the year's invoicing",
                    fmt_num(f.overdue_amount),
                    100.0 * value
                ),
                _ => format!(
                    "days sales outstanding are {} days beyond the terms",
                    fmt_num(value)
                ),
            };
            Reason::of_risk(name, unit, value, contribution, &what, "credit risk")
        })
        .collect();
    Reason::largest(out, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::risk::RiskLogit;

    fn model() -> CreditModel {
        CreditModel {
            params: CreditParams::default(),
            logit: RiskLogit {
                scaler: crate::model::Standardizer {
                    mean: vec![0.0; FEATURES.len()],
                    scale: vec![1.0; FEATURES.len()],
                },
                coefficients: vec![1.0; FEATURES.len()],
                intercept: 0.0,
                calibrator: Default::default(),
            },
            training_rows: 0,
        }
    }

    fn lateness_reason(f: &CreditFacts) -> String {
        reasons(&model(), f, FEATURES.len())
            .into_iter()
            .find(|r| r.feature == "recent_days_late")
            .expect("a reason for lateness")
            .explanation
    }

    #[test]
    fn the_lateness_reason_says_which_period_it_read() {
        let recent = CreditFacts {
            invoices: 4,
            recent_days_late: Some(12.0),
            prior_days_late: Some(3.0),
            ..CreditFacts::default()
        };
        let text = lateness_reason(&recent).to_lowercase();
        assert!(text.contains("in the last 90 days were paid 12"), "{text}");
        // Nothing paid lately: the feature reads the year before, and so does the sentence.
        let earlier = CreditFacts {
            recent_days_late: None,
            ..recent
        };
        let text = lateness_reason(&earlier).to_lowercase();
        assert!(
            text.contains("no invoice was paid in the last 90 days")
                && text.contains("paid 3.00 days after"),
            "{text}"
        );
    }
}
