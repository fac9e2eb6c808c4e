//! Loyalty: a programme for profitable, loyal relationships, worth the
//! churn it prevents and the spend it adds.

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;
use crate::features::BaseFeature;
use crate::numbers::fmt_num;

use super::{Action, ActionType};

/// `tier` and `rank` are the relationship's value tier (Segment's).
pub(super) fn propose(
    e: &Evaluated,
    p: &Policy,
    (tier, rank): (&str, u32),
    out: &mut Vec<Action>,
    declined: &mut Vec<String>,
) {
    // Gold or Platinum, not about to leave, and with a history: loyalty is
    // earned, so a newcomer with one purchase is not offered it.
    let occasions = e.data.aggregates.occasions;
    let tenure = e.snapshot.get(BaseFeature::TenureDays);
    if !(1..=2).contains(&rank)
        || e.churn > p.loyalty.max_churn
        || occasions < p.loyalty.min_occasions
        || tenure < f64::from(p.loyalty.min_tenure_days)
    {
        return;
    }
    let value = e.value_or_zero();
    let gain = (e.churn * p.loyalty.churn_reduction + p.loyalty.spend_lift) * value * p.margin;
    let net = gain - p.loyalty.cost;
    if net > 0.0 {
        out.push(Action {
            kind: ActionType::Loyalty,
            product_id: None,
            expected_net_value: net,
            probability: 1.0 - e.churn,
            cost: p.loyalty.cost,
            reason: format!(
                "{tier} tier, {occasions} purchase occasions over {} days (churn risk {:.0}%): the programme is worth {} for a cost of {}",
                tenure.round(),
                e.churn * 100.0,
                fmt_num(gain),
                fmt_num(p.loyalty.cost)
            ),
        });
    } else {
        declined.push(format!(
            "a loyalty programme would earn {} but costs {}",
            fmt_num(gain),
            fmt_num(p.loyalty.cost)
        ));
    }
}
