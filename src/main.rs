//! The `rapport` command line: parses arguments and calls the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rapport::cli::StoreArgs;
use rapport::engine::Policy;
use rapport::store::redis::RedisOptions;
use rapport::store::sled::SledOptions;
use rapport::training::demo::DemoConfig;
use rapport::{cli, server};

// Serving allocates small short-lived buffers per request (h2 frames, proto
// messages, reason strings); glibc malloc spent ~18% of a Segment call in
// malloc/free (perf, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rapport",
    version,
    about = "Relationship scoring over gRPC: churn, value, segments, next best actions"
)]
struct Cli {
    /// The sled data directory (one process at a time).
    #[arg(long, env = "RAPPORT_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
    /// Megabytes of sled page cache; a sixteenth of it again keeps decoded
    /// relationships for Score, Segment and Recommend. Default: 512 for
    /// commands that serve or score, 64 for the one-pass `train` and `ingest`.
    #[arg(long, env = "RAPPORT_CACHE_MB", global = true, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    cache_mb: Option<u64>,
    /// Keep the book and the models in a Redis Cluster instead of sled in
    /// --data-dir, shared by any number of Rapport processes:
    /// redis://host:port[,host:port...][/namespace][?replicas=1&wait_ms=1000&dedup_s=3600]
    /// (see docs/scale-out.md). Default: sled.
    #[arg(long, env = "RAPPORT_STORE", global = true, value_parser = parse_store)]
    store: Option<RedisOptions>,
    /// Log lines as text (coloured only on a terminal) or JSON objects.
    #[arg(
        long,
        env = "RAPPORT_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "text"
    )]
    log_format: cli::LogFormat,
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: Command,
}

/// How commands reach a server given with `--server` (and `bench --target`).
#[derive(clap::Args)]
struct ClientArgs {
    /// Bearer token sent with every call to a server.
    #[arg(long, env = "RAPPORT_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Connect with TLS, trusting this CA certificate (PEM) for the server's.
    #[arg(long, env = "RAPPORT_TLS_CA", global = true)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a server that requires one (mTLS).
    #[arg(
        long,
        env = "RAPPORT_TLS_CLIENT_CERT",
        global = true,
        requires = "tls_client_key"
    )]
    tls_client_cert: Option<PathBuf>,
    #[arg(
        long,
        env = "RAPPORT_TLS_CLIENT_KEY",
        global = true,
        requires = "tls_client_cert"
    )]
    tls_client_key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host in --server).
    #[arg(long, env = "RAPPORT_TLS_DOMAIN", global = true)]
    tls_domain: Option<String>,
}

impl ClientArgs {
    fn options(&self) -> rapport::api::client::ClientOptions {
        rapport::api::client::ClientOptions {
            token: self.token.clone(),
            ca: self.tls_ca.clone(),
            identity: self
                .tls_client_cert
                .clone()
                .zip(self.tls_client_key.clone()),
            domain: self.tls_domain.clone(),
        }
    }
}

/// The `serve` flags that secure and bound the server (README, "Security"
/// and "Limits").
/// What `score` and `recommend` export, and from where.
#[derive(clap::Args)]
struct Export {
    /// Output CSV file.
    #[arg(long)]
    out: PathBuf,
    /// A file of relationship ids, one per line (default: every relationship;
    /// through --server, every one the server's score index lists). Ids
    /// unknown, erased meanwhile or not existing at --as-of are skipped and
    /// listed.
    #[arg(long)]
    ids: Option<PathBuf>,
    /// As of this time (YYYY-MM-DD or Unix seconds), for backtests; default now.
    #[arg(long)]
    as_of: Option<String>,
    /// Through this running server instead of opening --data-dir.
    #[arg(long, env = "RAPPORT_SERVER")]
    server: Option<String>,
}

