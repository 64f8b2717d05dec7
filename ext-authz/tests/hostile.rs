//! Hostile files, requests and providers against the real `ext-authz` binary: each test
//! reproduces a finding of the hardening review, so none can come back.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use serde_json::json;
use support::process::*;
use support::*;

/// About 10^10 nodes once expanded, from under 600 bytes.
fn alias_bomb() -> String {
    let mut yaml =
        String::from("routes: {default: deny}\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        yaml.push_str(&format!("x{i}: &x{i} [{}]\n", vec![format!("*x{}", i - 1); 10].join(", ")));
    }
    yaml + "...\n"
}

/// One 768 KiB string anchored once and aliased 20,000 times: an 827 KiB file (a ConfigMap
/// holds 1 MiB) of few nodes that expands to 15 GiB.
fn string_bomb() -> String {
    format!("routes: {{default: deny}}\ns: &s {}\nx:\n{}...\n", "x".repeat(768 << 10), "- *s\n".repeat(20_000))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The binary on the shared test config (pointed at `idp`), with its API key file.
fn start(idp: &JwksServer, dir: &std::path::Path) -> AuthzProcess {
    start_with(idp, dir, |config| config)
}

/// The same with the config edited by `edit`.
fn start_with(idp: &JwksServer, dir: &std::path::Path, edit: impl Fn(String) -> String) -> AuthzProcess {
    std::fs::write(dir.join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])])).unwrap();
    let config = edit(config_yaml(&idp.url, ""));
    AuthzProcess::start(&dir.join("ext-authz.yaml"), &config, &[("JOBS_SECRET", HMAC_SECRET)])
}

async fn wait_ready(p: &AuthzProcess) {
    let ready = shared::testing::poll(Duration::from_secs(10), async || {
        (http(p.http_addr(), "GET", "/readyz", &[]).await.0 == 200).then_some(())
    });
    assert!(ready.await.is_some(), "not ready:\n{}", p.stderr());
}

/// HTTP-mode status for `target` with an API key.
async fn with_key(p: &AuthzProcess, target: &str) -> u16 {
    http(p.http_addr(), "GET", &format!("/authz{target}"), &[("x-api-key", API_KEY)]).await.0
}

