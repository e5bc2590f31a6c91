//! The ingest loop: consume both topics as one group, validate (`accept.rs`), buffer
//! (`buffer.rs`), and commit rows together with the Kafka offsets they cover (`committer.rs`) —
//! exactly once. The rebalance callback is `rebalance.rs`.
//!
//! Positions live in the tables, not in the consumer group: on every assignment the rebalance
//! callback reads the offsets recorded in the tables and starts each partition there. A commit
//! names, per partition, the offset it started from; if the table holds another one, another
//! replica owns the partition now and the commit is refused (fenced): this replica drops what it
//! buffered and re-seeks to the table's positions. Group offsets are committed after each table
//! commit only so that lag tools keep working.
//!
//! Commits run in the background while consuming goes on (double buffering): when a commit is
//! due, the buffer is sealed and handed to a commit task, and a fresh buffer fills meanwhile. At
//! most one commit runs at a time, so each one starts from the positions the previous one
//! recorded. If it fails, its rows go back into the buffer and the next attempt commits them with
//! what arrived since; while commits keep failing, consuming stops. A rebalance waits for the
//! running commit to finish before it changes which partitions this replica owns.
//!
//! Bulk (Arrow IPC) messages are validated a column at a time and kept as Arrow batches in the
//! table's schema; only single-revision JSON messages go through a struct per revision.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vintagelake_runtime::health::Readiness;
use vintagelake_schemas::Timestamp;
use vintagelake_schemas::ipc::MAX_IPC_ROWS_BITS;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::store::IngestTarget;

use crate::accept::decode;
use crate::buffer::{PartitionKey, Position, Sealed, Shared, State, caught_up_spacing};
use crate::committer::Committer;
use crate::config::IngestConfig;
use crate::dlq::{DeadLetterQueue, Letter};
use crate::error::{IngestError, Result};
use crate::metrics as m;
use crate::rebalance::Context;

/// Rows of one message are numbered within it: `ingest_seq = offset << ROW_BITS | row` (a bulk
/// message of more rows is rejected by the validator).
pub const ROW_BITS: u32 = MAX_IPC_ROWS_BITS;

/// What an ingest run did (returned on shutdown).
#[derive(Debug, Default, Clone)]
pub struct IngestReport {
    pub records_consumed: u64,
    pub rows_committed: u64,
    pub dead_lettered: u64,
    pub commits: u64,
    pub fenced: u64,
}

/// Everything ingest needs besides its configuration block.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub config: IngestConfig,
    pub bootstrap_servers: String,
    pub health_check_interval: Duration,
    /// Extra librdkafka settings (e.g. `security.protocol`).
    pub kafka_overrides: BTreeMap<String, String>,
}

/// The ingest daemon.
pub struct Ingest {
    options: IngestOptions,
    store: Arc<dyn IngestTarget>,
    readiness: Arc<Readiness>,
    consumer: Arc<StreamConsumer<Context>>,
    shared: Arc<Shared>,
    dlq: Arc<DeadLetterQueue>,
    /// Partitions paused because they are held for their dead letters.
    paused: std::collections::HashSet<PartitionKey>,
    /// The background commit, if one runs.
    in_flight: Option<JoinHandle<Result<()>>>,
    /// Since when commits fail (consuming is paused meanwhile).
    failing_since: Option<Instant>,
    retry_delay: Duration,
    /// When the last record arrived (a consumer with nothing new for `COMMIT_WHEN_IDLE` has
    /// caught up and commits what it holds).
    last_record: Option<Instant>,
    /// When the last commit started (`COMMIT_MIN_SPACING` applies to caught-up commits).
    last_commit_started: Option<Instant>,
    /// When every owned partition was last found at its end (after the last record).
    at_end: Option<Instant>,
    /// Per partition number: when its last record arrived and when it last reached its end.
    /// (The client's end-of-partition event names the partition, not the topic; a partition
    /// number shared by both topics can count as at its end a little early, which only makes a
    /// commit come sooner.)
    ends: HashMap<i32, (Option<Instant>, Option<Instant>)>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("options", &self.options).finish_non_exhaustive()
    }
}

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);

