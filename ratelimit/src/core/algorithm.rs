//! Counting algorithms beyond the reference's fixed window, opt-in per limit with a Gatehouse
//! extension key (`rate_limit: {algorithm: sliding_window}` or `{algorithm: token_bucket,
//! burst: N}`), so a config without it stays loadable by the reference.
//!
//! - **Fixed window** (default): the reference's counter per epoch-aligned window. A client can
//!   spend up to twice its limit around a window boundary, and every client's window resets at
//!   the same instant.
//! - **Sliding window**: the two-window estimate — this window's count plus the previous
//!   window's, weighted by how much of the previous window the sliding window still covers.
//!   Every hit is counted (as in the fixed window), so a request refused still weighs on the
//!   next window. The estimate assumes the previous window's hits were spread evenly: it is
//!   exact for even traffic and off by at most the previous window's count for the worst
//!   bunching (all at its very start or end) — far below the fixed window's 2× at a boundary.
//! - **Token bucket** (GCRA): capacity `burst` (default: the limit), refilled at
//!   `requests_per_unit` per unit, continuously — no boundaries, no synchronized resets. A
//!   request that does not fit takes nothing. State is one timestamp per key (the "theoretical
//!   arrival time"), in integer microseconds, so every store computes exactly the same answer.
//!
//! Pure: time is a parameter, the stores run the steps described here atomically.

/// Why a config's `algorithm`/`burst` pair is refused (Gatehouse's extension keys: not
/// reference texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    #[error("algorithm {0:?} is not fixed_window, sliding_window or token_bucket")]
    Unknown(String),
    /// Refilled at 0 a unit, a bucket has nothing to give: it refuses every request, as a
    /// window of 0 does. A burst would promise otherwise.
    #[error("a token bucket of 0 requests per unit refuses every request: leave out burst")]
    BurstOfEmptyBucket,
    #[error("a token bucket's burst must be at least 1")]
    ZeroBurst,
    #[error("burst is only for algorithm: token_bucket")]
    BurstWithoutBucket,
    #[error("an unlimited limit has no algorithm")]
    Unlimited,
}

/// How a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    FixedWindow,
    SlidingWindow,
    TokenBucket {
        burst: u32,
    },
}

impl Algorithm {
    /// From a config's `algorithm` and `burst` (a burst only goes with a token bucket; its
    /// default is the limit itself).
    pub fn from_config(name: &str, burst: Option<u32>, requests_per_unit: u32) -> Result<Algorithm, AlgorithmError> {
        let algorithm = match name {
            "" | "fixed_window" => Algorithm::FixedWindow,
            "sliding_window" => Algorithm::SlidingWindow,
            "token_bucket" => Algorithm::TokenBucket { burst: burst.unwrap_or(requests_per_unit) },
            other => return Err(AlgorithmError::Unknown(other.to_string())),
        };
        match (algorithm, burst) {
            (Algorithm::TokenBucket { .. }, Some(_)) if requests_per_unit == 0 => {
                Err(AlgorithmError::BurstOfEmptyBucket)
            }
            (Algorithm::TokenBucket { burst: 0 }, Some(_)) => Err(AlgorithmError::ZeroBurst),
            (Algorithm::TokenBucket { .. }, _) | (_, None) => Ok(algorithm),
            (_, Some(_)) => Err(AlgorithmError::BurstWithoutBucket),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::TokenBucket { .. } => "token_bucket",
        }
    }
}

/// Microseconds in a second.
pub const MICROS: u64 = 1_000_000;

/// The largest time step a bucket takes (about 35 years), so every stored time stays an exact
/// integer in a double (Redis scripts compute in doubles) for centuries.
const MAX_STEP_US: u128 = 1 << 50;

/// One token bucket step's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Time one request's tokens take to refill (`window / requests_per_unit`), at least 1 µs.
    pub per_hit_us: u64,
    /// How far the arrival time moves for this request's hits.
    pub increment_us: u64,
    /// How far ahead of now the arrival time may be: the burst's worth of refill.
    pub tolerance_us: u64,
}

