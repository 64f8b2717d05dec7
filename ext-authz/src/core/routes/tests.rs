use super::*;
use serde_json::json;

#[test]
fn path_patterns() {
    let exact = PathMatch::parse("/orders").unwrap();
    assert!(exact.matches("/orders") && !exact.matches("/orders/1"));
    let prefix = PathMatch::parse("/static/*").unwrap();
    assert!(prefix.matches("/static/a/b") && !prefix.matches("/stat"));
    let template = PathMatch::parse("/orders/{id}/items").unwrap();
    assert!(template.matches("/orders/42/items"));
    assert!(!template.matches("/orders//items") && !template.matches("/orders/42/items/x"));
    assert!(PathMatch::parse("orders").is_err());
    assert!(PathMatch::parse("/a/*/b").is_err());
    assert!(PathMatch::parse("/a/{b").is_err());
}

#[test]
fn claim_conditions() {
    let claims = json!({"role": "admin", "groups": ["ops", "dev"], "scope": "a b", "level": 3});
    let rule = |claim: &str, condition| ClaimRule { claim: ClaimPath::parse(claim), condition };
    assert!(rule("role", Condition::Equals(json!("admin"))).holds(&claims));
    assert!(rule("level", Condition::Equals(json!("3"))).holds(&claims));
    assert!(rule("role", Condition::OneOf(vec![json!("x"), json!("admin")])).holds(&claims));
    assert!(rule("groups", Condition::Contains(json!("ops"))).holds(&claims));
    assert!(rule("scope", Condition::Contains(json!("b"))).holds(&claims));
    assert!(!rule("groups", Condition::Contains(json!("qa"))).holds(&claims));
    assert!(!rule("missing", Condition::Equals(json!("x"))).holds(&claims));
}

#[test]
fn routing_order() {
    let requires = Requirements::any_of(vec![Credential::ApiKey]);
    let table = RouteTable {
        public: vec![PathMatch::parse("/healthz").unwrap()],
        rules: vec![
            Rule {
                host: Some("api.example.com".into()),
                methods: vec!["GET".into()],
                ..Rule::allow("read", PathMatch::parse("/orders/*").unwrap(), requires.clone())
            },
            Rule::allow("any", PathMatch::parse("/orders/*").unwrap(), requires),
        ],
        default: DefaultPolicy::Deny,
    };
    assert_eq!(table.route("x", "GET", "/healthz"), Routed::Public);
    assert!(matches!(table.route("api.example.com", "GET", "/orders/1"), Routed::Rule(r) if r.name == "read"));
    assert!(matches!(table.route("api.example.com", "POST", "/orders/1"), Routed::Rule(r) if r.name == "any"));
    assert!(matches!(table.route("api.example.com", "GET", "/other"), Routed::Default(DefaultPolicy::Deny)));
}

#[test]
fn templates_capture_by_name_and_may_end_in_a_rest() {
    let orders = PathMatch::parse("/orgs/{org}/orders/{id}").unwrap();
    assert_eq!(orders.captures("/orgs/acme/orders/7"), vec![("org", "acme"), ("id", "7")]);
    assert!(orders.captures("/orgs/acme/orders").is_empty(), "no match, no captures");
    let under = PathMatch::parse("/orgs/{org}/*").unwrap();
    assert!(under.matches("/orgs/acme/") && under.matches("/orgs/acme/orders/7"));
    assert!(!under.matches("/orgs/acme") && !under.matches("/orgs//x"), "a rest must follow, as after a prefix");
    assert_eq!(under.captures("/orgs/acme/orders/7"), vec![("org", "acme")]);
    assert!(PathMatch::parse("/static/*").unwrap().captures("/static/x").is_empty());
    for refused in ["/orgs/{org}*", "/orgs/*/{org}", "/a/{x}/{x}", "/a/{}/b"] {
        assert!(PathMatch::parse(refused).is_err(), "{refused}");
    }
    assert_eq!(
        PathMatch::parse("/orgs/{org}x/*").unwrap_err().to_string(),
        "path \"/orgs/{org}x/*\": bad parameter \"{org}x\""
    );
}

fn ip_list(texts: &[&str]) -> Vec<ipnet::IpNet> {
    texts.iter().map(|t| parse_cidr(t).unwrap()).collect()
}

fn source(client: Option<&str>, peer: Option<&str>) -> SourceAddresses {
    SourceAddresses { client: client.map(|c| c.parse().unwrap()), peer: peer.map(|p| p.parse().unwrap()) }
}

