//! What a partner brings: the value of the deals it sources, and the risk
//! that the partnership lapses.
//!
//! A partnership lapses within the horizon when no deal record of the
//! partner (a registration or an outcome) falls in it. Lapse risk is that
//! probability, learned from the book's partners' deal histories cut at
//! several times and calibrated; unknown, not low, with fewer than
//! `min_deals` deals active in the year before T.
//!
//! Expected sourced value over the horizon = scale × (1 − lapse risk) ×
//! the value of the deals won in the year before T × horizon / 365, with
//! `scale` the training rows' actual won value over their predicted (how
//! much a year's run rate over- or under-states the next horizon). Tiers by
//! that value put their edges at its 50th, 80th and 95th percentiles among
//! the book's partners with a positive one.

use serde::{Deserialize, Serialize};

use crate::domain::DealOutcome;
use crate::error::Result;
use crate::features::kinds::KindHistory;
use crate::model::metrics as m;
use crate::model::quantiles;
use crate::model::risk::{RiskLogit, RiskRow};
use crate::time::{Timestamp, SECONDS_PER_DAY};

pub const HISTORY_DAYS: i64 = 365;
pub const RECENT_DAYS: i64 = 90;

/// The spec's `[partner]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartnerParams {
    /// Lapse and sourced value are about this many days ahead.
    pub horizon_days: u32,
    /// Fewer deals active in the year before make the lapse risk unknown.
    pub min_deals: u32,
    /// Ridge penalty of the logistic regression.
    pub l2: f64,
}

impl Default for PartnerParams {
    fn default() -> Self {
        PartnerParams {
            horizon_days: 180,
            min_deals: 2,
            l2: 1.0,
        }
    }
}

impl PartnerParams {
    /// # Errors
    /// A message naming the bad field.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(1..=730).contains(&self.horizon_days) {
            return Err("partner.horizon_days must be 1 to 730".into());
        }
        if self.min_deals == 0 {
            return Err("partner.min_deals must be at least 1".into());
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err("partner.l2 must be finite and >= 0".into());
        }
        Ok(())
    }
}

/// What a partner's deals say as of T (each deal in its latest state recorded by T).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartnerFacts {
    /// Deals whose latest record by T falls in the last 90 days, and in the 275 days before.
    pub recent_deals: u32,
    pub prior_deals: u32,
    /// Deals won in the year before T, and their value.
    pub won: u32,
    pub won_value: f64,
    pub lost: u32,
    /// Open deals and their expected value.
    pub open: u32,
    pub open_value: f64,
    /// Days since the partner's latest deal record; `None` without one.
    pub days_since_last_deal: Option<f64>,
}

pub const FEATURES: [(&str, &str); 5] = [
    ("recent_deals", "deals in 90 days"),
    ("prior_deals_per_90_days", "deals per 90 days"),
    ("log_won_value", "ln(1 + won value)"),
    ("win_rate", "share of decided deals"),
    ("days_since_last_deal", "days"),
];

impl PartnerFacts {
    /// The facts as of `t`. `history` should hold no record after `t` for
    /// exact facts (training folds only the events before each cutoff);
    /// records after `t` are left out.
    pub fn of(history: &KindHistory, t: Timestamp) -> PartnerFacts {
        let year = t - HISTORY_DAYS * SECONDS_PER_DAY;
        let recent = t - RECENT_DAYS * SECONDS_PER_DAY;
        let mut f = PartnerFacts::default();
        let mut last = None;
        for d in history.deals.values().filter(|d| d.at <= t) {
            last = last.max(Some(d.at));
            if d.outcome == DealOutcome::Open {
                f.open += 1;
                f.open_value += d.value;
            }
            if d.at <= year {
                continue;
            }
            if d.at > recent {
                f.recent_deals += 1;
            } else {
                f.prior_deals += 1;
            }
            match d.outcome {
                DealOutcome::Won => {
                    f.won += 1;
                    f.won_value += d.value;
                }
                DealOutcome::Lost => f.lost += 1,
                DealOutcome::Open => {}
            }
        }
        f.days_since_last_deal = last.map(|at| (t - at) as f64 / SECONDS_PER_DAY as f64);
        f
    }

    pub fn active_deals(&self) -> u32 {
        self.recent_deals + self.prior_deals
    }

