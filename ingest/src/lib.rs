//! Kafka → Iceberg ingest, exactly once, with a dead-letter topic; plus the local broker that
//! development, tests and `vintagelake serve` use when no Kafka is configured.

pub mod broker;
pub mod config;

pub use config::IngestConfig;
