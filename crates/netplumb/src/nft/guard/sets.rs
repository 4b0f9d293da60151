//! The guard's sets: what of each guarded port the rare checks read (its
//! MAC in a neighbour discovery option, its IPv6 addresses as a neighbour
//! discovery target, its MAC and IPv4 addresses as an ARP sender), keyed by
//! the port's host end (`meta iifname`), so that the shared chain reads
//! any port's own values with one hash look-up and a port's batch adds them
//! in one message per set. The frequent checks (the source MAC and the
//! IPv4 and IPv6 source addresses) stay constant comparisons in the port's
//! own chain.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::GuardedPort;
use crate::nft::expr::{
    ifname, payload_comparisons, reg32, Base, Expr, NFT_CMP_EQ, NFT_CMP_NEQ, NFT_META_IIFNAME,
};
use crate::nft::proto::{datatype, SetSpec};
use crate::nft::socket::RuleInfo;

/// `typeof iifname . @th,80,48`: each port's MAC, for the look-ups of a
/// neighbour discovery option's address, which nft types as an integer (a
/// raw payload read) and would not load back against an `ether_addr` key.
pub(super) const ND_MACS: &str = "nd_macs";
/// `typeof iifname . @th,64,128`: each port's IPv6 addresses, for the
/// look-ups of a neighbour discovery message's target (typed as nft reads
/// it, as for [`ND_MACS`]).
pub(super) const ND_TARGETS: &str = "nd_targets";
/// `ifname . ether_addr . ipv4_addr`: each port's MAC with each of its
/// IPv4 addresses and with 0.0.0.0, the ARP senders it may be.
pub(super) const ARP: &str = "arp_senders";

const IFNAME: (u32, u32) = (datatype::IFNAME, 16);
const ETHER: (u32, u32) = (datatype::ETHERADDR, 6);

/// nft 1.0.6's user data for `typeof iifname . @th,<bit>,<bits>` (what `nft
/// --debug=mnl add set ... { typeof iifname . @th,80,48 ; }` sends): the
/// key's expressions, a concatenation (13) of `meta` (9) key iifname (6)
/// and a raw `payload` (7) of the transport header (base 3) at bit `bit`,
/// `bits` bits. nft types the look-ups' raw `@th` reads against it.
const fn typeof_iifname_th(bit: u8, bits: u8) -> [u8; 66] {
    [
        3, 64, // NFTNL_UDATA_SET_KEY_TYPEOF
        0, 4, 13, 0, 0, 0, // the expression: a concatenation
        1, 56, // its data
        0, 14, 0, 4, 9, 0, 0, 0, 1, 6, 0, 4, 6, 0, 0, 0, // meta iifname
        1, 38, 0, 4, 7, 0, 0, 0, 1, 30, // payload
        0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 2, 4, 3, 0, 0, 0, // raw, transport
        3, 4, bit, 0, 0, 0, 4, 4, bits, 0, 0, 0, // at bit, bits
    ]
}

/// The three sets of every guard table, plain hash sets of concatenations
/// (no interval flag: what kernels from 5.8 on hold, long before that).
pub(super) const SETS: [SetSpec; 3] = [
    SetSpec {
        name: ND_MACS,
        key: &[IFNAME, (datatype::INTEGER, 6)],
        data: &[],
        typeof_key: &typeof_iifname_th(80, 48),
    },
    SetSpec {
        name: ND_TARGETS,
        key: &[IFNAME, (datatype::INTEGER, 16)],
        data: &[],
        typeof_key: &typeof_iifname_th(64, 128),
    },
    SetSpec {
        name: ARP,
        key: &[IFNAME, ETHER, (datatype::IPADDR, 4)],
        data: &[],
        typeof_key: &[],
    },
];

/// `meta iifname . <field> . ... [!=] @set`: the host end and each field
/// (`len` bytes at `base + offset`), laid out as a concatenation: the name
/// in the first 16 bytes, each field from the next 4-byte register on,
/// padded with zeroes by its load.
pub(super) fn own(set: &str, fields: &[(Base, u32, u32)], invert: bool) -> Vec<Expr> {
    let mut out = vec![Expr::meta(NFT_META_IIFNAME)];
    let mut at = 4;
    for &(base, offset, len) in fields {
        out.push(Expr::Payload {
            base,
            offset,
            len,
            dreg: reg32(at),
        });
        at += len.div_ceil(4);
    }
    out.push(Expr::Lookup {
        set: set.to_string(),
        map: false,
        invert,
    });
    out
}

/// A key of the sets: `ifname` NUL-padded to 16 bytes, then each of
/// `values` padded with zeroes to a multiple of 4 bytes.
fn key(name: &str, values: &[&[u8]]) -> Vec<u8> {
    let mut out = ifname(name);
    for value in values {
        let end = out.len() + value.len().div_ceil(4) * 4;
        out.extend_from_slice(value);
        out.resize(end, 0);
    }
    out
}

