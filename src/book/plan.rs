//! The campaign planner: at most one action per relationship, maximising the
//! total expected net value within a budget (money) and/or a contact cap.
//!
//! This is a multiple-choice knapsack with two constraints: each
//! relationship is a class whose choices are its paying actions (net value
//! `v > 0`, cost `c >= 0`, one contact each) or nothing.
//!
//! 1. **Budget only.** Per class, the choices on the upper convex hull of
//!    `(c, v)` from `(0, 0)` give increments of falling value per unit of
//!    cost. Taking increments across all classes in order of that ratio
//!    until the next one does not fit solves the linear relaxation exactly
//!    (Sinha and Zoltners 1979); the part of the first increment that does
//!    not fit is the only fractional one, so the relaxation's value is an
//!    upper bound and the whole increments taken are a feasible plan.
//! 2. **A contact cap too.** The cap is priced in with a Lagrange multiplier
//!    `μ >= 0` per contact: every choice's value becomes `v − μ` and step 1
//!    runs on that. For any `μ`, `LP(μ) + μ·cap` bounds every plan within the
//!    budget and the cap (weak duality), and a bisection on `μ` finds the
//!    smallest price at which step 1's plan keeps to the cap. With a cap and
//!    no budget this is exact: each relationship's best action, the `cap`
//!    best first.
//! 3. **Fill.** What budget and contacts are left go to the moves (a new
//!    relationship, or a better action for one planned) with the most net
//!    value that still fit, once each, best first.
//! 4. **Against the simple greedy plan** (each relationship's best action,
//!    highest net value first, while it fits): the planner answers with
//!    whichever of the two has more net value, so it never does worse.
//!
//! The answer carries the bound, so the gap to the best plan is known for
//! each request: `upper_bound − net`. Without a budget the plan is optimal;
//! with one, the gap is at most the net value of the single increment the
//! relaxation took a fraction of (before the fill narrows it), which on a
//! book of many small actions is a tiny share of the total. Everything is
//! ordered by value, then class, then choice index, so the same input gives
//! the same plan.

use std::cmp::Ordering;

/// One choice for a class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub net: f64,
    pub cost: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// `None`: no budget.
    pub budget: Option<f64>,
    /// `None`: no cap.
    pub contacts: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Steps 1-3.
    Relaxation,
    /// The simple greedy plan had more net value.
    Greedy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Per class, the choice planned.
    pub chosen: Vec<Option<usize>>,
    pub net: f64,
    pub cost: f64,
    pub contacts: u64,
    /// No plan within the limits has more net value.
    pub upper_bound: f64,
    /// The simple greedy plan's net value.
    pub greedy_net: f64,
    pub method: Method,
}

/// An increment along one class's hull.
#[derive(Debug, Clone, Copy)]
struct Increment {
    class: u32,
    /// Hull points taken once this is: its index in the class's hull plus one.
    step: u32,
    cost: f64,
    value: f64,
    ratio: f64,
}

/// The relaxation's plan at one price per contact.
struct Relaxed {
    /// Per class, the hull point reached (0: nothing).
    reached: Vec<u32>,
    /// Per class, its hull's choice indices, flattened (`hulls[starts[i]..starts[i+1]]`).
    hulls: Vec<u32>,
    starts: Vec<usize>,
    /// The relaxation's value (at the price): an upper bound for that price.
    bound: f64,
    contacts: u64,
}

impl Relaxed {
    fn choice(&self, class: usize) -> Option<usize> {
        let reached = self.reached[class] as usize;
        (reached > 0).then(|| self.hulls[self.starts[class] + reached - 1] as usize)
    }
}

