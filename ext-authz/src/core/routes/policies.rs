//! Named policies (`policies:`), chosen per request by the gateway's route: an Envoy
//! `context_extensions` entry (`ExtAuthzPerRoute`, as Envoy, kgateway and Istio set it), else
//! an annotation of the route in Envoy Gateway's route metadata (`includeRouteMetadata`). A
//! request naming neither is answered by `routes`; one naming a policy that does not exist is
//! denied (`UNKNOWN_POLICY`): a route that asked for a policy never falls back to a looser one.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Mode, RouteTable};
use crate::core::request::AuthRequest;

/// The named policies and how a request names one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policies {
    pub named: BTreeMap<String, NamedPolicy>,
    pub selector: PolicySelector,
}

/// One `policies.<name>` entry: a route table (its own public paths, rules and default) and
/// whether it answers (`enforce`) or is only evaluated beside `routes` (`shadow`).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPolicy {
    pub table: RouteTable,
    pub mode: Mode,
}

/// Where a request's policy name is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySelector {
    /// The `context_extensions` key (`""`: not read).
    pub context_extension: String,
    /// The route metadata annotation (`None`: not read).
    pub route_metadata: Option<RouteMetadataKey>,
}

/// `filter_metadata[namespace].resources[0].annotations[annotation]`: where Envoy Gateway's
/// `includeRouteMetadata` puts an HTTPRoute's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMetadataKey {
    pub namespace: String,
    pub annotation: String,
}

/// The context extension key and route metadata read when `policy_selector` is not set.
pub const DEFAULT_CONTEXT_EXTENSION: &str = "policy";
pub const DEFAULT_METADATA_NAMESPACE: &str = "envoy-gateway";
pub const DEFAULT_METADATA_ANNOTATION: &str = "gatehouse-policy";

impl Default for PolicySelector {
    fn default() -> Self {
        PolicySelector {
            context_extension: DEFAULT_CONTEXT_EXTENSION.into(),
            route_metadata: Some(RouteMetadataKey {
                namespace: DEFAULT_METADATA_NAMESPACE.into(),
                annotation: DEFAULT_METADATA_ANNOTATION.into(),
            }),
        }
    }
}

/// The policy a request names (`'a`: the config's, `'r`: the request's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selected<'a, 'r> {
    /// None named: `routes` answers.
    Routes,
    Named(&'a str, &'a NamedPolicy),
    /// A name no policy has (as the gateway sent it).
    Unknown(&'r str),
}

impl PolicySelector {
    /// The policy name the request carries: the context extension when present, else the
    /// route metadata annotation (an empty value is none).
    pub fn name<'r>(&self, request: &'r AuthRequest) -> Option<&'r str> {
        if !self.context_extension.is_empty() {
            // An empty value names nothing (a route may clear what a virtual host set).
            if let Some(name) = request.context_extensions.get(&self.context_extension).filter(|n| !n.is_empty()) {
                return Some(name);
            }
        }
        let key = self.route_metadata.as_ref()?;
        request
            .route_metadata
            .get(&key.namespace)?
            .get("resources")?
            .get(0)?
            .get("annotations")?
            .get(&key.annotation)
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
    }
}

impl Policies {
    pub fn select<'a, 'r>(&'a self, request: &'r AuthRequest) -> Selected<'a, 'r> {
        match self.selector.name(request) {
            None => Selected::Routes,
            Some(name) => match self.named.get_key_value(name) {
                Some((name, policy)) => Selected::Named(name, policy),
                None => Selected::Unknown(name),
            },
        }
    }
}
