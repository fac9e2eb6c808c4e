//! Value: the expected spend within the value horizon.
//!
//! Three learners compete for it on out-of-fold rows of the training set, and
//! the one with the lowest mean absolute error is refitted on every row and
//! kept (every one predicts a mean, so the choice is between estimates of
//! the same quantity, not between a mean and a median):
//! - **ridge**: ridge regression of `log1p(spend)` on the feature row,
//!   retransformed so its mean prediction matches the training rows' mean;
//! - **bg/nbd + gamma-gamma**: the customer-base model of [`crate::model::clv`]
//!   on each relationship's purchase history (repeat occasions, recency, age,
//!   spend per occasion), expected purchases in the horizon × expected spend
//!   per purchase; a relationship without a purchase gets the training mean of
//!   those without one;
//! - **ridge on bg/nbd**: the ridge with that model's outputs (log expected
//!   purchases, probability alive, log expected spend) as three more columns;
//! - **tweedie on bg/nbd**: on the same columns, a Tweedie regression
//!   (power 1.5, log link) of the spend itself, which fits zero and large
//!   spends as one compound Poisson-Gamma quantity and predicts a mean
//!   directly, with no retransformation. It is fitted by iteratively
//!   reweighted least squares, each step the weighted ridge's normal
//!   equations (linfa's own `TweedieRegressor`, by L-BFGS, took minutes on
//!   4,000 rows where this takes milliseconds).
//!
//! The heavy tail is held in two ways: every standardized column is clamped to
//! the range it had on the training rows (a log-scale regression extrapolated
//! beyond it is what turns one very large customer into a tenfold
//! overestimate), and no prediction exceeds the largest spend any training row
//! had within the horizon. A table has no purchase history: only the ridge
//! competes there.

use linfa::prelude::*;
use linfa_linear::{FittedLinearRegression, LinearRegression};
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::Aggregates;
use crate::model::clv::{BgNbdParams, CustomerSummary, FittedClv, GammaGammaParams};
use crate::model::math::{linear, solve_positive_definite};
use crate::model::metrics;
use crate::model::spec;
use crate::model::standardize::Standardizer;
use crate::time::{day_of, Timestamp};

/// Rows below which the learners do not compete: the ridge is kept.
pub const MIN_ROWS_FOR_CHOICE: usize = 500;
/// Repeat buyers below which the customer-base model is not fitted.
pub const MIN_REPEAT_BUYERS: usize = 100;
/// Folds of the out-of-fold contest.
const FOLDS: usize = 5;
/// Columns the customer-base model adds for the learners that read it.
const CLV_COLUMNS: usize = 3;
/// Tweedie power between Poisson (1) and Gamma (2): a point mass at zero and
/// a continuous, right-skewed spend above it.
const TWEEDIE_POWER: f64 = 1.5;

/// The value learners, by the names reports and ListModels show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueLearner {
    #[default]
    Ridge,
    BgNbd,
    RidgeOnBgNbd,
    TweedieOnBgNbd,
}

impl ValueLearner {
    pub const ALL: [ValueLearner; 4] = [
        ValueLearner::Ridge,
        ValueLearner::BgNbd,
        ValueLearner::RidgeOnBgNbd,
        ValueLearner::TweedieOnBgNbd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ValueLearner::Ridge => "ridge",
            ValueLearner::BgNbd => "bg/nbd + gamma-gamma",
            ValueLearner::RidgeOnBgNbd => "ridge on bg/nbd",
            ValueLearner::TweedieOnBgNbd => "tweedie on bg/nbd",
        }
    }

    /// The part of a metric name that names it: `value.<key>.mae`.
    pub fn key(self) -> &'static str {
        match self {
            ValueLearner::Ridge => "ridge",
            ValueLearner::BgNbd => "bgnbd",
            ValueLearner::RidgeOnBgNbd => "ridge_bgnbd",
            ValueLearner::TweedieOnBgNbd => "tweedie_bgnbd",
        }
    }

    fn uses_history(self) -> bool {
        self != ValueLearner::Ridge
    }

    /// Whether the customer-base model's columns join the feature row.
    fn widens(self) -> bool {
        matches!(
            self,
            ValueLearner::RidgeOnBgNbd | ValueLearner::TweedieOnBgNbd
        )
    }
}

/// One learner's out-of-fold errors on the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueCandidate {
    pub learner: ValueLearner,
    pub mae: f64,
    pub rmse: f64,
    pub correlation: f64,
}

