//! SQL over the vintages, with DataFusion.
//!
//! The tables are the vintage views as the Flight service answers them, read through the same
//! [`ViewSource`] (the warm read path, the hot cache, the V1 backend alike):
//!
//! | SQL object | what it is |
//! |---|---|
//! | `latest`, `first_release`, `all_revisions` | the views (`all_revisions` with `realtime_start` / `realtime_end`) |
//! | `data_points` | every revision (duplicates folded, as the views fold them), in the `DataPoint` columns |
//! | `series` | the latest metadata of every series |
//! | `as_of('2020-05-01' [, snapshot])` | the view as published on a date |
//! | `at_snapshot('latest', snapshot [, as_of_date])` | any view at a table snapshot (an id, or a time) |
//!
//! `series_id = …`, `series_id IN (…)` and comparisons of `date` with constants are pushed into
//! the view's query, so the scan plans only the files that may hold those series and dates
//! (`EXPLAIN` shows it: `VintageScan … files=1/8`). Every statement reads one table snapshot,
//! pinned when it is planned. Each statement runs with its own memory pool
//! ([`SqlLimits::memory_bytes`]) and deadline ([`SqlLimits::timeout`]).

mod error;
mod functions;
mod pushdown;
mod tables;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use futures::stream::{BoxStream, StreamExt};
use vintagelake_storage::ViewSource;
use vintagelake_storage::scan::SnapshotSelector;

pub use error::SqlError;
pub use tables::{SERIES_TABLE, TABLES};

/// The catalog and schema every table is in (what Flight SQL's metadata commands list).
pub const CATALOG: &str = "vintagelake";
pub const SCHEMA: &str = "public";

/// Which series a principal may read: rows of other series are absent from every table
/// (never an error that would tell they exist).
pub trait SeriesFilter: Send + Sync + std::fmt::Debug {
    /// Whether every series is visible (no filtering needed).
    fn everything(&self) -> bool;
    /// Whether rows of `series` are visible.
    fn reads(&self, series: &str) -> bool;
}

/// Everything is visible.
#[derive(Debug, Clone, Copy)]
pub struct AllSeries;

impl SeriesFilter for AllSeries {
    fn everything(&self) -> bool {
        true
    }
    fn reads(&self, _: &str) -> bool {
        true
    }
}

/// What one statement may use.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    /// Memory a statement's operators (sorts, aggregates, joins) may hold (`SQL_MEMORY_LIMIT_MB`);
    /// beyond it the statement fails with "resources exhausted".
    pub memory_bytes: usize,
    /// How long a statement may run, planning and streaming together (`SQL_TIMEOUT`).
    pub timeout: Duration,
    /// Stored rows a view scan reads and resolves at a time.
    pub chunk_rows: usize,
    /// Rows per output batch.
    pub batch_size: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self { memory_bytes: 512 << 20, timeout: Duration::from_secs(300), chunk_rows: 1 << 20, batch_size: 65_536 }
    }
}

/// The SQL engine over one view source.
#[derive(Debug, Clone)]
pub struct SqlEngine {
    source: Arc<dyn ViewSource>,
    limits: SqlLimits,
}

/// A planned statement: its answer's schema, the parameters it takes and the snapshot it reads.
#[derive(Debug)]
pub struct Planned {
    pub frame: DataFrame,
    /// The table version every view of the statement reads (`None`: the table is empty).
    pub snapshot: Option<i64>,
    started: tokio::time::Instant,
    timeout: Duration,
    /// The statement's text, for the log when DataFusion fails on it.
    statement: Arc<str>,
}

