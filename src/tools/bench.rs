//! `rapport bench`: a closed-loop load generator that drives a server over
//! loopback and reports every RPC against the gRPC floor.
//!
//! Why a floor: on a small machine the client, the HTTP/2 stack and the
//! handlers share the same cores, so an absolute requests/s says little about
//! Rapport. The `Echo` service goes through the very same server stack and does
//! nothing, so each RPC's throughput as a ratio of Echo, measured in the same
//! repetition with the same client settings, isolates what scoring costs.
//!
//! Within a repetition every target runs once, round-robin, and the order is
//! rotated from one repetition to the next, so drift and noise hit all targets
//! alike. The report gives, per target, the median over repetitions of
//! requests/s, latency percentiles (hdrhistogram), the ratio to Echo and the
//! p50 difference to Echo.
//!
//! Everything is bounded: each run stops issuing requests at its deadline,
//! only loopback addresses are accepted, and a spawned server is shut down
//! (and its temporary data directory removed) at the end.

use std::collections::VecDeque;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::client::{Bearer, ClientOptions, Conn};
use hdrhistogram::Histogram;
use prost::Message;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::api::pb;
use crate::api::pb::echo_client::EchoClient;
use crate::api::pb::ingest_client::IngestClient;
use crate::api::pb::scoring_client::ScoringClient;
use crate::engine::{Policy, MAX_BATCH};
use crate::error::{Error, Result};
use crate::model::ModelSpec;
use crate::numbers::thousands;
use crate::server::ServeOptions;
use crate::store::sled::SledOptions;
use crate::time::now;
use crate::training::demo::{DemoBook, DemoConfig};

/// Latencies above this are clamped in the histograms.
const MAX_LATENCY_NS: u64 = 120_000_000_000;

/// One thing the load generator can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rpc {
    /// The floor: `Echo.Echo` with a payload the size of a score.
    Echo,
    Score,
    Segment,
    Recommend,
    /// `ScoreBatch` with `batch_size` ids per call.
    ScoreBatch,
    /// Bidirectional `ScoreStream`, pipelined.
    ScoreStream,
    /// `RecordEvents` with `ingest_batch` events per call: durable writes, so
    /// it is not in the default set.
    RecordEvents,
}

impl Rpc {
    /// What `--rpcs` runs when not given (Echo always runs anyway).
    pub const DEFAULT: [Rpc; 6] = [
        Rpc::Echo,
        Rpc::Score,
        Rpc::Segment,
        Rpc::Recommend,
        Rpc::ScoreBatch,
        Rpc::ScoreStream,
    ];

    const ALL: [Rpc; 7] = [
        Rpc::Echo,
        Rpc::Score,
        Rpc::Segment,
        Rpc::Recommend,
        Rpc::ScoreBatch,
        Rpc::ScoreStream,
        Rpc::RecordEvents,
    ];

