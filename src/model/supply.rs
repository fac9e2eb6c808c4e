//! Suppliers scored for what they are: the supply risk (the probability of a
//! serious delivery failure within the horizon), our dependency on them and
//! the value of what we buy, and their place in the Kraljic matrix.
//!
//! A delivery is a serious failure when it arrives more than
//! `late_tolerance_days` after its promise, fills less than `min_fill_rate`
//! of the order, or has more than `max_reject_rate` of what arrived rejected
//! (the spec's `[supplier]` table). Supply risk is a logistic regression on
//! the delivery history of the year before a time T (failure shares recent
//! and older, lateness and its trend, shortfall, rejects, volume), labelled
//! by whether a serious failure followed within `horizon_days`, fitted on the
//! book's suppliers at several cutoffs and calibrated ([`Calibrator`]). With
//! fewer than `min_deliveries` in that year the risk is unknown, not low.
//!
//! Dependency is our share of the category's spend (the category a supplier
//! takes most of our spend in), against the spend of every supplier of the
//! book at training time; a category no other supplier sells us is
//! single-sourced. Kraljic edges are the medians, over the book's suppliers
//! with a known risk, of spend share and supply risk: strategic is high
//! share and high risk, leverage high share and low risk, bottleneck low
//! share and high risk, non-critical low and low.

use std::collections::BTreeMap;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::kinds::{DeliveryRecord, KindHistory};
use crate::model::calibrate::{fit_best, Calibrator};
use crate::model::logistic::{churn_sign, fit_logistic};
use crate::model::math::logistic;
use crate::model::{quantiles, Standardizer};
use crate::time::{day_of, Timestamp};

/// The history supply risk looks at: the year before T.
pub const HISTORY_DAYS: i32 = 365;
/// "Recent" within that year.
pub const RECENT_DAYS: i32 = 90;

/// The spec's `[supplier]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupplyParams {
    /// Later than this many days after the promise is a failure.
    pub late_tolerance_days: f64,
    /// Less than this share of the order received is a failure.
    pub min_fill_rate: f64,
    /// More than this share of the units received rejected is a failure.
    pub max_reject_rate: f64,
    /// Supply risk is about a failure within this many days.
    pub horizon_days: u32,
    /// Fewer deliveries in the year before make the risk unknown.
    pub min_deliveries: u32,
    /// Ridge penalty of the logistic regression.
    pub l2: f64,
}

impl Default for SupplyParams {
    fn default() -> Self {
        SupplyParams {
            late_tolerance_days: 3.0,
            min_fill_rate: 0.95,
            max_reject_rate: 0.02,
            horizon_days: 90,
            min_deliveries: 5,
            l2: 1.0,
        }
    }
}

impl SupplyParams {
    /// # Errors
    /// A message naming the bad field.
    pub fn check(&self) -> std::result::Result<(), String> {
        let fraction = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("supplier.{name} = {v} must be in [0, 1]"))
            }
        };
        fraction("min_fill_rate", self.min_fill_rate)?;
        fraction("max_reject_rate", self.max_reject_rate)?;
        if !(self.late_tolerance_days.is_finite() && self.late_tolerance_days >= 0.0) {
            return Err("supplier.late_tolerance_days must be finite and >= 0".into());
        }
        if !(1..=730).contains(&self.horizon_days) {
            return Err("supplier.horizon_days must be 1 to 730".into());
        }
        if self.min_deliveries == 0 {
            return Err("supplier.min_deliveries must be at least 1".into());
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err("supplier.l2 must be finite and >= 0".into());
        }
        Ok(())
    }

    pub fn is_failure(&self, d: &DeliveryRecord) -> bool {
        f64::from(d.days_late) > self.late_tolerance_days || self.is_short(d) || self.is_rejected(d)
    }

    fn is_short(&self, d: &DeliveryRecord) -> bool {
        f64::from(d.received) < self.min_fill_rate * f64::from(d.ordered)
    }

    fn is_rejected(&self, d: &DeliveryRecord) -> bool {
        d.received > 0.0 && f64::from(d.rejected) > self.max_reject_rate * f64::from(d.received)
    }
}

