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
                Err(shared) => SqlError::Internal(shared.strip_backtrace()),
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
    }
}
