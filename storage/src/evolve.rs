//! Schema evolution in place, and rows matched to a schema by Iceberg field id.
//!
//! A build that defines new columns adds them to the tables when it first opens them: a new
//! Iceberg schema with the new columns (nullable, their own field ids), committed through the same
//! compare-and-swap as every commit. No data file is rewritten: files written before read the new
//! columns as null, in our reader ([`conform_to`]) as in every Iceberg reader.
//!
//! Columns are matched by field id, never by name, so a column another engine renamed is still
//! ours, and a column another engine added is left alone: our writes fill it with null
//! ([`to_table_columns`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Field, Schema as ArrowSchema, SchemaRef};
use iceberg::MetadataLocation;
use iceberg::spec::{NestedField, Schema, TableMetadata};
use iceberg::table::Table;
use vintagelake_schemas::table::{
    FIELD_ID_KEY, SCHEMA_VERSION, data_points_schema_at, data_points_table_schema, series_schema_at,
    series_table_schema,
};

use crate::catalog::{TableKind, Warehouse};
use crate::error::{Result, StorageError};

/// Table property: the schema version of ours the table's current schema holds.
pub const PROP_SCHEMA_VERSION: &str = "vintagelake.schema-version";
/// Table property prefix: who added schema `<id>` (`vintagelake.schema.<id>.by`) and when (`.at`).
pub const PROP_SCHEMA_PREFIX: &str = "vintagelake.schema.";

/// Our schema of a table at one version (1 or [`SCHEMA_VERSION`]), as Arrow with field ids.
pub fn our_schema(kind: TableKind, version: u32) -> SchemaRef {
    match kind {
        TableKind::DataPoints => data_points_schema_at(version),
        TableKind::Series => series_schema_at(version),
    }
}

/// Our current schema of a table: what readers return and writers are given.
pub fn current_schema(kind: TableKind) -> SchemaRef {
    match kind {
        TableKind::DataPoints => data_points_table_schema(),
        TableKind::Series => series_table_schema(),
    }
}

/// The columns rows of a table are read and rewritten as: our current schema, then every column
/// of the table's current schema that is not ours (added by another engine), under its table name
/// and field id. Lifecycle rewrites carry those columns' values through; views answer them after
/// ours.
pub fn rows_schema(meta: &TableMetadata, kind: TableKind) -> Result<SchemaRef> {
    let ours = current_schema(kind);
    let known: std::collections::HashSet<i32> = ours.fields().iter().filter_map(|f| field_id(f)).collect();
    let table = iceberg::arrow::schema_to_arrow_schema(meta.current_schema())?;
    let foreign: Vec<Field> = table
        .fields()
        .iter()
        .filter(|f| field_id(f).is_some_and(|id| !known.contains(&id)))
        .filter(|f| ours.field_with_name(f.name()).is_err())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    if foreign.is_empty() {
        return Ok(ours);
    }
    let mut fields: Vec<Field> = ours.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(foreign);
    Ok(Arc::new(ArrowSchema::new(fields)))
}

/// Columns of `rows` that are not ours (another engine's), in order.
pub fn foreign_fields(rows: &ArrowSchema, kind: TableKind) -> Vec<Field> {
    let ours = current_schema(kind);
    rows.fields().iter().filter(|f| ours.field_with_name(f.name()).is_err()).map(|f| f.as_ref().clone()).collect()
}

/// Columns of a view answer that are not the view's own (passed through from another engine's
/// columns), in order.
pub fn foreign_view_fields(answer: &ArrowSchema) -> Vec<Field> {
    let view = crate::scan::view_schema();
    answer.fields().iter().filter(|f| view.field_with_name(f.name()).is_err()).map(|f| f.as_ref().clone()).collect()
}

/// The field id an Arrow field carries, if any.
pub fn field_id(f: &Field) -> Option<i32> {
    f.metadata().get(FIELD_ID_KEY).and_then(|v| v.parse().ok())
}

