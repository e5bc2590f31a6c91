//! `vintagelake tier`: the tiering daemon (cron), one run (`--once`), or the plan (`--dry-run`).

use std::process::ExitCode;

use vintagelake_tierer::{TierError, TiererConfig, tier_once};

use super::{DaemonBase, Error, STOP_WAIT, start_daemon};
use crate::config::CommonConfig;

pub async fn run(common: CommonConfig, config: TiererConfig, once: bool, dry_run: bool) -> Result<ExitCode, Error> {
    config.validate().map_err(Error::Usage)?;
    let DaemonBase { store, readiness: _, signal, mut components, console: _ } =
        start_daemon(&common, &[vintagelake_tierer::metrics::CATALOGUE]).await?;
    // Every tier must answer before anything moves (an S3 bucket that does not exist fails here).
    store.warehouse().check_tiers().await?;
    let settings = config.options(&common.daemon(), &common.retention, &common.tiers);
    let result = if once || dry_run {
        let pins = settings
            .pins
            .read()
            .map_err(|source| Error::Read { what: settings.pins.path().display().to_string(), source })?;
        let today = settings.today();
        match tier_once(&store, &settings.policy, &pins, today, dry_run, settings.concurrency, &signal).await {
            Ok(report) => {
                if dry_run {
                    print_plan(&report);
                } else {
                    println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(TierError::Cancelled) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(Error::Failed(format!("tiering failed: {e}"))),
        }
    } else {
        components.start("tierer", move |stop| async move {
            vintagelake_tierer::daemon::run(store, config.tiering_schedule, settings, stop).await;
            Ok::<(), String>(())
        });
        return components.run_until(&signal, STOP_WAIT).await.map(|()| ExitCode::SUCCESS).map_err(Error::from);
    };
    components.stop_all(STOP_WAIT).await?;
    result
}

fn print_plan(report: &vintagelake_tierer::TierReport) {
    use vintagelake_tierer::Action;
    println!("tiering plan as of {} (dry run: nothing changed)", report.today);
    let (mut moved, mut deleted) = (0u64, 0u64);
    for a in &report.actions {
        match a {
            Action::Move { path, from, to, age_days, bytes, rule, .. } => {
                moved += bytes;
                let age = age_days.map(|d| format!("{d} days")).unwrap_or_else(|| "current".into());
                println!("move    {from} -> {to}  {bytes:>12} bytes  age {age:<11} {path}  ({rule})");
            }
            Action::Delete { path, tier, age_days, bytes, keep_originals, rule, .. } => {
                deleted += bytes;
                let keep = if *keep_originals { ", original releases kept" } else { "" };
                println!("delete  {tier}  {bytes:>12} bytes  age {age_days} days  {path}  ({rule}{keep})");
            }
        }
    }
    println!("{} actions: {moved} bytes to move, {deleted} bytes past retention", report.actions.len());
}
