//! Training from the events in the store: pick a cutoff T, derive every
//! relationship's features as of T with the serving code, label what happened
//! in (T, T+H], fit the models on one split and measure them on the other.

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use ndarray::{Array2, Axis};

use crate::domain::{Event, EventBody, Product, Relationship};
use crate::error::{Error, Result};
use crate::features::{Aggregates, BaseFeature, FeatureSchema, Snapshot};
use crate::model::clv::CustomerSummary;
use crate::model::spec::Cutoff;
use crate::model::value::{purchase_history, ValueLearner};
use crate::model::{labels, metrics};
use crate::model::{
    Baskets, ChurnModel, Metric, ModelBundle, ModelSpec, Outcome, RfmEdges, SegmentModel,
    TrainingEvaluation, ValueModel,
};
use crate::progress;
use crate::store::{History, HistoryChunks};
use crate::time::{format_date, now, Timestamp, SECONDS_PER_DAY};
use crate::training::evaluation::{
    in_holdout, metric, push_classifier_metrics, push_value_metrics,
};
use crate::training::kinds::KindCollector;
use crate::training::supply::SupplyCollector;
use crate::SharedStore;

/// Rows k-means is fitted on at most (a uniform subsample beyond).
const MAX_SEGMENT_ROWS: usize = 50_000;
/// Training rows the drift reference bins are learned from.
const MAX_DRIFT_ROWS: usize = 100_000;
/// Holdout points a version keeps for its report.
const MAX_EVALUATION_POINTS: usize = 20_000;
/// Holdout points the silhouette is measured on (it is quadratic).
const SILHOUETTE_SAMPLE: usize = 1_500;
/// Relationships between two steps of the features bar.
const PROGRESS_BATCH: u64 = 1_024;

/// One relationship as of the cutoff, with what happened after it.
struct Row {
    relationship: Relationship,
    snapshot: Snapshot,
    /// What became of it after the cutoff; `None` when it had already
    /// churned by then (see `model::churn`).
    outcome: Option<Outcome>,
    future_spend: f64,
    /// Its purchases as of the cutoff, as the customer-base model reads them.
    history: Option<CustomerSummary>,
    holdout: bool,
}

/// Trains on every relationship in the store.
///
/// # Errors
/// As [`crate::training::train`].
pub fn train_from_store(
    store: &SharedStore,
    spec: &ModelSpec,
    progress: &ProgressBar,
) -> Result<ModelBundle> {
    let data_end = store
        .latest_event()?
        .ok_or_else(|| Error::precondition("the store has no events: ingest events first (rapport ingest) or start serve on an empty directory for the demo book"))?;
    let catalogue = store.products()?;
    // Counting relationships up front is a whole pass over them in sled (1.5 s
    // at 1M), so it is only paid for a progress bar someone sees.
    let expected = if progress.is_hidden() {
        0
    } else {
        store.relationship_count()?
    };
    // Reading and decoding from sled is most of the features pass: one reader
    // thread was a whole core at 1M while deriving features here took a fifth
    // of another, so two readers take chunks of the book in turn.
    let chunks = store.history_chunks(BOOK_CHUNK);
    let (bundle, (relationships, events)) = std::thread::scope(|scope| {
        let (sender, book) = std::sync::mpsc::sync_channel(4096);
        let readers: Vec<_> = (0..BOOK_READERS)
            .map(|_| {
                let sender = sender.clone();
                let chunks = &chunks;
                scope.spawn(move || read_chunks(chunks.as_ref(), &sender))
            })
            .collect();
        drop(sender);
        let bundle = train_book(
            expected,
            book.into_iter(),
            data_end,
            spec,
            &catalogue,
            progress,
        );
        let read = readers.into_iter().fold((0, 0), |(r, e), reader| {
            let (r2, e2) = reader.join().unwrap_or_default();
            (r + r2, e + e2)
        });
        (bundle, read)
    });
    let mut bundle = bundle?;
    bundle.fingerprint = format!("store:{relationships}relationships:{events}events:{data_end}");
    Ok(bundle)
}

/// Relationships per chunk of the book a reader takes at a time.
const BOOK_CHUNK: usize = 4096;
/// Threads reading the book for training.
const BOOK_READERS: usize = 2;

