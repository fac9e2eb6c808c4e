//! The `rapport` command line: parses arguments and calls the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rapport::demo::DemoConfig;
use rapport::model::ModelSpec;
use rapport::policy::Policy;
use rapport::{cli, server};

#[derive(Parser)]
#[command(
    name = "rapport",
    version,
    about = "Relationship scoring over gRPC: churn, value, segments, next best actions"
)]
struct Cli {
    /// The sled data directory (one process at a time).
    #[arg(long, env = "RAPPORT_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC; an empty data directory gets the demo book and a trained model first.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "RAPPORT_LISTEN", default_value = "127.0.0.1:50051")]
        listen: String,
        /// Retention economics for Recommend (default: the built-in models/policy.toml).
        #[arg(long, env = "RAPPORT_POLICY")]
        policy: Option<PathBuf>,
        /// Spec for start-up training (default: the built-in models/demo.toml).
        #[arg(long, env = "RAPPORT_SPEC")]
        spec: Option<PathBuf>,
        /// Relationships in the generated demo book.
        #[arg(long, env = "RAPPORT_DEMO_SIZE", default_value_t = 20_000)]
        demo_size: usize,
        /// Seed of the demo book: the same seed and day give the same book.
        #[arg(long, env = "RAPPORT_DEMO_SEED", default_value_t = 42)]
        demo_seed: u64,
        /// Do not generate the demo book into an empty data directory.
        #[arg(long, env = "RAPPORT_NO_DEMO")]
        no_demo: bool,
        /// Seconds shutdown waits for in-flight calls before closing connections.
        #[arg(long, env = "RAPPORT_DRAIN_SECONDS", default_value_t = 10)]
        drain_seconds: u64,
    },
    /// Load relationships, events and products from CSV files (see README).
    Ingest {
        #[arg(long)]
        relationships: Option<PathBuf>,
        #[arg(long)]
        events: Option<PathBuf>,
        #[arg(long)]
        products: Option<PathBuf>,
        /// Skip malformed rows (reported with their line) instead of rejecting the file.
        #[arg(long)]
        skip_bad_rows: bool,
        /// Reject events of unknown relationships instead of creating them.
        #[arg(long)]
        no_create_missing: bool,
    },
    /// Train a new model version from the store with a spec.
    Train {
        /// The spec file (default: the built-in models/demo.toml).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Make the new version active.
        #[arg(long)]
        activate: bool,
    },
    /// Model versions.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List versions with their holdout metrics.
    List,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::init_tracing();
    let args = Cli::parse();
    let result = match args.command {
        Command::Serve {
            listen,
            policy,
            spec,
            demo_size,
            demo_seed,
            no_demo,
            drain_seconds,
        } => {
            async {
                let policy = match policy {
                    Some(p) => Policy::parse(&p.display().to_string(), &cli::read(&p)?)?,
                    None => Policy::default(),
                };
                let spec = cli::load_spec(spec.as_deref())?;
                let demo = (!no_demo).then(|| DemoConfig {
                    seed: demo_seed,
                    relationships: demo_size,
                    ..DemoConfig::new(cli::today())
                });
                let listener = tokio::net::TcpListener::bind(&listen).await?;
                let options = server::ServeOptions {
                    data_dir: args.data_dir,
                    policy,
                    spec,
                    demo,
                    drain_timeout: std::time::Duration::from_secs(drain_seconds),
                };
                server::run(listener, options, cli::shutdown_signal()).await
            }
            .await
        }
        Command::Ingest {
            relationships,
            events,
            products,
            skip_bad_rows,
            no_create_missing,
        } => cli::ingest(
            &args.data_dir,
            relationships.as_deref(),
            events.as_deref(),
            products.as_deref(),
            skip_bad_rows,
            !no_create_missing,
        ),
        Command::Train { spec, activate } => cli::load_spec(spec.as_deref())
            .and_then(|spec: ModelSpec| cli::train(&args.data_dir, &spec, activate)),
        Command::Models {
            command: ModelsCommand::List,
        } => cli::list_models(&args.data_dir),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
