//! What training from the store, a purchase log and a table share: the
//! holdout split and the metrics recorded for a classifier.

use crate::model::metrics;
use crate::model::Metric;

pub use crate::model::labels::in_holdout;

/// `<prefix>.mae`, `.rmse` and `.correlation` of value predictions.
pub fn push_value_metrics(out: &mut Vec<Metric>, prefix: &str, pred: &[f64], actual: &[f64]) {
    out.push(metric(&format!("{prefix}.mae"), metrics::mae(pred, actual)));
    out.push(metric(
        &format!("{prefix}.rmse"),
        metrics::rmse(pred, actual),
    ));
    out.push(metric(
        &format!("{prefix}.correlation"),
        metrics::correlation(pred, actual),
    ));
}

pub fn push_classifier_metrics(out: &mut Vec<Metric>, prefix: &str, p: &[f64], y: &[bool]) {
    out.push(metric(&format!("{prefix}.roc_auc"), metrics::roc_auc(p, y)));
    out.push(metric(&format!("{prefix}.pr_auc"), metrics::pr_auc(p, y)));
    out.push(metric(
        &format!("{prefix}.log_loss"),
        metrics::log_loss(p, y),
    ));
    out.push(metric(&format!("{prefix}.brier"), metrics::brier(p, y)));
    out.push(metric(
        &format!("{prefix}.ece"),
        metrics::expected_calibration_error(p, y),
    ));
    out.push(metric(
        &format!("{prefix}.top_decile_lift"),
        metrics::lift_by_decile(p, y)[0],
    ));
}

pub fn metric(name: &str, value: f64) -> Metric {
    Metric {
        name: name.to_string(),
        value,
    }
}
