//! Flight SQL on the Flight service's port: statements, prepared statements with parameters and
//! the metadata commands clients (ADBC, JDBC, BI tools) call on connect, answered by the SQL
//! engine over the vintage views.
//!
//! The Flight service routes a request here when it carries a Flight SQL command (a protobuf
//! `Any` of the `arrow.flight.protocol.sql` package) or a Flight SQL action, after checking its
//! token; every other request (JSON tickets, the service's own actions) is answered as before.
//! The caller's principal, grants and access audit come with the request ([`Caller`]).
//!
//! Statement tickets carry the statement and the table snapshot it was planned at, so any
//! replica of the service answers them and a `DoGet` reads what `GetFlightInfo` described.
//! Prepared statements are held by the service that made them (most [`MAX_PREPARED`], the
//! oldest dropped first), each for the principal that made it.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandPreparedStatementQuery, CommandStatementQuery, DoPutPreparedStatementResult,
    ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::scalar::ScalarValue;
use futures::stream::{self, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};
use vintagelake_sql::{SqlEngine, SqlError};
use vintagelake_storage::scan::SnapshotSelector;

use crate::access::AccessAudit;
use crate::error::QueryError;
use crate::grants::Access;
use crate::metrics as m;

/// Prepared statements held at once; beyond it the oldest is closed.
pub const MAX_PREPARED: usize = 1024;

/// The `Any` type URLs of Flight SQL messages start with this.
const FLIGHT_SQL_TYPE_PREFIX: &str = "type.googleapis.com/arrow.flight.protocol.sql.";

/// Flight SQL's actions (what `do_action` routes here).
pub const ACTIONS: &[&str] = &[
    "CreatePreparedStatement",
    "ClosePreparedStatement",
    "CreatePreparedSubstraitPlan",
    "CancelQuery",
    "CancelFlightInfo",
    "BeginTransaction",
    "EndTransaction",
    "BeginSavepoint",
    "EndSavepoint",
];

/// Whether `bytes` (a ticket, a descriptor's command) is a Flight SQL message.
pub fn is_command(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes[0] != b'{'
        && Any::decode(bytes).is_ok_and(|any| any.type_url.starts_with(FLIGHT_SQL_TYPE_PREFIX))
}

/// Who is asking, as the Flight service established it (a request extension).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: String,
    pub access: Access,
    pub audit: AccessAudit,
}

impl vintagelake_sql::SeriesFilter for Access {
    fn everything(&self) -> bool {
        Access::everything(self)
    }
    fn reads(&self, series: &str) -> bool {
        Access::reads(self, series)
    }
}

/// A statement as its ticket carries it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StatementTicket {
    sql: String,
    /// The snapshot it was planned at (absent: the table was empty).
    snapshot: Option<i64>,
}

#[derive(Debug)]
struct Prepared {
    sql: String,
    principal: String,
    params: Vec<ScalarValue>,
}

#[derive(Debug, Default)]
struct PreparedStatements {
    by_handle: HashMap<Vec<u8>, Prepared>,
    order: VecDeque<Vec<u8>>,
}

/// The Flight SQL side of the service.
pub struct SqlFlight {
    engine: SqlEngine,
    prepared: Mutex<PreparedStatements>,
    info: SqlInfoData,
}

impl std::fmt::Debug for SqlFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlFlight")
            .field("engine", &self.engine)
            .field("prepared", &self.prepared)
            .finish_non_exhaustive()
    }
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("a Flight SQL request reached the SQL engine without a caller"))
}

fn status(e: SqlError) -> Status {
    QueryError::Sql(e).into_status()
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(format!("encoding a schema: {e}")))?;
    Ok(bytes)
}

/// One batch's answer to a metadata command.
fn one_batch<E: std::fmt::Display>(
    batch: Result<RecordBatch, E>,
) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(stream::iter([Ok(batch)]))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(encoded)))
}

/// A metadata command's `FlightInfo`: the schema, and a ticket that is the command itself.
fn info_for(
    command: impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let ticket = Ticket { ticket: command.as_any().encode_to_vec().into() };
    FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))
        .map(|i| i.with_endpoint(FlightEndpoint::new().with_ticket(ticket)).with_descriptor(descriptor))
}

