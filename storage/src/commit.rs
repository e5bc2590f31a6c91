//! Our commit path for every change to a table: append (with the Kafka offsets it covers),
//! replace / delete / overwrite (the remove-files commit iceberg 0.10.1 lacks).
//!
//! A commit builds a complete new snapshot from the current one: a manifest for the added
//! files, rewritten manifests for those that hold removed files (DELETED and EXISTING entries with
//! their original sequence numbers), the untouched manifests carried over, a manifest list, a
//! summary with correct totals, and a new metadata file. It then swaps the catalog row
//! compare-and-set. If another writer got there first, everything is rebuilt from the new
//! current state (re-checking that the files to remove are still live and the offsets still
//! ours) after a jittered backoff. Files written by a losing attempt are deleted; a crash leaves
//! at most unreferenced files, which orphan cleanup removes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use iceberg::MetadataLocation;
use iceberg::spec::{
    DataContentType, DataFile, MAIN_BRANCH, ManifestContentType, ManifestFile, ManifestListWriter, ManifestWriter,
    ManifestWriterBuilder, Operation, Snapshot, SnapshotReference, SnapshotRetention, SnapshotSummaryCollector,
    Summary, TableMetadata,
};
use iceberg::table::Table;
use rand::Rng;

use crate::catalog::{TableKind, Warehouse};
use crate::error::{Result, StorageError};

/// Summary key naming the component and purpose of a commit (`ingest`, `compaction`, `retention`,
/// `tiering`, `api`).
pub const SUMMARY_OPERATION: &str = "vintagelake.operation";
/// Summary key with the Kafka offsets a commit covers (JSON: topic → partition → [from, to)).
pub const SUMMARY_OFFSETS: &str = "vintagelake.kafka-offsets";
/// Summary key with every Kafka position the table holds as of the snapshot (JSON: topic →
/// partition → next offset). Every snapshot we write carries it, so time travel and a rollback
/// (ours or another engine's) take the positions back with the data.
pub const SUMMARY_POSITIONS: &str = "vintagelake.kafka-positions";
/// Table property prefix of recorded offsets: `vintagelake.offset:<topic>:<partition>` = next
/// offset. Still written (tools read it), but read only for tables whose snapshots predate
/// [`SUMMARY_POSITIONS`].
pub const OFFSET_PROPERTY_PREFIX: &str = "vintagelake.offset:";
/// More carried-over manifests than this get merged into one, keeping scan planning fast.
pub const MANIFEST_MERGE_THRESHOLD: usize = 64;

/// What a commit does to the table's data (Iceberg's snapshot `operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    /// Only adds files.
    Append,
    /// Swaps files for others holding the same logical data (compaction, tier moves).
    Replace,
    /// Only removes files (retention).
    Delete,
    /// Removes and adds files, changing the data.
    Overwrite,
}

impl CommitKind {
    pub fn operation(self) -> Operation {
        match self {
            CommitKind::Append => Operation::Append,
            CommitKind::Replace => Operation::Replace,
            CommitKind::Delete => Operation::Delete,
            CommitKind::Overwrite => Operation::Overwrite,
        }
    }
}

/// Moves a Kafka partition's recorded position from `expected` (what this writer started from;
/// `None`: nothing recorded yet) to `next`, in the same commit as the data it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetUpdate {
    pub topic: String,
    pub partition: i32,
    pub expected: Option<i64>,
    pub next: i64,
}

/// One change to one table.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub kind: CommitKind,
    pub added: Vec<DataFile>,
    /// Paths of data files that must be live now and are removed by this commit.
    pub removed: Vec<String>,
    pub offsets: Vec<OffsetUpdate>,
    /// Who and why: the `vintagelake.operation` summary value.
    pub origin: String,
    /// Extra snapshot summary entries (policy rule, run id, …).
    pub summary: BTreeMap<String, String>,
    /// Arrival numbers the added rows carry ([`crate::arrivals`]): the commit holds only if the
    /// table's mark is still the one they were assigned after.
    pub arrivals: Option<crate::arrivals::ArrivalRange>,
}

