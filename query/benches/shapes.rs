//! Vintage shapes benchmark: the vintage matrix of one quarterly series of 75 years with 300
//! vintages over Flight (p50/p99), and revision statistics over 10^6 revisions — the computation
//! alone and the whole answer over Flight — with the same questions in DuckDB SQL over the same
//! table's Parquet files, in the same run.
//!
//! `cargo bench -p vintagelake-query --bench shapes` (results in docs/BENCHMARKS.md)

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use vintagelake_query::VintageFlightService;
use vintagelake_query::auth::Auth;
use vintagelake_query::ticket::TicketV1;
use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_schemas::{Date, SeriesId};
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::shapes::Shape;
use vintagelake_storage::store::IcebergStore;
use vintagelake_testkit::fixtures::point;

const QUARTERS: i32 = 300;
/// The query service's default `HOT_CACHE_MB`.
const HOT_BYTES: usize = 512 << 20;
/// 10^6 revisions: 1 000 series × 100 dates × 10 revisions.
const STATS_SERIES: usize = 1_000;
const STATS_DATES: usize = 100;
const STATS_REVISIONS: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn day(d: i32) -> String {
    Date::from_days_since_epoch(d).to_string()
}

/// One quarterly series from 1950: vintage v comes a month after quarter v ends, publishes
/// quarter v, revises v−1 and v−2 (second and third estimates) and, every 20th vintage, every
/// quarter so far (a comprehensive update). 300 vintages.
fn quarterly() -> Vec<StoredDataPoint> {
    let start = Date::parse_iso("1950-01-01").unwrap().days_since_epoch();
    let quarter = |q: i32| start + q * 365 / 4 + q / 16; // about a quarter apart, increasing
    let mut rows = Vec::new();
    for v in 0..QUARTERS {
        let vintage = quarter(v + 1) + 30;
        let revised: Vec<i32> = if v % 20 == 19 { (0..=v).collect() } else { (v.saturating_sub(2)..=v).collect() };
        for q in revised {
            let value = 100.0 + f64::from(q) * 0.7 + f64::from(v - q) * 0.01;
            rows.push(StoredDataPoint {
                point: point("GDPQ75", &day(quarter(q)), &day(vintage), Some(value), v == q),
                realtime_end: None,
                ingest_seq: rows.len() as i64,
                status: None,
                comment: None,
            });
        }
    }
    rows
}

async fn serve(store: Arc<IcebergStore>) -> (u16, CancellationToken) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let service = VintageFlightService::new(
        Arc::new(
            vintagelake_storage::TableReader::new(store.warehouse().clone(), store.concurrency(), Duration::ZERO)
                .with_hot_bytes(HOT_BYTES),
        ),
        store.warehouse().audit().clone(),
        Arc::new(Auth::default()),
        vintagelake_query::Limits { cache_bytes: 0, batch_size: 8192, chunk_rows: 262_144, max_streams: 4 },
    );
    vintagelake_query::serve(([127, 0, 0, 1], port).into(), Arc::new(service), None, stop.clone()).await.unwrap();
    (port, stop)
}

