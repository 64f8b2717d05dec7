use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ext_authz::config::{keys, SecretFrom, SecretNeed};
use ext_authz::core::apikeys::{hash_key, new_key};
use ext_authz::key_files::printed::{Format, NewEntry};
use shared::telemetry::{self, LogFormat};
use shared::traces::Tracing;

#[path = "main/args.rs"]
mod args;
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
        Command::Validate { file, no_secrets } => validate(file, no_secrets, &env),
        Command::ApiKeyNew(options) => api_key_new(options),
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

const OPTIONS: &str = "the options are --client-id ID, --scopes a,b, --org-id ORG and --format file|secret";

/// A usage error of `api-key new`: the problem and the likely fix, on one line.
fn usage(problem: &str, fix: &str) -> ExitCode {
    eprintln!("ext-authz: {problem}; {fix}");
    ExitCode::from(EXIT_USAGE)
}

fn default_config(env: &HashMap<String, String>) -> PathBuf {
    env.get(keys::EXT_AUTHZ_CONFIG.name).map_or_else(|| PathBuf::from(keys::EXT_AUTHZ_CONFIG.default), PathBuf::from)
}

/// `validate FILE [--no-secrets]`: with `no_secrets`, no secret value is read (environment
/// variables, secret files, upstream credential files): each is listed as a start's need, and
/// the API key files (hashes only) are read when they are there and listed when they are not
/// (a Secret mounted at run time).
fn validate(file: PathBuf, no_secrets: bool, env: &HashMap<String, String>) -> ExitCode {
    let loaded = if no_secrets {
        ext_authz::config::load_without_secrets(&file, env)
    } else {
        ext_authz::config::load(&file, env).map(|config| (config, Vec::new()))
    };
    let (config, mut needs) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = match &config.api_keys {
        Some(location) if no_secrets && !location.exists() => {
            needs.push(SecretNeed { key: "api_keys".into(), from: SecretFrom::File(location.path().into()) });
            0
        }
        Some(location) => match ext_authz::key_files::load(location) {
            Ok(store) => store.len(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => 0,
    };
    if no_secrets {
        for (i, credential) in config.upstream_credentials.iter().enumerate() {
            if let ext_authz::upstream::Source::File(path) = &credential.source {
                let key = format!("upstream_credentials[{i}] ({})", credential.name);
                needs.push(SecretNeed { key, from: SecretFrom::File(path.clone()) });
            }
        }
    } else if let Err(e) = ext_authz::upstream::check_files(&config.upstream_credentials) {
        // The credential files a start would read (token endpoints are not called).
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
        "OK{}: {} JWT providers, {} route rules, {} API keys, {} upstream credentials",
        if no_secrets { " (secrets not read)" } else { "" },
        config.engine.providers.len(),
        config.engine.routes.rules.len(),
        keys,
        config.upstream_credentials.len()
    );
    if no_secrets {
        match needs.as_slice() {
            [] => println!("a start reads no secret"),
            needs => {
                println!("a start needs:");
                for need in needs {
                    println!("  {need}");
                }
            }
        }
    }
    if let Some(oidc) = &config.oidc {
        println!("{}", oidc.worst_case_summary());
    }
    ExitCode::SUCCESS
}

fn api_key_new(args: &[&str]) -> ExitCode {
    let mut entry = NewEntry { hash: [0; 32], client_id: "my-client".into(), scopes: Vec::new(), org_id: None };
    let mut format = Format::File;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let Some(value) = rest.next() else {
            return usage(&format!("api-key new: {flag} needs a value"), OPTIONS);
        };
        match *flag {
            "--client-id" => entry.client_id = value.to_string(),
            "--scopes" => {
                entry.scopes = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
            }
            "--org-id" => entry.org_id = Some(value.to_string()),
            "--format" => match Format::parse(value) {
                Some(chosen) => format = chosen,
                None => {
                    let problem = format!("api-key new: --format {value} is not {}", Format::SPELLINGS);
                    return usage(&problem, "file (the default) prints a key file, secret the Kubernetes Secret");
                }
            },
            other => return usage(&format!("api-key new: unknown option {other}"), OPTIONS),
        }
    }
    let key = new_key();
    entry.hash = hash_key(&key);
    // The key on stderr, the entry on stdout: `api-key new > billing.yaml` stores the hash only.
    eprintln!("The new API key (give it to the client; only its hash is printed below, to store):\n{key}");
    print!("{}", entry.print(format));
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
