//! The services' metrics on the `prometheus` crate (TiKV's Rust client): its counters, gauges
//! and histograms hold the values and its text encoder writes the exposition format (0.0.4).
//!
//! What this module adds on top: families whose series may carry different label sets (the
//! drop-in promise includes the reference's exact series, e.g. `ratelimit_service_rate_limit_
//! total_hits{domain,key1}` beside `{domain,key1,key2}` for deeper descriptors, with no `_total`
//! added), which the crate's own `*Vec` types and registry refuse; a bound on the series made
//! from request values; and collectors for series kept elsewhere (`process_*`, cache stats).
//! Series handles are the crate's atomics, so the hot path never locks once a handle is held.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use prometheus::core::Metric as _;
use prometheus::proto::{self, MetricFamily, MetricType};

/// Labels of one series.
pub type Labels = Vec<(&'static str, String)>;

/// A counter; clones share the value.
#[derive(Clone)]
pub struct Counter(prometheus::IntCounter);

impl Default for Counter {
    /// A counter of no family (e.g. one only a statsd sink sends).
    fn default() -> Self {
        Counter(prometheus::IntCounter::new("unexported", "unexported").expect("a valid name"))
    }
}

impl Counter {
    pub fn inc(&self) {
        self.0.inc();
    }
    pub fn inc_by(&self, n: u64) {
        if n > 0 {
            self.0.inc_by(n);
        }
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A gauge; clones share the value.
#[derive(Clone)]
pub struct Gauge(prometheus::IntGauge);

impl Default for Gauge {
    fn default() -> Self {
        Gauge(prometheus::IntGauge::new("unexported", "unexported").expect("a valid name"))
    }
}

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.set(v);
    }
    pub fn add(&self, v: i64) {
        self.0.add(v);
    }
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// A histogram with its family's fixed upper bounds.
#[derive(Clone)]
pub struct Histogram(prometheus::Histogram);

impl Histogram {
    pub fn observe(&self, value: f64) {
        self.0.observe(value);
    }
    pub fn count(&self) -> u64 {
        self.0.get_sample_count()
    }
}

enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl Series {
    fn share(&self) -> Series {
        match self {
            Series::Counter(c) => Series::Counter(c.clone()),
            Series::Gauge(g) => Series::Gauge(g.clone()),
            Series::Histogram(h) => Series::Histogram(h.clone()),
        }
    }

    fn metric(&self) -> proto::Metric {
        match self {
            Series::Counter(c) => c.0.metric(),
            Series::Gauge(g) => g.0.metric(),
            Series::Histogram(h) => h.0.metric(),
        }
    }
}

struct Family {
    name: String,
    help: String,
    kind: MetricType,
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
    fn family(&self, name: &str, help: &str, kind: MetricType, bounds: &[f64]) -> Arc<Family> {
        let family = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            bounds: bounds.to_vec(),
            series: RwLock::default(),
            from_requests: AtomicUsize::new(0),
        });
        self.families.lock().push(family.clone());
        family
    }

    pub fn counter_family(&self, name: &str, help: &str) -> CounterFamily {
        CounterFamily(self.family(name, help, MetricType::COUNTER, &[]))
    }

    pub fn gauge_family(&self, name: &str, help: &str) -> GaugeFamily {
        GaugeFamily(self.family(name, help, MetricType::GAUGE, &[]))
    }

    pub fn histogram_family(&self, name: &str, help: &str, bounds: &[f64]) -> HistogramFamily {
        HistogramFamily(self.family(name, help, MetricType::HISTOGRAM, bounds))
    }

    /// Every family registered, with its type, including those without a series yet (which
    /// `render` leaves out): what dashboards may query.
    pub fn families(&self) -> Vec<(String, &'static str)> {
        self.families.lock().iter().map(|f| (f.name.clone(), kind_name(f.kind))).collect()
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
        self.collectors.lock().push(Arc::new(collector));
    }

    /// Renders every family with a series, then the collectors' series.
    pub fn render(&self) -> String {
        let families: Vec<Arc<Family>> = self.families.lock().clone();
        let gathered: Vec<MetricFamily> = families
            .iter()
            .filter_map(|family| {
                let series = family.series.read();
                (!series.is_empty()).then(|| {
                    metric_family(&family.name, &family.help, family.kind, series.values().map(Series::metric))
                })
            })
            .collect();
        let mut out = String::new();
        encode(&gathered, &mut out);
        let collectors: Vec<Collector> = self.collectors.lock().clone();
        for collect in collectors {
            collect(&mut out);
        }
        out
    }
}

fn kind_name(kind: MetricType) -> &'static str {
    match kind {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
    }
}

fn metric_family(
    name: &str,
    help: &str,
    kind: MetricType,
    metrics: impl Iterator<Item = proto::Metric>,
) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(kind);
    family.set_metric(metrics.collect());
    family
}

fn encode(families: &[MetricFamily], out: &mut String) {
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(families, out) {
        // Only a family without series is refused, and none is passed.
        tracing::error!("metrics could not be encoded: {e}");
    }
}

