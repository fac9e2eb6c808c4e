//! One relationship's row in the score index: the headline Score and
//! Segment computed for it, what it was computed from (so it can be checked
//! against the book later), and its stored form.
//!
//! Strings that repeat across the book (segment, tier and class names,
//! attribute names and text values) are interned ([`Interner`]) so that a
//! million rows share them and a filter compares pointers, not text.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::domain::{AttributeValue, Relationship, RelationshipKind};
use crate::engine::{Headline, Health, LifecycleStage};
use crate::error::{Error, Result};
use crate::features::Aggregates;
use crate::model::ModelRouter;
use crate::time::{day_of, Timestamp, SECONDS_PER_DAY};

/// An interned string.
pub type Sym = Arc<str>;

#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Number(f64),
    Text(Sym),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub rfm_segment: Sym,
    pub value_tier: Sym,
    pub cluster: u32,
    pub stage: LifecycleStage,
    /// The relationship's class within its kind (see [`kind_class`]).
    pub class: Sym,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: Sym,
    pub kind: RelationshipKind,
    /// The relationship as the row was computed from it, to tell when it changed.
    pub created_at: Timestamp,
    /// In attribute-name order.
    pub attributes: Box<[(Sym, Attr)]>,
    /// The fold as the row was computed from it, to tell when events arrived.
    pub events: u64,
    pub last_event: Option<Timestamp>,
    pub last_purchase: Option<Timestamp>,
    pub model_version: u64,
    pub as_of: Timestamp,
    /// As Score answers them (`None` where Score leaves them out).
    pub churn_probability: f64,
    pub churn_horizon_days: Option<u32>,
    pub inactivity_days: Option<u32>,
    pub churned: bool,
    pub expected_days_to_churn: Option<f64>,
    pub expected_value: Option<f64>,
    pub value_horizon_days: Option<u32>,
    pub value_at_risk: Option<f64>,
    pub health: Health,
    pub segments: Option<Segments>,
}

/// The class a relationship of its kind is segmented by: the seam where a
/// kind with a scheme of its own (Kraljic classes for suppliers) answers with
/// it. Today every kind's class is its RFM segment.
fn kind_class(_kind: RelationshipKind, rfm_segment: &Sym) -> Sym {
    Arc::clone(rfm_segment)
}

impl Row {
    /// The row of `relationship` with `aggregates` (the fold the headline
    /// was computed from).
    pub fn new(
        relationship: &Relationship,
        aggregates: &Aggregates,
        headline: Headline,
        interner: &Interner,
    ) -> Row {
        let Headline {
            score,
            segment,
            last_purchase,
        } = headline;
        let segments = segment.map(|s| {
            let rfm_segment = interner.intern(&s.rfm_segment);
            Segments {
                class: kind_class(relationship.kind, &rfm_segment),
                rfm_segment,
                value_tier: interner.intern(&s.value_tier),
                cluster: s.cluster,
                stage: s.stage,
            }
        });
        Row {
            id: Arc::from(relationship.id.as_str()),
            kind: relationship.kind,
            created_at: relationship.created_at,
            attributes: interner.attributes(&relationship.attributes),
            events: aggregates.event_count,
            last_event: aggregates.last_event,
            last_purchase,
            model_version: score.model_version,
            as_of: score.as_of,
            churn_probability: score.churn_probability,
            churn_horizon_days: score.churn_horizon_days,
            inactivity_days: score.inactivity_days,
            churned: score.churned,
            expected_days_to_churn: score.expected_days_to_churn,
            expected_value: score.expected_value,
            value_horizon_days: score.value_horizon_days,
            value_at_risk: score.value_at_risk,
            health: score.health,
            segments,
        }
    }

