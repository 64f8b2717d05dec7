use std::sync::Arc;

use shared::metrics::Registry;

use super::*;
use crate::core::decision::{deny, Allow, ErrorCode};
use crate::core::identity::AuthMethod;
use crate::core::identity::Identity;

fn request(target: &str, headers: &[(&str, &str)]) -> AuthRequest {
    let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    AuthRequest::new("GET", "api.example.com:443", target, headers)
}

fn allow(identity: Identity) -> Outcome {
    Outcome::Allow(Allow {
        identity_part: None,
        headers: vec![],
        remove: vec![],
        remove_query: vec![],
        metadata: identity.metadata(),
        identity: Some(identity),
        principal: None,
        reason: "authenticated",
        set_cookies: vec![],
        upstream: None,
    })
}

fn entry<'a>(request: &'a AuthRequest, outcome: &'a Outcome) -> Entry<'a> {
    Entry {
        request,
        outcome,
        route: Some("orders"),
        mode: "grpc",
        latency: Duration::from_micros(250),
        principal: None,
        policy: None,
        shadow: &[],
    }
}

fn counter() -> Counter {
    Registry::default().counter_family("dropped_total", "test").with(vec![])
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[test]
fn a_line_has_every_field_and_no_credential() {
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    let api_key = "ghk_secret-api-key-0000000000000000000000";
    let request = request(
        &format!("/orders/1?access_token={token}&api_key={api_key}"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-api-key", api_key),
            ("cookie", "__Host-gatehouse_session=sealed-session-value"),
            ("x-request-id", "req-1"),
            ("traceparent", &format!("00-{TRACE}-00f067aa0ba902b7-01")),
        ],
    );
    let claims = Arc::new(json!({"sub": "alice", "email": "alice@example.com"}));
    let outcome = allow(Identity::from_jwt("corp", claims));
    let principal = Some("spiffe://shop.example/ns/web/sa/front");
    let text = line(&Entry { principal, ..entry(&request, &outcome) }, "2026-12-02T03:50:00.123Z");
    let record: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        record,
        json!({
            "time": "2026-12-02T03:50:00.123Z",
            "request_id": "req-1",
            "trace_id": TRACE,
            "mode": "grpc",
            "route": "orders",
            "method": "GET",
            "host": "api.example.com",
            "path": "/orders/1",
            "decision": "allow",
            "reason": "authenticated",
            "status": 200,
            "identity": {"id": "alice", "method": "jwt", "provider": "corp"},
            "principal": "spiffe://shop.example/ns/web/sa/front",
            "latency_us": 250,
        })
    );
    for secret in [token, api_key, "sealed-session-value", "access_token", "alice@example.com"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn denials_and_api_keys_are_described_too() {
    let request = request("/orders/1", &[("x-b3-traceid", "80f198ee56343ba8")]);
    let denied = Outcome::Deny(deny(403, ErrorCode::Forbidden, "insufficient scope", None, "insufficient_scope"));
    let record: Value = serde_json::from_str(&line(&entry(&request, &denied), "t")).unwrap();
    assert_eq!(
        (&record["decision"], &record["reason"], &record["status"], &record["identity"], &record["trace_id"]),
        (&json!("deny"), &json!("insufficient_scope"), &json!(403), &Value::Null, &json!("80f198ee56343ba8"))
    );
    assert_eq!(record["request_id"].as_str().unwrap().len(), 16, "a generated id when none was sent");
    let key = Identity::new(AuthMethod::ApiKey, Arc::new(json!({"client_id": "billing"})), vec![]);
    let record: Value = serde_json::from_str(&line(&entry(&request, &allow(key)), "t")).unwrap();
    assert_eq!(record["identity"], json!({"id": "billing", "method": "api_key", "provider": null}));
}

/// A line's size is bounded whatever the request carries (the queue's bound is in lines).
#[test]
fn huge_request_values_are_cut() {
    let long_path = format!("/{}", "é".repeat(50_000));
    let long_id = "r".repeat(100_000);
    let request = AuthRequest::new(
        "M".repeat(10_000),
        format!("{}.example.com", "h".repeat(60_000)),
        &long_path,
        [("x-request-id".to_string(), long_id)].into_iter().collect(),
    );
    let denied = Outcome::Deny(deny(401, ErrorCode::Unauthorized, "missing credentials", None, "missing_credentials"));
    let text = line(&entry(&request, &denied), "t");
    assert!(text.len() < 3 * 1024, "{} bytes", text.len());
    let record: Value = serde_json::from_str(&text).unwrap();
    for field in ["path", "host", "method", "request_id"] {
        let value = record[field].as_str().unwrap();
        assert!(value.ends_with('…') && value.len() <= MAX_FIELD_BYTES + 3, "{field}: {} bytes", value.len());
    }
    assert!(record["path"].as_str().unwrap().starts_with("/é"), "cut at a character boundary");
}

#[test]
fn trace_ids_are_taken_only_when_well_formed() {
    let headers = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let parent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    assert_eq!(trace_id(&headers(&[("traceparent", &parent)])), Some(TRACE));
    assert_eq!(trace_id(&headers(&[("traceparent", "00-zz-00f067aa0ba902b7-01")])), None);
    assert_eq!(trace_id(&headers(&[("traceparent", &format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)))])), None);
    assert_eq!(trace_id(&headers(&[("traceparent", "<script>"), ("x-b3-traceid", TRACE)])), Some(TRACE));
    assert_eq!(trace_id(&headers(&[("x-b3-traceid", "not-hex-at-all!!")])), None);
    assert_eq!(trace_id(&headers(&[])), None);
}

