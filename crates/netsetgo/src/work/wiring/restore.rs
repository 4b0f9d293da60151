//! `-restore`, root's: on each network with state, the dead leases
//! collected, each live lease's publications brought in line with its
//! owner's grants now, and what the firewall lost of each live lease's
//! plan re-created.

use netplumb::{BridgePort, Link};

use crate::error::{Failure, Kind};
use crate::filters::Filters;
use crate::leases::{Lease, Ledger, Liveness, Store};
use crate::links::Links;
use crate::output::{GuardUpkeep, Restored};
use crate::plan::{Plan, Published};
use crate::policy::{Network, Ports};
use crate::ports::Mapping;
use crate::request::{Known, Request};

use super::{Session, Sockets};

/// A live lease's plan and those of its publications its owner's grants
/// still cover.
type Granted = (Plan, Vec<Published>);

impl<L: Links, F: Filters> Session<'_, L, F> {
    /// `-restore` on this session's network, under its lock (root's call):
    /// leases whose interface is gone are collected as garbage collection
    /// does; each live lease's publications are brought in line with what
    /// `grants` (the ports its owner's grants cover now, `None`: no bound)
    /// still covers, and all of them go when the network left the policy;
    /// then what the firewall lost is re-created: masquerading, the
    /// isolation rule (isolate=yes), the hairpin, each live lease's guard and publications (never on a
    /// network that left the policy, whose live leases keep their lease
    /// and get their guard back until their interface goes). Each object is
    /// looked up before it is added, so a second run changes nothing; one
    /// look-up per object, no dump. What fails is reported in `failed`
    /// after the rest was tried.
    pub async fn restore(
        &self,
        grants: &mut dyn FnMut(u32) -> Result<Covered, Failure>,
    ) -> Result<Restored, Failure> {
        let mut ledger = self.store.lock()?;
        let network = &self.request.network;
        let mut done = Restored {
            network: network.name.clone(),
            bridge: network.bridge.clone(),
            retired: self.request.known == Known::Recorded,
            ..Restored::default()
        };
        let live = self.collect_dead(&mut ledger, &mut done).await?;
        let mut publishing = Vec::with_capacity(live.len());
        for lease in live {
            publishing.push(self.reconcile(&mut ledger, &lease, grants, &mut done)?);
        }
        self.pin_ports(&publishing, &mut done).await;
        self.recreate(&publishing, &mut done);
        Ok(done)
    }

    /// Gives each live guarded lease's bridge port, if it is a port of the
    /// network's bridge, the guard's flags and its pinned MAC where it
    /// lacks them (a look-up of the port and one of the MAC's entries per
    /// lease): a port made before the bridge guard has no group forwarding
    /// mask, without which link-local frames would pass no bridge hook once
    /// the netdev guard is gone (before `restore_all` deletes it), and one
    /// root reset or took off the bridge and put back has the kernel's
    /// defaults (review r20, F1 and F3). A host end off its bridge is left
    /// to `-check`, which names it.
    async fn pin_ports(&self, publishing: &[Granted], done: &mut Restored) {
        let host = &self.sockets.host;
        let bridge = match host.link_by_name(&self.request.network.bridge).await {
            Ok(bridge) => bridge.map(|b| b.index),
            Err(e) => return done.failed.push(format!("the bridge: {e}")),
        };
        for (plan, _) in publishing {
            let Some(port) = &plan.guard else { continue };
            let want = BridgePort::new(plan.isolated, plan.learning);
            let link = host.link_by_index(port.ifindex).await;
            let pinned = match link {
                Ok(Some(link)) if link.master.is_some() && link.master == bridge => {
                    self.pin_port(&link, &want, plan.mac).await
                }
                Ok(_) => Ok(0),
                Err(e) => Err(e.into()),
            };
            match pinned {
                Ok(n) => done.bridge_ports_restored += n,
                Err(e) => done
                    .failed
                    .push(format!("the bridge port of {}: {e}", plan.host_name)),
            }
        }
    }

    /// Sets `link`'s port flags to `want` and pins `mac` to it, each only
    /// where it differs; 1 when something was set. An isolated port stays
    /// isolated: a network that left the policy is restored as retired,
    /// whose isolation is not recorded (review r20b, B), and `-restore`
    /// only ever adds protection.
    async fn pin_port(
        &self,
        link: &Link,
        want: &BridgePort,
        mac: [u8; 6],
    ) -> Result<usize, Failure> {
        let host = &self.sockets.host;
        let mut set = 0;
        let mut want = *want;
        want.isolated |= link.port.is_some_and(|p| p.isolated);
        if link.port != Some(want) {
            host.set_bridge_port(link.index, &want).await?;
            set = 1;
        }
        let bridge = link.master.unwrap_or_default();
        let entries = host.fdb_entries(bridge, mac).await?;
        if !entries.iter().any(|e| e.port == link.index && e.is_static) {
            host.pin_mac(link.index, mac).await?;
            set = 1;
        }
        Ok(set)
    }

    /// Collects the leases whose interface is gone; the live ones.
    async fn collect_dead(
        &self,
        ledger: &mut Ledger<'_>,
        done: &mut Restored,
    ) -> Result<Vec<Lease>, Failure> {
        let host = &self.sockets.host;
        let bridge = host.link_by_name(&self.request.network.bridge).await?;
        let bridge = bridge.map_or(0, |b| b.index);
        let mut live = Vec::new();
        for lease in ledger.all()? {
            if lease.liveness(host.index_of(&lease.ifname)?) == Liveness::Live {
                live.push(lease);
            } else if let Err(e) = self.collect(ledger, bridge, vec![lease.clone()]).await {
                done.failed
                    .push(format!("collecting lease {}: {e}", lease.address));
            } else {
                done.collected += 1;
            }
        }
        Ok(live)
    }

    /// A live lease's plan, its publications that `grants` no longer
    /// covers (all of them on a network that left the policy) removed,
    /// then its ports record; with the publications it keeps.
    fn reconcile(
        &self,
        ledger: &mut Ledger<'_>,
        lease: &Lease,
        grants: &mut dyn FnMut(u32) -> Result<Covered, Failure>,
        done: &mut Restored,
    ) -> Result<Granted, Failure> {
        let plan = Plan::of_lease(self.request, lease, &ledger.ports_of(lease.address)?);
        let covered = match self.request.known {
            Known::Recorded => Some(Vec::new()),
            // Grants that cannot be judged revoke nothing (reported).
            Known::Defined => grants(lease.uid).unwrap_or_else(|e| {
                let uid = lease.uid;
                done.failed.push(format!("the grants of uid {uid}: {e}"));
                None
            }),
        };
        let (granted, revoked): (Vec<Published>, Vec<Published>) =
            plan.publications.iter().cloned().partition(|p| {
                let m = &p.mapping;
                covered
                    .as_ref()
                    .is_none_or(|g| g.iter().any(|g| g.contains(m.protocol, m.host_port)))
            });
        if !revoked.is_empty() {
            let mut kept: Vec<Mapping> = granted.iter().map(|p| p.mapping).collect();
            for p in revoked {
                let m = p.mapping;
                match self.sockets.filters.unpublish(&p) {
                    Ok(_) => done.revoked.push(format!("{m} of {}", lease.address)),
                    Err(e) => {
                        let of = lease.address;
                        done.failed
                            .push(format!("removing publication {m} of {of}: {e}"));
                        kept.push(m);
                    }
                }
            }
            // Unpublished first, then the record (as a teardown does).
            ledger.set_ports(lease.address, &kept)?;
        }
        Ok((plan, granted))
    }

    /// Re-creates what the firewall lost: masquerading (not on a network
    /// that left the policy), the isolation rule (isolate=yes), the
    /// hairpin, and each live lease's guard and granted publications.
    fn recreate(&self, publishing: &[Granted], done: &mut Restored) {
        let network = &self.request.network;
        let filters = &self.sockets.filters;
        let mut fail = |what: String, e: Failure| done.failed.push(format!("{what}: {e}"));
        if network.nat && self.request.known == Known::Defined {
            match filters.masquerade(network) {
                Ok(()) => done.masquerade = true,
                Err(e) => fail("masquerading".into(), e),
            }
        }
        if network.isolate {
            match filters.isolate(network) {
                Ok(()) => done.isolation = true,
                Err(e) => fail("the isolation rule".into(), e),
            }
        }
        if publishing.iter().any(|(_, granted)| !granted.is_empty()) {
            match filters.hairpin(network) {
                Ok(()) => done.hairpin = true,
                Err(e) => fail("the hairpin".into(), e),
            }
        }
        for (plan, granted) in publishing {
            done.leases += 1;
            if let Some(port) = &plan.guard {
                let guarded = match filters.guard_missing(port) {
                    Ok(missing) if missing.is_empty() => Ok(false),
                    Ok(_) => filters.restore_guard(port).map(|()| true),
                    Err(e) => Err(e),
                };
                match guarded {
                    Ok(restored) => {
                        done.guarded += 1;
                        done.guards_restored += usize::from(restored);
                    }
                    Err(e) => fail(format!("the guard of {}", plan.host_name), e),
                }
            }
            for p in granted {
                match self.republish(p) {
                    Ok(restored) => {
                        done.publications += 1;
                        done.publications_restored += usize::from(restored);
                    }
                    Err(e) => fail(format!("publication {} of {}", p.mapping, plan.address), e),
                }
            }
        }
    }

    /// Publishes `p` for its owner unless it is in place; true if it was
    /// not. Whatever is left of it (its claim without all of its map
    /// elements) is removed first, so that the claim's exclusive add
    /// succeeds; another owner's claim is left alone and refuses it.
    fn republish(&self, p: &Published) -> Result<bool, Failure> {
        if self.sockets.filters.published(p)? {
            return Ok(false);
        }
        self.sockets.filters.unpublish(p)?;
        self.sockets.filters.publish(p)?;
        Ok(true)
    }
}

