//! The fitted models and the bundle they ship in.
//!
//! A training run produces one [`ModelBundle`]: the feature schema, the churn
//! classifier with its timing curve, the value regression, the segments and
//! the basket rules, with holdout metrics. Bundles are stored in sled as
//! versions; serving loads one into a [`crate::engine::LoadedModel`].
//!
//! The linfa models are kept as fitted (they serialise with serde); serving
//! evaluates their linear predictors directly on the coefficients linfa
//! learned, which is the same arithmetic without an ndarray allocation per
//! request (a unit test holds the two equal).

pub mod baskets;
pub mod metrics;
pub mod spec;

use linfa::prelude::*;
use linfa_clustering::KMeans;
use linfa_linear::{FittedLinearRegression, LinearRegression};
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use linfa_nn::distance::L2Dist;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;
use crate::error::{Error, Result};
use crate::features::FeatureSchema;

pub use baskets::Baskets;
pub use spec::ModelSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
}

/// Everything one training run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelBundle {
    /// Assigned by the store when saved.
    pub version: u64,
    pub trained_at: Timestamp,
    /// Where the rows came from: "store" or a file path.
    pub source: String,
    pub spec: ModelSpec,
    pub cutoff: Option<Timestamp>,
    pub training_rows: u64,
    pub schema: FeatureSchema,
    pub churn: ChurnModel,
    pub value: Option<ValueModel>,
    pub segments: Option<SegmentModel>,
    pub baskets: Baskets,
    pub metrics: Vec<Metric>,
}

impl ModelBundle {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// Checks every model agrees with the schema's width, so no predict path can
    /// meet a vector of the wrong length.
    ///
    /// # Errors
    /// `Corrupt` naming the model whose width disagrees.
    pub fn check_widths(&self) -> Result<()> {
        let width = self.schema.width();
        let corrupt = |what: &str, got: usize| Error::Corrupt {
            key: format!("models/{}", self.version),
            reason: format!("{what} expects {got} features but the schema has {width}"),
        };
        if self.churn.scaler.mean.len() != width || self.churn.classifier.params().len() != width {
            return Err(corrupt("churn", self.churn.classifier.params().len()));
        }
        for t in &self.churn.timing {
            if t.classifier.params().len() != width {
                return Err(corrupt("churn timing", t.classifier.params().len()));
            }
        }
        if let Some(v) = &self.value {
            if v.model.params().len() != width {
                return Err(corrupt("value", v.model.params().len()));
            }
        }
        if let Some(s) = &self.segments {
            if s.columns.iter().any(|c| *c >= width)
                || s.kmeans.centroids().ncols() != s.columns.len()
            {
                return Err(corrupt("segments", s.columns.len()));
            }
        }
        Ok(())
    }
}

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

pub fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn linear(params: &Array1<f64>, intercept: f64, z: &[f64]) -> f64 {
    params.iter().zip(z).map(|(w, x)| w * x).sum::<f64>() + intercept
}

fn fit_logistic(
    z: &Array2<f64>,
    labels: &[bool],
    l2: f64,
    max_iterations: u64,
    what: &str,
) -> Result<FittedLogisticRegression<f64, bool>> {
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 || positives == labels.len() {
        return Err(Error::training(format!(
            "{what}: every training label is {}; the data needs both outcomes",
            positives > 0
        )));
    }
    let dataset = Dataset::new(z.clone(), Array1::from(labels.to_vec()));
    // The loss is summed over rows: keep the gradient tolerance per-row (see ValueModel::fit).
    LogisticRegression::default()
        .alpha(l2)
        .max_iterations(max_iterations)
        .gradient_tolerance(1e-5 * z.nrows() as f64)
        .fit(&dataset)
        .map_err(|e| Error::training(format!("{what}: {e}")))
}

/// A churn classifier at one horizon of the timing curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HorizonClassifier {
    pub days: u32,
    pub classifier: FittedLogisticRegression<f64, bool>,
}

