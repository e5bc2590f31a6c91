//! One tiering run: plan from manifest statistics, copy and verify every move, then swap paths
//! and remove expired files in one commit, audit each action.
//!
//! Crash safety, step by step: a crash after a copy leaves an unreferenced copy (an orphan the
//! compactor removes after its grace period); the commit is atomic (catalog compare-and-swap); the
//! source of a move stays readable for every snapshot that still references it and is deleted by
//! the compactor's snapshot expiry once none does.

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};
use futures::StreamExt;
use futures::stream;
use iceberg::spec::DataFile;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use vintagelake_runtime::audit::AuditEntry;
use vintagelake_runtime::schedule::record_unfinished;
use vintagelake_schemas::Date;
use vintagelake_schemas::table::data_points_ids as field;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::config::TierName;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::files::{LiveFile, copy_verified, live_files, read_data_file, relocated};
use vintagelake_storage::retention::{RevisionKey, first_release_keys as first_release_keys_of, keep_first_releases};
use vintagelake_storage::store::IcebergStore;
use vintagelake_storage::{CommitKind, CommitRequest, Encoding};

use crate::metrics as m;
use crate::plan::{Action, FileFacts, Kept, Pins, Policy, plan_with_reads};

const ACTOR: &str = "tierer";

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TierReport {
    pub today: String,
    pub dry_run: bool,
    pub actions: Vec<Action>,
    /// The last commit of the run.
    pub snapshot_id: Option<i64>,
    /// Every commit of the run (one per [`FILES_PER_COMMIT`] actions).
    pub snapshots: Vec<i64>,
    pub files_moved: usize,
    pub bytes_moved: u64,
    /// Source → new location of every move (locations, comma-separated, when re-encoding split it).
    pub targets: BTreeMap<String, String>,
    /// Moves into a tier with another zstd level: rewritten at that level, not copied.
    pub files_reencoded: usize,
    /// Bytes of the files re-encoded, before and after (the difference is what the target tier's
    /// compression saved).
    pub reencoded_bytes_in: u64,
    pub reencoded_bytes_out: u64,
    pub files_deleted: usize,
    pub rows_deleted: u64,
    /// Original releases kept from deleted files (rewritten into new files).
    pub originals_kept: u64,
    /// Files left in their tier because they are read often (access-aware tiering).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_for_reads: Vec<Kept>,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cancelled before committing; nothing was committed")]
    Cancelled,
}

/// The manifest facts the planner needs, for every live file of the current snapshot.
pub fn facts(files: &[LiveFile]) -> Vec<FileFacts> {
    use iceberg::spec::PrimitiveLiteral;
    files
        .iter()
        .map(|f| {
            let df = &f.data_file;
            let newest_realtime_end = if f.realtime_end_month.is_none() {
                None
            } else {
                df.upper_bounds().get(&field::REALTIME_END).and_then(|d| match d.literal() {
                    PrimitiveLiteral::Int(days) => Some(Date::from_days_since_epoch(*days)),
                    _ => None,
                })
            };
            let string = |bounds: &std::collections::HashMap<i32, iceberg::spec::Datum>| {
                bounds.get(&field::SERIES_ID).and_then(|d| match d.literal() {
                    PrimitiveLiteral::String(s) => Some(s.clone()),
                    _ => None,
                })
            };
            FileFacts {
                path: f.path.clone(),
                tier: f.tier.clone(),
                records: f.records,
                size_bytes: f.size_bytes,
                newest_realtime_end,
                series: string(df.lower_bounds()).zip(string(df.upper_bounds())),
                all_original: matches!(
                    df.lower_bounds().get(&field::IS_ORIGINAL_RELEASE).map(|d| d.literal()),
                    Some(PrimitiveLiteral::Boolean(true))
                ),
                reads: 0,
            }
        })
        .collect()
}