    /// The name `--rpcs` accepts and the report prints.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Echo => "echo",
            Rpc::Score => "score",
            Rpc::Segment => "segment",
            Rpc::Recommend => "recommend",
            Rpc::ScoreBatch => "score-batch",
            Rpc::ScoreStream => "score-stream",
            Rpc::RecordEvents => "record-events",
        }
    }

    /// What one request carries many of, for the targets where it matters.
    pub fn item_unit(self) -> Option<&'static str> {
        match self {
            Rpc::ScoreBatch | Rpc::ScoreStream => Some("relationships"),
            Rpc::RecordEvents => Some("events"),
            _ => None,
        }
    }

    fn is_batch(self) -> bool {
        matches!(self, Rpc::ScoreBatch | Rpc::RecordEvents)
    }
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rpc {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Rpc::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Rpc::ALL.iter().map(|r| r.name()).collect();
            format!("unknown rpc {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// Which server to drive and where request ids come from.
#[derive(Debug, Clone)]
pub enum Target {
    /// A running server. Requests use the ids of `ids_from`, the demo book the
    /// server is assumed to hold (`rapport serve` generates it at first start).
    Address { addr: String, ids_from: DemoConfig },
    /// A server started in this process on `127.0.0.1:0` with the demo book
    /// `demo`, in `keep_data` (reused when it already holds a model) or in a
    /// temporary directory removed at the end.
    Spawn {
        demo: DemoConfig,
        keep_data: Option<PathBuf>,
        startup_timeout: Duration,
        /// Threads of the server's own runtime; `None` is one per core.
        workers: Option<usize>,
    },
}

/// Everything one `rapport bench` invocation does.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub target: Target,
    /// In-flight requests for the unary targets.
    pub concurrency: usize,
    /// HTTP/2 connections; workers are spread over them.
    pub channels: usize,
    /// In-flight calls for the batch targets; `None` is `min(concurrency, 4)`.
    pub batch_concurrency: Option<usize>,
    /// Concurrent `ScoreStream` calls, one per channel in turn; `None` is `channels`.
    pub streams: Option<usize>,
    /// Messages each `ScoreStream` call keeps in flight.
    pub stream_window: usize,
    pub duration: Duration,
    /// Unmeasured load before each measured run.
    pub warmup: Duration,
    pub repetitions: usize,
    /// Echo is always added: it is the floor.
    pub rpcs: Vec<Rpc>,
    /// Ids per `ScoreBatch` call.
    pub batch_size: usize,
    /// Events per `RecordEvents` call.
    pub ingest_batch: usize,
    /// Bytes of payload in each Echo request (and so response).
    pub echo_payload: usize,
    /// Ids in a seeded random order instead of the book's.
    pub shuffle_ids: bool,
    /// A server process whose memory to report (a spawned server is this process).
    pub server_pid: Option<u32>,
    /// TLS and the bearer token for a target that needs them.
    pub client: ClientOptions,
}

impl BenchOptions {
    /// Defaults for `target`: 64 in flight over 4 connections, 3 × 5 s.
    pub fn new(target: Target) -> Self {
        BenchOptions {
            target,
            concurrency: 64,
            channels: 4,
            batch_concurrency: None,
            streams: None,
            stream_window: 32,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            repetitions: 3,
            rpcs: Rpc::DEFAULT.to_vec(),
            batch_size: 1_000,
            ingest_batch: 1_000,
            echo_payload: 250,
            shuffle_ids: false,
            server_pid: None,
            client: ClientOptions::default(),
        }
    }

    fn batch_workers(&self) -> usize {
        self.batch_concurrency
            .unwrap_or_else(|| self.concurrency.min(4))
    }

    fn stream_count(&self) -> usize {
        self.streams.unwrap_or(self.channels)
    }

    /// Echo first, then the requested targets in order, each once.
    fn targets(&self) -> Vec<Rpc> {
        let mut out = vec![Rpc::Echo];
        for r in &self.rpcs {
            if !out.contains(r) {
                out.push(*r);
            }
        }
        out
    }

    fn validate(&self) -> Result<()> {
        let range = |field: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid(
                    field,
                    format!("{v} is outside [{lo}, {hi}]"),
                ))
            }
        };
        range("concurrency", self.concurrency, 1, 4_096)?;
        range("channels", self.channels, 1, 256)?;
        range("batch_concurrency", self.batch_workers(), 1, 256)?;
        range("streams", self.stream_count(), 1, 256)?;
        range("stream_window", self.stream_window, 1, 4_096)?;
        range("repetitions", self.repetitions, 1, 100)?;
        range("batch_size", self.batch_size, 1, MAX_BATCH)?;
        range("ingest_batch", self.ingest_batch, 1, MAX_BATCH)?;
        range("echo_payload", self.echo_payload, 0, 1 << 20)?;
        let secs = |field: &str, d: Duration, lo: f64| {
            if d.as_secs_f64() >= lo && d <= Duration::from_secs(3_600) {
                Ok(())
            } else {
                Err(Error::invalid(
                    field,
                    format!("{:.3} s is outside [{lo}, 3600] s", d.as_secs_f64()),
                ))
            }
        };
        secs("duration", self.duration, 0.1)?;
        secs("warmup", self.warmup, 0.0)?;
        Ok(())
    }
}

/// One measured run of one target.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub rpc: Rpc,
    pub repetition: usize,
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    /// Relationships scored or events recorded (batch and stream targets).
    pub items: u64,
    pub requests_per_s: f64,
    pub items_per_s: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Encoded size of one response message.
    pub response_bytes: Option<usize>,
    pub first_error: Option<String>,
}

/// One target over all repetitions: medians, and ratios to the floor.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    pub rpc: Rpc,
    pub item_unit: Option<&'static str>,
    pub requests_per_s: f64,
    pub items_per_s: f64,
    /// Median over repetitions of (this target's requests/s ÷ Echo's, same repetition).
    pub ratio_to_echo: f64,
    /// Median over repetitions of (this target's p50 − Echo's p50), in µs.
    pub p50_over_echo_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub requests: u64,
    pub errors: u64,
    pub response_bytes: Option<usize>,
}

