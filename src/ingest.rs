//! CSV ingest: loads relationships, events and products exported from a CRM or
//! a warehouse into the store (`rapport ingest`). This module owns the three
//! file formats below and the rule that a file is checked in full before any of
//! it is written.
//!
//! # Rules common to every file
//!
//! - Comma-separated UTF-8 text, quoted as in RFC 4180 (`"a, b"`, `""` for a
//!   quote inside a quoted cell). A UTF-8 byte-order mark is ignored.
//! - The first row is a header naming the columns. Columns may come in any
//!   order; names are matched case-insensitively after trimming whitespace. A
//!   header cell may not be empty and a name may not appear twice.
//! - Every cell is trimmed of surrounding whitespace. Blank lines (empty or
//!   only spaces) are skipped. Line breaks may be `\n` or `\r\n`.
//! - Lines are numbered from 1, the header being line 1; a row's number is the
//!   line it starts on.
//! - Timestamps are UTC: a whole number is Unix seconds (`1719705600`);
//!   otherwise `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH:MM:SS` with an
//!   optional trailing `Z` (a space may replace the `T`; fractions of a second
//!   are dropped; offsets such as `+02:00` are refused). Times must lie between
//!   1970-01-01 and one day past the wall clock.
//! - Numbers are plain decimals (`12`, `-3.5`, `1e3`; no thousands separators
//!   or currency signs). `NaN` and infinities are refused wherever a number is
//!   required.
//! - In an optional column an empty cell, `NA`, `N/A` or `null`
//!   (case-insensitive) means "absent"; in the relationships file `NaN` does too.
//!
//! # Bad rows
//!
//! A row is bad when its field count differs from the header's, it is not
//! valid UTF-8, a number, date or kind does not parse, a number is NaN or
//! infinite, an event type is unknown, a required value is missing, an id
//! appears twice in a relationships or products file, or the row fails the
//! domain validation every write passes (id rules, ranges, future dates).
//!
//! By default the first bad row rejects the whole file with
//! [`Error::BadInput`] `line N: <reason>` and nothing from the file is written.
//! With [`IngestOptions::skip_bad_rows`] bad rows are left out and listed in
//! [`IngestReport::skipped_rows`] with their line numbers; the good rows are
//! written. A header missing a required column always rejects the file, naming
//! the column.
//!
//! # Relationships file
//!
//! | column       | required | meaning |
//! |--------------|----------|---------|
//! | `id`         | yes      | relationship id: 1–128 bytes, no control characters |
//! | `kind`       | no       | `customer` (or `b2c`, the default), `account` (or `b2b`), `supplier`, `partner` |
//! | `created_at` | no       | timestamp; see below when absent |
//! | anything else| no       | a free attribute named after its header (as written, trimmed) |
//!
//! An attribute value that parses as a finite number is stored as a number,
//! anything else as text (at most 1,024 bytes); typing is per value, not per
//! column. Absent values are not stored. Attribute names follow the id rules;
//! at most 256 attribute columns.
//!
//! Ingesting an id that is already stored replaces the relationship (kind,
//! created_at, attributes) and keeps its events. When `created_at` is absent,
//! a stored relationship keeps its stored `created_at` and a new one gets the
//! current time, which the events ingest then moves back to its first event
//! (see below): ingesting relationships then events, or events then
//! relationships, both leave `created_at` at the first event.
//!
//! # Events file
//!
//! | column            | required | used by | meaning |
//! |-------------------|----------|---------|---------|
//! | `relationship_id` | yes      | all     | the relationship the event happened to |
//! | `type`            | yes      | all     | `purchase`, `ticket` (or `support_ticket`), `complaint`, `visit` (or `login`), `survey`, `payment`, or a kind-specific type below; case-insensitive |
//! | `at`              | yes      | all     | timestamp |
//! | `amount`          | no       | purchase, payment | required for those types; 0 to 1e12 |
//! | `products`        | no       | purchase | product ids separated by `;` or `\|`; may be empty |
//! | `quantity`        | no       | purchase | whole number ≥ 0, default 1 |
//! | `score`           | no       | survey  | required for a survey; 0 to 10 |
//! | `days_late`       | no       | payment | default 0; −3650 to 3650 |
//!
//! Kind-specific types (any kind may carry them; each kind's answers read its own):
//!
//! | column              | required | used by | meaning |
//! |---------------------|----------|---------|---------|
//! | `type`              | yes      |         | `delivery`, `purchase_order` (or `po`) for suppliers; `partner_deal` (or `deal`) for partners; `invoice` for accounts |
//! | `at`                | yes      |         | delivery: arrival; purchase order: placed; deal: when it reached `outcome`; invoice: issued |
//! | `promised_at`       | delivery | delivery | timestamp the supplier promised |
//! | `category`          | delivery, purchase_order | delivery, purchase_order | what is sourced, id rules |
//! | `quantity_ordered`  | delivery | delivery | > 0 |
//! | `quantity_received` | delivery | delivery | ≥ 0 |
//! | `units_rejected`    | no       | delivery | default 0; 0 to `quantity_received` |
//! | `unit_price`        | delivery | delivery | ≥ 0 |
//! | `amount`            | purchase_order, partner_deal, invoice | | our spend; the deal's value; the invoice's amount |
//! | `deal_id`           | partner_deal | partner_deal | the deal across its records; the latest counts |
//! | `outcome`           | partner_deal | partner_deal | `open`, `won` or `lost` |
//! | `invoice_id`        | invoice  | invoice | the invoice across its records; the latest counts, a payment stays |
//! | `terms_days`        | invoice  | invoice | whole number, 0 to 365 |
//! | `paid_at`           | no       | invoice | timestamp; absent while open |
//!
//! A cell in a column the row's type does not use is ignored, so one file can
//! mix every type; other columns are ignored too.
//!
//! Events are appended: ingesting the same file twice records its events twice.
//! An event for an id that is not stored creates a `customer` relationship,
//! with no attributes and `created_at` at its earliest event in the file, when
//! [`IngestOptions::create_missing`] is set; otherwise the row is bad
//! (`unknown relationship`). When a stored relationship's `created_at` is later
//! than its earliest event in the file, `created_at` is moved back to that
//! event: a relationship cannot have history before it began, and training
//! leaves out relationships created after its cutoff.
//!
//! # Products file
//!
//! | column     | required | meaning |
//! |------------|----------|---------|
//! | `id`       | yes      | product id, same rules as relationship ids |
//! | `name`     | no       | default: the id |
//! | `category` | no       | default: empty |
//! | `price`    | yes      | typical price of one unit; 0 to 1e12 |
//!
//! Ingesting a product id that is already stored replaces it. The products file
//! has no skip option: any bad row rejects it.
//!
//! # Writing
//!
//! Each file is parsed and checked completely first, holding its parsed rows in
//! memory, and only then written. Events of relationships that are new go
//! through [`EventStore::load_histories`] (up to 500 relationships or 10,000
//! events per transaction); events of stored relationships through
//! [`EventStore::record_events`] (up to 10,000 per transaction); a relationship's
//! events are written in time order, ties kept in file order. Every function
//! ends with a flush, so the data is on disk when it returns. A storage failure
//! part-way leaves the transactions already committed in place.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use csv::StringRecord;
use indicatif::ProgressBar;

use crate::domain::{
    validate_id, validate_number, AttributeValue, DealOutcome, Event, EventBody, IncomingEvent,
    InteractionKind, Product, Relationship, RelationshipKind, MAX_AMOUNT,
};
use crate::error::{Error, Result};
#[cfg(doc)]
use crate::store::EventStore;
use crate::time::{now, parse_date, Timestamp};
use crate::SharedStore;

