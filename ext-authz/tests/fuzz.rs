//! Property tests of every parser ext-authz feeds with outsiders' bytes: the config file, API
//! key files, tokens, cookies and sealed sessions, request paths, and Check requests. Whatever
//! comes in, nothing panics, errors name their file, and no mutated token verifies. The login
//! flows are driven the same way against a real OpenID Provider (`fuzz_login/flows.rs`), and
//! arbitrary requests through compiled policies — deny rules, CEL conditions, address lists,
//! named policies — against a reference of what they must deny (`fuzz_policies/policies.rs`).
//! `scripts/fuzz.sh` runs them for longer.

#[path = "fuzz_login/flows.rs"]
mod flows;
#[path = "../../shared/fuzz/input.rs"]
mod input;
#[path = "fuzz_policies/policies.rs"]
mod policies;
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use ext_authz::config::{self, AuthzConfig};
use ext_authz::core::apikeys::ApiKeyStore;
use ext_authz::core::decision::is_header_value;
use ext_authz::core::decision::Context;
use ext_authz::core::jwt::{self, JwtPolicy, KeySet};
use ext_authz::core::path::{normalize, PathError};
use ext_authz::core::request::AuthRequest;
use ext_authz::core::session::cookies::{is_token, Cookies};
use ext_authz::core::session::login::{is_location_safe, login_cookie_name, return_target};
use ext_authz::core::session::seal::Sealer;
use ext_authz::core::token_cache::TokenCache;
use ext_authz::key_files::ApiKeysLocation;
use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use prost::Message;
use serde_json::json;
use support::{check_request, RSA_A};

const NOW: u64 = 1_800_000_000;

fn example(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz").join(name)).unwrap()
}

fn example_env() -> HashMap<String, String> {
    HashMap::from([
        ("INTERNAL_JWT_SECRET".to_string(), "s".repeat(40)),
        ("SESSION_KEY".to_string(), ext_authz::core::session::seal::new_key()),
        ("OIDC_CLIENT_SECRET".to_string(), "secret".to_string()),
        ("PARTNER_CLIENT_SECRET".to_string(), "secret".to_string()),
    ])
}

/// The example config, loaded once, for Check requests.
fn loaded() -> &'static AuthzConfig {
    static CONFIG: OnceLock<AuthzConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        config::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz/ext-authz.yaml"),
            &example_env(),
        )
        .unwrap()
    })
}

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::rsa("key-a", Algorithm::RS256, RSA_A))
}

fn valid_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        key().sign(&json!({"iss": "https://idp.test", "aud": "api", "sub": "u1", "exp": NOW + 300, "scope": "a b"}))
    })
}

