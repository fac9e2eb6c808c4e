//! Training data from files, as a spec describes them: a snapshot table (one
//! row per relationship with a label) or a purchase log (one row per purchase).
//! No column name is assumed: every one comes from the spec's `[data]` section.
//!
//! Errors and skip notes name the line, the column (by the spec's name, or by
//! position) and what is wrong, but never quote a cell or a header: a spec
//! sent over the network must not turn the server into a reader of files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use crate::domain::{
    parse_yes_no, AttributeValue, Event, EventBody, Relationship, RelationshipKind,
};
use crate::error::{Error, Result};
use crate::model::spec::{EventSource, TableSource};
use crate::time::{parse_time, Timestamp};

/// A validation error as the field it names, without the value it quotes.
fn without_content(e: Error) -> String {
    match e {
        Error::InvalidArgument { field, .. } => format!("{field} is not valid"),
        other => other.to_string(),
    }
}

/// Rows reported as skipped, at most this many kept with their reasons.
const MAX_REPORTED_SKIPS: usize = 20;

/// One row of a snapshot table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    pub relationship: Relationship,
    pub churned: bool,
    pub value: Option<f64>,
    /// Whether the spec's split column holds the row out; `None` without one.
    pub holdout: Option<bool>,
}

/// What a load left out, for the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub rows: u64,
    pub skipped: u64,
    pub examples: Vec<String>,
    /// FNV-1a of the file's bytes: the data fingerprint stored with the model.
    pub fingerprint: String,
}

impl LoadReport {
    fn skip(&mut self, line: u64, reason: String) {
        self.skipped += 1;
        if self.examples.len() < MAX_REPORTED_SKIPS {
            self.examples.push(format!("line {line}: {reason}"));
        }
    }
}

fn missing(cell: &str) -> bool {
    let c = cell.trim();
    c.is_empty()
        || ["na", "n/a", "nan", "null", "none", "?"].contains(&c.to_ascii_lowercase().as_str())
}

fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}:{}B", bytes.len())
}

/// A file's header, its non-blank rows with their line numbers, and its fingerprint.
type CsvFile = (csv::StringRecord, Vec<(u64, csv::StringRecord)>, String);

fn read_csv(path: &str) -> Result<CsvFile> {
    let bad = |reason: String| Error::BadInput {
        path: path.to_string(),
        reason,
    };
    let bytes = std::fs::read(Path::new(path)).map_err(|e| bad(e.to_string()))?;
    let print = fingerprint(&bytes);
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text);
    let header = reader
        .headers()
        .map_err(|e| bad(format!("header: {e}")))?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                if r.iter().all(|c| c.is_empty()) {
                    continue;
                }
                rows.push((line, r));
            }
            Err(e) => return Err(bad(format!("{e}"))),
        }
    }
    Ok((header, rows, print))
}

fn column(header: &csv::StringRecord, name: &str, path: &str) -> Result<usize> {
    header
        .iter()
        .position(|h| h.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| Error::BadInput {
            path: path.to_string(),
            reason: format!(
                "column {name:?} named by the spec is not in the header ({} columns)",
                header.len()
            ),
        })
}

#[derive(Clone, Copy, PartialEq)]
enum ColumnType {
    Numeric,
    Categorical,
    Boolean,
}

