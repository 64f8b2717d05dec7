//! `bench external`: the same load generator and checks against a rate limit or ext_authz server
//! that is already running — envoyproxy/ratelimit, Limitador, an authorization server, or ours
//! elsewhere — each run after a run of our do-nothing server of the same protocol in this
//! process, so the ratio means what it means in docs/benchmarks.md on any machine.
//!
//! ```text
//! bench external rls ADDR [--domain bench] [--descriptor k=v,k2=v2]... [--distinct N]
//!                         [--expect ok|over_limit|any]
//! bench external authz ADDR [--header name=value]... [--path /api] [--method GET]
//!                           [--expect allow|deny|any]
//! plus the load shape of every bench run: --seconds 3 --runs 3 --concurrency 64 [--rate R]
//! ```
//!
//! `--distinct N` cycles the last entry of the last descriptor through N values (`v-0` …),
//! spreading the counters; without it every call hits one key. Every answer is checked against
//! `--expect`: a call that fails or answers otherwise counts as an error.

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

use crate::lean_client::{AuthzClient, RlsClient};
use crate::load::{self, LoadResult};
use crate::report::Row;
use crate::scenarios::{authz_load, channel, check_request, rls_load, values, Shape};

/// What a call must answer to count as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// RLS `OK`, or ext_authz allow.
    Pass,
    /// RLS `OVER_LIMIT`, or ext_authz deny.
    Refuse,
    /// Any answer (only failed calls are errors).
    Any,
}

/// One external target and the request shape sent to it.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Rls { addr: SocketAddr, request: RateLimitRequest, distinct: usize, expect: Expect },
    Authz { addr: SocketAddr, request: Box<CheckRequest>, expect: Expect },
}

/// Parses `rls|authz ADDR [options]` (the arguments after `external`).
pub fn parse(args: &[String]) -> anyhow::Result<Target> {
    let (kind, addr) = match args {
        [kind, addr, ..] => (kind.as_str(), addr.parse::<SocketAddr>().map_err(|e| anyhow::anyhow!("{addr}: {e}"))?),
        _ => anyhow::bail!("usage: bench external rls|authz HOST:PORT [options] (see bench/README.md)"),
    };
    let options = &args[2..];
    let all =
        |name: &str| -> Vec<&str> { options.windows(2).filter(|w| w[0] == name).map(|w| w[1].as_str()).collect() };
    let one = |name: &str, default: &'static str| -> String {
        all(name).last().map_or(default.to_string(), |v| v.to_string())
    };
    let expect = |pass: &str, refuse: &str| -> anyhow::Result<Expect> {
        match one("--expect", "") {
            e if e.is_empty() || e == pass => Ok(Expect::Pass),
            e if e == refuse => Ok(Expect::Refuse),
            e if e == "any" => Ok(Expect::Any),
            e => anyhow::bail!("--expect {e}: {pass}, {refuse} or any"),
        }
    };
    for name in options.iter().step_by(2) {
        let known = ["--domain", "--descriptor", "--distinct", "--expect", "--header", "--path", "--method"];
        let shape = ["--seconds", "--runs", "--concurrency", "--rate"];
        if !known.contains(&name.as_str()) && !shape.contains(&name.as_str()) {
            anyhow::bail!("unknown option {name}");
        }
    }
    match kind {
        "rls" => {
            let mut descriptors = Vec::new();
            for text in all("--descriptor") {
                let entries = text
                    .split(',')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, value)) if !key.is_empty() => Ok(Entry { key: key.into(), value: value.into() }),
                        _ => anyhow::bail!("--descriptor {text}: entries are key=value, comma-separated"),
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                descriptors.push(RateLimitDescriptor { entries, ..Default::default() });
            }
            if descriptors.is_empty() {
                descriptors.push(RateLimitDescriptor {
                    entries: vec![Entry { key: "client".into(), value: "hot".into() }],
                    ..Default::default()
                });
            }
            let distinct = one("--distinct", "1").parse::<usize>()?.max(1);
            let request = RateLimitRequest { domain: one("--domain", "bench"), descriptors, hits_addend: 0 };
            Ok(Target::Rls { addr, request, distinct, expect: expect("ok", "over_limit")? })
        }
        "authz" => {
            let mut request = check_request("x-request-id", "bench-external".into());
            let http = request
                .attributes
                .as_mut()
                .and_then(|a| a.request.as_mut())
                .and_then(|r| r.http.as_mut())
                .expect("check_request builds the HTTP attributes");
            http.path = one("--path", "/api");
            http.method = one("--method", "GET");
            http.headers.insert(":path".into(), http.path.clone());
            http.headers.insert(":method".into(), http.method.clone());
            for header in all("--header") {
                let (name, value) =
                    header.split_once('=').ok_or_else(|| anyhow::anyhow!("--header {header}: name=value"))?;
                http.headers.insert(name.to_ascii_lowercase(), value.to_string());
            }
            Ok(Target::Authz { addr, request: Box::new(request), expect: expect("allow", "deny")? })
        }
        other => anyhow::bail!("{other}: rls or authz"),
    }
}

