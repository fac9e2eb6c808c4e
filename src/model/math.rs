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

/// Solves `a x = b` for a symmetric positive-definite `n × n` matrix `a`
/// (row-major) by Cholesky factorisation, in place: `b` becomes `x`.
/// `None` when `a` is not positive definite (a pivot at or below 0).
pub fn solve_positive_definite(a: &mut [f64], n: usize, b: &mut [f64]) -> Option<()> {
    if a.len() != n * n || b.len() != n {
        return None;
    }
    // a = L Lᵀ, L stored in the lower triangle.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    for i in 0..n {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * n + k] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= a[k * n + i] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_positive_definite_system_is_solved_and_an_indefinite_one_refused() {
        let mut a = vec![4.0, 2.0, 0.6, 2.0, 2.0, 0.5, 0.6, 0.5, 3.0];
        let want = [1.0, -2.0, 0.5];
        let mut b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * want[j]).sum())
            .collect();
        solve_positive_definite(&mut a, 3, &mut b).unwrap();
        for (got, want) in b.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        let mut singular = vec![1.0, 2.0, 2.0, 1.0];
        assert!(solve_positive_definite(&mut singular, 2, &mut [1.0, 1.0]).is_none());
    }

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
