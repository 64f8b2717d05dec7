//! The demo backend: answers every request with the request it received (method, path,
//! headers) as JSON, so tests and people can see exactly what reached the upstream.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;
use serde_json::json;

pub fn router() -> Router {
    Router::new().fallback(echo)
}

async fn echo(request: Request) -> impl IntoResponse {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = json!({
        "method": request.method().as_str(),
        "path": request.uri().path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string())
}

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}
