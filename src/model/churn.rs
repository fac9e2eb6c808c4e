//! Churn: when a relationship ends, as a distribution of the time to churn.
//!
//! **What churn means.** A relationship churns on the day it completes
//! `inactivity_days` without a purchase, counted from its last purchase, or
//! from its start when it has none. Its time to churn from a time T is the
//! number of days until that day. A relationship already that long without a
//! purchase at T has churned (the engine answers 1 at every horizon, and
//! these relationships are not in the models' training rows).
//!
//! **The curve.** `F(h)` is the probability that the relationship has churned
//! by T + h. It is estimated as a discrete-time hazard on the intervals
//! between consecutive horizons `0 < b_1 < ... < b_K`: for each interval
//! (b_{k-1}, b_k], a classifier of "churns in this interval" among the
//! relationships still active at b_{k-1} and observed through b_k. A
//! relationship observed for less (its data ends earlier) is censored: it
//! counts for the intervals it was observed through and for no later one,
//! neither as a survivor nor, if it churned before its data ended, as an
//! event, so that the rows of each interval are a random sample of those at
//! risk whatever the censoring (as long as when data ends does not depend on
//! churn). Then
//! `F(b_k) = 1 - Π_{j≤k} (1 - h_j)`, which never decreases;
//! `churn_probability` is `F` at the churn horizon, and the expected days to
//! churn are the area above the curve up to the longest horizon.
//!
//! Each interval's classifier is the learner that wins on held-out rows
//! (logistic regression or gradient boosting), calibrated on them. A
//! snapshot table has a label instead of event times: one classifier of it,
//! and no curve.

use indicatif::ProgressBar;
use linfa_logistic::FittedLogisticRegression;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::boost::{self, BoostLearner};
use crate::model::calibrate::{self, Calibrator};
use crate::model::learner::{paired_difference, sample_rows, Classifier, Learner, Validation};
use crate::model::logistic::{churn_sign, fit_logistic, LogisticLearner};
use crate::model::math::logistic;
use crate::model::metrics as metric_fns;
use crate::model::spec;
use crate::model::standardize::Standardizer;

/// Learners the churn model can choose from, by the names specs use.
pub const CHURN_LEARNERS: [&str; 2] = ["logistic", "boosting"];

/// The version of the bundle format this code writes and reads: bundles
/// trained by earlier versions of Rapport are refused with a message to retrain.
pub const FORMAT: u32 = 2;

/// What the churn probability is a probability of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChurnTarget {
    /// Time to churn from event histories (see the module documentation).
    Survival {
        horizon_days: u32,
        inactivity_days: u32,
    },
    /// A snapshot table's label column: no timing.
    Label,
}

/// What became of one training row after its cutoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Days from the cutoff to the churn day, if it came within the follow-up.
    pub churned_after_days: Option<f64>,
    /// Days the row was observed after the cutoff.
    pub follow_up_days: f64,
}

impl Outcome {
    /// Whether the row was observed through `h` days: only then does it say
    /// whether it churned by `h` without bias from when its data ends.
    pub fn observed_through(&self, h: f64) -> bool {
        self.follow_up_days >= h
    }

    pub fn churned_by(&self, h: f64) -> bool {
        self.churned_after_days.is_some_and(|d| d <= h)
    }
}

/// One interval's hazard: P(churn in (from, to] | active at from).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hazard {
    pub from_days: u32,
    pub to_days: u32,
    pub classifier: FittedLogisticRegression<f64, bool>,
    /// Set when boosting won on the held-out rows; it then gives the probability.
    pub boosted: Option<boost::FittedBoost>,
    pub calibrator: Calibrator,
    /// Every learner tried, with its held-out ROC AUC.
    pub candidates: Vec<(String, f64)>,
    /// Rows at risk in the interval, and how many churned in it.
    pub rows: u64,
    pub events: u64,
    /// Boosting's ROC AUC minus logistic regression's, mean over the
    /// validation folds, and its standard error: boosting is kept only when
    /// the mean exceeds one standard error.
    #[serde(default)]
    pub boosting_gain: Option<(f64, f64)>,
}

