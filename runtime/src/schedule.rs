//! The loop every lifecycle daemon runs: sleep until the next cron tick (or cancellation), run,
//! repeat. One failed run never stops the loop; the run itself logs, counts and audits its outcome.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Parses a cron expression (seconds field first), quoting it in the error.
pub fn parse_schedule(s: &str) -> Result<cron::Schedule, String> {
    s.parse().map_err(|e| format!("{s:?} is not a cron schedule (sec min hour day month weekday): {e}"))
}

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

/// How one run of a lifecycle job ended, as the loop needs to know it.
#[derive(Debug)]
pub enum RunEnd {
    /// Done (or nothing to do): wait for the next tick.
    Finished,
    /// Stopped by cancellation: the loop ends.
    Cancelled,
    /// Failed (already logged, counted and audited by the run): the next tick tries again.
    Failed(String),
}

/// A lifecycle job — compaction, tiering, or the next one: a name and one run. The loop
/// ([`run_lifecycle`]) schedules it; the run records its own outcome (audit trail, metrics).
#[async_trait::async_trait]
pub trait Lifecycle: Send + Sync {
    /// The job's name in logs ("compaction", "tiering").
    fn name(&self) -> &'static str;
    /// One run, stopping at its next safe point once `cancel` fires.
    async fn run_once(&self, cancel: &CancellationToken) -> RunEnd;
}

/// Records a lifecycle run that did not complete, the same way for every job: logged, counted in
/// the job's runs counter (`runs`, label `outcome` = `reason`) and one audit entry of `actor` /
/// `action` on `table` with the reason and the error.
pub fn record_unfinished(
    audit: &crate::audit::AuditLog,
    runs: &'static str,
    (actor, action, table): (&str, &str, &str),
    reason: &'static str,
    error: &dyn std::fmt::Display,
) {
    tracing::warn!(job = actor, outcome = reason, error = %error, "lifecycle run did not complete");
    metrics::counter!(runs, "outcome" => reason).increment(1);
    audit.record(&crate::audit::AuditEntry::new(actor, action).table(table).outcome(format!("{reason}: {error}")));
}

/// Runs `job` at every tick of `schedule` until `cancel` fires.
pub async fn run_lifecycle(job: &dyn Lifecycle, schedule: &cron::Schedule, cancel: &CancellationToken) {
    let name = job.name();
    run_on_schedule(name, schedule, cancel, || async {
        match job.run_once(cancel).await {
            RunEnd::Finished => Next::Continue,
            RunEnd::Cancelled => Next::Stop,
            RunEnd::Failed(e) => {
                tracing::error!(job = name, error = %e, "run failed; the next run will try again");
                Next::Continue
            }
        }
    })
    .await
}
