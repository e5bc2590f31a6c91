//! The views as DataFusion tables, and the scan that answers them through the view source.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};
use datafusion::prelude::SessionContext;
use futures::stream::{self, StreamExt, TryStreamExt};
use vintagelake_schemas::arrow::col;
use vintagelake_schemas::{Date, EconomicSeries, SeriesId};
use vintagelake_storage::ViewSource;
use vintagelake_storage::scan::{Explain, SnapshotSelector, View, VintageQuery, view_schema_with};

use crate::pushdown::{self, Pushed};
use crate::{SeriesFilter, SqlError};

/// The tables every session has, with what they hold (Flight SQL's `GetTables` lists them).
pub const TABLES: &[(&str, &str)] = &[
    ("latest", "the most recent revision of every observation"),
    ("first_release", "the first published value of every observation"),
    ("all_revisions", "every revision, with the real-time period it was current"),
    ("data_points", "every revision (duplicates folded), in the DataPoint columns"),
    (SERIES_TABLE, "the latest metadata of every series"),
];

/// The series metadata table.
pub const SERIES_TABLE: &str = "series";

/// Registers the tables, every view reading the table state `snapshot` names.
pub(crate) fn register(
    ctx: &SessionContext,
    source: &Arc<dyn ViewSource>,
    snapshot: SnapshotSelector,
    visible: &Arc<dyn SeriesFilter>,
    chunk_rows: usize,
    series: &[EconomicSeries],
) -> Result<()> {
    let view = |view: View, name: &'static str| -> Arc<dyn TableProvider> {
        Arc::new(ViewTable::new(source.clone(), view, name, snapshot, visible.clone(), chunk_rows))
    };
    ctx.register_table("latest", view(View::Latest, "latest"))?;
    ctx.register_table("first_release", view(View::FirstRelease, "first_release"))?;
    ctx.register_table("all_revisions", view(View::AllRevisions, "all_revisions"))?;
    ctx.register_table("data_points", view(View::AllRevisions, "data_points"))?;
    let visible_series: Vec<EconomicSeries> = series.iter().filter(|s| visible.reads(s.id.as_str())).cloned().collect();
    let batch =
        series_batch(&visible_series).map_err(|e| datafusion::error::DataFusionError::ArrowError(Box::new(e), None))?;
    ctx.register_table(SERIES_TABLE, Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?))?;
    Ok(())
}

/// Series metadata: the seed's columns, then those of wire version 2.
fn series_batch(series: &[EconomicSeries]) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let seed = vintagelake_schemas::arrow::series_to_batch(series)?;
    let mut fields: Vec<Field> = seed.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = seed.columns().to_vec();
    fields.push(Field::new("notes", DataType::Utf8, true));
    columns.push(Arc::new(series.iter().map(|s| s.notes.as_deref()).collect::<StringArray>()));
    fields.push(Field::new("release", DataType::Utf8, true));
    columns.push(Arc::new(series.iter().map(|s| s.release.as_deref()).collect::<StringArray>()));
    fields.push(Field::new("last_updated", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), true));
    columns.push(Arc::new(
        series
            .iter()
            .map(|s| s.last_updated.map(|t| t.nanos()))
            .collect::<TimestampNanosecondArray>()
            .with_timezone("UTC"),
    ));
    let seed_types_kept: Vec<Field> = fields;
    RecordBatch::try_new(Arc::new(Schema::new(seed_types_kept)), columns)
}

/// One view as a table: its rows at one snapshot, as a principal sees them.
#[derive(Debug)]
pub(crate) struct ViewTable {
    source: Arc<dyn ViewSource>,
    view: View,
    /// The name it is shown under in plans.
    name: &'static str,
    snapshot: SnapshotSelector,
    /// The view's columns as the source answers them.
    base: SchemaRef,
    /// Which of them this table shows, in order.
    exposed: Vec<usize>,
    schema: SchemaRef,
    visible: Arc<dyn SeriesFilter>,
    chunk_rows: usize,
}

impl ViewTable {
    pub(crate) fn new(
        source: Arc<dyn ViewSource>,
        view: View,
        name: &'static str,
        snapshot: SnapshotSelector,
        visible: Arc<dyn SeriesFilter>,
        chunk_rows: usize,
    ) -> Self {
        let base = view_schema_with(&source.foreign_columns());
        // data_points: the revision columns, without the real-time period the views derive.
        let exposed: Vec<usize> = (0..base.fields().len())
            .filter(|i| {
                name != "data_points"
                    || ![col::REALTIME_START, col::REALTIME_END].contains(&base.field(*i).name().as_str())
            })
            .collect();
        let schema = Arc::new(base.project(&exposed).expect("indices of the base schema"));
        Self { source, view, name, snapshot, base, exposed, schema, visible, chunk_rows }
    }
}

