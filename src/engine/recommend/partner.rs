//! Partner actions: enablement and incentives, where the deals a partner
//! sources pay for them. A partner is not a buyer, so nothing here is an offer.

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;

use super::{Action, ActionType};

pub(super) fn propose(
    _e: &Evaluated,
    _p: &Policy,
    _allowed: &dyn Fn(ActionType) -> bool,
    _out: &mut Vec<Action>,
    declined: &mut Vec<String>,
) {
    declined.push(
        "a partner is not sold to, and without sourced deals on record no enablement or incentive can be valued".to_string(),
    );
}
