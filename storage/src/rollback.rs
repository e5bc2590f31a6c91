//! Rollback: make an earlier snapshot of a table its current one again (the seed's "revert to
//! previous data states"), through the same compare-and-swap as every commit.
//!
//! The Kafka positions live in each snapshot's summary, so the rollback takes them back too: the
//! next ingest commit is fenced (its expected positions are gone), ingest re-reads from the
//! positions of the restored snapshot, and the rolled-back rows come in again exactly once.

use std::collections::BTreeMap;
use std::str::FromStr;

use iceberg::MetadataLocation;
use iceberg::spec::{MAIN_BRANCH, SnapshotReference, SnapshotRetention, TableMetadata};
use iceberg::table::Table;
use serde::Serialize;

use crate::catalog::{TableKind, Warehouse};
use crate::commit::{
    Change, OFFSET_PROPERTY_PREFIX, RetryPolicy, SUMMARY_OPERATION, Staged, ancestors, offset_property, positions_at,
    publish,
};
use crate::error::{Result, StorageError};

/// Which snapshot to go back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackTarget {
    Snapshot(i64),
    /// The newest snapshot of the current lineage committed at or before this time (ms).
    AsOfMs(i64),
}

/// A snapshot the rollback takes out of the table's lineage.
#[derive(Debug, Clone, Serialize)]
pub struct Undone {
    pub snapshot_id: i64,
    pub timestamp_ms: i64,
    pub operation: String,
    pub origin: Option<String>,
}

/// What a rollback changes, computed against the table as it is now.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackPlan {
    pub table: String,
    pub from_snapshot: i64,
    pub to_snapshot: i64,
    pub to_timestamp_ms: i64,
    /// Newest first.
    pub undone: Vec<Undone>,
    pub records_before: Option<u64>,
    pub records_after: Option<u64>,
    /// `topic[partition]` → (now, after the rollback); only the partitions that change.
    pub positions: BTreeMap<String, (Option<i64>, Option<i64>)>,
    /// Every position of the restored snapshot.
    #[serde(skip)]
    pub restored_positions: BTreeMap<(String, i32), i64>,
    /// The partitions whose position moves: (topic, partition) → (now, after).
    #[serde(skip)]
    pub moved: BTreeMap<(String, i32), (Option<i64>, Option<i64>)>,
}

impl RollbackPlan {
    /// The restored positions the Kafka log no longer holds, given each moved partition's log
    /// start (`None`: unknown, not a gap): one line per partition. A partition with no restored
    /// position starts from the beginning, so any deleted message is a gap.
    pub fn gaps(&self, log_start: &BTreeMap<(String, i32), i64>) -> Vec<String> {
        self.moved
            .iter()
            .filter_map(|(key, (_, after))| {
                let low = *log_start.get(key)?;
                let from = after.unwrap_or(0);
                (from < low).then(|| {
                    format!(
                        "{}[{}]: the restored position is {from} but the log starts at {low} ({} messages deleted \
                         by retention)",
                        key.0,
                        key.1,
                        low - from
                    )
                })
            })
            .collect()
    }
}

fn total_records(meta: &TableMetadata, id: i64) -> Option<u64> {
    meta.snapshot_by_id(id)?.summary().additional_properties.get("total-records")?.parse().ok()
}

/// The current snapshot's ancestry, newest first.
fn lineage(meta: &TableMetadata) -> Vec<i64> {
    ancestors(meta, meta.current_snapshot_id()).map(|s| s.snapshot_id()).collect()
}

/// What rolling `table` back to `target` would do now. The target must be an ancestor of the
/// current snapshot (a rollback, not a jump to another branch of history).
pub fn plan(table: &Table, target: RollbackTarget) -> Result<RollbackPlan> {
    let meta = table.metadata();
    let name = table.identifier().to_string();
    let from = meta
        .current_snapshot_id()
        .ok_or_else(|| StorageError::InvalidData(format!("{name} has no snapshot to roll back from")))?;
    let ancestry = lineage(meta);
    let to = match target {
        RollbackTarget::Snapshot(id) => {
            if meta.snapshot_by_id(id).is_none() {
                return Err(StorageError::NoSuchSnapshot(id));
            }
            if !ancestry.contains(&id) {
                return Err(StorageError::InvalidData(format!(
                    "snapshot {id} is not an ancestor of {name}'s current snapshot {from} (it was itself rolled back \
                     or belongs to another lineage); roll back to one of `vintagelake admin snapshots`' lineage"
                )));
            }
            id
        }
        RollbackTarget::AsOfMs(t) => *ancestry
            .iter()
            .find(|id| meta.snapshot_by_id(**id).is_some_and(|s| s.timestamp_ms() <= t))
            .ok_or(StorageError::NoSnapshotAtTime(t))?,
    };
    let undone = ancestry
        .iter()
        .take_while(|id| **id != to)
        .filter_map(|id| meta.snapshot_by_id(*id))
        .map(|s| Undone {
            snapshot_id: s.snapshot_id(),
            timestamp_ms: s.timestamp_ms(),
            operation: s.summary().operation.as_str().to_owned(),
            origin: s.summary().additional_properties.get(SUMMARY_OPERATION).cloned(),
        })
        .collect();
    let now = positions_at(meta, Some(from));
    let then = positions_at(meta, Some(to));
    let mut moved = BTreeMap::new();
    for key in now.keys().chain(then.keys()) {
        let (a, b) = (now.get(key).copied(), then.get(key).copied());
        if a != b {
            moved.insert(key.clone(), (a, b));
        }
    }
    let positions = moved.iter().map(|((t, p), v)| (format!("{t}[{p}]"), *v)).collect();
    Ok(RollbackPlan {
        table: name,
        from_snapshot: from,
        to_snapshot: to,
        to_timestamp_ms: meta.snapshot_by_id(to).map(|s| s.timestamp_ms()).unwrap_or_default(),
        undone,
        records_before: total_records(meta, from),
        records_after: total_records(meta, to),
        positions,
        restored_positions: then,
        moved,
    })
}

