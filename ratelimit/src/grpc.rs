//! The only place that knows Envoy's `RateLimitRequest` / `RateLimitResponse`: convert, call the
//! limiter, convert back.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code as PbCode, DescriptorStatus as PbStatus, RateLimit as PbRateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest as PbRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::{Duration, Struct};
use shared::serve::unary::{UnaryMethod, UnaryServer};
use shared::serve::Calls;
use shared::traces::{record_error, run_call, CallTrace, HeaderCarrier};
use tonic::{Request, Response, Status};
use tracing::field::Empty;
use tracing::Instrument;

use crate::core::evaluate::{Code, DescriptorStatus, Verdict};
use crate::core::{Entry, LimitOverride, RateLimitRequest, RequestDescriptor, Unit};
use crate::service::{Decision, RateLimiter, ServiceError};

mod answer;

pub use answer::RlsAnswer;

pub struct RateLimitGrpc {
    limiter: Arc<RateLimiter>,
    calls: Calls,
}

impl RateLimitGrpc {
    /// `calls` counts calls in progress, for a graceful stop.
    /// Served by `shared::serve::unary` rather than the generated server, so that an answer is
    /// an [`RlsAnswer`] (same wire message, written from the decision; see `answer`).
    pub fn server(limiter: Arc<RateLimiter>, calls: Calls) -> UnaryServer<RateLimitGrpc> {
        UnaryServer::new(RateLimitGrpc { limiter, calls })
    }

    /// `RateLimitService/ShouldRateLimit`.
    pub async fn should_rate_limit(&self, request: Request<PbRequest>) -> Result<Response<RlsAnswer>, Status> {
        let _call = self.calls.start();
        let (metadata, _, request) = request.into_parts();
        let carrier = HeaderCarrier(metadata.as_ref());
        // The reference's span name; a child of the span Envoy's rate limit client sent. A call
        // that will not be recorded gets no span at all (see `CallTrace`). The request is
        // read first so that the span is made with its fields: each field recorded later costs
        // the exporter's layer a visit of its own. Only attributes that vary per call: the
        // RPC's system, service and method are the same on every span of this service (named
        // by the resource's `service.name`), and each attribute is copied, converted and
        // encoded for every exported span.
        let trace = CallTrace::read(&[&carrier]);
        let recorded = trace.recorded();
        let request = to_core(request);
        let span = trace.span(|| {
            let read = request.as_ref().ok();
            tracing::info_span!(
                "ShouldRateLimit Execution",
                otel.kind = "server",
                ratelimit.domain = read.map(|r| shared::traces::cut(&r.domain)),
                ratelimit.descriptors = read.map(|r| r.descriptors.len()),
                ratelimit.hits_addend = read.map(|r| r.hits_addend),
                ratelimit.decision = Empty,
            )
        });
        let answer = match request {
            Err(invalid) => Err(Status::invalid_argument(invalid.to_string())),
            Ok(request) => {
                // Counters in memory are answered on the spot (in the call's span). Waiting on a
                // store goes through a box, so that this future, moved several times before it
                // runs, stays small for the calls that do not wait.
                let decided = match span.in_scope(|| self.limiter.answer_now(&request)) {
                    Some(decided) => decided,
                    None => {
                        let waiting = Box::pin(self.limiter.should_rate_limit(&request));
                        run_call(recorded, waiting.instrument(span.clone())).await
                    }
                };
                match decided {
                    Ok(decision) => {
                        span.record("ratelimit.decision", decision.verdict.overall.as_str());
                        Ok(Response::new(to_answer(&request, decision)))
                    }
                    Err(e) => Err(to_status(&e)),
                }
            }
        };
        if let Err(status) = &answer {
            record_error(&span, status.message().to_string());
        }
        answer
    }
}

impl UnaryMethod for RateLimitGrpc {
    const SERVICE: &'static str = "envoy.service.ratelimit.v3.RateLimitService";
    const PATH: &'static str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";
    type Request = PbRequest;
    type Answer = RlsAnswer;

    fn call(
        &self,
        request: Request<PbRequest>,
    ) -> impl std::future::Future<Output = Result<Response<RlsAnswer>, Status>> + Send {
        self.should_rate_limit(request)
    }
}

