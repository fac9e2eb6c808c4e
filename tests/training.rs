//! The data scientist's workflow end to end: train from files with a spec,
//! honest holdout metrics and a report, versions, hot swap, batch scoring.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{demo_config, demo_ids, demo_ids_existing_at, today, ts, TestServer, DAY};
use rapport::api::pb;
use rapport::model::ModelSpec;

const MLC_CHURN: &str = "../shared/data/mlc_churn.csv";

fn run_rapport(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rapport"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rapport")
}

fn rapport(dir: &Path, args: &[&str]) -> String {
    let out = run_rapport(dir, args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "rapport {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn a_churn_table_trains_from_a_spec_alone_and_serves_by_row_id() {
    if !Path::new(MLC_CHURN).exists() {
        eprintln!("skipped: {MLC_CHURN} is absent (it ships in ../shared, not in this repo)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let out = rapport(
        dir.path(),
        &[
            "train",
            "--spec",
            "models/mlc_churn.toml",
            "--activate",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let metric = |name: &str| -> f64 {
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(name)
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("{name} not printed:\n{out}"))
    };
    let auc = metric("churn.roc_auc");
    let ece = metric("churn.ece");
    eprintln!("mlc_churn holdout: roc_auc {auc:.4}, ece {ece:.4}");
    assert!(auc >= 0.90, "ROC AUC {auc} on mlc_churn");
    assert!(ece <= 0.05, "calibration error {ece}");
    let html = std::fs::read_to_string(&report).expect("report written");
    assert!(html.matches("<svg").count() >= 4, "report lacks figures");

    let server = TestServer::start_in(dir.path(), None);
    server.wait_serving().await;
    let score = server
        .scoring()
        .await
        .score(pb::ScoreRequest {
            relationship_id: "row-0000001".into(),
            as_of: None,
            max_reasons: 3,
        })
        .await
        .expect("a table row is scored by id")
        .into_inner();
    assert!((0.0..=1.0).contains(&score.churn_probability));
    assert!(!score.reasons.is_empty());
    let models = server
        .models()
        .await
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(models.versions[0].spec, "mlc_churn");
    assert!(models.versions[0].data_fingerprint.starts_with("fnv1a64:"));
}

/// Writes the demo book's purchases as a retail-style log with its own column names.
fn write_event_log(path: &Path) {
    let book = rapport::training::demo::DemoBook::new(demo_config());
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "Invoice;Client Ref;When;Sku;Qty;Unit Price").unwrap();
    let mut invoice = 0;
    for i in 0..book.len() {
        let (rel, events) = book.relationship(i);
        for e in events {
            if let rapport::domain::EventBody::Purchase {
                amount,
                product_ids,
                quantity,
            } = e.body
            {
                invoice += 1;
                let secs = e.at.rem_euclid(86_400);
                let date = rapport::time::format_date(e.at);
                let (y, m, d) = (&date[0..4], &date[5..7], &date[8..10]);
                let sku = product_ids.first().cloned().unwrap_or_default();
                let unit = amount / f64::from(quantity);
                writeln!(
                    f,
                    "{invoice};{};{d}/{m}/{y} {}:{:02};{sku};{quantity};{unit}",
                    rel.id,
                    secs / 3600,
                    (secs % 3600) / 60
                )
                .unwrap();
            }
        }
        // A return and a malformed row: skipped and counted, not fatal.
        if i == 7 {
            writeln!(f, "x;{};01/01/2020 10:00;sku;-1;5", rel.id).unwrap();
            writeln!(f, "y;{};not a date;sku;1;5", rel.id).unwrap();
        }
    }
}

/// [`write_event_log`]'s log with commas: the csv crate reads commas and the
/// log uses semicolons, so it is converted as a user would.
fn write_comma_event_log(path: &Path) {
    write_event_log(path);
    let text = std::fs::read_to_string(path).unwrap().replace(';', ",");
    std::fs::write(path, text).unwrap();
}

/// The spec of [`write_comma_event_log`]'s log.
fn retail_spec(log: &Path) -> String {
    format!(
        r#"
name = "retail"
[data]
source = "events"
path = "{}"
id_column = "client ref"
time_column = "When"
time_format = "%d/%m/%Y %H:%M"
price_column = "Unit Price"
quantity_column = "Qty"
product_column = "Sku"
[churn]
horizon_days = 90
timing_horizons_days = [30, 90, 180]
[segments]
features = ["recency_days", "frequency_per_year", "monetary_avg", "product_breadth"]
clusters = 4
"#,
        log.display()
    )
}

/// A model trained on a purchase log scores its own customers once the log
/// is loaded the way training read it; before, `score` says how.
#[test]
fn a_purchase_log_model_scores_its_customers_after_ingest_from_its_spec() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("purchases.csv");
    write_comma_event_log(&log);
    let spec = dir.path().join("retail.toml");
    std::fs::write(&spec, retail_spec(&log)).unwrap();
    let spec = spec.to_str().unwrap();
    rapport(dir.path(), &["train", "--spec", spec, "--activate"]);
    let scores = dir.path().join("scores.csv");
    let out = scores.to_str().unwrap();
    let before = rapport(dir.path(), &["score", "--out", out]);
    assert!(
        before.contains("wrote 0 scores") && before.contains("rapport ingest --spec"),
        "{before}"
    );
    let ingested = rapport(dir.path(), &["ingest", "--spec", spec]);
    assert!(
        ingested.contains("2 skipped as training skips them"),
        "{ingested}"
    );
    let customers: BTreeSet<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1).map(str::to_string))
        .collect();
    let after = rapport(dir.path(), &["score", "--out", out]);
    assert!(
        after.contains(&format!("wrote {} scores", customers.len())),
        "{after} ({} customers in the log)",
        customers.len()
    );
    // As of the training cutoff, the labels written beside the scores are
    // the ones training measured on: the same holdout AUC.
    let bundle = {
        let store = common::open_store(dir.path());
        let version = store
            .active_model(rapport::domain::ModelSlot::Default)
            .unwrap()
            .unwrap();
        rapport::model::ModelBundle::decode(version, &store.model_bundle(version).unwrap().unwrap())
            .unwrap()
    };
    let cutoff = bundle.cutoff.expect("a log model has a cutoff").to_string();
    rapport(
        dir.path(),
        &["score", "--with-labels", "--as-of", &cutoff, "--out", out],
    );
    let rows = labelled_scores(&scores);
    let held = rows.iter().filter(|r| r["holdout"] == "true").count();
    assert!(
        held > 0 && held < rows.len(),
        "{held} of {} held out",
        rows.len()
    );
    let (auc, n) = holdout_auc(&rows);
    let reported = bundle.metric("churn.roc_auc").unwrap();
    assert!(n > 50, "{n} labelled holdout rows");
    assert!(
        (auc - reported).abs() < 1e-9,
        "recomputed {auc} on {n} rows, training measured {reported}"
    );
    assert!(
        rows.iter().all(|r| r["label_value"].parse::<f64>().is_ok()),
        "the data cover the value horizon"
    );
    // A table spec has no log to load: refused, naming the flag.
    let table = dir.path().join("table.toml");
    std::fs::write(
        &table,
        "name = \"t\"\n[data]\nsource = \"table\"\npath = \"x.csv\"\nlabel_column = \"y\"\n",
    )
    .unwrap();
    let refused = rapport_fails(dir.path(), &["ingest", "--spec", table.to_str().unwrap()]);
    assert!(refused.contains("--spec"), "{refused}");
}

