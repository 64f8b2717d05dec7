use super::*;
use crate::jwks::KeySource;
use crate::oidc::StoreSettings;
use std::io::Write;

mod rules;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz/ext-authz.yaml")
}

fn secret_env() -> HashMap<String, String> {
    HashMap::from([
        ("INTERNAL_JWT_SECRET".to_string(), "x".repeat(40)),
        ("PARTNER_CLIENT_SECRET".to_string(), "partner-secret".to_string()),
    ])
}

/// Writes a config as written, without adding the end-of-document line.
fn write_as_is(content: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    file.write_all(content.as_bytes()).unwrap();
    file
}

/// Writes a config with the end-of-document line that says it is whole (none for a blank one).
fn write(content: &str) -> tempfile::NamedTempFile {
    let blank = content.lines().all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'));
    write_as_is(&if blank { content.to_string() } else { format!("{}\n...\n", content.trim_end()) })
}

fn error(content: &str) -> String {
    error_of(write(content))
}

fn error_of(file: tempfile::NamedTempFile) -> String {
    let err = load(file.path(), &secret_env()).unwrap_err().to_string();
    // Each problem is a line starting with the file name; compare the rest.
    let prefix = format!("{}: ", file.path().display());
    err.lines().map(|line| line.strip_prefix(&prefix).unwrap_or(line)).collect::<Vec<_>>().join("\n")
}

/// The problems of a config that is complete but for the given lines (a minimal `routes:`).
fn error_with_routes(content: &str) -> String {
    error(&format!("{content}routes:\n  default: deny\n"))
}

#[test]
fn the_example_loads() {
    let config = load(&example(), &secret_env()).unwrap();
    assert_eq!(config.engine.providers.len(), 2);
    assert_eq!(config.engine.routes.rules.len(), 6);
    assert_eq!(config.upstream_credentials.len(), 2);
    assert_eq!(config.engine.routes.rules[5].upstream, Some(0), "llm → llm-provider");
    let stock = &config.engine.routes.rules[3].requires;
    assert!(
        stock.credentials.is_empty() && stock.principals[0].to_string() == "spiffe://shop.example/ns/warehouse/sa/*"
    );
    assert_eq!(config.engine.workload.header.as_deref(), Some("x-client-principal"));
    assert_eq!(
        config.provider_keys[0].source,
        KeySource::JwksUri("https://idp.example.com/.well-known/jwks.json".into())
    );
    assert!(matches!(config.provider_keys[1].source, KeySource::Hmac(_)));
    assert!(!format!("{config:?}").contains(&"x".repeat(40)), "secrets never show in debug output");
    assert_eq!(config.server.grpc_addr.port(), 9001);
    assert_eq!(config.server.grpc_timeouts.idle, Some(std::time::Duration::from_secs(300)), "the default idle timeout");
    assert!(config.api_keys.unwrap().file.unwrap().ends_with("api-keys.yaml"));
}

#[test]
fn environment_overrides() {
    let mut env = secret_env();
    env.insert("EXT_AUTHZ__SERVER__GRPC_ADDR".into(), "127.0.0.1:7000".into());
    env.insert("EXT_AUTHZ__LOG__LEVEL".into(), "debug".into());
    env.insert("EXT_AUTHZ__SERVER__GRPC_IDLE_TIMEOUT".into(), "0s".into());
    let config = load(&example(), &env).unwrap();
    assert_eq!(config.server.grpc_addr.to_string(), "127.0.0.1:7000");
    assert_eq!(config.server.grpc_timeouts.idle, None, "0s turns the idle timeout off");
    assert_eq!(config.log_level, "debug");
}

/// A bad value from the environment is the variable's problem: it is named, not the file
/// (which does not hold the value), whatever checks it — serde's types or the sections' own.
#[test]
fn environment_override_errors_name_the_variable() {
    let file = write("routes:\n  default: deny\n");
    let name = file.path().display().to_string();
    for (variable, value, said) in [
        ("EXT_AUTHZ__SERVER__GRPC_ADDR", "bad", "\"bad\" is not an ip:port address"),
        ("EXT_AUTHZ__CACHE__MAX_TOKENS", "many", "expected a whole number, found the text \"many\""),
        ("EXT_AUTHZ__LOG__LEVEL", "loud", "\"loud\" is not trace, debug, info, warn or error"),
        ("EXT_AUTHZ__RELOAD_INTERVAL", "3x", "unknown unit \"x\" in duration \"3x\""),
        ("EXT_AUTHZ__CACHE__MAX_TOKENSS", "3", "unknown field `max_tokenss`, expected `max_tokens`"),
        // A mistyped section, at the top or inside one: no key of the file is wrong.
        ("EXT_AUTHZ__LOGG__LEVEL", "debug", "unknown field `logg`"),
        ("EXT_AUTHZ__LOG__LEVL", "debug", "unknown field `levl`"),
    ] {
        let mut env = secret_env();
        env.insert(variable.into(), value.into());
        let error = load(file.path(), &env).unwrap_err().to_string();
        let key = variable.trim_start_matches("EXT_AUTHZ__").to_ascii_lowercase().replace("__", ".");
        let blamed = format!("{variable} (the environment variable that overrides {key} of {name}): {said}");
        assert!(error.starts_with(&blamed), "{variable}={value}: {error}");
        assert!(!error.contains('\n'), "{variable}={value}: {error}");
    }
    // A section the environment adds to is the file's problem, with the variable beside it.
    let mut env = secret_env();
    env.insert("EXT_AUTHZ__OIDC__ISSUER".into(), "https://idp".into());
    let error = load(file.path(), &env).unwrap_err().to_string();
    assert_eq!(
        error,
        format!("{name}: oidc: missing field `client_id` (the environment sets oidc.issuer: EXT_AUTHZ__OIDC__ISSUER)")
    );
}

