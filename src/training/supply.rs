//! The supplier part of a training run: every supplier's delivery history
//! cut at several times T, each labelled by whether a serious failure
//! followed within the horizon, for [`SupplyModel::fit`].

use crate::domain::{Event, Relationship, RelationshipKind};
use crate::features::KindHistory;
use crate::model::supply::{BookSupplier, SupplyRow};
use crate::model::{Metric, ModelSpec, SupplyFacts, SupplyModel};
use crate::time::{day_of, Timestamp, SECONDS_PER_DAY};
use crate::training::evaluation::{in_holdout, metric};

/// Cutoffs per supplier, one horizon apart, the latest a horizon before the
/// data ends: more examples from a book that has few suppliers.
const CUTOFFS: i64 = 4;

#[derive(Default)]
pub struct SupplyCollector {
    /// With the supplier's id: the book may arrive in any order, and the
    /// fit sees it sorted so that a run is repeatable.
    rows: Vec<(String, SupplyRow)>,
    book: Vec<BookSupplier>,
}

impl SupplyCollector {
    /// Takes a relationship of the book with its time-ordered events; only
    /// suppliers count.
    pub fn add(
        &mut self,
        relationship: &Relationship,
        events: &[Event],
        data_end: Timestamp,
        spec: &ModelSpec,
    ) {
        if relationship.kind != RelationshipKind::Supplier {
            return;
        }
        let params = &spec.supplier;
        let horizon = i64::from(params.horizon_days) * SECONDS_PER_DAY;
        let holdout = in_holdout(&relationship.id, spec.seed, spec.holdout_fraction);
        let mut history = KindHistory::default();
        let mut next = 0;
        let cutoffs = if holdout { 1 } else { CUTOFFS };
        for k in (0..cutoffs).rev() {
            let t = data_end - horizon * (k + 1);
            while next < events.len() && events[next].at <= t {
                history.apply(events[next].at, &events[next].body);
                next += 1;
            }
            let facts = SupplyFacts::of(&history, t, params);
            if facts.deliveries < params.min_deliveries {
                continue;
            }
            let mut after = KindHistory::default();
            for e in events[next..].iter().take_while(|e| e.at <= t + horizon) {
                after.apply(e.at, &e.body);
            }
            let failed = after
                .deliveries
                .iter()
                .any(|d| d.day > day_of(t) && params.is_failure(d));
            self.rows.push((
                relationship.id.clone(),
                SupplyRow {
                    features: facts.features(),
                    failed,
                    holdout,
                },
            ));
        }
        for e in &events[next..] {
            history.apply(e.at, &e.body);
        }
        self.book.push(BookSupplier {
            id: relationship.id.clone(),
            facts: SupplyFacts::of(&history, data_end, params),
        });
    }

    /// The fitted model with its metrics, or the note saying why there is none.
    pub fn finish(
        mut self,
        spec: &ModelSpec,
        metrics: &mut Vec<Metric>,
        notes: &mut Vec<String>,
    ) -> Option<SupplyModel> {
        if self.book.is_empty() {
            return None;
        }
        self.rows.sort_by(|a, b| a.0.cmp(&b.0));
        self.book.sort_by(|a, b| a.id.cmp(&b.id));
        let rows: Vec<SupplyRow> = self.rows.into_iter().map(|(_, r)| r).collect();
        match SupplyModel::fit(&spec.supplier, &rows, &self.book) {
            Ok((model, m)) => {
                metrics.extend(m.iter().map(|(name, value)| metric(name, *value)));
                Some(model)
            }
            Err(e) => {
                notes.push(format!("no supply-risk model: {e}"));
                None
            }
        }
    }
}
