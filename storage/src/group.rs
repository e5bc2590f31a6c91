//! Group commit: concurrent appends to one table through a store's API become one commit.
//!
//! Every commit to a table is a compare-and-swap on its current state (the catalog pointer for
//! Iceberg, the next log version for V1), so concurrent writers that each commit race: all but
//! one lose, re-plan and try again, and throughput falls as writers are added. Ingest never had
//! that problem (one committer per process, large batches). API writers do, so their appends
//! queue per table: whoever finds no commit running leads — it takes everything queued and
//! commits it as one append — and the others wait for that commit's outcome; appends that arrive
//! meanwhile form the next group. Each caller gets the outcome of the commit that held its rows:
//! success with that commit's snapshot, or its error (the first caller the original, the others a
//! [`StorageError::GroupCommit`] of the same kind, that says whether it may have committed).
//!
//! Rows are checked and converted by each caller before they join a group, so a group fails
//! only for reasons that concern all of it (the catalog, the storage). The commit runs on a task
//! of its own: a leader whose caller goes away (a client that disconnects) does not take the
//! others' commit with it. Rows keep their arrival numbers: the store renumbers a group's rows in
//! the order of the numbers callers took ([`crate::arrivals::renumber`]), so the order of
//! arrivals is the same as if each caller had committed alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use tokio::sync::oneshot;

use crate::catalog::TableKind;
use crate::commit::Committed;
use crate::error::{Result, StorageError};

/// A commit of a group's rows, to run on its own task.
pub type GroupCommitFuture = Pin<Box<dyn Future<Output = Result<Committed>> + Send + 'static>>;

/// One table's queue of appends and the lock its leader holds while the group commits.
#[derive(Debug, Default)]
struct Lane {
    queue: Mutex<Vec<Waiting>>,
    leader: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug)]
struct Waiting {
    batches: Vec<RecordBatch>,
    done: oneshot::Sender<Result<Committed>>,
}

/// The appends of a store's API writers, grouped per table (shared by the store's clones).
#[derive(Debug, Default)]
pub struct GroupCommit {
    lanes: [Lane; 2],
}

impl GroupCommit {
    fn lane(&self, kind: TableKind) -> &Lane {
        match kind {
            TableKind::DataPoints => &self.lanes[0],
            TableKind::Series => &self.lanes[1],
        }
    }

    /// Appends `batches` to `kind` in a group with whatever other callers append meanwhile;
    /// `commit` makes one commit of a group's rows (called by the leader, at most once per call).
    pub async fn append(
        &self,
        kind: TableKind,
        batches: Vec<RecordBatch>,
        commit: impl Fn(Vec<RecordBatch>) -> GroupCommitFuture,
    ) -> Result<Committed> {
        let lane = self.lane(kind);
        let (done, mut outcome) = oneshot::channel();
        lane.queue.lock().expect("group commit queue").push(Waiting { batches, done });
        loop {
            tokio::select! {
                biased;
                result = &mut outcome => {
                    return result.unwrap_or_else(|_| Err(StorageError::GroupCommit {
                        message: "the task committing this group ended without an outcome".into(),
                        kind: crate::error::ErrorKind::Unavailable,
                        may_have_committed: true,
                        writers: 0,
                    }));
                }
                guard = lane.leader.clone().lock_owned() => {
                    // Writers started together (one task joining several appends, or tasks woken
                    // at once) get one turn to queue before the group is taken: the first of
                    // them would otherwise always commit alone.
                    tokio::task::yield_now().await;
                    let group = std::mem::take(&mut *lane.queue.lock().expect("group commit queue"));
                    if group.is_empty() {
                        continue; // ours was in the group that just committed: its outcome is waiting
                    }
                    let writers = group.len();
                    let mut rows = Vec::new();
                    let mut waiting = Vec::with_capacity(writers);
                    for w in group {
                        rows.extend(w.batches);
                        waiting.push(w.done);
                    }
                    let commit = commit(rows);
                    tokio::spawn(async move {
                        let result = commit.await;
                        if writers > 1 {
                            tracing::debug!(table = kind.name(), writers, ok = result.is_ok(), "group commit");
                        }
                        metrics::counter!(crate::metrics::GROUP_COMMITS, "table" => kind.name()).increment(1);
                        metrics::counter!(crate::metrics::GROUP_COMMIT_APPENDS, "table" => kind.name())
                            .increment(writers as u64);
                        deliver(result, waiting);
                        drop(guard);
                    });
                }
            }
        }
    }
}

impl GroupCommit {
    /// Appends an API write's rows to `kind` of `store` in a group commit: the group's rows are
    /// committed through the store's own append (origin `api`, no Kafka positions).
    pub async fn append_to<S>(&self, store: &S, kind: TableKind, batch: RecordBatch) -> Result<Committed>
    where
        S: crate::store::IngestTarget + Clone + 'static,
    {
        let store = store.clone();
        self.append(kind, vec![batch], move |rows| {
            let store = store.clone();
            Box::pin(async move { store.append(kind, &rows, Vec::new(), "api").await })
        })
        .await
    }
}

