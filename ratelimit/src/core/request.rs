//! A rate limit request as the core sees it, free of protobuf types.

use super::unit::Unit;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub key: String,
    pub value: String,
}

impl Entry {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Entry {
        Entry { key: key.into(), value: value.into() }
    }
}

/// A limit sent by Envoy in the descriptor itself (from dynamic metadata); it bypasses the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOverride {
    pub requests_per_unit: u32,
    pub unit: Unit,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestDescriptor {
    pub entries: Vec<Entry>,
    pub limit_override: Option<LimitOverride>,
    /// The descriptor's own `hits_addend`; `Some(0)` means "check without counting".
    pub hits_addend: Option<u64>,
}

impl RequestDescriptor {
    pub fn new(entries: Vec<Entry>) -> RequestDescriptor {
        RequestDescriptor { entries, ..RequestDescriptor::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateLimitRequest {
    pub domain: String,
    pub descriptors: Vec<RequestDescriptor>,
    /// Request-level addend; 0 (unset) counts as 1.
    pub hits_addend: u32,
}

impl RateLimitRequest {
    /// The addend of descriptor `index`: its own when set (0 allowed), else `max(1, request's)`.
    pub fn addend_of(&self, index: usize) -> u64 {
        match self.descriptors[index].hits_addend {
            Some(own) => own,
            None => u64::from(self.hits_addend.max(1)),
        }
    }
}
