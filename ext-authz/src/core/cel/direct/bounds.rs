//! The value bounds, checked on what an expression reads before it is evaluated directly: the
//! same values, and the same limits, as the interpreter's activation checks when it converts
//! them (values.rs), so a value over its bound is an error on either path, whatever the
//! expression would have short-circuited. A whole map read (all headers, all claims) and the
//! query are left to the interpreter.

use serde_json::Value as Json;

use super::Stop;
use crate::core::cel::bounds::{
    string_too_long, too_deep, too_many_entries, MAX_CLAIM_DEPTH, MAX_ENTRIES, MAX_STRING_BYTES,
};
use crate::core::cel::needs::{Need, Needs};
use crate::core::cel::schema::Var;
use crate::core::cel::{EvalError, Facts};

pub fn check(facts: &Facts<'_>, needs: &Needs) -> Result<(), Stop> {
    for var in Var::ALL {
        match (var, needs.get(var)) {
            (_, None) | (Var::Source | Var::Now, _) => {}
            (_, Some(Need::All)) => return Err(Stop::Interpreter),
            (Var::Request, Some(Need::Fields(fields))) => request(facts, fields)?,
            (Var::Identity, Some(Need::Fields(fields))) => identity(facts, fields)?,
            (Var::Route, Some(Need::Fields(keys))) => {
                for (name, value) in facts.route.iter().filter(|(name, _)| keys.contains_key(*name)) {
                    keyed("route", name, value)?;
                }
            }
            (Var::Context, Some(Need::Fields(keys))) => {
                for key in keys.keys() {
                    if let Some(value) = facts.context.get(key) {
                        keyed("context", key, value)?;
                    }
                }
            }
        }
    }
    Ok(())
}

type Fields = std::collections::BTreeMap<String, Need>;

fn request(facts: &Facts<'_>, fields: &Fields) -> Result<(), Stop> {
    let request = facts.request;
    for (field, need) in fields {
        match field.as_str() {
            "method" => string("request.method", &request.method)?,
            "host" => string("request.host", &request.host)?,
            "path" => string("request.path", &request.path)?,
            "id" => string("request.id", request.request_id())?,
            "headers" => {
                for key in keys(need)? {
                    if let Some(value) = request.headers.get(key) {
                        keyed("request.headers", key, value)?;
                    }
                }
            }
            // The query's one reader is values::query_params: the interpreter's.
            "query" => return Err(Stop::Interpreter),
            _ => {}
        }
    }
    Ok(())
}

fn identity(facts: &Facts<'_>, fields: &Fields) -> Result<(), Stop> {
    let identity = facts.identity;
    for (field, need) in fields {
        match field.as_str() {
            "provider" => {
                if let Some(provider) = identity.and_then(|i| match &i.method {
                    crate::core::identity::AuthMethod::Jwt { provider }
                    | crate::core::identity::AuthMethod::Session { provider } => Some(provider),
                    _ => None,
                }) {
                    string("identity.provider", provider)?;
                }
            }
            "claims" => {
                let keys = keys(need)?;
                if let Some(Json::Object(claims)) = identity.map(|i| &*i.claims) {
                    for key in keys {
                        if let Some(value) = claims.get(key) {
                            json(value, 1)?;
                        }
                    }
                }
            }
            "scopes" => {
                let scopes = identity.map_or(&[][..], |i| i.scopes.as_slice());
                if scopes.len() > MAX_ENTRIES {
                    return Err(error(too_many_entries("identity.scopes", scopes.len())));
                }
                scopes.iter().try_for_each(|scope| string("a scope", scope))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The keys a map's need names; a whole map is the interpreter's.
fn keys(need: &Need) -> Result<impl Iterator<Item = &str> + Clone, Stop> {
    match need {
        Need::All => Err(Stop::Interpreter),
        Need::Fields(fields) => Ok(fields.keys().map(String::as_str)),
    }
}

/// A claim's value, walked as the interpreter converts it (values.rs `json`).
fn json(value: &Json, depth: usize) -> Result<(), Stop> {
    match value {
        Json::String(s) => string("a claim", s),
        Json::Array(items) => {
            if depth + 1 > MAX_CLAIM_DEPTH {
                return Err(error(too_deep("identity.claims")));
            }
            if items.len() > MAX_ENTRIES {
                return Err(error(too_many_entries("a claim's list", items.len())));
            }
            items.iter().try_for_each(|item| json(item, depth + 1))
        }
        Json::Object(map) => {
            if depth + 1 > MAX_CLAIM_DEPTH {
                return Err(error(too_deep("identity.claims")));
            }
            if map.len() > MAX_ENTRIES {
                return Err(error(too_many_entries("a claim's map", map.len())));
            }
            map.values().try_for_each(|item| json(item, depth + 1))
        }
        Json::Null | Json::Bool(_) | Json::Number(_) => Ok(()),
    }
}

fn string(place: &str, text: &str) -> Result<(), Stop> {
    if text.len() > MAX_STRING_BYTES {
        return Err(error(string_too_long(place, text.len())));
    }
    Ok(())
}

/// A map's value: its place is only spelled out when it is over the bound.
fn keyed(map: &str, key: &str, text: &str) -> Result<(), Stop> {
    if text.len() > MAX_STRING_BYTES {
        return Err(error(string_too_long(&format!("{map}['{key}']"), text.len())));
    }
    Ok(())
}

fn error(text: String) -> Stop {
    Stop::Error(EvalError(text))
}
