//! The rule model's keys (issue 35): deny rules and their `error`, `when` conditions, address
//! lists, `mode`, named policies and `policy_selector` — what loads, and each problem with the
//! file, the rule (index and name), the key and, for a condition, the position in it.

use super::*;
use crate::core::decision::ErrorCode;
use crate::core::routes::{Action, Mode};

/// A config with API keys (so rules may accept them) and these `routes` rules.
fn with_rules(rules: &str) -> String {
    format!("api_keys: {{file: k.yaml}}\nroutes:\n  rules:\n{rules}")
}

#[test]
fn a_condition_that_does_not_compile_is_named_by_file_rule_key_and_position() {
    let file = write(&with_rules(
        "    - name: ok\n      path: /a\n      accept: [api_key]\n\
         \x20   - name: org-orders\n      path: /orgs/{org}/orders\n      accept: [api_key]\n      when:\n\
         \x20       - route.org == 'acme'\n        - identity.claims.org == idenity.org\n",
    ));
    let text = load(file.path(), &secret_env()).unwrap_err().to_string();
    assert_eq!(
        text,
        format!(
            "{}: routes.rules[1] (org-orders).when[1]: line 1, column 24: unknown variable 'idenity' (the variables are request, source, identity, route, context and now)",
            file.path().display()
        )
    );
    // One expression (not a list) is `when`; an unnamed rule is its index alone.
    assert_eq!(
        error(&with_rules("    - path: /a\n      accept: [api_key]\n      when: request.method = 'GET'\n"))
            .split(": line")
            .next()
            .unwrap(),
        "routes.rules[0].when"
    );
    assert_eq!(
        error(&with_rules("    - {path: /a, accept: [api_key], when: ['  ']}\n")),
        "routes.rules[0].when[0]: an empty condition: write a CEL expression, or leave when out"
    );
    assert_eq!(
        error(&with_rules("    - {path: /a, accept: [api_key], when: {x: 1}}\n")),
        "routes.rules[0].when: expected a CEL expression, or a list of them (all must hold)"
    );
}

#[test]
fn deny_rules_and_their_errors() {
    let config = load(
        write(&with_rules(
            "    - {name: read-only, action: deny, methods: [DELETE], path: /orders/*, \
             error: {code: READ_ONLY, message: orders are read-only}}\n\
             \x20   - {name: plain, action: deny, path: /admin/*, not_client_ips: [10.0.0.0/8, 'fd00::/8']}\n\
             \x20   - {name: explicit, action: deny, path: /x, error: {code: DENIED}}\n\
             \x20   - {name: read, path: /orders/*, accept: [api_key], mode: shadow}\n",
        ))
        .path(),
        &secret_env(),
    )
    .unwrap();
    let rules = &config.engine.routes.rules;
    assert_eq!(
        rules[0].action,
        Action::Deny { code: ErrorCode::Custom("READ_ONLY".into()), message: "orders are read-only".into() }
    );
    assert_eq!(rules[1].action, Action::Deny { code: ErrorCode::Denied, message: "denied by rule plain".into() });
    assert!(rules[0].requires.credentials.is_empty(), "a deny rule takes no credential");
    assert_eq!(rules[1].addresses.not_client_ips.len(), 2);
    assert_eq!(rules[2].action, Action::Deny { code: ErrorCode::Denied, message: "denied by rule explicit".into() });
    assert_eq!((rules[3].mode, &rules[3].action), (Mode::Shadow, &Action::Allow));

    for (rule, said) in [
        ("{name: r, path: /a, accept: [api_key], error: {code: NO}}", "routes.rules[0] (r).error: only a deny rule (action: deny) has an error to answer with"),
        ("{name: r, action: maybe, path: /a}", "routes.rules[0] (r).action: \"maybe\" is not allow or deny"),
        ("{path: /a, accept: [api_key], mode: dry}", "routes.rules[0].mode: \"dry\" is not enforce or shadow"),
        (
            "{name: r, action: deny, path: /a, error: {code: read-only}}",
            "routes.rules[0] (r).error.code: \"read-only\" is not an error code: upper snake case (CONTRACTOR_READ_ONLY), at most 64 characters",
        ),
        (
            "{name: r, action: deny, path: /a, error: {code: _X}}",
            "routes.rules[0] (r).error.code: \"_X\" is not an error code: upper snake case (CONTRACTOR_READ_ONLY), at most 64 characters",
        ),
        (
            "{name: r, action: deny, path: /a, error: {code: FORBIDDEN}}",
            "routes.rules[0] (r).error.code: FORBIDDEN is one of ext-authz's own codes, which clients read as ext-authz's answers: name the rule's reason (or leave code out for DENIED)",
        ),
        (
            "{name: r, action: deny, path: /a, error: {message: ''}}",
            "routes.rules[0] (r).error.message: write a message of 1 to 512 bytes, on one line (no control characters)",
        ),
        (
            "{name: r, action: deny, path: /a, accept: [api_key]}",
            "routes.rules[0] (r).accept: a deny rule takes no credential: it reads the caller through identity in its conditions, scopes and claims",
        ),
        (
            "{name: r, action: deny, path: /a, upstream_credential: x}",
            "routes.rules[0] (r).upstream_credential: a deny rule lets nothing through, so it sets no upstream credential",
        ),
        ("{name: r, action: deny, path: /a, error: {kode: X}}", "routes.rules[0].error.kode: unknown field `kode`, expected `code` or `message`"),
    ] {
        assert_eq!(error(&with_rules(&format!("    - {rule}\n"))), said, "{rule}");
    }
    // Every problem of a rule at once.
    let all = error(&with_rules("    - {name: r, action: deny, path: /a, error: {code: x, message: ''}, mode: x}\n"));
    let keys: Vec<&str> = all.lines().map(|line| line.split(": ").next().unwrap()).collect();
    assert_eq!(
        keys,
        ["routes.rules[0] (r).mode", "routes.rules[0] (r).error.code", "routes.rules[0] (r).error.message"]
    );
}

