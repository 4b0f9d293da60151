//! Publications on a living container: `-publish` on a container the
//! caller wired already adds to the lease of its interface there, and
//! `-unpublish` removes from it; nothing else of the wiring is touched.
//!
//! "Already wired" is decided from the host side only
//! ([`Session::find_own`]): a lease of the caller on this network whose
//! host end, a veth of the recorded name and index, has its peer in the
//! namespace pinned at stage 7. The container's own view (names inside)
//! is a hint at most.
//!
//! The lease's ports record stays a superset of what the kernel publishes
//! for it, at every moment, so that whatever ends the lease (-delete,
//! poststop, garbage collection) removes every publication it made: an
//! addition is recorded before it is published (and the record restored
//! only once what this call published is gone again), a removal is
//! unpublished before the record forgets it.

use netplumb::Link;

use crate::error::Failure;
use crate::filters::Filters;
use crate::leases::{Lease, Ledger};
use crate::links::Links;
use crate::output::{Outcome, Wired};
use crate::plan::{Plan, Published};
use crate::ports;

use super::Session;

impl<L: Links, F: Filters> Session<'_, L, F> {
    /// Whether this call adds its `-publish` to the caller's interface in
    /// the target, when it has one on this network, instead of making a
    /// second one: a `-pid` (or createRuntime hook) call that publishes.
    /// (lxc-user-nic's create always makes its interface.)
    pub(super) fn adds_to_own(&self) -> bool {
        !self.request.publish.is_empty() && self.request.nic.is_none()
    }

    /// Adds the call's `-publish` to `own`, the caller's interface in the
    /// target and its lease: those it does not publish already (asking
    /// again is no error, and publishes again one its record holds that
    /// the kernel lost: a call killed half way; after a flushed ruleset the
    /// filters refuse until `-restore`), each
    /// refused as at creation when another lease publishes its host port.
    /// On a refusal or failure nothing of this call stays.
    pub(super) fn add_publications(
        &self,
        ledger: &mut Ledger<'_>,
        own: (Link, Link, Lease),
    ) -> Result<Wired, Failure> {
        let (peer, host, lease) = own;
        if let Some(asked) = self.request.address.filter(|a| *a != lease.address) {
            return Err(Failure::refused(format!(
                "-containerAddress {asked}: your interface {} in that container has {}; leave it out to publish there",
                host.name, lease.address
            )));
        }
        let held = ledger.ports_of(lease.address)?;
        let added = ports::to_add(&held, &self.request.publish).map_err(Failure::refused)?;
        let all: Vec<_> = held.iter().chain(&added).copied().collect();
        let mut to_publish = Vec::new();
        for p in Plan::of_lease(self.request, &lease, &self.request.publish).publications {
            if added.contains(&p.mapping) || !self.sockets.filters.published(&p)? {
                to_publish.push(p);
            }
        }
        if !to_publish.is_empty() {
            ledger.set_ports(lease.address, &all)?;
            let network = &self.request.network;
            let made = self
                .publish_all(&to_publish)
                .and_then(|()| self.sockets.filters.hairpin(network));
            if let Err(e) = made {
                if self.unpublish_all(&to_publish).is_ok() {
                    ledger.set_ports(lease.address, &held)?;
                }
                return Err(e);
            }
        }
        Ok(self.found(peer, host, &Plan::of_lease(self.request, &lease, &all)))
    }

    /// `-unpublish`: removes the named host ports from the caller's own
    /// interface in the target, each of which its lease must publish
    /// (another's, or none, is refused and nothing changes).
    pub async fn unpublish(&self) -> Result<Outcome, Failure> {
        let mut ledger = self.store.lock()?;
        let (peer, host, lease) = self.own_interface(&mut ledger).await?;
        let held = ledger.ports_of(lease.address)?;
        let (removed, kept) =
            ports::to_remove(&held, &self.request.unpublish).map_err(Failure::refused)?;
        self.unpublish_all(&Plan::of_lease(self.request, &lease, &removed).publications)?;
        ledger.set_ports(lease.address, &kept)?;
        Ok(Outcome::Wired {
            wired: self.found(peer, host, &Plan::of_lease(self.request, &lease, &kept)),
            intact: false,
        })
    }

    /// Publishes each of `publications`, up to the first refusal (or
    /// failure); the caller removes what it made.
    fn publish_all(&self, publications: &[Published]) -> Result<(), Failure> {
        publications
            .iter()
            .try_for_each(|p| self.sockets.filters.publish(p))
    }

    /// Removes each of `publications` its owner claims; the first failure
    /// is returned once every one was tried.
    pub(super) fn unpublish_all(&self, publications: &[Published]) -> Result<(), Failure> {
        let mut failed = None;
        for p in publications.iter().rev() {
            if let Err(e) = self.sockets.filters.unpublish(p) {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}
