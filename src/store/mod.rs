//! Storage: what the rest of Rapport needs from a store, as traits, and the
//! backends that provide it.
//!
//! A store keeps the book (relationships, their events in time order, and per
//! relationship an [`EventFold`] value folded in as events are written, in
//! the same atomic unit), the product catalogue, and the model registry
//! (versioned artifacts, an atomically allocated version number, the active
//! version per [`ModelSlot`]), and the score index's entries (opaque rows
//! per relationship, kept so that a restart need not recompute them). It
//! knows how to keep these, not what they mean: values are the domain's types
//! or opaque bytes, and the fold is the caller's type (`features::Aggregates`).
//!
//! - [`sled`]: the embedded default, one process per data directory.
//! - [`backup`]: a whole store to a directory and back, through these traits.
//! - [`contract`]: the behaviour every backend must show, as a test suite a
//!   backend runs against itself.
//!
//! Write paths say when they are durable: [`EventStore::record_events`] is
//! durable when it returns; the others are durable after [`Store::flush`].

pub mod backup;
pub mod contract;
pub mod sled;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Event, EventFold, IncomingEvent, ModelSlot, Product, Relationship};
use crate::error::Result;
use crate::time::Timestamp;

/// A relationship with its whole history, as loaders write and training reads it.
pub type History = (Relationship, Vec<Event>);

/// A relationship with its fold (the default when it has no events), as
/// Score, Segment and Recommend read them.
#[derive(Debug)]
pub struct Decoded<A> {
    pub relationship: Relationship,
    pub aggregates: A,
}

impl<A: EventFold> Decoded<A> {
    pub fn approx_bytes(&self) -> usize {
        self.relationship.approx_bytes() + self.aggregates.approx_bytes()
    }
}

/// Where the demo book stands in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoState {
    Absent,
    /// Generation started but did not finish: the data is partial.
    Loading,
    Loaded,
}

pub trait RelationshipStore: Send + Sync {
    /// Creates or replaces a relationship; returns whether it was new.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn upsert_relationship(&self, relationship: &Relationship) -> Result<bool>;

    /// # Errors
    /// `Storage` on I/O failure, `Corrupt` on an undecodable value.
    fn relationship(&self, id: &str) -> Result<Option<Relationship>>;

    /// # Errors
    /// `Storage` on I/O failure.
    fn relationship_count(&self) -> Result<usize>;

    /// # Errors
    /// `Storage` on I/O failure.
    fn has_relationships(&self) -> Result<bool>;

    /// Every relationship, in id order.
    fn relationships(&self) -> Box<dyn Iterator<Item = Result<Relationship>> + Send + '_>;
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Records a batch of events (checked by the caller) and updates each
    /// relationship's fold: all of the batch or none of it, durable when it
    /// returns.
    ///
    /// # Errors
    /// `NotFound` naming an unknown relationship (nothing is written);
    /// `Storage` when the write or its sync failed.
    async fn record_events(&self, batch: Vec<IncomingEvent>) -> Result<usize>;

    /// Bulk path for loaders that own whole histories (demo book, CSV
    /// ingest): writes each relationship, its events and its fold. Atomic per
    /// call; durable after a flush.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn load_histories(&self, items: &[History]) -> Result<()>;

    /// A relationship's events in time order, up to and including `until`.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    fn events(&self, id: &str, until: Option<Timestamp>) -> Result<Vec<Event>>;

    /// The time of the latest event written, `None` when there is none.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    fn latest_event(&self) -> Result<Option<Timestamp>>;

    /// How many events the store holds (a full count: for logs and tests).
    ///
    /// # Errors
    /// `Storage`.
    fn event_count(&self) -> Result<usize>;

    /// The book in numbered chunks of about `size` consecutive relationships
    /// with their histories, for readers on several threads.
    fn history_chunks(&self, size: usize) -> Box<dyn HistoryChunks + '_>;
}

/// Hands out the book's histories in chunks. A chunk's number and content
/// depend only on the book, not on which reader asked first, so readers on
/// several threads can put rows back in book order.
pub trait HistoryChunks: Send + Sync {
    /// The next chunk and its number, `None` at the end of the book.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    fn next_chunk(&self) -> Result<Option<(usize, Vec<History>)>>;
}

pub trait AggregateStore<A>: Send + Sync {
    /// The fold over all of a relationship's events; `None` without events.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    fn aggregates(&self, id: &str) -> Result<Option<A>>;

    /// A relationship and its fold, decoded once and shared while neither
    /// changes; `None` for an unknown id. What an acknowledged write changed
    /// is what the next call sees.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    fn decoded(&self, id: &str) -> Result<Option<Arc<Decoded<A>>>>;

    /// Entries and estimated bytes held decoded, for logs.
    fn read_cache_usage(&self) -> (usize, usize);