#[test]
fn address_lists_on_the_client_and_the_peer_v4_and_v6() {
    let check = |lists: &AddressMatch, client, peer| lists.check(source(client, peer), Unknown::Fails);
    let inside = AddressMatch { client_ips: ip_list(&["10.0.0.0/8", "fd00::/8"]), ..AddressMatch::default() };
    assert_eq!(check(&inside, Some("10.1.2.3"), None), None);
    assert_eq!(check(&inside, Some("fd12::1"), None), None);
    assert_eq!(check(&inside, Some("::ffff:10.9.9.9"), None), None, "an IPv4-mapped address is the IPv4 one");
    assert_eq!(check(&inside, Some("192.0.2.1"), None), Some(AddressMiss::ClientIps));
    assert_eq!(check(&inside, Some("2001:db8::1"), None), Some(AddressMiss::ClientIps));
    assert_eq!(check(&inside, None, None), Some(AddressMiss::ClientIps), "an unknown client fails an allow rule");
    let outside = AddressMatch { not_client_ips: ip_list(&["10.0.0.0/8"]), ..AddressMatch::default() };
    assert_eq!(check(&outside, Some("10.0.0.1"), None), Some(AddressMiss::NotClientIps));
    assert_eq!(check(&outside, Some("192.0.2.1"), None), None);
    // Was `None` ("unknown: not in the list"): an unknown client now fails an allow rule's
    // `not_client_ips` too (issue 35, review finding 2).
    assert_eq!(check(&outside, None, None), Some(AddressMiss::NotClientIps), "unknown: fails closed");
    let peers = AddressMatch {
        peer_ips: ip_list(&["192.168.0.0/16", "2001:db8::/32"]),
        not_peer_ips: ip_list(&["192.168.9.0/24"]),
        ..AddressMatch::default()
    };
    assert_eq!(check(&peers, None, Some("192.168.1.1")), None);
    assert_eq!(check(&peers, None, Some("2001:db8::5")), None);
    assert_eq!(check(&peers, None, Some("192.168.9.1")), Some(AddressMiss::NotPeerIps));
    assert_eq!(check(&peers, Some("192.168.1.1"), None), Some(AddressMiss::PeerIps), "HTTP mode: no peer");
}

/// An unknown address (HTTP mode's peer; a trusted `X-Forwarded-For` entry that is not an
/// address) fails closed in every list: an allow rule does not match, a deny rule denies —
/// IPv4 and IPv6 lists alike, and whether or not the address the other lists read is known.
#[test]
fn an_unknown_address_fails_an_allow_rule_and_holds_for_a_deny_rule_in_every_list() {
    let lists = |client: &[&str], not_client: &[&str], peer: &[&str], not_peer: &[&str]| AddressMatch {
        client_ips: ip_list(client),
        not_client_ips: ip_list(not_client),
        peer_ips: ip_list(peer),
        not_peer_ips: ip_list(not_peer),
    };
    for net in ["203.0.113.0/24", "2001:db8::/32", "10.0.0.0/8", "fd00::/8"] {
        let cases = [
            (lists(&[net], &[], &[], &[]), AddressMiss::ClientIps),
            (lists(&[], &[net], &[], &[]), AddressMiss::NotClientIps),
            (lists(&[], &[], &[net], &[]), AddressMiss::PeerIps),
            (lists(&[], &[], &[], &[net]), AddressMiss::NotPeerIps),
        ];
        for (lists, miss) in cases {
            let at = format!("{net} in {}", miss.key());
            let client_lists = matches!(miss, AddressMiss::ClientIps | AddressMiss::NotClientIps);
            // The other address known does not make the unknown one known.
            let other = if client_lists { source(None, Some("192.0.2.1")) } else { source(Some("192.0.2.1"), None) };
            for unknown in [source(None, None), other] {
                assert_eq!(lists.check(unknown, Unknown::Fails), Some(miss), "allow rule, {at}");
                assert_eq!(lists.check(unknown, Unknown::Holds), None, "deny rule, {at}");
            }
        }
    }
    // A known address answers the same in either rule; a list that is not set always holds.
    let everyone_but = lists(&[], &["203.0.113.0/24", "2001:db8::/32"], &[], &[]);
    for unknown in [Unknown::Fails, Unknown::Holds] {
        assert_eq!(everyone_but.check(source(Some("203.0.113.9"), None), unknown), Some(AddressMiss::NotClientIps));
        assert_eq!(everyone_but.check(source(Some("2001:db8::9"), None), unknown), Some(AddressMiss::NotClientIps));
        assert_eq!(everyone_but.check(source(Some("198.51.100.1"), None), unknown), None);
        assert_eq!(everyone_but.check(source(Some("2001:db9::1"), None), unknown), None);
        assert_eq!(AddressMatch::default().check(source(None, None), unknown), None);
    }
}

