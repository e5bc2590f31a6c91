//! The producer side: publish revisions (from a CSV or JSON-lines file, or synthetic) to Kafka,
//! keyed by series id, validating each one first.

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use vintagelake_schemas::wire::{MAX_COMMENT_BYTES, check_status, check_text};
use vintagelake_schemas::{DataPointRevision, Date, SeriesId, ValidationError, decode_data_point_json};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("creating the Kafka client: {0}")]
    Client(#[source] Box<rdkafka::error::KafkaError>),
    #[error("producing to {topic}: {reason}")]
    Produce { topic: String, reason: String },
    #[error("reading {what}: {reason}")]
    Input { what: String, reason: String },
}

pub type Result<T, E = ProduceError> = std::result::Result<T, E>;

/// A record to publish: key and payload.
pub type Message = (Vec<u8>, Vec<u8>);

/// Deliveries in flight before the producer waits for acknowledgements.
const IN_FLIGHT: usize = 50_000;

/// A Kafka producer tuned for throughput (batching, lz4), idempotent so retries never duplicate.
pub fn producer(bootstrap: &str) -> Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "120000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .map_err(|e| ProduceError::Client(Box::new(e)))
}

/// Publishes messages, keeping a bounded number of deliveries in flight; returns how many were
/// acknowledged. `progress` is called with the running count.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    messages: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    progress: impl FnMut(u64),
) -> Result<u64> {
    Ok(publish_tracked(producer, topic, messages, progress).await?.count)
}

/// What [`publish_tracked`] delivered.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub count: u64,
    /// Per partition, the offset after the last message delivered there.
    pub ends: BTreeMap<i32, i64>,
}

/// [`publish`], also saying where the messages landed.
pub async fn publish_tracked(
    producer: &FutureProducer,
    topic: &str,
    messages: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    mut progress: impl FnMut(u64),
) -> Result<Published> {
    let mut in_flight: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut out = Published::default();
    let fail = |reason: String| ProduceError::Produce { topic: topic.to_owned(), reason };
    let delivered = |out: &mut Published, d: rdkafka::producer::future_producer::OwnedDeliveryResult| {
        let d = d.map_err(|(e, _)| fail(e.to_string()))?;
        let end = out.ends.entry(d.partition).or_default();
        *end = (*end).max(d.offset + 1);
        out.count += 1;
        Ok::<_, ProduceError>(())
    };
    for (key, value) in messages {
        loop {
            match producer.send_result(FutureRecord::to(topic).key(&key).payload(&value)) {
                Ok(d) => {
                    in_flight.push_back(d);
                    break;
                }
                // Local queue full: wait for the oldest delivery, then try again.
                Err((e, _)) if matches!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull)) => {
                    match in_flight.pop_front() {
                        Some(d) => {
                            delivered(&mut out, d.await.map_err(|_| fail("delivery cancelled".into()))?)?;
                            progress(out.count);
                        }
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((e, _)) => return Err(fail(e.to_string())),
            }
        }
        while in_flight.len() >= IN_FLIGHT {
            let d = in_flight.pop_front().expect("non-empty");
            delivered(&mut out, d.await.map_err(|_| fail("delivery cancelled".into()))?)?;
            if out.count.is_multiple_of(1000) {
                progress(out.count);
            }
        }
    }
    for d in in_flight {
        delivered(&mut out, d.await.map_err(|_| fail("delivery cancelled".into()))?)?;
    }
    progress(out.count);
    Ok(out)
}

/// Key and JSON value of a revision.
pub fn message(r: &DataPointRevision) -> (Vec<u8>, Vec<u8>) {
    (r.series_id.as_str().as_bytes().to_vec(), r.to_json())
}

/// Reads revisions from a CSV (header:
/// `series_id,date,revision_date,value[,is_original_release][,status][,comment]`; an empty value
/// or `.` is published as missing, an empty status or comment as none) or JSON-lines file (`-`:
/// standard input).
/// Every record is validated; the first invalid one stops the read with its line number.
pub fn read_file(path: &Path) -> Result<Vec<DataPointRevision>> {
    let what = path.display().to_string();
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f =
            std::fs::File::open(path).map_err(|e| ProduceError::Input { what: what.clone(), reason: e.to_string() })?;
        Box::new(std::io::BufReader::new(f))
    };
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv { read_csv(reader, &what) } else { read_jsonl(reader, &what) }
}

