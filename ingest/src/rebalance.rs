//! The consumer's side of a rebalance and its statistics: on every assignment each partition
//! starts where the table records it stands (read from the store, retried, never guessed); a
//! revoked partition's buffer is dropped for its next owner to re-read. A rebalance waits for a
//! running commit first, so ownership never changes under one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::store::IngestTarget;

use crate::buffer::{PartitionKey, Shared};
use crate::metrics as m;

pub(crate) struct Context {
    pub(crate) store: Arc<dyn IngestTarget>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) tables: HashMap<String, TableKind>,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl ClientContext for Context {
    /// Reaching a partition's end is how the consumer learns it caught up (the stream reports
    /// it too); librdkafka also raises it as a global error, which is not one: logged at debug.
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF) | KafkaError::PartitionEOF(_)) {
            tracing::debug!(%reason, "end of partition");
        } else {
            tracing::error!(error = %error, %reason, "Kafka client error");
        }
    }

    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl Context {
    /// The table positions of every partition of our topics (blocking: runs in the callback).
    fn recorded_offsets(&self) -> Result<HashMap<PartitionKey, i64>, StorageError> {
        let store = self.store.clone();
        let kinds: Vec<TableKind> = {
            let mut k: Vec<TableKind> = self.tables.values().copied().collect();
            k.dedup();
            k
        };
        tokio::task::block_in_place(|| {
            self.runtime.block_on(async move {
                let mut all = HashMap::new();
                for kind in kinds {
                    for (k, v) in store.recorded_offsets(kind).await? {
                        all.insert(k, v);
                    }
                }
                Ok(all)
            })
        })
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        metrics::counter!(m::REBALANCES).increment(1);
        // A running commit lands (or fails and gives its rows back) before ownership changes, so
        // the positions read below include it and nothing it held is attributed to a partition
        // we no longer own. Nothing starts a new commit meanwhile: the loop is inside `recv()`.
        drop(self.shared.wait_for_commit());
        match rebalance {
            Rebalance::Assign(tpl) => {
                // Start every partition where the table says it stands. Retry: consuming without
                // knowing the table's position could duplicate data.
                let mut recorded = None;
                for attempt in 0..30u32 {
                    match self.recorded_offsets() {
                        Ok(r) => {
                            recorded = Some(r);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, attempt, "cannot read recorded offsets; retrying");
                            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt.min(10) + 1)));
                        }
                    }
                }
                let Some(recorded) = recorded else {
                    tracing::error!("cannot read the table's offsets: aborting rather than risk duplicates");
                    std::process::exit(75);
                };
                let mut state = self.shared.lock();
                for mut elem in tpl.elements() {
                    let key = (elem.topic().to_owned(), elem.partition());
                    let committed = recorded.get(&key).copied();
                    let offset = committed.map_or(Offset::Beginning, Offset::Offset);
                    if let Err(e) = elem.set_offset(offset) {
                        tracing::error!(topic = %key.0, partition = key.1, error = %e, "cannot set start offset");
                    }
                    tracing::info!(topic = %key.0, partition = key.1, ?committed, "assigned");
                    state.assign(key, committed);
                }
                self.shared.assigned.send_replace(state.positions.len());
            }
            Rebalance::Revoke(tpl) => {
                // What we buffered for these partitions is dropped: the next owner re-reads it
                // from the table's position.
                let mut state = self.shared.lock();
                for elem in tpl.elements() {
                    let key = (elem.topic().to_owned(), elem.partition());
                    tracing::info!(topic = %key.0, partition = key.1, "revoked");
                    state.revoke(&key);
                }
                self.shared.assigned.send_replace(state.positions.len());
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}