impl CommitRequest {
    pub fn append(added: Vec<DataFile>, origin: impl Into<String>) -> Self {
        Self::new(CommitKind::Append, added, Vec::new(), origin)
    }

    pub fn new(kind: CommitKind, added: Vec<DataFile>, removed: Vec<String>, origin: impl Into<String>) -> Self {
        Self {
            kind,
            added,
            removed,
            offsets: Vec::new(),
            origin: origin.into(),
            summary: BTreeMap::new(),
            arrivals: None,
        }
    }

    pub fn with_offsets(mut self, offsets: Vec<OffsetUpdate>) -> Self {
        self.offsets = offsets;
        self
    }

    pub fn with_arrivals(mut self, arrivals: Option<crate::arrivals::ArrivalRange>) -> Self {
        self.arrivals = arrivals;
        self
    }

    pub fn with_summary(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.summary.insert(key.into(), value.into());
        self
    }

    fn validate(&self, table: &str) -> Result<()> {
        let bad = |why: &str| Err(StorageError::InvalidData(format!("{:?} commit to {table}: {why}", self.kind)));
        match self.kind {
            CommitKind::Append if !self.removed.is_empty() => return bad("an append cannot remove files"),
            CommitKind::Delete if !self.added.is_empty() => return bad("a delete cannot add files"),
            CommitKind::Replace | CommitKind::Overwrite if self.removed.is_empty() => {
                return bad("nothing to remove; use an append");
            }
            _ => {}
        }
        if self.added.is_empty() && self.removed.is_empty() && self.offsets.is_empty() {
            return Err(StorageError::EmptyCommit { table: table.to_owned() });
        }
        if let Some(f) = self.added.iter().find(|f| f.content_type() != DataContentType::Data) {
            return bad(&format!("{} is not a data file", f.file_path()));
        }
        let unique: HashSet<&str> = self.removed.iter().map(String::as_str).collect();
        if unique.len() != self.removed.len() {
            return bad("a file is listed twice for removal");
        }
        check_forward(&self.offsets)
    }
}

/// What a successful commit did.
#[derive(Debug, Clone)]
pub struct Committed {
    pub snapshot_id: i64,
    pub sequence_number: i64,
    pub metadata_location: String,
    /// 1 when no other writer interfered.
    pub attempts: u32,
    pub added_files: usize,
    pub removed_files: usize,
    pub added_records: u64,
    pub removed_records: u64,
}

/// Retry behaviour on commit conflicts.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 40, initial_backoff: Duration::from_millis(10), max_backoff: Duration::from_secs(2) }
    }
}

/// The Kafka positions recorded in the table's current snapshot: (topic, partition) → next offset.
pub fn recorded_offsets(metadata: &TableMetadata) -> BTreeMap<(String, i32), i64> {
    positions_at(metadata, metadata.current_snapshot_id())
}

/// The highest arrival number the current snapshot's lineage assigned ([`crate::arrivals`]);
/// `None` for a table written before marks existed.
pub fn arrival_mark(metadata: &TableMetadata) -> Option<i64> {
    ancestors(metadata, metadata.current_snapshot_id())
        .find_map(|s| crate::arrivals::mark_in(&s.summary().additional_properties))
}

/// The Kafka positions as of a snapshot: those of the nearest snapshot in its ancestry (itself
/// first) that records them — a snapshot another engine wrote does not — else, for tables
/// written before positions lived in snapshots, the table properties.
pub fn positions_at(metadata: &TableMetadata, snapshot_id: Option<i64>) -> BTreeMap<(String, i32), i64> {
    ancestors(metadata, snapshot_id)
        .find_map(|s| s.summary().additional_properties.get(SUMMARY_POSITIONS))
        .map_or_else(|| property_offsets(metadata), |json| parse_positions(json))
}

