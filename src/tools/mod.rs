//! Tools that drive a running Rapport from outside: the load generator.

pub mod bench;