    /// Whether the row was computed from this relationship and fold as they
    /// are now: no write since.
    pub fn matches_book(&self, relationship: &Relationship, aggregates: &Aggregates) -> bool {
        self.kind == relationship.kind
            && self.created_at == relationship.created_at
            && self.events == aggregates.event_count
            && self.last_event == aggregates.last_event
            && self.attributes.len() == relationship.attributes.len()
            && self.attributes.iter().zip(&relationship.attributes).all(
                |((name, value), (their_name, theirs))| {
                    **name == **their_name
                        && match (value, theirs) {
                            (Attr::Number(a), AttributeValue::Number(b)) => {
                                a.to_bits() == b.to_bits()
                            }
                            (Attr::Text(a), AttributeValue::Text(b)) => **a == **b,
                            _ => false,
                        }
                },
            )
    }

    /// Whether `models` would serve this row's kind with the version it was
    /// computed with, on the day `day`.
    pub fn is_current(&self, models: &ModelRouter, day: i32) -> bool {
        day_of(self.as_of) == day
            && models
                .route(self.kind)
                .is_some_and(|r| r.model.version() == self.model_version)
    }

    /// The value at risk, 0 without a value model (for orders and sums).
    pub fn value_at_risk_or_zero(&self) -> f64 {
        self.value_at_risk.unwrap_or(0.0)
    }

    /// The expected value, 0 without a value model (for orders and sums).
    pub fn expected_value_or_zero(&self) -> f64 {
        self.expected_value.unwrap_or(0.0)
    }

    /// Days from the last purchase to `as_of`; `None` without a purchase.
    pub fn days_since_last_purchase(&self) -> Option<f64> {
        self.last_purchase
            .map(|t| ((self.as_of - t) as f64 / SECONDS_PER_DAY as f64).max(0.0))
    }

    pub fn attribute(&self, name: &str) -> Option<&Attr> {
        self.attributes
            .iter()
            .find(|(n, _)| **n == *name)
            .map(|(_, v)| v)
    }

    /// The stored form: a format byte, then bincode.
    pub fn encode(&self) -> Vec<u8> {
        let stored = Stored {
            kind: self.kind,
            created_at: self.created_at,
            attributes: self
                .attributes
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        Attr::Number(n) => AttributeValue::Number(*n),
                        Attr::Text(t) => AttributeValue::Text(t.to_string()),
                    };
                    (name.to_string(), value)
                })
                .collect(),
            events: self.events,
            last_event: self.last_event,
            last_purchase: self.last_purchase,
            model_version: self.model_version,
            as_of: self.as_of,
            churn_probability: self.churn_probability,
            churn_horizon_days: self.churn_horizon_days,
            inactivity_days: self.inactivity_days,
            churned: self.churned,
            expected_days_to_churn: self.expected_days_to_churn,
            expected_value: self.expected_value,
            value_horizon_days: self.value_horizon_days,
            value_at_risk: self.value_at_risk,
            health: self.health.clone(),
            segments: self.segments.as_ref().map(|s| StoredSegments {
                rfm_segment: s.rfm_segment.to_string(),
                value_tier: s.value_tier.to_string(),
                cluster: s.cluster,
                stage: s.stage.name().to_string(),
            }),
        };
        let mut bytes = vec![FORMAT];
        bytes.extend(bincode::serialize(&stored).expect("bincode encodes every row"));
        bytes
    }

    /// # Errors
    /// `Corrupt` for bytes that are not a row of this format (an older one is
    /// recomputed, not read).
    pub fn decode(id: &str, bytes: &[u8], interner: &Interner) -> Result<Row> {
        let corrupt = |reason: String| Error::Corrupt {
            key: format!("score_index/{id}"),
            reason,
        };
        let (&format, body) = bytes.split_first().ok_or_else(|| corrupt("empty".into()))?;
        if format != FORMAT {
            return Err(corrupt(format!("row format {format}, not {FORMAT}")));
        }
        let s: Stored = bincode::deserialize(body).map_err(|e| corrupt(e.to_string()))?;
        let segments = match s.segments {
            Some(g) => {
                let stage = LifecycleStage::ALL
                    .into_iter()
                    .find(|st| st.name() == g.stage)
                    .ok_or_else(|| corrupt(format!("unknown stage {:?}", g.stage)))?;
                let rfm_segment = interner.intern(&g.rfm_segment);
                Some(Segments {
                    class: kind_class(s.kind, &rfm_segment),
                    rfm_segment,
                    value_tier: interner.intern(&g.value_tier),
                    cluster: g.cluster,
                    stage,
                })
            }
            None => None,
        };
        Ok(Row {
            id: Arc::from(id),
            kind: s.kind,
            created_at: s.created_at,
            attributes: interner.attributes(&s.attributes.into_iter().collect()),
            events: s.events,
            last_event: s.last_event,
            last_purchase: s.last_purchase,
            model_version: s.model_version,
            as_of: s.as_of,
            churn_probability: s.churn_probability,
            churn_horizon_days: s.churn_horizon_days,
            inactivity_days: s.inactivity_days,
            churned: s.churned,
            expected_days_to_churn: s.expected_days_to_churn,
            expected_value: s.expected_value,
            value_horizon_days: s.value_horizon_days,
            value_at_risk: s.value_at_risk,
            health: s.health,
            segments,
        })
    }
}

