//! A snapshot's resources turned into the file model: each `RateLimitConfig` becomes the
//! [`YamlRoot`] a config file would, so xDS limits load, merge and fail as files do.

use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::ratelimit::config::ratelimit::v3 as rl;
use prost::Message;

use crate::core::config_file::{YamlDescriptor, YamlRateLimit, YamlRoot};

pub const TYPE_URL: &str = "type.googleapis.com/ratelimit.config.ratelimit.v3.RateLimitConfig";

/// Why a snapshot is refused (the NACK's message).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("unexpected resource type {0:?}")]
    ResourceType(String),
    #[error("cannot decode RateLimitConfig: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error(transparent)]
    Config(#[from] crate::core::ConfigError),
}

/// Converts a snapshot to the file model; fails on a resource of another type or bad bytes.
pub fn to_roots(resources: &[Any]) -> Result<Vec<(String, YamlRoot)>, SnapshotError> {
    resources
        .iter()
        .map(|any| {
            if any.type_url != TYPE_URL {
                return Err(SnapshotError::ResourceType(any.type_url.clone()));
            }
            let config = rl::RateLimitConfig::decode(any.value.as_slice())?;
            let rl::RateLimitConfig { name, domain, descriptors } = config;
            Ok((name, YamlRoot { domain, descriptors: descriptors.into_iter().map(descriptor).collect() }))
        })
        .collect()
}

fn descriptor(d: rl::RateLimitDescriptor) -> YamlDescriptor {
    let rl::RateLimitDescriptor {
        key,
        value,
        rate_limit,
        descriptors,
        shadow_mode,
        detailed_metric,
        quota_mode,
        metadata,
    } = d;
    YamlDescriptor {
        key,
        value,
        rate_limit: rate_limit.map(|p| YamlRateLimit {
            requests_per_unit: p.requests_per_unit,
            // The enum's name, as the reference converts it: UNKNOWN then reads as no unit.
            unit: rl::RateLimitUnit::try_from(p.unit).map(|u| u.as_str_name().to_string()).unwrap_or_default(),
            unlimited: p.unlimited,
            name: p.name,
            replaces: p.replaces.into_iter().map(|r| r.name).collect(),
            // The xDS proto has no algorithm: fixed windows, as the reference counts.
            ..YamlRateLimit::default()
        }),
        descriptors: descriptors.into_iter().map(descriptor).collect(),
        shadow_mode,
        quota_mode,
        detailed_metric,
        metadata: metadata.map(shared::proto::struct_to_json),
        ..YamlDescriptor::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_resources_to_the_file_model() {
        let config = rl::RateLimitConfig {
            name: "default/eg/http".into(),
            domain: "default/eg/http".into(),
            descriptors: vec![rl::RateLimitDescriptor {
                key: "route".into(),
                value: "r1".into(),
                rate_limit: Some(rl::RateLimitPolicy {
                    unit: rl::RateLimitUnit::Week as i32,
                    requests_per_unit: 7,
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let any = Any { type_url: TYPE_URL.into(), value: config.encode_to_vec() };
        let roots = to_roots(&[any]).unwrap();
        assert_eq!(roots[0].0, "default/eg/http");
        let limit = roots[0].1.descriptors[0].rate_limit.as_ref().unwrap();
        assert_eq!((limit.unit.as_str(), limit.requests_per_unit), ("WEEK", 7));
        let wrong = Any { type_url: "type.googleapis.com/other".into(), value: vec![] };
        assert!(to_roots(&[wrong]).is_err());
    }
}
