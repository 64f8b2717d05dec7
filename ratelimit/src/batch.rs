//! Hot keys, opt-in (`LOCAL_BATCH_WINDOW`): increments of one counter that arrive within a short
//! window are added to Redis as one `INCRBY` of their sum. Many instances hammering one key then
//! send Redis one command per key and window each, instead of one per request.
//!
//! Exactness: the sum is added atomically, and each request's answer is what it would have got
//! had this instance's requests of the batch been counted one after the other, in arrival order
//! (the first gets the count before the batch plus its own hits, the next that plus its own, …).
//! Requests of other instances can land between the batch's reads in Redis only where they
//! could land between single increments too. So counts are exact; the price is latency: the
//! first request of a batch waits the window before asking Redis, the others up to as long.
//!
//! Bounded: at most [`MAX_OPEN_BATCHES`] keys collect at once; a request for another key while
//! that many are open is counted on its own, as without batching.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::store::{BatchError, CounterStore, CounterUpdate, StoreError};

/// The most keys collecting increments at once.
pub const MAX_OPEN_BATCHES: usize = 10_000;

pub struct Batcher {
    window: Duration,
    open: Mutex<HashMap<BatchKey, Arc<Batch>>>,
}

/// A counter in one window (the same key may be counted with different TTLs: the first wins).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BatchKey {
    key: String,
    window: u64,
}

struct Batch {
    /// Hits joined so far; closed once the leader takes them to the store.
    state: Mutex<Collecting>,
    /// The counter after the batch's sum was added, or why the store failed.
    done: watch::Sender<Option<Result<u64, BatchError>>>,
}

struct Collecting {
    total: u64,
    closed: bool,
}

impl Batcher {
    pub fn new(window: Duration) -> Batcher {
        Batcher { window, open: Mutex::new(HashMap::new()) }
    }

    /// Adds `update.hits` to its counter through the current batch for it (starting one when
    /// none is open) and returns the counter as this request sees it.
    pub async fn increment(
        &self,
        store: &dyn CounterStore,
        update: &CounterUpdate<'_>,
        now: u64,
    ) -> Result<u64, StoreError> {
        let key = BatchKey { key: update.key.to_string(), window: update.window };
        let joined = {
            let mut open = self.open.lock();
            match open.get(&key) {
                Some(batch) => batch.join(update.hits).map(|end| (batch.clone(), end, false)),
                None if open.len() >= MAX_OPEN_BATCHES => None,
                None => {
                    let batch = Arc::new(Batch::new(update.hits));
                    open.insert(key.clone(), batch.clone());
                    Some((batch, update.hits, true))
                }
            }
        };
        let Some((batch, end, leader)) = joined else {
            // Too many keys collecting (or the batch just closed): on its own.
            let values = store.increment(std::slice::from_ref(update), now).await?;
            return values.first().copied().ok_or(StoreError::ShortAnswer { expected: 1, got: 0 });
        };
        if leader {
            tokio::time::sleep(self.window).await;
            self.open.lock().remove(&key);
            let total = batch.close();
            let sum = CounterUpdate { hits: total, ..*update };
            let result = match store.increment(std::slice::from_ref(&sum), now).await {
                Ok(values) => values.first().copied().ok_or(BatchError::NoValue),
                Err(e) => Err(BatchError::Store(Arc::new(e))),
            };
            batch.done.send_replace(Some(result.clone()));
            return share(result, total, end);
        }
        let mut done = batch.done.subscribe();
        let result = loop {
            if let Some(result) = done.borrow_and_update().clone() {
                break result;
            }
            if done.changed().await.is_err() {
                break Err(BatchError::Dropped);
            }
        };
        let total = batch.state.lock().total;
        share(result, total, end)
    }
}

impl Batch {
    fn new(hits: u64) -> Batch {
        Batch { state: Mutex::new(Collecting { total: hits, closed: false }), done: watch::channel(None).0 }
    }

    /// Adds `hits` to an open batch: this request's place (the running total with its hits).
    fn join(&self, hits: u64) -> Option<u64> {
        let mut state = self.state.lock();
        if state.closed {
            return None;
        }
        state.total = state.total.saturating_add(hits);
        Some(state.total)
    }

    fn close(&self) -> u64 {
        let mut state = self.state.lock();
        state.closed = true;
        state.total
    }
}

/// This request's count: the counter after the batch, less the hits of the requests that
/// joined after it.
fn share(result: Result<u64, BatchError>, total: u64, end: u64) -> Result<u64, StoreError> {
    match result {
        Ok(after) if after == u64::MAX => Ok(u64::MAX),
        Ok(after) => Ok(after.saturating_sub(total - end)),
        Err(e) => Err(StoreError::Batch(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn update(key: &str, hits: u64) -> CounterUpdate<'_> {
        CounterUpdate { key, hits, ttl: 60, window: 60 }
    }

    #[tokio::test(start_paused = true)]
    async fn one_increment_per_window_and_answers_as_if_one_after_the_other() {
        let store = Arc::new(MemoryStore::new());
        let batcher = Arc::new(Batcher::new(Duration::from_millis(5)));
        let calls: Vec<_> = (1..=4u64)
            .map(|hits| {
                let (store, batcher) = (store.clone(), batcher.clone());
                tokio::spawn(async move { batcher.increment(store.as_ref(), &update("hot", hits), 0).await.unwrap() })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        answers.sort();
        // Hits 1, 2, 3, 4 in some arrival order: the running totals 1+…, ending at 10.
        assert_eq!(*answers.last().unwrap(), 10);
        assert_eq!(answers.len(), 4);
        let read = crate::store::CounterStore::current(store.as_ref(), &[update("hot", 0)], 0).await.unwrap();
        assert_eq!(read, vec![10], "the sum, once");
        // The next window's batch starts from there.
        assert_eq!(batcher.increment(store.as_ref(), &update("hot", 1), 0).await.unwrap(), 11);
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_keys_fall_back_to_single_increments() {
        let store = MemoryStore::new();
        let batcher = Batcher::new(Duration::from_millis(5));
        {
            let mut open = batcher.open.lock();
            for i in 0..MAX_OPEN_BATCHES {
                open.insert(BatchKey { key: format!("k{i}"), window: 60 }, Arc::new(Batch::new(1)));
            }
        }
        assert_eq!(batcher.increment(&store, &update("other", 3), 0).await.unwrap(), 3, "counted on its own");
        assert_eq!(batcher.open.lock().len(), MAX_OPEN_BATCHES);
    }
}
