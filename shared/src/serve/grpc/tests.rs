use super::*;
use crate::testing::{idle_http2_client, unfinished_call_http2_client, GOAWAY, HEADERS};

/// A gRPC port (the health service) with `timeouts`; its address and stop.
async fn start(timeouts: GrpcTimeouts) -> (std::net::SocketAddr, watch::Sender<bool>, JoinHandle<()>) {
    start_with(timeouts, CALL_TIMEOUT).await
}

async fn start_with(
    timeouts: GrpcTimeouts,
    call_timeout: Duration,
) -> (std::net::SocketAddr, watch::Sender<bool>, JoinHandle<()>) {
    let (health, server, follow) = crate::health::Health::new("test");
    tokio::spawn(follow);
    health.set("test", true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let router = grpc_server_with_call_timeout(call_timeout).add_service(server);
    (addr, stop_tx, super::super::grpc(router, listener, timeouts, super::super::Calls::default(), stop))
}

fn timeouts(idle: Duration, close_grace: Duration) -> GrpcTimeouts {
    GrpcTimeouts { idle: Some(idle), close_grace }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_sent_a_goaway_and_closed() {
    // A grace far beyond the wait: the close is the graceful one, not the cut.
    let (addr, stop, task) = start(timeouts(Duration::from_millis(200), Duration::from_secs(600))).await;
    let seen = tokio::task::spawn_blocking(move || idle_http2_client(addr, true)).await.unwrap();
    assert!(seen.contains(&GOAWAY), "closed with a GOAWAY first: {seen:?}");
    stop.send_replace(true);
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_that_ignores_the_goaway_is_cut_after_the_grace() {
    let (addr, stop, task) = start(timeouts(Duration::from_millis(200), Duration::from_millis(300))).await;
    let seen = tokio::task::spawn_blocking(move || idle_http2_client(addr, false)).await.unwrap();
    assert!(seen.contains(&GOAWAY), "{seen:?}");
    stop.send_replace(true);
    task.await.unwrap();
}

/// A call whose request never ends is answered at the call timeout, and its connection then
/// goes idle and is closed: one HEADERS frame cannot hold a descriptor for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_request_never_ends_does_not_hold_its_connection() {
    let idle = Duration::from_millis(200);
    let (addr, stop, task) = start_with(timeouts(idle, Duration::from_secs(600)), Duration::from_millis(300)).await;
    let path = "/grpc.health.v1.Health/Check";
    let seen = tokio::task::spawn_blocking(move || unfinished_call_http2_client(addr, path)).await.unwrap();
    let answered = seen.iter().position(|kind| *kind == HEADERS).expect("the call was answered");
    let closed = seen.iter().position(|kind| *kind == GOAWAY).expect("then the connection closed");
    assert!(answered < closed, "{seen:?}");
    stop.send_replace(true);
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_progress_keeps_its_connection() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let idle = Duration::from_millis(100);
    let (addr, stop, task) = start(timeouts(idle, idle)).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest { service: "test".into() };
    let mut watch = client.watch(request).await.unwrap().into_inner();
    watch.message().await.unwrap().expect("the current status");
    // Twenty idle timeouts (and graces) later the stream is still open: no status came, and no
    // end or error either, as a closed connection would give.
    let later = tokio::time::timeout(idle * 20, watch.message()).await;
    assert!(later.is_err(), "the stream ended: {later:?}");
    stop.send_replace(true);
    drop(watch);
    task.await.unwrap();
}

/// The idle clock: it runs from the connection's start or its last stream's end, and not while
/// a stream is open.
#[tokio::test(start_paused = true)]
async fn idleness_counts_from_the_last_stream() {
    let streams = Streams::new();
    let idle = Some(Duration::from_secs(10));
    let resolves_within = |d: Duration| {
        let streams = streams.clone();
        async move { tokio::time::timeout(d, streams.idle(idle)).await.is_ok() }
    };
    // No stream yet: idle 10 s after the start.
    assert!(!resolves_within(Duration::from_secs(9)).await);
    let call = streams.start();
    // Open for a minute: never idle meanwhile.
    assert!(!resolves_within(Duration::from_secs(60)).await);
    drop(call);
    // 10 s after the stream ended, not sooner.
    assert!(!resolves_within(Duration::from_secs(9)).await);
    assert!(resolves_within(Duration::from_secs(2)).await);
    // A stream started and ended since moves it again.
    drop(streams.start());
    assert!(!resolves_within(Duration::from_secs(9)).await);
    assert!(resolves_within(Duration::from_secs(2)).await);
    assert!(tokio::time::timeout(Duration::from_secs(3600), streams.idle(None)).await.is_err(), "None: never");
}