/// Relationships per `load_relationships` call: bounds the size of one sled
/// transaction while keeping the per-call overhead negligible.
const LOAD_CHUNK_RELATIONSHIPS: usize = 500;
/// Events per transaction, for both write paths.
const EVENT_CHUNK: usize = 10_000;
const PRODUCT_CHUNK: usize = 10_000;
/// Mirrors `Relationship::validate`, checked on the header so that a wide file
/// is refused once rather than on every row.
const MAX_ATTRIBUTES: usize = 256;

/// How [`ingest_relationships`] and [`ingest_events`] treat imperfect input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOptions {
    /// Leave bad rows out (and report them) instead of rejecting the file.
    pub skip_bad_rows: bool,
    /// Create a customer relationship for an event whose id is not stored,
    /// instead of treating the row as bad.
    pub create_missing: bool,
}

impl Default for IngestOptions {
    /// The CLI's defaults: strict about rows, lenient about unknown ids.
    fn default() -> Self {
        IngestOptions {
            skip_bad_rows: false,
            create_missing: true,
        }
    }
}

/// What one or more ingest calls wrote.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IngestReport {
    /// Relationships written from a relationships file (new or replaced).
    pub relationships: u64,
    pub events: u64,
    pub products: u64,
    /// Relationships created for events whose id was not stored.
    pub created_missing: u64,
    /// `(line, reason)` of each row left out under `skip_bad_rows`, in file
    /// order. Line 1 is the header.
    pub skipped_rows: Vec<(u64, String)>,
}

impl IngestReport {
    /// Adds `other`'s counts to this report and appends its skipped rows.
    pub fn merge(&mut self, other: IngestReport) {
        self.relationships += other.relationships;
        self.events += other.events;
        self.products += other.products;
        self.created_missing += other.created_missing;
        self.skipped_rows.extend(other.skipped_rows);
    }
}

/// Loads a relationships CSV (see the module documentation for the format),
/// replacing stored relationships with the same id and keeping their events.
///
/// # Errors
/// - `BadInput` naming the file when it cannot be read, its header is empty,
///   duplicated or lacks `id`, or (without `skip_bad_rows`) a row is bad; then
///   nothing is written.
/// - `Storage` / `Corrupt` when the store fails.
pub fn ingest_relationships(
    store: &SharedStore,
    path: &Path,
    options: &IngestOptions,
    progress: &ProgressBar,
) -> Result<IngestReport> {
    let mut input = CsvInput::open(path)?;
    let columns = RelationshipColumns::find(&input)?;
    let now = now();
    let mut bad = BadRows::new(&input.shown, options.skip_bad_rows);
    let mut parsed: Vec<Relationship> = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut record = StringRecord::new();
    while let Some(row) = input.next_row(&mut record)? {
        progress.inc(1);
        let line = match row {
            Ok(line) => line,
            Err((line, reason)) => {
                bad.push(line, reason)?;
                continue;
            }
        };
        let (mut relationship, created_given) = match columns.parse(&record, now) {
            Ok(parsed) => parsed,
            Err(reason) => {
                bad.push(line, reason)?;
                continue;
            }
        };
        if let Some(first) = first_line.get(&relationship.id) {
            bad.push(
                line,
                format!("duplicate id {:?}, first on line {first}", relationship.id),
            )?;
            continue;
        }
        if !created_given {
            if let Some(stored) = store.relationship(&relationship.id)? {
                relationship.created_at = stored.created_at;
            }
        }
        if let Err(e) = relationship.validate(now) {
            bad.push(line, e.to_string())?;
            continue;
        }
        first_line.insert(relationship.id.clone(), line);
        parsed.push(relationship);
    }
    // Only needed while parsing; give the memory back before writing.
    drop(first_line);

    for relationship in &parsed {
        store.upsert_relationship(relationship)?;
    }
    store.flush_blocking()?;
    Ok(IngestReport {
        relationships: parsed.len() as u64,
        skipped_rows: bad.rows,
        ..IngestReport::default()
    })
}

/// Loads an events CSV (see the module documentation for the format),
/// appending to the stored history and updating aggregates.
///
/// # Errors
/// - `BadInput` naming the file when it cannot be read, its header is empty,
///   duplicated or lacks `relationship_id`, `type` or `at`, or (without
///   `skip_bad_rows`) a row is bad, including an unknown relationship id
///   without `create_missing`; then nothing is written.
/// - `Storage` / `Corrupt` when the store fails.
pub fn ingest_events(
    store: &SharedStore,
    path: &Path,
    options: &IngestOptions,
    progress: &ProgressBar,
) -> Result<IngestReport> {
    let mut input = CsvInput::open(path)?;
    let columns = EventColumns::find(&input)?;
    let now = now();
    let mut bad = BadRows::new(&input.shown, options.skip_bad_rows);
    // Sorted so that writes reach sled in key order.
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut record = StringRecord::new();
    while let Some(row) = input.next_row(&mut record)? {
        progress.inc(1);
        let line = match row {
            Ok(line) => line,
            Err((line, reason)) => {
                bad.push(line, reason)?;
                continue;
            }
        };
        let (id, event) = match columns.parse(&record, line, now) {
            Ok(parsed) => parsed,
            Err(reason) => {
                bad.push(line, reason)?;
                continue;
            }
        };
        if !groups.contains_key(id) {
            let known = match store.relationship(id)? {
                Some(stored) => Known::Stored {
                    created_at: stored.created_at,
                },
                None if options.create_missing => Known::Missing,
                None => Known::Unknown,
            };
            groups.insert(
                id.to_string(),
                Group {
                    known,
                    events: Vec::new(),
                },
            );
        }
        match groups.get_mut(id) {
            Some(group) if group.known != Known::Unknown => group.events.push(event),
            _ => bad.push(line, format!("unknown relationship {id:?}"))?,
        }
    }

    let mut report = IngestReport {
        skipped_rows: bad.rows,
        ..IngestReport::default()
    };
    let mut writer = EventWriter::new(store);
    for (id, group) in groups {
        let mut events = group.events;
        // Stable: same-second events keep their file order.
        events.sort_by_key(|e| e.at);
        let Some(first_at) = events.first().map(|e| e.at) else {
            continue;
        };
        match group.known {
            // Its rows were reported as bad, so it holds no events.
            Known::Unknown => {}
            Known::Stored { created_at } => {
                report.events += events.len() as u64;
                writer.append_to_stored(&id, created_at, events)?;
            }
            Known::Missing => {
                report.events += events.len() as u64;
                report.created_missing += 1;
                let relationship = Relationship {
                    id,
                    kind: RelationshipKind::Customer,
                    created_at: first_at,
                    attributes: BTreeMap::new(),
                };
                writer.create(relationship, events)?;
            }
        }
    }
    writer.finish()?;
    store.flush_blocking()?;
    Ok(report)
}

