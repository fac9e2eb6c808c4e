//! Histogram gradient boosting for binary classification.
//!
//! linfa has no boosted trees (linfa-trees grows single classification
//! trees), and on tabular churn data a boosted ensemble beats the logistic
//! model by a wide margin (scikit-learn's `HistGradientBoostingClassifier`
//! reaches ROC AUC 0.935 on `mlc_churn` where logistic regression gets 0.823).
//! This is a compact re-implementation of that learner in linfa's shape:
//! [`BoostParams`] is the builder, [`ParamGuard`] checks it into
//! [`BoostValidParams`], which implements linfa's [`Fit`] and returns a
//! [`FittedBoost`] that serialises with serde and round-trips exactly.
//!
//! How it learns, and why:
//! - Features are raw (no standardisation: trees only compare values). Each
//!   feature is cut into at most `max_bins` quantile bins learned at fit;
//!   `NaN` means missing and gets its own bin, and every split learns the
//!   direction missing values take (the side that reduced the loss most, or
//!   the larger side when the node saw no missing value). Infinities are
//!   ordinary extreme values.
//! - Log loss: per-row gradients `p - y` and hessians `p (1 - p)`; each
//!   tree is grown best-first (leaf-wise) on gradient/hessian histograms up to
//!   `max_leaf_nodes` leaves, with the sibling histogram obtained by
//!   subtraction; leaf values are the Newton step `-G / (H + l2)` times the
//!   learning rate; the base score is the log-odds of the training prior.
//! - Early stopping holds out a stratified `validation_fraction` of the rows,
//!   stops after `n_iter_no_change` trees without improving the validation
//!   log loss and keeps the trees up to the best iteration; by default the
//!   model is then grown again on all rows with that many trees, so the
//!   held-out rows are not lost to training.
//! - Trees are flat `Vec`s of nodes whose children always come after their
//!   parent, so evaluation is a loop that must terminate; deserialisation
//!   checks that invariant (and finiteness), so a damaged model is rejected
//!   when loaded rather than misbehaving when served.
//! - Everything is single-threaded with one seeded RNG (only the validation
//!   split is random), so a seed gives a bit-identical model.
//!
//! Reason codes use Saabas path attributions: every node stores the value it
//! would predict as a leaf, and a split's feature is credited with the change
//! of that value along the decision path, so the contributions plus
//! [`FittedBoost::expected_value`] add up to the log-odds exactly.

use indicatif::ProgressBar;
use linfa::dataset::{AsSingleTargets, DatasetBase};
use linfa::traits::Fit;
use linfa::ParamGuard;
use ndarray::{Array1, ArrayBase, ArrayView2, Data, Ix2};
use rand::seq::SliceRandom;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result as CoreResult};
use crate::model::learner::{Classifier, Learner};
use crate::model::math::{logistic, softplus};

/// Histogram slots per feature: up to 255 value bins and the missing bin.
const SLOTS: usize = 256;
/// The bin of `NaN` values, after every value bin.
const MISSING_BIN: u8 = 255;
/// Each child of a split needs this much hessian, so leaf values stay finite
/// and are not fitted to a handful of saturated rows (scikit-learn's
/// `min_hessian_to_split`).
const MIN_CHILD_HESSIAN: f64 = 1e-3;
/// Floor for a row's hessian once its probability saturates.
const MIN_ROW_HESSIAN: f64 = 1e-16;
/// Early stopping needs at least this many held-out rows to mean anything.
const MIN_VALIDATION_ROWS: usize = 10;

/// Why boosting could not be configured or fitted, or a model not loaded.
#[derive(Debug, thiserror::Error)]
pub enum BoostError {
    #[error("learning_rate must be finite and in (0, 1], got {value}")]
    InvalidLearningRate { value: f64 },
    #[error("max_iterations must be at least 1")]
    InvalidMaxIterations,
    #[error("max_leaf_nodes must be at least 2, got {value}")]
    InvalidMaxLeafNodes { value: usize },
    #[error("max_depth must be at least 1 when set")]
    InvalidMaxDepth,
    #[error("min_samples_leaf must be at least 1")]
    InvalidMinSamplesLeaf,
    #[error("l2_regularization must be finite and non-negative, got {value}")]
    InvalidL2Regularization { value: f64 },
    #[error("max_bins must be in 2..=255, got {value}")]
    InvalidMaxBins { value: usize },
    #[error("validation_fraction must be in (0, 1), got {value}")]
    InvalidValidationFraction { value: f64 },
    #[error("n_iter_no_change must be at least 1")]
    InvalidNIterNoChange,
    #[error("tol must be finite and non-negative, got {value}")]
    InvalidTol { value: f64 },
    /// The labels do not pair with the rows.
    #[error("{rows} rows but {labels} labels")]
    LabelCount { rows: usize, labels: usize },
    /// Every label is the same: there is nothing to separate.
    #[error("all {rows} labels are {value}; boosting needs both classes")]
    SingleClass { rows: usize, value: bool },
    /// A row or matrix does not have the width the model was fitted on.
    #[error("expected {expected} features, got {got}")]
    WidthMismatch { expected: usize, got: usize },
    /// A deserialised model breaks an invariant evaluation relies on.
    #[error("corrupt boosted model: {reason}")]
    Corrupt { reason: String },
    /// Required by linfa's `Fit` trait; this learner raises none itself.
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

/// Checked boosting hyperparameters; see [`BoostParams`] for their meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostValidParams {
    learning_rate: f64,
    max_iterations: usize,
    max_leaf_nodes: usize,
    max_depth: Option<usize>,
    min_samples_leaf: usize,
    l2_regularization: f64,
    max_bins: usize,
    early_stopping: bool,
    validation_fraction: f64,
    n_iter_no_change: usize,
    tol: f64,
    refit: bool,
    seed: u64,
}

/// Unchecked boosting hyperparameters: the builder.
///
/// Defaults follow scikit-learn's `HistGradientBoostingClassifier` with
/// early stopping switched on: learning rate 0.1, up to 300 trees, trees
/// bounded by 31 leaves (grown best-first, no depth limit), 20 rows per leaf,
/// no L2 penalty, 255 bins, early stopping on a stratified 10% validation
/// split after 10 trees without a log-loss improvement of at least 1e-7,
/// then a refit on all rows with the chosen number of trees, seed 42.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostParams(BoostValidParams);

impl Default for BoostParams {
    fn default() -> Self {
        BoostParams(BoostValidParams {
            learning_rate: 0.1,
            max_iterations: 300,
            max_leaf_nodes: 31,
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 0.0,
            max_bins: 255,
            early_stopping: true,
            validation_fraction: 0.1,
            n_iter_no_change: 10,
            tol: 1e-7,
            refit: true,
            seed: 42,
        })
    }
}

impl BoostParams {
    pub fn new() -> Self {
        Self::default()
    }

    /// Shrinkage applied to every tree, in (0, 1].
    pub fn learning_rate(mut self, value: f64) -> Self {
        self.0.learning_rate = value;
        self
    }

    /// Most trees to grow (fewer when early stopping triggers).
    pub fn max_iterations(mut self, value: usize) -> Self {
        self.0.max_iterations = value;
        self
    }

    /// Most leaves per tree; the main capacity control.
    pub fn max_leaf_nodes(mut self, value: usize) -> Self {
        self.0.max_leaf_nodes = value;
        self
    }

