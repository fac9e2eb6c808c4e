//! The models and the bundle they ship in.
//!
//! A training run produces one [`ModelBundle`]; the registry stores bundles as
//! versions and serving routes each relationship to the bundle of its kind
//! ([`router`]).
//!
//! - `learner`: the [`learner::Learner`] seam and held-out validation
//! - `logistic`, `boost`: the churn learners; `calibrate`: their calibration
//! - `churn`, `value`, `segments`, `baskets`: the fitted models; `clv`: BG/NBD and Gamma-Gamma
//! - `bundle`: what one run produces; `drift`: feature distributions
//! - `router`: the model serving each relationship kind
//! - `spec`: the spec file; `metrics`: holdout metrics; `math`, `standardize`: shared arithmetic

pub mod baskets;
pub mod boost;
pub mod bundle;
pub mod calibrate;
pub mod churn;
pub mod clv;
pub mod drift;
pub mod learner;
pub mod logistic;
pub mod math;
pub mod metrics;
pub mod router;
pub mod segments;
pub mod spec;
pub mod standardize;
pub mod value;

pub use baskets::Baskets;
pub use bundle::{Metric, ModelBundle, ModelSummary, TrainingEvaluation};
pub use churn::{expected_days_to_churn, ChurnModel, HorizonClassifier, CHURN_LEARNERS};
pub use drift::{drift_references, DriftReference};
pub use math::{logistic, quantiles};
pub use router::{LoadedModel, ModelRouter};
pub use segments::{rfm_segment, ClusterProfile, RfmEdges, SegmentModel};
pub use spec::ModelSpec;
pub use standardize::Standardizer;
pub use value::ValueModel;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::learner::{sample_rows, stratified_folds, Classifier, Validation};
    use crate::model::metrics as metric_fns;
    use crate::model::segments::persona;
    use indicatif::ProgressBar;
    use ndarray::Array2;
    use rand_xoshiro::rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256Plus;

    #[test]
    fn psi_is_zero_for_the_same_distribution_and_grows_with_a_shift() {
        let train: Vec<f64> = (0..1000).map(|i| f64::from(i % 100)).collect();
        let reference = DriftReference::learn("x".into(), &train);
        assert!(reference.psi(&train) < 1e-9);
        let shifted: Vec<f64> = train.iter().map(|v| v + 30.0).collect();
        assert!(reference.psi(&shifted) > 0.25);
    }

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
    fn fit_samples_are_seeded_distinct_and_ordered() {
        let rows = sample_rows(10_000, 1_000, 7);
        assert_eq!(rows.len(), 1_000);
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(rows, sample_rows(10_000, 1_000, 7));
        assert_ne!(rows, sample_rows(10_000, 1_000, 8));
        assert_eq!(sample_rows(10, 1_000, 7), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn expected_days_is_area_above_the_curve() {
        assert_eq!(expected_days_to_churn(&[(30, 0.0), (90, 0.0)]), 90.0);
        assert_eq!(expected_days_to_churn(&[(30, 1.0), (90, 1.0)]), 0.0);
    }

    /// Rows of two features with nested timing labels: the chance of ending by
    /// a horizon is a step in the first feature (far from a logistic curve, so
    /// the uncalibrated classifier is over-confident) and grows with the horizon.
    fn timing_sample(rows: usize, seed: u64) -> (Array2<f64>, Vec<(u32, Vec<bool>)>) {
        use rand::Rng;
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let x = Array2::from_shape_fn((rows, 2), |_| rng.gen_range(-3.0..3.0));
        let mut ended_30 = Vec::with_capacity(rows);
        let mut ended_90 = Vec::with_capacity(rows);
        for row in x.rows() {
            let (p30, p90) = if row[0] > 0.0 { (0.6, 0.8) } else { (0.1, 0.3) };
            let u: f64 = rng.gen();
            ended_30.push(u < p30);
            ended_90.push(u < p90);
        }
        (x, vec![(30, ended_30), (90, ended_90)])
    }

    #[test]
    fn timing_is_calibrated_per_horizon_and_monotone() {
        let (x, timing) = timing_sample(12_000, 11);
        let labels = timing[1].1.clone();
        let params = spec::ModelSpec::demo().churn;
        let model = ChurnModel::fit(&x, &labels, &timing, &params).unwrap();
        assert_eq!(model.timing.len(), 2);
        for h in &model.timing {
            assert_ne!(h.calibrator, calibrate::Calibrator::Identity, "{}d", h.days);
        }

        let (x_new, timing_new) = timing_sample(6000, 12);
        let z = model.scaler.transform(&x_new);
        let curves = model.timing_probabilities(&z);
        for (i, (h, (days, y))) in model.timing.iter().zip(&timing_new).enumerate() {
            assert_eq!(h.days, *days);
            let raw: Vec<f64> = z
                .rows()
                .into_iter()
                .map(|r| h.classifier.probability(r.as_slice().unwrap()))
                .collect();
            let before = metric_fns::expected_calibration_error(&raw, y);
            let after = metric_fns::expected_calibration_error(&curves[i], y);
            assert!(
                after < 0.05 && after < before / 1.5,
                "{days}d: ECE {before} -> {after}"
            );
        }
        for (k, row) in z.rows().into_iter().enumerate() {
            let curve = model.timing_curve(row.as_slice().unwrap());
            assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1), "{curve:?}");
            assert_eq!(curve[0].1, curves[0][k]);
            assert_eq!(curve[1].1, curves[1][k]);
        }
    }

    #[test]
    fn timing_curve_is_monotone_even_when_horizons_disagree() {
        let (x, timing) = timing_sample(3000, 13);
        let labels = timing[1].1.clone();
        let params = spec::ModelSpec::demo().churn;
        let mut model = ChurnModel::fit(&x, &labels, &timing, &params).unwrap();
        // A later horizon calibrated far below the earlier one must not dip under it.
        model.timing[1].calibrator = calibrate::Calibrator::Platt { a: 1.0, b: -8.0 };
        let z = model.scaler.transform(&x);
        for row in z.rows() {
            let curve = model.timing_curve(row.as_slice().unwrap());
            assert!(curve[1].1 >= curve[0].1, "{curve:?}");
        }
    }

    #[test]
    fn timing_without_a_validation_fold_is_uncalibrated_and_old_versions_load() {
        let (x, timing) = timing_sample(300, 14);
        let labels = timing[1].1.clone();
        let params = spec::ModelSpec::demo().churn;
        let model = ChurnModel::fit(&x, &labels, &timing, &params).unwrap();
        assert!(model
            .timing
            .iter()
            .all(|h| h.calibrator == calibrate::Calibrator::Identity));

        // A horizon stored before calibration existed has no `calibrator` field.
        let mut json = serde_json::to_value(&model.timing[0]).unwrap();
        json.as_object_mut().unwrap().remove("calibrator").unwrap();
        let old: HorizonClassifier = serde_json::from_value(json).unwrap();
        assert_eq!(old.calibrator, calibrate::Calibrator::Identity);
        let z = [0.5, -0.5];
        assert_eq!(
            old.probability(&z).to_bits(),
            model.timing[0].probability(&z).to_bits()
        );
    }

    #[test]
    fn stratified_folds_balance_classes() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 7 == 0).collect();
        let folds = stratified_folds(&labels, 5);
        for k in 0..5 {
            let members: Vec<usize> = (0..1000).filter(|i| folds[*i] == k).collect();
            let positives = members.iter().filter(|i| labels[**i]).count();
            assert!((199..=201).contains(&members.len()), "{}", members.len());
            assert!((28..=29).contains(&positives), "{positives}");
        }
    }

    #[test]
    fn validation_scores_rows_only_with_learners_that_did_not_see_them() {
        // The "learner" is the training labels' mean, so a held-out score equals the
        // mean over the other rows exactly when the row's own label was left out.
        struct MeanLearner;
        struct Mean(f64);
        impl crate::model::learner::Classifier for Mean {
            fn probability(&self, _: &[f64]) -> f64 {
                self.0
            }
        }
        impl crate::model::learner::Learner for MeanLearner {
            type Fitted = Mean;
            fn name(&self) -> &'static str {
                "mean"
            }
            fn fit(
                &self,
                _: ndarray::ArrayView2<f64>,
                y: &[bool],
                _: &ProgressBar,
            ) -> crate::error::Result<Mean> {
                Ok(Mean(
                    y.iter().filter(|v| **v).count() as f64 / y.len() as f64,
                ))
            }
        }
        for (rows, scheme) in [(500, "none"), (5_000, "cross-fit"), (25_000, "holdout")] {
            let z = Array2::zeros((rows, 1));
            let labels: Vec<bool> = (0..rows).map(|i| (i * 7919) % 10 < 3).collect();
            let validation = Validation::new(&z, &labels);
            let got = match &validation {
                Validation::None => "none",
                Validation::CrossFit { .. } => "cross-fit",
                Validation::Holdout { .. } => "holdout",
            };
            assert_eq!(got, scheme, "{rows} rows");
            let v = validation
                .run(&z, &labels, &ProgressBar::hidden(), &MeanLearner)
                .unwrap();
            match validation {
                Validation::None => {
                    assert!(v.scores.is_empty() && v.labels.is_empty());
                    assert!((v.model.0 - 0.3).abs() < 1e-12);
                }
                Validation::CrossFit { folds } => {
                    assert_eq!(v.scores.len(), rows);
                    assert_eq!(v.labels, labels);
                    for (train, test, _) in &folds {
                        let mean = train.iter().filter(|i| labels[**i]).count() as f64
                            / train.len() as f64;
                        assert!(test.iter().all(|i| v.scores[*i] == mean));
                        assert!(test.iter().all(|i| !train.contains(i)));
                    }
                    // The final learner sees every row.
                    assert!((v.model.0 - 0.3).abs() < 1e-12);
                }
                Validation::Holdout { val_rows, .. } => {
                    assert_eq!(v.scores.len(), val_rows.len());
                    assert_eq!(v.labels.len(), val_rows.len());
                }
            }
        }
    }

    #[test]
    fn small_tables_cross_fit_the_churn_learners_and_calibrate_on_every_row() {
        let (x, timing) = timing_sample(3_000, 15);
        let labels = timing[1].1.clone();
        let params = spec::ModelSpec::demo().churn;
        let model = ChurnModel::fit(&x, &labels, &[], &params).unwrap();
        let names: Vec<&str> = model.candidates.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["logistic regression", "gradient boosting"]);
        assert!(
            model.candidates.iter().all(|c| c.1 > 0.6),
            "{:?}",
            model.candidates
        );
        // 3,000 held-out scores: enough for isotonic regression to be considered.
        assert_ne!(model.calibrator, calibrate::Calibrator::Identity);
        let p = model.probabilities(&x);
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
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
