//! The decision log: one JSON line per decision, for audits and for finding out why a caller
//! was refused — time, request id, trace id, route, method, host, path (never the query),
//! decision, reason, status, who (identity id, auth method, provider; the calling workload's
//! SPIFFE ID), how long it took, and — when there are — the named policy that answered and the
//! would-be answers of shadow rules and policies (`shadow`).
//!
//! Never a credential: a line is built field by field from what is listed above, never from a
//! header or the query string. Lines go to stdout (the service's own logs go to stderr) or to a
//! file, through a bounded queue written off the serving threads; when the writer cannot keep
//! up, lines are dropped and counted (`ext_authz_decision_log_dropped_total`) rather than slow
//! a check down or grow memory. A file is reopened when it is renamed or deleted and on
//! SIGHUP, and can be rotated by size ([`file`]).
//!
//! Sampling is by request id, so a decision is logged or not the same way wherever it is
//! evaluated (both Envoy modes, retries with the same id).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Map, Value};
use shared::metrics::Counter;

use crate::core::decision::ShadowHit;
use crate::core::request::AuthRequest;
use crate::outcome::Outcome;

pub mod file;

use file::LogFile;
pub use file::SizeRotation;

/// Lines waiting for the writer; past this, new lines are dropped (and counted).
pub const QUEUE_LINES: usize = 10_000;

/// The longest a value taken from the request (path, host, method, request id, route) is
/// written; longer ones are cut, ending in `…`. With Envoy allowing 60 KiB of headers, an uncut
/// line could be that long, and a full queue 600 MB; cut, a line stays under ~3 KiB and the
/// queue under ~30 MB.
pub const MAX_FIELD_BYTES: usize = 512;

/// The `decision_log:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionLogSettings {
    /// The share of decisions logged, 0.0–1.0.
    pub sample_rate: f64,
    /// Log allows too (denials, redirects and failures are always candidates).
    pub allows: bool,
    pub to: LogSink,
    /// Size-based rotation of a file (`max_size`, `max_files`); `None` leaves it to logrotate.
    pub rotation: Option<SizeRotation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSink {
    Stdout,
    /// Appended to (created when missing).
    File(PathBuf),
}

/// One decision, as the authorizer saw it.
pub struct Entry<'a> {
    pub request: &'a AuthRequest,
    pub outcome: &'a Outcome,
    /// The route that decided: a rule's name, `public` or `default`; `None` when the request
    /// was refused before routing.
    pub route: Option<&'a str>,
    /// `grpc` or `http` (Envoy's mode).
    pub mode: &'static str,
    pub latency: Duration,
    /// The calling workload's SPIFFE ID, when it has one (so a refused workload is named).
    pub principal: Option<&'a str>,
    /// The named policy that answered (`None`: `routes`).
    pub policy: Option<&'a str>,
    /// Would-be answers of the shadow rules and policies the request met.
    pub shadow: &'a [ShadowHit<'a>],
}

/// The JSON line for `entry` at `time` (RFC 3339), without the newline.
pub fn line(entry: &Entry<'_>, time: &str) -> String {
    let request = entry.request;
    let (decision, reason) = entry.outcome.labels();
    let status = match entry.outcome {
        Outcome::Allow(_) => Some(200),
        Outcome::Deny(deny) => Some(deny.status),
        Outcome::Redirect(_) => Some(302),
        Outcome::Unavailable(_) => None,
    };
    let mut record = Map::new();
    record.insert("time".into(), json!(time));
    record.insert("request_id".into(), json!(cut(request.request_id())));
    record.insert("trace_id".into(), json!(trace_id(&request.headers)));
    record.insert("mode".into(), json!(entry.mode));
    record.insert("route".into(), json!(entry.route.map(cut)));
    record.insert("method".into(), json!(cut(&request.method)));
    record.insert("host".into(), json!(cut(&request.host)));
    record.insert("path".into(), json!(cut(&request.path)));
    record.insert("decision".into(), json!(decision));
    record.insert("reason".into(), json!(reason));
    record.insert("status".into(), json!(status));
    record.insert("identity".into(), identity(entry.outcome));
    record.insert("principal".into(), json!(entry.principal.map(cut)));
    record.insert("latency_us".into(), json!(entry.latency.as_micros() as u64));
    // Only when there is something to say: a config without policies or shadow rules writes the
    // lines it always has.
    if let Some(policy) = entry.policy {
        record.insert("policy".into(), json!(policy));
    }
    if !entry.shadow.is_empty() {
        record.insert("shadow".into(), shadow(entry.shadow));
    }
    Value::Object(record).to_string()
}

