//! The shipped deployment files, checked without a Docker engine: every Envoy config renders
//! (with docker-compose's values, through the same render.sh compose runs) and passes
//! `envoy --mode validate`; the compose file resolves.

use std::process::Command;

use e2e::envoy::{envoy_binary, workspace_root};

fn compose_values() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LISTEN_BIND", "0.0.0.0"),
        ("LISTEN_PORT", "10000"),
        ("ADMIN_BIND", "0.0.0.0"),
        ("ADMIN_PORT", "9901"),
        ("EXT_AUTHZ_HOST", "ext-authz"),
        ("EXT_AUTHZ_PORT", "9001"),
        ("EXT_AUTHZ_HTTP_PORT", "8080"),
        ("RATELIMIT_HOST", "ratelimit"),
        ("RATELIMIT_PORT", "8081"),
        ("BACKEND_HOST", "backend"),
        ("BACKEND_PORT", "8000"),
        ("FAILURE_MODE_DENY", "false"),
    ]
}

fn render(file: &str, values: &[(&str, &str)]) -> std::process::Output {
    let dir = workspace_root().join("examples/envoy");
    let mut command = Command::new("sh");
    command
        .arg(dir.join("render.sh"))
        .arg(dir.join(file))
        .env_clear()
        .env("PATH", shared::env::Env::var(&shared::env::ProcessEnv, "PATH").unwrap_or_default());
    for (k, v) in values {
        command.env(k, v);
    }
    command.output().expect("running render.sh")
}

#[test]
fn every_envoy_config_renders_and_validates() {
    for file in ["envoy.yaml", "envoy-http-authz.yaml"] {
        let rendered = render(file, &compose_values());
        assert!(rendered.status.success(), "{file}: {}", String::from_utf8_lossy(&rendered.stderr));
        let text = String::from_utf8(rendered.stdout).unwrap();
        assert!(
            !text.lines().filter(|l| !l.trim_start().starts_with('#')).any(|l| l.contains("${")),
            "{file}: unfilled placeholders"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, &text).unwrap();
        let validate = Command::new(envoy_binary()).args(["--mode", "validate", "-c"]).arg(&path).output().unwrap();
        assert!(
            validate.status.success(),
            "envoy --mode validate {file}:\n{}{}",
            String::from_utf8_lossy(&validate.stdout),
            String::from_utf8_lossy(&validate.stderr)
        );
    }
}

/// Every Envoy bootstrap the project ships (a YAML file with `static_resources:`), outside
/// build output and installed tools.
fn envoy_bootstraps(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    const SKIPPED: &[&str] = &["target", "node_modules", ".venv", ".tools", ".git"];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && !SKIPPED.contains(&name.as_str()) {
            envoy_bootstraps(&path, found);
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().any(|l| l.starts_with("static_resources:")) {
                found.push(path);
            }
        }
    }
}

