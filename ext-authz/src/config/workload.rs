//! The `workload_identity:` section: where the calling workload's SPIFFE ID comes from, which
//! trust domains count, and the header that carries it upstream.

use super::check::{each, Check, Checked};
use super::identity::check_header_name;
use super::keys;
use super::raw::RawWorkloadIdentity;
use crate::core::principals::WorkloadIdentity;

pub fn workload_identity(raw: &RawWorkloadIdentity, c: &Check<'_>) -> Checked<WorkloadIdentity> {
    // Not `c.choice`: the problem says what each spelling means, as the key's doc does.
    let source = keys::WORKLOAD_FROM.parse(&raw.from).or_else(|_| {
        c.fail(
            "workload_identity.from",
            format!("{:?} is not peer (Envoy's mutual TLS peer) or xfcc (a trusted x-forwarded-client-cert)", raw.from),
        )
    });
    let trust_domains =
        each(&raw.trust_domains, |i, domain| match shared::spiffe::SpiffeId::parse(&format!("spiffe://{domain}")) {
            Ok(id) if id.segments().is_empty() => Ok(domain.clone()),
            _ => c.fail(
                format!("workload_identity.trust_domains[{i}]"),
                format!(
                    "{domain:?} is not a trust domain (lower-case letters, digits, '.', '-', '_'; no scheme or path)"
                ),
            ),
        });
    let header = match raw.header.as_str() {
        "" => Ok(None),
        name => check_header_name(name, "workload_identity.header", c).map(|()| Some(name.to_ascii_lowercase())),
    };
    Ok(WorkloadIdentity { source: source?, trust_domains: trust_domains?, header: header? })
}
