//! Customer-base models of repeat purchasing and spend: BG/NBD and Gamma-Gamma.
//!
//! linfa has no customer-base ("buy till you die") model, and the value
//! learner needs one twice over: as the reference it must beat (BG/NBD with
//! Gamma-Gamma spend, as the `lifetimes` package fits it) and as a source of
//! features (expected purchases, probability alive, expected spend).
//!
//! The data is the RFM summary of the literature, one [`CustomerSummary`] per
//! customer who made a first purchase in the calibration period:
//! - `frequency` x: repeat purchase occasions (distinct purchase days after
//!   the first; same-day purchases are one occasion),
//! - `recency` t_x: time from the first to the last purchase,
//! - `age` T: time from the first purchase to the end of calibration,
//! - `mean_spend` m_x: mean spend per repeat occasion (Gamma-Gamma only).
//!
//! Times are plain floats in a unit the caller chooses (days, weeks): the
//! fitted `alpha` (BG/NBD) is in that unit and every horizon passed to a
//! prediction must be in it too. [`CustomerSummary::from_purchases`] builds
//! summaries from timestamps with a unit given in days.
//!
//! Models (Fader, Hardie & Lee):
//! - [`FittedBgNbd`] (2005, "Counting your customers the easy way"): while
//!   alive a customer buys at Poisson rate λ ~ Gamma(r, α) and after each
//!   repeat purchase drops out with probability p ~ Beta(a, b).
//! - [`FittedGammaGamma`] (2005, "RFM and CLV"): spends per occasion are
//!   Gamma(p, ν) with ν ~ Gamma(q, v) across customers. It assumes spend is
//!   independent of purchase frequency; [`frequency_spend_correlation`]
//!   reports how far the data is from that, for the caller to note.
//! - [`FittedClv`] multiplies the two: expected spend over a horizon is the
//!   expected number of purchases times the expected spend per purchase.
//!
//! Both are fitted by maximum likelihood in linfa's shape ([`BgNbdParams`] /
//! [`GammaGammaParams`] check into [`MleValidParams`], whose `fit` returns the
//! fitted model): BFGS over the log-parameters with analytic gradients and a
//! backtracking line search, on the mean log-likelihood plus an optional L2
//! penalty on the parameters (`lifetimes`' `penalizer_coef`). Identical
//! customers are collapsed into weighted rows first, and Gamma-function terms
//! are computed once per distinct frequency, so a fit costs little more than
//! a pass over the distinct histories per iteration. linfa's own `Fit` trait is
//! not implemented: it needs an error type convertible from `linfa::Error`,
//! and these models take summaries, not a feature matrix.
//!
//! The conditional forecast of purchases is usually written with a Gauss
//! hypergeometric function, `(a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) ·
//! 2F1(r+x, b+x; a+b+x-1; t/(α+T+t))]`, which has removable singularities at
//! a = 1 and (for x = 0) at a + b = 1 and loses precision near them. This
//! module evaluates the same quantity as a series of positive terms with no
//! singularity; [`hyp2f1`] is kept so the tests
//! can hold the series to the published closed form.
//!
//! [`simulate`] draws purchase histories from the models' own story, seeded,
//! for parameter-recovery tests and demonstrations.

use linfa::ParamGuard;
use rand::Rng;
use rand_distr::{Beta, Distribution, Exp1, Gamma};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;

use crate::error::{Error, Result};

const SECONDS_PER_DAY: i64 = 86_400;
/// Terms a series may take before a forecast is refused: far beyond any
/// horizon a purchase log supports (the expected count is about the number of
/// terms), and still milliseconds of work.
const MAX_SERIES_TERMS: usize = 10_000_000;
/// Relative size of the neglected tail when a series stops.
const SERIES_EPS: f64 = 1e-15;
/// Log-space steps are capped so one line search cannot leap to overflow.
const MAX_LOG_STEP: f64 = 5.0;

/// One customer's purchase history in the form both models read.
///
/// Only customers who made a first purchase before the end of calibration have
/// one: the models describe repeat purchasing after a first purchase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CustomerSummary {
    /// Repeat purchase occasions in calibration (occasions after the first).
    pub frequency: u32,
    /// Time from the first purchase to the last one; 0 when `frequency` is 0.
    pub recency: f64,
    /// Time from the first purchase to the end of calibration.
    pub age: f64,
    /// Mean spend per repeat occasion; read only by Gamma-Gamma, and only
    /// when `frequency` is at least 1 (0 by convention otherwise).
    pub mean_spend: f64,
}

impl CustomerSummary {
    /// Summarises one customer's purchases `(timestamp seconds, amount)`, in
    /// any order, at `calibration_end`, in time units of `unit_days` days
    /// (1 for days, 7 for weeks). Returns `None` when the customer made no
    /// purchase before the end.
    ///
    /// Purchases fall on days `ts.div_euclid(86400)`; the purchases of one day
    /// are one occasion whose spend is their sum. Calibration holds the days
    /// before `calibration_end`'s day, and times are counted in whole days up
    /// to the last of them, as `lifetimes` does with an inclusive observation
    /// end (so a customer first seen on the last calibration day has age 0).
    ///
    /// # Errors
    /// `InvalidArgument` for a non-finite amount or a `unit_days` that is not
    /// finite and positive.
    pub fn from_purchases(
        purchases: &[(i64, f64)],
        calibration_end: i64,
        unit_days: f64,
    ) -> Result<Option<CustomerSummary>> {
        if !(unit_days.is_finite() && unit_days > 0.0) {
            return Err(Error::invalid(
                "unit_days",
                format!("must be finite and positive, got {unit_days}"),
            ));
        }
        let end_day = calibration_end.div_euclid(SECONDS_PER_DAY);
        let occasions = occasions(purchases, i64::MIN, end_day)?;
        let Some(&(first_day, _)) = occasions.first() else {
            return Ok(None);
        };
        let (last_day, _) = occasions[occasions.len() - 1];
        let repeat = &occasions[1..];
        let mean_spend = if repeat.is_empty() {
            0.0
        } else {
            repeat.iter().map(|o| o.1).sum::<f64>() / repeat.len() as f64
        };
        let days = |d: i64| d as f64 / unit_days;
        Ok(Some(CustomerSummary {
            frequency: u32::try_from(repeat.len()).unwrap_or(u32::MAX),
            recency: days(last_day - first_day),
            age: days(end_day - 1 - first_day),
            mean_spend,
        }))
    }

    /// Checks the summary can be read by the purchase model.
    ///
    /// # Errors
    /// `InvalidArgument` naming the field: times must be finite and
    /// non-negative, `recency` at most `age`, and 0 when `frequency` is 0.
    pub fn check(&self) -> Result<()> {
        for (field, value) in [("recency", self.recency), ("age", self.age)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::invalid(
                    field,
                    format!("must be finite and non-negative, got {value}"),
                ));
            }
        }
        if self.recency > self.age {
            return Err(Error::invalid(
                "recency",
                format!("{} exceeds the age {}", self.recency, self.age),
            ));
        }
        if self.frequency == 0 && self.recency != 0.0 {
            return Err(Error::invalid(
                "recency",
                format!("must be 0 without repeat purchases, got {}", self.recency),
            ));
        }
        Ok(())
    }
}

/// Purchase occasions and spend of one customer in the holdout window: days
/// from `calibration_end`'s day up to (not including) `holdout_end`'s day,
/// under the same day rule as [`CustomerSummary::from_purchases`].
///
/// # Errors
/// `InvalidArgument` for a non-finite amount.
pub fn holdout_occasions(
    purchases: &[(i64, f64)],
    calibration_end: i64,
    holdout_end: i64,
) -> Result<(u32, f64)> {
    let found = occasions(
        purchases,
        calibration_end.div_euclid(SECONDS_PER_DAY),
        holdout_end.div_euclid(SECONDS_PER_DAY),
    )?;
    let spend = found.iter().map(|o| o.1).sum();
    Ok((u32::try_from(found.len()).unwrap_or(u32::MAX), spend))
}

/// Distinct purchase days in `[from_day, to_day)` with each day's spend, in order.
fn occasions(purchases: &[(i64, f64)], from_day: i64, to_day: i64) -> Result<Vec<(i64, f64)>> {
    let mut days = Vec::with_capacity(purchases.len());
    for (i, (ts, amount)) in purchases.iter().enumerate() {
        if !amount.is_finite() {
            return Err(Error::invalid(
                format!("purchases[{i}].amount"),
                format!("must be finite, got {amount}"),
            ));
        }
        let day = ts.div_euclid(SECONDS_PER_DAY);
        if (from_day..to_day).contains(&day) {
            days.push((day, *amount));
        }
    }
    days.sort_by_key(|d| d.0);
    let mut merged: Vec<(i64, f64)> = Vec::with_capacity(days.len());
    for (day, amount) in days {
        match merged.last_mut() {
            Some(last) if last.0 == day => last.1 += amount,
            _ => merged.push((day, amount)),
        }
    }
    Ok(merged)
}

/// Pearson correlation between frequency and mean spend over the customers
/// Gamma-Gamma is fitted on (repeat customers with positive mean spend).
///
/// Gamma-Gamma assumes the two are independent; `lifetimes` suggests checking
/// that this is near 0 (CDNOW's is about 0.11). `None` with fewer than three
/// such customers or when either has no variance.
pub fn frequency_spend_correlation(data: &[CustomerSummary]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = data
        .iter()
        .filter(|c| c.frequency > 0 && c.mean_spend.is_finite() && c.mean_spend > 0.0)
        .map(|c| (f64::from(c.frequency), c.mean_spend))
        .collect();
    if pairs.len() < 3 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x / n, sy + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    let r = sxy / (sxx * syy).sqrt();
    r.is_finite().then_some(r)
}

/// Marks [`MleParams`] as the BG/NBD purchase model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BgNbd;

/// Marks [`MleParams`] as the Gamma-Gamma spend model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GammaGamma;

/// Checked maximum-likelihood settings; see [`MleParams`] for their meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MleValidParams<M> {
    penalty: f64,
    max_iterations: usize,
    tolerance: f64,
    #[serde(skip)]
    model: PhantomData<M>,
}

/// Unchecked maximum-likelihood settings: the builder.
///
/// Defaults: no penalty, up to 500 BFGS iterations, stop when every
/// log-parameter's gradient of the mean negative log-likelihood is below
/// 1e-7 (far below the sampling noise of any real data set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MleParams<M>(MleValidParams<M>);

/// BG/NBD fitting settings: `BgNbdParams::new().penalty(0.001).fit(&data)`.
pub type BgNbdParams = MleParams<BgNbd>;
/// Gamma-Gamma fitting settings: `GammaGammaParams::new().fit(&data)`.
pub type GammaGammaParams = MleParams<GammaGamma>;
/// Checked BG/NBD settings.
pub type BgNbdValidParams = MleValidParams<BgNbd>;
/// Checked Gamma-Gamma settings.
pub type GammaGammaValidParams = MleValidParams<GammaGamma>;

impl<M> Default for MleParams<M> {
    fn default() -> Self {
        MleParams(MleValidParams {
            penalty: 0.0,
            max_iterations: 500,
            tolerance: 1e-7,
            model: PhantomData,
        })
    }
}

impl<M> MleParams<M> {
    pub fn new() -> Self {
        Self::default()
    }

    /// L2 penalty `penalty · Σ θ²` added to the mean negative log-likelihood,
    /// over the parameters themselves (not their logs), as `lifetimes`'
    /// `penalizer_coef`: it shrinks them towards 0, which tames fits where
    /// some are unidentified (for example a and b growing together when the
    /// data shows no dropout). Finite and non-negative.
    pub fn penalty(mut self, value: f64) -> Self {
        self.0.penalty = value;
        self
    }

