//! Holdout metrics for classifiers, regressions and clusterings, and the
//! bootstrap that puts an interval around any of them.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Area under the ROC curve (ties count one half), via the rank-sum statistic.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0.0, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += mid_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = scores.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// Average precision: the area under the precision-recall curve.
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 {
        return f64::NAN;
    }
    let (mut hits, mut sum) = (0usize, 0.0);
    for (rank, &k) in order.iter().enumerate() {
        if labels[k] {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    sum / positives as f64
}

pub fn log_loss(probs: &[f64], labels: &[bool]) -> f64 {
    if probs.is_empty() {
        return f64::NAN;
    }
    let eps = 1e-15;
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(p, y)| {
            let p = p.clamp(eps, 1.0 - eps);
            if *y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    total / probs.len().max(1) as f64
}

pub fn brier(probs: &[f64], labels: &[bool]) -> f64 {
    if probs.is_empty() {
        return f64::NAN;
    }
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
        .sum();
    total / probs.len().max(1) as f64
}

/// Expected calibration error over ten equal-width probability bins.
/// Like every error here, NaN without rows: there is nothing to measure.
pub fn expected_calibration_error(probs: &[f64], labels: &[bool]) -> f64 {
    if probs.is_empty() {
        return f64::NAN;
    }
    let mut bins = [(0.0f64, 0.0f64, 0usize); 10];
    for (p, y) in probs.iter().zip(labels) {
        let b = ((p * 10.0) as usize).min(9);
        bins[b].0 += p;
        bins[b].1 += f64::from(u8::from(*y));
        bins[b].2 += 1;
    }
    let n = probs.len().max(1) as f64;
    bins.iter()
        .filter(|b| b.2 > 0)
        .map(|(p, y, _)| (p - y).abs() / n)
        .sum()
}

/// Positive rate of each score decile (highest scores first) over the overall rate.
pub fn lift_by_decile(scores: &[f64], labels: &[bool]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let base = labels.iter().filter(|l| **l).count() as f64 / labels.len().max(1) as f64;
    (0..10)
        .map(|d| {
            let lo = d * order.len() / 10;
            let hi = (d + 1) * order.len() / 10;
            let slice = &order[lo..hi];
            let rate =
                slice.iter().filter(|&&k| labels[k]).count() as f64 / slice.len().max(1) as f64;
            if base > 0.0 {
                rate / base
            } else {
                f64::NAN
            }
        })
        .collect()
}

pub fn mae(pred: &[f64], actual: &[f64]) -> f64 {
    if pred.is_empty() {
        return f64::NAN;
    }
    pred.iter()
        .zip(actual)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / pred.len().max(1) as f64
}

pub fn rmse(pred: &[f64], actual: &[f64]) -> f64 {
    if pred.is_empty() {
        return f64::NAN;
    }
    (pred
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - a).powi(2))
        .sum::<f64>()
        / pred.len().max(1) as f64)
        .sqrt()
}

/// Pearson correlation; NaN when either side is constant.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().max(1) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    cov / (va * vb).sqrt()
}

/// Mean silhouette of `points` (rows of equal width) under `labels`.
pub fn silhouette(points: &[Vec<f64>], labels: &[usize], k: usize) -> f64 {
    let dist = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut total = 0.0;
    let mut counted = 0usize;
    for (i, p) in points.iter().enumerate() {
        let mut sums = vec![0.0; k];
        let mut counts = vec![0usize; k];
        for (j, q) in points.iter().enumerate() {
            if i != j {
                sums[labels[j]] += dist(p, q);
                counts[labels[j]] += 1;
            }
        }
        let own = labels[i];
        if counts[own] == 0 {
            continue;
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b);
            counted += 1;
        }
    }
    total / counted.max(1) as f64
}