/// A snapshot and its ancestors, newest first; ends at the first expired parent (and never loops,
/// even on damaged metadata).
pub fn ancestors(
    metadata: &TableMetadata,
    from: Option<i64>,
) -> impl Iterator<Item = &iceberg::spec::SnapshotRef> + '_ {
    let mut next = from.and_then(|id| metadata.snapshot_by_id(id));
    std::iter::from_fn(move || {
        let s = next.take()?;
        next = s.parent_snapshot_id().and_then(|id| metadata.snapshot_by_id(id));
        Some(s)
    })
    .take(metadata.snapshots().len())
}

fn parse_positions(json: &str) -> BTreeMap<(String, i32), i64> {
    let by_topic: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_str(json).unwrap_or_else(|e| {
        tracing::error!(error = %e, "unreadable {SUMMARY_POSITIONS} in a snapshot summary");
        BTreeMap::new()
    });
    by_topic
        .into_iter()
        .flat_map(|(t, parts)| parts.into_iter().filter_map(move |(p, o)| Some(((t.clone(), p.parse().ok()?), o))))
        .collect()
}

/// `{"topic": {"0": 12, …}}`.
pub fn positions_json(positions: &BTreeMap<(String, i32), i64>) -> String {
    let mut by_topic: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for ((t, p), o) in positions {
        by_topic.entry(t).or_default().insert(p.to_string(), *o);
    }
    serde_json::to_string(&by_topic).expect("positions serialise")
}

fn property_offsets(metadata: &TableMetadata) -> BTreeMap<(String, i32), i64> {
    metadata
        .properties()
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(OFFSET_PROPERTY_PREFIX)?;
            let (topic, partition) = rest.rsplit_once(':')?;
            Some(((topic.to_owned(), partition.parse().ok()?), v.parse().ok()?))
        })
        .collect()
}

pub(crate) fn offset_property(topic: &str, partition: i32) -> String {
    format!("{OFFSET_PROPERTY_PREFIX}{topic}:{partition}")
}

/// Commits `request` to the table, retrying on conflicts with other writers.
pub async fn commit(
    wh: &Warehouse,
    kind: TableKind,
    request: &CommitRequest,
    policy: &RetryPolicy,
) -> Result<Committed> {
    request.validate(&wh.ident(kind).to_string())?;
    let change = CommitChange { request, manifests: ManifestCache::default() };
    let (committed, attempts) = publish(wh, kind, policy, &request.origin, &change).await?;
    Ok(Committed { attempts, ..committed })
}

/// Manifests are immutable: a retry after a conflict only needs to read the ones the winning
/// writer added, which keeps a slow commit (a compaction) from losing every race to fast ones.
#[derive(Debug, Default)]
struct ManifestCache(std::sync::Mutex<HashMap<String, Arc<iceberg::spec::Manifest>>>);

impl ManifestCache {
    async fn load(&self, mf: &ManifestFile, file_io: &iceberg::io::FileIO) -> Result<Arc<iceberg::spec::Manifest>> {
        if let Some(m) = self.0.lock().expect("manifest cache").get(&mf.manifest_path) {
            return Ok(m.clone());
        }
        let m = Arc::new(mf.load_manifest(file_io).await?);
        self.0.lock().expect("manifest cache").insert(mf.manifest_path.clone(), m.clone());
        Ok(m)
    }
}

struct CommitChange<'r> {
    request: &'r CommitRequest,
    manifests: ManifestCache,
}

/// One kind of metadata change: how to stage it on top of a given table state.
pub(crate) trait Change: Sync {
    type Output: Send;
    fn stage<'a>(
        &'a self,
        wh: &'a Warehouse,
        table: &'a Table,
        attempt: u32,
    ) -> impl Future<Output = Result<Staged<Self::Output>>> + Send + 'a;
}

impl Change for CommitChange<'_> {
    type Output = Committed;
    fn stage<'a>(
        &'a self,
        wh: &'a Warehouse,
        table: &'a Table,
        attempt: u32,
    ) -> impl Future<Output = Result<Staged<Committed>>> + Send + 'a {
        stage(wh, table, self.request, attempt, &self.manifests)
    }
}

