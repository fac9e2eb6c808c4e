//! A full disk against the real server: writes fail with an error (not a
//! hang), Ingest health turns NOT_SERVING, and both recover once space returns.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ts, TestServer};
use rapport::api::pb;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` when this process cannot mount (not root, or no tmpfs).
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the disk with one file until the kernel refuses; returns its path.
fn fill(disk: &Path) -> PathBuf {
    use std::io::Write;
    let path = disk.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0xA5u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    // Small writes into what the last block left.
    while file.write_all(&block[..512]).is_ok() {}
    let _ = file.sync_all();
    path
}

async fn ingest_health(server: &TestServer) -> ServingStatus {
    let mut health = HealthClient::new(server.channel().await);
    let status = health
        .check(HealthCheckRequest {
            service: "rapport.v1.Ingest".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap()
}

async fn wait_for(server: &TestServer, want: ServingStatus, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = ingest_health(server).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Ingest health stayed {now:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn events(id: &str, n: usize, at: i64) -> pb::RecordEventsRequest {
    pb::RecordEventsRequest {
        events: (0..n)
            .map(|i| pb::Event {
                relationship_id: id.into(),
                body: Some(pb::event::Body::Purchase(pb::Purchase {
                    at: Some(ts(at + i as i64)),
                    amount: 10.0,
                    product_ids: (0..20).map(|p| format!("product-{p:04}-{i}")).collect(),
                    quantity: 1,
                })),
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_full_disk_fails_writes_flips_ingest_health_and_recovers() {
    let Some(disk) = SmallDisk::mount(64) else {
        eprintln!(
            "skipped: cannot mount a tmpfs here (needs root); the full-disk behaviour is untested"
        );
        return;
    };
    let server = TestServer::start_configured(&disk.path().join("data"), None, |options| {
        options.sled.min_free_bytes = 8 << 20;
    });
    let mut ingest = server.ingest().await;
    ingest
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(pb::Relationship {
                id: "c-1".into(),
                kind: pb::RelationshipKind::Customer as i32,
                created_at: Some(ts(1_600_000_000)),
                attributes: Default::default(),
            }),
            replace_attributes: false,
        })
        .await
        .unwrap();
    let base = 1_700_000_000;
    ingest
        .record_events(events("c-1", 100, base))
        .await
        .unwrap();
    wait_for(&server, ServingStatus::Serving, Duration::from_secs(5)).await;

    let filler = fill(disk.path());
    let started = Instant::now();
    let mut failed = None;
    for round in 0..200 {
        let call = ingest.record_events(events("c-1", 500, base + 1_000 * (round + 1)));
        match tokio::time::timeout(Duration::from_secs(20), call).await {
            Err(_) => panic!("a write on a full disk hung for 20 s"),
            Ok(Ok(_)) => continue,
            Ok(Err(status)) => {
                failed = Some(status);
                break;
            }
        }
    }
    let status = failed.expect("writes kept succeeding on a full disk");
    eprintln!("on a full disk after {:?}: {status:?}", started.elapsed());
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    wait_for(&server, ServingStatus::NotServing, Duration::from_secs(5)).await;

    std::fs::remove_file(&filler).unwrap();
    wait_for(&server, ServingStatus::Serving, Duration::from_secs(30)).await;
    let accepted = ingest
        .record_events(events("c-1", 10, base + 900_000))
        .await
        .expect("writes resume once space returns")
        .into_inner()
        .accepted;
    assert_eq!(accepted, 10);
    let stopping = Instant::now();
    server.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        stopping.elapsed()
    );
}
