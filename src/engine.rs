//! The serving core: answers Score, Segment and Recommend from the store and
//! the active model, and takes writes. No tonic here: the gRPC layer converts
//! to and from these types.
//!
//! [`Engine`] is a cheap `Clone` handle. The active model sits behind an
//! `ArcSwap`: a promotion replaces the whole `Arc` at once, so a request sees
//! the old model or the new one, never a mix.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::commit::EventWriter;
use crate::domain::{now, IncomingEvent, Relationship, Timestamp, SECONDS_PER_DAY};
use crate::error::{Error, Result};
use crate::features::{Aggregates, BaseFeature, Column, Snapshot};
use crate::model::{expected_days_to_churn, rfm_segment, ModelBundle};
use crate::policy::Policy;
use crate::store::{Decoded, Store};

/// Largest batch accepted by the batch RPCs.
pub const MAX_BATCH: usize = 10_000;
pub const MAX_REASONS: u32 = 20;
pub const MAX_ACTIONS: u32 = 50;

/// A model ready to serve: its bundle, checked for width at load.
#[derive(Debug)]
pub struct LoadedModel {
    pub bundle: ModelBundle,
    /// `bundle.schema` column names, built once rather than per reason.
    column_names: Vec<String>,
}

impl LoadedModel {
    /// # Errors
    /// `Corrupt` when a model's width disagrees with its schema.
    pub fn new(bundle: ModelBundle) -> Result<LoadedModel> {
        bundle.check_widths()?;
        let column_names = bundle.schema.columns.iter().map(Column::name).collect();
        Ok(LoadedModel {
            bundle,
            column_names,
        })
    }

