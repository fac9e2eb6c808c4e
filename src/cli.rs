//! What the command-line subcommands do beyond parsing: read files, print
//! tables, wait for signals. Kept out of `main.rs` so it only parses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::api::client::{ClientOptions, Conn};
use crate::api::pb::models_client::ModelsClient;
use crate::api::{self, convert, pb};
use crate::domain::ModelSlot;
use crate::engine::{Engine, Policy};
use crate::error::{Error, Result};
use crate::model::labels::TableLabel;
use crate::model::router::LoadedModel;
use crate::model::ModelSpec;
use crate::store::redis::{RedisOptions, RedisStore};
use crate::store::sled::{SledOptions, SledStore};
use crate::time::format_date;
use crate::training::train_and_save;
use crate::SharedStore;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event; coloured only when stderr is a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logs to stderr at `RUST_LOG` (default `info`). Text has no colour codes
/// unless stderr is a terminal, so that files and collectors get plain lines.
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

/// Reads the token file (`--tokens`), or else the tokens in `RAPPORT_TOKENS`
/// (the same format, lines or `;`-separated).
///
/// # Errors
/// `BadInput` naming the file or variable and the line.
pub fn load_tokens(file: Option<&Path>) -> Result<api::auth::Tokens> {
    match file {
        Some(path) => api::auth::Tokens::parse(&path.display().to_string(), &read(path)?),
        None => match std::env::var("RAPPORT_TOKENS") {
            Ok(text) => api::auth::Tokens::parse("RAPPORT_TOKENS", &text.replace(';', "\n")),
            Err(_) => Ok(api::auth::Tokens::default()),
        },
    }
}

/// A backup of the store: through the running server (under its
/// `--backup-root`), or of the data directory when no server is given.
///
/// # Errors
/// As [`crate::store::backup::write`], or the server's status.
pub async fn backup(store: &StoreArgs, out: &Path, server: Option<&Remote>) -> Result<()> {
    let (path, relationships, events, versions) = if let Some(server) = server {
        let reply = models_client(server)
            .await?
            .backup_store(pb::BackupStoreRequest {
                directory: out.display().to_string(),
            })
            .await
            .map_err(remote)?
            .into_inner();
        (
            reply.path,
            reply.relationships,
            reply.events,
            reply.model_versions,
        )
    } else {
        let engine = offline_engine(store)?;
        let out = out.to_path_buf();
        let summary = tokio::task::spawn_blocking(move || engine.backup(&out))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        (
            summary.path.display().to_string(),
            summary.relationships,
            summary.events,
            summary.model_versions,
        )
    };
    println!(
        "backup {path}: {relationships} relationships, {events} events, {versions} model versions"
    );
    Ok(())
}

/// Makes the store (empty) a copy of the backup in `from`.
///
/// # Errors
/// As [`crate::store::backup::restore`].
pub fn restore(store_args: &StoreArgs, from: &Path) -> Result<()> {
    let store = store_args.open(SledOptions::SCAN_CACHE_MB)?;
    let manifest = crate::store::backup::restore(from, store.as_ref())?;
    println!(
        "restored {} relationships, {} events, {} model versions into {}",
        manifest.relationships,
        manifest.events,
        manifest.model_versions.len(),
        store_args.describe()
    );
    Ok(())
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
    crate::time::today()
}

/// Where a command finds the store: sled in `data_dir` (the default), or a
/// Redis Cluster when `redis` is given (`--store`).
#[derive(Debug, Clone)]
pub struct StoreArgs {
    pub data_dir: PathBuf,
    /// Megabytes of cache (`--cache-mb`); `None` takes the command's default.
    pub cache_mb: Option<u64>,
    pub redis: Option<RedisOptions>,
}

impl StoreArgs {
    /// The store as a person reads it: the data directory or the cluster.
    pub fn describe(&self) -> String {
        match &self.redis {
            Some(redis) => format!("the Redis Cluster at {}", redis.nodes.join(",")),
            None => self.data_dir.display().to_string(),
        }
    }

