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
#[derive(Debug, Default, clap::Args)]
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
    /// Every revision whose real-time period meets the window `A..B` (either side may be left
    /// open: `2020-01-01..`), periods clipped to it. With `--vintage-dates`: the window of dates.
    #[arg(long, value_name = "A..B")]
    pub window: Option<String>,
    /// The dates each series was published or revised on (within `--window` if given).
    #[arg(long)]
    pub vintage_dates: bool,
    /// The vintage matrix: one row per observation date, one column per vintage date (wide, as
    /// ALFRED and the Philadelphia Fed print it; `--long` for one row per cell).
    #[arg(long)]
    pub matrix: bool,
    /// `--matrix`: only these vintage dates (comma-separated).
    #[arg(long, value_name = "DATES", value_delimiter = ',', requires = "matrix")]
    pub vintages: Vec<String>,
    /// `--matrix`: one row per observation and vintage (series_id, date, vintage_date, value).
    #[arg(long, requires = "matrix")]
    pub long: bool,
    /// Per vintage, only the observations it added or changed (ALFRED's "new and revised").
    #[arg(long)]
    pub new_and_revised: bool,
    /// The value at each observation's N-th release (1 = the first release).
    #[arg(long, value_name = "N")]
    pub release: Option<u32>,
    /// The value K releases before the latest (0 = the latest).
    #[arg(long, value_name = "K", conflicts_with = "release")]
    pub latest_minus: Option<u32>,
    /// Values as known on vintage A and on vintage B, and the revision between them.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub revisions_between: Vec<String>,
    /// Per observation: releases, revisions, first and latest value, total and mean revision.
    #[arg(long)]
    pub revision_stats: bool,
    /// The real-time diagonal: each value as known this long after its date (`30d`, `1y`; may
    /// repeat, or comma-separated).
    #[arg(long, value_name = "DURATION", value_delimiter = ',')]
    pub horizon: Vec<String>,
    /// `--horizon`: count from `date` (default) or `first-release`.
    #[arg(long, value_name = "FROM", requires = "horizon")]
    pub horizon_from: Option<String>,
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
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "parquet"])]
    pub format: String,
    /// Write to this file instead of standard output (required for parquet).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub connect: FlightConnection,
}

/// Where the Flight service is and how to reach it (`get` and `sql`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct FlightConnection {
    /// Flight endpoint (`https://` for TLS). Default: the Flight service of a `serve` running on
    /// DATA_DIR, else http://127.0.0.1:8080.
    #[arg(long, env = "FLIGHT_URL")]
    pub flight_url: Option<String>,
    /// Data directory of a running `serve` to read from when no Flight endpoint is given.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Bearer token.
    #[arg(long, env = "FLIGHT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for `https://` endpoints.
    #[arg(long, env = "FLIGHT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// The ticket `vintagelake get` sends for these options (a usage error when they ask for more
/// than one question).
pub fn ticket_of(args: &GetArgs) -> Result<TicketV1, Error> {
    args.ticket().map_err(Error::Usage)
}

