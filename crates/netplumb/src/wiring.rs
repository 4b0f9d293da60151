//! The whole job in one call: a veth pair from a bridge into a namespace,
//! configured, or nothing at all.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use ipnetwork::IpNetwork;

use crate::bridge_port::{BridgePort, Learning};
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
    /// MTU of both ends; the kernel default when `None`.
    pub mtu: Option<u32>,
    /// Addresses of the peer.
    pub addresses: &'a [IpNetwork],
    /// Default gateways of the peer (one per address family).
    pub gateways: &'a [IpAddr],
    /// Give the peer an IPv6 link-local address, the EUI-64 of its MAC
    /// address (whatever the namespace's default). Without IPv6 on the
    /// network it needs none, and without one it sends nothing unasked
    /// (see [`Netlink::set_up_quiet`]). The host end, a bridge port, never
    /// gets one.
    pub peer_link_local: bool,
    /// The peer's MAC address, set when the pair is created; random when
    /// `None`.
    pub peer_mac: Option<[u8; 6]>,
    /// Make the host end an isolated bridge port (`IFLA_BRPORT_ISOLATED`),
    /// before it is brought up: isolated ports reach the bridge and ports
    /// that are not isolated (the uplink), never each other.
    pub isolated: bool,
    /// What the bridge learns from the host end, set before it is brought
    /// up. [`Learning::Pinned`] with the peer's MAC: the bridge learns
    /// nothing from the port, and frames for that MAC go to it only (see
    /// [`Learning`]).
    pub learning: Learning,
}

/// What [`Netlink::attach`] made.
#[derive(Debug, Clone)]
pub struct Attached {
    /// Index of the host end, in the bridge's namespace, as that namespace
    /// reports it.
    pub host_index: u32,
    /// The peer as the kernel reports it, inside its namespace (found by
    /// the index the host end reports for it).
    pub peer: Link,
}

impl Netlink {
    /// [`attach_with`](Netlink::attach_with) with nothing to do before the
    /// host end is brought up.
    pub async fn attach(&self, inside: &Netlink, a: &Attachment<'_>) -> Result<Attached> {
        self.attach_with(inside, a, |_| Ok::<(), Error>(())).await
    }

    /// Creates the pair (peer born in its namespace, host end born on the
    /// bridge, both down), sets the host end's bridge port flags (isolation,
    /// learning, flooding) and pins the peer's MAC to it where asked, runs
    /// `before_up` on the host end (as the host side reports it) while it is
    /// still down, then brings both ends up, gives the peer its addresses
    /// and default routes, and brings `lo` up in the namespace. `self` is a
    /// session in the bridge's namespace, `inside` one in the peer's.
    ///
    /// No frame of the peer crosses the bridge before `before_up` returned:
    /// a veth passes nothing while one end is down. On any failure after
    /// the pair exists (`before_up`'s included), the pair is deleted (which
    /// removes both ends) before the error is returned.
    pub async fn attach_with<E: From<Error>>(
        &self,
        inside: &Netlink,
        a: &Attachment<'_>,
        before_up: impl FnOnce(&Link) -> std::result::Result<(), E>,
    ) -> std::result::Result<Attached, E> {
        // Both ends are born down: the host end is brought up with IPv6
        // address generation off in the same request (see set_up_quiet).
        self.create_veth_pair(&VethPair {
            name: a.host_name,
            peer_name: a.peer_name,
            peer_netns: Some(a.peer_netns),
            master: Some(a.bridge),
            mtu: a.mtu,
            peer_mac: a.peer_mac,
            up: false,
        })
        .await?;
        let configured = async {
            // Facts about the host side come from the host side: the peer's
            // namespace belongs to someone else, who may rename, delete or
            // forge devices there at any moment. Only what this session
            // reports about the host end is acted on here; what `inside`
            // reports is acted on inside only.
            let host = self
                .host_end(a.host_name, a.bridge)
                .await?
                .ok_or_else(|| gone(a.host_name))?;
            let peer_index = host.link.ok_or_else(|| gone(a.peer_name))?;
            let port = BridgePort::new(a.isolated, a.learning);
            if !port.is_default() {
                self.set_bridge_port(host.index, &port).await?;
            }
            if let Learning::Pinned(mac) = a.learning {
                self.pin_mac(host.index, mac).await?;
            }
            before_up(&host)?;
            self.set_up_quiet(host.index).await?;
            let mut peer = inside
                .link_by_index(peer_index)
                .await?
                .filter(|p| p.name == a.peer_name)
                .ok_or_else(|| gone(a.peer_name))?;
            if a.peer_link_local {
                inside.set_up_eui64(peer.index).await?;
            } else {
                inside.set_up_quiet(peer.index).await?;
            }
            peer.up = true;
            for address in a.addresses {
                inside.add_address(peer.index, *address).await?;
            }
            for gateway in a.gateways {
                inside.add_default_route(*gateway, peer.index).await?;
            }
            inside.loopback_up().await?;
            Ok(Attached {
                host_index: host.index,
                peer,
            })
        }
        .await;
        if configured.is_err() {
            // Deleting the host end deletes its peer too. If the host end is
            // already gone, so is the pair.
            if let Ok(Some(host)) = self.host_end(a.host_name, a.bridge).await {
                let _ = self.delete_link(host.index).await;
            }
        }
        configured
    }

    /// The veth called `name` on bridge `bridge`, looked up in this
    /// session's namespace; `None` if there is none, or if the device of
    /// that name is something else (which is then not ours to touch).
    pub async fn host_end(&self, name: &str, bridge: u32) -> Result<Option<Link>> {
        Ok(self
            .link_by_name(name)
            .await?
            .filter(|l| l.kind.as_deref() == Some("veth") && l.master == Some(bridge)))
    }
}

fn gone(name: &str) -> Error {
    Error::os(
        Step::LookUpLink,
        name,
        std::io::Error::from_raw_os_error(libc::ENODEV),
    )
}
