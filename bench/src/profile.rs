//! Instruction counts per request under callgrind: a second measure beside throughput that does
//! not depend on what else the machine is doing, and a profile of where each scenario spends the
//! instructions its floor does not.
//!
//! Each case runs in its own process under `valgrind --tool=callgrind --instr-atstart=no`, on a
//! single-threaded runtime so the load generator, the service and the floor interleave on one
//! thread exactly as their code dictates. Set-up runs uninstrumented; then a warm-up, the counts
//! zeroed, `REQUESTS` requests from `CALLERS` concurrent callers, and a dump. What the dump counts
//! is the whole request in-process: client encode, HTTP/2 both ways, server decode, the service's
//! work, the answer back. Redis's own work happens in redis-server and is not counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::json;
use shared::testing::RedisServer;

use crate::callgrind;
use crate::load::{LoadResult, Pace, Until};
use crate::scenarios::{authz_load_decoding, authz_load_each_once, rls_load, values, Decode, Values};
use crate::targets::{api_key, AuthzTarget, RateLimitTarget, HMAC_SECRET, RSA_KEY};

pub const REQUESTS: u64 = 2000;
const WARM_UP: u64 = 300;
const CALLERS: usize = 16;

/// A profiled case: its id (the child's argument), its row name and its floor's id.
pub struct Case {
    pub id: &'static str,
    pub name: &'static str,
    pub floor: &'static str,
}

pub const CASES: &[Case] = &[
    Case { id: "floor-rls", name: "do-nothing RLS", floor: "" },
    Case { id: "rl-memory-hot", name: "ratelimit, memory, one hot key", floor: "floor-rls" },
    Case { id: "rl-memory-spread", name: "ratelimit, memory, 100k keys", floor: "floor-rls" },
    Case { id: "rl-memory-10-rules", name: "ratelimit, memory, 10 rules", floor: "floor-rls" },
    Case { id: "rl-memory-100k-rules", name: "ratelimit, memory, 100k rules", floor: "floor-rls" },
    Case { id: "rl-redis-hot", name: "ratelimit, Redis, one hot key", floor: "floor-rls" },
    Case { id: "rl-redis-spread", name: "ratelimit, Redis, 100k keys", floor: "floor-rls" },
    Case {
        id: "rl-memory-hot-traced-unsampled",
        name: "ratelimit, memory, one hot key, tracing on, unsampled (rate 0)",
        floor: "floor-rls",
    },
    Case {
        id: "rl-memory-hot-traced",
        name: "ratelimit, memory, one hot key, tracing on, every call sampled and exported",
        floor: "floor-rls",
    },
    Case { id: "floor-authz", name: "do-nothing ext_authz", floor: "" },
    Case { id: "authz-key-10", name: "ext-authz, API key, 10 stored", floor: "floor-authz" },
    Case {
        id: "authz-key-10-traced-unsampled",
        name: "ext-authz, API key, 10 stored, tracing on, unsampled (rate 0)",
        floor: "floor-authz",
    },
    Case {
        id: "authz-key-10-traced",
        name: "ext-authz, API key, 10 stored, tracing on, every check sampled and exported",
        floor: "floor-authz",
    },
    Case { id: "authz-key-1m", name: "ext-authz, API key, 1M stored", floor: "floor-authz" },
    Case { id: "authz-key-quiet", name: "ext-authz, API key, no dynamic metadata", floor: "floor-authz" },
    Case { id: "authz-jwt-cached", name: "ext-authz, RS256 JWT, cached", floor: "floor-authz" },
    Case { id: "authz-rs256", name: "ext-authz, RS256 JWTs, uncached", floor: "floor-authz" },
    Case { id: "authz-es256", name: "ext-authz, ES256 JWTs, uncached", floor: "floor-authz" },
    // The token cache at capacity against the same cache with room (the `caches` group's row):
    // every check carries an HS256 token sent once, verified and inserted in both; only the
    // full cache evicts.
    Case { id: "authz-hs-new-warm", name: "ext-authz, new HS256 token each check, cache with room", floor: "" },
    Case {
        id: "authz-hs-new-full",
        name: "ext-authz, new HS256 token each check, cache full (256 tokens)",
        floor: "authz-hs-new-warm",
    },
    // One rule answering, without conditions and with three CEL conditions (issue 35's target:
    // the conditions cost at most 5% over the rule without them).
    Case { id: "authz-rule-plain", name: "ext-authz, API key, one rule without conditions", floor: "floor-authz" },
    Case {
        id: "authz-rule-3-cel",
        name: "ext-authz, API key, the same rule with three CEL conditions",
        floor: "authz-rule-plain",
    },
    // The generator decoding every answer whole, floor and case alike (see `lean_client`).
    Case { id: "floor-authz-whole", name: "do-nothing ext_authz, the generator decoding whole answers", floor: "" },
    Case {
        id: "authz-key-10-whole",
        name: "ext-authz, API key, 10 stored, the generator decoding whole answers",
        floor: "floor-authz-whole",
    },
];

