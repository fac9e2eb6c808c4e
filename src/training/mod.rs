//! How a model comes to exist: training from the store, a snapshot table or
//! a purchase log, as a spec says; saving it as a version; the start-up
//! bootstrap; the deterministic demo book; the HTML report.
//!
//! - `book`: training on relationships with events (the store or a purchase log)
//! - `table`: training on a snapshot table
//! - `sources`: reading the files a spec names
//! - `sandbox`: where training requested over the network may read
//! - `evaluation`: the holdout split and metrics both share
//! - `supply`: the supplier histories supply risk is fitted on; `kinds`: the
//!   accounts' invoice and partners' deal histories credit and lapse risk are fitted on
//! - `bootstrap`: a store without a model gets one (and the demo book if empty)
//! - `demo`: the deterministic demo book (`demo_kinds`: deliveries and orders of its suppliers)
//! - `report`: the HTML training report

pub mod book;
pub mod bootstrap;
pub mod demo;
mod demo_kinds;
pub mod evaluation;
pub mod kinds;
pub mod report;
pub mod sandbox;
pub mod sources;
pub mod supply;
pub mod table;

use std::time::Instant;

use indicatif::ProgressBar;

use crate::error::{Error, Result};
use crate::model::spec::DataSource;
use crate::model::{ModelBundle, ModelSpec};
use crate::progress;
use crate::SharedStore;

/// Trains a bundle from the spec's data source. The store is read for
/// `source = "store"` (and for the product catalogue); file sources need none.
/// Not saved: the caller decides.
///
/// # Errors
/// `BadInput` for unreadable files, `FailedPrecondition` when the data holds
/// too little history for the spec, `Training` when a model cannot be fitted.
pub fn train(
    store: Option<&SharedStore>,
    spec: &ModelSpec,
    progress: &ProgressBar,
) -> Result<ModelBundle> {
    match &spec.source {
        DataSource::Store => {
            let store = store
                .ok_or_else(|| Error::precondition("source = \"store\" needs a data directory"))?;
            book::train_from_store(store, spec, progress)
        }
        DataSource::Events(source) => {
            let step = progress::step(progress, format!("reading {}", source.path));
            let (book, load) = sources::load_events(source)?;
            step.finish_and_clear();
            let data_end = book
                .iter()
                .filter_map(|(_, events)| events.last().map(|e| e.at))
                .max()
                .unwrap_or(0);
            let catalogue = match store {
                Some(s) => s.products()?,
                None => vec![],
            };
            let mut bundle = book::train_book(
                book.len(),
                book.into_iter().map(|item| (0, Ok(item))),
                data_end,
                spec,
                &catalogue,
                progress,
            )?;
            bundle.source = source.path.clone();
            bundle.fingerprint = load.fingerprint.clone();
            bundle.notes.extend(load_notes(&load));
            Ok(bundle)
        }
        DataSource::Table(source) => table::train_table(source, spec, progress),
    }
}

/// Notes for the report about rows a load left out.
pub fn load_notes(load: &sources::LoadReport) -> Vec<String> {
    let mut notes = vec![format!("{} rows used, {} skipped", load.rows, load.skipped)];
    notes.extend(load.examples.iter().map(|e| format!("skipped {e}")));
    notes
}

/// Trains on the store and saves the bundle as a new (inactive) version.
///
/// Training never writes into the book: a table's rows, which are the
/// relationships its model scores, are kept with the version as its own
/// namespace ([`crate::model::bundle::TABLE_ROWS_ARTIFACT`]); serving looks ids up there while that
/// version is active, before the book.
///
/// # Errors
/// As [`train`]; `Storage` when saving fails.
pub fn train_and_save(store: &SharedStore, spec: &ModelSpec) -> Result<ModelBundle> {
    let started = Instant::now();
    let progress = progress::root();
    let mut bundle = train(Some(store), spec, &progress)?;
    let step = progress::step(&progress, "saving the version");
    save(store, &mut bundle)?;
    if let DataSource::Table(source) = &spec.source {
        let n = table::save_rows(store, bundle.version, source, spec)?;
        tracing::info!(
            rows = n,
            version = bundle.version,
            "table rows kept with the version"
        );
    }
    step.finish_and_clear();
    tracing::info!(
        version = bundle.version,
        seconds = started.elapsed().as_secs_f64(),
        rows = bundle.training_rows,
        churn_auc = bundle.metric("churn.roc_auc").unwrap_or(f64::NAN),
        value_corr = bundle.metric("value.correlation").unwrap_or(f64::NAN),
        silhouette = bundle.metric("segments.silhouette").unwrap_or(f64::NAN),
        "trained"
    );
    Ok(bundle)
}

/// Deletes the oldest versions past the newest `keep`, never one that is or
/// was last active in any slot. Returns the versions deleted.
///
/// # Errors
/// `Storage` on I/O failure.
pub fn prune_versions(store: &SharedStore, keep: usize) -> Result<Vec<u64>> {
    let mut protected = Vec::new();
    for slot in crate::domain::ModelSlot::ALL {
        protected.extend(store.active_model(slot)?);
        protected.extend(store.previous_active_model(slot)?);
    }
    let versions = store.model_versions()?;
    let excess = versions.len().saturating_sub(keep.max(1));
    let mut deleted = Vec::new();
    for version in versions {
        if deleted.len() == excess {
            break;
        }
        if !protected.contains(&version) && store.delete_model(version)? {
            deleted.push(version);
        }
    }
    if !deleted.is_empty() {
        store.flush_blocking()?;
        tracing::info!(?deleted, keep, "old model versions deleted");
    }
    Ok(deleted)
}

/// Stores `bundle` under a newly allocated version (set on the bundle),
/// durably. The active version does not move.
///
/// # Errors
/// `Storage` on I/O failure.
pub fn save(store: &SharedStore, bundle: &mut ModelBundle) -> Result<u64> {
    bundle.version = store.allocate_model_version()?;
    store.put_model(
        bundle.version,
        &bundle.summary().encode()?,
        &bundle.encode()?,
    )?;
    store.flush_blocking()?;
    Ok(bundle.version)
}
