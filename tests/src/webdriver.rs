//! A real browser for the one login test that must run one: Debian's headless Chromium driven
//! through ChromeDriver with the W3C WebDriver protocol (a handful of JSON calls, so no client
//! library). ChromeDriver and its browser stop when this is dropped.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use shared::testing::free_port;

pub struct Chromium {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// W3C's key for an element reference in answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Chromium {
    /// Starts ChromeDriver on a free port and a headless Chromium session. Root needs
    /// `--no-sandbox`; background networking is off so the browser talks only to our servers.
    pub async fn start() -> Chromium {
        let port = free_port();
        // Its own process group, so the browsers it starts go with it (see `Drop`).
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (scripts/install-deps.sh installs chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        shared::testing::eventually("chromedriver started", Duration::from_secs(20), async || {
            http.get(format!("{base}/status")).send().await.is_ok()
        })
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Do not wait for subresources (the provider's pages import web fonts from the
            // internet, which these machines cannot reach).
            "pageLoadStrategy": "eager",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-dev-shm-usage", "--no-first-run",
                         // Every host but loopback fails at once instead of waiting on DNS.
                         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
            },
        }}});
        let mut browser = Chromium { driver, base, session: String::new(), http };
        let created = browser.call("POST", "/session", capabilities).await;
        browser.session = created["sessionId"].as_str().expect("a WebDriver session id").to_string();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}/session", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response = request.send().await.unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let status = response.status();
        let answer: Value = response.json().await.expect("WebDriver answers JSON");
        assert!(status.is_success(), "WebDriver {method} {path}: {status} {answer}");
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    pub async fn current_url(&self) -> String {
        self.call("GET", "/url", Value::Null).await.as_str().unwrap_or_default().to_string()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        let body = self.find("body").await;
        self.call("GET", &format!("/element/{body}/text"), Value::Null).await.as_str().unwrap_or_default().to_string()
    }

    /// The first element matching a CSS selector, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let found = shared::testing::poll(Duration::from_secs(10), async || {
            let answer: Value = self
                .http
                .post(&url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .expect("WebDriver")
                .json()
                .await
                .expect("JSON");
            answer["value"][ELEMENT].as_str().map(str::to_string)
        });
        if let Some(id) = found.await {
            return id;
        }
        let source = self.call("GET", "/source", Value::Null).await;
        panic!("no element {css:?} at {}: {}", self.current_url().await, source.as_str().unwrap_or_default());
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/value"), json!({"text": text})).await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/click"), json!({})).await;
    }

    /// Waits up to 15 s for the browser to reach a URL starting with `prefix`.
    pub async fn wait_for_url(&self, prefix: &str) -> String {
        let reached = shared::testing::poll(Duration::from_secs(15), async || {
            Some(self.current_url().await).filter(|url| url.starts_with(prefix))
        });
        match reached.await {
            Some(url) => url,
            None => panic!("the browser is at {}, not {prefix}…", self.current_url().await),
        }
    }

    pub async fn quit(self) {
        self.call("DELETE", "", Value::Null).await;
    }
}

/// Stops ChromeDriver and every browser process it started (its whole process group), also
/// when a test fails half-way.
impl Drop for Chromium {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}
