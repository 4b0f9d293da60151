//! The seam under the host's packet filters: the nf_tables operations the
//! wiring decides with (masquerading, published ports, isolation, the
//! guard), as a
//! trait. [`Kernel`] is netplumb's nf_tables session on our own tables;
//! the unit tests of `wiring` use a fake that keeps claims and guarded
//! ports in tables and records every change, so that the order of the
//! steps, the rollback and the garbage collection are tested without root.
//!
//! Everything a kernel element or guard rule holds comes from a lease's
//! [`Plan`](crate::plan::Plan) (the host end's name, the deterministic MAC,
//! the addresses), so nothing read from inside a container ever reaches
//! the host's filters.

use ipnetwork::Ipv4Network;
use std::cell::RefCell;

use netplumb::{GuardElements, GuardedPort, Nftables};

use crate::error::Failure;
use crate::leases::Claimed;
use crate::plan::Published;
use crate::policy::Network;
use crate::ports::Mapping;

/// Our table `inet netsetgo` (masquerading, publishing, isolation), and the prefix
/// of the guard's bridge table, which holds the shared chains and the
/// guarded host ends as set elements (`netsetgo_guard`,
/// [`netplumb::guard_table_name`], [`netplumb::GUARD_COMMON_CHAIN`]); no other
/// is ever changed (the CNI plugin's is read: `CNI_TABLE`).
pub const TABLE: &str = "netsetgo";

/// The CNI plugin `netplumb-bridge`'s table `inet netplumb-cni`, whose
/// claims of host ports a publication here must not overlap (read only).
const CNI_TABLE: &str = "netplumb-cni";

/// Host-wide packet filter operations, each on our own tables only; what
/// they add or remove is a lease's [`Plan`](crate::plan::Plan)'s.
pub trait Filters {
    /// The network's masquerade rules (nat=yes), created once.
    fn masquerade(&self, network: &Network) -> Result<(), Failure>;
    /// Masquerades a container's traffic to a port published by another
    /// container of the same bridge (ensured once per network).
    fn hairpin(&self, network: &Network) -> Result<(), Failure>;
    /// Isolates the containers of an `isolate=yes` network at layer 3
    /// (created once): the host forwards nothing from its bridge back to
    /// it unless the connection was DNATed (a published port). Bridge
    /// port isolation alone holds at layer 2 only: a container could route
    /// its packets for another through the gateway.
    fn isolate(&self, network: &Network) -> Result<(), Failure>;
    /// Whether the network's isolation rule is in place.
    fn isolated(&self, network: &Network) -> Result<bool, Failure>;
    /// Publishes `p` for its owner; a host port already claimed (by
    /// anyone) is refused and nothing is added.
    fn publish(&self, p: &Published) -> Result<(), Failure>;
    /// Removes `p` if its owner claims it; true if it did.
    fn unpublish(&self, p: &Published) -> Result<bool, Failure>;
    /// Whether `p` is published for its owner, completely.
    fn published(&self, p: &Published) -> Result<bool, Failure>;
    /// Guards a lease's host end (layer 3, its elements in the sets of the
    /// guard's bridge table): only its MAC and addresses pass, nothing
    /// posing as a DHCP server or a router. Idempotent: run again, it leaves
    /// the same elements. (Layer 2, the bridge port's flags and the pinned MAC, is
    /// set by the attachment, `Learning::Pinned`.)
    fn guard(&self, port: &GuardedPort) -> Result<(), Failure>;
    /// [`Filters::guard`], and the guard's shared chains made whole again
    /// if root emptied or deleted one (one more look-up): `-restore`'s.
    fn restore_guard(&self, port: &GuardedPort) -> Result<(), Failure>;
    /// Forgets the host end's guard elements (by its index, and its legacy
    /// netdev chain); true if it had any.
    fn unguard(&self, port: &GuardedPort) -> Result<bool, Failure>;
    /// What of the host end's guard is missing or lacks rules, named: the
    /// shared chains and its elements; empty when all are there.
    fn guard_missing(&self, port: &GuardedPort) -> Result<Vec<String>, Failure>;
    /// The interface indexes the guard holds elements of (one dump of its
    /// sets, kept for [`Filters::prune_guard`]).
    fn guard_indexes(&self) -> Result<Vec<u32>, Failure>;
    /// Deletes the elements of the last [`Filters::guard_indexes`] dump
    /// whose index is not in `live` (devices listed after that dump);
    /// how many.
    fn prune_guard(&self, live: &[u32]) -> Result<usize, Failure>;
    /// The netdev guard tables of the version before the bridge guard that
    /// are still there, named (`table netdev netsetgo_guard_<n>`).
    fn legacy_guard(&self) -> Result<Vec<String>, Failure>;
    /// Deletes them (only them, by their exact names); their names.
    fn drop_legacy_guard(&self) -> Result<Vec<String>, Failure>;
}

