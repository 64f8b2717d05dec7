//! Cost at every load: the CPU each service spends per request, read from `/proc` for the
//! service running as a process of its own (the release binary, as it is deployed), saturated
//! by closed-loop callers and at a moderate fixed rate. A service that is cheap only when busy
//! (threads parking and waking per request, writes nobody coalesces) shows it here.
//!
//! Variants run the same way: the runtime's worker threads, the allocator (binaries built with
//! `--no-default-features`, the system's malloc, found beside the released ones with a
//! `-system-malloc` suffix), the features, and for the do-nothing floors the HTTP/2 flow-control
//! settings — so each choice is a measured one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::load::{LoadResult, Pace, Until};
use crate::proc_cpu;
use crate::scenarios::{authz_load_on, channel_with, rls_load_on, values, Shape};
use crate::targets::{api_key, HMAC_SECRET, RSA_KEY};
use tonic::transport::ClientTlsConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// ratelimit, memory backend, one hot key.
    RateLimit,
    /// ext-authz, an API key (default answer: identity headers, removals, dynamic metadata).
    ExtAuthz,
    /// The do-nothing RLS, in a process of its own.
    FloorRls,
    /// The do-nothing ext_authz, in a process of its own.
    FloorAuthz,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::RateLimit => "ratelimit, memory, one hot key",
            Service::ExtAuthz => "ext-authz, API key",
            Service::FloorRls => "do-nothing RLS",
            Service::FloorAuthz => "do-nothing ext_authz",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Service::RateLimit => "ratelimit",
            Service::ExtAuthz => "ext-authz",
            Service::FloorRls | Service::FloorAuthz => "bench",
        }
    }

    async fn load(self, addr: SocketAddr, tls: Option<&ClientTlsConfig>, pace: Pace) -> LoadResult {
        let channel = channel_with(addr, tls).await;
        match self {
            Service::RateLimit | Service::FloorRls => {
                rls_load_on(channel, pace, "client", values(["hot".into()]), 1).await
            }
            Service::ExtAuthz | Service::FloorAuthz => {
                authz_load_on(channel, pace, "x-api-key", values([api_key(5)])).await
            }
        }
    }
}

/// One way of running a service: a binary suffix (allocator), environment (runtime, ratelimit
/// features), ext-authz config sections (features), for the floors HTTP/2 settings, and whether
/// spans go to an OTLP receiver (a process of its own; its endpoint in
/// `OTEL_EXPORTER_OTLP_ENDPOINT`).
#[derive(Debug, Clone, Default)]
pub struct Variant {
    pub label: &'static str,
    pub suffix: &'static str,
    pub env: Vec<(&'static str, &'static str)>,
    pub floor_http2: Option<&'static str>,
    pub ext_authz_yaml: &'static str,
    pub otlp_receiver: bool,
    /// The service's gRPC port over mutual TLS (a CA, a server and a client certificate made
    /// for the run); the load generator presents the client certificate.
    pub mtls: bool,
}

impl Variant {
    pub fn new(label: &'static str) -> Variant {
        Variant { label, ..Variant::default() }
    }

    pub fn binary_suffix(mut self, suffix: &'static str) -> Variant {
        self.suffix = suffix;
        self
    }

    pub fn env(mut self, env: &[(&'static str, &'static str)]) -> Variant {
        self.env = env.to_vec();
        self
    }

    pub fn floor_http2(mut self, setting: &'static str) -> Variant {
        self.floor_http2 = Some(setting);
        self
    }

    pub fn ext_authz_yaml(mut self, yaml: &'static str) -> Variant {
        self.ext_authz_yaml = yaml;
        self
    }

    pub fn with_otlp_receiver(mut self) -> Variant {
        self.otlp_receiver = true;
        self
    }

    pub fn with_mtls(mut self) -> Variant {
        self.mtls = true;
        self
    }
}

/// A service process, killed (by its PID) when dropped, with the OTLP receiver it exports to.
struct Process {
    child: Child,
    addr: SocketAddr,
    /// The client side of the variant's mutual TLS.
    tls: Option<ClientTlsConfig>,
    _dir: tempfile::TempDir,
    _receiver: Option<crate::otlp_sink::Receiver>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A binary built beside the bench's own (`cargo build --release -p ratelimit -p ext-authz`).
fn sibling(name: &str) -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.with_file_name(name);
    path.exists().then_some(path)
}

