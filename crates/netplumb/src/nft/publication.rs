//! A publication and its map elements in table `inet <table>`: the claim
//! (`proto . port : owner`) and one DNAT element per target, keyed by host
//! port (and host address), encoded as nft encodes a concatenation.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use crate::error::{Error, Result, Step};

/// The claim: which lease owns a host port.
pub(super) const PUBLISHED: &str = "published";
pub(super) const DNAT4: &str = "dnat4";
pub(super) const DNAT4ADDR: &str = "dnat4addr";
pub(super) const DNAT6: &str = "dnat6";
pub(super) const DNAT6ADDR: &str = "dnat6addr";

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// Its IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    /// `"tcp"` or `"udp"`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A host port published to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host address the port is published on; `None`: every local
    /// address of the host but loopback.
    pub host_address: Option<IpAddr>,
    /// The port on the host.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// Who owns the host port (a lease's IPv4 address): the value of the
    /// claim, compared by [`Ports::unpublish`](crate::Ports::unpublish) and
    /// [`Ports::present`](crate::Ports::present).
    pub owner: Ipv4Addr,
    /// The container addresses to translate to: at most one IPv4 and one
    /// IPv6 address. With a host address, those of its family.
    pub targets: Vec<IpAddr>,
}

/// A map element of a publication.
pub(super) struct Entry {
    pub(super) map: &'static str,
    pub(super) key: Vec<u8>,
    pub(super) data: Vec<u8>,
}

/// `tcp port 8080` or `tcp [2001:db8::1]:8080`, for errors.
pub(super) fn describe(p: &Publication) -> String {
    match p.host_address {
        None => format!("{} port {}", p.protocol.name(), p.host_port),
        Some(IpAddr::V4(a)) => format!("{} {a}:{}", p.protocol.name(), p.host_port),
        Some(IpAddr::V6(a)) => format!("{} [{a}]:{}", p.protocol.name(), p.host_port),
    }
}

/// A field of a concatenation: its bytes padded to a multiple of 4.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

/// The claim's key (`proto . port`) and value (owner).
pub(super) fn claim(p: &Publication) -> (Vec<u8>, Vec<u8>) {
    let mut key = Vec::with_capacity(8);
    field(&mut key, &[p.protocol.number()]);
    field(&mut key, &p.host_port.to_be_bytes());
    (key, p.owner.octets().to_vec())
}

/// The keys the map elements of `p`'s host address and port have in each
/// map they can be in, whatever its targets.
pub(super) fn keys(p: &Publication) -> Vec<(&'static str, Vec<u8>)> {
    let key = |host: Option<&[u8]>| {
        let mut key = Vec::with_capacity(24);
        field(&mut key, &[p.protocol.number()]);
        if let Some(host) = host {
            field(&mut key, host);
        }
        field(&mut key, &p.host_port.to_be_bytes());
        key
    };
    match p.host_address {
        None => vec![(DNAT4, key(None)), (DNAT6, key(None))],
        Some(IpAddr::V4(h)) => vec![(DNAT4ADDR, key(Some(&h.octets())))],
        Some(IpAddr::V6(h)) => vec![(DNAT6ADDR, key(Some(&h.octets())))],
    }
}

/// The map elements of `p`, one per target; an error if the targets do not
/// fit the host address (or each other).
pub(super) fn entries(table: &str, p: &Publication) -> Result<Vec<Entry>> {
    let invalid = |why: &str| {
        Err(Error::os(
            Step::NftAddElement,
            format!("{} in table inet {table}", describe(p)),
            io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
        ))
    };
    let (mut v4, mut v6) = (0, 0);
    let mut out = Vec::new();
    for target in &p.targets {
        let mut key = Vec::with_capacity(24);
        field(&mut key, &[p.protocol.number()]);
        let mut data = Vec::with_capacity(20);
        let map = match (p.host_address, target) {
            (None, IpAddr::V4(t)) => {
                v4 += 1;
                field(&mut data, &t.octets());
                DNAT4
            }
            (None, IpAddr::V6(t)) => {
                v6 += 1;
                field(&mut data, &t.octets());
                DNAT6
            }
            (Some(IpAddr::V4(h)), IpAddr::V4(t)) => {
                v4 += 1;
                field(&mut key, &h.octets());
                field(&mut data, &t.octets());
                DNAT4ADDR
            }
            (Some(IpAddr::V6(h)), IpAddr::V6(t)) => {
                v6 += 1;
                field(&mut key, &h.octets());
                field(&mut data, &t.octets());
                DNAT6ADDR
            }
            _ => return invalid("a target of another family than the host address"),
        };
        field(&mut key, &p.host_port.to_be_bytes());
        field(&mut data, &p.container_port.to_be_bytes());
        out.push(Entry { map, key, data });
    }
    if out.is_empty() {
        return invalid("no target address");
    }
    if v4 > 1 || v6 > 1 {
        return invalid("more than one target address of a family");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(host: Option<&str>, targets: &[&str]) -> Publication {
        Publication {
            protocol: Protocol::Tcp,
            host_address: host.map(|h| h.parse().unwrap()),
            host_port: 8080,
            container_port: 80,
            owner: "10.0.0.2".parse().unwrap(),
            targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn keys_and_values_are_padded_concatenations() {
        let p = publication(None, &["10.0.0.2", "fd00::2"]);
        assert_eq!(
            claim(&p),
            (vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0], vec![10, 0, 0, 2])
        );
        let e = entries("t", &p).unwrap();
        assert_eq!(e[0].map, DNAT4);
        assert_eq!(e[0].key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e[0].data, [10, 0, 0, 2, 0, 80, 0, 0]);
        assert_eq!(e[1].map, DNAT6);
        assert_eq!(e[1].data.len(), 20);
        assert_eq!(e[1].data[16..], [0, 80, 0, 0]);

        let p = publication(Some("192.0.2.1"), &["10.0.0.2"]);
        let e = entries("t", &p).unwrap();
        assert_eq!(e[0].map, DNAT4ADDR);
        assert_eq!(e[0].key, [6, 0, 0, 0, 192, 0, 2, 1, 0x1f, 0x90, 0, 0]);
        let p = publication(Some("2001:db8::1"), &["fd00::2"]);
        let e = entries("t", &p).unwrap();
        assert_eq!((e[0].map, e[0].key.len()), (DNAT6ADDR, 24));
    }

    #[test]
    fn unpublish_looks_at_every_key_the_host_port_can_have() {
        for (host, targets) in [
            (None, &["10.0.0.2", "fd00::2"][..]),
            (Some("192.0.2.1"), &["10.0.0.2"]),
            (Some("2001:db8::1"), &["fd00::2"]),
        ] {
            let p = publication(host, targets);
            let want: Vec<(&str, Vec<u8>)> = entries("t", &p)
                .unwrap()
                .into_iter()
                .map(|e| (e.map, e.key))
                .collect();
            assert_eq!(keys(&p), want, "{host:?}");
            // Targets play no part: an IPv4-only publication's keys are
            // those of a dual-stack one.
            let v4 = publication(host, &targets[..1]);
            assert_eq!(keys(&v4), keys(&p), "{host:?}");
        }
    }

    #[test]
    fn targets_must_fit() {
        assert!(entries("t", &publication(None, &[])).is_err());
        assert!(entries("t", &publication(None, &["10.0.0.2", "10.0.0.3"])).is_err());
        assert!(entries("t", &publication(Some("192.0.2.1"), &["fd00::2"])).is_err());
    }
}
