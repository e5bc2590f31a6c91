//! `vintagelake bench e2e`: the whole pipeline under load, measured from the outside the way a
//! user sees it. It provisions (or uses) a broker, starts `vintagelake ingest` and
//! `vintagelake query` as their own processes on a fresh warehouse, publishes a synthetic stream
//! of revisions, and reports:
//!
//! - sustained throughput: revisions from the first produce to the commit that makes the last one
//!   durable;
//! - commit latency p50/p99 (the ingest's own `vintagelake_ingest_commit_duration_seconds`
//!   histogram, interpolated within buckets);
//! - freshness p50/p99: a probe revision produced during the load until Flight returns it;
//! - peak RSS of the ingest process (`VmHWM`);
//! - single-series Flight reads (latest view) under 1, 8 and 32 concurrent clients; cold reads
//!   (the first read of a series after a commit that wrote it); one-series reads of a separate
//!   table of many small uncompacted commits; one full-table stream of every revision (time to
//!   the first batch, rows/s) and the query service's peak RSS after it;
//! - a replica killed during load: two ingest replicas under a steady load, one killed with
//!   SIGKILL; the longest time any partition of the survivor goes without a commit, and when the
//!   dead replica's partitions commit again.
//!
//! Settings of the daemons come from the environment as usual (`COMMIT_MAX_ROWS`,
//! `COMMIT_INTERVAL`, …), so a run can be repeated with other settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::produce::{Message, message, producer, publish, publish_tracked};
use vintagelake_kafka::synthetic;
use vintagelake_query::ticket::TicketV1;
use vintagelake_runtime::health::http_get;
use vintagelake_schemas::{DataPointRevision, Date, SeriesId, encode_data_points_ipc};
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::scan::View;
use vintagelake_storage::store::IcebergStore;

use super::Error;

mod sql;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Produce → ingest → Flight under load: throughput, commit latency, freshness, RSS, reads.
    E2e(E2eArgs),
    /// SQL through Flight SQL (ADBC) vs a Flight ticket vs DuckDB in-process over the same files.
    Sql(sql::SqlBenchArgs),
}

/// Options of `vintagelake bench e2e`.
#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Synthetic revisions to publish.
    #[arg(long, default_value_t = 1_000_000)]
    pub revisions: usize,
    /// Wire format of the published messages: `ipc` (bulk Arrow IPC, up to --rows-per-message
    /// revisions of one series each) or `json` (one revision per message).
    #[arg(long, default_value = "ipc", value_parser = ["ipc", "json"])]
    pub format: String,
    /// Revisions per Arrow IPC message.
    #[arg(long, default_value_t = 1_000)]
    pub rows_per_message: usize,
    /// Partitions of the benchmark's topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Concurrent Flight clients of the read benchmark (one run per value).
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// Single-series reads each client makes.
    #[arg(long, default_value_t = 200)]
    pub requests_per_client: usize,
    /// Least number of freshness probes (more are made while the load lasts).
    #[arg(long, default_value_t = 20)]
    pub min_probes: usize,
    /// Kafka bootstrap servers (default: a local broker provisioned for the run).
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub kafka_bootstrap_servers: Option<String>,
    /// Warehouse directory (default: a temporary directory, removed afterwards). Must be empty.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Skip the side-by-side runs (the Python reference pipeline, pyiceberg and DuckDB reads).
    #[arg(long)]
    pub no_compare: bool,
    /// Cold reads: each the first read of a series right after a commit that wrote it.
    #[arg(long, default_value_t = 20)]
    pub cold_reads: usize,
    /// Commits of the uncompacted small-commit table whose one-series reads are measured on
    /// their own (0 skips it).
    #[arg(long, default_value_t = 2_000)]
    pub small_commits: usize,
    /// After the load: a trickle of this many revisions per second (one JSON message each) for
    /// --trickle-seconds, with freshness probes alongside (0 skips it).
    #[arg(long, default_value_t = 1_000)]
    pub trickle_rate: u64,
    /// How long the trickle lasts, in seconds.
    #[arg(long, default_value_t = 10)]
    pub trickle_seconds: u64,
    /// A replica killed during load: two ingest replicas share a topic under a steady load of
    /// --replica-kill-rate revisions/s for this many seconds; one is killed (SIGKILL) a third of
    /// the way in (0 skips it). Reports the longest time any partition of the survivor went
    /// without a commit, and when the dead replica's partitions resumed.
    #[arg(long, default_value_t = 30)]
    pub replica_kill_seconds: u64,
    /// Revisions per second (one JSON message each) of the replica-kill load.
    #[arg(long, default_value_t = 5_000)]
    pub replica_kill_rate: u64,
    /// Give up when the load is not committed within this time.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(command: BenchCommand) -> Result<ExitCode, Error> {
    match command {
        BenchCommand::E2e(args) => e2e(args).await,
        BenchCommand::Sql(args) => sql::sql(args).await,
    }
}

/// The pipeline a user would write instead: a confluent-kafka consumer that appends each batch to
/// an Iceberg table with pyiceberg (same flush rule as ingest: `batch_rows` rows or
/// `interval_s` seconds), committing its Kafka position after each append. Prints one JSON line.
const REFERENCE_PIPELINE: &str = r#"
import json, resource, sys, time
import pyarrow as pa, pyarrow.ipc as ipc
from confluent_kafka import Consumer
from pyiceberg.catalog.sql import SqlCatalog

bootstrap, topic, warehouse = sys.argv[1], sys.argv[2], sys.argv[3]
expected, batch_rows, interval_s = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
timeout_s = float(sys.argv[7])
started = time.perf_counter()
catalog = SqlCatalog("reference", uri=f"sqlite:///{warehouse}/catalog.sqlite", warehouse=f"file://{warehouse}")
catalog.create_namespace("econ")
schema = pa.schema([("series_id", pa.string()), ("date", pa.date32()), ("revision_date", pa.date32()),
                    ("value", pa.float64()), ("is_original_release", pa.bool_())])
table = catalog.create_table("econ.data_points", schema=schema)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reference-{time.time_ns()}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([topic])
tables, records, buffered, oldest = [], [], 0, None
seen, rows, commits, first_seen, last_commit = 0, 0, [], None, None

def flush():
    global tables, records, buffered, oldest, rows, last_commit
    parts = list(tables)
    if records:
        c = list(zip(*records))
        parts.append(pa.table({"series_id": pa.array(c[0], pa.string()),
                               "date": pa.array(c[1], pa.string()).cast(pa.date32()),
                               "revision_date": pa.array(c[2], pa.string()).cast(pa.date32()),
                               "value": pa.array(c[3], pa.float64()),
                               "is_original_release": pa.array(c[4], pa.bool_())}))
    batch = pa.concat_tables([t.cast(schema) for t in parts])
    t0 = time.perf_counter()
    table.append(batch)
    consumer.commit(asynchronous=False)
    commits.append(time.perf_counter() - t0)
    last_commit = time.perf_counter()
    rows += batch.num_rows
    tables, records, buffered, oldest = [], [], 0, None

