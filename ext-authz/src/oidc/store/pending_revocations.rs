//! Revocations on their way to the revocation file. A revocation takes effect in memory at once;
//! it is *durable* once the file has it. Until then it waits here: every later write tries it
//! again first, and so does a timer, so a sign-out that could not be written when the user asked
//! is written at the next chance (the disk is back), and the sign-out path can tell the user it
//! did not stick for as long as it has not.
//!
//! The backlog is bounded: past [`MAX_BACKLOG`] entries (a long outage under many sign-outs) it
//! stops listing them and writes the whole live set instead (itself bounded), which holds
//! every one of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::revocation_log::RevocationLog;
use crate::core::session::revoked::{Entry, Revoked};

/// How often a revocation that could not be written is tried again without waiting for the
/// next sign-out.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Entries listed one by one at most; beyond, the next write is the whole live set.
pub const MAX_BACKLOG: usize = 1024;

#[derive(Default)]
struct Backlog {
    /// In the order they took effect; the first ones are the oldest not yet on disk.
    entries: Vec<Entry>,
    /// The listing overflowed: the next write rewrites the file from the live set.
    whole: bool,
    /// Queued so far, to tell whether a whole write's snapshot could have missed one.
    queued: u64,
    /// A write has the listed entries out.
    in_flight: bool,
}

pub struct PendingRevocations {
    log: Arc<RevocationLog>,
    revoked: Arc<Mutex<Revoked>>,
    backlog: Mutex<Backlog>,
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
            backlog: Mutex::new(Backlog::default()),
            writing: tokio::sync::Mutex::new(()),
            retrying: AtomicBool::new(false),
        })
    }

    /// Whether everything in effect is on disk.
    pub fn is_empty(&self) -> bool {
        let backlog = self.backlog.lock();
        backlog.entries.is_empty() && !backlog.whole && !backlog.in_flight
    }

    /// Queues entries that just took effect. The caller holds the revocation set's lock, so no
    /// other sign-out can see them in effect before they are queued (and then answer that all
    /// is written).
    pub fn queue(&self, entries: Vec<Entry>) {
        let mut backlog = self.backlog.lock();
        backlog.queued += 1;
        if !backlog.whole {
            backlog.entries.extend(entries);
            if backlog.entries.len() > MAX_BACKLOG {
                backlog.whole = true;
                backlog.entries = Vec::new();
            }
        }
    }

    /// Writes what is queued. On an error it stays queued: the next write and the timer try
    /// again.
    pub async fn write(self: &Arc<Self>, now: u64) -> std::io::Result<()> {
        let result = self.flush(now).await;
        if result.is_err() {
            self.retry_in_background();
        }
        result
    }

    /// Writes (and syncs) what is queued; rewrites the file compactly when the appended lines
    /// have outgrown the live set, or when the backlog overflowed.
    async fn flush(&self, now: u64) -> std::io::Result<()> {
        let _one_at_a_time = self.writing.lock().await;
        // The listed entries are taken out (not copied) for the write and put back in front if
        // it fails; while they are out, the backlog does not count as written.
        let (batch, whole, queued) = {
            let mut backlog = self.backlog.lock();
            if backlog.entries.is_empty() && !backlog.whole {
                return Ok(());
            }
            backlog.in_flight = true;
            (std::mem::take(&mut backlog.entries), backlog.whole, backlog.queued)
        };
        let log = self.log.clone();
        let revoked = self.revoked.clone();
        let written = tokio::task::spawn_blocking(move || {
            let snapshot = || revoked.lock().snapshot(now);
            let result = if whole {
                // The whole live set may be megabytes: only once the file opens again.
                log.opens().and_then(|()| log.rewrite(snapshot))
            } else {
                log.append(&batch, snapshot).and_then(|()| {
                    let live = revoked.lock().len();
                    if log.wants_rewrite(live) {
                        log.rewrite(snapshot)
                    } else {
                        Ok(())
                    }
                })
            };
            (batch, result)
        })
        .await;
        let mut backlog = self.backlog.lock();
        backlog.in_flight = false;
        match written {
            Ok((_, Ok(()))) => {
                if whole {
                    // Whatever was queued since the snapshot may be missing from it: write again.
                    backlog.whole = backlog.queued != queued;
                }
                Ok(())
            }
            Ok((batch, Err(e))) => {
                if !backlog.whole {
                    let newer = std::mem::replace(&mut backlog.entries, batch);
                    backlog.entries.extend(newer);
                    if backlog.entries.len() > MAX_BACKLOG {
                        backlog.whole = true;
                        backlog.entries = Vec::new();
                    }
                }
                Err(e)
            }
            // The write's task died with the list: the live set holds every entry of it.
            Err(e) => {
                backlog.whole = true;
                backlog.entries = Vec::new();
                Err(std::io::Error::other(e))
            }
        }
    }

    /// One task per store at a time, gone once the backlog is written or the store is dropped.
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