#[test]
fn a_purchase_log_trains_with_a_cutoff_through_the_serving_feature_code() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("purchases.csv");
    write_comma_event_log(&log);
    // RAPPORT_KEEP_LOG=FILE keeps a copy to train on by hand (the seed runs in BENCHMARKS.md).
    if let Some(keep) = std::env::var_os("RAPPORT_KEEP_LOG") {
        std::fs::copy(&log, keep).unwrap();
    }
    let spec = retail_spec(&log);
    let spec = ModelSpec::parse("retail.toml", &spec).unwrap();
    let bundle = rapport::training::train(None, &spec, &indicatif::ProgressBar::hidden()).unwrap();
    let m = |name: &str| {
        bundle
            .metric(name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    eprintln!(
        "purchase log holdout: churn auc {:.3}, ece {:.3}, value corr {:.3}, silhouette {:.3}",
        m("churn.roc_auc"),
        m("churn.ece"),
        m("value.correlation"),
        m("segments.silhouette")
    );
    assert!(m("churn.roc_auc") > 0.75);
    assert!(m("churn.ece") < 0.1);
    assert!(m("value.correlation") > 0.3);
    assert!(m("churn.timing.90d.roc_auc") > 0.7);
    assert!(bundle.cutoff.is_some());
    assert!(
        bundle.notes.iter().any(|n| n.contains("2 skipped")),
        "{:?}",
        bundle.notes
    );
    assert!(bundle
        .baskets
        .complements
        .values()
        .flatten()
        .any(|c| c.lift > 2.0));
    // The value learners competed, and the customer-base model alone is
    // measured on the same holdout rows as the one kept.
    assert!(
        bundle
            .notes
            .iter()
            .any(|n| n.starts_with("value learners out of fold") && n.contains("bg/nbd")),
        "{:?}",
        bundle.notes
    );
    assert!(m("value.bgnbd.mae") > 0.0 && m("value.bgnbd.correlation") > 0.3);
    let kept = bundle.value.as_ref().unwrap();
    let best = kept
        .candidates
        .iter()
        .filter(|c| c.mae.is_finite())
        .min_by(|a, b| a.mae.total_cmp(&b.mae))
        .unwrap();
    assert_eq!(kept.learner, best.learner, "{:?}", kept.candidates);
}

/// A table of `n` rows whose churn follows its columns, with a `fold` column
/// marking every fourth row "test".
fn write_split_table(path: &Path, n: usize) {
    let mut t = String::from("id,calls,plan,fold,churned\n");
    for i in 0..n {
        let calls = (i * 7) % 9;
        let plan = ["basic", "pro"][i % 2];
        let churned = if (i * 13) % 10 < calls + usize::from(plan == "basic") {
            "yes"
        } else {
            "no"
        };
        let fold = if i % 4 == 0 { "test" } else { "train" };
        t.push_str(&format!("t-{i},{calls},{plan},{fold},{churned}\n"));
    }
    std::fs::write(path, t).unwrap();
}

#[test]
fn a_split_column_decides_the_holdout_and_a_zero_fraction_trains_on_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("split.csv");
    write_split_table(&table, 800);
    let spec = |data: &str| {
        ModelSpec::parse(
            "split.toml",
            &format!(
                "name = \"split\"\n[data]\nsource = \"table\"\npath = {:?}\nid_column = \"id\"\nlabel_column = \"churned\"\n{data}\n",
                table.to_str().unwrap()
            ),
        )
        .unwrap()
    };
    let hidden = indicatif::ProgressBar::hidden();
    let split = rapport::training::train(None, &spec("split_column = \"fold\""), &hidden).unwrap();
    assert_eq!(split.training_rows, 600);
    assert_eq!(split.report.as_ref().unwrap().holdout_rows, 200);
    assert!(split.metric("churn.roc_auc").is_some());
    assert!(
        !split.schema.names().iter().any(|n| n.starts_with("fold")),
        "the split column is never a feature: {:?}",
        split.schema.names()
    );
    // Named values, case-insensitive: "TRAIN" holds out the other 600.
    let other = rapport::training::train(
        None,
        &spec("split_column = \"fold\"\nholdout_values = [\"TRAIN\"]"),
        &hidden,
    )
    .unwrap();
    assert_eq!(other.training_rows, 200);
    let all = rapport::training::train(
        None,
        &spec("holdout_fraction = 0\ndrop = [\"fold\"]"),
        &hidden,
    )
    .unwrap();
    assert_eq!(all.training_rows, 800);
    assert_eq!(all.report.as_ref().unwrap().holdout_rows, 0);
    assert!(
        all.metric("churn.roc_auc").is_none(),
        "no holdout, no holdout metric"
    );
    // A store or a log is split by the id's hash only; a bad fraction names its key.
    let refused = |text: &str| ModelSpec::parse("bad.toml", text).unwrap_err().to_string();
    assert!(
        refused("name = \"x\"\n[data]\nsplit_column = \"fold\"\n").contains("data.split_column")
    );
    assert!(refused("name = \"x\"\n[data]\nholdout_fraction = 0.01\n")
        .contains("data.holdout_fraction"));
}