/// A borrowed [`Filters`] is one too: `-restore` shares one nf_tables
/// session among the sessions of its networks (and the tests keep their
/// fake across sessions).
impl<T: Filters> Filters for &T {
    fn masquerade(&self, network: &Network) -> Result<(), Failure> {
        (**self).masquerade(network)
    }
    fn hairpin(&self, network: &Network) -> Result<(), Failure> {
        (**self).hairpin(network)
    }
    fn isolate(&self, network: &Network) -> Result<(), Failure> {
        (**self).isolate(network)
    }
    fn isolated(&self, network: &Network) -> Result<bool, Failure> {
        (**self).isolated(network)
    }
    fn publish(&self, p: &Published) -> Result<(), Failure> {
        (**self).publish(p)
    }
    fn unpublish(&self, p: &Published) -> Result<bool, Failure> {
        (**self).unpublish(p)
    }
    fn published(&self, p: &Published) -> Result<bool, Failure> {
        (**self).published(p)
    }
    fn guard(&self, port: &GuardedPort) -> Result<(), Failure> {
        (**self).guard(port)
    }
    fn restore_guard(&self, port: &GuardedPort) -> Result<(), Failure> {
        (**self).restore_guard(port)
    }
    fn unguard(&self, port: &GuardedPort) -> Result<bool, Failure> {
        (**self).unguard(port)
    }
    fn guard_missing(&self, port: &GuardedPort) -> Result<Vec<String>, Failure> {
        (**self).guard_missing(port)
    }
    fn guard_indexes(&self) -> Result<Vec<u32>, Failure> {
        (**self).guard_indexes()
    }
    fn prune_guard(&self, live: &[u32]) -> Result<usize, Failure> {
        (**self).prune_guard(live)
    }
    fn legacy_guard(&self) -> Result<Vec<String>, Failure> {
        (**self).legacy_guard()
    }
    fn drop_legacy_guard(&self) -> Result<Vec<String>, Failure> {
        (**self).drop_legacy_guard()
    }
}

/// The kernel: netplumb's nf_tables session, opened before the drop.
pub struct Kernel {
    nft: Nftables,
    claims: Claims,
    /// The guard's elements as [`Filters::guard_indexes`] dumped them.
    dumped: RefCell<Option<GuardElements>>,
}

/// When a publication that finds the claims map of `inet netsetgo` missing
/// may make it: the map is missing on a fresh host, and after a flushed
/// ruleset, when every claim of every network is gone and a port taken
/// then could be another network's lease's (whose records this network's
/// lock does not cover) until `-restore` gives it back.
enum Claims {
    /// Never: refused as after a flushed ruleset (a call that publishes
    /// gives the host's mark: [`Kernel::claim_by`]).
    Never,
    /// A call that publishes: only while the host's mark is unset (it is
    /// set first); once set, refused until root's `-restore`.
    Fresh(Claimed),
    /// `-restore`: always, the mark set first ([`Kernel::restoring`]).
    Restore(Claimed),
}

