//! The load generator: a fixed number of concurrent callers on one HTTP/2 connection for a set
//! time, every answer checked, latencies kept exactly (sorted at the end for percentiles).

use std::future::Future;
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
}

/// Runs `call(worker, n)` from `concurrency` workers until `duration` has passed. `call`
/// returns whether the answer was the expected one (a wrong answer counts as an error).
pub async fn run<F, Fut>(concurrency: usize, duration: Duration, call: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(64 * 1024);
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let ok = call(worker, n).await;
                    latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    if !ok {
                        errors += 1;
                    }
                    n += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await.expect("a load worker");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    LoadResult { requests: latencies.len() as u64, errors, elapsed, latencies, percentiles: Vec::new() }
}