impl Planned {
    /// The answer's schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.frame.schema().as_arrow().clone())
    }

    /// The parameters' schema (`$1`, `$2`, …, or `?` in order), types as inferred from the
    /// statement (`Null` where the statement leaves one open).
    pub fn parameter_schema(&self) -> Result<SchemaRef, SqlError> {
        let types = self.frame.logical_plan().get_parameter_types().map_err(SqlError::from_datafusion)?;
        let mut named: Vec<(usize, arrow::datatypes::DataType)> = types
            .into_iter()
            .filter_map(|(name, ty)| {
                let n: usize = name.trim_start_matches('$').parse().ok()?;
                Some((n, ty.unwrap_or(arrow::datatypes::DataType::Null)))
            })
            .collect();
        named.sort_by_key(|(n, _)| *n);
        Ok(Arc::new(arrow::datatypes::Schema::new(
            named
                .into_iter()
                .map(|(n, ty)| arrow::datatypes::Field::new(format!("${n}"), ty, true))
                .collect::<Vec<_>>(),
        )))
    }

    /// Runs the statement with `params` bound (positionally), as a stream of batches that ends
    /// with a timeout error once the statement's deadline passes.
    pub async fn execute(self, params: Vec<ScalarValue>) -> Result<SqlStream, SqlError> {
        let deadline = self.started + self.timeout;
        let timeout = self.timeout;
        let frame = if params.is_empty() {
            self.frame
        } else {
            self.frame
                .with_param_values(ParamValues::List(params.into_iter().map(Into::into).collect()))
                .map_err(|e| planning_failed(e.into()))?
        };
        // Optimising and physical planning happen here: DataFusion's failures on the statement
        // (a panic, an internal error) are the statement's, as in `plan`.
        let stream = tokio::time::timeout_at(deadline, planner_guarded(&self.statement, frame.execute_stream()))
            .await
            .map_err(|_| SqlError::Timeout(timeout))??
            .map_err(|e| planning_failed(e.into()))?;
        Ok(with_deadline(stream.map(|b| b.map_err(SqlError::from_datafusion)).boxed(), deadline, timeout))
    }
}

/// An answer as it is computed.
pub type SqlStream = BoxStream<'static, Result<RecordBatch, SqlError>>;

/// `stream`, ending with [`SqlError::Timeout`] when `deadline` passes before it does.
fn with_deadline(stream: SqlStream, deadline: tokio::time::Instant, timeout: Duration) -> SqlStream {
    futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((Err(SqlError::Timeout(timeout)), None)),
        }
    })
    .boxed()
}

impl SqlEngine {
    pub fn new(source: Arc<dyn ViewSource>, limits: SqlLimits) -> Self {
        Self { source, limits }
    }

    pub fn limits(&self) -> SqlLimits {
        self.limits
    }

    pub fn source(&self) -> &Arc<dyn ViewSource> {
        &self.source
    }

    /// A session for one statement: the tables at `snapshot` (`Current`: the newest, pinned now),
    /// rows limited to what `visible` admits, the statement's own memory pool.
    pub async fn session(
        &self,
        snapshot: SnapshotSelector,
        visible: Arc<dyn SeriesFilter>,
    ) -> Result<(SessionContext, Option<i64>), SqlError> {
        let version = self.source.version(snapshot).await.map_err(SqlError::Storage)?;
        let pinned = version.map_or(SnapshotSelector::Current, SnapshotSelector::Id);
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, SCHEMA)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true)
            .with_batch_size(self.limits.batch_size.max(1))
            .with_target_partitions(2);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.memory_bytes.max(1 << 20), 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let series = self.source.series_catalogue().await.map_err(SqlError::Storage)?;
        tables::register(&ctx, &self.source, pinned, &visible, self.limits.chunk_rows, &series)?;
        functions::register(&ctx, &self.source, pinned, &visible, self.limits.chunk_rows);
        Ok((ctx, version))
    }

    /// Plans `sql` (one statement) against the tables at `snapshot`, as `visible` sees them.
    pub async fn plan(
        &self,
        sql: &str,
        snapshot: SnapshotSelector,
        visible: Arc<dyn SeriesFilter>,
    ) -> Result<Planned, SqlError> {
        let started = tokio::time::Instant::now();
        let timeout = self.limits.timeout;
        let planning = async {
            let (ctx, version) = self.session(snapshot, visible).await?;
            let sql = numbered_placeholders(sql)?;
            let options = datafusion::execution::context::SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let frame = plan_on_a_thread_of_its_own(ctx, sql, options).await?;
            Ok::<_, SqlError>((frame, version))
        };
        let (frame, snapshot) =
            tokio::time::timeout(timeout, planning).await.map_err(|_| SqlError::Timeout(timeout))??;
        Ok(Planned { frame, snapshot, started, timeout, statement: sql.into() })
    }

    /// Plans and runs `sql` with `params`: the answer's schema and its batches.
    pub async fn query(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        visible: Arc<dyn SeriesFilter>,
    ) -> Result<(SchemaRef, SqlStream), SqlError> {
        let planned = self.plan(sql, SnapshotSelector::Current, visible).await?;
        let schema = planned.schema();
        Ok((schema, planned.execute(params).await?))
    }
}

/// Statements being parsed and planned at once, each on a thread of its own.
pub const PLANNING_THREADS: usize = 4;

static PLANNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PLANNING_THREADS);

