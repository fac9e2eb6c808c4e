//! Every relationship kind scored for what it is: suppliers and partners are
//! never offered a sale, against the real server over a whole demo book.

mod common;

use common::{demo_ids, shared};
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
