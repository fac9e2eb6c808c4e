//! Backups: a whole store written to a directory through the store traits,
//! so any backend can be backed up and restored into any other.
//!
//! A backup directory holds:
//!
//! | file                          | content                                        |
//! |-------------------------------|------------------------------------------------|
//! | `manifest.json`               | format, time, counts, active and previous versions per slot, demo state |
//! | `book.bin`                    | the book: bincode chunks of relationships with their events, each prefixed by its length (8 bytes BE) |
//! | `products.bin`                | bincode product catalogue                      |
//! | `models/<v>/bundle`, `summary`| a version's artifacts as the registry keeps them |
//! | `models/<v>/artifact.<name>`  | a version's named artifacts                    |
//!
//! The copy is written to `<dir>.partial`, synced, and renamed into place:
//! a directory named as asked is a finished backup. The caller makes it
//! consistent by keeping writes out while [`write`] reads (the engine's
//! write gate). [`restore`] loads it into an empty store; events are folded
//! again in time order, as a loader writes them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{EventFold, ModelSlot, Product};
use crate::error::{Error, Result};
use crate::store::{DemoState, History, Store};

const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const BOOK: &str = "book.bin";
const PRODUCTS: &str = "products.bin";
/// Relationships per chunk of `book.bin`.
const CHUNK: usize = 1_000;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Unix seconds when the copy was taken.
    pub created_at: i64,
    pub relationships: u64,
    pub events: u64,
    pub products: u64,
    pub model_versions: Vec<u64>,
    /// Slot name to version.
    pub active: BTreeMap<String, u64>,
    pub previous: BTreeMap<String, u64>,
    pub demo_loaded: bool,
}

/// Where a backup went and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub relationships: u64,
    pub events: u64,
    pub model_versions: u64,
}

fn slot_by_name(name: &str) -> Option<ModelSlot> {
    ModelSlot::ALL.into_iter().find(|s| s.name() == name)
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("{}: {e}", path.display())))
}

/// A new backup directory `name` under `root`: relative, no `..`, not there yet.
///
/// # Errors
/// `InvalidArgument` naming `directory`.
pub fn target_under(root: &Path, name: &str) -> Result<PathBuf> {
    let relative = Path::new(name);
    if name.trim().is_empty()
        || relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(Error::invalid(
            "directory",
            format!("{name:?} must be a relative path under the backup root, without \"..\""),
        ));
    }
    let target = root.join(relative);
    if target.exists() {
        return Err(Error::invalid(
            "directory",
            format!("{name:?} exists already under the backup root"),
        ));
    }
    Ok(target)
}

