//! Subcommands of the `vintagelake` binary.

mod admin;
mod bench;
mod compact;
mod endpoints;
pub(crate) mod get;
mod ingest;
pub(crate) mod produce;
mod query;
mod serve;
mod sql;
mod tier;

use std::process::ExitCode;

use crate::config::ConfigError;
use clap::{Parser, Subcommand};
use vintagelake_compactor::CompactorConfig;
use vintagelake_ingest::IngestConfig;
use vintagelake_runtime::shutdown::Components;
use vintagelake_tierer::TiererConfig;

use crate::config::CommonConfig;

/// Kafka in, Apache Iceberg in the middle, Arrow Flight out: economic time series with every
/// revision kept.
#[derive(Debug, Parser)]
#[command(name = "vintagelake", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Logging options.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `vintagelake_ingest=debug,info`.
    #[arg(long = "log-filter", env = "RUST_LOG", default_value = "info", global = true)]
    pub filter: String,

    /// Log format: text or json (one JSON object per line, for log shippers).
    #[arg(long = "log-format", env = "LOG_FORMAT", default_value = "text", global = true, value_parser = ["text", "json"])]
    pub format: String,

    /// `demo`: every log line (by default `demo` shows only warnings and its own output).
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,
}

impl LogArgs {
    /// The filter in effect: `demo` run as it comes logs warnings only, so its progress and the
    /// answer are what a newcomer reads; `-v`, `RUST_LOG` or `--log-filter` bring every line back.
    /// Daemons (`serve` included) always log at the configured level.
    pub fn effective(mut self, matches: &clap::ArgMatches) -> Self {
        let defaulted = matches!(matches.value_source("filter"), None | Some(clap::parser::ValueSource::DefaultValue));
        if defaulted && !self.verbose && matches.subcommand_name() == Some("demo") {
            self.filter = "warn".into();
        }
        self
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every daemon in one process (ingest, compactor, query): the laptop setup. Without
    /// KAFKA_BOOTSTRAP_SERVERS it starts a local broker itself.
    Serve {
        #[command(flatten)]
        serve: serve::ServeArgs,
    },
    /// `serve`, then publish a synthetic revision dataset and show an answer fetched over Flight.
    Demo {
        #[command(flatten)]
        serve: serve::ServeArgs,
        #[command(flatten)]
        demo: serve::DemoArgs,
    },
    /// Consume revisions from Kafka and commit them to Iceberg, exactly once.
    Ingest {
        #[command(flatten)]
        common: CommonConfig,
        #[command(flatten)]
        ingest: IngestConfig,
    },
    /// Compact small files, close real-time periods, expire snapshots, remove orphans.
    Compact {
        #[command(flatten)]
        common: CommonConfig,
        #[command(flatten)]
        compactor: CompactorConfig,
        /// Run once now, print the report as JSON and exit instead of following the schedule.
        #[arg(long)]
        once: bool,
    },
    /// Move data between hot/warm/cold/archive tiers and delete what is past retention.
    Tier {
        #[command(flatten)]
        common: CommonConfig,
        #[command(flatten)]
        tierer: TiererConfig,
        /// Run once now and exit instead of following the schedule.
        #[arg(long)]
        once: bool,
        /// Print the plan (moves, deletions, bytes, reasons) without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Serve Arrow Flight reads: latest, as of a vintage, first release, all revisions.
    Query {
        #[command(flatten)]
        common: CommonConfig,
        #[command(flatten)]
        query: vintagelake_query::QueryConfig,
    },
    /// Publish a CSV or JSON-lines file of revisions (or a synthetic stream) to Kafka.
    Produce(produce::ProduceArgs),
    /// Fetch series over Arrow Flight and print them as a table, CSV or Parquet.
    Get(get::GetArgs),
    /// SQL over the vintages through the Flight SQL endpoint: one statement, or an interactive
    /// session reading statements from standard input.
    Sql(sql::SqlArgs),
    /// Administration: validate messages, inspect snapshots, files, tiers and the audit trail.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Benchmarks of the running pipeline (`bench e2e`: produce → ingest → Flight under load).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command was given something it cannot work with (flags, arguments, environment).
    #[error("{0}")]
    Usage(String),
    /// The command ran and something it depends on failed (a service, a task, a write).
    #[error("{0}")]
    Failed(String),
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A component of the process (ingest, Flight, a lifecycle job, …) failed or did not stop.
    #[error(transparent)]
    Component(#[from] vintagelake_runtime::shutdown::ComponentError),
    #[error("broker: {0}")]
    Broker(#[source] vintagelake_kafka::broker::BrokerError),
    #[error("storage: {0}")]
    Storage(#[from] vintagelake_storage::error::StorageError),
    #[error("ingest: {0}")]
    Ingest(#[from] vintagelake_ingest::error::IngestError),
    #[error("produce: {0}")]
    Produce(#[from] vintagelake_kafka::produce::ProduceError),
    #[error("`vintagelake {0}` is not available yet in this version of vintagelake")]
    NotAvailable(&'static str),
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn init_logging(log: &LogArgs) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|e| {
        eprintln!("warning: bad log filter {:?} ({e}); using info", log.filter);
        EnvFilter::new("info")
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the chosen subcommand. `matches` tells where each setting came from (flag, env, default).
pub async fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<ExitCode, Error> {
    let sub = matches.subcommand().map(|(_, m)| m).expect("clap requires a subcommand");
    match cli.command {
        Command::Serve { serve: args } => serve::run(args.resolve(sub)?, None).await,
        Command::Demo { serve: args, demo } => serve::run(args.resolve(sub)?, Some(demo)).await,
        Command::Ingest { common, ingest: config } => ingest::run(common.resolve(sub)?, config).await,
        Command::Compact { common, compactor, once } => compact::run(common.resolve(sub)?, compactor, once).await,
        Command::Tier { common, tierer, once, dry_run } => tier::run(common.resolve(sub)?, tierer, once, dry_run).await,
        Command::Query { common, query: config } => query::run(common.resolve(sub)?, config).await,
        Command::Produce(args) => produce::run(args).await,
        Command::Get(args) => get::run(args).await,
        Command::Sql(args) => sql::run(args).await,
        Command::Admin { command } => admin::run(command, sub).await,
        Command::Bench { command } => bench::run(command).await,
    }
}

/// Opens the warehouse the shared settings describe (Iceberg: the only backend built so far).
pub async fn open_store(
    common: &CommonConfig,
) -> Result<std::sync::Arc<vintagelake_storage::store::IcebergStore>, Error> {
    use crate::config::StorageType;
    use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
    use vintagelake_storage::io::TierSpec;
    match common.storage_type {
        StorageType::Iceberg => {}
        StorageType::Parquet => {
            return Err(Error::Usage(
                "STORAGE_TYPE=parquet (V1) serves `ingest`; this command needs the Iceberg tables: \
                 run `vintagelake admin migrate --from parquet --to iceberg`, then use STORAGE_TYPE=iceberg \
                 (docs/storage-v1.md)"
                    .into(),
            ));
        }
        StorageType::Memory => {
            return Err(Error::Usage(format!(
                "STORAGE_TYPE={} is not available yet; use iceberg",
                common.storage_type
            )));
        }
    }
    let tiers = common.tiers.iter().map(TierSpec::from_config).collect::<Result<Vec<_>, _>>()?;
    let mut config = WarehouseConfig::new(&common.data_dir).with_tiers(tiers);
    if let Some(url) = &common.catalog_url {
        config = config.with_catalog_url(url);
    }
    if let Some(encryption) = common.encryption().map_err(Error::Usage)? {
        config = config.with_encryption(encryption);
    }
    let wh = Warehouse::open(config).await?;
    Ok(std::sync::Arc::new(
        vintagelake_storage::store::IcebergStore::new(wh).with_concurrency(common.max_concurrent_operations as usize),
    ))
}

/// Where a V1 (Parquet) store lives: `<DATA_DIR>/parquet`.
pub fn v1_root(common: &CommonConfig) -> std::path::PathBuf {
    common.data_dir.join("parquet")
}

/// Where ingest commits: the Iceberg tables, or the V1 store with STORAGE_TYPE=parquet.
pub async fn open_ingest_target(
    common: &CommonConfig,
) -> Result<std::sync::Arc<dyn vintagelake_storage::store::IngestTarget>, Error> {
    use crate::config::StorageType;
    match common.storage_type {
        StorageType::Parquet if common.encryption().map_err(Error::Usage)?.is_some() => Err(Error::Usage(
            "ENCRYPTION_KEYS_FILE: encryption at rest covers the Iceberg tables; STORAGE_TYPE=parquet (V1) \
             would write plaintext files (migrate to iceberg, or unset the keys)"
                .into(),
        )),
        StorageType::Parquet => Ok(std::sync::Arc::new(
            vintagelake_v1::ParquetStore::open(v1_root(common))
                .await?
                .with_concurrency(common.max_concurrent_operations as usize),
        )),
        _ => Ok(open_store(common).await?),
    }
}

/// The HTTP side of a daemon: readiness, shutdown on SIGTERM/SIGINT, /health, /ready, /metrics
/// (the `http` component).
pub struct Observed {
    pub readiness: std::sync::Arc<vintagelake_runtime::health::Readiness>,
    /// Cancelled by SIGTERM or SIGINT.
    pub signal: tokio_util::sync::CancellationToken,
    pub components: Components,
    /// Where the Flight service goes once built, for the web console on the HTTP port.
    pub console: crate::console::Slot,
}

/// How long a component may take to stop once told to (ingest's own `SHUTDOWN_TIMEOUT` bounds
/// its flush within this).
pub const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

pub async fn start_http(
    common: &CommonConfig,
    catalogues: &[&[vintagelake_runtime::metrics::MetricDoc]],
) -> Result<Observed, Error> {
    let metrics = common.metrics_enabled.then(crate::observe::install_metrics).flatten();
    if metrics.is_some() {
        vintagelake_runtime::metrics::register(vintagelake_storage::metrics::CATALOGUE);
        vintagelake_storage::metrics::register_commit_counters();
        for c in catalogues {
            vintagelake_runtime::metrics::register(c);
        }
    }
    let readiness = std::sync::Arc::new(vintagelake_runtime::health::Readiness::new());
    let signal = tokio_util::sync::CancellationToken::new();
    crate::observe::cancel_on_signals(signal.clone());
    let stop_http = tokio_util::sync::CancellationToken::new();
    let console = crate::console::Slot::default();
    let routes = crate::console::routes(console.clone());
    let http = crate::observe::serve_http(common.http_addr(), readiness.clone(), metrics, routes, stop_http.clone())
        .await
        .map_err(|e| Error::Bind { what: "HTTP endpoints", addr: common.http_addr().to_string(), source: e })?;
    let mut components = Components::new();
    // Registered first, so it stops last: /ready and /metrics answer while the rest drains.
    components.adopt("http", stop_http, tokio::spawn(async move { http.await.map_err(|e| e.to_string()) }));
    Ok(Observed { readiness, signal, components, console })
}

/// What every daemon command sets up first: metrics, the store, readiness, shutdown on
/// SIGTERM/SIGINT, the HTTP endpoints, and the catalog readiness check (both registered
/// components; the command registers its own and calls `components.run_until(&signal, …)`).
pub struct DaemonBase {
    pub store: std::sync::Arc<vintagelake_storage::store::IcebergStore>,
    pub readiness: std::sync::Arc<vintagelake_runtime::health::Readiness>,
    /// Cancelled by SIGTERM or SIGINT.
    pub signal: tokio_util::sync::CancellationToken,
    pub components: Components,
    pub console: crate::console::Slot,
}

pub async fn start_daemon(
    common: &CommonConfig,
    catalogues: &[&[vintagelake_runtime::metrics::MetricDoc]],
) -> Result<DaemonBase, Error> {
    let store = open_store(common).await?;
    let Observed { readiness, signal, mut components, console } = start_http(common, catalogues).await?;
    let (wh, ready, interval) = (store.warehouse().clone(), readiness.clone(), common.health_check_interval);
    components.start("catalog check", move |stop| async move {
        vintagelake_runtime::health::watch(ready, "catalog", interval, stop, move || {
            let wh = wh.clone();
            async move {
                match wh.metadata_location(vintagelake_storage::catalog::TableKind::DataPoints).await {
                    Ok(_) => Ok("catalog answered".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        Ok::<(), String>(())
    });
    Ok(DaemonBase { store, readiness, signal, components, console })
}

/// The Flight service as `query` and `serve` set it up: credentials and TLS material are read
/// (and fail) before anything starts; the service is built once the store is open.
pub struct FlightSetup {
    auth: std::sync::Arc<vintagelake_query::auth::Auth>,
    /// Where the tokens come from, read again on SIGHUP or when the tokens file changes.
    query_config: vintagelake_query::QueryConfig,
    grants: vintagelake_query::grants::Grants,
    /// The first token, for clients this process runs itself (the demo).
    pub first_token: Option<String>,
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub addr: std::net::SocketAddr,
    check_every: std::time::Duration,
    chunk_rows: usize,
    max_streams: usize,
    hot_bytes: usize,
}

impl FlightSetup {
    pub fn load(common: &CommonConfig, config: &vintagelake_query::QueryConfig) -> Result<Self, Error> {
        let vintagelake_query::config::Credentials { tokens, users } = config.credentials().map_err(Error::Usage)?;
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| Error::Read { what: p.display().to_string(), source })
        };
        let tls = match (&config.flight_tls_cert, &config.flight_tls_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        if tokens.is_empty() && users.is_empty() {
            if !config.flight_host.is_loopback() && !config.allow_anonymous {
                return Err(Error::Usage(format!(
                    "FLIGHT_HOST {} is reachable from other machines and no FLIGHT_TOKENS or FLIGHT_USERS are \
                     configured: anyone could read every series. Configure tokens or users, listen on 127.0.0.1, or \
                     pass --allow-anonymous (ALLOW_ANONYMOUS=true) to serve without authentication on purpose",
                    config.flight_host
                )));
            }
            if config.flight_host.is_loopback() {
                tracing::info!(host = %config.flight_host, "no FLIGHT_TOKENS or FLIGHT_USERS: Flight serves this machine only, without authentication");
            } else {
                tracing::warn!(
                    host = %config.flight_host,
                    "no FLIGHT_TOKENS or FLIGHT_USERS (--allow-anonymous): the Flight service accepts every client that reaches it"
                );
            }
        }
        if let Some(grants) = &common.grants {
            let known: Vec<String> = tokens
                .iter()
                .map(|t| vintagelake_query::auth::named_token(t).0)
                .chain(users.iter().map(|(u, _)| u.clone()))
                .collect();
            for name in grants.keys().filter(|n| !known.contains(n) && n.as_str() != vintagelake_query::auth::ANONYMOUS)
            {
                tracing::warn!(principal = %name, "security.grants names no configured token or user");
            }
        }
        Ok(Self {
            first_token: tokens.first().map(|t| vintagelake_query::auth::named_token(t).1),
            grants: vintagelake_query::grants::Grants::new(common.grants.clone()),
            auth: std::sync::Arc::new(
                vintagelake_query::auth::Auth::new(tokens, users)
                    .with_issued_tokens(config.flight_token_ttl, config.flight_max_issued_tokens as usize),
            ),
            query_config: config.clone(),
            tls,
            addr: std::net::SocketAddr::new(config.flight_host, common.flight_server_port),
            check_every: config.table_check_interval,
            chunk_rows: config.stream_chunk_rows as usize,
            max_streams: config.max_streams as usize,
            hot_bytes: (config.hot_cache_mb as usize).saturating_mul(1 << 20),
        })
    }

    /// Binds the service over the Iceberg tables (their warm read path) on its address; the
    /// handle ends when `stop` is cancelled.
    pub async fn serve(
        &self,
        common: &CommonConfig,
        store: std::sync::Arc<vintagelake_storage::store::IcebergStore>,
        console: &crate::console::Slot,
        stop: tokio_util::sync::CancellationToken,
    ) -> Result<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>, Error> {
        let reader =
            vintagelake_storage::TableReader::new(store.warehouse().clone(), store.concurrency(), self.check_every)
                .with_hot_bytes(self.hot_bytes);
        self.serve_source(common, std::sync::Arc::new(reader), console, stop).await
    }

    /// Binds the service over any store the query service reads (Iceberg or V1).
    pub async fn serve_source(
        &self,
        common: &CommonConfig,
        source: std::sync::Arc<dyn vintagelake_storage::ViewSource>,
        console: &crate::console::Slot,
        stop: tokio_util::sync::CancellationToken,
    ) -> Result<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>, Error> {
        let limits = vintagelake_query::Limits {
            cache_bytes: (common.cache_size_mb as usize).saturating_mul(1 << 20),
            batch_size: common.batch_size as usize,
            chunk_rows: self.chunk_rows,
            max_streams: self.max_streams,
        };
        // The hot cache holds only Iceberg current-partition files.
        let hot = if source.backend() == "iceberg" { self.hot_bytes } else { 0 };
        tracing::info!(
            backend = source.backend(),
            memory_bound_mib = limits.memory_bound(hot) >> 20,
            "the Flight service answers from this backend; its memory is bounded by its caches and streams"
        );
        let service = vintagelake_query::VintageFlightService::new(
            source,
            vintagelake_runtime::audit::AuditLog::in_dir(&common.data_dir),
            self.auth.clone(),
            limits,
        )
        .with_grants(self.grants.clone())
        .with_sql(vintagelake_sql::SqlLimits {
            memory_bytes: (self.query_config.sql_memory_limit_mb as usize).saturating_mul(1 << 20),
            timeout: self.query_config.sql_timeout,
            chunk_rows: self.chunk_rows,
            batch_size: common.batch_size as usize,
        })
        .with_access_audit(vintagelake_runtime::audit::AuditLog::in_dir(&common.data_dir));
        if self.auth.enabled() {
            tokio::spawn(reload_tokens(self.auth.clone(), self.query_config.clone(), stop.clone()));
        }
        let service = std::sync::Arc::new(service);
        // The console on the HTTP port answers through this same service.
        crate::console::attach(console, service.clone(), common.http_host, self.query_config.allow_anonymous);
        vintagelake_query::serve(self.addr, service, self.tls.clone(), stop).await.map_err(Error::Usage)
    }
}

/// Reads the configured tokens again on SIGHUP, and when `FLIGHT_TOKENS_FILE` changes (checked
/// every 2 s): tokens removed from the file are refused from the next request on, without a
/// restart. A file that cannot be read keeps the tokens in effect, loudly.
async fn reload_tokens(
    auth: std::sync::Arc<vintagelake_query::auth::Auth>,
    config: vintagelake_query::QueryConfig,
    stop: tokio_util::sync::CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let modified = |c: &vintagelake_query::QueryConfig| {
        c.flight_tokens_file.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    };
    let mut seen = modified(&config);
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: tokens reload only when the tokens file changes");
            None
        }
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        let why = tokio::select! {
            _ = stop.cancelled() => return,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            _ = tick.tick() => {
                let now = modified(&config);
                if now == seen { continue; }
                seen = now;
                "the tokens file changed"
            }
        };
        match config.credentials() {
            Ok(c) => {
                let n = auth.reload_tokens(c.tokens);
                tracing::info!(tokens = n, reason = why, "Flight tokens reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, reason = why, "could not reload the Flight tokens; the ones in effect stay")
            }
        }
    }
}
