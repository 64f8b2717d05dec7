//! Logging with the reference's settings: `LOG_LEVEL` (trace, debug, info, warn, error; the
//! reference's `warning`, `fatal` and `panic` are accepted) and `LOG_FORMAT` (`text` or `json`,
//! the latter with the reference's field names `@timestamp`, `@message` and `level`).
//! `RUST_LOG`, when set, overrides the level with a full filter.

mod burst;

use std::fmt;
use std::num::NonZeroU8;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::iso8601::{Config, EncodedConfig, TimePrecision};
use time::format_description::well_known::Iso8601;
use time::OffsetDateTime;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{filter_fn, FilterExt, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use burst::{LogBurst, BURST_WINDOW};

/// A layer added beside the log output, e.g. a service's span export ([`crate::traces`]).
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Maps a reference log level name to a tracing filter directive.
pub fn level_directive(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "fatal" | "panic" => "error",
        _ => return None,
    })
}

/// Installs the global subscriber, writing to stderr, with `extra` layers beside it. `env`
/// supplies `RUST_LOG`, which, when set and valid, overrides `level`. Safe to call more than
/// once (later calls are ignored), which tests rely on.
///
/// The log output takes events only: spans exist for trace export, and with no export layer
/// interested in them a span costs nothing.
pub fn init(level: &str, format: LogFormat, env: &dyn crate::env::Env, extra: Vec<ExtraLayer>) {
    let _ = tracing_subscriber::registry().with(layers(level, format, env, extra)).try_init();
}

/// The layers [`init`] installs: `extra`, then the log output.
fn layers(level: &str, format: LogFormat, env: &dyn crate::env::Env, mut extra: Vec<ExtraLayer>) -> Vec<ExtraLayer> {
    let directive = level_directive(level).unwrap_or("warn");
    let filter =
        env.var("RUST_LOG").and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new(directive));
    // The hint keeps the global "most verbose level anyone wants" at the filter's level: without
    // it, a closure filter leaves it unknown, and every trace-level callsite of the libraries
    // (h2, tonic, hyper) is asked about on every request.
    let hint = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let events_only = filter.and(filter_fn(|metadata| metadata.is_event()).with_max_level_hint(hint));
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output: ExtraLayer = match format {
        LogFormat::Text => Box::new(output.with_ansi(false).with_filter(events_only)),
        LogFormat::Json => Box::new(output.event_format(ReferenceJson).with_filter(events_only)),
    };
    extra.push(output);
    extra
}

/// One JSON object per line: `{"@timestamp": "...", "@message": "...", "level": "...", fields}`.
struct ReferenceJson;

impl<S, N> FormatEvent<S, N> for ReferenceJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut visitor = JsonFields::default();
        event.record(&mut visitor);
        let mut object = serde_json::Map::new();
        object.insert("@timestamp".into(), rfc3339_now().into());
        object.insert("@message".into(), visitor.message.unwrap_or_default().into());
        object.insert("level".into(), event.metadata().level().as_str().to_ascii_lowercase().into());
        for (k, v) in visitor.fields {
            object.insert(k, v.into());
        }
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}

#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    fields: Vec<(String, String)>,
}

impl tracing::field::Visit for JsonFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.fields.push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields.push((field.name().to_string(), text));
        }
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(now.as_secs(), now.subsec_millis())
}

/// ISO 8601's extended format to the millisecond, in UTC (`Z`): the RFC 3339 profile.
const RFC3339_MILLIS: EncodedConfig =
    Config::DEFAULT.set_time_precision(TimePrecision::Second { decimal_digits: NonZeroU8::new(3) }).encode();

/// Formats Unix seconds and milliseconds as RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`. A time
/// past year 9999 (which no clock gives) is written as the epoch rather than failing a log line.
pub fn format_rfc3339(secs: u64, millis: u32) -> String {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .map(|at| at + time::Duration::milliseconds(i64::from(millis.min(999))));
    at.and_then(|at| at.format(&Iso8601::<RFC3339_MILLIS>).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(1_795_000_000, 5), "2026-11-18T11:06:40.005Z");
        assert_eq!(format_rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_rfc3339(253_402_300_799, 999), "9999-12-31T23:59:59.999Z", "the last one");
        assert_eq!(format_rfc3339(253_402_300_800, 0), "1970-01-01T00:00:00.000Z", "year 10000: the epoch");
        assert_eq!(format_rfc3339(u64::MAX, 0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_log_output_keeps_its_level_as_the_hint() {
        // Without a hint every library callsite below the level would be asked on every call.
        let env = std::collections::HashMap::<String, String>::new();
        let text = layers("warn", LogFormat::Text, &env, Vec::new());
        assert_eq!(Layer::<Registry>::max_level_hint(&text), Some(LevelFilter::WARN));
        let json = layers("debug", LogFormat::Json, &env, Vec::new());
        assert_eq!(Layer::<Registry>::max_level_hint(&json), Some(LevelFilter::DEBUG));
    }

    #[test]
    fn maps_reference_levels() {
        assert_eq!(level_directive("WARNING"), Some("warn"));
        assert_eq!(level_directive("fatal"), Some("error"));
        assert_eq!(level_directive("loud"), None);
    }
}
