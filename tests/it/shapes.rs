//! The vintage shapes (real-time windows, vintage dates, matrix, new and revised, n-th release,
//! revision between two vintages, revision statistics, real-time diagonal) through the Flight
//! service and `vintagelake get`, as users ask them:
//! - on random revision streams (corrections, exact duplicates, missing values, out-of-order
//!   backfills, late first releases), against a reference written here from the documented rules,
//!   before and after compaction and tiering runs;
//! - on real published revisions of U.S. real GDP growth, with the answers worked out by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int32Type};
use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use rand::{Rng, SeedableRng};
use vintagelake_query::ticket::TicketV1;
use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_schemas::{Date, SeriesId, Timestamp};
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::io::TierSpec;
use vintagelake_storage::scan::OPEN_END;
use vintagelake_storage::shapes::{HorizonFrom, Release, Shape};
use vintagelake_storage::store::IcebergStore;
use vintagelake_testkit::fixtures::{d, point};

use crate::support::{Daemon, free_port, wait_for};

/// U.S. real GDP, percent change from the preceding quarter at an annual rate (ALFRED series
/// A191RL1Q225SBEA): the advance, second and third estimates of 2020Q2–2021Q1 as the BEA's GDP
/// news releases of those dates printed them, and the values after the annual update of
/// 2021-07-29. (observation date, vintage date, value); the first vintage of each is its first
/// release.
const GDP: &str = "A191RL1Q225SBEA";
const GDP_VINTAGES: &[(&str, &str, f64)] = &[
    ("2020-04-01", "2020-07-30", -32.9),
    ("2020-04-01", "2020-08-27", -31.7),
    ("2020-04-01", "2020-09-30", -31.4),
    ("2020-04-01", "2021-07-29", -31.2),
    ("2020-07-01", "2020-10-29", 33.1),
    ("2020-07-01", "2020-11-25", 33.1),
    ("2020-07-01", "2020-12-22", 33.4),
    ("2020-07-01", "2021-07-29", 33.8),
    ("2020-10-01", "2021-01-28", 4.0),
    ("2020-10-01", "2021-02-25", 4.1),
    ("2020-10-01", "2021-03-25", 4.3),
    ("2020-10-01", "2021-07-29", 4.5),
    ("2021-01-01", "2021-04-29", 6.4),
    ("2021-01-01", "2021-05-27", 6.4),
    ("2021-01-01", "2021-06-24", 6.4),
    ("2021-01-01", "2021-07-29", 6.3),
];

/// One publication of a random stream, in publish order.
#[derive(Debug, Clone)]
pub(crate) struct Arrival {
    pub series: String,
    pub date: i32,
    pub revision: i32,
    pub value: Option<f64>,
    pub flag: bool,
}

/// The reference model: per observation, per revision date, the value the last arrival gave it
/// (a correction replaces it, a re-publication repeats it) and whether any arrival was flagged.
pub(crate) type Model = BTreeMap<(String, i32), BTreeMap<i32, (Option<f64>, bool)>>;

pub(crate) fn model(arrivals: &[Arrival]) -> Model {
    let mut m = Model::new();
    for a in arrivals {
        let slot = m.entry((a.series.clone(), a.date)).or_default().entry(a.revision).or_insert((a.value, false));
        slot.0 = a.value;
        slot.1 |= a.flag;
    }
    m
}

const OPEN: i32 = OPEN_END.days_since_epoch();

pub(crate) fn day(d: i32) -> String {
    Date::from_days_since_epoch(d).to_string()
}
pub(crate) fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "∅".into(), |v| format!("{v:.9}"))
}
fn opt_day(d: Option<i32>) -> String {
    d.map_or_else(|| "∅".into(), day)
}

/// Revision date → (value, flagged, realtime_end) of one observation, oldest first.
fn periods(revisions: &BTreeMap<i32, (Option<f64>, bool)>) -> Vec<(i32, Option<f64>, bool, i32)> {
    let dates: Vec<i32> = revisions.keys().copied().collect();
    dates
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let (v, f) = revisions[r];
            (*r, v, f, dates.get(k + 1).map_or(OPEN, |n| n - 1))
        })
        .collect()
}

/// The value known on day `t`: the newest revision published by then.
pub(crate) fn known_at(revisions: &BTreeMap<i32, (Option<f64>, bool)>, t: i32) -> Option<(i32, Option<f64>)> {
    revisions.range(..=t).next_back().map(|(r, (v, _))| (*r, *v))
}