    /// BFGS iterations per start; at least 1.
    pub fn max_iterations(mut self, value: usize) -> Self {
        self.0.max_iterations = value;
        self
    }

    /// Largest gradient component (mean objective, log-parameters) accepted
    /// as converged; finite and positive.
    pub fn tolerance(mut self, value: f64) -> Self {
        self.0.tolerance = value;
        self
    }
}

impl<M> ParamGuard for MleParams<M> {
    type Checked = MleValidParams<M>;
    type Error = Error;

    fn check_ref(&self) -> Result<&MleValidParams<M>> {
        let p = &self.0;
        if !(p.penalty.is_finite() && p.penalty >= 0.0) {
            return Err(Error::invalid(
                "penalty",
                format!("must be finite and non-negative, got {}", p.penalty),
            ));
        }
        if p.max_iterations == 0 {
            return Err(Error::invalid("max_iterations", "must be at least 1"));
        }
        if !(p.tolerance.is_finite() && p.tolerance > 0.0) {
            return Err(Error::invalid(
                "tolerance",
                format!("must be finite and positive, got {}", p.tolerance),
            ));
        }
        Ok(p)
    }

    fn check(self) -> Result<MleValidParams<M>> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl<M> MleValidParams<M> {
    pub fn penalty(&self) -> f64 {
        self.penalty
    }
    pub fn max_iterations(&self) -> usize {
        self.max_iterations
    }
    pub fn tolerance(&self) -> f64 {
        self.tolerance
    }
}

impl MleParams<BgNbd> {
    /// Checks the settings and fits BG/NBD; see [`MleValidParams::fit`].
    ///
    /// # Errors
    /// `InvalidArgument` for a bad setting or summary, `Training` as the fit.
    pub fn fit(&self, data: &[CustomerSummary]) -> Result<FittedBgNbd> {
        self.check_ref()?.fit(data)
    }
}

impl MleParams<GammaGamma> {
    /// Checks the settings and fits Gamma-Gamma; see [`MleValidParams::fit`].
    ///
    /// # Errors
    /// `InvalidArgument` for a bad setting or summary, `Training` as the fit.
    pub fn fit(&self, data: &[CustomerSummary]) -> Result<FittedGammaGamma> {
        self.check_ref()?.fit(data)
    }
}

/// How a maximum-likelihood fit went, kept with the model for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Customers the likelihood was summed over.
    pub customers: u64,
    /// Customers in the data the model leaves out (Gamma-Gamma: repeat
    /// customers whose mean spend is not positive).
    pub excluded: u64,
    /// Total log-likelihood at the estimate, without the penalty.
    pub log_likelihood: f64,
    /// BFGS iterations of the start that was kept.
    pub iterations: u64,
    /// Asymptotic standard error of each parameter, in the model's parameter
    /// order, from the inverse observed information (of the penalised
    /// objective) by the delta method; `None` if that was not positive definite.
    pub standard_errors: Option<Vec<f64>>,
}

/// A BG/NBD model: r and alpha (purchase rate λ ~ Gamma(r, alpha), alpha in
/// the data's time unit) and a, b (dropout p ~ Beta(a, b)).
///
/// Parameters are finite and positive, checked when built and when
/// deserialised, so predictions only have inputs to check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BgNbdData", into = "BgNbdData")]
pub struct FittedBgNbd {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
    report: Option<FitReport>,
    long_forecasts: ForecastCache,
}

const FORECAST_SHARDS: usize = 8;
/// Entries per shard; a full shard starts over.
const FORECAST_SHARD_CAPACITY: usize = 4_096;

/// Forecasts of alive customers whose series is long, by (repeat purchases,
/// age, horizon). The series behind [`FittedBgNbd::expected_purchases`] takes
/// tens of terms when the age (plus alpha) is a few horizons, and hundreds to
/// thousands when it is short against the horizon. Serving asks the same
/// (frequency, age in days) again all day, for the same customer and for
/// every young customer of the same history, so it is worked out once. Exact,
/// since the same inputs give the same bits. Not part of the model: clones
/// and deserialised copies start empty, and it never makes two models differ.
#[derive(Default)]
struct ForecastCache {
    shards: [Mutex<HashMap<ForecastKey, f64>>; FORECAST_SHARDS],
}

/// Repeat purchases, and the bits of the age and of the horizon.
type ForecastKey = (u32, u64, u64);

impl ForecastCache {
    /// A multiplicative mix: an age in whole days has only zeros in its low
    /// bits, so the high bits of the products pick the shard.
    fn shard_of(key: ForecastKey) -> usize {
        let mix = u64::from(key.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ key.1.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ key.2;
        (mix >> 61) as usize % FORECAST_SHARDS
    }

    fn get_or(&self, key: ForecastKey, compute: impl FnOnce() -> Result<f64>) -> Result<f64> {
        let shard = &self.shards[Self::shard_of(key)];
        if let Some(v) = shard.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(v);
        }
        let v = compute()?;
        if let Ok(mut m) = shard.lock() {
            if m.len() >= FORECAST_SHARD_CAPACITY {
                m.clear();
            }
            m.insert(key, v);
        }
        Ok(v)
    }
}

impl Clone for ForecastCache {
    fn clone(&self) -> Self {
        ForecastCache::default()
    }
}

impl PartialEq for ForecastCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for ForecastCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForecastCache")
    }
}

#[derive(Serialize, Deserialize)]
struct BgNbdData {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
    report: Option<FitReport>,
}

impl From<FittedBgNbd> for BgNbdData {
    fn from(m: FittedBgNbd) -> Self {
        BgNbdData {
            r: m.r,
            alpha: m.alpha,
            a: m.a,
            b: m.b,
            report: m.report,
        }
    }
}

impl TryFrom<BgNbdData> for FittedBgNbd {
    type Error = Error;

    fn try_from(d: BgNbdData) -> Result<Self> {
        let mut model = FittedBgNbd::from_parameters(d.r, d.alpha, d.a, d.b)?;
        model.report = d.report;
        Ok(model)
    }
}

/// Checks each named parameter is finite and positive.
fn positive_parameters(values: &[(&str, f64)]) -> Result<()> {
    for (name, value) in values {
        if !(value.is_finite() && *value > 0.0) {
            return Err(Error::invalid(
                *name,
                format!("must be finite and positive, got {value}"),
            ));
        }
    }
    Ok(())
}

/// Checks a forecast horizon.
fn check_horizon(horizon: f64) -> Result<()> {
    if !(horizon.is_finite() && horizon >= 0.0) {
        return Err(Error::invalid(
            "horizon",
            format!("must be finite and non-negative, got {horizon}"),
        ));
    }
    Ok(())
}

/// `ln(e^x + e^y)` without overflow.
fn log_add_exp(x: f64, y: f64) -> f64 {
    let (hi, lo) = if x > y { (x, y) } else { (y, x) };
    hi + (lo - hi).exp().ln_1p()
}

impl FittedBgNbd {
    /// A model with known parameters (published estimates, or the truth of a
    /// simulation); it has no fit report.
    ///
    /// # Errors
    /// `InvalidArgument` naming a parameter that is not finite and positive.
    pub fn from_parameters(r: f64, alpha: f64, a: f64, b: f64) -> Result<FittedBgNbd> {
        positive_parameters(&[("r", r), ("alpha", alpha), ("a", a), ("b", b)])?;
        Ok(FittedBgNbd {
            r,
            alpha,
            a,
            b,
            report: None,
            long_forecasts: ForecastCache::default(),
        })
    }

    pub fn r(&self) -> f64 {
        self.r
    }
    /// In the time unit of the data the model was fitted on.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
    pub fn a(&self) -> f64 {
        self.a
    }
    pub fn b(&self) -> f64 {
        self.b
    }
    /// Standard errors are in the order r, alpha, a, b.
    pub fn report(&self) -> Option<&FitReport> {
        self.report.as_ref()
    }

    /// The log-likelihood terms of one customer: the log of the "still alive"
    /// and "dropped out after the last purchase" parts (the latter `-inf`
    /// without repeat purchases), both without the shared Gamma-function
    /// factor that [`FittedBgNbd::log_likelihood`] adds.
    fn alive_and_dropped(&self, c: &CustomerSummary) -> (f64, f64) {
        let x = f64::from(c.frequency);
        let alive = -(self.r + x) * (self.alpha + c.age).ln();
        let dropped = if c.frequency == 0 {
            f64::NEG_INFINITY
        } else {
            self.a.ln() - (self.b + x - 1.0).ln() - (self.r + x) * (self.alpha + c.recency).ln()
        };
        (alive, dropped)
    }

    /// Log-likelihood of one customer's summary (FHL 2005, eq. 6).
    ///
    /// # Errors
    /// `InvalidArgument` for a summary [`CustomerSummary::check`] rejects.
    pub fn log_likelihood(&self, c: &CustomerSummary) -> Result<f64> {
        c.check()?;
        let x = f64::from(c.frequency);
        let (alive, dropped) = self.alive_and_dropped(c);
        Ok(
            bgnbd_shared_terms(self.r, self.alpha, self.a, self.b, x).value
                + log_add_exp(alive, dropped),
        )
    }

    /// Probability the customer has not dropped out by the end of calibration.
    /// 1 for a customer without repeat purchases (the model only lets
    /// customers drop out after a repeat purchase).
    ///
    /// # Errors
    /// `InvalidArgument` for a summary [`CustomerSummary::check`] rejects.
    pub fn probability_alive(&self, c: &CustomerSummary) -> Result<f64> {
        c.check()?;
        let (alive, dropped) = self.alive_and_dropped(c);
        Ok(1.0 / (1.0 + (dropped - alive).exp()))
    }

    /// Expected repeat purchases in `(age, age + horizon]` given the history
    /// (FHL 2005, eq. 10), `horizon` in the data's time unit.
    ///
    /// # Errors
    /// `InvalidArgument` for a summary [`CustomerSummary::check`] rejects, a
    /// negative or non-finite horizon, or one so long against the fitted
    /// purchase rate that the forecast would need more than ten million series
    /// terms (around ten million expected purchases).
    pub fn expected_purchases(&self, c: &CustomerSummary, horizon: f64) -> Result<f64> {
        let alive = self.probability_alive(c)?;
        Ok(alive * self.expected_purchases_if_alive(c, horizon)?)
    }

    /// [`FittedBgNbd::expected_purchases`] of a customer known to be alive:
    /// the forecast is this times the probability alive.
    fn expected_purchases_if_alive(&self, c: &CustomerSummary, horizon: f64) -> Result<f64> {
        check_horizon(horizon)?;
        let x = f64::from(c.frequency);
        let scale = self.alpha + c.age;
        let forecast = || expected_while_alive(self.r + x, self.a, self.b + x, scale, horizon);
        // With z = horizon / (scale + horizon) below 1/4 the series stops
        // within a few dozen terms, cheaper than the lookup.
        if scale >= 3.0 * horizon {
            return forecast();
        }
        self.long_forecasts
            .get_or((c.frequency, c.age.to_bits(), horizon.to_bits()), forecast)
    }

    /// Expected repeat purchases in the first `horizon` after a first
    /// purchase, for a customer with no history yet (FHL 2005, eq. 9).
    ///
    /// # Errors
    /// As [`FittedBgNbd::expected_purchases`] for the horizon.
    pub fn expected_purchases_new_customer(&self, horizon: f64) -> Result<f64> {
        check_horizon(horizon)?;
        expected_while_alive(self.r, self.a, self.b, self.alpha, horizon)
    }
}