#[test]
fn sampling_is_by_request_id() {
    let ids: Vec<String> = (0..10_000).map(|i| format!("request-{i}")).collect();
    assert!(ids.iter().all(|id| sampled(id, 1.0)));
    assert!(!ids.iter().any(|id| sampled(id, 0.0)));
    let quarter = ids.iter().filter(|id| sampled(id, 0.25)).count();
    assert!((2_300..=2_700).contains(&quarter), "{quarter} of 10000 at 25%");
    assert!(ids.iter().all(|id| sampled(id, 0.25) == sampled(id, 0.25)), "the same answer every time");
}

/// The queue's bound: a writer that cannot keep up loses lines (counted), the check never waits.
#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let settings = DecisionLogSettings { sample_rate: 1.0, allows: true, to: LogSink::Stdout, rotation: None };
    let dropped = counter();
    // The writer starts only after the burst, as if it were stuck.
    let (log, lines) = DecisionLog::queue(settings, dropped.clone(), 3);
    let request = request("/x", &[]);
    let denied = Outcome::Deny(deny(401, ErrorCode::Unauthorized, "missing credentials", None, "missing_credentials"));
    for _ in 0..10 {
        log.record(&entry(&request, &denied));
    }
    assert_eq!(dropped.get(), 7);
    drop(log);
    assert_eq!(lines.iter().count(), 3, "the queued lines are kept for the writer");
}

#[tokio::test]
async fn lines_reach_the_file_and_allows_can_be_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let settings =
        DecisionLogSettings { sample_rate: 1.0, allows: false, to: LogSink::File(path.clone()), rotation: None };
    let log = DecisionLog::start(settings, counter()).unwrap();
    let request = request("/orders/1", &[("x-request-id", "req-2")]);
    log.record(&entry(&request, &allow(Identity::from_jwt("corp", Arc::new(json!({"sub": "a"}))))));
    let denied = Outcome::Deny(deny(401, ErrorCode::Unauthorized, "missing credentials", None, "missing_credentials"));
    log.record(&entry(&request, &denied));
    drop(log);
    let written = || async { std::fs::read_to_string(&path).unwrap_or_default().ends_with('\n') };
    shared::testing::eventually("the line is written", Duration::from_secs(5), written).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let record: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!((&record["decision"], &record["request_id"]), (&json!("deny"), &json!("req-2")));
}

