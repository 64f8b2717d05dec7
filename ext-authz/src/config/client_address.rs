//! The `client_address:` section: how the client's address is found behind proxies (see
//! `core::client_address` for what Envoy passes and how it is read).

use serde::{Deserialize, Serialize};

use super::check::{Check, Checked};
use crate::core::client_address::ClientAddress;

/// More trusted proxies than any real chain has (a CDN, a cloud balancer, an ingress): a larger
/// number is a typo, and would make most requests "past the proxies".
pub const MAX_TRUSTED_HOPS: i64 = 16;

/// `client_address:` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawClientAddress {
    /// Proxies in front of Envoy that append to `X-Forwarded-For` (Envoy's
    /// `xff_num_trusted_hops`, Envoy Gateway's `numTrustedHops`). Signed, so that a negative
    /// number gets this section's message rather than serde's.
    pub trusted_hops: i64,
    /// Envoy runs with `use_remote_address: true` and so appends its peer to the header.
    pub envoy_appends: bool,
}

impl Default for RawClientAddress {
    fn default() -> Self {
        let default = ClientAddress::default();
        RawClientAddress { trusted_hops: default.trusted_hops.into(), envoy_appends: default.envoy_appends }
    }
}

pub fn client_address(raw: &RawClientAddress, c: &Check<'_>) -> Checked<ClientAddress> {
    let trusted_hops = match u32::try_from(raw.trusted_hops) {
        Ok(hops) if raw.trusted_hops <= MAX_TRUSTED_HOPS => Ok(hops),
        _ => c.fail(
            "client_address.trusted_hops",
            format!(
                "{} is not a number of proxies from 0 to {MAX_TRUSTED_HOPS} (0: Envoy is the edge and the client is \
                 its peer; 1 behind one load balancer that appends to X-Forwarded-For)",
                raw.trusted_hops
            ),
        ),
    };
    Ok(ClientAddress { trusted_hops: trusted_hops?, envoy_appends: raw.envoy_appends })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn parse(yaml: &str) -> Result<ClientAddress, Vec<String>> {
        let raw: RawClientAddress =
            serde_json::from_value(serde_json::from_str(yaml).unwrap()).map_err(|e| vec![e.to_string()])?;
        let env = HashMap::new();
        let c = Check::new(Path::new("."), &env);
        let built = client_address(&raw, &c);
        let (problems, _, _) = c.into_problems();
        match built {
            Ok(built) if problems.is_empty() => Ok(built),
            _ => Err(problems.into_iter().map(|p| format!("{}: {}", p.key, p.problem)).collect()),
        }
    }

    #[test]
    fn defaults_to_envoy_at_the_edge() {
        assert_eq!(parse("{}"), Ok(ClientAddress { trusted_hops: 0, envoy_appends: true }));
        assert_eq!(
            parse(r#"{"trusted_hops": 2, "envoy_appends": false}"#),
            Ok(ClientAddress { trusted_hops: 2, envoy_appends: false })
        );
        assert_eq!(parse(r#"{"trusted_hops": 16}"#).map(|c| c.trusted_hops), Ok(16));
    }

    #[test]
    fn a_number_of_hops_out_of_range_is_named() {
        for bad in ["-1", "17", "4294967296"] {
            let problems = parse(&format!(r#"{{"trusted_hops": {bad}}}"#)).unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].starts_with(&format!(
                    "client_address.trusted_hops: {bad} is not a number of proxies from 0 to 16"
                )),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let problems = parse(r#"{"trusted_proxies": 1}"#).unwrap_err();
        assert!(problems[0].contains("unknown field `trusted_proxies`"), "{problems:?}");
    }
}
