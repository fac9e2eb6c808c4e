//! Every relationship kind scored for what it is, against the real server:
//! suppliers and partners are never offered a sale; suppliers get supply
//! risk, dependency and a Kraljic class that follow their deliveries.

mod common;

use common::{demo_ids, shared, today, ts, DAY};
use rapport::api::pb;

/// Actions done to a buyer: an offer, a programme or a rescue.
const BUYER_ACTIONS: [pb::ActionType; 5] = [
    pb::ActionType::CrossSell,
    pb::ActionType::UpSell,
    pb::ActionType::Loyalty,
    pb::ActionType::WinBack,
    pb::ActionType::Retain,
];

#[tokio::test]
async fn no_supplier_or_partner_in_the_demo_book_is_offered_a_sale() {
    let server = shared();
    server.wait_serving().await;
    let mut scoring = server.scoring().await;
    let ids: Vec<String> = demo_ids("s-", usize::MAX)
        .into_iter()
        .chain(demo_ids("p-", usize::MAX))
        .collect();
    assert!(
        ids.len() > 50,
        "the demo book has {} suppliers and partners",
        ids.len()
    );
    for id in &ids {
        let rec = scoring
            .recommend(pb::RecommendRequest {
                relationship_id: id.clone(),
                as_of: None,
                max_actions: 50,
                exclude_product_ids: vec![],
                exclude_action_types: vec![],
            })
            .await
            .expect("recommend")
            .into_inner();
        assert!(!rec.actions.is_empty(), "{id}");
        for a in &rec.actions {
            assert!(
                !BUYER_ACTIONS.iter().any(|t| *t as i32 == a.r#type),
                "{id} was offered {:?}: {}",
                pb::ActionType::try_from(a.r#type),
                a.reason
            );
            assert!(a.product_id.is_empty(), "{id}: product {}", a.product_id);
            assert!(!a.reason.is_empty(), "{id}");
        }
    }
    // Buyers still get their offers: the routing is by kind, not a blanket ban.
    let mut sales = 0;
    for id in demo_ids("c-", 60) {
        let rec = scoring
            .recommend(pb::RecommendRequest {
                relationship_id: id,
                as_of: None,
                max_actions: 10,
                exclude_product_ids: vec![],
                exclude_action_types: vec![],
            })
            .await
            .expect("recommend")
            .into_inner();
        sales += rec
            .actions
            .iter()
            .filter(|a| {
                a.r#type == pb::ActionType::CrossSell as i32
                    || a.r#type == pb::ActionType::UpSell as i32
            })
            .count();
    }
    assert!(
        sales > 0,
        "no customer among 60 got a cross-sell or up-sell"
    );
}

async fn new_supplier(server: &common::TestServer, id: &str, created_at: i64) {
    server
        .ingest()
        .await
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(pb::Relationship {
                id: id.into(),
                kind: pb::RelationshipKind::Supplier as i32,
                created_at: Some(ts(created_at)),
                attributes: Default::default(),
            }),
            replace_attributes: false,
        })
        .await
        .expect("upsert");
}

/// A supplier with a year of weekly deliveries in `category`.
async fn supplier(
    server: &common::TestServer,
    id: &str,
    category: &str,
    late: &dyn Fn(i64) -> i64,
) {
    let start = today() - 364 * DAY;
    new_supplier(server, id, start - DAY).await;
    // Weekly deliveries over the year, `late(week)` days after their promise.
    let events = (0..52)
        .map(|week| {
            let arrival = start + week * 7 * DAY;
            pb::Event {
                relationship_id: id.into(),
                body: Some(pb::event::Body::Delivery(pb::Delivery {
                    at: Some(ts(arrival)),
                    promised_at: Some(ts(arrival - late(week) * DAY)),
                    category: category.into(),
                    quantity_ordered: 1000.0,
                    quantity_received: 1000.0,
                    units_rejected: 0.0,
                    unit_price: 20.0,
                })),
            }
        })
        .collect();
    server
        .ingest()
        .await
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("record deliveries");
}

