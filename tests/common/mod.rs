//! Starts the real server on a free loopback port with a temporary sled
//! directory, and hands out generated clients. The server checks tokens, as
//! in production: each client carries the token of the role its service
//! needs (see [`READ_TOKEN`]).

#![allow(dead_code)]

pub mod pki;
pub mod redis;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rapport::api::auth::Tokens;
use rapport::api::client::{Bearer, Conn};
use rapport::api::pb;
use rapport::api::pb::ingest_client::IngestClient;
use rapport::api::pb::models_client::ModelsClient;
use rapport::api::pb::scoring_client::ScoringClient;
use rapport::api::Access;
use rapport::engine::Policy;
use rapport::model::ModelSpec;
use rapport::server::{run, ServeOptions};
use rapport::training::demo::DemoConfig;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

pub const DAY: i64 = 86_400;

/// The tokens every test server accepts, one per role ([`test_tokens`]).
pub const READ_TOKEN: &str = "read-token-0123456789";
pub const WRITE_TOKEN: &str = "write-token-0123456789";
pub const ADMIN_TOKEN: &str = "admin-token-0123456789";

/// `READ_TOKEN`, `WRITE_TOKEN` and `ADMIN_TOKEN` with their roles, as a
/// token file has them (also for `rapport serve --tokens`).
pub const TOKEN_FILE: &str = "read-token-0123456789 read dashboards\n\
    write-token-0123456789 write crm-sync\n\
    admin-token-0123456789 admin oncall\n";

pub fn test_tokens() -> Tokens {
    Tokens::parse("test tokens", TOKEN_FILE).expect("test tokens parse")
}

/// `channel` with every call carrying `token`.
pub fn authed(channel: Channel, token: &str) -> Conn {
    InterceptedService::new(channel, Bearer::new(Some(token)).expect("token"))
}

/// Small enough to train in seconds, large enough for every model.
pub const TEST_DEMO_SIZE: usize = 3_000;

pub fn today() -> i64 {
    rapport::cli::today()
}

pub fn demo_config() -> DemoConfig {
    DemoConfig {
        relationships: TEST_DEMO_SIZE,
        ..DemoConfig::new(today())
    }
}

