//! A small metrics registry that renders the Prometheus text format (0.0.4).
//!
//! Why not a metrics crate: the drop-in promise includes the exact series names that existing
//! dashboards query (`ratelimit_service_rate_limit_total_hits`, no `_total` suffix added), with
//! label sets that differ per series (`key2` only for deeper descriptors). Series handles are
//! plain atomics, so the hot path never locks once a handle is held.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Labels of one series, in the order they are rendered.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1);
    }
    pub fn inc_by(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram with fixed upper bounds.
#[derive(Clone)]
pub struct Histogram(Arc<HistogramState>);

struct HistogramState {
    bounds: Vec<f64>,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in nanounits, to keep it an integer atomic.
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Histogram {
        Histogram(Arc::new(HistogramState {
            bounds: bounds.to_vec(),
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, value: f64) {
        let state = &self.0;
        if let Some(i) = state.bounds.iter().position(|b| value <= *b) {
            state.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        state.count.fetch_add(1, Ordering::Relaxed);
        state.sum_nanos.fetch_add((value.max(0.0) * 1e9) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

struct Family {
    name: String,
    help: String,
    kind: &'static str,
    bounds: Vec<f64>,
    series: RwLock<BTreeMap<Labels, Series>>,
    /// Series created by [`CounterFamily::with_bounded`] so far (under the write lock).
    from_requests: AtomicUsize,
}

/// The most series one family creates from request values (descriptor values, domains): past
/// it they all count in one series whose every label says [`OVERFLOW`]. Without a bound, a
/// client sending ever-new values grows memory and `/metrics` without end.
pub const MAX_SERIES_FROM_REQUESTS: usize = 10_000;

/// The label value of the overflow series.
pub const OVERFLOW: &str = "overflow";

pub mod process;

/// A set of metric families. Cloning shares the registry.
#[derive(Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Arc<Family>>>>,
    /// Renderers of series whose values live elsewhere (read at each scrape).
    collectors: Arc<Mutex<Vec<Collector>>>,
}

/// Appends families in the Prometheus text format, at each render.
type Collector = Arc<dyn Fn(&mut String) + Send + Sync>;

/// A family of counters; `with` returns (creating on first use) the series for some labels.
#[derive(Clone)]
pub struct CounterFamily(Arc<Family>);
#[derive(Clone)]
pub struct GaugeFamily(Arc<Family>);
#[derive(Clone)]
pub struct HistogramFamily(Arc<Family>);

impl Registry {
    fn family(&self, name: &str, help: &str, kind: &'static str, bounds: &[f64]) -> Arc<Family> {
        let family = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            bounds: bounds.to_vec(),
            series: RwLock::default(),
            from_requests: AtomicUsize::new(0),
        });
        self.families.lock().expect("registry lock").push(family.clone());
        family
    }

    pub fn counter_family(&self, name: &str, help: &str) -> CounterFamily {
        CounterFamily(self.family(name, help, "counter", &[]))
    }

    pub fn gauge_family(&self, name: &str, help: &str) -> GaugeFamily {
        GaugeFamily(self.family(name, help, "gauge", &[]))
    }

    pub fn histogram_family(&self, name: &str, help: &str, bounds: &[f64]) -> HistogramFamily {
        HistogramFamily(self.family(name, help, "histogram", bounds))
    }

    /// Every family registered, with its type, including those without a series yet (which
    /// `render` leaves out): what dashboards may query.
    pub fn families(&self) -> Vec<(String, &'static str)> {
        self.families.lock().expect("registry lock").iter().map(|f| (f.name.clone(), f.kind)).collect()
    }

    /// Adds the standard `process_*` series to every render (see [`process`]).
    pub fn include_process_metrics(&self) {
        self.add_collector(|out| {
            if let Some(sample) = process::sample() {
                process::render(out, &sample);
            }
        });
    }

    /// Adds series read at each render from wherever they are kept (see [`counter_text`]).
    pub fn add_collector(&self, collector: impl Fn(&mut String) + Send + Sync + 'static) {
        self.collectors.lock().expect("registry lock").push(Arc::new(collector));
    }

    /// Renders every family in the Prometheus text format.
    pub fn render(&self) -> String {
        let families: Vec<Arc<Family>> = self.families.lock().expect("registry lock").clone();
        let mut out = String::new();
        for family in families {
            let series = family.series.read().expect("family lock");
            if series.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
            for (labels, value) in series.iter() {
                match value {
                    Series::Counter(c) => line(&mut out, &family.name, labels, None, c.get() as f64),
                    Series::Gauge(g) => line(&mut out, &family.name, labels, None, g.get() as f64),
                    Series::Histogram(h) => {
                        let bucket = format!("{}_bucket", family.name);
                        let mut cumulative = 0;
                        for (bound, count) in h.0.bounds.iter().zip(&h.0.buckets) {
                            cumulative += count.load(Ordering::Relaxed);
                            line(&mut out, &bucket, labels, Some(&bound.to_string()), cumulative as f64);
                        }
                        line(&mut out, &bucket, labels, Some("+Inf"), h.count() as f64);
                        let sum = h.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                        line(&mut out, &format!("{}_sum", family.name), labels, None, sum);
                        line(&mut out, &format!("{}_count", family.name), labels, None, h.count() as f64);
                    }
                }
            }
        }
        let collectors: Vec<Collector> = self.collectors.lock().expect("registry lock").clone();
        for collect in collectors {
            collect(&mut out);
        }
        out
    }
}

/// A counter family for a collector: `# HELP`, `# TYPE` and one line per `(labels, value)`.
pub fn counter_text(out: &mut String, name: &str, help: &str, series: &[(Labels, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (labels, value) in series {
        line(out, name, labels, None, *value as f64);
    }
}

fn line(out: &mut String, name: &str, labels: &Labels, le: Option<&str>, value: f64) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let le_pair = le.map(|le| ("le", le.to_string()));
        for (k, v) in labels.iter().chain(le_pair.iter()) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Family {
    fn get_or_insert(&self, labels: Labels, make: impl FnOnce() -> Series) -> Option<Series> {
        if let Some(found) = self.series.read().expect("family lock").get(&labels) {
            return Some(found.share());
        }
        let mut series = self.series.write().expect("family lock");
        Some(series.entry(labels).or_insert_with(make).share())
    }
}

impl Family {
    /// Like `get_or_insert`, but a new series counts against [`MAX_SERIES_FROM_REQUESTS`];
    /// past it, the overflow series (the same label names, every value [`OVERFLOW`]) is used.
    fn get_or_insert_bounded(&self, labels: Labels, make: impl Fn() -> Series) -> Series {
        if let Some(found) = self.series.read().expect("family lock").get(&labels) {
            return found.share();
        }
        let mut series = self.series.write().expect("family lock");
        if let Some(found) = series.get(&labels) {
            return found.share();
        }
        if self.from_requests.load(Ordering::Relaxed) < MAX_SERIES_FROM_REQUESTS {
            self.from_requests.fetch_add(1, Ordering::Relaxed);
            return series.entry(labels).or_insert_with(make).share();
        }
        let overflow: Labels = labels.into_iter().map(|(name, _)| (name, OVERFLOW.to_string())).collect();
        series.entry(overflow).or_insert_with(make).share()
    }
}

impl Series {
    fn share(&self) -> Series {
        match self {
            Series::Counter(c) => Series::Counter(c.clone()),
            Series::Gauge(g) => Series::Gauge(g.clone()),
            Series::Histogram(h) => Series::Histogram(h.clone()),
        }
    }
}

impl CounterFamily {
    pub fn with(&self, labels: Labels) -> Counter {
        match self.0.get_or_insert(labels, || Series::Counter(Counter::default())) {
            Some(Series::Counter(c)) => c,
            _ => unreachable!("a counter family holds counters"),
        }
    }
}

impl CounterFamily {
    /// The counter for labels taken from a request: bounded per family (see
    /// [`MAX_SERIES_FROM_REQUESTS`]).
    pub fn with_bounded(&self, labels: Labels) -> Counter {
        match self.0.get_or_insert_bounded(labels, || Series::Counter(Counter::default())) {
            Series::Counter(c) => c,
            _ => unreachable!("a counter family holds counters"),
        }
    }
}

impl GaugeFamily {
    pub fn with(&self, labels: Labels) -> Gauge {
        match self.0.get_or_insert(labels, || Series::Gauge(Gauge::default())) {
            Some(Series::Gauge(g)) => g,
            _ => unreachable!("a gauge family holds gauges"),
        }
    }
}

impl HistogramFamily {
    pub fn with(&self, labels: Labels) -> Histogram {
        let bounds = self.0.bounds.clone();
        match self.0.get_or_insert(labels, || Series::Histogram(Histogram::new(&bounds))) {
            Some(Series::Histogram(h)) => h,
            _ => unreachable!("a histogram family holds histograms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let registry = Registry::default();
        let hits = registry.counter_family("x_total_hits", "Hits.");
        hits.with(vec![("domain", "d".into()), ("key1", "k\"q".into())]).inc_by(3);
        hits.with(vec![("domain", "d".into()), ("key1", "k\"q".into())]).inc();
        let latency = registry.histogram_family("x_seconds", "Latency.", &[0.1, 1.0]);
        latency.with(vec![]).observe(0.5);
        let text = registry.render();
        assert!(text.contains("# TYPE x_total_hits counter\nx_total_hits{domain=\"d\",key1=\"k\\\"q\"} 4\n"), "{text}");
        assert!(
            text.contains(
                "x_seconds_bucket{le=\"0.1\"} 0\nx_seconds_bucket{le=\"1\"} 1\nx_seconds_bucket{le=\"+Inf\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("x_seconds_count 1"), "{text}");
    }

    #[test]
    fn series_from_requests_are_bounded_with_an_overflow_series() {
        let registry = Registry::default();
        let family = registry.counter_family("x_not_found", "Unknown domains.");
        family.with(vec![("domain", "configured".into())]).inc();
        for i in 0..MAX_SERIES_FROM_REQUESTS + 500 {
            family.with_bounded(vec![("domain", format!("d{i}"))]).inc();
        }
        family.with_bounded(vec![("domain", "d0".into())]).inc();
        let text = registry.render();
        let lines = text.lines().filter(|l| l.starts_with("x_not_found{")).count();
        assert_eq!(lines, MAX_SERIES_FROM_REQUESTS + 2, "the bound, one configured and one overflow series");
        assert!(text.contains("x_not_found{domain=\"overflow\"} 500\n"), "{text}");
        assert!(text.contains("x_not_found{domain=\"d0\"} 2\n"));
    }
}
