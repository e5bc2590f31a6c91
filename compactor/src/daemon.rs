//! The compactor daemon: sleep until the next cron tick (or cancellation), run, log and count
//! the outcome, never let one failed run stop the loop.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vintagelake_storage::store::IcebergStore;

use crate::compact::{CompactError, CompactOptions, compact_once};

/// Runs on `schedule` until `cancel`.
pub async fn run(
    store: Arc<IcebergStore>,
    schedule: cron::Schedule,
    options: CompactOptions,
    cancel: CancellationToken,
) {
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            tracing::warn!("the compaction schedule has no future run");
            return;
        };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tracing::info!(next = %next, "next compaction");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match compact_once(&store, &options, &cancel).await {
            Ok(_) => {}
            Err(CompactError::Cancelled) => return,
            Err(e) => {
                metrics::counter!(crate::metrics::RUNS, "outcome" => "error").increment(1);
                tracing::error!(error = %e, "compaction run failed; the next run will try again");
            }
        }
    }
}
