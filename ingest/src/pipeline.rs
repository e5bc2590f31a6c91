//! The ingest loop: consume both topics as one group, validate, buffer, and commit rows together
//! with the Kafka offsets they cover — exactly once.
//!
//! Positions live in the tables, not in the consumer group: on every assignment the rebalance
//! callback reads the offsets recorded in the tables and starts each partition there. A commit
//! names, per partition, the offset it started from; if the table holds another one, another
//! replica owns the partition now and the commit is refused (fenced): this replica drops what it
//! buffered and re-seeks to the table's positions. Group offsets are committed after each table
//! commit only so that lag tools keep working.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vintagelake_schemas::table::{StoredDataPoint, stored_data_points_to_batch, stored_series_to_batch};
use vintagelake_schemas::{
    DataPointRevision, SeriesMetadata, Timestamp, WireFormat, decode_data_points, decode_series_json,
};
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::OffsetUpdate;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::health::Readiness;
use vintagelake_storage::store::IngestTarget;

use crate::config::IngestConfig;
use crate::dlq::{DeadLetter, DeadLetterQueue, Rejection};
use crate::error::{IngestError, Result};
use crate::metrics as m;

/// Rows of one message are numbered within it: `ingest_seq = offset << ROW_BITS | row`.
pub const ROW_BITS: u32 = 20;

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

type PartitionKey = (String, i32);

/// A partition this replica owns: where the table says it stands and how far we buffered.
#[derive(Debug, Clone)]
struct Position {
    /// Offset recorded in the table when we took the partition or last committed it.
    committed: Option<i64>,
    /// Next offset to buffer; `None` until the first message arrives.
    next: Option<i64>,
}

#[derive(Debug, Default)]
struct PartitionBuffer {
    points: Vec<StoredDataPoint>,
    series: Vec<(vintagelake_schemas::EconomicSeries, i64)>,
}

/// State shared with the rebalance callback, which runs inside `recv()`.
#[derive(Debug, Default)]
struct State {
    positions: HashMap<PartitionKey, Position>,
    buffers: HashMap<PartitionKey, PartitionBuffer>,
    buffered_bytes: u64,
    buffered_rows: u64,
    oldest: Option<Instant>,
}

impl State {
    fn clear_buffers(&mut self) {
        self.buffers.clear();
        self.buffered_bytes = 0;
        self.buffered_rows = 0;
        self.oldest = None;
        metrics::gauge!(m::BUFFERED_BYTES).set(0.0);
    }
}