/// The columns our schema `version` needs and the table's current schema lacks, checked against
/// what the table holds: a field id of ours taken by another column of another type, or a name of
/// ours taken by a column with another field id, is an error naming both (nothing is changed).
pub fn missing_columns(meta: &TableMetadata, kind: TableKind, version: u32) -> Result<Vec<NestedField>> {
    let ours = iceberg::arrow::arrow_schema_to_schema(&our_schema(kind, version))?;
    let table = meta.current_schema();
    let mut missing = Vec::new();
    for f in ours.as_struct().fields() {
        match table.field_by_id(f.id) {
            Some(t) if t.field_type == f.field_type => {}
            Some(t) => {
                return Err(StorageError::InvalidData(format!(
                    "table {}: field id {} is column {:?} of type {} in the table, but this version of vintagelake \
                     needs it to be {:?} of type {}; the table was changed by another engine in a way this build \
                     cannot use",
                    kind.name(),
                    f.id,
                    t.name,
                    t.field_type,
                    f.name,
                    f.field_type
                )));
            }
            None => {
                if let Some(t) = table.field_by_name(&f.name) {
                    return Err(StorageError::InvalidData(format!(
                        "table {}: cannot add column {:?} (field id {}): the table already has a column of that name \
                         with field id {} (added by another engine); rename that column, then start again",
                        kind.name(),
                        f.name,
                        f.id,
                        t.id
                    )));
                }
                let mut f = f.as_ref().clone();
                f.required = false;
                missing.push(f);
            }
        }
    }
    Ok(missing)
}

/// Brings a table's schema up to our schema `version`: adds the columns it lacks in one commit
/// (compare-and-swap; retried from the new state if another process committed first). Returns
/// the columns added (empty when there was nothing to do). Never removes or changes a column.
pub async fn evolve(wh: &Warehouse, kind: TableKind, version: u32) -> Result<Vec<String>> {
    const ATTEMPTS: u32 = 20;
    for attempt in 1..=ATTEMPTS {
        let table = wh.load(kind).await?;
        let meta = table.metadata();
        let missing = missing_columns(meta, kind, version)?;
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let current = table.metadata_location_result()?.to_owned();
        let names: Vec<String> = missing.iter().map(|f| f.name.clone()).collect();
        let new_id = meta.schemas_iter().map(|s| s.schema_id()).max().unwrap_or(0) + 1;
        let schema = meta
            .current_schema()
            .as_ref()
            .clone()
            .into_builder()
            .with_schema_id(new_id)
            .with_fields(missing.into_iter().map(Arc::new))
            .build()?;
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let properties = HashMap::from([
            (PROP_SCHEMA_VERSION.to_owned(), version.to_string()),
            (format!("{PROP_SCHEMA_PREFIX}{new_id}.by"), who()),
            (format!("{PROP_SCHEMA_PREFIX}{new_id}.at"), at),
            (format!("{PROP_SCHEMA_PREFIX}{new_id}.added"), names.join(",")),
        ]);
        let new_meta = meta
            .clone()
            .into_builder(Some(current.clone()))
            .add_current_schema(schema)?
            .set_properties(properties)?
            .build()?
            .metadata;
        let location = MetadataLocation::from_str(&current)?.with_next_version().with_new_metadata(&new_meta);
        new_meta.write_to(wh.file_io(), &location).await?;
        let staged = location.to_string();
        let swapped = match wh.swap_metadata_location(kind, &current, &staged).await {
            Ok(s) => s,
            Err(e) => crate::commit::settle_ambiguous_swap(wh, kind, &current, &staged, e).await?,
        };
        if swapped {
            tracing::info!(table = kind.name(), schema_id = new_id, version, columns = ?names, "evolved the table's schema");
            let entry = vintagelake_runtime::audit::AuditEntry::new("schema", "evolve")
                .table(kind.name())
                .detail(serde_json::json!({ "schema_id": new_id, "version": version, "added": names, "by": who() }));
            if let Err(e) = wh.audit().append(&entry) {
                tracing::warn!(error = %e, "could not record the schema change in the audit trail");
            }
            return Ok(names);
        }
        crate::commit::discard(wh, vec![staged]).await;
        tracing::debug!(table = kind.name(), attempt, "schema change lost a race; looking again");
        tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
    }
    Err(StorageError::TooManyConflicts {
        table: wh.ident(kind).to_string(),
        attempts: ATTEMPTS,
        last: "the schema change kept losing to other commits".into(),
    })
}

