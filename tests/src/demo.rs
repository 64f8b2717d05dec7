//! The demo's start-up checks (`src/bin/demo.rs`): `DEMO_PORT` must be a port, and nothing may
//! listen on it yet — a second demo would otherwise start beside the first, or panic when Envoy
//! cannot bind. Each failure is one line on stderr that says what to do, and an exit code.
//! Every other port the demo uses (Envoy's admin, ext-authz, ratelimit, the backend, Redis) is
//! a free one chosen at start, so only this one can be taken.

use std::net::{Ipv4Addr, TcpListener};

use shared::env::Env;

/// Envoy's listener when `DEMO_PORT` is not set.
pub const DEFAULT_PORT: u16 = 10000;

/// `EX_USAGE`: `DEMO_PORT` is not a port; nothing was started.
pub const EXIT_USAGE: u8 = 64;

/// `EX_UNAVAILABLE`: the port is taken, or Envoy did not start; everything started is stopped.
pub const EXIT_UNAVAILABLE: u8 = 69;

/// Why the demo did not start; its `Display` is the one line the user reads.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: DEMO_PORT={0:?} is not a port: give one from 1 to 65535 (default {DEFAULT_PORT})")]
    BadPort(String),
    #[error("demo: port {port} is already in use (another demo?); pick another with {retry}")]
    PortInUse { port: u16, retry: String },
    #[error("demo: cannot listen on 127.0.0.1:{port}: {source}; pick another port with {retry}")]
    CannotListen { port: u16, retry: String, source: std::io::Error },
    #[error("demo: Envoy did not start: {0}")]
    Envoy(String),
}

impl DemoError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DemoError::BadPort(_) => EXIT_USAGE,
            _ => EXIT_UNAVAILABLE,
        }
    }
}

/// The port Envoy listens on: `DEMO_PORT`, else 10000. Port 0 is refused: the URLs the demo
/// prints would not name the port Envoy chose.
pub fn port(env: &dyn Env) -> Result<u16, DemoError> {
    match env.var("DEMO_PORT") {
        None => Ok(DEFAULT_PORT),
        Some(value) => match value.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(DemoError::BadPort(value)),
        },
    }
}

/// Fails when `port` cannot be bound where Envoy will listen (127.0.0.1). The shipped Envoy
/// configs set `enable_reuse_port: false`; a listener that did not (an older demo's Envoy)
/// still holds the port against this bind, which sets no SO_REUSEPORT. `args` are the demo's
/// own (`--redis`), repeated in the advice.
pub fn check_free(port: u16, args: &[String]) -> Result<(), DemoError> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(DemoError::PortInUse { port, retry: retry(port, args) })
        }
        Err(source) => Err(DemoError::CannotListen { port, retry: retry(port, args), source }),
    }
}

/// What went wrong, from the log of an Envoy that did not start on `port`: the port taken
/// after [`check_free`] (another demo starting at the same moment), or Envoy's own first
/// critical or error line.
pub fn envoy_failed(port: u16, args: &[String], log: &str) -> DemoError {
    if log.contains(&format!(":{port}': Address already in use")) {
        return DemoError::PortInUse { port, retry: retry(port, args) };
    }
    let line = ["][critical][", "][error]["]
        .iter()
        .find_map(|level| log.lines().find(|l| l.contains(level)))
        .or_else(|| log.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("it exited without a word");
    // `[time][thread][level][component] [file:line] message`: the message.
    let message = line.splitn(3, "] ").nth(2).unwrap_or(line);
    DemoError::Envoy(message.trim().to_string())
}

/// The command to start the demo again on the next port above `port` that is free now.
fn retry(port: u16, args: &[String]) -> String {
    let free = (port.saturating_add(1)..=port.saturating_add(100))
        .find(|p| *p != port && TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok())
        .unwrap_or(DEFAULT_PORT + 1);
    let mut command = format!("DEMO_PORT={free} scripts/demo.sh");
    for arg in args {
        command.push(' ');
        command.push_str(arg);
    }
    command
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(value: &str) -> HashMap<String, String> {
        HashMap::from([("DEMO_PORT".to_string(), value.to_string())])
    }

    #[test]
    fn demo_port_is_a_port_or_one_line_saying_so() {
        assert_eq!(port(&HashMap::new()).unwrap(), 10000);
        assert_eq!(port(&env("10001")).unwrap(), 10001);
        for bad in ["abc", "0", "70000", "-1", ""] {
            let e = port(&env(bad)).unwrap_err();
            assert_eq!(e.exit_code(), EXIT_USAGE);
            assert_eq!(
                e.to_string(),
                format!("demo: DEMO_PORT={bad:?} is not a port: give one from 1 to 65535 (default 10000)")
            );
        }
    }

    #[test]
    fn a_taken_port_names_a_free_one_and_the_demos_arguments() {
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let e = check_free(port, &["--redis".to_string()]).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_UNAVAILABLE);
        let said = e.to_string();
        let prefix = format!("demo: port {port} is already in use (another demo?); pick another with DEMO_PORT=");
        let rest = said.strip_prefix(&prefix).unwrap_or_else(|| panic!("{said}"));
        let (suggested, command) = rest.split_once(' ').unwrap();
        assert_eq!(command, "scripts/demo.sh --redis");
        assert!(suggested.parse::<u16>().unwrap() > port, "{said}");
        drop(held);
        assert!(check_free(port, &[]).is_ok());
    }

    #[test]
    fn envoys_failure_is_its_own_first_serious_line() {
        let log = "[2026-12-07 22:10:16.503][32518][warning][main] [source/server/server.cc:900] a warning\n\
                   [2026-12-07 22:10:16.503][32518][critical][main] [source/server/server.cc:449] error \
                   initializing configuration 'envoy.yaml': bad field\n";
        assert_eq!(
            envoy_failed(10000, &[], log).to_string(),
            "demo: Envoy did not start: error initializing configuration 'envoy.yaml': bad field"
        );
        let taken = "[2026-12-07][1][error][config] [listener_manager_impl.cc:1405] listener 'ingress' failed to \
                     bind or apply socket options: cannot bind '127.0.0.1:10000': Address already in use\n";
        assert!(matches!(envoy_failed(10000, &[], taken), DemoError::PortInUse { port: 10000, .. }));
        assert_eq!(envoy_failed(10000, &[], "").to_string(), "demo: Envoy did not start: it exited without a word");
    }
}