/// New table metadata written for one attempt, not yet published, and what it would commit.
pub(crate) struct Staged<T> {
    pub(crate) metadata_location: String,
    /// Every file the attempt wrote (manifests, manifest list, metadata), deleted if it loses.
    pub(crate) written: Vec<String>,
    pub(crate) value: T,
}

/// Deletes what a losing attempt wrote: nobody references it.
pub(crate) async fn discard(wh: &Warehouse, written: Vec<String>) {
    for path in written {
        if let Err(e) = wh.file_io().delete(&path).await {
            tracing::debug!(%path, error = %e, "could not delete a file of an uncommitted attempt");
        }
    }
}

/// The optimistic-concurrency loop shared by every metadata change: load the current table,
/// stage a new metadata file from it, swap the catalog row compare-and-set; on conflict discard
/// and retry from the new state after a jittered exponential backoff.
pub(crate) async fn publish<C: Change>(
    wh: &Warehouse,
    kind: TableKind,
    policy: &RetryPolicy,
    origin: &str,
    change: &C,
) -> Result<(C::Output, u32)> {
    let table_name = wh.ident(kind).to_string();
    let mut backoff = policy.initial_backoff;
    let mut last_conflict = String::new();
    for attempt in 1..=policy.max_attempts {
        let table = wh.load(kind).await?;
        let current = table.metadata_location_result()?.to_owned();
        let staged = change.stage(wh, &table, attempt).await?;
        vintagelake_runtime::failpoint::hit("commit-before-swap");
        let swapped = match wh.swap_metadata_location(kind, &current, &staged.metadata_location).await {
            Ok(swapped) => swapped,
            // The reply was lost (e.g. the connection dropped after the UPDATE reached the
            // database): find out what happened before touching any file.
            Err(e) => settle_ambiguous_swap(wh, kind, &current, &staged.metadata_location, e).await?,
        };
        if swapped {
            metrics::counter!(crate::metrics::COMMITS, "table" => kind.name(), "origin" => origin.to_owned())
                .increment(1);
            return Ok((staged.value, attempt));
        }
        metrics::counter!(crate::metrics::COMMIT_CONFLICTS, "table" => kind.name(), "origin" => origin.to_owned())
            .increment(1);
        last_conflict = format!("catalog row moved on from {current}");
        tracing::debug!(table = %table_name, attempt, "commit conflict, retrying");
        discard(wh, staged.written).await;
        let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64);
        tokio::time::sleep(backoff / 2 + Duration::from_millis(jitter / 2)).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
    Err(StorageError::TooManyConflicts { table: table_name, attempts: policy.max_attempts, last: last_conflict })
}

/// How often an ambiguous swap re-reads the catalog before it gives up (with backoff, ~10 s).
const AMBIGUOUS_SWAP_READS: u32 = 8;