/// Sends every relationship of the chunks it takes, tagged with its chunk's
/// number, until the book or the receiver ends; returns how many
/// relationships and events it read.
fn read_chunks(
    chunks: &dyn HistoryChunks,
    book: &std::sync::mpsc::SyncSender<(usize, Result<History>)>,
) -> (usize, usize) {
    let (mut relationships, mut events) = (0, 0);
    loop {
        let (number, histories) = match chunks.next_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                let _ = book.send((0, Err(e)));
                break;
            }
        };
        for item in histories {
            relationships += 1;
            events += item.1.len();
            if book.send((number, Ok(item))).is_err() {
                return (relationships, events);
            }
        }
    }
    (relationships, events)
}

/// Trains on a book of relationships with their events (time-ordered), read
/// once. Each comes with the number of the part of the book it is in: parts
/// are consecutive in book order and may arrive interleaved (read by several
/// threads); the result is as if read in order, up to the rounding of sums.
/// `len` is how many relationships there are, for the progress bar only.
///
/// # Errors
/// As [`crate::training::train`].
pub fn train_book(
    len: usize,
    book: impl Iterator<Item = (usize, Result<History>)>,
    data_end: Timestamp,
    spec: &ModelSpec,
    catalogue: &[Product],
    progress: &ProgressBar,
) -> Result<ModelBundle> {
    let window = i64::from(spec.label_window_days()) * SECONDS_PER_DAY;
    let cutoff = match spec.cutoff {
        Cutoff::At(t) => t,
        Cutoff::Auto => data_end - window,
    };
    // Value needs its whole horizon observed, and churn its horizon; the
    // timing curve's longer horizons may be censored.
    let needed_days = spec.value.horizon_days.max(spec.churn.horizon_days);
    let needed = i64::from(needed_days) * SECONDS_PER_DAY;
    if cutoff + needed > data_end {
        return Err(Error::precondition(format!(
            "the cutoff {} needs data until {} to observe value.horizon_days ({}) and churn.horizon_days ({}), but the last event is on {}: set data.cutoff to {} or earlier, or shorten those horizons",
            format_date(cutoff),
            format_date(cutoff + needed),
            spec.value.horizon_days,
            spec.churn.horizon_days,
            format_date(data_end),
            format_date(data_end - needed),
        )));
    }
    let mut notes = Vec::new();
    tracing::info!(cutoff = %format_date(cutoff), data_end = %format_date(data_end), "training");

    let bar = progress::counter(progress, "features", len as u64);
    // Products owned per relationship, as indices into `product_names`: a
    // million relationships' sets of strings were hundreds of MB.
    let mut product_index: std::collections::HashMap<String, u32> = Default::default();
    let mut product_names: Vec<String> = Vec::new();
    let mut rows: Vec<(usize, Row)> = Vec::new();
    let mut owned_sets: Vec<Vec<u32>> = Vec::new();
    // Per part, so that sums come out the same however the parts interleave.
    let mut price_sums_by_part: Vec<BTreeMap<String, (f64, u32)>> = Vec::new();
    let mut pending = 0u64;
    let mut supply = SupplyCollector::default();
    let mut kinds = KindCollector::default();
    for (part, item) in book {
        let (relationship, events) = item?;
        if price_sums_by_part.len() <= part {
            price_sums_by_part.resize_with(part + 1, BTreeMap::new);
        }
        // The bar redraws a few times a second at most; stepping it per batch keeps it off the hot path.
        pending += 1;
        if pending == PROGRESS_BATCH {
            bar.inc(pending);
            pending = 0;
        }
        // A model for one kind learns from that kind's relationships only.
        if spec.kind.is_some_and(|kind| kind != relationship.kind) {
            continue;
        }
        collect_prices(&events, &mut price_sums_by_part[part]);
        // Every product any purchase included (what the aggregates' product
        // map holds), without folding all the events a second time.
        let mut owned: Vec<u32> = Vec::new();
        for e in &events {
            if let EventBody::Purchase { product_ids, .. } = &e.body {
                for p in product_ids {
                    owned.push(match product_index.get(p) {
                        Some(i) => *i,
                        None => {
                            let i = product_names.len() as u32;
                            product_index.insert(p.clone(), i);
                            product_names.push(p.clone());
                            i
                        }
                    });
                }
            }
        }
        owned.sort_unstable();
        owned.dedup();
        owned_sets.push(owned);
        supply.add(&relationship, &events, data_end, spec);
        kinds.add(&relationship, &events, data_end, spec);
        if relationship.created_at > cutoff {
            continue;
        }
        rows.push((
            part,
            label_row(relationship, &events, cutoff, data_end, spec),
        ));
    }
    bar.finish_and_clear();
    let mut price_sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for part in price_sums_by_part {
        for (product, (sum, n)) in part {
            let total = price_sums.entry(product).or_insert((0.0, 0));
            total.0 += sum;
            total.1 += n;
        }
    }
    // Baskets over everything owned today, learned first so the sets can go.
    let observed_prices: BTreeMap<String, f64> = price_sums
        .into_iter()
        .map(|(k, (s, n))| (k, s / f64::from(n.max(1))))
        .collect();
    let baskets = Baskets::learn(
        owned_sets.iter().map(|s| {
            s.iter()
                .map(|&i| product_names[i as usize].as_str())
                .collect()
        }),
        catalogue,
        &observed_prices,
    );
    drop(owned_sets);
    // A part's rows arrive in order, so a stable sort by part gives the book's order.
    let mut in_order: Vec<&(usize, Row)> = rows.iter().collect();
    in_order.sort_by_key(|(part, _)| *part);
    let rows: Vec<&Row> = in_order.into_iter().map(|(_, row)| row).collect();
    let holdout_count = rows.iter().filter(|r| r.holdout).count();
    // holdout_fraction = 0 asks for no holdout: every row trains.
    let holdout_too_small = holdout_count < 20 && spec.holdout_fraction > 0.0;
    if rows.len() < 100 || holdout_too_small || rows.len() - holdout_count < 50 {
        return Err(Error::precondition(format!(
            "only {} relationships existed at the cutoff {}: too few to train and evaluate",
            rows.len(),
            format_date(cutoff)
        )));
    }

    let step = progress::step(progress, "feature schema and matrices");
    let train: Vec<&Row> = rows.iter().copied().filter(|r| !r.holdout).collect();
    let holdout: Vec<&Row> = rows.iter().copied().filter(|r| r.holdout).collect();
    drop(rows);
    let train_snapshots: Vec<Snapshot> = train.iter().map(|r| r.snapshot).collect();
    let schema = FeatureSchema::learn(
        &spec.features,
        train.iter().map(|r| &r.relationship),
        &train_snapshots,
    )?;
    let x_train = matrix(&schema, &train, true);
    drop(train_snapshots);
    // Drift bins are quantiles: a sample of the training rows places them as well.
    let drift_rows: Vec<&Row> = train
        .iter()
        .step_by((train.len() / MAX_DRIFT_ROWS).max(1))
        .copied()
        .collect();
    let drift =
        crate::model::drift_references(&schema.names(), &matrix(&schema, &drift_rows, false));
    let x_hold = matrix(&schema, &holdout, true);
    step.finish_and_clear();
    let mut metrics = Vec::new();

    // Churn and its timing curve, on the relationships still active at the cutoff.
    let (active_train, outcomes): (Vec<usize>, Vec<Outcome>) = train
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.outcome.map(|o| (i, o)))
        .unzip();
    let started = std::time::Instant::now();
    let (churn, churn_notes) = ChurnModel::fit_survival(
        &x_train.select(Axis(0), &active_train),
        &outcomes,
        &spec.churn,
        progress,
    )?;
    notes.extend(churn_notes);
    notes.extend(churn.selection_notes());
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "churn and timing fitted"
    );
    let step = progress::step(progress, "churn: holdout evaluation");
    let active_hold: Vec<usize> = (0..holdout.len())
        .filter(|i| holdout[*i].outcome.is_some())
        .collect();
    let curves = churn.curves(&x_hold.select(Axis(0), &active_hold));
    let outcome = |i: usize| {
        holdout[active_hold[i]].outcome.unwrap_or(Outcome {
            churned_after_days: Some(0.0),
            follow_up_days: 0.0,
        })
    };
    metrics.push(metric(
        "churn.already_churned_share",
        1.0 - active_hold.len() as f64 / holdout.len() as f64,
    ));
    let mut p_hold = Vec::new();
    let mut y_hold = Vec::new();
    // Each horizon on the curve as served, against the rows observed through
    // it (censored rows are left out, never counted as active).
    for (days, p) in churn.horizons().into_iter().zip(&curves) {
        let h = f64::from(days);
        let (p, y): (Vec<f64>, Vec<bool>) = (0..active_hold.len())
            .filter(|i| outcome(*i).observed_through(h))
            .map(|i| (p[i], outcome(i).churned_by(h)))
            .unzip();
        let prefix = format!("churn.timing.{days}d");
        metrics.push(metric(
            &format!("{prefix}.roc_auc"),
            metrics::roc_auc(&p, &y),
        ));
        metrics.push(metric(&format!("{prefix}.brier"), metrics::brier(&p, &y)));
        metrics.push(metric(
            &format!("{prefix}.ece"),
            metrics::expected_calibration_error(&p, &y),
        ));
        if Some(days) == churn.horizon_days() {
            (p_hold, y_hold) = (p, y);
        }
    }
    push_classifier_metrics(&mut metrics, "churn", &p_hold, &y_hold);
    metrics.push(metric(
        "churn.base_rate",
        y_hold.iter().filter(|y| **y).count() as f64 / y_hold.len() as f64,
    ));
    step.finish_and_clear();

    // Value.
    let v_train: Vec<f64> = train.iter().map(|r| r.future_spend).collect();
    let v_hold: Vec<f64> = holdout.iter().map(|r| r.future_spend).collect();
    let h_train: Vec<Option<CustomerSummary>> = train.iter().map(|r| r.history).collect();
    let h_hold: Vec<Option<CustomerSummary>> = holdout.iter().map(|r| r.history).collect();
    let started = std::time::Instant::now();
    let step = progress::step(progress, "value model");
    let fitted = ValueModel::fit(&x_train, &h_train, &v_train, &spec.value);
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "value fitted");
    let value = match fitted {
        Ok(model) => {
            let pred = model.predictions(&x_hold, &h_hold).to_vec();
            push_value_metrics(&mut metrics, "value", &pred, &v_hold);
            metrics.push(metric(
                "value.mean_actual",
                v_hold.iter().sum::<f64>() / v_hold.len() as f64,
            ));
            metrics.push(metric(
                "value.mean_predicted",
                pred.iter().sum::<f64>() / pred.len() as f64,
            ));
            if !model.candidates.is_empty() {
                notes.push(value_contest_note(&model));
            }
            // The customer-base model alone on the same holdout rows: the
            // reference a learned value model has to beat.
            if model.learner == ValueLearner::BgNbd {
                push_value_metrics(&mut metrics, "value.bgnbd", &pred, &v_hold);
            } else if model
                .candidates
                .iter()
                .any(|c| c.mae.is_finite() && c.learner == ValueLearner::BgNbd)
            {
                // The kept learner's customer-base model, when it has one, is
                // the one the reference reads: no second fit of it.
                match ValueModel::fit_learner(
                    ValueLearner::BgNbd,
                    model.clv.clone(),
                    &x_train,
                    &h_train,
                    &v_train,
                    &spec.value,
                ) {
                    Ok(reference) => {
                        let p = reference.predictions(&x_hold, &h_hold).to_vec();
                        push_value_metrics(&mut metrics, "value.bgnbd", &p, &v_hold);
                    }
                    Err(e) => {
                        tracing::info!("value: the bg/nbd reference could not be fitted: {e}")
                    }
                }
            }
            Some(model)
        }
        Err(e) => {
            tracing::warn!("value model skipped: {e}");
            None
        }
    };
    step.finish_and_clear();

    // Segments, RFM edges and value tiers.
    let started = std::time::Instant::now();
    let segments = fit_segments(
        spec,
        &schema,
        &train,
        &x_train,
        &x_hold,
        &mut metrics,
        progress,
    )?;

    tracing::info!(seconds = started.elapsed().as_secs_f64(), "segments fitted");

    let step = progress::step(progress, "report data");
    let evaluation = TrainingEvaluation {
        holdout_rows: holdout.len() as u64,
        churn_scores: p_hold.clone(),
        churn_labels: y_hold.clone(),
        value_predicted: value
            .as_ref()
            .map(|v| v.predictions(&x_hold, &h_hold).to_vec())
            .unwrap_or_default(),
        value_actual: v_hold.clone(),
        importance: churn.importance(&schema.names()),
        learner: churn.learner_name(),
        candidates: churn.candidates(),
        calibration: churn.calibration_name(),
    }
    .sampled(MAX_EVALUATION_POINTS);

    metrics.push(metric(
        "baskets.rules",
        baskets.complements.values().map(Vec::len).sum::<usize>() as f64,
    ));
    step.finish_and_clear();

    let value_quantiles = value
        .as_ref()
        .map(|v| v.quantiles_on(&x_train, &h_train))
        .unwrap_or_default();
    let supply = supply.finish(spec, &mut metrics, &mut notes);
    let (credit, partner) = kinds.finish(spec, &mut metrics, &mut notes);
    // A metric that cannot be computed (one class in the rows it needs) is absent.
    metrics.retain(|m| m.value.is_finite());
    Ok(ModelBundle {
        format: crate::model::churn::FORMAT,
        version: 0,
        trained_at: now(),
        source: "store".into(),
        spec: spec.clone(),
        cutoff: Some(cutoff),
        training_rows: train.len() as u64,
        schema,
        churn,
        value,
        segments,
        baskets,
        metrics,
        fingerprint: String::new(),
        notes,
        report: Some(evaluation),
        drift,
        value_quantiles,
        supply,
        credit,
        partner,
    })
}

