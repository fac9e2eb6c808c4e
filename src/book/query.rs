//! Filters, orders and pages over the score index.
//!
//! A query's pages come from one snapshot: the first page takes the matching
//! rows (shared `Arc`s, 8 bytes each) in the query's order, and its token
//! names the snapshot and a position in it. Later writes replace rows in the
//! table, not in the snapshot, so every matching row comes back exactly once
//! and in one order however the book changes between pages. Only the first
//! page is sorted up front (a partial selection); the rest is sorted when a
//! second page is asked for. An erased relationship is blanked out of every
//! snapshot at once ([`Snapshots::erase`]).
//!
//! Snapshots live [`Snapshots::TTL`] after their last page, at most
//! [`Snapshots::MAX`] at a time (the least recently used goes first), on the
//! server that made them.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::{validate_id, AttributeValue, RelationshipKind};
use crate::engine::LifecycleStage;
use crate::error::{Error, Result};

use super::row::{Attr, Interner, Row, Sym};
use super::table::Rows;

/// Largest page.
pub const MAX_PAGE: usize = 10_000;
pub const DEFAULT_PAGE: usize = 100;

/// Which relationships a query, summary or plan covers: every part given
/// must match; a list matches any of its values; an empty list matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub kinds: Vec<RelationshipKind>,
    pub rfm_segments: Vec<String>,
    pub stages: Vec<LifecycleStage>,
    pub value_tiers: Vec<String>,
    pub clusters: Vec<u32>,
    pub kind_classes: Vec<String>,
    pub min_churn_probability: Option<f64>,
    pub min_value_at_risk: Option<f64>,
    pub attributes: Vec<(String, AttributeValue)>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// # Errors
    /// `InvalidArgument` naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(c) = self.min_churn_probability {
            crate::domain::validate_number("filter.min_churn_probability", c, 0.0, 1.0)?;
        }
        if let Some(v) = self.min_value_at_risk {
            crate::domain::validate_number("filter.min_value_at_risk", v, f64::MIN, f64::MAX)?;
        }
        for (i, (name, value)) in self.attributes.iter().enumerate() {
            validate_id(&format!("filter.attributes[{i}].name"), name)?;
            if let AttributeValue::Number(n) = value {
                crate::domain::validate_number(
                    &format!("filter.attributes[{i}].value"),
                    *n,
                    f64::MIN,
                    f64::MAX,
                )?;
            }
        }
        Ok(())
    }

    /// The filter against the interned strings of the rows.
    pub(super) fn compile(&self, interner: &Interner) -> Compiled {
        let syms = |names: &[String]| -> Option<Vec<Sym>> {
            (!names.is_empty()).then(|| names.iter().filter_map(|n| interner.lookup(n)).collect())
        };
        Compiled {
            kinds: (!self.kinds.is_empty()).then(|| {
                let mut set = [false; 4];
                for k in &self.kinds {
                    set[kind_index(*k)] = true;
                }
                set
            }),
            rfm_segments: syms(&self.rfm_segments),
            stages: (!self.stages.is_empty()).then(|| self.stages.clone()),
            value_tiers: syms(&self.value_tiers),
            clusters: (!self.clusters.is_empty()).then(|| self.clusters.clone()),
            kind_classes: syms(&self.kind_classes),
            min_churn: self.min_churn_probability,
            min_value_at_risk: self.min_value_at_risk,
            attributes: self
                .attributes
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        AttributeValue::Number(n) => Some(Attr::Number(*n)),
                        AttributeValue::Text(t) => interner.lookup(t).map(Attr::Text),
                    };
                    (interner.lookup(name), value)
                })
                .collect(),
        }
    }
}

pub(super) fn kind_index(kind: RelationshipKind) -> usize {
    match kind {
        RelationshipKind::Customer => 0,
        RelationshipKind::Account => 1,
        RelationshipKind::Supplier => 2,
        RelationshipKind::Partner => 3,
    }
}

