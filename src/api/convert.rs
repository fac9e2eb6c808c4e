//! Conversions between generated protobuf types and core types. Proto
//! messages are destructured field by field so that a new proto field fails to
//! compile here until it is handled.

use std::collections::BTreeMap;

use crate::domain::{
    AttributeValue, DealOutcome, Event, EventBody, IncomingEvent, InteractionKind, ModelSlot,
    Relationship, RelationshipKind, RelationshipUpdate,
};
use crate::engine::{self, ActionType, LifecycleStage};
use crate::error::{Error, Result};
use crate::model::ModelSummary;
use crate::time::Timestamp;

use super::pb;

/// # Errors
/// `InvalidArgument` naming `field` for nanos out of range.
pub fn timestamp_from(field: &str, ts: prost_types::Timestamp) -> Result<Timestamp> {
    let prost_types::Timestamp { seconds, nanos } = ts;
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(Error::invalid(
            field,
            format!("nanos {nanos} is outside [0, 1e9)"),
        ));
    }
    Ok(seconds)
}

pub fn optional_timestamp(
    field: &str,
    ts: Option<prost_types::Timestamp>,
) -> Result<Option<Timestamp>> {
    ts.map(|t| timestamp_from(field, t)).transpose()
}

pub fn timestamp_to(ts: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ts,
        nanos: 0,
    }
}

pub fn kind_from(field: &str, value: i32) -> Result<RelationshipKind> {
    match pb::RelationshipKind::try_from(value) {
        Ok(pb::RelationshipKind::Customer) => Ok(RelationshipKind::Customer),
        Ok(pb::RelationshipKind::Account) => Ok(RelationshipKind::Account),
        Ok(pb::RelationshipKind::Supplier) => Ok(RelationshipKind::Supplier),
        Ok(pb::RelationshipKind::Partner) => Ok(RelationshipKind::Partner),
        Ok(pb::RelationshipKind::Unspecified) => Err(Error::invalid(
            field,
            "must be set: RELATIONSHIP_KIND_CUSTOMER, _ACCOUNT, _SUPPLIER or _PARTNER",
        )),
        Err(_) => Err(Error::invalid(field, format!("unknown kind {value}"))),
    }
}

pub fn kind_to(kind: RelationshipKind) -> pb::RelationshipKind {
    match kind {
        RelationshipKind::Customer => pb::RelationshipKind::Customer,
        RelationshipKind::Account => pb::RelationshipKind::Account,
        RelationshipKind::Supplier => pb::RelationshipKind::Supplier,
        RelationshipKind::Partner => pb::RelationshipKind::Partner,
    }
}

/// An upsert from the wire: unset fields are left for the stored
/// relationship to fill ([`RelationshipUpdate::apply`]).
///
/// # Errors
/// `InvalidArgument` naming the field.
pub fn relationship_update_from(
    r: pb::Relationship,
    replace_attributes: bool,
) -> Result<RelationshipUpdate> {
    let pb::Relationship {
        id,
        kind,
        created_at,
        attributes,
    } = r;
    let mut attrs = BTreeMap::new();
    for (name, value) in attributes {
        let pb::AttributeValue { value } = value;
        let v = match value {
            Some(pb::attribute_value::Value::Number(n)) => Some(AttributeValue::Number(n)),
            Some(pb::attribute_value::Value::Text(t)) => Some(AttributeValue::Text(t)),
            None => None,
        };
        attrs.insert(name, v);
    }
    let kind = match pb::RelationshipKind::try_from(kind) {
        Ok(pb::RelationshipKind::Unspecified) => None,
        _ => Some(kind_from("relationship.kind", kind)?),
    };
    Ok(RelationshipUpdate {
        id,
        kind,
        created_at: optional_timestamp("relationship.created_at", created_at)?,
        attributes: attrs,
        replace_attributes,
    })
}

pub fn relationship_to(r: Relationship) -> pb::Relationship {
    let Relationship {
        id,
        kind,
        created_at,
        attributes,
    } = r;
    pb::Relationship {
        id,
        kind: kind_to(kind) as i32,
        created_at: Some(timestamp_to(created_at)),
        attributes: attributes
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    AttributeValue::Number(n) => pb::attribute_value::Value::Number(n),
                    AttributeValue::Text(t) => pb::attribute_value::Value::Text(t),
                };
                (k, pb::AttributeValue { value: Some(value) })
            })
            .collect(),
    }
}

