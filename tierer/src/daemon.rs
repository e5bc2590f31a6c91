//! The tierer daemon: a run at every tick of its cron schedule until cancelled.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vintagelake_storage::schedule::{Next, run_on_schedule};
use vintagelake_storage::store::IcebergStore;

use crate::config::TieringSettings;
use crate::run::{TierError, tier_once};

/// Runs on `schedule` until `cancel`; each run reads the pins and the clock afresh.
pub async fn run(
    store: Arc<IcebergStore>,
    schedule: cron::Schedule,
    settings: TieringSettings,
    cancel: CancellationToken,
) {
    run_on_schedule("tiering", &schedule, &cancel, || async {
        let pins = match settings.pins.read() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the tier pins; skipping this run");
                return Next::Continue;
            }
        };
        let today = settings.today();
        match tier_once(&store, &settings.policy, &pins, today, false, settings.concurrency, &cancel).await {
            Ok(_) => Next::Continue,
            Err(TierError::Cancelled) => Next::Stop,
            Err(e) => {
                tracing::error!(error = %e, "tiering run failed; the next run will try again");
                Next::Continue
            }
        }
    })
    .await
}