/// Expected purchases in the next `horizon` of a customer who is alive now,
/// whose purchase rate is Gamma(`s`, `scale`) and whose dropout probability is
/// Beta(`a`, `beta`) (the BG/NBD posterior of an alive customer).
///
/// Without dropout the count K in the horizon is negative binomial with
/// `P(K = k) = (s)_k / k! · z^k (1-z)^s`, z = horizon / (scale + horizon). The
/// j-th of those purchases happens when the customer survived the j - 1 before
/// it, with probability `E[(1-p)^(j-1)] = (beta)_(j-1) / (a+beta)_(j-1)`, so the
/// answer is `Σ_k P(K = k) · E_k` with `E_k = Σ_{j<k} (beta)_j / (a+beta)_j`.
/// Every term is positive, so the sum is stable, and it has no singularity
/// at a = 1 or a + beta = 1, where the closed form with 2F1 has removable
/// ones. The sum runs from k = 1 with the negative binomial weights carried
/// as a logarithm times a rescaled value (the first, (1-z)^s, can underflow
/// for heavy buyers), and stops once a geometric
/// bound on the remaining terms, `term · ρ / (1 - ρ)` with ρ bounding every
/// later term ratio `z (s+k)/(k+1) · E_(k+1)/E_k ≤ z · max(1, (s+k)/(k+1)) ·
/// (1 + 1/k)`, is below 1e-15 of the sum.
fn expected_while_alive(s: f64, a: f64, beta: f64, scale: f64, horizon: f64) -> Result<f64> {
    if horizon == 0.0 {
        return Ok(0.0);
    }
    let z = horizon / (scale + horizon);
    // ln(1 - z) from the ratio itself keeps precision when z is close to 1.
    let mut ln_scale = s * (scale.ln() - (scale + horizon).ln());
    let mode = if s > 1.0 {
        (s - 1.0) * horizon / scale
    } else {
        0.0
    };
    const RESCALE: f64 = 1e200;
    let mut weight = 1.0;
    let mut survival = 1.0;
    let mut expected = 0.0;
    let mut sum = 0.0;
    for k in 0..MAX_SERIES_TERMS {
        let kf = k as f64;
        // One division per term; it does not depend on the previous term,
        // so consecutive terms' divisions overlap.
        let inverse = 1.0 / ((kf + 1.0) * (a + beta + kf));
        weight *= z * (s + kf) * (a + beta + kf) * inverse;
        expected += survival;
        survival *= (beta + kf) * (kf + 1.0) * inverse;
        let term = weight * expected;
        sum += term;
        let next = kf + 1.0;
        if next >= mode {
            // ρ = z · max(s + next, next + 1) / next, the bound above; the
            // test `ρ < 1 and term · ρ / (1 - ρ) ≤ ε · sum` multiplied
            // through by `next` needs no division.
            let rho_next = z * (s + next).max(next + 1.0);
            if rho_next < next && term * rho_next <= SERIES_EPS * sum * (next - rho_next) {
                return Ok(if sum > 0.0 {
                    (sum.ln() + ln_scale).exp()
                } else {
                    0.0
                });
            }
        }
        if weight > RESCALE {
            weight /= RESCALE;
            sum /= RESCALE;
            ln_scale += RESCALE.ln();
        }
    }
    Err(Error::invalid(
        "horizon",
        format!(
            "{horizon} is too long for the fitted purchase rate (about {:.3e} expected purchases)",
            s * horizon / scale
        ),
    ))
}

/// The Gauss hypergeometric function 2F1(a, b; c; z) for real z < 1.
///
/// The power series is summed directly for 0 ≤ z < 1 and after Pfaff's
/// transformation `2F1(a,b;c;z) = (1-z)^-a 2F1(a, c-b; c; z/(z-1))` for z < 0,
/// so it always converges (slowly as z nears 1). It is accurate when the
/// terms do not change sign for long (positive parameters, or a terminating
/// series); with mixed signs it can lose digits to cancellation. `None` for
/// non-finite input, z ≥ 1, c a non-positive integer, or a series that did
/// not converge within ten million terms.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if ![a, b, c, z].iter().all(|v| v.is_finite()) || z >= 1.0 {
        return None;
    }
    if c <= 0.0 && c == c.floor() {
        return None;
    }
    if z < 0.0 {
        let w = z / (z - 1.0);
        return hyp2f1_series(a, c - b, c, w).map(|s| s * (1.0 - z).powf(-a));
    }
    hyp2f1_series(a, b, c, z)
}

fn hyp2f1_series(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    // Past this index every Pochhammer factor has a fixed sign and the term
    // ratio moves monotonically towards z.
    let settled = a.abs() + b.abs() + c.abs() + 1.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..MAX_SERIES_TERMS {
        let kf = k as f64;
        let ratio = (a + kf) * (b + kf) / ((c + kf) * (kf + 1.0)) * z;
        term *= ratio;
        sum += term;
        if term == 0.0 {
            return Some(sum);
        }
        let rho = ratio.abs();
        if kf > settled && rho < 1.0 && term.abs() * rho / (1.0 - rho) <= SERIES_EPS * sum.abs() {
            return sum.is_finite().then_some(sum);
        }
    }
    None
}

/// The part of a BG/NBD log-likelihood shared by every customer with `x`
/// repeat purchases, and its gradient in (r, alpha, a, b).
struct SharedTerms {
    value: f64,
    d_r: f64,
    d_a: f64,
    d_b: f64,
}

fn bgnbd_shared_terms(r: f64, alpha: f64, a: f64, b: f64, x: f64) -> SharedTerms {
    if x == 0.0 {
        return SharedTerms {
            value: r * alpha.ln(),
            d_r: alpha.ln(),
            d_a: 0.0,
            d_b: 0.0,
        };
    }
    let (ab, abx) = (digamma(a + b), digamma(a + b + x));
    SharedTerms {
        value: ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ln_gamma(a + b) + ln_gamma(b + x)
            - ln_gamma(b)
            - ln_gamma(a + b + x),
        d_r: digamma(r + x) - digamma(r) + alpha.ln(),
        d_a: ab - abx,
        d_b: ab + digamma(b + x) - digamma(b) - abx,
    }
}

/// Per-customer values both models read, in groups of one frequency: BG/NBD's
/// `(recency, age)`, Gamma-Gamma's `(mean spend, ln mean spend)`.
type Rows = Vec<FrequencyGroup<(f64, f64)>>;

/// Customers with one frequency, collapsed into weighted distinct rows.
struct FrequencyGroup<R> {
    frequency: u32,
    rows: Vec<(R, f64)>,
}

/// Groups rows by frequency and merges identical rows into one with their
/// count as weight.
fn group_rows<R: Copy + PartialEq>(
    mut rows: Vec<(u32, R)>,
    order: impl Fn(&R, &R) -> std::cmp::Ordering,
) -> Vec<FrequencyGroup<R>> {
    rows.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| order(&x.1, &y.1)));
    let mut groups: Vec<FrequencyGroup<R>> = Vec::new();
    for (frequency, row) in rows {
        match groups.last_mut() {
            Some(g) if g.frequency == frequency => match g.rows.last_mut() {
                Some(last) if last.0 == row => last.1 += 1.0,
                _ => g.rows.push((row, 1.0)),
            },
            _ => groups.push(FrequencyGroup {
                frequency,
                rows: vec![(row, 1.0)],
            }),
        }
    }
    groups
}

/// Total weight of the grouped rows.
fn total_weight<R>(groups: &[FrequencyGroup<R>]) -> f64 {
    groups.iter().flat_map(|g| g.rows.iter().map(|r| r.1)).sum()
}

/// Weighted mean of a per-row quantity over grouped rows.
fn weighted_mean<R>(groups: &[FrequencyGroup<R>], value: impl Fn(u32, &R) -> f64) -> f64 {
    let (mut sum, mut weight) = (0.0, 0.0);
    for g in groups {
        for (row, w) in &g.rows {
            sum += w * value(g.frequency, row);
            weight += w;
        }
    }
    sum / weight
}

/// Total BG/NBD log-likelihood of grouped `(recency, age)` rows at `params`
/// (r, alpha, a, b), with its gradient in those parameters written to `grad`.
fn bgnbd_log_likelihood(groups: &Rows, params: &[f64], grad: &mut [f64]) -> f64 {
    let (r, alpha, a, b) = (params[0], params[1], params[2], params[3]);
    let mut total = 0.0;
    grad.fill(0.0);
    for g in groups {
        let x = f64::from(g.frequency);
        let shared = bgnbd_shared_terms(r, alpha, a, b, x);
        let ln_dropout = if g.frequency == 0 {
            0.0
        } else {
            a.ln() - (b + x - 1.0).ln()
        };
        let (mut value, mut d_r, mut d_alpha, mut d_a, mut d_b, mut weight) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for ((recency, age), w) in &g.rows {
            let (ln_age, ln_recency) = ((alpha + age).ln(), (alpha + recency).ln());
            let alive = -(r + x) * ln_age;
            // Share of the likelihood from "dropped out after the last purchase".
            let (ll, dropped) = if g.frequency == 0 {
                (alive, 0.0)
            } else {
                let gone = ln_dropout - (r + x) * ln_recency;
                (log_add_exp(alive, gone), 1.0 / (1.0 + (alive - gone).exp()))
            };
            let kept = 1.0 - dropped;
            value += w * ll;
            d_r -= w * (kept * ln_age + dropped * ln_recency);
            d_alpha -= w * (r + x) * (kept / (alpha + age) + dropped / (alpha + recency));
            if g.frequency > 0 {
                d_a += w * dropped / a;
                d_b -= w * dropped / (b + x - 1.0);
            }
            weight += w;
        }
        total += value + weight * shared.value;
        grad[0] += d_r + weight * shared.d_r;
        grad[1] += d_alpha + weight * r / alpha;
        grad[2] += d_a + weight * shared.d_a;
        grad[3] += d_b + weight * shared.d_b;
    }
    total
}

impl MleValidParams<BgNbd> {
    /// Fits BG/NBD by maximum likelihood on customers' summaries.
    ///
    /// Starts from a rate matched to the data (r = 1, alpha = mean age / mean
    /// frequency, a = 1, b = 3); two further starts are tried only if that
    /// one does not converge.
    ///
    /// # Errors
    /// `InvalidArgument` naming the first bad summary (`customers[i].field`);
    /// `Training` when the data is empty, no customer made a repeat purchase
    /// (dropout and rate cannot both be learned), or no start converged.
    pub fn fit(&self, data: &[CustomerSummary]) -> Result<FittedBgNbd> {
        for (i, c) in data.iter().enumerate() {
            c.check().map_err(|e| e.within(format!("customers[{i}]")))?;
        }
        if !data.iter().any(|c| c.frequency > 0) {
            return Err(Error::training(format!(
                "BG/NBD: none of {} customers made a repeat purchase",
                data.len()
            )));
        }
        let groups = group_rows(
            data.iter()
                .map(|c| (c.frequency, (c.recency, c.age)))
                .collect(),
            |x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)),
        );
        let mean_age = weighted_mean(&groups, |_, row| row.1);
        let mean_frequency = weighted_mean(&groups, |x, _| f64::from(x));
        let alpha = (mean_age.max(1e-6) / mean_frequency).clamp(1e-6, 1e6);
        let starts = [
            [1.0, alpha, 1.0, 3.0],
            [0.3, alpha * 0.3, 0.5, 1.0],
            [3.0, alpha * 3.0, 3.0, 10.0],
        ];
        let fit = maximise_likelihood(self, "BG/NBD", &starts, total_weight(&groups), |p, g| {
            bgnbd_log_likelihood(&groups, p, g)
        })?;
        let mut model = FittedBgNbd::from_parameters(
            fit.params[0],
            fit.params[1],
            fit.params[2],
            fit.params[3],
        )?;
        model.report = Some(fit.report);
        Ok(model)
    }
}

