//! For every rate limit policy in `k8s/`, the descriptors the gateway really sends — derived with
//! the gateway's own translation rules (kgateway: a header entry's descriptor key is the header
//! name; Envoy actions as Istio passes them through) — and proof that the ratelimit config the
//! base deploys has a limit for each. A policy whose keys never match the config (the kgateway
//! `x-user-id` vs `user_id` mismatch) fails here.
//!
//!
//! Then, for the same overlays, whose value a per-user descriptor carries: a request a client
//! sends with someone else's `x-user-id` is followed through the gateway's own rules (what is
//! removed at the listener, where ext-authz runs and what it sets, what each rate limit action
//! reads) on the paths ext-authz does not run on — Istio's exempted `/healthz`, a kgateway route
//! opted out with `extAuth: {disable: {}}` — and no descriptor may carry the client's value.
//!
//! Istio's resources are followed per gateway pod, as Istio selects them: the classic ingress
//! gateway gets one full set from `istio`, the pods of the one Gateway API `Gateway` named in
//! `istio/gateway-api` (filled in as its README's lines fill it) one full set from that overlay,
//! and no other pod gets anything (a same-named `Gateway` elsewhere, another `Gateway`, an
//! application), applied alone or together.
//!
//! Envoy Gateway is not here: its BackendTrafficPolicy is evaluated by the rate limit service
//! Envoy Gateway deploys with the config it generates itself (k8s/overlays/envoy-gateway); its
//! client address is checked in `envoy_gateway_client_address.rs`.

use std::process::Command;

use e2e::envoy::workspace_root;
use e2e::yaml::to_json;
use ratelimit::core::config::{ConfigSource, RateLimitConfig};
use ratelimit::core::request::Entry;
use serde_json::{json, Value};
use yaml_rust2::YamlLoader;

/// The objects `kubectl kustomize` renders for an overlay.
fn render(overlay: &str) -> Vec<Value> {
    parse(&render_text(overlay))
}

fn render_text(overlay: &str) -> String {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(workspace_root().join("k8s/overlays").join(overlay))
        .output()
        .expect("kubectl (see static_configs.rs for how to get it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn parse(text: &str) -> Vec<Value> {
    YamlLoader::load_from_str(text).unwrap().iter().map(to_json).collect()
}

/// The base's ratelimit config, as its ConfigMap carries it.
fn base_limits() -> RateLimitConfig {
    let content = std::fs::read_to_string(workspace_root().join("k8s/base/config/ratelimit.yaml")).unwrap();
    RateLimitConfig::load(&[ConfigSource { name: "ratelimit.yaml".into(), content }], false).unwrap()
}

/// A value a request would carry for a descriptor entry.
fn sample(key: &str) -> String {
    match key {
        "remote_address" => "203.0.113.7".into(),
        "path" => "/orders/1".into(),
        _ => "alice".into(),
    }
}

fn assert_limited(gateway: &str, domain: &str, descriptor: &[(String, String)]) {
    let entries: Vec<Entry> = descriptor.iter().map(|(k, v)| Entry::new(k.clone(), v.clone())).collect();
    let config = base_limits();
    let mut scratch = String::new();
    assert!(
        config.find(domain, &entries, &mut scratch).is_some(),
        "{gateway}: the base ratelimit config has no limit for the descriptor {descriptor:?} in domain {domain:?}"
    );
}

/// kgateway (v2.2.0, pkg/kgateway/extensions2/plugins/trafficpolicy/global_rate_limit_plugin.go): Header →
/// key = the header name; RemoteAddress → remote_address; Generic → its key and value; Path →
/// path. The domain is the referenced GatewayExtension's.
#[test]
fn kgateway_traffic_policies_send_descriptors_the_config_limits() {
    let objects = render("kgateway");
    let policies: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "TrafficPolicy").collect();
    assert!(!policies.is_empty());
    for policy in policies {
        let global = &policy["spec"]["rateLimit"]["global"];
        let extension = objects
            .iter()
            .find(|o| o["kind"] == "GatewayExtension" && o["metadata"]["name"] == global["extensionRef"]["name"])
            .expect("the referenced GatewayExtension");
        let domain = extension["spec"]["rateLimit"]["domain"].as_str().expect("a domain");
        let descriptors = global["descriptors"].as_array().expect("descriptors");
        assert!(!descriptors.is_empty());
        for descriptor in descriptors {
            let derived: Vec<(String, String)> = descriptor["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| match entry["type"].as_str().unwrap() {
                    "Header" => {
                        let header = entry["header"].as_str().unwrap().to_string();
                        let value = sample(&header);
                        (header, value)
                    }
                    "RemoteAddress" => ("remote_address".into(), sample("remote_address")),
                    "Path" => ("path".into(), sample("path")),
                    "Generic" => (
                        entry["generic"]["key"].as_str().unwrap().into(),
                        entry["generic"]["value"].as_str().unwrap().into(),
                    ),
                    other => panic!("kgateway entry type {other} not derived"),
                })
                .collect();
            assert_limited("kgateway", domain, &derived);
        }
    }
}

