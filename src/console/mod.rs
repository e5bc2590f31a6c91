//! The web console and its HTTP JSON API, served on a daemon's HTTP port next to `/health`,
//! `/ready` and `/metrics` (docs/console.md).
//!
//! The API is a gateway to the Flight service of the same process: every data request is the
//! Flight RPC a Flight client would make (the same ticket, authentication, grants, access audit
//! and metrics), its answer re-encoded as JSON, CSV or Parquet. The page itself is static
//! (`assets/`, embedded in the binary) and draws only what these APIs and `/ready` and `/metrics`
//! answer.

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int32Type, Int64Type, SchemaRef, UInt32Type, UInt64Type};
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{Action, Criteria, Ticket};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{StreamExt, TryStreamExt};
use vintagelake_query::VintageFlightService;
use vintagelake_schemas::Date;

/// The Flight service the console answers from, set once the process has built it (a daemon
/// without one, e.g. `ingest`, serves the page but answers its data API with 503).
pub type Slot = Arc<OnceLock<Flight>>;

/// The Flight service behind the console, and why it may not serve data here.
#[derive(Debug)]
pub struct Flight {
    service: Arc<VintageFlightService>,
    /// The HTTP port is reachable from other machines, Flight has no authentication and nobody
    /// said `--allow-anonymous`: the API serves no data there (the page says why).
    refuse_anonymous: Option<String>,
}

/// Gives the console its Flight service (`http_host`: where the HTTP port listens).
pub fn attach(slot: &Slot, service: Arc<VintageFlightService>, http_host: std::net::IpAddr, allow_anonymous: bool) {
    let refuse_anonymous = (!http_host.is_loopback() && !allow_anonymous && !service.auth_enabled()).then(|| {
        format!(
            "HTTP_HOST {http_host} is reachable from other machines: the console serves data there only with \
             FLIGHT_TOKENS/FLIGHT_USERS configured or --allow-anonymous"
        )
    });
    let _ = slot.set(Flight { service, refuse_anonymous });
}

/// Series a search answers at most (the page says when there are more).
const SEARCH_LIMIT: usize = 500;

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

#[derive(Clone)]
struct Console {
    flight: Slot,
}

/// The console's routes: the page, its assets and `/api/v1/…`.
pub fn routes(flight: Slot) -> Router {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }))
        .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }))
        .route("/api/v1/info", get(info))
        .route("/api/v1/login", post(login))
        .route("/api/v1/series", get(series))
        .route("/api/v1/get", post(answer))
        .route("/api/v1/actions/{kind}", post(action))
        .with_state(Console { flight })
}

/// The page's own files only: no inline script, no other origin, no framing by other sites.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

/// An API error: `{"error": "...", "code": "..."}` with the HTTP status of the Flight status.
struct ApiError(StatusCode, String, &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1, "code": self.2 });
        (self.0, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let (status, code) = match s.code() {
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
            Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "unimplemented"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError(status, s.message().to_owned(), code)
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into(), "invalid_argument")
}

impl Console {
    /// The Flight service, when this process has one and may serve data here.
    fn flight(&self) -> Result<Arc<VintageFlightService>, ApiError> {
        let flight = self.flight.get().ok_or_else(|| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "this process serves no Flight service: the console's data comes from `serve` or `query`".into(),
                "unavailable",
            )
        })?;
        if let Some(why) = &flight.refuse_anonymous {
            return Err(ApiError(StatusCode::FORBIDDEN, why.clone(), "permission_denied"));
        }
        Ok(flight.service.clone())
    }
}

/// A Flight request carrying the HTTP request's `Authorization` header.
fn request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Ok(value) = value.parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The query string as pairs (`application/x-www-form-urlencoded`, decoded).
fn params(query: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json(value: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// `GET /api/v1/info`: whether the console must log in first, and whether data is served here.
async fn info(State(c): State<Console>) -> Response {
    let flight = c.flight.get();
    json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "flight": flight.is_some(),
        "auth_required": flight.is_some_and(|f| f.service.auth_enabled()),
        "refused": flight.and_then(|f| f.refuse_anonymous.clone()),
    }))
}

