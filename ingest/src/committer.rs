//! Committing one sealed buffer: its dead letters first (a position moves past a rejected
//! message only once the broker has its letter), then each table's rows with the positions they
//! cover, then the state settled (positions moved, or rows given back for the next attempt).
//! Group offsets follow for lag tools only; the table is the source of truth.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use vintagelake_runtime::health::Readiness;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::store::IngestTarget;

use crate::buffer::{PartitionKey, Sealed, Shared, State, table_rows};
use crate::dlq::{DeadLetterQueue, Undelivered};
use crate::error::{IngestError, Result};
use crate::metrics as m;
use crate::rebalance::Context;

/// Commits sealed buffers; cheap to clone into a task.
#[derive(Clone)]
pub(crate) struct Committer {
    pub(crate) store: Arc<dyn IngestTarget>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) consumer: Arc<StreamConsumer<Context>>,
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) dlq: Arc<DeadLetterQueue>,
}

impl Committer {
    /// Commits `sealed`; then records the new positions (success), gives the rows of what did not
    /// commit back to the buffer (failure), or drops them (fenced: the caller re-reads from the
    /// table), and signals that no commit runs.
    pub(crate) async fn commit(self, mut sealed: Sealed) -> Result<()> {
        // Whatever happens (even a panic), the end of this commit is signalled.
        let _ended = CommitEnded(&self.shared);
        // Dead letters first: a position moves past a rejected message only once the broker has
        // its dead letter. Partitions whose letters did not all land stay out of this commit.
        let undelivered = self.dlq.deliver(sealed.buffers.values_mut().flat_map(|b| b.letters.iter_mut())).await;
        for offsets in sealed.updates.values_mut() {
            offsets.retain(|o| !undelivered.contains_key(&(o.topic.clone(), o.partition)));
        }
        sealed.updates.retain(|_, offsets| !offsets.is_empty());
        let mut landed = Vec::new();
        let result = self.write(&sealed, &mut landed).await;
        let tpl = {
            let mut state = self.shared.lock();
            self.hold(&mut state, &mut sealed, undelivered);
            let fenced = matches!(result, Err(IngestError::Commit(StorageError::Fenced { .. })));
            state.settle(&mut sealed, &landed, result.is_err() && !fenced);
            let mut tpl = TopicPartitionList::new();
            if result.is_ok() {
                for ((topic, partition), pos) in &state.positions {
                    if let Some(c) = pos.committed {
                        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(c));
                    }
                }
            }
            tpl
        };
        // Group offsets only inform lag tools; the table is the source of truth.
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::debug!(error = %e, "group offset commit failed (informational only)");
        }
        result
    }

    /// Holds the partitions whose dead letters did not all land (see [`State::hold_undelivered`])
    /// and reports them: the held-partitions gauge and the `dlq` readiness check.
    fn hold(&self, state: &mut State, sealed: &mut Sealed, undelivered: HashMap<PartitionKey, Undelivered>) {
        state.hold_undelivered(sealed, undelivered, Instant::now());
        metrics::gauge!(m::DLQ_HELD_PARTITIONS).set(state.held.len() as f64);
        match state.held_summary() {
            None => self.readiness.set("dlq", true, "every dead letter acknowledged"),
            Some(held) => self.readiness.set("dlq", false, format!("dead-letter topic not writable: {held}")),
        }
    }

    /// Writes and commits each table's rows; `landed` says which tables committed.
    async fn write(&self, sealed: &Sealed, landed: &mut Vec<TableKind>) -> Result<()> {
        let started = Instant::now();
        let mut total = 0;
        for kind in [TableKind::DataPoints, TableKind::Series] {
            let Some(offsets) = sealed.updates.get(&kind) else { continue };
            let (batches, rows) = table_rows(kind, offsets, &sealed.buffers)?;
            let t = Instant::now();
            match self.store.append(kind, &batches, offsets.clone(), "ingest").await {
                Ok(c) => {
                    metrics::histogram!(m::COMMIT_DURATION, "table" => kind.name()).record(t.elapsed().as_secs_f64());
                    metrics::counter!(m::COMMITTED, "table" => kind.name()).increment(rows);
                    metrics::counter!(m::COMMIT_RETRIES, "table" => kind.name()).increment(u64::from(c.attempts - 1));
                    landed.push(kind);
                    total += rows;
                    metrics::counter!(m::FILES_COMMITTED, "table" => kind.name()).increment(c.added_files as u64);
                    let mut state = self.shared.lock();
                    state.report.commits += 1;
                    state.report.rows_committed += rows;
                    if kind == TableKind::DataPoints {
                        let now = Instant::now();
                        state.files.record(now, c.added_files as u64);
                        metrics::gauge!(m::FILES_LAST_HOUR).set(state.files.last_hour(now) as f64);
                    }
                    self.readiness.set("catalog", true, "last commit succeeded");
                }
                Err(e @ StorageError::Fenced { .. }) => {
                    metrics::counter!(m::FENCED).increment(1);
                    self.shared.lock().report.fenced += 1;
                    tracing::warn!(error = %e, "fenced: another replica owns a partition; re-reading from the table's positions");
                    return Err(IngestError::Commit(e));
                }
                Err(e) => {
                    self.readiness.set("catalog", false, e.to_string());
                    return Err(IngestError::Commit(e));
                }
            }
        }
        metrics::histogram!(m::BATCH_ROWS).record(total as f64);
        metrics::histogram!(m::BATCH_BYTES).record(sealed.bytes as f64);
        tracing::debug!(rows = total, took = ?started.elapsed(), "committed");
        Ok(())
    }
}

/// Marks the end of a commit when dropped and wakes a rebalance waiting for it.
struct CommitEnded<'a>(&'a Shared);

impl Drop for CommitEnded<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.committing = false;
        state.committing_bytes = 0;
        state.publish_buffered();
        drop(state);
        self.0.commit_ended.notify_all();
    }
}
