//! Subcommands of the `vintagelake` binary.

mod admin;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vintagelake_compactor::CompactorConfig;
use vintagelake_ingest::IngestConfig;
use vintagelake_storage::config::ConfigError;
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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every daemon in one process (ingest, compactor, tierer, query): the laptop setup.
    Serve {
        #[command(flatten)]
        common: CommonConfig,
        #[command(flatten)]
        ingest: IngestConfig,
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
    },
    /// Move data between hot/warm/cold/archive tiers and delete what is past retention.
    Tier {
        #[command(flatten)]
        common: CommonConfig,
        #[command(flatten)]
        tierer: TiererConfig,
    },
    /// Serve Arrow Flight reads: latest, as of a vintage, first release, all revisions.
    Query {
        #[command(flatten)]
        common: CommonConfig,
    },
    /// Publish a CSV or JSON-lines file of revisions to Kafka.
    Produce {
        /// Kafka bootstrap servers.
        #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
        kafka_bootstrap_servers: Option<String>,
        /// Topic to publish to.
        #[arg(long, env = "DATAPOINTS_TOPIC", default_value = "econ.datapoints")]
        topic: String,
        /// CSV (header row) or JSON-lines file; `-` for standard input.
        file: std::path::PathBuf,
    },
    /// Fetch a series over Arrow Flight and print it as a table, CSV or Parquet.
    Get {
        /// Series id.
        series: String,
        /// Flight endpoint.
        #[arg(long, env = "FLIGHT_URL", default_value = "http://127.0.0.1:8080")]
        flight_url: String,
    },
    /// Administration: validate messages, inspect snapshots, files, tiers and the audit trail.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
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
        Command::Serve { common, .. } => {
            let _common = common.resolve(sub)?;
            Err(Error::NotAvailable("serve"))
        }
        Command::Ingest { common, .. } => {
            let _common = common.resolve(sub)?;
            Err(Error::NotAvailable("ingest"))
        }
        Command::Compact { common, .. } => {
            let _common = common.resolve(sub)?;
            Err(Error::NotAvailable("compact"))
        }
        Command::Tier { common, .. } => {
            let _common = common.resolve(sub)?;
            Err(Error::NotAvailable("tier"))
        }
        Command::Query { common } => {
            let _common = common.resolve(sub)?;
            Err(Error::NotAvailable("query"))
        }
        Command::Produce { .. } => Err(Error::NotAvailable("produce")),
        Command::Get { .. } => Err(Error::NotAvailable("get")),
        Command::Admin { command } => admin::run(command, sub).await,
    }
}
