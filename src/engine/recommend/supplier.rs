//! Supplier actions: what purchasing does about a supplier, valued with the
//! `[supplier]` economics of the policy. A supplier is bought from, never
//! sold to, so nothing here is an offer.
//!
//! - qualify a second source: a single-sourced strategic or bottleneck
//!   category whose supplier's failures are rising
//! - supplier development (joint planning): a strategic supplier whose
//!   failures are rising
//! - renegotiate: a leverage supplier whose prices rise
//! - consolidate: a small supplier in a category with many small ones

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;
use crate::engine::supplier::SupplierView;
use crate::model::Kraljic;
use crate::numbers::fmt_num;

use super::{Action, ActionType, Proposals};

pub(super) fn propose(
    e: &Evaluated,
    p: &Policy,
    allowed: &dyn Fn(ActionType) -> bool,
    out: &mut Vec<Action>,
    declined: &mut Vec<String>,
) {
    let Some(v) = SupplierView::of(e, 0) else {
        return;
    };
    let sp = &p.supplier;
    let spend = v.facts.annual_spend();
    if spend <= 0.0 {
        declined.push(
            "a supplier is bought from, not sold to, and with no spend in the last 365 days no sourcing action can be valued".to_string(),
        );
        return;
    }
    let horizon_spend = spend * f64::from(v.horizon_days) / 365.0;
    let mut proposals = Proposals {
        allowed,
        out,
        declined,
    };
    if let (Some(risk), Some(class), Some(dep)) = (v.supply_risk, v.kraljic, &v.dependency) {
        let at_stake = risk * horizon_spend * sp.disruption_cost_share;
        let class_name = class.name();
        if dep.single_sourced
            && matches!(class, Kraljic::Strategic | Kraljic::Bottleneck)
            && v.risk_rising
        {
            proposals.offer(
                    ActionType::QualifySecondSource,
                    at_stake * sp.second_source_risk_reduction,
                    sp.second_source_cost,
                    risk,
                    format!(
                        "{} is single-sourced from this {class_name} supplier, whose failures are rising ({} of {} deliveries in 90 days, supply risk {:.0}% within {} days, on {} of spend)",
                        dep.category,
                        v.facts.recent_failures,
                        v.facts.recent_deliveries,
                        risk * 100.0,
                        v.horizon_days,
                        fmt_num(horizon_spend)
                    ),
                );
        }
        if class == Kraljic::Strategic && v.risk_rising {
            proposals.offer(
                    ActionType::SupplierDevelopment,
                    at_stake * sp.development_risk_reduction,
                    sp.development_cost,
                    risk,
                    format!(
                        "A strategic supplier ({:.0}% of our {} spend) whose failures are rising (supply risk {:.0}% within {} days): joint planning to bring them down",
                        dep.share * 100.0,
                        dep.category,
                        risk * 100.0,
                        v.horizon_days
                    ),
                );
        }
        match v.facts.price_trend {
            Some(trend) if class == Kraljic::Leverage && trend > sp.min_price_rise => {
                proposals.offer(
                        ActionType::Renegotiate,
                        spend * trend / (1.0 + trend) * sp.renegotiation_recovery,
                        sp.renegotiation_cost,
                        sp.renegotiation_recovery,
                        format!(
                            "A leverage supplier ({:.0}% of our {} spend, supply risk {:.0}%) whose unit prices rose {:.1}% against the half year before, on {} a year",
                            dep.share * 100.0,
                            dep.category,
                            risk * 100.0,
                            trend * 100.0,
                            fmt_num(spend)
                        ),
                    );
            }
            _ => {}
        }
    }
    if let (Some(dep), Some(model)) = (&v.dependency, e.model.bundle.supply.as_ref()) {
        let small = model.small_suppliers(&dep.category, sp.small_supplier_share);
        if dep.share < sp.small_supplier_share && small >= sp.min_small_suppliers as usize {
            proposals.offer(
                ActionType::Consolidate,
                spend * sp.consolidation_saving,
                sp.consolidation_cost,
                1.0,
                format!(
                    "{} small suppliers each hold under {:.0}% of our {} spend, this one {:.1}% ({} a year): moving it to a larger supplier",
                    small,
                    sp.small_supplier_share * 100.0,
                    dep.category,
                    dep.share * 100.0,
                    fmt_num(spend)
                ),
            );
        }
    }
    if let Some(why) = v.unknown_because() {
        proposals.declined.push(format!(
            "supply risk is unknown ({why}), so no risk or Kraljic action is valued"
        ));
    }
    if proposals.out.is_empty() && proposals.declined.is_empty() {
        proposals.declined.push(format!(
            "no sourcing action applies to this {} supplier (supply risk {}, failures {})",
            v.kraljic.map_or("unrated", Kraljic::name),
            v.supply_risk
                .map_or("unknown".to_string(), |r| format!("{:.0}%", r * 100.0)),
            if v.risk_rising {
                "rising"
            } else {
                "not rising"
            }
        ));
    }
}
