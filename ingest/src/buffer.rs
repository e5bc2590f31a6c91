//! What ingest holds between commits, free of Kafka: the positions of the partitions this replica
//! owns, the rows and dead letters buffered per partition, the partitions held for their dead
//! letters, when a commit is due, sealing a buffer for one commit and settling it afterwards. The
//! consumer loop (`pipeline.rs`) feeds it, the rebalance callback (`rebalance.rs`) assigns and
//! revokes partitions in it, and the committer (`committer.rs`) takes sealed buffers from it.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use vintagelake_schemas::EconomicSeries;
use vintagelake_schemas::table::{StoredDataPoint, stored_data_points_to_batch, stored_series_to_batch};
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::OffsetUpdate;

use crate::accept::Accepted;
use crate::config::IngestConfig;
use crate::dlq::{Letter, Undelivered};
use crate::error::{IngestError, Result};
use crate::metrics as m;
use crate::pipeline::IngestReport;

pub(crate) type PartitionKey = (String, i32);

/// A partition this replica owns: where the table says it stands and how far we buffered.
#[derive(Debug, Clone)]
pub(crate) struct Position {
    /// Offset recorded in the table when we took the partition or last committed it.
    pub(crate) committed: Option<i64>,
    /// Next offset to buffer; `None` until the first message arrives.
    pub(crate) next: Option<i64>,
}

/// What one partition buffered since its last commit.
#[derive(Debug, Default)]
pub(crate) struct PartitionBuffer {
    /// Bulk messages, already in the `data_points` table schema.
    pub(crate) batches: Vec<RecordBatch>,
    /// Single-revision messages.
    pub(crate) points: Vec<StoredDataPoint>,
    pub(crate) series: Vec<(EconomicSeries, i64)>,
    /// Rejected messages: the position moves past them only once their dead letters are acknowledged.
    pub(crate) letters: Vec<Letter>,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

impl PartitionBuffer {
    /// Takes back rows a failed commit held (older than what is buffered now; their order in the
    /// buffer does not matter, `ingest_seq` orders them).
    pub(crate) fn absorb(&mut self, older: PartitionBuffer) {
        self.batches.extend(older.batches);
        self.points.extend(older.points);
        self.series.extend(older.series);
        self.letters.extend(older.letters);
        self.rows += older.rows;
        self.bytes += older.bytes;
    }
}

/// What a commit holds, in multiples of the rows it seals: the rows, and about one more copy
/// while it renumbers, sorts, splits and encodes them (measured: ingest's peak RSS under a burst
/// is about twice `MAX_BUFFERED_BYTES` plus a fixed overhead when only the rows are counted).
/// Both count against `MAX_BUFFERED_BYTES`, so consuming pauses before memory outgrows it.
pub(crate) const COMMIT_WORKING_COPIES: u64 = 3;

/// State shared with the rebalance callback (which runs inside `recv()`) and the commit task.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) positions: HashMap<PartitionKey, Position>,
    pub(crate) buffers: HashMap<PartitionKey, PartitionBuffer>,
    pub(crate) buffered_bytes: u64,
    pub(crate) buffered_rows: u64,
    pub(crate) oldest: Option<Instant>,
    /// A sealed buffer is being committed (in the background or inline).
    pub(crate) committing: bool,
    /// Bytes held by that commit: they count against `MAX_BUFFERED_BYTES` until it ends.
    pub(crate) committing_bytes: u64,
    /// Partitions whose dead letters the broker did not acknowledge: they hold their position
    /// (paused) until a retry delivers them.
    pub(crate) held: HashMap<PartitionKey, Held>,
    pub(crate) report: IngestReport,
    /// Data files committed, over the last hour.
    pub(crate) files: FileWindow,
}

/// Data files written per commit over a sliding hour: the small-file budget's count.
#[derive(Debug, Default)]
pub(crate) struct FileWindow {
    commits: std::collections::VecDeque<(Instant, u64)>,
    total: u64,
}

impl FileWindow {
    const SPAN: Duration = Duration::from_secs(3600);

    pub(crate) fn record(&mut self, now: Instant, files: u64) {
        self.commits.push_back((now, files));
        self.total += files;
        self.expire(now);
    }

