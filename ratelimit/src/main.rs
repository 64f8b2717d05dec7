use std::process::ExitCode;

use ratelimit::settings::{help_text, merge_domains, Settings};
use shared::env::ProcessEnv;
use shared::telemetry::{self, LogFormat};

/// `EX_USAGE`: bad command line or settings, nothing was started.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => run(),
        Some("--help" | "-h" | "help") => {
            print!("{}", help_text());
            ExitCode::SUCCESS
        }
        Some("healthcheck") => {
            // For container HEALTHCHECKs: the service's own /healthcheck on PORT.
            let port = shared::env::Env::var(&ProcessEnv, "PORT").unwrap_or_else(|| "8080".into());
            match shared::serve::probe(&format!("127.0.0.1:{port}"), "/healthcheck") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ratelimit healthcheck: not healthy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("--version" | "-V") => {
            println!("ratelimit {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("validate") if args.len() > 1 => {
            let merge = merge_domains(&ProcessEnv);
            let (report, ok) = ratelimit::validate::validate(&args[1..], merge);
            if ok {
                print!("{report}");
                ExitCode::SUCCESS
            } else {
                eprint!("{report}");
                ExitCode::FAILURE
            }
        }
        Some(other) => {
            eprintln!("ratelimit: unexpected argument {other:?}; see ratelimit --help");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run() -> ExitCode {
    let settings = match Settings::from_env(&ProcessEnv) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("ratelimit: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    telemetry::init(
        &settings.log_level,
        if settings.log_json { LogFormat::Json } else { LogFormat::Text },
        &ProcessEnv,
    );
    shared::serve::raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building the tokio runtime");
    runtime.block_on(async {
        let running = match ratelimit::start(settings, ratelimit::service::system_clock()).await {
            Ok(running) => running,
            Err(e) => {
                tracing::error!("ratelimit failed to start: {e}");
                eprintln!("ratelimit: {e}");
                return ExitCode::FAILURE;
            }
        };
        let signal = shared::shutdown::signal().await;
        tracing::info!(signal, "stopping: health set to not serving, draining in-flight calls");
        running.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}
