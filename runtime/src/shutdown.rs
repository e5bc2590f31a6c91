//! Ordered shutdown: components register as they start and are stopped newest first, each
//! through its own token and within a bounded wait — the shape of every daemon command
//! (`vintagelake serve` runs several: lifecycle jobs stop before ingest flushes, ingest before
//! Flight closes, Flight before the HTTP endpoints go away). A process runs until a signal or
//! until one component ends on its own ([`Components::run_until`]); either way all are stopped.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why a component failed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A component that failed or did not stop in time.
#[derive(Debug)]
pub struct ComponentError {
    pub component: &'static str,
    pub source: BoxError,
}

impl std::fmt::Display for ComponentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.source.downcast_ref::<Stopping>() {
            Some(Stopping::TimedOut(wait)) => write!(f, "{} did not stop within {wait:?}", self.component),
            Some(Stopping::Task(e)) => write!(f, "{} task: {e}", self.component),
            None => write!(f, "{}: {}", self.component, self.source),
        }
    }
}

/// How stopping a component went wrong besides the component's own error.
#[derive(Debug)]
enum Stopping {
    TimedOut(Duration),
    /// The task panicked or was aborted.
    Task(String),
}

impl std::fmt::Display for Stopping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopping::TimedOut(wait) => write!(f, "did not stop within {wait:?}"),
            Stopping::Task(e) => write!(f, "task: {e}"),
        }
    }
}

impl std::error::Error for Stopping {}

impl std::error::Error for ComponentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

struct Component {
    name: &'static str,
    token: CancellationToken,
    task: JoinHandle<Result<(), BoxError>>,
}

/// The running components of a process, in start order.
#[derive(Default)]
pub struct Components {
    running: Vec<Component>,
    /// Cancelled when any component's task ends on its own.
    ended: CancellationToken,
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
    pub fn start<Fut, E>(&mut self, name: &'static str, run: impl FnOnce(CancellationToken) -> Fut)
    where
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let token = CancellationToken::new();
        let run = run(token.clone());
        let ended = self.ended.clone();
        let task = tokio::spawn(async move {
            let result = run.await.map_err(Into::into);
            ended.cancel();
            result
        });
        self.running.push(Component { name, token, task });
    }

    /// Adopts a component already running under `token`.
    pub fn adopt<E: Into<BoxError> + Send + 'static>(
        &mut self,
        name: &'static str,
        token: CancellationToken,
        task: JoinHandle<Result<(), E>>,
    ) {
        self.start(name, move |_| async move {
            match task.await {
                Ok(result) => result.map_err(Into::into),
                Err(e) => Err(BoxError::from(e)),
            }
        });
        // The adopted task stops through its own token.
        self.running.last_mut().expect("just started").token = token;
    }

    /// Waits for `signal` (SIGTERM, Ctrl-C) or for any component to end on its own (it finished
    /// or failed), then stops them all (see [`stop_all`](Self::stop_all)).
    pub async fn run_until(self, signal: &CancellationToken, wait: Duration) -> Result<(), ComponentError> {
        tokio::select! {
            _ = signal.cancelled() => tracing::info!("shutting down"),
            _ = self.ended.cancelled() => tracing::info!("a component ended; stopping the rest"),
        }
        self.stop_all(wait).await
    }

    /// Stops every component, newest first: cancels its token and waits for it at most `wait`
    /// (a component that does not stop in time is aborted). Every component is stopped; the
    /// first failure is returned.
    pub async fn stop_all(mut self, wait: Duration) -> Result<(), ComponentError> {
        let mut first_error = None;
        while let Some(Component { name, token, mut task }) = self.running.pop() {
            token.cancel();
            let outcome: Result<(), BoxError> = match tokio::time::timeout(wait, &mut task).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => Err(Box::new(Stopping::Task(e.to_string()))),
                Err(_) => {
                    task.abort();
                    Err(Box::new(Stopping::TimedOut(wait)))
                }
            };
            match outcome {
                Ok(()) => tracing::info!(component = name, "stopped"),
                Err(source) => {
                    tracing::error!(component = name, error = %source, "stopped with an error");
                    first_error.get_or_insert(ComponentError { component: name, source });
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
            Ok::<(), String>(())
        });
        let err = c.stop_all(Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(err.to_string(), "stuck did not stop within 200ms", "the first failure is the one reported");
        assert_eq!(*order.lock().unwrap(), ["ingest", "flight", "http"], "newest first, all of them");
    }

    #[tokio::test]
    async fn a_component_that_ends_stops_the_others() {
        let mut c = Components::new();
        let http_stopped = Arc::new(Mutex::new(false));
        let stopped = http_stopped.clone();
        let http = CancellationToken::new();
        let token = http.clone();
        let task = tokio::spawn(async move {
            token.cancelled().await;
            *stopped.lock().unwrap() = true;
            Ok::<(), String>(())
        });
        c.adopt("http", http, task);
        c.start("flight", |_| async { Err::<(), _>(std::io::Error::other("address in use")) });
        let never = CancellationToken::new();
        let err = tokio::time::timeout(Duration::from_secs(10), c.run_until(&never, Duration::from_secs(5)))
            .await
            .expect("the failed component ended the wait")
            .unwrap_err();
        assert_eq!(err.to_string(), "flight: address in use");
        assert!(*http_stopped.lock().unwrap(), "the adopted component was stopped through its token");
    }
}