/// The listeners of an Envoy bootstrap that do not set `enable_reuse_port: false`, by name.
fn sharing_listeners(config: &str) -> Vec<String> {
    // `${NAME}` placeholders are not YAML inside flow mappings; any scalar does for this check.
    // One alone on its line stands for lines (bench's filters): it goes.
    let lone = |l: &&str| l.starts_with("${") && l.ends_with('}');
    let mut text: String = config.lines().filter(|l| !lone(l)).map(|l| format!("{l}\n")).collect();
    while let Some(start) = text.find("${") {
        let end = start + text[start..].find('}').expect("a closed placeholder");
        text.replace_range(start..=end, "1");
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("an Envoy config in YAML");
    let listeners = docs[0]["static_resources"]["listeners"].as_vec().cloned().unwrap_or_default();
    assert!(!listeners.is_empty(), "no listeners in:\n{config}");
    listeners
        .iter()
        .filter(|l| l["enable_reuse_port"].as_bool() != Some(false))
        .map(|l| l["name"].as_str().unwrap_or("(unnamed)").to_string())
        .collect()
}

/// Envoy sets SO_REUSEPORT on its listeners by default on Linux, so a second Envoy on the same
/// port starts beside the first and the kernel splits the connections between them (each with
/// its own limits). Every listener we ship says `enable_reuse_port: false`, so the second one
/// fails to bind instead — and so does every variant the end-to-end stack makes of them.
#[test]
fn no_shipped_envoy_listener_shares_its_port() {
    let mut files = Vec::new();
    envoy_bootstraps(&workspace_root(), &mut files);
    files.sort();
    let names: Vec<String> =
        files.iter().map(|f| f.strip_prefix(workspace_root()).unwrap().display().to_string()).collect();
    for expected in ["bench/envoy.yaml", "examples/envoy/envoy.yaml", "examples/envoy/envoy-http-authz.yaml"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not found among {names:?}");
    }
    let dir = std::path::Path::new("/certs");
    let collector = std::net::SocketAddr::from(([127, 0, 0, 1], 4317));
    for (file, name) in files.iter().zip(&names) {
        let config = std::fs::read_to_string(file).unwrap();
        assert_eq!(
            sharing_listeners(&config),
            Vec::<String>::new(),
            "{name}: listeners without enable_reuse_port: false"
        );
        if name.starts_with("examples/envoy/") {
            let mut variants = vec![
                e2e::stack::with_downstream_mtls(&config, dir),
                e2e::stack::with_cost_routes(&config),
                e2e::stack::with_envoy_tracing(&config, collector),
            ];
            // Mutual TLS to ext-authz is for its gRPC cluster (envoy.yaml).
            if name.ends_with("/envoy.yaml") {
                variants.push(e2e::stack::with_ext_authz_mtls(&config, dir));
            }
            for variant in variants {
                assert_eq!(sharing_listeners(&variant), Vec::<String>::new(), "{name}, as the e2e stack varies it");
            }
        }
    }
    // The check itself sees a listener without the setting.
    let planted = std::fs::read_to_string(&files[0]).unwrap().replace("enable_reuse_port: false", "");
    assert!(!sharing_listeners(&planted).is_empty());
}

#[test]
fn render_refuses_a_missing_value() {
    let mut values = compose_values();
    values.retain(|(k, _)| *k != "RATELIMIT_PORT");
    let rendered = render("envoy.yaml", &values);
    assert!(!rendered.status.success());
    assert!(String::from_utf8_lossy(&rendered.stderr).contains("RATELIMIT_PORT is not set"));
}

#[test]
fn the_compose_file_follows_the_compose_spec() {
    let checker = workspace_root().join(".venv/bin/check-jsonschema");
    let output = Command::new(&checker)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(workspace_root().join("docker-compose.yml"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/install-deps.sh installs it)", checker.display()));
    assert!(output.status.success(), "docker-compose.yml: {}", String::from_utf8_lossy(&output.stdout));
    // Every file the compose file mounts exists in the repository.
    let compose = std::fs::read_to_string(workspace_root().join("docker-compose.yml")).unwrap();
    for mount in compose.split(['"', ' ', '[', ']', ',']).filter(|s| s.starts_with("./")) {
        let local = mount.split(':').next().unwrap();
        assert!(workspace_root().join(local).exists(), "docker-compose.yml mounts {local}, which does not exist");
    }
}

/// Kinds the Kubernetes schemas know; the rest are gateway CRDs, checked by name only.
const CORE_KINDS: &[&str] = &["Namespace", "Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"];
const GATEWAY_KINDS: &[(&str, &str)] = &[
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"),
    ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"),
    ("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"),
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
    ("gateway.kgateway.dev/v1alpha1", "GatewayExtension"),
    ("gateway.kgateway.dev/v1alpha1", "TrafficPolicy"),
    ("gateway.kgateway.dev/v1alpha1", "ListenerPolicy"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
];

#[test]
fn every_kustomization_renders_and_its_core_objects_validate() {
    for target in
        ["base", "overlays/envoy-gateway", "overlays/kgateway", "overlays/istio", "overlays/istio/gateway-api"]
    {
        let rendered = Command::new("kubectl")
            .arg("kustomize")
            .arg(workspace_root().join("k8s").join(target))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "kubectl: {e}. It renders the k8s/ kustomizations; Debian has no package for it: install it from \
                     https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ (any version of the last three years)"
                )
            });
        assert!(rendered.status.success(), "kubectl kustomize {target}: {}", String::from_utf8_lossy(&rendered.stderr));
        let text = String::from_utf8(rendered.stdout).unwrap();
        let mut core = Vec::new();
        for document in text.split("\n---\n") {
            let field = |name: &str| {
                document
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            let (api_version, kind) = (field("apiVersion"), field("kind"));
            if CORE_KINDS.contains(&kind.as_str()) {
                core.push(document.to_string());
            } else {
                assert!(
                    GATEWAY_KINDS.contains(&(api_version.as_str(), kind.as_str())),
                    "{target}: unexpected {api_version} {kind}"
                );
            }
        }
        assert!(core.iter().any(|d| d.contains("kind: Deployment")), "{target}: no Deployment");
        assert_deployable(target, &core);
        let gateway: Vec<&str> = text.split("\n---\n").filter(|d| !core.iter().any(|c| c == d)).collect();
        if !gateway.is_empty() {
            let checked = validate_gateway_resources(&gateway.join("\n---\n"));
            assert!(checked.status.success(), "{target}: {}{}", checked.stdout, checked.stderr);
        }
        let validate = validate_core_objects(&core.join("\n---\n"));
        assert!(validate.status.success(), "{target}: {}{}", validate.stdout, validate.stderr);
    }
}

/// kubernetes-validate (strict) on core Kubernetes objects.
fn validate_core_objects(yaml: &str) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.yaml");
    std::fs::write(&path, yaml).unwrap();
    let output = Command::new(workspace_root().join(".venv/bin/kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&path)
        .output()
        .expect("kubernetes-validate (scripts/install-deps.sh installs it)");
    Checked {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The core-object check catches a planted mistake too.
#[test]
fn the_core_schemas_catch_a_planted_mistake() {
    let base = std::fs::read_to_string(workspace_root().join("k8s/base/ratelimit.yaml")).unwrap();
    assert!(validate_core_objects(&base).status.success());
    let planted = base.replacen("replicas: 2", "replicas: two", 1);
    assert_ne!(planted, base);
    let checked = validate_core_objects(&planted);
    assert!(!checked.status.success(), "the mistake passed: {}", checked.stdout);
}

#[test]
fn the_kubernetes_configs_are_valid_service_configs() {
    let ratelimit = workspace_root().join("k8s/base/config/ratelimit.yaml");
    let (report, ok) = ratelimit::validate::validate(&[ratelimit.display().to_string()], false);
    assert!(ok, "{report}");
    let config = ext_authz::config::load(&workspace_root().join("k8s/base/config/ext-authz.yaml"), &Default::default());
    assert!(config.is_ok(), "{:?}", config.err());
}

/// The first `key` value after `marker` in a shipped file, as a duration.
fn timeout_after(file: &str, marker: &str, key: &str) -> std::time::Duration {
    let text = std::fs::read_to_string(workspace_root().join(file)).unwrap();
    let after = &text[text.find(marker).unwrap_or_else(|| panic!("{file}: no {marker}"))..];
    let needle = format!("{key}: ");
    let start = after.find(&needle).unwrap_or_else(|| panic!("{file}: no {key} after {marker}")) + needle.len();
    let value: String = after[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
    shared::env::parse_go_duration(&value).unwrap_or_else(|e| panic!("{file}: {value}: {e}"))
}

/// A login callback waits for the provider (`oidc.timeout`) and the session store: every
/// gateway timeout we ship for ext_authz must leave room for it, or a slow provider gets the
/// gateway's own error instead of ext-authz's 503.
#[test]
fn shipped_ext_authz_timeouts_fit_the_login_flow() {
    let env = std::collections::HashMap::from([
        ("OIDC_CLIENT_SECRET".to_string(), "x".to_string()),
        ("SESSION_KEY".to_string(), ext_authz::core::session::seal::new_key()),
    ]);
    let example = workspace_root().join("examples/ext-authz/ext-authz-oidc.yaml");
    let config = ext_authz::config::load(&example, &env).unwrap();
    let worst = config.oidc.as_ref().unwrap().worst_case_check();
    assert!(config.warnings().is_empty(), "the example is the advice: {:?}", config.warnings());
    let shipped = [
        ("examples/envoy/envoy.yaml", "envoy.filters.http.ext_authz", "timeout"),
        ("examples/envoy/envoy-http-authz.yaml", "envoy.filters.http.ext_authz", "timeout"),
        ("k8s/overlays/envoy-gateway/policies.yaml", "extAuth:", "timeout"),
        ("k8s/overlays/kgateway/extensions.yaml", "extAuth:", "requestTimeout"),
        ("k8s/overlays/istio/mesh-config.yaml", "envoyExtAuthzGrpc:", "timeout"),
    ];
    for (file, marker, key) in shipped {
        let timeout = timeout_after(file, marker, key);
        assert!(
            timeout > worst,
            "{file}: ext_authz timeout {timeout:?} is not above the login flow's worst case {worst:?}"
        );
        assert!(timeout >= ext_authz::oidc::TYPICAL_GATEWAY_TIMEOUT, "{file}: {timeout:?}");
    }
}

/// The instructions of one `FROM … AS stage` of the Dockerfile.
fn dockerfile_stage(stage: &str) -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("Dockerfile")).unwrap();
    let mut lines = Vec::new();
    let mut inside = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line.starts_with("FROM ") {
            inside = line.ends_with(&format!(" AS {stage}"));
        } else if inside {
            lines.push(line.to_string());
        }
    }
    assert!(!lines.is_empty(), "no stage {stage} in the Dockerfile");
    lines
}

/// Envoy Gateway runs its rate limit deployment as `/bin/ratelimit` with no arguments (its
/// container spec has no command field): the image must have the binary there and run it.
#[test]
fn the_ratelimit_image_runs_where_envoy_gateway_calls_it() {
    let stage = dockerfile_stage("ratelimit");
    let copied: Vec<&str> =
        stage.iter().filter(|l| l.starts_with("COPY ")).filter_map(|l| l.split_whitespace().last()).collect();
    assert!(copied.contains(&"/bin/ratelimit"), "{stage:?}");
    let entrypoint = stage.iter().find(|l| l.starts_with("ENTRYPOINT ")).expect("an entrypoint");
    let command: Vec<String> = serde_json::from_str(entrypoint.trim_start_matches("ENTRYPOINT ")).unwrap();
    assert_eq!(command, ["/bin/ratelimit"], "no arguments: Envoy Gateway passes none");
    // The services are built without the test crates, so e2e's `test-util` features are not
    // unified into them (the test support stays out of the shipped binaries).
    let build = dockerfile_stage("build").join(" ");
    let service_build = build.split("cargo build").find(|c| c.contains("-p ratelimit")).expect("the services' build");
    assert!(!service_build.contains("-p e2e") && !service_build.contains("-p bench"), "{service_build}");
    let health = stage.iter().find(|l| l.starts_with("HEALTHCHECK ")).expect("a health check");
    let probe: Vec<String> = serde_json::from_str(&health[health.find('[').unwrap()..]).unwrap();
    assert!(copied.contains(&probe[0].as_str()), "{probe:?}");
}

/// What a fresh cluster needs from the rendered objects: images it can pull by their full name
/// (never a bare `name:tag` that resolves to someone else's Docker Hub namespace), the Redis that
/// REDIS_URL names, and no usable credential in an example Secret.
fn assert_deployable(target: &str, documents: &[String]) {
    let images: Vec<&str> = documents
        .iter()
        .flat_map(|d| d.lines())
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .map(str::trim)
        .collect();
    assert!(images.len() >= 3, "{target}: {images:?}");
    for image in &images {
        let registry = image.split('/').next().unwrap_or_default();
        assert!(
            image.contains('/') && (registry.contains('.') || registry.contains(':') || registry == "localhost"),
            "{target}: {image} is not a fully qualified image name"
        );
    }
    // Ours are built by the Dockerfile: each names one of its stages (README, "Images").
    for image in images.iter().filter(|i| i.contains("/gatehouse/")) {
        let name = image.rsplit('/').next().unwrap().split(':').next().unwrap();
        dockerfile_stage(name);
    }
    // REDIS_URL names a Service the same render deploys.
    let all = documents.join("\n---\n");
    let url = all
        .lines()
        .skip_while(|l| !l.contains("name: REDIS_URL"))
        .find_map(|l| l.trim().strip_prefix("value: "))
        .expect("REDIS_URL is set");
    let host = url.split(':').next().unwrap();
    let (service, namespace) = host.split_once('.').map(|(s, rest)| (s, rest.split('.').next().unwrap())).unwrap();
    assert!(
        documents.iter().any(|d| d.contains("kind: Service")
            && d.contains(&format!("  name: {service}\n"))
            && d.contains(&format!("namespace: {namespace}"))),
        "{target}: REDIS_URL {url} names no Service in the render"
    );
    // The example API key Secret holds no key (a shipped one would be publicly known).
    let secret = documents.iter().find(|d| d.contains("name: ext-authz-api-keys")).expect("the API key Secret");
    assert!(!secret.contains("hash:") && !secret.contains("sha256:"), "{target}: {secret}");
}

/// The compose file's mock provider, asked the way its comment says, issues tokens the compose
/// ext-authz config lets through on the protected route. The mock itself (a JVM image) cannot
/// run here: its claim mapping is read from the file it is given, the token signed with a key of
/// ours, and checked by the real policy engine with that config.
#[test]
fn the_compose_mock_providers_tokens_pass_the_protected_route() {
    use std::sync::Arc;

    use ext_authz::core::decision::{Context, Decision};
    use ext_authz::core::jwt::KeySet;
    use ext_authz::testing::{jwks, SigningKey};

    let compose = std::fs::read_to_string(workspace_root().join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("-H 'Host: oidc:8080'") && compose.contains("-d scope=orders:read"),
        "the documented command"
    );
    let mock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("examples/compose/mock-oauth2.json")).unwrap(),
    )
    .unwrap();
    let callback = &mock["tokenCallbacks"][0];
    assert_eq!(callback["issuerId"], "default", "the issuer path ext-authz trusts");
    let mapping = callback["requestMappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["requestParam"] == "scope" && m["match"] == "orders:read")
        .expect("a mapping for the documented request");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut claims = mapping["claims"].clone();
    claims["iss"] = "http://oidc:8080/default".into();
    claims["iat"] = now.into();
    claims["exp"] = (now + 600).into();
    let key = SigningKey::rsa(
        "mock",
        jsonwebtoken::Algorithm::RS256,
        include_str!("../../ext-authz/tests/fixtures/rsa-a.pem"),
    );
    let token = key.sign(&claims);

    let config =
        ext_authz::config::load(&workspace_root().join("examples/compose/ext-authz.yaml"), &Default::default())
            .expect("the compose ext-authz config");
    let keys = vec![Some(Arc::new(KeySet::from_jwks(&jwks(&[&key])).unwrap()))];
    let api_keys = ext_authz::core::apikeys::ApiKeyStore::default();
    let cache = ext_authz::core::token_cache::TokenCache::new(16);
    let ctx = Context { keys: &keys, api_keys: &api_keys, cache: &cache, token_rules: 0, now, session: None };
    let headers = std::collections::HashMap::from([("authorization".to_string(), format!("Bearer {token}"))]);
    let request = ext_authz::core::request::AuthRequest::new("GET", "localhost:10000", "/orders/1", headers);
    let decision = config.engine.check(&request, &ctx);
    assert!(matches!(decision, Decision::Allow(_)), "{decision:?}");

    // ext-authz is given time for the mock's JVM: failures while it starts do not count.
    let health = compose.split("\n  ext-authz:").nth(1).unwrap().split("\n\n").next().unwrap();
    let start_period = health.lines().find_map(|l| l.trim().strip_prefix("start_period: ")).expect("start_period");
    assert!(shared::env::parse_go_duration(start_period).unwrap() >= std::time::Duration::from_secs(60), "{health}");
}

/// The demo's limits are valid and cover the same descriptors as the tests' (only the units and
/// numbers differ), so every demo request meets a limit it can recover from within a minute.
#[test]
fn the_demo_limits_are_per_minute_versions_of_the_tested_ones() {
    let demo = workspace_root().join("examples/demo/ratelimit/config/gatehouse-e2e.yaml");
    let (report, ok) = ratelimit::validate::validate(&[demo.display().to_string()], false);
    assert!(ok, "{report}");
    let keys = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- key: ").map(|k| k.split_whitespace().next().unwrap().to_string()))
            .collect()
    };
    let tested = workspace_root().join("examples/envoy/ratelimit/config/gatehouse-e2e.yaml");
    assert_eq!(keys(&demo), keys(&tested));
    let text = std::fs::read_to_string(&demo).unwrap();
    assert!(!text.contains("unit: hour") && text.contains("unit: minute"), "{text}");
}

