//! One table with files in a `file://` tier and an `s3://` tier (a real S3-compatible server on
//! loopback), read in one scan.

use vintagelake_schemas::table::{StoredDataPoint, stored_data_points_to_batch};
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::commit::{CommitRequest, RetryPolicy, commit};
use vintagelake_storage::config::TierName;
use vintagelake_storage::files::live_files;
use vintagelake_storage::io::TierSpec;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};
use vintagelake_storage::write::{Encoding, write_data_files};
use vintagelake_testkit::tools::S3Server;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scan_reads_a_local_tier_and_an_s3_tier() {
    let s3 = std::sync::Arc::new(
        tokio::task::spawn_blocking(|| S3Server::start("econ-archive")).await.unwrap().expect("S3 server"),
    );
    let dir = tempfile::tempdir().unwrap();
    let tiers = vec![TierSpec::local("hot", dir.path().join("hot")), s3.tier("archive", "vintagelake")];
    let wh = Warehouse::open(WarehouseConfig::new(dir.path()).with_tiers(tiers)).await.unwrap();
    let store = IcebergStore::new(wh.clone());

    // One revision in the hot tier (the default for new files) …
    let hot = StoredDataPoint {
        point: point("GDPC1", "2024-01-01", "2024-04-25", Some(1.0), true),
        realtime_end: None,
        ingest_seq: 1,
        status: None,
        comment: None,
    };
    store.append_points(std::slice::from_ref(&hot), vec![], "test").await.unwrap();
    // … and an older, superseded one written straight to the archive tier.
    let old = StoredDataPoint {
        point: point("GDPC1", "2024-01-01", "2024-03-28", Some(0.9), true),
        realtime_end: Some(d("2024-04-24")),
        ingest_seq: 0,
        status: None,
        comment: None,
    };
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let batch = stored_data_points_to_batch(&[old]).unwrap();
    let files = write_data_files(
        &wh,
        &table,
        TableKind::DataPoints,
        &[batch],
        Some(&TierName::new("archive")),
        Encoding::Settled,
    )
    .await
    .unwrap();
    assert!(files[0].file_path().starts_with("s3://econ-archive/vintagelake/"), "{}", files[0].file_path());
    commit(&wh, TableKind::DataPoints, &CommitRequest::append(files, "test"), &RetryPolicy::default()).await.unwrap();

    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let live = live_files(&wh, &table, None).await.unwrap();
    let mut tiers: Vec<&str> = live.iter().map(|f| f.tier.as_ref().unwrap().as_str()).collect();
    tiers.sort();
    assert_eq!(tiers, ["archive", "hot"]);
    // The object really is in the bucket (seen by an independent S3 client).
    let server = s3.clone();
    let keys = tokio::task::spawn_blocking(move || server.list_keys()).await.unwrap().unwrap();
    assert_eq!(keys.iter().filter(|k| k.ends_with(".parquet")).count(), 1, "{keys:?}");

    let all = rows(&store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap());
    assert_eq!(
        all,
        vec![
            row("GDPC1", "2024-01-01", Some(0.9), "2024-03-28", "2024-04-24"),
            row("GDPC1", "2024-01-01", Some(1.0), "2024-04-25", OPEN),
        ]
    );
    let as_of = rows(&store.query(&VintageQuery::new(View::AsOf(d("2024-04-01")))).await.unwrap());
    assert_eq!(as_of, vec![row("GDPC1", "2024-01-01", Some(0.9), "2024-03-28", OPEN)]);
}

/// An S3 tier behind HTTPS with a private CA (`ca_file`) that writes with server-side encryption:
/// its files are stored encrypted (as the server reports them) and read back; a client without
/// the CA refuses the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_tier_over_tls_with_a_private_ca_writes_server_side_encrypted_objects() {
    use std::sync::Arc;
    use vintagelake_storage::io::TierTarget;
    use vintagelake_testkit::tools::TestCerts;

    let certs = Arc::new(TestCerts::new().expect("openssl makes the test certificates"));
    let c = certs.clone();
    let s3 = Arc::new(
        tokio::task::spawn_blocking(move || {
            S3Server::start_tls("econ-secure", &c.server_cert(), &c.server_key(), &c.ca())
        })
        .await
        .unwrap()
        .expect("S3 server over TLS"),
    );
    assert!(s3.endpoint().starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let mut archive = s3.tier("archive", "vintagelake");
    if let TierTarget::S3 { server_side_encryption, .. } = &mut archive.target {
        *server_side_encryption = Some("AES256".into());
    }
    let tiers = vec![TierSpec::local("hot", dir.path().join("hot")), archive.clone()];
    let wh = Warehouse::open(WarehouseConfig::new(dir.path().join("a")).with_tiers(tiers)).await.unwrap();
    let store = IcebergStore::new(wh.clone());
    let revision = StoredDataPoint {
        point: point("GDPC1", "2024-01-01", "2024-03-28", Some(0.9), true),
        realtime_end: Some(d("2024-04-24")),
        ingest_seq: 0,
        status: Some("P".into()),
        comment: None,
    };
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let batch = stored_data_points_to_batch(&[revision]).unwrap();
    let files = write_data_files(
        &wh,
        &table,
        TableKind::DataPoints,
        &[batch],
        Some(&TierName::new("archive")),
        Encoding::Settled,
    )
    .await
    .unwrap();
    let path = files[0].file_path().to_owned();
    assert!(path.starts_with("s3://econ-secure/vintagelake/"), "{path}");
    commit(&wh, TableKind::DataPoints, &CommitRequest::append(files, "test"), &RetryPolicy::default()).await.unwrap();
    let all = rows(&store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap());
    assert_eq!(all, vec![row("GDPC1", "2024-01-01", Some(0.9), "2024-03-28", "2024-04-24")]);

    let server = s3.clone();
    let objects = tokio::task::spawn_blocking(move || server.objects()).await.unwrap().unwrap();
    assert!(!objects.is_empty());
    assert!(objects.iter().all(|(_, sse)| sse.as_deref() == Some("AES256")), "every object encrypted: {objects:?}");

    // The same tier without the private CA: the endpoint's certificate is not trusted.
    let mut untrusted = archive;
    if let TierTarget::S3 { ca_file, .. } = &mut untrusted.target {
        *ca_file = None;
    }
    let other = Warehouse::open(
        WarehouseConfig::new(dir.path().join("b"))
            .with_tiers(vec![TierSpec::local("hot", dir.path().join("hot2")), untrusted]),
    )
    .await
    .unwrap();
    let refused = other.file_io().new_input(&path).unwrap().read().await.unwrap_err();
    let text = format!("{refused:?}").to_lowercase();
    assert!(text.contains("certificate") || text.contains("unknownissuer"), "{text}");
}
