//! A real OAuth2 token endpoint (client credentials, with discovery) on loopback, which checks
//! the client's credentials (Basic or in the form), records what it was sent, and can be slowed
//! down or made to fail.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::json;

pub const CLIENT_ID: &str = "gatehouse";
pub const CLIENT_SECRET: &str = "partner-secret-0123456789";

/// A token endpoint (with discovery). Requests naming a `resource` (the `partner` credential's)
/// get `tok-1`, `tok-2`, …, the others `other-1`, …; each token lives 120 s.
#[derive(Clone, Default)]
pub struct TokenServer {
    pub url: String,
    pub issued: Arc<AtomicUsize>,
    pub issued_others: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
    pub delay_ms: Arc<AtomicU64>,
    /// The form of the last request naming a `resource` (the `partner` credential's: other
    /// credentials' requests may land in between), with the client's credentials however they
    /// came.
    last_form: Arc<Mutex<Vec<(String, String)>>>,
}

impl TokenServer {
    pub async fn start() -> TokenServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = TokenServer { url: format!("http://{}", listener.local_addr().unwrap()), ..Default::default() };
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/token", post(token))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    pub fn form(&self, name: &str) -> Option<String> {
        self.last_form.lock().iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

fn json_body(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn discovery(State(s): State<TokenServer>) -> Response {
    json_body(StatusCode::OK, json!({"issuer": s.url, "token_endpoint": format!("{}/token", s.url)}))
}

async fn token(State(s): State<TokenServer>, headers: HeaderMap, body: String) -> Response {
    tokio::time::sleep(Duration::from_millis(s.delay_ms.load(Ordering::SeqCst))).await;
    let mut form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    if let Some(basic) = headers.get("authorization").and_then(|v| v.to_str().ok()?.strip_prefix("Basic ")) {
        let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(basic).unwrap()).unwrap();
        let (id, secret) = decoded.split_once(':').unwrap();
        form.push(("client_id".into(), id.into()));
        form.push(("client_secret".into(), secret.into()));
    }
    if form.iter().any(|(k, _)| k == "resource") {
        *s.last_form.lock() = form.clone();
    }
    if s.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    let given = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if given("client_id") != Some(CLIENT_ID) || given("client_secret") != Some(CLIENT_SECRET) {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return json_body(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let token = match given("resource") {
        Some(_) => format!("tok-{}", s.issued.fetch_add(1, Ordering::SeqCst) + 1),
        None => format!("other-{}", s.issued_others.fetch_add(1, Ordering::SeqCst) + 1),
    };
    json_body(StatusCode::OK, json!({"access_token": token, "token_type": "Bearer", "expires_in": 120}))
}
