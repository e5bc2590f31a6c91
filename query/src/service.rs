//! The Arrow Flight service: tickets in, vintage views out.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket, flight_descriptor::DescriptorType,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};
use vintagelake_runtime::audit::AuditLog;
use vintagelake_schemas::EconomicSeries;
use vintagelake_storage::ViewSource;
use vintagelake_storage::scan::{SnapshotSelector, View, chunk, view_schema};

use crate::access::AccessAudit;
use crate::auth::Auth;
use crate::cache::ResultCache;
use crate::error::{QueryError, Result};
use crate::grants::{Access, Grants};
use crate::metrics as m;
use crate::ticket::{Request as Parsed, TicketV1, parse_request, parse_ticket};

/// Actions offered by `do_action`.
pub const ACTIONS: &[(&str, &str)] = &[
    ("health", "Service and table status: {\"status\":\"ok\",\"snapshot_id\":…}"),
    (
        "list_vintages",
        "Distinct revision dates of series, optionally within a real-time window. Body: {\"series\":\"GDPC1\"} or \
         {\"series\":[\"GDPC1\",\"UNRATE\"],\"realtime_start\":\"2020-01-01\",\"realtime_end\":\"2020-12-31\"}",
    ),
    ("explain", "How a ticket would be read: files in the table, files the scan plans. Body: a ticket"),
    ("refresh", "Drop cached results"),
    ("audit", "The lifecycle audit trail"),
];

/// The service state shared by every request.
#[derive(Debug)]
pub struct VintageFlightService {
    /// What answers: the Iceberg tables' warm read path, or a V1 store.
    source: Arc<dyn ViewSource>,
    /// The lifecycle audit trail of the data directory (the `audit` action).
    audit: AuditLog,
    auth: Arc<Auth>,
    cache: ResultCache,
    /// The series catalogue (latest metadata per id) and the series table's metadata location it
    /// was read at: `list_flights` answers from memory until the table moves.
    series: Mutex<Option<(String, Arc<Vec<EconomicSeries>>)>>,
    limits: Limits,
    /// One permit per streamed answer being served (`Limits::max_streams`).
    streams: Arc<tokio::sync::Semaphore>,
    /// What each principal may read and do.
    grants: Grants,
    /// Where every data access is recorded.
    access_audit: AccessAudit,
    /// Flight SQL over the same source (`None`: SQL commands are refused as unknown).
    sql: Option<Arc<crate::flightsql::SqlFlight>>,
}

/// What the service holds in memory for answers, each a setting of its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The result cache (`CACHE_SIZE_MB`), bytes.
    pub cache_bytes: usize,
    /// Rows per Flight batch (`BATCH_SIZE`).
    pub batch_size: usize,
    /// Stored rows a streamed answer reads and resolves at a time (`STREAM_CHUNK_ROWS`).
    pub chunk_rows: usize,
    /// Streamed answers served at once (`MAX_STREAMS`); a further one waits for one to end.
    pub max_streams: usize,
}

/// Resident memory of the service apart from what [`Limits`] and the hot cache hold: the
/// runtime, connections, catalog pool, table state and kept footers (an allowance, not a
/// measurement of each part: the 10^7-row streaming test peaks at 104 MiB in all).
pub const BASE_BYTES: usize = 96 << 20;
/// Memory one stored row of a streamed group takes at its peak, all copies together: the decoded
/// rows, their concatenation, the order, the resolved rows and the Flight encoding of a batch
/// (an allowance of about four copies of a ~100-byte row plus the order; not measured apart).
pub const STREAM_ROW_BYTES: usize = 512;

impl Limits {
    /// The bound on the service's resident memory these limits and a hot cache of `hot_bytes`
    /// set: the base, both caches, and every stream's groups in memory at once.
    pub fn memory_bound(&self, hot_bytes: usize) -> usize {
        let streams = self.max_streams.max(1) * vintagelake_storage::reader::PREFETCH_PARTS * self.chunk_rows;
        BASE_BYTES + self.cache_bytes + hot_bytes + streams.saturating_mul(STREAM_ROW_BYTES)
    }
}