struct Checked {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// tests/k8s-schemas/validate.mjs: the gateway resources against the CRD schemas of the
/// kubernetes-models packages (Gateway API, Envoy Gateway, Istio).
fn validate_gateway_resources(yaml: &str) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resources.yaml");
    std::fs::write(&file, yaml).unwrap();
    let script = workspace_root().join("tests/k8s-schemas/validate.mjs");
    assert!(
        workspace_root().join("tests/k8s-schemas/node_modules/@kubernetes-models").is_dir(),
        "tests/k8s-schemas/node_modules is missing: run scripts/install-deps.sh (npm ci)"
    );
    let output = Command::new(shared::testing::node_binary()).arg(script).arg(&file).output().expect("node");
    Checked {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The gateway resources the overlays' READMEs show (not applied by the kustomizations, so not
/// in the rendered output) match the CRD schemas too.
#[test]
fn readme_snippets_match_the_gateway_schemas() {
    let mut checked = 0;
    for overlay in ["envoy-gateway", "kgateway", "istio"] {
        let readme =
            std::fs::read_to_string(workspace_root().join("k8s/overlays").join(overlay).join("README.md")).unwrap();
        for block in readme.split("```yaml\n").skip(1).filter_map(|rest| rest.split("```").next()) {
            let ours = GATEWAY_KINDS.iter().any(|(api, kind)| {
                block.contains(&format!("apiVersion: {api}\n")) && block.contains(&format!("kind: {kind}\n"))
            });
            if !ours {
                continue;
            }
            let result = validate_gateway_resources(block);
            assert!(result.status.success(), "{overlay}/README.md:\n{block}\n{}{}", result.stdout, result.stderr);
            assert!(result.stdout.contains("valid: "), "{}", result.stdout);
            checked += 1;
        }
    }
    assert!(checked >= 1, "no README snippet was checked");
}

/// The schema check catches a mistake in each family of gateway resources we ship.
#[test]
fn the_gateway_schemas_catch_planted_mistakes() {
    let render = |target: &str| {
        let out =
            Command::new("kubectl").arg("kustomize").arg(workspace_root().join("k8s").join(target)).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let eg = render("overlays/envoy-gateway");
    let istio = render("overlays/istio");
    let planted = [
        (eg.replace("failOpen: false", "failOpen: \"no\""), "SecurityPolicy", "/spec/extAuth/failOpen must be boolean"),
        (
            eg.replace("- group: \"\"\n    kind: Service", "- group: \"\"\n    kind: 7"),
            "ReferenceGrant",
            "must be string",
        ),
        (
            eg.replace("type: Distinct", "type: Sometimes"),
            "BackendTrafficPolicy",
            "must be equal to one of the allowed values",
        ),
        (
            istio.replace("action: CUSTOM", "action: MAYBE"),
            "AuthorizationPolicy",
            "must be equal to one of the allowed values",
        ),
    ];
    for (yaml, kind, error) in planted {
        let checked = validate_gateway_resources(&yaml);
        assert!(!checked.status.success(), "{kind}: the mistake passed:\n{}", checked.stdout);
        assert!(checked.stderr.contains(kind) && checked.stderr.contains(error), "{kind}: {}", checked.stderr);
    }
}
