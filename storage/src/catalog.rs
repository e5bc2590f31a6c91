//! The warehouse: an Iceberg SQL catalog (SQLite under `DATA_DIR` by default, Postgres by URL),
//! the `data_points` and `series` tables created on first use, the tier-routed FileIO, and the
//! compare-and-swap on the catalog row that every commit of ours goes through.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::spec::{
    NullOrder, Schema, SortDirection, SortField, SortOrder, Transform, UnboundPartitionField, UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlBindStyle, SqlCatalog,
    SqlCatalogBuilder,
};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use vintagelake_schemas::arrow::col;
use vintagelake_schemas::table::{DATA_POINTS_TABLE, SCHEMA_VERSION, SERIES_TABLE};

use crate::config::TierName;
use crate::error::{Result, StorageError};
use crate::io::{TierRouter, TierSpec, TieredStorageFactory, absolute};

/// Name the catalog rows are stored under (pyiceberg's `SqlCatalog` must be given the same name).
pub const DEFAULT_CATALOG_NAME: &str = "vintagelake";
/// Namespace of our tables.
pub const DEFAULT_NAMESPACE: &str = "econ";
/// Target size of data files written by ingest and compaction (Iceberg's own default).
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Table property with the target data file size.
pub const PROP_TARGET_FILE_SIZE: &str = "write.target-file-size-bytes";

/// Which of our tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    DataPoints,
    Series,
}

impl TableKind {
    pub fn name(self) -> &'static str {
        match self {
            TableKind::DataPoints => DATA_POINTS_TABLE,
            TableKind::Series => SERIES_TABLE,
        }
    }

    pub fn all() -> [TableKind; 2] {
        [TableKind::DataPoints, TableKind::Series]
    }
}

/// How to open the warehouse.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    /// Holds the SQLite catalog (unless `catalog_url` is set) and the default warehouse directory.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default `sqlite://<data_dir>/catalog.sqlite`.
    pub catalog_url: Option<String>,
    pub catalog_name: String,
    pub namespace: String,
    /// Tiers, hottest first. New data files go to the first; default: `hot` = `<data_dir>/warehouse`.
    pub tiers: Vec<TierSpec>,
    pub target_file_size: u64,
    /// The schema version tables are created with and evolved to when opened (default: this
    /// build's, [`SCHEMA_VERSION`]). Older versions exist to create the tables an older release
    /// made (upgrade tests); a table is never taken back to an older version.
    pub schema_version: u32,
    /// Encryption at rest of the data files written (`None`: plaintext). Reading needs it for any
    /// encrypted file, whatever this setting was when the file was written.
    pub encryption: Option<crate::crypto::Encryption>,
}

impl WarehouseConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            catalog_url: None,
            catalog_name: DEFAULT_CATALOG_NAME.to_owned(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            tiers: Vec::new(),
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            schema_version: SCHEMA_VERSION,
            encryption: None,
        }
    }

    pub fn with_encryption(mut self, encryption: crate::crypto::Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    pub fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    pub fn with_catalog_url(mut self, url: impl Into<String>) -> Self {
        self.catalog_url = Some(url.into());
        self
    }

    pub fn with_tiers(mut self, tiers: Vec<TierSpec>) -> Self {
        self.tiers = tiers;
        self
    }

    pub fn with_target_file_size(mut self, bytes: u64) -> Self {
        self.target_file_size = bytes;
        self
    }

    pub fn with_namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }
}

/// The opened warehouse. Cheap to share (`Arc`); every daemon of a process uses one.
#[derive(Debug)]
pub struct Warehouse {
    catalog: SqlCatalog,
    pool: AnyPool,
    dollar_params: bool,
    catalog_name: String,
    catalog_url: String,
    namespace: NamespaceIdent,
    file_io: FileIO,
    router: Arc<TierRouter>,
    hot_tier: TierName,
    warehouse_url: String,
    target_file_size: u64,
    audit: vintagelake_runtime::audit::AuditLog,
    pending_reads: crate::access::PendingReads,
    /// Per table: the newest schema id loaded and the rows schema it gives.
    rows_schemas: std::sync::Mutex<HashMap<TableKind, (i32, arrow::datatypes::SchemaRef)>>,
    encryption: Option<crate::crypto::Encryption>,
}

