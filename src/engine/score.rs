//! Score: how likely a relationship is to end within the horizon and when,
//! what it is worth, how much of that is at risk, how healthy it is, and why.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::features::{BaseFeature, Column, Unit};
use crate::model::{expected_days_to_churn, ModelRouter};
use crate::numbers::{capitalize, fmt_num, thousands};
use crate::time::Timestamp;

use super::account::AccountView;
use super::evaluate::{Contributions, Evaluated};
use super::partner::PartnerView;
use super::policy::{HealthWeights, Policy};
use super::supplier::SupplierView;
use super::{check_batch_size, Engine, MAX_REASONS};

#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub feature: String,
    /// The relationship's value of the feature; `NaN` where it is absent
    /// (the explanation then says what is missing).
    pub value: f64,
    /// What `value` counts: "days", the currency, "tickets", "score out of 10", ...
    pub unit: String,
    pub contribution: f64,
    pub raises_churn: bool,
    pub explanation: String,
}

impl Reason {
    /// One input of a kind-specific risk model (supply, credit, lapse): its
    /// contribution to the risk's log-odds and a sentence saying whether it
    /// raises or lowers `risk`.
    pub(crate) fn of_risk(
        feature: &str,
        unit: &str,
        value: f64,
        contribution: f64,
        what: &str,
        risk: &str,
    ) -> Reason {
        Reason {
            feature: feature.to_string(),
            value,
            unit: unit.to_string(),
            contribution,
            raises_churn: contribution > 0.0,
            explanation: format!(
                "{}: {} {risk}",
                capitalize(what),
                if contribution > 0.0 {
                    "raises"
                } else {
                    "lowers"
                }
            ),
        }
    }

    /// The `max` reasons of largest contribution, largest first.
    pub(crate) fn largest(mut reasons: Vec<Reason>, max: usize) -> Vec<Reason> {
        reasons.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        reasons.truncate(max);
        reasons
    }
}

/// The health score and the components it combines, each 0 (bad) to 1
/// (good); a component is `None` where the relationship has no data for it.
/// The score index stores it as it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub score: u32,
    /// 1 - the churn probability.
    pub retention: f64,
    /// Recent purchase occasions and visits against the relationship's own usual pace.
    pub engagement: Option<f64>,
    /// Survey scores, less for recent complaints.
    pub satisfaction: Option<f64>,
    /// Paying on time.
    pub payment: Option<f64>,
    /// Spend in the last 90 days against the 90 before.
    pub value_trend: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    pub relationship_id: String,
    /// The curve at `churn_horizon_days` (a table's label probability).
    pub churn_probability: f64,
    /// `None` for a table model (its label has no horizon).
    pub churn_horizon_days: Option<u32>,
    /// The days without a purchase that make churn; `None` for a table model.
    pub inactivity_days: Option<u32>,
    /// Already churned at `as_of`.
    pub churned: bool,
    pub churn_by_horizon: Vec<(u32, f64)>,
    pub expected_days_to_churn: Option<f64>,
    pub expected_value: Option<f64>,
    pub value_horizon_days: Option<u32>,
    pub value_at_risk: Option<f64>,
    pub health: Health,
    pub reasons: Vec<Reason>,
    pub model_version: u64,
    pub as_of: Timestamp,
    /// For a supplier: supply risk, dependency and value.
    pub supplier: Option<SupplierView>,
    /// For an account: payments against terms and credit risk.
    pub account: Option<AccountView>,
    /// For a partner: sourced value, lapse risk and tier.
    pub partner: Option<PartnerView>,
    /// `default`, or the kind whose own model answered.
    pub model_slot: &'static str,
}

