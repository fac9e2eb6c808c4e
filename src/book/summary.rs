//! Summaries of the book: counts, expected value and value at risk by kind
//! × RFM segment, life-cycle stage and value tier, over the score index, and
//! the baselines a summary is compared with.
//!
//! Two baselines are kept (in memory, and in the store's index notes at each
//! save): the whole book as the index of the previous model version summed
//! it up just before a newer version's index replaced it, and the latest
//! answer per filter.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::domain::RelationshipKind;
use crate::engine::LifecycleStage;
use crate::error::{Error, Result};
use crate::time::Timestamp;

use super::query::{kind_index, Compiled};
use super::row::Row;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub relationships: u64,
    pub expected_value: f64,
    pub value_at_risk: f64,
    pub churn_sum: f64,
}

impl Totals {
    fn add(&mut self, row: &Row) {
        self.relationships += 1;
        self.expected_value += row.expected_value_or_zero();
        self.value_at_risk += row.value_at_risk_or_zero();
        self.churn_sum += row.churn_probability;
    }

    pub fn mean_churn(&self) -> f64 {
        if self.relationships == 0 {
            0.0
        } else {
            self.churn_sum / self.relationships as f64
        }
    }

    /// This minus `baseline`.
    pub fn change_from(&self, baseline: &Totals) -> Change {
        Change {
            relationships: self.relationships as i64 - baseline.relationships as i64,
            expected_value: self.expected_value - baseline.expected_value,
            value_at_risk: self.value_at_risk - baseline.value_at_risk,
            mean_churn: self.mean_churn() - baseline.mean_churn(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub relationships: i64,
    pub expected_value: f64,
    pub value_at_risk: f64,
    pub mean_churn: f64,
}

/// Groups by kind and name (a segment, stage or tier; empty without segments).
pub type Groups = BTreeMap<(RelationshipKind, String), Totals>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub totals: Totals,
    pub by_segment: Groups,
    pub by_stage: Groups,
    pub by_tier: Groups,
    /// The default model version of the index it was taken from.
    pub model_version: u64,
    pub taken_at: Timestamp,
}

/// Sums `rows` that match `filter`. Segment and tier names are grouped by
/// their interned pointer, then named once per group.
pub(super) fn summarize<'a>(
    rows: impl Iterator<Item = &'a Arc<Row>>,
    filter: &Compiled,
    model_version: u64,
    taken_at: Timestamp,
) -> Summary {
    let mut totals = Totals::default();
    let mut segments: HashMap<(usize, usize), (String, Totals)> = HashMap::new();
    let mut tiers: HashMap<(usize, usize), (String, Totals)> = HashMap::new();
    let mut stages = [[Totals::default(); 7]; 4];
    let add_named = |groups: &mut HashMap<(usize, usize), (String, Totals)>,
                     kind: usize,
                     name: Option<&Arc<str>>,
                     row: &Row| {
        let key = (
            kind,
            name.map_or(0, |n| Arc::as_ptr(n).cast::<u8>() as usize),
        );
        groups
            .entry(key)
            .or_insert_with(|| {
                (
                    name.map(|n| n.to_string()).unwrap_or_default(),
                    Totals::default(),
                )
            })
            .1
            .add(row);
    };
    for row in rows.filter(|r| filter.matches(r)) {
        let kind = kind_index(row.kind);
        totals.add(row);
        let seg = row.segments.as_ref();
        add_named(&mut segments, kind, seg.map(|s| &s.rfm_segment), row);
        add_named(&mut tiers, kind, seg.map(|s| &s.value_tier), row);
        let stage = seg.map_or(6, |s| stage_index(s.stage));
        stages[kind][stage].add(row);
    }
    let named = |groups: HashMap<(usize, usize), (String, Totals)>| -> Groups {
        let mut out = Groups::new();
        for ((kind, _), (name, t)) in groups {
            // Two interned copies of one name cannot exist, so keys do not collide.
            out.insert((RelationshipKind::ALL[kind], name), t);
        }
        out
    };
    let mut by_stage = Groups::new();
    for (kind, row) in stages.iter().enumerate() {
        for (i, t) in row.iter().enumerate().filter(|(_, t)| t.relationships > 0) {
            let name = LifecycleStage::ALL.get(i).map_or("", |s| s.name());
            by_stage.insert((RelationshipKind::ALL[kind], name.to_string()), *t);
        }
    }
    Summary {
        totals,
        by_segment: named(segments),
        by_stage,
        by_tier: named(tiers),
        model_version,
        taken_at,
    }
}

fn stage_index(stage: LifecycleStage) -> usize {
    LifecycleStage::ALL
        .iter()
        .position(|s| *s == stage)
        .unwrap_or(6)
}

/// One group of an answer: its totals and, with a baseline, the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub kind: RelationshipKind,
    pub name: String,
    pub totals: Totals,
    pub change: Option<Change>,
}