/// The `index`-th event of a batch; field names in errors carry the index.
///
/// # Errors
/// `InvalidArgument` naming `events[index].…`.
pub fn event_from(index: usize, e: pb::Event) -> Result<IncomingEvent> {
    let pb::Event {
        relationship_id,
        body,
    } = e;
    let field = format!("events[{index}]");
    let required_at = |at: Option<prost_types::Timestamp>, what: &str| -> Result<Timestamp> {
        let f = format!("{field}.{what}.at");
        timestamp_from(&f, at.ok_or_else(|| Error::invalid(&f, "is required"))?)
    };
    let event = match body {
        Some(pb::event::Body::Purchase(pb::Purchase {
            at,
            amount,
            product_ids,
            quantity,
        })) => {
            if quantity < 0 {
                return Err(Error::invalid(
                    format!("{field}.purchase.quantity"),
                    format!("{quantity} is negative"),
                ));
            }
            Event {
                at: required_at(at, "purchase")?,
                body: EventBody::Purchase {
                    amount,
                    product_ids,
                    quantity: quantity.max(1) as u32,
                },
            }
        }
        Some(pb::event::Body::Interaction(pb::Interaction {
            at,
            kind,
            survey_score,
        })) => {
            let kind = match pb::InteractionKind::try_from(kind) {
                Ok(pb::InteractionKind::SupportTicket) => InteractionKind::SupportTicket,
                Ok(pb::InteractionKind::Complaint) => InteractionKind::Complaint,
                Ok(pb::InteractionKind::Visit) => InteractionKind::Visit,
                Ok(pb::InteractionKind::Survey) => InteractionKind::Survey,
                Ok(pb::InteractionKind::Unspecified) => {
                    return Err(Error::invalid(
                        format!("{field}.interaction.kind"),
                        "must be set",
                    ))
                }
                Err(_) => {
                    return Err(Error::invalid(
                        format!("{field}.interaction.kind"),
                        format!("unknown kind {kind}"),
                    ))
                }
            };
            Event {
                at: required_at(at, "interaction")?,
                body: EventBody::Interaction { kind, survey_score },
            }
        }
        Some(pb::event::Body::Payment(pb::Payment {
            at,
            amount,
            days_late,
        })) => Event {
            at: required_at(at, "payment")?,
            body: EventBody::Payment { amount, days_late },
        },
        Some(pb::event::Body::Delivery(pb::Delivery {
            at,
            promised_at,
            category,
            quantity_ordered,
            quantity_received,
            units_rejected,
            unit_price,
        })) => {
            let f = format!("{field}.delivery.promised_at");
            let promised_at = timestamp_from(
                &f,
                promised_at.ok_or_else(|| Error::invalid(&f, "is required"))?,
            )?;
            Event {
                at: required_at(at, "delivery")?,
                body: EventBody::Delivery {
                    promised_at,
                    category,
                    ordered: quantity_ordered,
                    received: quantity_received,
                    rejected: units_rejected,
                    unit_price,
                },
            }
        }
        Some(pb::event::Body::PurchaseOrder(pb::PurchaseOrder {
            at,
            amount,
            category,
        })) => Event {
            at: required_at(at, "purchase_order")?,
            body: EventBody::PurchaseOrder { amount, category },
        },
        Some(pb::event::Body::PartnerDeal(pb::PartnerDeal {
            at,
            deal_id,
            value,
            outcome,
        })) => {
            let outcome = match pb::DealOutcome::try_from(outcome) {
                Ok(pb::DealOutcome::Open) => DealOutcome::Open,
                Ok(pb::DealOutcome::Won) => DealOutcome::Won,
                Ok(pb::DealOutcome::Lost) => DealOutcome::Lost,
                Ok(pb::DealOutcome::Unspecified) => {
                    return Err(Error::invalid(
                        format!("{field}.partner_deal.outcome"),
                        "must be set: OPEN, WON or LOST",
                    ))
                }
                Err(_) => {
                    return Err(Error::invalid(
                        format!("{field}.partner_deal.outcome"),
                        format!("unknown outcome {outcome}"),
                    ))
                }
            };
            Event {
                at: required_at(at, "partner_deal")?,
                body: EventBody::PartnerDeal {
                    deal_id,
                    value,
                    outcome,
                },
            }
        }
        Some(pb::event::Body::Invoice(pb::Invoice {
            at,
            invoice_id,
            amount,
            terms_days,
            paid_at,
        })) => Event {
            at: required_at(at, "invoice")?,
            body: EventBody::Invoice {
                invoice_id,
                amount,
                terms_days,
                paid_at: optional_timestamp(&format!("{field}.invoice.paid_at"), paid_at)?,
            },
        },
        None => {
            return Err(Error::invalid(
                format!("{field}.body"),
                "one of purchase, interaction, payment, delivery, purchase_order, partner_deal or invoice is required",
            ))
        }
    };
    Ok(IncomingEvent {
        relationship_id,
        event,
    })
}

