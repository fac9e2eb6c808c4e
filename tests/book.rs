//! The book at a glance against the real server: queries that equal Score
//! and Segment, pages that hold across writes, summaries that add up,
//! campaign plans within their limits, and erasure that leaves no trace.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    demo_config, demo_ids, open_store, shared, today, ts, TestServer, ADMIN_TOKEN, DAY, READ_TOKEN,
    TEST_DEMO_SIZE,
};
use rapport::api::client::Conn;
use rapport::api::pb;
use rapport::api::pb::book_client::BookClient;
use tonic::Code;

async fn book(server: &TestServer) -> BookClient<Conn> {
    BookClient::new(server.conn(READ_TOKEN).await)
}

async fn active_version(server: &TestServer) -> u64 {
    server
        .models()
        .await
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .active_version
}

/// Waits until the index answers for `version`, complete and not rebuilding.
async fn wait_index(server: &TestServer, version: u64) -> pb::IndexStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut client = book(server).await;
    loop {
        let answer = client
            .query_relationships(pb::QueryRelationshipsRequest {
                page_size: 1,
                ..Default::default()
            })
            .await;
        match answer {
            Ok(reply) => {
                let index = reply.into_inner().index.unwrap();
                if index.model_version == version && !index.rebuilding {
                    return index;
                }
            }
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the index did not reach version {version}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(server: &TestServer) -> u64 {
    server.wait_serving().await;
    let version = active_version(server).await;
    wait_index(server, version).await;
    version
}

/// Every row of a query, page by page.
async fn all_rows(
    server: &TestServer,
    filter: Option<pb::BookFilter>,
    order_by: pb::BookOrder,
    page_size: u32,
) -> Vec<pb::BookRow> {
    let mut client = book(server).await;
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .query_relationships(pb::QueryRelationshipsRequest {
                filter: filter.clone(),
                order_by: order_by as i32,
                ascending: false,
                page_size,
                page_token,
            })
            .await
            .expect("query")
            .into_inner();
        rows.extend(page.rows);
        if page.next_page_token.is_empty() {
            return rows;
        }
        page_token = page.next_page_token;
    }
}

fn ids(rows: &[pb::BookRow]) -> Vec<String> {
    rows.iter().map(|r| r.relationship_id.clone()).collect()
}

async fn scores_at(
    server: &TestServer,
    rows: &[pb::BookRow],
) -> HashMap<String, pb::RelationshipScore> {
    let mut by_time: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in rows {
        by_time
            .entry(r.as_of.unwrap().seconds)
            .or_default()
            .push(r.relationship_id.clone());
    }
    let mut scoring = server.scoring().await;
    let mut out = HashMap::new();
    for (at, ids) in by_time {
        for chunk in ids.chunks(1_000) {
            let scores = scoring
                .score_batch(pb::ScoreBatchRequest {
                    relationship_ids: chunk.to_vec(),
                    as_of: Some(ts(at)),
                    max_reasons: 0,
                    skip_unknown: false,
                })
                .await
                .expect("score batch")
                .into_inner()
                .scores;
            out.extend(scores.into_iter().map(|s| (s.relationship_id.clone(), s)));
        }
    }
    out
}

/// Checks each row against Score and Segment at the row's own time.
async fn assert_rows_equal_score_and_segment(server: &TestServer, rows: &[pb::BookRow]) {
    let scores = scores_at(server, rows).await;
    let mut scoring = server.scoring().await;
    for r in rows {
        let s = &scores[&r.relationship_id];
        let id = &r.relationship_id;
        assert_eq!(r.churn_probability, s.churn_probability, "{id}: churn");
        assert_eq!(r.churn_horizon_days, s.churn_horizon_days, "{id}");
        assert_eq!(r.expected_days_to_churn, s.expected_days_to_churn, "{id}");
        assert_eq!(r.expected_value, s.expected_value, "{id}: value");
        assert_eq!(r.value_horizon_days, s.value_horizon_days, "{id}");
        assert_eq!(r.value_at_risk, s.value_at_risk, "{id}: value at risk");
        assert_eq!(r.health_score, s.health_score, "{id}: health");
        assert_eq!(r.health, s.health, "{id}: health components");
        assert_eq!(r.churned, s.churned, "{id}: churned");
        assert_eq!(r.inactivity_days, s.inactivity_days, "{id}");
        assert_eq!(r.model_version, s.model_version, "{id}: version");
        assert_eq!(r.as_of, s.as_of, "{id}: as of");
        let g = scoring
            .segment(pb::SegmentRequest {
                relationship_id: id.clone(),
                as_of: r.as_of,
            })
            .await
            .expect("segment")
            .into_inner();
        assert_eq!(r.rfm_segment, g.rfm.unwrap().segment, "{id}: segment");
        assert_eq!(r.value_tier, g.value_tier.unwrap().name, "{id}: tier");
        assert_eq!(r.lifecycle_stage, g.lifecycle_stage, "{id}: stage");
        assert_eq!(r.cluster, g.cluster.map(|c| c.id), "{id}: cluster");
        assert_eq!(r.model_version, g.model_version, "{id}");
    }
}

#[tokio::test]
async fn query_rows_equal_what_score_and_segment_answer_and_filters_select_them() {
    let server = shared();
    ready(server).await;
    let rows = all_rows(server, None, pb::BookOrder::ValueAtRisk, 700).await;
    assert_eq!(rows.len(), TEST_DEMO_SIZE, "every relationship once");
    assert_eq!(
        ids(&rows).into_iter().collect::<HashSet<_>>().len(),
        rows.len()
    );
    for pair in rows.windows(2) {
        assert!(
            pair[0].value_at_risk > pair[1].value_at_risk
                || (pair[0].value_at_risk == pair[1].value_at_risk
                    && pair[0].relationship_id < pair[1].relationship_id),
            "ordered by value at risk, then id"
        );
    }
    assert_rows_equal_score_and_segment(server, &rows).await;

    // Two filters (the commonest segment and stage together) select exactly
    // the rows of the full query that have both, in the same order.
    let mut pairs: HashMap<(String, i32), usize> = HashMap::new();
    for r in &rows {
        *pairs
            .entry((r.rfm_segment.clone(), r.lifecycle_stage))
            .or_default() += 1;
    }
    let ((segment, stage), n) = pairs
        .into_iter()
        .max_by_key(|(k, n)| (*n, k.clone()))
        .unwrap();
    let filter = pb::BookFilter {
        rfm_segments: vec![segment.clone()],
        stages: vec![stage],
        ..Default::default()
    };
    let filtered = all_rows(server, Some(filter), pb::BookOrder::ValueAtRisk, 100).await;
    let expected: Vec<String> = rows
        .iter()
        .filter(|r| r.rfm_segment == segment && r.lifecycle_stage == stage)
        .map(|r| r.relationship_id.clone())
        .collect();
    assert_eq!(filtered.len(), n);
    assert_eq!(ids(&filtered), expected);

    let threshold = rows[rows.len() / 3]
        .value_at_risk
        .expect("the demo models value every relationship");
    let filter = pb::BookFilter {
        kinds: vec![pb::RelationshipKind::Customer as i32],
        min_value_at_risk: Some(threshold),
        min_churn_probability: Some(0.2),
        ..Default::default()
    };
    let filtered = all_rows(server, Some(filter), pb::BookOrder::Churn, 100).await;
    let mut expected: Vec<&pb::BookRow> = rows
        .iter()
        .filter(|r| {
            r.kind == pb::RelationshipKind::Customer as i32
                && r.value_at_risk.is_some_and(|v| v >= threshold)
                && r.churn_probability >= 0.2
        })
        .collect();
    expected.sort_by(|a, b| {
        b.churn_probability
            .total_cmp(&a.churn_probability)
            .then(a.relationship_id.cmp(&b.relationship_id))
    });
    assert!(!expected.is_empty());
    assert_eq!(
        ids(&filtered),
        expected
            .iter()
            .map(|r| r.relationship_id.clone())
            .collect::<Vec<_>>()
    );

    // An attribute filter: every row it returns has the value, and a
    // relationship with another value is not among them.
    let ingest = server.ingest().await;
    let region_of = |id: String| {
        let mut ingest = ingest.clone();
        async move {
            let r = ingest
                .get_relationship(pb::GetRelationshipRequest { id, as_of: None })
                .await
                .unwrap()
                .into_inner()
                .relationship
                .unwrap();
            r.attributes["region"].value.clone().unwrap()
        }
    };
    let first = region_of(rows[0].relationship_id.clone()).await;
    let filter = pb::BookFilter {
        attributes: vec![pb::AttributeEquals {
            name: "region".into(),
            value: Some(pb::AttributeValue {
                value: Some(first.clone()),
            }),
        }],
        ..Default::default()
    };
    let filtered = all_rows(server, Some(filter), pb::BookOrder::ValueAtRisk, 1_000).await;
    assert!(filtered.len() > 1 && filtered.len() < rows.len());
    let chosen: HashSet<String> = ids(&filtered).into_iter().collect();
    for r in filtered.iter().take(50) {
        assert_eq!(region_of(r.relationship_id.clone()).await, first);
    }
    let mut other_seen = false;
    for r in rows.iter().take(200) {
        if region_of(r.relationship_id.clone()).await != first {
            assert!(!chosen.contains(&r.relationship_id));
            other_seen = true;
        }
    }
    assert!(other_seen);

    let bad = book(server)
        .await
        .query_relationships(pb::QueryRelationshipsRequest {
            page_size: 10_001,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("page_size"), "{}", bad.message());
}

#[tokio::test]
async fn pages_return_every_matching_row_exactly_once_across_a_concurrent_ingest() {
    let server = TestServer::start(Some(demo_config()));
    ready(&server).await;
    let customers: HashSet<String> = demo_ids("c-", usize::MAX).into_iter().collect();
    let filter = Some(pb::BookFilter {
        kinds: vec![pb::RelationshipKind::Customer as i32],
        ..Default::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let mut ingest = server.ingest().await;
        let ids: Vec<String> = customers.iter().cloned().collect();
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        tokio::spawn(async move {
            let mut round = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let events = ids
                    .iter()
                    .skip(round * 97 % ids.len())
                    .take(200)
                    .map(|id| pb::Event {
                        relationship_id: id.clone(),
                        body: Some(pb::event::Body::Purchase(pb::Purchase {
                            at: Some(ts(today() - DAY + round as i64)),
                            amount: 5_000.0,
                            product_ids: vec![],
                            quantity: 1,
                        })),
                    })
                    .collect();
                ingest
                    .record_events(pb::RecordEventsRequest { events })
                    .await
                    .expect("record");
                ingest
                    .upsert_relationship(pb::UpsertRelationshipRequest {
                        relationship: Some(pb::Relationship {
                            id: format!("c-new-{round}"),
                            kind: pb::RelationshipKind::Customer as i32,
                            created_at: Some(ts(today() - 10 * DAY)),
                            attributes: HashMap::new(),
                        }),
                        replace_attributes: false,
                    })
                    .await
                    .expect("upsert");
                written.fetch_add(1, Ordering::SeqCst);
                round += 1;
            }
        })
    };
    let mut client = book(&server).await;
    let mut rows: Vec<pb::BookRow> = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .query_relationships(pb::QueryRelationshipsRequest {
                filter: filter.clone(),
                order_by: pb::BookOrder::ValueAtRisk as i32,
                ascending: false,
                page_size: 40,
                page_token,
            })
            .await
            .expect("page")
            .into_inner();
        assert_eq!(
            page.total_matches as usize,
            customers.len(),
            "as of the first page"
        );
        rows.extend(page.rows);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        // Let writes land between pages.
        let before = written.load(Ordering::SeqCst);
        while written.load(Ordering::SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(pages > 20 && written.load(Ordering::SeqCst) >= pages - 1);
    let seen: Vec<String> = ids(&rows);
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    assert_eq!(
        unique, customers,
        "every matching row, and only those of the first page's book"
    );
    for pair in rows.windows(2) {
        assert!(
            pair[0].value_at_risk >= pair[1].value_at_risk,
            "one order throughout"
        );
    }
    // The writes reached the index: a new query sees rows recomputed after them.
    let now_rows = all_rows(&server, filter, pb::BookOrder::ValueAtRisk, 10_000).await;
    assert!(
        now_rows.len() > customers.len(),
        "the new customers are in a new query"
    );
    let first_as_of = rows.iter().map(|r| r.as_of.unwrap().seconds).max().unwrap();
    assert!(now_rows
        .iter()
        .any(|r| r.as_of.unwrap().seconds > first_as_of));
    let written_now: Vec<pb::BookRow> = now_rows
        .into_iter()
        .filter(|r| {
            r.relationship_id.starts_with("c-new-") || r.as_of.unwrap().seconds > first_as_of
        })
        .take(300)
        .collect();
    assert_rows_equal_score_and_segment(&server, &written_now).await;
}

fn not_found<T: std::fmt::Debug>(answer: Result<T, tonic::Status>, what: &str) {
    let status = answer.expect_err(what);
    assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}");
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn a_summary_adds_up_to_the_rows_of_a_full_query() {
    let server = shared();
    ready(server).await;
    for filter in [
        None,
        Some(pb::BookFilter {
            kinds: vec![
                pb::RelationshipKind::Account as i32,
                pb::RelationshipKind::Customer as i32,
            ],
            min_churn_probability: Some(0.3),
            ..Default::default()
        }),
    ] {
        let rows = all_rows(server, filter.clone(), pb::BookOrder::Value, 1_000).await;
        let summary = book(server)
            .await
            .summarize_book(pb::SummarizeBookRequest {
                filter: filter.clone(),
                compare_to: pb::SummaryBaseline::Unspecified as i32,
            })
            .await
            .unwrap()
            .into_inner();
        let totals = summary.totals.unwrap();
        assert_eq!(totals.relationships as usize, rows.len());
        assert!(close(
            totals.expected_value,
            rows.iter().filter_map(|r| r.expected_value).sum()
        ));
        assert!(close(
            totals.value_at_risk,
            rows.iter().filter_map(|r| r.value_at_risk).sum()
        ));
        let mean = rows.iter().map(|r| r.churn_probability).sum::<f64>() / rows.len() as f64;
        assert!(close(totals.mean_churn_probability, mean));
        let stage_name = |s: i32| {
            pb::LifecycleStage::try_from(s)
                .unwrap()
                .as_str_name()
                .trim_start_matches("LIFECYCLE_STAGE_")
                .to_ascii_lowercase()
        };
        for (groups, key) in [
            (
                &summary.by_segment,
                Box::new(|r: &pb::BookRow| r.rfm_segment.clone())
                    as Box<dyn Fn(&pb::BookRow) -> String>,
            ),
            (
                &summary.by_stage,
                Box::new(move |r: &pb::BookRow| stage_name(r.lifecycle_stage)),
            ),
            (
                &summary.by_tier,
                Box::new(|r: &pb::BookRow| r.value_tier.clone()),
            ),
        ] {
            let mut expected: BTreeMap<(i32, String), (u64, f64, f64)> = BTreeMap::new();
            for r in &rows {
                let e = expected.entry((r.kind, key(r))).or_default();
                e.0 += 1;
                e.1 += r.expected_value.unwrap_or(0.0);
                e.2 += r.value_at_risk.unwrap_or(0.0);
            }
            assert_eq!(groups.len(), expected.len());
            for g in groups {
                let t = g.totals.as_ref().unwrap();
                let e = expected[&(g.kind, g.name.clone())];
                assert_eq!(t.relationships, e.0, "{} {}", g.kind, g.name);
                assert!(close(t.expected_value, e.1) && close(t.value_at_risk, e.2));
                assert!(g.change.is_none(), "no baseline asked for");
            }
        }
    }
    // Against the previous summary with the same filter: nothing changed.
    let mut client = book(server).await;
    let filter = Some(pb::BookFilter {
        kinds: vec![pb::RelationshipKind::Supplier as i32],
        ..Default::default()
    });
    let ask = |compare_to: pb::SummaryBaseline| pb::SummarizeBookRequest {
        filter: filter.clone(),
        compare_to: compare_to as i32,
    };
    client
        .summarize_book(ask(pb::SummaryBaseline::Unspecified))
        .await
        .unwrap();
    let again = client
        .summarize_book(ask(pb::SummaryBaseline::PreviousSummary))
        .await
        .unwrap()
        .into_inner();
    let change = again.change.unwrap();
    assert_eq!(change.relationships, 0);
    assert_eq!(change.value_at_risk, 0.0);
    assert!(again.baseline_taken_at.is_some());
    assert!(again
        .by_segment
        .iter()
        .all(|g| g.change.unwrap().relationships == 0));
    let refused = client
        .summarize_book(ask(pb::SummaryBaseline::PreviousModelVersion))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

async fn plan(
    server: &TestServer,
    request: pb::PlanCampaignRequest,
) -> (pb::CampaignTotals, Vec<pb::CampaignRow>) {
    let mut stream = book(server)
        .await
        .plan_campaign(request)
        .await
        .expect("plan")
        .into_inner();
    let first = stream.message().await.unwrap().expect("a first message");
    let totals = first.totals.expect("totals first");
    let mut rows = first.rows;
    while let Some(m) = stream.message().await.unwrap() {
        assert!(m.totals.is_none() && m.rows.len() <= 1_000);
        rows.extend(m.rows);
    }
    (totals, rows)
}

async fn recommendations(
    server: &TestServer,
    ids: &[String],
    as_of: i64,
) -> HashMap<String, Vec<pb::Action>> {
    let mut scoring = server.scoring().await;
    let mut out = HashMap::new();
    for chunk in ids.chunks(1_000) {
        let answer = scoring
            .recommend_batch(pb::RecommendBatchRequest {
                relationship_ids: chunk.to_vec(),
                as_of: Some(ts(as_of)),
                max_actions: 50,
                skip_unknown: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for r in answer.recommendations {
            out.insert(r.relationship_id.clone(), r.actions);
        }
    }
    out
}

#[tokio::test]
async fn a_plan_keeps_to_its_limits_skips_opt_outs_and_beats_the_simple_greedy_plan() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Some(demo_config()));
    ready(&server).await;
    let everyone = all_rows(&server, None, pb::BookOrder::ValueAtRisk, 10_000).await;
    // The most valuable at risk opt out (they would be planned first), and
    // some say "no" (they stay in).
    let mut ingest = server.ingest().await;
    let mut opted_out = HashSet::new();
    for (i, r) in everyone.iter().take(60).enumerate() {
        let mut relationship = ingest
            .get_relationship(pb::GetRelationshipRequest {
                id: r.relationship_id.clone(),
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner()
            .relationship
            .unwrap();
        let value = if i % 4 == 3 { "no" } else { "yes" };
        relationship.attributes.insert(
            "do_not_contact".into(),
            pb::AttributeValue {
                value: Some(pb::attribute_value::Value::Text(value.into())),
            },
        );
        if value == "yes" {
            opted_out.insert(r.relationship_id.clone());
        }
        ingest
            .upsert_relationship(pb::UpsertRelationshipRequest {
                relationship: Some(relationship),
                replace_attributes: false,
            })
            .await
            .unwrap();
    }
    let as_of = today() - 3_600;
    let (budget, cap) = (400.0, 150u64);
    let request = pb::PlanCampaignRequest {
        budget,
        max_contacts: cap,
        action_types: vec![],
        opt_out_attribute: "do_not_contact".into(),
        filter: None,
        as_of: Some(ts(as_of)),
    };
    let (totals, rows) = plan(&server, request.clone()).await;
    assert!(
        totals.cost <= budget,
        "cost {} over the budget",
        totals.cost
    );
    assert!(totals.contacts <= cap && rows.len() as u64 == totals.contacts);
    assert_eq!(totals.considered as usize, everyone.len());
    assert_eq!(totals.opted_out as usize, opted_out.len());
    let planned: Vec<String> = rows.iter().map(|r| r.relationship_id.clone()).collect();
    assert_eq!(
        planned.iter().collect::<HashSet<_>>().len(),
        planned.len(),
        "one action each"
    );
    assert!(
        planned.iter().all(|id| !opted_out.contains(id)),
        "no opted-out relationship"
    );
    let sum_cost: f64 = rows.iter().map(|r| r.action.as_ref().unwrap().cost).sum();
    let sum_net: f64 = rows
        .iter()
        .map(|r| r.action.as_ref().unwrap().expected_net_value)
        .sum();
    assert!(close(sum_cost, totals.cost) && close(sum_net, totals.expected_net_value));
    assert!(close(totals.expected_gross_value, sum_net + sum_cost));
    assert!(totals.expected_net_value <= totals.upper_bound + 1e-9);

    // Each planned action is one Recommend proposes for it, and the simple
    // greedy plan, computed here from Recommend, has no more net value.
    let candidates: Vec<String> = ids(&everyone)
        .into_iter()
        .filter(|id| !opted_out.contains(id))
        .collect();
    let proposed = recommendations(&server, &candidates, as_of).await;
    for r in &rows {
        let a = r.action.as_ref().unwrap();
        assert!(
            proposed[&r.relationship_id].iter().any(|p| p == a),
            "{}: {a:?} is not one of Recommend's actions",
            r.relationship_id
        );
        assert!(!r.plan_reason.is_empty() && !a.reason.is_empty());
    }
    let mut best: Vec<(f64, f64, &String)> =
        candidates
            .iter()
            .filter_map(|id| {
                let a = proposed[id].first()?;
                (a.r#type != pb::ActionType::NoAction as i32 && a.expected_net_value > 0.0)
                    .then_some((a.expected_net_value, a.cost, id))
            })
            .collect();
    best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(b.2)));
    let (mut spent, mut contacts, mut greedy) = (0.0, 0u64, 0.0);
    for (net, cost, _) in best {
        if contacts == cap {
            break;
        }
        if spent + cost <= budget {
            spent += cost;
            contacts += 1;
            greedy += net;
        }
    }
    assert!(
        close(totals.greedy_net_value, greedy),
        "{} against {greedy}",
        totals.greedy_net_value
    );
    assert!(
        totals.expected_net_value >= greedy,
        "the plan {} is below greedy {greedy}",
        totals.expected_net_value
    );
    eprintln!(
        "plan: net {:.2} (greedy {greedy:.2}, bound {:.2}) for cost {:.2}, {} contacts",
        totals.expected_net_value, totals.upper_bound, totals.cost, totals.contacts
    );

    let (again_totals, again_rows) = plan(&server, request.clone()).await;
    assert_eq!(
        (again_totals, again_rows.clone()),
        (totals.clone(), rows.clone()),
        "deterministic"
    );

    let (_, retain_only) = plan(
        &server,
        pb::PlanCampaignRequest {
            action_types: vec![pb::ActionType::Retain as i32],
            ..request.clone()
        },
    )
    .await;
    assert!(!retain_only.is_empty());
    assert!(retain_only
        .iter()
        .all(|r| r.action.as_ref().unwrap().r#type == pb::ActionType::Retain as i32));

    // `rapport campaign` through the server and offline writes the same plan.
    let args = rapport::cli::CampaignArgs {
        budget: Some(budget),
        max_contacts: Some(cap),
        actions: vec![],
        opt_out: Some("do_not_contact".into()),
        kinds: vec![],
        segments: vec![],
        stages: vec![],
        tiers: vec![],
        as_of: Some(as_of.to_string()),
    };
    let through_server = dir.path().join("through-server.csv");
    rapport::cli::campaign(
        &sled_in(dir.path()),
        &through_server,
        &args,
        Some(&server.remote(ADMIN_TOKEN)),
    )
    .await
    .unwrap();
    server.stop();
    let offline = dir.path().join("offline.csv");
    rapport::cli::campaign(&sled_in(dir.path()), &offline, &args, None)
        .await
        .unwrap();
    let csv_ids = |p: &std::path::Path| -> Vec<String> {
        csv::Reader::from_path(p)
            .unwrap()
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect()
    };
    assert_eq!(csv_ids(&through_server), planned);
    assert_eq!(csv_ids(&offline), planned);
    assert_eq!(
        std::fs::read(&through_server).unwrap(),
        std::fs::read(&offline).unwrap()
    );
}

#[tokio::test]
async fn batches_skip_unknown_ids_only_when_asked() {
    let server = shared();
    ready(server).await;
    let known = demo_ids("a-", 2);
    let ids = vec![
        known[0].clone(),
        "ghost-1".into(),
        known[1].clone(),
        "ghost-2".into(),
    ];
    let mut scoring = server.scoring().await;
    let strict = scoring
        .score_batch(pb::ScoreBatchRequest {
            relationship_ids: ids.clone(),
            as_of: None,
            max_reasons: 0,
            skip_unknown: false,
        })
        .await
        .unwrap_err();
    assert_eq!(strict.code(), Code::NotFound);
    assert!(strict.message().contains("ghost-1"));
    let lenient = scoring
        .score_batch(pb::ScoreBatchRequest {
            relationship_ids: ids.clone(),
            as_of: None,
            max_reasons: 0,
            skip_unknown: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        lenient
            .scores
            .iter()
            .map(|s| s.relationship_id.clone())
            .collect::<Vec<_>>(),
        known
    );
    assert_eq!(lenient.unknown_ids, ["ghost-1", "ghost-2"]);

    let batch = |skip_unknown| pb::RecommendBatchRequest {
        relationship_ids: ids.clone(),
        as_of: Some(ts(today() - DAY)),
        max_actions: 3,
        exclude_product_ids: vec![],
        exclude_action_types: vec![pb::ActionType::Loyalty as i32],
        skip_unknown,
    };
    let strict = scoring.recommend_batch(batch(false)).await.unwrap_err();
    assert_eq!(strict.code(), Code::NotFound);
    let lenient = scoring
        .recommend_batch(batch(true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lenient.unknown_ids, ["ghost-1", "ghost-2"]);
    for (answer, id) in lenient.recommendations.iter().zip(&known) {
        let single = scoring
            .recommend(pb::RecommendRequest {
                relationship_id: id.clone(),
                as_of: Some(ts(today() - DAY)),
                max_actions: 3,
                exclude_product_ids: vec![],
                exclude_action_types: vec![pb::ActionType::Loyalty as i32],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer, &single, "a batch answers as Recommend does");
    }
}

#[tokio::test]
async fn the_index_follows_writes_promotions_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Some(demo_config()));
    let v1 = ready(&server).await;
    // A new relationship with purchases is in the next query, as Score answers it.
    let mut ingest = server.ingest().await;
    ingest
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(pb::Relationship {
                id: "fresh-1".into(),
                kind: pb::RelationshipKind::Account as i32,
                created_at: Some(ts(today() - 400 * DAY)),
                attributes: HashMap::new(),
            }),
            replace_attributes: false,
        })
        .await
        .unwrap();
    let events = (0..12)
        .map(|i| pb::Event {
            relationship_id: "fresh-1".into(),
            body: Some(pb::event::Body::Purchase(pb::Purchase {
                at: Some(ts(today() - (400 - 30 * i) * DAY)),
                amount: 900.0,
                product_ids: vec![],
                quantity: 1,
            })),
        })
        .collect();
    ingest
        .record_events(pb::RecordEventsRequest { events })
        .await
        .unwrap();
    let rows = all_rows(&server, None, pb::BookOrder::ValueAtRisk, 10_000).await;
    assert_eq!(rows.len(), TEST_DEMO_SIZE + 1);
    let fresh: Vec<pb::BookRow> = rows
        .iter()
        .filter(|r| r.relationship_id == "fresh-1")
        .cloned()
        .collect();
    assert_eq!(fresh.len(), 1);
    // The purchase was at midnight 70 days ago and the index answers as of
    // now: 70 and a fraction of a day, whatever the time of day.
    assert_eq!(
        fresh[0].days_since_last_purchase.map(f64::floor),
        Some(70.0)
    );
    assert_rows_equal_score_and_segment(&server, &fresh).await;

    // A promotion: the index is rebuilt for the new version.
    let v2 = server
        .models()
        .await
        .train_model(pb::TrainModelRequest {
            spec_toml: String::new(),
            activate: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .version;
    assert!(v2 > v1);
    wait_index(&server, v2).await;
    let rows = all_rows(&server, None, pb::BookOrder::ValueAtRisk, 10_000).await;
    assert!(
        rows.iter().all(|r| r.model_version == v2),
        "every row from the new version"
    );
    assert_rows_equal_score_and_segment(&server, &rows[..200]).await;
    let before: HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.relationship_id.clone(), r.as_of.unwrap().seconds))
        .collect();
    let day = today();
    server.stop();

    // A restart on the same day reuses every row the store kept.
    let server = TestServer::start_in(dir.path(), Some(demo_config()));
    server.wait_serving().await;
    wait_index(&server, v2).await;
    let after = all_rows(&server, None, pb::BookOrder::ValueAtRisk, 10_000).await;
    assert_eq!(after.len(), before.len());
    if today() == day {
        for r in &after {
            assert_eq!(
                before[&r.relationship_id],
                r.as_of.unwrap().seconds,
                "{}: recomputed after a restart",
                r.relationship_id
            );
        }
    }

    // A rollback: the summary against the previous model version compares
    // with the whole book as version v2's index last saw it.
    server
        .models()
        .await
        .rollback_model(pb::RollbackModelRequest::default())
        .await
        .unwrap();
    wait_index(&server, v1).await;
    let summary = book(&server)
        .await
        .summarize_book(pb::SummarizeBookRequest {
            filter: None,
            compare_to: pb::SummaryBaseline::PreviousModelVersion as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.baseline_model_version, v2);
    assert_eq!(
        summary.change.unwrap().relationships,
        0,
        "the same book, another model"
    );
}

#[tokio::test]
async fn an_erased_relationship_is_gone_from_every_answer_export_and_training_even_after_a_restart()
{
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Some(demo_config()));
    let version = ready(&server).await;
    let rows = all_rows(&server, None, pb::BookOrder::ValueAtRisk, 10_000).await;
    let victim = rows[0].relationship_id.clone();
    let other = rows[1].relationship_id.clone();
    let mut ingest = server.ingest_admin().await;
    let mut scoring = server.scoring().await;
    let mut client = book(&server).await;
    let event_count = ingest
        .get_relationship(pb::GetRelationshipRequest {
            id: victim.clone(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner()
        .event_count;
    // A query whose later pages hold the victim (ascending: it is last).
    let first = client
        .query_relationships(pb::QueryRelationshipsRequest {
            page_size: 1_000,
            ascending: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let fingerprint = |m: &pb::ListModelsResponse| {
        m.versions
            .iter()
            .find(|v| v.active)
            .unwrap()
            .data_fingerprint
            .clone()
    };
    let trained_on = fingerprint(
        &server
            .models()
            .await
            .list_models(pb::ListModelsRequest {})
            .await
            .unwrap()
            .into_inner(),
    );

    let erased = ingest
        .delete_relationship(pb::DeleteRelationshipRequest { id: victim.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.events_removed, event_count);
    assert!(event_count > 0);

    let id = || victim.clone();
    not_found(
        scoring
            .score(pb::ScoreRequest {
                relationship_id: id(),
                as_of: None,
                max_reasons: 0,
            })
            .await,
        "Score",
    );
    not_found(
        scoring
            .segment(pb::SegmentRequest {
                relationship_id: id(),
                as_of: None,
            })
            .await,
        "Segment",
    );
    not_found(
        scoring
            .recommend(pb::RecommendRequest {
                relationship_id: id(),
                ..Default::default()
            })
            .await,
        "Recommend",
    );
    not_found(
        ingest
            .get_relationship(pb::GetRelationshipRequest {
                id: id(),
                as_of: None,
            })
            .await,
        "GetRelationship",
    );
    not_found(
        scoring
            .score_batch(pb::ScoreBatchRequest {
                relationship_ids: vec![other.clone(), id()],
                as_of: None,
                max_reasons: 0,
                skip_unknown: false,
            })
            .await,
        "ScoreBatch",
    );
    not_found(
        ingest
            .record_events(pb::RecordEventsRequest {
                events: vec![pb::Event {
                    relationship_id: id(),
                    body: Some(pb::event::Body::Purchase(pb::Purchase {
                        at: Some(ts(today())),
                        amount: 1.0,
                        product_ids: vec![],
                        quantity: 1,
                    })),
                }],
            })
            .await,
        "RecordEvents",
    );
    not_found(
        ingest
            .delete_relationship(pb::DeleteRelationshipRequest { id: id() })
            .await,
        "a second DeleteRelationship",
    );
    let lenient = scoring
        .score_batch(pb::ScoreBatchRequest {
            relationship_ids: vec![id(), other.clone()],
            as_of: None,
            max_reasons: 0,
            skip_unknown: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lenient.unknown_ids, std::slice::from_ref(&victim));

    // The query started before the erasure: its later pages skip the victim.
    let mut paged = first.rows;
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = client
            .query_relationships(pb::QueryRelationshipsRequest {
                page_size: 1_000,
                ascending: true,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.rows);
        token = page.next_page_token;
    }
    assert_eq!(paged.len(), rows.len() - 1);
    assert!(paged.iter().all(|r| r.relationship_id != victim));
    let gone = |rows: &[pb::BookRow]| rows.iter().all(|r| r.relationship_id != victim);
    let now_rows = all_rows(&server, None, pb::BookOrder::ValueAtRisk, 10_000).await;
    assert!(
        gone(&now_rows) && now_rows.len() == rows.len() - 1,
        "not in a query"
    );
    let summary = client
        .summarize_book(pb::SummarizeBookRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        summary.totals.unwrap().relationships as usize,
        rows.len() - 1,
        "not in a summary"
    );
    let (_, planned) = plan(&server, pb::PlanCampaignRequest::default()).await;
    assert!(
        !planned.is_empty() && planned.iter().all(|r| r.relationship_id != victim),
        "not in a plan"
    );
    let export = dir.path().join("scores-server.csv");
    rapport::cli::score(
        &sled_in(dir.path()),
        &export,
        None,
        None,
        Some(&server.remote(ADMIN_TOKEN)),
        false,
    )
    .await
    .unwrap();
    let exported = |p: &std::path::Path| -> Vec<String> {
        csv::Reader::from_path(p)
            .unwrap()
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect()
    };
    let listed = exported(&export);
    assert_eq!(listed.len(), rows.len() - 1);
    assert!(
        !listed.contains(&victim),
        "not in score --out through the server"
    );

    // The next training does not see it.
    let retrained = server
        .models()
        .await
        .train_model(pb::TrainModelRequest {
            spec_toml: String::new(),
            activate: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let count = |fp: &str, what: &str| -> u64 {
        fp.split(':')
            .find_map(|p| p.strip_suffix(what))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {what} in {fp}"))
    };
    assert_eq!(
        count(&retrained.data_fingerprint, "relationships"),
        count(&trained_on, "relationships") - 1
    );
    assert_eq!(
        count(&retrained.data_fingerprint, "events"),
        count(&trained_on, "events") - event_count
    );
    server.stop();

    // Nothing of it in the store: record, events, fold, index entry, or what training reads.
    let store = open_store(dir.path());
    assert_eq!(store.relationship(&victim).unwrap(), None);
    assert!(store.events(&victim, None).unwrap().is_empty());
    assert!(store.aggregates(&victim).unwrap().is_none());
    let entries: Vec<String> = store.index_entries().map(|e| e.unwrap().0).collect();
    assert_eq!(entries.len(), rows.len() - 1);
    assert!(!entries.contains(&victim), "no index entry");
    let chunks = store.history_chunks(1_000);
    while let Some((_, histories)) = chunks.next_chunk().unwrap() {
        assert!(histories.iter().all(|(r, _)| r.id != victim));
    }
    drop(chunks);
    drop(store);
    let offline = dir.path().join("scores-offline.csv");
    rapport::cli::score(&sled_in(dir.path()), &offline, None, None, None, false)
        .await
        .unwrap();
    assert!(
        !exported(&offline).contains(&victim),
        "not in score --out offline"
    );

    // After a restart, still nowhere.
    let server = TestServer::start_in(dir.path(), Some(demo_config()));
    server.wait_serving().await;
    wait_index(&server, version).await;
    let status = server
        .scoring()
        .await
        .score(pb::ScoreRequest {
            relationship_id: id(),
            as_of: None,
            max_reasons: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let after = all_rows(&server, None, pb::BookOrder::ValueAtRisk, 10_000).await;
    assert!(gone(&after) && after.len() == rows.len() - 1);
}

/// The command line's store arguments for sled in `dir`.
fn sled_in(dir: &std::path::Path) -> rapport::cli::StoreArgs {
    rapport::cli::StoreArgs {
        data_dir: dir.to_path_buf(),
        cache_mb: None,
        redis: None,
    }
}

/// `rapport recommend --out` writes what Recommend answers, one row per
/// action in rank order, the same through a server and offline; an unknown
/// id is skipped, not fatal. Suppliers get no sales offer in the file either.
#[tokio::test]
async fn recommend_out_writes_what_recommend_answers_through_a_server_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Some(demo_config()));
    server.wait_serving().await;
    let mut ids = demo_ids("c-", 20);
    ids.extend(demo_ids("s-", 5));
    ids.extend(demo_ids("a-", 5));
    let id_file = dir.path().join("ids.txt");
    std::fs::write(&id_file, format!("{}\nnobody-here\n", ids.join("\n"))).unwrap();
    let as_of = today().to_string();
    let args = rapport::cli::RecommendArgs {
        ids: Some(&id_file),
        as_of: Some(&as_of),
        max_actions: 3,
        policy: None,
    };
    let through_server = dir.path().join("actions-server.csv");
    rapport::cli::recommend(
        &sled_in(dir.path()),
        &through_server,
        &args,
        Some(&server.remote(READ_TOKEN)),
    )
    .await
    .unwrap();
    let rows = common::csv_rows(&through_server);
    let mut scoring = server.scoring().await;
    let mut expected = 0;
    for id in &ids {
        let answer = scoring
            .recommend(pb::RecommendRequest {
                relationship_id: id.clone(),
                as_of: Some(ts(today())),
                max_actions: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mine: Vec<&BTreeMap<String, String>> = rows
            .iter()
            .filter(|r| &r["relationship_id"] == id)
            .collect();
        assert_eq!(mine.len(), answer.actions.len(), "{id}: {mine:?}");
        assert!(!answer.actions.is_empty(), "{id}: at least NO_ACTION");
        for (rank, (row, action)) in mine.iter().zip(&answer.actions).enumerate() {
            assert_eq!(row["rank"], (rank + 1).to_string());
            let name = pb::ActionType::try_from(action.r#type)
                .unwrap()
                .as_str_name()
                .trim_start_matches("ACTION_TYPE_")
                .to_ascii_lowercase()
                .replace('_', "-");
            assert_eq!(row["action"], name, "{id}");
            assert_eq!(row["product_id"], action.product_id);
            assert_eq!(
                row["expected_net_value"].parse::<f64>().unwrap(),
                action.expected_net_value
            );
            assert_eq!(row["model_version"], answer.model_version.to_string());
            if id.starts_with("s-") {
                assert!(
                    !["cross-sell", "up-sell", "win-back", "loyalty"].contains(&name.as_str()),
                    "a sales offer to supplier {id}: {name}"
                );
            }
        }
        expected += answer.actions.len();
    }
    assert_eq!(rows.len(), expected, "no rows for the unknown id");
    server.stop();

    let offline = dir.path().join("actions-offline.csv");
    rapport::cli::recommend(&sled_in(dir.path()), &offline, &args, None)
        .await
        .unwrap();
    assert_eq!(
        common::csv_rows(&offline),
        rows,
        "offline answers as the server does"
    );
    // The options are checked by their flag's name.
    let too_many = rapport::cli::RecommendArgs {
        max_actions: 51,
        ..args
    };
    let err = rapport::cli::recommend(&sled_in(dir.path()), &offline, &too_many, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--max-actions"), "{err}");
}