/// The keys that take one of two shapes say which, not "did not match any variant of untagged
/// enum"; a value of the wrong type is said in the file's terms, not serde's.
#[test]
fn shape_errors_say_what_is_expected() {
    assert_eq!(
        error_with_routes("identity:\n  metadata_claims: [{a: 1}]\n"),
        "identity.metadata_claims[0]: expected a claim path: `org.id`, or a list of its segments like \
         [\"https://x.io\", tenant]"
    );
    assert_eq!(
        error_with_routes("identity:\n  headers:\n    x-a: {a: 1}\n"),
        "identity.headers.x-a: expected `scopes`, a claim path (`org.id`), or a list of claim paths (the first \
         present wins)"
    );
    assert_eq!(
        error_with_routes("jwt_providers: {name: a}\n"),
        "jwt_providers: expected a list, found a section (a map of keys)"
    );
    let said = error_with_routes("identity:\n  headers:\n    x-a: {a: 1}\n");
    assert!(!said.contains("untagged") && !said.contains("sequence"), "{said}");
    assert_eq!(error("- routes\n"), "expected a section (a map of keys), found a list");
}

/// Without secrets: each is listed (variable or file, with the key that names it) and its
/// value is not needed; everything else is checked as ever.
#[test]
fn secrets_are_listed_without_their_values() {
    let (config, needs) = load_without_secrets(&example(), &HashMap::new()).unwrap();
    assert_eq!(config.engine.providers.len(), 2);
    let listed: Vec<String> = needs.iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        [
            "INTERNAL_JWT_SECRET (environment variable; jwt_providers[1].keys.hmac_secret_env)",
            "PARTNER_CLIENT_SECRET (environment variable; upstream_credentials[1].oauth2.client_secret)",
        ]
    );
    // The login example: a client secret and a session key, from files and variables alike.
    let file = write(&format!(
        "routes: {{default: deny}}\n{OIDC_BASE}  session: {{keys: [{{env: SESSION_KEY}}, {{file: old.key}}], revocations_file: r.jsonl}}\n"
    ));
    let (_, needs) = load_without_secrets(file.path(), &HashMap::new()).unwrap();
    let listed: Vec<String> = needs.iter().map(|n| format!("{:?} {}", n.from, n.key)).collect();
    let old = file.path().parent().unwrap().join("old.key");
    assert_eq!(
        listed,
        [
            "Env(\"SESSION_KEY\") oidc.session.keys[0]".to_string(),
            format!("File({old:?}) oidc.session.keys[1]"),
            "Env(\"OIDC_CLIENT_SECRET\") oidc.client_secret".to_string(),
        ]
    );
    // A reference that cannot work is still refused, and so is the rest of a bad config.
    let bad = write(
        "jwt_providers:\n  - {name: a, issuer: a, algorithms: [HS256], keys: {hmac_secret_env: \"MY=SECRET\"}}\n\
         routes: {default: nope}\n",
    );
    let error = load_without_secrets(bad.path(), &HashMap::new()).unwrap_err().to_string();
    let prefix = format!("{}: ", bad.path().display());
    let lines: Vec<&str> = error.lines().map(|l| l.strip_prefix(&prefix).unwrap_or(l)).collect();
    assert_eq!(
        lines,
        [
            "routes.default: \"nope\" is not deny, allow or authenticated",
            "jwt_providers[0].keys.hmac_secret_env: \"MY=SECRET\" cannot be an environment variable name (empty, or has = or NUL)",
        ]
    );
}