    /// Lookups of [`Self::decoded`] that hit and missed its cache since the
    /// store opened, for the hit-ratio metric; `(0, 0)` without a cache.
    fn read_cache_counts(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Up to `limit` relationships with an id after `after` (from the first
    /// when `None`), in id order, each with its fold (the default without
    /// events): a whole-book pass in pages. Read past the read cache, which
    /// a pass over the book would only churn.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    fn decoded_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Decoded<A>>>;
}

/// The score index's persisted rows: one opaque entry per relationship id,
/// and a few named notes beside them. The index layer encodes both and checks
/// every row it reads back against the book, so entries may lag the book
/// (they are written in the background); erasing a relationship removes its
/// entry in the same unit as the relationship ([`Store::delete_relationship`]).
pub trait IndexStore: Send + Sync {
    /// Stores or replaces entries by relationship id; durable after a flush.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn put_index_entries(&self, entries: &[(&str, Vec<u8>)]) -> Result<()>;

    /// Removes entries (absent ids are ignored); durable after a flush.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn remove_index_entries(&self, ids: &[&str]) -> Result<()>;

    /// Every entry, in id order.
    fn index_entries(&self) -> Box<dyn Iterator<Item = Result<(String, Vec<u8>)>> + Send + '_>;

    /// # Errors
    /// `Storage` on I/O failure.
    fn index_note(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// # Errors
    /// `Storage` on I/O failure.
    fn set_index_note(&self, name: &str, value: &[u8]) -> Result<()>;
}

pub trait ProductStore: Send + Sync {
    /// # Errors
    /// `Storage` on I/O failure.
    fn put_products(&self, products: &[Product]) -> Result<()>;

    /// # Errors
    /// `Storage` or `Corrupt`.
    fn products(&self) -> Result<Vec<Product>>;
}

/// Model versions as opaque artifacts: a bundle and its summary, each bytes
/// the model layer encodes.
pub trait ModelRegistry: Send + Sync {
    /// The next version number, never handed out before, even to a
    /// concurrent caller or after a crash. A version whose training then fails
    /// leaves a gap.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn allocate_model_version(&self) -> Result<u64>;

    /// Stores version `version` (allocated by [`Self::allocate_model_version`]);
    /// an empty `summary` stores none, as for a bundle an earlier Rapport stored.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn put_model(&self, version: u64, summary: &[u8], bundle: &[u8]) -> Result<()>;

    /// # Errors
    /// `Storage` on I/O failure.
    fn model_bundle(&self, version: u64) -> Result<Option<Vec<u8>>>;

    /// `None` for an unknown version, and for versions stored before summaries were.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn model_summary(&self, version: u64) -> Result<Option<Vec<u8>>>;

    /// Every stored version, oldest first.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn model_versions(&self) -> Result<Vec<u64>>;

    /// The version active in `slot`.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn active_model(&self, slot: ModelSlot) -> Result<Option<u64>>;

    /// Makes `version` active in `slot`, remembering the one it replaces for
    /// [`Self::previous_active_model`]; both change together.
    ///
    /// # Errors
    /// `NotFound` when the version is not stored.
    fn set_active_model(&self, slot: ModelSlot, version: u64) -> Result<()>;

    /// The version active in `slot` before the current one.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn previous_active_model(&self, slot: ModelSlot) -> Result<Option<u64>>;

    /// Stores data that belongs to a version rather than to the book, under
    /// `name`, replacing what was there: a table model's own relationships,
    /// say, which must never be written into the live book. Durable after a
    /// flush; deleted with the version.
    ///
    /// # Errors
    /// `NotFound` when the version is not stored; `Storage` on I/O failure.
    fn put_model_artifact(&self, version: u64, name: &str, bytes: &[u8]) -> Result<()>;

    /// Every artifact of `version`, by name in name order; empty for an
    /// unknown version.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn model_artifacts(&self, version: u64) -> Result<Vec<(String, Vec<u8>)>>;

    /// Deletes a version with its summary and artifacts; returns whether it
    /// was stored. The store does not check which versions are active: the
    /// caller keeps those (retention never deletes the active or previous one).
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn delete_model(&self, version: u64) -> Result<bool>;
}

/// Everything Rapport keeps, in one backend.
#[async_trait]
pub trait Store<A: EventFold>:
    RelationshipStore + EventStore + AggregateStore<A> + ProductStore + ModelRegistry + IndexStore
{
    /// Waits until every write so far is durable.
    ///
    /// # Errors
    /// `Storage` when the sync fails; the writes may then be lost.
    async fn flush(&self) -> Result<()>;

    /// Blocking form of [`Store::flush`], for threads that may block.
    ///
    /// # Errors
    /// As [`Store::flush`].
    fn flush_blocking(&self) -> Result<()>;

    /// # Errors
    /// `Storage` on I/O failure.
    fn demo_state(&self) -> Result<DemoState>;

    /// # Errors
    /// `Storage` on I/O failure.
    fn set_demo_state(&self, state: DemoState) -> Result<()>;

    /// Drops every relationship, event, fold, product and score-index entry
    /// and note (not the models): used to restart a demo load that was
    /// interrupted.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    fn clear_book(&self) -> Result<()>;

    /// Erases a relationship: its record, its events, its fold, its
    /// score-index entry and every copy a cache holds, as one unit, so that
    /// no read, scan or training pass finds it afterwards. Events recorded
    /// for it afterwards are `NotFound`. Durable after a flush. Returns how
    /// many events it had, `None` when the id is unknown.
    ///
    /// # Errors
    /// `Storage` on I/O failure, `Corrupt` on an undecodable fold.
    fn delete_relationship(&self, id: &str) -> Result<Option<u64>>;

    /// Writes a small marker and makes it durable: how health tells, after a
    /// failed write, when writes work again (space freed on a full disk).
    /// Backends whose failure is permanent until reopened reopen here.
    ///
    /// # Errors
    /// `Storage` or `Io` while writes still fail.
    fn probe_writes(&self) -> Result<()>;
}