#[derive(clap::Args)]
struct ServeSecurity {
    /// Token file: `TOKEN ROLE [NAME]` per line, ROLE read, write or admin
    /// (README, "Security"). Without it, RAPPORT_TOKENS may hold the same
    /// lines (`;`-separated); without either, calls are not checked.
    #[arg(long, env = "RAPPORT_TOKENS_FILE")]
    tokens: Option<PathBuf>,
    /// Health and reflection need a read token too.
    #[arg(long, env = "RAPPORT_PROTECT_HEALTH")]
    protect_health: bool,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "RAPPORT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "RAPPORT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mTLS).
    #[arg(long, env = "RAPPORT_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (GET /metrics).
    #[arg(long, env = "RAPPORT_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Training over gRPC may read data files only under this directory;
    /// without it, specs with a file source are refused.
    #[arg(long, env = "RAPPORT_TRAINING_DATA_ROOT")]
    training_data_root: Option<PathBuf>,
    /// BackupStore writes under this directory; without it, backups over gRPC are refused.
    #[arg(long, env = "RAPPORT_BACKUP_ROOT")]
    backup_root: Option<PathBuf>,
    /// Model versions kept; older ones are deleted after a training (never
    /// the active or previously active ones).
    #[arg(long, env = "RAPPORT_KEEP_MODELS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    keep_models: u64,
    /// Seconds past the server's clock an event may be dated.
    #[arg(long, env = "RAPPORT_MAX_CLOCK_SKEW", default_value_t = 300)]
    max_clock_skew: u32,
    /// Largest request message, MiB (RESOURCE_EXHAUSTED beyond).
    #[arg(long, env = "RAPPORT_MAX_MESSAGE_MB", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_message_mb: u64,
    /// MiB of request bodies still arriving, over all calls (RESOURCE_EXHAUSTED beyond).
    #[arg(long, env = "RAPPORT_MAX_BUFFERED_MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_buffered_mb: u64,
    /// Unary calls handled at once; more are shed with UNAVAILABLE and retry advice.
    #[arg(long, env = "RAPPORT_MAX_IN_FLIGHT", default_value_t = 256)]
    max_in_flight: usize,
    /// Streaming calls open at once; more are shed with UNAVAILABLE.
    #[arg(long, env = "RAPPORT_MAX_STREAMING_CALLS", default_value_t = 256)]
    max_streaming_calls: usize,
    /// Retry advice (grpc-retry-pushback-ms) on a shed call.
    #[arg(long, env = "RAPPORT_RETRY_PUSHBACK_MS", default_value_t = 100)]
    retry_pushback_ms: u64,
    /// HTTP/2 streams per connection, advertised to clients.
    #[arg(long, env = "RAPPORT_MAX_CONCURRENT_STREAMS", default_value_t = 128)]
    max_concurrent_streams: u32,
    /// Seconds a new connection has to send its first request (TLS included).
    #[arg(long, env = "RAPPORT_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    header_timeout_seconds: u64,
    /// Seconds a unary request's body has to arrive whole.
    #[arg(long, env = "RAPPORT_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    request_timeout_seconds: u64,
    /// Seconds a streaming call may go without sending a message.
    #[arg(long, env = "RAPPORT_IDLE_TIMEOUT_SECONDS", default_value_t = 120)]
    idle_timeout_seconds: u64,
    /// Seconds between HTTP/2 PINGs on an idle connection; a peer that does
    /// not answer within 20 s is disconnected.
    #[arg(long, env = "RAPPORT_KEEPALIVE_SECONDS", default_value_t = 60)]
    keepalive_seconds: u64,
    /// Threads for CPU-heavy calls (backtests, batches, drift); default one per core.
    #[arg(long, env = "RAPPORT_BLOCKING_THREADS")]
    blocking_threads: Option<usize>,
    /// MiB the data directory's disk keeps free: writes are refused below it
    /// (sled hangs rather than fails on a full disk) and resume above it.
    #[arg(long, env = "RAPPORT_MIN_FREE_MB", default_value_t = SledOptions::DEFAULT_MIN_FREE_MB)]
    min_free_mb: u64,
    /// Seconds a write may take to reach the disk before it fails.
    #[arg(long, env = "RAPPORT_WRITE_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    write_timeout_seconds: u64,
    /// TrainModel calls that may wait behind the running one.
    #[arg(long, env = "RAPPORT_MAX_QUEUED_TRAININGS", default_value_t = 1)]
    max_queued_trainings: usize,
}

