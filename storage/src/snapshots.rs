//! Snapshots: listing, expiry (older than / keep last N; never the current one or a tagged or
//! branch-head one), and orphan files — files under a table's locations that no retained snapshot
//! or metadata file references — removed only after a grace period.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use iceberg::MetadataLocation;
use iceberg::table::Table;
use std::str::FromStr;

use crate::catalog::{TableKind, Warehouse};
use crate::commit::{Change, RetryPolicy, Staged, publish};
use crate::error::{Result, StorageError};

/// One snapshot, for listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotInfo {
    pub snapshot_id: i64,
    pub parent_snapshot_id: Option<i64>,
    pub sequence_number: i64,
    pub timestamp_ms: i64,
    pub operation: String,
    /// `vintagelake.operation`: which component committed it and why.
    pub origin: Option<String>,
    pub is_current: bool,
    /// Branches and tags pointing at it.
    pub refs: Vec<String>,
    pub summary: BTreeMap<String, String>,
}

/// Branch and tag names → (snapshot id, is a tag). Read through serde: the crate has no accessor.
fn refs(table: &Table) -> Result<Vec<(String, i64, bool)>> {
    let json = serde_json::to_value(table.metadata()).map_err(|e| StorageError::InvalidData(e.to_string()))?;
    let mut out = Vec::new();
    if let Some(map) = json.get("refs").and_then(|r| r.as_object()) {
        for (name, r) in map {
            let id = r.get("snapshot-id").and_then(|v| v.as_i64()).unwrap_or_default();
            let tag = r.get("type").and_then(|v| v.as_str()) == Some("tag");
            out.push((name.clone(), id, tag));
        }
    }
    Ok(out)
}

/// Every snapshot of the table, oldest first.
pub fn list_snapshots(table: &Table) -> Result<Vec<SnapshotInfo>> {
    let meta = table.metadata();
    let refs = refs(table)?;
    let current = meta.current_snapshot_id();
    let mut out: Vec<SnapshotInfo> = meta
        .snapshots()
        .map(|s| {
            let summary: BTreeMap<String, String> =
                s.summary().additional_properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            SnapshotInfo {
                snapshot_id: s.snapshot_id(),
                parent_snapshot_id: s.parent_snapshot_id(),
                sequence_number: s.sequence_number(),
                timestamp_ms: s.timestamp_ms(),
                operation: s.summary().operation.as_str().to_owned(),
                origin: summary.get(crate::commit::SUMMARY_OPERATION).cloned(),
                is_current: Some(s.snapshot_id()) == current,
                refs: refs.iter().filter(|(_, id, _)| *id == s.snapshot_id()).map(|(n, _, _)| n.clone()).collect(),
                summary,
            }
        })
        .collect();
    out.sort_by_key(|s| s.sequence_number);
    Ok(out)
}

/// Which snapshots to expire.
#[derive(Debug, Clone, Copy)]
pub struct ExpirePolicy {
    /// Only snapshots older than this (ms since the epoch) may expire.
    pub older_than_ms: i64,
    /// The most recent N snapshots are always kept (at least 1: the current one).
    pub retain_last: usize,
}

/// What an expiry run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExpireReport {
    pub expired: Vec<i64>,
    /// Manifest lists, manifests and data files only the expired snapshots referenced.
    pub files_deleted: usize,
    pub bytes_deleted: u64,
}

/// The snapshots the policy would expire now.
pub fn snapshots_to_expire(table: &Table, policy: &ExpirePolicy) -> Result<Vec<i64>> {
    let all = list_snapshots(table)?;
    let keep_recent: HashSet<i64> = all.iter().rev().take(policy.retain_last.max(1)).map(|s| s.snapshot_id).collect();
    Ok(all
        .iter()
        .filter(|s| !s.is_current && s.refs.is_empty() && !keep_recent.contains(&s.snapshot_id))
        .filter(|s| s.timestamp_ms < policy.older_than_ms)
        .map(|s| s.snapshot_id)
        .collect())
}

struct RemoveSnapshots {
    policy: ExpirePolicy,
}

impl Change for RemoveSnapshots {
    type Output = Vec<i64>;
    async fn stage(&self, wh: &Warehouse, table: &Table, _attempt: u32) -> Result<Staged<Vec<i64>>> {
        let ids = snapshots_to_expire(table, &self.policy)?;
        let current = table.metadata_location_result()?.to_owned();
        let meta =
            table.metadata().clone().into_builder(Some(current.clone())).remove_snapshots(&ids).build()?.metadata;
        let location = MetadataLocation::from_str(&current)?.with_next_version().with_new_metadata(&meta);
        meta.write_to(wh.file_io(), &location).await?;
        Ok(Staged { metadata_location: location.to_string(), written: vec![location.to_string()], value: ids })
    }
}

/// Every file the given snapshots reference: manifest lists, manifests and data files (live or
/// marked deleted). Manifests shared by many snapshots are read once.
async fn snapshots_files(table: &Table, snapshot_ids: Vec<i64>) -> Result<HashSet<String>> {
    let mut files = HashSet::new();
    let mut manifests_seen: HashSet<String> = HashSet::new();
    for snapshot_id in snapshot_ids {
        let snapshot =
            table.metadata().snapshot_by_id(snapshot_id).cloned().ok_or(StorageError::NoSuchSnapshot(snapshot_id))?;
        files.insert(snapshot.manifest_list().to_owned());
        let list = table.manifest_list_reader(&snapshot).load().await?;
        for mf in list.entries() {
            if !manifests_seen.insert(mf.manifest_path.clone()) {
                continue;
            }
            files.insert(mf.manifest_path.clone());
            let manifest = mf.load_manifest(table.file_io()).await?;
            files.extend(manifest.entries().iter().map(|e| e.file_path().to_owned()));
        }
    }
    Ok(files)
}

