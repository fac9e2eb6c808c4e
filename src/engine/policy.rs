//! The business policy behind Recommend and the value tiers: margins, offer
//! costs and uplifts, life-cycle thresholds. A TOML file in `models/` that the
//! business edits; the built-in copy is `models/policy.toml`.

use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_POLICY: &str = include_str!("../../models/policy.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// How reasons name money amounts.
    pub currency: String,
    pub margin: f64,
    pub cost_to_serve_per_year: f64,
    pub retention: Retention,
    pub cross_sell: CrossSell,
    pub up_sell: UpSell,
    pub win_back: WinBack,
    pub loyalty: Loyalty,
    pub supplier: SupplierPolicy,
    pub account: AccountPolicy,
    pub partner: PartnerPolicy,
    pub lifecycle: Lifecycle,
    pub health: HealthWeights,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub offer_cost: f64,
    pub uplift: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossSell {
    pub contact_cost: f64,
    pub min_lift: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpSell {
    pub contact_cost: f64,
    pub acceptance: f64,
    pub min_price_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinBack {
    pub offer_cost: f64,
    pub success_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loyalty {
    pub cost: f64,
    pub churn_reduction: f64,
    pub spend_lift: f64,
    pub max_churn: f64,
    /// The programme is for relationships with a history: at least this
    /// many purchase occasions ...
    pub min_occasions: u32,
    /// ... over at least this many days.
    pub min_tenure_days: u32,
}

/// The economics of supplier actions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierPolicy {
    pub disruption_cost_share: f64,
    pub second_source_cost: f64,
    pub second_source_risk_reduction: f64,
    pub renegotiation_cost: f64,
    pub renegotiation_recovery: f64,
    pub min_price_rise: f64,
    pub consolidation_cost: f64,
    pub consolidation_saving: f64,
    pub small_supplier_share: f64,
    pub min_small_suppliers: u32,
    pub development_cost: f64,
    pub development_risk_reduction: f64,
}

/// The economics of the account action (a payment-terms review).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPolicy {
    pub late_payment_cost_share: f64,
    pub terms_review_cost: f64,
    pub terms_review_risk_reduction: f64,
}

/// The economics of partner actions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerPolicy {
    pub enablement_cost: f64,
    pub enablement_uplift: f64,
    pub incentive_cost: f64,
    pub incentive_lapse_reduction: f64,
    pub min_incentive_lapse_risk: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    pub new_days: u32,
    pub at_risk_churn: f64,
}

/// Weights of the health score's components.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthWeights {
    pub retention: f64,
    pub engagement: f64,
    pub satisfaction: f64,
    pub payment: f64,
    pub value_trend: f64,
}