pub fn health_to(h: &engine::Health) -> pb::Health {
    let engine::Health {
        score,
        retention,
        engagement,
        satisfaction,
        payment,
        value_trend,
    } = *h;
    pb::Health {
        score,
        retention,
        engagement,
        satisfaction,
        payment,
        value_trend,
    }
}

pub fn score_to(s: engine::ScoreOutput) -> pb::RelationshipScore {
    let engine::ScoreOutput {
        relationship_id,
        churn_probability,
        churn_horizon_days,
        inactivity_days,
        churned,
        churn_by_horizon,
        expected_days_to_churn,
        expected_value,
        value_horizon_days,
        value_at_risk,
        health,
        reasons,
        model_version,
        as_of,
        supplier,
        account,
        partner,
        model_slot,
    } = s;
    pb::RelationshipScore {
        relationship_id,
        churn_probability,
        churn_horizon_days,
        inactivity_days,
        churned,
        churn_by_horizon: churn_by_horizon
            .into_iter()
            .map(|(days, probability)| pb::HorizonProbability { days, probability })
            .collect(),
        expected_days_to_churn,
        expected_value,
        value_horizon_days,
        value_at_risk,
        health_score: health.score,
        health: Some(health_to(&health)),
        reasons: reasons.into_iter().map(reason_to).collect(),
        model_version,
        as_of: Some(timestamp_to(as_of)),
        supplier: supplier.map(supplier_to),
        account: account.map(account_to),
        partner: partner.map(partner_to),
        model_slot: model_slot.to_string(),
    }
}

fn reason_to(r: engine::Reason) -> pb::Reason {
    let engine::Reason {
        feature,
        value,
        unit,
        contribution,
        raises_churn,
        explanation,
    } = r;
    pb::Reason {
        feature,
        value,
        unit,
        contribution,
        direction: if raises_churn {
            pb::Direction::RaisesChurn
        } else {
            pb::Direction::LowersChurn
        } as i32,
        explanation,
    }
}

fn supplier_to(v: engine::SupplierView) -> pb::SupplierScore {
    let unknown_reason = v.unknown_because().unwrap_or_default();
    let engine::SupplierView {
        supply_risk,
        horizon_days,
        min_deliveries: _,
        facts,
        risk_rising,
        breakdown,
        dependency,
        kraljic: _,
        share_edge: _,
        risk_edge: _,
        reasons,
    } = v;
    let engine::RiskBreakdown {
        delivery,
        quality,
        price,
        dependency: dependency_concern,
    } = breakdown;
    pb::SupplierScore {
        supply_risk,
        horizon_days,
        unknown_reason,
        deliveries: facts.deliveries,
        failures: facts.failures,
        risk_rising,
        breakdown: Some(pb::SupplyRiskBreakdown {
            delivery,
            quality,
            price,
            dependency: dependency_concern,
        }),
        category: dependency
            .as_ref()
            .map(|d| d.category.clone())
            .unwrap_or_default(),
        spend_share: dependency.as_ref().map(|d| d.share),
        single_sourced: dependency.as_ref().is_some_and(|d| d.single_sourced),
        category_suppliers: dependency.as_ref().map_or(0, |d| d.suppliers as u32),
        annual_spend: facts.annual_spend(),
        price_trend: facts.price_trend,
        reasons: reasons.into_iter().map(reason_to).collect(),
    }
}

fn account_to(v: engine::AccountView) -> pb::AccountScore {
    let unknown_reason = v.unknown_because().unwrap_or_default();
    let engine::AccountView {
        credit_risk,
        horizon_days,
        serious_late_days,
        facts,
        lateness_rising,
        reasons,
        ..
    } = v;
    pb::AccountScore {
        credit_risk,
        horizon_days,
        serious_late_days,
        unknown_reason,
        invoices: facts.invoices,
        seriously_late: facts.serious_late,
        recent_days_late: facts.recent_days_late,
        prior_days_late: facts.prior_days_late,
        lateness_rising,
        days_sales_outstanding: facts.dso,
        terms_days: facts.terms_days,
        open_amount: facts.open_amount,
        overdue_amount: facts.overdue_amount,
        reasons: reasons.into_iter().map(reason_to).collect(),
    }
}