#[allow(clippy::too_many_arguments)]
fn fit_segments(
    spec: &ModelSpec,
    schema: &FeatureSchema,
    train: &[&Row],
    x_train: &Array2<f64>,
    x_hold: &Array2<f64>,
    metrics: &mut Vec<Metric>,
    progress: &ProgressBar,
) -> Result<Option<SegmentModel>> {
    let names = schema.names();
    let columns: Vec<usize> = spec
        .segments
        .features
        .iter()
        .map(|f| {
            names.iter().position(|n| n == f).ok_or_else(|| {
                Error::invalid(
                    "segments.features",
                    format!("{f:?} is not a feature column of this model"),
                )
            })
        })
        .collect::<Result<_>>()?;
    let step = (train.len() / MAX_SEGMENT_ROWS).max(1);
    let picked: Vec<usize> = (0..train.len()).step_by(step).collect();
    let x = x_train
        .select(ndarray::Axis(0), &picked)
        .select(ndarray::Axis(1), &columns);
    let raw = matrix(
        schema,
        &picked.iter().map(|i| train[*i]).collect::<Vec<_>>(),
        false,
    )
    .select(ndarray::Axis(1), &columns);

    let purchasers: Vec<&Snapshot> = train
        .iter()
        .map(|r| &r.snapshot)
        .filter(|s| s.get(BaseFeature::Frequency) > 0.0)
        .collect();
    let mut rec: Vec<f64> = purchasers
        .iter()
        .map(|s| s.get(BaseFeature::RecencyDays))
        .collect();
    let freq: Vec<f64> = purchasers
        .iter()
        .map(|s| s.get(BaseFeature::Frequency))
        .collect();
    let mut mon: Vec<f64> = purchasers
        .iter()
        .map(|s| s.get(BaseFeature::SpendTotal))
        .collect();
    let rfm = RfmEdges::learn(&mut rec, &freq, &mut mon);

    // k is chosen on training rows; the holdout only measures the choice.
    let silhouette_on = |model: &SegmentModel, rows: &Array2<f64>| -> f64 {
        let step = (rows.nrows() / SILHOUETTE_SAMPLE).max(1);
        let mut points = Vec::new();
        let mut labels = Vec::new();
        for i in (0..rows.nrows()).step_by(step) {
            let mut z: Vec<f64> = columns.iter().map(|c| rows[[i, *c]]).collect();
            model.scaler.apply(&mut z);
            labels.push(model.nearest(&z));
            points.push(z);
        }
        metrics::silhouette(&points, &labels, model.clusters.len())
    };
    let (k_min, k_max) = (spec.segments.clusters_min, spec.segments.clusters_max);
    let bar = progress::counter(
        progress,
        "segments",
        (k_max + 1).saturating_sub(k_min) as u64,
    );
    let mut best: Option<(f64, SegmentModel)> = None;
    for k in k_min..=k_max {
        bar.set_message(format!("k = {k}"));
        let (model, _) = SegmentModel::fit(
            columns.clone(),
            spec.segments.features.clone(),
            &x,
            &raw,
            k,
            spec.segments.seed,
            rfm.clone(),
        )?;
        let score = silhouette_on(&model, x_train);
        metrics.push(metric(&format!("segments.k{k}.train_silhouette"), score));
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, model));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let Some((_, model)) = best else {
        return Ok(None);
    };
    metrics.push(metric("segments.silhouette", silhouette_on(&model, x_hold)));
    metrics.push(metric("segments.clusters", model.clusters.len() as f64));
    Ok(Some(model))
}

