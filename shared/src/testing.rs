//! Support for tests of every crate (and the end-to-end suite): free loopback ports, a real
//! `redis-server` of the test's own, the one way to wait for something ([`eventually`]) and the
//! one clock a test moves by hand ([`TestClock`]). Not used by the services.

mod clock;
#[cfg(feature = "test-util")]
mod http2;
mod otlp;
mod poll;
pub use clock::{TestClock, START};
#[cfg(feature = "test-util")]
pub use http2::{idle_http2_client, unfinished_call_http2_client, GOAWAY, HEADERS};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use poll::{eventually, eventually_blocking, eventually_some, poll, poll_blocking};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A loopback port free now, for a server a test starts next. See [`reserve_port`].
pub fn free_port() -> u16 {
    reserve_port().local_addr().expect("bound").port()
}

/// A loopback listener on a port below the kernel's ephemeral range, held until dropped.
///
/// A port the kernel hands out (`bind(:0)`) comes from the range it also takes the local ports
/// of outgoing connections from: once let go, any test's next connection may take it before the
/// server meant for it binds (a CI run lost Envoy's listener that way). Ports below the range
/// are never taken by connections; each process walks them from its own starting point, and
/// never hands one out twice.
pub fn reserve_port() -> TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|start| *start > LOWEST + 1_000)
        .unwrap_or(32_768);
    let span = ephemeral_start - LOWEST;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let port = LOWEST + NEXT.fetch_add(1, Ordering::Relaxed) % span;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return listener;
        }
    }
    TcpListener::bind("127.0.0.1:0").expect("a free loopback port")
}

/// Waits (polling, up to `within`) until something accepts connections on loopback `port`;
/// whether it did.
pub fn wait_until_listening(port: u16, within: Duration) -> bool {
    poll_blocking(within, || std::net::TcpStream::connect(("127.0.0.1", port)).ok()).is_some()
}

/// Reads `stream` until what arrived contains every one of `wants`; panics after `within` (or
/// when the peer closes first) with what did arrive. For line protocols (statsd).
pub async fn read_until(stream: &mut tokio::net::TcpStream, wants: &[&str], within: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = String::new();
    let mut buffer = [0u8; 4096];
    while !wants.iter().all(|want| received.contains(want)) {
        let read = tokio::time::timeout(within, stream.read(&mut buffer)).await;
        let n = read.unwrap_or_else(|_| panic!("waiting for {wants:?}; received:\n{received}")).unwrap();
        assert!(n > 0, "closed before {wants:?} arrived; received:\n{received}");
        received.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    received
}

/// Receives datagrams on `socket` until what arrived contains every one of `wants`; panics after
/// `within` with what did arrive.
pub async fn receive_until(socket: &tokio::net::UdpSocket, wants: &[&str], within: Duration) -> String {
    let mut received = String::new();
    let mut buffer = [0u8; 65536];
    while !wants.iter().all(|want| received.contains(want)) {
        let got = tokio::time::timeout(within, socket.recv(&mut buffer)).await;
        let n = got.unwrap_or_else(|_| panic!("waiting for {wants:?}; received:\n{received}")).unwrap();
        received.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    received
}

/// How a child process started: listening on its port, or exited first (its status).
#[derive(Debug)]
pub enum Started {
    Listening,
    Exited(std::process::ExitStatus),
    TimedOut,
}

/// Waits (polling, up to `within`) until `child` accepts connections on loopback `port`, or
/// exits. Free ports are free only until someone binds them: a caller whose child exited with
/// "Address already in use" starts it again on other ports.
pub fn wait_for_child(child: &mut Child, port: u16, within: Duration) -> Started {
    let started = poll_blocking(within, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Started::Exited(status));
        }
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        // Accepting — and still ours (not someone else on a port we lost).
        Some(match child.try_wait() {
            Ok(Some(status)) => Started::Exited(status),
            _ => Started::Listening,
        })
    });
    started.unwrap_or(Started::TimedOut)
}