    /// Opens the store for a command, with `--cache-mb` or `default_mb` of cache.
    ///
    /// # Errors
    /// As [`SledStore::open`] or [`RedisStore::open`].
    pub fn open(&self, default_mb: u64) -> Result<SharedStore> {
        let mb = self.cache_mb.unwrap_or(default_mb);
        Ok(match &self.redis {
            Some(redis) => Arc::new(RedisStore::open(redis.clone().with_cache_mb(mb))?),
            None => Arc::new(SledStore::open(
                &self.data_dir,
                SledOptions::with_cache_mb(mb),
            )?),
        })
    }
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
    store: &StoreArgs,
    files: IngestFiles,
    skip_bad_rows: bool,
    create_missing: bool,
) -> Result<()> {
    use crate::ingest::{
        ingest_events, ingest_log, ingest_products, ingest_relationships, IngestOptions,
        IngestReport,
    };
    let IngestFiles {
        relationships,
        events,
        products,
        spec,
        data,
    } = files;
    // A spec is checked before the store is opened: a wrong one writes nothing.
    let log = match spec {
        Some(path) => match load_spec_file(Some(path), data)?.spec.source {
            crate::model::spec::DataSource::Events(source) => Some(source),
            _ => {
                return Err(Error::invalid(
                    "--spec",
                    "ingest reads a spec's purchase log (data.source = \"events\"); a table's rows are kept with the version it trains, and a store spec reads the store",
                ))
            }
        },
        None => None,
    };
    let store = store.open(SledOptions::SCAN_CACHE_MB)?;
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
            ingest_relationships(&store, p, &options, &crate::progress::bar("relationships"))?,
        );
    }
    if let Some(p) = events {
        add(
            p,
            ingest_events(&store, p, &options, &crate::progress::bar("events"))?,
        );
    }
    if let Some(source) = &log {
        let (report, load) = ingest_log(&store, source, &crate::progress::bar("customers"))?;
        println!(
            "{}: {} rows used, {} skipped as training skips them",
            source.path, load.rows, load.skipped
        );
        for example in &load.examples {
            println!("{}: skipped {example}", source.path);
        }
        add(Path::new(&source.path), report);
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

/// A spec as read from its file, with `data.path` made absolute so that the
/// server (whose working directory differs) reads the same file.
pub struct SpecFile {
    pub spec: ModelSpec,
    pub toml: String,
}

/// Reads a spec; `data` overrides its `data.path`. A relative data path is
/// taken from the working directory, or else from the spec file's folder.
///
/// # Errors
/// `BadInput` naming the file and field.
pub fn load_spec_file(path: Option<&Path>, data: Option<&Path>) -> Result<SpecFile> {
    let Some(path) = path else {
        let spec = ModelSpec::demo();
        return Ok(SpecFile {
            spec,
            toml: crate::model::spec::DEMO_SPEC.to_string(),
        });
    };
    let name = path.display().to_string();
    let text = read(path)?;
    let mut value: toml::Table = toml::from_str(&text).map_err(|e| Error::BadInput {
        path: name.clone(),
        reason: e.to_string(),
    })?;
    if let Some(toml::Value::Table(section)) = value.get_mut("data") {
        let given = data.map(|d| d.display().to_string()).or_else(|| {
            section
                .get("path")
                .and_then(|p| p.as_str())
                .map(str::to_string)
        });
        if let Some(given) = given {
            let mut resolved = std::path::PathBuf::from(&given);
            if resolved.is_relative() && !resolved.exists() {
                if let Some(beside) = path.parent().map(|d| d.join(&given)).filter(|p| p.exists()) {
                    resolved = beside;
                }
            }
            let absolute = std::path::absolute(&resolved).unwrap_or(resolved);
            section.insert(
                "path".into(),
                toml::Value::String(absolute.display().to_string()),
            );
        }
    } else if data.is_some() {
        return Err(Error::BadInput {
            path: name,
            reason: "--data needs a [data] section with source = \"table\" or \"events\"".into(),
        });
    }
    let toml = toml::to_string(&value).map_err(|e| Error::BadInput {
        path: name.clone(),
        reason: e.to_string(),
    })?;
    Ok(SpecFile {
        spec: ModelSpec::parse(&name, &toml)?,
        toml,
    })
}

/// A running server and how to reach it (`--server` with the client flags).
pub struct Remote {
    pub addr: String,
    pub client: ClientOptions,
}

impl Remote {
    async fn connect(&self) -> Result<Conn> {
        self.client.connect(&self.addr).await
    }
}

async fn models_client(server: &Remote) -> Result<ModelsClient<Conn>> {
    Ok(ModelsClient::new(server.connect().await?))
}

/// The engine on a data directory, with its active model loaded (if any):
/// the CLI's offline path runs the same code as the server.
fn offline_engine(store: &StoreArgs) -> Result<Engine> {
    offline_engine_with(store, Policy::default())
}

/// [`offline_engine`] recommending with `policy`.
fn offline_engine_with(store: &StoreArgs, policy: Policy) -> Result<Engine> {
    let store = store.open(SledOptions::SERVING_CACHE_MB)?;
    let engine = Engine::new(store, policy);
    engine.load_active()?;
    Ok(engine)
}

/// A server's error status, kept as the server gave it.
fn remote(status: tonic::Status) -> Error {
    api::remote(status)
}

/// The files `rapport ingest` loads, each optional.
pub struct IngestFiles<'a> {
    pub relationships: Option<&'a Path>,
    pub events: Option<&'a Path>,
    pub products: Option<&'a Path>,
    /// A spec whose purchase log is read as training reads it.
    pub spec: Option<&'a Path>,
    /// The log instead of the spec's `data.path`.
    pub data: Option<&'a Path>,
}

/// Trains from the spec, locally on the store or inside a running server.
///
/// # Errors
/// As [`train_and_save`]; remote errors carry the server's status.
pub async fn train(
    store: &StoreArgs,
    spec: SpecFile,
    activate: bool,
    report: Option<&Path>,
    force: Option<String>,
    server: Option<&Remote>,
) -> Result<()> {
    let compared;
    let bundle = if let Some(server) = server {
        let mut client = models_client(server).await?;
        let version = client
            .train_model(crate::api::pb::TrainModelRequest {
                spec_toml: spec.toml,
                activate,
                force: force.is_some(),
                force_reason: force.clone().unwrap_or_default(),
            })
            .await
            .map_err(remote)?
            .into_inner();
        print_versions(&[version], None);
        return Ok(());
    } else {
        let store = store.open(SledOptions::SCAN_CACHE_MB)?;
        let _lease = store.training_lease()?;
        // The report compares the new version with the one active before it.
        compared = match store.active_model(spec.spec.slot())? {
            Some(active) => Engine::new(store.clone(), Policy::default())
                .model_summaries()?
                .into_iter()
                .find(|s| s.version == active),
            None => None,
        };
        let bundle = train_and_save(&store, &spec.spec)?;
        if activate {
            let engine = Engine::new(store.clone(), Policy::default());
            let slot = bundle.spec.slot();
            check_promotion(&engine, bundle.version, slot, force.as_deref())?;
            store.set_active_model(slot, bundle.version)?;
            store.flush_blocking()?;
        }
        bundle
    };
    println!(
        "trained version {} on {} rows (spec {:?}, data {})",
        bundle.version, bundle.training_rows, spec.spec.name, bundle.fingerprint
    );
    let candidates: Vec<String> = bundle
        .churn
        .candidates()
        .iter()
        .map(|(name, auc)| format!("{name} {auc:.4}"))
        .collect();
    println!(
        "churn learner: {} (held-out ROC AUC: {}), calibration: {}",
        bundle.churn.learner_name(),
        if candidates.is_empty() {
            "no held-out rows".to_string()
        } else {
            candidates.join(", ")
        },
        bundle.churn.calibration_name()
    );
    if bundle.churn.intervals.len() > 1 {
        let intervals: Vec<String> = bundle
            .churn
            .intervals
            .iter()
            .map(|h| {
                format!(
                    "{}-{}d {} ({})",
                    h.from_days,
                    h.to_days,
                    h.learner_name(),
                    h.calibrator.name()
                )
            })
            .collect();
        println!("churn intervals: {}", intervals.join(", "));
    }
    for m in &bundle.metrics {
        println!("  {:<32} {:>12.4}", m.name, m.value);
    }
    for note in &bundle.notes {
        println!("  note: {note}");
    }
    let report_path = report.map(Path::to_path_buf).unwrap_or_else(|| {
        std::path::PathBuf::from(format!("reports/model-v{}.html", bundle.version))
    });
    let step = crate::progress::step(
        &crate::progress::root(),
        format!("writing {}", report_path.display()),
    );
    write_bundle_report(&bundle, compared.as_ref(), &report_path)?;
    step.finish_and_clear();
    println!("report: {}", report_path.display());
    if activate {
        println!("version {} is now active", bundle.version);
    }
    Ok(())
}

