//! Encryption at rest on real tables: files written with keys are unreadable without them
//! (pyarrow refuses them) and readable with them (pyarrow with the master key through its own
//! key-management API, and every read path of ours); switching encryption on for a table with
//! plaintext files, and rotating to a new master key, leave no live file under the old key once
//! the compactor has run; every view answers the same throughout, and equals the reference.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type};
use tokio_util::sync::CancellationToken;
use vintagelake_compactor::{CompactOptions, compact_once};
use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_storage::TableReader;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::crypto::{Encryption, LocalKeys};
use vintagelake_storage::files::{live_files, master_key};
use vintagelake_storage::scan::{SnapshotSelector, View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore, InMemoryStorage};
use vintagelake_testkit::fixtures::{lifecycle_views, revision_stream, series_record};

/// Master keys: k1 AES-128, k2 AES-256.
const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODw==";
const K2: &str = "k2:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";

async fn open(dir: &Path, keys: Option<(&str, &str)>) -> Arc<Warehouse> {
    // Small target files: compaction writes several, so rotation has several files to rewrite.
    let mut config = WarehouseConfig::new(dir).with_target_file_size(32 * 1024);
    if let Some((keys, current)) = keys {
        let provider = LocalKeys::parse(keys, Some(current)).unwrap();
        config = config.with_encryption(Encryption::new(Arc::new(provider)));
    }
    Warehouse::open(config).await.unwrap()
}

/// pyarrow on each file: read without keys (must be refused for an encrypted file), then through
/// `pyarrow.parquet.encryption` with a KMS client holding only the master keys given — the
/// client unwraps data keys as docs/security.md says (AES-GCM, nonce first, key id as AAD).
/// Prints per file: `<rows or fail:…> <read|refused>`.
const PYARROW: &str = r#"
import sys, base64
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
keys = dict((k, base64.b64decode(v)) for k, v in (e.split(":", 1) for e in sys.argv[1].split(",") if e))
class Kms(pe.KmsClient):
    def __init__(self, config):
        pe.KmsClient.__init__(self)
    def wrap_key(self, key_bytes, master_key_identifier):
        raise NotImplementedError("read-only")
    def unwrap_key(self, wrapped_key, master_key_identifier):
        raw = base64.b64decode(wrapped_key)
        return AESGCM(keys[master_key_identifier]).decrypt(raw[:12], raw[12:], master_key_identifier.encode())
factory = pe.CryptoFactory(lambda config: Kms(config))
decryption = factory.file_decryption_properties(pe.KmsConnectionConfig(), pe.DecryptionConfiguration())
for path in sys.argv[2:]:
    try:
        pq.read_table(path)
        plain = "read"
    except Exception:
        plain = "refused"
    try:
        rows = str(pq.read_table(path, decryption_properties=decryption).num_rows)
    except Exception as e:
        rows = "fail:" + type(e).__name__
    print(rows, plain)
"#;

/// Every live file of both tables: (path, rows, master key).
async fn files(wh: &Warehouse) -> Vec<(String, u64, Option<String>)> {
    let mut out = Vec::new();
    for kind in TableKind::all() {
        let table = wh.load(kind).await.unwrap();
        for f in live_files(wh, &table, None).await.unwrap() {
            out.push((f.path.clone(), f.records, master_key(&f.data_file)));
        }
    }
    out
}