    /// Optional depth limit (root at depth 0); `None` leaves only the leaf limit.
    pub fn max_depth(mut self, value: Option<usize>) -> Self {
        self.0.max_depth = value;
        self
    }

    /// Fewest training rows a leaf may hold.
    pub fn min_samples_leaf(mut self, value: usize) -> Self {
        self.0.min_samples_leaf = value;
        self
    }

    /// L2 penalty on leaf values (added to the hessian sum).
    pub fn l2_regularization(mut self, value: f64) -> Self {
        self.0.l2_regularization = value;
        self
    }

    /// Most value bins per feature, 2..=255; missing values get one more.
    pub fn max_bins(mut self, value: usize) -> Self {
        self.0.max_bins = value;
        self
    }

    /// Whether to hold out rows and stop when their log loss stops improving.
    pub fn early_stopping(mut self, value: bool) -> Self {
        self.0.early_stopping = value;
        self
    }

    /// Share of rows held out for early stopping, in (0, 1).
    pub fn validation_fraction(mut self, value: f64) -> Self {
        self.0.validation_fraction = value;
        self
    }

    /// Trees without improvement before early stopping gives up.
    pub fn n_iter_no_change(mut self, value: usize) -> Self {
        self.0.n_iter_no_change = value;
        self
    }

    /// Smallest drop in validation log loss that counts as an improvement.
    pub fn tol(mut self, value: f64) -> Self {
        self.0.tol = value;
        self
    }

    /// Whether, once early stopping has chosen the number of trees, to grow
    /// that many again on all rows, validation rows included. The held-out
    /// tenth is otherwise lost to training (on `mlc_churn` refitting raised
    /// the mean holdout AUC over ten splits from 0.917 to 0.920) at the cost
    /// of a second, shorter fit.
    pub fn refit(mut self, value: bool) -> Self {
        self.0.refit = value;
        self
    }

    /// Seed of the validation split, the only randomness.
    pub fn seed(mut self, value: u64) -> Self {
        self.0.seed = value;
        self
    }

    /// Checks the parameters, then fits; see [`BoostValidParams::fit_view`].
    ///
    /// # Errors
    /// The variant naming the first bad parameter, or a data error from the fit.
    pub fn fit_view(&self, x: ArrayView2<f64>, y: &[bool]) -> Result<FittedBoost, BoostError> {
        self.check_ref()?.fit_view(x, y)
    }

    /// As [`BoostParams::fit_view`], advancing `progress` by one per tree.
    ///
    /// # Errors
    /// As [`BoostParams::fit_view`].
    pub fn fit_view_with_progress(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        progress: &ProgressBar,
    ) -> Result<FittedBoost, BoostError> {
        self.check_ref()?.fit_view_with_progress(x, y, progress)
    }
}

/// Gradient boosting with its default settings as a churn [`Learner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoostLearner {
    pub seed: u64,
}

impl Learner for BoostLearner {
    type Fitted = FittedBoost;

    fn name(&self) -> &'static str {
        "gradient boosting"
    }

    fn fit(
        &self,
        z: ArrayView2<f64>,
        labels: &[bool],
        progress: &ProgressBar,
    ) -> CoreResult<FittedBoost> {
        BoostParams::new()
            .seed(self.seed)
            .fit_view_with_progress(z, labels, progress)
            .map_err(|e| Error::training(format!("gradient boosting: {e}")))
    }
}

impl Classifier for FittedBoost {
    fn probability(&self, z: &[f64]) -> f64 {
        FittedBoost::probability(self, z)
    }
}

impl ParamGuard for BoostParams {
    type Checked = BoostValidParams;
    type Error = BoostError;

