//! Segment: RFM scores and segment name, value tier, learned cluster with its
//! persona, and life-cycle stage.

use crate::error::{Error, Result};
use crate::features::BaseFeature;
use crate::model::rfm_segment;
use crate::time::{Timestamp, SECONDS_PER_DAY};

use super::evaluate::Evaluated;
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
    pub expected_profit: f64,
    pub cluster: u32,
    pub persona: String,
    pub cluster_size: u64,
    pub stage: LifecycleStage,
    pub model_version: u64,
    pub as_of: Timestamp,
}

impl Engine {
    /// # Errors
    /// As [`Engine::score`]; `FailedPrecondition` when the model has no segments.
    pub fn segment(&self, id: &str, as_of: Option<Timestamp>) -> Result<SegmentOutput> {
        let models = self.models();
        let e = self.evaluate(&models, id, as_of)?;
        self.segment_of(&e)
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
        let rfm = segments.rfm.score(
            s.get(BaseFeature::RecencyDays),
            s.get(BaseFeature::Frequency),
            s.get(BaseFeature::SpendTotal),
        );
        let rfm_name = if s.get(BaseFeature::Frequency) == 0.0 {
            "No purchase yet"
        } else {
            rfm_segment(rfm.0, rfm.1, rfm.2)
        };
        let profit = self.expected_profit(e);
        let (tier, rank) = segments.value_tier(e.value, profit > 0.0);
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
            model_version: model.version(),
            as_of: e.as_of,
        })
    }

    /// Margin over the value horizon after the cost to serve.
    pub(super) fn expected_profit(&self, e: &Evaluated) -> f64 {
        let p = &self.policy();
        let years = f64::from(
            e.model
                .bundle
                .value
                .as_ref()
                .map_or(365, |v| v.horizon_days),
        ) / 365.0;
        e.value * p.margin - p.cost_to_serve_per_year * years
    }

    pub(super) fn stage(&self, e: &Evaluated) -> LifecycleStage {
        let l = &self.policy().lifecycle;
        let a = &e.data.aggregates;
        let Some(first) = a.first_purchase.filter(|t| *t <= e.as_of) else {
            return LifecycleStage::Prospect;
        };
        let recency = e.snapshot.get(BaseFeature::RecencyDays);
        let since_first = (e.as_of - first) as f64 / SECONDS_PER_DAY as f64;
        if recency > f64::from(l.lapsed_days) {
            LifecycleStage::Lapsed
        } else if a.occasions >= 2 && a.last_gap_days > f64::from(l.lapsed_days) {
            LifecycleStage::WonBack
        } else if since_first <= f64::from(l.new_days) {
            LifecycleStage::New
        } else if e.churn >= l.at_risk_churn {
            LifecycleStage::AtRisk
        } else {
            LifecycleStage::Active
        }
    }
}
