//! How often each data file is read, kept in the catalog database so every host's query service
//! adds to the same counts and the tierer sees them all: access-aware tiering keeps data that is
//! read often in a warmer tier than its age says, and brings a cold file that is read often back.
//!
//! A read is counted per query per data file it reads. Counts gather in memory and are added to
//! the `vintagelake_file_reads` table at most every [`FLUSH_EVERY`] (and when asked, e.g. before a
//! tiering run); each tiering run halves every count, so a count weighs recent reads most.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::catalog::{TableKind, Warehouse};
use crate::error::{Result, StorageError};

/// How often counts gathered in memory are added to the catalog database while reads happen.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// The table of read counts in the catalog database.
pub const READS_TABLE: &str = "vintagelake_file_reads";

/// Reads counted in this process and not yet added to the catalog database.
#[derive(Debug)]
pub struct PendingReads {
    counts: Mutex<HashMap<(TableKind, String), u64>>,
    last_flush: Mutex<Instant>,
    /// One flush at a time: when a flush returns, every read counted before it is in the database.
    flushing: tokio::sync::Mutex<()>,
}

impl Default for PendingReads {
    fn default() -> Self {
        Self { counts: Mutex::default(), last_flush: Mutex::new(Instant::now()), flushing: Default::default() }
    }
}

impl PendingReads {
    fn take(&self) -> HashMap<(TableKind, String), u64> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn due(&self) -> bool {
        let mut last = self.last_flush.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < FLUSH_EVERY {
            return false;
        }
        *last = Instant::now();
        true
    }
}

impl Warehouse {
    pub(crate) async fn ensure_reads_table(&self) -> Result<()> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {READS_TABLE} (catalog_name VARCHAR(255) NOT NULL, \
             table_name VARCHAR(255) NOT NULL, path VARCHAR(2048) NOT NULL, reads BIGINT NOT NULL, \
             last_read_ms BIGINT NOT NULL, PRIMARY KEY (catalog_name, table_name, path))"
        );
        sqlx::query(&sql).execute(self.pool()).await.map_err(|e| reads_error("create", e))?;
        Ok(())
    }

    /// Counts one read of a data file; the counts reach the catalog database within
    /// [`FLUSH_EVERY`] while reads go on (a flush runs in the background).
    pub fn record_read(self: &Arc<Self>, kind: TableKind, path: &str) {
        *self
            .pending_reads()
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((kind, path.to_owned()))
            .or_default() += 1;
        if self.pending_reads().due() && tokio::runtime::Handle::try_current().is_ok() {
            let wh = self.clone();
            tokio::spawn(async move {
                if let Err(e) = wh.flush_reads().await {
                    tracing::warn!(error = %e, "could not record file reads in the catalog database");
                }
            });
        }
    }

    /// Adds the reads counted in this process to the catalog database; how many files' counts.
    pub async fn flush_reads(&self) -> Result<usize> {
        let _one_at_a_time = self.pending_reads().flushing.lock().await;
        let counts = self.pending_reads().take();
        let now = chrono::Utc::now().timestamp_millis();
        let sql = self.sql(&format!(
            "INSERT INTO {READS_TABLE} (catalog_name, table_name, path, reads, last_read_ms) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (catalog_name, table_name, path) DO UPDATE SET reads = {READS_TABLE}.reads + excluded.reads, \
             last_read_ms = excluded.last_read_ms"
        ));
        let mut done = 0;
        let mut failed = None;
        for ((kind, path), n) in counts {
            let result = sqlx::query(&sql)
                .bind(self.catalog_name().to_owned())
                .bind(kind.name())
                .bind(path.clone())
                .bind(n as i64)
                .bind(now)
                .execute(self.pool())
                .await;
            match result {
                Ok(_) => done += 1,
                Err(e) => {
                    // Kept for the next flush rather than lost.
                    *self
                        .pending_reads()
                        .counts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry((kind, path))
                        .or_default() += n;
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(reads_error("record", e)),
            None => Ok(done),
        }
    }

    /// Every data file's read count (files never read are absent).
    pub async fn file_reads(&self, kind: TableKind) -> Result<HashMap<String, u64>> {
        let sql = self.sql(&format!("SELECT path, reads FROM {READS_TABLE} WHERE catalog_name = ? AND table_name = ?"));
        let rows: Vec<(String, i64)> = sqlx::query_as(&sql)
            .bind(self.catalog_name().to_owned())
            .bind(kind.name())
            .fetch_all(self.pool())
            .await
            .map_err(|e| reads_error("read", e))?;
        Ok(rows.into_iter().map(|(p, n)| (p, n.max(0) as u64)).collect())
    }

    /// Halves every count of `kind` (and forgets files down to none): older reads weigh less.
    pub async fn decay_reads(&self, kind: TableKind) -> Result<()> {
        for statement in [
            format!("UPDATE {READS_TABLE} SET reads = reads / 2 WHERE catalog_name = ? AND table_name = ?"),
            format!("DELETE FROM {READS_TABLE} WHERE catalog_name = ? AND table_name = ? AND reads <= 0"),
        ] {
            sqlx::query(&self.sql(&statement))
                .bind(self.catalog_name().to_owned())
                .bind(kind.name())
                .execute(self.pool())
                .await
                .map_err(|e| reads_error("decay", e))?;
        }
        Ok(())
    }

    /// A file that moved keeps its count under its new path.
    pub async fn carry_reads(&self, kind: TableKind, from: &str, to: &str) -> Result<()> {
        let sql = self
            .sql(&format!("UPDATE {READS_TABLE} SET path = ? WHERE catalog_name = ? AND table_name = ? AND path = ?"));
        sqlx::query(&sql)
            .bind(to.to_owned())
            .bind(self.catalog_name().to_owned())
            .bind(kind.name())
            .bind(from.to_owned())
            .execute(self.pool())
            .await
            .map_err(|e| reads_error("carry", e))?;
        Ok(())
    }
}

fn reads_error(op: &str, e: sqlx::Error) -> StorageError {
    StorageError::InvalidData(format!("{op} file read counts ({READS_TABLE} in the catalog database): {e}"))
}
