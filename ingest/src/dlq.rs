//! The dead-letter topic: a rejected message goes to `<topic><suffix>` with its original key and
//! value and headers saying why and where it came from.
//!
//! A rejected message is kept (as a [`Letter`]) in its partition's buffer until the broker has
//! acknowledged its dead letter; only then may a commit move the partition's position past it.
//! A letter whose delivery failed is sent again by a later commit: a dead letter is written at
//! least once, and a rejected message is never in neither the table nor the dead-letter topic.
//!
//! The producer is idempotent. A delivery that times out while in flight makes the client bump its
//! producer epoch, which some brokers refuse for good (every later delivery answered "fenced");
//! a client-side fatal error is as final. Either way the producer is replaced by a new one built
//! from the same configuration, and the held letters go out through it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

/// Header names on dead-lettered records.
pub mod headers {
    pub const ERROR_CODE: &str = "vintagelake.error.code";
    pub const ERROR_FIELD: &str = "vintagelake.error.field";
    pub const ERROR_MESSAGE: &str = "vintagelake.error.message";
    pub const SOURCE_TOPIC: &str = "vintagelake.source.topic";
    pub const SOURCE_PARTITION: &str = "vintagelake.source.partition";
    pub const SOURCE_OFFSET: &str = "vintagelake.source.offset";
    pub const DEAD_LETTERED_AT: &str = "vintagelake.dead-lettered-at";
}

/// Why a message was rejected.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

/// A rejected message, kept until its dead letter is acknowledged.
pub struct Letter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub rejection: Rejection,
    /// The delivery in flight; `None`: not sent yet, or its last delivery failed.
    delivery: Option<DeliveryFuture>,
    /// The broker acknowledged it (a later retry of its partition does not send it again).
    delivered: bool,
}

impl std::fmt::Debug for Letter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Letter")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("code", &self.rejection.code)
            .field("in_flight", &self.delivery.is_some())
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl Letter {
    pub fn new(
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        rejection: Rejection,
    ) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            offset,
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            rejection,
            delivery: None,
            delivered: false,
        }
    }

    /// Bytes it holds in the buffer.
    pub fn size(&self) -> u64 {
        (self.key.as_ref().map_or(0, Vec::len) + self.payload.as_ref().map_or(0, Vec::len) + 256) as u64
    }
}

/// Sends rejected messages to their dead-letter topics.
pub struct DeadLetterQueue {
    config: ClientConfig,
    producer: Mutex<Arc<FutureProducer>>,
    suffix: String,
}

impl std::fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterQueue").field("suffix", &self.suffix).finish()
    }
}

/// Why the letters of a partition are not all acknowledged.
#[derive(Debug, Clone)]
pub struct Undelivered {
    pub dlq_topic: String,
    pub letters: usize,
    pub reason: String,
}

/// Delivery errors after which the producer's idempotence state is unusable: no later delivery
/// through it can succeed.
fn producer_is_spent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::InvalidProducerIdMapping
    )
}

impl DeadLetterQueue {
    /// A queue producing with `config` (a spent producer is replaced by a new one from it).
    pub fn new(config: ClientConfig, suffix: impl Into<String>) -> Result<Self, KafkaError> {
        let producer = config.create()?;
        Ok(Self { config, producer: Mutex::new(Arc::new(producer)), suffix: suffix.into() })
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.lock().expect("dead-letter producer lock").clone()
    }

