//! The direct evaluator against the interpreter: for expressions of its subset and arbitrary
//! activations (claims of every JSON type, values over their bounds, missing keys), both give the
//! same bool, or both an error. Bounded cases: seconds.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{compiled, Fixture};
use crate::core::cel::{compile, Activation, EvalError, Expression, Facts, SourceAddresses, MAX_STRING_BYTES};
use crate::core::identity::{AuthMethod, Identity};

/// Values: fields and literal keys of the activation, literals, sizes.
const VALUES: &[&str] = &[
    "request.method",
    "request.host",
    "request.path",
    "request.id",
    "request.headers['x-a']",
    "request.headers['x-b']",
    "source.client",
    "source.address",
    "identity.kind",
    "identity.provider",
    "identity.principal",
    "identity.claims.a",
    "identity.claims.n",
    "identity.claims['l']",
    "identity.claims.m.k",
    "identity.claims.a.k",
    "route.org",
    "context.a",
    "now",
    "size(identity.scopes)",
    "size(request.method)",
    "identity.claims.l.size()",
    "'a'",
    "''",
    "'GET'",
    "'client-1'",
    "1",
    "-1",
    "0",
    "2.5",
    "1u",
    "18446744073709551615u",
    "true",
    "false",
    "null",
];

/// Conditions over one value (`{}`), or none.
const TESTS: &[&str] = &[
    "{}.startsWith('client-')",
    "{}.endsWith('a')",
    "{}.contains('')",
    "{}.matches('^[a-z]+$')",
    "{}.inCidr('10.0.0.0/8')",
    "{} in ['a', 1, 'GET', 2.5, null]",
    "'read' in identity.scopes",
    "'a' in identity.claims.l",
    "1 in identity.claims.l",
    "'x-a' in request.headers",
    "'a' in identity.claims",
    "'k' in identity.claims.m",
    "'k' in identity.claims.a",
    "'org' in route",
    "'a' in context",
    "has(identity.claims.a)",
    "has(identity.claims.m.k)",
    "has(identity.claims.a.k)",
    "has(request.headers.authorization)",
    "has(route.org)",
    "has(context.b)",
    "identity.claims.b",
    "true",
    "false",
];

const COMPARISONS: &[&str] = &["==", "!=", "<", "<=", ">", ">="];

fn condition() -> impl Strategy<Value = String> {
    let value = || prop::sample::select(VALUES);
    let leaf = prop_oneof![
        (value(), prop::sample::select(COMPARISONS), value()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (prop::sample::select(TESTS), value()).prop_map(|(test, v)| test.replace("{}", v)),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("!({c})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) || ({b})")),
        ]
    })
}

fn huge() -> String {
    "x".repeat(MAX_STRING_BYTES + 1)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "", "GET", "client-1", "10.1.2.3", "abc"]).prop_map(str::to_string),
        1 => Just(huge()),
    ]
}

fn claim() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, -1, i64::MAX]).prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(2.5)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::hash_map(prop::sample::select(vec!["k", "j"]).prop_map(str::to_string), inner, 0..2)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn fixture() -> impl Strategy<Value = Fixture> {
    (
        prop::collection::hash_map(
            prop::sample::select(vec!["x-a", "x-b", "x-other"]).prop_map(str::to_string),
            text(),
            0..3,
        ),
        prop::option::of(prop::collection::hash_map(
            prop::sample::select(vec!["a", "n", "l", "m", "b"]).prop_map(str::to_string),
            claim(),
            0..5,
        )),
        prop::collection::vec(text(), 0..3),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(any::<[u8; 4]>()),
        any::<bool>(),
    )
        .prop_map(|(headers, claims, scopes, org, context, client, deep)| {
            let mut fixture = Fixture::new();
            fixture.request.headers.extend(headers);
            fixture.identity = claims.map(|mut claims| {
                if deep {
                    claims.insert("m".into(), json!({"k": [[[[[[[["a"]]]]]]]]}));
                }
                let mut scopes = scopes;
                scopes.push("read".into());
                Identity::new(
                    AuthMethod::Jwt { provider: "corp".into() },
                    Arc::new(Value::Object(claims.into_iter().collect())),
                    scopes,
                )
            });
            fixture.route = org.into_iter().map(|org| ("org".to_string(), org)).collect();
            fixture.context = context.into_iter().map(|value| ("a".to_string(), value)).collect();
            fixture.source = SourceAddresses { peer: None, client: client.map(Into::into) };
            fixture
        })
}