impl ServeSecurity {
    fn limits(&self) -> rapport::api::Limits {
        let secs = std::time::Duration::from_secs;
        let defaults = rapport::api::Limits::default();
        rapport::api::Limits {
            max_message_bytes: (self.max_message_mb << 20) as usize,
            max_buffered_bytes: (self.max_buffered_mb << 20) as usize,
            max_in_flight: self.max_in_flight,
            max_streaming_calls: self.max_streaming_calls,
            retry_pushback: std::time::Duration::from_millis(self.retry_pushback_ms),
            max_concurrent_streams: self.max_concurrent_streams,
            header_timeout: secs(self.header_timeout_seconds),
            request_timeout: secs(self.request_timeout_seconds),
            idle_timeout: secs(self.idle_timeout_seconds),
            keepalive_interval: secs(self.keepalive_seconds),
            blocking_threads: self.blocking_threads.unwrap_or(defaults.blocking_threads),
            max_queued_trainings: self.max_queued_trainings,
            ..defaults
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC; an empty data directory gets the demo book and a trained model first.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "RAPPORT_LISTEN", default_value = "127.0.0.1:50051")]
        listen: String,
        /// Retention economics for Recommend (default: the built-in models/policy.toml).
        #[arg(long, env = "RAPPORT_POLICY")]
        policy: Option<PathBuf>,
        /// Spec for start-up training (default: the built-in models/demo.toml).
        #[arg(long, env = "RAPPORT_SPEC")]
        spec: Option<PathBuf>,
        /// Relationships in the generated demo book.
        #[arg(long, env = "RAPPORT_DEMO_SIZE", default_value_t = 20_000)]
        demo_size: usize,
        /// Seed of the demo book: the same seed and day give the same book.
        #[arg(long, env = "RAPPORT_DEMO_SEED", default_value_t = 42)]
        demo_seed: u64,
        /// Do not generate the demo book into an empty data directory.
        #[arg(long, env = "RAPPORT_NO_DEMO")]
        no_demo: bool,
        /// Seconds shutdown waits for in-flight calls before closing connections.
        #[arg(long, env = "RAPPORT_DRAIN_SECONDS", default_value_t = 10)]
        drain_seconds: u64,
        /// Threads that serve calls (default: one per core). Fewer than the
        /// cores when other busy processes share the machine keeps the latency
        /// tail short (BENCHMARKS.md, "The latency tail").
        #[arg(long, env = "RAPPORT_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
        #[command(flatten)]
        security: Box<ServeSecurity>,
    },
    /// Load relationships, events and products from CSV files (see README).
    Ingest {
        #[arg(long)]
        relationships: Option<PathBuf>,
        #[arg(long)]
        events: Option<PathBuf>,
        #[arg(long)]
        products: Option<PathBuf>,
        /// Skip malformed rows (reported with their line) instead of rejecting the file.
        #[arg(long)]
        skip_bad_rows: bool,
        /// Reject events of unknown relationships instead of creating them.
        #[arg(long)]
        no_create_missing: bool,
        /// A spec whose purchase log (`data.source = "events"`) to load, read
        /// as training reads it, so a model trained on it scores its customers.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// The log to read instead of the spec's `data.path`.
        #[arg(long, requires = "spec")]
        data: Option<PathBuf>,
    },
    /// Train a new model version from the store with a spec.
    Train {
        /// The spec file (default: the built-in models/demo.toml); see models/README.md.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// The data file, overriding the spec's `data.path`.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Make the new version active.
        #[arg(long)]
        activate: bool,
        /// Where to write the HTML report (default: reports/model-v<VERSION>.html).
        #[arg(long)]
        report: Option<PathBuf>,
        /// With --activate: activate even if the promotion checks fail; the
        /// reason is written to the audit log.
        #[arg(long, value_name = "REASON", requires = "activate")]
        force: Option<String>,
        /// Train inside this running server instead of opening --data-dir.
        #[arg(long, env = "RAPPORT_SERVER")]
        server: Option<String>,
    },
    /// A consistent copy of the store: made by the running server under its
    /// --backup-root (with --server), or of --data-dir.
    Backup {
        /// The new backup directory (with --server: relative to the server's --backup-root).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, env = "RAPPORT_SERVER")]
        server: Option<String>,
    },
    /// Makes an empty --data-dir a copy of a backup.
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Score relationships to CSV (churn, timing, value, value at risk, segment, top reason).
    Score {
        #[command(flatten)]
        export: Export,
        /// Also write, per row, whether the answering version held it out of
        /// training (`holdout`) and what happened as its training defines it:
        /// `label_churned` (churned within churn.horizon_days of --as-of; a
        /// table's label column) and `label_value` (spend within
        /// value.horizon_days; a table's value column). Empty where not yet
        /// known. Reads --data-dir, so not with --server.
        #[arg(long)]
        with_labels: bool,
    },
    /// Next best actions to CSV: one row per action, ranked within its
    /// relationship by expected net value (as Recommend answers them).
    Recommend {
        #[command(flatten)]
        export: Export,
        /// Actions per relationship, 1 to 50 (default 5).
        #[arg(long, default_value_t = 5)]
        max_actions: u32,
        /// Retention economics (default: the built-in models/policy.toml);
        /// through --server, the server's own apply.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Plan a campaign: at most one action per relationship, the most
    /// expected net value within a budget and/or a contact cap; rows to CSV.
    Campaign {
        /// Output CSV file (one row per planned relationship, best first).
        #[arg(long)]
        out: PathBuf,
        /// Most money the actions may cost in total (default: no budget).
        #[arg(long)]
        budget: Option<f64>,
        /// Most relationships to contact (default: no cap).
        #[arg(long)]
        max_contacts: Option<u64>,
        /// Action types allowed, comma-separated: retain, cross-sell, up-sell,
        /// win-back, loyalty (default: all).
        #[arg(long, value_delimiter = ',')]
        actions: Vec<String>,
        /// Attribute that marks an opt-out (any value but false, no, 0 or empty).
        #[arg(long)]
        opt_out: Option<String>,
        /// Only these kinds (customer, account, supplier, partner), comma-separated.
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        /// Only these RFM segments, comma-separated, as Segment names them.
        #[arg(long, value_delimiter = ',')]
        segment: Vec<String>,
        /// Only these life-cycle stages (prospect, new, active, at_risk, lapsed, won_back).
        #[arg(long, value_delimiter = ',')]
        stage: Vec<String>,
        /// Only these value tiers, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tier: Vec<String>,
        /// Plan as of this time (YYYY-MM-DD or Unix seconds); default now.
        #[arg(long)]
        as_of: Option<String>,
        /// Plan inside this running server instead of opening --data-dir.
        #[arg(long, env = "RAPPORT_SERVER")]
        server: Option<String>,
    },
    /// Model versions.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Load-test the gRPC API over loopback against the Echo floor (see BENCHMARKS.md).
    Bench {
        /// Running server to drive (loopback only).
        #[arg(long, default_value = "127.0.0.1:50051", conflicts_with = "spawn")]
        target: String,
        /// Start a server in this process on 127.0.0.1:0 with a temporary data
        /// directory and the demo book, wait for SERVING, stop it at the end.
        #[arg(long)]
        spawn: bool,
        /// With --spawn: relationships in the demo book.
        #[arg(long, default_value_t = 20_000)]
        demo_size: usize,
        /// Seed of the demo book (the spawned one, or the target's with --ids-from-demo).
        #[arg(long, default_value_t = 42)]
        demo_seed: u64,
        /// Without --spawn: size of the demo book the target serves (generated
        /// today with --demo-seed); requests use its ids round-robin.
        #[arg(long, default_value_t = 20_000, conflicts_with = "spawn")]
        ids_from_demo: usize,
        /// With --spawn: keep the server's data in this directory (reused when
        /// it already holds a model) instead of a temporary one.
        #[arg(long, requires = "spawn")]
        keep_data: Option<PathBuf>,
        /// With --spawn: seconds to wait for the demo load and training.
        #[arg(long, default_value_t = 3_600)]
        startup_timeout: u64,
        /// Concurrent in-flight requests of the unary RPCs.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// HTTP/2 connections the requests are spread over.
        #[arg(long, default_value_t = 4)]
        channels: usize,
        /// In-flight ScoreBatch/RecordEvents calls (default: min(concurrency, 4)).
        #[arg(long)]
        batch_concurrency: Option<usize>,
        /// Concurrent ScoreStream calls, spread over the channels (default: one per channel).
        #[arg(long)]
        streams: Option<usize>,
        /// Messages each ScoreStream call keeps in flight.
        #[arg(long, default_value_t = 32)]
        stream_window: usize,
        /// Seconds per measured run.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Seconds of unmeasured load before each measured run.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Rounds over all targets; the report gives medians.
        #[arg(long, default_value_t = 3)]
        repetitions: usize,
        /// Targets, comma-separated: echo, score, segment, recommend,
        /// score-batch, score-stream, record-events (writes; not default). Echo always runs.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "echo,score,segment,recommend,score-batch,score-stream"
        )]
        rpcs: Vec<rapport::tools::bench::Rpc>,
        /// Ids per ScoreBatch call.
        #[arg(long, default_value_t = 1_000)]
        batch_size: usize,
        /// Events per RecordEvents call.
        #[arg(long, default_value_t = 1_000)]
        ingest_batch: usize,
        /// Payload bytes per Echo request, echoed back: 250 puts as many bytes
        /// on the wire per call as a demo Score (small request, ~500-byte reply).
        #[arg(long, default_value_t = 250)]
        echo_payload: usize,
        /// Take the ids in a seeded random order rather than the book's (id)
        /// order, so that consecutive calls do not touch neighbouring keys.
        #[arg(long)]
        shuffle_ids: bool,
        /// Without --spawn: report this server process's memory.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Threads of the load generator. One leaves the other cores to the
        /// server it measures.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
        client_threads: u16,
        /// With --spawn: threads of the server's own runtime (default: one per
        /// core), as `serve --workers`.
        #[arg(long, requires = "spawn", value_parser = clap::value_parser!(u16).range(1..=1024))]
        server_workers: Option<u16>,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List versions with their holdout metrics.
    List {
        #[arg(long, env = "RAPPORT_SERVER")]
        server: Option<String>,
    },
    /// Make a stored version active, if it passes the promotion checks.
    Promote {
        version: u64,
        /// Promote even if the checks fail; the reason is written to the audit log.
        #[arg(long, value_name = "REASON")]
        force: Option<String>,
        /// The slot: `default` or a kind (customer, account, supplier,
        /// partner); the version's own slot when left out.
        #[arg(long, default_value = "")]
        slot: String,
        #[arg(long, env = "RAPPORT_SERVER")]
        server: Option<String>,
    },
    /// Make the previously active version of a slot active again.
    Rollback {
        /// The slot: `default` or a kind.
        #[arg(long, default_value = "default")]
        slot: String,
        #[arg(long, env = "RAPPORT_SERVER")]
        server: Option<String>,
    },
    /// Feature drift (PSI) of a version against the live relationships.
    Drift {
        /// 0 means the active version.
        #[arg(long, default_value_t = 0)]
        version: u64,
        #[arg(long, default_value_t = 2_000)]
        sample: u32,
        #[arg(long, env = "RAPPORT_SERVER")]
        server: Option<String>,
    },
}

