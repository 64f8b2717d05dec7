//! The only place that knows Envoy's `CheckRequest` / `CheckResponse`.
//!
//! Envoy facts this relies on: an unset `status` means allow, so it is always set; injected
//! headers carry `append_action: OVERWRITE_IF_EXISTS_OR_ADD` (older Envoys ignore the field and
//! overwrite by default, newer ones would otherwise add a second copy next to a client's); a deny
//! is a `denied_response`, while an internal failure is a gRPC error so that Envoy's
//! `failure_mode_allow` decides.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{address, Address, HeaderValue, HeaderValueOption};
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
use crate::core::routes::{PolicySelector, RouteMetadataKey};
use crate::outcome::Outcome;
use crate::service::Authorizer;

mod answer;
mod route_metadata;
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
        // The route's policy annotation is read where this config's selector reads it; a
        // reload between here and the check's own look at the config is as if the request had
        // come just before it.
        let selector = self.authorizer.policy().engine.policies.selector.route_metadata.clone();
        let request = to_auth_request_reading(request, selector.as_ref()).map_err(Status::invalid_argument)?;
        let answer = match self.authorizer.check(&request, "grpc", Some(metadata.as_ref())).await {
            Outcome::Allow(allow) => CheckAnswer::allowed(allow),
            Outcome::Deny(deny) => denied(&deny, request.request_id()).into(),
            Outcome::Redirect(redirect) => redirected(&redirect).into(),
            Outcome::Unavailable(why) => return Err(Status::unavailable(why)),
        };
        Ok(Response::new(answer))
    }
}

/// Envoy's request attributes as our request view, reading the route's policy annotation
/// where the default `policy_selector` does (see [`to_auth_request_reading`]).
pub fn to_auth_request(check: CheckRequest) -> Result<AuthRequest, &'static str> {
    to_auth_request_reading(check, PolicySelector::default().route_metadata.as_ref())
}

/// Envoy's request attributes as our request view. Headers come as a map (joined duplicates)
/// or, with `encode_raw_headers`, as a raw list; both are accepted. Of the route metadata only
/// the policy annotation at `policy_annotation` is read (`None`: none).
pub fn to_auth_request_reading(
    check: CheckRequest,
    policy_annotation: Option<&RouteMetadataKey>,
) -> Result<AuthRequest, &'static str> {
    let attributes = check.attributes.unwrap_or_default();
    let peer_spiffe_id =
        attributes.source.as_ref().and_then(|source| peer_spiffe_id(&source.principal, &source.certificate));
    let peer_address = attributes.source.as_ref().and_then(|source| peer_address(source.address.as_ref()));
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
    request.peer_address = peer_address;
    // Both come from the gateway's config for the route, never from the client. Context
    // extensions are a flat map of strings taken as they are (CEL bounds what it reads of
    // them); of the metadata, a free-form struct, only the policy annotation is read.
    request.context_extensions = attributes.context_extensions;
    request.route_annotation =
        route_metadata::annotation(attributes.route_metadata_context.as_ref(), policy_annotation);
    Ok(request)
}

/// The IP of Envoy's `source.address`: the TCP peer of the downstream connection, whatever
/// `use_remote_address` and `xff_num_trusted_hops` say (the client behind trusted proxies is
/// found in `X-Forwarded-For`, see `core::client_address`). A unix socket peer has none.
fn peer_address(address: Option<&Address>) -> Option<IpAddr> {
    match address?.address.as_ref()? {
        address::Address::SocketAddress(socket) => socket.address.parse::<IpAddr>().ok().map(|ip| ip.to_canonical()),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::{Metadata, Pipe, SocketAddress};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request as AttrRequest};
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;

    use super::*;
    use crate::core::routes::RouteAnnotation;

    fn check(source: Option<address::Address>) -> CheckRequest {
        let http = HttpRequest { method: "GET".into(), host: "api".into(), path: "/".into(), ..HttpRequest::default() };
        let eg = serde_json::json!({"resources": [{"annotations": {"gatehouse-policy": "a"}}]});
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer { address: Some(Address { address: source }), ..Peer::default() }),
                request: Some(AttrRequest { http: Some(http), ..AttrRequest::default() }),
                context_extensions: [("policy".to_string(), "b".to_string())].into(),
                route_metadata_context: Some(Metadata {
                    filter_metadata: [(
                        "envoy-gateway".to_string(),
                        shared::proto::to_struct_ref(eg.as_object().unwrap()),
                    )]
                    .into(),
                    ..Metadata::default()
                }),
                ..AttributeContext::default()
            }),
        }
    }

    fn socket(ip: &str) -> Option<address::Address> {
        Some(address::Address::SocketAddress(SocketAddress { address: ip.into(), ..SocketAddress::default() }))
    }

    #[test]
    fn the_peer_address_context_extensions_and_route_metadata_are_envoys() {
        let request = to_auth_request(check(socket("192.0.2.7"))).unwrap();
        assert_eq!(request.peer_address, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(request.context_extensions.get("policy").map(String::as_str), Some("b"));
        assert_eq!(request.route_annotation, RouteAnnotation::Value("a".into()));
        let other = RouteMetadataKey { namespace: "envoy-gateway".into(), annotation: "other".into() };
        let elsewhere = to_auth_request_reading(check(socket("192.0.2.7")), Some(&other)).unwrap();
        assert_eq!(elsewhere.route_annotation, RouteAnnotation::Absent, "read where the selector reads");
        let unread = to_auth_request_reading(check(socket("192.0.2.7")), None).unwrap();
        assert_eq!(unread.route_annotation, RouteAnnotation::Absent);
        // A dual-stack listener's IPv4 peer is the IPv4 address; a unix socket peer has none.
        let mapped = to_auth_request(check(socket("::ffff:10.0.0.1"))).unwrap();
        assert_eq!(mapped.peer_address, Some("10.0.0.1".parse().unwrap()));
        let pipe = address::Address::Pipe(Pipe { path: "/run/envoy.sock".into(), mode: 0 });
        assert_eq!(to_auth_request(check(Some(pipe))).unwrap().peer_address, None);
        assert_eq!(to_auth_request(check(socket("not-an-ip"))).unwrap().peer_address, None);
    }
}
