//! The Book service: queries, summaries and campaign plans over the score
//! index, with the conversions of its own messages (its types appear in no
//! other service).

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::book::{
    self, Baseline, CampaignRequest, Filter, IndexStatus, Order, OrderBy, QueryRequest, Row, Totals,
};
use crate::domain::AttributeValue;
use crate::engine::LifecycleStage;
use crate::error::{Error, Result};

use super::convert::{self, timestamp_to};
use super::{pb, RapportService};

/// Rows per PlanCampaign message after the first.
const PLAN_ROWS_PER_MESSAGE: usize = 1_000;

type PlanStream = Pin<Box<dyn Stream<Item = Result<pb::PlanCampaignResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::book_server::Book for RapportService {
    async fn query_relationships(
        &self,
        request: Request<pb::QueryRelationshipsRequest>,
    ) -> Result<Response<pb::QueryRelationshipsResponse>, Status> {
        let pb::QueryRelationshipsRequest {
            filter,
            order_by,
            ascending,
            page_size,
            page_token,
        } = request.into_inner();
        let request = QueryRequest {
            filter: filter_from(filter)?,
            order: order_from(order_by, ascending)?,
            page_size,
            page_token,
        };
        let book = self.book.clone();
        // A first page reads the whole index: milliseconds, off the async workers.
        let answer = tokio::task::spawn_blocking(move || book.query(&request))
            .await
            .map_err(|e| Status::internal(format!("query task failed: {e}")))??;
        Ok(Response::new(pb::QueryRelationshipsResponse {
            rows: answer.page.rows.iter().map(|r| row_to(r)).collect(),
            next_page_token: answer.page.next_page_token.unwrap_or_default(),
            total_matches: answer.page.total_matches,
            index: Some(status_to(answer.index)),
        }))
    }

    async fn summarize_book(
        &self,
        request: Request<pb::SummarizeBookRequest>,
    ) -> Result<Response<pb::SummarizeBookResponse>, Status> {
        let pb::SummarizeBookRequest { filter, compare_to } = request.into_inner();
        let filter = filter_from(filter)?;
        let baseline = baseline_from(compare_to)?;
        let book = self.book.clone();
        let answer = tokio::task::spawn_blocking(move || book.summarize(&filter, baseline))
            .await
            .map_err(|e| Status::internal(format!("summary task failed: {e}")))??;
        let s = &answer.summary;
        let b = answer.baseline.as_ref();
        let groups = |current, baseline| {
            book::summary::compare(current, baseline)
                .into_iter()
                .map(|g| pb::SummaryGroup {
                    kind: convert::kind_to(g.kind) as i32,
                    name: g.name,
                    totals: Some(totals_to(&g.totals)),
                    change: g.change.map(change_to),
                })
                .collect()
        };
        Ok(Response::new(pb::SummarizeBookResponse {
            totals: Some(totals_to(&s.totals)),
            change: b.map(|b| change_to(s.totals.change_from(&b.totals))),
            by_segment: groups(&s.by_segment, b.map(|b| &b.by_segment)),
            by_stage: groups(&s.by_stage, b.map(|b| &b.by_stage)),
            by_tier: groups(&s.by_tier, b.map(|b| &b.by_tier)),
            index: Some(status_to(answer.index)),
            baseline_model_version: b.map_or(0, |b| b.model_version),
            baseline_taken_at: b.map(|b| timestamp_to(b.taken_at)),
        }))
    }

    type PlanCampaignStream = PlanStream;

    async fn plan_campaign(
        &self,
        request: Request<pb::PlanCampaignRequest>,
    ) -> Result<Response<Self::PlanCampaignStream>, Status> {
        let request = campaign_from(request.into_inner())?;
        let book = self.book.clone();
        // Recommend for every relationship in scope: seconds on a large book.
        let plan = tokio::task::spawn_blocking(move || book.plan(&request))
            .await
            .map_err(|e| Status::internal(format!("planning task failed: {e}")))??;
        let messages = plan_to(plan);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }
}

