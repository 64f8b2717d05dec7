//! The policy annotation in Envoy's `route_metadata_context`, and nothing else of it.
//!
//! The metadata comes from the gateway's config, not from clients, but it arrives on every
//! check and may be large (Envoy Gateway copies every `gateway.envoyproxy.io/` annotation of an
//! HTTPRoute into it). Only the policy selector reads it, at one place:
//! `filter_metadata[namespace].resources[0].annotations[annotation]`. That place is looked up
//! (a few map lookups, whatever else the metadata holds) and its value copied when it is a
//! string of at most `MAX_ANNOTATION_BYTES`; nothing else is converted. A place that is there
//! but cannot be read is said so ([`RouteAnnotation::Unreadable`]), and the request is refused
//! as naming an unknown policy: never answered by `routes` instead of the policy it asked for.
//! The rules are those of [`RouteAnnotation::from_json`] (what `explain` reads), step by step.

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::value::Kind;

use crate::core::routes::{RouteAnnotation, RouteMetadataKey, Unreadable};

/// The annotation at `key` (`None`: the selector reads no route metadata).
pub fn annotation(metadata: Option<&Metadata>, key: Option<&RouteMetadataKey>) -> RouteAnnotation {
    use RouteAnnotation::{Absent, Unreadable as Bad};
    let Some(key) = key else { return Absent };
    let Some(namespace) = metadata.and_then(|m| m.filter_metadata.get(&key.namespace)) else { return Absent };
    let Some(resources) = namespace.fields.get("resources") else { return Absent };
    let Some(Kind::ListValue(resources)) = &resources.kind else { return Bad(Unreadable::Resources) };
    let Some(resource) = resources.values.first() else { return Absent };
    let Some(Kind::StructValue(resource)) = &resource.kind else { return Bad(Unreadable::Resource) };
    let Some(annotations) = resource.fields.get("annotations") else { return Absent };
    let Some(Kind::StructValue(annotations)) = &annotations.kind else { return Bad(Unreadable::Annotations) };
    match annotations.fields.get(&key.annotation).map(|value| &value.kind) {
        None => Absent,
        Some(Some(Kind::StringValue(text))) => RouteAnnotation::of_text(text),
        Some(_) => Bad(Unreadable::NotText),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::routes::{PolicySelector, MAX_ANNOTATION_BYTES};
    use serde_json::{json, Value as Json};

    fn metadata(namespaces: &Json) -> Metadata {
        let filter_metadata = namespaces
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), shared::proto::to_struct_ref(v.as_object().unwrap())))
            .collect();
        Metadata { filter_metadata, ..Metadata::default() }
    }

    fn key() -> RouteMetadataKey {
        PolicySelector::default().route_metadata.unwrap()
    }

    /// Read from the protobuf as the gRPC adapter does, and from the JSON as `explain` does:
    /// the same answer.
    fn read(namespaces: Json) -> RouteAnnotation {
        let from_proto = annotation(Some(&metadata(&namespaces)), Some(&key()));
        assert_eq!(from_proto, RouteAnnotation::from_json(&namespaces, &key()), "{namespaces}");
        from_proto
    }

    fn eg(resources: Json) -> Json {
        json!({"envoy-gateway": {"resources": resources}})
    }

    #[test]
    fn envoy_gateways_annotation_is_read_and_nothing_else() {
        let route =
            json!([{"kind": "HTTPRoute", "name": "orders", "annotations": {"gatehouse-policy": "orders-read"}}]);
        assert_eq!(read(eg(route)), RouteAnnotation::Value("orders-read".into()));
        // Whatever else the namespace and the others hold: a huge other annotation, deep
        // nesting, thousands of values.
        let deep = (0..64).fold(json!("bottom"), |inner, _| json!({"d": inner}));
        let wide: serde_json::Map<String, Json> = (0..5000).map(|i| (format!("k{i}"), json!(i))).collect();
        let crowded = eg(json!([{
            "annotations": {"gatehouse-policy": "strict", "blob": "x".repeat(128 * 1024), "deep": deep},
            "wide": wide,
        }]));
        let mut with_others = crowded.clone();
        with_others["other"] = json!({"deep": deep, "wide": wide});
        assert_eq!(read(with_others), RouteAnnotation::Value("strict".into()));
        assert_eq!(annotation(None, Some(&key())), RouteAnnotation::Absent);
        assert_eq!(annotation(Some(&metadata(&crowded)), None), RouteAnnotation::Absent, "the selector reads none");
    }

    #[test]
    fn a_route_that_names_nothing_there_is_absent() {
        for absent in [
            json!({}),
            json!({"other": {"resources": [{"annotations": {"gatehouse-policy": "a"}}]}}),
            json!({"envoy-gateway": {}}),
            eg(json!([])),
            eg(json!([{"kind": "HTTPRoute"}])),
            eg(json!([{"annotations": {}}])),
            eg(json!([{"annotations": {"other": "a"}}])),
        ] {
            assert_eq!(read(absent.clone()), RouteAnnotation::Absent, "{absent}");
        }
    }

    #[test]
    fn an_annotation_that_cannot_be_read_is_said_so() {
        let long = "p".repeat(MAX_ANNOTATION_BYTES + 1);
        for (bad, why) in [
            (
                json!({"envoy-gateway": {"resources": {"annotations": {"gatehouse-policy": "a"}}}}),
                Unreadable::Resources,
            ),
            (json!({"envoy-gateway": {"resources": "a"}}), Unreadable::Resources),
            (eg(json!(["a"])), Unreadable::Resource),
            (eg(json!([{"annotations": ["gatehouse-policy", "a"]}])), Unreadable::Annotations),
            (eg(json!([{"annotations": {"gatehouse-policy": 7}}])), Unreadable::NotText),
            (eg(json!([{"annotations": {"gatehouse-policy": null}}])), Unreadable::NotText),
            (eg(json!([{"annotations": {"gatehouse-policy": {"name": "a"}}}])), Unreadable::NotText),
            (eg(json!([{"annotations": {"gatehouse-policy": long}}])), Unreadable::TooLong),
        ] {
            assert_eq!(read(bad.clone()), RouteAnnotation::Unreadable(why), "{bad}");
        }
        let longest = "p".repeat(MAX_ANNOTATION_BYTES);
        assert_eq!(read(eg(json!([{"annotations": {"gatehouse-policy": longest}}]))), RouteAnnotation::Value(longest));
        assert!(Unreadable::TooLong.text().contains(&MAX_ANNOTATION_BYTES.to_string()));
        // Only explain's JSON can hold a namespace that is not a struct.
        assert_eq!(
            RouteAnnotation::from_json(&json!({"envoy-gateway": "a"}), &key()),
            RouteAnnotation::Unreadable(Unreadable::Namespace)
        );
    }
}