/// A gateway pod as Istio sees it: its namespace and labels.
struct Pod {
    name: &'static str,
    namespace: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

/// The mesh config's root namespace (Istio's default).
const ROOT_NAMESPACE: &str = "istio-system";

/// The classic ingress gateway (istioctl's default profile).
const CLASSIC: Pod = Pod {
    name: "classic ingress gateway",
    namespace: "istio-system",
    labels: &[("istio", "ingressgateway"), ("app", "istio-ingressgateway")],
};

/// The pods Istio deploys for the Gateway API `Gateway` named `gateway` in `istio-ingress`
/// (kube-gateway.yaml: the gateway-name label, never `istio`), the one the filled
/// `istio/gateway-api` names.
const GATEWAY_API: Pod = Pod {
    name: "the named Gateway API gateway",
    namespace: "istio-ingress",
    labels: &[
        ("gateway.networking.k8s.io/gateway-name", "gateway"),
        ("gateway.istio.io/managed", "istio.io-gateway-controller"),
    ],
};

/// Pods no overlay is for: a `Gateway` of the same name in another namespace, another `Gateway`
/// in the named one's namespace, an application.
const OTHERS: [Pod; 3] = [
    Pod {
        name: "a same-named Gateway elsewhere",
        namespace: "team-b",
        labels: &[
            ("gateway.networking.k8s.io/gateway-name", "gateway"),
            ("gateway.istio.io/managed", "istio.io-gateway-controller"),
        ],
    },
    Pod {
        name: "another Gateway beside it",
        namespace: "istio-ingress",
        labels: &[
            ("gateway.networking.k8s.io/gateway-name", "internal"),
            ("gateway.istio.io/managed", "istio.io-gateway-controller"),
        ],
    },
    Pod { name: "an application pod", namespace: "apps", labels: &[("app", "orders")] },
];

/// Each Istio overlay's objects and the gateway pod it is for: `istio` for the classic ingress
/// gateway, and `istio/gateway-api` filled in for [`GATEWAY_API`] as its README's lines fill it
/// (`k8s_base.rs` runs those lines and renders the result).
fn istio_overlays() -> [(&'static str, Vec<Value>, &'static Pod); 2] {
    let filled = render_text("istio/gateway-api")
        .replace("namespace: change-me\n", &format!("namespace: {}\n", GATEWAY_API.namespace))
        .replace("gateway-name: change-me\n", &format!("gateway-name: {}\n", GATEWAY_API.labels[0].1));
    assert!(!filled.contains("gateway-name: change-me"), "{filled}");
    [("istio", render("istio"), &CLASSIC), ("istio/gateway-api", parse(&filled), &GATEWAY_API)]
}

/// The AuthorizationPolicies and EnvoyFilters Istio applies to `pod` (policyattachment.go,
/// `ShouldAttachPolicy`, with selector-based policy on, its default): those of the root namespace
/// and of the pod's own whose selector labels the pod carries (no selector: every pod there).
fn istio_applied(objects: &[Value], pod: &Pod) -> Vec<Value> {
    let selects = |object: &Value| {
        assert!(object["spec"].get("targetRefs").is_none(), "targetRefs are not modelled: {object}");
        let namespace = object["metadata"]["namespace"].as_str().expect("a namespace");
        let selector = match object["kind"].as_str() {
            Some("EnvoyFilter") => &object["spec"]["workloadSelector"]["labels"],
            _ => &object["spec"]["selector"]["matchLabels"],
        };
        let carried = |(key, value): (&String, &Value)| pod.labels.iter().any(|(k, v)| k == key && value == v);
        (namespace == ROOT_NAMESPACE || namespace == pod.namespace)
            && selector.as_object().is_none_or(|labels| labels.iter().all(carried))
    };
    objects
        .iter()
        .filter(|o| o["kind"] == "AuthorizationPolicy" || o["kind"] == "EnvoyFilter")
        .filter(|o| selects(o))
        .cloned()
        .collect()
}

/// Exactly one of each resource (none twice: a second rate limit filter would count every
/// request twice).
fn assert_one_full_set(applied: &[Value], overlay: &str, pod: &Pod) {
    let count =
        |what: &dyn Fn(&str) -> bool| applied.iter().filter(|o| what(&serde_json::to_string(o).unwrap())).count();
    let one = |label: &str, what: &dyn Fn(&str) -> bool| {
        assert_eq!(count(what), 1, "{overlay}, {}: {label}: {applied:#?}", pod.name);
    };
    one("the CUSTOM AuthorizationPolicy", &|t| t.contains(r#""action":"CUSTOM""#));
    one("the rate limit filter", &|t| t.contains(r#""name":"envoy.filters.http.ratelimit""#));
    one("the rate limit actions", &|t| t.contains(r#""rate_limits""#));
    one("the underscore header patch", &|t| t.contains("headers_with_underscores_action"));
    assert_eq!(applied.len(), 4, "{overlay}, {}: {applied:#?}", pod.name);
}

/// Each overlay gives its gateway pod one full set and every other pod nothing; applied
/// together (a cluster running both kinds), each gateway pod still gets one set.
#[test]
fn istio_overlays_serve_only_their_gateway() {
    let overlays = istio_overlays();
    for (overlay, objects, pod) in &overlays {
        assert_one_full_set(&istio_applied(objects, pod), overlay, pod);
        let others = overlays.iter().map(|(_, _, p)| *p).filter(|p| p.name != pod.name).chain(&OTHERS);
        for other in others {
            let applied = istio_applied(objects, other);
            assert!(applied.is_empty(), "{overlay} reaches {}: {applied:#?}", other.name);
        }
    }
    let both: Vec<Value> = overlays.iter().flat_map(|(_, objects, _)| objects.clone()).collect();
    for (_, _, pod) in &overlays {
        assert_one_full_set(&istio_applied(&both, pod), "both overlays", pod);
    }
}

/// Istio passes the EnvoyFilter's route `rate_limits` to Envoy as written; the domain is the one
/// of the rate limit filter the other EnvoyFilter inserts.
#[test]
fn istio_envoy_filters_send_descriptors_the_config_limits() {
    for (_, objects, pod) in &istio_overlays() {
        istio_descriptors_are_limited(&istio_applied(objects, pod));
    }
}

fn istio_descriptors_are_limited(objects: &[Value]) {
    let filters: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "EnvoyFilter").collect();
    let domain = filters
        .iter()
        .flat_map(|f| f["spec"]["configPatches"].as_array().unwrap())
        .find_map(|p| p["patch"]["value"]["typed_config"]["domain"].as_str())
        .expect("the rate limit filter's domain");
    let mut derived_any = false;
    for patch in filters.iter().flat_map(|f| f["spec"]["configPatches"].as_array().unwrap()) {
        let Some(rate_limits) = patch["patch"]["value"]["rate_limits"].as_array() else { continue };
        for rate_limit in rate_limits {
            let derived: Vec<(String, String)> = rate_limit["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|action| {
                    if let Some(headers) = action.get("request_headers") {
                        let key = headers["descriptor_key"].as_str().unwrap().to_string();
                        let value = sample(&key);
                        (key, value)
                    } else if let Some(metadata) = action.get("metadata") {
                        let key = metadata["descriptor_key"].as_str().unwrap().to_string();
                        let value = sample(&key);
                        (key, value)
                    } else if action.get("remote_address").is_some() {
                        ("remote_address".into(), sample("remote_address"))
                    } else if let Some(generic) = action.get("generic_key") {
                        (
                            generic["descriptor_key"].as_str().unwrap_or("generic_key").into(),
                            generic["descriptor_value"].as_str().unwrap().into(),
                        )
                    } else {
                        panic!("Envoy action {action} not derived")
                    }
                })
                .collect();
            assert_limited("istio", domain, &derived);
            derived_any = true;
        }
    }
    assert!(derived_any, "no rate_limits in the Istio overlay");
}

/// A request at the gateway: its path, the headers the client sent, and who ext-authz verifies
/// from its credential (`None`: no valid credential, or a public path).
struct Sent<'a> {
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    verified: Option<&'a str>,
}

/// The client's value, naming someone else.
const VICTIM: &str = "victim";

/// What the rate limit actions can read once ext-authz has run, or not: the request headers,
/// and ext-authz's dynamic metadata (`envoy.filters.http.ext_authz`).
struct AtRateLimit {
    headers: Vec<(String, String)>,
    metadata: Vec<(String, String)>,
}

/// ext-authz's effect (docs/ext-authz.md, Answers): it sets `x-user-id` to the verified user and
/// puts `user_id` in its metadata, or removes every client copy when there is no identity.
fn through_ext_authz(mut headers: Vec<(String, String)>, verified: Option<&str>) -> AtRateLimit {
    headers.retain(|(name, _)| !name.eq_ignore_ascii_case("x-user-id"));
    let mut metadata = Vec::new();
    if let Some(user) = verified {
        headers.push(("x-user-id".into(), user.into()));
        metadata.push(("user_id".into(), user.into()));
    }
    AtRateLimit { headers, metadata }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Envoy's descriptor for one rate limit's actions, or `None` when an action has nothing to read
/// (Envoy then sends no descriptor for that rate limit).
fn envoy_descriptor(actions: &[Value], at: &AtRateLimit) -> Option<Vec<(String, String)>> {
    actions
        .iter()
        .map(|action| {
            if let Some(headers) = action.get("request_headers") {
                let value = header(&at.headers, headers["header_name"].as_str().unwrap())?;
                Some((headers["descriptor_key"].as_str().unwrap().to_string(), value.to_string()))
            } else if let Some(metadata) = action.get("metadata") {
                assert_eq!(metadata["source"], "DYNAMIC", "{action}");
                let key = &metadata["metadata_key"];
                assert_eq!(key["key"], "envoy.filters.http.ext_authz", "only ext-authz's metadata is modelled");
                let path = key["path"].as_array().unwrap();
                assert_eq!(path.len(), 1, "{action}");
                let name = path[0]["key"].as_str().unwrap();
                let value = at.metadata.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())?;
                Some((metadata["descriptor_key"].as_str().unwrap().to_string(), value))
            } else if action.get("remote_address").is_some() {
                Some(("remote_address".into(), sample("remote_address")))
            } else if let Some(generic) = action.get("generic_key") {
                let key = generic["descriptor_key"].as_str().unwrap_or("generic_key");
                Some((key.into(), generic["descriptor_value"].as_str().unwrap().into()))
            } else {
                panic!("Envoy action {action} not derived")
            }
        })
        .collect()
}

/// Istio's path match in an AuthorizationPolicy: exact, `prefix*`, `*suffix` or `*`.
fn istio_path_matches(pattern: &str, path: &str) -> bool {
    match (pattern.strip_suffix('*'), pattern.strip_prefix('*')) {
        _ if pattern == "*" => true,
        (Some(prefix), _) => path.starts_with(prefix),
        (_, Some(suffix)) => path.ends_with(suffix),
        _ => pattern == path,
    }
}

/// Whether Istio calls the CUSTOM provider for `path`: only where a rule of the policy matches
/// (builder/extauthz.go enables the filter with a matcher made from the rules).
fn istio_calls_ext_authz(objects: &[Value], path: &str) -> bool {
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "AuthorizationPolicy" && o["spec"]["action"] == "CUSTOM")
        .expect("the CUSTOM AuthorizationPolicy");
    policy["spec"]["rules"].as_array().expect("rules").iter().any(|rule| {
        let rule = rule.as_object().unwrap();
        assert!(rule.keys().all(|k| k == "to"), "only `to` is modelled: {rule:?}");
        rule["to"].as_array().unwrap().iter().any(|to| {
            let operation = to["operation"].as_object().unwrap();
            assert!(operation.keys().all(|k| k == "paths" || k == "notPaths"), "{operation:?}");
            let any = |field: &str| {
                operation
                    .get(field)
                    .and_then(Value::as_array)
                    .map(|patterns| patterns.iter().any(|p| istio_path_matches(p.as_str().unwrap(), path)))
            };
            any("paths").unwrap_or(true) && !any("notPaths").unwrap_or(false)
        })
    })
}

/// The descriptors Istio's gateway sends for `sent`: the EnvoyFilter's virtual host rate limits
/// apply to every route, ext-authz only where the policy says.
fn istio_descriptors(objects: &[Value], sent: &Sent<'_>) -> Vec<Vec<(String, String)>> {
    let headers: Vec<(String, String)> = sent.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let at = match istio_calls_ext_authz(objects, sent.path) {
        true => through_ext_authz(headers, sent.verified),
        false => AtRateLimit { headers, metadata: Vec::new() },
    };
    let patches = objects
        .iter()
        .filter(|o| o["kind"] == "EnvoyFilter")
        .flat_map(|f| f["spec"]["configPatches"].as_array().unwrap());
    let rate_limits = patches.filter_map(|p| p["patch"]["value"]["rate_limits"].as_array()).flatten();
    rate_limits.filter_map(|limit| envoy_descriptor(limit["actions"].as_array().unwrap(), &at)).collect()
}

fn assert_no_client_value(gateway: &str, path: &str, descriptors: &[Vec<(String, String)>]) {
    let leaked: Vec<_> = descriptors.iter().filter(|d| d.iter().any(|(_, v)| v == VICTIM)).collect();
    assert!(leaked.is_empty(), "{gateway} {path}: the client's x-user-id is counted: {leaked:?}");
}

#[test]
fn istio_limits_only_count_what_ext_authz_set() {
    for (_, objects, pod) in &istio_overlays() {
        istio_limits_count_what_ext_authz_set(&istio_applied(objects, pod));
    }
}

fn istio_limits_count_what_ext_authz_set(objects: &[Value]) {
    let domain = "gatehouse";
    let spoof: &[(&str, &str)] = &[("x-user-id", VICTIM)];
    // The health check is exempted from ext-authz: nothing may count the client's value there.
    assert!(!istio_calls_ext_authz(objects, "/healthz"), "the overlay exempts /healthz");
    let healthz = istio_descriptors(objects, &Sent { path: "/healthz", headers: spoof, verified: None });
    assert_no_client_value("istio", "/healthz", &healthz);
    // Elsewhere the verified user is counted, whatever the client sent.
    let orders = istio_descriptors(objects, &Sent { path: "/orders/1", headers: spoof, verified: Some("alice") });
    assert_no_client_value("istio", "/orders/1", &orders);
    let per_user: Vec<_> = orders.iter().filter(|d| d.iter().any(|(k, _)| k == "x-user-id")).collect();
    assert_eq!(per_user, [&vec![("x-user-id".to_string(), "alice".to_string())]]);
    assert_limited("istio", domain, per_user[0]);

    // The model sees the hole the overlay had: a limit on the request header counts the
    // client's value on /healthz.
    let on_header = |o: &Value| {
        let text = serde_json::to_string(o).unwrap();
        let metadata = r#"{"metadata":{"descriptor_key":"x-user-id","metadata_key":{"key":"envoy.filters.http.ext_authz","path":[{"key":"user_id"}]},"source":"DYNAMIC"}}"#;
        assert!(o["kind"] != "EnvoyFilter" || !text.contains("rate_limits") || text.contains(metadata), "{text}");
        let header = r#"{"request_headers":{"descriptor_key":"x-user-id","header_name":"x-user-id"}}"#;
        serde_json::from_str::<Value>(&text.replace(metadata, header)).unwrap()
    };
    let planted: Vec<Value> = objects.iter().map(on_header).collect();
    let leaked = istio_descriptors(&planted, &Sent { path: "/healthz", headers: spoof, verified: None });
    assert_eq!(leaked, [vec![("x-user-id".to_string(), VICTIM.to_string())]]);
}

/// The HTTPRoute an opted-out TrafficPolicy targets in the tests below.
const OPTED_OUT_ROUTE: &str = "health";

/// A route's opt-out from ext-authz, as kgateway's README describes it.
fn kgateway_opt_out() -> Value {
    json!({"apiVersion": "gateway.kgateway.dev/v1alpha1", "kind": "TrafficPolicy",
        "metadata": {"name": "health-without-ext-authz", "namespace": "apps"},
        "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": OPTED_OUT_ROUTE}],
                 "extAuth": {"disable": {}}}})
}