/// Logistic regression on standardized features: the probability of no
/// purchase within the horizon, and a curve of when the relationship ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnModel {
    pub horizon_days: u32,
    pub scaler: Standardizer,
    pub classifier: FittedLogisticRegression<f64, bool>,
    pub timing: Vec<HorizonClassifier>,
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
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(x);
        let classifier = fit_logistic(&z, labels, params.l2, params.max_iterations, "churn")?;
        let mut timing = Vec::new();
        for (days, y) in timing_labels {
            match fit_logistic(&z, y, params.l2, params.max_iterations, "churn timing") {
                Ok(classifier) => timing.push(HorizonClassifier {
                    days: *days,
                    classifier,
                }),
                Err(e) => tracing::warn!(horizon_days = days, "timing horizon skipped: {e}"),
            }
        }
        Ok(ChurnModel {
            horizon_days: params.horizon_days,
            scaler,
            classifier,
            timing,
        })
    }

    /// Probability of churn for a standardized row.
    pub fn probability(&self, z: &[f64]) -> f64 {
        logistic(linear(
            self.classifier.params(),
            self.classifier.intercept(),
            z,
        ))
    }

    /// Each column's contribution to the log-odds against the average relationship
    /// (standardized value 0).
    pub fn contributions<'a>(&'a self, z: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
        self.classifier.params().iter().zip(z).map(|(w, x)| w * x)
    }

    /// Probability of having ended by each horizon, made non-decreasing.
    pub fn timing_curve(&self, z: &[f64]) -> Vec<(u32, f64)> {
        let mut floor = 0.0f64;
        self.timing
            .iter()
            .map(|h| {
                let p = logistic(linear(h.classifier.params(), h.classifier.intercept(), z));
                floor = floor.max(p);
                (h.days, floor)
            })
            .collect()
    }

    /// Batch probabilities through linfa itself (training metrics, round-trip tests).
    pub fn probabilities(&self, x: &Array2<f64>) -> Array1<f64> {
        self.classifier
            .predict_probabilities(&self.scaler.transform(x))
    }
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

/// Ridge regression on `log1p(spend)` (linfa's least squares on rows augmented
/// with `sqrt(l2) * I`), retransformed with Duan's smearing so the prediction is
/// the expected spend within the horizon, not its geometric mean.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValueModel {
    pub horizon_days: u32,
    pub scaler: Standardizer,
    /// Mean of `log1p(spend)` on the training rows: the intercept.
    pub intercept: f64,
    /// Mean of `exp(residual)` on the training rows.
    pub smearing: f64,
    pub model: FittedLinearRegression<f64>,
}

impl ValueModel {
    /// # Errors
    /// `Training` when the targets are all zero or linfa fails.
    pub fn fit(x: &Array2<f64>, target: &[f64], params: &spec::ValueParams) -> Result<ValueModel> {
        if target.iter().all(|t| *t <= 0.0) {
            return Err(Error::training(
                "value: no spend after the cutoff to learn from",
            ));
        }
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(x);
        let y: Vec<f64> = target.iter().map(|t| t.max(0.0).ln_1p()).collect();
        let intercept = y.iter().sum::<f64>() / y.len() as f64;
        // Standardized columns have mean zero, so the intercept is the target
        // mean and the ridge rows (target 0) need not touch it.
        let width = z.ncols();
        let mut rows = z.clone();
        let ridge = Array2::from_diag(&Array1::from_elem(width, params.l2.sqrt()));
        rows.append(Axis(0), ridge.view())
            .map_err(|e| Error::training(format!("value: {e}")))?;
        let mut centred: Vec<f64> = y.iter().map(|v| v - intercept).collect();
        centred.extend(std::iter::repeat_n(0.0, width));
        let model = LinearRegression::new()
            .with_intercept(false)
            .fit(&Dataset::new(rows, Array1::from(centred)))
            .map_err(|e| Error::training(format!("value: {e}")))?;
        let fitted = z.dot(model.params());
        let smearing = y
            .iter()
            .zip(fitted.iter())
            .map(|(v, f)| (v - intercept - f).exp())
            .sum::<f64>()
            / y.len() as f64;
        Ok(ValueModel {
            horizon_days: params.horizon_days,
            scaler,
            intercept,
            smearing,
            model,
        })
    }

    pub fn predict(&self, z: &[f64]) -> f64 {
        let eta = linear(self.model.params(), self.intercept, z);
        (eta.min(50.0).exp() * self.smearing - 1.0).max(0.0)
    }

    /// Batch predictions through linfa itself.
    pub fn predictions(&self, x: &Array2<f64>) -> Array1<f64> {
        let eta = self.model.predict(&self.scaler.transform(x)) + self.intercept;
        eta.mapv(|e| (e.min(50.0).exp() * self.smearing - 1.0).max(0.0))
    }
}

/// RFM quintile edges: 20/40/60/80th percentiles among relationships that bought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfmEdges {
    pub recency_days: Vec<f64>,
    pub frequency: Vec<f64>,
    pub monetary: Vec<f64>,
}

impl RfmEdges {
    pub fn learn(recency: &mut [f64], frequency: &mut [f64], monetary: &mut [f64]) -> RfmEdges {
        RfmEdges {
            recency_days: quantiles(recency, &[0.2, 0.4, 0.6, 0.8]),
            frequency: quantiles(frequency, &[0.2, 0.4, 0.6, 0.8]),
            monetary: quantiles(monetary, &[0.2, 0.4, 0.6, 0.8]),
        }
    }

