//! `vintagelake ingest`: the ingest daemon.

use std::process::ExitCode;

use vintagelake_ingest::{Ingest, IngestConfig};
use vintagelake_kafka::broker::create_topics;

use super::{Error, Observed, STOP_WAIT, open_ingest_target, start_http};
use crate::config::CommonConfig;

pub async fn run(common: CommonConfig, config: IngestConfig) -> Result<ExitCode, Error> {
    let bootstrap = common.kafka_bootstrap_servers.clone().ok_or_else(|| {
        Error::Usage("`vintagelake ingest` needs KAFKA_BOOTSTRAP_SERVERS (or --kafka-bootstrap-servers)".into())
    })?;
    let store = open_ingest_target(&common).await?;
    let Observed { readiness, signal, mut components, console: _ } =
        start_http(&common, &[vintagelake_ingest::metrics::CATALOGUE]).await?;
    tracing::info!(target = %store.describe(), "ingest commits here");
    if config.create_topics {
        let topics = config.topics();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        create_topics(&bootstrap, &names, config.topic_partitions).await.map_err(Error::Broker)?;
    }
    let wait = STOP_WAIT.max(config.shutdown_timeout + std::time::Duration::from_secs(10));
    let options = config.options(&common.daemon(), bootstrap);
    let daemon = Ingest::new(options, store, readiness)?;
    components.start("ingest", move |stop| async move {
        let report = daemon.run(stop).await?;
        tracing::info!(
            consumed = report.records_consumed,
            committed = report.rows_committed,
            dead_lettered = report.dead_lettered,
            commits = report.commits,
            fenced = report.fenced,
            "ingest stopped"
        );
        Ok::<(), vintagelake_ingest::error::IngestError>(())
    });
    components.run_until(&signal, wait).await?;
    Ok(ExitCode::SUCCESS)
}
