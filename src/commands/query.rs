//! `vintagelake query`: the Arrow Flight service.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vintagelake_query::auth::Auth;
use vintagelake_query::{QueryConfig, VintageFlightService};
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::health::Readiness;
use vintagelake_storage::store::IcebergStore;

use super::{Error, open_store};
use crate::config::CommonConfig;
use crate::observe;

pub async fn run(common: CommonConfig, config: QueryConfig) -> Result<ExitCode, Error> {
    let metrics = common.metrics_enabled.then(observe::install_metrics).flatten();
    let vintagelake_query::config::Credentials { tokens, users } = config.credentials().map_err(Error::Usage)?;
    let tls = match (&config.flight_tls_cert, &config.flight_tls_key) {
        (Some(cert), Some(key)) => Some((
            std::fs::read(cert).map_err(|source| Error::Read { what: cert.display().to_string(), source })?,
            std::fs::read(key).map_err(|source| Error::Read { what: key.display().to_string(), source })?,
        )),
        _ => None,
    };
    if tokens.is_empty() && users.is_empty() {
        tracing::warn!("no FLIGHT_TOKENS or FLIGHT_USERS: the Flight service accepts every client");
    }
    let store = open_store(&common).await?;
    let readiness = Arc::new(Readiness::new());
    let shutdown = CancellationToken::new();
    observe::cancel_on_signals(shutdown.clone());
    let http = observe::serve_http(common.http_addr(), readiness.clone(), metrics, shutdown.clone())
        .await
        .map_err(|e| Error::Bind { what: "HTTP endpoints", addr: common.http_addr().to_string(), source: e })?;
    let checks = tokio::spawn(catalog_checks(
        store.clone(),
        readiness.clone(),
        common.health_check_interval,
        shutdown.child_token(),
    ));
    let service = VintageFlightService::new(
        store,
        Arc::new(Auth::new(tokens, users)),
        (common.cache_size_mb as usize).saturating_mul(1 << 20),
        common.batch_size as usize,
    );
    let addr = SocketAddr::new(config.flight_host, common.flight_server_port);
    let flight = vintagelake_query::serve(addr, service, tls, shutdown.clone()).await.map_err(Error::Usage)?;
    readiness.set("flight", true, format!("listening on {addr}"));
    let served = flight.await;
    shutdown.cancel();
    checks.abort();
    let _ = http.await;
    match served {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(Error::Usage(format!("Flight service failed: {e}"))),
        Err(e) => Err(Error::Usage(format!("Flight service task failed: {e}"))),
    }
}

/// `/ready` for readers: the catalog answers.
pub async fn catalog_checks(
    store: Arc<IcebergStore>,
    readiness: Arc<Readiness>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        match store.warehouse().metadata_location(TableKind::DataPoints).await {
            Ok(_) => readiness.set("catalog", true, "catalog answered"),
            Err(e) => readiness.set("catalog", false, e.to_string()),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
