//! The rule model as written: `routes`, each of `policies` (the same keys, plus `mode`), the
//! `policy_selector`, and a rule's keys (`when`, `error`, address lists…).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RawClaimPath;
use crate::config::keys::*;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRoutes {
    pub public: Vec<String>,
    /// `deny` (default), `allow`, or `authenticated`.
    pub default: String,
    /// Credentials accepted by `default: authenticated`.
    pub default_accept: Vec<String>,
    pub rules: Vec<RawRule>,
}

impl Default for RawRoutes {
    fn default() -> Self {
        RawRoutes {
            public: Vec::new(),
            default: ROUTES_DEFAULT.default.into(),
            default_accept: vec!["jwt".into(), "api_key".into()],
            rules: Vec::new(),
        }
    }
}

/// One `policies.<name>` entry: `routes`' keys, and `mode`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    /// `enforce` (it answers its requests) or `shadow` (`routes` answers; its would-be answer is
    /// logged and counted).
    pub mode: String,
    pub public: Vec<String>,
    pub default: String,
    pub default_accept: Vec<String>,
    pub rules: Vec<RawRule>,
}

impl Default for RawPolicy {
    fn default() -> Self {
        let routes = RawRoutes::default();
        RawPolicy {
            mode: POLICY_MODE.default.into(),
            public: routes.public,
            default: routes.default,
            default_accept: routes.default_accept,
            rules: routes.rules,
        }
    }
}

/// `policy_selector:` — the `context_extensions` key, then the route metadata annotation, that
/// name a request's policy (`""` turns either off).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicySelector {
    pub context_extension: String,
    pub route_metadata: RawRouteMetadata,
}

impl Default for RawPolicySelector {
    fn default() -> Self {
        RawPolicySelector {
            context_extension: POLICY_CONTEXT_EXTENSION.default.into(),
            route_metadata: RawRouteMetadata::default(),
        }
    }
}

/// Envoy Gateway's route metadata: `filter_metadata[namespace].resources[0].annotations[annotation]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRouteMetadata {
    pub namespace: String,
    pub annotation: String,
}

impl Default for RawRouteMetadata {
    fn default() -> Self {
        RawRouteMetadata {
            namespace: POLICY_METADATA_NAMESPACE.default.into(),
            annotation: POLICY_METADATA_ANNOTATION.default.into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    /// `allow` (default) or `deny`.
    #[serde(default = "allow")]
    pub action: String,
    pub host: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    pub path: String,
    /// Not set: `[jwt, api_key]` on an allow rule; a deny rule takes none.
    pub accept: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: Vec<RawClaimRule>,
    /// SPIFFE ID patterns, one of which the calling workload must have.
    #[serde(default)]
    pub principals: Vec<String>,
    /// `<iss>/<sub>` patterns (`*`, `prefix*`, `*suffix`, exact), one of which the user's must match.
    #[serde(default)]
    pub request_principals: Vec<String>,
    /// The name of an `upstream_credentials` entry to set on the requests this rule allows.
    pub upstream_credential: Option<String>,
    /// CEL conditions: one expression, or a list that must all hold.
    #[serde(default)]
    pub when: RawWhen,
    /// A deny rule's answer: `code` (upper snake case) and `message`.
    pub error: Option<RawDenyError>,
    /// CIDR lists on the client address (after the trusted hops) and on Envoy's peer.
    #[serde(default)]
    pub client_ips: Vec<String>,
    #[serde(default)]
    pub not_client_ips: Vec<String>,
    #[serde(default)]
    pub peer_ips: Vec<String>,
    #[serde(default)]
    pub not_peer_ips: Vec<String>,
    /// `enforce` (default) or `shadow` (evaluated, logged, counted; never the answer).
    #[serde(default = "enforce")]
    pub mode: String,
}

fn allow() -> String {
    RULE_ACTION.default.into()
}

fn enforce() -> String {
    RULE_MODE.default.into()
}

pub fn default_accept() -> Vec<String> {
    vec!["jwt".into(), "api_key".into()]
}

/// `when:` as written: one expression, or a list of them.
/// (`expecting` replaces serde's "data did not match any variant of untagged enum".)
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(untagged, expecting = "expected a CEL expression, or a list of them (all must hold)")]
pub enum RawWhen {
    One(String),
    Many(Vec<String>),
}

impl Default for RawWhen {
    fn default() -> Self {
        RawWhen::Many(Vec::new())
    }
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDenyError {
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaimRule {
    pub claim: RawClaimPath,
    pub equals: Option<Value>,
    pub one_of: Option<Vec<Value>>,
    pub contains: Option<Value>,
}
