//! `ext-authz explain FILE --url URL …`: the decision on one request given on the command line,
//! offline, and why — the policy and rules it met, each condition's value, the credential's
//! check, the identity headers and the answer. The answer is the decision's own
//! (`Engine::check`, with the keys on this machine); the rule-by-rule trace is
//! `core::explain`'s. Nothing is fetched: a provider with remote keys has its tokens' claims
//! checked and their signature reported unchecked. No token, key or secret is printed.

#[path = "explain/credential.rs"]
mod credential;
#[path = "explain/options.rs"]
pub mod options;
#[path = "explain/report.rs"]
mod report;
#[path = "explain/request.rs"]
mod request;

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;

use ext_authz::core::decision::Context;
use ext_authz::core::explain::{self as trace, Inputs};
use ext_authz::core::token_cache::TokenCache;

use options::{Options, Secret};
use report::Report;

/// The answer was not an allow (a deny, a login, or no answer offline): for scripts.
const EXIT_NOT_ALLOWED: u8 = 2;

pub fn explain(options: &Options, env: &HashMap<String, String>) -> ExitCode {
    let config = match ext_authz::config::load(&options.file, env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let api_keys = match ext_authz::key_files::load_any(config.api_keys.as_ref()) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let credentials = match read_credentials(options) {
        Ok(credentials) => credentials,
        Err(e) => {
            eprintln!("ext-authz explain: reading the credential from stdin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let engine = &config.engine;
    let built = request::build(options, &credentials, engine);
    let request = &built.request;
    let now = options.now.unwrap_or_else(|| ext_authz::service::system_clock()());
    let keys = credential::load_keys(&config);
    let checks = credential::check_all(engine, &keys, &api_keys, request, now);
    // A remote-keys token whose claims hold is taken as verified: the answer is then the one
    // its valid signature would get (and said so).
    let cache = TokenCache::new(16);
    let assumed = credential::seed(&cache, engine, &keys, request, now);
    let ctx = Context { keys: &keys.sets, api_keys: &api_keys, cache: &cache, token_rules: 0, now, session: None };
    // The decision's own answer, with its notes (shadow rules' would-be answers).
    let verdict = engine.decide(request, &ctx);
    // The trace takes the same steps with the same functions (addresses, credential, rules).
    let inputs = Inputs::new(engine, request, &ctx);
    let traced = request.path_error.is_none().then(|| trace::trace(engine, &inputs));
    let report = Report::new(&config, &built, options, inputs.source, traced, checks, &verdict, &keys.kinds, assumed);
    // Every credential the request carries, wherever it was put, is cut out of what is printed.
    let secrets: Vec<String> = credentials
        .token
        .iter()
        .chain(&credentials.api_key)
        .cloned()
        .chain(report::credential_values(engine, request))
        .collect();
    let printed = if options.json { report.json() } else { report.text() };
    print!("{}", report::redact(printed, &secrets));
    if report.allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_ALLOWED)
    }
}

/// `--token` / `--api-key`, read from stdin when `-` (one line, trimmed).
fn read_credentials(options: &Options) -> std::io::Result<request::Credentials> {
    let read = |secret: &Option<Secret>| -> std::io::Result<Option<String>> {
        match secret {
            None => Ok(None),
            Some(Secret::Given(value)) => Ok(Some(value.clone())),
            Some(Secret::Stdin) => {
                let mut text = String::new();
                std::io::stdin().take(64 * 1024).read_to_string(&mut text)?;
                Ok(Some(text.trim().to_string()))
            }
        }
    };
    Ok(request::Credentials { token: read(&options.token)?, api_key: read(&options.api_key)? })
}