/// The host ports a lease owner's grants cover on a network now; `None`:
/// no grant binds it (root).
pub type Covered = Option<Vec<Ports>>;

/// What `-restore` asks the policy: for a lease owner's uid and a network,
/// what its grants cover.
pub type Grants<'a> = dyn Fn(u32, &Network) -> Result<Covered, Failure> + 'a;

/// One network `-restore` works on: what it restores by (from the policy,
/// or as its state recorded it: [`Known::Recorded`]) and its state, or
/// why that could not be opened.
pub struct Restorable {
    /// The network's request, as `-restore` judges it.
    pub request: Request,
    /// Its state, or why it could not be opened.
    pub store: Result<Store, Failure>,
}

/// How long `-restore` keeps coming back to a network whose lock another
/// call holds: no new attempt starts after this, and one attempt waits
/// 10 s for the lock at the most, so `-restore` gives a busy network up
/// after about a minute.
const RESTORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(50);

/// `netsetgo -restore`: [`Session::restore`] on each network, one after the
/// other, each under its own lock, as root; a network that fails is
/// reported as such and the others are restored all the same. A network
/// whose lock stayed busy (a caller may freeze its helper while it holds
/// it) is tried again after the others, round after round, until
/// `RESTORE_PATIENCE` has passed: a firewall reload must not leave it
/// unguarded for good (security.md 20). `grants` says which ports a lease
/// owner's grants cover on a network now (asked once per owner and
/// network and attempt). Then the guard as a whole (`guard_upkeep`).
pub async fn restore_all<L: Links, F: Filters>(
    mut host: L,
    filters: &F,
    networks: &[Restorable],
    grants: &Grants<'_>,
) -> (Vec<Restored>, GuardUpkeep) {
    let started = std::time::Instant::now();
    let mut out = vec![None; networks.len()];
    let mut busy: Vec<usize> = (0..networks.len()).collect();
    let mut round = 0;
    while !busy.is_empty() && (round == 0 || started.elapsed() < RESTORE_PATIENCE) {
        round += 1;
        for i in std::mem::take(&mut busy) {
            if round > 1 && started.elapsed() >= RESTORE_PATIENCE {
                busy.push(i);
                continue;
            }
            let (back, done) = restore_one(host, filters, &networks[i], grants).await;
            host = back;
            if matches!(&done, Err(e) if e.kind == Kind::Unavailable) {
                busy.push(i);
            }
            out[i] = Some(done);
        }
    }
    let waited = started.elapsed().as_secs();
    let out = out.into_iter().zip(networks).enumerate();
    let restored: Vec<Restored> = out
        .filter_map(|(i, (done, Restorable { request, .. }))| {
            Some(done?.unwrap_or_else(|e| {
                let why = match busy.contains(&i) {
                    true => format!("{e} (still busy after {waited} s of tries)"),
                    false => e.to_string(),
                };
                Restored {
                    network: request.network.name.clone(),
                    bridge: request.network.bridge.clone(),
                    retired: request.known == Known::Recorded,
                    failed: vec![why],
                    not_restored: true,
                    ..Restored::default()
                }
            }))
        })
        .collect();
    let upkeep = guard_upkeep(&host, filters, &restored).await;
    (restored, upkeep)
}

