//! Black-box tests of every RPC against the real server on a loopback port.

mod common;

use std::collections::HashMap;

use common::{demo_ids, demo_ids_existing_at, shared, today, ts, TestServer, DAY};
use rapport::api::pb;
use tonic::Code;

fn relationship(id: &str, kind: pb::RelationshipKind, created_at: i64) -> pb::Relationship {
    pb::Relationship {
        id: id.into(),
        kind: kind as i32,
        created_at: Some(ts(created_at)),
        attributes: HashMap::from([(
            "region".to_string(),
            pb::AttributeValue {
                value: Some(pb::attribute_value::Value::Text("north".into())),
            },
        )]),
    }
}

fn purchase(id: &str, at: i64, amount: f64, products: &[&str]) -> pb::Event {
    pb::Event {
        relationship_id: id.into(),
        body: Some(pb::event::Body::Purchase(pb::Purchase {
            at: Some(ts(at)),
            amount,
            product_ids: products.iter().map(|p| p.to_string()).collect(),
            quantity: 1,
        })),
    }
}

/// Creates `id` three years ago with monthly purchases from then until `last_purchase`.
async fn monthly_buyer(
    server: &TestServer,
    id: &str,
    last_purchase: i64,
    amount: f64,
    products: &[&str],
) {
    let created = today() - 3 * 365 * DAY;
    server
        .ingest()
        .await
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(relationship(id, pb::RelationshipKind::Customer, created)),
            replace_attributes: false,
        })
        .await
        .expect("upsert");
    let mut events = Vec::new();
    let mut at = created + DAY;
    while at <= last_purchase {
        events.push(purchase(id, at, amount, products));
        at += 30 * DAY;
    }
    server
        .ingest()
        .await
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("record");
}

#[tokio::test]
async fn score_answers_from_the_trained_model_with_consistent_fields() {
    let server = shared();
    server.wait_serving().await;
    let s = server.score_now("c-000000", 5).await;
    assert_eq!(s.relationship_id, "c-000000");
    assert!((0.0..=1.0).contains(&s.churn_probability));
    assert_eq!(s.churn_horizon_days, Some(90));
    let value = s.expected_value.expect("the demo model has a value model");
    assert_eq!(s.value_at_risk, Some(s.churn_probability * value));
    assert!(value >= 0.0);
    let health = s.health.expect("health");
    assert_eq!(s.health_score, health.score);
    assert_eq!(health.retention, 1.0 - s.churn_probability);
    let days: Vec<u32> = s.churn_by_horizon.iter().map(|h| h.days).collect();
    assert_eq!(days, vec![30, 90, 180, 365]);
    assert!(s
        .churn_by_horizon
        .windows(2)
        .all(|w| w[0].probability <= w[1].probability));
    assert!((0.0..=365.0).contains(&s.expected_days_to_churn.unwrap()));
    assert!(!s.reasons.is_empty() && s.reasons.len() <= 5);
    for r in &s.reasons {
        assert!(!r.explanation.is_empty());
        let raises = r.direction == pb::Direction::RaisesChurn as i32;
        assert_eq!(raises, r.contribution > 0.0, "{r:?}");
    }
    assert!(s
        .reasons
        .windows(2)
        .all(|w| w[0].contribution.abs() >= w[1].contribution.abs()));
    let models = server
        .models()
        .await
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.model_version, models.active_version);
}

#[tokio::test]
async fn a_relationship_silent_for_a_year_scores_higher_churn_than_an_active_one() {
    let server = shared();
    server.wait_serving().await;
    monthly_buyer(
        server,
        "t-active",
        today() - 10 * DAY,
        80.0,
        &["coffee-beans"],
    )
    .await;
    monthly_buyer(
        server,
        "t-silent",
        today() - 365 * DAY,
        80.0,
        &["coffee-beans"],
    )
    .await;
    let active = server.score_now("t-active", 5).await;
    let silent = server.score_now("t-silent", 5).await;
    assert!(
        silent.churn_probability > active.churn_probability + 0.2,
        "silent {} vs active {}",
        silent.churn_probability,
        active.churn_probability
    );
    assert!(silent.health_score < active.health_score);
    assert!(silent
        .reasons
        .iter()
        .any(|r| r.feature == "recency_days" || r.feature == "overdue_ratio"));
}

