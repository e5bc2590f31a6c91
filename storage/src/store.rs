//! The seed's storage trait (`FinancialDataStorage`) and its backends: Iceberg tables (V2) and an
//! in-memory store for unit tests of other crates. Both answer vintage queries with the same
//! resolution code, so they agree row for row.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arrow::array::RecordBatch;
use async_trait::async_trait;
use futures::TryStreamExt;
use vintagelake_schemas::table::{
    StoredDataPoint, batch_to_stored_data_points, batch_to_stored_series, stored_data_points_to_batch,
    stored_series_to_batch,
};
use vintagelake_schemas::{DataPoint, Date, EconomicSeries, SeriesId};

use crate::catalog::{TableKind, Warehouse};
use crate::commit::{CommitKind, CommitRequest, Committed, OffsetUpdate, RetryPolicy, commit, recorded_offsets};
use crate::error::{Result, StorageError};
use crate::scan::{SnapshotSelector, View, VintageQuery, query_table, resolve};
use crate::write::{Encoding, write_data_files};

/// The seed's storage abstraction, with revisions: `read_data_points` returns every revision of
/// the series in the date range (corrections applied), sorted by date then revision date;
/// [`FinancialDataStorage::query`] answers the vintage views.
#[async_trait]
pub trait FinancialDataStorage: Send + Sync {
    /// Appends series metadata rows, each with its sequence number (a later one wins).
    async fn append_series_rows(&self, rows: &[(EconomicSeries, i64)]) -> Result<()>;
    /// Appends revisions with their vintage bookkeeping, as one write.
    async fn append_revision_rows(&self, rows: &[StoredDataPoint]) -> Result<()>;
    /// Series metadata rows with their sequence numbers; with `only`, at least that id's.
    async fn series_rows(&self, only: Option<&SeriesId>) -> Result<Vec<(EconomicSeries, i64)>>;
    /// `n` consecutive sequence numbers for an API write, after every earlier one of this store.
    fn next_seq(&self, n: usize) -> i64;
    /// A vintage view (schema: [`crate::scan::view_schema`]).
    async fn query(&self, query: &VintageQuery) -> Result<RecordBatch>;

    async fn write_series(&self, series: &EconomicSeries) -> Result<()> {
        self.append_series_rows(&[(series.clone(), self.next_seq(1))]).await
    }

    async fn read_series(&self, series_id: &SeriesId) -> Result<Option<EconomicSeries>> {
        let rows = self.series_rows(Some(series_id)).await?.into_iter().filter(|(s, _)| &s.id == series_id).collect();
        Ok(latest_per_series(rows).pop())
    }

    /// Writes revisions of one series (every point must carry `series_id`); empty: nothing.
    async fn write_data_points(&self, series_id: &SeriesId, points: &[DataPoint]) -> Result<()> {
        check_series(series_id, points)?;
        if points.is_empty() {
            return Ok(());
        }
        let first = self.next_seq(points.len());
        let rows: Vec<StoredDataPoint> =
            points.iter().enumerate().map(|(i, p)| StoredDataPoint::of_point(p.clone(), first + i as i64)).collect();
        self.append_revision_rows(&rows).await
    }

    /// Every revision of a series in a date range (the `all_revisions` view as records).
    async fn read_data_points(
        &self,
        series_id: &SeriesId,
        start_date: Option<Date>,
        end_date: Option<Date>,
    ) -> Result<Vec<DataPoint>> {
        let q = VintageQuery::new(View::AllRevisions).series([series_id.clone()]).between(start_date, end_date);
        revisions(&self.query(&q).await?)
    }

    /// Series metadata, the latest message per id.
    async fn list_series(&self) -> Result<Vec<EconomicSeries>> {
        Ok(latest_per_series(self.series_rows(None).await?))
    }
}

/// Where ingest commits rows with the Kafka positions they cover: the Iceberg tables (V2) or a
/// V1 Parquet store. Both record positions atomically with the rows, so a restarted consumer
/// resumes exactly where the last commit ended.
#[async_trait]
pub trait IngestTarget: Send + Sync + std::fmt::Debug {
    /// Writes rows (table schema) to new files and commits them with `offsets`, as one change.
    async fn append(
        &self,
        kind: TableKind,
        batches: &[RecordBatch],
        offsets: Vec<OffsetUpdate>,
        origin: &str,
    ) -> Result<Committed>;
    /// The Kafka positions recorded in a table: (topic, partition) → next offset.
    async fn recorded_offsets(&self, kind: TableKind) -> Result<BTreeMap<(String, i32), i64>>;
    /// A cheap check that the store answers (for `/ready`); says what it checked.
    async fn probe(&self) -> Result<String>;
    /// Where the rows go, for logs.
    fn describe(&self) -> String;
}

