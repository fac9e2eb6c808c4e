//! The business policy behind Recommend and the value tiers: margins, offer
//! costs and uplifts, life-cycle thresholds. A TOML file in `models/` that the
//! business edits; the built-in copy is `models/policy.toml`.

use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_POLICY: &str = include_str!("../../models/policy.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub margin: f64,
    pub cost_to_serve_per_year: f64,
    pub retention: Retention,
    pub cross_sell: CrossSell,
    pub up_sell: UpSell,
    pub win_back: WinBack,
    pub loyalty: Loyalty,
    pub lifecycle: Lifecycle,
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
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    pub new_days: u32,
    pub lapsed_days: u32,
    pub at_risk_churn: f64,
}

impl Policy {
    /// # Errors
    /// `BadInput` naming the file and the field.
    pub fn parse(path: &str, text: &str) -> Result<Policy> {
        let bad = |reason: String| Error::BadInput {
            path: path.to_string(),
            reason,
        };
        let policy: Policy = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let fractions = [
            ("margin", policy.margin),
            ("retention.uplift", policy.retention.uplift),
            ("up_sell.acceptance", policy.up_sell.acceptance),
            ("win_back.success_rate", policy.win_back.success_rate),
            ("loyalty.churn_reduction", policy.loyalty.churn_reduction),
            ("loyalty.max_churn", policy.loyalty.max_churn),
            ("lifecycle.at_risk_churn", policy.lifecycle.at_risk_churn),
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
            ("loyalty.spend_lift", policy.loyalty.spend_lift),
            ("cross_sell.min_lift", policy.cross_sell.min_lift),
            ("up_sell.min_price_ratio", policy.up_sell.min_price_ratio),
        ];
        for (field, v) in amounts {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(format!("{field} = {v} must be finite and >= 0")));
            }
        }
        Ok(policy)
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
}