fn partner_to(v: engine::PartnerView) -> pb::PartnerScore {
    let unknown_reason = v.unknown_because().unwrap_or_default();
    let engine::PartnerView {
        lapse_risk,
        sourced_value,
        horizon_days,
        facts,
        reasons,
        ..
    } = v;
    pb::PartnerScore {
        lapse_risk,
        horizon_days,
        unknown_reason,
        expected_sourced_value: sourced_value,
        recent_deals: facts.recent_deals,
        prior_deals: facts.prior_deals,
        won: facts.won,
        lost: facts.lost,
        won_value: facts.won_value,
        open_deals: facts.open,
        open_value: facts.open_value,
        days_since_last_deal: facts.days_since_last_deal,
        reasons: reasons.into_iter().map(reason_to).collect(),
    }
}

pub fn segment_to(s: engine::SegmentOutput) -> pb::SegmentResponse {
    let engine::SegmentOutput {
        relationship_id,
        rfm,
        rfm_segment,
        value_tier,
        value_tier_rank,
        expected_profit,
        cluster,
        persona,
        cluster_size,
        stage,
        kraljic,
        partner_tier,
        model_version,
        as_of,
    } = s;
    pb::SegmentResponse {
        relationship_id,
        rfm: Some(pb::Rfm {
            recency: rfm.0,
            frequency: rfm.1,
            monetary: rfm.2,
            segment: rfm_segment,
        }),
        value_tier: Some(pb::ValueTier {
            name: value_tier,
            rank: value_tier_rank,
            expected_profit,
        }),
        cluster: Some(pb::Cluster {
            id: cluster,
            persona,
            size: cluster_size,
        }),
        lifecycle_stage: stage_to(stage) as i32,
        model_version,
        as_of: Some(timestamp_to(as_of)),
        kraljic: kraljic.map(|k| {
            let engine::KraljicOutput {
                class,
                spend_share,
                supply_risk,
                share_edge,
                risk_edge,
            } = k;
            pb::KraljicSegment {
                name: class.to_string(),
                spend_share,
                supply_risk,
                share_edge,
                risk_edge,
            }
        }),
        partner_tier: partner_tier.map(|t| pb::PartnerTier {
            name: t.name.to_string(),
            rank: t.rank,
            expected_sourced_value: t.sourced_value,
            edges: t.edges,
        }),
    }
}

pub fn stage_to(stage: LifecycleStage) -> pb::LifecycleStage {
    match stage {
        LifecycleStage::Prospect => pb::LifecycleStage::Prospect,
        LifecycleStage::New => pb::LifecycleStage::New,
        LifecycleStage::Active => pb::LifecycleStage::Active,
        LifecycleStage::AtRisk => pb::LifecycleStage::AtRisk,
        LifecycleStage::Lapsed => pb::LifecycleStage::Lapsed,
        LifecycleStage::WonBack => pb::LifecycleStage::WonBack,
    }
}

/// # Errors
/// `InvalidArgument` naming `field[i]` for an unknown or unspecified type.
pub fn action_types_from(field: &str, types: Vec<i32>) -> Result<Vec<ActionType>> {
    types
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let field = format!("{field}[{i}]");
            match pb::ActionType::try_from(t) {
                Ok(pb::ActionType::Retain) => Ok(ActionType::Retain),
                Ok(pb::ActionType::CrossSell) => Ok(ActionType::CrossSell),
                Ok(pb::ActionType::UpSell) => Ok(ActionType::UpSell),
                Ok(pb::ActionType::WinBack) => Ok(ActionType::WinBack),
                Ok(pb::ActionType::Loyalty) => Ok(ActionType::Loyalty),
                Ok(pb::ActionType::NoAction) => Ok(ActionType::NoAction),
                Ok(pb::ActionType::QualifySecondSource) => Ok(ActionType::QualifySecondSource),
                Ok(pb::ActionType::Renegotiate) => Ok(ActionType::Renegotiate),
                Ok(pb::ActionType::Consolidate) => Ok(ActionType::Consolidate),
                Ok(pb::ActionType::SupplierDevelopment) => Ok(ActionType::SupplierDevelopment),
                Ok(pb::ActionType::PaymentTermsReview) => Ok(ActionType::PaymentTermsReview),
                Ok(pb::ActionType::PartnerEnablement) => Ok(ActionType::PartnerEnablement),
                Ok(pb::ActionType::PartnerIncentive) => Ok(ActionType::PartnerIncentive),
                Ok(pb::ActionType::Unspecified) => {
                    Err(Error::invalid(field, "must be a real action type"))
                }
                Err(_) => Err(Error::invalid(field, format!("unknown action type {t}"))),
            }
        })
        .collect()
}

