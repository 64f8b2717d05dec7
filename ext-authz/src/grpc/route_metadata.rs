//! Envoy's `route_metadata_context` as JSON, within bounds.
//!
//! The metadata comes from the gateway's config, not from clients, but it is converted on every
//! check: a route carrying a huge or deeply nested struct (Envoy Gateway copies an HTTPRoute's
//! `gateway.envoyproxy.io/` annotations into it) must cost a bounded amount per request. A
//! namespace past a bound is left out whole rather than cut somewhere inside: the struct's
//! fields are a hash map, so a cut would fall on different fields from one request to the next.
//! Left out, its policy annotation is not read and `routes` answers — the same answer as for a
//! route without metadata — and a warning says why, once.

use std::sync::atomic::{AtomicBool, Ordering};

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use serde_json::{Map, Value as Json};

/// Nesting below a namespace: Envoy Gateway's `resources[0].annotations.<key>` is 4 deep.
pub const MAX_DEPTH: usize = 8;
/// Values (every struct, list, string, number…) in one namespace.
pub const MAX_VALUES: usize = 1024;
/// Bytes of keys and strings in one namespace.
pub const MAX_BYTES: usize = 64 * 1024;

/// `filter_metadata` as `{namespace: struct}`; `Null` when Envoy sent none.
pub fn to_json(metadata: Option<Metadata>) -> Json {
    let Some(metadata) = metadata.filter(|m| !m.filter_metadata.is_empty()) else { return Json::Null };
    let mut out = Map::new();
    for (namespace, fields) in metadata.filter_metadata {
        let mut budget = Budget { values: MAX_VALUES, bytes: MAX_BYTES };
        match struct_to_json(fields, 1, &mut budget) {
            Some(value) => {
                out.insert(namespace, value);
            }
            None => warn_once(&namespace),
        }
    }
    Json::Object(out)
}

struct Budget {
    values: usize,
    bytes: usize,
}

impl Budget {
    fn take(&mut self, bytes: usize) -> Option<()> {
        self.values = self.values.checked_sub(1)?;
        self.bytes = self.bytes.checked_sub(bytes)?;
        Some(())
    }
}

fn struct_to_json(s: Struct, depth: usize, budget: &mut Budget) -> Option<Json> {
    if depth > MAX_DEPTH {
        return None;
    }
    budget.take(0)?;
    let mut out = Map::new();
    for (key, value) in s.fields {
        budget.take(key.len())?;
        out.insert(key, value_to_json(value, depth + 1, budget)?);
    }
    Some(Json::Object(out))
}

fn value_to_json(v: Value, depth: usize, budget: &mut Budget) -> Option<Json> {
    Some(match v.kind {
        Some(Kind::StructValue(s)) => return struct_to_json(s, depth, budget),
        Some(Kind::ListValue(list)) => {
            if depth > MAX_DEPTH {
                return None;
            }
            budget.take(0)?;
            list.values.into_iter().map(|item| value_to_json(item, depth + 1, budget)).collect::<Option<_>>()?
        }
        Some(Kind::StringValue(s)) => {
            budget.take(s.len())?;
            s.into()
        }
        scalar => {
            budget.take(0)?;
            shared::proto::value_to_json(Value { kind: scalar })
        }
    })
}

/// One warning per process: the metadata is the same on every request of the route.
fn warn_once(namespace: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "route metadata namespace {namespace:?} is past ext-authz's bounds ({MAX_DEPTH} levels, {MAX_VALUES} \
             values, {MAX_BYTES} bytes) and is not read: its policy annotation cannot select a policy"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata(namespaces: Json) -> Option<Metadata> {
        let filter_metadata = namespaces
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), shared::proto::to_struct_ref(v.as_object().unwrap())))
            .collect();
        Some(Metadata { filter_metadata, ..Metadata::default() })
    }

    #[test]
    fn envoy_gateways_route_metadata_arrives_as_it_was() {
        let eg = json!({"envoy-gateway": {"resources": [
            {"kind": "HTTPRoute", "name": "orders", "namespace": "apps", "annotations": {"gatehouse-policy": "orders-read"}}
        ]}});
        assert_eq!(to_json(metadata(eg.clone())), eg);
        assert_eq!(to_json(None), Json::Null);
        assert_eq!(to_json(Some(Metadata::default())), Json::Null);
    }

    #[test]
    fn a_namespace_past_a_bound_is_left_out_whole_and_the_others_stay() {
        let nest = |levels: usize| (0..levels).fold(json!("bottom"), |inner, _| json!({"d": inner}));
        let deep = nest(MAX_DEPTH + 1);
        let wide: Map<String, Json> = (0..MAX_VALUES).map(|i| (format!("k{i}"), json!(i))).collect();
        let long = "x".repeat(MAX_BYTES);
        let ok = json!({"resources": [{"annotations": {"gatehouse-policy": "a"}}]});
        let all = json!({"deep": deep, "wide": wide, "long": {"s": long}, "envoy-gateway": ok});
        assert_eq!(to_json(metadata(all)), json!({"envoy-gateway": ok}));
        // Just within: the namespace's own struct is the first of MAX_DEPTH levels.
        assert_eq!(to_json(metadata(json!({"fits": nest(MAX_DEPTH)}))), json!({"fits": nest(MAX_DEPTH)}));
        let list = json!({"l": [[[[[[["bottom"]]]]]]]});
        assert_eq!(to_json(metadata(json!({"lists": list}))), json!({"lists": list}), "a list is a level");
        let too_deep = json!({"l": [[[[[[[["bottom"]]]]]]]]});
        assert_eq!(to_json(metadata(json!({"lists": too_deep}))), json!({}));
    }
}
