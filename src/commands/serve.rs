//! `vintagelake serve` (every daemon in one process) and `vintagelake demo` (serve, publish a
//! synthetic revision dataset, and show an answer fetched over Flight).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type};
use tokio_util::sync::CancellationToken;
use vintagelake_compactor::CompactorConfig;
use vintagelake_ingest::{Ingest, IngestConfig};
use vintagelake_kafka::broker::{Broker, LocalBroker, create_topics};
use vintagelake_query::QueryConfig;
use vintagelake_schemas::Date;
use vintagelake_storage::catalog::TableKind;

use super::{DaemonBase, Error, FlightSetup, STOP_WAIT, start_daemon};
use crate::config::CommonConfig;

/// Everything `serve` (and `demo`) runs: the settings of each daemon, one set of shared ones.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub ingest: IngestConfig,
    #[command(flatten)]
    pub query: QueryConfig,
    #[command(flatten)]
    pub compactor: CompactorConfig,
    #[command(flatten)]
    pub tierer: vintagelake_tierer::TiererConfig,
}

impl ServeArgs {
    /// Applies the config file under flags and environment (see [`CommonConfig::resolve`]).
    pub fn resolve(mut self, matches: &clap::ArgMatches) -> Result<Self, Error> {
        self.common = self.common.resolve(matches)?;
        Ok(self)
    }
}

/// Options of `vintagelake demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Synthetic revisions to publish.
    #[arg(long, default_value_t = 20_000)]
    pub revisions: usize,
    /// Exit after showing the result instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

pub async fn run(args: ServeArgs, demo: Option<DemoArgs>) -> Result<ExitCode, Error> {
    let ServeArgs { common, ingest, query, compactor, tierer } = args;
    tierer.validate().map_err(Error::Usage)?;
    // Ordered start: storage and HTTP, broker, Flight, then ingest.
    let DaemonBase { store, readiness, signal, mut components, console } =
        start_daemon(&common, crate::observe::CATALOGUES).await?;
    // Not ready until Flight listens (readiness counts only the checks registered so far).
    readiness.set("flight", false, "starting");
    let broker = match &common.kafka_bootstrap_servers {
        Some(b) => Broker::external(b).await.map_err(Error::Broker)?,
        None => {
            eprintln!("no KAFKA_BOOTSTRAP_SERVERS: starting a local Kafka-protocol broker (tansu, in memory)…");
            Broker::local(LocalBroker::start().await.map_err(Error::Broker)?)
        }
    };
    let bootstrap = broker.bootstrap_servers().to_owned();
    let flight_setup = FlightSetup::load(&common, &query)?;
    let flight_stop = CancellationToken::new();
    let flight = flight_setup.serve(&common, store.clone(), &console, flight_stop.clone()).await?;
    let (flight_addr, tls, first_token) =
        (flight_setup.addr, flight_setup.tls.clone(), flight_setup.first_token.clone());
    readiness.set("flight", true, format!("listening on {flight_addr}"));
    // Components stop newest first: tierer and compactor (a run in progress aborts before its
    // commit), ingest (flush and commit), then Flight, then HTTP.
    components.adopt("flight", flight_stop, flight);
    let topics = ingest.topics();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    create_topics(&bootstrap, &names, ingest.topic_partitions).await.map_err(Error::Broker)?;
    let options = ingest.clone().options(&common.daemon(), bootstrap.clone());
    let daemon = Ingest::new(options, store.clone(), readiness.clone())?;
    let assignments = daemon.assignments();
    components.start("ingest", move |stop| async move {
        let report = daemon.run(stop).await?;
        tracing::info!(consumed = report.records_consumed, committed = report.rows_committed, "ingest stopped");
        Ok::<(), vintagelake_ingest::error::IngestError>(())
    });
    let (schedule, options) = (compactor.compaction_schedule.clone(), compactor.options(&common.daemon()));
    let compacting = store.clone();
    components.start("compactor", move |stop| async move {
        vintagelake_compactor::daemon::run(compacting, schedule, options, stop).await;
        Ok::<(), String>(())
    });
    store.warehouse().check_tiers().await?;
    let (schedule, settings) =
        (tierer.tiering_schedule.clone(), tierer.options(&common.daemon(), &common.retention, &common.tiers));
    let tiering = store.clone();
    components.start("tierer", move |stop| async move {
        vintagelake_tierer::daemon::run(tiering, schedule, settings, stop).await;
        Ok::<(), String>(())
    });

    let scheme = if tls.is_some() { "https" } else { "http" };
    let flight_url = format!("{scheme}://127.0.0.1:{}", common.flight_server_port);
    let http_url = format!("http://127.0.0.1:{}", common.http_port);
    // `produce` and `get` on this data directory find us through this record.
    let endpoints = super::endpoints::Endpoints {
        pid: std::process::id(),
        kafka_bootstrap_servers: bootstrap.clone(),
        flight_url: flight_url.clone(),
        http_url: http_url.clone(),
    };
    if let Err(e) = endpoints.write(&common.data_dir) {
        tracing::warn!(error = %e, "could not record this service's endpoints in the data directory");
    }
    let mut exit_now = false;
    if let Some(demo) = demo {
        show_demo(&demo, &bootstrap, &ingest, &store, &flight_url, first_token, assignments).await?;
        exit_now = demo.exit;
    }
    eprintln!();
    eprintln!("vintagelake is running on {}:", common.data_dir.display());
    eprintln!("  Kafka      {bootstrap}   (topics {} and {})", ingest.datapoints_topic, ingest.series_topic);
    eprintln!("  Flight     {flight_url}   (vintagelake get SERIES, from this directory)");
    eprintln!("  console    {http_url}/   (series, revision charts, operations)");
    eprintln!("  health     {http_url}/health   ready {http_url}/ready   metrics {http_url}/metrics");
    let wait = STOP_WAIT.max(ingest.shutdown_timeout + Duration::from_secs(10));
    if exit_now {
        components.stop_all(wait).await?;
    } else {
        eprintln!("  stop with Ctrl-C (or SIGTERM): ingest commits what it buffered, then the rest stops.");
        components.run_until(&signal, wait).await?;
    }
    super::endpoints::Endpoints::remove_own(&common.data_dir);
    drop(broker);
    Ok(ExitCode::SUCCESS)
}