/// # Errors
/// `InvalidArgument` naming the field.
pub fn recommend_from(r: pb::RecommendRequest) -> Result<engine::RecommendRequest> {
    let pb::RecommendRequest {
        relationship_id,
        as_of,
        max_actions,
        exclude_product_ids,
        exclude_action_types,
    } = r;
    let exclude_types = action_types_from("exclude_action_types", exclude_action_types)?;
    Ok(engine::RecommendRequest {
        relationship_id,
        as_of: optional_timestamp("as_of", as_of)?,
        max_actions,
        exclude_products: exclude_product_ids,
        exclude_types,
    })
}

pub fn recommend_to(r: engine::RecommendOutput) -> pb::RecommendResponse {
    let engine::RecommendOutput {
        relationship_id,
        actions,
        model_version,
        as_of,
    } = r;
    pb::RecommendResponse {
        relationship_id,
        actions: actions.into_iter().map(action_to).collect::<Vec<_>>(),
        model_version,
        as_of: Some(timestamp_to(as_of)),
    }
}

pub fn action_to(a: engine::Action) -> pb::Action {
    let engine::Action {
        kind,
        product_id,
        expected_net_value,
        probability,
        cost,
        reason,
    } = a;
    pb::Action {
        r#type: action_type_to(kind) as i32,
        product_id: product_id.unwrap_or_default(),
        expected_net_value,
        probability,
        reason,
        cost,
    }
}

pub fn action_type_to(t: ActionType) -> pb::ActionType {
    match t {
        ActionType::Retain => pb::ActionType::Retain,
        ActionType::CrossSell => pb::ActionType::CrossSell,
        ActionType::UpSell => pb::ActionType::UpSell,
        ActionType::WinBack => pb::ActionType::WinBack,
        ActionType::Loyalty => pb::ActionType::Loyalty,
        ActionType::NoAction => pb::ActionType::NoAction,
        ActionType::QualifySecondSource => pb::ActionType::QualifySecondSource,
        ActionType::Renegotiate => pb::ActionType::Renegotiate,
        ActionType::Consolidate => pb::ActionType::Consolidate,
        ActionType::SupplierDevelopment => pb::ActionType::SupplierDevelopment,
        ActionType::PaymentTermsReview => pb::ActionType::PaymentTermsReview,
        ActionType::PartnerEnablement => pb::ActionType::PartnerEnablement,
        ActionType::PartnerIncentive => pb::ActionType::PartnerIncentive,
    }
}

pub fn relationship_view_to(v: engine::RelationshipView) -> pb::GetRelationshipResponse {
    let engine::RelationshipView {
        relationship,
        features,
        event_count,
        owned_products,
        as_of,
    } = v;
    pb::GetRelationshipResponse {
        relationship: Some(relationship_to(relationship)),
        features: features
            .into_iter()
            .map(|(name, value)| pb::Feature { name, value })
            .collect(),
        event_count,
        owned_product_ids: owned_products,
        as_of: Some(timestamp_to(as_of)),
    }
}

/// A version's reply; `active` lists the version active in each slot that has one.
pub fn model_version_to(summary: ModelSummary, active: &[(ModelSlot, u64)]) -> pb::ModelVersion {
    let slot = summary.slot().name().to_string();
    let active_in: Vec<String> = active
        .iter()
        .filter(|(_, v)| *v == summary.version)
        .map(|(s, _)| s.name().to_string())
        .collect();
    let ModelSummary {
        version,
        trained_at,
        source,
        spec_name,
        cutoff,
        training_rows,
        metrics,
        fingerprint,
        churn_learner,
        kind: _,
    } = summary;
    pb::ModelVersion {
        version,
        trained_at: Some(timestamp_to(trained_at)),
        active: !active_in.is_empty(),
        slot,
        active_in,
        source,
        spec: spec_name,
        metrics: metrics
            .into_iter()
            .map(|m| pb::Metric {
                name: m.name,
                value: m.value,
            })
            .collect(),
        training_rows,
        cutoff: cutoff.map(timestamp_to),
        data_fingerprint: fingerprint,
        churn_learner,
    }
}

pub fn drift_to(d: engine::DriftOutput) -> pb::GetDriftResponse {
    let engine::DriftOutput {
        version,
        sampled,
        features,
        as_of,
    } = d;
    pb::GetDriftResponse {
        version,
        sampled,
        features: features
            .into_iter()
            .map(|(feature, psi)| pb::FeatureDrift {
                status: engine::drift_status(psi).to_string(),
                feature,
                psi,
            })
            .collect(),
        as_of: Some(timestamp_to(as_of)),
    }
}
