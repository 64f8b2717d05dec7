//! The pure core of the rate limit service: config files → a descriptor tree, matching a request
//! descriptor to a limit, counter keys, and the verdict from counter values.
//!
//! Nothing here knows tonic, redis or the clock: time arrives as `now` (Unix seconds), counter
//! values arrive from whichever store the service runs on.

pub mod algorithm;
pub mod config;
pub mod config_file;
pub mod evaluate;
pub mod request;
pub mod stat_key;
pub mod unit;
pub mod wildcard;
pub mod yaml;

pub use config::{ConfigError, Limit, RateLimitConfig};
pub use request::{Entry, LimitOverride, RateLimitRequest, RequestDescriptor};
pub use unit::Unit;
