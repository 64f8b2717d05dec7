//! The HTTP side: Envoy's HTTP ext_authz mode under a path prefix (any method; only 200
//! allows; 5xx only for an internal failure), and `/healthz` (liveness), `/readyz` (keys
//! loaded, not shutting down; its body says what is not ready and which file changes were
//! refused, never a config value or an error's text: the log has those) and `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::core::decision::{error_body, fit_for_headers, PAGE_HEADERS};
use crate::core::request::AuthRequest;
use crate::outcome::Outcome;
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
    } else if let Some(why) = state.authorizer.not_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    } else {
        // Ready: a refused change leaves the last good files serving (unready pods would take
        // the whole service down for one bad edit), but it is said here, not only logged.
        let refused = state.authorizer.refused_reloads();
        if refused.is_empty() {
            (StatusCode::OK, "ready").into_response()
        } else {
            (StatusCode::OK, format!("ready, serving the last good files: {}", refused.join("; "))).into_response()
        }
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.authorizer.metrics.registry.render()).into_response()
}

/// Envoy sends the original method and `<prefix><original path and query>`, with the headers
/// it was told to pass on.
async fn check(State(state): State<HttpState>, request: Request) -> Response {
    if request.method() == axum::http::Method::POST {
        if let Some(oidc) = state.authorizer.policy().oidc.clone() {
            if oidc.settings().backchannel_logout_path.as_deref() == Some(request.uri().path()) {
                return backchannel_logout(&state, &oidc, request).await;
            }
        }
    }
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
    // No peer address, context extensions or route metadata in this mode: Envoy's HTTP
    // ext_authz request carries none of them, and this connection's peer is Envoy itself, not
    // the client. A `client_address.trusted_hops` of 1 or more still finds the client in an
    // `X-Forwarded-For` Envoy was told to pass on (its allowed headers).
    let auth_request = AuthRequest::new(request.method().as_str(), &host, original, headers);
    match state.authorizer.check(&auth_request, "http", None).await {
        Outcome::Allow(allow) => {
            let mut response = Response::new(Body::empty());
            let out = response.headers_mut();
            for (name, value) in allow.all_headers() {
                if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name), HeaderValue::from_str(value)) {
                    out.insert(name, value);
                }
            }
            append_set_cookies(out, &allow.set_cookies);
            let removed: Vec<&str> = allow.all_removed().collect();
            if !removed.is_empty() {
                if let Ok(value) = HeaderValue::from_str(&removed.join(", ")) {
                    out.insert("x-envoy-auth-headers-to-remove", value);
                }
            }
            response
        }
        Outcome::Deny(deny) => {
            let status = StatusCode::from_u16(deny.status).unwrap_or(StatusCode::FORBIDDEN);
            let (content_type, body) = match &deny.page {
                Some(page) => ("text/html; charset=utf-8", page.clone()),
                None => (
                    "application/json",
                    error_body(&deny, auth_request.request_id(), &shared::telemetry::rfc3339_now()),
                ),
            };
            let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
            if let Some(challenge) = deny.challenge().and_then(|c| HeaderValue::from_str(c).ok()) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
            }
            for (name, value) in &deny.headers {
                if let Ok(value) = HeaderValue::from_str(value) {
                    response.headers_mut().insert(*name, value);
                }
            }
            if deny.page.is_some() {
                for (name, value) in PAGE_HEADERS {
                    response.headers_mut().insert(name, HeaderValue::from_static(value));
                }
            }
            append_set_cookies(response.headers_mut(), &deny.set_cookies);
            response
        }
        Outcome::Redirect(redirect) => {
            let mut response = StatusCode::FOUND.into_response();
            let out = response.headers_mut();
            if let Some(location) = fit_for_headers("location", std::slice::from_ref(&redirect.location))
                .next()
                .and_then(|l| HeaderValue::from_str(l).ok())
            {
                out.insert(header::LOCATION, location);
            }
            out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            append_set_cookies(out, &redirect.set_cookies);
            response
        }
        Outcome::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "authorization is temporarily unavailable").into_response()
        }
    }
}

fn append_set_cookies(out: &mut axum::http::HeaderMap, cookies: &[String]) {
    for cookie in fit_for_headers("set-cookie", cookies) {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            out.append(header::SET_COOKIE, value);
        }
    }
}

/// OIDC Back-Channel Logout: the provider posts a signed logout token; 200 once the sessions it
/// names are gone, 400 with an OAuth error for a bad token (spec §2.8), 503 when the session
/// store cannot be reached, 500 when it refuses the call.
async fn backchannel_logout(state: &HttpState, oidc: &crate::oidc::Oidc, request: Request) -> Response {
    use crate::oidc::BackchannelError;
    let body = match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(body) => body,
        Err(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "unreadable or oversized body"),
    };
    match oidc.backchannel_logout(&body, state.authorizer.now()).await {
        Ok(_) => ([(header::CACHE_CONTROL, "no-store")], "").into_response(),
        Err(BackchannelError::Store(e)) if e.is_transient() => {
            tracing::error!("back-channel logout failed: {e}");
            oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "sessions are unavailable")
        }
        // The store refused the call (an index of the wrong type, a command not allowed): not
        // an outage, and the provider's retry would meet the same refusal.
        Err(BackchannelError::Store(e)) => {
            tracing::error!("back-channel logout refused by the session store: {e}");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the session store refused the logout")
        }
        Err(e) => {
            tracing::warn!("back-channel logout refused: {e}");
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string())
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}
