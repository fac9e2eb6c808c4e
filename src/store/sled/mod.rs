//! The sled store: the only module that touches sled. It owns the trees, the
//! key layout and the value encoding.
//!
//! # Key layout
//!
//! | tree            | key                                              | value                       |
//! |-----------------|--------------------------------------------------|-----------------------------|
//! | `relationships` | relationship id (UTF-8)                          | bincode `Relationship`      |
//! | `events`        | id, `0x00`, at (8 bytes BE, sign bit flipped), seq (8 bytes BE) | bincode `Event` |
//! | `events`        | relationship id                                  | bincode `Aggregates`        |
//! | `events`        | `0x01` `latest_event`                            | time of the latest event (8 bytes BE, sign bit flipped) |
//! | `events`        | `0x01` `writing_group`, only while one is written | bincode `GroupMarker`       |
//! | `products`      | product id                                       | bincode `Product`           |
//! | `models`        | version (8 bytes BE)                             | JSON `ModelBundle`          |
//! | `model_summaries` | version (8 bytes BE)                           | JSON `ModelSummary`         |
//! | `model_artifacts` | version (8 bytes BE), artifact name (UTF-8)    | opaque bytes                |
//! | `meta`          | `active_model`, `previous_active`, `demo_state`  | version (8 bytes BE) / text |
//! | `meta`          | `aggregates_encoding`                            | `EventFold::ENCODING` (8 bytes BE) |
//! | `meta`          | `index_note/` name                               | opaque bytes (the index's)  |
//! | `score_index`   | relationship id                                  | opaque bytes (the index's row) |
//!
//! Ids never contain control characters (`domain::validate_id`), so `0x00`
//! ends the id inside an event key and a prefix scan on `id ++ 0x00` returns
//! exactly one relationship's events in time order; a key without `0x00` is
//! the relationship's aggregates, which sort just before its events.
//!
//! Erasing a relationship (`SledBook::delete_relationship`) removes its
//! record, its aggregates, its events and its `score_index` entry in one
//! transaction over the three trees, while the event writer is held still.
//!
//! Stores written before events and aggregates shared a tree kept aggregates
//! in a tree of their own; [`SledBook::open`] moves them. Aggregates stored
//! in an older encoding than this build's are folded again from their events
//! when the store opens (`SledBook::upgrade_aggregates`).
//!
//! # Durability
//!
//! sled only flushes on its own every 500 ms. Writers call [`SledBook::flush`]
//! before they acknowledge; event writes go through one writer that flushes
//! once per group of calls (`commit`).
//!
//! sled's flush writes its log with `sync_file_range`, which puts the pages
//! on the device but neither the file's size (its log grows) nor the device's
//! write cache: a power loss could still take what was acknowledged. So
//! [`SledBook::flush`] then calls `fdatasync` on sled's log file, once per
//! flush and so once per group of event writes. What a flush returned for
//! survives a power loss, on a device that honours cache flushes; what it did
//! not return for may be lost, whole groups at a time (see below).
//!
//! A group of events and the aggregates it changes are written as one unit:
//! a marker naming the group, its inserts in key order, the marker's removal
//! (`SledBook::write_group`). sled recovers a prefix of its log, so a crash
//! leaves either the whole group or the marker, and opening the store then
//! takes the group out again: a crash never leaves events without their
//! aggregates, nor half a call. (One sled batch is atomic by itself, but it
//! applies its inserts in hash order, and applying was a third slower; a
//! transaction also reads every old value.)
//!
//! # A full disk
//!
//! sled 0.34 does not fail a write on a full disk: the write of its log fails
//! inside, and its flush then waits for ever for that write (and sled takes
//! no write after it until reopened). So every write first checks that the
//! file system keeps [`SledOptions::min_free_bytes`] free, and refuses with
//! `Storage` otherwise (one `statvfs` per group of events), well before sled
//! would meet the full disk; and a flush that does not finish within
//! [`SledOptions::write_timeout`] fails rather than waits. Writes succeed
//! again as soon as space is freed.
//!
//! # The writer's aggregates
//!
//! Recording an event reads the relationship's aggregates, folds the event in
//! and writes them back. Reading them from sled and decoding them was a
//! quarter of the writer's time, so the aggregates it wrote stay decoded in
//! memory: those sled has (at most [`WRITTEN_AGGREGATES_BYTES`]) and those of
//! groups prepared but not yet written (`pending`, never evicted), so that the
//! next group can be folded while one is written. Every other path that
//! writes aggregates first waits for no group to be in flight, then holds
//! their lock.
//!
//! # The read cache
//!
//! Two sled gets and two decodes were 35% of a Score's server time, so
//! [`SledBook::decoded`] keeps decoded relationships with their aggregates
//! (a sixteenth of `RAPPORT_CACHE_MB` more, see `store::cache::ReadCache`). Every
//! write of a relationship or its aggregates invalidates its entry after sled
//! has it and before the write is acknowledged, so an acknowledged write is
//! what the next read sees.
//!
//! # sled's garbage
//!
//! Each insert copies the tree node it changes; crossbeam-epoch frees the old
//! copy only as threads pin it (`collect_garbage`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use crate::domain::{Event, EventFold, IncomingEvent, ModelSlot, Product, Relationship};
use crate::error::{Error, Result};
use crate::store::cache::{BoundedMap, ReadCache};
use crate::store::{
    decode, encode, AggregateStore, Decoded, DemoState, EventStore, History, HistoryChunks,
    IndexStore, ModelRegistry, ProductStore, RelationshipStore, Store,
};
use crate::time::Timestamp;

mod commit;

use commit::EventWriter;

const ACTIVE_MODEL: &[u8] = b"active_model";
const PREVIOUS_ACTIVE: &[u8] = b"previous_active";
/// In `meta`: the last model version handed out.
const LAST_MODEL_VERSION: &[u8] = b"last_model_version";
const DEMO_STATE: &[u8] = b"demo_state";
/// In `meta`: the encoding of the stored aggregates ([`EventFold::ENCODING`]).
const AGGREGATES_ENCODING: &[u8] = b"aggregates_encoding";
/// In `meta`: the prefix of the score index's notes.
const INDEX_NOTE: &str = "index_note/";
/// In `events`: the time of the latest event ever written, so training finds
/// its cutoff without reading every relationship. `0x01` is never in an id.
const LATEST_EVENT: &[u8] = b"\x01latest_event";
/// In `events` while a group of events is being written: its [`GroupMarker`].
const WRITING_GROUP: &[u8] = b"\x01writing_group";
/// Memory for the writer's decoded aggregates.
pub const WRITTEN_AGGREGATES_BYTES: usize = 64 << 20;

/// A cheap handle to the open database; clones share it. The book's side of
/// the backend: [`SledStore`] adds the event writer on top.
pub struct SledBook<A: EventFold> {
    db: sled::Db,
    relationships: sled::Tree,
    /// Events and aggregates (see the key layout).
    events: sled::Tree,
    products: sled::Tree,
    models: sled::Tree,
    model_summaries: sled::Tree,
    model_artifacts: sled::Tree,
    meta: sled::Tree,
    /// The score index's rows, by relationship id.
    score_index: sled::Tree,
    /// sled's log file, synced after each flush (see "Durability").
    log_file: Arc<std::fs::File>,
    /// The data directory, whose file system's free space writes check.
    path: Arc<std::path::PathBuf>,
    options: SledOptions,
    /// Decoded aggregates the event writer last wrote (see "The writer's aggregates").
    written: Arc<WrittenAggregates<A>>,
    /// Decoded relationships with their aggregates for the read paths (see
    /// "The read cache").
    decoded: Arc<ReadCache<Decoded<A>>>,
}

impl<A: EventFold> Clone for SledBook<A> {
    fn clone(&self) -> Self {
        SledBook {
            db: self.db.clone(),
            relationships: self.relationships.clone(),
            events: self.events.clone(),
            products: self.products.clone(),
            models: self.models.clone(),
            model_summaries: self.model_summaries.clone(),
            model_artifacts: self.model_artifacts.clone(),
            meta: self.meta.clone(),
            score_index: self.score_index.clone(),
            log_file: Arc::clone(&self.log_file),
            path: Arc::clone(&self.path),
            options: self.options,
            written: Arc::clone(&self.written),
            decoded: Arc::clone(&self.decoded),
        }
    }
}

