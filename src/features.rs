//! Features: what the models see of a relationship as of a time T.
//!
//! Two pieces, used the same way at ingest, training, serving and backtest, so
//! there is no train/serve skew:
//! - [`Aggregates`]: a fold over a relationship's events. The store keeps it up
//!   to date event by event; training and as-of scoring rebuild it from the
//!   events up to T with the same [`Aggregates::apply`].
//! - [`FeatureSchema`]: the ordered feature columns a model was trained on
//!   (base features, kind, attributes one-hot with the vocabulary learned at
//!   training), which turns (relationship, aggregates, T) into a vector.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::{
    day_of, AttributeValue, Event, EventBody, InteractionKind, Relationship, RelationshipKind,
    Timestamp, SECONDS_PER_DAY,
};
use crate::error::{Error, Result};

/// Length of the "recent" windows (spend, tickets, visits...).
pub const WINDOW_DAYS: i32 = 90;
/// How far behind its newest event an aggregate keeps per-event detail.
const RECENT_KEEP_DAYS: i32 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum RecentKind {
    Purchase,
    Ticket,
    Complaint,
    Visit,
    Survey,
    Payment,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Recent {
    day: i32,
    kind: RecentKind,
    value: f32,
}

/// Running totals over a relationship's events, plus the last ~400 days of
/// per-event detail for windowed features.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    pub event_count: u64,
    pub first_purchase: Option<Timestamp>,
    pub last_purchase: Option<Timestamp>,
    /// Distinct purchase days: same-day purchases are one occasion.
    pub occasions: u32,
    pub spend_total: f64,
    pub items_total: u64,
    /// Days between the latest purchase occasion and the one before it.
    pub last_gap_days: f64,
    /// Product id → number of purchases that included it.
    pub products: BTreeMap<String, u32>,
    pub tickets: u32,
    pub complaints: u32,
    pub visits: u32,
    pub surveys: u32,
    pub survey_sum: f64,
    pub payments: u32,
    pub days_late_sum: f64,
    pub last_event: Option<Timestamp>,
    recent: Vec<Recent>,
}