/// Loads a snapshot table; each row becomes a relationship whose attributes are
/// the feature columns.
///
/// # Errors
/// `BadInput` naming the file: a missing column, no usable row, or (with
/// `bad_rows = "reject"`) the first bad row with its line.
pub fn load_table(source: &TableSource, now: Timestamp) -> Result<(Vec<TableRow>, LoadReport)> {
    let path = source.path.as_str();
    let (header, rows, print) = read_csv(path)?;
    let label = column(&header, &source.label_column, path)?;
    let id = source
        .id_column
        .as_deref()
        .map(|c| column(&header, c, path))
        .transpose()?;
    let value = source
        .value_column
        .as_deref()
        .map(|c| column(&header, c, path))
        .transpose()?;
    let split = source
        .split_column
        .as_deref()
        .map(|c| column(&header, c, path))
        .transpose()?;
    for name in source
        .drop
        .iter()
        .chain(&source.numeric)
        .chain(&source.categorical)
        .chain(&source.boolean)
    {
        column(&header, name, path)?;
    }
    let excluded: BTreeSet<usize> = [Some(label), id, value, split]
        .into_iter()
        .flatten()
        .chain(
            source
                .drop
                .iter()
                .filter_map(|d| column(&header, d, path).ok()),
        )
        .collect();
    let named = |list: &[String], h: &str| list.iter().any(|n| n.eq_ignore_ascii_case(h));
    // Unnamed columns are typed from their values: numeric if every present value parses.
    let mut types = Vec::with_capacity(header.len());
    for (j, h) in header.iter().enumerate() {
        let t = if named(&source.numeric, h) {
            ColumnType::Numeric
        } else if named(&source.boolean, h) {
            ColumnType::Boolean
        } else if named(&source.categorical, h) {
            ColumnType::Categorical
        } else {
            let present: Vec<&str> = rows
                .iter()
                .filter_map(|(_, r)| r.get(j))
                .filter(|c| !missing(c))
                .collect();
            if !present.is_empty()
                && present
                    .iter()
                    .all(|c| c.parse::<f64>().is_ok_and(f64::is_finite))
            {
                ColumnType::Numeric
            } else if !present.is_empty() && present.iter().all(|c| parse_yes_no(c).is_some()) {
                ColumnType::Boolean
            } else {
                ColumnType::Categorical
            }
        };
        types.push(t);
    }
    let mut report = LoadReport {
        fingerprint: print,
        ..LoadReport::default()
    };
    let mut out = Vec::with_capacity(rows.len());
    let mut seen_ids: HashMap<String, u64> = HashMap::new();
    for (n, (line, record)) in rows.iter().enumerate() {
        let columns = Columns {
            label,
            id,
            value,
            split,
        };
        match table_row(source, &header, &types, &excluded, &columns, n, record, now) {
            Ok(row) if !seen_ids.contains_key(&row.relationship.id) => {
                seen_ids.insert(row.relationship.id.clone(), *line);
                out.push(row)
            }
            Ok(row) => {
                let reason = format!(
                    "duplicate id (first on line {})",
                    seen_ids[&row.relationship.id]
                );
                if !source.skip_bad_rows {
                    return Err(Error::BadInput {
                        path: path.to_string(),
                        reason: format!("line {line}: {reason}"),
                    });
                }
                report.skip(*line, reason);
            }
            Err(reason) if source.skip_bad_rows => report.skip(*line, reason),
            Err(reason) => {
                return Err(Error::BadInput {
                    path: path.to_string(),
                    reason: format!("line {line}: {reason}"),
                })
            }
        }
    }
    report.rows = out.len() as u64;
    if out.is_empty() {
        return Err(Error::BadInput {
            path: path.to_string(),
            reason: "no usable row".into(),
        });
    }
    Ok((out, report))
}