impl SqlFlight {
    pub fn new(engine: SqlEngine) -> Self {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "vintagelake");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "58");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        info.append(SqlInfo::FlightSqlServerCancel, false);
        info.append(
            SqlInfo::FlightSqlServerStatementTimeout,
            engine.limits().timeout.as_millis().min(i32::MAX as u128) as i32,
        );
        info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        info.append(SqlInfo::SqlDdlCatalog, false);
        info.append(SqlInfo::SqlDdlSchema, false);
        info.append(SqlInfo::SqlDdlTable, false);
        let info = info.build().expect("static SQL info builds");
        Self { engine, prepared: Mutex::new(PreparedStatements::default()), info }
    }

    /// Runs `sql` at `snapshot` with `params` for `caller`, as Flight data; recorded in the access
    /// audit when it ends.
    async fn answer(
        &self,
        caller: Caller,
        sql: String,
        snapshot: SnapshotSelector,
        params: Vec<ScalarValue>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        let started = Instant::now();
        let what =
            serde_json::json!({ "sql": sql, "params": params.iter().map(ToString::to_string).collect::<Vec<_>>() });
        let access: Arc<dyn vintagelake_sql::SeriesFilter> = Arc::new(caller.access.clone());
        let running = async {
            let planned = self.engine.plan(&sql, snapshot, access).await?;
            let schema = planned.schema();
            Ok::<_, SqlError>((schema, planned.execute(params).await?))
        }
        .await;
        let result = running.map_err(status);
        crate::service::observe("do_get", "sql", started, &result);
        let (schema, batches) = result.inspect_err(|s| {
            caller.audit.refused(&caller.principal, "sql", &format!("error: {}", s.message()), what.clone())
        })?;
        let record = caller.audit.begin(&caller.principal, "sql", what);
        let batches = batches.map_err(|e| QueryError::Sql(e).into_status());
        let encoded = crate::service::audited_flight_data(
            schema,
            batches.boxed(),
            record,
            "sql",
            self.engine.limits().batch_size,
        );
        Ok(Response::new(encoded))
    }

    fn remember(&self, handle: Vec<u8>, prepared: Prepared) {
        let mut held = self.prepared.lock().expect("prepared statements lock");
        held.by_handle.insert(handle.clone(), prepared);
        held.order.push_back(handle);
        while held.by_handle.len() > MAX_PREPARED {
            if let Some(oldest) = held.order.pop_front() {
                held.by_handle.remove(&oldest);
            }
        }
        if held.order.len() > 4 * MAX_PREPARED {
            let live: std::collections::HashSet<Vec<u8>> = held.by_handle.keys().cloned().collect();
            held.order.retain(|h| live.contains(h));
        }
    }

    /// A prepared statement's text and parameters, for the principal that prepared it only.
    fn prepared(&self, handle: &[u8], principal: &str) -> Result<(String, Vec<ScalarValue>), Status> {
        let held = self.prepared.lock().expect("prepared statements lock");
        match held.by_handle.get(handle) {
            Some(p) if p.principal == principal => Ok((p.sql.clone(), p.params.clone())),
            _ => Err(Status::not_found("no such prepared statement (closed, or prepared by another service)")),
        }
    }
}

