//! `inCidr` (IPv4, IPv6, mapped addresses) and `matches`, with their literals compiled at load.

use super::{compiled, Fixture};
use crate::core::cel::compile;
use crate::core::cel::compile::literal_kinds;

#[test]
fn ipv4_blocks() {
    let fixture = Fixture::new();
    fixture.holds(&[
        "source.address.inCidr('10.0.0.0/8')",
        "source.address.inCidr('10.1.2.3')",
        "source.address.inCidr('10.1.2.3/32')",
        "!source.client.inCidr('10.0.0.0/8')",
        "source.client.inCidr('203.0.113.0/24')",
        "!source.address.inCidr('fd00::/8')",
    ]);
}

#[test]
fn ipv6_blocks_and_mapped_addresses() {
    let mut fixture = Fixture::new();
    fixture.source.client = Some("fd00:1::5".parse().unwrap());
    fixture.source.peer = Some("::ffff:10.1.2.3".parse().unwrap());
    fixture.holds(&[
        "source.client.inCidr('fd00::/8')",
        "!source.client.inCidr('fe80::/10')",
        "!source.client.inCidr('10.0.0.0/8')",
        "source.address.inCidr('10.0.0.0/8')",
        "'2001:db8::1'.inCidr('2001:db8::/32')",
    ]);
}

/// An IPv4-mapped block is the IPv4 block it maps, as in the address lists: addresses are
/// compared as IPv4, so kept as IPv6 it would hold none.
#[test]
fn ipv4_mapped_blocks_are_ipv4_blocks() {
    let mut fixture = Fixture::new();
    fixture.source.peer = Some("::ffff:10.1.2.3".parse().unwrap());
    fixture.holds(&[
        "source.address.inCidr('::ffff:10.0.0.0/104')",
        "'203.0.113.7'.inCidr('::ffff:203.0.113.0/120')",
        "'10.1.2.3'.inCidr('::ffff:10.1.2.3')",
        "!'10.1.2.4'.inCidr('::ffff:10.1.2.3')",
        "'::ffff:192.0.2.1'.inCidr('::ffff:0:0/96')",
        "!'fd00::1'.inCidr('::ffff:0:0/96')",
    ]);
}

#[test]
fn in_cidr_on_what_is_not_an_address_is_an_error() {
    let mut fixture = Fixture::new();
    fixture.source.peer = None;
    assert_eq!(
        fixture.eval("source.address.inCidr('10.0.0.0/8')").unwrap_err().0,
        "inCidr: the value is not an IP address"
    );
    assert!(fixture.eval("request.headers['x-tenant'].inCidr('10.0.0.0/8')").is_err());
}

#[test]
fn cidr_literals_are_checked_at_load() {
    for (source, message) in [
        (
            "source.client.inCidr('10.0.0.0/33')",
            "\"10.0.0.0/33\" is not an IP address or a CIDR (10.0.0.0/8, fd00::/8)",
        ),
        ("source.client.inCidr('nope')", "\"nope\" is not an IP address or a CIDR (10.0.0.0/8, fd00::/8)"),
        // As in the rules' address lists.
        ("source.client.inCidr('10.1.2.3/8')", "\"10.1.2.3/8\" has host bits set: write 10.0.0.0/8"),
    ] {
        let error = compile(source).unwrap_err();
        assert_eq!((error.line, error.column, error.message.as_str()), (1, 22, message), "{source}");
    }
    let error = compile("source.client.inCidr(request.headers['x-cidr'])").unwrap_err();
    assert!(error.message.contains("must be a string literal"), "{error}");
    let error = compile("now.inCidr('10.0.0.0/8')").unwrap_err();
    assert!(error.message.contains("applies to a string, not a int"), "{error}");
    assert_eq!(
        literal_kinds(&compiled("source.client.inCidr('10.0.0.0/8') || source.client.inCidr('fd00::/8')")),
        ["cidr", "cidr"]
    );
}

#[test]
fn matches_with_literal_patterns() {
    let fixture = Fixture::new().jwt(super::claims());
    fixture.holds(&[
        "request.path.matches('^/orgs/[a-z]+/orders$')",
        "matches(request.path, '^/orgs/')",
        // Unanchored, as CEL's own.
        "identity.claims.email.matches('@example\\\\.com')",
        "!request.path.matches('^/admin')",
    ]);
    assert_eq!(literal_kinds(&compiled("request.path.matches('a') && request.host.matches('b')")), ["regex", "regex"]);
}

#[test]
fn matches_patterns_are_checked_at_load() {
    let error = compile("request.path.matches('(unclosed')").unwrap_err();
    assert_eq!((error.line, error.column), (1, 22), "{error}");
    assert!(error.message.starts_with("invalid regular expression"), "{error}");
    let error = compile("request.path.matches(request.headers['x-pattern'])").unwrap_err();
    assert!(error.message.contains("must be a string literal"), "{error}");
    // A pattern whose compiled form is over the size bound.
    let error = compile("request.path.matches('(\\\\w{100}){100}')").unwrap_err();
    assert!(error.message.starts_with("invalid regular expression"), "{error}");
    let long = format!("request.path.matches('{}')", "a".repeat(crate::core::cel::bounds::MAX_PATTERN_BYTES + 1));
    assert!(compile(&long).unwrap_err().message.contains("over the bound"));
}

#[test]
fn standard_functions() {
    let fixture = Fixture::new().jwt(super::claims());
    fixture.holds(&[
        "size(request.path) == 17",
        "request.path.size() == 17",
        "request.path.startsWith('/orgs/')",
        "request.path.endsWith('/orders')",
        "request.path.contains('acme')",
        "has(identity.claims.org)",
        "identity.claims.groups.all(g, g.size() > 2)",
        "identity.claims.groups.exists(g, g == 'dev')",
        "identity.claims.groups.exists_one(g, g == 'dev')",
        "identity.claims.groups.map(g, g + '!') == ['admins!', 'dev!']",
        "identity.claims.groups.filter(g, g.startsWith('a')) == ['admins']",
        "int(request.query.limit) <= 10",
        "string(now).startsWith('17')",
        "double(identity.claims.exp) > 1.0",
        "type(now) == int",
        "request.method in ['GET', 'HEAD']",
        "(request.method == 'GET' ? 1 : 2) == 1",
    ]);
}