    fn check_ref(&self) -> Result<&BoostValidParams, BoostError> {
        let p = &self.0;
        if !(p.learning_rate.is_finite() && p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return Err(BoostError::InvalidLearningRate {
                value: p.learning_rate,
            });
        }
        if p.max_iterations == 0 {
            return Err(BoostError::InvalidMaxIterations);
        }
        if p.max_leaf_nodes < 2 {
            return Err(BoostError::InvalidMaxLeafNodes {
                value: p.max_leaf_nodes,
            });
        }
        if p.max_depth == Some(0) {
            return Err(BoostError::InvalidMaxDepth);
        }
        if p.min_samples_leaf == 0 {
            return Err(BoostError::InvalidMinSamplesLeaf);
        }
        if !(p.l2_regularization.is_finite() && p.l2_regularization >= 0.0) {
            return Err(BoostError::InvalidL2Regularization {
                value: p.l2_regularization,
            });
        }
        if !(2..=255).contains(&p.max_bins) {
            return Err(BoostError::InvalidMaxBins { value: p.max_bins });
        }
        if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
            return Err(BoostError::InvalidValidationFraction {
                value: p.validation_fraction,
            });
        }
        if p.n_iter_no_change == 0 {
            return Err(BoostError::InvalidNIterNoChange);
        }
        if !(p.tol.is_finite() && p.tol >= 0.0) {
            return Err(BoostError::InvalidTol { value: p.tol });
        }
        Ok(p)
    }

    fn check(self) -> Result<BoostValidParams, BoostError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl BoostValidParams {
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }
    pub fn max_iterations(&self) -> usize {
        self.max_iterations
    }
    pub fn max_leaf_nodes(&self) -> usize {
        self.max_leaf_nodes
    }
    pub fn max_depth(&self) -> Option<usize> {
        self.max_depth
    }
    pub fn min_samples_leaf(&self) -> usize {
        self.min_samples_leaf
    }
    pub fn l2_regularization(&self) -> f64 {
        self.l2_regularization
    }
    pub fn max_bins(&self) -> usize {
        self.max_bins
    }
    pub fn early_stopping(&self) -> bool {
        self.early_stopping
    }
    pub fn validation_fraction(&self) -> f64 {
        self.validation_fraction
    }
    pub fn n_iter_no_change(&self) -> usize {
        self.n_iter_no_change
    }
    pub fn tol(&self) -> f64 {
        self.tol
    }
    pub fn refit(&self) -> bool {
        self.refit
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Fits on raw feature rows `x` (`NaN` = missing) and labels `y`.
    ///
    /// With early stopping on, the trees are chosen on a held-out split and
    /// (with `refit`) grown again on all rows; early stopping is skipped (all
    /// rows train, `max_iterations` trees) when the validation split would
    /// hold fewer than 10 rows or lack a class.
    ///
    /// # Errors
    /// `LabelCount` when `y` does not pair with the rows, `SingleClass` when
    /// every label is the same (including no rows at all).
    pub fn fit_view(&self, x: ArrayView2<f64>, y: &[bool]) -> Result<FittedBoost, BoostError> {
        self.fit_view_with_progress(x, y, &ProgressBar::hidden())
    }

    /// As [`BoostValidParams::fit_view`], advancing `progress` by one per
    /// tree: its length is `max_iterations`, cut to the trees grown when early
    /// stopping ends the fit, plus the refit's trees.
    ///
    /// # Errors
    /// As [`BoostValidParams::fit_view`].
    pub fn fit_view_with_progress(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        progress: &ProgressBar,
    ) -> Result<FittedBoost, BoostError> {
        let rows = x.nrows();
        if y.len() != rows {
            return Err(BoostError::LabelCount {
                rows,
                labels: y.len(),
            });
        }
        let positives = y.iter().filter(|v| **v).count();
        if positives == 0 || positives == rows {
            return Err(BoostError::SingleClass {
                rows,
                value: positives > 0,
            });
        }
        let (train, valid) = self.split(y);
        progress.set_length(self.max_iterations as u64);
        let (model, best) = self.boost(x, y, &train, &valid, self.max_iterations, progress);
        if !self.refit || valid.is_empty() {
            progress.set_length(progress.position());
            return Ok(model);
        }
        // Early stopping chose the number of trees; grow that many on every row.
        progress.set_length(progress.position() + best as u64);
        let all: Vec<usize> = (0..rows).collect();
        Ok(self.boost(x, y, &all, &[], best, progress).0)
    }

    /// Boosts up to `iterations` trees on rows `train`, stopping early on the
    /// log loss of rows `valid` when there are any. Returns the model (cut
    /// back to the best iteration) and that iteration.
    fn boost(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        train: &[usize],
        valid: &[usize],
        iterations: usize,
        progress: &ProgressBar,
    ) -> (FittedBoost, usize) {
        let width = x.ncols();
        let bins = Bins::fit(x, train, self.max_bins);
        let binned = bins.apply(x, train);
        let target: Vec<f64> = train.iter().map(|&i| f64::from(u8::from(y[i]))).collect();
        let valid_y: Vec<bool> = valid.iter().map(|&i| y[i]).collect();

        // Both classes are present in `train` (checked by the caller, kept by the split).
        let prior = target.iter().sum::<f64>() / target.len() as f64;
        let base_score = (prior / (1.0 - prior)).ln();
        let n = train.len();
        let mut raw = vec![base_score; n];
        let mut valid_raw = vec![base_score; valid.len()];
        let mut grad = vec![0.0; n];
        let mut hess = vec![0.0; n];
        let mut grower = Grower::new(self, &bins, &binned, n, width);
        let mut trees = Vec::new();
        let mut best = (log_loss(&valid_raw, &valid_y), 0usize);

        for iteration in 1..=iterations {
            for i in 0..n {
                let p = logistic(raw[i]);
                grad[i] = p - target[i];
                hess[i] = (p * (1.0 - p)).max(MIN_ROW_HESSIAN);
            }
            let tree = grower.grow(&grad, &hess, &mut raw);
            let stump = tree.nodes.len() == 1;
            for (k, &i) in valid.iter().enumerate() {
                valid_raw[k] += tree.leaf(|f| x[[i, f]]).value;
            }
            trees.push(tree);
            progress.inc(1);
            if valid.is_empty() {
                best.1 = iteration;
            } else {
                let loss = log_loss(&valid_raw, &valid_y);
                if loss < best.0 - self.tol {
                    best = (loss, iteration);
                } else if iteration - best.1 >= self.n_iter_no_change {
                    break;
                }
            }
            if stump {
                // No split is possible any more: later trees would be stumps too.
                break;
            }
        }
        trees.truncate(best.1);
        (FittedBoost::new(width, base_score, trees), best.1)
    }

    /// Stratified, seeded split into sorted (train, validation) row indices.
    fn split(&self, y: &[bool]) -> (Vec<usize>, Vec<usize>) {
        let all: Vec<usize> = (0..y.len()).collect();
        if !self.early_stopping {
            return (all, Vec::new());
        }
        let mut rng = Xoshiro256Plus::seed_from_u64(self.seed);
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for class in [false, true] {
            let mut members: Vec<usize> = all.iter().copied().filter(|&i| y[i] == class).collect();
            members.shuffle(&mut rng);
            // Keep at least one row of the class in training.
            let take = ((members.len() as f64 * self.validation_fraction).round() as usize)
                .min(members.len() - 1);
            if take == 0 {
                return (all, Vec::new());
            }
            valid.extend_from_slice(&members[..take]);
            train.extend_from_slice(&members[take..]);
        }
        if valid.len() < MIN_VALIDATION_ROWS {
            return (all, Vec::new());
        }
        // Sorted rows keep the histogram loops walking memory forwards.
        train.sort_unstable();
        valid.sort_unstable();
        (train, valid)
    }
}

impl<D: Data<Elem = f64>, T: AsSingleTargets<Elem = bool>> Fit<ArrayBase<D, Ix2>, T, BoostError>
    for BoostValidParams
{
    type Object = FittedBoost;

    /// Fits on a linfa dataset of raw rows and boolean targets.
    ///
    /// # Errors
    /// As [`BoostValidParams::fit_view`].
    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<FittedBoost, BoostError> {
        let labels: Vec<bool> = dataset.targets().as_single_targets().to_vec();
        self.fit_view(dataset.records().view(), &labels)
    }
}

/// Mean log loss of raw scores (log-odds), computed stably.
fn log_loss(raw: &[f64], y: &[bool]) -> f64 {
    let total: f64 = raw
        .iter()
        .zip(y)
        .map(|(z, label)| softplus(if *label { -z } else { *z }))
        .sum();
    total / raw.len().max(1) as f64
}

/// Maps `+inf` into the finite range so every threshold can be finite: JSON
/// has no infinities, and `f64::MAX` then serves as "every value goes left".
fn finite(v: f64) -> f64 {
    v.min(f64::MAX)
}

/// Per-feature bin upper edges: value `v` falls in the first bin whose edge is
/// `>= v`, or after the last edge; `NaN` falls in [`MISSING_BIN`].
struct Bins {
    edges: Vec<Vec<f64>>,
}

impl Bins {
    fn fit(x: ArrayView2<f64>, rows: &[usize], max_bins: usize) -> Bins {
        let mut values = Vec::with_capacity(rows.len());
        let edges = (0..x.ncols())
            .map(|f| {
                values.clear();
                values.extend(
                    rows.iter()
                        .map(|&i| x[[i, f]])
                        .filter(|v| !v.is_nan())
                        .map(finite),
                );
                values.sort_unstable_by(f64::total_cmp);
                feature_edges(&values, max_bins)
            })
            .collect();
        Bins { edges }
    }

    /// The training rows binned, feature-major (`out[f * rows + k]`).
    fn apply(&self, x: ArrayView2<f64>, rows: &[usize]) -> Vec<u8> {
        let mut out = Vec::with_capacity(rows.len() * self.edges.len());
        for (f, edges) in self.edges.iter().enumerate() {
            for &i in rows {
                let v = x[[i, f]];
                out.push(if v.is_nan() {
                    MISSING_BIN
                } else {
                    // At most 254 edges, so the bin fits below MISSING_BIN.
                    edges.partition_point(|e| *e < finite(v)) as u8
                });
            }
        }
        out
    }

    /// Value bins of feature `f` (the missing bin aside).
    fn count(&self, f: usize) -> usize {
        self.edges[f].len() + 1
    }

    /// The raw threshold of "bin <= b goes left".
    fn threshold(&self, f: usize, b: usize) -> f64 {
        self.edges[f].get(b).copied().unwrap_or(f64::MAX)
    }
}