impl<A: EventFold> SledBook<A> {
    /// Opens (or creates) the store in `path`.
    ///
    /// # Errors
    /// `FailedPrecondition` when another process holds the directory: sled admits one.
    pub fn open(path: &Path, options: SledOptions) -> Result<SledBook<A>> {
        let memory = CacheBudget::new(options.cache_bytes);
        let config = sled::Config::new().path(path).cache_capacity(memory.sled);
        // sled reports a directory another handle holds as an I/O error.
        let locked = |io: &std::io::Error| {
            io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock")
        };
        // A store dropped in this process releases the directory's lock only
        // when sled's flusher thread next wakes (every 500 ms): wait that
        // long before calling the directory held by someone else.
        let mut opened = config.open();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while matches!(&opened, Err(sled::Error::Io(io)) if locked(io))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
            opened = config.open();
        }
        let db = opened
            .map_err(|e| match e {
                sled::Error::Io(io) if locked(&io) => {
                    Error::precondition(format!(
                        "data directory {} is in use by another process (sled admits one): stop it or use --data-dir elsewhere ({io})",
                        path.display()
                    ))
                }
                other => Error::Storage(other),
            })?;
        let store = SledBook {
            relationships: db.open_tree("relationships")?,
            events: db.open_tree("events")?,
            products: db.open_tree("products")?,
            models: db.open_tree("models")?,
            model_summaries: db.open_tree("model_summaries")?,
            model_artifacts: db.open_tree("model_artifacts")?,
            meta: db.open_tree("meta")?,
            score_index: db.open_tree("score_index")?,
            log_file: Arc::new(std::fs::File::open(path.join("db"))?),
            path: Arc::new(path.to_path_buf()),
            options,
            written: Arc::new(WrittenAggregates::new()),
            decoded: Arc::new(ReadCache::new(memory.decoded)),
            db,
        };
        store.move_legacy_aggregates()?;
        if store.undo_interrupted_group()? {
            tracing::warn!("undid a group of events whose writing was interrupted (none of it was acknowledged)");
        }
        store.upgrade_aggregates()?;
        Ok(store)
    }

    /// Moves aggregates from the tree earlier versions kept them in into
    /// `events`, in batches, then drops that tree. Idempotent: a crash midway
    /// leaves copies that the next open moves again.
    fn move_legacy_aggregates(&self) -> Result<()> {
        const LEGACY: &[u8] = b"aggregates";
        if !self.db.tree_names().iter().any(|name| name == LEGACY) {
            return Ok(());
        }
        let legacy = self.db.open_tree(LEGACY)?;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for entry in legacy.iter() {
            let (key, value) = entry?;
            batch.insert(key, value);
            pending += 1;
            if pending == 10_000 {
                self.events.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        self.events.apply_batch(batch)?;
        self.db.flush()?;
        self.db.drop_tree(LEGACY)?;
        Ok(())
    }

    /// Waits until every write so far is on disk.
    ///
    /// # Errors
    /// `Storage` when the fsync fails; the writes may then be lost.
    pub async fn flush(&self) -> Result<()> {
        if tokio::runtime::Handle::try_current().is_err() {
            // A caller outside tokio has no timer nor blocking pool.
            return self.flush_blocking();
        }
        tokio::time::timeout(self.options.write_timeout, self.db.flush_async())
            .await
            .map_err(|_| self.timed_out("the flush"))??;
        let started = std::time::Instant::now();
        let file = Arc::clone(&self.log_file);
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        metrics::histogram!("rapport_fsync_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Blocking form of [`SledBook::flush`] for the CLI and shutdown.
    ///
    /// # Errors
    /// As [`SledBook::flush`].
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        let started = std::time::Instant::now();
        self.log_file.sync_data()?;
        metrics::histogram!("rapport_fsync_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Refuses a write while the file system has less than the reserve free
    /// (see "A full disk").
    ///
    /// # Errors
    /// `Storage` saying how much is free.
    pub fn check_space(&self) -> Result<()> {
        let reserve = self.options.min_free_bytes;
        if reserve == 0 {
            return Ok(());
        }
        let free = fs2::available_space(self.path.as_ref())?;
        if free < reserve {
            return Err(Error::Unavailable {
                reason: format!(
                    "the data directory's disk has {} MiB free, less than the {} MiB kept in reserve (--min-free-mb): writes are refused until space is freed",
                    free >> 20,
                    reserve >> 20
                ),
            });
        }
        Ok(())
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::Unavailable {
            reason: format!(
                "{what} did not finish within {} s; the write may or may not be on disk",
                self.options.write_timeout.as_secs_f64()
            ),
        }
    }

    // ------------------------------------------------------------ relationships

    /// Creates or replaces a relationship; returns whether it was new. Not flushed.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    pub fn upsert_relationship(&self, relationship: &Relationship) -> Result<bool> {
        self.check_space()?;
        let old = self
            .relationships
            .insert(relationship.id.as_bytes(), encode(relationship))?;
        self.decoded.invalidate(&relationship.id);
        Ok(old.is_none())
    }

    /// A relationship and its aggregates, decoded once and shared while
    /// neither changes; `None` for an unknown id.
    ///
    /// # Errors
    /// `Storage` on I/O failure, `Corrupt` on an undecodable value.
    pub fn decoded(&self, id: &str) -> Result<Option<Arc<Decoded<A>>>> {
        let seen = match self.decoded.get(id) {
            Ok(hit) => return Ok(Some(hit)),
            Err(seen) => seen,
        };
        let Some(relationship) = self.relationship(id)? else {
            return Ok(None);
        };
        let decoded = Arc::new(Decoded {
            relationship,
            aggregates: self.aggregates(id)?.unwrap_or_default(),
        });
        let bytes = decoded.approx_bytes();
        self.decoded.fill(id, seen, Arc::clone(&decoded), bytes);
        Ok(Some(decoded))
    }

    /// Entries and estimated bytes in the read cache, for logs.
    pub fn read_cache_usage(&self) -> (usize, usize) {
        self.decoded.usage()
    }

    /// Up to `limit` relationships after `after`, in id order, with their
    /// aggregates, read from sled (not the read cache).
    ///
    /// # Errors
    /// `Storage` on I/O failure, `Corrupt` on an undecodable value.
    pub fn decoded_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Decoded<A>>> {
        let from = after.map_or(Bound::Unbounded, |id| {
            Bound::Excluded(sled::IVec::from(id.as_bytes()))
        });
        self.relationships
            .range::<sled::IVec, _>((from, Bound::Unbounded))
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                let relationship: Relationship = decode(&String::from_utf8_lossy(&key), &value)?;
                let aggregates = self.aggregates(&relationship.id)?.unwrap_or_default();
                Ok(Decoded {
                    relationship,
                    aggregates,
                })
            })
            .collect()
    }

    /// Erases a relationship with its events, aggregates and score-index
    /// entry in one transaction, with the event writer held still (no group
    /// in flight, none prepared meanwhile), then forgets every decoded copy.
    /// Returns how many events it had; `None` for an unknown id. Not flushed.
    ///
    /// When its last event was the latest of the book, the kept latest time
    /// is dropped, to be found again from the relationships left.
    ///
    /// # Errors
    /// `Storage` on I/O failure, `Corrupt` on undecodable aggregates.
    pub fn delete_relationship(&self, id: &str) -> Result<Option<u64>> {
        let mut written = self.written.settled();
        let aggregates = self.aggregates(id)?;
        if !self.relationships.contains_key(id.as_bytes())? && aggregates.is_none() {
            return Ok(None);
        }
        let mut prefix = Vec::with_capacity(id.len() + 1);
        prefix.extend_from_slice(id.as_bytes());
        prefix.push(0);
        let event_keys = self
            .events
            .scan_prefix(&prefix)
            .keys()
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let forget_latest = match aggregates.as_ref().and_then(EventFold::last_event) {
            Some(t) => self.latest_event()? == Some(t),
            None => false,
        };
        (&self.relationships, &self.events, &self.score_index).transaction(
            |(relationships, events, index)| {
                relationships.remove(id.as_bytes())?;
                events.remove(id.as_bytes())?;
                for key in &event_keys {
                    events.remove(key)?;
                }
                if forget_latest {
                    events.remove(LATEST_EVENT)?;
                }
                index.remove(id.as_bytes())?;
                Ok::<(), ConflictableTransactionError<Error>>(())
            },
        )?;
        written.applied.take(id);
        if forget_latest {
            written.latest = None;
        }
        drop(written);
        self.decoded.invalidate(id);
        collect_garbage(event_keys.len() + 3);
        Ok(Some(event_keys.len() as u64))
    }

    /// # Errors
    /// `Storage` on I/O failure, `Corrupt` on an undecodable value.
    pub fn relationship(&self, id: &str) -> Result<Option<Relationship>> {
        self.relationships
            .get(id.as_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
    }

    /// Counts by reading every relationship (sled keeps no count): 1.5 s at 1M.
    pub fn relationship_count(&self) -> usize {
        self.relationships.len()
    }

    pub fn has_relationships(&self) -> bool {
        !self.relationships.is_empty()
    }

    /// Every relationship in id order.
    pub fn relationships(&self) -> impl Iterator<Item = Result<Relationship>> + '_ {
        self.relationships.iter().map(|entry| {
            let (key, value) = entry?;
            decode(&String::from_utf8_lossy(&key), &value)
        })
    }

    /// Every relationship with an id in `range`, with its events in time
    /// order, in id order. One pass over each tree (a merge on the shared id
    /// order) rather than a prefix scan per relationship: what training reads.
    pub fn relationships_with_events_in(
        &self,
        range: &IdRange,
    ) -> impl Iterator<Item = Result<(Relationship, Vec<Event>)>> + '_ {
        // An id's events sort after the id and, as ids hold no control
        // characters, before any greater id: the same bounds cut both trees.
        let bounds = (
            range
                .start
                .clone()
                .map_or(Bound::Unbounded, Bound::Included),
            range.end.clone().map_or(Bound::Unbounded, Bound::Excluded),
        );
        let mut events = self
            .events
            .range::<sled::IVec, _>(bounds.clone())
            .peekable();
        self.relationships
            .range::<sled::IVec, _>(bounds)
            .map(move |entry| {
                let (key, value) = entry?;
                let id = String::from_utf8_lossy(&key).into_owned();
                let relationship: Relationship = decode(&id, &value)?;
                let mut prefix = key.to_vec();
                prefix.push(0);
                let mut out = Vec::new();
                loop {
                    let next_key = match events.peek() {
                        None => break,
                        Some(Ok((k, _))) => k.clone(),
                        Some(Err(_)) => match events.next() {
                            Some(Err(e)) => return Err(e.into()),
                            _ => break,
                        },
                    };
                    if next_key.starts_with(&prefix) {
                        if let Some(Ok((_, v))) = events.next() {
                            out.push(decode(&id, &v)?);
                        }
                    } else if next_key.as_ref() < prefix.as_slice() {
                        // This relationship's aggregates, the latest-event key, or
                        // events of an id with no relationship record.
                        events.next();
                    } else {
                        break;
                    }
                }
                Ok((relationship, out))
            })
    }

    /// The book in chunks of `size` consecutive relationships, for readers
    /// on several threads.
    pub fn book_chunks(&self, size: usize) -> BookChunks<'_, A> {
        BookChunks {
            store: self,
            size: size.max(1),
            next: Mutex::new(Some((0, None))),
        }
    }

    // ------------------------------------------------------------ events

    /// Records a batch of events and updates each relationship's aggregates:
    /// either the whole batch is written or none of it. Not flushed: call
    /// [`SledBook::flush`] before acknowledging.
    ///
    /// # Errors
    /// `NotFound` naming the first unknown relationship id (nothing is written).
    pub fn record_events(&self, batch: &[IncomingEvent]) -> Result<usize> {
        self.record_event_batches(&[batch])?.pop().unwrap_or(Ok(0))
    }

    /// Group commit: records several callers' batches in one atomic sled batch
    /// and returns each batch's own result. A batch naming an unknown
    /// relationship is `NotFound` and not written; the others are. Not
    /// flushed. [`SledBook::prepare_event_batches`] then [`PreparedEvents::apply`]
    /// on one thread; the server runs the two on two threads
    /// (`commit::EventWriter`).
    ///
    /// # Errors
    /// `Storage` or `Corrupt` when the write fails: then no batch is written.
    pub fn record_event_batches(&self, batches: &[&[IncomingEvent]]) -> Result<Vec<Result<usize>>> {
        let (prepared, results) = self.prepare_event_batches(batches)?;
        prepared.apply()?;
        Ok(results)
    }

    /// The first half of a group commit: checks every batch, folds its events
    /// into its relationships' aggregates and encodes the whole group as one
    /// sled batch, without writing it. Groups are applied in the order they
    /// were prepared, each on top of the ones before, so preparing the next
    /// group can overlap applying this one (see "The writer's aggregates").
    ///
    /// # Errors
    /// `Storage` or `Corrupt` when reading aggregates fails: nothing is prepared.
    pub fn prepare_event_batches(
        &self,
        batches: &[&[IncomingEvent]],
    ) -> Result<(PreparedEvents<A>, Vec<Result<usize>>)> {
        let mut state = self.written.lock();
        match self.fold_event_batches(&mut state, batches) {
            Ok(Folded {
                writes,
                ids,
                results,
            }) => {
                let group = state.next_group;
                state.next_group += 1;
                state.in_flight += 1;
                let prepared = PreparedEvents {
                    store: self.clone(),
                    writes,
                    ids,
                    group,
                    epoch: state.failures,
                    applied: false,
                };
                Ok((prepared, results))
            }
            Err(e) => {
                // Aggregates taken out of the writer's state are gone; sled
                // holds them again once the groups in flight are applied.
                drop(self.written.settle(state));
                Err(e)
            }
        }
    }

    /// Folds `batches` into the writer's state.
    fn fold_event_batches(
        &self,
        state: &mut WriterState<A>,
        batches: &[&[IncomingEvent]],
    ) -> Result<Folded> {
        // Each touched relationship's aggregates, read once: `None` for a
        // relationship that exists but has no events yet.
        let mut touched: BTreeMap<&str, Option<A>> = BTreeMap::new();
        let mut results = Vec::with_capacity(batches.len());
        let mut writes: Vec<(sled::IVec, sled::IVec)> = Vec::new();
        let mut seqs: Option<(u64, u64)> = None;
        let mut latest: Option<Timestamp> = None;
        for batch in batches {
            let mut unknown = None;
            for id in batch.iter().map(|e| e.relationship_id.as_str()) {
                if touched.contains_key(id) {
                    continue;
                }
                if let Some(agg) = state.take(id) {
                    touched.insert(id, Some(agg));
                    continue;
                }
                match self.aggregates(id)? {
                    Some(agg) => {
                        touched.insert(id, Some(agg));
                    }
                    None if self.relationships.contains_key(id.as_bytes())? => {
                        touched.insert(id, None);
                    }
                    None => {
                        unknown = Some(id);
                        break;
                    }
                }
            }
            if let Some(id) = unknown {
                results.push(Err(Error::not_found("relationship", id)));
                continue;
            }
            for incoming in *batch {
                let id = incoming.relationship_id.as_str();
                let event = &incoming.event;
                latest = Some(latest.map_or(event.at, |t| t.max(event.at)));
                let seq = self.db.generate_id()?;
                seqs = Some(seqs.map_or((seq, seq), |(first, _)| (first, seq)));
                writes.push((event_key(id, event.at, seq).into(), encode(event).into()));
                if let Some(agg) = touched.get_mut(id) {
                    agg.get_or_insert_with(A::default).apply(event);
                }
            }
            results.push(Ok(batch.len()));
        }
        let mut group_writes = None;
        if let (Some(t), Some((first_seq, last_seq))) = (latest, seqs) {
            for (id, agg) in &touched {
                if let Some(agg) = agg {
                    writes.push((id.as_bytes().into(), encode(agg).into()));
                }
            }
            // In key order, inserts walk the tree from leaf to neighbouring
            // leaf; sled's own batch applies them in hash order, which made
            // applying a third slower.
            writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let known = match state.latest {
                Some(known) => Some(known),
                None => self.latest_event()?,
            };
            state.latest = Some(known.map_or(t, |known| known.max(t)));
            group_writes = Some(GroupWrites {
                writes,
                latest: newer_than(known, t),
                first_seq,
                last_seq,
                latest_before: known,
            });
        }
        // From here on nothing fails: the folded aggregates become the
        // group's, ahead of sled until it is applied.
        let group = state.next_group;
        let mut ids = Vec::with_capacity(touched.len());
        for (id, agg) in touched {
            if let Some(agg) = agg {
                state.pending.insert(id.to_string(), (group, agg));
                ids.push(id.to_string());
            }
        }
        Ok(Folded {
            writes: group_writes,
            ids,
            results,
        })
    }

    /// Writes a prepared group: its marker, its inserts in key order, then
    /// removes the marker. sled recovers a prefix of its log, so after a crash
    /// either the marker is gone and the whole group is there, or the marker
    /// is there and [`SledBook::undo_interrupted_group`] takes the group out.
    /// One sled batch would be atomic by itself but applies its inserts in
    /// hash order, a third slower.
    fn write_group(&self, group: GroupWrites, ids: &[String]) -> Result<()> {
        let inserts = group.writes.len() + 3;
        let written = (|| {
            self.events
                .insert(WRITING_GROUP, encode(&group.marker(ids)))?;
            for (key, value) in group.writes {
                self.events.insert(key, value)?;
            }
            if let Some(latest) = group.latest {
                self.events.insert(LATEST_EVENT, &latest)?;
            }
            self.events.remove(WRITING_GROUP)?;
            Ok(())
        })();
        collect_garbage(inserts);
        if written.is_err() {
            if let Err(e) = self.undo_interrupted_group() {
                tracing::error!(error = %e, "could not undo a group of events that failed midway; the next start will");
            }
        }
        written
    }

    /// Takes out the group of events whose writing was interrupted, if any:
    /// its events are removed and its relationships' aggregates folded again
    /// from the events left. Returns whether there was one.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    fn undo_interrupted_group(&self) -> Result<bool> {
        let Some(raw) = self.events.get(WRITING_GROUP)? else {
            return Ok(false);
        };
        let marker: GroupMarker<'static> = decode("writing_group", &raw)?;
        let group = marker.first_seq..=marker.last_seq;
        for id in marker.ids.iter() {
            // An event key ends with its sequence number.
            let (agg, undone) = self.fold_events(id, |key| group.contains(&be_u64(key)))?;
            for key in undone {
                self.events.remove(key)?;
            }
            match agg {
                Some(agg) => self.events.insert(id.as_bytes(), encode(&agg))?,
                None => self.events.remove(id.as_bytes())?,
            };
            self.written.lock().applied.take(id);
            self.decoded.invalidate(id);
        }
        match marker.latest_before {
            Some(t) => self.events.insert(LATEST_EVENT, &time_key(t))?,
            None => self.events.remove(LATEST_EVENT)?,
        };
        self.events.remove(WRITING_GROUP)?;
        self.db.flush()?;
        Ok(true)
    }

    /// Folds `id`'s stored events, leaving out those whose key `skip` picks;
    /// returns the fold (`None` without events folded) and the keys left out.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    fn fold_events(
        &self,
        id: &str,
        mut skip: impl FnMut(&[u8]) -> bool,
    ) -> Result<(Option<A>, Vec<sled::IVec>)> {
        let mut prefix = Vec::with_capacity(id.len() + 1);
        prefix.extend_from_slice(id.as_bytes());
        prefix.push(0);
        let mut agg: Option<A> = None;
        let mut skipped = Vec::new();
        for entry in self.events.scan_prefix(&prefix) {
            let (key, value) = entry?;
            if skip(&key) {
                skipped.push(key);
            } else {
                agg.get_or_insert_with(A::default)
                    .apply(&decode::<Event>(id, &value)?);
            }
        }
        Ok((agg, skipped))
    }

    /// Brings aggregates stored in an older encoding ([`EventFold::ENCODING`])
    /// to this build's: each one that no longer decodes is folded again from
    /// its events and rewritten, in batches, then the encoding is recorded.
    /// One read of each relationship's aggregates, once per store; a store
    /// already at this encoding costs one read of `meta`. A crash midway
    /// leaves the encoding unrecorded, and the next open goes on.
    ///
    /// # Errors
    /// `FailedPrecondition` for a store written by a newer build, `Storage`
    /// or `Corrupt` (an undecodable event).
    fn upgrade_aggregates(&self) -> Result<()> {
        let stored = self
            .meta
            .get(AGGREGATES_ENCODING)?
            .map_or(1, |v| be_u64(&v));
        if stored == A::ENCODING {
            return Ok(());
        }
        if stored > A::ENCODING {
            return Err(Error::precondition(format!(
                "the store in {} holds aggregates of encoding {stored}, written by a newer Rapport; this build reads encoding {}",
                self.path.display(),
                A::ENCODING
            )));
        }
        let started = std::time::Instant::now();
        let (mut rebuilt, mut pending) = (0u64, 0usize);
        let mut batch = sled::Batch::default();
        for id in self.relationships.iter().keys() {
            let id = String::from_utf8_lossy(&id?).into_owned();
            let Some(bytes) = self.events.get(id.as_bytes())? else {
                continue;
            };
            if bincode::deserialize::<A>(&bytes).is_ok() {
                continue;
            }
            match self.fold_events(&id, |_| false)?.0 {
                Some(agg) => batch.insert(id.as_bytes(), encode(&agg)),
                None => batch.remove(id.as_bytes()),
            }
            rebuilt += 1;
            pending += 1;
            if pending == 10_000 {
                self.events.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        self.events.apply_batch(batch)?;
        self.meta
            .insert(AGGREGATES_ENCODING, &A::ENCODING.to_be_bytes())?;
        self.db.flush()?;
        if rebuilt > 0 {
            tracing::warn!(
                rebuilt,
                from = stored,
                to = A::ENCODING,
                seconds = started.elapsed().as_secs_f64(),
                "folded again from their events the aggregates stored in an older encoding"
            );
        }
        Ok(())
    }

    /// Bulk path for loaders that own a whole relationship's history (demo book,
    /// CSV ingest): writes the relationship, its events and its aggregates.
    /// Cheaper than [`SledBook::record_events`] because the aggregates are folded
    /// once; atomic per call.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    pub fn load_relationships(&self, items: &[(Relationship, Vec<Event>)]) -> Result<()> {
        self.check_space()?;
        let mut written = self.written.settled();
        // The time kept under LATEST_EVENT may change below.
        written.latest = None;
        let mut prepared = Vec::with_capacity(items.len());
        for (relationship, events) in items {
            let mut agg = match written.take(&relationship.id) {
                Some(agg) => agg,
                None => self.aggregates(&relationship.id)?.unwrap_or_default(),
            };
            let mut keyed = Vec::with_capacity(events.len());
            for event in events {
                agg.apply(event);
                keyed.push((
                    event_key(&relationship.id, event.at, self.db.generate_id()?),
                    encode(event),
                ));
            }
            prepared.push((relationship, keyed, encode(&agg)));
        }
        let latest = self.newer_latest(
            items
                .iter()
                .flat_map(|(_, events)| events.iter().map(|e| e.at))
                .max(),
        )?;
        (&self.relationships, &self.events).transaction(|(relationships, events)| {
            for (relationship, keyed, agg) in &prepared {
                relationships.insert(relationship.id.as_bytes(), encode(*relationship))?;
                for (key, value) in keyed {
                    events.insert(key.as_slice(), value.as_slice())?;
                }
                events.insert(relationship.id.as_bytes(), agg.as_slice())?;
            }
            if let Some(key) = &latest {
                events.insert(LATEST_EVENT, key)?;
            }
            Ok::<(), ConflictableTransactionError<Error>>(())
        })?;
        for (relationship, _) in items {
            self.decoded.invalidate(&relationship.id);
        }
        Ok(())
    }

    /// A relationship's events in time order, up to and including `until`.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    pub fn events(&self, id: &str, until: Option<Timestamp>) -> Result<Vec<Event>> {
        let mut prefix = Vec::with_capacity(id.len() + 1);
        prefix.extend_from_slice(id.as_bytes());
        prefix.push(0);
        let mut out = Vec::new();
        for entry in self.events.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let event: Event = decode(id, &value)?;
            if until.is_some_and(|t| event.at > t) {
                break;
            }
            let _ = key;
            out.push(event);
        }
        Ok(out)
    }

    /// The time of the latest event written, or `None` when there is none.
    /// Stores written before this was kept find it once by reading every
    /// relationship's aggregates, and keep it from then on.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    pub fn latest_event(&self) -> Result<Option<Timestamp>> {
        if let Some(bytes) = self.events.get(LATEST_EVENT)? {
            let raw: [u8; 8] = bytes.as_ref().try_into().map_err(|_| Error::Corrupt {
                key: "latest_event".into(),
                reason: format!("{} bytes, not 8", bytes.len()),
            })?;
            return Ok(Some((u64::from_be_bytes(raw) ^ (1 << 63)) as Timestamp));
        }
        let mut latest: Option<Timestamp> = None;
        for id in self.relationships.iter().keys() {
            let id = String::from_utf8_lossy(&id?).into_owned();
            if let Some(t) = self.aggregates(&id)?.and_then(|a| a.last_event()) {
                latest = Some(latest.map_or(t, |l| l.max(t)));
            }
        }
        if let Some(t) = latest {
            self.events.insert(LATEST_EVENT, &time_key(t))?;
        }
        Ok(latest)
    }

    /// The value to store under `LATEST_EVENT` when a write's latest event
    /// `t` is newer than the one kept, or `None` when it is not.
    fn newer_latest(&self, t: Option<Timestamp>) -> Result<Option<[u8; 8]>> {
        let Some(t) = t else { return Ok(None) };
        Ok(newer_than(self.latest_event()?, t))
    }

    /// Counts by scanning every key: for logs and tests, not hot paths.
    pub fn event_count(&self) -> usize {
        self.events
            .iter()
            .keys()
            .filter(|key| key.as_ref().is_ok_and(|k| k.contains(&0)))
            .count()
    }

    /// The incrementally maintained aggregates over all of a relationship's events.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    pub fn aggregates(&self, id: &str) -> Result<Option<A>> {
        self.events
            .get(id.as_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
    }

    // ------------------------------------------------------------ products

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn put_products(&self, products: &[Product]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for p in products {
            batch.insert(p.id.as_bytes(), encode(p));
        }
        self.products.apply_batch(batch)?;
        Ok(())
    }

    /// # Errors
    /// `Storage` or `Corrupt`.
    pub fn products(&self) -> Result<Vec<Product>> {
        self.products
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(&String::from_utf8_lossy(&key), &value)
            })
            .collect()
    }

    // ------------------------------------------------------------ models

    /// The next model version: a counter in `meta`, moved by a
    /// compare-and-swap, so concurrent callers never get the same number.
    /// A store from before the counter starts it after its last version.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    pub fn allocate_model_version(&self) -> Result<u64> {
        let stored = self.models.last()?.map_or(0, |(k, _)| be_u64(&k));
        let next = self
            .meta
            .update_and_fetch(LAST_MODEL_VERSION, |old| {
                let last = old.map_or(stored, be_u64).max(stored);
                Some((last + 1).to_be_bytes().to_vec())
            })?
            .map_or(stored + 1, |v| be_u64(&v));
        Ok(next)
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn put_model(&self, version: u64, summary: &[u8], bundle: &[u8]) -> Result<()> {
        self.check_space()?;
        let key = version.to_be_bytes();
        (&self.models, &self.model_summaries).transaction(|(models, summaries)| {
            models.insert(&key, bundle)?;
            if summary.is_empty() {
                summaries.remove(&key)?;
            } else {
                summaries.insert(&key, summary)?;
            }
            Ok::<(), ConflictableTransactionError<Error>>(())
        })?;
        Ok(())
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn model_bundle(&self, version: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.models.get(version.to_be_bytes())?.map(|v| v.to_vec()))
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn model_summary(&self, version: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .model_summaries
            .get(version.to_be_bytes())?
            .map(|v| v.to_vec()))
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn model_versions(&self) -> Result<Vec<u64>> {
        self.models.iter().keys().map(|k| Ok(be_u64(&k?))).collect()
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn active_model(&self, slot: ModelSlot) -> Result<Option<u64>> {
        Ok(self.meta.get(active_key(slot))?.map(|v| be_u64(&v)))
    }

    /// Points `slot` at `version`, remembering the one it replaces, in one
    /// transaction.
    ///
    /// # Errors
    /// `NotFound` when the version is not stored.
    pub fn set_active_model(&self, slot: ModelSlot, version: u64) -> Result<()> {
        if !self.models.contains_key(version.to_be_bytes())? {
            return Err(Error::not_found("model version", version.to_string()));
        }
        let (active, previous) = (active_key(slot), previous_key(slot));
        self.meta.transaction(|meta| {
            let current = meta.get(&active)?.map(|v| be_u64(&v));
            if let Some(prev) = current.filter(|p| *p != version) {
                meta.insert(previous.as_slice(), &prev.to_be_bytes())?;
            }
            meta.insert(active.as_slice(), &version.to_be_bytes())?;
            Ok::<(), ConflictableTransactionError<Error>>(())
        })?;
        Ok(())
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn previous_active_model(&self, slot: ModelSlot) -> Result<Option<u64>> {
        Ok(self.meta.get(previous_key(slot))?.map(|v| be_u64(&v)))
    }

    // ------------------------------------------------------------ score index

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn put_index_entries(&self, entries: &[(&str, Vec<u8>)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (id, value) in entries {
            batch.insert(id.as_bytes(), value.as_slice());
        }
        self.score_index.apply_batch(batch)?;
        collect_garbage(entries.len());
        Ok(())
    }

    /// # Errors
    /// `NotFound` for a version not stored; `Storage` on I/O failure.
    pub fn put_model_artifact(&self, version: u64, name: &str, bytes: &[u8]) -> Result<()> {
        self.check_space()?;
        if !self.models.contains_key(version.to_be_bytes())? {
            return Err(Error::not_found("model version", version.to_string()));
        }
        let mut key = version.to_be_bytes().to_vec();
        key.extend_from_slice(name.as_bytes());
        self.model_artifacts.insert(key, bytes)?;
        Ok(())
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn remove_index_entries(&self, ids: &[&str]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(id.as_bytes());
        }
        self.score_index.apply_batch(batch)?;
        Ok(())
    }

    /// Every score-index entry in id order.
    pub fn index_entries(&self) -> impl Iterator<Item = Result<(String, Vec<u8>)>> + '_ {
        self.score_index.iter().map(|entry| {
            let (key, value) = entry?;
            Ok((String::from_utf8_lossy(&key).into_owned(), value.to_vec()))
        })
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn index_note(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .meta
            .get(format!("{INDEX_NOTE}{name}"))?
            .map(|v| v.to_vec()))
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn set_index_note(&self, name: &str, value: &[u8]) -> Result<()> {
        self.meta.insert(format!("{INDEX_NOTE}{name}"), value)?;
        Ok(())
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn model_artifacts(&self, version: u64) -> Result<Vec<(String, Vec<u8>)>> {
        self.model_artifacts
            .scan_prefix(version.to_be_bytes())
            .map(|entry| {
                let (key, value) = entry?;
                let name = String::from_utf8_lossy(&key[8..]).into_owned();
                Ok((name, value.to_vec()))
            })
            .collect()
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn delete_model(&self, version: u64) -> Result<bool> {
        let key = version.to_be_bytes();
        let existed = self.models.remove(key)?.is_some();
        self.model_summaries.remove(key)?;
        for name in self.model_artifacts.scan_prefix(key).keys() {
            self.model_artifacts.remove(name?)?;
        }
        Ok(existed)
    }

    /// Writes and syncs a marker in `meta`.
    ///
    /// # Errors
    /// `Storage` or `Io` while writes fail.
    pub fn probe_writes(&self) -> Result<()> {
        self.check_space()?;
        self.meta
            .insert(b"probe", &crate::time::now().to_be_bytes())?;
        self.flush_blocking()
    }

    // ------------------------------------------------------------ demo book

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn demo_state(&self) -> Result<DemoState> {
        Ok(match self.meta.get(DEMO_STATE)?.as_deref() {
            Some(b"loading") => DemoState::Loading,
            Some(b"loaded") => DemoState::Loaded,
            _ => DemoState::Absent,
        })
    }

    /// # Errors
    /// `Storage` on I/O failure.
    pub fn set_demo_state(&self, state: DemoState) -> Result<()> {
        match state {
            DemoState::Absent => self.meta.remove(DEMO_STATE)?,
            DemoState::Loading => self.meta.insert(DEMO_STATE, "loading")?,
            DemoState::Loaded => self.meta.insert(DEMO_STATE, "loaded")?,
        };
        Ok(())
    }

    /// Drops every relationship, event, aggregate, product and score-index
    /// entry and note (not the models): used to restart a demo load that was
    /// interrupted.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    pub fn clear_book(&self) -> Result<()> {
        let mut written = self.written.settled();
        written.applied.clear();
        written.latest = None;
        self.relationships.clear()?;
        self.events.clear()?;
        self.products.clear()?;
        self.score_index.clear()?;
        for key in self.meta.scan_prefix(INDEX_NOTE).keys() {
            self.meta.remove(key?)?;
        }
        self.decoded.clear();
        Ok(())
    }
}

/// The sled backend: the book, and the event writer that group-commits
/// [`EventStore::record_events`] (see `commit`). Dropping it finishes the
/// groups queued and stops the writer.
pub struct SledStore<A: EventFold> {
    book: SledBook<A>,
    writer: EventWriter,
}

impl<A: EventFold> SledStore<A> {
    /// Opens (or creates) the store in `path` and starts its event writer.
    ///
    /// # Errors
    /// As [`SledBook::open`]; `Io` when the writer's threads cannot start.
    pub fn open(path: &Path, options: SledOptions) -> Result<SledStore<A>> {
        let book = SledBook::open(path, options)?;
        let writer = EventWriter::start(book.clone())?;
        Ok(SledStore { book, writer })
    }

    /// The book underneath, for sled-specific tests and tools.
    pub fn book(&self) -> &SledBook<A> {
        &self.book
    }
}

impl<A: EventFold> RelationshipStore for SledStore<A> {
    fn upsert_relationship(&self, relationship: &Relationship) -> Result<bool> {
        self.book.upsert_relationship(relationship)
    }

    fn relationship(&self, id: &str) -> Result<Option<Relationship>> {
        self.book.relationship(id)
    }

    fn relationship_count(&self) -> Result<usize> {
        Ok(self.book.relationship_count())
    }

    fn has_relationships(&self) -> Result<bool> {
        Ok(self.book.has_relationships())
    }

    fn relationships(&self) -> Box<dyn Iterator<Item = Result<Relationship>> + Send + '_> {
        Box::new(self.book.relationships())
    }
}

#[async_trait]
impl<A: EventFold> EventStore for SledStore<A> {
    async fn record_events(&self, batch: Vec<IncomingEvent>) -> Result<usize> {
        self.writer.write(batch).await
    }

    fn load_histories(&self, items: &[History]) -> Result<()> {
        self.book.load_relationships(items)
    }

    fn events(&self, id: &str, until: Option<Timestamp>) -> Result<Vec<Event>> {
        self.book.events(id, until)
    }

    fn latest_event(&self) -> Result<Option<Timestamp>> {
        self.book.latest_event()
    }

    fn event_count(&self) -> Result<usize> {
        Ok(self.book.event_count())
    }

    fn history_chunks(&self, size: usize) -> Box<dyn HistoryChunks + '_> {
        Box::new(self.book.book_chunks(size))
    }
}

impl<A: EventFold> AggregateStore<A> for SledStore<A> {
    fn aggregates(&self, id: &str) -> Result<Option<A>> {
        self.book.aggregates(id)
    }

    fn decoded(&self, id: &str) -> Result<Option<Arc<Decoded<A>>>> {
        self.book.decoded(id)
    }

    fn read_cache_usage(&self) -> (usize, usize) {
        self.book.read_cache_usage()
    }

    fn read_cache_counts(&self) -> (u64, u64) {
        self.book.decoded.counts()
    }

    fn decoded_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Decoded<A>>> {
        self.book.decoded_after(after, limit)
    }
}

impl<A: EventFold> IndexStore for SledStore<A> {
    fn put_index_entries(&self, entries: &[(&str, Vec<u8>)]) -> Result<()> {
        self.book.put_index_entries(entries)
    }

    fn remove_index_entries(&self, ids: &[&str]) -> Result<()> {
        self.book.remove_index_entries(ids)
    }

    fn index_entries(&self) -> Box<dyn Iterator<Item = Result<(String, Vec<u8>)>> + Send + '_> {
        Box::new(self.book.index_entries())
    }

    fn index_note(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.book.index_note(name)
    }

    fn set_index_note(&self, name: &str, value: &[u8]) -> Result<()> {
        self.book.set_index_note(name, value)
    }
}

impl<A: EventFold> ProductStore for SledStore<A> {
    fn put_products(&self, products: &[Product]) -> Result<()> {
        self.book.put_products(products)
    }

    fn products(&self) -> Result<Vec<Product>> {
        self.book.products()
    }
}

impl<A: EventFold> ModelRegistry for SledStore<A> {
    fn allocate_model_version(&self) -> Result<u64> {
        self.book.allocate_model_version()
    }

    fn put_model(&self, version: u64, summary: &[u8], bundle: &[u8]) -> Result<()> {
        self.book.put_model(version, summary, bundle)
    }

    fn model_bundle(&self, version: u64) -> Result<Option<Vec<u8>>> {
        self.book.model_bundle(version)
    }

    fn model_summary(&self, version: u64) -> Result<Option<Vec<u8>>> {
        self.book.model_summary(version)
    }

    fn model_versions(&self) -> Result<Vec<u64>> {
        self.book.model_versions()
    }

    fn active_model(&self, slot: ModelSlot) -> Result<Option<u64>> {
        self.book.active_model(slot)
    }

    fn set_active_model(&self, slot: ModelSlot, version: u64) -> Result<()> {
        self.book.set_active_model(slot, version)
    }

    fn previous_active_model(&self, slot: ModelSlot) -> Result<Option<u64>> {
        self.book.previous_active_model(slot)
    }

    fn put_model_artifact(&self, version: u64, name: &str, bytes: &[u8]) -> Result<()> {
        self.book.put_model_artifact(version, name, bytes)
    }

    fn model_artifacts(&self, version: u64) -> Result<Vec<(String, Vec<u8>)>> {
        self.book.model_artifacts(version)
    }

    fn delete_model(&self, version: u64) -> Result<bool> {
        self.book.delete_model(version)
    }
}

#[async_trait]
impl<A: EventFold> Store<A> for SledStore<A> {
    async fn flush(&self) -> Result<()> {
        self.book.flush().await
    }

    fn flush_blocking(&self) -> Result<()> {
        self.book.flush_blocking()
    }

    fn demo_state(&self) -> Result<DemoState> {
        self.book.demo_state()
    }

    fn set_demo_state(&self, state: DemoState) -> Result<()> {
        self.book.set_demo_state(state)
    }

    fn clear_book(&self) -> Result<()> {
        self.book.clear_book()
    }

    fn delete_relationship(&self, id: &str) -> Result<Option<u64>> {
        self.book.delete_relationship(id)
    }

    fn probe_writes(&self) -> Result<()> {
        self.book.probe_writes()
    }
}

/// A group of event batches folded into aggregates.
struct Folded {
    /// `None` when every batch was refused.
    writes: Option<GroupWrites>,
    /// Relationships whose aggregates the group writes.
    ids: Vec<String>,
    /// Each batch's own result.
    results: Vec<Result<usize>>,
}

/// Relationship ids from `start` (inclusive) to `end` (exclusive); `None` is unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdRange {
    start: Option<sled::IVec>,
    end: Option<sled::IVec>,
}

