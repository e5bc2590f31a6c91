//! `vintagelake get`: a Flight client for people and scripts.

use std::path::PathBuf;
use std::process::ExitCode;

use arrow::array::RecordBatch;
use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use vintagelake_query::ticket::TicketV1;

use super::Error;

/// Options of `vintagelake get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Series ids (none: every series).
    pub series: Vec<String>,
    /// Values as they were known on this date (an ALFRED vintage).
    #[arg(long, value_name = "DATE", conflicts_with_all = ["first_release", "all_revisions"])]
    pub as_of: Option<String>,
    /// The first published value of each date.
    #[arg(long, conflicts_with = "all_revisions")]
    pub first_release: bool,
    /// Every revision, with realtime_start / realtime_end.
    #[arg(long)]
    pub all_revisions: bool,
    /// First observation date.
    #[arg(long)]
    pub start: Option<String>,
    /// Last observation date.
    #[arg(long)]
    pub end: Option<String>,
    /// Read the table at this Iceberg snapshot.
    #[arg(long)]
    pub snapshot_id: Option<i64>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "parquet"])]
    pub format: String,
    /// Write to this file instead of standard output (required for parquet).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Flight endpoint (`https://` for TLS).
    #[arg(long, env = "FLIGHT_URL", default_value = "http://127.0.0.1:8080")]
    pub flight_url: String,
    /// Bearer token.
    #[arg(long, env = "FLIGHT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for `https://` endpoints.
    #[arg(long, env = "FLIGHT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// The ticket `vintagelake get` sends for these options.
pub fn ticket_of(args: &GetArgs) -> TicketV1 {
    args.ticket()
}

impl GetArgs {
    fn ticket(&self) -> TicketV1 {
        use vintagelake_storage::scan::ViewName;
        let view = if self.as_of.is_some() {
            ViewName::AsOf
        } else if self.first_release {
            ViewName::FirstRelease
        } else if self.all_revisions {
            ViewName::AllRevisions
        } else {
            ViewName::Latest
        };
        TicketV1 {
            version: vintagelake_query::ticket::TICKET_VERSION,
            view: view.as_str().into(),
            series: self.series.clone(),
            start: self.start.clone(),
            end: self.end.clone(),
            as_of: self.as_of.clone(),
            snapshot_id: self.snapshot_id,
            as_of_time: None,
        }
    }
}

/// Fetches the batches of a ticket.
pub async fn fetch(args: &GetArgs, ticket: Vec<u8>) -> Result<Vec<RecordBatch>, Error> {
    let flight_err = |e: String| Error::Failed(format!("Flight {}: {e}", args.flight_url));
    let mut endpoint = Channel::from_shared(args.flight_url.clone()).map_err(|e| flight_err(e.to_string()))?;
    if args.flight_url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &args.tls_ca {
            let pem = std::fs::read(ca).map_err(|source| Error::Read { what: ca.display().to_string(), source })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| flight_err(e.to_string()))?;
    }
    let channel = endpoint.connect().await.map_err(|e| flight_err(error_chain(&e)))?;
    let mut client = FlightClient::new(channel);
    if let Some(t) = &args.token {
        client.add_header("authorization", &format!("Bearer {t}")).map_err(|e| flight_err(e.to_string()))?;
    }
    let stream = client.do_get(Ticket::new(ticket)).await.map_err(|e| flight_err(e.to_string()))?;
    stream.try_collect().await.map_err(|e| flight_err(e.to_string()))
}

pub async fn run(args: GetArgs) -> Result<ExitCode, Error> {
    let ticket = args.ticket();
    vintagelake_query::ticket::parse_ticket(&ticket.to_bytes()).map_err(Error::Usage)?;
    let batches = fetch(&args, ticket.to_bytes()).await?;
    let schema = vintagelake_storage::scan::view_schema();
    let mut out: Box<dyn std::io::Write + Send> = match &args.out {
        Some(p) => {
            Box::new(std::fs::File::create(p).map_err(|source| Error::Read { what: p.display().to_string(), source })?)
        }
        None if args.format == "parquet" => return Err(Error::Usage("--format parquet needs --out FILE".into())),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let write_err = |e: String| Error::Failed(format!("writing output: {e}"));
    match args.format.as_str() {
        "csv" => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in &batches {
                w.write(b).map_err(|e| write_err(e.to_string()))?;
            }
        }
        "parquet" => {
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).map_err(|e| write_err(e.to_string()))?;
            for b in &batches {
                w.write(b).map_err(|e| write_err(e.to_string()))?;
            }
            w.close().map_err(|e| write_err(e.to_string()))?;
        }
        _ => {
            let table = arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| write_err(e.to_string()))?;
            writeln!(out, "{table}").map_err(|e| write_err(e.to_string()))?;
        }
    }
    out.flush().map_err(|e| write_err(e.to_string()))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    eprintln!("{rows} rows");
    Ok(ExitCode::SUCCESS)
}

/// An error and its causes on one line (transport errors hide the useful part in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
