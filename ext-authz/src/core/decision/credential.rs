//! The request's credential: where it is read from, which one a route takes (the first present
//! in the order the route lists kinds), and the identity it gives once verified.

use super::{deny, Context, Decision, Engine, ErrorCode};
use crate::core::identity::Identity;
use crate::core::jwt::{self, JwtError};
use crate::core::request::AuthRequest;
use crate::core::routes::{Credential, Requirements};
use crate::core::token_cache::Verification;

/// Where a credential is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A header (lower-case name); the value must start with `prefix`, which is removed.
    Header {
        name: String,
        prefix: String,
    },
    Query(String),
    Cookie(String),
}

impl CredentialSource {
    pub fn read(&self, request: &AuthRequest) -> Option<String> {
        let value = match self {
            CredentialSource::Header { name, prefix } => {
                let raw = request.header(name)?.trim();
                // Scheme names are case-insensitive (`bearer` = `Bearer`). `get`, not an index:
                // a value whose first bytes end inside a character (`¡ૹᾶ`) is no match, not a panic.
                if !raw.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix)) {
                    return None;
                }
                raw[prefix.len()..].trim().to_string()
            }
            CredentialSource::Query(name) => request.query_param(name)?,
            CredentialSource::Cookie(name) => request.cookie(name)?.to_string(),
        };
        (!value.is_empty()).then_some(value)
    }
}

/// The credential found on a request and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'e> {
    /// The credential as read (empty for a session).
    pub value: String,
    /// `None` for a session: the session layer read it, and its cookies are always stripped.
    pub source: Option<&'e CredentialSource>,
    pub kind: FoundKind,
}

/// The kind of credential found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundKind {
    /// A token, and the providers (indexes) reading it at that place: its `iss` picks one.
    Jwt(Vec<usize>),
    ApiKey,
    Session,
}

