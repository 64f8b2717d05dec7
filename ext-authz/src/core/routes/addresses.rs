//! A rule's address lists: `client_ips` / `not_client_ips` on the client address (after the
//! trusted `X-Forwarded-For` hops), `peer_ips` / `not_peer_ips` on the address Envoy saw.
//!
//! An address that is not known (the peer in Envoy's HTTP mode, which does not send it) is in
//! no list: a `*_ips` list does not hold for it, a `not_*_ips` list does — so a deny rule
//! "not from 10.0.0.0/8" denies a request whose client is unknown, and an allow rule "only
//! from 10.0.0.0/8" does not match it.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::core::cel::SourceAddresses;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressMatch {
    pub client_ips: Vec<IpNet>,
    pub not_client_ips: Vec<IpNet>,
    pub peer_ips: Vec<IpNet>,
    pub not_peer_ips: Vec<IpNet>,
}

/// The list an address did not satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressMiss {
    /// The client is not in `client_ips` (or is unknown).
    ClientIps,
    /// The client is in `not_client_ips`.
    NotClientIps,
    PeerIps,
    NotPeerIps,
}

impl AddressMiss {
    /// The config key of the list.
    pub fn key(self) -> &'static str {
        match self {
            AddressMiss::ClientIps => "client_ips",
            AddressMiss::NotClientIps => "not_client_ips",
            AddressMiss::PeerIps => "peer_ips",
            AddressMiss::NotPeerIps => "not_peer_ips",
        }
    }
}

impl AddressMatch {
    pub fn is_empty(&self) -> bool {
        self.client_ips.is_empty()
            && self.not_client_ips.is_empty()
            && self.peer_ips.is_empty()
            && self.not_peer_ips.is_empty()
    }

    /// The first list that does not hold for `source`; `None` when all do.
    pub fn check(&self, source: SourceAddresses) -> Option<AddressMiss> {
        if !self.client_ips.is_empty() && !within(&self.client_ips, source.client) {
            return Some(AddressMiss::ClientIps);
        }
        if within(&self.not_client_ips, source.client) {
            return Some(AddressMiss::NotClientIps);
        }
        if !self.peer_ips.is_empty() && !within(&self.peer_ips, source.peer) {
            return Some(AddressMiss::PeerIps);
        }
        if within(&self.not_peer_ips, source.peer) {
            return Some(AddressMiss::NotPeerIps);
        }
        None
    }
}

/// Whether a known address is in one of `list`'s networks. An IPv4 address written as IPv6
/// (`::ffff:10.0.0.1`, as a dual-stack listener reports it) is the IPv4 address.
fn within(list: &[IpNet], address: Option<IpAddr>) -> bool {
    address.is_some_and(|a| {
        let a = a.to_canonical();
        list.iter().any(|net| net.contains(&a))
    })
}

/// A CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address (`10.1.2.3`, `::1`: /32 or /128). Host
/// bits set under the mask (`10.1.2.3/8`) are refused: such an entry usually means another
/// network than the one it matches.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(address) => IpNet::from(address),
            Err(_) => return Err(format!("{text:?} is not an IP address or a CIDR (10.0.0.0/8, fd00::/8)")),
        },
    };
    if net.trunc() != net {
        return Err(format!("{text:?} has host bits set: write {}", net.trunc()));
    }
    Ok(net)
}
