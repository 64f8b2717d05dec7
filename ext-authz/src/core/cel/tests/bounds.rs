//! The bounds, each at its value and one past it.

use serde_json::{json, Map, Value};

use super::{compiled, Fixture};
use crate::core::cel::bounds::{
    MAX_CLAIM_DEPTH, MAX_COMPREHENSION_DEPTH, MAX_ENTRIES, MAX_EXPRESSION_BYTES, MAX_NODES, MAX_STRING_BYTES,
};
use crate::core::cel::compile;

#[test]
fn expression_text_size() {
    // `true` followed by spaces: only the text's length varies.
    let at = format!("true{}", " ".repeat(MAX_EXPRESSION_BYTES - 4));
    assert!(compile(&at).is_ok());
    let error = compile(&format!("{at} ")).unwrap_err();
    assert_eq!((error.line, error.column), (1, 1));
    assert_eq!(error.message, format!("the expression is {} bytes, over the bound of 4096", MAX_EXPRESSION_BYTES + 1));
}

#[test]
fn node_count() {
    // `[1, ..., 1] == []`: the list, its k elements, `==` and `[]`: k + 3 nodes.
    let list = |k: usize| format!("[{}] == []", vec!["1"; k].join(", "));
    assert!(compile(&list(MAX_NODES - 3)).is_ok());
    let error = compile(&list(MAX_NODES - 2)).unwrap_err();
    assert_eq!(error.message, "the expression has 257 nodes, over the bound of 256");
}

#[test]
fn comprehension_nesting() {
    assert_eq!(MAX_COMPREHENSION_DEPTH, 2);
    assert!(compile("[1].all(x, [2].all(y, x < y))").is_ok());
    let error = compile("[1].all(x, [2].all(y, [3].all(z, x < z)))").unwrap_err();
    assert_eq!((error.line, error.column), (1, 30), "{error}");
    assert!(error.message.contains("nest deeper than 2"), "{error}");
}

#[test]
fn worst_case_cost() {
    // One comprehension over request data is fine; one inside another is refused.
    assert!(compile("request.headers.all(k, k != '')").is_ok());
    assert!(compile("['a', 'b'].all(x, identity.scopes.exists(s, s == x))").is_ok());
    let error = compile("request.headers.all(k, identity.scopes.exists(s, s == k))").unwrap_err();
    assert!(error.message.contains("over the bound of 20000"), "{error}");
}

#[test]
fn header_values() {
    let at = "x".repeat(MAX_STRING_BYTES);
    let fixture = Fixture::new().header("x-big", &at);
    fixture.holds(&["request.headers['x-big'].size() == 16384"]);
    let fixture = Fixture::new().header("x-big", &format!("{at}x"));
    let error = fixture.eval("request.headers['x-big'].size() > 0").unwrap_err();
    assert_eq!(error.0, "request.headers['x-big'] is 16385 bytes, over the bound of 16384");
    // Never truncated into a yes: any expression reading it fails.
    assert!(fixture.eval("request.headers.exists(k, k == 'x-big')").is_err());
}

#[test]
fn header_count() {
    let mut fixture = Fixture::new();
    // The fixture has 2 headers.
    for i in 0..MAX_ENTRIES - 2 {
        fixture.request.headers.insert(format!("x-{i}"), "v".into());
    }
    fixture.holds(&["size(request.headers) == 256"]);
    fixture.request.headers.insert("x-one-more".into(), "v".into());
    let error = fixture.eval("size(request.headers) > 0").unwrap_err();
    assert_eq!(error.0, "request.headers has 257 entries, over the bound of 256");
    // A header read by name is not the whole map.
    fixture.holds(&["request.headers['x-tenant'] == 'acme'"]);
}

#[test]
fn claim_strings_and_lists() {
    let at = "c".repeat(MAX_STRING_BYTES);
    Fixture::new().jwt(json!({"s": at})).holds(&["size(identity.claims.s) == 16384"]);
    let fixture = Fixture::new().jwt(json!({"s": format!("{at}c"), "org": "acme"}));
    assert_eq!(
        fixture.eval("identity.claims.s != ''").unwrap_err().0,
        "a claim is 16385 bytes, over the bound of 16384"
    );
    fixture.holds(&["identity.claims.org == 'acme'"]);
    assert!(fixture.eval("identity.claims.exists(k, k == 'org')").is_err(), "all claims read: the long one too");

    let list: Vec<u32> = (0..MAX_ENTRIES as u32).collect();
    Fixture::new().jwt(json!({"l": list})).holds(&["size(identity.claims.l) == 256"]);
    let list: Vec<u32> = (0..=MAX_ENTRIES as u32).collect();
    let error = Fixture::new().jwt(json!({"l": list})).eval("size(identity.claims.l) > 0").unwrap_err();
    assert_eq!(error.0, "a claim's list has 257 entries, over the bound of 256");
}

#[test]
fn claim_nesting() {
    // claims (level 1) holding maps down to level `depth`.
    let nested = |depth: usize| {
        let mut value = json!("leaf");
        for _ in 1..depth {
            value = Value::Object(Map::from_iter([("n".to_string(), value)]));
        }
        json!({ "n": value })
    };
    Fixture::new().jwt(nested(MAX_CLAIM_DEPTH)).holds(&["has(identity.claims.n)"]);
    let error = Fixture::new().jwt(nested(MAX_CLAIM_DEPTH + 1)).eval("has(identity.claims.n)").unwrap_err();
    assert_eq!(error.0, "identity.claims nests maps and lists deeper than 8 levels");
}

#[test]
fn scopes_count() {
    let scopes: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("s{i}")).collect();
    let mut fixture = Fixture::new();
    fixture.identity = Some(super::identity(
        crate::core::identity::AuthMethod::ApiKey,
        json!({}),
        &scopes.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(fixture.eval("'s1' in identity.scopes").is_err());
    fixture.holds(&["identity.kind == 'api_key'"]);
    let _ = compiled("true");
}

#[test]
fn tree_depth() {
    use crate::core::cel::bounds::MAX_DEPTH;
    // `==`, then `identity`, `.claims` and k selections: k + 3 levels.
    let chain = |k: usize| format!("identity.claims{} == ''", ".a".repeat(k));
    let at = compile(&chain(MAX_DEPTH - 3)).unwrap();
    let error = compile(&chain(MAX_DEPTH - 2)).unwrap_err();
    assert_eq!(error.message, "the expression nests 49 levels deep, over the bound of 48");
    // At the bound, evaluation (which recurses down the whole chain first) keeps to a test
    // thread's stack, unoptimized.
    let fixture = Fixture::new().jwt(json!({"a": {"a": "x"}}));
    assert!(fixture.eval_all(&[&at]).remove(0).is_err());
}

#[test]
fn bracket_nesting() {
    use crate::core::cel::bounds::MAX_NESTING;
    let nested = |d: usize| format!("{}1{} == []", "[".repeat(d), "]".repeat(d));
    assert!(compile(&nested(MAX_NESTING)).is_ok());
    let error = compile(&nested(MAX_NESTING + 1)).unwrap_err();
    assert_eq!(error.message, "brackets nest deeper than 32");
    // Brackets inside string literals are text.
    assert!(compile(&format!("request.path == '{}'", "(".repeat(100))).is_ok());
}
