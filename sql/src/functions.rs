//! Table functions: `as_of('2020-05-01' [, snapshot])` and
//! `at_snapshot('view', snapshot [, as_of_date])`. A snapshot is a table snapshot id (an integer)
//! or a time (`'2026-12-01T10:00:00Z'`, `'2026-12-01 10:00:00'` in UTC, or a date: its midnight
//! UTC): the table as it was then.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use vintagelake_schemas::Date;
use vintagelake_storage::ViewSource;
use vintagelake_storage::scan::{SnapshotSelector, View, ViewName};

use crate::SeriesFilter;
use crate::tables::ViewTable;

/// Registers the functions; those not naming a snapshot read `pinned` (the session's tables' one).
pub(crate) fn register(
    ctx: &SessionContext,
    source: &Arc<dyn ViewSource>,
    pinned: SnapshotSelector,
    visible: &Arc<dyn SeriesFilter>,
    chunk_rows: usize,
) {
    let common = Common { source: source.clone(), pinned, visible: visible.clone(), chunk_rows };
    ctx.register_udtf("as_of", Arc::new(AsOf(common.clone())));
    ctx.register_udtf("at_snapshot", Arc::new(AtSnapshot(common)));
}

#[derive(Debug, Clone)]
struct Common {
    source: Arc<dyn ViewSource>,
    pinned: SnapshotSelector,
    visible: Arc<dyn SeriesFilter>,
    chunk_rows: usize,
}

impl Common {
    fn table(&self, view: View, name: &'static str, snapshot: SnapshotSelector) -> Arc<dyn TableProvider> {
        Arc::new(ViewTable::new(self.source.clone(), view, name, snapshot, self.visible.clone(), self.chunk_rows))
    }
}

#[derive(Debug)]
struct AsOf(Common);

impl TableFunctionImpl for AsOf {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        let usage = "as_of(date [, snapshot]): as_of('2020-05-01'), as_of('2020-05-01', 8312974419261)";
        let (date, snapshot) = match args {
            [date] => (date_arg(date, usage)?, self.0.pinned),
            [date, snapshot] => (date_arg(date, usage)?, snapshot_arg(snapshot, usage)?),
            _ => return Err(plan(format!("{usage}: takes 1 or 2 arguments, got {}", args.len()))),
        };
        Ok(self.0.table(View::AsOf(date), "as_of", snapshot))
    }
}

#[derive(Debug)]
struct AtSnapshot(Common);

impl TableFunctionImpl for AtSnapshot {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        let usage = "at_snapshot(view, snapshot [, as_of_date]): at_snapshot('latest', 8312974419261), \
                     at_snapshot('as_of', '2026-12-01T00:00:00Z', '2020-05-01')";
        let (view, snapshot, date) = match args {
            [view, snapshot] => (string_arg(view, usage)?, snapshot_arg(snapshot, usage)?, None),
            [view, snapshot, date] => {
                (string_arg(view, usage)?, snapshot_arg(snapshot, usage)?, Some(date_arg(date, usage)?))
            }
            _ => return Err(plan(format!("{usage}: takes 2 or 3 arguments, got {}", args.len()))),
        };
        if view == "data_points" {
            if date.is_some() {
                return Err(plan(format!("{usage}: a date is only meaningful with view as_of")));
            }
            return Ok(self.0.table(View::AllRevisions, "data_points", snapshot));
        }
        let name: ViewName = view.parse().map_err(|e| plan(format!("{usage}: {e}")))?;
        let view = name.with_date(date).map_err(|e| plan(format!("{usage}: date {e}")))?;
        Ok(self.0.table(view, name.as_str(), snapshot))
    }
}

fn plan(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v),
        Expr::Cast(c) => literal(&c.expr),
        _ => None,
    }
}

fn string_arg(expr: &Expr, usage: &str) -> Result<String> {
    match literal(expr) {
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
            Ok(s.clone())
        }
        _ => Err(plan(format!("{usage}: expected a string constant, got {expr}"))),
    }
}

fn date_arg(expr: &Expr, usage: &str) -> Result<Date> {
    match literal(expr) {
        Some(ScalarValue::Date32(Some(d))) => Ok(Date::from_days_since_epoch(*d)),
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
            Date::parse_iso(s).ok_or_else(|| plan(format!("{usage}: {s:?} is not a date (YYYY-MM-DD)")))
        }
        _ => Err(plan(format!("{usage}: expected a date constant, got {expr}"))),
    }
}

fn snapshot_arg(expr: &Expr, usage: &str) -> Result<SnapshotSelector> {
    let ms_of = |s: &str| -> Option<i64> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Some(t.timestamp_millis());
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
                return Some(t.and_utc().timestamp_millis());
            }
        }
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis())
    };
    match literal(expr) {
        Some(ScalarValue::Int64(Some(id))) => Ok(SnapshotSelector::Id(*id)),
        Some(ScalarValue::Int32(Some(id))) => Ok(SnapshotSelector::Id(i64::from(*id))),
        Some(ScalarValue::UInt64(Some(id))) => {
            Ok(SnapshotSelector::Id(i64::try_from(*id).map_err(|_| plan(format!("{usage}: no snapshot {id}")))?))
        }
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => ms_of(s)
            .map(SnapshotSelector::AsOfTimestampMs)
            .ok_or_else(|| plan(format!("{usage}: {s:?} is neither a snapshot id nor a time"))),
        Some(ScalarValue::TimestampSecond(Some(v), _)) => Ok(SnapshotSelector::AsOfTimestampMs(v * 1000)),
        Some(ScalarValue::TimestampMillisecond(Some(v), _)) => Ok(SnapshotSelector::AsOfTimestampMs(*v)),
        Some(ScalarValue::TimestampMicrosecond(Some(v), _)) => Ok(SnapshotSelector::AsOfTimestampMs(v / 1000)),
        Some(ScalarValue::TimestampNanosecond(Some(v), _)) => Ok(SnapshotSelector::AsOfTimestampMs(v / 1_000_000)),
        _ => Err(plan(format!("{usage}: expected a snapshot id or a time, got {expr}"))),
    }
}
