//! The running binary's decision log file and SIGHUP: logrotate renames the file and sends
//! SIGHUP (`postrotate`); the service keeps serving and writes on to a new file at the path.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use shared::testing::eventually;
use support::process::*;
use support::*;

fn request_ids(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let line =
        |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].as_str().unwrap().to_owned();
    text.lines().map(line).collect()
}

fn hangup(process: &AuthzProcess) {
    let status = Command::new("kill").args(["-HUP", &process.child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_the_decision_log_and_stops_nothing() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])])).unwrap();
    let config = config_yaml(&idp.url, "") + "decision_log: {enabled: true, to: decisions.jsonl}\n";
    let mut process = AuthzProcess::start(&dir.path().join("ext-authz.yaml"), &config, &[("JOBS_SECRET", HMAC_SECRET)]);
    process.wait_ready().await;
    let client = process.grpc_client().await;
    let (log, rotated) = (dir.path().join("decisions.jsonl"), dir.path().join("decisions.jsonl.1"));
    let check = |id: &'static str| {
        let request = check_request("GET", "/orders/1", &[("x-request-id", id)]);
        let mut client = client.clone();
        async move { client.check(request).await.expect("ext-authz answers").into_inner() }
    };

    assert_eq!(status(&check("before").await), 16, "no credential: refused");
    eventually("the first line", Duration::from_secs(5), || async { request_ids(&log) == ["before"] }).await;
    // logrotate's `create` mode: rename, then `postrotate kill -HUP`.
    std::fs::rename(&log, &rotated).unwrap();
    hangup(&process);
    let handled = || async { process.stderr().contains("SIGHUP: reopening the decision log file") };
    eventually("the SIGHUP handled", Duration::from_secs(5), handled).await;
    assert!(process.child.try_wait().unwrap().is_none(), "still running after SIGHUP");
    assert_eq!(status(&check("after").await), 16, "still serving after SIGHUP");
    eventually("the next line in a new file", Duration::from_secs(5), || async { request_ids(&log) == ["after"] })
        .await;
    assert_eq!(request_ids(&rotated), ["before"]);

    // Another one changes nothing either; SIGTERM still stops it cleanly.
    hangup(&process);
    assert_eq!(status(&check("again").await), 16);
    eventually("the third line", Duration::from_secs(5), || async { request_ids(&log) == ["after", "again"] }).await;
    assert!(process.terminate().success(), "exit status 0 after SIGTERM");
}
