//! Evaluation never panics: arbitrary expressions (from a vocabulary of CEL's tokens, so many
//! parse) against arbitrary activations (headers, claims, addresses, captures). Every one either
//! fails to compile or evaluates to a bool or an `EvalError`. Bounded cases: seconds.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::Value;

use super::Fixture;
use crate::core::cel::{compile, SourceAddresses};
use crate::core::identity::Identity;

const ATOMS: &[&str] = &[
    "request.method",
    "request.path",
    "request.host",
    "request.id",
    "request.headers['x-a']",
    "request.headers",
    "request.query.a",
    "request.query",
    "source.client",
    "source.address",
    "identity.kind",
    "identity.provider",
    "identity.claims.a",
    "identity.claims.n",
    "identity.claims['org']",
    "identity.claims",
    "identity.scopes",
    "identity.principal",
    "route.org",
    "route",
    "context.a",
    "now",
    "x",
    "1",
    "-1",
    "0",
    "9223372036854775807",
    "-9223372036854775808",
    "2.5",
    "1u",
    "18446744073709551615u",
    "'a'",
    "''",
    "'acme'",
    "'10.1.2.3'",
    "b'x'",
    "true",
    "false",
    "null",
    "[1, 2]",
    "['a', 'b']",
    "[]",
    "{'a': 1}",
    "{}",
];

const UNARY: &[&str] = &[
    "!{}",
    "-{}",
    "({})",
    "size({})",
    "{}.size()",
    "int({})",
    "uint({})",
    "double({})",
    "string({})",
    "bool({})",
    "dyn({})",
    "type({}) == int",
    "has({}.a)",
    "{}.startsWith('a')",
    "{}.endsWith('')",
    "{}.contains('c')",
    "{}.matches('^[a-z]+$')",
    "{}.inCidr('10.0.0.0/8')",
    "{}.inCidr('fd00::/8')",
    "{}[0]",
    "{}['a']",
];

const BINARY: &[&str] = &[
    "{} == {}",
    "{} != {}",
    "{} < {}",
    "{} >= {}",
    "{} + {}",
    "{} - {}",
    "{} * {}",
    "{} / {}",
    "{} % {}",
    "{} && {}",
    "{} || {}",
    "{} in {}",
    "{}[{}]",
    "{}.all(x, {})",
    "{}.exists(x, {})",
    "{}.exists_one(x, {})",
    "{}.map(x, {})",
    "{}.filter(x, {})",
    "[{}, {}]",
    "{'k': {}, 'l': {}}",
    "{}.contains({})",
];

/// Expressions built by CEL's grammar from the activation's names, literals, operators and
/// functions. Operands are often wrapped in `dyn()`, which the load-time checker cannot see
/// through, so that most of them compile and their type errors happen at evaluation: the path
/// this test is about.
fn expression() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(ATOMS).prop_map(str::to_string);
    let operand = |e: String, wrap: bool| if wrap { format!("dyn({e})") } else { e };
    let tree = atom.prop_recursive(5, 32, 2, move |inner| {
        prop_oneof![
            (prop::sample::select(UNARY), inner.clone(), any::<bool>()).prop_map(move |(f, e, w)| f.replacen(
                "{}",
                &operand(e, w),
                1
            )),
            (prop::sample::select(BINARY), inner.clone(), inner.clone(), any::<bool>(), any::<bool>()).prop_map(
                move |(f, a, b, wa, wb)| {
                    format!("({})", f.replacen("{}", &operand(a, wa), 1).replacen("{}", &operand(b, wb), 1))
                }
            ),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, a, b)| format!("(dyn({c}) ? {a} : {b})")),
        ]
    });
    // The result must be a bool, or `dyn` (told at evaluation).
    (tree, any::<bool>()).prop_map(|(e, wrap)| if wrap { format!("dyn({e})") } else { e })
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z0-9.@:]{0,8}".prop_map(Value::from),
        Just(Value::from("10.1.2.3")),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map("[a-z]{1,3}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn fixture() -> impl Strategy<Value = Fixture> {
    (
        prop::collection::hash_map(
            prop::sample::select(vec!["x-a", "x-b"]).prop_map(str::to_string),
            "[ -~]{0,12}",
            0..3,
        ),
        prop::option::of(prop::collection::hash_map(
            prop::sample::select(vec!["a", "n", "org", "x"]).prop_map(str::to_string),
            json(),
            0..4,
        )),
        prop::option::of(any::<[u8; 4]>()),
        prop::option::of(any::<[u16; 8]>()),
        "[a-z]{0,4}",
        any::<u64>(),
    )
        .prop_map(|(headers, claims, v4, v6, org, now)| {
            let mut fixture = Fixture::new();
            fixture.request.headers.extend(headers);
            fixture.identity =
                claims.map(|c| Identity::from_jwt("p", Arc::new(Value::Object(c.into_iter().collect()))));
            fixture.source = SourceAddresses { peer: v4.map(Into::into), client: v6.map(Into::into) };
            fixture.route = vec![("org".into(), org)];
            fixture.context = HashMap::from([("a".to_string(), "b".to_string())]);
            fixture.now = now;
            fixture
        })
}