struct Context {
    store: Arc<dyn IngestTarget>,
    state: Arc<Mutex<State>>,
    tables: HashMap<String, TableKind>,
    runtime: tokio::runtime::Handle,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl Context {
    /// The table positions of every partition of our topics (blocking: runs in the callback).
    fn recorded_offsets(&self) -> std::result::Result<HashMap<PartitionKey, i64>, StorageError> {
        let store = self.store.clone();
        let kinds: Vec<TableKind> = {
            let mut k: Vec<TableKind> = self.tables.values().copied().collect();
            k.dedup();
            k
        };
        tokio::task::block_in_place(|| {
            self.runtime.block_on(async move {
                let mut all = HashMap::new();
                for kind in kinds {
                    for (k, v) in store.recorded_offsets(kind).await? {
                        all.insert(k, v);
                    }
                }
                Ok(all)
            })
        })
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        metrics::counter!(m::REBALANCES).increment(1);
        match rebalance {
            Rebalance::Assign(tpl) => {
                // Start every partition where the table says it stands. Retry: consuming without
                // knowing the table's position could duplicate data.
                let mut recorded = None;
                for attempt in 0..30u32 {
                    match self.recorded_offsets() {
                        Ok(r) => {
                            recorded = Some(r);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, attempt, "cannot read recorded offsets; retrying");
                            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt.min(10) + 1)));
                        }
                    }
                }
                let Some(recorded) = recorded else {
                    tracing::error!("cannot read the table's offsets: aborting rather than risk duplicates");
                    std::process::exit(75);
                };
                let mut state = self.state.lock().expect("state lock");
                for mut elem in tpl.elements() {
                    let key = (elem.topic().to_owned(), elem.partition());
                    let committed = recorded.get(&key).copied();
                    let offset = committed.map_or(Offset::Beginning, Offset::Offset);
                    if let Err(e) = elem.set_offset(offset) {
                        tracing::error!(topic = %key.0, partition = key.1, error = %e, "cannot set start offset");
                    }
                    tracing::info!(topic = %key.0, partition = key.1, ?committed, "assigned");
                    state.buffers.remove(&key);
                    state.positions.insert(key, Position { committed, next: None });
                }
            }
            Rebalance::Revoke(tpl) => {
                // What we buffered for these partitions is dropped: the next owner re-reads it
                // from the table's position.
                let mut state = self.state.lock().expect("state lock");
                for elem in tpl.elements() {
                    let key = (elem.topic().to_owned(), elem.partition());
                    tracing::info!(topic = %key.0, partition = key.1, "revoked");
                    state.positions.remove(&key);
                    if let Some(b) = state.buffers.remove(&key) {
                        state.buffered_rows -= (b.points.len() + b.series.len()) as u64;
                    }
                }
                if state.buffers.is_empty() {
                    state.clear_buffers();
                }
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The ingest daemon.
pub struct Ingest {
    options: IngestOptions,
    store: Arc<dyn IngestTarget>,
    readiness: Arc<Readiness>,
    consumer: Arc<StreamConsumer<Context>>,
    state: Arc<Mutex<State>>,
    dlq: DeadLetterQueue,
    report: IngestReport,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("options", &self.options).finish_non_exhaustive()
    }
}

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
        let state = Arc::new(Mutex::new(State::default()));
        let tables = HashMap::from([
            (c.datapoints_topic.clone(), TableKind::DataPoints),
            (c.series_topic.clone(), TableKind::Series),
        ]);
        let context =
            Context { store: store.clone(), state: state.clone(), tables, runtime: tokio::runtime::Handle::current() };
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
            .set("heartbeat.interval.ms", "1000");
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
            .set("message.timeout.ms", "60000");
        for (k, v) in &options.kafka_overrides {
            pcfg.set(k, v);
        }
        let producer: FutureProducer = pcfg.create().map_err(IngestError::client)?;
        let dlq = DeadLetterQueue::new(producer, c.dlq_suffix.clone());
        Ok(Self {
            options,
            store,
            readiness,
            consumer: Arc::new(consumer),
            state,
            dlq,
            report: IngestReport::default(),
        })
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
        let interval = self.options.config.commit_interval;
        let consumer = self.consumer.clone();
        let mut failing_since: Option<Instant> = None;
        let mut retry_delay = Duration::from_millis(250);
        loop {
            // While commits fail (catalog or disk down), stop consuming: the buffer stays bounded and
            // the Kafka position stays put.
            if failing_since.is_some() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(retry_delay) => {}
                }
                match self.commit().await {
                    Ok(()) => {
                        failing_since = None;
                        retry_delay = Duration::from_millis(250);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "commit still failing; not consuming");
                        retry_delay = (retry_delay * 2).min(Duration::from_secs(10));
                    }
                }
                continue;
            }
            let deadline = {
                let state = self.state.lock().expect("state lock");
                state.oldest.map(|t| t + interval)
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = sleep => {}
                msg = consumer.recv() => match msg {
                    Ok(msg) => self.accept(&msg)?,
                    Err(e) if is_out_of_range(&e) => {
                        tracing::warn!(error = %e, "a position is outside the broker's log; repositioning");
                        self.reposition(Some(&shutdown)).await?;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "consumer error");
                        self.readiness.set("broker", false, e.to_string());
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
            if self.commit_due()
                && let Err(e) = self.commit().await
            {
                tracing::warn!(error = %e, "commit failed; will retry");
                metrics::counter!(m::COMMIT_FAILURES).increment(1);
                failing_since = Some(Instant::now());
            }
        }
        // Shutdown: stop consuming, flush, commit, within a bounded time.
        tracing::info!("shutting down: committing buffered data");
        let timeout = self.options.config.shutdown_timeout;
        let result = tokio::time::timeout(timeout, async {
            let mut delay = Duration::from_millis(100);
            loop {
                match self.commit().await {
                    Ok(()) => return Ok(()),
                    Err(IngestError::Commit(StorageError::Fenced { .. })) => return Ok(()),
                    Err(e) => {
                        tracing::warn!(error = %e, "final commit failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        })
        .await;
        health.abort();
        self.consumer.unsubscribe();
        match result {
            Ok(Ok(())) => Ok(self.report),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(IngestError::ShutdownTimeout(timeout)),
        }
    }

    fn commit_due(&self) -> bool {
        let c = &self.options.config;
        let state = self.state.lock().expect("state lock");
        state.buffered_rows >= c.commit_max_rows
            || state.buffered_bytes >= c.commit_max_bytes.min(c.max_buffered_bytes)
            || state.oldest.is_some_and(|t| t.elapsed() >= c.commit_interval)
    }

    /// Validates one message into the buffer, or dead-letters it.
    fn accept(&mut self, msg: &BorrowedMessage<'_>) -> Result<()> {
        let topic = msg.topic();
        let key = (topic.to_owned(), msg.partition());
        let offset = msg.offset();
        let received = msg
            .timestamp()
            .to_millis()
            .map(|ms| Timestamp::from_nanos(ms.saturating_mul(1_000_000)))
            .unwrap_or_else(Timestamp::now);
        {
            let mut state = self.state.lock().expect("state lock");
            let Some(pos) = state.positions.get_mut(&key) else {
                return Ok(()); // not ours (any more)
            };
            if pos.next.is_some_and(|n| offset < n) || pos.committed.is_some_and(|c| offset < c) {
                return Ok(()); // re-delivered after a seek
            }
            pos.next = Some(offset + 1);
        }
        self.report.records_consumed += 1;
        metrics::counter!(m::CONSUMED, "topic" => topic.to_owned()).increment(1);
        let payload = msg.payload().unwrap_or_default();
        let seq0 = offset << ROW_BITS;
        let is_series = topic == self.options.config.series_topic;
        let decoded: std::result::Result<Accepted, Rejection> = if is_series {
            decode_series_json(payload).map(|m| Accepted::Series(Box::new(m))).map_err(rejection)
        } else {
            decode_data_points(payload).map_err(rejection).and_then(|records| {
                check_key(msg.key(), payload, &records)?;
                Ok(Accepted::Points(records))
            })
        };
        match decoded {
            Ok(accepted) => {
                let mut state = self.state.lock().expect("state lock");
                let buffer = state.buffers.entry(key).or_default();
                let rows = match accepted {
                    Accepted::Points(records) => {
                        let n = records.len();
                        buffer.points.extend(records.into_iter().enumerate().map(|(i, r)| StoredDataPoint {
                            point: r.into_data_point(received),
                            realtime_end: None,
                            ingest_seq: seq0 | i as i64,
                        }));
                        n
                    }
                    Accepted::Series(meta) => {
                        buffer.series.push((meta.into_series(received), seq0));
                        1
                    }
                };
                state.buffered_rows += rows as u64;
                state.buffered_bytes += payload.len() as u64 + 64;
                state.oldest.get_or_insert_with(Instant::now);
                metrics::gauge!(m::BUFFERED_BYTES).set(state.buffered_bytes as f64);
            }
            Err(rejection) => {
                self.report.dead_lettered += 1;
                self.dlq.send(DeadLetter {
                    topic,
                    partition: msg.partition(),
                    offset,
                    key: msg.key(),
                    payload: msg.payload(),
                    rejection,
                })?;
                let mut state = self.state.lock().expect("state lock");
                state.oldest.get_or_insert_with(Instant::now);
            }
        }
        Ok(())
    }

    /// Commits everything buffered (and the positions it covers) to the tables.
    async fn commit(&mut self) -> Result<()> {
        let (points, series, updates) = {
            let state = self.state.lock().expect("state lock");
            let mut points = Vec::new();
            let mut series = Vec::new();
            let mut updates: HashMap<TableKind, Vec<OffsetUpdate>> = HashMap::new();
            for (key, pos) in &state.positions {
                let Some(next) = pos.next else { continue };
                if pos.committed == Some(next) {
                    continue;
                }
                let kind =
                    if key.0 == self.options.config.series_topic { TableKind::Series } else { TableKind::DataPoints };
                updates.entry(kind).or_default().push(OffsetUpdate {
                    topic: key.0.clone(),
                    partition: key.1,
                    expected: pos.committed,
                    next,
                });
                if let Some(b) = state.buffers.get(key) {
                    points.extend(b.points.iter().cloned());
                    series.extend(b.series.iter().cloned());
                }
            }
            (points, series, updates)
        };
        if updates.is_empty() {
            return Ok(());
        }
        let dead = self.dlq.flush().await?;
        let started = Instant::now();
        let bytes = self.state.lock().expect("state lock").buffered_bytes;
        for (kind, rows) in [(TableKind::DataPoints, points.len()), (TableKind::Series, series.len())] {
            let Some(offsets) = updates.get(&kind).cloned() else { continue };
            let batch = match kind {
                TableKind::DataPoints => stored_data_points_to_batch(&points),
                TableKind::Series => stored_series_to_batch(&series),
            }
            .map_err(|e| IngestError::Commit(e.into()))?;
            let t = Instant::now();
            match self.store.append(kind, &[batch], offsets.clone(), "ingest").await {
                Ok(c) => {
                    metrics::histogram!(m::COMMIT_DURATION, "table" => kind.name()).record(t.elapsed().as_secs_f64());
                    metrics::counter!(m::COMMITTED, "table" => kind.name()).increment(rows as u64);
                    metrics::counter!(m::COMMIT_RETRIES, "table" => kind.name()).increment(u64::from(c.attempts - 1));
                    self.report.commits += 1;
                    self.report.rows_committed += rows as u64;
                    let mut state = self.state.lock().expect("state lock");
                    for o in &offsets {
                        if let Some(p) = state.positions.get_mut(&(o.topic.clone(), o.partition)) {
                            p.committed = Some(o.next);
                        }
                    }
                    self.readiness.set("catalog", true, "last commit succeeded");
                }
                Err(e @ StorageError::Fenced { .. }) => {
                    metrics::counter!(m::FENCED).increment(1);
                    self.report.fenced += 1;
                    tracing::warn!(error = %e, "fenced: another replica owns a partition; re-reading from the table's positions");
                    self.reposition(None).await?;
                    return Err(IngestError::Commit(e));
                }
                Err(e) => {
                    self.readiness.set("catalog", false, e.to_string());
                    return Err(IngestError::Commit(e));
                }
            }
        }
        metrics::histogram!(m::BATCH_ROWS).record((points.len() + series.len()) as f64);
        metrics::histogram!(m::BATCH_BYTES).record(bytes as f64);
        tracing::debug!(rows = points.len() + series.len(), dead_lettered = dead, took = ?started.elapsed(), "committed");
        let tpl = {
            let mut state = self.state.lock().expect("state lock");
            state.clear_buffers();
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), pos) in &state.positions {
                if let Some(c) = pos.committed {
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(c));
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
        Ok(())
    }
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
                let mut state = self.state.lock().expect("state lock");
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

enum Accepted {
    Points(Vec<DataPointRevision>),
    Series(Box<SeriesMetadata>),
}

fn rejection(e: vintagelake_schemas::ValidationError) -> Rejection {
    Rejection { code: e.reason().code(), field: e.field().to_owned(), message: e.to_string() }
}

/// A single-revision JSON message must be keyed by its series id (ordering depends on it).
fn check_key(key: Option<&[u8]>, payload: &[u8], records: &[DataPointRevision]) -> std::result::Result<(), Rejection> {
    if WireFormat::detect(payload) != WireFormat::Json {
        return Ok(());
    }
    match (key, records) {
        (Some(k), [r]) if k != r.series_id.as_str().as_bytes() => Err(Rejection {
            code: "key_mismatch",
            field: "series_id".into(),
            message: format!(
                "message key {:?} is not the series id {:?}: keys must be series ids so a series stays ordered",
                String::from_utf8_lossy(k),
                r.series_id.as_str()
            ),
        }),
        _ => Ok(()),
    }
}

/// Keeps `/ready` honest: the broker answers metadata requests, the store answers its probe.
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
