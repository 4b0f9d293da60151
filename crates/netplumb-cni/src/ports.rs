//! The `portMappings` capability on netplumb's publishing: each mapping a
//! claim of the host port for the attachment and DNAT elements in the
//! plugin's table `inet netplumb-cni`, which keep the client's address;
//! the hairpin for containers of the same bridge, as netsetgo does it.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use netplumb::sysctl::{enable_forwarding, IpVersion};
use netplumb::{Claim, IpNetwork, Ipv4Network, Netlink, Nftables, Protocol, Publication};
use rscni_types::error::Error;
use rscni_types::types::{PortMapping, Protocol as CniProtocol};

use crate::host::{plumbing, TABLE};

/// netsetgo's table `inet netsetgo`, whose claims of host ports a mapping
/// here must not overlap (read only).
const NETSETGO_TABLE: &str = "netsetgo";

/// One published port, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// One host address (`hostIP`), or every local one but loopback.
    pub host_address: Option<IpAddr>,
    /// The host's port.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
}

impl Mapping {
    /// Reads one entry of `runtimeConfig.portMappings`: code 2 for what
    /// netplumb cannot publish (SCTP, a loopback `hostIP`), 7 for what is
    /// malformed. An empty or unspecified `hostIP` means every address.
    pub fn from_cni(m: &PortMapping) -> Result<Mapping, Error> {
        let port = |value: u32, what: &str| {
            u16::try_from(value)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    Error::InvalidNetworkConfig(format!(
                        "portMappings: {what} {value}: use 1 to 65535"
                    ))
                })
        };
        let protocol = match m.protocol {
            None | Some(CniProtocol::Tcp) => Protocol::Tcp,
            Some(CniProtocol::Udp) => Protocol::Udp,
            Some(CniProtocol::Sctp) => {
                return Err(Error::UnsupportedNetworkConfiguration(
                    "portMappings: sctp is not supported (tcp and udp are)".to_string(),
                ))
            }
        };
        let host_address = match m.custom.get("hostIP") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) if text.is_empty() => None,
            Some(serde_json::Value::String(text)) => {
                let address: IpAddr = text.parse().map_err(|_| {
                    Error::InvalidNetworkConfig(format!("portMappings: hostIP {text:?}"))
                })?;
                if address.is_loopback() {
                    return Err(Error::UnsupportedNetworkConfiguration(format!(
                        "portMappings: hostIP {address}: loopback addresses are not translated"
                    )));
                }
                Some(address).filter(|a| !a.is_unspecified())
            }
            Some(other) => {
                return Err(Error::InvalidNetworkConfig(format!(
                    "portMappings: hostIP {other} is not a string"
                )))
            }
        };
        Ok(Mapping {
            protocol,
            host_address,
            host_port: port(m.host_port, "hostPort")?,
            container_port: port(m.container_port, "containerPort")?,
        })
    }

    /// The publication of this mapping for `owner`, to the container's
    /// `addresses` of the host address's family (each family without one).
    fn publication(&self, owner: Ipv4Addr, addresses: &[IpNetwork]) -> Publication {
        Publication {
            protocol: self.protocol,
            host_address: self.host_address,
            host_port: self.host_port,
            container_port: self.container_port,
            owner,
            targets: addresses
                .iter()
                .map(IpNetwork::ip)
                .filter(|a| self.host_address.is_none_or(|h| h.is_ipv4() == a.is_ipv4()))
                .collect(),
        }
    }
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = self.protocol.name();
        match self.host_address {
            Some(IpAddr::V6(a)) => write!(f, "{protocol} [{a}]:{}", self.host_port)?,
            Some(IpAddr::V4(a)) => write!(f, "{protocol} {a}:{}", self.host_port)?,
            None => write!(f, "{protocol} port {}", self.host_port)?,
        }
        write!(f, " -> {}", self.container_port)
    }
}

/// The refusal of a host port that is taken: invalid configuration (7),
/// as it is the runtime's request that cannot be met on this host.
fn taken(m: &Mapping, by: &str) -> Error {
    Error::InvalidNetworkConfig(format!(
        "portMappings {m}: {} port {} is {by}; choose another host port",
        m.protocol.name(),
        m.host_port
    ))
}

/// Refuses, before anything is made, a mapping whose host address is not
/// the host's or whose host port a socket of the host holds.
pub(crate) async fn check_host(host: &Netlink, mappings: &[Mapping]) -> Result<(), Error> {
    for m in mappings {
        if let Some(address) = m.host_address {
            if !host.is_local(address).await.map_err(plumbing)? {
                return Err(Error::InvalidNetworkConfig(format!(
                    "portMappings {m}: {address} is not an address of this host"
                )));
            }
        }
        if netplumb::sockets::listening(m.protocol, m.host_port).map_err(plumbing)? {
            return Err(taken(m, "listened on by a program of this host"));
        }
    }
    Ok(())
}

