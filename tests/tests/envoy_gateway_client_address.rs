//! The client address Envoy Gateway's Envoy keys a `remote_address` limit on, for every
//! `ClientTrafficPolicy` the Envoy Gateway overlay ships (its kustomization and its README),
//! run in a real Envoy: a client-sent `X-Forwarded-For` must not become the client address.
//!
//! Envoy Gateway v1.9.0 renders a policy's `clientIPDetection` into the HTTP connection manager
//! (`internal/xds/translator/listener.go`): without one, `use_remote_address: true`; with
//! `xForwardedFor.numTrustedHops: N`, the XFF original IP detection extension with N−1 trusted
//! hops (0 for 0) and `use_remote_address: false`. The last case is why `numTrustedHops: 0`,
//! which reads like "trust no hop", lets the client name its own address (the planted check).

use std::io::{Read, Write};
use std::net::TcpStream;

use e2e::envoy::{workspace_root, Envoy};
use e2e::yaml::to_json;
use serde_json::Value;
use yaml_rust2::YamlLoader;

/// The address a client claims in `X-Forwarded-For`.
const CLAIMED: &str = "203.0.113.66";

/// Every `ClientTrafficPolicy` the overlay applies or its README shows, named by where it is.
fn shipped_policies() -> Vec<(String, Value)> {
    let overlay = workspace_root().join("k8s/overlays/envoy-gateway");
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&overlay)
        .output()
        .expect("kubectl (see static_configs.rs for how to get it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rendered = String::from_utf8(output.stdout).unwrap();
    let readme = std::fs::read_to_string(overlay.join("README.md")).unwrap();
    let blocks = readme.split("```yaml\n").skip(1).filter_map(|rest| rest.split("```").next());
    let sources = std::iter::once(("kubectl kustomize".to_string(), rendered.as_str()))
        .chain(blocks.map(|block| ("README.md".to_string(), block)));
    let mut policies = Vec::new();
    for (source, text) in sources {
        for document in YamlLoader::load_from_str(text).unwrap().iter().map(to_json) {
            if document["kind"] == "ClientTrafficPolicy" {
                policies.push((format!("{source}: {}", document["metadata"]["name"]), document));
            }
        }
    }
    policies
}

/// The connection manager fields Envoy Gateway v1.9.0 renders for a `clientIPDetection`
/// (`originalIPDetectionExtensions`, `xffNumTrustedHops`, and `useRemoteAddress` false as soon
/// as there is an extension). Only what the overlay could use is modelled.
fn rendered_client_detection(detection: &Value) -> String {
    let Some(detection) = detection.as_object() else { return "use_remote_address: true".into() };
    assert!(detection.keys().all(|k| k == "xForwardedFor"), "not modelled: {detection:?}");
    let xff = &detection["xForwardedFor"];
    assert!(xff.get("trustedCIDRs").is_none(), "not modelled: {xff}");
    let hops = xff["numTrustedHops"].as_u64().expect("numTrustedHops");
    format!(
        r#"use_remote_address: false
          original_ip_detection_extensions:
          - name: envoy.extensions.http.original_ip_detection.xff
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig
              xff_num_trusted_hops: {}"#,
        hops.saturating_sub(1)
    )
}

/// An Envoy whose connection manager has `detection` and answers every request with the client
/// address it settled on, in `x-client`.
fn envoy_config(detection: &str, port: u16, admin_port: u16) -> String {
    format!(
        r#"admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}
static_resources:
  listeners:
  - name: gateway
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    enable_reuse_port: false
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          {detection}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                direct_response: {{status: 200}}
                response_headers_to_add:
                - header: {{key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
    )
}

/// The client address the Envoy with `detection` settles on for a request claiming `CLAIMED`.
fn client_address(detection: &str) -> String {
    let (_envoy, port) = Envoy::start_on_free_ports(None, |port, admin| envoy_config(detection, port, admin));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: gateway\r\nX-Forwarded-For: {CLAIMED}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let header = response.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-client").then(|| value.trim().to_string())
    });
    header.unwrap_or_else(|| panic!("no x-client in {response}"))
}

#[test]
fn a_claimed_forwarded_for_never_becomes_the_client_address() {
    let policies = shipped_policies();
    assert!(policies.len() >= 2, "the overlay's policy and the README's: {policies:?}");
    for (name, policy) in &policies {
        let detection = rendered_client_detection(&policy["spec"]["clientIPDetection"]);
        assert_eq!(client_address(&detection), "127.0.0.1", "{name}: {detection}");
    }
    // `numTrustedHops: 0`, which the overlay had, renders as one trusted hop: the client's claim.
    let planted = rendered_client_detection(&serde_json::json!({"xForwardedFor": {"numTrustedHops": 0}}));
    assert_eq!(client_address(&planted), CLAIMED);
}