/// Expires snapshots per policy, then deletes files that only expired snapshots referenced.
pub async fn expire_snapshots(wh: &Warehouse, kind: TableKind, policy: ExpirePolicy) -> Result<ExpireReport> {
    let before = wh.load(kind).await?;
    if snapshots_to_expire(&before, &policy)?.is_empty() {
        return Ok(ExpireReport::default());
    }
    let (expired, _) = publish(wh, kind, &RetryPolicy::default(), "expire", &RemoveSnapshots { policy }).await?;
    if expired.is_empty() {
        return Ok(ExpireReport::default());
    }
    vintagelake_runtime::failpoint::hit("expire-before-delete");
    // Files of the expired snapshots, minus anything a retained snapshot (of the table as it is
    // now, including commits that landed meanwhile) still references.
    let after = wh.load(kind).await?;
    let expired_here = expired.iter().copied().filter(|id| before.metadata().snapshot_by_id(*id).is_some());
    let mut candidates = snapshots_files(&before, expired_here.collect::<Vec<_>>()).await?;
    for f in snapshots_files(&after, after.metadata().snapshots().map(|s| s.snapshot_id()).collect::<Vec<_>>()).await? {
        candidates.remove(&f);
    }
    let mut report = ExpireReport { expired: expired.clone(), ..Default::default() };
    for path in candidates {
        let size = wh.file_io().new_input(&path)?.metadata().await.map(|m| m.size).unwrap_or(0);
        wh.file_io().delete(&path).await?;
        report.files_deleted += 1;
        report.bytes_deleted += size;
    }
    metrics::counter!(crate::metrics::SNAPSHOTS_EXPIRED, "table" => kind.name()).increment(expired.len() as u64);
    tracing::info!(table = kind.name(), expired = expired.len(), files = report.files_deleted, "expired snapshots");
    Ok(report)
}

/// A file in a table's locations that nothing references.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrphanFile {
    pub path: String,
    pub size_bytes: u64,
    pub last_modified_ms: i64,
}

/// Files under the table's metadata and data locations (in every tier) that neither the current
/// metadata, its metadata log nor any retained snapshot references, and that are older than
/// `grace` (younger ones may belong to a commit in flight).
pub async fn find_orphans(wh: &Warehouse, kind: TableKind, grace: Duration) -> Result<Vec<OrphanFile>> {
    let table = wh.load(kind).await?;
    let meta = table.metadata();
    let mut referenced: HashSet<String> = HashSet::new();
    referenced.insert(normalize(table.metadata_location_result()?));
    referenced.extend(meta.metadata_log().iter().map(|m| normalize(&m.metadata_file)));
    let all: Vec<i64> = meta.snapshots().map(|s| s.snapshot_id()).collect();
    referenced.extend(snapshots_files(&table, all).await?.iter().map(|p| normalize(p)));
    let mut prefixes = vec![format!("{}/metadata/", meta.location()), format!("{}/data/", meta.location())];
    for tier in wh.router().tiers() {
        prefixes.push(format!("{}/", wh.data_location(kind, &tier.name)?));
    }
    prefixes.sort();
    prefixes.dedup();
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut seen = HashSet::new();
    let mut orphans = Vec::new();
    for prefix in prefixes {
        let (store, key) = wh.router().resolve(&prefix)?;
        let mut listing = store.list(Some(&key));
        while let Some(item) = listing.next().await {
            let item = match item {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(StorageError::InvalidData(format!("listing {prefix}: {e}"))),
            };
            let path = location_of(&prefix, item.location.as_ref());
            if !seen.insert(path.clone()) || referenced.contains(&normalize(&path)) || item.last_modified > cutoff {
                continue;
            }
            orphans.push(OrphanFile {
                path,
                size_bytes: item.size,
                last_modified_ms: item.last_modified.timestamp_millis(),
            });
        }
    }
    orphans.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(orphans)
}

/// Deletes orphan files older than `grace`; returns what was deleted.
pub async fn remove_orphans(wh: &Warehouse, kind: TableKind, grace: Duration) -> Result<Vec<OrphanFile>> {
    let orphans = find_orphans(wh, kind, grace).await?;
    for (i, o) in orphans.iter().enumerate() {
        wh.file_io().delete(&o.path).await?;
        if i == 0 {
            vintagelake_runtime::failpoint::hit("orphans-after-first-delete");
        }
    }
    if !orphans.is_empty() {
        metrics::counter!(crate::metrics::ORPHANS_REMOVED, "table" => kind.name()).increment(orphans.len() as u64);
        tracing::info!(table = kind.name(), files = orphans.len(), "removed orphan files");
    }
    Ok(orphans)
}

/// `file:///a` and `/a` compare equal.
fn normalize(p: &str) -> String {
    crate::io::normalize_location(p)
}

/// Rebuilds a full location from a listed object key (the inverse of `TierRouter::resolve`).
fn location_of(prefix: &str, key: &str) -> String {
    match prefix.strip_prefix("s3://").or_else(|| prefix.strip_prefix("s3a://")) {
        Some(rest) => format!("s3://{}/{key}", rest.split('/').next().unwrap_or_default()),
        None => format!("file:///{key}"),
    }
}
