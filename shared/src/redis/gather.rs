//! Gathering without a timer, for work that leaves for Redis in batches (auto-pipelined
//! commands, merged script runs): callers add to the open batch; the first caller of a batch
//! schedules its send, which waits one scheduler turn (`yield_now`) so that every caller already
//! running adds its part too; a caller that fills the batch sends it at once. An idle service
//! sends a lone call one turn later; a busy one sends bigger batches.
//!
//! The send is a task of its own, never a caller: a caller may be cancelled (Envoy gives up on a
//! slow answer), and that must not cancel the other callers' work.

use std::future::Future;
use std::mem;
use std::sync::Arc;

use parking_lot::Mutex;

pub struct Gather<B> {
    open: Mutex<Open<B>>,
}

#[derive(Default)]
struct Open<B> {
    batch: B,
    /// A send task is scheduled and will take whatever is open when it runs.
    scheduled: bool,
}

impl<B: Default + Send + 'static> Default for Gather<B> {
    fn default() -> Self {
        Gather { open: Mutex::new(Open::default()) }
    }
}

impl<B: Default + Send + 'static> Gather<B> {
    /// Adds to the open batch of `owner`'s gather (`gather`) with `add`, which says whether the
    /// batch is now full, and makes sure the batch is sent: by `send`, in a task of its own, at
    /// once when full, else one scheduler turn after its first caller.
    ///
    /// The send task gets the owner (which holds the gather and what sending needs), reached
    /// through `gather`: the owner's `Arc` is cloned only when a send is scheduled, not per call.
    pub fn add<O, S, Fut>(owner: &Arc<O>, gather: fn(&O) -> &Gather<B>, add: impl FnOnce(&mut B) -> bool, send: S)
    where
        O: Send + Sync + 'static,
        S: FnOnce(Arc<O>, B) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let this = gather(owner);
        let mut open = this.open.lock();
        if add(&mut open.batch) {
            let full = mem::take(&mut open.batch);
            drop(open);
            tokio::spawn(send(owner.clone(), full));
        } else if !open.scheduled {
            open.scheduled = true;
            drop(open);
            let owner = owner.clone();
            tokio::spawn(async move {
                // Let the callers that are ready to run add their part first.
                tokio::task::yield_now().await;
                let batch = {
                    let mut open = gather(&owner).open.lock();
                    open.scheduled = false;
                    mem::take(&mut open.batch)
                };
                send(owner, batch).await;
            });
        }
    }
}
