//! The guard's sets: what each guarded port may send as, keyed by its host
//! end's interface index (`meta iif`, 4 bytes in host byte order), so that
//! the guard's rules are shared by every port and a port's guard is its
//! elements. Every name ends in the listing's version (`_v3`, as the
//! chains'). The index, not the name: an element serves only the device
//! it was added for (see "Keyed by the device" in the module docs).

use std::net::Ipv4Addr;

use super::GuardedPort;
use crate::nft::expr::{reg32, Base, Expr, NFT_META_IIF};
use crate::nft::proto::datatype::{concat, ETHERADDR, IFINDEX, INTEGER, IP6ADDR, IPADDR};
use crate::nft::proto::SetSpec;

/// The guarded host ends: prerouting jumps to the port chain for these.
pub(super) const PORTS: &str = "ports_v3";
/// Each port's MAC (`ether saddr`).
pub(super) const MACS: &str = "macs_v3";
/// Each port's IPv4 addresses (`ip saddr`).
pub(super) const V4: &str = "v4_v3";
/// Each port's IPv6 addresses (`ip6 saddr`).
pub(super) const V6: &str = "v6_v3";
/// Each port's ARP senders: its MAC with each IPv4 address and 0.0.0.0.
pub(super) const SENDERS: &str = "senders_v3";
/// Each port's MAC again, for the rules that read it from a neighbour
/// discovery option (`meta iif . @th,<offset>,48`): nft types a raw payload
/// as an integer and reads a listing back only where the set's key is
/// typed so too (`typeof`).
pub(super) const LLADDRS: &str = "lladdrs_v3";
/// Each port's IPv6 addresses again, for the neighbour discovery targets
/// (`meta iif . @th,64,128`), typed so for the same reason.
pub(super) const TARGETS: &str = "targets_v3";

const IIF: (u32, u32) = (IFINDEX, 4);
const ETHER: (u32, u32) = (ETHERADDR, 6);

/// The sets, in the order a port's elements are added; plain hash sets
/// (no interval flag), every field of a fixed-size type: nft 1.0.6 aborts
/// listing a set whose concatenated key has an `integer` field without a
/// `typeof` (`concat_expr_msort_value`), and with it `nft list ruleset`.
pub(super) const SETS: [SetSpec; 7] = [
    spec(PORTS, &[IIF], &[]),
    spec(MACS, &[IIF, ETHER], &[]),
    spec(V4, &[IIF, (IPADDR, 4)], &[]),
    spec(V6, &[IIF, (IP6ADDR, 16)], &[]),
    spec(SENDERS, &[IIF, ETHER, (IPADDR, 4)], &[]),
    spec(LLADDRS, &[IIF, (INTEGER, 6)], &typeof_iif_th(80, 48)),
    spec(TARGETS, &[IIF, (INTEGER, 16)], &typeof_iif_th(64, 128)),
];

const fn spec(name: &'static str, key: &'static [(u32, u32)], udata: &'static [u8]) -> SetSpec {
    SetSpec {
        name,
        key,
        data: &[],
        typeof_key: udata,
    }
}

/// nft 1.0.6's user data for `typeof meta iif . @th,<bit>,<bits>` (what
/// `nft --debug=mnl add set ... { typeof meta iif . @th,80,48 ; }` sends):
/// the key's expressions, a concatenation (13) of `meta` (9) key iif (4)
/// and a raw `payload` (7) of the transport header (base 3) at bit `bit`,
/// `bits` bits. nft types the look-ups' raw `@th` reads against it.
const fn typeof_iif_th(bit: u8, bits: u8) -> [u8; 66] {
    [
        3, 64, // NFTNL_UDATA_SET_KEY_TYPEOF
        0, 4, 13, 0, 0, 0, // the expression: a concatenation
        1, 56, // its data
        0, 14, 0, 4, 9, 0, 0, 0, 1, 6, 0, 4, 4, 0, 0, 0, // meta iif
        1, 38, 0, 4, 7, 0, 0, 0, 1, 30, // payload
        0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 2, 4, 3, 0, 0, 0, // raw, transport
        3, 4, bit, 0, 0, 0, 4, 4, bits, 0, 0, 0, // at bit, bits
    ]
}

