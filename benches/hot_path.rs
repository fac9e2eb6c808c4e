//! Criterion micro-benchmarks of the per-request hot path, one piece at a time,
//! so a slow RPC in `rapport bench` can be traced to the step that costs:
//! feature derivation, each model's predict, reason codes, the sled reads and
//! the protobuf encoding of a score.
//!
//! The fixture is a demo store (3,000 relationships, or
//! `RAPPORT_BENCH_RELATIONSHIPS`) trained with the same functions the server
//! uses, in a temporary directory. The learner the spec selects depends on the
//! book's size, so set 20000 to measure what `rapport serve` runs by default.
//! Run with `cargo bench --bench hot_path`; never part of `cargo test`.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

// The allocator the `rapport` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use prost::Message;
use rapport::api::{convert, pb};
use rapport::domain::{Event, ModelSlot, Relationship};
use rapport::engine::{Engine, Policy, RecommendRequest};
use rapport::features::{Aggregates, Snapshot};
use rapport::model::value::purchase_history;
use rapport::model::{ModelBundle, ModelSpec};
use rapport::store::sled::{SledOptions, SledStore};
use rapport::time::now;
use rapport::training::bootstrap::load_demo;
use rapport::training::demo::{DemoBook, DemoConfig};
use rapport::training::train_and_save;
use rapport::SharedStore;

const RELATIONSHIPS: usize = 3_000;

fn relationships() -> usize {
    std::env::var("RAPPORT_BENCH_RELATIONSHIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RELATIONSHIPS)
}

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    bundle: ModelBundle,
    ids: Vec<String>,
    /// A relationship with the median number of events, and those events.
    relationship: Relationship,
    events: Vec<Event>,
    next: AtomicUsize,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: SharedStore = std::sync::Arc::new(
            SledStore::open(dir.path(), SledOptions::default()).expect("open store"),
        );
        let config = DemoConfig {
            relationships: relationships(),
            ..DemoConfig::new(rapport::cli::today())
        };
        load_demo(&store, config.clone()).expect("load the demo book");
        let bundle = train_and_save(&store, &ModelSpec::demo()).expect("train");
        store
            .set_active_model(ModelSlot::Default, bundle.version)
            .expect("activate");
        let engine = Engine::new(store, Policy::default());
        engine.load_active().expect("load the model");
        eprintln!(
            "fixture: {} relationships, churn learner: {}",
            config.relationships,
            bundle.churn.learner_name()
        );

        let book = DemoBook::new(config);
        let mut all: Vec<(Relationship, Vec<Event>)> =
            (0..book.len()).map(|i| book.relationship(i)).collect();
        let ids = all.iter().map(|(r, _)| r.id.clone()).collect();
        all.sort_by_key(|(_, e)| e.len());
        let (relationship, events) = all.swap_remove(all.len() / 2);
        Fixture {
            _dir: dir,
            engine,
            bundle,
            ids,
            relationship,
            events,
            next: AtomicUsize::new(0),
        }
    }

    /// Ids round-robin, so reads are not all one hot key.
    fn id(&self) -> &str {
        &self.ids[self.next.fetch_add(1, Ordering::Relaxed) % self.ids.len()]
    }

    /// The model-scale row of the median relationship.
    fn scaled_row(&self) -> Vec<f64> {
        let agg = Aggregates::from_events(&self.events);
        let snapshot = Snapshot::derive(&self.relationship, &agg, now());
        let mut row = Vec::new();
        self.bundle
            .schema
            .raw_values(&self.relationship, &snapshot, &mut row);
        self.bundle.schema.to_model_scale(&mut row);
        row
    }
}

fn features(c: &mut Criterion, f: &Fixture) {
    let t = now();
    let mut g = c.benchmark_group("features");
    g.bench_function("aggregates_from_events", |b| {
        b.iter(|| Aggregates::from_events(black_box(&f.events)))
    });
    let agg = Aggregates::from_events(&f.events);
    g.bench_function("snapshot_derive", |b| {
        b.iter(|| Snapshot::derive(black_box(&f.relationship), black_box(&agg), t))
    });
    let snapshot = Snapshot::derive(&f.relationship, &agg, t);
    let mut out = Vec::new();
    g.bench_function("schema_raw_values", |b| {
        b.iter(|| {
            f.bundle
                .schema
                .raw_values(black_box(&f.relationship), black_box(&snapshot), &mut out)
        })
    });
    g.bench_function("derive_all", |b| {
        b.iter(|| {
            let agg = Aggregates::from_events(black_box(&f.events));
            let snapshot = Snapshot::derive(&f.relationship, &agg, t);
            f.bundle
                .schema
                .raw_values(&f.relationship, &snapshot, &mut out);
            out.len()
        })
    });
    g.finish();
}

