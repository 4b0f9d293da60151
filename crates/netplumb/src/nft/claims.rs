//! The claims of published ports read back from table `inet <table>`:
//! which host ports it holds for which owner ([`Ports::claims`]), and a
//! claim released whole, whatever host address it was published on
//! ([`Ports::release`]). For collecting the publications of owners that
//! are gone: both dump maps, so they cost in proportion to the number of
//! publications, unlike [`Ports::publish`] and [`Ports::unpublish`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ports::Ports;
use super::proto::{check_table, Family};
use super::publication::{claim, Protocol, Publication, DNAT4ADDR, DNAT6ADDR, PUBLISHED};
use crate::error::Result;

/// A host port claimed in a table: what [`Ports::claims`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host port.
    pub host_port: u16,
    /// Its owner, as [`Publication::owner`] gave it.
    pub owner: Ipv4Addr,
}

impl Ports<'_> {
    /// Every claim of the table (none without a table).
    pub fn claims(self) -> Result<Vec<Claim>> {
        check_table(self.table)?;
        let elements = self.nft.elements(Family::Inet, self.table, PUBLISHED)?;
        Ok(elements
            .iter()
            .filter_map(|(key, owner)| {
                let owner: [u8; 4] = owner.as_slice().try_into().ok()?;
                Some(Claim {
                    protocol: protocol(key)?,
                    host_port: port_at(key, 4)?,
                    owner: Ipv4Addr::from(owner),
                })
            })
            .collect())
    }

    /// The owner of the claim of `protocol` host port `host_port` in the
    /// table, if it has one: one look-up, whatever the number of claims
    /// (`None` without a table). For a publisher that shares the host's
    /// ports with another table's publications (netsetgo and the CNI
    /// plugin: each refuses a host port the other claims).
    pub fn claimant(self, protocol: Protocol, host_port: u16) -> Result<Option<Ipv4Addr>> {
        check_table(self.table)?;
        let (key, _) = claim(&Publication {
            protocol,
            host_address: None,
            host_port,
            container_port: 0,
            owner: Ipv4Addr::UNSPECIFIED,
            targets: Vec::new(),
        });
        let object = format!(
            "the claim of {} port {host_port} in map inet {} {PUBLISHED}",
            protocol.name(),
            self.table
        );
        let owner = self
            .nft
            .element(Family::Inet, self.table, PUBLISHED, &key, &object)?;
        Ok(owner
            .and_then(|o| <[u8; 4]>::try_from(o.as_slice()).ok())
            .map(Ipv4Addr::from))
    }

    /// Removes `claim` and every map element of its host port, as
    /// [`unpublish`](Ports::unpublish) does, when its owner still holds
    /// it; a publication on one host address is found by a dump of that
    /// family's map. Returns `true` when it removed it.
    pub fn release(self, claim: &Claim) -> Result<bool> {
        check_table(self.table)?;
        let mut host_address = None;
        for (map, len) in [(DNAT4ADDR, 4), (DNAT6ADDR, 16)] {
            let elements = self.nft.elements(Family::Inet, self.table, map)?;
            let found = elements.iter().find_map(|(key, _)| {
                let ours = protocol(key) == Some(claim.protocol)
                    && port_at(key, 4 + len) == Some(claim.host_port);
                ours.then(|| address(&key[4..4 + len]))?
            });
            if found.is_some() {
                host_address = found;
                break;
            }
        }
        let publication = Publication {
            protocol: claim.protocol,
            host_address,
            host_port: claim.host_port,
            container_port: 0,
            owner: claim.owner,
            targets: Vec::new(),
        };
        self.unpublish(&publication).execute()
    }
}

/// The protocol of a key's first field.
fn protocol(key: &[u8]) -> Option<Protocol> {
    [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .find(|p| key.first() == Some(&p.number()))
}

/// The port in the field at `offset` of a key.
fn port_at(key: &[u8], offset: usize) -> Option<u16> {
    let bytes = key.get(offset..offset + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// An address of 4 or 16 bytes.
fn address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::publication::entries;

    #[test]
    fn keys_read_back_as_they_were_written() {
        let p = Publication {
            protocol: Protocol::Udp,
            host_address: Some("192.0.2.1".parse().unwrap()),
            host_port: 5353,
            container_port: 53,
            owner: "10.0.0.2".parse().unwrap(),
            targets: vec!["10.0.0.2".parse().unwrap()],
        };
        let (key, _) = claim(&p);
        assert_eq!(protocol(&key), Some(Protocol::Udp));
        assert_eq!(port_at(&key, 4), Some(5353));
        let e = entries("t", &p).unwrap();
        assert_eq!(port_at(&e[0].key, 8), Some(5353));
        assert_eq!(address(&e[0].key[4..8]), p.host_address);
        assert_eq!(protocol(&[99, 0, 0, 0]), None);
        assert_eq!(address(&[1, 2, 3]), None);
    }
}
