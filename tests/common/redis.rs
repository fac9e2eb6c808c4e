//! A Redis Cluster for the tests of the Redis store: the one CI starts
//! (`RAPPORT_TEST_REDIS`, see .ci/run), or a private one started with
//! `.ci/redis-cluster.sh` on free loopback ports where redis-server is
//! installed. Tests that stop nodes always get a private one.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rapport::store::redis::RedisOptions;

/// Three primaries with a replica each, stopped when dropped.
pub struct LocalCluster {
    pub port: u16,
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/redis-cluster.sh")
}

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Why a test cannot run; panics under CI unless `.ci/run` found that
/// Redis cannot be installed there (`RAPPORT_REDIS_UNAVAILABLE`).
fn unavailable(test: &str) {
    let reason = "no RAPPORT_TEST_REDIS and no redis-server on PATH (apt-get install redis-server)";
    match std::env::var("RAPPORT_REDIS_UNAVAILABLE") {
        Ok(why) => eprintln!("skipping {test}: {reason}: {why}"),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: {reason}; CI must run it"
            );
            eprintln!("skipping {test}: {reason}");
        }
    }
}

fn free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

impl LocalCluster {
    /// Starts a cluster on six free ports (and their bus ports, +10000);
    /// `None`, with a message, where redis-server is not installed.
    pub fn start(test: &str) -> Option<LocalCluster> {
        if !installed() {
            unavailable(test);
            return None;
        }
        for _ in 0..20 {
            let port = 20_000 + (rand::random::<u16>() % 9_000);
            if !(0..6).all(|i| free(port + i) && free(port + 10_000 + i)) {
                continue;
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let out = Command::new("bash")
                .arg(script())
                .arg("start")
                .env("REDIS_CLUSTER_PORT", port.to_string())
                .env("REDIS_CLUSTER_DIR", dir.path().join("nodes"))
                .output()
                .expect("run .ci/redis-cluster.sh");
            let cluster = LocalCluster { port, dir };
            if out.status.success() {
                return Some(cluster);
            }
            eprintln!(
                "cluster on {port} did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("could not start a redis cluster on free ports");
    }

    pub fn address(&self) -> String {
        let nodes: Vec<String> = (0..6)
            .map(|i| format!("127.0.0.1:{}", self.port + i))
            .collect();
        format!("redis://{}", nodes.join(","))
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("bash")
            .arg(script())
            .args(args)
            .env("REDIS_CLUSTER_PORT", self.port.to_string())
            .env("REDIS_CLUSTER_DIR", self.dir.path().join("nodes"))
            .output()
            .expect("run .ci/redis-cluster.sh")
    }

    /// The node on `port`'s process id.
    pub fn pid(&self, port: u16) -> u32 {
        let file = self.dir.path().join(format!("nodes/{port}/redis.pid"));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    /// kill -9 of the node on `port`.
    pub fn kill(&self, port: u16) {
        let status = Command::new("kill")
            .args(["-9", &self.pid(port).to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 of the node on {port}");
    }

    /// Starts the node on `port` again on its own files: it rejoins, as a
    /// replica if it was failed over.
    pub fn restart(&self, port: u16) {
        let out = self.run(&["restart", &port.to_string()]);
        assert!(
            out.status.success(),
            "restart {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Lines of `CLUSTER NODES` as the node on `port` sees them.
    pub fn nodes(&self, port: u16) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "nodes"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The slot ranges the node on `port` serves, as it reports them.
    pub fn slots(&self, port: u16) -> Vec<String> {
        let nodes = self.nodes(port);
        let line = nodes
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap_or_else(|| panic!("no node on {port}:\n{nodes}"));
        line.split_whitespace().skip(8).map(String::from).collect()
    }

    /// Whether the node on `port` serves the slot of keys tagged `tag`
    /// (one relationship's keys, see the key layout of `store::redis`).
    pub fn serves(&self, port: u16, tag: &str) -> bool {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "keyslot", tag])
            .output()
            .expect("redis-cli");
        let slot: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT {tag}: {e}"));
        self.slots(port).iter().any(|range| {
            let mut ends = range.split('-').map(|n| n.parse::<u16>());
            match (ends.next(), ends.next()) {
                (Some(Ok(first)), Some(Ok(last))) => (first..=last).contains(&slot),
                (Some(Ok(only)), None) => only == slot,
                // A slot being migrated ("[...]") is not served yet.
                _ => false,
            }
        })
    }

    /// Waits until the node on `port` reports every slot served and
    /// `healthy` primaries with a replica each; panics after `within`.
    pub fn wait_state(&self, port: u16, within: Duration, mut healthy: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .expect("redis-cli");
            let ok = String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok");
            let nodes = self.nodes(port);
            if ok && healthy(&nodes) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle in {within:?}:\n{nodes}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
    }
}

/// A cluster to test against: CI's, else a private one. `None` (with a
/// message) only where neither exists.
pub enum TestCluster {
    Shared(String),
    Own(LocalCluster),
}

impl TestCluster {
    pub fn get(test: &str) -> Option<TestCluster> {
        match std::env::var("RAPPORT_TEST_REDIS") {
            Ok(address) if !address.is_empty() => Some(TestCluster::Shared(address)),
            _ => LocalCluster::start(test).map(TestCluster::Own),
        }
    }

    pub fn address(&self) -> String {
        match self {
            TestCluster::Shared(address) => address.clone(),
            TestCluster::Own(cluster) => cluster.address(),
        }
    }

    /// Options for a namespace no other test uses.
    pub fn options(&self, test: &str) -> RedisOptions {
        options_for(&self.address(), test)
    }
}

/// Options for `address` under a fresh namespace named after `test`.
pub fn options_for(address: &str, test: &str) -> RedisOptions {
    let namespace = format!(
        "{}-{}-{:08x}",
        test.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        std::process::id(),
        rand::random::<u32>()
    );
    RedisOptions::parse(address)
        .expect("a redis address")
        .with_namespace(&namespace)
}