fn models(c: &mut Criterion, f: &Fixture) {
    let scaled = f.scaled_row();
    let mut g = c.benchmark_group("models");
    let churn = &f.bundle.churn;
    let mut churn_z = scaled.clone();
    churn.scaler.apply(&mut churn_z);
    g.bench_function("churn_probability", |b| {
        b.iter(|| churn.probability(black_box(&churn_z)))
    });
    g.bench_function("churn_timing_curve", |b| {
        b.iter(|| churn.curve(black_box(&churn_z)))
    });
    if let Some(value) = &f.bundle.value {
        let history = purchase_history(&Aggregates::from_events(&f.events), now());
        g.bench_function("value_predict", |b| {
            b.iter(|| value.predict(black_box(&scaled), history.as_ref()))
        });
    }
    if let Some(segments) = &f.bundle.segments {
        let mut z: Vec<f64> = segments.columns.iter().map(|c| scaled[*c]).collect();
        segments.scaler.apply(&mut z);
        g.bench_function("segment_nearest_centroid", |b| {
            b.iter(|| segments.nearest(black_box(&z)))
        });
    }
    g.finish();
}

fn engine(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("engine");
    // Score includes the sled reads, derivation, every model and the reason codes.
    g.bench_function("score_with_3_reasons", |b| {
        b.iter(|| f.engine.score(f.id(), None, 3).expect("score"))
    });
    g.bench_function("score_with_20_reasons", |b| {
        b.iter(|| f.engine.score(f.id(), None, 20).expect("score"))
    });
    // ScoreBatch's work for 100 consecutive ids of the book (every kind),
    // up to the encoded reply: what one relationship costs in a batch.
    let batch: Vec<String> = f.ids.iter().take(100).cloned().collect();
    g.bench_function("score_batch_100_encoded", |b| {
        b.iter(|| {
            let scores = f.engine.score_many(&batch, None, 3).expect("score");
            pb::ScoreBatchResponse {
                scores: scores.into_iter().map(convert::score_to).collect(),
                unknown_ids: Vec::new(),
            }
            .encode_to_vec()
        })
    });
    g.bench_function("segment", |b| {
        b.iter(|| f.engine.segment(f.id(), None).expect("segment"))
    });
    g.bench_function("recommend", |b| {
        b.iter(|| {
            f.engine
                .recommend(&RecommendRequest {
                    relationship_id: f.id().to_string(),
                    as_of: None,
                    max_actions: 0,
                    exclude_products: vec![],
                    exclude_types: vec![],
                })
                .expect("recommend")
        })
    });
    g.finish();
}

fn store(c: &mut Criterion, f: &Fixture) {
    let store = f.engine.store();
    let mut g = c.benchmark_group("sled");
    g.bench_function("aggregates", |b| {
        b.iter(|| store.aggregates(f.id()).expect("read"))
    });
    g.bench_function("relationship", |b| {
        b.iter(|| store.relationship(f.id()).expect("read"))
    });
    g.finish();
}

fn proto(c: &mut Criterion, f: &Fixture) {
    let score = convert::score_to(f.engine.score(&f.ids[0], None, 3).expect("score"));
    let bytes = score.encode_to_vec();
    let mut g = c.benchmark_group("proto");
    g.bench_function("relationship_score_encode", |b| {
        b.iter(|| black_box(&score).encode_to_vec())
    });
    g.bench_function("relationship_score_decode", |b| {
        b.iter(|| pb::RelationshipScore::decode(black_box(bytes.as_slice())).expect("decode"))
    });
    let output = f.engine.score(&f.ids[0], None, 3).expect("score");
    g.bench_function("score_output_to_proto", |b| {
        b.iter(|| convert::score_to(black_box(output.clone())))
    });
    g.finish();
}

fn hot_path(c: &mut Criterion) {
    let f = Fixture::new();
    features(c, &f);
    models(c, &f);
    engine(c, &f);
    store(c, &f);
    proto(c, &f);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = hot_path
}
criterion_main!(benches);
