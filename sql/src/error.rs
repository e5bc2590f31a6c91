//! What can go wrong with a statement, in the kinds a client acts on.

use std::time::Duration;

use datafusion::error::DataFusionError;
use vintagelake_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The statement does not parse or plan (the message has the position where SQL gives one).
    #[error("{0}")]
    Invalid(String),
    /// The statement needed more memory than its limit.
    #[error("{0}")]
    ResourcesExhausted(String),
    /// The statement ran longer than its limit.
    #[error("the statement ran longer than its limit of {}", humantime_secs(*.0))]
    Timeout(Duration),
    /// Reading the tables failed.
    #[error(transparent)]
    Storage(StorageError),
    #[error("{0}")]
    Internal(String),
}

fn humantime_secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64()).replace(".000s", "s")
}

impl SqlError {
    /// The kind of a DataFusion error, looking through the layers it wraps ours in.
    pub fn from_datafusion(e: DataFusionError) -> SqlError {
        match e {
            DataFusionError::External(inner) => match inner.downcast::<SqlError>() {
                Ok(ours) => *ours,
                Err(inner) => match inner.downcast::<StorageError>() {
                    Ok(storage) => SqlError::Storage(*storage),
                    Err(other) => SqlError::Internal(other.to_string()),
                },
            },
            DataFusionError::Context(context, inner) => match SqlError::from_datafusion(*inner) {
                SqlError::Invalid(m) => SqlError::Invalid(format!("{context}: {m}")),
                other => other,
            },
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_) => SqlError::Invalid(e.strip_backtrace()),
            DataFusionError::ResourcesExhausted(_) => SqlError::ResourcesExhausted(e.strip_backtrace()),
            DataFusionError::Collection(errors) => match errors.into_iter().next() {
                Some(first) => SqlError::from_datafusion(first),
                None => SqlError::Internal("an empty collection of errors".into()),
            },
            // An argument a function cannot take (a bad date, a cast that fails): the statement's.
            DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => SqlError::Invalid(e.strip_backtrace()),
            other => SqlError::Internal(other.strip_backtrace()),
        }
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        SqlError::from_datafusion(e)
    }
}

impl From<SqlError> for DataFusionError {
    fn from(e: SqlError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}
