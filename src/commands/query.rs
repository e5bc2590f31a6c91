//! `vintagelake query`: the Arrow Flight service, over the Iceberg tables or a V1 store
//! (`STORAGE_TYPE=parquet`): the same API, every view, series listing and time travel.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use vintagelake_query::QueryConfig;

use super::{DaemonBase, Error, FlightSetup, Observed, STOP_WAIT, start_daemon, start_http, v1_root};
use crate::config::{CommonConfig, StorageType};

pub async fn run(common: CommonConfig, config: QueryConfig) -> Result<ExitCode, Error> {
    let flight = FlightSetup::load(&common, &config)?;
    let catalogue = [vintagelake_query::metrics::CATALOGUE];
    let stop = CancellationToken::new();
    let (readiness, signal, mut components, served) = if common.storage_type == StorageType::Parquet {
        let store = vintagelake_v1::ParquetStore::open(v1_root(&common))
            .await?
            .with_concurrency(common.max_concurrent_operations as usize);
        let Observed { readiness, signal, components, console } = start_http(&common, &catalogue).await?;
        readiness.set("flight", false, "starting");
        let served = flight.serve_source(&common, std::sync::Arc::new(store), &console, stop.clone()).await?;
        (readiness, signal, components, served)
    } else {
        let DaemonBase { store, readiness, signal, components, console } = start_daemon(&common, &catalogue).await?;
        // Not ready until Flight listens (readiness counts only the checks registered so far).
        readiness.set("flight", false, "starting");
        let served = flight.serve(&common, store, &console, stop.clone()).await?;
        (readiness, signal, components, served)
    };
    readiness.set("flight", true, format!("listening on {}", flight.addr));
    components.adopt("flight", stop, served);
    components.run_until(&signal, STOP_WAIT).await?;
    Ok(ExitCode::SUCCESS)
}
