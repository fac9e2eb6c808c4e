//! One coherent story per relationship: Score, Segment, Recommend and
//! GetRelationship agree with each other and with the data, across a whole
//! demo book and for the cases that used to contradict it (no purchase yet,
//! one purchase, time before a relationship existed, partial upserts).

mod common;

use std::collections::HashMap;

use common::{demo_ids, shared, today, ts, TestServer, DAY};
use rapport::api::pb;
use rapport::engine::Policy;
use tonic::Code;

fn text(v: &str) -> pb::AttributeValue {
    pb::AttributeValue {
        value: Some(pb::attribute_value::Value::Text(v.into())),
    }
}

fn number(v: f64) -> pb::AttributeValue {
    pb::AttributeValue {
        value: Some(pb::attribute_value::Value::Number(v)),
    }
}

async fn upsert(
    server: &TestServer,
    relationship: pb::Relationship,
) -> pb::UpsertRelationshipResponse {
    server
        .ingest()
        .await
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(relationship),
            replace_attributes: false,
        })
        .await
        .expect("upsert")
        .into_inner()
}

/// The numbers a sentence quotes: "12 days", "below the typical 61 days".
fn numbers_in(sentence: &str) -> Vec<String> {
    sentence
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .map(|w| w.trim_matches(|c| c == '.' || c == ','))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

/// The R × F grid of models/README.md, rows R = 5..1, columns F = 1..5.
fn grid(r: u32, f: u32) -> &'static str {
    const GRID: [[&str; 5]; 5] = [
        [
            "New",
            "Potential loyalist",
            "Potential loyalist",
            "Champions",
            "Champions",
        ],
        [
            "Promising",
            "Potential loyalist",
            "Potential loyalist",
            "Loyal",
            "Loyal",
        ],
        [
            "About to sleep",
            "About to sleep",
            "Need attention",
            "Loyal",
            "Loyal",
        ],
        [
            "Hibernating",
            "Hibernating",
            "At risk",
            "At risk",
            "Can't lose",
        ],
        ["Lost", "Lost", "At risk", "At risk", "Can't lose"],
    ];
    GRID[(5 - r) as usize][(f - 1) as usize]
}