impl Bucket {
    pub fn new(hits: u64, requests_per_unit: u32, burst: u32, window_seconds: u64) -> Bucket {
        // A bucket of 0 holds no token (no tolerance): every request that takes one is refused
        // and told to come back in a unit per hit, as a window of 0 refuses all.
        let burst = if requests_per_unit == 0 { 0 } else { burst };
        let window_us = u128::from(window_seconds) * u128::from(MICROS);
        let per_hit = (window_us / u128::from(requests_per_unit.max(1))).max(1);
        let capped = |value: u128| value.min(MAX_STEP_US) as u64;
        Bucket {
            per_hit_us: capped(per_hit),
            increment_us: capped(per_hit * u128::from(hits)),
            tolerance_us: capped(per_hit * u128::from(burst)),
        }
    }
}

/// The GCRA step every store runs atomically on a key's stored arrival time (`stored_us`, 0 for
/// none): whether the request fits, and the arrival time after it (unchanged when it does not
/// fit). The Redis script is this function, line for line.
pub fn bucket_step(stored_us: u64, now_us: u64, increment_us: u64, tolerance_us: u64) -> (bool, u64) {
    let tat = stored_us.max(now_us);
    let next = tat.saturating_add(increment_us);
    if next <= now_us.saturating_add(tolerance_us) {
        (true, next)
    } else {
        (false, tat)
    }
}

/// A token bucket's answer at `now_us`: (tokens left, seconds until the answer changes — until
/// full when the request fitted, until it would fit when it did not).
pub fn bucket_status(bucket: &Bucket, allowed: bool, tat_us: u64, now_us: u64) -> (u64, u64) {
    let headroom = now_us.saturating_add(bucket.tolerance_us).saturating_sub(tat_us);
    let remaining = headroom / bucket.per_hit_us;
    let wait_us = if allowed {
        tat_us.saturating_sub(now_us)
    } else {
        tat_us.saturating_add(bucket.increment_us).saturating_sub(now_us.saturating_add(bucket.tolerance_us))
    };
    (remaining, wait_us.div_ceil(MICROS))
}

/// The sliding window's estimate at `now_us`: this window's count plus the previous window's,
/// weighted by the share of the previous window the sliding window still covers.
pub fn sliding_estimate(current: u64, previous: u64, window_seconds: u64, now_us: u64) -> f64 {
    let window_us = window_seconds.max(1) * MICROS;
    let elapsed_us = now_us % window_us;
    let weight = (window_us - elapsed_us) as f64 / window_us as f64;
    current as f64 + previous as f64 * weight
}