/// Answers naming more series than this (or none: the whole table) are streamed in chunks rather
/// than resolved whole and cached.
pub const STREAM_ABOVE_SERIES: usize = 64;

impl VintageFlightService {
    pub fn new(source: Arc<dyn ViewSource>, audit: AuditLog, auth: Arc<Auth>, limits: Limits) -> Self {
        let limits = Limits {
            batch_size: limits.batch_size.max(1),
            chunk_rows: limits.chunk_rows.max(1),
            max_streams: limits.max_streams.max(1),
            ..limits
        };
        Self {
            source,
            audit,
            auth,
            cache: ResultCache::new(limits.cache_bytes),
            series: Mutex::new(None),
            streams: Arc::new(tokio::sync::Semaphore::new(limits.max_streams)),
            limits,
            grants: Grants::default(),
            access_audit: AccessAudit::off(),
            sql: None,
        }
    }

    /// Serves Flight SQL on the same port, over the same source, with `limits` per statement.
    pub fn with_sql(mut self, limits: vintagelake_sql::SqlLimits) -> Self {
        let engine = vintagelake_sql::SqlEngine::new(self.source.clone(), limits);
        self.sql = Some(Arc::new(crate::flightsql::SqlFlight::new(engine)));
        self
    }

    /// The Flight SQL side when `bytes` (a ticket, a command) is a Flight SQL message.
    fn sql_for(&self, bytes: &[u8]) -> Option<&crate::flightsql::SqlFlight> {
        self.sql.as_deref().filter(|_| crate::flightsql::is_command(bytes))
    }

    /// Authorizes `request` and attaches the caller for the Flight SQL side.
    fn sql_caller<T>(&self, rpc: &'static str, mut request: Request<T>) -> Result<Request<T>, Status> {
        let (principal, access) = self.authorize(rpc, &request)?;
        request.extensions_mut().insert(crate::flightsql::Caller {
            principal,
            access,
            audit: self.access_audit.clone(),
        });
        Ok(request)
    }

    /// Records every data access in the audit trail of `log` (a writer thread, batched).
    pub fn with_access_audit(mut self, log: AuditLog) -> Self {
        self.access_audit = AccessAudit::start(log);
        self
    }

    /// Per-principal grants (none: everyone reads everything, as without grants).
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// The handshake's check: basic credentials (or a bearer token) → a bearer token for
    /// the following requests (empty when the service has no authentication).
    pub fn login(&self, metadata: &tonic::metadata::MetadataMap) -> Result<String, Status> {
        self.auth.login(metadata).map_err(|d| {
            metrics::counter!(m::AUTH_FAILURES, "rpc" => "handshake").increment(1);
            QueryError::Unauthenticated(d.0).into_status()
        })
    }

    /// Whether requests must authenticate.
    pub fn auth_enabled(&self) -> bool {
        self.auth.enabled()
    }

    /// The request's principal and what it may read and do.
    fn authorize<T>(&self, rpc: &'static str, request: &Request<T>) -> Result<(String, Access), Status> {
        let principal = self.auth.check(request.metadata()).map_err(|d| {
            metrics::counter!(m::AUTH_FAILURES, "rpc" => rpc).increment(1);
            QueryError::Unauthenticated(d.0).into_status()
        })?;
        let access = self.grants.access(&principal);
        Ok((principal, access))
    }

    /// Runs a query (or takes it from the cache): the resolved rows (a shape's answer for a shape's
    /// ticket) and the snapshot they came from.
    pub async fn execute(&self, ticket: &[u8]) -> Result<(RecordBatch, Option<i64>)> {
        let request = parse_request(ticket).map_err(QueryError::BadTicket)?;
        self.execute_parsed(ticket, request).await
    }

