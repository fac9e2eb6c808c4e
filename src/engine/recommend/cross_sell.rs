//! Cross-sell: complements of what the relationship owns, by basket lift,
//! then the most popular products it does not own, until there are as many
//! candidates as the request asks for actions (a relationship without
//! purchases gets popular products only). Every candidate is valued the same
//! way, `probability × price × margin − contact cost`, and only those that
//! pay are kept by the caller.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;
use crate::model::Baskets;

use super::{Action, ActionType};

/// A popular product is bought by this share of its popularity by a
/// relationship that stays: popularity is who owns it over all time, not
/// who buys it next.
const POPULAR_UPTAKE: f64 = 0.5;

pub(super) fn propose(
    e: &Evaluated,
    p: &Policy,
    excluded: &BTreeSet<&str>,
    wanted: usize,
    out: &mut Vec<Action>,
) {
    let aggregates = &e.data.aggregates;
    let owned: Vec<&str> = aggregates.products.keys().map(String::as_str).collect();
    let candidates = candidates(
        &e.model.bundle.baskets,
        &owned,
        &|id| aggregates.owns(id) || excluded.contains(id),
        1.0 - e.churn,
        p.cross_sell.min_lift,
        wanted,
    );
    out.extend(candidates.into_iter().map(|c| {
        let price = e
            .model
            .bundle
            .baskets
            .products
            .get(&c.product)
            .map_or(0.0, |i| i.price);
        Action {
            kind: ActionType::CrossSell,
            expected_net_value: c.probability * price * p.margin - p.cross_sell.contact_cost,
            probability: c.probability,
            cost: p.cross_sell.contact_cost,
            reason: c.reason,
            product_id: Some(c.product),
        }
    }));
}

#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    product: String,
    probability: f64,
    reason: String,
}

/// The products to offer a relationship that owns `owned` (and may not be
/// offered what `skip` says), staying with probability `stay`: each
/// complement of an owned product with at least `min_lift`, at the best
/// confidence any owned product gives it, then popular products until
/// there are `wanted`.
fn candidates(
    baskets: &Baskets,
    owned: &[&str],
    skip: &dyn Fn(&str) -> bool,
    stay: f64,
    min_lift: f64,
    wanted: usize,
) -> Vec<Candidate> {
    let mut best: BTreeMap<&str, Candidate> = BTreeMap::new();
    for o in owned {
        for c in baskets.complements.get(*o).into_iter().flatten() {
            if c.lift < min_lift || skip(&c.product) {
                continue;
            }
            let probability = (c.confidence * stay).min(1.0);
            if best
                .get(c.product.as_str())
                .is_none_or(|b| probability > b.probability)
            {
                let reason = format!(
                    "Bought {o}: {:.0}% of its buyers also buy {} (lift {:.1})",
                    c.confidence * 100.0,
                    c.product,
                    c.lift
                );
                best.insert(
                    &c.product,
                    Candidate {
                        product: c.product.clone(),
                        probability,
                        reason,
                    },
                );
            }
        }
    }
    let mut out: Vec<Candidate> = best.into_values().collect();
    let lead = if owned.is_empty() {
        "No purchase history yet"
    } else {
        "Among the most bought"
    };
    for id in &baskets.popular {
        if out.len() >= wanted {
            break;
        }
        if skip(id) || out.iter().any(|c| &c.product == id) {
            continue;
        }
        let popularity = baskets.products.get(id).map_or(0.0, |i| i.popularity);
        out.push(Candidate {
            product: id.clone(),
            probability: popularity * stay * POPULAR_UPTAKE,
            reason: format!(
                "{lead}: {id} is bought by {:.0}% of relationships",
                popularity * 100.0
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baskets() -> Baskets {
        let mut sets: Vec<Vec<&str>> = Vec::new();
        for i in 0..400 {
            let mut s = vec![];
            if i % 4 == 0 {
                s.extend(["printer", "toner"]);
            }
            if i % 3 == 0 {
                s.push("mug");
            }
            if i % 7 == 0 {
                s.push("pen");
            }
            if i % 11 == 0 {
                s.push("lamp");
            }
            sets.push(s);
        }
        Baskets::learn(sets.into_iter(), &[], &BTreeMap::new())
    }

    #[test]
    fn complements_come_first_then_popular_products_fill_the_list() {
        let b = baskets();
        let owned = ["printer"];
        let skip = |id: &str| owned.contains(&id);
        let c = candidates(&b, &owned, &skip, 0.8, 1.5, 4);
        assert_eq!(c.len(), 4, "{c:?}");
        assert_eq!(c[0].product, "toner");
        assert!(c[0].reason.starts_with("Bought printer"));
        assert!(
            (c[0].probability - 0.8).abs() < 1e-9,
            "toner always follows"
        );
        // Then by popularity: mug (134), pen (58), lamp (37); never the owned one.
        let rest: Vec<&str> = c[1..].iter().map(|c| c.product.as_str()).collect();
        assert_eq!(rest, ["mug", "pen", "lamp"]);
        assert!(c[1..]
            .iter()
            .all(|c| c.reason.starts_with("Among the most bought")));
        assert!(c.iter().all(|c| (0.0..=1.0).contains(&c.probability)));
    }

    #[test]
    fn without_purchases_the_list_is_popular_products_and_skips_what_it_must() {
        let b = baskets();
        let skip = |id: &str| id == "mug";
        let c = candidates(&b, &[], &skip, 1.0, 2.0, 3);
        let ids: Vec<&str> = c.iter().map(|c| c.product.as_str()).collect();
        assert_eq!(ids, ["printer", "toner", "pen"]);
        assert!(c[0].reason.starts_with("No purchase history yet"));
        // Fewer products than wanted: every one there is, once.
        let all = candidates(&b, &[], &|_| false, 1.0, 2.0, 50);
        assert_eq!(all.len(), b.popular.len());
    }
}
