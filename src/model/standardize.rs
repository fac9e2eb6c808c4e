//! Per-column standardization, learned on the training rows and applied
//! identically at serving.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Per-column centring and scaling learned on the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardizer {
    pub fn fit(x: ArrayView2<f64>) -> Standardizer {
        let mean = x.mean_axis(Axis(0)).map(|m| m.to_vec()).unwrap_or_default();
        let scale = x
            .std_axis(Axis(0), 0.0)
            .iter()
            .map(|s| if *s > 1e-12 { *s } else { 1.0 })
            .collect();
        Standardizer { mean, scale }
    }

    pub fn apply(&self, row: &mut [f64]) {
        for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
            *v = (*v - m) / s;
        }
    }

    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut out = x.as_standard_layout().into_owned();
        for (j, mut column) in out.columns_mut().into_iter().enumerate() {
            let (m, s) = (self.mean[j], self.scale[j]);
            column.mapv_inplace(|v| (v - m) / s);
        }
        out
    }
}