impl Engine {
    /// The first credential present, in the order the rule lists credential kinds: the
    /// decision's own lookup (`explain` calls it too).
    pub fn find_credential<'e>(
        &'e self,
        request: &AuthRequest,
        requirements: &Requirements,
        ctx: &Context<'_>,
    ) -> Option<Found<'e>> {
        for credential in &requirements.credentials {
            match credential {
                Credential::Session => {
                    if ctx.session.is_some() {
                        return Some(Found { value: String::new(), source: None, kind: FoundKind::Session });
                    }
                }
                Credential::ApiKey => {
                    for source in &self.api_key_sources {
                        if let Some(value) = source.read(request) {
                            return Some(Found { value, source: Some(source), kind: FoundKind::ApiKey });
                        }
                    }
                }
                Credential::Jwt(allowed) => {
                    let allowed: Vec<usize> = match allowed {
                        Some(list) => list.clone(),
                        None => (0..self.providers.len()).collect(),
                    };
                    // The same token location may serve several providers; the token's `iss`
                    // picks among them.
                    for provider in allowed.iter().map(|p| &self.providers[*p]) {
                        for source in &provider.sources {
                            if let Some(value) = source.read(request) {
                                let same_source: Vec<usize> = allowed
                                    .iter()
                                    .copied()
                                    .filter(|q| self.providers[*q].sources.contains(source))
                                    .collect();
                                return Some(Found { value, source: Some(source), kind: FoundKind::Jwt(same_source) });
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// The identity a found credential gives: an API key looked up, a token verified, the
    /// session's claims; or the decision to answer instead (the decision's own step).
    pub fn verify_found(&self, found: &Found<'_>, ctx: &Context<'_>) -> Result<Identity, Box<Decision>> {
        match &found.kind {
            FoundKind::ApiKey => ctx.api_keys.identity(&found.value).ok_or_else(|| {
                Box::new(Decision::Deny(deny(
                    401,
                    ErrorCode::Unauthorized,
                    "invalid API key",
                    Some(r#"Bearer error="invalid_token", error_description="invalid API key""#.into()),
                    "invalid_api_key",
                )))
            }),
            FoundKind::Jwt(providers) => self.verify_jwt(&found.value, providers, ctx),
            FoundKind::Session => match (ctx.session, &self.sessions) {
                (Some(session), Some(policy)) => {
                    Ok(Identity::from_session(&policy.provider, session.identity_claims()))
                }
                _ => Err(Box::new(Decision::Unavailable("a session was found without session settings".into()))),
            },
        }
    }

    /// The identity the deny rules that read `identity` see on a route that takes no
    /// credential (see `Run::open_identity`, which calls it when such a rule exists): the first
    /// token (any provider) or API key present, verified. Best effort: a valid one is the
    /// identity; a missing, invalid or expired one is none. Passed on: a key to fetch (unless
    /// `refetched`: then none), and keys never loaded (unavailable). The decision's own step,
    /// `explain` calls it too.
    pub fn open_identity(
        &self,
        request: &AuthRequest,
        ctx: &Context<'_>,
        refetched: bool,
    ) -> Result<Option<Identity>, Box<Decision>> {
        let kinds = Requirements::any_of(vec![Credential::Jwt(None), Credential::ApiKey]);
        let Some(found) = self.find_credential(request, &kinds, ctx) else { return Ok(None) };
        match self.verify_found(&found, ctx) {
            Ok(identity) => Ok(Some(identity)),
            Err(decision) => match *decision {
                Decision::UnknownKey { .. } if !refetched => Err(decision),
                Decision::Unavailable(_) => Err(decision),
                _ => Ok(None),
            },
        }
    }

    /// Verifies a token against the providers reading it (cache first): its identity, or the
    /// decision to answer instead (401, keys not loaded, or a key to fetch).
    pub fn verify_jwt(&self, token: &str, providers: &[usize], ctx: &Context<'_>) -> Result<Identity, Box<Decision>> {
        if let Some((p, keys, identity)) = ctx.cache.get(token, ctx.now, ctx.token_rules) {
            let same_keys = ctx.keys.get(p).and_then(Option::as_ref).is_some_and(|k| k.fingerprint() == keys);
            if providers.contains(&p) && same_keys {
                return Ok(identity);
            }
        }
        let peeked = jwt::peek(token).map_err(|e| Box::new(invalid_token(&e)))?;
        let p = providers
            .iter()
            .copied()
            .find(|p| Some(self.providers[*p].policy.issuer.as_str()) == peeked.issuer.as_deref())
            .ok_or_else(|| Box::new(invalid_token(&JwtError::WrongIssuer)))?;
        let provider = &self.providers[p];
        let Some(keys) = ctx.keys.get(p).and_then(Option::as_ref) else {
            return Err(Box::new(Decision::Unavailable(format!(
                "no keys loaded yet for JWT provider {:?}",
                provider.name
            ))));
        };
        match jwt::verify(&peeked, &provider.policy, keys, ctx.now) {
            Ok(verified) => {
                let identity = Identity::from_jwt(&provider.name, verified.claims);
                let at = Verification { provider: p, keys: keys.fingerprint(), rules: ctx.token_rules };
                ctx.cache.insert(token, at, &identity, verified.valid_until);
                Ok(identity)
            }
            Err(JwtError::UnknownKey(_)) => Err(Box::new(Decision::UnknownKey { provider: p })),
            Err(e) => Err(Box::new(invalid_token(&e))),
        }
    }
}

fn invalid_token(error: &JwtError) -> Decision {
    let (code, reason) = match error {
        JwtError::Expired => (ErrorCode::ExpiredToken, "expired_token"),
        JwtError::Malformed(_) => (ErrorCode::Unauthorized, "malformed_token"),
        _ => (ErrorCode::Unauthorized, "invalid_token"),
    };
    let description = error.to_string();
    let challenge = format!(r#"Bearer error="invalid_token", error_description="{description}""#);
    Decision::Deny(deny(401, code, &description, Some(challenge), reason))
}
