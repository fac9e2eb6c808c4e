//! The base features of one relationship at one time T, derived from its
//! aggregates: recency, tenure, frequency, spend and its trend, interactions,
//! payments.

use serde::{Deserialize, Serialize};

use crate::domain::Relationship;
use crate::error::{Error, Result};
use crate::features::Aggregates;
use crate::time::{day_of, Timestamp, SECONDS_PER_DAY};

/// The features derived from events. Names are the snake_case of the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseFeature {
    RecencyDays,
    TenureDays,
    Frequency,
    FrequencyPerYear,
    MonetaryAvg,
    SpendTotal,
    Spend90d,
    SpendTrend,
    Occasions90d,
    ProductBreadth,
    OverdueRatio,
    LastGapDays,
    Tickets90d,
    Complaints90d,
    Visits90d,
    SurveyAvg,
    HasSurvey,
    PaymentDaysLateAvg,
    PaymentDaysLate90d,
}

impl BaseFeature {
    pub const ALL: [BaseFeature; 19] = [
        BaseFeature::RecencyDays,
        BaseFeature::TenureDays,
        BaseFeature::Frequency,
        BaseFeature::FrequencyPerYear,
        BaseFeature::MonetaryAvg,
        BaseFeature::SpendTotal,
        BaseFeature::Spend90d,
        BaseFeature::SpendTrend,
        BaseFeature::Occasions90d,
        BaseFeature::ProductBreadth,
        BaseFeature::OverdueRatio,
        BaseFeature::LastGapDays,
        BaseFeature::Tickets90d,
        BaseFeature::Complaints90d,
        BaseFeature::Visits90d,
        BaseFeature::SurveyAvg,
        BaseFeature::HasSurvey,
        BaseFeature::PaymentDaysLateAvg,
        BaseFeature::PaymentDaysLate90d,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BaseFeature::RecencyDays => "recency_days",
            BaseFeature::TenureDays => "tenure_days",
            BaseFeature::Frequency => "frequency",
            BaseFeature::FrequencyPerYear => "frequency_per_year",
            BaseFeature::MonetaryAvg => "monetary_avg",
            BaseFeature::SpendTotal => "spend_total",
            BaseFeature::Spend90d => "spend_90d",
            BaseFeature::SpendTrend => "spend_trend",
            BaseFeature::Occasions90d => "occasions_90d",
            BaseFeature::ProductBreadth => "product_breadth",
            BaseFeature::OverdueRatio => "overdue_ratio",
            BaseFeature::LastGapDays => "last_gap_days",
            BaseFeature::Tickets90d => "tickets_90d",
            BaseFeature::Complaints90d => "complaints_90d",
            BaseFeature::Visits90d => "visits_90d",
            BaseFeature::SurveyAvg => "survey_avg",
            BaseFeature::HasSurvey => "has_survey",
            BaseFeature::PaymentDaysLateAvg => "payment_days_late_avg",
            BaseFeature::PaymentDaysLate90d => "payment_days_late_90d",
        }
    }

    /// # Errors
    /// `InvalidArgument` naming `field` and listing the known names.
    pub fn parse(field: &str, name: &str) -> Result<Self> {
        BaseFeature::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = BaseFeature::ALL.iter().map(|f| f.name()).collect();
                Error::invalid(
                    field,
                    format!("unknown feature {name:?}; known: {}", known.join(", ")),
                )
            })
    }

    /// Heavy-tailed counts, days and money enter the models on a log scale.
    pub(super) fn log_scaled(self) -> bool {
        !matches!(
            self,
            BaseFeature::SpendTrend | BaseFeature::SurveyAvg | BaseFeature::HasSurvey
        )
    }

    /// A short phrase for reason sentences: what a high value means.
    pub fn describe(self) -> &'static str {
        match self {
            BaseFeature::RecencyDays => "days since the last purchase",
            BaseFeature::TenureDays => "length of the relationship",
            BaseFeature::Frequency => "number of purchase occasions",
            BaseFeature::FrequencyPerYear => "purchase occasions per year",
            BaseFeature::MonetaryAvg => "average spend per occasion",
            BaseFeature::SpendTotal => "total spend",
            BaseFeature::Spend90d => "spend in the last 90 days",
            BaseFeature::SpendTrend => "spend trend (last 90 days against the 90 before)",
            BaseFeature::Occasions90d => "purchase occasions in the last 90 days",
            BaseFeature::ProductBreadth => "number of distinct products bought",
            BaseFeature::OverdueRatio => "time since the last purchase against the usual gap",
            BaseFeature::LastGapDays => "gap before the latest purchase",
            BaseFeature::Tickets90d => "support tickets in the last 90 days",
            BaseFeature::Complaints90d => "complaints in the last 90 days",
            BaseFeature::Visits90d => "visits in the last 90 days",
            BaseFeature::SurveyAvg => "average survey score",
            BaseFeature::HasSurvey => "answered a survey",
            BaseFeature::PaymentDaysLateAvg => "average days paid late",
            BaseFeature::PaymentDaysLate90d => "days paid late recently",
        }
    }
}

/// Every base feature of one relationship at one time, in [`BaseFeature::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot([f64; 19]);

impl Snapshot {
    /// Derives the base features as of `t`. `agg` must fold only events at or before `t`.
    pub fn derive(relationship: &Relationship, agg: &Aggregates, t: Timestamp) -> Snapshot {
        let days = |secs: i64| (secs as f64 / SECONDS_PER_DAY as f64).max(0.0);
        let today = day_of(t);
        let tenure = days(
            t - relationship
                .created_at
                .min(agg.first_purchase.unwrap_or(i64::MAX)),
        );
        let recency = agg.last_purchase.map_or(tenure, |last| days(t - last));
        let occasions = f64::from(agg.occasions);
        let per_year = occasions / (tenure.max(30.0) / 365.0);
        let monetary = if agg.occasions > 0 {
            agg.spend_total / occasions
        } else {
            0.0
        };
        let w = agg.windows(today);
        let spend_prev = w.spend_180 - w.spend_90;
        let trend = (w.spend_90 - spend_prev) / (w.spend_90 + spend_prev + 1.0);
        let usual_gap = match (agg.first_purchase, agg.last_purchase) {
            (Some(first), Some(last)) if agg.occasions >= 2 => {
                days(last - first) / (occasions - 1.0)
            }
            _ => 365.0,
        };
        let overdue = (recency / usual_gap.max(1.0)).min(100.0);
        let survey_avg = if agg.surveys > 0 {
            agg.survey_sum / f64::from(agg.surveys)
        } else {
            f64::NAN
        };
        let late_avg = if agg.payments > 0 {
            agg.days_late_sum / f64::from(agg.payments)
        } else {
            0.0
        };
        let late_recent = if w.payments_90 > 0 {
            w.days_late_90 / f64::from(w.payments_90)
        } else {
            0.0
        };
        Snapshot([
            recency,
            tenure,
            occasions,
            per_year,
            monetary,
            agg.spend_total,
            w.spend_90,
            trend,
            f64::from(w.purchase_days_90),
            agg.products.len() as f64,
            overdue,
            agg.last_gap_days,
            w.tickets_90,
            w.complaints_90,
            w.visits_90,
            survey_avg,
            if agg.surveys > 0 { 1.0 } else { 0.0 },
            late_avg,
            late_recent,
        ])
    }

    pub fn get(&self, feature: BaseFeature) -> f64 {
        self.0[feature as usize]
    }
}
