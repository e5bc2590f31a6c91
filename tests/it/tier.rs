//! `vintagelake tier` and `admin tier|audit` as a user runs them: killed at every step of a move
//! over 20 runs, the dry run, pins, a manual move, and the audit trail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use vintagelake_schemas::Date;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::files::live_files;
use vintagelake_storage::io::TierSpec;
use vintagelake_storage::snapshots::find_orphans;
use vintagelake_storage::store::{IcebergStore, InMemoryStorage};
use vintagelake_testkit::fixtures::{lifecycle_answers, revision_stream};

const TIERS: [&str; 3] = ["hot", "warm", "cold"];

/// A data directory with three local tiers and its configuration file (policy 30/365 days).
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    store: IcebergStore,
    oracle: InMemoryStorage,
    first_revision: i32,
    last_revision: i32,
}

async fn setup(series: usize, dates: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tier_dir = |t: &str| data.join("tiers").join(t);
    let yaml: String = TIERS
        .iter()
        .map(|t| format!("    - {{ name: {t}, type: local, path: \"{}\" }}\n", tier_dir(t).display()))
        .collect();
    let config = dir.path().join("storage.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  data_dir: \"{}\"\n  tiers:\n{yaml}  retention:\n    hot_data_days: 30\n    warm_data_days: 365\n    cold_data_days: 3650\n    archive_data_days: 36500\n    delete_after_days: 0\n",
            data.display()
        ),
    )
    .unwrap();
    let tiers = TIERS.iter().map(|t| TierSpec::local(*t, tier_dir(t))).collect();
    let wh = Warehouse::open(WarehouseConfig::new(&data).with_tiers(tiers)).await.unwrap();
    let store = IcebergStore::new(wh);
    let oracle = InMemoryStorage::new();
    let rows = revision_stream("R", 0..series, dates, 3);
    for chunk in rows.chunks(400) {
        store.append_points(chunk, vec![], "ingest").await.unwrap();
        oracle.append_points(chunk.to_vec()).await;
    }
    // Compaction closes the real-time periods: superseded revisions get an age.
    vintagelake_compactor::compact_once(&store, &Default::default(), &Default::default()).await.unwrap();
    let revisions = rows.iter().map(|r| r.point.revision_date.days_since_epoch());
    let (first_revision, last_revision) = (revisions.clone().min().unwrap(), revisions.max().unwrap());
    Setup { _dir: dir, config, store, oracle, first_revision, last_revision }
}

impl Setup {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vintagelake"));
        c.args(args)
            .args(["--config", self.config.to_str().unwrap(), "--http-port", "0"])
            .env_remove("VINTAGELAKE_FAILPOINTS")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "vintagelake {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn wh(&self) -> &Warehouse {
        self.store.warehouse()
    }

    async fn files(&self) -> Vec<vintagelake_storage::files::LiveFile> {
        let table = self.wh().load(TableKind::DataPoints).await.unwrap();
        live_files(self.wh(), &table, None).await.unwrap()
    }

    async fn snapshot(&self) -> Option<i64> {
        self.wh().load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id()
    }
}

/// `admin` subcommands take the shared settings after the subcommand.
fn admin(s: &Setup, args: &[&str]) -> Output {
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    s.run(&all)
}

