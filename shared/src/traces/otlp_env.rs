//! Where spans go: the OpenTelemetry specification's exporter variables, resolved the way the
//! specification (and the reference's Go exporters) do.

use std::time::Duration;

use crate::env::{Documented, EnvReader, Setting};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

impl Protocol {
    /// `grpc`, or `http` / `http/protobuf`.
    pub fn parse(text: &str) -> Option<Protocol> {
        match text.trim().to_ascii_lowercase().as_str() {
            "grpc" => Some(Protocol::Grpc),
            "http" | "http/protobuf" => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq)]
pub struct OtlpSettings {
    pub protocol: Protocol,
    /// The full URL spans are sent to (for HTTP, including `/v1/traces`).
    pub endpoint: String,
    /// Sent with every export (often an API key: never logged).
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// How long spans wait in the queue before a batch is sent.
    pub schedule_delay: Duration,
    /// Spans queued beyond this are dropped (counted by the SDK), never buffered without bound.
    pub max_queue_size: usize,
    /// The longest a stopping process waits to send the spans still queued: a collector that
    /// is down or never answers must not hold a stop for the export timeout.
    pub shutdown_timeout: Duration,
}

impl std::fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

// The specification's collector endpoints when no variable names one: macros, so the help
// text below can spell them out (`concat!` takes only literals) from the one definition.
macro_rules! default_grpc_endpoint {
    () => {
        "http://localhost:4317"
    };
}
macro_rules! default_http_endpoint {
    () => {
        "http://localhost:4318"
    };
}

pub const OTEL_EXPORTER_OTLP_ENDPOINT: Setting<String> = Setting::text(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "",
    concat!(
        "OTLP collector URL (gRPC: used as is, default ",
        default_grpc_endpoint!(),
        "; HTTP: /v1/traces is appended, default ",
        default_http_endpoint!(),
        ")"
    ),
);
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Setting<String> = Setting::text(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "",
    "full URL for spans, overriding OTEL_EXPORTER_OTLP_ENDPOINT (nothing appended)",
);
pub const OTEL_EXPORTER_OTLP_HEADERS: Setting<String> = Setting::text(
    "OTEL_EXPORTER_OTLP_HEADERS",
    "",
    "headers sent with every export, k1=v1,k2=v2 (values URL-encoded; never logged)",
);
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: Setting<String> =
    Setting::text("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "", "headers for span exports, instead of the above");
pub const OTEL_EXPORTER_OTLP_TIMEOUT: Setting<u64> =
    Setting::number("OTEL_EXPORTER_OTLP_TIMEOUT", "10000", "export timeout in milliseconds");
pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: Setting<u64> = Setting::number(
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "",
    "span export timeout in milliseconds, instead of the above",
);
pub const OTEL_BSP_SCHEDULE_DELAY: Setting<u64> =
    Setting::number("OTEL_BSP_SCHEDULE_DELAY", "5000", "milliseconds spans wait before a batch is sent");
pub const OTEL_BSP_MAX_QUEUE_SIZE: Setting<usize> =
    Setting::number("OTEL_BSP_MAX_QUEUE_SIZE", "2048", "spans queued for export; more are dropped");
pub const TRACING_SHUTDOWN_TIMEOUT: Setting<Duration> = Setting::duration(
    "TRACING_SHUTDOWN_TIMEOUT",
    "1s",
    "on stop, the longest wait to send the spans still queued (0: none sent)",
);

/// For `--help` tables: every service that exports spans lists these, from here.
pub const OTLP_SETTINGS: [&dyn Documented; 9] = [
    &OTEL_EXPORTER_OTLP_ENDPOINT,
    &OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    &OTEL_EXPORTER_OTLP_HEADERS,
    &OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    &OTEL_EXPORTER_OTLP_TIMEOUT,
    &OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    &OTEL_BSP_SCHEDULE_DELAY,
    &OTEL_BSP_MAX_QUEUE_SIZE,
    &TRACING_SHUTDOWN_TIMEOUT,
];

/// Reads the exporter variables; a bad value is recorded in `r` (headers without their values).
/// `endpoint`, when given (e.g. from a config file), wins over the variables.
pub fn otlp_from_env(r: &mut EnvReader, protocol: Protocol, endpoint: Option<String>) -> OtlpSettings {
    let signal = r.optional(&OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
    let base = r.optional(&OTEL_EXPORTER_OTLP_ENDPOINT);
    let (name, endpoint) = match (endpoint, signal, base, protocol) {
        (Some(given), ..) => ("endpoint", given),
        (None, Some(signal), ..) => (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.name, signal),
        (None, None, Some(base), Protocol::Grpc) => (OTEL_EXPORTER_OTLP_ENDPOINT.name, base),
        (None, None, Some(base), Protocol::HttpProtobuf) => {
            (OTEL_EXPORTER_OTLP_ENDPOINT.name, format!("{}/v1/traces", base.trim_end_matches('/')))
        }
        (None, None, None, Protocol::Grpc) => ("default", default_grpc_endpoint!().to_string()),
        (None, None, None, Protocol::HttpProtobuf) => {
            ("default", concat!(default_http_endpoint!(), "/v1/traces").to_string())
        }
    };
    if !valid_url(&endpoint) {
        r.fail(name, Some(endpoint.clone()), "expected an http:// or https:// URL with a host");
    }
    let (headers_name, raw_headers) = match r.secret(&OTEL_EXPORTER_OTLP_TRACES_HEADERS) {
        Some(h) => (OTEL_EXPORTER_OTLP_TRACES_HEADERS.name, Some(h)),
        None => (OTEL_EXPORTER_OTLP_HEADERS.name, r.secret(&OTEL_EXPORTER_OTLP_HEADERS)),
    };
    let headers = match raw_headers.map(|h| parse_headers(&h)).transpose() {
        Ok(headers) => headers.unwrap_or_default(),
        Err(reason) => {
            r.fail(headers_name, None, &reason);
            Vec::new()
        }
    };
    let timeout = r.optional(&OTEL_EXPORTER_OTLP_TRACES_TIMEOUT).unwrap_or_else(|| r.get(&OTEL_EXPORTER_OTLP_TIMEOUT));
    let max_queue_size = r.get(&OTEL_BSP_MAX_QUEUE_SIZE);
    if max_queue_size == 0 {
        r.fail(OTEL_BSP_MAX_QUEUE_SIZE.name, Some("0".into()), "must be at least 1");
    }
    OtlpSettings {
        protocol,
        endpoint,
        headers,
        timeout: Duration::from_millis(timeout),
        schedule_delay: Duration::from_millis(r.get(&OTEL_BSP_SCHEDULE_DELAY)),
        max_queue_size: max_queue_size.max(1),
        shutdown_timeout: r.get(&TRACING_SHUTDOWN_TIMEOUT),
    }
}

fn valid_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && http::uri::Authority::try_from(host).is_ok()
    })
}

