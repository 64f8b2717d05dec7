use super::*;
use crate::testing::{forged, jwks, SigningKey};
use serde_json::json;

const RSA_A: &str = include_str!("../../../tests/fixtures/rsa-a.pem");
const RSA_B: &str = include_str!("../../../tests/fixtures/rsa-b.pem");
const NOW: u64 = 1_800_000_000;

fn policy(algorithms: &[Algorithm]) -> JwtPolicy {
    JwtPolicy {
        issuer: "https://idp.test".into(),
        audiences: vec!["api".into()],
        algorithms: algorithms.to_vec(),
        leeway: 60,
        require_exp: true,
    }
}

fn claims() -> Value {
    json!({"iss": "https://idp.test", "aud": "api", "sub": "u1", "exp": NOW + 300, "iat": NOW})
}

fn check(token: &str, policy: &JwtPolicy, keys: &KeySet) -> Result<Verified, JwtError> {
    verify(&peek(token)?, policy, keys, NOW)
}

#[test]
fn every_algorithm_family_verifies() {
    let rsa = SigningKey::rsa("r", Algorithm::RS256, RSA_A);
    let ps = SigningKey::rsa("p", Algorithm::PS384, RSA_B);
    let es256 = SigningKey::ec("e1", Algorithm::ES256);
    let es384 = SigningKey::ec("e2", Algorithm::ES384);
    let ed = SigningKey::ed25519("d");
    let keys = KeySet::from_jwks(&jwks(&[&rsa, &ps, &es256, &es384, &ed])).unwrap();
    assert_eq!(keys.len(), 5);
    let all = [Algorithm::RS256, Algorithm::PS384, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA];
    for key in [&rsa, &ps, &es256, &es384, &ed] {
        let verified = check(&key.sign(&claims()), &policy(&all), &keys).unwrap();
        assert_eq!(verified.claims["sub"], "u1");
        assert_eq!(verified.valid_until, Some(NOW + 360));
    }
    let hs = SigningKey::hmac(Algorithm::HS512, b"0123456789abcdef0123456789abcdef");
    let secret = KeySet::from_secret(b"0123456789abcdef0123456789abcdef");
    assert!(check(&hs.sign(&claims()), &policy(&[Algorithm::HS512]), &secret).is_ok());
}