    pub fn version(&self) -> u64 {
        self.bundle.version
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStage {
    Prospect,
    New,
    Active,
    AtRisk,
    Lapsed,
    WonBack,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionType {
    Retain,
    CrossSell,
    UpSell,
    WinBack,
    Loyalty,
    NoAction,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub kind: ActionType,
    pub product_id: Option<String>,
    pub expected_net_value: f64,
    pub probability: f64,
    pub reason: String,
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

#[derive(Debug, Clone, PartialEq)]
pub struct DriftOutput {
    pub version: u64,
    pub sampled: u64,
    /// (feature, PSI), most shifted first.
    pub features: Vec<(String, f64)>,
    pub as_of: Timestamp,
}

/// Words for a population stability index.
pub fn drift_status(psi: f64) -> &'static str {
    if psi < 0.1 {
        "stable"
    } else if psi < 0.25 {
        "moderate shift"
    } else {
        "major shift"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipView {
    pub relationship: Relationship,
    pub features: Vec<(String, f64)>,
    pub event_count: u64,
    pub owned_products: Vec<String>,
    pub as_of: Timestamp,
}

/// Cheap-to-clone handle on the store, the active model and the policy.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    writer: EventWriter,
    store: Store,
    model: ArcSwapOption<LoadedModel>,
    policy: Policy,
}

/// One relationship evaluated against one model, shared by the three answers.
struct Evaluated<'m> {
    model: &'m LoadedModel,
    /// The relationship with its aggregates as of `as_of`.
    data: Arc<Decoded>,
    snapshot: Snapshot,
    raw: Vec<f64>,
    /// Standardized for the churn model.
    churn_z: Vec<f64>,
    /// Each column's share of the churn log-odds (see `ChurnModel::explain`).
    contributions: Vec<f64>,
    /// Model-scale values before standardization.
    scaled: Vec<f64>,
    as_of: Timestamp,
    churn: f64,
    value: f64,
}

impl Engine {
    /// Starts the event writer (see [`crate::commit`]).
    ///
    /// # Errors
    /// `Io` when its thread cannot be started.
    pub fn new(store: Store, policy: Policy) -> Result<Engine> {
        Ok(Engine {
            inner: Arc::new(Inner {
                writer: EventWriter::start(store.clone())?,
                store,
                model: ArcSwapOption::empty(),
                policy,
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Loads the version the store marks active, if any. Returns its number.
    ///
    /// # Errors
    /// `Corrupt` or `Storage` when the stored model cannot be read.
    pub fn load_active(&self) -> Result<Option<u64>> {
        match self.inner.store.active_version()? {
            Some(v) => {
                let loaded = LoadedModel::new(self.inner.store.model(v)?)?;
                self.inner.model.store(Some(Arc::new(loaded)));
                Ok(Some(v))
            }
            None => Ok(None),
        }
    }

    /// Makes `version` the active model: stored first, then swapped in whole.
    ///
    /// # Errors
    /// `NotFound` for an unknown version.
    pub async fn activate(&self, version: u64) -> Result<()> {
        let loaded = LoadedModel::new(self.inner.store.model(version)?)?;
        self.inner.store.set_active(version)?;
        self.inner.store.flush().await?;
        self.inner.model.store(Some(Arc::new(loaded)));
        Ok(())
    }

    pub fn has_model(&self) -> bool {
        self.inner.model.load().is_some()
    }

    /// # Errors
    /// `FailedPrecondition` when no model has been trained or activated yet.
    pub fn model(&self) -> Result<Arc<LoadedModel>> {
        self.inner.model.load_full().ok_or_else(|| {
            Error::precondition(
                "no model is active yet: wait for start-up training to finish, or run `rapport train`",
            )
        })
    }

    /// Makes the version that was active before the current one active again.
    ///
    /// # Errors
    /// `FailedPrecondition` when there is no earlier active version.
    pub async fn rollback(&self) -> Result<u64> {
        let previous = self
            .inner
            .store
            .previous_active()?
            .ok_or_else(|| Error::precondition("no earlier active version to roll back to"))?;
        self.activate(previous).await?;
        Ok(previous)
    }

    /// Trains a new version from `spec` on a blocking thread (the async workers
    /// keep serving), saves it, and promotes it when asked.
    ///
    /// # Errors
    /// As [`crate::train::train`]; nothing is saved when training fails.
    pub async fn train(
        &self,
        spec: crate::model::ModelSpec,
        activate: bool,
    ) -> Result<ModelBundle> {
        let store = self.inner.store.clone();
        let bundle =
            tokio::task::spawn_blocking(move || crate::server::train_and_save(&store, &spec))
                .await
                .map_err(|e| Error::training(format!("training task failed: {e}")))??;
        if activate {
            self.activate(bundle.version).await?;
        }
        Ok(bundle)
    }

    /// PSI of every feature of `version` (active when `None`): up to `sample`
    /// relationships from the store, as of now, against the training rows.
    ///
    /// # Errors
    /// `NotFound` for an unknown version, `InvalidArgument` for a bad sample size.
    pub fn drift(&self, version: Option<u64>, sample: u32) -> Result<DriftOutput> {
        let sample = match sample {
            0 => 2_000,
            n if n > 100_000 => {
                return Err(Error::invalid("sample", format!("{n} is more than 100000")));
            }
            n => n as usize,
        };
        let bundle = match version {
            Some(v) => self.inner.store.model(v)?,
            None => self.model()?.bundle.clone(),
        };
        if bundle.drift.is_empty() {
            return Err(Error::precondition(format!(
                "version {} has no drift reference (trained before drift was recorded)",
                bundle.version
            )));
        }
        let store = &self.inner.store;
        let step = (store.relationship_count() / sample).max(1);
        let as_of = now();
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); bundle.schema.width()];
        let mut raw = Vec::with_capacity(bundle.schema.width());
        let mut sampled = 0u64;
        for relationship in store.relationships().step_by(step).take(sample) {
            let relationship = relationship?;
            let aggregates = store.aggregates(&relationship.id)?.unwrap_or_default();
            let snapshot = Snapshot::derive(&relationship, &aggregates, as_of);
            bundle.schema.raw_values(&relationship, &snapshot, &mut raw);
            for (c, v) in columns.iter_mut().zip(&raw) {
                c.push(*v);
            }
            sampled += 1;
        }
        let mut features: Vec<(String, f64)> = bundle
            .drift
            .iter()
            .zip(&columns)
            .map(|(r, values)| (r.feature.clone(), r.psi(values)))
            .collect();
        features.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(DriftOutput {
            version: bundle.version,
            sampled,
            features,
            as_of,
        })
    }

    // ------------------------------------------------------------ writes

    /// Validates and stores a relationship; acknowledged only once flushed.
    ///
    /// # Errors
    /// `InvalidArgument` naming the field.
    pub async fn upsert_relationship(&self, relationship: Relationship) -> Result<bool> {
        relationship.validate(now())?;
        let created = self.inner.store.upsert_relationship(&relationship)?;
        self.inner.store.flush().await?;
        Ok(created)
    }

    /// Validates a whole batch, then stores it atomically through the group
    /// commit ([`crate::commit`]); acknowledged only once flushed.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty or oversized batch or a bad event (naming
    /// its index), `NotFound` for an unknown relationship; nothing is written.
    pub async fn record_events(&self, batch: Vec<IncomingEvent>) -> Result<usize> {
        check_batch_size("events", batch.len())?;
        let t = now();
        for (i, e) in batch.iter().enumerate() {
            crate::domain::validate_id("relationship_id", &e.relationship_id)
                .and_then(|()| e.event.validate(t))
                .map_err(|err| err.within(format_args!("events[{i}]")))?;
        }
        self.inner.writer.write(batch).await
    }

    // ------------------------------------------------------------ reads

    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn relationship_view(
        &self,
        id: &str,
        as_of: Option<Timestamp>,
    ) -> Result<RelationshipView> {
        let model = self.model()?;
        let e = self.evaluate(&model, id, as_of)?;
        let names = model.bundle.schema.names();
        Ok(RelationshipView {
            features: names.into_iter().zip(e.raw.iter().copied()).collect(),
            event_count: e.data.aggregates.event_count,
            owned_products: e.data.aggregates.products.keys().cloned().collect(),
            relationship: e.data.relationship.clone(),
            as_of: e.as_of,
        })
    }

    /// # Errors
    /// `NotFound` for an unknown id, `InvalidArgument` for a bad as-of time or
    /// reason count, `FailedPrecondition` without a model.
    pub fn score(
        &self,
        id: &str,
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<ScoreOutput> {
        let model = self.model()?;
        self.score_with(&model, id, as_of, max_reasons)
    }

    /// Scores many ids with one model (so a swap mid-batch cannot mix versions).
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
        let model = self.model()?;
        ids.iter()
            .map(|id| self.score_with(&model, id, as_of, max_reasons))
            .collect()
    }

    fn score_with(
        &self,
        model: &LoadedModel,
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
        let e = self.evaluate(model, id, as_of)?;
        let churn = &model.bundle.churn;
        let curve = churn.timing_curve(&e.churn_z);
        let reasons = self.reasons(&e, if max_reasons == 0 { 3 } else { max_reasons } as usize);
        Ok(ScoreOutput {
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
        })
    }

    /// # Errors
    /// As [`Engine::score`]; `FailedPrecondition` when the model has no segments.
    pub fn segment(&self, id: &str, as_of: Option<Timestamp>) -> Result<SegmentOutput> {
        let model = self.model()?;
        let segments = model
            .bundle
            .segments
            .as_ref()
            .ok_or_else(|| Error::precondition("the active model has no segment model"))?;
        let e = self.evaluate(&model, id, as_of)?;
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
        let profit = self.expected_profit(&e);
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
            stage: self.stage(&e),
            model_version: model.version(),
            as_of: e.as_of,
        })
    }

    /// Next best actions ranked by expected net value.
    ///
    /// # Errors
    /// As [`Engine::score`]; `InvalidArgument` for too many actions or a bad product id.
    pub fn recommend(&self, req: &RecommendRequest) -> Result<RecommendOutput> {
        if req.max_actions > MAX_ACTIONS {
            return Err(Error::invalid(
                "max_actions",
                format!("{} is more than {MAX_ACTIONS}", req.max_actions),
            ));
        }
        for (i, p) in req.exclude_products.iter().enumerate() {
            crate::domain::validate_id(&format!("exclude_product_ids[{i}]"), p)?;
        }
        if req.exclude_types.contains(&ActionType::NoAction) {
            return Err(Error::invalid(
                "exclude_action_types",
                "NO_ACTION cannot be excluded: it is the answer when nothing pays",
            ));
        }
        let model = self.model()?;
        let e = self.evaluate(&model, &req.relationship_id, req.as_of)?;
        let excluded: BTreeSet<&str> = req.exclude_products.iter().map(String::as_str).collect();
        let allowed = |t: ActionType| !req.exclude_types.contains(&t);
        let mut actions = Vec::new();
        let mut declined = Vec::new();
        let stage = self.stage(&e);
        if allowed(ActionType::Retain)
            && stage != LifecycleStage::Lapsed
            && stage != LifecycleStage::Prospect
        {
            self.retention(&e, &mut actions, &mut declined);
        }
        if allowed(ActionType::WinBack) && stage == LifecycleStage::Lapsed {
            self.win_back(&e, &mut actions, &mut declined);
        }
        // A lapsed relationship is won back before anything is sold to it.
        let reachable = stage != LifecycleStage::Lapsed;
        if reachable && allowed(ActionType::CrossSell) {
            self.cross_sell(&e, &excluded, &mut actions);
        }
        if reachable && allowed(ActionType::UpSell) {
            self.up_sell(&e, &excluded, &mut actions);
        }
        if reachable && allowed(ActionType::Loyalty) {
            self.loyalty(&e, &mut actions, &mut declined);
        }
        actions.retain(|a| a.expected_net_value > 0.0);
        actions.sort_by(|a, b| {
            b.expected_net_value
                .total_cmp(&a.expected_net_value)
                .then(a.kind.cmp(&b.kind))
                .then(a.product_id.cmp(&b.product_id))
        });
        actions.truncate(if req.max_actions == 0 {
            5
        } else {
            req.max_actions
        } as usize);
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
                reason: format!("Nothing pays for this relationship: {why}."),
            });
        }
        Ok(RecommendOutput {
            relationship_id: e.data.relationship.id.clone(),
            actions,
            model_version: model.version(),
            as_of: e.as_of,
        })
    }

    // ------------------------------------------------------------ internals

    fn evaluate<'m>(
        &self,
        model: &'m LoadedModel,
        id: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Evaluated<'m>> {
        crate::domain::validate_id("relationship_id", id)?;
        let as_of = match as_of {
            Some(t) => {
                crate::domain::validate_timestamp("as_of", t, now())?;
                t
            }
            None => now(),
        };
        let store = &self.inner.store;
        let mut data = store
            .decoded(id)?
            .ok_or_else(|| Error::not_found("relationship", id))?;
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
            churn_z,
            contributions,
            scaled,
            as_of,
            churn,
            value,
        })
    }

    fn reasons(&self, e: &Evaluated, n: usize) -> Vec<Reason> {
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

    /// Margin over the value horizon after the cost to serve.
    fn expected_profit(&self, e: &Evaluated) -> f64 {
        let p = &self.inner.policy;
        let years = f64::from(
            e.model
                .bundle
                .value
                .as_ref()
                .map_or(365, |v| v.horizon_days),
        ) / 365.0;
        e.value * p.margin - p.cost_to_serve_per_year * years
    }

    fn stage(&self, e: &Evaluated) -> LifecycleStage {
        let l = &self.inner.policy.lifecycle;
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

    fn retention(&self, e: &Evaluated, out: &mut Vec<Action>, declined: &mut Vec<String>) {
        let p = &self.inner.policy;
        let saved = e.churn * p.retention.uplift * e.value * p.margin;
        let net = saved - p.retention.offer_cost;
        if net > 0.0 {
            out.push(Action {
                kind: ActionType::Retain,
                product_id: None,
                expected_net_value: net,
                probability: p.retention.uplift * e.churn,
                reason: format!(
                    "Churn risk {:.0}% on an expected value of {}: a retention offer saves an expected {} of margin for a cost of {}",
                    e.churn * 100.0,
                    fmt_num(e.value),
                    fmt_num(saved),
                    fmt_num(p.retention.offer_cost)
                ),
            });
        } else {
            declined.push(format!(
                "a retention offer would save an expected {} of margin (churn risk {:.0}% on an expected value of {}) but costs {}",
                fmt_num(saved),
                e.churn * 100.0,
                fmt_num(e.value),
                fmt_num(p.retention.offer_cost)
            ));
        }
    }

    fn win_back(&self, e: &Evaluated, out: &mut Vec<Action>, declined: &mut Vec<String>) {
        let p = &self.inner.policy;
        let tenure_years = (e.snapshot.get(BaseFeature::TenureDays) / 365.0).max(0.25);
        let yearly = e.data.aggregates.spend_total / tenure_years;
        let gain = p.win_back.success_rate * yearly * p.margin;
        let net = gain - p.win_back.offer_cost;
        let line = format!(
            "lapsed for {:.0} days after spending {} a year: winning it back ({:.0}% chance) is worth {} against an offer costing {}",
            e.snapshot.get(BaseFeature::RecencyDays),
            fmt_num(yearly),
            p.win_back.success_rate * 100.0,
            fmt_num(gain),
            fmt_num(p.win_back.offer_cost)
        );
        if net > 0.0 {
            out.push(Action {
                kind: ActionType::WinBack,
                product_id: None,
                expected_net_value: net,
                probability: p.win_back.success_rate,
                reason: capitalize(&line).to_string(),
            });
        } else {
            declined.push(line);
        }
    }

    fn cross_sell(&self, e: &Evaluated, excluded: &BTreeSet<&str>, out: &mut Vec<Action>) {
        let p = &self.inner.policy;
        let baskets = &e.model.bundle.baskets;
        let stay = 1.0 - e.churn;
        let mut best: std::collections::BTreeMap<&str, (f64, f64, String)> = Default::default();
        let candidate_ok = |id: &str| !e.data.aggregates.owns(id) && !excluded.contains(id);
        if e.data.aggregates.products.is_empty() {
            // Cold start: what most relationships buy.
            for id in baskets.popular.iter().filter(|id| candidate_ok(id)).take(3) {
                let info = &baskets.products[id];
                let prob = info.popularity * stay * 0.5;
                let net = prob * info.price * p.margin - p.cross_sell.contact_cost;
                best.insert(
                    id,
                    (
                        net,
                        prob,
                        format!(
                            "No purchase history yet: {id} is bought by {:.0}% of relationships",
                            info.popularity * 100.0
                        ),
                    ),
                );
            }
        } else {
            for owned in e.data.aggregates.products.keys() {
                for c in baskets.complements.get(owned).into_iter().flatten() {
                    if c.lift < p.cross_sell.min_lift || !candidate_ok(&c.product) {
                        continue;
                    }
                    let price = baskets.products.get(&c.product).map_or(0.0, |i| i.price);
                    let prob = (c.confidence * stay).min(1.0);
                    let net = prob * price * p.margin - p.cross_sell.contact_cost;
                    let reason = format!(
                        "Bought {owned}: {:.0}% of its buyers also buy {} (lift {:.1})",
                        c.confidence * 100.0,
                        c.product,
                        c.lift
                    );
                    if best.get(c.product.as_str()).is_none_or(|b| net > b.0) {
                        best.insert(&c.product, (net, prob, reason));
                    }
                }
            }
        }
        out.extend(best.into_iter().map(|(id, (net, prob, reason))| Action {
            kind: ActionType::CrossSell,
            product_id: Some(id.to_string()),
            expected_net_value: net,
            probability: prob,
            reason,
        }));
    }

    fn up_sell(&self, e: &Evaluated, excluded: &BTreeSet<&str>, out: &mut Vec<Action>) {
        let p = &self.inner.policy;
        let baskets = &e.model.bundle.baskets;
        let Some((owned, info)) = e
            .data
            .aggregates
            .products
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .and_then(|(id, _)| baskets.products.get(id).map(|i| (id, i)))
        else {
            return;
        };
        if info.category.is_empty() || info.price <= 0.0 {
            return;
        }
        let upgrade = baskets
            .products
            .iter()
            .filter(|(id, i)| {
                i.category == info.category
                    && i.price >= info.price * p.up_sell.min_price_ratio
                    && !e.data.aggregates.owns(id)
                    && !excluded.contains(id.as_str())
            })
            .min_by(|a, b| a.1.price.total_cmp(&b.1.price));
        if let Some((id, up)) = upgrade {
            let prob = p.up_sell.acceptance * (1.0 - e.churn);
            let gain = (up.price - info.price) * p.margin;
            out.push(Action {
                kind: ActionType::UpSell,
                product_id: Some(id.clone()),
                expected_net_value: prob * gain - p.up_sell.contact_cost,
                probability: prob,
                reason: format!(
                    "Buys {owned} most often: {id} is the next step up in {} at {} more per unit",
                    info.category,
                    fmt_num(up.price - info.price)
                ),
            });
        }
    }

    fn loyalty(&self, e: &Evaluated, out: &mut Vec<Action>, declined: &mut Vec<String>) {
        let p = &self.inner.policy;
        let Some(segments) = &e.model.bundle.segments else {
            return;
        };
        let (tier, rank) = segments.value_tier(e.value, self.expected_profit(e) > 0.0);
        if rank > 2 || e.churn > p.loyalty.max_churn {
            return;
        }
        let gain =
            (e.churn * p.loyalty.churn_reduction + p.loyalty.spend_lift) * e.value * p.margin;
        let net = gain - p.loyalty.cost;
        if net > 0.0 {
            out.push(Action {
                kind: ActionType::Loyalty,
                product_id: None,
                expected_net_value: net,
                probability: 1.0 - e.churn,
                reason: format!(
                    "{tier} tier and loyal (churn risk {:.0}%): the programme is worth {} for a cost of {}",
                    e.churn * 100.0,
                    fmt_num(gain),
                    fmt_num(p.loyalty.cost)
                ),
            });
        } else {
            declined.push(format!(
                "a loyalty programme would earn {} but costs {}",
                fmt_num(gain),
                fmt_num(p.loyalty.cost)
            ));
        }
    }
}

/// 0–100, higher is healthier: the probability of staying, in percent.
pub fn health_score(churn: f64) -> u32 {
    ((1.0 - churn) * 100.0).round().clamp(0.0, 100.0) as u32
}

/// # Errors
/// `InvalidArgument` naming `field` for an empty or oversized batch.
pub fn check_batch_size(field: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid(field, "the batch is empty"));
    }
    if n > MAX_BATCH {
        return Err(Error::invalid(
            field,
            format!("{n} items, more than the limit of {MAX_BATCH}"),
        ));
    }
    Ok(())
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

