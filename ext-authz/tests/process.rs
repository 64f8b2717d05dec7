//! The `ext-authz` binary: `--help`, `validate`, `api-key new`, graceful shutdown, and no
//! secret, token or key in its logs even at trace level.

mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use serde_json::json;
use support::process::*;
use support::token_server::{TokenServer, CLIENT_ID, CLIENT_SECRET};
use support::*;

fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz/ext-authz.yaml")
}

#[test]
fn help_validate_and_new_keys() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("api-key new"));

    let ok = Command::new(BIN)
        .args(["validate"])
        .arg(example())
        .env("INTERNAL_JWT_SECRET", "s".repeat(40))
        .env("PARTNER_CLIENT_SECRET", "p".repeat(20))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "OK: 2 JWT providers, 6 route rules, 1 API keys, 2 upstream credentials\n"
    );
    let missing_secret =
        Command::new(BIN).args(["validate"]).arg(example()).env_remove("INTERNAL_JWT_SECRET").output().unwrap();
    assert_eq!(missing_secret.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing_secret.stderr).contains("jwt_providers[1].keys.hmac_secret_env"));

    let new = Command::new(BIN).args(["api-key", "new", "--client-id", "billing", "--scopes", "a,b"]).output().unwrap();
    let text = String::from_utf8(new.stdout).unwrap();
    let key = text.lines().nth(1).unwrap().trim_start_matches('#').trim().to_string();
    assert!(key.starts_with("ghk_"));
    let entry: String = text.lines().filter(|l| !l.starts_with('#')).map(|l| format!("  {l}\n")).collect();
    // The printed entry is a valid key file that accepts the printed key.
    let store = ext_authz::core::apikeys::ApiKeyStore::from_documents(vec![(
        "new.yaml".into(),
        serde_json::to_value(yaml_to_json(&format!("keys:\n{entry}"))).unwrap(),
    )])
    .unwrap();
    assert_eq!(store.lookup(&key).unwrap().client_id, "billing");

    // A printed session key is what the login example's config accepts.
    let session_key = Command::new(BIN).args(["session-key", "new"]).output().unwrap();
    let session_key = String::from_utf8(session_key.stdout).unwrap().trim().to_string();
    let example_login = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz/ext-authz-oidc.yaml");
    // The example's revocations file lives where a deployment mounts a volume; here, in a
    // directory `validate` can write to (it checks that a start could).
    let dir = tempfile::tempdir().unwrap();
    let login_example = dir.path().join("login.yaml");
    let revocations = dir.path().join("revocations.jsonl");
    let text = std::fs::read_to_string(&example_login).unwrap();
    assert!(text.contains("revocations_file: /var/lib/gatehouse/revocations.jsonl\n"));
    let text = text.replace("/var/lib/gatehouse/revocations.jsonl", &revocations.display().to_string());
    std::fs::write(&login_example, text).unwrap();
    let checked = Command::new(BIN)
        .args(["validate"])
        .arg(&login_example)
        .env("SESSION_KEY", &session_key)
        .env("OIDC_CLIENT_SECRET", "secret")
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(checked.stderr.is_empty(), "no warnings for the example: {}", String::from_utf8_lossy(&checked.stderr));
    // The login layer's worst case is stated: the example's cookie store does no I/O on a check.
    assert!(
        String::from_utf8_lossy(&checked.stdout).contains(
            "sessions: a check waits at most 1s in the login layer, whatever cookies it presents (the cookie store \
             reads them all without I/O; then at most one refresh, oidc.timeout 1s, and a revocation file write if the \
             provider refuses it)"
        ),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    assert!(!revocations.exists(), "validate leaves no file behind");
    // A provider timeout that cannot fit the gateway's: valid, and warned about by name.
    let slow = dir.path().join("slow.yaml");
    let text = std::fs::read_to_string(&login_example).unwrap().replace("  timeout: 1s\n", "  timeout: 5s\n");
    std::fs::write(&slow, text).unwrap();
    let warned = Command::new(BIN)
        .args(["validate"])
        .arg(&slow)
        .env("SESSION_KEY", &session_key)
        .env("OIDC_CLIENT_SECRET", "secret")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "warning: {}: oidc.timeout: a login callback or refresh may take up to 5s",
            slow.display()
        )),
        "{stderr}"
    );
    let short = Command::new(BIN)
        .args(["validate"])
        .arg(&login_example)
        .env("SESSION_KEY", "c2hvcnQ=")
        .env("OIDC_CLIENT_SECRET", "secret")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("oidc.session.keys[0]: a session key must be 32 random bytes")
    );
}

