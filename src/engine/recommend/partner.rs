//! Partner actions, valued with the `[partner]` economics of the policy on
//! the margin of the expected sourced value. A partner is not a buyer, so
//! nothing here is an offer.
//!
//! - enablement (training, co-marketing): where the extra sourced value it
//!   brings pays for it
//! - incentive (a spiff, a better referral fee): where the lapse risk is at
//!   least `min_incentive_lapse_risk` and the deal flow is slowing, and the
//!   sourced value it keeps pays for it

use crate::engine::evaluate::Evaluated;
use crate::engine::partner::PartnerView;
use crate::engine::policy::Policy;
use crate::numbers::fmt_num;

use super::{Action, ActionType, Proposals};

pub(super) fn propose(
    e: &Evaluated,
    p: &Policy,
    allowed: &dyn Fn(ActionType) -> bool,
    out: &mut Vec<Action>,
    declined: &mut Vec<String>,
) {
    let Some(v) = PartnerView::of(e, 0) else {
        return;
    };
    let (Some(lapse), Some(sourced)) = (v.lapse_risk, v.sourced_value) else {
        declined.push(format!(
            "a partner is not sold to, and its sourced value is unknown ({})",
            v.unknown_because().unwrap_or_default()
        ));
        return;
    };
    let pp = &p.partner;
    let horizon = v.horizon_days;
    let mut proposals = Proposals {
        allowed,
        out,
        declined,
    };
    proposals.offer(
        ActionType::PartnerEnablement,
        sourced * pp.enablement_uplift * p.margin,
        pp.enablement_cost,
        1.0 - lapse,
        format!(
            "enablement, in margin: the partner is expected to source {} within {horizon} days ({} won from {} deals this year), and enablement adds {:.0}%",
            fmt_num(sourced),
            fmt_num(v.facts.won_value),
            v.facts.won,
            100.0 * pp.enablement_uplift
        ),
    );
    if lapse >= pp.min_incentive_lapse_risk && v.slowing() {
        // What lapsing would lose: the run rate the partner keeps if it stays.
        let at_stake = if lapse < 1.0 {
            sourced / (1.0 - lapse)
        } else {
            0.0
        };
        proposals.offer(
            ActionType::PartnerIncentive,
            lapse * pp.incentive_lapse_reduction * at_stake * p.margin,
            pp.incentive_cost,
            lapse,
            format!(
                "incentive, in margin: lapse risk is {:.0}% within {horizon} days and deals are slowing ({} in the last 90 days, {} in the 275 before)",
                100.0 * lapse,
                v.facts.recent_deals,
                v.facts.prior_deals
            ),
        );
    }
}
