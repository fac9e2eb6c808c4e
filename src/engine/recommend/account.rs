//! The account action beside the buyer actions: a payment-terms review
//! (shorter terms, a credit limit) where payments grow later, valued with
//! the `[account]` economics of the policy on the invoicing the credit risk
//! puts at stake.

use crate::engine::account::AccountView;
use crate::engine::evaluate::Evaluated;
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
    let Some(v) = AccountView::of(e, 0) else {
        return;
    };
    if !allowed(ActionType::PaymentTermsReview) || !v.lateness_rising {
        return;
    }
    let Some(risk) = v.credit_risk else {
        return;
    };
    let ap = &p.account;
    let f = &v.facts;
    // The invoicing that falls due within the horizon at the year's pace,
    // plus what is overdue already.
    let exposure = f.invoiced_year * f64::from(v.horizon_days) / 365.0 + f.overdue_amount;
    let gain = risk * exposure * ap.late_payment_cost_share * ap.terms_review_risk_reduction;
    let cost = ap.terms_review_cost;
    let why = format!(
        "payment-terms review: payments moved from {} to {} days past due, credit risk {:.0}% within {} days on {} of invoicing and overdue amounts",
        fmt_num(f.prior_days_late.unwrap_or(0.0)),
        fmt_num(f.recent_days_late.unwrap_or(0.0)),
        100.0 * risk,
        v.horizon_days,
        fmt_num(exposure)
    );
    Proposals {
        allowed,
        out,
        declined,
    }
    .offer(ActionType::PaymentTermsReview, gain, cost, risk, why);
}
