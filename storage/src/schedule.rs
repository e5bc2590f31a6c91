//! The loop every lifecycle daemon runs: sleep until the next cron tick (or cancellation), run,
//! repeat. One failed run never stops the loop; the run itself logs, counts and audits its outcome.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Whether the loop goes on after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Stop,
}

/// Calls `run` at every tick of `schedule` until `cancel` fires or a run says [`Next::Stop`].
pub async fn run_on_schedule<F, Fut>(what: &str, schedule: &cron::Schedule, cancel: &CancellationToken, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Next>,
{
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            tracing::warn!(what, "the schedule has no future run");
            return;
        };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tracing::info!(what, next = %next, "next run");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if run().await == Next::Stop || cancel.is_cancelled() {
            return;
        }
    }
}
