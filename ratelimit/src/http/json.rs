//! `POST /json`: the protobuf-JSON form of `RateLimitRequest` in, of `RateLimitResponse` out
//! (camelCase names, enum names, default values omitted), as the reference's endpoint speaks it.
//! Both spellings of field names are accepted, as protobuf-JSON parsers accept them.

use serde_json::{json, Map, Value};

use crate::core::evaluate::Code;
use crate::core::{Entry, LimitOverride, RateLimitRequest, RequestDescriptor, Unit};
use crate::service::Decision;

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("{path}: {problem}")]
    Field { path: String, problem: String },
}

fn field_error(path: impl Into<String>, problem: impl Into<String>) -> JsonError {
    JsonError::Field { path: path.into(), problem: problem.into() }
}

pub fn parse_request(body: &[u8]) -> Result<RateLimitRequest, JsonError> {
    let value: Value = serde_json::from_slice(body)?;
    let object = as_object(&value, "request")?;
    let mut request = RateLimitRequest::default();
    for (name, value) in object {
        match name.as_str() {
            "domain" => request.domain = as_string(value, "domain")?,
            "descriptors" => {
                request.descriptors = as_array(value, "descriptors")?
                    .iter()
                    .enumerate()
                    .map(|(i, d)| descriptor(d, &format!("descriptors[{i}]")))
                    .collect::<Result<_, _>>()?
            }
            "hitsAddend" | "hits_addend" => {
                request.hits_addend = u32::try_from(as_u64(value, "hitsAddend")?)
                    .map_err(|_| field_error("hitsAddend", "must fit in 32 bits"))?
            }
            other => return Err(field_error(other, "unknown field")),
        }
    }
    Ok(request)
}

fn descriptor(value: &Value, path: &str) -> Result<RequestDescriptor, JsonError> {
    let mut descriptor = RequestDescriptor::default();
    for (name, value) in as_object(value, path)? {
        let here = format!("{path}.{name}");
        match name.as_str() {
            "entries" => {
                descriptor.entries = as_array(value, &here)?
                    .iter()
                    .enumerate()
                    .map(|(i, e)| entry(e, &format!("{here}[{i}]")))
                    .collect::<Result<_, _>>()?
            }
            "limit" => {
                let mut requests_per_unit = 0;
                let mut unit = None;
                for (name, value) in as_object(value, &here)? {
                    match name.as_str() {
                        "requestsPerUnit" | "requests_per_unit" => {
                            requests_per_unit = u32::try_from(as_u64(value, &here)?)
                                .map_err(|_| field_error(&here, "requestsPerUnit must fit in 32 bits"))?
                        }
                        "unit" => unit = Some(unit_of(value, &here)?),
                        other => return Err(field_error(format!("{here}.{other}"), "unknown field")),
                    }
                }
                let unit = unit.ok_or_else(|| field_error(&here, "a limit override needs a unit"))?;
                descriptor.limit_override = Some(LimitOverride { requests_per_unit, unit });
            }
            "hitsAddend" | "hits_addend" => descriptor.hits_addend = Some(as_u64(value, &here)?),
            "isNegativeHits" | "is_negative_hits" => {
                if value.as_bool() == Some(true) {
                    return Err(field_error(here, "negative hits are not supported"));
                }
            }
            other => return Err(field_error(format!("{path}.{other}"), "unknown field")),
        }
    }
    Ok(descriptor)
}

fn entry(value: &Value, path: &str) -> Result<Entry, JsonError> {
    let mut entry = Entry::default();
    for (name, value) in as_object(value, path)? {
        match name.as_str() {
            "key" => entry.key = as_string(value, path)?,
            "value" => entry.value = as_string(value, path)?,
            other => return Err(field_error(format!("{path}.{other}"), "unknown field")),
        }
    }
    Ok(entry)
}

