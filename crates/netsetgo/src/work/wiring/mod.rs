//! The netlink work of one call, done under the network's lock: it
//! executes a lease's [`Plan`](crate::plan::Plan) (create), compares the
//! kernel with one (check), undoes one (delete, poststop, garbage
//! collection, rollback) or re-creates what the firewall lost of each
//! (restore). One file per concern:
//!
//! * `create`: a new lease wired, in the order below; `bridge`: the
//!   configured bridge made sure of and claimed;
//! * `undo`: what a create made, undone in reverse when it fails;
//! * `lease`: the lease work under the lock, next to the ledger (garbage
//!   collection, quota, address choice, the one teardown of a lease);
//! * `check`: the caller's own interface found and compared with its plan;
//! * `publish`: `-publish` on a container the caller wired already, and
//!   `-unpublish`;
//! * `remove`: `-delete` and the poststop hook;
//! * `restore`: `-restore`, for root, on every network with state.
//!
//! Order of a create: every refusal (host ports, quota, address, a host
//! port claimed already) comes before anything that outlives the call is
//! made in nftables. The lease (pending) and its ports record are written
//! first, then each port is published (a claimed port is refused there),
//! then the network's masquerade and hairpin rules are made sure of, then
//! the pair is made (both ends down); on a guarded network its host end's
//! bridge port is pinned (no learning, no unknown unicast, a static sticky
//! forwarding entry for the peer's MAC, link-local frames sent through
//! bridge prerouting) and its elements added to the bridge guard's sets
//! (`Filters::guard`, keyed by the host end's index) before the host end is brought up, so the container
//! never has an unguarded moment. A failure at any step undoes the earlier
//! ones in reverse, except the shared structure (tables, maps, chains, a
//! network's masquerade and hairpin rules), which a successful call keeps
//! too.
//! Every way a lease ends (-delete, poststop, garbage collection, rollback)
//! goes through `Session::teardown`: publications, guard, record, lease.

use netplumb::{NetNs, Netlink};

use crate::dhcp::responder::Responder;
use crate::error::Failure;
use crate::filters::{self, Filters};
use crate::leases::Store;
use crate::links::{Kernel, Links};
use crate::request::Request;

mod bridge;
mod check;
mod create;
mod lease;
mod publish;
mod remove;
mod restore;
mod undo;

pub use restore::{restore_all, Covered, Grants, Restorable};

/// The sockets a call works through, all opened before the drop.
pub struct Sockets<L: Links = Kernel, F: Filters = filters::Kernel> {
    /// Netlink in the host's namespace.
    pub host: L,
    /// Netlink inside the target: absent when the call names no process
    /// (the poststop hook, `-restore`).
    pub inside: Option<L>,
    /// The host's packet filters: masquerading, publications, the guard.
    pub filters: F,
    /// The DHCP responder's socket, in lxc-user-nic mode.
    pub dhcp: Option<Responder>,
}

impl Sockets<Kernel, filters::Kernel> {
    /// The kernel's sockets: netlink in the host and (with a target)
    /// inside it, nf_tables, and the DHCP responder if the call has one.
    pub fn open(
        host: netplumb::RawSocket,
        inside: Option<netplumb::RawSocket>,
        nft: netplumb::Nftables,
        dhcp: Option<Responder>,
    ) -> Result<Sockets, Failure> {
        let kernel = |socket| Netlink::from_socket(socket).map(Kernel::new);
        Ok(Sockets {
            host: kernel(host)?,
            inside: inside.map(kernel).transpose()?,
            filters: filters::Kernel::new(nft),
            dhcp,
        })
    }
}

/// One call's work on one network: its sockets, its target, the network's
/// state and what the caller may ask.
pub struct Session<'a, L: Links = Kernel, F: Filters = filters::Kernel> {
    sockets: Sockets<L, F>,
    /// The target's namespace: absent when the call names no process.
    target: Option<&'a NetNs>,
    store: &'a Store,
    request: &'a Request,
    uid: u32,
}

impl<'a, L: Links, F: Filters> Session<'a, L, F> {
    /// A session of `uid`'s `request` on the network whose state is
    /// `store`, over any [`Links`] and [`Filters`] (the kernel's, or the
    /// unit tests' fakes).
    pub fn new(
        sockets: Sockets<L, F>,
        target: Option<&'a NetNs>,
        store: &'a Store,
        request: &'a Request,
        uid: u32,
    ) -> Session<'a, L, F> {
        Session {
            sockets,
            target,
            store,
            request,
            uid,
        }
    }

    /// Ends the session, handing back the DHCP responder (bound by a
    /// `create` that succeeded), for the helper to start once its line is
    /// out.
    pub fn into_responder(self) -> Option<Responder> {
        self.sockets.dhcp
    }

    fn inside(&self) -> Result<(&L, &NetNs), Failure> {
        match (&self.sockets.inside, self.target) {
            (Some(inside), Some(target)) => Ok((inside, target)),
            _ => Err(Failure::internal("this action needs a target process")),
        }
    }
}

/// The single-threaded runtime the netlink work runs on (it starts no
/// thread: the helper forks its children after it is gone).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Failure::internal(format!("start runtime: {e}")))
}

#[cfg(test)]
mod tests;
