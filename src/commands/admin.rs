//! `vintagelake admin …`: validation, configuration and (later) table administration.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use vintagelake_runtime::audit::AuditLog;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::config::TierName;

use clap::Subcommand;
use vintagelake_schemas::{ValidationError, decode_data_points, decode_series_json};

use super::Error;
use crate::config::CommonConfig;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Validate one Kafka message (JSON or Arrow IPC) from a file or standard input.
    /// Prints the normalised record, or the offending field and the reason (exit status 1).
    ValidateMessage {
        /// Which message type: data-point (revisions topic) or series (metadata topic).
        #[arg(long, default_value = "data-point", value_parser = ["data-point", "series"])]
        kind: String,
        /// File holding exactly one message; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Print the effective configuration (flags > environment > config file > defaults) as JSON.
    Config {
        #[command(flatten)]
        common: CommonConfig,
    },
    /// Show a table's current schema (columns with their Iceberg field ids) and every schema it
    /// had: when each was added, by whom, and which columns it added.
    Schema {
        #[command(flatten)]
        common: CommonConfig,
        /// Which table.
        #[arg(long, default_value = "data_points", value_parser = ["data_points", "series"])]
        table: String,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the data_points table's snapshots (id, time, operation, origin, records).
    Snapshots {
        #[command(flatten)]
        common: CommonConfig,
    },
    /// List the data_points table's live data files with their tier, partition, rows and size.
    Files {
        #[command(flatten)]
        common: CommonConfig,
    },
    /// Show files, bytes and the oldest data per storage tier.
    Tiers {
        #[command(flatten)]
        common: CommonConfig,
    },
    /// Manual tier overrides: pin a series to a tier, unpin it, move one file now.
    Tier {
        #[command(subcommand)]
        command: TierCommand,
    },
    /// Show the lifecycle audit trail (compactions, expiries, orphan removals, tier moves, deletions).
    Audit {
        #[command(flatten)]
        common: CommonConfig,
        /// Only entries of this action (compact, expire, remove-orphans, move, delete, pin, unpin).
        #[arg(long)]
        action: Option<String>,
        /// Only the newest N entries.
        #[arg(long)]
        last: Option<usize>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Expire old snapshots now.
    Expire,
    /// Check the metadata, every manifest and every live data file (present, right size, decodes,
    /// right row count); prints each damaged file and exits 1 if there is any.
    Verify {
        #[command(flatten)]
        common: CommonConfig,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Roll a table back to an earlier snapshot of its lineage. The Kafka positions recorded in
    /// that snapshot come back with it, so ingest (running or not) re-reads what the rollback took
    /// out. Refused when the Kafka log no longer holds those offsets, unless --accept-gap.
    /// Audited as `rollback`.
    Rollback {
        /// The snapshot to make current again (see `admin snapshots`).
        #[arg(long, conflicts_with = "to_time", required_unless_present = "to_time")]
        to_snapshot: Option<i64>,
        /// The newest snapshot committed at or before this time (RFC 3339, or YYYY-MM-DD = midnight UTC).
        #[arg(long)]
        to_time: Option<String>,
        /// Which table.
        #[arg(long, default_value = "data-points", value_parser = ["data-points", "series"])]
        table: String,
        /// Show what would change (snapshots undone, rows, Kafka positions) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Roll back even though Kafka retention deleted messages the restored positions need
        /// (those messages are lost to the table); the gap is recorded in the audit trail.
        #[arg(long)]
        accept_gap: bool,
        #[command(flatten)]
        common: CommonConfig,
    },
    /// Copy a V1 (Parquet) store into the Iceberg tables: resumable after a crash (re-run the same
    /// command), validated per series (row count and checksum) at the end.
    Migrate {
        /// Source format (V1).
        #[arg(long, value_parser = ["parquet"])]
        from: String,
        /// Target format (V2).
        #[arg(long, value_parser = ["iceberg"])]
        to: String,
        /// The V1 store's directory. Default: DATA_DIR/parquet.
        #[arg(long)]
        source: Option<PathBuf>,
        /// Rows per Iceberg commit (memory holds one chunk at a time).
        #[arg(long, default_value_t = vintagelake_v1::migrate::DEFAULT_CHUNK_ROWS,
              value_parser = clap::value_parser!(u64).range(1..))]
        chunk_rows: u64,
        #[command(flatten)]
        common: CommonConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum TierCommand {
    /// Keep every file holding SERIES in TIER (the tierer moves them there on its next run and
    /// never deletes them while pinned).
    Pin {
        series: String,
        #[arg(long)]
        tier: TierName,
        #[command(flatten)]
        common: CommonConfig,
    },
    /// Remove the pin of SERIES: the retention policy applies again.
    Unpin {
        series: String,
        #[command(flatten)]
        common: CommonConfig,
    },
    /// Move one data file to another tier now (copy, verify, commit), audited as `manual`.
    Move {
        file: String,
        #[arg(long)]
        to: TierName,
        #[command(flatten)]
        common: CommonConfig,
    },
}

pub async fn run(command: AdminCommand, matches: &clap::ArgMatches) -> Result<ExitCode, Error> {
    let sub = matches.subcommand().map(|(_, m)| m).expect("clap requires a subcommand");
    match command {
        AdminCommand::ValidateMessage { kind, file } => validate_message(&kind, file).await,
        AdminCommand::Config { common } => {
            let c = common.resolve(sub)?;
            let tiers: Vec<_> = c
                .tiers
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "name": t.name.as_str(),
                        "type": format!("{:?}", t.kind).to_lowercase(),
                        "path": t.path,
                        "endpoint": t.endpoint,
                        "bucket": t.bucket,
                        "max_age_days": t.max_age_days,
                    })
                })
                .collect();
            let json = serde_json::json!({
                "config_file": c.config_path(),
                "data_dir": c.data_dir,
                "storage_type": c.storage_type.as_str(),
                "catalog_url": c.effective_catalog_url(),
                "kafka_bootstrap_servers": c.kafka_bootstrap_servers,
                "flight_server_port": c.flight_server_port,
                "http_port": c.http_port,
                "cache_size_mb": c.cache_size_mb,
                "batch_size": c.batch_size,
                "max_concurrent_operations": c.max_concurrent_operations,
                "metrics_enabled": c.metrics_enabled,
                "health_check_interval": humantime::format_duration(c.health_check_interval).to_string(),
                "tiers": tiers,
                "retention": c.retention,
            });
            println!("{}", serde_json::to_string_pretty(&json).expect("json values serialise"));
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Schema { common, table, json } => schema(common.resolve(sub)?, &table, json).await,
        AdminCommand::Snapshots { common } => snapshots(common.resolve(sub)?).await,
        AdminCommand::Files { common } => files(common.resolve(sub)?).await,
        AdminCommand::Tiers { common } => tiers(common.resolve(sub)?).await,
        AdminCommand::Tier { command } => {
            let sub = sub.subcommand().map(|(_, m)| m).expect("clap requires a subcommand");
            tier(command, sub).await
        }
        AdminCommand::Audit { common, action, last, json } => audit(common.resolve(sub)?, action, last, json),
        AdminCommand::Expire => Err(Error::NotAvailable("admin expire")),
        AdminCommand::Verify { common, json } => verify(common.resolve(sub)?, json).await,
        AdminCommand::Rollback { to_snapshot, to_time, table, dry_run, accept_gap, common } => {
            let target = match (to_snapshot, to_time) {
                (Some(id), _) => vintagelake_storage::rollback::RollbackTarget::Snapshot(id),
                (None, Some(t)) => vintagelake_storage::rollback::RollbackTarget::AsOfMs(parse_time(&t)?),
                (None, None) => return Err(Error::Usage("give --to-snapshot ID or --to-time T".into())),
            };
            let kind = if table == "series" { TableKind::Series } else { TableKind::DataPoints };
            rollback(common.resolve(sub)?, kind, target, dry_run, accept_gap).await
        }
        AdminCommand::Migrate { from: _, to: _, source, chunk_rows, common } => {
            migrate(common.resolve(sub)?, source, chunk_rows).await
        }
    }
}