    /// [`execute`](Self::execute) of a ticket already parsed into `request`.
    async fn execute_parsed(&self, ticket: &[u8], request: Parsed) -> Result<(RecordBatch, Option<i64>)> {
        let Parsed { query, shape } = request;
        let version = self.source.version(query.snapshot).await?;
        if let Some(v) = version
            && let Some(hit) = self.cache.get(&(v, canonical(ticket)))
        {
            metrics::counter!(m::CACHE_HITS).increment(1);
            return Ok((hit, version));
        }
        metrics::counter!(m::CACHE_MISSES).increment(1);
        let pinned = query.at_snapshot(version.map_or(SnapshotSelector::Current, SnapshotSelector::Id));
        let (batch, read) = self.source.answer(&pinned).await?;
        let batch = match &shape {
            Some(shape) => shape.apply(&batch)?,
            None => batch,
        };
        if let Some(v) = read {
            self.cache.put((v, canonical(ticket)), batch.clone());
        }
        Ok((batch, read))
    }

    /// A ticket's answer as a stream: from the cache when it is there; a wide answer (the whole
    /// table, many series) streamed in chunks of about `chunk_rows` stored rows, in bounded
    /// memory and not cached; a narrow one resolved whole and cached.
    async fn answer_stream(&self, ticket: &[u8], request: Parsed) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        if request.query.series.is_empty() || request.query.series.len() > STREAM_ABOVE_SERIES {
            let Parsed { query, shape } = request;
            let version = self.source.version(query.snapshot).await?;
            if let Some(v) = version
                && let Some(hit) = self.cache.get(&(v, canonical(ticket)))
            {
                metrics::counter!(m::CACHE_HITS).increment(1);
                return Ok(stream::iter([Ok(hit)]).boxed());
            }
            metrics::counter!(m::CACHE_MISSES).increment(1);
            // Held until the stream ends or is dropped: at most max_streams in memory at once.
            let permit = self.streams.clone().acquire_owned().await.map_err(|e| QueryError::Internal(e.to_string()))?;
            let pinned = query.at_snapshot(version.map_or(SnapshotSelector::Current, SnapshotSelector::Id));
            let (parts, _) = self.source.clone().answer_stream(pinned, self.limits.chunk_rows).await?;
            // Each part holds whole series, so a shape is answered part by part.
            return Ok(parts
                .map(move |part| {
                    let _held = &permit;
                    let part = part?;
                    Ok(match &shape {
                        Some(shape) => shape.apply(&part)?,
                        None => part,
                    })
                })
                .boxed());
        }
        let (batch, _) = self.execute_parsed(ticket, request).await?;
        Ok(stream::iter([Ok(batch)]).boxed())
    }

    /// Describes a ticket's answer without running it: exact counts when the answer is cached
    /// for the current snapshot, otherwise -1 (unknown, as Flight allows).
    async fn flight_info(&self, ticket: Vec<u8>, access: &Access) -> Result<FlightInfo> {
        let request = parse_request(&ticket).map_err(QueryError::BadTicket)?;
        let cached = match self.source.version(request.query.snapshot).await? {
            Some(s) => self.cache.get(&(s, canonical(&ticket))),
            None => Some(RecordBatch::new_empty(request.schema_with(&self.source.foreign_columns()))),
        };
        // A principal that reads part of the table gets no counts (they would tell what it cannot see).
        let cached = cached.filter(|_| access.everything());
        let (records, bytes) = cached.map_or((-1, -1), |b| (b.num_rows() as i64, b.get_array_memory_size() as i64));
        Ok(FlightInfo::new()
            .try_with_schema(&request.schema_with(&self.source.foreign_columns()))?
            .with_descriptor(FlightDescriptor::new_cmd(ticket.clone()))
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_total_records(records)
            .with_total_bytes(bytes)
            .with_ordered(true))
    }

    /// The series catalogue, read again only when the series table moved.
    async fn series_catalogue(&self) -> Result<Arc<Vec<EconomicSeries>>> {
        let location = self.source.series_version().await?;
        if let Some((at, series)) = self.series.lock().expect("series lock").as_ref()
            && *at == location
        {
            return Ok(series.clone());
        }
        let series = Arc::new(self.source.series_catalogue().await?);
        *self.series.lock().expect("series lock") = Some((location, series.clone()));
        Ok(series)
    }

    async fn action(&self, action: Action, access: &Access) -> Result<Vec<u8>> {
        let json = |v: serde_json::Value| v.to_string().into_bytes();
        if matches!(action.r#type.as_str(), "refresh" | "audit" | "explain") && !access.admin() {
            return Err(QueryError::PermissionDenied(format!("action {} needs an admin grant", action.r#type)));
        }
        match action.r#type.as_str() {
            "health" => {
                let version = self.source.version(SnapshotSelector::Current).await?;
                Ok(json(serde_json::json!({
                    "status": "ok",
                    "backend": self.source.backend(),
                    "snapshot_id": version,
                    "cache_entries": self.cache.len(),
                    "cache_bytes": self.cache.bytes(),
                })))
            }
            "list_vintages" => {
                // One series (a string) answers as before; a list answers per series.
                #[derive(serde::Deserialize)]
                #[serde(untagged)]
                enum Named {
                    One(String),
                    Many(Vec<String>),
                }
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Body {
                    series: Named,
                    realtime_start: Option<String>,
                    realtime_end: Option<String>,
                }
                let body: Body = serde_json::from_slice(&action.body)
                    .map_err(|e| QueryError::BadTicket(format!("list_vintages body: {e}")))?;
                let names = match &body.series {
                    Named::One(s) => vec![s.clone()],
                    Named::Many(v) => v.clone(),
                };
                // The same question as a `vintage_dates` ticket, checked the same way.
                let ticket = TicketV1 {
                    version: crate::ticket::TICKET_VERSION,
                    view: "vintage_dates".into(),
                    series: names.clone(),
                    realtime_start: body.realtime_start,
                    realtime_end: body.realtime_end,
                    ..Default::default()
                };
                let (rows, _) = self
                    .execute(&ticket.to_bytes())
                    .await
                    .map_err(|e| QueryError::BadTicket(format!("list_vintages: {e}")))?;
                let rows = access.filter(rows)?;
                let mut per_series: std::collections::BTreeMap<String, Vec<String>> =
                    names.iter().filter(|n| access.reads(n)).map(|n| (n.clone(), Vec::new())).collect();
                use arrow::array::AsArray;
                let ids = rows.column(0).as_string::<i32>();
                let dates = rows.column(1).as_primitive::<arrow::datatypes::Date32Type>();
                for i in 0..rows.num_rows() {
                    let day = vintagelake_schemas::Date::from_days_since_epoch(dates.value(i)).to_string();
                    per_series.entry(ids.value(i).to_owned()).or_default().push(day);
                }
                Ok(json(match body.series {
                    Named::One(s) => {
                        let vintages = per_series.remove(&s).unwrap_or_default();
                        serde_json::json!({ "series": s, "vintages": vintages })
                    }
                    Named::Many(_) => serde_json::json!({ "vintages": per_series }),
                }))
            }
            "explain" => {
                let query = parse_ticket(&action.body).map_err(QueryError::BadTicket)?;
                let plan = self.source.explain(&query).await?;
                Ok(serde_json::to_vec(&plan).expect("a plan serialises"))
            }
            "refresh" => {
                self.cache.clear();
                self.source.forget();
                *self.series.lock().expect("series lock") = None;
                Ok(json(serde_json::json!({ "refreshed": true })))
            }
            "audit" => {
                // Body (optional): {"action": "compact", "last": 100}.
                #[derive(serde::Deserialize, Default)]
                struct Filter {
                    action: Option<String>,
                    last: Option<usize>,
                }
                let filter: Filter = if action.body.is_empty() {
                    Filter::default()
                } else {
                    serde_json::from_slice(&action.body)
                        .map_err(|e| QueryError::BadTicket(format!("audit action body: {e}")))?
                };
                let log = self.audit.clone();
                let read = tokio::task::spawn_blocking(move || log.read())
                    .await
                    .map_err(|e| QueryError::Internal(format!("reading the audit trail: {e}")))?
                    .map_err(|e| QueryError::Internal(format!("reading the audit trail: {e}")))?;
                let mut entries: Vec<_> = read
                    .entries
                    .into_iter()
                    .filter(|e| filter.action.as_ref().is_none_or(|a| &e.action == a))
                    .collect();
                if let Some(n) = filter.last {
                    entries.drain(..entries.len().saturating_sub(n));
                }
                Ok(json(serde_json::json!({ "entries": entries, "skipped_lines": read.skipped })))
            }
            other => Err(QueryError::UnknownAction(other.to_owned())),
        }
    }
}

/// Canonical form of a ticket, so equivalent JSON shares cache entries.
fn canonical(ticket: &[u8]) -> String {
    serde_json::from_slice::<TicketV1>(ticket)
        .map(|t| String::from_utf8(t.to_bytes()).expect("utf-8"))
        .unwrap_or_default()
}

fn ticket_of(descriptor: &FlightDescriptor) -> Result<Vec<u8>> {
    match descriptor.r#type() {
        DescriptorType::Cmd => Ok(descriptor.cmd.to_vec()),
        // PATH ["series", "<id>"] = the latest values of one series.
        DescriptorType::Path => match descriptor.path.as_slice() {
            [kind, id] if kind == "series" => {
                let series = id.parse().map_err(|e| QueryError::BadTicket(format!("path: {e}")))?;
                Ok(TicketV1::for_series(&series, View::Latest).to_bytes())
            }
            _ => Err(QueryError::BadTicket("path descriptors are [\"series\", \"<id>\"]".into())),
        },
        DescriptorType::Unknown => Err(QueryError::BadTicket("descriptor has no type".into())),
    }
}