/// Parses and plans `sql` on a thread of its own, off the async runtime: parsing and planning are
/// synchronous CPU work, and some statements keep DataFusion's parser busy for minutes (found by
/// the `sql` fuzz target: 400 bytes of dotted names and unclosed `[`). The caller's deadline
/// (`SQL_TIMEOUT`) then answers the request while the thread finishes on its own; at most
/// [`PLANNING_THREADS`] statements plan at once, so such statements occupy that many threads at
/// most, never the runtime's, and a statement waits for a free planner within its deadline.
async fn plan_on_a_thread_of_its_own(
    ctx: SessionContext,
    sql: String,
    options: datafusion::execution::context::SQLOptions,
) -> Result<DataFrame, SqlError> {
    let permit = PLANNING.acquire().await.map_err(|e| SqlError::Internal(format!("SQL planners closed: {e}")))?;
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sql-planner".into())
        .spawn(move || {
            let _permit = permit;
            let planned = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| SqlError::Internal(format!("a runtime for the SQL planner: {e}")));
            let planned = planned.and_then(|rt| {
                rt.block_on(planner_guarded(&sql, ctx.sql_with_options(&sql, options)))?
                    .map_err(|e| planning_failed(at_end_if_unplaced(&sql, e.into())))
            });
            // The request may have given up (its deadline passed): nobody to tell then.
            let _ = answer.send(planned);
        })
        .map_err(|e| SqlError::Internal(format!("starting a SQL planner thread: {e}")))?;
    answered.await.map_err(|_| SqlError::Internal("the SQL planner thread stopped without an answer".into()))?
}

/// Runs DataFusion's planning of `sql`, turning a panic inside it into the statement's error:
/// the SQL planner has statements it cannot plan and unwraps instead of failing (found by the
/// `sql` fuzz target: `SELECT l.series_i'GDPC0', …` reaches an `unwrap` in DataFusion 53's typed
/// string planning). The client gets `INVALID_ARGUMENT` naming the failure, the log has the
/// statement; the service goes on.
async fn planner_guarded<T>(sql: &str, planning: impl Future<Output = T>) -> Result<T, SqlError> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(planning).catch_unwind().await.map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        tracing::warn!(statement = %sql, panic = %why, "the SQL planner failed on a statement");
        SqlError::Invalid(format!("the SQL planner cannot plan this statement (it failed: {why})"))
    })
}

/// An internal error of DataFusion while planning a statement (type coercion it did not expect,
/// found by the `sql` fuzz target: `$a BETWEEN '…' AND '…' BETWEEN …`) is a statement it cannot
/// plan: refused as the statement's, with DataFusion's words. Errors while the answer streams
/// keep their kind.
fn planning_failed(e: SqlError) -> SqlError {
    match e {
        SqlError::Internal(m) => {
            SqlError::Invalid(format!("the SQL planner cannot plan this statement (it failed: {m})"))
        }
        other => other,
    }
}

/// A parse error at the end of the statement carries no position from the parser; it gets the
/// statement's end (as `Line: L, Column: C`, the parser's own form), so every SQL error has one.
fn at_end_if_unplaced(sql: &str, e: SqlError) -> SqlError {
    match e {
        SqlError::Invalid(m) if m.contains("found: EOF") && !m.contains("Line:") => {
            let text = sql.trim_end();
            let line = text.lines().count().max(1);
            let column = text.lines().last().map_or(0, |l| l.chars().count()) + 1;
            SqlError::Invalid(format!("{m} at Line: {line}, Column: {column} (the end of the statement)"))
        }
        other => other,
    }
}

