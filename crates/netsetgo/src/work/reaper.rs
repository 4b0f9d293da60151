//! The reaper of an lxc-user-nic `create` (SECURITY.md, "The reaper"):
//! rootlesskit never calls `delete`; when it exits its network namespace
//! dies and the kernel deletes the pair, and the reaper, a process the
//! helper forks last (after its line, next to the DHCP responder), then
//! frees the lease at once, with its publications, guard elements and IPv6
//! address, instead of leaving it to the next call on the network.
//!
//! It is the helper itself, forked: the system user `_netsetgo` holding
//! `CAP_NET_ADMIN` alone, no_new_privs, not dumpable (so the caller can
//! neither signal nor trace it), out of the caller's session, with
//! /dev/null on fds 0-2 and no descriptor but its [`Watch`] and the
//! network's state files (its lock and ledger). It sleeps until the
//! kernel reports its host end deleted, then takes the network's lock and
//! runs the garbage collection a later call would run on that one lease
//! ([`Session::reap`]: freed only if the lease still names that host end
//! and its interface is gone), audits what it freed, and exits. If the
//! lease was ended otherwise (`delete`, a restore, another call's
//! collection), it exits having freed nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use nix::sys::prctl;
use nix::unistd::{fork, setsid, ForkResult};

use crate::audit;
use crate::dhcp::responder::null_stdio;
use crate::error::Failure;
use crate::leases::Store;
use crate::output::{Outcome, Wired};
use crate::request::Request;
use crate::system::{Kernel, System};
use crate::watch::Watch;
use crate::wiring::{runtime, Session, Sockets};

/// The reaper's process name (`/proc/PID/comm`), which tells it from the
/// helper and the DHCP responder in `ps`.
pub const NAME: &std::ffi::CStr = c"netsetgo-reaper";

/// What the reaper of one `create` needs: the network's state and
/// definition, the lease it watches, and what its audit record names.
pub struct Reaper {
    store: Store,
    request: Request,
    uid: u32,
    pid: Option<u32>,
    address: Ipv4Addr,
    ifindex: u32,
    ifname: String,
}

impl Reaper {
    /// The reaper of the lease `wired` made for `uid` (whose call named
    /// `pid`), on the network of `request` whose state is `store`; `None`
    /// if the call leased no IPv4 address (it always does).
    pub fn new(
        store: Store,
        request: Request,
        uid: u32,
        pid: Option<u32>,
        wired: &Wired,
    ) -> Option<Reaper> {
        let address = wired.addresses.iter().find_map(|a| match a.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })?;
        Some(Reaper {
            store,
            request,
            uid,
            pid,
            address,
            ifindex: wired.host_index,
            ifname: wired.host_interface.clone(),
        })
    }

    /// Subscribes to the host end's deletion, then forks the reaper and
    /// returns its pid. The helper takes the reaper's [`NAME`] just before
    /// the fork, so that the child has it from its first instant (the
    /// helper exits right after). The helper calls this last, after its
    /// line, with /dev/null on its fds 0-2 and no other descriptor of the
    /// caller's (see `dhcp::responder`), single-threaded (its runtime is
    /// gone), and never takes the network's lock again: the child shares
    /// the lock's open file.
    pub fn start(self) -> Result<u32, Failure> {
        let watch = Watch::subscribe(self.ifindex, &self.ifname)?;
        prctl::set_name(NAME)
            .map_err(|e| Failure::internal(format!("reaper: set its name: {e}")))?;
        // SAFETY: single-threaded (above); the child never returns.
        match unsafe { fork() } {
            Err(e) => Err(Failure::internal(format!("reaper: fork: {e}"))),
            Ok(ForkResult::Parent { child }) => Ok(child.as_raw() as u32),
            Ok(ForkResult::Child) => {
                let mut keep = self.store.fds().to_vec();
                keep.push(watch.fd());
                let code = match isolate(&keep) {
                    Ok(()) => self.run(&watch),
                    Err(()) => 1,
                };
                // SAFETY: ends the child without running the parent's exit
                // handlers or flushing its buffers.
                unsafe { libc::_exit(code) }
            }
        }
    }

    /// The child: waits for the host end to go, collects, audits.
    fn run(&self, watch: &Watch) -> i32 {
        let result = watch.wait().and_then(|()| self.collect());
        let network = Some(self.request.network.name.as_str());
        let record = |r| audit::record(self.uid, self.pid, "reap", network, r);
        match &result {
            Ok(Some(outcome)) => record(Ok(&outcome.line())),
            Ok(None) => {}
            Err(f) => record(Err(f)),
        }
        i32::from(result.is_err())
    }

    /// The lease's collection, through sockets opened now (the reaper
    /// holds `CAP_NET_ADMIN`, which their use needs).
    fn collect(&self) -> Result<Option<Outcome>, Failure> {
        let host = netplumb::Netlink::open_socket()?;
        let nft = netplumb::Nftables::open()?;
        runtime()?.block_on(async {
            let sockets = Sockets::open(host, None, nft, None)?;
            let session = Session::new(sockets, None, &self.store, &self.request, self.uid);
            session.reap(self.address, self.ifindex, &self.ifname).await
        })
    }
}

/// Leaves the caller's session (no terminal signals), puts /dev/null on
/// fds 0-2 again (for a caller of the library that did not) and closes
/// every other fd but `keep`.
fn isolate(keep: &[RawFd]) -> Result<(), ()> {
    setsid().map_err(drop)?;
    null_stdio().map_err(drop)?;
    let top = keep.iter().copied().max().unwrap_or(2).max(2);
    for fd in 3..top {
        if !keep.contains(&fd) {
            // SAFETY: a plain syscall on an fd number; whatever owned it
            // is never used again: this process _exits.
            unsafe { libc::close(fd) };
        }
    }
    // SAFETY: as above, for every fd above the highest kept.
    unsafe { Kernel.close_from(top as u32 + 1) };
    Ok(())
}
