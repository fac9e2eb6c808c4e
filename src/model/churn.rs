//! Churn: the probability that a relationship ends within the horizon, the
//! learner that wins on held-out rows (logistic regression or gradient
//! boosting), calibrated on them, with each column's contribution for the
//! reasons; and the timing curve of when it ends.

use indicatif::ProgressBar;
use linfa_logistic::FittedLogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::boost::{self, BoostLearner};
use crate::model::calibrate;
use crate::model::learner::{sample_rows, Classifier, Learner, Validation};
use crate::model::logistic::{churn_logit, churn_sign, fit_logistic, LogisticLearner};
use crate::model::math::logistic;
use crate::model::metrics as metric_fns;
use crate::model::spec;
use crate::model::standardize::Standardizer;

/// A churn classifier at one horizon of the timing curve, with the map that
/// calibrates its probability on held-out rows (as the churn learner's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HorizonClassifier {
    pub days: u32,
    pub classifier: FittedLogisticRegression<f64, bool>,
    /// Absent in versions stored before timing was calibrated: they load as `Identity`.
    #[serde(default)]
    pub calibrator: calibrate::Calibrator,
}

impl HorizonClassifier {
    /// Calibrated probability of having ended by this horizon, for a
    /// standardized row, before the curve is made monotone.
    pub fn probability(&self, z: &[f64]) -> f64 {
        self.calibrator.apply(self.classifier.probability(z))
    }
}

/// Learners the churn model can choose from, by the names specs use.
pub const CHURN_LEARNERS: [&str; 2] = ["logistic", "boosting"];

/// The probability of no purchase within the horizon: the learner that wins on
/// held-out rows (logistic regression or gradient boosting), calibrated on
/// them; and a calibrated logistic curve of when the relationship ends.
///
/// Held-out rows are the out-of-fold predictions of a 5-fold cross-fit below
/// 20,000 training rows (the final learners then train on every row), and a
/// validation tenth above (the learners train on the other nine tenths).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnModel {
    pub horizon_days: u32,
    pub scaler: Standardizer,
    pub classifier: FittedLogisticRegression<f64, bool>,
    /// Set when boosting won on the held-out rows; it then gives the probability.
    #[serde(default)]
    pub boosted: Option<boost::FittedBoost>,
    #[serde(default)]
    pub calibrator: calibrate::Calibrator,
    pub timing: Vec<HorizonClassifier>,
    /// Every learner tried, with its held-out ROC AUC.
    #[serde(default)]
    pub candidates: Vec<(String, f64)>,
}

impl ChurnModel {
    /// Fits on model-scale rows `x`; `timing_labels` holds, per horizon, whether
    /// the relationship had made its last purchase by then.
    ///
    /// # Errors
    /// `Training` when labels have a single class or linfa fails.
    pub fn fit(
        x: &Array2<f64>,
        labels: &[bool],
        timing_labels: &[(u32, Vec<bool>)],
        params: &spec::ChurnParams,
    ) -> Result<ChurnModel> {
        Self::fit_with_progress(x, labels, timing_labels, params, &ProgressBar::hidden())
    }