/// What a supplier's history says as of T.
#[derive(Debug, Clone, PartialEq)]
pub struct SupplyFacts {
    /// Deliveries in the year before T, and in its last 90 days.
    pub deliveries: u32,
    pub recent_deliveries: u32,
    pub failures: u32,
    pub recent_failures: u32,
    pub late: u32,
    pub short: u32,
    pub rejected: u32,
    /// Mean days after the promise, recent and in the rest of the year.
    pub recent_days_late: f64,
    pub prior_days_late: f64,
    /// Received / ordered, and rejected / received, over the year.
    pub fill_rate: f64,
    pub reject_rate: f64,
    /// Relative change of the unit price, the last half year against the
    /// half before, spend-weighted over categories priced in both.
    pub price_trend: Option<f64>,
    /// Our spend in the year before T by category: purchase orders when
    /// there are any, otherwise what was received at its unit price.
    pub spend_by_category: BTreeMap<String, f64>,
}

impl SupplyFacts {
    pub fn of(history: &KindHistory, t: Timestamp, params: &SupplyParams) -> SupplyFacts {
        let today = day_of(t);
        let from = today - HISTORY_DAYS;
        let recent_from = today - RECENT_DAYS;
        let year: Vec<&DeliveryRecord> = history
            .deliveries
            .iter()
            .filter(|d| d.day > from && d.day <= today)
            .collect();
        let mut f = SupplyFacts {
            deliveries: year.len() as u32,
            recent_deliveries: 0,
            failures: 0,
            recent_failures: 0,
            late: 0,
            short: 0,
            rejected: 0,
            recent_days_late: 0.0,
            prior_days_late: 0.0,
            fill_rate: 1.0,
            reject_rate: 0.0,
            price_trend: None,
            spend_by_category: BTreeMap::new(),
        };
        let (mut ordered, mut received, mut rejected) = (0.0, 0.0, 0.0);
        let (mut recent_late_sum, mut prior_late_sum, mut prior_n) = (0.0, 0.0, 0u32);
        // Per category: (spend, units) in the older and the newer half year.
        let mut prices: BTreeMap<u16, [(f64, f64); 2]> = BTreeMap::new();
        for d in &year {
            let failed = params.is_failure(d);
            f.failures += u32::from(failed);
            f.late += u32::from(f64::from(d.days_late) > params.late_tolerance_days);
            f.short += u32::from(params.is_short(d));
            f.rejected += u32::from(params.is_rejected(d));
            if d.day > recent_from {
                f.recent_deliveries += 1;
                f.recent_failures += u32::from(failed);
                recent_late_sum += f64::from(d.days_late);
            } else {
                prior_n += 1;
                prior_late_sum += f64::from(d.days_late);
            }
            ordered += f64::from(d.ordered);
            received += f64::from(d.received);
            rejected += f64::from(d.rejected);
            let half = usize::from(d.day > today - HISTORY_DAYS / 2);
            let p = &mut prices.entry(d.category).or_default()[half];
            p.0 += f64::from(d.unit_price) * f64::from(d.received);
            p.1 += f64::from(d.received);
        }
        if f.recent_deliveries > 0 {
            f.recent_days_late = recent_late_sum / f64::from(f.recent_deliveries);
        }
        if prior_n > 0 {
            f.prior_days_late = prior_late_sum / f64::from(prior_n);
        } else {
            f.prior_days_late = f.recent_days_late;
        }
        if ordered > 0.0 {
            f.fill_rate = received / ordered;
        }
        if received > 0.0 {
            f.reject_rate = rejected / received;
        }
        let (mut weighted, mut weight) = (0.0, 0.0);
        for [old, new] in prices.values() {
            if old.1 > 0.0 && new.1 > 0.0 && old.0 > 0.0 {
                let change = (new.0 / new.1) / (old.0 / old.1) - 1.0;
                weighted += change * (old.0 + new.0);
                weight += old.0 + new.0;
            }
        }
        if weight > 0.0 {
            f.price_trend = Some(weighted / weight);
        }
        let orders: Vec<_> = history
            .orders
            .iter()
            .filter(|o| o.day > from && o.day <= today)
            .collect();
        if orders.is_empty() {
            for d in &year {
                *f.spend_by_category
                    .entry(history.category(d.category).to_string())
                    .or_default() += f64::from(d.unit_price) * f64::from(d.received);
            }
        } else {
            for o in orders {
                *f.spend_by_category
                    .entry(history.category(o.category).to_string())
                    .or_default() += o.amount;
            }
        }
        f
    }

