use super::*;

fn settings() -> RefreshSettings {
    RefreshSettings {
        interval: Duration::from_secs(300),
        min_interval: Duration::from_secs(30),
        max_interval: Duration::from_secs(86400),
        unknown_kid_min_interval: Duration::from_secs(10),
        unknown_kid_wait: Duration::from_millis(500),
        timeout: Duration::from_secs(2),
    }
}

#[test]
fn max_age_paces_refreshes_within_bounds() {
    let refresh = settings();
    assert_eq!(next_refresh(None, &refresh), Duration::from_secs(300), "no max-age: the interval");
    assert_eq!(next_refresh(Some(Duration::ZERO), &refresh), Duration::from_secs(30), "never below the minimum");
    assert_eq!(next_refresh(Some(Duration::from_secs(600)), &refresh), Duration::from_secs(600));
    assert_eq!(next_refresh(Some(Duration::from_secs(10_000_000)), &refresh), Duration::from_secs(86400));
}

#[test]
fn unknown_key_ids_refetch_at_most_once_per_interval() {
    let min = Duration::from_secs(10);
    let start = Instant::now();
    assert!(refetch_allowed(None, start, min));
    assert!(!refetch_allowed(Some(start), start, min));
    assert!(!refetch_allowed(Some(start), start + Duration::from_millis(9_999), min));
    assert!(refetch_allowed(Some(start), start + min, min));
}

#[test]
fn reads_max_age() {
    assert_eq!(super::max_age("public, max-age=600"), Some(std::time::Duration::from_secs(600)));
    assert_eq!(super::max_age("no-store"), None);
}

/// A key file is a shared reloadable value: its first read is counted as a reload and as the
/// provider's fetch, and an unknown key id never reads it (its watcher does, once a change
/// held still).
#[tokio::test]
async fn a_key_file_loads_as_a_reloadable_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let key = crate::testing::SigningKey::ec("k", jsonwebtoken::Algorithm::ES256);
    std::fs::write(&path, crate::testing::jwks(&[&key])).unwrap();
    let reloads = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let heard = reloads.clone();
    let counter = move |what: &'static str, outcome: Outcome| heard.lock().push((what, outcome));
    let registry = shared::metrics::Registry::default();
    let fetches = registry.counter_family("fetches_total", "fetches");
    let config = ProviderKeys { name: "files".into(), source: KeySource::JwksFile(path), refresh: settings() };
    let keys = KeyManager::with_reloads(vec![config], fetches, Arc::new(counter));

    keys.load_all().await;
    assert!(keys.ready());
    assert_eq!(*reloads.lock(), vec![("jwks_file", Outcome::Loaded)]);
    assert!(registry.render().contains(r#"fetches_total{provider="files",result="ok"} 1"#));
    assert!(!keys.refetch_for_unknown_kid(0).await);
    assert_eq!(reloads.lock().len(), 1);
}

/// A provider whose keys never load is said in `not_ready` (`/readyz`) by where it is set,
/// with no name, URL or error; the error the log gets has the cause: refused, timed out,
/// not TLS, not a key set.
#[tokio::test]
async fn a_failed_fetch_says_its_cause() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Bound, then closed: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    // Accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    // Answers every request with a page that is not a key set.
    let page = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_addr = page.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                Ok((socket, _)) = silent.accept() => held.push(socket),
                Ok((mut socket, _)) = page.accept() => {
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello").await;
                }
            }
        }
    });
    let provider = |name: &str, uri: String| ProviderKeys {
        name: name.into(),
        source: KeySource::JwksUri(uri),
        refresh: RefreshSettings { timeout: Duration::from_millis(300), ..settings() },
    };
    let configs = vec![
        provider("refused", format!("http://{closed}/jwks.json")),
        provider("silent", format!("http://{silent_addr}/jwks.json")),
        provider("not-tls", format!("https://{page_addr}/jwks.json")),
        provider("page", format!("http://{page_addr}/jwks.json")),
    ];
    let registry = shared::metrics::Registry::default();
    let keys = KeyManager::new(configs, registry.counter_family("fetches_total", "fetches"));
    assert_eq!(
        keys.not_ready().unwrap(),
        "JWT keys not loaded yet: jwt_providers[0].keys (not fetched yet), jwt_providers[1].keys (not fetched \
         yet), jwt_providers[2].keys (not fetched yet), jwt_providers[3].keys (not fetched yet); the log says why"
    );
    keys.load_all().await;
    assert_eq!(
        keys.not_ready().unwrap(),
        "JWT keys not loaded yet: jwt_providers[0].keys (fetch failed), jwt_providers[1].keys (fetch failed), \
         jwt_providers[2].keys (fetch failed), jwt_providers[3].keys (fetch failed); the log says why"
    );
    // What load_all and the refresh loop log: the fetch's error.
    let mut logged = Vec::new();
    for provider in &keys.providers {
        logged.push(keys.fetch(provider).await.unwrap_err().to_string());
    }
    serving.abort();
    assert!(logged.iter().all(|said| !said.contains('\n')), "one line each: {logged:?}");
    let refused = format!("GET http://{closed}/jwks.json: error sending request");
    assert!(logged[0].starts_with(&refused) && logged[0].contains("Connection refused"), "{}", logged[0]);
    assert!(logged[1].starts_with("GET") && logged[1].contains("timed out"), "{}", logged[1]);
    // rustls's own words for a plain-text answer to its hello vary by version; that there
    // is a cause past "error sending request" is what matters.
    let tls = logged[2].split("error sending request").nth(1).unwrap_or_default();
    assert!(logged[2].starts_with("GET https://") && tls.len() > 20, "{}", logged[2]);
    assert!(logged[3].starts_with("http://") && logged[3].contains("not a JWKS document"), "{}", logged[3]);
}

#[test]
fn never_loaded_keys_are_retried_within_five_seconds() {
    let refresh = settings();
    assert_eq!(super::retry_after_failure(&refresh, false), Duration::from_secs(5));
    assert_eq!(super::retry_after_failure(&refresh, true), Duration::from_secs(30));
    let quick = super::RefreshSettings { min_interval: Duration::from_millis(200), ..refresh };
    assert_eq!(super::retry_after_failure(&quick, false), Duration::from_millis(200));
}
