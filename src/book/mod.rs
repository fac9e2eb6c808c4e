//! The book at a glance: the score index, and the answers it makes cheap
//! (queries, summaries, campaign plans), and erasure, which must reach it.
//!
//! # The score index
//!
//! One row per relationship with its headline Score and Segment
//! ([`crate::engine::Headline`]: churn, value, value at risk, health; RFM
//! segment, tier, cluster, stage), computed by the engine's own code for the
//! active models as of the time the row carries, beside what it was computed
//! from (the relationship's kind, creation time and attributes, and its
//! fold's event count and last event). So a row equals what Score and
//! Segment answer for its id at its `as_of` with its model version.
//!
//! - **Built** on a background thread (`maintain`) when there is none, when
//!   the active versions change (a promotion or rollback), when the UTC day
//!   changes, and at start-up to check what the store kept. The previous
//!   index answers until the new one is complete; every answer says which
//!   versions and time it comes from. A build reuses each row of the previous
//!   index that is still right (same version for its kind, same day, same
//!   relationship and fold), so a restart on the same day recomputes nothing.
//! - **Updated** as writes arrive: the engine notes each id it writes
//!   ([`crate::engine::Changes`]) and the thread recomputes those rows; a
//!   query first waits for the thread to have taken every write acknowledged
//!   before it began.
//! - **Kept** in the store ([`crate::store::IndexStore`]) a batch at a time,
//!   behind the updates; rows read back are checked as above, so a row the
//!   store kept stale is recomputed, never served as current.
//!
//! Score by id never reads the index: a row lacks the reasons and the
//! timing curve, and its `as_of` is when it was computed, while Score
//! defaults to now.
//!
//! # Erasure
//!
//! [`Book::delete`] holds the index's lock while the store erases the
//! relationship and the row leaves the serving index and every page
//! snapshot; the thread holds the same lock while it recomputes rows, saves
//! them and swaps in a new index, and drains the writes noted meanwhile
//! before a swap, so no erased row is recomputed, saved or swapped back in.
//!
//! - `row`: a row, its checks and its stored form; the interner
//! - `table`: an index (rows by id, the models it is for)
//! - `maintain`: the thread that builds, updates and saves the index
//! - `query`: filters, orders and page snapshots
//! - `summary`: totals by kind × segment, stage and tier; baselines
//! - `plan`: the campaign planner (pure); `campaign`: plans over the book

mod campaign;
mod maintain;
pub mod plan;
pub mod query;
pub mod row;
pub mod summary;
mod table;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::time::{now, Timestamp};

pub use campaign::{CampaignRequest, PlanOutput, PlanTotals, PlannedRow};
pub use query::{Filter, Order, OrderBy, Page, QueryRequest};
pub use row::{Row, Sym};
pub use summary::{Baseline, Change, Group, Summary, Totals};

use maintain::Maintainer;
use query::Snapshots;
use row::Interner;
use summary::Baselines;
use table::Table;

/// Where an answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStatus {
    /// The default model's version the index was built for; 0 for one read
    /// back from the store and not yet checked.
    pub model_version: u64,
    pub built_at: Timestamp,
    pub relationships: u64,
    pub rebuilding: bool,
    pub rebuilt: u64,
}

#[derive(Debug, Clone)]
pub struct QueryAnswer {
    pub page: Page,
    pub index: IndexStatus,
}

#[derive(Debug, Clone)]
pub struct SummaryAnswer {
    pub summary: Summary,
    pub baseline: Option<Summary>,
    pub index: IndexStatus,
}

/// Cheap-to-clone handle on the score index. With [`Book::start`] a thread
/// maintains it until the last handle is dropped or [`Book::shutdown`].
#[derive(Clone)]
pub struct Book {
    inner: Arc<Inner>,
    worker: Arc<Worker>,
}

struct Inner {
    engine: Engine,
    serving: ArcSwapOption<Table>,
    /// See "Erasure".
    swap: Mutex<()>,
    interner: Interner,
    snapshots: Snapshots,
    baselines: Baselines,
    rebuilding: AtomicBool,
    rebuilt: AtomicU64,
    /// The engine's note count the thread has taken everything up to.
    processed: Mutex<u64>,
    processed_changed: Condvar,
    stop: AtomicBool,
}

