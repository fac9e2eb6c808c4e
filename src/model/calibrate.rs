//! Probability calibration on held-out scores.
//!
//! Boosted trees rank well but their probabilities drift (early stopping and
//! shrinkage leave them under- or over-confident), and the service reports
//! probabilities, not just ranks. A [`Calibrator`] maps a model's probability
//! to a calibrated one; it is fitted on rows the model did not train on.
//!
//! Two maps, as in scikit-learn's `CalibratedClassifierCV`:
//! - Platt scaling, `logistic(a * logit(p) + b)`: two parameters, fitted by
//!   Newton's method on Platt's smoothed targets (`(N+ + 1) / (N+ + 2)` for
//!   positives, `1 / (N- + 2)` for negatives), so it is safe on small sets.
//! - Isotonic regression: the pool-adjacent-violators step function,
//!   interpolated linearly between block ends. It fits any monotone
//!   distortion but needs data, so it is only considered from
//!   [`MIN_ISOTONIC_ROWS`] rows up.
//!
//! [`fit_best`] picks between them by stratified [`CV_FOLDS`]-fold
//! cross-validated log loss on the held-out set. Every map is strictly
//! increasing (the isotonic one keeps [`ISOTONIC_TIE_BREAK`] of the raw
//! score for that), so calibration never changes the ranking (ROC AUC), and
//! outputs are clamped to `[1e-6, 1 - 1e-6]`.

use serde::{Deserialize, Serialize};

pub use crate::model::math::CLAMP;
use crate::model::math::{logistic, logit, softplus};

/// The weight of the model's own probability in an isotonic map. The step
/// function alone ties every row of a block, and on mlc_churn those ties
/// cost boosting up to 0.012 of ROC AUC; this much of the raw score keeps
/// the map strictly increasing, so the model's ranking survives, while the
/// probability moves by less than this.
pub const ISOTONIC_TIE_BREAK: f64 = 1e-4;

/// Fewest held-out rows for which isotonic regression is considered.
pub const MIN_ISOTONIC_ROWS: usize = 1000;
/// Folds of the cross-validation that picks the calibrator.
pub const CV_FOLDS: usize = 5;

/// A monotone map from a model's probability to a calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Calibrator {
    /// No calibration (too little or one-class held-out data).
    Identity,
    /// `logistic(a * logit(p) + b)` with `a >= 0`.
    Platt { a: f64, b: f64 },
    /// Knots of a non-decreasing piecewise-linear map: `x` strictly
    /// increasing, `y` non-decreasing, flat beyond the ends.
    Isotonic { x: Vec<f64>, y: Vec<f64> },
}

impl Calibrator {
    /// The calibrated probability of `p`, in `[1e-6, 1 - 1e-6]` and
    /// non-decreasing in `p`. `NaN` passes through as `NaN`, so a broken score
    /// upstream stays visible.
    pub fn apply(&self, p: f64) -> f64 {
        if p.is_nan() {
            return p;
        }
        let q = match self {
            Calibrator::Identity => p,
            Calibrator::Platt { a, b } => logistic(a * logit(p) + b),
            Calibrator::Isotonic { x, y } => {
                (1.0 - ISOTONIC_TIE_BREAK) * interpolate(x, y, p) + ISOTONIC_TIE_BREAK * p
            }
        };
        // A NaN here can only come from damaged parameters; 0.5 is the neutral answer.
        if q.is_nan() {
            0.5
        } else {
            q.clamp(CLAMP, 1.0 - CLAMP)
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Calibrator::Identity => "identity",
            Calibrator::Platt { .. } => "platt",
            Calibrator::Isotonic { .. } => "isotonic",
        }
    }
}

/// Piecewise-linear through the knots, flat outside them; the shorter of
/// `x` and `y` wins if they disagree, and no knots means identity.
fn interpolate(x: &[f64], y: &[f64], p: f64) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let (Some(&x0), Some(&xn)) = (x.first(), x.last()) else {
        return p;
    };
    if p <= x0 {
        return y[0];
    }
    if p >= xn {
        return y[n - 1];
    }
    // x0 < p < xn, so 1 <= j < n.
    let j = x.partition_point(|v| *v <= p).clamp(1, n - 1);
    let (x1, x2, y1, y2) = (x[j - 1], x[j], y[j - 1], y[j]);
    if x2 > x1 {
        y1 + (y2 - y1) * (p - x1) / (x2 - x1)
    } else {
        y1
    }
}

