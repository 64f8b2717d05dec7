//! Creation and revocation stamps: microseconds that order a sign-in against a revocation finer
//! than the second. A `sub` logout ends the sessions created before it; compared by whole
//! seconds it also ended the ones created later in the same second, so a user who signed in
//! again at once bounced until the second turned.
//!
//! Within one process the stamps are strictly increasing (`max(now_us, last + 1)`), so a
//! session created after a revocation was recorded always compares later, even in the same
//! microsecond, and one created before always compares earlier, whatever clock reads the
//! requests took. The microseconds within the second come from the system clock only while it
//! reads the same second as the injected clock (in production, always but at the turn of a
//! second): then stamps of different processes (a restart, a replica) compare by real time, not
//! by how many stamps each took that second. Under a test's injected clock they are `now·10⁶`
//! plus the process's sequence, so the order of the calls alone decides every comparison and
//! tests are deterministic. Stamps run ahead of the clock only when it steps back (or a second
//! takes more than a million stamps), in order, until it catches up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const MICROS: u64 = 1_000_000;

/// The last stamp this process handed out.
static LAST: AtomicU64 = AtomicU64::new(0);

/// When a session was created or a revocation recorded: the injected clock's second (what
/// lifetimes count from) and the ordering stamp in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub secs: u64,
    pub micros: u64,
}

impl Stamp {
    /// Now (`now` from the injected clock), strictly after every stamp this process made
    /// before.
    pub fn next(now: u64) -> Stamp {
        let floor = now.saturating_mul(MICROS).saturating_add(sub_second(now));
        let last =
            LAST.fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(floor.max(last.saturating_add(1))));
        let last = last.unwrap_or_else(|last| last);
        Stamp { secs: now, micros: floor.max(last.saturating_add(1)) }
    }

    /// A fixed stamp, `micro` microseconds into second `secs` (tests).
    pub fn at(secs: u64, micro: u64) -> Stamp {
        Stamp { secs, micros: secs.saturating_mul(MICROS).saturating_add(micro) }
    }
}

/// The system clock's microseconds within second `now`, or 0 when it reads another second (an
/// injected clock, or the second turned since `now` was read).
fn sub_second(now: u64) -> u64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() == now => u64::from(d.subsec_micros()),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_strictly_increasing_whatever_the_clock_says() {
        let mut last = Stamp::next(1_000).micros;
        for now in [1_000, 1_000, 999, 5, 1_000, 1_001] {
            let stamp = Stamp::next(now);
            assert!(stamp.micros > last, "{now}");
            assert_eq!(stamp.secs, now);
            last = stamp.micros;
        }
    }
}