/// What a start refuses, a check without secrets refuses too, and what a start takes it
/// takes: a session key named twice (the same secret twice), TLS files a deployment mounts.
#[test]
fn without_secrets_agrees_with_a_start() {
    let twice = format!(
        "routes: {{default: deny}}\n{OIDC_BASE}  session: {{keys: [{{env: SESSION_KEY}}, {{env: SESSION_KEY}}]}}\n"
    );
    for keys in
        [twice.clone(), twice.replace("{env: SESSION_KEY}", "{file: k}").replacen("{file: k}", "{file: ./k}", 1)]
    {
        let file = write(&keys);
        std::fs::write(file.path().parent().unwrap().join("k"), crate::core::session::seal::new_key()).unwrap();
        let started = load(file.path(), &oidc_env()).unwrap_err().to_string();
        let checked = load_without_secrets(file.path(), &HashMap::new()).unwrap_err().to_string();
        assert!(started.contains("oidc.session.keys: "), "{started}");
        assert_eq!(checked, started);
    }
    // Missing TLS files are a start's problem, listed without secrets.
    let tls = write(
        "routes: {default: deny}\nserver:\n  grpc_tls: {cert_file: absent.crt, key_file: absent.key, client_ca_file: ca.pem}\n",
    );
    let at = |name: &str| tls.path().parent().unwrap().join(name).display().to_string();
    let started = load(tls.path(), &HashMap::new()).unwrap_err().to_string();
    assert!(started.contains(&format!("server.grpc_tls.key_file: {} is not a readable file", at("absent.key"))));
    let (_, needs) = load_without_secrets(tls.path(), &HashMap::new()).unwrap();
    let listed: Vec<String> = needs.iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        [
            format!("{} (file; server.grpc_tls.cert_file)", at("absent.crt")),
            format!("{} (file; server.grpc_tls.key_file)", at("absent.key")),
            format!("{} (file; server.grpc_tls.client_ca_file)", at("ca.pem")),
        ]
    );
}

/// Kubernetes sets variables whose names a shell cannot export (`my-secret.key`), and a
/// config may name them; only a name no environment can hold is refused.
#[test]
fn any_name_an_environment_holds_is_a_variable_name() {
    let file = write(
        "jwt_providers:\n  - {name: a, issuer: a, algorithms: [HS256], keys: {hmac_secret_env: my-secret.key}}\n\
         routes: {default: deny}\n",
    );
    let env = HashMap::from([("my-secret.key".to_string(), "a".repeat(32))]);
    let config = load(file.path(), &env).unwrap();
    assert_eq!(config.engine.providers.len(), 1);
    let (_, needs) = load_without_secrets(file.path(), &HashMap::new()).unwrap();
    assert_eq!(needs[0].from, SecretFrom::Env("my-secret.key".into()));
    for name in ["\"\"", "\"A=B\"", "\"A\\0B\""] {
        let bad = write(&format!(
            "jwt_providers:\n  - {{name: a, issuer: a, algorithms: [HS256], keys: {{hmac_secret_env: {name}}}}}\nroutes: {{default: deny}}\n"
        ));
        let error = load(bad.path(), &env).unwrap_err().to_string();
        assert!(error.contains("cannot be an environment variable name"), "{name}: {error}");
    }
}

#[test]
fn workload_identity_errors_name_the_key() {
    let rules = |rule: &str| {
        error(&format!(
            "workload_identity: {{from: sidecar, trust_domains: [shop.example, \"Bad/Domain\"], header: \"x client\"}}\n\
             routes:\n  rules:\n    - path: /a\n{rule}"
        ))
    };
    assert_eq!(
        rules("      principals: [cluster.local/ns/shop/*, \"spiffe://shop.example/a*\", spiffe://other.example/x]\n      request_principals: [\"a*b\"]\n      accept: []\n"),
        "routes.rules[0].principals[0]: \"cluster.local/ns/shop/*\" is not a SPIFFE ID pattern: write spiffe://<trust domain>/<path>, \
         with * for one segment and a final /** for any rest (Istio's \"cluster.local/ns/shop/*\" is \"spiffe://cluster.local/ns/shop/**\")\n\
         routes.rules[0].principals[1]: \"spiffe://shop.example/a*\": '*' stands for a whole segment; write it between slashes\n\
         routes.rules[0].principals[2]: trust domain \"other.example\" is not in workload_identity.trust_domains, so no caller could match\n\
         routes.rules[0].request_principals[0]: '*' may only start or end a pattern (exact, prefix*, *suffix or *)\n\
         workload_identity.from: \"sidecar\" is not peer (Envoy's mutual TLS peer) or xfcc (a trusted x-forwarded-client-cert)\n\
         workload_identity.trust_domains[1]: \"Bad/Domain\" is not a trust domain (lower-case letters, digits, '.', '-', '_'; no scheme or path)\n\
         workload_identity.header: \"x client\" is not a valid header name"
    );
}

