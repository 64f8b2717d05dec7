//! A real OTLP trace receiver for tests: the collector's gRPC `TraceService` (from the
//! `opentelemetry-proto` service definitions, served by tonic) and OTLP/HTTP `POST /v1/traces`
//! with protobuf bodies, both on loopback, keeping every span they receive.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use parking_lot::Mutex;
use prost::Message;
use tokio::task::JoinHandle;

/// One span as received, ids in lower-case hex (empty parent for a root span).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    pub resource: BTreeMap<String, String>,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// OTLP `SpanKind` (2 server, 3 client).
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    /// OTLP status code (2 = error).
    pub status_code: i32,
    /// `grpc` or `http`: how the span arrived.
    pub via: &'static str,
}

/// Spans kept; more are dropped (a benchmark sends a few thousand, a test a few).
pub const MAX_SPANS: usize = 100_000;

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<ReceivedSpan>>>);

impl Received {
    fn add(&self, request: ExportTraceServiceRequest, via: &'static str) {
        let mut spans = self.0.lock();
        if spans.len() >= MAX_SPANS {
            return;
        }
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(ReceivedSpan {
                        service: service.clone(),
                        resource: resource.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: span.kind,
                        attributes: attributes(&span.attributes),
                        status_code: span.status.map(|s| s.code).unwrap_or_default(),
                        via,
                    });
                }
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

pub struct OtlpReceiver {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    received: Received,
    tasks: Vec<JoinHandle<()>>,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let received = Received::default();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let service = TraceServiceServer::new(received.clone());
        let grpc_task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
            let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        let store = received.clone();
        let router = axum::Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        store.add(request, "http");
                        let answer = ExportTraceServiceResponse::default().encode_to_vec();
                        (axum::http::StatusCode::OK, [("content-type", "application/x-protobuf")], answer)
                    }
                    Err(_) => (axum::http::StatusCode::BAD_REQUEST, [("content-type", "text/plain")], Vec::new()),
                }
            }),
        );
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(http, router).await;
        });
        OtlpReceiver { grpc_addr, http_addr, received, tasks: vec![grpc_task, http_task] }
    }

    /// For `OTEL_EXPORTER_OTLP_ENDPOINT` with the gRPC protocol.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// For `OTEL_EXPORTER_OTLP_ENDPOINT` with the HTTP protocol (`/v1/traces` is appended).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.0.lock().clone()
    }

    /// Polls until `done` holds for the spans received so far, or panics after `within` with
    /// what did arrive.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let received = super::poll(within, async || Some(self.spans()).filter(|spans| done(spans))).await;
        received.unwrap_or_else(|| panic!("{what}: not received within {within:?}; received: {:#?}", self.spans()))
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}
