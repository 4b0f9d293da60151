//! The ways a caller's interface is removed: `-delete` (and
//! lxc-user-nic's delete), the poststop hook, and the reaper of an
//! lxc-user-nic `create` once its host end is gone.

use std::net::{IpAddr, Ipv4Addr};

use crate::error::Failure;
use crate::filters::Filters;
use crate::links::Links;
use crate::output::Outcome;

use super::Session;

impl<L: Links, F: Filters> Session<'_, L, F> {
    /// Removes the caller's own interface from the target and frees its
    /// lease (security.md 13: only what is recorded for this uid).
    pub async fn delete(&self) -> Result<Outcome, Failure> {
        let mut ledger = self.store.lock()?;
        let (_, host, lease) = self.own_interface(&mut ledger).await?;
        self.sockets.host.delete_link(host.index).await?;
        self.teardown(&mut ledger, &lease)?;
        Ok(Outcome::Removed {
            host_interfaces: vec![lease.ifname],
            addresses: vec![IpAddr::V4(lease.address)],
        })
    }

    /// The poststop hook: removes every interface and lease this caller
    /// recorded for `container` on this network. Usually the kernel has
    /// already deleted the pair with the container's namespace.
    pub async fn release(&self, container: &str) -> Result<Outcome, Failure> {
        let mut ledger = self.store.lock()?;
        let bridge = self
            .sockets
            .host
            .link_by_name(&self.request.network.bridge)
            .await?
            .map(|b| b.index);
        let mut removed = Outcome::Removed {
            host_interfaces: vec![],
            addresses: vec![],
        };
        let own = ledger
            .all()?
            .into_iter()
            .filter(|l| l.uid == self.uid && l.container.as_deref() == Some(container));
        for lease in own {
            if let Some(link) = self.sockets.host.link_by_name(&lease.ifname).await? {
                let ours = link.index == lease.ifindex
                    || (lease.is_pending()
                        && link.kind.as_deref() == Some("veth")
                        && link.master == bridge);
                if ours {
                    self.sockets.host.delete_link(link.index).await?;
                }
            }
            self.teardown(&mut ledger, &lease)?;
            if let Outcome::Removed {
                host_interfaces,
                addresses,
            } = &mut removed
            {
                host_interfaces.push(lease.ifname);
                addresses.push(IpAddr::V4(lease.address));
            }
        }
        Ok(removed)
    }

    /// The reaper's work once the host end `ifname` (index `ifindex`) of
    /// the lease of `address` is gone: under the network's lock, if that
    /// lease is still this uid's and still names that host end, it is
    /// collected exactly as a later call's garbage collection would
    /// collect it (freed only if its interface is gone by name and
    /// index). `None`: nothing of it was freed (an explicit delete, a
    /// restore or another call's collection ended it, or it lives).
    pub async fn reap(
        &self,
        address: Ipv4Addr,
        ifindex: u32,
        ifname: &str,
    ) -> Result<Option<Outcome>, Failure> {
        let mut ledger = self.store.lock()?;
        let Some(lease) = ledger
            .lease_of(address)?
            .filter(|l| l.uid == self.uid && l.ifindex == ifindex && l.ifname == ifname)
        else {
            return Ok(None);
        };
        // A completed lease (its index is not 0) is never an orphan, the
        // only kind whose collection looks at the bridge.
        self.collect(&mut ledger, 0, vec![lease]).await?;
        if ledger.lease_of(address)?.is_some() {
            return Ok(None);
        }
        Ok(Some(Outcome::Removed {
            host_interfaces: vec![ifname.to_string()],
            addresses: vec![IpAddr::V4(address)],
        }))
    }
}
