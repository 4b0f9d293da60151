//! A new lease wired: the host ports checked, the bridge made sure of
//! (`bridge`), the lease work done under the lock (`lease`: admitted, an
//! address chosen), then the plan executed: the lease reserved with its
//! ports published (`lease`), the pair made and guarded, the lease
//! completed, the DHCP responder's socket bound (the helper forks the
//! responder itself after its output, see `dhcp::responder`). What is made is recorded in an
//! [`Undo`], and undone here, last first, if a later step fails.

use std::os::fd::AsFd;

use netplumb::{Attached, Bridge, Link};

use crate::dhcp::Terms;
use crate::error::Failure;
use crate::filters::Filters;
use crate::leases::{Lease, Ledger};
use crate::links::Links;
use crate::output::Wired;
use crate::plan::Plan;

use super::lease::Refusal;
use super::undo::{Made, Undo};
use super::Session;

/// How often a call at its quota looks again, and how long it waits in
/// between without the lock: a container's pair outlives it by a few
/// milliseconds (the kernel tears a dead namespace down asynchronously).
const QUOTA_RETRIES: u32 = 8;
const QUOTA_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

impl<L: Links, F: Filters> Session<'_, L, F> {
    /// Wires the target. On failure nothing this call made is left: not
    /// the veth pair, not the lease, not a bridge it created. A call that
    /// publishes on a target where the caller has its interface of this
    /// network already adds its publications to that one's lease instead
    /// (`publish`), and makes nothing else.
    ///
    /// A caller at its quota whose replaced container has just died would
    /// be refused while the kernel is still tearing that container's pair
    /// down: such a call lets go of the lock, waits a moment and tries
    /// again, `QUOTA_RETRIES` times at the most.
    pub async fn create(&self, container: Option<String>) -> Result<Wired, Failure> {
        self.check_host_ports().await?;
        let mut attempt = 1;
        loop {
            let mut ledger = self.store.lock()?;
            if self.adds_to_own() {
                if let Some(own) = self.find_own(&mut ledger).await? {
                    return self.add_publications(&mut ledger, own);
                }
            }
            match self.create_locked(&mut ledger, container.clone()).await {
                Err(Refusal::AtQuota(_)) if attempt < QUOTA_RETRIES => {
                    drop(ledger);
                    attempt += 1;
                    std::thread::sleep(QUOTA_RETRY_PAUSE);
                }
                Err(Refusal::AtQuota(f) | Refusal::Other(f)) => return Err(f),
                Ok(wired) => return Ok(wired),
            }
        }
    }

    /// One attempt under the lock; whatever it made is undone if it fails.
    async fn create_locked(
        &self,
        ledger: &mut Ledger<'_>,
        container: Option<String>,
    ) -> Result<Wired, Refusal> {
        let mut undo = Undo::default();
        let result = self.make(ledger, &mut undo, container).await;
        if result.is_err() {
            self.undo(ledger, undo).await;
        }
        result
    }

    /// Undoes, last first, what a failed attempt made, each step tried
    /// even if an earlier one failed (their failures are not reported: the
    /// failure that started the undo is what the caller is told; a lease
    /// whose teardown failed is left for the next garbage collection).
    async fn undo(&self, ledger: &mut Ledger<'_>, undo: Undo) {
        for made in undo.last_first() {
            match made {
                Made::Pair(index) | Made::Bridge(index) => {
                    let _ = self.sockets.host.delete_link(index).await;
                }
                Made::Lease(lease) => {
                    let _ = self.teardown(ledger, &lease);
                }
            }
        }
    }

    /// The steps of a create, each thing made recorded in `undo`.
    async fn make(
        &self,
        ledger: &mut Ledger<'_>,
        undo: &mut Undo,
        container: Option<String>,
    ) -> Result<Wired, Refusal> {
        let bridge = self.ensure_bridge().await?;
        if bridge.created {
            undo.bridge(bridge.link.index);
        }
        self.admit(ledger, bridge.link.index).await?;
        self.check_room(&bridge.link)?;
        let address = self.choose_address(ledger, bridge.link.index).await?;
        let plan = Plan::new(self.request, address);
        let mut lease = Lease {
            address,
            uid: self.uid,
            ifindex: 0,
            ifname: plan.host_name.clone(),
            container,
        };
        let (inside, target) = self.inside()?;
        self.reserve(ledger, &lease, &plan)?;
        undo.lease(&lease);
        let attached = self.attach(inside, &bridge, target.as_fd(), &plan).await?;
        undo.pair(attached.host_index);
        lease.ifindex = attached.host_index;
        self.complete(ledger, &lease)?;
        self.serve_dhcp(&attached, &plan)?;
        let network = &self.request.network;
        Ok(Wired {
            index: attached.peer.index,
            host_index: attached.host_index,
            mac: attached.peer.mac,
            bridge: network.bridge.clone(),
            mtu: attached.peer.mtu,
            dns: network.dns_servers(),
            published: plan.mappings(),
            guard: network.guard,
            isolated: network.isolate,
            existing: false,
            interface: plan.peer_name,
            addresses: plan.addresses,
            gateways: plan.gateways,
            host_interface: plan.host_name,
        })
    }

    /// Refuses, before anything is made, a `-publish` whose host address is
    /// not one of the host's, or whose host port a socket of the host
    /// listens on. Checked before the lock is taken: the kernel walks every
    /// socket of the host to answer, and any user can open many, so it
    /// must not hold up the network (security.md 16); the check is advice
    /// either way (a program that starts listening afterwards shares the
    /// port with the container, and the published mapping wins for traffic
    /// from outside), and a host port another lease publishes is refused
    /// under the lock by its claim.
    async fn check_host_ports(&self) -> Result<(), Failure> {
        for m in &self.request.publish {
            if let Some(address) = m.host_address {
                if !self.sockets.host.is_local(address).await? {
                    return Err(Failure::refused(format!(
                        "-publish {m}: {address} is not an address of this host"
                    )));
                }
            }
            if self.sockets.host.listening(m.protocol, m.host_port)? {
                return Err(Failure::refused(format!(
                    "-publish {m}: a program on this host listens on {} port {}; choose another host port",
                    m.protocol.name(),
                    m.host_port
                )));
            }
        }
        Ok(())
    }

    /// Makes the plan's pair on `bridge`, its peer in `netns`; the guard's
    /// elements, keyed by the host end's index, go in while it is down. If
    /// the attachment fails after that (the pair is then gone), they are
    /// forgotten again. On a bridge that already holds the most ports
    /// Linux allows, the kernel refuses the creating request (EXFULL) and
    /// unregisters both ends it had made, so the refusal leaves no link,
    /// and says which bridge is full.
    async fn attach(
        &self,
        inside: &L,
        bridge: &Bridge,
        netns: std::os::fd::BorrowedFd<'_>,
        plan: &Plan,
    ) -> Result<Attached, Failure> {
        let network = &self.request.network;
        let attachment = plan.attachment(network, bridge.link.index, bridge.link.mtu, netns);
        let guarded = std::cell::Cell::new(None);
        let guard = |host_end: &Link| match &plan.guard {
            Some(port) => {
                let port = port.clone().at(host_end.index);
                self.sockets
                    .filters
                    .guard(&port)
                    .map_err(Attaching::Guard)?;
                guarded.set(Some(port));
                Ok(())
            }
            None => Ok(()),
        };
        let attached = self.sockets.host.attach(inside, &attachment, guard).await;
        if let (Err(_), Some(port)) = (&attached, guarded.take()) {
            let _ = self.sockets.filters.unguard(&port);
        }
        attached.map_err(|e| match e {
            Attaching::Kernel(e) if e.errno() == Some(libc::EXFULL) => self.full(&bridge.link),
            Attaching::Kernel(e) => e.into(),
            Attaching::Guard(f) => f,
        })
    }

    /// Binds the DHCP responder's socket to the new pair's host end (if
    /// this call has one), for the lease's address and the MAC its peer was
    /// born with; the helper forks the responder once its line is out.
    fn serve_dhcp(&self, attached: &Attached, plan: &Plan) -> Result<(), Failure> {
        let Some(responder) = &self.sockets.dhcp else {
            return Ok(());
        };
        let network = &self.request.network;
        let terms = Terms {
            // The MAC we gave the peer, not the one it reports: its owner
            // may have changed it already (requirement 14).
            mac: plan.mac,
            address: plan.address,
            gateway: network.gateway,
            dns: network.dns_servers(),
        };
        responder.bind(attached.host_index, &terms)
    }
}

/// Why an attachment failed: the kernel's error, kept whole (its errno
/// tells a full bridge), or the guard's.
enum Attaching {
    Kernel(netplumb::Error),
    Guard(Failure),
}

impl From<netplumb::Error> for Attaching {
    fn from(e: netplumb::Error) -> Attaching {
        Attaching::Kernel(e)
    }
}
