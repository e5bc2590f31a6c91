//! Disk full, then a read-only warehouse: the data directory on a small tmpfs fills up (and later
//! is remounted read-only) while ingest runs. Ingest stops committing, reports not ready, keeps its
//! Kafka position, and once space (or write access) returns it commits everything, exactly once.
//!
//! Needs to mount a tmpfs (root or CAP_SYS_ADMIN): `deploy/local/test.sh` runs it where that
//! works (`cargo test --test it -- --ignored diskfull`) and says so where it does not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::synthetic;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};

use crate::support::*;

/// A tmpfs of `size` at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn revisions(store: &IcebergStore) -> usize {
    store.query(&VintageQuery::new(View::AllRevisions)).await.map(|b| b.num_rows()).unwrap_or(0)
}

fn distinct(produced: &[vintagelake_schemas::DataPointRevision]) -> BTreeMap<(String, i32, i32), Option<u64>> {
    produced
        .iter()
        .map(|r| {
            (
                (r.series_id.as_str().to_owned(), r.date.days_since_epoch(), r.revision_date.days_since_epoch()),
                r.value.map(f64::to_bits),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "mounts a tmpfs (root or CAP_SYS_ADMIN); deploy/local/test.sh runs it where that works"]
async fn diskfull_and_read_only_warehouse_ingest_waits_and_resumes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, "16m");
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let topics = Topics::new();
    create_topics(broker.bootstrap_servers(), &[&topics.data, &topics.series], 4).await.unwrap();
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &ingest_env(&data, broker.bootstrap_servers(), &topics));
    let store = IcebergStore::new(open(&data).await);

    let first = synthetic::revisions(2_000, 41);
    produce(broker.bootstrap_servers(), &topics.data, &first).await;
    let n_first = distinct(&first).len();
    wait_for(Duration::from_secs(120), "the first batch committed", || {
        ingest.assert_alive();
        let store = &store;
        async move { revisions(store).await >= n_first }
    })
    .await;

    // Fill the disk.
    let filler = data.join("filler");
    let out =
        Command::new("dd").args(["if=/dev/zero", "bs=64k"]).arg(format!("of={}", filler.display())).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"), "the disk is full");

    let second = synthetic::revisions(20_000, 42);
    produce(broker.bootstrap_servers(), &topics.data, &second).await;
    wait_for(Duration::from_secs(120), "ingest not ready on a full disk", || {
        ingest.assert_alive();
        let get = ingest.get("/ready");
        async move { get.await.is_some_and(|(code, body)| code == 503 && body.contains("catalog")) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ingest.assert_alive();
    assert_eq!(revisions(&store).await, n_first, "nothing half-committed while the disk is full");
    let (_, metrics) = ingest.get("/metrics").await.unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("vintagelake_ingest_commit_failures_total") && !l.ends_with(" 0")));

    // Space returns: everything arrives, exactly once.
    std::fs::remove_file(&filler).unwrap();
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    let want = distinct(&all);
    wait_for(Duration::from_secs(180), "everything committed once space returned", || {
        ingest.assert_alive();
        let store = &store;
        let n = want.len();
        async move { revisions(store).await >= n }
    })
    .await;
    assert_eq!(ingest.get("/ready").await.unwrap().0, 200, "ready again");

    // The warehouse turns read-only (writes refused even to root): the same — wait, keep the
    // position, resume once writable.
    let warehouse = data.join("warehouse");
    let mount = |args: &[&str]| {
        let out = Command::new("mount").args(args).arg(&warehouse).arg(&warehouse).output().unwrap();
        assert!(out.status.success(), "mount {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    mount(&["--bind"]);
    let out = Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&warehouse).output().unwrap();
    assert!(out.status.success(), "read-only: {}", String::from_utf8_lossy(&out.stderr));
    let third = synthetic::revisions(5_000, 43);
    produce(broker.bootstrap_servers(), &topics.data, &third).await;
    wait_for(Duration::from_secs(120), "ingest not ready on a read-only warehouse", || {
        ingest.assert_alive();
        let get = ingest.get("/ready");
        async move { get.await.is_some_and(|(code, _)| code == 503) }
    })
    .await;
    assert_eq!(revisions(&store).await, want.len(), "nothing committed while read-only");
    let out = Command::new("umount").arg(&warehouse).output().unwrap();
    assert!(out.status.success(), "writable again: {}", String::from_utf8_lossy(&out.stderr));
    all.extend(third.iter().cloned());
    let want = distinct(&all);
    wait_for(Duration::from_secs(180), "everything committed once writable", || {
        ingest.assert_alive();
        let store = &store;
        let n = want.len();
        async move { revisions(store).await >= n }
    })
    .await;
    assert!(ingest.terminate(Duration::from_secs(60)).success());
    let b = store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    assert_eq!(b.num_rows(), want.len(), "no revision lost or duplicated");
}
