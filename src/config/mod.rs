//! Settings shared by every daemon: the seed's environment variables, the config file, flags.
//!
//! Precedence is flags > environment > `config/storage.yaml` > built-in defaults. clap handles
//! the first two and the defaults; [`CommonConfig::resolve`] puts the file in between by looking
//! at where clap took each value from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgAction;
use clap::parser::ValueSource;
use vintagelake_storage::config::{RetentionPolicy, TierConfig};

pub use file::{ConfigError, FileConfig, StorageType};

mod file;

/// The seed's shared settings.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonConfig {
    /// YAML configuration file (the seed's `storage.yaml` shape, with tiers and retention).
    /// A missing file at the default path is not an error; a missing file that was asked for is.
    #[arg(long = "config", env = "VINTAGELAKE_CONFIG", default_value = "config/storage.yaml")]
    pub config_file: PathBuf,

    /// Directory for the warehouse, the SQLite catalog and local state.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Storage backend: iceberg (V2, default), parquet (V1) or memory (nothing persists).
    #[arg(long, env = "STORAGE_TYPE", default_value = "iceberg")]
    pub storage_type: StorageType,

    /// Iceberg SQL catalog URL (`sqlite://…` or `postgres://…`). Default: SQLite under DATA_DIR.
    #[arg(long, env = "CATALOG_URL")]
    pub catalog_url: Option<String>,

    /// Kafka bootstrap servers (host:port,…). `serve` provisions a local broker when unset.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub kafka_bootstrap_servers: Option<String>,

    /// Port of the Arrow Flight query service.
    #[arg(long, env = "FLIGHT_SERVER_PORT", default_value_t = 8080)]
    pub flight_server_port: u16,

    /// Address the HTTP endpoints (health, readiness, metrics) listen on; only this machine by
    /// default.
    #[arg(long, env = "HTTP_HOST", default_value = "127.0.0.1")]
    pub http_host: std::net::IpAddr,

    /// Port of the HTTP endpoints /health, /ready and /metrics.
    #[arg(long, env = "HTTP_PORT", default_value_t = 3001)]
    pub http_port: u16,

    /// Size of the query service's hot-data cache, in MiB (0 disables it).
    #[arg(long, env = "CACHE_SIZE_MB", default_value_t = 1024)]
    pub cache_size_mb: u64,

    /// Rows per Arrow record batch (ingest, scans, Flight streams).
    #[arg(long, env = "BATCH_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Upper bound on concurrent file reads/writes and commits per daemon.
    #[arg(long, env = "MAX_CONCURRENT_OPERATIONS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_operations: u32,

    /// Serve Prometheus metrics on /metrics.
    #[arg(long, env = "METRICS_ENABLED", default_value_t = true, action = ArgAction::Set)]
    pub metrics_enabled: bool,

    /// How often daemons re-check their dependencies for /ready (e.g. 30s, 1m).
    #[arg(long, env = "HEALTH_CHECK_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub health_check_interval: Duration,

    /// Master keys for encryption at rest of the data files: a file of `key-id:base64-key`
    /// lines, 16 or 32 bytes each (docs/security.md). Unset: files are written in plaintext.
    #[arg(long, env = "ENCRYPTION_KEYS_FILE")]
    pub encryption_keys_file: Option<PathBuf>,

    /// Master keys given inline, `key-id:base64-key,…` (instead of a file; the environment
    /// keeps them out of process listings).
    #[arg(long, env = "ENCRYPTION_KEYS", hide_env_values = true)]
    pub encryption_keys: Option<String>,

    /// The master key new files are written under (default: the last key listed). The others
    /// still decrypt the files written under them until the compactor has rewritten those.
    #[arg(long, env = "ENCRYPTION_KEY_ID")]
    pub encryption_key_id: Option<String>,

    /// Storage tiers, hottest first (config file only).
    #[arg(skip)]
    pub tiers: Vec<TierConfig>,

    /// Retention policy (config file only).
    #[arg(skip)]
    pub retention: RetentionPolicy,
    /// Per-principal grants of the Flight service (the config file's `security.grants`).
    #[arg(skip)]
    pub grants: Option<std::collections::BTreeMap<String, vintagelake_query::grants::Grant>>,
}