/// Hands a group's outcome to each of its callers.
fn deliver(result: Result<Committed>, waiting: Vec<oneshot::Sender<Result<Committed>>>) {
    let writers = waiting.len();
    match result {
        Ok(committed) => {
            for w in waiting {
                let _ = w.send(Ok(committed.clone()));
            }
        }
        Err(e) => {
            let mut waiting = waiting.into_iter();
            let first = waiting.next();
            for w in waiting {
                let _ = w.send(Err(e.shared(writers)));
            }
            if let Some(w) = first {
                let _ = w.send(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
    }

    fn committed(rows: usize) -> Committed {
        Committed {
            snapshot_id: rows as i64,
            sequence_number: 1,
            metadata_location: String::new(),
            attempts: 1,
            added_files: 1,
            removed_files: 0,
            added_records: rows as u64,
            removed_records: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_share_commits_and_every_caller_gets_its_outcome() {
        let group = Arc::new(GroupCommit::default());
        let commits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (group, commits, seen) = (group.clone(), commits.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                group
                    .append(TableKind::DataPoints, vec![batch(i)], move |rows| {
                        let (commits, seen) = (commits.clone(), seen.clone());
                        Box::pin(async move {
                            commits.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await; // a commit takes time
                            let mut values: Vec<i64> = rows
                                .iter()
                                .flat_map(|b| {
                                    b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
                                })
                                .collect();
                            values.sort();
                            seen.lock().unwrap().push(values);
                            Ok(committed(rows.len()))
                        })
                    })
                    .await
                    .map(|c| (i, c.snapshot_id))
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap().unwrap());
        }
        let seen = seen.lock().unwrap().clone();
        let mut all: Vec<i64> = seen.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<_>>(), "every row committed exactly once");
        assert_eq!(commits.load(Ordering::SeqCst), seen.len());
        assert!(seen.len() < 50, "concurrent appends were grouped: {} commits", seen.len());
        // Each caller's outcome is the commit that held its row.
        for (i, snapshot) in outcomes {
            let holder = seen.iter().find(|g| g.contains(&i)).unwrap();
            assert_eq!(snapshot, holder.len() as i64, "caller {i}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_group_fails_each_caller_with_the_same_kind() {
        let group = Arc::new(GroupCommit::default());
        // A leader is committing (slowly) while four more callers queue behind it.
        let slow = {
            let group = group.clone();
            tokio::spawn(async move {
                group
                    .append(TableKind::Series, vec![batch(0)], |_| {
                        Box::pin(async {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Ok(committed(1))
                        })
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut tasks = Vec::new();
        for i in 1..5 {
            let group = group.clone();
            tasks.push(tokio::spawn(async move {
                group
                    .append(TableKind::Series, vec![batch(i)], |_| {
                        Box::pin(async {
                            Err(StorageError::CommitOutcomeUnknown {
                                table: "econ.series".into(),
                                metadata_location: "m".into(),
                                reason: "catalog did not answer".into(),
                            })
                        })
                    })
                    .await
            }));
        }
        assert!(slow.await.unwrap().is_ok());
        let mut originals = 0;
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert!(e.may_have_committed(), "{e}");
            assert_eq!(e.kind(), crate::error::ErrorKind::Unavailable, "{e}");
            originals += usize::from(matches!(e, StorageError::CommitOutcomeUnknown { .. }));
        }
        assert_eq!(originals, 1, "one caller gets the original error, the others a shared one");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_leader_whose_caller_goes_away_still_commits_the_group() {
        let group = Arc::new(GroupCommit::default());
        let committed_rows = Arc::new(AtomicUsize::new(0));
        let commit = |counter: Arc<AtomicUsize>| {
            move |rows: Vec<RecordBatch>| -> GroupCommitFuture {
                let counter = counter.clone();
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    counter.fetch_add(rows.len(), Ordering::SeqCst);
                    Ok(committed(rows.len()))
                })
            }
        };
        // The leader's caller times out while its commit runs.
        let leader = tokio::time::timeout(
            Duration::from_millis(20),
            group.append(TableKind::DataPoints, vec![batch(0)], commit(committed_rows.clone())),
        )
        .await;
        assert!(leader.is_err(), "the caller went away");
        // A caller arriving now waits for that commit, then leads its own.
        let later = group.append(TableKind::DataPoints, vec![batch(1)], commit(committed_rows.clone())).await;
        assert!(later.is_ok());
        assert_eq!(committed_rows.load(Ordering::SeqCst), 2, "both rows committed");
    }
}
