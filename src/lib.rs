//! Rapport: relationship scoring over gRPC (churn and its timing, value, value
//! at risk, reasons; segments; next best actions), with linfa models and a
//! sled store in one process.
//!
//! # Layout
//! - `server`: `run(listener, options, shutdown)`, health, reflection, start-up bootstrap
//! - `grpc`: generated types, thin handlers, proto <-> core conversions, `Status` mapping
//! - `engine`: Score / Segment / Recommend / drift over the store and the active model
//! - `commit`: group commit of event writes (one writer thread, one flush per group)
//! - `store`: sled trees, key layout and encodings (the only module touching sled)
//! - `cache`: the store's bounded maps of decoded values
//! - `features`: the event fold (`Aggregates`) and the learned feature schema
//! - `model`: churn (logistic, boosting, calibration), value, segments, baskets, metrics, specs
//! - `train`, `tabular`, `sources`: training from the store, a purchase log or a snapshot table
//! - `ingest`: CSV ingest; `demo`: the deterministic demo book
//! - `policy`: Recommend economics; `report`: the HTML training report
//! - `progress`: spinners and bars on stderr for the long training steps
//! - `cli`: what the subcommands do; `bench`: the load generator against the Echo floor
//! - `domain`, `error`: shared types, validation and the one error enum

pub mod bench;
pub mod cache;
pub mod cli;
pub mod commit;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod error;
pub mod features;
pub mod grpc;
pub mod ingest;
pub mod model;
pub mod policy;
pub mod progress;
pub mod report;
pub mod server;
pub mod sources;
pub mod store;
pub mod tabular;
pub mod train;