impl Policy {
    /// # Errors
    /// `BadInput` naming the file and the field.
    pub fn parse(path: &str, text: &str) -> Result<Policy> {
        let bad = |reason: String| Error::BadInput {
            path: path.to_string(),
            reason,
        };
        // A file may hold only what it changes: it is laid over the built-in policy.
        let mut merged: toml::Table =
            toml::from_str(DEFAULT_POLICY).expect("the built-in policy is valid TOML");
        let given: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        overlay(&mut merged, given);
        let policy: Policy = merged
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let fractions = [
            ("margin", policy.margin),
            ("retention.uplift", policy.retention.uplift),
            ("up_sell.acceptance", policy.up_sell.acceptance),
            ("win_back.success_rate", policy.win_back.success_rate),
            ("loyalty.churn_reduction", policy.loyalty.churn_reduction),
            ("loyalty.max_churn", policy.loyalty.max_churn),
            ("lifecycle.at_risk_churn", policy.lifecycle.at_risk_churn),
            ("health.retention", policy.health.retention),
            ("health.engagement", policy.health.engagement),
            ("health.satisfaction", policy.health.satisfaction),
            ("health.payment", policy.health.payment),
            ("health.value_trend", policy.health.value_trend),
            (
                "supplier.disruption_cost_share",
                policy.supplier.disruption_cost_share,
            ),
            (
                "supplier.second_source_risk_reduction",
                policy.supplier.second_source_risk_reduction,
            ),
            (
                "supplier.renegotiation_recovery",
                policy.supplier.renegotiation_recovery,
            ),
            ("supplier.min_price_rise", policy.supplier.min_price_rise),
            (
                "supplier.consolidation_saving",
                policy.supplier.consolidation_saving,
            ),
            (
                "supplier.small_supplier_share",
                policy.supplier.small_supplier_share,
            ),
            (
                "supplier.development_risk_reduction",
                policy.supplier.development_risk_reduction,
            ),
            (
                "account.late_payment_cost_share",
                policy.account.late_payment_cost_share,
            ),
            (
                "account.terms_review_risk_reduction",
                policy.account.terms_review_risk_reduction,
            ),
            (
                "partner.incentive_lapse_reduction",
                policy.partner.incentive_lapse_reduction,
            ),
            (
                "partner.min_incentive_lapse_risk",
                policy.partner.min_incentive_lapse_risk,
            ),
        ];
        for (field, v) in fractions {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(format!("{field} = {v} must be a fraction in [0, 1]")));
            }
        }
        let amounts = [
            ("cost_to_serve_per_year", policy.cost_to_serve_per_year),
            ("retention.offer_cost", policy.retention.offer_cost),
            ("cross_sell.contact_cost", policy.cross_sell.contact_cost),
            ("up_sell.contact_cost", policy.up_sell.contact_cost),
            ("win_back.offer_cost", policy.win_back.offer_cost),
            ("loyalty.cost", policy.loyalty.cost),
            (
                "account.terms_review_cost",
                policy.account.terms_review_cost,
            ),
            ("partner.enablement_cost", policy.partner.enablement_cost),
            (
                "partner.enablement_uplift",
                policy.partner.enablement_uplift,
            ),
            ("partner.incentive_cost", policy.partner.incentive_cost),
            ("loyalty.spend_lift", policy.loyalty.spend_lift),
            ("cross_sell.min_lift", policy.cross_sell.min_lift),
            ("up_sell.min_price_ratio", policy.up_sell.min_price_ratio),
            (
                "supplier.second_source_cost",
                policy.supplier.second_source_cost,
            ),
            (
                "supplier.renegotiation_cost",
                policy.supplier.renegotiation_cost,
            ),
            (
                "supplier.consolidation_cost",
                policy.supplier.consolidation_cost,
            ),
            (
                "supplier.development_cost",
                policy.supplier.development_cost,
            ),
        ];
        for (field, v) in amounts {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(format!("{field} = {v} must be finite and >= 0")));
            }
        }
        if policy.margin == 0.0 {
            return Err(bad(
                "margin = 0 leaves no profit to rank or recommend by".into()
            ));
        }
        if policy.health.retention == 0.0 {
            return Err(bad(
                "health.retention must be above 0: the health score must follow churn".into(),
            ));
        }
        Ok(policy)
    }
}

/// Lays `given` over `base`, key by key, into nested tables.
fn overlay(base: &mut toml::Table, given: toml::Table) {
    for (key, value) in given {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => overlay(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::parse("models/policy.toml", DEFAULT_POLICY).expect("the built-in policy is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_policy_parses_and_bad_values_are_named() {
        let p = Policy::default();
        assert!(p.margin > 0.0);
        let bad = DEFAULT_POLICY.replace("margin = 0.30", "margin = 3.0");
        let err = Policy::parse("p.toml", &bad).unwrap_err().to_string();
        assert!(err.contains("margin"), "{err}");
    }

    #[test]
    fn a_partial_file_keeps_the_built_in_values_for_what_it_leaves_out() {
        let p = Policy::parse("p.toml", "margin = 0.5\n[retention]\noffer_cost = 3.0\n").unwrap();
        let built_in = Policy::default();
        assert_eq!(p.margin, 0.5);
        assert_eq!(p.retention.offer_cost, 3.0);
        assert_eq!(p.retention.uplift, built_in.retention.uplift);
        assert_eq!(p.loyalty, built_in.loyalty);
        let err = Policy::parse("p.toml", "[retention]\ncolour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
