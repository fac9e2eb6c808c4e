//! The behaviour every store backend must show, as a suite a backend runs
//! against itself (`sled`'s unit tests do; so does any new backend's).
//!
//! Each check takes a fresh, empty store and panics at the first broken
//! rule, naming it. [`check_durability`] also reopens the store where it
//! lives, to show that what a backend acknowledged or flushed is there after
//! a restart.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use crate::domain::{
    Event, EventBody, EventFold, IncomingEvent, InteractionKind, ModelSlot, Product, Relationship,
    RelationshipKind,
};
use crate::error::{Error, Result};
use crate::store::{DemoState, Store};
use crate::time::Timestamp;

/// A store as the suite holds it.
pub type Backend<A> = Arc<dyn Store<A>>;

/// Runs every check, each on a store `fresh` opens empty.
///
/// # Panics
/// At the first rule the backend breaks.
pub async fn check_all<A>(fresh: impl Fn() -> Backend<A>)
where
    A: EventFold + PartialEq + Debug,
{
    check_relationships(fresh()).await;
    check_events_and_folds(fresh()).await;
    check_unknown_ids_write_nothing(fresh()).await;
    check_bulk_loads(fresh()).await;
    check_history_chunks(fresh()).await;
    check_products(fresh()).await;
    check_model_registry(fresh());
    check_concurrent_versions_are_distinct(fresh());
    check_demo_state_and_clearing(fresh()).await;
    check_scans_in_pages(fresh()).await;
    check_index_entries(fresh()).await;
    check_deletion(fresh()).await;
    check_model_artifacts_and_deletion(fresh());
    check_backup_round_trip(fresh(), fresh()).await;
    check_probe_writes(fresh());
}

/// Artifacts belong to their version and go with it.
pub fn check_model_artifacts_and_deletion<A: EventFold>(store: Backend<A>) {
    let v1 = store.allocate_model_version().unwrap();
    let v2 = store.allocate_model_version().unwrap();
    assert!(matches!(
        store.put_model_artifact(v1, "rows", b"x"),
        Err(Error::NotFound { .. })
    ));
    store.put_model(v1, b"s1", b"b1").unwrap();
    store.put_model(v2, b"s2", b"b2").unwrap();
    store.put_model_artifact(v1, "rows", b"first").unwrap();
    store.put_model_artifact(v1, "rows", b"replaced").unwrap();
    store.put_model_artifact(v1, "extra", b"e").unwrap();
    store.put_model_artifact(v2, "rows", b"other").unwrap();
    assert_eq!(
        store.model_artifacts(v1).unwrap(),
        vec![
            ("extra".to_string(), b"e".to_vec()),
            ("rows".to_string(), b"replaced".to_vec())
        ]
    );
    assert!(store.delete_model(v1).unwrap());
    assert!(!store.delete_model(v1).unwrap());
    assert_eq!(store.model_versions().unwrap(), [v2]);
    assert_eq!(store.model_bundle(v1).unwrap(), None);
    assert_eq!(store.model_summary(v1).unwrap(), None);
    assert!(store.model_artifacts(v1).unwrap().is_empty());
    assert_eq!(store.model_artifacts(v2).unwrap().len(), 1);
    // A deleted version's number is never handed out again.
    assert!(store.allocate_model_version().unwrap() > v2);
}

/// A probe write succeeds on a healthy store.
pub fn check_probe_writes<A: EventFold>(store: Backend<A>) {
    store
        .probe_writes()
        .expect("a probe write on a healthy store");
}