/// `[{policy, rule, would, code}]`: the names come from the config, the code from a rule's
/// `error` or ours (`null` for a would-be allow).
fn shadow(hits: &[ShadowHit<'_>]) -> Value {
    let hit = |h: &ShadowHit<'_>| json!({"policy": h.policy, "rule": h.rule, "would": h.would.as_str(), "code": h.code.as_ref().map(|c| c.as_str())});
    Value::Array(hits.iter().map(hit).collect())
}

/// `text`, or its first [`MAX_FIELD_BYTES`] (at a character boundary) and `…`.
fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_FIELD_BYTES {
        return text.into();
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// Who was let through: the identity's id (`sub`, else `client_id`), how it authenticated and
/// with which provider; `null` for anonymous decisions.
fn identity(outcome: &Outcome) -> Value {
    match outcome.authenticated() {
        Some((id, method, provider)) => json!({"id": id, "method": method, "provider": provider}),
        None => Value::Null,
    }
}

/// The trace a request belongs to: W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), else
/// B3's `x-b3-traceid` (16 or 32 hex); anything else is ignored rather than echoed.
pub fn trace_id(headers: &HashMap<String, String>) -> Option<&str> {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0');
    if let Some(parent) = headers.get("traceparent") {
        let parts: Vec<&str> = parent.trim().split('-').collect();
        if let [version, trace, span, flags] = parts[..] {
            if version.len() == 2 && trace.len() == 32 && span.len() == 16 && flags.len() == 2 && hex(trace) {
                return Some(trace);
            }
        }
    }
    headers.get("x-b3-traceid").map(|t| t.trim()).filter(|t| (t.len() == 16 || t.len() == 32) && hex(t))
}

/// Whether the decision with this request id is in the sample.
pub fn sampled(request_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let mut hasher = DefaultHasher::new();
    request_id.hash(&mut hasher);
    (hasher.finish() % 1_000_000) < (rate * 1_000_000.0) as u64
}

/// The log in service: settings, the queue to the writer, the drop counter.
pub struct DecisionLog {
    settings: DecisionLogSettings,
    queue: mpsc::SyncSender<String>,
    dropped: Counter,
    reopen: Reopen,
}

/// Asks the writer to reopen its file (SIGHUP, after logrotate moved it): done before its
/// next write, or within [`IDLE_CHECK`] when no line comes.
#[derive(Clone, Default)]
pub struct Reopen(Arc<AtomicBool>);

impl Reopen {
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

impl DecisionLog {
    /// Opens the sink and starts the writer (a thread of its own: writes to a slow disk or a
    /// blocked stdout never hold a serving thread), which runs until the log is dropped,
    /// writing what is queued first.
    pub fn start(settings: DecisionLogSettings, dropped: Counter) -> io::Result<DecisionLog> {
        let sink = match &settings.to {
            LogSink::Stdout => Sink::Stdout(BufWriter::with_capacity(64 * 1024, io::stdout())),
            LogSink::File(path) => {
                Sink::File(LogFile::open(path.clone(), settings.rotation, shared::clock::system_clock())?)
            }
        };
        let (log, lines) = DecisionLog::queue(settings, dropped, QUEUE_LINES);
        spawn_writer(lines, sink, log.reopen.clone())?;
        Ok(log)
    }

    pub fn settings(&self) -> &DecisionLogSettings {
        &self.settings
    }

    /// The handle that asks for the file to be reopened.
    pub fn reopener(&self) -> Reopen {
        self.reopen.clone()
    }

    /// The log and the receiving end of its queue, for [`spawn_writer`].
    fn queue(
        settings: DecisionLogSettings,
        dropped: Counter,
        capacity: usize,
    ) -> (DecisionLog, mpsc::Receiver<String>) {
        let (queue, lines) = mpsc::sync_channel(capacity);
        (DecisionLog { settings, queue, dropped, reopen: Reopen::default() }, lines)
    }

    /// Queues the line for `entry` when it is in the sample; never waits.
    pub fn record(&self, entry: &Entry<'_>) {
        if matches!(entry.outcome, Outcome::Allow(_)) && !self.settings.allows {
            return;
        }
        if !sampled(entry.request.request_id(), self.settings.sample_rate) {
            return;
        }
        let line = line(entry, &shared::telemetry::rfc3339_now());
        if self.queue.try_send(line).is_err() {
            self.dropped.inc();
        }
    }
}

/// How long the writer rests after a write. A line waits at most this long; meanwhile the
/// serving threads queue lines without waking the writer, and the next write carries them all.
/// Without the rest, a busy service woke the writer and wrote for nearly every line: the log
/// cost 75% more CPU per check (docs/benchmarks.md, "Cost at every load").
const WRITE_REST: Duration = Duration::from_millis(20);

/// How long an idle writer waits for a line before looking at its file anyway, so that a file
/// renamed or deleted (or a SIGHUP) while nothing is logged is let go of: its space is freed.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The most lines written between two looks at the file: a writer that never catches up
/// still notices a rename.
const BATCH_LINES: usize = QUEUE_LINES;

/// Where the writer puts lines.
enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(LogFile),
}

impl Sink {
    fn append(&mut self, line: &str) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => writeln!(out, "{line}"),
            Sink::File(file) => file.append(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(file) => file.flush(),
        }
    }

    /// Between batches: reopens a file that was moved, or when asked (stdout stays).
    fn check(&mut self, reopen: bool) -> io::Result<()> {
        match self {
            Sink::Stdout(_) => Ok(()),
            Sink::File(file) => file.check(reopen),
        }
    }
}

/// Writes queued lines, buffered and flushed whenever the queue runs empty, then rests
/// ([`WRITE_REST`]), until every sender is gone; before each batch (and every [`IDLE_CHECK`]
/// when idle) the file is checked and reopened if it was moved or `reopen` asks. At 10,000
/// queued lines (the bound) a rest would have to outlast 500,000 decisions a second to drop any.
fn spawn_writer(lines: mpsc::Receiver<String>, mut sink: Sink, reopen: Reopen) -> io::Result<JoinHandle<()>> {
    let work = move || loop {
        let first = match lines.recv_timeout(IDLE_CHECK) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if let Err(e) = sink.check(reopen.take()) {
            // Lines keep going to the file already open; the next check tries again.
            tracing::error!("decision log: cannot reopen the file: {e}");
        }
        let Some(first) = first else { continue };
        let mut result = sink.append(&first);
        let mut more = lines.try_iter().take(BATCH_LINES - 1);
        while let (Ok(()), Some(line)) = (&result, more.next()) {
            result = sink.append(&line);
        }
        if let Err(e) = result.and_then(|()| sink.flush()) {
            tracing::error!("decision log: cannot write: {e}");
        }
        std::thread::sleep(WRITE_REST);
    };
    std::thread::Builder::new().name("decision-log".into()).spawn(work)
}

#[cfg(test)]
mod tests;