fn unit_of(value: &Value, path: &str) -> Result<Unit, JsonError> {
    let unit = match value {
        Value::String(name) => Unit::from_config_name(name),
        Value::Number(n) => n.as_i64().and_then(|n| Unit::from_proto(n as i32)),
        _ => None,
    };
    unit.ok_or_else(|| field_error(path, format!("{value} is not a rate limit unit")))
}

fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, JsonError> {
    value.as_object().ok_or_else(|| field_error(path, "expected an object"))
}

fn as_array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, JsonError> {
    value.as_array().ok_or_else(|| field_error(path, "expected an array"))
}

fn as_string(value: &Value, path: &str) -> Result<String, JsonError> {
    value.as_str().map(str::to_owned).ok_or_else(|| field_error(path, "expected a string"))
}

/// Protobuf-JSON writes 64-bit integers as strings and accepts both forms.
fn as_u64(value: &Value, path: &str) -> Result<u64, JsonError> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| field_error(path, "expected a non-negative integer"))
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::OverLimit => "OVER_LIMIT",
    }
}

pub fn render_response(request: &RateLimitRequest, decision: &Decision) -> String {
    let verdict = &decision.verdict;
    let statuses: Vec<Value> = verdict
        .statuses
        .iter()
        .map(|s| {
            let mut status = Map::new();
            status.insert("code".into(), json!(code_name(s.code)));
            if let Some(limit) = &s.current_limit {
                let mut current = Map::new();
                if !limit.name.is_empty() {
                    current.insert("name".into(), json!(&*limit.name));
                }
                if limit.requests_per_unit != 0 {
                    current.insert("requestsPerUnit".into(), json!(limit.requests_per_unit));
                }
                current.insert("unit".into(), json!(limit.unit.name()));
                status.insert("currentLimit".into(), Value::Object(current));
            }
            if s.limit_remaining != 0 {
                status.insert("limitRemaining".into(), json!(s.limit_remaining));
            }
            if let Some(reset) = s.duration_until_reset {
                status.insert("durationUntilReset".into(), json!(format!("{reset}s")));
            }
            Value::Object(status)
        })
        .collect();
    let mut response = Map::new();
    response.insert("overallCode".into(), json!(code_name(verdict.overall)));
    response.insert("statuses".into(), Value::Array(statuses));
    if !verdict.headers.is_empty() {
        let headers: Vec<Value> = verdict.headers.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        response.insert("responseHeadersToAdd".into(), Value::Array(headers));
    }
    if let Some(metadata) = &decision.dynamic_metadata {
        let mut dynamic = Map::new();
        dynamic.insert("domain".into(), json!(request.domain));
        if !metadata.is_empty() {
            dynamic.insert("metadata".into(), Value::Object(metadata.clone()));
        }
        response.insert("dynamicMetadata".into(), Value::Object(dynamic));
    }
    Value::Object(response).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings() {
        let request = parse_request(
            br#"{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"limit":{"requests_per_unit":5,"unit":"MINUTE"},"hitsAddend":"3"}],"hits_addend":2}"#,
        )
        .unwrap();
        assert_eq!(request.domain, "d");
        assert_eq!(request.hits_addend, 2);
        assert_eq!(request.descriptors[0].hits_addend, Some(3));
        assert_eq!(
            request.descriptors[0].limit_override,
            Some(LimitOverride { requests_per_unit: 5, unit: Unit::Minute })
        );
    }

    #[test]
    fn names_the_bad_field() {
        let err = parse_request(br#"{"domain":"d","descriptors":[{"entries":[{"key":1}]}]}"#).unwrap_err();
        assert_eq!(err.to_string(), "descriptors[0].entries[0]: expected a string");
        let err = parse_request(br#"{"domain":"d","descriptors":[{"limit":{"unit":"UNKNOWN"}}]}"#).unwrap_err();
        assert!(err.to_string().contains("is not a rate limit unit"), "{err}");
        assert!(parse_request(b"{").unwrap_err().to_string().starts_with("invalid JSON"));
        assert_eq!(parse_request(br#"{"domian":"d"}"#).unwrap_err().to_string(), "domian: unknown field");
    }
}