/// The first release by the rule (the earliest flagged revision, else the earliest) and the
/// releases from it on.
pub(crate) fn releases(revisions: &BTreeMap<i32, (Option<f64>, bool)>) -> Vec<(i32, Option<f64>)> {
    let first = revisions.iter().find(|(_, (_, f))| *f).map_or_else(|| *revisions.keys().next().unwrap(), |(r, _)| *r);
    revisions.range(first..).map(|(r, (v, _))| (*r, *v)).collect()
}

fn pct(a: Option<f64>, b: Option<f64>) -> (Option<f64>, Option<f64>) {
    match (a, b) {
        (Some(a), Some(b)) => (Some(b - a), if a == 0.0 { None } else { Some((b - a) / a.abs() * 100.0) }),
        _ => (None, None),
    }
}

/// What each shape answers by the rules, row by row as [`cells`] prints ours.
fn reference(m: &Model, shape: &Shape) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    match shape {
        Shape::Window { start, end } => {
            let (a, b) = (start.map(|d| d.days_since_epoch()), end.map(|d| d.days_since_epoch()));
            for ((s, date), revisions) in m {
                for (r, v, f, e) in periods(revisions) {
                    if a.is_some_and(|a| e < a) || b.is_some_and(|b| r > b) {
                        continue;
                    }
                    let (cs, ce) = (a.map_or(r, |a| r.max(a)), b.map_or(e, |b| e.min(b)));
                    out.push(vec![s.clone(), day(*date), num(v), day(r), f.to_string(), day(cs), day(ce)]);
                }
            }
        }
        Shape::VintageDates { start, end } => {
            let mut per: BTreeMap<(String, i32), usize> = BTreeMap::new();
            for ((s, _), revisions) in m {
                for r in revisions.keys() {
                    let inside = start.is_none_or(|a| *r >= a.days_since_epoch())
                        && end.is_none_or(|b| *r <= b.days_since_epoch());
                    if inside {
                        *per.entry((s.clone(), *r)).or_default() += 1;
                    }
                }
            }
            out = per.into_iter().map(|((s, r), n)| vec![s, day(r), n.to_string()]).collect();
        }
        Shape::Matrix { vintages } => {
            let mut of_series: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
            for ((s, _), revisions) in m {
                of_series.entry(s).or_default().extend(revisions.keys());
            }
            for ((s, date), revisions) in m {
                let columns: BTreeSet<i32> = if vintages.is_empty() {
                    of_series[s.as_str()].clone()
                } else {
                    vintages.iter().map(|v| v.days_since_epoch()).collect()
                };
                for v in columns {
                    if let Some((r, value)) = known_at(revisions, v) {
                        out.push(vec![s.clone(), day(*date), day(v), num(value), day(r)]);
                    }
                }
            }
        }
        Shape::NewAndRevised => {
            for ((s, date), revisions) in m {
                let mut previous: Option<Option<f64>> = None;
                for (r, (v, _)) in revisions {
                    match previous {
                        None => out.push(vec![s.clone(), day(*date), day(*r), num(*v), num(None), "new".into()]),
                        Some(p) if p.map(f64::to_bits) != v.map(f64::to_bits) => {
                            out.push(vec![s.clone(), day(*date), day(*r), num(*v), num(p), "revised".into()])
                        }
                        Some(_) => {}
                    }
                    previous = Some(*v);
                }
            }
        }
        Shape::Release(which) => {
            for ((s, date), revisions) in m {
                let list = releases(revisions);
                let k = match which {
                    Release::Nth(k) => (*k as usize).checked_sub(1),
                    Release::LatestMinus(k) => list.len().checked_sub(1 + *k as usize),
                };
                let Some((k, (r, v))) = k.and_then(|k| list.get(k).map(|x| (k, *x))) else { continue };
                let (_, flagged) = revisions[&r];
                let end = revisions.range(r + 1..).next().map_or(OPEN, |(n, _)| n - 1);
                out.push(vec![
                    s.clone(),
                    day(*date),
                    num(v),
                    day(r),
                    flagged.to_string(),
                    day(r),
                    day(end),
                    (k + 1).to_string(),
                ]);
            }
        }
        Shape::Between { a, b } => {
            for ((s, date), revisions) in m {
                let (at_a, at_b) =
                    (known_at(revisions, a.days_since_epoch()), known_at(revisions, b.days_since_epoch()));
                if at_a.is_none() && at_b.is_none() {
                    continue;
                }
                let (va, vb) = (at_a.and_then(|x| x.1), at_b.and_then(|x| x.1));
                let (diff, p) = pct(va, vb);
                out.push(vec![
                    s.clone(),
                    day(*date),
                    num(va),
                    opt_day(at_a.map(|x| x.0)),
                    num(vb),
                    opt_day(at_b.map(|x| x.0)),
                    num(diff),
                    num(p),
                ]);
            }
        }
        Shape::RevisionStats => {
            for ((s, date), revisions) in m {
                let list = releases(revisions);
                let (first, last) = (list[0], list[list.len() - 1]);
                let changes = list.windows(2).filter(|w| w[0].1.map(f64::to_bits) != w[1].1.map(f64::to_bits)).count();
                let pairs: Vec<f64> = list.windows(2).filter_map(|w| Some((w[1].1? - w[0].1?).abs())).collect();
                let mean = (!pairs.is_empty()).then(|| pairs.iter().sum::<f64>() / pairs.len() as f64);
                let (total, total_pct) = pct(first.1, last.1);
                out.push(vec![
                    s.clone(),
                    day(*date),
                    list.len().to_string(),
                    changes.to_string(),
                    day(first.0),
                    num(first.1),
                    day(last.0),
                    num(last.1),
                    num(total),
                    num(total_pct),
                    num(mean),
                    (last.0 - first.0).to_string(),
                ]);
            }
        }
        Shape::Diagonal { horizons, from } => {
            for ((s, date), revisions) in m {
                let origin = match from {
                    HorizonFrom::Date => *date,
                    HorizonFrom::FirstRelease => releases(revisions)[0].0,
                };
                for h in horizons {
                    let t = origin + h;
                    if let Some((r, v)) = known_at(revisions, t) {
                        out.push(vec![s.clone(), day(*date), h.to_string(), day(t), num(v), day(r)]);
                    }
                }
            }
        }
    }
    out
}

