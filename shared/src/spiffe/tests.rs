use proptest::prelude::*;

use super::*;

fn id(text: &str) -> SpiffeId {
    SpiffeId::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn allows(pattern: &str, text: &str) -> bool {
    IdPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}")).matches(&id(text))
}

#[test]
fn parses_ids_as_the_specification_says() {
    let istio = id("spiffe://cluster.local/ns/default/sa/sleep");
    assert_eq!(istio.trust_domain(), "cluster.local");
    assert_eq!(istio.segments(), ["ns", "default", "sa", "sleep"]);
    assert_eq!(istio.to_string(), "spiffe://cluster.local/ns/default/sa/sleep");
    assert!(id("spiffe://example.org").segments().is_empty());
    for (bad, error) in [
        ("https://example.org/ns/a", SpiffeError::Scheme),
        ("SPIFFE://example.org/a", SpiffeError::Scheme),
        ("spiffe:///ns/a", SpiffeError::EmptyTrustDomain),
        ("spiffe://Example.org/a", SpiffeError::TrustDomainCharacter),
        ("spiffe://example.org:8443/a", SpiffeError::TrustDomainCharacter),
        ("spiffe://user@example.org/a", SpiffeError::TrustDomainCharacter),
        ("spiffe://example.org/", SpiffeError::EmptySegment),
        ("spiffe://example.org/a//b", SpiffeError::EmptySegment),
        ("spiffe://example.org/a/", SpiffeError::EmptySegment),
        ("spiffe://example.org/a/../b", SpiffeError::DotSegment),
        ("spiffe://example.org/./b", SpiffeError::DotSegment),
        ("spiffe://example.org/a?x=1", SpiffeError::SegmentCharacter),
        ("spiffe://example.org/a#f", SpiffeError::SegmentCharacter),
        ("spiffe://example.org/a%2Fb", SpiffeError::SegmentCharacter),
    ] {
        assert_eq!(SpiffeId::parse(bad), Err(error), "{bad}");
    }
    assert_eq!(SpiffeId::parse(&format!("spiffe://td/{}", "a".repeat(2048))), Err(SpiffeError::TooLong));
}

#[test]
fn patterns_match_exactly_one_segment_per_star_and_any_rest_for_a_final_double_star() {
    let pod = "spiffe://cluster.local/ns/shop/sa/orders";
    assert!(allows(pod, pod));
    assert!(!allows(pod, "spiffe://cluster.local/ns/shop/sa/orders-v2"));
    assert!(!allows(pod, "spiffe://cluster.local/ns/shop/sa/orders/extra"));
    assert!(!allows(pod, "spiffe://other.domain/ns/shop/sa/orders"), "another trust domain");
    assert!(allows("spiffe://cluster.local/ns/*/sa/orders", pod));
    assert!(!allows("spiffe://cluster.local/ns/*/sa/orders", "spiffe://cluster.local/ns/a/b/sa/orders"));
    assert!(allows("spiffe://cluster.local/ns/shop/**", pod));
    assert!(!allows("spiffe://cluster.local/ns/shop/**", "spiffe://cluster.local/ns/shop"), "** is one or more");
    assert!(!allows("spiffe://cluster.local/ns/shop/**", "spiffe://cluster.local/ns/shopping/sa/x"));
    assert!(allows("spiffe://cluster.local/**", pod), "any workload of the trust domain");
    assert!(!allows("spiffe://cluster.local/**", "spiffe://cluster.local"));
    assert!(allows("spiffe://cluster.local", "spiffe://cluster.local"));
    assert!(!allows("spiffe://cluster.local", pod));
}

#[test]
fn refuses_patterns_it_could_misread() {
    assert_eq!(IdPattern::parse("spiffe://td/**/sa/x"), Err(PatternError::InnerDoubleStar));
    assert_eq!(IdPattern::parse("spiffe://td/ns/shop-*"), Err(PatternError::PartialStar));
    assert_eq!(IdPattern::parse("spiffe://*/ns/a"), Err(PatternError::Id(SpiffeError::TrustDomainCharacter)));
    assert_eq!(IdPattern::parse("cluster.local/ns/a"), Err(PatternError::Id(SpiffeError::Scheme)));
    assert_eq!(IdPattern::parse("spiffe://td/a//b"), Err(PatternError::Id(SpiffeError::EmptySegment)));
    assert_eq!(IdPattern::parse("spiffe://td/ns/*/sa/**").unwrap().to_string(), "spiffe://td/ns/*/sa/**");
}

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-][A-Za-z0-9._-]{0,8}".prop_filter("not a dot segment", |s| s != "." && s != "..")
}

proptest! {
    #[test]
    fn an_exact_pattern_allows_its_id_and_no_other(
        domain in "[a-z0-9][a-z0-9.-]{0,10}",
        path in prop::collection::vec(segment(), 0..5),
        other in prop::collection::vec(segment(), 0..5),
    ) {
        let text = std::iter::once(format!("spiffe://{domain}")).chain(path.iter().cloned()).collect::<Vec<_>>().join("/");
        let parsed = SpiffeId::parse(&text).unwrap();
        prop_assert_eq!(parsed.to_string(), text.clone());
        let pattern = IdPattern::parse(&text).unwrap();
        prop_assert!(pattern.matches(&parsed));
        let other_text =
            std::iter::once(format!("spiffe://{domain}")).chain(other.iter().cloned()).collect::<Vec<_>>().join("/");
        prop_assert_eq!(pattern.matches(&SpiffeId::parse(&other_text).unwrap()), other == path);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in ".{0,64}") {
        let _ = SpiffeId::parse(&text);
        let _ = IdPattern::parse(&text);
    }
}