fn label_row(
    relationship: Relationship,
    events: &[Event],
    cutoff: Timestamp,
    data_end: Timestamp,
    spec: &ModelSpec,
) -> Row {
    let split = events.partition_point(|e| e.at <= cutoff);
    let agg = Aggregates::from_events(&events[..split]);
    let snapshot = Snapshot::derive(&relationship, &agg, cutoff);
    let history = purchase_history(&agg, cutoff);
    let observed = labels::observe(
        &relationship,
        &agg,
        &events[split..],
        cutoff,
        data_end,
        spec,
    );
    let holdout = in_holdout(&relationship.id, spec.seed, spec.holdout_fraction);
    Row {
        relationship,
        snapshot,
        outcome: observed.outcome,
        future_spend: observed.future_spend,
        history,
        holdout,
    }
}

fn matrix(schema: &FeatureSchema, rows: &[&Row], model_scale: bool) -> Array2<f64> {
    let width = schema.width();
    let mut data = Vec::with_capacity(rows.len() * width);
    let mut buf = Vec::with_capacity(width);
    for r in rows {
        schema.raw_values(&r.relationship, &r.snapshot, &mut buf);
        if model_scale {
            schema.to_model_scale(&mut buf);
        }
        data.extend_from_slice(&buf);
    }
    Array2::from_shape_vec((rows.len(), width), data).expect("every row has the schema's width")
}