/// A relationship's purchases as of `t` in the customer-base model's terms,
/// in days; `None` before its first purchase. `agg` must fold only events at
/// or before `t`. The spend per occasion is the mean over every occasion, the
/// first included (the aggregates keep no per-occasion detail beyond the
/// recent window); training and serving read it the same way.
pub fn purchase_history(agg: &Aggregates, t: Timestamp) -> Option<CustomerSummary> {
    let (first, last) = (agg.first_purchase?, agg.last_purchase?);
    if agg.occasions == 0 {
        return None;
    }
    let first_day = day_of(first);
    let age = f64::from((day_of(t) - first_day).max(0));
    let frequency = agg.occasions - 1;
    let (recency, mean_spend) = if frequency == 0 {
        (0.0, 0.0)
    } else {
        (
            f64::from((day_of(last) - first_day).max(0)).min(age),
            (agg.spend_total / f64::from(agg.occasions)).max(0.0),
        )
    };
    Some(CustomerSummary {
        frequency,
        recency,
        age,
        mean_spend,
    })
}

/// Expected spend within the horizon: one of [`ValueLearner`], with the
/// ridge it always carries (on the feature row, or on the row and the
/// customer-base columns; for [`ValueLearner::BgNbd`] it answers for the
/// relationships without a purchase).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValueModel {
    pub horizon_days: u32,
    pub scaler: Standardizer,
    /// Mean of `log1p(spend)` on the training rows: the intercept.
    pub intercept: f64,
    /// Scale of `exp(eta)` matching the training rows' mean spend.
    pub smearing: f64,
    pub model: FittedLinearRegression<f64>,
    /// Each standardized column's range on the training rows.
    #[serde(default)]
    pub bounds: Vec<(f64, f64)>,
    #[serde(default)]
    pub learner: ValueLearner,
    /// The customer-base model, for the learners that read it.
    #[serde(default)]
    pub clv: Option<FittedClv>,
    /// The Tweedie regression on the standardized, clamped wide row.
    #[serde(default)]
    pub tweedie: Option<Tweedie>,
    /// The largest spend of a training row within the horizon.
    #[serde(default)]
    pub cap: Option<f64>,
    /// Every learner that competed, with its out-of-fold errors.
    #[serde(default)]
    pub candidates: Vec<ValueCandidate>,
}

impl ValueModel {
    /// Fits the learners on model-scale rows `x`, each row's purchase history
    /// (`None` for a table, or before a first purchase) and spend within the
    /// horizon, and keeps the one with the lowest out-of-fold error.
    ///
    /// # Errors
    /// `Training` when the targets are all zero or the ridge cannot be fitted.
    pub fn fit(
        x: &Array2<f64>,
        histories: &[Option<CustomerSummary>],
        target: &[f64],
        params: &spec::ValueParams,
    ) -> Result<ValueModel> {
        if target.iter().all(|t| *t <= 0.0) {
            return Err(Error::training(
                "value: no spend after the cutoff to learn from",
            ));
        }
        let repeat_buyers = histories
            .iter()
            .flatten()
            .filter(|h| h.frequency > 0)
            .count();
        if x.nrows() < MIN_ROWS_FOR_CHOICE || repeat_buyers < MIN_REPEAT_BUYERS {
            return Self::fit_learner(ValueLearner::Ridge, None, x, histories, target, params);
        }
        let candidates = Self::contest(x, histories, target, params);
        let mut ranked: Vec<&ValueCandidate> =
            candidates.iter().filter(|c| c.mae.is_finite()).collect();
        ranked.sort_by(|a, b| a.mae.total_cmp(&b.mae));
        // The customer-base model on every row, fitted once for whichever
        // learner that reads it is kept.
        let clv = fit_clv(histories);
        let mut last_error = None;
        for c in ranked {
            let clv = match (&clv, c.learner.uses_history()) {
                (Ok(clv), true) => Some(clv.clone()),
                // Out of fold it fitted on every fold; if it cannot on all
                // rows, the next learner in the ranking is tried.
                (Err(_), true) => continue,
                (_, false) => None,
            };
            match Self::fit_learner(c.learner, clv, x, histories, target, params) {
                Ok(mut model) => {
                    model.candidates = candidates;
                    return Ok(model);
                }
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) => Err(e),
            None => Self::fit_learner(ValueLearner::Ridge, None, x, histories, target, params),
        }
    }

