//! Rapport: relationship scoring over gRPC (churn and its timing, value, value
//! at risk, reasons; segments; next best actions), with linfa models and a
//! sled store in one process.
//!
//! # Layout
//!
//! Dependencies point down this list, never up:
//!
//! - `server`: `run(listener, options, shutdown)`: health, reflection, start-up
//! - `listen`: accepting connections (accept back-off, header timeout)
//! - `api`: generated types, one handler file per service, conversions, `Status` mapping
//! - `book`: the score index and what it answers (queries, summaries, campaign plans), erasure
//! - `engine`: Score, Segment, Recommend and drift over the store and the model router
//! - `training`: models from the store, a table or an event log; the demo book; the report
//! - `ingest`: CSV files into the store
//! - `model`: learners, churn, value, segments, baskets, the bundle, the router by kind
//! - `features`: the event fold, snapshots and the feature schema (pure)
//! - `store`: the storage traits and their backends (`store::sled`)
//! - `domain`, `error`, `time`, `numbers`, `progress`: shared vocabulary and helpers
//!
//! `cli` (what the subcommands do) and `tools` (the load generator) sit on top.

pub mod api;
pub mod book;
pub mod cli;
pub mod domain;
pub mod engine;
pub mod error;
pub mod features;
pub mod ingest;
pub mod listen;
pub mod model;
pub mod numbers;
pub mod progress;
pub mod server;
pub mod store;
pub mod time;
pub mod tools;
pub mod training;

/// The store as the serving and training paths hold it: any backend, folding
/// [`features::Aggregates`].
pub type SharedStore = std::sync::Arc<dyn store::Store<features::Aggregates>>;
