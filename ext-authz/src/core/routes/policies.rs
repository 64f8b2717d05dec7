//! Named policies (`policies:`), chosen per request by the gateway's route: an Envoy
//! `context_extensions` entry (`ExtAuthzPerRoute`, as Envoy, kgateway and Istio set it), else
//! an annotation of the route in Envoy Gateway's route metadata (`includeRouteMetadata`). A
//! request naming neither is answered by `routes`; one naming a policy that does not exist, or
//! whose route metadata holds the annotation's place in a shape that cannot be read, is denied
//! (`UNKNOWN_POLICY`): a route that asked for a policy never falls back to a looser one.

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

/// The longest annotation value read: no policy name is this long (they have at most 63
/// bytes), and a longer value is not copied.
pub const MAX_ANNOTATION_BYTES: usize = 256;

/// What a route's metadata says at the selector's annotation,
/// `filter_metadata[namespace].resources[0].annotations[annotation]` — read by the gRPC
/// adapter from Envoy's `route_metadata_context` (that value only: the rest of the metadata is
/// never converted) and by `explain` from the JSON it is given, by the same rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RouteAnnotation {
    /// No such namespace; or in it no `resources`, an empty list, no `annotations` or no such
    /// annotation: the route names no policy there.
    #[default]
    Absent,
    /// The annotation's value (empty: names none).
    Value(String),
    /// The namespace is there, but the annotation's place cannot be read: the route may name a
    /// policy, so the request is refused as naming an unknown one, never answered by `routes`.
    Unreadable(Unreadable),
}

/// Why a route's policy annotation cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The namespace is not a struct (only `explain`'s JSON can say so).
    Namespace,
    /// `resources` is not a list.
    Resources,
    /// `resources[0]` is not a struct.
    Resource,
    /// `annotations` is not a struct.
    Annotations,
    /// The annotation is not a string.
    NotText,
    /// The annotation is longer than [`MAX_ANNOTATION_BYTES`].
    TooLong,
}

impl Unreadable {
    /// What stands for the policy name in logs and `explain` (never the value itself).
    pub fn text(self) -> &'static str {
        match self {
            Unreadable::Namespace => "(unreadable route metadata: the namespace is not a struct)",
            Unreadable::Resources => "(unreadable route metadata: resources is not a list)",
            Unreadable::Resource => "(unreadable route metadata: resources[0] is not a struct)",
            Unreadable::Annotations => "(unreadable route metadata: annotations is not a struct)",
            Unreadable::NotText => "(unreadable route metadata: the annotation is not a string)",
            Unreadable::TooLong => "(unreadable route metadata: the annotation is over 256 bytes)",
        }
    }
}

impl RouteAnnotation {
    /// A string found at the annotation's place.
    pub fn of_text(text: &str) -> RouteAnnotation {
        match text.len() > MAX_ANNOTATION_BYTES {
            true => RouteAnnotation::Unreadable(Unreadable::TooLong),
            false => RouteAnnotation::Value(text.to_string()),
        }
    }

    /// The annotation in route metadata written as JSON (namespace → struct), as `explain`
    /// takes it.
    pub fn from_json(metadata: &Value, key: &RouteMetadataKey) -> RouteAnnotation {
        use RouteAnnotation::{Absent, Unreadable as Bad};
        let Some(namespace) = metadata.get(&key.namespace) else { return Absent };
        let Some(namespace) = namespace.as_object() else { return Bad(Unreadable::Namespace) };
        let Some(resources) = namespace.get("resources") else { return Absent };
        let Some(resources) = resources.as_array() else { return Bad(Unreadable::Resources) };
        let Some(resource) = resources.first() else { return Absent };
        let Some(resource) = resource.as_object() else { return Bad(Unreadable::Resource) };
        let Some(annotations) = resource.get("annotations") else { return Absent };
        let Some(annotations) = annotations.as_object() else { return Bad(Unreadable::Annotations) };
        match annotations.get(&key.annotation) {
            None => Absent,
            Some(Value::String(text)) => RouteAnnotation::of_text(text),
            Some(_) => Bad(Unreadable::NotText),
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
