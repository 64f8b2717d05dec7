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
    Unavailable(String),
    /// The provider refused (`invalid_client`, `invalid_grant`, `invalid_scope`, …).
    #[error("the provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { error: String, description: Option<String> },
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
        return Err(EndpointError::Unavailable(format!("GET {url}: HTTP {}", response.status().as_u16())));
    }
    let body = crate::provider_body::read(response).await.map_err(|e| unreadable(&url, e))?;
    let named: Named =
        serde_json::from_slice(&body).map_err(|e| EndpointError::Unavailable(format!("GET {url}: {e}")))?;
    if named.issuer != issuer {
        return Err(EndpointError::Unavailable(format!("{url} names issuer {:?}, not {issuer:?}", named.issuer)));
    }
    serde_json::from_slice(&body).map_err(|e| EndpointError::Unavailable(format!("GET {url}: {e}")))
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
        return serde_json::from_slice(&body)
            .map_err(|e| EndpointError::Unavailable(format!("{endpoint}: the answer is not a token response: {e}")));
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(e) if status.is_client_error() => {
            Err(EndpointError::Refused { error: e.error, description: e.error_description })
        }
        _ => Err(EndpointError::Unavailable(format!("{endpoint} answered HTTP {}", status.as_u16()))),
    }
}

fn unreadable(url: &str, error: crate::provider_body::BodyError) -> EndpointError {
    match error {
        crate::provider_body::BodyError::Http(e) => unavailable(url, e),
        too_large => EndpointError::Unavailable(format!("{url}: {too_large}")),
    }
}

fn unavailable(url: &str, error: reqwest::Error) -> EndpointError {
    // reqwest's error text names the URL; ours adds nothing secret (no query strings are sent).
    EndpointError::Unavailable(format!("{url}: {}", error.without_url()))
}
