//! Errors of the ingest crate.

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("creating the Kafka client: {0}")]
    Client(#[source] Box<rdkafka::error::KafkaError>),
    #[error("subscribing to {topics}: {source}")]
    Subscribe {
        topics: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    #[error("dead-lettering to {topic}: {reason}")]
    DeadLetter { topic: String, reason: String },
    #[error("committing to the table: {0}")]
    Commit(#[from] vintagelake_storage::error::StorageError),
    #[error("seeking {topic}[{partition}] to {offset}: {source}")]
    Seek {
        topic: String,
        partition: i32,
        offset: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    #[error("shutdown: buffered data could not be committed within {0:?}; it will be re-read from Kafka on restart")]
    ShutdownTimeout(std::time::Duration),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the background commit stopped unexpectedly ({0}); on restart ingest re-reads from the table's positions")]
    CommitTask(String),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

impl IngestError {
    pub(crate) fn client(e: rdkafka::error::KafkaError) -> Self {
        IngestError::Client(Box::new(e))
    }
}
