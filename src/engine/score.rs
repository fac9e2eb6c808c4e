//! Score: how likely a relationship is to end within the horizon and when,
//! what it is worth, how much of that is at risk, and why.

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::features::{BaseFeature, Column};
use crate::model::{expected_days_to_churn, ModelRouter};
use crate::numbers::{capitalize, fmt_num};
use crate::time::Timestamp;

use super::evaluate::Evaluated;
use super::{check_batch_size, Engine, MAX_REASONS};

#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub feature: String,
    pub value: f64,
    pub contribution: f64,
    pub raises_churn: bool,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    pub relationship_id: String,
    pub churn_probability: f64,
    pub churn_horizon_days: u32,
    pub churn_by_horizon: Vec<(u32, f64)>,
    pub expected_days_to_churn: f64,
    pub expected_value: f64,
    pub value_horizon_days: u32,
    pub value_at_risk: f64,
    pub health_score: u32,
    pub reasons: Vec<Reason>,
    pub model_version: u64,
    pub as_of: Timestamp,
}

impl Engine {
    /// # Errors
    /// `NotFound` for an unknown id, `InvalidArgument` for a bad as-of time or
    /// reason count, `FailedPrecondition` without a model.
    pub fn score(
        &self,
        id: &str,
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<ScoreOutput> {
        let models = self.models();
        self.score_with(&models, id, as_of, max_reasons)
    }

    /// Scores many ids with one set of models (so a swap mid-batch cannot mix versions).
    ///
    /// # Errors
    /// As [`Engine::score`]; the first unknown id fails the batch.
    pub fn score_many(
        &self,
        ids: &[String],
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<Vec<ScoreOutput>> {
        check_batch_size("relationship_ids", ids.len())?;
        let models = self.models();
        ids.iter()
            .map(|id| self.score_with(&models, id, as_of, max_reasons))
            .collect()
    }

    /// [`Engine::score_many`] that leaves out unknown ids and returns them,
    /// in request order, beside the scores of the others.
    ///
    /// # Errors
    /// As [`Engine::score`], except `NotFound`.
    pub fn score_many_known(
        &self,
        ids: &[String],
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<(Vec<ScoreOutput>, Vec<String>)> {
        check_batch_size("relationship_ids", ids.len())?;
        let models = self.models();
        super::known(ids, |id| self.score_with(&models, id, as_of, max_reasons))
    }

    fn score_with(
        &self,
        models: &ModelRouter,
        id: &str,
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<ScoreOutput> {
        if max_reasons > MAX_REASONS {
            return Err(Error::invalid(
                "max_reasons",
                format!("{max_reasons} is more than {MAX_REASONS}"),
            ));
        }
        let e = self.evaluate(models, id, as_of)?;
        Ok(Self::score_of(
            &e,
            if max_reasons == 0 { 3 } else { max_reasons } as usize,
        ))
    }

    /// The score of an evaluated relationship with `reasons` reasons (none for 0).
    pub(super) fn score_of(e: &Evaluated, reasons: usize) -> ScoreOutput {
        let model = e.model;
        let churn = &model.bundle.churn;
        let curve = churn.timing_curve(&e.churn_z);
        let reasons = if reasons == 0 {
            Vec::new()
        } else {
            Self::reasons(e, reasons)
        };
        ScoreOutput {
            relationship_id: e.data.relationship.id.clone(),
            churn_probability: e.churn,
            churn_horizon_days: churn.horizon_days,
            expected_days_to_churn: expected_days_to_churn(&curve),
            churn_by_horizon: curve,
            expected_value: e.value,
            value_horizon_days: model.bundle.value.as_ref().map_or(0, |v| v.horizon_days),
            value_at_risk: e.churn * e.value,
            health_score: health_score(e.churn),
            reasons,
            model_version: model.version(),
            as_of: e.as_of,
        }
    }

    fn reasons(e: &Evaluated, n: usize) -> Vec<Reason> {
        let model = e.model;
        let bundle = &model.bundle;
        let churn = &bundle.churn;
        // Sized up front: a filtered collect grows from nothing, and those
        // reallocations were a tenth of a score.
        let mut scored: Vec<(usize, f64)> = Vec::with_capacity(e.contributions.len());
        scored.extend(
            e.contributions
                .iter()
                .copied()
                .enumerate()
                .filter(|&(i, c)| {
                    c != 0.0
                        && match &bundle.schema.columns[i] {
                            // A one-hot speaks for the relationship only where it is set.
                            Column::Kind(_)
                            | Column::Category { .. }
                            | Column::OtherCategory { .. }
                            | Column::Missing { .. } => e.raw[i] == 1.0,
                            _ => true,
                        }
                }),
        );
        let by_size = |a: &(usize, f64), b: &(usize, f64)| b.1.abs().total_cmp(&a.1.abs());
        if scored.len() > n && n > 0 {
            scored.select_nth_unstable_by(n - 1, by_size);
            scored.truncate(n);
        }
        scored.sort_by(by_size);
        scored.truncate(n);
        scored
            .into_iter()
            .map(|(i, contribution)| {
                let column = &bundle.schema.columns[i];
                let raises = contribution > 0.0;
                let effect = if raises { "raises" } else { "lowers" };
                let value = e.raw[i];
                let mut explanation = String::with_capacity(112);
                // Writing to a String cannot fail.
                let _ = match column {
                    Column::Base { feature, .. } => {
                        let typical = typical_raw(column, churn.scaler.mean[i]);
                        let side = if value > typical { "above" } else { "below" };
                        write!(
                            explanation,
                            "{} is {} ({side} the typical {}), which {effect} the churn risk",
                            capitalize(feature.describe()),
                            fmt_num(value),
                            fmt_num(typical)
                        )
                    }
                    Column::Numeric { attribute, .. } => write!(
                        explanation,
                        "{attribute} is {} (typical {}), which {effect} the churn risk",
                        fmt_num(value),
                        fmt_num(churn.scaler.mean[i])
                    ),
                    Column::Kind(k) => write!(
                        explanation,
                        "Being a {} {effect} the churn risk",
                        k.as_str()
                    ),
                    Column::Category { attribute, value } => write!(
                        explanation,
                        "{attribute} is {value:?}, which {effect} the churn risk"
                    ),
                    Column::OtherCategory { attribute } => write!(
                        explanation,
                        "{attribute} has an uncommon value, which {effect} the churn risk"
                    ),
                    Column::Missing { attribute } => write!(
                        explanation,
                        "{attribute} is unknown, which {effect} the churn risk"
                    ),
                };
                Reason {
                    feature: model.column_names[i].clone(),
                    value,
                    contribution,
                    raises_churn: raises,
                    explanation,
                }
            })
            .collect()
    }
}

/// 0–100, higher is healthier: the probability of staying, in percent.
pub fn health_score(churn: f64) -> u32 {
    ((1.0 - churn) * 100.0).round().clamp(0.0, 100.0) as u32
}

/// The raw value whose model-scale value is the training mean: a typical value.
fn typical_raw(column: &Column, model_scale_mean: f64) -> f64 {
    match column {
        Column::Base { feature, .. }
            if !matches!(
                feature,
                BaseFeature::SpendTrend | BaseFeature::SurveyAvg | BaseFeature::HasSurvey
            ) =>
        {
            model_scale_mean.signum() * model_scale_mean.abs().exp_m1()
        }
        _ => model_scale_mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_the_staying_probability() {
        assert_eq!(health_score(0.0), 100);
        assert_eq!(health_score(0.234), 77);
        assert_eq!(health_score(1.0), 0);
    }
}