#[test]
fn an_allow_rule_does_not_match_an_unknown_client_and_a_deny_rule_does() {
    let path = || PathMatch::parse("/api/*").unwrap();
    let everyone_but = AddressMatch { not_client_ips: ip_list(&["203.0.113.0/24"]), ..AddressMatch::default() };
    let allow = Rule { addresses: everyone_but, ..Rule::allow("everyone-but", path(), Requirements::default()) };
    let deny = Rule {
        action: Action::Deny { code: crate::core::decision::ErrorCode::Denied, message: "no".into() },
        addresses: AddressMatch { client_ips: ip_list(&["203.0.113.0/24"]), ..AddressMatch::default() },
        ..Rule::allow("bad-range", path(), Requirements::default())
    };
    let request = AuthRequest::new("GET", "api", "/api/x", Default::default());
    let unknown = SourceAddresses::default();
    assert_eq!(allow.matches_request(&request, unknown), RuleMatch::Address(AddressMiss::NotClientIps));
    assert_eq!(deny.matches_request(&request, unknown), RuleMatch::Matches);
    let elsewhere = source(Some("198.51.100.1"), None);
    assert_eq!(allow.matches_request(&request, elsewhere), RuleMatch::Matches);
    assert_eq!(deny.matches_request(&request, elsewhere), RuleMatch::Address(AddressMiss::ClientIps));
}

#[test]
fn cidrs_and_single_addresses_parse_and_bad_ones_say_why() {
    assert_eq!(parse_cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
    assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
    assert_eq!(parse_cidr("10.1.2.3/8").unwrap_err(), "\"10.1.2.3/8\" has host bits set: write 10.0.0.0/8");
    assert!(parse_cidr("10.0.0.0/33").unwrap_err().contains("is not an IP address or a CIDR"));
    assert!(parse_cidr("example.com").is_err());
}

/// Addresses are compared as IPv4 when they are IPv4-mapped, so an IPv4-mapped block is read
/// as the IPv4 block: kept as IPv6 it would hold no address.
#[test]
fn an_ipv4_mapped_block_is_the_ipv4_block() {
    for (written, read) in [
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:203.0.113.0/120", "203.0.113.0/24"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::ffff:10.1.2.3", "10.1.2.3/32"),
        ("::FFFF:a01:203/128", "10.1.2.3/32"),
    ] {
        assert_eq!(parse_cidr(written).unwrap().to_string(), read, "{written}");
    }
    // Wider than the mapped block, or not mapped: IPv6 as written.
    for v6 in ["::/0", "::/80", "::/96", "64:ff9b::/96", "::10.0.0.0/104"] {
        assert!(matches!(parse_cidr(v6), Ok(ipnet::IpNet::V6(_))), "{v6}");
    }
    assert_eq!(
        parse_cidr("::ffff:10.1.2.3/104").unwrap_err(),
        "\"::ffff:10.1.2.3/104\" has host bits set: write ::ffff:10.0.0.0/104"
    );
    let mapped = AddressMatch { client_ips: ip_list(&["::ffff:203.0.113.0/120"]), ..AddressMatch::default() };
    for client in ["203.0.113.7", "::ffff:203.0.113.7"] {
        assert_eq!(mapped.check(source(Some(client), None), Unknown::Fails), None, "{client}");
    }
    assert_eq!(mapped.check(source(Some("203.0.114.1"), None), Unknown::Fails), Some(AddressMiss::ClientIps));
}

#[test]
fn a_rule_says_which_part_did_not_match() {
    let rule = Rule {
        host: Some("api.test".into()),
        methods: vec!["GET".into()],
        addresses: AddressMatch { client_ips: ip_list(&["10.0.0.0/8"]), ..AddressMatch::default() },
        ..Rule::allow("r", PathMatch::parse("/orders/*").unwrap(), Requirements::default())
    };
    let request = |method: &str, host: &str, path: &str| AuthRequest::new(method, host, path, Default::default());
    let inside = source(Some("10.0.0.1"), None);
    assert_eq!(rule.matches_request(&request("GET", "api.test", "/orders/1"), inside), RuleMatch::Matches);
    assert_eq!(rule.matches_request(&request("GET", "other.test", "/orders/1"), inside), RuleMatch::Host);
    assert_eq!(rule.matches_request(&request("POST", "api.test", "/orders/1"), inside), RuleMatch::Method);
    assert_eq!(rule.matches_request(&request("GET", "api.test", "/items"), inside), RuleMatch::Path);
    let outside = source(Some("192.0.2.1"), None);
    let missed = rule.matches_request(&request("GET", "api.test", "/orders/1"), outside);
    assert_eq!(missed, RuleMatch::Address(AddressMiss::ClientIps));
    assert_eq!(AddressMiss::ClientIps.key(), "client_ips");
}