/// Hands out the book's relationships in numbered chunks of consecutive ids
/// ([`SledBook::book_chunks`]): a chunk's bounds depend only on the book, not on
/// which reader asked first.
pub struct BookChunks<'a, A: EventFold> {
    store: &'a SledBook<A>,
    size: usize,
    /// The next chunk's number and first id (`None` at the start of the
    /// book); `None` once the book is handed out.
    next: Mutex<Option<(usize, Option<sled::IVec>)>>,
}

impl<A: EventFold> HistoryChunks for BookChunks<'_, A> {
    fn next_chunk(&self) -> Result<Option<(usize, Vec<History>)>> {
        let Some((number, range)) = self.next_range()? else {
            return Ok(None);
        };
        let histories = self
            .store
            .relationships_with_events_in(&range)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((number, histories)))
    }
}

impl<A: EventFold> BookChunks<'_, A> {
    /// The next chunk's number and range, or `None` at the end of the book.
    ///
    /// # Errors
    /// `Storage`.
    pub fn next_range(&self) -> Result<Option<(usize, IdRange)>> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((number, start)) = next.take() else {
            return Ok(None);
        };
        let from = start.clone().map_or(Bound::Unbounded, Bound::Included);
        let end = self
            .store
            .relationships
            .range::<sled::IVec, _>((from, Bound::Unbounded))
            .keys()
            .nth(self.size)
            .transpose()?;
        if let Some(end) = &end {
            *next = Some((number + 1, Some(end.clone())));
        }
        Ok(Some((number, IdRange { start, end })))
    }
}