impl Hazard {
    fn raw(&self, z: &[f64]) -> f64 {
        match &self.boosted {
            Some(b) => b.probability(z),
            None => self.classifier.probability(z),
        }
    }

    /// The calibrated hazard of one standardized row.
    pub fn probability(&self, z: &[f64]) -> f64 {
        self.calibrator.apply(self.raw(z))
    }

    /// As [`Hazard::probability`], writing each column's contribution to the
    /// raw log-odds into `out` (coefficient × value for logistic regression,
    /// path attribution for boosting).
    fn explain(&self, z: &[f64], out: &mut [f64]) -> f64 {
        let raw = match &self.boosted {
            Some(b) => logistic(b.explain(z, out)),
            None => {
                let sign = churn_sign(&self.classifier);
                for (c, (w, x)) in out.iter_mut().zip(self.classifier.params().iter().zip(z)) {
                    *c = sign * w * x;
                }
                self.classifier.probability(z)
            }
        };
        self.calibrator.apply(raw)
    }

    pub fn learner_name(&self) -> &'static str {
        if self.boosted.is_some() {
            "gradient boosting"
        } else {
            "logistic regression"
        }
    }

    fn width(&self) -> usize {
        self.classifier.params().len()
    }
}

/// The fitted churn model: a hazard per interval of the curve (one
/// classifier of the label for a table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnModel {
    pub target: ChurnTarget,
    pub scaler: Standardizer,
    /// Ascending, adjacent intervals from 0 to the longest horizon.
    pub intervals: Vec<Hazard>,
}

/// The curve of one relationship and its churn probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// (days, P(churned by then)), ascending, non-decreasing.
    pub points: Vec<(u32, f64)>,
    /// The curve at the churn horizon (the label's probability for a table).
    pub churn: f64,
}

impl ChurnModel {
    /// Fits the hazards on model-scale rows `x` of relationships active at the
    /// cutoff, with what became of each.
    ///
    /// # Errors
    /// `Training` when the churn horizon's interval cannot be fitted (too few
    /// rows observed through it, a single class) or linfa fails.
    pub fn fit_survival(
        x: &Array2<f64>,
        outcomes: &[Outcome],
        params: &spec::ChurnParams,
        progress: &ProgressBar,
    ) -> Result<(ChurnModel, Vec<String>)> {
        if x.nrows() > params.max_fit_rows {
            let rows = sample_rows(x.nrows(), params.max_fit_rows, params.seed);
            tracing::info!(
                rows = rows.len(),
                of = x.nrows(),
                "churn learners fit on a sample"
            );
            let outcomes: Vec<Outcome> = rows.iter().map(|&i| outcomes[i]).collect();
            return Self::fit_survival(&x.select(Axis(0), &rows), &outcomes, params, progress);
        }
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(x);
        let mut intervals = Vec::new();
        let mut notes = Vec::new();
        let mut from = 0u32;
        for &to in &params.timing_horizons_days {
            let (lo, hi) = (f64::from(from), f64::from(to));
            // At risk at `from` and observed through the interval's end.
            let (rows, labels): (Vec<usize>, Vec<bool>) = outcomes
                .iter()
                .enumerate()
                .filter(|(_, o)| !o.churned_by(lo) && o.observed_through(hi))
                .map(|(i, o)| (i, o.churned_by(hi)))
                .unzip();
            let bar_name = format!("churn {from}-{to} days");
            let fitted = if rows.len() < MIN_INTERVAL_ROWS {
                Err(Error::training(format!(
                    "{} relationships were observed through {to} days after the cutoff; {MIN_INTERVAL_ROWS} are needed",
                    rows.len()
                )))
            } else {
                let z_k = z.select(Axis(0), &rows);
                fit_hazard(&z_k, &labels, params, progress, &bar_name)
            };
            match fitted {
                Ok(mut hazard) => {
                    hazard.from_days = from;
                    hazard.to_days = to;
                    intervals.push(hazard);
                }
                Err(e) if to > params.horizon_days => {
                    notes.push(format!(
                        "the timing curve stops at {from} days: the interval to {to} days could not be fitted ({e}); change churn.timing_horizons_days or data.cutoff"
                    ));
                    break;
                }
                Err(e) => {
                    return Err(Error::training(format!(
                        "churn: the interval {from}-{to} days, which the churn horizon needs, could not be fitted ({e}); change churn.horizon_days, churn.timing_horizons_days or data.cutoff"
                    )))
                }
            }
            from = to;
        }
        Ok((
            ChurnModel {
                target: ChurnTarget::Survival {
                    horizon_days: params.horizon_days,
                    inactivity_days: params.inactivity_days,
                },
                scaler,
                intervals,
            },
            notes,
        ))
    }

