//! The whole job in one call: a veth pair from a bridge into a namespace,
//! configured, or nothing at all.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use ipnetwork::IpNetwork;

use crate::error::{Error, Result, Step};
use crate::links::{Link, VethPair};
use crate::netlink::Netlink;

/// What [`Netlink::attach`] makes.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    /// Index of the bridge the host end joins.
    pub bridge: u32,
    /// Name of the host end.
    pub host_name: &'a str,
    /// Name of the end inside the namespace.
    pub peer_name: &'a str,
    /// The namespace the peer is created in.
    pub peer_netns: BorrowedFd<'a>,
    pub mtu: Option<u32>,
    /// Addresses of the peer.
    pub addresses: &'a [IpNetwork],
    /// Default gateways of the peer (one per address family).
    pub gateways: &'a [IpAddr],
}

/// Both ends as the kernel reports them after configuration.
#[derive(Debug, Clone)]
pub struct Attached {
    pub host: Link,
    pub peer: Link,
}

impl Netlink {
    /// Creates the pair (peer born in its namespace, host end born up on the
    /// bridge), brings the peer up, gives it its addresses and default routes,
    /// and brings `lo` up in the namespace. `self` is a session in the
    /// bridge's namespace, `inside` one in the peer's.
    ///
    /// On any failure after the pair exists, the pair is deleted (which
    /// removes both ends) before the error is returned.
    pub async fn attach(&self, inside: &Netlink, a: &Attachment<'_>) -> Result<Attached> {
        self.create_veth_pair(&VethPair {
            name: a.host_name,
            peer_name: a.peer_name,
            peer_netns: Some(a.peer_netns),
            master: Some(a.bridge),
            mtu: a.mtu,
            up: true,
        })
        .await?;
        let configured = async {
            let host = self
                .link_by_name(a.host_name)
                .await?
                .ok_or_else(|| gone(a.host_name))?;
            let mut peer = inside
                .link_by_name(a.peer_name)
                .await?
                .ok_or_else(|| gone(a.peer_name))?;
            inside.set_up(peer.index).await?;
            peer.up = true;
            for address in a.addresses {
                inside.add_address(peer.index, *address).await?;
            }
            for gateway in a.gateways {
                inside.add_default_route(*gateway, peer.index).await?;
            }
            inside.loopback_up().await?;
            Ok(Attached { host, peer })
        }
        .await;
        if configured.is_err() {
            // Deleting the host end deletes its peer too. If the host end is
            // already gone, so is the pair.
            if let Ok(Some(host)) = self.link_by_name(a.host_name).await {
                let _ = self.delete_link(host.index).await;
            }
        }
        configured
    }
}

fn gone(name: &str) -> Error {
    Error::os(
        Step::LookUpLink,
        name,
        std::io::Error::from_raw_os_error(libc::ENODEV),
    )
}