fn start(service: Service, variant: &Variant) -> Option<Process> {
    let binary = sibling(&format!("{}{}", service.binary(), variant.suffix))?;
    let dir = tempfile::tempdir().expect("a scratch directory");
    let port = shared::testing::free_port();
    let tls = variant.mtls.then(|| {
        shared::testing::make_ca(dir.path(), "ca");
        shared::testing::make_cert(dir.path(), "ca", "server", "DNS:localhost,IP:127.0.0.1");
        shared::testing::make_cert(dir.path(), "ca", "client", "DNS:envoy");
        shared::testing::client_tls(dir.path(), "ca", Some("client"))
    });
    let file = |name: &str| dir.path().join(name).display().to_string();
    let mut command = Command::new(binary);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    match service {
        Service::RateLimit => {
            std::fs::create_dir_all(dir.path().join("ratelimit/config")).expect("a config directory");
            std::fs::write(dir.path().join("ratelimit/config/bench.yaml"), crate::targets::ratelimit_config(10))
                .expect("the config");
            command.envs(ratelimit::settings::loopback_env(dir.path()));
            command.envs([
                ("GRPC_PORT", port.to_string()),
                ("BACKEND_TYPE", "memory".into()),
                ("LOG_LEVEL", "error".into()),
            ]);
            if variant.mtls {
                command.envs([
                    ("GRPC_SERVER_USE_TLS", "true".to_string()),
                    ("GRPC_SERVER_TLS_CERT", file("server.pem")),
                    ("GRPC_SERVER_TLS_KEY", file("server.key")),
                    ("GRPC_CLIENT_TLS_CACERT", file("ca.pem")),
                ]);
            }
        }
        Service::ExtAuthz => {
            let key = ext_authz::core::apikeys::hash_key(&api_key(5));
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let keys =
                format!(r#"{{"keys": [{{"hash": "sha256:{hex}", "client_id": "client-5", "scopes": ["read"]}}]}}"#);
            std::fs::write(dir.path().join("keys.json"), keys).expect("the key file");
            let signing = ext_authz::testing::SigningKey::rsa("rs", jsonwebtoken::Algorithm::RS256, RSA_KEY);
            std::fs::write(dir.path().join("jwks.json"), ext_authz::testing::jwks(&[&signing])).expect("the JWKS");
            let grpc_tls = if variant.mtls {
                ", grpc_tls: {cert_file: server.pem, key_file: server.key, client_ca_file: ca.pem}"
            } else {
                ""
            };
            let config = format!(
                r#"
server: {{grpc_addr: "127.0.0.1:{port}", http_addr: "127.0.0.1:0"{grpc_tls}}}
log: {{level: error}}
jwt_providers:
  - {{name: bench, issuer: bench, algorithms: [RS256], keys: {{jwks_file: jwks.json}}}}
  - {{name: hs, issuer: hs, algorithms: [HS256], keys: {{hmac_secret_env: BENCH_HMAC}}}}
api_keys: {{file: keys.json}}
routes:
  default: authenticated
{extra}"#,
                extra = variant.ext_authz_yaml
            );
            std::fs::write(dir.path().join("ext-authz.yaml"), config + "...\n").expect("the config");
            command.arg("--config").arg(dir.path().join("ext-authz.yaml")).env("BENCH_HMAC", HMAC_SECRET);
        }
        Service::FloorRls | Service::FloorAuthz => {
            command.args(["serve-floor", &port.to_string()]).args(variant.floor_http2);
        }
    }
    command.envs(variant.env.iter().copied());
    let receiver = variant.otlp_receiver.then(|| crate::otlp_sink::start_receiver().expect("the OTLP receiver"));
    if let Some(receiver) = &receiver {
        command.env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint);
    }
    let child = command.spawn().expect("starting the service");
    let process =
        Process { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), tls, _dir: dir, _receiver: receiver };
    assert!(
        shared::testing::wait_until_listening(port, Duration::from_secs(30)),
        "{} ({}) did not listen",
        service.name(),
        variant.label
    );
    Some(process)
}

