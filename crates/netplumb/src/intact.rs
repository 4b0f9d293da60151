//! Whether an attachment is intact: what [`Netlink::attach`] made, checked
//! against what the kernel reports now.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::Result;
use crate::links::Link;
use crate::netlink::Netlink;

/// An attachment as the caller found it, and what it should have: the
/// input of [`Netlink::verify_attachment`] and [`AttachmentCheck::missing`].
#[derive(Debug, Clone, Copy)]
pub struct AttachmentCheck<'a> {
    /// Index of the bridge the host end should be a port of; `None` when
    /// there is no such bridge.
    pub bridge: Option<u32>,
    /// The host end, as the bridge's namespace reports it.
    pub host_end: &'a Link,
    /// The peer, as its namespace reports it; `None` when it is not there.
    pub peer: Option<&'a Link>,
    /// The addresses the peer should have.
    pub addresses: &'a [IpNetwork],
    /// The gateways the peer's namespace should have a default route via,
    /// through the peer (one per address family).
    pub gateways: &'a [IpAddr],
}

/// One thing an attachment lacks, in the order
/// [`AttachmentCheck::missing`] looks: the host end, the peer, its
/// addresses, its default routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The host end is not a port of the bridge, or there is no bridge.
    NotOnBridge,
    /// The host end is down.
    HostEndDown,
    /// The peer is not there (nothing about it is checked then).
    Peer,
    /// The peer is down.
    PeerDown,
    /// The peer lacks this address.
    Address(IpNetwork),
    /// There is no default route via this gateway through the peer.
    DefaultRoute(IpAddr),
}

impl AttachmentCheck<'_> {
    /// What the attachment lacks, given the peer's addresses and the
    /// default routes of its namespace (gateway and output link, as
    /// [`Netlink::default_gateways`] reports them, of every family in
    /// [`gateways`](Self::gateways)). Empty when it is intact.
    pub fn missing(
        &self,
        peer_addresses: &[IpNetwork],
        default_routes: &[(IpAddr, Option<u32>)],
    ) -> Vec<Missing> {
        let mut missing = Vec::new();
        if self.bridge.is_none() || self.host_end.master != self.bridge {
            missing.push(Missing::NotOnBridge);
        }
        if !self.host_end.up {
            missing.push(Missing::HostEndDown);
        }
        let Some(peer) = self.peer else {
            missing.push(Missing::Peer);
            return missing;
        };
        if !peer.up {
            missing.push(Missing::PeerDown);
        }
        for address in self.addresses {
            if !peer_addresses.contains(address) {
                missing.push(Missing::Address(*address));
            }
        }
        for gateway in self.gateways {
            if !default_routes.contains(&(*gateway, Some(peer.index))) {
                missing.push(Missing::DefaultRoute(*gateway));
            }
        }
        missing
    }
}

impl Netlink {
    /// What the attachment `check` describes lacks ([`AttachmentCheck::missing`]),
    /// reading the peer's addresses and the default routes from `self`, a
    /// session in the peer's namespace. Empty when it is intact.
    pub async fn verify_attachment(&self, check: &AttachmentCheck<'_>) -> Result<Vec<Missing>> {
        let Some(peer) = check.peer else {
            return Ok(check.missing(&[], &[]));
        };
        let addresses = self.addresses_of(peer.index).await?;
        let mut routes = Vec::new();
        for gateway in check.gateways {
            routes.extend(self.default_gateways(gateway.is_ipv6()).await?);
        }
        Ok(check.missing(&addresses, &routes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, master: Option<u32>, up: bool) -> Link {
        Link {
            index,
            name: format!("if{index}"),
            kind: Some("veth".into()),
            master,
            link: None,
            link_netnsid: None,
            alias: None,
            mtu: None,
            mac: None,
            up,
            port: None,
        }
    }

    #[test]
    fn an_intact_attachment_lacks_nothing_and_each_loss_is_named() {
        let addresses: [IpNetwork; 2] = [
            "10.1.0.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let gateways: [IpAddr; 2] = ["10.1.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        let (host, peer) = (link(7, Some(3), true), link(2, None, true));
        let check = AttachmentCheck {
            bridge: Some(3),
            host_end: &host,
            peer: Some(&peer),
            addresses: &addresses,
            gateways: &gateways,
        };
        let routes = [(gateways[0], Some(2)), (gateways[1], Some(2))];
        assert_eq!(check.missing(&addresses, &routes), vec![]);

        // A route through another link, an address gone.
        let routes = [(gateways[0], Some(9)), (gateways[1], Some(2))];
        assert_eq!(
            check.missing(&addresses[1..], &routes),
            vec![
                Missing::Address(addresses[0]),
                Missing::DefaultRoute(gateways[0])
            ]
        );

        // The host end off the bridge and down, the peer down.
        let (host, peer) = (link(7, None, false), link(2, None, false));
        let check = AttachmentCheck {
            host_end: &host,
            peer: Some(&peer),
            ..check
        };
        assert_eq!(
            check.missing(
                &addresses,
                &[(gateways[0], Some(2)), (gateways[1], Some(2))]
            ),
            vec![
                Missing::NotOnBridge,
                Missing::HostEndDown,
                Missing::PeerDown
            ]
        );

        // No bridge, no peer.
        let check = AttachmentCheck {
            bridge: None,
            peer: None,
            ..check
        };
        assert_eq!(
            check.missing(&[], &[]),
            vec![Missing::NotOnBridge, Missing::HostEndDown, Missing::Peer]
        );
    }
}