/// Publishes a synthetic dataset, waits until ingest committed it, and prints one series' latest
/// values next to its values as of an earlier vintage, fetched over Flight.
async fn show_demo(
    demo: &DemoArgs,
    bootstrap: &str,
    ingest: &IngestConfig,
    store: &Arc<vintagelake_storage::store::IcebergStore>,
    flight_url: &str,
    token: Option<String>,
    mut assignments: tokio::sync::watch::Receiver<usize>,
) -> Result<(), Error> {
    use vintagelake_kafka::produce::{message, producer, publish};
    use vintagelake_kafka::synthetic;

    let total_records = || async {
        let table = store.warehouse().load(TableKind::DataPoints).await?;
        Ok::<u64, Error>(
            table
                .metadata()
                .current_snapshot()
                .and_then(|s| s.summary().additional_properties.get("total-records").and_then(|v| v.parse().ok()))
                .unwrap_or(0),
        )
    };
    let before = total_records().await?;
    // Published once ingest owns its partitions: the consumer group forming (seconds on a fresh
    // broker) is start-up, not the time data takes to arrive.
    let joining = indicatif::ProgressBar::new_spinner().with_message("ingest is joining its consumer group…");
    joining.enable_steady_tick(Duration::from_millis(100));
    let joined = tokio::time::timeout(Duration::from_secs(120), assignments.wait_for(|n| *n > 0)).await;
    joining.finish_and_clear();
    if !matches!(joined, Ok(Ok(_))) {
        return Err(Error::Failed("ingest did not get its partitions within 2 minutes".into()));
    }
    let revisions = synthetic::revisions(demo.revisions, 2024);
    let p = producer(bootstrap)?;
    let series = synthetic::series_for(demo.revisions);
    publish(&p, &ingest.series_topic, super::produce::synthetic_metadata(&series), |_| {}).await?;
    let bar = super::produce::progress_bar(revisions.len() as u64, "revisions");
    bar.set_message("publishing");
    let started = std::time::Instant::now();
    publish(&p, &ingest.datapoints_topic, revisions.iter().map(message), |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    eprintln!(
        "published {} synthetic revisions of {} series to {} in {:.2} s",
        revisions.len(),
        series.len(),
        ingest.datapoints_topic,
        started.elapsed().as_secs_f64()
    );
    let wanted = before + revisions.len() as u64;
    let bar = super::produce::progress_bar(revisions.len() as u64, "revisions");
    bar.set_message("committing");
    let started = std::time::Instant::now();
    loop {
        let total = total_records().await?;
        bar.set_position(total.saturating_sub(before).min(revisions.len() as u64));
        if total >= wanted {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bar.abandon();
            return Err(Error::Failed(format!("ingest committed only {total} of {wanted} rows within 5 minutes")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    eprintln!("ingest committed them {:.2} s after the publish finished", started.elapsed().as_secs_f64());

    // A quarterly series, its last 8 dates: latest vs. as known at an earlier vintage.
    let series = revisions
        .iter()
        .find(|r| r.series_id.as_str().contains(".GDP."))
        .expect("a quarterly series")
        .series_id
        .clone();
    let mine: Vec<_> = revisions.iter().filter(|r| r.series_id == series).collect();
    let dates: BTreeSet<Date> = mine.iter().map(|r| r.date).collect();
    let last: Vec<Date> = dates.iter().rev().take(8).rev().copied().collect();
    let vintage =
        mine.iter().filter(|r| r.date == last[last.len() / 2]).map(|r| r.revision_date).min().expect("revisions");
    let fetch = |as_of: Option<Date>| {
        let args = super::get::GetArgs {
            series: vec![series.as_str().to_owned()],
            as_of: as_of.map(|d| d.to_string()),
            start: Some(last[0].to_string()),
            end: None,
            format: "table".into(),
            connect: super::get::FlightConnection {
                flight_url: Some(flight_url.to_owned()),
                token: token.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        async move {
            let ticket = super::get::ticket_of(&args)?.to_bytes();
            super::get::fetch(&args, ticket).await
        }
    };
    let values = |batches: Vec<arrow::array::RecordBatch>| -> BTreeMap<Date, Option<f64>> {
        let mut out = BTreeMap::new();
        for b in &batches {
            let d = b.column_by_name("date").expect("date").as_primitive::<Date32Type>();
            let v = b.column_by_name("value").expect("value").as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                out.insert(Date::from_days_since_epoch(d.value(i)), v.is_valid(i).then(|| v.value(i)));
            }
        }
        out
    };
    let latest = values(fetch(None).await?);
    let then = values(fetch(Some(vintage)).await?);
    let show = |v: Option<&Option<f64>>| match v {
        None => "(not yet published)".to_owned(),
        Some(None) => "(published as missing)".to_owned(),
        Some(Some(x)) => format!("{x:.3}"),
    };
    println!();
    println!("{series}: latest values vs. as known on {vintage} (fetched over Arrow Flight)");
    println!("{:<12} {:>24} {:>24}", "date", "latest", format!("as of {vintage}"));
    for d in &last {
        println!("{:<12} {:>24} {:>24}", d.to_string(), show(latest.get(d)), show(then.get(d)));
    }
    Ok(())
}
