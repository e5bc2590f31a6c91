//! The access audit: every data access (who, when, the ticket, rows and bytes returned, outcome)
//! as an entry of the data directory's audit trail (action `read`), next to the lifecycle's, read
//! back with the `audit` action or `vintagelake admin audit`.
//!
//! Reads must not wait for a disk: entries go through a bounded queue to a writer thread that
//! appends them in batches (one write and one sync per batch). When the queue is full an entry is
//! dropped and counted (`vintagelake_query_access_audit_dropped_total`), never a read delayed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vintagelake_runtime::audit::{AuditEntry, AuditLog};

use crate::metrics as m;

/// Entries waiting for the writer, at most.
const QUEUE: usize = 65_536;
/// Longest an entry waits for its batch.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Where access entries go.
#[derive(Debug, Clone)]
pub struct AccessAudit {
    tx: Option<std::sync::mpsc::SyncSender<AuditEntry>>,
}

impl AccessAudit {
    /// A writer thread appending to `log`; it ends when the last handle is dropped.
    pub fn start(log: AuditLog) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<AuditEntry>(QUEUE);
        let spawned = std::thread::Builder::new().name("access-audit".into()).spawn(move || {
            let mut batch = Vec::new();
            loop {
                match rx.recv_timeout(FLUSH_EVERY) {
                    Ok(entry) => {
                        batch.push(entry);
                        batch.extend(rx.try_iter().take(QUEUE));
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        write(&log, &mut batch);
                        return;
                    }
                }
                write(&log, &mut batch);
            }
        });
        match spawned {
            Ok(_) => Self { tx: Some(tx) },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the access audit writer: data accesses are not recorded");
                Self { tx: None }
            }
        }
    }

    /// Not recorded anywhere (tests, benchmarks).
    pub fn off() -> Self {
        Self { tx: None }
    }

    fn send(&self, entry: AuditEntry) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(entry).is_err() {
            metrics::counter!(m::ACCESS_AUDIT_DROPPED).increment(1);
        }
    }

    /// Records an access refused or failed before any answer.
    pub fn refused(&self, principal: &str, rpc: &str, outcome: &str, what: serde_json::Value) {
        self.send(
            AuditEntry::new(principal, "read")
                .outcome(outcome)
                .detail(serde_json::json!({ "rpc": rpc, "request": what })),
        );
    }

    /// An access being served; recorded when the returned guard is dropped (the answer ended,
    /// failed, or the client went away).
    pub fn begin(&self, principal: &str, rpc: &str, what: serde_json::Value) -> Arc<Access> {
        Arc::new(Access {
            audit: self.clone(),
            principal: principal.to_owned(),
            rpc: rpc.to_owned(),
            what,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failed: Mutex::new(None),
            finished: AtomicBool::new(false),
        })
    }
}

fn write(log: &AuditLog, batch: &mut Vec<AuditEntry>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = log.append_all(batch) {
        tracing::error!(path = %log.path().display(), error = %e, entries = batch.len(), "cannot write the access audit");
    }
    batch.clear();
}

/// One access in progress.
#[derive(Debug)]
pub struct Access {
    audit: AccessAudit,
    principal: String,
    rpc: String,
    what: serde_json::Value,
    rows: AtomicU64,
    bytes: AtomicU64,
    failed: Mutex<Option<String>>,
    finished: AtomicBool,
}

impl Access {
    pub fn sent(&self, rows: usize, bytes: usize) {
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn failed(&self, error: &str) {
        self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert_with(|| error.to_owned());
    }

    pub fn finished(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }
}

impl Drop for Access {
    fn drop(&mut self) {
        let failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let outcome = match failed {
            Some(e) => format!("error: {e}"),
            None if self.finished.load(Ordering::Relaxed) => "ok".to_owned(),
            None => "cancelled".to_owned(),
        };
        self.audit.send(
            AuditEntry::new(&self.principal, "read")
                .outcome(outcome)
                .counts(self.rows.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
                .detail(serde_json::json!({ "rpc": self.rpc, "request": self.what })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_recorded_with_their_outcome_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        let audit = AccessAudit::start(log.clone());
        let ok = audit.begin("ana", "do_get", serde_json::json!({"view": "latest"}));
        ok.sent(10, 800);
        ok.sent(5, 400);
        ok.finished();
        drop(ok);
        let failed = audit.begin("ana", "do_get", serde_json::json!({}));
        failed.failed("boom");
        drop(failed);
        drop(audit.begin("bob", "do_get", serde_json::json!({})));
        audit.refused("unauthenticated", "do_get", "denied: invalid bearer token", serde_json::json!(null));
        drop(audit);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let entries = loop {
            let read = log.read().unwrap().entries;
            if read.len() == 4 || std::time::Instant::now() > deadline {
                break read;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let got: Vec<(&str, &str, u64, u64)> =
            entries.iter().map(|e| (e.actor.as_str(), e.outcome.as_str(), e.rows, e.bytes)).collect();
        assert_eq!(
            got,
            vec![
                ("ana", "ok", 15, 1200),
                ("ana", "error: boom", 0, 0),
                ("bob", "cancelled", 0, 0),
                ("unauthenticated", "denied: invalid bearer token", 0, 0)
            ]
        );
        assert!(entries.iter().all(|e| e.action == "read"));
    }
}
