//! Test fixtures shared by this crate's and other crates' tests: the hand-computed vintage
//! fixture (a series with 4 vintages, a correction, a missing value, a date first published late,
//! an exact duplicate), its expected answers for every view, and view rows as comparable tuples.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type};
use vintagelake_schemas::model::derived_data_point_id;
use vintagelake_schemas::{DataPoint, Date, SeriesId, Timestamp};
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::FinancialDataStorage;

pub async fn warehouse(dir: &std::path::Path) -> Arc<Warehouse> {
    Warehouse::open(WarehouseConfig::new(dir)).await.expect("open warehouse")
}

pub fn d(s: &str) -> Date {
    Date::parse_iso(s).unwrap_or_else(|| panic!("bad date {s}"))
}

pub fn point(series: &str, date: &str, revision: &str, value: Option<f64>, original: bool) -> DataPoint {
    let series_id: SeriesId = series.parse().unwrap();
    let (date, revision_date) = (d(date), d(revision));
    DataPoint {
        id: derived_data_point_id(&series_id, date, revision_date),
        series_id,
        date,
        value,
        revision_date,
        is_original_release: original,
        created_at: Timestamp::from_nanos(1_700_000_000_000_000_000),
        updated_at: Timestamp::from_nanos(1_700_000_000_000_000_000),
    }
}

/// A view row: (series, date, value, realtime_start, realtime_end).
pub type Row = (String, String, Option<f64>, String, String);

pub fn rows(batch: &RecordBatch) -> Vec<Row> {
    let s = batch.column_by_name("series_id").unwrap().as_string::<i32>();
    let date = batch.column_by_name("date").unwrap().as_primitive::<Date32Type>();
    let v = batch.column_by_name("value").unwrap().as_primitive::<Float64Type>();
    let start = batch.column_by_name("realtime_start").unwrap().as_primitive::<Date32Type>();
    let end = batch.column_by_name("realtime_end").unwrap().as_primitive::<Date32Type>();
    let day = |x: i32| Date::from_days_since_epoch(x).to_string();
    (0..batch.num_rows())
        .map(|i| {
            (
                s.value(i).to_owned(),
                day(date.value(i)),
                v.is_valid(i).then(|| v.value(i)),
                day(start.value(i)),
                day(end.value(i)),
            )
        })
        .collect()
}

pub fn row(series: &str, date: &str, value: Option<f64>, start: &str, end: &str) -> Row {
    (series.into(), date.into(), value, start.into(), end.into())
}

pub const OPEN: &str = "9999-12-31";

/// The fixture, one vintage per write, in publication order:
/// a series with 4 vintages, a correction, a value published as missing, a date first published
/// late, an exact duplicate, and a second series to filter out.
pub async fn write_fixture(store: &dyn FinancialDataStorage) {
    let gdp: SeriesId = "GDPC1".parse().unwrap();
    let v1 = vec![point("GDPC1", "2023-01-01", "2023-04-27", Some(100.0), true)];
    let v2 = vec![
        point("GDPC1", "2023-01-01", "2023-07-27", Some(101.0), false),
        point("GDPC1", "2023-04-01", "2023-07-27", Some(200.0), true),
        // Exact duplicate of the row above: idempotent.
        point("GDPC1", "2023-04-01", "2023-07-27", Some(200.0), true),
    ];
    let v3 = vec![
        // First published late: 2022-Q4 appears only in the third vintage.
        point("GDPC1", "2022-10-01", "2023-10-26", Some(50.0), true),
        point("GDPC1", "2023-01-01", "2023-10-26", Some(101.5), false),
        point("GDPC1", "2023-04-01", "2023-10-26", Some(201.0), false),
        point("GDPC1", "2023-07-01", "2023-10-26", Some(300.0), true),
    ];
    // Correction of the 2023-Q3 first release (same key, later arrival wins).
    let correction = vec![point("GDPC1", "2023-07-01", "2023-10-26", Some(299.0), true)];
    let v4 = vec![
        point("GDPC1", "2023-01-01", "2024-01-25", Some(101.5), false),
        // Published as missing.
        point("GDPC1", "2023-04-01", "2024-01-25", None, false),
        point("GDPC1", "2023-07-01", "2024-01-25", Some(301.0), false),
        point("GDPC1", "2023-10-01", "2024-01-25", Some(400.0), true),
    ];
    for vintage in [v1, v2, v3, correction, v4] {
        store.write_data_points(&gdp, &vintage).await.expect("write vintage");
    }
    let unrate: SeriesId = "UNRATE".parse().unwrap();
    store.write_data_points(&unrate, &[point("UNRATE", "2023-01-01", "2023-02-03", Some(3.4), true)]).await.unwrap();
}

