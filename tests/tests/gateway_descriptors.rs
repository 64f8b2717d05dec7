//! For every rate limit policy in `k8s/`, the descriptors the gateway really sends — derived with
//! the gateway's own translation rules (kgateway: a header entry's descriptor key is the header
//! name; Envoy actions as Istio passes them through) — and proof that the ratelimit config the
//! base deploys has a limit for each. A policy whose keys never match the config (the kgateway
//! `x-user-id` vs `user_id` mismatch) fails here.
//!
//! Envoy Gateway is not here: its BackendTrafficPolicy is evaluated by the rate limit service
//! Envoy Gateway deploys with the config it generates itself (k8s/overlays/envoy-gateway).

use std::process::Command;

use e2e::envoy::workspace_root;
use ratelimit::core::config::{ConfigSource, RateLimitConfig};
use ratelimit::core::request::Entry;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().map(str::to_owned).unwrap_or_else(|| format!("{k:?}")), to_json(v)))
                .collect(),
        ),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// The objects `kubectl kustomize` renders for an overlay.
fn render(overlay: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(workspace_root().join("k8s/overlays").join(overlay))
        .output()
        .expect("kubectl (see static_configs.rs for how to get it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    YamlLoader::load_from_str(&String::from_utf8(output.stdout).unwrap()).unwrap().iter().map(to_json).collect()
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

/// kgateway (pkg/kgateway/extensions2/plugins/trafficpolicy/rate_limit_descriptors.go): Header →
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

/// Istio passes the EnvoyFilter's route `rate_limits` to Envoy as written; the domain is the one
/// of the rate limit filter the other EnvoyFilter inserts.
#[test]
fn istio_envoy_filters_send_descriptors_the_config_limits() {
    let objects = render("istio");
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
