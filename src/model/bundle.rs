//! The bundle one training run produces and the registry stores: the feature
//! schema, the churn model with its timing curve, the value model, the
//! segments and basket rules, with holdout metrics and what the report needs.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::FeatureSchema;
use crate::model::churn::FORMAT;
use crate::model::{Baskets, ChurnModel, DriftReference, ModelSpec, SegmentModel, ValueModel};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
}

/// Everything one training run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelBundle {
    /// The bundle format ([`crate::model::churn::FORMAT`]); bundles of another
    /// format are refused with a message to retrain.
    #[serde(default)]
    pub format: u32,
    /// Assigned by the store when saved.
    pub version: u64,
    pub trained_at: Timestamp,
    /// Where the rows came from: "store" or a file path.
    pub source: String,
    pub spec: ModelSpec,
    pub cutoff: Option<Timestamp>,
    pub training_rows: u64,
    pub schema: FeatureSchema,
    pub churn: ChurnModel,
    pub value: Option<ValueModel>,
    pub segments: Option<SegmentModel>,
    pub baskets: Baskets,
    pub metrics: Vec<Metric>,
    /// Identifies the training data (file hash, or store counts).
    #[serde(default)]
    pub fingerprint: String,
    /// What the run left out or chose, for people.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Holdout curves for the report (absent in old versions).
    #[serde(default)]
    pub report: Option<TrainingEvaluation>,
    /// Each feature's training distribution, for drift.
    #[serde(default)]
    pub drift: Vec<DriftReference>,
    /// Quantiles (0, 0.5%, ..., 100%) of the expected value the value model
    /// gives the training rows: where value tiers put their edges.
    #[serde(default)]
    pub value_quantiles: Vec<f64>,
    /// Supply risk, dependency and Kraljic edges, learned on the book's
    /// suppliers; absent when the book has too few with deliveries.
    #[serde(default)]
    pub supply: Option<crate::model::SupplyModel>,
    /// Accounts' credit risk; absent when the book has too few accounts with invoices.
    #[serde(default)]
    pub credit: Option<crate::model::CreditModel>,
    /// Partners' lapse risk, sourced value and tiers; absent when the book
    /// has too few partners with deals.
    #[serde(default)]
    pub partner: Option<crate::model::PartnerModel>,
}

/// What ListModels and `models list` show of a version, stored beside the
/// bundle so that listing versions never decodes their weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub version: u64,
    pub trained_at: Timestamp,
    pub source: String,
    /// The spec's name.
    pub spec_name: String,
    pub cutoff: Option<Timestamp>,
    pub training_rows: u64,
    pub metrics: Vec<Metric>,
    pub fingerprint: String,
    /// The churn learner and its calibration, e.g. "gradient boosting (isotonic)".
    pub churn_learner: String,
    /// The kind it was trained for (`data.kind`); `None` for every kind.
    #[serde(default)]
    pub kind: Option<crate::domain::RelationshipKind>,
}

impl ModelSummary {
    /// The slot the version was trained for.
    pub fn slot(&self) -> crate::domain::ModelSlot {
        self.kind.map_or(
            crate::domain::ModelSlot::Default,
            crate::domain::ModelSlot::Kind,
        )
    }
}

/// Holdout predictions kept with a version so its report can be redrawn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingEvaluation {
    pub holdout_rows: u64,
    pub churn_scores: Vec<f64>,
    pub churn_labels: Vec<bool>,
    pub value_predicted: Vec<f64>,
    pub value_actual: Vec<f64>,
    pub importance: Vec<(String, f64)>,
    pub learner: String,
    pub candidates: Vec<(String, f64)>,
    pub calibration: String,
}

impl TrainingEvaluation {
    /// Keeps at most `max` evenly spaced holdout points (the bundle stays small).
    pub fn sampled(mut self, max: usize) -> TrainingEvaluation {
        fn thin<T: Clone>(v: &mut Vec<T>, max: usize) {
            if v.len() > max {
                let step = v.len().div_ceil(max);
                *v = v.iter().step_by(step).cloned().collect();
            }
        }
        thin(&mut self.churn_scores, max);
        thin(&mut self.churn_labels, max);
        thin(&mut self.value_predicted, max);
        thin(&mut self.value_actual, max);
        self
    }
}

impl ModelBundle {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// Checks every model agrees with the schema's width, so no predict path can
    /// meet a vector of the wrong length.
    ///
    /// # Errors
    /// `Corrupt` naming the model whose width disagrees.
    pub fn check_widths(&self) -> Result<()> {
        let width = self.schema.width();
        let corrupt = |what: &str, got: usize| Error::Corrupt {
            key: format!("models/{}", self.version),
            reason: format!("{what} expects {got} features but the schema has {width}"),
        };
        if !self.churn.has_width(width) {
            return Err(corrupt("churn", self.churn.scaler.mean.len()));
        }
        if let Some(v) = &self.value {
            if !v.has_width(width) {
                return Err(corrupt("value", v.model.params().len()));
            }
        }
        if let Some(s) = &self.segments {
            if s.columns.iter().any(|c| *c >= width)
                || s.kmeans.centroids().ncols() != s.columns.len()
            {
                return Err(corrupt("segments", s.columns.len()));
            }
        }
        Ok(())
    }
}

