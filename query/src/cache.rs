//! A bounded LRU cache of query results, keyed by table snapshot and ticket: a new commit means a
//! new snapshot id, so a cached answer is never served stale.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use arrow::array::RecordBatch;

/// (snapshot id, canonical ticket JSON)
pub type CacheKey = (i64, String);

#[derive(Debug)]
struct Entry {
    batch: RecordBatch,
    bytes: usize,
    tick: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<CacheKey, Entry>,
    by_age: BTreeMap<u64, CacheKey>,
    bytes: usize,
    tick: u64,
}

/// Least-recently-used results up to `capacity` bytes of Arrow memory.
#[derive(Debug)]
pub struct ResultCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl ResultCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self { capacity: capacity_bytes, inner: Mutex::new(Inner::default()) }
    }

    pub fn get(&self, key: &CacheKey) -> Option<RecordBatch> {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.tick += 1;
        let tick = inner.tick;
        let old = {
            let e = inner.map.get_mut(key)?;
            let old = e.tick;
            e.tick = tick;
            old
        };
        inner.by_age.remove(&old);
        inner.by_age.insert(tick, key.clone());
        inner.map.get(key).map(|e| e.batch.clone())
    }

    /// Inserts a result; results larger than the whole cache are not kept.
    pub fn put(&self, key: CacheKey, batch: RecordBatch) {
        let bytes = batch.get_array_memory_size();
        if bytes > self.capacity {
            return;
        }
        let mut inner = self.inner.lock().expect("cache lock");
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(old) = inner.map.remove(&key) {
            inner.by_age.remove(&old.tick);
            inner.bytes -= old.bytes;
        }
        while inner.bytes + bytes > self.capacity {
            let Some((_, victim)) = inner.by_age.pop_first() else { break };
            if let Some(e) = inner.map.remove(&victim) {
                inner.bytes -= e.bytes;
            }
        }
        inner.bytes += bytes;
        inner.by_age.insert(tick, key.clone());
        inner.map.insert(key, Entry { batch, bytes, tick });
    }

    pub fn clear(&self) {
        *self.inner.lock().expect("cache lock") = Inner::default();
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().expect("cache lock").bytes
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("cache lock").map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1i64; n]))]).unwrap()
    }

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let one = batch(1000).get_array_memory_size();
        let cache = ResultCache::new(one * 2 + one / 2);
        cache.put((1, "a".into()), batch(1000));
        cache.put((1, "b".into()), batch(1000));
        assert!(cache.get(&(1, "a".into())).is_some()); // a is now the most recent
        cache.put((1, "c".into()), batch(1000));
        assert!(cache.get(&(1, "b".into())).is_none(), "b was least recently used");
        assert!(cache.get(&(1, "a".into())).is_some());
        assert!(cache.get(&(2, "a".into())).is_none(), "another snapshot is another key");
        assert!(cache.bytes() <= one * 2 + one / 2);
        cache.put((1, "huge".into()), batch(100_000));
        assert!(cache.get(&(1, "huge".into())).is_none(), "larger than the cache: not kept");
        cache.clear();
        assert!(cache.is_empty());
    }
}
