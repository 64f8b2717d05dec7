//! The only place that knows Envoy's `CheckRequest` / `CheckResponse`.
//!
//! Envoy facts this relies on: an unset `status` means allow, so it is always set; injected
//! headers carry `append_action: OVERWRITE_IF_EXISTS_OR_ADD` (older Envoys ignore the field and
//! overwrite by default, newer ones would otherwise add a second copy next to a client's); a deny
//! is a `denied_response`, while an internal failure is a gRPC error so that Envoy's
//! `failure_mode_allow` decides.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use shared::serve::Calls;
use shared::spiffe::SpiffeId;
use tonic::{Request, Response, Status};

use crate::core::decision::{error_body, fit_for_headers, Allow, Deny, Redirect, PAGE_HEADERS};
use crate::core::identity_part::IdentityPart;
use crate::core::request::AuthRequest;
use crate::outcome::Outcome;
use crate::service::Authorizer;

mod answer;
mod server;

pub use answer::CheckAnswer;
pub use server::AuthorizationServer;

pub struct AuthorizationGrpc {
    authorizer: Arc<Authorizer>,
    calls: Calls,
}

impl AuthorizationGrpc {
    /// `calls` counts checks in progress, for a graceful stop.
    pub fn server(authorizer: Arc<Authorizer>, calls: Calls) -> AuthorizationServer {
        AuthorizationServer::new(AuthorizationGrpc { authorizer, calls })
    }

    /// `Authorization/Check`.
    pub async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckAnswer>, Status> {
        let _call = self.calls.start();
        let (metadata, _, request) = request.into_parts();
        let request = to_auth_request(request).map_err(Status::invalid_argument)?;
        let answer = match self.authorizer.check(&request, "grpc", Some(metadata.as_ref())).await {
            Outcome::Allow(allow) => CheckAnswer::allowed(allow),
            Outcome::Deny(deny) => denied(&deny, request.request_id()).into(),
            Outcome::Redirect(redirect) => redirected(&redirect).into(),
            Outcome::Unavailable(why) => return Err(Status::unavailable(why)),
        };
        Ok(Response::new(answer))
    }
}

/// Envoy's request attributes as our request view. Headers come as a map (joined duplicates)
/// or, with `encode_raw_headers`, as a raw list; both are accepted.
pub fn to_auth_request(check: CheckRequest) -> Result<AuthRequest, &'static str> {
    let attributes = check.attributes.unwrap_or_default();
    let peer_spiffe_id =
        attributes.source.as_ref().and_then(|source| peer_spiffe_id(&source.principal, &source.certificate));
    let http = attributes.request.and_then(|r| r.http).ok_or("CheckRequest has no HTTP request attributes")?;
    // Envoy sends header names in lower case; the map is rebuilt only when one is not.
    let mut headers: HashMap<String, String> = http.headers;
    if headers.keys().any(|name| name.bytes().any(|b| b.is_ascii_uppercase())) {
        headers = headers.into_iter().map(|(k, v)| (lowercase(k), v)).collect();
    }
    if let Some(raw) = http.header_map {
        for header in raw.headers {
            let value = if header.raw_value.is_empty() {
                header.value
            } else {
                String::from_utf8_lossy(&header.raw_value).into_owned()
            };
            headers
                .entry(lowercase(header.key))
                .and_modify(|existing| {
                    existing.push(',');
                    existing.push_str(&value);
                })
                .or_insert(value);
        }
    }
    // The scheme decides the login's redirect URI; Envoy sends it as a field, not a header.
    if !http.scheme.is_empty() && !headers.contains_key(":scheme") {
        headers.insert(":scheme".into(), http.scheme);
    }
    let host = if http.host.is_empty() { headers.get(":authority").cloned().unwrap_or_default() } else { http.host };
    let method = if http.method.is_empty() { headers.get(":method").cloned().unwrap_or_default() } else { http.method };
    let mut request = AuthRequest::new(method, host, &http.path, headers);
    request.peer_spiffe_id = peer_spiffe_id;
    Ok(request)
}

/// The mutual TLS peer's SPIFFE ID: Envoy's `principal` (the certificate's first URI SAN, else
/// a DNS SAN or the subject) when it is one, else the first SPIFFE URI SAN of the certificate
/// Envoy sends with `include_peer_certificate` (URL-encoded PEM). Envoy fills both from the
/// handshake it verified; no header can.
fn peer_spiffe_id(principal: &str, certificate: &str) -> Option<SpiffeId> {
    if let Ok(id) = SpiffeId::parse(principal) {
        return Some(id);
    }
    if certificate.is_empty() {
        return None;
    }
    // Envoy escapes the PEM's `+`, `/`, `=`, spaces and newlines, so a `+` here is not a space.
    let pem = crate::core::request::percent_decode_bytes(certificate, false);
    shared::tls::spiffe_ids_in_pem(&pem).into_iter().next()
}