/// Loads a purchase log the way a spec reads it for training (its column
/// names, time format, amounts and bad-row rule: the same reader, so a row
/// counts the same here as it did in the model's training rows), appending
/// each customer's purchases to the store and creating the customers not
/// stored yet. A model trained on the log then scores its own customers.
///
/// Returns what was written and, as training reports it, what the load left
/// out.
///
/// # Errors
/// `BadInput` as training reads the log; then nothing is written.
/// `Storage` / `Corrupt` when the store fails.
pub fn ingest_log(
    store: &SharedStore,
    source: &crate::model::spec::EventSource,
    progress: &ProgressBar,
) -> Result<(IngestReport, crate::training::sources::LoadReport)> {
    let (book, load) = crate::training::sources::load_events(source)?;
    let mut report = IngestReport::default();
    progress.set_length(book.len() as u64);
    let mut writer = EventWriter::new(store);
    for (relationship, events) in book {
        progress.inc(1);
        if events.is_empty() {
            continue;
        }
        report.events += events.len() as u64;
        match store.relationship(&relationship.id)? {
            Some(stored) => writer.append_to_stored(&stored.id, stored.created_at, events)?,
            None => {
                report.created_missing += 1;
                writer.create(relationship, events)?;
            }
        }
    }
    writer.finish()?;
    store.flush_blocking()?;
    Ok((report, load))
}

/// Loads a products CSV (see the module documentation for the format),
/// replacing stored products with the same id. Any bad row rejects the file.
///
/// # Errors
/// - `BadInput` naming the file when it cannot be read, its header is empty,
///   duplicated or lacks `id` or `price`, or a row is bad; then nothing is
///   written.
/// - `Storage` when the store fails.
pub fn ingest_products(store: &SharedStore, path: &Path) -> Result<IngestReport> {
    let mut input = CsvInput::open(path)?;
    let id_col = input.require("id")?;
    let price_col = input.require("price")?;
    let name_col = input.column("name");
    let category_col = input.column("category");
    let mut bad = BadRows::new(&input.shown, false);
    let mut products: Vec<Product> = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut record = StringRecord::new();
    while let Some(row) = input.next_row(&mut record)? {
        let line = match row {
            Ok(line) => line,
            Err((line, reason)) => {
                bad.push(line, reason)?;
                continue;
            }
        };
        let parsed = parse_product(&record, id_col, price_col, name_col, category_col);
        match parsed {
            Ok(product) => {
                if let Some(first) = first_line.get(&product.id) {
                    bad.push(
                        line,
                        format!("duplicate id {:?}, first on line {first}", product.id),
                    )?;
                    continue;
                }
                first_line.insert(product.id.clone(), line);
                products.push(product);
            }
            Err(reason) => bad.push(line, reason)?,
        }
    }
    for chunk in products.chunks(PRODUCT_CHUNK) {
        store.put_products(chunk)?;
    }
    store.flush_blocking()?;
    Ok(IngestReport {
        products: products.len() as u64,
        ..IngestReport::default()
    })
}

fn parse_product(
    record: &StringRecord,
    id_col: usize,
    price_col: usize,
    name_col: Option<usize>,
    category_col: Option<usize>,
) -> std::result::Result<Product, String> {
    let id = required(record, id_col, "id")?;
    validate_id("id", id).map_err(|e| e.to_string())?;
    let price = number("price", required(record, price_col, "price")?)?;
    validate_number("price", price, 0.0, MAX_AMOUNT).map_err(|e| e.to_string())?;
    Ok(Product {
        id: id.to_string(),
        name: optional(record, name_col).unwrap_or(id).to_string(),
        category: optional(record, category_col)
            .unwrap_or_default()
            .to_string(),
        price,
    })
}

// ------------------------------------------------------------ reading

/// An open CSV file whose header has been read and checked.
struct CsvInput {
    /// The path as shown in errors.
    shown: String,
    reader: csv::Reader<LineCounter<File>>,
    /// Header names, trimmed, as written.
    names: Vec<String>,
    /// Records read so far, for a line number should the counter have none.
    rows: u64,
}

/// A data row's line number, or a bad row's line and reason.
type Row = std::result::Result<u64, (u64, String)>;

impl CsvInput {
    fn open(path: &Path) -> Result<CsvInput> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|e| bad_input(&shown, format!("cannot open: {e}")))?;
        // Cells are trimmed where they are read, which also covers Unicode
        // spaces (csv's own trimming is ASCII-only on byte records).
        let mut reader = csv::ReaderBuilder::new()
            // Field counts are checked per row so that a short row is one bad
            // row with a line number rather than a reader error.
            .flexible(true)
            .from_reader(LineCounter::new(file));
        let header = reader
            .headers()
            .map_err(|e| bad_input(&shown, format!("cannot read the header row: {e}")))?;
        let names: Vec<String> = header.iter().map(|name| name.trim().to_string()).collect();
        if names.iter().all(String::is_empty) {
            return Err(bad_input(
                &shown,
                "no header row: the first line must name the columns",
            ));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(bad_input(
                    &shown,
                    format!("header column {} has no name", i + 1),
                ));
            }
            if let Some(first) = seen.insert(name.to_lowercase(), i) {
                return Err(bad_input(
                    &shown,
                    format!(
                        "header names {name:?} twice (columns {} and {})",
                        first + 1,
                        i + 1
                    ),
                ));
            }
        }
        Ok(CsvInput {
            shown,
            reader,
            names,
            rows: 0,
        })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name))
    }

    fn require(&self, name: &str) -> Result<usize> {
        self.column(name).ok_or_else(|| {
            bad_input(
                &self.shown,
                format!(
                    "missing required column {name:?} (header has {})",
                    self.names.join(", ")
                ),
            )
        })
    }

    /// Reads the next data row into `record`; `None` at the end of the file.
    fn next_row(&mut self, record: &mut StringRecord) -> Result<Option<Row>> {
        // Bytes are read and converted here rather than with read_record so
        // that a row that is not UTF-8 still has its position. The allocation
        // is reused either way.
        let mut bytes = std::mem::take(record).into_byte_record();
        loop {
            let more = self.reader.read_byte_record(&mut bytes).map_err(|e| {
                // Only I/O fails here (the reader is flexible and UTF-8 is
                // checked below), and it may repeat forever: give up.
                bad_input(
                    &self.shown,
                    format!("cannot read past data row {}: {e}", self.rows),
                )
            })?;
            if !more {
                return Ok(None);
            }
            self.rows += 1;
            // csv skips empty lines but reads a line of spaces as one blank field.
            let blank = bytes.len() == 1 && bytes.iter().flatten().all(u8::is_ascii_whitespace);
            if !blank {
                break;
            }
        }
        let line = bytes
            .position()
            .and_then(|p| self.reader.get_mut().line_at(p.byte()))
            .unwrap_or(self.rows + 1);
        match StringRecord::from_byte_record(bytes) {
            Ok(text) => *record = text,
            Err(e) => {
                *record = StringRecord::from_byte_record_lossy(e.into_byte_record());
                return Ok(Some(Err((line, "is not valid UTF-8".to_string()))));
            }
        }
        if record.len() != self.names.len() {
            return Ok(Some(Err((
                line,
                format!(
                    "has {} fields, the header has {}",
                    record.len(),
                    self.names.len()
                ),
            ))));
        }
        Ok(Some(Ok(line)))
    }
}

/// Tracks line numbers under the csv reader. csv's own record positions are
/// taken where the previous record ended: before skipped blank lines, and in
/// CRLF files before the `\n` of the previous line break, so they can be one
/// or more lines early. This keeps the bytes read since the last row asked
/// about (at most one row plus csv's read-ahead) to find the line a row's
/// first byte is on.
struct LineCounter<R> {
    inner: R,
    /// Bytes read from `inner` starting at file offset `base`.
    window: VecDeque<u8>,
    base: u64,
    /// Line number of the byte at `base`.
    base_line: u64,
}

