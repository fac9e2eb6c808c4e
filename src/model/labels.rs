//! What happened after a cutoff, from one definition: the labels training
//! fits and measures on, and the ones `rapport score --with-labels` writes
//! beside the scores, so a user can compare on a split of their own.

use serde::{Deserialize, Serialize};

use crate::domain::{Event, EventBody, Relationship};
use crate::features::Aggregates;
use crate::model::{ModelSpec, Outcome};
use crate::time::{Timestamp, SECONDS_PER_DAY};

/// A stable split: the same id always lands on the same side for a seed.
pub fn in_holdout(id: &str, seed: u64, fraction: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h as f64 / u64::MAX as f64) < fraction
}

/// One relationship's course after a cutoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// `None` when it had already churned by the cutoff (see `model::churn`).
    pub outcome: Option<Outcome>,
    /// Purchases in (cutoff, cutoff + the value horizon].
    pub future_spend: f64,
    /// Whether the data reach the end of the value horizon.
    pub value_observed: bool,
}

impl Observed {
    /// Whether it churned within `days` of the cutoff; `None` when that is
    /// not known: it had churned already, or the data end before `days`
    /// without a churn.
    pub fn churned_within(&self, days: f64) -> Option<bool> {
        let outcome = self.outcome?;
        if outcome.churned_by(days) {
            Some(true)
        } else {
            outcome.observed_through(days).then_some(false)
        }
    }

    /// The spend of the value horizon, when the data cover it.
    pub fn value(&self) -> Option<f64> {
        self.value_observed.then_some(self.future_spend)
    }
}

/// What followed `cutoff` for `relationship`, whose events up to the cutoff
/// folded into `before` and whose later ones, time-ordered, are `after`;
/// `data_end` is the latest event of the whole book. Churn is
/// `spec.churn.inactivity_days` without a purchase.
pub fn observe(
    relationship: &Relationship,
    before: &Aggregates,
    after: &[Event],
    cutoff: Timestamp,
    data_end: Timestamp,
    spec: &ModelSpec,
) -> Observed {
    let day = SECONDS_PER_DAY as f64;
    let value_end = cutoff + i64::from(spec.value.horizon_days) * SECONDS_PER_DAY;
    let inactivity = i64::from(spec.churn.inactivity_days) * SECONDS_PER_DAY;
    let mut silent_since = crate::features::silent_since(relationship, before);
    // Churned on the day the silence reaches `inactivity`, if that came
    // before the data ends; already churned if it came by the cutoff.
    let mut churn_day = (cutoff - silent_since >= inactivity).then_some(silent_since + inactivity);
    let mut future_spend = 0.0;
    for e in after {
        if let EventBody::Purchase { amount, .. } = e.body {
            if e.at <= value_end {
                future_spend += amount;
            }
            if churn_day.is_none() {
                if e.at - silent_since >= inactivity {
                    churn_day = Some(silent_since + inactivity);
                } else {
                    silent_since = e.at;
                }
            }
        }
    }
    if churn_day.is_none() && data_end - silent_since >= inactivity {
        churn_day = Some(silent_since + inactivity);
    }
    let outcome = match churn_day {
        Some(t) if t <= cutoff => None,
        churn_day => Some(Outcome {
            churned_after_days: churn_day.map(|t| (t - cutoff) as f64 / day),
            follow_up_days: (data_end - cutoff) as f64 / day,
        }),
    };
    Observed {
        outcome,
        future_spend,
        value_observed: data_end >= value_end,
    }
}

/// A snapshot-table row's labels as training read them, kept with the
/// version (artifact [`crate::model::bundle::TABLE_LABELS_ARTIFACT`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableLabel {
    pub id: String,
    pub churned: bool,
    pub value: Option<f64>,
    pub holdout: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RelationshipKind;

    fn purchase(at: Timestamp, amount: f64) -> Event {
        Event {
            at,
            body: EventBody::Purchase {
                amount,
                product_ids: vec![],
                quantity: 1,
            },
        }
    }

    fn spec(inactivity_days: u32, value_days: u32) -> ModelSpec {
        let mut spec = ModelSpec::demo();
        spec.churn.inactivity_days = inactivity_days;
        spec.value.horizon_days = value_days;
        spec
    }

    #[test]
    fn holdout_split_is_stable_and_near_the_fraction() {
        let n = (0..10_000)
            .filter(|i| in_holdout(&format!("c-{i}"), 42, 0.2))
            .count();
        assert!((1_800..2_200).contains(&n), "{n}");
        assert_eq!(in_holdout("x", 1, 0.5), in_holdout("x", 1, 0.5));
    }

    #[test]
    fn churn_within_is_known_only_once_observed() {
        let d = SECONDS_PER_DAY;
        let relationship = Relationship {
            id: "c-1".into(),
            kind: RelationshipKind::Customer,
            created_at: 0,
            attributes: Default::default(),
        };
        let before = Aggregates::from_events(&[purchase(10 * d, 5.0)]);
        let spec = spec(30, 20);
        // No purchase after day 10: churned on day 40, 30 days after a cutoff at 10.
        let after: Vec<Event> = vec![];
        let seen = observe(&relationship, &before, &after, 10 * d, 100 * d, &spec);
        assert_eq!(seen.churned_within(30.0), Some(true));
        assert_eq!(seen.churned_within(29.0), Some(false));
        // The data end at day 25: nothing is known at 30 days.
        let short = observe(&relationship, &before, &after, 10 * d, 25 * d, &spec);
        assert_eq!(short.churned_within(30.0), None);
        assert_eq!(short.churned_within(10.0), Some(false));
        assert_eq!(short.value(), None);
        // A purchase on day 20 counts towards value within 20 days; the
        // silence restarts at each purchase, so it churns on day 75.
        let after = vec![purchase(20 * d, 7.0), purchase(45 * d, 1.0)];
        let seen = observe(&relationship, &before, &after, 10 * d, 100 * d, &spec);
        assert_eq!(seen.value(), Some(7.0));
        assert_eq!(seen.churned_within(30.0), Some(false));
        // Already churned by the cutoff: no label.
        let late = observe(&relationship, &before, &[], 50 * d, 100 * d, &spec);
        assert_eq!(late.outcome, None);
        assert_eq!(late.churned_within(30.0), None);
    }
}