/// What a case drives: which protocol, at which address, with which header/descriptor values.
enum Load {
    Rls(std::net::SocketAddr, &'static str, Values),
    Authz(std::net::SocketAddr, &'static str, Values, Decode),
    /// Each value sent once over the warm-up and the measured run.
    AuthzEachOnce(std::net::SocketAddr, &'static str, Values, Arc<AtomicUsize>),
}

impl Load {
    async fn run(&self, requests: u64) -> LoadResult {
        let pace = Pace::Closed { concurrency: CALLERS, until: Until::Requests(requests) };
        match self {
            Load::Rls(addr, key, sent) => rls_load(*addr, pace, key, sent.clone()).await,
            Load::Authz(addr, header, sent, decode) => {
                authz_load_decoding(*decode, *addr, pace, header, sent.clone()).await
            }
            Load::AuthzEachOnce(addr, header, sent, next) => {
                authz_load_each_once(*addr, pace, header, sent.clone(), next.clone()).await
            }
        }
    }
}

/// What a case keeps alive while it is measured.
#[allow(dead_code)] // held for their Drop
enum Running {
    Floor,
    RateLimit(RateLimitTarget, Option<RedisServer>),
    Authz(AuthzTarget),
}

fn bearer_tokens(key: &SigningKey, count: usize) -> Values {
    bearer_tokens_from(key, "bench", count)
}

/// `count` distinct tokens of issuer `iss`, valid for an hour.
fn bearer_tokens_from(key: &SigningKey, iss: &str, count: usize) -> Values {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let exp = now.as_secs() + 3600;
    values((0..count).map(|i| format!("Bearer {}", key.sign(&json!({"iss": iss, "sub": format!("u{i}"), "exp": exp})))))
}

async fn set_up(id: &str) -> anyhow::Result<(Running, Load)> {
    let hot = || values(["hot".to_string()]);
    let spread = || values((0..100_000).map(|i| format!("c{i}")));
    let rs = SigningKey::rsa("rs", Algorithm::RS256, RSA_KEY);
    let es = SigningKey::ec("es", Algorithm::ES256);
    let keys = jwks(&[&rs, &es]);
    let rate_limit = |target: RateLimitTarget, redis, key, sent| {
        let load = Load::Rls(target.addr(), key, sent);
        (Running::RateLimit(target, redis), load)
    };
    let decode = if id.ends_with("-whole") { Decode::Whole } else { Decode::Checked };
    let authz = |target: AuthzTarget, header, sent| {
        let load = Load::Authz(target.running.grpc_addr, header, sent, decode);
        (Running::Authz(target), load)
    };
    Ok(match id {
        "floor-rls" => (Running::Floor, Load::Rls(crate::floors::start().await, "client", hot())),
        "floor-authz" | "floor-authz-whole" => {
            (Running::Floor, Load::Authz(crate::floors::start().await, "x-api-key", values(["k".into()]), decode))
        }
        "rl-memory-hot" => rate_limit(RateLimitTarget::start(10, None).await, None, "client", hot()),
        "rl-memory-spread" => rate_limit(RateLimitTarget::start(10, None).await, None, "client", spread()),
        "rl-memory-10-rules" => {
            rate_limit(RateLimitTarget::start(10, None).await, None, "route", values(["r5".into()]))
        }
        "rl-memory-100k-rules" => {
            rate_limit(RateLimitTarget::start(100_000, None).await, None, "route", values(["r50000".into()]))
        }
        "rl-redis-hot" | "rl-redis-spread" => {
            let redis = RedisServer::start();
            let target = RateLimitTarget::start(10, Some(&redis)).await;
            rate_limit(target, Some(redis), "client", if id == "rl-redis-hot" { hot() } else { spread() })
        }
        "authz-key-10" | "authz-key-10-whole" => {
            authz(AuthzTarget::start(10, &keys, true).await, "x-api-key", values([api_key(5)]))
        }
        "authz-key-1m" => {
            authz(AuthzTarget::start(1_000_000, &keys, true).await, "x-api-key", values([api_key(500_000)]))
        }
        "authz-key-quiet" => {
            authz(AuthzTarget::start_with(10, &keys, 10_000, false).await, "x-api-key", values([api_key(5)]))
        }
        "authz-rule-plain" | "authz-rule-3-cel" => {
            let routes = match id {
                "authz-rule-plain" => crate::targets::rule_without_conditions(),
                _ => crate::targets::rule_with_three_conditions(),
            };
            authz(AuthzTarget::start_routes(&keys, &routes).await, "x-api-key", values([api_key(5)]))
        }
        "authz-jwt-cached" => authz(AuthzTarget::start(10, &keys, true).await, "authorization", bearer_tokens(&rs, 1)),
        "authz-rs256" => authz(AuthzTarget::start(10, &keys, false).await, "authorization", bearer_tokens(&rs, 64)),
        "authz-es256" => authz(AuthzTarget::start(10, &keys, false).await, "authorization", bearer_tokens(&es, 64)),
        "authz-hs-new-warm" | "authz-hs-new-full" => {
            let capacity = if id == "authz-hs-new-full" { 256 } else { 100_000 };
            let target = AuthzTarget::start_with(10, &keys, capacity, true).await;
            let hs = SigningKey::hmac(Algorithm::HS256, HMAC_SECRET.as_bytes());
            let tokens = bearer_tokens_from(&hs, "hs", (WARM_UP + REQUESTS) as usize);
            let load = Load::AuthzEachOnce(target.running.grpc_addr, "authorization", tokens, Default::default());
            (Running::Authz(target), load)
        }
        other => anyhow::bail!("unknown profile case {other:?}"),
    })
}

/// The child: `bench profile-case ID`, run under callgrind by [`run_all`]. Logging is set up as
/// the services' `main` does (warnings only, events only); a `-traced` case also exports spans
/// to an OTLP receiver in a process of its own (not instrumented), `-traced-unsampled` with a
/// sampling rate of 0.
pub fn run_case(id: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (base, sampling) = match (id.strip_suffix("-traced-unsampled"), id.strip_suffix("-traced")) {
        (Some(base), _) => (base, Some(0.0)),
        (None, Some(base)) => (base, Some(1.0)),
        (None, None) => (id, None),
    };
    let _entered = runtime.enter();
    let _sink = match sampling {
        Some(rate) => Some(crate::otlp_sink::trace_into_sink(
            rate,
            if base.starts_with("rl-") { "ratelimit" } else { "ext_authz" },
        )?),
        None => {
            shared::telemetry::init("warn", shared::telemetry::LogFormat::Text, &HashMap::new(), Vec::new());
            None
        }
    };
    let (_running, load) = runtime.block_on(set_up(base))?;
    callgrind::start_instrumentation();
    let warm = runtime.block_on(load.run(WARM_UP));
    callgrind::zero_stats();
    let measured = runtime.block_on(load.run(REQUESTS));
    callgrind::dump_stats();
    callgrind::stop_instrumentation();
    let errors = warm.errors + measured.errors;
    anyhow::ensure!(errors == 0, "{id}: {errors} requests failed or got the wrong answer");
    println!("{id}: {} requests", measured.requests);
    Ok(())
}

/// A profiled case's result, per request: all instructions, those inside the service's own
/// handler (its work, including building the answer, but not the protocol around it), and the
/// self cost of every function.
pub struct Profile {
    pub per_request: f64,
    pub in_handler: f64,
    pub functions: HashMap<String, f64>,
}

/// The services' gRPC handlers, as callgrind names them: the body of `shared::serve::unary`'s
/// call, into which each service's async handler is inlined (one service runs per case).
const HANDLERS: &[(&str, &str)] = &[("shared::serve::unary::Call<M> as", "::call::{{closure}}")];

/// Runs every case (or those in `only`, with their floors) in its own callgrind process;
/// returns the profiles by id.
pub fn run_all(dir: &Path, only: Option<&[String]>) -> anyhow::Result<HashMap<&'static str, Profile>> {
    let exe = std::env::current_exe()?;
    let mut profiles = HashMap::new();
    let wanted = |case: &Case| {
        only.is_none_or(|ids| {
            ids.iter().any(|id| id == case.id || CASES.iter().any(|c| c.id == id.as_str() && c.floor == case.id))
        })
    };
    for case in CASES.iter().filter(|case| wanted(case)) {
        eprintln!("profiling {} under callgrind…", case.name);
        let out = dir.join(format!("{}.callgrind", case.id));
        let status = Command::new("valgrind")
            .args(["--tool=callgrind", "--instr-atstart=no", "--quiet"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .args(["profile-case", case.id])
            .status()?;
        anyhow::ensure!(status.success(), "the profile of {} failed: {status}", case.id);
        profiles.insert(case.id, read_dump(&dump_file(&out))?);
    }
    Ok(profiles)
}

/// callgrind numbers client-requested dumps `<file>.1`, `<file>.2`…; ours is the first.
fn dump_file(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

fn read_dump(dump: &Path) -> anyhow::Result<Profile> {
    let text = std::fs::read_to_string(dump).map_err(|e| anyhow::anyhow!("{}: {e}", dump.display()))?;
    let total: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{}: no summary line", dump.display()))?;
    let annotate = |inclusive: bool| -> anyhow::Result<Vec<(String, u64)>> {
        let inclusive = format!("--inclusive={}", if inclusive { "yes" } else { "no" });
        let output =
            Command::new("callgrind_annotate").args(["--threshold=100", "--auto=no", &inclusive]).arg(dump).output()?;
        Ok(parse_annotate(&String::from_utf8_lossy(&output.stdout)))
    };
    let per_request = |cost: u64| cost as f64 / REQUESTS as f64;
    // The outermost handler frame has the largest inclusive cost (its inner frames are parts).
    let in_handler = annotate(true)?
        .into_iter()
        .filter(|(name, _)| HANDLERS.iter().any(|(service, method)| name.contains(service) && name.ends_with(method)))
        .map(|(_, cost)| cost)
        .max()
        .unwrap_or(0);
    let functions = self_costs(annotate(false)?).into_iter().map(|(name, cost)| (name, per_request(cost))).collect();
    Ok(Profile { per_request: per_request(total), in_handler: per_request(in_handler), functions })
}

/// `callgrind_annotate`'s function lines: `  1,234 (12.3%)  file:function [object]` (the
/// percentage only in newer valgrinds), as (function, cost). One function can have several
/// lines, one per source file its code came from (inlining).
pub fn parse_annotate(text: &str) -> Vec<(String, u64)> {
    let mut functions = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(' ') else { continue };
        let Ok(cost) = count.replace(',', "").parse::<u64>() else { continue };
        let mut rest = rest.trim_start();
        if rest.starts_with('(') {
            rest = rest.split_once(')').map_or("", |(_, r)| r).trim_start();
        }
        if rest.is_empty() || rest.starts_with("PROGRAM TOTALS") {
            continue;
        }
        let without_object = rest.rsplit_once(" [").map_or(rest, |(name, _)| name);
        let function = without_object.split_once(':').map_or(without_object, |(_, f)| f).trim();
        functions.push((function.to_string(), cost));
    }
    functions
}

/// Self costs: a function's lines are disjoint parts of it, so they add up.
fn self_costs(lines: Vec<(String, u64)>) -> HashMap<String, u64> {
    let mut functions = HashMap::new();
    for (name, cost) in lines {
        *functions.entry(name).or_default() += cost;
    }
    functions
}

/// The functions that cost `profile` the most instructions per request beyond `floor`.
pub fn extra_costs(profile: &Profile, floor: &Profile, top: usize) -> Vec<(String, f64)> {
    let mut extra: Vec<(String, f64)> = profile
        .functions
        .iter()
        .map(|(name, cost)| (name.clone(), cost - floor.functions.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, cost)| *cost > 0.0)
        .collect();
    extra.sort_by(|a, b| b.1.total_cmp(&a.1));
    extra.truncate(top);
    extra
}

/// A function name short enough for a table cell.
fn short(name: &str) -> String {
    let name = name.replace("envoy_types::generated::", "").replace("{{closure}}", "{closure}");
    if name.chars().count() > 70 {
        format!("{}…", name.chars().take(69).collect::<String>())
    } else {
        name
    }
}

/// The profile section of docs/benchmarks.md.
pub fn render(profiles: &HashMap<&'static str, Profile>) -> String {
    let mut text = format!(
        "## Instructions per request (callgrind)\n\n\
         Each case in its own process under `valgrind --tool=callgrind`, on one thread: load generator \
         ({CALLERS} callers), tonic client and server, the service. Set-up is not counted; after a warm-up of \
         {WARM_UP} requests, {REQUESTS} requests are. Counts are repeatable (they do not depend on what else \
         the machine does) but are not time: cache misses, syscalls' kernel side and Redis's own work are \
         not in them. \"floor ÷ case\" is the instruction analogue of the throughput ratio above; \
         \"in the handler\" is what the service's own gRPC handler executes (deciding and building the \
         answer); the rest of the difference is the protocol around it (decoding the request, encoding \
         the answer, HTTP/2). The generator decodes of each answer only the code it checks, so its work \
         does not grow with the answer; the \"decoding whole answers\" pair shows what decoding all of it, \
         as the generated client does, adds.\n\n\
         | case | instructions / request | floor ÷ case | beyond the floor | in the handler | largest extra costs (instructions / request) |\n\
         |---|---|---|---|---|---|\n"
    );
    for case in CASES {
        let Some(profile) = profiles.get(case.id) else { continue };
        let floor = profiles.get(case.floor);
        let (ratio, beyond, top) = match floor {
            Some(floor) => (
                format!("{:.1}%", floor.per_request / profile.per_request * 100.0),
                format!("{:+.0}", profile.per_request - floor.per_request),
                extra_costs(profile, floor, 4)
                    .iter()
                    .map(|(name, cost)| format!("`{}` {cost:.0}", short(name)))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            None => ("—".into(), "—".into(), String::new()),
        };
        let handler = if profile.in_handler > 0.0 { format!("{:.0}", profile.in_handler) } else { "—".into() };
        text.push_str(&format!(
            "| {} | {:.0} | {ratio} | {beyond} | {handler} | {top} |\n",
            case.name, profile.per_request
        ));
    }
    let growth = |from: &str, to: &str| match (profiles.get(from), profiles.get(to)) {
        (Some(a), Some(b)) => format!("{:+.2}%", (b.per_request / a.per_request - 1.0) * 100.0),
        _ => "not measured".into(),
    };
    text.push_str(&format!(
        "\nPer-request instructions, growth with the work: 10 → 100k rules {}; 10 → 1M API keys {} \
         (a hash lookup either way; what instructions cannot show is the cache misses of a large table); \
         three CEL conditions on the rule that answers {} (the target: at most +5%).\n",
        growth("rl-memory-10-rules", "rl-memory-100k-rules"),
        growth("authz-key-10", "authz-key-1m"),
        growth("authz-rule-plain", "authz-rule-3-cel"),
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotate_lines_with_and_without_percentages_are_read() {
        let text = "\
--------------------------------------------------------------------------------
Ir                 file:function
--------------------------------------------------------------------------------
5,000,000 (100.0%)  PROGRAM TOTALS

1,200,000 (24.00%)  ???:sha2::sha256::compress256 [/x/bench]
  300,000  src/lib.rs:ext_authz::core::apikeys::ApiKeyStore::find [/x/bench]
  100,000  ???:sha2::sha256::compress256 [/x/bench]
";
        let functions = self_costs(parse_annotate(text));
        assert_eq!(functions["sha2::sha256::compress256"], 1_300_000);
        assert_eq!(functions["ext_authz::core::apikeys::ApiKeyStore::find"], 300_000);
        assert_eq!(functions.len(), 2);
    }
}