/// A plan as PlanCampaign streams it: the totals, then the rows in messages
/// of up to [`PLAN_ROWS_PER_MESSAGE`].
pub fn plan_to(plan: book::PlanOutput) -> Vec<pb::PlanCampaignResponse> {
    let t = &plan.totals;
    let totals = pb::CampaignTotals {
        contacts: t.contacts,
        cost: t.cost,
        expected_net_value: t.expected_net_value,
        expected_gross_value: t.expected_gross_value(),
        return_on_cost: t.return_on_cost(),
        upper_bound: t.upper_bound,
        greedy_net_value: t.greedy_net_value,
        considered: t.considered,
        opted_out: t.opted_out,
        without_paying_action: t.without_paying_action,
        model_version: t.model_version,
        as_of: Some(timestamp_to(t.as_of)),
        contacts_by_action: t
            .contacts_by_action
            .iter()
            .map(|(kind, n)| (convert::action_type_to(*kind).as_str_name().to_string(), *n))
            .collect(),
    };
    let mut messages = vec![pb::PlanCampaignResponse {
        totals: Some(totals),
        rows: Vec::new(),
    }];
    let mut rows = plan.rows.into_iter().peekable();
    while rows.peek().is_some() {
        messages.push(pb::PlanCampaignResponse {
            totals: None,
            rows: rows
                .by_ref()
                .take(PLAN_ROWS_PER_MESSAGE)
                .map(|r| pb::CampaignRow {
                    relationship_id: r.relationship_id,
                    action: Some(convert::action_to(r.action)),
                    plan_reason: r.plan_reason,
                })
                .collect(),
        });
    }
    messages
}

/// # Errors
/// `InvalidArgument` naming the field.
pub fn filter_from(filter: Option<pb::BookFilter>) -> Result<Filter> {
    let Some(pb::BookFilter {
        kinds,
        rfm_segments,
        stages,
        value_tiers,
        clusters,
        kind_classes,
        min_churn_probability,
        min_value_at_risk,
        attributes,
    }) = filter
    else {
        return Ok(Filter::default());
    };
    let filter = Filter {
        kinds: kinds
            .into_iter()
            .enumerate()
            .map(|(i, k)| convert::kind_from(&format!("filter.kinds[{i}]"), k))
            .collect::<Result<_>>()?,
        rfm_segments,
        stages: stages
            .into_iter()
            .enumerate()
            .map(|(i, s)| stage_from(&format!("filter.stages[{i}]"), s))
            .collect::<Result<_>>()?,
        value_tiers,
        clusters,
        kind_classes,
        min_churn_probability,
        min_value_at_risk,
        attributes: attributes
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let pb::AttributeEquals { name, value } = a;
                let value = match value.and_then(|v| v.value) {
                    Some(pb::attribute_value::Value::Number(n)) => AttributeValue::Number(n),
                    Some(pb::attribute_value::Value::Text(t)) => AttributeValue::Text(t),
                    None => {
                        return Err(Error::invalid(
                            format!("filter.attributes[{i}].value"),
                            "needs a number or a text",
                        ))
                    }
                };
                Ok((name, value))
            })
            .collect::<Result<_>>()?,
    };
    filter.validate()?;
    Ok(filter)
}

fn stage_from(field: &str, value: i32) -> Result<LifecycleStage> {
    match pb::LifecycleStage::try_from(value) {
        Ok(pb::LifecycleStage::Prospect) => Ok(LifecycleStage::Prospect),
        Ok(pb::LifecycleStage::New) => Ok(LifecycleStage::New),
        Ok(pb::LifecycleStage::Active) => Ok(LifecycleStage::Active),
        Ok(pb::LifecycleStage::AtRisk) => Ok(LifecycleStage::AtRisk),
        Ok(pb::LifecycleStage::Lapsed) => Ok(LifecycleStage::Lapsed),
        Ok(pb::LifecycleStage::WonBack) => Ok(LifecycleStage::WonBack),
        Ok(pb::LifecycleStage::Unspecified) => Err(Error::invalid(field, "must be a real stage")),
        Err(_) => Err(Error::invalid(field, format!("unknown stage {value}"))),
    }
}

