//! Which model serves which relationship: a bundle per relationship kind,
//! with a default bundle for every kind that has none of its own.
//!
//! A [`ModelRouter`] is immutable; serving swaps in a whole new router when a
//! version is promoted or rolled back, so one request sees one set of models.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::domain::{ModelSlot, Relationship, RelationshipKind};
use crate::error::Result;
use crate::features::Column;
use crate::model::ModelBundle;

/// A model ready to serve: its bundle, checked for width at load.
#[derive(Debug)]
pub struct LoadedModel {
    pub bundle: ModelBundle,
    /// `bundle.schema` column names, built once rather than per reason.
    pub column_names: Vec<String>,
    /// A table model's own relationships by id (its namespace,
    /// [`crate::model::bundle::TABLE_ROWS_ARTIFACT`]); empty for others.
    pub own_rows: HashMap<String, Relationship>,
}

impl LoadedModel {
    /// # Errors
    /// `Corrupt` when a model's width disagrees with its schema.
    pub fn new(bundle: ModelBundle) -> Result<LoadedModel> {
        bundle.check_widths()?;
        let column_names = bundle.schema.columns.iter().map(Column::name).collect();
        Ok(LoadedModel {
            bundle,
            column_names,
            own_rows: HashMap::new(),
        })
    }

    /// The model serving `rows` by id, from its own namespace.
    #[must_use]
    pub fn with_rows(mut self, rows: Vec<Relationship>) -> LoadedModel {
        self.own_rows = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
        self
    }

    pub fn version(&self) -> u64 {
        self.bundle.version
    }
}

/// The active models: one per slot that has one.
#[derive(Debug, Default, Clone)]
pub struct ModelRouter {
    default: Option<Arc<LoadedModel>>,
    by_kind: BTreeMap<RelationshipKind, Arc<LoadedModel>>,
}

/// The model that answers for one relationship, and whether it is its kind's own.
#[derive(Debug, Clone)]
pub struct Routed<'a> {
    pub model: &'a Arc<LoadedModel>,
    /// False when the kind has no model of its own and the default answers.
    pub kind_specific: bool,
}

impl ModelRouter {
    /// A router with `model` in `slot` and every other slot as in `self`.
    #[must_use]
    pub fn with(&self, slot: ModelSlot, model: Arc<LoadedModel>) -> ModelRouter {
        let mut next = self.clone();
        match slot {
            ModelSlot::Default => next.default = Some(model),
            ModelSlot::Kind(kind) => {
                next.by_kind.insert(kind, model);
            }
        }
        next
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.by_kind.is_empty()
    }

    /// A relationship from the namespace of an active table model, if one has it.
    pub fn own_row(&self, id: &str) -> Option<&Relationship> {
        self.default
            .iter()
            .chain(self.by_kind.values())
            .find_map(|m| m.own_rows.get(id))
    }

    /// The model for a relationship of `kind`: its kind's own, else the default.
    pub fn route(&self, kind: RelationshipKind) -> Option<Routed<'_>> {
        match self.by_kind.get(&kind) {
            Some(model) => Some(Routed {
                model,
                kind_specific: true,
            }),
            None => self.default.as_ref().map(|model| Routed {
                model,
                kind_specific: false,
            }),
        }
    }

    /// The model active in `slot`, if any.
    pub fn in_slot(&self, slot: ModelSlot) -> Option<&Arc<LoadedModel>> {
        match slot {
            ModelSlot::Default => self.default.as_ref(),
            ModelSlot::Kind(kind) => self.by_kind.get(&kind),
        }
    }

    /// Every active model with its slot, default first.
    pub fn active(&self) -> impl Iterator<Item = (ModelSlot, &Arc<LoadedModel>)> {
        self.default
            .iter()
            .map(|m| (ModelSlot::Default, m))
            .chain(self.by_kind.iter().map(|(k, m)| (ModelSlot::Kind(*k), m)))
    }
}