async fn rows_of(c: &mut FlightClient, ticket: &[u8]) -> usize {
    let batches: Vec<arrow::array::RecordBatch> =
        c.do_get(Ticket::new(ticket.to_vec())).await.unwrap().try_collect().await.unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

/// The same questions in DuckDB SQL, after `DUCKDB_OVER_DATA_POINTS` opened the warehouse.
const DUCKDB: &str = r#"
import json, time
# Effective revisions (the last arrival of each vintage), then the matrix by an ASOF join.
matrix = """
WITH eff AS (SELECT date, revision_date, arg_max(value, ingest_seq) AS value FROM dp
             WHERE series_id = 'GDPQ75' GROUP BY ALL),
grid AS (SELECT d.date, v.vintage FROM (SELECT DISTINCT date FROM eff) d,
                                       (SELECT DISTINCT revision_date AS vintage FROM eff) v)
SELECT g.date, g.vintage, e.value FROM grid g ASOF JOIN eff e ON g.date = e.date AND g.vintage >= e.revision_date"""
stats = """
WITH eff AS (SELECT series_id, date, revision_date, arg_max(value, ingest_seq) AS value FROM dp
             WHERE series_id <> 'GDPQ75' GROUP BY ALL),
seq AS (SELECT *, lag(value) OVER (PARTITION BY series_id, date ORDER BY revision_date) AS prev,
               row_number() OVER (PARTITION BY series_id, date ORDER BY revision_date) AS k FROM eff)
SELECT series_id, date, count(*) AS releases,
       count(*) FILTER (WHERE k > 1 AND value IS DISTINCT FROM prev) AS revisions,
       min(revision_date) AS first_release_date, arg_min(value, revision_date) AS first_value,
       max(revision_date) AS latest_revision_date, arg_max(value, revision_date) AS latest_value,
       avg(abs(value - prev)) AS mean_abs_revision
FROM seq GROUP BY ALL"""
def timed(sql, n):
    xs, rows = [], 0
    for _ in range(n):
        t0 = time.perf_counter(); rows = len(con.execute(sql).fetchall()); xs.append(time.perf_counter() - t0)
    xs.sort()
    return {"p50": xs[len(xs) // 2], "p99": xs[min(len(xs) - 1, int(len(xs) * 0.99))], "best": xs[0], "rows": rows}
print(json.dumps({"matrix": timed(matrix, 50), "stats": timed(stats, 3)}))
"#;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(WarehouseConfig::new(dir.path())).await.unwrap();
        let store = Arc::new(IcebergStore::new(wh.clone()));
        let q = quarterly();
        let quarterly_rows = q.len();
        store.append_points(&q, vec![], "bench").await.unwrap();
        for chunk in 0..10 {
            let rows = vintagelake_testkit::fixtures::grid(
                "STATS",
                chunk * STATS_SERIES / 10..(chunk + 1) * STATS_SERIES / 10,
                STATS_DATES,
                STATS_REVISIONS,
            );
            store.append_points(&rows, vec![], "bench").await.unwrap();
        }
        vintagelake_compactor::compact_once(&store, &Default::default(), &Default::default()).await.unwrap();

        // The read under the matrix: one series' every revision, straight from the reader.
        let reader =
            vintagelake_storage::TableReader::new(wh.clone(), store.concurrency(), Duration::ZERO).with_hot_bytes(HOT_BYTES);
        let pinned = reader.pin(vintagelake_storage::SnapshotSelector::Current).await.unwrap();
        let one = VintageQuery::new(View::AllRevisions).series(["GDPQ75".parse().unwrap()]);
        let (planned, total) = reader.plan(&pinned, &one).await.unwrap();
        let t = Instant::now();
        reader.read(&pinned, &one).await.unwrap();
        println!("all_revisions of that series, first read (files not yet kept decoded): {:.2?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await; // the background loads it started
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            reader.read(&pinned, &one).await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "all_revisions of that series, read and resolved (no Flight): p50 {:.2?} p99 {:.2?}; {planned} of {total} files planned",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
        let (port, stop) = serve(store.clone()).await;
        let ch = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = FlightClient::new(ch);
        let gdp: SeriesId = "GDPQ75".parse().unwrap();
        let matrix = TicketV1::for_shape(std::slice::from_ref(&gdp), &Shape::Matrix { vintages: vec![] }).to_bytes();
        let cells = rows_of(&mut client, &matrix).await;
        let mut times = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            rows_of(&mut client, &matrix).await;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "matrix, one quarterly series of {QUARTERS} quarters × {QUARTERS} vintages ({quarterly_rows} stored revisions → \
             {cells} cells), over Flight, no result cache: p50 {:.2?} p99 {:.2?} (300 requests)",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );

        // Revision statistics over 10^6 revisions: the computation over the resolved revisions,
        // and the whole answer over Flight (reading and resolving included).
        let stats_series: Vec<SeriesId> = (0..STATS_SERIES).map(|i| format!("STATS{i:05}").parse().unwrap()).collect();
        let all = reader.read(&pinned, &VintageQuery::new(View::AllRevisions).series(stats_series.clone())).await.unwrap();
        let revisions = all.num_rows();
        let mut best = Duration::MAX;
        let mut out = 0;
        for _ in 0..5 {
            let t = Instant::now();
            out = Shape::RevisionStats.apply(&all).unwrap().num_rows();
            best = best.min(t.elapsed());
        }
        println!(
            "revision_stats over {revisions} resolved revisions → {out} observations: {best:.2?} (best of 5) = {:.1} M revisions/s",
            revisions as f64 / best.as_secs_f64() / 1e6
        );
        let stats = TicketV1::for_shape(&[], &Shape::RevisionStats).to_bytes();
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            out = rows_of(&mut client, &stats).await;
            best = best.min(t.elapsed());
        }
        println!(
            "revision_stats of the whole table over Flight ({} revisions read and resolved → {out} rows): {best:.2?} (best of 3) = {:.2} M revisions/s",
            revisions + quarterly_rows,
            (revisions + quarterly_rows) as f64 / best.as_secs_f64() / 1e6
        );
        // What bounds it: the same read without the shape (every revision of the whole table).
        let all_ticket = TicketV1 { series: vec![], ..TicketV1::for_series(&gdp, View::AllRevisions) }.to_bytes();
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            out = rows_of(&mut client, &all_ticket).await;
            best = best.min(t.elapsed());
        }
        println!("all_revisions of the whole table over Flight (the read under it, {out} rows): {best:.2?} (best of 3)");
        stop.cancel();

        let python = vintagelake_testkit::tools::pyiceberg_python().unwrap();
        let path = dir.path().to_str().unwrap();
        let script = format!(
            "import sys\nwarehouse = sys.argv[1]\n{}{DUCKDB}",
            vintagelake_testkit::tools::DUCKDB_OVER_DATA_POINTS
        );
        match vintagelake_testkit::tools::run_python(&python, &script, &[path]) {
            Ok(out) => {
                let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap_or("{}")).unwrap();
                let s = |k: &str, f: &str| v[k][f].as_f64().unwrap_or(f64::NAN);
                println!(
                    "DuckDB SQL over the same files: matrix p50 {:.2} ms p99 {:.2} ms ({} cells); revision statistics \
                     {:.0} ms (best of 3, {} rows) = {:.2} M revisions/s",
                    s("matrix", "p50") * 1e3,
                    s("matrix", "p99") * 1e3,
                    v["matrix"]["rows"],
                    s("stats", "best") * 1e3,
                    v["stats"]["rows"],
                    revisions as f64 / s("stats", "best") / 1e6
                );
            }
            Err(e) => println!("DuckDB comparison not run: {e}"),
        }
    });
}