/// A row of a customer with no events and zero scores, for tests to vary.
#[cfg(test)]
pub(super) fn blank(id: &str) -> Row {
    Row {
        id: Arc::from(id),
        kind: RelationshipKind::Customer,
        created_at: 0,
        attributes: Box::new([]),
        events: 0,
        last_event: None,
        last_purchase: None,
        model_version: 1,
        as_of: 0,
        churn_probability: 0.0,
        churn_horizon_days: Some(90),
        inactivity_days: Some(120),
        churned: false,
        expected_days_to_churn: Some(0.0),
        expected_value: Some(0.0),
        value_horizon_days: Some(365),
        value_at_risk: Some(0.0),
        health: Health {
            score: 0,
            retention: 1.0,
            engagement: None,
            satisfaction: None,
            payment: None,
            value_trend: None,
        },
        segments: None,
    }
}

/// Bumped when [`Stored`] changes: rows of another format are recomputed.
const FORMAT: u8 = 2;

#[derive(Serialize, Deserialize)]
struct Stored {
    kind: RelationshipKind,
    created_at: Timestamp,
    attributes: Vec<(String, AttributeValue)>,
    events: u64,
    last_event: Option<Timestamp>,
    last_purchase: Option<Timestamp>,
    model_version: u64,
    as_of: Timestamp,
    churn_probability: f64,
    churn_horizon_days: Option<u32>,
    inactivity_days: Option<u32>,
    churned: bool,
    expected_days_to_churn: Option<f64>,
    expected_value: Option<f64>,
    value_horizon_days: Option<u32>,
    value_at_risk: Option<f64>,
    health: Health,
    segments: Option<StoredSegments>,
}

#[derive(Serialize, Deserialize)]
struct StoredSegments {
    rfm_segment: String,
    value_tier: String,
    cluster: u32,
    stage: String,
}

/// Shared copies of the strings rows repeat. Text attribute values may be
/// personal (an e-mail address), so [`Interner::sweep`] forgets every string
/// no row holds any more: an erased relationship's values do not outlive it.
#[derive(Default)]
pub struct Interner {
    strings: Mutex<HashSet<Sym>>,
}

impl Interner {
    fn lock(&self) -> MutexGuard<'_, HashSet<Sym>> {
        // Each change is one set operation: a panic cannot leave it half-done.
        self.strings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn intern(&self, text: &str) -> Sym {
        let mut strings = self.lock();
        match strings.get(text) {
            Some(s) => Arc::clone(s),
            None => {
                let s: Sym = Arc::from(text);
                strings.insert(Arc::clone(&s));
                s
            }
        }
    }

    /// The shared copy of `text`, if any row holds one: a filter value
    /// without one matches no row.
    pub fn lookup(&self, text: &str) -> Option<Sym> {
        self.lock().get(text).cloned()
    }