/// A backup of one store restores into another with the same content.
pub async fn check_backup_round_trip<A>(source: Backend<A>, target: Backend<A>)
where
    A: EventFold + PartialEq + Debug,
{
    source
        .upsert_relationship(&relationship("b-1", 10))
        .unwrap();
    source
        .upsert_relationship(&relationship("b-2", 10))
        .unwrap();
    source
        .record_events(vec![
            to("b-1", purchase(100, 5.0, "p")),
            to("b-1", visit(50)),
        ])
        .await
        .unwrap();
    source
        .put_products(&[Product {
            id: "p".into(),
            name: "P".into(),
            category: "c".into(),
            price: 5.0,
        }])
        .unwrap();
    let v = source.allocate_model_version().unwrap();
    source.put_model(v, b"s", b"b").unwrap();
    source.put_model_artifact(v, "rows", b"r").unwrap();
    source.set_active_model(ModelSlot::Default, v).unwrap();
    source.flush().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let summary = crate::store::backup::write(source.as_ref(), &backup).unwrap();
    assert_eq!((summary.relationships, summary.events), (2, 2));
    crate::store::backup::restore(&backup, target.as_ref()).unwrap();
    assert_eq!(target.relationship_count().unwrap(), 2);
    assert_eq!(
        target.events("b-1", None).unwrap(),
        source.events("b-1", None).unwrap()
    );
    // A restore folds the events again in time order; the source folded
    // them as they arrived (a purchase, then an older visit). A fold promises
    // equal totals, not equal detail, whatever the order: the restored value
    // is the one a time-ordered fold gives.
    let refolded = source
        .events("b-1", None)
        .unwrap()
        .iter()
        .fold(A::default(), |mut a, e| {
            a.apply(e);
            a
        });
    assert_eq!(target.aggregates("b-1").unwrap(), Some(refolded));
    assert_eq!(target.products().unwrap(), source.products().unwrap());
    assert_eq!(
        target.model_bundle(v).unwrap(),
        source.model_bundle(v).unwrap()
    );
    assert_eq!(
        target.model_artifacts(v).unwrap(),
        source.model_artifacts(v).unwrap()
    );
    assert_eq!(target.active_model(ModelSlot::Default).unwrap(), Some(v));
    assert!(target.allocate_model_version().unwrap() > v);
    assert!(matches!(
        crate::store::backup::restore(&backup, target.as_ref()),
        Err(Error::FailedPrecondition { .. })
    ));
}

fn relationship(id: &str, created_at: Timestamp) -> Relationship {
    Relationship {
        id: id.to_string(),
        kind: RelationshipKind::Customer,
        created_at,
        attributes: BTreeMap::new(),
    }
}

fn purchase(at: Timestamp, amount: f64, product: &str) -> Event {
    Event {
        at,
        body: EventBody::Purchase {
            amount,
            product_ids: vec![product.to_string()],
            quantity: 1,
        },
    }
}

fn visit(at: Timestamp) -> Event {
    Event {
        at,
        body: EventBody::Interaction {
            kind: InteractionKind::Visit,
            survey_score: None,
        },
    }
}

fn to(id: &str, event: Event) -> IncomingEvent {
    IncomingEvent {
        relationship_id: id.to_string(),
        event,
    }
}

fn fold<A: EventFold>(events: &[Event]) -> A {
    let mut a = A::default();
    for e in events {
        a.apply(e);
    }
    a
}

/// Relationships: upsert says whether the id was new, reads return what was
/// written, and listing is in id order.
pub async fn check_relationships<A: EventFold>(store: Backend<A>) {
    assert!(
        !store.has_relationships().unwrap(),
        "a fresh store is empty"
    );
    assert!(
        store.upsert_relationship(&relationship("b", 10)).unwrap(),
        "a new id is created"
    );
    assert!(store.upsert_relationship(&relationship("a", 20)).unwrap());
    let mut changed = relationship("b", 30);
    changed.kind = RelationshipKind::Supplier;
    assert!(
        !store.upsert_relationship(&changed).unwrap(),
        "a known id is replaced, not created"
    );
    assert_eq!(store.relationship("b").unwrap(), Some(changed));
    assert_eq!(store.relationship("nobody").unwrap(), None);
    assert_eq!(store.relationship_count().unwrap(), 2);
    assert!(store.has_relationships().unwrap());
    let ids: Vec<String> = store.relationships().map(|r| r.unwrap().id).collect();
    assert_eq!(ids, ["a", "b"], "relationships come in id order");
    store.flush().await.unwrap();
}

