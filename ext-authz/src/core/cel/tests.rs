//! Unit tests of CEL conditions: pure, no network. A `Fixture` is one request's facts; `eval`
//! compiles an expression (which must compile) and evaluates it against them.

mod activation;
mod bounds;
mod compile_errors;
mod direct;
mod documented;
mod functions;
mod hostile;
mod no_panics;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use shared::spiffe::SpiffeId;

use super::{compile, Activation, EvalError, Expression, Facts, SourceAddresses};
use crate::core::identity::{AuthMethod, Identity};
use crate::core::request::AuthRequest;

#[derive(Debug)]
pub struct Fixture {
    pub request: AuthRequest,
    pub identity: Option<Identity>,
    pub principal: Option<SpiffeId>,
    pub route: Vec<(String, String)>,
    pub context: HashMap<String, String>,
    pub source: SourceAddresses,
    pub now: u64,
}

impl Fixture {
    /// `GET https://api.example.com:8443/orgs/acme/orders?...`, tenant header, no identity.
    pub fn new() -> Fixture {
        let headers = HashMap::from([
            ("x-tenant".to_string(), "acme".to_string()),
            ("x-request-id".to_string(), "req-1".to_string()),
        ]);
        Fixture {
            request: AuthRequest::new(
                "get",
                "API.Example.com:8443",
                "/orgs/acme/./orders?limit=10&tag=a%20b&tag=c",
                headers,
            ),
            identity: None,
            principal: None,
            route: vec![("org".into(), "acme".into())],
            context: HashMap::from([("policy".to_string(), "orders-read".to_string())]),
            source: SourceAddresses {
                peer: Some("10.1.2.3".parse().unwrap()),
                client: Some("203.0.113.7".parse().unwrap()),
            },
            now: 1_700_000_000,
        }
    }

    pub fn jwt(mut self, claims: Value) -> Fixture {
        self.identity = Some(Identity::from_jwt("corp", Arc::new(claims)));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Fixture {
        self.request.headers.insert(name.into(), value.into());
        self
    }

    pub fn eval(&self, source: &str) -> Result<bool, EvalError> {
        self.eval_all(&[&compiled(source)]).remove(0)
    }

    /// Evaluates `expressions` in order against one shared activation.
    pub fn eval_all(&self, expressions: &[&Expression]) -> Vec<Result<bool, EvalError>> {
        let route: Vec<(&str, &str)> = self.route.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut activation = Activation::new(Facts {
            request: &self.request,
            source: self.source,
            identity: self.identity.as_ref(),
            principal: self.principal.as_ref(),
            route: &route,
            context: &self.context,
            now: self.now,
        });
        expressions.iter().map(|e| e.evaluate(&mut activation)).collect()
    }

    /// Asserts each expression holds.
    pub fn holds(&self, sources: &[&str]) {
        for source in sources {
            assert_eq!(self.eval(source), Ok(true), "{source}");
        }
    }

    /// Asserts each expression evaluates to false.
    pub fn fails(&self, sources: &[&str]) {
        for source in sources {
            assert_eq!(self.eval(source), Ok(false), "{source}");
        }
    }
}

pub fn compiled(source: &str) -> Expression {
    compile(source).unwrap_or_else(|e| panic!("{source}: {e}"))
}

pub fn identity(method: AuthMethod, claims: Value, scopes: &[&str]) -> Identity {
    Identity::new(method, Arc::new(claims), scopes.iter().map(|s| s.to_string()).collect())
}

pub fn claims() -> Value {
    json!({
        "sub": "u-1",
        "org": "acme",
        "email": "ada@example.com",
        "employment": "contractor",
        "exp": 1_700_000_600,
        "scope": "orders:read orders:write",
        "groups": ["admins", "dev"],
        "address": {"country": "FR"},
    })
}
