//! The load generator: callers on one HTTP/2 connection, every answer checked, latencies kept
//! exactly (sorted at the end for percentiles).
//!
//! Two ways to pace the load:
//! - closed loop: a fixed number of callers, each sending its next request when the last one
//!   answered, for a set time or a set number of requests (throughput at a given concurrency);
//! - fixed rate (open loop): requests start on a schedule whatever the answers do, and each
//!   latency is counted from when its request was *due*, so a stall shows up in the tail instead of
//!   silently slowing the sender down (the "coordinated omission" wrk2 corrects for).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Microseconds, sorted.
    pub latencies: Vec<u32>,
    /// From an external generator that reports only some percentiles: (quantile, µs).
    pub percentiles: Vec<(f64, u32)>,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at quantile `q` (0..1) in microseconds; `None` when not measured.
    pub fn quantile(&self, q: f64) -> Option<u32> {
        if self.latencies.is_empty() {
            return self.percentiles.iter().find(|(p, _)| (p - q).abs() < 1e-9).map(|(_, us)| *us);
        }
        let index = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        Some(self.latencies[index])
    }

    fn from_parts(parts: Vec<(Vec<u32>, u64)>, elapsed: Duration) -> LoadResult {
        let mut latencies = Vec::new();
        let mut errors = 0;
        for (l, e) in parts {
            latencies.extend(l);
            errors += e;
        }
        latencies.sort_unstable();
        LoadResult { requests: latencies.len() as u64, errors, elapsed, latencies, percentiles: Vec::new() }
    }
}

/// When a closed-loop run ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    Elapsed(Duration),
    /// After this many requests in all (a profile counts instructions per request).
    Requests(u64),
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// Runs `call(worker, n)` from `concurrency` callers until `until`. `call` returns whether the
/// answer was the expected one (a wrong answer counts as an error).
pub async fn run<F, Fut>(concurrency: usize, until: Until, call: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let call = call.clone();
            let issued = issued.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(16 * 1024);
                let mut errors = 0u64;
                let mut n = 0u64;
                loop {
                    let more = match until {
                        Until::Elapsed(d) => started.elapsed() < d,
                        Until::Requests(total) => issued.fetch_add(1, Ordering::Relaxed) < total,
                    };
                    if !more {
                        break;
                    }
                    let t = Instant::now();
                    let ok = call(worker, n).await;
                    latencies.push(micros(t.elapsed()));
                    errors += u64::from(!ok);
                    n += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut parts = Vec::with_capacity(concurrency);
    for worker in workers {
        parts.push(worker.await.expect("a load worker"));
    }
    LoadResult::from_parts(parts, started.elapsed())
}

/// Starts `per_second` requests a second for `duration`, on a schedule that does not wait for
/// answers. At most `max_in_flight` requests are outstanding: a request due while that many are
/// still waiting is not sent and counts as an error (the service is not keeping up), so a
/// stalled service cannot make the generator pile up unbounded work.
pub async fn run_at_rate<F, Fut>(per_second: u64, duration: Duration, max_in_flight: usize, call: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / per_second.max(1) as f64);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(u32, bool)>();
    let started = Instant::now();
    let total = (duration.as_secs_f64() * per_second as f64) as u64;
    let mut shed = 0u64;
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shed += 1;
            continue;
        };
        // Spread the schedule over the same (worker, n) space the closed loop uses.
        let request = call((i % 64) as usize, i / 64);
        let done = done_tx.clone();
        tokio::spawn(async move {
            let ok = request.await;
            let _ = done.send((micros(due.elapsed()), ok));
            drop(slot);
        });
    }
    drop(done_tx);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = shed;
    while let Some((latency, ok)) = done_rx.recv().await {
        latencies.push(latency);
        errors += u64::from(!ok);
    }
    LoadResult::from_parts(vec![(latencies, errors)], started.elapsed())
}

/// How a load run is paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    Closed { concurrency: usize, until: Until },
    Rate { per_second: u64, duration: Duration, max_in_flight: usize },
}

/// Runs `call` paced by `pace`.
pub async fn drive<F, Fut>(pace: Pace, call: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    match pace {
        Pace::Closed { concurrency, until } => run(concurrency, until, call).await,
        Pace::Rate { per_second, duration, max_in_flight } => {
            run_at_rate(per_second, duration, max_in_flight, call).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_counted_run_sends_exactly_that_many_requests_and_counts_wrong_answers() {
        let result = run(4, Until::Requests(101), |_, n| async move { n % 10 != 3 }).await;
        assert_eq!(result.requests, 101);
        assert!(result.errors > 0 && result.errors < 101, "{}", result.errors);
        assert!(result.latencies.windows(2).all(|w| w[0] <= w[1]), "sorted");
    }

    #[tokio::test]
    async fn a_fixed_rate_run_counts_the_time_a_request_waited_for_its_turn() {
        // Every answer takes 20 ms and only one may be in flight: most requests are shed, and
        // the ones sent are measured from when they were due.
        let result = run_at_rate(200, Duration::from_millis(200), 1, |_, _| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            true
        })
        .await;
        // No bounds on how many went out (that depends on scheduling), only the accounting.
        assert!(result.requests >= 1 && result.errors >= 1, "{} sent, {} shed", result.requests, result.errors);
        assert_eq!(result.requests + result.errors, 40, "every scheduled request is accounted for");
        assert!(result.quantile(0.5).unwrap() >= 20_000);
    }
}