/// The interpreter's answer alone.
fn interpreted(fixture: &Fixture, expression: &Expression) -> Result<bool, EvalError> {
    let route: Vec<(&str, &str)> = fixture.route.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut activation = Activation::new(Facts {
        request: &fixture.request,
        source: fixture.source,
        identity: fixture.identity.as_ref(),
        principal: fixture.principal.as_ref(),
        route: &route,
        context: &fixture.context,
        now: fixture.now,
    });
    expression.evaluate_interpreted(&mut activation)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_direct_evaluator_answers_as_the_interpreter(source in condition(), fixture in fixture()) {
        // The load-time checker refuses some (`request.method < 1`): nothing to compare.
        if let Ok(expression) = compile(&source) {
            prop_assert!(expression.is_direct(), "{source} is not taken directly");
            let direct = fixture.eval(&source);
            let interpreted = interpreted(&fixture, &expression);
            match (&direct, &interpreted) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", source),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "{source}: direct {direct:?}, interpreter {interpreted:?}"),
            }
        }
    }
}

#[test]
fn the_common_conditions_are_taken_directly() {
    for source in [
        "request.method == 'GET'",
        "identity.claims.client_id.startsWith('client-')",
        "'read' in identity.scopes",
        "identity.claims.org == route.org && request.headers['x-tenant'] == route.org",
        "'x-tenant' in request.headers",
        "has(identity.claims.email) && identity.claims.email.endsWith('@example.com')",
        "request.method in ['GET', 'HEAD']",
        "source.client.inCidr('10.0.0.0/8') || request.path.matches('^/public/')",
        "now < identity.claims.exp",
    ] {
        assert!(compiled(source).is_direct(), "{source}");
    }
}

#[test]
fn a_presence_test_of_a_header_reads_that_header_alone() {
    // An unrelated header over the bound does not make the condition an error, on either path.
    let fixture = Fixture::new().header("x-large", &huge());
    let source = "'x-tenant' in request.headers";
    assert_eq!(fixture.eval(source), Ok(true));
    assert_eq!(interpreted(&fixture, &compiled(source)), Ok(true));
    assert_eq!(fixture.eval("'x-absent' in request.headers"), Ok(false));
    // The header tested, over the bound: an error, as reading it is.
    let fixture = Fixture::new().header("x-tenant", &huge());
    assert!(fixture.eval(source).is_err());
    assert!(interpreted(&fixture, &compiled(source)).is_err());
}

#[test]
fn errors_are_absorbed_as_the_interpreter_absorbs_them() {
    let fixture = Fixture::new();
    assert_eq!(fixture.eval("false && request.headers['x-absent'] == 'a'"), Ok(false));
    assert_eq!(fixture.eval("request.headers['x-absent'] == 'a' && false"), Ok(false));
    assert_eq!(fixture.eval("request.headers['x-absent'] == 'a' || true"), Ok(true));
    assert_eq!(
        fixture.eval("request.headers['x-absent'] == 'a' || false"),
        Err(EvalError("no such key: x-absent".into()))
    );
    // A bound is checked on what is read, whatever short-circuits.
    let fixture = Fixture::new().header("x-tenant", &huge());
    assert!(fixture.eval("false && request.headers['x-tenant'] == 'a'").is_err());
}