impl GetArgs {
    /// The shape these options ask for, if any; more than one is a usage error.
    fn shape_ticket(&self) -> Result<Option<TicketV1>, String> {
        let mut t = TicketV1::default();
        let mut chosen: Vec<&str> = Vec::new();
        if let Some(w) = &self.window {
            let (a, b) =
                w.split_once("..").ok_or_else(|| format!("--window {w:?}: give A..B (a side may be empty)"))?;
            let side = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            (t.realtime_start, t.realtime_end) = (side(a), side(b));
            t.view = "window".into();
        }
        if self.vintage_dates {
            chosen.push("--vintage-dates");
            t.view = "vintage_dates".into();
        } else if self.window.is_some() {
            chosen.push("--window");
        }
        if self.matrix {
            chosen.push("--matrix");
            t.view = "matrix".into();
            t.vintages = self.vintages.clone();
        }
        if self.new_and_revised {
            chosen.push("--new-and-revised");
            t.view = "new_and_revised".into();
        }
        if self.release.is_some() || self.latest_minus.is_some() {
            chosen.push(if self.release.is_some() { "--release" } else { "--latest-minus" });
            t.view = "release".into();
            (t.release, t.latest_minus) = (self.release, self.latest_minus);
        }
        if let [a, b] = self.revisions_between.as_slice() {
            chosen.push("--revisions-between");
            t.view = "revision_between".into();
            (t.vintage_a, t.vintage_b) = (Some(a.clone()), Some(b.clone()));
        }
        if self.revision_stats {
            chosen.push("--revision-stats");
            t.view = "revision_stats".into();
        }
        if !self.horizon.is_empty() {
            chosen.push("--horizon");
            t.view = "diagonal".into();
            for h in &self.horizon {
                let d =
                    humantime::parse_duration(h.trim()).map_err(|e| format!("--horizon {h:?}: {e} (e.g. 30d, 1y)"))?;
                let days = d.as_secs() / 86_400;
                if d.as_secs() % 86_400 != 0 || days > 36_500 {
                    return Err(format!("--horizon {h:?}: a whole number of days, at most 100 years"));
                }
                t.horizons.push(days as i32);
            }
            t.horizon_from = self.horizon_from.as_ref().map(|f| f.replace('-', "_"));
        }
        match chosen.as_slice() {
            [] => Ok(None),
            [_] if self.as_of.is_some() || self.first_release || self.all_revisions => {
                Err(format!("{} is a question of its own: drop --as-of/--first-release/--all-revisions", chosen[0]))
            }
            [_] => Ok(Some(t)),
            many => Err(format!("one question at a time: {}", many.join(", "))),
        }
    }

    fn ticket(&self) -> Result<TicketV1, String> {
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
        let base = TicketV1 {
            version: vintagelake_query::ticket::TICKET_VERSION,
            view: view.as_str().into(),
            series: self.series.clone(),
            start: self.start.clone(),
            end: self.end.clone(),
            as_of: self.as_of.clone(),
            snapshot_id: self.snapshot_id,
            ..Default::default()
        };
        Ok(match self.shape_ticket()? {
            Some(shape) => TicketV1 {
                version: base.version,
                series: base.series,
                start: base.start,
                end: base.end,
                snapshot_id: base.snapshot_id,
                ..shape
            },
            None => base,
        })
    }
}

impl FlightConnection {
    /// The Flight endpoint in effect: the given one, else that of a `serve` running on the data
    /// directory, else the default port on this machine.
    pub fn url(&self) -> String {
        self.flight_url
            .clone()
            .or_else(|| super::endpoints::Endpoints::running(&self.data_dir).map(|e| e.flight_url))
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned())
    }

    /// A connected channel (TLS with the configured CA for `https://`).
    pub async fn channel(&self) -> Result<Channel, Error> {
        let url = self.url();
        let flight_err = |e: String| Error::Failed(format!("Flight {url}: {e}"));
        let mut endpoint = Channel::from_shared(url.clone()).map_err(|e| flight_err(e.to_string()))?;
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &self.tls_ca {
                let pem = std::fs::read(ca).map_err(|source| Error::Read { what: ca.display().to_string(), source })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| flight_err(e.to_string()))?;
        }
        endpoint.connect().await.map_err(|e| flight_err(error_chain(&e)))
    }
}

/// Fetches the batches of a ticket.
pub async fn fetch(args: &GetArgs, ticket: Vec<u8>) -> Result<Vec<RecordBatch>, Error> {
    let url = args.connect.url();
    let flight_err = |e: String| Error::Failed(format!("Flight {url}: {e}"));
    let mut client = FlightClient::new(args.connect.channel().await?);
    if let Some(t) = &args.connect.token {
        client.add_header("authorization", &format!("Bearer {t}")).map_err(|e| flight_err(e.to_string()))?;
    }
    let stream = client.do_get(Ticket::new(ticket)).await.map_err(|e| flight_err(e.to_string()))?;
    stream.try_collect().await.map_err(|e| flight_err(e.to_string()))
}

