//! The activation's values as the direct evaluator sees them: read where they are (the request's
//! headers, the claims' JSON), borrowed, and never converted beyond the one value a step reads.
//! Bounds are checked before (see `bounds`), so nothing here checks them.

use std::borrow::Cow;

use serde_json::{Map as Object, Value as Json};

use super::{Stop, Var};
use crate::core::cel::Facts;
use crate::core::identity::AuthMethod;

/// A value: a scalar, a list, or a map read on demand.
#[derive(Debug)]
pub enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(Cow<'a, str>),
    Scopes(&'a [String]),
    List(&'a [Json]),
    Map(Map<'a>),
}

/// A map of the activation, looked up one key at a time.
#[derive(Debug)]
pub enum Map<'a> {
    Request,
    Source,
    Identity,
    Headers,
    Query,
    Route,
    Context,
    Json(&'a Object<String, Json>),
}

pub fn var<'a>(facts: &Facts<'a>, var: Var) -> V<'a> {
    match var {
        Var::Request => V::Map(Map::Request),
        Var::Source => V::Map(Map::Source),
        Var::Identity => V::Map(Map::Identity),
        Var::Route => V::Map(Map::Route),
        Var::Context => V::Map(Map::Context),
        Var::Now => V::Int(i64::try_from(facts.now).unwrap_or(i64::MAX)),
    }
}

/// The value at `key`, `None` when the map has no such key.
pub fn get<'a>(facts: &Facts<'a>, map: &Map<'a>, key: &str) -> Option<Result<V<'a>, Stop>> {
    let text = |s: &'a str| Some(Ok(V::Str(Cow::Borrowed(s))));
    let request = facts.request;
    match map {
        Map::Request => match key {
            "method" => text(&request.method),
            "host" => text(&request.host),
            "path" => text(&request.path),
            "id" => text(request.request_id()),
            "headers" => Some(Ok(V::Map(Map::Headers))),
            "query" => Some(Ok(V::Map(Map::Query))),
            _ => Some(Err(Stop::Interpreter)),
        },
        Map::Source => {
            let ip = match key {
                "address" => facts.source.peer,
                "client" => facts.source.client,
                _ => return Some(Err(Stop::Interpreter)),
            };
            Some(Ok(V::Str(Cow::Owned(ip.map(|ip| ip.to_string()).unwrap_or_default()))))
        }
        Map::Identity => identity(facts, key),
        Map::Headers => request.headers.get(key).and_then(|value| text(value)),
        // The query's one reader is values::query_params (a repeated name is an error):
        // the interpreter's.
        Map::Query => Some(Err(Stop::Interpreter)),
        // A capture named twice: the last one, as the interpreter's map keeps it.
        Map::Route => facts.route.iter().rev().find(|(name, _)| *name == key).and_then(|(_, value)| text(value)),
        Map::Context => facts.context.get(key).and_then(|value| text(value)),
        Map::Json(object) => object.get(key).map(|value| Ok(json(value))),
    }
}

fn identity<'a>(facts: &Facts<'a>, key: &str) -> Option<Result<V<'a>, Stop>> {
    let identity = facts.identity;
    let text = |s: &'a str| Some(Ok(V::Str(Cow::Borrowed(s))));
    match key {
        "kind" => text(match identity.map(|i| &i.method) {
            None => "none",
            Some(AuthMethod::Jwt { .. }) => "jwt",
            Some(AuthMethod::ApiKey) => "api_key",
            Some(AuthMethod::Session { .. }) => "session",
        }),
        "provider" => text(match identity.map(|i| &i.method) {
            Some(AuthMethod::Jwt { provider } | AuthMethod::Session { provider }) => provider,
            _ => "",
        }),
        "claims" => match identity.map(|i| &*i.claims) {
            Some(Json::Object(claims)) => Some(Ok(V::Map(Map::Json(claims)))),
            _ => Some(Ok(V::Map(Map::Json(empty())))),
        },
        "scopes" => Some(Ok(V::Scopes(identity.map_or(&[][..], |i| i.scopes.as_slice())))),
        "principal" => Some(Ok(V::Str(Cow::Owned(facts.principal.map(|id| id.to_string()).unwrap_or_default())))),
        _ => Some(Err(Stop::Interpreter)),
    }
}

fn empty() -> &'static Object<String, Json> {
    static EMPTY: std::sync::LazyLock<Object<String, Json>> = std::sync::LazyLock::new(Object::new);
    &EMPTY
}

/// A claim's JSON value: integers as int (uint above int's range), other numbers as double.
pub fn json(value: &Json) -> V<'_> {
    match value {
        Json::Null => V::Null,
        Json::Bool(b) => V::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => V::Int(i),
            (None, Some(u)) => V::UInt(u),
            _ => V::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => V::Str(Cow::Borrowed(s)),
        Json::Array(items) => V::List(items),
        Json::Object(object) => V::Map(Map::Json(object)),
    }
}
