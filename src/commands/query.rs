//! `vintagelake query`: the Arrow Flight service.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use vintagelake_query::auth::Auth;
use vintagelake_query::{QueryConfig, VintageFlightService};

use super::{DaemonBase, Error, start_daemon};
use crate::config::CommonConfig;

pub async fn run(common: CommonConfig, config: QueryConfig) -> Result<ExitCode, Error> {
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
    let DaemonBase { store, readiness, shutdown, http } =
        start_daemon(&common, &[vintagelake_query::metrics::CATALOGUE]).await?;
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
    let _ = http.await;
    match served {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(Error::Failed(format!("Flight service failed: {e}"))),
        Err(e) => Err(Error::Failed(format!("Flight service task failed: {e}"))),
    }
}
