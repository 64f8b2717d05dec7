//! The overlays' placeholders: `k8s/overlays/istio/gateway-api` names the one Gateway API
//! `Gateway` it serves by two values the user fills. Each placeholder under `k8s/overlays` is a
//! row of its overlay README's table; while unfilled it is named by file and key, in the files
//! and in what `kubectl kustomize` renders; the README's fill lines leave none, and the rendered
//! policies then name the user's `Gateway`.

use e2e::envoy::workspace_root;

use super::placeholders::{self, OVERLAY_SECTION};

const OVERLAYS: &str = "k8s/overlays";
const ISTIO_GATEWAY_API: &str = "k8s/overlays/istio/gateway-api";
const ISTIO_README: &str = "k8s/overlays/istio/README.md";

/// The objects `gateway-api/` adds to the base, each with the Gateway's namespace and name.
const GATEWAY_API_OBJECTS: [&str; 4] = [
    "AuthorizationPolicy/gatehouse-ext-authz-gateway-api",
    "EnvoyFilter/gatehouse-ratelimit-gateway-api",
    "EnvoyFilter/gatehouse-ratelimit-actions-gateway-api",
    "EnvoyFilter/gatehouse-drop-underscore-headers-gateway-api",
];

#[test]
fn every_overlay_placeholder_is_a_row_of_its_readme() {
    let root = workspace_root();
    let found = placeholders::find(&root, &[OVERLAYS]).unwrap_or_else(|e| panic!("{e}"));
    assert!(found.iter().any(|p| p.file.starts_with(ISTIO_GATEWAY_API)), "{found:?}");
    let mut overlays: Vec<String> = std::fs::read_dir(root.join(OVERLAYS))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    overlays.sort();
    let mut compared = 0;
    for overlay in &overlays {
        let dir = format!("{OVERLAYS}/{overlay}/");
        let readme = std::fs::read_to_string(root.join(&dir).join("README.md")).unwrap();
        let here: Vec<_> = found.iter().filter(|p| p.file.starts_with(&dir)).cloned().collect();
        let documented = placeholders::documented(&readme, OVERLAY_SECTION);
        assert_eq!(here, documented, "the placeholders in {dir} (left) and its README's table (right) differ");
        compared += here.len();
    }
    assert_eq!(compared, found.len(), "a placeholder outside an overlay's directory: {found:?}");

    // The check names each one by file and key, and the README that says what goes there.
    let report =
        placeholders::check_filled(&root, &[OVERLAYS], ISTIO_README).expect_err("the shipped overlay is unfilled");
    for placeholder in &found {
        assert!(report.contains(&format!("{placeholder} is still a placeholder")), "{placeholder}:\n{report}");
    }
    assert!(report.contains(ISTIO_README), "{report}");
}

/// Unfilled, the render names the Gateway's namespace and name on each object `gateway-api/`
/// adds; filled by the README's lines, none is left (but the base's, which README.md fills) and
/// each object sits in the given namespace and selects the given `Gateway`'s pods.
#[test]
fn the_istio_gateway_api_overlay_is_filled_by_its_readme() {
    let shipped = super::render(&workspace_root().join(ISTIO_GATEWAY_API));
    let found = placeholders::find(shipped.path(), &["rendered"]).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    for object in GATEWAY_API_OBJECTS {
        assert!(keys.contains(&format!("{object}: metadata.namespace").as_str()), "{object}: {keys:?}");
        let selector = |k: &&&str| k.starts_with(object) && k.ends_with(".gateway.networking.k8s.io/gateway-name");
        assert_eq!(keys.iter().filter(selector).count(), 1, "{object}: {keys:?}");
    }
    assert_eq!(keys.len(), 3 + 2 * GATEWAY_API_OBJECTS.len(), "the base's three and the overlay's: {keys:?}");

    let dir = super::copy_of(&["k8s"]);
    let readme = std::fs::read_to_string(workspace_root().join(ISTIO_README)).unwrap();
    let commands = placeholders::fill_commands(&readme, OVERLAY_SECTION);
    placeholders::run_fill(dir.path(), &commands, &[("GATEWAY", "shop-gateway"), ("GATEWAY_NAMESPACE", "shop")]);
    placeholders::check_filled(dir.path(), &[OVERLAYS], ISTIO_README)
        .unwrap_or_else(|e| panic!("after the README's commands:\n{e}"));

    let rendered = super::render(&dir.path().join(ISTIO_GATEWAY_API));
    let left = placeholders::find(rendered.path(), &["rendered"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(left.iter().all(|p| !GATEWAY_API_OBJECTS.iter().any(|o| p.key.starts_with(o))), "{left:?}");
    let text = std::fs::read_to_string(rendered.path().join("rendered/all.yaml")).unwrap();
    let objects: Vec<&str> = text.split("\n---\n").filter(|d| d.contains("-gateway-api\n")).collect();
    assert_eq!(objects.len(), GATEWAY_API_OBJECTS.len(), "{text}");
    for object in objects {
        assert!(object.lines().any(|l| l == "  namespace: shop"), "{object}");
        let selects = |l: &str| l.trim() == "gateway.networking.k8s.io/gateway-name: shop-gateway";
        assert!(object.lines().any(selects), "{object}");
    }
}