/// Plans and (unless `dry_run`) applies the policy to the `data_points` table as of `today`.
pub async fn tier_once(
    store: &IcebergStore,
    policy: &Policy,
    pins: &Pins,
    today: Date,
    dry_run: bool,
    concurrency: usize,
    cancel: &CancellationToken,
) -> Result<TierReport, TierError> {
    let started = Instant::now();
    let result = run(store, policy, pins, today, dry_run, concurrency, cancel).await;
    record(store, &result, "tier");
    metrics::histogram!(m::DURATION).record(started.elapsed().as_secs_f64());
    result
}

/// Moves one live data file to `to` by hand (`vintagelake admin tier move`), through the same
/// copy → verify → commit path as a scheduled run, audited with the rule `manual`.
pub async fn move_file(store: &IcebergStore, path: &str, to: &TierName) -> Result<TierReport, TierError> {
    let wh = store.warehouse();
    let table = wh.load(TableKind::DataPoints).await?;
    let files = live_files(wh, &table, None).await?;
    let wanted = vintagelake_storage::io::normalize_location(path);
    let file = files
        .iter()
        .find(|f| vintagelake_storage::io::normalize_location(&f.path) == wanted)
        .ok_or_else(|| StorageError::InvalidData(format!("{path} is not a live data file of the table")))?;
    let from = file.tier.clone().ok_or_else(|| StorageError::UnknownLocation { path: path.to_owned() })?;
    if &from == to {
        return Err(StorageError::InvalidData(format!("{path} is already in tier {to}")).into());
    }
    wh.data_location(TableKind::DataPoints, to)?;
    let action = Action::Move {
        path: file.path.clone(),
        from,
        to: to.clone(),
        age_days: None,
        bytes: file.size_bytes,
        rows: file.records,
        rule: "manual".to_owned(),
    };
    let mut report = TierReport { actions: vec![action], ..Default::default() };
    let result = execute(store, &table, &files, &mut report, 1, &CancellationToken::new()).await.map(|()| report);
    if let Ok(report) = &result {
        audit_actions(store, report);
    }
    record(store, &result, "move");
    result
}

/// One audit entry per action a committed part of a run applied.
fn audit_actions(store: &IcebergStore, report: &TierReport) {
    let audit = store.warehouse().audit();
    let table = store.warehouse().ident(TableKind::DataPoints).to_string();
    for a in &report.actions {
        let (action, detail) = match a {
            Action::Move { from, to, path, .. } => {
                ("move", serde_json::json!({ "from": from, "to": to, "target": report.targets.get(path) }))
            }
            Action::Delete { keep_originals, .. } => {
                ("delete", serde_json::json!({ "keep_originals": keep_originals }))
            }
        };
        let rows = match a {
            Action::Move { rows, .. } | Action::Delete { rows, .. } => *rows,
        };
        audit.record(
            &AuditEntry::new(ACTOR, action)
                .table(&table)
                .rule(a.rule())
                .files(vec![a.path().to_owned()])
                .counts(rows, a.bytes())
                .snapshot(report.snapshot_id)
                .detail(detail),
        );
    }
}

/// Counts the outcome of a run; a failure also goes to the audit trail with its reason.
fn record(store: &IcebergStore, result: &Result<TierReport, TierError>, what: &str) {
    match result {
        Ok(report) if !report.dry_run => metrics::counter!(m::RUNS, "outcome" => "ok").increment(1),
        Ok(_) => {}
        Err(e) => {
            let reason = match e {
                TierError::Cancelled => "cancelled",
                TierError::Storage(StorageError::TooManyConflicts { .. }) => "conflict",
                TierError::Storage(StorageError::ReadFile { .. } | StorageError::InvalidData(_)) => "verify",
                TierError::Storage(_) => "storage",
            };
            metrics::counter!(m::FAILURES, "reason" => reason).increment(1);
            let table = store.warehouse().ident(TableKind::DataPoints).to_string();
            record_unfinished(store.warehouse().audit(), m::RUNS, (ACTOR, what, &table), reason, e);
        }
    }
}