#[test]
fn errors_name_the_key() {
    assert_eq!(
        error("routes:\n  rules:\n    - path: orders\n      accept: []\n"),
        "routes.rules[0].path: path \"orders\" must start with '/'\nroutes.rules[0].accept: accept at least one credential (an empty list only with principals: the workload alone)"
    );
    assert!(error("routes:\n  rulez: []\n").starts_with("routes.rulez: unknown field `rulez`, expected one of"));
    assert_eq!(
        error_with_routes("server:\n  grpc_addr: nine\n"),
        "server.grpc_addr: \"nine\" is not an ip:port address"
    );
    assert_eq!(
        error_with_routes("decision_log: {enabled: true, sample_rate: 2}\n"),
        "decision_log.sample_rate: 2 is not between 0 and 1"
    );
    assert_eq!(
        error_with_routes(
            "jwt_providers:\n  - name: a\n    issuer: i\n    algorithms: [none]\n    keys: {jwks_uri: http://x}\n"
        ),
        "jwt_providers[0].algorithms[0]: \"none\" is not a supported algorithm (never `none`)"
    );
    assert_eq!(
        error_with_routes("jwt_providers:\n  - name: a\n    issuer: i\n    algorithms: [RS256, HS256]\n    keys: {jwks_uri: http://x}\n"),
        "jwt_providers[0].algorithms: HS256: public keys cannot verify HS* tokens"
    );
    assert_eq!(
        error_with_routes(
            "jwt_providers:\n  - name: a\n    issuer: i\n    algorithms: [HS256]\n    keys: {hmac_secret_env: NOPE}\n"
        ),
        "jwt_providers[0].keys.hmac_secret_env: the environment variable NOPE is not set"
    );
    assert_eq!(
        error_with_routes("jwt_providers:\n  - name: a\n    issuer: i\n    algorithms: [RS256]\n    keys: {jwks_uri: http://x, discovery: true}\n"),
        "jwt_providers[0].keys: set exactly one of jwks_uri, discovery, jwks_file, hmac_secret_file and hmac_secret_env"
    );
    assert_eq!(
        error("routes:\n  rules:\n    - path: /a\n      accept: [api_key]\n"),
        "routes.rules[0].accept[0]: api_key is accepted but no api_keys are configured"
    );
    assert_eq!(error("routes:\n  default: maybe\n"), "routes.default: \"maybe\" is not deny, allow or authenticated");
    assert_eq!(
        error("api_keys: {file: k.yaml}\nroutes:\n  rules:\n    - path: /a\n      accept: [api_key]\n      claims:\n        - {claim: role, equals: a, contains: b}\n"),
        "routes.rules[0].claims[0]: set exactly one of equals, one_of and contains"
    );
    assert_eq!(
        error_with_routes("log:\n  level: loud\n"),
        "log.level: \"loud\" is not trace, debug, info, warn or error"
    );
    let missing = load(Path::new("/nonexistent/authz.yaml"), &HashMap::new()).unwrap_err().to_string();
    assert!(missing.starts_with("/nonexistent/authz.yaml: "), "{missing}");
}

fn oidc_env() -> HashMap<String, String> {
    HashMap::from([
        ("OIDC_CLIENT_SECRET".to_string(), "s3cret-client".to_string()),
        ("SESSION_KEY".to_string(), crate::core::session::seal::new_key()),
    ])
}

#[test]
fn the_login_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz/ext-authz-oidc.yaml");
    let config = load(&path, &oidc_env()).unwrap();
    let oidc = config.oidc.as_ref().unwrap();
    assert_eq!(oidc.issuer, "https://login.example.com/realms/corp");
    assert_eq!(oidc.callback_path, "/oauth2/callback");
    assert_eq!(
        oidc.store,
        StoreSettings::Cookie { revocations_file: Some("/var/lib/gatehouse/revocations.jsonl".into()) }
    );
    assert_eq!(oidc.origins, ["https://app.example.com"]);
    assert_eq!(oidc.cookie_name, "__Host-gatehouse_session", "the __Host- prefix where the settings allow it");
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    assert_eq!(oidc.lifetime, Duration::from_secs(8 * 3600));
    assert!(config.engine.sessions.is_some());
    assert!(!format!("{config:?}").contains("s3cret-client"), "the client secret never shows");
}

fn oidc_error(section: &str) -> String {
    let file = write(&format!("routes: {{default: authenticated, default_accept: [session]}}\n{section}"));
    let err = load(file.path(), &oidc_env()).unwrap_err().to_string();
    let prefix = format!("{}: ", file.path().display());
    err.lines().map(|line| line.strip_prefix(&prefix).unwrap_or(line)).collect::<Vec<_>>().join("\n")
}

