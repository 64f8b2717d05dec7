//! The image as Envoy Gateway runs it for its rate limit deployment (envoyproxy/gateway
//! `internal/infrastructure/kubernetes/ratelimit/resource.go`): the binary at `bin/ratelimit`
//! started with no arguments and exactly the environment Envoy Gateway sets, certificates laid out
//! as its `/certs` Secret (RSA 2048, PKCS#1 keys, no extended key usage, DNS names only), limits
//! from an xDS server with Envoy Gateway's shape and TLS (client certificate required), Redis as
//! the backend — and a real Envoy calling it the way Envoy Gateway's rate limit cluster does
//! (HTTP/2 over TLS with its own client certificate), getting 200s then 429s.
//!
//! What differs from a cluster, and why: paths live under a scratch directory instead of `/`
//! (`/certs`, `/data`), host names are `localhost` (the certificates also carry Envoy Gateway's
//! service names), and the listening ports are free ones instead of 8080/8081/19001 — nothing
//! else in the environment is changed.

mod support;

use std::path::Path;
use std::process::Command;

use envoy_types::pb::ratelimit::config::ratelimit::v3 as rl;
use shared::testing::{free_port, Envoy, RedisServer};
use support::ads::AdsHarness;
use support::process::{Process, BIN};

/// The listener's name is Envoy Gateway's rate limit domain.
const DOMAIN: &str = "default/eg/http";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Envoy Gateway's certgen: a CA, then RSA 2048 certificates with DNS subject alternative names
/// only, no extended key usage, and the keys in PKCS#1 (`BEGIN RSA PRIVATE KEY`).
fn eg_certificates(dir: &Path) {
    openssl(dir, &["genrsa", "-traditional", "-out", "ca.key", "2048"]);
    openssl(
        dir,
        &["req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=envoy-gateway"],
    );
    for (name, dns) in [
        ("envoy-gateway", "envoy-gateway,envoy-gateway.envoy-gateway-system,localhost"),
        (
            "envoy-rate-limit",
            "envoy-ratelimit,envoy-ratelimit.envoy-gateway-system,envoy-ratelimit.envoy-gateway-system.svc,localhost",
        ),
        ("envoy", "envoy,localhost"),
    ] {
        let san: Vec<String> = dns.split(',').map(|d| format!("DNS:{d}")).collect();
        std::fs::write(dir.join(format!("{name}.ext")), format!("subjectAltName={}\n", san.join(","))).unwrap();
        openssl(dir, &["genrsa", "-traditional", "-out", &format!("{name}.key"), "2048"]);
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        let key = std::fs::read_to_string(dir.join(format!("{name}.key"))).unwrap();
        assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "PKCS#1, as Envoy Gateway writes them");
    }
}