#[test]
fn validate_refuses_alias_bombs_and_empty_or_cut_short_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, expected) in [
        ("bomb.yaml", alias_bomb(), "yaml: line 6: aliases expand to more than 100000 nodes"),
        ("strings.yaml", string_bomb(), "yaml: line 9: aliases expand to more than 4194304 bytes of text"),
        ("empty.yaml", String::new(), "the file is empty"),
        ("cut.yaml", "jwt_providers: []\napi_keys: {file: k.yaml}\n".into(), "the file does not end with `...`"),
        ("unfinished.yaml", "jwt_providers: []\napi_keys: {file: k.yaml}\n...\n".into(), "routes: missing"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let output = output_within(Command::new(BIN).arg("validate").arg(&path), Duration::from_secs(30));
        assert_eq!(output.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("{name}: ")) && stderr.contains(expected), "{name}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_service_keeps_its_config_through_bad_and_half_written_files() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(&idp, dir.path());
    wait_ready(&p).await;
    assert_eq!(with_key(&p, "/orders/1").await, 200);
    let config_file = dir.path().join("ext-authz.yaml");
    let good = std::fs::read_to_string(&config_file).unwrap();

    // Bad files dropped in place: each refused and counted, the service answers as before.
    let bad_files = [
        alias_bomb(),
        string_bomb(),
        String::new(),
        good[..good.find("routes:").unwrap()].to_string(),
        good[..good.find("scopes:").unwrap()].to_string(),
    ];
    for (refused, bad) in bad_files.iter().enumerate() {
        std::fs::write(&config_file, bad).unwrap();
        let counted = format!(r#"ext_authz_reloads_total{{result="error",what="config"}} {}"#, refused + 1);
        shared::testing::eventually(&format!("bad file {} refused", refused + 1), Duration::from_secs(10), || async {
            assert_eq!(with_key(&p, "/orders/1").await, 200, "answers as before meanwhile");
            http(p.http_addr(), "GET", "/metrics", &[]).await.2.contains(&counted)
        })
        .await;
    }
    // The same for the API key file: a string bomb, and a key file cut short, refused; the keys
    // in service stay.
    let keys_file = dir.path().join("api-keys.yaml");
    let good_keys = std::fs::read_to_string(&keys_file).unwrap();
    let key_bomb = format!("keys: []\ns: &s {}\nx:\n{}...\n", "x".repeat(768 << 10), "- *s\n".repeat(20_000));
    let cut_keys =
        "keys:\n  - hash: sha256:2f89c2d8bbf2132147a0c9612801cfc1d24ddabc6489c020a41d23d05ec798a9\n".to_string();
    for (refused, bad) in [key_bomb, cut_keys].iter().enumerate() {
        std::fs::write(&keys_file, bad).unwrap();
        let counted = format!(r#"ext_authz_reloads_total{{result="error",what="api_keys"}} {}"#, refused + 1);
        shared::testing::eventually("bad key file refused", Duration::from_secs(10), || async {
            assert_eq!(with_key(&p, "/orders/1").await, 200, "the keys in service stay");
            http(p.http_addr(), "GET", "/metrics", &[]).await.2.contains(&counted)
        })
        .await;
    }
    assert!(p.stderr().contains("bytes of text (an alias bomb?)"), "{}", p.stderr());
    assert!(p.stderr().contains("does not end with `...`"), "{}", p.stderr());
    std::fs::write(&keys_file, good_keys).unwrap();

    // The good file written in place, slowly, in two halves, while requests keep coming.
    let (first, second) = good.split_at(good.len() / 2);
    let (first, second) = (first.to_string(), second.to_string());
    let writer = std::thread::spawn(move || {
        for _ in 0..5 {
            let mut file = std::fs::File::create(&config_file).unwrap();
            file.write_all(first.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            file.write_all(second.as_bytes()).unwrap();
            drop(file);
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    let mut wrong = 0;
    while !writer.is_finished() {
        if with_key(&p, "/orders/1").await != 200 {
            wrong += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(wrong, 0, "no request was answered by a half-written config");
    let metrics = http(p.http_addr(), "GET", "/metrics", &[]).await.2;
    assert!(metrics.contains(r#"ext_authz_reloads_total{result="error",what="config"}"#), "{metrics}");
    assert_eq!(http(p.http_addr(), "GET", "/readyz", &[]).await.0, 200);
    // Idle connections (one that never starts HTTP/2, one that made a call and stays open, as
    // Envoy's do) do not hold the stop: with nothing in progress it is immediate.
    let _silent = std::net::TcpStream::connect(("127.0.0.1", p.grpc)).unwrap();
    let mut client = p.grpc_client().await;
    client.check(check_request("GET", "/public/x", &[])).await.unwrap();
    // `terminate` gives up after 10 s, below the shutdown timeout (15 s): exiting at all means
    // no idle connection held the stop.
    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_audiences_and_challenges() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let p = start(&idp, dir.path());
    wait_ready(&p).await;
    let addr = p.http_addr();

    // Dot segments cannot borrow the public rule; what cannot be normalized is refused.
    assert_eq!(http(addr, "GET", "/authz/public/x", &[]).await.0, 200);
    for target in ["/authz/public/../orders/1", "/authz/public/%2e%2e/orders/1", "/authz/public/./../orders/1"] {
        let (status, headers, _) = http(addr, "GET", target, &[]).await;
        assert_eq!(status, 401, "{target}");
        assert_eq!(headers.get("www-authenticate").map(String::as_str), Some("Bearer"), "{target}");
    }
    for target in ["/authz/public/..%2forders/1", "/authz/public/%2F..%2Forders/1", "/authz/public//../orders/1"] {
        let (status, _, body) = http(addr, "GET", target, &[]).await;
        assert_eq!(status, 400, "{target}");
        assert!(body.contains("BAD_REQUEST"), "{body}");
    }

    // A token without `aud` for a provider with audiences: refused.
    let no_aud = key.sign(&json!({"iss": idp.url, "sub": "u", "exp": now() + 600, "scope": "orders:read"}));
    let (status, headers, body) =
        http(addr, "GET", "/authz/orders/1", &[("authorization", &format!("Bearer {no_aud}"))]).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers["www-authenticate"].contains("token has no aud claim"), "{headers:?}");

    // An unknown API key gets a challenge like every other 401.
    let (status, headers, _) = http(addr, "GET", "/authz/orders/1", &[("x-api-key", "ghk_unknown-000")]).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].starts_with("Bearer error=\"invalid_token\""), "{headers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_key_server_neither_delays_the_start_nor_hangs_checks() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    idp.hanging.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    // The key fetch may take 30 s: a start that waited for it would miss the 10 s in which
    // `start_with` expects the ports, so the binary must open them regardless.
    let p = start_with(&idp, dir.path(), |config| config.replace("timeout: 2s", "timeout: 30s"));
    let addr = p.http_addr();
    assert_eq!(http(addr, "GET", "/healthz", &[]).await.0, 200, "alive while the first fetch runs");
    assert_eq!(http(addr, "GET", "/readyz", &[]).await.0, 503, "not ready without keys");
    // The container health check says why, not just "exit 1".
    let health = Command::new(BIN).args(["healthcheck", &addr.to_string()]).output().unwrap();
    let said = String::from_utf8_lossy(&health.stderr);
    assert!(!health.status.success());
    assert!(said.contains("answered HTTP/1.1 503") && said.contains("JWT keys not loaded yet"), "{said}");
    let nothing = Command::new(BIN).args(["healthcheck", &format!("127.0.0.1:{}", free_port())]).output().unwrap();
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("cannot connect to 127.0.0.1:"), "{nothing:?}");
    assert_eq!(with_key(&p, "/orders/1").await, 200, "API keys work meanwhile");

    // A token whose key is unknown waits for the refetch at most `unknown_kid_wait` (500 ms).
    let token = key.sign(&json!({"iss": idp.url, "aud": "orders-api", "sub": "u", "exp": now() + 600}));
    // A check that waited for the fetch would take 30 s; the guard says it did not.
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    let check = http(addr, "GET", "/authz/orders/1", &headers);
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(10), check).await.expect("the check waited for the hanging fetch");
    assert!(status == 401 || status == 503, "{status} {body}");

    // The provider answers again: the service becomes ready by itself.
    idp.hanging.store(false, Ordering::SeqCst);
    wait_ready(&p).await;
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_key_set_is_cut_off_at_its_bound() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    idp.endless.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let p = start(&idp, dir.path());
    let refused = shared::testing::poll(Duration::from_secs(10), async || {
        p.stderr().contains("the answer is larger than 1048576 bytes").then_some(())
    });
    assert!(refused.await.is_some(), "no bounded refusal:\n{}", p.stderr());
    assert!(rss_mib(p.child.id()) < 200, "{} MiB resident", rss_mib(p.child.id()));
    assert_eq!(with_key(&p, "/orders/1").await, 200, "still serving");
    idp.endless.store(false, Ordering::SeqCst);
    wait_ready(&p).await;
}

/// A key file (`jwks_file`) follows the shared reload rule: a symlink swap is seen even when
/// both targets have the same size and modification time, and a file past the size bound keeps
/// the keys in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_follows_symlink_swaps_and_refuses_a_huge_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (SigningKey::rsa("k", Algorithm::RS256, RSA_A), SigningKey::rsa("k", Algorithm::RS256, RSA_B));
    std::fs::write(d.join("a.json"), ext_authz::testing::jwks(&[&a])).unwrap();
    std::fs::write(d.join("b.json"), ext_authz::testing::jwks(&[&b])).unwrap();
    // Same length (same kid and key size) and the same modification time: only the symlink's
    // target tells them apart.
    let a_time = std::fs::metadata(d.join("a.json")).unwrap().modified().unwrap();
    std::fs::File::options().write(true).open(d.join("b.json")).unwrap().set_modified(a_time).unwrap();
    std::os::unix::fs::symlink("a.json", d.join("keys.json")).unwrap();
    let config = "server: {grpc_addr: 127.0.0.1:0, http_addr: 127.0.0.1:0}\n\
                  jwt_providers:\n  - {name: files, issuer: files, algorithms: [RS256], keys: {jwks_file: keys.json}}\n\
                  routes: {default: authenticated, default_accept: [jwt]}\n...\n";
    std::fs::write(d.join("ext-authz.yaml"), config).unwrap();
    let loaded = ext_authz::config::load(&d.join("ext-authz.yaml"), &HashMap::new()).unwrap();
    let running =
        ext_authz::app::start(loaded, Arc::new(HashMap::new()), ext_authz::service::system_clock()).await.unwrap();
    let claims = json!({"iss": "files", "sub": "u", "exp": now() + 600});
    let (token_a, token_b) = (a.sign(&claims), b.sign(&claims));
    let allowed = |token: String| {
        let authorizer = running.authorizer.clone();
        async move {
            let headers = HashMap::from([("authorization".to_string(), format!("Bearer {token}"))]);
            let request = ext_authz::core::request::AuthRequest::new("GET", "api", "/x", headers);
            matches!(authorizer.check(&request, "grpc", None).await, ext_authz::outcome::Outcome::Allow(_))
        }
    };
    shared::testing::eventually("token A allowed", Duration::from_secs(10), || allowed(token_a.clone())).await;

    // The swap: rename a new link over the old one, as Kubernetes does for a mounted Secret.
    std::os::unix::fs::symlink("b.json", d.join("keys.tmp")).unwrap();
    std::fs::rename(d.join("keys.tmp"), d.join("keys.json")).unwrap();
    shared::testing::eventually("the swap seen", Duration::from_secs(10), || allowed(token_b.clone())).await;
    // The old key is gone: for a new token of it, and for one verified (and cached) before the
    // swap — cached verifications count only while the keys are the same ones.
    let fresh_a = a.sign(&json!({"iss": "files", "sub": "v", "exp": now() + 600}));
    assert!(!allowed(fresh_a).await, "the old key is gone");
    assert!(!allowed(token_a.clone()).await, "a cached token of the old key is gone too");

    // A key file past the bound (1 MiB) is refused; the keys in service stay.
    let huge = format!("{{\"keys\": [], \"padding\": \"{}\"}}", "x".repeat(2 << 20));
    std::fs::write(d.join("huge.json"), huge).unwrap();
    std::os::unix::fs::symlink("huge.json", d.join("keys.tmp")).unwrap();
    std::fs::rename(d.join("keys.tmp"), d.join("keys.json")).unwrap();
    let metrics = |r: &ext_authz::app::Running| r.authorizer.metrics.registry.render();
    shared::testing::eventually("the huge file refused", Duration::from_secs(10), async || {
        metrics(&running).contains(r#"ext_authz_jwks_fetches_total{provider="files",result="error"}"#)
    })
    .await;
    assert!(allowed(token_b).await, "the last good keys stay in service");
    running.shutdown().await;
}

/// Runs `command` to its end, killing it (and failing) if it hangs past `within`: a guard
/// against a hang, far above the time the work takes.
fn output_within(command: &mut Command, within: Duration) -> std::process::Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if shared::testing::poll_blocking(within, || child.try_wait().unwrap()).is_none() {
        let _ = child.kill();
        panic!("{command:?} hung for {within:?}");
    }
    child.wait_with_output().unwrap()
}