    /// As [`ChurnModel::fit`], showing each step (timing horizons, each
    /// learner, boosting rounds, calibration) unless `progress` is hidden.
    ///
    /// # Errors
    /// As [`ChurnModel::fit`].
    pub fn fit_with_progress(
        x: &Array2<f64>,
        labels: &[bool],
        timing_labels: &[(u32, Vec<bool>)],
        params: &spec::ChurnParams,
        progress: &ProgressBar,
    ) -> Result<ChurnModel> {
        if x.nrows() > params.max_fit_rows {
            let rows = sample_rows(x.nrows(), params.max_fit_rows, params.seed);
            tracing::info!(
                rows = rows.len(),
                of = x.nrows(),
                "churn learners fit on a sample"
            );
            let pick = |y: &[bool]| -> Vec<bool> { rows.iter().map(|&i| y[i]).collect() };
            let timing: Vec<(u32, Vec<bool>)> =
                timing_labels.iter().map(|(d, y)| (*d, pick(y))).collect();
            let x = x.select(ndarray::Axis(0), &rows);
            return Self::fit_with_progress(&x, &pick(labels), &timing, params, progress);
        }
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(x);
        let validation = Validation::new(&z, labels);
        let boosting = params.learners.iter().any(|l| l == "boosting")
            && !matches!(validation, Validation::None);
        let boost_learner = BoostLearner { seed: params.seed };
        let logistic_learner = LogisticLearner {
            l2: params.l2,
            max_iterations: params.max_iterations,
        };
        // The learners are independent and single-threaded: boosting (the
        // longest) gets a core of its own while this thread fits the timing
        // horizons and the logistic model.
        let (timing, fitted, boosted) = std::thread::scope(|scope| {
            let boosted = boosting.then(|| {
                scope.spawn(|| {
                    let bar = crate::progress::counter(progress, "churn: boosting rounds", 0);
                    let boosted = validation.run(&z, labels, &bar, &boost_learner);
                    bar.finish_and_clear();
                    boosted
                })
            });
            let timing = fit_timing(&z, &validation, timing_labels, params, progress);
            let bar = crate::progress::step(progress, "churn: logistic regression");
            let fitted = validation.run(&z, labels, &bar, &logistic_learner);
            bar.finish_and_clear();
            let boosted = boosted.map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(Error::training("gradient boosting panicked")))
            });
            (timing, fitted, boosted)
        });
        let fitted = fitted?;
        let mut model = ChurnModel {
            horizon_days: params.horizon_days,
            scaler,
            classifier: fitted.model,
            boosted: None,
            calibrator: calibrate::Calibrator::Identity,
            timing,
            candidates: vec![],
        };
        if matches!(validation, Validation::None) {
            return Ok(model);
        }
        // The winner's held-out scores, with their labels, calibrate it.
        let mut best: Option<(f64, Vec<f64>, Vec<bool>)> = None;
        if params.learners.iter().any(|l| l == "logistic") {
            let auc = metric_fns::roc_auc(&fitted.scores, &fitted.labels);
            model.candidates.push((logistic_learner.name().into(), auc));
            best = Some((auc, fitted.scores, fitted.labels));
        }
        match boosted {
            Some(Ok(b)) => {
                let auc = metric_fns::roc_auc(&b.scores, &b.labels);
                model.candidates.push((boost_learner.name().into(), auc));
                if best.as_ref().is_none_or(|w| auc > w.0 || w.0.is_nan()) {
                    best = Some((auc, b.scores, b.labels));
                    model.boosted = Some(b.model);
                }
            }
            Some(Err(e)) => tracing::warn!("gradient boosting skipped: {e}"),
            None => {}
        }
        if let Some((_, scores, held_labels)) = best {
            let step = crate::progress::step(progress, "churn: calibration");
            model.calibrator = calibrate::fit_best(&scores, &held_labels);
            step.finish_and_clear();
        }
        Ok(model)
    }

    /// The learner behind the churn probability, for reports and ListModels.
    pub fn learner_name(&self) -> String {
        if self.boosted.is_some() {
            "gradient boosting".to_string()
        } else {
            "logistic regression".to_string()
        }
    }

    pub fn calibration_name(&self) -> String {
        self.calibrator.name().to_string()
    }

    /// Importance of each column: total split gain for boosting, the absolute
    /// standardized coefficient for logistic regression.
    pub fn importance(&self, names: &[String]) -> Vec<(String, f64)> {
        let weights: Vec<f64> = match &self.boosted {
            Some(b) => b.feature_importance(),
            None => self.classifier.params().iter().map(|w| w.abs()).collect(),
        };
        names.iter().cloned().zip(weights).collect()
    }

    fn raw_probability(&self, z: &[f64]) -> f64 {
        match &self.boosted {
            Some(b) => b.probability(z),
            None => logistic(churn_logit(&self.classifier, z)),
        }
    }

    /// Calibrated probability of churn for a standardized row.
    pub fn probability(&self, z: &[f64]) -> f64 {
        self.calibrator.apply(self.raw_probability(z))
    }

    /// [`ChurnModel::probability`] and each column's contribution to the churn
    /// log-odds against the average relationship (written to `contributions`):
    /// coefficient times standardized value for logistic regression, path
    /// attribution for boosting. One evaluation of the learner: a tree
    /// ensemble is walked once, not once per answer.
    pub fn explain(&self, z: &[f64], contributions: &mut Vec<f64>) -> f64 {
        contributions.clear();
        contributions.resize(z.len(), 0.0);
        let raw = match &self.boosted {
            Some(b) => logistic(b.explain(z, contributions)),
            None => {
                let sign = churn_sign(&self.classifier);
                for (c, (w, x)) in contributions
                    .iter_mut()
                    .zip(self.classifier.params().iter().zip(z))
                {
                    *c = sign * w * x;
                }
                logistic(churn_logit(&self.classifier, z))
            }
        };
        self.calibrator.apply(raw)
    }

    /// Calibrated probability of having ended by each horizon, made
    /// non-decreasing in the horizon (ending by 30 days implies ending by 90):
    /// each horizon's probability is at least that of every shorter one.
    pub fn timing_curve(&self, z: &[f64]) -> Vec<(u32, f64)> {
        let mut floor = 0.0f64;
        self.timing
            .iter()
            .map(|h| {
                let p = h.probability(z);
                // A NaN stays visible rather than being hidden by the floor.
                floor = if p.is_nan() { p } else { floor.max(p) };
                (h.days, floor)
            })
            .collect()
    }

    /// Probabilities of a batch of model-scale rows (training metrics, round-trip tests).
    pub fn probabilities(&self, x: &Array2<f64>) -> Array1<f64> {
        let z = self.scaler.transform(x);
        z.rows()
            .into_iter()
            .map(|r| self.probability(r.as_slice().unwrap_or(&[])))
            .collect()
    }

    /// P(churn) from linfa's own predict path for the logistic learner (tests hold
    /// the fast path equal to it).
    pub fn linfa_probabilities(&self, x: &Array2<f64>) -> Array1<f64> {
        let p = self
            .classifier
            .predict_probabilities(&self.scaler.transform(x));
        if churn_sign(&self.classifier) > 0.0 {
            p
        } else {
            p.mapv(|v| 1.0 - v)
        }
    }

    /// The timing curves of a batch of standardized rows as served (calibrated,
    /// monotone): one vector of probabilities per horizon, in `self.timing` order.
    pub fn timing_probabilities(&self, z: &Array2<f64>) -> Vec<Vec<f64>> {
        let mut out = vec![Vec::with_capacity(z.nrows()); self.timing.len()];
        for row in z.rows() {
            let curve = self.timing_curve(row.as_slice().unwrap_or(&[]));
            for (column, (_, p)) in out.iter_mut().zip(curve) {
                column.push(p);
            }
        }
        out
    }
}

