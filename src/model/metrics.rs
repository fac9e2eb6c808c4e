//! Holdout metrics for classifiers, regressions and clusterings.

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
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
        .sum();
    total / probs.len().max(1) as f64
}

/// Expected calibration error over ten equal-width probability bins.
pub fn expected_calibration_error(probs: &[f64], labels: &[bool]) -> f64 {
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
    pred.iter()
        .zip(actual)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / pred.len().max(1) as f64
}

pub fn rmse(pred: &[f64], actual: &[f64]) -> f64 {
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
}