impl CommonConfig {
    /// Fills every value that clap took from its built-in default with the config file's value.
    pub fn resolve(mut self, matches: &clap::ArgMatches) -> Result<Self, ConfigError> {
        let defaulted = |id: &str| matches!(matches.value_source(id), None | Some(ValueSource::DefaultValue));
        let file_requested = !defaulted("config_file");
        let file = if file_requested || self.config_file.exists() {
            FileConfig::load(&self.config_file)?
        } else {
            FileConfig::default()
        };
        let s = file.storage;
        fn set<T>(apply: bool, slot: &mut T, value: Option<T>) {
            if let (true, Some(v)) = (apply, value) {
                *slot = v;
            }
        }
        set(defaulted("data_dir"), &mut self.data_dir, s.data_dir);
        set(defaulted("storage_type"), &mut self.storage_type, s.storage_type);
        set(defaulted("catalog_url"), &mut self.catalog_url, s.catalog.url.map(Some));
        set(
            defaulted("kafka_bootstrap_servers"),
            &mut self.kafka_bootstrap_servers,
            file.kafka.bootstrap_servers.map(Some),
        );
        set(defaulted("flight_server_port"), &mut self.flight_server_port, file.server.flight_port);
        set(defaulted("http_port"), &mut self.http_port, file.server.http_port);
        set(defaulted("cache_size_mb"), &mut self.cache_size_mb, s.cache.size_mb);
        set(defaulted("batch_size"), &mut self.batch_size, s.performance.batch_size);
        set(defaulted("max_concurrent_operations"), &mut self.max_concurrent_operations, s.performance.max_concurrent);
        set(defaulted("metrics_enabled"), &mut self.metrics_enabled, s.monitoring.metrics_enabled);
        set(defaulted("health_check_interval"), &mut self.health_check_interval, s.monitoring.health_check_interval);
        self.tiers = s.tiers;
        self.retention = s.retention.unwrap_or_default();
        self.grants = file.security.grants;
        Ok(self)
    }

    /// The catalog URL in effect: the configured one, else a SQLite file under `data_dir`.
    pub fn effective_catalog_url(&self) -> String {
        self.catalog_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("catalog.sqlite").display()))
    }

    /// Encryption at rest from the key settings (`None` when no keys are given); the error names
    /// the setting at fault.
    pub fn encryption(&self) -> Result<Option<vintagelake_storage::crypto::Encryption>, String> {
        use vintagelake_storage::crypto::{Encryption, LocalKeys};
        let keys = match (&self.encryption_keys_file, &self.encryption_keys) {
            (Some(_), Some(_)) => {
                return Err("ENCRYPTION_KEYS_FILE and ENCRYPTION_KEYS are both set: give the keys one way".into());
            }
            (Some(path), None) => LocalKeys::from_file(path, self.encryption_key_id.as_deref())
                .map_err(|e| format!("ENCRYPTION_KEYS_FILE: {e}"))?,
            (None, Some(text)) => LocalKeys::parse(text, self.encryption_key_id.as_deref())
                .map_err(|e| format!("ENCRYPTION_KEYS: {e}"))?,
            (None, None) if self.encryption_key_id.is_some() => {
                return Err("ENCRYPTION_KEY_ID: set, but no keys are given (ENCRYPTION_KEYS_FILE)".into());
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Encryption::new(std::sync::Arc::new(keys))))
    }

    /// What every daemon takes from these settings.
    pub fn daemon(&self) -> vintagelake_runtime::DaemonSettings {
        vintagelake_runtime::DaemonSettings {
            data_dir: self.data_dir.clone(),
            concurrency: self.max_concurrent_operations as usize,
            health_check_interval: self.health_check_interval,
        }
    }

    pub fn http_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.http_host, self.http_port)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_file
    }
}
