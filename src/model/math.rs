//! Small numeric helpers every model shares: the logistic link and its
//! inverse, a dot product over slices, quantiles.

use ndarray::Array1;

/// Probabilities are kept this far from 0 and 1 wherever a log-odds is taken.
pub const CLAMP: f64 = 1e-6;

/// The logistic function, `1 / (1 + e^-z)`.
pub fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Log-odds of `p`, clamped to [`CLAMP`] so 0 and 1 stay finite.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(CLAMP, 1.0 - CLAMP);
    (p / (1.0 - p)).ln()
}

/// `ln(1 + e^x)` without overflow.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `params · z + intercept`.
pub fn linear(params: &Array1<f64>, intercept: f64, z: &[f64]) -> f64 {
    // A slice walks several times faster than ndarray's element iterator,
    // and fitted parameters are always contiguous.
    let dot = match params.as_slice() {
        Some(w) => w.iter().zip(z).map(|(w, x)| w * x).sum::<f64>(),
        None => params.iter().zip(z).map(|(w, x)| w * x).sum::<f64>(),
    };
    dot + intercept
}

/// Linear-interpolated quantiles; sorts `values` in place.
pub fn quantiles(values: &mut [f64], qs: &[f64]) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    qs.iter()
        .map(|q| {
            if values.is_empty() {
                return 0.0;
            }
            let pos = q * (values.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_inverts_logistic_and_stays_finite() {
        for z in [-5.0, -0.3, 0.0, 2.0] {
            assert!((logit(logistic(z)) - z).abs() < 1e-9);
        }
        assert!(logit(0.0).is_finite() && logit(1.0).is_finite());
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-12);
        assert!(softplus(800.0).is_finite());
    }

    #[test]
    fn quantiles_interpolate() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantiles(&mut v, &[0.0, 0.5, 1.0]), vec![1.0, 2.5, 4.0]);
        assert_eq!(quantiles(&mut [], &[0.5]), vec![0.0]);
    }
}
