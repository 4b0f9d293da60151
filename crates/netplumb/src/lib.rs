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
//!   [`delete_link`](Netlink::delete_link),
//!   [`link_by_name`](Netlink::link_by_name) (no dump of all links),
//!   [`bridge_ports`](Netlink::bridge_ports), [`links`](Netlink::links)
//!   (every link: for collection),
//!   [`set_bridge_port`](Netlink::set_bridge_port) (isolation, learning and
//!   unicast flooding of a bridge port, [`BridgePort`]),
//!   [`pin_mac`](Netlink::pin_mac) and [`fdb_entries`](Netlink::fdb_entries)
//!   (a static, sticky forwarding entry that ties a MAC to a port) and
//!   [`is_local`](Netlink::is_local) (is an address the namespace's own).
//! * [`Netlink::attach`]: all of it as one transaction that leaves nothing
//!   behind when a step fails; the peer may be given its MAC address, the
//!   host end made an isolated bridge port and the peer's MAC pinned to it
//!   ([`Attachment`], [`Learning`]), and [`Netlink::attach_with`] runs a
//!   step of the caller's on the host end before it is brought up.
//! * [`Netlink::verify_attachment`]: whether an attachment is intact (the
//!   host end up on its bridge, the peer up with its addresses and default
//!   routes), as a list of what it lacks ([`Missing`]).
//! * [`sockets::listening`]: whether a socket of the namespace listens on a
//!   TCP port or holds a UDP port (sock_diag, as `ss` asks).
//! * [`marks`]: who manages a bridge (netsetgo or the CNI plugin), by the
//!   mark in its alias, so that each refuses the other's bridges.
//! * [`sysctl::enable_forwarding`]: forwarding switched on in a namespace,
//!   without following a symbolic link and without a write when it is on.
//!   [`sysctl::disable_ipv6`]: IPv6 switched off on a bridge port one made
//!   (no multicast route, nothing its own stack takes).
//! * [`Nftables`]: nf_tables spoken in-process over `NETLINK_NETFILTER` in
//!   atomic batches, with request builders shaped like rtnetlink's:
//!   [`masquerade`](Nftables::masquerade) (source NAT for a bridge's
//!   subnets: `nft.masquerade(table).add(bridge, subnet).execute()`,
//!   `.remove(bridge)`), [`ports`](Nftables::ports) (published ports,
//!   DNAT that keeps the client's address: `.publish(&p)`,
//!   `.unpublish(&p)`, `.present(&p)`, `.hairpin(bridge, subnet)`, and
//!   for collection `.claims()` and `.release(&claim)`) and
//!   [`guard`](Nftables::guard) (a container's host end receives only
//!   frames from its container's MAC and addresses, in the bridge's
//!   prerouting hook, its MAC and addresses elements of shared sets:
//!   `.allow(&g)`, `.forget(&g)`, `.present(&g)`; the bridge side of the
//!   guard is [`Learning::Pinned`]). It touches only its own tables (`inet`
//!   and `bridge`), costs the same per packet and per call whatever the
//!   number of publications and ports (sets and maps), and runs no
//!   `nft` or `iptables` program.
//!
//! Nothing here checks who may do what: that is the caller's policy. Every
//! error says which step failed on which object, with the kernel's errno
//! when there is one ([`Error`], [`Step`], [`Error::errno`]).
//!
//! ## What a user needs
//!
//! * Linux 5.8 or newer with bridge and veth; root, or CAP_NET_ADMIN (plus
//!   CAP_SYS_ADMIN for [`Netlink::connect_in`] and [`NetNs::enter`]).
//! * A tokio runtime for [`Netlink`] sessions: tokio with the features `rt`
//!   and `net` (`net` for the I/O driver, `Builder::enable_io`). A
//!   `current_thread` runtime is all a one-shot tool needs; a multi-thread
//!   one (`rt-multi-thread`) works too. [`Nftables`] is synchronous and needs
//!   no runtime.
//!
//! ```toml
//! [dependencies]
//! netplumb = "0.1"
//! tokio = { version = "1", features = ["rt", "net"] }
//! ```
//!
//! ## Example: wire a namespace to a bridge
//!
//! The crate's `examples/attach.rs`: the bridge (created if missing; a
//! device of that name that is not a bridge is never touched) gets the
//! gateway address, then [`Netlink::attach`] creates the veth pair with its
//! peer born inside the target namespace, brings both ends and `lo` up and
//! gives the peer its address and default route; if any step fails, the
//! pair is deleted before the error is returned. The crate's tests run this
//! code in throwaway namespaces and check the result with `ip -j`.
//!
//! ```no_run
#![doc = include_str!("../examples/attach.rs")]
//! ```
//!
//! `examples/masquerade.rs` shows [`Nftables`]: masquerading a bridge's
//! subnet, in-process over netlink.
//!
//! ## Where each concern lives
//!
//! In `src/`: `netns.rs` (namespaces), `netlink.rs` (the rtnetlink
//! session), `links.rs`, `addresses.rs`, `routes.rs` and `bridge_port.rs`
//! (one module per kernel object), `wiring.rs` ([`Netlink::attach`]),
//! `intact.rs` ([`Netlink::verify_attachment`]), `sockets.rs` (sock_diag),
//! `sysctl.rs` (forwarding), `error.rs` ([`Error`], [`Step`]); and `nft/`,
//! nf_tables, whose `mod.rs` lists its layers: the codec, expressions, the
//! protocol's numbers, the session and its look-ups, batches, the messages
//! per kernel object, the shared `postrouting` chain, and the operations
//! (masquerade, ports, guard).

#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod addresses;
mod bridge_port;
mod error;
mod intact;
mod links;
pub mod marks;
mod netlink;
mod netns;
mod nft;
mod routes;
pub mod sockets;
pub mod sysctl;
mod wiring;

pub use bridge_port::{BridgePort, FdbEntry, Learning, LINK_LOCAL_FORWARDED};
pub use error::{Error, NetlinkError, Result, Step};
pub use intact::{AttachmentCheck, Missing};
pub use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
pub use links::{check_name, Bridge, Link, VethPair};
pub use netlink::Netlink;
pub use netns::{NetNs, NsId};
pub use nft::{
    guard_table_name, AddMasquerade, AllowPort, Claim, ForgetPort, Guard, GuardElements,
    GuardedPort, Hairpin, Masquerade, Nftables, Ports, Protocol, Publication, Publish,
    RemoveMasquerade, Unpublish, GUARD_COMMON_CHAIN, GUARD_PORT_CHAIN, GUARD_VERSION,
    LEGACY_GUARD_TABLES,
};
pub use wiring::{Attached, Attachment};

/// A netlink socket not yet driven by a runtime: what
/// [`Netlink::open_socket`] and [`NetNs::netlink_socket`] open, and what
/// [`Netlink::from_socket`] and [`Nftables::from_socket`] take. The one name
/// for the socket type in this crate's API.
pub use rtnetlink::sys::Socket as RawSocket;