/// logrotate's `create` mode under load: the file is renamed again and again while threads log
/// decisions. Every line is in one of the files, whole (valid JSON), and none is lost or doubled.
#[tokio::test]
async fn renaming_the_file_under_load_loses_and_splits_no_line() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let now = shared::testing::TestClock::at(1_000);
    let clock = now.as_clock();
    let settings =
        DecisionLogSettings { sample_rate: 1.0, allows: true, to: LogSink::File(path.clone()), rotation: None };
    let dropped = counter();
    // A queue that holds every line: what is tested is the file, not the drop policy.
    let (log, lines) = DecisionLog::queue(settings, dropped.clone(), THREADS * PER_THREAD);
    let sink = Sink::File(file::LogFile::open(path.clone(), None, clock).unwrap());
    let writer = spawn_writer(lines, sink, log.reopener()).unwrap();
    let log = Arc::new(log);
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let denied = Outcome::Deny(deny(
                    401,
                    ErrorCode::Unauthorized,
                    "missing credentials",
                    None,
                    "missing_credentials",
                ));
                for i in 0..PER_THREAD {
                    let id = format!("t{t}-{i}");
                    let request = request("/orders/1", &[("x-request-id", &id)]);
                    log.record(&entry(&request, &denied));
                    // Spread over the renames (the queue holds every line, so pace is no factor).
                    std::thread::sleep(Duration::from_micros(20));
                }
            })
        })
        .collect();
    // Rename while they write: half the renames found by the writer's once-a-second look (the
    // clock moved), half by a SIGHUP's reopen.
    let mut renamed = Vec::new();
    for n in 0.. {
        if n >= 4 && producers.iter().all(|p| p.is_finished()) {
            break;
        }
        // Each file is renamed once the writer has reopened it and put lines in it (or all
        // is written).
        let done = || producers.iter().all(|p| p.is_finished());
        let new = || async { std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) || (done() && path.exists()) };
        shared::testing::eventually("the writer writes to a new file", Duration::from_secs(10), new).await;
        let to = dir.path().join(format!("decisions.jsonl-{n}"));
        std::fs::rename(&path, &to).unwrap();
        renamed.push(to);
        if n % 2 == 0 {
            now.advance(1);
        } else {
            log.reopener().request();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for producer in producers {
        producer.join().unwrap();
    }
    drop(log);
    tokio::task::spawn_blocking(move || writer.join().unwrap()).await.unwrap();

    assert_eq!(dropped.get(), 0);
    let mut ids = std::collections::HashSet::new();
    let mut files_with_lines = 0usize;
    for file in renamed.iter().chain([&path]) {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        assert!(text.is_empty() || text.ends_with('\n'), "{} ends in a whole line", file.display());
        files_with_lines += usize::from(!text.is_empty());
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(ids.insert(record["request_id"].as_str().unwrap().to_string()), "written twice: {line}");
        }
    }
    assert_eq!(ids.len(), THREADS * PER_THREAD, "every line written, once");
    let files = renamed.len() + 1;
    assert!(files_with_lines >= 2, "renamed while lines were written: {files_with_lines} of {files} files");
}

/// Shadow rules' and policies' would-be answers, and the named policy that answered, are in the
/// line when there are any; a line without them has neither key (as before policies existed).
#[test]
fn a_line_carries_shadow_answers_and_the_policy() {
    use crate::core::decision::{ShadowHit, Would};
    let request = request("/orders/1", &[("x-request-id", "req-9")]);
    let denied = Outcome::Deny(deny(403, ErrorCode::Forbidden, "no route allows this request", None, "no_route"));
    let hits = [
        ShadowHit {
            policy: "routes",
            rule: "stricter",
            would: Would::Deny,
            code: Some(ErrorCode::Custom("TENANT".into())),
        },
        ShadowHit { policy: "orders-v2", rule: "read", would: Would::Allow, code: None },
    ];
    let with_hits = Entry { policy: Some("orders"), shadow: &hits, ..entry(&request, &denied) };
    let record: Value = serde_json::from_str(&line(&with_hits, "2026-12-02T03:50:00Z")).unwrap();
    assert_eq!(record["policy"], "orders");
    assert_eq!(
        record["shadow"],
        json!([
            {"policy": "routes", "rule": "stricter", "would": "deny", "code": "TENANT"},
            {"policy": "orders-v2", "rule": "read", "would": "allow", "code": null},
        ])
    );
    assert_eq!(record["decision"], "deny", "the real answer is the line's");
    let plain: Value = serde_json::from_str(&line(&entry(&request, &denied), "2026-12-02T03:50:00Z")).unwrap();
    assert!(plain.get("policy").is_none() && plain.get("shadow").is_none(), "{plain}");
}
