//! Errors of the storage crate, named after the step that failed.

use crate::config::TierName;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("opening the catalog at {url}: {source}")]
    OpenCatalog {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("catalog operation {op} on {table}: {source}")]
    Catalog {
        op: &'static str,
        table: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("iceberg: {0}")]
    Iceberg(#[source] Box<iceberg::Error>),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("configuring tier {tier}: {reason}")]
    Tier { tier: TierName, reason: String },
    #[error("no configured tier holds {path}")]
    UnknownLocation { path: String },
    #[error(
        "fenced: {topic}[{partition}] is recorded at offset {found:?} in the table, this writer expected {expected:?}; \
         another ingest replica owns this partition now"
    )]
    Fenced { topic: String, partition: i32, expected: Option<i64>, found: Option<i64> },
    #[error("offsets for {topic}[{partition}] would move backwards: {from} -> {to}")]
    OffsetsBackwards { topic: String, partition: i32, from: i64, to: i64 },
    #[error("file {path} is not live in the current snapshot of {table} (it was removed by another commit)")]
    FileNotLive { table: String, path: String },
    #[error("commit to {table} conflicted {attempts} times in a row; giving up (last: {last})")]
    TooManyConflicts { table: String, attempts: u32, last: String },
    #[error(
        "commit to {table}: the catalog swap to {metadata_location} has an unknown outcome ({reason}); \
         every file it wrote is kept (orphan cleanup decides later) and the change may or may not be visible"
    )]
    CommitOutcomeUnknown { table: String, metadata_location: String, reason: String },
    #[error(
        "append to {table}: another writer assigned arrival numbers meanwhile (mark {found:?}, expected {expected:?}); renumbering"
    )]
    ArrivalsMoved { table: String, expected: Option<i64>, found: Option<i64> },
    #[error("commit to {table}: nothing to do (no files added or removed)")]
    EmptyCommit { table: String },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A query whose answer would exceed a documented limit: narrow it.
    #[error("{0}")]
    TooLarge(String),
    #[error("snapshot {0} does not exist (expired or never made)")]
    NoSuchSnapshot(i64),
    #[error("no snapshot at or before {0} (ms since epoch)")]
    NoSnapshotAtTime(i64),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("encryption: {0}")]
    Encryption(#[from] crate::crypto::KeyError),
    /// The error of a group commit, as each caller but the first receives it
    /// ([`crate::group`]): the same message and kind, and whether it may have committed.
    #[error("{message} (a group commit of {writers} appends)")]
    GroupCommit { message: String, kind: ErrorKind, may_have_committed: bool, writers: usize },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl From<iceberg::Error> for StorageError {
    fn from(e: iceberg::Error) -> Self {
        StorageError::Iceberg(Box::new(e))
    }
}

/// What kind of failure a [`StorageError`] is, for callers that map errors onto a protocol
/// (gRPC status, HTTP code, exit code) without matching the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A snapshot or time that the table does not have.
    NotFound,
    /// The caller's input (a row, a query, a request) is not valid.
    InvalidInput,
    /// The catalog cannot be reached or a commit's outcome is not known yet: try again later.
    Unavailable,
    /// A data file cannot be read back.
    DataLoss,
    /// Another writer moved the table (fenced, conflicts exhausted, a file no longer live).
    Conflict,
    /// Anything else: a bug or an environment problem.
    Internal,
}

impl StorageError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::NoSuchSnapshot(_) | StorageError::NoSnapshotAtTime(_) => ErrorKind::NotFound,
            StorageError::InvalidData(_) | StorageError::TooLarge(_) => ErrorKind::InvalidInput,
            StorageError::OpenCatalog { .. }
            | StorageError::Catalog { .. }
            | StorageError::CommitOutcomeUnknown { .. } => ErrorKind::Unavailable,
            StorageError::ReadFile { .. } => ErrorKind::DataLoss,
            StorageError::Fenced { .. }
            | StorageError::OffsetsBackwards { .. }
            | StorageError::FileNotLive { .. }
            | StorageError::TooManyConflicts { .. }
            | StorageError::ArrivalsMoved { .. } => ErrorKind::Conflict,
            StorageError::Iceberg(_)
            | StorageError::Arrow(_)
            | StorageError::Tier { .. }
            | StorageError::UnknownLocation { .. }
            | StorageError::EmptyCommit { .. }
            | StorageError::Io(_)
            | StorageError::Encryption(_) => ErrorKind::Internal,
            StorageError::GroupCommit { kind, .. } => *kind,
        }
    }

    /// This error as another caller of the same group commit receives it.
    pub fn shared(&self, writers: usize) -> StorageError {
        match self {
            StorageError::GroupCommit { message, kind, may_have_committed, .. } => StorageError::GroupCommit {
                message: message.clone(),
                kind: *kind,
                may_have_committed: *may_have_committed,
                writers,
            },
            e => StorageError::GroupCommit {
                message: e.to_string(),
                kind: e.kind(),
                may_have_committed: e.may_have_committed(),
                writers,
            },
        }
    }

    /// True when the change this error reports may have been committed after all: nothing it
    /// wrote may be deleted (the orphan scan decides once the catalog answers again).
    pub fn may_have_committed(&self) -> bool {
        matches!(
            self,
            StorageError::CommitOutcomeUnknown { .. } | StorageError::GroupCommit { may_have_committed: true, .. }
        )
    }

    pub(crate) fn catalog(
        op: &'static str,
        table: impl ToString,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StorageError::Catalog { op, table: table.to_string(), source: Box::new(e) }
    }
}