pub async fn run(args: GetArgs) -> Result<ExitCode, Error> {
    let ticket = ticket_of(&args)?;
    let request = vintagelake_query::ticket::parse_request(&ticket.to_bytes()).map_err(Error::Usage)?;
    let mut batches = fetch(&args, ticket.to_bytes()).await?;
    let mut schema = request.schema();
    if args.matrix && !args.long {
        let wide =
            wide_matrix(&batches, args.format == "parquet").map_err(|e| Error::Failed(format!("matrix: {e}")))?;
        schema = wide.schema();
        batches = vec![wide];
    }
    print_answer(&args.format, args.out.as_deref(), schema, &batches)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes an answer in `format` to `out` (standard output when `None`; parquet needs a file),
/// then the row count to standard error: what `get` and `sql` print.
pub fn print_answer(
    format: &str,
    out: Option<&std::path::Path>,
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), Error> {
    let mut writer: Box<dyn std::io::Write + Send> = match out {
        Some(p) => {
            Box::new(std::fs::File::create(p).map_err(|source| Error::Read { what: p.display().to_string(), source })?)
        }
        None if format == "parquet" => return Err(Error::Usage("--format parquet needs --out FILE".into())),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    write_answer(format, schema, batches, &mut writer).map_err(|e| Error::Failed(format!("writing output: {e}")))?;
    writer.flush().map_err(|e| Error::Failed(format!("writing output: {e}")))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    eprintln!("{rows} rows");
    Ok(())
}

/// Writes an answer as `csv`, `json` (an array of objects), `parquet` or a text `table` (what
/// `get` prints; the console's downloads are the same bytes).
pub fn write_answer<W: std::io::Write + Send>(
    format: &str,
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    out: &mut W,
) -> Result<(), String> {
    match format {
        "csv" => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(out);
            for b in batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
        }
        "json" => {
            let mut w = arrow::json::ArrayWriter::new(out);
            for b in batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
            w.finish().map_err(|e| e.to_string())?;
            w.into_inner().write_all(b"\n").map_err(|e| e.to_string())?;
        }
        "parquet" => {
            let mut w = parquet::arrow::ArrowWriter::try_new(out, schema, None).map_err(|e| e.to_string())?;
            for b in batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
            w.close().map_err(|e| e.to_string())?;
        }
        _ => {
            let table = arrow::util::pretty::pretty_format_batches(batches).map_err(|e| e.to_string())?;
            writeln!(out, "{table}").map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The long matrix (`series_id, date, vintage_date, value, revision_date`) pivoted wide: one row
/// per series and observation date, one column per vintage date (`YYYY-MM-DD`), as ALFRED and
/// the Philadelphia Fed print it. A value published as missing is `.` (ALFRED's mark) and an
/// observation not yet published on a vintage is an empty cell; in Parquet (`numeric`) the cells
/// are Float64, missing = NaN and not yet published = null.
pub fn wide_matrix(batches: &[RecordBatch], numeric: bool) -> Result<RecordBatch, arrow::error::ArrowError> {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Float64Array, StringArray};
    use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Schema};
    use vintagelake_schemas::Date;

    // (series, date) → vintage → value (None: published missing).
    let mut cells: BTreeMap<(String, i32), BTreeMap<i32, Option<f64>>> = BTreeMap::new();
    let mut vintages = BTreeSet::new();
    for b in batches {
        let series = b.column(0).as_string::<i32>();
        let dates = b.column(1).as_primitive::<Date32Type>();
        let vintage = b.column(2).as_primitive::<Date32Type>();
        let values = b.column(3).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            vintages.insert(vintage.value(i));
            let value = values.is_valid(i).then(|| values.value(i));
            cells.entry((series.value(i).to_owned(), dates.value(i))).or_default().insert(vintage.value(i), value);
        }
    }
    let mut fields = vec![Field::new("series_id", DataType::Utf8, false), Field::new("date", DataType::Date32, false)];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(cells.keys().map(|k| k.0.as_str()))),
        Arc::new(Date32Array::from_iter_values(cells.keys().map(|k| k.1))),
    ];
    for v in &vintages {
        let name = Date::from_days_since_epoch(*v).to_string();
        let known = cells.values().map(|row| row.get(v).copied());
        if numeric {
            fields.push(Field::new(name, DataType::Float64, true));
            columns.push(Arc::new(known.map(|c| c.map(|v| v.unwrap_or(f64::NAN))).collect::<Float64Array>()));
        } else {
            fields.push(Field::new(name, DataType::Utf8, true));
            let text = known.map(|c| c.map(|v| v.map_or_else(|| ".".to_owned(), |v| v.to_string())));
            columns.push(Arc::new(text.collect::<StringArray>()));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// An error and its causes on one line (transport errors hide the useful part in the chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