/// `POST /api/v1/login`: `{"user": "...", "password": "..."}` (the Flight handshake's basic
/// credentials) or `{"token": "..."}` (a configured token, checked) → `{"token": "..."}`, the
/// bearer token of the following requests.
async fn login(State(c): State<Console>, body: Bytes) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        user: Option<String>,
        password: Option<String>,
        token: Option<String>,
    }
    let flight = c.flight()?;
    let login: Login = serde_json::from_slice(&body).map_err(|e| bad_request(format!("login body: {e}")))?;
    let header = match login {
        Login { token: Some(t), user: None, password: None } => format!("Bearer {t}"),
        Login { user: Some(u), password: Some(p), token: None } => {
            use base64::Engine;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        }
        _ => return Err(bad_request("login body: give user and password, or token")),
    };
    let value = header.parse().map_err(|_| bad_request("credentials must be ASCII"))?;
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("authorization", value);
    let token = flight.login(&metadata)?;
    Ok(json(serde_json::json!({ "token": token })))
}

/// `GET /api/v1/series?q=TEXT`: the series whose id or title contains TEXT (case-insensitive;
/// all without `q`), with their metadata: Flight `list_flights` with TEXT as the criteria.
async fn series(State(c): State<Console>, headers: HeaderMap, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let flight = c.flight()?;
    let params = params(q);
    let text = param(&params, "q").unwrap_or("").trim().to_owned();
    let criteria = Criteria { expression: text.into_bytes().into() };
    let infos = flight.list_flights(request(&headers, criteria)).await?.into_inner();
    let infos: Vec<_> = infos.try_collect().await?;
    let total = infos.len();
    let series: Vec<serde_json::Value> =
        infos.iter().take(SEARCH_LIMIT).filter_map(|i| serde_json::from_slice(&i.app_metadata).ok()).collect();
    Ok(json(serde_json::json!({ "series": series, "total": total, "limit": SEARCH_LIMIT })))
}

/// `POST /api/v1/get?format=json|csv|parquet[&layout=wide]` with a ticket as the body: the
/// Flight `do_get` of that ticket. `layout=wide` pivots a `matrix` answer as `get --matrix` does.
async fn answer(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    ticket: Bytes,
) -> Result<Response, ApiError> {
    let flight = c.flight()?;
    let params = params(q);
    let format = param(&params, "format").unwrap_or("json").to_owned();
    if !matches!(format.as_str(), "json" | "csv" | "parquet") {
        return Err(bad_request(format!("format {format:?}: json, csv or parquet")));
    }
    let wide = match param(&params, "layout") {
        None | Some("long") => false,
        Some("wide") => true,
        Some(other) => return Err(bad_request(format!("layout {other:?}: long or wide"))),
    };
    // Authentication and the ticket's checks first, exactly as for a Flight client.
    let stream = flight.do_get(request(&headers, Ticket { ticket: ticket.clone() })).await?.into_inner();
    let parsed = vintagelake_query::ticket::parse_request(&ticket).map_err(bad_request)?;
    if wide && parsed.name() != "matrix" {
        return Err(bad_request("layout=wide is for the matrix view"));
    }
    let decoded = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
        stream.map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s))),
    )
    .map_err(|e| match e {
        arrow_flight::error::FlightError::Tonic(s) => ApiError::from(*s),
        other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string(), "internal"),
    });
    let batches = collect_bounded(decoded, MAX_ANSWER_ROWS).await?;
    let (schema, batches) = if wide {
        let pivoted = crate::commands::get::wide_matrix(&batches, format == "parquet")
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("matrix: {e}"), "internal"))?;
        (pivoted.schema(), vec![pivoted])
    } else {
        (parsed.schema(), batches)
    };
    if format == "json" {
        return Ok(json(to_json(&schema, &batches)));
    }
    let mut body = Vec::new();
    crate::commands::get::write_answer(&format, schema, &batches, &mut body)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e, "internal"))?;
    let content_type = if format == "csv" { "text/csv; charset=utf-8" } else { "application/vnd.apache.parquet" };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `POST /api/v1/actions/{kind}` with the action's body: the Flight `do_action` of that kind
