//! What an operator sees and does, against the real server: metrics that
//! move, health per service, backups taken under write load that restore to
//! identical scores, and the validation of what callers write.

mod common;

use std::time::{Duration, Instant};

use common::{demo_config, demo_ids, today, ts, TestServer, DAY};
use rapport::api::pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "{}",
        &out[..out.len().min(200)]
    );
    out
}

/// The value of the sample whose name and labels start with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn score_request(id: &str) -> pb::ScoreRequest {
    pb::ScoreRequest {
        relationship_id: id.into(),
        as_of: None,
        max_reasons: 1,
    }
}

fn purchase(id: &str, at: i64, amount: f64) -> pb::Event {
    pb::Event {
        relationship_id: id.into(),
        body: Some(pb::event::Body::Purchase(pb::Purchase {
            at: Some(ts(at)),
            amount,
            product_ids: vec![],
            quantity: 1,
        })),
    }
}

#[tokio::test]
async fn a_scrape_of_the_metrics_port_shows_the_counters_moving() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    let server = TestServer::start_with(Some(demo_config()), move |options| {
        options.metrics = Some(tokio::net::TcpListener::from_std(listener).unwrap());
    });
    server.wait_serving().await;
    let before = scrape(metrics_addr).await;
    let ok_scores =
        "rapport_requests_total{service=\"rapport.v1.Scoring\",method=\"Score\",code=\"Ok\"}";
    let mut scoring = server.scoring().await;
    let ids = demo_ids("c-", 5);
    // Each id twice: the second read of each is a cache hit.
    for id in ids.iter().chain(&ids) {
        scoring.score(score_request(id)).await.unwrap();
    }
    let missing = scoring
        .score(score_request("nobody-here"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    server
        .ingest()
        .await
        .record_events(pb::RecordEventsRequest {
            events: vec![purchase(&ids[0], today() - DAY, 12.0)],
        })
        .await
        .unwrap();
    let after = scrape(metrics_addr).await;
    // At least: the recorder is the process's, and other tests of this binary may score too.
    assert!(
        sample(&after, ok_scores) - sample(&before, ok_scores) >= 10.0,
        "{after}"
    );
    assert!(sample(&after, "rapport_not_found_total") > sample(&before, "rapport_not_found_total"));
    assert!(sample(&after, "rapport_ingest_events_total") >= 1.0);
    assert!(sample(&after, "rapport_commit_group_events_count") >= 1.0);
    assert!(sample(&after, "rapport_commit_flush_seconds_count") >= 1.0);
    assert!(
        sample(&after, "rapport_request_duration_seconds_count{service=\"rapport.v1.Scoring\",method=\"Score\"}")
            >= 11.0
    );
    assert!(sample(&after, "rapport_model_active_version{slot=\"default\"}") >= 1.0);
    assert!(after.contains("rapport_model_active_age_seconds{slot=\"default\"}"));
    assert!(sample(&after, "rapport_read_cache_hit_ratio") > 0.0);
    assert!(sample(&after, "rapport_fsync_seconds_count") >= 1.0);
    // The book is counted in the background at start.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(metrics_addr).await;
        if sample(&text, "rapport_book_relationships") >= 3_000.0 {
            break;
        }
        assert!(Instant::now() < deadline, "book size not reported:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn health_of(server: &TestServer, service: &str) -> ServingStatus {
    let status = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap()
}

#[tokio::test]
async fn health_is_per_service_and_liveness_stays_up_while_training() {
    let empty = TestServer::start(None);
    for (service, want) in [
        ("", ServingStatus::Serving),
        ("rapport.v1.Ingest", ServingStatus::Serving),
        ("rapport.v1.Models", ServingStatus::Serving),
        ("rapport.v1.Scoring", ServingStatus::NotServing),
    ] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while health_of(&empty, service).await != want {
            assert!(Instant::now() < deadline, "{service:?} is not {want:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let server = TestServer::start(Some(demo_config()));
    server.wait_serving().await;
    let mut models = server.models().await;
    let training =
        tokio::spawn(async move { models.train_model(pb::TrainModelRequest::default()).await });
    let mut checks = 0;
    while !training.is_finished() {
        assert_eq!(health_of(&server, "").await, ServingStatus::Serving);
        assert_eq!(
            health_of(&server, "rapport.v1.Scoring").await,
            ServingStatus::Serving
        );
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    training.await.unwrap().unwrap();
    assert!(checks > 3, "training finished before health was checked");
}

async fn scores(server: &TestServer, ids: &[String]) -> Vec<pb::RelationshipScore> {
    server
        .scoring()
        .await
        .score_batch(pb::ScoreBatchRequest {
            relationship_ids: ids.to_vec(),
            as_of: Some(ts(today())),
            max_reasons: 3,
            skip_unknown: false,
        })
        .await
        .unwrap()
        .into_inner()
        .scores
}

#[tokio::test]
async fn a_backup_taken_under_write_load_restores_to_identical_scores() {
    let backups = tempfile::tempdir().unwrap();
    let root = backups.path().to_path_buf();
    let server = TestServer::start_with(Some(demo_config()), move |options| {
        options.service.backup_root = Some(root);
    });
    server.wait_serving().await;
    let writers = demo_ids("c-", 20);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut ingest = server.ingest().await;
    let load = {
        let (stop, writers) = (stop.clone(), writers.clone());
        tokio::spawn(async move {
            let mut written = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let at = today() - DAY + (written as i64 % 80_000);
                let events = writers
                    .iter()
                    .map(|id| purchase(id, at, 1.0 + written as f64))
                    .collect();
                ingest
                    .record_events(pb::RecordEventsRequest { events })
                    .await
                    .expect("writes go on during the backup");
                written += 1;
            }
            written
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut models = server.models().await;
    let during = models
        .backup_store(pb::BackupStoreRequest {
            directory: "during-load".into(),
        })
        .await
        .expect("backup under load")
        .into_inner();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = load.await.unwrap();
    assert!(batches > 0);
    assert!(during.relationships >= 3_000 && during.events > 0);
    for bad in ["../outside", "/tmp/abs", "during-load"] {
        let status = models
            .backup_store(pb::BackupStoreRequest {
                directory: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
    }
    // Quiet now: a second backup is the live book exactly.
    let quiet = models
        .backup_store(pb::BackupStoreRequest {
            directory: "quiet".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = demo_ids("c-", 200)
        .into_iter()
        .chain(demo_ids("a-", 50))
        .collect();
    let live = scores(&server, &ids).await;

    let restored_quiet = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rapport"))
        .arg("--data-dir")
        .arg(restored_quiet.path())
        .args(["restore", "--from", &quiet.path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = TestServer::start_in(restored_quiet.path(), None);
    copy.wait_serving().await;
    assert_eq!(
        scores(&copy, &ids).await,
        live,
        "the restored copy scores differently"
    );
    copy.stop();

    // The backup under load is one moment: each writer's events in it are a
    // whole number of the batches it recorded, the same for every writer.
    let restored_during = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rapport"))
        .arg("--data-dir")
        .arg(restored_during.path())
        .args(["restore", "--from", &during.path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = common::open_store(restored_during.path());
    let live_store_counts: Vec<usize> = writers
        .iter()
        .map(|id| store.events(id, None).unwrap().len())
        .collect();
    let demo = rapport::training::demo::DemoBook::new(demo_config());
    let demo_counts: std::collections::HashMap<String, usize> = (0..demo.len())
        .map(|i| {
            let (r, events) = demo.relationship(i);
            (r.id, events.len())
        })
        .collect();
    let added: Vec<usize> = writers
        .iter()
        .zip(&live_store_counts)
        .map(|(id, n)| n - demo_counts[id])
        .collect();
    assert!(
        added.iter().all(|n| *n == added[0]),
        "a torn backup: {added:?}"
    );
    assert!(added[0] as u64 <= batches);
}

#[tokio::test]
async fn blank_invisible_and_future_writes_are_invalid_arguments() {
    let server = TestServer::start_with(None, |options| options.engine.max_clock_skew = 60);
    let mut ingest = server.ingest().await;
    let relationship = |id: &str| pb::UpsertRelationshipRequest {
        relationship: Some(pb::Relationship {
            id: id.into(),
            kind: pb::RelationshipKind::Customer as i32,
            created_at: Some(ts(today() - 30 * DAY)),
            attributes: Default::default(),
        }),
        replace_attributes: false,
    };
    for bad in [
        "   ",
        "\t",
        "c\u{200B}1",
        "\u{FEFF}c-1",
        "c-\u{202E}1",
        "c\u{2066}-1",
    ] {
        let status = ingest
            .upsert_relationship(relationship(bad))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert!(
            status.message().contains("relationship.id"),
            "{}",
            status.message()
        );
    }
    ingest
        .upsert_relationship(relationship("c-1"))
        .await
        .unwrap();
    let now = rapport::time::now();
    let status = ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![purchase("c-1", now + 3_600, 5.0)],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("--max-clock-skew"),
        "{}",
        status.message()
    );
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![purchase("c-1", now + 30, 5.0)],
        })
        .await
        .expect("within the clock skew");
    let status = server
        .scoring()
        .await
        .score(score_request("c\u{200D}1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
