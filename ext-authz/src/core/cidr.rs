//! CIDR blocks as rules write them, for the address lists (`core::routes`) and CEL's `inCidr`
//! literals (`core::cel`), parsed one way for both.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// A CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address (`10.1.2.3`, `::1`: /32 or /128). Host
/// bits set under the mask (`10.1.2.3/8`) are refused: such an entry usually means another
/// network than the one it matches. An IPv4-mapped block (`::ffff:10.0.0.0/104`,
/// `::ffff:10.1.2.3`) is the IPv4 block it maps (`10.0.0.0/8`, `10.1.2.3/32`): addresses are
/// compared as IPv4, so kept as IPv6 it would hold no address at all.
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
    Ok(unmapped(net))
}

/// An IPv6 block inside `::ffff:0:0/96` as the IPv4 block it maps. A wider IPv6 block
/// (`::/0`, `::/80`) stays IPv6: it holds IPv6 addresses, and IPv4 ones (mapped or not) are
/// never in it.
fn unmapped(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else { return net };
    let (Some(v4), Some(prefix)) = (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96)) else { return net };
    Ipv4Net::new(v4, prefix).map_or(net, IpNet::V4)
}
