//! The lifecycle audit trail: every compaction, expiry, orphan removal, tier move, deletion and
//! manual override, one JSON object per line in `<DATA_DIR>/audit.jsonl`.
//!
//! Append-only: each entry is one `write` on a file opened with `O_APPEND` and is synced before
//! the call returns, so daemons of several processes on one host can share the file and an entry
//! that was reported written survives a crash. A crash in the middle of a write can leave a torn
//! last line; readers skip it and say so rather than fail.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it happened (RFC 3339, UTC).
    pub time: String,
    /// Which component acted: `compactor`, `tierer`, `admin`.
    pub actor: String,
    /// What it did: `compact`, `expire`, `remove-orphans`, `move`, `delete`, `pin`, `unpin`, …
    pub action: String,
    /// `ok`, `dry-run`, or why it failed.
    pub outcome: String,
    /// The policy rule or request that caused it (e.g. `warm_data_days=365`, `manual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The table it touched, when one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Files (or snapshot ids, for expiry) it touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    #[serde(default)]
    pub rows: u64,
    #[serde(default)]
    pub bytes: u64,
    /// The snapshot its commit made, when it committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    /// Anything else worth keeping (the full run report, source and target tier, …).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// An entry stamped now, outcome `ok`.
    pub fn new(actor: &str, action: &str) -> Self {
        Self {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            actor: actor.to_owned(),
            action: action.to_owned(),
            outcome: "ok".to_owned(),
            rule: None,
            table: None,
            files: Vec::new(),
            rows: 0,
            bytes: 0,
            snapshot_id: None,
            detail: serde_json::Value::Null,
        }
    }

    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }

    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    pub fn files(mut self, files: Vec<String>) -> Self {
        self.files = files;
        self
    }

    pub fn counts(mut self, rows: u64, bytes: u64) -> Self {
        self.rows = rows;
        self.bytes = bytes;
        self
    }

    pub fn snapshot(mut self, id: Option<i64>) -> Self {
        self.snapshot_id = id;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The audit file of one data directory.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

/// What reading the trail found.
#[derive(Debug, Default)]
pub struct AuditRead {
    pub entries: Vec<AuditEntry>,
    /// Lines that did not parse (a torn last line after a crash), with their line numbers.
    pub skipped: Vec<usize>,
}

impl AuditLog {
    pub const FILE: &'static str = "audit.jsonl";

    /// The trail of `data_dir` (the file is created on the first append).
    pub fn in_dir(data_dir: &Path) -> Self {
        Self { path: data_dir.join(Self::FILE) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and syncs it to disk.
    pub fn append(&self, entry: &AuditEntry) -> std::io::Result<()> {
        self.append_all(std::slice::from_ref(entry))
    }

    /// Appends entries in one write and one sync (a busy writer batches what it records).
    pub fn append_all(&self, entries: &[AuditEntry]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut line = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut line, entry).map_err(std::io::Error::other)?;
            line.push(b'\n');
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        // A torn line left by a crash must not swallow this entry: start on a fresh line.
        let len = file.metadata()?.len();
        if len > 0 && !ends_with_newline(&self.path, len)? {
            line.insert(0, b'\n');
        }
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Appends, logging instead of failing: the action it records already happened, and a full
    /// disk must not turn a finished compaction into a failed one.
    pub fn record(&self, entry: &AuditEntry) {
        if let Err(e) = self.append(entry) {
            tracing::error!(path = %self.path.display(), error = %e, action = %entry.action, "cannot write the audit trail");
        }
    }

    /// Every entry, oldest first (none when the file does not exist yet).
    pub fn read(&self) -> std::io::Result<AuditRead> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AuditRead::default()),
            Err(e) => return Err(e),
        };
        let mut out = AuditRead::default();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(e) => out.entries.push(e),
                Err(_) => out.skipped.push(i + 1),
            }
        }
        Ok(out)
    }
}

fn ends_with_newline(path: &Path, len: u64) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_torn_line_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        assert!(log.read().unwrap().entries.is_empty(), "no file yet: no entries");
        let a = AuditEntry::new("compactor", "compact").table("econ.data_points").counts(10, 2048).snapshot(Some(7));
        log.append(&a).unwrap();
        // A crash mid-write leaves half a line…
        std::fs::OpenOptions::new().append(true).open(log.path()).unwrap().write_all(b"{\"time\":\"20").unwrap();
        // …and the next entry still lands on its own line.
        let b = AuditEntry::new("tierer", "move").rule("warm_data_days=365").files(vec!["f.parquet".into()]);
        log.append(&b).unwrap();
        let read = log.read().unwrap();
        assert_eq!(read.entries, vec![a, b]);
        assert_eq!(read.skipped, vec![2]);
    }
}