/// Checks every view of [`write_fixture`]'s data against the hand-computed answers.
pub async fn check_views(store: &dyn FinancialDataStorage, label: &str) {
    let gdp: SeriesId = "GDPC1".parse().unwrap();
    let q = |view| VintageQuery::new(view).series([gdp.clone()]);
    assert_eq!(rows(&store.query(&q(View::Latest)).await.unwrap()), expected_latest(), "{label}: latest");
    for (t, expected) in expected_as_of() {
        assert_eq!(rows(&store.query(&q(View::AsOf(d(t)))).await.unwrap()), expected, "{label}: as_of {t}");
    }
    assert_eq!(
        rows(&store.query(&q(View::FirstRelease)).await.unwrap()),
        expected_first_release(),
        "{label}: first_release"
    );
    assert_eq!(
        rows(&store.query(&q(View::AllRevisions)).await.unwrap()),
        expected_all_revisions(),
        "{label}: all_revisions"
    );
    // Date range filter.
    let ranged =
        VintageQuery::new(View::Latest).series([gdp.clone()]).between(Some(d("2023-01-01")), Some(d("2023-04-01")));
    assert_eq!(rows(&store.query(&ranged).await.unwrap()), expected_latest()[1..3].to_vec(), "{label}: range");
    // Every series, latest.
    let all = rows(&store.query(&VintageQuery::new(View::Latest)).await.unwrap());
    assert_eq!(all.len(), 6, "{label}: all series");
    assert_eq!(all[5], row("UNRATE", "2023-01-01", Some(3.4), "2023-02-03", OPEN));
    // The seed's read_data_points: every revision of the series in the range, corrections applied.
    let points = store.read_data_points(&gdp, Some(d("2023-07-01")), None).await.unwrap();
    let got: Vec<(String, Option<f64>)> = points.iter().map(|p| (p.date.to_string(), p.value)).collect();
    assert_eq!(
        got,
        vec![
            ("2023-07-01".into(), Some(299.0)),
            ("2023-07-01".into(), Some(301.0)),
            ("2023-10-01".into(), Some(400.0))
        ],
        "{label}: read_data_points"
    );
}

pub fn expected_latest() -> Vec<Row> {
    vec![
        row("GDPC1", "2022-10-01", Some(50.0), "2023-10-26", OPEN),
        row("GDPC1", "2023-01-01", Some(101.5), "2024-01-25", OPEN),
        row("GDPC1", "2023-04-01", None, "2024-01-25", OPEN),
        row("GDPC1", "2023-07-01", Some(301.0), "2024-01-25", OPEN),
        row("GDPC1", "2023-10-01", Some(400.0), "2024-01-25", OPEN),
    ]
}

/// (vintage date, expected rows)
pub fn expected_as_of() -> Vec<(&'static str, Vec<Row>)> {
    vec![
        ("2023-04-26", vec![]),
        ("2023-04-27", vec![row("GDPC1", "2023-01-01", Some(100.0), "2023-04-27", OPEN)]),
        (
            "2023-09-01",
            vec![
                row("GDPC1", "2023-01-01", Some(101.0), "2023-07-27", OPEN),
                row("GDPC1", "2023-04-01", Some(200.0), "2023-07-27", OPEN),
            ],
        ),
        (
            "2023-10-26",
            vec![
                row("GDPC1", "2022-10-01", Some(50.0), "2023-10-26", OPEN),
                row("GDPC1", "2023-01-01", Some(101.5), "2023-10-26", OPEN),
                row("GDPC1", "2023-04-01", Some(201.0), "2023-10-26", OPEN),
                row("GDPC1", "2023-07-01", Some(299.0), "2023-10-26", OPEN),
            ],
        ),
        ("2024-06-01", expected_latest()),
    ]
}

pub fn expected_first_release() -> Vec<Row> {
    vec![
        row("GDPC1", "2022-10-01", Some(50.0), "2023-10-26", OPEN),
        row("GDPC1", "2023-01-01", Some(100.0), "2023-04-27", "2023-07-26"),
        row("GDPC1", "2023-04-01", Some(200.0), "2023-07-27", "2023-10-25"),
        row("GDPC1", "2023-07-01", Some(299.0), "2023-10-26", "2024-01-24"),
        row("GDPC1", "2023-10-01", Some(400.0), "2024-01-25", OPEN),
    ]
}