/// Decides a catalog swap whose reply was lost: `Ok(true)` it committed, `Ok(false)` it did not
/// (and never can), [`StorageError::CommitOutcomeUnknown`] if the catalog does not answer — then
/// the caller keeps every file it wrote.
///
/// - The row holds the staged location: committed.
/// - The row still holds `expected`: the UPDATE did not apply — or not yet, since a statement the
///   database received before the connection dropped may still run. Sending the same
///   compare-and-swap again makes the outcome definite: if it applies, the lost one never can
///   (it expects `expected`); if it finds the row moved, read again.
/// - The row holds another location: either another writer moved on from `expected` (then ours
///   can never apply) or one committed on top of ours (then the staged location is in the
///   metadata log of the current table).
pub(crate) async fn settle_ambiguous_swap(
    wh: &Warehouse,
    kind: TableKind,
    expected: &str,
    staged: &str,
    error: StorageError,
) -> Result<bool> {
    let table = wh.ident(kind).to_string();
    tracing::warn!(%table, %error, staged, "catalog swap has an unknown outcome; re-reading the catalog");
    let outcome = |o: &'static str| {
        metrics::counter!(crate::metrics::COMMITS_AMBIGUOUS, "table" => kind.name(), "outcome" => o).increment(1);
    };
    let mut last = error.to_string();
    let mut delay = Duration::from_millis(100);
    // Fault tests: the catalog stays unreadable for the whole settling of this swap.
    let unreadable = vintagelake_runtime::failpoint::fails("catalog-unreadable");
    for read in 0..AMBIGUOUS_SWAP_READS {
        if read > 0 {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(3));
        }
        if unreadable {
            last = "injected: the catalog does not answer".into();
            continue;
        }
        let current = match wh.metadata_location(kind).await {
            Ok(l) => l,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        if current == staged {
            tracing::info!(%table, staged, "the ambiguous swap had committed");
            outcome("committed");
            return Ok(true);
        }
        if current == expected {
            match wh.swap_metadata_location(kind, expected, staged).await {
                Ok(true) => {
                    tracing::info!(%table, staged, "the ambiguous swap did not apply; the repeated swap committed");
                    outcome("committed");
                    return Ok(true);
                }
                Ok(false) => {}
                Err(e) => last = e.to_string(),
            }
            continue;
        }
        match wh.load(kind).await {
            Ok(t) => {
                let ours = t.metadata().metadata_log().iter().any(|m| m.metadata_file == staged);
                tracing::info!(%table, staged, current, committed = ours, "the catalog moved on after an ambiguous swap");
                outcome(if ours { "committed" } else { "not_committed" });
                return Ok(ours);
            }
            Err(e) => last = e.to_string(),
        }
    }
    tracing::error!(%table, staged, reason = %last, "cannot tell whether a commit happened; keeping every file it wrote");
    outcome("unknown");
    Err(StorageError::CommitOutcomeUnknown { table, metadata_location: staged.to_owned(), reason: last })
}

/// Builds and writes the new snapshot's files and metadata, without publishing them.
async fn stage(
    wh: &Warehouse,
    table: &Table,
    request: &CommitRequest,
    attempt: u32,
    manifests: &ManifestCache,
) -> Result<Staged<Committed>> {
    let meta = table.metadata();
    let table_name = table.identifier().to_string();
    check_offsets(meta, &request.offsets)?;
    if let Some(a) = request.arrivals {
        let found = arrival_mark(meta);
        if found != a.expected {
            return Err(StorageError::ArrivalsMoved { table: table_name, expected: a.expected, found });
        }
    }
    let mut stager = Stager {
        wh,
        table,
        snapshot_id: new_snapshot_id(meta),
        sequence_number: meta.next_sequence_number(),
        commit_id: uuid::Uuid::now_v7(),
        manifest_count: 0,
        written: Vec::new(),
        manifests,
    };
    match stager.write(request, attempt, &table_name).await {
        Ok((metadata_location, committed)) => {
            stager.written.push(metadata_location.clone());
            Ok(Staged { metadata_location, written: stager.written, value: committed })
        }
        Err(e) => {
            discard(wh, std::mem::take(&mut stager.written)).await;
            Err(e)
        }
    }
}

fn check_offsets(meta: &TableMetadata, offsets: &[OffsetUpdate]) -> Result<()> {
    check_positions(&recorded_offsets(meta), offsets)
}

/// The fence every backend applies before a commit: each position must still be where this
/// writer last saw it (else another replica owns the partition now) and may only move forward.
pub fn check_positions(recorded: &BTreeMap<(String, i32), i64>, offsets: &[OffsetUpdate]) -> Result<()> {
    for o in offsets {
        let found = recorded.get(&(o.topic.clone(), o.partition)).copied();
        if found != o.expected {
            return Err(StorageError::Fenced {
                topic: o.topic.clone(),
                partition: o.partition,
                expected: o.expected,
                found,
            });
        }
    }
    check_forward(offsets)
}

/// Positions only move forward.
fn check_forward(offsets: &[OffsetUpdate]) -> Result<()> {
    for o in offsets {
        if let Some(from) = o.expected
            && o.next < from
        {
            return Err(StorageError::OffsetsBackwards {
                topic: o.topic.clone(),
                partition: o.partition,
                from,
                to: o.next,
            });
        }
    }
    Ok(())
}