/// Edges from sorted finite values: midpoints between distinct values when
/// they fit in `max_bins`, else midpoint-interpolated quantiles (as
/// scikit-learn's binner), deduplicated.
fn feature_edges(sorted: &[f64], max_bins: usize) -> Vec<f64> {
    let mut distinct: Vec<f64> = sorted.to_vec();
    distinct.dedup();
    let mid = |a: f64, b: f64| a / 2.0 + b / 2.0;
    let mut edges: Vec<f64> = if distinct.len() <= max_bins {
        distinct.windows(2).map(|w| mid(w[0], w[1])).collect()
    } else {
        let last = (sorted.len() - 1) as f64;
        (1..max_bins)
            .map(|k| {
                let pos = k as f64 / max_bins as f64 * last;
                mid(sorted[pos.floor() as usize], sorted[pos.ceil() as usize])
            })
            .collect()
    };
    edges.dedup();
    if let Some(&top) = distinct.last() {
        // An edge at the maximum would leave the last bin empty.
        edges.retain(|e| *e < top);
    }
    edges
}

/// A tree node. Leaves have `left == 0` (the root is never a child).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    /// What the node predicts as a leaf, learning rate applied: the expected
    /// value behind Saabas attributions.
    value: f64,
    feature: usize,
    /// Non-missing values `<=` this go left.
    threshold: f64,
    /// Where `NaN` goes.
    missing_left: bool,
    left: usize,
    right: usize,
    /// Loss reduction of the split, for feature importance.
    gain: f64,
}

impl Node {
    fn leaf(value: f64) -> Node {
        Node {
            value,
            feature: 0,
            threshold: 0.0,
            missing_left: false,
            left: 0,
            right: 0,
            gain: 0.0,
        }
    }

    fn is_leaf(&self) -> bool {
        self.left == 0
    }

    /// The child a value goes to.
    fn next(&self, v: f64) -> usize {
        let left = if v.is_nan() {
            self.missing_left
        } else {
            finite(v) <= self.threshold
        };
        if left {
            self.left
        } else {
            self.right
        }
    }
}

/// One tree: `nodes[0]` is the root and children follow their parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// The leaf reached by the row whose feature `f` is `value(f)`.
    fn leaf(&self, value: impl Fn(usize) -> f64) -> &Node {
        let mut node = &self.nodes[0];
        while !node.is_leaf() {
            node = &self.nodes[node.next(value(node.feature))];
        }
        node
    }

    fn check(&self, width: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("a tree has no nodes".into());
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.value.is_finite() || node.threshold.is_nan() || !node.gain.is_finite() {
                return Err(format!("node {i} holds a non-finite number"));
            }
            if node.is_leaf() {
                if node.right != 0 {
                    return Err(format!("leaf {i} has a right child"));
                }
            } else if node.feature >= width
                || node.left <= i
                || node.right <= i
                || node.left >= self.nodes.len()
                || node.right >= self.nodes.len()
            {
                return Err(format!("node {i} points outside its tree or features"));
            }
        }
        Ok(())
    }
}

/// A fitted boosted ensemble: `log_odds = base_score + sum of tree leaves`.
///
/// Callers check the row width with [`FittedBoost::check_width`] once (for
/// example when loading a bundle); the per-row methods `debug_assert` it and,
/// in release builds, read features past the end of a short row as missing,
/// so they never panic and never return `NaN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BoostData", into = "BoostData")]
pub struct FittedBoost {
    width: usize,
    base_score: f64,
    trees: Vec<Tree>,
    /// The same trees laid out for scoring; derived, never serialised.
    flat: FlatForest,
}

/// The serialised form, checked by `TryFrom` before it becomes a model.
#[derive(Serialize, Deserialize)]
struct BoostData {
    width: usize,
    base_score: f64,
    trees: Vec<Tree>,
}

impl From<FittedBoost> for BoostData {
    fn from(m: FittedBoost) -> Self {
        BoostData {
            width: m.width,
            base_score: m.base_score,
            trees: m.trees,
        }
    }
}

impl TryFrom<BoostData> for FittedBoost {
    type Error = BoostError;

    fn try_from(d: BoostData) -> Result<Self, BoostError> {
        if !d.base_score.is_finite() {
            return Err(BoostError::Corrupt {
                reason: "base score is not finite".into(),
            });
        }
        for (t, tree) in d.trees.iter().enumerate() {
            tree.check(d.width).map_err(|reason| BoostError::Corrupt {
                reason: format!("tree {t}: {reason}"),
            })?;
        }
        let nodes: usize = d.trees.iter().map(|t| t.nodes.len()).sum();
        if u32::try_from(nodes).is_err() || u32::try_from(d.width).is_err() {
            return Err(BoostError::Corrupt {
                reason: format!("{nodes} nodes over {} features is too large", d.width),
            });
        }
        Ok(FittedBoost::new(d.width, d.base_score, d.trees))
    }
}

/// A node of [`FlatForest`]: 32 bytes, so two share a cache line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FlatNode {
    threshold: f64,
    /// The node's value as a leaf (see [`Node::value`]).
    value: f64,
    feature: u32,
    /// Index of the left child, whose right sibling follows it; 0 for a leaf
    /// (index 0 is the first root, never a child).
    left: u32,
    missing_left: bool,
}

impl FlatNode {
    fn default_leaf() -> FlatNode {
        FlatNode {
            threshold: 0.0,
            value: 0.0,
            feature: 0,
            left: 0,
            missing_left: false,
        }
    }

    fn is_leaf(&self) -> bool {
        self.left == 0
    }

    /// Index of the child a value goes to. [`FlatForest::new`] stores the
    /// "everything goes left" threshold `f64::MAX` as `+inf`, so `+inf` needs
    /// no clamping. (A branch-free form, `(v <= t) | (nan & missing_left)`,
    /// measured twice as slow: the `NaN` branch is always predicted.)
    fn next(&self, v: f64) -> usize {
        let left = if v.is_nan() {
            self.missing_left
        } else {
            v <= self.threshold
        };
        self.left as usize + usize::from(!left)
    }
}

/// Every tree's nodes in one array, breadth-first per tree with siblings side
/// by side: scoring touches one allocation instead of one per tree, and each
/// node is half the size of a [`Node`] (no gain, 32-bit links).
#[derive(Debug, Clone, PartialEq, Default)]
struct FlatForest {
    nodes: Vec<FlatNode>,
    roots: Vec<u32>,
}

impl FlatForest {
    /// Lays out checked trees (node and feature indices fit in `u32`: see
    /// `TryFrom<BoostData>`; trees grown here are far smaller).
    fn new(trees: &[Tree]) -> FlatForest {
        let mut flat = FlatForest::default();
        let mut queue = std::collections::VecDeque::new();
        for tree in trees {
            flat.roots.push(flat.nodes.len() as u32);
            queue.push_back((0usize, flat.nodes.len()));
            flat.nodes.push(FlatNode::default_leaf());
            while let Some((i, at)) = queue.pop_front() {
                let node = &tree.nodes[i];
                let mut out = FlatNode {
                    value: node.value,
                    ..FlatNode::default_leaf()
                };
                if !node.is_leaf() {
                    let left = flat.nodes.len();
                    flat.nodes.push(FlatNode::default_leaf());
                    flat.nodes.push(FlatNode::default_leaf());
                    queue.push_back((node.left, left));
                    queue.push_back((node.right, left + 1));
                    out.threshold = if node.threshold == f64::MAX {
                        f64::INFINITY
                    } else {
                        node.threshold
                    };
                    out.feature = node.feature as u32;
                    out.left = left as u32;
                    out.missing_left = node.missing_left;
                }
                flat.nodes[at] = out;
            }
        }
        flat
    }
}

