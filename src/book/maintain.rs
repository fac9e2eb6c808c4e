//! The thread that keeps the score index current (see the module header of
//! `book`): it takes the engine's changes, recomputes their rows, builds a
//! new index a page of the book at a time when one is due, swaps it in, and
//! saves rows to the store in batches.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Taken;
use crate::error::{Error, Result};
use crate::features::Aggregates;
use crate::model::ModelRouter;
use crate::store::Decoded;
use crate::time::{day_of, now};

use super::row::{Row, Sym};
use super::summary::summarize;
use super::table::{versions_of, Table};
use super::{lock, parallel, Inner};

/// Relationships read and computed per step of a build: a few milliseconds
/// on two cores, so writes are taken between steps without waiting long.
const BUILD_PAGE: usize = 4_096;
/// Rows saved per step.
const SAVE_BATCH: usize = 10_000;
/// Updated rows wait at most this long to be saved.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// How long the idle thread sleeps between looks at the clock and the models.
const IDLE: Duration = Duration::from_millis(200);
/// How long after a failed build the next one starts.
const RETRY: Duration = Duration::from_secs(30);

pub(super) struct Maintainer {
    inner: Arc<Inner>,
    build: Option<Build>,
    /// Ids whose serving rows the store does not have yet.
    unsaved: HashSet<Sym>,
    last_save: Instant,
    retry_at: Option<Instant>,
}

struct Build {
    table: Table,
    models: Arc<ModelRouter>,
    /// The last id read; `None` before the first page.
    cursor: Option<String>,
    /// The whole book has been read.
    read: bool,
    started: Instant,
    /// Rows computed rather than reused: the ones to save.
    computed: HashSet<Sym>,
    reused: u64,
}

impl Build {
    fn passed(&self, id: &str) -> bool {
        self.read || self.cursor.as_deref().is_some_and(|c| id <= c)
    }
}

