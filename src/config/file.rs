//! The configuration file (`config/storage.yaml`, the seed's shape plus tiers and retention),
//! parsed strictly: an unknown key, a wrong type or an impossible policy fails naming the field.
//! Tier entries and the retention policy are the storage core's types, checked by their own
//! `validate`; this file checks what spans entries (names unique, ages increasing).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vintagelake_storage::config::{RetentionPolicy, TierConfig};

/// Why a configuration file was refused. `field` is a dotted path such as `storage.tiers[1].path`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: field `{field}`: {reason}")]
    Invalid { path: PathBuf, field: String, reason: String },
}

/// The whole file. Every section and key is optional; what is absent falls back to env/defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub kafka: KafkaSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub security: SecuritySection,
}

/// Who may read what over Flight (see `vintagelake_query::grants`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// Principal (a token's name, a user) → its grant. Absent: everyone reads everything.
    pub grants: Option<BTreeMap<String, vintagelake_query::grants::Grant>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    #[serde(rename = "type")]
    pub storage_type: Option<StorageType>,
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub catalog: CatalogSection,
    #[serde(default)]
    pub cache: CacheSection,
    #[serde(default)]
    pub performance: PerformanceSection,
    #[serde(default)]
    pub monitoring: MonitoringSection,
    /// Ordered hottest first.
    #[serde(default)]
    pub tiers: Vec<TierConfig>,
    pub retention: Option<RetentionPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSection {
    /// `sqlite://…` or `postgres://…`; default: a SQLite file under `data_dir`.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    pub size_mb: Option<u64>,
    pub eviction_policy: Option<EvictionPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvictionPolicy {
    Lru,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformanceSection {
    pub batch_size: Option<u32>,
    pub max_concurrent: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSection {
    pub metrics_enabled: Option<bool>,
    #[serde(default, deserialize_with = "de_duration")]
    pub health_check_interval: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    pub bootstrap_servers: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub flight_port: Option<u16>,
    pub http_port: Option<u16>,
}

/// Which storage backend holds the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// Apache Iceberg tables (V2): the default.
    Iceberg,
    /// Plain Parquet files with a commit log (V1).
    Parquet,
    /// In memory, for tests and demos; nothing survives a restart.
    Memory,
}

impl StorageType {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::Iceberg => "iceberg",
            StorageType::Parquet => "parquet",
            StorageType::Memory => "memory",
        }
    }
}

impl std::str::FromStr for StorageType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "iceberg" => Ok(StorageType::Iceberg),
            "parquet" => Ok(StorageType::Parquet),
            "memory" => Ok(StorageType::Memory),
            other => Err(format!("unknown storage type {other:?}; expected iceberg, parquet or memory")),
        }
    }
}

impl fmt::Display for StorageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FileConfig {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and validates YAML text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid { path: path.to_owned(), field, reason };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_yaml::Deserializer::from_str(text);
        let config: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let mut reason = e.into_inner().to_string();
            // serde_yaml appends " at line L column C": keep it, it helps find the field.
            if reason.is_empty() {
                reason = "invalid value".into();
            }
            invalid(if field == "." { "$".into() } else { field }, reason)
        })?;
        config.validate().map_err(|(field, reason)| invalid(field, reason))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let s = &self.storage;
        if s.performance.batch_size == Some(0) {
            return Err(("storage.performance.batch_size".into(), "must be at least 1".into()));
        }
        if s.performance.max_concurrent == Some(0) {
            return Err(("storage.performance.max_concurrent".into(), "must be at least 1".into()));
        }
        if let Some(r) = &s.retention {
            r.validate().map_err(|(f, why)| (format!("storage.retention.{f}"), why))?;
        }
        let mut seen = BTreeMap::new();
        let mut last_age: Option<(usize, u32)> = None;
        for (i, t) in s.tiers.iter().enumerate() {
            let at = |f: &str| format!("storage.tiers[{i}].{f}");
            t.validate().map_err(|(f, why)| (at(f), why))?;
            if let Some(j) = seen.insert(t.name.clone(), i) {
                return Err((at("name"), format!("{:?} is also the name of tiers[{j}]", t.name.as_str())));
            }
            if let Some(age) = t.max_age_days {
                if let Some((j, prev)) = last_age
                    && age <= prev
                {
                    return Err((
                        at("max_age_days"),
                        format!("must be greater than tiers[{j}].max_age_days ({prev}), got {age}"),
                    ));
                }
                last_age = Some((i, age));
            }
        }
        Ok(())
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vintagelake_storage::config::TierKind;

    /// The seed's example, extended with retention: must parse as is.
    const SEED: &str = r#"