/// Percentile bootstrap intervals of `k` statistics over `n` rows.
///
/// Draws `reps` resamples of `n` row indices with replacement from a
/// generator seeded with `seed` (the same arguments give the same intervals
/// on every platform) and hands each to `statistics`, which writes the `k`
/// statistics of that resample into its output slice. Returns, for each
/// statistic, the `(1 - level) / 2` and `(1 + level) / 2` quantiles of its
/// resampled values (linearly interpolated), e.g. the 2.5% and 97.5% points
/// for `level` 0.95. All statistics see the same resamples, so the rows are
/// drawn and gathered once however many metrics are measured.
///
/// Each resample's indices arrive in ascending order, so data sorted once by
/// the caller stays sorted after gathering (the rank metrics then sort an
/// already-sorted slice, which is linear).
///
/// A resample on which a statistic is not finite (a ROC AUC of a resample
/// that drew one class only), or that the closure left unwritten, is left out
/// of that statistic. A statistic's interval is `None` when there is nothing
/// to resample (`n` or `reps` is 0), `level` is not inside (0, 1), or fewer
/// than half of the resamples gave a finite value: an interval over the lucky
/// minority would be narrower than the truth.
pub fn bootstrap_intervals<F>(
    n: usize,
    reps: usize,
    seed: u64,
    level: f64,
    k: usize,
    mut statistics: F,
) -> Vec<Option<(f64, f64)>>
where
    F: FnMut(&[usize], &mut [f64]),
{
    if n == 0 || reps == 0 || !(level > 0.0 && level < 1.0) {
        return vec![None; k];
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut counts = vec![0u32; n];
    let mut indices = Vec::with_capacity(n);
    let mut out = vec![f64::NAN; k];
    let mut values = vec![Vec::with_capacity(reps); k];
    for _ in 0..reps {
        counts.fill(0);
        for _ in 0..n {
            // Drawn as u64 so the stream does not depend on the width of usize.
            counts[rng.gen_range(0..n as u64) as usize] += 1;
        }
        indices.clear();
        for (i, &c) in counts.iter().enumerate() {
            indices.extend(std::iter::repeat_n(i, c as usize));
        }
        out.fill(f64::NAN);
        statistics(&indices, &mut out);
        for (kept, &v) in values.iter_mut().zip(&out) {
            if v.is_finite() {
                kept.push(v);
            }
        }
    }
    let tail = (1.0 - level) / 2.0;
    values
        .into_iter()
        .map(|mut v| {
            if v.len() * 2 < reps {
                return None;
            }
            v.sort_by(f64::total_cmp);
            Some((quantile(&v, tail), quantile(&v, 1.0 - tail)))
        })
        .collect()
}

/// The `q` quantile of sorted, non-empty `values`, interpolated between the
/// two nearest order statistics.
fn quantile(values: &[f64], q: f64) -> f64 {
    let pos = q * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_inverted() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), 0.0);
        assert_eq!(roc_auc(&[0.5; 4], &labels), 0.5);
    }

    #[test]
    fn calibration_error_is_zero_when_calibrated() {
        let probs = [0.25; 8];
        let labels = [true, false, false, false, true, false, false, false];
        assert!(expected_calibration_error(&probs, &labels) < 1e-12);
        assert!(expected_calibration_error(&[0.95; 8], &labels) > 0.5);
    }

    #[test]
    fn regression_metrics() {
        assert_eq!(mae(&[1.0, 3.0], &[2.0, 2.0]), 1.0);
        assert_eq!(rmse(&[1.0, 3.0], &[2.0, 2.0]), 1.0);
        assert!((correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn separated_clusters_have_high_silhouette() {
        let points = vec![vec![0.0], vec![0.1], vec![10.0], vec![10.1]];
        assert!(silhouette(&points, &[0, 0, 1, 1], 2) > 0.9);
    }
    fn mean_of(values: &[f64], idx: &[usize]) -> f64 {
        idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64
    }

    /// The interval of one statistic.
    fn one(
        n: usize,
        reps: usize,
        seed: u64,
        level: f64,
        mut statistic: impl FnMut(&[usize]) -> f64,
    ) -> Option<(f64, f64)> {
        bootstrap_intervals(n, reps, seed, level, 1, |idx, out| out[0] = statistic(idx))[0]
    }

    #[test]
    fn bootstrap_is_reproducible_and_covers_the_estimate() {
        let values: Vec<f64> = (0..400).map(|i| f64::from(i % 17) * 0.5).collect();
        let mean = mean_of(&values, &(0..values.len()).collect::<Vec<_>>());
        let run = |seed| one(values.len(), 500, seed, 0.95, |idx| mean_of(&values, idx));
        let (lo, hi) = run(7).expect("interval");
        assert_eq!(run(7), Some((lo, hi)));
        assert_ne!(run(8), Some((lo, hi)), "the seed must matter");
        assert!(lo < mean && mean < hi, "{lo} < {mean} < {hi}");
        // The standard error of a mean of 400 rows with sd ~2.45 is ~0.12,
        // so a 95% interval is about 0.48 wide; far narrower or wider is a bug.
        assert!((0.3..0.7).contains(&(hi - lo)), "width {}", hi - lo);
        let (lo80, hi80) =
            one(values.len(), 500, 7, 0.8, |idx| mean_of(&values, idx)).expect("interval");
        assert!(
            lo < lo80 && hi80 < hi,
            "a lower level gives a narrower interval"
        );
    }

    #[test]
    fn bootstrap_statistics_share_sorted_resamples_of_n_rows() {
        let mut seen = 0;
        let both = bootstrap_intervals(50, 20, 1, 0.9, 2, |idx, out| {
            assert_eq!(idx.len(), 50);
            assert!(idx.windows(2).all(|w| w[0] <= w[1]));
            assert!(idx.iter().all(|&i| i < 50));
            seen += 1;
            let sum = idx.iter().sum::<usize>() as f64;
            out[0] = sum;
            out[1] = sum * 2.0;
        });
        assert_eq!(seen, 20);
        let (a, b) = (both[0].expect("first"), both[1].expect("second"));
        // Same resamples: the second statistic is exactly twice the first.
        assert_eq!((a.0 * 2.0, a.1 * 2.0), b);
        // The same seed gives the same resamples whatever else is measured.
        assert_eq!(
            one(50, 20, 1, 0.9, |idx| idx.iter().sum::<usize>() as f64),
            Some(a)
        );
    }

    #[test]
    fn bootstrap_refuses_what_it_cannot_estimate() {
        assert_eq!(one(0, 100, 1, 0.95, |_| 1.0), None);
        assert_eq!(one(10, 0, 1, 0.95, |_| 1.0), None);
        assert_eq!(one(10, 100, 1, 1.0, |_| 1.0), None);
        assert_eq!(one(10, 100, 1, f64::NAN, |_| 1.0), None);
        assert_eq!(one(10, 100, 1, 0.95, |_| f64::NAN), None);
        assert_eq!(
            bootstrap_intervals(0, 10, 1, 0.95, 3, |_, _| {}),
            vec![None; 3]
        );
        // An unwritten statistic has no interval; its neighbour still does.
        let partial = bootstrap_intervals(10, 100, 1, 0.95, 2, |_, out| out[0] = 2.0);
        assert_eq!(partial, vec![Some((2.0, 2.0)), None]);
        // One positive in 20 rows: most resamples still draw it, a few do not.
        let labels: Vec<bool> = (0..20).map(|i| i == 3).collect();
        let scores: Vec<f64> = (0..20).map(f64::from).collect();
        let (lo, hi) = one(20, 200, 3, 0.95, |idx| {
            let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
            let l: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
            roc_auc(&s, &l)
        })
        .expect("most resamples have both classes");
        assert!((0.0..=1.0).contains(&lo) && lo <= hi && hi <= 1.0);
    }

    #[test]
    fn quantile_interpolates() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.125), 1.5);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
    }
}
