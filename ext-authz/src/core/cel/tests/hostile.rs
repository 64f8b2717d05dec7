//! Hostile requests: a repeated query parameter, values an expression builds, and what an
//! evaluation error may say.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

use super::{compiled, Fixture};
use crate::core::cel::bounds::{MAX_NESTING, MAX_STRING_BYTES};
use crate::core::cel::check::check;
use crate::core::cel::functions::env;
use crate::core::cel::size::BYTES_PER_STEP;
use crate::core::cel::values::REPEATED_QUERY_PARAMETER;
use crate::core::cel::{compile, on_compiler_thread, Expression};

fn with_query(query: &str) -> Fixture {
    let mut fixture = Fixture::new();
    fixture.request.query = query.into();
    fixture
}

#[test]
fn a_repeated_query_parameter_that_is_read_is_an_error() {
    // `?debug=false&debug=true`: a backend keeping the last value sees `true`; the condition
    // may not see `false` and let it through.
    let deny = "'debug' in request.query && request.query.debug == 'true'";
    for query in ["debug=false&debug=true", "debug=true&debug=false", "debug&debug=true", "debug=true&d%65bug=x"] {
        let error = with_query(query).eval(deny).unwrap_err();
        assert_eq!(error.0, REPEATED_QUERY_PARAMETER, "{query}");
    }
    // Read whole (iterated, sized, indexed by a computed key): any repeated name is an error.
    for source in ["size(request.query) > 0", "request.query.exists(k, k == 'a')", "request.query[request.path] == ''"]
    {
        assert_eq!(with_query("a=1&b=2&b=3").eval(source).unwrap_err().0, REPEATED_QUERY_PARAMETER, "{source}");
    }
}

#[test]
fn a_repeated_query_parameter_that_is_not_read_is_no_error() {
    let fixture = with_query("tag=a&tag=b&debug=tr%75e&x=a+b");
    fixture.holds(&["request.query.debug == 'true'", "request.query.x == 'a b'", "!('y' in request.query)"]);
    with_query("a=1&b=2").holds(&["size(request.query) == 2", "request.query.exists(k, k == 'b')"]);
}

// === What an expression builds ===

fn cost(source: &str) -> u64 {
    let (expr, _) = env().parser().parse_with_source_info(source).unwrap_or_else(|e| panic!("{source}: {e:?}"));
    check(&expr).unwrap_or_else(|e| panic!("{source}: {}", e.message)).cost
}

#[test]
fn a_string_built_by_plus_at_its_bound_and_one_past() {
    let at = Fixture::new().header("x-big", &"x".repeat(MAX_STRING_BYTES - 1));
    at.holds(&["size(request.headers['x-big'] + 'y') == 16384", "size('y' + request.headers['x-big']) == 16384"]);
    let past = Fixture::new().header("x-big", &"x".repeat(MAX_STRING_BYTES));
    for source in ["size(request.headers['x-big'] + 'y') > 0", "size('y' + request.headers['x-big']) > 0"] {
        assert_eq!(
            past.eval(source).unwrap_err().0,
            "'+' would build a string of 16385 bytes, over the bound of 16384"
        );
    }
    // Whatever the operands' declared types: claims are dyn.
    let claims = Fixture::new().jwt(json!({"a": "x".repeat(8192), "b": "y".repeat(8193)}));
    claims.holds(&["size(identity.claims.a + identity.claims.a) == 16384"]);
    assert_eq!(
        claims.eval("size(identity.claims.a + identity.claims.b) > 0").unwrap_err().0,
        "'+' would build a string of 16385 bytes, over the bound of 16384"
    );
}

