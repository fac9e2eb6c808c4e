//! Cross-sell hit@10 on simulated basket sets: one item hidden from each test
//! basket, the rest of the basket is what the relationship owns, and each
//! method names ten products. Rapport's list is `Baskets::suggest` under the
//! built-in policy's `cross_sell.min_lift`, learned from the training baskets
//! exactly as training learns them; the peers are popularity, item
//! co-occurrence (the sum of pair counts with the owned items) and cosine
//! similarity, each filled with popular products up to ten.
//!
//! The baskets follow a topic story: each basket draws most of its items from
//! one or two topics (a topic is a Zipf-weighted set of products), the rest
//! from the global popularity, and one basket in twenty is a large stock-up.
//!
//!     cargo bench --bench basket_quality -- [seeds...]
//!     MIN_LIFT=1.2 cargo bench --bench basket_quality   # another policy value

use std::collections::{BTreeMap, HashMap};

use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rapport::engine::Policy;
use rapport::model::Baskets;

const PRODUCTS: usize = 400;
const TOPICS: usize = 16;
const TOPIC_SIZE: usize = 40;
const BASKETS: usize = 12_000;
const K: usize = 10;

fn simulate(seed: u64) -> Vec<Vec<String>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let zipf =
        |n: usize, s: f64| -> Vec<f64> { (1..=n).map(|r| 1.0 / (r as f64).powf(s)).collect() };
    let global = WeightedIndex::new(zipf(PRODUCTS, 1.0)).unwrap();
    let topics: Vec<Vec<usize>> = (0..TOPICS)
        .map(|_| {
            (0..TOPIC_SIZE)
                .map(|_| rng.gen_range(0..PRODUCTS))
                .collect()
        })
        .collect();
    let in_topic = WeightedIndex::new(zipf(TOPIC_SIZE, 0.8)).unwrap();
    (0..BASKETS)
        .map(|_| {
            let stock_up = rng.gen_bool(0.05);
            let size = if stock_up {
                rng.gen_range(15..40)
            } else {
                rng.gen_range(2..9)
            };
            let mine: Vec<usize> = (0..rng.gen_range(1..=2))
                .map(|_| rng.gen_range(0..TOPICS))
                .collect();
            let mut basket: Vec<String> = Vec::new();
            while basket.len() < size {
                let item = if !stock_up && rng.gen_bool(0.7) {
                    let t = &topics[mine[rng.gen_range(0..mine.len())]];
                    t[in_topic.sample(&mut rng)]
                } else {
                    global.sample(&mut rng)
                };
                let id = format!("p{item:03}");
                if !basket.contains(&id) {
                    basket.push(id);
                }
            }
            basket
        })
        .collect()
}

/// The top `K` by score among products not owned, filled by popularity.
fn top(scores: &HashMap<&str, f64>, popular: &[&str], owned: &[&str]) -> Vec<String> {
    let mut ranked: Vec<(&str, f64)> = scores
        .iter()
        .filter(|(p, _)| !owned.contains(p))
        .map(|(p, s)| (*p, *s))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = ranked
        .into_iter()
        .take(K)
        .map(|(p, _)| p.to_string())
        .collect();
    for p in popular {
        if out.len() >= K {
            break;
        }
        if !owned.contains(p) && !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    }
    out
}

fn main() {
    let seeds: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seeds = if seeds.is_empty() {
        vec![1, 2, 3]
    } else {
        seeds
    };
    // MIN_LIFT=x tries another policy value beside the built-in one.
    let min_lift = std::env::var("MIN_LIFT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Policy::default().cross_sell.min_lift);
    println!("| seed | test baskets | popularity | co-occurrence | cosine | Rapport (min_lift {min_lift}) | Rapport lists of 10 |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for seed in seeds {
        let baskets = simulate(seed);
        // Every fifth basket is a test basket.
        let train: Vec<&Vec<String>> = baskets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 != 4)
            .map(|(_, b)| b)
            .collect();
        let test: Vec<&Vec<String>> = baskets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 == 4)
            .map(|(_, b)| b)
            .collect();
        let learned = Baskets::learn(
            train.iter().map(|b| b.iter().map(String::as_str).collect()),
            &[],
            &BTreeMap::new(),
        );
        let mut count: HashMap<&str, f64> = HashMap::new();
        let mut pairs: HashMap<(&str, &str), f64> = HashMap::new();
        for b in &train {
            for x in b.iter() {
                *count.entry(x).or_default() += 1.0;
                for y in b.iter().filter(|y| *y != x) {
                    *pairs.entry((x, y)).or_default() += 1.0;
                }
            }
        }
        let mut popular: Vec<&str> = count.keys().copied().collect();
        popular.sort_by(|a, b| count[b].total_cmp(&count[a]).then(a.cmp(b)));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed);
        let (mut n, mut hits, mut full) = (0usize, [0usize; 4], 0usize);
        for b in test {
            let hidden = rng.gen_range(0..b.len());
            let owned: Vec<&str> = b
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != hidden)
                .map(|(_, p)| p.as_str())
                .collect();
            let target = b[hidden].as_str();
            let mut co: HashMap<&str, f64> = HashMap::new();
            let mut cos: HashMap<&str, f64> = HashMap::new();
            for ((x, y), c) in &pairs {
                if owned.contains(x) {
                    *co.entry(y).or_default() += c;
                    *cos.entry(y).or_default() += c / (count[x] * count[y]).sqrt();
                }
            }
            let lists = [
                top(&HashMap::new(), &popular, &owned),
                top(&co, &popular, &owned),
                top(&cos, &popular, &owned),
                learned
                    .suggest(&owned, &|id| owned.contains(&id), min_lift, K)
                    .into_iter()
                    .map(|s| s.product)
                    .collect(),
            ];
            full += usize::from(lists[3].len() == K);
            for (h, list) in hits.iter_mut().zip(&lists) {
                *h += usize::from(list.iter().any(|p| p == target));
            }
            n += 1;
        }
        let rate = |h: usize| h as f64 / n as f64;
        println!(
            "| {seed} | {n} | {:.3} | {:.3} | {:.3} | {:.3} | {full} |",
            rate(hits[0]),
            rate(hits[1]),
            rate(hits[2]),
            rate(hits[3])
        );
    }
}