impl<R> LineCounter<R> {
    fn new(inner: R) -> Self {
        LineCounter {
            inner,
            window: VecDeque::new(),
            base: 0,
            base_line: 1,
        }
    }

    /// The line of the first byte at or after `offset` that is not a line
    /// break; `offset` must not go backwards between calls.
    fn line_at(&mut self, offset: u64) -> Option<u64> {
        let ahead = usize::try_from(offset.checked_sub(self.base)?).unwrap_or(usize::MAX);
        // Past what was read cannot happen with csv; release everything anyway
        // so that the window stays bounded.
        let known = ahead <= self.window.len();
        let skip = ahead.min(self.window.len());
        let released = self.window.drain(..skip);
        self.base_line += released.filter(|b| *b == b'\n').count() as u64;
        self.base += skip as u64;
        if !known {
            return None;
        }
        let mut line = self.base_line;
        for b in &self.window {
            match b {
                b'\n' => line += 1,
                b'\r' => {}
                _ => break,
            }
        }
        Some(line)
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.window.extend(&buf[..n]);
        Ok(n)
    }
}

/// Collects bad rows, or turns the first one into the file's error.
struct BadRows {
    shown: String,
    skip: bool,
    rows: Vec<(u64, String)>,
}

impl BadRows {
    fn new(shown: &str, skip: bool) -> Self {
        BadRows {
            shown: shown.to_string(),
            skip,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, line: u64, reason: String) -> Result<()> {
        if self.skip {
            self.rows.push((line, reason));
            Ok(())
        } else {
            Err(bad_input(&self.shown, format!("line {line}: {reason}")))
        }
    }
}

fn bad_input(shown: &str, reason: impl Into<String>) -> Error {
    Error::BadInput {
        path: shown.to_string(),
        reason: reason.into(),
    }
}

// ------------------------------------------------------------ cells

/// Absent-value spellings of common exports (R writes `NA`, SQL tools `null`).
fn is_absent(text: &str) -> bool {
    text.is_empty()
        || ["na", "n/a", "null"]
            .iter()
            .any(|m| text.eq_ignore_ascii_case(m))
}

/// An optional cell, `None` when the column is not in the file or the cell is absent.
fn optional(record: &StringRecord, column: Option<usize>) -> Option<&str> {
    column
        .and_then(|c| record.get(c))
        .map(str::trim)
        .filter(|text| !is_absent(text))
}

fn required<'r>(
    record: &'r StringRecord,
    column: usize,
    name: &str,
) -> std::result::Result<&'r str, String> {
    match record.get(column).map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(format!("{name} is empty")),
    }
}

/// A cell as echoed in a reason, cut short: one stray megabyte cell should not
/// make a megabyte error message.
fn quoted(text: &str) -> &str {
    const MAX: usize = 64;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn number(name: &str, text: &str) -> std::result::Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{name} {:?} is not a number", quoted(text)))?;
    if !value.is_finite() {
        return Err(format!("{name} {:?} is not a finite number", quoted(text)));
    }
    Ok(value)
}

fn timestamp(name: &str, text: &str) -> std::result::Result<Timestamp, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    parse_date(name, text).map_err(|_| {
        format!("{name} {:?} is neither Unix seconds nor a date like 2025-06-30 or 2025-06-30T12:00:00Z", quoted(text))
    })
}

// ------------------------------------------------------------ relationships

struct RelationshipColumns {
    id: usize,
    kind: Option<usize>,
    created_at: Option<usize>,
    attributes: Vec<(usize, String)>,
}

impl RelationshipColumns {
    fn find(input: &CsvInput) -> Result<Self> {
        let id = input.require("id")?;
        let kind = input.column("kind");
        let created_at = input.column("created_at");
        let attributes: Vec<(usize, String)> = input
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != id && Some(*i) != kind && Some(*i) != created_at)
            .map(|(i, name)| (i, name.clone()))
            .collect();
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(bad_input(
                &input.shown,
                format!(
                    "{} attribute columns, more than {MAX_ATTRIBUTES}",
                    attributes.len()
                ),
            ));
        }
        for (_, name) in &attributes {
            validate_id(&format!("attribute column {name:?}"), name)
                .map_err(|e| bad_input(&input.shown, e.to_string()))?;
        }
        Ok(RelationshipColumns {
            id,
            kind,
            created_at,
            attributes,
        })
    }

    /// The row's relationship, with `created_at` set to `now` when the row has
    /// none, and whether the row gave one.
    fn parse(
        &self,
        record: &StringRecord,
        now: Timestamp,
    ) -> std::result::Result<(Relationship, bool), String> {
        // Attribute exports use NaN for a missing value, so here it is absent too.
        let cell = |column: Option<usize>| {
            optional(record, column).filter(|text| !text.eq_ignore_ascii_case("nan"))
        };
        let id = required(record, self.id, "id")?;
        let kind = match cell(self.kind) {
            Some(text) => RelationshipKind::parse("kind", text).map_err(|e| e.to_string())?,
            None => RelationshipKind::Customer,
        };
        let created_at = cell(self.created_at)
            .map(|text| timestamp("created_at", text))
            .transpose()?;
        let mut attributes = BTreeMap::new();
        for (column, name) in &self.attributes {
            let Some(text) = cell(Some(*column)) else {
                continue;
            };
            let value = match text.parse::<f64>() {
                Ok(v) if v.is_finite() => AttributeValue::Number(v),
                _ => AttributeValue::Text(text.to_string()),
            };
            attributes.insert(name.clone(), value);
        }
        let relationship = Relationship {
            id: id.to_string(),
            kind,
            created_at: created_at.unwrap_or(now),
            attributes,
        };
        Ok((relationship, created_at.is_some()))
    }
}

// ------------------------------------------------------------ events

struct EventColumns {
    relationship_id: usize,
    kind: usize,
    at: usize,
    amount: Option<usize>,
    products: Option<usize>,
    quantity: Option<usize>,
    score: Option<usize>,
    days_late: Option<usize>,
    kinds: KindColumns,
}

/// The columns of the kind-specific event types.
struct KindColumns {
    promised_at: Option<usize>,
    category: Option<usize>,
    quantity_ordered: Option<usize>,
    quantity_received: Option<usize>,
    units_rejected: Option<usize>,
    unit_price: Option<usize>,
    deal_id: Option<usize>,
    outcome: Option<usize>,
    invoice_id: Option<usize>,
    terms_days: Option<usize>,
    paid_at: Option<usize>,
}

enum EventType {
    Purchase,
    Payment,
    Interaction(InteractionKind),
    Delivery,
    PurchaseOrder,
    PartnerDeal,
    Invoice,
}

impl KindColumns {
    fn find(input: &CsvInput) -> Self {
        KindColumns {
            promised_at: input.column("promised_at"),
            category: input.column("category"),
            quantity_ordered: input.column("quantity_ordered"),
            quantity_received: input.column("quantity_received"),
            units_rejected: input.column("units_rejected"),
            unit_price: input.column("unit_price"),
            deal_id: input.column("deal_id"),
            outcome: input.column("outcome"),
            invoice_id: input.column("invoice_id"),
            terms_days: input.column("terms_days"),
            paid_at: input.column("paid_at"),
        }
    }