#[async_trait]
impl TableProvider for ViewTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        if self.name == "data_points" { TableType::Base } else { TableType::View }
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if pushdown::supported(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let pushed = pushdown::collect(filters);
        let columns: Vec<usize> = match projection {
            Some(p) => p.iter().map(|i| self.exposed[*i]).collect(),
            None => self.exposed.clone(),
        };
        let schema = Arc::new(self.base.project(&columns)?);
        let query = query_of(self.view, self.snapshot, &pushed);
        let explain = match &query {
            Some(q) => Some(self.source.explain(q).await.map_err(SqlError::Storage)?),
            None => None,
        };
        Ok(Arc::new(VintageScanExec {
            source: self.source.clone(),
            name: self.name,
            query,
            pushed,
            explain,
            base: self.base.clone(),
            columns,
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema.clone()),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            schema,
            visible: self.visible.clone(),
            chunk_rows: self.chunk_rows,
        }))
    }
}

/// The view's query for what was pushed (`None`: no row can pass).
fn query_of(view: View, snapshot: SnapshotSelector, pushed: &Pushed) -> Option<VintageQuery> {
    if pushed.nothing() {
        return None;
    }
    let mut query = VintageQuery::new(view)
        .at_snapshot(snapshot)
        .between(pushed.start.map(Date::from_days_since_epoch), pushed.end.map(Date::from_days_since_epoch));
    if let Some(series) = &pushed.series {
        // A name no series can have matches no row.
        let ids: Vec<SeriesId> = series.iter().filter_map(|s| s.parse().ok()).collect();
        if ids.is_empty() {
            return None;
        }
        query = query.series(ids);
    }
    Some(query)
}

/// Reads a view through the view source, with the query's series and dates.
#[derive(Debug)]
pub(crate) struct VintageScanExec {
    source: Arc<dyn ViewSource>,
    name: &'static str,
    query: Option<VintageQuery>,
    pushed: Pushed,
    explain: Option<Explain>,
    base: SchemaRef,
    /// The base columns this scan returns.
    columns: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    visible: Arc<dyn SeriesFilter>,
    chunk_rows: usize,
}

impl DisplayAs for VintageScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "VintageScan: table={}", self.name)?;
        match &self.query {
            None => return write!(f, ", reads nothing (the filters admit no row)"),
            Some(q) => {
                if let View::AsOf(d) = q.view {
                    write!(f, ", as_of={d}")?;
                }
                match q.snapshot {
                    SnapshotSelector::Id(id) => write!(f, ", snapshot={id}")?,
                    SnapshotSelector::AsOfTimestampMs(ms) => write!(f, ", snapshot_at_ms={ms}")?,
                    SnapshotSelector::Current => {}
                }
            }
        }
        if let Some(series) = &self.pushed.series {
            let names: Vec<&str> = series.iter().map(String::as_str).collect();
            write!(f, ", series=[{}]", names.join(", "))?;
        }
        let day = |d: Option<i32>| d.map_or("..".to_owned(), |d| Date::from_days_since_epoch(d).to_string());
        if self.pushed.start.is_some() || self.pushed.end.is_some() {
            write!(f, ", date=[{}, {}]", day(self.pushed.start), day(self.pushed.end))?;
        }
        if let Some(e) = &self.explain {
            write!(f, ", files={}/{}", e.files_planned, e.files_total)?;
            if let Some(p) = &e.predicate {
                write!(f, ", predicate={p}")?;
            }
        }
        let names: Vec<&str> = self.columns.iter().map(|i| self.base.field(*i).name().as_str()).collect();
        write!(f, ", projection=[{}]", names.join(", "))
    }
}

impl ExecutionPlan for VintageScanExec {
    fn name(&self) -> &str {
        "VintageScanExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(self: Arc<Self>, _: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.schema.clone();
        let Some(query) = self.query.clone() else {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream::empty())));
        };
        let (source, chunk_rows) = (self.source.clone(), self.chunk_rows);
        let (base, columns, visible) = (self.base.clone(), self.columns.clone(), self.visible.clone());
        let parts = stream::once(async move {
            match source.answer_stream(query, chunk_rows).await {
                Ok((parts, _)) => parts.map_err(|e| SqlError::Storage(e).into()).boxed(),
                Err(e) => stream::iter([Err(SqlError::Storage(e).into())]).boxed(),
            }
        })
        .flatten();
        let batches = parts.and_then(move |batch: RecordBatch| {
            std::future::ready(fit(&base, &columns, visible.as_ref(), batch).map_err(Into::into))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// A part of the answer in the view's columns, the principal's series only, projected.
fn fit(
    base: &SchemaRef,
    columns: &[usize],
    visible: &dyn SeriesFilter,
    batch: RecordBatch,
) -> std::result::Result<RecordBatch, SqlError> {
    let batch = if batch.schema() == *base {
        batch
    } else {
        vintagelake_storage::evolve::conform_to(base, &batch).map_err(SqlError::Internal)?
    };
    let batch = if visible.everything() {
        batch
    } else {
        use arrow::array::{Array, AsArray, BooleanArray};
        let ids = batch
            .column_by_name(col::SERIES_ID)
            .ok_or_else(|| SqlError::Internal("a view answered without series_id".into()))?
            .as_string::<i32>();
        let keep: BooleanArray = (0..ids.len()).map(|i| Some(ids.is_valid(i) && visible.reads(ids.value(i)))).collect();
        arrow::compute::filter_record_batch(&batch, &keep).map_err(|e| SqlError::Internal(e.to_string()))?
    };
    batch.project(columns).map_err(|e| SqlError::Internal(e.to_string()))
}
