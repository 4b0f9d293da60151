//! The guard's sets: what each guarded port may send as, keyed by its host
//! end's name (`meta iifname`, 16 bytes, NUL-padded), so that the guard's
//! rules are shared by every port and a port's guard is its elements.

use std::net::Ipv4Addr;

use super::GuardedPort;
use crate::nft::expr::ifname;
use crate::nft::proto::datatype::{ETHERADDR, IFNAME, IP6ADDR, IPADDR};
use crate::nft::proto::SetSpec;

/// The guarded host ends: prerouting jumps to the port rules for these.
pub(super) const PORTS: &str = "ports";
/// Each port's MAC (`ether saddr`).
pub(super) const MACS: &str = "macs";
/// Each port's IPv4 addresses (`ip saddr`).
pub(super) const V4: &str = "v4";
/// Each port's IPv6 addresses (`ip6 saddr`, neighbour discovery targets).
pub(super) const V6: &str = "v6";
/// Each port's ARP sender: MAC and an IPv4 address, or 0.0.0.0 (not
/// `arp`, which nft reads back as a keyword).
pub(super) const ARP_SENDERS: &str = "senders";

/// The sets, in the order a port's elements are added. Every field has a
/// type of fixed size: nft 1.0.6 aborts listing a set whose concatenated
/// key has an `integer` field (`concat_expr_msort_value`), and with it
/// `nft list ruleset`.
pub(super) const SETS: [SetSpec; 5] = [
    spec(PORTS, &[(IFNAME, 16)]),
    spec(MACS, &[(IFNAME, 16), (ETHERADDR, 6)]),
    spec(V4, &[(IFNAME, 16), (IPADDR, 4)]),
    spec(V6, &[(IFNAME, 16), (IP6ADDR, 16)]),
    spec(ARP_SENDERS, &[(IFNAME, 16), (ETHERADDR, 6), (IPADDR, 4)]),
];

const fn spec(name: &'static str, key: &'static [(u32, u32)]) -> SetSpec {
    SetSpec {
        name,
        key,
        data: &[],
    }
}

/// `port`'s elements of each set of [`SETS`], in that order: keys as the
/// rules' lookups build them (the name, then the field zero-padded to a
/// multiple of 4 bytes).
pub(super) fn port_elements(port: &GuardedPort) -> [Vec<Vec<u8>>; 5] {
    let key = |fields: &[&[u8]]| {
        let mut k = ifname(&port.ifname);
        for field in fields {
            k.extend_from_slice(field);
            k.resize(k.len().div_ceil(4) * 4, 0);
        }
        k
    };
    let arp = port
        .ipv4
        .iter()
        .chain([&Ipv4Addr::UNSPECIFIED])
        .map(|a| key(&[&port.mac, &a.octets()]))
        .collect();
    [
        vec![key(&[])],
        vec![key(&[&port.mac])],
        port.ipv4.iter().map(|a| key(&[&a.octets()])).collect(),
        port.ipv6.iter().map(|x| key(&[&x.octets()])).collect(),
        arp,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_name_then_the_padded_field() {
        let port = GuardedPort {
            ifname: "ga0".into(),
            mac: [2, 0x6e, 10, 77, 0, 2],
            ipv4: vec!["10.77.0.2".parse().unwrap()],
            ipv6: vec!["fd00:77::2".parse().unwrap()],
        };
        let elements = port_elements(&port);
        let name = ifname("ga0");
        assert_eq!(elements[0], vec![name.clone()]);
        assert_eq!(elements[1][0].len(), 24);
        assert_eq!(&elements[1][0][16..], &[2, 0x6e, 10, 77, 0, 2, 0, 0]);
        assert_eq!(&elements[2][0][16..], &[10, 77, 0, 2]);
        assert_eq!(elements[3][0].len(), 32);
        // Its address and 0.0.0.0, each after the MAC padded to 8.
        assert_eq!(elements[4].len(), 2);
        assert_eq!(
            &elements[4][0][16..],
            &[2, 0x6e, 10, 77, 0, 2, 0, 0, 10, 77, 0, 2]
        );
        assert_eq!(&elements[4][1][24..], &[0, 0, 0, 0]);
        // Each key as long as its set's key.
        for (set, keys) in SETS.iter().zip(&elements) {
            let len = crate::nft::proto::datatype::concat(set.key).1 as usize;
            assert!(keys.iter().all(|k| k.len() == len), "{}", set.name);
        }
    }
}
