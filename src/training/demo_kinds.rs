//! The demo book's kind-specific story: a supplier's deliveries and our
//! orders with it, and a partner's deals. Drawn from a random stream of its
//! own, so the events every kind shares come out exactly as before.
//!
//! A partner registers deals at its own pace while its spells last, slower
//! and with fewer wins as the strain before a dropout rises, and none after
//! it: a slowing deal flow foretells the lapse (what lapse risk learns).
//!
//! Each supplier has a steady reliability (lateness around its promises,
//! short deliveries, rejected units) that may drift slowly or break: from a
//! drawn day, lateness, shortfalls and rejects ramp up over three months and
//! stay. A supplier that has started to fail keeps failing, so recent
//! delivery history predicts the failures that follow (what supply risk
//! learns). One supplier in ten sells us a category nobody else does
//! (single-sourced); the rest share six common categories. Some suppliers'
//! prices rise steadily (what renegotiation is for).

use rand::Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::domain::{DealOutcome, EventBody};
use crate::time::SECONDS_PER_DAY;

/// Categories several suppliers share, with their typical unit price.
const SHARED_CATEGORIES: [(&str, f64); 6] = [
    ("packaging", 1.2),
    ("resin", 3.5),
    ("electronics", 18.0),
    ("freight", 40.0),
    ("steel", 6.0),
    ("labels", 0.4),
];
/// Share of suppliers that are the only source of their category.
const SINGLE_SOURCE_SHARE: f64 = 0.1;
/// Deliveries are generated over at most this many days before the end.
const SUPPLY_HISTORY_DAYS: f64 = 3.0 * 365.0;
/// Days from order to promised arrival.
const LEAD_DAYS: f64 = 14.0;

/// A supplier's deliveries and purchase orders, as (day, event) pairs with
/// days in fractional days since the epoch, from `created` to `end`.
pub(super) fn supplier_events(
    rng: &mut Xoshiro256PlusPlus,
    index: usize,
    created: f64,
    end: f64,
) -> Vec<(f64, EventBody)> {
    let (category, base_price) = if rng.gen::<f64>() < SINGLE_SOURCE_SHARE {
        (format!("custom-part-{index:06}"), 12.0)
    } else {
        let (name, price) = SHARED_CATEGORIES[rng.gen_range(0..SHARED_CATEGORIES.len())];
        (name.to_string(), price)
    };
    let normal = |rng: &mut Xoshiro256PlusPlus| rng.sample::<f64, _>(StandardNormal);
    let late_mean = -0.5 + 1.2 * normal(rng);
    let short_chance = 0.01 + 0.05 * rng.gen::<f64>();
    let reject_rate = 0.002 + 0.012 * rng.gen::<f64>();
    // Breaks: a third of suppliers, on a day that may fall after the end (not yet).
    let start = created.max(end - SUPPLY_HISTORY_DAYS);
    let breaks_at =
        (rng.gen::<f64>() < 0.35).then(|| start + (end + 240.0 - start) * rng.gen::<f64>());
    let drifts = rng.gen::<f64>() < 0.25;
    let price_factor = LogNormal::new(0.0, 0.25).expect("valid").sample(rng);
    let price_trend = if rng.gen::<f64>() < 0.2 {
        0.10 + 0.15 * rng.gen::<f64>()
    } else {
        0.02 * normal(rng)
    };
    let gap_mean = 8.0 + 25.0 * rng.gen::<f64>();
    let order_size = 50.0 + 450.0 * rng.gen::<f64>();
    let mut out = Vec::new();
    let mut promised = start + gap_mean * rng.gen::<f64>() + LEAD_DAYS;
    while promised < end {
        let strain = breaks_at.map_or(0.0, |b| ((promised - b) / 90.0).clamp(0.0, 1.0))
            + if drifts {
                0.5 * ((promised - start) / (end - start).max(1.0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
        let late = late_mean + 8.0 * strain + (1.5 + 2.0 * strain) * normal(rng);
        let arrival = promised + late.round();
        if arrival > end {
            break;
        }
        let ordered = (order_size * (0.7 + 0.6 * rng.gen::<f64>()))
            .round()
            .max(1.0);
        let received = if rng.gen::<f64>() < short_chance + 0.25 * strain {
            (ordered * (0.5 + 0.4 * rng.gen::<f64>())).round()
        } else {
            ordered
        };
        let reject_share = (reject_rate + 0.03 * strain) * (0.5 + rng.gen::<f64>());
        let rejected = (received * reject_share).round().min(received);
        let years = (promised - start) / 365.25;
        let unit_price =
            (base_price * price_factor * (1.0 + price_trend).powf(years) * 100.0).round() / 100.0;
        let placed = promised - LEAD_DAYS;
        out.push((
            placed,
            EventBody::PurchaseOrder {
                amount: (ordered * unit_price * 100.0).round() / 100.0,
                category: category.clone(),
            },
        ));
        out.push((
            arrival,
            EventBody::Delivery {
                promised_at: (promised * SECONDS_PER_DAY as f64).floor() as i64,
                category: category.clone(),
                ordered,
                received,
                rejected,
                unit_price,
            },
        ));
        promised += gap_mean * (0.5 + rng.gen::<f64>());
    }
    out
}

/// A partner's deal records, as (day, event) pairs, over `spells` (start,
/// stop) with the strain of each day before a dropout (0 to 1).
pub(super) fn partner_deals(
    rng: &mut Xoshiro256PlusPlus,
    index: usize,
    spells: &[(f64, f64)],
    strain: &dyn Fn(f64) -> f64,
    end: f64,
) -> Vec<(f64, EventBody)> {
    let gap_mean = 15.0 + 45.0 * rng.gen::<f64>();
    let size: f64 = LogNormal::new(0.0, 0.8).expect("valid").sample(rng);
    let deal_size = 2000.0 * size;
    let win_rate = 0.2 + 0.4 * rng.gen::<f64>();
    let mut out = Vec::new();
    let mut n = 0;
    for &(start, stop) in spells {
        let mut t = start + gap_mean * rng.gen::<f64>();
        while t < stop.min(end) {
            let s = strain(t);
            let spread: f64 = LogNormal::new(0.0, 0.5).expect("valid").sample(rng);
            let value = (deal_size * spread * 100.0).round() / 100.0;
            let deal_id = format!("deal-{index:06}-{n}");
            n += 1;
            out.push((
                t,
                EventBody::PartnerDeal {
                    deal_id: deal_id.clone(),
                    value,
                    outcome: DealOutcome::Open,
                },
            ));
            let decided = t + 15.0 + 60.0 * rng.gen::<f64>();
            let won = rng.gen::<f64>() < win_rate * (1.0 - 0.5 * s);
            if decided <= end {
                let (outcome, value) = if won {
                    (
                        DealOutcome::Won,
                        (value * (0.8 + 0.4 * rng.gen::<f64>()) * 100.0).round() / 100.0,
                    )
                } else {
                    (DealOutcome::Lost, value)
                };
                out.push((
                    decided,
                    EventBody::PartnerDeal {
                        deal_id,
                        value,
                        outcome,
                    },
                ));
            }
            let exp: f64 = -(1.0 - rng.gen::<f64>()).ln();
            t += gap_mean * exp / (1.0 - 0.85 * s).max(0.05);
        }
    }
    out
}
