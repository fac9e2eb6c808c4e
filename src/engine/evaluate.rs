//! One relationship evaluated against the model that serves its kind: the
//! features as of a time, the churn probability with each column's
//! contribution, and the expected value. Score, Segment and Recommend all
//! start here, so they agree on every number they share.

use std::sync::Arc;

use crate::domain::validate_id;
use crate::error::{Error, Result};
use crate::features::{silent_since, start_of, Aggregates, Snapshot};
use crate::model::{ChurnTarget, Curve, LoadedModel, ModelRouter};
use crate::store::Decoded;
use crate::time::{format_datetime, now, Timestamp, SECONDS_PER_DAY};

use super::Engine;

pub(crate) struct Evaluated<'m> {
    pub model: &'m LoadedModel,
    /// False when the kind has no model of its own and the default answers.
    pub kind_model: bool,
    /// The relationship with its aggregates as of `as_of`.
    pub data: Arc<Decoded<Aggregates>>,
    pub snapshot: Snapshot,
    pub raw: Vec<f64>,
    /// Each column's share of the churn log-odds (see `ChurnModel::explain`);
    /// empty unless [`Contributions::Wanted`].
    pub contributions: Vec<f64>,
    /// Model-scale values before standardization.
    pub scaled: Vec<f64>,
    pub as_of: Timestamp,
    /// The timing curve and the churn probability at the horizon.
    pub curve: Curve,
    /// Already churned at `as_of`: as long without a purchase as churn
    /// means; the curve is then 1 everywhere and no model was asked.
    pub churned: bool,
    /// Days without a purchase at `as_of` (from the last purchase, or from
    /// the start), for relationships that have a churn definition.
    pub silent_days: f64,
    pub churn: f64,
    /// Expected spend over the value horizon; `None` without a value model.
    pub value: Option<f64>,
}

impl Evaluated<'_> {
    /// The slot of the model that answered: the kind's own, or `default`.
    pub fn model_slot(&self) -> &'static str {
        if self.kind_model {
            self.data.relationship.kind.as_str()
        } else {
            "default"
        }
    }

    /// The expected value, 0 without a value model (for arithmetic that
    /// needs a number: offers, value at risk).
    pub fn value_or_zero(&self) -> f64 {
        self.value.unwrap_or(0.0)
    }
}

/// Whether an evaluation also splits the churn log-odds into each column's
/// share. Only Score's reasons read the shares, and working them out writes a
/// row per explained interval on top of the walk that gives the probability,
/// which is the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contributions {
    Wanted,
    Skipped,
}

/// `as_of`, checked, or now.
///
/// # Errors
/// `InvalidArgument` for a time in the future.
fn as_of_or_now(as_of: Option<Timestamp>) -> Result<Timestamp> {
    match as_of {
        Some(t) => {
            crate::domain::validate_timestamp("as_of", t, now())?;
            Ok(t)
        }
        None => Ok(now()),
    }
}

impl Engine {
    /// A relationship with its aggregates as known at `as_of` (now when
    /// absent): the stored ones, or a fold of the events up to `as_of` for a
    /// backtest, with the same code.
    ///
    /// # Errors
    /// `InvalidArgument` for a bad id, an as-of time in the future or before
    /// the relationship started; `NotFound` for an unknown id.
    pub(super) fn load(
        &self,
        id: &str,
        as_of: Option<Timestamp>,
    ) -> Result<(Arc<Decoded<Aggregates>>, Timestamp)> {
        validate_id("relationship_id", id)?;
        let as_of = as_of_or_now(as_of)?;
        let data = self
            .store()
            .decoded(id)?
            .ok_or_else(|| Error::not_found("relationship", id))?;
        let start = start_of(&data.relationship, &data.aggregates);
        if as_of < start {
            return Err(Error::invalid(
                "as_of",
                format!(
                    "{} is before relationship {:?} existed (it starts {})",
                    format_datetime(as_of),
                    data.relationship.id,
                    format_datetime(start)
                ),
            ));
        }
        Ok((self.known_at(data, as_of)?, as_of))
    }

    /// `data` as known at `as_of`: itself, or for a backtest a fold of the
    /// events up to `as_of`, with the same code as ingest.
    ///
    /// # Errors
    /// `Unavailable` when the store cannot be read.
    fn known_at(
        &self,
        data: Arc<Decoded<Aggregates>>,
        as_of: Timestamp,
    ) -> Result<Arc<Decoded<Aggregates>>> {
        if data.aggregates.last_event.is_none_or(|t| t <= as_of) {
            return Ok(data);
        }
        let events = self.store().events(&data.relationship.id, Some(as_of))?;
        Ok(Arc::new(Decoded {
            relationship: data.relationship.clone(),
            aggregates: Aggregates::from_events(&events),
        }))
    }

    /// # Errors
    /// `InvalidArgument` for a bad id or as-of time, `NotFound` for an unknown
    /// id, `FailedPrecondition` when no model serves its kind.
    pub(super) fn evaluate<'m>(
        &self,
        models: &'m ModelRouter,
        id: &str,
        as_of: Option<Timestamp>,
        contributions: Contributions,
    ) -> Result<Evaluated<'m>> {
        validate_id("relationship_id", id)?;
        if models.is_empty() {
            return Err(no_model());
        }
        let (data, as_of) = match models.own_row(id) {
            // A table model's own rows: no events, only their columns.
            Some(row) => (
                Arc::new(Decoded {
                    relationship: row.clone(),
                    aggregates: Aggregates::default(),
                }),
                as_of_or_now(as_of)?,
            ),
            None => self.load(id, as_of)?,
        };
        self.evaluate_data(models, data, as_of, contributions)
    }

    /// [`Engine::evaluate`] on a relationship already read (a pass over the
    /// book reads them in pages), as of a checked time.
    ///
    /// # Errors
    /// `FailedPrecondition` when no model serves its kind.
    pub(super) fn evaluate_data<'m>(
        &self,
        models: &'m ModelRouter,
        data: Arc<Decoded<Aggregates>>,
        as_of: Timestamp,
        wanted: Contributions,
    ) -> Result<Evaluated<'m>> {
        let data = self.known_at(data, as_of)?;
        let routed = models.route(data.relationship.kind).ok_or_else(no_model)?;
        let (model, kind_model) = (routed.model.as_ref(), routed.kind_specific);
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
        let silent_days =
            (as_of - silent_since(relationship, &data.aggregates)) as f64 / SECONDS_PER_DAY as f64;
        let churned = match bundle.churn.target {
            ChurnTarget::Survival {
                inactivity_days, ..
            } => silent_days >= f64::from(inactivity_days),
            ChurnTarget::Label => false,
        };
        let curve = if churned {
            if wanted == Contributions::Wanted {
                contributions.resize(churn_z.len(), 0.0);
            }
            Curve {
                points: bundle
                    .churn
                    .horizons()
                    .into_iter()
                    .map(|d| (d, 1.0))
                    .collect(),
                churn: 1.0,
            }
        } else if wanted == Contributions::Wanted {
            bundle.churn.explain(&churn_z, &mut contributions)
        } else {
            bundle.churn.curve(&churn_z)
        };
        let churn = curve.churn;
        let value = bundle.value.as_ref().map(|v| {
            let history = crate::model::value::purchase_history(&data.aggregates, as_of);
            v.predict(&scaled, history.as_ref())
        });
        Ok(Evaluated {
            model,
            kind_model,
            data,
            snapshot,
            raw,
            contributions,
            scaled,
            as_of,
            curve,
            churned,
            silent_days,
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