/// After every network, the guard as a whole: the netdev guard tables of
/// the version before the bridge guard deleted, only once every network
/// was restored whole (then every live lease has its bridge guard and its
/// port the group forwarding mask, so no port is unguarded at any moment;
/// otherwise they stay, named); then the elements of devices that are gone
/// pruned (the sets dumped first, then each index looked up: a device
/// guarded meanwhile is found).
async fn guard_upkeep<L: Links, F: Filters>(
    host: &L,
    filters: &F,
    networks: &[Restored],
) -> GuardUpkeep {
    let mut upkeep = GuardUpkeep::default();
    let whole = networks
        .iter()
        .all(|n| n.failed.is_empty() && !n.not_restored);
    match filters.legacy_guard() {
        Ok(legacy) if legacy.is_empty() => {}
        Ok(_) if whole => match filters.drop_legacy_guard() {
            Ok(dropped) => upkeep.legacy_removed = dropped,
            Err(e) => upkeep
                .failed
                .push(format!("deleting the netdev guard: {e}")),
        },
        Ok(legacy) => upkeep.legacy_kept = legacy,
        Err(e) => upkeep
            .failed
            .push(format!("looking up the netdev guard: {e}")),
    }
    let indexes = match filters.guard_indexes() {
        Ok(indexes) => indexes,
        Err(e) => {
            upkeep
                .failed
                .push(format!("reading the guard's elements: {e}"));
            return upkeep;
        }
    };
    let mut live = Vec::with_capacity(indexes.len());
    for index in indexes {
        match host.link_by_index(index).await {
            Ok(None) => {}
            Ok(Some(_)) => live.push(index),
            Err(e) => {
                // Not known to be gone: kept.
                live.push(index);
                upkeep.failed.push(format!("looking up link #{index}: {e}"));
            }
        }
    }
    match filters.prune_guard(&live) {
        Ok(n) => upkeep.pruned = n,
        Err(e) => upkeep.failed.push(format!("pruning the guard: {e}")),
    }
    upkeep
}

/// One attempt of [`restore_all`] on one network; `host` is handed back.
/// An error: the network's restore stopped before it re-created anything
/// (`Kind::Unavailable`: its lock stayed busy, the only such error a
/// restore has).
async fn restore_one<L: Links, F: Filters>(
    host: L,
    filters: &F,
    Restorable { request, store }: &Restorable,
    grants: &Grants<'_>,
) -> (L, Result<Restored, Failure>) {
    let store = match store {
        Ok(store) => store,
        Err(e) => return (host, Err(e.clone())),
    };
    let network = &request.network;
    let sockets = Sockets {
        host,
        inside: None,
        filters,
        dhcp: None,
    };
    let session = Session::new(sockets, None, store, request, 0);
    let mut known = std::collections::HashMap::new();
    let mut ports_of = |uid: u32| -> Result<Covered, Failure> {
        if let Some(ports) = known.get(&uid) {
            return Ok(Clone::clone(ports));
        }
        let ports = grants(uid, network)?;
        known.insert(uid, ports.clone());
        Ok(ports)
    };
    let done = session.restore(&mut ports_of).await;
    (session.sockets.host, done)
}