/// Events come back in time order per relationship, `until` cuts them, the
/// fold equals a fold of the stored events, and a read after an acknowledged
/// write sees it.
pub async fn check_events_and_folds<A>(store: Backend<A>)
where
    A: EventFold + PartialEq + Debug,
{
    for id in ["a", "ab"] {
        store.upsert_relationship(&relationship(id, 0)).unwrap();
    }
    // "ab" shares a prefix with "a": its events must never come back as a's.
    let before = store.decoded("a").unwrap().expect("a exists");
    assert_eq!(
        before.aggregates,
        A::default(),
        "no events, the default fold"
    );
    let batch = vec![
        to("a", purchase(300, 30.0, "p1")),
        to("ab", purchase(100, 5.0, "p2")),
        to("a", visit(100)),
        to("a", purchase(200, 20.0, "p2")),
    ];
    assert_eq!(store.record_events(batch).await.unwrap(), 4);
    let events = store.events("a", None).unwrap();
    let times: Vec<Timestamp> = events.iter().map(|e| e.at).collect();
    assert_eq!(
        times,
        [100, 200, 300],
        "one relationship's events, in time order"
    );
    assert_eq!(
        store.events("a", Some(200)).unwrap().len(),
        2,
        "until is inclusive"
    );
    assert_eq!(store.events("ab", None).unwrap().len(), 1);
    // The fold takes events in the order they were written.
    let written = [
        purchase(300, 30.0, "p1"),
        visit(100),
        purchase(200, 20.0, "p2"),
    ];
    assert_eq!(store.aggregates("a").unwrap(), Some(fold::<A>(&written)));
    let after = store.decoded("a").unwrap().expect("a exists");
    assert_eq!(
        after.aggregates,
        fold::<A>(&written),
        "reads see acknowledged writes"
    );
    assert_eq!(store.latest_event().unwrap(), Some(300));
    assert_eq!(store.event_count().unwrap(), 4);
    // A later batch folds on top of the earlier one.
    store
        .record_events(vec![to("a", visit(400))])
        .await
        .unwrap();
    let written = [written.as_slice(), &[visit(400)]].concat();
    assert_eq!(
        store.decoded("a").unwrap().unwrap().aggregates,
        fold::<A>(&written)
    );
    assert_eq!(store.latest_event().unwrap(), Some(400));
}

/// A batch naming an unknown relationship is `NotFound` and writes nothing.
pub async fn check_unknown_ids_write_nothing<A: EventFold>(store: Backend<A>) {
    store.upsert_relationship(&relationship("a", 0)).unwrap();
    let batch = vec![to("a", visit(10)), to("ghost", visit(20))];
    match store.record_events(batch).await {
        Err(Error::NotFound { id, .. }) => assert_eq!(id, "ghost"),
        other => panic!("an unknown id must be NotFound, got {other:?}"),
    }
    assert!(
        store.events("a", None).unwrap().is_empty(),
        "nothing of the batch is written"
    );
    assert_eq!(store.aggregates("a").unwrap().map(|_| ()), None);
    assert_eq!(store.latest_event().unwrap(), None);
}

/// Bulk loads write relationships, events and folds together.
pub async fn check_bulk_loads<A>(store: Backend<A>)
where
    A: EventFold + PartialEq + Debug,
{
    let events = vec![purchase(10, 1.0, "p"), visit(20)];
    store
        .load_histories(&[
            (relationship("x", 0), events.clone()),
            (relationship("y", 5), vec![]),
        ])
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.relationship_count().unwrap(), 2);
    assert_eq!(store.events("x", None).unwrap(), events);
    assert_eq!(store.aggregates("x").unwrap(), Some(fold::<A>(&events)));
    assert_eq!(store.latest_event().unwrap(), Some(20));
    // A second load folds onto what is stored.
    store
        .load_histories(&[(relationship("x", 0), vec![visit(30)])])
        .unwrap();
    let all = store.events("x", None).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        store.decoded("x").unwrap().unwrap().aggregates,
        fold::<A>(&all)
    );
}

/// Chunks hand out every relationship once, in id order, with its own events.
pub async fn check_history_chunks<A: EventFold>(store: Backend<A>) {
    assert!(store
        .history_chunks(3)
        .next_chunk()
        .unwrap()
        .is_none_or(|(_, c)| c.is_empty()));
    let ids: Vec<String> = (0..10).map(|i| format!("r{i:02}")).collect();
    let items: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                relationship(id, 0),
                (0..i as i64).map(|t| visit(t * 10)).collect(),
            )
        })
        .collect();
    store.load_histories(&items).unwrap();
    let chunks = store.history_chunks(3);
    let mut seen = Vec::new();
    let mut last_number = None;
    while let Some((number, histories)) = chunks.next_chunk().unwrap() {
        assert!(last_number.is_none_or(|n| number > n), "chunk numbers rise");
        last_number = Some(number);
        for (r, events) in histories {
            assert_eq!(
                events,
                store.events(&r.id, None).unwrap(),
                "{}: its own events",
                r.id
            );
            seen.push(r.id);
        }
    }
    assert_eq!(seen, ids, "every relationship once, in id order");
}

