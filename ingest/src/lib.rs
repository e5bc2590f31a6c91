//! Kafka → Iceberg ingest, exactly once, with a dead-letter topic. The local broker, the
//! producer and synthetic streams live in `vintagelake-kafka`.

mod accept;
mod buffer;
mod committer;
pub mod config;
pub mod dlq;
pub mod error;
pub mod metrics;
pub mod pipeline;
mod rebalance;

pub use config::IngestConfig;

/// What ingest's memory holds beyond `MAX_BUFFERED_BYTES` (which bounds the decoded rows waiting
/// for a commit and the running commit's working copies): the Kafka client's prefetch queue
/// (`queued.max.messages.kbytes`, 64 MiB) and fetch buffers, the dead-letter producer's queue,
/// the runtime, the catalog connections, the allocator's slack. Measured peak RSS minus the bound
/// under a 10^7-revision burst: 263–294 MiB (release build; docs/BENCHMARKS.md); the test
/// `a_burst_larger_than_the_buffer_stays_within_the_memory_bound` holds a debug build to it.
pub const FIXED_OVERHEAD_MIB: u64 = 384;
pub use pipeline::{Ingest, IngestOptions, IngestReport};