    /// Files committed in the hour before `now`.
    pub(crate) fn last_hour(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.total
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, n)) = self.commits.front() {
            if now.saturating_duration_since(t) < Self::SPAN {
                break;
            }
            self.commits.pop_front();
            self.total -= n;
        }
    }
}

/// The least time between caught-up commits: `COMMIT_MIN_SPACING`, or the small-file budget's
/// rate (an hour / `MAX_FILES_PER_HOUR`) once the last hour has used the budget.
pub(crate) fn caught_up_spacing(c: &IngestConfig, files_last_hour: u64) -> Duration {
    match c.max_files_per_hour {
        0 => c.commit_min_spacing,
        budget if files_last_hour >= u64::from(budget) => c.commit_min_spacing.max(FileWindow::SPAN / budget),
        _ => c.commit_min_spacing,
    }
}

/// A partition waiting for its dead letters to be acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) undelivered: Undelivered,
    pub(crate) since: Instant,
    pub(crate) attempts: u32,
    pub(crate) retry_at: Instant,
}

impl Held {
    pub(crate) fn waiting(&self, now: Instant) -> bool {
        self.retry_at > now
    }
}

/// Backoff between deliveries of a held partition's dead letters: 1 s doubling to 30 s.
pub(crate) fn dlq_backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

impl State {
    pub(crate) fn clear_buffers(&mut self) {
        self.buffers.clear();
        self.held.clear();
        self.buffered_bytes = 0;
        self.buffered_rows = 0;
        self.oldest = None;
        self.publish_buffered();
    }

    pub(crate) fn publish_buffered(&self) {
        metrics::gauge!(m::BUFFERED_BYTES).set((self.buffered_bytes + self.committing_bytes) as f64);
    }
}

/// The state and the signal that a commit ended, shared by the loop, the callback and the task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) commit_ended: Condvar,
    /// How many partitions this replica owns, after each rebalance.
    pub(crate) assigned: tokio::sync::watch::Sender<usize>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Blocks until no commit runs (from the rebalance callback, inside the runtime).
    pub(crate) fn wait_for_commit(&self) -> MutexGuard<'_, State> {
        tokio::task::block_in_place(|| {
            let mut state = self.lock();
            while state.committing {
                state = self.commit_ended.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            state
        })
    }
}

/// A buffer taken out for one commit, with the positions it moves.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) buffers: HashMap<PartitionKey, PartitionBuffer>,
    pub(crate) updates: HashMap<TableKind, Vec<OffsetUpdate>>,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    pub(crate) oldest: Option<Instant>,
}

/// The rows a commit of `kind` writes: the buffers of the partitions it moves, as table batches.
pub(crate) fn table_rows(
    kind: TableKind,
    offsets: &[OffsetUpdate],
    buffers: &HashMap<PartitionKey, PartitionBuffer>,
) -> Result<(Vec<RecordBatch>, u64)> {
    let owned = || offsets.iter().filter_map(|o| buffers.get(&(o.topic.clone(), o.partition)));
    let rows = owned().map(|b| b.rows).sum();
    let built = match kind {
        TableKind::DataPoints => {
            let mut batches: Vec<RecordBatch> = owned().flat_map(|b| b.batches.iter().cloned()).collect();
            let points: Vec<StoredDataPoint> = owned().flat_map(|b| b.points.iter().cloned()).collect();
            if !points.is_empty() || batches.is_empty() {
                batches.push(stored_data_points_to_batch(&points).map_err(|e| IngestError::Commit(e.into()))?);
            }
            batches
        }
        TableKind::Series => {
            let series: Vec<(EconomicSeries, i64)> = owned().flat_map(|b| b.series.iter().cloned()).collect();
            vec![stored_series_to_batch(&series).map_err(|e| IngestError::Commit(e.into()))?]
        }
    };
    Ok((built, rows))
}

impl State {
    /// Whether a commit is due: enough rows or bytes buffered, the oldest buffered message waited
    /// `COMMIT_INTERVAL`, or a held partition's retry time came.
    #[cfg(test)]
    pub(crate) fn commit_due(&self, c: &IngestConfig, now: Instant) -> bool {
        self.commit_reason(c, now).is_some()
    }