const OIDC_BASE: &str = "oidc:\n  issuer: https://op.example\n  client_id: app\n  client_secret_env: OIDC_CLIENT_SECRET\n  origins: [https://app.example.com]\n";

#[test]
fn empty_cut_short_and_hostile_files_are_refused() {
    assert_eq!(error(""), "the file is empty");
    assert_eq!(error("# only a comment\n\n   \n"), "the file is empty");
    // A file cut short before its routes: refused, not loaded as deny-all.
    assert_eq!(
        error("jwt_providers:\n  - {name: a, issuer: a, algorithms: [RS256], keys: {jwks_file: k.json}}\n"),
        "routes: missing: a config must say which requests it lets through (is the file cut short?)"
    );
    let mut bomb = String::from("routes: {default: deny}\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..10 {
        bomb.push_str(&format!("x{i}: &x{i} [{}]\n", vec![format!("*x{}", i - 1); 10].join(", ")));
    }
    assert_eq!(error(&bomb), "yaml: line 6: aliases expand to more than 100000 nodes (an alias bomb?)");
    // One long string aliased many times: few nodes, gigabytes once expanded (the file is 827 KiB).
    let strings =
        format!("routes: {{default: deny}}\ns: &s {}\nx:\n{}", "x".repeat(768 << 10), "- *s\n".repeat(20_000));
    assert_eq!(error(&strings), "yaml: line 9: aliases expand to more than 4194304 bytes of text (an alias bomb?)");
    // Valid YAML cut short inside its last rule: refused, not loaded with the rule's scopes lost.
    let cut = "routes:\n  default: deny\n  rules:\n    - path: /orders/*\n      accept: [api_key]\n";
    assert!(
        error_of(write_as_is(cut)).starts_with("the file does not end with `...`"),
        "{}",
        error_of(write_as_is(cut))
    );
    let deep = format!("routes: {{default: deny}}\nx: {}1{}\n", "[".repeat(80), "]".repeat(80));
    assert_eq!(error(&deep), "yaml: line 2: nested deeper than the limit of 64 levels");
}

#[test]
fn every_problem_in_every_section_is_reported_at_once() {
    let config = "server:\n  grpc_addr: nine\n  shutdown_delay: soon\nlog:\n  level: loud\n  format: xml\n\
                  jwt_providers:\n  - {name: a, issuer: i, algorithms: [none], keys: {jwks_uri: http://x}}\n\
                  \x20 - {name: a, issuer: i, algorithms: [RS256], keys: {jwks_uri: http://x}}\n\
                  \x20 - {name: b, issuer: '', algorithms: [RS256], keys: {jwks_uri: http://x}}\n\
                  identity:\n  array_format: xml\n\
                  routes:\n  public: [health]\n  rules:\n\
                  \x20   - {path: orders, methods: ['G T'], accept: [jwt:c, api_key]}\n\
                  \x20   - {path: /ok, accept: [jwt:a], claims: [{claim: x}]}\n\
                  \x20 default: sometimes\nreload_interval: often\n";
    let problems = error(config);
    let keys: Vec<&str> = problems.lines().map(|line| line.split(": ").next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "server.grpc_addr",
            "server.shutdown_delay",
            "log.level",
            "log.format",
            "routes.rules[0].path",
            "routes.rules[0].methods",
            "routes.rules[0].accept[0]",
            "routes.rules[0].accept[1]",
            "routes.rules[1].claims[0]",
            "routes.public[0]",
            "routes.default",
            "jwt_providers[0].algorithms[0]",
            "jwt_providers[1].name",
            "jwt_providers[2].issuer",
            "identity.array_format",
            "reload_interval",
        ],
        "{problems}"
    );
}

/// The list is bounded: a file of thousands of bad rules gets the first hundred and a count.
#[test]
fn a_flood_of_problems_is_listed_up_to_the_bound() {
    let paths: Vec<String> = (0..1_000).map(|i| format!("bad-{i}")).collect();
    let problems = error(&format!("routes:\n  public: [{}]\n", paths.join(", ")));
    let lines: Vec<&str> = problems.lines().collect();
    assert_eq!(lines.len(), check::MAX_PROBLEMS + 1);
    assert!(lines[0].starts_with("routes.public[0]: path \"bad-0\""), "{}", lines[0]);
    assert_eq!(lines[check::MAX_PROBLEMS], "… and 900 more problems");
}

