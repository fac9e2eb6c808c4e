//! Drift: how far the live book's features have moved from a version's
//! training rows, by population stability index.

use crate::domain::ModelSlot;
use crate::error::{Error, Result};
use crate::features::Snapshot;
use crate::time::{now, Timestamp};

use super::Engine;

#[derive(Debug, Clone, PartialEq)]
pub struct DriftOutput {
    pub version: u64,
    pub sampled: u64,
    /// (feature, PSI), most shifted first.
    pub features: Vec<(String, f64)>,
    pub as_of: Timestamp,
}

/// Words for a population stability index.
pub fn drift_status(psi: f64) -> &'static str {
    if psi < 0.1 {
        "stable"
    } else if psi < 0.25 {
        "moderate shift"
    } else {
        "major shift"
    }
}

impl Engine {
    /// PSI of every feature of `version` (active when `None`): up to `sample`
    /// relationships from the store, as of now, against the training rows.
    ///
    /// # Errors
    /// `NotFound` for an unknown version, `InvalidArgument` for a bad sample size.
    pub fn drift(&self, version: Option<u64>, sample: u32) -> Result<DriftOutput> {
        let sample = match sample {
            0 => 2_000,
            n if n > 100_000 => {
                return Err(Error::invalid("sample", format!("{n} is more than 100000")));
            }
            n => n as usize,
        };
        let bundle = match version {
            Some(v) => self.bundle(v)?,
            None => self
                .models()
                .in_slot(ModelSlot::Default)
                .ok_or_else(|| Error::precondition("no model is active yet"))?
                .bundle
                .clone(),
        };
        if bundle.drift.is_empty() {
            return Err(Error::precondition(format!(
                "version {} has no drift reference (trained before drift was recorded)",
                bundle.version
            )));
        }
        let store = self.store();
        let step = (store.relationship_count()? / sample).max(1);
        let as_of = now();
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); bundle.schema.width()];
        let mut raw = Vec::with_capacity(bundle.schema.width());
        let mut sampled = 0u64;
        // A model for one kind drifts against that kind's relationships.
        let of_its_kind = |r: &Result<crate::domain::Relationship>| match (r, bundle.spec.kind) {
            (Ok(r), Some(kind)) => r.kind == kind,
            _ => true,
        };
        for relationship in store
            .relationships()
            .filter(of_its_kind)
            .step_by(step)
            .take(sample)
        {
            let relationship = relationship?;
            let aggregates = store.aggregates(&relationship.id)?.unwrap_or_default();
            let snapshot = Snapshot::derive(&relationship, &aggregates, as_of);
            bundle.schema.raw_values(&relationship, &snapshot, &mut raw);
            for (c, v) in columns.iter_mut().zip(&raw) {
                c.push(*v);
            }
            sampled += 1;
        }
        let mut features: Vec<(String, f64)> = bundle
            .drift
            .iter()
            .zip(&columns)
            .map(|(r, values)| (r.feature.clone(), r.psi(values)))
            .collect();
        features.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(DriftOutput {
            version: bundle.version,
            sampled,
            features,
            as_of,
        })
    }
}