/// Products round-trip.
pub async fn check_products<A: EventFold>(store: Backend<A>) {
    let products = vec![
        Product {
            id: "a".into(),
            name: "A".into(),
            category: "c".into(),
            price: 1.5,
        },
        Product {
            id: "b".into(),
            name: "B".into(),
            category: "c".into(),
            price: 3.0,
        },
    ];
    store.put_products(&products).unwrap();
    assert_eq!(store.products().unwrap(), products);
}

/// Versions are allocated once each, artifacts round-trip, and each slot
/// keeps its own active and previous version.
pub fn check_model_registry<A: EventFold>(store: Backend<A>) {
    assert_eq!(store.model_versions().unwrap(), Vec::<u64>::new());
    let v1 = store.allocate_model_version().unwrap();
    let v2 = store.allocate_model_version().unwrap();
    assert!(v2 > v1, "versions only grow");
    store.put_model(v1, b"s1", b"b1").unwrap();
    store.put_model(v2, b"s2", b"b2").unwrap();
    assert_eq!(store.model_versions().unwrap(), [v1, v2]);
    assert_eq!(store.model_bundle(v1).unwrap().as_deref(), Some(&b"b1"[..]));
    assert_eq!(
        store.model_summary(v2).unwrap().as_deref(),
        Some(&b"s2"[..])
    );
    assert_eq!(store.model_bundle(v2 + 100).unwrap(), None);
    let v3 = store.allocate_model_version().unwrap();
    store.put_model(v3, b"", b"b3").unwrap();
    assert_eq!(
        store.model_summary(v3).unwrap(),
        None,
        "an empty summary stores none"
    );
    let supplier = ModelSlot::Kind(RelationshipKind::Supplier);
    assert!(matches!(
        store.set_active_model(ModelSlot::Default, v2 + 100),
        Err(Error::NotFound { .. })
    ));
    store.set_active_model(ModelSlot::Default, v1).unwrap();
    store.set_active_model(ModelSlot::Default, v2).unwrap();
    store.set_active_model(supplier, v1).unwrap();
    assert_eq!(store.active_model(ModelSlot::Default).unwrap(), Some(v2));
    assert_eq!(
        store.previous_active_model(ModelSlot::Default).unwrap(),
        Some(v1)
    );
    assert_eq!(store.active_model(supplier).unwrap(), Some(v1));
    assert_eq!(store.previous_active_model(supplier).unwrap(), None);
    assert_eq!(
        store
            .active_model(ModelSlot::Kind(RelationshipKind::Partner))
            .unwrap(),
        None
    );
    // Activating the active version again keeps the previous one.
    store.set_active_model(ModelSlot::Default, v2).unwrap();
    assert_eq!(
        store.previous_active_model(ModelSlot::Default).unwrap(),
        Some(v1)
    );
    // A version allocated after a put is still new.
    assert!(store.allocate_model_version().unwrap() > v3);
}