/// Every relationship of the demo book, scored and segmented, holds every
/// invariant the contract states.
#[tokio::test]
async fn every_answer_of_a_whole_book_agrees_with_its_definitions() {
    let server = shared();
    server.wait_serving().await;
    let policy = Policy::default();
    let ids = demo_ids("", usize::MAX);
    let mut scoring = server.scoring().await;
    let mut scores = Vec::new();
    for chunk in ids.chunks(1_000) {
        scores.extend(
            scoring
                .score_batch(pb::ScoreBatchRequest {
                    relationship_ids: chunk.to_vec(),
                    as_of: None,
                    max_reasons: 5,
                    skip_unknown: false,
                })
                .await
                .expect("batch")
                .into_inner()
                .scores,
        );
    }
    assert_eq!(scores.len(), ids.len());
    let mut by_tier: Vec<(u32, f64)> = Vec::new();
    let (mut prospects, mut health_differs) = (0, 0);
    for s in &scores {
        let id = &s.relationship_id;
        // One definition of churn: the curve at its horizon, non-decreasing.
        let horizon = s.churn_horizon_days.expect("a curve");
        let at = s
            .churn_by_horizon
            .iter()
            .find(|h| h.days == horizon)
            .expect("the horizon is on the curve");
        assert_eq!(s.churn_probability, at.probability, "{id}");
        assert!(
            s.churn_by_horizon
                .windows(2)
                .all(|w| w[0].probability <= w[1].probability),
            "{id}: {:?}",
            s.churn_by_horizon
        );
        if s.churned {
            assert!(
                s.churn_by_horizon.iter().all(|h| h.probability == 1.0),
                "{id}"
            );
        }
        // Value at risk is churn × value.
        let value = s.expected_value.expect("value");
        assert_eq!(s.value_at_risk, Some(s.churn_probability * value), "{id}");
        // Health is its documented formula over the components it returns.
        let h = s.health.as_ref().expect("health");
        let w = &policy.health;
        let parts = [
            (Some(h.retention), w.retention),
            (h.engagement, w.engagement),
            (h.satisfaction, w.satisfaction),
            (h.payment, w.payment),
            (h.value_trend, w.value_trend),
        ];
        let (sum, total) = parts
            .iter()
            .filter_map(|(v, w)| v.map(|v| (v * w, *w)))
            .fold((0.0, 0.0), |(s, t), (v, w)| (s + v, t + w));
        assert_eq!(h.score, (sum / total * 100.0).round() as u32, "{id}");
        assert_eq!(s.health_score, h.score);
        assert_eq!(h.retention, 1.0 - s.churn_probability);
        if h.score != ((1.0 - s.churn_probability) * 100.0).round() as u32 {
            health_differs += 1;
        }
        // Reasons a person can read: a unit, and never a number compared with itself.
        for r in &s.reasons {
            assert!(!r.unit.is_empty(), "{id}: {r:?}");
            if let Some((_, typical)) = r.explanation.split_once("the typical ") {
                let said = numbers_in(&r.explanation);
                let typical = numbers_in(typical);
                assert!(
                    said.first() != typical.first(),
                    "{id}: compares a value with itself: {}",
                    r.explanation
                );
            }
            assert!(!r.explanation.contains("NaN"), "{id}: {}", r.explanation);
        }
    }
    assert!(
        health_differs * 2 > scores.len(),
        "health adds nothing to churn for {} of {} relationships",
        scores.len() - health_differs,
        scores.len()
    );
    for s in &scores {
        let id = &s.relationship_id;
        let seg = server.segment_now(id).await;
        let rfm = seg.rfm.expect("rfm");
        let tier = seg.value_tier.expect("tier");
        let bought = rfm.frequency > 0;
        if bought {
            assert!(
                (1..=5).contains(&rfm.recency) && (1..=5).contains(&rfm.monetary),
                "{id}"
            );
            assert_eq!(
                rfm.segment,
                grid(rfm.recency, rfm.frequency),
                "{id}: {rfm:?}"
            );
            assert_ne!(tier.name, "Prospect", "{id}");
            by_tier.push((tier.rank, tier.expected_profit.expect("profit")));
        } else {
            prospects += 1;
            assert_eq!(
                (rfm.recency, rfm.monetary),
                (0, 0),
                "{id}: a prospect has no RFM"
            );
            assert_eq!(rfm.segment, "Prospect", "{id}");
            assert_eq!((tier.name.as_str(), tier.rank), ("Prospect", 0), "{id}");
            assert_eq!(
                seg.lifecycle_stage,
                pb::LifecycleStage::Prospect as i32,
                "{id}"
            );
        }
        // The stage and the curve tell one story.
        assert_eq!(
            seg.lifecycle_stage == pb::LifecycleStage::Lapsed as i32,
            s.churned && bought,
            "{id}: lapsed is churned"
        );
        if !bought {
            for a in server.recommend_now(id, 10).await.actions {
                assert_ne!(
                    a.r#type,
                    pb::ActionType::Loyalty as i32,
                    "{id}: loyalty for a prospect"
                );
            }
        }
    }
    assert!(prospects > 0, "the demo book has prospects");
    // Tiers follow expected profit: a better-ranked tier never earns less.
    let profitable: Vec<&(u32, f64)> = by_tier.iter().filter(|(rank, _)| *rank < 5).collect();
    for a in &profitable {
        for b in &profitable {
            if a.0 < b.0 {
                assert!(
                    a.1 >= b.1,
                    "tier {} at {} below tier {} at {}",
                    a.0,
                    a.1,
                    b.0,
                    b.1
                );
            }
        }
    }
    for (rank, profit) in &by_tier {
        assert_eq!(
            *rank == 5,
            *profit <= 0.0,
            "Unprofitable is exactly profit <= 0"
        );
    }
    let ranks: std::collections::BTreeSet<u32> = by_tier.iter().map(|t| t.0).collect();
    assert_eq!(ranks.len(), 5, "every tier occurs in the book: {ranks:?}");
}

/// Defect 1: two churn numbers that disagreed.
#[tokio::test]
async fn churn_probability_is_the_curve_read_at_its_horizon() {
    let server = shared();
    server.wait_serving().await;
    for id in demo_ids("", 200) {
        for as_of in [None, Some(ts(today() - 120 * DAY))] {
            let s = server
                .scoring()
                .await
                .score(pb::ScoreRequest {
                    relationship_id: id.clone(),
                    as_of,
                    max_reasons: 1,
                })
                .await;
            let Ok(s) = s.map(tonic::Response::into_inner) else {
                continue; // created after that as-of time
            };
            let at_90 = s.churn_by_horizon.iter().find(|h| h.days == 90).unwrap();
            assert_eq!(s.churn_probability, at_90.probability, "{id}");
        }
    }
}