fn print_versions(versions: &[pb::ModelVersion], active: Option<u64>) {
    println!(
        "{:>7}  {:<6}  {:<10}  {:<10}  {:<12}  {:<20}  {:>8}  {:>7}  {:>7}  {:>10}",
        "version",
        "active",
        "trained",
        "cutoff",
        "spec",
        "churn learner",
        "rows",
        "auc",
        "ece",
        "silhouette"
    );
    for v in versions {
        // A metric a version does not have (a table has no segments) is "-", never NaN.
        let metric = |name: &str| {
            v.metrics
                .iter()
                .find(|m| m.name == name && m.value.is_finite())
                .map_or_else(|| "-".to_string(), |m| format!("{:.3}", m.value))
        };
        let date = |t: &Option<prost_types::Timestamp>| {
            t.as_ref()
                .map_or_else(|| "-".to_string(), |t| format_date(t.seconds))
        };
        println!(
            "{:>7}  {:<6}  {:<10}  {:<10}  {:<12}  {:<20}  {:>8}  {:>7}  {:>7}  {:>10}",
            v.version,
            if v.active || active == Some(v.version) {
                "*"
            } else {
                ""
            },
            date(&v.trained_at),
            date(&v.cutoff),
            v.spec,
            v.churn_learner,
            v.training_rows,
            metric("churn.roc_auc"),
            metric("churn.ece"),
            metric("segments.silhouette"),
        );
    }
}

/// # Errors
/// As the store, or the server's status.
pub async fn list_models(store: &StoreArgs, server: Option<&Remote>) -> Result<()> {
    let versions = if let Some(server) = server {
        let mut client = models_client(server).await?;
        client
            .list_models(crate::api::pb::ListModelsRequest {})
            .await
            .map_err(remote)?
            .into_inner()
            .versions
    } else {
        let engine = offline_engine(store)?;
        let active = engine.active_versions()?;
        engine
            .model_summaries()?
            .into_iter()
            .map(|s| convert::model_version_to(s, &active))
            .collect()
    };
    print_versions(&versions, None);
    Ok(())
}

/// Promotes `version` in `slot` (its own when empty), or rolls `slot` back
/// to its previously active version when `None`.
///
/// # Errors
/// `InvalidArgument` for an unknown slot, `NotFound` for an unknown version,
/// `FailedPrecondition` with nothing to roll back to.
pub async fn promote(
    store: &StoreArgs,
    version: Option<u64>,
    slot: &str,
    force: Option<String>,
    server: Option<&Remote>,
) -> Result<()> {
    let named = ModelSlot::parse("--slot", slot)?;
    let reply = if let Some(server) = server {
        let mut client = models_client(server).await?;
        match version {
            Some(version) => {
                client
                    .promote_model(crate::api::pb::PromoteModelRequest {
                        version,
                        force: force.is_some(),
                        reason: force.clone().unwrap_or_default(),
                        slot: slot.to_string(),
                    })
                    .await
            }
            None => {
                client
                    .rollback_model(crate::api::pb::RollbackModelRequest {
                        slot: slot.to_string(),
                    })
                    .await
            }
        }
        .map_err(remote)?
        .into_inner()
    } else {
        let engine = offline_engine(store)?;
        let version = match version {
            Some(v) => {
                let slot = if slot.trim().is_empty() {
                    engine.bundle(v)?.spec.slot()
                } else {
                    named
                };
                check_promotion(&engine, v, slot, force.as_deref())?;
                engine.activate(v, slot).await?;
                v
            }
            None => engine.rollback(named).await?,
        };
        convert::model_version_to(
            engine.bundle(version)?.summary(),
            &engine.active_versions()?,
        )
    };
    println!("version {} is now active", reply.version);
    print_versions(&[reply], None);
    Ok(())
}

/// The promotion checks of the offline path, as the server runs them.
///
/// # Errors
/// `FailedPrecondition` listing what failed, unless forced with a reason.
fn check_promotion(
    engine: &Engine,
    version: u64,
    slot: ModelSlot,
    force: Option<&str>,
) -> Result<()> {
    if force.is_some_and(|r| r.trim().is_empty()) {
        return Err(Error::invalid("--force", "needs a reason"));
    }
    let problems = engine.promotion_problems(version, slot)?;
    match (problems.is_empty(), force) {
        (true, _) => Ok(()),
        (false, Some(reason)) => {
            tracing::warn!(
                target: "audit",
                version,
                reason,
                overridden = problems.join("; "),
                "promotion checks overridden"
            );
            Ok(())
        }
        (false, None) => Err(crate::engine::promotion::refused(version, &problems)),
    }
}