/// A number to read in a sentence, with fewer decimals as it grows; a
/// `Display` so that it is written straight into the sentence.
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let decimals = if v.abs() >= 100.0 {
            0
        } else if v.abs() >= 10.0 {
            1
        } else {
            2
        };
        // Integer arithmetic instead of float formatting, which was a third
        // of the time spent on reasons. Ties may round the other way than
        // `{:.2}` would (0.125 -> 0.13); nobody reads a reason that closely.
        let scale = [1.0, 10.0, 100.0][decimals];
        let scaled = (v.abs() * scale).round();
        if !scaled.is_finite() || scaled >= 1e15 {
            return write!(f, "{v:.decimals$}");
        }
        let scaled = scaled as u64;
        let unit = scale as u64;
        if v.is_sign_negative() && scaled != 0 {
            f.write_char('-')?;
        }
        write!(f, "{}", scaled / unit)?;
        match decimals {
            0 => Ok(()),
            1 => write!(f, ".{}", scaled % unit),
            _ => write!(f, ".{:02}", scaled % unit),
        }
    }
}

fn fmt_num(v: f64) -> Num {
    Num(v)
}

/// A text with its first letter in upper case.
struct Capitalized<'a>(&'a str);

impl fmt::Display for Capitalized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        if let Some(first) = chars.next() {
            for c in first.to_uppercase() {
                f.write_char(c)?;
            }
        }
        f.write_str(chars.as_str())
    }
}