/// A `redis-server` on a free loopback port, stopped when dropped. `stop` and `resume` keep the
/// port, so a service can be shown losing and regaining it.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    config_file: Option<PathBuf>,
    /// Arguments as given; `{port}` is filled in at each start.
    extra_args: Vec<String>,
    started_once: bool,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(None, &[])
    }

    /// Starts with a config file (sentinels need one) and extra arguments; `{port}` in an
    /// argument stands for the server's port.
    pub fn start_with(config: Option<&str>, extra_args: &[&str]) -> RedisServer {
        let port = free_port();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gatehouse-redis-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let config_file = config.map(|content| {
            let path = dir.join("redis.conf");
            std::fs::write(&path, content).expect("writing redis.conf");
            path
        });
        let extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        let mut server = RedisServer { port, child: None, dir, config_file, extra_args, started_once: false };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The running server's process id (for measuring its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts (again) on the same port and waits until it accepts connections. On the first
    /// start a port taken in the meantime (free ports are only free until someone binds them)
    /// makes it try another port.
    pub fn resume(&mut self) {
        let first_start = self.child.is_none() && !self.started_once;
        for _ in 0..20 {
            if self.try_start() {
                self.started_once = true;
                return;
            }
            if first_start {
                self.port = free_port();
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("redis-server did not start (last port {})", self.port);
    }

    /// One attempt: true once our own process accepts connections on `port`.
    fn try_start(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.config_file {
            command.arg(config);
        }
        let port = self.port.to_string();
        let extra_args: Vec<String> = self.extra_args.iter().map(|a| a.replace("{port}", &port)).collect();
        let mut child = command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            // Tests stall Redis with DEBUG SLEEP to hold a call in flight.
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/install-deps.sh installs it)");
        // Exited first: most likely the port was taken (someone else may be answering on it).
        match wait_for_child(&mut child, self.port, Duration::from_secs(3)) {
            Started::Listening => {
                self.child = Some(child);
                true
            }
            Started::Exited(_) => false,
            Started::TimedOut => {
                let _ = child.kill();
                let _ = child.wait();
                false
            }
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Redis hung, its data kept (SIGSTOP); [`RedisServer::thaw`] continues it.
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }
}

/// Sends `signal` (`STOP`, `CONT`) to a child process of a test.
fn signal(pid: Option<u32>, signal: &str) {
    let pid = pid.expect("the process is running");
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A knob of the test harness itself (`ENVOY_BIN`, `GATEHOUSE_NODE`, …), set by whoever runs
/// the tests; never a setting of the services, which come through [`crate::env::Env`].
#[allow(clippy::disallowed_methods)]
fn harness_setting(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The Node.js for the test OpenID Provider: `$GATEHOUSE_NODE`, else the Node 20 that
/// scripts/install-deps.sh put in `.tools/node` on a machine whose own is older, else `node`.
pub fn node_binary() -> PathBuf {
    if let Some(path) = harness_setting("GATEHOUSE_NODE") {
        return PathBuf::from(path);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/node/node_modules/.bin/node");
    if local.exists() {
        return local;
    }
    PathBuf::from("node")
}

/// What the test OpenID Provider (`tests/oidc-provider/server.mjs`, panva's `oidc-provider` on
/// Node) registers for its one client.
#[derive(Debug, Clone, Default)]
pub struct OidcClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    /// Access token lifetime in seconds (default 3600).
    pub access_token_ttl: Option<u64>,
    /// A second client, for the client-credentials grant: (id, secret). Its tokens for
    /// `https://partner-api.test` (the `resource`) are JWTs with that audience.
    pub service_client: Option<(String, String)>,
}

/// A real OpenID Provider on a free loopback port, stopped when dropped. `stop` and `resume`
/// keep the port (the provider forgets its sessions and grants; its signing keys are fixed).
pub struct OidcProvider {
    pub port: u16,
    client: OidcClient,
    child: Option<Child>,
}

impl OidcProvider {
    pub fn start(client: OidcClient) -> OidcProvider {
        let mut provider = OidcProvider { port: free_port(), client, child: None };
        for _ in 0..10 {
            if provider.try_start() {
                return provider;
            }
            provider.port = free_port();
        }
        panic!("the test OpenID Provider did not start");
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the provider's process without closing its port (SIGSTOP): connections are
    /// accepted by the kernel and never answered — a hung provider. [`OidcProvider::thaw`]
    /// continues it.
    pub fn freeze(&self) {
        signal(self.child.as_ref().map(Child::id), "STOP");
    }

    pub fn thaw(&self) {
        signal(self.child.as_ref().map(Child::id), "CONT");
    }

    pub fn resume(&mut self) {
        let port = self.port;
        // Until the port its old process held is free again.
        let restarted = poll_blocking(Duration::from_secs(5), || self.try_start().then_some(()));
        assert!(restarted.is_some(), "the test OpenID Provider did not restart on port {port}");
    }

    fn try_start(&mut self) -> bool {
        use std::io::BufRead;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{}/node_modules is missing: run scripts/install-deps.sh (npm ci)",
            dir.display()
        );
        let c = &self.client;
        let mut child = Command::new(node_binary())
            .arg(dir.join("server.mjs"))
            .env("OIDC_PORT", self.port.to_string())
            .env("OIDC_CLIENT_ID", &c.client_id)
            .env("OIDC_CLIENT_SECRET", &c.client_secret)
            .env("OIDC_REDIRECT_URIS", c.redirect_uris.join(","))
            .env("OIDC_POST_LOGOUT_REDIRECT_URIS", c.post_logout_redirect_uris.join(","))
            .env("OIDC_BACKCHANNEL_LOGOUT_URI", c.backchannel_logout_uri.clone().unwrap_or_default())
            .env("OIDC_ACCESS_TOKEN_TTL", c.access_token_ttl.unwrap_or(3600).to_string())
            .env("OIDC_SERVICE_CLIENT_ID", c.service_client.as_ref().map_or("", |(id, _)| id.as_str()))
            .env("OIDC_SERVICE_CLIENT_SECRET", c.service_client.as_ref().map_or("", |(_, secret)| secret.as_str()))
            // The provider exits when this pipe closes: with the test process, however it ends.
            .env("OIDC_EXIT_WITH_STDIN", "1")
            .stdin(Stdio::piped())
            // Node warns about versions and development defaults on stderr; tests read stdout.
            // GATEHOUSE_TEST_PROVIDER_LOGS=1 shows the provider's stderr when debugging.
            .stdout(Stdio::piped())
            .stderr(if harness_setting("GATEHOUSE_TEST_PROVIDER_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("node must be installed");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut first_line = String::new();
        let _ = reader.read_line(&mut first_line);
        // Keep draining, so a later write never meets a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        if first_line.contains("listening") {
            self.child = Some(child);
            true
        } else {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The workspace root (this crate lives in `shared/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("shared/ has a parent").to_path_buf()
}

/// Prometheus's `promtool`: `$PROMTOOL`, else the one scripts/install-deps.sh unpacked into
/// `.tools/prometheus`, else `promtool` on the PATH.
pub fn promtool_binary() -> PathBuf {
    if let Some(path) = harness_setting("PROMTOOL") {
        return PathBuf::from(path);
    }
    let unpacked = workspace_root().join(".tools/prometheus/usr/bin/promtool");
    if unpacked.exists() {
        unpacked
    } else {
        PathBuf::from("promtool")
    }
}

/// The Envoy binary: `$ENVOY_BIN`, else the one in `.venv` (scripts/install-deps.sh puts it there).
pub fn envoy_binary() -> PathBuf {
    if let Some(path) = harness_setting("ENVOY_BIN") {
        return PathBuf::from(path);
    }
    let lib = workspace_root().join(".venv/lib");
    std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no Envoy under {}: run scripts/install-deps.sh", lib.display()))
}

/// A real Envoy started from a config text, stopped when dropped.
///
/// Envoy sets `PR_SET_PDEATHSIG`: it dies when the *thread* that spawned it exits. Tests start
/// and stop it within one test, on the test's own thread, which is what that allows.
pub struct Envoy {
    child: Child,
    pub admin_port: u16,
    dir: PathBuf,
    pub log: PathBuf,
}

impl Envoy {
    /// Starts Envoy with `config` and waits until its admin endpoint (on `admin_port`) says LIVE.
    pub fn start(config: &str, admin_port: u16) -> Envoy {
        Envoy::try_start(config, admin_port).unwrap_or_else(|log| panic!("{log}"))
    }

    /// Starts Envoy on a listener port and an admin port found free, with the config `render`
    /// makes for them (`listen` fixed when given). A free port is only free until someone binds
    /// it — the tests' own outgoing connections take ports from the same range — so when Envoy
    /// finds one taken it starts again on new ports, up to 5 times. Returns Envoy and its
    /// listener port.
    pub fn start_on_free_ports(listen: Option<u16>, render: impl Fn(u16, u16) -> String) -> (Envoy, u16) {
        Envoy::try_start_on_free_ports(listen, render).unwrap_or_else(|log| panic!("{log}"))
    }

    /// [`Envoy::start_on_free_ports`], answering Envoy's log when it does not start. A fixed
    /// `listen` port that is taken is not tried again: it stays taken (the demo reports it).
    pub fn try_start_on_free_ports(
        listen: Option<u16>,
        render: impl Fn(u16, u16) -> String,
    ) -> Result<(Envoy, u16), String> {
        let fixed_port_taken =
            |log: &str, port: u16| listen.is_some() && log.contains(&format!(":{port}': Address already in use"));
        let mut attempts = 0;
        loop {
            let (port, admin_port) = (listen.unwrap_or_else(free_port), free_port());
            match Envoy::try_start(&render(port, admin_port), admin_port) {
                Ok(envoy) => return Ok((envoy, port)),
                Err(log) if log.contains("Address already in use") && !fixed_port_taken(&log, port) && attempts < 4 => {
                    attempts += 1
                }
                Err(log) => return Err(log),
            }
        }
    }

    /// [`Envoy::start`], answering Envoy's log when it exits before it is ready.
    pub fn try_start(config: &str, admin_port: u16) -> Result<Envoy, String> {
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gatehouse-envoy-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).expect("writing the Envoy config");
        let log = dir.join("envoy.log");
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config_path)
            .args(["--use-dynamic-base-id", "--log-level", "warn", "--concurrency", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("an Envoy log file"))
            .spawn()
            .expect("starting Envoy");
        let mut envoy = Envoy { child, admin_port, dir, log };
        let admin = format!("127.0.0.1:{admin_port}");
        let started = poll_blocking(Duration::from_secs(30), || match envoy.child.try_wait() {
            Ok(Some(status)) => Some(Some(status)),
            _ => crate::serve::probe(&admin, "/ready").is_ok().then_some(None),
        });
        match started.expect("Envoy not ready after 30 s") {
            None => Ok(envoy),
            Some(status) => {
                Err(format!("Envoy exited ({status}):\n{}", std::fs::read_to_string(&envoy.log).unwrap_or_default()))
            }
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Certificates for TLS tests, made with the `openssl` command.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed (the README's test command installs it)");
    assert!(status.success(), "openssl {args:?}");
}

/// A self-signed CA: `<name>.pem` and `<name>.key` in `dir`.
pub fn make_ca(dir: &std::path::Path, name: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem, "-days", "2", "-subj",
            &subject,
        ],
    );
}

/// A certificate `<name>.pem` / `<name>.key` signed by CA `ca`, valid for `san`
/// (e.g. `DNS:localhost,IP:127.0.0.1`).
pub fn make_cert(dir: &std::path::Path, ca: &str, name: &str, san: &str) {
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), format!("subjectAltName={san}\n")).unwrap();
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let subject = format!("/CN={name}");
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// Installs the certificate pair `<from>.pem` / `<from>.key` in `dir` as `<to>.pem` /
/// `<to>.key`: key first, then the certificate, each by rename, as a Secret update lands.
pub fn install_cert(dir: &std::path::Path, from: &str, to: &str) {
    for ext in ["key", "pem"] {
        let tmp = dir.join(format!("{to}.{ext}.tmp"));
        std::fs::copy(dir.join(format!("{from}.{ext}")), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(format!("{to}.{ext}"))).unwrap();
    }
}

/// A TLS client config for a test server named `localhost`: trusting `<ca>.pem` from `dir`, and
/// presenting `<identity>.pem` / `.key` when given.
pub fn client_tls(dir: &std::path::Path, ca: &str, identity: Option<&str>) -> tonic::transport::ClientTlsConfig {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |f: String| std::fs::read(dir.join(f)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(format!("{ca}.pem"))))
        .domain_name("localhost");
    match identity {
        Some(name) => tls.identity(Identity::from_pem(read(format!("{name}.pem")), read(format!("{name}.key")))),
        None => tls,
    }
}