/// Feature `f` of a row; past the end of a short row it reads as missing.
fn feature(row: &[f64], f: u32) -> f64 {
    row.get(f as usize).copied().unwrap_or(f64::NAN)
}

impl FittedBoost {
    fn new(width: usize, base_score: f64, trees: Vec<Tree>) -> FittedBoost {
        FittedBoost {
            width,
            base_score,
            flat: FlatForest::new(&trees),
            trees,
        }
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Trees kept (after early stopping).
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// # Errors
    /// `WidthMismatch` when rows of width `n` are not what the model was fitted on.
    pub fn check_width(&self, n: usize) -> Result<(), BoostError> {
        if n == self.width {
            Ok(())
        } else {
            Err(BoostError::WidthMismatch {
                expected: self.width,
                got: n,
            })
        }
    }

    /// Log-odds of the positive class for a raw row (`NaN` = missing).
    pub fn log_odds(&self, row: &[f64]) -> f64 {
        debug_assert_eq!(row.len(), self.width, "row width");
        let nodes = &self.flat.nodes;
        let mut sum = self.base_score;
        for &root in &self.flat.roots {
            let mut node = &nodes[root as usize];
            while !node.is_leaf() {
                node = &nodes[node.next(feature(row, node.feature))];
            }
            sum += node.value;
        }
        sum
    }

    /// Probability of the positive class for a raw row.
    pub fn probability(&self, row: &[f64]) -> f64 {
        logistic(self.log_odds(row))
    }

    /// Probabilities of every row of `x`.
    pub fn predict_probabilities(&self, x: ArrayView2<f64>) -> Array1<f64> {
        debug_assert_eq!(x.ncols(), self.width, "matrix width");
        let mut buffer = Vec::with_capacity(x.ncols());
        x.rows()
            .into_iter()
            .map(|row| match row.as_slice() {
                Some(slice) => self.probability(slice),
                None => {
                    buffer.clear();
                    buffer.extend(row.iter().copied());
                    self.probability(&buffer)
                }
            })
            .collect()
    }

    /// The log-odds of a row with no information: what the contributions are
    /// measured from (base score plus every root's value).
    pub fn expected_value(&self) -> f64 {
        self.trees
            .iter()
            .fold(self.base_score, |sum, tree| sum + tree.nodes[0].value)
    }

    /// [`FittedBoost::log_odds`] of `row`, and the Saabas contributions of each
    /// feature to it written to `out` (one slot per feature, overwritten), from
    /// one walk of the ensemble. The contributions plus
    /// [`FittedBoost::expected_value`] add up to the log-odds.
    pub fn explain(&self, row: &[f64], out: &mut [f64]) -> f64 {
        debug_assert_eq!(row.len(), self.width, "row width");
        debug_assert_eq!(out.len(), self.width, "output width");
        out.fill(0.0);
        let nodes = &self.flat.nodes;
        let mut sum = self.base_score;
        let step = |node: &FlatNode, out: &mut [f64]| -> usize {
            let child = node.next(feature(row, node.feature));
            if let Some(slot) = out.get_mut(node.feature as usize) {
                *slot += nodes[child].value - node.value;
            }
            child
        };
        // Two trees in lockstep: their node loads are independent, so the
        // CPU overlaps two chains of dependent memory reads.
        let mut pairs = self.flat.roots.chunks_exact(2);
        for pair in &mut pairs {
            let (mut a, mut b) = (pair[0] as usize, pair[1] as usize);
            loop {
                let (na, nb) = (&nodes[a], &nodes[b]);
                match (na.is_leaf(), nb.is_leaf()) {
                    (true, true) => break,
                    (false, false) => {
                        a = step(na, out);
                        b = step(nb, out);
                    }
                    (false, true) => a = step(na, out),
                    (true, false) => b = step(nb, out),
                }
            }
            // In root order, as `log_odds` adds them: the two agree to the bit.
            sum += nodes[a].value;
            sum += nodes[b].value;
        }
        for &root in pairs.remainder() {
            let mut at = root as usize;
            while !nodes[at].is_leaf() {
                at = step(&nodes[at], out);
            }
            sum += nodes[at].value;
        }
        sum
    }

    /// Total split gain per feature, normalised to sum to 1 (all zeros when
    /// no tree split).
    pub fn feature_importance(&self) -> Vec<f64> {
        let mut gains = vec![0.0; self.width];
        for node in self.trees.iter().flat_map(|t| &t.nodes) {
            if !node.is_leaf() {
                if let Some(g) = gains.get_mut(node.feature) {
                    *g += node.gain;
                }
            }
        }
        let total: f64 = gains.iter().sum();
        if total > 0.0 {
            gains.iter_mut().for_each(|g| *g /= total);
        }
        gains
    }
}

/// Gradient, hessian and row count of one histogram slot or node.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    g: f64,
    h: f64,
    n: usize,
}

impl Sums {
    fn add(&mut self, o: Sums) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }

    fn minus(self, o: Sums) -> Sums {
        Sums {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

/// The best split of a node.
#[derive(Debug, Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    /// Value bins `<= bin` go left.
    bin: usize,
    missing_left: bool,
    left: Sums,
    right: Sums,
}

/// A leaf of the tree being grown: its rows are `indices[start..end]`.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    sums: Sums,
    /// Present while the leaf may still be split.
    hist: Option<Vec<Sums>>,
    split: Option<Split>,
}

/// Grows one tree per call, reusing its buffers across iterations.
struct Grower<'a> {
    params: &'a BoostValidParams,
    bins: &'a Bins,
    /// Feature-major bins of the training rows.
    binned: &'a [u8],
    n: usize,
    width: usize,
    indices: Vec<usize>,
    scratch: Vec<usize>,
    /// Gradients and hessians gathered in node order for the histogram loop.
    ordered_g: Vec<f64>,
    ordered_h: Vec<f64>,
    /// Spare histograms, so splits do not allocate.
    pool: Vec<Vec<Sums>>,
}

impl<'a> Grower<'a> {
    fn new(
        params: &'a BoostValidParams,
        bins: &'a Bins,
        binned: &'a [u8],
        n: usize,
        width: usize,
    ) -> Self {
        Grower {
            params,
            bins,
            binned,
            n,
            width,
            indices: Vec::with_capacity(n),
            scratch: vec![0; n],
            ordered_g: vec![0.0; n],
            ordered_h: vec![0.0; n],
            pool: Vec::new(),
        }
    }

    fn leaf_value(&self, s: Sums) -> f64 {
        let denominator = s.h + self.params.l2_regularization;
        if denominator > 0.0 {
            -self.params.learning_rate * s.g / denominator
        } else {
            0.0
        }
    }