/// The index the store kept, unchecked; `None` when it kept none.
///
/// # Errors
/// `Storage` when the entries cannot be read.
pub(super) fn read_back(inner: &Inner) -> Result<Option<Table>> {
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut unreadable = 0usize;
    for entry in inner.engine.store().index_entries() {
        let (id, bytes) = entry?;
        match Row::decode(&id, &bytes, &inner.interner) {
            Ok(row) => rows.push(Arc::new(row)),
            Err(_) => unreadable += 1,
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let built_at = rows.iter().map(|r| r.as_of).min().unwrap_or_else(now);
    let table = Table::new(None, built_at);
    {
        let mut w = table.write();
        for row in rows {
            w.put(row);
        }
    }
    tracing::info!(
        rows = table.len(),
        unreadable,
        seconds = started.elapsed().as_secs_f64(),
        "score index read back; checking it against the book"
    );
    Ok(Some(table))
}

impl Maintainer {
    pub fn new(inner: Arc<Inner>) -> Maintainer {
        Maintainer {
            inner,
            build: None,
            unsaved: HashSet::new(),
            last_save: Instant::now(),
            retry_at: None,
        }
    }

    /// The thread's loop, until the book asks it to stop.
    pub fn run(&mut self) {
        while !self.inner.stop.load(Ordering::SeqCst) {
            let busy = self.build.is_some() || self.save_due();
            let taken = self
                .inner
                .engine
                .changes()
                .wait(if busy { Duration::ZERO } else { IDLE });
            if let Err(e) = self.step(taken) {
                tracing::error!("score index: {e}; building again in {} s", RETRY.as_secs());
                self.abandon_build();
                self.retry_at = Some(Instant::now() + RETRY);
            }
        }
        if let Err(e) = self.save_all() {
            tracing::error!("score index: rows not saved at shutdown (they are recomputed at the next start): {e}");
        }
    }

    /// Builds (or checks) the index to completion on this thread and saves it.
    ///
    /// # Errors
    /// As a build.
    pub fn complete(&mut self) -> Result<()> {
        self.step(Taken::default())?;
        while self.build.is_some() {
            self.step(Taken::default())?;
        }
        self.save_all()
    }

    fn step(&mut self, taken: Taken) -> Result<()> {
        let applied = if taken.ids.is_empty() {
            Ok(())
        } else {
            self.apply(&taken.ids)
        };
        // Taken, even if not applied: a query must not wait on a failure.
        self.inner.set_processed(taken.upto);
        applied?;
        let models = self.inner.engine.models();
        let restart = self
            .build
            .as_ref()
            .is_some_and(|b| versions_of(&b.models) != versions_of(&models));
        if restart {
            tracing::info!("the active models changed during a score index build: starting again");
            self.abandon_build();
        }
        if self.build.is_none()
            && self.retry_at.is_none_or(|t| Instant::now() >= t)
            && self.build_due(&models, taken.book)
        {
            self.retry_at = None;
            self.start_build(models);
        }
        if self.build.is_some() {
            self.build_page()?;
        } else if self.save_due() {
            self.save_some()?;
        }
        Ok(())
    }

    fn build_due(&self, models: &Arc<ModelRouter>, book_changed: bool) -> bool {
        if models.is_empty() {
            return false;
        }
        match self.inner.serving.load_full() {
            None => true,
            Some(t) => {
                book_changed
                    || t.versions.as_ref() != Some(&versions_of(models))
                    || day_of(now()) != day_of(t.built_at)
            }
        }
    }

    fn start_build(&mut self, models: Arc<ModelRouter>) {
        tracing::info!(versions = ?versions_of(&models), "building the score index");
        self.inner.rebuilding.store(true, Ordering::Relaxed);
        self.inner.rebuilt.store(0, Ordering::Relaxed);
        self.build = Some(Build {
            table: Table::new(Some(Arc::clone(&models)), now()),
            models,
            cursor: None,
            read: false,
            started: Instant::now(),
            computed: HashSet::new(),
            reused: 0,
        });
    }

    fn abandon_build(&mut self) {
        self.build = None;
        self.inner.rebuilding.store(false, Ordering::Relaxed);
        self.inner.rebuilt.store(0, Ordering::Relaxed);
    }

    /// Reads and computes the next page of the book; finishes at the end.
    fn build_page(&mut self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let Some(build) = self.build.as_mut() else {
            return Ok(());
        };
        let page = inner
            .engine
            .store()
            .decoded_after(build.cursor.as_deref(), BUILD_PAGE)?;
        let Some(last) = page.last() else {
            return self.finish();
        };
        build.cursor = Some(last.relationship.id.clone());
        let page: Vec<Arc<Decoded<Aggregates>>> = page.into_iter().map(Arc::new).collect();
        let previous = inner.serving.load_full();
        let as_of = now();
        let today = day_of(as_of);
        let models = &build.models;
        let rows = parallel(&page, |data| {
            if let Some(old) = previous.as_ref().and_then(|t| t.get(&data.relationship.id)) {
                if old.is_current(models, today)
                    && old.matches_book(&data.relationship, &data.aggregates)
                {
                    return Ok(Some((old, false)));
                }
            }
            compute(&inner, models, Arc::clone(data), as_of).map(|row| row.map(|r| (r, true)))
        });
        let mut table = build.table.write();
        for (data, row) in page.iter().zip(rows) {
            match row? {
                Some((row, computed)) => {
                    if computed {
                        build.computed.insert(Arc::clone(&row.id));
                    } else {
                        build.reused += 1;
                    }
                    table.put(row);
                }
                None => {
                    table.remove(&data.relationship.id);
                }
            }
        }
        drop(table);
        inner
            .rebuilt
            .fetch_add(page.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Swaps the built index in, under the lock and after the writes noted
    /// meanwhile (see "Erasure").
    fn finish(&mut self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let _one_at_a_time = lock(&inner.swap);
        let taken = inner.engine.changes().wait(Duration::ZERO);
        if let Some(build) = self.build.as_mut() {
            build.read = true;
        }
        self.apply_locked(&taken.ids)?;
        let Some(build) = self.build.take() else {
            return Ok(());
        };
        let previous = inner.serving.load_full();
        let mut gone: Vec<Sym> = Vec::new();
        if let Some(previous) = &previous {
            if previous.versions.is_some() && previous.versions != build.table.versions {
                let everything = super::Filter::default().compile(&inner.interner);
                inner.baselines.set_previous_model(summarize(
                    previous.read().iter(),
                    &everything,
                    previous.model_version(),
                    now(),
                ));
            }
            let new = build.table.read();
            gone.extend(
                previous
                    .read()
                    .iter()
                    .filter(|r| new.get(&r.id).is_none())
                    .map(|r| Arc::clone(&r.id)),
            );
        }
        let rows = build.table.len();
        let computed = build.computed.len();
        inner.serving.store(Some(Arc::new(build.table)));
        inner.set_processed(taken.upto);
        inner.rebuilding.store(false, Ordering::Relaxed);
        let gone_ids: Vec<&str> = gone.iter().map(|id| id.as_ref()).collect();
        inner.engine.store().remove_index_entries(&gone_ids)?;
        self.unsaved.extend(build.computed);
        tracing::info!(
            rows,
            computed,
            reused = build.reused,
            seconds = build.started.elapsed().as_secs_f64(),
            "score index built"
        );
        Ok(())
    }

    /// Recomputes the rows of `ids` in the serving index (and in a build,
    /// for ids it has read past), under the lock.
    fn apply(&mut self, ids: &[String]) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let _one_at_a_time = lock(&inner.swap);
        self.apply_locked(ids)
    }

    fn apply_locked(&mut self, ids: &[String]) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let store = inner.engine.store();
        let serving = inner.serving.load_full();
        let active = inner.engine.models();
        let as_of = now();
        let mut erased = Vec::new();
        for id in ids {
            let Some(data) = store.decoded(id)? else {
                erased.push(id.as_str());
                continue;
            };
            if let Some(table) = &serving {
                let models = table.models.as_ref().unwrap_or(&active);
                match compute(&inner, models, Arc::clone(&data), as_of)? {
                    Some(row) => {
                        self.unsaved.insert(Arc::clone(&row.id));
                        table.write().put(row);
                    }
                    None => {
                        table.write().remove(id);
                    }
                }
            }
            if let Some(build) = self.build.as_mut().filter(|b| b.passed(id)) {
                match compute(&inner, &build.models, Arc::clone(&data), as_of)? {
                    Some(row) => {
                        build.computed.insert(Arc::clone(&row.id));
                        build.table.write().put(row);
                    }
                    None => {
                        build.table.write().remove(id);
                    }
                }
            }
        }
        if !erased.is_empty() {
            for id in &erased {
                if let Some(table) = &serving {
                    table.write().remove(id);
                }
                if let Some(build) = &self.build {
                    build.table.write().remove(id);
                }
            }
            // Erasing already took the entries; an id gone another way takes them now.
            store.remove_index_entries(&erased)?;
        }
        Ok(())
    }

    fn save_due(&self) -> bool {
        !self.unsaved.is_empty()
            && (self.unsaved.len() >= SAVE_BATCH || self.last_save.elapsed() >= SAVE_EVERY)
    }

    /// Saves up to a batch of rows; with none left, the baselines, and lets
    /// strings no row holds go.
    fn save_some(&mut self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let batch: Vec<Sym> = self.unsaved.iter().take(SAVE_BATCH).cloned().collect();
        {
            let _one_at_a_time = lock(&inner.swap);
            if let Some(table) = inner.serving.load_full() {
                let rows = table.read();
                let entries: Vec<(&str, Vec<u8>)> = batch
                    .iter()
                    .filter_map(|id| rows.get(id).map(|r| (id.as_ref(), r.encode())))
                    .collect();
                inner.engine.store().put_index_entries(&entries)?;
            }
        }
        for id in &batch {
            self.unsaved.remove(id);
        }
        if self.unsaved.is_empty() {
            if let Some(bytes) = inner.baselines.to_save() {
                inner
                    .engine
                    .store()
                    .set_index_note(super::summary::Baselines::NOTE, &bytes)?;
            }
            inner.interner.sweep();
            self.last_save = Instant::now();
        }
        Ok(())
    }

    fn save_all(&mut self) -> Result<()> {
        while !self.unsaved.is_empty() {
            self.save_some()?;
        }
        if let Some(bytes) = self.inner.baselines.to_save() {
            self.inner
                .engine
                .store()
                .set_index_note(super::summary::Baselines::NOTE, &bytes)?;
        }
        Ok(())
    }
}

/// The row of `data` with `models` as of `as_of`; `None` when it cannot be
/// scored (it then stays out of the index, with a warning).
///
/// # Errors
/// `Storage` or `Corrupt` from the store.
fn compute(
    inner: &Inner,
    models: &ModelRouter,
    data: Arc<Decoded<Aggregates>>,
    as_of: i64,
) -> Result<Option<Arc<Row>>> {
    match inner.engine.headline(models, Arc::clone(&data), as_of) {
        Ok(headline) => Ok(Some(Arc::new(Row::new(
            &data.relationship,
            &data.aggregates,
            headline,
            &inner.interner,
        )))),
        Err(e @ (Error::Storage(_) | Error::Corrupt { .. } | Error::Io(_))) => Err(e),
        Err(e) => {
            tracing::warn!(relationship_id = %data.relationship.id, "left out of the score index: {e}");
            Ok(None)
        }
    }
}
