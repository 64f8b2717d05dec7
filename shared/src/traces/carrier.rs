//! HTTP headers and gRPC metadata as a propagator reads and writes them (a `HashMap<String, String>` with
//! lower-case names, like the headers inside a CheckRequest, is one already).

use opentelemetry::propagation::{Extractor, Injector};

/// HTTP headers or gRPC metadata (`MetadataMap::as_ref`).
pub struct HeaderCarrier<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Headers of an outgoing request, written by a propagator.
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}
