//! Recommend: next best actions ranked by expected net value, over the
//! economics in `models/policy.toml` ([`Policy`]). One file per action
//! family, each proposing what pays and saying what does not:
//!
//! - `retention`: an offer where `churn × uplift × value × margin` beats its cost
//! - `win_back`: for lapsed relationships
//! - `cross_sell`: complements of what the relationship owns (basket rules),
//!   then popular products, up to the number of actions asked for
//! - `up_sell`: the next step up in the category it buys most
//! - `loyalty`: a programme for the profitable and loyal
//!
//! Those are things done to a buyer: customers and accounts get them, and
//! accounts also a payment-terms review (`account`). A supplier or a partner
//! is never sold to; their families are in `supplier` and `partner`. A
//! single NO_ACTION, with the reasons, when nothing pays.

mod account;
mod cross_sell;
mod loyalty;
mod partner;
mod retention;
mod supplier;
mod up_sell;
mod win_back;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::domain::{validate_id, RelationshipKind};
use crate::error::{Error, Result};
use crate::model::ModelRouter;
use crate::numbers::fmt_num;
use crate::time::Timestamp;

use super::evaluate::{Contributions, Evaluated};
use super::policy::Policy;
use super::{check_batch_size, Engine, LifecycleStage, MAX_ACTIONS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionType {
    Retain,
    CrossSell,
    UpSell,
    WinBack,
    Loyalty,
    NoAction,
    QualifySecondSource,
    Renegotiate,
    Consolidate,
    SupplierDevelopment,
    PaymentTermsReview,
    PartnerEnablement,
    PartnerIncentive,
}

impl ActionType {
    /// Every action there is, NO_ACTION (the absence of one) left out.
    pub const ACTIONS: [ActionType; 12] = [
        ActionType::Retain,
        ActionType::CrossSell,
        ActionType::UpSell,
        ActionType::WinBack,
        ActionType::Loyalty,
        ActionType::QualifySecondSource,
        ActionType::Renegotiate,
        ActionType::Consolidate,
        ActionType::SupplierDevelopment,
        ActionType::PaymentTermsReview,
        ActionType::PartnerEnablement,
        ActionType::PartnerIncentive,
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub kind: ActionType,
    pub product_id: Option<String>,
    pub expected_net_value: f64,
    pub probability: f64,
    /// What the action costs whether or not it succeeds (an offer, a
    /// contact), in money: `models/policy.toml`'s price of its family.
    pub cost: f64,
    pub reason: String,
}

/// Where the families that are not offers (supplier, partner, account)
/// put what they propose: an action that pays joins `out`, one that does
/// not is said in `declined`, so that NO_ACTION can give the reasons; an
/// excluded type is neither.
pub(super) struct Proposals<'a> {
    pub allowed: &'a dyn Fn(ActionType) -> bool,
    pub out: &'a mut Vec<Action>,
    pub declined: &'a mut Vec<String>,
}

impl Proposals<'_> {
    /// `kind` is expected to gain `gain` for a cost of `cost`, applying
    /// with `probability`, for the reason `why`.
    pub fn offer(&mut self, kind: ActionType, gain: f64, cost: f64, probability: f64, why: String) {
        if !(self.allowed)(kind) {
            return;
        }
        let (shown_gain, shown_cost) = (fmt_num(gain), fmt_num(cost));
        if gain > cost {
            self.out.push(Action {
                kind,
                product_id: None,
                expected_net_value: gain - cost,
                probability,
                cost,
                reason: format!("{why}: worth an expected {shown_gain} for a cost of {shown_cost}"),
            });
        } else {
            self.declined.push(format!(
                "{why}, but it would be worth {shown_gain} for a cost of {shown_cost}"
            ));
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecommendRequest {
    pub relationship_id: String,
    pub as_of: Option<Timestamp>,
    pub max_actions: u32,
    pub exclude_products: Vec<String>,
    pub exclude_types: Vec<ActionType>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecommendOutput {
    pub relationship_id: String,
    pub actions: Vec<Action>,
    pub model_version: u64,
    pub as_of: Timestamp,
}

impl Engine {
    /// Next best actions ranked by expected net value.
    ///
    /// # Errors
    /// As [`Engine::score`]; `InvalidArgument` for too many actions or a bad product id.
    pub fn recommend(&self, req: &RecommendRequest) -> Result<RecommendOutput> {
        let models = self.models();
        if req.as_of.is_some() || !req.exclude_products.is_empty() || !req.exclude_types.is_empty()
        {
            return self.recommend_with(&models, req);
        }
        check(req)?;
        let n = req.max_actions;
        let out = self.answer_now(
            &models,
            &req.relationship_id,
            Contributions::Skipped,
            |a| {
                a.recommend
                    .as_ref()
                    .filter(|(k, _)| *k == n)
                    .map(|(_, r)| Arc::clone(r))
            },
            |e| Ok(self.recommend_of(e, req)),
            |a, r| a.recommend = Some((n, r)),
        )?;
        Ok(Arc::unwrap_or_clone(out))
    }

    /// Recommend for many ids with one set of models and the parameters of
    /// `template` (its `relationship_id` is ignored), leaving out unknown ids
    /// and listing them in request order when `skip_unknown`.
    ///
    /// # Errors
    /// As [`Engine::recommend`]; without `skip_unknown` the first unknown id
    /// fails the batch.
    pub fn recommend_many(
        &self,
        ids: &[String],
        template: &RecommendRequest,
        skip_unknown: bool,
    ) -> Result<(Vec<RecommendOutput>, Vec<String>)> {
        check_batch_size("relationship_ids", ids.len())?;
        let models = self.models();
        let one = |id: &str| {
            let req = RecommendRequest {
                relationship_id: id.to_string(),
                ..template.clone()
            };
            self.recommend_with(&models, &req)
        };
        if skip_unknown {
            super::known(ids, one)
        } else {
            Ok((
                ids.iter().map(|id| one(id)).collect::<Result<_>>()?,
                Vec::new(),
            ))
        }
    }

    /// # Errors
    /// As [`Engine::recommend`].
    pub(crate) fn recommend_with(
        &self,
        models: &ModelRouter,
        req: &RecommendRequest,
    ) -> Result<RecommendOutput> {
        check(req)?;
        let e = self.evaluate(
            models,
            &req.relationship_id,
            req.as_of,
            Contributions::Skipped,
        )?;
        Ok(self.recommend_of(&e, req))
    }

    /// Next best actions of an evaluated relationship for a checked request.
    pub(in crate::engine) fn recommend_of(
        &self,
        e: &Evaluated,
        req: &RecommendRequest,
    ) -> RecommendOutput {
        let policy = self.policy();
        let allowed = |t: ActionType| !req.exclude_types.contains(&t);
        let wanted = if req.max_actions == 0 {
            5
        } else {
            req.max_actions as usize
        };
        let mut actions = Vec::new();
        let mut declined = Vec::new();
        match e.data.relationship.kind {
            RelationshipKind::Customer => {
                self.buyer_actions(e, policy, req, wanted, &mut actions, &mut declined)
            }
            RelationshipKind::Account => {
                self.buyer_actions(e, policy, req, wanted, &mut actions, &mut declined);
                account::propose(e, policy, &allowed, &mut actions, &mut declined)
            }
            RelationshipKind::Supplier => {
                supplier::propose(e, policy, &allowed, &mut actions, &mut declined)
            }
            RelationshipKind::Partner => {
                partner::propose(e, policy, &allowed, &mut actions, &mut declined)
            }
        }
        actions.retain(|a| a.expected_net_value > 0.0);
        actions.sort_by(|a, b| {
            b.expected_net_value
                .total_cmp(&a.expected_net_value)
                .then(a.kind.cmp(&b.kind))
                .then(a.product_id.cmp(&b.product_id))
        });
        actions.truncate(wanted);
        if actions.is_empty() {
            let why = if declined.is_empty() {
                "no action has a positive expected net value".to_string()
            } else {
                declined.join("; ")
            };
            actions.push(Action {
                kind: ActionType::NoAction,
                product_id: None,
                expected_net_value: 0.0,
                probability: 1.0 - e.churn,
                cost: 0.0,
                reason: format!("Nothing pays for this relationship: {why}."),
            });
        }
        RecommendOutput {
            relationship_id: e.data.relationship.id.clone(),
            actions,
            model_version: e.model.version(),
            as_of: e.as_of,
        }
    }

    /// What a buyer (customer or account) can be offered: retention or
    /// win-back by life-cycle stage, then sales and loyalty while reachable.
    fn buyer_actions(
        &self,
        e: &Evaluated,
        policy: &Policy,
        req: &RecommendRequest,
        wanted: usize,
        actions: &mut Vec<Action>,
        declined: &mut Vec<String>,
    ) {
        let excluded: BTreeSet<&str> = req.exclude_products.iter().map(String::as_str).collect();
        let allowed = |t: ActionType| !req.exclude_types.contains(&t);
        let stage = self.stage(e);
        if allowed(ActionType::Retain)
            && stage != LifecycleStage::Lapsed
            && stage != LifecycleStage::Prospect
        {
            retention::propose(e, policy, actions, declined);
        }
        if allowed(ActionType::WinBack) && stage == LifecycleStage::Lapsed {
            win_back::propose(e, policy, actions, declined);
        }
        // A lapsed relationship is won back before anything is sold to it.
        let reachable = stage != LifecycleStage::Lapsed;
        if reachable && allowed(ActionType::CrossSell) {
            cross_sell::propose(e, policy, &excluded, wanted, actions);
        }
        if reachable && allowed(ActionType::UpSell) {
            up_sell::propose(e, policy, &excluded, actions);
        }
        if reachable && allowed(ActionType::Loyalty) {
            loyalty::propose(e, policy, self.value_tier(e), actions, declined);
        }
    }
}

/// # Errors
/// `InvalidArgument` for too many actions, a bad product id or excluding NO_ACTION.
fn check(req: &RecommendRequest) -> Result<()> {
    if req.max_actions > MAX_ACTIONS {
        return Err(Error::invalid(
            "max_actions",
            format!("{} is more than {MAX_ACTIONS}", req.max_actions),
        ));
    }
    for (i, p) in req.exclude_products.iter().enumerate() {
        validate_id(&format!("exclude_product_ids[{i}]"), p)?;
    }
    if req.exclude_types.contains(&ActionType::NoAction) {
        return Err(Error::invalid(
            "exclude_action_types",
            "NO_ACTION cannot be excluded: it is the answer when nothing pays",
        ));
    }
    Ok(())
}