/// What a prepared group writes to `events`, in key order.
struct GroupWrites {
    writes: Vec<(sled::IVec, sled::IVec)>,
    /// The new value of `LATEST_EVENT`, if the group has a later event.
    latest: Option<[u8; 8]>,
    /// See [`GroupMarker`].
    first_seq: u64,
    last_seq: u64,
    latest_before: Option<Timestamp>,
}

impl GroupWrites {
    /// The group's marker; `ids` are the relationships it writes.
    fn marker<'a>(&self, ids: &'a [String]) -> GroupMarker<'a> {
        GroupMarker {
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            latest_before: self.latest_before,
            ids: Cow::Borrowed(ids),
        }
    }
}

/// Kept under `WRITING_GROUP` while a group's inserts go in: enough to undo
/// them if the process stops midway.
#[derive(Debug, Serialize, Deserialize)]
struct GroupMarker<'a> {
    /// The group's events are exactly the keys of `ids` with a sequence
    /// number in `first_seq..=last_seq` (sled's ids only grow).
    first_seq: u64,
    last_seq: u64,
    /// `LATEST_EVENT` before the group.
    latest_before: Option<Timestamp>,
    /// Relationships the group writes events and aggregates for.
    ids: Cow<'a, [String]>,
}

/// A group of event batches folded by [`SledBook::prepare_event_batches`], to be
/// applied in the order prepared. Dropped unapplied, it takes the groups
/// prepared after it down too: they were folded on top of it.
#[must_use = "prepared events are written only when applied"]
pub struct PreparedEvents<A: EventFold> {
    store: SledBook<A>,
    /// `None` when every batch was refused.
    writes: Option<GroupWrites>,
    /// Relationships whose aggregates the group writes.
    ids: Vec<String>,
    group: u64,
    /// [`WriterState::failures`] when prepared.
    epoch: u64,
    applied: bool,
}

