//! The lease work under the network's lock, next to the ledger: garbage
//! collection of dead leases, the quota, the choice of an address, the
//! lease reserved with its ports published and then completed, and the one
//! way a lease ends ([`Session::teardown`]). Of a create's files, only this
//! one reads or writes the ledger.

use crate::error::Failure;
use crate::filters::Filters;
use crate::leases::{Lease, Ledger, Liveness};
use crate::links::Links;
use crate::plan::Plan;

use super::Session;

/// Why a locked attempt failed: at the quota (worth another look once the
/// kernel has caught up), or anything else.
pub(super) enum Refusal {
    AtQuota(Failure),
    Other(Failure),
}

impl<E: Into<Failure>> From<E> for Refusal {
    fn from(e: E) -> Refusal {
        Refusal::Other(e.into())
    }
}

impl<L: Links, F: Filters> Session<'_, L, F> {
    /// Collects the dead leases of the ledger's window, then refuses a
    /// caller at its quota (counting only the interfaces it really holds
    /// once the count says it is there).
    pub(super) async fn admit(&self, ledger: &mut Ledger<'_>, bridge: u32) -> Result<(), Refusal> {
        let window = ledger.window()?;
        self.collect(ledger, bridge, window).await?;
        let Some(quota) = self.request.quota else {
            return Ok(());
        };
        if ledger.count()? >= quota {
            let live = self.count_own(ledger, bridge).await?;
            ledger.recount(live)?;
            if live >= quota {
                return Err(Refusal::AtQuota(Failure::refused(format!(
                    "you already hold {live} of your {quota} interfaces on network {}",
                    self.request.network.name
                ))));
            }
        }
        Ok(())
    }

    /// The requested address if it is free (or held by a dead lease), else
    /// the first free one; every lease is checked only when none looks free.
    pub(super) async fn choose_address(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: u32,
    ) -> Result<std::net::Ipv4Addr, Failure> {
        if let Some(address) = self.request.address {
            if !ledger.is_free(address) {
                if let Some(lease) = ledger.lease_of(address)? {
                    self.collect(ledger, bridge, vec![lease]).await?;
                }
            }
            return if ledger.is_free(address) {
                Ok(address)
            } else {
                Err(Failure::unavailable(format!("address {address} is in use")))
            };
        }
        if let Some(address) = ledger.first_free() {
            return Ok(address);
        }
        let all = ledger.all()?;
        self.collect(ledger, bridge, all).await?;
        ledger.first_free().ok_or_else(|| {
            Failure::unavailable(format!(
                "no free address left in network {}",
                self.request.network.name
            ))
        })
    }

    /// Frees the leases among `leases` whose interface is gone, and
    /// deletes the interfaces of calls that died half way (only a veth of
    /// that name on our bridge).
    pub(super) async fn collect(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: u32,
        leases: Vec<Lease>,
    ) -> Result<(), Failure> {
        if leases.is_empty() {
            return Ok(());
        }
        for lease in leases {
            match lease.liveness(self.sockets.host.index_of(&lease.ifname)?) {
                Liveness::Live => {}
                Liveness::Gone => self.teardown(ledger, &lease)?,
                Liveness::Orphan => self.remove(ledger, bridge, &lease).await?,
            }
        }
        Ok(())
    }

    /// How many interfaces the caller really holds: its leases whose
    /// interface is gone are freed, and so are those whose container's
    /// namespace has already died (the kernel would delete the pair a few
    /// milliseconds later; a runtime replacing a container at its quota must
    /// not be refused for it). Judged from the host ends alone.
    async fn count_own(&self, ledger: &mut Ledger<'_>, bridge: u32) -> Result<u32, Failure> {
        let own: Vec<Lease> = ledger
            .all()?
            .into_iter()
            .filter(|l| l.uid == self.uid)
            .collect();
        let mut live = 0;
        for lease in own {
            match lease.liveness(self.sockets.host.index_of(&lease.ifname)?) {
                Liveness::Gone => self.teardown(ledger, &lease)?,
                Liveness::Orphan => self.remove(ledger, bridge, &lease).await?,
                Liveness::Live => {
                    let dying = self
                        .sockets
                        .host
                        .link_by_index(lease.ifindex)
                        .await?
                        .is_some_and(|l| l.name == lease.ifname && l.peer_namespace_dead());
                    if dying {
                        self.remove(ledger, bridge, &lease).await?;
                    } else {
                        live += 1;
                    }
                }
            }
        }
        Ok(live)
    }

    /// Deletes a lease's interface (if it is still a veth of that name on
    /// our bridge) and frees the lease.
    pub(super) async fn remove(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: u32,
        lease: &Lease,
    ) -> Result<(), Failure> {
        if let Some(link) = self.sockets.host.host_end(&lease.ifname, bridge).await? {
            match self.sockets.host.delete_link(link.index).await {
                Err(e) if e.errno() != Some(libc::ENODEV) => return Err(e.into()),
                _ => {}
            }
        }
        self.teardown(ledger, lease)
    }

    /// Reserves `lease` (pending: no interface yet, written ahead of the
    /// pair) and publishes its `plan`'s ports; if publishing fails, the
    /// lease is torn down again before the failure is returned.
    pub(super) fn reserve(
        &self,
        ledger: &mut Ledger<'_>,
        lease: &Lease,
        plan: &Plan,
    ) -> Result<(), Failure> {
        ledger.reserve(lease)?;
        self.publish(ledger, plan).inspect_err(|_| {
            let _ = self.teardown(ledger, lease);
        })
    }

    /// After the lease is reserved and before the pair exists: its ports
    /// recorded (write-ahead), then published, then the network's
    /// masquerade, isolation and hairpin rules made sure of: after every
    /// refusal (the quota and the address before the lease, a claimed
    /// port here), so that a refused call makes nothing that outlives it
    /// (issue 17).
    /// The inverse of [`Session::teardown`].
    fn publish(&self, ledger: &mut Ledger<'_>, plan: &Plan) -> Result<(), Failure> {
        let network = &self.request.network;
        if !plan.publications.is_empty() {
            let mappings = plan.mappings();
            ledger.set_ports(plan.address, &mappings)?;
        }
        for p in &plan.publications {
            self.sockets.filters.publish(p)?;
        }
        if network.nat {
            self.sockets.filters.masquerade(network)?;
        }
        if network.isolate {
            self.sockets.filters.isolate(network)?;
        }
        if !plan.publications.is_empty() {
            self.sockets.filters.hairpin(network)?;
        }
        Ok(())
    }

    /// Completes `lease` once its pair exists (its host end's index set).
    pub(super) fn complete(&self, ledger: &mut Ledger<'_>, lease: &Lease) -> Result<(), Failure> {
        ledger.complete(lease)
    }

    /// Ends a lease whose interface is gone (or never made): its
    /// publications removed (only those it claims), its guard elements
    /// forgotten, its ports record erased, the lease freed, in that order.
    /// A failure stops before the lease is freed, so that nothing of it
    /// can outlive its record (and reach the next holder of the address);
    /// the next garbage collection that looks at it tries again.
    pub(super) fn teardown(&self, ledger: &mut Ledger<'_>, lease: &Lease) -> Result<(), Failure> {
        let plan = Plan::of_lease(self.request, lease, &ledger.ports_of(lease.address)?);
        let mut failed = self.unpublish_all(&plan.publications).err();
        if let Some(port) = &plan.guard {
            if let Err(e) = self.sockets.filters.unguard(port) {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !plan.publications.is_empty() {
            ledger.set_ports(lease.address, &[])?;
        }
        ledger.release(lease)
    }
}