impl Kernel {
    /// The kernel's nf_tables, through `nft`; it makes no claims map.
    pub fn new(nft: Nftables) -> Kernel {
        Kernel {
            nft,
            claims: Claims::Never,
            dumped: RefCell::new(None),
        }
    }

    /// A call that publishes: it makes the claims map only on a host whose
    /// `mark` says none was ever made.
    pub fn claim_by(&mut self, mark: Claimed) {
        self.claims = Claims::Fresh(mark);
    }

    /// `-restore`'s: it makes the claims map again, and at once when the
    /// host's `mark` says there was one (so that calls may publish again
    /// even when no lease has a publication to restore). A map in place
    /// sets the mark (one made before the mark existed: an upgrade).
    pub fn restoring(nft: Nftables, mark: Claimed) -> Result<Kernel, Failure> {
        let ports = nft.ports(TABLE);
        if mark.is_set()? || ports.has_claims()? {
            mark.set()?;
            ports.prepare()?;
        }
        Ok(Kernel {
            nft,
            claims: Claims::Restore(mark),
            dumped: RefCell::new(None),
        })
    }

    /// Whether a publication of `m` may make the missing claims map (the
    /// mark set first), or is refused until `-restore`.
    fn may_make_claims(&self, m: &Mapping) -> Result<(), Failure> {
        match &self.claims {
            Claims::Restore(mark) => mark.set(),
            Claims::Fresh(mark) if !mark.is_set()? => mark.set(),
            _ => Err(Failure::refused(format!(
                "-publish {m}: the host's published ports are gone (its firewall ruleset was flushed or reloaded) \
                 and not restored yet; nothing was changed: an administrator must run `netsetgo -restore` first"
            ))),
        }
    }
}

impl Filters for Kernel {
    fn masquerade(&self, network: &Network) -> Result<(), Failure> {
        for subnet in network.bridge_addresses() {
            self.nft
                .masquerade(TABLE)
                .add(&network.bridge, subnet)
                .execute()?;
        }
        Ok(())
    }

    fn hairpin(&self, network: &Network) -> Result<(), Failure> {
        let gateway = network.gateway;
        let subnet = Ipv4Network::new(gateway.network(), gateway.prefix()).expect("valid prefix");
        self.nft
            .ports(TABLE)
            .hairpin(&network.bridge, subnet)
            .execute()?;
        Ok(())
    }

    fn isolate(&self, network: &Network) -> Result<(), Failure> {
        self.nft.isolate(TABLE, &network.bridge)?;
        Ok(())
    }

    fn isolated(&self, network: &Network) -> Result<bool, Failure> {
        Ok(self.nft.isolated(TABLE, &network.bridge)?)
    }