proptest! {
    // About a quarter of the expressions compile and are evaluated (twice: once converting the
    // activation, once sharing it), mostly into evaluation errors: the path this is about.
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_expressions_never_panic(source in expression(), fixture in fixture()) {
        if let Ok(expression) = compile(&source) {
            let _ = fixture.eval_all(&[&expression, &expression]);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(source in "[ -~]{0,64}") {
        if let Ok(expression) = compile(&source) {
            let _ = Fixture::new().eval_all(&[&expression]);
        }
    }
}

/// The parser bounds its own recursion; what it accepts is within the node bound.
#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let n = crate::core::cel::MAX_EXPRESSION_BYTES / 2;
    for source in [
        format!("{}true{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1 == 1", "-".repeat(crate::core::cel::MAX_EXPRESSION_BYTES - 6)),
        format!("{}true", "!".repeat(crate::core::cel::MAX_EXPRESSION_BYTES - 4)),
        format!("{}1{} == []", "[".repeat(n - 8), "]".repeat(n - 8)),
        format!("{}{}", "{1:".repeat(n / 3), "}".repeat(n / 3)),
        format!("request{} == ''", ".a".repeat(n - 10)),
        format!("request.path{} == ''", "['a']".repeat(n / 5 - 10)),
        format!("1{} == 1", " + 1".repeat(n / 2 - 10)),
        format!("true{}", " || true".repeat(n / 4 - 10)),
        format!("true{}", " && !false".repeat(n / 5 - 10)),
        format!("{}1", "true ? 1 : ".repeat(n / 6 - 10)),
        format!("now{} > 0", ".size()".repeat(n / 4 - 10)),
        format!("{}now{} > 0", "size(".repeat(n / 3 - 10), ")".repeat(n / 3 - 10)),
    ] {
        if let Ok(expression) = compile(&source) {
            let _ = Fixture::new().eval_all(&[&expression]);
        }
    }
    assert!(compile(&format!("{}true{}", "(".repeat(n), ")".repeat(n))).is_err());
}

/// Just within the pre-parse bounds (32 levels of brackets, 256 names and literals), the
/// parser, the checker and the evaluation keep to a test thread's stack (2 MiB, unoptimized).
#[test]
fn the_deepest_expressions_accepted_by_the_prescan_parse() {
    let d = crate::core::cel::bounds::MAX_NESTING;
    let m = crate::core::cel::MAX_NODES;
    for source in [
        format!("{}true{}", "(".repeat(d), ")".repeat(d)),
        format!("{}1{} == []", "[".repeat(d), "]".repeat(d)),
        format!("{}now{} > 0", "size(".repeat(d - 1), ")".repeat(d - 1)),
        format!("{}1: 2{} == {{}}", "{1: ".repeat(d - 1), "}".repeat(d)),
        format!("request{} == ''", ".a".repeat(m - 1)),
        format!("request.path{} == ''", "['a']".repeat(m - 3)),
        format!("1{} == 1", " + 1".repeat(m - 2)),
        format!("true{}", " || true".repeat(m - 1)),
        format!("{}1 == 1", "true ? 1 : ".repeat((m - 2) / 2)),
        format!("now{} > 0", ".size()".repeat(m - 2)),
    ] {
        assert!(source.len() <= crate::core::cel::MAX_EXPRESSION_BYTES, "{}", source.len());
        if let Ok(expression) = compile(&source) {
            let _ = Fixture::new().eval_all(&[&expression]);
        }
    }
}
