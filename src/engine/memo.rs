//! Answers as of the current second, kept per relationship so that a
//! relationship asked about again within the same second (a dashboard, a
//! retrying caller, a page that shows Score, Segment and Recommend side by
//! side) is answered without evaluating it again.
//!
//! An answer is a pure function of the relationship as stored, the active
//! models and the as-of time, which counts whole seconds. An entry holds the
//! `Arc`s of the relationship read and of the model router it was computed
//! from, and is used only while the store and the engine still hand out those
//! same `Arc`s for the same second: any write replaces the store's decoded
//! copy, any promotion replaces the router, and either makes the entry a miss.
//! Holding the `Arc`s also keeps their allocations alive, so a pointer cannot
//! be reused by a newer copy while an entry compares against it.
//!
//! The memo is bounded: a shard that reaches its share of [`CAPACITY`] drops
//! the entries of earlier seconds, then everything. Erasure forgets the id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::features::Aggregates;
use crate::model::ModelRouter;
use crate::store::Decoded;
use crate::time::Timestamp;

use super::evaluate::{Contributions, Evaluated};
use super::{Engine, RecommendOutput, ScoreOutput, SegmentOutput};

/// Entries kept at most, over all shards.
const CAPACITY: usize = 8_192;
const SHARDS: usize = 16;

/// What one relationship was answered as of one second.
#[derive(Default)]
pub(super) struct Answers {
    /// With the reason count asked for.
    pub score: Option<(u32, Arc<ScoreOutput>)>,
    pub segment: Option<Arc<SegmentOutput>>,
    /// With the action count asked for (requests that exclude nothing).
    pub recommend: Option<(u32, Arc<RecommendOutput>)>,
}

struct Entry {
    models: Arc<ModelRouter>,
    data: Arc<Decoded<Aggregates>>,
    as_of: Timestamp,
    answers: Answers,
}

impl Entry {
    fn answers_for(
        &self,
        models: &Arc<ModelRouter>,
        data: &Arc<Decoded<Aggregates>>,
        as_of: Timestamp,
    ) -> Option<&Answers> {
        (self.as_of == as_of && Arc::ptr_eq(&self.models, models) && Arc::ptr_eq(&self.data, data))
            .then_some(&self.answers)
    }
}

pub(super) struct Memo {
    shards: [Mutex<HashMap<String, Entry>>; SHARDS],
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

/// The shard of an id: FNV-1a, cheap for short ids.
fn shard_of(id: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % SHARDS
}

impl Memo {
    /// What `pick` finds among the answers of `id` computed from exactly
    /// `models` and `data` as of `as_of`.
    pub fn get<T>(
        &self,
        id: &str,
        models: &Arc<ModelRouter>,
        data: &Arc<Decoded<Aggregates>>,
        as_of: Timestamp,
        pick: impl FnOnce(&Answers) -> Option<T>,
    ) -> Option<T> {
        let shard = self.shards[shard_of(id)].lock().ok()?;
        shard
            .get(id)
            .and_then(|e| e.answers_for(models, data, as_of))
            .and_then(pick)
    }

    /// Records an answer of `id` computed from `models` and `data` as of
    /// `as_of`, beside the others of the same inputs (an entry of other
    /// inputs is replaced).
    pub fn put(
        &self,
        id: &str,
        models: &Arc<ModelRouter>,
        data: &Arc<Decoded<Aggregates>>,
        as_of: Timestamp,
        fill: impl FnOnce(&mut Answers),
    ) {
        let Ok(mut shard) = self.shards[shard_of(id)].lock() else {
            return;
        };
        if let Some(entry) = shard.get_mut(id) {
            if entry.answers_for(models, data, as_of).is_some() {
                fill(&mut entry.answers);
                return;
            }
        }
        if shard.len() >= CAPACITY / SHARDS {
            shard.retain(|_, e| e.as_of >= as_of);
            if shard.len() >= CAPACITY / SHARDS {
                shard.clear();
            }
        }
        let mut answers = Answers::default();
        fill(&mut answers);
        shard.insert(
            id.to_string(),
            Entry {
                models: Arc::clone(models),
                data: Arc::clone(data),
                as_of,
                answers,
            },
        );
    }

