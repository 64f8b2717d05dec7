//! What `explain` prints: the request as the decision sees it, the trace, the credentials'
//! checks and the answer — as text for people, or one JSON document (`--json`) for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ext_authz::config::AuthzConfig;
use ext_authz::core::cel::SourceAddresses;
use ext_authz::core::decision::{Decision, Engine, Verdict};
use ext_authz::core::explain::{RuleTrace, Trace};
use ext_authz::core::request::AuthRequest;
use ext_authz::outcome::Outcome;
use serde::Serialize;

use super::credential::{CredentialCheck, KeysAre};
use super::options::Options;
use super::request::Built;

#[derive(Serialize)]
pub struct Report {
    request: RequestPart,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<Trace>,
    credentials: Vec<CredentialCheck>,
    answer: Answer,
}

#[derive(Serialize)]
struct RequestPart {
    method: String,
    host: String,
    /// Normalized (as sent when refused).
    path: String,
    /// As sent, when normalizing changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_refused: Option<String>,
    /// Where `--token` / `--api-key` were put.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    placed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    /// `X-Forwarded-For` as Envoy passes it (with the peer it appends, when it does).
    #[serde(skip_serializing_if = "Option::is_none")]
    forwarded_for: Option<String>,
    trusted_hops: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    context: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Answer {
    /// `allow`, `deny`, `login` (a browser is sent to log in) or `undecided` (not offline).
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    message: String,
    /// The reason in metrics and the decision log.
    reason: String,
    /// What the answer takes for granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    assuming: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<Header>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    removed_query: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_credential: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    www_authenticate: Option<String>,
    /// Shadow rules' and policies' would-be answers ("routes strict-orders would deny DENIED"):
    /// logged and counted by the service, never the answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    shadow: Vec<String>,
}

#[derive(Serialize)]
struct Header {
    name: String,
    value: String,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &AuthzConfig,
        built: &Built,
        options: &Options,
        source: SourceAddresses,
        trace: Option<Trace>,
        credentials: Vec<CredentialCheck>,
        verdict: &Verdict<'_>,
        keys: &[KeysAre],
        assumed: bool,
    ) -> Report {
        let request = &built.request;
        let sent = request.header(":path").map(|target| target.split_once('?').map_or(target, |(path, _)| path));
        let request_part = RequestPart {
            method: request.method.clone(),
            host: request.host.clone(),
            path: request.path.clone(),
            sent_path: sent.filter(|sent| *sent != request.path).map(str::to_owned),
            path_refused: request.path_error.map(|e| e.to_string()),
            placed: built.placed.clone(),
            peer: source.peer.map(|a| a.to_string()),
            client: source.client.map(|a| a.to_string()),
            forwarded_for: built.xff.clone(),
            trusted_hops: config.engine.client_address.trusted_hops,
            principal: options.principal.as_ref().map(ToString::to_string),
            context: options.context.iter().cloned().collect(),
        };
        let mut answer = answer(config, &verdict.decision, keys, assumed);
        answer.shadow = verdict
            .notes
            .shadow
            .iter()
            .map(|hit| {
                let code = hit.code.as_ref().map(|c| format!(" {}", c.as_str())).unwrap_or_default();
                format!("{} {} would {}{code}", hit.policy, hit.rule, hit.would.as_str())
            })
            .collect();
        Report { request: request_part, trace, credentials, answer }
    }

    pub fn allowed(&self) -> bool {
        self.answer.decision == "allow"
    }

    pub fn json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a report is JSON");
        text.push('\n');
        text
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let r = &self.request;
        let _ =
            writeln!(out, "request: {} {}{}", r.method, if r.host.is_empty() { "(no host)" } else { &r.host }, r.path);
        match (&r.path_refused, &r.sent_path) {
            (Some(refused), _) => {
                let _ = writeln!(out, "path: refused before any rule: {refused}");
            }
            (None, Some(sent)) => {
                let _ = writeln!(out, "path: {} (normalized from {sent})", r.path);
            }
            (None, None) => {
                let _ = writeln!(out, "path: {}", r.path);
            }
        }
        for placed in &r.placed {
            let _ = writeln!(out, "given: {placed}");
        }
        let address = |a: &Option<String>| a.clone().unwrap_or_else(|| "unknown".into());
        let xff = r.forwarded_for.as_ref().map(|xff| format!("x-forwarded-for {xff}; ")).unwrap_or_default();
        let (peer, client) = (address(&r.peer), address(&r.client));
        let _ = writeln!(out, "addresses: peer {peer}, client {client} ({xff}trusted hops {})", r.trusted_hops);
        if let Some(principal) = &r.principal {
            let _ = writeln!(out, "workload: {principal}");
        }
        if let Some(trace) = &self.trace {
            let _ = writeln!(out, "policy: {}: {}", trace.policy.name, trace.policy.why);
            for table in &trace.tables {
                let _ = writeln!(out, "{} ({}):", table.name, table.role);
                for rule in &table.deny_rules {
                    rule_lines(&mut out, "deny rule", rule);
                }
                if let Some(public) = &table.public {
                    let _ = writeln!(out, "  public path {public}: no credential needed");
                }
                for rule in &table.rules {
                    rule_lines(&mut out, "rule", rule);
                }
                if let Some(default) = &table.default {
                    let _ = writeln!(out, "  default: {default}");
                }
            }
        }
        if self.credentials.is_empty() {
            let _ = writeln!(out, "credential: none found");
        }
        for c in &self.credentials {
            let provider = c.provider.as_ref().map(|p| format!(", provider {p}")).unwrap_or_default();
            let _ = writeln!(out, "credential: {} in {}{provider}: {}", c.kind, c.found_in, c.check);
            if let Some(claims) = &c.claims {
                let _ = writeln!(out, "  claims: {claims}");
            }
        }
        let a = &self.answer;
        let status = a.status.map(|s| format!("{s} ")).unwrap_or_default();
        let code = a.code.as_ref().map(|c| format!("{c} ")).unwrap_or_default();
        let _ = writeln!(out, "answer: {} {status}{code}({}): {}", a.decision, a.reason, a.message);
        if let Some(assuming) = &a.assuming {
            let _ = writeln!(out, "  assuming {assuming}");
        }
        for h in &a.headers {
            let _ = writeln!(out, "  set header {}: {}", h.name, h.value);
        }
        if !a.removed.is_empty() {
            let _ = writeln!(out, "  removed headers: {}", a.removed.join(", "));
        }
        if !a.removed_query.is_empty() {
            let _ = writeln!(out, "  removed query parameters: {}", a.removed_query.join(", "));
        }
        if let Some(name) = &a.upstream_credential {
            let _ = writeln!(out, "  upstream credential {name} set (fetched at run time, not offline)");
        }
        if let Some(challenge) = &a.www_authenticate {
            let _ = writeln!(out, "  www-authenticate: {challenge}");
        }
        for shadow in &a.shadow {
            let _ = writeln!(out, "  shadow (logged, not the answer): {shadow}");
        }
        out
    }
}