#[test]
fn login_config_errors_name_the_key() {
    let session = "  session: {keys: [{env: SESSION_KEY}]}\n";
    // The cookie, the session and the rest of the section are checked independently.
    assert_eq!(
        oidc_error(&format!(
            "{OIDC_BASE}  timeout: soon\n  cookie: {{same_site: none, secure: false}}\n  session: {{keys: []}}\n"
        )),
        "oidc.cookie.same_site: browsers refuse SameSite=None without Secure\n\
         oidc.session.keys: at least one session key is needed\n\
         oidc.timeout: bad number in duration \"soon\""
    );
    assert_eq!(
        error("routes: {rules: [{path: /app, accept: [session]}]}"),
        "routes.rules[0].accept[0]: session is accepted but oidc is not configured"
    );
    assert_eq!(
        oidc_error(&format!("{}{session}", OIDC_BASE.replace("OIDC_CLIENT_SECRET", "NOPE"))),
        "oidc.client_secret: the environment variable NOPE is not set"
    );
    assert_eq!(
        oidc_error(&format!("{OIDC_BASE}  session: {{keys: [{{env: OIDC_CLIENT_SECRET}}]}}\n")),
        "oidc.session.keys[0]: not base64"
    );
    assert_eq!(
        oidc_error(&format!("{OIDC_BASE}  session: {{keys: []}}\n")),
        "oidc.session.keys: at least one session key is needed"
    );
    assert_eq!(
        oidc_error(&format!("{OIDC_BASE}  cookie: {{same_site: none, secure: false}}\n{session}")),
        "oidc.cookie.same_site: browsers refuse SameSite=None without Secure"
    );
    assert_eq!(
        oidc_error(&format!("{OIDC_BASE}  callback_path: oauth2/callback\n{session}")),
        "oidc.callback_path: \"oauth2/callback\" must be a path starting with '/' (no query)"
    );
    assert_eq!(
        oidc_error(&format!("{OIDC_BASE}  session: {{store: redis, keys: [{{env: SESSION_KEY}}]}}\n")),
        "oidc.session.redis: store: redis needs redis.url"
    );
    assert_eq!(
        oidc_error(&format!("{OIDC_BASE}  id_token_algorithms: [HS256]\n{session}")),
        "oidc.id_token_algorithms[0]: ID tokens are verified with the provider's public keys, not HS*"
    );
    assert!(oidc_error(&format!("{OIDC_BASE}  sesion: {{}}\n")).contains("unknown field `sesion`"));
}

#[test]
fn an_absolute_callback_url_fixes_the_redirect_uri() {
    let file = write(&format!(
        "routes: {{default: deny}}\n{OIDC_BASE}  callback_path: https://app.example.com/auth/callback\n  session: {{keys: [{{env: SESSION_KEY}}]}}\n"
    ));
    let config = load(file.path(), &oidc_env()).unwrap();
    let oidc = config.oidc.unwrap();
    assert_eq!(oidc.callback_path, "/auth/callback");
    assert_eq!(oidc.callback_url.as_deref(), Some("https://app.example.com/auth/callback"));
}

#[test]
fn redirect_uris_come_from_configured_origins_only() {
    let session = "  session: {keys: [{env: SESSION_KEY}]}\n";
    let without = OIDC_BASE.replace("  origins: [https://app.example.com]\n", "");
    assert!(
        oidc_error(&format!("{without}{session}")).starts_with("oidc.origins: list the origins browsers reach"),
        "{}",
        oidc_error(&format!("{without}{session}"))
    );
    for (bad, why) in [
        ("https://app.example.com/path", "must be only scheme://host[:port], without a path"),
        ("ftp://app.example.com", "is not an http(s) origin"),
        ("app.example.com", "is not a URL"),
    ] {
        let text = format!("{}  origins: [\"{bad}\"]\n{session}", without);
        let error = oidc_error(&text);
        assert!(error.starts_with("oidc.origins[0]: ") && error.contains(why), "{bad}: {error}");
    }
    let file = write(&format!(
        "routes: {{default: deny}}\n{without}  origins: [\"HTTPS://App.Example.com:443\", \"http://127.0.0.1:8080/\"]\n{session}"
    ));
    let oidc = load(file.path(), &oidc_env()).unwrap().oidc.unwrap();
    assert_eq!(oidc.origins, ["https://app.example.com", "http://127.0.0.1:8080"]);
    assert_eq!(
        oidc_error(&format!("{OIDC_BASE}  logout_get: sometimes\n{session}")),
        "oidc.logout_get: \"sometimes\" is not confirm, refuse or allow"
    );
    assert_eq!(
        oidc_error(&format!("{OIDC_BASE}  cookie: {{domain: \"example.com; Path=/x\"}}\n{session}")),
        "oidc.cookie.domain: \"example.com; Path=/x\" is not a domain name"
    );
}