    /// Grows a tree on the gradients and adds its leaf values to `raw`.
    fn grow(&mut self, grad: &[f64], hess: &[f64], raw: &mut [f64]) -> Tree {
        self.indices.clear();
        self.indices.extend(0..self.n);
        let mut sums = Sums::default();
        for i in 0..self.n {
            sums.add(Sums {
                g: grad[i],
                h: hess[i],
                n: 1,
            });
        }
        let mut nodes = vec![Node::leaf(self.leaf_value(sums))];
        let mut open = vec![Open {
            node: 0,
            start: 0,
            end: self.n,
            depth: 0,
            sums,
            hist: None,
            split: None,
        }];
        if self.may_split(&open[0]) {
            let hist = self.histogram(0, self.n, grad, hess);
            open[0].split = self.best_split(&hist, sums);
            open[0].hist = Some(hist);
        }

        let mut leaves = 1;
        while leaves < self.params.max_leaf_nodes {
            // Best-first: split the open leaf with the largest gain (first on ties).
            let mut pick: Option<(usize, f64)> = None;
            for (k, leaf) in open.iter().enumerate() {
                if let Some(split) = &leaf.split {
                    if pick.is_none_or(|(_, gain)| split.gain > gain) {
                        pick = Some((k, split.gain));
                    }
                }
            }
            let Some((k, _)) = pick else { break };
            let mut parent = open.swap_remove(k);
            let (Some(split), Some(parent_hist)) = (parent.split.take(), parent.hist.take()) else {
                break;
            };
            let mid = self.partition(parent.start, parent.end, &split);
            let (left_id, right_id) = (nodes.len(), nodes.len() + 1);
            nodes.push(Node::leaf(self.leaf_value(split.left)));
            nodes.push(Node::leaf(self.leaf_value(split.right)));
            let node = &mut nodes[parent.node];
            node.feature = split.feature;
            node.threshold = self.bins.threshold(split.feature, split.bin);
            node.missing_left = split.missing_left;
            node.left = left_id;
            node.right = right_id;
            node.gain = split.gain;
            leaves += 1;

            let depth = parent.depth + 1;
            let mut left = Open {
                node: left_id,
                start: parent.start,
                end: mid,
                depth,
                sums: split.left,
                hist: None,
                split: None,
            };
            let mut right = Open {
                node: right_id,
                start: mid,
                end: parent.end,
                depth,
                sums: split.right,
                hist: None,
                split: None,
            };
            let (want_left, want_right) = (self.may_split(&left), self.may_split(&right));
            if want_left || want_right {
                // Histogram the smaller child; the larger is the parent minus it.
                let left_smaller = left.end - left.start <= right.end - right.start;
                let (small, large) = if left_smaller {
                    (&mut left, &mut right)
                } else {
                    (&mut right, &mut left)
                };
                let small_hist = self.histogram(small.start, small.end, grad, hess);
                let mut large_hist = parent_hist;
                for (l, s) in large_hist.iter_mut().zip(&small_hist) {
                    *l = l.minus(*s);
                }
                small.hist = Some(small_hist);
                large.hist = Some(large_hist);
                for child in [&mut left, &mut right] {
                    let hist = child.hist.take();
                    match hist {
                        Some(h) if self.may_split(child) => {
                            child.split = self.best_split(&h, child.sums);
                            child.hist = Some(h);
                        }
                        Some(h) => self.pool.push(h),
                        None => {}
                    }
                }
            } else {
                self.pool.push(parent_hist);
            }
            open.push(left);
            open.push(right);
        }

        for leaf in open {
            let value = nodes[leaf.node].value;
            for &i in &self.indices[leaf.start..leaf.end] {
                raw[i] += value;
            }
            if let Some(h) = leaf.hist {
                self.pool.push(h);
            }
        }
        Tree { nodes }
    }

    fn may_split(&self, leaf: &Open) -> bool {
        let deep_enough = self.params.max_depth.is_some_and(|d| leaf.depth >= d);
        !deep_enough && leaf.end - leaf.start >= 2 * self.params.min_samples_leaf
    }

    /// Gradient/hessian/count histogram of rows `indices[start..end]`.
    fn histogram(&mut self, start: usize, end: usize, grad: &[f64], hess: &[f64]) -> Vec<Sums> {
        let mut hist = self
            .pool
            .pop()
            .unwrap_or_else(|| vec![Sums::default(); self.width * SLOTS]);
        hist.fill(Sums::default());
        let rows = &self.indices[start..end];
        let len = rows.len();
        for (k, &i) in rows.iter().enumerate() {
            self.ordered_g[k] = grad[i];
            self.ordered_h[k] = hess[i];
        }
        let (og, oh) = (&self.ordered_g[..len], &self.ordered_h[..len]);
        for f in 0..self.width {
            let column = &self.binned[f * self.n..(f + 1) * self.n];
            let slots = &mut hist[f * SLOTS..(f + 1) * SLOTS];
            for k in 0..len {
                let slot = &mut slots[column[rows[k]] as usize];
                slot.g += og[k];
                slot.h += oh[k];
                slot.n += 1;
            }
        }
        hist
    }

    /// The split of largest positive gain respecting the leaf-size and
    /// hessian limits, trying missing values on each side.
    fn best_split(&self, hist: &[Sums], total: Sums) -> Option<Split> {
        let l2 = self.params.l2_regularization;
        let min_leaf = self.params.min_samples_leaf;
        let score = |s: Sums| s.g * s.g / (s.h + l2);
        let parent = score(total);
        let mut best: Option<Split> = None;
        for f in 0..self.width {
            let slots = &hist[f * SLOTS..(f + 1) * SLOTS];
            let missing = slots[MISSING_BIN as usize];
            let count = self.bins.count(f);
            for missing_left in [false, true] {
                if missing_left && missing.n == 0 {
                    continue;
                }
                let mut left = if missing_left {
                    missing
                } else {
                    Sums::default()
                };
                for (b, slot) in slots[..count].iter().enumerate() {
                    left.add(*slot);
                    let right = total.minus(left);
                    if right.n < min_leaf {
                        break;
                    }
                    if left.n < min_leaf
                        || left.h < MIN_CHILD_HESSIAN
                        || right.h < MIN_CHILD_HESSIAN
                    {
                        continue;
                    }
                    let gain = score(left) + score(right) - parent;
                    if gain > best.map_or(0.0, |s| s.gain) {
                        // With no missing rows here, NaN follows the larger side.
                        let missing_left = if missing.n > 0 {
                            missing_left
                        } else {
                            left.n >= right.n
                        };
                        best = Some(Split {
                            gain,
                            feature: f,
                            bin: b,
                            missing_left,
                            left,
                            right,
                        });
                    }
                }
            }
        }
        best
    }

