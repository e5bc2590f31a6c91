//! Query service settings (the port is the shared `FLIGHT_SERVER_PORT`).

use std::path::PathBuf;

/// Authentication and transport of the Flight service.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryConfig {
    /// Address the Flight service listens on. Only this machine by default; another address
    /// needs authentication (FLIGHT_TOKENS / FLIGHT_USERS) or --allow-anonymous.
    #[arg(long, env = "FLIGHT_HOST", default_value = "127.0.0.1")]
    pub flight_host: std::net::IpAddr,

    /// Serve Flight without authentication on a non-loopback FLIGHT_HOST (anyone who reaches the
    /// port reads every series).
    #[arg(long, env = "ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,

    /// Accepted bearer tokens, comma-separated. No tokens and no users: no authentication.
    #[arg(long, env = "FLIGHT_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub flight_tokens: Vec<String>,

    /// File with one accepted bearer token per line (added to FLIGHT_TOKENS).
    #[arg(long, env = "FLIGHT_TOKENS_FILE")]
    pub flight_tokens_file: Option<PathBuf>,

    /// `user:password` pairs for the basic → bearer handshake, comma-separated.
    #[arg(long, env = "FLIGHT_USERS", value_delimiter = ',', hide_env_values = true)]
    pub flight_users: Vec<String>,

    /// How long a token issued by a handshake (FLIGHT_USERS) is accepted.
    #[arg(long, env = "FLIGHT_TOKEN_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub flight_token_ttl: std::time::Duration,

    /// Most handshake tokens held at once; beyond it, the one that expires first is dropped.
    #[arg(long, env = "FLIGHT_MAX_ISSUED_TOKENS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub flight_max_issued_tokens: u64,

    /// PEM certificate chain: serve Flight over TLS (needs FLIGHT_TLS_KEY).
    #[arg(long, env = "FLIGHT_TLS_CERT", requires = "flight_tls_key")]
    pub flight_tls_cert: Option<PathBuf>,

    /// PEM private key for FLIGHT_TLS_CERT.
    #[arg(long, env = "FLIGHT_TLS_KEY", requires = "flight_tls_cert")]
    pub flight_tls_key: Option<PathBuf>,

    /// How stale the table state may be before the catalog row is read again (e.g. 100ms):
    /// 0 checks on every request (one indexed SQL read), so a commit is visible to the next read.
    #[arg(long, env = "TABLE_CHECK_INTERVAL", default_value = "0s", value_parser = humantime::parse_duration)]
    pub table_check_interval: std::time::Duration,

    /// Stored rows a streamed answer (the whole table, or more than 64 series) reads and resolves
    /// at a time: bounds the service's memory whatever the answer's size.
    #[arg(long, env = "STREAM_CHUNK_ROWS", default_value_t = 262_144, value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_chunk_rows: u64,

    /// Streamed answers (the whole table, or more than 64 series) served at once; a further one
    /// waits until one ends. With STREAM_CHUNK_ROWS it bounds the memory answers take.
    #[arg(long, env = "MAX_STREAMS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_streams: u64,

    /// Memory for decoded data files, in MiB: current-partition files (where every commit lands)
    /// up to all of it, small closed files up to half; reads of them touch no file. 0 disables it.
    #[arg(long, env = "HOT_CACHE_MB", default_value_t = 512)]
    pub hot_cache_mb: u64,

    /// Memory one SQL statement's operators (sorts, aggregates, joins) may hold, in MiB; a
    /// statement that needs more fails ("resources exhausted") and the service goes on.
    #[arg(long, env = "SQL_MEMORY_LIMIT_MB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub sql_memory_limit_mb: u64,

    /// How long one SQL statement may run (planning and streaming its answer); beyond it the
    /// statement fails with DEADLINE_EXCEEDED.
    #[arg(long, env = "SQL_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub sql_timeout: std::time::Duration,
}

/// Accepted bearer tokens and `(user, password)` pairs.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub tokens: Vec<String>,
    pub users: Vec<(String, String)>,
}

impl QueryConfig {
    /// Tokens from the flag/env and the file; users split at the first `:`.
    pub fn credentials(&self) -> Result<Credentials, String> {
        let mut tokens: Vec<String> =
            self.flight_tokens.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        if let Some(path) = &self.flight_tokens_file {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("FLIGHT_TOKENS_FILE {}: {e}", path.display()))?;
            tokens.extend(
                text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned),
            );
        }
        let users = self
            .flight_users
            .iter()
            .filter(|u| !u.trim().is_empty())
            .map(|u| {
                u.split_once(':')
                    .map(|(a, b)| (a.trim().to_owned(), b.to_owned()))
                    .ok_or_else(|| "FLIGHT_USERS: each entry must be user:password".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Credentials { tokens, users })
    }
}
