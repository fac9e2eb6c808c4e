//! Segment: RFM scores and segment name, value tier, learned cluster with its
//! persona, and life-cycle stage.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::features::BaseFeature;
use crate::model::segments::PROSPECT;
use crate::model::{rfm_segment, ChurnTarget, Kraljic};
use crate::time::{days_between, Timestamp};

use super::evaluate::{Contributions, Evaluated};
use super::partner::PartnerView;
use super::supplier::SupplierView;
use super::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStage {
    Prospect,
    New,
    Active,
    AtRisk,
    Lapsed,
    WonBack,
}

/// A supplier's Kraljic class: spend share against `share_edge`, supply
/// risk against `risk_edge` (the medians of the model's book).
#[derive(Debug, Clone, PartialEq)]
pub struct KraljicOutput {
    pub class: &'static str,
    pub spend_share: Option<f64>,
    pub supply_risk: Option<f64>,
    /// `NaN` without a supply model.
    pub share_edge: f64,
    pub risk_edge: f64,
}

/// A partner's tier by expected sourced value (edges of the model's book).
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerTierOutput {
    /// "Platinum" .. "Dormant", or "Unrated" while lapse risk is unknown.
    pub name: &'static str,
    /// 1 (Platinum) to 5 (Dormant); 0 for Unrated.
    pub rank: u32,
    pub sourced_value: Option<f64>,
    pub edges: Vec<f64>,
}

impl LifecycleStage {
    pub const ALL: [LifecycleStage; 6] = [
        LifecycleStage::Prospect,
        LifecycleStage::New,
        LifecycleStage::Active,
        LifecycleStage::AtRisk,
        LifecycleStage::Lapsed,
        LifecycleStage::WonBack,
    ];