/// Rows with a finite score, as (score, label).
fn usable(scores: &[f64], labels: &[bool]) -> Vec<(f64, bool)> {
    scores
        .iter()
        .zip(labels)
        .filter(|(s, _)| s.is_finite())
        .map(|(s, l)| (*s, *l))
        .collect()
}

fn both_classes(rows: &[(f64, bool)]) -> bool {
    rows.iter().any(|r| r.1) && rows.iter().any(|r| !r.1)
}

/// Platt scaling on held-out `scores` (probabilities) and `labels`.
///
/// Rows with a non-finite score are ignored, as are labels beyond the
/// shorter slice. Returns `Identity` without both classes. If the fitted
/// slope is negative (scores anti-correlated with labels), the best
/// non-decreasing map is the constant prior, returned as `a = 0`.
pub fn fit_platt(scores: &[f64], labels: &[bool]) -> Calibrator {
    let rows = usable(scores, labels);
    if !both_classes(&rows) {
        return Calibrator::Identity;
    }
    platt(&rows)
}

fn platt(rows: &[(f64, bool)]) -> Calibrator {
    let positives = rows.iter().filter(|r| r.1).count() as f64;
    let negatives = rows.len() as f64 - positives;
    let (hi, lo) = (
        (positives + 1.0) / (positives + 2.0),
        1.0 / (negatives + 2.0),
    );
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|(s, l)| (logit(*s), if *l { hi } else { lo }))
        .collect();
    let loss = |a: f64, b: f64| -> f64 {
        points
            .iter()
            .map(|(z, t)| {
                let f = a * z + b;
                t * softplus(-f) + (1.0 - t) * softplus(f)
            })
            .sum()
    };

    // Newton with backtracking from the identity map (Lin, Lin & Weng 2007).
    let (mut a, mut b) = (1.0, 0.0);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (z, t) in &points {
            let p = logistic(a * z + b);
            let w = (p * (1.0 - p)).max(1e-12);
            ga += (p - t) * z;
            gb += p - t;
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        if ga.abs() < 1e-9 && gb.abs() < 1e-9 {
            break;
        }
        let det = haa * hbb - hab * hab;
        if det <= 0.0 {
            break;
        }
        let da = -(hbb * ga - hab * gb) / det;
        let db = -(haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step >= 1e-10 {
            let (na, nb) = (a + step * da, b + step * db);
            let next = loss(na, nb);
            if next < current + 1e-4 * step * (ga * da + gb * db) {
                (a, b, current) = (na, nb, next);
                improved = true;
                break;
            }
            step /= 2.0;
        }
        if !improved {
            break;
        }
    }
    if !(a.is_finite() && b.is_finite()) {
        return Calibrator::Identity;
    }
    if a < 0.0 {
        let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
        return Calibrator::Platt {
            a: 0.0,
            b: (mean / (1.0 - mean)).ln(),
        };
    }
    Calibrator::Platt { a, b }
}

/// Isotonic regression of labels on held-out `scores` by pool adjacent
/// violators; equal scores are pooled first.
///
/// Rows with a non-finite score are ignored. Returns `Identity` without both
/// classes.
pub fn fit_isotonic(scores: &[f64], labels: &[bool]) -> Calibrator {
    let rows = usable(scores, labels);
    if !both_classes(&rows) {
        return Calibrator::Identity;
    }
    isotonic(rows)
}