    /// Why a commit is due (a metric label), if one is: see [`commit_due`](Self::commit_due).
    pub(crate) fn commit_reason(&self, c: &IngestConfig, now: Instant) -> Option<&'static str> {
        if self.buffered_rows >= c.commit_max_rows
            // A commit's working copies must fit in the bound too.
            || self.buffered_bytes >= c.commit_max_bytes.min(c.max_buffered_bytes / COMMIT_WORKING_COPIES)
        {
            Some("size")
        } else if self.oldest.is_some_and(|t| now.saturating_duration_since(t) >= c.commit_interval) {
            Some("interval")
        } else if self.held.values().any(|h| !h.waiting(now)) {
            Some("dead_letters")
        } else {
            None
        }
    }

    /// Keeps a rejected message in its partition's buffer until its dead letter is acknowledged.
    pub(crate) fn buffer_letter(&mut self, letter: Letter, now: Instant) {
        let key = (letter.topic.clone(), letter.partition);
        if !self.positions.contains_key(&key) {
            return; // revoked meanwhile: the next owner re-reads it
        }
        let size = letter.size();
        let waiting = self.held.get(&key).is_some_and(|h| h.waiting(now));
        let buffer = self.buffers.entry(key).or_default();
        buffer.letters.push(letter);
        buffer.bytes += size;
        self.buffered_bytes += size;
        self.report.dead_lettered += 1;
        if !waiting {
            self.oldest.get_or_insert(now);
        }
        self.publish_buffered();
    }

    /// Takes the buffers and the positions they move out for one commit; `None` if nothing moved.
    /// Partitions held for their dead letters and still waiting keep theirs.
    pub(crate) fn seal(&mut self, series_topic: &str, now: Instant) -> Option<Sealed> {
        debug_assert!(!self.committing, "one commit at a time");
        let mut updates: HashMap<TableKind, Vec<OffsetUpdate>> = HashMap::new();
        for (key, pos) in &self.positions {
            if self.held.get(key).is_some_and(|h| h.waiting(now)) {
                continue; // its dead letters are retried when its backoff ends
            }
            let Some(next) = pos.next else { continue };
            if pos.committed == Some(next) {
                continue;
            }
            let kind = if key.0 == series_topic { TableKind::Series } else { TableKind::DataPoints };
            updates.entry(kind).or_default().push(OffsetUpdate {
                topic: key.0.clone(),
                partition: key.1,
                expected: pos.committed,
                next,
            });
        }
        if updates.is_empty() {
            // Only held partitions have data: their retry time, not the interval, wakes the loop.
            self.oldest = None;
            return None;
        }
        let mut buffers = HashMap::new();
        let (mut rows, mut bytes) = (0, 0);
        for o in updates.values().flatten() {
            let key = (o.topic.clone(), o.partition);
            if let Some(b) = self.buffers.remove(&key) {
                rows += b.rows;
                bytes += b.bytes;
                buffers.insert(key, b);
            }
        }
        let sealed = Sealed { buffers, updates, rows, bytes, oldest: self.oldest.take() };
        self.committing = true;
        self.committing_bytes = sealed.bytes * COMMIT_WORKING_COPIES;
        self.buffered_rows -= rows;
        self.buffered_bytes -= bytes;
        self.publish_buffered();
        tracing::trace!(rows = sealed.rows, bytes = sealed.bytes, "sealed a buffer for commit");
        Some(sealed)
    }
}

impl State {
    /// An assigned partition starts where the table says it stands; whatever this replica
    /// buffered or held for it before is dropped (it is re-read from that position).
    pub(crate) fn assign(&mut self, key: PartitionKey, committed: Option<i64>) {
        self.drop_partition(&key);
        self.positions.insert(key, Position { committed, next: None });
    }

    /// A revoked partition's buffered rows and letters are dropped: the next owner re-reads them
    /// from the table's position.
    pub(crate) fn revoke(&mut self, key: &PartitionKey) {
        self.positions.remove(key);
        self.drop_partition(key);
        if self.buffers.is_empty() {
            self.clear_buffers();
        }
    }