/// (`health`, `list_vintages`, `audit`, `explain`, `refresh`); its JSON answer as it is.
async fn action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let flight = c.flight()?;
    let results = flight.do_action(request(&headers, Action { r#type: kind, body })).await?.into_inner();
    let first = results.into_future().await.0.transpose()?;
    let body = first.map(|r| r.body).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Rows an answer of the HTTP API may have: it is built whole in memory before it is sent
/// (JSON, CSV or Parquet), unlike a Flight stream. Larger answers are refused; Flight streams them.
pub const MAX_ANSWER_ROWS: usize = 2_000_000;

/// The batches of a stream, refused once they pass `max` rows (nothing more is read then).
async fn collect_bounded(
    stream: impl futures::Stream<Item = Result<RecordBatch, ApiError>>,
    max: usize,
) -> Result<Vec<RecordBatch>, ApiError> {
    let mut stream = std::pin::pin!(stream);
    let (mut batches, mut rows) = (Vec::new(), 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        if rows > max {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "the answer has more than {max} rows, more than the HTTP API builds in memory: narrow the \
                     ticket (series, start/end) or read it over Arrow Flight (`vintagelake get`), which streams it"
                ),
                "too_large",
            ));
        }
        batches.push(batch);
    }
    Ok(batches)
}

/// An answer as columns: `{"columns": [{"name", "type"}], "rows": N, "data": {name: [values]}}`;
/// dates as `YYYY-MM-DD`, a missing or NaN value as null.
fn to_json(schema: &SchemaRef, batches: &[RecordBatch]) -> serde_json::Value {
    use serde_json::Value;
    let mut data = serde_json::Map::new();
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        columns.push(serde_json::json!({ "name": field.name(), "type": field.data_type().to_string() }));
        let mut values = Vec::new();
        for b in batches {
            let a = b.column(i);
            let cell = |row: usize| -> Value {
                if a.is_null(row) {
                    return Value::Null;
                }
                match a.data_type() {
                    DataType::Utf8 => Value::from(a.as_string::<i32>().value(row)),
                    DataType::Date32 => {
                        Value::from(Date::from_days_since_epoch(a.as_primitive::<Date32Type>().value(row)).to_string())
                    }
                    DataType::Float64 => serde_json::Number::from_f64(a.as_primitive::<Float64Type>().value(row))
                        .map_or(Value::Null, Value::Number),
                    DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(row)),
                    DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(row)),
                    DataType::UInt32 => Value::from(a.as_primitive::<UInt32Type>().value(row)),
                    DataType::UInt64 => Value::from(a.as_primitive::<UInt64Type>().value(row)),
                    DataType::Boolean => Value::from(a.as_boolean().value(row)),
                    _ => arrow::util::display::array_value_to_string(a, row).map_or(Value::Null, Value::from),
                }
            };
            values.extend((0..b.num_rows()).map(cell));
        }
        data.insert(field.name().clone(), Value::Array(values));
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    serde_json::json!({ "columns": columns, "rows": rows, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let p = params(Some("q=gdp%20real+x&format=csv&empty=&bad=%zz%4".into()));
        assert_eq!(param(&p, "q"), Some("gdp real x"));
        assert_eq!(param(&p, "format"), Some("csv"));
        assert_eq!(param(&p, "empty"), Some(""));
        assert_eq!(param(&p, "bad"), Some("%zz%4"), "malformed escapes are kept as they are");
        assert_eq!(param(&p, "missing"), None);
    }

    #[tokio::test]
    async fn answers_over_the_bound_are_refused() {
        use arrow::array::Int32Array;
        let batch = RecordBatch::try_from_iter([("n", Arc::new(Int32Array::from(vec![1, 2, 3])) as _)]).unwrap();
        let three = || futures::stream::iter((0..3).map(|_| Ok(batch.clone())));
        assert_eq!(collect_bounded(three(), 9).await.map(|b| b.len()).ok(), Some(3), "9 rows fit in 9");
        let refused = collect_bounded(three(), 8).await.expect_err("10 rows do not fit in 8");
        assert_eq!((refused.0, refused.2), (StatusCode::BAD_REQUEST, "too_large"));
        assert!(refused.1.contains("Arrow Flight"), "{}", refused.1);
    }

    #[test]
    fn answers_become_columns_with_nulls_for_missing_values() {
        use arrow::array::{Date32Array, Float64Array, StringArray};
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::Utf8, false),
            Field::new("date", DataType::Date32, false),
            Field::new("value", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["A", "A", "A"])),
                Arc::new(Date32Array::from(vec![0, 31, 59])),
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(f64::NAN)])),
            ],
        )
        .unwrap();
        let v = to_json(&schema, &[batch.clone(), batch]);
        assert_eq!(v["rows"], 6);
        assert_eq!(v["data"]["date"][1], "1970-02-01");
        assert_eq!(v["data"]["value"][0], 1.5);
        assert!(v["data"]["value"][1].is_null() && v["data"]["value"][2].is_null());
        assert_eq!(v["columns"][2]["name"], "value");
    }
}
