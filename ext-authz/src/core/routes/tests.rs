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
    let inside = AddressMatch { client_ips: ip_list(&["10.0.0.0/8", "fd00::/8"]), ..AddressMatch::default() };
    assert_eq!(inside.check(source(Some("10.1.2.3"), None)), None);
    assert_eq!(inside.check(source(Some("fd12::1"), None)), None);
    assert_eq!(inside.check(source(Some("::ffff:10.9.9.9"), None)), None, "an IPv4-mapped address is the IPv4 one");
    assert_eq!(inside.check(source(Some("192.0.2.1"), None)), Some(AddressMiss::ClientIps));
    assert_eq!(inside.check(source(Some("2001:db8::1"), None)), Some(AddressMiss::ClientIps));
    assert_eq!(inside.check(source(None, None)), Some(AddressMiss::ClientIps), "an unknown client is in no list");
    let outside = AddressMatch { not_client_ips: ip_list(&["10.0.0.0/8"]), ..AddressMatch::default() };
    assert_eq!(outside.check(source(Some("10.0.0.1"), None)), Some(AddressMiss::NotClientIps));
    assert_eq!(outside.check(source(Some("192.0.2.1"), None)), None);
    assert_eq!(outside.check(source(None, None)), None, "unknown: not in the list");
    let peers = AddressMatch {
        peer_ips: ip_list(&["192.168.0.0/16", "2001:db8::/32"]),
        not_peer_ips: ip_list(&["192.168.9.0/24"]),
        ..AddressMatch::default()
    };
    assert_eq!(peers.check(source(None, Some("192.168.1.1"))), None);
    assert_eq!(peers.check(source(None, Some("2001:db8::5"))), None);
    assert_eq!(peers.check(source(None, Some("192.168.9.1"))), Some(AddressMiss::NotPeerIps));
    assert_eq!(peers.check(source(Some("192.168.1.1"), None)), Some(AddressMiss::PeerIps), "HTTP mode: no peer");
}

#[test]
fn cidrs_and_single_addresses_parse_and_bad_ones_say_why() {
    assert_eq!(parse_cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
    assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
    assert_eq!(parse_cidr("10.1.2.3/8").unwrap_err(), "\"10.1.2.3/8\" has host bits set: write 10.0.0.0/8");
    assert!(parse_cidr("10.0.0.0/33").unwrap_err().contains("is not an IP address or a CIDR"));
    assert!(parse_cidr("example.com").is_err());
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
    request.route_metadata = json!({"envoy-gateway": {"resources": [
        {"kind": "HTTPRoute", "name": "r", "annotations": {"gatehouse-policy": "orders"}}
    ]}});
    assert!(matches!(policies.select(&request), Selected::Named("orders", _)));
    request.context_extensions.insert("policy".into(), "billing".into());
    assert_eq!(policies.select(&request), Selected::Unknown("billing"), "the context extension comes first");
    request.context_extensions.insert("policy".into(), String::new());
    assert!(matches!(policies.select(&request), Selected::Named("orders", _)), "an empty value names nothing");
    let off = PolicySelector { context_extension: String::new(), route_metadata: None };
    request.context_extensions.insert("policy".into(), "billing".into());
    assert_eq!(off.name(&request), None);
}