/// An answer as Flight data: every batch counted in the metrics and the access `record` (sent in
/// batches of at most `batch_size` rows, the schema first even for an empty answer); the record
/// ends with the stream (ok, an error, or cancelled when the client goes away).
pub(crate) fn audited_flight_data(
    schema: arrow::datatypes::SchemaRef,
    batches: BoxStream<'static, Result<RecordBatch, Status>>,
    record: Arc<crate::access::Access>,
    view: &str,
    batch_size: usize,
) -> Stream<FlightData> {
    let view = view.to_owned();
    let (sent, failed, finished) = (record.clone(), record.clone(), record);
    let batches: BoxStream<'static, arrow_flight::error::Result<RecordBatch>> = batches
        .map_ok(move |batch| {
            metrics::counter!(m::ROWS_STREAMED, "view" => view.clone()).increment(batch.num_rows() as u64);
            metrics::counter!(m::BYTES_STREAMED, "view" => view.clone())
                .increment(batch.get_array_memory_size() as u64);
            sent.sent(batch.num_rows(), batch.get_array_memory_size());
            stream::iter(chunk(&batch, batch_size).into_iter().map(Ok))
        })
        .map_err(move |status| {
            failed.failed(status.message());
            arrow_flight::error::FlightError::Tonic(Box::new(status))
        })
        .try_flatten()
        .chain(stream::poll_fn(move |_| {
            finished.finished();
            std::task::Poll::Ready(None)
        }))
        .boxed();
    let encoded = FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(|e| match e {
        arrow_flight::error::FlightError::Tonic(status) => *status,
        other => Status::internal(format!("encoding: {other}")),
    });
    Box::pin(encoded)
}

