//! The accept loop behind every gRPC port (TCP, TLS, unix socket). tonic serves each
//! connection; this adds what tonic's own loop lacks:
//!
//! - An HTTP/2 idle timeout: a connection on which no stream has been open for
//!   [`GrpcTimeouts::idle`] is closed gracefully (GOAWAY, then close once the client has seen
//!   it), so idle connections cannot hold descriptors for ever: with a low hard limit on open
//!   files, a few hundred connections that never send a call made the port unreachable. A call
//!   in progress, or a stream (a health `Watch`), keeps its connection; PING frames do not count
//!   as use (a keepalive is not a call). Clients such as Envoy open a new connection on their
//!   next call. A client that does not take the close (never answers the GOAWAY's PING) is cut
//!   off [`GrpcTimeouts::close_grace`] later.
//! - A graceful stop that waits for calls in progress, never for idle connections (see
//!   [`super::Calls`]).
//!
//! Each connection is served by a tonic server of its own, over a stream of that one
//! connection: tonic's server is what applies the router's settings (maximum connection age,
//! `grpc-timeout`, error answers), and its stop signal is the only way to have it close a
//! connection gracefully, so each connection's signal is "idle, or the service stops".
//! Streams are counted by [`CountStreams`], the layer every gRPC router is built with
//! ([`grpc_server`]), from the connection's state tonic puts in each request's extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};
use tower::layer::util::{Identity, Stack};

/// Bounds on a gRPC port's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcTimeouts {
    /// Close a connection once no stream has been open on it for this long; `None`: never.
    pub idle: Option<Duration>,
    /// How long a client has to take an idle close (answer the GOAWAY's PING, or close) before
    /// its connection is cut: a graceful close waits for the client, which need never answer.
    pub close_grace: Duration,
}

/// Five minutes, as gRPC servers commonly use: far longer than the gaps between the calls of a
/// gateway in use, short enough that idle connections do not pile up.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

impl Default for GrpcTimeouts {
    fn default() -> Self {
        GrpcTimeouts { idle: Some(DEFAULT_IDLE), close_grace: Duration::from_secs(10) }
    }
}

/// A tonic server builder with the stream counting the idle timeout needs.
pub type GrpcServer = tonic::transport::Server<Stack<CountStreams, Identity>>;
/// A router built from [`grpc_server`], what the gRPC serve functions take.
pub type GrpcRouter = tonic::transport::server::Router<Stack<CountStreams, Identity>>;

/// The longest one call may take, its request's arrival included. Each service's own work is
/// bounded far below it (ext-authz's waits by the gateway's timeout, ratelimit's by
/// `REDIS_TIMEOUT`); what it bounds is a request that never ends: a call whose HEADERS came and
/// whose message never does would otherwise hold its stream open, and so its connection past
/// the idle timeout, for ever. A client's shorter `grpc-timeout` still wins. Streams that answer
/// at once and then go on (a health `Watch`) are not cut: the bound is on the answer's start.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The builder of every gRPC server the services run (add settings and services to it).
pub fn grpc_server() -> GrpcServer {
    grpc_server_with_call_timeout(CALL_TIMEOUT)
}

/// [`grpc_server`] with another bound on one call (for tests).
pub fn grpc_server_with_call_timeout(call_timeout: Duration) -> GrpcServer {
    tonic::transport::Server::builder().timeout(call_timeout).layer(CountStreams)
}

/// Serves `router` on the connections of `incoming` until `stop`, then lets the calls in
/// progress finish (idle connections are closed at once, and do not hold the stop).
pub(super) fn serve<I, IO, E>(
    router: GrpcRouter,
    incoming: I,
    timeouts: GrpcTimeouts,
    calls: super::Calls,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()>
where
    I: Stream<Item = Result<IO, E>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        {
            let mut incoming = std::pin::pin!(incoming);
            let stopping = super::stopped(stop.clone());
            tokio::pin!(stopping);
            loop {
                tokio::select! {
                    _ = &mut stopping => break,
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    accepted = incoming.next() => match accepted {
                        Some(Ok(io)) => {
                            connections.spawn(connection(router.clone(), io, timeouts, stop.clone()));
                        }
                        // A connection that failed before it was established (a TLS handshake, a
                        // client gone) is no failure of the server.
                        Some(Err(e)) => tracing::debug!("gRPC connection not accepted: {e}"),
                        None => break,
                    }
                }
            }
            // The listener closes here: nothing new is accepted.
        }
        // Every connection got the stop (GOAWAY): idle ones close now, calls in progress finish.
        let all_closed = async { while connections.join_next().await.is_some() {} };
        tokio::select! {
            _ = all_closed => {}
            _ = calls.drained() => {}
        }
        // What is left (connections whose client has not closed yet) is dropped with the set.
    })
}

