//! The one shape of a daemon's configuration: each daemon crate has its own `clap` block
//! (`IngestConfig`, `CompactorConfig`, `TiererConfig`) and turns it into what one run needs with
//! `options(&DaemonSettings, …)`; [`DaemonSettings`] is what every daemon takes from the process's
//! shared settings (flags > environment > config file, resolved by the binary).

use std::path::PathBuf;
use std::time::Duration;

/// What every daemon takes from the process's shared settings, whatever its job.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Warehouse, catalog and local state (audit trail, pins).
    pub data_dir: PathBuf,
    /// Upper bound on concurrent file reads/writes and commits.
    pub concurrency: usize,
    /// How often dependencies are re-checked for `/ready`.
    pub health_check_interval: Duration,
}