impl<A: EventFold> PreparedEvents<A> {
    /// Writes the group (not flushed) and hands its aggregates over as sled's.
    ///
    /// # Errors
    /// `Storage` when sled fails, or when a group prepared earlier failed:
    /// then nothing of this one is written.
    pub fn apply(mut self) -> Result<()> {
        if self.store.written.lock().failures != self.epoch {
            return Err(Error::Io(std::io::Error::other(
                "an earlier event write failed, and this one was folded on top of it: nothing of it was written",
            )));
        }
        if let Some(writes) = self.writes.take() {
            self.store.check_space()?;
            self.store.write_group(writes, &self.ids)?;
        }
        for id in &self.ids {
            self.store.decoded.invalidate(id);
        }
        let mut state = self.store.written.lock();
        for id in self.ids.drain(..) {
            // A later group may have folded more events in since: it owns them now.
            if state
                .pending
                .get(&id)
                .is_some_and(|(group, _)| *group == self.group)
            {
                if let Some((_, agg)) = state.pending.remove(&id) {
                    let bytes = agg.approx_bytes();
                    state.applied.put(&id, agg, bytes);
                }
            }
        }
        self.applied = true;
        Ok(())
    }
}

impl<A: EventFold> Drop for PreparedEvents<A> {
    fn drop(&mut self) {
        let mut state = self.store.written.lock();
        if !self.applied && state.failures == self.epoch {
            // What the groups in flight folded will never be in sled.
            state.failures += 1;
            state.pending.clear();
            state.latest = None;
        }
        state.in_flight -= 1;
        if state.in_flight == 0 {
            self.store.written.settled.notify_all();
        }
    }
}

