//! The HTTP side: Envoy's HTTP ext_authz mode under a path prefix (any method; only 200
//! allows; 5xx only for an internal failure), and `/healthz` (liveness), `/readyz` (keys
//! loaded, not shutting down) and `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::core::decision::{error_body, Decision};
use crate::core::request::AuthRequest;
use crate::service::Authorizer;

#[derive(Clone)]
struct HttpState {
    authorizer: Arc<Authorizer>,
    prefix: String,
    stopping: Arc<AtomicBool>,
}

pub fn router(authorizer: Arc<Authorizer>, prefix: String, stopping: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(check)
        .with_state(HttpState { authorizer, prefix, stopping })
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.stopping.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else if state.authorizer.ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "JWT keys not loaded yet").into_response()
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.authorizer.metrics.registry.render()).into_response()
}

/// Envoy sends the original method and `<prefix><original path and query>`, with the headers
/// it was told to pass on.
async fn check(State(state): State<HttpState>, request: Request) -> Response {
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let Some(original) =
        target.strip_prefix(state.prefix.as_str()).filter(|rest| rest.starts_with('/') || state.prefix.is_empty())
    else {
        return (StatusCode::NOT_FOUND, "not an authorization path").into_response();
    };
    let mut headers = HashMap::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|existing: &mut String| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    let host = headers.get("host").cloned().unwrap_or_default();
    let auth_request = AuthRequest::new(request.method().as_str(), &host, original, headers);
    match state.authorizer.check(&auth_request, "http").await {
        Decision::Allow(allow) => {
            let mut response = Response::new(Body::empty());
            let out = response.headers_mut();
            for (name, value) in &allow.headers {
                if let (Ok(name), Ok(value)) =
                    (header::HeaderName::try_from(name.as_str()), HeaderValue::from_str(value))
                {
                    out.insert(name, value);
                }
            }
            if !allow.remove.is_empty() {
                if let Ok(value) = HeaderValue::from_str(&allow.remove.join(", ")) {
                    out.insert("x-envoy-auth-headers-to-remove", value);
                }
            }
            response
        }
        Decision::Deny(deny) => {
            let status = StatusCode::from_u16(deny.status).unwrap_or(StatusCode::FORBIDDEN);
            let body = error_body(&deny, auth_request.request_id(), &shared::telemetry::rfc3339_now());
            let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            if let Some(challenge) = deny.www_authenticate.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
            }
            response
        }
        Decision::Unavailable(_) | Decision::UnknownKey { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "authorization is temporarily unavailable").into_response()
        }
    }
}
