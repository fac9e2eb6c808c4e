//! Start-up, restart, reflection, health and crash durability, against the
//! real server (and, for kill -9, the real binary).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{connect, demo_config, demo_ids, open_store, spawn_serve, today, ts, TestServer, DAY};
use prost::Message;
use rapport::api::pb;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;

async fn list_services_v1(server: &TestServer) -> Vec<String> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1")
        .into_inner();
    match replies
        .next()
        .await
        .expect("a reply")
        .expect("ok")
        .message_response
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reply {other:?}"),
    }
}

/// What `grpcurl describe` does: fetch the file that defines a symbol.
async fn describe_v1alpha(
    server: &TestServer,
    symbol: &str,
) -> Vec<prost_types::FileDescriptorProto> {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.to_string())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    match replies
        .next()
        .await
        .expect("a reply")
        .expect("ok")
        .message_response
    {
        Some(MessageResponse::FileDescriptorResponse(files)) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("descriptor")
            })
            .collect(),
        other => panic!("unexpected reply for {symbol}: {other:?}"),
    }
}

#[tokio::test]
async fn reflection_lists_and_describes_every_service_and_health_turns_serving() {
    let server = TestServer::start(Some(demo_config()));
    let mut seen = vec![server.health().await];
    server.wait_serving().await;
    seen.push(server.health().await);
    assert_eq!(seen.last(), Some(&ServingStatus::Serving), "{seen:?}");

    let services = list_services_v1(&server).await;
    for name in [
        "rapport.v1.Ingest",
        "rapport.v1.Scoring",
        "rapport.v1.Book",
        "rapport.v1.Models",
        "rapport.v1.Echo",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            services.iter().any(|s| s == name),
            "{name} missing from {services:?}"
        );
    }
    let files = describe_v1alpha(&server, "rapport.v1.Scoring").await;
    let rapport = files
        .iter()
        .find(|f| f.package() == "rapport.v1")
        .expect("rapport.v1 file");
    let scoring = rapport
        .service
        .iter()
        .find(|s| s.name() == "Scoring")
        .expect("Scoring");
    let methods: Vec<&str> = scoring.method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        vec![
            "Score",
            "ScoreBatch",
            "ScoreStream",
            "Segment",
            "Recommend",
            "RecommendBatch"
        ]
    );
    assert!(rapport
        .message_type
        .iter()
        .any(|m| m.name() == "RelationshipScore"));
    // The imported well-known type must be resolvable too, or grpcurl cannot build requests.
    assert!(rapport
        .dependency
        .iter()
        .any(|d| d == "google/protobuf/timestamp.proto"));
    let health = describe_v1alpha(&server, "grpc.health.v1.Health").await;
    assert!(health.iter().any(|f| f.package() == "grpc.health.v1"));
}