    /// Drops whatever is kept about `id` (after its erasure).
    pub fn forget(&self, id: &str) {
        if let Ok(mut shard) = self.shards[shard_of(id)].lock() {
            shard.remove(id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

impl Engine {
    /// An answer about `id` as of now: the one `pick` finds among those
    /// computed from the same relationship and models this second, or
    /// `compute`d and recorded with `keep`. A table model's own rows are
    /// not kept (they are read from the model, not the store).
    ///
    /// # Errors
    /// As [`Engine::evaluate`], and whatever `compute` returns.
    pub(super) fn answer_now<T>(
        &self,
        models: &Arc<ModelRouter>,
        id: &str,
        contributions: Contributions,
        pick: impl FnOnce(&Answers) -> Option<Arc<T>>,
        compute: impl FnOnce(&Evaluated) -> Result<T>,
        keep: impl FnOnce(&mut Answers, Arc<T>),
    ) -> Result<Arc<T>> {
        if models.is_empty() || models.own_row(id).is_some() {
            let e = self.evaluate(models, id, None, contributions)?;
            return compute(&e).map(Arc::new);
        }
        let (data, as_of) = self.load(id, None)?;
        let memo = &self.inner.memo;
        if let Some(hit) = memo.get(id, models, &data, as_of, pick) {
            return Ok(hit);
        }
        let e = self.evaluate_data(models, Arc::clone(&data), as_of, contributions)?;
        let answer = Arc::new(compute(&e)?);
        memo.put(id, models, &data, as_of, |a| keep(a, Arc::clone(&answer)));
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Relationship, RelationshipKind};

    fn data(id: &str) -> Arc<Decoded<Aggregates>> {
        Arc::new(Decoded {
            relationship: Relationship {
                id: id.to_string(),
                kind: RelationshipKind::Customer,
                created_at: 0,
                attributes: Default::default(),
            },
            aggregates: Aggregates::default(),
        })
    }

    fn segment_marker(version: u64) -> Arc<SegmentOutput> {
        Arc::new(SegmentOutput {
            relationship_id: String::new(),
            rfm: (0, 0, 0),
            rfm_segment: String::new(),
            value_tier: String::new(),
            value_tier_rank: 0,
            expected_profit: None,
            cluster: 0,
            persona: String::new(),
            cluster_size: 0,
            stage: super::super::LifecycleStage::Prospect,
            kraljic: None,
            partner_tier: None,
            model_version: version,
            as_of: 0,
        })
    }

    fn segment_of(
        memo: &Memo,
        id: &str,
        m: &Arc<ModelRouter>,
        d: &Arc<Decoded<Aggregates>>,
        t: i64,
    ) -> Option<u64> {
        memo.get(id, m, d, t, |a| a.segment.as_ref().map(|s| s.model_version))
    }

    #[test]
    fn an_answer_is_reused_only_for_the_same_inputs() {
        let memo = Memo::default();
        let models = Arc::new(ModelRouter::default());
        let d = data("a");
        memo.put("a", &models, &d, 100, |a| {
            a.segment = Some(segment_marker(7))
        });
        assert_eq!(segment_of(&memo, "a", &models, &d, 100), Some(7));
        // Another second, another copy of the relationship (a write), other
        // models (a promotion), another id: all misses.
        assert_eq!(segment_of(&memo, "a", &models, &d, 101), None);
        assert_eq!(segment_of(&memo, "a", &models, &data("a"), 100), None);
        assert_eq!(
            segment_of(&memo, "a", &Arc::new(ModelRouter::default()), &d, 100),
            None
        );
        assert_eq!(segment_of(&memo, "b", &models, &d, 100), None);
        // Nothing recorded for Score yet.
        assert!(memo
            .get("a", &models, &d, 100, |a| a.score.clone())
            .is_none());
        memo.forget("a");
        assert_eq!(segment_of(&memo, "a", &models, &d, 100), None);
    }

    #[test]
    fn the_memo_stays_within_its_capacity() {
        let memo = Memo::default();
        let models = Arc::new(ModelRouter::default());
        for i in 0..(CAPACITY * 3) {
            let id = format!("r-{i}");
            memo.put(&id, &models, &data(&id), i as i64 / 1000, |a| {
                a.segment = Some(segment_marker(1))
            });
            assert!(memo.len() <= CAPACITY);
        }
    }
}