/// Concurrent allocations never hand out the same version.
pub fn check_concurrent_versions_are_distinct<A: EventFold>(store: Backend<A>) {
    let mut versions: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = &store;
                scope.spawn(move || {
                    (0..25)
                        .map(|_| store.allocate_model_version().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let n = versions.len();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), n, "every allocation got its own version");
}

/// The demo marker round-trips; clearing the book keeps the models.
pub async fn check_demo_state_and_clearing<A: EventFold>(store: Backend<A>) {
    assert_eq!(store.demo_state().unwrap(), DemoState::Absent);
    store.set_demo_state(DemoState::Loading).unwrap();
    assert_eq!(store.demo_state().unwrap(), DemoState::Loading);
    store.set_demo_state(DemoState::Loaded).unwrap();
    assert_eq!(store.demo_state().unwrap(), DemoState::Loaded);
    store.upsert_relationship(&relationship("a", 0)).unwrap();
    store.record_events(vec![to("a", visit(5))]).await.unwrap();
    let v = store.allocate_model_version().unwrap();
    store.put_model(v, b"s", b"b").unwrap();
    store.clear_book().unwrap();
    assert!(!store.has_relationships().unwrap());
    assert!(store.events("a", None).unwrap().is_empty());
    assert!(
        store.decoded("a").unwrap().is_none(),
        "no cached copy survives clearing"
    );
    assert_eq!(
        store.model_versions().unwrap(),
        [v],
        "models survive clearing the book"
    );
}

/// Pages of relationships with their folds cover the book once, in id order,
/// and see acknowledged writes.
pub async fn check_scans_in_pages<A>(store: Backend<A>)
where
    A: EventFold + PartialEq + Debug,
{
    assert!(store.decoded_after(None, 10).unwrap().is_empty());
    let ids: Vec<String> = (0..7).map(|i| format!("r{i}")).collect();
    for id in &ids {
        store.upsert_relationship(&relationship(id, 0)).unwrap();
    }
    store
        .record_events(vec![to("r3", visit(10)), to("r5", purchase(20, 2.0, "p"))])
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.decoded_after(after.as_deref(), 3).unwrap();
        assert!(page.len() <= 3, "a page holds at most its limit");
        let Some(last) = page.last() else { break };
        after = Some(last.relationship.id.clone());
        for d in page {
            let expected = store
                .aggregates(&d.relationship.id)
                .unwrap()
                .unwrap_or_default();
            assert_eq!(
                d.aggregates, expected,
                "{}: its own fold",
                d.relationship.id
            );
            seen.push(d.relationship.id);
        }
    }
    assert_eq!(seen, ids, "every relationship once, in id order");
    assert_eq!(
        store.decoded_after(Some("r4"), 1).unwrap()[0]
            .relationship
            .id,
        "r5",
        "a page starts after the id given"
    );
}

/// Score-index entries round-trip, are replaced by id, listed in id order
/// and removed; notes round-trip; clearing the book clears both.
pub async fn check_index_entries<A: EventFold>(store: Backend<A>) {
    assert_eq!(store.index_entries().count(), 0);
    store
        .put_index_entries(&[("b", b"b1".to_vec()), ("a", b"a1".to_vec())])
        .unwrap();
    store.put_index_entries(&[("b", b"b2".to_vec())]).unwrap();
    let entries: Vec<(String, Vec<u8>)> = store.index_entries().map(|e| e.unwrap()).collect();
    assert_eq!(
        entries,
        [
            ("a".to_string(), b"a1".to_vec()),
            ("b".to_string(), b"b2".to_vec())
        ],
        "entries are replaced by id and listed in id order"
    );
    store.remove_index_entries(&["a", "nobody"]).unwrap();
    assert_eq!(store.index_entries().count(), 1);
    assert_eq!(store.index_note("summary").unwrap(), None);
    store.set_index_note("summary", b"n1").unwrap();
    assert_eq!(
        store.index_note("summary").unwrap().as_deref(),
        Some(&b"n1"[..])
    );
    store.clear_book().unwrap();
    assert_eq!(
        store.index_entries().count(),
        0,
        "clearing drops the entries"
    );
    assert_eq!(store.index_note("summary").unwrap(), None, "and the notes");
}

