//! The client's address: the peer Envoy saw, or the address a configured number of trusted
//! proxies in front of Envoy reported in `X-Forwarded-For` — Envoy's own rule for its
//! `xff_num_trusted_hops`, so ext-authz and Envoy (its rate limit `remote_address`, its access
//! log) agree on who the client is.
//!
//! What Envoy passes ext_authz (seen with Envoy 1.40, tests/tests/policy_through_envoy.rs):
//! `attributes.source.address` is always the TCP peer, whatever the trust settings; with
//! `use_remote_address: true` the `x-forwarded-for` header already ends with the entry Envoy
//! appended (its peer, or Envoy's own address when the peer is loopback), with `false` it is
//! the header as it arrived. Each trusted proxy appends the address it saw, so the client is
//! the `trusted_hops`-th entry from the right of the header as it reached Envoy, and entries to
//! its left are whatever the client wrote: never read.

use std::net::{IpAddr, SocketAddr};

use super::request::AuthRequest;

/// The `client_address` section: how many proxies in front of Envoy append to
/// `X-Forwarded-For`, and whether Envoy appends its own peer before ext-authz sees the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    /// Trusted proxies in front of Envoy (0: Envoy is the edge; the client is its peer).
    pub trusted_hops: u32,
    /// Envoy runs with `use_remote_address: true` (the shipped configs, kgateway, Istio, and
    /// Envoy Gateway without `clientIPDetection`), so the header's last entry is Envoy's own.
    pub envoy_appends: bool,
}

impl Default for ClientAddress {
    fn default() -> Self {
        ClientAddress { trusted_hops: 0, envoy_appends: true }
    }
}

impl ClientAddress {
    /// The client address of `request`; `None` when it is unknown: the peer in HTTP mode
    /// (Envoy does not send it there), or an entry at the trusted position that is not an
    /// address (a broken proxy, or a client that wrote past what the proxies append).
    ///
    /// As Envoy does, a header with fewer entries than trusted proxies means the request did
    /// not come through them (they always append), so its client is the peer.
    pub fn of(&self, request: &AuthRequest) -> Option<IpAddr> {
        let peer = request.peer_address.map(|a| a.to_canonical());
        if self.trusted_hops == 0 {
            return peer;
        }
        // Entries from the right: Envoy's own first when it appends, then one per proxy.
        let skip = self.trusted_hops - u32::from(!self.envoy_appends);
        let Some(entry) = request.header("x-forwarded-for").and_then(|xff| xff.rsplit(',').nth(skip as usize)) else {
            return peer;
        };
        parse_entry(entry.trim()).map(|a| a.to_canonical())
    }
}

/// The skeleton's entry point: [`ClientAddress::of`] behind an Envoy that appends.
pub fn client(request: &AuthRequest, trusted_hops: u32) -> Option<IpAddr> {
    ClientAddress { trusted_hops, envoy_appends: true }.of(request)
}

