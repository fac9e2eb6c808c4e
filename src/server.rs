//! Starting the service: open the store, load (or bootstrap) a model, and
//! serve every gRPC service with health and reflection until `shutdown`.
//!
//! [`run`] takes a bound listener and a shutdown future, so tests start the
//! very same server on `127.0.0.1:0`.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::api::pb::book_server::BookServer;
use crate::api::pb::echo_server::EchoServer;
use crate::api::pb::ingest_server::IngestServer;
use crate::api::pb::models_server::ModelsServer;
use crate::api::pb::scoring_server::ScoringServer;
use crate::api::{pb, RapportService, SERVICE_NAMES};
use crate::book::Book;
use crate::engine::{Engine, Policy};
use crate::error::{Error, Result};
use crate::model::ModelSpec;
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
    /// it stops serving regardless.
    pub drain_timeout: Duration,
    /// How the sled store is opened (its cache).
    pub sled: SledOptions,
}

/// Serves until `shutdown` resolves, then drains in-flight calls (at most
/// `drain_timeout`: an idle client must not hold the process open) and flushes sled.
///
/// With no active model, the server answers at once (health NOT_SERVING,
/// model RPCs FailedPrecondition) while a background task loads the demo book
/// into an empty store and trains; health turns SERVING when it is done.
///
/// # Errors
/// `FailedPrecondition` when the data directory is held by another process;
/// `Io` when the listener fails.
pub async fn run(
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store: SharedStore = std::sync::Arc::new(SledStore::open(&options.data_dir, options.sled)?);
    let engine = Engine::new(store.clone(), options.policy);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let active = match engine.load_active() {
        // A model an earlier Rapport trained: train a new one on the stored
        // book, as for a store without a model, rather than refuse to start.
        Err(Error::FailedPrecondition { reason }) => {
            tracing::warn!("{reason}; training a new version on the stored book");
            None
        }
        loaded => loaded?,
    };
    match active {
        Some(version) => {
            tracing::info!(version, "model loaded");
            set_health(&reporter, ServingStatus::Serving).await;
        }
        None => {
            set_health(&reporter, ServingStatus::NotServing).await;
            let engine = engine.clone();
            let spec = options.spec;
            let demo = options.demo;
            let reporter = reporter.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let store = engine.store().clone();
                let work = tokio::task::spawn_blocking(move || bootstrap(&store, &spec, demo))
                    .await
                    .map(|trained| {
                        trained.and_then(|version| engine.load_active().map(|_| version))
                    });
                match work {
                    Ok(Ok(version)) => {
                        tracing::info!(
                            version,
                            seconds = started.elapsed().as_secs_f64(),
                            "ready: model active"
                        );
                        set_health(&reporter, ServingStatus::Serving).await;
                    }
                    Ok(Err(e)) => {
                        tracing::error!("start-up training failed, serving without a model: {e}")
                    }
                    Err(e) => tracing::error!("start-up task failed: {e}"),
                }
            });
        }
    }

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
    let book = Book::start(engine)?;
    let service = RapportService::new(book.clone());
    tracing::info!(addr = %listener.local_addr()?, "listening");
    // Small unary replies must not wait for Nagle's algorithm.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(ServerSocket::new));
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let drain_reporter = reporter.clone();
    let stop_serving = async move {
        shutdown.await;
        set_health(&drain_reporter, ServingStatus::NotServing).await;
        let _ = stopping_tx.send(true);
    };
    let serve = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(IngestServer::new(service.clone()))
        .add_service(ScoringServer::new(service.clone()))
        .add_service(BookServer::new(service.clone()))
        .add_service(ModelsServer::new(service.clone()))
        .add_service(EchoServer::new(service))
        .serve_with_incoming_shutdown(incoming, stop_serving);
    let drain_deadline = async move {
        let _ = stopping_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(options.drain_timeout).await;
    };
    tokio::select! {
        served = serve => served.map_err(|e| Error::Io(std::io::Error::other(e)))?,
        () = drain_deadline => tracing::warn!("drain timed out; closing remaining connections"),
    }
    // Saves the index rows it had not yet: the next start reuses them.
    tokio::task::spawn_blocking(move || book.shutdown())
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    store.flush().await?;
    let (cached, cached_bytes) = store.read_cache_usage();
    tracing::info!(cached, cached_bytes, "stopped; store flushed");
    Ok(())
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

/// An accepted TCP stream as h2 should see it: it cannot write vectored, and
/// what h2 writes between two flushes leaves in one `send`.
///
/// - Without vectored writes h2 copies DATA frames of up to 1 KiB into its
///   write buffer instead of chaining each one over 256 bytes as a separate
///   buffer, which it may only hold one of: a Score reply (~500 bytes) would
///   otherwise force a flush per reply, and replies to concurrent streams
///   would not share a `write`; a flush per reply costs every RPC, Echo too,
///   a syscall and a wake-up of the peer.
/// - A larger frame (a `ScoreStream` window of replies) is still chained, and
///   h2 writes it as its buffer topped up to 1 KiB, then the rest. Unbuffered,
///   that is two sends, and the peer wakes for a partial frame. Gathered, the
///   server makes half the sends.
struct ServerSocket(BufWriter<TcpStream>);

impl ServerSocket {
    /// h2 flushes at most its 16 KiB buffer and one chained frame of at most
    /// 16 KiB (the default frame size) at a time; larger writes go straight
    /// through.
    const WRITE_BUFFER: usize = 32 * 1024 + 1024;

    fn new(stream: TcpStream) -> ServerSocket {
        ServerSocket(BufWriter::with_capacity(Self::WRITE_BUFFER, stream))
    }
}

impl Connected for ServerSocket {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().connect_info()
    }
}

impl AsyncRead for ServerSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}
