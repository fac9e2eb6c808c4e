//! The Redis Cluster store: the backend contract, replicas sharing one
//! cluster, and crash durability with kill -9 of a Redis primary and of a
//! Rapport process. Each test needs a cluster (see `common::redis`).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::{options_for, LocalCluster, TestCluster};
use common::{connect, demo_config, demo_ids, eventually, spawn_serve, today, ts, TestServer, DAY};
use rapport::api::client::Conn;
use rapport::api::pb;
use rapport::domain::{AttributeValue, RelationshipKind, RelationshipUpdate};
use rapport::engine::{Engine, Policy};
use rapport::features::Aggregates;
use rapport::store::contract;
use rapport::store::redis::{RedisOptions, RedisStore};

const SECOND: Duration = Duration::from_secs(1);

fn open(options: &RedisOptions) -> rapport::SharedStore {
    Arc::new(RedisStore::<Aggregates>::open(options.clone()).expect("open the redis store"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_passes_the_backend_contract() {
    let Some(cluster) = TestCluster::get("the_redis_store_passes_the_backend_contract") else {
        return;
    };
    contract::check_all(|| {
        let store: contract::Backend<Aggregates> = open(&cluster.options("contract"));
        store
    })
    .await;
    let durable = cluster.options("durability");
    contract::check_durability(|| {
        Ok(Arc::new(RedisStore::<Aggregates>::open(durable.clone())?)
            as contract::Backend<Aggregates>)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_lease_admits_one_process_at_a_time() {
    let Some(cluster) = TestCluster::get("a_training_lease_admits_one_process_at_a_time") else {
        return;
    };
    let options = cluster.options("lease");
    let (one, two) = (open(&options), open(&options));
    let held = one.training_lease().expect("a free lease is granted");
    match two.training_lease() {
        Err(rapport::error::Error::FailedPrecondition { reason }) => {
            assert!(reason.contains("training on another"), "{reason}")
        }
        Err(e) => panic!("a held lease must be FailedPrecondition, got {e}"),
        Ok(_) => panic!("two processes were granted the lease at once"),
    }
    drop(held);
    // Released by the holder's runtime, a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match two.training_lease() {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("a released lease is granted again: {e}"),
        }
    }
}

/// Two processes merging attributes into one relationship at once: every
/// attribute either sent is kept, as with one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_through_two_processes_merge() {
    let Some(cluster) = TestCluster::get("concurrent_upserts_through_two_processes_merge") else {
        return;
    };
    let options = cluster.options("merge");
    const EACH: usize = 30;
    let update = |name: String| RelationshipUpdate {
        id: "shared".into(),
        kind: Some(RelationshipKind::Account),
        created_at: Some(today() - 400 * DAY),
        attributes: [(name, Some(AttributeValue::Number(1.0)))].into(),
        replace_attributes: false,
    };
    let replicas: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|replica| {
            let engine = Engine::new(open(&options), Policy::default());
            tokio::spawn(async move {
                for i in 0..EACH {
                    engine
                        .upsert_relationship(update(format!("{replica}-{i:02}")))
                        .await
                        .expect("upsert acknowledged");
                }
            })
        })
        .collect();
    for replica in replicas {
        replica.await.unwrap();
    }
    let stored = open(&options)
        .relationship("shared")
        .unwrap()
        .expect("the relationship");
    let names: Vec<&String> = stored.attributes.keys().collect();
    assert_eq!(
        names.len(),
        2 * EACH,
        "an upsert lost another's attributes: {names:?}"
    );
}

async fn relationship_view(
    client: &mut pb::ingest_client::IngestClient<Conn>,
    id: &str,
) -> pb::GetRelationshipResponse {
    client
        .get_relationship(pb::GetRelationshipRequest {
            id: id.into(),
            as_of: None,
        })
        .await
        .expect("get relationship")
        .into_inner()
}

fn account(id: &str) -> pb::UpsertRelationshipRequest {
    pb::UpsertRelationshipRequest {
        relationship: Some(pb::Relationship {
            id: id.into(),
            kind: pb::RelationshipKind::Account as i32,
            created_at: Some(ts(today() - 400 * DAY)),
            attributes: Default::default(),
        }),
        replace_attributes: false,
    }
}

fn purchase(id: &str, at: i64) -> pb::Event {
    pb::Event {
        relationship_id: id.into(),
        body: Some(pb::event::Body::Purchase(pb::Purchase {
            at: Some(ts(at)),
            amount: 1.0,
            product_ids: vec!["p".into()],
            quantity: 1,
        })),
    }
}

async fn served_version(scoring: &mut pb::scoring_client::ScoringClient<Conn>, id: &str) -> u64 {
    scoring
        .score(pb::ScoreRequest {
            relationship_id: id.into(),
            as_of: None,
            max_reasons: 1,
        })
        .await
        .expect("score")
        .into_inner()
        .model_version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_cluster_share_writes_and_promotions() {
    let Some(cluster) = TestCluster::get("two_replicas_on_one_cluster_share_writes_and_promotions")
    else {
        return;
    };
    let options = cluster.options("replicas");
    // Both start on an empty cluster with a demo book configured: the lease
    // lets one load and train while the other waits for its model.
    let a = TestServer::start_redis(options.clone(), Some(demo_config()));
    let b = TestServer::start_redis(options.clone(), Some(demo_config()));
    a.wait_serving().await;
    b.wait_serving().await;
    let store = open(&options);
    assert_eq!(
        store.model_versions().unwrap().len(),
        1,
        "one start-up training for both replicas"
    );

    // A write through one is read through the other, whose cache held the
    // relationship before the write.
    let (mut ingest_a, mut ingest_b) = (a.ingest().await, b.ingest().await);
    ingest_a
        .upsert_relationship(account("shared-1"))
        .await
        .unwrap();
    assert_eq!(
        relationship_view(&mut ingest_b, "shared-1")
            .await
            .event_count,
        0
    );
    let events: Vec<pb::Event> = (0..5)
        .map(|i| purchase("shared-1", today() - 30 * DAY + i * 3_600))
        .collect();
    ingest_a
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("recorded through a");
    let took = eventually(SECOND, "b reads the 5 events a acknowledged", || {
        let mut ingest_b = ingest_b.clone();
        async move {
            relationship_view(&mut ingest_b, "shared-1")
                .await
                .event_count
                == 5
        }
    })
    .await;
    println!("b read a's write {took:?} after it was acknowledged");

    // A model promoted through one is served by both within a second.
    let id = demo_ids("c-", 1).remove(0);
    let (mut scoring_a, mut scoring_b) = (a.scoring().await, b.scoring().await);
    let first = served_version(&mut scoring_b, &id).await;
    let trained = a
        .models()
        .await
        .train_model(pb::TrainModelRequest {
            spec_toml: String::new(),
            activate: false,
            ..Default::default()
        })
        .await
        .expect("train through a")
        .into_inner()
        .version;
    assert_ne!(trained, first);
    assert_eq!(
        served_version(&mut scoring_b, &id).await,
        first,
        "not promoted yet"
    );
    a.models()
        .await
        .promote_model(pb::PromoteModelRequest {
            version: trained,
            // What replicas share is the pointer, not the promotion checks.
            force: true,
            reason: "replicas follow a promotion".into(),
            slot: String::new(),
        })
        .await
        .expect("promote through a");
    assert_eq!(served_version(&mut scoring_a, &id).await, trained);
    let took = eventually(SECOND, "b serves the version a promoted", || {
        let mut scoring_b = scoring_b.clone();
        let id = id.clone();
        async move { served_version(&mut scoring_b, &id).await == trained }
    })
    .await;
    println!("b served the promoted model {took:?} after the promotion");
}

const IDS: i64 = 20;
const PER_ID: i64 = 25;

fn durable_id(i: i64) -> String {
    format!("durable-{i:02}")
}

/// Batch `n` gives each relationship `PER_ID` events at times no other
/// batch uses, so a doubled event shows as a repeated time.
fn batch(n: i64) -> pb::RecordEventsRequest {
    pb::RecordEventsRequest {
        events: (0..IDS * PER_ID)
            .map(|k| purchase(&durable_id(k % IDS), today() - 300 * DAY + n * 3_600 + k))
            .collect(),
    }
}

/// Four writers sending batches until stopped.
struct Writers {
    stop: tokio::sync::watch::Sender<bool>,
    /// Batches acknowledged so far, by every writer.
    acknowledged: Arc<AtomicUsize>,
    /// The status of the latest refused batch, for a wait that times out.
    last_refusal: Arc<Mutex<String>>,
    handles: Vec<tokio::task::JoinHandle<(Vec<i64>, Vec<i64>)>>,
}

impl Writers {
    /// Creates the relationships, then starts the writers: writer `w` sends
    /// batches `w, w + 4, ...`.
    async fn start(ingest: &mut pb::ingest_client::IngestClient<Conn>) -> Writers {
        for i in 0..IDS {
            ingest
                .upsert_relationship(account(&durable_id(i)))
                .await
                .expect("upsert acknowledged");
        }
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let last_refusal = Arc::new(Mutex::new(String::from("none")));
        let handles = (0..WRITERS)
            .map(|w| {
                let mut ingest = ingest.clone();
                let stop = stopping.clone();
                let count = acknowledged.clone();
                let refusal = last_refusal.clone();
                tokio::spawn(async move {
                    let (mut acked, mut failed) = (Vec::new(), Vec::new());
                    let mut n = w;
                    while !*stop.borrow() {
                        match ingest.record_events(batch(n)).await {
                            Ok(_) => {
                                acked.push(n);
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(status) => {
                                *refusal.lock().unwrap() =
                                    format!("{:?}: {}", status.code(), status.message());
                                failed.push(n);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                        n += WRITERS;
                    }
                    (acked, failed)
                })
            })
            .collect();
        Writers {
            stop,
            acknowledged,
            last_refusal,
            handles,
        }
    }

    /// Waits until `more` batches beyond those acknowledged now are: the
    /// writes go through, however loaded the machine.
    async fn wait_acknowledged(&self, more: usize, what: &str) {
        let target = self.acknowledged.load(Ordering::SeqCst) + more;
        let start = Instant::now();
        while self.acknowledged.load(Ordering::SeqCst) < target {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{what}: not within 60 s; the latest refusal: {}",
                self.last_refusal.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the writers; the batches acknowledged and those refused, sorted.
    async fn finish(self) -> (Vec<i64>, Vec<i64>) {
        let _ = self.stop.send(true);
        let (mut acked, mut failed) = (Vec::new(), Vec::new());
        for handle in self.handles {
            let (a, f) = handle.await.unwrap();
            acked.extend(a);
            failed.extend(f);
        }
        acked.sort_unstable();
        failed.sort_unstable();
        (acked, failed)
    }
}

const WRITERS: i64 = 4;

/// Every relationship's events agree with its fold, no event is there
/// twice, and every batch in `acknowledged` is there whole. Returns the
/// events per relationship.
fn check_book(store: &rapport::SharedStore, acknowledged: &[i64]) -> Vec<usize> {
    (0..IDS)
        .map(|i| {
            let id = durable_id(i);
            let events = store.events(&id, None).unwrap();
            let fold = store.aggregates(&id).unwrap().expect("a fold");
            assert_eq!(
                fold.event_count,
                events.len() as u64,
                "the fold and the events of {id} disagree"
            );
            let mut times: Vec<i64> = events.iter().map(|e| e.at).collect();
            times.dedup();
            assert_eq!(
                times.len(),
                events.len(),
                "{id}: an event was written twice"
            );
            for n in acknowledged {
                let at = today() - 300 * DAY + n * 3_600 + i;
                assert!(
                    times.binary_search(&at).is_ok(),
                    "{id}: acknowledged batch {n} is missing"
                );
            }
            events.len()
        })
        .collect()
}

/// Sends each batch in `batches` until it is acknowledged (a retry of what
/// a crash interrupted).
async fn retry_until_acknowledged(
    ingest: &mut pb::ingest_client::IngestClient<Conn>,
    batches: &[i64],
) {
    for n in batches {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(status) = ingest.record_events(batch(*n)).await {
            assert!(
                Instant::now() < deadline,
                "batch {n} never went through: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_survives_kill_9_of_a_redis_primary() {
    let Some(cluster) =
        LocalCluster::start("an_acknowledged_event_survives_kill_9_of_a_redis_primary")
    else {
        return;
    };
    let options = options_for(&cluster.address(), "failover");
    let server = TestServer::start_redis(options.clone(), None);
    let mut ingest = server.ingest().await;
    let writers = Writers::start(&mut ingest).await;
    writers
        .wait_acknowledged(2, "batches acknowledged before the kill")
        .await;
    // The first primary holds some of the relationships being written.
    let victim = cluster.port;
    let slots = cluster.slots(victim);
    let on_victim = (0..IDS)
        .filter(|&i| cluster.serves(victim, &durable_id(i)))
        .count();
    assert!(
        on_victim > 0,
        "no relationship of the test lives on the killed primary"
    );
    cluster.kill(victim);
    let killed = Instant::now();
    let survivor = victim + 1;
    // Failed over: another node, not failing, is primary for its slots.
    cluster.wait_state(survivor, Duration::from_secs(60), |nodes| {
        nodes.lines().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            !l.contains(&format!(":{victim}@"))
                && fields
                    .get(2)
                    .is_some_and(|f| f.contains("master") && !f.contains("fail"))
                && fields.get(8..).is_some_and(|s| s == slots.as_slice())
        })
    });
    println!(
        "the cluster failed over {:?} after the kill",
        killed.elapsed()
    );
    // Writes to the failed-over shard are refused until it has a replica
    // again: the old primary comes back as one.
    cluster.restart(victim);
    cluster.wait_state(survivor, Duration::from_secs(60), |nodes| {
        nodes.lines().any(|l| {
            l.contains(&format!(":{victim}@")) && l.contains("slave") && !l.contains("fail")
        })
    });
    // Batches go through the failed-over cluster again.
    writers
        .wait_acknowledged(WRITERS as usize, "batches acknowledged after the failover")
        .await;
    let (acked, failed) = writers.finish().await;
    println!(
        "{} batches acknowledged, {} refused during the failover",
        acked.len(),
        failed.len()
    );
    assert!(!acked.is_empty(), "nothing was acknowledged");

    let store = open(&options);
    let counts = check_book(&store, &acked);
    assert!(counts.iter().sum::<usize>() as i64 >= acked.len() as i64 * IDS * PER_ID);
    // What the failover interrupted, retried, converges without doubling.
    retry_until_acknowledged(&mut ingest, &failed).await;
    let all: Vec<i64> = [acked.as_slice(), failed.as_slice()].concat();
    let counts = check_book(&store, &all);
    assert!(
        counts
            .iter()
            .all(|&c| c as i64 == all.len() as i64 * PER_ID),
        "after the retries every relationship has every batch once: {counts:?}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_rapport_replica_loses_nothing() {
    let Some(cluster) = TestCluster::get("kill_9_of_a_rapport_replica_loses_nothing") else {
        return;
    };
    let options = cluster.options("replica-crash");
    let address = format!("{}/{}", cluster.address(), options.namespace);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_serve(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--store",
        &address,
    ]);
    let mut ingest = pb::ingest_client::IngestClient::new(common::authed(
        connect(&url).await,
        common::WRITE_TOKEN,
    ));
    let writers = Writers::start(&mut ingest).await;
    writers
        .wait_acknowledged(2, "batches acknowledged before the kill")
        .await;
    child.kill().expect("kill -9");
    child.wait().unwrap();
    let (acked, failed) = writers.finish().await;
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the kill"
    );
    let store = open(&options);
    check_book(&store, &acked);

    // The client retries what the crash interrupted through another replica.
    let other = TestServer::start_redis(options.clone(), None);
    let mut ingest = other.ingest().await;
    retry_until_acknowledged(&mut ingest, &failed).await;
    let all: Vec<i64> = [acked.as_slice(), failed.as_slice()].concat();
    let counts = check_book(&store, &all);
    let by_count: BTreeMap<usize, usize> = counts.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(*c).or_default() += 1;
        m
    });
    assert_eq!(
        by_count.into_iter().collect::<Vec<_>>(),
        [(all.len() * PER_ID as usize, IDS as usize)],
        "every relationship has every batch once"
    );
}