/// Seconds until a sliding window over its limit lets `hits` more through, assuming no other
/// traffic: the previous window's weight decays, then (if this window alone is over) the next
/// window starts with this one's count as its previous.
pub fn sliding_wait(current: u64, previous: u64, limit: u64, hits: u64, window_seconds: u64, now_us: u64) -> u64 {
    let window_us = window_seconds.max(1) * MICROS;
    let elapsed_us = now_us % window_us;
    let left_us = window_us - elapsed_us;
    let room = limit as f64 - hits as f64;
    // Within this window: previous * (left - t) / W + current <= room.
    if (current as f64) <= room && previous > 0 {
        let needed = left_us as f64 - (room - current as f64) * window_us as f64 / previous as f64;
        let t = needed.max(0.0).ceil() as u64;
        if t < left_us {
            return t.div_ceil(MICROS).max(1);
        }
    }
    // In the next window: current * (W - t) / W <= room (nothing new counted).
    let t_next = if current == 0 || room >= current as f64 {
        0.0
    } else if room <= 0.0 {
        window_us as f64
    } else {
        window_us as f64 * (1.0 - room / current as f64)
    };
    (left_us + t_next.ceil() as u64).div_ceil(MICROS).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_and_bursts() {
        assert_eq!(Algorithm::from_config("", None, 10), Ok(Algorithm::FixedWindow));
        assert_eq!(Algorithm::from_config("sliding_window", None, 10), Ok(Algorithm::SlidingWindow));
        assert_eq!(Algorithm::from_config("token_bucket", None, 10), Ok(Algorithm::TokenBucket { burst: 10 }));
        assert_eq!(Algorithm::from_config("token_bucket", Some(3), 10), Ok(Algorithm::TokenBucket { burst: 3 }));
        assert!(Algorithm::from_config("token_bucket", Some(0), 10).unwrap_err().to_string().contains("at least 1"));
        assert!(Algorithm::from_config("sliding_window", Some(3), 10).unwrap_err().to_string().contains("only for"));
        assert!(Algorithm::from_config("leaky", None, 10).unwrap_err().to_string().contains("\"leaky\""));
        assert_eq!(Algorithm::from_config("token_bucket", None, 0), Ok(Algorithm::TokenBucket { burst: 0 }));
        assert!(Algorithm::from_config("token_bucket", Some(3), 0)
            .unwrap_err()
            .to_string()
            .contains("leave out burst"));
    }

    #[test]
    fn a_bucket_of_zero_refuses_every_request_that_takes_a_token() {
        let now = 1_800_000_000 * MICROS;
        // Even handed a burst (the config refuses one): no tolerance, nothing fits.
        for burst in [0, 5] {
            let bucket = Bucket::new(1, 0, burst, 60);
            assert_eq!(bucket.tolerance_us, 0);
            let (allowed, tat) = bucket_step(0, now, bucket.increment_us, bucket.tolerance_us);
            assert!(!allowed);
            assert_eq!(bucket_status(&bucket, allowed, tat, now), (0, 60), "come back in a unit");
        }
        let probe = Bucket::new(0, 0, 0, 60);
        assert!(bucket_step(0, now, probe.increment_us, probe.tolerance_us).0, "a check that takes nothing fits");
    }

    #[test]
    fn a_bucket_lets_its_burst_through_then_refills_steadily() {
        // 10 a second, burst 3: 100 ms per token.
        let bucket = Bucket::new(1, 10, 3, 1);
        assert_eq!((bucket.per_hit_us, bucket.increment_us, bucket.tolerance_us), (100_000, 100_000, 300_000));
        let t0 = 1_800_000_000 * MICROS;
        let mut tat = 0;
        for i in 0..3 {
            let (allowed, next) = bucket_step(tat, t0, bucket.increment_us, bucket.tolerance_us);
            assert!(allowed, "burst request {i}");
            tat = next;
            assert_eq!(bucket_status(&bucket, true, tat, t0).0, 2 - i);
        }
        let (allowed, unchanged) = bucket_step(tat, t0, bucket.increment_us, bucket.tolerance_us);
        assert!(!allowed && unchanged == tat, "the fourth waits and takes nothing");
        assert_eq!(bucket_status(&bucket, false, tat, t0), (0, 1), "0.1 s, rounded up to a second");
        let (allowed, _) = bucket_step(tat, t0 + 100_000, bucket.increment_us, bucket.tolerance_us);
        assert!(allowed, "one token back after 100 ms");
        // A check that takes nothing (hits 0) fits while the bucket is not overdrawn.
        let probe = Bucket::new(0, 10, 3, 1);
        assert!(bucket_step(tat, t0, probe.increment_us, probe.tolerance_us).0);
    }

    #[test]
    fn huge_numbers_saturate_instead_of_overflowing() {
        let bucket = Bucket::new(u64::MAX, u32::MAX, u32::MAX, 31_536_000);
        assert_eq!(bucket.increment_us, 1 << 50);
        let tiny = Bucket::new(1, u32::MAX, 1, 1);
        assert_eq!(tiny.per_hit_us, 1, "at least a microsecond per request");
        let (allowed, _) = bucket_step(0, 1 << 51, bucket.increment_us, 0);
        assert!(!allowed);
    }

    #[test]
    fn the_sliding_estimate_weighs_the_previous_window_by_what_it_still_covers() {
        let minute = 60;
        let start = 1_800_000_000 / 60 * 60 * MICROS;
        assert_eq!(sliding_estimate(0, 60, minute, start), 60.0, "at the boundary the whole previous window");
        assert_eq!(sliding_estimate(10, 60, minute, start + 15 * MICROS), 55.0, "three quarters of 60, plus 10");
        assert_eq!(sliding_estimate(10, 60, minute, start + 59 * MICROS), 11.0);
    }

    #[test]
    fn the_sliding_wait_is_when_the_estimate_lets_the_hits_through() {
        let start = 1_800_000_000 / 60 * 60 * MICROS;
        // 60 last minute, 0 now, limit 60: one request fits once a sixtieth has decayed (1 s).
        assert_eq!(sliding_wait(0, 60, 60, 1, 60, start), 1);
        // 30 s in, 40 + 60 × 0.5 = 70: for one more to fit (≤ 59) 11 must decay, one a second.
        assert_eq!(sliding_wait(40, 60, 60, 1, 60, start + 30 * MICROS), 11);
        // This window alone over the limit: wait for the next window, then for its decay.
        assert_eq!(sliding_wait(120, 0, 60, 1, 60, start), 60 + 31);
    }
}