/// `meta iif . <field> . ... [!=] @set`: the input device's index (the
/// first 4-byte register) and each field (`len` bytes at `base + offset`)
/// from the next 4-byte register on, padded with zeroes by its load.
pub(super) fn own(set: &str, fields: &[(Base, u32, u32)], invert: bool) -> Vec<Expr> {
    let mut out = vec![Expr::meta(NFT_META_IIF)];
    let mut at = 1;
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

/// Keys of one set: its name and the keys.
pub(super) type SetKeys = (&'static str, Vec<Vec<u8>>);

/// `port`'s elements of each set of [`SETS`], in that order (every set,
/// a set it has none in with no keys), keys as the rules' look-ups build
/// them: the index, then each field zero-padded to a multiple of 4 bytes.
pub(super) fn port_elements(port: &GuardedPort) -> Vec<SetKeys> {
    let key = |fields: &[&[u8]]| {
        let mut k = port.ifindex.to_ne_bytes().to_vec();
        for field in fields {
            k.extend_from_slice(field);
            k.resize(k.len().div_ceil(4) * 4, 0);
        }
        k
    };
    let mac = &port.mac[..];
    let senders = port
        .ipv4
        .iter()
        .chain([&Ipv4Addr::UNSPECIFIED])
        .map(|a| key(&[mac, &a.octets()]))
        .collect();
    let v6: Vec<_> = port.ipv6.iter().map(|x| key(&[&x.octets()])).collect();
    vec![
        (PORTS, vec![key(&[])]),
        (MACS, vec![key(&[mac])]),
        (V4, port.ipv4.iter().map(|a| key(&[&a.octets()])).collect()),
        (V6, v6.clone()),
        (SENDERS, senders),
        (LLADDRS, vec![key(&[mac])]),
        (TARGETS, v6),
    ]
}

/// The interface index a key of [`SETS`] begins with.
pub(super) fn index_of(key: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(key.get(..4)?.try_into().ok()?))
}

/// The length of the keys of `spec`.
pub(super) fn key_len(spec: &SetSpec) -> usize {
    concat(spec.key).1 as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typeof_user_data_is_what_nft_writes() {
        // NFTA_SET_USERDATA of `nft add set bridge t s { typeof meta iifname
        // . @th,80,48 ; }` (nft 1.0.6, x86_64) after the key byte order,
        // with meta's key iifname (6) where ours is iif (4).
        let nft = "034000040d0000000138000e00040900000001060004060000000126\
                   000407000000011e000400000000010400000000020403000000030450000000040430000000";
        let ours: String = typeof_iif_th(80, 48)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(ours, nft.replace("0001060004060000", "0001060004040000"));
        assert_eq!(
            &typeof_iif_th(64, 128)[56..],
            &[0x40, 0, 0, 0, 4, 4, 0x80, 0, 0, 0]
        );
    }

    #[test]
    fn keys_are_the_index_then_the_padded_field() {
        let port = GuardedPort {
            ifname: "ga0".into(),
            ifindex: 0x0102_0304,
            mac: [2, 0x6e, 10, 77, 0, 2],
            ipv4: vec!["10.77.0.2".parse().unwrap()],
            ipv6: vec!["fd00:77::2".parse().unwrap()],
        };
        let elements = port_elements(&port);
        let index = 0x0102_0304u32.to_ne_bytes();
        assert_eq!(elements[0], (PORTS, vec![index.to_vec()]));
        assert_eq!(&elements[1].1[0][..4], &index);
        assert_eq!(&elements[1].1[0][4..], &[2, 0x6e, 10, 77, 0, 2, 0, 0]);
        assert_eq!(&elements[2].1[0][4..], &[10, 77, 0, 2]);
        // Its address and 0.0.0.0, each after the MAC padded to 8.
        assert_eq!(elements[4].1.len(), 2);
        assert_eq!(
            &elements[4].1[0][4..],
            &[2, 0x6e, 10, 77, 0, 2, 0, 0, 10, 77, 0, 2]
        );
        assert_eq!(&elements[4].1[1][12..], &[0, 0, 0, 0]);
        assert_eq!(index_of(&elements[6].1[0]), Some(0x0102_0304));
        // Each key as long as its set's key, each set named in order.
        for (set, (name, keys)) in SETS.iter().zip(&elements) {
            assert_eq!(set.name, *name);
            assert!(keys.iter().all(|k| k.len() == key_len(set)), "{name}");
        }
        assert!(SETS.iter().all(|s| s.name.ends_with(super::super::VERSION)));
    }
}
