//! The base features of one relationship at one time T, derived from its
//! aggregates: recency, tenure, frequency, spend and its trend, interactions,
//! payments.
//!
//! A feature that needs something the relationship has not done is absent
//! (`NaN`), never zero: a relationship without purchases has no recency and
//! no average spend, one with a single purchase occasion no gap between
//! occasions, one without payments no lateness. The schema gives the models
//! an indicator of each [`Absence`], and reasons say what is missing instead
//! of quoting a number.

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
    pub fn log_scaled(self) -> bool {
        !matches!(
            self,
            BaseFeature::SpendTrend | BaseFeature::SurveyAvg | BaseFeature::HasSurvey
        )
    }

    /// What makes this feature absent, if it can be.
    pub fn absence(self) -> Option<Absence> {
        match self {
            BaseFeature::RecencyDays | BaseFeature::MonetaryAvg | BaseFeature::OverdueRatio => {
                Some(Absence::NoPurchase)
            }
            BaseFeature::LastGapDays => Some(Absence::NoRepeatPurchase),
            BaseFeature::SurveyAvg => Some(Absence::NoSurvey),
            BaseFeature::PaymentDaysLateAvg | BaseFeature::PaymentDaysLate90d => {
                Some(Absence::NoPayment)
            }
            _ => None,
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            BaseFeature::RecencyDays
            | BaseFeature::TenureDays
            | BaseFeature::LastGapDays
            | BaseFeature::PaymentDaysLateAvg
            | BaseFeature::PaymentDaysLate90d => Unit::Days,
            BaseFeature::MonetaryAvg | BaseFeature::SpendTotal | BaseFeature::Spend90d => {
                Unit::Money
            }
            BaseFeature::Frequency | BaseFeature::Occasions90d => {
                Unit::Count("purchase occasion", "purchase occasions")
            }
            BaseFeature::FrequencyPerYear => Unit::PerYear("purchase occasions"),
            BaseFeature::ProductBreadth => Unit::Count("product", "products"),
            BaseFeature::Tickets90d => Unit::Count("ticket", "tickets"),
            BaseFeature::Complaints90d => Unit::Count("complaint", "complaints"),
            BaseFeature::Visits90d => Unit::Count("visit", "visits"),
            BaseFeature::OverdueRatio => Unit::Times,
            BaseFeature::SpendTrend => Unit::Trend,
            BaseFeature::SurveyAvg => Unit::ScoreOutOf10,
            BaseFeature::HasSurvey => Unit::Flag,
        }
    }

    /// The direction common sense expects: +1 when more of it usually means
    /// more churn (silence, complaints, late payment), -1 when less, 0 when
    /// there is no expectation. Reasons say so when a model learned otherwise.
    pub fn expected_direction(self) -> i8 {
        match self {
            BaseFeature::RecencyDays
            | BaseFeature::OverdueRatio
            | BaseFeature::LastGapDays
            | BaseFeature::Tickets90d
            | BaseFeature::Complaints90d
            | BaseFeature::PaymentDaysLateAvg
            | BaseFeature::PaymentDaysLate90d => 1,
            BaseFeature::HasSurvey => 0,
            _ => -1,
        }
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

/// Why a group of base features can be absent: each is one indicator column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Absence {
    /// No purchase yet: recency, average spend and the overdue ratio.
    NoPurchase,
    /// Fewer than two purchase occasions: the gap between them.
    NoRepeatPurchase,
    /// No survey answered: the average score.
    NoSurvey,
    /// No payment recorded: lateness.
    NoPayment,
}

impl Absence {
    /// The indicator column's name.
    pub fn name(self) -> &'static str {
        match self {
            Absence::NoPurchase => "no_purchase_yet",
            Absence::NoRepeatPurchase => "no_repeat_purchase",
            Absence::NoSurvey => "no_survey",
            Absence::NoPayment => "no_payment",
        }
    }

    /// What a reason says when this is the case.
    pub fn describe(self) -> &'static str {
        match self {
            Absence::NoPurchase => "no purchase yet",
            Absence::NoRepeatPurchase => "only one purchase occasion so far",
            Absence::NoSurvey => "no survey answered",
            Absence::NoPayment => "no payment recorded",
        }
    }
}

/// The unit a base feature is counted in, for sentences people read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Days,
    Money,
    /// A count of something, singular and plural.
    Count(&'static str, &'static str),
    /// A rate per year of something, plural.
    PerYear(&'static str),
    /// Times a reference (the overdue ratio).
    Times,
    /// -1 (all spend in the earlier period) to +1 (all in the later).
    Trend,
    /// 0 to 10.
    ScoreOutOf10,
    /// 0 or 1.
    Flag,
}

