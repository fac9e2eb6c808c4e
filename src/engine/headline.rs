//! The headline of one relationship: its score (without reasons) and its
//! segments from one evaluation, by the very code Score and Segment answer
//! with, so that what the score index keeps equals what they return.

use std::sync::Arc;

use crate::error::Result;
use crate::features::Aggregates;
use crate::model::ModelRouter;
use crate::store::Decoded;
use crate::time::Timestamp;

use super::evaluate::Contributions;
use super::{Engine, ScoreOutput, SegmentOutput};

#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    /// As Score answers it, without reasons.
    pub score: ScoreOutput,
    /// As Segment answers it; `None` when the model has no segment model.
    pub segment: Option<SegmentOutput>,
    /// The last purchase known at `as_of`.
    pub last_purchase: Option<Timestamp>,
}

impl Engine {
    /// The headline of `data` as of `as_of` with `models`.
    ///
    /// # Errors
    /// `FailedPrecondition` when no model serves its kind.
    pub fn headline(
        &self,
        models: &ModelRouter,
        data: Arc<Decoded<Aggregates>>,
        as_of: Timestamp,
    ) -> Result<Headline> {
        let e = self.evaluate_data(models, data, as_of, Contributions::Skipped)?;
        let segment = match e.model.bundle.segments {
            Some(_) => Some(self.segment_of(&e)?),
            None => None,
        };
        Ok(Headline {
            score: self.score_of(&e, 0),
            segment,
            last_purchase: e.data.aggregates.last_purchase.filter(|t| *t <= as_of),
        })
    }
}
