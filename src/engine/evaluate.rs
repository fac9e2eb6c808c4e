//! One relationship evaluated against the model that serves its kind: the
//! features as of a time, the churn probability with each column's
//! contribution, and the expected value. Score, Segment and Recommend all
//! start here, so they agree on every number they share.

use std::sync::Arc;

use crate::domain::validate_id;
use crate::error::{Error, Result};
use crate::features::{Aggregates, Snapshot};
use crate::model::{LoadedModel, ModelRouter};
use crate::store::Decoded;
use crate::time::{now, Timestamp};

use super::Engine;

pub(crate) struct Evaluated<'m> {
    pub model: &'m LoadedModel,
    /// The relationship with its aggregates as of `as_of`.
    pub data: Arc<Decoded<Aggregates>>,
    pub snapshot: Snapshot,
    pub raw: Vec<f64>,
    /// Each column's share of the churn log-odds (see `ChurnModel::explain`).
    pub contributions: Vec<f64>,
    /// Standardized for the churn model.
    pub churn_z: Vec<f64>,
    /// Model-scale values before standardization.
    pub scaled: Vec<f64>,
    pub as_of: Timestamp,
    pub churn: f64,
    pub value: f64,
}

impl Engine {
    /// # Errors
    /// `InvalidArgument` for a bad id or as-of time, `NotFound` for an unknown
    /// id, `FailedPrecondition` when no model serves its kind.
    pub(super) fn evaluate<'m>(
        &self,
        models: &'m ModelRouter,
        id: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Evaluated<'m>> {
        validate_id("relationship_id", id)?;
        if models.is_empty() {
            return Err(no_model());
        }
        let as_of = match as_of {
            Some(t) => {
                crate::domain::validate_timestamp("as_of", t, now())?;
                t
            }
            None => now(),
        };
        let store = self.store();
        let mut data = match models.own_row(id) {
            // A table model's own rows: no events, only their columns.
            Some(row) => Arc::new(Decoded {
                relationship: row.clone(),
                aggregates: Aggregates::default(),
            }),
            None => store
                .decoded(id)?
                .ok_or_else(|| Error::not_found("relationship", id))?,
        };
        let model = models
            .route(data.relationship.kind)
            .ok_or_else(no_model)?
            .model
            .as_ref();
        if data.aggregates.last_event.is_some_and(|t| t > as_of) {
            // A backtest: fold only what was known then, with the same code.
            data = Arc::new(Decoded {
                relationship: data.relationship.clone(),
                aggregates: Aggregates::from_events(&store.events(id, Some(as_of))?),
            });
        }
        let relationship = &data.relationship;
        let snapshot = Snapshot::derive(relationship, &data.aggregates, as_of);
        let bundle = &model.bundle;
        let mut raw = Vec::with_capacity(bundle.schema.width());
        bundle.schema.raw_values(relationship, &snapshot, &mut raw);
        let mut scaled = raw.clone();
        bundle.schema.to_model_scale(&mut scaled);
        let mut churn_z = scaled.clone();
        bundle.churn.scaler.apply(&mut churn_z);
        let mut contributions = Vec::new();
        let churn = bundle.churn.explain(&churn_z, &mut contributions);
        let value = match &bundle.value {
            Some(v) => {
                let mut z = scaled.clone();
                v.scaler.apply(&mut z);
                v.predict(&z)
            }
            None => 0.0,
        };
        Ok(Evaluated {
            model,
            data,
            snapshot,
            raw,
            contributions,
            churn_z,
            scaled,
            as_of,
            churn,
            value,
        })
    }
}

fn no_model() -> Error {
    Error::precondition(
        "no model is active yet: wait for start-up training to finish, or run `rapport train`",
    )
}