pub fn expected_all_revisions() -> Vec<Row> {
    vec![
        row("GDPC1", "2022-10-01", Some(50.0), "2023-10-26", OPEN),
        row("GDPC1", "2023-01-01", Some(100.0), "2023-04-27", "2023-07-26"),
        row("GDPC1", "2023-01-01", Some(101.0), "2023-07-27", "2023-10-25"),
        row("GDPC1", "2023-01-01", Some(101.5), "2023-10-26", "2024-01-24"),
        row("GDPC1", "2023-01-01", Some(101.5), "2024-01-25", OPEN),
        row("GDPC1", "2023-04-01", Some(200.0), "2023-07-27", "2023-10-25"),
        row("GDPC1", "2023-04-01", Some(201.0), "2023-10-26", "2024-01-24"),
        row("GDPC1", "2023-04-01", None, "2024-01-25", OPEN),
        row("GDPC1", "2023-07-01", Some(299.0), "2023-10-26", "2024-01-24"),
        row("GDPC1", "2023-07-01", Some(301.0), "2024-01-25", OPEN),
        row("GDPC1", "2023-10-01", Some(400.0), "2024-01-25", OPEN),
    ]
}

/// A regular table for benchmarks and scale tests: for each series `{prefix}{n:05}` (n in
/// `series`), `dates` dates 30 days apart, each revised `revisions` times 30 days apart; the first
/// revision is the original release.
pub fn grid(
    prefix: &str,
    series: std::ops::Range<usize>,
    dates: usize,
    revisions: usize,
) -> Vec<vintagelake_storage::store::StoredRow> {
    use vintagelake_schemas::table::StoredDataPoint;
    let mut rows = Vec::with_capacity(series.len() * dates * revisions);
    for s in series {
        let id: SeriesId = format!("{prefix}{s:05}").parse().expect("valid id");
        for d in 0..dates {
            let date = Date::from_days_since_epoch(10_000 + 30 * d as i32);
            for r in 0..revisions {
                let revision_date = Date::from_days_since_epoch(10_030 + 30 * (d + r) as i32);
                rows.push(StoredDataPoint {
                    point: DataPoint {
                        id: derived_data_point_id(&id, date, revision_date),
                        series_id: id.clone(),
                        date,
                        value: Some((s * d + r) as f64 * 0.25),
                        revision_date,
                        is_original_release: r == 0,
                        created_at: Timestamp::from_nanos(0),
                        updated_at: Timestamp::from_nanos(0),
                    },
                    realtime_end: None,
                    ingest_seq: (d * revisions + r) as i64,
                    status: None,
                    comment: None,
                });
            }
        }
    }
    rows
}

/// [`grid`] as a stream would deliver it: in publication order (revision date, series, date),
/// with a correction (same vintage, new value) after every 37th revision and an exact duplicate
/// after every 53rd, `ingest_seq` numbering the arrival order. Compaction and lifecycle tests and
/// benchmarks use it: the latest, first-release and as-of views of it are well defined.
pub fn revision_stream(
    prefix: &str,
    series: std::ops::Range<usize>,
    dates: usize,
    revisions: usize,
) -> Vec<vintagelake_storage::store::StoredRow> {
    let mut rows = grid(prefix, series, dates, revisions);
    let mut extra = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if i % 37 == 0 {
            let mut c = r.clone();
            c.point.value = c.point.value.map(|v| v + 0.5);
            extra.push(c);
        } else if i % 53 == 0 {
            extra.push(r.clone());
        }
    }
    rows.extend(extra);
    rows.sort_by_key(|r| (r.point.revision_date, r.point.series_id.clone(), r.point.date));
    for (seq, r) in rows.iter_mut().enumerate() {
        r.ingest_seq = seq as i64;
    }
    rows
}

/// The views compaction and lifecycle tests compare: latest, first release, all revisions, and
/// three as-of vintages inside [`grid`]'s date range.
pub fn lifecycle_views() -> Vec<VintageQuery> {
    use vintagelake_storage::scan::{View, VintageQuery};
    let mut v = vec![
        VintageQuery::new(View::Latest),
        VintageQuery::new(View::FirstRelease),
        VintageQuery::new(View::AllRevisions),
    ];
    for d in [10_100, 10_500, 11_000] {
        v.push(VintageQuery::new(View::AsOf(Date::from_days_since_epoch(d))));
    }
    v
}