/// A server running on its own runtime thread; dropped, it shuts down.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts on a fresh temporary directory.
    pub fn start(demo: Option<DemoConfig>) -> TestServer {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = TestServer::start_in(&dir, demo);
        server._temp = Some(temp);
        server
    }

    /// Starts on `dir` (which the caller keeps).
    pub fn start_in(dir: &Path, demo: Option<DemoConfig>) -> TestServer {
        TestServer::start_configured(dir, demo, |_| {})
    }

    /// Starts on a Redis Cluster store (a temporary directory is still
    /// made: nothing is written to it).
    pub fn start_redis(
        store: rapport::store::redis::RedisOptions,
        demo: Option<DemoConfig>,
    ) -> TestServer {
        TestServer::start_with(demo, move |options| options.redis = Some(store))
    }

    /// Starts on a fresh temporary directory with options `configure` sets
    /// (it runs inside the server's runtime, so it may bind tokio listeners).
    pub fn start_with(
        demo: Option<DemoConfig>,
        configure: impl FnOnce(&mut ServeOptions) + Send + 'static,
    ) -> TestServer {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = TestServer::start_configured(&dir, demo, configure);
        server._temp = Some(temp);
        server
    }

    /// Starts on `dir` with options `configure` sets.
    pub fn start_configured(
        dir: &Path,
        demo: Option<DemoConfig>,
        configure: impl FnOnce(&mut ServeOptions) + Send + 'static,
    ) -> TestServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let mut options = ServeOptions {
            policy: Policy::default(),
            spec: ModelSpec::demo(),
            demo,
            drain_timeout: Duration::from_millis(500),
            access: Access {
                tokens: test_tokens(),
                protect_health: false,
            },
            ..ServeOptions::new(dir)
        };
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let served = runtime.block_on(async move {
                configure(&mut options);
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                run(listener, options, async {
                    let _ = rx.await;
                })
                .await
            });
            // A blocking task stuck on a broken disk must not hold the test.
            runtime.shutdown_timeout(Duration::from_secs(2));
            served.expect("server runs");
        });
        TestServer {
            addr,
            dir: dir.to_path_buf(),
            _temp: None,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// This server as the command line's `--server` reaches it, with `token`.
    pub fn remote(&self, token: &str) -> rapport::cli::Remote {
        rapport::cli::Remote {
            addr: self.url(),
            client: rapport::api::client::ClientOptions {
                token: Some(token.to_string()),
                ..Default::default()
            },
        }
    }

    /// A connection without a token (health and reflection are open).
    pub async fn channel(&self) -> Channel {
        connect(&self.url()).await
    }

    /// A connection whose calls carry `token`.
    pub async fn conn(&self, token: &str) -> Conn {
        authed(self.channel().await, token)
    }

    pub async fn scoring(&self) -> ScoringClient<Conn> {
        ScoringClient::new(self.conn(READ_TOKEN).await)
    }

    /// Score as of now with `max_reasons` reasons (panics on an error status).
    pub async fn score_now(&self, id: &str, max_reasons: u32) -> pb::RelationshipScore {
        self.scoring()
            .await
            .score(pb::ScoreRequest {
                relationship_id: id.into(),
                as_of: None,
                max_reasons,
            })
            .await
            .expect("score")
            .into_inner()
    }

    /// Segment as of now (panics on an error status).
    pub async fn segment_now(&self, id: &str) -> pb::SegmentResponse {
        self.scoring()
            .await
            .segment(pb::SegmentRequest {
                relationship_id: id.into(),
                as_of: None,
            })
            .await
            .expect("segment")
            .into_inner()
    }

    /// Recommend as of now, up to `max_actions`, excluding nothing (panics
    /// on an error status).
    pub async fn recommend_now(&self, id: &str, max_actions: u32) -> pb::RecommendResponse {
        self.scoring()
            .await
            .recommend(pb::RecommendRequest {
                relationship_id: id.into(),
                as_of: None,
                max_actions,
                exclude_product_ids: vec![],
                exclude_action_types: vec![],
            })
            .await
            .expect("recommend")
            .into_inner()
    }

    pub async fn ingest(&self) -> IngestClient<Conn> {
        IngestClient::new(self.conn(WRITE_TOKEN).await)
    }

    /// Ingest with the admin token, which erasure (`Delete*`) needs.
    pub async fn ingest_admin(&self) -> IngestClient<Conn> {
        IngestClient::new(self.conn(ADMIN_TOKEN).await)
    }

    pub async fn models(&self) -> ModelsClient<Conn> {
        ModelsClient::new(self.conn(ADMIN_TOKEN).await)
    }

    pub async fn health(&self) -> ServingStatus {
        let mut client = HealthClient::new(self.channel().await);
        let status = client
            .check(HealthCheckRequest {
                service: "rapport.v1.Scoring".into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        ServingStatus::try_from(status).expect("known status")
    }

    /// Waits for health SERVING (start-up training done).
    pub async fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while self.health().await != ServingStatus::Serving {
            assert!(
                Instant::now() < deadline,
                "server did not become SERVING in time"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server (drain and flush) and waits for it.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// A channel to `url`, retried while the server there starts (30 s at most).
pub async fn connect(url: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Channel::from_shared(url.to_string())
            .expect("url")
            .connect()
            .await
        {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The `rapport` binary serving without a demo book on a free loopback
/// port, with `options` before the subcommand (`--data-dir`, `--store`);
/// returns the process and its URL. It accepts the test tokens.
pub fn spawn_serve(options: &[&str]) -> (std::process::Child, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("local addr").port()
    };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(options)
        .args(["serve", "--no-demo", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env("RAPPORT_TOKENS", TOKEN_FILE.replace('\n', ";"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start rapport");
    (child, format!("http://127.0.0.1:{port}"))
}

/// Polls `check` until it holds, failing after `within`; returns how long it took.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// One demo server shared by the read-mostly tests of a test binary.
pub fn shared() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(Some(demo_config())))
}

pub fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// The first `n` ids of the test demo book whose id starts with `prefix` ("c-", "a-", ...).
pub fn demo_ids(prefix: &str, n: usize) -> Vec<String> {
    let book = rapport::training::demo::DemoBook::new(demo_config());
    (0..book.len())
        .map(|i| book.relationship(i).0.id)
        .filter(|id| id.starts_with(prefix))
        .take(n)
        .collect()
}

/// Ids of the test demo book whose relationship had started by `at`, every one.
pub fn demo_ids_existing_at(at: i64) -> Vec<String> {
    let book = rapport::training::demo::DemoBook::new(demo_config());
    (0..book.len())
        .map(|i| book.relationship(i))
        .filter(|(r, events)| r.created_at.min(events.first().map_or(i64::MAX, |e| e.at)) <= at)
        .map(|(r, _)| r.id)
        .collect()
}

/// The sled store in `dir`, opened as the server opens it.
pub fn open_store(dir: &Path) -> rapport::SharedStore {
    std::sync::Arc::new(
        rapport::store::sled::SledStore::open(dir, rapport::store::sled::SledOptions::default())
            .expect("open the store"),
    )
}

/// A CSV file's rows, each as its columns by header name.
pub fn csv_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .zip(r.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}