#[tonic::async_trait]
impl FlightSqlService for SqlFlight {
    type FlightService = SqlFlight;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = caller(&request)?;
        let planned =
            self.engine.plan(&query.query, SnapshotSelector::Current, Arc::new(caller.access)).await.map_err(status)?;
        let handle = serde_json::to_vec(&StatementTicket { sql: query.query, snapshot: planned.snapshot })
            .expect("a statement ticket serialises");
        let ticket = TicketStatementQuery { statement_handle: handle.into() };
        let info = info_for(ticket, &planned.schema(), request.into_inner())?.with_ordered(true);
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        let caller = caller(&request)?;
        let statement: StatementTicket = serde_json::from_slice(&ticket.statement_handle)
            .map_err(|e| Status::invalid_argument(format!("not a statement ticket of this service: {e}")))?;
        let snapshot = statement.snapshot.map_or(SnapshotSelector::Current, SnapshotSelector::Id);
        self.answer(caller, statement.sql, snapshot, Vec::new()).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = caller(&request)?;
        let planned =
            self.engine.plan(&query.query, SnapshotSelector::Current, Arc::new(caller.access)).await.map_err(status)?;
        let parameters = planned.parameter_schema().map_err(status)?;
        let mut handle = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut handle[..]);
        let handle = hex::encode(handle).into_bytes();
        self.remember(handle.clone(), Prepared { sql: query.query, principal: caller.principal, params: Vec::new() });
        metrics::counter!(m::SQL_PREPARED).increment(1);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: schema_bytes(&planned.schema())?,
            parameter_schema: if parameters.fields().is_empty() {
                Default::default()
            } else {
                schema_bytes(&parameters)?
            },
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = caller(&request)?;
        let handle = query.prepared_statement_handle.to_vec();
        self.prepared(&handle, &caller.principal)?;
        let batches: Vec<RecordBatch> =
            FlightRecordBatchStream::new_from_flight_data(request.into_inner().map_err(FlightError::from))
                .try_collect()
                .await
                .map_err(|e| Status::invalid_argument(format!("reading the parameters: {e}")))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "one set of parameters per execution is supported, got {rows} rows"
            )));
        }
        let params = match batches.iter().find(|b| b.num_rows() == 1) {
            Some(batch) => (0..batch.num_columns())
                .map(|i| ScalarValue::try_from_array(batch.column(i), 0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Status::invalid_argument(format!("a parameter: {e}")))?,
            None => Vec::new(),
        };
        let mut held = self.prepared.lock().expect("prepared statements lock");
        if let Some(p) = held.by_handle.get_mut(&handle) {
            p.params = params;
        }
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle.into()) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = caller(&request)?;
        let (sql, params) = self.prepared(&query.prepared_statement_handle, &caller.principal)?;
        let planned =
            self.engine.plan(&sql, SnapshotSelector::Current, Arc::new(caller.access)).await.map_err(status)?;
        // The answer's schema with the parameters' types bound where the statement left them open.
        let schema = if params.is_empty() {
            planned.schema()
        } else {
            let frame = planned
                .frame
                .with_param_values(datafusion::common::ParamValues::List(params.into_iter().map(Into::into).collect()))
                .map_err(|e| status(SqlError::from_datafusion(e)))?;
            Arc::new(frame.schema().as_arrow().clone())
        };
        Ok(Response::new(info_for(query, &schema, request.into_inner())?.with_ordered(true)))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        let caller = caller(&request)?;
        let (sql, params) = self.prepared(&query.prepared_statement_handle, &caller.principal)?;
        self.answer(caller, sql, SnapshotSelector::Current, params).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let caller = caller(&request)?;
        let handle = query.prepared_statement_handle.to_vec();
        self.prepared(&handle, &caller.principal)?;
        self.prepared.lock().expect("prepared statements lock").by_handle.remove(&handle);
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        let mut builder = query.into_builder();
        builder.append(vintagelake_sql::CATALOG);
        one_batch(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        let mut builder = query.into_builder();
        builder.append(vintagelake_sql::CATALOG, vintagelake_sql::SCHEMA);
        one_batch(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        let caller = caller(&request)?;
        let (ctx, _) = self.engine.session(SnapshotSelector::Current, Arc::new(caller.access)).await.map_err(status)?;
        let mut builder = query.into_builder();
        for (name, _) in vintagelake_sql::TABLES {
            let table = ctx.table_provider(*name).await.map_err(|e| status(SqlError::from_datafusion(e)))?;
            let kind = match table.table_type() {
                datafusion::logical_expr::TableType::View => "VIEW",
                _ => "TABLE",
            };
            builder
                .append(vintagelake_sql::CATALOG, vintagelake_sql::SCHEMA, name, kind, &table.schema())
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        let mut builder = query.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        one_batch(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.info).schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        one_batch(query.into_builder(&self.info).build())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Ok(Response::new(info_for(query, &primary_keys_schema(), request.into_inner())?))
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<Stream<arrow_flight::FlightData>>, Status> {
        // The views have no primary key a client could rely on: none is declared.
        one_batch(Ok::<_, Status>(RecordBatch::new_empty(Arc::new(primary_keys_schema()))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// `GetPrimaryKeys`' answer schema, as the Flight SQL protocol defines it.
fn primary_keys_schema() -> Schema {
    use arrow::datatypes::{DataType, Field};
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}