#[test]
fn timeouts_that_cannot_fit_the_gateway_are_warned_about() {
    let load_with = |extra: &str| {
        let file = write(&format!("routes: {{default: deny}}\n{OIDC_BASE}{extra}"));
        load(file.path(), &oidc_env()).unwrap()
    };
    let defaults = load_with("  session: {keys: [{env: SESSION_KEY}], revocations_file: r.jsonl}\n");
    assert_eq!(defaults.oidc.as_ref().unwrap().timeout, Duration::from_secs(1));
    assert!(defaults.warnings().is_empty(), "{:?}", defaults.warnings());
    let slow = load_with("  timeout: 5s\n  session: {keys: [{env: SESSION_KEY}], revocations_file: r.jsonl}\n");
    let warnings = slow.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("oidc.timeout: a login callback or refresh may take up to 5s"), "{warnings:?}");
    // The Redis store's two calls count too.
    let redis = load_with(
        "  timeout: 1500ms\n  session: {keys: [{env: SESSION_KEY}], store: redis, redis: {url: \"r:6379\"}}\n",
    );
    assert!(redis.warnings()[0].contains("up to 2.1s"), "{:?}", redis.warnings());
    // Every other wait inside a check: a key set refetch, an upstream token request.
    let file = write(
        "jwt_providers:\n  - {name: a, issuer: a, algorithms: [RS256], keys: {jwks_uri: https://a/jwks}, jwks_refresh: {unknown_kid_wait: 3s}}\n\
         upstream_credentials:\n  - {name: fast, header: authorization, oauth2: {token_endpoint: https://a/token, client_id: c, client_secret_env: OIDC_CLIENT_SECRET}}\n\
         \x20 - {name: slow, header: authorization, oauth2: {token_endpoint: https://a/token, client_id: c, client_secret_env: OIDC_CLIENT_SECRET, timeout: 2s}}\n\
         routes: {default: deny}\n",
    );
    let warnings = load(file.path(), &oidc_env()).unwrap().warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("jwt_providers[0].jwks_refresh.unknown_kid_wait: a check waiting"), "{warnings:?}");
    assert!(warnings[1]
        .starts_with("upstream_credentials[1].oauth2.timeout: a check waiting for a token may take up to 2s"));
    // Waits that fit alone but not one after the other in one check: a session's provider
    // step (1 s) and then the rule's upstream token (1 s). The same token behind a JWT fits.
    let file = write(&format!(
        "jwt_providers:\n  - {{name: a, issuer: a, algorithms: [RS256], keys: {{jwks_uri: https://a/jwks}}}}\n\
         upstream_credentials:\n  - {{name: t, header: authorization, oauth2: {{token_endpoint: https://a/token, client_id: c, client_secret_env: OIDC_CLIENT_SECRET}}}}\n\
         routes:\n  default: deny\n  rules:\n    - {{name: app, path: /app/*, accept: [session], upstream_credential: t}}\n\
         \x20   - {{name: api, path: /api/*, accept: [jwt], upstream_credential: t}}\n\
         {OIDC_BASE}  session: {{keys: [{{env: SESSION_KEY}}], revocations_file: r.jsonl}}\n"
    ));
    let warnings = load(file.path(), &oidc_env()).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("routes.rules[0]: a check of rule \"app\""), "{warnings:?}");
    assert!(warnings[0].contains("may take up to 2s"), "{warnings:?}");
    // A cookie store without a revocation file forgets logouts on restart: said so.
    let forgetful = load_with("  session: {keys: [{env: SESSION_KEY}]}\n");
    assert!(
        forgetful.warnings()[0].starts_with("oidc.session.revocations_file: not set"),
        "{:?}",
        forgetful.warnings()
    );
}

/// Every key the config file accepts is shown in the commented examples (set, or commented
/// out with its default), so the examples stay the reference a user reads: the file as
/// written, with serde's defaults filled in for every section present, names every key.
#[test]
fn the_examples_show_every_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz");
    let mut env = secret_env();
    env.insert("OIDC_CLIENT_SECRET".into(), "x".repeat(32));
    env.insert("SESSION_KEY".into(), "x".repeat(44));
    let mut shown = String::new();
    let mut keys = std::collections::BTreeSet::new();
    for file in ["ext-authz.yaml", "ext-authz-oidc.yaml"] {
        let raw = read_raw(&dir.join(file), &overrides(&env)).unwrap();
        shown.push_str(&std::fs::read_to_string(dir.join(file)).unwrap());
        collect_keys(&serde_json::to_value(&raw).unwrap(), &mut keys);
    }
    assert!(keys.len() > 60, "{keys:?}");
    let missing: Vec<&String> = keys.iter().filter(|key| !shown.contains(&format!("{key}:"))).collect();
    assert!(missing.is_empty(), "keys the examples do not show: {missing:?}");
}

/// Object keys at any depth (map keys that are user data, like header names, included: the
/// examples show those too).
fn collect_keys(value: &serde_json::Value, keys: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                keys.insert(key.clone());
                collect_keys(v, keys);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_keys(v, keys)),
        _ => {}
    }
}

