//! A request's facts as CEL values, converted only as far as an expression reads them (see
//! `needs`), borrowing the request's strings rather than copying them, and bounded: a value
//! over its bound (see `bounds`) is an evaluation error, never cut short.

use std::borrow::Cow;
use std::collections::HashMap;

use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt};
use cel::common::value::Val;
use serde_json::Value as Json;

use super::bounds::{string_too_long, too_deep, too_many_entries, MAX_CLAIM_DEPTH, MAX_ENTRIES, MAX_STRING_BYTES};
use super::needs::Need;
use super::schema::Var;
use super::{EvalError, Facts};
use crate::core::identity::AuthMethod;
use crate::core::request::percent_decode;

pub type Boxed<'a> = Box<dyn Val + 'a>;
type Built<'a> = Result<Boxed<'a>, EvalError>;

/// The variable `var`, holding what `need` reads of it.
pub fn build<'a>(facts: &Facts<'a>, var: Var, need: &Need) -> Built<'a> {
    match var {
        Var::Request => request(facts, need),
        Var::Source => {
            let text = |ip: Option<std::net::IpAddr>| ip.map(|ip| ip.to_string()).unwrap_or_default();
            record(
                need,
                &[
                    ("address", &|| Ok(owned(text(facts.source.peer)))),
                    ("client", &|| Ok(owned(text(facts.source.client)))),
                ],
            )
        }
        Var::Identity => identity(facts, need),
        Var::Route => strings("route", facts.route.iter().map(|(k, v)| (*k, *v)), facts.route.len(), need),
        Var::Context => {
            strings("context", facts.context.iter().map(|(k, v)| (k.as_str(), v.as_str())), facts.context.len(), need)
        }
        Var::Now => Ok(Box::new(CelInt::from(i64::try_from(facts.now).unwrap_or(i64::MAX)))),
    }
}

type Field<'f, 'a> = (&'static str, &'f dyn Fn() -> Built<'a>);

/// A map of fixed fields, holding the ones `need` reads.
fn record<'a>(need: &Need, fields: &[Field<'_, 'a>]) -> Built<'a> {
    let mut map = HashMap::with_capacity(fields.len());
    for (name, value) in fields {
        if need.field(name).is_some() {
            map.insert(CelMapKey::from(*name), value()?);
        }
    }
    Ok(Box::new(CelMap::from(map)))
}

fn request<'a>(facts: &Facts<'a>, need: &Need) -> Built<'a> {
    let request = facts.request;
    let headers = || {
        let need = need.field("headers").unwrap_or(&Need::All);
        strings(
            "request.headers",
            request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            request.headers.len(),
            need,
        )
    };
    let query = || query(&request.query, need.field("query").unwrap_or(&Need::All));
    record(
        need,
        &[
            ("method", &|| string("request.method", &request.method)),
            ("host", &|| string("request.host", &request.host)),
            ("path", &|| string("request.path", &request.path)),
            ("id", &|| string("request.id", request.request_id())),
            ("headers", &headers),
            ("query", &query),
        ],
    )
}

/// `request.query`: the parameters `need` reads, as a map.
fn query<'a>(raw: &'a str, need: &Need) -> Built<'a> {
    let params = query_params(raw, |name| need.field(name).is_some())?;
    let map: HashMap<CelMapKey<'a>, Boxed<'a>> = params
        .into_iter()
        .map(|(name, value)| (CelMapKey::from(name.into_owned()), Box::new(CelString::from(value)) as Boxed<'a>))
        .collect();
    Ok(Box::new(CelMap::from(map)))
}

/// The query parameters a condition reads (`reads` says which names), percent-decoded: THE one
/// reader of query values for conditions. Every evaluator that reads `request.query` (this
/// activation, and any faster path beside it) must go through it, so that no path gives a
/// repeated name a meaning of its own.
///
/// A name that is read and occurs more than once (`?debug=false&debug=true`) is an evaluation
/// error, so the rule denies (HTTP parameter pollution): backends disagree on which value counts
/// (the first, the last, all of them), so whichever this picked, a request could make a condition
/// see one value and its backend another. Names not read may repeat. Each name and value read is
/// bounded by [`MAX_STRING_BYTES`], the parameters read by [`MAX_ENTRIES`]; the errors never
/// repeat a name or value from the request.
pub fn query_params<'a>(
    raw: &'a str,
    reads: impl Fn(&str) -> bool,
) -> Result<HashMap<Cow<'a, str>, Cow<'a, str>>, EvalError> {
    let mut params = HashMap::new();
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(k);
        if !reads(&name) {
            continue;
        }
        if name.len() > MAX_STRING_BYTES {
            return Err(EvalError(string_too_long("a name of request.query", name.len())));
        }
        let value = percent_decode(v);
        if value.len() > MAX_STRING_BYTES {
            return Err(EvalError(string_too_long("a value of request.query", value.len())));
        }
        if params.insert(name, value).is_some() {
            return Err(EvalError(REPEATED_QUERY_PARAMETER.into()));
        }
        if params.len() > MAX_ENTRIES {
            return Err(EvalError(too_many_entries("request.query", params.len())));
        }
    }
    Ok(params)
}