    /// Fits a classifier of a table's label on model-scale rows `x`.
    ///
    /// # Errors
    /// `Training` when the labels have a single class or linfa fails.
    pub fn fit_label(
        x: &Array2<f64>,
        labels: &[bool],
        params: &spec::ChurnParams,
        progress: &ProgressBar,
    ) -> Result<ChurnModel> {
        if x.nrows() > params.max_fit_rows {
            let rows = sample_rows(x.nrows(), params.max_fit_rows, params.seed);
            let labels: Vec<bool> = rows.iter().map(|&i| labels[i]).collect();
            return Self::fit_label(&x.select(Axis(0), &rows), &labels, params, progress);
        }
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(x);
        let hazard = fit_hazard(&z, labels, params, progress, "churn")?;
        Ok(ChurnModel {
            target: ChurnTarget::Label,
            scaler,
            intervals: vec![hazard],
        })
    }

    /// The horizon `churn_probability` is read at; `None` for a table's label.
    pub fn horizon_days(&self) -> Option<u32> {
        match self.target {
            ChurnTarget::Survival { horizon_days, .. } => Some(horizon_days),
            ChurnTarget::Label => None,
        }
    }

    /// The days without a purchase that make churn; `None` for a table.
    pub fn inactivity_days(&self) -> Option<u32> {
        match self.target {
            ChurnTarget::Survival {
                inactivity_days, ..
            } => Some(inactivity_days),
            ChurnTarget::Label => None,
        }
    }

    /// The curve's horizons (empty for a table).
    pub fn horizons(&self) -> Vec<u32> {
        match self.target {
            ChurnTarget::Survival { .. } => self.intervals.iter().map(|h| h.to_days).collect(),
            ChurnTarget::Label => vec![],
        }
    }

    /// The intervals `churn_probability` multiplies: those up to the horizon.
    fn horizon_intervals(&self) -> usize {
        match self.horizon_days() {
            Some(h) => self.intervals.iter().take_while(|k| k.to_days <= h).count(),
            None => self.intervals.len(),
        }
    }

    /// The curve and churn probability of a standardized row.
    pub fn curve(&self, z: &[f64]) -> Curve {
        let mut survival = 1.0;
        let mut points = Vec::with_capacity(self.intervals.len());
        for hazard in &self.intervals {
            survival *= 1.0 - hazard.probability(z);
            points.push((hazard.to_days, 1.0 - survival));
        }
        self.finish(points)
    }

    fn finish(&self, points: Vec<(u32, f64)>) -> Curve {
        match self.target {
            ChurnTarget::Label => Curve {
                churn: points.first().map_or(f64::NAN, |p| p.1),
                points: vec![],
            },
            ChurnTarget::Survival { .. } => {
                let n = self.horizon_intervals();
                let churn = if n == 0 { f64::NAN } else { points[n - 1].1 };
                Curve { points, churn }
            }
        }
    }