/// How the spawned server started.
#[derive(Debug, Clone, Serialize)]
pub struct Startup {
    pub relationships: usize,
    /// From starting the server to health SERVING (demo load and training included
    /// unless the data directory already held a model).
    pub seconds_to_serving: f64,
}

/// Memory of the server process, from `/proc/PID/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub pid: u32,
    /// Whether the client shares the process (a spawned server).
    pub includes_client: bool,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

/// A performance target checked against this run, where the run can say.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetCheck {
    pub budget: String,
    pub measured: String,
    pub pass: bool,
}

/// The settings a report was measured with.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub target: String,
    pub spawned: bool,
    pub relationships: usize,
    pub concurrency: usize,
    pub channels: usize,
    pub batch_concurrency: usize,
    pub streams: usize,
    pub stream_window: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub repetitions: usize,
    pub batch_size: usize,
    pub ingest_batch: usize,
    pub echo_payload: usize,
    pub shuffle_ids: bool,
    pub cores: usize,
    /// Worker threads of the runtime the load generator ran on.
    pub client_threads: usize,
    /// Seconds since the epoch when the report was made.
    pub unix_time: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub settings: Settings,
    pub startup: Option<Startup>,
    pub memory: Option<Memory>,
    pub targets: Vec<TargetSummary>,
    pub budgets: Vec<BudgetCheck>,
    pub runs: Vec<RunResult>,
}

impl BenchReport {
    pub fn target(&self, rpc: Rpc) -> Option<&TargetSummary> {
        self.targets.iter().find(|t| t.rpc == rpc)
    }
}