fn rule_lines(out: &mut String, what: &str, rule: &RuleTrace) {
    let shadow = if rule.shadow { " (shadow)" } else { "" };
    let _ = writeln!(out, "  {what} {}{shadow}: {}: {}", rule.name, rule.verdict, rule.why);
    if let Some(requires) = &rule.requires {
        let _ = writeln!(out, "    requires: {requires}");
    }
    for (i, condition) in rule.conditions.iter().enumerate() {
        let _ = writeln!(out, "    when {}: {} => {}", i + 1, condition.expression, condition.value);
    }
}

fn answer(config: &AuthzConfig, decision: &Decision, keys: &[KeysAre], assumed: bool) -> Answer {
    let mut answer = Answer {
        decision: "undecided",
        status: None,
        code: None,
        message: String::new(),
        reason: String::new(),
        assuming: None,
        headers: Vec::new(),
        removed: Vec::new(),
        removed_query: Vec::new(),
        upstream_credential: None,
        www_authenticate: None,
        shadow: Vec::new(),
    };
    // A local key file's provider is never refetched for an unknown key: the service answers
    // as it does after a refetch that found nothing.
    let unknown_local = match decision {
        Decision::UnknownKey { provider } if keys.get(*provider) != Some(&KeysAre::Remote) => {
            Some(ext_authz::service::unknown_key())
        }
        _ => None,
    };
    let deny = match (decision, &unknown_local) {
        (Decision::Deny(deny), _) | (_, Some(Outcome::Deny(deny))) => Some(deny),
        _ => None,
    };
    match (decision, deny) {
        (_, Some(deny)) => {
            answer.decision = "deny";
            answer.status = Some(deny.status);
            answer.code = Some(deny.code.as_str().to_string());
            answer.message = deny.message.clone();
            answer.reason = deny.reason.into();
            answer.www_authenticate = deny.challenge().map(str::to_owned);
        }
        (Decision::Allow(allow), _) => {
            answer.decision = "allow";
            answer.status = Some(200);
            answer.message = "forwarded to the backend".into();
            answer.reason = allow.reason.into();
            answer.headers =
                allow.all_headers().map(|(name, value)| Header { name: name.into(), value: value.into() }).collect();
            answer.removed = allow.all_removed().map(str::to_owned).collect();
            answer.removed_query = allow.remove_query.clone();
            answer.upstream_credential =
                allow.upstream.and_then(|i| config.upstream_credentials.get(i)).map(|c| c.name.clone());
        }
        (Decision::Login, _) => {
            answer.decision = "login";
            answer.status = Some(302);
            answer.message = "a browser without a session is sent to log in (sessions are not opened offline)".into();
            answer.reason = "login".into();
        }
        (Decision::UnknownKey { provider }, _) => {
            let name = config.engine.providers.get(*provider).map_or("?", |p| p.name.as_str());
            answer.message =
                format!("the token's signature needs provider {name}'s remote keys, which explain does not fetch");
            answer.reason = "keys_are_remote".into();
        }
        (Decision::Unavailable(why), _) => {
            answer.message = format!("the service could not decide: {why}");
            answer.reason = "unavailable".into();
        }
        (Decision::Deny(_), None) => unreachable!("a deny is taken above"),
    }
    if assumed && answer.decision != "undecided" {
        answer.assuming = Some("the token's signature is valid (its provider's keys are remote, not checked)".into());
    }
    answer
}

/// Every credential the config would read from the request (so none is printed, whatever
/// flag or header brought it).
pub fn credential_values(engine: &Engine, request: &AuthRequest) -> Vec<String> {
    let sources = engine.providers.iter().flat_map(|p| p.sources.iter()).chain(&engine.api_key_sources);
    sources.filter_map(|source| source.read(request)).collect()
}

/// `text` with each of `secrets` cut out.
pub fn redact(mut text: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "[redacted]");
        }
    }
    text
}
