//! What a supplier is to us, as of a time: supply risk with its reasons and
//! per-category breakdown, dependency, value, and the Kraljic class. Shared
//! by Score, Segment and Recommend so they agree (see `model::supply`).

use crate::domain::RelationshipKind;
use crate::model::supply::{Category, Dependency, FEATURES};
use crate::model::{Kraljic, SupplyFacts, SupplyModel, SupplyParams};
use crate::numbers::fmt_num;

use super::evaluate::Evaluated;
use super::score::Reason;

/// A price rise of this much over the half year is full price concern.
const FULL_PRICE_CONCERN: f64 = 0.25;

/// Each category from 0 (no concern) to 1; `None` where the data cannot say.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RiskBreakdown {
    /// Share of the year's deliveries late beyond the tolerance or short.
    pub delivery: Option<f64>,
    /// Share of the year's deliveries with more units rejected than allowed.
    pub quality: Option<f64>,
    /// The price trend against a 25% rise.
    pub price: Option<f64>,
    /// Our share of the category's spend.
    pub dependency: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupplierView {
    /// `None`: too little delivery history, or no supply model.
    pub supply_risk: Option<f64>,
    pub horizon_days: u32,
    pub min_deliveries: u32,
    pub facts: SupplyFacts,
    /// Failures in the last 90 days outpace those of the rest of the year.
    pub risk_rising: bool,
    pub breakdown: RiskBreakdown,
    pub dependency: Option<Dependency>,
    pub kraljic: Option<Kraljic>,
    pub share_edge: Option<f64>,
    pub risk_edge: Option<f64>,
    /// Contributions to the supply risk's log-odds, largest first.
    pub reasons: Vec<Reason>,
}

impl SupplierView {
    /// The view of a supplier; `None` for other kinds.
    pub(crate) fn of(e: &Evaluated, max_reasons: usize) -> Option<SupplierView> {
        if e.data.relationship.kind != RelationshipKind::Supplier {
            return None;
        }
        let model = e.model.bundle.supply.as_ref();
        let default_params = SupplyParams::default();
        let params = model.map_or(&default_params, |m| &m.params);
        let empty = Default::default();
        let history = e.data.aggregates.kinds.as_deref().unwrap_or(&empty);
        let facts = SupplyFacts::of(history, e.as_of, params);
        let known = facts.deliveries >= params.min_deliveries;
        let supply_risk = model.and_then(|m| m.risk(&facts));
        let dependency = model.and_then(|m| m.dependency(&e.data.relationship.id, &facts));
        let prior = facts.deliveries - facts.recent_deliveries;
        let risk_rising = known
            && facts.recent_deliveries > 0
            && f64::from(facts.recent_failures) / f64::from(facts.recent_deliveries)
                > f64::from(facts.failures - facts.recent_failures) / f64::from(prior.max(1));
        let share = |n: u32| (known).then(|| f64::from(n) / f64::from(facts.deliveries));
        let late_or_short = history
            .deliveries
            .iter()
            .filter(|d| {
                let day = crate::time::day_of(e.as_of);
                d.day > day - crate::model::supply::HISTORY_DAYS && d.day <= day
            })
            .filter(|d| {
                f64::from(d.days_late) > params.late_tolerance_days
                    || f64::from(d.received) < params.min_fill_rate * f64::from(d.ordered)
            })
            .count() as u32;
        let breakdown = RiskBreakdown {
            delivery: share(late_or_short),
            quality: share(facts.rejected),
            price: facts
                .price_trend
                .map(|t| (t / FULL_PRICE_CONCERN).clamp(0.0, 1.0)),
            dependency: dependency.as_ref().map(|d| d.share),
        };
        let kraljic = match (model, supply_risk, &dependency) {
            (Some(m), Some(risk), Some(dep)) => Some(Kraljic::classify(
                dep.share,
                risk,
                m.share_edge,
                m.risk_edge,
            )),
            _ => None,
        };
        let reasons = match (model, supply_risk) {
            (Some(m), Some(_)) => reasons(m, &facts, max_reasons),
            _ => Vec::new(),
        };
        Some(SupplierView {
            supply_risk,
            horizon_days: params.horizon_days,
            min_deliveries: params.min_deliveries,
            risk_rising,
            breakdown,
            dependency,
            kraljic,
            share_edge: model.map(|m| m.share_edge),
            risk_edge: model.map(|m| m.risk_edge),
            reasons,
            facts,
        })
    }

    /// Why the risk is unknown, when it is.
    pub fn unknown_because(&self) -> Option<String> {
        if self.supply_risk.is_some() {
            return None;
        }
        Some(if self.facts.deliveries < self.min_deliveries {
            format!(
                "{} deliveries in the last 365 days, fewer than the {} supply risk needs",
                self.facts.deliveries, self.min_deliveries
            )
        } else {
            "the active model has no supply-risk model (its book had too few suppliers with deliveries)".to_string()
        })
    }
}

fn reasons(m: &SupplyModel, facts: &SupplyFacts, max: usize) -> Vec<Reason> {
    let values = facts.features();
    let contributions = m.contributions(facts);
    let out: Vec<Reason> = FEATURES
        .iter()
        .zip(values)
        .zip(contributions)
        .map(|(((name, category, unit), value), contribution)| {
            let what = match *name {
                "recent_failure_share" => format!(
                    "{} of {} deliveries in the last 90 days failed (late beyond {} days, short or rejected)",
                    facts.recent_failures,
                    facts.recent_deliveries,
                    fmt_num(m.params.late_tolerance_days)
                ),
                "prior_failure_share" => format!(
                    "{} of {} deliveries in the 275 days before failed",
                    facts.failures - facts.recent_failures,
                    facts.deliveries - facts.recent_deliveries
                ),
                "recent_days_late" => format!(
                    "deliveries of the last 90 days arrived {} days after their promise on average",
                    fmt_num(facts.recent_days_late)
                ),
                "lateness_trend_days" => format!(
                    "lateness moved by {} days against the rest of the year",
                    fmt_num(facts.recent_days_late - facts.prior_days_late)
                ),
                "shortfall_share" => format!(
                    "{:.1}% of the units ordered this year did not arrive",
                    100.0 * (1.0 - facts.fill_rate)
                ),
                "reject_share" => format!(
                    "{:.1}% of the units received this year were rejected",
                    100.0 * facts.reject_rate
                ),
                _ => format!("{} deliveries in the last 365 days", facts.deliveries),
            };
            let category = match category {
                Category::Delivery => "delivery",
                Category::Quality => "quality",
                Category::Price => "price",
                Category::Dependency => "dependency",
            };
            let what = format!("{what} ({category})");
            Reason::of_risk(name, unit, value, contribution, &what, "supply risk")
        })
        .collect();
    Reason::largest(out, max)
}