#[tokio::test]
async fn a_supplier_whose_deliveries_turned_late_scores_higher_supply_risk_than_a_steady_one() {
    let server = shared();
    server.wait_serving().await;
    // A category many demo suppliers sell us.
    supplier(server, "t-steady", "resin", &|_| 0).await;
    supplier(server, "t-turned", "resin", &|week| {
        if week >= 42 {
            9
        } else {
            0
        }
    })
    .await;
    let steady = server
        .score_now("t-steady", 5)
        .await
        .supplier
        .expect("a supplier view");
    let turned = server
        .score_now("t-turned", 5)
        .await
        .supplier
        .expect("a supplier view");
    let (s, t) = (
        steady.supply_risk.expect("52 deliveries are enough"),
        turned.supply_risk.expect("52 deliveries are enough"),
    );
    assert!(t > s, "turned {t} against steady {s}");
    assert!(turned.risk_rising && !steady.risk_rising);
    assert_eq!(turned.failures, 10);
    assert!(turned.breakdown.unwrap().delivery.unwrap() > 0.15);
    assert!(!turned.reasons.is_empty());
    assert!(
        turned.reasons[0].explanation.contains("supply risk"),
        "{}",
        turned.reasons[0].explanation
    );
    // The demo book's resin suppliers share the category: not single-sourced.
    assert_eq!(steady.category, "resin");
    assert!(!steady.single_sourced && steady.category_suppliers > 2);
    assert!(steady.spend_share.unwrap() < 1.0);

    // A short history is unknown, not low.
    let id = "t-new-supplier";
    new_supplier(server, id, today() - 30 * DAY).await;
    let fresh = server
        .score_now(id, 5)
        .await
        .supplier
        .expect("a supplier view");
    assert_eq!(fresh.supply_risk, None);
    assert!(
        fresh.unknown_reason.contains("deliveries"),
        "{}",
        fresh.unknown_reason
    );
    // Customers carry no supplier view.
    let customer = &demo_ids("c-", 1)[0];
    assert!(server.score_now(customer, 5).await.supplier.is_none());
}

