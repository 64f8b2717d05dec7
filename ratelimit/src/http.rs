//! The HTTP side: `GET /healthcheck` and `POST /json` on the main port, `/`, `/rlconfig` and
//! `/stats` on the debug port, and Prometheus metrics on their own address.

pub mod json;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use shared::health::Health;

use crate::core::evaluate::{Code, RETRY_AFTER};
use crate::service::RateLimiter;

#[derive(Clone)]
struct AppState {
    limiter: Arc<RateLimiter>,
    health: Health,
}

/// `GET /healthcheck` (200 `OK` or 500) and `POST /json`.
pub fn main_router(limiter: Arc<RateLimiter>, health: Health) -> Router {
    Router::new()
        .route("/healthcheck", get(healthcheck))
        .route("/json", post(json_call))
        .with_state(AppState { limiter, health })
}

/// `/` lists the endpoints; `/rlconfig` dumps the loaded limits; `/stats` shows the metrics.
pub fn debug_router(limiter: Arc<RateLimiter>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async {
                "/rlconfig: print out the currently loaded configuration for debugging\n/stats: print out stats\n"
            }),
        )
        .route("/rlconfig", get(rlconfig))
        .route("/stats", get(stats))
        .with_state(limiter)
}

pub fn metrics_router(limiter: Arc<RateLimiter>, path: &str) -> Router {
    Router::new().route(path, get(stats)).with_state(limiter)
}

async fn healthcheck(State(state): State<AppState>) -> Response {
    if state.health.is_healthy() {
        (StatusCode::OK, "OK").into_response()
    } else {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

async fn json_call(State(state): State<AppState>, body: Bytes) -> Response {
    let request = match json::parse_request(&body) {
        Ok(request) => request,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    match state.limiter.should_rate_limit(&request).await {
        Ok(decision) => {
            let status = match decision.verdict.overall {
                Code::Ok => StatusCode::OK,
                Code::OverLimit => StatusCode::TOO_MANY_REQUESTS,
            };
            let body = json::render_response(&request, &decision);
            let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            // The 429 says when to come back, as Envoy's does (the body lists it too, among
            // `responseHeadersToAdd`, as the gRPC answer does).
            let retry_after = decision.verdict.headers.iter().find(|(name, _)| name == RETRY_AFTER);
            if let Some(value) = retry_after.and_then(|(_, v)| header::HeaderValue::from_str(v).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn rlconfig(State(limiter): State<Arc<RateLimiter>>) -> String {
    limiter.loaded().map(|l| l.config.dump()).unwrap_or_default()
}

async fn stats(State(limiter): State<Arc<RateLimiter>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], limiter.metrics().registry.render()).into_response()
}
