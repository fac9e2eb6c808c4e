//! Campaign plans over the book: the relationships a filter matches (from
//! the score index), less those that opted out, each with the actions
//! Recommend proposes for it, planned within a budget and a contact cap by
//! [`super::plan`].

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::validate_timestamp;
use crate::engine::{Action, ActionType, RecommendRequest, MAX_ACTIONS};
use crate::error::{Error, Result};
use crate::numbers::fmt_num;
use crate::time::{now, Timestamp};

use super::plan::{self, Choice, Limits, Method};
use super::row::{Attr, Row};
use super::{parallel, Book, Filter};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CampaignRequest {
    /// `None`: no budget.
    pub budget: Option<f64>,
    /// `None`: no cap.
    pub max_contacts: Option<u64>,
    /// Empty: every type.
    pub action_types: Vec<ActionType>,
    pub opt_out_attribute: Option<String>,
    pub filter: Filter,
    pub as_of: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow {
    pub relationship_id: String,
    pub action: Action,
    pub plan_reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanTotals {
    pub contacts: u64,
    pub cost: f64,
    pub expected_net_value: f64,
    pub upper_bound: f64,
    pub greedy_net_value: f64,
    pub considered: u64,
    pub opted_out: u64,
    pub without_paying_action: u64,
    pub contacts_by_action: BTreeMap<ActionType, u64>,
    pub model_version: u64,
    pub as_of: Timestamp,
    /// Whether the simple greedy plan was the better one.
    pub greedy_won: bool,
}

impl PlanTotals {
    pub fn expected_gross_value(&self) -> f64 {
        self.expected_net_value + self.cost
    }

    pub fn return_on_cost(&self) -> f64 {
        if self.cost > 0.0 {
            self.expected_net_value / self.cost
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanOutput {
    /// Highest net value first, then id.
    pub rows: Vec<PlannedRow>,
    pub totals: PlanTotals,
}

/// An opt-out attribute set to anything but false, no, 0 or empty text (or
/// the number 0) opts out: a value the planner cannot read keeps the
/// relationship out rather than in.
fn opts_out(value: &Attr) -> bool {
    match value {
        Attr::Number(n) => *n != 0.0,
        Attr::Text(t) => !matches!(
            t.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "no" | "0" | "n" | "off"
        ),
    }
}

/// An action the plan may take: a real one that pays.
fn pays(action: &Action) -> bool {
    action.kind != ActionType::NoAction && action.expected_net_value > 0.0
}

impl Book {
    /// Plans a campaign.
    ///
    /// # Errors
    /// `InvalidArgument` for a negative or non-finite budget, a bad filter,
    /// NO_ACTION among the types or a bad as-of time; `FailedPrecondition`
    /// before the first index; as Recommend.
    pub fn plan(&self, request: &CampaignRequest) -> Result<PlanOutput> {
        if let Some(b) = request.budget {
            crate::domain::validate_number("budget", b, 0.0, f64::MAX)?;
        }
        if request.action_types.contains(&ActionType::NoAction) {
            return Err(Error::invalid(
                "action_types",
                "NO_ACTION is what a relationship left out of the plan gets; it is not planned",
            ));
        }
        request.filter.validate()?;
        let as_of = match request.as_of {
            Some(t) => {
                validate_timestamp("as_of", t, now())?;
                t
            }
            None => now(),
        };
        let inner = &self.inner;
        let table = inner.current()?;
        let compiled = request.filter.compile(&inner.interner);
        let mut scope: Vec<Arc<Row>> = table
            .read()
            .iter()
            .filter(|r| compiled.matches(r))
            .cloned()
            .collect();
        scope.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let considered = scope.len() as u64;
        if let Some(name) = &request.opt_out_attribute {
            scope.retain(|r| !r.attribute(name).is_some_and(opts_out));
        }
        let opted_out = considered - scope.len() as u64;
        let allowed: &[ActionType] = if request.action_types.is_empty() {
            &ActionType::ACTIONS
        } else {
            &request.action_types
        };
        let template = RecommendRequest {
            relationship_id: String::new(),
            as_of: Some(as_of),
            max_actions: MAX_ACTIONS,
            exclude_products: Vec::new(),
            exclude_types: ActionType::ACTIONS
                .into_iter()
                .filter(|t| !allowed.contains(t))
                .collect(),
        };
        let engine = &inner.engine;
        let models = engine.models();
        let recommend = |id: &str| {
            engine.recommend_with(
                &models,
                &RecommendRequest {
                    relationship_id: id.to_string(),
                    ..template.clone()
                },
            )
        };
        let paying = |actions: &[Action]| -> Vec<Choice> {
            actions
                .iter()
                .filter(|a| pays(a))
                .map(|a| Choice {
                    net: a.expected_net_value,
                    cost: a.cost,
                })
                .collect()
        };
        let answers = parallel(&scope, |row| match recommend(&row.id) {
            Ok(out) => Ok(Some((Arc::clone(&row.id), paying(&out.actions)))),
            // Erased since the index was read.
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        });
        drop(scope);
        let mut ids: Vec<Arc<str>> = Vec::with_capacity(answers.len());
        let mut classes: Vec<Vec<Choice>> = Vec::with_capacity(answers.len());
        for answer in answers {
            if let Some((id, choices)) = answer? {
                ids.push(id);
                classes.push(choices);
            }
        }
        let without_paying_action = classes.iter().filter(|c| c.is_empty()).count() as u64;
        let solution = plan::plan(
            &classes,
            Limits {
                budget: request.budget,
                contacts: request.max_contacts,
            },
        );
        let mut planned: Vec<(usize, usize)> = solution
            .chosen
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|j| (i, j)))
            .collect();
        planned.sort_by(|&(ia, ja), &(ib, jb)| {
            plan::by_net((classes[ia][ja].net, ia), (classes[ib][jb].net, ib))
        });
        // Reason texts only for the planned: the same call gives the same actions.
        let rows: Vec<Result<PlannedRow>> = parallel(&planned, |&(i, j)| {
            let out = recommend(&ids[i])?;
            let paying: Vec<&Action> = out.actions.iter().filter(|a| pays(a)).collect();
            let action = paying.get(j).copied().cloned().ok_or_else(|| {
                Error::precondition("the book changed while the campaign was planned: plan again")
            })?;
            Ok(PlannedRow {
                relationship_id: ids[i].to_string(),
                plan_reason: plan_reason(&action, &paying),
                action,
            })
        });
        let rows = rows.into_iter().collect::<Result<Vec<_>>>()?;
        let mut contacts_by_action = BTreeMap::new();
        for row in &rows {
            *contacts_by_action.entry(row.action.kind).or_insert(0) += 1;
        }
        Ok(PlanOutput {
            totals: PlanTotals {
                contacts: solution.contacts,
                cost: solution.cost,
                expected_net_value: solution.net,
                upper_bound: solution.upper_bound,
                greedy_net_value: solution.greedy_net,
                considered,
                opted_out,
                without_paying_action,
                contacts_by_action,
                model_version: models
                    .in_slot(crate::domain::ModelSlot::Default)
                    .map_or(0, |m| m.version()),
                as_of,
                greedy_won: solution.method == Method::Greedy,
            },
            rows,
        })
    }
}

fn plan_reason(action: &Action, paying: &[&Action]) -> String {
    let ratio = if action.cost > 0.0 {
        format!(
            "{} per unit of cost",
            fmt_num(action.expected_net_value / action.cost)
        )
    } else {
        "at no cost".to_string()
    };
    let mut reason = format!(
        "Planned: an expected net value of {} for a cost of {} ({ratio})",
        fmt_num(action.expected_net_value),
        fmt_num(action.cost)
    );
    match paying.first() {
        Some(best)
            if !std::ptr::eq(*best, action)
                && best.expected_net_value > action.expected_net_value =>
        {
            reason.push_str(&format!(
                "; its best action ({} worth {} for {}) did not fit the budget as well",
                action_name(best.kind),
                fmt_num(best.expected_net_value),
                fmt_num(best.cost)
            ));
        }
        _ if paying.len() > 1 => reason.push_str(&format!(
            "; the best of {} actions that pay for it",
            paying.len()
        )),
        _ => {}
    }
    reason
}

pub fn action_name(kind: ActionType) -> &'static str {
    match kind {
        ActionType::Retain => "retain",
        ActionType::CrossSell => "cross-sell",
        ActionType::UpSell => "up-sell",
        ActionType::WinBack => "win-back",
        ActionType::Loyalty => "loyalty",
        ActionType::NoAction => "no action",
        ActionType::QualifySecondSource => "qualify a second source",
        ActionType::Renegotiate => "renegotiate",
        ActionType::Consolidate => "consolidate",
        ActionType::SupplierDevelopment => "supplier development",
        ActionType::PaymentTermsReview => "payment-terms review",
        ActionType::PartnerEnablement => "partner enablement",
        ActionType::PartnerIncentive => "partner incentive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opt_out_attribute_opts_out_unless_it_says_no() {
        let text = |t: &str| Attr::Text(Arc::from(t));
        assert!(opts_out(&text("yes")));
        assert!(
            opts_out(&text("2024-03-01")),
            "a value it cannot read keeps them out"
        );
        assert!(opts_out(&Attr::Number(1.0)));
        for no in ["", "false", "No", " 0 ", "off"] {
            assert!(!opts_out(&text(no)), "{no:?}");
        }
        assert!(!opts_out(&Attr::Number(0.0)));
    }
}
