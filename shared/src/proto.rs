//! JSON values as protobuf `Struct`s, for Envoy's dynamic metadata.

use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value};

/// Moves the map's strings into the `Struct` (for metadata built per request).
pub fn to_struct(map: serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct { fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect() }
}

/// Copies from a shared map (ext-authz's metadata is built once per identity and reused).
pub fn to_struct_ref(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct { fields: map.iter().map(|(k, v)| (k.clone(), to_value_ref(v))).collect() }
}

pub fn to_value(value: serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match value {
        J::String(s) => Kind::StringValue(s),
        J::Array(items) => Kind::ListValue(ListValue { values: items.into_iter().map(to_value).collect() }),
        J::Object(map) => Kind::StructValue(to_struct(map)),
        // Null, booleans and numbers hold nothing to move.
        scalar => return to_value_ref(&scalar),
    };
    Value { kind: Some(kind) }
}

pub fn to_value_ref(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(ListValue { values: items.iter().map(to_value_ref).collect() }),
        J::Object(map) => Kind::StructValue(to_struct_ref(map)),
    };
    Value { kind: Some(kind) }
}

/// The reverse, for configs that arrive as protobuf (xDS).
pub fn struct_to_json(s: Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields.into_iter().map(|(k, v)| (k, value_to_json(v))).collect()
}

pub fn value_to_json(v: Value) -> serde_json::Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => b.into(),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into),
        Some(Kind::StringValue(s)) => s.into(),
        Some(Kind::ListValue(l)) => l.values.into_iter().map(value_to_json).collect(),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let json = serde_json::json!({"a": [1.0, "x", true, null], "b": {"c": "d"}});
        let back = struct_to_json(to_struct(json.as_object().unwrap().clone()));
        assert_eq!(serde_json::Value::Object(back), json);
        let borrowed = struct_to_json(to_struct_ref(json.as_object().unwrap()));
        assert_eq!(serde_json::Value::Object(borrowed), json);
    }
}