/// # Panics
/// Never for finite inputs.
pub fn plan(classes: &[Vec<Choice>], limits: Limits) -> Solution {
    let budget = limits.budget.unwrap_or(f64::INFINITY);
    // Each class's choices by cost, the higher value first among equal costs.
    let orders: Vec<Vec<u32>> = classes
        .iter()
        .map(|choices| {
            let mut order: Vec<u32> = (0..choices.len() as u32)
                .filter(|&j| choices[j as usize].net > 0.0)
                .collect();
            order.sort_by(|&a, &b| {
                let (a, b) = (&choices[a as usize], &choices[b as usize]);
                a.cost.total_cmp(&b.cost).then(b.net.total_cmp(&a.net))
            });
            order
        })
        .collect();
    let greedy = greedy_plan(classes, budget, limits.contacts);
    let at_zero = relax(classes, &orders, budget, 0.0);
    let mut upper_bound = at_zero.bound;
    let relaxed = match limits.contacts {
        Some(cap) if at_zero.contacts > cap => {
            let (mut low, mut high) = (0.0_f64, max_net(classes));
            let mut feasible = relax(classes, &orders, budget, high);
            upper_bound = upper_bound.min(feasible.bound + high * cap as f64);
            for _ in 0..40 {
                let price = (low + high) / 2.0;
                let r = relax(classes, &orders, budget, price);
                upper_bound = upper_bound.min(r.bound + price * cap as f64);
                if r.contacts <= cap {
                    high = price;
                    feasible = r;
                } else {
                    low = price;
                }
                if high - low <= 1e-9 * high.max(1.0) {
                    break;
                }
            }
            feasible
        }
        _ => at_zero,
    };
    let mut chosen: Vec<Option<usize>> = (0..classes.len()).map(|i| relaxed.choice(i)).collect();
    fill(classes, &mut chosen, budget, limits.contacts);
    let (net, cost, contacts) = totals(classes, &chosen);
    let greedy_totals = totals(classes, &greedy);
    if greedy_totals.0 > net {
        Solution {
            chosen: greedy,
            net: greedy_totals.0,
            cost: greedy_totals.1,
            contacts: greedy_totals.2,
            upper_bound,
            greedy_net: greedy_totals.0,
            method: Method::Greedy,
        }
    } else {
        Solution {
            chosen,
            net,
            cost,
            contacts,
            upper_bound,
            greedy_net: greedy_totals.0,
            method: Method::Relaxation,
        }
    }
}

fn max_net(classes: &[Vec<Choice>]) -> f64 {
    classes.iter().flatten().map(|c| c.net).fold(0.0, f64::max)
}

/// Net value, cost and contacts of a plan.
fn totals(classes: &[Vec<Choice>], chosen: &[Option<usize>]) -> (f64, f64, u64) {
    chosen
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.map(|j| classes[i][j]))
        .fold((0.0, 0.0, 0), |(n, c, k), choice| {
            (n + choice.net, c + choice.cost, k + 1)
        })
}

/// Each class's best choice, highest net value first, while it fits.
fn greedy_plan(classes: &[Vec<Choice>], budget: f64, cap: Option<u64>) -> Vec<Option<usize>> {
    let mut best: Vec<(usize, usize)> = classes
        .iter()
        .enumerate()
        .filter_map(|(i, choices)| {
            choices
                .iter()
                .enumerate()
                .filter(|(_, c)| c.net > 0.0)
                .max_by(|(ja, a), (jb, b)| {
                    a.net
                        .total_cmp(&b.net)
                        .then(b.cost.total_cmp(&a.cost))
                        .then(jb.cmp(ja))
                })
                .map(|(j, _)| (i, j))
        })
        .collect();
    best.sort_by(|&(ia, ja), &(ib, jb)| {
        classes[ib][jb]
            .net
            .total_cmp(&classes[ia][ja].net)
            .then(ia.cmp(&ib))
    });
    let mut chosen = vec![None; classes.len()];
    let (mut spent, mut contacts) = (0.0, 0u64);
    for (i, j) in best {
        if cap.is_some_and(|cap| contacts >= cap) {
            break;
        }
        let cost = classes[i][j].cost;
        if spent + cost <= budget {
            spent += cost;
            contacts += 1;
            chosen[i] = Some(j);
        }
    }
    chosen
}

