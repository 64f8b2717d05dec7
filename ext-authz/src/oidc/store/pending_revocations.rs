//! Revocations on their way to the revocation file. A revocation takes effect in memory at once;
//! it is *durable* once the file has it. Until then it waits here: every later write tries it
//! again first, and so does a timer, so a sign-out that could not be written when the user asked
//! is written at the next chance (the disk is back), and the sign-out path can tell the user it
//! did not stick for as long as it has not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::revocation_log::RevocationLog;
use crate::core::session::revoked::{Entry, Revoked};

/// How often a revocation that could not be written is tried again without waiting for the
/// next sign-out.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

pub struct PendingRevocations {
    log: Arc<RevocationLog>,
    revoked: Arc<Mutex<Revoked>>,
    /// In the order they took effect; the first ones are the oldest not yet on disk.
    pending: Mutex<Vec<Entry>>,
    /// One write at a time, so the entries a write took are still the first ones when it
    /// removes them.
    writing: tokio::sync::Mutex<()>,
    retrying: AtomicBool,
}

impl PendingRevocations {
    pub fn new(log: Arc<RevocationLog>, revoked: Arc<Mutex<Revoked>>) -> Arc<PendingRevocations> {
        Arc::new(PendingRevocations {
            log,
            revoked,
            pending: Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
            retrying: AtomicBool::new(false),
        })
    }

    /// Whether a revocation of this session id has taken effect but is not on disk yet.
    pub fn holds_session(&self, id: &str) -> bool {
        self.pending.lock().expect("pending lock").iter().any(|e| matches!(e, Entry::Session { id: i, .. } if i == id))
    }

    pub fn is_empty(&self) -> bool {
        self.pending.lock().expect("pending lock").is_empty()
    }

    /// Queues `entries` (already in effect in memory) and writes everything queued. On an
    /// error they stay queued: the next write and the timer try again.
    pub async fn write(self: &Arc<Self>, entries: Vec<Entry>, now: u64) -> std::io::Result<()> {
        self.pending.lock().expect("pending lock").extend(entries);
        let result = self.flush(now).await;
        if result.is_err() {
            self.retry_in_background();
        }
        result
    }

    /// Writes (and syncs) what is queued; rewrites the file compactly when the appended lines
    /// have outgrown the live set.
    pub async fn flush(&self, now: u64) -> std::io::Result<()> {
        let _one_at_a_time = self.writing.lock().await;
        let batch = self.pending.lock().expect("pending lock").clone();
        if batch.is_empty() {
            return Ok(());
        }
        let log = self.log.clone();
        let revoked = self.revoked.clone();
        let count = batch.len();
        tokio::task::spawn_blocking(move || {
            log.append(&batch, || revoked.lock().expect("lock").snapshot(now))?;
            let live = revoked.lock().expect("lock").len();
            if log.wants_rewrite(live) {
                log.rewrite(|| revoked.lock().expect("lock").snapshot(now))?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(std::io::Error::other)??;
        self.pending.lock().expect("pending lock").drain(..count);
        Ok(())
    }

    /// One task per store at a time, gone once the queue is empty or the store is dropped.
    fn retry_in_background(self: &Arc<Self>) {
        if self.retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<PendingRevocations> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RETRY_EVERY).await;
                let Some(pending) = weak.upgrade() else { return };
                // The file's compaction judges expiry by the system clock, as at start.
                let now = (shared::clock::system_clock())();
                match pending.flush(now).await {
                    Ok(()) if pending.is_empty() => {
                        tracing::info!("session revocations written to the revocation file after an earlier failure");
                        pending.retrying.store(false, Ordering::Release);
                        // A write that failed between the flush and the flag: its own retry
                        // found the flag set, so look once more.
                        if !pending.is_empty() {
                            pending.retry_in_background();
                        }
                        return;
                    }
                    Ok(()) => {}
                    Err(e) => tracing::warn!("session revocations still cannot be written: {e}"),
                }
            }
        });
    }
}