/// `score --with-labels` rows, each column by name.
fn labelled_scores(path: &Path) -> Vec<BTreeMap<String, String>> {
    let rows = common::csv_rows(path);
    for column in ["holdout", "label_churned", "label_value"] {
        assert!(
            rows.first().is_some_and(|r| r.contains_key(column)),
            "{column} in {}",
            path.display()
        );
    }
    rows
}

/// The ROC AUC of `churn_probability` against `label_churned` over the rows
/// held out and labelled.
fn holdout_auc(rows: &[BTreeMap<String, String>]) -> (f64, usize) {
    let (scores, labels): (Vec<f64>, Vec<bool>) = rows
        .iter()
        .filter(|r| r["holdout"] == "true" && !r["label_churned"].is_empty())
        .map(|r| {
            (
                r["churn_probability"].parse::<f64>().unwrap(),
                r["label_churned"] == "true",
            )
        })
        .unzip();
    (
        rapport::model::metrics::roc_auc(&scores, &labels),
        scores.len(),
    )
}

/// The split and the labels a table trained on come back beside its scores,
/// and the holdout AUC recomputed from them is the one training reported.
#[test]
fn score_with_labels_gives_a_tables_split_and_labels_and_its_holdout_auc() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("split.csv");
    write_split_table(&table, 800);
    let spec = dir.path().join("split.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"split\"\n[data]\nsource = \"table\"\npath = {:?}\nid_column = \"id\"\nlabel_column = \"churned\"\nsplit_column = \"fold\"\n",
            table.to_str().unwrap()
        ),
    )
    .unwrap();
    let trained = rapport(
        dir.path(),
        &["train", "--spec", spec.to_str().unwrap(), "--activate"],
    );
    let scores = dir.path().join("scores.csv");
    rapport(
        dir.path(),
        &["score", "--with-labels", "--out", scores.to_str().unwrap()],
    );
    let rows = labelled_scores(&scores);
    assert_eq!(rows.len(), 800);
    let truth: BTreeMap<String, (String, String)> = std::fs::read_to_string(&table)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].to_string(), (c[3].to_string(), c[4].to_string()))
        })
        .collect();
    for r in &rows {
        let (fold, churned) = &truth[&r["relationship_id"]];
        assert_eq!(r["holdout"] == "true", fold == "test", "{r:?}");
        assert_eq!(r["label_churned"] == "true", churned == "yes", "{r:?}");
    }
    let (auc, n) = holdout_auc(&rows);
    assert_eq!(n, 200);
    let reported: f64 = trained
        .lines()
        .find_map(|l| l.trim().strip_prefix("churn.roc_auc"))
        .unwrap_or_else(|| panic!("no churn.roc_auc in\n{trained}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        (auc - reported).abs() < 1e-3,
        "recomputed {auc}, reported {reported}"
    );
    // The labels come from --data-dir: refused through a server, by name.
    let refused = rapport_fails(
        dir.path(),
        &[
            "score",
            "--with-labels",
            "--server",
            "http://127.0.0.1:1",
            "--out",
            scores.to_str().unwrap(),
        ],
    );
    assert!(refused.contains("--with-labels"), "{refused}");
}