#[test]
fn a_list_built_by_plus_at_its_bound_and_one_past() {
    let lists = |a: usize, b: usize| Fixture::new().jwt(json!({"a": vec!["x"; a], "b": vec!["y"; b]}));
    lists(200, 56)
        .holds(&["size(identity.claims.a + identity.claims.b) == 256", "size(identity.claims.a + ['z']) == 201"]);
    let error = lists(200, 57).eval("size(identity.claims.a + identity.claims.b) > 0").unwrap_err();
    assert_eq!(error.0, "'+' would build a list of 257 entries, over the bound of 256");
    assert!(lists(256, 0).eval("'z' in identity.claims.a + ['z']").is_err());
    // `map` and `filter` append in place, one entry per element of a bounded range.
    lists(256, 0).holds(&[
        "size(identity.claims.a.map(x, x + '!')) == 256",
        "identity.claims.a.filter(x, x == 'x').size() == 256",
    ]);
}

#[test]
fn a_comprehension_over_a_computed_range_is_charged_its_parts() {
    // The review's case: a range rebuilt by `+` on every round of another comprehension.
    let groups = vec!["identity.claims.groups"; 20].join(" + ");
    let ones = vec!["1"; 20].join(", ");
    let error = compile(&format!("[{ones}].exists(i, ({groups}).exists(g, g == 'x'))")).unwrap_err();
    assert!(error.message.contains("over the bound of 20000"), "{error}");
    // A range built from literals iterates their lengths, a `map` or `filter` its own range's;
    // one built from request data up to the bound of a list.
    for fits in [
        "(['a'] + ['b']).all(x, identity.scopes.exists(s, s == x))",
        "['a', 'b'].map(x, x + '!').all(x, identity.scopes.exists(s, s == x))",
        "identity.scopes.filter(s, s.startsWith('orders:')).size() > 0",
        "identity.claims.groups.exists(g, 'team-' + route.org == g)",
    ] {
        assert!(compile(fits).is_ok(), "{fits}: {:?}", compile(fits).err());
    }
    for refused in [
        "(identity.scopes + ['b']).all(x, identity.scopes.exists(s, s == x))",
        "identity.scopes.map(x, x).all(x, identity.scopes.exists(s, s == x))",
        "request.headers.all(k, identity.scopes.exists(s, s == k + '!'))",
    ] {
        let error = compile(refused).unwrap_err();
        assert!(error.message.contains("over the bound of 20000"), "{refused}: {error}");
    }
}

#[test]
fn plus_is_charged_what_it_may_copy() {
    // Nodes: `==` 1, `+` 1, two selections of 2, `''` 1; then the copy: 16 KiB / 256 bytes.
    assert_eq!(cost("request.path + request.path == ''"), 7 + (MAX_STRING_BYTES as u64).div_ceil(BYTES_PER_STEP));
    // A list: one per entry (2), after its nodes (`==`, `+`, two one-element lists, `[]`).
    assert_eq!(cost("[1] + [2] == []"), 7 + 2);
    // Numbers copy nothing.
    assert_eq!(cost("now + 1 > 0"), 5);
    // A string literal is charged its length.
    assert_eq!(cost(&format!("'{}' + 'b' == ''", "a".repeat(511))), 5 + 2);
}

// === What an evaluation error says ===

#[test]
fn no_such_overload_names_the_function_only() {
    let fixture = Fixture::new().jwt(json!({"a": 1}));
    assert_eq!(
        fixture.eval("identity.claims.a.startsWith('x')").unwrap_err().0,
        "'startsWith' does not apply to these values"
    );
}

const MARKER: &str = "LEAKMARK";

/// A claim's value, carrying the marker wherever it can.
fn claim() -> impl Strategy<Value = Value> {
    let text = "[a-z0-9 .:/%-]{0,12}".prop_map(|s| format!("{s}{MARKER}{s}"));
    prop_oneof![
        text.clone().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        prop::collection::vec(text.clone(), 0..4).prop_map(Value::from),
        (text.clone(), text).prop_map(|(k, v)| json!({ k: v })),
    ]
}