/// A counter family for a collector: one series per `(labels, value)`.
pub fn counter_text(out: &mut String, name: &str, help: &str, series: &[(Labels, u64)]) {
    let metrics = series.iter().map(|(labels, value)| {
        let mut counter = proto::Counter::default();
        counter.set_value(*value as f64);
        let mut metric = proto::Metric::default();
        metric.set_label(label_pairs(labels));
        metric.set_counter(counter);
        metric
    });
    let family = metric_family(name, help, MetricType::COUNTER, metrics);
    if !family.get_metric().is_empty() {
        encode(&[family], out);
    }
}

fn label_pairs(labels: &Labels) -> Vec<proto::LabelPair> {
    labels
        .iter()
        .map(|(name, value)| {
            let mut pair = proto::LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.clone());
            pair
        })
        .collect()
}

fn const_labels(labels: &Labels) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

impl Family {
    fn make(&self, labels: &Labels) -> Series {
        let opts = || prometheus::Opts::new(&self.name, &self.help).const_labels(const_labels(labels));
        // Names and label names are the services' own constants; a bad one is a bug.
        match self.kind {
            MetricType::COUNTER => {
                Series::Counter(Counter(prometheus::IntCounter::with_opts(opts()).expect("valid metric names")))
            }
            MetricType::GAUGE => {
                Series::Gauge(Gauge(prometheus::IntGauge::with_opts(opts()).expect("valid metric names")))
            }
            _ => {
                let opts = prometheus::HistogramOpts::new(&self.name, &self.help)
                    .const_labels(const_labels(labels))
                    .buckets(self.bounds.clone());
                Series::Histogram(Histogram(prometheus::Histogram::with_opts(opts).expect("valid metric names")))
            }
        }
    }

    fn get_or_insert(&self, labels: Labels) -> Series {
        if let Some(found) = self.series.read().get(&labels) {
            return found.share();
        }
        let mut series = self.series.write();
        let made = series.entry(labels.clone()).or_insert_with(|| self.make(&labels));
        made.share()
    }

    /// Like `get_or_insert`, but a new series counts against [`MAX_SERIES_FROM_REQUESTS`];
    /// past it, the overflow series (the same label names, every value [`OVERFLOW`]) is used.
    fn get_or_insert_bounded(&self, labels: Labels) -> Series {
        if let Some(found) = self.series.read().get(&labels) {
            return found.share();
        }
        let mut series = self.series.write();
        if let Some(found) = series.get(&labels) {
            return found.share();
        }
        let labels = if self.from_requests.load(Ordering::Relaxed) < MAX_SERIES_FROM_REQUESTS {
            self.from_requests.fetch_add(1, Ordering::Relaxed);
            labels
        } else {
            labels.into_iter().map(|(name, _)| (name, OVERFLOW.to_string())).collect()
        };
        let made = series.entry(labels.clone()).or_insert_with(|| self.make(&labels));
        made.share()
    }
}

impl CounterFamily {
    pub fn with(&self, labels: Labels) -> Counter {
        match self.0.get_or_insert(labels) {
            Series::Counter(c) => c,
            _ => unreachable!("a counter family holds counters"),
        }
    }

    /// The counter for labels taken from a request: bounded per family (see
    /// [`MAX_SERIES_FROM_REQUESTS`]).
    pub fn with_bounded(&self, labels: Labels) -> Counter {
        match self.0.get_or_insert_bounded(labels) {
            Series::Counter(c) => c,
            _ => unreachable!("a counter family holds counters"),
        }
    }
}

impl GaugeFamily {
    pub fn with(&self, labels: Labels) -> Gauge {
        match self.0.get_or_insert(labels) {
            Series::Gauge(g) => g,
            _ => unreachable!("a gauge family holds gauges"),
        }
    }
}

impl HistogramFamily {
    pub fn with(&self, labels: Labels) -> Histogram {
        match self.0.get_or_insert(labels) {
            Series::Histogram(h) => h,
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
    fn one_family_holds_series_with_different_label_sets() {
        let registry = Registry::default();
        let hits = registry.counter_family("ratelimit_service_rate_limit_total_hits", "Hits.");
        hits.with(vec![("domain", "d".into()), ("key1", "a".into())]).inc();
        hits.with(vec![("domain", "d".into()), ("key1", "a".into()), ("key2", "b".into())]).inc_by(2);
        let text = registry.render();
        assert_eq!(text.matches("# TYPE ratelimit_service_rate_limit_total_hits counter").count(), 1, "{text}");
        assert!(text.contains("ratelimit_service_rate_limit_total_hits{domain=\"d\",key1=\"a\"} 1\n"), "{text}");
        assert!(text.contains("{domain=\"d\",key1=\"a\",key2=\"b\"} 2\n"), "{text}");
        assert!(!text.contains("_total_hits_total"), "no suffix is added: {text}");
        let mut collected = String::new();
        counter_text(&mut collected, "x_lookups_total", "Lookups.", &[(vec![("result", "hit".into())], 5)]);
        assert!(
            collected.contains("# TYPE x_lookups_total counter\nx_lookups_total{result=\"hit\"} 5\n"),
            "{collected}"
        );
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