impl Aggregates {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut agg = Aggregates::default();
        for e in events {
            agg.apply(e);
        }
        agg
    }

    /// Folds one event in. Order-insensitive for totals; events older than the
    /// detail window only count in the totals.
    pub fn apply(&mut self, event: &Event) {
        let day = day_of(event.at);
        self.event_count += 1;
        self.last_event = Some(self.last_event.map_or(event.at, |t| t.max(event.at)));
        let (kind, value) = match &event.body {
            EventBody::Purchase {
                amount,
                product_ids,
                quantity,
            } => {
                let same_day = self.last_purchase.is_some_and(|t| day_of(t) == day)
                    || self
                        .recent
                        .iter()
                        .any(|r| r.day == day && r.kind == RecentKind::Purchase);
                if !same_day {
                    self.occasions += 1;
                    if let Some(last) = self.last_purchase.filter(|t| event.at > *t) {
                        self.last_gap_days = (day - day_of(last)) as f64;
                    }
                }
                self.first_purchase =
                    Some(self.first_purchase.map_or(event.at, |t| t.min(event.at)));
                self.last_purchase = Some(self.last_purchase.map_or(event.at, |t| t.max(event.at)));
                self.spend_total += amount;
                self.items_total += u64::from((*quantity).max(1));
                for p in product_ids {
                    *self.products.entry(p.clone()).or_default() += 1;
                }
                (RecentKind::Purchase, *amount)
            }
            EventBody::Interaction { kind, survey_score } => match kind {
                InteractionKind::SupportTicket => {
                    self.tickets += 1;
                    (RecentKind::Ticket, 1.0)
                }
                InteractionKind::Complaint => {
                    self.complaints += 1;
                    (RecentKind::Complaint, 1.0)
                }
                InteractionKind::Visit => {
                    self.visits += 1;
                    (RecentKind::Visit, 1.0)
                }
                InteractionKind::Survey => {
                    let score = survey_score.unwrap_or(0.0);
                    self.surveys += 1;
                    self.survey_sum += score;
                    (RecentKind::Survey, score)
                }
            },
            EventBody::Payment { days_late, .. } => {
                self.payments += 1;
                self.days_late_sum += days_late;
                (RecentKind::Payment, *days_late)
            }
        };
        let newest = self.last_event.map_or(day, day_of);
        if day > newest - RECENT_KEEP_DAYS {
            let at = self.recent.partition_point(|r| r.day <= day);
            // Windows only need a day's total of a kind, so a busy relationship's
            // detail grows with its active days, not its events; that keeps the
            // value the writer rewrites per event small. Payments stay one entry
            // each: their recent feature is an average.
            let same = (kind != RecentKind::Payment)
                .then(|| {
                    self.recent[..at]
                        .iter()
                        .rev()
                        .take_while(|r| r.day == day)
                        .position(|r| r.kind == kind)
                        .map(|back| at - 1 - back)
                })
                .flatten();
            match same {
                Some(i) => self.recent[i].value += value as f32,
                None => self.recent.insert(
                    at,
                    Recent {
                        day,
                        kind,
                        value: value as f32,
                    },
                ),
            }
            let cut = self
                .recent
                .partition_point(|r| r.day <= newest - RECENT_KEEP_DAYS);
            self.recent.drain(..cut);
        }
    }

    /// About how much memory this takes, for caches that keep many.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Aggregates>()
            + self.recent.capacity() * std::mem::size_of::<Recent>()
            + self
                .products
                .keys()
                .map(|p| p.capacity() + 3 * std::mem::size_of::<usize>() + 8)
                .sum::<usize>()
    }

    pub fn owns(&self, product_id: &str) -> bool {
        self.products.contains_key(product_id)
    }

    /// The windowed sums as of day `to`, in one pass over the detail.
    fn windows(&self, to: i32) -> Windows {
        let mut w = Windows::default();
        let mut last_purchase_day = None;
        for r in self.recent.iter().rev() {
            if r.day > to {
                continue;
            }
            let age = to - r.day;
            if age >= 2 * WINDOW_DAYS {
                break;
            }
            let value = f64::from(r.value);
            if r.kind == RecentKind::Purchase {
                w.spend_180 += value;
            }
            if age >= WINDOW_DAYS {
                continue;
            }
            match r.kind {
                RecentKind::Purchase => {
                    w.spend_90 += value;
                    if last_purchase_day != Some(r.day) {
                        w.purchase_days_90 += 1;
                        last_purchase_day = Some(r.day);
                    }
                }
                // Merged entries hold the day's count in `value` (see `apply`).
                RecentKind::Ticket => w.tickets_90 += value,
                RecentKind::Complaint => w.complaints_90 += value,
                RecentKind::Visit => w.visits_90 += value,
                RecentKind::Survey => {}
                RecentKind::Payment => {
                    w.days_late_90 += value;
                    w.payments_90 += 1;
                }
            }
        }
        w
    }
}

/// Sums over the detail window, as of one day.
#[derive(Debug, Default)]
struct Windows {
    spend_90: f64,
    spend_180: f64,
    purchase_days_90: u32,
    tickets_90: f64,
    complaints_90: f64,
    visits_90: f64,
    days_late_90: f64,
    payments_90: u32,
}

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
    fn log_scaled(self) -> bool {
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

/// One column of a model's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Column {
    Base {
        feature: BaseFeature,
        fill: f64,
    },
    Kind(RelationshipKind),
    /// A numeric attribute; `fill` (the training mean) stands in when it is absent.
    Numeric {
        attribute: String,
        fill: f64,
    },
    /// 1 when the attribute is absent.
    Missing {
        attribute: String,
    },
    /// One-hot of a categorical attribute's value.
    Category {
        attribute: String,
        value: String,
    },
    /// 1 when a categorical attribute has a value outside the learned vocabulary.
    OtherCategory {
        attribute: String,
    },
}

impl Column {
    pub fn name(&self) -> String {
        match self {
            Column::Base { feature, .. } => feature.name().to_string(),
            Column::Kind(k) => format!("kind={}", k.as_str()),
            Column::Numeric { attribute, .. } => attribute.clone(),
            Column::Missing { attribute } => format!("{attribute}_missing"),
            Column::Category { attribute, value } => format!("{attribute}={value}"),
            Column::OtherCategory { attribute } => format!("{attribute}=other"),
        }
    }
}

/// Which attributes become features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttributeSelection {
    /// Every attribute seen at training, typed by its values.
    Auto,
    Named(Vec<String>),
}