/// The event writer's decoded aggregates (see "The writer's aggregates").
struct WrittenAggregates<A> {
    state: Mutex<WriterState<A>>,
    /// Signalled when no prepared group is left in flight.
    settled: Condvar,
}

struct WriterState<A> {
    /// Aggregates as sled holds them, at most [`WRITTEN_AGGREGATES_BYTES`].
    applied: BoundedMap<A>,
    /// Aggregates folded by groups prepared but not yet applied, with the
    /// group that folded them last. Never evicted: sled does not have them yet.
    pending: HashMap<String, (u64, A)>,
    /// Groups prepared and neither applied nor dropped.
    in_flight: usize,
    next_group: u64,
    /// How many prepared groups were dropped unapplied: a group prepared
    /// before the last of those is refused.
    failures: u64,
    /// The latest event time in sled and the groups in flight, once known.
    latest: Option<Timestamp>,
}

impl<A: EventFold> WriterState<A> {
    /// A relationship's newest aggregates, if the writer has them decoded.
    fn take(&mut self, id: &str) -> Option<A> {
        match self.pending.remove(id) {
            Some((_, agg)) => Some(agg),
            None => self.applied.take(id),
        }
    }
}

impl<A: EventFold> WrittenAggregates<A> {
    fn new() -> Self {
        WrittenAggregates {
            state: Mutex::new(WriterState {
                applied: BoundedMap::new(WRITTEN_AGGREGATES_BYTES),
                pending: HashMap::new(),
                in_flight: 0,
                next_group: 0,
                failures: 0,
                latest: None,
            }),
            settled: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WriterState<A>> {
        // Entries move to `applied` only after sled applied them, and a
        // group dropped unapplied clears `pending`, so a panic while the
        // lock was held cannot leave either ahead of sled.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state once no group is in flight, for writers of aggregates
    /// other than the event writer: sled then holds everything the state does.
    fn settled(&self) -> MutexGuard<'_, WriterState<A>> {
        self.settle(self.lock())
    }

    fn settle<'a>(&self, state: MutexGuard<'a, WriterState<A>>) -> MutexGuard<'a, WriterState<A>> {
        self.settled
            .wait_while(state, |state| state.in_flight > 0)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How to open a sled store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SledOptions {
    /// Writes are refused while the data directory's file system has less
    /// than this free (`--min-free-mb`; 0 checks nothing). sled does not
    /// return an error on a full disk: its flush waits for ever for a write
    /// that failed, and it takes no write again until reopened.
    pub min_free_bytes: u64,
    /// A flush (and so a write) that takes longer fails (the event writer's
    /// callers and every other writer get `Storage`), so a disk that stops
    /// answering cannot hang callers.
    pub write_timeout: std::time::Duration,
    /// Memory for caches: this much for sled's page cache, and a sixteenth
    /// of it again, as estimated by `approx_bytes`, for decoded relationships
    /// (the read cache; the process grows by about twice the estimate).
    /// Taking the read cache out of sled's share cost a tenth of Score's
    /// throughput on a 1M book read uniformly, where it rarely hits.
    pub cache_bytes: u64,
}

impl SledOptions {
    /// Random reads by id, again and again: serving.
    pub const SERVING_CACHE_MB: u64 = 512;
    /// One ordered pass over the book (`train`, `ingest`): a cache cannot help
    /// a read that never comes back, and a 1M-book training peaked at 2.65 GiB
    /// with 512 MiB and 1.92 GiB with 64, equally fast.
    pub const SCAN_CACHE_MB: u64 = 64;

    /// Default reserve: room for sled's own log and snapshot writes after
    /// the last refused write.
    pub const DEFAULT_MIN_FREE_MB: u64 = 64;
    pub const DEFAULT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

    pub fn with_cache_mb(mb: u64) -> SledOptions {
        SledOptions {
            cache_bytes: mb << 20,
            min_free_bytes: Self::DEFAULT_MIN_FREE_MB << 20,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
        }
    }
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions::with_cache_mb(SledOptions::SERVING_CACHE_MB)
    }
}

struct CacheBudget {
    sled: u64,
    decoded: usize,
}

impl CacheBudget {
    fn new(total: u64) -> CacheBudget {
        CacheBudget {
            sled: total,
            decoded: usize::try_from(total / 16).unwrap_or(usize::MAX),
        }
    }
}

/// Frees what sled's last writes replaced. Each insert copies the tree node
/// it changes and defers freeing the old copy to crossbeam-epoch, which frees
/// a few bags of 64 deferred items every 128 pins of any thread. A writer
/// that no longer reads before it writes pins far less often than it makes
/// garbage, and memory grew by about 80 MiB/s while ingesting; flushing the
/// thread's epoch state frees up to 8 bags a call.
fn collect_garbage(inserts: usize) {
    for _ in 0..inserts / 256 + 1 {
        crossbeam_epoch::pin().flush();
    }
}

/// `active_model` for the default slot (as stores before slots kept it),
/// `active_model/<kind>` for a kind's own.
fn active_key(slot: ModelSlot) -> Vec<u8> {
    slot_key(ACTIVE_MODEL, slot)
}

fn previous_key(slot: ModelSlot) -> Vec<u8> {
    slot_key(PREVIOUS_ACTIVE, slot)
}

fn slot_key(base: &[u8], slot: ModelSlot) -> Vec<u8> {
    match slot {
        ModelSlot::Default => base.to_vec(),
        ModelSlot::Kind(_) => [base, b"/", slot.name().as_bytes()].concat(),
    }
}

/// The value to store under `LATEST_EVENT` when `t` is newer than `known`.
fn newer_than(known: Option<Timestamp>, t: Timestamp) -> Option<[u8; 8]> {
    known.is_none_or(|known| t > known).then(|| time_key(t))
}

/// A time as 8 big-endian bytes with the sign bit flipped, so that byte order is time order.
fn time_key(at: Timestamp) -> [u8; 8] {
    ((at as u64) ^ (1 << 63)).to_be_bytes()
}

/// `id ++ 0x00 ++ at ++ seq`; flipping the sign bit makes negative times sort first.
fn event_key(id: &str, at: Timestamp, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 17);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key.extend_from_slice(&time_key(at));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Aggregates;
    use crate::store::contract;

