//! The compactor daemon: compaction as a lifecycle job, run at every tick of its cron schedule.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vintagelake_runtime::schedule::{Lifecycle, RunEnd, run_lifecycle};
use vintagelake_storage::store::IcebergStore;

use crate::compact::{CompactError, CompactOptions, compact_once};

/// Compaction as a [`Lifecycle`] job.
#[derive(Debug)]
pub struct Compaction {
    pub store: Arc<IcebergStore>,
    pub options: CompactOptions,
}

#[async_trait::async_trait]
impl Lifecycle for Compaction {
    fn name(&self) -> &'static str {
        "compaction"
    }

    async fn run_once(&self, cancel: &CancellationToken) -> RunEnd {
        match compact_once(&self.store, &self.options, cancel).await {
            Ok(_) => RunEnd::Finished,
            Err(CompactError::Cancelled) => RunEnd::Cancelled,
            Err(e) => RunEnd::Failed(e.to_string()),
        }
    }
}

/// Runs on `schedule` until `cancel`.
pub async fn run(
    store: Arc<IcebergStore>,
    schedule: cron::Schedule,
    options: CompactOptions,
    cancel: CancellationToken,
) {
    run_lifecycle(&Compaction { store, options }, &schedule, &cancel).await
}
