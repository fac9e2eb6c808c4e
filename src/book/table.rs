//! A score index: one row per relationship, with the models it was built
//! for and when. Rows are `Arc`s, replaced whole when recomputed, so a page
//! snapshot that holds some keeps them as they were while the table moves on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::domain::ModelSlot;
use crate::model::ModelRouter;
use crate::time::Timestamp;

use super::row::{Row, Sym};

/// The versions active per slot: what a table was built for.
pub type Versions = Vec<(ModelSlot, u64)>;

pub fn versions_of(models: &ModelRouter) -> Versions {
    models
        .active()
        .map(|(slot, m)| (slot, m.version()))
        .collect()
}

pub struct Table {
    /// The models its rows are computed with; `None` for a table read back
    /// from the store and not yet checked against the book.
    pub models: Option<Arc<ModelRouter>>,
    pub versions: Option<Versions>,
    /// When the build that made it started.
    pub built_at: Timestamp,
    rows: RwLock<Rows>,
}

#[derive(Default)]
pub struct Rows {
    at: HashMap<Sym, usize>,
    rows: Vec<Arc<Row>>,
}

impl Rows {
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Row>> {
        self.rows.iter()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Row>> {
        self.at.get(id).map(|&i| &self.rows[i])
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn put(&mut self, row: Arc<Row>) {
        match self.at.get(&row.id) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.at.insert(Arc::clone(&row.id), self.rows.len());
                self.rows.push(row);
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<Arc<Row>> {
        let i = self.at.remove(id)?;
        let row = self.rows.swap_remove(i);
        if let Some(moved) = self.rows.get(i) {
            self.at.insert(Arc::clone(&moved.id), i);
        }
        Some(row)
    }
}

impl Table {
    pub fn new(models: Option<Arc<ModelRouter>>, built_at: Timestamp) -> Table {
        Table {
            versions: models.as_deref().map(versions_of),
            models,
            built_at,
            rows: RwLock::new(Rows::default()),
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Rows> {
        // Every change to `Rows` keeps both fields in step before it can panic.
        self.rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Rows> {
        self.rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Row>> {
        self.read().get(id).cloned()
    }

    /// The default slot's version, 0 for a table not yet checked.
    pub fn model_version(&self) -> u64 {
        self.versions
            .iter()
            .flatten()
            .find(|(slot, _)| *slot == ModelSlot::Default)
            .map_or(0, |(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> Arc<Row> {
        Arc::new(super::super::row::blank(id))
    }

    #[test]
    fn rows_are_replaced_and_removed_by_id() {
        let mut rows = Rows::default();
        for id in ["a", "b", "c"] {
            rows.put(row(id));
        }
        rows.put(row("a"));
        assert_eq!(rows.len(), 3);
        assert!(rows.remove("a").is_some());
        assert!(rows.remove("a").is_none());
        assert_eq!(
            rows.get("c").unwrap().id.as_ref(),
            "c",
            "the moved row is found"
        );
        let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_ref()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["b", "c"]);
    }
}