/// Copies a directory (the example configs and the files they name) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether `rest` (what a cut loses) holds anything but blank lines and comments.
fn loses_content(rest: &str) -> bool {
    rest.lines().any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
}

/// Every byte-prefix of every shipped config is refused, or — when all it loses is comments and
/// blank lines after the end marker — loads as the very config the whole file is. So no cut can
/// load a weaker policy.
#[test]
fn no_cut_of_a_shipped_config_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root.join("examples/ext-authz"), &dir.path().join("ext-authz"));
    let examples = [
        ("examples/ext-authz/ext-authz.yaml", secret_env()),
        ("examples/ext-authz/ext-authz-oidc.yaml", oidc_env()),
        ("examples/compose/ext-authz.yaml", HashMap::new()),
        ("k8s/base/config/ext-authz.yaml", HashMap::new()),
    ];
    for (example, env) in examples {
        let whole = std::fs::read_to_string(root.join(example)).unwrap();
        // In the copied examples directory, so that the files it names are where it says.
        let path = dir.path().join("ext-authz").join("cut.yaml");
        std::fs::write(&path, &whole).unwrap();
        let normal = |c: AuthzConfig| AuthzConfig { initial_fingerprint: 0, ..c };
        let expected = normal(load(&path, &env).unwrap_or_else(|e| panic!("{example}: {e}")));
        let mut loaded = 0;
        for cut in (0..whole.len()).filter(|cut| whole.is_char_boundary(*cut)) {
            std::fs::write(&path, &whole[..cut]).unwrap();
            match load(&path, &env) {
                Ok(config) => {
                    assert!(!loses_content(&whole[cut..]), "{example} cut at byte {cut} loads");
                    assert!(normal(config) == expected, "{example} cut at byte {cut} loads another config");
                    loaded += 1;
                }
                Err(_) => {
                    assert!(loses_content(&whole[cut..]), "{example}: only a comment cut at byte {cut} is refused")
                }
            }
        }
        assert!(loaded > 0, "{example}: a cut of trailing comments or blank lines loads");
    }
}

/// The same for API key files: every byte-prefix that loses a key or any part of one is refused.
#[test]
fn no_cut_of_the_shipped_key_file_loads() {
    let whole =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ext-authz/api-keys.yaml"))
            .unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    let location = crate::key_files::ApiKeysLocation { file: Some(file.path().to_path_buf()), dir: None };
    let expected = crate::key_files::load(&location);
    assert!(expected.is_err(), "the file is not written yet");
    std::fs::write(file.path(), &whole).unwrap();
    let expected = crate::key_files::load(&location).unwrap();
    for cut in 0..whole.len() {
        std::fs::write(file.path(), &whole[..cut]).unwrap();
        match crate::key_files::load(&location) {
            Ok(keys) => {
                assert!(!loses_content(&whole[cut..]), "cut at byte {cut} loads");
                assert_eq!(format!("{keys:?}"), format!("{expected:?}"), "cut at byte {cut} loads other keys");
            }
            Err(e) => {
                assert!(loses_content(&whole[cut..]), "cut at byte {cut} refused: {e}");
            }
        }
    }
    // A key file in JSON (flow style) needs no end line: no cut of it parses.
    std::fs::write(file.path(), r#"{"keys": [{"hash": "sha256:00", "client_id": "a"}]}"#).unwrap();
    let err = crate::key_files::load(&location).unwrap_err().to_string();
    assert!(!err.contains("does not end with"), "{err}");
}

/// The files of a key directory share one alias budget: many files each within the bound must
/// not expand to many times it together.
#[test]
fn the_key_files_of_a_directory_share_the_alias_budget() {
    let dir = tempfile::tempdir().unwrap();
    for (name, hash_digit) in [("a.yaml", "a"), ("b.yaml", "b")] {
        // 3 MiB of aliased text in each file: within the 4 MiB bound alone.
        let entry = format!(
            "keys:\n  - hash: sha256:{}\n    client_id: {name}\n    attributes: {{a: &s {}, b: *s, c: *s, d: *s}}\n...\n",
            hash_digit.repeat(64),
            "x".repeat(1 << 20)
        );
        std::fs::write(dir.path().join(name), entry).unwrap();
    }
    let one = crate::key_files::ApiKeysLocation { file: Some(dir.path().join("a.yaml")), dir: None };
    assert_eq!(crate::key_files::load(&one).unwrap().len(), 1);
    let both = crate::key_files::ApiKeysLocation { file: None, dir: Some(dir.path().to_path_buf()) };
    let err = crate::key_files::load(&both).unwrap_err().to_string();
    assert!(err.contains("b.yaml") && err.contains("aliases expand to more than 4194304 bytes"), "{err}");
}
