//! The supplier part of a training run: every supplier's delivery history
//! cut at several times T, each labelled by whether a serious failure
//! followed within the horizon, for [`SupplyModel::fit`].

use crate::domain::{Event, Relationship, RelationshipKind};
use crate::features::KindHistory;
use crate::model::supply::{BookSupplier, SupplyRow};
use crate::model::{Metric, ModelSpec, SupplyFacts, SupplyModel};
use crate::time::{day_of, Timestamp, SECONDS_PER_DAY};
use crate::training::evaluation::{in_holdout, metric};
use crate::training::kinds::{at_cutoffs, CUTOFFS};

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
        let cutoffs = if holdout { 1 } else { CUTOFFS };
        let rows = &mut self.rows;
        let history = at_cutoffs(
            events,
            data_end,
            params.horizon_days,
            cutoffs,
            |history, t, rest| {
                let facts = SupplyFacts::of(history, t, params);
                if facts.deliveries < params.min_deliveries {
                    return;
                }
                let mut after = KindHistory::default();
                for e in rest.iter().take_while(|e| e.at <= t + horizon) {
                    after.apply(e.at, &e.body);
                }
                let failed = after
                    .deliveries
                    .iter()
                    .any(|d| d.day > day_of(t) && params.is_failure(d));
                rows.push((
                    relationship.id.clone(),
                    SupplyRow {
                        features: facts.features(),
                        failed,
                        holdout,
                    },
                ));
            },
        );
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
