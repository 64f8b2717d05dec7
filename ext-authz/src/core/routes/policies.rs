//! Named policies (`policies:`), chosen per request by the gateway's route: an Envoy
//! `context_extensions` entry (`ExtAuthzPerRoute`, as Envoy, kgateway and Istio set it), else
//! an annotation of the route in Envoy Gateway's route metadata (`includeRouteMetadata`). A
//! request naming neither is answered by `routes`; one naming a policy that does not exist, or
//! whose route metadata holds the annotation's place in a shape that cannot be read, is denied
//! (`UNKNOWN_POLICY`): a route that asked for a policy never falls back to a looser one.

use std::collections::BTreeMap;

use super::{Mode, RouteTable};
use crate::core::request::AuthRequest;
use crate::core::route_annotation::{RouteAnnotation, RouteMetadataKey, Unreadable};

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
    /// A name no policy has (as the gateway sent it), or, for route metadata that cannot be
    /// read, what [`Unreadable::text`] says.
    Unknown(&'r str),
}

impl PolicySelector {
    /// The policy name the request carries: the context extension when present, else the
    /// route metadata annotation (an empty value is none; an unreadable one is none here, see
    /// [`PolicySelector::unreadable`]).
    pub fn name<'r>(&self, request: &'r AuthRequest) -> Option<&'r str> {
        if let Some(name) = self.extension(request) {
            return Some(name);
        }
        self.route_metadata.as_ref()?;
        match &request.route_annotation {
            RouteAnnotation::Value(name) if !name.is_empty() => Some(name),
            _ => None,
        }
    }

    /// Why the route metadata's annotation could not be read, when no context extension names
    /// a policy first.
    pub fn unreadable(&self, request: &AuthRequest) -> Option<Unreadable> {
        if self.extension(request).is_some() || self.route_metadata.is_none() {
            return None;
        }
        match request.route_annotation {
            RouteAnnotation::Unreadable(why) => Some(why),
            _ => None,
        }
    }

    fn extension<'r>(&self, request: &'r AuthRequest) -> Option<&'r str> {
        if self.context_extension.is_empty() {
            return None;
        }
        // An empty value names nothing (a route may clear what a virtual host set).
        request.context_extensions.get(&self.context_extension).map(String::as_str).filter(|n| !n.is_empty())
    }
}

impl Policies {
    pub fn select<'a, 'r>(&'a self, request: &'r AuthRequest) -> Selected<'a, 'r> {
        match self.selector.name(request) {
            None => match self.selector.unreadable(request) {
                None => Selected::Routes,
                Some(why) => Selected::Unknown(why.text()),
            },
            Some(name) => match self.named.get_key_value(name) {
                Some((name, policy)) => Selected::Named(name, policy),
                None => Selected::Unknown(name),
            },
        }
    }
}