/// One route's limit as Envoy Gateway translates a BackendTrafficPolicy rule with a `Distinct`
/// header selector: the route descriptor, then `rule-0-match-0` with the limit.
fn route_limit(route: &str, requests_per_unit: u32, shadow_mode: bool) -> rl::RateLimitDescriptor {
    rl::RateLimitDescriptor {
        key: route.into(),
        value: route.into(),
        descriptors: vec![rl::RateLimitDescriptor {
            key: "rule-0-match-0".into(),
            rate_limit: Some(rl::RateLimitPolicy {
                unit: rl::RateLimitUnit::Hour as i32,
                requests_per_unit,
                ..Default::default()
            }),
            shadow_mode,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Envoy with routes as Envoy Gateway builds them (a generic_key route descriptor, then the
/// header selector; `hits_addend` for a rule's cost) and its rate limit cluster: HTTP/2 over TLS
/// with the `envoy` client certificate, trusting Envoy Gateway's CA. The routes' upstream is a
/// second listener of the same Envoy that answers 200.
fn envoy_config(listen: u16, backend: u16, admin: u16, ratelimit_grpc: u16, certs: &Path) -> String {
    // The rate limits in the route's `typed_per_filter_config` for the rate limit filter
    // (RateLimitPerRoute): the only place Envoy honours a rate limit's `hits_addend`, which is
    // how Envoy Gateway expresses a rule's cost.
    let route = |prefix: &str, name: &str, cost: Option<u32>| {
        let hits = cost
            .map(|n| format!("\n                                  hits_addend: {{number: {n}}}"))
            .unwrap_or_default();
        format!(
            r#"
                        - match: {{prefix: "{prefix}"}}
                          route: {{cluster: backend}}
                          typed_per_filter_config:
                            envoy.filters.http.ratelimit:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute
                              rate_limits:
                                - actions:
                                    - generic_key: {{descriptor_key: "{name}", descriptor_value: "{name}"}}
                                    - request_headers: {{header_name: x-user-id, descriptor_key: rule-0-match-0}}{hits}"#
        )
    };
    let routes = [
        route("/limited", "httproute/default/app/rule/0", None),
        route("/shadow", "httproute/default/app/rule/1", None),
        route("/cost", "httproute/default/app/rule/2", Some(2)),
    ]
    .concat();
    let path = |f: &str| certs.join(f).display().to_string();
    format!(
        r#"
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
    - name: "{DOMAIN}"
      address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: eg
                route_config:
                  virtual_hosts:
                    - name: app
                      domains: ["*"]
                      routes:{routes}
                http_filters:
                  - name: envoy.filters.http.ratelimit
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
                      domain: "{DOMAIN}"
                      enable_x_ratelimit_headers: DRAFT_VERSION_03
                      timeout: 2s
                      rate_limit_service:
                        transport_api_version: V3
                        grpc_service: {{envoy_grpc: {{cluster_name: ratelimit_cluster}}}}
                  - name: envoy.filters.http.router
                    typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
    - name: backend
      address: {{socket_address: {{address: 127.0.0.1, port_value: {backend}}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: backend
                route_config:
                  virtual_hosts:
                    - name: backend
                      domains: ["*"]
                      routes: [{{match: {{prefix: "/"}}, direct_response: {{status: 200, body: {{inline_string: "ok"}}}}}}]
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
    - name: backend
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: backend
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend}}}}}}}}}]}}]
    - name: ratelimit_cluster
      type: STRICT_DNS
      # localhost must be 127.0.0.1 here, where the service listens (a cluster's DNS answers v4).
      dns_lookup_family: V4_ONLY
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {{http2_protocol_options: {{}}}}
      load_assignment:
        cluster_name: ratelimit_cluster
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: localhost, port_value: {ratelimit_grpc}}}}}}}}}]}}]
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: envoy-ratelimit.envoy-gateway-system.svc
          common_tls_context:
            tls_certificates:
              - certificate_chain: {{filename: "{envoy_crt}"}}
                private_key: {{filename: "{envoy_key}"}}
            validation_context:
              trusted_ca: {{filename: "{ca}"}}
              match_typed_subject_alt_names:
                - san_type: DNS
                  matcher: {{exact: envoy-ratelimit.envoy-gateway-system.svc}}
"#,
        envoy_crt = path("envoy.crt"),
        envoy_key = path("envoy.key"),
        ca = path("ca.crt"),
    )
}