/// Every [`lifecycle_views`] answer of `store`.
pub async fn lifecycle_answers(store: &dyn FinancialDataStorage) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for q in lifecycle_views() {
        out.push(store.query(&q).await.expect("view answers"));
    }
    out
}

/// Series metadata as a publisher sends it, for tests.
pub fn series_record(id: &str, title: &str) -> vintagelake_schemas::EconomicSeries {
    vintagelake_schemas::EconomicSeries {
        id: id.parse().unwrap(),
        source_id: "fred".into(),
        external_id: id.into(),
        title: title.into(),
        description: None,
        units: Some("Percent".into()),
        frequency: "Quarterly".into(),
        seasonal_adjustment: None,
        start_date: Some(d("1947-01-01")),
        end_date: None,
        is_active: true,
        created_at: Timestamp::from_nanos(1_700_000_000_000_000_000),
        updated_at: Timestamp::from_nanos(1_700_000_000_000_000_000),
        notes: None,
        release: None,
        last_updated: None,
    }
}

/// The storage-trait suite every backend must pass, on a fresh store: the fixture's views, series
/// metadata (latest message per id), rejected writes that change nothing, and a revision stream
/// whose every view must equal the in-memory store's after the same writes.
pub async fn storage_trait_suite(store: &dyn FinancialDataStorage, label: &str) {
    use vintagelake_storage::store::InMemoryStorage;
    let oracle = InMemoryStorage::new();
    write_fixture(store).await;
    write_fixture(&oracle).await;
    check_views(store, label).await;

    // Series metadata: a later message for the same id replaces the earlier one.
    let series = series_record;
    assert_eq!(store.read_series(&"GDPC1".parse().unwrap()).await.unwrap(), None, "{label}: no metadata yet");
    store.write_series(&series("GDPC1", "Real GDP")).await.unwrap();
    store.write_series(&series("UNRATE", "Unemployment rate")).await.unwrap();
    store.write_series(&series("GDPC1", "Real Gross Domestic Product")).await.unwrap();
    let listed: Vec<(String, String)> =
        store.list_series().await.unwrap().into_iter().map(|s| (s.id.to_string(), s.title)).collect();
    assert_eq!(
        listed,
        vec![("GDPC1".into(), "Real Gross Domestic Product".into()), ("UNRATE".into(), "Unemployment rate".into())],
        "{label}: list_series"
    );
    let gdp = store.read_series(&"GDPC1".parse().unwrap()).await.unwrap().expect("GDPC1 metadata");
    assert_eq!(gdp.title, "Real Gross Domestic Product", "{label}: read_series");

    // A write naming the wrong series is refused and changes nothing.
    let before = store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    let wrong = [point("UNRATE", "2023-02-01", "2023-03-03", Some(3.5), true)];
    assert!(store.write_data_points(&"GDPC1".parse().unwrap(), &wrong).await.is_err(), "{label}: wrong series");
    store.write_data_points(&"GDPC1".parse().unwrap(), &[]).await.expect("an empty write is a no-op");
    let after = store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    assert_eq!(rows(&after), rows(&before), "{label}: refused write left no rows");

    // A revision stream (corrections, duplicates, several series), one write per series and
    // vintage as a publisher would send it: every view equals the in-memory store's.
    let stream = revision_stream("S", 0..3, 6, 3);
    let mut start = 0;
    while start < stream.len() {
        let key = (&stream[start].point.series_id, stream[start].point.revision_date);
        let end =
            start + stream[start..].iter().take_while(|r| (&r.point.series_id, r.point.revision_date) == key).count();
        let points: Vec<DataPoint> = stream[start..end].iter().map(|r| r.point.clone()).collect();
        store.write_data_points(key.0, &points).await.expect("write vintage");
        oracle.write_data_points(key.0, &points).await.unwrap();
        start = end;
    }
    let got = lifecycle_answers(store).await;
    let want = lifecycle_answers(&oracle).await;
    for ((q, g), w) in lifecycle_views().iter().zip(&got).zip(&want) {
        assert!(g.num_rows() > 0, "{label}: {:?} is empty", q.view);
        assert_eq!(rows(g), rows(w), "{label}: {:?} differs from the in-memory store", q.view);
    }
}
