//! Smoke test of `rapport bench`: about one second per target against a real
//! test server, asserting every target answers and nothing fails. The real
//! measurements live in BENCHMARKS.md; this only keeps the load generator working.

mod common;

use std::time::Duration;

use rapport::tools::bench::{run, BenchOptions, Rpc, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_drives_every_target_without_errors() {
    let server = common::TestServer::start(Some(common::demo_config()));
    server.wait_serving().await;
    let mut options = BenchOptions::new(Target::Address {
        addr: server.addr.to_string(),
        ids_from: common::demo_config(),
    });
    // Score needs read, RecordEvents write.
    options.client.token = Some(common::WRITE_TOKEN.to_string());
    options.concurrency = 8;
    options.channels = 2;
    options.duration = Duration::from_millis(800);
    options.warmup = Duration::ZERO;
    options.repetitions = 1;
    options.batch_size = 100;
    options.ingest_batch = 100;
    options.rpcs = vec![
        Rpc::Score,
        Rpc::Segment,
        Rpc::Recommend,
        Rpc::ScoreBatch,
        Rpc::ScoreStream,
        Rpc::RecordEvents,
    ];
    let report = run(&options).await.expect("bench runs");

    assert_eq!(report.targets.len(), 7, "echo and six targets");
    assert_eq!(report.runs.len(), 7);
    for t in &report.targets {
        assert!(t.requests > 0, "{}: no requests", t.rpc);
        assert_eq!(t.errors, 0, "{}: errors in {:?}", t.rpc, report.runs);
        assert!(t.p50_us > 0.0 && t.p50_us <= t.p99_us, "{}: {t:?}", t.rpc);
        assert!(t.ratio_to_echo > 0.0, "{}: {t:?}", t.rpc);
    }
    let echo = report.target(Rpc::Echo).expect("echo runs");
    assert!((echo.ratio_to_echo - 1.0).abs() < 1e-9);
    let batch = report.target(Rpc::ScoreBatch).expect("score-batch runs");
    assert_eq!(batch.item_unit, Some("relationships"));
    assert!(batch.items_per_s >= 100.0 * batch.requests_per_s * 0.99);
    let ingest = report
        .target(Rpc::RecordEvents)
        .expect("record-events runs");
    assert!(ingest.items_per_s > 0.0);
    assert!(!report.budgets.is_empty());
    assert!(rapport::tools::bench::render(&report).contains("score-stream"));
}
