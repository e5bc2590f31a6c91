//! Fixtures for end-to-end tests: a broker, `vintagelake` daemons as real child processes, the
//! table read back independently, free ports, polling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use vintagelake_schemas::DataPointRevision;
use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::files::{live_files, read_data_files};
use vintagelake_storage::store::stored_rows;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())
}

/// A `vintagelake` daemon running as a child process, its output in a log file.
pub struct Daemon {
    pub child: Child,
    pub http_port: u16,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(args: &[&str], dir: &Path, env: &BTreeMap<String, String>) -> Daemon {
        let http_port = free_port();
        let log = dir.join(format!("{}-{}.log", args[0], uuid::Uuid::new_v4().simple()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("HTTP_HOST", "127.0.0.1")
            .env("HTTP_PORT", http_port.to_string())
            .env("RUST_LOG", "info,vintagelake_ingest=debug")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Daemon { child, http_port, log }
    }

    /// `kill -9`: no flush, no commit, no cleanup.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!("daemon did not stop within {timeout:?}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panics with the daemon's log if it exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("daemon exited with {status}; log:\n{}", self.log_text());
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the daemon's log (what led up to a failure).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// GET an HTTP endpoint of the daemon: (status, body).
    pub fn get(&self, path: &str) -> impl Future<Output = Option<(u16, String)>> + use<> {
        http_get(self.http_port, path.to_owned())
    }
}

/// A connected gRPC channel to a Flight service on this machine.
pub async fn flight_channel(port: u16) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap()
}

/// GET `http://127.0.0.1:port/path`: (status, body).
pub async fn http_get(port: u16, path: String) -> Option<(u16, String)> {
    vintagelake_runtime::health::http_get(port, &path).await
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for an ingest daemon on its own topics and group.
pub fn ingest_env(data_dir: &Path, bootstrap: &str, topics: &Topics) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DATA_DIR".into(), data_dir.display().to_string()),
        ("KAFKA_BOOTSTRAP_SERVERS".into(), bootstrap.to_owned()),
        ("DATAPOINTS_TOPIC".into(), topics.data.clone()),
        ("SERIES_TOPIC".into(), topics.series.clone()),
        ("CONSUMER_GROUP".into(), topics.group.clone()),
        ("COMMIT_INTERVAL".into(), "500ms".into()),
        ("HEALTH_CHECK_INTERVAL".into(), "1s".into()),
        ("TOPIC_PARTITIONS".into(), "4".into()),
    ])
}

pub struct Topics {
    pub data: String,
    pub series: String,
    pub group: String,
}

impl Topics {
    pub fn new() -> Self {
        Self { data: unique("dp"), series: unique("series"), group: unique("group") }
    }
}

pub async fn open(data_dir: &Path) -> Arc<Warehouse> {
    Warehouse::open(WarehouseConfig::new(data_dir)).await.unwrap()
}

/// Every stored row of the data_points table, read from its files.
pub async fn table_rows(wh: &Warehouse) -> Vec<StoredDataPoint> {
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files: Vec<String> = live_files(wh, &table, None).await.unwrap().into_iter().map(|f| f.path).collect();
    stored_rows(&read_data_files(wh, &files, 4).await.unwrap()).unwrap()
}

pub async fn total_records(wh: &Warehouse) -> u64 {
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    table
        .metadata()
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get("total-records").and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Polls until `f` holds or panics with `what` after `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A comparable identity of a revision: (series, date, revision date, value bits).
pub type Key = (String, i32, i32, Option<u64>);

pub fn key_of_revision(r: &DataPointRevision) -> Key {
    (
        r.series_id.as_str().to_owned(),
        r.date.days_since_epoch(),
        r.revision_date.days_since_epoch(),
        r.value.map(f64::to_bits),
    )
}

pub fn key_of_row(r: &StoredDataPoint) -> Key {
    let p = &r.point;
    (
        p.series_id.as_str().to_owned(),
        p.date.days_since_epoch(),
        p.revision_date.days_since_epoch(),
        p.value.map(f64::to_bits),
    )
}

/// Multiset of keys (sorted list).
pub fn multiset(mut keys: Vec<Key>) -> Vec<Key> {
    keys.sort();
    keys
}

/// High watermark of every partition of a topic.
pub fn high_watermarks(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| (p.id(), c.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).unwrap().1))
        .collect()
}

/// The end of every partition of a topic (last offset + 1), found by reading each partition to
/// its end. (`fetch_watermarks` would be simpler, but tansu 0.6 answers ListOffsets with the base
/// offset of the last record batch, not the offset after the last record.)
pub async fn end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    use rdkafka::consumer::StreamConsumer;
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let partitions: Vec<i32> = high_watermarks(bootstrap, topic).keys().copied().collect();
    let mut out = BTreeMap::new();
    for p in partitions {
        let c: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", unique("end-offsets"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
        c.assign(&tpl).unwrap();
        let mut end = 0;
        while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(3), c.recv()).await {
            end = end.max(m.offset() + 1);
        }
        out.insert(p, end);
    }
    out
}

/// Publishes revisions (JSON, keyed by series id).
pub async fn produce(bootstrap: &str, topic: &str, revisions: &[DataPointRevision]) {
    let p = vintagelake_kafka::produce::producer(bootstrap).unwrap();
    vintagelake_kafka::produce::publish(&p, topic, revisions.iter().map(vintagelake_kafka::produce::message), |_| {})
        .await
        .unwrap();
}

/// A header of a consumed record, as text.
pub fn header(m: &rdkafka::message::BorrowedMessage<'_>, name: &str) -> Option<String> {
    use rdkafka::message::{Headers, Message};
    let headers = m.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}