/// `k1=v1,k2=v2` with percent-encoded values (the specification's W3C-baggage-like format).
/// The error never quotes a value.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for (i, pair) in text.split(',').enumerate().filter(|(_, p)| !p.trim().is_empty()) {
        let (name, value) = pair.split_once('=').ok_or_else(|| format!("entry {} has no '='", i + 1))?;
        let name = name.trim().to_ascii_lowercase();
        let value = percent_decode(value.trim()).ok_or_else(|| format!("entry {} ({name}): bad %-encoding", i + 1))?;
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() || http::HeaderValue::from_str(&value).is_err() {
            return Err(format!("entry {} ({name}): not a valid header", i + 1));
        }
        headers.push((name, value));
    }
    Ok(headers)
}

/// Strict, as the specification's W3C-baggage-like format is: `None` for a `%` not followed by
/// two hex digits, or for bytes that are not UTF-8 (which `percent-encoding` would keep as
/// written or replace).
fn percent_decode(text: &str) -> Option<String> {
    let is_escape = |after: &str| after.get(..2).is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !text.split('%').skip(1).all(is_escape) {
        return None;
    }
    percent_encoding::percent_decode_str(text).decode_utf8().ok().map(|decoded| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)], protocol: Protocol) -> Result<OtlpSettings, String> {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut r = EnvReader::new(&env);
        let settings = otlp_from_env(&mut r, protocol, None);
        r.finish().map(|()| settings).map_err(|e| e.to_string())
    }

    #[test]
    fn resolves_endpoints_as_the_specification_says() {
        assert_eq!(read(&[], Protocol::Grpc).unwrap().endpoint, "http://localhost:4317");
        assert_eq!(read(&[], Protocol::HttpProtobuf).unwrap().endpoint, "http://localhost:4318/v1/traces");
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")];
        assert_eq!(read(&base, Protocol::HttpProtobuf).unwrap().endpoint, "http://collector:4318/v1/traces");
        assert_eq!(read(&base, Protocol::Grpc).unwrap().endpoint, "http://collector:4318/");
        let both = [base[0], ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:9/custom")];
        assert_eq!(read(&both, Protocol::HttpProtobuf).unwrap().endpoint, "http://other:9/custom");
    }

    #[test]
    fn refuses_bad_values_without_echoing_headers() {
        let err = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")], Protocol::Grpc).unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && err.contains("http://"), "{err}");
        let err = read(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret,broken")], Protocol::Grpc).unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS") && err.contains("entry 2"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err = read(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")], Protocol::Grpc).unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{err}");
    }

    #[test]
    fn reads_headers_and_timeouts() {
        let s = read(
            &[
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, X-Tenant=t1"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
            ],
            Protocol::Grpc,
        )
        .unwrap();
        assert_eq!(s.headers, vec![("api-key".into(), "a b".into()), ("x-tenant".into(), "t1".into())]);
        assert_eq!(s.timeout, Duration::from_millis(250));
        assert!(!format!("{s:?}").contains("a b"), "headers' values stay out of Debug");
    }

    #[test]
    fn header_values_are_decoded_strictly() {
        assert_eq!(percent_decode("a%20b%2cc%C3%A9").as_deref(), Some("a b,c\u{e9}"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"), "a plus is a plus here");
        for bad in ["100%", "%4", "%zz", "%+9", "%\u{e9}x", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
        let refused = read(&[("OTEL_EXPORTER_OTLP_HEADERS", "a=ok,b=%zz")], Protocol::Grpc).unwrap_err();
        assert!(refused.contains("entry 2 (b): bad %-encoding"), "{refused}");
    }
}