impl Ingest {
    /// Connects the consumer and the dead-letter producer and subscribes to both topics.
    pub fn new(options: IngestOptions, store: Arc<dyn IngestTarget>, readiness: Arc<Readiness>) -> Result<Self> {
        let c = &options.config;
        if c.max_buffered_bytes < c.commit_max_bytes {
            return Err(IngestError::Config(format!(
                "MAX_BUFFERED_BYTES ({}) must be at least COMMIT_MAX_BYTES ({})",
                c.max_buffered_bytes, c.commit_max_bytes
            )));
        }
        let shared = Arc::new(Shared::default());
        let tables = HashMap::from([
            (c.datapoints_topic.clone(), TableKind::DataPoints),
            (c.series_topic.clone(), TableKind::Series),
        ]);
        let context = Context {
            store: store.clone(),
            shared: shared.clone(),
            tables,
            runtime: tokio::runtime::Handle::current(),
        };
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &options.bootstrap_servers)
            .set("group.id", &c.consumer_group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Never let the client jump on its own: an out-of-range position is handled below.
            .set("auto.offset.reset", "error")
            .set("statistics.interval.ms", "5000")
            .set("queued.max.messages.kbytes", "65536")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Reaching the end of a partition is an event: with every partition at its end the
            // consumer has caught up and commits what it holds (see `caught_up_at`).
            .set("enable.partition.eof", "true")
            // Incremental rebalancing: a replica joining or leaving moves only the partitions that
            // change owner; the others keep being consumed and committed meanwhile. (Every replica
            // of a group must use it: stop all replicas of an older version before starting these.)
            .set("partition.assignment.strategy", "cooperative-sticky");
        for (k, v) in &options.kafka_overrides {
            cfg.set(k, v);
        }
        let consumer: StreamConsumer<Context> = cfg.create_with_context(context).map_err(IngestError::client)?;
        let topics = [c.datapoints_topic.as_str(), c.series_topic.as_str()];
        consumer
            .subscribe(&topics)
            .map_err(|source| IngestError::Subscribe { topics: topics.join(","), source: Box::new(source) })?;
        let mut pcfg = ClientConfig::new();
        pcfg.set("bootstrap.servers", &options.bootstrap_servers)
            .set("enable.idempotence", "true")
            // Dead letters go where the operator (or CREATE_TOPICS) made the topic, never into one
            // the broker invents with its defaults; a missing topic holds the partition, loudly.
            .set("allow.auto.create.topics", "false")
            // A dead-letter topic created while partitions are held for it is seen within 10 s
            // (the client's default re-reads topic metadata every 5 minutes).
            .set("topic.metadata.refresh.interval.ms", "10000")
            .set("message.timeout.ms", c.dlq_delivery_timeout.as_millis().max(1).to_string());
        for (k, v) in &options.kafka_overrides {
            pcfg.set(k, v);
        }
        let dlq = Arc::new(DeadLetterQueue::new(pcfg, c.dlq_suffix.clone()).map_err(IngestError::client)?);
        readiness.set("dlq", true, "no dead letter waiting");
        Ok(Self {
            options,
            store,
            readiness,
            consumer: Arc::new(consumer),
            shared,
            dlq,
            paused: Default::default(),
            in_flight: None,
            failing_since: None,
            retry_delay: FIRST_RETRY_DELAY,
            last_record: None,
            last_commit_started: None,
            at_end: None,
            ends: HashMap::new(),
        })
    }

    fn committer(&self) -> Committer {
        Committer {
            store: self.store.clone(),
            shared: self.shared.clone(),
            consumer: self.consumer.clone(),
            readiness: self.readiness.clone(),
            dlq: self.dlq.clone(),
        }
    }