#[tokio::test]
async fn train_promote_and_rollback_swap_models_under_load_without_a_failed_request() {
    let server = TestServer::start(Some(demo_config()));
    server.wait_serving().await;
    let mut models = server.models().await;
    let trained = models
        .train_model(pb::TrainModelRequest {
            spec_toml: String::new(),
            activate: false,
            ..Default::default()
        })
        .await
        .expect("server-side training")
        .into_inner();
    assert_eq!(trained.version, 2);
    assert!(!trained.active);

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let ids = demo_ids("", 50);
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, calls, ids) = (stop.clone(), calls.clone(), ids.clone());
        let mut client = server.scoring().await;
        load.push(tokio::spawn(async move {
            let mut versions = std::collections::BTreeSet::new();
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let s = client
                    .score(pb::ScoreRequest {
                        relationship_id: ids[i % ids.len()].clone(),
                        as_of: None,
                        max_reasons: 1,
                    })
                    .await
                    .expect("no request fails during a swap")
                    .into_inner();
                versions.insert(s.model_version);
                calls.fetch_add(1, Ordering::Relaxed);
                i += 4;
            }
            versions
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let promoted = models
        .promote_model(pb::PromoteModelRequest {
            version: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(promoted.active && promoted.version == 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let back = models
        .rollback_model(pb::RollbackModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.version, 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for l in load {
        seen.extend(l.await.unwrap());
    }
    assert!(calls.load(Ordering::Relaxed) > 20);
    assert_eq!(
        seen,
        [1, 2].into_iter().collect(),
        "responses must name the version that produced them"
    );
    let list = models
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.active_version, 1);
    assert_eq!(list.versions.len(), 2);

    let err = models
        .promote_model(pb::PromoteModelRequest {
            version: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = models
        .train_model(pb::TrainModelRequest {
            spec_toml: "name = \"x\"\n[churn]\nhorizon_days = 0\n".into(),
            activate: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("churn.horizon_days"),
        "{}",
        err.message()
    );

    let drift = models
        .get_drift(pb::GetDriftRequest {
            version: 0,
            sample: 500,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(drift.version, 1);
    assert!(drift.sampled >= 400);
    assert!(drift
        .features
        .iter()
        .all(|f| f.psi.is_finite() && f.psi >= 0.0 && !f.status.is_empty()));
    assert!(drift.features.windows(2).all(|w| w[0].psi >= w[1].psi));
}

#[tokio::test]
async fn batch_scoring_to_csv_matches_the_rpc_for_the_same_ids_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let as_of = today() - 30 * DAY;
    let ids: Vec<String> = demo_ids_existing_at(as_of).into_iter().take(30).collect();
    let server = TestServer::start_in(dir.path(), Some(demo_config()));
    server.wait_serving().await;
    let rpc = server
        .scoring()
        .await
        .score_batch(pb::ScoreBatchRequest {
            relationship_ids: ids.clone(),
            as_of: Some(ts(as_of)),
            max_reasons: 1,
            skip_unknown: false,
        })
        .await
        .unwrap()
        .into_inner()
        .scores;
    server.stop();

    let id_file = dir.path().join("ids.txt");
    std::fs::write(&id_file, ids.join("\n")).unwrap();
    let out = dir.path().join("scores.csv");
    rapport(
        dir.path().join("").as_path(),
        &[
            "score",
            "--out",
            out.to_str().unwrap(),
            "--ids",
            id_file.to_str().unwrap(),
            "--as-of",
            &as_of.to_string(),
        ],
    );
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), ids.len());
    for (row, s) in rows.iter().zip(&rpc) {
        assert_eq!(&row[col("relationship_id")], s.relationship_id);
        assert_eq!(
            row[col("churn_probability")].parse::<f64>().unwrap(),
            s.churn_probability
        );
        assert_eq!(
            row[col("expected_value")].parse::<f64>().ok(),
            s.expected_value
        );
        assert_eq!(
            row[col("value_at_risk")].parse::<f64>().ok(),
            s.value_at_risk
        );
        assert_eq!(
            row[col("churn_by_90d")].parse::<f64>().unwrap(),
            s.churn_by_horizon[1].probability
        );
        assert_eq!(&row[col("top_reason")], s.reasons[0].explanation);
        assert_eq!(
            rapport::time::parse_date("as_of", &row[col("as_of")]).unwrap(),
            as_of,
            "as_of is ISO 8601"
        );
        assert!(!row[col("rfm_segment")].is_empty() && !row[col("lifecycle_stage")].is_empty());
    }
}

/// Runs `rapport` expecting it to fail; returns its stderr.
fn rapport_fails(dir: &Path, args: &[&str]) -> String {
    let out = run_rapport(dir, args);
    assert!(!out.status.success(), "rapport {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test]
async fn two_concurrent_trainings_get_distinct_versions() {
    let server = TestServer::start(Some(demo_config()));
    server.wait_serving().await;
    let (mut a, mut b) = (server.models().await, server.models().await);
    let request = || pb::TrainModelRequest {
        spec_toml: String::new(),
        activate: false,
        ..Default::default()
    };
    let (first, second) = tokio::join!(a.train_model(request()), b.train_model(request()));
    let (first, second) = (first.unwrap().into_inner(), second.unwrap().into_inner());
    assert_ne!(first.version, second.version);
    let versions: Vec<u64> = a
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .versions
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions.len(), 3, "both trainings are stored: {versions:?}");
    assert!(versions.contains(&first.version) && versions.contains(&second.version));
}

#[tokio::test]
async fn the_command_line_reports_the_servers_own_status() {
    let server = TestServer::start(Some(demo_config()));
    server.wait_serving().await;
    let addr = server.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let err = rapport_fails(
        dir.path(),
        &[
            "models",
            "promote",
            "99",
            "--server",
            &addr,
            "--token",
            common::ADMIN_TOKEN,
        ],
    );
    assert!(
        err.contains("NotFound") && err.contains("model version \"99\" not found"),
        "{err}"
    );
    let err = rapport_fails(
        dir.path(),
        &[
            "models",
            "rollback",
            "--server",
            &addr,
            "--token",
            common::ADMIN_TOKEN,
        ],
    );
    assert!(
        err.contains("FailedPrecondition") && err.contains("no earlier active version"),
        "{err}"
    );
}

#[test]
fn impossible_dates_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = rapport_fails(
        dir.path(),
        &["score", "--out", "/dev/null", "--as-of", "2025-02-31"],
    );
    assert!(
        err.contains("--as-of") && err.contains("2025-02-31"),
        "{err}"
    );
    let csv = dir.path().join("relationships.csv");
    std::fs::write(&csv, "id,created_at\nc1,2024-01-01\nc2,2025-02-31\n").unwrap();
    let err = rapport_fails(
        dir.path(),
        &["ingest", "--relationships", csv.to_str().unwrap()],
    );
    assert!(
        err.contains("line 3") && err.contains("created_at") && err.contains("2025-02-31"),
        "{err}"
    );
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "name = \"x\"\n[data]\ncutoff = \"2025-02-31\"\n").unwrap();
    let err = rapport_fails(dir.path(), &["train", "--spec", spec.to_str().unwrap()]);
    assert!(
        err.contains("data.cutoff") && err.contains("2025-02-31"),
        "{err}"
    );
}

/// One typing of every column: a table whose yes/no and numeric cells are
/// typed at training scores the same whether a row is served from the
/// training table or was ingested from a relationships CSV (where the same
/// cells arrive as text and numbers).
#[test]
fn a_table_row_scores_the_same_after_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table.csv");
    let relationships = dir.path().join("relationships.csv");
    let (mut t, mut r) = (String::new(), String::new());
    t.push_str("plan,international,calls,minutes,churned\n");
    r.push_str("id,plan,international,calls,minutes\n");
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as f64 / f64::from(1u32 << 31)
    };
    for i in 1..=600 {
        let plan = ["basic", "pro", "team"][(next() * 3.0) as usize % 3];
        let international = if next() < 0.3 { "yes" } else { "no" };
        let calls = (next() * 8.0).floor();
        let minutes = format!("{:.1}", 50.0 + next() * 250.0);
        let risk = 0.1
            + if international == "yes" { 0.3 } else { 0.0 }
            + 0.05 * calls
            + if plan == "basic" { 0.1 } else { 0.0 };
        let churned = if next() < risk { "yes" } else { "no" };
        t.push_str(&format!(
            "{plan},{international},{calls},{minutes},{churned}\n"
        ));
        r.push_str(&format!(
            "ing-{i},{plan},{international},{calls},{minutes}\n"
        ));
    }
    std::fs::write(&table, t).unwrap();
    std::fs::write(&relationships, r).unwrap();
    let spec = dir.path().join("parity.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"parity\"\n[data]\nsource = \"table\"\npath = {:?}\nlabel_column = \"churned\"\npositive = [\"yes\"]\nholdout_fraction = 0.3\nseed = 3\n",
            table.to_str().unwrap()
        ),
    )
    .unwrap();
    rapport(
        dir.path(),
        &["train", "--spec", spec.to_str().unwrap(), "--activate"],
    );
    rapport(
        dir.path(),
        &["ingest", "--relationships", relationships.to_str().unwrap()],
    );
    let ids = dir.path().join("ids.txt");
    let wanted: Vec<String> = (1..=600)
        .flat_map(|i| [format!("row-{i:07}"), format!("ing-{i}")])
        .collect();
    std::fs::write(&ids, wanted.join("\n")).unwrap();
    let scores = dir.path().join("scores.csv");
    rapport(
        dir.path(),
        &[
            "score",
            "--ids",
            ids.to_str().unwrap(),
            "--out",
            scores.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&scores).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (id, churn) = (column("relationship_id"), column("churn_probability"));
    let by_id: BTreeMap<String, f64> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[id].to_string(), cells[churn].parse().unwrap())
        })
        .collect();
    assert_eq!(by_id.len(), 1_200, "every row scored both ways");
    let distinct: BTreeSet<String> = by_id.values().map(|p| format!("{p:.6}")).collect();
    assert!(
        distinct.len() > 20,
        "the model tells rows apart: {distinct:?}"
    );
    for i in 1..=600 {
        let (served, ingested) = (by_id[&format!("row-{i:07}")], by_id[&format!("ing-{i}")]);
        assert_eq!(
            served, ingested,
            "row {i}: {served} from the table, {ingested} after ingest"
        );
    }
}
