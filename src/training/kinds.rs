//! The account and partner parts of a training run: each account's invoice
//! history and each partner's deal history cut at several times T, labelled
//! by what followed within the horizon (a serious late payment; no deal at
//! all), for [`CreditModel::fit`] and [`PartnerModel::fit`]. The same
//! cutoffs as supply risk's, for the same reason: a book has few of them.

use crate::domain::{Event, Relationship, RelationshipKind};
use crate::features::KindHistory;
use crate::model::credit::{CreditFacts, CreditModel};
use crate::model::partnership::{PartnerFacts, PartnerModel, PartnerRow};
use crate::model::risk::RiskRow;
use crate::model::{Metric, ModelSpec};
use crate::time::{Timestamp, SECONDS_PER_DAY};
use crate::training::evaluation::{in_holdout, metric};

/// Cutoffs per relationship, one horizon apart, the latest a horizon before
/// the data ends: more examples from a book that has few relationships of a
/// kind.
pub(crate) const CUTOFFS: i64 = 4;

/// Folds `events` (time-ordered) up to each of `cutoffs` cutoffs and hands
/// the history to `row`, latest cutoff last; the events after the cutoff
/// are `rest`. Returns the history of every event.
pub(crate) fn at_cutoffs(
    events: &[Event],
    data_end: Timestamp,
    horizon_days: u32,
    cutoffs: i64,
    mut row: impl FnMut(&KindHistory, Timestamp, &[Event]),
) -> KindHistory {
    let horizon = i64::from(horizon_days) * SECONDS_PER_DAY;
    let mut history = KindHistory::default();
    let mut next = 0;
    for k in (0..cutoffs).rev() {
        let t = data_end - horizon * (k + 1);
        while next < events.len() && events[next].at <= t {
            history.apply(events[next].at, &events[next].body);
            next += 1;
        }
        row(&history, t, &events[next..]);
    }
    for e in &events[next..] {
        history.apply(e.at, &e.body);
    }
    history
}

fn full_history(events: &[Event]) -> KindHistory {
    let mut h = KindHistory::default();
    for e in events {
        h.apply(e.at, &e.body);
    }
    h
}

#[derive(Default)]
pub struct KindCollector {
    credit: Vec<(String, RiskRow)>,
    partner: Vec<(String, PartnerRow)>,
    partners: Vec<(String, PartnerFacts)>,
    accounts: usize,
}

impl KindCollector {
    /// Takes a relationship of the book with its time-ordered events; only
    /// accounts and partners count.
    pub fn add(
        &mut self,
        relationship: &Relationship,
        events: &[Event],
        data_end: Timestamp,
        spec: &ModelSpec,
    ) {
        let holdout = in_holdout(&relationship.id, spec.seed, spec.holdout_fraction);
        // Held-out relationships never train, so each of their cutoffs is
        // an honest test row; a book has few partners and accounts.
        let id = &relationship.id;
        match relationship.kind {
            RelationshipKind::Account => {
                self.accounts += 1;
                let p = &spec.account;
                let horizon = i64::from(p.horizon_days) * SECONDS_PER_DAY;
                // Labels need each invoice's final state, which only the whole history has.
                let all = full_history(events);
                at_cutoffs(
                    events,
                    data_end,
                    p.horizon_days,
                    CUTOFFS,
                    |history, t, _| {
                        let facts = CreditFacts::of(history, t, p);
                        if facts.invoices < p.min_invoices {
                            return;
                        }
                        let happened = all.invoices.values().any(|inv| {
                            let due = inv.due();
                            due > t && due <= t + horizon && p.is_serious(inv, data_end)
                        });
                        self.credit.push((
                            id.clone(),
                            RiskRow {
                                features: facts.features(),
                                happened,
                                holdout,
                            },
                        ));
                    },
                );
            }
            RelationshipKind::Partner => {
                let p = &spec.partner;
                let horizon = i64::from(p.horizon_days) * SECONDS_PER_DAY;
                let whole = at_cutoffs(
                    events,
                    data_end,
                    p.horizon_days,
                    CUTOFFS,
                    |history, t, rest| {
                        let facts = PartnerFacts::of(history, t);
                        if facts.active_deals() < p.min_deals {
                            return;
                        }
                        let mut after = history.clone();
                        let mut active = false;
                        for e in rest.iter().take_while(|e| e.at <= t + horizon) {
                            active |= after.apply(e.at, &e.body)
                                && matches!(e.body, crate::domain::EventBody::PartnerDeal { .. });
                        }
                        let won_after = after
                            .deals
                            .values()
                            .filter(|d| d.at > t && d.outcome == crate::domain::DealOutcome::Won)
                            .map(|d| d.value)
                            .sum();
                        self.partner.push((
                            id.clone(),
                            PartnerRow {
                                risk: RiskRow {
                                    features: facts.features(),
                                    happened: !active,
                                    holdout,
                                },
                                run_rate: facts.run_rate(p.horizon_days),
                                won_after,
                            },
                        ));
                    },
                );
                self.partners
                    .push((id.clone(), PartnerFacts::of(&whole, data_end)));
            }
            _ => {}
        }
    }

    /// The fitted models with their metrics, or notes saying why there are none.
    pub fn finish(
        mut self,
        spec: &ModelSpec,
        metrics: &mut Vec<Metric>,
        notes: &mut Vec<String>,
    ) -> (Option<CreditModel>, Option<PartnerModel>) {
        // The book may arrive in any order; the fits see it sorted so that a run is repeatable.
        self.credit.sort_by(|a, b| a.0.cmp(&b.0));
        self.partner.sort_by(|a, b| a.0.cmp(&b.0));
        self.partners.sort_by(|a, b| a.0.cmp(&b.0));
        let mut push = |m: Vec<(String, f64)>| {
            metrics.extend(m.iter().map(|(name, value)| metric(name, *value)));
        };
        let credit = if self.accounts == 0 {
            None
        } else {
            let rows: Vec<RiskRow> = self.credit.into_iter().map(|(_, r)| r).collect();
            match CreditModel::fit(&spec.account, &rows) {
                Ok((model, m)) => {
                    push(m);
                    Some(model)
                }
                Err(e) => {
                    notes.push(format!("no credit-risk model for accounts: {e}"));
                    None
                }
            }
        };
        let partner = if self.partners.is_empty() {
            None
        } else {
            let rows: Vec<PartnerRow> = self.partner.into_iter().map(|(_, r)| r).collect();
            let book: Vec<PartnerFacts> = self.partners.into_iter().map(|(_, f)| f).collect();
            match PartnerModel::fit(&spec.partner, &rows, &book) {
                Ok((model, m)) => {
                    push(m);
                    Some(model)
                }
                Err(e) => {
                    notes.push(format!("no lapse or sourced-value model for partners: {e}"));
                    None
                }
            }
        };
        (credit, partner)
    }
}
