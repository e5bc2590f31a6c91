//! Flight read benchmark: do_get latency percentiles for one series (≈1 000 points), warm (cache)
//! and cold (no cache), full-table streaming throughput, and the same reads through pyiceberg.
//!
//! `cargo bench -p vintagelake-query --bench flight` (results in docs/BENCHMARKS.md)

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use vintagelake_query::VintageFlightService;
use vintagelake_query::auth::Auth;
use vintagelake_query::ticket::TicketV1;
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::scan::View;
use vintagelake_storage::store::IcebergStore;

const SERIES: usize = 1_000;
const DATES: usize = 250;
const REVISIONS: usize = 4;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn serve(store: Arc<IcebergStore>, cache_mb: usize) -> (u16, CancellationToken) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let service = VintageFlightService::new(
        Arc::new(vintagelake_storage::TableReader::new(store.warehouse().clone(), store.concurrency(), Duration::ZERO)),
        store.warehouse().audit().clone(),
        Arc::new(Auth::default()),
        vintagelake_query::Limits {
            cache_bytes: cache_mb << 20,
            batch_size: 8192,
            chunk_rows: 262_144,
            max_streams: 4,
        },
    );
    vintagelake_query::serve(([127, 0, 0, 1], port).into(), Arc::new(service), None, stop.clone()).await.unwrap();
    (port, stop)
}

async fn client(port: u16) -> FlightClient {
    let ch =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    FlightClient::new(ch)
}

/// (rows, bytes on the wire): decodes every batch, and counts the Flight messages' sizes.
async fn get(c: &mut FlightClient, ticket: &[u8]) -> (usize, usize) {
    let stream = c.inner_mut().do_get(Ticket::new(ticket.to_vec())).await.unwrap().into_inner();
    let data: Vec<arrow_flight::FlightData> = stream.try_collect().await.unwrap();
    let wire = data.iter().map(|d| d.data_header.len() + d.data_body.len()).sum();
    let decoded = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(futures::stream::iter(
        data.into_iter().map(Ok),
    ));
    let batches: Vec<arrow::array::RecordBatch> = decoded.try_collect().await.unwrap();
    (batches.iter().map(|b| b.num_rows()).sum(), wire)
}

async fn latency(c: &mut FlightClient, n: usize, ticket: impl Fn(usize) -> Vec<u8>) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(n);
    let mut rows = 0;
    for i in 0..n {
        let t = Instant::now();
        rows = get(c, &ticket(i)).await.0;
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), rows)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(WarehouseConfig::new(dir.path())).await.unwrap();
        let store = Arc::new(IcebergStore::new(wh.clone()));
        // 10^6 rows in 10 files of 100 series each (a compacted table): every series has 250
        // dates × 4 revisions = 1 000 points.
        for chunk in 0..10 {
            let rows = vintagelake_testkit::fixtures::grid("SERIES", chunk * 100..(chunk + 1) * 100, DATES, REVISIONS);
            store.append_points(&rows, vec![], "bench").await.unwrap();
        }
        let series_ticket = |i: usize| {
            TicketV1::for_series(&format!("SERIES{:05}", (i * 7919) % SERIES).parse().unwrap(), View::AllRevisions).to_bytes()
        };
        let (warm_port, stop_warm) = serve(store.clone(), 1024).await;
        let (cold_port, stop_cold) = serve(store.clone(), 0).await;
        let mut warm = client(warm_port).await;
        let mut cold = client(cold_port).await;
        let one = series_ticket(0);
        get(&mut warm, &one).await; // fill the cache
        let (w50, w99, rows) = latency(&mut warm, 500, |_| one.clone()).await;
        let (c50, c99, _) = latency(&mut cold, 200, series_ticket).await;
        println!("do_get one series ({rows} rows, all revisions), warm cache: p50 {w50:.2?} p99 {w99:.2?}  (500 requests)");
        println!("do_get one series ({rows} rows, all revisions), no cache:   p50 {c50:.2?} p99 {c99:.2?}  (200 requests, 200 series)");

        let full = TicketV1 { series: vec![], ..TicketV1::for_series(&"X".parse().unwrap(), View::AllRevisions) }.to_bytes();
        let mut best = Duration::MAX;
        let (mut rows, mut bytes) = (0, 0);
        for _ in 0..5 {
            let t = Instant::now();
            (rows, bytes) = get(&mut cold, &full).await;
            best = best.min(t.elapsed());
        }
        println!(
            "do_get full table, all revisions: {rows} rows, {:.0} MB on the wire in {best:.2?} (best of 5) = {:.2} M rows/s, {:.0} MB/s",
            bytes as f64 / 1e6,
            rows as f64 / best.as_secs_f64() / 1e6,
            bytes as f64 / 1e6 / best.as_secs_f64()
        );
        stop_warm.cancel();
        stop_cold.cancel();

        // The same reads through pyiceberg (scan only: it has no vintage resolution).
        let python = vintagelake_testkit::tools::pyiceberg_python().unwrap();
        let script = r#"
import sys, time
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1] + "/catalog.sqlite", warehouse="file://" + sys.argv[1] + "/warehouse")
t = cat.load_table("econ.data_points")
def timed(f, n):
    xs = []
    for _ in range(n):
        s = time.perf_counter(); r = f(); xs.append(time.perf_counter() - s)
    xs.sort(); return xs, r
xs, r = timed(lambda: t.scan(row_filter="series_id == 'SERIES00000'").to_arrow(), 50)
print(f"pyiceberg one series: {r.num_rows} rows, p50 {xs[len(xs)//2]*1000:.1f} ms p99 {xs[int((len(xs)-1)*0.99)]*1000:.1f} ms (50 scans)")
xs, r = timed(lambda: t.scan().to_arrow(), 5)
print(f"pyiceberg full table: {r.num_rows} rows in {xs[0]*1000:.0f} ms (best of 5) = {r.num_rows/xs[0]/1e6:.2f} M rows/s")
"#;
        print!("{}", vintagelake_testkit::tools::run_python(&python, script, &[dir.path().to_str().unwrap()]).unwrap());
    });
}