    fn attributes(&self, attributes: &BTreeMap<String, AttributeValue>) -> Box<[(Sym, Attr)]> {
        attributes
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    AttributeValue::Number(n) => Attr::Number(*n),
                    AttributeValue::Text(t) => Attr::Text(self.intern(t)),
                };
                (self.intern(name), value)
            })
            .collect()
    }

    /// Forgets the strings only the interner holds.
    pub fn sweep(&self) {
        self.lock().retain(|s| Arc::strong_count(s) > 1);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ScoreOutput, SegmentOutput};

    fn headline() -> Headline {
        Headline {
            score: ScoreOutput {
                relationship_id: "c-1".into(),
                churn_probability: 0.25,
                churn_horizon_days: Some(90),
                inactivity_days: Some(120),
                churned: false,
                churn_by_horizon: vec![(30, 0.1)],
                expected_days_to_churn: Some(200.5),
                expected_value: Some(120.0),
                value_horizon_days: Some(365),
                value_at_risk: Some(30.0),
                health: Health {
                    score: 75,
                    retention: 0.75,
                    engagement: Some(0.5),
                    satisfaction: None,
                    payment: Some(1.0),
                    value_trend: None,
                },
                reasons: vec![],
                model_version: 3,
                as_of: 10 * SECONDS_PER_DAY,
                supplier: None,
                account: None,
                partner: None,
                model_slot: "default",
            },
            segment: Some(SegmentOutput {
                relationship_id: "c-1".into(),
                rfm: (4, 3, 2),
                rfm_segment: "Loyal".into(),
                value_tier: "Gold".into(),
                value_tier_rank: 2,
                expected_profit: Some(20.0),
                cluster: 1,
                persona: "p".into(),
                cluster_size: 10,
                stage: LifecycleStage::AtRisk,
                kraljic: None,
                partner_tier: None,
                model_version: 3,
                as_of: 10 * SECONDS_PER_DAY,
            }),
            last_purchase: Some(8 * SECONDS_PER_DAY),
        }
    }

    fn relationship() -> Relationship {
        Relationship {
            id: "c-1".into(),
            kind: RelationshipKind::Customer,
            created_at: 5,
            attributes: BTreeMap::from([
                ("email".to_string(), AttributeValue::Text("x@y.z".into())),
                ("size".to_string(), AttributeValue::Number(3.0)),
            ]),
        }
    }

    #[test]
    fn a_row_round_trips_through_its_stored_form() {
        let interner = Interner::default();
        let agg = Aggregates::default();
        let row = Row::new(&relationship(), &agg, headline(), &interner);
        assert_eq!(row.days_since_last_purchase(), Some(2.0));
        let back = Row::decode("c-1", &row.encode(), &interner).unwrap();
        assert_eq!(back, row);
        assert!(Row::decode("c-1", &[9, 1, 2], &interner).is_err());
    }

    #[test]
    fn a_row_knows_when_its_relationship_changed() {
        let interner = Interner::default();
        let mut agg = Aggregates::default();
        let r = relationship();
        let row = Row::new(&r, &agg, headline(), &interner);
        assert!(row.matches_book(&r, &agg));
        let mut other = r.clone();
        other
            .attributes
            .insert("size".into(), AttributeValue::Number(4.0));
        assert!(!row.matches_book(&other, &agg), "an attribute changed");
        agg.event_count = 1;
        assert!(!row.matches_book(&r, &agg), "an event arrived");
    }

    #[test]
    fn strings_no_row_holds_are_forgotten() {
        let interner = Interner::default();
        let row = Row::new(
            &relationship(),
            &Aggregates::default(),
            headline(),
            &interner,
        );
        assert!(interner.lookup("x@y.z").is_some());
        drop(row);
        interner.sweep();
        assert!(
            interner.lookup("x@y.z").is_none(),
            "an erased value is not kept"
        );
        assert_eq!(interner.len(), 0);
    }
}
