//! A statsd sink with the wire format of the reference's (lyft/gostats, and the DataDog client
//! behind `USE_DOG_STATSD`): counters sent as the change since the last flush (`name:3|c`, none
//! when unchanged), gauges as their value (`|g`), timer samples one by one (`|ms`). Extra tags
//! are appended to names the gostats way (`name.__k=v`) or, for DogStatsD, sent as tags
//! (`|#k:v`), after the optional name rewriting ("mogrifiers").
//!
//! Everything that grows with input is bounded: the number of series (past it a series counts
//! nowhere and is counted in [`Statsd::dropped_series`]), the timer samples waiting for a flush
//! (past it samples are dropped and counted), and a datagram's size.

mod mogrifier;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::metrics::{Counter, Gauge};

pub use mogrifier::{Mogrifier, MogrifierError};
pub use wire::{Format, Transport};

/// Series kept per sink; a request-derived name past this counts nowhere.
pub const MAX_SERIES: usize = 20_000;
/// Timer samples kept between two sends (one second apart); more are dropped.
pub const MAX_PENDING_SAMPLES: usize = 65_536;

#[derive(Debug, Clone, PartialEq)]
pub struct StatsdSettings {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub format: Format,
    /// How often counters and gauges are sent (timer samples go every second).
    pub flush_interval: Duration,
    /// Tags on every series, sorted by key (gostats' order).
    pub extra_tags: Vec<(String, String)>,
}

#[derive(Default)]
struct Series {
    /// (name, counter, value at the last flush)
    counters: Vec<(String, Counter, u64)>,
    counter_index: HashMap<String, usize>,
    gauges: Vec<(String, Gauge)>,
    timers: Vec<String>,
    timer_index: HashMap<String, usize>,
}

struct Inner {
    series: Mutex<Series>,
    samples: Mutex<Vec<(usize, u64)>>,
    dropped_samples: AtomicU64,
    dropped_series: AtomicU64,
    send_failures: AtomicU64,
}

/// The registry of statsd series; cheap to clone.
#[derive(Clone)]
pub struct Statsd(Arc<Inner>);

/// A timer's handle: `record_ms` queues one sample.
#[derive(Clone)]
pub struct Timer {
    index: usize,
    sink: Option<Statsd>,
}

impl Timer {
    pub fn record_ms(&self, milliseconds: u64) {
        let Some(sink) = &self.sink else { return };
        let mut samples = sink.0.samples.lock();
        if samples.len() < MAX_PENDING_SAMPLES {
            samples.push((self.index, milliseconds));
        } else {
            sink.0.dropped_samples.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Default for Statsd {
    fn default() -> Self {
        Statsd(Arc::new(Inner {
            series: Mutex::default(),
            samples: Mutex::default(),
            dropped_samples: AtomicU64::new(0),
            dropped_series: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
        }))
    }
}

impl Statsd {
    /// The counter named `name` (created on first use). Past [`MAX_SERIES`] a new name gets a
    /// counter that is never sent.
    pub fn counter(&self, name: &str) -> Counter {
        let mut series = self.0.series.lock();
        if let Some(&i) = series.counter_index.get(name) {
            return series.counters[i].1.clone();
        }
        let counter = Counter::default();
        self.add_counter(&mut series, name, counter.clone());
        counter
    }

    /// Sends `counter` (one that is also counted elsewhere, e.g. in the Prometheus registry)
    /// under `name`.
    pub fn register_counter(&self, name: &str, counter: &Counter) {
        let mut series = self.0.series.lock();
        if !series.counter_index.contains_key(name) {
            self.add_counter(&mut series, name, counter.clone());
        }
    }

    fn add_counter(&self, series: &mut Series, name: &str, counter: Counter) {
        if series.counters.len() + series.gauges.len() + series.timers.len() >= MAX_SERIES {
            self.0.dropped_series.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let last = counter.get();
        series.counter_index.insert(name.to_string(), series.counters.len());
        series.counters.push((name.to_string(), counter, last));
    }

    pub fn register_gauge(&self, name: &str, gauge: &Gauge) {
        let mut series = self.0.series.lock();
        if series.gauges.iter().all(|(existing, _)| existing != name) {
            series.gauges.push((name.to_string(), gauge.clone()));
        }
    }

    pub fn timer(&self, name: &str) -> Timer {
        let mut series = self.0.series.lock();
        if let Some(&index) = series.timer_index.get(name) {
            return Timer { index, sink: Some(self.clone()) };
        }
        let index = series.timers.len();
        series.timer_index.insert(name.to_string(), index);
        series.timers.push(name.to_string());
        Timer { index, sink: Some(self.clone()) }
    }

    /// Series refused for being past [`MAX_SERIES`].
    pub fn dropped_series(&self) -> u64 {
        self.0.dropped_series.load(Ordering::Relaxed)
    }

    /// Timer samples dropped for being past [`MAX_PENDING_SAMPLES`] between two sends.
    pub fn dropped_samples(&self) -> u64 {
        self.0.dropped_samples.load(Ordering::Relaxed)
    }

    /// Sends that failed (the server unreachable, or not reading within the write timeout):
    /// each lost what it carried.
    pub fn send_failures(&self) -> u64 {
        self.0.send_failures.load(Ordering::Relaxed)
    }

    /// The changed counters' deltas and every gauge, as (name, value, kind) lines' parts.
    fn take_counters_and_gauges(&self) -> Vec<(String, u64, &'static str)> {
        let mut series = self.0.series.lock();
        let mut out = Vec::new();
        for (name, counter, last) in &mut series.counters {
            let now = counter.get();
            if now != *last {
                out.push((name.clone(), now.wrapping_sub(*last), "c"));
                *last = now;
            }
        }
        for (name, gauge) in &series.gauges {
            out.push((name.clone(), gauge.get().max(0) as u64, "g"));
        }
        out
    }

    fn take_samples(&self) -> Vec<(String, u64, &'static str)> {
        let samples = std::mem::take(&mut *self.0.samples.lock());
        if samples.is_empty() {
            return Vec::new();
        }
        let series = self.0.series.lock();
        samples.into_iter().map(|(i, ms)| (series.timers[i].clone(), ms, "ms")).collect()
    }

    /// Sends every second (timer samples) and every `flush_interval` (counters and gauges)
    /// until `stop` turns true, then once more.
    pub async fn run(self, settings: StatsdSettings, mut stop: watch::Receiver<bool>) {
        let mut connection = wire::Connection::new(&settings);
        let mut tick = tokio::time::interval(Duration::from_secs(1).min(settings.flush_interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = tokio::time::Instant::now();
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.changed() => true,
            };
            let mut stats = self.take_samples();
            if stopping || last_flush.elapsed() >= settings.flush_interval {
                stats.extend(self.take_counters_and_gauges());
                last_flush = tokio::time::Instant::now();
            }
            if !stats.is_empty() && !connection.send(&stats).await {
                self.0.send_failures.fetch_add(1, Ordering::Relaxed);
            }
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
