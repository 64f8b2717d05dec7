//! The signals that stop a service: SIGTERM (Kubernetes) and SIGINT (Ctrl-C). SIGHUP does not
//! stop one: operators send it after rotating logs (logrotate's `postrotate`), and its default
//! action would kill the process, so it is handled — ext-authz reopens its decision log file,
//! ratelimit (which watches its config files) logs it and carries on.

/// Waits for the first stop signal and returns its name; a SIGHUP meanwhile is logged and
/// ignored.
pub async fn signal() -> &'static str {
    signal_with_hangup(|| tracing::info!("SIGHUP: nothing to reopen (config files are watched); ignored")).await
}

/// Waits for the first stop signal and returns its name, calling `on_hangup` for each SIGHUP
/// meanwhile. The handlers stay installed after it returns (tokio never removes them), so a
/// SIGHUP while draining does not kill the process either.
pub async fn signal_with_hangup(mut on_hangup: impl FnMut()) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("installing a SIGHUP handler");
    loop {
        tokio::select! {
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
            _ = hup.recv() => on_hangup(),
        }
    }
}