storage:
  type: "parquet"
  data_dir: "./data"
  cache:
    size_mb: 1024
    eviction_policy: "lru"
  performance:
    batch_size: 1000
    max_concurrent: 20
  monitoring:
    metrics_enabled: true
    health_check_interval: "30s"
  tiers:
    - name: "hot"
      type: "nvme"
      path: "/data/hot"
      max_age_days: 30
    - name: "warm"
      type: "ssd"
      path: "/data/warm"
      max_age_days: 365
    - name: "cold"
      type: "hdd"
      path: "/data/cold"
      max_age_days: 3650
    - name: "archive"
      type: "s3"
      endpoint: "s3.amazonaws.com"
      bucket: "econ-graph-archive"
  retention:
    hot_data_days: 30
    warm_data_days: 365
    cold_data_days: 3650
    archive_data_days: 7300
    delete_after_days: 0
"#;

    fn err(text: &str) -> (String, String) {
        match FileConfig::parse(text, Path::new("storage.yaml")).unwrap_err() {
            ConfigError::Invalid { field, reason, .. } => (field, reason),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn seed_example_parses() {
        let c = FileConfig::parse(SEED, Path::new("storage.yaml")).unwrap();
        assert_eq!(c.storage.storage_type, Some(StorageType::Parquet));
        assert_eq!(c.storage.performance.batch_size, Some(1000));
        assert_eq!(c.storage.monitoring.health_check_interval, Some(Duration::from_secs(30)));
        assert_eq!(c.storage.tiers.len(), 4);
        assert_eq!(c.storage.tiers[3].kind, TierKind::S3);
        assert_eq!(c.storage.retention.unwrap().archive_data_days, 7300);
    }

    #[test]
    fn shipped_example_parses() {
        let c = FileConfig::parse(include_str!("../../config/storage.example.yaml"), Path::new("example")).unwrap();
        assert_eq!(c.storage.tiers.len(), 4);
        assert_eq!(c.storage.retention, Some(RetentionPolicy::default()));
        assert_eq!(c.server.flight_port, Some(8080));
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(FileConfig::parse("", Path::new("x")).unwrap(), FileConfig::default());
    }

    #[test]
    fn wrong_types_and_unknown_keys_name_the_field() {
        let (f, why) = err("storage:\n  performance:\n    batch_size: lots\n");
        assert_eq!(f, "storage.performance.batch_size");
        assert!(why.contains("invalid"), "{why}");
        let (f, why) = err("storage:\n  cache:\n    sizemb: 5\n");
        assert_eq!(f, "storage.cache.sizemb");
        assert!(why.contains("unknown field `sizemb`"), "{why}");
        let (f, _) = err("storage:\n  type: cassandra\n");
        assert_eq!(f, "storage.type");
        let (f, why) = err("storage:\n  monitoring:\n    health_check_interval: soon\n");
        assert_eq!(f, "storage.monitoring.health_check_interval");
        assert!(why.contains("soon"), "{why}");
        let (f, _) = err("storage:\n  tiers:\n    - name: hot\n      type: tape\n      path: /x\n");
        assert_eq!(f, "storage.tiers[0].type");
    }

    #[test]
    fn impossible_policies_name_the_field() {
        let (f, why) = err(
            "storage:\n  retention:\n    hot_data_days: 30\n    warm_data_days: 20\n    cold_data_days: 3650\n    archive_data_days: 7300\n    delete_after_days: 0\n",
        );
        assert_eq!(f, "storage.retention.warm_data_days");
        assert!(why.contains("greater than hot_data_days"), "{why}");
        let (f, _) = err(
            "storage:\n  retention:\n    hot_data_days: 1\n    warm_data_days: 2\n    cold_data_days: 3\n    archive_data_days: 10\n    delete_after_days: 5\n",
        );
        assert_eq!(f, "storage.retention.delete_after_days");
        let (f, _) = err("storage:\n  performance:\n    batch_size: 0\n");
        assert_eq!(f, "storage.performance.batch_size");
    }

    #[test]
    fn tier_lists_are_checked() {
        let (f, _) = err("storage:\n  tiers:\n    - {name: hot, type: ssd}\n");
        assert_eq!(f, "storage.tiers[0].path");
        let (f, _) = err("storage:\n  tiers:\n    - {name: a, type: s3}\n");
        assert_eq!(f, "storage.tiers[0].bucket");
        let (f, _) = err("storage:\n  tiers:\n    - {name: a, type: s3, bucket: Bad_Bucket}\n");
        assert_eq!(f, "storage.tiers[0].bucket");
        let (f, _) =
            err("storage:\n  tiers:\n    - {name: a, type: ssd, path: /a}\n    - {name: a, type: hdd, path: /b}\n");
        assert_eq!(f, "storage.tiers[1].name");
        let (f, why) = err(
            "storage:\n  tiers:\n    - {name: a, type: ssd, path: /a, max_age_days: 30}\n    - {name: b, type: hdd, path: /b, max_age_days: 7}\n",
        );
        assert_eq!(f, "storage.tiers[1].max_age_days");
        assert!(why.contains("tiers[0]"), "{why}");
    }

    #[test]
    fn s3_tls_and_encryption_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (pem, junk) = (dir.path().join("ca.pem"), dir.path().join("junk.pem"));
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        std::fs::write(&junk, "not a certificate").unwrap();
        let tier = |extra: &str| format!("storage:\n  tiers:\n    - {{name: a, type: s3, bucket: econ{extra}}}\n");
        let ok = FileConfig::parse(
            &tier(&format!(
                ", ca_file: \"{}\", server_side_encryption: \"aws:kms\", sse_kms_key_id: k1",
                pem.display()
            )),
            Path::new("x"),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let (f, why) = err(&tier(", ca_file: /nonexistent/ca.pem"));
        assert_eq!(f, "storage.tiers[0].ca_file");
        assert!(why.contains("/nonexistent/ca.pem"), "{why}");
        let (f, why) = err(&tier(&format!(", ca_file: \"{}\"", junk.display())));
        assert_eq!((f.as_str(), why.contains("no PEM certificate")), ("storage.tiers[0].ca_file", true), "{why}");
        let (f, why) = err(&tier(", server_side_encryption: rot13"));
        assert_eq!(f, "storage.tiers[0].server_side_encryption");
        assert!(why.contains("AES256"), "{why}");
        let (f, _) = err(&tier(", sse_kms_key_id: k1"));
        assert_eq!(f, "storage.tiers[0].sse_kms_key_id");
        let (f, _) = err(&tier(", server_side_encryption: AES256, sse_kms_key_id: k1"));
        assert_eq!(f, "storage.tiers[0].sse_kms_key_id");
        let (f, _) = err("storage:\n  tiers:\n    - {name: a, type: ssd, path: /a, ca_file: /x.pem}\n");
        assert_eq!(f, "storage.tiers[0].ca_file");
        let (f, why) = err("storage:\n  tiers:\n    - {name: a, type: ssd, path: /a, zstd_level: 23}\n");
        assert_eq!((f.as_str(), why.as_str()), ("storage.tiers[0].zstd_level", "23: a zstd level is 1 to 22"));
        assert!(
            FileConfig::parse(
                "storage:\n  tiers:\n    - {name: a, type: ssd, path: /a, zstd_level: 19}\n",
                Path::new("x")
            )
            .is_ok()
        );
    }
}
