//! `vintagelake bench sql`: SQL through Flight SQL (the ADBC driver a data team uses) side by side
//! with the same question as a Flight ticket and with DuckDB in-process over the same Parquet
//! files, on one compacted table.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vintagelake_kafka::synthetic;
use vintagelake_query::ticket::TicketV1;
use vintagelake_schemas::SeriesId;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::scan::View;
use vintagelake_storage::store::IcebergStore;

use super::{Daemon, Error, append_in_commits, do_get, flight_client, free_port, ms, quantile, rows};

/// Options of `vintagelake bench sql`.
#[derive(Debug, clap::Args)]
pub struct SqlBenchArgs {
    /// Synthetic revisions in the table (written in --commits commits, then compacted).
    #[arg(long, default_value_t = 2_000_000)]
    pub revisions: usize,
    /// Commits the revisions are written in (in revision-date order, as a feed delivers them).
    #[arg(long, default_value_t = 20)]
    pub commits: usize,
    /// One-series reads per client (ADBC, Flight ticket, DuckDB), over as many distinct series.
    #[arg(long, default_value_t = 200)]
    pub reads: usize,
    /// Runs of each full-table aggregate (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Warehouse directory (default: a temporary directory, removed afterwards). Must be empty.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// The Python side: ADBC (the Flight SQL driver from PyPI, through its DB-API) against our
/// service, and DuckDB in-process over the table's live Parquet files with the same questions
/// in its SQL. Prints one JSON line; checks that both engines give the same answers.
const SQL_READS: &str = r#"
import json, time
import adbc_driver_flightsql.dbapi as flight_sql

conn = flight_sql.connect(f"grpc://127.0.0.1:{port}")
cur = conn.cursor()

def ours(sql):
    cur.execute(sql)
    return cur.fetch_arrow_table()

def duck(sql, params=None):
    return con.execute(sql, params or []).to_arrow_table()

duck_latest = """SELECT * EXCLUDE (rn) FROM (
  SELECT *, row_number() OVER (PARTITION BY series_id, date ORDER BY revision_date DESC, ingest_seq DESC) AS rn
  FROM dp{where}) WHERE rn = 1"""

def timed(f):
    xs, rows = [], 0
    for s in series:
        t0 = time.perf_counter(); rows += f(s).num_rows; xs.append(time.perf_counter() - t0)
    xs.sort()
    return {"p50": xs[len(xs) // 2], "p99": xs[min(len(xs) - 1, int(len(xs) * 0.99))], "rows": rows}

# Warm both (connection, footers, DuckDB's file list).
ours(f"SELECT * FROM latest WHERE series_id = '{series[0]}'")
duck(duck_latest.format(where=" WHERE series_id = ?"), [series[0]])
adbc_one = timed(lambda s: ours(f"SELECT * FROM latest WHERE series_id = '{s}'"))
duck_one = timed(lambda s: duck(duck_latest.format(where=" WHERE series_id = ?"), [s]))
if adbc_one["rows"] != duck_one["rows"]:
    raise SystemExit(f"one-series answers differ: ours {adbc_one['rows']} rows, DuckDB {duck_one['rows']}")

def median_run(f):
    xs, answer = [], None
    for _ in range(runs):
        t0 = time.perf_counter(); answer = f(); xs.append(time.perf_counter() - t0)
    xs.sort()
    return xs[len(xs) // 2], answer

def summary(table):
    d = table.to_pydict()
    return sorted(zip(d["series_id"], d["n"], [round(v, 6) if v is not None else None for v in d["total"]]))

agg = "SELECT series_id, COUNT(*) AS n, SUM(value) AS total FROM {src} GROUP BY series_id"
ours_latest_s, ours_latest = median_run(lambda: ours(agg.format(src="latest")))
duck_latest_s, duck_latest_t = median_run(lambda: duck(agg.format(src="(" + duck_latest.format(where="") + ")")))
if summary(ours_latest) != summary(duck_latest_t):
    raise SystemExit("the aggregate over latest differs between our SQL and DuckDB")
ours_raw_s, ours_raw = median_run(lambda: ours(agg.format(src="data_points")))
duck_raw_s, duck_raw = median_run(lambda: duck(agg.format(src="dp")))
if summary(ours_raw) != summary(duck_raw):
    raise SystemExit("the aggregate over data_points differs between our SQL and DuckDB")
print(json.dumps({"adbc_one": adbc_one, "duckdb_one": duck_one,
                  "agg_latest": {"ours": ours_latest_s, "duckdb": duck_latest_s, "groups": ours_latest.num_rows},
                  "agg_raw": {"ours": ours_raw_s, "duckdb": duck_raw_s, "groups": ours_raw.num_rows}}))
"#;

pub async fn sql(args: SqlBenchArgs) -> Result<std::process::ExitCode, Error> {
    let temp = tempfile::tempdir().map_err(|source| Error::Read { what: "a temporary directory".into(), source })?;
    let dir = args.data_dir.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).map_err(|source| Error::Read { what: dir.display().to_string(), source })?;

    eprintln!("writing {} synthetic revisions in {} commits…", args.revisions, args.commits);
    let wh = Warehouse::open(WarehouseConfig::new(&dir)).await?;
    let store = IcebergStore::new(wh);
    let mut revisions = synthetic::revisions(args.revisions, 42);
    revisions.sort_by_key(|r| r.revision_date);
    let per_commit = revisions.len().div_ceil(args.commits.max(1));
    append_in_commits(&store, &revisions, per_commit).await?;
    let mut series: Vec<SeriesId> = revisions.iter().map(|r| r.series_id.clone()).collect();
    series.sort();
    series.dedup();
    drop(revisions);
    eprintln!("compacting…");
    let exe = std::env::current_exe().map_err(|source| Error::Read { what: "current executable".into(), source })?;
    let status = std::process::Command::new(exe)
        .args(["compact", "--once"])
        .env("DATA_DIR", &dir)
        .env("HTTP_PORT", free_port()?.to_string())
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|source| Error::Read { what: "vintagelake compact".into(), source })?;
    if !status.success() {
        return Err(Error::Failed(format!("vintagelake compact --once: {status}")));
    }

    let (flight, http) = (free_port()?, free_port()?);
    let env = BTreeMap::from([
        ("DATA_DIR".to_owned(), dir.display().to_string()),
        ("FLIGHT_SERVER_PORT".to_owned(), flight.to_string()),
    ]);
    let mut query = Daemon::spawn("query", &dir, &env, http)?;
    query.wait_ready(Duration::from_secs(120)).await?;
    let picked: Vec<&SeriesId> = (0..args.reads.max(1)).map(|i| &series[(i * 104_729) % series.len()]).collect();

    // The same question as a Flight ticket.
    let mut client = flight_client(flight).await?;
    do_get(&mut client, &TicketV1::for_series(picked[0], View::Latest)).await?;
    let (mut times, mut flight_rows) = (Vec::with_capacity(picked.len()), 0);
    for s in &picked {
        let t = Instant::now();
        let got = do_get(&mut client, &TicketV1::for_series(s, View::Latest)).await?;
        times.push(t.elapsed());
        flight_rows += rows(&got);
    }
    times.sort();

    eprintln!("ADBC and DuckDB…");
    let python = vintagelake_testkit::tools::pyiceberg_python()
        .map_err(|source| Error::Read { what: "the Python environment".into(), source })?;
    let names: Vec<&str> = picked.iter().map(|s| s.as_str()).collect();
    let script = format!(
        "import sys\nwarehouse, series, port, runs = sys.argv[1], sys.argv[2].split(\",\"), int(sys.argv[3]), \
         int(sys.argv[4])\n{}{SQL_READS}",
        vintagelake_testkit::tools::DUCKDB_OVER_DATA_POINTS
    );
    let out = vintagelake_testkit::tools::run_python(
        &python,
        &script,
        &[&dir.display().to_string(), &names.join(","), &flight.to_string(), &args.runs.max(1).to_string()],
    )
    .map_err(|e| Error::Failed(format!("the ADBC and DuckDB reads: {e}")))?;
    query.check_alive()?;
    let r: serde_json::Value = serde_json::from_str(out.trim())
        .map_err(|e| Error::Failed(format!("the ADBC and DuckDB reads printed {out:?}: {e}")))?;
    let adbc_rows = r["adbc_one"]["rows"].as_u64().unwrap_or(0) as usize;
    if adbc_rows != flight_rows {
        return Err(Error::Failed(format!("ADBC returned {adbc_rows} rows, the Flight tickets {flight_rows}")));
    }
    let secs = |v: &serde_json::Value| ms(Duration::from_secs_f64(v.as_f64().unwrap_or(f64::NAN).max(0.0)));
    let table = Warehouse::open(WarehouseConfig::new(&dir)).await?.load(TableKind::DataPoints).await?;
    let files = table
        .metadata()
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get("total-data-files").cloned())
        .map(|n| format!(" into {n} data files"))
        .unwrap_or_default();
    println!(
        "\n{} revisions ({} series) in {} commits, compacted{files}; {} one-series reads of the latest view \
         ({} rows in all), aggregates the median of {} runs.\n",
        args.revisions,
        series.len(),
        args.commits,
        picked.len(),
        flight_rows,
        args.runs.max(1)
    );
    println!("| question | ours | DuckDB in-process over the same files |");
    println!("|---|---|---|");
    println!(
        "| one series, latest: `SELECT * FROM latest WHERE series_id = …` through ADBC, p50 / p99 | **{} / {}** (Flight \
         ticket: {} / {}) | {} / {} |",
        secs(&r["adbc_one"]["p50"]),
        secs(&r["adbc_one"]["p99"]),
        ms(quantile(&times, 0.5)),
        ms(quantile(&times, 0.99)),
        secs(&r["duckdb_one"]["p50"]),
        secs(&r["duckdb_one"]["p99"]),
    );
    println!(
        "| every series, latest: `SELECT series_id, COUNT(*), SUM(value) FROM latest GROUP BY series_id` ({} groups) \
         | **{}** | {} (`row_number()` window, then the aggregate) |",
        r["agg_latest"]["groups"],
        secs(&r["agg_latest"]["ours"]),
        secs(&r["agg_latest"]["duckdb"]),
    );
    println!(
        "| every stored revision: the same over `data_points` ({} groups) | **{}** | {} |",
        r["agg_raw"]["groups"],
        secs(&r["agg_raw"]["ours"]),
        secs(&r["agg_raw"]["duckdb"]),
    );
    Ok(std::process::ExitCode::SUCCESS)
}