/// One HTTP/1.1 GET on loopback (with `x-user-id` when given): the status and the body.
fn get(port: u16, path: &str, user: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    let user = user.map(|u| format!("x-user-id: {u}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: app\r\n{user}Connection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_string()))
}

fn status(port: u16, path: &str, user: &str) -> u16 {
    get(port, path, Some(user)).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_as_envoy_gateways_rate_limit_deployment() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    // The image's layout: the binary at bin/ratelimit (Envoy Gateway's command, no arguments).
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(BIN, root.join("bin/ratelimit")).unwrap();
    // Its Secret mounted at /certs: tls.crt, tls.key (the envoy-rate-limit certificate) and ca.crt.
    let work = root.join("certgen");
    std::fs::create_dir_all(&work).unwrap();
    eg_certificates(&work);
    let certs = root.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for (from, to) in [("envoy-rate-limit.crt", "tls.crt"), ("envoy-rate-limit.key", "tls.key"), ("ca.crt", "ca.crt")] {
        std::fs::copy(work.join(from), certs.join(to)).unwrap();
    }
    std::fs::create_dir_all(root.join("data/ratelimit")).unwrap();

    // Envoy Gateway's xDS server: mutual TLS, its own certificate, the CA for clients.
    let read = |f: &str| std::fs::read(work.join(f)).unwrap();
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(read("envoy-gateway.crt"), read("envoy-gateway.key")))
        .client_ca_root(tonic::transport::Certificate::from_pem(read("ca.crt")));
    let ads = AdsHarness::start(Some(tls)).await;
    ads.push(
        "1",
        vec![rl::RateLimitConfig {
            name: DOMAIN.into(),
            domain: DOMAIN.into(),
            descriptors: vec![
                route_limit("httproute/default/app/rule/0", 2, false),
                route_limit("httproute/default/app/rule/1", 1, true),
                route_limit("httproute/default/app/rule/2", 3, false),
            ],
        }],
    );
    let redis = RedisServer::start();

    let path = |f: &str| root.join(f).display().to_string();
    let prometheus = format!(":{}", free_port());
    let xds_url = format!("localhost:{}", ads.port);
    // Exactly what Envoy Gateway sets (resource.go), paths under the scratch root.
    let env: Vec<(&str, String)> = vec![
        ("RUNTIME_ROOT", path("data")),
        ("RUNTIME_SUBDIRECTORY", "ratelimit".into()),
        ("RUNTIME_IGNOREDOTFILES", "true".into()),
        ("RUNTIME_WATCH_ROOT", "false".into()),
        ("LOG_LEVEL", "info".into()),
        ("USE_STATSD", "false".into()),
        ("CONFIG_TYPE", "GRPC_XDS_SOTW".into()),
        ("CONFIG_GRPC_XDS_SERVER_URL", xds_url),
        ("CONFIG_GRPC_XDS_NODE_ID", "envoy-ratelimit".into()),
        ("CONFIG_GRPC_XDS_SERVER_USE_TLS", "true".into()),
        ("CONFIG_GRPC_XDS_CLIENT_TLS_CERT", path("certs/tls.crt")),
        ("CONFIG_GRPC_XDS_CLIENT_TLS_KEY", path("certs/tls.key")),
        ("CONFIG_GRPC_XDS_SERVER_TLS_CACERT", path("certs/ca.crt")),
        ("GRPC_SERVER_USE_TLS", "true".into()),
        ("GRPC_SERVER_TLS_CERT", path("certs/tls.crt")),
        ("GRPC_SERVER_TLS_KEY", path("certs/tls.key")),
        ("GRPC_SERVER_TLS_CA_CERT", path("certs/ca.crt")),
        ("FORCE_START_WITHOUT_INITIAL_CONFIG", "true".into()),
        ("REDIS_SOCKET_TYPE", "tcp".into()),
        ("REDIS_URL", redis.url()),
        ("USE_PROMETHEUS", "true".into()),
        ("PROMETHEUS_ADDR", prometheus.clone()),
        ("PROMETHEUS_MAPPER_YAML", "mappings: []\n".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let service = Process::start_binary(&root.join("bin/ratelimit"), &env, None);
    // It subscribed as Envoy Gateway's node and loaded the pushed limits.
    let (_, first) = ads.next_request().await;
    assert_eq!(first.node.as_ref().map(|n| n.id.as_str()), Some("envoy-ratelimit"));
    let (_, ack) = ads.next_request().await;
    assert_eq!(ack.version_info, "1", "the snapshot was accepted: {:?}\n{}", ack.error_detail, service.stderr());

    let backend = free_port();
    let (envoy, listen) =
        Envoy::start_on_free_ports(None, |listen, admin| envoy_config(listen, backend, admin, service.grpc, &work));
    let admin = envoy.admin_port;
    // Per user, 2 an hour: 200, 200, then 429; another user is counted apart.
    let limited: Vec<u16> = (0..3).map(|_| status(listen, "/limited", "alice")).collect();
    let stats = || {
        get(admin, "/stats", None)
            .1
            .lines()
            .filter(|l| l.contains("ratelimit") && !l.ends_with(": 0"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(limited, [200, 200, 429], "{}\n{}", service.stderr(), stats());
    assert_eq!(status(listen, "/limited", "bob"), 200);
    // Shadow mode: counted, never refused.
    let shadow: Vec<u16> = (0..3).map(|_| status(listen, "/shadow", "alice")).collect();
    assert_eq!(shadow, [200, 200, 200]);
    // A rule's cost (hits_addend 2) against 3 an hour: the second request is over.
    let cost: Vec<u16> = (0..2).map(|_| status(listen, "/cost", "alice")).collect();
    assert_eq!(cost, [200, 429], "{}", stats());
    // Envoy Gateway's dashboards read these series from PROMETHEUS_ADDR.
    let metrics_port: u16 = prometheus.trim_start_matches(':').parse().unwrap();
    let metrics = get(metrics_port, "/metrics", None).1;
    for series in [
        "ratelimit_service_rate_limit_total_hits",
        "ratelimit_service_rate_limit_over_limit",
        "ratelimit_service_rate_limit_shadow_mode",
    ] {
        assert!(metrics.contains(&format!("{series}{{domain=\"{DOMAIN}\"")), "{series} missing");
    }
}
