//! Cross-sell: what the basket rules suggest for the products the
//! relationship owns ([`Baskets::suggest`]: complements combined across the
//! basket, and popular products it does not own), as many as the request
//! asks for actions (a relationship without purchases gets popular products
//! only). Every candidate is valued the same way, `P(stays) × P(bought next)
//! × price × margin − contact cost`, and only those that pay are kept by the
//! caller.

use std::collections::BTreeSet;

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;
use crate::model::Baskets;

use super::{Action, ActionType};

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
/// offered what `skip` says), staying with probability `stay`, with the
/// reason for each.
fn candidates(
    baskets: &Baskets,
    owned: &[&str],
    skip: &dyn Fn(&str) -> bool,
    stay: f64,
    min_lift: f64,
    wanted: usize,
) -> Vec<Candidate> {
    let lead = if owned.is_empty() {
        "No purchase history yet"
    } else {
        "Among the most bought"
    };
    baskets
        .suggest(owned, skip, min_lift, wanted)
        .into_iter()
        .map(|s| {
            let reason = match &s.because {
                Some((o, c)) => format!(
                    "Bought {o}: {:.0}% of its buyers also buy {} (lift {:.1})",
                    c.confidence * 100.0,
                    c.product,
                    c.lift
                ),
                None => format!(
                    "{lead}: {} is bought by {:.0}% of relationships",
                    s.product,
                    baskets
                        .products
                        .get(&s.product)
                        .map_or(0.0, |i| i.popularity)
                        * 100.0
                ),
            };
            Candidate {
                probability: (s.probability * stay).min(1.0),
                product: s.product,
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        // Toner always follows a printer: nearly the whole uptake, against
        // the popular products' share of theirs.
        let toner = 0.8 * crate::model::baskets::UPTAKE;
        assert!(
            c[0].probability > 0.9 * toner && c[0].probability <= toner,
            "{c:?}"
        );
        assert!(c[1..]
            .iter()
            .all(|o| o.probability < c[0].probability / 2.0));
        // Then by popularity: mug (134), pen (58), lamp (37); never the owned one.
        let rest: Vec<&str> = c[1..].iter().map(|c| c.product.as_str()).collect();
        assert_eq!(rest, ["mug", "pen", "lamp"]);
        assert!(c[1..]
            .iter()
            .all(|c| c.reason.starts_with("Among the most bought")));
        assert!(c.iter().all(|c| (0.0..=1.0).contains(&c.probability)));
    }

    #[test]
    fn two_owned_products_that_point_at_one_count_for_more_than_one() {
        let mut sets: Vec<Vec<&str>> = Vec::new();
        for i in 0..600 {
            let mut s = vec![];
            if i % 3 == 0 {
                s.push("a");
            }
            if i % 5 == 0 {
                s.push("b");
            }
            // c follows a or b half the time, each on its own.
            if (i % 3 == 0 && i % 2 == 0) || (i % 5 == 0 && i % 4 == 1) {
                s.push("c");
            }
            if i % 7 == 0 {
                s.push("d");
            }
            sets.push(s);
        }
        let b = Baskets::learn(sets.into_iter(), &[], &BTreeMap::new());
        let p = |owned: &[&str]| {
            candidates(&b, owned, &|id| owned.contains(&id), 1.0, 1.0, 3)
                .into_iter()
                .find(|c| c.product == "c")
                .map(|c| c.probability)
                .unwrap()
        };
        let (one, other, both) = (p(&["a"]), p(&["b"]), p(&["a", "b"]));
        assert!(both > one.max(other), "{one} {other} {both}");
        // An unrelated product adds nothing.
        assert!(
            (p(&["a", "d"]) - one).abs() < 0.02,
            "{} vs {one}",
            p(&["a", "d"])
        );
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
