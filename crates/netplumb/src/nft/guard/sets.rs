//! The guard's sets: what each guarded port may send as, keyed by its host
//! end's name (`meta iifname`, 16 bytes, NUL-padded), so that the guard's
//! rules are shared by every port and a port's guard is its elements.

use std::net::Ipv4Addr;

use super::GuardedPort;
use crate::nft::expr::ifname;
use crate::nft::proto::datatype::{ETHERADDR, IFNAME, INTEGER, IP6ADDR, IPADDR};
use crate::nft::proto::SetSpec;

/// The guarded host ends: prerouting jumps to the port rules for these.
pub(super) const PORTS: &str = "ports";
/// Each port's MAC (`ether saddr`).
pub(super) const MACS: &str = "macs";
/// Each port's IPv4 addresses (`ip saddr`).
pub(super) const V4: &str = "v4";
/// Each port's IPv6 addresses (`ip6 saddr`, neighbour discovery targets).
pub(super) const V6: &str = "v6";
/// Each port's MAC again, for the rules that read it from a neighbour
/// discovery option (`meta iifname . @th,<offset>,48`): nft types a raw
/// payload as an integer and reads a listing back only where the set's key
/// is typed so too (`typeof`).
pub(super) const LLADDRS: &str = "lladdrs";
/// Each port's IPv6 addresses again, for the neighbour discovery targets
/// (`meta iifname . @th,64,128`), typed so for the same reason.
pub(super) const TARGETS: &str = "targets";
/// Each port's ARP sender: MAC and an IPv4 address, or 0.0.0.0 (not
/// `arp`, which nft reads back as a keyword).
pub(super) const ARP_SENDERS: &str = "senders";

/// The sets, in the order a port's elements are added. Every field has a
/// type of fixed size: nft 1.0.6 aborts listing a set whose concatenated
/// key has an `integer` field (`concat_expr_msort_value`), and with it
/// `nft list ruleset`.
pub(super) const SETS: [SetSpec; 7] = [
    spec(PORTS, &[(IFNAME, 16)], &[]),
    spec(MACS, &[(IFNAME, 16), (ETHERADDR, 6)], &[]),
    spec(V4, &[(IFNAME, 16), (IPADDR, 4)], &[]),
    spec(V6, &[(IFNAME, 16), (IP6ADDR, 16)], &[]),
    spec(
        ARP_SENDERS,
        &[(IFNAME, 16), (ETHERADDR, 6), (IPADDR, 4)],
        &[],
    ),
    spec(LLADDRS, &[(IFNAME, 16), (INTEGER, 6)], &IIFNAME_TH_80_48),
    spec(TARGETS, &[(IFNAME, 16), (INTEGER, 16)], &IIFNAME_TH_64_128),
];

const IIFNAME_TH_80_48: [u8; 64] = iifname_dot_th(80, 48);
const IIFNAME_TH_64_128: [u8; 64] = iifname_dot_th(64, 128);

/// nft 1.0.6's `typeof meta iifname . @th,<offset>,<len>` (bits), as it
/// writes it: a concatenation (expression 13) of a meta expression (9, key
/// `NFT_META_IIFNAME`) and a raw transport header payload (7, base 3).
/// libnftnl's nested TLVs: type, length, value; numbers in host byte order
/// (this is x86's).
const fn iifname_dot_th(offset: u8, len: u8) -> [u8; 64] {
    [
        0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x38, // concat, its data:
        0x00, 0x0e, 0x00, 0x04, 0x09, 0x00, 0x00, 0x00, // meta
        0x01, 0x06, 0x00, 0x04, 0x06, 0x00, 0x00, 0x00, // key iifname
        0x01, 0x26, 0x00, 0x04, 0x07, 0x00, 0x00, 0x00, // payload
        0x01, 0x1e, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // no description,
        0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, // no template,
        0x03, 0x00, 0x00, 0x00, 0x03, 0x04, offset, 0x00, // base, offset,
        0x00, 0x00, 0x04, 0x04, len, 0x00, 0x00, 0x00, // length
    ]
}

const fn spec(
    name: &'static str,
    key: &'static [(u32, u32)],
    key_typeof: &'static [u8],
) -> SetSpec {
    SetSpec {
        name,
        key,
        data: &[],
        key_typeof,
    }
}

/// `port`'s elements of each set of [`SETS`], in that order: keys as the
/// rules' lookups build them (the name, then the field zero-padded to a
/// multiple of 4 bytes).
pub(super) fn port_elements(port: &GuardedPort) -> [Vec<Vec<u8>>; 7] {
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
    let macs = vec![key(&[&port.mac])];
    let v6: Vec<_> = port.ipv6.iter().map(|x| key(&[&x.octets()])).collect();
    [
        vec![key(&[])],
        macs.clone(),
        port.ipv4.iter().map(|a| key(&[&a.octets()])).collect(),
        v6.clone(),
        arp,
        macs,
        v6,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typeof_user_data_is_what_nft_writes() {
        // NFTA_SET_USERDATA of `nft add set bridge t s { typeof meta iifname
        // . @th,80,48 ; }` (nft 1.0.6, x86_64), after the key byte order.
        let nft = "000400000000034000040d0000000138000e00040900000001060004060000000126\
                   000407000000011e000400000000010400000000020403000000030450000000040430000000";
        let ours: String = IIFNAME_TH_80_48
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(format!("0004000000000340{ours}"), nft);
        assert_eq!(
            &IIFNAME_TH_64_128[54..],
            &[0x40, 0, 0, 0, 4, 4, 0x80, 0, 0, 0]
        );
    }

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
