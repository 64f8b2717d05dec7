//! Every kind of load error, with its position in the expression's text.

use crate::core::cel::compile;

/// Compiles `source`, expecting an error at (line, column) whose message contains `text`.
fn refused(source: &str, line: usize, column: usize, text: &str) {
    let error = compile(source).expect_err(source);
    assert_eq!((error.line, error.column), (line, column), "{source}: {error}");
    assert!(error.message.contains(text), "{source}: {error}");
}

#[test]
fn syntax_errors() {
    refused("request.method == ", 1, 19, "");
    refused("request.method == 'GET' &&\n  (request.path == '/a'", 2, 24, "");
    refused("request.method = 'GET'", 1, 16, "");
    refused("", 1, 1, "empty");
    refused("   ", 1, 1, "empty");
    // The optional syntax is off.
    refused("request.headers.?x == 'a'", 1, 16, "");
}

#[test]
fn unknown_variables() {
    refused("requests.method == 'GET'", 1, 1, "unknown variable 'requests'");
    refused("request.method == 'GET' && user == 'a'", 1, 28, "unknown variable 'user'");
    refused("[1].all(x, y > 0)", 1, 12, "unknown variable 'y'");
}

#[test]
fn unknown_functions() {
    refused("lower(request.method) == 'get'", 1, 6, "unknown function 'lower'");
    refused("request.method.lowerAscii() == 'get'", 1, 26, "unknown function 'lowerAscii'");
    refused("timestamp('2024-01-01T00:00:00Z') < now", 1, 10, "unknown function 'timestamp'");
}

#[test]
fn unknown_fields_of_the_fixed_maps() {
    refused(
        "request.header['x'] == 'a'",
        1,
        1,
        "request has no field 'header' (its fields: method, host, path, query, headers, id)",
    );
    refused("identity.claim.org == 'a'", 1, 1, "identity has no field 'claim'");
    refused("source['peer'] == ''", 1, 8, "source has no field 'peer'");
}

#[test]
fn type_errors() {
    refused("request.method + 1 == 2", 1, 16, "'+' does not apply to a string and a int");
    refused("now == 'x'", 1, 5, "a int is never equal to a string");
    refused("now.startsWith('1')", 1, 15, "startsWith() applies to strings, not a int");
    refused("size(now) > 1", 1, 5, "size() applies to");
    refused("request.headers['x'] > 1", 1, 22, "cannot be ordered");
    refused("!request.path", 1, 1, "'!' needs a bool");
    refused("request.path && true", 1, 8, "'&&' needs a bool, not a string");
    refused("identity.scopes['a'] == 'x'", 1, 16, "a list is indexed by an int");
    refused("now.x == 1", 1, 1, "a int has no fields");
    refused("1 in now", 1, 3, "'in' needs a list or a map");
}

#[test]
fn results_that_are_not_booleans() {
    refused("request.path", 1, 8, "gives a string, not a bool");
    refused("now + 1", 1, 5, "gives a int, not a bool");
    refused("identity.scopes", 1, 9, "gives a list(string), not a bool");
}

#[test]
fn positions_count_characters() {
    // 'é' is two bytes and one character.
    refused("'é' == 'e' && nope", 1, 15, "unknown variable 'nope'");
}