impl Warehouse {
    /// Opens (and on first use creates) the catalog, the namespace and both tables.
    pub async fn open(config: WarehouseConfig) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let data_dir = absolute(&config.data_dir)?;
        let warehouse_dir = data_dir.join("warehouse");
        let mut tiers = config.tiers.clone();
        if tiers.is_empty() {
            tiers.push(TierSpec::local("hot", &warehouse_dir));
        }
        for t in &tiers {
            if let crate::io::TierTarget::Local { dir } = &t.target {
                std::fs::create_dir_all(dir).map_err(|e| StorageError::Tier {
                    tier: t.name.clone(),
                    reason: format!("{}: {e}", dir.display()),
                })?;
            }
        }
        let hot_tier = tiers[0].name.clone();
        let router = Arc::new(TierRouter::new(&tiers)?);
        let url = config
            .catalog_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("catalog.sqlite").display()));
        let dollar_params = url.starts_with("postgres");
        let warehouse_url = format!("file://{}", warehouse_dir.display());
        let open_err =
            |e: Box<dyn std::error::Error + Send + Sync>| StorageError::OpenCatalog { url: redact(&url), source: e };

        let props = HashMap::from([
            (SQL_CATALOG_PROP_URI.to_owned(), url.clone()),
            (SQL_CATALOG_PROP_WAREHOUSE.to_owned(), warehouse_url.clone()),
            (
                SQL_CATALOG_PROP_BIND_STYLE.to_owned(),
                if dollar_params { SqlBindStyle::DollarNumeric } else { SqlBindStyle::QMark }.to_string(),
            ),
        ]);
        let catalog = SqlCatalogBuilder::default()
            .with_storage_factory(Arc::new(TieredStorageFactory::new(router.clone())))
            .load(&config.catalog_name, props)
            .await
            .map_err(|e| open_err(Box::new(e)))?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new().max_connections(4).connect(&url).await.map_err(|e| open_err(Box::new(e)))?;
        let file_io = FileIOBuilder::new(Arc::new(TieredStorageFactory::new(router.clone()))).build();

        let wh = Self {
            catalog,
            pool,
            dollar_params,
            catalog_name: config.catalog_name.clone(),
            catalog_url: url,
            namespace: NamespaceIdent::new(config.namespace.clone()),
            file_io,
            router,
            hot_tier,
            warehouse_url,
            target_file_size: config.target_file_size,
            audit: vintagelake_runtime::audit::AuditLog::in_dir(&data_dir),
            rows_schemas: Default::default(),
            encryption: config.encryption.clone(),
            pending_reads: Default::default(),
        };
        wh.ensure_tables(config.schema_version).await?;
        wh.ensure_reads_table().await?;
        Ok(Arc::new(wh))
    }

    /// Creates the namespace and tables that do not exist yet, and brings every table's schema up
    /// to `version` (adding columns; nothing is rewritten).
    async fn ensure_tables(&self, version: u32) -> Result<()> {
        let ns = &self.namespace;
        let exists = self
            .catalog
            .namespace_exists(ns)
            .await
            .map_err(|e| StorageError::catalog("namespace_exists", ns.join("."), e))?;
        if !exists && let Err(e) = self.catalog.create_namespace(ns, HashMap::new()).await {
            // Another process may have created it between our check and our create (the SQL
            // catalog then reports a key violation, not "already exists"): look again.
            let now = self.catalog.namespace_exists(ns).await.unwrap_or(false);
            if !now {
                return Err(StorageError::catalog("create_namespace", ns.join("."), e));
            }
        }
        for kind in TableKind::all() {
            let ident = self.ident(kind);
            if self.catalog.table_exists(&ident).await.map_err(|e| StorageError::catalog("table_exists", &ident, e))? {
                crate::evolve::evolve(self, kind, version).await?;
                continue;
            }
            match self.catalog.create_table(ns, self.creation(kind, version)?).await {
                Ok(_) => tracing::info!(table = %ident, "created table"),
                // Created concurrently by another process: fine if it exists now.
                Err(e) => {
                    if !self.catalog.table_exists(&ident).await.unwrap_or(false) {
                        return Err(StorageError::catalog("create_table", &ident, e));
                    }
                }
            }
        }
        Ok(())
    }

    /// Table definition: schema with our field ids, the vintage-layout partition spec and sort order.
    fn creation(&self, kind: TableKind, version: u32) -> Result<TableCreation> {
        let arrow = crate::evolve::our_schema(kind, version);
        let schema: Schema = iceberg::arrow::arrow_schema_to_schema(&arrow)?;
        let field_id = |name: &str| -> Result<i32> {
            schema.field_id_by_name(name).ok_or_else(|| StorageError::InvalidData(format!("schema lacks {name}")))
        };
        let sort = |names: &[&str]| -> Result<SortOrder> {
            let mut b = SortOrder::builder();
            b.with_order_id(1);
            for n in names {
                b.with_sort_field(
                    SortField::builder()
                        .source_id(field_id(n)?)
                        .transform(Transform::Identity)
                        .direction(SortDirection::Ascending)
                        .null_order(NullOrder::First)
                        .build(),
                );
            }
            Ok(b.build(&schema)?)
        };
        let properties = [
            (PROP_TARGET_FILE_SIZE.to_owned(), self.target_file_size.to_string()),
            ("write.parquet.compression-codec".to_owned(), "zstd".to_owned()),
            ("vintagelake.layout".to_owned(), "v1".to_owned()),
            (crate::evolve::PROP_SCHEMA_VERSION.to_owned(), version.to_string()),
        ];
        let creation = match kind {
            TableKind::DataPoints => {
                // Current rows (realtime_end null) and superseded rows live in different files:
                // "latest" reads only the null partition; superseded vintages age into colder tiers.
                let spec = UnboundPartitionSpec::builder()
                    .add_partition_fields([UnboundPartitionField::builder()
                        .source_id(field_id(col::REALTIME_END)?)
                        .name(format!("{}_month", col::REALTIME_END))
                        .transform(Transform::Month)
                        .build()])?
                    .build();
                TableCreation::builder()
                    .name(kind.name().to_owned())
                    .sort_order(sort(&[col::SERIES_ID, col::DATE, col::REVISION_DATE, col::INGEST_SEQ])?)
                    .partition_spec(spec)
                    .properties(properties)
                    .schema(schema.clone())
                    .build()
            }
            TableKind::Series => TableCreation::builder()
                .name(kind.name().to_owned())
                .sort_order(sort(&[col::ID, col::INGEST_SEQ])?)
                .properties(properties)
                .schema(schema.clone())
                .build(),
        };
        Ok(creation)
    }

    pub fn ident(&self, kind: TableKind) -> TableIdent {
        TableIdent::new(self.namespace.clone(), kind.name().to_owned())
    }

    /// The table as of its current catalog row.
    pub async fn load(&self, kind: TableKind) -> Result<Table> {
        let ident = self.ident(kind);
        let table =
            self.catalog.load_table(&ident).await.map_err(|e| StorageError::catalog("load_table", &ident, e))?;
        self.saw_schema(kind, table.metadata());
        Ok(table)
    }

    /// The columns rows of a table are read as: ours, then those other engines added, as of the
    /// newest table state this process has loaded (see [`crate::evolve::rows_schema`]). A file
    /// committed in a snapshot this process read cannot hold a column newer than that state.
    pub fn rows_schema(&self, kind: TableKind) -> arrow::datatypes::SchemaRef {
        let seen = self.rows_schemas.lock().expect("rows schema lock");
        match seen.get(&kind) {
            Some((_, schema)) => schema.clone(),
            None => crate::evolve::current_schema(kind),
        }
    }

    fn saw_schema(&self, kind: TableKind, meta: &iceberg::spec::TableMetadata) {
        let id = meta.current_schema_id();
        let mut seen = self.rows_schemas.lock().expect("rows schema lock");
        // Schema ids only grow: an older state loaded late does not take a newer one back.
        if seen.get(&kind).is_none_or(|(known, _)| *known < id) {
            match crate::evolve::rows_schema(meta, kind) {
                Ok(schema) => {
                    seen.insert(kind, (id, schema));
                }
                Err(e) => tracing::warn!(table = kind.name(), error = %e, "cannot map the table's columns"),
            }
        }
    }

    /// The current metadata location, read straight from the catalog row (cheap freshness check).
    pub async fn metadata_location(&self, kind: TableKind) -> Result<String> {
        let ident = self.ident(kind);
        let sql = self.sql(
            "SELECT metadata_location FROM iceberg_tables \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
        );
        let row: (String,) = sqlx::query_as(&sql)
            .bind(&self.catalog_name)
            .bind(self.namespace.join("."))
            .bind(kind.name())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StorageError::catalog("read metadata_location", &ident, e))?;
        Ok(row.0)
    }

    /// Points the catalog row at `new` if and only if it still points at `expected`.
    /// `Ok(false)` means another writer committed first.
    pub(crate) async fn swap_metadata_location(&self, kind: TableKind, expected: &str, new: &str) -> Result<bool> {
        let ident = self.ident(kind);
        let sql = self.sql(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ? \
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
        );
        let done = sqlx::query(&sql)
            .bind(new)
            .bind(expected)
            .bind(&self.catalog_name)
            .bind(self.namespace.join("."))
            .bind(kind.name())
            .bind(expected)
            .execute(&self.pool)
            .await
            .map_err(|e| StorageError::catalog("compare-and-swap metadata_location", &ident, e))?;
        if vintagelake_runtime::failpoint::fails("catalog-reply-lost") {
            // The UPDATE applied; its reply is lost on the way back (a dropped connection).
            return Err(StorageError::Catalog {
                op: "compare-and-swap metadata_location",
                table: ident.to_string(),
                source: "injected: the connection dropped before the reply".into(),
            });
        }
        match done.rows_affected() {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(StorageError::InvalidData(format!("catalog swap for {ident} changed {n} rows, expected 1"))),
        }
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn pending_reads(&self) -> &crate::access::PendingReads {
        &self.pending_reads
    }

    /// `query` with `?` placeholders in the catalog database's bind style.
    pub(crate) fn sql(&self, query: &str) -> String {
        if !self.dollar_params {
            return query.to_owned();
        }
        let mut out = String::with_capacity(query.len() + 8);
        let mut n = 0;
        for c in query.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Writes and removes a probe file in every tier: a tier whose directory is not writable or whose
    /// S3 bucket does not answer fails here, naming the tier, before any daemon relies on it.
    pub async fn check_tiers(&self) -> Result<()> {
        for spec in self.router.tiers() {
            let probe = format!("{}/.vintagelake-probe-{}", spec.base_url(), uuid::Uuid::new_v4().simple());
            let fail = |e: iceberg::Error| StorageError::Tier {
                tier: spec.name.clone(),
                reason: format!("{} does not answer: {e}", spec.base_url()),
            };
            self.file_io.new_output(&probe)?.write(bytes::Bytes::from_static(b"probe")).await.map_err(fail)?;
            self.file_io.delete(&probe).await.map_err(fail)?;
        }
        Ok(())
    }

    /// The lifecycle audit trail of this data directory.
    pub fn audit(&self) -> &vintagelake_runtime::audit::AuditLog {
        &self.audit
    }

    pub fn file_io(&self) -> &FileIO {
        &self.file_io
    }

    pub fn router(&self) -> &Arc<TierRouter> {
        &self.router
    }

    /// The zstd level `tier` asks for (`None`: the default for how a file is written).
    pub fn tier_zstd_level(&self, tier: &TierName) -> Option<i32> {
        self.router.tiers().find(|t| &t.name == tier).and_then(|t| t.zstd_level)
    }

    /// The zstd level a file gets when `encoding` writes it into `tier`.
    pub fn zstd_level(&self, tier: &TierName, encoding: crate::write::Encoding) -> i32 {
        self.tier_zstd_level(tier).unwrap_or(encoding.default_zstd_level())
    }

    /// Tier that receives new data files.
    pub fn hot_tier(&self) -> &TierName {
        &self.hot_tier
    }

    pub fn catalog_name(&self) -> &str {
        &self.catalog_name
    }

    pub fn namespace(&self) -> &NamespaceIdent {
        &self.namespace
    }

    /// The catalog URL (with any password removed).
    pub fn catalog_url(&self) -> String {
        redact(&self.catalog_url)
    }

    pub fn warehouse_url(&self) -> &str {
        &self.warehouse_url
    }

    pub fn target_file_size(&self) -> u64 {
        self.target_file_size
    }

    /// Encryption at rest of new data files (`None`: written in plaintext).
    pub fn encryption(&self) -> Option<&crate::crypto::Encryption> {
        self.encryption.as_ref()
    }

    /// What a Parquet reader of this warehouse's files needs (`None`: no keys configured, so only
    /// plaintext files read).
    pub fn decryption(&self) -> Option<crate::crypto::DecryptionKeys> {
        self.encryption.as_ref().map(crate::crypto::Encryption::decryption)
    }

    /// Where data files of `kind` go in a tier: `<tier base>/<namespace>/<table>/data`.
    pub fn data_location(&self, kind: TableKind, tier: &TierName) -> Result<String> {
        let spec = self
            .router
            .tier(tier)
            .ok_or_else(|| StorageError::Tier { tier: tier.clone(), reason: "no such tier".into() })?;
        Ok(format!("{}/{}/{}/data", spec.base_url(), self.namespace.join("/"), kind.name()))
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vintagelake_schemas::table::data_points_table_schema;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("sqlite:///x/catalog.sqlite"), "sqlite:///x/catalog.sqlite");
    }

    #[tokio::test]
    async fn opening_twice_creates_tables_once_with_our_field_ids() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(WarehouseConfig::new(dir.path())).await.unwrap();
        let again = Warehouse::open(WarehouseConfig::new(dir.path())).await.unwrap();
        let t = again.load(TableKind::DataPoints).await.unwrap();
        let schema = t.metadata().current_schema();
        let arrow = data_points_table_schema();
        for f in arrow.fields() {
            let ours: i32 = f.metadata()[vintagelake_schemas::table::FIELD_ID_KEY].parse().unwrap();
            assert_eq!(schema.field_id_by_name(f.name()), Some(ours), "{}", f.name());
        }
        let spec = t.metadata().default_partition_spec();
        assert_eq!(spec.fields().len(), 1);
        assert_eq!(spec.fields()[0].transform, Transform::Month);
        let loc = wh.metadata_location(TableKind::Series).await.unwrap();
        assert!(loc.ends_with(".metadata.json"), "{loc}");
        assert!(!wh.swap_metadata_location(TableKind::Series, "not-the-current-one", "x").await.unwrap());
        assert_eq!(wh.metadata_location(TableKind::Series).await.unwrap(), loc);
    }
}

#[cfg(test)]
mod race_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_opening_a_new_warehouse_at_once_both_succeed() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let (a, b, c) = tokio::join!(
                Warehouse::open(WarehouseConfig::new(dir.path())),
                Warehouse::open(WarehouseConfig::new(dir.path())),
                Warehouse::open(WarehouseConfig::new(dir.path())),
            );
            a.unwrap();
            b.unwrap();
            c.unwrap();
        }
    }
}