/// Who changed a schema, for the table's properties: this build and process.
fn who() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into());
    let command = std::env::args().nth(1).unwrap_or_default();
    format!("vintagelake {} {command} (pid {} on {host})", env!("CARGO_PKG_VERSION"), std::process::id())
}

/// One schema of a table's history, for `admin schema`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SchemaEntry {
    pub schema_id: i32,
    pub current: bool,
    /// `name: type` (`?` when optional) with the field id, in order.
    pub columns: Vec<(i32, String, String, bool)>,
    /// Columns this schema has that the one before it lacked.
    pub added: Vec<String>,
    /// Who and when, as recorded by the vintagelake process that added it (absent for the first
    /// schema and for schemas other engines added).
    pub by: Option<String>,
    pub at: Option<String>,
}

/// Every schema the table has had, oldest first.
pub fn schema_history(table: &Table) -> Vec<SchemaEntry> {
    let meta = table.metadata();
    let mut schemas: Vec<_> = meta.schemas_iter().cloned().collect();
    schemas.sort_by_key(|s| s.schema_id());
    let props = meta.properties();
    let mut before: Option<Arc<Schema>> = None;
    let mut out = Vec::new();
    for s in schemas {
        let columns = s
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.id, f.name.clone(), f.field_type.to_string(), f.required))
            .collect();
        let added = match &before {
            Some(b) => s
                .as_struct()
                .fields()
                .iter()
                .filter(|f| b.field_by_id(f.id).is_none())
                .map(|f| f.name.clone())
                .collect(),
            None => Vec::new(),
        };
        let prop = |k: &str| props.get(&format!("{PROP_SCHEMA_PREFIX}{}.{k}", s.schema_id())).cloned();
        out.push(SchemaEntry {
            schema_id: s.schema_id(),
            current: s.schema_id() == meta.current_schema_id(),
            columns,
            added,
            by: prop("by"),
            at: prop("at"),
        });
        before = Some(s);
    }
    out
}

/// A batch read from a data file, as rows of `target` (our schema): each column found by field id
/// (by name only when the file carries no field ids at all), a column the file predates filled
/// with null, types cast where an engine wrote another Arrow type of the same Iceberg type (e.g.
/// large strings). Columns of the file we do not know are dropped.
pub fn conform_to(target: &SchemaRef, batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
    let schema = batch.schema();
    let by_id: HashMap<i32, usize> =
        schema.fields().iter().enumerate().filter_map(|(i, f)| field_id(f).map(|id| (id, i))).collect();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for f in target.fields() {
        let found = match field_id(f) {
            Some(id) if !by_id.is_empty() => by_id.get(&id).copied(),
            _ => schema.index_of(f.name()).ok(),
        };
        let column = match found {
            Some(i) => batch.column(i).clone(),
            None if f.is_nullable() => new_null_array(f.data_type(), batch.num_rows()),
            None => return Err(format!("no column {} (field id {:?})", f.name(), field_id(f))),
        };
        let column = if column.data_type() == f.data_type() {
            column
        } else {
            arrow::compute::cast(&column, f.data_type()).map_err(|e| format!("column {}: {e}", f.name()))?
        };
        columns.push(column);
    }
    RecordBatch::try_new(target.clone(), columns).map_err(|e| e.to_string())
}