/// The groups of `current` with their change from `baseline`; a group only
/// the baseline has comes with zero totals.
pub fn compare(current: &Groups, baseline: Option<&Groups>) -> Vec<Group> {
    let mut keys: Vec<&(RelationshipKind, String)> = current.keys().collect();
    if let Some(b) = baseline {
        keys.extend(b.keys().filter(|k| !current.contains_key(*k)));
        keys.sort();
    }
    keys.into_iter()
        .map(|key| {
            let totals = current.get(key).copied().unwrap_or_default();
            Group {
                kind: key.0,
                name: key.1.clone(),
                change: baseline
                    .map(|b| totals.change_from(&b.get(key).copied().unwrap_or_default())),
                totals,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Baseline {
    #[default]
    None,
    PreviousModelVersion,
    PreviousSummary,
}

/// The summaries later ones are compared with.
#[derive(Default)]
pub struct Baselines {
    state: Mutex<Kept>,
}

#[derive(Default, Serialize, Deserialize)]
struct Kept {
    previous_model: Option<Summary>,
    /// By filter fingerprint; at most [`Baselines::MAX`].
    previous: HashMap<u64, Summary>,
    #[serde(skip)]
    changed: bool,
}

impl Baselines {
    const MAX: usize = 64;
    pub const NOTE: &'static str = "summary_baselines";

    fn lock(&self) -> MutexGuard<'_, Kept> {
        // Each change is one assignment or map operation.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// # Errors
    /// `Corrupt` for a note that does not decode.
    pub fn load(bytes: &[u8]) -> Result<Baselines> {
        let kept: Kept = bincode::deserialize(bytes).map_err(|e| Error::Corrupt {
            key: Self::NOTE.into(),
            reason: e.to_string(),
        })?;
        Ok(Baselines {
            state: Mutex::new(kept),
        })
    }

    /// The bytes to save, if anything changed since the last call.
    pub fn to_save(&self) -> Option<Vec<u8>> {
        let mut kept = self.lock();
        if !kept.changed {
            return None;
        }
        kept.changed = false;
        Some(bincode::serialize(&*kept).expect("bincode encodes every summary"))
    }

    pub fn set_previous_model(&self, summary: Summary) {
        let mut kept = self.lock();
        kept.previous_model = Some(summary);
        kept.changed = true;
    }

    /// The baseline for an answer to the query `fingerprint`, then keeps
    /// `answer` as that query's next "previous summary".
    ///
    /// # Errors
    /// `InvalidArgument` for a previous-model comparison with a filter.
    pub fn exchange(
        &self,
        baseline: Baseline,
        filtered: bool,
        fingerprint: u64,
        answer: &Summary,
    ) -> Result<Option<Summary>> {
        if baseline == Baseline::PreviousModelVersion && filtered {
            return Err(Error::invalid(
                "compare_to",
                "the previous model version's summary is kept for the whole book: remove the filter",
            ));
        }
        let mut kept = self.lock();
        let found = match baseline {
            Baseline::None => None,
            Baseline::PreviousModelVersion => kept.previous_model.clone(),
            Baseline::PreviousSummary => kept.previous.get(&fingerprint).cloned(),
        };
        if kept.previous.len() >= Self::MAX && !kept.previous.contains_key(&fingerprint) {
            let oldest = kept
                .previous
                .iter()
                .min_by_key(|(_, s)| s.taken_at)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                kept.previous.remove(&k);
            }
        }
        kept.previous.insert(fingerprint, answer.clone());
        kept.changed = true;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_cover_groups_on_either_side() {
        let t = |n: u64, v: f64| Totals {
            relationships: n,
            expected_value: v,
            value_at_risk: v / 2.0,
            churn_sum: n as f64 * 0.5,
        };
        let c = RelationshipKind::Customer;
        let current = Groups::from([((c, "A".into()), t(2, 10.0)), ((c, "B".into()), t(1, 4.0))]);
        let before = Groups::from([((c, "A".into()), t(3, 12.0)), ((c, "C".into()), t(5, 1.0))]);
        let groups = compare(&current, Some(&before));
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(groups[0].change.unwrap().relationships, -1);
        assert_eq!(groups[1].change.unwrap().expected_value, 4.0);
        assert_eq!(groups[2].totals.relationships, 0);
        assert_eq!(groups[2].change.unwrap().relationships, -5);
        assert!(compare(&current, None).iter().all(|g| g.change.is_none()));
    }

    #[test]
    fn the_previous_summary_is_per_filter_and_round_trips() {
        let b = Baselines::default();
        let s = |n: u64| Summary {
            totals: Totals {
                relationships: n,
                ..Totals::default()
            },
            by_segment: Groups::new(),
            by_stage: Groups::new(),
            by_tier: Groups::new(),
            model_version: 1,
            taken_at: n as i64,
        };
        assert_eq!(
            b.exchange(Baseline::PreviousSummary, true, 7, &s(1))
                .unwrap(),
            None
        );
        assert_eq!(
            b.exchange(Baseline::PreviousSummary, true, 8, &s(2))
                .unwrap(),
            None
        );
        assert_eq!(
            b.exchange(Baseline::PreviousSummary, true, 7, &s(3))
                .unwrap(),
            Some(s(1))
        );
        assert!(b
            .exchange(Baseline::PreviousModelVersion, true, 7, &s(4))
            .is_err());
        b.set_previous_model(s(9));
        let saved = b.to_save().unwrap();
        assert!(b.to_save().is_none(), "saved once until it changes");
        let back = Baselines::load(&saved).unwrap();
        assert_eq!(
            back.exchange(Baseline::PreviousModelVersion, false, 1, &s(5))
                .unwrap(),
            Some(s(9))
        );
        assert_eq!(
            back.exchange(Baseline::PreviousSummary, true, 7, &s(5))
                .unwrap(),
            Some(s(3))
        );
    }
}
