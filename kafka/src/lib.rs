//! The Kafka side around the pipeline, apart from the ingest daemon: the local Kafka-protocol
//! broker (tansu) that development, tests and `vintagelake serve` use when no Kafka is
//! configured, topic creation, the producer (`vintagelake produce`) and synthetic revision
//! streams.

pub mod broker;
pub mod produce;
pub mod synthetic;