    /// Every learner's errors on rows it did not train on (fold `i % 5`).
    fn contest(
        x: &Array2<f64>,
        histories: &[Option<CustomerSummary>],
        target: &[f64],
        params: &spec::ValueParams,
    ) -> Vec<ValueCandidate> {
        let n = x.nrows();
        let mut predicted = vec![vec![f64::NAN; n]; ValueLearner::ALL.len()];
        for k in 0..FOLDS {
            let (train, test): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| i % FOLDS != k);
            let x_train = x.select(Axis(0), &train);
            let x_test = x.select(Axis(0), &test);
            let pick = |rows: &[usize]| -> Vec<Option<CustomerSummary>> {
                rows.iter().map(|&i| histories[i]).collect()
            };
            let t_train: Vec<f64> = train.iter().map(|&i| target[i]).collect();
            let (h_train, h_test) = (pick(&train), pick(&test));
            // One customer-base model per fold serves the three learners that read it.
            let clv = fit_clv(&h_train);
            if let Err(e) = &clv {
                tracing::info!("value: the learners that read bg/nbd are left out: {e}");
            }
            for (slot, learner) in ValueLearner::ALL.into_iter().enumerate() {
                let clv = match (&clv, learner.uses_history()) {
                    (Ok(clv), true) => Some(clv.clone()),
                    (Err(_), true) => continue,
                    (_, false) => None,
                };
                let started = std::time::Instant::now();
                let fitted = Self::fit_learner(learner, clv, &x_train, &h_train, &t_train, params);
                tracing::debug!(
                    learner = learner.name(),
                    fold = k,
                    seconds = started.elapsed().as_secs_f64(),
                    "value learner fitted"
                );
                match fitted {
                    Ok(model) => {
                        for (j, p) in model.predictions(&x_test, &h_test).iter().enumerate() {
                            predicted[slot][test[j]] = *p;
                        }
                    }
                    Err(e) => tracing::info!("value: {} left out: {e}", learner.name()),
                }
            }
        }
        ValueLearner::ALL
            .into_iter()
            .zip(predicted)
            .map(|(learner, p)| {
                let complete = p.iter().all(|v| v.is_finite());
                let score = |f: fn(&[f64], &[f64]) -> f64| {
                    if complete {
                        f(&p, target)
                    } else {
                        f64::NAN
                    }
                };
                ValueCandidate {
                    learner,
                    mae: score(metrics::mae),
                    rmse: score(metrics::rmse),
                    correlation: score(metrics::correlation),
                }
            })
            .collect()
    }

    /// Fits one learner on every row given. `clv` is a customer-base model
    /// already fitted on these histories, for a learner that reads one; with
    /// `None` such a learner fits its own.
    ///
    /// # Errors
    /// `Training` when the customer-base model or the ridge cannot be fitted.
    pub fn fit_learner(
        learner: ValueLearner,
        clv: Option<FittedClv>,
        x: &Array2<f64>,
        histories: &[Option<CustomerSummary>],
        target: &[f64],
        params: &spec::ValueParams,
    ) -> Result<ValueModel> {
        let clv = match clv {
            _ if !learner.uses_history() => None,
            Some(clv) => Some(clv),
            None => Some(fit_clv(histories)?),
        };
        let horizon = f64::from(params.horizon_days);
        let rows = match (&clv, learner) {
            (Some(clv), learner) if learner.widens() => {
                let mut wide = Array2::zeros((x.nrows(), x.ncols() + CLV_COLUMNS));
                for (i, mut row) in wide.rows_mut().into_iter().enumerate() {
                    let (left, right) = row
                        .as_slice_mut()
                        .map(|s| s.split_at_mut(x.ncols()))
                        .unwrap_or_default();
                    left.copy_from_slice(x.row(i).as_slice().unwrap_or(&[]));
                    right.copy_from_slice(&clv_columns(clv, histories[i].as_ref(), horizon));
                }
                std::borrow::Cow::Owned(wide)
            }
            _ => std::borrow::Cow::Borrowed(x),
        };
        let ridge = LogRidge::fit(&rows, target, params.l2)?;
        let tweedie = if learner == ValueLearner::TweedieOnBgNbd {
            Some(fit_tweedie(&ridge, &rows, target, params.l2)?)
        } else {
            None
        };
        let cap = target.iter().copied().fold(0.0, f64::max);
        Ok(ValueModel {
            horizon_days: params.horizon_days,
            scaler: ridge.scaler,
            intercept: ridge.intercept,
            smearing: ridge.smearing,
            model: ridge.model,
            bounds: ridge.bounds,
            learner,
            clv,
            tweedie,
            cap: Some(cap),
            candidates: vec![],
        })
    }

    /// Whether this model reads feature rows of `width` columns, and its
    /// parts agree on the width they were fitted at.
    pub fn has_width(&self, width: usize) -> bool {
        let fitted = self.model.params().len();
        let extra = if self.learner.widens() && self.clv.is_some() {
            CLV_COLUMNS
        } else {
            0
        };
        fitted == width + extra
            && self.scaler.mean.len() == fitted
            && (self.bounds.is_empty() || self.bounds.len() == fitted)
            && self
                .tweedie
                .as_ref()
                .is_none_or(|t| t.weights.len() == fitted)
    }

    /// The expected spend of one model-scale row (not standardized) with its
    /// purchase history.
    pub fn predict(&self, x: &[f64], history: Option<&CustomerSummary>) -> f64 {
        let horizon = f64::from(self.horizon_days);
        let mut z = Vec::with_capacity(x.len() + CLV_COLUMNS);
        z.extend_from_slice(x);
        let value = match (&self.clv, self.learner) {
            (Some(clv), ValueLearner::BgNbd) => match history
                .and_then(|h| clv.predict(h, horizon).ok())
                .map(|p| p.expected_spend)
                .filter(|v| v.is_finite())
            {
                Some(v) => v.max(0.0),
                None => self.ridge(&mut z),
            },
            (Some(clv), learner) if learner.widens() => {
                z.extend_from_slice(&clv_columns(clv, history, horizon));
                match &self.tweedie {
                    Some(t) => {
                        self.standardize(&mut z);
                        let v = t.predict(&z);
                        if v.is_finite() {
                            v
                        } else {
                            0.0
                        }
                    }
                    None => self.ridge(&mut z),
                }
            }
            _ => self.ridge(&mut z),
        };
        self.cap.map_or(value, |cap| value.min(cap))
    }

    /// Standardizes a row in place and clamps it to the training range.
    fn standardize(&self, z: &mut [f64]) {
        self.scaler.apply(z);
        for (v, (lo, hi)) in z.iter_mut().zip(&self.bounds) {
            *v = v.clamp(*lo, *hi);
        }
    }

    fn ridge(&self, z: &mut [f64]) -> f64 {
        self.standardize(z);
        let eta = linear(self.model.params(), self.intercept, z);
        (eta.min(50.0).exp() * self.smearing - 1.0).max(0.0)
    }

    /// [`ValueModel::predict`] of every row.
    pub fn predictions(
        &self,
        x: &Array2<f64>,
        histories: &[Option<CustomerSummary>],
    ) -> Array1<f64> {
        x.rows()
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                self.predict(
                    row.as_slice().unwrap_or(&[]),
                    histories.get(i).and_then(Option::as_ref),
                )
            })
            .collect()
    }

    /// The tier edges of this model's predictions on the training rows.
    pub fn quantiles_on(&self, x: &Array2<f64>, histories: &[Option<CustomerSummary>]) -> Vec<f64> {
        value_quantiles(self.predictions(x, histories).as_slice().unwrap_or(&[]))
    }
}