/// Lower-cases a header name in place (`to_ascii_lowercase` would copy every name).
fn lowercase(mut name: String) -> String {
    name.make_ascii_lowercase();
    name
}

fn header_with(key: impl Into<String>, value: impl Into<String>, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue { key: key.into(), value: value.into(), ..HeaderValue::default() }),
        append_action: action as i32,
        ..HeaderValueOption::default()
    }
}

fn header(key: impl Into<String>, value: impl Into<String>) -> HeaderValueOption {
    header_with(key, value, HeaderAppendAction::OverwriteIfExistsOrAdd)
}

/// `Set-Cookie` must never be merged into one header (browsers would drop all but the first
/// cookie), so each is added as its own header.
fn set_cookie(value: &str) -> HeaderValueOption {
    header_with("set-cookie", value, HeaderAppendAction::AppendIfExistsOrAdd)
}

/// An allowed answer built as one message (see `answer` for the one that reuses the identity's
/// encoded part).
fn allowed(allow: Allow) -> CheckResponse {
    let metadata = (!allow.metadata.is_empty()).then(|| shared::proto::to_struct_ref(&allow.metadata));
    let mut ok = allow.identity_part.as_deref().map(identity_fields).unwrap_or_default();
    let own = ok_response(allow);
    ok.headers.extend(own.headers);
    ok.headers_to_remove.extend(own.headers_to_remove);
    CheckResponse {
        status: Some(RpcStatus { code: tonic::Code::Ok as i32, ..RpcStatus::default() }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers: ok.headers,
            headers_to_remove: ok.headers_to_remove,
            ..own
        })),
        dynamic_metadata: metadata,
    }
}

/// An identity part's headers and removals as `OkHttpResponse` fields.
fn identity_fields(part: &IdentityPart) -> OkHttpResponse {
    OkHttpResponse {
        headers: part.headers.iter().map(|(k, v)| header(k.as_str(), v.as_str())).collect(),
        headers_to_remove: part.remove.clone(),
        ..OkHttpResponse::default()
    }
}

/// What an allowed answer sets beyond its identity's part. Moved, not copied: the allowed
/// answer is the hot path.
fn ok_response(allow: Allow) -> OkHttpResponse {
    OkHttpResponse {
        headers: allow.headers.into_iter().map(|(k, v)| header(k, v)).collect(),
        headers_to_remove: allow.remove,
        query_parameters_to_remove: allow.remove_query,
        response_headers_to_add: fit_for_headers("set-cookie", &allow.set_cookies).map(|c| set_cookie(c)).collect(),
        ..OkHttpResponse::default()
    }
}

fn denied(deny: &Deny, request_id: &str) -> CheckResponse {
    let code = match deny.status {
        400 => tonic::Code::InvalidArgument,
        401 => tonic::Code::Unauthenticated,
        // Still a deny with our answer (a 503 page), not an RPC failure: Envoy's
        // failure_mode_allow must not let the request through.
        503 => tonic::Code::Unavailable,
        _ => tonic::Code::PermissionDenied,
    };
    let content_type = if deny.page.is_some() { "text/html; charset=utf-8" } else { "application/json" };
    let mut headers = vec![header("content-type", content_type)];
    if let Some(challenge) = deny.challenge() {
        headers.push(header("www-authenticate", challenge));
    }
    headers.extend(deny.headers.iter().map(|(k, v)| header(*k, v.as_str())));
    if deny.page.is_some() {
        headers.extend(PAGE_HEADERS.into_iter().map(|(k, v)| header(k, v)));
    }
    headers.extend(fit_for_headers("set-cookie", &deny.set_cookies).map(|c| set_cookie(c)));
    let body = match &deny.page {
        Some(page) => page.clone(),
        None => error_body(deny, request_id, &shared::telemetry::rfc3339_now()),
    };
    CheckResponse {
        status: Some(RpcStatus { code: code as i32, message: deny.message.clone(), ..RpcStatus::default() }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: i32::from(deny.status) }),
            headers,
            body,
        })),
        dynamic_metadata: None,
    }
}

/// A login, callback or logout redirect: a deny as far as Envoy is concerned (the request does
/// not go upstream), answered with 302, `Location` and the cookies.
fn redirected(redirect: &Redirect) -> CheckResponse {
    let mut headers = vec![header("cache-control", "no-store")];
    headers
        .extend(fit_for_headers("location", std::slice::from_ref(&redirect.location)).map(|l| header("location", l)));
    headers.extend(fit_for_headers("set-cookie", &redirect.set_cookies).map(|c| set_cookie(c)));
    CheckResponse {
        status: Some(RpcStatus {
            code: tonic::Code::Unauthenticated as i32,
            message: "redirect".into(),
            ..RpcStatus::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 302 }),
            headers,
            body: String::new(),
        })),
        dynamic_metadata: None,
    }
}