/// Where the columns the spec names are.
#[derive(Clone, Copy)]
struct Columns {
    label: usize,
    id: Option<usize>,
    value: Option<usize>,
    split: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
fn table_row(
    source: &TableSource,
    header: &csv::StringRecord,
    types: &[ColumnType],
    excluded: &BTreeSet<usize>,
    columns: &Columns,
    index: usize,
    record: &csv::StringRecord,
    now: Timestamp,
) -> std::result::Result<TableRow, String> {
    if record.len() != header.len() {
        return Err(format!(
            "{} fields where the header has {}",
            record.len(),
            header.len()
        ));
    }
    let Columns {
        label,
        id,
        value,
        split,
    } = *columns;
    let label_cell = &record[label];
    if missing(label_cell) {
        return Err(format!("no label in {:?}", source.label_column));
    }
    let churned = source
        .positive
        .contains(&label_cell.trim().to_ascii_lowercase());
    let id = match id {
        Some(j) if !missing(&record[j]) => record[j].to_string(),
        Some(_) => return Err("empty id".into()),
        None => format!("row-{:07}", index + 1),
    };
    crate::domain::validate_id("id", &id).map_err(without_content)?;
    let value = match value {
        Some(j) if missing(&record[j]) => None,
        Some(j) => {
            let v: f64 = record[j]
                .parse()
                .map_err(|_| "the value column is not a number".to_string())?;
            if !v.is_finite() {
                return Err("the value column is not finite".into());
            }
            Some(v.max(0.0))
        }
        None => None,
    };
    let mut attributes = BTreeMap::new();
    for (j, (h, cell)) in header.iter().zip(record.iter()).enumerate() {
        if excluded.contains(&j) || missing(cell) {
            continue;
        }
        let column = j + 1;
        let v = match types[j] {
            ColumnType::Numeric => {
                let v: f64 = cell
                    .parse()
                    .map_err(|_| format!("column {column} is not a number"))?;
                if !v.is_finite() {
                    return Err(format!("column {column} is not finite"));
                }
                AttributeValue::Number(v)
            }
            ColumnType::Boolean => AttributeValue::Number(
                parse_yes_no(cell).ok_or_else(|| format!("column {column} is not yes/no"))?,
            ),
            ColumnType::Categorical => AttributeValue::Text(cell.to_string()),
        };
        attributes.insert(h.to_string(), v);
    }
    Ok(TableRow {
        relationship: Relationship {
            id,
            kind: RelationshipKind::Customer,
            created_at: now,
            attributes,
        },
        churned,
        value,
        holdout: split.map(|j| {
            source
                .holdout_values
                .contains(&record[j].trim().to_ascii_lowercase())
        }),
    })
}

/// Relationships with their time-ordered events.
pub type Book = Vec<(Relationship, Vec<Event>)>;

/// Loads a purchase log into relationships (starting at their first purchase)
/// with their events in time order. Same-day purchases stay separate events;
/// the features count them as one occasion.
///
/// # Errors
/// `BadInput` naming the file and column, or the first bad row with `bad_rows = "reject"`.
pub fn load_events(source: &EventSource) -> Result<(Book, LoadReport)> {
    let path = source.path.as_str();
    let (header, rows, print) = read_csv(path)?;
    let id = column(&header, &source.id_column, path)?;
    let time = column(&header, &source.time_column, path)?;
    let amount = source
        .amount_column
        .as_deref()
        .map(|c| column(&header, c, path))
        .transpose()?;
    let price = source
        .price_column
        .as_deref()
        .map(|c| column(&header, c, path))
        .transpose()?;
    let quantity = source
        .quantity_column
        .as_deref()
        .map(|c| column(&header, c, path))
        .transpose()?;
    let product = source
        .product_column
        .as_deref()
        .map(|c| column(&header, c, path))
        .transpose()?;
    let mut report = LoadReport {
        fingerprint: print,
        ..LoadReport::default()
    };
    let mut by_id: HashMap<String, Vec<Event>> = HashMap::new();
    let now = crate::time::now();
    for (line, record) in &rows {
        let parsed = (|| -> std::result::Result<(String, Event), String> {
            let cell = |j: usize| record.get(j).unwrap_or("");
            let rid = cell(id);
            if missing(rid) {
                return Err(format!("no {}", source.id_column));
            }
            let at = parse_time(&source.time_format, cell(time))
                .map_err(|_| format!("the time does not parse as {:?}", source.time_format))?;
            let number = |j: usize, what: &str| -> std::result::Result<f64, String> {
                let v: f64 = cell(j)
                    .parse()
                    .map_err(|_| format!("the {what} is not a number"))?;
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(format!("the {what} is not finite"))
                }
            };
            let qty = match quantity {
                Some(j) if !missing(cell(j)) => number(j, "quantity")?,
                _ => 1.0,
            };
            let total = match (amount, price) {
                (Some(j), _) => number(j, "amount")?,
                (None, Some(j)) => number(j, "price")? * qty,
                (None, None) => unreachable!("the spec check requires amount or price"),
            };
            // As `ingest --events` does: a $0 purchase (a free item, a full
            // discount) is a purchase occasion; a negative amount or quantity
            // is a return or a cancellation, which neither path takes.
            if total < 0.0 || qty <= 0.0 {
                return Err(
                    "a negative amount or a quantity of 0 or less (a return or a cancellation)"
                        .into(),
                );
            }
            let product_ids = match product {
                Some(j) if !missing(cell(j)) => vec![cell(j).to_string()],
                _ => vec![],
            };
            let event = Event {
                at,
                body: EventBody::Purchase {
                    amount: total,
                    product_ids,
                    quantity: qty.round().clamp(1.0, u32::MAX as f64) as u32,
                },
            };
            crate::domain::validate_id("id", rid).map_err(without_content)?;
            event.validate(now).map_err(without_content)?;
            Ok((rid.to_string(), event))
        })();
        match parsed {
            Ok((rid, event)) => by_id.entry(rid).or_default().push(event),
            Err(reason) if source.skip_bad_rows => report.skip(*line, reason),
            Err(reason) => {
                return Err(Error::BadInput {
                    path: path.to_string(),
                    reason: format!("line {line}: {reason}"),
                })
            }
        }
    }
    let mut book: Book = by_id
        .into_iter()
        .map(|(rid, mut events)| {
            events.sort_by_key(|e| e.at);
            let created_at = events.first().map_or(0, |e| e.at);
            (
                Relationship {
                    id: rid,
                    kind: RelationshipKind::Customer,
                    created_at,
                    attributes: BTreeMap::new(),
                },
                events,
            )
        })
        .collect();
    book.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    report.rows = book.iter().map(|(_, e)| e.len() as u64).sum();
    if book.is_empty() {
        return Err(Error::BadInput {
            path: path.to_string(),
            reason: "no usable purchase row".into(),
        });
    }
    Ok((book, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_source(path: &str) -> TableSource {
        TableSource {
            path: path.into(),
            id_column: Some("cust".into()),
            label_column: "Left".into(),
            positive: vec!["yes".into(), "1".into()],
            value_column: None,
            numeric: vec![],
            categorical: vec![],
            boolean: vec![],
            drop: vec!["junk".into()],
            skip_bad_rows: true,
            split_column: None,
            holdout_values: vec![],
        }
    }

    #[test]
    fn a_table_is_typed_from_its_values_and_bad_rows_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "cust,plan,Minutes,intl,junk,Left\na,gold,10.5,yes,x,Yes\nb,basic,NA,no,y,No\nc,basic,abc,no,z,no\nd,gold,3,yes,w,1\n",
        )
        .unwrap();
        let (rows, report) = load_table(&table_source(path.to_str().unwrap()), 0).unwrap();
        // "abc" makes Minutes categorical by value typing, so row c is fine; nothing skipped.
        assert_eq!(rows.len(), 4);
        assert_eq!(report.skipped, 0);
        assert!(rows[0].churned && !rows[1].churned && rows[3].churned);
        assert_eq!(
            rows[0].relationship.attributes.get("intl"),
            Some(&AttributeValue::Number(1.0))
        );
        assert!(!rows[0].relationship.attributes.contains_key("junk"));
        assert!(!rows[0].relationship.attributes.contains_key("Left"));
        let mut typed = table_source(path.to_str().unwrap());
        typed.numeric = vec!["Minutes".into()];
        let (rows, report) = load_table(&typed, 0).unwrap();
        assert_eq!((rows.len(), report.skipped), (3, 1));
        assert!(
            report.examples[0].starts_with("line 4:"),
            "{:?}",
            report.examples
        );
        assert!(
            !rows[1].relationship.attributes.contains_key("Minutes"),
            "NA is absent"
        );
        typed.skip_bad_rows = false;
        let err = load_table(&typed, 0).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
        typed.label_column = "Gone".into();
        assert!(load_table(&typed, 0)
            .unwrap_err()
            .to_string()
            .contains("\"Gone\""));
    }