    type Store = SledBook<Aggregates>;

    impl Store {
        fn open_default(path: &Path) -> Result<Store> {
            SledBook::open(path, SledOptions::default())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_passes_the_backend_contract() {
        let dirs = Mutex::new(Vec::new());
        contract::check_all(|| {
            let dir = tempfile::tempdir().unwrap();
            let store: contract::Backend<Aggregates> =
                Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap());
            dirs.lock().unwrap().push(dir);
            store
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        contract::check_durability(|| {
            Ok(Arc::new(SledStore::<Aggregates>::open(
                dir.path(),
                SledOptions::default(),
            )?) as contract::Backend<Aggregates>)
        })
        .await;
    }
    use crate::domain::{EventBody, InteractionKind, RelationshipKind};

    fn relationship(id: &str) -> Relationship {
        Relationship {
            id: id.into(),
            kind: RelationshipKind::Customer,
            created_at: 0,
            attributes: BTreeMap::new(),
        }
    }

    fn purchase(at: Timestamp, amount: f64) -> Event {
        Event {
            at,
            body: EventBody::Purchase {
                amount,
                product_ids: vec!["p1".into()],
                quantity: 1,
            },
        }
    }

    #[test]
    fn events_come_back_in_time_order_per_relationship() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        store.upsert_relationship(&relationship("a")).unwrap();
        store.upsert_relationship(&relationship("ab")).unwrap();
        let batch: Vec<IncomingEvent> = [("a", 300), ("ab", 100), ("a", 100), ("a", 200)]
            .iter()
            .map(|(id, at)| IncomingEvent {
                relationship_id: id.to_string(),
                event: purchase(*at, 10.0),
            })
            .collect();
        assert_eq!(store.record_events(&batch).unwrap(), 4);
        let times: Vec<_> = store
            .events("a", None)
            .unwrap()
            .iter()
            .map(|e| e.at)
            .collect();
        assert_eq!(times, vec![100, 200, 300]);
        assert_eq!(store.events("a", Some(200)).unwrap().len(), 2);
        assert_eq!(store.events("ab", None).unwrap().len(), 1);
        assert_eq!(store.aggregates("a").unwrap().unwrap().spend_total, 30.0);
    }

    #[test]
    fn a_batch_with_an_unknown_id_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        store.upsert_relationship(&relationship("a")).unwrap();
        let batch = vec![
            IncomingEvent {
                relationship_id: "a".into(),
                event: purchase(1, 1.0),
            },
            IncomingEvent {
                relationship_id: "ghost".into(),
                event: Event {
                    at: 1,
                    body: EventBody::Interaction {
                        kind: InteractionKind::Visit,
                        survey_score: None,
                    },
                },
            },
        ];
        let err = store.record_events(&batch).unwrap_err();
        assert!(matches!(err, Error::NotFound { ref id, .. } if id == "ghost"));
        assert_eq!(store.event_count(), 0);
        assert!(store.aggregates("a").unwrap().is_none());
    }

    #[test]
    fn a_group_writes_the_good_batches_and_refuses_the_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        store.upsert_relationship(&relationship("a")).unwrap();
        store.upsert_relationship(&relationship("b")).unwrap();
        let event = |id: &str, at| IncomingEvent {
            relationship_id: id.into(),
            event: purchase(at, 5.0),
        };
        let first = [event("a", 1), event("b", 2)];
        let bad = [event("a", 3), event("ghost", 4)];
        let last = [event("a", 5)];
        let results = store.record_event_batches(&[&first, &bad, &last]).unwrap();
        assert!(matches!(results[0], Ok(2)));
        assert!(matches!(results[1], Err(Error::NotFound { ref id, .. }) if id == "ghost"));
        assert!(matches!(results[2], Ok(1)));
        assert_eq!(store.event_count(), 3);
        assert_eq!(store.aggregates("a").unwrap().unwrap().spend_total, 10.0);
        assert_eq!(store.aggregates("b").unwrap().unwrap().event_count, 1);
    }

    /// `id`'s events, after checking that its aggregates are their fold.
    fn events_matching_aggregates(store: &Store, id: &str) -> Vec<Event> {
        let events = store.events(id, None).unwrap();
        assert_eq!(
            store.aggregates(id).unwrap().unwrap(),
            Aggregates::from_events(&events)
        );
        events
    }

    fn purchase_of(id: &str, at: Timestamp) -> IncomingEvent {
        IncomingEvent {
            relationship_id: id.into(),
            event: purchase(at, 5.0),
        }
    }

    #[test]
    fn a_group_interrupted_by_a_crash_is_undone_at_the_next_open() {
        // How many of the group's inserts reach the disk before the crash;
        // the last case has all of them but not the marker's removal.
        for reached in [0, 1, 3, usize::MAX] {
            let dir = tempfile::tempdir().unwrap();
            let before = {
                let store = Store::open_default(dir.path()).unwrap();
                for id in ["a", "b", "c"] {
                    store.upsert_relationship(&relationship(id)).unwrap();
                }
                store
                    .record_events(&[purchase_of("a", 1), purchase_of("b", 2)])
                    .unwrap();
                let before = (
                    store.event_count(),
                    store.aggregates("a").unwrap(),
                    store.aggregates("b").unwrap(),
                    store.latest_event().unwrap(),
                );
                let group = [
                    purchase_of("a", 3),
                    purchase_of("b", 9),
                    purchase_of("c", 5),
                ];
                let (mut prepared, _) = store.prepare_event_batches(&[&group]).unwrap();
                let writes = prepared.writes.take().unwrap();
                store
                    .events
                    .insert(WRITING_GROUP, encode(&writes.marker(&prepared.ids)))
                    .unwrap();
                for (key, value) in writes.writes.into_iter().take(reached) {
                    store.events.insert(key, value).unwrap();
                }
                if reached == usize::MAX {
                    store
                        .events
                        .insert(LATEST_EVENT, &writes.latest.unwrap())
                        .unwrap();
                }
                prepared.applied = true;
                drop(prepared);
                store.flush_blocking().unwrap();
                before
            };
            let store = Store::open_default(dir.path()).unwrap();
            let after = (
                store.event_count(),
                store.aggregates("a").unwrap(),
                store.aggregates("b").unwrap(),
                store.latest_event().unwrap(),
            );
            assert_eq!(after, before, "{reached} inserts reached the disk");
            assert!(store.aggregates("c").unwrap().is_none());
            assert!(!store.events.contains_key(WRITING_GROUP).unwrap());
            store.record_events(&[purchase_of("a", 7)]).unwrap();
            let events = events_matching_aggregates(&store, "a");
            assert_eq!(events.iter().map(|e| e.at).collect::<Vec<_>>(), [1, 7]);
        }
    }