/// Step 1 at `price` per contact.
fn relax(classes: &[Vec<Choice>], orders: &[Vec<u32>], budget: f64, price: f64) -> Relaxed {
    let mut hulls: Vec<u32> = Vec::new();
    let mut starts = Vec::with_capacity(classes.len() + 1);
    let mut increments: Vec<Increment> = Vec::new();
    let mut points: Vec<(u32, f64, f64)> = Vec::new();
    for (i, (choices, order)) in classes.iter().zip(orders).enumerate() {
        starts.push(hulls.len());
        hull(choices, order, price, &mut points);
        let (mut c0, mut v0) = (0.0, 0.0);
        for (step, &(j, c, v)) in points.iter().enumerate() {
            let (cost, value) = (c - c0, v - v0);
            increments.push(Increment {
                class: i as u32,
                step: step as u32 + 1,
                cost,
                value,
                ratio: if cost > 0.0 {
                    value / cost
                } else {
                    f64::INFINITY
                },
            });
            hulls.push(j);
            (c0, v0) = (c, v);
        }
    }
    starts.push(hulls.len());
    increments.sort_unstable_by(|a, b| {
        b.ratio
            .total_cmp(&a.ratio)
            .then(a.class.cmp(&b.class))
            .then(a.step.cmp(&b.step))
    });
    let mut reached = vec![0u32; classes.len()];
    let (mut spent, mut value, mut bound) = (0.0, 0.0, None);
    for inc in &increments {
        let class = inc.class as usize;
        if reached[class] + 1 != inc.step {
            // Equal ratios out of order within a class: impossible on a
            // strictly concave hull, kept as a guard.
            continue;
        }
        if spent + inc.cost <= budget {
            spent += inc.cost;
            value += inc.value;
            reached[class] = inc.step;
        } else {
            bound = Some(value + inc.value * ((budget - spent) / inc.cost).clamp(0.0, 1.0));
            break;
        }
    }
    let contacts = reached.iter().filter(|&&r| r > 0).count() as u64;
    Relaxed {
        reached,
        hulls,
        starts,
        bound: bound.unwrap_or(value),
        contacts,
    }
}

/// The upper concave hull from `(0, 0)` of a class's choices at `price` per
/// contact: `(choice, cost, value)`, by rising cost and value, falling ratio.
fn hull(choices: &[Choice], order: &[u32], price: f64, out: &mut Vec<(u32, f64, f64)>) {
    out.clear();
    let mut best = 0.0;
    for &j in order {
        let c = choices[j as usize].cost;
        let v = choices[j as usize].net - price;
        if v <= best {
            continue;
        }
        while let Some(&(_, c1, v1)) = out.last() {
            let (c0, v0) = if out.len() >= 2 {
                let p = out[out.len() - 2];
                (p.1, p.2)
            } else {
                (0.0, 0.0)
            };
            // The last point is under the chord from the one before to this one.
            if (v1 - v0) * (c - c0) <= (v - v0) * (c1 - c0) {
                out.pop();
            } else {
                break;
            }
        }
        out.push((j, c, v));
        best = v;
    }
}

/// Step 3: spends what is left on the best moves that fit.
fn fill(classes: &[Vec<Choice>], chosen: &mut [Option<usize>], budget: f64, cap: Option<u64>) {
    let (_, mut spent, mut contacts) = totals(classes, chosen);
    let mut moves: Vec<(f64, usize, usize)> = Vec::new();
    for (i, choices) in classes.iter().enumerate() {
        let current = chosen[i].map_or(0.0, |j| choices[j].net);
        for (j, c) in choices.iter().enumerate() {
            if c.net > current {
                moves.push((c.net - current, i, j));
            }
        }
    }
    moves.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut moved = vec![false; classes.len()];
    for (_, i, j) in moves {
        if moved[i] {
            continue;
        }
        let from = chosen[i].map(|k| classes[i][k]);
        let extra = classes[i][j].cost - from.map_or(0.0, |f| f.cost);
        let new_contact = from.is_none();
        if new_contact && cap.is_some_and(|cap| contacts >= cap) {
            continue;
        }
        if spent + extra <= budget {
            spent += extra;
            contacts += u64::from(new_contact);
            chosen[i] = Some(j);
            moved[i] = true;
        }
    }
}

