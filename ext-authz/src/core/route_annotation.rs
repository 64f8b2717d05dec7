//! The policy name a gateway route gives in its metadata: where it is read (the selector's
//! key) and what was found there. The gRPC adapter and `explain` fill it in the request; the
//! policy selector (`core::routes`) reads it.

use serde_json::Value;

/// `filter_metadata[namespace].resources[0].annotations[annotation]`: where Envoy Gateway's
/// `includeRouteMetadata` puts an HTTPRoute's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMetadataKey {
    pub namespace: String,
    pub annotation: String,
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