/// CPU per request of one service variant, saturated and at the fixed rate, over `runs` pairs.
pub struct CostRow {
    pub name: String,
    /// (requests a second, CPU µs per request, errors) per run.
    pub saturated: Vec<(f64, f64, u64)>,
    pub moderate: Vec<(f64, f64, u64)>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

impl CostRow {
    pub fn saturated_cpu(&self) -> f64 {
        median(self.saturated.iter().map(|r| r.1).collect())
    }

    pub fn moderate_cpu(&self) -> f64 {
        median(self.moderate.iter().map(|r| r.1).collect())
    }

    pub fn markdown(&self) -> String {
        let rps = |runs: &[(f64, f64, u64)]| median(runs.iter().map(|r| r.0).collect());
        let range = |runs: &[(f64, f64, u64)]| {
            let cpu: Vec<f64> = runs.iter().map(|r| r.1).collect();
            let (lo, hi) = (cpu.iter().copied().fold(f64::MAX, f64::min), cpu.iter().copied().fold(0.0, f64::max));
            format!("{lo:.1}–{hi:.1}")
        };
        let errors: u64 = self.saturated.iter().chain(&self.moderate).map(|r| r.2).sum();
        format!(
            "| {} | {:.0} | {:.1} µs ({}) | {:.0} | {:.1} µs ({}) | {:.2}× | {} |",
            self.name,
            rps(&self.saturated),
            self.saturated_cpu(),
            range(&self.saturated),
            rps(&self.moderate),
            self.moderate_cpu(),
            range(&self.moderate),
            self.moderate_cpu() / self.saturated_cpu(),
            errors
        )
    }
}

pub const HEADER: &str = "| service, variant | saturated req/s | CPU / request saturated (range) | fixed-rate req/s | CPU / request at the fixed rate (range) | fixed-rate ÷ saturated | errors |\n|---|---|---|---|---|---|---|\n";

/// [`row`] when `only` is empty or the row's name holds one of its comma-separated parts.
pub async fn row_if(service: Service, variant: &Variant, shape: Shape, rate: u64, only: &str) -> Option<CostRow> {
    let name = format!("{}, {}", service.name(), variant.label);
    if !only.split(',').any(|part| name.contains(part)) {
        return None;
    }
    row(service, variant, shape, rate).await
}

/// Runs `service` as `variant`: a warm-up, then `runs` times a saturated run and a fixed-rate
/// run of `shape.seconds` each. `None` when its binary was not built.
pub async fn row(service: Service, variant: &Variant, shape: Shape, rate: u64) -> Option<CostRow> {
    let Some(process) = start(service, variant) else {
        eprintln!("{} ({}): binary not built, skipped", service.name(), variant.label);
        return None;
    };
    eprintln!("measuring the cost of {} ({})…", service.name(), variant.label);
    let pid = process.child.id();
    let seconds = Duration::from_secs(shape.seconds);
    let saturated = Pace::Closed { concurrency: shape.concurrency, until: Until::Elapsed(seconds) };
    let moderate = Pace::Rate { per_second: rate, duration: seconds, max_in_flight: shape.concurrency * 16 };
    // Warm-up, until the service answers as expected (ext-authz loads its keys after it listens).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let probe = service
            .load(process.addr, process.tls.as_ref(), Pace::Closed { concurrency: 1, until: Until::Requests(10) })
            .await;
        if probe.errors == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} never answered as expected", service.name());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = service
        .load(
            process.addr,
            process.tls.as_ref(),
            Pace::Closed { concurrency: shape.concurrency, until: Until::Elapsed(Duration::from_secs(1)) },
        )
        .await;
    let mut row =
        CostRow { name: format!("{}, {}", service.name(), variant.label), saturated: vec![], moderate: vec![] };
    for _ in 0..shape.runs {
        for (pace, into) in [(saturated, &mut row.saturated), (moderate, &mut row.moderate)] {
            let before = proc_cpu::seconds(pid);
            let run = service.load(process.addr, process.tls.as_ref(), pace).await;
            let used = proc_cpu::seconds(pid) - before;
            into.push((run.rps(), used / run.requests.max(1) as f64 * 1e6, run.errors));
        }
    }
    Some(row)
}
