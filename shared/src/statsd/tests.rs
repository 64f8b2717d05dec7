use super::wire::{line, pack};
use super::*;

fn settings(transport: Transport, port: u16, format: Format) -> StatsdSettings {
    StatsdSettings {
        host: "127.0.0.1".into(),
        port,
        transport,
        format,
        flush_interval: Duration::from_millis(50),
        extra_tags: vec![("cluster".into(), "eu.1".into())],
    }
}

#[test]
fn lines_follow_gostats_and_dogstatsd() {
    let tags = vec![("cluster".to_string(), "eu.1".to_string()), ("pod".to_string(), "a:b".to_string())];
    assert_eq!(line(&Format::Statsd, &[], "ratelimit.x.total_hits", 3, "c"), "ratelimit.x.total_hits:3|c\n");
    assert_eq!(line(&Format::Statsd, &tags, "n", 1, "ms"), "n.__cluster=eu_1.__pod=a_b:1|ms\n");
    let dog = Format::DogStatsd { mogrifiers: vec![] };
    assert_eq!(line(&dog, &tags, "n.m", 7, "g"), "n.m:7|g|#cluster:eu_1,pod:a_b\n");
    assert_eq!(line(&dog, &[], "n", 7, "c"), "n:7|c\n");
    let renamed = Format::DogStatsd {
        mogrifiers: vec![Mogrifier::new(Some(r"^a\.(\w+)$"), Some("b"), Some("which:$1")).unwrap()],
    };
    assert_eq!(line(&renamed, &tags[..1], "a.one", 2, "c"), "b:2|c|#cluster:eu_1,which:one\n");
}

#[test]
fn datagrams_never_split_a_line() {
    let lines: Vec<String> = (0..100).map(|i| format!("series.{i:03}:1|c\n")).collect();
    let payloads = pack(&lines, 1432);
    assert!(payloads.iter().all(|p| p.len() <= 1432 && p.ends_with('\n')));
    assert_eq!(payloads.concat(), lines.concat());
    let long = vec!["x".repeat(2000)];
    assert_eq!(pack(&long, 1432), long, "a line longer than a datagram goes alone");
}

#[test]
fn counters_send_their_change_and_only_when_changed() {
    let sink = Statsd::default();
    let hits = sink.counter("hits");
    let shared = Counter::default();
    shared.inc_by(5);
    sink.register_counter("shared", &shared);
    let gauge = Gauge::default();
    gauge.set(4);
    sink.register_gauge("entries", &gauge);
    hits.inc_by(3);
    assert_eq!(sink.take_counters_and_gauges(), vec![("hits".into(), 3, "c"), ("entries".into(), 4, "g")]);
    hits.inc();
    shared.inc();
    assert_eq!(
        sink.take_counters_and_gauges(),
        vec![("hits".into(), 1, "c"), ("shared".into(), 1, "c"), ("entries".into(), 4, "g")],
        "counted before registration is not sent; after, only the change"
    );
    assert!(sink.counter("hits").get() == 4, "the same name is the same counter");
}

#[test]
fn series_and_samples_are_bounded() {
    let sink = Statsd::default();
    for i in 0..MAX_SERIES {
        sink.counter(&format!("c{i}"));
    }
    let past = sink.counter("one-too-many");
    past.inc();
    assert_eq!(sink.dropped_series(), 1);
    assert!(sink.take_counters_and_gauges().iter().all(|(name, ..)| name != "one-too-many"));

    let timer = sink.timer("t");
    for _ in 0..MAX_PENDING_SAMPLES + 10 {
        timer.record_ms(1);
    }
    assert_eq!(sink.dropped_samples(), 10);
    assert_eq!(sink.take_samples().len(), MAX_PENDING_SAMPLES);
    assert!(sink.take_samples().is_empty());
}

#[tokio::test]
async fn sends_to_a_udp_listener() {
    let listener = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Statsd::default();
    sink.counter("ratelimit.service.config_load_success").inc();
    sink.timer("ratelimit_server.ShouldRateLimit.response_time").record_ms(3);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(sink.clone().run(settings(Transport::Udp, port, Format::Statsd), stopped));
    let received =
        crate::testing::receive_until(&listener, &["config_load_success", "response_time"], Duration::from_secs(10))
            .await;
    assert!(received.contains("ratelimit.service.config_load_success.__cluster=eu_1:1|c\n"), "{received}");
    assert!(received.contains("ratelimit_server.ShouldRateLimit.response_time.__cluster=eu_1:3|ms\n"), "{received}");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn sends_over_tcp_and_reconnects_after_the_server_goes_away() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Statsd::default();
    let counter = sink.counter("c");
    counter.inc();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(sink.clone().run(settings(Transport::Tcp, port, Format::Statsd), stopped));
    let within = Duration::from_secs(10);
    let (mut first, _) = listener.accept().await.unwrap();
    crate::testing::read_until(&mut first, &["c.__cluster=eu_1:1|c\n"], within).await;
    drop(first);
    // The first connection is gone (dropped above); the next counts arrive on a new one.
    let mut second = None;
    while second.is_none() {
        counter.inc();
        second = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await.ok().map(|r| r.unwrap().0);
    }
    let received = crate::testing::read_until(&mut second.unwrap(), &["|c\n"], within).await;
    assert!(received.starts_with("c.__cluster=eu_1:"), "{received}");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn sends_to_a_server_that_is_down_are_counted() {
    // A port nobody listens on: every send is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sink = Statsd::default();
    sink.register_gauge("g", &Gauge::default());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(sink.clone().run(settings(Transport::Tcp, port, Format::Statsd), stopped));
    let counted = || async { sink.send_failures() >= 2 };
    crate::testing::eventually("refused sends counted", Duration::from_secs(30), counted).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_server_that_never_reads_is_noticed() {
    // Accepted by the kernel (the listen backlog), never read: what is sent piles up in the
    // buffers until a write cannot go on and times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let sink = Statsd::default();
    let counters: Vec<Counter> = (0..10_000).map(|i| sink.counter(&format!("{}.{i}", "n".repeat(100)))).collect();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(sink.clone().run(settings(Transport::Tcp, port, Format::Statsd), stopped));
    // About 1 MiB of changed counters a flush, far more than the buffers hold.
    let counted = || {
        counters.iter().for_each(Counter::inc);
        async { sink.send_failures() >= 1 }
    };
    crate::testing::eventually("a send to a server that never reads fails", Duration::from_secs(60), counted).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    drop(silent);
}