    /// The body of a kind-specific event; `amount` is the row's amount.
    fn parse(
        &self,
        record: &StringRecord,
        kind: &EventType,
        amount: &dyn Fn(&str) -> std::result::Result<f64, String>,
    ) -> std::result::Result<EventBody, String> {
        let need = |column: Option<usize>, name: &str, what: &str| match optional(record, column) {
            Some(text) => Ok(text),
            None => Err(format!("{name} is required for a {what}")),
        };
        let num = |column, name: &str, what| need(column, name, what).and_then(|t| number(name, t));
        Ok(match kind {
            EventType::Delivery => EventBody::Delivery {
                promised_at: timestamp(
                    "promised_at",
                    need(self.promised_at, "promised_at", "delivery")?,
                )?,
                category: need(self.category, "category", "delivery")?.to_string(),
                ordered: num(self.quantity_ordered, "quantity_ordered", "delivery")?,
                received: num(self.quantity_received, "quantity_received", "delivery")?,
                rejected: optional(record, self.units_rejected)
                    .map(|t| number("units_rejected", t))
                    .transpose()?
                    .unwrap_or(0.0),
                unit_price: num(self.unit_price, "unit_price", "delivery")?,
            },
            EventType::PurchaseOrder => EventBody::PurchaseOrder {
                amount: amount("purchase_order")?,
                category: need(self.category, "category", "purchase_order")?.to_string(),
            },
            EventType::PartnerDeal => EventBody::PartnerDeal {
                deal_id: need(self.deal_id, "deal_id", "partner_deal")?.to_string(),
                value: amount("partner_deal")?,
                outcome: match need(self.outcome, "outcome", "partner_deal")?
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "open" => DealOutcome::Open,
                    "won" => DealOutcome::Won,
                    "lost" => DealOutcome::Lost,
                    other => {
                        return Err(format!(
                            "outcome {:?} is unknown; expected open, won or lost",
                            quoted(other)
                        ))
                    }
                },
            },
            EventType::Invoice => EventBody::Invoice {
                invoice_id: need(self.invoice_id, "invoice_id", "invoice")?.to_string(),
                amount: amount("invoice")?,
                terms_days: whole_number(
                    "terms_days",
                    need(self.terms_days, "terms_days", "invoice")?,
                )?,
                paid_at: optional(record, self.paid_at)
                    .map(|t| timestamp("paid_at", t))
                    .transpose()?,
            },
            EventType::Purchase | EventType::Payment | EventType::Interaction(_) => {
                unreachable!("only kind-specific types are parsed here")
            }
        })
    }
}

impl EventColumns {
    fn find(input: &CsvInput) -> Result<Self> {
        Ok(EventColumns {
            relationship_id: input.require("relationship_id")?,
            kind: input.require("type")?,
            at: input.require("at")?,
            amount: input.column("amount"),
            products: input.column("products"),
            quantity: input.column("quantity"),
            score: input.column("score"),
            days_late: input.column("days_late"),
            kinds: KindColumns::find(input),
        })
    }

    /// The row's relationship id and validated event.
    fn parse<'r>(
        &self,
        record: &'r StringRecord,
        line: u64,
        now: Timestamp,
    ) -> std::result::Result<(&'r str, Event), String> {
        let id = required(record, self.relationship_id, "relationship_id")?;
        validate_id("relationship_id", id).map_err(|e| e.to_string())?;
        let kind = event_type(required(record, self.kind, "type")?)?;
        let at = timestamp("at", required(record, self.at, "at")?)?;
        let amount = |what: &str| match optional(record, self.amount) {
            Some(text) => number("amount", text),
            None => Err(format!("amount is required for a {what}")),
        };
        let body = match kind {
            EventType::Purchase => EventBody::Purchase {
                amount: amount("purchase")?,
                product_ids: optional(record, self.products)
                    .map(|text| {
                        text.split([';', '|'])
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                quantity: optional(record, self.quantity)
                    .map(quantity)
                    .transpose()?
                    .unwrap_or(1),
            },
            EventType::Payment => EventBody::Payment {
                amount: amount("payment")?,
                days_late: optional(record, self.days_late)
                    .map(|text| number("days_late", text))
                    .transpose()?
                    .unwrap_or(0.0),
            },
            EventType::Delivery
            | EventType::PurchaseOrder
            | EventType::PartnerDeal
            | EventType::Invoice => self.kinds.parse(record, &kind, &amount)?,
            EventType::Interaction(kind) => EventBody::Interaction {
                kind,
                survey_score: match kind {
                    InteractionKind::Survey => optional(record, self.score)
                        .map(|text| number("score", text))
                        .transpose()?,
                    _ => None,
                },
            },
        };
        let event = Event { at, body };
        event
            .validate(now)
            .map_err(|e| e.within(format_args!("line {line}")).to_string())?;
        Ok((id, event))
    }
}

fn event_type(text: &str) -> std::result::Result<EventType, String> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "purchase" => EventType::Purchase,
        "payment" => EventType::Payment,
        "ticket" | "support_ticket" => EventType::Interaction(InteractionKind::SupportTicket),
        "complaint" => EventType::Interaction(InteractionKind::Complaint),
        "visit" | "login" => EventType::Interaction(InteractionKind::Visit),
        "survey" => EventType::Interaction(InteractionKind::Survey),
        "delivery" => EventType::Delivery,
        "purchase_order" | "po" => EventType::PurchaseOrder,
        "partner_deal" | "deal" => EventType::PartnerDeal,
        "invoice" => EventType::Invoice,
        _ => {
            return Err(format!(
            "type {:?} is unknown; expected purchase, ticket, complaint, visit, survey, payment, delivery, purchase_order, partner_deal or invoice",
            quoted(text)
        ))
        }
    })
}

fn quantity(text: &str) -> std::result::Result<u32, String> {
    whole_number("quantity", text)
}

fn whole_number(name: &str, text: &str) -> std::result::Result<u32, String> {
    let value = number(name, text)?;
    if value < 0.0 {
        return Err(format!("{name} {:?} is negative", quoted(text)));
    }
    if value.fract() != 0.0 {
        return Err(format!("{name} {:?} is not a whole number", quoted(text)));
    }
    if value > f64::from(u32::MAX) {
        return Err(format!("{name} {:?} is too large", quoted(text)));
    }
    // Whole, non-negative and in range, so the cast is exact.
    Ok(value as u32)
}

/// Whether an id in an events file is stored, to be created, or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Stored { created_at: Timestamp },
    Missing,
    Unknown,
}

struct Group {
    known: Known,
    events: Vec<Event>,
}

/// Batches writes so that each transaction stays bounded.
struct EventWriter<'s> {
    store: &'s SharedStore,
    appended: Vec<IncomingEvent>,
    created: Vec<(Relationship, Vec<Event>)>,
    created_events: usize,
}

impl<'s> EventWriter<'s> {
    fn new(store: &'s SharedStore) -> Self {
        EventWriter {
            store,
            appended: Vec::new(),
            created: Vec::new(),
            created_events: 0,
        }
    }

    /// Events of a stored relationship, in time order.
    fn append(&mut self, id: &str, events: Vec<Event>) -> Result<()> {
        for event in events {
            self.appended.push(IncomingEvent {
                relationship_id: id.to_string(),
                event,
            });
            if self.appended.len() >= EVENT_CHUNK {
                self.flush_appended()?;
            }
        }
        Ok(())
    }

    /// Events of a stored relationship created at `created_at`, in time
    /// order; one before that moves its start back to it.
    fn append_to_stored(
        &mut self,
        id: &str,
        created_at: Timestamp,
        events: Vec<Event>,
    ) -> Result<()> {
        if let Some(first_at) = events.first().map(|e| e.at).filter(|at| *at < created_at) {
            if let Some(mut relationship) = self.store.relationship(id)? {
                relationship.created_at = first_at;
                self.store.upsert_relationship(&relationship)?;
            }
        }
        self.append(id, events)
    }