pub(crate) fn check_series(series_id: &SeriesId, points: &[DataPoint]) -> Result<()> {
    match points.iter().find(|p| &p.series_id != series_id) {
        Some(p) => Err(StorageError::InvalidData(format!(
            "write_data_points for {series_id} got a point of series {}",
            p.series_id
        ))),
        None => Ok(()),
    }
}

/// Arrival order for writes that do not come from Kafka: microseconds since the epoch, made
/// strictly increasing within the process.
#[derive(Debug, Default)]
pub struct Sequencer(AtomicI64);

impl Sequencer {
    pub fn next(&self, n: usize) -> i64 {
        let now = chrono::Utc::now().timestamp_micros();
        let n = n as i64;
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let start = now.max(cur + 1);
            match self.0.compare_exchange(cur, start + n - 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return start,
                Err(actual) => cur = actual,
            }
        }
    }
}

pub(crate) fn latest_per_series(mut rows: Vec<(EconomicSeries, i64)>) -> Vec<EconomicSeries> {
    rows.sort_by(|a, b| a.0.id.cmp(&b.0.id).then(a.1.cmp(&b.1)));
    let mut out: Vec<EconomicSeries> = Vec::new();
    for (s, _) in rows {
        match out.last_mut() {
            Some(last) if last.id == s.id => *last = s,
            _ => out.push(s),
        }
    }
    out
}

fn revisions(batch: &RecordBatch) -> Result<Vec<DataPoint>> {
    Ok(vintagelake_schemas::arrow::batch_to_data_points(batch)?)
}

/// Iceberg tables (V2): the production backend. Clones share the warehouse, the arrival clock
/// and the API writers' group commit.
#[derive(Debug, Clone)]
pub struct IcebergStore {
    wh: Arc<Warehouse>,
    retry: RetryPolicy,
    concurrency: usize,
    seq: Arc<Sequencer>,
    group: Arc<crate::group::GroupCommit>,
}

impl IcebergStore {
    pub fn new(wh: Arc<Warehouse>) -> Self {
        Self { wh, retry: RetryPolicy::default(), concurrency: 8, seq: Arc::default(), group: Arc::default() }
    }