pub(crate) fn observe<T>(rpc: &'static str, view: &str, started: Instant, result: &Result<T, Status>) {
    let status = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(m::REQUESTS, "rpc" => rpc, "view" => view.to_owned(), "status" => status).increment(1);
    metrics::histogram!(m::REQUEST_DURATION, "rpc" => rpc, "view" => view.to_owned())
        .record(started.elapsed().as_secs_f64());
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FlightService for VintageFlightService {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let token = self.login(request.metadata())?;
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into_bytes().into() };
        let mut response = Response::new(Box::pin(stream::iter([Ok(reply)])) as Self::HandshakeStream);
        if !token.is_empty() {
            let value = format!("Bearer {token}").parse().map_err(|_| Status::internal("token is not ASCII"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn list_flights(&self, request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        let started = Instant::now();
        let (_, access) = self.authorize("list_flights", &request)?;
        let filter = String::from_utf8_lossy(&request.get_ref().expression).to_lowercase();
        let result = async {
            let series = self.series_catalogue().await?;
            let schema = view_schema();
            let mut infos = Vec::new();
            for s in series.iter().filter(|s| access.reads(s.id.as_str())) {
                if !filter.is_empty()
                    && !s.id.as_str().to_lowercase().contains(&filter)
                    && !s.title.to_lowercase().contains(&filter)
                {
                    continue;
                }
                let ticket = TicketV1::for_series(&s.id, View::Latest).to_bytes();
                let meta = serde_json::json!({
                    "id": s.id.as_str(), "title": s.title, "units": s.units, "frequency": s.frequency,
                    "seasonal_adjustment": s.seasonal_adjustment, "source_id": s.source_id,
                    "external_id": s.external_id, "is_active": s.is_active,
                    "notes": s.notes, "release": s.release,
                    "last_updated": s.last_updated.map(|t| t.to_string()),
                });
                infos.push(Ok(FlightInfo::new()
                    .try_with_schema(&schema)?
                    .with_descriptor(FlightDescriptor::new_cmd(ticket.clone()))
                    .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
                    .with_app_metadata(meta.to_string().into_bytes())));
            }
            Ok::<_, QueryError>(infos)
        }
        .await
        .map_err(QueryError::into_status);
        observe("list_flights", "", started, &result);
        Ok(Response::new(Box::pin(stream::iter(result?))))
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        if let Some(sql) = self.sql_for(&request.get_ref().cmd) {
            let started = Instant::now();
            let result = FlightService::get_flight_info(sql, self.sql_caller("get_flight_info", request)?).await;
            observe("get_flight_info", "sql", started, &result);
            return result;
        }
        let started = Instant::now();
        let (_, access) = self.authorize("get_flight_info", &request)?;
        let result = async {
            let ticket = ticket_of(request.get_ref())?;
            self.flight_info(ticket, &access).await
        }
        .await
        .map_err(QueryError::into_status);
        observe("get_flight_info", "", started, &result);
        result.map(Response::new)
    }

    async fn poll_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        if let Some(sql) = self.sql_for(&request.get_ref().cmd) {
            let info = FlightService::get_flight_info(sql, self.sql_caller("poll_flight_info", request)?).await?;
            return Ok(Response::new(PollInfo::new().with_info(info.into_inner())));
        }
        let (_, access) = self.authorize("poll_flight_info", &request)?;
        let info = self
            .flight_info(ticket_of(request.get_ref()).map_err(QueryError::into_status)?, &access)
            .await
            .map_err(QueryError::into_status)?;
        Ok(Response::new(PollInfo::new().with_info(info)))
    }

    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        if let Some(sql) = self.sql_for(&request.get_ref().cmd) {
            let info = FlightService::get_flight_info(sql, self.sql_caller("get_schema", request)?).await?;
            return Ok(Response::new(SchemaResult { schema: info.into_inner().schema }));
        }
        self.authorize("get_schema", &request)?;
        let ticket = ticket_of(request.get_ref()).map_err(QueryError::into_status)?;
        let parsed = parse_request(&ticket).map_err(|e| QueryError::BadTicket(e).into_status())?;
        let options = IpcWriteOptions::default();
        let schema: SchemaResult = SchemaAsIpc::new(&parsed.schema_with(&self.source.foreign_columns()), &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(Response::new(schema))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        if let Some(sql) = self.sql_for(&request.get_ref().ticket) {
            let request = self.sql_caller("do_get", request).inspect_err(|status| {
                self.access_audit.refused(
                    "unauthenticated",
                    "sql",
                    &format!("denied: {}", status.message()),
                    serde_json::Value::Null,
                )
            })?;
            return FlightService::do_get(sql, request).await;
        }
        let started = Instant::now();
        let ticket = request.get_ref().ticket.to_vec();
        // The ticket as recorded: its JSON when it is JSON, else its text.
        let what = serde_json::from_slice::<serde_json::Value>(&ticket)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&ticket).into_owned()));
        let (principal, access) = self.authorize("do_get", &request).inspect_err(|status| {
            self.access_audit.refused(
                "unauthenticated",
                "do_get",
                &format!("denied: {}", status.message()),
                what.clone(),
            )
        })?;
        let parsed = parse_request(&ticket).map_err(QueryError::BadTicket);
        let view = parsed.as_ref().map_or("invalid", Parsed::name).to_owned();
        let declared = parsed.as_ref().ok().cloned();
        let result = match parsed {
            Ok(request) => self.answer_stream(&ticket, request).await,
            Err(e) => Err(e),
        }
        .map_err(QueryError::into_status);
        // Declared once the answer is planned (the table state it reads is loaded by then), with
        // the columns other engines added to the table; every batch is fitted to it (a cached
        // answer from before a column was added gets it as null).
        let schema = declared.map_or_else(view_schema, |r| r.schema_with(&self.source.foreign_columns()));
        let fitted = schema.clone();
        observe("do_get", &view, started, &result);
        let result = result.inspect_err(|status| {
            self.access_audit.refused(&principal, "do_get", &format!("error: {}", status.message()), what.clone())
        })?;
        // Recorded when the answer ends (or fails, or the client goes away).
        let record = self.access_audit.begin(&principal, "do_get", what);
        let batches = result
            .and_then(move |batch| std::future::ready(access.filter(batch).map_err(QueryError::from)))
            .and_then(move |batch| {
                std::future::ready(if batch.schema() == fitted {
                    Ok(batch)
                } else {
                    vintagelake_storage::evolve::conform_to(&fitted, &batch).map_err(QueryError::Internal)
                })
            })
            .map_err(QueryError::into_status)
            .boxed();
        Ok(Response::new(audited_flight_data(schema, batches, record, &view, self.limits.batch_size)))
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        // A put carries its command in the first message: with SQL on, Flight SQL reads it (the
        // parameters of a prepared statement) and refuses any other put.
        if let Some(sql) = self.sql.as_deref() {
            return FlightService::do_put(sql, self.sql_caller("do_put", request)?).await;
        }
        self.authorize("do_put", &request)?;
        Err(QueryError::Unimplemented("do_put (data enters through Kafka)").into_status())
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.authorize("do_exchange", &request)?;
        Err(QueryError::Unimplemented("do_exchange").into_status())
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        if let Some(sql) = self.sql.as_deref()
            && crate::flightsql::ACTIONS.contains(&request.get_ref().r#type.as_str())
        {
            let started = Instant::now();
            let kind = request.get_ref().r#type.clone();
            let result = FlightService::do_action(sql, self.sql_caller("do_action", request)?).await;
            observe("do_action", &kind, started, &result);
            return result;
        }
        let started = Instant::now();
        let (principal, access) = self.authorize("do_action", &request)?;
        let action = request.into_inner();
        let kind = action.r#type.clone();
        // list_vintages answers about data: an access like do_get's.
        let record = (kind == "list_vintages").then(|| {
            let body = serde_json::from_slice::<serde_json::Value>(&action.body).unwrap_or(serde_json::Value::Null);
            self.access_audit.begin(&principal, "list_vintages", body)
        });
        let result = self.action(action, &access).await.map_err(QueryError::into_status);
        if let Some(record) = record {
            match &result {
                Ok(body) => record.sent(0, body.len()),
                Err(status) => record.failed(status.message()),
            }
            record.finished();
        }
        observe("do_action", &kind, started, &result);
        let body = result?;
        Ok(Response::new(Box::pin(stream::iter([Ok(arrow_flight::Result { body: body.into() })]))))
    }

    async fn list_actions(&self, request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        self.authorize("list_actions", &request)?;
        let mut actions: Vec<Result<ActionType, Status>> = ACTIONS
            .iter()
            .map(|(t, d)| Ok(ActionType { r#type: (*t).to_owned(), description: (*d).to_owned() }))
            .collect();
        if self.sql.is_some() {
            actions.extend(
                ["CreatePreparedStatement", "ClosePreparedStatement"]
                    .map(|t| Ok(ActionType { r#type: t.to_owned(), description: format!("Flight SQL {t}") })),
            );
        }
        Ok(Response::new(Box::pin(stream::iter(actions))))
    }
}
