//! Starting the service: open the store, load (or bootstrap) a model, and
//! serve every gRPC service with health and reflection until `shutdown`.
//!
//! [`run`] takes a bound listener and a shutdown future, so tests start the
//! very same server on `127.0.0.1:0`.
//!
//! Every call passes the gate (`api::gate`: tokens, limits, per-RPC
//! metrics); connections come from `listen` (accept back-off, header
//! timeout), over TLS when certificate files are given.
//!
//! # Health
//!
//! | service              | SERVING when                                    |
//! |----------------------|-------------------------------------------------|
//! | `""` (liveness)      | the process serves; stays up during training    |
//! | `rapport.v1.Ingest`  | the store is open and its last write succeeded  |
//! | `rapport.v1.Scoring` | a model is loaded                               |
//! | `rapport.v1.Book`    | a model is loaded (it computes the score index) |
//! | `rapport.v1.Models`  | the store is open                               |
//!
//! Each turns NOT_SERVING when shutdown begins.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::api::pb::book_server::BookServer;
use crate::api::pb::echo_server::EchoServer;
use crate::api::pb::ingest_server::IngestServer;
use crate::api::pb::models_server::ModelsServer;
use crate::api::pb::scoring_server::ScoringServer;
use crate::api::{pb, Access, GateLayer, Limits, RapportService, ServiceOptions, SERVICE_NAMES};
use crate::book::Book;
use crate::domain::ModelSlot;
use crate::engine::{Engine, EngineOptions, Policy};
use crate::error::{Error, Result};
use crate::listen::Incoming;
use crate::model::ModelSpec;
use crate::store::redis::{RedisOptions, RedisStore};
use crate::store::sled::{SledOptions, SledStore};
use crate::training::bootstrap::bootstrap;
use crate::training::demo::DemoConfig;
use crate::SharedStore;

pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub policy: Policy,
    /// The spec start-up training uses when the store has data but no model.
    pub spec: ModelSpec,
    /// The demo book generated into an empty store; `None` leaves it empty.
    pub demo: Option<DemoConfig>,
    /// How long shutdown waits for in-flight calls and idle connections before
    /// it stops serving regardless; the final flush then gets at most the
    /// store's write timeout.
    pub drain_timeout: Duration,
    /// How the sled store is opened (its cache).
    pub sled: SledOptions,
    /// Serve from this Redis Cluster instead of sled in `data_dir`.
    pub redis: Option<RedisOptions>,
    /// Tokens and whether health is protected.
    pub access: Access,
    /// Serve TLS with these files; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    pub engine: EngineOptions,
    /// The training sandbox, the backup root, model retention.
    pub service: ServiceOptions,
    /// Serve Prometheus metrics on this listener (`--metrics-listen`).
    pub metrics: Option<TcpListener>,
}

impl ServeOptions {
    /// Defaults for everything but the data directory: the demo policy and
    /// spec, no demo book, no tokens, no TLS, the default limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            data_dir: data_dir.into(),
            policy: Policy::default(),
            spec: ModelSpec::demo(),
            demo: None,
            drain_timeout: Duration::from_secs(10),
            sled: SledOptions::default(),
            redis: None,
            access: Access::default(),
            tls: None,
            limits: Limits::default(),
            engine: EngineOptions::default(),
            service: ServiceOptions::default(),
            metrics: None,
        }
    }
}

/// PEM files for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// # Errors
    /// `BadInput` naming a file that cannot be read.
    fn server_config(&self, handshake_timeout: Duration) -> Result<ServerTlsConfig> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| Error::BadInput {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        };
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?))
            .timeout(handshake_timeout);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(config)
    }
}

