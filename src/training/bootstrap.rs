//! Start-up: a store without an active model gets one. An empty store first
//! gets the deterministic demo book (generated, loaded durably, marked so an
//! interrupted load is redone), then the spec trains, the version is saved
//! and made active.

use std::time::Instant;

use crate::domain::ModelSlot;
use crate::error::{Error, Result};
use crate::model::ModelSpec;
use crate::store::DemoState;
use crate::training::demo::{DemoBook, DemoConfig};
use crate::training::train_and_save;
use crate::SharedStore;

/// Relationships loaded per transaction during the demo load.
const DEMO_CHUNK: usize = 500;
/// How often a process waiting for another's start-up training looks again.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Brings a store without an active model to one: loads the demo book into an
/// empty store (or restarts an interrupted load), trains, saves and activates.
/// `refused` is an active version this process cannot serve (an earlier
/// format): it counts as no model, so it is replaced rather than returned.
///
/// # Errors
/// `FailedPrecondition` when the store is empty and no demo is configured.
pub fn bootstrap(
    store: &SharedStore,
    spec: &ModelSpec,
    demo: Option<DemoConfig>,
    refused: Option<u64>,
) -> Result<u64> {
    let servable = || -> Result<Option<u64>> {
        Ok(store
            .active_model(ModelSlot::Default)?
            .filter(|v| Some(*v) != refused))
    };
    // Processes sharing a store (Redis) start together: one loads and trains
    // while the others wait for its model.
    let mut waiting = false;
    let _lease = loop {
        match store.training_lease() {
            Ok(lease) => break lease,
            Err(Error::FailedPrecondition { reason }) => {
                if let Some(version) = servable()? {
                    return Ok(version);
                }
                if !waiting {
                    tracing::info!("waiting for the start-up model: {reason}");
                    waiting = true;
                }
                std::thread::sleep(LEASE_POLL);
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(version) = servable()? {
        return Ok(version);
    }
    let state = store.demo_state()?;
    let empty = !store.has_relationships()?;
    if state == DemoState::Loading || (state == DemoState::Absent && empty) {
        let Some(config) = demo else {
            return Err(Error::precondition(
                "the store is empty: ingest data (rapport ingest) or start without --no-demo",
            ));
        };
        if state == DemoState::Loading {
            tracing::warn!("an earlier demo load was interrupted; loading it again");
            store.clear_book()?;
        }
        load_demo(store, config)?;
    }
    let bundle = train_and_save(store, spec)?;
    store.set_active_model(ModelSlot::Default, bundle.version)?;
    store.flush_blocking()?;
    Ok(bundle.version)
}

/// Generates the demo book into the store, durably, marking the load so an
/// interrupted one is redone rather than trained on half a book.
///
/// # Errors
/// `Storage` on I/O failure.
pub fn load_demo(store: &SharedStore, config: DemoConfig) -> Result<()> {
    let started = Instant::now();
    store.set_demo_state(DemoState::Loading)?;
    store.flush_blocking()?;
    let book = DemoBook::new(config);
    store.put_products(book.products())?;
    let bar = crate::progress::bar("demo book");
    bar.set_length(book.len() as u64);
    let mut chunk = Vec::with_capacity(DEMO_CHUNK);
    let mut events = 0;
    for i in 0..book.len() {
        chunk.push(book.relationship(i));
        if chunk.len() == DEMO_CHUNK || i + 1 == book.len() {
            events += chunk.iter().map(|(_, e)| e.len()).sum::<usize>();
            store.load_histories(&chunk)?;
            bar.inc(chunk.len() as u64);
            chunk.clear();
        }
    }
    bar.finish_and_clear();
    store.set_demo_state(DemoState::Loaded)?;
    store.flush_blocking()?;
    tracing::info!(
        relationships = book.len(),
        events,
        seconds = started.elapsed().as_secs_f64(),
        "demo book loaded"
    );
    Ok(())
}
