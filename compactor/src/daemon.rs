//! The compactor daemon: a run at every tick of its cron schedule until cancelled.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vintagelake_storage::schedule::{Next, run_on_schedule};
use vintagelake_storage::store::IcebergStore;

use crate::compact::{CompactError, CompactOptions, compact_once};

/// Runs on `schedule` until `cancel`.
pub async fn run(
    store: Arc<IcebergStore>,
    schedule: cron::Schedule,
    options: CompactOptions,
    cancel: CancellationToken,
) {
    run_on_schedule("compaction", &schedule, &cancel, || async {
        match compact_once(&store, &options, &cancel).await {
            Ok(_) => Next::Continue,
            Err(CompactError::Cancelled) => Next::Stop,
            Err(e) => {
                tracing::error!(error = %e, "compaction run failed; the next run will try again");
                Next::Continue
            }
        }
    })
    .await
}
