//! Ordered shutdown: components register as they start and are stopped newest first, each
//! through its own token and within a bounded wait — the shape of a process that runs several
//! daemons (`vintagelake serve`): lifecycle jobs stop before ingest flushes, ingest before Flight
//! closes, Flight before the HTTP endpoints go away.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Component {
    name: &'static str,
    token: CancellationToken,
    task: JoinHandle<Result<(), String>>,
}

/// The running components of a process, in start order.
#[derive(Default)]
pub struct Components {
    running: Vec<Component>,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.running.iter().map(|c| c.name)).finish()
    }
}

impl Components {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a component with a stop token of its own.
    pub fn start<Fut>(&mut self, name: &'static str, run: impl FnOnce(CancellationToken) -> Fut)
    where
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let token = CancellationToken::new();
        let task = tokio::spawn(run(token.clone()));
        self.running.push(Component { name, token, task });
    }

    /// Adopts a component already running under `token`.
    pub fn adopt(&mut self, name: &'static str, token: CancellationToken, task: JoinHandle<Result<(), String>>) {
        self.running.push(Component { name, token, task });
    }

    /// Stops every component, newest first: cancels its token and waits for it at most `wait`
    /// (a component that does not stop in time is aborted). Every component is stopped; the
    /// first failure is returned.
    pub async fn stop_all(mut self, wait: Duration) -> Result<(), String> {
        let mut first_error = None;
        while let Some(Component { name, token, mut task }) = self.running.pop() {
            token.cancel();
            let outcome = match tokio::time::timeout(wait, &mut task).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(format!("{name}: {e}")),
                Ok(Err(e)) => Err(format!("{name} task: {e}")),
                Err(_) => {
                    task.abort();
                    Err(format!("{name} did not stop within {wait:?}"))
                }
            };
            match outcome {
                Ok(()) => tracing::info!(component = name, "stopped"),
                Err(e) => {
                    tracing::error!(component = name, error = %e, "stopped with an error");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn components_stop_newest_first_and_every_one_is_stopped() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut c = Components::new();
        for name in ["http", "flight", "ingest"] {
            let order = order.clone();
            c.start(name, move |stop| async move {
                stop.cancelled().await;
                order.lock().unwrap().push(name);
                if name == "flight" { Err("refused".to_owned()) } else { Ok(()) }
            });
        }
        c.start("stuck", |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        let err = c.stop_all(Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(err, "stuck did not stop within 200ms", "the first failure is the one reported");
        assert_eq!(*order.lock().unwrap(), ["ingest", "flight", "http"], "newest first, all of them");
    }
}