    fn publish(&self, p: &Published) -> Result<(), Failure> {
        // The CNI plugin publishes the host's ports too, in a table of its
        // own with the same dstnat priority: a port it claims is taken
        // (the older table's chain would translate first, and a user could
        // take an engine's clients).
        let (protocol, port) = (p.kernel.protocol, p.kernel.host_port);
        if self
            .nft
            .ports(CNI_TABLE)
            .claimant(protocol, port)?
            .is_some()
        {
            return Err(already_published(&p.mapping));
        }
        // Into the existing claims only: a missing map is made only when
        // the mark allows (decided in the generation the map is made in,
        // and a flush after it makes the claim's add fail: `ENOENT`).
        let ports = self.nft.ports(TABLE);
        let made = match ports.publish(&p.kernel).into_existing_claims().execute() {
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                self.may_make_claims(&p.mapping)?;
                ports.publish(&p.kernel).execute()
            }
            made => made,
        };
        match made {
            Err(e) if e.errno() == Some(libc::EEXIST) => Err(already_published(&p.mapping)),
            other => Ok(other?),
        }
    }

    fn unpublish(&self, p: &Published) -> Result<bool, Failure> {
        Ok(self.nft.ports(TABLE).unpublish(&p.kernel).execute()?)
    }

    fn published(&self, p: &Published) -> Result<bool, Failure> {
        Ok(self.nft.ports(TABLE).present(&p.kernel)?)
    }

    fn guard(&self, port: &GuardedPort) -> Result<(), Failure> {
        Ok(self.nft.guard(TABLE).allow(port).execute()?)
    }

    fn restore_guard(&self, port: &GuardedPort) -> Result<(), Failure> {
        Ok(self.nft.guard(TABLE).allow(port).restore()?)
    }

    fn unguard(&self, port: &GuardedPort) -> Result<bool, Failure> {
        Ok(self.nft.guard(TABLE).forget(port).execute()?)
    }

    fn guard_missing(&self, port: &GuardedPort) -> Result<Vec<String>, Failure> {
        Ok(self.nft.guard(TABLE).missing(port)?)
    }

    fn guard_indexes(&self) -> Result<Vec<u32>, Failure> {
        let dumped = self.nft.guard(TABLE).elements()?;
        let indexes = dumped.indexes();
        self.dumped.replace(Some(dumped));
        Ok(indexes)
    }

    fn prune_guard(&self, live: &[u32]) -> Result<usize, Failure> {
        match self.dumped.take() {
            Some(dumped) => Ok(self.nft.guard(TABLE).prune(dumped, live)?),
            None => Ok(0),
        }
    }

    fn legacy_guard(&self) -> Result<Vec<String>, Failure> {
        Ok(self.nft.guard(TABLE).legacy()?)
    }

    fn drop_legacy_guard(&self) -> Result<Vec<String>, Failure> {
        Ok(self.nft.guard(TABLE).drop_legacy()?)
    }
}

/// The refusal of a host port someone has published already.
pub fn already_published(m: &Mapping) -> Failure {
    Failure::refused(format!(
        "-publish {m}: {} port {} is already published; choose another host port",
        m.protocol.name(),
        m.host_port
    ))
}

/// Host ports and guarded ports kept in tables, for unit tests: every
/// change is recorded in `log` as one line (`publish tcp:8080:80 for
/// 10.10.10.2`, `guard veth0a0a0a02`), and `fail` makes the operation whose
/// line starts with it fail once.
#[cfg(test)]
pub mod fake {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    use std::rc::Rc;

    use netplumb::Protocol;

    use super::*;

    /// The filters in memory, for unit tests.
    #[derive(Default)]
    pub struct FakeFilters {
        /// (protocol, host port) -> owner.
        pub claims: RefCell<BTreeMap<(u8, u16), Ipv4Addr>>,
        /// Guarded host ends.
        pub guarded: RefCell<Vec<String>>,
        /// The interface indexes the guard holds elements of.
        pub indexes: RefCell<Vec<u32>>,
        /// Legacy netdev guard tables.
        pub legacy: RefCell<Vec<String>>,
        /// Bridges with their isolation rule.
        pub isolated: RefCell<Vec<String>>,
        /// May be shared with a `FakeLinks`, to see the order of both.
        pub log: Rc<RefCell<Vec<String>>>,
        /// Makes the operation whose log line starts with this fail, once.
        pub fail: RefCell<Option<String>>,
    }

    fn key(m: &Mapping) -> (u8, u16) {
        let p = match m.protocol {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        };
        (p, m.host_port)
    }

    impl FakeFilters {
        fn act(&self, line: String) -> Result<(), Failure> {
            let mut fail = self.fail.borrow_mut();
            if fail.as_deref().is_some_and(|f| line.starts_with(f)) {
                *fail = None;
                return Err(Failure::internal(format!("injected: {line}")));
            }
            self.log.borrow_mut().push(line);
            Ok(())
        }