    /// Parallel file reads and writes one operation may use.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn warehouse(&self) -> &Arc<Warehouse> {
        &self.wh
    }

    /// Writes rows (table schema) to new files and commits them, with the Kafka offsets they cover,
    /// as one append. If the commit fails (fenced, conflicts exhausted), the new files are deleted;
    /// if its outcome is unknown they are kept.
    pub async fn append(
        &self,
        kind: TableKind,
        batches: &[RecordBatch],
        offsets: Vec<OffsetUpdate>,
        origin: &str,
    ) -> Result<Committed> {
        if kind != TableKind::DataPoints {
            return self
                .write_tiers_and_commit(kind, &[(None, batches.to_vec())], Encoding::Fresh, |files| {
                    CommitRequest::append(files, origin).with_offsets(offsets)
                })
                .await;
        }
        self.append_arrivals(batches, offsets, origin, true).await
    }

    /// Appends rows copied from another store with the arrival numbers they carry (a migration):
    /// the table's mark moves past them, so later arrivals still answer over them.
    pub async fn append_copied(
        &self,
        kind: TableKind,
        batches: &[RecordBatch],
        offsets: Vec<OffsetUpdate>,
        origin: &str,
    ) -> Result<Committed> {
        if kind != TableKind::DataPoints {
            return self.append(kind, batches, offsets, origin).await;
        }
        self.append_arrivals(batches, offsets, origin, false).await
    }

    /// A data_points append with arrival numbers after the table's mark (`renumber`), or as
    /// given; again (files rewritten) if another writer's append moved the mark meanwhile.
    async fn append_arrivals(
        &self,
        batches: &[RecordBatch],
        offsets: Vec<OffsetUpdate>,
        origin: &str,
        renumber: bool,
    ) -> Result<Committed> {
        let kind = TableKind::DataPoints;
        let name = self.wh.ident(kind).to_string();
        crate::arrivals::append_numbered(
            &name,
            batches,
            renumber,
            self.retry.max_attempts,
            || async {
                let table = self.wh.load(kind).await?;
                let expected = crate::commit::arrival_mark(table.metadata());
                let after = match expected {
                    Some(mark) => mark,
                    None => legacy_arrival_mark(&self.wh, &table).await?,
                };
                Ok(crate::arrivals::MarkRead { context: table, expected, after })
            },
            |table, rows, range| {
                let offsets = offsets.clone();
                async move {
                    self.write_and_commit_on(&table, kind, &[(None, rows)], Encoding::Fresh, |files| {
                        CommitRequest::append(files, origin).with_offsets(offsets).with_arrivals(Some(range))
                    })
                    .await
                }
            },
        )
        .await
    }

    /// Writes each group of rows into its tier (`None`: the hot tier), then one commit; when the
    /// commit is known not to have happened the files written are removed again (never when its
    /// outcome is unknown: the orphan scan decides once the catalog answers).
    async fn write_tiers_and_commit(
        &self,
        kind: TableKind,
        groups: &[(Option<crate::config::TierName>, Vec<RecordBatch>)],
        encoding: Encoding,
        request: impl FnOnce(Vec<iceberg::spec::DataFile>) -> CommitRequest,
    ) -> Result<Committed> {
        let table = self.wh.load(kind).await?;
        self.write_and_commit_on(&table, kind, groups, encoding, request).await
    }

    /// [`Self::write_tiers_and_commit`] with the table already loaded (its schema and spec shape
    /// the files; the commit itself re-reads the current state).
    async fn write_and_commit_on(
        &self,
        table: &iceberg::table::Table,
        kind: TableKind,
        groups: &[(Option<crate::config::TierName>, Vec<RecordBatch>)],
        encoding: Encoding,
        request: impl FnOnce(Vec<iceberg::spec::DataFile>) -> CommitRequest,
    ) -> Result<Committed> {
        let files = self.write_files_on(table, kind, groups, encoding).await?;
        self.commit_files(kind, request(files)).await
    }

    /// Writes rows (table schema) into new data files, one group per tier (`None`: the hot tier),
    /// ready for [`Self::commit_files`]: nothing is visible in the table until then.
    pub async fn write_files(
        &self,
        kind: TableKind,
        groups: &[(Option<crate::config::TierName>, Vec<RecordBatch>)],
        encoding: Encoding,
    ) -> Result<Vec<iceberg::spec::DataFile>> {
        let table = self.wh.load(kind).await?;
        self.write_files_on(&table, kind, groups, encoding).await
    }

    async fn write_files_on(
        &self,
        table: &iceberg::table::Table,
        kind: TableKind,
        groups: &[(Option<crate::config::TierName>, Vec<RecordBatch>)],
        encoding: Encoding,
    ) -> Result<Vec<iceberg::spec::DataFile>> {
        let mut files = Vec::new();
        for (tier, rows) in groups {
            match write_data_files(&self.wh, table, kind, rows, tier.as_ref(), encoding).await {
                Ok(written) => files.extend(written),
                Err(e) => {
                    self.remove_uncommitted(&files).await;
                    return Err(e);
                }
            }
        }
        Ok(files)
    }

    /// The one way files join a table: commits `request` and, when the commit is known not to
    /// have happened (conflicts exhausted, fenced, refused), removes the data files it would have
    /// added — never when its outcome is unknown (the orphan scan decides once the catalog
    /// answers). Compaction, retention, tier moves and ingest all commit through here.
    pub async fn commit_files(&self, kind: TableKind, request: CommitRequest) -> Result<Committed> {
        let result = commit(&self.wh, kind, &request, &self.retry).await;
        if let Err(e) = &result
            && !e.may_have_committed()
        {
            self.remove_uncommitted(&request.added).await;
        }
        result
    }

    /// Removes data files written for a commit that is known not to have been made.
    pub async fn remove_uncommitted(&self, files: &[iceberg::spec::DataFile]) {
        for f in files {
            if let Err(e) = self.wh.file_io().delete(f.file_path()).await {
                tracing::warn!(path = %f.file_path(), error = %e, "could not remove a data file of a failed commit");
            }
        }
    }

    /// Appends data points (with their vintage bookkeeping) in one commit.
    pub async fn append_points(
        &self,
        rows: &[StoredDataPoint],
        offsets: Vec<OffsetUpdate>,
        origin: &str,
    ) -> Result<Committed> {
        let batch = stored_data_points_to_batch(rows)?;
        self.append(TableKind::DataPoints, &[batch], offsets, origin).await
    }

    /// Atomically replaces `remove` (live data files) with `rows` (table schema, written now).
    pub async fn rewrite(
        &self,
        kind: TableKind,
        remove: Vec<String>,
        rows: &[RecordBatch],
        commit_kind: CommitKind,
        origin: &str,
        summary: BTreeMap<String, String>,
    ) -> Result<Committed> {
        self.write_tiers_and_commit(kind, &[(None, rows.to_vec())], Encoding::Settled, |files| {
            let mut request = CommitRequest::new(commit_kind, files, remove, origin);
            request.summary = summary;
            request
        })
        .await
    }

    /// [`Self::rewrite`] with each group of rows written into its own tier (compaction keeps merged
    /// closed-period files in the tier their inputs were in).
    pub async fn rewrite_into_tiers(
        &self,
        kind: TableKind,
        remove: Vec<String>,
        groups: &[(Option<crate::config::TierName>, Vec<RecordBatch>)],
        commit_kind: CommitKind,
        origin: &str,
        summary: BTreeMap<String, String>,
    ) -> Result<Committed> {
        self.write_tiers_and_commit(kind, groups, Encoding::Settled, |files| {
            let mut request = CommitRequest::new(commit_kind, files, remove, origin);
            request.summary = summary;
            request
        })
        .await
    }

    /// The Kafka positions recorded in a table: (topic, partition) → next offset.
    pub async fn recorded_offsets(&self, kind: TableKind) -> Result<BTreeMap<(String, i32), i64>> {
        Ok(recorded_offsets(self.wh.load(kind).await?.metadata()))
    }

    /// Series rows with their sequence numbers; with `only`, the scan reads just the files whose
    /// statistics can hold that id.
    async fn read_series_rows(&self, only: Option<&SeriesId>) -> Result<Vec<(EconomicSeries, i64)>> {
        let table = self.wh.load(TableKind::Series).await?;
        if table.metadata().current_snapshot().is_none() {
            return Ok(Vec::new());
        }
        let mut scan = table.scan();
        if let Some(id) = only {
            use iceberg::expr::Reference;
            use iceberg::spec::Datum;
            scan = scan
                .with_filter(Reference::new(vintagelake_schemas::arrow::col::ID).equal_to(Datum::string(id.as_str())));
        }
        let scan = scan.build()?;
        let schema = crate::evolve::current_schema(TableKind::Series);
        let batches: Vec<RecordBatch> = match self.wh.decryption() {
            // Iceberg's reader does not decrypt: the planned files are read here (whole; the id
            // filter is applied below).
            Some(keys) => crate::scan::read_planned(&table, &scan, schema.clone(), keys, self.concurrency).await?,
            None => scan.to_arrow().await?.try_collect().await?,
        };
        let mut rows = Vec::new();
        for b in &batches {
            let b =
                crate::evolve::conform_to(&schema, b).map_err(|e| StorageError::InvalidData(format!("series: {e}")))?;
            rows.extend(batch_to_stored_series(&b)?);
        }
        if let Some(id) = only {
            rows.retain(|(s, _)| &s.id == id);
        }
        Ok(rows)
    }

    /// A vintage view of `table` as loaded (a caller that already holds it, e.g. to key a cache
    /// by its snapshot), read with this store's concurrency.
    pub async fn query_table(&self, table: &iceberg::table::Table, query: &VintageQuery) -> Result<RecordBatch> {
        query_table(table, query, self.concurrency, self.wh.decryption()).await
    }

    /// Series metadata, the latest message per id.
    pub async fn latest_series(&self) -> Result<Vec<EconomicSeries>> {
        Ok(latest_per_series(self.read_series_rows(None).await?))
    }
}

