//! Win-back: an offer to a lapsed relationship, worth its yearly margin times the chance it comes back.

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;
use crate::features::BaseFeature;
use crate::numbers::{capitalize, fmt_num};

use super::{Action, ActionType};

pub(super) fn propose(
    e: &Evaluated,
    p: &Policy,
    out: &mut Vec<Action>,
    declined: &mut Vec<String>,
) {
    let tenure_years = (e.snapshot.get(BaseFeature::TenureDays) / 365.0).max(0.25);
    let yearly = e.data.aggregates.spend_total / tenure_years;
    let gain = p.win_back.success_rate * yearly * p.margin;
    let net = gain - p.win_back.offer_cost;
    let line = format!(
        "lapsed for {:.0} days after spending {} a year: winning it back ({:.0}% chance) is worth {} against an offer costing {}",
        e.silent_days,
        fmt_num(yearly),
        p.win_back.success_rate * 100.0,
        fmt_num(gain),
        fmt_num(p.win_back.offer_cost)
    );
    if net > 0.0 {
        out.push(Action {
            kind: ActionType::WinBack,
            product_id: None,
            expected_net_value: net,
            probability: p.win_back.success_rate,
            cost: p.win_back.offer_cost,
            reason: capitalize(&line).to_string(),
        });
    } else {
        declined.push(line);
    }
}
