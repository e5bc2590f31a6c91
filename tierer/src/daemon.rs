//! The tierer daemon: tiering as a lifecycle job, run at every tick of its cron schedule.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vintagelake_runtime::schedule::{Lifecycle, RunEnd, run_lifecycle};
use vintagelake_storage::store::IcebergStore;

use crate::config::TierOptions;
use crate::run::{TierError, tier_once};

/// Tiering as a [`Lifecycle`] job: each run reads the pins and the clock afresh.
#[derive(Debug)]
pub struct Tiering {
    pub store: Arc<IcebergStore>,
    pub settings: TierOptions,
}

#[async_trait::async_trait]
impl Lifecycle for Tiering {
    fn name(&self) -> &'static str {
        "tiering"
    }

    async fn run_once(&self, cancel: &CancellationToken) -> RunEnd {
        let s = &self.settings;
        let pins = match s.pins.read() {
            Ok(p) => p,
            Err(e) => return RunEnd::Failed(format!("cannot read the tier pins; skipping this run: {e}")),
        };
        match tier_once(&self.store, &s.policy, &pins, s.today(), false, s.concurrency, cancel).await {
            Ok(_) => RunEnd::Finished,
            Err(TierError::Cancelled) => RunEnd::Cancelled,
            Err(e) => RunEnd::Failed(e.to_string()),
        }
    }
}

/// Runs on `schedule` until `cancel`.
pub async fn run(store: Arc<IcebergStore>, schedule: cron::Schedule, settings: TierOptions, cancel: CancellationToken) {
    // Files and bytes per tier are on /metrics from the start, not only after the first run.
    if let Err(e) = crate::run::report_tiers(&store, settings.today()).await {
        tracing::warn!(error = %e, "could not report the tiers at start; they are reported after the first run");
    }
    run_lifecycle(&Tiering { store, settings }, &schedule, &cancel).await
}