    /// [`ChurnModel::curve`], and each column's contribution to the churn
    /// log-odds against the average relationship (written to `contributions`).
    ///
    /// The intervals up to the horizon each add their hazard's contributions,
    /// weighted by `h_k / F`: the first-order effect of the interval's
    /// log-odds on the log-odds of `F` at the horizon. One evaluation per
    /// interval: a tree ensemble is walked once.
    pub fn explain(&self, z: &[f64], contributions: &mut Vec<f64>) -> Curve {
        contributions.clear();
        contributions.resize(z.len(), 0.0);
        let n = self.horizon_intervals();
        let width = z.len();
        // Each explained interval's hazard and its row of `parts`.
        let mut hazards = Vec::with_capacity(n);
        let mut parts = vec![0.0; n * width];
        let mut survival = 1.0;
        let mut points = Vec::with_capacity(self.intervals.len());
        for (k, hazard) in self.intervals.iter().enumerate() {
            let h = if k < n {
                let h = hazard.explain(z, &mut parts[k * width..(k + 1) * width]);
                hazards.push(h);
                h
            } else {
                hazard.probability(z)
            };
            survival *= 1.0 - h;
            points.push((hazard.to_days, 1.0 - survival));
        }
        let curve = self.finish(points);
        if curve.churn > 0.0 && width > 0 {
            for (h, part) in hazards.iter().zip(parts.chunks_exact(width)) {
                let weight = h / curve.churn;
                for (c, p) in contributions.iter_mut().zip(part) {
                    *c += weight * p;
                }
            }
        }
        curve
    }

    /// Calibrated churn probability of a standardized row.
    pub fn probability(&self, z: &[f64]) -> f64 {
        self.curve(z).churn
    }

    /// Churn probabilities of a batch of model-scale rows.
    pub fn probabilities(&self, x: &Array2<f64>) -> Array1<f64> {
        let z = self.scaler.transform(x);
        z.rows()
            .into_iter()
            .map(|r| self.probability(r.as_slice().unwrap_or(&[])))
            .collect()
    }

    /// The curves of a batch of model-scale rows: one vector per horizon.
    pub fn curves(&self, x: &Array2<f64>) -> Vec<Vec<f64>> {
        let z = self.scaler.transform(x);
        let mut out = vec![Vec::with_capacity(z.nrows()); self.intervals.len()];
        for row in z.rows() {
            let curve = self.curve(row.as_slice().unwrap_or(&[]));
            for (column, (_, p)) in out.iter_mut().zip(curve.points) {
                column.push(p);
            }
        }
        out
    }