#[tokio::test]
async fn a_single_sourced_category_is_full_dependency_and_a_breaking_sole_source_gets_a_second_one()
{
    let server = shared();
    server.wait_serving().await;
    let id = "t-sole-source";
    supplier(server, id, "t-only-here", &|week| {
        if week >= 40 {
            10
        } else {
            0
        }
    })
    .await;
    let s = server
        .score_now(id, 5)
        .await
        .supplier
        .expect("a supplier view");
    assert!(s.single_sourced);
    assert_eq!(s.spend_share, Some(1.0));
    assert_eq!(s.breakdown.unwrap().dependency, Some(1.0));
    assert_eq!(s.category_suppliers, 1);
    assert!((s.annual_spend - 52.0 * 1000.0 * 20.0).abs() < 1e-6);
    let segment = server.segment_now(id).await;
    let k = segment.kraljic.expect("a supplier's Kraljic class");
    assert_eq!(k.name, "strategic", "{k:?}");
    let rec = server.recommend_now(id, 10).await;
    let second = rec
        .actions
        .iter()
        .find(|a| a.r#type == pb::ActionType::QualifySecondSource as i32)
        .unwrap_or_else(|| panic!("no second source in {:?}", rec.actions));
    assert!(second.expected_net_value > 0.0);
    assert!(
        second.reason.contains("single-sourced"),
        "{}",
        second.reason
    );
}

#[tokio::test]
async fn kraljic_classes_follow_their_documented_edges_across_the_demo_suppliers() {
    let server = shared();
    server.wait_serving().await;
    let mut scoring = server.scoring().await;
    let mut classes = std::collections::BTreeMap::new();
    for id in demo_ids("s-", usize::MAX) {
        let k = scoring
            .segment(pb::SegmentRequest {
                relationship_id: id.clone(),
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner()
            .kraljic
            .expect("a supplier's Kraljic class");
        let expected = match (k.spend_share, k.supply_risk) {
            (Some(share), Some(risk)) => match (share >= k.share_edge, risk >= k.risk_edge) {
                (true, true) => "strategic",
                (true, false) => "leverage",
                (false, true) => "bottleneck",
                (false, false) => "non-critical",
            },
            _ => "unrated",
        };
        assert_eq!(k.name, expected, "{id}: {k:?}");
        *classes.entry(k.name).or_insert(0) += 1;
    }
    // The edges are medians, so the book fills more than one class.
    let rated: usize = classes
        .iter()
        .filter(|(c, _)| *c != "unrated")
        .map(|(_, n)| n)
        .sum();
    assert!(rated > 20 && classes.len() >= 3, "{classes:?}");
}

#[tokio::test]
async fn supply_risk_is_evaluated_on_held_out_suppliers() {
    let metric = active_metrics(&["supplier."]).await;
    // Failures that persist once a supplier breaks are learnable from its history.
    assert!(metric("supplier.supply_risk.roc_auc") > 0.65);
    assert!(metric("supplier.supply_risk.holdout_rows") >= 10.0);
    assert!(metric("supplier.supply_risk.brier") < 0.25);
}

/// The demo spec trained on accounts only: a version for the account slot.
fn account_spec() -> String {
    include_str!("../models/demo.toml")
        .replacen("name = \"demo\"", "name = \"demo-accounts\"", 1)
        .replacen("[data]\n", "[data]\nkind = \"account\"\n", 1)
}

/// Which version and slot answered a Score of each id.
async fn answered_by(server: &common::TestServer, ids: &[&str]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for id in ids {
        let s = server.score_now(id, 5).await;
        out.push((s.model_version, s.model_slot));
    }
    out
}

async fn promote(
    models: &mut pb::models_client::ModelsClient<rapport::api::client::Conn>,
    version: u64,
    slot: &str,
) -> Result<pb::ModelVersion, tonic::Status> {
    models
        .promote_model(pb::PromoteModelRequest {
            version,
            slot: slot.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn each_kinds_model_is_trained_promoted_and_rolled_back_without_touching_the_others() {
    let server = common::TestServer::start(Some(common::demo_config()));
    server.wait_serving().await;
    let mut models = server.models().await;
    let first = |prefix| demo_ids(prefix, 1).remove(0);
    let (customer, account, supplier) = (first("c-"), first("a-"), first("s-"));
    let ids = [customer.as_str(), account.as_str(), supplier.as_str()];
    let slot = |v: u64, s: &str| (v, s.to_string());
    let everyone_on_v1 = [slot(1, "default"), slot(1, "default"), slot(1, "default")];
    assert_eq!(answered_by(&server, &ids).await, everyone_on_v1);

    // Trained on accounts alone, it lands in the account slot.
    let accounts = models
        .train_model(pb::TrainModelRequest {
            spec_toml: account_spec(),
            activate: true,
            ..Default::default()
        })
        .await
        .expect("train and promote the account model")
        .into_inner();
    assert_eq!((accounts.version, accounts.slot.as_str()), (2, "account"));
    assert_eq!(accounts.active_in, ["account"]);
    let whole_book = models
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .versions[0]
        .training_rows;
    assert!(
        accounts.training_rows > 0 && accounts.training_rows * 4 < whole_book,
        "{} of {whole_book} rows",
        accounts.training_rows
    );
    let with_accounts = [slot(1, "default"), slot(2, "account"), slot(1, "default")];
    assert_eq!(answered_by(&server, &ids).await, with_accounts);
    let err = promote(&mut models, 2, "customer").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("account"), "{}", err.message());

    // Suppliers: a second whole-book version, then back to the first.
    let v3 = models
        .train_model(pb::TrainModelRequest {
            spec_toml: include_str!("../models/demo.toml").replacen("\"demo\"", "\"demo-3\"", 1),
            activate: false,
            ..Default::default()
        })
        .await
        .expect("train v3")
        .into_inner();
    assert_eq!(
        (v3.version, v3.slot.as_str(), v3.active),
        (3, "default", false)
    );
    assert_eq!(
        promote(&mut models, 3, "supplier").await.unwrap().active_in,
        ["supplier"]
    );
    let on = |v: u64| [slot(1, "default"), slot(2, "account"), slot(v, "supplier")];
    assert_eq!(answered_by(&server, &ids).await, on(3));
    assert_eq!(
        promote(&mut models, 1, "supplier").await.unwrap().active_in,
        ["default", "supplier"]
    );
    assert_eq!(answered_by(&server, &ids).await, on(1));
    let back = models
        .rollback_model(pb::RollbackModelRequest {
            slot: "supplier".into(),
        })
        .await
        .expect("roll the supplier slot back")
        .into_inner();
    assert_eq!(
        (back.version, back.active_in.clone()),
        (3, vec!["supplier".to_string()])
    );
    assert_eq!(answered_by(&server, &ids).await, on(3));

    // The default slot was never promoted over: nothing to roll back there.
    let err = models
        .rollback_model(pb::RollbackModelRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let list = models
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.active_version, 1);
    let active: Vec<(u64, Vec<String>)> = list
        .versions
        .iter()
        .map(|v| (v.version, v.active_in.clone()))
        .collect();
    let named = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        active,
        [
            (1, named(&["default"])),
            (2, named(&["account"])),
            (3, named(&["supplier"]))
        ]
    );
    let err = models
        .rollback_model(pb::RollbackModelRequest {
            slot: "vendor".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}

async fn new_relationship(server: &common::TestServer, id: &str, kind: pb::RelationshipKind) {
    server
        .ingest()
        .await
        .upsert_relationship(pb::UpsertRelationshipRequest {
            relationship: Some(pb::Relationship {
                id: id.into(),
                kind: kind as i32,
                created_at: Some(ts(today() - 500 * DAY)),
                attributes: Default::default(),
            }),
            replace_attributes: false,
        })
        .await
        .expect("upsert");
}

async fn record(server: &common::TestServer, events: Vec<pb::Event>) {
    server
        .ingest()
        .await
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("record events");
}

/// An account with a purchase and an invoice of 5,000 on 30-day terms every
/// two weeks for a year, the k-th paid `late(k)` days after its due date.
async fn account(server: &common::TestServer, id: &str, late: &dyn Fn(i64) -> i64) {
    new_relationship(server, id, pb::RelationshipKind::Account).await;
    let start = today() - 364 * DAY;
    let mut events = Vec::new();
    for k in 0..26 {
        let issued = start + k * 14 * DAY;
        events.push(pb::Event {
            relationship_id: id.into(),
            body: Some(pb::event::Body::Purchase(pb::Purchase {
                at: Some(ts(issued)),
                amount: 5000.0,
                ..Default::default()
            })),
        });
        let paid = issued + (30 + late(k)) * DAY;
        events.push(pb::Event {
            relationship_id: id.into(),
            body: Some(pb::event::Body::Invoice(pb::Invoice {
                at: Some(ts(issued)),
                invoice_id: format!("{id}-{k}"),
                amount: 5000.0,
                terms_days: 30,
                paid_at: (paid < today()).then(|| ts(paid)),
            })),
        });
    }
    record(server, events).await;
}

#[tokio::test]
async fn an_account_paying_later_and_later_gets_a_payment_terms_review_and_a_steady_one_does_not() {
    let server = shared();
    server.wait_serving().await;
    account(server, "a-test-sliding", &|k| {
        if k < 16 {
            0
        } else {
            5 * (k - 15)
        }
    })
    .await;
    account(server, "a-test-steady", &|_| 0).await;
    let sliding = server.score_now("a-test-sliding", 5).await;
    let steady = server.score_now("a-test-steady", 5).await;
    let (s, t) = (sliding.account.unwrap(), steady.account.unwrap());
    assert!(sliding.supplier.is_none() && sliding.partner.is_none());
    let (rs, rt) = (s.credit_risk.expect("known"), t.credit_risk.expect("known"));
    assert!(rs > rt, "credit risk {rs} sliding, {rt} steady");
    assert!(s.lateness_rising && !t.lateness_rising, "{s:?}");
    assert!(s.recent_days_late.unwrap() > 15.0, "{s:?}");
    assert!(s.seriously_late > 0 && t.seriously_late == 0, "{s:?}");
    assert_eq!(t.recent_days_late, Some(0.0));
    assert_eq!(t.terms_days, Some(30.0));
    // Steady payment on 30-day terms of bi-weekly invoices: about 30 days outstanding.
    let dso = t.days_sales_outstanding.unwrap();
    assert!((20.0..=45.0).contains(&dso), "{dso}");
    assert!(s.days_sales_outstanding.unwrap() > dso);
    assert!(
        s.overdue_amount > 0.0 && t.overdue_amount == 0.0,
        "{s:?} {t:?}"
    );
    assert!(
        !s.reasons.is_empty()
            && s.reasons
                .iter()
                .all(|r| r.explanation.contains("credit risk"))
    );

    let review = |id: &str| {
        let id = id.to_string();
        async move {
            server
                .recommend_now(&id, 50)
                .await
                .actions
                .into_iter()
                .find(|a| a.r#type == pb::ActionType::PaymentTermsReview as i32)
        }
    };
    let action = review("a-test-sliding")
        .await
        .expect("a payment-terms review");
    assert!(action.expected_net_value > 0.0, "{action:?}");
    assert!(
        action.reason.contains("payment-terms review"),
        "{}",
        action.reason
    );
    assert!(review("a-test-steady").await.is_none());
}

/// A partner registering a deal every `gap(k)` days for a year, every other one won.
async fn partner(server: &common::TestServer, id: &str, gaps: &[i64]) {
    new_relationship(server, id, pb::RelationshipKind::Partner).await;
    let mut t = today() - 365 * DAY;
    let mut events = Vec::new();
    for (k, gap) in gaps.iter().enumerate() {
        t += gap * DAY;
        if t >= today() {
            break;
        }
        let deal = |at, outcome: pb::DealOutcome| pb::Event {
            relationship_id: id.into(),
            body: Some(pb::event::Body::PartnerDeal(pb::PartnerDeal {
                at: Some(ts(at)),
                deal_id: format!("{id}-{k}"),
                value: 20_000.0,
                outcome: outcome as i32,
            })),
        };
        events.push(deal(t, pb::DealOutcome::Open));
        let outcome = if k % 2 == 0 {
            pb::DealOutcome::Won
        } else {
            pb::DealOutcome::Lost
        };
        if t + 5 * DAY < today() {
            events.push(deal(t + 5 * DAY, outcome));
        }
    }
    record(server, events).await;
}

#[tokio::test]
async fn partners_get_sourced_value_lapse_risk_and_a_tier_that_agree_across_answers() {
    let server = shared();
    server.wait_serving().await;
    partner(server, "p-test-busy", &[10; 36]).await;
    partner(
        server,
        "p-test-fading",
        &[10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 200],
    )
    .await;
    let busy = server.score_now("p-test-busy", 5).await.partner.unwrap();
    let fading = server.score_now("p-test-fading", 5).await.partner.unwrap();
    let (lb, lf) = (
        busy.lapse_risk.expect("known"),
        fading.lapse_risk.expect("known"),
    );
    assert!(lf > lb, "lapse risk {lf} fading, {lb} busy");
    assert!(busy.expected_sourced_value.unwrap() > fading.expected_sourced_value.unwrap());
    assert!(busy
        .reasons
        .iter()
        .all(|r| r.explanation.contains("lapse risk")));

    // Across the demo partners: Score, Segment and Recommend tell one story.
    let mut known = 0;
    let mut previous_edges: Option<Vec<f64>> = None;
    let partners = demo_ids("p-", 120);
    for id in &partners {
        let id = id.as_str();
        let score = server
            .score_now(id, 3)
            .await
            .partner
            .expect("a partner score");
        let tier = server
            .segment_now(id)
            .await
            .partner_tier
            .expect("a partner tier");
        assert_eq!(
            score.expected_sourced_value, tier.expected_sourced_value,
            "{id}"
        );
        let Some(value) = score.expected_sourced_value else {
            assert_eq!((tier.name.as_str(), tier.rank), ("Unrated", 0), "{id}");
            assert!(!score.unknown_reason.is_empty(), "{id}");
            continue;
        };
        known += 1;
        let lapse = score.lapse_risk.unwrap();
        assert!((0.0..=1.0).contains(&lapse), "{id}: {lapse}");
        assert!(value >= 0.0, "{id}: {value}");
        let e = &tier.edges;
        assert_eq!(e.len(), 3, "{id}");
        let expected = if value <= 0.0 {
            "Dormant"
        } else if value >= e[2] {
            "Platinum"
        } else if value >= e[1] {
            "Gold"
        } else if value >= e[0] {
            "Silver"
        } else {
            "Bronze"
        };
        assert_eq!(tier.name, expected, "{id}: {value} against {e:?}");
        if let Some(p) = &previous_edges {
            assert_eq!(p, e, "one set of edges for the book");
        }
        previous_edges = Some(e.clone());
        let rec = server.recommend_now(id, 50).await;
        for a in &rec.actions {
            let partner_action = [
                pb::ActionType::PartnerEnablement,
                pb::ActionType::PartnerIncentive,
                pb::ActionType::NoAction,
            ]
            .iter()
            .any(|t| *t as i32 == a.r#type);
            assert!(partner_action, "{id}: {a:?}");
            if a.r#type == pb::ActionType::PartnerIncentive as i32 {
                assert!(
                    a.probability >= 0.2,
                    "{id}: incentive at lapse risk {}",
                    a.probability
                );
            }
        }
    }
    // Partners that lapsed a year ago or more are unknown, not low; the rest are known.
    assert!(
        known >= 5 && known * 5 >= partners.len(),
        "{known} of {} demo partners have a known sourced value",
        partners.len()
    );
}

#[tokio::test]
async fn credit_and_lapse_risk_are_evaluated_on_held_out_relationships() {
    let metric = active_metrics(&["account.", "partner."]).await;
    assert!(metric("account.credit_risk.holdout_rows") >= 10.0);
    assert!(metric("account.credit_risk.roc_auc") > 0.6);
    assert!(metric("partner.lapse.holdout_rows") >= 10.0);
    assert!(metric("partner.lapse.roc_auc") > 0.6);
    // The lapse-adjusted value beats the bare run rate on held-out partners.
    assert!(metric("partner.sourced_value.mae") <= metric("partner.sourced_value.run_rate_mae"));
}

/// The shared server's active version's metrics, printing those named with
/// one of `prefixes`; the closure it returns panics on a missing name.
async fn active_metrics(prefixes: &[&str]) -> impl Fn(&str) -> f64 {
    let server = shared();
    server.wait_serving().await;
    let list = server
        .models()
        .await
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let active = list
        .versions
        .into_iter()
        .find(|v| v.version == list.active_version)
        .expect("the active version is listed");
    for m in &active.metrics {
        if prefixes.iter().any(|p| m.name.starts_with(p)) {
            eprintln!("{} = {:.4}", m.name, m.value);
        }
    }
    move |name: &str| {
        active
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
            .unwrap_or_else(|| panic!("no {name} in {:?}", active.metrics))
    }
}
