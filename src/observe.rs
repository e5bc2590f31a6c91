//! Operations endpoints every daemon serves on its HTTP port: `/health` (the process is up),
//! `/ready` (its dependencies answer), `/metrics` (Prometheus text format); plus signal handling.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use vintagelake_runtime::health::Readiness;

/// Every daemon's metric catalogue (the storage core's is registered by every daemon).
pub const CATALOGUES: &[&[vintagelake_runtime::metrics::MetricDoc]] = &[
    vintagelake_ingest::metrics::CATALOGUE,
    vintagelake_compactor::metrics::CATALOGUE,
    vintagelake_tierer::metrics::CATALOGUE,
    vintagelake_query::metrics::CATALOGUE,
];

/// Installs the process-wide Prometheus recorder (once). Latency metrics get histogram buckets.
pub fn install_metrics() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
            let sizes = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_rows".into()), &sizes))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &sizes));
            match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

#[derive(Clone)]
struct Http {
    readiness: Arc<Readiness>,
    metrics: Option<PrometheusHandle>,
}

async fn health() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn ready(State(s): State<Http>) -> impl IntoResponse {
    let ready = s.readiness.is_ready();
    let body = serde_json::json!({ "ready": ready, "checks": s.readiness.snapshot() });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, [("content-type", "application/json")], body.to_string())
}

async fn metrics(State(s): State<Http>) -> impl IntoResponse {
    match &s.metrics {
        Some(h) => (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], h.render()),
        None => {
            (StatusCode::NOT_FOUND, [("content-type", "text/plain; version=0.0.4")], "metrics disabled\n".to_owned())
        }
    }
}

/// Binds the HTTP endpoints now (so a taken port fails at start) and serves them until `shutdown`.
pub async fn serve_http(
    addr: SocketAddr,
    readiness: Arc<Readiness>,
    metrics_handle: Option<PrometheusHandle>,
    console: Router,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP endpoints /health /ready /metrics, the web console on /");
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Http { readiness, metrics: metrics_handle })
        .merge(console);
    Ok(tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }))
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    /// docs/operations.md lists every metric of the catalogue with its type and labels.
    #[test]
    fn the_operations_guide_documents_every_metric() {
        let doc = include_str!("../docs/operations.md");
        let all = std::iter::once(vintagelake_storage::metrics::CATALOGUE).chain(super::CATALOGUES.iter().copied());
        for m in all.flatten() {
            let labels = if m.labels.is_empty() { "\u{2014}".to_owned() } else { m.labels.join(", ") };
            let row = format!("| `{}` | {} | {} | {} |", m.name, m.kind.as_str(), labels, m.help);
            assert!(doc.contains(&row), "docs/operations.md lacks or misstates:\n{row}");
        }
    }
}