    pub fn annual_spend(&self) -> f64 {
        self.spend_by_category.values().sum()
    }

    /// The category that takes most of our spend with this supplier.
    pub fn main_category(&self) -> Option<(&str, f64)> {
        self.spend_by_category
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(c, s)| (c.as_str(), *s))
    }

    /// Failure share, smoothed toward one half so that one delivery is not a certainty.
    fn share(failures: u32, n: u32) -> f64 {
        (f64::from(failures) + 0.5) / (f64::from(n) + 1.0)
    }

    /// The model's inputs ([`FEATURES`]).
    pub fn features(&self) -> [f64; FEATURES.len()] {
        let prior_n = self.deliveries - self.recent_deliveries;
        [
            Self::share(self.recent_failures, self.recent_deliveries),
            Self::share(self.failures - self.recent_failures, prior_n),
            self.recent_days_late.clamp(-30.0, 60.0),
            (self.recent_days_late - self.prior_days_late).clamp(-60.0, 60.0),
            (1.0 - self.fill_rate).clamp(0.0, 1.0),
            self.reject_rate.clamp(0.0, 1.0),
            f64::from(self.deliveries).ln_1p(),
        ]
    }
}

/// The model's inputs, with the breakdown category each belongs to and its unit.
pub const FEATURES: [(&str, Category, &str); 7] = [
    (
        "recent_failure_share",
        Category::Delivery,
        "share of deliveries",
    ),
    (
        "prior_failure_share",
        Category::Delivery,
        "share of deliveries",
    ),
    ("recent_days_late", Category::Delivery, "days"),
    ("lateness_trend_days", Category::Delivery, "days"),
    (
        "shortfall_share",
        Category::Delivery,
        "share of units ordered",
    ),
    ("reject_share", Category::Quality, "share of units received"),
    ("log_deliveries", Category::Delivery, "log(1 + deliveries)"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Category {
    Delivery,
    Quality,
    Price,
    Dependency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kraljic {
    Strategic,
    Leverage,
    Bottleneck,
    NonCritical,
}

impl Kraljic {
    pub fn classify(share: f64, risk: f64, share_edge: f64, risk_edge: f64) -> Kraljic {
        match (share >= share_edge, risk >= risk_edge) {
            (true, true) => Kraljic::Strategic,
            (true, false) => Kraljic::Leverage,
            (false, true) => Kraljic::Bottleneck,
            (false, false) => Kraljic::NonCritical,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kraljic::Strategic => "strategic",
            Kraljic::Leverage => "leverage",
            Kraljic::Bottleneck => "bottleneck",
            Kraljic::NonCritical => "non-critical",
        }
    }
}

/// One training example: a supplier's facts at T and whether a serious
/// failure followed within the horizon.
#[derive(Debug, Clone)]
pub struct SupplyRow {
    pub features: [f64; FEATURES.len()],
    pub failed: bool,
    pub holdout: bool,
}

/// A supplier of the book at training time: its spend by category and facts.
#[derive(Debug, Clone)]
pub struct BookSupplier {
    pub id: String,
    pub facts: SupplyFacts,
}

/// The fitted supply model with the book's category spend and Kraljic edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupplyModel {
    pub params: SupplyParams,
    pub scaler: Standardizer,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    pub calibrator: Calibrator,
    /// Category → supplier id → our spend in the year before training's data end.
    pub category_spend: BTreeMap<String, BTreeMap<String, f64>>,
    /// Medians over the book's suppliers with a known risk.
    pub share_edge: f64,
    pub risk_edge: f64,
    /// Holdout metrics, named `supplier.supply_risk.*`.
    pub training_rows: usize,
}

/// Our dependency on a supplier in its main category.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    pub category: String,
    pub share: f64,
    pub single_sourced: bool,
    /// Suppliers selling us the category, this one included.
    pub suppliers: usize,
}

impl SupplyModel {
    /// Fits the model on `rows` (holdout rows only evaluate) and learns the
    /// category spend and the edges from `book`. Returns the model and its
    /// holdout metrics as `(name, value)`.
    ///
    /// # Errors
    /// `Training` when the rows hold one outcome only or too few to fit.
    pub fn fit(
        params: &SupplyParams,
        rows: &[SupplyRow],
        book: &[BookSupplier],
    ) -> Result<(SupplyModel, Vec<(String, f64)>)> {
        let train: Vec<&SupplyRow> = rows.iter().filter(|r| !r.holdout).collect();
        if train.len() < 30 {
            return Err(Error::training(format!(
                "supply risk: {} supplier histories with {} deliveries or more before a cutoff, fewer than 30",
                train.len(),
                params.min_deliveries
            )));
        }
        let width = FEATURES.len();
        let x = Array2::from_shape_fn((train.len(), width), |(i, j)| train[i].features[j]);
        let scaler = Standardizer::fit(x.view());
        let z = scaler.transform(&x);
        let labels: Vec<bool> = train.iter().map(|r| r.failed).collect();
        let fitted = fit_logistic(z.view(), &labels, params.l2, 200, "supply risk")?;
        let sign = churn_sign(&fitted);
        let coefficients: Vec<f64> = fitted.params().iter().map(|w| sign * w).collect();
        let intercept = sign * fitted.intercept();
        let mut category_spend: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for s in book {
            for (category, spend) in &s.facts.spend_by_category {
                if *spend > 0.0 {
                    category_spend
                        .entry(category.clone())
                        .or_default()
                        .insert(s.id.clone(), *spend);
                }
            }
        }
        let mut model = SupplyModel {
            params: params.clone(),
            scaler,
            coefficients,
            intercept,
            calibrator: Calibrator::Identity,
            category_spend,
            share_edge: 0.0,
            risk_edge: 0.0,
            training_rows: train.len(),
        };
        let train_scores: Vec<f64> = train
            .iter()
            .map(|r| model.probability(&r.features))
            .collect();
        model.calibrator = fit_best(&train_scores, &labels);
        let (mut shares, mut risks) = (Vec::new(), Vec::new());
        for s in book {
            if let (Some(risk), Some(dep)) =
                (model.risk(&s.facts), model.dependency(&s.id, &s.facts))
            {
                risks.push(risk);
                shares.push(dep.share);
            }
        }
        if !risks.is_empty() {
            model.share_edge = quantiles(&mut shares, &[0.5])[0];
            model.risk_edge = quantiles(&mut risks, &[0.5])[0];
        }
        let hold: Vec<&SupplyRow> = rows.iter().filter(|r| r.holdout).collect();
        let p: Vec<f64> = hold
            .iter()
            .map(|r| model.probability(&r.features))
            .collect();
        let y: Vec<bool> = hold.iter().map(|r| r.failed).collect();
        let mut metrics = vec![
            (
                "supplier.supply_risk.training_rows".to_string(),
                train.len() as f64,
            ),
            (
                "supplier.supply_risk.holdout_rows".to_string(),
                hold.len() as f64,
            ),
            (
                "supplier.supply_risk.base_rate".to_string(),
                labels.iter().filter(|l| **l).count() as f64 / labels.len() as f64,
            ),
            ("supplier.kraljic.share_edge".to_string(), model.share_edge),
            ("supplier.kraljic.risk_edge".to_string(), model.risk_edge),
        ];
        if y.iter().any(|v| *v) && y.iter().any(|v| !*v) {
            use crate::model::metrics as m;
            metrics.push(("supplier.supply_risk.roc_auc".into(), m::roc_auc(&p, &y)));
            metrics.push(("supplier.supply_risk.brier".into(), m::brier(&p, &y)));
            metrics.push((
                "supplier.supply_risk.ece".into(),
                m::expected_calibration_error(&p, &y),
            ));
        }
        Ok((model, metrics))
    }

    fn probability(&self, features: &[f64; FEATURES.len()]) -> f64 {
        let mut z = features.to_vec();
        self.scaler.apply(&mut z);
        let logit = self.intercept
            + self
                .coefficients
                .iter()
                .zip(&z)
                .map(|(w, x)| w * x)
                .sum::<f64>();
        self.calibrator.apply(logistic(logit))
    }

    /// The supply risk, or `None` when the history is too short to tell.
    pub fn risk(&self, facts: &SupplyFacts) -> Option<f64> {
        (facts.deliveries >= self.params.min_deliveries)
            .then(|| self.probability(&facts.features()))
    }

    /// Each input's share of the risk's log-odds against the average
    /// supplier of the training book (the inputs are standardized, so the
    /// average contributes 0).
    pub fn contributions(&self, facts: &SupplyFacts) -> Vec<f64> {
        let mut z = facts.features().to_vec();
        self.scaler.apply(&mut z);
        z.iter()
            .zip(&self.coefficients)
            .map(|(x, w)| x * w)
            .collect()
    }

    /// Our share of the main category's spend; `None` without spend.
    pub fn dependency(&self, id: &str, facts: &SupplyFacts) -> Option<Dependency> {
        let (category, own) = facts.main_category()?;
        if own <= 0.0 {
            return None;
        }
        let others: Vec<f64> = self
            .category_spend
            .get(category)
            .map(|m| {
                m.iter()
                    .filter(|(s, _)| s.as_str() != id)
                    .map(|(_, v)| *v)
                    .collect()
            })
            .unwrap_or_default();
        let other_spend: f64 = others.iter().sum();
        Some(Dependency {
            category: category.to_string(),
            share: own / (own + other_spend),
            single_sourced: others.is_empty(),
            suppliers: others.len() + 1,
        })
    }

    /// Suppliers of a category at training time with less than `max_share`
    /// of its spend each.
    pub fn small_suppliers(&self, category: &str, max_share: f64) -> usize {
        let Some(m) = self.category_spend.get(category) else {
            return 0;
        };
        let total: f64 = m.values().sum();
        m.values().filter(|v| **v < max_share * total).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventBody;
    use crate::time::SECONDS_PER_DAY;

    const DAY: i64 = SECONDS_PER_DAY;

    fn history(late: impl Fn(i64) -> i64, days: i64) -> KindHistory {
        let mut h = KindHistory::default();
        for d in (0..days).step_by(7) {
            h.apply(
                d * DAY,
                &EventBody::Delivery {
                    promised_at: (d - late(d)) * DAY,
                    category: "resin".into(),
                    ordered: 100.0,
                    received: 100.0,
                    rejected: 0.0,
                    unit_price: 2.0 + d as f64 / 365.0,
                },
            );
        }
        h
    }

    #[test]
    fn facts_count_failures_by_the_spec_thresholds_and_see_the_price_rise() {
        let params = SupplyParams::default();
        let h = history(|d| if d > 300 { 6 } else { 1 }, 365);
        let f = SupplyFacts::of(&h, 364 * DAY, &params);
        assert_eq!(f.deliveries, 53, "days 0, 7, ..., 364");
        assert!(f.recent_failures > 0 && f.failures == f.late);
        assert!(f.recent_days_late > f.prior_days_late);
        assert!(f.price_trend.unwrap() > 0.1, "{:?}", f.price_trend);
        assert_eq!(f.main_category().unwrap().0, "resin");
        let early = SupplyFacts::of(&h, 20 * DAY, &params);
        assert_eq!(early.deliveries, 3);
    }

    #[test]
    fn kraljic_follows_its_edges() {
        assert_eq!(Kraljic::classify(0.6, 0.4, 0.5, 0.3), Kraljic::Strategic);
        assert_eq!(Kraljic::classify(0.6, 0.2, 0.5, 0.3), Kraljic::Leverage);
        assert_eq!(Kraljic::classify(0.1, 0.4, 0.5, 0.3), Kraljic::Bottleneck);
        assert_eq!(Kraljic::classify(0.1, 0.2, 0.5, 0.3), Kraljic::NonCritical);
    }
}
