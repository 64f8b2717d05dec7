//! Where the traced profile cases send their spans: a real OTLP receiver in a child process of
//! its own (`bench otlp-sink`), so that receiving the spans is not counted as the service's work.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use shared::env::EnvReader;
use shared::telemetry::{self, LogFormat};
use shared::traces::{otlp_from_env, Protocol, TraceSettings, Tracing};

/// The receiver's process and the exporter sending to it; both end when dropped.
pub struct Sink {
    _receiver: Receiver,
    _tracing: Tracing,
}

/// The receiver's process alone (for a service process that exports to it); killed by its PID
/// when dropped.
pub struct Receiver {
    child: Child,
    /// Its OTLP/gRPC endpoint, `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the receiver in a child process and waits for its endpoint.
pub fn start_receiver() -> anyhow::Result<Receiver> {
    let mut child =
        Command::new(std::env::current_exe()?).arg("otlp-sink").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let endpoint = line.trim().to_string();
    let receiver = Receiver { child, endpoint };
    anyhow::ensure!(receiver.endpoint.starts_with("http://"), "the OTLP sink did not start: {line:?}");
    Ok(receiver)
}

/// Starts the receiver, then installs the services' logging with span export for `target`
/// (a crate name) at `sampling_rate`. Call inside the runtime that will run the service.
pub fn trace_into_sink(sampling_rate: f64, target: &str) -> anyhow::Result<Sink> {
    let receiver = start_receiver()?;
    let env = HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), receiver.endpoint.clone())]);
    let mut reader = EnvReader::new(&env);
    let otlp = otlp_from_env(&mut reader, Protocol::Grpc, None);
    reader.finish()?;
    let settings = TraceSettings {
        otlp,
        service_name: target.to_string(),
        service_namespace: None,
        service_instance_id: None,
        sampling_rate,
    };
    let tracing = Tracing::start(settings)?;
    telemetry::init("warn", LogFormat::Text, &HashMap::new(), vec![Box::new(tracing.layer(&[target]))]);
    Ok(Sink { _receiver: receiver, _tracing: tracing })
}

/// The child: a receiver that prints its gRPC endpoint and runs until its stdin closes.
pub fn run() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let receiver = runtime.block_on(shared::testing::OtlpReceiver::start());
    println!("{}", receiver.grpc_endpoint());
    // The runtime's worker serves the receiver while this thread waits for stdin to close.
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
    drop(receiver);
    Ok(())
}
