use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ext_authz::config::keys;
use shared::telemetry::{self, LogFormat};
use shared::traces::Tracing;

#[path = "main/api_key.rs"]
mod api_key;
#[path = "main/args.rs"]
mod args;
#[path = "main/explain.rs"]
mod explain;
#[path = "main/validate.rs"]
mod validate;
use args::Command;

const USAGE: &str = "ext-authz — Envoy external authorization (JWT, API keys, OIDC login sessions, per-route policy)

USAGE:
    ext-authz [--config FILE]          run (FILE defaults to $EXT_AUTHZ_CONFIG, below)
    ext-authz validate FILE [--no-secrets]
                                       check a config file and the files it names; exit 1 listing every
                                       problem of the config (up to 100; a value of the wrong type or an
                                       unknown key is reported alone), else the first of a file it names;
                                       --no-secrets: check every secret's reference, not its value, and
                                       list the variables and files a start needs
    ext-authz explain FILE --url URL [--method M] [--header 'NAME: VALUE']… [--token JWT|-]
            [--api-key KEY|-] [--cookie NAME=VALUE]… [--context KEY=VALUE]… [--route-metadata JSON]
            [--peer IP] [--xff 'IP, IP'] [--principal SPIFFE_ID] [--now UNIX_SECONDS] [--json]
                                       the decision on one request, offline, and why: the normalized
                                       path, the policy chosen, each rule and why it did (not) match,
                                       each condition's value, the credential's check (a JWT against
                                       local keys only: a jwks_uri or discovery provider's signature
                                       is unchecked), the identity headers and the answer; URL is
                                       http(s)://HOST/PATH?QUERY or /PATH; --token/--api-key go where
                                       the config reads them (- reads stdin); --context sets Envoy's
                                       context_extensions, --peer the address Envoy saw, --xff the
                                       X-Forwarded-For reaching Envoy; nothing is fetched, and no
                                       credential printed; exit 0 allowed, 2 not allowed, 1 the config
                                       does not load (docs/ext-authz.md: Explaining a decision)
    ext-authz api-key new [--client-id ID] [--scopes a,b] [--org-id ORG] [--format file|secret]
                                       print a fresh API key (stderr) and what stores its hash (stdout):
                                       a whole key file, or the ext-authz-api-keys Secret of k8s/base
    ext-authz session-key new          print a fresh session sealing key (oidc.session.keys)
    ext-authz healthcheck [ADDR]       exit 0 when the local service is ready (ADDR defaults to
                                       127.0.0.1 and the port of server.http_addr's default)
    ext-authz --help | --version

Config keys with a default (every key: examples/ext-authz/ext-authz.yaml and docs/ext-authz.md). Any
key can be overridden from the environment: EXT_AUTHZ__ and the path joined by __, upper-case
(EXT_AUTHZ__SERVER__GRPC_ADDR, EXT_AUTHZ__LOG__LEVEL, …); [] marks each entry of a list.
";

/// The `--help` text: usage, then every declared key and variable, section by section.
fn help_text() -> String {
    format!("{USAGE}\n{}", shared::env::help_sections(keys::ALL, keys::SECTIONS))
}

/// `ext-authz healthcheck` without an address: the local end of the default HTTP address.
fn default_healthcheck_addr() -> String {
    let port = keys::HTTP_ADDR.default.rsplit_once(':').map_or("8080", |(_, port)| port);
    format!("127.0.0.1:{port}")
}

/// `EX_USAGE`.
const EXIT_USAGE: u8 = 64;

/// mimalloc (the default feature): less CPU per request than glibc's malloc in the cost rows of
/// docs/benchmarks.md; `--no-default-features` keeps the system allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The one place the process environment is read (see .clippy.toml): everything below gets
    // this map, as tests pass their own.
    #[allow(clippy::disallowed_methods)]
    let env: HashMap<String, String> = std::env::vars().collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let command = match args::parse(&args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("ext-authz: {problem}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Help => {
            print!("{}", help_text());
            ExitCode::SUCCESS
        }
        Command::Healthcheck(addr) => {
            // For container HEALTHCHECKs: /readyz on the local HTTP port.
            let addr = addr.map_or_else(default_healthcheck_addr, str::to_owned);
            match shared::serve::probe(&addr, "/readyz") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ext-authz healthcheck: not ready: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Version => {
            println!("ext-authz {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Validate { file, no_secrets } => validate::validate(file, no_secrets, &env),
        Command::Explain(options) => explain::explain(&options, &env),
        Command::ApiKeyNew(options) => api_key::new(options, EXIT_USAGE),
        Command::SessionKeyNew => {
            println!("{}", ext_authz::core::session::seal::new_key());
            ExitCode::SUCCESS
        }
        Command::Run(file) => {
            let named = match (&file, env.contains_key(keys::EXT_AUTHZ_CONFIG.name)) {
                (Some(_), _) => "--config",
                (None, true) => keys::EXT_AUTHZ_CONFIG.name,
                (None, false) => "the default path",
            };
            let file = file.unwrap_or_else(|| default_config(&env));
            // Said before anything else: a start without its config never serves (exit 64).
            if !file.exists() {
                eprintln!(
                    "ext-authz: {}: no such config file (from {named}); pass --config FILE or set {} \
                     (examples/ext-authz/ext-authz.yaml is an example)",
                    file.display(),
                    keys::EXT_AUTHZ_CONFIG.name
                );
                return ExitCode::from(EXIT_USAGE);
            }
            run(file, env)
        }
    }
}

fn default_config(env: &HashMap<String, String>) -> PathBuf {
    env.get(keys::EXT_AUTHZ_CONFIG.name).map_or_else(|| PathBuf::from(keys::EXT_AUTHZ_CONFIG.default), PathBuf::from)
}

fn run(file: PathBuf, env: HashMap<String, String>) -> ExitCode {
    let config = match ext_authz::config::load(&file, &env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ext-authz: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building the tokio runtime");
    // The span exporter's batch task runs on the runtime, so it starts inside it.
    let _entered = runtime.enter();
    let tracing = match config.tracing.clone().map(Tracing::start).transpose() {
        Ok(tracing) => tracing,
        Err(e) => {
            eprintln!("ext-authz: {}: telemetry.tracing: {e}", file.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let layers = tracing.iter().map(|t| Box::new(t.layer(&["ext_authz"])) as telemetry::ExtraLayer).collect();
    telemetry::init(&config.log_level, if config.log_json { LogFormat::Json } else { LogFormat::Text }, &env, layers);
    // After the logger: the raise is logged.
    shared::serve::raise_open_files_limit();
    for warning in config.warnings() {
        tracing::warn!(file = %config.file.display(), "{warning}");
    }
    if let Some(t) = &tracing {
        tracing::info!(endpoint = %t.settings.otlp.endpoint, protocol = ?t.settings.otlp.protocol,
            sampling_rate = t.settings.sampling_rate, "exporting spans over OTLP");
    }
    runtime.block_on(async {
        let running = match ext_authz::app::start(config, Arc::new(env), ext_authz::service::system_clock()).await {
            Ok(running) => running,
            Err(e) => {
                eprintln!("ext-authz: {e}");
                return ExitCode::FAILURE;
            }
        };
        let signal = shared::shutdown::signal_with_hangup(|| running.hangup()).await;
        tracing::info!(signal, "stopping: not ready any more, draining in-flight checks");
        running.shutdown().await;
        if let Some(t) = &tracing {
            t.shutdown().await;
        }
        ExitCode::SUCCESS
    })
}