    pub fn win_rate(&self) -> Option<f64> {
        let decided = self.won + self.lost;
        (decided > 0).then(|| f64::from(self.won) / f64::from(decided))
    }

    /// The year's won value at the horizon's length.
    pub fn run_rate(&self, horizon_days: u32) -> f64 {
        self.won_value * f64::from(horizon_days) / HISTORY_DAYS as f64
    }

    /// The pace of the year before the last 90 days, in deals per 90 days:
    /// what the last 90 days' count is set against.
    pub fn prior_deals_per_90_days(&self) -> f64 {
        f64::from(self.prior_deals) * RECENT_DAYS as f64 / (HISTORY_DAYS - RECENT_DAYS) as f64
    }

    pub fn features(&self) -> Vec<f64> {
        vec![
            f64::from(self.recent_deals),
            self.prior_deals_per_90_days(),
            self.won_value.ln_1p(),
            self.win_rate().unwrap_or(0.5),
            self.days_since_last_deal.unwrap_or(730.0).min(730.0),
        ]
    }
}

/// One training example: the facts' features, whether the partnership
/// lapsed, the run rate and the value won within the horizon after the cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerRow {
    pub risk: RiskRow,
    pub run_rate: f64,
    pub won_after: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartnerModel {
    pub params: PartnerParams,
    pub logit: RiskLogit,
    /// Actual over predicted won value on the training rows.
    pub value_scale: f64,
    /// Tier edges (Bronze/Silver, Silver/Gold, Gold/Platinum) of expected sourced value.
    pub tier_edges: Vec<f64>,
    pub training_rows: usize,
}

/// A partner's tier by expected sourced value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerTier {
    Platinum,
    Gold,
    Silver,
    Bronze,
    /// No value expected: no deal won in the year, or certain to lapse.
    Dormant,
}

impl PartnerTier {
    pub fn name(self) -> &'static str {
        match self {
            PartnerTier::Platinum => "Platinum",
            PartnerTier::Gold => "Gold",
            PartnerTier::Silver => "Silver",
            PartnerTier::Bronze => "Bronze",
            PartnerTier::Dormant => "Dormant",
        }
    }

    /// 1 (Platinum) to 5 (Dormant).
    pub fn rank(self) -> u32 {
        match self {
            PartnerTier::Platinum => 1,
            PartnerTier::Gold => 2,
            PartnerTier::Silver => 3,
            PartnerTier::Bronze => 4,
            PartnerTier::Dormant => 5,
        }
    }
}

impl PartnerModel {
    /// Fits lapse risk and the value scale on `rows` (holdout rows only
    /// evaluate) and the tier edges on `book` (each partner's facts at the
    /// data's end).
    ///
    /// # Errors
    /// `Training` when the rows are too few or hold one outcome only.
    pub fn fit(
        params: &PartnerParams,
        rows: &[PartnerRow],
        book: &[PartnerFacts],
    ) -> Result<(PartnerModel, Vec<(String, f64)>)> {
        let risk_rows: Vec<RiskRow> = rows.iter().map(|r| r.risk.clone()).collect();
        let (logit, mut metrics) = RiskLogit::fit(&risk_rows, params.l2, "partner.lapse")?;
        let unscaled: Vec<f64> = rows
            .iter()
            .map(|r| (1.0 - logit.probability(&r.risk.features)) * r.run_rate)
            .collect();
        let train = || rows.iter().zip(&unscaled).filter(|(r, _)| !r.risk.holdout);
        let hold = || rows.iter().zip(&unscaled).filter(|(r, _)| r.risk.holdout);
        let predicted: f64 = train().map(|(_, u)| u).sum();
        let actual: f64 = train().map(|(r, _)| r.won_after).sum();
        let value_scale = if predicted > 0.0 {
            actual / predicted
        } else {
            1.0
        };
        let mut model = PartnerModel {
            params: params.clone(),
            logit,
            value_scale,
            tier_edges: Vec::new(),
            training_rows: train().count(),
        };
        let mut values: Vec<f64> = book
            .iter()
            .filter_map(|f| model.sourced_value(f))
            .filter(|v| *v > 0.0)
            .collect();
        if !values.is_empty() {
            model.tier_edges = quantiles(&mut values, &[0.5, 0.8, 0.95]);
        }
        if hold().next().is_some() {
            let actual: Vec<f64> = hold().map(|(r, _)| r.won_after).collect();
            let predicted: Vec<f64> = hold().map(|(_, u)| value_scale * u).collect();
            let run_rate: Vec<f64> = hold().map(|(r, _)| r.run_rate).collect();
            metrics.push((
                "partner.sourced_value.mae".into(),
                m::mae(&predicted, &actual),
            ));
            metrics.push((
                "partner.sourced_value.run_rate_mae".into(),
                m::mae(&run_rate, &actual),
            ));
            metrics.push((
                "partner.sourced_value.mean_actual".into(),
                actual.iter().sum::<f64>() / actual.len() as f64,
            ));
        }
        metrics.push(("partner.sourced_value.scale".into(), value_scale));
        Ok((model, metrics))
    }