    /// The learner behind each interval, for reports and ListModels: one
    /// name when they agree, else each interval's.
    pub fn learner_name(&self) -> String {
        let names: Vec<&str> = self.intervals.iter().map(Hazard::learner_name).collect();
        if names.windows(2).all(|w| w[0] == w[1]) {
            return names.first().copied().unwrap_or("none").to_string();
        }
        self.intervals
            .iter()
            .map(|h| format!("{}-{}d {}", h.from_days, h.to_days, h.learner_name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn calibration_name(&self) -> String {
        let names: Vec<&str> = self.intervals.iter().map(|h| h.calibrator.name()).collect();
        if names.windows(2).all(|w| w[0] == w[1]) {
            return names.first().copied().unwrap_or("identity").to_string();
        }
        names.join(", ")
    }

    /// Each column's importance: per interval up to the horizon, total split
    /// gain for boosting or the absolute standardized coefficient, normalised
    /// to sum to one, then averaged.
    pub fn importance(&self, names: &[String]) -> Vec<(String, f64)> {
        let n = self.horizon_intervals().max(1);
        let mut total = vec![0.0; names.len()];
        for hazard in self.intervals.iter().take(n) {
            let weights: Vec<f64> = match &hazard.boosted {
                Some(b) => b.feature_importance(),
                None => hazard.classifier.params().iter().map(|w| w.abs()).collect(),
            };
            let sum: f64 = weights.iter().sum();
            if sum > 0.0 {
                for (t, w) in total.iter_mut().zip(&weights) {
                    *t += w / sum / n as f64;
                }
            }
        }
        names.iter().cloned().zip(total).collect()
    }

    /// Every learner tried on the churn horizon's interval (the last one it
    /// multiplies), with its held-out ROC AUC.
    pub fn candidates(&self) -> Vec<(String, f64)> {
        self.intervals
            .get(self.horizon_intervals().saturating_sub(1))
            .map(|h| h.candidates.clone())
            .unwrap_or_default()
    }

    /// How each interval's learner was chosen: boosting's gain in ROC AUC over
    /// logistic regression across the validation folds, with its standard
    /// error, and the learner kept.
    pub fn selection_notes(&self) -> Vec<String> {
        self.intervals
            .iter()
            .filter_map(|h| {
                let (gain, se) = h.boosting_gain?;
                let what = match self.target {
                    ChurnTarget::Label => "churn".to_string(),
                    ChurnTarget::Survival { .. } => {
                        format!("churn {}-{} days", h.from_days, h.to_days)
                    }
                };
                Some(format!(
                    "{what}: gradient boosting's ROC AUC minus logistic regression's is {gain:+.4} ± {se:.4} (mean ± standard error over the validation folds); kept {}, as boosting must win by more than one standard error",
                    h.learner_name()
                ))
            })
            .collect()
    }

    /// Whether every interval's models expect `width` columns.
    pub fn has_width(&self, width: usize) -> bool {
        self.scaler.mean.len() == width
            && self.intervals.iter().all(|h| {
                h.width() == width && h.boosted.as_ref().is_none_or(|b| b.width() == width)
            })
    }
}

/// Fewest rows an interval's hazard is fitted on.
const MIN_INTERVAL_ROWS: usize = 50;

/// The hazard of one interval (or a table's label): the learner that wins on
/// held-out rows, calibrated on them.
fn fit_hazard(
    z: &Array2<f64>,
    labels: &[bool],
    params: &spec::ChurnParams,
    progress: &ProgressBar,
    what: &str,
) -> Result<Hazard> {
    let validation = Validation::new(z, labels);
    let boosting =
        params.learners.iter().any(|l| l == "boosting") && !matches!(validation, Validation::None);
    let boost_learner = BoostLearner { seed: params.seed };
    let logistic_learner = HazardLearner {
        inner: LogisticLearner {
            l2: params.l2,
            max_iterations: params.max_iterations,
        },
        what,
    };
    // The learners are independent and single-threaded: boosting (the
    // longest) gets a core of its own while this thread fits the logistic model.
    let (fitted, boosted) = std::thread::scope(|scope| {
        let boosted = boosting.then(|| {
            scope.spawn(|| {
                let bar = crate::progress::counter(progress, format!("{what}: boosting rounds"), 0);
                let boosted = validation.run(z, labels, &bar, &boost_learner);
                bar.finish_and_clear();
                boosted
            })
        });
        let bar = crate::progress::step(progress, format!("{what}: logistic regression"));
        let fitted = validation.run(z, labels, &bar, &logistic_learner);
        bar.finish_and_clear();
        let boosted = boosted.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(Error::training("gradient boosting panicked")))
        });
        (fitted, boosted)
    });
    let fitted = fitted?;
    let events = labels.iter().filter(|l| **l).count() as u64;
    let mut hazard = Hazard {
        from_days: 0,
        to_days: 0,
        classifier: fitted.model,
        boosted: None,
        calibrator: Calibrator::Identity,
        candidates: vec![],
        rows: labels.len() as u64,
        events,
        boosting_gain: None,
    };
    if matches!(validation, Validation::None) {
        return Ok(hazard);
    }
    // The winner's held-out scores, with their labels, calibrate it. The
    // simpler learner is kept unless boosting beats it by more than the
    // noise between folds (the one-standard-error rule): a contest won by
    // 0.0016 of AUC on one split was lost by 0.006 on new rows.
    let (folds, k) = validation.score_folds();
    // (held-out scores, their labels, ROC AUC) of logistic regression.
    let logistic = params.learners.iter().any(|l| l == "logistic").then(|| {
        let auc = metric_fns::roc_auc(&fitted.scores, &fitted.labels);
        (fitted.scores, fitted.labels, auc)
    });
    if let Some((_, _, auc)) = &logistic {
        hazard
            .candidates
            .push((logistic_learner.name().into(), *auc));
    }
    let mut boosting_won = None;
    match boosted {
        Some(Ok(b)) => {
            let auc = metric_fns::roc_auc(&b.scores, &b.labels);
            hazard.candidates.push((boost_learner.name().into(), auc));
            let wins = match &logistic {
                None => true,
                Some((l, _, pooled)) => {
                    let (gain, se) =
                        paired_difference(l, &b.scores, &b.labels, &folds, k, metric_fns::roc_auc);
                    hazard.boosting_gain = Some((gain, se)).filter(|g| g.0.is_finite());
                    // Without a usable fold comparison, the pooled AUCs decide.
                    if gain.is_finite() && se.is_finite() {
                        gain > se
                    } else {
                        auc > *pooled || pooled.is_nan()
                    }
                }
            };
            if wins {
                boosting_won = Some((b.scores, b.labels));
                hazard.boosted = Some(b.model);
            }
        }
        Some(Err(e)) => tracing::warn!("{what}: gradient boosting skipped: {e}"),
        None => {}
    }
    let best = boosting_won.or(logistic.map(|(scores, labels, _)| (scores, labels)));
    if let Some((scores, held_labels)) = best {
        let step = crate::progress::step(progress, format!("{what}: calibration"));
        hazard.calibrator = calibrate::fit_best(&scores, &held_labels);
        step.finish_and_clear();
    }
    Ok(hazard)
}