#[test]
fn rejects_alg_none_and_unlisted_algorithms() {
    let none = forged(&json!({"alg": "none", "typ": "JWT"}), &claims(), b"");
    assert_eq!(peek(&none), Err(JwtError::Malformed("bad header")));
    let rsa = SigningKey::rsa("r", Algorithm::RS512, RSA_A);
    let keys = KeySet::from_jwks(&jwks(&[&rsa])).unwrap();
    assert!(matches!(
        check(&rsa.sign(&claims()), &policy(&[Algorithm::RS256]), &keys),
        Err(JwtError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn the_public_key_is_never_an_hmac_secret() {
    // The classic confusion attack: sign HS256 with the RSA public key's bytes.
    let rsa = SigningKey::rsa("r", Algorithm::RS256, RSA_A);
    let keys = KeySet::from_jwks(&jwks(&[&rsa])).unwrap();
    let public_bytes = rsa.jwk()["n"].as_str().unwrap().as_bytes().to_vec();
    let mut attacker = SigningKey::hmac(Algorithm::HS256, &public_bytes);
    attacker.kid = "r".into();
    let token = attacker.sign(&claims());
    // Even a provider misconfigured to list HS256 next to RS256 finds no HMAC key in a JWKS.
    let lenient = policy(&[Algorithm::RS256, Algorithm::HS256]);
    assert_eq!(check(&token, &lenient, &keys), Err(JwtError::UnknownKey(Some("r".into()))));
    // And a JWKS that publishes an `oct` key does not make it usable.
    let with_secret = json!({"keys": [rsa.jwk(), {"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}).to_string();
    assert_eq!(KeySet::from_jwks(&with_secret).unwrap().len(), 1);
}

#[test]
fn time_issuer_audience_and_signature() {
    let rsa = SigningKey::rsa("r", Algorithm::RS256, RSA_A);
    let other = SigningKey::rsa("r", Algorithm::RS256, RSA_B);
    let keys = KeySet::from_jwks(&jwks(&[&rsa])).unwrap();
    let p = policy(&[Algorithm::RS256]);
    let with = |patch: Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        rsa.sign(&c)
    };
    assert_eq!(check(&with(json!({"exp": NOW - 61})), &p, &keys).unwrap_err(), JwtError::Expired);
    assert!(check(&with(json!({"exp": NOW - 30})), &p, &keys).is_ok(), "within leeway");
    assert_eq!(check(&with(json!({"nbf": NOW + 120})), &p, &keys).unwrap_err(), JwtError::NotYetValid);
    assert_eq!(check(&with(json!({"iss": "https://evil.test"})), &p, &keys).unwrap_err(), JwtError::WrongIssuer);
    assert_eq!(check(&with(json!({"aud": "other"})), &p, &keys).unwrap_err(), JwtError::WrongAudience);
    assert!(check(&with(json!({"aud": ["other", "api"]})), &p, &keys).is_ok());
    let mut no_aud = claims();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(check(&rsa.sign(&no_aud), &p, &keys).unwrap_err(), JwtError::MissingAudience);
    assert_eq!(check(&with(json!({"aud": []})), &p, &keys).unwrap_err(), JwtError::WrongAudience);
    assert_eq!(check(&with(json!({"aud": null})), &p, &keys).unwrap_err(), JwtError::MissingAudience);
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(&rsa.sign(&no_exp), &p, &keys).unwrap_err(), JwtError::MissingExp);
    assert_eq!(check(&other.sign(&claims()), &p, &keys).unwrap_err(), JwtError::BadSignature);
    let rotated = SigningKey::rsa("r2", Algorithm::RS256, RSA_B);
    assert_eq!(check(&rotated.sign(&claims()), &p, &keys).unwrap_err(), JwtError::UnknownKey(Some("r2".into())));
}

#[test]
fn garbage_is_refused_before_crypto() {
    assert_eq!(peek("abc"), Err(JwtError::Malformed("not three dot-separated parts")));
    assert_eq!(peek("a.b.c.d"), Err(JwtError::Malformed("not three dot-separated parts")));
    assert_eq!(peek("!!.!!.!!"), Err(JwtError::Malformed("bad base64url")));
    assert_eq!(peek(&"a".repeat(MAX_TOKEN_BYTES + 1)), Err(JwtError::Malformed("token too large")));
    let not_object = forged(&json!({"alg": "RS256"}), &json!([1, 2]), b"x");
    assert_eq!(peek(&not_object), Err(JwtError::Malformed("payload is not an object")));
    assert_eq!(
        KeySet::from_jwks("{}").unwrap_err(),
        KeySetError::Json("missing field `keys` at line 1 column 2".into())
    );
    assert_eq!(KeySet::from_jwks(r#"{"keys": []}"#).unwrap_err(), KeySetError::Empty);
}

#[test]
fn every_hmac_algorithm_verifies_with_the_secret_and_only_its_exact_signature() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let keys = KeySet::from_secret(secret);
    let all = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    for alg in all {
        let token = SigningKey::hmac(alg, secret).sign(&claims());
        assert_eq!(check(&token, &policy(&all), &keys).unwrap().claims["sub"], "u1", "{alg:?}");
        // Another secret, a flipped signature byte, a padded signature: all refused.
        let other = SigningKey::hmac(alg, b"another secret, just as long....").sign(&claims());
        assert_eq!(check(&other, &policy(&all), &keys), Err(JwtError::BadSignature), "{alg:?}");
        let (message, signature) = token.rsplit_once('.').unwrap();
        let flipped =
            if signature.starts_with('A') { signature.replacen('A', "B", 1) } else { format!("A{}", &signature[1..]) };
        assert_eq!(check(&format!("{message}.{flipped}"), &policy(&all), &keys), Err(JwtError::BadSignature));
        assert_eq!(check(&format!("{token}="), &policy(&all), &keys), Err(JwtError::BadSignature));
    }
    // A token signed HS256 whose header says HS512 does not verify.
    let hs256 = SigningKey::hmac(Algorithm::HS256, secret).sign(&claims());
    let signature = hs256.rsplit_once('.').unwrap().1;
    let relabelled = forged(&json!({"alg": "HS512", "typ": "JWT"}), &claims(), b"");
    let relabelled = format!("{}.{signature}", relabelled.rsplit_once('.').unwrap().0);
    assert_eq!(check(&relabelled, &policy(&all), &keys), Err(JwtError::BadSignature));
}

#[test]
fn claims_count_only_once_the_signature_holds() {
    let rsa = SigningKey::rsa("r", Algorithm::RS256, RSA_A);
    let other = SigningKey::rsa("r", Algorithm::RS256, RSA_B);
    let keys = KeySet::from_jwks(&jwks(&[&rsa])).unwrap();
    let p = policy(&[Algorithm::RS256]);
    let mut bad = claims();
    bad["aud"] = json!("other");
    bad["exp"] = json!(NOW - 1000);
    assert_eq!(check(&other.sign(&bad), &p, &keys), Err(JwtError::BadSignature));
}

#[test]
fn issuer_and_audience_have_one_reading() {
    let rsa = SigningKey::rsa("r", Algorithm::RS256, RSA_A);
    let keys = KeySet::from_jwks(&jwks(&[&rsa])).unwrap();
    let p = policy(&[Algorithm::RS256]);
    let with = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        check(&rsa.sign(&c), &p, &keys)
    };
    // `iss` is one string: missing, null or a list is not this provider's.
    let mut no_iss = claims();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(check(&rsa.sign(&no_iss), &p, &keys).unwrap_err(), JwtError::WrongIssuer);
    assert_eq!(with("iss", json!(null)).unwrap_err(), JwtError::WrongIssuer);
    assert_eq!(with("iss", json!(["https://idp.test"])).unwrap_err(), JwtError::WrongIssuer);
    // `aud`: a string or a list of strings naming us; anything else names no one.
    assert!(with("aud", json!(["api"])).is_ok());
    assert_eq!(with("aud", json!(["other", 7])).unwrap_err(), JwtError::MissingAudience);
    assert_eq!(with("aud", json!(["api", 7])).unwrap_err(), JwtError::MissingAudience);
    assert_eq!(with("aud", json!(7)).unwrap_err(), JwtError::MissingAudience);
    assert_eq!(with("aud", json!({"api": true})).unwrap_err(), JwtError::MissingAudience);
    assert_eq!(with("aud", json!("API")).unwrap_err(), JwtError::WrongAudience, "exact match only");
    // No audiences configured: `aud` is not read at all.
    let open = JwtPolicy { audiences: vec![], ..p.clone() };
    let mut c = claims();
    c["aud"] = json!(7);
    assert!(check(&rsa.sign(&c), &open, &keys).is_ok());
}

#[test]
fn times_are_numbers_or_the_token_is_refused() {
    let rsa = SigningKey::rsa("r", Algorithm::RS256, RSA_A);
    let keys = KeySet::from_jwks(&jwks(&[&rsa])).unwrap();
    let p = policy(&[Algorithm::RS256]);
    let lenient = JwtPolicy { require_exp: false, ..p.clone() };
    let with = |name: &str, value: Value, policy: &JwtPolicy| {
        let mut c = claims();
        c[name] = value;
        check(&rsa.sign(&c), policy, &keys)
    };
    // RFC 7519 allows fractional seconds.
    let fractional = with("exp", json!((NOW + 300) as f64 + 0.75), &p).unwrap();
    assert_eq!(fractional.valid_until, Some(NOW + 360));
    assert_eq!(with("exp", json!(-5), &p).unwrap_err(), JwtError::Expired);
    assert_eq!(with("exp", json!(null), &p).unwrap_err(), JwtError::MissingExp);
    assert!(with("exp", json!(null), &lenient).is_ok(), "null is absent");
    // An unreadable `exp` never makes a token that does not expire, even when `exp` is optional.
    for policy in [&p, &lenient] {
        let malformed = Err(JwtError::Malformed("exp is not a number"));
        assert_eq!(with("exp", json!((NOW + 300).to_string()), policy), malformed);
        assert_eq!(with("exp", json!([NOW + 300]), policy), malformed);
        assert_eq!(with("exp", json!(true), policy), malformed);
    }
    assert_eq!(with("nbf", json!("soon"), &p), Err(JwtError::Malformed("nbf is not a number")));
    assert_eq!(with("nbf", json!((NOW + 120) as f64), &p).unwrap_err(), JwtError::NotYetValid);
    assert!(with("nbf", json!(-1), &p).is_ok());
}

#[test]
fn a_peek_never_prints_its_token_or_claims() {
    let token = SigningKey::hmac(Algorithm::HS256, b"0123456789abcdef0123456789abcdef").sign(&claims());
    let printed = format!("{:?}", peek(&token).unwrap());
    assert!(printed.contains("HS256") && printed.contains("https://idp.test"), "{printed}");
    assert!(!printed.contains(&token[..20]) && !printed.contains("u1"), "{printed}");
}