    fn drop_partition(&mut self, key: &PartitionKey) {
        if let Some(b) = self.buffers.remove(key) {
            self.buffered_rows -= b.rows;
            self.buffered_bytes -= b.bytes;
        }
        self.held.remove(key);
    }

    /// Whether the message at `offset` is new to this replica: its partition is owned and the
    /// offset is not below what was buffered or committed (re-delivered after a seek). An
    /// admitted message moves the partition's next position past it.
    pub(crate) fn admit(&mut self, key: &PartitionKey, offset: i64) -> bool {
        let Some(pos) = self.positions.get_mut(key) else {
            return false; // not ours (any more)
        };
        if pos.next.is_some_and(|n| offset < n) || pos.committed.is_some_and(|c| offset < c) {
            return false;
        }
        pos.next = Some(offset + 1);
        self.report.records_consumed += 1;
        true
    }

    /// Buffers a validated message of `bytes` bytes in its partition.
    pub(crate) fn buffer(&mut self, key: PartitionKey, accepted: Accepted, bytes: u64, now: Instant) {
        let rows = accepted.rows();
        let buffer = self.buffers.entry(key).or_default();
        match accepted {
            Accepted::Rows(batches) => buffer.batches.extend(batches),
            Accepted::Point(p) => buffer.points.push(p),
            Accepted::Series(series, seq) => buffer.series.push((series, seq)),
        }
        buffer.rows += rows;
        buffer.bytes += bytes;
        self.buffered_rows += rows;
        self.buffered_bytes += bytes;
        self.oldest.get_or_insert(now);
        self.publish_buffered();
    }