/// Service errors carry the reference's texts. The reference answers them with UNKNOWN; a
/// store outage is UNAVAILABLE so that Envoy's `failure_mode_deny` applies (an UNKNOWN would do
/// the same in Envoy, but UNAVAILABLE says what happened to every other gRPC client).
pub fn to_status(error: &ServiceError) -> Status {
    match error {
        ServiceError::Store(e) => Status::unavailable(e.to_string()),
        other => Status::unknown(other.to_string()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InvalidRequest {
    #[error("descriptor {index}: limit override has unit {unit}, which is not a rate limit unit")]
    OverrideUnit { index: usize, unit: i32 },
    #[error("descriptor {index}: is_negative_hits is not supported")]
    NegativeHits { index: usize },
}

/// Moves the proto's strings into the core request (no copies).
pub fn to_core(request: PbRequest) -> Result<RateLimitRequest, InvalidRequest> {
    let PbRequest { domain, descriptors, hits_addend } = request;
    let descriptors = descriptors
        .into_iter()
        .enumerate()
        .map(|(index, d)| {
            // Counting a refund as a hit would be wrong both ways; refuse it plainly instead.
            if d.is_negative_hits {
                return Err(InvalidRequest::NegativeHits { index });
            }
            let limit_override = match d.limit {
                Some(o) => Some(LimitOverride {
                    requests_per_unit: o.requests_per_unit,
                    // The reference crashes on UNKNOWN here; we refuse the call instead.
                    unit: Unit::from_proto(o.unit).ok_or(InvalidRequest::OverrideUnit { index, unit: o.unit })?,
                }),
                None => None,
            };
            Ok(RequestDescriptor {
                entries: d.entries.into_iter().map(|e| Entry { key: e.key, value: e.value }).collect(),
                limit_override,
                hits_addend: d.hits_addend.map(|h| h.value),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(RateLimitRequest { domain, descriptors, hits_addend })
}

/// The answer to send: written from the statuses and headers when they are all it holds
/// (always, but with `RESPONSE_DYNAMIC_METADATA`), else the generated message.
pub fn to_answer(request: &RateLimitRequest, decision: Decision) -> RlsAnswer {
    if decision.dynamic_metadata.is_none() {
        let Verdict { overall, statuses, headers, .. } = decision.verdict;
        RlsAnswer::Statuses { overall, statuses, headers }
    } else {
        RlsAnswer::Message(to_proto(request, decision))
    }
}

pub fn to_proto(request: &RateLimitRequest, decision: Decision) -> RateLimitResponse {
    let Decision { verdict, dynamic_metadata } = decision;
    RateLimitResponse {
        overall_code: code(verdict.overall) as i32,
        statuses: verdict.statuses.iter().map(status).collect(),
        response_headers_to_add: verdict
            .headers
            .into_iter()
            .map(|(key, value)| HeaderValue { key, value, ..HeaderValue::default() })
            .collect(),
        dynamic_metadata: dynamic_metadata.map(|metadata| response_metadata(request, metadata)),
        ..RateLimitResponse::default()
    }
}

fn code(code: Code) -> PbCode {
    match code {
        Code::Ok => PbCode::Ok,
        Code::OverLimit => PbCode::OverLimit,
    }
}

fn status(status: &DescriptorStatus) -> PbStatus {
    PbStatus {
        code: code(status.code) as i32,
        current_limit: status.current_limit.as_ref().map(|l| PbRateLimit {
            name: l.name.to_string(),
            requests_per_unit: l.requests_per_unit,
            unit: l.unit.to_proto(),
        }),
        limit_remaining: status.limit_remaining,
        duration_until_reset: status.duration_until_reset.map(|s| Duration { seconds: s as i64, nanos: 0 }),
        ..PbStatus::default()
    }
}

/// The reference's dynamic metadata: the domain, each descriptor's entries (`k=v`), override
/// and addend, the request's addend, and the merged config metadata.
fn response_metadata(request: &RateLimitRequest, metadata: serde_json::Map<String, serde_json::Value>) -> Struct {
    use serde_json::{json, Value as J};
    let descriptors: Vec<J> = request
        .descriptors
        .iter()
        .map(|d| {
            let mut object = serde_json::Map::new();
            let entries: Vec<J> = d.entries.iter().map(|e| J::String(format!("{}={}", e.key, e.value))).collect();
            object.insert("entries".into(), J::Array(entries));
            if let Some(o) = d.limit_override {
                object.insert(
                    "limit".into(),
                    J::String(format!("requests_per_unit:{} unit:{}", o.requests_per_unit, o.unit)),
                );
            }
            if let Some(h) = d.hits_addend {
                object.insert("hitsAddend".into(), json!(h));
            }
            J::Object(object)
        })
        .collect();
    let mut root = serde_json::Map::new();
    root.insert("domain".into(), J::String(request.domain.clone()));
    root.insert("descriptors".into(), J::Array(descriptors));
    if request.hits_addend != 0 {
        root.insert("hitsAddend".into(), json!(request.hits_addend));
    }
    if !metadata.is_empty() {
        root.insert("metadata".into(), J::Object(metadata));
    }
    shared::proto::to_struct(root)
}