/// Our answer, every cell printed as the reference prints it. For the shapes that answer in the
/// view schema only the columns the reference models are printed.
fn cells(batches: &[RecordBatch], shape: &Shape) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        const VIEW: [&str; 7] =
            ["series_id", "date", "value", "revision_date", "is_original_release", "realtime_start", "realtime_end"];
        let names: Vec<&str> = match shape {
            Shape::Window { .. } => VIEW.to_vec(),
            Shape::Release(_) => VIEW.iter().copied().chain(["release"]).collect(),
            _ => schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
        };
        let columns: Vec<_> = names.iter().map(|n| b.column_by_name(n).unwrap_or_else(|| panic!("no {n}"))).collect();
        for i in 0..b.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| match c.data_type() {
                        _ if c.is_null(i) => "∅".to_owned(),
                        DataType::Utf8 => c.as_string::<i32>().value(i).to_owned(),
                        DataType::Date32 => day(c.as_primitive::<Date32Type>().value(i)),
                        DataType::Float64 => num(Some(c.as_primitive::<Float64Type>().value(i))),
                        DataType::Int32 => c.as_primitive::<Int32Type>().value(i).to_string(),
                        DataType::Boolean => c.as_boolean().value(i).to_string(),
                        other => panic!("unexpected column type {other}"),
                    })
                    .collect(),
            );
        }
    }
    out
}

/// The random streams: `cases` independent small universes (4 series × 5 dates × 8 revision
/// dates), each arrival a new revision, an exact re-publication, a correction (same vintage, new
/// value, flag omitted) or a missing value; revision dates in any order (backfills); series 3 of
/// each case never flags, the others flag some revisions (a late first release when an earlier
/// one went unflagged).
pub(crate) fn random_arrivals(rng: &mut rand::rngs::StdRng, cases: usize) -> Vec<Arrival> {
    let mut all = Vec::new();
    for case in 0..cases {
        let mut arrivals: Vec<Arrival> = Vec::new();
        for _ in 0..rng.random_range(20..120) {
            let s = rng.random_range(0..4);
            let series = format!("C{case:03}S{s}");
            let date = 18_262 + 91 * rng.random_range(0..5);
            let revision = date + 20 + 29 * rng.random_range(0..8);
            let previous =
                arrivals.iter().rfind(|a| a.series == series && a.date == date && a.revision == revision).cloned();
            let fresh = Arrival { series: series.clone(), date, revision, value: None, flag: false };
            arrivals.push(match (previous, rng.random_range(0..10)) {
                (Some(p), 0..=2) => Arrival { value: p.value, flag: p.flag && rng.random_bool(0.5), ..fresh },
                (Some(_), 3..=4) => Arrival { value: Some(f64::from(rng.random_range(-3..6))), ..fresh },
                _ => Arrival {
                    value: (!rng.random_bool(0.12)).then(|| f64::from(rng.random_range(-3..6)) * 1.5),
                    flag: s != 3 && rng.random_bool(0.35),
                    ..fresh
                },
            });
        }
        all.extend(arrivals);
    }
    all
}

