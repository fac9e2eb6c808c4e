//! Drift: each feature's training distribution in decile bins, and the
//! population stability index of live values against it.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::model::math::quantiles;

/// Decile bins of one feature's raw values on the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReference {
    pub feature: String,
    /// Upper edges of all bins but the last, ascending and distinct.
    pub edges: Vec<f64>,
    /// Share of training rows in each bin (`edges.len() + 1` bins).
    pub fractions: Vec<f64>,
}

impl DriftReference {
    pub fn learn(feature: String, values: &[f64]) -> DriftReference {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let mut edges = quantiles(&mut sorted, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
        edges.dedup();
        let mut reference = DriftReference {
            feature,
            edges,
            fractions: vec![],
        };
        reference.fractions = reference.distribution(values);
        reference
    }

    fn distribution(&self, values: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; self.edges.len() + 1];
        for v in values {
            counts[self.edges.iter().filter(|e| *v > **e).count()] += 1;
        }
        let n = values.len().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / n).collect()
    }

    /// Population stability index of `values` against the training distribution.
    pub fn psi(&self, values: &[f64]) -> f64 {
        const EPS: f64 = 1e-4;
        self.distribution(values)
            .iter()
            .zip(&self.fractions)
            .map(|(a, e)| {
                let (a, e) = (a.max(EPS), e.max(EPS));
                (a - e) * (a / e).ln()
            })
            .sum()
    }
}

/// Drift references for every column of `raw` (rows of raw feature values).
pub fn drift_references(names: &[String], raw: &Array2<f64>) -> Vec<DriftReference> {
    names
        .iter()
        .enumerate()
        .map(|(j, name)| DriftReference::learn(name.clone(), &raw.column(j).to_vec()))
        .collect()
}