/// A Gamma-Gamma spend model: spends per occasion are Gamma(p, ν) with
/// ν ~ Gamma(q, v) across customers (v is FHL's γ, in currency units).
///
/// q > 1 always holds: below it the mean spend of the population is
/// infinite, and a fit that lands there is refused (see
/// [`MleValidParams::fit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GammaGammaData", into = "GammaGammaData")]
pub struct FittedGammaGamma {
    p: f64,
    q: f64,
    v: f64,
    report: Option<FitReport>,
}

#[derive(Serialize, Deserialize)]
struct GammaGammaData {
    p: f64,
    q: f64,
    v: f64,
    report: Option<FitReport>,
}

impl From<FittedGammaGamma> for GammaGammaData {
    fn from(m: FittedGammaGamma) -> Self {
        GammaGammaData {
            p: m.p,
            q: m.q,
            v: m.v,
            report: m.report,
        }
    }
}

impl TryFrom<GammaGammaData> for FittedGammaGamma {
    type Error = Error;

    fn try_from(d: GammaGammaData) -> Result<Self> {
        let mut model = FittedGammaGamma::from_parameters(d.p, d.q, d.v)?;
        model.report = d.report;
        Ok(model)
    }
}

/// The `(mean spend, ln mean spend)` rows Gamma-Gamma is fitted on, grouped
/// by frequency, and how many repeat customers were left out.
fn spend_rows(data: &[CustomerSummary]) -> Result<(Rows, u64)> {
    let mut rows = Vec::new();
    let mut excluded = 0;
    for (i, c) in data.iter().enumerate() {
        c.check().map_err(|e| e.within(format!("customers[{i}]")))?;
        if c.frequency == 0 {
            continue;
        }
        if !c.mean_spend.is_finite() {
            return Err(Error::invalid(
                format!("customers[{i}].mean_spend"),
                format!("must be finite, got {}", c.mean_spend),
            ));
        }
        if c.mean_spend > 0.0 {
            rows.push((c.frequency, (c.mean_spend, c.mean_spend.ln())));
        } else {
            excluded += 1;
        }
    }
    Ok((group_rows(rows, |x, y| x.0.total_cmp(&y.0)), excluded))
}

/// Total Gamma-Gamma log-likelihood of grouped spend rows at `params`
/// (p, q, v), with its gradient written to `grad` (FHL 2005b, the density of
/// the mean of x Gamma(p, ν) spends, mixed over ν).
fn gamma_gamma_log_likelihood(groups: &Rows, params: &[f64], grad: &mut [f64]) -> f64 {
    let (p, q, v) = (params[0], params[1], params[2]);
    let ln_v = v.ln();
    let mut total = 0.0;
    grad.fill(0.0);
    for g in groups {
        let x = f64::from(g.frequency);
        let (px, ln_x) = (p * x, x.ln());
        let shared = ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q) + q * ln_v + px * ln_x;
        let (psi_pq, psi_px, psi_q) = (digamma(px + q), digamma(px), digamma(q));
        for ((m, ln_m), w) in &g.rows {
            let ln_total = (v + x * m).ln();
            total += w * (shared + (px - 1.0) * ln_m - (px + q) * ln_total);
            grad[0] += w * x * (psi_pq - psi_px + ln_m + ln_x - ln_total);
            grad[1] += w * (psi_pq - psi_q + ln_v - ln_total);
            grad[2] += w * (q / v - (px + q) / (v + x * m));
        }
    }
    total
}

impl MleValidParams<GammaGamma> {
    /// Fits Gamma-Gamma by maximum likelihood on the repeat customers
    /// (frequency ≥ 1) with a positive mean spend; repeat customers whose
    /// mean spend is 0 or negative (returns, free orders) are left out and
    /// counted in the report's `excluded`. Customers without repeat purchases
    /// carry no spend information the model uses and are skipped.
    ///
    /// Starts from p = 1, q = 2 and v = the mean spend (a population mean
    /// spend equal to the data's); two further starts are tried only if that
    /// one does not converge.
    ///
    /// # Errors
    /// `InvalidArgument` naming the first bad summary or a non-finite mean
    /// spend; `Training` with fewer than two usable customers, when no start
    /// converged, or when the estimate has q ≤ 1: spends then have so heavy a
    /// tail that the population mean is infinite and customers without repeat
    /// purchases have no finite expected spend. The caller can cap extreme
    /// spends (winsorise `mean_spend`) and refit, or go without the model.
    pub fn fit(&self, data: &[CustomerSummary]) -> Result<FittedGammaGamma> {
        let (groups, excluded) = spend_rows(data)?;
        let customers = total_weight(&groups);
        if customers < 2.0 {
            return Err(Error::training(format!(
                "Gamma-Gamma: {customers} repeat customers with a positive mean spend; it needs at least 2"
            )));
        }
        let mean = weighted_mean(&groups, |_, row| row.0);
        let starts = [
            [1.0, 2.0, mean],
            [4.0, 3.0, 2.0 * mean],
            [0.5, 5.0, 8.0 * mean],
        ];
        let mut fit = maximise_likelihood(self, "Gamma-Gamma", &starts, customers, |p, g| {
            gamma_gamma_log_likelihood(&groups, p, g)
        })?;
        fit.report.excluded = excluded;
        let [p, q, v] = [fit.params[0], fit.params[1], fit.params[2]];
        if q <= 1.0 {
            return Err(Error::training(format!(
                "Gamma-Gamma: the estimate q = {q:.4} is at most 1, so the mean spend per purchase \
                 is infinite (heavy-tailed spends); cap extreme spends before fitting"
            )));
        }
        let mut model = FittedGammaGamma::from_parameters(p, q, v)?;
        model.report = Some(fit.report);
        Ok(model)
    }
}

impl FittedGammaGamma {
    /// A model with known parameters; it has no fit report.
    ///
    /// # Errors
    /// `InvalidArgument` naming a parameter that is not finite and positive,
    /// or `q` when it is at most 1 (no finite mean spend).
    pub fn from_parameters(p: f64, q: f64, v: f64) -> Result<FittedGammaGamma> {
        positive_parameters(&[("p", p), ("q", q), ("v", v)])?;
        if q <= 1.0 {
            return Err(Error::invalid(
                "q",
                format!("must exceed 1 for spend to have a finite mean, got {q}"),
            ));
        }
        Ok(FittedGammaGamma {
            p,
            q,
            v,
            report: None,
        })
    }

    pub fn p(&self) -> f64 {
        self.p
    }
    pub fn q(&self) -> f64 {
        self.q
    }
    pub fn v(&self) -> f64 {
        self.v
    }
    /// Standard errors are in the order p, q, v.
    pub fn report(&self) -> Option<&FitReport> {
        self.report.as_ref()
    }

    /// Mean spend per purchase across the population, `p v / (q - 1)`: the
    /// expectation for a customer without repeat purchases.
    pub fn population_mean_spend(&self) -> f64 {
        self.p * self.v / (self.q - 1.0)
    }

    /// Expected spend per purchase given the history, `p (v + x m_x) / (p x +
    /// q - 1)` (FHL 2005b, eq. 5): a weighted mean of the population mean and
    /// the customer's own mean, which gets more weight with every purchase.
    /// Customers without repeat purchases get [`Self::population_mean_spend`].
    ///
    /// # Errors
    /// `InvalidArgument` for a summary [`CustomerSummary::check`] rejects, or
    /// a repeat customer's `mean_spend` that is negative or not finite.
    pub fn expected_spend_per_purchase(&self, c: &CustomerSummary) -> Result<f64> {
        c.check()?;
        if c.frequency == 0 {
            return Ok(self.population_mean_spend());
        }
        if !(c.mean_spend.is_finite() && c.mean_spend >= 0.0) {
            return Err(Error::invalid(
                "mean_spend",
                format!("must be finite and non-negative, got {}", c.mean_spend),
            ));
        }
        let x = f64::from(c.frequency);
        Ok(self.p * (self.v + x * c.mean_spend) / (self.p * x + self.q - 1.0))
    }

    /// Log-likelihood of one repeat customer's mean spend.
    ///
    /// # Errors
    /// `InvalidArgument` for a summary [`CustomerSummary::check`] rejects, a
    /// customer without repeat purchases, or a mean spend that is not
    /// finite and positive.
    pub fn log_likelihood(&self, c: &CustomerSummary) -> Result<f64> {
        c.check()?;
        if c.frequency == 0 {
            return Err(Error::invalid(
                "frequency",
                "Gamma-Gamma describes repeat purchases only",
            ));
        }
        positive_parameters(&[("mean_spend", c.mean_spend)])?;
        let rows = spend_rows(std::slice::from_ref(c))?.0;
        let mut grad = [0.0; 3];
        Ok(gamma_gamma_log_likelihood(
            &rows,
            &[self.p, self.q, self.v],
            &mut grad,
        ))
    }
}

/// BG/NBD and Gamma-Gamma together: what a customer is worth over a horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedClv {
    pub purchases: FittedBgNbd,
    pub spend: FittedGammaGamma,
}

/// One customer's forecast over a horizon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClvPrediction {
    /// Probability the customer is still active at the end of calibration.
    pub probability_alive: f64,
    /// Expected repeat purchases in the horizon.
    pub expected_purchases: f64,
    /// Expected spend per purchase.
    pub expected_spend_per_purchase: f64,
    /// Expected spend in the horizon, undiscounted: purchases × spend per
    /// purchase, which Gamma-Gamma's independence assumption allows.
    pub expected_spend: f64,
}

impl FittedClv {
    /// Forecasts one customer over `horizon` (in the data's time unit).
    ///
    /// # Errors
    /// As [`FittedBgNbd::expected_purchases`] and
    /// [`FittedGammaGamma::expected_spend_per_purchase`].
    pub fn predict(&self, c: &CustomerSummary, horizon: f64) -> Result<ClvPrediction> {
        // Alive once: the purchase forecast is alive × the forecast if alive.
        let probability_alive = self.purchases.probability_alive(c)?;
        let expected_purchases =
            probability_alive * self.purchases.expected_purchases_if_alive(c, horizon)?;
        let per_purchase = self.spend.expected_spend_per_purchase(c)?;
        Ok(ClvPrediction {
            probability_alive,
            expected_purchases,
            expected_spend_per_purchase: per_purchase,
            expected_spend: expected_purchases * per_purchase,
        })
    }
}

/// A maximum-likelihood estimate with its report.
struct Estimate {
    params: Vec<f64>,
    report: FitReport,
}

/// Maximises a log-likelihood over positive parameters from each start in
/// turn until one converges.
///
/// `log_likelihood(params, grad)` returns the total log-likelihood over
/// `customers` (weighted) customers and its gradient in the parameters. BFGS
/// minimises the mean negative log-likelihood plus the penalty over the logs
/// of the parameters, which keeps them positive and the problem well scaled.
fn maximise_likelihood<const N: usize>(
    settings: &MleValidParams<impl Sized>,
    model: &str,
    starts: &[[f64; N]],
    customers: f64,
    log_likelihood: impl Fn(&[f64], &mut [f64]) -> f64,
) -> Result<Estimate> {
    let penalty = settings.penalty;
    let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
        let params: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
        let ll = log_likelihood(&params, grad);
        let mut value = -ll / customers;
        for (g, p) in grad.iter_mut().zip(&params) {
            *g = -*g * p / customers + 2.0 * penalty * p * p;
            value += penalty * p * p;
        }
        value
    };
    let mut best = None;
    let mut last_failure = String::new();
    for start in starts {
        let theta: Vec<f64> = start.iter().map(|p| p.ln()).collect();
        let found = bfgs(
            &objective,
            theta,
            settings.max_iterations,
            settings.tolerance,
        );
        if found.converged {
            best = Some(found);
            break;
        }
        last_failure = format!(
            "largest gradient {:.3e} after {} iterations",
            found.gradient_max, found.iterations
        );
    }
    let Some(best) = best else {
        return Err(Error::training(format!(
            "{model}: maximum likelihood did not converge from any start ({last_failure}); \
             raise max_iterations or the penalty"
        )));
    };
    let params: Vec<f64> = best.theta.iter().map(|t| t.exp()).collect();
    let mut grad = vec![0.0; N];
    let log_likelihood_total = log_likelihood(&params, &mut grad);
    let standard_errors = standard_errors(&objective, &best.theta, customers)
        .map(|se| se.iter().zip(&params).map(|(s, p)| s * p).collect());
    Ok(Estimate {
        params,
        report: FitReport {
            customers: customers.round() as u64,
            excluded: 0,
            log_likelihood: log_likelihood_total,
            iterations: best.iterations as u64,
            standard_errors,
        },
    })
}