fn collect_prices(events: &[Event], sums: &mut BTreeMap<String, (f64, u32)>) {
    for e in events {
        if let EventBody::Purchase {
            amount,
            product_ids,
            quantity,
        } = &e.body
        {
            if product_ids.is_empty() {
                continue;
            }
            let each = amount / (product_ids.len() as f64 * f64::from((*quantity).max(1)));
            for p in product_ids {
                let s = sums.entry(p.clone()).or_default();
                s.0 += each;
                s.1 += 1;
            }
        }
    }
}

/// What the value learners scored out of fold, and which was kept.
fn value_contest_note(model: &ValueModel) -> String {
    let scores: Vec<String> = model
        .candidates
        .iter()
        .map(|c| {
            if c.mae.is_finite() {
                format!(
                    "{} MAE {:.2}, r {:.3}",
                    c.learner.name(),
                    c.mae,
                    c.correlation
                )
            } else {
                format!("{} could not be fitted", c.learner.name())
            }
        })
        .collect();
    format!(
        "value learners out of fold on the training rows: {}; kept {}",
        scores.join("; "),
        model.learner.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_that_arrive_interleaved_train_what_one_pass_in_order_does() {
        use crate::training::demo::{DemoBook, DemoConfig};
        let book = DemoBook::new(DemoConfig {
            relationships: 1_200,
            ..DemoConfig::new(1_790_000_000)
        });
        let items: Vec<(Relationship, Vec<Event>)> =
            (0..book.len()).map(|i| book.relationship(i)).collect();
        let data_end = items
            .iter()
            .flat_map(|(_, events)| events.iter().map(|e| e.at))
            .max()
            .unwrap();
        let mut spec = ModelSpec::demo();
        spec.churn.learners = vec!["logistic".into()];
        let tagged: Vec<(usize, (Relationship, Vec<Event>))> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| (i / 250, item))
            .collect();
        let train = |book: Vec<(usize, (Relationship, Vec<Event>))>| {
            let bundle = train_book(
                book.len(),
                book.into_iter().map(|(part, item)| (part, Ok(item))),
                data_end,
                &spec,
                &[],
                &ProgressBar::hidden(),
            )
            .unwrap();
            serde_json::to_string(&(
                &bundle.schema,
                &bundle.churn,
                &bundle.value,
                &bundle.segments,
                &bundle.baskets,
                &bundle.metrics,
            ))
            .unwrap()
        };
        let in_order = train(tagged.clone());
        // Each part still in order, but the parts taken in turn, the last first.
        let mut parts: Vec<Vec<_>> = vec![Vec::new(); 5];
        for item in tagged {
            parts[item.0].push(item);
        }
        let mut parts: Vec<_> = parts.into_iter().rev().map(Vec::into_iter).collect();
        let mut interleaved = Vec::new();
        while interleaved.len() < book.len() {
            for part in &mut parts {
                interleaved.extend(part.next());
            }
        }
        assert_ne!(interleaved[0].0, 0);
        assert_eq!(train(interleaved), in_order);
    }
}