    /// (R, F, M) scores 1–5, 5 best; recent is good, so recency is reversed.
    pub fn score(&self, recency_days: f64, frequency: f64, monetary: f64) -> (u32, u32, u32) {
        let rank = |edges: &[f64], v: f64| 1 + edges.iter().filter(|e| v > **e).count() as u32;
        (
            6 - rank(&self.recency_days, recency_days),
            rank(&self.frequency, frequency),
            rank(&self.monetary, monetary),
        )
    }
}

/// The classic RFM segment names from R and the mean of F and M.
pub fn rfm_segment(r: u32, f: u32, m: u32) -> &'static str {
    let fm = (f + m).div_ceil(2);
    match (r, fm) {
        (5, 1) => "New",
        (4..=5, 4..=5) => "Champions",
        (3..=5, 3..=5) => "Loyal",
        (4..=5, 2) => "Potential loyalist",
        (4..=5, _) => "Promising",
        (3, 2) => "Need attention",
        (3, _) => "About to sleep",
        (1..=2, 5) => "Can't lose",
        (1..=2, 3) | (1..=2, 4) => "At risk",
        (2, _) => "Hibernating",
        _ => "Lost",
    }
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterProfile {
    pub size: u64,
    pub persona: String,
    /// Mean raw value of each segment column in the cluster.
    pub means: Vec<f64>,
}

/// k-means on standardized segment columns, with a persona per cluster, and
/// the RFM and value-tier edges learned from the same population.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentModel {
    /// Indices of the segment columns in the schema.
    pub columns: Vec<usize>,
    pub names: Vec<String>,
    pub scaler: Standardizer,
    pub kmeans: KMeans<f64, L2Dist>,
    pub clusters: Vec<ClusterProfile>,
    pub rfm: RfmEdges,
    /// 50/80/95th percentiles of predicted value: Bronze, Silver, Gold, Platinum.
    pub value_edges: Vec<f64>,
}

impl SegmentModel {
    /// Fits k-means on the model-scale values `x` of the segment columns; `raw`
    /// holds the same rows in raw units for the personas.
    ///
    /// # Errors
    /// `Training` when there are fewer rows than clusters or linfa fails.
    pub fn fit(
        columns: Vec<usize>,
        names: Vec<String>,
        x: &Array2<f64>,
        raw: &Array2<f64>,
        params: &spec::SegmentParams,
        rfm: RfmEdges,
        value_edges: Vec<f64>,
    ) -> Result<(SegmentModel, Vec<usize>)> {
        if x.nrows() < params.clusters * 10 {
            return Err(Error::training(format!(
                "segments: {} rows are too few for {} clusters",
                x.nrows(),
                params.clusters
            )));
        }
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(x);
        let rng = Xoshiro256Plus::seed_from_u64(params.seed);
        let kmeans = KMeans::params_with_rng(params.clusters, rng)
            .n_runs(3)
            .max_n_iterations(200)
            .tolerance(1e-5)
            .fit(&DatasetBase::from(z.clone()))
            .map_err(|e| Error::training(format!("segments: {e}")))?;
        let assigned: Vec<usize> = kmeans.predict(&z).to_vec();
        let mut clusters = Vec::with_capacity(params.clusters);
        for (c, centroid) in kmeans.centroids().rows().into_iter().enumerate() {
            let members: Vec<usize> = (0..assigned.len()).filter(|i| assigned[*i] == c).collect();
            let means = (0..raw.ncols())
                .map(|j| {
                    members.iter().map(|i| raw[[*i, j]]).sum::<f64>() / members.len().max(1) as f64
                })
                .collect();
            clusters.push(ClusterProfile {
                size: members.len() as u64,
                persona: persona(&names, centroid.as_slice().unwrap_or(&[])),
                means,
            });
        }
        Ok((
            SegmentModel {
                columns,
                names,
                scaler,
                kmeans,
                clusters,
                rfm,
                value_edges,
            },
            assigned,
        ))
    }

    /// Nearest centroid of a standardized row of the segment columns.
    pub fn nearest(&self, z: &[f64]) -> usize {
        let centroids = self.kmeans.centroids();
        let mut best = (0, f64::INFINITY);
        for (c, row) in centroids.rows().into_iter().enumerate() {
            let d: f64 = row.iter().zip(z).map(|(a, b)| (a - b).powi(2)).sum();
            if d < best.1 {
                best = (c, d);
            }
        }
        best.0
    }

