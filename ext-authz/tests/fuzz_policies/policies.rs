//! Arbitrary requests through compiled policies: deny rules (on a header, a method and a claim,
//! the client and the peer address), CEL conditions, path captures, named policies chosen by
//! `context_extensions` or the route's metadata, shadow modes. Whatever the method, host, path
//! (odd escapes included), headers (huge and many), `X-Forwarded-For` chain, context
//! extensions, route metadata and token: no panic, and no allow where a reference predicate,
//! written here from the config's meaning and not from its code, says the answer must be a
//! deny. And entries a client writes to the left of what the trusted proxy appended never
//! change the answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, Metadata, SocketAddress,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request as AttrRequest};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value};
use ext_authz::config::{self, AuthzConfig};
use ext_authz::core::apikeys::{hash_key, ApiKeyEntry, ApiKeyStore};
use ext_authz::core::decision::{Context, Decision};
use ext_authz::core::jwt::KeySet;
use ext_authz::core::request::AuthRequest;
use ext_authz::core::token_cache::TokenCache;
use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use serde_json::json;

use super::input;

const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://idp.test";
const API_KEY: &str = "ghk_fuzz-policies-key-000000000000000000000";

/// The policies under test. Each deny rule has a reference predicate in [`must_deny`].
const CONFIG: &str = r#"
client_address:
  trusted_hops: 1
jwt_providers:
  - name: idp
    issuer: https://idp.test
    audiences: [api]
    algorithms: [RS256]
    keys: {jwks_file: jwks.json}
api_keys:
  file: keys.json
