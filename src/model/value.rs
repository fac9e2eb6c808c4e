//! Value: the expected spend within the value horizon.

use linfa::prelude::*;
use linfa_linear::{FittedLinearRegression, LinearRegression};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::math::linear;
use crate::model::spec;
use crate::model::standardize::Standardizer;

/// Ridge regression on `log1p(spend)` (linfa's least squares on rows augmented
/// with `sqrt(l2) * I`), retransformed with a scale that matches the mean spend
/// of the training rows, so the prediction is an expected spend within the
/// horizon, not its geometric mean.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValueModel {
    pub horizon_days: u32,
    pub scaler: Standardizer,
    /// Mean of `log1p(spend)` on the training rows: the intercept.
    pub intercept: f64,
    /// Scale of `exp(eta)` matching the training rows' mean spend.
    pub smearing: f64,
    pub model: FittedLinearRegression<f64>,
}

impl ValueModel {
    /// # Errors
    /// `Training` when the targets are all zero or linfa fails.
    pub fn fit(x: &Array2<f64>, target: &[f64], params: &spec::ValueParams) -> Result<ValueModel> {
        if target.iter().all(|t| *t <= 0.0) {
            return Err(Error::training(
                "value: no spend after the cutoff to learn from",
            ));
        }
        let scaler = Standardizer::fit(x.view());
        let y: Vec<f64> = target.iter().map(|t| t.max(0.0).ln_1p()).collect();
        let intercept = y.iter().sum::<f64>() / y.len() as f64;
        // Standardized columns have mean zero, so the intercept is the target
        // mean and the ridge rows (target 0) need not touch it. The rows are
        // standardized in place in one allocation: at a million rows each copy
        // of the matrix is hundreds of MB.
        let (n, width) = x.dim();
        let mut rows = Array2::zeros((n + width, width));
        rows.slice_mut(ndarray::s![..n, ..]).assign(x);
        for mut row in rows.slice_mut(ndarray::s![..n, ..]).rows_mut() {
            if let Some(values) = row.as_slice_mut() {
                scaler.apply(values);
            }
        }
        for j in 0..width {
            rows[[n + j, j]] = params.l2.sqrt();
        }
        let mut centred: Vec<f64> = y.iter().map(|v| v - intercept).collect();
        centred.extend(std::iter::repeat_n(0.0, width));
        let dataset = Dataset::new(rows, Array1::from(centred));
        let model = LinearRegression::new()
            .with_intercept(false)
            .fit(&dataset)
            .map_err(|e| Error::training(format!("value: {e}")))?;
        let z = dataset.records.slice(ndarray::s![..n, ..]);
        // Retransform: scale exp(eta) so that the mean prediction equals the mean
        // spend on the training rows. Duan's smearing overshot tenfold on
        // zero-inflated, heavy-tailed spend (one large residual dominates).
        let fitted = z.dot(model.params());
        let mean_target = target.iter().map(|t| t.max(0.0)).sum::<f64>() / target.len() as f64;
        let mean_exp = fitted
            .iter()
            .map(|f| (intercept + f).min(50.0).exp())
            .sum::<f64>()
            / fitted.len() as f64;
        let smearing = (mean_target + 1.0) / mean_exp;
        Ok(ValueModel {
            horizon_days: params.horizon_days,
            scaler,
            intercept,
            smearing,
            model,
        })
    }

    pub fn predict(&self, z: &[f64]) -> f64 {
        let eta = linear(self.model.params(), self.intercept, z);
        (eta.min(50.0).exp() * self.smearing - 1.0).max(0.0)
    }

    /// Batch predictions through linfa itself.
    pub fn predictions(&self, x: &Array2<f64>) -> Array1<f64> {
        let eta = self.model.predict(&self.scaler.transform(x)) + self.intercept;
        eta.mapv(|e| (e.min(50.0).exp() * self.smearing - 1.0).max(0.0))
    }

    /// The tier edges of this model's predictions on the training rows.
    pub fn quantiles_on(&self, x: &Array2<f64>) -> Vec<f64> {
        value_quantiles(self.predictions(x).as_slice().unwrap_or(&[]))
    }
}

/// Quantiles of the predicted values at every half percent, for value tiers.
pub fn value_quantiles(predicted: &[f64]) -> Vec<f64> {
    let mut values: Vec<f64> = predicted
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return vec![];
    }
    let qs: Vec<f64> = (0..=200).map(|i| f64::from(i) / 200.0).collect();
    crate::model::math::quantiles(&mut values, &qs)
}
