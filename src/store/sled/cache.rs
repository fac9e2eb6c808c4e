//! Bounded in-memory maps from relationship id to decoded values, for the
//! store: what it decoded once it need not read from sled and decode again.
//!
//! Both keep to a byte budget estimated by the caller. When full they drop an
//! arbitrary eighth: a `HashMap`'s order is as good as random, so a working
//! set a little over the budget still mostly hits, and there is no recency
//! bookkeeping on the read path.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A map that holds at most about `budget` bytes of values.
pub struct BoundedMap<V> {
    by_id: HashMap<String, (V, usize)>,
    bytes: usize,
    budget: usize,
}

impl<V> BoundedMap<V> {
    pub fn new(budget: usize) -> Self {
        BoundedMap {
            by_id: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.by_id.get(id).map(|(v, _)| v)
    }

    pub fn take(&mut self, id: &str) -> Option<V> {
        let (v, bytes) = self.by_id.remove(id)?;
        self.bytes -= bytes;
        Some(v)
    }

    /// Keeps `value` (of about `bytes` bytes) under `id`, making room first,
    /// so the newest entry is always kept.
    pub fn put(&mut self, id: &str, value: V, bytes: usize) {
        self.take(id);
        let bytes = bytes + id.len() + 48;
        if self.bytes + bytes > self.budget {
            let target = (self.bytes + bytes).saturating_sub(self.budget * 7 / 8);
            let mut freed = 0;
            self.by_id.retain(|_, (_, bytes)| {
                let keep = freed >= target;
                if !keep {
                    freed += *bytes;
                }
                keep
            });
            self.bytes -= freed;
        }
        self.by_id.insert(id.to_string(), (value, bytes));
        self.bytes += bytes;
    }

    /// Whether keeping a value of about `bytes` more would drop others.
    pub fn is_full_for(&self, bytes: usize) -> bool {
        self.bytes + bytes > self.budget
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Shared, sharded read cache of `Arc<V>` that never keeps a value older
/// than the last write it was told about.
///
/// Writers change the source first and then call [`ReadCache::invalidate`];
/// readers that missed call [`ReadCache::get`] *before* reading the
/// source and offer what they read to [`ReadCache::fill`], which refuses it
/// if the shard saw an invalidation in between (the value may predate it).
pub struct ReadCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    hasher: RandomState,
}

struct Shard<V> {
    map: BoundedMap<Arc<V>>,
    generation: u64,
    /// Fills offered while the shard was full (see [`ReadCache::fill`]).
    offered_when_full: u64,
    /// Lookups that found their entry, and those that did not.
    hits: u64,
    misses: u64,
}

/// Where a reader stood in its shard before reading the source.
#[derive(Debug, Clone, Copy)]
pub struct Generation {
    shard: usize,
    generation: u64,
}

impl<V> ReadCache<V> {
    const SHARDS: usize = 16;
    const ADMIT_WHEN_FULL: u64 = 16;

    pub fn new(budget: usize) -> Self {
        ReadCache {
            shards: (0..Self::SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: BoundedMap::new(budget / Self::SHARDS),
                        generation: 0,
                        offered_when_full: 0,
                        hits: 0,
                        misses: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard_of(&self, id: &str) -> usize {
        self.hasher.hash_one(id) as usize % Self::SHARDS
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard<V>> {
        // A panic cannot leave a shard half-changed: every change is one map call.
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value, or where the reader stands before reading the source.
    pub fn get(&self, id: &str) -> Result<Arc<V>, Generation> {
        let shard = self.shard_of(id);
        let mut guard = self.lock(shard);
        let found = guard.map.get(id).map(Arc::clone);
        match found {
            Some(v) => {
                guard.hits += 1;
                Ok(v)
            }
            None => {
                guard.misses += 1;
                Err(Generation {
                    shard,
                    generation: guard.generation,
                })
            }
        }
    }

    /// Keeps `value`, read from the source after `seen`, unless a write was
    /// announced since.
    ///
    /// A full shard takes one fill in `ADMIT_WHEN_FULL` (16): when reads
    /// spread over far more ids than fit (a 1M book read uniformly), making
    /// room on every miss cost a tenth of batch scoring for a 6% hit rate. A
    /// working set that fits never fills a shard, and one a little larger
    /// still settles into the cache, only more slowly.
    pub fn fill(&self, id: &str, seen: Generation, value: Arc<V>, bytes: usize) {
        let mut guard = self.lock(seen.shard);
        if guard.generation != seen.generation {
            return;
        }
        if guard.map.is_full_for(bytes) {
            guard.offered_when_full += 1;
            if !guard
                .offered_when_full
                .is_multiple_of(Self::ADMIT_WHEN_FULL)
            {
                return;
            }
        }
        guard.map.put(id, value, bytes);
    }

    /// Forgets `id`: call after the source changed, before acknowledging the write.
    pub fn invalidate(&self, id: &str) {
        let mut guard = self.lock(self.shard_of(id));
        guard.generation += 1;
        guard.map.take(id);
    }

    pub fn clear(&self) {
        for shard in 0..Self::SHARDS {
            let mut guard = self.lock(shard);
            guard.generation += 1;
            guard.map.clear();
        }
    }

    /// Entries and estimated bytes, for logs and tests.
    /// Hits and misses since the cache was made.
    pub fn counts(&self) -> (u64, u64) {
        (0..Self::SHARDS).fold((0, 0), |(h, m), shard| {
            let guard = self.lock(shard);
            (h + guard.hits, m + guard.misses)
        })
    }

    pub fn usage(&self) -> (usize, usize) {
        (0..Self::SHARDS).fold((0, 0), |(n, b), shard| {
            let guard = self.lock(shard);
            (n + guard.map.len(), b + guard.map.bytes())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_map_keeps_to_its_budget_and_keeps_the_newest() {
        let mut map = BoundedMap::new(20_000);
        for i in 0..1_000 {
            map.put(&format!("r{i}"), i, 100);
            assert!(map.bytes() <= 20_000);
        }
        let counted: usize = map.by_id.values().map(|(_, b)| b).sum();
        assert_eq!(map.bytes(), counted);
        assert_eq!(map.take("r999"), Some(999));
        assert!(map.len() < 1_000 && !map.is_empty());
    }

    #[test]
    fn a_full_cache_admits_a_few_fills_and_a_working_set_that_fits_all() {
        let fits = ReadCache::new(16 * 10_000);
        let offer = |cache: &ReadCache<u32>, i: u32| {
            let id = format!("r{i}");
            if let Err(seen) = cache.get(&id) {
                cache.fill(&id, seen, Arc::new(i), 100);
            }
        };
        for i in 0..500 {
            offer(&fits, i);
        }
        assert_eq!(fits.usage().0, 500, "a working set that fits is kept whole");
        let small = ReadCache::new(16 * 1_000);
        for i in 0..20_000 {
            offer(&small, i);
        }
        let kept_late = (19_000..20_000)
            .filter(|i| small.get(&format!("r{i}")).is_ok())
            .count();
        assert!(
            kept_late > 0 && kept_late < 200,
            "{kept_late} of the last 1,000 kept"
        );
    }

    #[test]
    fn a_fill_that_raced_a_write_is_refused() {
        let cache = ReadCache::new(1 << 20);
        let Err(before) = cache.get("a") else {
            panic!("empty cache hit")
        };
        // A write lands between the reader's source read and its fill.
        cache.invalidate("a");
        cache.fill("a", before, Arc::new("old"), 3);
        let Err(now) = cache.get("a") else {
            panic!("a stale value was kept")
        };
        cache.fill("a", now, Arc::new("new"), 3);
        assert_eq!(cache.get("a").ok().as_deref(), Some(&"new"));
        cache.invalidate("a");
        assert!(cache.get("a").is_err());
        assert_eq!(cache.usage().0, 0);
    }
}