/// A [`Filter`] with its names resolved to the interned strings rows hold,
/// so that matching compares pointers. A name no row holds matches nothing.
pub(super) struct Compiled {
    kinds: Option<[bool; 4]>,
    rfm_segments: Option<Vec<Sym>>,
    stages: Option<Vec<LifecycleStage>>,
    value_tiers: Option<Vec<Sym>>,
    clusters: Option<Vec<u32>>,
    kind_classes: Option<Vec<Sym>>,
    min_churn: Option<f64>,
    min_value_at_risk: Option<f64>,
    attributes: Vec<(Option<Sym>, Option<Attr>)>,
}

fn any_of(wanted: &Option<Vec<Sym>>, have: Option<&Sym>) -> bool {
    match wanted {
        None => true,
        Some(list) => have.is_some_and(|h| list.iter().any(|w| Arc::ptr_eq(w, h))),
    }
}

impl Compiled {
    pub fn matches(&self, row: &Row) -> bool {
        if let Some(kinds) = &self.kinds {
            if !kinds[kind_index(row.kind)] {
                return false;
            }
        }
        if self.min_churn.is_some_and(|m| row.churn_probability < m)
            || self
                .min_value_at_risk
                .is_some_and(|m| !row.value_at_risk.is_some_and(|v| v >= m))
        {
            return false;
        }
        let seg = row.segments.as_ref();
        if !any_of(&self.rfm_segments, seg.map(|s| &s.rfm_segment))
            || !any_of(&self.value_tiers, seg.map(|s| &s.value_tier))
            || !any_of(&self.kind_classes, seg.map(|s| &s.class))
        {
            return false;
        }
        if let Some(stages) = &self.stages {
            if !seg.is_some_and(|s| stages.contains(&s.stage)) {
                return false;
            }
        }
        if let Some(clusters) = &self.clusters {
            if !seg.is_some_and(|s| clusters.contains(&s.cluster)) {
                return false;
            }
        }
        self.attributes.iter().all(|(name, wanted)| {
            let (Some(name), Some(wanted)) = (name, wanted) else {
                return false;
            };
            row.attributes
                .iter()
                .find(|(n, _)| Arc::ptr_eq(n, name))
                .is_some_and(|(_, have)| match (have, wanted) {
                    (Attr::Number(a), Attr::Number(b)) => a == b,
                    (Attr::Text(a), Attr::Text(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                })
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    #[default]
    ValueAtRisk,
    Churn,
    Value,
    /// Days since the last purchase; never bought counts as the longest ago.
    Recency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Order {
    pub by: OrderBy,
    pub ascending: bool,
}

impl Order {
    fn key(self, row: &Row) -> f64 {
        match self.by {
            OrderBy::ValueAtRisk => row.value_at_risk_or_zero(),
            OrderBy::Churn => row.churn_probability,
            OrderBy::Value => row.expected_value_or_zero(),
            OrderBy::Recency => row.days_since_last_purchase().unwrap_or(f64::INFINITY),
        }
    }

    /// Key first (in the query's direction), then id ascending.
    fn compare_rows(self, (ka, a): (f64, &Row), (kb, b): (f64, &Row)) -> Ordering {
        let by_key = if self.ascending {
            ka.total_cmp(&kb)
        } else {
            kb.total_cmp(&ka)
        };
        by_key.then_with(|| a.id.cmp(&b.id))
    }

    fn compare(self, a: &(f64, Arc<Row>), b: &(f64, Arc<Row>)) -> Ordering {
        self.compare_rows((a.0, &a.1), (b.0, &b.1))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    pub filter: Filter,
    pub order: Order,
    /// 0 means [`DEFAULT_PAGE`].
    pub page_size: u32,
    pub page_token: String,
}

/// One page.
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<Arc<Row>>,
    /// `None` on the last page.
    pub next_page_token: Option<String>,
    pub total_matches: u64,
}

struct Snapshot {
    query: u64,
    order: Order,
    total: u64,
    state: Mutex<SnapshotRows>,
}

struct SnapshotRows {
    /// In order up to `sorted`; unordered after it. Erased rows are `None`,
    /// and only ever in the sorted part (erasing sorts the rest first).
    rows: Vec<(f64, Option<Arc<Row>>)>,
    sorted: usize,
    last_used: Instant,
}

impl SnapshotRows {
    fn sort_all(&mut self, order: Order) {
        if self.sorted < self.rows.len() {
            let rest = &mut self.rows[self.sorted..];
            rest.sort_unstable_by(|a, b| match (&a.1, &b.1) {
                (Some(ra), Some(rb)) => order.compare_rows((a.0, ra), (b.0, rb)),
                // Never: the unsorted part has no erased rows.
                _ => Ordering::Equal,
            });
            self.sorted = self.rows.len();
        }
    }
}

/// The snapshots of the queries being paged.
pub struct Snapshots {
    by_id: Mutex<HashMap<u64, Arc<Snapshot>>>,
    next: Mutex<u64>,
    /// Keys the snapshot ids, so that a token from another server or an
    /// earlier run does not name one by chance.
    salt: std::collections::hash_map::RandomState,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            by_id: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
            salt: std::collections::hash_map::RandomState::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values change in single assignments.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Snapshots {
    pub const TTL: Duration = Duration::from_secs(600);
    pub const MAX: usize = 64;

    /// Answers `request`; for a first page, `scan` returns the rows of the
    /// index that the filter it is given keeps.
    ///
    /// # Errors
    /// `InvalidArgument` for a bad page size, filter or token, or a token of
    /// another query; `FailedPrecondition` for an expired token.
    pub fn page(
        &self,
        request: &QueryRequest,
        interner: &Interner,
        scan: impl FnOnce(&dyn Fn(&Row) -> bool) -> Vec<Arc<Row>>,
    ) -> Result<Page> {
        let size = match request.page_size as usize {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(Error::invalid(
                    "page_size",
                    format!("{n} is more than {MAX_PAGE}"),
                ))
            }
            n => n,
        };
        request.filter.validate()?;
        let query = fingerprint(&request.filter, request.order);
        if !request.page_token.is_empty() {
            let (id, offset, token_query) = parse_token(&request.page_token)?;
            if token_query != query {
                return Err(Error::invalid(
                    "page_token",
                    "belongs to a query with another filter or order",
                ));
            }
            let snapshot = lock(&self.by_id).get(&id).cloned().ok_or_else(|| {
                Error::precondition(
                    "the page token has expired (or comes from another server): start the query again",
                )
            })?;
            return Ok(self.next_page(id, &snapshot, offset, size));
        }
        let order = request.order;
        let compiled = request.filter.compile(interner);
        let mut matched: Vec<(f64, Arc<Row>)> = scan(&|r| compiled.matches(r))
            .into_iter()
            .map(|r| (order.key(&r), r))
            .collect();
        let total = matched.len() as u64;
        if matched.len() <= size {
            matched.sort_unstable_by(|a, b| order.compare(a, b));
            return Ok(Page {
                rows: matched.into_iter().map(|(_, r)| r).collect(),
                next_page_token: None,
                total_matches: total,
            });
        }
        matched.select_nth_unstable_by(size - 1, |a, b| order.compare(a, b));
        matched[..size].sort_unstable_by(|a, b| order.compare(a, b));
        let first: Vec<Arc<Row>> = matched[..size].iter().map(|(_, r)| Arc::clone(r)).collect();
        let snapshot = Arc::new(Snapshot {
            query,
            order,
            total,
            state: Mutex::new(SnapshotRows {
                rows: matched.into_iter().map(|(k, r)| (k, Some(r))).collect(),
                sorted: size,
                last_used: Instant::now(),
            }),
        });
        let id = self.keep(snapshot);
        Ok(Page {
            rows: first,
            next_page_token: Some(token(id, size, query)),
            total_matches: total,
        })
    }

    fn next_page(&self, id: u64, snapshot: &Snapshot, offset: usize, size: usize) -> Page {
        let mut state = lock(&snapshot.state);
        state.last_used = Instant::now();
        state.sort_all(snapshot.order);
        let mut rows = Vec::with_capacity(size);
        let mut at = offset.min(state.rows.len());
        while at < state.rows.len() && rows.len() < size {
            if let Some(r) = &state.rows[at].1 {
                rows.push(Arc::clone(r));
            }
            at += 1;
        }
        let more = state.rows[at..].iter().any(|(_, r)| r.is_some());
        drop(state);
        if !more {
            lock(&self.by_id).remove(&id);
        }
        Page {
            rows,
            next_page_token: more.then(|| token(id, at, snapshot.query)),
            total_matches: snapshot.total,
        }
    }

    fn keep(&self, snapshot: Arc<Snapshot>) -> u64 {
        let id = {
            let mut next = lock(&self.next);
            *next += 1;
            self.salt.hash_one(*next)
        };
        let mut by_id = lock(&self.by_id);
        let now = Instant::now();
        by_id.retain(|_, s| now.duration_since(lock(&s.state).last_used) < Self::TTL);
        while by_id.len() >= Self::MAX {
            let oldest = by_id
                .iter()
                .min_by_key(|(_, s)| lock(&s.state).last_used)
                .map(|(id, _)| *id);
            match oldest {
                Some(oldest) => by_id.remove(&oldest),
                None => break,
            };
        }
        by_id.insert(id, snapshot);
        id
    }

    /// Blanks an erased relationship out of every snapshot: later pages skip
    /// it, and no copy of its row is kept.
    pub fn erase(&self, id: &str) {
        let snapshots: Vec<Arc<Snapshot>> = lock(&self.by_id).values().cloned().collect();
        for snapshot in snapshots {
            let mut state = lock(&snapshot.state);
            state.sort_all(snapshot.order);
            for entry in &mut state.rows {
                if entry.1.as_ref().is_some_and(|r| &*r.id == id) {
                    entry.1 = None;
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.by_id).len()
    }
}

/// Identifies a query's filter and order, so a token is only used with its own.
pub(super) fn fingerprint(filter: &Filter, order: Order) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{filter:?}|{order:?}").hash(&mut h);
    h.finish()
}

fn token(id: u64, offset: usize, query: u64) -> String {
    format!("{id:016x}{:016x}{query:016x}", offset as u64)
}

fn parse_token(token: &str) -> Result<(u64, usize, u64)> {
    let bad = || Error::invalid("page_token", "is not a token this server handed out");
    if token.len() != 48 || !token.is_ascii() {
        return Err(bad());
    }
    let part = |i: usize| u64::from_str_radix(&token[i * 16..(i + 1) * 16], 16).map_err(|_| bad());
    Ok((part(0)?, part(1)? as usize, part(2)?))
}

/// The rows of `rows` that `keep` keeps, for a first page.
pub(super) fn kept(rows: &Rows, keep: &dyn Fn(&Row) -> bool) -> Vec<Arc<Row>> {
    rows.iter().filter(|r| keep(r)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, var: f64, segment: &str, interner: &Interner) -> Arc<Row> {
        let seg = interner.intern(segment);
        Arc::new(Row {
            attributes: Box::new([(
                interner.intern("region"),
                Attr::Text(interner.intern("north")),
            )]),
            churn_probability: 0.5,
            expected_value: Some(var * 2.0),
            value_at_risk: Some(var),
            segments: Some(super::super::row::Segments {
                class: Arc::clone(&seg),
                rfm_segment: seg,
                value_tier: interner.intern("Gold"),
                cluster: 0,
                stage: LifecycleStage::Active,
            }),
            ..super::super::row::blank(id)
        })
    }

    fn request(filter: Filter, size: u32, token: &str) -> QueryRequest {
        QueryRequest {
            filter,
            order: Order::default(),
            page_size: size,
            page_token: token.into(),
        }
    }

    #[test]
    fn pages_cover_a_snapshot_once_in_order_and_skip_erased_rows() {
        let interner = Interner::default();
        let book: Vec<Arc<Row>> = (0..25)
            .map(|i| {
                row(
                    &format!("r{i:02}"),
                    f64::from(i % 7),
                    if i % 2 == 0 { "A" } else { "B" },
                    &interner,
                )
            })
            .collect();
        let snapshots = Snapshots::default();
        let filter = Filter {
            rfm_segments: vec!["A".into()],
            ..Filter::default()
        };
        let first = snapshots
            .page(&request(filter.clone(), 4, ""), &interner, |keep| {
                book.iter().filter(|r| keep(r)).cloned().collect()
            })
            .unwrap();
        assert_eq!(first.total_matches, 13);
        let mut seen: Vec<Arc<Row>> = first.rows.clone();
        snapshots.erase("r24");
        let mut token = first.next_page_token.unwrap();
        loop {
            let page = snapshots
                .page(&request(filter.clone(), 4, &token), &interner, |_| {
                    Vec::new()
                })
                .unwrap();
            seen.extend(page.rows);
            match page.next_page_token {
                Some(t) => token = t,
                None => break,
            }
        }
        let ids: Vec<&str> = seen.iter().map(|r| r.id.as_ref()).collect();
        let mut expected: Vec<&Arc<Row>> = book
            .iter()
            .filter(|r| r.id.as_ref() != "r24" && (r.id[1..].parse::<u32>().unwrap() % 2 == 0))
            .collect();
        expected.sort_by(|a, b| {
            b.value_at_risk_or_zero()
                .total_cmp(&a.value_at_risk_or_zero())
                .then(a.id.cmp(&b.id))
        });
        let expected: Vec<&str> = expected.iter().map(|r| r.id.as_ref()).collect();
        // r24 was on the first page or later; it only drops out of later pages.
        let seen_without: Vec<&str> = ids.iter().copied().filter(|id| *id != "r24").collect();
        assert_eq!(seen_without, expected);
        assert_eq!(snapshots.len(), 0, "a finished query lets its snapshot go");
    }

    #[test]
    fn tokens_are_checked() {
        let interner = Interner::default();
        let book: Vec<Arc<Row>> = (0..5)
            .map(|i| row(&format!("r{i}"), 1.0, "A", &interner))
            .collect();
        let snapshots = Snapshots::default();
        let first = snapshots
            .page(&request(Filter::default(), 2, ""), &interner, |keep| {
                book.iter().filter(|r| keep(r)).cloned().collect()
            })
            .unwrap();
        let token = first.next_page_token.unwrap();
        let other = Filter {
            kinds: vec![RelationshipKind::Account],
            ..Filter::default()
        };
        let err = snapshots
            .page(&request(other, 2, &token), &interner, |_| Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("another filter"), "{err}");
        assert!(matches!(
            snapshots.page(&request(Filter::default(), 2, "xyz"), &interner, |_| {
                Vec::new()
            }),
            Err(Error::InvalidArgument { .. })
        ));
        let forged = format!("{:016x}{}", 1u64, &token[16..]);
        assert!(matches!(
            snapshots.page(&request(Filter::default(), 2, &forged), &interner, |_| {
                Vec::new()
            }),
            Err(Error::FailedPrecondition { .. })
        ));
    }

    #[test]
    fn filters_match_on_every_part() {
        let interner = Interner::default();
        let r = row("a", 3.0, "A", &interner);
        let m = |f: Filter| f.compile(&interner).matches(&r);
        assert!(m(Filter::default()));
        assert!(m(Filter {
            rfm_segments: vec!["B".into(), "A".into()],
            ..Filter::default()
        }));
        assert!(!m(Filter {
            rfm_segments: vec!["Unheard of".into()],
            ..Filter::default()
        }));
        assert!(!m(Filter {
            min_value_at_risk: Some(3.5),
            ..Filter::default()
        }));
        assert!(m(Filter {
            min_churn_probability: Some(0.5),
            ..Filter::default()
        }));
        assert!(!m(Filter {
            stages: vec![LifecycleStage::Lapsed],
            ..Filter::default()
        }));
        let region = |v: &str| Filter {
            attributes: vec![("region".into(), AttributeValue::Text(v.into()))],
            ..Filter::default()
        };
        assert!(m(region("north")));
        assert!(!m(region("south")));
        assert!(!m(Filter {
            attributes: vec![("region".into(), AttributeValue::Number(1.0))],
            ..Filter::default()
        }));
    }
}