/// Runs the benchmark, prints the table on stdout and writes JSON to `json`.
///
/// # Errors
/// As [`run`]; `Io` when the JSON file cannot be written.
pub async fn run_and_print(options: &BenchOptions, json: Option<&Path>) -> Result<()> {
    let report = run(options).await?;
    print!("{}", render(&report));
    if let Some(path) = json {
        let text = serde_json::to_vec_pretty(&report).map_err(std::io::Error::other)?;
        std::fs::write(path, text)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs every target for every repetition and summarises.
///
/// # Errors
/// `InvalidArgument` for bad settings or a non-loopback target;
/// `FailedPrecondition` when the server cannot be reached or never turns
/// SERVING; `Io` when a spawned server fails.
pub async fn run(options: &BenchOptions) -> Result<BenchReport> {
    options.validate()?;
    let (server, addr, demo) = match &options.target {
        Target::Address { addr, ids_from } => {
            loopback(addr)?;
            (None, addr.clone(), ids_from.clone())
        }
        Target::Spawn {
            demo,
            keep_data,
            workers,
            ..
        } => {
            let server = Spawned::start(demo.clone(), keep_data.clone(), *workers)?;
            let addr = server.addr.to_string();
            (Some(server), addr, demo.clone())
        }
    };
    eprintln!(
        "generating the ids of the demo book ({} relationships)",
        demo.relationships
    );
    let ids_config = demo.clone();
    let shuffle = options.shuffle_ids;
    let ids = tokio::task::spawn_blocking(move || {
        let mut ids = demo_ids(&ids_config);
        if shuffle {
            ids.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(7));
        }
        ids
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    if ids.is_empty() {
        return Err(Error::invalid(
            "demo_size",
            "the demo book has no relationships",
        ));
    }
    let channels = connect(&addr, options.channels, &options.client).await?;
    let timeout = match &options.target {
        Target::Spawn {
            startup_timeout, ..
        } => *startup_timeout,
        Target::Address { .. } => Duration::from_secs(10),
    };
    let started = server.as_ref().map_or_else(Instant::now, |s| s.started);
    wait_serving(&channels[0], timeout).await?;
    let startup = server.as_ref().map(|_| Startup {
        relationships: demo.relationships,
        seconds_to_serving: started.elapsed().as_secs_f64(),
    });
    if let Some(s) = &startup {
        eprintln!("server SERVING after {:.1} s", s.seconds_to_serving);
    }

    let load = Arc::new(Load {
        ids,
        next: AtomicU64::new(0),
        payload: vec![0x5a; options.echo_payload],
        batch_size: options.batch_size,
        ingest_batch: options.ingest_batch,
    });
    let targets = options.targets();
    let mut runs = Vec::with_capacity(targets.len() * options.repetitions);
    for repetition in 0..options.repetitions {
        for k in 0..targets.len() {
            let rpc = targets[(k + repetition) % targets.len()];
            if !options.warmup.is_zero() {
                drive(rpc, &channels, &load, options, options.warmup).await;
            }
            let tally = drive(rpc, &channels, &load, options, options.duration).await;
            let result = tally.result(rpc, repetition);
            eprintln!(
                "rep {} {:<13} {:>10.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}{}",
                repetition + 1,
                rpc.name(),
                result.requests_per_s,
                result.p50_us,
                result.p99_us,
                result.errors,
                result
                    .first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
            runs.push(result);
        }
    }

    let memory = match (&server, options.server_pid) {
        (Some(_), _) => memory(std::process::id(), true),
        (None, Some(pid)) => memory(pid, false),
        (None, None) => None,
    };
    drop(channels);
    if let Some(server) = server {
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    }

    let summaries = summarize(&targets, &runs);
    let settings = Settings {
        target: addr.to_string(),
        spawned: matches!(options.target, Target::Spawn { .. }),
        relationships: demo.relationships,
        concurrency: options.concurrency,
        channels: options.channels,
        batch_concurrency: options.batch_workers(),
        streams: options.stream_count(),
        stream_window: options.stream_window,
        duration_s: options.duration.as_secs_f64(),
        warmup_s: options.warmup.as_secs_f64(),
        repetitions: options.repetitions,
        batch_size: options.batch_size,
        ingest_batch: options.ingest_batch,
        echo_payload: options.echo_payload,
        shuffle_ids: options.shuffle_ids,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        client_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        unix_time: now(),
    };
    let budgets = budgets(&settings, &summaries);
    Ok(BenchReport {
        settings,
        startup,
        memory,
        targets: summaries,
        budgets,
        runs,
    })
}

/// The table `rapport bench` prints.
pub fn render(report: &BenchReport) -> String {
    use std::fmt::Write as _;
    let s = &report.settings;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nrapport bench → {}{} ({} relationships), {} cores, {} client thread{}",
        s.target,
        if s.spawned { " (spawned)" } else { "" },
        s.relationships,
        s.cores,
        s.client_threads,
        if s.client_threads == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "concurrency {} over {} channels (batch calls {} in flight, {} streams × {} messages), {} × {:.1} s runs (+{:.1} s warm-up), medians over repetitions",
        s.concurrency, s.channels, s.batch_concurrency, s.streams, s.stream_window, s.repetitions, s.duration_s, s.warmup_s
    );
    let _ = writeln!(
        out,
        "score-batch: {} ids per call; record-events: {} events per call; echo payload {} bytes; ids in {} order\n",
        s.batch_size,
        s.ingest_batch,
        s.echo_payload,
        if s.shuffle_ids { "shuffled" } else { "book (id)" }
    );
    let _ = writeln!(
        out,
        "{:<14}{:>11}{:>8}{:>10}{:>10}{:>10}{:>11}{:>11}{:>22}{:>8}{:>7}",
        "target",
        "req/s",
        "×echo",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "Δp50 µs",
        "items/s",
        "errors",
        "bytes"
    );
    for t in &report.targets {
        let items = match t.item_unit {
            Some(unit) => format!("{} {}", group(t.items_per_s), short_unit(unit)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<14}{:>11}{:>8.3}{:>10.1}{:>10.1}{:>10.1}{:>11.1}{:>11.1}{:>22}{:>8}{:>7}",
            t.rpc.name(),
            group(t.requests_per_s),
            t.ratio_to_echo,
            t.p50_us,
            t.p90_us,
            t.p99_us,
            t.p999_us,
            t.p50_over_echo_us,
            items,
            t.errors,
            t.response_bytes.map(|b| b.to_string()).unwrap_or_default()
        );
    }
    if let Some(st) = &report.startup {
        let _ = writeln!(
            out,
            "\nstart-up to SERVING: {:.1} s ({} relationships)",
            st.seconds_to_serving, st.relationships
        );
    }
    if let Some(m) = &report.memory {
        let _ = writeln!(
            out,
            "memory of pid {}{}: RSS {:.0} MiB, peak RSS {:.0} MiB",
            m.pid,
            if m.includes_client {
                " (server and client)"
            } else {
                ""
            },
            m.rss_mib,
            m.peak_rss_mib
        );
    }
    if !report.budgets.is_empty() {
        let _ = writeln!(out, "\nperformance targets (BENCHMARKS.md):");
        for b in &report.budgets {
            let _ = writeln!(
                out,
                "  {:<4} {:<52} measured {}",
                if b.pass { "PASS" } else { "MISS" },
                b.budget,
                b.measured
            );
        }
    }
    out
}

// ---------------------------------------------------------------- driving

/// What every worker of a run shares.
struct Load {
    ids: Vec<String>,
    next: AtomicU64,
    payload: Vec<u8>,
    batch_size: usize,
    ingest_batch: usize,
}

impl Load {
    /// The next `n` ids, round-robin over the book.
    fn take(&self, n: usize) -> impl Iterator<Item = &String> + '_ {
        let start = self.next.fetch_add(n as u64, Ordering::Relaxed) as usize;
        let len = self.ids.len();
        (start..start + n).map(move |i| &self.ids[i % len])
    }

    fn next_id(&self) -> String {
        self.take(1).next().cloned().unwrap_or_default()
    }

    /// Sends a Score of the next id on a stream and notes when.
    fn send_score(
        &self,
        stream: Option<&mpsc::UnboundedSender<pb::ScoreRequest>>,
        sent: &mut VecDeque<Instant>,
    ) {
        let request = pb::ScoreRequest {
            relationship_id: self.next_id(),
            as_of: None,
            max_reasons: 0,
        };
        if stream.is_some_and(|s| s.send(request).is_ok()) {
            sent.push_back(Instant::now());
        }
    }

    fn events(&self) -> Vec<pb::Event> {
        let at = Some(prost_types::Timestamp {
            seconds: now() - 60,
            nanos: 0,
        });
        self.take(self.ingest_batch)
            .enumerate()
            .map(|(i, id)| pb::Event {
                relationship_id: id.clone(),
                body: Some(if i % 5 == 0 {
                    pb::event::Body::Purchase(pb::Purchase {
                        at,
                        amount: 25.0,
                        product_ids: vec!["mouse".to_string()],
                        quantity: 1,
                    })
                } else {
                    pb::event::Body::Interaction(pb::Interaction {
                        at,
                        kind: pb::InteractionKind::Visit as i32,
                        survey_score: None,
                    })
                }),
            })
            .collect()
    }
}

/// What the workers of one run counted.
struct Tally {
    latency: Histogram<u64>,
    requests: u64,
    errors: u64,
    items: u64,
    response_bytes: Option<usize>,
    first_error: Option<String>,
    seconds: f64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("constant histogram bounds are valid"),
            requests: 0,
            errors: 0,
            items: 0,
            response_bytes: None,
            first_error: None,
            seconds: 0.0,
        }
    }

    fn ok(&mut self, latency: Duration, items: u64) {
        self.requests += 1;
        self.items += items;
        self.latency
            .saturating_record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1));
    }

    fn error(&mut self, status: &tonic::Status) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
        }
    }

    fn sample_size(&mut self, message: &impl Message) {
        if self.response_bytes.is_none() {
            self.response_bytes = Some(message.encoded_len());
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.errors += other.errors;
        self.items += other.items;
        self.response_bytes = self.response_bytes.or(other.response_bytes);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn result(&self, rpc: Rpc, repetition: usize) -> RunResult {
        let us = |q: f64| {
            if self.latency.is_empty() {
                f64::NAN
            } else {
                self.latency.value_at_quantile(q) as f64 / 1_000.0
            }
        };
        let per_s = |n: u64| {
            if self.seconds > 0.0 {
                n as f64 / self.seconds
            } else {
                0.0
            }
        };
        RunResult {
            rpc,
            repetition,
            seconds: self.seconds,
            requests: self.requests,
            errors: self.errors,
            items: self.items,
            requests_per_s: per_s(self.requests),
            items_per_s: per_s(self.items),
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: if self.latency.is_empty() {
                f64::NAN
            } else {
                self.latency.max() as f64 / 1_000.0
            },
            response_bytes: self.response_bytes,
            first_error: self.first_error.clone(),
        }
    }
}

/// Drives `rpc` for `duration` and returns what the workers counted; the
/// elapsed time runs until the last in-flight call has answered.
async fn drive(
    rpc: Rpc,
    channels: &[Conn],
    load: &Arc<Load>,
    options: &BenchOptions,
    duration: Duration,
) -> Tally {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    if rpc == Rpc::ScoreStream {
        for s in 0..options.stream_count() {
            let channel = channels[s % channels.len()].clone();
            workers.push(tokio::spawn(stream_worker(
                channel,
                Arc::clone(load),
                deadline,
                options.stream_window,
            )));
        }
    } else {
        let n = if rpc.is_batch() {
            options.batch_workers()
        } else {
            options.concurrency
        };
        for w in 0..n {
            let channel = channels[w % channels.len()].clone();
            workers.push(tokio::spawn(unary_worker(
                rpc,
                channel,
                Arc::clone(load),
                deadline,
            )));
        }
    }
    let mut total = Tally::new();
    for w in workers {
        match w.await {
            Ok(t) => total.merge(t),
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert_with(|| format!("worker failed: {e}"));
            }
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

async fn unary_worker(rpc: Rpc, channel: Conn, load: Arc<Load>, deadline: Instant) -> Tally {
    let mut echo = EchoClient::new(channel.clone());
    let mut scoring = ScoringClient::new(channel.clone());
    let mut ingest = IngestClient::new(channel);
    let mut tally = Tally::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        let outcome = match rpc {
            Rpc::Echo => echo
                .echo(pb::EchoRequest {
                    relationship_id: load.next_id(),
                    payload: load.payload.clone(),
                })
                .await
                .map(|r| {
                    tally.sample_size(r.get_ref());
                    1
                }),
            Rpc::Score | Rpc::ScoreStream => scoring
                .score(pb::ScoreRequest {
                    relationship_id: load.next_id(),
                    as_of: None,
                    max_reasons: 0,
                })
                .await
                .map(|r| {
                    tally.sample_size(r.get_ref());
                    1
                }),
            Rpc::Segment => scoring
                .segment(pb::SegmentRequest {
                    relationship_id: load.next_id(),
                    as_of: None,
                })
                .await
                .map(|r| {
                    tally.sample_size(r.get_ref());
                    1
                }),
            Rpc::Recommend => scoring
                .recommend(pb::RecommendRequest {
                    relationship_id: load.next_id(),
                    ..Default::default()
                })
                .await
                .map(|r| {
                    tally.sample_size(r.get_ref());
                    1
                }),
            Rpc::ScoreBatch => scoring
                .score_batch(pb::ScoreBatchRequest {
                    relationship_ids: load.take(load.batch_size).cloned().collect(),
                    as_of: None,
                    max_reasons: 0,
                    skip_unknown: false,
                })
                .await
                .map(|r| {
                    tally.sample_size(r.get_ref());
                    r.get_ref().scores.len() as u64
                }),
            Rpc::RecordEvents => ingest
                .record_events(pb::RecordEventsRequest {
                    events: load.events(),
                })
                .await
                .map(|r| r.get_ref().accepted),
        };
        match outcome {
            Ok(items) => tally.ok(started.elapsed(), items),
            Err(status) => tally.error(&status),
        }
    }
    tally
}

/// One `ScoreStream` call kept `window` messages deep until the deadline;
/// each message's latency runs from its send to its (in-order) answer. The
/// loop that reads the answers also sends, one request per answer, so the
/// send times stay in a local queue and no other task is woken per message.
async fn stream_worker(channel: Conn, load: Arc<Load>, deadline: Instant, window: usize) -> Tally {
    let mut tally = Tally::new();
    let mut client = ScoringClient::new(channel);
    let (requests, request_rx) = mpsc::unbounded_channel();
    let mut requests = Some(requests);
    let mut sent = VecDeque::with_capacity(window);
    for _ in 0..window {
        load.send_score(requests.as_ref(), &mut sent);
    }
    match client
        .score_stream(UnboundedReceiverStream::new(request_rx))
        .await
    {
        Ok(response) => {
            let mut inbound = response.into_inner();
            loop {
                match inbound.message().await {
                    Ok(Some(score)) => {
                        let now = Instant::now();
                        if let Some(at) = sent.pop_front() {
                            tally.ok(now - at, 1);
                        }
                        tally.sample_size(&score);
                        if now < deadline {
                            load.send_score(requests.as_ref(), &mut sent);
                        } else {
                            // Ends the call once the answers in flight are in.
                            requests = None;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tally.error(&status);
                        break;
                    }
                }
            }
        }
        Err(status) => tally.error(&status),
    }
    tally
}

// ---------------------------------------------------------------- summary

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn summarize(targets: &[Rpc], runs: &[RunResult]) -> Vec<TargetSummary> {
    let echo_of = |repetition: usize| {
        runs.iter()
            .find(|r| r.rpc == Rpc::Echo && r.repetition == repetition)
    };
    targets
        .iter()
        .map(|&rpc| {
            let mine: Vec<&RunResult> = runs.iter().filter(|r| r.rpc == rpc).collect();
            let of = |f: fn(&RunResult) -> f64| median(mine.iter().map(|r| f(r)).collect());
            let ratio = median(
                mine.iter()
                    .filter_map(|r| {
                        echo_of(r.repetition).map(|e| r.requests_per_s / e.requests_per_s)
                    })
                    .collect(),
            );
            let p50_over = median(
                mine.iter()
                    .filter_map(|r| echo_of(r.repetition).map(|e| r.p50_us - e.p50_us))
                    .collect(),
            );
            TargetSummary {
                rpc,
                item_unit: rpc.item_unit(),
                requests_per_s: of(|r| r.requests_per_s),
                items_per_s: of(|r| r.items_per_s),
                ratio_to_echo: ratio,
                p50_over_echo_us: p50_over,
                p50_us: of(|r| r.p50_us),
                p90_us: of(|r| r.p90_us),
                p99_us: of(|r| r.p99_us),
                p999_us: of(|r| r.p999_us),
                requests: mine.iter().map(|r| r.requests).sum(),
                errors: mine.iter().map(|r| r.errors).sum(),
                response_bytes: mine.iter().find_map(|r| r.response_bytes),
            }
        })
        .collect()
}

/// The performance targets that this run's settings can speak to.
fn budgets(settings: &Settings, targets: &[TargetSummary]) -> Vec<BudgetCheck> {
    let get = |rpc| targets.iter().find(|t| t.rpc == rpc);
    let mut out = Vec::new();
    let c = settings.concurrency;
    if let Some(t) = get(Rpc::Score) {
        if c > 1 {
            out.push(BudgetCheck {
                budget: format!("score ≥ 0.85× echo, p99 ≤ 2 ms (c={c}; budget at c=64)"),
                measured: format!("{:.3}×, p99 {:.0} µs", t.ratio_to_echo, t.p99_us),
                pass: t.ratio_to_echo >= 0.85 && t.p99_us <= 2_000.0,
            });
        } else {
            out.push(BudgetCheck {
                budget: "score single-stream p50 within 30 µs of echo".to_string(),
                measured: format!("{:+.1} µs", t.p50_over_echo_us),
                pass: t.p50_over_echo_us <= 30.0,
            });
        }
    }
    if c > 1 {
        for rpc in [Rpc::Segment, Rpc::Recommend] {
            if let Some(t) = get(rpc) {
                out.push(BudgetCheck {
                    budget: format!("{} ≥ 0.7× echo (c={c})", rpc.name()),
                    measured: format!("{:.3}×", t.ratio_to_echo),
                    pass: t.ratio_to_echo >= 0.7,
                });
            }
        }
    }
    for rpc in [Rpc::ScoreBatch, Rpc::ScoreStream] {
        if let Some(t) = get(rpc) {
            let load = match rpc {
                Rpc::ScoreStream => {
                    format!("{} streams × {}", settings.streams, settings.stream_window)
                }
                _ => format!(
                    "{} calls × {}",
                    settings.batch_concurrency, settings.batch_size
                ),
            };
            out.push(BudgetCheck {
                budget: format!("{} ≥ 300k relationships/s ({load})", rpc.name()),
                measured: format!("{} relationships/s", group(t.items_per_s)),
                pass: t.items_per_s >= 300_000.0,
            });
        }
    }
    if let Some(t) = get(Rpc::RecordEvents) {
        out.push(BudgetCheck {
            budget: "durable ingestion ≥ 100k events/s".to_string(),
            measured: format!("{} events/s", group(t.items_per_s)),
            pass: t.items_per_s >= 100_000.0,
        });
    }
    out
}

/// `1234567.8` → `1,234,568`.
fn group(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let grouped = thousands(v.abs().round() as u64);
    if v < -0.5 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

fn short_unit(unit: &str) -> &str {
    match unit {
        "relationships" => "rel/s",
        "events" => "ev/s",
        other => other,
    }
}

// ---------------------------------------------------------------- plumbing

/// Resolves `addr` and insists on loopback: the bench never loads anything else.
fn loopback(addr: &str) -> Result<SocketAddr> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| Error::invalid("target", format!("{addr}: {e}")))?
        .collect();
    resolved
        .iter()
        .find(|a| a.ip().is_loopback())
        .copied()
        .filter(|_| resolved.iter().all(|a| a.ip().is_loopback()))
        .ok_or_else(|| {
            Error::invalid(
                "target",
                format!("{addr} is not a loopback address: the bench only drives servers on this machine"),
            )
        })
}

/// The ids of a demo book in index order, generated on every core.
pub fn demo_ids(config: &DemoConfig) -> Vec<String> {
    let book = DemoBook::new(config.clone());
    let n = book.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(n.max(1));
    let chunk = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                let book = &book;
                scope.spawn(move || {
                    (start..(start + chunk).min(n))
                        .map(|i| book.relationship(i).0.id)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

async fn connect(addr: &str, n: usize, client: &ClientOptions) -> Result<Vec<Conn>> {
    let endpoint = client.endpoint(addr)?;
    let bearer = Bearer::new(client.token.as_deref())?;
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        // One `connect` per channel: each is its own HTTP/2 connection.
        let channel = endpoint.connect().await.map_err(|e| {
            Error::precondition(format!(
                "cannot connect to {addr}: {e} (is `rapport serve` running there? or use --spawn)"
            ))
        })?;
        channels.push(InterceptedService::new(channel, bearer.clone()));
    }
    Ok(channels)
}

async fn wait_serving(channel: &Conn, timeout: Duration) -> Result<()> {
    let mut health = HealthClient::new(channel.clone());
    let deadline = Instant::now() + timeout;
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: "rapport.v1.Scoring".into(),
            })
            .await
            .map(|r| r.into_inner().status);
        let status = match status {
            Ok(s) if s == ServingStatus::Serving as i32 => return Ok(()),
            Ok(s) => ServingStatus::try_from(s)
                .map_or_else(|_| s.to_string(), |s| s.as_str_name().to_string()),
            Err(e) => format!("{:?}: {}", e.code(), e.message()),
        };
        if Instant::now() >= deadline {
            return Err(Error::precondition(format!(
                "the server did not report SERVING within {} s (last: {status})",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn memory(pid: u32, includes_client: bool) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some(Memory {
        pid,
        includes_client,
        rss_mib: kib("VmRSS:")? / 1024.0,
        peak_rss_mib: kib("VmHWM:")? / 1024.0,
    })
}

/// A server on its own runtime thread, as `rapport serve` would run it.
struct Spawned {
    addr: SocketAddr,
    started: Instant,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    temp_dir: Option<tempfile::TempDir>,
}

impl Spawned {
    fn start(
        demo: DemoConfig,
        keep_data: Option<PathBuf>,
        workers: Option<usize>,
    ) -> Result<Spawned> {
        let (data_dir, temp_dir) = match keep_data {
            Some(dir) => (dir, None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("rapport-bench-")
                    .tempdir()?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        std::fs::create_dir_all(&data_dir)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = crate::server::runtime(workers)
            .thread_name("rapport-server")
            .build()?;
        let (tx, rx) = oneshot::channel::<()>();
        let options = ServeOptions {
            policy: Policy::default(),
            spec: ModelSpec::demo(),
            demo: Some(demo),
            drain_timeout: Duration::from_secs(1),
            sled: SledOptions::default(),
            ..ServeOptions::new(data_dir)
        };
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("rapport-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    crate::server::run(listener, options, async {
                        let _ = rx.await;
                    })
                    .await
                })
            })?;
        eprintln!("spawned a server on {addr}");
        Ok(Spawned {
            addr,
            started,
            shutdown: Some(tx),
            thread: Some(thread),
            temp_dir,
        })
    }

    /// Drains, flushes and joins the server, then removes a temporary data directory.
    fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(Error::Io(std::io::Error::other(
                    "the server thread panicked",
                )))
            }),
            None => Ok(()),
        };
        if let Some(dir) = self.temp_dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("could not remove {}: {e}", path.display());
            }
        }
        served
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_names_round_trip() {
        for r in Rpc::ALL {
            assert_eq!(r.name().parse::<Rpc>(), Ok(r));
        }
        assert!("scores".parse::<Rpc>().unwrap_err().contains("score-batch"));
    }

    #[test]
    fn medians_and_grouping() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        assert_eq!(group(1_234_567.8), "1,234,568");
        assert_eq!(group(999.0), "999");
    }

    #[test]
    fn only_loopback_targets() {
        assert!(loopback("127.0.0.1:50051").is_ok());
        assert!(loopback("[::1]:50051").is_ok());
        assert!(loopback("10.0.0.1:50051").is_err());
    }

    #[test]
    fn echo_is_always_first_and_targets_are_unique() {
        let mut o = BenchOptions::new(Target::Address {
            addr: "127.0.0.1:1".into(),
            ids_from: DemoConfig::new(0),
        });
        o.rpcs = vec![Rpc::Score, Rpc::Echo, Rpc::Score];
        assert_eq!(o.targets(), vec![Rpc::Echo, Rpc::Score]);
        o.concurrency = 0;
        assert!(o.validate().is_err());
    }
}
