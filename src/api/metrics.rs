//! Prometheus metrics on their own port (`--metrics-listen`): `GET /metrics`.
//!
//! Counters and histograms are recorded where things happen (the `metrics`
//! crate's macros: the gate per RPC, the store per flush, training per run);
//! gauges that describe state are set when scraped.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rapport_requests_total` | counter | service, method, code |
//! | `rapport_request_duration_seconds` | histogram | service, method |
//! | `rapport_not_found_total` | counter | method |
//! | `rapport_ingest_events_total` | counter | |
//! | `rapport_commit_group_events` | histogram: events per group commit | |
//! | `rapport_commit_flush_seconds` | histogram: a group's write and sync | |
//! | `rapport_fsync_seconds` | histogram | |
//! | `rapport_write_failures_total` | counter | |
//! | `rapport_read_cache_hits_total`, `_misses_total`, `rapport_read_cache_hit_ratio` | counters, gauge | |
//! | `rapport_model_active_version`, `rapport_model_active_age_seconds` | gauges | slot (default or a kind) |
//! | `rapport_training_duration_seconds` | histogram | outcome |
//! | `rapport_trainings_total` | counter | outcome |
//! | `rapport_training_running` | gauge | |
//! | `rapport_book_relationships` | gauge (refreshed each minute: counting reads the book) | |
//! | `rapport_accept_errors_total`, `rapport_header_timeouts_total` | counters | |
//! | `rapport_writes_ok` | gauge: 1 while writes succeed | |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::domain::ModelSlot;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Latency buckets: 100 µs to 60 s.
const SECONDS_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    15.0, 60.0,
];
const GROUP_BUCKETS: [f64; 10] = [
    1.0, 10.0, 100.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0,
];

/// The process's recorder: the `metrics` macros record into one global
/// recorder, installed by the first server that serves metrics.
fn handle() -> Result<PrometheusHandle> {
    static HANDLE: OnceLock<std::result::Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("rapport_commit_group_events".into()),
                        &GROUP_BUCKETS,
                    )
                })
                .map_err(|e| e.to_string())?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .clone()
        .map_err(|e| Error::Io(std::io::Error::other(format!("metrics recorder: {e}"))))
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
///
/// # Errors
/// `Io` when the recorder cannot be installed.
pub fn serve(listener: TcpListener, engine: Engine) -> Result<tokio::task::JoinHandle<()>> {
    let handle = handle()?;
    let book = Arc::new(AtomicU64::new(u64::MAX));
    let counter = {
        let (engine, book) = (engine.clone(), Arc::clone(&book));
        tokio::spawn(async move {
            loop {
                let counting = engine.clone();
                if let Ok(Ok(n)) =
                    tokio::task::spawn_blocking(move || counting.store().relationship_count()).await
                {
                    book.store(n as u64, Ordering::Relaxed);
                }
                // A count is a pass over the book: once a minute, but every two
                // seconds until the first model is active, since a start-up
                // loading the demo book changes it by the second.
                let pause = if engine.has_model() { 60 } else { 2 };
                tokio::time::sleep(Duration::from_secs(pause)).await;
            }
        })
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics on /metrics");
    }
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, engine, book) = (handle.clone(), engine.clone(), Arc::clone(&book));
            async move {
                set_state_gauges(&engine, book.load(Ordering::Relaxed));
                handle.render()
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
        counter.abort();
    }))
}

fn set_state_gauges(engine: &Engine, book: u64) {
    let models = engine.models();
    let now = crate::time::now();
    for slot in ModelSlot::ALL {
        if let Some(model) = models.in_slot(slot) {
            let bundle = &model.bundle;
            metrics::gauge!("rapport_model_active_version", "slot" => slot.name())
                .set(bundle.version as f64);
            metrics::gauge!("rapport_model_active_age_seconds", "slot" => slot.name())
                .set((now - bundle.trained_at).max(0) as f64);
        }
    }
    if book != u64::MAX {
        metrics::gauge!("rapport_book_relationships").set(book as f64);
    }
    let (hits, misses) = engine.store().read_cache_counts();
    if hits + misses > 0 {
        metrics::gauge!("rapport_read_cache_hit_ratio").set(hits as f64 / (hits + misses) as f64);
    }
    metrics::gauge!("rapport_writes_ok").set(if engine.writes_ok() { 1.0 } else { 0.0 });
}