fn expected_tier(age: i32) -> &'static str {
    match age {
        ..30 => "hot",
        30..365 => "warm",
        _ => "cold",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tiering_runs_killed_at_every_step_lose_nothing() {
    let s = setup(6, 60).await;
    let span = s.last_revision - s.first_revision;
    let points = ["tier-after-copy", "commit-before-swap", "tier-after-commit"];
    let mut seed = 0x7135_u64;
    let mut died = 0;
    for round in 0..20 {
        // The clock moves on a little every round, so every round finds files to move.
        let today = Date::from_days_since_epoch(s.first_revision + 60 + round * span / 20).to_string();
        let args = ["tier", "--once", "--tiering-today", &today];
        let status = if round % 4 == 3 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut child = s.command(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            tokio::time::sleep(Duration::from_millis((seed >> 33) % 300)).await;
            let _ = child.kill();
            child.wait().unwrap()
        } else {
            let point = points[(round % 4) as usize];
            s.command(&args).env("VINTAGELAKE_FAILPOINTS", point).output().unwrap().status
        };
        died += usize::from(!status.success());
        // No row lost, none duplicated, the table readable: every view as the oracle answers.
        assert_eq!(lifecycle_answers(&s.store).await, lifecycle_answers(&s.oracle).await, "round {round}");
    }
    assert!(died >= 10, "{died} of 20 runs died");

    // A run that is left alone puts every file where its age says; the compactor's orphan
    // cleanup removes the copies the dead runs left.
    let today = Date::from_days_since_epoch(s.last_revision + 1);
    s.run(&["tier", "--once", "--tiering-today", &today.to_string()]);
    s.run(&["compact", "--once", "--orphan-grace", "0s"]);
    let orphans = find_orphans(s.wh(), TableKind::DataPoints, Duration::ZERO).await.unwrap();
    assert!(orphans.is_empty(), "{orphans:?}");
    let files = s.files().await;
    for (f, facts) in files.iter().zip(vintagelake_tierer::run::facts(&files)) {
        let tier = f.tier.as_ref().unwrap().as_str();
        match (f.realtime_end_month, facts.newest_realtime_end) {
            (None, _) => assert_eq!(tier, "hot", "{}", f.path),
            (Some(_), Some(end)) => {
                assert_eq!(tier, expected_tier(today.days_since_epoch() - end.days_since_epoch()), "{}", f.path)
            }
            (Some(_), None) => panic!("{} has no realtime_end bound", f.path),
        }
    }
    assert_eq!(lifecycle_answers(&s.store).await, lifecycle_answers(&s.oracle).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_pins_manual_moves_and_the_audit_trail() {
    let s = setup(4, 24).await;
    let today = Date::from_days_since_epoch(s.last_revision + 1).to_string();

    // --dry-run prints the plan and changes nothing.
    let snapshot = s.snapshot().await;
    let files: Vec<String> = s.files().await.into_iter().map(|f| f.path).collect();
    let out = s.run(&["tier", "--dry-run", "--tiering-today", &today]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("dry run: nothing changed"), "{plan}");
    let moves = plan.lines().filter(|l| l.starts_with("move ")).count();
    assert!(moves > 5, "{plan}");
    assert!(plan.lines().any(|l| l.starts_with("move    hot -> cold") && l.contains("this is")), "{plan}");
    assert_eq!(s.snapshot().await, snapshot);
    assert_eq!(s.files().await.into_iter().map(|f| f.path).collect::<Vec<_>>(), files);

    // A pin puts every file holding the series in its tier (here every file: compaction writes all
    // series of a month into one file), current rows included, and overrides the age rules.
    admin(&s, &["tier", "pin", "R00001", "--tier", "warm"]);
    let out = s.run(&["tier", "--once", "--tiering-today", &today]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["files_moved"].as_u64().unwrap() > 0, "{report}");
    let files = s.files().await;
    for (f, facts) in files.iter().zip(vintagelake_tierer::run::facts(&files)) {
        let (lo, hi) = facts.series.expect("series bounds");
        assert!((lo.as_str()..=hi.as_str()).contains(&"R00001"));
        assert_eq!(f.tier.as_ref().unwrap().as_str(), "warm", "{} holds a pinned series", f.path);
    }
    // Unpinned, the policy applies again: what is old enough moves on to cold, nothing comes back.
    admin(&s, &["tier", "unpin", "R00001"]);
    let out = s.run(&["tier", "--once", "--tiering-today", &today]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["files_moved"].as_u64().unwrap() > 0, "{report}");
    assert!(report["actions"].as_array().unwrap().iter().all(|a| a["to"] == "cold"), "{report}");

    // A manual move, through the same copy → verify → commit path.
    let current = s.files().await.into_iter().find(|f| f.realtime_end_month.is_none()).expect("a current file");
    assert_eq!(current.tier.as_ref().unwrap().as_str(), "warm");
    admin(&s, &["tier", "move", &current.path, "--to", "hot"]);
    let moved = s.files().await.into_iter().find(|f| f.realtime_end_month.is_none()).unwrap();
    assert_eq!(moved.tier.as_ref().unwrap().as_str(), "hot");
    assert!(Path::new(moved.path.trim_start_matches("file://")).exists());
    assert_eq!(lifecycle_answers(&s.store).await, lifecycle_answers(&s.oracle).await);

    // `admin audit` shows every action with its reason.
    let out = admin(&s, &["audit", "--json"]);
    let entries: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!((count("pin"), count("unpin")), (1, 1));
    let tier_moves: Vec<_> = entries.iter().filter(|e| e["actor"] == "tierer" && e["action"] == "move").collect();
    assert!(tier_moves.len() > moves, "every move of both runs and the manual one: {}", tier_moves.len());
    assert!(tier_moves.iter().all(|e| e["rule"].as_str().is_some_and(|r| !r.is_empty()) && e["snapshot_id"].is_i64()));
    assert_eq!(tier_moves.last().unwrap()["rule"], "manual");
    assert!(entries.iter().any(|e| e["actor"] == "compactor" && e["action"] == "compact"), "setup's compaction");
    let table = admin(&s, &["audit", "--action", "pin"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("R00001 pinned to warm"));
}

/// Reads through the Flight service while commits, compaction runs and tier moves land: every
/// answer (one series and the whole table, streamed in small groups, every view) is the
/// reference's answer at one of the table's states — no reader sees a missing file, a file
/// twice, or a mix of two snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flight_reads_during_commits_compaction_and_tier_moves_answer_as_the_reference() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use arrow_flight::{FlightClient, Ticket};
    use futures::TryStreamExt;
    use vintagelake_query::ticket::TicketV1;
    use vintagelake_schemas::model::derived_data_point_id;
    use vintagelake_storage::scan::{View, VintageQuery};
    use vintagelake_storage::store::FinancialDataStorage;
    use vintagelake_testkit::fixtures::{Row, grid, rows};

    use crate::support::{Daemon, free_port, wait_for};

    let s = setup(6, 40).await;
    let mid = Date::from_days_since_epoch((s.first_revision + s.last_revision) / 2);
    let one: vintagelake_schemas::SeriesId = "R00002".parse().unwrap();
    let mut queries = Vec::new();
    for view in [View::Latest, View::FirstRelease, View::AllRevisions, View::AsOf(mid)] {
        queries.push(VintageQuery::new(view).series([one.clone()]));
        queries.push(VintageQuery::new(view));
    }
    let ticket = |q: &VintageQuery| {
        let t = TicketV1::for_series(&one, q.view);
        TicketV1 { series: q.series.iter().map(|s| s.as_str().to_owned()).collect(), ..t }.to_bytes()
    };
    async fn answers(oracle: &InMemoryStorage, queries: &[VintageQuery]) -> Vec<Vec<Row>> {
        let mut out = Vec::new();
        for q in queries {
            out.push(rows(&oracle.query(q).await.unwrap()));
        }
        out
    }
    // expected[k]: every query's answer once k of the commits below have landed.
    let expected = Arc::new(std::sync::Mutex::new(vec![answers(&s.oracle, &queries).await]));
    let stage = Arc::new(AtomicUsize::new(0));

    let dir = s.config.parent().unwrap().to_owned();
    let port = free_port();
    let env = BTreeMap::from([
        ("FLIGHT_SERVER_PORT".to_owned(), port.to_string()),
        ("FLIGHT_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("CACHE_SIZE_MB".to_owned(), "0".to_owned()),
        ("HOT_CACHE_MB".to_owned(), "1".to_owned()),
        ("STREAM_CHUNK_ROWS".to_owned(), "100".to_owned()),
    ]);
    let config = s.config.to_str().unwrap().to_owned();
    let mut q = Daemon::spawn(&["query", "--config", &config], &dir, &env);
    wait_for(Duration::from_secs(60), "query service ready", || {
        q.assert_alive();
        let get = q.get("/ready");
        async move { get.await.is_some_and(|(c, _)| c == 200) }
    })
    .await;

    async fn read(client: &mut FlightClient, ticket: &[u8]) -> Result<Vec<Row>, arrow_flight::error::FlightError> {
        let batches: Vec<arrow::array::RecordBatch> =
            client.do_get(Ticket::new(ticket.to_vec())).await?.try_collect().await?;
        Ok(batches.iter().flat_map(rows).collect())
    }
    let done = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (expected, stage, done, passes) = (expected.clone(), stage.clone(), done.clone(), passes.clone());
        let tickets: Vec<Vec<u8>> = queries.iter().map(ticket).collect();
        tokio::spawn(async move {
            let channel = crate::support::flight_channel(port).await;
            let mut client = FlightClient::new(channel);
            let mut reads = 0usize;
            while !done.load(Ordering::SeqCst) {
                for (i, t) in tickets.iter().enumerate() {
                    let before = stage.load(Ordering::SeqCst);
                    let got = read(&mut client, t).await.unwrap_or_else(|e| panic!("query {i}: {e}"));
                    let after = stage.load(Ordering::SeqCst);
                    let expected = expected.lock().unwrap();
                    // The commit of stage after + 1 may have landed before the counter moved.
                    let last = (after + 1).min(expected.len() - 1);
                    assert!(
                        (before..=last).any(|k| expected[k][i] == got),
                        "query {i}: the answer is none of the table's states {before}..={last} ({} rows)",
                        got.len()
                    );
                    reads += 1;
                }
                passes.fetch_add(1, Ordering::SeqCst);
            }
            reads
        })
    };

    // Commits (corrections, new vintages, out-of-order backfills), each followed by a compaction
    // run and a tiering run whose clock moves on, so files are merged, re-closed and moved.
    let base = grid("R", 0..6, 40, 3);
    let span = s.last_revision - s.first_revision;
    for k in 0..6usize {
        let mut batch = Vec::new();
        for (i, r) in base.iter().enumerate().filter(|(i, _)| i % 5 == k % 5) {
            let mut r = r.clone();
            match i % 3 {
                0 => r.point.value = Some(100.0 + k as f64), // a correction of the same vintage
                1 => r.point.revision_date = Date::from_days_since_epoch(s.last_revision + 10 * (k as i32 + 1)),
                _ => {
                    // Backfilled between two vintages already known.
                    r.point.revision_date = Date::from_days_since_epoch(r.point.revision_date.days_since_epoch() + 1);
                    r.point.value = Some(-(k as f64));
                }
            }
            r.point.is_original_release = false;
            r.point.id = derived_data_point_id(&r.point.series_id, r.point.date, r.point.revision_date);
            r.ingest_seq = 1_000_000 + (k * base.len() + i) as i64;
            batch.push(r);
        }
        s.oracle.append_points(batch.clone()).await;
        let next = answers(&s.oracle, &queries).await;
        expected.lock().unwrap().push(next);
        s.store.append_points(&batch, vec![], "ingest").await.unwrap();
        stage.store(k + 1, Ordering::SeqCst);
        s.run(&["compact", "--once"]);
        let today = Date::from_days_since_epoch(s.first_revision + 400 + k as i32 * span / 3).to_string();
        let out = s.run(&["tier", "--once", "--tiering-today", &today]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!("stage {}: {} files moved", k + 1, report["files_moved"]);
        // Every stage is read at least twice over, whatever the machine's speed.
        let seen = passes.load(Ordering::SeqCst);
        wait_for(Duration::from_secs(60), "the reader's passes", || {
            let passes = passes.clone();
            async move { passes.load(Ordering::SeqCst) >= seen + 2 }
        })
        .await;
    }
    done.store(true, Ordering::SeqCst);
    let reads = reader.await.unwrap();
    q.assert_alive();
    let moved = live_files(s.wh(), &s.wh().load(TableKind::DataPoints).await.unwrap(), None)
        .await
        .unwrap()
        .iter()
        .filter(|f| f.tier.as_ref().is_some_and(|t| t.as_str() != "hot"))
        .count();
    assert!(moved > 0, "tiering moved files while the reads ran");
    assert!(reads >= queries.len() * 12, "{reads} reads while the lifecycle ran");
    // Afterwards, through the same service: exactly the reference's final answers.
    let channel = crate::support::flight_channel(port).await;
    let mut client = FlightClient::new(channel);
    let last = expected.lock().unwrap().last().unwrap().clone();
    for (i, q) in queries.iter().enumerate() {
        assert_eq!(read(&mut client, &ticket(q)).await.unwrap(), last[i], "query {i} after the lifecycle runs");
    }
}