/// The logistic learner under the model's name, so its errors say which
/// interval failed.
struct HazardLearner<'a> {
    inner: LogisticLearner,
    what: &'a str,
}

impl Learner for HazardLearner<'_> {
    type Fitted = FittedLogisticRegression<f64, bool>;

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn fit(
        &self,
        z: ndarray::ArrayView2<f64>,
        labels: &[bool],
        _: &ProgressBar,
    ) -> Result<Self::Fitted> {
        fit_logistic(
            z,
            labels,
            self.inner.l2,
            self.inner.max_iterations,
            self.what,
        )
    }
}

/// Expected days until the relationship churns, capped at the longest
/// horizon: the area above the curve, the probability of being active
/// integrated over each interval (linearly within it).
pub fn expected_days_to_churn(curve: &[(u32, f64)]) -> f64 {
    let mut prev = (0u32, 0.0);
    let mut area = 0.0;
    for &(days, p) in curve {
        let width = f64::from(days - prev.0);
        area += width * (1.0 - (prev.1 + p) / 2.0);
        prev = (days, p);
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_say_what_is_known() {
        let churned = Outcome {
            churned_after_days: Some(40.0),
            follow_up_days: 100.0,
        };
        assert!(!churned.churned_by(30.0) && churned.churned_by(90.0));
        let short = Outcome {
            churned_after_days: None,
            follow_up_days: 60.0,
        };
        assert!(short.observed_through(30.0) && !short.observed_through(90.0));
    }

    #[test]
    fn expected_days_integrate_the_curve() {
        assert_eq!(expected_days_to_churn(&[(30, 0.0), (90, 0.0)]), 90.0);
        assert_eq!(expected_days_to_churn(&[(30, 1.0), (90, 1.0)]), 15.0);
        let mid = expected_days_to_churn(&[(30, 0.2), (90, 0.5)]);
        assert!((mid - (30.0 * 0.9 + 60.0 * 0.65)).abs() < 1e-12);
    }
}
