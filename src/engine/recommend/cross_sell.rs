//! Cross-sell: complements of what the relationship owns, by basket lift;
//! the most popular products for a relationship without purchases.

use std::collections::BTreeSet;

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;

use super::{Action, ActionType};

pub(super) fn propose(e: &Evaluated, p: &Policy, excluded: &BTreeSet<&str>, out: &mut Vec<Action>) {
    let baskets = &e.model.bundle.baskets;
    let stay = 1.0 - e.churn;
    let mut best: std::collections::BTreeMap<&str, (f64, f64, String)> = Default::default();
    let candidate_ok = |id: &str| !e.data.aggregates.owns(id) && !excluded.contains(id);
    if e.data.aggregates.products.is_empty() {
        // Cold start: what most relationships buy.
        for id in baskets.popular.iter().filter(|id| candidate_ok(id)).take(3) {
            let info = &baskets.products[id];
            let prob = info.popularity * stay * 0.5;
            let net = prob * info.price * p.margin - p.cross_sell.contact_cost;
            best.insert(
                id,
                (
                    net,
                    prob,
                    format!(
                        "No purchase history yet: {id} is bought by {:.0}% of relationships",
                        info.popularity * 100.0
                    ),
                ),
            );
        }
    } else {
        for owned in e.data.aggregates.products.keys() {
            for c in baskets.complements.get(owned).into_iter().flatten() {
                if c.lift < p.cross_sell.min_lift || !candidate_ok(&c.product) {
                    continue;
                }
                let price = baskets.products.get(&c.product).map_or(0.0, |i| i.price);
                let prob = (c.confidence * stay).min(1.0);
                let net = prob * price * p.margin - p.cross_sell.contact_cost;
                let reason = format!(
                    "Bought {owned}: {:.0}% of its buyers also buy {} (lift {:.1})",
                    c.confidence * 100.0,
                    c.product,
                    c.lift
                );
                if best.get(c.product.as_str()).is_none_or(|b| net > b.0) {
                    best.insert(&c.product, (net, prob, reason));
                }
            }
        }
    }
    out.extend(best.into_iter().map(|(id, (net, prob, reason))| Action {
        kind: ActionType::CrossSell,
        product_id: Some(id.to_string()),
        expected_net_value: net,
        probability: prob,
        cost: p.cross_sell.contact_cost,
        reason,
    }));
}
