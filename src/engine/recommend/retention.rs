//! Retention: an offer only where the margin it saves beats its cost.

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;
use crate::numbers::fmt_num;

use super::{Action, ActionType};

pub(super) fn propose(
    e: &Evaluated,
    p: &Policy,
    out: &mut Vec<Action>,
    declined: &mut Vec<String>,
) {
    let saved = e.churn * p.retention.uplift * e.value_or_zero() * p.margin;
    let net = saved - p.retention.offer_cost;
    if net > 0.0 {
        out.push(Action {
            kind: ActionType::Retain,
            product_id: None,
            expected_net_value: net,
            probability: p.retention.uplift * e.churn,
            cost: p.retention.offer_cost,
            reason: format!(
                "Churn risk {:.0}% on an expected value of {}: a retention offer saves an expected {} of margin for a cost of {}",
                e.churn * 100.0,
                fmt_num(e.value_or_zero()),
                fmt_num(saved),
                fmt_num(p.retention.offer_cost)
            ),
        });
    } else {
        declined.push(format!(
            "a retention offer would save an expected {} of margin (churn risk {:.0}% on an expected value of {}) but costs {}",
            fmt_num(saved),
            e.churn * 100.0,
            fmt_num(e.value_or_zero()),
            fmt_num(p.retention.offer_cost)
        ));
    }
}