/// A random positive id not used by any snapshot of the table.
fn new_snapshot_id(meta: &TableMetadata) -> i64 {
    let mut rng = rand::rng();
    loop {
        let id = rng.random_range(1..i64::MAX);
        if meta.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

struct Stager<'a> {
    wh: &'a Warehouse,
    table: &'a Table,
    snapshot_id: i64,
    sequence_number: i64,
    commit_id: uuid::Uuid,
    manifest_count: u32,
    written: Vec<String>,
    manifests: &'a ManifestCache,
}

impl Stager<'_> {
    fn manifest_writer(&mut self) -> Result<ManifestWriter> {
        let meta = self.table.metadata();
        let path = format!("{}/metadata/{}-m{}.avro", meta.location(), self.commit_id, self.manifest_count);
        self.manifest_count += 1;
        self.written.push(path.clone());
        let output = self.wh.file_io().new_output(&path)?;
        Ok(ManifestWriterBuilder::new(
            output,
            Some(self.snapshot_id),
            meta.current_schema().clone(),
            meta.default_partition_spec().as_ref().clone(),
        )
        .build_v2_data())
    }

    async fn write(&mut self, request: &CommitRequest, attempt: u32, table_name: &str) -> Result<(String, Committed)> {
        let meta = self.table.metadata();
        let file_io = self.wh.file_io().clone();
        let schema = meta.current_schema().clone();
        let spec = meta.default_partition_spec().clone();
        for f in &request.added {
            if f.partition().fields().len() != spec.fields().len() {
                return Err(StorageError::InvalidData(format!(
                    "{} has {} partition values, the table's partition spec has {} fields",
                    f.file_path(),
                    f.partition().fields().len(),
                    spec.fields().len()
                )));
            }
        }

        // Walk the current snapshot's manifests: rewrite those holding files to remove, carry the rest.
        let to_remove: HashSet<&str> = request.removed.iter().map(String::as_str).collect();
        let mut removed: HashMap<String, DataFile> = HashMap::new();
        let mut manifests: Vec<ManifestFile> = Vec::new();
        let mut carried: Vec<ManifestFile> = Vec::new();
        if let Some(parent) = meta.current_snapshot() {
            let list = self.table.manifest_list_reader(parent).load().await?;
            for mf in list.entries() {
                if mf.content != ManifestContentType::Data {
                    manifests.push(mf.clone());
                    continue;
                }
                // A manifest with only DELETED entries describes an older commit: drop it.
                if !(mf.has_added_files() || mf.has_existing_files()) {
                    continue;
                }
                if to_remove.is_empty() {
                    carried.push(mf.clone());
                    continue;
                }
                let manifest = self.manifests.load(mf, &file_io).await?;
                let hit = manifest.entries().iter().any(|e| e.is_alive() && to_remove.contains(e.file_path()));
                if !hit {
                    carried.push(mf.clone());
                    continue;
                }
                let mut w = self.manifest_writer()?;
                for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                    let (seq, file_seq) = entry_sequence_numbers(e)?;
                    if to_remove.contains(e.file_path()) {
                        w.add_delete_file(e.data_file().clone(), seq, Some(file_seq))?;
                        removed.insert(e.file_path().to_owned(), e.data_file().clone());
                    } else {
                        let snapshot = e.snapshot_id().unwrap_or(mf.added_snapshot_id);
                        w.add_existing_file(e.data_file().clone(), snapshot, seq, Some(file_seq))?;
                    }
                }
                manifests.push(w.write_manifest_file().await?);
            }
        }
        if let Some(missing) = request.removed.iter().find(|p| !removed.contains_key(*p)) {
            return Err(StorageError::FileNotLive { table: table_name.to_owned(), path: missing.clone() });
        }
        if carried.len() > MANIFEST_MERGE_THRESHOLD {
            manifests.push(self.merge_manifests(&carried).await?);
        } else {
            manifests.extend(carried);
        }
        if !request.added.is_empty() {
            let mut w = self.manifest_writer()?;
            for f in &request.added {
                w.add_file(f.clone(), self.sequence_number)?;
            }
            manifests.push(w.write_manifest_file().await?);
        }

        // Summary: added/removed metrics from the collector, totals carried from the parent.
        let mut collector = SnapshotSummaryCollector::default();
        for f in &request.added {
            collector.add_file(f, schema.clone(), spec.clone());
        }
        for f in removed.values() {
            collector.remove_file(f, schema.clone(), spec.clone());
        }
        let mut props: HashMap<String, String> = request.summary.clone().into_iter().collect();
        props.extend(collector.build());
        props.insert(SUMMARY_OPERATION.to_owned(), request.origin.clone());
        if !request.offsets.is_empty() {
            props.insert(SUMMARY_OFFSETS.to_owned(), offsets_summary(&request.offsets));
        }
        let mut positions = recorded_offsets(meta);
        for o in &request.offsets {
            positions.insert((o.topic.clone(), o.partition), o.next);
        }
        props.insert(SUMMARY_POSITIONS.to_owned(), positions_json(&positions));
        if let Some(mark) = request.arrivals.map(|a| a.last).or_else(|| arrival_mark(meta)) {
            props.insert(crate::arrivals::SUMMARY_ARRIVALS.to_owned(), mark.to_string());
        }
        update_totals(&mut props, meta.current_snapshot().map(|s| s.summary()));

        let list_path =
            format!("{}/metadata/snap-{}-{}-{}.avro", meta.location(), self.snapshot_id, attempt, self.commit_id);
        self.written.push(list_path.clone());
        let mut list = ManifestListWriter::v2(
            file_io.new_output(&list_path)?.writer().await?,
            self.snapshot_id,
            meta.current_snapshot_id(),
            self.sequence_number,
        );
        list.add_manifests(manifests.into_iter())?;
        list.close().await?;

        // A snapshot may not be older than its parent (writers' clocks differ): keep time monotonic.
        let now = chrono::Utc::now().timestamp_millis();
        let last = meta.snapshots().map(|s| s.timestamp_ms()).max().unwrap_or(i64::MIN);
        let snapshot = Snapshot::builder()
            .with_snapshot_id(self.snapshot_id)
            .with_parent_snapshot_id(meta.current_snapshot_id())
            .with_sequence_number(self.sequence_number)
            .with_timestamp_ms(now.max(last.saturating_add(1)))
            .with_manifest_list(list_path)
            .with_summary(Summary { operation: request.kind.operation(), additional_properties: props })
            .with_schema_id(meta.current_schema_id())
            .build();

        let current = self.table.metadata_location_result()?.to_owned();
        let mut builder = meta.clone().into_builder(Some(current.clone())).add_snapshot(snapshot)?.set_ref(
            MAIN_BRANCH,
            SnapshotReference::new(self.snapshot_id, SnapshotRetention::branch(None, None, None)),
        )?;
        if !request.offsets.is_empty() {
            let recorded: HashMap<String, String> =
                request.offsets.iter().map(|o| (offset_property(&o.topic, o.partition), o.next.to_string())).collect();
            builder = builder.set_properties(recorded)?;
        }
        let new_meta = builder.build()?.metadata;
        let location = MetadataLocation::from_str(&current)?.with_next_version().with_new_metadata(&new_meta);
        new_meta.write_to(&file_io, &location).await?;

        let committed = Committed {
            snapshot_id: self.snapshot_id,
            sequence_number: self.sequence_number,
            metadata_location: location.to_string(),
            attempts: attempt,
            added_files: request.added.len(),
            removed_files: removed.len(),
            added_records: request.added.iter().map(|f| f.record_count()).sum(),
            removed_records: removed.values().map(|f| f.record_count()).sum(),
        };
        Ok((location.to_string(), committed))
    }

    /// Rewrites many carried manifests as one, keeping each live entry's ids and sequence numbers.
    async fn merge_manifests(&mut self, carried: &[ManifestFile]) -> Result<ManifestFile> {
        let file_io = self.wh.file_io().clone();
        let mut w = self.manifest_writer()?;
        for mf in carried {
            let manifest = self.manifests.load(mf, &file_io).await?;
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                let (seq, file_seq) = entry_sequence_numbers(e)?;
                let snapshot = e.snapshot_id().unwrap_or(mf.added_snapshot_id);
                w.add_existing_file(e.data_file().clone(), snapshot, seq, Some(file_seq))?;
            }
        }
        Ok(w.write_manifest_file().await?)
    }
}

