use std::process::ExitCode;

use ratelimit::cli::{self, Command};
use ratelimit::settings::{help_text, http_port, merge_domains, Settings};
use shared::env::ProcessEnv;
use shared::telemetry::{self, LogFormat};
use shared::traces::Tracing;

/// `EX_USAGE`: bad command line or settings, nothing was started.
const EXIT_USAGE: u8 = 64;

/// mimalloc (the default feature): less CPU per request than glibc's malloc in the cost rows of
/// docs/benchmarks.md; `--no-default-features` keeps the system allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("ratelimit: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Run => run(),
        Command::Help => {
            print!("{}", help_text());
            ExitCode::SUCCESS
        }
        Command::Healthcheck => {
            // For container HEALTHCHECKs: the service's own /healthcheck on PORT.
            let port = http_port(&ProcessEnv);
            match shared::serve::probe(&format!("127.0.0.1:{port}"), "/healthcheck") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ratelimit healthcheck: not healthy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Version => {
            println!("ratelimit {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Validate { reference, paths } => {
            let (report, ok) = ratelimit::validate::validate_with(&paths, merge_domains(&ProcessEnv), reference);
            if ok {
                print!("{report}");
                ExitCode::SUCCESS
            } else {
                eprint!("{report}");
                ExitCode::FAILURE
            }
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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building the tokio runtime");
    // The span exporter's batch task runs on the runtime, so it starts inside it.
    let _entered = runtime.enter();
    let format = if settings.log_json { LogFormat::Json } else { LogFormat::Text };
    let tracing = match settings.tracing.clone().map(Tracing::start).transpose() {
        Ok(tracing) => tracing,
        Err(e) => {
            eprintln!("ratelimit: tracing: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let layers = tracing.iter().map(|t| Box::new(t.layer(&["ratelimit"])) as telemetry::ExtraLayer).collect();
    telemetry::init(&settings.log_level, format, &ProcessEnv, layers);
    // After the logger: the raise is logged.
    shared::serve::raise_open_files_limit();
    if let Some(t) = &tracing {
        tracing::info!(endpoint = %t.settings.otlp.endpoint, protocol = ?t.settings.otlp.protocol,
            sampling_rate = t.settings.sampling_rate, "exporting spans over OTLP");
    }
    runtime.block_on(async {
        let running = match ratelimit::start_with_clocks(settings, ratelimit::service::Clocks::system()).await {
            Ok(running) => running,
            Err(e) => {
                tracing::error!("ratelimit failed to start: {e}");
                eprintln!("ratelimit: {e}");
                return if e.is_settings() { ExitCode::from(EXIT_USAGE) } else { ExitCode::FAILURE };
            }
        };
        let signal = shared::shutdown::signal().await;
        tracing::info!(signal, "stopping: health set to not serving, draining in-flight calls");
        running.shutdown().await;
        if let Some(t) = &tracing {
            t.shutdown().await;
        }
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}
