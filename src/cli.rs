//! What the command-line subcommands do beyond parsing: read files, print
//! tables, wait for signals. Kept out of `main.rs` so it only parses.

use std::path::Path;

use crate::domain::{now, SECONDS_PER_DAY};
use crate::error::{Error, Result};
use crate::model::spec::format_date;
use crate::model::ModelSpec;
use crate::server::train_and_save;
use crate::store::Store;

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// # Errors
/// `BadInput` naming the file.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::BadInput {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The spec at `path`, or the built-in demo spec.
///
/// # Errors
/// `BadInput` naming the file and field.
pub fn load_spec(path: Option<&Path>) -> Result<ModelSpec> {
    match path {
        Some(p) => ModelSpec::parse(&p.display().to_string(), &read(p)?),
        None => Ok(ModelSpec::demo()),
    }
}

/// Midnight UTC today: the demo book's end, so a book is the same all day.
pub fn today() -> i64 {
    now().div_euclid(SECONDS_PER_DAY) * SECONDS_PER_DAY
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight calls");
}

/// # Errors
/// As the store and ingest functions.
pub fn ingest(
    data_dir: &Path,
    relationships: Option<&Path>,
    events: Option<&Path>,
    products: Option<&Path>,
    skip_bad_rows: bool,
    create_missing: bool,
) -> Result<()> {
    use crate::ingest::{
        ingest_events, ingest_products, ingest_relationships, IngestOptions, IngestReport,
    };
    let store = Store::open(data_dir)?;
    let options = IngestOptions {
        skip_bad_rows,
        create_missing,
    };
    let mut total = IngestReport::default();
    let mut add = |path: &Path, report: IngestReport| {
        for (line, reason) in &report.skipped_rows {
            println!("{}: skipped line {line}: {reason}", path.display());
        }
        total.merge(report);
    };
    if let Some(p) = products {
        add(p, ingest_products(&store, p)?);
    }
    if let Some(p) = relationships {
        add(
            p,
            ingest_relationships(
                &store,
                p,
                &options,
                &crate::server::progress_bar("relationships"),
            )?,
        );
    }
    if let Some(p) = events {
        add(
            p,
            ingest_events(&store, p, &options, &crate::server::progress_bar("events"))?,
        );
    }
    println!(
        "ingested {} relationships, {} events, {} products ({} relationships created for unknown ids, {} rows skipped)",
        total.relationships,
        total.events,
        total.products,
        total.created_missing,
        total.skipped_rows.len()
    );
    Ok(())
}

/// # Errors
/// As [`train_and_save`].
pub fn train(data_dir: &Path, spec: &ModelSpec, activate: bool) -> Result<()> {
    let store = Store::open(data_dir)?;
    let bundle = train_and_save(&store, spec)?;
    println!(
        "trained version {} on {} rows (spec {:?})",
        bundle.version, bundle.training_rows, spec.name
    );
    for m in &bundle.metrics {
        println!("  {:<32} {:>12.4}", m.name, m.value);
    }
    if activate {
        store.set_active(bundle.version)?;
        store.flush_blocking()?;
        println!("version {} is now active", bundle.version);
    }
    Ok(())
}

/// # Errors
/// As the store.
pub fn list_models(data_dir: &Path) -> Result<()> {
    let store = Store::open(data_dir)?;
    let active = store.active_version()?;
    println!(
        "{:>7}  {:<6}  {:<10}  {:<10}  {:<12}  {:>8}  {:>8}  {:>10}",
        "version", "active", "trained", "cutoff", "spec", "rows", "auc", "silhouette"
    );
    for b in store.models()? {
        println!(
            "{:>7}  {:<6}  {:<10}  {:<10}  {:<12}  {:>8}  {:>8.3}  {:>10.3}",
            b.version,
            if active == Some(b.version) { "*" } else { "" },
            format_date(b.trained_at),
            b.cutoff.map(format_date).unwrap_or_default(),
            b.spec.name,
            b.training_rows,
            b.metric("churn.roc_auc").unwrap_or(f64::NAN),
            b.metric("segments.silhouette").unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
