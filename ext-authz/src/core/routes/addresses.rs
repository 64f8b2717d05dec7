//! A rule's address lists: `client_ips` / `not_client_ips` on the client address (after the
//! trusted `X-Forwarded-For` hops), `peer_ips` / `not_peer_ips` on the address Envoy saw.
//!
//! An address that is not known — the peer in Envoy's HTTP mode, which does not send it, or a
//! client whose trusted `X-Forwarded-For` entry is not an address — fails closed: every list
//! that reads it fails an allow rule (the rule does not match, so it lets nothing in) and holds
//! for a deny rule (the rule denies). Either way the answer is the stricter one, as CEL's
//! `inCidr` on an unknown (empty) address errs and denies; "in no list" would let an allow rule
//! "everyone but 203.0.113.0/24" match an unknown client and make a deny rule "203.0.113.0/24"
//! a silent no-op.

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
    /// The client is not in `client_ips` (or is unknown, for an allow rule).
    ClientIps,
    /// The client is in `not_client_ips` (or is unknown, for an allow rule).
    NotClientIps,
    PeerIps,
    NotPeerIps,
}

/// What an address list does for an address that is not known: the stricter answer for the
/// rule that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// An allow rule's list does not hold: the rule does not match.
    Fails,
    /// A deny rule's list holds: the rule denies.
    Holds,
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

    /// The first list that does not hold for `source`; `None` when all do. A list that reads an
    /// unknown address holds or fails as `unknown` says; a list that is not set always holds.
    pub fn check(&self, source: SourceAddresses, unknown: Unknown) -> Option<AddressMiss> {
        let lists = [
            (&self.client_ips, source.client, true, AddressMiss::ClientIps),
            (&self.not_client_ips, source.client, false, AddressMiss::NotClientIps),
            (&self.peer_ips, source.peer, true, AddressMiss::PeerIps),
            (&self.not_peer_ips, source.peer, false, AddressMiss::NotPeerIps),
        ];
        for (list, address, inside, miss) in lists {
            if list.is_empty() {
                continue;
            }
            let holds = match address {
                Some(address) => within(list, address) == inside,
                None => unknown == Unknown::Holds,
            };
            if !holds {
                return Some(miss);
            }
        }
        None
    }
}

/// Whether an address is in one of `list`'s networks. An IPv4 address written as IPv6
/// (`::ffff:10.0.0.1`, as a dual-stack listener reports it) is the IPv4 address.
fn within(list: &[IpNet], address: IpAddr) -> bool {
    let address = address.to_canonical();
    list.iter().any(|net| net.contains(&address))
}
