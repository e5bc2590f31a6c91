//! Compaction daemon: bin-packs small files, closes real-time periods, expires snapshots and
//! removes orphan files.

pub mod config;

pub use config::CompactorConfig;