#[test]
fn address_lists_and_templates_are_checked_entry_by_entry() {
    let problems = error(&with_rules(
        "    - name: ips\n      path: /a\n      accept: [api_key]\n\
         \x20     client_ips: [10.0.0.0/8, 10.0.0.0/33]\n      not_client_ips: [example.com]\n\
         \x20     peer_ips: ['fd00::/8', 10.1.2.3/8]\n      not_peer_ips: ['::1']\n\
         \x20   - {path: '/orgs/{org}*', accept: [api_key]}\n",
    ));
    assert_eq!(
        problems,
        "routes.rules[0] (ips).client_ips[1]: \"10.0.0.0/33\" is not an IP address or a CIDR (10.0.0.0/8, fd00::/8)\n\
         routes.rules[0] (ips).not_client_ips[0]: \"example.com\" is not an IP address or a CIDR (10.0.0.0/8, fd00::/8)\n\
         routes.rules[0] (ips).peer_ips[1]: \"10.1.2.3/8\" has host bits set: write 10.0.0.0/8\n\
         routes.rules[1].path: path \"/orgs/{org}*\": '*' only at the end, and with {params} only as a final '/*'"
    );
}

#[test]
fn named_policies_and_the_selector_load() {
    let config = load(
        write(
            "api_keys: {file: k.yaml}\nroutes: {default: deny}\npolicies:\n\
             \x20 orders-read:\n    rules: [{name: read, path: /orders/*, accept: [api_key]}]\n\
             \x20 strict:\n    mode: shadow\n    public: [/healthz]\n    default: authenticated\n    default_accept: [api_key]\n\
             policy_selector: {context_extension: gatehouse, route_metadata: {namespace: '', annotation: x}}\n",
        )
        .path(),
        &secret_env(),
    )
    .unwrap();
    let policies = &config.engine.policies;
    assert_eq!(policies.named.keys().collect::<Vec<_>>(), ["orders-read", "strict"]);
    assert_eq!(policies.named["orders-read"].mode, Mode::Enforce);
    assert_eq!(policies.named["orders-read"].table.rules[0].name, "read");
    assert_eq!(policies.named["strict"].mode, Mode::Shadow);
    assert_eq!(policies.selector.context_extension, "gatehouse");
    assert_eq!(policies.selector.route_metadata, None, "an empty namespace reads no route metadata");
    // Without the keys: no policies, the documented selector.
    let plain = load(write("routes: {default: deny}\n").path(), &secret_env()).unwrap();
    assert!(plain.engine.policies.named.is_empty());
    assert_eq!(plain.engine.policies.selector, crate::core::routes::PolicySelector::default());
}

#[test]
fn policy_problems_name_the_policy() {
    let problems = error(
        "api_keys: {file: k.yaml}\nroutes: {default: deny}\npolicies:\n\
         \x20 routes: {}\n  'bad name': {}\n  orders:\n    mode: loud\n    default: maybe\n\
         \x20   rules: [{name: r, path: /a, accept: [api_key], when: 'nope == 1'}]\n\
         policy_selector: {route_metadata: {annotation: ''}}\n",
    );
    assert_eq!(
        problems,
        "policies.bad name: \"bad name\" is not a policy name: 1 to 63 letters, digits, '-', '_' or '.'\n\
         policies.orders.mode: \"loud\" is not enforce or shadow\n\
         policies.orders.rules[0] (r).when: line 1, column 1: unknown variable 'nope' (the variables are request, source, identity, route, context and now)\n\
         policies.orders.default: \"maybe\" is not deny, allow or authenticated\n\
         policies.routes: `routes` names the routes section in logs and metrics: name the policy otherwise\n\
         policy_selector.route_metadata.annotation: empty: name the annotation, or set namespace to \"\" to read no route metadata"
    );
    assert!(error("routes: {default: deny}\npolicies:\n  p: {rulez: []}\n")
        .starts_with("policies.p.rulez: unknown field `rulez`"));
}

/// A named policy's rules are held to the gateway's timeout as `routes`' are.
#[test]
fn a_named_policys_waits_are_warned_about() {
    let file = write(&format!(
        "upstream_credentials:\n  - {{name: t, header: authorization, oauth2: {{token_endpoint: https://a/token, client_id: c, client_secret_env: OIDC_CLIENT_SECRET}}}}\n\
         routes: {{default: deny}}\npolicies:\n  web:\n    rules:\n      - {{name: app, path: /app/*, accept: [session], upstream_credential: t}}\n\
         {OIDC_BASE}  session: {{keys: [{{env: SESSION_KEY}}], revocations_file: r.jsonl}}\n"
    ));
    let warnings = load(file.path(), &oidc_env()).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("policies.web.rules[0]: a check of rule \"app\""), "{warnings:?}");
}
