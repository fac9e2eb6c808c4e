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

/// RFM score edges, learned among the training relationships that bought.
///
/// - R: quintiles of the days since the last purchase, reversed (5 = most recent).
/// - F: 1 for a single purchase occasion, whatever the population; the
///   repeat buyers' occasions split into quartiles give 2 to 5. (Quintiles of
///   a count where most bought once would give a second purchase F = 5.)
/// - M: quintiles of total spend.
///
/// A relationship that has not bought has no RFM scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfmEdges {
    pub recency_days: Vec<f64>,
    /// Quartile edges of the occasions of repeat buyers (2 or more).
    pub repeat_frequency: Vec<f64>,
    pub monetary: Vec<f64>,
}

impl RfmEdges {
    pub fn learn(recency: &mut [f64], frequency: &[f64], monetary: &mut [f64]) -> RfmEdges {
        let mut repeat: Vec<f64> = frequency.iter().copied().filter(|f| *f >= 2.0).collect();
        RfmEdges {
            recency_days: quantiles(recency, &[0.2, 0.4, 0.6, 0.8]),
            repeat_frequency: quantiles(&mut repeat, &[0.25, 0.5, 0.75]),
            monetary: quantiles(monetary, &[0.2, 0.4, 0.6, 0.8]),
        }
    }

    /// (R, F, M) scores 1–5, 5 best, of a relationship that has bought.
    pub fn score(&self, recency_days: f64, occasions: f64, monetary: f64) -> (u32, u32, u32) {
        let rank = |edges: &[f64], v: f64| 1 + edges.iter().filter(|e| v > **e).count() as u32;
        let f = if occasions < 2.0 {
            1
        } else {
            1 + rank(&self.repeat_frequency, occasions)
        };
        (
            6 - rank(&self.recency_days, recency_days),
            f,
            rank(&self.monetary, monetary),
        )
    }
}

/// The segment of an R and F score, by the R × F grid in models/README.md
/// (M is a score of its own and does not name the segment):
///
/// | R \ F | 1 | 2 | 3 | 4 | 5 |
/// |---|---|---|---|---|---|
/// | 5 | New | Potential loyalist | Potential loyalist | Champions | Champions |
/// | 4 | Promising | Potential loyalist | Potential loyalist | Loyal | Loyal |
/// | 3 | About to sleep | About to sleep | Need attention | Loyal | Loyal |
/// | 2 | Hibernating | Hibernating | At risk | At risk | Can't lose |
/// | 1 | Lost | Lost | At risk | At risk | Can't lose |
pub fn rfm_segment(r: u32, f: u32) -> &'static str {
    match r {
        5.. => match f {
            ..=1 => "New",
            2 | 3 => "Potential loyalist",
            _ => "Champions",
        },
        4 => match f {
            ..=1 => "Promising",
            2 | 3 => "Potential loyalist",
            _ => "Loyal",
        },
        3 => match f {
            ..=2 => "About to sleep",
            3 => "Need attention",
            _ => "Loyal",
        },
        2 => match f {
            ..=2 => "Hibernating",
            3 | 4 => "At risk",
            _ => "Can't lose",
        },
        _ => match f {
            ..=2 => "Lost",
            3 | 4 => "At risk",
            _ => "Can't lose",
        },
    }
}

/// The segment of a relationship that has not bought.
pub const PROSPECT: &str = "Prospect";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterProfile {
    pub size: u64,
    pub persona: String,
    /// Mean raw value of each segment column over the cluster's members that
    /// have it (`None` when none has: a cluster of prospects has no recency).
    pub means: Vec<Option<f64>>,
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
                    let (sum, n) = members
                        .iter()
                        .map(|i| raw[[*i, j]])
                        .filter(|v| v.is_finite())
                        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
                    (n > 0).then(|| sum / n as f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfm_scores_follow_their_edges() {
        let edges = RfmEdges {
            recency_days: vec![10.0, 30.0, 90.0, 180.0],
            repeat_frequency: vec![2.0, 4.0, 8.0],
            monetary: vec![50.0, 100.0, 200.0, 400.0],
        };
        assert_eq!(edges.score(5.0, 20.0, 1000.0), (5, 5, 5));
        assert_eq!(edges.score(400.0, 1.0, 10.0), (1, 1, 1));
        // One occasion is F = 1 however few repeat buyers there are; edges are inclusive.
        assert_eq!(edges.score(10.0, 1.0, 50.0), (5, 1, 1));
        assert_eq!(edges.score(10.000001, 2.0, 50.01), (4, 2, 2));
        assert_eq!(edges.score(30.0, 4.0, 100.0), (4, 3, 2));
        assert_eq!(edges.score(180.0, 8.0, 400.0), (2, 4, 4));
        assert_eq!(edges.score(180.5, 8.5, 400.5), (1, 5, 5));
    }

    #[test]
    fn every_cell_of_the_rfm_grid_has_its_documented_segment() {
        // Rows R = 5 to 1, columns F = 1 to 5, as in models/README.md.
        let grid = [
            [
                "New",
                "Potential loyalist",
                "Potential loyalist",
                "Champions",
                "Champions",
            ],
            [
                "Promising",
                "Potential loyalist",
                "Potential loyalist",
                "Loyal",
                "Loyal",
            ],
            [
                "About to sleep",
                "About to sleep",
                "Need attention",
                "Loyal",
                "Loyal",
            ],
            [
                "Hibernating",
                "Hibernating",
                "At risk",
                "At risk",
                "Can't lose",
            ],
            ["Lost", "Lost", "At risk", "At risk", "Can't lose"],
        ];
        for (row, names) in grid.iter().enumerate() {
            let r = 5 - row as u32;
            for (column, name) in names.iter().enumerate() {
                let f = column as u32 + 1;
                assert_eq!(rfm_segment(r, f), *name, "R{r} F{f}");
            }
        }
        // No single-purchase relationship is loyal or a champion.
        for r in 1..=5 {
            assert!(!["Loyal", "Champions", "Can't lose", "At risk"].contains(&rfm_segment(r, 1)));
        }
    }
}