/// An `X-Forwarded-For` entry: an address, or one with a port as some load balancers write it
/// (`192.0.2.1:443`, `[2001:db8::1]:443`, `[2001:db8::1]`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    entry.strip_prefix('[')?.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: Option<&str>, xff: Option<&str>) -> AuthRequest {
        let headers = xff.map(|x| ("x-forwarded-for".to_string(), x.to_string())).into_iter().collect();
        let mut request = AuthRequest::new("GET", "api", "/", headers);
        request.peer_address = peer.map(|p| p.parse().unwrap());
        request
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    const APPENDS: fn(u32) -> ClientAddress = |trusted_hops| ClientAddress { trusted_hops, envoy_appends: true };
    const AS_SENT: fn(u32) -> ClientAddress = |trusted_hops| ClientAddress { trusted_hops, envoy_appends: false };

    #[test]
    fn no_trusted_hop_is_the_peer_whatever_the_header_says() {
        let r = request(Some("198.51.100.9"), Some("10.0.0.1, 192.0.2.2"));
        assert_eq!(APPENDS(0).of(&r), ip("198.51.100.9"));
        assert_eq!(AS_SENT(0).of(&r), ip("198.51.100.9"));
        assert_eq!(APPENDS(0).of(&request(None, Some("10.0.0.1"))), None, "HTTP mode: no peer");
    }

    /// The header as Envoy passes it with `use_remote_address: true` behind one load balancer:
    /// `<what the client wrote>, <what the balancer saw>,<what Envoy appended>`.
    #[test]
    fn one_trusted_hop_reads_the_balancers_entry_and_nothing_left_of_it() {
        let honest = request(Some("192.0.2.10"), Some("203.0.113.7,192.0.2.2"));
        assert_eq!(APPENDS(1).of(&honest), ip("203.0.113.7"));
        for spoofed in ["10.0.0.1, 203.0.113.7,192.0.2.2", "10.0.0.1,10.0.0.2, 203.0.113.7,192.0.2.2"] {
            assert_eq!(APPENDS(1).of(&request(Some("192.0.2.10"), Some(spoofed))), ip("203.0.113.7"), "{spoofed}");
        }
        // Envoy Gateway's clientIPDetection: Envoy appends nothing, the balancer's entry is last.
        let as_sent = request(Some("192.0.2.10"), Some("10.0.0.1, 203.0.113.7"));
        assert_eq!(AS_SENT(1).of(&as_sent), ip("203.0.113.7"));
        assert_eq!(
            APPENDS(2).of(&request(None, Some("10.0.0.1, 203.0.113.7, 198.51.100.1,192.0.2.2"))),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn fewer_entries_than_trusted_hops_is_a_request_past_the_proxies_so_the_peer() {
        // Envoy appended its own entry only: nobody in front of it did.
        assert_eq!(APPENDS(1).of(&request(Some("198.51.100.9"), Some("192.0.2.2"))), ip("198.51.100.9"));
        assert_eq!(AS_SENT(1).of(&request(Some("198.51.100.9"), None)), ip("198.51.100.9"));
        assert_eq!(APPENDS(3).of(&request(Some("198.51.100.9"), Some("10.0.0.1,192.0.2.2"))), ip("198.51.100.9"));
    }

    #[test]
    fn an_entry_that_is_not_an_address_is_no_client_address() {
        for bad in [
            "garbage,192.0.2.2",
            ",192.0.2.2",
            "10.0.0.1 10.0.0.2,192.0.2.2",
            "unknown,192.0.2.2",
            "10.0.0.300,192.0.2.2",
        ] {
            assert_eq!(APPENDS(1).of(&request(Some("198.51.100.9"), Some(bad))), None, "{bad:?}");
        }
        // Beyond the trusted position, nothing is read: garbage there changes nothing.
        assert_eq!(APPENDS(1).of(&request(None, Some("garbage, 203.0.113.7,192.0.2.2"))), ip("203.0.113.7"));
    }

    #[test]
    fn entries_with_ports_and_ipv6() {
        let r = |xff: &str| APPENDS(1).of(&request(None, Some(xff)));
        assert_eq!(r("203.0.113.7:4711,192.0.2.2"), ip("203.0.113.7"));
        assert_eq!(r("2001:db8::7,192.0.2.2"), ip("2001:db8::7"));
        assert_eq!(r("[2001:db8::7],192.0.2.2"), ip("2001:db8::7"));
        assert_eq!(r("[2001:db8::7]:443,192.0.2.2"), ip("2001:db8::7"));
        // An IPv4 address as a dual-stack listener writes it is the IPv4 address.
        assert_eq!(r("::ffff:10.1.2.3,192.0.2.2"), ip("10.1.2.3"));
        assert_eq!(APPENDS(0).of(&request(Some("::ffff:10.1.2.3"), None)), ip("10.1.2.3"));
    }

    #[test]
    fn the_skeletons_entry_point_is_an_appending_envoy() {
        let r = request(Some("198.51.100.9"), Some("203.0.113.7,192.0.2.2"));
        assert_eq!(client(&r, 1), ip("203.0.113.7"));
        assert_eq!(client(&r, 0), ip("198.51.100.9"));
    }
}
