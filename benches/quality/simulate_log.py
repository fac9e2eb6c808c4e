#!/usr/bin/env python3
"""A purchase log for the value benchmarks, from a seeded story that is
BG/NBD's with the departures real logs show, so that the customer-base model
is a fair but beatable reference:

- acquisition spread over the first `--acquire-weeks` weeks;
- while alive, purchases at a Poisson rate lambda ~ Gamma(r, 1/alpha), and
  after each purchase a dropout with probability p ~ Beta(a, b) (BG/NBD);
- spend per occasion ~ Gamma(shape, scale) with the scale rising with lambda
  (Gamma-Gamma assumes spend independent of frequency) and a heavy-tailed
  share of large buyers;
- a fifth of the customers speed up or slow down over time (BG/NBD's rate is
  constant).

Writes `customer,date,amount,product` rows (ISO dates), one per line item.

    python3 benches/quality/simulate_log.py --customers 20000 --seed 1 > log.csv
"""
import argparse
import csv
import datetime as dt
import math
import random
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--weeks", type=int, default=78, help="length of the whole log")
    ap.add_argument("--acquire-weeks", type=int, default=39)
    ap.add_argument("--start", default="2024-01-01")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    start = dt.date.fromisoformat(args.start)
    days = args.weeks * 7
    products = [f"P{i:03d}" for i in range(60)]
    out = csv.writer(sys.stdout)
    out.writerow(["customer", "date", "amount", "product"])
    for c in range(args.customers):
        lam = rng.gammavariate(0.35, 1.0 / 14.0)  # purchases per day
        p = rng.betavariate(0.8, 3.0)
        trend = rng.choice([0.0] * 8 + [0.004, -0.004])  # per-day change of log rate
        big = rng.random() < 0.03
        scale = 8.0 * (1.0 + 6.0 * math.sqrt(lam)) * (6.0 if big else 1.0)
        shape = 3.0
        taste = rng.sample(products, 6)
        t = rng.uniform(0, args.acquire_weeks * 7)
        first = True
        while t < days:
            day = start + dt.timedelta(days=int(t))
            basket = rng.randint(1, 3)
            total = rng.gammavariate(shape, scale / shape * 3.0)
            for k in range(basket):
                item = rng.choice(taste) if rng.random() < 0.8 else rng.choice(products)
                out.writerow([f"u{c:06d}", day.isoformat(), f"{total / basket:.2f}", item])
            if not first and rng.random() < p:
                break
            first = False
            rate = lam * math.exp(trend * t)
            t += rng.expovariate(max(rate, 1e-6))


if __name__ == "__main__":
    main()
