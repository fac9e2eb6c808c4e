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
//! - `supply`, `credit`, `partnership`: supply risk, credit risk, partner lapse and sourced value
//!   (`risk`: the calibrated logistic they share)
//! - `router`: the model serving each relationship kind
//! - `spec`: the spec file; `metrics`: holdout metrics; `math`, `standardize`: shared arithmetic

pub mod baskets;
pub mod boost;
pub mod bundle;
pub mod calibrate;
pub mod churn;
pub mod clv;
pub mod credit;
pub mod drift;
pub mod labels;
pub mod learner;
pub mod logistic;
pub mod math;
pub mod metrics;
pub mod partnership;
pub mod risk;
pub mod router;
pub mod segments;
pub mod spec;
pub mod standardize;
pub mod supply;
pub mod value;

pub use baskets::Baskets;
pub use bundle::{Metric, ModelBundle, ModelSummary, TrainingEvaluation};
pub use churn::{expected_days_to_churn, ChurnModel, ChurnTarget, Curve, Outcome, CHURN_LEARNERS};
pub use credit::{CreditFacts, CreditModel, CreditParams};
pub use drift::{drift_references, DriftReference};
pub use math::{logistic, quantiles};
pub use partnership::{PartnerFacts, PartnerModel, PartnerParams, PartnerTier};
pub use router::{LoadedModel, ModelRouter};
pub use segments::{rfm_segment, ClusterProfile, RfmEdges, SegmentModel};
pub use spec::ModelSpec;
pub use standardize::Standardizer;
pub use supply::{Kraljic, SupplyFacts, SupplyModel, SupplyParams};
pub use value::ValueModel;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::learner::{sample_rows, stratified_folds, Validation};
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

    /// Rows of two features with churn days: the daily hazard is a step in
    /// the first feature (far from a logistic curve, so an uncalibrated
    /// classifier is over-confident). Each row is observed for `follow_up`
    /// days, or, with `censor`, for a random time between 20 and 200 days.
    fn survival_sample(
        rows: usize,
        seed: u64,
        censor: bool,
    ) -> (Array2<f64>, Vec<Outcome>, Vec<f64>) {
        use rand::Rng;
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let x = Array2::from_shape_fn((rows, 2), |_| rng.gen_range(-3.0..3.0));
        let mut outcomes = Vec::with_capacity(rows);
        let mut truth = Vec::with_capacity(rows);
        for row in x.rows() {
            let rate = if row[0] > 0.0 {
                1.0 / 60.0
            } else {
                1.0 / 400.0
            };
            let u: f64 = rng.gen();
            let day = -u.ln() / rate;
            let follow_up = if censor {
                rng.gen_range(20.0..200.0)
            } else {
                400.0
            };
            truth.push(rate);
            outcomes.push(Outcome {
                churned_after_days: (day <= follow_up).then_some(day),
                follow_up_days: follow_up,
            });
        }
        (x, outcomes, truth)
    }

    fn survival_params() -> spec::ChurnParams {
        let mut params = spec::ModelSpec::demo().churn;
        params.timing_horizons_days = vec![30, 90, 180];
        params.horizon_days = 90;
        params
    }

    #[test]
    fn the_curve_is_calibrated_per_horizon_and_never_falls() {
        let (x, outcomes, _) = survival_sample(12_000, 11, false);
        let params = survival_params();
        let (model, notes) =
            ChurnModel::fit_survival(&x, &outcomes, &params, &ProgressBar::hidden()).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(model.horizons(), vec![30, 90, 180]);
        let (x_new, outcomes_new, _) = survival_sample(6_000, 12, false);
        let curves = model.curves(&x_new);
        for (k, days) in [30u32, 90, 180].into_iter().enumerate() {
            let y: Vec<bool> = outcomes_new
                .iter()
                .map(|o| o.churned_by(f64::from(days)))
                .collect();
            let ece = metric_fns::expected_calibration_error(&curves[k], &y);
            assert!(ece < 0.03, "{days}d: ECE {ece}");
        }
        let z = model.scaler.transform(&x_new);
        for row in z.rows() {
            let curve = model.curve(row.as_slice().unwrap());
            assert!(
                curve.points.windows(2).all(|w| w[0].1 <= w[1].1),
                "{curve:?}"
            );
            assert_eq!(
                curve.churn, curve.points[1].1,
                "churn is the curve at its horizon"
            );
        }
    }

    #[test]
    fn censored_rows_are_not_counted_as_survivors() {
        // Half the rows leave the data between 20 and 200 days: a curve that
        // counted them as never churning would sit well below the truth.
        let (x, outcomes, truth) = survival_sample(20_000, 21, true);
        let params = survival_params();
        let (model, _) =
            ChurnModel::fit_survival(&x, &outcomes, &params, &ProgressBar::hidden()).unwrap();
        let curves = model.curves(&x);
        for (k, days) in [30.0f64, 90.0, 180.0].into_iter().enumerate() {
            let expected: f64 = truth
                .iter()
                .map(|rate| 1.0 - (-rate * days).exp())
                .sum::<f64>()
                / truth.len() as f64;
            let mean: f64 = curves[k].iter().sum::<f64>() / curves[k].len() as f64;
            assert!(
                (mean - expected).abs() < 0.02,
                "{days}d: mean curve {mean:.3} against the true {expected:.3}"
            );
        }
    }

    #[test]
    fn explained_contributions_follow_the_hazards() {
        let (x, outcomes, _) = survival_sample(3_000, 31, false);
        let mut params = survival_params();
        params.learners = vec!["logistic".into()];
        let (model, _) =
            ChurnModel::fit_survival(&x, &outcomes, &params, &ProgressBar::hidden()).unwrap();
        let z = model.scaler.transform(&x);
        let mut contributions = Vec::new();
        for row in z.rows().into_iter().take(50) {
            let row = row.as_slice().unwrap();
            let curve = model.explain(row, &mut contributions);
            assert_eq!(curve, model.curve(row));
            // The first feature drives the hazard up: a high value raises churn.
            assert_eq!(
                contributions[0] > 0.0,
                row[0] > 0.0,
                "{row:?} {contributions:?}"
            );
        }
    }

    #[test]
    fn a_horizon_the_data_cannot_observe_is_left_out_with_a_note() {
        let (x, mut outcomes, _) = survival_sample(3_000, 41, false);
        for o in &mut outcomes {
            o.follow_up_days = o.follow_up_days.min(120.0);
            o.churned_after_days = o.churned_after_days.filter(|d| *d <= 120.0);
        }
        let params = survival_params();
        let (model, notes) =
            ChurnModel::fit_survival(&x, &outcomes, &params, &ProgressBar::hidden()).unwrap();
        assert_eq!(model.horizons(), vec![30, 90]);
        assert!(notes[0].contains("churn.timing_horizons_days"), "{notes:?}");
        let mut params = survival_params();
        params.horizon_days = 180;
        let err = ChurnModel::fit_survival(&x, &outcomes, &params, &ProgressBar::hidden())
            .unwrap_err()
            .to_string();
        assert!(err.contains("churn.horizon_days"), "{err}");
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
        let (x, outcomes, _) = survival_sample(3_000, 15, false);
        let labels: Vec<bool> = outcomes.iter().map(|o| o.churned_by(90.0)).collect();
        let params = spec::ModelSpec::demo().churn;
        let model = ChurnModel::fit_label(&x, &labels, &params, &ProgressBar::hidden()).unwrap();
        let names: Vec<String> = model.candidates().into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["logistic regression", "gradient boosting"]);
        assert!(
            model.candidates().iter().all(|c| c.1 > 0.6),
            "{:?}",
            model.candidates()
        );
        // 3,000 held-out scores: enough for isotonic regression to be considered.
        assert_ne!(
            model.intervals[0].calibrator,
            calibrate::Calibrator::Identity
        );
        assert!(model.horizons().is_empty() && model.horizon_days().is_none());
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
        let model = ChurnModel::fit_label(&x, &labels, &params, &ProgressBar::hidden()).unwrap();
        let json = serde_json::to_string(&model).unwrap();
        let back: ChurnModel = serde_json::from_str(&json).unwrap();
        let hazard = &back.intervals[0];
        let linfa = {
            let p = hazard
                .classifier
                .predict_probabilities(&back.scaler.transform(&x));
            if crate::model::logistic::churn_sign(&hazard.classifier) > 0.0 {
                p
            } else {
                p.mapv(|v| 1.0 - v)
            }
        };
        for (i, row) in x.rows().into_iter().enumerate() {
            let mut z = row.to_vec();
            model.scaler.apply(&mut z);
            assert_eq!(
                model.probability(&z).to_bits(),
                back.probability(&z).to_bits()
            );
            assert!((hazard.calibrator.apply(linfa[i]) - back.probability(&z)).abs() < 1e-12);
        }
    }
}