/// `validate` refuses a revocations file the start would refuse, in the start's words. The path
/// sits under a regular file: opening it fails for every user, root included (the tests run as
/// root, for whom a directory's mode bits stop nothing), as a read-only volume does.
#[test]
fn validate_refuses_a_revocations_file_a_start_cannot_write() {
    let session_key = Command::new(BIN).args(["session-key", "new"]).output().unwrap();
    let session_key = String::from_utf8(session_key.stdout).unwrap().trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let unwritable = dir.path().join("a-file/revocations.jsonl");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz/ext-authz-oidc.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    let text = text.replace("/var/lib/gatehouse/revocations.jsonl", &unwritable.display().to_string());
    let (text, _, _) = on_free_ports(
        &text
            .replace("grpc_addr: 0.0.0.0:9001", "grpc_addr: 127.0.0.1:0")
            .replace("http_addr: 0.0.0.0:8080", "http_addr: 127.0.0.1:0"),
    );
    let config = dir.path().join("login.yaml");
    std::fs::write(&config, text).unwrap();
    let env = [("SESSION_KEY", session_key.as_str()), ("OIDC_CLIENT_SECRET", "secret")];

    let validated = Command::new(BIN).arg("validate").arg(&config).envs(env).output().unwrap();
    let said = String::from_utf8_lossy(&validated.stderr).into_owned();
    assert_eq!(validated.status.code(), Some(1), "{said}");
    let reason = format!("oidc.session.revocations_file: {}: Not a directory", unwritable.display());
    assert!(said.starts_with(&format!("{}: {reason}", config.display())), "{said}");

    // The start refuses it with the same words.
    let started = Command::new(BIN).arg("--config").arg(&config).envs(env).output().unwrap();
    let said = String::from_utf8_lossy(&started.stderr);
    assert!(!started.status.success() && said.contains(&reason), "{said}");
}

fn yaml_to_json(text: &str) -> serde_json::Value {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Yaml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_show_credentials_and_sigterm_stops_cleanly() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])])).unwrap();
    // Upstream credentials too: a key file and a client-credentials token, whose client secret,
    // key and token must stay out of the log as well.
    let tokens = TokenServer::start().await;
    const VENDOR_KEY: &str = "vendor-key-that-must-not-be-logged-0123";
    std::fs::write(dir.path().join("vendor.key"), VENDOR_KEY).unwrap();
    let rules = "    - name: vendor\n      path: /vendor/*\n      accept: [api_key]\n      upstream_credential: vendor\n\
                 \x20   - name: partner\n      path: /partner/*\n      accept: [api_key]\n      upstream_credential: partner\n";
    let upstream = format!(
        "upstream_credentials:\n  - {{name: vendor, header: x-vendor-key, file: vendor.key}}\n  - name: partner\n    \
         header: authorization\n    oauth2: {{token_endpoint: \"{}/token\", client_id: {CLIENT_ID}, client_secret_env: PARTNER_SECRET}}\n",
        tokens.url
    );
    let config = config_yaml(&idp.url, rules) + &upstream;
    let env = [("JOBS_SECRET", HMAC_SECRET), ("RUST_LOG", "trace"), ("PARTNER_SECRET", CLIENT_SECRET)];
    let mut process = AuthzProcess::start(&dir.path().join("ext-authz.yaml"), &config, &env);
    // The provider's keys load after the ports open; a check before then is (rightly) refused.
    process.wait_ready().await;
    let mut client = process.grpc_client().await;
    // Real time here: the binary uses the system clock.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token =
        key.sign(&json!({"iss": idp.url, "aud": "orders-api", "sub": "u", "exp": now + 600, "scope": "orders:read"}));
    let expired = key.sign(&json!({"iss": idp.url, "aud": "orders-api", "sub": "u", "exp": now - 600}));
    for headers in [
        vec![("authorization", format!("Bearer {token}"))],
        vec![("authorization", format!("Bearer {expired}"))],
        vec![("x-api-key", API_KEY.to_string())],
        vec![("x-api-key", "ghk_wrong-guess-123".to_string())],
        vec![("cookie", format!("token={token}"))],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        client.check(check_request("GET", "/orders/1", &headers)).await.unwrap();
    }
    let mut injected = Vec::new();
    for path in ["/vendor/models", "/partner/orders"] {
        let response = client.check(check_request("GET", path, &[("x-api-key", API_KEY)])).await.unwrap();
        injected.extend(allowed_headers(&response.into_inner()).0.into_values());
    }
    assert!(
        injected.contains(&VENDOR_KEY.to_string()) && injected.contains(&"Bearer other-1".to_string()),
        "{injected:?}"
    );
    assert!(process.terminate().success(), "exit status 0 after SIGTERM");
    let text = process.stderr();
    assert!(text.contains("checked"), "trace logging was on: {text}");
    for secret in [
        token.as_str(),
        expired.as_str(),
        API_KEY,
        "ghk_wrong-guess-123",
        HMAC_SECRET,
        VENDOR_KEY,
        CLIENT_SECRET,
        "other-1",
    ] {
        assert!(!text.contains(secret), "a credential leaked into the log");
    }
    // Nor the client's Basic credentials as sent.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    assert!(!text.contains(&basic), "the token request's Basic credentials leaked into the log");
    // Not even the signature part of a token.
    assert!(!text.contains(token.rsplit('.').next().unwrap()));
}

/// `server.grpc_idle_timeout`: a connection that makes no check is sent a GOAWAY and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_grpc_connection_is_closed() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])])).unwrap();
    let config = config_yaml(&idp.url, "")
        .replace("  http_check_prefix: /authz\n", "  http_check_prefix: /authz\n  grpc_idle_timeout: 300ms\n");
    let process = AuthzProcess::start(&dir.path().join("ext-authz.yaml"), &config, &[("JOBS_SECRET", HMAC_SECRET)]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], process.grpc));
    let seen = tokio::task::spawn_blocking(move || shared::testing::idle_http2_client(addr, true)).await.unwrap();
    assert!(seen.contains(&shared::testing::GOAWAY), "{seen:?}");
}