    /// Consumes and commits until `shutdown`; then commits what is buffered and returns.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<IngestReport> {
        let health = tokio::spawn(health_checks(
            self.consumer.clone(),
            self.store.clone(),
            self.readiness.clone(),
            self.options.health_check_interval,
            shutdown.child_token(),
        ));
        let result = self.consume(&shutdown).await;
        let result = match result {
            Ok(()) => self.drain().await,
            Err(e) => Err(e),
        };
        health.abort();
        self.consumer.unsubscribe();
        let report = self.shared.lock().report.clone();
        result.map(|()| report)
    }

    async fn consume(&mut self, shutdown: &CancellationToken) -> Result<()> {
        let interval = self.options.config.commit_interval;
        let max_buffered = self.options.config.max_buffered_bytes;
        let consumer = self.consumer.clone();
        let mut position_check =
            tokio::time::interval(self.options.health_check_interval.max(Duration::from_millis(100)));
        position_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // While commits fail (catalog or disk down), stop consuming: the buffer stays bounded and
            // the Kafka position stays put.
            if self.failing_since.is_some() {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(self.retry_delay) => {}
                }
                let result = self.commit_inline().await;
                self.retry_delay = (self.retry_delay * 2).min(Duration::from_secs(10));
                self.after_commit(result).await?;
                continue;
            }
            let (deadline, full) = {
                let mut state = self.shared.lock();
                match self.in_flight {
                    // The running commit's end wakes the loop; nothing else is due before it.
                    Some(_) => (None, state.buffered_bytes + state.committing_bytes >= max_buffered),
                    None => {
                        let retry = state.held.values().map(|h| h.retry_at).min();
                        let due = state.oldest.map(|t| t + interval);
                        let caught_up = state.oldest.and(self.caught_up_at(&mut state));
                        (due.into_iter().chain(retry).chain(caught_up).min(), false)
                    }
                }
            };
            let mut letter = None;
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = sleep => {}
                _ = position_check.tick(), if self.in_flight.is_none() => self.check_positions().await?,
                done = join(&mut self.in_flight) => {
                    self.in_flight = None;
                    self.after_commit(done).await?;
                }
                // At MAX_BUFFERED_BYTES (sealed + new), wait for the running commit to end.
                msg = consumer.recv(), if !full => match msg {
                    Ok(msg) => {
                        let now = Instant::now();
                        self.last_record = Some(now);
                        self.ends.entry(msg.partition()).or_default().0 = Some(now);
                        letter = self.accept(&msg);
                    }
                    Err(rdkafka::error::KafkaError::PartitionEOF(partition)) => {
                        let now = Instant::now();
                        self.ends.entry(partition).or_default().1 = Some(now);
                        if self.every_partition_at_end() {
                            self.at_end = Some(now);
                        }
                    }
                    Err(e) if is_out_of_range(&e) => {
                        tracing::warn!(error = %e, "a position is outside the broker's log; repositioning");
                        self.settle().await?;
                        self.reposition(Some(shutdown)).await?;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "consumer error");
                        self.readiness.set("broker", false, e.to_string());
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
            if let Some(mut l) = letter {
                // Sent now so the delivery overlaps consuming; the commit awaits it.
                self.dlq.send(&mut l).await;
                self.buffer_letter(l);
            }
            self.sync_paused();
            if self.in_flight.is_none()
                && self.failing_since.is_none()
                && let Some(reason) = self.commit_reason()
                && let Some(sealed) = self.seal()
            {
                metrics::counter!(m::COMMITS_STARTED, "reason" => reason).increment(1);
                self.last_commit_started = Some(Instant::now());
                let task = self.committer().commit(sealed);
                let runtime = tokio::runtime::Handle::current();
                // Sorting and Parquet encoding are CPU work: a blocking thread keeps them off the
                // worker that consumes.
                self.in_flight = Some(tokio::task::spawn_blocking(move || runtime.block_on(task)));
            }
        }
    }

    /// Shutdown: stop consuming, let the running commit end, commit the rest, within a bounded time.
    async fn drain(&mut self) -> Result<()> {
        tracing::info!("shutting down: committing buffered data");
        let timeout = self.options.config.shutdown_timeout;
        let result = tokio::time::timeout(timeout, async {
            if let Some(handle) = self.in_flight.take() {
                match join_handle(handle).await {
                    Ok(()) | Err(IngestError::Commit(StorageError::Fenced { .. })) => {}
                    Err(e @ IngestError::CommitTask(_)) => return Err(e),
                    Err(e) => tracing::warn!(error = %e, "commit failed; retrying with the rest of the buffer"),
                }
            }
            // Held partitions try their dead letters once more; if those still fail, the
            // partitions keep their positions and a restart re-reads them.
            for h in self.shared.lock().held.values_mut() {
                h.retry_at = Instant::now();
            }
            let mut delay = Duration::from_millis(100);
            loop {
                match self.commit_inline().await {
                    Ok(()) | Err(IngestError::Commit(StorageError::Fenced { .. })) => return Ok(()),
                    Err(e) => {
                        tracing::warn!(error = %e, "final commit failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(_) => Err(IngestError::ShutdownTimeout(timeout)),
        }
    }

    /// Acts on the outcome of a commit: fenced → re-read from the table's positions; failed →
    /// pause consuming and retry (the rows are back in the buffer).
    async fn after_commit(&mut self, result: Result<()>) -> Result<()> {
        match result {
            Ok(()) => {
                self.failing_since = None;
                self.retry_delay = FIRST_RETRY_DELAY;
            }
            Err(IngestError::Commit(StorageError::Fenced { .. })) => {
                self.failing_since = None;
                self.retry_delay = FIRST_RETRY_DELAY;
                self.reposition(None).await?;
            }
            Err(e @ IngestError::CommitTask(_)) => return Err(e),
            Err(e) => {
                if self.failing_since.is_none() {
                    tracing::warn!(error = %e, "commit failed; pausing consumption and retrying");
                } else {
                    tracing::warn!(error = %e, "commit still failing; not consuming");
                }
                metrics::counter!(m::COMMIT_FAILURES).increment(1);
                self.failing_since.get_or_insert_with(Instant::now);
            }
        }
        Ok(())
    }

    /// The table's positions can move under a running replica: a rollback (ours or another
    /// engine's) takes them back with the data. When they differ from what this replica last
    /// committed, re-read every owned partition from the table's positions.
    async fn check_positions(&mut self) -> Result<()> {
        let mut recorded = HashMap::new();
        for kind in [TableKind::DataPoints, TableKind::Series] {
            match self.store.recorded_offsets(kind).await {
                Ok(r) => recorded.extend(r),
                Err(_) => return Ok(()), // the health check reports the catalog
            }
        }
        let moved: Vec<String> = {
            let state = self.shared.lock();
            if state.committing {
                return Ok(());
            }
            state
                .positions
                .iter()
                .filter(|(k, p)| recorded.get(*k).copied() != p.committed)
                .map(|((t, p), pos)| format!("{t}[{p}]: {:?} -> {:?}", pos.committed, recorded.get(&(t.clone(), *p))))
                .collect()
        };
        if !moved.is_empty() {
            tracing::warn!(partitions = ?moved, "the table's positions moved under this replica (a rollback?); re-reading from them");
            self.reposition(None).await?;
        }
        Ok(())
    }

    /// Waits for the running commit, if any, and acts on its outcome.
    async fn settle(&mut self) -> Result<()> {
        if let Some(handle) = self.in_flight.take() {
            let result = join_handle(handle).await;
            self.after_commit(result).await?;
        }
        Ok(())
    }

    /// Seals and commits what is buffered, in this task.
    async fn commit_inline(&mut self) -> Result<()> {
        match self.seal() {
            Some(sealed) => self.committer().commit(sealed).await,
            None => Ok(()),
        }
    }

    /// Why a commit is due now, if one is: the buffer's own rules (size, interval, dead letters),
    /// or the consumer caught up.
    fn commit_reason(&self) -> Option<&'static str> {
        let now = Instant::now();
        let mut state = self.shared.lock();
        state.commit_reason(&self.options.config, now).or_else(|| {
            (state.oldest.is_some() && self.caught_up_at(&mut state).is_some_and(|at| at <= now)).then_some("caught_up")
        })
    }

    /// When what is buffered is committed because the consumer caught up: as soon as every owned
    /// partition was found at its end after the last record, or `COMMIT_WHEN_IDLE` after the
    /// last record (whichever comes first), and no sooner than `COMMIT_MIN_SPACING` after the
    /// last commit started (or the small-file budget's spacing once the last hour used it:
    /// [`caught_up_spacing`]). `None` when turned off or before any record.
    fn caught_up_at(&self, state: &mut State) -> Option<Instant> {
        let c = &self.options.config;
        if c.commit_when_idle.is_zero() {
            return None;
        }
        let last = self.last_record?;
        let idle = last + c.commit_when_idle;
        let caught_up = self.at_end.filter(|t| *t >= last).map_or(idle, |t| t.min(idle));
        let spacing = caught_up_spacing(c, state.files.last_hour(Instant::now()));
        Some(self.last_commit_started.map_or(caught_up, |t| caught_up.max(t + spacing)))
    }

    /// Whether every owned partition reached its end after its last record (by the client's
    /// end-of-partition events; no request to the broker).
    fn every_partition_at_end(&self) -> bool {
        let state = self.shared.lock();
        !state.positions.is_empty()
            && state.positions.keys().all(|(_, partition)| {
                self.ends.get(partition).is_some_and(|(record, end)| end.is_some_and(|e| record.is_none_or(|r| e >= r)))
            })
    }

    /// How many partitions this replica owns, updated after every rebalance (0 until the
    /// consumer group has formed).
    pub fn assignments(&self) -> tokio::sync::watch::Receiver<usize> {
        self.shared.assigned.subscribe()
    }

    fn buffer_letter(&mut self, letter: Letter) {
        self.shared.lock().buffer_letter(letter, Instant::now());
    }

    fn seal(&mut self) -> Option<Sealed> {
        self.shared.lock().seal(&self.options.config.series_topic, Instant::now())
    }

    /// Pauses the partitions held for their dead letters (their buffers stay bounded) and resumes
    /// those released.
    fn sync_paused(&mut self) {
        let held: std::collections::HashSet<PartitionKey> = self.shared.lock().held.keys().cloned().collect();
        let to_tpl = |keys: &[&PartitionKey]| {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in keys {
                tpl.add_partition(t, *p);
            }
            tpl
        };
        let pause: Vec<&PartitionKey> = held.difference(&self.paused).collect();
        if !pause.is_empty()
            && let Err(e) = self.consumer.pause(&to_tpl(&pause))
        {
            tracing::warn!(error = %e, "cannot pause held partitions");
        }
        let resume: Vec<&PartitionKey> = self.paused.difference(&held).collect();
        // A revoked partition is not ours any more; resuming it is harmless.
        if !resume.is_empty()
            && let Err(e) = self.consumer.resume(&to_tpl(&resume))
        {
            tracing::debug!(error = %e, "cannot resume released partitions");
        }
        self.paused = held;
    }

    /// Validates one message into the buffer; a rejected one comes back as a letter to send.
    fn accept(&mut self, msg: &BorrowedMessage<'_>) -> Option<Letter> {
        let topic = msg.topic();
        let key = (topic.to_owned(), msg.partition());
        let offset = msg.offset();
        if !self.shared.lock().admit(&key, offset) {
            return None;
        }
        metrics::counter!(m::CONSUMED, "topic" => topic.to_owned()).increment(1);
        let received = msg
            .timestamp()
            .to_millis()
            .map(|ms| Timestamp::from_nanos(ms.saturating_mul(1_000_000)))
            .unwrap_or_else(Timestamp::now);
        let payload = msg.payload().unwrap_or_default();
        let series_topic = topic == self.options.config.series_topic;
        match decode(series_topic, msg.key(), payload, received, offset << ROW_BITS) {
            Ok(accepted) => {
                let bytes = accepted.memory_size().max(payload.len() as u64) + 64;
                self.shared.lock().buffer(key, accepted, bytes, Instant::now());
                None
            }
            Err(rejection) => Some(Letter::new(topic, msg.partition(), offset, msg.key(), msg.payload(), rejection)),
        }
    }
}

/// The running commit's outcome; pending while none runs (a `select!` branch).
async fn join(in_flight: &mut Option<JoinHandle<Result<()>>>) -> Result<()> {
    match in_flight.as_mut() {
        Some(handle) => flatten(handle.await),
        None => std::future::pending().await,
    }
}

async fn join_handle(handle: JoinHandle<Result<()>>) -> Result<()> {
    flatten(handle.await)
}

fn flatten(joined: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    joined.unwrap_or_else(|e| Err(IngestError::CommitTask(e.to_string())))
}

fn is_out_of_range(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(e.rdkafka_error_code(), Some(C::OffsetOutOfRange | C::AutoOffsetReset))
}

impl Ingest {
    /// Puts every owned partition at the table's position (after an out-of-range error or being
    /// fenced), dropping what was buffered, checked against the broker's log:
    /// below the log start (retention removed messages the table never got) it starts at the log
    /// start and says how many were lost; beyond the log end (the broker lost data, or the topic
    /// was recreated) it waits, not ready, rather than re-read from the beginning and duplicate.
    async fn reposition(&mut self, shutdown: Option<&CancellationToken>) -> Result<()> {
        loop {
            let mut recorded = HashMap::new();
            for kind in [TableKind::DataPoints, TableKind::Series] {
                recorded.extend(self.store.recorded_offsets(kind).await?);
            }
            let owned: Vec<PartitionKey> = {
                let mut state = self.shared.lock();
                state.clear_buffers();
                let keys: Vec<PartitionKey> = state.positions.keys().cloned().collect();
                for k in &keys {
                    state.positions.insert(k.clone(), Position { committed: recorded.get(k).copied(), next: None });
                }
                keys
            };
            let mut behind = Vec::new();
            for (topic, partition) in owned {
                let consumer = self.consumer.clone();
                let t = topic.clone();
                let marks = tokio::task::spawn_blocking(move || {
                    consumer.fetch_watermarks(&t, partition, Duration::from_secs(5))
                })
                .await
                .expect("watermark task");
                let (low, high) = match marks {
                    Ok(m) => m,
                    Err(e) => {
                        behind.push(format!("{topic}[{partition}]: {e}"));
                        continue;
                    }
                };
                let at = recorded.get(&(topic.clone(), partition)).copied().unwrap_or(low);
                let target = if at < low {
                    tracing::error!(%topic, partition, table = at, log_start = low, lost = low - at, "messages expired from Kafka before ingest read them");
                    low
                } else if at > high {
                    behind.push(format!("{topic}[{partition}]: table at {at}, broker log ends at {high}"));
                    continue;
                } else {
                    at
                };
                let consumer = self.consumer.clone();
                let t = topic.clone();
                tokio::task::spawn_blocking(move || {
                    consumer.seek(&t, partition, Offset::Offset(target), Duration::from_secs(10))
                })
                .await
                .expect("seek task")
                .map_err(|source| IngestError::Seek {
                    topic: topic.clone(),
                    partition,
                    offset: target.to_string(),
                    source: Box::new(source),
                })?;
            }
            if behind.is_empty() {
                self.readiness.set("broker_log", true, "positions within the broker's log");
                return Ok(());
            }
            self.readiness.set("broker_log", false, behind.join("; "));
            tracing::warn!(partitions = ?behind, "waiting for the broker's log to reach the table's positions");
            if shutdown.is_some_and(CancellationToken::is_cancelled) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn health_checks(
    consumer: Arc<StreamConsumer<Context>>,
    store: Arc<dyn IngestTarget>,
    readiness: Arc<Readiness>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match store.probe().await {
            Ok(detail) => readiness.set("catalog", true, detail),
            Err(e) => readiness.set("catalog", false, e.to_string()),
        }
        let c = consumer.clone();
        let broker =
            tokio::task::spawn_blocking(move || c.fetch_metadata(None, Duration::from_secs(3)).map(|_| ())).await;
        match broker {
            Ok(Ok(())) => readiness.set("broker", true, "metadata request answered"),
            Ok(Err(e)) => readiness.set("broker", false, e.to_string()),
            Err(e) => readiness.set("broker", false, e.to_string()),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
