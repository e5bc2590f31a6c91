//! Compaction daemon: bin-packs small files, closes real-time periods, expires snapshots and
//! removes orphan files.

pub mod compact;
pub mod config;
pub mod daemon;
pub mod metrics;
pub mod rekey;
pub mod rewrite;

pub use compact::{CompactOptions, CompactionReport, compact_once};
pub use config::CompactorConfig;
