//! Training from a snapshot table: one row per relationship with a label, as
//! exported from a warehouse. The rows' columns become attributes, so the
//! learned schema, the models and serving are the same as for event data.

use indicatif::ProgressBar;
use ndarray::Array2;

use crate::error::{Error, Result};
use crate::features::{Aggregates, AttributeSelection, FeatureSchema, FeatureSpec, Snapshot};
use crate::model::labels::TableLabel;
use crate::model::spec::TableSource;
use crate::model::{Baskets, ChurnModel, ModelBundle, ModelSpec, TrainingEvaluation, ValueModel};
use crate::progress;
use crate::time::now;
use crate::training::evaluation::{
    in_holdout, metric, push_classifier_metrics, push_value_metrics,
};
use crate::training::load_notes;
use crate::training::sources::{load_table, TableRow};
use crate::SharedStore;

/// # Errors
/// `BadInput` for the file, `Training` when a model cannot be fitted or the
/// holdout is too small to measure it.
pub fn train_table(
    source: &TableSource,
    spec: &ModelSpec,
    progress: &ProgressBar,
) -> Result<ModelBundle> {
    let step = progress::step(progress, format!("reading {}", source.path));
    let (rows, load) = load_table(source, now())?;
    step.finish_and_clear();
    let (train, holdout): (Vec<&TableRow>, Vec<&TableRow>) =
        rows.iter().partition(|r| !held_out(r, spec));
    // No holdout at all is asked for (holdout_fraction = 0, or a split
    // column that holds nothing out): every row trains and the version has
    // no holdout metrics. A holdout too small to measure anything is refused.
    if train.len() < 50 || (!holdout.is_empty() && holdout.len() < 20) {
        return Err(Error::training(format!(
            "{} training and {} holdout rows are too few",
            train.len(),
            holdout.len()
        )));
    }
    // Tables carry no events: only their columns are features.
    let features = FeatureSpec {
        base: vec![],
        kind: false,
        attributes: AttributeSelection::Auto,
        max_categories: spec.features.max_categories,
        drop: spec.features.drop.clone(),
    };
    let step = progress::step(progress, "feature schema and matrices");
    let schema = FeatureSchema::learn(&features, train.iter().map(|r| &r.relationship), &[])?;
    let x_train = matrix(&schema, &train);
    // Tables have no log-scaled base features: model scale is the raw scale.
    let drift = crate::model::drift_references(&schema.names(), &x_train);
    let x_hold = matrix(&schema, &holdout);
    let y_train: Vec<bool> = train.iter().map(|r| r.churned).collect();
    let y_hold: Vec<bool> = holdout.iter().map(|r| r.churned).collect();
    step.finish_and_clear();
    let mut metrics = Vec::new();
    let churn = ChurnModel::fit_label(&x_train, &y_train, &spec.churn, progress)?;
    let step = progress::step(progress, "churn: holdout evaluation");
    let p_hold = churn.probabilities(&x_hold).to_vec();
    push_classifier_metrics(&mut metrics, "churn", &p_hold, &y_hold);
    metrics.push(metric(
        "churn.base_rate",
        y_hold.iter().filter(|y| **y).count() as f64 / y_hold.len() as f64,
    ));
    step.finish_and_clear();
    let step = progress::step(progress, "value model");
    let value = match source.value_column {
        Some(_) => {
            let target = |rows: &[&TableRow]| {
                rows.iter()
                    .map(|r| r.value.unwrap_or(0.0))
                    .collect::<Vec<_>>()
            };
            // A table has no purchase history: the ridge alone.
            let model = ValueModel::fit(
                &x_train,
                &vec![None; x_train.nrows()],
                &target(&train),
                &spec.value,
            )?;
            let pred = model.predictions(&x_hold, &[]).to_vec();
            let actual = target(&holdout);
            push_value_metrics(&mut metrics, "value", &pred, &actual);
            Some(model)
        }
        None => None,
    };
    step.finish_and_clear();
    let evaluation = TrainingEvaluation {
        holdout_rows: holdout.len() as u64,
        churn_scores: p_hold,
        churn_labels: y_hold,
        value_predicted: value
            .as_ref()
            .map(|v| v.predictions(&x_hold, &[]).to_vec())
            .unwrap_or_default(),
        value_actual: holdout.iter().map(|r| r.value.unwrap_or(0.0)).collect(),
        importance: churn.importance(&schema.names()),
        learner: churn.learner_name(),
        candidates: churn.candidates(),
        calibration: churn.calibration_name(),
    };
    let mut notes = load_notes(&load);
    notes.push("a snapshot table has no events: no timing curve, RFM or basket rules".into());
    notes.extend(churn.selection_notes());
    let value_quantiles = value
        .as_ref()
        .map(|v| v.quantiles_on(&x_train, &[]))
        .unwrap_or_default();
    // A metric that cannot be computed (one class in the rows it needs) is absent.
    metrics.retain(|m| m.value.is_finite());
    Ok(ModelBundle {
        format: crate::model::churn::FORMAT,
        version: 0,
        trained_at: now(),
        source: source.path.clone(),
        spec: spec.clone(),
        cutoff: None,
        training_rows: train.len() as u64,
        schema,
        churn,
        value,
        segments: None,
        baskets: Baskets::default(),
        metrics,
        fingerprint: load.fingerprint,
        notes,
        report: Some(evaluation),
        drift,
        value_quantiles,
        supply: None,
        credit: None,
        partner: None,
    })
}