/// What pyarrow makes of each file with `keys`: (rows read with the keys or the failure, whether
/// a plain read succeeded).
fn pyarrow(keys: &str, files: &[(String, u64, Option<String>)]) -> Vec<(String, String)> {
    let python = vintagelake_testkit::tools::pyiceberg_python().unwrap();
    let mut args = vec![keys.to_owned()];
    args.extend(files.iter().map(|(p, _, _)| p.trim_start_matches("file://").to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = vintagelake_testkit::tools::run_python(&python, PYARROW, &args).unwrap();
    out.lines()
        .map(|l| {
            let (rows, plain) = l.split_once(' ').unwrap();
            (rows.to_owned(), plain.to_owned())
        })
        .collect()
}

/// Every lifecycle view through the store's own scan and through the warm reader (the Flight
/// service's path), which must agree.
async fn views(store: &IcebergStore) -> Vec<RecordBatch> {
    let reader = TableReader::new(store.warehouse().clone(), 4, Duration::ZERO);
    let mut out = Vec::new();
    for q in lifecycle_views() {
        let scanned = store.query(&q).await.unwrap();
        let (warm, _) = reader.query(&q).await.unwrap();
        assert_eq!(warm, scanned, "{q:?}: warm reader and scan agree");
        out.push(scanned);
    }
    out
}

/// The latest value of every (series, date), computed here from the rows written: the newest
/// revision date wins, the later arrival among equal ones.
fn reference_latest(rows: &[StoredDataPoint]) -> BTreeMap<(String, i32), Option<f64>> {
    let mut best: BTreeMap<(String, i32), (i32, i64, Option<f64>)> = BTreeMap::new();
    for r in rows {
        let key = (r.point.series_id.as_str().to_owned(), r.point.date.days_since_epoch());
        let rank = (r.point.revision_date.days_since_epoch(), r.ingest_seq, r.point.value);
        let e = best.entry(key).or_insert(rank);
        if (rank.0, rank.1) > (e.0, e.1) {
            *e = rank;
        }
    }
    best.into_iter().map(|(k, (_, _, v))| (k, v)).collect()
}

fn latest_of(batch: &RecordBatch) -> BTreeMap<(String, i32), Option<f64>> {
    let s = batch.column_by_name("series_id").unwrap().as_string::<i32>();
    let d = batch.column_by_name("date").unwrap().as_primitive::<Date32Type>();
    let v = batch.column_by_name("value").unwrap().as_primitive::<Float64Type>();
    (0..batch.num_rows()).map(|i| ((s.value(i).to_owned(), d.value(i)), v.is_valid(i).then(|| v.value(i)))).collect()
}

/// The stream with missing values (every 11th) and its commits out of order: each chunk is a
/// commit, delivered in an interleaved order, so later vintages often land before earlier ones.
fn stream() -> Vec<Vec<StoredDataPoint>> {
    let mut rows = revision_stream("E", 0..12, 30, 4);
    for (i, r) in rows.iter_mut().enumerate() {
        if i % 11 == 0 {
            r.point.value = None;
        }
    }
    let chunks: Vec<Vec<StoredDataPoint>> = rows.chunks(rows.len().div_ceil(24)).map(<[_]>::to_vec).collect();
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_by_key(|i| (i % 5, std::cmp::Reverse(*i)));
    order.into_iter().map(|i| chunks[i].clone()).collect()
}

async fn write(store: &IcebergStore, oracle: &InMemoryStorage, commits: &[Vec<StoredDataPoint>], series: &[&str]) {
    for rows in commits {
        store.append_points(rows, vec![], "ingest").await.unwrap();
        oracle.append_points(rows.clone()).await;
    }
    for id in series {
        let s = series_record(id, &format!("{id} title"));
        store.write_series(&s).await.unwrap();
        oracle.write_series(&s).await.unwrap();
    }
}

async fn check_answers(
    store: &IcebergStore,
    oracle: &InMemoryStorage,
    written: &[StoredDataPoint],
    label: &str,
) -> Vec<RecordBatch> {
    let ours = views(store).await;
    for (q, (a, b)) in lifecycle_views().iter().zip(ours.iter().zip(oracle_views(oracle).await)) {
        assert_eq!(*a, b, "{label}: {q:?} equals the in-memory reference");
    }
    assert_eq!(latest_of(&ours[0]), reference_latest(written), "{label}: latest equals the reference");
    assert_eq!(
        store.list_series().await.unwrap(),
        oracle.list_series().await.unwrap(),
        "{label}: the series table reads back"
    );
    ours
}

async fn oracle_views(oracle: &InMemoryStorage) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for q in lifecycle_views() {
        out.push(oracle.query(&q).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_files_need_their_key_and_rotation_leaves_no_file_under_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let oracle = InMemoryStorage::new();
    let commits = stream();
    let (first, rest) = commits.split_at(commits.len() / 2);
    let (second, third) = rest.split_at(rest.len() * 3 / 4);
    let mut written: Vec<StoredDataPoint> = Vec::new();
    let compact = CompactOptions { concurrency: 2, ..CompactOptions::default() };

    // Plaintext first: a table from before encryption was switched on.
    let store = IcebergStore::new(open(dir.path(), None).await);
    write(&store, &oracle, first, &["E00000", "E00001"]).await;
    written.extend(first.iter().flatten().cloned());
    let plain = files(store.warehouse()).await;
    assert!(plain.iter().all(|(_, _, key)| key.is_none()));
    let seen = tokio::task::spawn_blocking({
        let plain = plain.clone();
        move || pyarrow(K1, &plain)
    })
    .await
    .unwrap();
    assert!(seen.iter().all(|(_, p)| p == "read"), "plaintext files read without keys: {seen:?}");
    let before = check_answers(&store, &oracle, &written, "plaintext").await;

    // Encryption on (k1): new files are encrypted, old ones still read; views unchanged.
    let store = IcebergStore::new(open(dir.path(), Some((K1, "k1"))).await);
    assert_eq!(views(&store).await, before, "switching encryption on changes no answer");
    write(&store, &oracle, second, &["E00002"]).await;
    written.extend(second.iter().flatten().cloned());
    let mixed = files(store.warehouse()).await;
    let new: Vec<_> = mixed.iter().filter(|f| !plain.iter().any(|p| p.0 == f.0)).cloned().collect();
    assert!(!new.is_empty() && new.iter().all(|(_, _, key)| key.as_deref() == Some("k1")), "{new:?}");
    let seen = tokio::task::spawn_blocking({
        let new = new.clone();
        move || (pyarrow(K1, &new), pyarrow(K2, &new), pyarrow("", &new))
    })
    .await
    .unwrap();
    for (i, (path, rows, _)) in new.iter().enumerate() {
        assert_eq!(seen.0[i], (rows.to_string(), "refused".to_owned()), "{path}: refused without keys, read with k1");
        assert!(seen.1[i].0.starts_with("fail:"), "{path}: not readable with another key: {:?}", seen.1[i]);
        assert!(seen.2[i].0.starts_with("fail:"), "{path}: not readable with no key: {:?}", seen.2[i]);
    }
    let with_k1 = check_answers(&store, &oracle, &written, "mixed plaintext and k1").await;
    // Compaction writes under k1 and re-encrypts the plaintext files it does not rewrite.
    let report = compact_once(&store, &compact, &CancellationToken::new()).await.unwrap();
    eprintln!("compaction under k1: {}", serde_json::to_string(&report).unwrap());
    let after = files(store.warehouse()).await;
    assert!(after.iter().all(|(_, _, key)| key.as_deref() == Some("k1")), "every live file under k1: {after:?}");
    assert!(
        report.reencrypted.values().any(|r| r.from_keys.contains_key("none")),
        "the plaintext series file was re-encrypted: {:?}",
        report.reencrypted
    );
    assert_eq!(check_answers(&store, &oracle, &written, "after compaction under k1").await, with_k1);
    let k1_snapshot = store.warehouse().load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id();

    // Rotation: k2 becomes current (k1 still known); new rows land under k2, the compactor
    // rewrites every k1 file.
    let store = IcebergStore::new(open(dir.path(), Some((&format!("{K1}\n{K2}"), "k2"))).await);
    write(&store, &oracle, third, &["E00003"]).await;
    written.extend(third.iter().flatten().cloned());
    let before_rotation = check_answers(&store, &oracle, &written, "k1 and k2 files").await;
    let report = compact_once(&store, &compact, &CancellationToken::new()).await.unwrap();
    eprintln!("compaction under k2: {}", serde_json::to_string(&report).unwrap());
    let rotated = files(store.warehouse()).await;
    assert!(rotated.len() > 2, "several files to check: {rotated:?}");
    assert!(rotated.iter().all(|(_, _, key)| key.as_deref() == Some("k2")), "no live file under k1: {rotated:?}");
    let seen = tokio::task::spawn_blocking({
        let rotated = rotated.clone();
        move || (pyarrow(K2, &rotated), pyarrow(K1, &rotated))
    })
    .await
    .unwrap();
    for (i, (path, rows, _)) in rotated.iter().enumerate() {
        assert_eq!(seen.0[i], (rows.to_string(), "refused".to_owned()), "{path}: read with k2");
        assert!(seen.1[i].0.starts_with("fail:"), "{path}: the old key no longer reads it: {:?}", seen.1[i]);
    }
    assert_eq!(check_answers(&store, &oracle, &written, "after rotation").await, before_rotation);
    let audit = store.warehouse().audit().read().unwrap();
    let rekeys: Vec<_> = audit.entries.iter().filter(|e| e.action == "re-encrypt").collect();
    assert!(rekeys.iter().any(|e| e.rule.as_deref().is_some_and(|r| r.contains("\"k2\"")) && !e.files.is_empty()));

    // k1 retired: the current snapshot needs only k2; a time-travel read of a snapshot from before
    // the rotation needs k1 and says so.
    let store = IcebergStore::new(open(dir.path(), Some((K2, "k2"))).await);
    assert_eq!(check_answers(&store, &oracle, &written, "k1 retired").await, before_rotation);
    let old = VintageQuery::new(View::Latest).at_snapshot(SnapshotSelector::Id(k1_snapshot.unwrap()));
    let err = store.query(&old).await.unwrap_err().to_string();
    assert!(err.contains("\"k1\" is not known"), "{err}");
}
