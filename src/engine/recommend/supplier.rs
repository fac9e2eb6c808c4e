//! Supplier actions: what purchasing does about a supplier. A supplier is
//! bought from, never sold to, so nothing here is an offer.

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
        "a supplier is bought from, not sold to, and without deliveries or orders on record no sourcing action can be valued".to_string(),
    );
}
