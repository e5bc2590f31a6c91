//! `vintagelake admin …`: validation, configuration and (later) table administration.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use vintagelake_schemas::{ValidationError, decode_data_points, decode_series_json};

use super::Error;
use crate::config::CommonConfig;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Validate one Kafka message (JSON or Arrow IPC) from a file or standard input.
    /// Prints the normalised record, or the offending field and the reason (exit status 1).
    ValidateMessage {
        /// Which message type: data-point (revisions topic) or series (metadata topic).
        #[arg(long, default_value = "data-point", value_parser = ["data-point", "series"])]
        kind: String,
        /// File holding exactly one message; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Print the effective configuration (flags > environment > config file > defaults) as JSON.
    Config {
        #[command(flatten)]
        common: CommonConfig,
    },
    /// List table snapshots.
    Snapshots,
    /// List data files with their tier, partition and size.
    Files,
    /// Show bytes and files per storage tier.
    Tiers,
    /// Show the lifecycle audit trail.
    Audit,
    /// Expire old snapshots now.
    Expire,
    /// Check every data file and manifest for corruption.
    Verify,
    /// Copy a V1 (Parquet) store into Iceberg tables.
    Migrate,
}

pub async fn run(command: AdminCommand, matches: &clap::ArgMatches) -> Result<ExitCode, Error> {
    let sub = matches.subcommand().map(|(_, m)| m).expect("clap requires a subcommand");
    match command {
        AdminCommand::ValidateMessage { kind, file } => validate_message(&kind, file).await,
        AdminCommand::Config { common } => {
            let c = common.resolve(sub)?;
            let tiers: Vec<_> = c
                .tiers
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "name": t.name.as_str(),
                        "type": format!("{:?}", t.kind).to_lowercase(),
                        "path": t.path,
                        "endpoint": t.endpoint,
                        "bucket": t.bucket,
                        "max_age_days": t.max_age_days,
                    })
                })
                .collect();
            let json = serde_json::json!({
                "config_file": c.config_path(),
                "data_dir": c.data_dir,
                "storage_type": c.storage_type.as_str(),
                "catalog_url": c.effective_catalog_url(),
                "kafka_bootstrap_servers": c.kafka_bootstrap_servers,
                "flight_server_port": c.flight_server_port,
                "http_port": c.http_port,
                "cache_size_mb": c.cache_size_mb,
                "batch_size": c.batch_size,
                "max_concurrent_operations": c.max_concurrent_operations,
                "metrics_enabled": c.metrics_enabled,
                "health_check_interval": humantime::format_duration(c.health_check_interval).to_string(),
                "tiers": tiers,
                "retention": c.retention,
            });
            println!("{}", serde_json::to_string_pretty(&json).expect("json values serialise"));
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Snapshots => Err(Error::NotAvailable("admin snapshots")),
        AdminCommand::Files => Err(Error::NotAvailable("admin files")),
        AdminCommand::Tiers => Err(Error::NotAvailable("admin tiers")),
        AdminCommand::Audit => Err(Error::NotAvailable("admin audit")),
        AdminCommand::Expire => Err(Error::NotAvailable("admin expire")),
        AdminCommand::Verify => Err(Error::NotAvailable("admin verify")),
        AdminCommand::Migrate => Err(Error::NotAvailable("admin migrate")),
    }
}

async fn validate_message(kind: &str, file: Option<PathBuf>) -> Result<ExitCode, Error> {
    let (what, bytes) = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|source| Error::Read { what: path.display().to_string(), source })?;
            (path.display().to_string(), bytes)
        }
        None => {
            let bytes = tokio::task::spawn_blocking(|| {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf).map(|_| buf)
            })
            .await
            .expect("stdin reader does not panic")
            .map_err(|source| Error::Read { what: "standard input".into(), source })?;
            ("standard input".to_owned(), bytes)
        }
    };
    // A file ending in a newline (as editors write them) is still one message.
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let result: Result<serde_json::Value, ValidationError> = match kind {
        "series" => decode_series_json(trimmed).map(|m| serde_json::to_value(m).expect("serialisable")),
        _ => decode_data_points(trimmed).map(|rows| serde_json::to_value(rows).expect("serialisable")),
    };
    match result {
        Ok(value) => {
            println!("{}", serde_json::json!({ "valid": true, "records": value }));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({ "valid": false, "field": e.field(), "reason": e.reason().code(), "message": e.to_string() })
            );
            eprintln!("invalid message in {what}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
