//! The gRPC layer: generated types, thin handlers that validate, convert to
//! core types, call the [`Engine`] (or training) and convert back; one file
//! per service. Status codes come from one mapping (`status`).

pub mod book;
pub mod convert;
mod echo;
mod ingest;
mod models;
mod scoring;
mod status;

pub use status::remote;

use crate::book::Book;
use crate::engine::Engine;

/// Generated protobuf types and service stubs for `rapport.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("rapport.v1");

    /// The encoded descriptor set of `proto/`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/rapport_descriptor.bin"));
}

/// The service names health reports on, besides the overall "".
pub const SERVICE_NAMES: [&str; 4] = [
    "rapport.v1.Ingest",
    "rapport.v1.Scoring",
    "rapport.v1.Book",
    "rapport.v1.Models",
];

/// Implements every Rapport service over one engine handle and the score
/// index over it.
#[derive(Clone)]
pub struct RapportService {
    engine: Engine,
    book: Book,
}

impl RapportService {
    pub fn new(book: Book) -> Self {
        RapportService {
            engine: book.engine().clone(),
            book,
        }
    }
}