/// Erasing a relationship takes its record, events, fold, index entry and
/// cached copies, and nothing of any other relationship (not even one whose
/// id it prefixes); later events for it are refused.
pub async fn check_deletion<A>(store: Backend<A>)
where
    A: EventFold + PartialEq + Debug,
{
    for id in ["a", "ab"] {
        store.upsert_relationship(&relationship(id, 0)).unwrap();
    }
    store
        .record_events(vec![
            to("a", purchase(100, 1.0, "p")),
            to("a", visit(500)),
            to("ab", visit(200)),
        ])
        .await
        .unwrap();
    store
        .put_index_entries(&[("a", b"row a".to_vec()), ("ab", b"row ab".to_vec())])
        .unwrap();
    assert!(
        store.decoded("a").unwrap().is_some(),
        "a is read once, cached"
    );
    assert_eq!(store.latest_event().unwrap(), Some(500));
    assert_eq!(
        store.delete_relationship("a").unwrap(),
        Some(2),
        "a had two events"
    );
    store.flush().await.unwrap();
    assert_eq!(store.relationship("a").unwrap(), None);
    assert!(
        store.decoded("a").unwrap().is_none(),
        "no cached copy survives"
    );
    assert_eq!(store.aggregates("a").unwrap().map(|_| ()), None);
    assert!(store.events("a", None).unwrap().is_empty());
    let entries: Vec<String> = store.index_entries().map(|e| e.unwrap().0).collect();
    assert_eq!(entries, ["ab"], "its index entry goes with it");
    assert_eq!(
        store.latest_event().unwrap(),
        Some(200),
        "the latest time no longer comes from an erased event"
    );
    let scanned: Vec<String> = store
        .decoded_after(None, 10)
        .unwrap()
        .into_iter()
        .map(|d| d.relationship.id)
        .collect();
    assert_eq!(scanned, ["ab"]);
    let chunks = store.history_chunks(10);
    let mut read = Vec::new();
    while let Some((_, histories)) = chunks.next_chunk().unwrap() {
        read.extend(histories.into_iter().map(|(r, _)| r.id));
    }
    assert_eq!(read, ["ab"], "training reads no trace of it");
    assert_eq!(
        store.events("ab", None).unwrap().len(),
        1,
        "ab is untouched"
    );
    assert_eq!(store.event_count().unwrap(), 1);
    match store.record_events(vec![to("a", visit(600))]).await {
        Err(Error::NotFound { id, .. }) => assert_eq!(id, "a"),
        other => panic!("events for an erased id must be NotFound, got {other:?}"),
    }
    assert_eq!(
        store.delete_relationship("a").unwrap(),
        None,
        "erasing twice finds nothing"
    );
    assert_eq!(store.delete_relationship("nobody").unwrap(), None);
}

/// What was acknowledged or flushed is there after the store is reopened:
/// `open` opens the same store each time; the suite drops one before it
/// opens the next.
///
/// # Panics
/// When anything is missing after the reopen.
pub async fn check_durability<A>(open: impl Fn() -> Result<Backend<A>>)
where
    A: EventFold + PartialEq + Debug,
{
    let store = open().expect("open");
    store.upsert_relationship(&relationship("a", 0)).unwrap();
    store.flush().await.unwrap();
    store
        .record_events(vec![to("a", purchase(10, 2.0, "p")), to("a", visit(20))])
        .await
        .unwrap();
    let v = store.allocate_model_version().unwrap();
    store.put_model(v, b"s", b"b").unwrap();
    store.set_active_model(ModelSlot::Default, v).unwrap();
    store.upsert_relationship(&relationship("gone", 0)).unwrap();
    store
        .record_events(vec![to("gone", visit(30))])
        .await
        .unwrap();
    store
        .put_index_entries(&[("a", b"row".to_vec()), ("gone", b"row".to_vec())])
        .unwrap();
    store.set_index_note("n", b"note").unwrap();
    store.delete_relationship("gone").unwrap();
    store.flush().await.unwrap();
    drop(store);
    let store = open().expect("reopen");
    assert_eq!(
        store.relationship("gone").unwrap(),
        None,
        "an erasure survives a reopen"
    );
    assert!(store.events("gone", None).unwrap().is_empty());
    let entries: Vec<String> = store.index_entries().map(|e| e.unwrap().0).collect();
    assert_eq!(
        entries,
        ["a"],
        "flushed index entries survive, erased ones stay gone"
    );
    assert_eq!(
        store.index_note("n").unwrap().as_deref(),
        Some(&b"note"[..])
    );
    let events = store.events("a", None).unwrap();
    assert_eq!(events.len(), 2, "acknowledged events survive a reopen");
    assert_eq!(store.aggregates("a").unwrap(), Some(fold::<A>(&events)));
    assert_eq!(store.active_model(ModelSlot::Default).unwrap(), Some(v));
    assert!(
        store.allocate_model_version().unwrap() > v,
        "versions are never reused"
    );
}