struct SetCurrent {
    target: RollbackTarget,
}

impl Change for SetCurrent {
    type Output = RollbackPlan;
    async fn stage(&self, wh: &Warehouse, table: &Table, _attempt: u32) -> Result<Staged<RollbackPlan>> {
        // Planned again on every attempt: ingest may have committed on top meanwhile.
        let plan = plan(table, self.target)?;
        let current = table.metadata_location_result()?.to_owned();
        let meta = table.metadata();
        // The position properties follow the restored snapshot too (tools that read them).
        let stale: Vec<String> = meta
            .properties()
            .keys()
            .filter(|k| k.starts_with(OFFSET_PROPERTY_PREFIX))
            .filter(|k| !plan.restored_positions.keys().any(|(t, p)| offset_property(t, *p) == **k))
            .cloned()
            .collect();
        let restored: std::collections::HashMap<String, String> =
            plan.restored_positions.iter().map(|((t, p), o)| (offset_property(t, *p), o.to_string())).collect();
        let mut builder = meta.clone().into_builder(Some(current.clone())).set_ref(
            MAIN_BRANCH,
            SnapshotReference::new(plan.to_snapshot, SnapshotRetention::branch(None, None, None)),
        )?;
        if !stale.is_empty() {
            builder = builder.remove_properties(&stale)?;
        }
        if !restored.is_empty() {
            builder = builder.set_properties(restored)?;
        }
        let new_meta = builder.build()?.metadata;
        let location = MetadataLocation::from_str(&current)?.with_next_version().with_new_metadata(&new_meta);
        new_meta.write_to(wh.file_io(), &location).await?;
        Ok(Staged { metadata_location: location.to_string(), written: vec![location.to_string()], value: plan })
    }
}

/// Rolls the table back to `target`; returns what it did (as planned against the table it was
/// committed on).
pub async fn rollback(wh: &Warehouse, kind: TableKind, target: RollbackTarget) -> Result<RollbackPlan> {
    let (plan, _) = publish(wh, kind, &RetryPolicy::default(), "rollback", &SetCurrent { target }).await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (topic, partition), position now, position after.
    type Move<'a> = ((&'a str, i32), Option<i64>, Option<i64>);

    fn plan_moving(moved: &[Move<'_>]) -> RollbackPlan {
        RollbackPlan {
            table: "econ.data_points".into(),
            from_snapshot: 2,
            to_snapshot: 1,
            to_timestamp_ms: 0,
            undone: Vec::new(),
            records_before: None,
            records_after: None,
            positions: BTreeMap::new(),
            restored_positions: BTreeMap::new(),
            moved: moved.iter().map(|((t, p), a, b)| (((*t).to_owned(), *p), (*a, *b))).collect(),
        }
    }

    #[test]
    fn a_gap_is_a_restored_position_below_the_log_start() {
        let plan =
            plan_moving(&[(("t", 0), Some(500), Some(120)), (("t", 1), Some(90), Some(40)), (("t", 2), Some(7), None)]);
        let starts = BTreeMap::from([(("t".to_owned(), 0), 300), (("t".to_owned(), 1), 40), (("t".to_owned(), 2), 3)]);
        let gaps = plan.gaps(&starts);
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(
            gaps[0].starts_with("t[0]: the restored position is 120 but the log starts at 300 (180 messages"),
            "{gaps:?}"
        );
        assert!(gaps[1].starts_with("t[2]: the restored position is 0 but the log starts at 3"), "{gaps:?}");
        assert!(plan.gaps(&BTreeMap::new()).is_empty(), "an unknown log start is not a gap");
    }
}
