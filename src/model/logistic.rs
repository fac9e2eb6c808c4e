//! Logistic regression as a churn [`Learner`]: linfa-logistic fits it, and
//! serving evaluates the fitted coefficients directly (the same arithmetic
//! without an ndarray allocation per request; a unit test holds the two equal).

use indicatif::ProgressBar;
use linfa::prelude::*;
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use ndarray::{Array1, ArrayView2};

use crate::error::{Error, Result};
use crate::model::learner::{Classifier, Learner};
use crate::model::math::{linear, logistic};

/// L2-penalised logistic regression, fitted by linfa-logistic (L-BFGS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticLearner {
    pub l2: f64,
    pub max_iterations: u64,
}

impl Learner for LogisticLearner {
    type Fitted = FittedLogisticRegression<f64, bool>;

    fn name(&self) -> &'static str {
        "logistic regression"
    }

    fn fit(&self, z: ArrayView2<f64>, labels: &[bool], _: &ProgressBar) -> Result<Self::Fitted> {
        fit_logistic(z, labels, self.l2, self.max_iterations, "churn")
    }
}

impl Classifier for FittedLogisticRegression<f64, bool> {
    fn probability(&self, z: &[f64]) -> f64 {
        logistic(churn_logit(self, z))
    }
}

/// # Errors
/// `Training` when `labels` hold one class only or linfa fails.
pub fn fit_logistic(
    z: ArrayView2<f64>,
    labels: &[bool],
    l2: f64,
    max_iterations: u64,
    what: &str,
) -> Result<FittedLogisticRegression<f64, bool>> {
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 || positives == labels.len() {
        return Err(Error::training(format!(
            "{what}: every training label is {}; the data needs both outcomes",
            positives > 0
        )));
    }
    let dataset = Dataset::new(z.to_owned(), Array1::from(labels.to_vec()));
    // The loss is summed over rows: keep the gradient tolerance per-row (see ValueModel::fit).
    LogisticRegression::default()
        .alpha(l2)
        .max_iterations(max_iterations)
        .gradient_tolerance(1e-5 * z.nrows() as f64)
        .fit(&dataset)
        .map_err(|e| Error::training(format!("{what}: {e}")))
}

/// linfa-logistic's "positive" class is the more frequent label, not `true`:
/// +1 when the model's probabilities are P(churn), -1 when they are P(stay).
pub fn churn_sign(model: &FittedLogisticRegression<f64, bool>) -> f64 {
    if model.labels().pos.class {
        1.0
    } else {
        -1.0
    }
}

/// Churn log-odds of a standardized row under a logistic model, oriented to churn.
pub fn churn_logit(model: &FittedLogisticRegression<f64, bool>, z: &[f64]) -> f64 {
    churn_sign(model) * linear(model.params(), model.intercept(), z)
}
