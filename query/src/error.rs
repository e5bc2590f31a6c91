//! Errors of the query service, mapped to gRPC status in one place.

use vintagelake_storage::error::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    BadTicket(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("{0} is not available in this version")]
    Unimplemented(&'static str),
    #[error("{0}")]
    Internal(String),
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("encoding results: {0}")]
    Encode(#[from] arrow::error::ArrowError),
}

impl QueryError {
    /// The one place errors become gRPC status codes.
    pub fn into_status(self) -> tonic::Status {
        use tonic::Status;
        let msg = self.to_string();
        match self {
            QueryError::BadTicket(_) | QueryError::UnknownAction(_) => Status::invalid_argument(msg),
            QueryError::Unauthenticated(_) => Status::unauthenticated(msg),
            QueryError::Unimplemented(_) => Status::unimplemented(msg),
            QueryError::Encode(_) | QueryError::Internal(_) => Status::internal(msg),
            QueryError::Storage(e) => match e {
                StorageError::NoSuchSnapshot(_) | StorageError::NoSnapshotAtTime(_) => Status::not_found(msg),
                StorageError::InvalidData(_) => Status::invalid_argument(msg),
                StorageError::OpenCatalog { .. }
                | StorageError::Catalog { .. }
                | StorageError::CommitOutcomeUnknown { .. } => Status::unavailable(msg),
                StorageError::ReadFile { .. } => Status::data_loss(msg),
                StorageError::Iceberg(_)
                | StorageError::Arrow(_)
                | StorageError::Tier { .. }
                | StorageError::UnknownLocation { .. }
                | StorageError::Fenced { .. }
                | StorageError::OffsetsBackwards { .. }
                | StorageError::FileNotLive { .. }
                | StorageError::TooManyConflicts { .. }
                | StorageError::ArrivalsMoved { .. }
                | StorageError::EmptyCommit { .. }
                | StorageError::Io(_) => Status::internal(msg),
            },
        }
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
