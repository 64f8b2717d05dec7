//! The HTTP/1 accept loop behind every HTTP port (health, `/json`, debug, metrics, ext-authz's
//! HTTP mode): axum routers served by hyper with the bounds axum's own `serve` lacks.
//!
//! - A header-read timeout: a client that opens a connection and sends a request head slowly
//!   (or not at all, or sits idle between keep-alive requests) is cut off after it, so slow or
//!   idle clients cannot pile up file descriptors or hold a graceful shutdown hostage.
//! - Accept errors (out of file descriptors above all) are logged once per burst and retried
//!   after a short pause instead of spinning or ending the server.
//! - On stop, the listener closes, idle connections are closed at once and requests in progress
//!   finish (the caller bounds that wait with its shutdown timeout); a client still sending a
//!   request head is not waited for.
//! - Optionally TLS (see [`crate::tls`]): each connection's handshake runs on its own task,
//!   bounded by the same timeout, so a slow handshake holds up nobody.

use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::tls::ReloadingServer;

/// Bounds on an HTTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// Longest wait for a complete request head, counted from when the connection starts
    /// waiting for one — so it is also the idle timeout between keep-alive requests.
    pub header_read: Duration,
}

impl Default for HttpTimeouts {
    /// Ten seconds: far longer than any health probe, scraper or Envoy needs to send a request
    /// head, and short enough that a slow client cannot hold a descriptor or a shutdown long.
    fn default() -> Self {
        HttpTimeouts { header_read: Duration::from_secs(10) }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `stop`.
pub fn serve(
    router: axum::Router,
    listener: TcpListener,
    timeouts: HttpTimeouts,
    tls: Option<std::sync::Arc<ReloadingServer>>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let calls = super::Calls::default();
        let stopped = super::stopped(stop);
        tokio::pin!(stopped);
        let mut failing = false;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = &mut stopped => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    failing = false;
                    stream
                }
                Err(e) => {
                    if !failing {
                        tracing::error!("HTTP server cannot accept connections (retrying): {e}");
                        failing = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (router, counted, watcher, tls) = (router.clone(), calls.clone(), graceful.watcher(), tls.clone());
            tokio::spawn(async move {
                // A client that goes away or times out is not the server's error.
                match tls {
                    None => connection(stream, router, counted, timeouts, watcher).await,
                    Some(tls) => {
                        if let Ok(Ok(stream)) = tokio::time::timeout(timeouts.header_read, tls.accept(stream)).await {
                            connection(stream, router, counted, timeouts, watcher).await;
                        }
                    }
                }
            });
        }
        drop(listener);
        // Idle connections close now; requests in progress finish; a client still sending a
        // head is not waited for (its connection ends with the process, or at its timeout).
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = calls.drained() => {}
        }
    })
}

/// One HTTP/1 connection over `io`, with the header-read bound, until it ends or the server's
/// graceful stop closes it.
async fn connection<I>(io: I, router: axum::Router, calls: super::Calls, timeouts: HttpTimeouts, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = TowerToHyperService::new(router);
    // Each request holds a call guard while it is answered: a stop waits for requests, not for
    // connections that are idle or still sending a head.
    let service = service_fn(move |request| {
        let call = calls.start();
        let response = router.call(request);
        async move {
            let response = response.await;
            drop(call);
            response
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .serve_connection(TokioIo::new(io), service);
    let _ = watcher.watch(connection).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    async fn start(timeouts: HttpTimeouts) -> (std::net::SocketAddr, watch::Sender<bool>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/ok", axum::routing::get(|| async { "ok" }));
        let (stop_tx, stop) = watch::channel(false);
        (addr, stop_tx, serve(router, listener, timeouts, None, stop))
    }

    /// Reads until the peer closes the connection; the bytes read.
    fn read_to_close(stream: &mut std::net::TcpStream) -> Vec<u8> {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_and_idle_clients_are_cut_off_at_the_header_timeout() {
        let timeouts = HttpTimeouts { header_read: Duration::from_millis(300) };
        let (addr, stop, task) = start(timeouts).await;
        let outcome = tokio::task::spawn_blocking(move || {
            // Idle: connects and sends nothing.
            let mut idle = std::net::TcpStream::connect(addr).unwrap();
            // Slowloris: half a request head, never finished.
            let mut slow = std::net::TcpStream::connect(addr).unwrap();
            slow.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").unwrap();
            // A keep-alive client that then goes quiet.
            let mut kept = std::net::TcpStream::connect(addr).unwrap();
            kept.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let started = std::time::Instant::now();
            let (idle_bytes, slow_bytes, kept_bytes) =
                (read_to_close(&mut idle), read_to_close(&mut slow), read_to_close(&mut kept));
            (idle_bytes, slow_bytes, String::from_utf8_lossy(&kept_bytes).into_owned(), started.elapsed())
        })
        .await
        .unwrap();
        let (idle, _slow, kept, waited) = outcome;
        assert!(idle.is_empty(), "an idle connection gets no answer, only a close");
        assert!(kept.starts_with("HTTP/1.1 200"), "{kept}");
        assert!(waited < Duration::from_secs(15), "all three were closed by the server ({waited:?})");

        stop.send_replace(true);
        task.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_waits_for_requests_not_for_idle_or_half_sent_connections() {
        let (addr, stop, task) = start(HttpTimeouts { header_read: Duration::from_secs(60) }).await;
        let mut half = std::net::TcpStream::connect(addr).unwrap();
        half.write_all(b"GET /ok HTTP/1.1\r\n").unwrap();
        let mut open = std::net::TcpStream::connect(addr).unwrap();
        open.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        open.read_exact(&mut head).unwrap();
        stop.send_replace(true);
        // The half-sent head would hold it for its 60 s timeout.
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("the stop did not wait").unwrap();
    }
}
