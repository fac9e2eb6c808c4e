//! What a partner brings, as of a time: the deals it sources, the value
//! they are expected to bring over the horizon, the risk that the
//! partnership lapses with its reasons, and the partner's tier (see
//! `model::partnership`). Shared by Score, Segment and Recommend so they agree.

use crate::domain::RelationshipKind;
use crate::model::partnership::FEATURES;
use crate::model::{PartnerFacts, PartnerModel, PartnerParams, PartnerTier};
use crate::numbers::fmt_num;

use super::evaluate::Evaluated;
use super::score::Reason;

#[derive(Debug, Clone, PartialEq)]
pub struct PartnerView {
    /// `None`: too few deals in the year, or no partner model.
    pub lapse_risk: Option<f64>,
    /// Expected won value of sourced deals within the horizon; `None` where
    /// the lapse risk is unknown.
    pub sourced_value: Option<f64>,
    pub horizon_days: u32,
    pub min_deals: u32,
    pub facts: PartnerFacts,
    /// `None` without a partner model or with an unknown sourced value.
    pub tier: Option<PartnerTier>,
    /// The Silver, Gold and Platinum edges of sourced value.
    pub tier_edges: Vec<f64>,
    /// Contributions to the lapse risk's log-odds, largest first;
    /// RAISES_CHURN reads "raises lapse risk".
    pub reasons: Vec<Reason>,
    has_model: bool,
}

impl PartnerView {
    /// The view of a partner; `None` for other kinds.
    pub(crate) fn of(e: &Evaluated, max_reasons: usize) -> Option<PartnerView> {
        if e.data.relationship.kind != RelationshipKind::Partner {
            return None;
        }
        let model = e.model.bundle.partner.as_ref();
        let default_params = PartnerParams::default();
        let params = model.map_or(&default_params, |m| &m.params);
        let empty = Default::default();
        let history = e.data.aggregates.kinds.as_deref().unwrap_or(&empty);
        let facts = PartnerFacts::of(history, e.as_of);
        let lapse_risk = model.and_then(|m| m.lapse_risk(&facts));
        let sourced_value = model.and_then(|m| m.sourced_value(&facts));
        let tier = model.zip(sourced_value).map(|(m, v)| m.tier(v));
        let reasons = match (model, lapse_risk) {
            (Some(m), Some(_)) => reasons(m, &facts, max_reasons),
            _ => Vec::new(),
        };
        Some(PartnerView {
            lapse_risk,
            sourced_value,
            horizon_days: params.horizon_days,
            min_deals: params.min_deals,
            tier,
            tier_edges: model.map(|m| m.tier_edges.clone()).unwrap_or_default(),
            reasons,
            facts,
            has_model: model.is_some(),
        })
    }

    /// Why the lapse risk is unknown, when it is.
    pub fn unknown_because(&self) -> Option<String> {
        if self.lapse_risk.is_some() {
            return None;
        }
        Some(if !self.has_model {
            "the active model has no partner model (its book had too few partners with deals)"
                .to_string()
        } else {
            format!(
                "{} deals active in the last 365 days, fewer than the {} lapse risk needs",
                self.facts.active_deals(),
                self.min_deals
            )
        })
    }

    /// Lapse risk rises: fewer deals in the last 90 days than the year's pace.
    pub fn slowing(&self) -> bool {
        f64::from(self.facts.recent_deals) < self.facts.prior_deals_per_90_days()
    }
}

fn reasons(m: &PartnerModel, f: &PartnerFacts, max: usize) -> Vec<Reason> {
    let values = f.features();
    let out: Vec<Reason> = FEATURES
        .iter()
        .zip(values)
        .zip(m.contributions(f))
        .map(|(((name, unit), value), contribution)| {
            let what = match *name {
                "recent_deals" => format!("{} deals in the last 90 days", f.recent_deals),
                "prior_deals_per_90_days" => format!(
                    "{} deals in the 275 days before, {} per 90 days",
                    f.prior_deals,
                    fmt_num(value)
                ),
                "log_won_value" => format!(
                    "{} won from {} deals in the last 365 days",
                    fmt_num(f.won_value),
                    f.won
                ),
                "win_rate" => match f.win_rate() {
                    Some(r) => format!(
                        "{:.0}% of the year's decided deals were won ({} won, {} lost)",
                        100.0 * r,
                        f.won,
                        f.lost
                    ),
                    None => "no deal decided this year".to_string(),
                },
                _ => match f.days_since_last_deal {
                    Some(d) => format!("the latest deal record is {} days old", fmt_num(d)),
                    None => "no deal on record".to_string(),
                },
            };
            Reason::of_risk(name, unit, value, contribution, &what, "lapse risk")
        })
        .collect();
    Reason::largest(out, max)
}