    #[test]
    fn a_group_folded_on_top_of_a_dropped_group_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        store.upsert_relationship(&relationship("a")).unwrap();
        let first = [purchase_of("a", 1)];
        let second = [purchase_of("a", 2)];
        let (dropped, _) = store.prepare_event_batches(&[&first]).unwrap();
        let (refused, _) = store.prepare_event_batches(&[&second]).unwrap();
        drop(dropped);
        assert!(refused.apply().is_err());
        assert_eq!(store.event_count(), 0);
        store.record_events(&[purchase_of("a", 3)]).unwrap();
        assert_eq!(events_matching_aggregates(&store, "a").len(), 1);
    }

    #[test]
    fn groups_prepared_ahead_build_on_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        store.upsert_relationship(&relationship("a")).unwrap();
        let first = [purchase_of("a", 1)];
        let second = [purchase_of("a", 2), purchase_of("a", 3)];
        let (applied_first, _) = store.prepare_event_batches(&[&first]).unwrap();
        let (applied_second, _) = store.prepare_event_batches(&[&second]).unwrap();
        applied_first.apply().unwrap();
        applied_second.apply().unwrap();
        assert_eq!(events_matching_aggregates(&store, "a").len(), 3);
        // A bulk load waits for nothing in flight and sees all of it.
        store
            .load_relationships(&[(relationship("a"), vec![purchase(4, 1.0)])])
            .unwrap();
        assert_eq!(store.aggregates("a").unwrap().unwrap().event_count, 4);
    }

    #[test]
    fn the_writers_decoded_aggregates_follow_every_write_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        store.upsert_relationship(&relationship("a")).unwrap();
        let incoming = |at| IncomingEvent {
            relationship_id: "a".into(),
            event: purchase(at, 5.0),
        };
        store.record_events(&[incoming(1)]).unwrap();
        store.record_events(&[incoming(2)]).unwrap();
        // A bulk load of the same relationship goes around the event writer.
        store
            .load_relationships(&[(relationship("a"), vec![purchase(3, 7.0)])])
            .unwrap();
        store.record_events(&[incoming(4)]).unwrap();
        let expected = Aggregates::from_events(&store.events("a", None).unwrap());
        assert_eq!(expected.event_count, 4);
        assert_eq!(store.aggregates("a").unwrap().unwrap(), expected);
        store.clear_book().unwrap();
        store.upsert_relationship(&relationship("a")).unwrap();
        store.record_events(&[incoming(5)]).unwrap();
        assert_eq!(store.aggregates("a").unwrap().unwrap().event_count, 1);
    }

    #[test]
    fn decoded_reads_see_every_acknowledged_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        assert!(store.decoded("a").unwrap().is_none());
        store.upsert_relationship(&relationship("a")).unwrap();
        let first = store.decoded("a").unwrap().unwrap();
        assert_eq!(first.aggregates.event_count, 0);
        let mut renamed = relationship("a");
        renamed.created_at = 42;
        store.upsert_relationship(&renamed).unwrap();
        assert_eq!(
            store.decoded("a").unwrap().unwrap().relationship.created_at,
            42
        );
        store
            .record_events(&[IncomingEvent {
                relationship_id: "a".into(),
                event: purchase(7, 5.0),
            }])
            .unwrap();
        assert_eq!(
            store.decoded("a").unwrap().unwrap().aggregates.event_count,
            1
        );
        store
            .load_relationships(&[(relationship("a"), vec![purchase(8, 1.0)])])
            .unwrap();
        let loaded = store.decoded("a").unwrap().unwrap();
        assert_eq!(loaded.aggregates.event_count, 2);
        assert_eq!(loaded.relationship.created_at, relationship("a").created_at);
        store.clear_book().unwrap();
        assert!(store.decoded("a").unwrap().is_none());
    }

    #[test]
    fn aggregates_kept_in_their_own_tree_move_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open_default(dir.path()).unwrap();
            store.upsert_relationship(&relationship("a")).unwrap();
            let batch = [IncomingEvent {
                relationship_id: "a".into(),
                event: purchase(1, 7.0),
            }];
            store.record_events(&batch).unwrap();
            // The earlier layout: aggregates in a tree of their own.
            let bytes = store.events.remove(b"a").unwrap().unwrap();
            store
                .db
                .open_tree("aggregates")
                .unwrap()
                .insert(b"a", bytes)
                .unwrap();
            store.flush_blocking().unwrap();
        }
        let store = Store::open_default(dir.path()).unwrap();
        assert_eq!(store.aggregates("a").unwrap().unwrap().spend_total, 7.0);
        assert_eq!(store.event_count(), 1);
        assert!(!store
            .db
            .tree_names()
            .iter()
            .any(|n| n == b"aggregates".as_slice()));
    }

    #[test]
    fn aggregates_stored_in_the_encoding_before_kinds_are_folded_again_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (expected, events) = {
            let store = Store::open_default(dir.path()).unwrap();
            store.upsert_relationship(&relationship("a")).unwrap();
            store.upsert_relationship(&relationship("b")).unwrap();
            let batch: Vec<IncomingEvent> = [("a", 100, 7.0), ("a", 200, 5.0), ("b", 150, 2.0)]
                .iter()
                .map(|(id, at, amount)| IncomingEvent {
                    relationship_id: id.to_string(),
                    event: purchase(*at, *amount),
                })
                .collect();
            store.record_events(&batch).unwrap();
            // Encoding 1 is encoding 2 without its last field, `kinds`: for
            // a relationship without kind events that is one `None` byte.
            for id in ["a", "b"] {
                let mut bytes = store.events.get(id).unwrap().unwrap().to_vec();
                assert_eq!(bytes.pop(), Some(0), "kinds is last and None");
                store.events.insert(id, bytes).unwrap();
            }
            store.meta.remove(AGGREGATES_ENCODING).unwrap();
            assert!(
                store.aggregates("a").is_err(),
                "encoding 1 no longer decodes"
            );
            store.flush_blocking().unwrap();
            (12.0, store.events("a", None).unwrap())
        };
        let store = Store::open_default(dir.path()).unwrap();
        let mut folded = Aggregates::default();
        events.iter().for_each(|e| folded.apply(e));
        let a = store.aggregates("a").unwrap().unwrap();
        assert_eq!(a.spend_total, expected);
        assert_eq!(encode(&a), encode(&folded));
        assert_eq!(store.aggregates("b").unwrap().unwrap().spend_total, 2.0);
        assert_eq!(
            store
                .meta
                .get(AGGREGATES_ENCODING)
                .unwrap()
                .map(|v| be_u64(&v)),
            Some(Aggregates::ENCODING)
        );
        // The store serves on: another event folds into the rebuilt aggregates.
        store
            .record_events(&[IncomingEvent {
                relationship_id: "a".into(),
                event: purchase(300, 1.0),
            }])
            .unwrap();
        assert_eq!(store.aggregates("a").unwrap().unwrap().spend_total, 13.0);
    }

    #[test]
    fn a_store_with_a_newer_aggregates_encoding_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open_default(dir.path()).unwrap();
            store
                .meta
                .insert(
                    AGGREGATES_ENCODING,
                    &(Aggregates::ENCODING + 1).to_be_bytes(),
                )
                .unwrap();
            store.flush_blocking().unwrap();
        }
        let err = Store::open_default(dir.path()).err().unwrap().to_string();
        assert!(err.contains("newer Rapport"), "{err}");
    }

    #[test]
    fn the_latest_event_time_is_kept_and_found_again_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        assert_eq!(store.latest_event().unwrap(), None);
        store.upsert_relationship(&relationship("a")).unwrap();
        let at = |t| IncomingEvent {
            relationship_id: "a".into(),
            event: purchase(t, 1.0),
        };
        store.record_events(&[at(50), at(-10)]).unwrap();
        store.record_events(&[at(20)]).unwrap();
        assert_eq!(store.latest_event().unwrap(), Some(50));
        store
            .load_relationships(&[(relationship("b"), vec![purchase(90, 1.0)])])
            .unwrap();
        assert_eq!(store.latest_event().unwrap(), Some(90));
        // A store written before the time was kept: found from the aggregates.
        store.events.remove(LATEST_EVENT).unwrap();
        assert_eq!(store.latest_event().unwrap(), Some(90));
        assert!(store.events.contains_key(LATEST_EVENT).unwrap());
        assert_eq!(store.event_count(), 4);
    }

    #[test]
    fn one_pass_reads_every_relationship_with_its_own_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        for id in ["a", "a-1", "ab", "b"] {
            store.upsert_relationship(&relationship(id)).unwrap();
        }
        let at = |id: &str, t| IncomingEvent {
            relationship_id: id.into(),
            event: purchase(t, 1.0),
        };
        store
            .record_events(&[at("a-1", 5), at("a", 3), at("ab", 1), at("a", 1)])
            .unwrap();
        let read: Vec<(String, Vec<Timestamp>)> = store
            .relationships_with_events_in(&IdRange::default())
            .map(|item| {
                let (r, events) = item.unwrap();
                (r.id, events.iter().map(|e| e.at).collect())
            })
            .collect();
        let expected: Vec<(String, Vec<Timestamp>)> = vec![
            ("a".into(), vec![1, 3]),
            ("a-1".into(), vec![5]),
            ("ab".into(), vec![1]),
            ("b".into(), vec![]),
        ];
        assert_eq!(read, expected);
        for (id, times) in &expected {
            let by_prefix: Vec<_> = store
                .events(id, None)
                .unwrap()
                .iter()
                .map(|e| e.at)
                .collect();
            assert_eq!(&by_prefix, times);
        }
    }

    #[test]
    fn book_chunks_cover_the_book_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_default(dir.path()).unwrap();
        let empty = store.book_chunks(3);
        assert_eq!(empty.next_range().unwrap(), Some((0, IdRange::default())));
        assert_eq!(empty.next_range().unwrap(), None);
        // Prefixes of one another, so that events of one id lie between others.
        let ids = ["a", "a-1", "ab", "b", "b-2", "ba", "c", "cz"];
        for id in ids {
            store.upsert_relationship(&relationship(id)).unwrap();
            store
                .record_events(&[purchase_of(id, 1), purchase_of(id, 2)])
                .unwrap();
        }
        let chunks = store.book_chunks(3);
        let mut read = Vec::new();
        while let Some((number, range)) = chunks.next_range().unwrap() {
            assert_eq!(number, read.len());
            let chunk: Vec<(String, usize)> = store
                .relationships_with_events_in(&range)
                .map(|item| {
                    let (r, events) = item.unwrap();
                    (r.id, events.len())
                })
                .collect();
            read.push(chunk);
        }
        assert_eq!(read.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
        let expected: Vec<(String, usize)> = ids.iter().map(|id| (id.to_string(), 2)).collect();
        assert_eq!(read.concat(), expected);
    }

    #[test]
    fn negative_times_sort_before_positive_ones() {
        assert!(event_key("x", -5, 0) < event_key("x", 5, 0));
        assert!(event_key("x", 5, 0) < event_key("x", 5, 1));
    }

    #[test]
    fn acknowledged_writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open_default(dir.path()).unwrap();
            store.upsert_relationship(&relationship("a")).unwrap();
            store.flush_blocking().unwrap();
        }
        let store = Store::open_default(dir.path()).unwrap();
        assert!(store.relationship("a").unwrap().is_some());
    }
}
