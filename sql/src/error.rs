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
                    // A DataFusion error boxed again on its way out of a table function.
                    Err(inner) => match inner.downcast::<DataFusionError>() {
                        Ok(wrapped) => SqlError::from_datafusion(*wrapped),
                        Err(other) => SqlError::Internal(other.to_string()),
                    },
                },
            },
            // DataFusion wraps a parse or plan error with its source span, and errors of shared
            // work (a join's build side) in an Arc: the kind is the wrapped error's.
            DataFusionError::Diagnostic(_, inner) => SqlError::from_datafusion(*inner),
            DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(inner) => SqlError::from_datafusion(inner),
                Err(shared) => SqlError::of_shared(&shared),
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

impl SqlError {
    /// [`from_datafusion`](Self::from_datafusion) of an error others hold too (DataFusion shares
    /// one error among the consumers of a failed shared input): the same kind, rebuilt from a
    /// reference.
    fn of_shared(e: &DataFusionError) -> SqlError {
        match e {
            DataFusionError::External(inner) => {
                if let Some(ours) = inner.downcast_ref::<SqlError>() {
                    ours.same_kind()
                } else if let Some(storage) = inner.downcast_ref::<StorageError>() {
                    SqlError::of_storage(storage)
                } else if let Some(wrapped) = inner.downcast_ref::<DataFusionError>() {
                    SqlError::of_shared(wrapped)
                } else {
                    SqlError::Internal(e.strip_backtrace())
                }
            }
            DataFusionError::Shared(inner) => SqlError::of_shared(inner),
            DataFusionError::Diagnostic(_, inner) => SqlError::of_shared(inner),
            DataFusionError::Context(context, inner) => match SqlError::of_shared(inner) {
                SqlError::Invalid(m) => SqlError::Invalid(format!("{context}: {m}")),
                other => other,
            },
            DataFusionError::Collection(errors) => {
                errors.first().map_or_else(|| SqlError::Internal(e.strip_backtrace()), SqlError::of_shared)
            }
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_)
            | DataFusionError::Execution(_)
            | DataFusionError::ArrowError(..) => SqlError::Invalid(e.strip_backtrace()),
            DataFusionError::ResourcesExhausted(_) => SqlError::ResourcesExhausted(e.strip_backtrace()),
            other => SqlError::Internal(other.strip_backtrace()),
        }
    }

    /// An error of the same kind and message.
    fn same_kind(&self) -> SqlError {
        match self {
            SqlError::Invalid(m) => SqlError::Invalid(m.clone()),
            SqlError::ResourcesExhausted(m) => SqlError::ResourcesExhausted(m.clone()),
            SqlError::Timeout(d) => SqlError::Timeout(*d),
            SqlError::Storage(s) => SqlError::of_storage(s),
            SqlError::Internal(m) => SqlError::Internal(m.clone()),
        }
    }

    /// A storage error of the kinds a statement causes, rebuilt; any other by its message.
    fn of_storage(s: &StorageError) -> SqlError {
        match s {
            StorageError::NoSuchSnapshot(id) => SqlError::Storage(StorageError::NoSuchSnapshot(*id)),
            StorageError::NoSnapshotAtTime(ms) => SqlError::Storage(StorageError::NoSnapshotAtTime(*ms)),
            StorageError::TooLarge(m) => SqlError::Storage(StorageError::TooLarge(m.clone())),
            StorageError::InvalidData(m) => SqlError::Storage(StorageError::InvalidData(m.clone())),
            other => SqlError::Internal(other.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A statement's syntax error is the statement's, however DataFusion wraps it (found by the
    /// `sql` fuzz target: a stray `]` came back wrapped in a diagnostic and was reported as
    /// internal).
    #[tokio::test]
    async fn syntax_errors_are_the_statements_however_wrapped() {
        let ctx = datafusion::prelude::SessionContext::new();
        for sql in ["SELECT date FROM t WHERE seri]s_id = 'X'", "SELECT FROM WHERE", "SELEC 1"] {
            let e = ctx.sql(sql).await.expect_err("not valid SQL");
            match SqlError::from_datafusion(e) {
                SqlError::Invalid(m) => assert!(!m.is_empty()),
                other => panic!("{sql}: {other:?}"),
            }
        }
        let wrapped = DataFusionError::Shared(std::sync::Arc::new(DataFusionError::Plan("no such column".into())));
        assert!(matches!(SqlError::from_datafusion(wrapped), SqlError::Invalid(_)));
        // `at_snapshot('latest', 0)` on a table without snapshot 0 (found by the fuzz target: it
        // came back INTERNAL): the storage error, boxed twice, keeps its kind.
        let twice =
            DataFusionError::External(Box::new(DataFusionError::External(Box::new(StorageError::NoSuchSnapshot(0)))));
        assert!(matches!(SqlError::from_datafusion(twice), SqlError::Storage(StorageError::NoSuchSnapshot(0))));
        // The same error shared by two consumers of a failed input (as the fuzz target then found
        // it): the kind is kept from a reference.
        let shared = std::sync::Arc::new(DataFusionError::External(Box::new(SqlError::Storage(
            StorageError::NoSuchSnapshot(0),
        ))));
        let _other_consumer = shared.clone();
        assert!(matches!(
            SqlError::from_datafusion(DataFusionError::Shared(shared)),
            SqlError::Storage(StorageError::NoSuchSnapshot(0))
        ));
    }
}