    /// The stage's name in files and summaries: `prospect`, `at_risk`, ...
    pub fn name(self) -> &'static str {
        match self {
            LifecycleStage::Prospect => "prospect",
            LifecycleStage::New => "new",
            LifecycleStage::Active => "active",
            LifecycleStage::AtRisk => "at_risk",
            LifecycleStage::Lapsed => "lapsed",
            LifecycleStage::WonBack => "won_back",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentOutput {
    pub relationship_id: String,
    pub rfm: (u32, u32, u32),
    pub rfm_segment: String,
    pub value_tier: String,
    pub value_tier_rank: u32,
    /// `None` without a value model.
    pub expected_profit: Option<f64>,
    pub cluster: u32,
    pub persona: String,
    pub cluster_size: u64,
    pub stage: LifecycleStage,
    /// For a supplier: its Kraljic class with the values and edges behind it.
    pub kraljic: Option<KraljicOutput>,
    /// For a partner: its tier by expected sourced value.
    pub partner_tier: Option<PartnerTierOutput>,
    pub model_version: u64,
    pub as_of: Timestamp,
}

impl Engine {
    /// # Errors
    /// As [`Engine::score`]; `FailedPrecondition` when the model has no segments.
    pub fn segment(&self, id: &str, as_of: Option<Timestamp>) -> Result<SegmentOutput> {
        let models = self.models();
        if as_of.is_some() {
            let e = self.evaluate(&models, id, as_of, Contributions::Skipped)?;
            return self.segment_of(&e);
        }
        let segment = self.answer_now(
            &models,
            id,
            Contributions::Skipped,
            |a| a.segment.clone(),
            |e| self.segment_of(e),
            |a, s| a.segment = Some(s),
        )?;
        Ok(Arc::unwrap_or_clone(segment))
    }

    /// The segments of an evaluated relationship.
    ///
    /// # Errors
    /// `FailedPrecondition` when its model has no segments.
    pub(super) fn segment_of(&self, e: &Evaluated) -> Result<SegmentOutput> {
        let model = e.model;
        let segments = model
            .bundle
            .segments
            .as_ref()
            .ok_or_else(|| Error::precondition("the active model has no segment model"))?;
        let s = &e.snapshot;
        let (rfm, rfm_name) = if s.has_purchased() {
            let rfm = segments.rfm.score(
                s.get(BaseFeature::RecencyDays),
                s.get(BaseFeature::Frequency),
                s.get(BaseFeature::SpendTotal),
            );
            (rfm, rfm_segment(rfm.0, rfm.1))
        } else {
            ((0, 0, 0), PROSPECT)
        };
        let profit = self.expected_profit(e);
        let (tier, rank) = self.value_tier(e);
        let mut z: Vec<f64> = segments.columns.iter().map(|c| e.scaled[*c]).collect();
        segments.scaler.apply(&mut z);
        let cluster = segments.nearest(&z);
        let profile = &segments.clusters[cluster];
        Ok(SegmentOutput {
            relationship_id: e.data.relationship.id.clone(),
            rfm,
            rfm_segment: rfm_name.to_string(),
            value_tier: tier.to_string(),
            value_tier_rank: rank,
            expected_profit: profit,
            cluster: cluster as u32,
            persona: profile.persona.clone(),
            cluster_size: profile.size,
            stage: self.stage(e),
            kraljic: SupplierView::of(e, 0).map(|v| KraljicOutput {
                class: v.kraljic.map_or("unrated", Kraljic::name),
                spend_share: v.dependency.as_ref().map(|d| d.share),
                supply_risk: v.supply_risk,
                share_edge: v.share_edge.unwrap_or(f64::NAN),
                risk_edge: v.risk_edge.unwrap_or(f64::NAN),
            }),
            partner_tier: PartnerView::of(e, 0).map(|v| PartnerTierOutput {
                name: v.tier.map_or("Unrated", |t| t.name()),
                rank: v.tier.map_or(0, |t| t.rank()),
                sourced_value: v.sourced_value,
                edges: v.tier_edges,
            }),
            model_version: model.version(),
            as_of: e.as_of,
        })
    }

    /// Margin over the value horizon after the cost to serve; `None`
    /// without a value model.
    pub(super) fn expected_profit(&self, e: &Evaluated) -> Option<f64> {
        let p = self.policy();
        let value = e.model.bundle.value.as_ref()?;
        let years = f64::from(value.horizon_days) / 365.0;
        Some(e.value_or_zero() * p.margin - p.cost_to_serve_per_year * years)
    }

    /// The value tier and its rank (1 most valuable), from expected profit:
    /// Unprofitable at or below zero; above, the edges between Bronze,
    /// Silver, Gold and Platinum are the 50th, 80th and 95th percentiles of
    /// expected profit among the training relationships that are profitable
    /// under the current policy. Profit rises with expected value, so the
    /// tiers follow it exactly. A relationship that has not bought is a
    /// "Prospect" (rank 0: not ranked), whatever its expected value.
    pub(super) fn value_tier(&self, e: &Evaluated) -> (&'static str, u32) {
        if !e.snapshot.has_purchased() {
            return (PROSPECT, 0);
        }
        let Some(profit) = self.expected_profit(e) else {
            return ("Unrated", 0);
        };
        if profit <= 0.0 {
            return ("Unprofitable", 5);
        }
        let p = self.policy();
        let years = e
            .model
            .bundle
            .value
            .as_ref()
            .map_or(1.0, |v| f64::from(v.horizon_days) / 365.0);
        let breakeven = p.cost_to_serve_per_year * years / p.margin;
        let edges = profitable_quantiles(
            &e.model.bundle.value_quantiles,
            breakeven,
            &[0.5, 0.8, 0.95],
        );
        match edges
            .iter()
            .filter(|edge| e.value_or_zero() > **edge)
            .count()
        {
            3 => ("Platinum", 1),
            2 => ("Gold", 2),
            1 => ("Silver", 3),
            _ => ("Bronze", 4),
        }
    }

    /// The life-cycle stage. Lapsed is churned, as the model defines it (so
    /// the stage and the churn curve never disagree); won back is active again
    /// after a silence that long, for `new_days`; new is a first purchase
    /// within `new_days`; at risk is a churn probability from `at_risk_churn`.
    pub(super) fn stage(&self, e: &Evaluated) -> LifecycleStage {
        let l = &self.policy().lifecycle;
        let a = &e.data.aggregates;
        let Some(first) = a.first_purchase.filter(|t| *t <= e.as_of) else {
            return LifecycleStage::Prospect;
        };
        if e.churned {
            return LifecycleStage::Lapsed;
        }
        let new_days = f64::from(l.new_days);
        let came_back = match e.model.bundle.churn.target {
            ChurnTarget::Survival {
                inactivity_days, ..
            } => a.occasions >= 2 && a.last_gap_days >= f64::from(inactivity_days),
            ChurnTarget::Label => false,
        };
        if came_back && e.silent_days <= new_days {
            LifecycleStage::WonBack
        } else if days_between(first, e.as_of) <= new_days {
            LifecycleStage::New
        } else if e.churn >= l.at_risk_churn {
            LifecycleStage::AtRisk
        } else {
            LifecycleStage::Active
        }
    }
}

/// The `qs` quantiles of the values above `floor` in a distribution given by
/// its quantiles at every half percent (linear between them).
fn profitable_quantiles(quantiles: &[f64], floor: f64, qs: &[f64]) -> Vec<f64> {
    let n = quantiles.len();
    if n < 2 {
        return vec![f64::INFINITY; qs.len()];
    }
    // The share of the distribution at or below the floor.
    let at = |position: f64| {
        let lo = (position.floor() as usize).min(n - 1);
        let hi = (lo + 1).min(n - 1);
        quantiles[lo] + (quantiles[hi] - quantiles[lo]) * (position - lo as f64)
    };
    let i = quantiles.partition_point(|v| *v <= floor);
    let start = if i == 0 {
        0.0
    } else if i >= n {
        return vec![f64::INFINITY; qs.len()];
    } else {
        let (a, b) = (quantiles[i - 1], quantiles[i]);
        (i - 1) as f64 + if b > a { (floor - a) / (b - a) } else { 1.0 }
    };
    let last = (n - 1) as f64;
    qs.iter().map(|q| at(start + q * (last - start))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_edges_are_quantiles_of_the_profitable_part() {
        let uniform: Vec<f64> = (0..=200).map(f64::from).collect();
        let edges = profitable_quantiles(&uniform, 100.0, &[0.5, 0.8, 0.95]);
        assert!((edges[0] - 150.0).abs() < 1e-9, "{edges:?}");
        assert!((edges[1] - 180.0).abs() < 1e-9);
        assert!((edges[2] - 195.0).abs() < 1e-9);
        let all = profitable_quantiles(&uniform, -5.0, &[0.5]);
        assert!((all[0] - 100.0).abs() < 1e-9);
        assert_eq!(
            profitable_quantiles(&uniform, 500.0, &[0.5]),
            vec![f64::INFINITY]
        );
        assert_eq!(profitable_quantiles(&[], 0.0, &[0.5]), vec![f64::INFINITY]);
    }
}