impl ModelBundle {
    /// What listing versions shows of this one.
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            version: self.version,
            trained_at: self.trained_at,
            source: self.source.clone(),
            spec_name: self.spec.name.clone(),
            cutoff: self.cutoff,
            training_rows: self.training_rows,
            metrics: self.metrics.clone(),
            fingerprint: self.fingerprint.clone(),
            churn_learner: self.churn.learner_name(),
            kind: self.spec.kind,
        }
    }

    /// The bundle as the registry stores it (JSON: readable, and tolerant of
    /// fields added later).
    ///
    /// # Errors
    /// `Training` when a value cannot be serialised (a non-finite float).
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| Error::training(format!("cannot serialise model: {e}")))
    }

    /// # Errors
    /// `FailedPrecondition` for a bundle an earlier Rapport trained (retrain);
    /// `Corrupt` naming the version when the bytes are not a bundle.
    pub fn decode(version: u64, bytes: &[u8]) -> Result<ModelBundle> {
        #[derive(Deserialize)]
        struct Format {
            #[serde(default)]
            format: u32,
        }
        let corrupt = |e: serde_json::Error| Error::Corrupt {
            key: format!("models/{version}"),
            reason: e.to_string(),
        };
        let Format { format } = serde_json::from_slice(bytes).map_err(corrupt)?;
        if format != FORMAT {
            return Err(Error::precondition(format!(
                "model version {version} was trained by an earlier Rapport (bundle format {format}; this build reads format {FORMAT}): retrain with `rapport train` or TrainModel and promote the new version"
            )));
        }
        serde_json::from_slice(bytes).map_err(corrupt)
    }
}

impl ModelSummary {
    /// The summary of a bundle stored without one (by an earlier Rapport),
    /// read from the fields every format shares.
    ///
    /// # Errors
    /// `Corrupt` naming the version.
    pub fn from_bundle(version: u64, bytes: &[u8]) -> Result<ModelSummary> {
        #[derive(Deserialize)]
        struct Named {
            name: String,
        }
        #[derive(Deserialize)]
        struct Shared {
            #[serde(default)]
            format: u32,
            trained_at: Timestamp,
            source: String,
            spec: Named,
            cutoff: Option<Timestamp>,
            training_rows: u64,
            metrics: Vec<Metric>,
            #[serde(default)]
            fingerprint: String,
        }
        let b: Shared = serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
            key: format!("models/{version}"),
            reason: e.to_string(),
        })?;
        Ok(ModelSummary {
            version,
            trained_at: b.trained_at,
            source: b.source,
            spec_name: b.spec.name,
            cutoff: b.cutoff,
            training_rows: b.training_rows,
            metrics: b.metrics,
            fingerprint: b.fingerprint,
            churn_learner: if b.format == FORMAT {
                String::new()
            } else {
                format!("(format {}: retrain)", b.format)
            },
            // Bundles stored without a summary predate models per kind.
            kind: None,
        })
    }

    /// # Errors
    /// `Training` when a value cannot be serialised.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| Error::training(format!("cannot serialise model summary: {e}")))
    }

    /// # Errors
    /// `Corrupt` naming the version.
    pub fn decode(version: u64, bytes: &[u8]) -> Result<ModelSummary> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
            key: format!("model_summaries/{version}"),
            reason: e.to_string(),
        })
    }
}

/// The artifact a table model keeps its rows in (bincode `Vec<Relationship>`):
/// its own namespace of relationships, served by id while it is active and
/// never written into the book.
pub const TABLE_ROWS_ARTIFACT: &str = "table_rows";

/// # Errors
/// `Corrupt` when the rows cannot be encoded.
pub fn encode_table_rows(rows: &[crate::domain::Relationship]) -> Result<Vec<u8>> {
    bincode::serialize(rows).map_err(|e| Error::Corrupt {
        key: TABLE_ROWS_ARTIFACT.into(),
        reason: e.to_string(),
    })
}

/// The artifact a table model keeps its rows' labels in (bincode
/// `Vec<TableLabel>`): the label and value columns as training read them and
/// whether the row was held out, for `rapport score --with-labels`.
pub const TABLE_LABELS_ARTIFACT: &str = "table_labels";

/// # Errors
/// `Corrupt` when the labels cannot be encoded.
pub fn encode_table_labels(labels: &[crate::model::labels::TableLabel]) -> Result<Vec<u8>> {
    bincode::serialize(labels).map_err(|e| Error::Corrupt {
        key: TABLE_LABELS_ARTIFACT.into(),
        reason: e.to_string(),
    })
}

/// # Errors
/// `Corrupt` when the bytes do not decode.
pub fn decode_table_labels(
    version: u64,
    bytes: &[u8],
) -> Result<Vec<crate::model::labels::TableLabel>> {
    bincode::deserialize(bytes).map_err(|e| Error::Corrupt {
        key: format!("model_artifacts/{version}/{TABLE_LABELS_ARTIFACT}"),
        reason: e.to_string(),
    })
}

/// # Errors
/// `Corrupt` when the bytes do not decode.
pub fn decode_table_rows(version: u64, bytes: &[u8]) -> Result<Vec<crate::domain::Relationship>> {
    bincode::deserialize(bytes).map_err(|e| Error::Corrupt {
        key: format!("model_artifacts/{version}/{TABLE_ROWS_ARTIFACT}"),
        reason: e.to_string(),
    })
}