/// The customer-base model's view of one relationship: log expected
/// purchases, probability alive and log expected spend; zeros before a
/// first purchase (the feature row says that it has none).
fn clv_columns(
    clv: &FittedClv,
    history: Option<&CustomerSummary>,
    horizon: f64,
) -> [f64; CLV_COLUMNS] {
    match history.and_then(|h| clv.predict(h, horizon).ok()) {
        Some(p) if p.expected_spend.is_finite() && p.expected_purchases.is_finite() => [
            p.expected_purchases.max(0.0).ln_1p(),
            p.probability_alive,
            p.expected_spend.max(0.0).ln_1p(),
        ],
        _ => [0.0; CLV_COLUMNS],
    }
}

/// BG/NBD on every history, Gamma-Gamma on the repeat buyers' spend.
///
/// # Errors
/// `Training` with too few repeat buyers, or when either fit fails or gives
/// a population whose mean spend is not finite.
fn fit_clv(histories: &[Option<CustomerSummary>]) -> Result<FittedClv> {
    let all: Vec<CustomerSummary> = histories.iter().flatten().copied().collect();
    let repeat: Vec<CustomerSummary> = all
        .iter()
        .filter(|h| h.frequency > 0 && h.mean_spend > 0.0)
        .copied()
        .collect();
    if repeat.len() < MIN_REPEAT_BUYERS {
        return Err(Error::training(format!(
            "value: {} repeat buyers with spend; the customer-base model needs {MIN_REPEAT_BUYERS}",
            repeat.len()
        )));
    }
    let fail = |what: &str, e: Error| Error::training(format!("value: {what}: {e}"));
    let purchases = BgNbdParams::new()
        .fit(&all)
        .map_err(|e| fail("bg/nbd", e))?;
    let spend = GammaGammaParams::new()
        .fit(&repeat)
        .map_err(|e| fail("gamma-gamma", e))?;
    let mean = spend.population_mean_spend();
    if !(mean.is_finite() && mean > 0.0) {
        return Err(Error::training(format!(
            "value: gamma-gamma's population mean spend is {mean} (q <= 1: a spend tail too heavy for it)"
        )));
    }
    Ok(FittedClv { purchases, spend })
}