/// One logistic classifier per timing horizon, calibrated on its held-out
/// scores under `validation` (uncalibrated when there are none). A horizon
/// whose training labels have a single class is skipped with a warning.
fn fit_timing(
    z: &Array2<f64>,
    validation: &Validation,
    timing_labels: &[(u32, Vec<bool>)],
    params: &spec::ChurnParams,
    progress: &ProgressBar,
) -> Vec<HorizonClassifier> {
    let bar = crate::progress::counter(progress, "timing", timing_labels.len() as u64);
    let learner = TimingLearner(LogisticLearner {
        l2: params.l2,
        max_iterations: params.max_iterations,
    });
    let mut timing = Vec::with_capacity(timing_labels.len());
    for (done, (days, y)) in timing_labels.iter().enumerate() {
        bar.set_message(format!("{days} days"));
        bar.set_position(done as u64);
        match validation.run(z, y, &ProgressBar::hidden(), &learner) {
            Ok(fitted) => timing.push(HorizonClassifier {
                days: *days,
                classifier: fitted.model,
                calibrator: calibrate::fit_best(&fitted.scores, &fitted.labels),
            }),
            Err(e) => tracing::warn!(horizon_days = days, "timing horizon skipped: {e}"),
        }
    }
    bar.finish_and_clear();
    timing
}

/// Expected days until the relationship ends, capped at the longest horizon:
/// the area above the timing curve.
pub fn expected_days_to_churn(curve: &[(u32, f64)]) -> f64 {
    let mut prev_day = 0u32;
    let mut area = 0.0;
    for (days, p) in curve {
        area += f64::from(days - prev_day) * (1.0 - p);
        prev_day = *days;
    }
    area
}

/// The logistic learner under the timing curve's name, so its errors say which model failed.
struct TimingLearner(LogisticLearner);

impl Learner for TimingLearner {
    type Fitted = FittedLogisticRegression<f64, bool>;

    fn name(&self) -> &'static str {
        "churn timing"
    }

    fn fit(
        &self,
        z: ndarray::ArrayView2<f64>,
        labels: &[bool],
        _: &ProgressBar,
    ) -> Result<Self::Fitted> {
        fit_logistic(z, labels, self.0.l2, self.0.max_iterations, self.name())
    }
}
