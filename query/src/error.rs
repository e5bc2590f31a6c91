//! Errors of the query service, mapped to gRPC status in one place.

use vintagelake_storage::error::{ErrorKind, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    BadTicket(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("{0} is not available in this version")]
    Unimplemented(&'static str),
    #[error("{0}")]
    Internal(String),
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Sql(#[from] vintagelake_sql::SqlError),
    #[error("encoding results: {0}")]
    Encode(#[from] arrow::error::ArrowError),
}

impl QueryError {
    /// The one place errors become gRPC status codes.
    pub fn into_status(self) -> tonic::Status {
        use tonic::Status;
        let msg = self.to_string();
        match self {
            QueryError::Sql(vintagelake_sql::SqlError::Invalid(_)) => Status::invalid_argument(msg),
            QueryError::Sql(vintagelake_sql::SqlError::ResourcesExhausted(_)) => Status::resource_exhausted(msg),
            QueryError::Sql(vintagelake_sql::SqlError::Timeout(_)) => Status::deadline_exceeded(msg),
            QueryError::Sql(vintagelake_sql::SqlError::Internal(_)) => Status::internal(msg),
            QueryError::BadTicket(_) | QueryError::UnknownAction(_) => Status::invalid_argument(msg),
            QueryError::Unauthenticated(_) => Status::unauthenticated(msg),
            QueryError::PermissionDenied(_) => Status::permission_denied(msg),
            QueryError::Unimplemented(_) => Status::unimplemented(msg),
            QueryError::Encode(_) | QueryError::Internal(_) => Status::internal(msg),
            QueryError::Sql(vintagelake_sql::SqlError::Storage(e)) | QueryError::Storage(e) => match e.kind() {
                ErrorKind::NotFound => Status::not_found(msg),
                ErrorKind::InvalidInput => Status::invalid_argument(msg),
                ErrorKind::Unavailable => Status::unavailable(msg),
                ErrorKind::DataLoss => Status::data_loss(msg),
                ErrorKind::Conflict | ErrorKind::Internal => Status::internal(msg),
            },
        }
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