/// Keeps a table's rows with `version` (its namespace, see
/// [`crate::model::bundle::TABLE_ROWS_ARTIFACT`]), so that while the version
/// is active its rows are scored by id without ever being written into the
/// book; and their labels and split beside them
/// ([`crate::model::bundle::TABLE_LABELS_ARTIFACT`]).
///
/// # Errors
/// `BadInput` for the file, `Storage` on write failure.
pub fn save_rows(
    store: &SharedStore,
    version: u64,
    source: &TableSource,
    spec: &ModelSpec,
) -> Result<usize> {
    use crate::model::bundle::{
        encode_table_labels, encode_table_rows, TABLE_LABELS_ARTIFACT, TABLE_ROWS_ARTIFACT,
    };
    let (rows, _) = load_table(source, now())?;
    let labels: Vec<TableLabel> = rows
        .iter()
        .map(|r| TableLabel {
            id: r.relationship.id.clone(),
            churned: r.churned,
            value: r.value,
            holdout: held_out(r, spec),
        })
        .collect();
    let relationships: Vec<crate::domain::Relationship> =
        rows.into_iter().map(|r| r.relationship).collect();
    store.put_model_artifact(
        version,
        TABLE_ROWS_ARTIFACT,
        &encode_table_rows(&relationships)?,
    )?;
    store.put_model_artifact(
        version,
        TABLE_LABELS_ARTIFACT,
        &encode_table_labels(&labels)?,
    )?;
    store.flush_blocking()?;
    Ok(relationships.len())
}

/// The spec's split column where it has one, else the seeded split by id.
fn held_out(row: &TableRow, spec: &ModelSpec) -> bool {
    row.holdout
        .unwrap_or_else(|| in_holdout(&row.relationship.id, spec.seed, spec.holdout_fraction))
}

fn matrix(schema: &FeatureSchema, rows: &[&TableRow]) -> Array2<f64> {
    let width = schema.width();
    let empty = Aggregates::default();
    let mut data = Vec::with_capacity(rows.len() * width);
    let mut buf = Vec::with_capacity(width);
    for r in rows {
        let snapshot = Snapshot::derive(&r.relationship, &empty, r.relationship.created_at);
        schema.raw_values(&r.relationship, &snapshot, &mut buf);
        schema.to_model_scale(&mut buf);
        data.extend_from_slice(&buf);
    }
    Array2::from_shape_vec((rows.len(), width), data).expect("every row has the schema's width")
}