#[tokio::test]
async fn ingested_events_change_the_next_score() {
    let server = shared();
    server.wait_serving().await;
    monthly_buyer(server, "t-comeback", today() - 300 * DAY, 60.0, &["toner"]).await;
    let before = server.score_now("t-comeback", 5).await;
    let events = (0..4)
        .map(|i| {
            purchase(
                "t-comeback",
                today() - (40 - 10 * i) * DAY,
                60.0,
                &["toner"],
            )
        })
        .collect();
    let ack = server
        .ingest()
        .await
        .record_events(pb::RecordEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.accepted, 4);
    let after = server.score_now("t-comeback", 5).await;
    assert!(
        after.churn_probability < before.churn_probability,
        "{} -> {}",
        before.churn_probability,
        after.churn_probability
    );
    let view = server
        .ingest()
        .await
        .get_relationship(pb::GetRelationshipRequest {
            id: "t-comeback".into(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    let recency = view
        .features
        .iter()
        .find(|f| f.name == "recency_days")
        .expect("recency feature")
        .value;
    assert!(recency < 11.0, "{recency}");
    assert_eq!(view.owned_product_ids, vec!["toner".to_string()]);
    assert!(view.event_count >= 4);
}

/// A Score request for each of `ids`.
fn score_requests(
    ids: &[String],
    as_of: Option<prost_types::Timestamp>,
    max_reasons: u32,
) -> Vec<pb::ScoreRequest> {
    ids.iter()
        .map(|id| pb::ScoreRequest {
            relationship_id: id.clone(),
            as_of,
            max_reasons,
        })
        .collect()
}

/// `ids` scored by one ScoreBatch and by one ScoreStream that sends every
/// request at once.
async fn batch_and_stream(
    server: &TestServer,
    ids: &[String],
    as_of: Option<prost_types::Timestamp>,
    max_reasons: u32,
) -> (Vec<pb::RelationshipScore>, Vec<pb::RelationshipScore>) {
    let batch = server
        .scoring()
        .await
        .score_batch(pb::ScoreBatchRequest {
            relationship_ids: ids.to_vec(),
            as_of,
            max_reasons,
            skip_unknown: false,
        })
        .await
        .unwrap()
        .into_inner()
        .scores;
    let mut stream = server
        .scoring()
        .await
        .score_stream(tokio_stream::iter(score_requests(ids, as_of, max_reasons)))
        .await
        .unwrap()
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(s) = stream.message().await.unwrap() {
        streamed.push(s);
    }
    (batch, streamed)
}

#[tokio::test]
async fn batch_and_stream_scores_equal_single_scores() {
    let server = shared();
    server.wait_serving().await;
    let mut ids = demo_ids("c-", 2);
    ids.extend(demo_ids("a-", 1));
    let as_of = Some(ts(today() - 7 * DAY));
    let (batch, streamed) = batch_and_stream(server, &ids, as_of, 3).await;
    assert_eq!(batch.len(), 3);
    assert_eq!(streamed, batch);
    for (req, b) in score_requests(&ids, as_of, 3).into_iter().zip(&batch) {
        let single = server
            .scoring()
            .await
            .score(req)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&single, b);
        assert_eq!(single.as_of, as_of);
    }
}

/// Thousands of requests in flight on one stream: the server answers in
/// frames far over 1 KiB, which go out through its write buffer (see
/// `ServerSocket`) and must arrive whole and in order.
#[tokio::test]
async fn score_stream_answers_a_deep_window_in_order() {
    let server = shared();
    server.wait_serving().await;
    // A fixed time, so that the stream and the batch score alike, and every
    // id of the book that existed then, over and over.
    let as_of = Some(ts(today() - 7 * DAY));
    let ids: Vec<String> = demo_ids_existing_at(today() - 7 * DAY)
        .into_iter()
        .cycle()
        .take(2_000)
        .collect();
    let (batch, streamed) = batch_and_stream(server, &ids, as_of, 10).await;
    assert_eq!(streamed.len(), 2_000);
    assert_eq!(streamed, batch);
}

#[tokio::test]
async fn segment_reports_rfm_tier_cluster_and_stage() {
    let server = shared();
    server.wait_serving().await;
    let mut client = server.scoring().await;
    let mut stages = std::collections::HashSet::new();
    for id in demo_ids("", 200) {
        let seg = client
            .segment(pb::SegmentRequest {
                relationship_id: id.clone(),
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner();
        let rfm = seg.rfm.expect("rfm");
        let tier = seg.value_tier.expect("tier");
        if rfm.segment == "Prospect" {
            // No purchase yet: no RFM scores, and no tier until there is one.
            assert_eq!(
                (rfm.recency, rfm.frequency, rfm.monetary),
                (0, 0, 0),
                "{id}"
            );
            assert_eq!((tier.name.as_str(), tier.rank), ("Prospect", 0), "{id}");
        } else {
            for v in [rfm.recency, rfm.frequency, rfm.monetary] {
                assert!((1..=5).contains(&v), "{id}: {rfm:?}");
            }
            assert!(["Platinum", "Gold", "Silver", "Bronze", "Unprofitable"]
                .contains(&tier.name.as_str()));
            assert!((1..=5).contains(&tier.rank));
        }
        let cluster = seg.cluster.expect("cluster");
        assert!(!cluster.persona.is_empty() && cluster.size > 0);
        stages.insert(seg.lifecycle_stage);
    }
    assert!(
        stages.len() >= 3,
        "few life-cycle stages in the demo book: {stages:?}"
    );

    // A relationship without purchases is a prospect.
    server
        .ingest()
        .await
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(relationship(
                "t-prospect",
                pb::RelationshipKind::Account,
                today() - 20 * DAY,
            )),
            replace_attributes: false,
        })
        .await
        .unwrap();
    let seg = client
        .segment(pb::SegmentRequest {
            relationship_id: "t-prospect".into(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seg.lifecycle_stage, pb::LifecycleStage::Prospect as i32);
}

#[tokio::test]
async fn recommend_never_offers_owned_or_excluded_products_and_ranks_by_value() {
    let server = shared();
    server.wait_serving().await;
    let mut scoring = server.scoring().await;
    let mut ingest = server.ingest().await;
    let mut cross_sells = 0;
    for id in demo_ids("c-", 60) {
        let view = ingest
            .get_relationship(pb::GetRelationshipRequest {
                id: id.clone(),
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner();
        let excluded = vec!["coffee-beans".to_string(), "toner".to_string()];
        let rec = scoring
            .recommend(pb::RecommendRequest {
                relationship_id: id.clone(),
                as_of: None,
                max_actions: 10,
                exclude_product_ids: excluded.clone(),
                exclude_action_types: vec![pb::ActionType::Loyalty as i32],
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!rec.actions.is_empty());
        assert!(rec
            .actions
            .windows(2)
            .all(|w| w[0].expected_net_value >= w[1].expected_net_value));
        for a in &rec.actions {
            assert_ne!(
                a.r#type,
                pb::ActionType::Loyalty as i32,
                "{id}: excluded type offered"
            );
            assert!(
                !view.owned_product_ids.contains(&a.product_id),
                "{id}: owned product {} offered",
                a.product_id
            );
            assert!(
                !excluded.contains(&a.product_id),
                "{id}: excluded product offered"
            );
            assert!(!a.reason.is_empty());
            if a.r#type == pb::ActionType::NoAction as i32 {
                assert_eq!(rec.actions.len(), 1);
            } else {
                assert!(a.expected_net_value > 0.0);
            }
            if a.r#type == pb::ActionType::CrossSell as i32 {
                cross_sells += 1;
            }
        }
    }
    assert!(cross_sells > 0, "no cross-sell among 60 demo customers");
}

#[tokio::test]
async fn retention_offers_appear_only_where_they_pay() {
    let server = shared();
    server.wait_serving().await;
    let policy = rapport::engine::Policy::default();
    // Tiny spender going quiet (not yet churned): high churn, but nothing worth saving.
    monthly_buyer(server, "t-tiny", today() - 45 * DAY, 0.5, &["mouse"]).await;
    let s = server.score_now("t-tiny", 5).await;
    let rec = server
        .scoring()
        .await
        .recommend(pb::RecommendRequest {
            relationship_id: "t-tiny".into(),
            as_of: None,
            max_actions: 10,
            exclude_product_ids: vec![],
            exclude_action_types: vec![
                pb::ActionType::CrossSell as i32,
                pb::ActionType::UpSell as i32,
                pb::ActionType::Loyalty as i32,
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rec.actions.len(), 1, "{:?}", rec.actions);
    assert_eq!(rec.actions[0].r#type, pb::ActionType::NoAction as i32);
    assert!(
        rec.actions[0].reason.contains("retention offer would save"),
        "{}",
        rec.actions[0].reason
    );
    let saved =
        s.churn_probability * policy.retention.uplift * s.expected_value.unwrap() * policy.margin;
    assert!(saved < policy.retention.offer_cost);

    // Across the demo book, every retention offer pays by the policy's own arithmetic.
    let mut scoring = server.scoring().await;
    let mut retained = 0;
    for id in demo_ids("a-", 150) {
        let rec = scoring
            .recommend(pb::RecommendRequest {
                relationship_id: id.clone(),
                as_of: None,
                max_actions: 10,
                exclude_product_ids: vec![],
                exclude_action_types: vec![],
            })
            .await
            .unwrap();
        for a in rec
            .into_inner()
            .actions
            .iter()
            .filter(|a| a.r#type == pb::ActionType::Retain as i32)
        {
            let s = server.score_now(&id, 5).await;
            let expected = s.churn_probability
                * policy.retention.uplift
                * s.expected_value.unwrap()
                * policy.margin
                - policy.retention.offer_cost;
            assert!(expected > 0.0);
            assert!(
                (a.expected_net_value - expected).abs() < 1e-6 * expected.max(1.0),
                "{id}"
            );
            retained += 1;
        }
    }
    assert!(
        retained > 0,
        "no account in the demo book got a retention offer"
    );
}

#[tokio::test]
async fn list_models_shows_the_active_version_with_holdout_metrics() {
    let server = shared();
    server.wait_serving().await;
    let models = server
        .models()
        .await
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(models.versions.len(), 1);
    let v = &models.versions[0];
    assert!(v.active && v.version == models.active_version);
    let metric = |name: &str| v.metrics.iter().find(|m| m.name == name).map(|m| m.value);
    assert!(metric("churn.roc_auc").expect("auc") > 0.75);
    assert!(metric("value.correlation").expect("corr") > 0.2);
    assert!(metric("segments.silhouette").expect("silhouette") > 0.0);
    assert!(v.training_rows > 500);
}

// ------------------------------------------------------------------ bad input

fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, needle: &str) {
    let status = result.expect_err("must fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "message {:?} lacks {needle:?}",
        status.message()
    );
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_name_the_id() {
    let server = shared();
    server.wait_serving().await;
    let mut scoring = server.scoring().await;
    let r = scoring
        .score(pb::ScoreRequest {
            relationship_id: "nobody-42".into(),
            as_of: None,
            max_reasons: 0,
        })
        .await;
    assert_status(r, Code::NotFound, "nobody-42");
    let r = scoring
        .score_batch(pb::ScoreBatchRequest {
            relationship_ids: vec!["c-000000".into(), "ghost-7".into()],
            as_of: None,
            max_reasons: 0,
            skip_unknown: false,
        })
        .await;
    assert_status(r, Code::NotFound, "ghost-7");
    // A stream answers what it can, then ends with the first error.
    let request = |id: &str| pb::ScoreRequest {
        relationship_id: id.into(),
        as_of: None,
        max_reasons: 0,
    };
    let mut stream = scoring
        .score_stream(tokio_stream::iter([
            request("c-000000"),
            request("ghost-10"),
            request("c-000001"),
        ]))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.relationship_id, "c-000000");
    assert_status(stream.message().await, Code::NotFound, "ghost-10");
    let r = scoring
        .segment(pb::SegmentRequest {
            relationship_id: "ghost-8".into(),
            as_of: None,
        })
        .await;
    assert_status(r, Code::NotFound, "ghost-8");
    let r = server
        .ingest()
        .await
        .get_relationship(pb::GetRelationshipRequest {
            id: "ghost-9".into(),
            as_of: None,
        })
        .await;
    assert_status(r, Code::NotFound, "ghost-9");
}

#[tokio::test]
async fn bad_events_are_rejected_whole_with_the_field_named() {
    let server = shared();
    server.wait_serving().await;
    monthly_buyer(server, "t-guarded", today() - 30 * DAY, 10.0, &["mouse"]).await;
    let mut ingest = server.ingest().await;
    let count = |v: pb::GetRelationshipResponse| v.event_count;
    let before = count(
        ingest
            .get_relationship(pb::GetRelationshipRequest {
                id: "t-guarded".into(),
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner(),
    );
    let good = purchase("t-guarded", today() - DAY, 5.0, &["mouse"]);
    let cases: Vec<(pb::Event, Code, &str)> = vec![
        (
            purchase("t-guarded", today() - DAY, f64::NAN, &[]),
            Code::InvalidArgument,
            "events[1].purchase.amount",
        ),
        (
            purchase("t-guarded", today() - DAY, f64::INFINITY, &[]),
            Code::InvalidArgument,
            "must be finite",
        ),
        (
            purchase("t-guarded", today() + 400 * DAY, 1.0, &[]),
            Code::InvalidArgument,
            "in the future",
        ),
        (
            pb::Event {
                relationship_id: "t-guarded".into(),
                body: Some(pb::event::Body::Purchase(pb::Purchase {
                    at: Some(ts(today() - DAY)),
                    amount: 3.0,
                    product_ids: vec![],
                    quantity: -2,
                })),
            },
            Code::InvalidArgument,
            "events[1].purchase.quantity",
        ),
        (
            pb::Event {
                relationship_id: "t-guarded".into(),
                body: None,
            },
            Code::InvalidArgument,
            "events[1].body",
        ),
        (
            pb::Event {
                relationship_id: "t-guarded".into(),
                body: Some(pb::event::Body::Interaction(pb::Interaction {
                    at: Some(ts(today() - DAY)),
                    kind: 42,
                    survey_score: None,
                })),
            },
            Code::InvalidArgument,
            "events[1].interaction.kind",
        ),
        (
            purchase("ghost-event", today() - DAY, 1.0, &[]),
            Code::NotFound,
            "ghost-event",
        ),
    ];
    for (bad, code, needle) in cases {
        let r = ingest
            .record_events(pb::RecordEventsRequest {
                events: vec![good.clone(), bad],
            })
            .await;
        assert_status(r, code, needle);
    }
    let r = ingest
        .record_events(pb::RecordEventsRequest { events: vec![] })
        .await;
    assert_status(r, Code::InvalidArgument, "empty");
    let r = ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![good.clone(); 10_001],
        })
        .await;
    assert_status(r, Code::InvalidArgument, "10001");
    let after = count(
        ingest
            .get_relationship(pb::GetRelationshipRequest {
                id: "t-guarded".into(),
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(before, after, "a rejected batch wrote events");
}

#[tokio::test]
async fn bad_relationships_and_requests_are_invalid_arguments() {
    let server = shared();
    server.wait_serving().await;
    let mut ingest = server.ingest().await;
    let mut unknown_kind = relationship("t-bad", pb::RelationshipKind::Customer, today());
    unknown_kind.kind = 99;
    let mut nan_attribute = relationship("t-bad", pb::RelationshipKind::Customer, today());
    nan_attribute.attributes.insert(
        "size".into(),
        pb::AttributeValue {
            value: Some(pb::attribute_value::Value::Number(f64::NAN)),
        },
    );
    let cases = [
        (unknown_kind, "relationship.kind"),
        (
            relationship("t-bad", pb::RelationshipKind::Unspecified, today()),
            "relationship.kind",
        ),
        (nan_attribute, "size"),
        (
            relationship("", pb::RelationshipKind::Customer, today()),
            "relationship.id",
        ),
    ];
    for (r, needle) in cases {
        let answer = ingest
            .upsert_relationship(pb::UpsertRelationshipRequest {
                relationship: Some(r),
                replace_attributes: false,
            })
            .await;
        assert_status(answer, Code::InvalidArgument, needle);
    }
    let mut scoring = server.scoring().await;
    assert_status(
        scoring
            .score(pb::ScoreRequest {
                relationship_id: "c-000000".into(),
                as_of: None,
                max_reasons: 21,
            })
            .await,
        Code::InvalidArgument,
        "max_reasons",
    );
    assert_status(
        scoring
            .score(pb::ScoreRequest {
                relationship_id: "c-000000".into(),
                as_of: Some(ts(today() + 100 * DAY)),
                max_reasons: 0,
            })
            .await,
        Code::InvalidArgument,
        "as_of",
    );
    assert_status(
        scoring
            .score_batch(pb::ScoreBatchRequest {
                relationship_ids: vec![],
                as_of: None,
                max_reasons: 0,
                skip_unknown: false,
            })
            .await,
        Code::InvalidArgument,
        "relationship_ids",
    );
    assert_status(
        scoring
            .score_batch(pb::ScoreBatchRequest {
                relationship_ids: vec!["c-000000".into(); 10_001],
                as_of: None,
                max_reasons: 0,
                skip_unknown: false,
            })
            .await,
        Code::InvalidArgument,
        "10001",
    );
    assert_status(
        scoring
            .recommend(pb::RecommendRequest {
                relationship_id: "c-000000".into(),
                as_of: None,
                max_actions: 0,
                exclude_product_ids: vec![],
                exclude_action_types: vec![pb::ActionType::NoAction as i32],
            })
            .await,
        Code::InvalidArgument,
        "exclude_action_types",
    );
}

#[tokio::test]
async fn without_a_model_scoring_is_a_failed_precondition_and_health_not_serving() {
    let server = TestServer::start(None);
    let health = server.health().await;
    assert_eq!(
        health,
        tonic_health::pb::health_check_response::ServingStatus::NotServing
    );
    let r = server
        .scoring()
        .await
        .score(pb::ScoreRequest {
            relationship_id: "c-000000".into(),
            as_of: None,
            max_reasons: 0,
        })
        .await;
    assert_status(r, Code::FailedPrecondition, "no model");
    // Writes still work without a model.
    let created = server
        .ingest()
        .await
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(relationship("x-1", pb::RelationshipKind::Partner, today())),
            replace_attributes: false,
        })
        .await
        .unwrap()
        .into_inner()
        .created;
    assert!(created);
}