/// Files per commit: a run makes progress in steps, so a crash, a cancellation or a conflict with
/// compaction costs at most one step, and each step's commit stays small.
pub const FILES_PER_COMMIT: usize = 32;

async fn run(
    store: &IcebergStore,
    policy: &Policy,
    pins: &Pins,
    today: Date,
    dry_run: bool,
    concurrency: usize,
    cancel: &CancellationToken,
) -> Result<TierReport, TierError> {
    let started = Instant::now();
    let wh = store.warehouse().clone();
    let kind = TableKind::DataPoints;
    let table = wh.load(kind).await?;
    let files = live_files(&wh, &table, None).await?;
    publish_tier_gauges(&files, today);
    let access_aware = policy.keep_reads > 0 || policy.promote_reads > 0;
    let mut facts = facts(&files);
    if access_aware {
        // This process's own reads first (serve runs the query service beside the tierer).
        if let Err(e) = wh.flush_reads().await {
            tracing::warn!(error = %e, "could not record this process's file reads before planning");
        }
        let reads = wh.file_reads(kind).await?;
        for f in &mut facts {
            f.reads = reads.get(&f.path).copied().unwrap_or(0);
        }
    }
    let (actions, kept) = plan_with_reads(policy, &facts, pins, today);
    let mut report = TierReport {
        today: today.to_string(),
        dry_run,
        actions: actions.clone(),
        kept_for_reads: kept,
        ..Default::default()
    };
    if !dry_run {
        audit_kept(store, &report.kept_for_reads);
    }
    if dry_run || actions.is_empty() {
        if access_aware && !dry_run {
            wh.decay_reads(kind).await?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    // What the run did (a planned deletion that finds only first releases is left out).
    report.actions.clear();
    for step in actions.chunks(FILES_PER_COMMIT) {
        let mut part = TierReport { today: report.today.clone(), actions: step.to_vec(), ..Default::default() };
        execute(store, &table, &files, &mut part, concurrency, cancel).await?;
        audit_actions(store, &part);
        report.actions.extend(part.actions.iter().cloned());
        report.snapshot_id = part.snapshot_id.or(report.snapshot_id);
        report.snapshots.extend(part.snapshot_id);
        report.files_moved += part.files_moved;
        report.bytes_moved += part.bytes_moved;
        report.files_reencoded += part.files_reencoded;
        report.reencoded_bytes_in += part.reencoded_bytes_in;
        report.reencoded_bytes_out += part.reencoded_bytes_out;
        report.files_deleted += part.files_deleted;
        report.rows_deleted += part.rows_deleted;
        report.originals_kept += part.originals_kept;
        report.targets.extend(part.targets);
    }
    if access_aware {
        // A moved file keeps its count under its new location (a re-encoded one split into
        // several starts again); then every count halves.
        for (from, to) in &report.targets {
            if !to.contains(',') {
                wh.carry_reads(kind, from, to).await?;
            }
        }
        wh.decay_reads(kind).await?;
    }
    for a in &report.actions {
        if let Action::Move { to, rule, .. } = a
            && rule.contains("promote_reads=")
        {
            metrics::counter!(m::PROMOTIONS, "tier" => to.to_string()).increment(1);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "tiering run finished");
    Ok(report)
}

/// Audits each file left in its tier for its reads, with the reason, and counts them per tier.
fn audit_kept(store: &IcebergStore, kept: &[Kept]) {
    let table = store.warehouse().ident(TableKind::DataPoints).to_string();
    let mut per_tier: BTreeMap<String, usize> = BTreeMap::new();
    for k in kept {
        *per_tier.entry(k.tier.to_string()).or_default() += 1;
        store.warehouse().audit().record(
            &AuditEntry::new(ACTOR, "keep")
                .table(&table)
                .rule(&k.rule)
                .files(vec![k.path.clone()])
                .detail(serde_json::to_value(k).unwrap_or_default()),
        );
    }
    for t in store.warehouse().router().tiers().map(|t| &t.name) {
        metrics::gauge!(m::KEPT_FOR_READS, "tier" => t.to_string())
            .set(per_tier.get(t.as_str()).copied().unwrap_or(0) as f64);
    }
}

/// Applies `report.actions` to the table `files` were listed from, filling in the report.
async fn execute(
    store: &IcebergStore,
    table: &iceberg::table::Table,
    files: &[LiveFile],
    report: &mut TierReport,
    concurrency: usize,
    cancel: &CancellationToken,
) -> Result<(), TierError> {
    let wh = store.warehouse().clone();
    let kind = TableKind::DataPoints;
    let today = report.today.clone();
    let actions = report.actions.clone();
    let by_path: BTreeMap<&str, &LiveFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();

    // 1. Copy and verify every move (bounded concurrency); nothing is visible yet. A move into a
    // tier with another zstd level rewrites the file at that level instead (and checks the new
    // file holds the same rows).
    let moves: Vec<(&LiveFile, Move)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Move { path, from, to, .. } => {
                let f = by_path[path.as_str()];
                if wh.zstd_level(from, Encoding::Settled) != wh.zstd_level(to, Encoding::Settled) {
                    return Some((f, Move::Reencode(to.clone())));
                }
                let from_base = wh.data_location(kind, from).ok()?;
                let to_base = wh.data_location(kind, to).ok()?;
                let rel = path.strip_prefix(&from_base)?;
                // A fresh name in the target tier: a copy left by a dead run is never reused, so
                // orphan cleanup of that copy cannot race with this run's commit.
                let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
                Some((f, Move::Copy(format!("{to_base}{dir}/{}.parquet", uuid::Uuid::now_v7().simple()))))
            }
            Action::Delete { .. } => None,
        })
        .collect();
    // Futures collected from a named async fn (not a closure) keep the run `Send` for spawned tasks.
    let copies: Vec<_> = moves.iter().map(|(f, how)| move_one(store, f, how)).collect();
    let copied: Vec<Result<Vec<DataFile>, StorageError>> = tokio::select! {
        _ = cancel.cancelled() => return Err(TierError::Cancelled),
        done = stream::iter(copies).buffered(concurrency.max(1)).collect::<Vec<_>>() => done,
    };
    let mut added = Vec::new();
    let mut first_error = None;
    let mut targets = BTreeMap::new();
    for ((f, how), c) in moves.iter().zip(copied) {
        match c {
            Ok(files) => {
                let paths: Vec<&str> = files.iter().map(|df| df.file_path()).collect();
                targets.insert(f.path.clone(), paths.join(","));
                if let Move::Reencode(to) = how {
                    let out: u64 = files.iter().map(|df| df.file_size_in_bytes()).sum();
                    report.files_reencoded += 1;
                    report.reencoded_bytes_in += f.size_bytes;
                    report.reencoded_bytes_out += out;
                    metrics::counter!(m::REENCODED_BYTES_IN, "tier" => to.to_string()).increment(f.size_bytes);
                    metrics::counter!(m::REENCODED_BYTES_OUT, "tier" => to.to_string()).increment(out);
                }
                added.extend(files);
            }
            Err(e) => {
                metrics::counter!(m::FAILURES, "reason" => "copy").increment(1);
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        // Copies that did verify are not referenced: remove them now (or orphan cleanup will).
        for df in &added {
            let _ = wh.file_io().delete(df.file_path()).await;
        }
        return Err(e.into());
    }
    let mut removed: Vec<String> = moves.iter().map(|(f, _)| f.path.clone()).collect();

    // 2. Deletions: whole files, or rewritten with their first releases only — by the rule the
    // views use (the flagged revision, else the earliest), so retention never changes a
    // first-release answer.
    let mut contents: BTreeMap<&str, Vec<RecordBatch>> = BTreeMap::new();
    for a in &actions {
        if let Action::Delete { path, keep_originals: true, .. } = a {
            contents.insert(path.as_str(), read_data_file(&wh, path).await?);
        }
    }
    let firsts = first_release_keys(store, contents.values().flatten()).await?;
    // Keys whose backfill awaits compaction keep their rows this run (their periods are not stored yet).
    let deferred = if contents.is_empty() {
        Default::default()
    } else {
        let files = live_files(&wh, table, None).await?;
        vintagelake_storage::files::backfilled_keys_of_table(&wh, table, &files, concurrency).await?
    };
    let mut unchanged: Vec<String> = Vec::new();
    for a in &actions {
        let Action::Delete { path, tier, rows, keep_originals, .. } = a else { continue };
        if *keep_originals {
            let kept = keep_first_releases(&contents[path.as_str()], &firsts, &deferred)?;
            let n: usize = kept.iter().map(RecordBatch::num_rows).sum();
            if n as u64 == *rows {
                // Every row is a first release: nothing may go, leave the file as it is.
                unchanged.push(path.clone());
                continue;
            }
            report.originals_kept += n as u64;
            report.rows_deleted += rows - n as u64;
            match store.write_files(kind, &[(Some(tier.clone()), kept)], Encoding::Settled).await {
                Ok(files) => added.extend(files),
                Err(e) => {
                    for df in &added {
                        let _ = wh.file_io().delete(df.file_path()).await;
                    }
                    return Err(e.into());
                }
            }
        } else {
            report.rows_deleted += rows;
        }
        removed.push(path.clone());
        report.files_deleted += 1;
    }
    report.actions.retain(|a| !unchanged.iter().any(|p| p == a.path()));
    if removed.is_empty() && added.is_empty() {
        return Ok(());
    }
    if cancel.is_cancelled() {
        for df in &added {
            let _ = wh.file_io().delete(df.file_path()).await;
        }
        return Err(TierError::Cancelled);
    }

    // 3. One atomic commit swaps the moved paths and drops the deleted files.
    let commit_kind = match (report.files_deleted > 0, !moves.is_empty()) {
        (true, false) if report.originals_kept == 0 => CommitKind::Delete,
        (true, _) => CommitKind::Overwrite,
        _ => CommitKind::Replace,
    };
    let request = CommitRequest::new(commit_kind, added, removed, "tiering")
        .with_summary("vintagelake.tiering.files-moved", moves.len().to_string())
        .with_summary("vintagelake.tiering.files-deleted", report.files_deleted.to_string())
        .with_summary("vintagelake.tiering.today", today);
    // Known failures remove the copies and rewrites again; an unknown outcome keeps them.
    let committed = store.commit_files(kind, request).await?;
    vintagelake_runtime::failpoint::hit("tier-after-commit");
    report.snapshot_id = Some(committed.snapshot_id);
    report.files_moved = moves.len();
    report.targets = targets;
    report.bytes_moved = moves.iter().map(|(f, _)| f.size_bytes).sum();
    metrics::counter!(m::MOVES).increment(report.files_moved as u64);
    metrics::counter!(m::BYTES_MOVED).increment(report.bytes_moved);
    metrics::counter!(m::DELETES).increment(report.files_deleted as u64);

    // 4. The sources stay: the snapshots before this one still read them (time travel). Snapshot
    // expiry deletes them once no retained snapshot references them.
    let after = wh.load(kind).await?;
    if let Ok(day) = report.today.parse::<Date>() {
        publish_tier_gauges(&live_files(&wh, &after, None).await?, day);
    }
    Ok(())
}

/// How a file moves: copied byte for byte to a new location, or rewritten into the target tier
/// (its zstd level differs).
#[derive(Debug)]
enum Move {
    Copy(String),
    Reencode(TierName),
}

/// Copy → verify (or rewrite → verify) of one move; the new data files, ready for the commit.
async fn move_one(store: &IcebergStore, file: &LiveFile, how: &Move) -> Result<Vec<DataFile>, StorageError> {
    let wh = store.warehouse();
    let files = match how {
        Move::Copy(target) => {
            copy_verified(wh, &file.path, target, file.size_bytes).await?;
            vec![relocated(&file.data_file, target)?]
        }
        Move::Reencode(to) => {
            let rows = read_data_file(wh, &file.path).await?;
            let written = store
                .write_files(TableKind::DataPoints, &[(Some(to.clone()), rows.clone())], Encoding::Settled)
                .await?;
            // The rewrite must hold exactly the rows of the source, in order: read it back.
            let mut back = Vec::new();
            for df in &written {
                back.extend(read_data_file(wh, df.file_path()).await?);
            }
            let same = match (rows.first(), back.first()) {
                (Some(a), Some(_)) => {
                    arrow::compute::concat_batches(&a.schema(), &rows)?
                        == arrow::compute::concat_batches(&a.schema(), &back)?
                }
                (None, None) => true,
                _ => false,
            };
            if !same {
                store.remove_uncommitted(&written).await;
                return Err(StorageError::InvalidData(format!(
                    "re-encoding {} into tier {to} does not give back its rows; nothing moved",
                    file.path
                )));
            }
            written
        }
    };
    vintagelake_runtime::failpoint::hit("tier-after-copy");
    Ok(files)
}

/// The revision keys that are first releases (as the `first_release` view answers them) among the
/// series the batches hold, read from the whole table: a key with no flagged revision has its
/// earliest one as first release, wherever that row is stored.
async fn first_release_keys<'a>(
    store: &IcebergStore,
    batches: impl Iterator<Item = &'a RecordBatch>,
) -> Result<std::collections::HashSet<RevisionKey>, StorageError> {
    use vintagelake_schemas::arrow::col;
    use vintagelake_storage::scan::{View, VintageQuery};
    use vintagelake_storage::store::FinancialDataStorage;
    let mut series = std::collections::BTreeSet::new();
    for b in batches {
        let ids =
            b.column_by_name(col::SERIES_ID).ok_or_else(|| StorageError::InvalidData("rows lack series_id".into()))?;
        series.extend(ids.as_string::<i32>().iter().flatten().map(str::to_owned));
    }
    if series.is_empty() {
        return Ok(Default::default());
    }
    let ids = series
        .iter()
        .map(|s| s.parse().map_err(|e| StorageError::InvalidData(format!("stored series id {s:?}: {e}"))))
        .collect::<Result<Vec<vintagelake_schemas::SeriesId>, _>>()?;
    first_release_keys_of(&store.query(&VintageQuery::new(View::FirstRelease).series(ids)).await?)
}

/// Publishes the per-tier gauges from the table as it is now, without planning anything (the
/// daemon does it at start, so files and bytes per tier are known before its first run).
pub async fn report_tiers(store: &IcebergStore, today: Date) -> Result<(), TierError> {
    let wh = store.warehouse().clone();
    let table = wh.load(TableKind::DataPoints).await?;
    publish_tier_gauges(&live_files(&wh, &table, None).await?, today);
    Ok(())
}

/// Files, bytes and the oldest data age per tier.
fn publish_tier_gauges(files: &[LiveFile], today: Date) {
    let mut per_tier: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
    for (f, facts) in files.iter().zip(facts(files)) {
        let tier = f.tier.as_ref().map(|t| t.as_str().to_owned()).unwrap_or_else(|| "unknown".into());
        let e = per_tier.entry(tier).or_default();
        e.0 += 1;
        e.1 += f.size_bytes;
        if let Some(end) = facts.newest_realtime_end {
            e.2 = e.2.max(i64::from(today.days_since_epoch() - end.days_since_epoch()));
        }
    }
    for (tier, (n, bytes, oldest)) in per_tier {
        metrics::gauge!(m::TIER_FILES, "tier" => tier.clone()).set(n as f64);
        metrics::gauge!(m::TIER_BYTES, "tier" => tier.clone()).set(bytes as f64);
        metrics::gauge!(m::TIER_OLDEST_DAYS, "tier" => tier).set(oldest as f64);
    }
}