        /// The log's lines that start with `prefix`.
        pub fn lines(&self, prefix: &str) -> Vec<String> {
            self.log
                .borrow()
                .iter()
                .filter(|l| l.starts_with(prefix))
                .cloned()
                .collect()
        }
    }

    impl Filters for FakeFilters {
        fn masquerade(&self, network: &Network) -> Result<(), Failure> {
            self.act(format!("masquerade {}", network.bridge))
        }
        fn hairpin(&self, network: &Network) -> Result<(), Failure> {
            self.act(format!("hairpin {}", network.bridge))
        }
        fn isolate(&self, network: &Network) -> Result<(), Failure> {
            self.act(format!("isolate {}", network.bridge))?;
            let mut isolated = self.isolated.borrow_mut();
            if !isolated.contains(&network.bridge) {
                isolated.push(network.bridge.clone());
            }
            Ok(())
        }
        fn isolated(&self, network: &Network) -> Result<bool, Failure> {
            Ok(self.isolated.borrow().contains(&network.bridge))
        }
        fn publish(&self, p: &Published) -> Result<(), Failure> {
            let (m, owner) = (&p.mapping, p.kernel.owner);
            if self.claims.borrow().contains_key(&key(m)) {
                return Err(already_published(m));
            }
            self.act(format!("publish {m} for {owner}"))?;
            self.claims.borrow_mut().insert(key(m), owner);
            Ok(())
        }
        fn unpublish(&self, p: &Published) -> Result<bool, Failure> {
            let (m, owner) = (&p.mapping, p.kernel.owner);
            if self.claims.borrow().get(&key(m)) != Some(&owner) {
                return Ok(false);
            }
            self.act(format!("unpublish {m} for {owner}"))?;
            self.claims.borrow_mut().remove(&key(m));
            Ok(true)
        }
        fn published(&self, p: &Published) -> Result<bool, Failure> {
            Ok(self.claims.borrow().get(&key(&p.mapping)) == Some(&p.kernel.owner))
        }
        fn guard(&self, port: &GuardedPort) -> Result<(), Failure> {
            self.act(format!("guard {}", port.ifname))?;
            self.guarded.borrow_mut().push(port.ifname.clone());
            self.indexes.borrow_mut().push(port.ifindex);
            Ok(())
        }
        fn restore_guard(&self, port: &GuardedPort) -> Result<(), Failure> {
            self.guard(port)
        }
        fn unguard(&self, port: &GuardedPort) -> Result<bool, Failure> {
            let present = self.guarded.borrow().contains(&port.ifname);
            self.act(format!("unguard {}", port.ifname))?;
            self.guarded.borrow_mut().retain(|g| g != &port.ifname);
            Ok(present)
        }
        fn guard_missing(&self, port: &GuardedPort) -> Result<Vec<String>, Failure> {
            let guarded = self.guarded.borrow().contains(&port.ifname);
            Ok(if guarded {
                Vec::new()
            } else {
                vec![format!("element bridge guard ports {}", port.ifname)]
            })
        }
        fn guard_indexes(&self) -> Result<Vec<u32>, Failure> {
            Ok(self.indexes.borrow().clone())
        }
        fn prune_guard(&self, live: &[u32]) -> Result<usize, Failure> {
            let mut indexes = self.indexes.borrow_mut();
            let before = indexes.len();
            indexes.retain(|i| live.contains(i));
            if indexes.len() < before {
                self.act(format!("prune {}", before - indexes.len()))?;
            }
            Ok(before - indexes.len())
        }
        fn legacy_guard(&self) -> Result<Vec<String>, Failure> {
            Ok(self.legacy.borrow().clone())
        }
        fn drop_legacy_guard(&self) -> Result<Vec<String>, Failure> {
            self.act("drop legacy guard".into())?;
            Ok(std::mem::take(&mut *self.legacy.borrow_mut()))
        }
    }
}
