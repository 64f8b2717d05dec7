//! `ext-authz explain`: the built binary on configs in a temporary directory, with local keys (a
//! JWKS file, an API key file) and a provider whose keys are remote (never fetched). Each test
//! checks the lines that say why, and that no credential is printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ext_authz::core::apikeys::{format_hash, hash_key};
use ext_authz::testing::{forged, jwks, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_ext-authz");
const API_KEY: &str = "ghk_explain-test-key-000000000000000000000";
/// Every token is valid at this time (`--now`), so the tests never depend on the clock.
const NOW: u64 = 1_700_000_000;

const CONFIG: &str = r#"
jwt_providers:
  - name: corp
    issuer: https://idp.test/
    algorithms: [ES256]
    keys: {jwks_file: jwks.json}
  - name: partner
    issuer: https://partner.test/
    algorithms: [ES256]
    keys: {jwks_uri: "http://127.0.0.1:9/jwks"}
    from: [{header: x-partner-token}]
api_keys:
  from: [{header: x-api-key}]
  file: keys.yaml
routes:
  public: [/healthz]
  default: deny
  rules:
    - name: no-contractor-deletes
      action: deny
      methods: [DELETE]
      path: /orgs/*
      when: has(identity.claims.employment) && identity.claims.employment == 'contractor'
      error: {code: CONTRACTOR_READ_ONLY, message: "contractors cannot delete orders"}
    - name: orders-read
      methods: [GET]
      path: /orgs/{org}/orders/{id}
      accept: [jwt, api_key]
    - name: org-orders
      path: /orgs/{org}/orders/*
      accept: [jwt:corp]
      when:
        - identity.claims.org == route.org
        - request.headers['x-tenant'] == route.org
    - name: internal
      path: /internal/*
      client_ips: [10.0.0.0/8]
      accept: [api_key]
    - name: partner
      path: /partner/*
      accept: [jwt:partner]
policies:
  orders:
    rules:
      - name: orders-only
        path: /orders/*
        accept: [api_key]
    default: deny
...
"#;

/// Shadow rules and a shadow policy beside an enforced rule.
const SHADOW_CONFIG: &str = r#"
jwt_providers:
  - name: corp
    issuer: https://idp.test/
    algorithms: [ES256]
    keys: {jwks_file: jwks.json}
routes:
  default: deny
  rules:
    - name: no-deletes-yet
      action: deny
      methods: [DELETE]
      path: /orgs/*
      mode: shadow
    - name: try-org-match
      path: /orgs/{org}/*
      accept: [jwt]
      when: identity.claims.org == 'globex'
      mode: shadow
    - name: orgs
      path: /orgs/*
      accept: [jwt]
policies:
  strict:
    mode: shadow
    rules:
      - name: read-only
        methods: [GET]
        path: /orgs/*
        accept: [jwt]
    default: deny
...
"#;

struct Setup {
    dir: tempfile::TempDir,
    corp: SigningKey,
    partner: SigningKey,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let corp = SigningKey::ec("corp-1", Algorithm::ES256);
        std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
        std::fs::write(dir.path().join("jwks.json"), jwks(&[&corp])).unwrap();
        let keys = json!({"keys": [{"hash": format_hash(&hash_key(API_KEY)), "client_id": "billing", "scopes": ["orders:read"]}]});
        std::fs::write(dir.path().join("keys.yaml"), format!("{keys}\n...\n")).unwrap();
        Setup { dir, corp, partner: SigningKey::ec("partner-1", Algorithm::ES256) }
    }

    fn with_config(config: &str) -> Setup {
        let setup = Setup::new();
        std::fs::write(setup.config(), config).unwrap();
        setup
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn corp_token(&self, claims: Value) -> String {
        let mut all = json!({"iss": "https://idp.test/", "sub": "u1", "org": "acme", "exp": NOW + 600});
        all.as_object_mut().unwrap().extend(claims.as_object().unwrap().clone());
        self.corp.sign(&all)
    }

    /// Runs `explain` on this setup's config; (exit code, stdout) — stderr must be empty.
    fn explain(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(BIN)
            .arg("explain")
            .arg(self.config())
            .args(["--now", &NOW.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr));
        assert!(stderr.is_empty(), "{stderr}");
        for secret in args.iter().filter(|a| a.len() > 20) {
            assert!(!stdout.contains(*secret), "a credential is printed:\n{stdout}");
        }
        (out.status.code().unwrap(), stdout)
    }
}

fn has_lines(output: &str, lines: &[&str]) {
    for line in lines {
        assert!(output.lines().any(|l| l == *line), "no line {line:?} in:\n{output}");
    }
}

fn jwks_file(dir: &Path) -> String {
    dir.join("jwks.json").display().to_string()
}

#[test]
fn an_allowed_request_shows_each_rule_its_conditions_and_the_identity_headers() {
    let setup = Setup::new();
    let token = setup.corp_token(json!({"employment": "staff"}));
    let url = "https://api.example.com/orgs/acme/orders/./7?x=1";
    let (code, out) =
        setup.explain(&["--method", "delete", "--url", url, "--token", &token, "--header", "X-Tenant: acme"]);
    assert_eq!(code, 0, "{out}");
    has_lines(
        &out,
        &[
            "request: DELETE api.example.com/orgs/acme/orders/7",
            "path: /orgs/acme/orders/7 (normalized from /orgs/acme/orders/./7)",
            "given: the token in header authorization (Bearer)",
            "policy: routes: the route names no policy (context extension or route metadata): routes answers",
            "routes (answers):",
            "  deny rule no-contractor-deletes: skipped: a condition does not hold",
            "    when 1: has(identity.claims.employment) && identity.claims.employment == 'contractor' => false",
            "  rule orders-read: skipped: method DELETE is not one of GET",
            "  rule org-orders: matched: takes the request",
            "    when 1: identity.claims.org == route.org => true",
            "    when 2: request.headers['x-tenant'] == route.org => true",
            "  rule internal: not reached: an earlier rule took the request",
            "  rule partner: not reached: an earlier rule took the request",
            &format!(
                "credential: jwt in header authorization, provider corp: signature verified with the local keys \
                 (jwks_file {}); claims valid",
                jwks_file(setup.dir.path())
            ),
            "answer: allow 200 (authenticated): forwarded to the backend",
            "  set header x-user-id: u1",
        ],
    );
    assert!(out.contains(r#"  claims: {"#) && out.contains(r#""employment":"staff""#), "{out}");
}

#[test]
fn a_deny_rule_wins_over_the_allow_rule() {
    let setup = Setup::new();
    let token = setup.corp_token(json!({"employment": "contractor"}));
    let url = "https://api.example.com/orgs/acme/orders/7";
    let (code, out) =
        setup.explain(&["--method", "DELETE", "--url", url, "--token", &token, "--header", "x-tenant: acme"]);
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            "  deny rule no-contractor-deletes: matched: denies",
            "    when 1: has(identity.claims.employment) && identity.claims.employment == 'contractor' => true",
            "answer: deny 403 CONTRACTOR_READ_ONLY (deny_rule): contractors cannot delete orders",
        ],
    );
}

#[test]
fn a_false_condition_shows_its_value_and_denies() {
    let setup = Setup::new();
    let token = setup.corp_token(json!({}));
    let url = "https://api.example.com/orgs/acme/orders/7";
    let (code, out) =
        setup.explain(&["--method", "POST", "--url", url, "--token", &token, "--header", "x-tenant: globex"]);
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            "  rule orders-read: skipped: method POST is not one of GET",
            "  rule org-orders: matched: takes the request",
            "    when 1: identity.claims.org == route.org => true",
            "    when 2: request.headers['x-tenant'] == route.org => false",
            "answer: deny 403 FORBIDDEN (condition_false): condition 2 of rule org-orders does not hold",
        ],
    );
    // Without the header the condition cannot be evaluated: its error, and a deny of its own.
    let (code, out) = setup.explain(&["--method", "POST", "--url", url, "--token", &token]);
    assert_eq!(code, 2, "{out}");
    let line = out.lines().find(|l| l.starts_with("    when 2: ")).unwrap();
    assert!(line.starts_with("    when 2: request.headers['x-tenant'] == route.org => error: "), "{out}");
    assert!(out.contains("answer: deny 403 CONDITION_ERROR (condition_error): "), "{out}");
}

#[test]
fn rules_skipped_by_path_and_address_say_why() {
    let setup = Setup::new();
    let (code, out) = setup.explain(&[
        "--url",
        "https://api.example.com/internal/jobs",
        "--api-key",
        API_KEY,
        "--peer",
        "192.0.2.1",
        "--xff",
        "10.1.2.3",
    ]);
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            "given: the API key in header x-api-key",
            // A spoofed X-Forwarded-For does not move the client: no proxy is trusted.
            "addresses: peer 192.0.2.1, client 192.0.2.1 (x-forwarded-for 10.1.2.3,192.0.2.1; trusted hops 0)",
            "  deny rule no-contractor-deletes: skipped: method GET is not one of DELETE",
            "  rule orders-read: skipped: path /internal/jobs does not match /orgs/{org}/orders/{id}",
            "  rule org-orders: skipped: path /internal/jobs does not match /orgs/{org}/orders/*",
            "  rule internal: skipped: client address 192.0.2.1 is not in client_ips [10.0.0.0/8]",
            "  rule partner: skipped: path /internal/jobs does not match /partner/*",
            "  default: deny (no rule took the request)",
            "credential: api_key in header x-api-key: a stored key (client_id \"billing\")",
            "answer: deny 403 FORBIDDEN (no_route): no route allows this request",
        ],
    );
    // From inside the network the rule takes it.
    let (code, out) =
        setup.explain(&["--url", "https://api.example.com/internal/jobs", "--api-key", API_KEY, "--peer", "10.9.9.9"]);
    assert_eq!(code, 0, "{out}");
    has_lines(&out, &["  rule internal: matched: takes the request", "  set header x-user-id: billing"]);
}

#[test]
fn forged_and_unsigned_tokens_are_refused_with_why() {
    let setup = Setup::new();
    let other = SigningKey::ec("corp-1", Algorithm::ES256);
    let forged_signature =
        other.sign(&json!({"iss": "https://idp.test/", "sub": "u1", "org": "acme", "exp": NOW + 600}));
    let url = "https://api.example.com/orgs/acme/orders/7";
    let (code, out) = setup.explain(&["--url", url, "--token", &forged_signature]);
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            &format!(
                "credential: jwt in header authorization, provider corp: refused: bad signature (local keys: jwks_file {})",
                jwks_file(setup.dir.path())
            ),
            "answer: deny 401 UNAUTHORIZED (invalid_token): bad signature",
        ],
    );
    // What reads the identity is never reached: the credential is refused first.
    let (code, out) = setup.explain(&["--method", "DELETE", "--url", url, "--token", &forged_signature]);
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            "  deny rule no-contractor-deletes: not reached: it reads the identity, and the route's credential is \
             missing or refused",
            "  rule org-orders: matched: takes the request",
            "    when 1: identity.claims.org == route.org => not evaluated",
            "answer: deny 401 UNAUTHORIZED (invalid_token): bad signature",
        ],
    );
    let unsigned = forged(&json!({"alg": "none"}), &json!({"iss": "https://idp.test/", "sub": "u1"}), b"");
    let (code, out) = setup.explain(&["--url", url, "--token", &unsigned]);
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            "credential: jwt in header authorization: refused: malformed token: bad header",
            "answer: deny 401 UNAUTHORIZED (malformed_token): malformed token: bad header",
        ],
    );
    let expired = setup.corp_token(json!({"exp": NOW - 3600}));
    let (_, out) = setup.explain(&["--url", url, "--token", &expired]);
    has_lines(&out, &["answer: deny 401 EXPIRED_TOKEN (expired_token): token expired"]);
}

#[test]
fn a_remote_keys_provider_is_reported_unchecked_and_never_fetched() {
    let setup = Setup::new();
    let token = setup.partner.sign(&json!({"iss": "https://partner.test/", "sub": "p1", "exp": NOW + 600}));
    let (code, out) = setup.explain(&["--url", "https://api.example.com/partner/x", "--token", &token]);
    assert_eq!(code, 0, "{out}");
    has_lines(
        &out,
        &[
            "given: the token in header x-partner-token",
            "credential: jwt in header x-partner-token, provider partner: signature unchecked (keys are remote); claims valid",
            r#"  claims: {"exp":1700000600,"iss":"https://partner.test/","sub":"p1"}"#,
            "answer: allow 200 (authenticated): forwarded to the backend",
            "  assuming the token's signature is valid (its provider's keys are remote, not checked)",
            "  set header x-user-id: p1",
        ],
    );
    let expired = setup.partner.sign(&json!({"iss": "https://partner.test/", "sub": "p1", "exp": NOW - 3600}));
    let (code, out) = setup.explain(&["--url", "https://api.example.com/partner/x", "--token", &expired]);
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            "credential: jwt in header x-partner-token, provider partner: signature unchecked (keys are remote); refused: token expired",
            "answer: undecided (keys_are_remote): the token's signature needs provider partner's remote keys, which explain does not fetch",
        ],
    );
}

#[test]
fn the_policy_comes_from_the_context_extension() {
    let setup = Setup::new();
    let (code, out) = setup.explain(&[
        "--url",
        "https://api.example.com/orders/1",
        "--api-key",
        API_KEY,
        "--context",
        "policy=orders",
    ]);
    assert_eq!(code, 0, "{out}");
    has_lines(
        &out,
        &[
            "policy: orders: context extension policy=orders",
            "routes (deny rules only):",
            "orders (answers):",
            "  rule orders-only: matched: takes the request",
        ],
    );
    // Envoy Gateway names it in the route's metadata instead.
    let metadata = r#"{"envoy-gateway": {"resources": [{"annotations": {"gatehouse-policy": "orders"}}]}}"#;
    let (code, out) = setup.explain(&["--url", "/orders/1", "--api-key", API_KEY, "--route-metadata", metadata]);
    assert_eq!(code, 0, "{out}");
    has_lines(&out, &["policy: orders: route metadata envoy-gateway annotation gatehouse-policy=orders"]);
    let (code, out) = setup.explain(&["--url", "/orders/1", "--context", "policy=nope"]);
    assert_eq!(code, 2, "{out}");
    has_lines(&out, &["policy: nope: context extension policy=nope, which no policy has: denied (UNKNOWN_POLICY)"]);
    assert!(out.contains("answer: deny 403 UNKNOWN_POLICY"), "{out}");
}

#[test]
fn a_refused_path_and_the_json_output() {
    let setup = Setup::new();
    let (code, out) = setup.explain(&["--url", "https://api.example.com/healthz/..%2forgs/acme"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.lines().any(|l| l.starts_with("path: refused before any rule: ")), "{out}");
    assert!(out.contains("answer: deny 400 BAD_REQUEST (bad_path): "), "{out}");

    let (code, out) = setup.explain(&["--url", "https://api.example.com/healthz", "--json", "--api-key", API_KEY]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["answer"]["decision"], "allow");
    assert_eq!(report["answer"]["reason"], "public");
    assert_eq!(report["trace"]["tables"][0]["public"], "/healthz");
    assert_eq!(report["credentials"][0]["kind"], "api_key");
    assert!(!out.contains(API_KEY));
}

#[test]
fn a_token_from_stdin_is_read_and_never_printed() {
    let setup = Setup::new();
    let token = setup.corp_token(json!({}));
    let mut child = Command::new(BIN)
        .args(["explain", "--url", "https://api.example.com/orgs/acme/orders/7", "--token", "-"])
        .arg(setup.config())
        .args(["--now", &NOW.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(format!("{token}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains(&token));
    has_lines(&stdout, &["  rule orders-read: matched: takes the request"]);
}

#[test]
fn usage_errors_name_the_argument() {
    for (args, said) in [
        (&["explain"][..], "ext-authz: explain needs the config file: ext-authz explain FILE --url URL"),
        (&["explain", "c.yaml"], "ext-authz: explain needs the request's --url (http(s)://HOST/PATH?QUERY, or /PATH)"),
        (
            &["explain", "c.yaml", "--url", "/a", "--methd", "GET"],
            "ext-authz: explain: unknown option \"--methd\" (did you mean --method?); see ext-authz --help",
        ),
        (
            &["explain", "c.yaml", "--url", "/a", "--peer", "nowhere"],
            "ext-authz: explain: --peer \"nowhere\" is not an IP address; see ext-authz --help",
        ),
        (
            &["explain", "c.yaml", "--url", "/a", "--token"],
            "ext-authz: explain: --token needs a value; see ext-authz --help",
        ),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.starts_with(said) && stderr.lines().count() == 1, "{args:?}: {stderr}");
    }
    // A config that does not load: its problems, exit 1 (as validate).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(&config, "routes: {default: maybe}\n...\n").unwrap();
    let out = Command::new(BIN).arg("explain").arg(&config).args(["--url", "/a"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes.default"), "{out:?}");
}

#[test]
fn shadow_rules_and_policies_are_traced_and_their_would_be_answers_listed() {
    let setup = Setup::with_config(SHADOW_CONFIG);
    let token = setup.corp_token(json!({}));
    let url = "https://api.example.com/orgs/acme/orders/7";
    let (code, out) =
        setup.explain(&["--method", "DELETE", "--url", url, "--token", &token, "--context", "policy=strict"]);
    assert_eq!(code, 0, "{out}");
    has_lines(
        &out,
        &[
            "policy: strict: context extension policy=strict, in shadow mode: routes answers, strict is only logged",
            "routes (answers):",
            "  deny rule no-deletes-yet (shadow): matched: would deny (shadow: not the answer)",
            "  rule try-org-match (shadow): matched: its would-be answer is logged, not the answer (shadow)",
            "    when 1: identity.claims.org == 'globex' => false",
            "  rule orgs: matched: takes the request",
            "strict (shadow):",
            "  rule read-only: skipped: method DELETE is not one of GET",
            "  default: deny (no rule took the request)",
            "answer: allow 200 (authenticated): forwarded to the backend",
            "  shadow (logged, not the answer): routes no-deletes-yet would deny DENIED",
            "  shadow (logged, not the answer): routes try-org-match would deny FORBIDDEN",
            "  shadow (logged, not the answer): strict default would deny FORBIDDEN",
        ],
    );
}

/// A condition on the peer's address, a deny rule with a claim rule before its condition (also
/// on a public path), a deny rule on a method, a shadow rule after the rule that answers.
const ADDRESS_CONFIG: &str = r#"
jwt_providers:
  - name: corp
    issuer: https://idp.test/
    algorithms: [ES256]
    keys: {jwks_file: jwks.json}
api_keys:
  from: [{header: x-api-key}]
  file: keys.yaml
routes:
  public: [/orgs/open]
  default: deny
  rules:
    - name: contractor-tenants
      action: deny
      path: /orgs/*
      claims: [{claim: employment, equals: contractor}]
      when: request.headers['x-tenant'] == 'acme'
    - name: no-office-deletes
      action: deny
      methods: [DELETE]
      path: /office/*
    - name: office
      path: /office/*
      accept: [api_key]
      when: source.address == '10.1.2.3'
    - name: orgs
      path: /orgs/*
      accept: [jwt]
    - name: orgs-globex
      path: /orgs/*
      accept: [jwt]
      when: identity.claims.org == 'globex'
      mode: shadow
...
"#;

#[test]
fn an_ipv4_mapped_peer_is_traced_as_the_decision_sees_it() {
    let setup = Setup::with_config(ADDRESS_CONFIG);
    let url = "https://api.example.com/office/desk";
    let (code, out) = setup.explain(&["--url", url, "--api-key", API_KEY, "--peer", "::ffff:10.1.2.3"]);
    assert_eq!(code, 0, "{out}");
    let addresses = out.lines().find(|l| l.starts_with("addresses: ")).unwrap();
    assert!(addresses.starts_with("addresses: peer 10.1.2.3, client 10.1.2.3 "), "{out}");
    has_lines(
        &out,
        &[
            "  rule office: matched: takes the request",
            "    when 1: source.address == '10.1.2.3' => true",
            "answer: allow 200 (authenticated): forwarded to the backend",
        ],
    );
    // The same answer and trace as the IPv4 peer itself.
    let (code, ipv4) = setup.explain(&["--url", url, "--api-key", API_KEY, "--peer", "10.1.2.3"]);
    assert_eq!(code, 0, "{ipv4}");
    let trace = |out: &str| out.lines().filter(|l| l.starts_with("  ")).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(trace(&out), trace(&ipv4));
}

#[test]
fn a_deny_rule_whose_claims_fail_has_its_conditions_not_evaluated() {
    let setup = Setup::with_config(ADDRESS_CONFIG);
    let token = setup.corp_token(json!({"employment": "staff"}));
    // No x-tenant header: were the condition evaluated, it would be an error.
    let (code, out) = setup.explain(&["--url", "https://api.example.com/orgs/acme", "--token", &token]);
    assert_eq!(code, 0, "{out}");
    has_lines(
        &out,
        &[
            "  deny rule contractor-tenants: skipped: claim \"employment\" does not satisfy its rule",
            "    when 1: request.headers['x-tenant'] == 'acme' => not evaluated",
            "  rule orgs: matched: takes the request",
            "answer: allow 200 (authenticated): forwarded to the backend",
        ],
    );
    // A contractor's claims hold: the condition is evaluated, and its error denies.
    let token = setup.corp_token(json!({"employment": "contractor"}));
    let (code, out) = setup.explain(&["--url", "https://api.example.com/orgs/acme", "--token", &token]);
    assert_eq!(code, 2, "{out}");
    let line = out.lines().find(|l| l.starts_with("    when 1: ")).unwrap();
    assert!(line.starts_with("    when 1: request.headers['x-tenant'] == 'acme' => error: "), "{out}");
    has_lines(
        &out,
        &["  deny rule contractor-tenants: matched: a condition failed to evaluate: denies (CONDITION_ERROR)"],
    );
    assert!(out.contains("answer: deny 403 CONDITION_ERROR (condition_error): "), "{out}");
}

#[test]
fn a_deny_rule_on_a_public_path_sees_the_token_the_request_carries() {
    let setup = Setup::with_config(ADDRESS_CONFIG);
    let token = setup.corp_token(json!({"employment": "contractor"}));
    let url = "https://api.example.com/orgs/open";
    let (code, out) = setup.explain(&["--url", url, "--token", &token, "--header", "x-tenant: acme"]);
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            "  deny rule contractor-tenants: matched: denies",
            "    when 1: request.headers['x-tenant'] == 'acme' => true",
            "  public path /orgs/open: no credential needed",
            "answer: deny 403 DENIED (deny_rule): denied by rule contractor-tenants",
        ],
    );
    // Without a token there is no identity: its claims do not hold, the path is open.
    let (code, out) = setup.explain(&["--url", url, "--header", "x-tenant: acme"]);
    assert_eq!(code, 0, "{out}");
    has_lines(
        &out,
        &[
            "  deny rule contractor-tenants: skipped: no identity for its scopes and claims",
            "    when 1: request.headers['x-tenant'] == 'acme' => not evaluated",
            "answer: allow 200 (public): forwarded to the backend",
        ],
    );
}

#[test]
fn a_method_override_and_a_shadow_rule_after_the_answer_are_traced_as_decided() {
    let setup = Setup::with_config(ADDRESS_CONFIG);
    let url = "https://api.example.com/office/desk";
    let override_delete = ["--method", "POST", "--url", url, "--api-key", API_KEY, "--peer", "10.1.2.3"];
    let (code, out) = setup.explain(&[&override_delete[..], &["--header", "X-HTTP-Method-Override: DELETE"]].concat());
    assert_eq!(code, 2, "{out}");
    has_lines(
        &out,
        &[
            "  deny rule no-office-deletes: matched: denies (the method a method override names)",
            "  rule office: not reached: a deny rule denied the request first",
            "answer: deny 403 DENIED (deny_rule): denied by rule no-office-deletes",
        ],
    );
    // A shadow rule after the rule that answers still has its would-be answer.
    let token = setup.corp_token(json!({}));
    let (code, out) = setup.explain(&["--url", "https://api.example.com/orgs/acme", "--token", &token]);
    assert_eq!(code, 0, "{out}");
    has_lines(
        &out,
        &[
            "  rule orgs: matched: takes the request",
            "  rule orgs-globex (shadow): matched: its would-be answer is logged, not the answer (shadow)",
            "    when 1: identity.claims.org == 'globex' => false",
            "  shadow (logged, not the answer): routes orgs-globex would deny FORBIDDEN",
        ],
    );
}

/// Over a grid of requests, the trace tells the answer's story: the deny rule that answered is
/// the one traced as denying, a false condition is the answering rule's, every shadow rule
/// traced as matched has its would-be answer listed, and the other way round.
#[test]
fn the_trace_agrees_with_the_answer_over_a_grid_of_requests() {
    let setup = Setup::with_config(ADDRESS_CONFIG);
    let tokens = [
        None,
        Some(setup.corp_token(json!({"employment": "staff"}))),
        Some(setup.corp_token(json!({"employment": "contractor"}))),
        Some(setup.corp_token(json!({"employment": "contractor", "org": "globex"}))),
    ];
    let paths = ["/orgs/open", "/orgs/acme", "/office/desk", "/elsewhere"];
    let mut checked = 0;
    for path in paths {
        for method in ["GET", "DELETE", "POST"] {
            for token in &tokens {
                for tenant in [None, Some("x-tenant: acme"), Some("x-tenant: globex")] {
                    let url = format!("https://api.example.com{path}");
                    let mut args = vec!["--json", "--method", method, "--url", &url, "--peer", "::ffff:10.1.2.3"];
                    args.extend(token.as_deref().map(|t| ["--token", t]).into_iter().flatten());
                    args.extend(tenant.map(|t| ["--header", t]).into_iter().flatten());
                    args.extend(["--api-key", API_KEY].iter().filter(|_| path == "/office/desk"));
                    let (_, out) = setup.explain(&args);
                    let report: Value = serde_json::from_str(&out).unwrap();
                    agree(&report, &format!("{args:?}"));
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 4 * 3 * 4 * 3);
}

fn agree(report: &Value, case: &str) {
    let answer = &report["answer"];
    let reason = answer["reason"].as_str().unwrap();
    let tables = report["trace"]["tables"].as_array().unwrap();
    let rules = |key: &'static str| tables.iter().flat_map(move |t| t[key].as_array().unwrap().iter());
    let enforced = |rule: &&Value| rule["shadow"] == false && rule["verdict"] == "matched";
    let denying: Vec<&Value> = rules("deny_rules").filter(enforced).collect();
    assert!(denying.len() <= 1, "{case}: {report:#}");
    match denying.first() {
        Some(rule) if rule["why"].as_str().unwrap().starts_with("denies") => {
            assert_eq!(reason, "deny_rule", "{case}: {report:#}")
        }
        Some(_) => assert_eq!(reason, "condition_error", "{case}: {report:#}"),
        None => assert_ne!(reason, "deny_rule", "{case}: {report:#}"),
    }
    let taker = rules("rules").find(|rule| enforced(rule));
    let values = |rule: &Value| -> Vec<String> {
        let conditions = rule["conditions"].as_array().cloned().unwrap_or_default();
        conditions.iter().map(|c| c["value"].as_str().unwrap().to_string()).collect()
    };
    if reason == "condition_false" {
        let values = values(taker.unwrap());
        assert!(values.contains(&"false".to_string()), "{case}: {report:#}");
    }
    if answer["decision"] == "allow" {
        assert!(denying.is_empty(), "{case}: {report:#}");
        if let Some(taker) = taker {
            assert!(values(taker).iter().all(|v| v == "true"), "{case}: {report:#}");
        }
    }
    // Shadow rules: traced as matched (would-be answers) exactly when listed in the answer.
    let listed: Vec<String> = answer["shadow"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let mut words = s.as_str().unwrap().split(' ');
            format!("{} {}", words.next().unwrap(), words.next().unwrap())
        })
        .collect();
    let traced: Vec<String> = tables
        .iter()
        .filter(|t| t["role"] != "shadow")
        .flat_map(|t| {
            let rules = t["deny_rules"].as_array().unwrap().iter().chain(t["rules"].as_array().unwrap());
            rules
                .filter(|r| r["shadow"] == true && r["verdict"] == "matched")
                .map(|r| format!("{} {}", t["name"].as_str().unwrap(), r["name"].as_str().unwrap()))
        })
        .collect();
    assert_eq!(listed, traced, "{case}: {report:#}");
}