    #[test]
    fn an_event_log_groups_purchases_by_id_and_skips_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.csv");
        std::fs::write(
            &path,
            "Invoice,StockCode,Quantity,InvoiceDate,Price,Customer ID\n1,A,2,12/1/2010 8:26,2.5,17850\n2,B,-1,12/2/2010 9:00,2.5,17850\n3,A,1,12/3/2010 9:00,4,13047\n4,C,1,11/30/2010 9:00,1,17850\n5,D,1,12/4/2010 9:00,0,13047\n6,E,1,12/5/2010 9:00,-3,13047\n",
        )
        .unwrap();
        let source = EventSource {
            path: path.to_str().unwrap().into(),
            id_column: "Customer ID".into(),
            time_column: "InvoiceDate".into(),
            time_format: "%m/%d/%Y %H:%M".into(),
            amount_column: None,
            price_column: Some("Price".into()),
            quantity_column: Some("Quantity".into()),
            product_column: Some("StockCode".into()),
            skip_bad_rows: true,
        };
        let (book, report) = load_events(&source).unwrap();
        // The return (quantity -1) and the negative price are skipped; the
        // $0 line is a purchase, as `ingest --events` takes it.
        assert_eq!(report.skipped, 2);
        assert_eq!(book.len(), 2);
        assert_eq!(book[0].0.id, "13047");
        assert!(matches!(book[0].1[1].body, EventBody::Purchase { amount, .. } if amount == 0.0));
        let (rel, events) = &book[1];
        assert_eq!(rel.id, "17850");
        assert_eq!(events.len(), 2);
        assert!(events[0].at < events[1].at);
        assert_eq!(rel.created_at, events[0].at);
        assert!(matches!(events[1].body, EventBody::Purchase { amount, .. } if amount == 5.0));
    }
}