/// The feature part of a model spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub base: Vec<BaseFeature>,
    pub kind: bool,
    pub attributes: AttributeSelection,
    /// Categorical attributes keep their most frequent values; the rest are "other".
    pub max_categories: usize,
    /// Attribute names never used, e.g. ids and labels.
    pub drop: Vec<String>,
}

/// The ordered columns a model was trained on, learned from the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub columns: Vec<Column>,
}

impl FeatureSchema {
    /// Learns columns from training rows: attribute types, fills and vocabularies.
    /// `snapshots` gives base-feature means for imputing (e.g. no survey yet).
    ///
    /// # Errors
    /// `InvalidArgument` when a named attribute never occurs, `Training` when no column is left.
    pub fn learn<'a>(
        spec: &FeatureSpec,
        relationships: impl Iterator<Item = &'a Relationship> + Clone,
        snapshots: &[Snapshot],
    ) -> Result<FeatureSchema> {
        let mut columns = Vec::new();
        for &feature in &spec.base {
            let (sum, n) = snapshots
                .iter()
                .map(|s| s.get(feature))
                .filter(|v| v.is_finite())
                .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            let fill = if n > 0 { sum / n as f64 } else { 0.0 };
            columns.push(Column::Base { feature, fill });
        }
        let mut rows = 0usize;
        let mut kinds = BTreeSet::new();
        let mut numbers: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        let mut texts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
        for r in relationships.clone() {
            rows += 1;
            kinds.insert(r.kind);
            for (name, value) in &r.attributes {
                match value {
                    AttributeValue::Number(v) => {
                        let e = numbers.entry(name).or_default();
                        e.0 += v;
                        e.1 += 1;
                    }
                    AttributeValue::Text(t) => {
                        *texts.entry(name).or_default().entry(t).or_default() += 1
                    }
                }
            }
        }
        if spec.kind && kinds.len() > 1 {
            columns.extend(kinds.iter().map(|k| Column::Kind(*k)));
        }
        let names: Vec<String> = match &spec.attributes {
            AttributeSelection::Auto => {
                let all: BTreeSet<&str> = numbers.keys().chain(texts.keys()).copied().collect();
                all.into_iter().map(str::to_string).collect()
            }
            AttributeSelection::Named(names) => {
                for n in names {
                    if !numbers.contains_key(n.as_str()) && !texts.contains_key(n.as_str()) {
                        return Err(Error::invalid(
                            "features.attributes",
                            format!("attribute {n:?} never occurs in the training data"),
                        ));
                    }
                }
                names.clone()
            }
        };
        for name in names.iter().filter(|n| !spec.drop.contains(n)) {
            if let Some(values) = texts.get(name.as_str()) {
                // Text wins over numbers: a column with any text is categorical.
                let mut by_count: Vec<(&str, usize)> =
                    values.iter().map(|(v, c)| (*v, *c)).collect();
                by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                if by_count.len() < 2 {
                    continue;
                }
                let keep = spec.max_categories.max(1).min(by_count.len());
                for (value, _) in &by_count[..keep] {
                    columns.push(Column::Category {
                        attribute: name.clone(),
                        value: value.to_string(),
                    });
                }
                if keep < by_count.len() {
                    columns.push(Column::OtherCategory {
                        attribute: name.clone(),
                    });
                }
            } else if let Some((sum, n)) = numbers.get(name.as_str()) {
                columns.push(Column::Numeric {
                    attribute: name.clone(),
                    fill: sum / *n as f64,
                });
                if *n < rows {
                    columns.push(Column::Missing {
                        attribute: name.clone(),
                    });
                }
            }
        }
        if columns.is_empty() {
            return Err(Error::training("the spec leaves no feature column"));
        }
        Ok(FeatureSchema { columns })
    }

    pub fn width(&self) -> usize {
        self.columns.len()
    }

    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(Column::name).collect()
    }

    /// Whether any column needs events (otherwise aggregates can be skipped).
    pub fn uses_events(&self) -> bool {
        self.columns
            .iter()
            .any(|c| matches!(c, Column::Base { .. }))
    }

    /// Human-readable values, one per column, as reasons and GetRelationship show them.
    pub fn raw_values(&self, relationship: &Relationship, snapshot: &Snapshot, out: &mut Vec<f64>) {
        out.clear();
        // `learn` puts an attribute's columns side by side, its categories
        // before their "other": look the attribute up once for all of them
        // and remember whether one of its categories matched.
        let mut current: Option<(&str, Option<&AttributeValue>)> = None;
        let mut category_matched = false;
        for c in &self.columns {
            let v = match c {
                Column::Base { feature, fill } => {
                    let v = snapshot.get(*feature);
                    if v.is_finite() {
                        v
                    } else {
                        *fill
                    }
                }
                Column::Kind(k) => indicator(relationship.kind == *k),
                Column::Numeric { attribute, fill } => {
                    match attribute_value(
                        relationship,
                        attribute,
                        &mut current,
                        &mut category_matched,
                    ) {
                        Some(AttributeValue::Number(v)) if v.is_finite() => *v,
                        _ => *fill,
                    }
                }
                Column::Missing { attribute } => indicator(!matches!(
                    attribute_value(relationship, attribute, &mut current, &mut category_matched),
                    Some(AttributeValue::Number(v)) if v.is_finite()
                )),
                Column::Category { attribute, value } => {
                    let hit = matches!(
                        attribute_value(relationship, attribute, &mut current, &mut category_matched),
                        Some(AttributeValue::Text(t)) if t == value
                    );
                    category_matched |= hit;
                    indicator(hit)
                }
                Column::OtherCategory { attribute } => {
                    let follows_its_categories = current.is_some_and(|(a, _)| a == attribute);
                    match attribute_value(relationship, attribute, &mut current, &mut category_matched) {
                        Some(AttributeValue::Text(_)) if follows_its_categories => {
                            indicator(!category_matched)
                        }
                        Some(AttributeValue::Text(t)) => indicator(!self.columns.iter().any(|c| {
                            matches!(c, Column::Category { attribute: a, value } if a == attribute && value == t)
                        })),
                        _ => 0.0,
                    }
                }
            };
            out.push(v);
        }
    }

    /// Maps raw values to what the models see (log scale for heavy tails), in place.
    pub fn to_model_scale(&self, values: &mut [f64]) {
        for (v, c) in values.iter_mut().zip(&self.columns) {
            if let Column::Base { feature, .. } = c {
                if feature.log_scaled() {
                    *v = v.signum() * v.abs().ln_1p();
                }
            }
        }
    }
}