#[tokio::test]
async fn restart_on_the_same_directory_reuses_the_model_and_gives_identical_scores() {
    let dir = tempfile::tempdir().unwrap();
    let ids = demo_ids("", 20);
    let as_of = Some(ts(today() - 3 * DAY));
    let snapshot = |server: &TestServer| {
        let ids = ids.clone();
        let url = server.url();
        async move {
            let channel = tonic::transport::Channel::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let channel = common::authed(channel, common::ADMIN_TOKEN);
            let mut scoring = pb::scoring_client::ScoringClient::new(channel.clone());
            let scores = scoring
                .score_batch(pb::ScoreBatchRequest {
                    relationship_ids: ids.clone(),
                    as_of,
                    max_reasons: 5,
                    skip_unknown: false,
                })
                .await
                .unwrap()
                .into_inner();
            let mut segments = Vec::new();
            for id in &ids {
                segments.push(
                    scoring
                        .segment(pb::SegmentRequest {
                            relationship_id: id.clone(),
                            as_of,
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                );
            }
            let models = pb::models_client::ModelsClient::new(channel)
                .list_models(pb::ListModelsRequest {})
                .await
                .unwrap()
                .into_inner();
            (scores, segments, models)
        }
    };
    let first = TestServer::start_in(dir.path(), Some(demo_config()));
    first.wait_serving().await;
    let before = snapshot(&first).await;
    first.stop();

    let started = Instant::now();
    let second = TestServer::start_in(dir.path(), Some(demo_config()));
    second.wait_serving().await;
    let ready_in = started.elapsed();
    let after = snapshot(&second).await;
    assert_eq!(before.0, after.0, "scores changed across a restart");
    assert_eq!(before.1, after.1, "segments changed across a restart");
    assert_eq!(
        after.2.versions.len(),
        1,
        "restart retrained instead of reusing the stored model"
    );
    assert_eq!(before.2.active_version, after.2.active_version);
    assert!(
        ready_in < Duration::from_secs(30),
        "restart took {ready_in:?}"
    );
}

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_serve(&["--data-dir", dir.path().to_str().unwrap()]);
    let channel = connect(&url).await;
    let mut ingest =
        pb::ingest_client::IngestClient::new(common::authed(channel, common::WRITE_TOKEN));
    const IDS: i64 = 20;
    const PER_ID: i64 = 50;
    let id = |i: i64| format!("durable-{i:02}");
    for i in 0..IDS {
        ingest
            .upsert_relationship(pb::UpsertRelationshipRequest {
                relationship: Some(pb::Relationship {
                    id: id(i),
                    kind: pb::RelationshipKind::Account as i32,
                    created_at: Some(ts(today() - 400 * DAY)),
                    attributes: Default::default(),
                }),
                replace_attributes: false,
            })
            .await
            .expect("upsert acknowledged");
    }
    // Every batch gives each relationship the same number of events, so a
    // group written in part shows as relationships with different counts.
    let batch = move |n: i64| pb::RecordEventsRequest {
        events: (0..IDS * PER_ID)
            .map(|k| pb::Event {
                relationship_id: id(k % IDS),
                body: Some(pb::event::Body::Purchase(pb::Purchase {
                    at: Some(ts(today() - 300 * DAY + n * 3600 + k)),
                    amount: 1.0,
                    product_ids: vec!["p".into()],
                    quantity: 1,
                })),
            })
            .collect(),
    };
    let mut acknowledged = 0u64;
    let mut n = 0;
    while acknowledged < 5_000 {
        acknowledged += ingest
            .record_events(batch(n))
            .await
            .expect("ack")
            .into_inner()
            .accepted;
        n += 1;
    }
    // Writers keep going while we kill: the kill lands between and inside
    // groups, with the next group prepared while one is written.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut ingest = ingest.clone();
            tokio::spawn(async move {
                let mut m = 0;
                while ingest.record_events(batch(n + 1 + w + 4 * m)).await.is_ok() {
                    m += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    child.kill().expect("kill -9");
    child.wait().unwrap();
    for writer in writers {
        let _ = writer.await;
    }

    let store = open_store(dir.path());
    let counts: Vec<usize> = (0..IDS)
        .map(|i| {
            let events = store.events(&id(i), None).unwrap();
            let agg = store.aggregates(&id(i)).unwrap().expect("aggregates");
            assert_eq!(
                agg.event_count,
                events.len() as u64,
                "aggregates and events of {} disagree after the crash",
                id(i)
            );
            events.len()
        })
        .collect();
    assert!(
        counts.iter().all(|&c| c == counts[0]),
        "a group was partly written: {counts:?}"
    );
    let survived = counts.iter().sum::<usize>() as u64;
    assert!(
        survived >= acknowledged,
        "{survived} events survive, {acknowledged} were acknowledged"
    );
}

#[test]
fn a_fitted_model_round_trips_through_sled_with_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    rapport::training::bootstrap::load_demo(&store, demo_config()).unwrap();
    let trained =
        rapport::training::train_and_save(&store, &rapport::model::ModelSpec::demo()).unwrap();
    drop(store);
    let store = open_store(dir.path());
    let bytes = store
        .model_bundle(trained.version)
        .unwrap()
        .expect("stored");
    let loaded = rapport::model::ModelBundle::decode(trained.version, &bytes).unwrap();
    let width = trained.schema.width();
    assert_eq!(loaded.schema, trained.schema);
    let x = ndarray::Array2::from_shape_fn((64, width), |(i, j)| {
        ((i * 31 + j * 17) % 23) as f64 / 7.0 - 1.0
    });
    let bits = |a: ndarray::Array1<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(trained.churn.probabilities(&x)),
        bits(loaded.churn.probabilities(&x))
    );
    let (tv, lv) = (
        trained.value.as_ref().unwrap(),
        loaded.value.as_ref().unwrap(),
    );
    // Histories from none to a heavy buyer, for a value model that reads them.
    let histories: Vec<Option<rapport::model::clv::CustomerSummary>> = (0..64u32)
        .map(|i| {
            (i % 4 != 0).then(|| rapport::model::clv::CustomerSummary {
                frequency: i,
                recency: f64::from(i * 5),
                age: f64::from(i * 5 + 30),
                mean_spend: f64::from(i) * 3.5,
            })
        })
        .collect();
    assert_eq!(
        bits(tv.predictions(&x, &histories)),
        bits(lv.predictions(&x, &histories))
    );
    for row in x.rows() {
        let z = row.to_vec();
        assert_eq!(trained.churn.curve(&z), loaded.churn.curve(&z));
        let (ts_, ls) = (
            trained.segments.as_ref().unwrap(),
            loaded.segments.as_ref().unwrap(),
        );
        let seg: Vec<f64> = ts_.columns.iter().map(|c| z[*c]).collect();
        assert_eq!(ts_.nearest(&seg), ls.nearest(&seg));
    }
    assert_eq!(trained.metrics, loaded.metrics);
}

#[tokio::test]
async fn a_model_from_an_earlier_format_is_refused_with_a_reason_and_replaced_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path());
        rapport::training::bootstrap::load_demo(&store, demo_config()).unwrap();
        // What an earlier Rapport stored: a bundle without a format, no summary.
        let old = serde_json::json!({
            "version": 1, "trained_at": today(), "source": "store",
            "spec": {"name": "demo"}, "cutoff": null, "training_rows": 10,
            "metrics": [{"name": "churn.roc_auc", "value": 0.9}],
            "churn": {"horizon_days": 90}
        });
        let v = store.allocate_model_version().unwrap();
        // No summary: the registry then reads the shared fields of the bundle.
        store
            .put_model(v, b"", &serde_json::to_vec(&old).unwrap())
            .unwrap();
        store
            .set_active_model(rapport::domain::ModelSlot::Default, v)
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let server = TestServer::start_in(dir.path(), None);
    server.wait_serving().await;
    let mut models = server.models().await;
    let list = models
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.versions.len(), 2, "{list:?}");
    assert_eq!(list.active_version, 2, "a new version was trained at start");
    assert!(
        list.versions[0].churn_learner.contains("retrain"),
        "{list:?}"
    );
    let err = models
        .promote_model(pb::PromoteModelRequest {
            version: 1,
            force: false,
            reason: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("earlier Rapport") && err.message().contains("retrain"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn sigterm_during_start_up_training_stops_the_process_within_the_drain_time() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // The default demo book: loading and training it takes far longer than
    // the drain time, so the process is still training when it is told to stop.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--drain-seconds", "1", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rapport");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(term.success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("still running 15 s after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    // One second of drain, the flush, and the process's own exit.
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after SIGTERM"
    );
    let store = open_store(dir.path());
    assert!(
        store.model_versions().unwrap().is_empty(),
        "the training finished before the signal: the test shows nothing"
    );
}
