//! What the query service reads through, whichever backend holds the tables: the Iceberg tables
//! (through the warm [`TableReader`](crate::reader::TableReader)) or Storage V1 (`vintagelake-v1`).
//! One interface, so the same Flight API answers over both (the seed's "same API for V1 and V2").

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use vintagelake_schemas::EconomicSeries;

use crate::error::Result;
use crate::scan::{Explain, SnapshotSelector, VintageQuery};

/// A store the query service can answer from.
#[async_trait]
pub trait ViewSource: Send + Sync + std::fmt::Debug {
    /// The backend's name in logs and `health` ("iceberg", "parquet").
    fn backend(&self) -> &'static str;
    /// The table version `selector` names now (an Iceberg snapshot id, a V1 log version); `None`
    /// while the table is empty. Answers are cached by it: a commit makes a new one.
    async fn version(&self, selector: SnapshotSelector) -> Result<Option<i64>>;
    /// The view's rows at the version `query.snapshot` names, and that version.
    async fn answer(&self, query: &VintageQuery) -> Result<(RecordBatch, Option<i64>)>;
    /// The answer as a stream of batches held in bounded memory (about `chunk_rows` stored rows
    /// at a time), and the version it reads. The default reads the whole answer at once.
    async fn answer_stream(
        self: Arc<Self>,
        query: VintageQuery,
        chunk_rows: usize,
    ) -> Result<(BoxStream<'static, Result<RecordBatch>>, Option<i64>)> {
        let _ = chunk_rows;
        let (batch, version) = self.answer(&query).await?;
        Ok((stream::iter([Ok(batch)]).boxed(), version))
    }

    /// How `query` would be read, without reading rows.
    async fn explain(&self, query: &VintageQuery) -> Result<Explain>;
    /// A tag that changes whenever the series table does (its metadata location, a log version).
    async fn series_version(&self) -> Result<String>;
    /// The latest metadata of every series.
    async fn series_catalogue(&self) -> Result<Vec<EconomicSeries>>;
    /// Drops what is kept in memory: the next read starts from the catalog (or the log).
    fn forget(&self) {}
    /// Columns another engine added to the table, as views answer them after ours (as of the
    /// newest table state read; none by default).
    fn foreign_columns(&self) -> Vec<arrow::datatypes::Field> {
        Vec::new()
    }
}