fn isotonic(mut rows: Vec<(f64, bool)>) -> Calibrator {
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Blocks of (first score, last score, label sum, weight), kept non-decreasing.
    let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
    for (s, l) in rows {
        let y = f64::from(u8::from(l));
        match blocks.last_mut() {
            Some(last) if last.1 == s => {
                last.2 += y;
                last.3 += 1.0;
            }
            _ => blocks.push((s, s, y, 1.0)),
        }
        while blocks.len() >= 2 {
            let n = blocks.len();
            let (prev, last) = (blocks[n - 2], blocks[n - 1]);
            if prev.2 / prev.3 <= last.2 / last.3 {
                break;
            }
            blocks[n - 2] = (prev.0, last.1, prev.2 + last.2, prev.3 + last.3);
            blocks.pop();
        }
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (first, last, sum, weight) in blocks {
        let mean = sum / weight;
        x.push(first);
        y.push(mean);
        if last > first {
            x.push(last);
            y.push(mean);
        }
    }
    Calibrator::Isotonic { x, y }
}

/// The calibrator with the lower cross-validated log loss on the held-out
/// `scores` and `labels`, refitted on all of them.
///
/// Below [`MIN_ISOTONIC_ROWS`] usable rows this is Platt scaling without
/// cross-validation; without both classes it is `Identity`. Folds are
/// stratified round-robin in the given order, so the choice is deterministic.
/// Isotonic must win strictly, so ties keep the smoother Platt map.
pub fn fit_best(scores: &[f64], labels: &[bool]) -> Calibrator {
    let rows = usable(scores, labels);
    if !both_classes(&rows) {
        return Calibrator::Identity;
    }
    if rows.len() < MIN_ISOTONIC_ROWS {
        return platt(&rows);
    }
    let mut fold = vec![0usize; rows.len()];
    let mut seen = [0usize; 2];
    for (f, row) in fold.iter_mut().zip(&rows) {
        let class = usize::from(row.1);
        *f = seen[class] % CV_FOLDS;
        seen[class] += 1;
    }
    let (mut platt_loss, mut isotonic_loss) = (0.0, 0.0);
    for k in 0..CV_FOLDS {
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (row, f) in rows.iter().zip(&fold) {
            if *f == k {
                test.push(*row);
            } else {
                train.push(*row);
            }
        }
        let (p, i) = (platt(&train), isotonic(train));
        for (s, l) in test {
            let target = if l { 1.0 } else { 0.0 };
            platt_loss += cross_entropy(p.apply(s), target);
            isotonic_loss += cross_entropy(i.apply(s), target);
        }
    }
    if isotonic_loss < platt_loss {
        isotonic(rows)
    } else {
        platt(&rows)
    }
}

fn cross_entropy(p: f64, target: f64) -> f64 {
    -(target * p.ln() + (1.0 - target) * (1.0 - p).ln())
}

impl Default for Calibrator {
    /// Models stored before calibration existed load as uncalibrated.
    fn default() -> Self {
        Calibrator::Identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::metrics::{expected_calibration_error, log_loss, roc_auc};
    use rand::Rng;
    use rand_xoshiro::rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256Plus;

    /// Scores uniform in (0, 1) with labels drawn from `truth(score)`.
    fn sample(rows: usize, seed: u64, truth: impl Fn(f64) -> f64) -> (Vec<f64>, Vec<bool>) {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let scores: Vec<f64> = (0..rows).map(|_| rng.gen_range(0.001..0.999)).collect();
        let labels = scores.iter().map(|s| rng.gen_bool(truth(*s))).collect();
        (scores, labels)
    }

    fn assert_monotone_and_clamped(c: &Calibrator) {
        let mut previous = 0.0;
        for k in 0..=1000 {
            let q = c.apply(k as f64 / 1000.0);
            assert!((CLAMP..=1.0 - CLAMP).contains(&q), "{c:?} gives {q}");
            assert!(q >= previous, "{c:?} decreases at {k}");
            previous = q;
        }
        assert_eq!(c.apply(-3.0), c.apply(0.0));
        assert_eq!(c.apply(7.0), c.apply(1.0));
    }

    #[test]
    fn platt_recovers_a_known_logistic() {
        let (scores, labels) = sample(40_000, 1, |s| logistic(2.0 * logit(s) - 0.5));
        let Calibrator::Platt { a, b } = fit_platt(&scores, &labels) else {
            panic!("not Platt");
        };
        assert!((a - 2.0).abs() < 0.1, "a = {a}");
        assert!((b + 0.5).abs() < 0.1, "b = {b}");
    }

    #[test]
    fn platt_never_inverts_the_ranking() {
        let (scores, labels) = sample(2000, 2, |s| 1.0 - s);
        let c = fit_platt(&scores, &labels);
        let Calibrator::Platt { a, b } = c else {
            panic!("not Platt");
        };
        assert_eq!(a, 0.0);
        assert!(b.is_finite());
        assert_monotone_and_clamped(&c);
    }

    #[test]
    fn isotonic_is_monotone_and_fixes_miscalibration() {
        // The model is badly over-confident at the bottom: truth is sqrt(score).
        let truth = |s: f64| s.sqrt();
        let (scores, labels) = sample(5000, 3, truth);
        let (held, held_labels) = sample(5000, 4, truth);
        let c = fit_isotonic(&scores, &labels);
        let Calibrator::Isotonic { x, y } = &c else {
            panic!("not isotonic");
        };
        assert!(x.windows(2).all(|w| w[0] < w[1]));
        assert!(y.windows(2).all(|w| w[0] <= w[1]));
        assert_monotone_and_clamped(&c);
        let before = expected_calibration_error(&held, &held_labels);
        let calibrated: Vec<f64> = held.iter().map(|s| c.apply(*s)).collect();
        let after = expected_calibration_error(&calibrated, &held_labels);
        assert!(before > 0.1, "ECE before {before}");
        assert!(
            after < 0.03 && after < before / 3.0,
            "ECE {before} -> {after}"
        );
        // A strictly increasing map keeps the ranking.
        assert!((roc_auc(&calibrated, &held_labels) - roc_auc(&held, &held_labels)).abs() < 1e-12);
    }

    #[test]
    fn pava_pools_violators() {
        let c = fit_isotonic(&[0.1, 0.2, 0.3, 0.4], &[false, true, false, true]);
        assert_eq!(
            c,
            Calibrator::Isotonic {
                x: vec![0.1, 0.2, 0.3, 0.4],
                y: vec![0.0, 0.5, 0.5, 1.0]
            }
        );
        let eps = ISOTONIC_TIE_BREAK;
        assert!((c.apply(0.25) - 0.5).abs() <= eps);
        assert!(c.apply(0.05) <= eps && c.apply(0.95) >= 1.0 - eps);
        assert!((c.apply(0.15) - 0.25).abs() <= eps);
        // Within a pooled block the model's order survives: no ties.
        assert!(c.apply(0.21) < c.apply(0.25) && c.apply(0.25) < c.apply(0.29));
    }

    #[test]
    fn fit_best_picks_by_held_out_loss() {
        // A step is far from any sigmoid of the logit: isotonic should win.
        let step = |s: f64| if s < 0.5 { 0.1 } else { 0.9 };
        let (scores, labels) = sample(5000, 5, step);
        let best = fit_best(&scores, &labels);
        assert_eq!(best.name(), "isotonic");
        let (held, held_labels) = sample(5000, 6, step);
        let loss = |c: &Calibrator| {
            let p: Vec<f64> = held.iter().map(|s| c.apply(*s)).collect();
            log_loss(&p, &held_labels)
        };
        assert!(loss(&best) < loss(&fit_platt(&scores, &labels)));

        // Already a sigmoid of the logit: Platt is as good and preferred.
        let (scores, labels) = sample(5000, 7, |s| logistic(1.5 * logit(s)));
        assert_eq!(fit_best(&scores, &labels).name(), "platt");

        // Too few rows for isotonic.
        let (scores, labels) = sample(500, 8, step);
        assert_eq!(fit_best(&scores, &labels).name(), "platt");
    }

    #[test]
    fn degenerate_inputs_give_identity() {
        assert_eq!(fit_best(&[], &[]), Calibrator::Identity);
        assert_eq!(fit_best(&[0.2, 0.7], &[true, true]), Calibrator::Identity);
        assert_eq!(
            fit_platt(&[f64::NAN, 0.3], &[true, false]),
            Calibrator::Identity
        );
        let c = Calibrator::Identity;
        assert_monotone_and_clamped(&c);
        assert_eq!(c.apply(0.0), CLAMP);
        assert!(c.apply(f64::NAN).is_nan());
        // Damaged knots never panic.
        let broken = Calibrator::Isotonic {
            x: vec![0.5],
            y: vec![],
        };
        assert_eq!(broken.apply(0.3), 0.3);
    }

    #[test]
    fn calibrators_round_trip_through_serde() {
        let (scores, labels) = sample(3000, 9, |s| s * s);
        for c in [
            fit_platt(&scores, &labels),
            fit_isotonic(&scores, &labels),
            Calibrator::Identity,
        ] {
            let back: Calibrator =
                serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
            for s in &scores[..100] {
                assert_eq!(back.apply(*s).to_bits(), c.apply(*s).to_bits());
            }
        }
    }
}
