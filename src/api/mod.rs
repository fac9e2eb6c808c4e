//! The gRPC layer: generated types, thin handlers that validate, convert to
//! core types, call the [`Engine`] (or training) and convert back; one file
//! per service. Status codes come from one mapping (`status`).
//!
//! - `gate`: the tower layer every call passes (`auth`, `limits`, per-RPC metrics)
//! - `codec`: prost's codec with decode errors as INVALID_ARGUMENT
//! - `metrics`: the Prometheus endpoint
//! - `client`: how the command line and the bench connect (TLS, token)

pub mod auth;
pub mod book;
pub mod client;
pub mod codec;
pub mod convert;
mod echo;
pub mod gate;
mod ingest;
pub mod limits;
pub mod metrics;
mod models;
mod scoring;
mod status;

pub use gate::{Access, ConnectionInfo, GateLayer};
pub use limits::Limits;
pub use status::remote;

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tonic::Status;

use crate::book::Book;
use crate::engine::Engine;

/// Generated protobuf types and service stubs for `rapport.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("rapport.v1");

    /// The encoded descriptor set of `proto/`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/rapport_descriptor.bin"));
}

/// The service names health reports on, besides the overall "".
pub const SERVICE_NAMES: [&str; 4] = [
    "rapport.v1.Ingest",
    "rapport.v1.Scoring",
    "rapport.v1.Book",
    "rapport.v1.Models",
];

/// What the services need besides the engine (flags of `serve`).
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Over gRPC, a spec's data files must lie under this directory
    /// (`--training-data-root`); `None` refuses file sources.
    pub training_data_root: Option<PathBuf>,
    /// Backups are written under this directory (`--backup-root`); `None`
    /// refuses BackupStore.
    pub backup_root: Option<PathBuf>,
    /// Model versions kept (`--keep-models`): older ones are deleted after
    /// each training, never the active or previously active ones.
    pub keep_models: usize,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            training_data_root: None,
            backup_root: None,
            keep_models: 20,
        }
    }
}

/// Implements every Rapport service over one engine handle and the score
/// index over it.
#[derive(Clone)]
pub struct RapportService {
    engine: Engine,
    book: Book,
    shared: Arc<Shared>,
}

struct Shared {
    options: ServiceOptions,
    /// Places on the blocking pool for CPU-heavy calls.
    heavy: Arc<Semaphore>,
    /// Held by the training that runs; the others queue for it.
    training: tokio::sync::Mutex<()>,
    /// Trainings running or waiting.
    trainings: AtomicUsize,
    max_queued_trainings: usize,
}

impl RapportService {
    pub fn new(book: Book, options: ServiceOptions, limits: &Limits) -> Self {
        RapportService {
            engine: book.engine().clone(),
            book,
            shared: Arc::new(Shared {
                options,
                heavy: Arc::new(Semaphore::new(limits.blocking_threads.max(1))),
                training: tokio::sync::Mutex::new(()),
                trainings: AtomicUsize::new(0),
                max_queued_trainings: limits.max_queued_trainings,
            }),
        }
    }

    /// Runs CPU-heavy `work` on a blocking thread once one of the pool's
    /// places is free, so that backtests, batches and drift never run on the
    /// async workers nor more of them at once than the pool allows.
    async fn heavy<T, F>(&self, what: &str, work: F) -> Result<T, Status>
    where
        F: FnOnce() -> crate::error::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let _place = Arc::clone(&self.shared.heavy)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the server is stopping"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Status::internal(format!("{what} task failed: {e}")))?
            .map_err(Status::from)
    }
}
