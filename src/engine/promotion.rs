//! Whether a version may become active: it must serve everything the active
//! version serves, and pass the drift and holdout thresholds of its spec's
//! `[promotion]` section. A promotion that failed these went live before
//! and made Segment fail and every Recommend NO_ACTION.

use crate::domain::ModelSlot;
use crate::error::{Error, Result};
use crate::features::Column;
use crate::model::spec::DataSource;
use crate::model::ModelBundle;

use super::Engine;

/// Relationships drift is measured on for a promotion.
const DRIFT_SAMPLE: u32 = 2_000;

/// What the candidate lacks that the active version has.
pub fn coverage_problems(active: &ModelBundle, candidate: &ModelBundle) -> Vec<String> {
    let mut problems = Vec::new();
    let v = active.version;
    if active.segments.is_some() && candidate.segments.is_none() {
        problems.push(format!(
            "it has no segment model and v{v} has one (Segment would fail)"
        ));
    }
    if !active.churn.horizons().is_empty() && candidate.churn.horizons().is_empty() {
        problems.push(format!("it has no churn timing curve and v{v} has one"));
    }
    if active.value.is_some() && candidate.value.is_none() {
        problems.push(format!("it has no value model and v{v} has one"));
    }
    if !active.baskets.complements.is_empty() && candidate.baskets.complements.is_empty() {
        problems.push(format!(
            "it has no cross-sell rules and v{v} has them (Recommend would lose them)"
        ));
    }
    let kinds = |b: &ModelBundle| -> Vec<String> {
        b.schema
            .columns
            .iter()
            .filter_map(|c| match c {
                Column::Kind(k) => Some(k.as_str().to_string()),
                _ => None,
            })
            .collect()
    };
    let candidate_kinds = kinds(candidate);
    let lost: Vec<String> = kinds(active)
        .into_iter()
        .filter(|k| !candidate_kinds.contains(k))
        .collect();
    if !lost.is_empty() {
        problems.push(format!(
            "it does not tell apart the relationship kinds v{v} does ({})",
            lost.join(", ")
        ));
    }
    problems
}

/// Which of the spec's holdout thresholds the candidate misses.
pub fn metric_problems(candidate: &ModelBundle) -> Vec<String> {
    let p = &candidate.spec.promotion;
    let mut problems = Vec::new();
    for (name, min) in &p.min_metrics {
        match candidate.metric(name) {
            Some(v) if v >= *min => {}
            Some(v) => problems.push(format!("holdout {name} {v:.4} is below {min}")),
            None => problems.push(format!("holdout {name} was not measured (needs >= {min})")),
        }
    }
    for (name, max) in &p.max_metrics {
        match candidate.metric(name) {
            Some(v) if v <= *max => {}
            Some(v) => problems.push(format!("holdout {name} {v:.4} is above {max}")),
            None => problems.push(format!("holdout {name} was not measured (needs <= {max})")),
        }
    }
    problems
}

impl Engine {
    /// Everything that stops `version` from being promoted over the version
    /// active in `slot` (a kind's slot compares with its own version only,
    /// not with the default's): empty when it may be. Reads a sample of the book for drift:
    /// call it off the async workers.
    ///
    /// # Errors
    /// `NotFound` for an unknown version; `Storage` or `Corrupt`.
    pub fn promotion_problems(&self, version: u64, slot: ModelSlot) -> Result<Vec<String>> {
        let candidate = self.bundle(version)?;
        let mut problems = Vec::new();
        if let Some(active) = self.active_version(slot)? {
            if active != version {
                problems.extend(coverage_problems(&self.bundle(active)?, &candidate));
            }
        }
        problems.extend(metric_problems(&candidate));
        let max_psi = candidate.spec.promotion.max_psi;
        // A table model serves its own rows, which are its training rows:
        // the book's drift says nothing about it.
        if matches!(candidate.spec.source, DataSource::Table(_)) {
            return Ok(problems);
        }
        match self.drift(Some(version), DRIFT_SAMPLE) {
            Ok(drift) if drift.sampled == 0 => {}
            Ok(drift) => {
                let shifted: Vec<String> = drift
                    .features
                    .iter()
                    .filter(|(_, psi)| *psi > max_psi)
                    .map(|(name, psi)| format!("{name} {psi:.2}"))
                    .collect();
                if !shifted.is_empty() {
                    problems.push(format!(
                        "features drifted past PSI {max_psi}: {}",
                        shifted.join(", ")
                    ));
                }
            }
            // An empty book has no drift to measure.
            Err(Error::FailedPrecondition { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(problems)
    }
}

/// The refusal for a promotion that failed its checks.
pub fn refused(version: u64, problems: &[String]) -> Error {
    Error::precondition(format!(
        "version {version} is not promoted: {}; promote with force and a reason to override",
        problems.join("; ")
    ))
}