/// A Tweedie regression with a log link: `E[spend] = exp(intercept + w · z)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tweedie {
    pub intercept: f64,
    pub weights: Array1<f64>,
}

impl Tweedie {
    fn predict(&self, z: &[f64]) -> f64 {
        linear(&self.weights, self.intercept, z).min(50.0).exp()
    }
}

/// Most steps of the reweighted least squares (it stops earlier when no
/// coefficient moves by 1e-6).
const TWEEDIE_ITERATIONS: usize = 30;

/// A Tweedie regression of the spend on the rows the ridge standardized (and
/// clamped: they are within their range by construction), with the ridge
/// penalty `l2` on the weights, not the intercept.
///
/// # Errors
/// `Training` when a least-squares step fails or the fit is not finite.
fn fit_tweedie(ridge: &LogRidge, rows: &Array2<f64>, target: &[f64], l2: f64) -> Result<Tweedie> {
    let z = ridge.scaler.transform(rows);
    let (n, width) = z.dim();
    let y = Array1::from_iter(target.iter().map(|t| t.max(0.0)));
    let mean = y.sum() / n.max(1) as f64;
    // Each step solves the weighted ridge's normal equations
    // (Xᵀ W X + l2 I) β = Xᵀ W z over [1, z] (the intercept unpenalized):
    // a (width + 1)² system, where a least-squares fit of the whole matrix
    // per step cost a second on the demo book.
    let k = width + 1;
    let mut design = Array2::ones((n, k));
    design.slice_mut(ndarray::s![.., 1..]).assign(&z);
    let mut beta = Array1::zeros(k);
    beta[0] = (mean + 1e-9).ln();
    for _ in 0..TWEEDIE_ITERATIONS {
        let eta = design.dot(&beta).mapv(|e| e.min(50.0));
        let mu = eta.mapv(|e| e.exp().max(1e-9));
        // Working weights mu^(2-p) and response eta + (y - mu) / mu.
        let w = mu.mapv(|m| m.powf(2.0 - TWEEDIE_POWER));
        let working: Array1<f64> = ndarray::Zip::from(&eta)
            .and(&mu)
            .and(&w)
            .and(&y)
            .map_collect(|e, m, w, y| w * (e + (y - m) / m));
        let weighted = &design * &w.view().insert_axis(Axis(1));
        let mut normal = weighted.t().dot(&design);
        for j in 1..k {
            normal[[j, j]] += l2;
        }
        let mut rhs = design.t().dot(&working).to_vec();
        let mut a = normal.into_raw_vec_and_offset().0;
        solve_positive_definite(&mut a, k, &mut rhs).ok_or_else(|| {
            Error::training("value: tweedie: the weighted normal equations are singular")
        })?;
        let next = Array1::from(rhs);
        if !next.iter().all(|b| b.is_finite()) {
            return Err(Error::training("value: tweedie: the fit is not finite"));
        }
        let change = (&next - &beta).iter().fold(0.0, |m: f64, d| m.max(d.abs()));
        beta = next;
        if change < 1e-6 {
            break;
        }
    }
    Ok(Tweedie {
        intercept: beta[0],
        weights: beta.slice(ndarray::s![1..]).to_owned(),
    })
}