fn main() {
    let args = Cli::parse();
    cli::init_tracing(args.log_format);
    let threads = match &args.command {
        Command::Serve { workers, .. } => *workers,
        Command::Bench { client_threads, .. } => Some(*client_threads),
        _ => None,
    };
    // The runtime is never dropped: that would wait for any blocking task
    // still running (a training after SIGTERM), and the server has already
    // drained and flushed the store. The process exits below instead.
    let result = match server::runtime(threads.map(usize::from)).build() {
        Ok(runtime) => {
            let result = runtime.block_on(run(args));
            std::mem::forget(runtime);
            result
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
    }
}

fn parse_store(address: &str) -> Result<RedisOptions, String> {
    RedisOptions::parse(address).map_err(|e| e.to_string())
}

async fn run(args: Cli) -> rapport::error::Result<()> {
    let store = StoreArgs {
        data_dir: args.data_dir,
        cache_mb: args.cache_mb,
        redis: args.store,
    };
    let client = args.client.options();
    let remote = |server: Option<String>| {
        server.map(|addr| cli::Remote {
            addr,
            client: client.clone(),
        })
    };
    match args.command {
        Command::Serve {
            listen,
            policy,
            spec,
            demo_size,
            demo_seed,
            no_demo,
            drain_seconds,
            workers: _,
            security,
        } => {
            async {
                let policy = match policy {
                    Some(p) => Policy::parse(&p.display().to_string(), &cli::read(&p)?)?,
                    None => Policy::default(),
                };
                let spec = cli::load_spec(spec.as_deref())?;
                let demo = (!no_demo).then(|| DemoConfig {
                    seed: demo_seed,
                    relationships: demo_size,
                    ..DemoConfig::new(cli::today())
                });
                let listener = tokio::net::TcpListener::bind(&listen).await?;
                let metrics = match &security.metrics_listen {
                    Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
                    None => None,
                };
                let options = server::ServeOptions {
                    redis: store.redis.map(|r| {
                        r.with_cache_mb(store.cache_mb.unwrap_or(SledOptions::SERVING_CACHE_MB))
                    }),
                    policy,
                    spec,
                    demo,
                    drain_timeout: std::time::Duration::from_secs(drain_seconds),
                    sled: SledOptions {
                        min_free_bytes: security.min_free_mb << 20,
                        write_timeout: std::time::Duration::from_secs(
                            security.write_timeout_seconds,
                        ),
                        ..SledOptions::with_cache_mb(
                            store.cache_mb.unwrap_or(SledOptions::SERVING_CACHE_MB),
                        )
                    },
                    access: rapport::api::Access {
                        tokens: cli::load_tokens(security.tokens.as_deref())?,
                        protect_health: security.protect_health,
                    },
                    tls: security.tls_cert.clone().zip(security.tls_key.clone()).map(
                        |(cert, key)| server::TlsFiles {
                            cert,
                            key,
                            client_ca: security.tls_client_ca.clone(),
                        },
                    ),
                    limits: security.limits(),
                    engine: rapport::engine::EngineOptions {
                        max_clock_skew: i64::from(security.max_clock_skew),
                    },
                    service: rapport::api::ServiceOptions {
                        training_data_root: security.training_data_root.clone(),
                        backup_root: security.backup_root.clone(),
                        keep_models: security.keep_models as usize,
                    },
                    metrics,
                    ..server::ServeOptions::new(store.data_dir)
                };
                server::run(listener, options, cli::shutdown_signal()).await
            }
            .await
        }
        Command::Ingest {
            relationships,
            events,
            products,
            skip_bad_rows,
            no_create_missing,
            spec,
            data,
        } => cli::ingest(
            &store,
            cli::IngestFiles {
                relationships: relationships.as_deref(),
                events: events.as_deref(),
                products: products.as_deref(),
                spec: spec.as_deref(),
                data: data.as_deref(),
            },
            skip_bad_rows,
            !no_create_missing,
        ),
        Command::Train {
            spec,
            data,
            activate,
            report,
            force,
            server,
        } => match cli::load_spec_file(spec.as_deref(), data.as_deref()) {
            Ok(spec) => {
                cli::train(
                    &store,
                    spec,
                    activate,
                    report.as_deref(),
                    force,
                    remote(server).as_ref(),
                )
                .await
            }
            Err(e) => Err(e),
        },
        Command::Backup { out, server } => cli::backup(&store, &out, remote(server).as_ref()).await,
        Command::Restore { from } => cli::restore(&store, &from),
        Command::Score {
            export,
            with_labels,
        } => {
            cli::score(
                &store,
                &export.out,
                export.ids.as_deref(),
                export.as_of.as_deref(),
                remote(export.server).as_ref(),
                with_labels,
            )
            .await
        }
        Command::Recommend {
            export,
            max_actions,
            policy,
        } => {
            let args = cli::RecommendArgs {
                ids: export.ids.as_deref(),
                as_of: export.as_of.as_deref(),
                max_actions,
                policy: policy.as_deref(),
            };
            cli::recommend(&store, &export.out, &args, remote(export.server).as_ref()).await
        }
        Command::Campaign {
            out,
            budget,
            max_contacts,
            actions,
            opt_out,
            kind,
            segment,
            stage,
            tier,
            as_of,
            server,
        } => {
            let plan = cli::CampaignArgs {
                budget,
                max_contacts,
                actions,
                opt_out,
                kinds: kind,
                segments: segment,
                stages: stage,
                tiers: tier,
                as_of,
            };
            cli::campaign(&store, &out, &plan, remote(server).as_ref()).await
        }
        Command::Models { command } => match command {
            ModelsCommand::List { server } => {
                cli::list_models(&store, remote(server).as_ref()).await
            }
            ModelsCommand::Promote {
                version,
                force,
                slot,
                server,
            } => cli::promote(&store, Some(version), &slot, force, remote(server).as_ref()).await,
            ModelsCommand::Rollback { slot, server } => {
                cli::promote(&store, None, &slot, None, remote(server).as_ref()).await
            }
            ModelsCommand::Drift {
                version,
                sample,
                server,
            } => cli::drift(&store, version, sample, remote(server).as_ref()).await,
        },
        Command::Bench {
            target,
            spawn,
            demo_size,
            demo_seed,
            ids_from_demo,
            keep_data,
            startup_timeout,
            concurrency,
            channels,
            batch_concurrency,
            streams,
            stream_window,
            duration,
            warmup,
            repetitions,
            rpcs,
            batch_size,
            ingest_batch,
            echo_payload,
            shuffle_ids,
            server_pid,
            json,
            client_threads: _,
            server_workers,
        } => {
            use rapport::tools::bench::{run_and_print, BenchOptions, Target};
            let book = |relationships| DemoConfig {
                seed: demo_seed,
                relationships,
                ..DemoConfig::new(cli::today())
            };
            let target = if spawn {
                Target::Spawn {
                    demo: book(demo_size),
                    keep_data,
                    startup_timeout: std::time::Duration::from_secs(startup_timeout),
                    workers: server_workers.map(usize::from),
                }
            } else {
                Target::Address {
                    addr: target,
                    ids_from: book(ids_from_demo),
                }
            };
            // NaN or out of range becomes 0 s, which the library rejects by name.
            let seconds = |s: f64| {
                std::time::Duration::from_secs_f64(if (0.0..=86_400.0).contains(&s) {
                    s
                } else {
                    0.0
                })
            };
            let options = BenchOptions {
                concurrency,
                channels,
                batch_concurrency,
                streams,
                stream_window,
                duration: seconds(duration),
                warmup: seconds(warmup),
                repetitions,
                rpcs,
                batch_size,
                ingest_batch,
                echo_payload,
                shuffle_ids,
                server_pid,
                client: client.clone(),
                ..BenchOptions::new(target)
            };
            run_and_print(&options, json.as_deref()).await
        }
    }
}