#[async_trait]
impl FinancialDataStorage for IcebergStore {
    async fn append_series_rows(&self, rows: &[(EconomicSeries, i64)]) -> Result<()> {
        self.group.append_to(self, TableKind::Series, stored_series_to_batch(rows)?).await.map(|_| ())
    }

    async fn append_revision_rows(&self, rows: &[StoredDataPoint]) -> Result<()> {
        self.group.append_to(self, TableKind::DataPoints, stored_data_points_to_batch(rows)?).await.map(|_| ())
    }

    async fn series_rows(&self, only: Option<&SeriesId>) -> Result<Vec<(EconomicSeries, i64)>> {
        self.read_series_rows(only).await
    }

    fn next_seq(&self, n: usize) -> i64 {
        self.seq.next(n)
    }

    async fn query(&self, query: &VintageQuery) -> Result<RecordBatch> {
        let table = self.wh.load(TableKind::DataPoints).await?;
        self.query_table(&table, query).await
    }
}

#[async_trait]
impl IngestTarget for IcebergStore {
    async fn append(
        &self,
        kind: TableKind,
        batches: &[RecordBatch],
        offsets: Vec<OffsetUpdate>,
        origin: &str,
    ) -> Result<Committed> {
        IcebergStore::append(self, kind, batches, offsets, origin).await
    }