    /// A new relationship with its events, in time order.
    fn create(&mut self, relationship: Relationship, events: Vec<Event>) -> Result<()> {
        if events.len() > EVENT_CHUNK {
            // Pieces of one relationship need separate calls: load_relationships
            // folds every item onto the aggregates stored before the call, so
            // two pieces in one call would each overwrite the other's fold.
            self.flush_created()?;
            for piece in events.chunks(EVENT_CHUNK) {
                self.store
                    .load_histories(&[(relationship.clone(), piece.to_vec())])?;
            }
            return Ok(());
        }
        self.created_events += events.len();
        self.created.push((relationship, events));
        if self.created.len() >= LOAD_CHUNK_RELATIONSHIPS || self.created_events >= EVENT_CHUNK {
            self.flush_created()?;
        }
        Ok(())
    }

    fn flush_appended(&mut self) -> Result<()> {
        if !self.appended.is_empty() {
            // The store's writer answers through a channel any executor can
            // wait on; ingest owns this thread, so it simply blocks.
            pollster::block_on(self.store.record_events(std::mem::take(&mut self.appended)))?;
        }
        Ok(())
    }

    fn flush_created(&mut self) -> Result<()> {
        if !self.created.is_empty() {
            self.store.load_histories(&self.created)?;
            self.created.clear();
            self.created_events = 0;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush_created()?;
        self.flush_appended()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Timestamp {
        parse_date("test", text).unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn strict() -> IngestOptions {
        IngestOptions {
            skip_bad_rows: false,
            create_missing: false,
        }
    }

    fn lenient() -> IngestOptions {
        IngestOptions {
            skip_bad_rows: true,
            create_missing: false,
        }
    }

    fn hidden() -> ProgressBar {
        ProgressBar::hidden()
    }

    /// A store holding customers `c1` and `c2`, created 2024-01-01.
    fn open(dir: &Path) -> SharedStore {
        std::sync::Arc::new(
            crate::store::sled::SledStore::open(dir, crate::store::sled::SledOptions::default())
                .unwrap(),
        )
    }

    fn store_with_customers(dir: &Path) -> SharedStore {
        let store = open(&dir.join("db"));
        let path = write(
            dir,
            "seed.csv",
            "id,created_at\nc1,2024-01-01\nc2,2024-01-01\n",
        );
        ingest_relationships(&store, &path, &strict(), &hidden()).unwrap();
        store
    }

    fn bad_reason(err: Error) -> String {
        match err {
            Error::BadInput { reason, .. } => reason,
            other => panic!("expected BadInput, got {other:?}"),
        }
    }

    #[test]
    fn relationships_and_events_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let relationships = write(
            dir.path(),
            "relationships.csv",
            "\u{feff}ID , Kind,created_at,region,score_band,tier\n\
             c1,customer,2024-01-01,north,12.5,gold\n\
             c2,Account,,\"south, coast\",NA,7\n",
        );
        let report = ingest_relationships(&store, &relationships, &strict(), &hidden()).unwrap();
        assert_eq!(report.relationships, 2);
        assert!(report.skipped_rows.is_empty());

        let events = write(
            dir.path(),
            "events.csv",
            "relationship_id,type,at,amount,products,quantity,score,days_late\n\
             c1,purchase,2024-02-01,100.0,p1;p2,2,,\n\
             c1,VISIT,2024-01-15T10:00:00Z,,,,,\n\
             c1,survey,1707000000,,,,9,\n\
             c2,payment,2024-03-01,50,,,,3\n\
             c2,login,2024-03-05,,,,,\n",
        );
        let report = ingest_events(&store, &events, &strict(), &hidden()).unwrap();
        assert_eq!(report.events, 5);
        assert_eq!(report.created_missing, 0);
        assert_eq!(store.event_count().unwrap(), 5);

        let c1 = store.relationship("c1").unwrap().unwrap();
        assert_eq!(c1.kind, RelationshipKind::Customer);
        assert_eq!(c1.created_at, date("2024-01-01"));
        assert_eq!(
            c1.attributes["region"],
            AttributeValue::Text("north".into())
        );
        assert_eq!(c1.attributes["score_band"], AttributeValue::Number(12.5));
        assert_eq!(c1.attributes["tier"], AttributeValue::Text("gold".into()));
        let c2 = store.relationship("c2").unwrap().unwrap();
        assert_eq!(c2.kind, RelationshipKind::Account);
        assert_eq!(
            c2.attributes["region"],
            AttributeValue::Text("south, coast".into())
        );
        assert!(!c2.attributes.contains_key("score_band"), "NA is absent");
        assert_eq!(c2.attributes["tier"], AttributeValue::Number(7.0));
        // No created_at in the file: moved back to the first event.
        assert_eq!(c2.created_at, date("2024-03-01"));

        let c1_events = store.events("c1", None).unwrap();
        let times: Vec<_> = c1_events.iter().map(|e| e.at).collect();
        assert_eq!(
            times,
            vec![
                date("2024-01-15") + 10 * 3600,
                date("2024-02-01"),
                1_707_000_000
            ]
        );
        assert_eq!(
            c1_events[1].body,
            EventBody::Purchase {
                amount: 100.0,
                product_ids: vec!["p1".into(), "p2".into()],
                quantity: 2,
            }
        );
        assert_eq!(
            c1_events[2].body,
            EventBody::Interaction {
                kind: InteractionKind::Survey,
                survey_score: Some(9.0),
            }
        );
        let agg = store.aggregates("c1").unwrap().unwrap();
        assert_eq!(agg.event_count, 3);
        assert_eq!(agg.spend_total, 100.0);
        assert_eq!(agg.items_total, 2);
        assert_eq!(agg.visits, 1);
        assert_eq!(agg.surveys, 1);
        let agg = store.aggregates("c2").unwrap().unwrap();
        assert_eq!(agg.payments, 1);
        assert_eq!(agg.days_late_sum, 3.0);
        assert_eq!(agg.visits, 1);
    }

    #[test]
    fn kind_specific_events_are_ingested_and_their_bad_fields_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let rels = write(
            dir.path(),
            "r.csv",
            "id,kind\ns1,supplier\np1,partner\na1,account\n",
        );
        ingest_relationships(&store, &rels, &strict(), &hidden()).unwrap();
        let events = write(
            dir.path(),
            "e.csv",
            "relationship_id,type,at,amount,promised_at,category,quantity_ordered,quantity_received,units_rejected,unit_price,deal_id,outcome,invoice_id,terms_days,paid_at\n\
             s1,delivery,2024-03-05,,2024-03-01,resin,100,90,2,4.5,,,,,\n\
             s1,po,2024-02-20,450,,resin,,,,,,,,,\n\
             p1,deal,2024-03-01,12000,,,,,,,d-7,Won,,,\n\
             a1,invoice,2024-01-01,800,,,,,,,,,inv-1,30,2024-02-15\n",
        );
        let report = ingest_events(&store, &events, &strict(), &hidden()).unwrap();
        assert_eq!(report.events, 4);
        let s1 = store.aggregates("s1").unwrap().unwrap();
        let kinds = s1.kinds.expect("a supplier's deliveries are folded");
        assert_eq!(kinds.deliveries.len(), 1);
        assert_eq!(kinds.deliveries[0].days_late, 4.0);
        assert_eq!(kinds.deliveries[0].rejected, 2.0);
        assert_eq!(kinds.orders[0].amount, 450.0);
        assert_eq!(kinds.category(kinds.orders[0].category), "resin");
        let p1 = store.aggregates("p1").unwrap().unwrap().kinds.unwrap();
        assert_eq!(p1.deals["d-7"].outcome, DealOutcome::Won);
        let a1 = store.aggregates("a1").unwrap().unwrap().kinds.unwrap();
        assert_eq!(a1.invoices["inv-1"].terms_days, 30);
        assert_eq!(a1.invoices["inv-1"].paid_at, Some(date("2024-02-15")));

        let bad = write(
            dir.path(),
            "bad.csv",
            "relationship_id,type,at,promised_at,category,quantity_ordered,quantity_received,units_rejected,unit_price\n\
             s1,delivery,2024-03-05,2024-03-01,resin,100,90,95,4.5\n",
        );
        let err = bad_reason(ingest_events(&store, &bad, &strict(), &hidden()).unwrap_err());
        assert!(err.contains("delivery.units_rejected"), "{err}");
        let missing = write(
            dir.path(),
            "missing.csv",
            "relationship_id,type,at,amount\na1,invoice,2024-03-05,10\n",
        );
        let err = bad_reason(ingest_events(&store, &missing, &strict(), &hidden()).unwrap_err());
        assert!(err.contains("invoice_id is required"), "{err}");
    }

    #[test]
    fn reingesting_a_relationship_replaces_it_and_keeps_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_customers(dir.path());
        let events = write(
            dir.path(),
            "events.csv",
            "relationship_id,type,at\nc1,visit,2024-02-01\n",
        );
        ingest_events(&store, &events, &strict(), &hidden()).unwrap();
        let again = write(dir.path(), "again.csv", "id,kind,plan\nc1,partner,pro\n");
        ingest_relationships(&store, &again, &strict(), &hidden()).unwrap();
        let c1 = store.relationship("c1").unwrap().unwrap();
        assert_eq!(c1.kind, RelationshipKind::Partner);
        assert_eq!(c1.created_at, date("2024-01-01"), "stored created_at kept");
        assert_eq!(c1.attributes["plan"], AttributeValue::Text("pro".into()));
        assert_eq!(store.events("c1", None).unwrap().len(), 1);
        assert_eq!(store.aggregates("c1").unwrap().unwrap().visits, 1);
    }