#[test]
fn deny_and_shadow_rules_are_not_routes() {
    let requires = Requirements::any_of(vec![Credential::ApiKey]);
    let path = || PathMatch::parse("/orders/*").unwrap();
    let deny = Action::Deny { code: crate::core::decision::ErrorCode::Denied, message: "no".into() };
    let table = RouteTable {
        public: vec![],
        rules: vec![
            Rule { action: deny, ..Rule::allow("deny", path(), Requirements::default()) },
            Rule { mode: Mode::Shadow, ..Rule::allow("shadow", path(), requires.clone()) },
            Rule::allow("orders", path(), requires),
        ],
        default: DefaultPolicy::Deny,
    };
    let request = AuthRequest::new("GET", "api", "/orders/1", Default::default());
    assert_eq!(table.route_request(&request, SourceAddresses::default()).name(), "orders");
    assert_eq!(table.deny_rules().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["deny"]);
}

#[test]
fn a_policy_is_named_by_a_context_extension_else_by_route_metadata() {
    let policy = NamedPolicy {
        table: RouteTable { public: vec![], rules: vec![], default: DefaultPolicy::Allow },
        mode: Mode::Enforce,
    };
    let policies = Policies { named: [("orders".to_string(), policy)].into(), selector: PolicySelector::default() };
    let mut request = AuthRequest::new("GET", "api", "/", Default::default());
    assert_eq!(policies.select(&request), Selected::Routes);
    let metadata = json!({"envoy-gateway": {"resources": [
        {"kind": "HTTPRoute", "name": "r", "annotations": {"gatehouse-policy": "orders"}}
    ]}});
    request.route_annotation =
        RouteAnnotation::from_json(&metadata, policies.selector.route_metadata.as_ref().unwrap());
    assert!(matches!(policies.select(&request), Selected::Named("orders", _)));
    request.context_extensions.insert("policy".into(), "billing".into());
    assert_eq!(policies.select(&request), Selected::Unknown("billing"), "the context extension comes first");
    request.context_extensions.insert("policy".into(), String::new());
    assert!(matches!(policies.select(&request), Selected::Named("orders", _)), "an empty value names nothing");
    let off = PolicySelector { context_extension: String::new(), route_metadata: None };
    request.context_extensions.insert("policy".into(), "billing".into());
    assert_eq!(off.name(&request), None);
}

/// Route metadata whose annotation's place is there but cannot be read names a policy that
/// cannot be known: refused as unknown, never answered by `routes` — unless a context extension
/// names the policy first.
#[test]
fn an_unreadable_route_annotation_selects_no_fallback() {
    let policies = Policies { named: Default::default(), selector: PolicySelector::default() };
    let mut request = AuthRequest::new("GET", "api", "/", Default::default());
    for why in
        [Unreadable::Resources, Unreadable::Resource, Unreadable::Annotations, Unreadable::NotText, Unreadable::TooLong]
    {
        request.route_annotation = RouteAnnotation::Unreadable(why);
        assert_eq!(policies.select(&request), Selected::Unknown(why.text()), "{why:?}");
        assert_eq!(policies.selector.name(&request), None);
    }
    request.route_annotation = RouteAnnotation::of_text(&"p".repeat(MAX_ANNOTATION_BYTES + 1));
    assert_eq!(policies.select(&request), Selected::Unknown(Unreadable::TooLong.text()));
    request.context_extensions.insert("policy".into(), "billing".into());
    assert_eq!(policies.select(&request), Selected::Unknown("billing"), "the context extension comes first");
    let off = PolicySelector { route_metadata: None, ..PolicySelector::default() };
    assert_eq!(off.unreadable(&request), None, "a selector that reads no metadata");
    request.context_extensions.clear();
    assert_eq!(off.unreadable(&request), None);
    assert_eq!(policies.selector.unreadable(&request), Some(Unreadable::TooLong));
}