    /// Stable partition of `indices[start..end]` by the split; returns the
    /// first index of the right child.
    fn partition(&mut self, start: usize, end: usize, split: &Split) -> usize {
        let column = &self.binned[split.feature * self.n..(split.feature + 1) * self.n];
        let (mut l, mut r) = (start, 0);
        for k in start..end {
            let i = self.indices[k];
            let bin = column[i];
            let goes_left = if bin == MISSING_BIN {
                split.missing_left
            } else {
                bin as usize <= split.bin
            };
            if goes_left {
                self.indices[l] = i;
                l += 1;
            } else {
                self.scratch[r] = i;
                r += 1;
            }
        }
        self.indices[l..end].copy_from_slice(&self.scratch[..r]);
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::metrics::roc_auc;
    use linfa::prelude::*;
    use linfa_logistic::LogisticRegression;
    use ndarray::Array2;
    use rand::Rng;

    /// Two informative features interacting as XOR plus `noise` useless ones.
    fn xor(rows: usize, noise: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let x = Array2::from_shape_fn((rows, 2 + noise), |_| rng.gen_range(-1.0..1.0));
        let y = x
            .rows()
            .into_iter()
            .map(|r| (r[0] * r[1] > 0.0) != rng.gen_bool(0.05))
            .collect();
        (x, y)
    }

    fn auc(model: &FittedBoost, x: &Array2<f64>, y: &[bool]) -> f64 {
        roc_auc(model.predict_probabilities(x.view()).as_slice().unwrap(), y)
    }

    #[test]
    fn learns_an_interaction_logistic_regression_cannot() {
        let (x, y) = xor(2000, 3, 1);
        let (xt, yt) = xor(1000, 3, 2);
        let model = BoostParams::new().fit_view(x.view(), &y).unwrap();
        let boosted = auc(&model, &xt, &yt);
        let linear = LogisticRegression::default()
            .fit(&Dataset::new(x.clone(), Array1::from(y.clone())))
            .unwrap()
            .predict_probabilities(&xt);
        let linear = roc_auc(linear.as_slice().unwrap(), &yt);
        assert!(boosted > 0.95, "boosted AUC {boosted}");
        assert!(linear < 0.6, "logistic AUC {linear}");
        let importance = model.feature_importance();
        assert!((importance.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(importance[0] + importance[1] > 0.8, "{importance:?}");
    }

    #[test]
    fn linfa_fit_matches_fit_view() {
        let (x, y) = xor(600, 1, 3);
        let params = BoostParams::new().max_iterations(20);
        let via_linfa = params
            .fit(&Dataset::new(x.clone(), Array1::from(y.clone())))
            .unwrap();
        assert_eq!(via_linfa, params.fit_view(x.view(), &y).unwrap());
    }

    #[test]
    fn same_seed_gives_the_same_model() {
        let (x, y) = xor(1500, 4, 4);
        let a = BoostParams::new().seed(7).fit_view(x.view(), &y).unwrap();
        let b = BoostParams::new().seed(7).fit_view(x.view(), &y).unwrap();
        assert_eq!(a, b);
        assert!(a.n_trees() > 10);
    }

    #[test]
    fn serde_round_trip_is_exact() {
        let (x, y) = xor(1000, 2, 5);
        let mut x = x;
        x[[3, 1]] = f64::NAN;
        x[[4, 2]] = f64::INFINITY;
        let model = BoostParams::new().fit_view(x.view(), &y).unwrap();
        let json = serde_json::to_string(&model).unwrap();
        let back: FittedBoost = serde_json::from_str(&json).unwrap();
        assert_eq!(back, model);
        let bin: FittedBoost = bincode::deserialize(&bincode::serialize(&model).unwrap()).unwrap();
        assert_eq!(bin, model);
        for row in x.rows() {
            let row = row.to_vec();
            let p = model.probability(&row).to_bits();
            assert_eq!(back.probability(&row).to_bits(), p);
            assert_eq!(bin.probability(&row).to_bits(), p);
        }
    }

    #[test]
    fn corrupt_models_are_rejected_on_load() {
        let (x, y) = xor(400, 0, 6);
        let model = BoostParams::new()
            .max_iterations(3)
            .fit_view(x.view(), &y)
            .unwrap();
        let mut value = serde_json::to_value(&model).unwrap();
        value["trees"][0]["nodes"][0]["left"] = serde_json::json!(0);
        value["trees"][0]["nodes"][0]["right"] = serde_json::json!(1);
        assert!(serde_json::from_value::<FittedBoost>(value.clone()).is_err());
        value["trees"][0]["nodes"][0]["left"] = serde_json::json!(1000);
        assert!(serde_json::from_value::<FittedBoost>(value.clone()).is_err());
        let mut value = serde_json::to_value(&model).unwrap();
        value["width"] = serde_json::json!(1);
        assert!(serde_json::from_value::<FittedBoost>(value).is_err());
    }

    #[test]
    fn flat_layout_agrees_at_the_edges() {
        let split = |threshold: f64, missing_left: bool| Node {
            value: 0.0,
            feature: 0,
            threshold,
            missing_left,
            left: 1,
            right: 2,
            gain: 1.0,
        };
        let values = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            0.5,
            1.0,
        ];
        for threshold in [f64::MAX, 0.5, -1.0] {
            for missing_left in [false, true] {
                let tree = Tree {
                    nodes: vec![
                        split(threshold, missing_left),
                        Node::leaf(-1.0),
                        Node::leaf(1.0),
                    ],
                };
                let model = FittedBoost::new(1, 0.0, vec![tree.clone()]);
                for v in values {
                    let by_tree = tree.leaf(|_| v).value;
                    assert_eq!(
                        model.log_odds(&[v]),
                        by_tree,
                        "{threshold} {missing_left} {v}"
                    );
                }
            }
        }
    }

    #[test]
    fn flat_layout_scores_as_the_trees_do() {
        let (mut x, y) = xor(1000, 3, 8);
        x[[1, 0]] = f64::NAN;
        x[[2, 1]] = f64::INFINITY;
        let model = BoostParams::new().fit_view(x.view(), &y).unwrap();
        assert!(model.n_trees() > 1);
        for row in x.rows().into_iter().take(300) {
            let row = row.to_vec();
            let by_tree = model.trees.iter().fold(model.base_score, |sum, tree| {
                sum + tree.leaf(|f| row[f]).value
            });
            assert_eq!(model.log_odds(&row).to_bits(), by_tree.to_bits());
        }
    }

    #[test]
    fn contributions_add_up_to_the_log_odds() {
        let (x, y) = xor(1000, 3, 8);
        let mut x = x;
        x[[0, 0]] = f64::NAN;
        let model = BoostParams::new().fit_view(x.view(), &y).unwrap();
        let mut out = vec![0.0; model.width()];
        for row in x.rows().into_iter().take(200) {
            let row = row.to_vec();
            // Explaining a row does not change its log-odds, to the bit: an
            // answer with reasons and one without agree.
            let log_odds = model.explain(&row, &mut out);
            assert_eq!(log_odds.to_bits(), model.log_odds(&row).to_bits());
            let total = out.iter().sum::<f64>() + model.expected_value();
            assert!((total - model.log_odds(&row)).abs() < 1e-9);
        }
        // The informative features carry the explanation of a clear XOR row.
        model.explain(&[0.9, 0.9, 0.0, 0.0, 0.0], &mut out);
        assert!(out[0] + out[1] > 1.0, "{out:?}");
    }

    #[test]
    fn missing_values_are_a_signal() {
        // Feature 0 is missing for 80% of positives and never for negatives;
        // feature 1 is noise.
        let mut rng = Xoshiro256Plus::seed_from_u64(9);
        let rows = 3000;
        let y: Vec<bool> = (0..rows).map(|_| rng.gen_bool(0.3)).collect();
        let x = Array2::from_shape_fn((rows, 2), |(i, f)| {
            if f == 0 && y[i] && rng.gen_bool(0.8) {
                f64::NAN
            } else {
                rng.gen_range(0.0..1.0)
            }
        });
        let (train, test) = (0..2000, 2000..rows);
        let model = BoostParams::new()
            .fit_view(x.slice(ndarray::s![train.clone(), ..]), &y[train])
            .unwrap();
        let xt = x.slice(ndarray::s![test.clone(), ..]).to_owned();
        let a = auc(&model, &xt, &y[test]);
        assert!(a > 0.85, "AUC {a}");
        let all_missing = model.probability(&[f64::NAN, f64::NAN]);
        let present = model.probability(&[0.5, f64::NAN]);
        assert!(all_missing.is_finite() && all_missing > present);
        let extreme = model.probability(&[f64::INFINITY, f64::NEG_INFINITY]);
        assert!((0.0..=1.0).contains(&extreme));
    }

    #[test]
    fn bad_parameters_have_their_own_errors() {
        let check = |p: BoostParams| p.check().unwrap_err();
        let p = BoostParams::new;
        assert!(matches!(
            check(p().learning_rate(0.0)),
            BoostError::InvalidLearningRate { .. }
        ));
        assert!(matches!(
            check(p().learning_rate(f64::NAN)),
            BoostError::InvalidLearningRate { .. }
        ));
        assert!(matches!(
            check(p().max_iterations(0)),
            BoostError::InvalidMaxIterations
        ));
        assert!(matches!(
            check(p().max_leaf_nodes(1)),
            BoostError::InvalidMaxLeafNodes { value: 1 }
        ));
        assert!(matches!(
            check(p().max_depth(Some(0))),
            BoostError::InvalidMaxDepth
        ));
        assert!(matches!(
            check(p().min_samples_leaf(0)),
            BoostError::InvalidMinSamplesLeaf
        ));
        assert!(matches!(
            check(p().l2_regularization(-1.0)),
            BoostError::InvalidL2Regularization { .. }
        ));
        assert!(matches!(
            check(p().max_bins(256)),
            BoostError::InvalidMaxBins { value: 256 }
        ));
        assert!(matches!(
            check(p().max_bins(1)),
            BoostError::InvalidMaxBins { value: 1 }
        ));
        assert!(matches!(
            check(p().validation_fraction(1.0)),
            BoostError::InvalidValidationFraction { .. }
        ));
        assert!(matches!(
            check(p().n_iter_no_change(0)),
            BoostError::InvalidNIterNoChange
        ));
        assert!(matches!(
            check(p().tol(-1e-3)),
            BoostError::InvalidTol { .. }
        ));
        assert!(p().max_depth(Some(3)).check().is_ok());
        // linfa's Fit goes through the same check.
        let data = Dataset::new(
            Array2::zeros((4, 1)),
            Array1::from(vec![true, false, true, false]),
        );
        assert!(matches!(
            p().max_bins(0).fit(&data),
            Err(BoostError::InvalidMaxBins { .. })
        ));
    }

    #[test]
    fn bad_data_is_rejected() {
        let x = Array2::from_shape_fn((50, 2), |(i, j)| (i + j) as f64);
        let params = BoostParams::new();
        assert!(matches!(
            params.fit_view(x.view(), &[true; 50]),
            Err(BoostError::SingleClass {
                rows: 50,
                value: true
            })
        ));
        assert!(matches!(
            params.fit_view(x.view(), &[false; 50]),
            Err(BoostError::SingleClass { value: false, .. })
        ));
        assert!(matches!(
            params.fit_view(x.view(), &[true, false]),
            Err(BoostError::LabelCount {
                rows: 50,
                labels: 2
            })
        ));
        assert!(matches!(
            params.fit_view(Array2::zeros((0, 2)).view(), &[]),
            Err(BoostError::SingleClass { rows: 0, .. })
        ));
        let y: Vec<bool> = (0..50).map(|i| i % 3 == 0).collect();
        let model = params.fit_view(x.view(), &y).unwrap();
        assert!(model.check_width(2).is_ok());
        assert!(matches!(
            model.check_width(3),
            Err(BoostError::WidthMismatch {
                expected: 2,
                got: 3
            })
        ));
    }

    #[test]
    fn tiny_and_constant_data_still_fit() {
        // Too few rows for any split or for early stopping: a prior-only model.
        let x = Array2::from_elem((6, 3), 1.0);
        let y = [true, false, false, true, false, false];
        let model = BoostParams::new().fit_view(x.view(), &y).unwrap();
        let p = model.probability(&[1.0, 1.0, 1.0]);
        assert!((p - 1.0 / 3.0).abs() < 1e-6, "{p}");
        assert_eq!(model.feature_importance(), vec![0.0; 3]);
    }

    /// One-hot `area_code`, drop `state`, yes/no as 1/0; label `churn == "yes"`.
    fn read_mlc_churn(path: &std::path::Path) -> (Array2<f64>, Vec<bool>) {
        let mut reader = csv::Reader::from_path(path).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header.first().map(String::as_str), Some("state"));
        assert_eq!(header.last().map(String::as_str), Some("churn"));
        let areas = ["area_code_408", "area_code_415", "area_code_510"];
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        for record in reader.records() {
            let record = record.unwrap();
            for (name, field) in header.iter().zip(record.iter()) {
                match name.as_str() {
                    "state" => {}
                    "churn" => labels.push(field == "yes"),
                    "area_code" => {
                        assert!(areas.contains(&field), "unknown area {field}");
                        values.extend(areas.iter().map(|a| f64::from(u8::from(*a == field))));
                    }
                    "international_plan" | "voice_mail_plan" => {
                        values.push(f64::from(u8::from(field == "yes")))
                    }
                    _ => values.push(field.parse().unwrap()),
                }
            }
        }
        let width = values.len() / labels.len();
        (
            Array2::from_shape_vec((labels.len(), width), values).unwrap(),
            labels,
        )
    }

    #[test]
    fn mlc_churn_matches_scikit_learn() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mlc_churn.csv");
        if !path.exists() {
            eprintln!("skipping: {} not found", path.display());
            return;
        }
        // On this split scikit-learn 1.9's HistGradientBoostingClassifier gets
        // 0.925 (defaults) and 0.927 (early stopping, 300 iterations) with the
        // same encoding; this learner gets 0.929. Its 0.935 headline is on
        // another split (numpy's seed 42), where this learner gets 0.940.
        let (x, y) = read_mlc_churn(&path);
        assert_eq!(x.dim(), (5000, 20));
        // Stratified 70/30 split, seed 42.
        let mut rng = Xoshiro256Plus::seed_from_u64(42);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for class in [false, true] {
            let mut rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
            rows.shuffle(&mut rng);
            let cut = (rows.len() as f64 * 0.7).round() as usize;
            train.extend_from_slice(&rows[..cut]);
            test.extend_from_slice(&rows[cut..]);
        }
        let pick = |rows: &[usize]| {
            (
                x.select(ndarray::Axis(0), rows),
                rows.iter().map(|&i| y[i]).collect::<Vec<_>>(),
            )
        };
        let ((xtr, ytr), (xte, yte)) = (pick(&train), pick(&test));
        let started = std::time::Instant::now();
        let model = BoostParams::new().fit_view(xtr.view(), &ytr).unwrap();
        let elapsed = started.elapsed();
        let a = auc(&model, &xte, &yte);
        eprintln!(
            "mlc_churn holdout AUC {a:.4} with {} trees, trained in {elapsed:?}",
            model.n_trees()
        );
        assert!(a >= 0.92, "AUC {a}");
    }
}
