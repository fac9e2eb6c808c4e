//! Basket rules for cross-sell: which products go together, learned from the
//! product sets relationships have bought (co-occurrence with lift), plus
//! popularity for cold starts and a price per product for expected values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::Product;

/// Pairs seen together fewer times than this are noise, not rules.
const MIN_PAIR_SUPPORT: u32 = 10;
/// Complements kept per product.
const MAX_COMPLEMENTS: usize = 10;
/// Products of one relationship that pairs are counted among. A relationship
/// with more (a wholesaler, or a polluted import: 6,000 products on one
/// relationship took 1.43 GB of pairs) has its pairs counted among this many
/// of them, the same ones for every relationship that has them (the lowest
/// by a hash of the id), so at most 2,016 pairs per relationship.
pub const MAX_BASKET_PRODUCTS: usize = 64;
/// Distinct pairs kept while counting; past it, pairs seen only once so far
/// are dropped (they are far below [`MIN_PAIR_SUPPORT`]), so the counts of
/// rare pairs may come out low but the memory stays bounded.
pub const MAX_PAIR_KEYS: usize = 2_000_000;

/// FNV-1a of a product id: the order [`MAX_BASKET_PRODUCTS`] samples in.
fn product_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Complement {
    pub product: String,
    /// P(both) / (P(this) P(that)); above 1 means they go together.
    pub lift: f64,
    /// P(that | this).
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductInfo {
    pub category: String,
    pub price: f64,
    /// Share of relationships that own it.
    pub popularity: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baskets {
    pub complements: BTreeMap<String, Vec<Complement>>,
    pub products: BTreeMap<String, ProductInfo>,
    /// Product ids, most popular first.
    pub popular: Vec<String>,
}

impl Baskets {
    /// Learns from each relationship's set of owned products. `catalogue` gives
    /// categories and prices where known; `observed_prices` (mean amount per
    /// product line) fills the rest.
    pub fn learn<'a>(
        owned: impl Iterator<Item = Vec<&'a str>>,
        catalogue: &[Product],
        observed_prices: &BTreeMap<String, f64>,
    ) -> Baskets {
        let mut singles: BTreeMap<&str, u32> = BTreeMap::new();
        let mut pairs: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        let mut n = 0u32;
        for mut set in owned {
            set.sort_unstable();
            set.dedup();
            n += 1;
            for a in &set {
                *singles.entry(a).or_default() += 1;
            }
            if set.len() > MAX_BASKET_PRODUCTS {
                set.sort_unstable_by_key(|p| (product_hash(p), *p));
                set.truncate(MAX_BASKET_PRODUCTS);
                set.sort_unstable();
            }
            for (i, a) in set.iter().enumerate() {
                for b in &set[i + 1..] {
                    *pairs.entry((*a, *b)).or_default() += 1;
                }
            }
            if pairs.len() > MAX_PAIR_KEYS {
                pairs.retain(|_, count| *count > 1);
            }
        }
        let nf = f64::from(n.max(1));
        let mut complements: BTreeMap<String, Vec<Complement>> = BTreeMap::new();
        for ((a, b), both) in pairs.into_iter().filter(|(_, c)| *c >= MIN_PAIR_SUPPORT) {
            let (pa, pb, pab) = (
                f64::from(singles[a]) / nf,
                f64::from(singles[b]) / nf,
                f64::from(both) / nf,
            );
            let lift = pab / (pa * pb);
            if lift <= 1.0 {
                continue;
            }
            for (from, to, p_from) in [(a, b, pa), (b, a, pb)] {
                complements
                    .entry(from.to_string())
                    .or_default()
                    .push(Complement {
                        product: to.to_string(),
                        lift,
                        confidence: pab / p_from,
                    });
            }
        }
        for list in complements.values_mut() {
            list.sort_by(|x, y| (y.lift * y.confidence).total_cmp(&(x.lift * x.confidence)));
            list.truncate(MAX_COMPLEMENTS);
        }
        let by_id: BTreeMap<&str, &Product> =
            catalogue.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut products = BTreeMap::new();
        let ids: std::collections::BTreeSet<&str> = singles
            .keys()
            .copied()
            .chain(by_id.keys().copied())
            .collect();
        for id in ids {
            let known = by_id.get(id);
            products.insert(
                id.to_string(),
                ProductInfo {
                    category: known.map(|p| p.category.clone()).unwrap_or_default(),
                    price: known
                        .map(|p| p.price)
                        .or_else(|| observed_prices.get(id).copied())
                        .unwrap_or(0.0),
                    popularity: f64::from(singles.get(id).copied().unwrap_or(0)) / nf,
                },
            );
        }
        let mut popular: Vec<String> = products.keys().cloned().collect();
        popular.sort_by(|a, b| {
            products[b]
                .popularity
                .total_cmp(&products[a].popularity)
                .then(a.cmp(b))
        });
        Baskets {
            complements,
            products,
            popular,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_relationship_with_thousands_of_products_counts_a_bounded_number_of_pairs() {
        let many: Vec<String> = (0..6_000).map(|i| format!("p-{i}")).collect();
        // Half the book owns all of them, the other half one other product:
        // every pair among the 6,000 has lift 2.
        let sets = (0..20).map(|i| {
            if i % 2 == 0 {
                many.iter().map(String::as_str).collect::<Vec<_>>()
            } else {
                vec!["solo"]
            }
        });
        let b = Baskets::learn(sets, &[], &BTreeMap::new());
        // Every product is still counted; pairs only among the sampled 64.
        assert_eq!(b.products.len(), 6_001);
        assert_eq!(b.complements.len(), MAX_BASKET_PRODUCTS);
        assert!(b.complements.values().all(|c| c[0].lift > 1.9));
    }

    #[test]
    fn complementary_pairs_get_lift_and_unrelated_ones_do_not() {
        let mut sets: Vec<Vec<&str>> = Vec::new();
        for i in 0..400 {
            let mut s = vec![];
            if i % 4 == 0 {
                s.extend(["printer", "toner"]);
            }
            if i % 3 == 0 {
                s.push("mug");
            }
            if i % 5 == 0 && i % 4 != 0 {
                s.push("printer");
            }
            sets.push(s);
        }
        let b = Baskets::learn(sets.into_iter(), &[], &BTreeMap::new());
        let printer = &b.complements["printer"];
        assert_eq!(printer[0].product, "toner");
        assert!(printer[0].lift > 1.5);
        assert!(!printer.iter().any(|c| c.product == "mug" && c.lift > 1.2));
        // printer: 100 with toner + 80 alone; mug: 134.
        assert_eq!(b.popular[0], "printer");
        assert_eq!(b.popular[1], "mug");
    }
}