/// Publishes `mappings` for `owner` to its `addresses`, with forwarding on
/// and the hairpin of each IPv4 subnet on `bridge`. All or nothing: a
/// host port another attachment has published is refused and the
/// mappings published before it are removed.
pub(crate) fn publish(
    nft: &Nftables,
    bridge: &str,
    mappings: &[Mapping],
    owner: Ipv4Addr,
    addresses: &[IpNetwork],
) -> Result<(), Error> {
    if mappings.is_empty() {
        return Ok(());
    }
    for address in addresses {
        enable_forwarding(IpVersion::of(address.ip())).map_err(plumbing)?;
        if let IpNetwork::V4(net) = address {
            let subnet = Ipv4Network::new(net.network(), net.prefix()).expect("valid prefix");
            nft.ports(TABLE)
                .hairpin(bridge, subnet)
                .execute()
                .map_err(plumbing)?;
        }
    }
    for (done, m) in mappings.iter().enumerate() {
        // netsetgo publishes the host's ports in its own table, at the
        // same dstnat priority: a port it claims is taken.
        let theirs = nft.ports(NETSETGO_TABLE).claimant(m.protocol, m.host_port);
        let published = match theirs.map_err(plumbing)? {
            Some(_) => Err(None),
            None => nft
                .ports(TABLE)
                .publish(&m.publication(owner, addresses))
                .execute()
                .map_err(Some),
        };
        if let Err(e) = published {
            // Whatever the next step's outcome, report the first failure.
            let _ = unpublish(nft, &mappings[..done], owner);
            return Err(match e {
                Some(e) if e.errno() != Some(libc::EEXIST) => plumbing(e),
                _ => taken(m, "already published"),
            });
        }
    }
    Ok(())
}

/// Removes the mappings `owner` holds; another owner's are left alone.
pub(crate) fn unpublish(
    nft: &Nftables,
    mappings: &[Mapping],
    owner: Ipv4Addr,
) -> Result<(), Error> {
    for m in mappings {
        let p = m.publication(owner, &[]);
        nft.ports(TABLE).unpublish(&p).execute().map_err(plumbing)?;
    }
    Ok(())
}

/// The first of `mappings` that is not published for `owner` to its
/// `addresses`, if any.
pub(crate) fn missing(
    nft: &Nftables,
    mappings: &[Mapping],
    owner: Ipv4Addr,
    addresses: &[IpNetwork],
) -> Result<Option<Mapping>, Error> {
    for m in mappings {
        let p = m.publication(owner, addresses);
        if !nft.ports(TABLE).present(&p).map_err(plumbing)? {
            return Ok(Some(*m));
        }
    }
    Ok(None)
}

/// Every claim of the plugin's table.
pub(crate) fn claims(nft: &Nftables) -> Result<Vec<Claim>, Error> {
    nft.ports(TABLE).claims().map_err(plumbing)
}

/// Releases each of `claims` whose owner is not in `live` (the owners of
/// the host ends that exist and carry their record, listed after the
/// claims: a claim is made only once its host end exists and carries it,
/// so a claim listed before the host ends whose
/// owner is not among them has lost its attachment). Publications whose
/// attachment is gone, whatever network it was on, belong to no one any
/// more.
pub(crate) fn collect(
    nft: &Nftables,
    claims: &[Claim],
    live: &HashSet<Ipv4Addr>,
) -> Result<(), Error> {
    for claim in claims.iter().filter(|c| !live.contains(&c.owner)) {
        nft.ports(TABLE).release(claim).map_err(plumbing)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cni(value: serde_json::Value) -> PortMapping {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn mappings_read_as_portmap_reads_them() {
        let m = Mapping::from_cni(&cni(
            serde_json::json!({"hostPort": 8080, "containerPort": 80, "protocol": "TCP", "hostIP": ""}),
        ))
        .unwrap();
        assert_eq!(m.to_string(), "tcp port 8080 -> 80");
        let m = Mapping::from_cni(&cni(
            serde_json::json!({"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.1"}),
        ))
        .unwrap();
        assert_eq!(m.to_string(), "udp 192.0.2.1:53 -> 53");
        let any = cni(serde_json::json!({"hostPort": 1, "containerPort": 2, "hostIP": "::"}));
        assert_eq!(Mapping::from_cni(&any).unwrap().host_address, None);
        for (bad, code) in [
            (serde_json::json!({"hostPort": 0, "containerPort": 80}), 7),
            (
                serde_json::json!({"hostPort": 70000, "containerPort": 80}),
                7,
            ),
            (
                serde_json::json!({"hostPort": 80, "containerPort": 80, "hostIP": "x"}),
                7,
            ),
            (
                serde_json::json!({"hostPort": 80, "containerPort": 80, "hostIP": 5}),
                7,
            ),
            (
                serde_json::json!({"hostPort": 80, "containerPort": 80, "protocol": "sctp"}),
                2,
            ),
            (
                serde_json::json!({"hostPort": 80, "containerPort": 80, "hostIP": "127.0.0.1"}),
                2,
            ),
        ] {
            let err = Mapping::from_cni(&cni(bad.clone())).unwrap_err();
            assert_eq!(u32::from(&err), code, "{bad}: {err}");
        }
    }

    #[test]
    fn targets_follow_the_host_address_family() {
        let addresses: [IpNetwork; 2] = [
            "10.1.0.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let owner = Ipv4Addr::new(1, 2, 3, 4);
        let mut m = Mapping {
            protocol: Protocol::Tcp,
            host_address: None,
            host_port: 8080,
            container_port: 80,
        };
        assert_eq!(m.publication(owner, &addresses).targets.len(), 2);
        m.host_address = Some("192.0.2.1".parse().unwrap());
        assert_eq!(
            m.publication(owner, &addresses).targets,
            vec!["10.1.0.5".parse::<IpAddr>().unwrap()]
        );
    }
}