fn order_from(order_by: i32, ascending: bool) -> Result<Order> {
    let by = match pb::BookOrder::try_from(order_by) {
        Ok(pb::BookOrder::Unspecified | pb::BookOrder::ValueAtRisk) => OrderBy::ValueAtRisk,
        Ok(pb::BookOrder::Churn) => OrderBy::Churn,
        Ok(pb::BookOrder::Value) => OrderBy::Value,
        Ok(pb::BookOrder::Recency) => OrderBy::Recency,
        Err(_) => {
            return Err(Error::invalid(
                "order_by",
                format!("unknown order {order_by}"),
            ))
        }
    };
    Ok(Order { by, ascending })
}

fn baseline_from(value: i32) -> Result<Baseline> {
    match pb::SummaryBaseline::try_from(value) {
        Ok(pb::SummaryBaseline::Unspecified) => Ok(Baseline::None),
        Ok(pb::SummaryBaseline::PreviousModelVersion) => Ok(Baseline::PreviousModelVersion),
        Ok(pb::SummaryBaseline::PreviousSummary) => Ok(Baseline::PreviousSummary),
        Err(_) => Err(Error::invalid(
            "compare_to",
            format!("unknown baseline {value}"),
        )),
    }
}

/// # Errors
/// `InvalidArgument` naming the field.
pub fn campaign_from(r: pb::PlanCampaignRequest) -> Result<CampaignRequest> {
    let pb::PlanCampaignRequest {
        budget,
        max_contacts,
        action_types,
        opt_out_attribute,
        filter,
        as_of,
    } = r;
    if !opt_out_attribute.is_empty() {
        crate::domain::validate_id("opt_out_attribute", &opt_out_attribute)?;
    }
    Ok(CampaignRequest {
        budget: (budget != 0.0).then_some(budget),
        max_contacts: (max_contacts != 0).then_some(max_contacts),
        action_types: convert::action_types_from("action_types", action_types)?,
        opt_out_attribute: (!opt_out_attribute.is_empty()).then_some(opt_out_attribute),
        filter: filter_from(filter)?,
        as_of: convert::optional_timestamp("as_of", as_of)?,
    })
}

pub fn row_to(r: &Row) -> pb::BookRow {
    let seg = r.segments.as_ref();
    pb::BookRow {
        relationship_id: r.id.to_string(),
        kind: convert::kind_to(r.kind) as i32,
        churn_probability: r.churn_probability,
        churn_horizon_days: r.churn_horizon_days,
        expected_days_to_churn: r.expected_days_to_churn,
        expected_value: r.expected_value,
        value_horizon_days: r.value_horizon_days,
        value_at_risk: r.value_at_risk,
        health_score: r.health.score,
        health: Some(convert::health_to(&r.health)),
        churned: r.churned,
        inactivity_days: r.inactivity_days,
        rfm_segment: seg.map(|s| s.rfm_segment.to_string()).unwrap_or_default(),
        value_tier: seg.map(|s| s.value_tier.to_string()).unwrap_or_default(),
        lifecycle_stage: seg.map_or(pb::LifecycleStage::Unspecified, |s| {
            convert::stage_to(s.stage)
        }) as i32,
        cluster: seg.map(|s| s.cluster),
        kind_class: seg.map(|s| s.class.to_string()).unwrap_or_default(),
        days_since_last_purchase: r.days_since_last_purchase(),
        model_version: r.model_version,
        as_of: Some(timestamp_to(r.as_of)),
    }
}

fn status_to(s: IndexStatus) -> pb::IndexStatus {
    let IndexStatus {
        model_version,
        built_at,
        relationships,
        rebuilding,
        rebuilt,
    } = s;
    pb::IndexStatus {
        model_version,
        built_at: Some(timestamp_to(built_at)),
        relationships,
        rebuilding,
        rebuilt,
    }
}

fn totals_to(t: &Totals) -> pb::BookTotals {
    pb::BookTotals {
        relationships: t.relationships,
        expected_value: t.expected_value,
        value_at_risk: t.value_at_risk,
        mean_churn_probability: t.mean_churn(),
    }
}

fn change_to(c: book::Change) -> pb::BookChange {
    let book::Change {
        relationships,
        expected_value,
        value_at_risk,
        mean_churn,
    } = c;
    pb::BookChange {
        relationships,
        expected_value,
        value_at_risk,
        mean_churn_probability: mean_churn,
    }
}