    #[test]
    fn a_malformed_row_rejects_the_whole_events_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_customers(dir.path());
        let events = write(
            dir.path(),
            "events.csv",
            "relationship_id,type,at,amount\n\
             c1,purchase,2024-02-01,10\n\
             c2,purchase,2024-02-01,ten\n\
             c2,visit,2024-02-02,\n",
        );
        let err = ingest_events(&store, &events, &strict(), &hidden()).unwrap_err();
        let reason = bad_reason(err);
        assert!(reason.starts_with("line 3: "), "{reason}");
        assert!(reason.contains("\"ten\""), "{reason}");
        assert_eq!(store.event_count().unwrap(), 0);
        assert!(store.aggregates("c1").unwrap().is_none());
    }

    #[test]
    fn a_malformed_row_rejects_the_whole_relationships_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let path = write(
            dir.path(),
            "relationships.csv",
            "id,kind\na,customer\nb,reseller\nc\n",
        );
        let reason =
            bad_reason(ingest_relationships(&store, &path, &strict(), &hidden()).unwrap_err());
        assert!(reason.starts_with("line 3: "), "{reason}");
        assert!(reason.contains("reseller"), "{reason}");
        assert_eq!(store.relationship_count().unwrap(), 0);
    }

    #[test]
    fn skip_bad_rows_writes_the_good_rows_and_reports_the_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_customers(dir.path());
        let events = write(
            dir.path(),
            "events.csv",
            "relationship_id,type,at,amount\n\
             c1,purchase,2024-02-01,10\n\
             c1,refund,2024-02-02,5\n\
             c2,visit,2024-02-03\n\
             ghost,visit,2024-02-03,\n\
             c2,purchase,2024-02-04,7\n",
        );
        let report = ingest_events(&store, &events, &lenient(), &hidden()).unwrap();
        assert_eq!(report.events, 2);
        assert_eq!(store.event_count().unwrap(), 2);
        let lines: Vec<u64> = report.skipped_rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(
            report.skipped_rows[0].1.contains("refund"),
            "{:?}",
            report.skipped_rows
        );
        assert!(
            report.skipped_rows[1].1.contains("fields"),
            "{:?}",
            report.skipped_rows
        );
        assert!(
            report.skipped_rows[2].1.starts_with("unknown relationship"),
            "{:?}",
            report.skipped_rows
        );
        assert!(store.relationship("ghost").unwrap().is_none());
    }

    #[test]
    fn a_missing_required_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_customers(dir.path());
        let events = write(
            dir.path(),
            "events.csv",
            "relationship_id,type,when\nc1,visit,2024-02-01\n",
        );
        let reason = bad_reason(ingest_events(&store, &events, &lenient(), &hidden()).unwrap_err());
        assert!(
            reason.contains("missing required column \"at\""),
            "{reason}"
        );

        let relationships = write(dir.path(), "relationships.csv", "name,kind\nx,customer\n");
        let reason = bad_reason(
            ingest_relationships(&store, &relationships, &lenient(), &hidden()).unwrap_err(),
        );
        assert!(
            reason.contains("missing required column \"id\""),
            "{reason}"
        );

        let products = write(dir.path(), "products.csv", "id,name\np1,Widget\n");
        let reason = bad_reason(ingest_products(&store, &products).unwrap_err());
        assert!(
            reason.contains("missing required column \"price\""),
            "{reason}"
        );
    }

    #[test]
    fn create_missing_starts_the_relationship_at_its_earliest_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let events = write(
            dir.path(),
            "events.csv",
            "relationship_id,type,at,amount\n\
             n1,purchase,2024-05-01,20\n\
             n1,visit,2024-03-01,\n\
             n2,complaint,2024-04-01,\n",
        );
        let refused = ingest_events(&store, &events, &strict(), &hidden()).unwrap_err();
        let reason = bad_reason(refused);
        assert!(
            reason.starts_with("line 2: unknown relationship"),
            "{reason}"
        );
        assert_eq!(store.relationship_count().unwrap(), 0);

        let options = IngestOptions::default();
        let report = ingest_events(&store, &events, &options, &hidden()).unwrap();
        assert_eq!(report.created_missing, 2);
        assert_eq!(report.events, 3);
        let n1 = store.relationship("n1").unwrap().unwrap();
        assert_eq!(n1.kind, RelationshipKind::Customer);
        assert_eq!(n1.created_at, date("2024-03-01"));
        assert!(n1.attributes.is_empty());
        let times: Vec<_> = store
            .events("n1", None)
            .unwrap()
            .iter()
            .map(|e| e.at)
            .collect();
        assert_eq!(times, vec![date("2024-03-01"), date("2024-05-01")]);
        assert_eq!(store.aggregates("n2").unwrap().unwrap().complaints, 1);
    }

    #[test]
    fn nan_and_infinite_amounts_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_customers(dir.path());
        for amount in ["NaN", "inf", "-Infinity"] {
            let events = write(
                dir.path(),
                "events.csv",
                &format!("relationship_id,type,at,amount\nc1,payment,2024-02-01,{amount}\n"),
            );
            let reason =
                bad_reason(ingest_events(&store, &events, &strict(), &hidden()).unwrap_err());
            assert!(reason.starts_with("line 2: amount"), "{reason}");
        }
        assert_eq!(store.event_count().unwrap(), 0);
    }

    #[test]
    fn a_negative_or_fractional_quantity_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_customers(dir.path());
        let events = write(
            dir.path(),
            "events.csv",
            "relationship_id,type,at,amount,quantity\n\
             c1,purchase,2024-02-01,10,-1\n\
             c1,purchase,2024-02-01,10,1.5\n\
             c1,purchase,2024-02-01,10,\n",
        );
        let report = ingest_events(&store, &events, &lenient(), &hidden()).unwrap();
        assert_eq!(report.events, 1);
        assert_eq!(report.skipped_rows.len(), 2);
        assert!(
            report.skipped_rows[0].1.contains("negative"),
            "{:?}",
            report.skipped_rows
        );
        assert!(
            report.skipped_rows[1].1.contains("whole"),
            "{:?}",
            report.skipped_rows
        );
        assert_eq!(store.aggregates("c1").unwrap().unwrap().items_total, 1);
    }

    #[test]
    fn validation_failures_are_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_customers(dir.path());
        let events = write(
            dir.path(),
            "events.csv",
            "relationship_id,type,at,score\n\
             c1,survey,2024-02-01,11\n\
             c1,survey,2024-02-01,\n\
             c1,visit,2999-01-01,\n\
             c1,visit,31/01/2024,\n\
             c1,visit,2024-02-01,\n",
        );
        let report = ingest_events(&store, &events, &lenient(), &hidden()).unwrap();
        assert_eq!(report.events, 1);
        let lines: Vec<u64> = report.skipped_rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4, 5], "{:?}", report.skipped_rows);
        assert!(report.skipped_rows[0]
            .1
            .contains("line 2.interaction.survey_score"));
        assert!(report.skipped_rows[3].1.contains("31/01/2024"));
    }

    #[test]
    fn invalid_utf8_is_a_bad_row_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_customers(dir.path());
        let path = dir.path().join("events.csv");
        let mut bytes =
            b"relationship_id,type,at\nc1,visit,2024-02-01\n\nc\xff,visit,2024-02-02\n".to_vec();
        bytes.extend_from_slice(b"c2,visit,2024-02-03\n");
        std::fs::write(&path, bytes).unwrap();
        let report = ingest_events(&store, &path, &lenient(), &hidden()).unwrap();
        assert_eq!(report.events, 2);
        assert_eq!(report.skipped_rows.len(), 1);
        assert_eq!(report.skipped_rows[0].0, 4, "{:?}", report.skipped_rows);
    }

    #[test]
    fn line_numbers_are_the_lines_rows_start_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let text = "id,note\n\na,\"two\nlines\"\nb,x,extra\n\n  \nc,y\nd,z,extra";
        for (name, text) in [
            ("lf", text.to_string()),
            ("crlf", text.replace('\n', "\r\n")),
        ] {
            let path = write(dir.path(), "r.csv", &text);
            let report = ingest_relationships(&store, &path, &lenient(), &hidden()).unwrap();
            assert_eq!(report.relationships, 2, "{name}");
            let lines: Vec<u64> = report.skipped_rows.iter().map(|(l, _)| *l).collect();
            assert_eq!(lines, vec![5, 9], "{name}: {:?}", report.skipped_rows);
        }
    }

    #[test]
    fn line_counter_skips_blank_lines_to_the_row() {
        let mut counter = LineCounter::new(&b"h\r\n\r\na\r\nb\n\n\nc"[..]);
        let mut sink = Vec::new();
        counter.read_to_end(&mut sink).unwrap();
        // Lines: 1 "h", 2 blank, 3 "a", 4 "b", 5 and 6 blank, 7 "c".
        assert_eq!(counter.line_at(1), Some(3));
        assert_eq!(counter.line_at(7), Some(4));
        assert_eq!(counter.line_at(9), Some(7));
        assert_eq!(counter.line_at(12), Some(7));
        assert_eq!(counter.line_at(5), None, "offsets only move forward");
        assert_eq!(counter.line_at(99), None);
    }

    #[test]
    fn headers_must_be_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        for (text, expected) in [
            ("", "no header row"),
            ("id,ID\n", "twice"),
            ("id,,kind\n", "column 2 has no name"),
        ] {
            let path = write(dir.path(), "r.csv", text);
            let reason =
                bad_reason(ingest_relationships(&store, &path, &lenient(), &hidden()).unwrap_err());
            assert!(reason.contains(expected), "{text:?}: {reason}");
        }
        let missing = dir.path().join("absent.csv");
        let reason = bad_reason(ingest_products(&store, &missing).unwrap_err());
        assert!(reason.contains("cannot open"), "{reason}");
    }

    #[test]
    fn duplicate_ids_in_one_file_are_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let path = write(dir.path(), "r.csv", "id\na\nb\na\n");
        let report = ingest_relationships(&store, &path, &lenient(), &hidden()).unwrap();
        assert_eq!(report.relationships, 2);
        assert_eq!(
            report.skipped_rows,
            vec![(4, "duplicate id \"a\", first on line 2".to_string())]
        );
    }

    #[test]
    fn products_load_with_defaults_and_bad_prices_reject_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let path = write(
            dir.path(),
            "products.csv",
            "price,id,Name,category\n9.5,p1,Widget,tools\n20,p2,,\n",
        );
        let report = ingest_products(&store, &path).unwrap();
        assert_eq!(report.products, 2);
        let products = store.products().unwrap();
        assert_eq!(
            products,
            vec![
                Product {
                    id: "p1".into(),
                    name: "Widget".into(),
                    category: "tools".into(),
                    price: 9.5,
                },
                Product {
                    id: "p2".into(),
                    name: "p2".into(),
                    category: String::new(),
                    price: 20.0,
                },
            ]
        );
        for price in ["-1", "NaN", ""] {
            let path = write(
                dir.path(),
                "bad.csv",
                &format!("id,price\np3,1\np4,{price}\n"),
            );
            let reason = bad_reason(ingest_products(&store, &path).unwrap_err());
            assert!(reason.starts_with("line 3: "), "{price}: {reason}");
        }
        assert_eq!(store.products().unwrap().len(), 2);
    }

    #[test]
    fn large_histories_are_split_without_losing_aggregates() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let mut text = String::from("relationship_id,type,at,amount\n");
        let n = EVENT_CHUNK + 5;
        for i in 0..n {
            text.push_str(&format!(
                "big,purchase,{},1\n",
                1_600_000_000 + i as i64 * 60
            ));
        }
        let path = write(dir.path(), "events.csv", &text);
        let report = ingest_events(&store, &path, &IngestOptions::default(), &hidden()).unwrap();
        assert_eq!(report.events, n as u64);
        assert_eq!(store.event_count().unwrap(), n);
        let agg = store.aggregates("big").unwrap().unwrap();
        assert_eq!(agg.event_count, n as u64);
        assert_eq!(agg.spend_total, n as f64);
    }

    #[test]
    fn reports_merge() {
        let mut total = IngestReport {
            relationships: 2,
            skipped_rows: vec![(3, "a".into())],
            ..IngestReport::default()
        };
        total.merge(IngestReport {
            events: 5,
            created_missing: 1,
            products: 4,
            skipped_rows: vec![(7, "b".into())],
            ..IngestReport::default()
        });
        assert_eq!(total.relationships, 2);
        assert_eq!(total.events, 5);
        assert_eq!(total.products, 4);
        assert_eq!(total.created_missing, 1);
        assert_eq!(total.skipped_rows.len(), 2);
    }
}