/// Standard errors of the log-parameters from the inverse Hessian of the
/// total objective, by central differences of its analytic gradient.
fn standard_errors(
    objective: &impl Fn(&[f64], &mut [f64]) -> f64,
    theta: &[f64],
    customers: f64,
) -> Option<Vec<f64>> {
    let n = theta.len();
    let h = 1e-5;
    let mut hessian = vec![vec![0.0; n]; n];
    let (mut up, mut down) = (vec![0.0; n], vec![0.0; n]);
    for j in 0..n {
        let mut shifted = theta.to_vec();
        shifted[j] = theta[j] + h;
        objective(&shifted, &mut up);
        shifted[j] = theta[j] - h;
        objective(&shifted, &mut down);
        for i in 0..n {
            hessian[i][j] = (up[i] - down[i]) / (2.0 * h) * customers;
        }
    }
    let symmetric = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| 0.5 * (hessian[i][j] + hessian[j][i]))
                .collect()
        })
        .collect();
    let inverse = invert_positive_definite(symmetric)?;
    let se: Vec<f64> = (0..n).map(|i| inverse[i][i].sqrt()).collect();
    se.iter().all(|s| s.is_finite()).then_some(se)
}

/// The inverse of a symmetric positive definite matrix by Cholesky
/// factorisation; `None` when it is not positive definite.
// Triangular index arithmetic reads more plainly as indices than iterators.
#[allow(clippy::needless_range_loop)]
fn invert_positive_definite(m: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = m.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let acc: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = m[i][i] - acc;
                if !(d > 0.0 && d.is_finite()) {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (m[i][j] - acc) / l[j][j];
            }
        }
    }
    // Columns of L^-1 by forward substitution, then (L^-1)^T L^-1.
    let mut inv_l: Vec<Vec<f64>> = Vec::with_capacity(n);
    for i in 0..n {
        let row = (0..n)
            .map(|c| match c.cmp(&i) {
                std::cmp::Ordering::Greater => 0.0,
                order => {
                    let rhs = f64::from(u8::from(order == std::cmp::Ordering::Equal));
                    let acc: f64 = (c..i).map(|k| l[i][k] * inv_l[k][c]).sum();
                    (rhs - acc) / l[i][i]
                }
            })
            .collect();
        inv_l.push(row);
    }
    let mut inverse = vec![vec![0.0; n]; n];
    for (i, row) in inverse.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (i.max(j)..n).map(|k| inv_l[k][i] * inv_l[k][j]).sum();
        }
    }
    Some(inverse)
}

/// Where BFGS stopped.
struct Minimum {
    theta: Vec<f64>,
    gradient_max: f64,
    iterations: usize,
    converged: bool,
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// BFGS with a backtracking (Armijo) line search. A non-finite objective
/// counts as too high, so the search backs away from overflow; the inverse
/// Hessian is reset to the identity when a step fails to descend.
fn bfgs(
    objective: &impl Fn(&[f64], &mut [f64]) -> f64,
    mut theta: Vec<f64>,
    max_iterations: usize,
    tolerance: f64,
) -> Minimum {
    let n = theta.len();
    let identity = |n: usize| -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
            .collect()
    };
    let mut grad = vec![0.0; n];
    let mut value = objective(&theta, &mut grad);
    let mut inverse = identity(n);
    let mut fresh = true;
    let mut iterations = 0;
    let (mut next_theta, mut next_grad) = (vec![0.0; n], vec![0.0; n]);
    while value.is_finite() && iterations < max_iterations {
        if max_abs(&grad) < tolerance {
            return Minimum {
                gradient_max: max_abs(&grad),
                theta,
                iterations,
                converged: true,
            };
        }
        iterations += 1;
        let mut direction: Vec<f64> = inverse.iter().map(|row| -dot(row, &grad)).collect();
        let mut slope = dot(&direction, &grad);
        if slope >= 0.0 || slope.is_nan() {
            inverse = identity(n);
            fresh = true;
            direction = grad.iter().map(|g| -g).collect();
            slope = dot(&direction, &grad);
        }
        let longest = max_abs(&direction);
        let mut step = if longest > MAX_LOG_STEP {
            MAX_LOG_STEP / longest
        } else {
            1.0
        };
        let mut next_value = f64::INFINITY;
        for _ in 0..60 {
            for i in 0..n {
                next_theta[i] = theta[i] + step * direction[i];
            }
            next_value = objective(&next_theta, &mut next_grad);
            if next_value.is_finite() && next_value <= value + 1e-4 * step * slope {
                break;
            }
            step *= 0.5;
        }
        if !(next_value.is_finite() && next_value <= value + 1e-4 * step * slope) {
            if fresh {
                // Not even a gradient step descends: as far as precision allows.
                break;
            }
            inverse = identity(n);
            fresh = true;
            continue;
        }
        let s: Vec<f64> = (0..n).map(|i| next_theta[i] - theta[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| next_grad[i] - grad[i]).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if fresh {
                // Nocedal & Wright (6.20): scale the first inverse Hessian.
                let scale = sy / dot(&y, &y);
                inverse.iter_mut().flatten().for_each(|h| *h *= scale);
            }
            bfgs_update(&mut inverse, &s, &y, sy);
            fresh = false;
        }
        theta.copy_from_slice(&next_theta);
        grad.copy_from_slice(&next_grad);
        value = next_value;
    }
    Minimum {
        converged: value.is_finite() && max_abs(&grad) < tolerance,
        gradient_max: max_abs(&grad),
        theta,
        iterations,
    }
}

/// `H ← (I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ`, ρ = 1 / sᵀy.
fn bfgs_update(h: &mut [Vec<f64>], s: &[f64], y: &[f64], sy: f64) {
    let n = s.len();
    let rho = 1.0 / sy;
    let hy: Vec<f64> = h.iter().map(|row| dot(row, y)).collect();
    let yhy = dot(y, &hy);
    for i in 0..n {
        for j in 0..n {
            h[i][j] += (1.0 + rho * yhy) * rho * s[i] * s[j] - rho * (hy[i] * s[j] + s[i] * hy[j]);
        }
    }
}

/// One simulated customer, with the history a model sees and the future it
/// is asked to forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedCustomer {
    /// The calibration summary.
    pub summary: CustomerSummary,
    /// Every purchase `(time since the first purchase, spend)`, the first at
    /// time 0, calibration and holdout together.
    pub purchases: Vec<(f64, f64)>,
    /// Purchases in `(age, age + holdout]`.
    pub holdout_purchases: u32,
    /// Their total spend.
    pub holdout_spend: f64,
    /// Whether the customer had not dropped out by the end of calibration.
    pub alive_at_end: bool,
}

