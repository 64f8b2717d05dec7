use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ext_authz::config::keys;
use ext_authz::core::apikeys::{format_hash, hash_key, new_key};
use shared::telemetry::{self, LogFormat};
use shared::traces::Tracing;

const USAGE: &str = "ext-authz — Envoy external authorization (JWT, API keys, OIDC login sessions, per-route policy)

USAGE:
    ext-authz [--config FILE]          run (FILE defaults to $EXT_AUTHZ_CONFIG, below)
    ext-authz validate FILE            check a config file and the files it names; exit 1 listing every
                                       problem of the config (up to 100; a value of the wrong type or an
                                       unknown key is reported alone), else the first of a file it names
    ext-authz api-key new [--client-id ID] [--scopes a,b] [--org-id ORG]
                                       print a fresh API key and the entry to store (its hash)
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
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--help" | "-h" | "help"] => {
            print!("{}", help_text());
            ExitCode::SUCCESS
        }
        ["healthcheck", rest @ ..] => {
            // For container HEALTHCHECKs: /readyz on the local HTTP port.
            let addr = rest.first().map_or_else(default_healthcheck_addr, |addr| addr.to_string());
            match shared::serve::probe(&addr, "/readyz") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ext-authz healthcheck: not ready: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ["--version" | "-V"] => {
            println!("ext-authz {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["validate", file] => validate(PathBuf::from(file), &env),
        ["api-key", "new", rest @ ..] => api_key_new(rest),
        ["session-key", "new"] => {
            println!("{}", ext_authz::core::session::seal::new_key());
            ExitCode::SUCCESS
        }
        [] => run(default_config(&env), env),
        ["--config", file] => run(PathBuf::from(file), env),
        _ => {
            eprintln!("ext-authz: unexpected arguments; see ext-authz --help");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn default_config(env: &HashMap<String, String>) -> PathBuf {
    env.get(keys::EXT_AUTHZ_CONFIG.name).map_or_else(|| PathBuf::from(keys::EXT_AUTHZ_CONFIG.default), PathBuf::from)
}

fn validate(file: PathBuf, env: &HashMap<String, String>) -> ExitCode {
    let config = match ext_authz::config::load(&file, env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = match &config.api_keys {
        Some(location) => match ext_authz::key_files::load(location) {
            Ok(store) => store.len(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => 0,
    };
    // The credential files a start would read (token endpoints are not called).
    if let Err(e) = ext_authz::upstream::check_files(&config.upstream_credentials) {
        eprintln!("{}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    // The files a start would write (a revocations file on a read-only volume stops a start).
    if let Err(e) = config.oidc.as_ref().map_or(Ok(()), ext_authz::oidc::check_files) {
        eprintln!("{}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    for warning in config.warnings() {
        eprintln!("warning: {}: {warning}", file.display());
    }
    println!(
        "OK: {} JWT providers, {} route rules, {} API keys, {} upstream credentials",
        config.engine.providers.len(),
        config.engine.routes.rules.len(),
        keys,
        config.upstream_credentials.len()
    );
    if let Some(oidc) = &config.oidc {
        println!("{}", oidc.worst_case_summary());
    }
    ExitCode::SUCCESS
}

fn api_key_new(args: &[&str]) -> ExitCode {
    let mut client_id = "my-client".to_string();
    let mut scopes = Vec::new();
    let mut org_id = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let Some(value) = rest.next() else {
            eprintln!("ext-authz: {flag} needs a value");
            return ExitCode::from(EXIT_USAGE);
        };
        match *flag {
            "--client-id" => client_id = value.to_string(),
            "--scopes" => {
                scopes = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
            }
            "--org-id" => org_id = Some(value.to_string()),
            other => {
                eprintln!("ext-authz: unknown option {other}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let key = new_key();
    println!("# The key (give it to the client; it is not stored anywhere):");
    println!("#   {key}");
    println!("# The entry to add under `keys:` in your API key file (before its last line, `...`):");
    println!("- hash: {}", format_hash(&hash_key(&key)));
    println!("  client_id: {client_id}");
    println!("  scopes: [{}]", scopes.join(", "));
    if let Some(org) = org_id {
        println!("  org_id: {org}");
    }
    ExitCode::SUCCESS
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