/// The error of a repeated query parameter: the name is the request's, so it is not repeated.
pub const REPEATED_QUERY_PARAMETER: &str = "request.query: a parameter the condition reads occurs more than once";

fn identity<'a>(facts: &Facts<'a>, need: &Need) -> Built<'a> {
    let identity = facts.identity;
    let (kind, provider) = match identity.map(|i| &i.method) {
        None => ("none", ""),
        Some(AuthMethod::Jwt { provider }) => ("jwt", provider.as_str()),
        Some(AuthMethod::ApiKey) => ("api_key", ""),
        Some(AuthMethod::Session { provider }) => ("session", provider.as_str()),
    };
    let claims = || {
        let need = need.field("claims").unwrap_or(&Need::All);
        match identity.map(|i| &*i.claims) {
            Some(Json::Object(claims)) => object("identity.claims", claims, need, 1),
            _ => Ok(Box::new(CelMap::from(HashMap::new())) as Boxed<'a>),
        }
    };
    let scopes = || {
        let scopes = identity.map_or(&[][..], |i| i.scopes.as_slice());
        if scopes.len() > MAX_ENTRIES {
            return Err(EvalError(too_many_entries("identity.scopes", scopes.len())));
        }
        let list: Result<Vec<Boxed<'a>>, EvalError> = scopes.iter().map(|s| string("a scope", s)).collect();
        Ok(Box::new(CelList::from(list?)) as Boxed<'a>)
    };
    let principal = || Ok(owned(facts.principal.map(|id| id.to_string()).unwrap_or_default()));
    record(
        need,
        &[
            ("kind", &|| Ok(Box::new(CelString::from(kind)))),
            ("provider", &|| string("identity.provider", provider)),
            ("claims", &claims),
            ("scopes", &scopes),
            ("principal", &principal),
        ],
    )
}

/// A map of strings (headers, captures, extensions), holding the keys `need` reads.
fn strings<'a>(place: &str, entries: impl Iterator<Item = (&'a str, &'a str)>, len: usize, need: &Need) -> Built<'a> {
    if need.keys().is_none() && len > MAX_ENTRIES {
        return Err(EvalError(too_many_entries(place, len)));
    }
    let mut map = HashMap::new();
    for (key, value) in entries {
        if need.field(key).is_some() {
            if value.len() > MAX_STRING_BYTES {
                return Err(EvalError(string_too_long(&format!("{place}['{key}']"), value.len())));
            }
            map.insert(CelMapKey::from(key), Box::new(CelString::from(value)) as Boxed<'a>);
        }
    }
    Ok(Box::new(CelMap::from(map)))
}

fn object<'a>(place: &str, object: &'a serde_json::Map<String, Json>, need: &Need, depth: usize) -> Built<'a> {
    if depth > MAX_CLAIM_DEPTH {
        return Err(EvalError(too_deep("identity.claims")));
    }
    if need.keys().is_none() && object.len() > MAX_ENTRIES {
        return Err(EvalError(too_many_entries(place, object.len())));
    }
    let mut map = HashMap::new();
    let mut put = |key: &'a String, value: &'a Json| -> Result<(), EvalError> {
        map.insert(CelMapKey::from(key.as_str()), json(value, depth)?);
        Ok(())
    };
    match need.keys() {
        // The named claims alone: the object is not walked.
        Some(keys) => {
            for key in keys {
                if let Some((key, value)) = object.get_key_value(key) {
                    put(key, value)?;
                }
            }
        }
        None => object.iter().try_for_each(|(key, value)| put(key, value))?,
    }
    Ok(Box::new(CelMap::from(map)))
}

/// A claim's JSON value: strings borrowed; integers as int (uint above int's range); other
/// numbers as double.
fn json<'a>(value: &'a Json, depth: usize) -> Built<'a> {
    Ok(match value {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Json::String(s) => string("a claim", s)?,
        Json::Array(items) => {
            if depth + 1 > MAX_CLAIM_DEPTH {
                return Err(EvalError(too_deep("identity.claims")));
            }
            if items.len() > MAX_ENTRIES {
                return Err(EvalError(too_many_entries("a claim's list", items.len())));
            }
            let list: Result<Vec<Boxed<'a>>, EvalError> = items.iter().map(|item| json(item, depth + 1)).collect();
            Box::new(CelList::from(list?))
        }
        Json::Object(map) => object("a claim's map", map, &Need::All, depth + 1)?,
    })
}

fn string<'a>(place: &str, text: &'a str) -> Built<'a> {
    if text.len() > MAX_STRING_BYTES {
        return Err(EvalError(string_too_long(place, text.len())));
    }
    Ok(Box::new(CelString::from(text)))
}

/// A string the activation makes (an address's text): bounded by its making.
fn owned<'a>(text: String) -> Boxed<'a> {
    Box::new(CelString::from(text))
}