/// Serves until `shutdown` resolves, then drains in-flight calls (at most
/// `drain_timeout`: an idle client must not hold the process open) and flushes
/// the store (at most the store's write timeout: a disk that does not answer
/// must not hold it open either).
///
/// With no active model, the server answers at once (Scoring health
/// NOT_SERVING, model RPCs FailedPrecondition) while a background task loads
/// the demo book into an empty store and trains; Scoring turns SERVING when
/// it is done.
///
/// # Errors
/// `FailedPrecondition` when the data directory is held by another process;
/// `BadInput` for unreadable TLS files; `Io` when the listener fails.
pub async fn run(
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let ServeOptions {
        data_dir,
        policy,
        spec,
        demo,
        drain_timeout,
        sled,
        redis,
        access,
        tls,
        limits,
        engine: engine_options,
        service: service_options,
        metrics,
    } = options;
    let addr = listener.local_addr()?;
    warn_if_exposed(addr, &access, tls.is_some());
    let tls_config = tls
        .as_ref()
        .map(|t| t.server_config(limits.header_timeout))
        .transpose()?;
    let store: SharedStore = match redis {
        Some(redis) => Arc::new(RedisStore::open(redis)?),
        None => Arc::new(SledStore::open(&data_dir, sled)?),
    };
    let engine = Engine::with_options(store.clone(), policy, engine_options);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    if let Some(changes) = store.active_model_changes() {
        tokio::spawn(follow_promotions(engine.clone(), changes));
    }
    let mut refused = None;
    let active = match engine.load_active() {
        // A model an earlier Rapport trained: train a new one on the stored
        // book, as for a store without a model, rather than refuse to start.
        Err(Error::FailedPrecondition { reason }) => {
            tracing::warn!("{reason}; training a new version on the stored book");
            refused = store.active_model(ModelSlot::Default)?;
            None
        }
        loaded => loaded?,
    };
    match active {
        Some(version) => tracing::info!(version, "model loaded"),
        None => {
            let engine = engine.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let store = engine.store().clone();
                let work =
                    tokio::task::spawn_blocking(move || bootstrap(&store, &spec, demo, refused))
                        .await
                        .map(|trained| {
                            trained.and_then(|version| engine.load_active().map(|_| version))
                        });
                match work {
                    Ok(Ok(version)) => tracing::info!(
                        version,
                        seconds = started.elapsed().as_secs_f64(),
                        "ready: model active"
                    ),
                    Ok(Err(e)) => {
                        tracing::error!("start-up training failed, serving without a model: {e}")
                    }
                    Err(e) => tracing::error!("start-up task failed: {e}"),
                }
            });
        }
    }
    // Every service has a status before the listener takes a call, so a
    // health check right after start-up never finds one unregistered.
    for (name, serving) in SERVICE_NAMES.iter().zip(services_ready(&engine)) {
        reporter.set_service_status(name, status_of(serving)).await;
    }
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let health_task = tokio::spawn(report_health(
        engine.clone(),
        reporter.clone(),
        stopping_rx.clone(),
    ));
    let metrics_task = match metrics {
        Some(listener) => Some(crate::api::metrics::serve(listener, engine.clone())?),
        None => None,
    };

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let max_message = limits.max_message_bytes;
    let book = Book::start(engine)?;
    let service = RapportService::new(book.clone(), service_options, &limits);
    tracing::info!(%addr, tls = tls.is_some(), tokens = access.tokens.len(), "listening");
    let incoming = Incoming::new(listener, limits.header_timeout);
    let drain_reporter = reporter.clone();
    let mut stop_rx = stopping_rx;
    let stop_serving = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
        set_health(&drain_reporter, ServingStatus::NotServing).await;
    };
    let mut builder = Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        // Metadata is a token and a few names: 16 KiB is ample.
        .http2_max_header_list_size(16 * 1024);
    if let Some(config) = tls_config {
        builder = builder
            .tls_config(config)
            .map_err(|e| Error::invalid("--tls-cert/--tls-key", e.to_string()))?;
    }
    let serve = builder
        .layer(GateLayer::new(access, limits))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(IngestServer::new(service.clone()).max_decoding_message_size(max_message))
        .add_service(ScoringServer::new(service.clone()).max_decoding_message_size(max_message))
        .add_service(BookServer::new(service.clone()).max_decoding_message_size(max_message))
        .add_service(ModelsServer::new(service.clone()).max_decoding_message_size(max_message))
        .add_service(EchoServer::new(service).max_decoding_message_size(max_message))
        .serve_with_incoming_shutdown(incoming, stop_serving);
    let drain_deadline = async move {
        let _ = stop_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(drain_timeout).await;
    };
    let served = tokio::select! {
        served = serve => served.map_err(|e| Error::Io(std::io::Error::other(e))),
        () = drain_deadline => {
            tracing::warn!("drain timed out; closing remaining connections");
            Ok(())
        }
    };
    health_task.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    served?;
    let write_timeout = sled.write_timeout;
    let saved = async {
        // Saves the index rows it had not yet: the next start reuses them.
        tokio::task::spawn_blocking(move || book.shutdown())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        store.flush().await
    };
    match tokio::time::timeout(write_timeout, saved).await {
        Ok(Ok(())) => {}
        failed => {
            // Closing the store would wait for its writer, which waits for
            // the disk: leave it to the process's exit.
            std::mem::forget(store);
            return Err(match failed {
                Ok(Err(e)) => e,
                _ => Error::Io(std::io::Error::other(format!(
                    "the store did not flush within {} s; stopping without it (writes not acknowledged may be lost)",
                    write_timeout.as_secs_f64()
                ))),
            });
        }
    }
    let (cached, cached_bytes) = store.read_cache_usage();
    tracing::info!(cached, cached_bytes, "stopped; store flushed");
    Ok(())
}