pub(crate) fn stored(arrivals: &[Arrival], first_seq: i64) -> Vec<StoredDataPoint> {
    arrivals
        .iter()
        .enumerate()
        .map(|(k, a)| {
            let mut p = point(&a.series, &day(a.date), &day(a.revision), a.value, a.flag);
            p.created_at = Timestamp::from_nanos(1_700_000_000_000_000_000 + (first_seq + k as i64) * 1_000_000_000);
            p.updated_at = p.created_at;
            StoredDataPoint {
                point: p,
                realtime_end: None,
                ingest_seq: first_seq + k as i64,
                status: None,
                comment: None,
            }
        })
        .collect()
}

fn gdp_arrivals() -> Vec<Arrival> {
    let mut first = BTreeSet::new();
    GDP_VINTAGES
        .iter()
        .map(|(date, vintage, value)| Arrival {
            series: GDP.into(),
            date: d(date).days_since_epoch(),
            revision: d(vintage).days_since_epoch(),
            value: Some(*value),
            flag: first.insert(*date),
        })
        .collect()
}

pub(crate) struct Lake {
    pub _dir: tempfile::TempDir,
    config: PathBuf,
    pub store: IcebergStore,
    pub query: Daemon,
    pub port: u16,
}

impl Lake {
    async fn start() -> Lake {
        Lake::start_with(&[], None, "").await
    }

    /// A lake whose query service has `extra` settings and `extra_yaml` appended to its config file,
    /// its tables made with data files of `target_file_size` bytes (compaction splits closed
    /// files by series range at it).
    pub(crate) async fn start_with(extra: &[(&str, &str)], target_file_size: Option<u64>, extra_yaml: &str) -> Lake {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let tiers = ["hot", "warm"];
        let yaml: String = tiers
            .iter()
            .map(|t| {
                format!("    - {{ name: {t}, type: local, path: \"{}\" }}\n", data.join("tiers").join(t).display())
            })
            .collect();
        let config = dir.path().join("storage.yaml");
        std::fs::write(
            &config,
            format!(
                "storage:\n  data_dir: \"{}\"\n  tiers:\n{yaml}  retention:\n    hot_data_days: 30\n    warm_data_days: 36500\n    cold_data_days: 36600\n    archive_data_days: 36700\n    delete_after_days: 0\n{extra_yaml}",
                data.display()
            ),
        )
        .unwrap();
        let specs = tiers.iter().map(|t| TierSpec::local(*t, data.join("tiers").join(t))).collect();
        let mut config_wh = WarehouseConfig::new(&data).with_tiers(specs);
        if let Some(bytes) = target_file_size {
            config_wh = config_wh.with_target_file_size(bytes);
        }
        let wh = Warehouse::open(config_wh).await.unwrap();
        let store = IcebergStore::new(wh);
        let port = free_port();
        let env = BTreeMap::from([
            ("FLIGHT_SERVER_PORT".to_owned(), port.to_string()),
            ("FLIGHT_HOST".to_owned(), "127.0.0.1".to_owned()),
            ("CACHE_SIZE_MB".to_owned(), "0".to_owned()),
            // Small stream groups: wide answers come in many parts, each shaped on its own.
            ("STREAM_CHUNK_ROWS".to_owned(), "300".to_owned()),
        ]);
        let mut env = env;
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut query = Daemon::spawn(&["query", "--config", config.to_str().unwrap()], dir.path(), &env);
        wait_for(Duration::from_secs(60), "query service ready", || {
            query.assert_alive();
            let get = query.get("/ready");
            async move { get.await.is_some_and(|(c, _)| c == 200) }
        })
        .await;
        Lake { _dir: dir, config, store, query, port }
    }