/// Orders plans' rows: by net value, highest first, then class.
pub fn by_net(a: (f64, usize), b: (f64, usize)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// The best plan by trying every one.
    fn brute_force(classes: &[Vec<Choice>], limits: Limits) -> f64 {
        let budget = limits.budget.unwrap_or(f64::INFINITY);
        let mut best = 0.0_f64;
        let mut pick = vec![0usize; classes.len()];
        loop {
            let (mut net, mut cost, mut contacts) = (0.0, 0.0, 0u64);
            for (i, &p) in pick.iter().enumerate() {
                if p > 0 {
                    net += classes[i][p - 1].net;
                    cost += classes[i][p - 1].cost;
                    contacts += 1;
                }
            }
            if cost <= budget && limits.contacts.is_none_or(|cap| contacts <= cap) {
                best = best.max(net);
            }
            let mut i = 0;
            loop {
                if i == pick.len() {
                    return best;
                }
                pick[i] += 1;
                if pick[i] <= classes[i].len() {
                    break;
                }
                pick[i] = 0;
                i += 1;
            }
        }
    }

    fn random_book(rng: &mut Xoshiro256PlusPlus) -> Vec<Vec<Choice>> {
        (0..rng.gen_range(1..7))
            .map(|_| {
                (0..rng.gen_range(0..4))
                    .map(|_| Choice {
                        net: f64::from(rng.gen_range(-5..40)),
                        cost: f64::from(rng.gen_range(0..20)),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn plans_keep_to_their_limits_and_their_bound_holds_against_every_plan() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut below_optimum = 0;
        for _ in 0..3_000 {
            let classes = random_book(&mut rng);
            let limits = Limits {
                budget: rng.gen_bool(0.7).then(|| f64::from(rng.gen_range(0..60))),
                contacts: rng.gen_bool(0.5).then(|| rng.gen_range(0..5)),
            };
            let s = plan(&classes, limits);
            let best = brute_force(&classes, limits);
            let (net, cost, contacts) = totals(&classes, &s.chosen);
            assert_eq!((net, cost, contacts), (s.net, s.cost, s.contacts));
            assert!(
                limits.budget.is_none_or(|b| cost <= b),
                "{classes:?} {limits:?}: cost {cost}"
            );
            assert!(limits.contacts.is_none_or(|k| contacts <= k));
            assert!(s
                .chosen
                .iter()
                .enumerate()
                .all(|(i, c)| c.is_none_or(|j| classes[i][j].net > 0.0)));
            assert!(net >= s.greedy_net, "never below the simple greedy plan");
            assert!(net <= best + 1e-9, "no plan beats the best one");
            assert!(
                s.upper_bound >= best - 1e-6,
                "{classes:?} {limits:?}: bound {} < best {best}",
                s.upper_bound
            );
            if net < best - 1e-9 {
                below_optimum += 1;
            }
            if limits.budget.is_none() {
                assert!(
                    (net - best).abs() < 1e-9,
                    "without a budget the plan is the best: {classes:?} {limits:?}"
                );
            }
            assert_eq!(plan(&classes, limits), s, "the same input, the same plan");
        }
        // Not a bound, a record: how often the heuristic missed the optimum.
        assert!(
            below_optimum < 300,
            "{below_optimum} of 3000 plans short of the best"
        );
    }

    #[test]
    fn the_relaxation_beats_greedy_where_cheap_actions_add_up() {
        // One big action against many cheap ones: greedy by value takes the big one.
        let mut classes = vec![vec![Choice {
            net: 100.0,
            cost: 100.0,
        }]];
        classes.extend((0..10).map(|_| {
            vec![Choice {
                net: 20.0,
                cost: 10.0,
            }]
        }));
        let s = plan(
            &classes,
            Limits {
                budget: Some(100.0),
                contacts: None,
            },
        );
        assert_eq!(s.method, Method::Relaxation);
        assert_eq!(s.net, 200.0);
        assert_eq!(s.greedy_net, 100.0);
        assert_eq!(s.upper_bound, 200.0);
    }

    #[test]
    fn a_cap_without_a_budget_takes_the_best_actions() {
        let classes: Vec<Vec<Choice>> = (0..6)
            .map(|i| {
                vec![
                    Choice {
                        net: f64::from(i),
                        cost: 1.0,
                    },
                    Choice {
                        net: f64::from(i) / 2.0,
                        cost: 0.0,
                    },
                ]
            })
            .collect();
        let s = plan(
            &classes,
            Limits {
                budget: None,
                contacts: Some(2),
            },
        );
        assert_eq!(s.net, 9.0);
        assert_eq!(s.contacts, 2);
        assert!((s.upper_bound - 9.0).abs() < 1e-6);
    }
}
