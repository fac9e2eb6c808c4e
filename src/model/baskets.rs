//! Basket rules for cross-sell: which products go together, learned from the
//! product sets relationships have bought, plus popularity for cold starts and
//! a price per product for expected values.
//!
//! A pair's confidence P(that | this) is shrunk towards the popularity of
//! "that" with [`SHRINKAGE`] pseudo-relationships, so a pair seen three times
//! among three buyers is not taken for certainty; its lift is the shrunk
//! confidence over that popularity. [`Baskets::suggest`] combines what every
//! owned product says about a candidate as a noisy-OR with a leak: the
//! candidate's popularity is the chance of buying it anyway, and each owned
//! product adds its excess over that, so two related products in a basket
//! count for more than one, and an unrelated one (confidence = popularity)
//! adds nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::Product;

/// Pairs seen together fewer times than this are noise, not rules (the
/// shrinkage already holds rare pairs near the popularity of their product).
const MIN_PAIR_SUPPORT: u32 = 3;
/// Complements kept per product.
const MAX_COMPLEMENTS: usize = 20;
/// Pseudo-relationships a pair's confidence is shrunk with towards the
/// popularity of the product it suggests: `(both + m · popularity) / (buyers + m)`.
pub const SHRINKAGE: f64 = 10.0;
/// The share of "owns it" (what popularity and confidence count, over all
/// time) that becomes "buys it next".
pub const UPTAKE: f64 = 0.5;
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
    /// `confidence / P(that)`; above 1 means they go together.
    pub lift: f64,
    /// P(that | this), shrunk towards P(that) (see [`SHRINKAGE`]).
    pub confidence: f64,
}

/// A product to offer, with how likely it is bought next.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub product: String,
    /// P(bought next) of a relationship that stays.
    pub probability: f64,
    /// The owned product that raises it most, with that pair's rule; `None`
    /// when popularity alone suggests it.
    pub because: Option<(String, Complement)>,
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
            let both = f64::from(both);
            for (from, to) in [(a, b), (b, a)] {
                let base = f64::from(singles[to]) / nf;
                let confidence = (both + SHRINKAGE * base) / (f64::from(singles[from]) + SHRINKAGE);
                let lift = confidence / base;
                if lift <= 1.0 {
                    continue;
                }
                complements
                    .entry(from.to_string())
                    .or_default()
                    .push(Complement {
                        product: to.to_string(),
                        lift,
                        confidence,
                    });
            }
        }
        for list in complements.values_mut() {
            // By how much the pair raises the chance over buying anyway.
            let excess = |c: &Complement| c.confidence - c.confidence / c.lift;
            list.sort_by(|x, y| {
                excess(y)
                    .total_cmp(&excess(x))
                    .then(x.product.cmp(&y.product))
            });
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

/// A candidate as [`Baskets::suggest`] orders it: expected revenue,
/// probability, product, and the owned product and rule behind it.
type Ranked<'a> = (f64, f64, &'a str, Option<(&'a str, &'a Complement)>);

/// What the owned products say about one candidate.
struct Evidence<'a> {
    /// Π over owned products of (1 − excess).
    survive: f64,
    /// The largest excess, and the owned product and rule that gave it.
    best: f64,
    because: Option<(&'a str, &'a Complement)>,
}

impl Baskets {
    /// What to offer a relationship owning `owned`, except what `skip`
    /// says: every complement of an owned product with at least `min_lift`,
    /// and the most popular products, each with P(bought next) = [`UPTAKE`] ×
    /// (1 − (1 − popularity) × Π over owned products of (1 − excess)), where
    /// an owned product's excess is how far its shrunk confidence rises over
    /// the popularity, as a share of the room above it. Ordered by expected
    /// revenue (probability × price), then probability; at most `wanted`.
    pub fn suggest(
        &self,
        owned: &[&str],
        skip: &dyn Fn(&str) -> bool,
        min_lift: f64,
        wanted: usize,
    ) -> Vec<Suggestion> {
        let popularity = |id: &str| self.products.get(id).map_or(0.0, |i| i.popularity);
        let mut evidence: BTreeMap<&str, Evidence> = BTreeMap::new();
        for o in owned {
            for c in self.complements.get(*o).into_iter().flatten() {
                if c.lift < min_lift || skip(&c.product) {
                    continue;
                }
                let base = popularity(&c.product).min(1.0);
                let excess = ((c.confidence - base) / (1.0 - base).max(1e-9)).clamp(0.0, 1.0);
                let entry = evidence.entry(&c.product).or_insert(Evidence {
                    survive: 1.0,
                    best: -1.0,
                    because: None,
                });
                entry.survive *= 1.0 - excess;
                if excess > entry.best {
                    entry.best = excess;
                    entry.because = Some((o, c));
                }
            }
        }
        let info = |id: &str| {
            self.products
                .get(id)
                .map_or((0.0, 0.0), |i| (i.popularity.min(1.0), i.price))
        };
        // Keys looked up once: the sort compares them many times.
        let mut ranked: Vec<Ranked> = evidence
            .iter()
            .map(|(id, e)| {
                let (popularity, price) = info(id);
                let probability = UPTAKE * (1.0 - (1.0 - popularity) * e.survive);
                (probability * price, probability, *id, e.because)
            })
            .collect();
        let mut added = 0;
        for id in &self.popular {
            if added >= wanted {
                break;
            }
            if skip(id) || evidence.contains_key(id.as_str()) {
                continue;
            }
            added += 1;
            let (_, price) = info(id);
            let probability = UPTAKE * popularity(id);
            ranked.push((probability * price, probability, id.as_str(), None));
        }
        ranked.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.2.cmp(b.2))
        });
        ranked.truncate(wanted);
        ranked
            .into_iter()
            .map(|(_, probability, id, because)| Suggestion {
                product: id.to_string(),
                probability,
                because: because.map(|(o, c)| (o.to_string(), c.clone())),
            })
            .collect()
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
        // Shrunk: (10 + 10 × 0.5) / (10 + 10) = 0.75 against a popularity of 0.5.
        assert!(b
            .complements
            .values()
            .all(|c| (c[0].lift - 1.5).abs() < 1e-9));
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