    /// The lapse risk, or `None` when the history is too short to tell.
    pub fn lapse_risk(&self, facts: &PartnerFacts) -> Option<f64> {
        (facts.active_deals() >= self.params.min_deals)
            .then(|| self.logit.probability(&facts.features()))
    }

    /// Expected sourced value over the horizon; `None` where the lapse risk is unknown.
    pub fn sourced_value(&self, facts: &PartnerFacts) -> Option<f64> {
        let lapse = self.lapse_risk(facts)?;
        Some(self.value_scale * (1.0 - lapse) * facts.run_rate(self.params.horizon_days))
    }

    pub fn tier(&self, sourced_value: f64) -> PartnerTier {
        if sourced_value <= 0.0 || self.tier_edges.len() < 3 {
            return PartnerTier::Dormant;
        }
        let e = &self.tier_edges;
        if sourced_value >= e[2] {
            PartnerTier::Platinum
        } else if sourced_value >= e[1] {
            PartnerTier::Gold
        } else if sourced_value >= e[0] {
            PartnerTier::Silver
        } else {
            PartnerTier::Bronze
        }
    }

    pub fn contributions(&self, facts: &PartnerFacts) -> Vec<f64> {
        self.logit.contributions(&facts.features())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventBody;

    const DAY: i64 = SECONDS_PER_DAY;

    #[test]
    fn facts_count_deals_by_their_state_at_t() {
        let mut h = KindHistory::default();
        let deal = |id: &str, value, outcome| EventBody::PartnerDeal {
            deal_id: id.into(),
            value,
            outcome,
        };
        h.apply(100 * DAY, &deal("a", 10.0, DealOutcome::Open));
        h.apply(150 * DAY, &deal("a", 12.0, DealOutcome::Won));
        h.apply(300 * DAY, &deal("b", 5.0, DealOutcome::Lost));
        h.apply(380 * DAY, &deal("c", 7.0, DealOutcome::Open));
        let f = PartnerFacts::of(&h, 400 * DAY);
        // c within the last 90 days; a (last changed at day 150) and b before.
        assert_eq!((f.recent_deals, f.prior_deals), (1, 2));
        assert_eq!((f.won, f.lost, f.open), (1, 1, 1));
        assert_eq!(f.won_value, 12.0);
        assert_eq!(f.win_rate(), Some(0.5));
        assert_eq!(f.days_since_last_deal, Some(20.0));
        // Before the win, deal a is not counted as won.
        let early = PartnerFacts::of(&h, 120 * DAY);
        assert_eq!(early.won, 0);
    }

    #[test]
    fn tiers_follow_their_edges() {
        let model = PartnerModel {
            params: PartnerParams::default(),
            logit: RiskLogit {
                scaler: crate::model::Standardizer {
                    mean: vec![0.0; 5],
                    scale: vec![1.0; 5],
                },
                coefficients: vec![0.0; 5],
                intercept: 0.0,
                calibrator: Default::default(),
            },
            value_scale: 1.0,
            tier_edges: vec![10.0, 20.0, 30.0],
            training_rows: 0,
        };
        assert_eq!(model.tier(0.0), PartnerTier::Dormant);
        assert_eq!(model.tier(5.0), PartnerTier::Bronze);
        assert_eq!(model.tier(10.0), PartnerTier::Silver);
        assert_eq!(model.tier(25.0), PartnerTier::Gold);
        assert_eq!(model.tier(30.0), PartnerTier::Platinum);
    }
}