/// Defect 2: a relationship without purchases scored as if it had just bought.
#[tokio::test]
async fn a_relationship_without_purchases_is_a_prospect_everywhere() {
    let server = shared();
    server.wait_serving().await;
    upsert(
        server,
        pb::Relationship {
            id: "newbie".into(),
            kind: pb::RelationshipKind::Customer as i32,
            created_at: Some(ts(today() - 11 * DAY)),
            attributes: HashMap::new(),
        },
    )
    .await;
    let s = server.score_now("newbie", 20).await;
    assert!(!s.churned);
    assert!((0.0..1.0).contains(&s.churn_probability));
    for r in &s.reasons {
        assert!(
            !r.explanation
                .to_lowercase()
                .contains("since the last purchase"),
            "{}",
            r.explanation
        );
        assert!(
            r.feature != "recency_days" && r.feature != "monetary_avg",
            "{r:?}"
        );
    }
    let said = s
        .reasons
        .iter()
        .any(|r| r.explanation.starts_with("No purchase yet"));
    assert!(
        said,
        "a reason says there is no purchase yet: {:?}",
        s.reasons
    );
    let seg = server.segment_now("newbie").await;
    let rfm = seg.rfm.unwrap();
    assert_eq!((rfm.recency, rfm.frequency, rfm.monetary), (0, 0, 0));
    assert_eq!(rfm.segment, "Prospect");
    assert_eq!(seg.value_tier.unwrap().name, "Prospect");
    assert_eq!(seg.lifecycle_stage, pb::LifecycleStage::Prospect as i32);
    let view = server
        .ingest()
        .await
        .get_relationship(pb::GetRelationshipRequest {
            id: "newbie".into(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
    assert!(!names.contains(&"recency_days"), "{names:?}");
    assert!(names.contains(&"no_purchase_yet"), "{names:?}");
    for a in server.recommend_now("newbie", 10).await.actions {
        assert_ne!(a.r#type, pb::ActionType::Loyalty as i32);
    }
}

/// Defects 3 and 4: RFM names and tiers for one-purchase relationships.
#[tokio::test]
async fn one_purchase_is_never_loyal_gold_or_a_champion() {
    let server = shared();
    server.wait_serving().await;
    upsert(
        server,
        pb::Relationship {
            id: "once".into(),
            kind: pb::RelationshipKind::Customer as i32,
            created_at: Some(ts(today() - 40 * DAY)),
            attributes: HashMap::new(),
        },
    )
    .await;
    server
        .ingest()
        .await
        .record_events(pb::RecordEventsRequest {
            events: vec![pb::Event {
                relationship_id: "once".into(),
                body: Some(pb::event::Body::Purchase(pb::Purchase {
                    at: Some(ts(today() - 30 * DAY)),
                    amount: 50.0,
                    product_ids: vec!["toner".into()],
                    quantity: 1,
                })),
            }],
        })
        .await
        .unwrap();
    let seg = server.segment_now("once").await;
    let rfm = seg.rfm.unwrap();
    assert_eq!(rfm.frequency, 1);
    assert!(
        !["Loyal", "Champions", "At risk", "Can't lose"].contains(&rfm.segment.as_str()),
        "{rfm:?}"
    );
    assert_eq!(rfm.segment, grid(rfm.recency, 1));
    let s = server.score_now("once", 20).await;
    for r in &s.reasons {
        assert_ne!(
            r.feature, "last_gap_days",
            "no gap with one purchase: {r:?}"
        );
    }
    for a in server.recommend_now("once", 10).await.actions {
        assert_ne!(
            a.r#type,
            pb::ActionType::Loyalty as i32,
            "loyalty needs a history: {a:?}"
        );
    }
}

/// Defect 7: times before a relationship existed, and upserts that dropped data.
#[tokio::test]
async fn time_is_checked_and_an_upsert_keeps_what_it_leaves_out() {
    let server = shared();
    server.wait_serving().await;
    let created = rapport::time::parse_date("t", "2024-01-15").unwrap();
    let first = upsert(
        server,
        pb::Relationship {
            id: "acme".into(),
            kind: pb::RelationshipKind::Account as i32,
            created_at: Some(ts(created)),
            attributes: HashMap::from([
                ("industry".to_string(), text("retail")),
                ("company_size".to_string(), number(250.0)),
            ]),
        },
    )
    .await;
    assert!(first.created);
    let before = rapport::time::parse_date("t", "2023-01-01").unwrap();
    for as_of in [before, 0] {
        let err = server
            .scoring()
            .await
            .segment(pb::SegmentRequest {
                relationship_id: "acme".into(),
                as_of: Some(ts(as_of)),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains("as_of") && err.message().contains("2024-01-15"),
            "{}",
            err.message()
        );
    }
    // An update without created_at or kind, changing one attribute and removing another.
    let updated = upsert(
        server,
        pb::Relationship {
            id: "acme".into(),
            kind: pb::RelationshipKind::Unspecified as i32,
            created_at: None,
            attributes: HashMap::from([
                ("company_size".to_string(), number(300.0)),
                ("industry".to_string(), pb::AttributeValue { value: None }),
                ("region".to_string(), text("north")),
            ]),
        },
    )
    .await;
    assert!(!updated.created);
    let stored = updated.relationship.unwrap();
    assert_eq!(stored.created_at, Some(ts(created)), "created_at is kept");
    assert_eq!(
        stored.kind,
        pb::RelationshipKind::Account as i32,
        "kind is kept"
    );
    let names: std::collections::BTreeSet<&str> =
        stored.attributes.keys().map(String::as_str).collect();
    assert_eq!(names, ["company_size", "region"].into_iter().collect());
    let view = server
        .ingest()
        .await
        .get_relationship(pb::GetRelationshipRequest {
            id: "acme".into(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.relationship, Some(stored));
    // Creating without a kind is refused, naming the field.
    let err = server
        .ingest()
        .await
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(pb::Relationship {
                id: "kindless".into(),
                kind: 0,
                created_at: None,
                attributes: HashMap::new(),
            }),
            replace_attributes: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("relationship.kind"),
        "{}",
        err.message()
    );
}

/// Defect 8: reads without a model.
#[tokio::test]
async fn a_relationship_reads_back_before_any_model_exists() {
    let server = TestServer::start(None);
    let mut ingest = server.ingest().await;
    ingest
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(pb::Relationship {
                id: "early".into(),
                kind: pb::RelationshipKind::Customer as i32,
                created_at: Some(ts(today() - 100 * DAY)),
                attributes: HashMap::new(),
            }),
            replace_attributes: false,
        })
        .await
        .unwrap();
    ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![pb::Event {
                relationship_id: "early".into(),
                body: Some(pb::event::Body::Purchase(pb::Purchase {
                    at: Some(ts(today() - 10 * DAY)),
                    amount: 80.0,
                    product_ids: vec!["p".into()],
                    quantity: 2,
                })),
            }],
        })
        .await
        .unwrap();
    let view = ingest
        .get_relationship(pb::GetRelationshipRequest {
            id: "early".into(),
            as_of: None,
        })
        .await
        .expect("GetRelationship needs no model")
        .into_inner();
    assert_eq!(view.event_count, 1);
    assert_eq!(view.owned_product_ids, vec!["p".to_string()]);
    let feature = |name: &str| {
        view.features
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    };
    assert_eq!(feature("spend_total"), Some(80.0));
    assert!((feature("recency_days").unwrap() - 10.0).abs() < 1.0);
    let err = server
        .scoring()
        .await
        .score(pb::ScoreRequest {
            relationship_id: "early".into(),
            as_of: None,
            max_reasons: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

/// Answers as of now are kept for the second they were computed in
/// (`engine::memo`); a write within that second must still be seen at once.
#[tokio::test]
async fn a_write_is_seen_at_once_by_score_segment_and_recommend() {
    let server = shared();
    server.wait_serving().await;
    upsert(
        server,
        pb::Relationship {
            id: "memo-1".into(),
            kind: pb::RelationshipKind::Customer as i32,
            created_at: Some(ts(today() - 400 * DAY)),
            attributes: HashMap::new(),
        },
    )
    .await;
    let buy = |at: i64, amount: f64| pb::RecordEventsRequest {
        events: vec![pb::Event {
            relationship_id: "memo-1".into(),
            body: Some(pb::event::Body::Purchase(pb::Purchase {
                at: Some(ts(at)),
                amount,
                product_ids: vec!["toner".into()],
                quantity: 1,
            })),
        }],
    };
    let mut ingest = server.ingest().await;
    ingest
        .record_events(buy(today() - 200 * DAY, 20.0))
        .await
        .unwrap();
    // Asked twice, so that the second answer of each comes from the memo.
    for _ in 0..2 {
        let s = server.score_now("memo-1", 3).await;
        assert!(s.churned, "200 days without a purchase: {s:?}");
        assert_eq!(server.segment_now("memo-1").await.rfm.unwrap().frequency, 1);
        server.recommend_now("memo-1", 10).await;
    }
    ingest
        .record_events(buy(today() - DAY, 500.0))
        .await
        .unwrap();
    let s = server.score_now("memo-1", 3).await;
    assert!(!s.churned, "bought yesterday: {s:?}");
    assert!(s.churn_probability < 1.0, "{s:?}");
    assert_eq!(server.segment_now("memo-1").await.rfm.unwrap().frequency, 2);
    let actions = server.recommend_now("memo-1", 10).await.actions;
    assert!(
        actions
            .iter()
            .all(|a| a.r#type != pb::ActionType::WinBack as i32),
        "not lapsed any more: {actions:?}"
    );
    // A different reason count is its own answer.
    let five = server.score_now("memo-1", 5).await.reasons.len();
    let one = server.score_now("memo-1", 1).await.reasons.len();
    assert!(
        one == 1 && five > 1,
        "1 reason asked: {one}, 5 asked: {five}"
    );
}
