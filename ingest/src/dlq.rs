//! The dead-letter topic: a rejected message goes to `<topic><suffix>` with its original key and
//! value and headers saying why and where it came from. Deliveries are confirmed before the
//! table commit that moves past the message, so a rejection is never lost.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::error::{IngestError, Result};

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

/// A message to dead-letter.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub rejection: Rejection,
}

/// Sends rejected messages and tracks their delivery.
pub struct DeadLetterQueue {
    producer: FutureProducer,
    suffix: String,
    pending: Vec<(String, DeliveryFuture)>,
}

impl std::fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterQueue").field("suffix", &self.suffix).field("pending", &self.pending.len()).finish()
    }
}

impl DeadLetterQueue {
    pub fn new(producer: FutureProducer, suffix: impl Into<String>) -> Self {
        Self { producer, suffix: suffix.into(), pending: Vec::new() }
    }

    pub fn topic_for(&self, source: &str) -> String {
        format!("{source}{}", self.suffix)
    }

    /// Enqueues a rejected message (delivery is awaited by [`Self::flush`]).
    pub fn send(&mut self, letter: DeadLetter<'_>) -> Result<()> {
        let dlq = self.topic_for(letter.topic);
        let partition = letter.partition.to_string();
        let offset = letter.offset.to_string();
        let at = chrono::Utc::now().to_rfc3339();
        let r = &letter.rejection;
        let headers = OwnedHeaders::new()
            .insert(Header { key: headers::ERROR_CODE, value: Some(r.code) })
            .insert(Header { key: headers::ERROR_FIELD, value: Some(r.field.as_str()) })
            .insert(Header { key: headers::ERROR_MESSAGE, value: Some(r.message.as_str()) })
            .insert(Header { key: headers::SOURCE_TOPIC, value: Some(letter.topic) })
            .insert(Header { key: headers::SOURCE_PARTITION, value: Some(partition.as_str()) })
            .insert(Header { key: headers::SOURCE_OFFSET, value: Some(offset.as_str()) })
            .insert(Header { key: headers::DEAD_LETTERED_AT, value: Some(at.as_str()) });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&dlq).headers(headers);
        if let Some(k) = letter.key {
            record = record.key(k);
        }
        if let Some(p) = letter.payload {
            record = record.payload(p);
        }
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| IngestError::DeadLetter { topic: dlq.clone(), reason: e.to_string() })?;
        metrics::counter!(
            crate::metrics::DEAD_LETTERED,
            "topic" => letter.topic.to_owned(),
            "reason" => r.code
        )
        .increment(1);
        self.pending.push((dlq, delivery));
        Ok(())
    }

    /// The deliveries enqueued so far, to be awaited elsewhere (before the commit that moves the
    /// source offsets past them).
    pub fn take_pending(&mut self) -> PendingDeliveries {
        PendingDeliveries(std::mem::take(&mut self.pending))
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Dead letters sent but not yet acknowledged.
#[derive(Default)]
pub struct PendingDeliveries(Vec<(String, DeliveryFuture)>);

impl std::fmt::Debug for PendingDeliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PendingDeliveries").field(&self.0.len()).finish()
    }
}

impl PendingDeliveries {
    /// Waits until the broker acknowledged every one; returns how many.
    pub async fn wait(self) -> Result<usize> {
        let n = self.0.len();
        for (topic, delivery) in self.0 {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(IngestError::DeadLetter { topic, reason: e.to_string() }),
                Err(_) => return Err(IngestError::DeadLetter { topic, reason: "delivery cancelled".into() }),
            }
        }
        Ok(n)
    }
}