/// Writes `content` to a fresh file and returns its directory and path.
fn file_with(content: &str, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

proptest! {
    #[test]
    fn config_files(content in input::text(
        vec![example("ext-authz.yaml"), example("ext-authz-oidc.yaml")],
        input::YAML_TOKENS,
    )) {
        let (_dir, path) = file_with(&content, "authz.yaml");
        if let Err(e) = config::load(&path, &example_env()) {
            prop_assert!(e.to_string().starts_with(&format!("{}: ", path.display())), "{}", e);
        }
    }

    #[test]
    fn api_key_files(content in input::text(vec![example("api-keys.yaml")], input::YAML_TOKENS)) {
        let (_dir, path) = file_with(&content, "keys.yaml");
        let location = ApiKeysLocation { file: Some(path.clone()), dir: None };
        if let Err(e) = ext_authz::key_files::load(&location) {
            prop_assert!(e.to_string().starts_with(&format!("{}: ", path.display())), "{}", e);
        }
    }

    #[test]
    fn tokens(token in input::text(vec![valid_token().to_string()], &[".", "=", "eyJ", "e30", "-", "_", "+", "/"])) {
        let keys = KeySet::from_jwks(&jwks(&[key()])).unwrap();
        let policy = JwtPolicy {
            issuer: "https://idp.test".into(),
            audiences: vec!["api".into()],
            algorithms: vec![Algorithm::RS256, Algorithm::HS256],
            leeway: 60,
            require_exp: true,
        };
        if let Ok(peeked) = jwt::peek(&token) {
            if jwt::verify(&peeked, &policy, &keys, NOW).is_ok() {
                // Only the signed header and payload verify.
                let signed: Vec<&str> = valid_token().rsplitn(2, '.').collect();
                prop_assert!(token.starts_with(signed[1]), "a mutated token verified: {}", token);
            }
        }
    }

    #[test]
    fn cookie_headers(header in input::text(
        vec!["a=1; gatehouse_session=abc; gatehouse_session.1=def, b=2".into(), "x=\"quoted\"; y=; =z;;".into()],
        &[";", ",", "=", " ", "\"", "gatehouse_session", ".0", ".1", "__Host-"],
    )) {
        let cookies = Cookies::parse(Some(&header));
        let _ = cookies.get("gatehouse_session");
        let _ = cookies.read_chunked("gatehouse_session");
        let _ = cookies.chunked_names("gatehouse_session");
        let names: Vec<&str> = cookies.names().collect();
        if let Some(rest) = cookies.header_without(|name| name == "gatehouse_session") {
            prop_assert!(!Cookies::parse(Some(&rest)).names().any(|n| n == "gatehouse_session"), "{} of {:?}", rest, names);
        }
    }

    #[test]
    fn sealed_sessions(sealed in input::text(
        vec![Sealer::new(&[vec![7u8; 32]]).unwrap().seal("session", br#"{"sub":"u1"}"#)],
        &[".", "-", "_", "A", "=", "%"],
    )) {
        let sealer = Sealer::new(&[vec![7u8; 32]]).unwrap();
        if let Ok(plain) = sealer.open("session", &sealed) {
            // Authenticated encryption: only an untouched value opens (to what was sealed).
            prop_assert_eq!(plain, br#"{"sub":"u1"}"#.to_vec());
        }
    }

    /// Request values that can reach a response header — the callback's `state` (which names
    /// the login cookie), the return URL — from arbitrary bytes come out in their strict
    /// alphabets or not at all.
    #[test]
    fn request_values_into_headers(state in any::<Vec<u8>>(), target in any::<Vec<u8>>()) {
        let state = String::from_utf8_lossy(&state);
        if let Some(name) = login_cookie_name("gatehouse_session", &state) {
            prop_assert!(is_token(&name), "{:?}", name);
        }
        let target = format!("/{}", String::from_utf8_lossy(&target));
        let request = AuthRequest::new("GET", "app.test", &target, HashMap::new());
        let back = return_target(&request);
        prop_assert!(is_location_safe(&back) && is_header_value(&back), "{:?}", back);
        prop_assert!(back.starts_with('/') && !back.starts_with("//") && !back.starts_with("/\\"), "{:?}", back);
    }

    #[test]
    fn request_paths(raw in input::text(
        vec![
            "/public/../api/me".into(),
            "/a%2e%2E/%2F/b//c/./d".into(),
            "/%7e%41%zz".into(),
            "/public/%2e%2e;/orders/1".into(),
            "/orders/1;jsessionid=ABC".into(),
        ],
        &["/", ".", "..", "%", "%2e", "%2f", "%5c", "\\", "%00", "//", ";", "%3b", "%3B", "..;", ";x=y"],
    )) {
        if let Ok(path) = normalize(&raw) {
            prop_assert!(path.starts_with('/'), "{}", path);
            prop_assert!(!path.split('/').any(|s| s == ".." || s == "."), "{}", path);
            prop_assert!(!path.contains("//"), "{}", path);
            // No path parameter survives, written or encoded: nothing a server could strip
            // before resolving dot segments is left in what routes match.
            prop_assert!(!path.contains(';') && !path.to_ascii_uppercase().contains("%3B"), "{}", path);
            prop_assert_eq!(normalize(&path), Ok(path.clone()), "normalizing twice changes nothing");
        }
        if raw.starts_with('/') && raw.contains(';') {
            prop_assert_eq!(normalize(&raw), Err(PathError::Parameter), "{}", raw);
        }
        if raw.to_ascii_uppercase().contains("%3B") {
            // Refused, as a parameter or for an earlier fault (`%2F%3B`).
            prop_assert!(normalize(&raw).is_err(), "{}", raw);
        }
    }

    #[test]
    fn check_requests(bytes in input::bytes(vec![
        check_request("GET", "/orders/1?x=1", &[("x-api-key", "ghk_x"), ("cookie", "a=b")]).encode_to_vec(),
        check_request("POST", "/public/../admin", &[("authorization", &format!("Bearer {}", valid_token()))]).encode_to_vec(),
    ])) {
        if let Ok(check) = CheckRequest::decode(bytes.as_slice()) {
            if let Ok(request) = ext_authz::grpc::to_auth_request(check) {
                let keys: Vec<Option<Arc<KeySet>>> = vec![None; loaded().engine.providers.len()];
                let ctx = Context {
                    keys: &keys,
                    api_keys: &ApiKeyStore::default(),
                    cache: &TokenCache::new(16),
                    token_rules: 0,
                    now: NOW,
                    session: None,
                };
                let _ = loaded().engine.check(&request, &ctx);
            }
        }
    }
}