    async fn recorded_offsets(&self, kind: TableKind) -> Result<BTreeMap<(String, i32), i64>> {
        IcebergStore::recorded_offsets(self, kind).await
    }

    async fn probe(&self) -> Result<String> {
        self.wh.metadata_location(TableKind::DataPoints).await?;
        Ok("catalog answered".into())
    }

    fn describe(&self) -> String {
        "iceberg tables".into()
    }
}

/// For a table written before arrival marks: the highest `ingest_seq` its live files' statistics
/// hold (new numbers continue after every number already stored).
async fn legacy_arrival_mark(wh: &Warehouse, table: &iceberg::table::Table) -> Result<i64> {
    use iceberg::spec::PrimitiveLiteral;
    use vintagelake_schemas::table::data_points_ids as field;
    let files = crate::files::live_files(wh, table, None).await?;
    let mut mark = 0;
    for f in &files {
        match f.data_file.upper_bounds().get(&field::INGEST_SEQ).map(|d| d.literal()) {
            Some(PrimitiveLiteral::Long(v)) => mark = mark.max(*v),
            Some(PrimitiveLiteral::Int(v)) => mark = mark.max(i64::from(*v)),
            // No statistics: read the column.
            _ => {
                let rows = crate::files::read_data_file(wh, &f.path).await?;
                mark = mark.max(crate::arrivals::highest(&rows)?.unwrap_or(0));
            }
        }
    }
    Ok(mark)
}

/// Everything in memory (one "snapshot" per write): for unit tests of other crates and demos.
#[derive(Debug, Default)]
pub struct InMemoryStorage {
    points: tokio::sync::RwLock<Vec<Vec<StoredDataPoint>>>,
    series: tokio::sync::RwLock<Vec<(EconomicSeries, i64)>>,
    seq: Sequencer,
}

impl InMemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds rows with explicit vintage bookkeeping (as ingest would).
    pub async fn append_points(&self, rows: Vec<StoredDataPoint>) {
        self.points.write().await.push(rows);
    }
}

#[async_trait]
impl FinancialDataStorage for InMemoryStorage {
    async fn append_series_rows(&self, rows: &[(EconomicSeries, i64)]) -> Result<()> {
        self.series.write().await.extend(rows.iter().cloned());
        Ok(())
    }

    async fn append_revision_rows(&self, rows: &[StoredDataPoint]) -> Result<()> {
        self.append_points(rows.to_vec()).await;
        Ok(())
    }

    async fn series_rows(&self, _only: Option<&SeriesId>) -> Result<Vec<(EconomicSeries, i64)>> {
        Ok(self.series.read().await.clone())
    }

    fn next_seq(&self, n: usize) -> i64 {
        self.seq.next(n)
    }

    async fn query(&self, query: &VintageQuery) -> Result<RecordBatch> {
        let writes = self.points.read().await;
        let visible = match query.snapshot {
            SnapshotSelector::Current => writes.len(),
            // Snapshot n (1-based) = the state after the n-th write.
            SnapshotSelector::Id(n) if n >= 1 && (n as usize) <= writes.len() => n as usize,
            SnapshotSelector::Id(n) => return Err(StorageError::NoSuchSnapshot(n)),
            SnapshotSelector::AsOfTimestampMs(_) => {
                return Err(StorageError::InvalidData("the in-memory store keeps no timestamps".into()));
            }
        };
        let batches = writes[..visible]
            .iter()
            .filter(|w| !w.is_empty())
            .map(|w| stored_data_points_to_batch(w))
            .collect::<Result<Vec<_>, _>>()?;
        resolve(query, &batches)
    }
}

/// A stored data point (the row type of `data_points`).
pub type StoredRow = StoredDataPoint;

/// Reads stored rows (table schema) back, e.g. for checks and migrations.
pub fn stored_rows(batches: &[RecordBatch]) -> Result<Vec<StoredDataPoint>> {
    let mut out = Vec::new();
    for b in batches {
        out.extend(batch_to_stored_data_points(b)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequencer_is_strictly_increasing_across_calls() {
        let s = Sequencer::default();
        let a = s.next(5);
        let b = s.next(1);
        assert!(b >= a + 5, "{a} then {b}");
    }
}