/// Draws one customer per entry of `ages` (each customer's time from first
/// purchase to the end of calibration) from the BG/NBD story, followed for
/// `holdout` more: λ ~ Gamma(r, alpha), p ~ Beta(a, b), purchases at Poisson
/// rate λ, dropout with probability p after each repeat purchase. With a spend
/// model every purchase (the first included) spends Gamma(p, ν) with ν ~
/// Gamma(q, v) per customer; without one spends are 0. Seeded: the same
/// arguments give the same customers.
///
/// # Errors
/// `InvalidArgument` for an age or a holdout that is not finite and
/// non-negative.
pub fn simulate(
    purchases: &FittedBgNbd,
    spend: Option<&FittedGammaGamma>,
    ages: &[f64],
    holdout: f64,
    seed: u64,
) -> Result<Vec<SimulatedCustomer>> {
    check_horizon(holdout).map_err(|_| {
        Error::invalid(
            "holdout",
            format!("must be finite and non-negative, got {holdout}"),
        )
    })?;
    for (i, age) in ages.iter().enumerate() {
        if !(age.is_finite() && *age >= 0.0) {
            return Err(Error::invalid(
                format!("ages[{i}]"),
                format!("must be finite and non-negative, got {age}"),
            ));
        }
    }
    let invalid = |e: rand_distr::GammaError| Error::invalid("parameters", e.to_string());
    let rate = Gamma::new(purchases.r, 1.0 / purchases.alpha).map_err(invalid)?;
    let dropout = Beta::new(purchases.a, purchases.b)
        .map_err(|e| Error::invalid("parameters", e.to_string()))?;
    let spend_scale = spend
        .map(|s| Gamma::new(s.q, 1.0 / s.v).map_err(invalid))
        .transpose()?;
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut out = Vec::with_capacity(ages.len());
    for &age in ages {
        let lambda = rate.sample(&mut rng);
        let p = dropout.sample(&mut rng);
        let per_purchase = match (spend, &spend_scale) {
            (Some(s), Some(scale)) => {
                let nu: f64 = scale.sample(&mut rng);
                Some(Gamma::new(s.p, 1.0 / nu).map_err(invalid)?)
            }
            _ => None,
        };
        let spend_once = |rng: &mut Xoshiro256Plus| per_purchase.map_or(0.0, |g| g.sample(rng));
        let end = age + holdout;
        let mut history = vec![(0.0, spend_once(&mut rng))];
        let mut dropped_at = None;
        let mut t = 0.0;
        if lambda > 0.0 {
            loop {
                let wait: f64 = Exp1.sample(&mut rng);
                t += wait / lambda;
                if t > end {
                    break;
                }
                history.push((t, spend_once(&mut rng)));
                if rng.gen::<f64>() < p {
                    dropped_at = Some(t);
                    break;
                }
            }
        }
        let calibration: Vec<&(f64, f64)> =
            history[1..].iter().filter(|(t, _)| *t <= age).collect();
        let holdout_part: Vec<&(f64, f64)> =
            history[1..].iter().filter(|(t, _)| *t > age).collect();
        let frequency = calibration.len();
        let summary = CustomerSummary {
            frequency: u32::try_from(frequency).unwrap_or(u32::MAX),
            recency: calibration.last().map_or(0.0, |(t, _)| *t),
            age,
            mean_spend: if frequency == 0 {
                0.0
            } else {
                calibration.iter().map(|(_, s)| s).sum::<f64>() / frequency as f64
            },
        };
        out.push(SimulatedCustomer {
            summary,
            holdout_purchases: u32::try_from(holdout_part.len()).unwrap_or(u32::MAX),
            holdout_spend: holdout_part.iter().map(|(_, s)| s).sum(),
            alive_at_end: dropped_at.is_none_or(|d| d > age),
            purchases: history,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::function::gamma::gamma;

    /// Fader, Hardie & Lee's BG/NBD estimates on CDNOW (weeks), as `lifetimes`
    /// rounds them in its documentation.
    fn cdnow() -> FittedBgNbd {
        FittedBgNbd::from_parameters(0.243, 4.414, 0.793, 2.426).unwrap()
    }

    /// Their Gamma-Gamma estimates on CDNOW (dollars).
    fn cdnow_spend() -> FittedGammaGamma {
        FittedGammaGamma::from_parameters(6.25, 3.74, 15.44).unwrap()
    }

    fn customer(frequency: u32, recency: f64, age: f64) -> CustomerSummary {
        CustomerSummary {
            frequency,
            recency,
            age,
            mean_spend: 0.0,
        }
    }

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs().max(1e-300)
    }

    /// CDNOW's cohort joined over 12 weeks and was observed to week 39.
    fn cdnow_ages(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        (0..n).map(|_| rng.gen_range(27.0..39.0)).collect()
    }

    #[test]
    fn a_long_forecast_is_kept_and_given_back_to_the_bit() {
        let model = cdnow();
        // Age 2 weeks against a 52-week horizon: a long series, kept.
        let young = customer(1, 1.0, 2.0);
        let direct =
            expected_while_alive(0.243 + 1.0, 0.793, 2.426 + 1.0, 4.414 + 2.0, 52.0).unwrap();
        let first = model.expected_purchases_if_alive(&young, 52.0).unwrap();
        let again = model.expected_purchases_if_alive(&young, 52.0).unwrap();
        assert_eq!(first.to_bits(), direct.to_bits());
        assert_eq!(again.to_bits(), direct.to_bits());
        // Another horizon or age is another entry, not the kept one.
        let longer = model.expected_purchases_if_alive(&young, 78.0).unwrap();
        assert!(longer > first, "{longer} {first}");
        let older = model
            .expected_purchases_if_alive(&customer(1, 1.0, 3.0), 52.0)
            .unwrap();
        assert_ne!(older.to_bits(), first.to_bits());
        // A copy starts empty and is still the same model.
        let copy = model.clone();
        assert_eq!(copy, model);
        assert_eq!(
            copy.expected_purchases_if_alive(&young, 52.0)
                .unwrap()
                .to_bits(),
            direct.to_bits()
        );
    }

    #[test]
    fn whole_day_ages_spread_over_the_forecast_shards() {
        let mut counts = [0usize; FORECAST_SHARDS];
        for frequency in 0..5u32 {
            for age in 0..1_000 {
                let key = (frequency, f64::from(age).to_bits(), 365f64.to_bits());
                counts[ForecastCache::shard_of(key)] += 1;
            }
        }
        let mean = 5_000 / FORECAST_SHARDS;
        assert!(
            counts.iter().all(|&c| c > mean / 2 && c < mean * 2),
            "{counts:?}"
        );
    }

    #[test]
    fn hyp2f1_matches_closed_forms_and_mpmath() {
        for z in [-5.0f64, -0.9, -0.3, 0.0, 0.2, 0.6, 0.95] {
            let log_form = if z == 0.0 { 1.0 } else { -(1.0 - z).ln() / z };
            assert!(
                close(hyp2f1(1.0, 1.0, 2.0, z).unwrap(), log_form, 1e-13),
                "{z}"
            );
            let power = (1.0 - z).powf(-0.7);
            assert!(
                close(hyp2f1(0.7, 2.3, 2.3, z).unwrap(), power, 1e-13),
                "{z}"
            );
        }
        let asin = |x: f64| x.asin() / x;
        assert!(close(
            hyp2f1(0.5, 0.5, 1.5, 0.81).unwrap(),
            asin(0.9),
            1e-13
        ));
        // 25-digit values from mpmath.hyp2f1; the second is the 2F1 in FHL's
        // forecast for CDNOW's customer (x = 2, t_x = 30.43, T = 38.86) at 39 weeks.
        let known = [
            ((1.0, 1.0, 2.0, 0.5), 1.386_294_361_119_890_6),
            (
                (2.243, 4.426, 4.219, 0.4740258161752194),
                4.575_315_897_643_689,
            ),
            ((2.5, 3.5, 1.5, 0.95), 1_621_894.639_679_841),
            ((0.5, 1.5, 2.5, -3.0), 0.619_827_001_849_526_8),
            ((1.2, -2.3, 0.7, 0.3), 0.104_310_534_954_632_92),
            ((3.0, 4.0, 6.0, 0.999), 9_723.550_823_741_696),
        ];
        for ((a, b, c, z), want) in known {
            let got = hyp2f1(a, b, c, z).unwrap();
            assert!(
                close(got, want, 1e-12),
                "2F1({a}, {b}; {c}; {z}) = {got}, want {want}"
            );
        }
        // A terminating series is a polynomial: 2F1(-2, b; c; z) = 1 - 2bz/c + b(b+1)z²/(c(c+1)).
        let (b, c, z) = (1.5, 2.5, 0.4);
        let poly = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        assert!(close(hyp2f1(-2.0, b, c, z).unwrap(), poly, 1e-14));
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, 1.0), None);
        assert_eq!(hyp2f1(1.0, 1.0, -2.0, 0.5), None);
        assert_eq!(hyp2f1(f64::NAN, 1.0, 2.0, 0.5), None);
    }

    /// FHL's closed form of E[purchases in the horizon | alive].
    fn closed_form(s: f64, a: f64, beta: f64, scale: f64, horizon: f64) -> f64 {
        let c = a + beta - 1.0;
        let z = horizon / (scale + horizon);
        let f = hyp2f1(s, beta, c, z).unwrap();
        c / (a - 1.0) * (1.0 - (scale / (scale + horizon)).powf(s) * f)
    }

    #[test]
    fn the_forecast_series_equals_the_hypergeometric_closed_form() {
        // (s = r + x, a, beta = b + x, alpha + T, horizon), a on both sides of 1;
        // the last case needs the weights rescaled (its first is 1e-250).
        let cases = [
            (2.243, 0.793, 4.426, 43.274, 39.0),
            (0.243, 0.793, 2.426, 4.414, 39.0),
            (0.243, 0.793, 2.426, 4.414, 2000.0),
            (7.5, 2.5, 9.0, 40.0, 10.0),
            (1.3, 1.7, 0.6, 3.0, 100.0),
            (20.24, 3.0, 22.4, 42.4, 39.0),
            (250.0, 0.79, 252.4, 10.0, 90.0),
        ];
        for (s, a, beta, scale, horizon) in cases {
            let got = expected_while_alive(s, a, beta, scale, horizon).unwrap();
            let want = closed_form(s, a, beta, scale, horizon);
            assert!(close(got, want, 1e-10), "{s} {a} {beta}: {got} vs {want}");
        }
        assert_eq!(expected_while_alive(1.0, 2.0, 3.0, 4.0, 0.0).unwrap(), 0.0);
    }

    #[test]
    fn the_forecast_is_smooth_where_the_closed_form_is_singular() {
        // a = 1 (0/0 in c / (a - 1)) and a + b = 1 with x = 0 (2F1 with c = 0).
        for (a, beta) in [(1.0, 2.4), (0.3, 0.7)] {
            let at = expected_while_alive(0.5, a, beta, 5.0, 39.0).unwrap();
            let below = expected_while_alive(0.5, a - 1e-6, beta, 5.0, 39.0).unwrap();
            let above = expected_while_alive(0.5, a + 1e-6, beta, 5.0, 39.0).unwrap();
            assert!(at.is_finite() && at > 0.0);
            assert!(close(at, 0.5 * (below + above), 1e-9), "{a} {beta}");
            assert!(below > at && at > above, "more dropout, fewer purchases");
        }
    }

    /// FHL 2005 eq. 6 with Gamma and Beta functions, not logs.
    fn hand_likelihood(m: &FittedBgNbd, c: &CustomerSummary) -> f64 {
        let (r, alpha, a, b) = (m.r(), m.alpha(), m.a(), m.b());
        let x = f64::from(c.frequency);
        let beta = |p: f64, q: f64| gamma(p) * gamma(q) / gamma(p + q);
        let rate = gamma(r + x) * alpha.powf(r) / gamma(r);
        let alive = beta(a, b + x) / beta(a, b) * rate / (alpha + c.age).powf(r + x);
        let dropped = if c.frequency > 0 {
            beta(a + 1.0, b + x - 1.0) / beta(a, b) * rate / (alpha + c.recency).powf(r + x)
        } else {
            0.0
        };
        alive + dropped
    }

    #[test]
    fn bgnbd_matches_hand_computation_and_lifetimes() {
        let model = cdnow();
        // (x, t_x, T) -> log-likelihood, P(alive), E[purchases in 39 weeks],
        // from lifetimes 0.11.3 at the same parameters.
        let known = [
            (
                (0, 0.0, 38.86),
                -0.5547132764381585,
                1.0,
                0.19509805201125396,
            ),
            (
                (2, 30.43, 38.86),
                -9.45860630706627,
                0.726578570080673,
                1.226028174767135,
            ),
            (
                (1, 1.71, 30.86),
                -4.409547320983797,
                0.25764766642026066,
                0.2941846417989006,
            ),
            (
                (20, 37.0, 38.0),
                -38.48827977187982,
                0.9434036190485725,
                13.585555795466751,
            ),
            (
                (7, 29.43, 35.0),
                -21.380329155953554,
                0.778977117406475,
                4.369281948518574,
            ),
        ];
        for ((x, recency, age), ll, alive, expected) in known {
            let c = customer(x, recency, age);
            let got = model.log_likelihood(&c).unwrap();
            assert!(close(got, ll, 1e-12), "{x}: ll {got} vs {ll}");
            assert!(close(got.exp(), hand_likelihood(&model, &c), 1e-10), "{x}");
            let p = model.probability_alive(&c).unwrap();
            assert!(close(p, alive, 1e-12), "{x}: P(alive) {p} vs {alive}");
            let e = model.expected_purchases(&c, 39.0).unwrap();
            assert!(close(e, expected, 1e-10), "{x}: E {e} vs {expected}");
        }
        let new = model.expected_purchases_new_customer(39.0).unwrap();
        assert!(close(new, 1.1967231933207985, 1e-10), "{new}");
    }

    /// Central differences of a total log-likelihood against its analytic gradient.
    fn check_gradient(params: &[f64], ll: impl Fn(&[f64], &mut [f64]) -> f64) {
        let mut grad = vec![0.0; params.len()];
        ll(params, &mut grad);
        let mut scratch = vec![0.0; params.len()];
        for j in 0..params.len() {
            let h = 1e-6 * params[j];
            let mut p = params.to_vec();
            p[j] += h;
            let up = ll(&p, &mut scratch);
            p[j] -= 2.0 * h;
            let down = ll(&p, &mut scratch);
            let numeric = (up - down) / (2.0 * h);
            assert!(
                (numeric - grad[j]).abs() <= 1e-6 * (1.0 + grad[j].abs()),
                "parameter {j}: analytic {} numeric {numeric}",
                grad[j]
            );
        }
    }

    #[test]
    fn analytic_gradients_match_finite_differences() {
        let sims = simulate(&cdnow(), Some(&cdnow_spend()), &cdnow_ages(300, 1), 0.0, 2).unwrap();
        let data: Vec<CustomerSummary> = sims.iter().map(|s| s.summary).collect();
        let groups = group_rows(
            data.iter()
                .map(|c| (c.frequency, (c.recency, c.age)))
                .collect(),
            |x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)),
        );
        for params in [[0.243, 4.414, 0.793, 2.426], [1.7, 0.3, 3.0, 0.4]] {
            check_gradient(&params, |p, g| bgnbd_log_likelihood(&groups, p, g));
        }
        let (spend, _) = spend_rows(&data).unwrap();
        for params in [[6.25, 3.74, 15.44], [0.8, 1.2, 300.0]] {
            check_gradient(&params, |p, g| gamma_gamma_log_likelihood(&spend, p, g));
        }
    }

    #[test]
    fn bgnbd_recovers_the_parameters_it_simulated_from() {
        let truth = cdnow();
        let sims = simulate(&truth, None, &cdnow_ages(10_000, 3), 0.0, 4).unwrap();
        let data: Vec<CustomerSummary> = sims.iter().map(|s| s.summary).collect();
        let fitted = BgNbdParams::new().fit(&data).unwrap();
        let report = fitted.report().unwrap();
        assert_eq!(report.customers, 10_000);
        let se = report.standard_errors.as_ref().unwrap();
        let got = [fitted.r(), fitted.alpha(), fitted.a(), fitted.b()];
        let want = [truth.r(), truth.alpha(), truth.a(), truth.b()];
        // Asymptotically each estimate is normal around the truth with this
        // standard error; 4 of them fail a correct fit once in 16,000. The
        // errors must also be small enough for the check to mean something.
        for (name, ((g, w), s)) in ["r", "alpha", "a", "b"]
            .iter()
            .zip(got.iter().zip(&want).zip(se))
        {
            assert!((g - w).abs() < 4.0 * s, "{name}: {g} vs {w} (se {s})");
            assert!(*s < 0.3 * w, "{name}: se {s} is too wide to test anything");
        }
        // The estimate maximises the likelihood: the truth cannot do better.
        let at_truth: f64 = data.iter().map(|c| truth.log_likelihood(c).unwrap()).sum();
        assert!(
            report.log_likelihood >= at_truth,
            "{} < {at_truth}",
            report.log_likelihood
        );
        let at_fit: f64 = data.iter().map(|c| fitted.log_likelihood(c).unwrap()).sum();
        assert!(close(at_fit, report.log_likelihood, 1e-10));
    }

    /// Importance-sampled Monte Carlo of one customer's future: (λ, p) drawn
    /// from the prior and weighted by the likelihood of the history, the
    /// customer alive at the end of calibration with the probability the
    /// history gives that (λ, p), and the future then simulated purchase by
    /// purchase. Returns (mean, standard error) of the purchases in the
    /// horizon and of being alive.
    fn monte_carlo(
        m: &FittedBgNbd,
        c: &CustomerSummary,
        horizon: f64,
        draws: usize,
        seed: u64,
    ) -> [(f64, f64); 2] {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let rate = Gamma::new(m.r(), 1.0 / m.alpha()).unwrap();
        let dropout = Beta::new(m.a(), m.b()).unwrap();
        let x = f64::from(c.frequency);
        let mut samples = Vec::with_capacity(draws);
        for _ in 0..draws {
            let lambda: f64 = rate.sample(&mut rng);
            let p: f64 = dropout.sample(&mut rng);
            let alive = (1.0 - p).powf(x) * lambda.powf(x) * (-lambda * c.age).exp();
            let dropped = if c.frequency > 0 {
                p * (1.0 - p).powf(x - 1.0) * lambda.powf(x) * (-lambda * c.recency).exp()
            } else {
                0.0
            };
            let weight = alive + dropped;
            if weight <= 0.0 || weight.is_nan() {
                continue;
            }
            let is_alive = rng.gen::<f64>() * weight < alive;
            let mut count = 0.0;
            let mut t = 0.0;
            if is_alive {
                loop {
                    let wait: f64 = Exp1.sample(&mut rng);
                    t += wait / lambda;
                    if t > horizon {
                        break;
                    }
                    count += 1.0;
                    if rng.gen::<f64>() < p {
                        break;
                    }
                }
            }
            samples.push((weight, count, f64::from(u8::from(is_alive))));
        }
        let total: f64 = samples.iter().map(|s| s.0).sum();
        let estimate = |value: fn(&(f64, f64, f64)) -> f64| {
            let mean = samples.iter().map(|s| s.0 * value(s)).sum::<f64>() / total;
            let var = samples
                .iter()
                .map(|s| (s.0 * (value(s) - mean)).powi(2))
                .sum::<f64>()
                / (total * total);
            (mean, var.sqrt())
        };
        [estimate(|s| s.1), estimate(|s| s.2)]
    }

    #[test]
    fn conditional_forecasts_match_monte_carlo_futures() {
        let model = cdnow();
        let cases = [
            customer(0, 0.0, 38.86),
            customer(2, 30.43, 38.86),
            customer(1, 1.71, 30.86),
            customer(5, 20.0, 32.0),
        ];
        for (i, c) in cases.iter().enumerate() {
            let [(purchases, purchases_se), (alive, alive_se)] =
                monte_carlo(&model, c, 39.0, 200_000, 10 + i as u64);
            let expected = model.expected_purchases(c, 39.0).unwrap();
            let p_alive = model.probability_alive(c).unwrap();
            assert!(
                purchases_se < 0.03 * expected,
                "{c:?}: MC too noisy ({purchases_se})"
            );
            assert!(
                (purchases - expected).abs() < 4.0 * purchases_se,
                "{c:?}: E {expected} vs MC {purchases} ± {purchases_se}"
            );
            assert!(
                (alive - p_alive).abs() < 4.0 * alive_se.max(1e-9),
                "{c:?}: P(alive) {p_alive} vs MC {alive} ± {alive_se}"
            );
        }
    }

    #[test]
    fn forecasts_are_calibrated_on_simulated_holdouts() {
        // With the true parameters, the mean forecast in a group chosen by the
        // history must equal the mean of what those customers then did.
        let model = cdnow();
        let sims = simulate(&model, None, &cdnow_ages(20_000, 20), 39.0, 21).unwrap();
        for (low, high) in [(0, 0), (1, 1), (2, 3), (4, 8), (9, u32::MAX)] {
            let group: Vec<&SimulatedCustomer> = sims
                .iter()
                .filter(|s| (low..=high).contains(&s.summary.frequency))
                .collect();
            assert!(group.len() > 300, "{low}..{high}: {}", group.len());
            let n = group.len() as f64;
            let gaps = |f: &dyn Fn(&SimulatedCustomer) -> f64| {
                let d: Vec<f64> = group.iter().map(|s| f(s)).collect();
                let mean = d.iter().sum::<f64>() / n;
                let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
                (mean, sd / n.sqrt())
            };
            let (gap, se) = gaps(&|s| {
                f64::from(s.holdout_purchases) - model.expected_purchases(&s.summary, 39.0).unwrap()
            });
            assert!(
                gap.abs() < 4.0 * se,
                "{low}..{high}: purchases off by {gap} ± {se}"
            );
            let (gap, se) = gaps(&|s| {
                f64::from(u8::from(s.alive_at_end)) - model.probability_alive(&s.summary).unwrap()
            });
            assert!(
                gap.abs() < 4.0 * se.max(1e-9),
                "{low}..{high}: alive off by {gap} ± {se}"
            );
        }
    }

    #[test]
    fn gamma_gamma_matches_lifetimes_and_recovers_its_parameters() {
        let model = cdnow_spend();
        // From lifetimes 0.11.3 at the same parameters.
        let mut c = customer(1, 5.0, 30.0);
        c.mean_spend = 20.0;
        assert!(close(
            model.expected_spend_per_purchase(&c).unwrap(),
            24.6384872080089,
            1e-12
        ));
        assert!(close(
            model.log_likelihood(&c).unwrap(),
            -3.5941964929491945,
            1e-12
        ));
        c.frequency = 5;
        c.mean_spend = 35.5;
        assert!(close(
            model.expected_spend_per_purchase(&c).unwrap(),
            35.47734627831715,
            1e-12
        ));
        assert!(close(
            model.log_likelihood(&c).unwrap(),
            -4.064402654844599,
            1e-12
        ));
        let newcomer = customer(0, 0.0, 30.0);
        let population = model.expected_spend_per_purchase(&newcomer).unwrap();
        assert!(close(population, 35.21897810218978, 1e-12));
        assert_eq!(population, model.population_mean_spend());

        let sims = simulate(&cdnow(), Some(&model), &cdnow_ages(12_000, 30), 0.0, 31).unwrap();
        let mut data: Vec<CustomerSummary> = sims.iter().map(|s| s.summary).collect();
        // A repeat customer without positive spend is left out, and counted.
        let repeat = data.iter().position(|c| c.frequency > 0).unwrap();
        data[repeat].mean_spend = 0.0;
        let fitted = GammaGammaParams::new().fit(&data).unwrap();
        let report = fitted.report().unwrap();
        let repeaters = data.iter().filter(|c| c.frequency > 0).count() as u64;
        assert_eq!((report.customers, report.excluded), (repeaters - 1, 1));
        let se = report.standard_errors.as_ref().unwrap();
        let got = [fitted.p(), fitted.q(), fitted.v()];
        let want = [model.p(), model.q(), model.v()];
        for (name, ((g, w), s)) in ["p", "q", "v"].iter().zip(got.iter().zip(&want).zip(se)) {
            assert!((g - w).abs() < 4.0 * s, "{name}: {g} vs {w} (se {s})");
            assert!(*s < 0.3 * w, "{name}: se {s} is too wide to test anything");
        }
        // Spend was drawn independently of frequency.
        let rho = frequency_spend_correlation(&data).unwrap();
        assert!(rho.abs() < 0.05, "{rho}");
    }

    #[test]
    fn gamma_gamma_refuses_a_fit_with_infinite_mean_spend() {
        // ν ~ Gamma(q = 0.7): the population has no finite mean spend.
        let mut rng = Xoshiro256Plus::seed_from_u64(40);
        let nu = Gamma::new(0.7, 1.0 / 10.0).unwrap();
        let data: Vec<CustomerSummary> = (0..4000)
            .map(|i| {
                let x = 1 + i % 5;
                let spend = Gamma::new(5.0, 1.0 / nu.sample(&mut rng)).unwrap();
                let total: f64 = (0..x).map(|_| spend.sample(&mut rng)).sum();
                CustomerSummary {
                    frequency: x,
                    recency: 10.0,
                    age: 20.0,
                    mean_spend: total / f64::from(x),
                }
            })
            .collect();
        let err = GammaGammaParams::new().fit(&data).unwrap_err();
        assert!(matches!(err, Error::Training { .. }), "{err}");
        // The refusal names the estimate, which lands near the truth.
        let message = err.to_string();
        let q: f64 = message
            .split("q = ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!((q - 0.7).abs() < 0.05, "{message}");
    }

    #[test]
    fn clv_multiplies_purchases_by_spend() {
        let clv = FittedClv {
            purchases: cdnow(),
            spend: cdnow_spend(),
        };
        let mut c = customer(2, 30.43, 38.86);
        c.mean_spend = 22.35;
        let got = clv.predict(&c, 39.0).unwrap();
        assert_eq!(
            got.expected_purchases,
            clv.purchases.expected_purchases(&c, 39.0).unwrap()
        );
        assert_eq!(
            got.probability_alive,
            clv.purchases.probability_alive(&c).unwrap()
        );
        assert_eq!(
            got.expected_spend_per_purchase,
            clv.spend.expected_spend_per_purchase(&c).unwrap()
        );
        assert_eq!(
            got.expected_spend,
            got.expected_purchases * got.expected_spend_per_purchase
        );
        // lifetimes' forecast for this customer times FHL's eq. 5 by hand.
        let per_purchase = 6.25 * (15.44 + 2.0 * 22.35) / (6.25 * 2.0 + 3.74 - 1.0);
        assert!(
            close(got.expected_spend, 1.226028174767135 * per_purchase, 1e-10),
            "{got:?}"
        );
    }

    #[test]
    fn fitted_models_round_trip_exactly_and_damaged_ones_are_refused() {
        let sims = simulate(
            &cdnow(),
            Some(&cdnow_spend()),
            &cdnow_ages(2_000, 50),
            0.0,
            51,
        )
        .unwrap();
        let data: Vec<CustomerSummary> = sims.iter().map(|s| s.summary).collect();
        let clv = FittedClv {
            purchases: BgNbdParams::new().fit(&data).unwrap(),
            spend: GammaGammaParams::new().fit(&data).unwrap(),
        };
        let json = serde_json::to_string(&clv).unwrap();
        let from_json: FittedClv = serde_json::from_str(&json).unwrap();
        let from_bincode: FittedClv =
            bincode::deserialize(&bincode::serialize(&clv).unwrap()).unwrap();
        for back in [from_json, from_bincode] {
            assert_eq!(back, clv);
            for c in data.iter().take(50) {
                let (a, b) = (
                    clv.predict(c, 39.0).unwrap(),
                    back.predict(c, 39.0).unwrap(),
                );
                assert_eq!(a.expected_spend.to_bits(), b.expected_spend.to_bits());
            }
        }
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["purchases"]["alpha"] = serde_json::json!(-1.0);
        let err = serde_json::from_value::<FittedClv>(value.clone()).unwrap_err();
        assert!(err.to_string().contains("alpha"), "{err}");
        value["purchases"]["alpha"] = serde_json::json!(4.0);
        value["spend"]["q"] = serde_json::json!(0.9);
        let err = serde_json::from_value::<FittedClv>(value).unwrap_err();
        assert!(err.to_string().contains("q"), "{err}");
    }

    fn invalid_field(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn bad_settings_are_rejected_by_name() {
        let data = [customer(1, 1.0, 2.0), customer(0, 0.0, 3.0)];
        let cases = [
            (BgNbdParams::new().penalty(-0.1), "penalty"),
            (BgNbdParams::new().penalty(f64::NAN), "penalty"),
            (BgNbdParams::new().max_iterations(0), "max_iterations"),
            (BgNbdParams::new().tolerance(0.0), "tolerance"),
            (BgNbdParams::new().tolerance(f64::INFINITY), "tolerance"),
        ];
        for (params, field) in cases {
            assert_eq!(invalid_field(params.check_ref().map(|_| ())), field);
            assert_eq!(invalid_field(params.fit(&data)), field);
        }
        assert_eq!(
            invalid_field(GammaGammaParams::new().penalty(-1.0).fit(&data)),
            "penalty"
        );
        let checked = BgNbdParams::new()
            .penalty(0.5)
            .max_iterations(7)
            .tolerance(1e-3)
            .check()
            .unwrap();
        assert_eq!(
            (
                checked.penalty(),
                checked.max_iterations(),
                checked.tolerance()
            ),
            (0.5, 7, 1e-3)
        );
        for (params, field) in [
            ((0.0, 1.0, 1.0, 1.0), "r"),
            ((1.0, f64::NAN, 1.0, 1.0), "alpha"),
            ((1.0, 1.0, -1.0, 1.0), "a"),
            ((1.0, 1.0, 1.0, f64::INFINITY), "b"),
        ] {
            let (r, alpha, a, b) = params;
            assert_eq!(
                invalid_field(FittedBgNbd::from_parameters(r, alpha, a, b)),
                field
            );
        }
        assert_eq!(
            invalid_field(FittedGammaGamma::from_parameters(1.0, 1.0, 1.0)),
            "q"
        );
        assert_eq!(
            invalid_field(FittedGammaGamma::from_parameters(0.0, 2.0, 1.0)),
            "p"
        );
    }

    #[test]
    fn bad_inputs_are_rejected_not_panicked_on() {
        let model = cdnow();
        let spend = cdnow_spend();
        let cases = [
            (customer(1, f64::NAN, 2.0), "recency"),
            (customer(1, 1.0, f64::INFINITY), "age"),
            (customer(1, -1.0, 2.0), "recency"),
            (customer(1, 3.0, 2.0), "recency"),
            (customer(0, 1.0, 2.0), "recency"),
        ];
        for (c, field) in cases {
            assert_eq!(invalid_field(model.log_likelihood(&c)), field);
            assert_eq!(invalid_field(model.probability_alive(&c)), field);
            assert_eq!(invalid_field(model.expected_purchases(&c, 10.0)), field);
            assert_eq!(invalid_field(spend.expected_spend_per_purchase(&c)), field);
        }
        let ok = customer(2, 5.0, 9.0);
        for horizon in [f64::NAN, -1.0, f64::INFINITY] {
            assert_eq!(
                invalid_field(model.expected_purchases(&ok, horizon)),
                "horizon"
            );
            assert_eq!(
                invalid_field(model.expected_purchases_new_customer(horizon)),
                "horizon"
            );
        }
        for mean_spend in [f64::NAN, -3.0] {
            let c = CustomerSummary { mean_spend, ..ok };
            assert_eq!(
                invalid_field(spend.expected_spend_per_purchase(&c)),
                "mean_spend"
            );
        }
        // A horizon absurdly long for the purchase rate is refused, not looped on.
        assert_eq!(
            invalid_field(model.expected_purchases(&ok, 1e12)),
            "horizon"
        );
        let data = [customer(1, 1.0, 2.0), customer(1, 3.0, 2.0)];
        assert_eq!(
            invalid_field(BgNbdParams::new().fit(&data)),
            "customers[1].recency"
        );
        let data = [customer(0, 0.0, 2.0), customer(0, 0.0, 5.0)];
        assert!(matches!(
            BgNbdParams::new().fit(&data),
            Err(Error::Training { .. })
        ));
        assert!(matches!(
            GammaGammaParams::new().fit(&data),
            Err(Error::Training { .. })
        ));
        let data = [CustomerSummary {
            mean_spend: f64::NAN,
            ..ok
        }];
        assert_eq!(
            invalid_field(GammaGammaParams::new().fit(&data)),
            "customers[0].mean_spend"
        );
    }

    #[test]
    fn heavy_buyers_and_long_horizons_stay_finite() {
        // Daily buyers over a year in days: x in the hundreds.
        let mut data: Vec<CustomerSummary> =
            (0..200).map(|i| customer(300 + i, 360.0, 365.0)).collect();
        data.extend((0..200).map(|i| customer(i % 3, f64::from(i % 3) * 30.0, 365.0)));
        let model = BgNbdParams::new().fit(&data).unwrap();
        let heavy = customer(600, 364.0, 365.0);
        let e = model.expected_purchases(&heavy, 365.0).unwrap();
        let p = model.probability_alive(&heavy).unwrap();
        assert!(e.is_finite() && e > 100.0 && e < 1000.0, "{e}");
        assert!(p > 0.5 && p <= 1.0, "{p}");
        // Forecasts grow with the horizon.
        let c = customer(3, 100.0, 200.0);
        let mut last = 0.0;
        for horizon in [1.0, 10.0, 100.0, 1000.0, 10_000.0] {
            let e = model.expected_purchases(&c, horizon).unwrap();
            assert!(e > last, "{horizon}: {e} <= {last}");
            last = e;
        }
    }

    #[test]
    fn the_penalty_shrinks_the_parameters() {
        let sims = simulate(&cdnow(), None, &cdnow_ages(3_000, 60), 0.0, 61).unwrap();
        let data: Vec<CustomerSummary> = sims.iter().map(|s| s.summary).collect();
        let size =
            |m: &FittedBgNbd| m.r().powi(2) + m.alpha().powi(2) + m.a().powi(2) + m.b().powi(2);
        let plain = BgNbdParams::new().fit(&data).unwrap();
        let shrunk = BgNbdParams::new().penalty(0.01).fit(&data).unwrap();
        assert!(
            size(&shrunk) < 0.9 * size(&plain),
            "{shrunk:?} vs {plain:?}"
        );
        let ll = |m: &FittedBgNbd| m.report().unwrap().log_likelihood;
        assert!(ll(&shrunk) < ll(&plain));
    }

    #[test]
    fn summaries_merge_same_day_purchases_and_respect_the_calibration_end() {
        let day = SECONDS_PER_DAY;
        let start = 100 * day;
        // Unsorted, two purchases on the first day and two on day 14.
        let purchases = [
            (start + 14 * day + 5, 7.0),
            (start + 10, 3.0),
            (start + 3_600, 2.0),
            (start + 7 * day, 10.0),
            (start + 14 * day + 9_000, 3.0),
            (start + 21 * day, 50.0),
            (start + 30 * day, 8.0),
        ];
        let end = start + 21 * day;
        let weeks = CustomerSummary::from_purchases(&purchases, end, 7.0)
            .unwrap()
            .unwrap();
        assert_eq!(
            weeks,
            CustomerSummary {
                frequency: 2,
                recency: 2.0,
                age: 20.0 / 7.0,
                mean_spend: 10.0,
            }
        );
        let days = CustomerSummary::from_purchases(&purchases, end, 1.0)
            .unwrap()
            .unwrap();
        assert_eq!((days.recency, days.age), (14.0, 20.0));
        assert_eq!(
            holdout_occasions(&purchases, end, start + 31 * day).unwrap(),
            (2, 58.0)
        );
        assert_eq!(
            holdout_occasions(&purchases, end, start + 30 * day).unwrap(),
            (1, 50.0)
        );
        // Before any purchase there is no summary; a purchase on the last day has age 0.
        assert_eq!(
            CustomerSummary::from_purchases(&purchases, start, 1.0).unwrap(),
            None
        );
        let first_day = CustomerSummary::from_purchases(&purchases, start + day, 1.0)
            .unwrap()
            .unwrap();
        assert_eq!(first_day, customer(0, 0.0, 0.0));
        // Negative timestamps fall on the day before the epoch, not after.
        let early = CustomerSummary::from_purchases(&[(-1, 1.0), (1, 1.0)], day, 1.0)
            .unwrap()
            .unwrap();
        assert_eq!(early.frequency, 1);
        assert_eq!(
            invalid_field(CustomerSummary::from_purchases(&[(0, f64::NAN)], day, 1.0)),
            "purchases[0].amount"
        );
        assert_eq!(
            invalid_field(CustomerSummary::from_purchases(&purchases, end, 0.0)),
            "unit_days"
        );
    }

    #[test]
    fn correlation_reports_spend_that_follows_frequency() {
        let data: Vec<CustomerSummary> = (1..200u32)
            .map(|i| CustomerSummary {
                mean_spend: f64::from(i % 10) * 5.0 + 1.0,
                ..customer(i % 10 + 1, 1.0, 2.0)
            })
            .collect();
        assert!(frequency_spend_correlation(&data).unwrap() > 0.99);
        assert_eq!(frequency_spend_correlation(&data[..2]), None);
    }

    #[test]
    fn the_simulator_is_seeded_and_consistent() {
        let ages = cdnow_ages(500, 70);
        let one = simulate(&cdnow(), Some(&cdnow_spend()), &ages, 39.0, 71).unwrap();
        assert_eq!(
            one,
            simulate(&cdnow(), Some(&cdnow_spend()), &ages, 39.0, 71).unwrap()
        );
        assert_ne!(
            one,
            simulate(&cdnow(), Some(&cdnow_spend()), &ages, 39.0, 72).unwrap()
        );
        for s in &one {
            s.summary.check().unwrap();
            let times: Vec<f64> = s.purchases.iter().map(|p| p.0).collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]) && times[0] == 0.0);
            let calibration = times
                .iter()
                .filter(|t| **t > 0.0 && **t <= s.summary.age)
                .count();
            assert_eq!(calibration as u32, s.summary.frequency);
            if !s.alive_at_end {
                assert_eq!(s.holdout_purchases, 0);
            }
        }
        assert_eq!(
            invalid_field(simulate(&cdnow(), None, &[f64::NAN], 1.0, 1)),
            "ages[0]"
        );
        assert_eq!(
            invalid_field(simulate(&cdnow(), None, &[1.0], -1.0, 1)),
            "holdout"
        );
    }
}
