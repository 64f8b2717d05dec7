//! Bodies from identity providers (key sets, discovery documents, token answers), read within
//! a size bound. The request timeout bounds the time, not the size: within it a broken or
//! hostile endpoint could send gigabytes, all of them buffered before anything parses them.

/// Far above any real key set, discovery document or token answer (a few KiB each).
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// The whole body of `response`, refused past [`MAX_BODY_BYTES`] without reading further.
pub async fn read(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let too_large = BodyError::TooLarge { limit: MAX_BODY_BYTES };
    if response.content_length().is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
