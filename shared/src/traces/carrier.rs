//! HTTP headers and gRPC metadata as a propagator reads them (a `HashMap<String, String>` with
//! lower-case names, like the headers inside a CheckRequest, is one already).

use opentelemetry::propagation::Extractor;

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
