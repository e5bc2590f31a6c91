//! `vintagelake query`: the Arrow Flight service.

use std::process::ExitCode;

use vintagelake_query::QueryConfig;

use super::{DaemonBase, Error, FlightSetup, start_daemon};
use crate::config::CommonConfig;

pub async fn run(common: CommonConfig, config: QueryConfig) -> Result<ExitCode, Error> {
    let flight = FlightSetup::load(&common, &config)?;
    let DaemonBase { store, readiness, shutdown, http } =
        start_daemon(&common, &[vintagelake_query::metrics::CATALOGUE]).await?;
    let served = flight.serve(&common, store, shutdown.clone()).await?;
    readiness.set("flight", true, format!("listening on {}", flight.addr));
    let served = served.await;
    shutdown.cancel();
    let _ = http.await;
    match served {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(Error::Failed(format!("Flight service failed: {e}"))),
        Err(e) => Err(Error::Failed(format!("Flight service task failed: {e}"))),
    }
}
