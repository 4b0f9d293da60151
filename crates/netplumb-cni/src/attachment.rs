//! What names an attachment (container id, interface name) in the host's
//! namespace, derived with no state of the plugin's own: its host end's
//! name, the owner of its published ports, its container's MAC, and the
//! record its host end carries of the network it belongs to.

use std::net::Ipv4Addr;

use netplumb::marks::CNI_MARK;
use netplumb::Link;

use crate::host::is_veth;

/// Host ends are named this prefix and 13 hex digits.
const HOST_PREFIX: &str = "np";
/// Network names longer than this are recorded by their hash (an alias
/// holds at most 255 bytes).
const LONGEST_NAME_RECORDED: usize = 200;

/// The 64-bit FNV-1a hash of `parts`, each followed by a zero byte.
fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// The host end of the attachment (`container_id`, `ifname`): `np` and 13
/// hex digits (52 bits) of the 64-bit FNV-1a hash of both. The same
/// attachment always gets the same name.
pub(crate) fn host_end_name(container_id: &str, ifname: &str) -> String {
    let hash = fnv1a([container_id, ifname]);
    format!("{HOST_PREFIX}{:013x}", hash >> 12)
}

/// The 52 bits a host end's name carries, if it has the shape of
/// [`host_end_name`]'s names.
fn bits_of(name: &str) -> Option<u64> {
    let hex = name.strip_prefix(HOST_PREFIX)?;
    let plain = hex.len() == 13 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    plain.then(|| u64::from_str_radix(hex, 16).ok())?
}

/// Whether `name` has the shape of [`host_end_name`]'s names.
pub(crate) fn is_host_end_name(name: &str) -> bool {
    bits_of(name).is_some()
}

/// The owner of the attachment's published ports, as netplumb's claim
/// holds it: the last 32 bits of its host end's name (so the claims of an
/// attachment are found from its host end, and an attachment that is gone
/// from the names of the links that remain).
pub(crate) fn owner_of(host_name: &str) -> Option<Ipv4Addr> {
    bits_of(host_name).map(|bits| Ipv4Addr::from(bits as u32))
}

/// The MAC the container's end is born with on a guarded network, known
/// before the pair exists: locally administered, unicast, the last 40
/// bits of its host end's name.
pub(crate) fn mac_of(host_name: &str) -> [u8; 6] {
    let bits = bits_of(host_name).unwrap_or_default().to_be_bytes();
    [0x02, bits[3], bits[4], bits[5], bits[6], bits[7]]
}

/// The alias a host end carries: the network it belongs to, so that GC
/// and DEL of one network never take another's attachment on the same
/// bridge.
pub(crate) fn record_of(network: &str) -> String {
    if network.len() <= LONGEST_NAME_RECORDED {
        format!("{CNI_MARK} net {network}")
    } else {
        format!("{CNI_MARK} net #{:016x}", fnv1a([network]))
    }
}

/// Whether host end `end` belongs to `network`: its record names it, or it
/// has none (made before the plugin recorded networks).
pub(crate) fn belongs_to(end: &Link, network: &str) -> bool {
    end.alias
        .as_deref()
        .is_none_or(|alias| alias == record_of(network))
}

/// The owner of a host end's published ports.
pub(crate) fn owner(host_name: &str) -> Ipv4Addr {
    owner_of(host_name).expect("host end names carry an owner")
}

/// Whether `link` is one of the plugin's host ends that may own published
/// ports: a veth of [`host_end_name`]'s shape carrying a record of
/// [`record_of`]'s (set before its first publication). A name alone proves
/// nothing: any netsetgo user can make a host end of that shape (a
/// `-vethNamePrefix` of `np` and five hex digits), with no alias.
pub(crate) fn is_attachment(link: &Link) -> bool {
    let recorded = |alias: &str| {
        alias
            .strip_prefix(CNI_MARK)
            .is_some_and(|rest| rest.starts_with(" net "))
    };
    is_veth(link) && is_host_end_name(&link.name) && link.alias.as_deref().is_some_and(recorded)
}

/// Another of the plugin's host ends among `links` whose name shares
/// `host_name`'s owner (its last 32 bits, and so possibly its MAC, the
/// last 40): two attachments whose hashes collide so would take each
/// other's published ports and, on a guarded bridge, each other's pinned
/// MAC.
pub(crate) fn sharing_owner<'a>(host_name: &str, links: &'a [Link]) -> Option<&'a Link> {
    let own = owner_of(host_name);
    links
        .iter()
        .find(|link| link.name != host_name && is_attachment(link) && owner_of(&link.name) == own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_end_names_are_stable_distinct_and_recognised() {
        let a = host_end_name("c1", "eth0");
        assert_eq!(a, host_end_name("c1", "eth0"));
        assert_ne!(a, host_end_name("c1", "eth1"));
        // The separator keeps ("c1e", "th0") apart from ("c1", "eth0").
        assert_ne!(a, host_end_name("c1e", "th0"));
        assert_eq!(a.len(), 15);
        assert!(is_host_end_name(&a), "{a}");
        netplumb::check_name(&a).unwrap();
        for other in ["veth0a0a0a02", "np", "np0123456789abg", "xp0123456789abc"] {
            assert!(!is_host_end_name(other), "{other}");
            assert_eq!(owner_of(other), None);
        }
    }

    #[test]
    fn owner_mac_and_record_come_from_the_name_and_the_network() {
        let name = "np0123456789abc";
        assert_eq!(owner_of(name), Some(Ipv4Addr::new(0x56, 0x78, 0x9a, 0xbc)));
        assert_eq!(mac_of(name), [0x02, 0x34, 0x56, 0x78, 0x9a, 0xbc]);
        assert_eq!(record_of("podman"), "netplumb-cni net podman");
        let long = "n".repeat(300);
        assert_eq!(record_of(&long).len(), "netplumb-cni net #".len() + 16);
        let mut end = Link {
            index: 9,
            name: name.into(),
            kind: Some("veth".into()),
            master: None,
            link: None,
            link_netnsid: None,
            alias: None,
            mtu: None,
            mac: None,
            up: true,
            port: None,
        };
        assert!(belongs_to(&end, "x"));
        end.alias = Some(record_of("x"));
        assert!(belongs_to(&end, "x") && !belongs_to(&end, "y"));
        let mut links = [end.clone()];
        assert!(is_attachment(&links[0]));
        assert!(sharing_owner(name, &links).is_none(), "itself");
        assert!(sharing_owner("np0023456789abc", &links).is_some());
        assert!(sharing_owner("np0123456789abd", &links).is_none());
        // netsetgo's host end of that shape: no record, no owner.
        links[0].alias = None;
        assert!(!is_attachment(&links[0]));
        assert!(sharing_owner("np0023456789abc", &links).is_none());
        links[0].alias = Some(CNI_MARK.to_string());
        assert!(!is_attachment(&links[0]));
    }
}
