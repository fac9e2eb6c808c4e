//! Domain types shared by the store, the features, the models and the gRPC
//! layer: relationships, their events, and the validation every write passes.
//!
//! Times are whole seconds since the Unix epoch, UTC ([`crate::time`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::{Timestamp, SECONDS_PER_DAY};

/// Longest relationship or product id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Events dated more than this far past the wall clock are refused as clock errors.
pub const MAX_FUTURE_SKEW_SECONDS: i64 = SECONDS_PER_DAY;
/// Earliest accepted timestamp (1970-01-01): nothing in a CRM book predates it.
pub const MIN_TIMESTAMP: i64 = 0;

/// What a store keeps per relationship beside its events, folded in as each
/// event is written, in the same atomic unit (`features::Aggregates`). The
/// store knows how to keep it, not what it means.
pub trait EventFold:
    Default + Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static
{
    /// Folds one event in.
    fn apply(&mut self, event: &Event);
    /// About how much memory the value takes, for caches that keep many.
    fn approx_bytes(&self) -> usize;
    /// The time of the newest event folded in.
    fn last_event(&self) -> Option<Timestamp>;
    /// The version of the stored encoding: raised whenever a change makes
    /// stored values undecodable, so that a store opened by the new build
    /// folds them again from their events (the fold is pure) rather than
    /// failing on them. Stores that kept no version hold version 1.
    const ENCODING: u64;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RelationshipKind {
    Customer,
    Account,
    Supplier,
    Partner,
}

impl RelationshipKind {
    pub const ALL: [RelationshipKind; 4] = [
        RelationshipKind::Customer,
        RelationshipKind::Account,
        RelationshipKind::Supplier,
        RelationshipKind::Partner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RelationshipKind::Customer => "customer",
            RelationshipKind::Account => "account",
            RelationshipKind::Supplier => "supplier",
            RelationshipKind::Partner => "partner",
        }
    }

    /// Parses the names used in CSV files and specs.
    ///
    /// # Errors
    /// `InvalidArgument` naming `field` when the name is not a kind.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "customer" | "b2c" => Ok(RelationshipKind::Customer),
            "account" | "b2b" => Ok(RelationshipKind::Account),
            "supplier" => Ok(RelationshipKind::Supplier),
            "partner" => Ok(RelationshipKind::Partner),
            other => Err(Error::invalid(
                field,
                format!("unknown kind {other:?}; expected customer, account, supplier or partner"),
            )),
        }
    }
}

/// Where a model version is active: for every kind (the default), or for one
/// kind, which then no longer falls back to the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelSlot {
    Default,
    Kind(RelationshipKind),
}

impl ModelSlot {
    pub const ALL: [ModelSlot; 5] = [
        ModelSlot::Default,
        ModelSlot::Kind(RelationshipKind::Customer),
        ModelSlot::Kind(RelationshipKind::Account),
        ModelSlot::Kind(RelationshipKind::Supplier),
        ModelSlot::Kind(RelationshipKind::Partner),
    ];

    /// Parses a slot's name: empty or `default`, or a kind's name.
    ///
    /// # Errors
    /// `InvalidArgument` naming `field` for anything else.
    pub fn parse(field: &str, text: &str) -> Result<ModelSlot> {
        match text.trim() {
            "" | "default" => Ok(ModelSlot::Default),
            kind => RelationshipKind::parse(field, kind)
                .map(ModelSlot::Kind)
                .map_err(|_| {
                    Error::invalid(
                        field,
                        format!("unknown slot {kind:?}; expected default, customer, account, supplier or partner"),
                    )
                }),
        }
    }

    /// The slot's name in logs, keys and messages: `default` or the kind.
    pub fn name(self) -> &'static str {
        match self {
            ModelSlot::Default => "default",
            ModelSlot::Kind(kind) => kind.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttributeValue {
    Number(f64),
    Text(String),
}

impl AttributeValue {
    /// The value as a model's numeric column reads it. Text that is a
    /// number, or yes/no (`yes`, `y`, `true`, `t` / `no`, `n`, `false`,
    /// `f`, any case), counts as one: training types a table column from its
    /// cells, while an ingest or an upsert may keep the same cells as text,
    /// and the same row must score the same either way.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            AttributeValue::Number(v) => v.is_finite().then_some(*v),
            AttributeValue::Text(t) => {
                let t = t.trim();
                match t.parse::<f64>() {
                    Ok(v) => v.is_finite().then_some(v),
                    Err(_) => parse_yes_no(t),
                }
            }
        }
    }