fn audit(common: CommonConfig, action: Option<String>, last: Option<usize>, json: bool) -> Result<ExitCode, Error> {
    let log = AuditLog::in_dir(&common.data_dir);
    let read = log.read().map_err(|source| Error::Read { what: log.path().display().to_string(), source })?;
    if !read.skipped.is_empty() {
        eprintln!(
            "warning: {} has unreadable lines {:?} (a torn write after a crash)",
            log.path().display(),
            read.skipped
        );
    }
    let mut entries: Vec<_> =
        read.entries.into_iter().filter(|e| action.as_ref().is_none_or(|a| &e.action == a)).collect();
    if let Some(n) = last {
        entries.drain(..entries.len().saturating_sub(n));
    }
    if json {
        for e in &entries {
            println!("{}", serde_json::to_string(e).expect("entries serialise"));
        }
    } else {
        println!(
            "{:<24} {:<9} {:<14} {:<10} {:>10} {:>12} {:>20} {:>6}  rule",
            "time", "actor", "action", "outcome", "rows", "bytes", "snapshot", "files"
        );
        for e in &entries {
            println!(
                "{:<24} {:<9} {:<14} {:<10} {:>10} {:>12} {:>20} {:>6}  {}",
                e.time,
                e.actor,
                e.action,
                e.outcome,
                e.rows,
                e.bytes,
                e.snapshot_id.map(|s| s.to_string()).unwrap_or_default(),
                e.files.len(),
                e.rule.as_deref().unwrap_or("")
            );
        }
        eprintln!("{} entries in {}", entries.len(), log.path().display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-30T12:00:00Z` or `2026-11-30` (midnight UTC) → ms since the epoch.
fn parse_time(t: &str) -> Result<i64, Error> {
    if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(ts.timestamp_millis());
    }
    if let Ok(d) = t.parse::<vintagelake_schemas::Date>() {
        return Ok(i64::from(d.days_since_epoch()) * 86_400_000);
    }
    Err(Error::Usage(format!("--to-time {t:?}: expected RFC 3339 (2026-11-30T12:00:00Z) or a date (2026-11-30)")))
}

fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_else(|| ms.to_string())
}

/// Positions the restored snapshot needs that the Kafka log no longer holds (retention deleted
/// them): one line per partition.
async fn kafka_gaps(
    common: &CommonConfig,
    plan: &vintagelake_storage::rollback::RollbackPlan,
) -> Result<Vec<String>, Error> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    if plan.moved.is_empty() {
        return Ok(Vec::new());
    }
    let Some(bootstrap) = common.kafka_bootstrap_servers.clone() else {
        return Err(Error::Usage(
            "the rollback moves Kafka positions: set KAFKA_BOOTSTRAP_SERVERS so it can check that the log still \
             holds them (or pass --accept-gap to skip the check)"
                .into(),
        ));
    };
    let partitions: Vec<(String, i32)> = plan.moved.keys().cloned().collect();
    let starts = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .map_err(|e| Error::Failed(format!("cannot reach the broker at {bootstrap}: {e}")))?;
        let mut starts = std::collections::BTreeMap::new();
        for (topic, partition) in partitions {
            let (low, _) =
                consumer.fetch_watermarks(&topic, partition, std::time::Duration::from_secs(10)).map_err(|e| {
                    Error::Failed(format!("cannot read the log of {topic}[{partition}] at {bootstrap}: {e}"))
                })?;
            starts.insert((topic, partition), low);
        }
        Ok::<_, Error>(starts)
    })
    .await
    .expect("watermark task")?;
    Ok(plan.gaps(&starts))
}

async fn rollback(
    common: CommonConfig,
    kind: TableKind,
    target: vintagelake_storage::rollback::RollbackTarget,
    dry_run: bool,
    accept_gap: bool,
) -> Result<ExitCode, Error> {
    use vintagelake_runtime::audit::AuditEntry;
    let store = super::open_store(&common).await?;
    let wh = store.warehouse();
    let plan = vintagelake_storage::rollback::plan(&wh.load(kind).await?, target)?;
    if plan.to_snapshot == plan.from_snapshot {
        println!("{}: snapshot {} is already the current one; nothing to do", plan.table, plan.to_snapshot);
        return Ok(ExitCode::SUCCESS);
    }
    let records = |r: Option<u64>| r.map_or("?".to_owned(), |n| n.to_string());
    println!(
        "{}: current snapshot {} → {} (committed {}); {} snapshot(s) undone; records {} → {}",
        plan.table,
        plan.from_snapshot,
        plan.to_snapshot,
        time_text(plan.to_timestamp_ms),
        plan.undone.len(),
        records(plan.records_before),
        records(plan.records_after)
    );
    for u in &plan.undone {
        println!(
            "  undone {:>20} {:<25} {:<10} {}",
            u.snapshot_id,
            time_text(u.timestamp_ms),
            u.operation,
            u.origin.as_deref().unwrap_or("")
        );
    }
    for (partition, (now, after)) in &plan.positions {
        let show = |o: &Option<i64>| o.map_or("(none: from the beginning)".to_owned(), |o| o.to_string());
        println!("  kafka position {partition}: {} → {}", show(now), show(after));
    }
    let gaps = if accept_gap && common.kafka_bootstrap_servers.is_none() {
        vec!["not checked (no KAFKA_BOOTSTRAP_SERVERS)".to_owned()]
    } else {
        kafka_gaps(&common, &plan).await?
    };
    for g in &gaps {
        println!("  gap: {g}");
    }
    if !gaps.is_empty() && !accept_gap {
        eprintln!(
            "error: refusing to roll back {}: the Kafka log no longer holds messages the restored snapshot needs,              so ingest could not re-read them ({}). Pass --accept-gap to roll back anyway; the gap is audited.",
            plan.table,
            gaps.join("; ")
        );
        return Ok(ExitCode::FAILURE);
    }
    if dry_run {
        println!("dry run: nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    let done = vintagelake_storage::rollback::rollback(wh, kind, target).await?;
    wh.audit().record(
        &AuditEntry::new("admin", "rollback")
            .table(&done.table)
            .rule(if gaps.is_empty() { "manual".to_owned() } else { "manual, gap accepted".to_owned() })
            .snapshot(Some(done.to_snapshot))
            .counts(done.records_before.unwrap_or(0).saturating_sub(done.records_after.unwrap_or(0)), 0)
            .detail(serde_json::json!({
                "from_snapshot": done.from_snapshot,
                "to_snapshot": done.to_snapshot,
                "undone": done.undone,
                "positions": done.positions,
                "gaps": gaps,
            })),
    );
    println!(
        "rolled back {} to snapshot {} ({} snapshot(s) undone); ingest re-reads from the restored positions",
        done.table,
        done.to_snapshot,
        done.undone.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn schema(common: CommonConfig, table: &str, json: bool) -> Result<ExitCode, Error> {
    let store = super::open_store(&common).await?;
    let kind = if table == "series" { TableKind::Series } else { TableKind::DataPoints };
    let loaded = store.warehouse().load(kind).await?;
    let history = vintagelake_storage::evolve::schema_history(&loaded);
    let version = loaded.metadata().properties().get(vintagelake_storage::evolve::PROP_SCHEMA_VERSION).cloned();
    if json {
        let doc = serde_json::json!({ "table": kind.name(), "schema_version": version, "schemas": history });
        println!("{}", serde_json::to_string_pretty(&doc).expect("serialisable"));
        return Ok(ExitCode::SUCCESS);
    }
    let Some(current) = history.iter().find(|s| s.current) else {
        return Err(Error::Usage(format!("table {} has no current schema", kind.name())));
    };
    println!(
        "table {}: schema {} (vintagelake schema version {})",
        kind.name(),
        current.schema_id,
        version.as_deref().unwrap_or("1")
    );
    println!("{:>4}  {:<22} {:<16} null", "id", "column", "type");
    for (id, name, ty, required) in &current.columns {
        println!("{id:>4}  {name:<22} {ty:<16} {}", if *required { "required" } else { "optional" });
    }
    println!();
    println!("history:");
    for s in &history {
        let added = if s.added.is_empty() { "created".to_owned() } else { format!("added {}", s.added.join(", ")) };
        let by = match (&s.at, &s.by) {
            (Some(at), Some(by)) => format!("{at} by {by}"),
            _ if s.added.is_empty() => "with the table".to_owned(),
            _ => "by another engine (not recorded)".to_owned(),
        };
        println!("  schema {:>3}{}  {added}  {by}", s.schema_id, if s.current { "*" } else { " " });
    }
    Ok(ExitCode::SUCCESS)
}

async fn snapshots(common: CommonConfig) -> Result<ExitCode, Error> {
    let store = super::open_store(&common).await?;
    let table = store.warehouse().load(TableKind::DataPoints).await?;
    println!("{:>20} {:<24} {:<10} {:<12} {:>12}", "snapshot", "time", "operation", "origin", "records");
    for s in vintagelake_storage::snapshots::list_snapshots(&table)? {
        println!(
            "{:>20} {:<24} {:<10} {:<12} {:>12}",
            s.snapshot_id,
            chrono::DateTime::from_timestamp_millis(s.timestamp_ms).map(|t| t.to_rfc3339()).unwrap_or_default(),
            s.operation,
            s.origin.as_deref().unwrap_or(""),
            s.summary.get("total-records").cloned().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn files(common: CommonConfig) -> Result<ExitCode, Error> {
    let store = super::open_store(&common).await?;
    let wh = store.warehouse();
    let table = wh.load(TableKind::DataPoints).await?;
    let files = vintagelake_storage::files::live_files(wh, &table, None).await?;
    println!("{:<8} {:<26} {:>10} {:>12}  path", "tier", "partition", "rows", "bytes");
    for f in &files {
        println!(
            "{:<8} {:<26} {:>10} {:>12}  {}",
            f.tier.as_ref().map(|t| t.as_str()).unwrap_or("?"),
            f.partition,
            f.records,
            f.size_bytes,
            f.path
        );
    }
    let bytes: u64 = files.iter().map(|f| f.size_bytes).sum();
    eprintln!("{} files, {bytes} bytes", files.len());
    Ok(ExitCode::SUCCESS)
}

async fn verify(common: CommonConfig, json: bool) -> Result<ExitCode, Error> {
    let store = super::open_store(&common).await?;
    let mut damaged = 0;
    for kind in TableKind::all() {
        let report = vintagelake_storage::verify::verify_table(
            store.warehouse(),
            kind,
            common.max_concurrent_operations as usize,
        )
        .await?;
        damaged += report.problems.len();
        if json {
            println!("{}", serde_json::to_string(&report).expect("report serialises"));
            continue;
        }
        println!(
            "{}: snapshot {}, {} manifests, {} data files, {} rows checked, {} problems",
            report.table,
            report.snapshot_id.map_or("none".to_owned(), |s| s.to_string()),
            report.manifests_checked,
            report.data_files_checked,
            report.rows_checked,
            report.problems.len()
        );
        for p in &report.problems {
            println!("  DAMAGED {:<13} {}  ({})", p.kind, p.path, p.reason);
        }
    }
    Ok(if damaged == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn tiers(common: CommonConfig) -> Result<ExitCode, Error> {
    let store = super::open_store(&common).await?;
    let wh = store.warehouse();
    let table = wh.load(TableKind::DataPoints).await?;
    let files = vintagelake_storage::files::live_files(wh, &table, None).await?;
    let mut per: std::collections::BTreeMap<String, (usize, u64, u64)> =
        wh.router().tiers().map(|t| (t.name.as_str().to_owned(), (0, 0, 0))).collect();
    for f in &files {
        let e = per.entry(f.tier.as_ref().map_or("unknown", |t| t.as_str()).to_owned()).or_default();
        e.0 += 1;
        e.1 += f.records;
        e.2 += f.size_bytes;
    }
    println!("{:<10} {:>8} {:>12} {:>14}  location", "tier", "files", "rows", "bytes");
    for t in wh.router().tiers() {
        let (n, rows, bytes) = per[t.name.as_str()];
        println!("{:<10} {n:>8} {rows:>12} {bytes:>14}  {}", t.name.as_str(), t.base_url());
    }
    Ok(ExitCode::SUCCESS)
}

async fn tier(command: TierCommand, sub: &clap::ArgMatches) -> Result<ExitCode, Error> {
    use vintagelake_runtime::audit::AuditEntry;
    use vintagelake_tierer::config::PinFile;
    let (common, series, tier) = match command {
        TierCommand::Move { file, to, common } => {
            let common = common.resolve(sub)?;
            let store = super::open_store(&common).await?;
            store.warehouse().check_tiers().await?;
            let report = vintagelake_tierer::run::move_file(&store, &file, &to)
                .await
                .map_err(|e| Error::Failed(format!("moving {file}: {e}")))?;
            println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
            return Ok(ExitCode::SUCCESS);
        }
        TierCommand::Pin { series, tier, common } => (common, series, Some(tier)),
        TierCommand::Unpin { series, common } => (common, series, None),
    };
    let common = common.resolve(sub)?;
    if let Some(t) = &tier
        && !common.tiers.is_empty()
        && !common.tiers.iter().any(|c| &c.name == t)
    {
        return Err(Error::Usage(format!("no tier named {t} in the configuration")));
    }
    let pins = PinFile::in_dir(&common.data_dir);
    let now = pins
        .set(&series, tier.clone())
        .map_err(|source| Error::Read { what: pins.path().display().to_string(), source })?;
    let (action, rule) = match &tier {
        Some(t) => ("pin", format!("manual: {series} pinned to {t}")),
        None => ("unpin", format!("manual: {series} unpinned")),
    };
    AuditLog::in_dir(&common.data_dir)
        .append(&AuditEntry::new("admin", action).rule(rule).detail(serde_json::json!({ "series": series })))
        .map_err(|source| Error::Read { what: "the audit trail".into(), source })?;
    println!("{}", serde_json::to_string_pretty(&now).expect("pins serialise"));
    Ok(ExitCode::SUCCESS)
}

async fn validate_message(kind: &str, file: Option<PathBuf>) -> Result<ExitCode, Error> {
    let (what, bytes) = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|source| Error::Read { what: path.display().to_string(), source })?;
            (path.display().to_string(), bytes)
        }
        None => {
            let bytes = tokio::task::spawn_blocking(|| {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf).map(|_| buf)
            })
            .await
            .expect("stdin reader does not panic")
            .map_err(|source| Error::Read { what: "standard input".into(), source })?;
            ("standard input".to_owned(), bytes)
        }
    };
    // A file ending in a newline (as editors write them) is still one message.
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let result: Result<serde_json::Value, ValidationError> = match kind {
        "series" => decode_series_json(trimmed).map(|m| serde_json::to_value(m).expect("serialisable")),
        _ => decode_data_points(trimmed).map(|rows| serde_json::to_value(rows).expect("serialisable")),
    };
    match result {
        Ok(value) => {
            println!("{}", serde_json::json!({ "valid": true, "records": value }));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({ "valid": false, "field": e.field(), "reason": e.reason().code(), "message": e.to_string() })
            );
            eprintln!("invalid message in {what}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn migrate(common: CommonConfig, source: Option<PathBuf>, chunk_rows: u64) -> Result<ExitCode, Error> {
    use vintagelake_v1::migrate::{Progress, migrate_v1_to_iceberg};
    let root = source.unwrap_or_else(|| super::v1_root(&common));
    if !root.join(vintagelake_v1::LOG_DIR).is_dir() {
        return Err(Error::Usage(format!(
            "no V1 store at {} (its commit log {}/ is missing)",
            root.display(),
            vintagelake_v1::LOG_DIR
        )));
    }
    let from =
        vintagelake_v1::ParquetStore::open(&root).await?.with_concurrency(common.max_concurrent_operations as usize);
    let mut target = common.clone();
    target.storage_type = crate::config::StorageType::Iceberg;
    let to = super::open_store(&target).await?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg:<12} [{bar:40}] {pos}/{len} rows, {per_sec}, eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut current = None;
    let mut on_progress = |p: Progress| {
        if current != Some(p.table) {
            current = Some(p.table);
            bar.set_message(p.table.name());
            bar.set_length(p.rows_total);
            bar.reset();
        }
        bar.set_position(p.rows_done);
    };
    let reports = migrate_v1_to_iceberg(&from, &to, chunk_rows, &mut on_progress).await;
    bar.finish_and_clear();
    for r in reports? {
        println!(
            "{}: {} files, {} rows from V1 version {} ({} commits this run{}); {} series validated: row counts and checksums match",
            r.table.name(),
            r.files,
            r.rows,
            r.source_version,
            r.commits,
            if r.resumed_at_file > 0 { format!(", resumed after file {}", r.resumed_at_file) } else { String::new() },
            r.keys_checked
        );
    }
    Ok(ExitCode::SUCCESS)
}
