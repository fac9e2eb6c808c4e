//! A customer-only client built from the proto as it was before suppliers,
//! partners and invoices (the messages below copy its shapes, field numbers
//! and types) still gets its answers from today's server: the fields it
//! knows keep their numbers and meaning, and what was added is skipped.

mod common;

use common::{demo_ids, shared, READ_TOKEN};
use rapport::api::pb;
use tonic::codegen::http::uri::PathAndQuery;

/// The messages of `proto/rapport/v1/rapport.proto` before the kinds.
mod old {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScoreRequest {
        #[prost(string, tag = "1")]
        pub relationship_id: String,
        #[prost(message, optional, tag = "2")]
        pub as_of: Option<prost_types::Timestamp>,
        #[prost(uint32, tag = "3")]
        pub max_reasons: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HorizonProbability {
        #[prost(uint32, tag = "1")]
        pub days: u32,
        #[prost(double, tag = "2")]
        pub probability: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Reason {
        #[prost(string, tag = "1")]
        pub feature: String,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(double, tag = "3")]
        pub contribution: f64,
        #[prost(int32, tag = "4")]
        pub direction: i32,
        #[prost(string, tag = "5")]
        pub explanation: String,
        #[prost(string, tag = "6")]
        pub unit: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Health {
        #[prost(uint32, tag = "1")]
        pub score: u32,
        #[prost(double, tag = "2")]
        pub retention: f64,
        #[prost(double, optional, tag = "3")]
        pub engagement: Option<f64>,
        #[prost(double, optional, tag = "4")]
        pub satisfaction: Option<f64>,
        #[prost(double, optional, tag = "5")]
        pub payment: Option<f64>,
        #[prost(double, optional, tag = "6")]
        pub value_trend: Option<f64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RelationshipScore {
        #[prost(string, tag = "1")]
        pub relationship_id: String,
        #[prost(double, tag = "2")]
        pub churn_probability: f64,
        #[prost(uint32, optional, tag = "3")]
        pub churn_horizon_days: Option<u32>,
        #[prost(message, repeated, tag = "4")]
        pub churn_by_horizon: Vec<HorizonProbability>,
        #[prost(double, optional, tag = "5")]
        pub expected_days_to_churn: Option<f64>,
        #[prost(double, optional, tag = "6")]
        pub expected_value: Option<f64>,
        #[prost(uint32, optional, tag = "7")]
        pub value_horizon_days: Option<u32>,
        #[prost(double, optional, tag = "8")]
        pub value_at_risk: Option<f64>,
        #[prost(uint32, tag = "9")]
        pub health_score: u32,
        #[prost(message, repeated, tag = "10")]
        pub reasons: Vec<Reason>,
        #[prost(uint64, tag = "11")]
        pub model_version: u64,
        #[prost(message, optional, tag = "12")]
        pub as_of: Option<prost_types::Timestamp>,
        #[prost(message, optional, tag = "13")]
        pub health: Option<Health>,
        #[prost(bool, tag = "14")]
        pub churned: bool,
        #[prost(uint32, optional, tag = "15")]
        pub inactivity_days: Option<u32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RecommendRequest {
        #[prost(string, tag = "1")]
        pub relationship_id: String,
        #[prost(message, optional, tag = "2")]
        pub as_of: Option<prost_types::Timestamp>,
        #[prost(uint32, tag = "3")]
        pub max_actions: u32,
        #[prost(string, repeated, tag = "4")]
        pub exclude_product_ids: Vec<String>,
        #[prost(int32, repeated, tag = "5")]
        pub exclude_action_types: Vec<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Action {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub product_id: String,
        #[prost(double, tag = "3")]
        pub expected_net_value: f64,
        #[prost(double, tag = "4")]
        pub probability: f64,
        #[prost(string, tag = "5")]
        pub reason: String,
        #[prost(double, tag = "6")]
        pub cost: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RecommendResponse {
        #[prost(string, tag = "1")]
        pub relationship_id: String,
        #[prost(message, repeated, tag = "2")]
        pub actions: Vec<Action>,
        #[prost(uint64, tag = "3")]
        pub model_version: u64,
        #[prost(message, optional, tag = "4")]
        pub as_of: Option<prost_types::Timestamp>,
    }

    /// ACTION_TYPE_UNSPECIFIED (0) to ACTION_TYPE_NO_ACTION (6).
    pub const ACTION_TYPES: std::ops::RangeInclusive<i32> = 1..=6;
}

/// One unary call with the old messages, as the old generated client made it.
async fn call<Q, R>(path: &'static str, request: Q) -> R
where
    Q: prost::Message + Send + Sync + 'static,
    R: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(shared().conn(READ_TOKEN).await);
    grpc.ready().await.expect("ready");
    grpc.unary(
        tonic::Request::new(request),
        PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{path}: {e:?}"))
    .into_inner()
}

#[tokio::test]
async fn a_customer_only_client_built_from_the_old_proto_still_scores_and_recommends() {
    let server = shared();
    server.wait_serving().await;
    let as_of = common::ts(common::today());
    for id in demo_ids("c-", 5).into_iter().chain(demo_ids("a-", 2)) {
        let before: old::RelationshipScore = call(
            "/rapport.v1.Scoring/Score",
            old::ScoreRequest {
                relationship_id: id.clone(),
                as_of: Some(as_of),
                max_reasons: 5,
            },
        )
        .await;
        let now = server
            .scoring()
            .await
            .score(pb::ScoreRequest {
                relationship_id: id.clone(),
                as_of: Some(as_of),
                max_reasons: 5,
            })
            .await
            .expect("score")
            .into_inner();
        assert_eq!(before.relationship_id, id);
        assert_eq!(before.churn_probability, now.churn_probability, "{id}");
        assert_eq!(before.churn_horizon_days, now.churn_horizon_days, "{id}");
        assert_eq!(before.expected_value, now.expected_value, "{id}");
        assert_eq!(before.value_at_risk, now.value_at_risk, "{id}");
        assert_eq!(before.health_score, now.health_score, "{id}");
        assert_eq!(before.model_version, now.model_version, "{id}");
        assert_eq!(before.churned, now.churned, "{id}");
        assert_eq!(before.inactivity_days, now.inactivity_days, "{id}");
        let curve: Vec<(u32, f64)> = before
            .churn_by_horizon
            .iter()
            .map(|h| (h.days, h.probability))
            .collect();
        let expected: Vec<(u32, f64)> = now
            .churn_by_horizon
            .iter()
            .map(|h| (h.days, h.probability))
            .collect();
        assert!(!curve.is_empty(), "{id}");
        assert_eq!(curve, expected, "{id}");
        let reasons: Vec<(&str, f64)> = before
            .reasons
            .iter()
            .map(|r| (r.feature.as_str(), r.contribution))
            .collect();
        let expected: Vec<(&str, f64)> = now
            .reasons
            .iter()
            .map(|r| (r.feature.as_str(), r.contribution))
            .collect();
        assert_eq!(reasons, expected, "{id}");
        let health = before.health.expect("health");
        assert_eq!(health.score, before.health_score, "{id}");
        assert_eq!(
            health.payment,
            now.health.as_ref().and_then(|h| h.payment),
            "{id}"
        );

        let rec: old::RecommendResponse = call(
            "/rapport.v1.Scoring/Recommend",
            old::RecommendRequest {
                relationship_id: id.clone(),
                as_of: Some(as_of),
                max_actions: 10,
                exclude_product_ids: vec![],
                exclude_action_types: vec![],
            },
        )
        .await;
        assert_eq!(rec.relationship_id, id);
        assert!(!rec.actions.is_empty(), "{id}");
        for a in &rec.actions {
            assert!(
                old::ACTION_TYPES.contains(&a.r#type),
                "{id}: action type {} is unknown to the old client",
                a.r#type
            );
            assert!(!a.reason.is_empty(), "{id}");
        }
    }
}