/// `?` placeholders (as JDBC and ODBC write them) become `$1`, `$2`, … in order; `$n` stays.
fn numbered_placeholders(sql: &str) -> Result<String, SqlError> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.contains('?') {
        return Ok(sql.to_owned());
    }
    let tokens =
        Tokenizer::new(&GenericDialect {}, sql).tokenize().map_err(|e| SqlError::Invalid(format!("SQL error: {e}")))?;
    let mut next = 0;
    let mut out = String::with_capacity(sql.len() + 8);
    for token in tokens {
        match token {
            Token::Placeholder(p) if p == "?" => {
                next += 1;
                out.push_str(&format!("${next}"));
            }
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_at_the_end_gets_the_end_as_its_position() {
        let e = at_end_if_unplaced(
            "SELECT date\nFROM latest WHERE  ",
            SqlError::Invalid("SQL error: ParserError(\"Expected: an expression, found: EOF\")".into()),
        );
        assert!(e.to_string().ends_with("found: EOF\") at Line: 2, Column: 18 (the end of the statement)"), "{e}");
        let placed = SqlError::Invalid("Expected: x, found: y at Line: 1, Column: 3".into());
        assert_eq!(at_end_if_unplaced("SELECT", placed).to_string(), "Expected: x, found: y at Line: 1, Column: 3");
    }

    use super::*;

    /// A statement that makes DataFusion's planner panic is refused like any bad statement.
    #[tokio::test]
    async fn a_statement_the_planner_panics_on_is_refused_not_fatal() {
        let ctx = SessionContext::new();
        let sql = "SELECT l.series_i'GDPC0',date 1>= DAT' 4E0210--401'\n";
        match planner_guarded(sql, ctx.sql(sql)).await {
            Err(SqlError::Invalid(m)) => assert!(m.starts_with("the SQL planner cannot plan this statement"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(planner_guarded("SELECT 1", ctx.sql("SELECT 1")).await.unwrap().is_ok(), "other statements plan");
    }

    /// The statement the `sql` fuzz target found keeping the parser busy for minutes: the
    /// deadline answers it, and other statements still plan meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_that_keeps_the_parser_busy_meets_its_deadline() {
        const SLOW: &str = "SELECT l.sBEF.vCTQ.vKTTEF.vCTQ.vKTTeries_.d[ t.vCTQl.sBEF.vCTQ.vKTTEF.vCTQ.vKTTeries_.d[ t.vCTQ.vKTTeries_.d[rrrrries_KTTe:eries_.d[ t.vCTQ.vKTTeriTTerie_sTTEF.vCTQ.vKTTEF.vCTQ.vKTTeries_.d[ t.vCTQl.sBEF.vCTQ.vKTTEF.vCTQ.vKTTeries_.d[ t.vCTQ.vKTTeries_.d[rrrrries_KTTe:eries_.d[ t.vCTQ.vKTTeriTTerie_sTTe(TAETe(TAET_OT@\n";
        let options = || datafusion::execution::context::SQLOptions::new();
        let started = std::time::Instant::now();
        let slow = plan_on_a_thread_of_its_own(SessionContext::new(), SLOW.into(), options());
        let deadline = Duration::from_secs(2);
        let answer = tokio::time::timeout(deadline, slow).await;
        assert!(answer.is_err(), "the statement still plans after {deadline:?}: the deadline answers");
        assert!(started.elapsed() < Duration::from_secs(5), "answered at the deadline, not when planning ends");
        // The runtime is free, and another statement plans on another planner thread.
        let quick = plan_on_a_thread_of_its_own(SessionContext::new(), "SELECT 1".into(), options());
        let frame = tokio::time::timeout(Duration::from_secs(10), quick).await.expect("plans").unwrap();
        assert_eq!(frame.collect().await.unwrap()[0].num_rows(), 1);
    }

    /// DataFusion's internal errors while planning are the statement's; others keep their kind.
    #[tokio::test]
    async fn an_internal_planning_error_is_the_statements() {
        let ctx = SessionContext::new();
        // The statement the fuzz target found, on a table of its shape.
        ctx.sql("CREATE TABLE t (series_id VARCHAR, date DATE) AS VALUES ('A', DATE '2024-01-01')").await.unwrap();
        let sql = "SELECT * FROM t WHERE $ate BETWEEN 'a' AND 'b' BETWEEN 'c' AND 'd' OR series_id = $1";
        let e = match ctx.sql(sql).await {
            Ok(frame) => frame.execute_stream().await.err().map(SqlError::from),
            Err(e) => Some(SqlError::from(e)),
        };
        if let Some(e) = e {
            assert!(matches!(planning_failed(e), SqlError::Invalid(_)), "the statement's error");
        }
        let m = planning_failed(SqlError::Internal("Failed to coerce types".into())).to_string();
        assert_eq!(m, "the SQL planner cannot plan this statement (it failed: Failed to coerce types)");
        assert!(matches!(planning_failed(SqlError::ResourcesExhausted("x".into())), SqlError::ResourcesExhausted(_)));
    }

    #[test]
    fn question_marks_become_numbered_placeholders_outside_strings() {
        let sql = "SELECT * FROM latest WHERE series_id = ? AND title = 'what?' AND date > ?";
        assert_eq!(
            numbered_placeholders(sql).unwrap(),
            "SELECT * FROM latest WHERE series_id = $1 AND title = 'what?' AND date > $2"
        );
        assert_eq!(numbered_placeholders("SELECT $1").unwrap(), "SELECT $1");
    }
}