while seen < expected:
    for m in consumer.consume(num_messages=10000, timeout=0.5):
        if m.error():
            continue
        seen += 1
        first_seen = first_seen or time.perf_counter()
        v = m.value()
        if v[:1] == b"{":
            r = json.loads(v)
            value = r.get("value")
            records.append((r["series_id"], r["date"], r["revision_date"],
                            None if value in (None, ".") else float(value), bool(r.get("is_original_release", False))))
            buffered += 1
        else:
            t = ipc.open_stream(v).read_all()
            tables.append(t.select(["series_id", "date", "revision_date", "value", "is_original_release"]))
            buffered += t.num_rows
        oldest = oldest or time.perf_counter()
    if buffered and (buffered >= batch_rows or seen >= expected or time.perf_counter() - oldest >= interval_s):
        flush()
    if time.perf_counter() - started > timeout_s:
        sys.exit(f"the reference pipeline consumed {seen} of {expected} messages within {timeout_s} s")
elapsed = time.perf_counter() - started
commits.sort()
print(json.dumps({"seconds": elapsed, "rows": rows, "commits": len(commits),
                  "sustained_seconds": last_commit - first_seen,
                  "commit_p50": commits[len(commits) // 2], "commit_p99": commits[min(len(commits) - 1, int(len(commits) * 0.99))],
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"#;

/// The same answers read without us, from the warehouse the benchmark's ingest wrote: pyiceberg
/// scans (raw rows: pyiceberg has no vintage resolution) and DuckDB over the table's Parquet files
/// (the latest view in SQL). Prints one JSON line. Runs after `warehouse` and `series` are set and
/// [`DUCKDB_OVER_DATA_POINTS`](vintagelake_testkit::tools::DUCKDB_OVER_DATA_POINTS) opened them.
const DIRECT_READS: &str = r#"
import json, sys, time
from pyiceberg.expressions import EqualTo

latest = """SELECT series_id, date, value FROM (
  SELECT *, row_number() OVER (PARTITION BY date ORDER BY revision_date DESC, ingest_seq DESC) AS rn
  FROM dp WHERE series_id = ?) WHERE rn = 1"""

def timed(f):
    xs, out = [], []
    for s in series:
        t0 = time.perf_counter(); out.append(f(s)); xs.append(time.perf_counter() - t0)
    xs.sort()
    return {"p50": xs[len(xs) // 2], "p99": xs[min(len(xs) - 1, int(len(xs) * 0.99))], "rows": out}

py_one = timed(lambda s: t.scan(row_filter=EqualTo("series_id", s)).to_arrow().num_rows)
duck_one = timed(lambda s: len(con.execute(latest, [s]).fetchall()))
t0 = time.perf_counter(); py_full = t.scan().to_arrow().num_rows; py_full_s = time.perf_counter() - t0
t0 = time.perf_counter(); duck_full = con.execute("SELECT * FROM dp").to_arrow_table().num_rows; duck_full_s = time.perf_counter() - t0
print(json.dumps({"pyiceberg_one": py_one, "duckdb_latest_one": duck_one,
                  "pyiceberg_full": {"rows": py_full, "seconds": py_full_s},
                  "duckdb_full": {"rows": duck_full, "seconds": duck_full_s}}))
"#;

/// The direct-reads script whole: its arguments, the warehouse opened, then the reads.
fn direct_reads_script() -> String {
    format!(
        "import sys\nwarehouse, series = sys.argv[1], sys.argv[2].split(\",\")\n{}{DIRECT_READS}",
        vintagelake_testkit::tools::DUCKDB_OVER_DATA_POINTS
    )
}

/// A daemon started for the run; stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    name: &'static str,
    child: Child,
    http: u16,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &'static str, dir: &Path, env: &BTreeMap<String, String>, http: u16) -> Result<Self, Error> {
        let log = dir.join(format!("{name}-{http}.log"));
        let file =
            std::fs::File::create(&log).map_err(|source| Error::Read { what: log.display().to_string(), source })?;
        let err = file.try_clone().map_err(|source| Error::Read { what: log.display().to_string(), source })?;
        let exe =
            std::env::current_exe().map_err(|source| Error::Read { what: "current executable".into(), source })?;
        let child = Command::new(exe)
            .arg(name)
            .envs(env)
            .env("HTTP_PORT", http.to_string())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Read { what: format!("starting vintagelake {name}"), source })?;
        Ok(Self { name, child, http, log })
    }

    fn check_alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(Error::Usage(format!(
                "vintagelake {} exited during the benchmark; its log: {}",
                self.name,
                self.log.display()
            ))),
        }
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        loop {
            self.check_alive()?;
            if matches!(http_get(self.http, "/ready").await, Some((200, _))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Usage(format!(
                    "vintagelake {} not ready within {within:?}; its log: {}",
                    self.name,
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Peak resident set size (Linux `VmHWM`), bytes.
    fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What killing one of two ingest replicas costs the partitions the other one owns.
struct ReplicaKill {
    rate: u64,
    seconds: u64,
    survivor: Vec<i32>,
    dead: Vec<i32>,
    /// Longest time a survivor partition went without a commit, from the kill to the load's end.
    gap_after: Duration,
    /// When that gap ended, counted from the kill.
    gap_ended: Duration,
    /// The same over the steady load before the kill (the baseline).
    gap_before: Duration,
    /// Kill → the first commit of every partition the dead replica owned.
    takeover: Option<Duration>,
}

impl ReplicaKill {
    fn print(&self) {
        println!(
            "| a replica killed during a load of {} revisions/s ({} s): longest time a partition of the survivor went \
             without a commit | **{}** (ending {} after the kill; partitions {:?}; before the kill {}); the dead \
             replica's partitions {:?} committed again after {} |",
            self.rate,
            self.seconds,
            ms(self.gap_after),
            ms(self.gap_ended),
            self.survivor,
            ms(self.gap_before),
            self.dead,
            self.takeover.map_or_else(|| "n/a".to_owned(), ms)
        );
    }
}

/// The partitions of `topic` a replica owns according to its log (assigned minus revoked).
fn owned_partitions(log: &Path, topic: &str) -> Vec<i32> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let needle = format!("topic={topic} ");
    let mut owned = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| l.contains(&needle)) {
        let Some(p) = line.split("partition=").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()) else {
            continue;
        };
        if line.contains(" assigned") {
            owned.insert(p);
        } else if line.contains(" revoked") {
            owned.remove(&p);
        }
    }
    owned.into_iter().collect()
}

/// The longest interval between consecutive commit times in `times` (sorted) that ends within
/// `(from, to]`, the interval reaching `to` included: (its length, where it ends).
fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> (Duration, Instant) {
    let mut longest = (Duration::ZERO, from);
    let mut prev = times.iter().rev().find(|t| **t <= from).copied().unwrap_or(from);
    for t in times.iter().filter(|t| **t > from && **t <= to).chain(std::iter::once(&to)) {
        let gap = t.saturating_duration_since(prev);
        if gap > longest.0 {
            longest = (gap, *t);
        }
        prev = *t;
    }
    longest
}

/// Reads the table's positions of `topic`: each partition whose position moved since `last`
/// committed (at `now`).
async fn record_commits(
    store: &IcebergStore,
    topic: &str,
    now: Instant,
    last: &mut BTreeMap<i32, i64>,
    commits: &mut BTreeMap<i32, Vec<Instant>>,
) -> Result<(), Error> {
    let at = positions(store, topic).await?;
    for (p, o) in &at {
        if last.get(p) != Some(o) {
            commits.entry(*p).or_default().push(now);
        }
    }
    *last = at;
    Ok(())
}

/// Two ingest replicas in one consumer group on a topic of its own, a steady load, one replica
/// killed with SIGKILL a third of the way in. The table's recorded positions are polled every
/// 25 ms: a position that moved is a commit of that partition.
async fn replica_kill(
    args: &E2eArgs,
    env: &BTreeMap<String, String>,
    dir: &Path,
    bootstrap: &str,
    run: &str,
) -> Result<ReplicaKill, Error> {
    use std::sync::atomic::{AtomicI64, Ordering};
    let topic = format!("bench.{run}.kill");
    create_topics(bootstrap, &[&topic], args.partitions).await.map_err(Error::Broker)?;
    let mut env = env.clone();
    env.insert("DATAPOINTS_TOPIC".into(), topic.clone());
    env.insert("CONSUMER_GROUP".into(), format!("bench.{run}.kill"));
    // Which replica owns which partition is read from their logs' "assigned"/"revoked" lines.
    env.insert("RUST_LOG".into(), "warn,vintagelake_ingest::rebalance=info".into());
    env.insert("LOG_FORMAT".into(), "text".into());
    eprintln!(
        "two ingest replicas, {} revisions/s for {} s, one killed…",
        args.replica_kill_rate, args.replica_kill_seconds
    );
    let mut a = Daemon::spawn("ingest", dir, &env, free_port()?)?;
    a.wait_ready(Duration::from_secs(120)).await?;
    let mut b = Daemon::spawn("ingest", dir, &env, free_port()?)?;
    b.wait_ready(Duration::from_secs(120)).await?;
    let store = IcebergStore::new(Warehouse::open(WarehouseConfig::new(dir)).await?);
    // The group has settled once each replica owns partitions and together they own them all.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        a.check_alive()?;
        b.check_alive()?;
        let (pa, pb) = (owned_partitions(&a.log, &topic), owned_partitions(&b.log, &topic));
        if !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == args.partitions as usize {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Failed(format!("the two replicas never shared the partitions: {pa:?} / {pb:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let sent = Arc::new(AtomicI64::new(0));
    let length = Duration::from_secs(args.replica_kill_seconds);
    let load = {
        let (producer, topic, sent, rate) = (producer(bootstrap)?, topic.clone(), sent.clone(), args.replica_kill_rate);
        tokio::spawn(async move { trickle(&producer, &topic, rate, length, &sent).await })
    };
    let started = Instant::now();
    let kill_at = started + length / 3;
    let mut commits: BTreeMap<i32, Vec<Instant>> = BTreeMap::new();
    let mut last = positions(&store, &topic).await?;
    let mut killed: Option<(Instant, Vec<i32>, Vec<i32>)> = None;
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = Instant::now();
        record_commits(&store, &topic, now, &mut last, &mut commits).await?;
        if killed.is_none() && now >= kill_at {
            let (dead, survivor) = (owned_partitions(&a.log, &topic), owned_partitions(&b.log, &topic));
            a.child.kill().map_err(|source| Error::Read { what: "killing an ingest replica".into(), source })?;
            let _ = a.child.wait();
            killed = Some((Instant::now(), survivor, dead));
        } else {
            b.check_alive()?;
        }
    }
    let load_end = Instant::now();
    load.await.map_err(|e| Error::Failed(format!("replica-kill load: {e}")))??;
    // The survivor takes the dead replica's partitions over after the group's session timeout
    // and commits everything.
    let everything = || sent.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        b.check_alive()?;
        let now = Instant::now();
        record_commits(&store, &topic, now, &mut last, &mut commits).await?;
        if last.values().sum::<i64>() >= everything() {
            break;
        }
        if now > deadline {
            return Err(Error::Failed(format!(
                "the survivor did not commit the replica-kill load within 120 s (positions {last:?}); its log: {}",
                b.log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (kill, survivor, dead) = killed.ok_or_else(|| Error::Failed("the replica was never killed".into()))?;
    let none = Vec::new();
    let times = |p: &i32| commits.get(p).unwrap_or(&none);
    let steady_from = started + Duration::from_secs(2).min(length / 6);
    let gap_before = survivor.iter().map(|p| longest_gap(times(p), steady_from, kill).0).max().unwrap_or_default();
    let (gap_after, gap_end) =
        survivor.iter().map(|p| longest_gap(times(p), kill, load_end)).max().unwrap_or((Duration::ZERO, kill));
    let gap_ended = gap_end.saturating_duration_since(kill);
    let takeover = dead
        .iter()
        .map(|p| times(p).iter().find(|t| **t > kill).map(|t| t.duration_since(kill)))
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().max());
    Ok(ReplicaKill {
        rate: args.replica_kill_rate,
        seconds: args.replica_kill_seconds,
        survivor,
        dead,
        gap_after,
        gap_ended,
        gap_before,
        takeover,
    })
}

fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Bind {
        what: "a free port",
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    Ok(l.local_addr().map_err(|source| Error::Read { what: "local address".into(), source })?.port())
}

/// Messages of the load: keyed by series, so one series' revisions keep their order.
fn messages(revisions: &[DataPointRevision], format: &str, per_message: usize) -> Result<Vec<Message>, Error> {
    if format == "json" {
        return Ok(revisions.iter().map(message).collect());
    }
    let mut by_series: BTreeMap<&SeriesId, Vec<DataPointRevision>> = BTreeMap::new();
    for r in revisions {
        by_series.entry(&r.series_id).or_default().push(r.clone());
    }
    let mut out = Vec::new();
    for (series, rows) in by_series {
        for chunk in rows.chunks(per_message.max(1)) {
            let payload =
                encode_data_points_ipc(chunk).map_err(|e| Error::Failed(format!("encoding a bulk message: {e}")))?;
            out.push((series.as_str().as_bytes().to_vec(), payload));
        }
    }
    Ok(out)
}

/// One Flight client: a connection of its own.
async fn flight_client(port: u16) -> Result<FlightClient, Error> {
    let url = format!("http://127.0.0.1:{port}");
    let channel = tonic::transport::Channel::from_shared(url.clone())
        .map_err(|e| Error::Failed(e.to_string()))?
        .connect()
        .await
        .map_err(|e| Error::Failed(format!("Flight {url}: {e}")))?;
    Ok(FlightClient::new(channel))
}

async fn do_get(client: &mut FlightClient, ticket: &TicketV1) -> Result<Vec<RecordBatch>, Error> {
    let stream =
        client.do_get(Ticket::new(ticket.to_bytes())).await.map_err(|e| Error::Failed(format!("do_get: {e}")))?;
    stream.try_collect().await.map_err(|e| Error::Failed(format!("do_get stream: {e}")))
}

/// Streams an answer without keeping it: its rows, and how long the first batch took.
async fn stream_count(client: &mut FlightClient, ticket: &TicketV1) -> Result<(usize, Duration), Error> {
    let started = Instant::now();
    let mut stream =
        client.do_get(Ticket::new(ticket.to_bytes())).await.map_err(|e| Error::Failed(format!("do_get: {e}")))?;
    let (mut rows, mut first) = (0, None);
    while let Some(batch) = stream.try_next().await.map_err(|e| Error::Failed(format!("do_get stream: {e}")))? {
        first.get_or_insert_with(|| started.elapsed());
        rows += batch.num_rows();
    }
    Ok((rows, first.unwrap_or_else(|| started.elapsed())))
}

/// The first read of a series after a commit that wrote a new revision of it (the query service
/// sees the new snapshot, loads its manifest and reads the new file), `n` times.
async fn cold_reads(
    client: &mut FlightClient,
    store: &IcebergStore,
    series: &[SeriesId],
    n: usize,
) -> Result<Vec<Duration>, Error> {
    use vintagelake_schemas::table::StoredDataPoint;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let s = &series[(i * 131) % series.len()];
        let revision = DataPointRevision { value: Some(i as f64), ..probe_revision(s.as_str(), 0.0) };
        let row = StoredDataPoint::arrived(revision, vintagelake_schemas::Timestamp::now(), i as i64);
        store.append_points(&[row], vec![], "bench").await?;
        let t = Instant::now();
        let got = do_get(client, &TicketV1::for_series(s, View::Latest)).await?;
        times.push(t.elapsed());
        if rows(&got) == 0 {
            return Err(Error::Failed(format!("{s}: no rows after a commit")));
        }
    }
    times.sort();
    Ok(times)
}

/// One-series reads of a table left uncompacted after many small commits (each a few dozen
/// revisions of the series published at that time, as ingest writes under light load).
struct SmallCommits {
    commits: usize,
    files: u64,
    write: Duration,
    first: Duration,
    times: Vec<Duration>,
}

impl SmallCommits {
    fn print(&self) {
        println!(
            "| one series, latest view, uncompacted table of {} small commits ({} files; written in {:.1} s): first read {}, then | p50 {}, p99 {} |",
            self.commits,
            self.files,
            self.write.as_secs_f64(),
            ms(self.first),
            ms(quantile(&self.times, 0.5)),
            ms(quantile(&self.times, 0.99))
        );
    }
}

async fn small_commit_reads(args: &E2eArgs, env: &BTreeMap<String, String>, dir: &Path) -> Result<SmallCommits, Error> {
    let commits = args.small_commits;
    eprintln!("writing an uncompacted table of {commits} small commits…");
    let small = dir.join("small-commits");
    std::fs::create_dir_all(&small).map_err(|source| Error::Read { what: small.display().to_string(), source })?;
    let wh = Warehouse::open(WarehouseConfig::new(&small)).await?;
    let store = IcebergStore::new(wh.clone());
    let mut revisions = synthetic::revisions(commits * 50, 7);
    revisions.sort_by_key(|r| r.revision_date);
    let per_commit = revisions.len().div_ceil(commits);
    let series: Vec<SeriesId> = {
        let mut ids: Vec<SeriesId> = revisions.iter().map(|r| r.series_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let started = Instant::now();
    append_in_commits(&store, &revisions, per_commit).await?;
    let write = started.elapsed();
    let table = wh.load(TableKind::DataPoints).await?;
    let files = table
        .metadata()
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get("total-data-files").and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    let (flight, http) = (free_port()?, free_port()?);
    let mut env = env.clone();
    env.insert("DATA_DIR".into(), small.display().to_string());
    env.insert("FLIGHT_SERVER_PORT".into(), flight.to_string());
    let mut query = Daemon::spawn("query", &small, &env, http)?;
    query.wait_ready(Duration::from_secs(120)).await?;
    let mut client = flight_client(flight).await?;
    let t = Instant::now();
    do_get(&mut client, &TicketV1::for_series(&series[0], View::Latest)).await?;
    let first = t.elapsed();
    let mut times = Vec::with_capacity(args.requests_per_client);
    for i in 0..args.requests_per_client.max(1) {
        let s = &series[(i * 104_729) % series.len()];
        let t = Instant::now();
        let got = do_get(&mut client, &TicketV1::for_series(s, View::Latest)).await?;
        times.push(t.elapsed());
        if rows(&got) == 0 {
            return Err(Error::Failed(format!("{s}: no rows in the small-commit table")));
        }
    }
    times.sort();
    Ok(SmallCommits { commits, files, write, first, times })
}

/// Appends `revisions` in order, `per_commit` of them per commit (each row numbered as it arrived).
async fn append_in_commits(
    store: &IcebergStore,
    revisions: &[DataPointRevision],
    per_commit: usize,
) -> Result<(), Error> {
    use vintagelake_schemas::table::StoredDataPoint;
    for (i, chunk) in revisions.chunks(per_commit.max(1)).enumerate() {
        let now = vintagelake_schemas::Timestamp::now();
        let rows: Vec<StoredDataPoint> = chunk
            .iter()
            .enumerate()
            .map(|(k, r)| StoredDataPoint::arrived(r.clone(), now, (i * per_commit + k) as i64))
            .collect();
        store.append_points(&rows, vec![], "bench").await?;
    }
    Ok(())
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// The value at quantile `q` of sorted samples (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Quantile `q` of a Prometheus histogram (`…_bucket{…,le="x"} count` lines for one series of
/// labels), linearly interpolated within the bucket that holds it.
fn histogram_quantile(exposition: &str, metric: &str, label: &str, q: f64) -> Option<f64> {
    let prefix = format!("{metric}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = exposition
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
        .filter_map(|l| {
            // `le` is the last label (and "table=" also ends in `le=`).
            let le = l.rsplit("le=\"").next()?.split('"').next()?;
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((bound, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let target = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (bound, count) in buckets {
        if count >= target {
            if bound.is_infinite() {
                return Some(lower);
            }
            let within = if count > below { (target - below) / (count - below) } else { 1.0 };
            return Some(lower + (bound - lower) * within);
        }
        (lower, below) = (bound, count);
    }
    None
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Where freshness probes go and how many at least: each probe is one revision of a series of
/// its own (`<prefix>.<n>`), timed from its produce until Flight returns it.
struct Probes {
    prefix: &'static str,
    topic: String,
    flight_port: u16,
    min: usize,
    timeout: Duration,
}

/// Produces probe revisions while `loading` is set (and at least `min` of them), each timed from
/// its produce until Flight returns it. Returns the latencies and the probe messages sent.
async fn freshness(
    probes: Probes,
    producer: FutureProducer,
    loading: Arc<std::sync::atomic::AtomicBool>,
    sent: Arc<std::sync::atomic::AtomicI64>,
) -> Result<Vec<Duration>, Error> {
    let Probes { prefix, topic, flight_port, min, timeout } = probes;
    use std::sync::atomic::Ordering;
    let mut client = flight_client(flight_port).await?;
    let mut latencies = Vec::new();
    let mut k = 0usize;
    while loading.load(Ordering::Relaxed) || latencies.len() < min {
        let probe = probe_revision(&format!("{prefix}.{k:05}"), k as f64);
        let series = probe.series_id.clone();
        let (key, payload) = message(&probe);
        // Counted before it is sent: the load is committed once the positions cover the load
        // and every probe counted so far.
        sent.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        producer
            .send(FutureRecord::to(&topic).key(&key).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| Error::Failed(format!("producing a freshness probe: {e}")))?;
        let ticket = TicketV1::for_series(&series, View::Latest);
        loop {
            if rows(&do_get(&mut client, &ticket).await?) > 0 {
                latencies.push(started.elapsed());
                break;
            }
            if started.elapsed() > timeout {
                return Err(Error::Failed(format!("probe {series} not visible through Flight within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        k += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(latencies)
}

/// Produces `rate` single-revision messages a second (in 10 ms steps) for `length`, counting
/// each in `sent` before it is sent.
async fn trickle(
    producer: &FutureProducer,
    topic: &str,
    rate: u64,
    length: Duration,
    sent: &std::sync::atomic::AtomicI64,
) -> Result<(), Error> {
    use std::sync::atomic::Ordering;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut n = 0u64;
    let mut deliveries = Vec::new();
    while started.elapsed() < length {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while n < due {
            let (key, payload) = message(&probe_revision(&format!("TRICKLE.{:03}", n % 100), n as f64));
            sent.fetch_add(1, Ordering::SeqCst);
            match producer.send_result(FutureRecord::to(topic).key(&key).payload(&payload)) {
                Ok(d) => deliveries.push(d),
                Err((e, _)) => return Err(Error::Failed(format!("producing the trickle: {e}"))),
            }
            n += 1;
        }
    }
    for d in deliveries {
        d.await
            .map_err(|_| Error::Failed("a trickle delivery was cancelled".into()))?
            .map_err(|(e, _)| Error::Failed(format!("producing the trickle: {e}")))?;
    }
    Ok(())
}

/// One revision of a series of its own (freshness probes, the warm-up).
fn probe_revision(series: &str, value: f64) -> DataPointRevision {
    DataPointRevision {
        series_id: series.parse().expect("valid id"),
        date: Date::parse_iso("2024-01-01").expect("valid date"),
        revision_date: Date::parse_iso("2024-02-01").expect("valid date"),
        value: Some(value),
        is_original_release: true,
        id: None,
        created_at: None,
        updated_at: None,
        status: None,
        comment: None,
    }
}

/// Where the table's recorded positions stand: partition → next offset.
async fn positions(store: &IcebergStore, topic: &str) -> Result<BTreeMap<i32, i64>, Error> {
    use vintagelake_storage::store::IngestTarget;
    let offsets = IngestTarget::recorded_offsets(store, TableKind::DataPoints).await?;
    Ok(offsets.into_iter().filter(|((t, _), _)| t == topic).map(|((_, p), o)| (p, o)).collect())
}

/// What the run waits for: a number of messages in all (probes included, a target that grows
/// while they are sent), or given positions in every partition (the load itself).
enum Covered<'a> {
    Messages(&'a dyn Fn() -> i64),
    Positions(&'a BTreeMap<i32, i64>),
}

/// Waits until the ingest's recorded positions cover `what` (evaluated before each look at the
/// table, so a target that grows meanwhile is honoured).
async fn wait_committed(
    ingest: &mut Daemon,
    others: &mut [&mut Daemon],
    store: &IcebergStore,
    topic: &str,
    what: Covered<'_>,
    deadline: Instant,
) -> Result<(), Error> {
    loop {
        ingest.check_alive()?;
        for d in others.iter_mut() {
            d.check_alive()?;
        }
        let want = match &what {
            Covered::Messages(target) => Some(target()),
            Covered::Positions(_) => None,
        };
        let at = positions(store, topic).await?;
        let done = match &what {
            Covered::Messages(_) => want.is_some_and(|w| at.values().sum::<i64>() >= w),
            Covered::Positions(ends) => ends.iter().all(|(p, end)| at.get(p).is_some_and(|o| o >= end)),
        };
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Usage(format!(
                "not all messages committed in time (table positions {at:?}); ingest log: {}",
                ingest.log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn json_f64(v: &serde_json::Value, path: &[&str]) -> Result<f64, Error> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| Error::Failed(format!("comparison output lacks {}: {v}", path.join("."))))
}

async fn e2e(args: E2eArgs) -> Result<ExitCode, Error> {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let broker = match &args.kafka_bootstrap_servers {
        Some(b) => Broker::external(b).await,
        None => Broker::from_env_or_local().await,
    }
    .map_err(Error::Broker)?;
    let bootstrap = broker.bootstrap_servers().to_owned();
    let temp = tempfile::tempdir().map_err(|source| Error::Read { what: "a temporary directory".into(), source })?;
    let dir = args.data_dir.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).map_err(|source| Error::Read { what: dir.display().to_string(), source })?;
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()
    );
    let (topic, series_topic) = (format!("bench.{run}.datapoints"), format!("bench.{run}.series"));
    create_topics(&bootstrap, &[&topic, &series_topic], args.partitions).await.map_err(Error::Broker)?;

    eprintln!("generating {} synthetic revisions ({} format)…", args.revisions, args.format);
    let revisions = synthetic::revisions(args.revisions, 42);
    let load = messages(&revisions, &args.format, args.rows_per_message)?;
    let series: Vec<SeriesId> = synthetic::series_for(args.revisions).into_iter().map(|s| s.id).collect();
    drop(revisions);

    let (flight_port, ingest_http, query_http) = (free_port()?, free_port()?, free_port()?);
    let env = BTreeMap::from([
        ("DATA_DIR".to_owned(), dir.display().to_string()),
        ("STORAGE_TYPE".to_owned(), "iceberg".to_owned()),
        ("KAFKA_BOOTSTRAP_SERVERS".to_owned(), bootstrap.clone()),
        ("DATAPOINTS_TOPIC".to_owned(), topic.clone()),
        ("SERIES_TOPIC".to_owned(), series_topic.clone()),
        ("CONSUMER_GROUP".to_owned(), format!("bench.{run}")),
        ("FLIGHT_SERVER_PORT".to_owned(), flight_port.to_string()),
    ]);
    let spawned = Instant::now();
    let mut ingest = Daemon::spawn("ingest", &dir, &env, ingest_http)?;
    ingest.wait_ready(Duration::from_secs(120)).await?;
    let mut query = Daemon::spawn("query", &dir, &env, query_http)?;
    query.wait_ready(Duration::from_secs(120)).await?;
    let store = IcebergStore::new(Warehouse::open(WarehouseConfig::new(&dir)).await?);

    // Warm-up: one revision, committed before the clock starts, so that the consumer group has
    // formed and ingest owns its partitions. Joining takes seconds; it is reported on its own,
    // not counted as throughput.
    let (key, payload) = message(&probe_revision("WARMUP", 0.0));
    let warmup = publish(&producer(&bootstrap)?, &topic, [(key, payload)], |_| {}).await? as i64;
    let warmed = || warmup;
    wait_committed(&mut ingest, &mut [&mut query], &store, &topic, Covered::Messages(&warmed), spawned + args.timeout)
        .await?;
    let startup = spawned.elapsed();

    // The load, with freshness probes on the side.
    eprintln!("publishing {} messages to {topic} ({} partitions)…", load.len(), args.partitions);
    let loading = Arc::new(AtomicBool::new(true));
    let probes_sent = Arc::new(AtomicI64::new(0));
    let probes = tokio::spawn(freshness(
        Probes { prefix: "PROBE", topic: topic.clone(), flight_port, min: args.min_probes, timeout: args.timeout },
        producer(&bootstrap)?,
        loading.clone(),
        probes_sent.clone(),
    ));
    let load_messages = load.len();
    let started = Instant::now();
    let published = publish_tracked(&producer(&bootstrap)?, &topic, load, |_| {}).await?;
    let produced = published.count;
    let produce_time = started.elapsed();
    let deadline = started + args.timeout;
    // The load is durable once the positions reach where its messages landed (probes sent
    // meanwhile lie below those ends too; those sent later are waited for below, not timed).
    wait_committed(&mut ingest, &mut [&mut query], &store, &topic, Covered::Positions(&published.ends), deadline)
        .await?;
    let sustained = started.elapsed();
    loading.store(false, Ordering::Relaxed);
    let fresh = probes.await.map_err(|e| Error::Failed(format!("probe task: {e}")))??;
    // A trickle, probes alongside: how fresh data is when the consumer keeps catching up.
    let trickle_sent = Arc::new(AtomicI64::new(0));
    let mut trickle_fresh = Vec::new();
    if args.trickle_rate > 0 && args.trickle_seconds > 0 {
        eprintln!("a trickle of {} revisions/s for {} s…", args.trickle_rate, args.trickle_seconds);
        let trickling = Arc::new(AtomicBool::new(true));
        let probes = tokio::spawn(freshness(
            Probes { prefix: "TRICKLE.PROBE", topic: topic.clone(), flight_port, min: 1, timeout: args.timeout },
            producer(&bootstrap)?,
            trickling.clone(),
            trickle_sent.clone(),
        ));
        trickle(
            &producer(&bootstrap)?,
            &topic,
            args.trickle_rate,
            Duration::from_secs(args.trickle_seconds),
            &trickle_sent,
        )
        .await?;
        trickling.store(false, Ordering::Relaxed);
        trickle_fresh = probes.await.map_err(|e| Error::Failed(format!("probe task: {e}")))??;
        trickle_fresh.sort();
    }
    let everything =
        || warmup + produced as i64 + probes_sent.load(Ordering::SeqCst) + trickle_sent.load(Ordering::SeqCst);
    wait_committed(&mut ingest, &mut [&mut query], &store, &topic, Covered::Messages(&everything), deadline).await?;
    let peak_rss = ingest.peak_rss();
    let metrics = http_get(ingest_http, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
    let commit_metric = vintagelake_ingest::metrics::COMMIT_DURATION;
    let commit_p50 = histogram_quantile(&metrics, commit_metric, "data_points", 0.5);
    let commit_p99 = histogram_quantile(&metrics, commit_metric, "data_points", 0.99);
    let commits: f64 = metrics
        .lines()
        .find(|l| l.starts_with(&format!("{commit_metric}_count")) && l.contains("data_points"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);

    // Reads: single series under concurrency, then the whole table.
    let mut reads = Vec::new();
    for &clients in &args.clients {
        let mut tasks = Vec::new();
        let started = Instant::now();
        for c in 0..clients {
            let series = series.clone();
            let n = args.requests_per_client;
            tasks.push(tokio::spawn(async move {
                let mut client = flight_client(flight_port).await?;
                let mut times = Vec::with_capacity(n);
                for i in 0..n {
                    let s = &series[(c * 7919 + i * 104_729) % series.len()];
                    let t = Instant::now();
                    let got = do_get(&mut client, &TicketV1::for_series(s, View::Latest)).await?;
                    times.push(t.elapsed());
                    if rows(&got) == 0 {
                        return Err(Error::Failed(format!("{s}: no rows through Flight")));
                    }
                }
                Ok::<_, Error>(times)
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.extend(t.await.map_err(|e| Error::Failed(format!("reader task: {e}")))??);
        }
        let elapsed = started.elapsed();
        times.sort();
        reads.push((
            clients,
            quantile(&times, 0.5),
            quantile(&times, 0.99),
            times.len() as f64 / elapsed.as_secs_f64(),
        ));
    }
    let mut client = flight_client(flight_port).await?;
    let cold = cold_reads(&mut client, &store, &series, args.cold_reads).await?;
    let all = TicketV1 { series: Vec::new(), ..TicketV1::for_series(&series[0], View::AllRevisions) };
    let t = Instant::now();
    let (table, first_batch) = stream_count(&mut client, &all).await?;
    let full = t.elapsed();
    let query_rss = query.peak_rss();
    // Our answers for the series the direct reads will fetch, to check they agree.
    let sample: Vec<SeriesId> = series.iter().take(50).cloned().collect();
    let mut our_latest = Vec::with_capacity(sample.len());
    for s in &sample {
        our_latest.push(rows(&do_get(&mut client, &TicketV1::for_series(s, View::Latest)).await?));
    }
    drop(client);
    drop(query);
    drop(ingest);
    let small = if args.small_commits > 0 { Some(small_commit_reads(&args, &env, &dir).await?) } else { None };
    let killed = if args.replica_kill_seconds > 0 && args.partitions > 1 {
        Some(replica_kill(&args, &env, &dir, &bootstrap, &run).await?)
    } else {
        None
    };
    let total = warmup + produced as i64 + probes_sent.load(Ordering::SeqCst);
    let comparison =
        if args.no_compare { None } else { Some(compare(&args, &env, &dir, total, &sample, &our_latest).await?) };

    let mut fresh = fresh;
    fresh.sort();
    println!("## vintagelake bench e2e\n");
    println!(
        "{} revisions in {} {} messages to {} partitions; broker {}; warehouse {}\n",
        args.revisions,
        load_messages,
        args.format,
        args.partitions,
        if broker.is_local() { "local (provisioned)" } else { bootstrap.as_str() },
        dir.display()
    );
    println!("| measure | result |\n|---|---|");
    println!(
        "| publish (client side) | {:.2} s, {:.0} revisions/s |",
        produce_time.as_secs_f64(),
        args.revisions as f64 / produce_time.as_secs_f64()
    );
    println!(
        "| ingest start → first commit (consumer group join, warm-up revision; not in the throughput) | {:.2} s |",
        startup.as_secs_f64()
    );
    println!(
        "| sustained ingest (first produce → last commit) | {:.2} s, **{:.0} revisions/s** |",
        sustained.as_secs_f64(),
        args.revisions as f64 / sustained.as_secs_f64()
    );
    let secs = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |s| ms(Duration::from_secs_f64(s)));
    println!("| commit latency ({commits} data-point commits) | p50 {}, p99 {} |", secs(commit_p50), secs(commit_p99));
    println!(
        "| freshness: produce → visible through Flight ({} probes) | p50 {}, p99 {} |",
        fresh.len(),
        ms(quantile(&fresh, 0.5)),
        ms(quantile(&fresh, 0.99))
    );
    if !trickle_fresh.is_empty() {
        println!(
            "| freshness under a trickle of {} revisions/s for {} s ({} probes) | p50 {}, p99 {} |",
            args.trickle_rate,
            args.trickle_seconds,
            trickle_fresh.len(),
            ms(quantile(&trickle_fresh, 0.5)),
            ms(quantile(&trickle_fresh, 0.99))
        );
    }
    println!(
        "| ingest peak RSS | {} |",
        peak_rss.map_or_else(|| "n/a".to_owned(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
    );
    for (clients, p50, p99, rate) in &reads {
        println!(
            "| one series, latest view, {clients} concurrent client(s) | p50 {}, p99 {}, {rate:.0} reads/s |",
            ms(*p50),
            ms(*p99)
        );
    }
    if !cold.is_empty() {
        println!(
            "| one series, latest view, cold: first read after a commit that wrote it ({} reads) | p50 {}, p99 {} |",
            cold.len(),
            ms(quantile(&cold, 0.5)),
            ms(quantile(&cold, 0.99))
        );
    }
    if let Some(small) = &small {
        small.print();
    }
    if let Some(k) = &killed {
        k.print();
    }
    println!(
        "| full table, every revision ({table} rows), streamed | {:.2} s, {:.0} rows/s; first batch after {} |",
        full.as_secs_f64(),
        table as f64 / full.as_secs_f64(),
        ms(first_batch)
    );
    println!(
        "| query service peak RSS (after the full-table stream) | {} |",
        query_rss.map_or_else(|| "n/a".to_owned(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
    );
    if let Some(c) = comparison {
        c.print(&reads, table, full);
    }
    Ok(ExitCode::SUCCESS)
}

/// The side-by-side runs, on the same topic and machine, after our own run has stopped.
struct Comparison {
    ours_backlog: Duration,
    /// From the first record our ingest consumed (its counter seen above 0) to the last commit.
    ours_sustained: Option<Duration>,
    ours_backlog_rss: Option<u64>,
    ours_commit: (Option<f64>, Option<f64>),
    revisions: usize,
    reference: serde_json::Value,
    direct: serde_json::Value,
}

async fn compare(
    args: &E2eArgs,
    env: &BTreeMap<String, String>,
    dir: &Path,
    total: i64,
    sample: &[SeriesId],
    our_latest: &[usize],
) -> Result<Comparison, Error> {
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |source| Error::Read { what, source }
    };
    // Ours, draining the whole topic as a backlog (a fresh group and warehouse).
    eprintln!("our ingest draining the topic as a backlog…");
    let backlog = dir.join("backlog");
    std::fs::create_dir_all(&backlog).map_err(io(&backlog))?;
    let mut env = env.clone();
    env.insert("DATA_DIR".into(), backlog.display().to_string());
    let group = format!("{}.backlog", env["CONSUMER_GROUP"]);
    env.insert("CONSUMER_GROUP".into(), group);
    let http = free_port()?;
    let started = Instant::now();
    let mut ingest = Daemon::spawn("ingest", &backlog, &env, http)?;
    ingest.wait_ready(Duration::from_secs(120)).await?;
    let store = IcebergStore::new(Warehouse::open(WarehouseConfig::new(&backlog)).await?);
    let all = || total;
    let topic = env["DATAPOINTS_TOPIC"].clone();
    // When consuming starts (after the group join): the consumed counter's first move.
    let first_consumed = tokio::spawn(async move {
        let metric = vintagelake_ingest::metrics::CONSUMED;
        loop {
            let body = http_get(http, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
            let consumed: f64 = body
                .lines()
                .filter(|l| l.starts_with(metric))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if consumed > 0.0 {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    wait_committed(&mut ingest, &mut [], &store, &topic, Covered::Messages(&all), started + args.timeout).await?;
    let ours_backlog = started.elapsed();
    let ours_sustained = if first_consumed.is_finished() {
        first_consumed.await.ok().map(|t| t.elapsed())
    } else {
        first_consumed.abort();
        None
    };
    let ours_backlog_rss = ingest.peak_rss();
    let metrics = http_get(http, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
    let metric = vintagelake_ingest::metrics::COMMIT_DURATION;
    let ours_commit = (
        histogram_quantile(&metrics, metric, "data_points", 0.5),
        histogram_quantile(&metrics, metric, "data_points", 0.99),
    );
    drop(ingest);

    // The reference pipeline, same topic, same flush rule.
    eprintln!("the reference pipeline (confluent-kafka + pyiceberg) draining the same topic…");
    let python = vintagelake_testkit::tools::pyiceberg_python().map_err(io(Path::new("the Python environment")))?;
    let reference_dir = dir.join("reference");
    std::fs::create_dir_all(&reference_dir).map_err(io(&reference_dir))?;
    let batch_rows = std::env::var("COMMIT_MAX_ROWS").unwrap_or_else(|_| "1000000".into());
    let interval = std::env::var("COMMIT_INTERVAL")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(5));
    let script_args = [
        env["KAFKA_BOOTSTRAP_SERVERS"].clone(),
        env["DATAPOINTS_TOPIC"].clone(),
        reference_dir.display().to_string(),
        total.to_string(),
        batch_rows,
        interval.as_secs_f64().to_string(),
        args.timeout.as_secs_f64().to_string(),
    ];
    let py = python.clone();
    let reference = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = script_args.iter().map(String::as_str).collect();
        vintagelake_testkit::tools::run_python(&py, REFERENCE_PIPELINE, &a)
    })
    .await
    .map_err(|e| Error::Failed(format!("reference task: {e}")))?
    .map_err(|e| Error::Failed(format!("the reference pipeline failed: {e}")))?;

    // The same answers read directly from our warehouse.
    eprintln!("pyiceberg and DuckDB reading our warehouse…");
    let series_arg = sample.iter().map(SeriesId::as_str).collect::<Vec<_>>().join(",");
    let warehouse = dir.display().to_string();
    let direct = tokio::task::spawn_blocking(move || {
        vintagelake_testkit::tools::run_python(&python, &direct_reads_script(), &[&warehouse, &series_arg])
    })
    .await
    .map_err(|e| Error::Failed(format!("direct-read task: {e}")))?
    .map_err(|e| Error::Failed(format!("the direct reads failed: {e}")))?;
    let parse = |out: &str| -> Result<serde_json::Value, Error> {
        let line = out.lines().last().unwrap_or_default();
        serde_json::from_str(line).map_err(|e| Error::Failed(format!("comparison output {line:?}: {e}")))
    };
    let (reference, direct) = (parse(&reference)?, parse(&direct)?);
    let duck: Vec<usize> = direct["duckdb_latest_one"]["rows"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64().map(|n| n as usize)).collect())
        .unwrap_or_default();
    if duck != our_latest {
        return Err(Error::Usage(format!(
            "DuckDB's latest view disagrees with ours: rows per series {duck:?} vs {our_latest:?}"
        )));
    }
    Ok(Comparison {
        ours_backlog,
        ours_sustained,
        ours_backlog_rss,
        ours_commit,
        revisions: args.revisions,
        reference,
        direct,
    })
}

impl Comparison {
    fn print(&self, reads: &[(usize, Duration, Duration, f64)], table_rows: usize, full: Duration) {
        let f = |path: &[&str]| json_f64(&self.reference, path).unwrap_or(f64::NAN);
        let d = |path: &[&str]| json_f64(&self.direct, path).unwrap_or(f64::NAN);
        let ms = |s: f64| format!("{:.1} ms", s * 1e3);
        let opt_ms = |s: Option<f64>| s.map_or_else(|| "n/a".to_owned(), ms);
        let mib = |b: f64| format!("{:.0} MiB", b / (1 << 20) as f64);
        let ours_s = self.ours_backlog.as_secs_f64();
        let theirs_s = f(&["seconds"]);
        println!("\n## side by side (same topic, same machine, one run)\n");
        println!("| measure | vintagelake | other | ours / other |\n|---|---|---|---|");
        println!(
            "| drain the topic into Iceberg, {} revisions (vs confluent-kafka + pyiceberg append) | {:.2} s, {:.0} rev/s | {:.2} s, {:.0} rev/s | {:.2} |",
            self.revisions,
            ours_s,
            self.revisions as f64 / ours_s,
            theirs_s,
            self.revisions as f64 / theirs_s,
            ours_s / theirs_s
        );
        let theirs_sustained = f(&["sustained_seconds"]);
        match self.ours_sustained {
            Some(ours) => println!(
                "| sustained: first record consumed → last commit, {} revisions | {:.2} s, {:.0} rev/s | {:.2} s, {:.0} rev/s | {:.2} |",
                self.revisions,
                ours.as_secs_f64(),
                self.revisions as f64 / ours.as_secs_f64(),
                theirs_sustained,
                self.revisions as f64 / theirs_sustained,
                ours.as_secs_f64() / theirs_sustained
            ),
            None => println!("| sustained: first record consumed → last commit | n/a | {theirs_sustained:.2} s | — |"),
        }
        println!(
            "| commit latency p50 / p99 ({} reference commits) | {} / {} | {} / {} | {:.2} |",
            f(&["commits"]),
            opt_ms(self.ours_commit.0),
            opt_ms(self.ours_commit.1),
            ms(f(&["commit_p50"])),
            ms(f(&["commit_p99"])),
            self.ours_commit.0.unwrap_or(f64::NAN) / f(&["commit_p50"])
        );
        println!(
            "| peak RSS while draining | {} | {} | {:.2} |",
            self.ours_backlog_rss.map_or_else(|| "n/a".to_owned(), |b| mib(b as f64)),
            mib(f(&["peak_rss"])),
            self.ours_backlog_rss.map_or(f64::NAN, |b| b as f64) / f(&["peak_rss"])
        );
        if let Some((_, p50, _, _)) = reads.iter().find(|r| r.0 == 1) {
            let ours = p50.as_secs_f64();
            for (name, key, what) in [
                ("pyiceberg scan (raw revisions, no resolution)", "pyiceberg_one", "rows of the series"),
                ("DuckDB latest-view SQL over the table's files", "duckdb_latest_one", "same answer"),
            ] {
                let theirs = d(&[key, "p50"]);
                println!(
                    "| one series, latest view, p50 (vs {name}; {what}) | {} | {} | {:.2} |",
                    ms(ours),
                    ms(theirs),
                    ours / theirs
                );
            }
        }
        let ours = full.as_secs_f64();
        for (name, key) in [("pyiceberg scan().to_arrow()", "pyiceberg_full"), ("DuckDB SELECT *", "duckdb_full")] {
            let theirs = d(&[key, "seconds"]);
            println!(
                "| full table, every revision (ours: {table_rows} resolved rows over Flight; vs {name}, {} raw rows in-process) | {} | {} | {:.2} |",
                d(&[key, "rows"]),
                ms(ours),
                ms(theirs),
                ours / theirs
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_interpolate_within_the_bucket() {
        let text = "x_bucket{table=\"data_points\",le=\"0.1\"} 10\n\
                    x_bucket{table=\"data_points\",le=\"0.2\"} 30\n\
                    x_bucket{table=\"data_points\",le=\"+Inf\"} 40\n\
                    x_bucket{table=\"series\",le=\"0.1\"} 99\n";
        let p50 = histogram_quantile(text, "x", "data_points", 0.5).unwrap();
        assert!((p50 - 0.15).abs() < 1e-9, "{p50}");
        // Past the last finite bound the answer is that bound (a lower limit).
        assert_eq!(histogram_quantile(text, "x", "data_points", 0.99), Some(0.2));
        assert_eq!(histogram_quantile("", "x", "data_points", 0.5), None);
    }

    #[test]
    fn the_longest_gap_counts_from_the_last_commit_before_the_window_to_its_end() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let commits = [at(100), at(400), at(1_000), at(1_300)];
        assert_eq!(longest_gap(&commits, at(500), at(1_400)), (Duration::from_millis(600), at(1_000)), "400 → 1000");
        assert_eq!(
            longest_gap(&commits, at(1_100), at(3_000)),
            (Duration::from_millis(1_700), at(3_000)),
            "1300 → end"
        );
        assert_eq!(longest_gap(&[], at(0), at(900)), (Duration::from_millis(900), at(900)), "no commit at all");
    }

    #[test]
    fn owned_partitions_follow_the_replica_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ingest.log");
        std::fs::write(
            &log,
            "INFO vintagelake_ingest::rebalance: assigned topic=t partition=0 committed=None\n\
             INFO vintagelake_ingest::rebalance: assigned topic=t partition=1 committed=Some(4)\n\
             INFO vintagelake_ingest::rebalance: assigned topic=other partition=2 committed=None\n\
             INFO vintagelake_ingest::rebalance: assigned topic=t partition=10 committed=None\n\
             INFO vintagelake_ingest::rebalance: revoked topic=t partition=1\n",
        )
        .unwrap();
        assert_eq!(owned_partitions(&log, "t"), vec![0, 10]);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
