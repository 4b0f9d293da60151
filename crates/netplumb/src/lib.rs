//! # netplumb
//!
//! The plumbing that wires a container's network namespace to a host bridge,
//! as a small library over rtnetlink:
//!
//! * [`NetNs`]: a network namespace held by file descriptor, opened from a
//!   pid (pinned with `pidfd_open`) or from a path such as `/run/netns/NAME`,
//!   with its owner ([`NetNs::owner_uid`]) and a way to open a netlink socket
//!   inside it ([`NetNs::netlink_socket`]).
//! * [`Netlink`]: a netlink session bound to one namespace, with the
//!   operations: [`ensure_bridge`](Netlink::ensure_bridge),
//!   [`create_veth_pair`](Netlink::create_veth_pair) (peer created directly in
//!   the target namespace, in one request), [`set_master`](Netlink::set_master),
//!   [`set_up`](Netlink::set_up), [`rename`](Netlink::rename),
//!   [`add_address`](Netlink::add_address),
//!   [`add_default_route`](Netlink::add_default_route),
//!   [`loopback_up`](Netlink::loopback_up),
//!   [`delete_link`](Netlink::delete_link) and
//!   [`link_by_name`](Netlink::link_by_name) (no dump of all links).
//! * [`Netlink::attach`]: all of it as one transaction that leaves nothing
//!   behind when a step fails.
//! * [`Nftables`]: source NAT for a bridge's subnets
//!   ([`ensure_masquerade`](Nftables::ensure_masquerade),
//!   [`remove_network`](Nftables::remove_network)), spoken to nf_tables
//!   in-process over `NETLINK_NETFILTER` in atomic batches; it touches only
//!   its own `inet` table and runs no `nft` or `iptables` program.
//!
//! Nothing here checks who may do what: that is the caller's policy. Every
//! error says which step failed on which object ([`Error`], [`Step`]).
//!
//! Sessions run on a tokio runtime of either flavour; a `current_thread`
//! runtime is all a one-shot tool needs.
//!
//! ## Example: wire a process's namespace to a bridge
//!
//! Run as root (CAP_NET_ADMIN, plus CAP_SYS_ADMIN to open the socket inside
//! the target namespace):
//!
//! ```no_run
//! use netplumb::{NetNs, Netlink, VethPair};
//!
//! # fn main() -> Result<(), netplumb::Error> {
//! let runtime = tokio::runtime::Builder::new_current_thread()
//!     .enable_io()
//!     .build()
//!     .expect("tokio runtime");
//! runtime.block_on(async {
//!     let pid = 4242; // a process in its own network namespace
//!     let target = NetNs::from_pid(pid)?;
//!     let host = Netlink::connect()?;
//!     let inside = Netlink::connect_in(&target)?;
//!
//!     let bridge = host.ensure_bridge("brg0", None).await?;
//!     host.ensure_address(bridge.link.index, "10.10.10.1/24".parse().unwrap()).await?;
//!     host.create_veth_pair(&VethPair {
//!         name: "veth0a0a0a02",
//!         peer_name: "veth1",
//!         peer_netns: Some(std::os::fd::AsFd::as_fd(&target)),
//!         master: Some(bridge.link.index),
//!         mtu: None,
//!         up: true,
//!     })
//!     .await?;
//!
//!     let peer = inside.link_by_name("veth1").await?.expect("peer exists");
//!     inside.set_up(peer.index).await?;
//!     inside.add_address(peer.index, "10.10.10.2/24".parse().unwrap()).await?;
//!     inside.add_default_route("10.10.10.1".parse().unwrap(), peer.index).await?;
//!     inside.loopback_up().await?;
//!     Ok(())
//! })
//! # }
//! ```

mod addresses;
mod error;
mod links;
mod nat;
mod netlink;
mod netns;
mod routes;
mod wiring;

pub use error::{Error, NetlinkError, Result, Step};
pub use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
pub use links::{check_name, Bridge, Link, VethPair};
pub use nat::Nftables;
pub use netlink::Netlink;
pub use netns::{NetNs, NsId};
pub use wiring::{Attached, Attachment};

/// A netlink socket not yet driven by a runtime.
pub use rtnetlink::sys::Socket as RawSocket;
