//! The Kubernetes base as a user deploys it (README, "Images" and "Placeholders"): its
//! placeholders are exactly the README's table, each one named by file and key while it is left
//! unfilled, in the files and in what `kubectl kustomize` renders; a copy filled by the README's
//! commands has none left, and its ext-authz config, run as the pod runs it, becomes ready
//! against a local identity provider. And the images' build context, as `.dockerignore` shapes
//! it, stays small and holds what the build reads. File reading, `kubectl kustomize` and
//! ext-authz in-process on loopback: no cluster, no Docker engine.

#[path = "k8s_base/build_context.rs"]
mod build_context;
#[path = "k8s_base/dockerignore.rs"]
mod dockerignore;
#[path = "k8s_base/overlays.rs"]
mod overlays;
#[path = "k8s_base/placeholders.rs"]
mod placeholders;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::routing::get;
use e2e::envoy::workspace_root;
use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::json;

/// What the user edits: the base and the component it includes.
const TREE: &[&str] = &["k8s/base", "k8s/components"];
const RSA_KEY: &str = include_str!("../../ext-authz/tests/fixtures/rsa-a.pem");
const AUDIENCE: &str = "orders-api";

fn readme() -> String {
    std::fs::read_to_string(workspace_root().join("README.md")).unwrap()
}

#[test]
fn the_shipped_base_has_exactly_the_documented_placeholders() {
    let found = placeholders::find(&workspace_root(), TREE).unwrap_or_else(|e| panic!("{e}"));
    let documented = placeholders::documented(&readme(), placeholders::BASE_SECTION);
    assert!(!documented.is_empty(), "README.md: no rows in the placeholder table");
    assert_eq!(found, documented, "the placeholders in k8s/ (left) and README.md's table (right) differ");

    // The check names each one by file and key.
    let report =
        placeholders::check_filled(&workspace_root(), TREE, "README.md").expect_err("the shipped base is unfilled");
    println!("{report}");
    for placeholder in &documented {
        assert!(report.contains(&format!("{placeholder} is still a placeholder")), "{placeholder}:\n{report}");
    }
}

#[test]
fn a_marker_outside_a_value_is_refused() {
    let dir = copy_of_tree();
    let file = dir.path().join("k8s/base/namespace.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("# {} later\n{text}", placeholders::MARKER)).unwrap();
    let error = placeholders::find(dir.path(), TREE).expect_err("a comment with the marker");
    assert!(error.starts_with("k8s/base/namespace.yaml: `change-me` appears outside a value"), "{error}");
}

#[test]
fn the_readme_commands_fill_every_placeholder() {
    let dir = filled_copy("https://login.mycompany.example/");
    placeholders::check_filled(dir.path(), TREE, "README.md")
        .unwrap_or_else(|e| panic!("after the README's commands:\n{e}"));
    let kustomization = std::fs::read_to_string(dir.path().join("k8s/base/kustomization.yaml")).unwrap();
    assert!(kustomization.contains("newName: registry.mycompany.example/platform/gatehouse/ext-authz\n"));
    assert!(kustomization.contains("newName: registry.mycompany.example/platform/gatehouse/ratelimit\n"));
}

/// The same check on what `kubectl kustomize` renders (the ext-authz config inside its
/// ConfigMap): the shipped base's placeholders show up on the objects they end in, a filled
/// copy's render has none.
#[test]
fn a_rendered_tree_is_checked_the_same_way() {
    let shipped = render(&workspace_root().join("k8s/base"));
    let found = placeholders::find(shipped.path(), &["rendered"]).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("ConfigMap/ext-authz-config-") && k.ends_with(": data.ext-authz.yaml")));
    assert!(keys.contains(&"Deployment/ext-authz: spec.template.spec.containers[0].image"), "{keys:?}");
    assert!(keys.contains(&"Deployment/ratelimit: spec.template.spec.containers[0].image"), "{keys:?}");

    let filled = filled_copy("https://login.mycompany.example/");
    let rendered = render(&filled.path().join("k8s/base"));
    placeholders::check_filled(rendered.path(), &["rendered"], "README.md").unwrap_or_else(|e| panic!("{e}"));
}

/// What `kubectl kustomize` renders of `kustomization`, as the file `rendered/all.yaml` of a
/// scratch directory.
fn render(kustomization: &Path) -> tempfile::TempDir {
    let rendered = Command::new("kubectl").arg("kustomize").arg(kustomization).output().unwrap_or_else(|e| {
        panic!(
            "kubectl: {e}. It renders the k8s/ kustomizations; Debian has no package for it: install it from \
             https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ (any version of the last three years)"
        )
    });
    assert!(rendered.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&rendered.stderr));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rendered")).unwrap();
    std::fs::write(dir.path().join("rendered/all.yaml"), rendered.stdout).unwrap();
    dir
}

