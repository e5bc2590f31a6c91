//! `vintagelake query`: the Arrow Flight service.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use vintagelake_query::QueryConfig;

use super::{DaemonBase, Error, FlightSetup, STOP_WAIT, start_daemon};
use crate::config::CommonConfig;

pub async fn run(common: CommonConfig, config: QueryConfig) -> Result<ExitCode, Error> {
    let flight = FlightSetup::load(&common, &config)?;
    let DaemonBase { store, readiness, signal, mut components } =
        start_daemon(&common, &[vintagelake_query::metrics::CATALOGUE]).await?;
    let stop = CancellationToken::new();
    let served = flight.serve(&common, store, stop.clone()).await?;
    readiness.set("flight", true, format!("listening on {}", flight.addr));
    components.adopt("flight", stop, served);
    components.run_until(&signal, STOP_WAIT).await?;
    Ok(ExitCode::SUCCESS)
}