fn capitalize(s: &str) -> Capitalized<'_> {
    Capitalized(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_in_sentences_match_float_formatting() {
        for v in [
            0.0,
            -0.0,
            0.004,
            -0.004,
            0.996,
            1.5,
            9.994,
            9.996,
            -9.996,
            10.0,
            12.34,
            99.94,
            99.96,
            100.0,
            123.4,
            -123.6,
            1e9,
            -2.5e14,
            3e20,
            f64::NAN,
            f64::INFINITY,
        ] {
            let decimals = if v.abs() >= 100.0 {
                0
            } else if v.abs() >= 10.0 {
                1
            } else {
                2
            };
            let mut expected = format!("{v:.decimals$}");
            if expected.starts_with('-') && expected.trim_start_matches(['-', '0', '.']).is_empty()
            {
                expected.remove(0);
            }
            assert_eq!(super::Num(v).to_string(), expected, "{v}");
        }
    }

    use super::*;

    #[test]
    fn health_is_the_staying_probability() {
        assert_eq!(health_score(0.0), 100);
        assert_eq!(health_score(0.234), 77);
        assert_eq!(health_score(1.0), 0);
    }

    #[test]
    fn batch_sizes_are_checked() {
        assert!(check_batch_size("ids", 0)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(check_batch_size("ids", MAX_BATCH + 1).is_err());
        assert!(check_batch_size("ids", 1).is_ok());
    }
}