/// One run of load against the target, every answer checked.
pub async fn load(target: &Target, shape: Shape) -> LoadResult {
    match target {
        Target::Rls { addr, request, distinct, expect } => {
            let client = RlsClient::new(channel(*addr).await);
            let (request, distinct, expect) = (Arc::new(request.clone()), *distinct, *expect);
            load::drive(shape.pace(), move |worker, n| {
                let mut client = client.clone();
                let mut request = (*request).clone();
                if distinct > 1 {
                    if let Some(entry) = request.descriptors.last_mut().and_then(|d| d.entries.last_mut()) {
                        entry.value = format!("{}-{}", entry.value, (n as usize * 64 + worker) % distinct);
                    }
                }
                async move {
                    let answer = client.should_rate_limit(request).await;
                    match (answer, expect) {
                        (Ok(_), Expect::Any) => true,
                        (Ok(code), Expect::Pass) => code == 1,
                        (Ok(code), Expect::Refuse) => code == 2,
                        (Err(_), _) => false,
                    }
                }
            })
            .await
        }
        Target::Authz { addr, request, expect } => {
            let client = AuthzClient::new(channel(*addr).await);
            let (request, expect) = (Arc::new((**request).clone()), *expect);
            load::drive(shape.pace(), move |_, _| {
                let mut client = client.clone();
                let request = (*request).clone();
                async move {
                    let answer = client.check(request).await;
                    let allowed = |code: i32| code == 0;
                    match (answer, expect) {
                        (Ok(_), Expect::Any) => true,
                        (Ok(code), Expect::Pass) => code.is_some_and(allowed),
                        (Ok(code), Expect::Refuse) => code.is_some_and(|code| !allowed(code)),
                        (Err(_), _) => false,
                    }
                }
            })
            .await
        }
    }
}

/// `runs` runs against the target, each after a run of our do-nothing server of its protocol.
pub async fn row(target: &Target, shape: Shape, floor: SocketAddr) -> Row {
    let (name, floor_name) = match target {
        Target::Rls { addr, .. } => (format!("external RLS at {addr}"), "do-nothing RLS"),
        Target::Authz { addr, .. } => (format!("external ext_authz at {addr}"), "do-nothing ext_authz"),
    };
    eprintln!("measuring {name}…");
    let _ = load(target, shape).await;
    let mut row = Row { name, floor: Some(floor_name.into()), runs: vec![], floor_runs: vec![], redis_cpu_us: None };
    for _ in 0..shape.runs {
        row.floor_runs.push(match target {
            Target::Rls { .. } => rls_load(floor, shape.pace(), "client", values(["hot".into()])).await,
            Target::Authz { .. } => authz_load(floor, shape.pace(), "x-api-key", values(["k".into()])).await,
        });
        row.runs.push(load(target, shape).await);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn request_shapes_from_the_command_line() {
        let Target::Rls { request, distinct, expect, .. } = parse(&args(
            "rls 127.0.0.1:8081 --domain edge --descriptor generic_key=api,user=u --descriptor ip=1.2.3.4 --distinct 1000",
        ))
        .unwrap() else {
            panic!("an RLS target")
        };
        assert_eq!(
            (request.domain.as_str(), request.descriptors.len(), distinct, expect),
            ("edge", 2, 1000, Expect::Pass)
        );
        assert_eq!(request.descriptors[0].entries[1].key, "user");
        let Target::Authz { request, expect, .. } =
            parse(&args("authz 127.0.0.1:9001 --header x-api-key=k1 --path /orders/1 --expect deny")).unwrap()
        else {
            panic!("an ext_authz target")
        };
        let http = request.attributes.clone().unwrap().request.unwrap().http.unwrap();
        assert_eq!(
            (http.path.as_str(), http.headers["x-api-key"].as_str(), expect),
            ("/orders/1", "k1", Expect::Refuse)
        );
        for bad in [
            "rls",
            "rls nowhere",
            "ldap 127.0.0.1:1",
            "rls 127.0.0.1:1 --descriptor novalue",
            "rls 127.0.0.1:1 --bogus 1",
            "authz 127.0.0.1:1 --expect maybe",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    /// Against our own services started here: every answer as expected, and a wrong
    /// expectation shows as errors (the checks are real).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn measures_a_running_server_and_checks_every_answer() {
        let shape = Shape { concurrency: 8, seconds: 1, runs: 1, rate: None };
        let ratelimit = crate::targets::RateLimitTarget::start(10, None).await;
        let addr = ratelimit.addr().to_string();
        let ok = parse(&args(&format!("rls {addr} --descriptor client=hot --distinct 100"))).unwrap();
        let run = load(&ok, shape).await;
        assert!(run.requests > 100 && run.errors == 0, "{} requests, {} errors", run.requests, run.errors);
        let wrong = parse(&args(&format!("rls {addr} --expect over_limit"))).unwrap();
        let run = load(&wrong, shape).await;
        assert_eq!(run.errors, run.requests, "every OK answer is wrong when OVER_LIMIT is expected");
        ratelimit.running.shutdown().await;

        let floor = crate::floors::start().await;
        let authz = parse(&args(&format!("authz {floor} --header x-api-key=k"))).unwrap();
        let row = row(&authz, Shape { runs: 2, ..shape }, floor).await;
        assert_eq!((row.runs.len(), row.floor_runs.len()), (2, 2));
        assert!(row.markdown().contains("of do-nothing ext_authz"), "{}", row.markdown());
    }
}