/// Loads the models another process made active in the shared store, each
/// time the store signals that the active versions may have changed.
async fn follow_promotions(engine: Engine, mut changes: tokio::sync::watch::Receiver<u64>) {
    while changes.changed().await.is_ok() {
        match engine.follow_active().await {
            Ok(Some(version)) => {
                // Health follows `has_model` (`report_health`).
                tracing::info!(version, "serving the models another process made active");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("could not load the models made active elsewhere: {e}"),
        }
    }
}

/// Logs loudly when the server is reachable off this machine without TLS or
/// without tokens: every caller there can read and write the book.
fn warn_if_exposed(addr: SocketAddr, access: &Access, tls: bool) {
    if addr.ip().is_loopback() {
        return;
    }
    let missing: Vec<&str> = [
        (!tls).then_some("TLS (--tls-cert, --tls-key)"),
        access.tokens.is_empty().then_some("tokens (--tokens)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        tracing::warn!(
            %addr,
            "SERVING ON A NON-LOOPBACK ADDRESS WITHOUT {}: anyone who reaches this port can read and change the book and its models",
            missing.join(" AND ")
        );
    }
}

/// Keeps each service's health as the module doc says, until shutdown.
async fn report_health(
    engine: Engine,
    reporter: HealthReporter,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut last: Option<[bool; 4]> = None;
    let mut probe: Option<tokio::task::JoinHandle<bool>> = None;
    let mut probed = Instant::now();
    loop {
        if *stopping.borrow() {
            return;
        }
        // While writes fail, try one now and then, so that Ingest turns
        // SERVING again once they work (space freed) without a caller's write.
        if probe.as_ref().is_none_or(|p| p.is_finished())
            && probed.elapsed() >= Duration::from_secs(1)
        {
            probed = Instant::now();
            probe = (!engine.writes_ok()).then(|| {
                let engine = engine.clone();
                tokio::task::spawn_blocking(move || engine.probe_writes())
            });
        }
        let now = services_ready(&engine);
        if last != Some(now) {
            for (name, serving) in SERVICE_NAMES.iter().zip(now) {
                if *stopping.borrow() {
                    return;
                }
                reporter.set_service_status(name, status_of(serving)).await;
            }
            last = Some(now);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// Whether each service can serve, in the order of SERVICE_NAMES: Ingest
/// needs writes, Scoring and the Book (whose index is computed by the
/// models) need a model.
fn services_ready(engine: &Engine) -> [bool; 4] {
    [
        engine.writes_ok(),
        engine.has_model(),
        engine.has_model(),
        true,
    ]
}

fn status_of(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// A multi-thread runtime with I/O and timers on `workers` threads (`None`:
/// one per core), for `serve --workers` and a server `rapport bench` spawns.
pub fn runtime(workers: Option<usize>) -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder
}