/// Keys of one set: its name and the keys.
pub(super) type SetKeys = (&'static str, Vec<Vec<u8>>);

/// `port`'s elements of each set (a set it has none in is left out), each
/// keyed by its host end: its MAC; its IPv6 addresses; its MAC with each of
/// its IPv4 addresses and with 0.0.0.0.
pub(super) fn port_elements(port: &GuardedPort) -> Vec<SetKeys> {
    let (name, mac) = (&port.ifname, &port.mac[..]);
    let targets = port
        .ipv6
        .iter()
        .map(|x| key(name, &[&x.octets()]))
        .collect();
    let senders = port
        .ipv4
        .iter()
        .chain([&Ipv4Addr::UNSPECIFIED])
        .map(|a| key(name, &[mac, &a.octets()]))
        .collect();
    [
        (ND_MACS, vec![key(name, &[mac])]),
        (ND_TARGETS, targets),
        (ARP, senders),
    ]
    .into_iter()
    .filter(|(_, keys): &SetKeys| !keys.is_empty())
    .collect()
}

/// The port of host end `ifname` whose chain holds `rules` (as the kernel
/// dumps them): its MAC and addresses, read from the constants its rules
/// compare (`ether saddr != M`, `ip saddr A`, `ip6 saddr X`), so that its
/// elements are known whatever the caller knows (a comparison of another
/// length, which the guard never writes, is passed over); `None` without a
/// MAC rule (no chain).
pub(super) fn port_of_chain(ifname: &str, rules: &[RuleInfo]) -> Option<GuardedPort> {
    let (link, network) = (Base::Link as u32, Base::Network as u32);
    let mut mac = None;
    let mut port = GuardedPort {
        ifname: ifname.to_string(),
        mac: [0; 6],
        ipv4: Vec::new(),
        ipv6: Vec::new(),
    };
    let comparisons = rules
        .iter()
        .flat_map(|rule| payload_comparisons(&rule.expressions));
    for ((base, offset, len), op, value) in comparisons {
        match (base, offset, len, op) {
            (b, 6, 6, NFT_CMP_NEQ) if b == link => mac = <[u8; 6]>::try_from(value).ok(),
            (b, 12, 4, NFT_CMP_EQ) if b == network => {
                if let Ok(a) = <[u8; 4]>::try_from(value).map(Ipv4Addr::from) {
                    if !port.ipv4.contains(&a) {
                        port.ipv4.push(a);
                    }
                }
            }
            (b, 8, 16, NFT_CMP_EQ) if b == network => {
                if let Ok(x) = <[u8; 16]>::try_from(value).map(Ipv6Addr::from) {
                    if !port.ipv6.contains(&x) {
                        port.ipv6.push(x);
                    }
                }
            }
            _ => {}
        }
    }
    port.mac = mac?;
    Some(port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::expr::{put_expressions, NFTA_RULE_EXPRESSIONS};
    use crate::nft::wire::{attribute, Message};

    #[test]
    fn a_ports_values_are_read_back_from_its_chains_rules() {
        let port = GuardedPort {
            ifname: "ga0".into(),
            mac: [2, 0x6e, 10, 77, 0, 2],
            ipv4: vec!["10.77.0.2".parse().unwrap(), "10.77.0.9".parse().unwrap()],
            ipv6: vec![
                "fd00:77::2".parse().unwrap(),
                "fe80::6e:aff:fe4d:2".parse().unwrap(),
            ],
        };
        // Each rule as the kernel dumps it: the attributes nft sends.
        let rules: Vec<RuleInfo> = super::super::rules::port_rules(&port)
            .iter()
            .map(|exprs| {
                let mut msg = Message::new(0, 0, 0, 0, 0);
                put_expressions(&mut msg.attrs(), exprs);
                let body = msg.finish();
                RuleInfo {
                    table: String::new(),
                    chain: String::new(),
                    handle: 0,
                    userdata: Vec::new(),
                    expressions: attribute(&body[20..], NFTA_RULE_EXPRESSIONS)
                        .expect("the expressions")
                        .to_vec(),
                }
            })
            .collect();
        assert_eq!(port_of_chain("ga0", &rules), Some(port.clone()));
        assert_eq!(
            port_elements(&port_of_chain("ga0", &rules).unwrap()),
            port_elements(&port)
        );
        // No chain, no MAC rule: nothing to read.
        assert_eq!(port_of_chain("ga0", &rules[1..]), None);
        assert_eq!(port_of_chain("ga0", &[]), None);
    }

    #[test]
    fn keys_are_the_name_padded_then_the_values_padded() {
        let port = GuardedPort {
            ifname: "veth0".into(),
            mac: [2, 0x6e, 10, 0, 0, 2],
            ipv4: vec![Ipv4Addr::new(10, 0, 0, 2)],
            ipv6: vec![],
        };
        let elements = port_elements(&port);
        assert_eq!(elements.len(), 2, "no target set without IPv6 addresses");
        let (set, keys) = &elements[0];
        assert_eq!(*set, ND_MACS);
        assert_eq!(keys[0].len(), 24);
        assert_eq!(&keys[0][..6], b"veth0\0");
        assert_eq!(&keys[0][16..], &[2, 0x6e, 10, 0, 0, 2, 0, 0]);
        let (set, senders) = &elements[1];
        assert_eq!(*set, ARP);
        assert_eq!(senders.len(), 2, "its address and 0.0.0.0");
        assert_eq!(senders[0][..24], keys[0][..]);
        assert_eq!(&senders[0][24..], &[10, 0, 0, 2]);
        assert_eq!(&senders[1][24..], &[0, 0, 0, 0]);
        // The key lengths the kernel is told.
        assert_eq!(datatype::concat(SETS[0].key).1, 24);
        assert_eq!(datatype::concat(SETS[1].key).1, 32);
        assert_eq!(datatype::concat(SETS[2].key).1, 28);
        // The typeof user data: its own TLV of 64 bytes.
        assert_eq!(usize::from(typeof_iifname_th(64, 128)[1]) + 2, 66);
    }
}
