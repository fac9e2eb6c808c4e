//! Segments: RFM scores and names, value tiers, and k-means clusters with a
//! readable persona each.

use linfa::prelude::*;
use linfa_clustering::KMeans;
use linfa_nn::distance::L2Dist;
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::math::quantiles;
use crate::model::standardize::Standardizer;

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
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        columns: Vec<usize>,
        names: Vec<String>,
        x: &Array2<f64>,
        raw: &Array2<f64>,
        k: usize,
        seed: u64,
        rfm: RfmEdges,
        value_edges: Vec<f64>,
    ) -> Result<(SegmentModel, Vec<usize>)> {
        if x.nrows() < k * 10 {
            return Err(Error::training(format!(
                "segments: {} rows are too few for {} clusters",
                x.nrows(),
                k
            )));
        }
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(x);
        let rng = Xoshiro256Plus::seed_from_u64(seed);
        let kmeans = KMeans::params_with_rng(k, rng)
            .n_runs(3)
            .max_n_iterations(200)
            .tolerance(1e-5)
            .fit(&DatasetBase::from(z.clone()))
            .map_err(|e| Error::training(format!("segments: {e}")))?;
        let assigned: Vec<usize> = kmeans.predict(&z).to_vec();
        let mut clusters = Vec::with_capacity(k);
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
pub(crate) fn persona(names: &[String], centroid: &[f64]) -> String {
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