    /// Whether the value is the category `category` of a model's
    /// categorical column; a number is when the category is its numeral.
    pub fn is_category(&self, category: &str) -> bool {
        match self {
            AttributeValue::Text(t) => t == category,
            AttributeValue::Number(v) => category.trim().parse::<f64>() == Ok(*v),
        }
    }
}

/// 1 for yes, 0 for no, in the words a CSV export uses (see
/// [`AttributeValue::as_number`]); `None` for anything else.
pub fn parse_yes_no(cell: &str) -> Option<f64> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "1" => Some(1.0),
        "no" | "n" | "false" | "f" | "0" => Some(0.0),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relationship {
    pub id: String,
    pub kind: RelationshipKind,
    pub created_at: Timestamp,
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// What an upsert says about a relationship: each field it leaves out keeps
/// the stored value ([`RelationshipUpdate::apply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipUpdate {
    pub id: String,
    pub kind: Option<RelationshipKind>,
    pub created_at: Option<Timestamp>,
    /// A value replaces the stored one; `None` removes the attribute.
    pub attributes: BTreeMap<String, Option<AttributeValue>>,
    /// Replace the stored attributes with exactly the ones given.
    pub replace_attributes: bool,
}

impl RelationshipUpdate {
    /// The relationship after this update: merged into `stored`, or, for a
    /// new id, created with `now` standing in for a missing `created_at`.
    ///
    /// # Errors
    /// `InvalidArgument` for a new relationship without a kind.
    pub fn apply(self, stored: Option<Relationship>, now: Timestamp) -> Result<Relationship> {
        let RelationshipUpdate {
            id,
            kind,
            created_at,
            attributes,
            replace_attributes,
        } = self;
        let (base_kind, base_created, mut attrs) = match stored {
            Some(r) => (Some(r.kind), r.created_at, r.attributes),
            None => (None, created_at.unwrap_or(now), BTreeMap::new()),
        };
        if replace_attributes {
            attrs.clear();
        }
        for (name, value) in attributes {
            match value {
                Some(v) => {
                    attrs.insert(name, v);
                }
                None => {
                    attrs.remove(&name);
                }
            }
        }
        let kind = kind.or(base_kind).ok_or_else(|| {
            Error::invalid(
                "relationship.kind",
                "must be set to create a relationship: RELATIONSHIP_KIND_CUSTOMER, _ACCOUNT, _SUPPLIER or _PARTNER",
            )
        })?;
        Ok(Relationship {
            id,
            kind,
            created_at: created_at.unwrap_or(base_created),
            attributes: attrs,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InteractionKind {
    SupportTicket,
    Complaint,
    Visit,
    Survey,
}

/// What happened, without the relationship it happened to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventBody {
    Purchase {
        amount: f64,
        product_ids: Vec<String>,
        quantity: u32,
    },
    Interaction {
        kind: InteractionKind,
        survey_score: Option<f64>,
    },
    Payment {
        amount: f64,
        days_late: f64,
    },
    /// A delivery from a supplier; the event's time is its arrival.
    Delivery {
        promised_at: Timestamp,
        category: String,
        ordered: f64,
        received: f64,
        rejected: f64,
        unit_price: f64,
    },
    /// Our spend with a supplier in a category.
    PurchaseOrder {
        amount: f64,
        category: String,
    },
    /// A deal a partner sourced, in the state it reached at the event's time.
    PartnerDeal {
        deal_id: String,
        value: f64,
        outcome: DealOutcome,
    },
    /// An invoice to an account, issued at the event's time.
    Invoice {
        invoice_id: String,
        amount: f64,
        terms_days: u32,
        paid_at: Option<Timestamp>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DealOutcome {
    Open,
    Won,
    Lost,
}

/// Longest payment terms an invoice may carry, in days.
pub const MAX_TERMS_DAYS: u32 = 365;
/// How far from its arrival a delivery's promised date may lie.
const MAX_PROMISE_GAP_SECONDS: i64 = 3650 * SECONDS_PER_DAY;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    pub body: EventBody,
}

/// An event addressed to a relationship, as it arrives from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    pub relationship_id: String,
    pub event: Event,
}

/// A product in the catalogue, learned from purchases or loaded by the demo book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub category: String,
    /// Typical price of one unit.
    pub price: f64,
}

/// Checks an id (relationship or product) so that it is safe as a sled key
/// prefix and reads as what it is: an id that is blank, or that hides
/// characters (zero-width) or reorders what is shown (bidi controls), would
/// show as another id in a log, a CSV or a support tool.
///
/// # Errors
/// `InvalidArgument` naming `field` when empty, whitespace only, too long, or
/// containing control, zero-width or bidi-control characters.
pub fn validate_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if id.chars().all(char::is_whitespace) {
        return Err(Error::invalid(field, "must not be only whitespace"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            field,
            format!("is {} bytes, longer than {MAX_ID_BYTES}", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    if let Some(c) = id.chars().find(|c| is_invisible(*c)) {
        return Err(Error::invalid(
            field,
            format!(
                "must not contain zero-width or bidi-control characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// Characters that change how an id displays without showing themselves:
/// zero-width spaces and joiners, the word joiner, the byte-order mark, the
/// soft hyphen, and the bidirectional marks, embeddings, overrides and isolates.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Checks that `at` is no more than `max_skew` seconds past `now`: a write
/// dated in the future is a client clock error, and it would sit outside
/// every "now" read until its time came.
///
/// # Errors
/// `InvalidArgument` naming `field`.
pub fn validate_not_future(
    field: &str,
    at: Timestamp,
    now: Timestamp,
    max_skew: i64,
) -> Result<()> {
    if at > now.saturating_add(max_skew) {
        return Err(Error::invalid(
            field,
            format!(
                "is {} s in the future, more than the {max_skew} s of clock skew allowed (--max-clock-skew)",
                at - now
            ),
        ));
    }
    Ok(())
}

/// Checks a number is finite and inside `[min, max]`.
///
/// # Errors
/// `InvalidArgument` naming `field`.
pub fn validate_number(field: &str, value: f64, min: f64, max: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(Error::invalid(
            field,
            format!("must be finite, got {value}"),
        ));
    }
    if value < min || value > max {
        return Err(Error::invalid(
            field,
            format!("{value} is outside [{min}, {max}]"),
        ));
    }
    Ok(())
}

/// Checks a timestamp is not before 1970 nor more than a day past `now`.
///
/// # Errors
/// `InvalidArgument` naming `field`.
pub fn validate_timestamp(field: &str, at: Timestamp, now: Timestamp) -> Result<()> {
    if at < MIN_TIMESTAMP {
        return Err(Error::invalid(field, "is before 1970-01-01"));
    }
    if at > now + MAX_FUTURE_SKEW_SECONDS {
        return Err(Error::invalid(
            field,
            format!(
                "is {:.1} days in the future; events must have happened",
                (at - now) as f64 / SECONDS_PER_DAY as f64
            ),
        ));
    }
    Ok(())
}

impl Relationship {
    /// About how much memory this takes, for caches that keep many.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Relationship>()
            + self.id.capacity()
            + self
                .attributes
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        AttributeValue::Text(t) => t.capacity(),
                        AttributeValue::Number(_) => 0,
                    };
                    k.capacity() + text + 64
                })
                .sum::<usize>()
    }

    /// # Errors
    /// `InvalidArgument` naming the offending field.
    pub fn validate(&self, now: Timestamp) -> Result<()> {
        validate_id("relationship.id", &self.id)?;
        validate_timestamp("relationship.created_at", self.created_at, now)?;
        if self.attributes.len() > 256 {
            return Err(Error::invalid(
                "relationship.attributes",
                format!("has {} entries, more than 256", self.attributes.len()),
            ));
        }
        for (name, value) in &self.attributes {
            let field = format!("relationship.attributes[{name:?}]");
            validate_id(&field, name)?;
            match value {
                AttributeValue::Number(v) => validate_number(&field, *v, f64::MIN, f64::MAX)?,
                AttributeValue::Text(t) if t.len() > 1024 => {
                    return Err(Error::invalid(&field, "text is longer than 1024 bytes"))
                }
                AttributeValue::Text(_) => {}
            }
        }
        Ok(())
    }
}

/// Largest amount accepted for one purchase or payment.
pub const MAX_AMOUNT: f64 = 1e12;

impl Event {
    /// # Errors
    /// `InvalidArgument` naming the field within the event (`at`,
    /// `purchase.amount`, ...) and the reason; the caller says where the event
    /// is with [`Error::within`]. Nothing is formatted unless it fails.
    pub fn validate(&self, now: Timestamp) -> Result<()> {
        validate_timestamp("at", self.at, now)?;
        match &self.body {
            EventBody::Purchase {
                amount,
                product_ids,
                quantity: _,
            } => {
                validate_number("purchase.amount", *amount, 0.0, MAX_AMOUNT)?;
                if product_ids.len() > 1000 {
                    return Err(Error::invalid(
                        "purchase.product_ids",
                        "more than 1000 products",
                    ));
                }
                for (i, p) in product_ids.iter().enumerate() {
                    if validate_id("", p).is_err() {
                        // Only a bad id is worth formatting its position for.
                        validate_id(&format!("purchase.product_ids[{i}]"), p)?;
                    }
                }
            }
            EventBody::Interaction { kind, survey_score } => match (kind, survey_score) {
                (InteractionKind::Survey, Some(score)) => {
                    validate_number("interaction.survey_score", *score, 0.0, 10.0)?
                }
                (InteractionKind::Survey, None) => {
                    return Err(Error::invalid(
                        "interaction.survey_score",
                        "is required for a survey",
                    ))
                }
                (_, Some(_)) => {
                    return Err(Error::invalid(
                        "interaction.survey_score",
                        "is only allowed on a survey",
                    ))
                }
                (_, None) => {}
            },
            EventBody::Payment { amount, days_late } => {
                validate_number("payment.amount", *amount, 0.0, MAX_AMOUNT)?;
                validate_number("payment.days_late", *days_late, -3650.0, 3650.0)?;
            }
            EventBody::Delivery {
                promised_at,
                category,
                ordered,
                received,
                rejected,
                unit_price,
            } => {
                if (promised_at - self.at).abs() > MAX_PROMISE_GAP_SECONDS
                    || *promised_at < MIN_TIMESTAMP
                {
                    return Err(Error::invalid(
                        "delivery.promised_at",
                        "must be within 3650 days of the arrival and after 1970-01-01",
                    ));
                }
                validate_id("delivery.category", category)?;
                validate_number("delivery.quantity_ordered", *ordered, 0.0, MAX_AMOUNT)?;
                if *ordered == 0.0 {
                    return Err(Error::invalid(
                        "delivery.quantity_ordered",
                        "must be above 0: a delivery fills an order",
                    ));
                }
                validate_number("delivery.quantity_received", *received, 0.0, MAX_AMOUNT)?;
                validate_number("delivery.units_rejected", *rejected, 0.0, *received)?;
                validate_number("delivery.unit_price", *unit_price, 0.0, MAX_AMOUNT)?;
            }
            EventBody::PurchaseOrder { amount, category } => {
                validate_number("purchase_order.amount", *amount, 0.0, MAX_AMOUNT)?;
                validate_id("purchase_order.category", category)?;
            }
            EventBody::PartnerDeal {
                deal_id,
                value,
                outcome: _,
            } => {
                validate_id("partner_deal.deal_id", deal_id)?;
                validate_number("partner_deal.value", *value, 0.0, MAX_AMOUNT)?;
            }
            EventBody::Invoice {
                invoice_id,
                amount,
                terms_days,
                paid_at,
            } => {
                validate_id("invoice.invoice_id", invoice_id)?;
                validate_number("invoice.amount", *amount, 0.0, MAX_AMOUNT)?;
                if *terms_days > MAX_TERMS_DAYS {
                    return Err(Error::invalid(
                        "invoice.terms_days",
                        format!("{terms_days} is more than {MAX_TERMS_DAYS}"),
                    ));
                }
                if let Some(paid) = paid_at {
                    validate_timestamp("invoice.paid_at", *paid, now)?;
                    if *paid < self.at {
                        return Err(Error::invalid(
                            "invoice.paid_at",
                            "is before the invoice was issued (at)",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("id", "c-1").is_ok());
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", "a\0b").is_err());
        assert!(validate_id("id", &"x".repeat(129)).is_err());
        for bad in [
            " ",
            " \t ",
            "\u{3000}",
            "a\u{200B}b",
            "\u{FEFF}c-1",
            "c\u{202E}1",
            "c\u{2066}1",
        ] {
            assert!(validate_id("id", bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_id("id", "Zoë Müller-3").is_ok());
        assert!(validate_id("id", "客户-7").is_ok());
        let err = validate_id("id", "a\u{200D}b").unwrap_err().to_string();
        assert!(err.contains("U+200D"), "{err}");
    }

    #[test]
    fn an_update_keeps_what_it_leaves_out() {
        let stored = Relationship {
            id: "a".into(),
            kind: RelationshipKind::Account,
            created_at: 100,
            attributes: [
                ("plan".to_string(), AttributeValue::Text("pro".into())),
                ("seats".to_string(), AttributeValue::Number(4.0)),
            ]
            .into_iter()
            .collect(),
        };
        let update = RelationshipUpdate {
            id: "a".into(),
            kind: None,
            created_at: None,
            attributes: [
                ("seats".to_string(), Some(AttributeValue::Number(9.0))),
                ("plan".to_string(), None),
                (
                    "region".to_string(),
                    Some(AttributeValue::Text("north".into())),
                ),
            ]
            .into_iter()
            .collect(),
            replace_attributes: false,
        };
        let merged = update.clone().apply(Some(stored.clone()), 999).unwrap();
        assert_eq!(
            (merged.kind, merged.created_at),
            (RelationshipKind::Account, 100)
        );
        assert_eq!(merged.attributes.len(), 2);
        assert_eq!(merged.attributes["seats"], AttributeValue::Number(9.0));
        assert!(!merged.attributes.contains_key("plan"));
        let replaced = RelationshipUpdate {
            replace_attributes: true,
            attributes: BTreeMap::new(),
            ..update.clone()
        }
        .apply(Some(stored), 999)
        .unwrap();
        assert!(replaced.attributes.is_empty());
        let err = update.apply(None, 999).unwrap_err().to_string();
        assert!(err.contains("relationship.kind"), "{err}");
    }

    #[test]
    fn nan_amount_is_named() {
        let e = Event {
            at: 1000,
            body: EventBody::Purchase {
                amount: f64::NAN,
                product_ids: vec![],
                quantity: 1,
            },
        };
        let err = e
            .validate(2000)
            .unwrap_err()
            .within("events[3]")
            .to_string();
        assert!(err.contains("events[3].purchase.amount"), "{err}");
    }

    #[test]
    fn kind_events_name_the_bad_field() {
        let delivery = |ordered: f64, received: f64, rejected: f64| Event {
            at: 100 * SECONDS_PER_DAY,
            body: EventBody::Delivery {
                promised_at: 98 * SECONDS_PER_DAY,
                category: "resin".into(),
                ordered,
                received,
                rejected,
                unit_price: 2.5,
            },
        };
        let now = 200 * SECONDS_PER_DAY;
        assert!(delivery(10.0, 10.0, 1.0).validate(now).is_ok());
        let err = delivery(10.0, 5.0, 6.0)
            .validate(now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("delivery.units_rejected"), "{err}");
        let err = delivery(0.0, 0.0, 0.0)
            .validate(now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("delivery.quantity_ordered"), "{err}");
        let invoice = |terms_days: u32, paid_at: Option<Timestamp>| Event {
            at: 100 * SECONDS_PER_DAY,
            body: EventBody::Invoice {
                invoice_id: "inv-1".into(),
                amount: 500.0,
                terms_days,
                paid_at,
            },
        };
        assert!(invoice(30, Some(140 * SECONDS_PER_DAY))
            .validate(now)
            .is_ok());
        let err = invoice(30, Some(SECONDS_PER_DAY))
            .validate(now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invoice.paid_at"), "{err}");
        let err = invoice(400, None).validate(now).unwrap_err().to_string();
        assert!(err.contains("invoice.terms_days"), "{err}");
    }

    #[test]
    fn the_clock_skew_bounds_future_writes() {
        assert!(validate_not_future("at", 1_300, 1_000, 300).is_ok());
        let err = validate_not_future("at", 1_301, 1_000, 300)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("301 s in the future") && err.contains("300 s"),
            "{err}"
        );
    }

    #[test]
    fn far_future_is_refused() {
        let e = Event {
            at: 10 * SECONDS_PER_DAY,
            body: EventBody::Interaction {
                kind: InteractionKind::Visit,
                survey_score: None,
            },
        };
        assert!(e.validate(0).is_err());
        assert!(e.validate(10 * SECONDS_PER_DAY).is_ok());
    }
}