routes:
  public: [/public/*]
  default: allow
  rules:
    - name: evil-tenant
      action: deny
      path: /*
      when: "'x-tenant' in request.headers && request.headers['x-tenant'] == 'evil'"
    - name: admin-from-inside
      action: deny
      path: /admin/*
      not_client_ips: [10.0.0.0/8, "fd00::/8"]
    - name: metrics-from-the-cluster
      action: deny
      path: /metrics
      not_peer_ips: [192.168.0.0/16]
    - name: no-contractor-deletes
      action: deny
      methods: [DELETE]
      path: /*
      when: has(identity.claims.employment) && identity.claims.employment == 'contractor'
      error: {code: CONTRACTOR_READ_ONLY, message: contractors cannot delete}
    - name: shadowed-deny
      action: deny
      mode: shadow
      path: /shadow/*
    - name: org-orders
      path: /orgs/{org}/orders
      accept: [jwt, api_key]
      when:
        - identity.claims.org == route.org
        - request.headers['x-tenant'] == route.org
    - name: search
      path: /search
      when: request.query['q'].startsWith('ok') && size(request.query['q']) < 64
    - name: peer-listed
      path: /internal/*
      peer_ips: [192.168.0.0/16, "2001:db8::/32"]
policies:
  strict:
    rules:
      - name: no-writes
        action: deny
        path: /*
        when: "!(request.method in ['GET', 'HEAD'])"
      - name: tenant-from-context
        path: /*
        accept: [jwt]
        when: "'tenant' in context && context['tenant'] == identity.claims.org"
    default: deny
  trial:
    mode: shadow
    rules:
      - name: everything-denied
        action: deny
        path: /*
    default: deny
...
"#;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::rsa("key-a", Algorithm::RS256, super::support::RSA_A))
}

/// The config, compiled once, with its key set and API keys.
struct Compiled {
    config: AuthzConfig,
    keys: Vec<Option<Arc<KeySet>>>,
    api_keys: ApiKeyStore,
    /// Tokens signed once (RSA signing is slow in a debug build): (org, employment, token).
    tokens: Vec<(Option<&'static str>, Option<&'static str>, String)>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwks.json"), jwks(&[key()])).unwrap();
        std::fs::write(dir.path().join("keys.json"), r#"{"keys": []}"#).unwrap();
        std::fs::write(dir.path().join("authz.yaml"), CONFIG).unwrap();
        let config = config::load(&dir.path().join("authz.yaml"), &HashMap::new()).expect("the fuzzed policies load");
        let set = Arc::new(KeySet::from_jwks(&jwks(&[key()])).unwrap());
        let keys = vec![Some(set); config.engine.providers.len()];
        let mut api_keys = ApiKeyStore::default();
        let attributes = json!({"org": "acme"}).as_object().unwrap().clone();
        api_keys.insert(ApiKeyEntry {
            hash: hash_key(API_KEY),
            client_id: "fuzz".into(),
            scopes: vec![],
            org_id: None,
            attributes,
        });
        let mut tokens = Vec::new();
        for org in [None, Some("acme"), Some("globex"), Some("evil")] {
            for employment in [None, Some("contractor"), Some("employee")] {
                let mut claims = json!({"iss": ISSUER, "aud": "api", "sub": "u1", "exp": NOW + 600});
                if let Some(org) = org {
                    claims["org"] = json!(org);
                }
                if let Some(employment) = employment {
                    claims["employment"] = json!(employment);
                }
                tokens.push((org, employment, key().sign(&claims)));
            }
        }
        Compiled { config, keys, api_keys, tokens }
    })
}

/// The parts of a request the strategy draws.
#[derive(Debug, Clone)]
struct Drawn {
    method: String,
    host: String,
    path: String,
    headers: Vec<(String, String)>,
    xff: Option<Vec<String>>,
    peer: Option<String>,
    /// Index into the signed tokens, or a made-up credential.
    token: Option<Result<usize, String>>,
    api_key: Option<String>,
    context: Vec<(String, String)>,
    annotation: Option<String>,
}

fn one_of(items: &[&str]) -> impl Strategy<Value = String> {
    let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    prop_oneof![4 => proptest::sample::select(items), 1 => any::<String>()]
}

/// A header value: a word the policies compare, arbitrary text, or a huge value.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => one_of(&["evil", "acme", "globex", "", " evil", "EVIL", "evil\u{0}", "ok", "delete", "DELETE"]),
        1 => (0usize..40_000).prop_map(|n| "e".repeat(n)),
    ]
}

fn drawn() -> impl Strategy<Value = Drawn> {
    let samples: Vec<String> = [
        "/admin/users",
        "/orgs/acme/orders",
        "/orgs/%61cme/orders",
        "/metrics",
        "/public/a",
        "/public/../admin/x",
        "/search?q=okay",
        "/search?q=%6Fk&q=no",
        "/shadow/x",
        "/internal/x",
        "/orgs/acme/orders/../../evil/orders",
    ]
    .map(String::from)
    .to_vec();
    // Mostly paths the policies name (so that requests reach their rules), else mutated ones.
    let tokens =
        &["/", "..", ".", "%2e", "%2F", "%5C", "%", ";", "?", "#", "%00", "admin", "orgs", "acme", "//", "?q=ok"];
    let path = prop_oneof![3 => proptest::sample::select(samples.clone()), 2 => input::text(samples, tokens)];
    let header = (
        one_of(&[
            "x-tenant",
            "x-other",
            "cookie",
            "x-forwarded-for",
            "authorization",
            ":path",
            "host",
            "x-http-method-override",
        ]),
        header_value(),
    );
    let xff_entry = one_of(&[
        "10.1.2.3",
        "203.0.113.7",
        "fd00::1",
        "::ffff:10.0.0.9",
        "[2001:db8::1]:443",
        "10.0.0.1:80",
        "garbage",
        "",
        "192.168.1.1",
    ]);
    let peer = one_of(&["192.168.1.10", "10.1.2.3", "203.0.113.9", "2001:db8::5", "fd00::2", "::ffff:192.168.0.1"]);
    let token = prop_oneof![
        2 => Just(None),
        3 => (0usize..12).prop_map(|i| Some(Ok(i))),
        1 => any::<String>().prop_map(|t| Some(Err(t))),
    ];
    let context = (one_of(&["policy", "tenant", "other"]), one_of(&["strict", "trial", "routes", "", "acme", "nope"]));
    (
        (
            one_of(&["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS", "delete", "Get"]),
            one_of(&["api.test", "API.TEST:8443", ""]),
            path,
        ),
        (proptest::collection::vec(header, 0..12), proptest::option::of(proptest::collection::vec(xff_entry, 0..6))),
        (proptest::option::of(peer), token, proptest::option::of(one_of(&[API_KEY, "ghk_other"]))),
        (
            proptest::collection::vec(context, 0..3),
            prop_oneof![3 => Just(None), 1 => one_of(&["strict", "trial", "nope", ""]).prop_map(Some)],
        ),
    )
        .prop_map(|((method, host, path), (headers, xff), (peer, token, api_key), (context, annotation))| Drawn {
            method,
            host,
            path,
            headers,
            xff,
            peer,
            token,
            api_key,
            context,
            annotation,
        })
}

fn string(text: &str) -> Value {
    Value { kind: Some(Kind::StringValue(text.into())) }
}

fn structure(fields: Vec<(&str, Value)>) -> Value {
    Value { kind: Some(Kind::StructValue(Struct { fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect() })) }
}

impl Drawn {
    /// The `CheckRequest` Envoy would send, the XFF chain joined as Envoy writes it.
    fn check_request(&self, xff_prefix: &str) -> CheckRequest {
        // Names in lower case, as Envoy sends them (the adapter's own lower-casing of other
        // spellings is the `check_requests` target's): the map is then the same every time.
        let mut headers: HashMap<String, String> =
            self.headers.iter().map(|(name, value)| (name.to_lowercase(), value.clone())).collect();
        headers.insert(":method".into(), self.method.clone());
        headers.insert(":path".into(), self.path.clone());
        if let Some(chain) = &self.xff {
            headers.insert("x-forwarded-for".into(), format!("{xff_prefix}{}", chain.join(",")));
        }
        match &self.token {
            Some(Ok(i)) => {
                let token = &compiled().tokens[i % compiled().tokens.len()].2;
                headers.insert("authorization".into(), format!("Bearer {token}"));
            }
            Some(Err(junk)) => {
                headers.insert("authorization".into(), format!("Bearer {junk}"));
            }
            None => {}
        }
        if let Some(key) = &self.api_key {
            headers.insert("x-api-key".into(), key.clone());
        }
        let source = self.peer.as_ref().map(|ip| Peer {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: ip.clone(),
                    port_specifier: Some(PortSpecifier::PortValue(4711)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        });
        let route_metadata_context = self.annotation.as_ref().map(|name| {
            let annotations = structure(vec![("gatehouse-policy", string(name))]);
            let resource = structure(vec![("kind", string("HTTPRoute")), ("annotations", annotations)]);
            let resources = Value { kind: Some(Kind::ListValue(ListValue { values: vec![resource] })) };
            let Some(Kind::StructValue(namespace)) = structure(vec![("resources", resources)]).kind else {
                unreachable!()
            };
            Metadata {
                filter_metadata: HashMap::from([("envoy-gateway".to_string(), namespace)]),
                ..Default::default()
            }
        });
        CheckRequest {
            attributes: Some(AttributeContext {
                source,
                context_extensions: self.context.iter().cloned().collect(),
                route_metadata_context,
                request: Some(AttrRequest {
                    http: Some(HttpRequest {
                        method: self.method.clone(),
                        path: self.path.clone(),
                        host: self.host.clone(),
                        headers,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    /// The claims of the token presented, when it is one of the signed ones.
    fn token_claims(&self) -> Option<(Option<&'static str>, Option<&'static str>)> {
        match &self.token {
            Some(Ok(i)) => {
                let (org, employment, _) = &compiled().tokens[i % compiled().tokens.len()];
                Some((*org, *employment))
            }
            _ => None,
        }
    }
}

fn decide(check: CheckRequest) -> Option<(AuthRequest, Decision)> {
    let request = ext_authz::grpc::to_auth_request(check).ok()?;
    let c = compiled();
    let ctx = Context {
        keys: &c.keys,
        api_keys: &c.api_keys,
        cache: &TokenCache::new(16),
        token_rules: 0,
        now: NOW,
        session: None,
    };
    let decision = c.config.engine.check(&request, &ctx);
    Some((request, decision))
}

fn inside(ip: IpAddr, nets: &[(&str, u8)]) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|(net, bits)| match (ip, net.parse::<IpAddr>().unwrap()) {
        (IpAddr::V4(a), IpAddr::V4(n)) => u32::from(a) >> (32 - bits) == u32::from(n) >> (32 - bits),
        (IpAddr::V6(a), IpAddr::V6(n)) => u128::from(a) >> (128 - bits) == u128::from(n) >> (128 - bits),
        _ => false,
    })
}

/// Why the policies must deny this request, if they must: the reference, from the config's
/// meaning. `None` says nothing (the request may be allowed or denied).
fn must_deny(drawn: &Drawn, request: &AuthRequest) -> Option<&'static str> {
    let path = request.path.as_str();
    // The policy the route names: a context extension first, then the route's metadata (an
    // empty value names none: a route may clear what its virtual host set).
    let named = request.context_extensions.get("policy").filter(|n| !n.is_empty()).cloned();
    let named = named.or_else(|| drawn.annotation.clone().filter(|n| !n.is_empty()));
    if named.as_deref().is_some_and(|name| !["strict", "trial"].contains(&name)) {
        return Some("an unknown policy is named");
    }
    // The deny rules of `routes` hold whichever policy answers.
    if request.header("x-tenant") == Some("evil") {
        return Some("deny rule evil-tenant");
    }
    if path.starts_with("/admin/") {
        // One trusted hop, Envoy appending: the entry before Envoy's own; fewer: the peer.
        let chain: Vec<&str> = request.header("x-forwarded-for").map(|x| x.split(',').collect()).unwrap_or_default();
        let client = match chain.len() {
            0 | 1 => Some(request.peer_address),
            n => chain[n - 2].trim().parse::<IpAddr>().ok().map(Some),
        };
        // `Some(None)`: no client address at all; `None`: an entry this reference does not read.
        match client {
            Some(Some(ip)) if inside(ip, &[("10.0.0.0", 8), ("fd00::", 8)]) => {}
            Some(_) => return Some("deny rule admin-from-inside"),
            None => {}
        }
    }
    if path == "/metrics" && !request.peer_address.is_some_and(|ip| inside(ip, &[("192.168.0.0", 16)])) {
        return Some("deny rule metrics-from-the-cluster");
    }
    let org_orders =
        path.strip_prefix("/orgs/").and_then(|rest| rest.strip_suffix("/orders")).filter(|org| !org.contains('/'));
    let by_token_alone = drawn.api_key.is_none();
    // On every path its `/*` covers, public and `default: allow` ones included: a token present
    // is verified for the deny rules that read `identity`, and a token comes before an API key
    // (every rule accepts `[jwt, api_key]`, and an open route reads them in that order). A
    // method override naming DELETE is a DELETE to the rule's `methods`.
    let overridden = |method: Option<&str>| method.is_some_and(|m| m.trim().eq_ignore_ascii_case("DELETE"));
    let deletes = request.method == "DELETE"
        || ["x-http-method-override", "x-http-method", "x-method-override"]
            .iter()
            .any(|h| overridden(request.header(h)))
        || overridden(request.query_param("_method").as_deref());
    if deletes {
        if let Some((_, Some("contractor"))) = drawn.token_claims() {
            return Some("deny rule no-contractor-deletes");
        }
    }
    match named.as_deref() {
        Some("strict") => {
            if !["GET", "HEAD"].contains(&request.method.as_str()) {
                return Some("strict: deny rule no-writes");
            }
            let tenant = request.context_extensions.get("tenant");
            if by_token_alone && drawn.token_claims().is_some_and(|(org, _)| org.map(String::from).as_ref() != tenant) {
                return Some("strict: condition of tenant-from-context");
            }
        }
        _ => {
            if let Some(org) = org_orders {
                if request.header("x-tenant") != Some(org) {
                    return Some("org-orders: the tenant header is not the path's org");
                }
                if by_token_alone && drawn.token_claims().is_some_and(|(claim, _)| claim != Some(org)) {
                    return Some("org-orders: the token's org is not the path's org");
                }
            }
        }
    }
    None
}

proptest! {
    #[test]
    fn requests_through_policies(drawn in drawn()) {
        let Some((request, decision)) = decide(drawn.check_request("")) else { return Ok(()) };
        let allowed = matches!(decision, Decision::Allow(_));
        if allowed {
            prop_assert!(request.path_error.is_none(), "a path refused as {:?} was allowed", request.path_error);
            if let Some(why) = must_deny(&drawn, &request) {
                prop_assert!(false, "allowed, but {why}: {request:?}");
            }
        }
        // Entries written left of the trusted proxy's never change the answer (a short chain
        // only: a header past CEL's value bound is an evaluation error of its own).
        let chain = drawn.xff.as_ref().map_or(0, Vec::len);
        if chain >= 2 && drawn.xff.as_ref().is_some_and(|x| x.join(",").len() < 1024) {
            let (_, spoofed) = decide(drawn.check_request("10.9.9.9, fd00::9,")).expect("the same request decodes");
            prop_assert_eq!(matches!(spoofed, Decision::Allow(_)), allowed, "a spoofed X-Forwarded-For entry changed the answer");
        }
    }
}
