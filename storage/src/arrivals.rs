//! Arrival numbers (`ingest_seq`): one order of arrivals for the whole table, whatever partition
//! or writer a row came through.
//!
//! A writer hands an append its rows numbered in the order it received them (ingest: Kafka
//! offset · 2²⁰ + row, which orders a partition; the API: a clock). The store renumbers them at
//! commit: the table's mark — the highest number assigned so far, kept in every snapshot's
//! summary ([`SUMMARY_ARRIVALS`]) — plus the row's rank in the append. A commit that finds the
//! mark moved (another writer appended meanwhile) writes its files again with numbers after the
//! new mark, so numbers follow the order of commits: a correction committed later answers over
//! an earlier value even when the two came through different partitions (a topic repartitioned,
//! a key moved to another replica). Rows of one append keep the order they were given in.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use vintagelake_schemas::arrow::col;

use crate::error::{Result, StorageError};

/// Snapshot summary key: the highest `ingest_seq` any commit so far assigned (carried by every
/// commit, so it survives the expiry of the appends that set it).
pub const SUMMARY_ARRIVALS: &str = "vintagelake.arrival-seq";

/// What an append assigns: numbers after `expected` (the mark it read; `None`: a table written
/// before marks existed), up to `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivalRange {
    pub expected: Option<i64>,
    pub last: i64,
}

/// The mark recorded in a summary map.
pub fn mark_in(summary: &std::collections::HashMap<String, String>) -> Option<i64> {
    summary.get(SUMMARY_ARRIVALS).and_then(|v| v.parse().ok())
}

/// Renumbers the rows of `batches` (data_points table schema) after `after`: ordered by the
/// numbers they carry (ties: the order of the batches, then of the rows), so the writer's order
/// of arrival is kept. Returns the batches and the last number assigned (`after` if none).
pub fn renumber(batches: &[RecordBatch], after: i64) -> Result<(Vec<RecordBatch>, i64)> {
    let mut order: Vec<(i64, usize, usize)> = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let seq = seq_column(batch)?;
        order.extend(seq.values().iter().enumerate().map(|(r, &s)| (s, b, r)));
    }
    order.sort_unstable();
    let mut assigned: Vec<Vec<i64>> = batches.iter().map(|b| vec![0; b.num_rows()]).collect();
    for (rank, &(_, b, r)) in order.iter().enumerate() {
        assigned[b][r] = after + 1 + rank as i64;
    }
    let last = after + order.len() as i64;
    let out = batches
        .iter()
        .zip(assigned)
        .map(|(batch, numbers)| {
            let schema = batch.schema();
            let columns = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| {
                    if f.name() == col::INGEST_SEQ {
                        Arc::new(Int64Array::from(numbers.clone())) as ArrayRef
                    } else {
                        c.clone()
                    }
                })
                .collect();
            Ok(RecordBatch::try_new(schema, columns)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out, last))
}

/// What one attempt of an append read: its own context (the loaded table, …), the table's mark
/// (`None`: written before marks) and the number to continue after.
#[derive(Debug)]
pub struct MarkRead<T> {
    pub context: T,
    pub expected: Option<i64>,
    pub after: i64,
}

/// The append loop every store runs: read the mark, number the rows after it (`renumber`; else
/// keep their numbers and move the mark past them), commit with that range; again when another
/// writer's append moved the mark meanwhile, up to `attempts` times.
pub async fn append_numbered<T, M, MF, C, CF>(
    table: &str,
    batches: &[RecordBatch],
    renumber: bool,
    attempts: u32,
    mut read_mark: M,
    mut commit: C,
) -> Result<crate::commit::Committed>
where
    M: FnMut() -> MF,
    MF: Future<Output = Result<MarkRead<T>>>,
    C: FnMut(T, Vec<RecordBatch>, ArrivalRange) -> CF,
    CF: Future<Output = Result<crate::commit::Committed>>,
{
    for attempt in 1..=attempts {
        let MarkRead { context, expected, after } = read_mark().await?;
        let (rows, last) = if renumber {
            self::renumber(batches, after)?
        } else {
            (batches.to_vec(), highest(batches)?.unwrap_or(after).max(after))
        };
        match commit(context, rows, ArrivalRange { expected, last }).await {
            Err(StorageError::ArrivalsMoved { expected, found, .. }) => {
                tracing::debug!(table, ?expected, ?found, attempt, "arrival mark moved; renumbering");
            }
            other => return other,
        }
    }
    Err(StorageError::TooManyConflicts {
        table: table.to_owned(),
        attempts,
        last: "other writers kept assigning arrival numbers".into(),
    })
}

/// The highest number the rows carry (`None`: no rows).
pub fn highest(batches: &[RecordBatch]) -> Result<Option<i64>> {
    let mut high = None;
    for b in batches {
        if let Some(m) = arrow::compute::max(seq_column(b)?) {
            high = Some(high.map_or(m, |h: i64| h.max(m)));
        }
    }
    Ok(high)
}

fn seq_column(batch: &RecordBatch) -> Result<&arrow::array::PrimitiveArray<Int64Type>> {
    batch
        .column_by_name(col::INGEST_SEQ)
        .map(|c| c.as_primitive::<Int64Type>())
        .ok_or_else(|| StorageError::InvalidData(format!("rows lack {}", col::INGEST_SEQ)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(seqs: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, false),
            Field::new(col::INGEST_SEQ, DataType::Int64, false),
        ]));
        let x: Vec<i64> = (0..seqs.len() as i64).collect();
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(x)), Arc::new(Int64Array::from(seqs.to_vec()))])
            .unwrap()
    }

    fn numbers(b: &RecordBatch) -> Vec<i64> {
        seq_column(b).unwrap().values().to_vec()
    }

    #[test]
    fn renumbering_keeps_the_order_of_arrival_and_continues_after_the_mark() {
        // Two partitions' rows (same offsets), bulk rows after points of a later offset.
        let (out, last) = renumber(&[batch(&[5 << 20, 3 << 20]), batch(&[3 << 20, 4 << 20 | 1])], 100).unwrap();
        assert_eq!(numbers(&out[0]), [104, 101]);
        assert_eq!(numbers(&out[1]), [102, 103], "a tie goes to the earlier batch");
        assert_eq!(last, 104);
        assert_eq!(out[0].column(0).as_primitive::<Int64Type>().values().to_vec(), [0, 1], "rows stay in place");
        let (none, last) = renumber(&[], 7).unwrap();
        assert!(none.is_empty());
        assert_eq!(last, 7);
        assert_eq!(highest(&out).unwrap(), Some(104));
        assert_eq!(highest(&[]).unwrap(), None);
    }
}