fn entry_sequence_numbers(e: &iceberg::spec::ManifestEntry) -> Result<(i64, i64)> {
    let seq = e
        .sequence_number()
        .ok_or_else(|| StorageError::InvalidData(format!("manifest entry {} has no sequence number", e.file_path())))?;
    Ok((seq, e.file_sequence_number.unwrap_or(seq)))
}

fn offsets_summary(offsets: &[OffsetUpdate]) -> String {
    let mut by_topic: BTreeMap<&str, BTreeMap<String, (Option<i64>, i64)>> = BTreeMap::new();
    for o in offsets {
        by_topic.entry(&o.topic).or_default().insert(o.partition.to_string(), (o.expected, o.next));
    }
    serde_json::to_string(&by_topic).expect("offsets serialise")
}

/// `total-*` = parent's total + added − removed (the crate's helper for this is private).
fn update_totals(props: &mut HashMap<String, String>, parent: Option<&Summary>) {
    const TOTALS: [(&str, &str, &str); 6] = [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        ("total-delete-files", "added-delete-files", "removed-delete-files"),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
        ("total-position-deletes", "added-position-deletes", "removed-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes", "removed-equality-deletes"),
    ];
    let get = |m: &HashMap<String, String>, k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    for (total, added, removed) in TOTALS {
        let base = match parent {
            None => 0,
            Some(p) => match p.additional_properties.get(total).and_then(|v| v.parse::<u64>().ok()) {
                Some(v) => v,
                // The parent did not track this total: neither can we.
                None => continue,
            },
        };
        let value = (base + get(props, added)).saturating_sub(get(props, removed));
        props.insert(total.to_owned(), value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_follow_the_parent() {
        let parent = Summary {
            operation: Operation::Append,
            additional_properties: HashMap::from([
                ("total-records".to_owned(), "100".to_owned()),
                ("total-data-files".to_owned(), "4".to_owned()),
            ]),
        };
        let mut props = HashMap::from([
            ("added-records".to_owned(), "30".to_owned()),
            ("deleted-records".to_owned(), "50".to_owned()),
            ("added-data-files".to_owned(), "1".to_owned()),
            ("deleted-data-files".to_owned(), "2".to_owned()),
        ]);
        update_totals(&mut props, Some(&parent));
        assert_eq!(props["total-records"], "80");
        assert_eq!(props["total-data-files"], "3");
        assert!(!props.contains_key("total-files-size"), "parent did not track it");
        let mut first = HashMap::from([("added-records".to_owned(), "7".to_owned())]);
        update_totals(&mut first, None);
        assert_eq!(first["total-records"], "7");
        assert_eq!(first["total-files-size"], "0");
    }

    #[test]
    fn requests_are_checked_before_any_io() {
        let r = CommitRequest::new(CommitKind::Replace, vec![], vec![], "compaction");
        assert!(matches!(r.validate("t"), Err(StorageError::InvalidData(_))));
        let r = CommitRequest::append(vec![], "ingest");
        assert!(matches!(r.validate("t"), Err(StorageError::EmptyCommit { .. })));
        let r = CommitRequest::new(CommitKind::Delete, vec![], vec!["a".into(), "a".into()], "retention");
        assert!(matches!(r.validate("t"), Err(StorageError::InvalidData(_))));
        let r = CommitRequest::append(vec![], "ingest").with_offsets(vec![OffsetUpdate {
            topic: "t".into(),
            partition: 0,
            expected: Some(10),
            next: 5,
        }]);
        assert!(matches!(r.validate("t"), Err(StorageError::OffsetsBackwards { .. })));
    }
}