impl Engine {
    /// # Errors
    /// `NotFound` for an unknown id, `InvalidArgument` for a bad as-of time or
    /// reason count, `FailedPrecondition` without a model.
    pub fn score(
        &self,
        id: &str,
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<ScoreOutput> {
        let models = self.models();
        if as_of.is_some() {
            return self.score_with(&models, id, as_of, max_reasons);
        }
        let n = reason_count(max_reasons)?;
        let score = self.answer_now(
            &models,
            id,
            contributions_for(n),
            |a| {
                a.score
                    .as_ref()
                    .filter(|(k, _)| *k == n)
                    .map(|(_, s)| Arc::clone(s))
            },
            |e| Ok(self.score_of(e, n as usize)),
            |a, s| a.score = Some((n, s)),
        )?;
        Ok(Arc::unwrap_or_clone(score))
    }

    /// Scores many ids with one set of models (so a swap mid-batch cannot mix versions).
    ///
    /// # Errors
    /// As [`Engine::score`]; the first unknown id fails the batch.
    pub fn score_many(
        &self,
        ids: &[String],
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<Vec<ScoreOutput>> {
        check_batch_size("relationship_ids", ids.len())?;
        let models = self.models();
        // Sized up front: a collect through `Result` grows the vector from
        // empty, copying every score it has so far at each growth.
        let mut scores = Vec::with_capacity(ids.len());
        for id in ids {
            scores.push(self.score_with(&models, id, as_of, max_reasons)?);
        }
        Ok(scores)
    }

    /// [`Engine::score_many`] that leaves out unknown ids and returns them,
    /// in request order, beside the scores of the others.
    ///
    /// # Errors
    /// As [`Engine::score`], except `NotFound`.
    pub fn score_many_known(
        &self,
        ids: &[String],
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<(Vec<ScoreOutput>, Vec<String>)> {
        check_batch_size("relationship_ids", ids.len())?;
        let models = self.models();
        super::known(ids, |id| self.score_with(&models, id, as_of, max_reasons))
    }

    fn score_with(
        &self,
        models: &ModelRouter,
        id: &str,
        as_of: Option<Timestamp>,
        max_reasons: u32,
    ) -> Result<ScoreOutput> {
        let n = reason_count(max_reasons)?;
        let e = self.evaluate(models, id, as_of, contributions_for(n))?;
        Ok(self.score_of(&e, n as usize))
    }

    /// The score of an evaluated relationship with `n` reasons (none for 0).
    pub(super) fn score_of(&self, e: &Evaluated, n: usize) -> ScoreOutput {
        let model = e.model;
        let churn = &model.bundle.churn;
        let reasons = if n == 0 {
            Vec::new()
        } else {
            reasons(e, self.policy(), n)
        };
        let curve = e.curve.points.clone();
        ScoreOutput {
            relationship_id: e.data.relationship.id.clone(),
            churn_probability: e.churn,
            churn_horizon_days: churn.horizon_days(),
            inactivity_days: churn.inactivity_days(),
            churned: e.churned,
            expected_days_to_churn: (!curve.is_empty()).then(|| expected_days_to_churn(&curve)),
            churn_by_horizon: curve,
            expected_value: e.value,
            value_horizon_days: model.bundle.value.as_ref().map(|v| v.horizon_days),
            value_at_risk: e.value.map(|v| e.churn * v),
            health: health(e, &self.policy().health),
            reasons,
            model_version: model.version(),
            as_of: e.as_of,
            supplier: SupplierView::of(e, n),
            account: AccountView::of(e, n),
            partner: PartnerView::of(e, n),
            model_slot: e.model_slot(),
        }
    }
}

/// The reasons a request asks for: 3 when it says 0.
///
/// # Errors
/// `InvalidArgument` above [`MAX_REASONS`].
/// Whether `n` reasons need the churn contributions.
fn contributions_for(n: u32) -> Contributions {
    if n == 0 {
        Contributions::Skipped
    } else {
        Contributions::Wanted
    }
}

fn reason_count(max_reasons: u32) -> Result<u32> {
    if max_reasons > MAX_REASONS {
        return Err(Error::invalid(
            "max_reasons",
            format!("{max_reasons} is more than {MAX_REASONS}"),
        ));
    }
    Ok(if max_reasons == 0 { 3 } else { max_reasons })
}

/// The health score: `100 ×` the weighted mean of the components the
/// relationship has data for, with the weights of `models/policy.toml`
/// `[health]`. Retention (`1 - churn`) always counts with a positive weight,
/// so with the other components fixed, health falls as churn rises.
fn health(e: &Evaluated, w: &HealthWeights) -> Health {
    let s = &e.snapshot;
    let retention = (1.0 - e.churn).clamp(0.0, 1.0);
    let tenure = s.get(BaseFeature::TenureDays).max(1.0);
    let agg = &e.data.aggregates;
    // Engagement: activity in the last 90 days against the relationship's
    // own average pace per 90 days; 0.5 keeps pace, 1 is far ahead of it.
    let recent = s.get(BaseFeature::Occasions90d) + s.get(BaseFeature::Visits90d);
    let usual = (f64::from(agg.occasions) + f64::from(agg.visits)) / tenure.max(90.0) * 90.0;
    let engagement = (recent + usual > 0.0).then(|| recent / (recent + usual));
    // Satisfaction: the average survey score out of 10 (0.7 without one),
    // a quarter less for each complaint in the last 90 days.
    let complaints = s.get(BaseFeature::Complaints90d);
    let survey = s.value(BaseFeature::SurveyAvg);
    let satisfaction = (survey.is_some() || agg.complaints > 0)
        .then(|| survey.map_or(0.7, |v| v / 10.0) * 0.75f64.powf(complaints));
    // Payment: 1 on time, 0.5 at 15 days late on average.
    let payment = s
        .value(BaseFeature::PaymentDaysLate90d)
        .map(|late| 1.0 / (1.0 + late.max(0.0) / 15.0));
    // Value trend: spend in the last 90 days against the 90 before, from
    // 0 (all before) through 0.5 (steady) to 1 (all recent).
    let value_trend = (s.has_purchased()
        && (s.get(BaseFeature::Spend90d) > 0.0
            || agg
                .last_purchase
                .is_some_and(|t| e.as_of - t < 180 * 86_400)))
    .then(|| (s.get(BaseFeature::SpendTrend) + 1.0) / 2.0);
    let parts = [
        (Some(retention), w.retention),
        (engagement, w.engagement),
        (satisfaction, w.satisfaction),
        (payment, w.payment),
        (value_trend, w.value_trend),
    ];
    let (sum, weight) = parts
        .iter()
        .filter_map(|(v, w)| v.map(|v| (v * w, *w)))
        .fold((0.0, 0.0), |(s, t), (v, w)| (s + v, t + w));
    let score = if weight > 0.0 {
        sum / weight
    } else {
        retention
    };
    Health {
        score: (score * 100.0).round().clamp(0.0, 100.0) as u32,
        retention,
        engagement,
        satisfaction,
        payment,
        value_trend,
    }
}

/// The reasons behind the churn probability, largest contribution first.
///
/// Every number carries its unit; a value equal to the typical one (as
/// written) is called typical, never above or below itself; an absent
/// feature is named for what is missing ("no purchase yet"), and its filled
/// stand-in adds its contribution to that; where a model's effect runs
/// against what common sense expects, the sentence says so.
fn reasons(e: &Evaluated, policy: &Policy, n: usize) -> Vec<Reason> {
    if e.churned {
        return vec![churned_reason(e)];
    }
    let model = e.model;
    let bundle = &model.bundle;
    let columns = &bundle.schema.columns;
    if e.contributions.len() != columns.len() {
        debug_assert!(
            false,
            "reasons asked of an evaluation without contributions"
        );
        return Vec::new();
    }
    // An absent base feature's stand-in speaks through its absence column.
    let mut contributions = e.contributions.clone();
    for (i, c) in columns.iter().enumerate() {
        if let Column::Base { feature, .. } = c {
            if e.raw[i].is_nan() {
                if let Some(j) = feature
                    .absence()
                    .and_then(|a| columns.iter().position(|c| *c == Column::Absent(a)))
                {
                    contributions[j] += contributions[i];
                }
                contributions[i] = 0.0;
            }
        }
    }
    let mut scored: Vec<(usize, f64)> = Vec::with_capacity(contributions.len());
    scored.extend(contributions.iter().copied().enumerate().filter(|&(i, c)| {
        c != 0.0
            && match &columns[i] {
                // An indicator speaks for the relationship only where it is set.
                Column::Kind(_)
                | Column::Category { .. }
                | Column::OtherCategory { .. }
                | Column::Missing { .. }
                | Column::Absent(_) => e.raw[i] == 1.0,
                _ => true,
            }
    }));
    let by_size = |a: &(usize, f64), b: &(usize, f64)| b.1.abs().total_cmp(&a.1.abs());
    if scored.len() > n && n > 0 {
        scored.select_nth_unstable_by(n - 1, by_size);
        scored.truncate(n);
    }
    scored.sort_by(by_size);
    scored.truncate(n);
    scored
        .into_iter()
        .map(|(i, contribution)| reason(e, policy, i, contribution))
        .collect()
}

fn reason(e: &Evaluated, policy: &Policy, i: usize, contribution: f64) -> Reason {
    let model = e.model;
    let column = &model.bundle.schema.columns[i];
    let raises = contribution > 0.0;
    let effect = if raises { "raises" } else { "lowers" };
    let value = e.raw[i];
    let mut text = String::with_capacity(128);
    let unit;
    // Writing to a String cannot fail.
    let _ = match column {
        Column::Base { feature, .. } if feature.unit() == Unit::Flag => {
            unit = Unit::Flag.name(&policy.currency);
            let share = model.bundle.churn.scaler.mean[i].clamp(0.0, 1.0);
            write!(
                text,
                "{}: {} (as for {:.0}% of relationships), which {effect} the churn risk",
                capitalize(feature.describe()),
                amount(Unit::Flag, value, &policy.currency),
                if value >= 0.5 { share } else { 1.0 - share } * 100.0
            )
        }
        Column::Base { feature, .. } => {
            let u = feature.unit();
            unit = u.name(&policy.currency);
            let typical = typical_raw(column, model.bundle.churn.scaler.mean[i]);
            let (shown, typical_shown) = (
                amount(u, value, &policy.currency),
                amount(u, typical, &policy.currency),
            );
            let side = if shown == typical_shown {
                "about the typical".to_string()
            } else if value > typical {
                format!("above the typical {typical_shown}")
            } else {
                format!("below the typical {typical_shown}")
            };
            let _ = write!(text, "{}: {shown}, {side}", capitalize(feature.describe()));
            let expected = feature.expected_direction();
            let high = value > typical;
            // The usual direction is "high value raises churn" when expected > 0;
            // a model that learned the opposite is said to have done so.
            let counter_intuitive =
                expected != 0 && shown != typical_shown && ((expected > 0) == high) != raises;
            if counter_intuitive {
                write!(
                    text,
                    "; in this model that goes with a {} churn risk for relationships like this one (a pattern in the data, not a rule)",
                    if raises { "higher" } else { "lower" }
                )
            } else {
                write!(text, ", which {effect} the churn risk")
            }
        }
        Column::Absent(absence) => {
            unit = "yes or no".into();
            write!(
                text,
                "{}, which {effect} the churn risk",
                capitalize(absence.describe())
            )
        }
        Column::Numeric { attribute, .. } => {
            unit = format!("{attribute} as recorded");
            let typical = model.bundle.churn.scaler.mean[i];
            let (shown, typical_shown) = (fmt_num(value).to_string(), fmt_num(typical).to_string());
            if shown == typical_shown {
                write!(text, "{attribute} is {shown}, about the typical value, which {effect} the churn risk")
            } else {
                write!(text, "{attribute} is {shown} (typical {typical_shown}), which {effect} the churn risk")
            }
        }
        Column::Kind(k) => {
            unit = "yes or no".into();
            write!(text, "Being a {} {effect} the churn risk", k.as_str())
        }
        Column::Category { attribute, value } => {
            unit = "yes or no".into();
            write!(
                text,
                "{attribute} is {value:?}, which {effect} the churn risk"
            )
        }
        Column::OtherCategory { attribute } => {
            unit = "yes or no".into();
            write!(
                text,
                "{attribute} has an uncommon value, which {effect} the churn risk"
            )
        }
        Column::Missing { attribute } => {
            unit = "yes or no".into();
            write!(
                text,
                "{attribute} is unknown, which {effect} the churn risk"
            )
        }
    };
    Reason {
        feature: model.column_names[i].clone(),
        value,
        unit,
        contribution,
        raises_churn: raises,
        explanation: text,
    }
}

/// The one reason of a relationship that has already churned.
fn churned_reason(e: &Evaluated) -> Reason {
    let inactivity = e.model.bundle.churn.inactivity_days().unwrap_or(0);
    let (feature, since) = if e.snapshot.has_purchased() {
        ("recency_days", "since its last purchase")
    } else {
        ("tenure_days", "since it started, without a purchase")
    };
    Reason {
        feature: feature.into(),
        value: e.silent_days,
        unit: "days".into(),
        contribution: 0.0,
        raises_churn: true,
        explanation: format!(
            "{} days {since}: past the {inactivity} days without a purchase that make churn, so it has churned",
            fmt_num(e.silent_days.floor())
        ),
    }
}

/// A number with its unit, as a sentence writes it.
fn amount(unit: Unit, v: f64, currency: &str) -> String {
    match unit {
        Unit::Days if v.abs() >= 1.0 => format!("{} days", thousands(v.abs().round() as u64)),
        Unit::Days => format!("{} days", fmt_num(v)),
        Unit::Money if v.abs() >= 1_000.0 => {
            format!(
                "{}{} {currency}",
                if v < 0.0 { "-" } else { "" },
                thousands(v.abs().round() as u64)
            )
        }
        Unit::Money => format!("{} {currency}", fmt_num(v)),
        Unit::Count(one, many) => {
            let shown = if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                fmt_num(v).to_string()
            };
            format!("{shown} {}", if shown == "1" { one } else { many })
        }
        Unit::PerYear(many) => format!("{} {many} a year", fmt_num(v)),
        Unit::Times => format!("{} times the usual gap", fmt_num(v)),
        Unit::Trend => format!("{} on a scale from -1 (falling) to +1 (rising)", fmt_num(v)),
        Unit::ScoreOutOf10 => format!("{} out of 10", fmt_num(v)),
        Unit::Flag => (if v >= 0.5 { "yes" } else { "no" }).to_string(),
    }
}

/// The raw value whose model-scale value is the training mean: a typical value.
fn typical_raw(column: &Column, model_scale_mean: f64) -> f64 {
    match column {
        Column::Base { feature, .. } if feature.log_scaled() => {
            model_scale_mean.signum() * model_scale_mean.abs().exp_m1()
        }
        _ => model_scale_mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_carry_their_units() {
        assert_eq!(amount(Unit::Days, 12.4, "USD"), "12 days");
        assert_eq!(amount(Unit::Days, 0.25, "USD"), "0.25 days");
        assert_eq!(amount(Unit::Money, 1234.4, "USD"), "1,234 USD");
        assert_eq!(amount(Unit::Money, 12.5, "EUR"), "12.5 EUR");
        assert_eq!(
            amount(Unit::Count("ticket", "tickets"), 1.0, ""),
            "1 ticket"
        );
        assert_eq!(
            amount(Unit::Count("ticket", "tickets"), 3.0, ""),
            "3 tickets"
        );
        assert_eq!(
            amount(Unit::Count("ticket", "tickets"), 0.34, ""),
            "0.34 tickets"
        );
        assert_eq!(amount(Unit::ScoreOutOf10, 7.81, ""), "7.81 out of 10");
        assert_eq!(amount(Unit::Flag, 1.0, ""), "yes");
    }
}