/// The descriptors kgateway's Envoy sends for `sent` on HTTPRoute `route` under the Gateway
/// `http`: headers a ListenerPolicy removes early are gone before any filter; for each of
/// `extAuth` and `rateLimit` a TrafficPolicy on the route wins over the Gateway's (kgateway merges
/// field by field, the more specific policy first); a descriptor is sent only when each of its
/// entries has a value.
fn kgateway_descriptors(objects: &[Value], route: &str, sent: &Sent<'_>) -> Vec<Vec<(String, String)>> {
    let targets = |o: &Value, kind: &str, name: &str| {
        o["spec"]["targetRefs"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["kind"] == kind && r["name"] == name))
    };
    let mut headers: Vec<(String, String)> = sent.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for policy in objects.iter().filter(|o| o["kind"] == "ListenerPolicy" && targets(o, "Gateway", "http")) {
        let early = &policy["spec"]["default"]["httpSettings"]["earlyRequestHeaderModifier"];
        assert!(early.get("set").is_none() && early.get("add").is_none(), "only removals are modelled");
        for name in early["remove"].as_array().into_iter().flatten() {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(name.as_str().unwrap()));
        }
    }
    let policies: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "TrafficPolicy").collect();
    let field = |name: &str| {
        let on_route = policies.iter().find(|p| targets(p, "HTTPRoute", route) && p["spec"].get(name).is_some());
        let on_gateway = policies.iter().find(|p| targets(p, "Gateway", "http") && p["spec"].get(name).is_some());
        on_route.or(on_gateway).map(|p| p["spec"][name].clone())
    };
    let ext_authz_runs =
        field("extAuth").is_some_and(|e| e.get("disable").is_none() && e.get("extensionRef").is_some());
    let at = match ext_authz_runs {
        true => through_ext_authz(headers, sent.verified),
        false => AtRateLimit { headers, metadata: Vec::new() },
    };
    let Some(rate_limit) = field("rateLimit") else { return Vec::new() };
    let descriptors = rate_limit["global"]["descriptors"].as_array().expect("descriptors");
    descriptors
        .iter()
        .filter_map(|descriptor| {
            descriptor["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| match entry["type"].as_str().unwrap() {
                    "Header" => {
                        let name = entry["header"].as_str().unwrap();
                        header(&at.headers, name).map(|value| (name.to_string(), value.to_string()))
                    }
                    "RemoteAddress" => Some(("remote_address".into(), sample("remote_address"))),
                    "Path" => Some(("path".into(), sent.path.to_string())),
                    "Generic" => Some((
                        entry["generic"]["key"].as_str().unwrap().into(),
                        entry["generic"]["value"].as_str().unwrap().into(),
                    )),
                    other => panic!("kgateway entry type {other} not derived"),
                })
                .collect()
        })
        .collect()
}