/// Ridge regression on `log1p(spend)` (linfa's least squares on rows
/// augmented with `sqrt(l2) * I`), retransformed with a scale that matches
/// the mean spend of the training rows, so the prediction is an expected
/// spend, not its geometric mean.
struct LogRidge {
    scaler: Standardizer,
    intercept: f64,
    smearing: f64,
    model: FittedLinearRegression<f64>,
    bounds: Vec<(f64, f64)>,
}

impl LogRidge {
    fn fit(x: &Array2<f64>, target: &[f64], l2: f64) -> Result<LogRidge> {
        let scaler = Standardizer::fit(x.view());
        let y: Vec<f64> = target.iter().map(|t| t.max(0.0).ln_1p()).collect();
        let intercept = y.iter().sum::<f64>() / y.len().max(1) as f64;
        // Standardized columns have mean zero, so the intercept is the target
        // mean and the ridge rows (target 0) need not touch it. The rows are
        // standardized in place in one allocation: at a million rows each copy
        // of the matrix is hundreds of MB.
        let (n, width) = x.dim();
        let mut rows = Array2::zeros((n + width, width));
        rows.slice_mut(ndarray::s![..n, ..]).assign(x);
        let mut bounds = vec![(f64::INFINITY, f64::NEG_INFINITY); width];
        for mut row in rows.slice_mut(ndarray::s![..n, ..]).rows_mut() {
            if let Some(values) = row.as_slice_mut() {
                scaler.apply(values);
                for (b, v) in bounds.iter_mut().zip(values.iter()) {
                    *b = (b.0.min(*v), b.1.max(*v));
                }
            }
        }
        for j in 0..width {
            rows[[n + j, j]] = l2.sqrt();
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
        let mean_target =
            target.iter().map(|t| t.max(0.0)).sum::<f64>() / target.len().max(1) as f64;
        let mean_exp = fitted
            .iter()
            .map(|f| (intercept + f).min(50.0).exp())
            .sum::<f64>()
            / fitted.len().max(1) as f64;
        let smearing = (mean_target + 1.0) / mean_exp;
        Ok(LogRidge {
            scaler,
            intercept,
            smearing,
            model,
            bounds,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, EventBody};
    use crate::model::clv::{simulate, FittedBgNbd, FittedGammaGamma};
    use crate::time::SECONDS_PER_DAY;

    fn params() -> spec::ValueParams {
        spec::ValueParams {
            horizon_days: 180,
            l2: 1.0,
        }
    }

    /// Customers drawn from the customer-base model's own story (CDNOW's
    /// estimates, in days), with the feature row a store model would see.
    fn simulated_book(
        n: usize,
        seed: u64,
    ) -> (Array2<f64>, Vec<Option<CustomerSummary>>, Vec<f64>) {
        let purchases = FittedBgNbd::from_parameters(0.243, 4.414 * 7.0, 0.793, 2.426).unwrap();
        let spend = FittedGammaGamma::from_parameters(6.25, 3.74, 15.44).unwrap();
        let ages: Vec<f64> = (0..n).map(|i| 30.0 + (i % 336) as f64).collect();
        let sims = simulate(&purchases, Some(&spend), &ages, 180.0, seed).unwrap();
        let mut x = Array2::zeros((n, 3));
        for (i, s) in sims.iter().enumerate() {
            let c = s.summary;
            x[[i, 0]] = f64::from(c.frequency).ln_1p();
            x[[i, 1]] = (c.age - c.recency).ln_1p();
            x[[i, 2]] = c.mean_spend.ln_1p();
        }
        let histories = sims.iter().map(|s| Some(s.summary)).collect();
        let target = sims.iter().map(|s| s.holdout_spend).collect();
        (x, histories, target)
    }

    #[test]
    fn the_learners_compete_out_of_fold_and_the_best_is_kept() {
        let (x, histories, target) = simulated_book(4_000, 11);
        let model = ValueModel::fit(&x, &histories, &target, &params()).unwrap();
        assert_eq!(model.candidates.len(), ValueLearner::ALL.len());
        assert!(
            model.candidates.iter().all(|c| c.mae.is_finite()),
            "{:?}",
            model.candidates
        );
        let best = model
            .candidates
            .iter()
            .min_by(|a, b| a.mae.total_cmp(&b.mae))
            .unwrap();
        assert_eq!(model.learner, best.learner);
        // On its own story the customer-base model knows more than a
        // regression on the raw summary: a learner that reads it wins.
        assert_ne!(model.learner, ValueLearner::Ridge, "{:?}", model.candidates);
        assert!(model.clv.is_some());
        assert!(model.has_width(3) && !model.has_width(6));
        // On customers it has not seen, it beats the plain ridge there too.
        let (x_new, h_new, t_new) = simulated_book(4_000, 12);
        let ridge = ValueModel::fit_learner(
            ValueLearner::Ridge,
            None,
            &x,
            &histories,
            &target,
            &params(),
        )
        .unwrap();
        let kept = metrics::mae(
            model.predictions(&x_new, &h_new).as_slice().unwrap(),
            &t_new,
        );
        let plain = metrics::mae(
            ridge.predictions(&x_new, &h_new).as_slice().unwrap(),
            &t_new,
        );
        assert!(kept < plain, "kept {kept} vs ridge {plain}");
    }

    #[test]
    fn predictions_stay_within_what_the_training_rows_spent() {
        let (x, histories, target) = simulated_book(2_000, 3);
        let cap = target.iter().copied().fold(0.0, f64::max);
        for learner in ValueLearner::ALL {
            let model =
                ValueModel::fit_learner(learner, None, &x, &histories, &target, &params()).unwrap();
            // Far outside the training range: a heavy buyer with huge spend.
            let extreme = [12.0, 0.0, 14.0];
            let huge = CustomerSummary {
                frequency: 400,
                recency: 300.0,
                age: 300.0,
                mean_spend: 1e6,
            };
            let v = model.predict(&extreme, Some(&huge));
            assert!(
                v.is_finite() && (0.0..=cap).contains(&v),
                "{learner:?}: {v} > {cap}"
            );
            // Before a first purchase there is no history; the ridge answers.
            assert!(model.predict(&[0.0, 0.0, 0.0], None).is_finite());
        }
    }

    #[test]
    fn too_few_repeat_buyers_leave_the_ridge_alone() {
        let (x, _, target) = simulated_book(1_000, 5);
        let none = vec![None; x.nrows()];
        let model = ValueModel::fit(&x, &none, &target, &params()).unwrap();
        assert_eq!(model.learner, ValueLearner::Ridge);
        assert!(model.candidates.is_empty() && model.clv.is_none());
    }

    #[test]
    fn a_model_saved_before_the_contest_reads_as_the_ridge() {
        let (x, histories, target) = simulated_book(600, 9);
        let model = ValueModel::fit_learner(
            ValueLearner::Ridge,
            None,
            &x,
            &histories,
            &target,
            &params(),
        )
        .unwrap();
        let mut json: serde_json::Value = serde_json::to_value(&model).unwrap();
        for key in ["bounds", "learner", "clv", "tweedie", "cap", "candidates"] {
            json.as_object_mut().unwrap().remove(key);
        }
        let old: ValueModel = serde_json::from_value(json).unwrap();
        assert_eq!(old.learner, ValueLearner::Ridge);
        let row = x.row(0).to_vec();
        assert!(old.predict(&row, None).is_finite());
    }

    #[test]
    fn a_purchase_history_counts_occasions_in_days() {
        let day = SECONDS_PER_DAY;
        let purchase = |d: i64, amount: f64| Event {
            at: 1_000 * day + d * day + 3_600,
            body: EventBody::Purchase {
                amount,
                product_ids: vec![],
                quantity: 1,
            },
        };
        // Two purchases on day 0 are one occasion; then days 10 and 40.
        let events = [
            purchase(0, 10.0),
            purchase(0, 20.0),
            purchase(10, 30.0),
            purchase(40, 60.0),
        ];
        let agg = Aggregates::from_events(&events);
        let h = purchase_history(&agg, 1_000 * day + 100 * day).unwrap();
        assert_eq!(h.frequency, 2);
        assert_eq!(h.recency, 40.0);
        assert_eq!(h.age, 100.0);
        assert_eq!(h.mean_spend, 40.0);
        h.check().unwrap();
        assert_eq!(purchase_history(&Aggregates::default(), 0), None);
        let once = Aggregates::from_events(&events[..1]);
        let h = purchase_history(&once, 1_000 * day + 5 * day).unwrap();
        assert_eq!((h.frequency, h.recency, h.mean_spend), (0, 0.0, 0.0));
    }
}