struct Worker {
    inner: Arc<Inner>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Worker {
    fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the score index thread panicked");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values change in single assignments.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a query waits for the index to take the writes acknowledged
/// before it; after that it answers from the index as it is.
const SYNC_WAIT: Duration = Duration::from_secs(5);

impl Book {
    /// Reads the index the store kept (served at once, as the previous index,
    /// while it is checked) and starts the thread that maintains it.
    ///
    /// # Errors
    /// `Storage` when the store cannot be read; `Io` when the thread cannot start.
    pub fn start(engine: Engine) -> Result<Book> {
        engine.changes().subscribe();
        let book = Book::open(engine)?;
        let mut maintainer = Maintainer::new(Arc::clone(&book.inner));
        let thread = std::thread::Builder::new()
            .name("rapport-index".into())
            .spawn(move || maintainer.run())?;
        *lock(&book.worker.thread) = Some(thread);
        Ok(book)
    }

    /// The index for one command: read back, checked and completed on this
    /// thread (rows still right are reused), saved, with no thread after.
    ///
    /// # Errors
    /// `FailedPrecondition` without an active model; as the engine and store.
    pub fn offline(engine: Engine) -> Result<Book> {
        if !engine.has_model() {
            return Err(Error::precondition(
                "no model is active: train one first (rapport train --activate)",
            ));
        }
        let book = Book::open(engine)?;
        Maintainer::new(Arc::clone(&book.inner)).complete()?;
        Ok(book)
    }

    fn open(engine: Engine) -> Result<Book> {
        let baselines = match engine.store().index_note(Baselines::NOTE)? {
            Some(bytes) => Baselines::load(&bytes).unwrap_or_else(|e| {
                tracing::warn!("summary baselines not read back, starting without: {e}");
                Baselines::default()
            }),
            None => Baselines::default(),
        };
        let inner = Arc::new(Inner {
            engine,
            serving: ArcSwapOption::empty(),
            swap: Mutex::new(()),
            interner: Interner::default(),
            snapshots: Snapshots::default(),
            baselines,
            rebuilding: AtomicBool::new(false),
            rebuilt: AtomicU64::new(0),
            processed: Mutex::new(0),
            processed_changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        if let Some(table) = maintain::read_back(&inner)? {
            inner.serving.store(Some(Arc::new(table)));
        }
        Ok(Book {
            worker: Arc::new(Worker {
                inner: Arc::clone(&inner),
                thread: Mutex::new(None),
            }),
            inner,
        })
    }

    /// Stops the thread after it has saved what it had not, and waits for it.
    pub fn shutdown(&self) {
        self.worker.stop();
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Where answers come from now; `None` before the first index.
    pub fn status(&self) -> Option<IndexStatus> {
        self.inner
            .serving
            .load_full()
            .map(|t| self.inner.status(&t))
    }

    /// One page of relationships.
    ///
    /// # Errors
    /// As [`Snapshots::page`]; `FailedPrecondition` before the first index.
    pub fn query(&self, request: &QueryRequest) -> Result<QueryAnswer> {
        let table = self.inner.current()?;
        let page = self
            .inner
            .snapshots
            .page(request, &self.inner.interner, |keep| {
                query::kept(&table.read(), keep)
            })?;
        Ok(QueryAnswer {
            page,
            index: self.inner.status(&table),
        })
    }

    /// Totals of the relationships `filter` matches, against `baseline`.
    ///
    /// # Errors
    /// `InvalidArgument` for a bad filter or a previous-model baseline with a
    /// filter; `FailedPrecondition` before the first index.
    pub fn summarize(&self, filter: &Filter, baseline: Baseline) -> Result<SummaryAnswer> {
        filter.validate()?;
        let table = self.inner.current()?;
        let compiled = filter.compile(&self.inner.interner);
        let summary =
            summary::summarize(table.read().iter(), &compiled, table.model_version(), now());
        let fingerprint = query::fingerprint(filter, Order::default());
        let baseline =
            self.inner
                .baselines
                .exchange(baseline, !filter.is_empty(), fingerprint, &summary)?;
        Ok(SummaryAnswer {
            summary,
            baseline,
            index: self.inner.status(&table),
        })
    }

    /// Erases a relationship from the store, the index and every page
    /// snapshot (see "Erasure"). Blocks: call it from a thread that may.
    ///
    /// # Errors
    /// As [`Engine::delete_relationship`].
    pub fn delete(&self, id: &str) -> Result<u64> {
        let inner = &self.inner;
        let events = {
            let _one_at_a_time = lock(&inner.swap);
            let events = inner.engine.delete_relationship(id)?;
            if let Some(table) = inner.serving.load_full() {
                table.write().remove(id);
            }
            inner.snapshots.erase(id);
            events
        };
        inner.interner.sweep();
        Ok(events)
    }
}

impl Inner {
    /// The serving index once it has taken every write acknowledged before
    /// the call (waiting up to [`SYNC_WAIT`]).
    fn current(&self) -> Result<Arc<Table>> {
        let changes = self.engine.changes();
        if changes.is_subscribed() {
            let target = changes.noted();
            let processed = lock(&self.processed);
            let (_caught_up, timeout) = self
                .processed_changed
                .wait_timeout_while(processed, SYNC_WAIT, |p| *p < target)
                .unwrap_or_else(PoisonError::into_inner);
            if timeout.timed_out() {
                tracing::warn!("the score index is behind the writes; answering from it as it is");
            }
        }
        self.serving.load_full().ok_or_else(|| {
            if self.engine.has_model() {
                Error::precondition(format!(
                    "the score index is being built ({} relationships so far): try again shortly",
                    self.rebuilt.load(Ordering::Relaxed)
                ))
            } else {
                Error::precondition(
                    "no model is active yet: wait for start-up training to finish, or run `rapport train`",
                )
            }
        })
    }

    fn set_processed(&self, upto: u64) {
        let mut processed = lock(&self.processed);
        if upto > *processed {
            *processed = upto;
            self.processed_changed.notify_all();
        }
    }

    fn status(&self, table: &Table) -> IndexStatus {
        IndexStatus {
            model_version: table.model_version(),
            built_at: table.built_at,
            relationships: table.len() as u64,
            rebuilding: self.rebuilding.load(Ordering::Relaxed),
            rebuilt: self.rebuilt.load(Ordering::Relaxed),
        }
    }
}

/// `f` over `items` on every core, results in the order of `items`.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || items.len() < 64 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let parts: Vec<_> = items
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("an index worker panicked"))
            .collect()
    })
}
