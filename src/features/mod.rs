//! Features: what the models see of a relationship as of a time T.
//!
//! Used the same way at ingest, training, serving and backtest, so there is no
//! train/serve skew. Pure: no storage, no models.
//!
//! - `aggregates`: the fold over a relationship's events ([`Aggregates`]).
//! - `snapshot`: the base features as of T ([`Snapshot`], [`BaseFeature`]).
//! - `schema`: the columns a model was trained on ([`FeatureSchema`]).
//! - `kinds`: deliveries, orders, deals and invoices ([`KindHistory`]).

mod aggregates;
pub mod kinds;
mod schema;
mod snapshot;

pub use aggregates::{Aggregates, WINDOW_DAYS};
pub use kinds::KindHistory;
pub use schema::{AttributeSelection, Column, FeatureSchema, FeatureSpec};
pub use snapshot::{silent_since, start_of, Absence, BaseFeature, Snapshot, Unit};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AttributeValue, Event, EventBody, InteractionKind, Relationship, RelationshipKind,
    };
    use crate::time::{Timestamp, SECONDS_PER_DAY};
    use std::collections::BTreeMap;

    const DAY: i64 = SECONDS_PER_DAY;

    fn rel(created: Timestamp) -> Relationship {
        Relationship {
            id: "r".into(),
            kind: RelationshipKind::Customer,
            created_at: created,
            attributes: BTreeMap::new(),
        }
    }

    fn purchase(day: i64, amount: f64, product: &str) -> Event {
        Event {
            at: day * DAY + 3600,
            body: EventBody::Purchase {
                amount,
                product_ids: vec![product.into()],
                quantity: 1,
            },
        }
    }

    #[test]
    fn same_day_purchases_are_one_occasion() {
        let agg = Aggregates::from_events(&[
            purchase(10, 5.0, "a"),
            purchase(10, 7.0, "b"),
            purchase(12, 1.0, "a"),
        ]);
        assert_eq!(agg.occasions, 2);
        assert_eq!(agg.spend_total, 13.0);
        assert_eq!(agg.products.len(), 2);
        assert_eq!(agg.last_gap_days, 2.0);
    }

    #[test]
    fn incremental_and_batch_folds_agree() {
        let events = [
            purchase(1, 5.0, "a"),
            purchase(50, 7.0, "b"),
            purchase(500, 9.0, "c"),
        ];
        let batch = Aggregates::from_events(&events);
        let mut incremental = Aggregates::default();
        for e in &events {
            incremental.apply(e);
        }
        assert_eq!(batch, incremental);
    }

    #[test]
    fn recency_and_windows_follow_the_as_of_time() {
        let r = rel(0);
        let agg = Aggregates::from_events(&[purchase(100, 10.0, "a"), purchase(150, 30.0, "a")]);
        let at_160 = Snapshot::derive(&r, &agg, 160 * DAY + 3600);
        assert_eq!(at_160.get(BaseFeature::RecencyDays), 10.0);
        assert_eq!(at_160.get(BaseFeature::Spend90d), 40.0);
        let at_400 = Snapshot::derive(&r, &agg, 400 * DAY + 3600);
        assert_eq!(at_400.get(BaseFeature::Spend90d), 0.0);
        assert!(at_400.get(BaseFeature::OverdueRatio) > at_160.get(BaseFeature::OverdueRatio));
    }

    fn interaction(day: i64, hour: i64, kind: InteractionKind) -> Event {
        Event {
            at: day * DAY + hour * 3600,
            body: EventBody::Interaction {
                kind,
                survey_score: None,
            },
        }
    }

    fn payment(day: i64, days_late: f64) -> Event {
        Event {
            at: day * DAY + 3600,
            body: EventBody::Payment {
                amount: 10.0,
                days_late,
            },
        }
    }

    #[test]
    fn a_busy_day_is_one_detail_entry_per_kind_and_windows_still_count_events() {
        let mut events = Vec::new();
        for hour in 0..20 {
            events.push(interaction(200, hour, InteractionKind::Visit));
            events.push(interaction(200, hour, InteractionKind::SupportTicket));
        }
        events.push(interaction(150, 1, InteractionKind::Complaint));
        events.push(purchase(200, 5.0, "a"));
        events.push(purchase(200, 7.0, "b"));
        events.push(purchase(100, 11.0, "a"));
        events.push(purchase(30, 13.0, "a"));
        events.extend([payment(190, 4.0), payment(190, 0.0), payment(195, 2.0)]);
        let agg = Aggregates::from_events(&events);
        // Visits, tickets and purchases of day 200, the complaint, two older
        // purchases, and each payment.
        assert_eq!(agg.recent.len(), 3 + 1 + 2 + 3);
        let s = Snapshot::derive(&rel(0), &agg, 201 * DAY);
        assert_eq!(s.get(BaseFeature::Visits90d), 20.0);
        assert_eq!(s.get(BaseFeature::Tickets90d), 20.0);
        assert_eq!(s.get(BaseFeature::Complaints90d), 1.0);
        assert_eq!(s.get(BaseFeature::Spend90d), 12.0);
        assert_eq!(s.get(BaseFeature::Occasions90d), 1.0);
        assert_eq!(s.get(BaseFeature::PaymentDaysLate90d), 2.0);
        // Spend in days 112..=201 against the 90 days before: 12 against 11 + 13.
        let trend = (12.0 - 24.0) / (12.0 + 24.0 + 1.0);
        assert!((s.get(BaseFeature::SpendTrend) - trend).abs() < 1e-12);
    }

    #[test]
    fn schema_one_hots_with_learned_vocabulary() {
        let mut a = rel(0);
        a.attributes
            .insert("plan".into(), AttributeValue::Text("pro".into()));
        a.attributes
            .insert("seats".into(), AttributeValue::Number(4.0));
        let mut b = rel(0);
        b.attributes
            .insert("plan".into(), AttributeValue::Text("basic".into()));
        let spec = FeatureSpec {
            base: vec![BaseFeature::Frequency],
            kind: true,
            attributes: AttributeSelection::Auto,
            max_categories: 5,
            drop: vec![],
        };
        let schema = FeatureSchema::learn(&spec, [a.clone(), b.clone()].iter(), &[]).unwrap();
        assert_eq!(
            schema.names(),
            vec![
                "frequency",
                "plan=basic",
                "plan=pro",
                "seats",
                "seats_missing"
            ]
        );
        let mut c = rel(0);
        c.attributes
            .insert("plan".into(), AttributeValue::Text("enterprise".into()));
        let snap = Snapshot::derive(&c, &Aggregates::default(), 0);
        let mut out = Vec::new();
        schema.raw_values(&c, &snap, &mut out);
        assert_eq!(out, vec![0.0, 0.0, 0.0, 4.0, 1.0]);
    }
}
