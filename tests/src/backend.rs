//! The demo backend: answers every request with the request it received (method, path,
//! headers) as JSON, so tests and people can see exactly what reached the upstream.
//!
//! Paths under `/third-party/` stand for a provider's API behind the gateway (two-layer auth):
//! they answer without echoing, as a real API would, so what the client gets back shows only
//! what the gateway lets it see. Every request is also kept (the last [`KEPT`]) for tests to
//! read what reached the upstream.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// The most requests kept.
pub const KEPT: usize = 256;

/// The requests that reached the backend, newest last.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<VecDeque<Value>>>);

impl Seen {
    pub fn all(&self) -> Vec<Value> {
        self.0.lock().iter().cloned().collect()
    }

    fn keep(&self, request: Value) {
        let mut kept = self.0.lock();
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(request);
    }
}

/// Keeps what it receives in `seen`, when given (the benchmarks' backend does not).
pub fn router(seen: Option<Seen>) -> Router {
    Router::new().fallback(echo).with_state(seen)
}

async fn echo(State(seen): State<Option<Seen>>, request: Request) -> axum::response::Response {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let received = json!({"method": request.method().as_str(), "path": path, "headers": headers});
    if let Some(seen) = seen {
        seen.keep(received.clone());
    }
    let body = if path.starts_with("/third-party/") { json!({"answer": "from the third-party API"}) } else { received };
    // Under `/llm/` the backend plays an LLM API reporting its usage, as such APIs do, in a
    // response header: `?tokens=N` says how many tokens "the completion" took.
    let tokens = path.strip_prefix("/llm/").and_then(|rest| {
        let query = rest.split_once('?')?.1;
        query.split('&').find_map(|pair| pair.strip_prefix("tokens="))?.parse::<u64>().ok()
    });
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if let Some(tokens) = tokens {
        response.headers_mut().insert(USAGE_HEADER, tokens.into());
    }
    response
}

/// The response header with an `/llm/` answer's token usage.
pub const USAGE_HEADER: &str = "x-llm-tokens";

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(None)).await
}

/// The same, keeping what it receives in `seen`.
pub async fn serve_recording(listener: tokio::net::TcpListener, seen: Seen) -> std::io::Result<()> {
    axum::serve(listener, router(Some(seen))).await
}