    /// Settles a commit of `sealed` whose tables `landed` committed: their partitions' positions
    /// move. When the commit failed (`give_back`; not when fenced, whose rows the table's
    /// positions re-read), the rows of the tables that did not land go back into the buffers of
    /// partitions still owned, older than what arrived since, and the next attempt commits them.
    pub(crate) fn settle(&mut self, sealed: &mut Sealed, landed: &[TableKind], give_back: bool) {
        for kind in landed {
            for o in &sealed.updates[kind] {
                if let Some(p) = self.positions.get_mut(&(o.topic.clone(), o.partition)) {
                    p.committed = Some(o.next);
                }
            }
        }
        if !give_back {
            return;
        }
        for (kind, offsets) in &sealed.updates {
            if landed.contains(kind) {
                continue;
            }
            for o in offsets {
                let key = (o.topic.clone(), o.partition);
                if let Some(b) = sealed.buffers.remove(&key)
                    && self.positions.contains_key(&key)
                {
                    self.buffered_rows += b.rows;
                    self.buffered_bytes += b.bytes;
                    self.buffers.entry(key).or_default().absorb(b);
                }
            }
        }
        self.oldest = match (self.oldest, sealed.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Gives the buffers of partitions whose dead letters did not all land back (rows and
    /// letters) and holds those partitions until their backoff ends; releases the sealed
    /// partitions whose letters all landed.
    pub(crate) fn hold_undelivered(
        &mut self,
        sealed: &mut Sealed,
        undelivered: HashMap<PartitionKey, Undelivered>,
        now: Instant,
    ) {
        for key in sealed.buffers.keys() {
            if !undelivered.contains_key(key) && self.held.remove(key).is_some() {
                tracing::info!(topic = %key.0, partition = key.1, "dead letters acknowledged; the partition moves on");
            }
        }
        for (key, u) in undelivered {
            let Some(b) = sealed.buffers.remove(&key) else { continue };
            if !self.positions.contains_key(&key) {
                continue; // revoked meanwhile: the next owner re-reads it
            }
            self.buffered_rows += b.rows;
            self.buffered_bytes += b.bytes;
            self.buffers.entry(key.clone()).or_default().absorb(b);
            let held = self.held.entry(key.clone()).or_insert(Held {
                undelivered: u.clone(),
                since: now,
                attempts: 0,
                retry_at: now,
            });
            // Letters landing (fewer failed than last time): the topic is back, retry soon; only
            // an attempt that delivers nothing backs off further.
            let progress = held.attempts > 0 && u.letters < held.undelivered.letters;
            held.attempts = if progress { 1 } else { held.attempts + 1 };
            held.undelivered = u;
            held.retry_at = now + dlq_backoff(held.attempts);
            tracing::warn!(
                topic = %key.0, partition = key.1, dlq = %held.undelivered.dlq_topic, letters = held.undelivered.letters,
                reason = %held.undelivered.reason, attempts = held.attempts, retry_in = ?dlq_backoff(held.attempts),
                "dead letters not acknowledged: the partition holds its position and retries"
            );
        }
    }

    /// What the held partitions wait for, one line for `/ready`; `None` when none is held.
    pub(crate) fn held_summary(&self) -> Option<String> {
        if self.held.is_empty() {
            return None;
        }
        let mut parts: Vec<String> = self
            .held
            .iter()
            .map(|((t, p), h)| {
                // A wall-clock time: the summary is read long after it was written (`/ready`).
                let since = chrono::Utc::now() - chrono::Duration::from_std(h.since.elapsed()).unwrap_or_default();
                format!(
                    "{t}[{p}] holds {} letter(s) for {} since {} ({} attempt(s)): {}",
                    h.undelivered.letters,
                    h.undelivered.dlq_topic,
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    h.attempts,
                    h.undelivered.reason
                )
            })
            .collect();
        parts.sort();
        Some(parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        config: IngestConfig,
    }

    fn config() -> IngestConfig {
        Defaults::parse_from(["ingest"]).config
    }

    #[test]
    fn the_file_budget_counts_a_sliding_hour_and_spaces_caught_up_commits_once_used() {
        let t0 = Instant::now();
        let mut w = FileWindow::default();
        w.record(t0, 2);
        w.record(t0 + Duration::from_secs(1800), 3);
        assert_eq!(w.last_hour(t0 + Duration::from_secs(3599)), 5);
        assert_eq!(w.last_hour(t0 + Duration::from_secs(3600)), 3, "the first commit left the hour");
        assert_eq!(w.last_hour(t0 + Duration::from_secs(5400)), 0);
        let mut c = config();
        c.max_files_per_hour = 3600;
        assert_eq!(caught_up_spacing(&c, 3599), c.commit_min_spacing);
        assert_eq!(caught_up_spacing(&c, 3600), Duration::from_secs(1), "the budget's rate");
        c.max_files_per_hour = 0;
        assert_eq!(caught_up_spacing(&c, 1_000_000), c.commit_min_spacing, "no budget");
    }

    fn point(offset: i64) -> StoredDataPoint {
        let revision = vintagelake_schemas::decode_data_point_json(
            br#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":1}"#,
        )
        .unwrap();
        StoredDataPoint::arrived(revision, vintagelake_schemas::Timestamp::now(), offset << 20)
    }

    /// A state owning partitions 0 and 1 of `dp` and 0 of `series`, with `rows` points buffered on dp[0].
    fn state(rows: u64) -> State {
        let mut s = State::default();
        for key in [("dp".to_owned(), 0), ("dp".to_owned(), 1), ("series".to_owned(), 0)] {
            s.positions.insert(key, Position { committed: Some(10), next: None });
        }
        let buffer = s.buffers.entry(("dp".to_owned(), 0)).or_default();
        for i in 0..rows {
            buffer.points.push(point(10 + i as i64));
        }
        buffer.rows = rows;
        buffer.bytes = rows * 100;
        s.buffered_rows = rows;
        s.buffered_bytes = rows * 100;
        if rows > 0 {
            s.positions.get_mut(&("dp".to_owned(), 0)).unwrap().next = Some(10 + rows as i64);
        }
        s
    }

    #[test]
    fn a_commit_is_due_by_rows_bytes_age_or_a_held_partitions_retry() {
        let c = config();
        let now = Instant::now();
        let mut s = state(3);
        assert!(!s.commit_due(&c, now), "3 fresh rows wait for the interval");
        s.oldest = Some(now);
        assert!(!s.commit_due(&c, now + c.commit_interval / 2));
        assert!(s.commit_due(&c, now + c.commit_interval), "the oldest row waited COMMIT_INTERVAL");
        let mut s = state(0);
        s.buffered_rows = c.commit_max_rows;
        assert!(s.commit_due(&c, now), "COMMIT_MAX_ROWS");
        let mut s = state(0);
        s.buffered_bytes = c.commit_max_bytes.min(c.max_buffered_bytes);
        assert!(s.commit_due(&c, now), "COMMIT_MAX_BYTES");
        let mut s = state(0);
        let undelivered = Undelivered { dlq_topic: "dp.dlq".into(), letters: 1, reason: "refused".into() };
        s.held.insert(
            ("dp".to_owned(), 1),
            Held { undelivered, since: now, attempts: 1, retry_at: now + Duration::from_secs(1) },
        );
        assert!(!s.commit_due(&c, now), "a held partition waits for its backoff");
        assert!(s.commit_due(&c, now + Duration::from_secs(1)), "then its retry is due");
    }

    #[test]
    fn sealing_takes_the_moved_partitions_and_leaves_held_ones() {
        let now = Instant::now();
        let mut s = state(3);
        s.oldest = Some(now);
        // dp[1] buffered too, but it is held for its dead letters and still waiting.
        s.positions.get_mut(&("dp".to_owned(), 1)).unwrap().next = Some(12);
        let b = s.buffers.entry(("dp".to_owned(), 1)).or_default();
        b.points.push(point(10));
        b.rows = 1;
        b.bytes = 100;
        s.buffered_rows += 1;
        s.buffered_bytes += 100;
        let undelivered = Undelivered { dlq_topic: "dp.dlq".into(), letters: 1, reason: "refused".into() };
        s.held.insert(
            ("dp".to_owned(), 1),
            Held { undelivered, since: now, attempts: 1, retry_at: now + Duration::from_secs(5) },
        );
        let sealed = s.seal("series", now).expect("dp[0] moved");
        assert_eq!(
            sealed.updates[&TableKind::DataPoints],
            [OffsetUpdate { topic: "dp".into(), partition: 0, expected: Some(10), next: 13 }]
        );
        assert!(!sealed.updates.contains_key(&TableKind::Series), "series[0] did not move");
        assert_eq!((sealed.rows, sealed.bytes), (3, 300));
        assert!(s.committing && s.committing_bytes == 300 * COMMIT_WORKING_COPIES);
        assert_eq!((s.buffered_rows, s.buffered_bytes), (1, 100), "the held partition keeps its row");
        assert!(s.buffers.contains_key(&("dp".to_owned(), 1)) && !s.buffers.contains_key(&("dp".to_owned(), 0)));
        let (batches, rows) =
            table_rows(TableKind::DataPoints, &sealed.updates[&TableKind::DataPoints], &sealed.buffers).unwrap();
        assert_eq!((rows, batches.iter().map(RecordBatch::num_rows).sum::<usize>()), (3, 3));
        // The commit landed (the committer records the new position); nothing else moved.
        s.positions.get_mut(&("dp".to_owned(), 0)).unwrap().committed = Some(13);
        s.committing = false;
        assert!(s.seal("series", now).is_none());
        assert_eq!(s.oldest, None, "only held data: the retry time wakes the loop, not the interval");
    }

    #[test]
    fn assignment_admission_and_revocation() {
        let now = Instant::now();
        let mut s = state(2);
        let dp0 = ("dp".to_owned(), 0);
        assert!(!s.admit(&("other".to_owned(), 0), 5), "not ours");
        assert!(!s.admit(&dp0, 11), "re-delivered below what is buffered");
        assert!(s.admit(&dp0, 12));
        s.buffer(dp0.clone(), Accepted::Point(point(12)), 100, now);
        assert_eq!((s.buffered_rows, s.buffered_bytes, s.report.records_consumed), (3, 300, 1));
        assert_eq!(s.oldest, Some(now));
        // Re-assigned (a rebalance gave it back): start at the table's position, drop the buffer.
        s.assign(dp0.clone(), Some(20));
        assert_eq!((s.buffered_rows, s.buffered_bytes), (0, 0));
        assert!(!s.admit(&dp0, 19), "below the table's position");
        assert!(s.admit(&dp0, 20));
        s.revoke(&dp0);
        assert!(!s.positions.contains_key(&dp0) && s.buffers.is_empty() && s.oldest.is_none());
        assert!(!s.admit(&dp0, 21), "revoked");
    }

    #[test]
    fn settling_moves_landed_positions_and_gives_back_the_rest() {
        let now = Instant::now();
        let mut s = state(3);
        s.oldest = Some(now);
        let series0 = ("series".to_owned(), 0);
        assert!(s.admit(&series0, 10));
        let meta = vintagelake_schemas::decode_series_json(
            br#"{"version":1,"id":"GDPC1","source_id":"fred","title":"Real GDP","frequency":"Quarterly"}"#,
        )
        .unwrap();
        s.buffer(
            series0.clone(),
            Accepted::Series(meta.into_series(vintagelake_schemas::Timestamp::now()), 10 << 20),
            50,
            now,
        );
        let mut sealed = s.seal("series", now).unwrap();
        assert_eq!(sealed.updates.len(), 2);
        // data_points landed, series failed: dp[0] moves, series[0] gets its row back.
        s.settle(&mut sealed, &[TableKind::DataPoints], true);
        assert_eq!(s.positions[&("dp".to_owned(), 0)].committed, Some(13));
        assert_eq!(s.positions[&series0].committed, Some(10));
        assert_eq!((s.buffered_rows, s.buffered_bytes), (1, 50));
        assert_eq!(s.buffers[&series0].series.len(), 1);
        assert_eq!(s.oldest, Some(now), "the given-back rows keep their age");
        // Fenced: nothing given back (the table's positions are re-read).
        let mut s = state(3);
        let mut sealed = s.seal("series", now).unwrap();
        s.settle(&mut sealed, &[], false);
        assert_eq!((s.buffered_rows, s.positions[&("dp".to_owned(), 0)].committed), (0, Some(10)));
    }

    #[test]
    fn undelivered_dead_letters_hold_their_partition() {
        let now = Instant::now();
        let mut s = state(3);
        let dp0 = ("dp".to_owned(), 0);
        let mut sealed = s.seal("series", now).unwrap();
        let u = Undelivered { dlq_topic: "dp.dlq".into(), letters: 1, reason: "no such topic".into() };
        s.hold_undelivered(&mut sealed, HashMap::from([(dp0.clone(), u.clone())]), now);
        assert_eq!((s.buffered_rows, s.held[&dp0].attempts), (3, 1));
        assert_eq!(s.held[&dp0].retry_at, now + dlq_backoff(1));
        assert!(s.held_summary().unwrap().contains("dp[0] holds 1 letter(s) for dp.dlq"));
        s.committing = false;
        let later = now + dlq_backoff(1);
        let mut sealed = s.seal("series", later).expect("the backoff ended: retried");
        let two = Undelivered { letters: 2, ..u.clone() };
        s.hold_undelivered(&mut sealed, HashMap::from([(dp0.clone(), two)]), later);
        assert_eq!(s.held[&dp0].attempts, 2, "nothing landed: the backoff grows");
        s.committing = false;
        let later = later + dlq_backoff(2);
        let mut sealed = s.seal("series", later).unwrap();
        s.hold_undelivered(&mut sealed, HashMap::from([(dp0.clone(), u)]), later);
        assert_eq!(s.held[&dp0].attempts, 1, "some letters landed: retried soon");
        assert_eq!(s.held[&dp0].retry_at, later + dlq_backoff(1));
        s.committing = false;
        let mut sealed = s.seal("series", later + dlq_backoff(1)).unwrap();
        s.hold_undelivered(&mut sealed, HashMap::new(), later + dlq_backoff(1));
        assert!(s.held.is_empty() && s.held_summary().is_none(), "delivered: released");
    }

    #[test]
    fn a_failed_commit_gives_its_rows_back() {
        let mut a = PartitionBuffer { rows: 1, bytes: 10, ..Default::default() };
        a.points.push(point(5));
        let mut b = PartitionBuffer { rows: 2, bytes: 20, ..Default::default() };
        b.points.extend([point(1), point(2)]);
        a.absorb(b);
        assert_eq!((a.rows, a.bytes, a.points.len()), (3, 30, 3));
    }
}
