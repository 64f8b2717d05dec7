//! The login's own paths (the OIDC callback and logout) answer before the policy's rules, but
//! not before its deny rules that read no identity (review finding 14): a client outside
//! `not_client_ips` cannot complete a login and receive a session cookie.

use std::collections::HashMap;
use std::sync::Arc;

use ext_authz::core::request::AuthRequest;
use ext_authz::outcome::Outcome;
use shared::testing::{OidcClient, OidcProvider};

const ORIGIN: &str = "http://app.test";
const SESSION_KEY: &str = "Zmxvd3MtZnV6ei1zZXNzaW9uLWtleS0zMi1ieXRlcyE=";

fn from(peer: &str, method: &str, target: &str) -> AuthRequest {
    let headers = HashMap::from([
        ("x-forwarded-proto".to_string(), "http".to_string()),
        ("accept".to_string(), "text/html".to_string()),
    ]);
    let mut request = AuthRequest::new(method, "app.test", target, headers);
    request.peer_address = Some(peer.parse().unwrap());
    request
}

fn code(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Deny(deny) => Some(deny.code.as_str()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_rules_without_identity_hold_on_the_login_paths() {
    let provider = OidcProvider::start(OidcClient {
        client_id: "app".into(),
        client_secret: "app-secret".into(),
        redirect_uris: vec![format!("{ORIGIN}/oauth2/callback")],
        ..OidcClient::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "server: {{grpc_addr: \"127.0.0.1:0\", http_addr: \"127.0.0.1:0\"}}\n\
         routes:\n  default: deny\n  rules:\n\
         \x20   - {{name: only-inside, action: deny, path: /*, not_client_ips: [10.0.0.0/8], error: {{code: OUTSIDE}}}}\n\
         \x20   - {{path: /app/*, accept: [session]}}\n\
         oidc:\n  issuer: {}\n  client_id: app\n  client_secret_env: SECRET\n  origins: [\"{ORIGIN}\"]\n\
         \x20 cookie: {{secure: false}}\n  session: {{keys: [{{env: KEY}}]}}\n...\n",
        provider.issuer()
    );
    std::fs::write(dir.path().join("ext-authz.yaml"), config).unwrap();
    let env =
        HashMap::from([("SECRET".to_string(), "app-secret".to_string()), ("KEY".to_string(), SESSION_KEY.to_string())]);
    let loaded = ext_authz::config::load(&dir.path().join("ext-authz.yaml"), &env).expect("the config loads");
    let running = ext_authz::app::start(loaded, Arc::new(env), ext_authz::service::system_clock()).await.unwrap();
    let check = async |request: AuthRequest| running.authorizer.check(&request, "grpc", None).await;

    for (method, target) in [("GET", "/oauth2/callback?code=c&state=s"), ("POST", "/oauth2/logout")] {
        let outside = check(from("203.0.113.9", method, target)).await;
        assert_eq!(code(&outside), Some("OUTSIDE"), "{method} {target} from outside: {outside:?}");
        let inside = check(from("10.1.2.3", method, target)).await;
        assert_ne!(code(&inside), Some("OUTSIDE"), "{method} {target} from inside goes to the login's own answer");
    }
    let metrics = running.authorizer.metrics.registry.render();
    assert!(metrics.contains("reason=\"deny_rule\""), "the denial is counted as the deny rule's:\n{metrics}");
    running.shutdown().await;
}