    /// Replaces `spent` (unless another caller already did) with a new producer; letters still
    /// waiting on the old one fail and are sent again.
    fn replace(&self, spent: &Arc<FutureProducer>, why: &str) {
        let mut current = self.producer.lock().expect("dead-letter producer lock");
        if !Arc::ptr_eq(&current, spent) {
            return;
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(reason = %why, "dead-letter producer can deliver nothing more; replaced by a new one");
                metrics::counter!(crate::metrics::DLQ_PRODUCER_RESTARTS).increment(1);
                *current = Arc::new(fresh);
            }
            Err(e) => {
                tracing::error!(error = %e, reason = %why, "dead-letter producer is spent and a new one cannot be made; retrying later")
            }
        }
    }

    pub fn topic_for(&self, source: &str) -> String {
        format!("{source}{}", self.suffix)
    }

    /// Hands the letter to the producer. A full producer queue is backpressure: wait for room
    /// (deliveries free it), never give up. Any other refusal leaves the letter unsent; its
    /// partition is then held and the letter sent again later.
    pub async fn send(&self, letter: &mut Letter) {
        if letter.delivered || letter.delivery.is_some() {
            return;
        }
        let dlq = self.topic_for(&letter.topic);
        let partition = letter.partition.to_string();
        let offset = letter.offset.to_string();
        let at = chrono::Utc::now().to_rfc3339();
        let mut waited = Duration::ZERO;
        let producer = self.producer();
        loop {
            let r = &letter.rejection;
            let headers = OwnedHeaders::new()
                .insert(Header { key: headers::ERROR_CODE, value: Some(r.code) })
                .insert(Header { key: headers::ERROR_FIELD, value: Some(r.field.as_str()) })
                .insert(Header { key: headers::ERROR_MESSAGE, value: Some(r.message.as_str()) })
                .insert(Header { key: headers::SOURCE_TOPIC, value: Some(letter.topic.as_str()) })
                .insert(Header { key: headers::SOURCE_PARTITION, value: Some(partition.as_str()) })
                .insert(Header { key: headers::SOURCE_OFFSET, value: Some(offset.as_str()) })
                .insert(Header { key: headers::DEAD_LETTERED_AT, value: Some(at.as_str()) });
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&dlq).headers(headers);
            if let Some(k) = &letter.key {
                record = record.key(k);
            }
            if let Some(p) = &letter.payload {
                record = record.payload(p);
            }
            match producer.send_result(record) {
                Ok(delivery) => {
                    letter.delivery = Some(delivery);
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if waited.is_zero() {
                        tracing::warn!(topic = %dlq, "dead-letter producer queue full; waiting for deliveries");
                    }
                    producer.poll(Duration::ZERO);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    waited += Duration::from_millis(20);
                }
                Err((e, _)) => {
                    // Counted as a failed delivery when the commit finds it unsent.
                    tracing::warn!(topic = %dlq, error = %e, "dead-letter producer refused a letter; it is sent again later");
                    return;
                }
            }
        }
    }

    /// Sends every letter not yet acknowledged and waits for the broker's answers. Returns the
    /// partitions whose letters did not all land (their letters stay, to be sent again).
    pub async fn deliver<'a>(
        &self,
        letters: impl IntoIterator<Item = &'a mut Letter>,
    ) -> std::collections::HashMap<(String, i32), Undelivered> {
        let mut letters: Vec<&mut Letter> = letters.into_iter().filter(|l| !l.delivered).collect();
        for l in letters.iter_mut() {
            self.send(l).await;
        }
        let producer = self.producer();
        let mut spent = None;
        let mut failed: std::collections::HashMap<(String, i32), Undelivered> = Default::default();
        for l in letters {
            let outcome = match l.delivery.take() {
                Some(d) => match d.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => {
                        if e.rdkafka_error_code().is_some_and(producer_is_spent) {
                            spent.get_or_insert_with(|| e.to_string());
                        }
                        Err(e.to_string())
                    }
                    Err(_) => Err("delivery cancelled".to_owned()),
                },
                None => Err("the producer refused the letter".to_owned()),
            };
            match outcome {
                Ok(()) => {
                    l.delivered = true;
                    metrics::counter!(
                        crate::metrics::DEAD_LETTERED,
                        "topic" => l.topic.clone(),
                        "reason" => l.rejection.code
                    )
                    .increment(1);
                }
                Err(reason) => {
                    let dlq = self.topic_for(&l.topic);
                    metrics::counter!(crate::metrics::DEAD_LETTER_FAILURES, "topic" => dlq.clone()).increment(1);
                    let e = failed.entry((l.topic.clone(), l.partition)).or_insert(Undelivered {
                        dlq_topic: dlq,
                        letters: 0,
                        reason,
                    });
                    e.letters += 1;
                }
            }
        }
        if let Some(why) = spent.or_else(|| producer.client().fatal_error().map(|(_, reason)| reason)) {
            self.replace(&producer, &why);
        }
        failed
    }
}
