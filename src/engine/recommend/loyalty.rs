//! Loyalty: a programme for profitable, loyal relationships, worth the
//! churn it prevents and the spend it adds.

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;
use crate::numbers::fmt_num;

use super::{Action, ActionType};

pub(super) fn propose(
    e: &Evaluated,
    p: &Policy,
    expected_profit: f64,
    out: &mut Vec<Action>,
    declined: &mut Vec<String>,
) {
    let Some(segments) = &e.model.bundle.segments else {
        return;
    };
    let (tier, rank) = segments.value_tier(e.value, expected_profit > 0.0);
    if rank > 2 || e.churn > p.loyalty.max_churn {
        return;
    }
    let gain = (e.churn * p.loyalty.churn_reduction + p.loyalty.spend_lift) * e.value * p.margin;
    let net = gain - p.loyalty.cost;
    if net > 0.0 {
        out.push(Action {
            kind: ActionType::Loyalty,
            product_id: None,
            expected_net_value: net,
            probability: 1.0 - e.churn,
            cost: p.loyalty.cost,
            reason: format!(
                "{tier} tier and loyal (churn risk {:.0}%): the programme is worth {} for a cost of {}",
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