/// Writes everything `store` holds into the new directory `dir`. Writes must
/// be kept out meanwhile for the copy to be consistent.
///
/// # Errors
/// `InvalidArgument` when `dir` exists; `Io` or `Storage`.
pub fn write<A: EventFold>(store: &dyn Store<A>, dir: &Path) -> Result<BackupSummary> {
    if dir.exists() {
        return Err(Error::invalid(
            "backup directory",
            format!("{} exists already", dir.display()),
        ));
    }
    let partial = PathBuf::from(format!("{}.partial", dir.display()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(partial.join("models"))?;
    let mut relationships = 0u64;
    let mut events = 0u64;
    {
        let path = partial.join(BOOK);
        let mut out = BufWriter::new(File::create(&path)?);
        let chunks = store.history_chunks(CHUNK);
        while let Some((_, chunk)) = chunks.next_chunk()? {
            relationships += chunk.len() as u64;
            events += chunk.iter().map(|(_, e)| e.len() as u64).sum::<u64>();
            let bytes = bincode::serialize(&chunk).map_err(|e| io_error(&path, e))?;
            out.write_all(&(bytes.len() as u64).to_be_bytes())?;
            out.write_all(&bytes)?;
        }
        finish(out)?;
    }
    let products = store.products()?;
    {
        let path = partial.join(PRODUCTS);
        let mut out = BufWriter::new(File::create(&path)?);
        out.write_all(&bincode::serialize(&products).map_err(|e| io_error(&path, e))?)?;
        finish(out)?;
    }
    let versions = store.model_versions()?;
    for version in &versions {
        let folder = partial.join("models").join(version.to_string());
        std::fs::create_dir(&folder)?;
        if let Some(bundle) = store.model_bundle(*version)? {
            write_file(&folder.join("bundle"), &bundle)?;
        }
        if let Some(summary) = store.model_summary(*version)? {
            write_file(&folder.join("summary"), &summary)?;
        }
        for (name, bytes) in store.model_artifacts(*version)? {
            write_file(&folder.join(format!("artifact.{name}")), &bytes)?;
        }
    }
    let mut active = BTreeMap::new();
    let mut previous = BTreeMap::new();
    for slot in ModelSlot::ALL {
        if let Some(v) = store.active_model(slot)? {
            active.insert(slot.name().to_string(), v);
        }
        if let Some(v) = store.previous_active_model(slot)? {
            previous.insert(slot.name().to_string(), v);
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        created_at: crate::time::now(),
        relationships,
        events,
        products: products.len() as u64,
        model_versions: versions.clone(),
        active,
        previous,
        demo_loaded: store.demo_state()? == DemoState::Loaded,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| io_error(dir, e))?;
    write_file(&partial.join(MANIFEST), &json)?;
    File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, dir)?;
    if let Some(parent) = dir.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(BackupSummary {
        path: dir.to_path_buf(),
        relationships,
        events,
        model_versions: versions.len() as u64,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(bytes)?;
    finish(out)
}

fn finish(out: BufWriter<File>) -> Result<()> {
    out.into_inner()
        .map_err(|e| Error::Io(e.into_error()))?
        .sync_all()?;
    Ok(())
}

/// Reads a backup's manifest.
///
/// # Errors
/// `BadInput` when it is missing, unreadable or of another format.
pub fn manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let bad = |reason: String| Error::BadInput {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(&path).map_err(|e| bad(format!("not a finished backup: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "backup format {} (this build reads {FORMAT})",
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Loads the backup in `dir` into `store`, which must hold no relationship
/// and no model version.
///
/// # Errors
/// `FailedPrecondition` for a store that is not empty; `BadInput` for a
/// damaged backup; `Storage`.
pub fn restore<A: EventFold>(dir: &Path, store: &dyn Store<A>) -> Result<Manifest> {
    let manifest = manifest(dir)?;
    if store.has_relationships()? || !store.model_versions()?.is_empty() {
        return Err(Error::precondition(
            "restore needs an empty data directory (no relationships, no model versions)",
        ));
    }
    let damaged = |file: &str, reason: String| Error::BadInput {
        path: dir.join(file).display().to_string(),
        reason,
    };
    let mut book = BufReader::new(File::open(dir.join(BOOK))?);
    let (mut relationships, mut events) = (0u64, 0u64);
    loop {
        let mut len = [0u8; 8];
        match book.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let mut bytes = vec![0u8; u64::from_be_bytes(len) as usize];
        book.read_exact(&mut bytes)
            .map_err(|e| damaged(BOOK, e.to_string()))?;
        let chunk: Vec<History> =
            bincode::deserialize(&bytes).map_err(|e| damaged(BOOK, e.to_string()))?;
        relationships += chunk.len() as u64;
        events += chunk.iter().map(|(_, e)| e.len() as u64).sum::<u64>();
        store.load_histories(&chunk)?;
    }
    if (relationships, events) != (manifest.relationships, manifest.events) {
        return Err(damaged(
            BOOK,
            format!(
                "holds {relationships} relationships and {events} events; the manifest says {} and {}",
                manifest.relationships, manifest.events
            ),
        ));
    }
    let products: Vec<Product> = bincode::deserialize(&std::fs::read(dir.join(PRODUCTS))?)
        .map_err(|e| damaged(PRODUCTS, e.to_string()))?;
    store.put_products(&products)?;
    for version in &manifest.model_versions {
        let folder = dir.join("models").join(version.to_string());
        let bundle = std::fs::read(folder.join("bundle"))?;
        let summary = std::fs::read(folder.join("summary")).unwrap_or_default();
        store.put_model(*version, &summary, &bundle)?;
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_prefix("artifact.") {
                store.put_model_artifact(*version, name, &std::fs::read(entry.path())?)?;
            }
        }
    }
    // The previous version first, so that making the active one active
    // records it as the one replaced.
    for (slot_name, version) in manifest.previous.iter().chain(&manifest.active) {
        let slot = slot_by_name(slot_name)
            .ok_or_else(|| damaged(MANIFEST, format!("unknown model slot {slot_name:?}")))?;
        store.set_active_model(slot, *version)?;
    }
    // Allocation must continue after the restored versions.
    if let Some(last) = manifest.model_versions.last() {
        while store.allocate_model_version()? < *last {}
    }
    if manifest.demo_loaded {
        store.set_demo_state(DemoState::Loaded)?;
    }
    store.flush_blocking()?;
    Ok(manifest)
}
