//! Readiness checks that daemons update and the HTTP `/ready` endpoint reports.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Named dependency checks (`broker`, `catalog`, …); ready when every registered check passes.
#[derive(Debug, Default)]
pub struct Readiness {
    checks: Mutex<BTreeMap<String, Check>>,
}

/// The last result of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
    /// When it was last evaluated (ms since the epoch).
    pub at_ms: i64,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the outcome of a check (registering it on first use).
    pub fn set(&self, name: &str, ok: bool, detail: impl Into<String>) {
        let check = Check { ok, detail: detail.into(), at_ms: chrono::Utc::now().timestamp_millis() };
        let mut checks = self.checks.lock().expect("readiness lock");
        if checks.get(name).is_none_or(|c| c.ok != ok) {
            tracing::info!(check = name, ok, detail = %check.detail, "readiness changed");
        }
        checks.insert(name.to_owned(), check);
    }

    /// Ready when at least one check is registered and all pass.
    pub fn is_ready(&self) -> bool {
        let checks = self.checks.lock().expect("readiness lock");
        !checks.is_empty() && checks.values().all(|c| c.ok)
    }

    pub fn snapshot(&self) -> BTreeMap<String, Check> {
        self.checks.lock().expect("readiness lock").clone()
    }
}

/// Keeps the check `name` current: every `interval`, until `stop`, `probe` must answer `Ok`
/// (its error is the check's detail). Daemons use it for the catalog; any dependency fits.
pub async fn watch<F, Fut>(
    readiness: std::sync::Arc<Readiness>,
    name: &str,
    interval: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
    mut probe: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    loop {
        match probe().await {
            Ok(detail) => readiness.set(name, true, detail),
            Err(e) => readiness.set(name, false, e),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// GET `http://127.0.0.1:port/path` of one of our daemons' HTTP endpoints (`/ready`, `/metrics`):
/// (status, body), or `None` when nothing answers. For tools and tests, not a general client.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_all_registered_checks_pass() {
        let r = Readiness::new();
        assert!(!r.is_ready(), "nothing checked yet");
        r.set("broker", true, "ok");
        r.set("catalog", false, "connection refused");
        assert!(!r.is_ready());
        r.set("catalog", true, "ok");
        assert!(r.is_ready());
        assert_eq!(r.snapshot().len(), 2);
    }
}