/// `relationship`'s value of `attribute`, looked up once for a run of
/// columns of the same attribute; a new attribute resets `category_matched`.
fn attribute_value<'a>(
    relationship: &'a Relationship,
    attribute: &'a str,
    current: &mut Option<(&'a str, Option<&'a AttributeValue>)>,
    category_matched: &mut bool,
) -> Option<&'a AttributeValue> {
    match *current {
        Some((a, value)) if a == attribute => value,
        _ => {
            let value = relationship.attributes.get(attribute);
            *current = Some((attribute, value));
            *category_matched = false;
            value
        }
    }
}

fn indicator(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = SECONDS_PER_DAY;

    fn rel(created: Timestamp) -> Relationship {
        Relationship {
            id: "r".into(),
            kind: RelationshipKind::Customer,
            created_at: created,
            attributes: BTreeMap::new(),
        }
    }

    fn purchase(day: i64, amount: f64, product: &str) -> Event {
        Event {
            at: day * DAY + 3600,
            body: EventBody::Purchase {
                amount,
                product_ids: vec![product.into()],
                quantity: 1,
            },
        }
    }

    #[test]
    fn same_day_purchases_are_one_occasion() {
        let agg = Aggregates::from_events(&[
            purchase(10, 5.0, "a"),
            purchase(10, 7.0, "b"),
            purchase(12, 1.0, "a"),
        ]);
        assert_eq!(agg.occasions, 2);
        assert_eq!(agg.spend_total, 13.0);
        assert_eq!(agg.products.len(), 2);
        assert_eq!(agg.last_gap_days, 2.0);
    }

    #[test]
    fn incremental_and_batch_folds_agree() {
        let events = [
            purchase(1, 5.0, "a"),
            purchase(50, 7.0, "b"),
            purchase(500, 9.0, "c"),
        ];
        let batch = Aggregates::from_events(&events);
        let mut incremental = Aggregates::default();
        for e in &events {
            incremental.apply(e);
        }
        assert_eq!(batch, incremental);
    }

    #[test]
    fn recency_and_windows_follow_the_as_of_time() {
        let r = rel(0);
        let agg = Aggregates::from_events(&[purchase(100, 10.0, "a"), purchase(150, 30.0, "a")]);
        let at_160 = Snapshot::derive(&r, &agg, 160 * DAY + 3600);
        assert_eq!(at_160.get(BaseFeature::RecencyDays), 10.0);
        assert_eq!(at_160.get(BaseFeature::Spend90d), 40.0);
        let at_400 = Snapshot::derive(&r, &agg, 400 * DAY + 3600);
        assert_eq!(at_400.get(BaseFeature::Spend90d), 0.0);
        assert!(at_400.get(BaseFeature::OverdueRatio) > at_160.get(BaseFeature::OverdueRatio));
    }

    fn interaction(day: i64, hour: i64, kind: InteractionKind) -> Event {
        Event {
            at: day * DAY + hour * 3600,
            body: EventBody::Interaction {
                kind,
                survey_score: None,
            },
        }
    }

    fn payment(day: i64, days_late: f64) -> Event {
        Event {
            at: day * DAY + 3600,
            body: EventBody::Payment {
                amount: 10.0,
                days_late,
            },
        }
    }

    #[test]
    fn a_busy_day_is_one_detail_entry_per_kind_and_windows_still_count_events() {
        let mut events = Vec::new();
        for hour in 0..20 {
            events.push(interaction(200, hour, InteractionKind::Visit));
            events.push(interaction(200, hour, InteractionKind::SupportTicket));
        }
        events.push(interaction(150, 1, InteractionKind::Complaint));
        events.push(purchase(200, 5.0, "a"));
        events.push(purchase(200, 7.0, "b"));
        events.push(purchase(100, 11.0, "a"));
        events.push(purchase(30, 13.0, "a"));
        events.extend([payment(190, 4.0), payment(190, 0.0), payment(195, 2.0)]);
        let agg = Aggregates::from_events(&events);
        // Visits, tickets and purchases of day 200, the complaint, two older
        // purchases, and each payment.
        assert_eq!(agg.recent.len(), 3 + 1 + 2 + 3);
        let s = Snapshot::derive(&rel(0), &agg, 201 * DAY);
        assert_eq!(s.get(BaseFeature::Visits90d), 20.0);
        assert_eq!(s.get(BaseFeature::Tickets90d), 20.0);
        assert_eq!(s.get(BaseFeature::Complaints90d), 1.0);
        assert_eq!(s.get(BaseFeature::Spend90d), 12.0);
        assert_eq!(s.get(BaseFeature::Occasions90d), 1.0);
        assert_eq!(s.get(BaseFeature::PaymentDaysLate90d), 2.0);
        // Spend in days 112..=201 against the 90 days before: 12 against 11 + 13.
        let trend = (12.0 - 24.0) / (12.0 + 24.0 + 1.0);
        assert!((s.get(BaseFeature::SpendTrend) - trend).abs() < 1e-12);
    }

    #[test]
    fn schema_one_hots_with_learned_vocabulary() {
        let mut a = rel(0);
        a.attributes
            .insert("plan".into(), AttributeValue::Text("pro".into()));
        a.attributes
            .insert("seats".into(), AttributeValue::Number(4.0));
        let mut b = rel(0);
        b.attributes
            .insert("plan".into(), AttributeValue::Text("basic".into()));
        let spec = FeatureSpec {
            base: vec![BaseFeature::Frequency],
            kind: true,
            attributes: AttributeSelection::Auto,
            max_categories: 5,
            drop: vec![],
        };
        let schema = FeatureSchema::learn(&spec, [a.clone(), b.clone()].iter(), &[]).unwrap();
        assert_eq!(
            schema.names(),
            vec![
                "frequency",
                "plan=basic",
                "plan=pro",
                "seats",
                "seats_missing"
            ]
        );
        let mut c = rel(0);
        c.attributes
            .insert("plan".into(), AttributeValue::Text("enterprise".into()));
        let snap = Snapshot::derive(&c, &Aggregates::default(), 0);
        let mut out = Vec::new();
        schema.raw_values(&c, &snap, &mut out);
        assert_eq!(out, vec![0.0, 0.0, 0.0, 4.0, 1.0]);
    }
}