#[test]
fn kgateway_limits_only_count_what_ext_authz_set() {
    let mut objects = render("kgateway");
    objects.push(kgateway_opt_out());
    let spoof: &[(&str, &str)] = &[("x-user-id", VICTIM)];
    // A route opted out of ext-authz: the Gateway's per-user limit still applies there, and
    // nothing may count the client's value.
    let opted_out =
        kgateway_descriptors(&objects, OPTED_OUT_ROUTE, &Sent { path: "/healthz", headers: spoof, verified: None });
    assert_no_client_value("kgateway", "an opted-out route", &opted_out);
    // A route ext-authz runs on counts the verified user.
    let app =
        kgateway_descriptors(&objects, "app", &Sent { path: "/orders/1", headers: spoof, verified: Some("alice") });
    assert_eq!(app, [vec![("x-user-id".to_string(), "alice".to_string())]]);
    assert_limited("kgateway", "gatehouse", &app[0]);

    // The model sees the hole the overlay had: without the ListenerPolicy's early removal, the
    // opted-out route counts the client's value.
    let without: Vec<Value> = objects.iter().filter(|o| o["kind"] != "ListenerPolicy").cloned().collect();
    let leaked =
        kgateway_descriptors(&without, OPTED_OUT_ROUTE, &Sent { path: "/healthz", headers: spoof, verified: None });
    assert_eq!(leaked, [vec![("x-user-id".to_string(), VICTIM.to_string())]]);
}
