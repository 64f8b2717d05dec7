//! The `telemetry:` section: span export. Keys left out fall back to the OpenTelemetry
//! specification's variables (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_HEADERS`, …); collector headers (often an
//! API key) only come from the environment, never from this file.

use shared::env::EnvReader;
use shared::traces::{otlp_from_env, Protocol, TraceSettings};

use super::check::{Check, Checked, Reported};
use super::raw::RawTracing;

pub fn tracing(raw: &RawTracing, c: &Check<'_>) -> Checked<Option<TraceSettings>> {
    if !raw.enabled {
        return Ok(None);
    }
    let protocol_key = "telemetry.tracing.protocol";
    let protocol_text = raw
        .protocol
        .clone()
        .or_else(|| c.env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").cloned())
        .or_else(|| c.env.get("OTEL_EXPORTER_OTLP_PROTOCOL").cloned())
        .unwrap_or_else(|| "grpc".into());
    let Some(protocol) = Protocol::parse(&protocol_text) else {
        return c.fail(protocol_key, format!("{protocol_text:?}: expected grpc or http/protobuf"));
    };
    if !(0.0..=1.0).contains(&raw.sampling_rate) {
        return c.fail("telemetry.tracing.sampling_rate", format!("{} is not between 0 and 1", raw.sampling_rate));
    }
    let mut reader = EnvReader::new(c.env);
    let otlp = otlp_from_env(&mut reader, protocol, raw.endpoint.clone());
    if let Err(errors) = reader.finish() {
        for error in errors.0 {
            // The endpoint came from this file when given; the rest from the environment.
            let key =
                if error.name == "endpoint" { "telemetry.tracing.endpoint".to_string() } else { error.name.clone() };
            let _: Checked<()> = c.fail(key, error.to_string());
        }
        return Err(Reported);
    }
    let env = |name: &str| c.env.get(name).filter(|v| !v.is_empty()).cloned();
    Ok(Some(TraceSettings {
        otlp,
        service_name: raw
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "ext-authz".into()),
        service_namespace: raw.service_namespace.clone(),
        service_instance_id: raw.service_instance_id.clone(),
        sampling_rate: raw.sampling_rate,
    }))
}