fn read_jsonl(reader: Box<dyn BufRead>, what: &str) -> Result<Vec<DataPointRevision>> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| ProduceError::Input { what: what.to_owned(), reason: e.to_string() })?;
        if line.trim().is_empty() {
            continue;
        }
        let r = decode_data_point_json(line.as_bytes())
            .map_err(|e| ProduceError::Input { what: format!("{what} line {}", i + 1), reason: e.to_string() })?;
        out.push(r);
    }
    Ok(out)
}

fn read_csv(reader: Box<dyn BufRead>, what: &str) -> Result<Vec<DataPointRevision>> {
    let mut csv = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(reader);
    let bad = |line: u64, reason: String| ProduceError::Input { what: format!("{what} line {line}"), reason };
    let headers = csv.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(s), Some(d), Some(r), Some(v)) = (col("series_id"), col("date"), col("revision_date"), col("value"))
    else {
        return Err(bad(1, "header must name series_id, date, revision_date and value".into()));
    };
    let original = col("is_original_release");
    // Optional wire-version-2 columns; empty cells are none.
    let (status_col, comment_col) = (col("status"), col("comment"));
    let mut out = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or_default();
        let series_id = SeriesId::parse_field(field(s), "series_id").map_err(|e| bad(line, e.to_string()))?;
        let date =
            Date::parse_iso(field(d)).ok_or_else(|| bad(line, format!("date {:?} is not YYYY-MM-DD", field(d))))?;
        let revision_date = Date::parse_iso(field(r))
            .ok_or_else(|| bad(line, format!("revision_date {:?} is not YYYY-MM-DD", field(r))))?;
        let value = match field(v) {
            "" | "." => None,
            x => Some(
                x.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| bad(line, format!("value {x:?} is not a number")))?,
            ),
        };
        let is_original_release = match original.map(field) {
            None | Some("") => false,
            Some(x) => matches!(x.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "t"),
        };
        let optional = |c: Option<usize>, check: &dyn Fn(&str) -> std::result::Result<(), ValidationError>| match c
            .map(field)
            .filter(|x| !x.is_empty())
        {
            None => Ok(None),
            Some(x) => check(x).map(|()| Some(x.to_owned())).map_err(|e| bad(line, e.to_string())),
        };
        let status = optional(status_col, &|x| check_status(x, "status"))?;
        let comment = optional(comment_col, &|x| check_text(x, "comment", MAX_COMMENT_BYTES))?;
        out.push(DataPointRevision {
            series_id,
            date,
            revision_date,
            value,
            is_original_release,
            id: None,
            created_at: None,
            updated_at: None,
            status,
            comment,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_jsonl_files_are_read_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("r.csv");
        std::fs::write(&csv, "series_id,date,revision_date,value,is_original_release\nGDPC1,2024-01-01,2024-04-25,22768.9,true\nGDPC1,2024-01-01,2024-05-30,.,false\n").unwrap();
        let rows = read_file(&csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].is_original_release);
        assert_eq!(rows[1].value, None);
        // The version-2 columns: empty cells are none, bad codes are refused with the line.
        std::fs::write(&csv, "series_id,date,revision_date,value,status,comment\nGDPC1,2024-01-01,2024-04-25,1,P,advance\nGDPC1,2024-04-01,2024-07-25,2,,\n").unwrap();
        let v2 = read_file(&csv).unwrap();
        assert_eq!((v2[0].status.as_deref(), v2[0].comment.as_deref()), (Some("P"), Some("advance")));
        assert_eq!((v2[1].status.as_deref(), v2[1].comment.as_deref()), (None, None));
        std::fs::write(&csv, "series_id,date,revision_date,value,status\nGDPC1,2024-01-01,2024-04-25,1,P E\n").unwrap();
        let e = read_file(&csv).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("status"), "{e}");
        std::fs::write(&csv, "series_id,date,revision_date,value\nGDPC1,2024-13-01,2024-04-25,1\n").unwrap();
        let e = read_file(&csv).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("2024-13-01"), "{e}");

        let jsonl = dir.path().join("r.jsonl");
        std::fs::write(
            &jsonl,
            format!(
                "{}\n\n{}\n",
                String::from_utf8(rows[0].to_json()).unwrap(),
                String::from_utf8(rows[1].to_json()).unwrap()
            ),
        )
        .unwrap();
        assert_eq!(read_file(&jsonl).unwrap(), rows);
        std::fs::write(&jsonl, "{\"version\":3}\n").unwrap();
        let e = read_file(&jsonl).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("unknown version"), "{e}");
    }
}