/// Rows in our schema, as the table's current columns for a data file: each table column by field
/// id, under the table's name; columns the table has and we do not (added by another engine)
/// null. A column of ours the table lacks may only be dropped if it holds no value — never
/// silently lose data (that happens only if the table is older than this build's schema, which
/// [`evolve`] prevents for every process that opens it).
pub fn to_table_columns(table_schema: &ArrowSchema, batch: &RecordBatch) -> Result<RecordBatch> {
    let ours = batch.schema();
    let by_id: HashMap<i32, usize> =
        ours.fields().iter().enumerate().filter_map(|(i, f)| field_id(f).map(|id| (id, i))).collect();
    let mut used = vec![false; ours.fields().len()];
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table_schema.fields().len());
    for f in table_schema.fields() {
        let found = field_id(f).and_then(|id| by_id.get(&id).copied());
        match found {
            Some(i) => {
                used[i] = true;
                columns.push(batch.column(i).clone());
            }
            None if f.is_nullable() => columns.push(new_null_array(f.data_type(), batch.num_rows())),
            None => {
                return Err(StorageError::InvalidData(format!(
                    "the table has a required column {:?} (field id {:?}) this build does not write",
                    f.name(),
                    field_id(f)
                )));
            }
        }
    }
    for (i, f) in ours.fields().iter().enumerate() {
        if !used[i] && batch.column(i).null_count() != batch.num_rows() {
            return Err(StorageError::InvalidData(format!(
                "the table has no column {:?} (field id {:?}) for rows that carry it; its schema is older than \
                 this build's (version {SCHEMA_VERSION}): open it with this build to evolve it",
                f.name(),
                field_id(f)
            )));
        }
    }
    Ok(RecordBatch::try_new(Arc::new(table_schema.clone()), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vintagelake_schemas::table::{StoredDataPoint, stored_data_points_to_batch};

    fn rows() -> RecordBatch {
        let sid: vintagelake_schemas::SeriesId = "GDPC1".parse().unwrap();
        let d = vintagelake_schemas::Date::parse_iso("2024-01-01").unwrap();
        let point = vintagelake_schemas::DataPoint {
            id: vintagelake_schemas::model::derived_data_point_id(&sid, d, d),
            series_id: sid,
            date: d,
            value: Some(1.0),
            revision_date: d,
            is_original_release: true,
            created_at: vintagelake_schemas::Timestamp::from_nanos(0),
            updated_at: vintagelake_schemas::Timestamp::from_nanos(0),
        };
        let mut with_status = StoredDataPoint::of_point(point.clone(), 1);
        with_status.status = Some("P".into());
        stored_data_points_to_batch(&[StoredDataPoint::of_point(point, 0), with_status]).unwrap()
    }

    #[test]
    fn old_files_read_new_columns_as_null_and_renamed_columns_by_id() {
        let batch = rows();
        // A file of schema version 1 whose `value` column another engine renamed.
        let v1 = data_points_schema_at(1);
        let renamed: Vec<Field> = v1
            .fields()
            .iter()
            .map(|f| if f.name() == "value" { f.as_ref().clone().with_name("obs_value") } else { f.as_ref().clone() })
            .collect();
        let old = RecordBatch::try_new(Arc::new(ArrowSchema::new(renamed)), batch.columns()[..10].to_vec()).unwrap();
        let read = conform_to(&data_points_table_schema(), &old).unwrap();
        assert_eq!(read.schema(), data_points_table_schema());
        assert_eq!(read.column_by_name("value").unwrap(), batch.column_by_name("value").unwrap());
        assert_eq!(read.column_by_name("status").unwrap().null_count(), 2);
        // A required column missing is an error naming it.
        let broken = old.project(&[0, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        let e = conform_to(&data_points_table_schema(), &broken).unwrap_err();
        assert!(e.contains("series_id"), "{e}");
    }

    #[test]
    fn writes_fill_foreign_columns_and_refuse_to_drop_values() {
        let batch = rows();
        // The table: our columns, `comment` renamed, plus one another engine added.
        let mut fields: Vec<Field> = data_points_table_schema()
            .fields()
            .iter()
            .map(|f| if f.name() == "comment" { f.as_ref().clone().with_name("note") } else { f.as_ref().clone() })
            .collect();
        fields.push(
            Field::new("source_flag", arrow::datatypes::DataType::Utf8, true)
                .with_metadata(HashMap::from([(FIELD_ID_KEY.to_owned(), "13".to_owned())])),
        );
        let table = ArrowSchema::new(fields);
        let out = to_table_columns(&table, &batch).unwrap();
        assert_eq!(out.schema().field(11).name(), "note");
        assert_eq!(out.column_by_name("source_flag").unwrap().null_count(), 2);
        assert_eq!(out.column_by_name("status").unwrap(), batch.column_by_name("status").unwrap());
        // A version-1 table: rows without status/comment fit, a row with a status does not.
        let v1 = data_points_schema_at(1);
        assert!(to_table_columns(&v1, &batch.slice(0, 1)).is_ok());
        let e = to_table_columns(&v1, &batch).unwrap_err().to_string();
        assert!(e.contains("status"), "{e}");
    }
}