    pub(crate) fn run(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(args)
            .args(["--config", self.config.to_str().unwrap(), "--http-port", "0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "vintagelake {args:?} failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    fn get(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .arg("get")
            .args(args)
            .args(["--flight-url", &format!("http://127.0.0.1:{}", self.port)])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "vintagelake get {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    async fn ask(&self, series: &[&str], shape: &Shape) -> Vec<RecordBatch> {
        let ids: Vec<SeriesId> = series.iter().map(|s| s.parse().unwrap()).collect();
        let channel = crate::support::flight_channel(self.port).await;
        let mut client = FlightClient::new(channel);
        let ticket = TicketV1::for_shape(&ids, shape).to_bytes();
        let log = || self.query.log_text();
        let stream = client.do_get(Ticket::new(ticket)).await.unwrap_or_else(|e| panic!("{shape:?}: {e}\n{}", log()));
        stream.try_collect().await.unwrap_or_else(|e| panic!("{shape:?}: {e}\n{}", log()))
    }
}

/// Every shape, with parameters that fall inside, between and beyond the streams' vintages.
fn shapes_to_check() -> Vec<Shape> {
    let t = |days: i32| Date::from_days_since_epoch(18_262 + days);
    vec![
        Shape::Window { start: Some(t(100)), end: Some(t(260)) },
        Shape::Window { start: None, end: Some(t(120)) },
        Shape::Window { start: Some(t(400)), end: None },
        Shape::VintageDates { start: None, end: None },
        Shape::VintageDates { start: Some(t(150)), end: Some(t(300)) },
        Shape::Matrix { vintages: vec![] },
        Shape::Matrix { vintages: vec![t(80), t(137), t(300), t(900)] },
        Shape::NewAndRevised,
        Shape::Release(Release::Nth(1)),
        Shape::Release(Release::Nth(2)),
        Shape::Release(Release::Nth(4)),
        Shape::Release(Release::LatestMinus(0)),
        Shape::Release(Release::LatestMinus(2)),
        Shape::Between { a: t(120), b: t(330) },
        Shape::Between { a: t(0), b: t(600) },
        Shape::RevisionStats,
        Shape::Diagonal { horizons: vec![30, 90, 180], from: HorizonFrom::Date },
        Shape::Diagonal { horizons: vec![0, 60], from: HorizonFrom::FirstRelease },
    ]
}

async fn check_all(lake: &Lake, m: &Model, when: &str) -> usize {
    let mut rows = 0;
    for shape in shapes_to_check() {
        let ours = cells(&lake.ask(&[], &shape).await, &shape);
        let want = reference(m, &shape);
        assert_eq!(ours.len(), want.len(), "{when}: {shape:?}: row count");
        for (k, (o, w)) in ours.iter().zip(&want).enumerate() {
            assert_eq!(o, w, "{when}: {shape:?}: row {k}");
        }
        rows += ours.len();
        // One series alone (answered whole and cached, not streamed) answers the same rows.
        let one = "C001S1";
        let ours = cells(&lake.ask(&[one], &shape).await, &shape);
        let want: Vec<Vec<String>> = want.into_iter().filter(|r| r[0] == one).collect();
        assert_eq!(ours, want, "{when}: {shape:?} of {one} alone");
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_vintage_shape_answers_as_the_reference_before_and_after_compaction_and_tiering() {
    let mut lake = Lake::start().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5_4a9e5);
    let mut arrivals = random_arrivals(&mut rng, 40);
    arrivals.extend(gdp_arrivals());
    // Published in several commits; the second half lands after a compaction run (backfills
    // into closed periods, corrections of compacted revisions).
    let half = arrivals.len() / 2;
    let mut seq = 0i64;
    for chunk in arrivals[..half].chunks(250) {
        lake.store.append_points(&stored(chunk, seq), vec![], "ingest").await.unwrap();
        seq += chunk.len() as i64;
    }
    let early = check_all(&lake, &model(&arrivals[..half]), "first half, uncompacted").await;
    lake.run(&["compact", "--once"]);
    for chunk in arrivals[half..].chunks(250) {
        lake.store.append_points(&stored(chunk, seq), vec![], "ingest").await.unwrap();
        seq += chunk.len() as i64;
    }
    let m = model(&arrivals);
    let before = check_all(&lake, &m, "every arrival, one compaction since the first half").await;
    lake.run(&["compact", "--once"]);
    let report: serde_json::Value =
        serde_json::from_str(&lake.run(&["tier", "--once", "--tiering-today", "2030-01-01"])).unwrap();
    let moved = report["files_moved"].as_u64().unwrap();
    assert!(moved > 0, "tiering moved the closed files: {report}");
    let after = check_all(&lake, &m, "after compaction and tiering").await;
    assert_eq!(before, after);
    lake.query.assert_alive();
    // The V1 Parquet backend, given the same commits, answers every shape the same.
    let v1 = vintagelake_v1::ParquetStore::open(lake._dir.path().join("v1")).await.unwrap();
    let mut seq = 0i64;
    for chunk in arrivals.chunks(250) {
        let batch = vintagelake_schemas::table::stored_data_points_to_batch(&stored(chunk, seq)).unwrap();
        v1.append(vintagelake_storage::catalog::TableKind::DataPoints, &[batch], vec![], "test").await.unwrap();
        seq += chunk.len() as i64;
    }
    let query = vintagelake_storage::scan::VintageQuery::new(vintagelake_storage::scan::View::AllRevisions);
    let (all, _) = vintagelake_storage::ViewSource::answer(&v1, &query).await.unwrap();
    for shape in shapes_to_check() {
        assert_eq!(cells(&[shape.apply(&all).unwrap()], &shape), reference(&m, &shape), "V1: {shape:?}");
    }
    eprintln!(
        "{} arrivals in {} observations: {early} shaped rows on the first half, {before} before and {after} after \
         compaction and tiering ({moved} files moved to another tier), all equal to the reference",
        arrivals.len(),
        m.len()
    );
}

/// Real published revisions with the answers worked out by hand: shapes 3–8 (and the window and
/// vintage dates), over Flight and through `vintagelake get`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_gdp_revisions_answer_as_worked_out_by_hand() {
    let lake = Lake::start().await;
    lake.store.append_points(&stored(&gdp_arrivals(), 0), vec![], "ingest").await.unwrap();
    let ask = |shape: Shape| {
        let lake = &lake;
        async move { cells(&lake.ask(&[GDP], &shape).await, &shape) }
    };
    let row = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let n = |v: f64| num(Some(v));
    let (q2, q3, q4, q1) = ("2020-04-01", "2020-07-01", "2020-10-01", "2021-01-01");

    // 3. Matrix on three vintages (no row where the quarter was not yet published).
    let m = ask(Shape::Matrix { vintages: vec![d("2020-09-30"), d("2021-01-28"), d("2021-07-29")] }).await;
    let cell = |date: &str, v: &str, value: f64, published: &str| row(&[GDP, date, v, &n(value), published]);
    assert_eq!(
        m,
        vec![
            cell(q2, "2020-09-30", -31.4, "2020-09-30"),
            cell(q2, "2021-01-28", -31.4, "2020-09-30"),
            cell(q2, "2021-07-29", -31.2, "2021-07-29"),
            cell(q3, "2021-01-28", 33.4, "2020-12-22"),
            cell(q3, "2021-07-29", 33.8, "2021-07-29"),
            cell(q4, "2021-01-28", 4.0, "2021-01-28"),
            cell(q4, "2021-07-29", 4.5, "2021-07-29"),
            cell(q1, "2021-07-29", 6.3, "2021-07-29"),
        ]
    );
    // Every vintage: 13 for 2020Q2, 10 for Q3, 7 for Q4, 4 for 2021Q1.
    assert_eq!(ask(Shape::Matrix { vintages: vec![] }).await.len(), 13 + 10 + 7 + 4);
    // The wide form `get` prints, as ALFRED does: 2020Q3 is empty before its first release.
    let csv = lake.get(&[GDP, "--matrix", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "series_id,date,2020-07-30,2020-08-27,2020-09-30,2020-10-29,2020-11-25,2020-12-22,2021-01-28,2021-02-25,\
         2021-03-25,2021-04-29,2021-05-27,2021-06-24,2021-07-29"
    );
    assert_eq!(lines[2], format!("{GDP},2020-07-01,,,,33.1,33.1,33.4,33.4,33.4,33.4,33.4,33.4,33.4,33.8"));
    assert_eq!(lines.len(), 5);

    // 4. New and revised only: 2020Q3's second estimate and 2021Q1's second and third repeat
    // the value before them and are left out.
    let nr = |date: &str, v: &str, value: f64, prev: Option<f64>, kind: &str| {
        row(&[GDP, date, v, &n(value), &num(prev), kind])
    };
    assert_eq!(
        ask(Shape::NewAndRevised).await,
        vec![
            nr(q2, "2020-07-30", -32.9, None, "new"),
            nr(q2, "2020-08-27", -31.7, Some(-32.9), "revised"),
            nr(q2, "2020-09-30", -31.4, Some(-31.7), "revised"),
            nr(q2, "2021-07-29", -31.2, Some(-31.4), "revised"),
            nr(q3, "2020-10-29", 33.1, None, "new"),
            nr(q3, "2020-12-22", 33.4, Some(33.1), "revised"),
            nr(q3, "2021-07-29", 33.8, Some(33.4), "revised"),
            nr(q4, "2021-01-28", 4.0, None, "new"),
            nr(q4, "2021-02-25", 4.1, Some(4.0), "revised"),
            nr(q4, "2021-03-25", 4.3, Some(4.1), "revised"),
            nr(q4, "2021-07-29", 4.5, Some(4.3), "revised"),
            nr(q1, "2021-04-29", 6.4, None, "new"),
            nr(q1, "2021-07-29", 6.3, Some(6.4), "revised"),
        ]
    );

    // 5. n-th release: the second estimate; the third; none has a fifth; latest minus one.
    let values = |rows: Vec<Vec<String>>| {
        rows.into_iter().map(|r| (r[2].clone(), r[3].clone(), r[7].clone())).collect::<Vec<_>>()
    };
    let rv = |value: f64, published: &str, k: &str| (n(value), published.to_owned(), k.to_owned());
    assert_eq!(
        values(ask(Shape::Release(Release::Nth(2))).await),
        vec![
            rv(-31.7, "2020-08-27", "2"),
            rv(33.1, "2020-11-25", "2"),
            rv(4.1, "2021-02-25", "2"),
            rv(6.4, "2021-05-27", "2")
        ]
    );
    assert_eq!(
        values(ask(Shape::Release(Release::Nth(3))).await),
        vec![
            rv(-31.4, "2020-09-30", "3"),
            rv(33.4, "2020-12-22", "3"),
            rv(4.3, "2021-03-25", "3"),
            rv(6.4, "2021-06-24", "3")
        ]
    );
    assert!(ask(Shape::Release(Release::Nth(5))).await.is_empty());
    assert_eq!(
        values(ask(Shape::Release(Release::LatestMinus(1))).await),
        vec![
            rv(-31.4, "2020-09-30", "3"),
            rv(33.4, "2020-12-22", "3"),
            rv(4.3, "2021-03-25", "3"),
            rv(6.4, "2021-06-24", "3")
        ]
    );

    // 6. Between the third estimate of 2020Q2 (2020-09-30) and the annual update: only 2020Q2
    // was published on both; the others have no value on the earlier vintage (not a missing value).
    let b = ask(Shape::Between { a: d("2020-09-30"), b: d("2021-07-29") }).await;
    assert_eq!(b.len(), 4);
    assert_eq!(b[0][..6], row(&[GDP, q2, &n(-31.4), "2020-09-30", &n(-31.2), "2021-07-29"])[..]);
    assert!((b[0][6].parse::<f64>().unwrap() - 0.2).abs() < 1e-9, "{:?}", b[0]);
    assert!((b[0][7].parse::<f64>().unwrap() - 0.2 / 31.4 * 100.0).abs() < 1e-9, "{:?}", b[0]);
    assert_eq!(b[1], row(&[GDP, q3, "∅", "∅", &n(33.8), "2021-07-29", "∅", "∅"]));

    // 7. Revision statistics.
    let stats = ask(Shape::RevisionStats).await;
    let close = |got: &str, want: f64| (got.parse::<f64>().unwrap() - want).abs() < 1e-9;
    // (quarter, releases, value changes, first, first value, latest value, total, %, mean |rev|, days)
    let expected = [
        (q2, "4", "3", "2020-07-30", -32.9, -31.2, 1.7, 1.7 / 32.9 * 100.0, (1.2 + 0.3 + 0.2) / 3.0, "364"),
        (q3, "4", "2", "2020-10-29", 33.1, 33.8, 0.7, 0.7 / 33.1 * 100.0, (0.0 + 0.3 + 0.4) / 3.0, "273"),
        (q4, "4", "3", "2021-01-28", 4.0, 4.5, 0.5, 12.5, (0.1 + 0.2 + 0.2) / 3.0, "182"),
        (q1, "4", "1", "2021-04-29", 6.4, 6.3, -0.1, -0.1 / 6.4 * 100.0, 0.1 / 3.0, "91"),
    ];
    assert_eq!(stats.len(), expected.len());
    for (got, (date, releases, changes, first, first_value, latest, total, total_pct, mean, days)) in
        stats.iter().zip(expected)
    {
        assert_eq!(got[..6], row(&[GDP, date, releases, changes, first, &n(first_value)])[..], "{got:?}");
        assert_eq!(got[6..8], row(&["2021-07-29", &n(latest)])[..], "{got:?}");
        assert!(close(&got[8], total) && close(&got[9], total_pct) && close(&got[10], mean), "{got:?}");
        assert_eq!(got[11], days, "{got:?}");
    }

    // 8. Real-time diagonal: 120 days after each quarter began is the day of (or just after) its
    // advance estimate; 60 days after the first release is the second or third estimate; a year
    // after it, the annual update. 30 days after a quarter began nothing was published.
    let diag = ask(Shape::Diagonal { horizons: vec![30, 120], from: HorizonFrom::Date }).await;
    let dg = |date: &str, h: &str, t: &str, value: f64, published: &str| row(&[GDP, date, h, t, &n(value), published]);
    assert_eq!(
        diag,
        vec![
            dg(q2, "120", "2020-07-30", -32.9, "2020-07-30"),
            dg(q3, "120", "2020-10-29", 33.1, "2020-10-29"),
            dg(q4, "120", "2021-01-29", 4.0, "2021-01-28"),
            dg(q1, "120", "2021-05-01", 6.4, "2021-04-29"),
        ]
    );
    let diag = ask(Shape::Diagonal { horizons: vec![60, 365], from: HorizonFrom::FirstRelease }).await;
    assert_eq!(
        diag,
        vec![
            dg(q2, "60", "2020-09-28", -31.7, "2020-08-27"),
            dg(q2, "365", "2021-07-30", -31.2, "2021-07-29"),
            dg(q3, "60", "2020-12-28", 33.4, "2020-12-22"),
            dg(q3, "365", "2021-10-29", 33.8, "2021-07-29"),
            dg(q4, "60", "2021-03-29", 4.3, "2021-03-25"),
            dg(q4, "365", "2022-01-28", 4.5, "2021-07-29"),
            dg(q1, "60", "2021-06-28", 6.4, "2021-06-24"),
            dg(q1, "365", "2022-04-29", 6.3, "2021-07-29"),
        ]
    );

    // 1. and 2. The autumn of 2020: periods clipped to the window; the vintages in it.
    let w = ask(Shape::Window { start: Some(d("2020-09-01")), end: Some(d("2020-12-31")) }).await;
    let wr = |date: &str, value: f64, published: &str, flag: &str, from: &str, to: &str| {
        row(&[GDP, date, &n(value), published, flag, from, to])
    };
    assert_eq!(
        w,
        vec![
            wr(q2, -31.7, "2020-08-27", "false", "2020-09-01", "2020-09-29"),
            wr(q2, -31.4, "2020-09-30", "false", "2020-09-30", "2020-12-31"),
            wr(q3, 33.1, "2020-10-29", "true", "2020-10-29", "2020-11-24"),
            wr(q3, 33.1, "2020-11-25", "false", "2020-11-25", "2020-12-21"),
            wr(q3, 33.4, "2020-12-22", "false", "2020-12-22", "2020-12-31"),
        ]
    );
    let v = ask(Shape::VintageDates { start: Some(d("2020-09-01")), end: Some(d("2020-12-31")) }).await;
    assert_eq!(v, ["2020-09-30", "2020-10-29", "2020-11-25", "2020-12-22"].map(|x| row(&[GDP, x, "1"])).to_vec());
    // In Parquet the wide matrix is numeric: null before publication.
    let file = lake._dir.path().join("matrix.parquet");
    lake.get(&[GDP, "--matrix", "--format", "parquet", "--out", file.to_str().unwrap()]);
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let wide: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!((wide[0].num_rows(), wide[0].num_columns()), (4, 15));
    let q3_on = |vintage: &str| {
        let c = wide[0].column_by_name(vintage).unwrap().as_primitive::<Float64Type>();
        c.is_valid(1).then(|| c.value(1))
    };
    assert_eq!((q3_on("2020-09-30"), q3_on("2020-10-29")), (None, Some(33.1)));
    // The pandas example of docs/query.md, as printed there, turns the matrix into a DataFrame.
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/query.md")).unwrap();
    let example = docs.split("The matrix into a pandas DataFrame").nth(1).unwrap();
    let example = example.split("```python").nth(1).unwrap().split("```").next().unwrap();
    let script = example.replace("127.0.0.1:8080", &format!("127.0.0.1:{}", lake.port)).replace("GDPC1", GDP)
        + "print(matrix.shape, matrix.loc[pd.Timestamp('2020-07-01').date()].tolist()[3], int(published.to_numpy().sum()))\n";
    let python = tokio::task::spawn_blocking(vintagelake_testkit::tools::pyiceberg_python).await.unwrap().unwrap();
    let out = vintagelake_testkit::tools::run_python(&python, &format!("import pandas as pd\n{script}"), &[]).unwrap();
    assert_eq!(out.trim(), "(4, 13) 33.1 34", "the docs' pandas example:\n{script}");
    // `get` flags reach the same shapes.
    let stats_csv = lake.get(&[GDP, "--revision-stats", "--format", "csv"]);
    assert!(
        stats_csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{GDP},2020-04-01,4,3,2020-07-30,-32.9,2021-07-29,-31.2")),
        "{stats_csv}"
    );
    let diag_csv = lake.get(&[GDP, "--horizon", "120d", "--format", "csv"]);
    assert_eq!(diag_csv.lines().count(), 5, "{diag_csv}");
    let between_csv = lake.get(&[GDP, "--revisions-between", "2020-09-30", "2021-07-29", "--format", "csv"]);
    assert_eq!(between_csv.lines().count(), 5, "{between_csv}");
}
