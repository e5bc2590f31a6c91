//! Ingest settings: topics, consumer group, commit thresholds and memory bounds.

use std::time::Duration;

use vintagelake_runtime::DaemonSettings;

/// Parses a byte size such as `512MiB`, `64mb`, `1g` or `1048576`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size like 64MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {s:?}; use B, KiB, MiB or GiB")),
    };
    let bytes = n * mult as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// How ingest reads Kafka and when it commits to the table.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestConfig {
    /// Topic of data-point revisions (JSON or Arrow IPC messages, keyed by series id).
    #[arg(long, env = "DATAPOINTS_TOPIC", default_value = "econ.datapoints")]
    pub datapoints_topic: String,

    /// Topic of series metadata messages.
    #[arg(long, env = "SERIES_TOPIC", default_value = "econ.series")]
    pub series_topic: String,

    /// Suffix of each topic's dead-letter topic (`econ.datapoints` → `econ.datapoints.dlq`).
    #[arg(long, env = "DLQ_SUFFIX", default_value = ".dlq")]
    pub dlq_suffix: String,

    /// How long the broker may take to acknowledge a dead letter before the delivery counts as
    /// failed (its partition then holds its position and the letter is sent again later).
    #[arg(long, env = "DLQ_DELIVERY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub dlq_delivery_timeout: Duration,

    /// Kafka consumer group shared by all ingest replicas.
    #[arg(long, env = "CONSUMER_GROUP", default_value = "vintagelake-ingest")]
    pub consumer_group: String,

    /// Commit to the table at least this often while data is buffered (e.g. 5s): the upper
    /// bound on how long a consumed record waits (under load; a caught-up consumer commits sooner).
    #[arg(long, env = "COMMIT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,

    /// Commit what is buffered once no record arrived for this long: the consumer has caught up
    /// with the topics, so waiting longer only delays the data (0 turns it off: commits then
    /// come by COMMIT_INTERVAL and size only).
    #[arg(long, env = "COMMIT_WHEN_IDLE", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub commit_when_idle: Duration,

    /// The least time between the starts of two commits made because the consumer caught up
    /// (bounds the small files a trickle of records makes; the compactor merges them).
    #[arg(long, env = "COMMIT_MIN_SPACING", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub commit_min_spacing: Duration,

    /// Budget of data files ingest's caught-up commits may write per hour: once the last hour
    /// holds this many, caught-up commits are spaced to the budget's rate (an hour divided by it)
    /// instead of `COMMIT_MIN_SPACING`. Size and interval commits are not limited. 0 = no budget.
    #[arg(long, env = "MAX_FILES_PER_HOUR", default_value_t = 3600)]
    pub max_files_per_hour: u32,

    /// Commit when this many rows are buffered (BATCH_SIZE sizes record batches, not commits).
    #[arg(long, env = "COMMIT_MAX_ROWS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub commit_max_rows: u64,

    /// Commit when buffered data reaches this many bytes (e.g. 128MiB).
    #[arg(long, env = "COMMIT_MAX_BYTES", default_value = "128MiB", value_parser = parse_bytes)]
    pub commit_max_bytes: u64,

    /// Pause consumption (backpressure) when buffered data exceeds this many bytes: the decoded
    /// rows waiting for a commit plus the working copies of the commit running. Ingest's memory is
    /// at most this plus [`FIXED_OVERHEAD_MIB`](crate::FIXED_OVERHEAD_MIB).
    #[arg(long, env = "MAX_BUFFERED_BYTES", default_value = "512MiB", value_parser = parse_bytes)]
    pub max_buffered_bytes: u64,

    /// Create the topics (and their dead-letter topics) at start if they do not exist.
    #[arg(long, env = "CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_topics: bool,

    /// Partitions of topics created at start.
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..))]
    pub topic_partitions: i32,

    /// How long SIGTERM may take to flush and commit before giving up.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

impl IngestConfig {
    /// Every topic ingest reads or writes: both input topics and their dead-letter topics.
    pub fn topics(&self) -> [String; 4] {
        [
            self.datapoints_topic.clone(),
            self.series_topic.clone(),
            format!("{}{}", self.datapoints_topic, self.dlq_suffix),
            format!("{}{}", self.series_topic, self.dlq_suffix),
        ]
    }

    /// What a run needs: this block, the broker, and the daemon's health-check interval.
    pub fn options(self, daemon: &DaemonSettings, bootstrap_servers: String) -> crate::IngestOptions {
        crate::IngestOptions {
            config: self,
            bootstrap_servers,
            health_check_interval: daemon.health_check_interval,
            kafka_overrides: std::collections::BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("128MiB"), Ok(128 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5 KiB"), Ok(1536));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").unwrap_err().contains("unknown size unit"));
        assert!(parse_bytes("0").is_err());
    }
}
