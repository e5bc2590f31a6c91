//! `vintagelake ingest`: the ingest daemon.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vintagelake_ingest::broker::create_topics;
use vintagelake_ingest::{Ingest, IngestConfig, IngestOptions};
use vintagelake_storage::health::Readiness;

use super::{Error, open_store};
use crate::config::CommonConfig;
use crate::observe;

pub async fn run(common: CommonConfig, config: IngestConfig) -> Result<ExitCode, Error> {
    let bootstrap = common.kafka_bootstrap_servers.clone().ok_or_else(|| {
        Error::Usage("`vintagelake ingest` needs KAFKA_BOOTSTRAP_SERVERS (or --kafka-bootstrap-servers)".into())
    })?;
    let metrics = common.metrics_enabled.then(observe::install_metrics).flatten();
    let store = open_store(&common).await?;
    let readiness = Arc::new(Readiness::new());
    let shutdown = CancellationToken::new();
    observe::cancel_on_signals(shutdown.clone());
    let http = observe::serve_http(common.http_addr(), readiness.clone(), metrics, shutdown.clone())
        .await
        .map_err(|e| Error::Bind { what: "HTTP endpoints", addr: common.http_addr().to_string(), source: e })?;
    if config.create_topics {
        let topics = [
            config.datapoints_topic.clone(),
            config.series_topic.clone(),
            format!("{}{}", config.datapoints_topic, config.dlq_suffix),
            format!("{}{}", config.series_topic, config.dlq_suffix),
        ];
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        create_topics(&bootstrap, &names, config.topic_partitions).await.map_err(Error::Broker)?;
    }
    let options = IngestOptions {
        config,
        bootstrap_servers: bootstrap,
        health_check_interval: common.health_check_interval,
        kafka_overrides: BTreeMap::new(),
    };
    let result = Ingest::new(options, store, readiness)?.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = http.await;
    let report = result?;
    tracing::info!(
        consumed = report.records_consumed,
        committed = report.rows_committed,
        dead_lettered = report.dead_lettered,
        commits = report.commits,
        fenced = report.fenced,
        "ingest stopped"
    );
    Ok(ExitCode::SUCCESS)
}
