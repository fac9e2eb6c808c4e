//! A calibrated logistic risk on a handful of facts, the shape every
//! kind-specific "will it go wrong within the horizon" model shares (an
//! account's serious late payment, a partnership's lapse): standardize,
//! fit linfa's ridge logistic regression, calibrate on the training rows,
//! evaluate on held-out relationships.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::calibrate::{fit_best, Calibrator};
use crate::model::logistic::{churn_sign, fit_logistic};
use crate::model::math::logistic;
use crate::model::metrics as m;
use crate::model::Standardizer;

/// One example: the facts as of a cutoff, whether the event followed within
/// the horizon, and whether the relationship is held out.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRow {
    pub features: Vec<f64>,
    pub happened: bool,
    pub holdout: bool,
}

/// Fewer training rows than this fit no model.
pub const MIN_TRAINING_ROWS: usize = 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskLogit {
    pub scaler: Standardizer,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    pub calibrator: Calibrator,
}

impl RiskLogit {
    /// Fits on the rows that are not held out and evaluates on those that
    /// are; metrics are named `<prefix>.roc_auc`, `.brier`, `.ece`,
    /// `.base_rate`, `.training_rows`, `.holdout_rows`.
    ///
    /// # Errors
    /// `Training` with fewer than [`MIN_TRAINING_ROWS`] training rows or one
    /// outcome only.
    pub fn fit(rows: &[RiskRow], l2: f64, prefix: &str) -> Result<(RiskLogit, Vec<(String, f64)>)> {
        let train: Vec<&RiskRow> = rows.iter().filter(|r| !r.holdout).collect();
        if train.len() < MIN_TRAINING_ROWS {
            return Err(Error::training(format!(
                "{prefix}: {} training histories, fewer than {MIN_TRAINING_ROWS}",
                train.len()
            )));
        }
        let width = train[0].features.len();
        let x = Array2::from_shape_fn((train.len(), width), |(i, j)| train[i].features[j]);
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(&x);
        let labels: Vec<bool> = train.iter().map(|r| r.happened).collect();
        let fitted = fit_logistic(z.view(), &labels, l2, 200, prefix)?;
        let sign = churn_sign(&fitted);
        let mut model = RiskLogit {
            scaler,
            coefficients: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
            calibrator: Calibrator::Identity,
        };
        let raw: Vec<f64> = train
            .iter()
            .map(|r| model.probability(&r.features))
            .collect();
        model.calibrator = fit_best(&raw, &labels);
        let hold: Vec<&RiskRow> = rows.iter().filter(|r| r.holdout).collect();
        let p: Vec<f64> = hold
            .iter()
            .map(|r| model.probability(&r.features))
            .collect();
        let y: Vec<bool> = hold.iter().map(|r| r.happened).collect();
        let name = |what: &str| format!("{prefix}.{what}");
        let mut metrics = vec![
            (name("training_rows"), train.len() as f64),
            (name("holdout_rows"), hold.len() as f64),
            (
                name("base_rate"),
                labels.iter().filter(|l| **l).count() as f64 / labels.len() as f64,
            ),
        ];
        if y.iter().any(|v| *v) && y.iter().any(|v| !*v) {
            metrics.push((name("roc_auc"), m::roc_auc(&p, &y)));
            metrics.push((name("brier"), m::brier(&p, &y)));
            metrics.push((name("ece"), m::expected_calibration_error(&p, &y)));
        }
        Ok((model, metrics))
    }

    /// The calibrated probability of one row of facts.
    pub fn probability(&self, features: &[f64]) -> f64 {
        let logit = self.intercept
            + self
                .standardized(features)
                .iter()
                .zip(&self.coefficients)
                .map(|(x, w)| x * w)
                .sum::<f64>();
        self.calibrator.apply(logistic(logit))
    }

    /// Each fact's share of the log-odds against the average relationship of
    /// the training book (inputs are standardized, so the average adds 0).
    pub fn contributions(&self, features: &[f64]) -> Vec<f64> {
        self.standardized(features)
            .iter()
            .zip(&self.coefficients)
            .map(|(x, w)| x * w)
            .collect()
    }

    fn standardized(&self, features: &[f64]) -> Vec<f64> {
        let mut z = features.to_vec();
        self.scaler.apply(&mut z);
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_which_way_a_fact_raises_the_risk_and_evaluates_on_held_out_rows() {
        let rows: Vec<RiskRow> = (0..400)
            .map(|i| {
                let x = f64::from(i % 20);
                RiskRow {
                    features: vec![x, f64::from(i % 7)],
                    happened: (i * 7919) % 20 < i % 20,
                    holdout: i % 5 == 0,
                }
            })
            .collect();
        let (model, metrics) = RiskLogit::fit(&rows, 1.0, "t").unwrap();
        assert!(model.probability(&[18.0, 3.0]) > model.probability(&[2.0, 3.0]));
        let c = model.contributions(&[18.0, 3.0]);
        assert!(c[0] > 0.0, "{c:?}");
        let auc = metrics.iter().find(|(n, _)| n == "t.roc_auc").unwrap().1;
        assert!(auc > 0.7, "{metrics:?}");
        let few = &rows[..20];
        assert!(RiskLogit::fit(few, 1.0, "t").is_err());
    }
}