/// # Errors
/// As [`crate::engine::Engine::drift`], or the server's status.
pub async fn drift(
    store: &StoreArgs,
    version: u64,
    sample: u32,
    server: Option<&Remote>,
) -> Result<()> {
    let reply = if let Some(server) = server {
        let mut client = models_client(server).await?;
        client
            .get_drift(crate::api::pb::GetDriftRequest { version, sample })
            .await
            .map_err(remote)?
            .into_inner()
    } else {
        let engine = offline_engine(store)?;
        convert::drift_to(engine.drift((version != 0).then_some(version), sample)?)
    };
    println!(
        "version {}: {} relationships sampled",
        reply.version, reply.sampled
    );
    println!("{:<36} {:>8}  status", "feature", "psi");
    for f in reply.features {
        println!("{:<36} {:>8.4}  {}", f.feature, f.psi, f.status);
    }
    Ok(())
}

/// Writes scores for every relationship (or the ids in `ids`) to a CSV file,
/// as of `as_of`, through the same engine the RPCs use.
///
/// # Errors
/// As the engine; `BadInput` for an unreadable id file or a bad date.
pub async fn score(
    store: &StoreArgs,
    out: &Path,
    ids: Option<&Path>,
    as_of: Option<&str>,
    server: Option<&Remote>,
    with_labels: bool,
) -> Result<()> {
    if with_labels && server.is_some() {
        return Err(Error::invalid(
            "--with-labels",
            "the labels are read from the events and tables in --data-dir: score without --server (with the server stopped)",
        ));
    }
    let as_of = parse_as_of(as_of)?;
    let as_of_pb = as_of.map(convert::timestamp_to);
    let mut writer = csv_out(out)?;
    let mut header = vec![
        "relationship_id".to_string(),
        "churn_probability".into(),
        "churn_horizon_days".into(),
    ];
    let mut header_done = false;
    let mut written = 0usize;
    let mut write = |writer: &mut csv::Writer<std::fs::File>,
                     s: pb::RelationshipScore,
                     seg: Option<pb::SegmentResponse>,
                     labels: Option<Labels>|
     -> Result<()> {
        if !header_done {
            header.extend(
                s.churn_by_horizon
                    .iter()
                    .map(|h| format!("churn_by_{}d", h.days)),
            );
            header.extend(
                [
                    "expected_days_to_churn",
                    "expected_value",
                    "value_horizon_days",
                    "value_at_risk",
                    "health_score",
                    "rfm_segment",
                    "value_tier",
                    "cluster",
                    "persona",
                    "lifecycle_stage",
                    "top_reason",
                    "model_version",
                    "as_of",
                ]
                .map(String::from),
            );
            if with_labels {
                header.extend(["holdout", "label_churned", "label_value"].map(String::from));
            }
            writer
                .write_record(&header)
                .map_err(|e| Error::Io(e.into()))?;
            header_done = true;
        }
        let mut row = vec![
            s.relationship_id.clone(),
            s.churn_probability.to_string(),
            cell(s.churn_horizon_days),
        ];
        row.extend(s.churn_by_horizon.iter().map(|h| h.probability.to_string()));
        let stage = seg
            .as_ref()
            .and_then(|g| pb::LifecycleStage::try_from(g.lifecycle_stage).ok())
            .map(|st| {
                st.as_str_name()
                    .trim_start_matches("LIFECYCLE_STAGE_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        row.extend([
            cell(s.expected_days_to_churn),
            cell(s.expected_value),
            cell(s.value_horizon_days),
            cell(s.value_at_risk),
            s.health_score.to_string(),
            seg.as_ref()
                .and_then(|g| g.rfm.as_ref())
                .map(|r| r.segment.clone())
                .unwrap_or_default(),
            seg.as_ref()
                .and_then(|g| g.value_tier.as_ref())
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            seg.as_ref()
                .and_then(|g| g.cluster.as_ref())
                .map(|c| c.id.to_string())
                .unwrap_or_default(),
            seg.as_ref()
                .and_then(|g| g.cluster.as_ref())
                .map(|c| c.persona.clone())
                .unwrap_or_default(),
            stage,
            s.reasons
                .first()
                .map(|r| r.explanation.clone())
                .unwrap_or_default(),
            s.model_version.to_string(),
            s.as_of
                .as_ref()
                .map(|t| crate::time::format_datetime(t.seconds))
                .unwrap_or_default(),
        ]);
        if let Some(labels) = labels {
            row.extend([
                cell(labels.holdout),
                cell(labels.churned),
                cell(labels.value),
            ]);
        }
        writer.write_record(&row).map_err(|e| Error::Io(e.into()))?;
        written += 1;
        Ok(())
    };
    let wanted = read_ids(ids)?;
    let mut skipped: Vec<String> = Vec::new();
    if let Some(server) = server {
        let channel = server.connect().await?;
        let mut scoring = pb::scoring_client::ScoringClient::new(channel.clone());
        // Ids listed by the server may be erased before they are scored:
        // those are left out, where an id the file names must exist.
        let (ids, skip_unknown) = match wanted {
            Some(ids) => (ids, false),
            None => (every_id(channel).await?, true),
        };
        for chunk in ids.chunks(1_000) {
            let batch = scoring
                .score_batch(pb::ScoreBatchRequest {
                    relationship_ids: chunk.to_vec(),
                    as_of: as_of_pb,
                    max_reasons: 1,
                    skip_unknown,
                })
                .await;
            let scores = match batch {
                Ok(reply) => reply.into_inner().scores,
                // One id the batch cannot score fails it: score this chunk
                // one by one, skipping (and listing) what cannot be scored.
                Err(status) if skippable(&remote(status.clone())) => {
                    one_by_one(chunk, &mut skipped, |id| {
                        let mut scoring = scoring.clone();
                        async move {
                            scoring
                                .score(pb::ScoreRequest {
                                    relationship_id: id,
                                    as_of: as_of_pb,
                                    max_reasons: 1,
                                })
                                .await
                        }
                    })
                    .await?
                }
                Err(status) => return Err(remote(status)),
            };
            for s in scores {
                let seg = match scoring
                    .segment(pb::SegmentRequest {
                        relationship_id: s.relationship_id.clone(),
                        as_of: as_of_pb,
                    })
                    .await
                {
                    Ok(reply) => Some(reply.into_inner()),
                    Err(status) if skip_unknown && status.code() == tonic::Code::NotFound => {
                        continue
                    }
                    Err(status) => without_segments(remote(status))?,
                };
                write(&mut writer, s, seg, None)?;
            }
        }
    } else {
        let engine = offline_engine(store)?;
        let mut labeller = with_labels.then(|| Labeller::new(&engine)).transpose()?;
        let ids = match wanted {
            Some(ids) => ids,
            None => engine.every_id()?,
        };
        let bar = crate::progress::bar("scoring");
        bar.set_length(ids.len() as u64);
        for id in &ids {
            let s = match engine.score(id, as_of, 1) {
                Ok(s) => s,
                Err(e) => {
                    skip(&mut skipped, id, e)?;
                    continue;
                }
            };
            let seg = match engine.segment(&s.relationship_id, as_of) {
                Ok(seg) => Some(convert::segment_to(seg)),
                Err(e) => without_segments(e)?,
            };
            let labels = labeller.as_mut().map(|l| l.labels(&s)).transpose()?;
            write(&mut writer, convert::score_to(s), seg, labels)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    writer.flush()?;
    println!("wrote {written} scores to {}", out.display());
    if written == 0 && ids.is_none() {
        println!(
            "the data directory holds no relationships to score: a model trained on a purchase log scores its customers once they are loaded with `rapport ingest --spec SPEC` (the log read as training read it)"
        );
    }
    print_skipped(&skipped);
    Ok(())
}

/// `--as-of` as Unix seconds or a date.
fn parse_as_of(as_of: Option<&str>) -> Result<Option<crate::time::Timestamp>> {
    as_of
        .map(|t| {
            t.parse::<i64>()
                .or_else(|_| crate::time::parse_date("--as-of", t))
        })
        .transpose()
}

/// The ids of an `--ids` file, one per line.
fn read_ids(path: Option<&Path>) -> Result<Option<Vec<String>>> {
    path.map(|p| {
        read(p).map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
    })
    .transpose()
}

fn csv_out(out: &Path) -> Result<csv::Writer<std::fs::File>> {
    csv::Writer::from_path(out).map_err(|e| Error::BadInput {
        path: out.display().to_string(),
        reason: e.to_string(),
    })
}

fn print_skipped(skipped: &[String]) {
    if !skipped.is_empty() {
        println!(
            "skipped {} ids that are unknown or did not exist at --as-of: {}",
            skipped.len(),
            skipped
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
                + if skipped.len() > 20 { ", ..." } else { "" }
        );
    }
}

/// An action type as the CLI writes it: `cross-sell`, `retain`, ...
fn action_name(action_type: i32) -> String {
    pb::ActionType::try_from(action_type)
        .map(|t| {
            t.as_str_name()
                .trim_start_matches("ACTION_TYPE_")
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .unwrap_or_default()
}

/// What `rapport recommend` asks for beside its ids.
pub struct RecommendArgs<'a> {
    pub ids: Option<&'a Path>,
    pub as_of: Option<&'a str>,
    /// Actions per relationship, as RecommendRequest's max_actions.
    pub max_actions: u32,
    /// The retention economics offline (with a server, the server's own apply).
    pub policy: Option<&'a Path>,
}

/// Next best actions of every relationship (or those `--ids` names) to CSV:
/// one row per action, ranked by expected net value within its relationship.
///
/// # Errors
/// `BadInput` for the files, `InvalidArgument` for the options, as
/// Recommend for the rest; ids unknown or not existing at `--as-of` are
/// skipped and listed.
pub async fn recommend(
    store: &StoreArgs,
    out: &Path,
    args: &RecommendArgs<'_>,
    server: Option<&Remote>,
) -> Result<()> {
    if args.policy.is_some() && server.is_some() {
        return Err(Error::invalid(
            "--policy",
            "a server recommends with its own policy (serve --policy); leave --policy out with --server",
        ));
    }
    if args.max_actions > crate::engine::MAX_ACTIONS {
        return Err(Error::invalid(
            "--max-actions",
            format!("at most {}", crate::engine::MAX_ACTIONS),
        ));
    }
    let as_of = parse_as_of(args.as_of)?;
    let as_of_pb = as_of.map(convert::timestamp_to);
    let wanted = read_ids(args.ids)?;
    let mut writer = csv_out(out)?;
    writer
        .write_record([
            "relationship_id",
            "rank",
            "action",
            "product_id",
            "expected_net_value",
            "cost",
            "probability",
            "reason",
            "model_version",
            "as_of",
        ])
        .map_err(|e| Error::Io(e.into()))?;
    let mut relationships = 0usize;
    let mut rows = 0usize;
    let mut write =
        |writer: &mut csv::Writer<std::fs::File>, r: pb::RecommendResponse| -> Result<()> {
            let as_of = r
                .as_of
                .as_ref()
                .map(|t| crate::time::format_datetime(t.seconds))
                .unwrap_or_default();
            for (rank, action) in r.actions.into_iter().enumerate() {
                writer
                    .write_record([
                        r.relationship_id.clone(),
                        (rank + 1).to_string(),
                        action_name(action.r#type),
                        action.product_id,
                        action.expected_net_value.to_string(),
                        action.cost.to_string(),
                        action.probability.to_string(),
                        action.reason,
                        r.model_version.to_string(),
                        as_of.clone(),
                    ])
                    .map_err(|e| Error::Io(e.into()))?;
                rows += 1;
            }
            relationships += 1;
            Ok(())
        };
    let mut skipped: Vec<String> = Vec::new();
    if let Some(server) = server {
        let channel = server.connect().await?;
        let mut scoring = pb::scoring_client::ScoringClient::new(channel.clone());
        let ids = match wanted {
            Some(ids) => ids,
            None => every_id(channel).await?,
        };
        for chunk in ids.chunks(1_000) {
            let batch = scoring
                .recommend_batch(pb::RecommendBatchRequest {
                    relationship_ids: chunk.to_vec(),
                    as_of: as_of_pb,
                    max_actions: args.max_actions,
                    skip_unknown: true,
                    ..Default::default()
                })
                .await;
            let answers = match batch {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    skipped.extend(reply.unknown_ids);
                    reply.recommendations
                }
                // An id that did not exist at --as-of fails the batch: this
                // chunk one by one, skipping (and listing) what cannot be answered.
                Err(status) if skippable(&remote(status.clone())) => {
                    let max_actions = args.max_actions;
                    one_by_one(chunk, &mut skipped, |id| {
                        let mut scoring = scoring.clone();
                        async move {
                            scoring
                                .recommend(pb::RecommendRequest {
                                    relationship_id: id,
                                    as_of: as_of_pb,
                                    max_actions,
                                    ..Default::default()
                                })
                                .await
                        }
                    })
                    .await?
                }
                Err(status) => return Err(remote(status)),
            };
            for answer in answers {
                write(&mut writer, answer)?;
            }
        }
    } else {
        let policy = match args.policy {
            Some(p) => Policy::parse(&p.display().to_string(), &read(p)?)?,
            None => Policy::default(),
        };
        let engine = offline_engine_with(store, policy)?;
        let ids = match wanted {
            Some(ids) => ids,
            None => engine.every_id()?,
        };
        let bar = crate::progress::bar("recommending");
        bar.set_length(ids.len() as u64);
        for id in &ids {
            let request = crate::engine::RecommendRequest {
                relationship_id: id.clone(),
                as_of,
                max_actions: args.max_actions,
                exclude_products: Vec::new(),
                exclude_types: Vec::new(),
            };
            match engine.recommend(&request) {
                Ok(answer) => write(&mut writer, convert::recommend_to(answer))?,
                Err(e) => skip(&mut skipped, id, e)?,
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    writer.flush()?;
    println!(
        "wrote {rows} actions for {relationships} relationships to {}",
        out.display()
    );
    print_skipped(&skipped);
    Ok(())
}

/// What `score --with-labels` writes beside a score: whether the version
/// that answered held the relationship out of its training, and what
/// happened, as that version's training defines it (`model::labels`).
#[derive(Debug, Default)]
struct Labels {
    holdout: Option<bool>,
    /// Churned within the score's churn horizon (a table: its label column);
    /// `None` where that is not known.
    churned: Option<bool>,
    /// Spend within the value horizon (a table: its value column).
    value: Option<f64>,
}

/// Reads the labels of scored relationships from the store the engine serves.
struct Labeller<'a> {
    engine: &'a Engine,
    /// Per version that answered: its model, and a table's labels by id
    /// (empty for other versions).
    versions: HashMap<u64, (Arc<LoadedModel>, HashMap<String, TableLabel>)>,
    data_end: Option<crate::time::Timestamp>,
}

impl<'a> Labeller<'a> {
    fn new(engine: &'a Engine) -> Result<Labeller<'a>> {
        Ok(Labeller {
            engine,
            versions: HashMap::new(),
            data_end: engine.store().latest_event()?,
        })
    }

    /// The active model of `version` (offline, the active set never
    /// changes) and its table labels, read once.
    fn version(
        &mut self,
        version: u64,
    ) -> Result<&(Arc<LoadedModel>, HashMap<String, TableLabel>)> {
        if !self.versions.contains_key(&version) {
            let model = self
                .engine
                .models()
                .active()
                .find(|(_, m)| m.version() == version)
                .map(|(_, m)| Arc::clone(m))
                .ok_or_else(|| Error::not_found("active model version", version.to_string()))?;
            let mut table = HashMap::new();
            for (name, bytes) in self.engine.store().model_artifacts(version)? {
                if name == crate::model::bundle::TABLE_LABELS_ARTIFACT {
                    for label in crate::model::bundle::decode_table_labels(version, &bytes)? {
                        table.insert(label.id.clone(), label);
                    }
                }
            }
            self.versions.insert(version, (model, table));
        }
        Ok(&self.versions[&version])
    }

    fn labels(&mut self, score: &crate::engine::ScoreOutput) -> Result<Labels> {
        let id = &score.relationship_id;
        let (engine, data_end) = (self.engine, self.data_end);
        let (model, table) = self.version(score.model_version)?;
        if let Some(label) = table.get(id) {
            return Ok(Labels {
                holdout: Some(label.holdout),
                churned: Some(label.churned),
                value: label.value,
            });
        }
        let spec = &model.bundle.spec;
        if matches!(spec.source, crate::model::spec::DataSource::Table(_)) {
            // A table version answering for a book relationship: the table's
            // labels say nothing about it.
            return Ok(Labels::default());
        }
        let holdout = Some(crate::model::labels::in_holdout(
            id,
            spec.seed,
            spec.holdout_fraction,
        ));
        let store = engine.store();
        let (Some(relationship), Some(data_end)) = (store.relationship(id)?, data_end) else {
            return Ok(Labels {
                holdout,
                ..Labels::default()
            });
        };
        let cutoff = score.as_of;
        let events = store.events(id, None)?;
        let split = events.partition_point(|e| e.at <= cutoff);
        let before = crate::features::Aggregates::from_events(&events[..split]);
        let seen = crate::model::labels::observe(
            &relationship,
            &before,
            &events[split..],
            cutoff,
            data_end,
            spec,
        );
        Ok(Labels {
            holdout,
            churned: seen.churned_within(f64::from(spec.churn.horizon_days)),
            value: seen.value(),
        })
    }
}

/// Every relationship id the server's score index holds, in id order, read
/// a page of 10,000 at a time from one snapshot.
async fn every_id(channel: Conn) -> Result<Vec<String>> {
    let mut book = pb::book_client::BookClient::new(channel);
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = book
            .query_relationships(pb::QueryRelationshipsRequest {
                filter: None,
                order_by: pb::BookOrder::Unspecified as i32,
                ascending: false,
                page_size: 10_000,
                page_token,
            })
            .await
            .map_err(remote)?
            .into_inner();
        ids.extend(page.rows.into_iter().map(|r| r.relationship_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Whether an export skips a relationship that fails with `e`: an unknown
/// id, or one that did not exist yet at the as-of time.
fn skippable(e: &Error) -> bool {
    match e {
        Error::NotFound { .. } => true,
        Error::InvalidArgument { field, .. } => field == "as_of",
        Error::Remote { code, message, .. } => {
            *code == tonic::Code::NotFound as i32
                || (*code == tonic::Code::InvalidArgument as i32
                    && message.starts_with("invalid as_of"))
        }
        _ => false,
    }
}

/// Answers `ids` one call each, after their batch failed on one of them:
/// the ids that cannot be answered are skipped and listed
/// ([`skippable`]), any other error stops the export.
async fn one_by_one<T, Call, Reply>(
    ids: &[String],
    skipped: &mut Vec<String>,
    mut call: Call,
) -> Result<Vec<T>>
where
    Call: FnMut(String) -> Reply,
    Reply: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let mut answers = Vec::with_capacity(ids.len());
    for id in ids {
        match call(id.clone()).await {
            Ok(reply) => answers.push(reply.into_inner()),
            Err(status) => skip(skipped, id, remote(status))?,
        }
    }
    Ok(answers)
}

/// Lists `id` as skipped when `e` allows it; any other error stops the export.
fn skip(skipped: &mut Vec<String>, id: &str, e: Error) -> Result<()> {
    if skippable(&e) {
        skipped.push(id.to_string());
        Ok(())
    } else {
        Err(e)
    }
}

/// A CSV cell: empty where the field does not apply to the model.
fn cell<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// `None` when `e` says the model has no segment model (a table model):
/// its rows then leave the segment columns empty. Any other error stops the
/// export, rather than becoming empty cells.
fn without_segments<T>(e: Error) -> Result<Option<T>> {
    match &e {
        Error::FailedPrecondition { reason } if reason.contains("no segment model") => Ok(None),
        Error::Remote { message, .. } if message.contains("no segment model") => Ok(None),
        _ => Err(e),
    }
}

/// Draws a version's report from what its bundle kept of the holdout.
///
/// # Errors
/// `Io` when the file cannot be written.
pub fn write_bundle_report(
    bundle: &crate::model::ModelBundle,
    compare: Option<&crate::model::ModelSummary>,
    path: &Path,
) -> Result<()> {
    use crate::training::report::{
        ClassifierReport, ComparisonData, RegressionReport, ReportData, SegmentReport, TimingReport,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let eval = bundle.report.clone().unwrap_or_default();
    let data = ReportData {
        title: format!("Rapport model v{} — {}", bundle.version, bundle.spec.name),
        version: bundle.version,
        spec_name: bundle.spec.name.clone(),
        source: bundle.source.clone(),
        trained_at: bundle.trained_at,
        cutoff: bundle.cutoff,
        train_rows: bundle.training_rows,
        holdout_rows: eval.holdout_rows,
        data_fingerprint: bundle.fingerprint.clone(),
        metrics: bundle
            .metrics
            .iter()
            .map(|m| (m.name.clone(), m.value))
            .collect(),
        churn: Some(ClassifierReport {
            learner: eval.learner.clone(),
            candidates: eval.candidates.clone(),
            calibration: eval.calibration.clone(),
            holdout_scores: eval.churn_scores.clone(),
            holdout_labels: eval.churn_labels.clone(),
            importance: eval.importance.clone(),
        }),
        timing: match bundle.churn.target {
            crate::model::ChurnTarget::Label => vec![],
            crate::model::ChurnTarget::Survival { .. } => bundle
                .churn
                .intervals
                .iter()
                .filter_map(|h| {
                    let metric =
                        |name: &str| bundle.metric(&format!("churn.timing.{}d.{name}", h.to_days));
                    metric("roc_auc").map(|roc_auc| TimingReport {
                        days: h.to_days,
                        roc_auc,
                        brier: metric("brier").unwrap_or(f64::NAN),
                        ece: metric("ece").unwrap_or(f64::NAN),
                        calibration: h.calibrator.name().to_string(),
                    })
                })
                .collect(),
        },
        value: bundle.value.as_ref().map(|v| RegressionReport {
            horizon_days: v.horizon_days,
            predicted: eval.value_predicted.clone(),
            actual: eval.value_actual.clone(),
        }),
        segments: bundle
            .segments
            .iter()
            .flat_map(|s| {
                s.clusters.iter().enumerate().map(|(i, c)| SegmentReport {
                    id: i as u32,
                    size: c.size,
                    persona: c.persona.clone(),
                    means: s
                        .names
                        .iter()
                        .cloned()
                        .zip(c.means.iter().map(|m| m.unwrap_or(f64::NAN)))
                        .collect(),
                })
            })
            .collect(),
        notes: bundle.notes.clone(),
        compare: compare.map(|c| ComparisonData {
            version: c.version,
            spec_name: c.spec_name.clone(),
            metrics: c
                .metrics
                .iter()
                .map(|m| (m.name.clone(), m.value))
                .collect(),
        }),
    };
    crate::training::report::write_html(&data, path)
}

/// What `rapport campaign` plans, as the command line gives it.
pub struct CampaignArgs {
    pub budget: Option<f64>,
    pub max_contacts: Option<u64>,
    pub actions: Vec<String>,
    pub opt_out: Option<String>,
    pub kinds: Vec<String>,
    pub segments: Vec<String>,
    pub stages: Vec<String>,
    pub tiers: Vec<String>,
    pub as_of: Option<String>,
}

impl CampaignArgs {
    /// # Errors
    /// `InvalidArgument` naming the option.
    fn request(&self) -> Result<pb::PlanCampaignRequest> {
        let actions = self
            .actions
            .iter()
            .map(|a| {
                let t = match a.trim().to_ascii_lowercase().replace('_', "-").as_str() {
                    "retain" | "retention" => pb::ActionType::Retain,
                    "cross-sell" => pb::ActionType::CrossSell,
                    "up-sell" => pb::ActionType::UpSell,
                    "win-back" => pb::ActionType::WinBack,
                    "loyalty" => pb::ActionType::Loyalty,
                    other => {
                        return Err(Error::invalid(
                            "--actions",
                            format!("unknown action {other:?}; expected retain, cross-sell, up-sell, win-back or loyalty"),
                        ))
                    }
                };
                Ok(t as i32)
            })
            .collect::<Result<_>>()?;
        let kinds = self
            .kinds
            .iter()
            .map(|k| {
                crate::domain::RelationshipKind::parse("--kind", k)
                    .map(|k| convert::kind_to(k) as i32)
            })
            .collect::<Result<_>>()?;
        let stages = self
            .stages
            .iter()
            .map(|s| {
                crate::engine::LifecycleStage::ALL
                    .into_iter()
                    .find(|st| st.name() == s.trim().to_ascii_lowercase().replace(' ', "_"))
                    .map(|st| convert::stage_to(st) as i32)
                    .ok_or_else(|| {
                        Error::invalid(
                            "--stage",
                            format!("unknown stage {s:?}; expected prospect, new, active, at_risk, lapsed or won_back"),
                        )
                    })
            })
            .collect::<Result<_>>()?;
        let as_of = self
            .as_of
            .as_deref()
            .map(|t| {
                t.parse::<i64>()
                    .or_else(|_| crate::time::parse_date("--as-of", t))
            })
            .transpose()?;
        Ok(pb::PlanCampaignRequest {
            budget: self.budget.unwrap_or(0.0),
            max_contacts: self.max_contacts.unwrap_or(0),
            action_types: actions,
            opt_out_attribute: self.opt_out.clone().unwrap_or_default(),
            filter: Some(pb::BookFilter {
                kinds,
                rfm_segments: self.segments.clone(),
                stages,
                value_tiers: self.tiers.clone(),
                ..Default::default()
            }),
            as_of: as_of.map(convert::timestamp_to),
        })
    }
}

/// Plans a campaign (offline on the store, or inside a running server) and
/// writes its rows to a CSV file, best first; prints the totals.
///
/// # Errors
/// As `PlanCampaign`; `BadInput` when the file cannot be written.
pub async fn campaign(
    store: &StoreArgs,
    out: &Path,
    args: &CampaignArgs,
    server: Option<&Remote>,
) -> Result<()> {
    let request = args.request()?;
    let messages = if let Some(server) = server {
        let mut book = pb::book_client::BookClient::new(server.connect().await?);
        let mut stream = book
            .plan_campaign(request)
            .await
            .map_err(remote)?
            .into_inner();
        let mut messages = Vec::new();
        while let Some(message) = stream.message().await.map_err(remote)? {
            messages.push(message);
        }
        messages
    } else {
        let request = api::book::campaign_from(request)?;
        let engine = offline_engine(store)?;
        let plan = tokio::task::spawn_blocking(move || {
            crate::book::Book::offline(engine).and_then(|book| book.plan(&request))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        api::book::plan_to(plan)
    };
    let mut writer = csv_out(out)?;
    writer
        .write_record([
            "relationship_id",
            "action",
            "product_id",
            "expected_net_value",
            "cost",
            "probability",
            "reason",
            "plan_reason",
        ])
        .map_err(|e| Error::Io(e.into()))?;
    let mut totals = None;
    let mut written = 0usize;
    for message in messages {
        if message.totals.is_some() {
            totals = message.totals;
        }
        for row in message.rows {
            let action = row.action.unwrap_or_default();
            let kind = action_name(action.r#type);
            writer
                .write_record([
                    row.relationship_id,
                    kind,
                    action.product_id,
                    action.expected_net_value.to_string(),
                    action.cost.to_string(),
                    action.probability.to_string(),
                    action.reason,
                    row.plan_reason,
                ])
                .map_err(|e| Error::Io(e.into()))?;
            written += 1;
        }
    }
    writer.flush()?;
    let t = totals.unwrap_or_default();
    println!(
        "planned {} contacts ({written} rows in {}): cost {}, expected net value {} (gross {}, return on cost {:.2}); no plan within the limits beats {}; the simple greedy plan: {}",
        t.contacts,
        out.display(),
        crate::numbers::fmt_num(t.cost),
        crate::numbers::fmt_num(t.expected_net_value),
        crate::numbers::fmt_num(t.expected_gross_value),
        t.return_on_cost,
        crate::numbers::fmt_num(t.upper_bound),
        crate::numbers::fmt_num(t.greedy_net_value),
    );
    println!(
        "considered {} relationships: {} opted out, {} without an action that pays; model version {}",
        t.considered, t.opted_out, t.without_paying_action, t.model_version
    );
    for (action, n) in &t.contacts_by_action {
        println!("  {action:<28} {n:>8}");
    }
    Ok(())
}
