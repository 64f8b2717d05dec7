//! Calls to an OAuth 2.0 / OpenID provider that the login flow and the upstream credentials
//! share: discovery, and token endpoint requests with the client's secret. Bodies are read
//! within a bound; errors name the endpoint and never a secret or a token.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Unreachable, slow, or an answer that is not what the protocol says.
    #[error("{0}")]
    Unavailable(Unreachable),
    /// The provider refused (`invalid_client`, `invalid_grant`, `invalid_scope`, …).
    #[error("the provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { error: String, description: Option<String> },
}

/// Why an endpoint could not be used. The transport's and the JSON parser's texts stay text
/// (`detail`): they come from outside, are the only account of what went wrong, and nobody
/// branches on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    /// The request or its answer failed on the way (reqwest's text, without the URL).
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url}: the answer is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("GET {url}: HTTP {status}")]
    DiscoveryStatus { url: String, status: u16 },
    #[error("GET {url}: {detail}")]
    NotJson { url: String, detail: String },
    #[error("{url} names issuer {named:?}, not {expected:?}")]
    WrongIssuer { url: String, named: String, expected: String },
    #[error("{endpoint}: the answer is not a token response: {detail}")]
    NotTokenResponse { endpoint: String, detail: String },
    #[error("{endpoint} answered HTTP {status}")]
    TokenStatus { endpoint: String, status: u16 },
    #[error("no answer within {0:?}")]
    NoAnswer(std::time::Duration),
    #[error("the access token is empty, huge or not fit for a header")]
    UnfitToken,
    #[error("the provider's signing keys are not loaded")]
    KeysNotLoaded,
}

impl From<Unreachable> for EndpointError {
    fn from(why: Unreachable) -> EndpointError {
        EndpointError::Unavailable(why)
    }
}

/// How the client proves itself at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic, both parts form-encoded first.
    Basic,
    /// `client_id` and `client_secret` in the form.
    Post,
}

/// A client's id, secret and way of sending them.
pub struct ClientAuth<'a> {
    pub client_id: &'a str,
    pub secret: &'a Secret,
    pub method: ClientAuthMethod,
}

/// An HTTP client for a provider: our user agent, the given timeout, and no redirects (a
/// token endpoint must never send our client secret elsewhere).
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("gatehouse-ext-authz/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("building the HTTP client")
}

/// `<issuer>/.well-known/openid-configuration`, which must name exactly `issuer` (OpenID
/// Connect Discovery §4.3), read as `T`.
pub async fn discover<T: DeserializeOwned>(client: &reqwest::Client, issuer: &str) -> Result<T, EndpointError> {
    #[derive(Deserialize)]
    struct Named {
        issuer: String,
    }
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let request = client.get(&url).headers(shared::traces::outgoing_headers());
    let response = request.send().await.map_err(|e| unavailable(&url, e))?;
    if !response.status().is_success() {
        return Err(Unreachable::DiscoveryStatus { url, status: response.status().as_u16() }.into());
    }
    let body = crate::provider_body::read(response).await.map_err(|e| unreadable(&url, e))?;
    let not_json = |e: serde_json::Error| Unreachable::NotJson { url: url.clone(), detail: e.to_string() };
    let named: Named = serde_json::from_slice(&body).map_err(not_json)?;
    if named.issuer != issuer {
        return Err(Unreachable::WrongIssuer { url, named: named.issuer, expected: issuer.to_string() }.into());
    }
    Ok(serde_json::from_slice(&body).map_err(not_json)?)
}

/// A token endpoint request; the answer read as `T` on success, the provider's OAuth error on
/// a 4xx that carries one.
pub async fn token_request<T: DeserializeOwned>(
    client: &reqwest::Client,
    endpoint: &str,
    auth: &ClientAuth<'_>,
    form: &[(&str, &str)],
) -> Result<T, EndpointError> {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    let secret = String::from_utf8_lossy(&auth.secret.0);
    let request = client
        .post(endpoint)
        .headers(shared::traces::outgoing_headers())
        .header(reqwest::header::ACCEPT, "application/json");
    let request = match auth.method {
        ClientAuthMethod::Basic => {
            let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request.basic_auth(encode(auth.client_id), Some(encode(&secret))).form(form)
        }
        ClientAuthMethod::Post => {
            let mut with_client = form.to_vec();
            with_client.push(("client_id", auth.client_id));
            with_client.push(("client_secret", &secret));
            request.form(&with_client)
        }
    };
    let response = request.send().await.map_err(|e| unavailable(endpoint, e))?;
    let status = response.status();
    let body = crate::provider_body::read(response).await.map_err(|e| unreadable(endpoint, e))?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| {
            Unreachable::NotTokenResponse { endpoint: endpoint.to_string(), detail: e.to_string() }.into()
        });
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(e) if status.is_client_error() => {
            Err(EndpointError::Refused { error: e.error, description: e.error_description })
        }
        _ => Err(Unreachable::TokenStatus { endpoint: endpoint.to_string(), status: status.as_u16() }.into()),
    }
}

fn unreadable(url: &str, error: crate::provider_body::BodyError) -> EndpointError {
    match error {
        crate::provider_body::BodyError::Http(e) => unavailable(url, e),
        crate::provider_body::BodyError::TooLarge { limit } => {
            Unreachable::TooLarge { url: url.to_string(), limit }.into()
        }
    }
}

fn unavailable(url: &str, error: reqwest::Error) -> EndpointError {
    // reqwest's error text names the URL; ours adds nothing secret (no query strings are sent).
    // With its causes: reqwest's own text ("error sending request") does not say why.
    Unreachable::Transport { url: url.to_string(), detail: crate::jwks::causes(&error.without_url()) }.into()
}
