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

    // `api-key new` prints the key on stderr and, on stdout, exactly what stores its hash: each
    // format, saved as printed, loads through the loader and accepts the key.
    for format in ["file", "secret"] {
        let dir = tempfile::tempdir().unwrap();
        let new = Command::new(BIN)
            .args(["api-key", "new", "--client-id", "billing", "--scopes", "a,b", "--format", format])
            .output()
            .unwrap();
        assert!(new.status.success(), "{new:?}");
        let key = String::from_utf8(new.stderr).unwrap().lines().last().unwrap().to_string();
        assert!(key.starts_with("ghk_"), "{key}");
        let printed = String::from_utf8(new.stdout).unwrap();
        assert!(!printed.contains(&key), "stdout holds the hash only");
        let location = match format {
            "file" => {
                std::fs::write(dir.path().join("billing.yaml"), &printed).unwrap();
                ext_authz::key_files::ApiKeysLocation { file: Some(dir.path().join("billing.yaml")), dir: None }
            }
            _ => {
                // As the kubelet mounts the Secret: one file per stringData entry.
                let secret = yaml_to_json(&printed);
                assert_eq!(
                    (secret["kind"].as_str(), secret["metadata"]["name"].as_str()),
                    (Some("Secret"), Some("ext-authz-api-keys"))
                );
                for (name, text) in secret["stringData"].as_object().unwrap() {
                    std::fs::write(dir.path().join(name), text.as_str().unwrap()).unwrap();
                }
                ext_authz::key_files::ApiKeysLocation { file: None, dir: Some(dir.path().to_path_buf()) }
            }
        };
        let store = ext_authz::key_files::load(&location).unwrap();
        let entry = store.lookup(&key).unwrap();
        assert_eq!(
            (entry.client_id.as_str(), entry.scopes.as_slice()),
            ("billing", &["a".to_string(), "b".to_string()][..])
        );
    }

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

/// `validate --no-secrets` checks a config whose secrets are not set, and lists what a start
/// needs; without the flag the same config is refused for its missing secret.
#[test]
fn validate_without_secrets_lists_what_a_start_needs() {
    let checked = Command::new(BIN)
        .args(["validate", "--no-secrets"])
        .arg(example())
        .env_remove("INTERNAL_JWT_SECRET")
        .env_remove("PARTNER_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let llm_key = example().parent().unwrap().join("secrets/llm-api-key");
    assert_eq!(
        String::from_utf8_lossy(&checked.stdout),
        format!(
            "OK (secrets not read): 2 JWT providers, 6 route rules, 1 API keys, 2 upstream credentials\n\
             a start needs:\n\
             \x20 INTERNAL_JWT_SECRET (environment variable; jwt_providers[1].keys.hmac_secret_env)\n\
             \x20 PARTNER_CLIENT_SECRET (environment variable; upstream_credentials[1].oauth2.client_secret)\n\
             \x20 {} (file; upstream_credentials[0] (llm-provider))\n",
            llm_key.display()
        )
    );
    // A key directory mounted at run time (a Secret) is listed when it is not there.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ext-authz.yaml");
    std::fs::write(&config, "api_keys: {dir: /no/such/api-keys}\nroutes: {default: deny}\n...\n").unwrap();
    let checked = Command::new(BIN).args(["validate", "--no-secrets"]).arg(&config).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout)
        .ends_with("a start needs:\n  /no/such/api-keys (directory; api_keys)\n"));
    // The login example: its secrets, and the volume its revocations file is written to (here
    // one that is surely not there).
    let text = std::fs::read_to_string(example().parent().unwrap().join("ext-authz-oidc.yaml")).unwrap();
    let volume = dir.path().join("volume");
    let login = dir.path().join("login.yaml");
    std::fs::write(&login, text.replace("/var/lib/gatehouse/", &format!("{}/", volume.display()))).unwrap();
    let checked = Command::new(BIN).args(["validate", "--no-secrets"]).arg(&login).env_clear().output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        stdout.contains(&format!(
            "a start needs:\n  SESSION_KEY (environment variable; oidc.session.keys[0])\n  OIDC_CLIENT_SECRET \
                 (environment variable; oidc.client_secret)\n  {} (directory; writable, for \
                 oidc.session.revocations_file)\n",
            volume.display()
        )),
        "{stdout}"
    );
}

/// Key files refused for their shape say which shape and how to fix it, naming the file; no
/// serde text ("untagged enum", "invalid type: sequence") reaches the user.
#[test]
fn key_file_errors_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ext-authz.yaml");
    std::fs::write(&config, "api_keys: {file: keys.yaml}\nroutes: {default: deny}\n...\n").unwrap();
    let keys = dir.path().join("keys.yaml");
    let entry = "- hash: sha256:2f89c2d8bbf2132147a0c9612801cfc1d24ddabc6489c020a41d23d05ec798a9\n  client_id: a\n";
    for (text, said) in [
        (format!("{entry}...\n"), "a list at the top of the file: put the entries under `keys:`"),
        ("keys:\n...\n".to_string(), "keys: is empty: list the entries under it"),
        ("...\n".to_string(), "holds no keys: write `keys:` and a list of entries"),
        (
            "keys:\n  hash: sha256:00\n...\n".to_string(),
            "keys: must be a list of entries (`- hash: …`), found a section (a map of keys)",
        ),
    ] {
        std::fs::write(&keys, &text).unwrap();
        let checked = Command::new(BIN).arg("validate").arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&checked.stderr);
        assert_eq!(checked.status.code(), Some(1), "{text}");
        assert!(stderr.starts_with(&format!("{}: {said}", keys.display())), "{text}: {stderr}");
        assert!(!stderr.contains("untagged") && !stderr.contains("sequence"), "{stderr}");
    }
}

/// A start without its config, or with arguments that name no command, stops at once (exit 64)
/// with one line saying which and how to fix it.
#[test]
fn usage_errors_say_which_argument_and_the_fix() {
    for (args, env, said) in [
        (&["--config", "/no/such/ext-authz.yaml"][..], None, "ext-authz: /no/such/ext-authz.yaml: no such config file (from --config); pass --config FILE or set EXT_AUTHZ_CONFIG"),
        (&[], Some("/no/such/x.yaml"), "ext-authz: /no/such/x.yaml: no such config file (from EXT_AUTHZ_CONFIG); pass --config FILE"),
        (&["--confg", "a.yaml"], None, "ext-authz: unknown option \"--confg\" (did you mean --config?); see ext-authz --help"),
        (&["validate", "a.yaml", "b.yaml"], None, "ext-authz: validate: unexpected argument \"b.yaml\" (one config file at a time)"),
        (&["api-key", "new", "--format", "json"], None, "ext-authz: api-key new: --format json is not file or secret;"),
    ] {
        let mut command = Command::new(BIN);
        command.args(args);
        match env {
            Some(file) => command.env("EXT_AUTHZ_CONFIG", file),
            None => command.env_remove("EXT_AUTHZ_CONFIG"),
        };
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.starts_with(said) && stderr.lines().count() == 1, "{args:?}: {stderr}");
    }
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