/// The pod's view of the filled config: its listeners (here on loopback port 0) and the
/// `ext-authz-api-keys` Secret's mount, which the base ships empty.
fn pod_env(api_keys: &Path) -> HashMap<String, String> {
    HashMap::from([
        ("EXT_AUTHZ__SERVER__GRPC_ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("EXT_AUTHZ__SERVER__HTTP_ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("EXT_AUTHZ__API_KEYS__DIR".to_string(), api_keys.display().to_string()),
    ])
}

#[tokio::test]
async fn the_filled_base_becomes_ready_and_lets_a_token_through() {
    let key = SigningKey::rsa("k8s-base", Algorithm::RS256, RSA_KEY);
    let (issuer, provider) = start_provider(&key).await;
    let dir = filled_copy(&issuer);
    let api_keys = tempfile::tempdir().unwrap();
    let env = pod_env(api_keys.path());
    let config = ext_authz::config::load(&dir.path().join("k8s/base/config/ext-authz.yaml"), &env)
        .unwrap_or_else(|e| panic!("the filled config: {e}"));
    let running = ext_authz::app::start(config, Arc::new(env), ext_authz::service::system_clock())
        .await
        .expect("ext-authz starts");
    let http = running.http_addr;
    wait_ready(http).await;

    // Ready means working: a token of that provider for that audience opens the example route.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = key.sign(&json!({"iss": issuer, "aud": AUDIENCE, "sub": "user-1", "scope": "orders:read",
        "exp": now + 600}));
    let reply = reqwest::Client::new()
        .get(format!("http://{http}/authz/orders/1"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the HTTP check");
    assert_eq!(reply.status(), 200, "{:?}", reply.text().await);
    running.shutdown().await;
    provider.abort();
}

/// The README's variant without an identity provider: API keys only, Ready with no provider.
#[tokio::test]
async fn the_api_keys_only_variant_is_ready_without_a_provider() {
    let dir = filled_copy("https://login.mycompany.example/");
    let path = dir.path().join("k8s/base/config/ext-authz.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    // As the README says: the jwt_providers entry deleted, `accept: [api_key]` on each rule and
    // as the default.
    let start = text.find("jwt_providers:\n").expect("a jwt_providers section");
    let end = text.find("api_keys:\n").expect("an api_keys section");
    let variant = format!("{}{}", &text[..start], &text[end..])
        .replace("  default: authenticated\n", "  default: authenticated\n  default_accept: [api_key]\n")
        .replace("    - name: orders-read\n", "    - name: orders-read\n      accept: [api_key]\n");
    assert_eq!(variant.matches("accept: [api_key]").count(), 2, "{variant}");
    std::fs::write(&path, variant).unwrap();

    let api_keys = tempfile::tempdir().unwrap();
    let env = pod_env(api_keys.path());
    let config = ext_authz::config::load(&path, &env).unwrap_or_else(|e| panic!("the API-keys-only config: {e}"));
    let running = ext_authz::app::start(config, Arc::new(env), ext_authz::service::system_clock())
        .await
        .expect("ext-authz starts");
    wait_ready(running.http_addr).await;
    running.shutdown().await;
}

async fn wait_ready(http: std::net::SocketAddr) {
    let client = reqwest::Client::new();
    shared::testing::eventually("ext-authz's /readyz answers 200", Duration::from_secs(20), async || {
        client.get(format!("http://{http}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
}

/// An identity provider as `keys: {discovery: true}` reads one: a discovery document naming a
/// JWKS with `key`, on loopback. Returns its issuer.
async fn start_provider(key: &SigningKey) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/", listener.local_addr().unwrap());
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}jwks")}).to_string();
    let keys = jwks(&[key]);
    let json = |body: String| move || async move { ([(header::CONTENT_TYPE, "application/json")], body) };
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(json(discovery)))
        .route("/jwks", get(json(keys)));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the provider serves");
    });
    (issuer, server)
}

/// The base and its component, copied to a scratch directory with the same layout.
fn copy_of_tree() -> tempfile::TempDir {
    copy_of(TREE)
}

/// `parts` of the tree (directories), copied to a scratch directory with the same layout.
fn copy_of(parts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for part in parts {
        copy_dir(&workspace_root().join(part), &dir.path().join(part));
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A copy filled by the README's commands, run as written but for the values they assign,
/// which come from here (the issuer: the local provider's).
fn filled_copy(issuer: &str) -> tempfile::TempDir {
    let dir = copy_of_tree();
    let commands = placeholders::fill_commands(&readme(), placeholders::BASE_SECTION);
    let values = [("REGISTRY", "registry.mycompany.example/platform"), ("ISSUER", issuer), ("AUDIENCE", AUDIENCE)];
    placeholders::run_fill(dir.path(), &commands, &values);
    dir
}