/// Expressions that fail on most such values, each a different way: wrong types, missing keys
/// computed from the request, conversions, overloads, bounds.
const FAILING: &[&str] = &[
    "identity.claims.a > 3",
    "identity.claims.a + 1 == 2",
    "dyn(request.headers['x-a']) + 1 == 2",
    "dyn(request.headers['x-a']) - 1 == 2",
    "int(request.headers['x-a']) > 0",
    "double(identity.claims.a) > 0.0",
    "uint(identity.claims.a) > 0u",
    "bool(identity.claims.a)",
    "request.headers['x-a'].inCidr('10.0.0.0/8')",
    "identity.claims.a.inCidr('10.0.0.0/8')",
    "identity.claims.a.matches('x')",
    "identity.claims[request.headers['x-a']] == 1",
    "request.headers[identity.claims.a] == ''",
    "request.query[request.headers['x-a']] == ''",
    "request.query.exists(k, int(k) > 0)",
    "identity.claims.a[request.headers['x-a']] == 1",
    "identity.claims.a[5] == 'x'",
    "identity.claims.a.startsWith('x')",
    "identity.claims.a.size() > 0",
    "identity.claims.a == 1 || identity.claims.a",
    "!identity.claims.a",
    "-identity.claims.a == 1",
    "identity.claims.a / 0 == 1",
    "identity.claims.a % 0 == 1",
    "identity.claims.a ? true : false",
    "request.headers['x-a'] in identity.claims.a",
    "{identity.claims.a: 1, identity.claims.a: 2}.size() == 2",
    "{request.headers['x-a']: 1, request.headers['x-a']: 2}.size() == 2",
    "[identity.claims.a].all(x, x > 1)",
    "request.headers.exists(k, int(k) > 0 || int(request.headers[k]) > 0)",
    "identity.claims.exists(k, identity.claims[k] > 0)",
    "size(identity.claims.a + identity.claims.a + identity.claims.a) > 0",
    "int(string(identity.claims.a)) == 1",
    "identity.claims.a.endsWith(request.headers['x-a'])",
];

/// No request value (header name or value, claim name or value, query parameter) appears in any
/// evaluation error: the texts go to the logs.
#[test]
fn no_request_value_appears_in_an_error() {
    let expressions: Vec<Expression> = FAILING.iter().map(|source| compiled(source)).collect();
    let expressions: Vec<&Expression> = expressions.iter().collect();
    let mut runner = TestRunner::new(ProptestConfig { cases: 256, ..ProptestConfig::default() });
    let values = (claim(), "[a-z0-9 .:/-]{0,12}", 0usize..3);
    let erred = std::cell::RefCell::new(vec![false; FAILING.len()]);
    let outcome = runner.run(&values, |(a, header, long)| {
        // Up to two 8000-byte tails: over the bound once doubled by `+`.
        let value = format!("{header}{MARKER}{}", "z".repeat(long * 8000));
        let mut fixture = Fixture::new()
            .jwt(json!({"a": a.clone(), MARKER: a}))
            .header("x-a", &value)
            .header(&format!("x-{MARKER}"), &value);
        fixture.request.query = format!("{MARKER}={MARKER}&{MARKER}=1");
        for (i, result) in fixture.eval_all(&expressions).into_iter().enumerate() {
            if let Err(error) = result {
                erred.borrow_mut()[i] = true;
                prop_assert!(!error.0.contains(MARKER), "{}: {}", FAILING[i], error.0);
            }
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // Each expression met an error on some case, so each way of failing was looked at.
    let never: Vec<&str> = FAILING.iter().zip(erred.into_inner()).filter(|(_, e)| !e).map(|(s, _)| *s).collect();
    assert!(never.is_empty(), "never failed: {never:?}");
}

// === One compiler thread per load ===

#[test]
fn a_load_compiles_its_expressions_on_one_large_stack_thread() {
    let deepest = format!("{}true{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    let thread = on_compiler_thread(|| {
        for _ in 0..3 {
            assert!(compile(&deepest).is_ok());
        }
        assert!(compile("request.").is_err());
        std::thread::current().name().map(str::to_string)
    });
    assert_eq!(thread.as_deref(), Some("cel-compile"));
    // A panic in the load is the caller's, as it was without the thread.
    assert!(std::panic::catch_unwind(|| on_compiler_thread(|| panic!("in the load"))).is_err());
}