    /// Tier name and rank (1 best) of a predicted value, and whether it is profitable.
    pub fn value_tier(&self, value: f64, profitable: bool) -> (&'static str, u32) {
        if !profitable {
            return ("Unprofitable", 5);
        }
        match self.value_edges.iter().filter(|e| value > **e).count() {
            3 => ("Platinum", 1),
            2 => ("Gold", 2),
            1 => ("Silver", 3),
            _ => ("Bronze", 4),
        }
    }
}

/// A readable persona from a standardized centroid: its strongest traits.
fn persona(names: &[String], centroid: &[f64]) -> String {
    let mut traits: Vec<(f64, String)> = names
        .iter()
        .zip(centroid)
        .filter(|(_, z)| z.abs() >= 0.4)
        .map(|(name, z)| (z.abs(), describe_trait(name, *z > 0.0)))
        .collect();
    traits.sort_by(|a, b| b.0.total_cmp(&a.0));
    if traits.is_empty() {
        return "typical on every measure".to_string();
    }
    traits
        .into_iter()
        .take(4)
        .map(|t| t.1)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_trait(name: &str, high: bool) -> String {
    let words = match name {
        "recency_days" => ("recently quiet", "recently active"),
        "frequency" | "frequency_per_year" | "occasions_90d" => ("frequent", "infrequent"),
        "monetary_avg" => ("high-spend", "low-spend"),
        "spend_total" | "spend_90d" => ("big spender", "small spender"),
        "product_breadth" => ("broad basket", "narrow basket"),
        "tickets_90d" => ("many tickets", "few tickets"),
        "complaints_90d" => ("complaining", "rarely complains"),
        "tenure_days" => ("long-standing", "recent"),
        "visits_90d" => ("engaged online", "rarely visits"),
        "survey_avg" => ("satisfied", "dissatisfied"),
        "payment_days_late_avg" | "payment_days_late_90d" => ("pays late", "pays on time"),
        "spend_trend" => ("growing spend", "shrinking spend"),
        _ => return format!("{} {name}", if high { "high" } else { "low" }),
    };
    (if high { words.0 } else { words.1 }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfm_scores_and_names() {
        let edges = RfmEdges {
            recency_days: vec![10.0, 30.0, 90.0, 180.0],
            frequency: vec![1.0, 2.0, 4.0, 8.0],
            monetary: vec![50.0, 100.0, 200.0, 400.0],
        };
        assert_eq!(edges.score(5.0, 20.0, 1000.0), (5, 5, 5));
        assert_eq!(edges.score(400.0, 1.0, 10.0), (1, 1, 1));
        assert_eq!(rfm_segment(5, 5, 5), "Champions");
        assert_eq!(rfm_segment(1, 1, 1), "Lost");
        assert_eq!(rfm_segment(1, 5, 5), "Can't lose");
        assert_eq!(rfm_segment(5, 1, 1), "New");
    }

    #[test]
    fn persona_names_strong_traits() {
        let names = vec![
            "frequency_per_year".to_string(),
            "recency_days".to_string(),
            "x".to_string(),
        ];
        assert_eq!(
            persona(&names, &[1.5, 0.9, 0.1]),
            "frequent, recently quiet"
        );
        assert_eq!(persona(&names, &[0.0, 0.0, -0.5]), "low x");
    }

    #[test]
    fn expected_days_is_area_above_the_curve() {
        assert_eq!(expected_days_to_churn(&[(30, 0.0), (90, 0.0)]), 90.0);
        assert_eq!(expected_days_to_churn(&[(30, 1.0), (90, 1.0)]), 0.0);
    }

    #[test]
    fn fast_path_matches_linfa_and_survives_serde() {
        let x = Array2::from_shape_fn((200, 3), |(i, j)| ((i * 7 + j * 13) % 17) as f64 + j as f64);
        let labels: Vec<bool> = (0..200)
            .map(|i| x[[i, 0]] + x[[i, 1]] * 0.5 > 10.0)
            .collect();
        let params = spec::ModelSpec::demo().churn;
        let model = ChurnModel::fit(&x, &labels, &[(30, labels.clone())], &params).unwrap();
        let json = serde_json::to_string(&model).unwrap();
        let back: ChurnModel = serde_json::from_str(&json).unwrap();
        let linfa = back.probabilities(&x);
        for (i, row) in x.rows().into_iter().enumerate() {
            let mut z = row.to_vec();
            model.scaler.apply(&mut z);
            assert_eq!(
                model.probability(&z).to_bits(),
                back.probability(&z).to_bits()
            );
            assert!((back.probability(&z) - linfa[i]).abs() < 1e-12);
        }
    }
}
