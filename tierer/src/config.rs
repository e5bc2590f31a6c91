//! Tierer settings and the operator's pins.

use std::path::{Path, PathBuf};

use vintagelake_runtime::DaemonSettings;
use vintagelake_runtime::schedule::parse_schedule;
use vintagelake_schemas::Date;
use vintagelake_storage::config::{RetentionPolicy, TierConfig, TierName};

use crate::plan::{Pins, Policy};

/// When and how the tierer runs (shared by `vintagelake tier` and `serve`). The policy itself is
/// the `retention` and `tiers` of the configuration file.
#[derive(Debug, Clone, clap::Args)]
pub struct TiererConfig {
    /// Cron schedule (seconds field first), e.g. `0 0 * * * *` for hourly.
    #[arg(long, env = "TIERING_SCHEDULE", default_value = "0 0 * * * *", value_parser = parse_schedule)]
    pub tiering_schedule: cron::Schedule,

    /// Keep original releases when data passes `delete_after_days` (the rest of the file goes).
    #[arg(long, env = "KEEP_ORIGINAL_RELEASES", default_value_t = true, action = clap::ArgAction::Set)]
    pub keep_original_releases: bool,

    /// Access-aware tiering: superseded data read at least this often (a count of reads that
    /// halves every run) stays in its tier when its age says colder. 0 = off.
    #[arg(long, env = "TIER_KEEP_READS", default_value_t = 0)]
    pub tier_keep_reads: u64,

    /// Access-aware tiering: a file in the third tier or colder read at least this often moves one
    /// tier warmer. 0 = off; otherwise at least twice TIER_KEEP_READS.
    #[arg(long, env = "TIER_PROMOTE_READS", default_value_t = 0)]
    pub tier_promote_reads: u64,

    /// Evaluate ages as of this date instead of today (simulation and tests), e.g. 2040-01-01.
    #[arg(long, env = "TIERING_TODAY", hide = true)]
    pub tiering_today: Option<Date>,
}

impl TiererConfig {
    /// Settings that contradict each other, named.
    pub fn validate(&self) -> Result<(), String> {
        if self.tier_promote_reads > 0 && self.tier_promote_reads < 2 * self.tier_keep_reads {
            return Err(format!(
                "TIER_PROMOTE_READS ({}) must be 0 or at least twice TIER_KEEP_READS ({}): read counts halve every run, \
                 and a promoted file must still count as often read at the next one",
                self.tier_promote_reads, self.tier_keep_reads
            ));
        }
        Ok(())
    }

    /// What one run needs: the `retention` policy over the `tiers` of the configuration file (or
    /// the embedded single `hot` tier), the operator's pins under the data directory.
    pub fn options(&self, daemon: &DaemonSettings, retention: &RetentionPolicy, tiers: &[TierConfig]) -> TierOptions {
        let tiers: Vec<(TierName, Option<u32>)> = if tiers.is_empty() {
            vec![(TierName::new("hot"), None)]
        } else {
            tiers.iter().map(|t| (t.name.clone(), t.max_age_days)).collect()
        };
        TierOptions {
            policy: Policy {
                keep_reads: self.tier_keep_reads,
                promote_reads: self.tier_promote_reads,
                ..Policy::new(retention, &tiers, self.keep_original_releases)
            },
            pins: PinFile::in_dir(&daemon.data_dir),
            concurrency: daemon.concurrency,
            today: self.tiering_today,
        }
    }
}

/// Everything a run needs besides the store.
#[derive(Debug, Clone)]
pub struct TierOptions {
    pub policy: Policy,
    pub pins: PinFile,
    pub concurrency: usize,
    pub today: Option<Date>,
}

impl TierOptions {
    /// The date ages are measured from.
    pub fn today(&self) -> Date {
        self.today.unwrap_or_else(|| {
            let now = chrono::Utc::now().date_naive();
            Date::from_days_since_epoch((now - chrono::NaiveDate::default()).num_days() as i32)
        })
    }
}

/// Series pinned to a tier, in `<DATA_DIR>/tier-pins.json` (written atomically: temp file + rename).
#[derive(Debug, Clone)]
pub struct PinFile {
    path: PathBuf,
}

impl PinFile {
    pub const FILE: &'static str = "tier-pins.json";

    pub fn in_dir(data_dir: &Path) -> Self {
        Self { path: data_dir.join(Self::FILE) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read(&self) -> std::io::Result<Pins> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pins::new()),
            Err(e) => Err(e),
        }
    }

    /// Pins `series` to `tier` (`None`: unpins); returns the pins now in force.
    pub fn set(&self, series: &str, tier: Option<TierName>) -> std::io::Result<Pins> {
        let mut pins = self.read()?;
        match tier {
            Some(t) => pins.insert(series.to_owned(), t),
            None => pins.remove(series),
        };
        let tmp = self.path.with_extension("json.tmp");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&file, &pins).map_err(std::io::Error::other)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(pins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_persist_and_unpin_removes() {
        let dir = tempfile::tempdir().unwrap();
        let pins = PinFile::in_dir(dir.path());
        assert!(pins.read().unwrap().is_empty());
        pins.set("GDPC1", Some("hot".parse().unwrap())).unwrap();
        pins.set("CPIAUCSL", Some("warm".parse().unwrap())).unwrap();
        let now = pins.set("GDPC1", None).unwrap();
        assert_eq!(now, pins.read().unwrap());
        assert_eq!(now.into_iter().collect::<Vec<_>>(), vec![("CPIAUCSL".to_owned(), "warm".parse().unwrap())]);
    }
}