impl Unit {
    /// The unit's name as `Reason.unit` carries it.
    pub fn name(self, currency: &str) -> String {
        match self {
            Unit::Days => "days".into(),
            Unit::Money => currency.into(),
            Unit::Count(_, plural) => plural.into(),
            Unit::PerYear(plural) => format!("{plural} a year"),
            Unit::Times => "times the usual gap".into(),
            Unit::Trend => "trend from -1 to +1".into(),
            Unit::ScoreOutOf10 => "score out of 10".into(),
            Unit::Flag => "yes or no".into(),
        }
    }
}

/// Every base feature of one relationship at one time, in [`BaseFeature::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot([f64; 19]);

/// The time from which a relationship's current silence is counted: its last
/// purchase, or its start (creation or first purchase, whichever is earlier)
/// when it has none. Churn is `inactivity_days` of this silence.
pub fn silent_since(relationship: &Relationship, agg: &Aggregates) -> Timestamp {
    agg.last_purchase
        .unwrap_or_else(|| start_of(relationship, agg))
}

/// A relationship's start: its creation, or its first purchase if earlier.
pub fn start_of(relationship: &Relationship, agg: &Aggregates) -> Timestamp {
    relationship
        .created_at
        .min(agg.first_purchase.unwrap_or(Timestamp::MAX))
}

impl Snapshot {
    /// Derives the base features as of `t`. `agg` must fold only events at or before `t`.
    pub fn derive(relationship: &Relationship, agg: &Aggregates, t: Timestamp) -> Snapshot {
        let days = |secs: i64| (secs as f64 / SECONDS_PER_DAY as f64).max(0.0);
        let today = day_of(t);
        let tenure = days(t - start_of(relationship, agg));
        let recency = agg.last_purchase.map_or(f64::NAN, |last| days(t - last));
        let occasions = f64::from(agg.occasions);
        let per_year = occasions / (tenure.max(30.0) / 365.0);
        let monetary = if agg.occasions > 0 {
            agg.spend_total / occasions
        } else {
            f64::NAN
        };
        let w = agg.windows(today);
        let spend_prev = w.spend_180 - w.spend_90;
        let trend = (w.spend_90 - spend_prev) / (w.spend_90 + spend_prev + 1.0);
        // With one occasion there is no usual gap yet: a year stands in, so a
        // one-time buyer is overdue after a year rather than never.
        let usual_gap = match (agg.first_purchase, agg.last_purchase) {
            (Some(first), Some(last)) if agg.occasions >= 2 => {
                days(last - first) / (occasions - 1.0)
            }
            _ => 365.0,
        };
        // `min` would turn an absent recency's NaN into 100.
        let overdue = if recency.is_finite() {
            (recency / usual_gap.max(1.0)).min(100.0)
        } else {
            f64::NAN
        };
        let last_gap = if agg.occasions >= 2 {
            agg.last_gap_days
        } else {
            f64::NAN
        };
        let survey_avg = if agg.surveys > 0 {
            agg.survey_sum / f64::from(agg.surveys)
        } else {
            f64::NAN
        };
        let late_avg = if agg.payments > 0 {
            agg.days_late_sum / f64::from(agg.payments)
        } else {
            f64::NAN
        };
        // No payment in the window after earlier ones: the overall average
        // is the best account of how it pays now.
        let late_recent = if w.payments_90 > 0 {
            w.days_late_90 / f64::from(w.payments_90)
        } else {
            late_avg
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
            last_gap,
            w.tickets_90,
            w.complaints_90,
            w.visits_90,
            survey_avg,
            if agg.surveys > 0 { 1.0 } else { 0.0 },
            late_avg,
            late_recent,
        ])
    }

    /// The feature's value; `NaN` when absent (see [`BaseFeature::absence`]).
    pub fn get(&self, feature: BaseFeature) -> f64 {
        self.0[feature as usize]
    }

    /// The value, `None` when absent.
    pub fn value(&self, feature: BaseFeature) -> Option<f64> {
        Some(self.get(feature)).filter(|v| v.is_finite())
    }

    /// Whether the relationship had made a purchase by the snapshot's time.
    pub fn has_purchased(&self) -> bool {
        self.get(BaseFeature::Frequency) > 0.0
    }

    /// Whether the features `absence` covers are absent.
    pub fn is_absent(&self, absence: Absence) -> bool {
        match absence {
            Absence::NoPurchase => !self.has_purchased(),
            Absence::NoRepeatPurchase => self.get(BaseFeature::Frequency) < 2.0,
            Absence::NoSurvey => self.get(BaseFeature::SurveyAvg).is_nan(),
            Absence::NoPayment => self.get(BaseFeature::PaymentDaysLateAvg).is_nan(),
        }
    }
}