/// One connection, served by a tonic server of its own until the client closes it, it is idle
/// too long, or the service stops.
async fn connection<IO>(router: GrpcRouter, io: IO, timeouts: GrpcTimeouts, stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let streams = Streams::new();
    let (closed, io) = (streams.clone(), Counted { io, streams: streams.clone() });
    // One connection, then nothing more (an ended stream would stop the server at once).
    let incoming = tokio_stream::once(Ok::<_, std::io::Error>(io)).chain(tokio_stream::pending());
    let (idle_tx, idle_rx) = tokio::sync::oneshot::channel();
    let close = async move {
        tokio::select! {
            _ = closed.idle(timeouts.idle) => {
                tracing::debug!("closing a gRPC connection idle for {:?}", timeouts.idle);
                let _ = idle_tx.send(());
            }
            _ = super::stopped(stop) => {}
            // Closed by the client: this connection's server has nothing left to serve.
            _ = closed.io_dropped() => {}
        }
    };
    // A client that never takes the GOAWAY (never answers its PING) would keep the connection,
    // idle, for as long as it likes: after the grace it is cut, unless a call raced the close.
    let cut = async move {
        if idle_rx.await.is_err() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(timeouts.close_grace).await;
            if streams.0.open.load(Ordering::SeqCst) == 0 {
                streams.cut();
                return std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        served = router.serve_with_incoming_shutdown(incoming, close) => if let Err(e) = served {
            tracing::debug!("gRPC connection failed: {e}");
        },
        _ = cut => {}
    }
}

/// A connection's open streams, and when it was last in use.
#[derive(Clone)]
pub struct Streams(Arc<StreamsState>);

struct StreamsState {
    open: AtomicUsize,
    /// When the last stream ended, in milliseconds after `born` (0 until one has).
    last_ended: AtomicU64,
    born: Instant,
    /// Notified when the connection's I/O is dropped (the connection is over).
    dropped: Notify,
    io_gone: AtomicBool,
    /// Set to cut the connection: its I/O fails from then on.
    cut: AtomicBool,
    /// The task waiting to read, woken by a cut.
    reader: AtomicWaker,
}

impl Streams {
    fn new() -> Streams {
        Streams(Arc::new(StreamsState {
            open: AtomicUsize::new(0),
            last_ended: AtomicU64::new(0),
            born: Instant::now(),
            dropped: Notify::new(),
            io_gone: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        }))
    }

    /// Cuts the connection: its reads and writes fail, so hyper drops it.
    fn cut(&self) {
        self.0.cut.store(true, Ordering::SeqCst);
        self.0.reader.wake();
    }

    fn is_cut(&self) -> bool {
        self.0.cut.load(Ordering::SeqCst)
    }

    /// A stream starts; it ends when the guard is dropped.
    fn start(&self) -> StreamGuard {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        StreamGuard(self.0.clone())
    }

    /// When the connection was last in use: its last stream's end, else its start.
    fn last_used(&self) -> Instant {
        self.0.born + Duration::from_millis(self.0.last_ended.load(Ordering::SeqCst))
    }

    /// Resolves once no stream has been open for `idle`; never with `None`.
    async fn idle(&self, idle: Option<Duration>) {
        let Some(idle) = idle else { return std::future::pending().await };
        let mut deadline = self.last_used() + idle;
        loop {
            tokio::time::sleep_until(deadline).await;
            let now = Instant::now();
            if self.0.open.load(Ordering::SeqCst) > 0 {
                // In use: a stream ending from now on moves the deadline again.
                deadline = now + idle;
                continue;
            }
            deadline = self.last_used() + idle;
            if deadline <= now {
                return;
            }
        }
    }

    /// Resolves once the connection's I/O has been dropped.
    async fn io_dropped(&self) {
        loop {
            let dropped = self.0.dropped.notified();
            if self.0.io_gone.load(Ordering::SeqCst) {
                return;
            }
            dropped.await;
        }
    }
}

struct StreamGuard(Arc<StreamsState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // The end is recorded before the count drops, so that a count of 0 is never seen with
        // the end of an earlier stream.
        let ended = Instant::now().saturating_duration_since(self.0.born).as_millis() as u64;
        self.0.last_ended.fetch_max(ended, Ordering::SeqCst);
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's I/O carrying its [`Streams`], which tonic puts in every request's extensions
/// (its "connect info").
struct Counted<IO> {
    io: IO,
    streams: Streams,
}

impl<IO> Drop for Counted<IO> {
    fn drop(&mut self) {
        self.streams.0.io_gone.store(true, Ordering::SeqCst);
        self.streams.0.dropped.notify_waiters();
    }
}

impl<IO> tonic::transport::server::Connected for Counted<IO> {
    type ConnectInfo = Streams;

    fn connect_info(&self) -> Streams {
        self.streams.clone()
    }
}

fn cut_off() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "idle connection cut")
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.streams.is_cut() {
            return Poll::Ready(Err(cut_off()));
        }
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if read.is_pending() {
            // Only a waiting reader needs waking by a cut; a busy connection is not idle.
            // Registered without a lock (the same waker again costs a compare), then the cut
            // looked at again, so a cut between the read and the registration is not missed.
            self.streams.0.reader.register(cx.waker());
            if self.streams.is_cut() {
                return Poll::Ready(Err(cut_off()));
            }
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.streams.is_cut() {
            return Poll::Ready(Err(cut_off()));
        }
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.streams.is_cut() {
            return Poll::Ready(Err(cut_off()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The layer that counts each connection's open streams: a stream is open from its request to
/// the end of its response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountStreams;

impl<S> tower::Layer<S> for CountStreams {
    type Service = Counting<S>;

    fn layer(&self, inner: S) -> Counting<S> {
        Counting(inner)
    }
}

#[derive(Debug, Clone)]
pub struct Counting<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for Counting<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Unpin,
{
    type Response = http::Response<Guarded<R>>;
    type Error = S::Error;
    type Future = CountingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = request.extensions().get::<Streams>().map(Streams::start);
        CountingFuture { inner: self.0.call(request), guard }
    }
}

pub struct CountingFuture<F> {
    inner: F,
    guard: Option<StreamGuard>,
}

impl<F, R, E> Future for CountingFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>> + Unpin,
{
    type Output = Result<http::Response<Guarded<R>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = std::task::ready!(Pin::new(&mut self.inner).poll(cx))?;
        let guard = self.guard.take();
        Poll::Ready(Ok(response.map(|body| Guarded { body, guard })))
    }
}

/// A response body that holds its stream open until it ends.
pub struct Guarded<B> {
    body: B,
    guard: Option<StreamGuard>,
}

impl<B: Body + Unpin> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
