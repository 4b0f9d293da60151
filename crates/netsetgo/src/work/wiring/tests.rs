//! The wiring's decisions against a fake namespace pair and a state store
//! in a temporary directory: no root, no kernel.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use netplumb::NsId;

use netplumb::{Learning, NetNs};

use super::*;
use crate::cli::Nic;
use crate::error::{Failure, Kind};
use crate::filters::fake::FakeFilters;
use crate::leases::Lease;
use crate::links::fake::{link, FakeLinks};
use crate::output::Restored;
use crate::output::{Outcome, Wired};
use crate::policy::Network;
use crate::policy::Ports;
use crate::request::{Known, Request};

const A: u32 = 1000;
const B: u32 = 1001;
const TARGET: i32 = 7;

/// The fakes' sockets, with no DHCP responder.
fn sockets<F: Filters>(
    host: FakeLinks,
    inside: Option<FakeLinks>,
    filters: F,
) -> Sockets<FakeLinks, F> {
    Sockets {
        host,
        inside,
        filters,
        dhcp: None,
    }
}

/// A state directory of its own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "netsetgo-unit-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    fn store(&self, uid: u32) -> Store {
        let owner = nix::unistd::geteuid().as_raw();
        let ns = NsId { dev: 0, ino: 1 };
        let gateway = "10.10.10.1/24".parse().unwrap();
        Store::open_under(&self.0, owner, &ns, "brg0", gateway, uid).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn request(quota: Option<u32>, address: Option<&str>) -> Request {
    Request {
        network: Network::example(None),
        quota,
        address: address.map(|a| a.parse().unwrap()),
        prefix: "veth".into(),
        nic: None,
        publish: Vec::new(),
        unpublish: Vec::new(),
        known: Known::Defined,
    }
}

/// A host with brg0 (index 1) and a container, as seen by the session.
fn host() -> FakeLinks {
    let host = FakeLinks {
        target_nsid: Some(TARGET),
        ..FakeLinks::default()
    };
    host.add(link(1, "brg0", Some("bridge")));
    host
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Wires one container of `uid` on `host`; the fake's pair stays in
/// `host` (the host end) and a fresh inside.
fn wire(
    host: FakeLinks,
    store: &Store,
    req: &Request,
    uid: u32,
) -> (FakeLinks, Result<Wired, Failure>) {
    let target = NetNs::current().unwrap();
    let session = Session::new(
        sockets(host, Some(FakeLinks::default()), FakeFilters::default()),
        Some(&target),
        store,
        req,
        uid,
    );
    let result = block_on(session.create(None));
    (session.sockets.host, result)
}

fn leases(store: &Store) -> Vec<Lease> {
    store.lock().unwrap().all().unwrap()
}

#[test]
fn quota_at_the_limit_counts_only_live_interfaces_of_live_containers() {
    let dir = Scratch::new("quota");
    let store = dir.store(A);
    let req = request(Some(2), None);
    let (host, first) = wire(host(), &store, &req, A);
    let (host, second) = wire(host, &store, &req, A);
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.host_interface, "veth0a0a0a02");
    assert_eq!(second.host_interface, "veth0a0a0a03");
    let (host, third) = wire(host, &store, &req, A);
    let refused = third.unwrap_err();
    assert_eq!(refused.kind, Kind::Refused);
    assert!(refused.message.contains("2 of your 2"), "{refused}");

    // The first container's namespace has died; its pair is still
    // there: it does not count, and it is deleted with its lease.
    let first_index = host.index_of("veth0a0a0a02").unwrap().unwrap();
    host.links
        .borrow_mut()
        .get_mut(&first_index)
        .unwrap()
        .link_netnsid = Some(-1);
    let (host, fourth) = wire(host, &store, &req, A);
    assert_eq!(fourth.unwrap().host_interface, "veth0a0a0a02");
    assert!(host
        .log
        .borrow()
        .contains(&format!("delete #{first_index}")));
    assert_eq!(leases(&store).len(), 2);
}

#[test]
fn garbage_collection_deletes_only_our_veth_on_our_bridge() {
    let dir = Scratch::new("gc");
    let store = dir.store(A);
    let host = host();
    // Calls that died half way: pending leases whose names exist, once
    // as our veth on brg0, once as some other device, once as a veth on
    // another bridge.
    let mut ours = link(10, "veth0a0a0a02", Some("veth"));
    ours.master = Some(1);
    host.add(ours);
    host.add(link(11, "veth0a0a0a03", Some("dummy")));
    host.add(link(12, "other", Some("bridge")));
    let mut elsewhere = link(13, "veth0a0a0a04", Some("veth"));
    elsewhere.master = Some(12);
    host.add(elsewhere);
    {
        let mut ledger = store.lock().unwrap();
        for last in [2u8, 3, 4] {
            ledger
                .reserve(&Lease {
                    address: std::net::Ipv4Addr::new(10, 10, 10, last),
                    uid: B,
                    ifindex: 0,
                    ifname: format!("veth0a0a0a0{last}"),
                    container: None,
                })
                .unwrap();
        }
    }
    let (host, wired) = wire(host, &store, &request(None, None), A);
    let log = host.log.borrow();
    assert!(log.contains(&"delete #10".to_string()), "{log:?}");
    assert!(
        !log.iter().any(|l| l == "delete #11" || l == "delete #13"),
        "{log:?}"
    );
    // Every pending lease was freed, and the first address reused.
    assert_eq!(wired.unwrap().host_interface, "veth0a0a0a02");
    let held: Vec<u32> = leases(&store).iter().map(|l| l.uid).collect();
    assert_eq!(held, vec![A]);
}

/// The reaper's collection: only the lease that still names its host end
/// (uid, index and name), and only once that interface is gone; a lease
/// ended and taken again by another container is left alone.
#[test]
fn reap_frees_only_its_own_lease_once_its_interface_is_gone() {
    let dir = Scratch::new("reap");
    let store = dir.store(A);
    let req = request(None, None);
    let (host, first) = wire(host(), &store, &req, A);
    let (host, second) = wire(host, &store, &req, A);
    let (first, second) = (first.unwrap(), second.unwrap());
    let address = |w: &Wired| match w.addresses[0].ip() {
        std::net::IpAddr::V4(v4) => v4,
        other => panic!("{other}"),
    };
    let reap = |host: FakeLinks, w: &Wired, ifindex: u32, uid: u32| {
        let session = Session::new(
            sockets(host, None, FakeFilters::default()),
            None,
            &store,
            &req,
            uid,
        );
        let reaped = block_on(session.reap(address(w), ifindex, &w.host_interface));
        (session.sockets.host, reaped.unwrap())
    };
    // Alive: nothing is freed.
    let (host, reaped) = reap(host, &first, first.host_index, A);
    assert!(reaped.is_none(), "{reaped:?}");
    assert_eq!(leases(&store).len(), 2);
    // Gone, but the caller's record names another index, or another
    // uid asks: nothing is freed.
    host.links.borrow_mut().remove(&first.host_index);
    let (host, reaped) = reap(host, &first, first.host_index + 100, A);
    assert!(reaped.is_none(), "{reaped:?}");
    let (host, reaped) = reap(host, &first, first.host_index, B);
    assert!(reaped.is_none(), "{reaped:?}");
    assert_eq!(leases(&store).len(), 2);
    // Gone, and the lease names it: freed, the other one kept.
    let (host, reaped) = reap(host, &first, first.host_index, A);
    let Some(Outcome::Removed {
        host_interfaces, ..
    }) = reaped
    else {
        panic!("not freed: {reaped:?}");
    };
    assert_eq!(host_interfaces, std::slice::from_ref(&first.host_interface));
    let kept: Vec<String> = leases(&store).into_iter().map(|l| l.ifname).collect();
    assert_eq!(kept, std::slice::from_ref(&second.host_interface));
    // Reaped again (its lease is gone): nothing.
    let (_, reaped) = reap(host, &first, first.host_index, A);
    assert!(reaped.is_none(), "{reaped:?}");
    assert_eq!(leases(&store).len(), 1);
}

#[test]
fn a_bridge_the_cni_plugin_manages_is_refused_and_left_as_it_is() {
    let dir = Scratch::new("cnibridge");
    let store = dir.store(A);
    let host = host();
    host.links.borrow_mut().get_mut(&1).unwrap().alias = Some("netplumb-cni".into());
    let before = host.links.borrow().clone();
    let (host, wired) = wire(host, &store, &request(None, None), A);
    let refusal = wired.unwrap_err().to_string();
    assert!(
        refusal.contains("brg0") && refusal.contains("CNI plugin netplumb-bridge"),
        "{refusal}"
    );
    // Nothing was made or changed: no alias, no address, no pair, no lease.
    assert_eq!(*host.log.borrow(), Vec::<String>::new());
    assert_eq!(*host.links.borrow(), before);
    assert!(leases(&store).is_empty());
}

#[test]
fn the_requested_address_if_free_or_held_by_a_dead_lease_else_refused() {
    let dir = Scratch::new("address");
    let store = dir.store(A);
    let (host, wired) = wire(host(), &store, &request(None, Some("10.10.10.9")), A);
    assert_eq!(wired.unwrap().addresses[0].to_string(), "10.10.10.9/24");
    // In use by a live lease: unavailable, nothing made.
    let (host, taken) = wire(host, &store, &request(None, Some("10.10.10.9")), B);
    assert_eq!(taken.unwrap_err().kind, Kind::Unavailable);
    // Its interface gone: the lease is freed and the address given.
    let index = host.index_of("veth0a0a0a09").unwrap().unwrap();
    host.links.borrow_mut().remove(&index);
    let (host, again) = wire(host, &store, &request(None, Some("10.10.10.9")), B);
    assert_eq!(again.unwrap().host_interface, "veth0a0a0a09");
    // Without a request: the first free address of the subnet.
    let (_, first) = wire(host, &store, &request(None, None), A);
    assert_eq!(first.unwrap().host_interface, "veth0a0a0a02");
}

/// A container's links as the fake shows them: `lo`, and `veth1` whose
/// peer is host link `host_index`.
fn container_links(host_index: u32) -> FakeLinks {
    let inside = FakeLinks::default();
    inside.add(link(1, "lo", None));
    let mut peer = link(2, "veth1", Some("veth"));
    peer.link = Some(host_index);
    inside.add(peer);
    inside
}

#[test]
fn delete_and_check_find_only_the_callers_own_interface_from_the_host_side() {
    let dir = Scratch::new("own");
    let store_a = dir.store(A);
    let req = request(None, None);
    let (host, wired) = wire(host(), &store_a, &req, A);
    wired.unwrap();
    let target = NetNs::current().unwrap();
    let host_index = host.index_of("veth0a0a0a02").unwrap().unwrap();
    let inside = container_links(host_index);

    // Another user: refused, nothing deleted.
    let store_b = dir.store(B);
    let session = Session::new(
        sockets(host, Some(inside), FakeFilters::default()),
        Some(&target),
        &store_b,
        &req,
        B,
    );
    let refused = block_on(session.delete()).unwrap_err();
    assert_eq!(refused.kind, Kind::Refused);
    assert!(!session
        .sockets
        .host
        .log
        .borrow()
        .iter()
        .any(|l| l.starts_with("delete")));

    // The owner, but the host end's peer is in another namespace (a
    // forged veth1 inside cannot change that): refused.
    let Sockets { host, inside, .. } = session.sockets;
    host.links
        .borrow_mut()
        .get_mut(&host_index)
        .unwrap()
        .link_netnsid = Some(TARGET + 1);
    let session = Session::new(
        sockets(host, inside, FakeFilters::default()),
        Some(&target),
        &store_a,
        &req,
        A,
    );
    assert_eq!(block_on(session.check()).unwrap_err().kind, Kind::Refused);
    assert_eq!(block_on(session.delete()).unwrap_err().kind, Kind::Refused);

    // The owner's own: -check sees it, -delete deletes that host end.
    let Sockets { host, inside, .. } = session.sockets;
    host.links
        .borrow_mut()
        .get_mut(&host_index)
        .unwrap()
        .link_netnsid = Some(TARGET);
    let session = Session::new(
        sockets(host, inside, FakeFilters::default()),
        Some(&target),
        &store_a,
        &req,
        A,
    );
    let checked = block_on(session.check());
    assert!(
        matches!(&checked, Err(f) if f.kind == Kind::Broken),
        "the fake has no address inside: {checked:?}"
    );
    block_on(session.delete()).unwrap();
    assert!(session
        .sockets
        .host
        .log
        .borrow()
        .contains(&format!("delete #{host_index}")));
    assert!(leases(&store_a).is_empty());
}

#[test]
fn lxc_user_nic_create_leaves_the_peer_unconfigured_and_delete_names_the_host_end() {
    let dir = Scratch::new("nic");
    let store = dir.store(A);
    let mut req = request(None, None);
    let (host, wired) = wire(host(), &store, &req, A);
    assert!(host
        .log
        .borrow()
        .contains(&"attach veth0a0a0a02 peer veth1 addresses 1 gateways 1".to_string()));
    req.nic = Some(Nic::Create {
        ifname: "eth0".into(),
    });
    let (host, nic) = wire(host, &store, &req, A);
    let nic = nic.unwrap();
    assert_eq!((nic.interface.as_str(), nic.addresses.len()), ("eth0", 1));
    assert!(host
        .log
        .borrow()
        .contains(&"attach veth0a0a0a03 peer eth0 addresses 0 gateways 0".to_string()));

    // delete by HOSTIF: only the lease of that name, here the second.
    let target = NetNs::current().unwrap();
    let inside = FakeLinks::default();
    for (index, name) in [(wired.unwrap().index, "veth1"), (nic.index, "eth0")] {
        inside.add(link(index, name, Some("veth")));
    }
    req.nic = Some(Nic::Delete {
        host_ifname: "veth0a0a0a03".into(),
    });
    let session = Session::new(
        sockets(host, Some(inside), FakeFilters::default()),
        Some(&target),
        &store,
        &req,
        A,
    );
    block_on(session.delete()).unwrap();
    let left: Vec<String> = leases(&store).into_iter().map(|l| l.ifname).collect();
    assert_eq!(left, ["veth0a0a0a02"]);
}

#[test]
fn poststop_releases_only_the_callers_leases_of_that_container() {
    let dir = Scratch::new("release");
    let store = dir.store(A);
    let req = request(None, None);
    let target = NetNs::current().unwrap();
    let mut host = host();
    for (uid, id) in [(A, "c1"), (B, "c1"), (A, "c2")] {
        let session = Session::new(
            sockets(host, Some(FakeLinks::default()), FakeFilters::default()),
            Some(&target),
            &store,
            &req,
            uid,
        );
        block_on(session.create(Some(id.into()))).unwrap();
        host = session.sockets.host;
    }
    let session = Session::new(
        sockets(host, None, FakeFilters::default()),
        None,
        &store,
        &req,
        A,
    );
    block_on(session.release("c1")).unwrap();
    let left: Vec<(u32, Option<String>)> = leases(&store)
        .into_iter()
        .map(|l| (l.uid, l.container))
        .collect();
    assert_eq!(left, vec![(B, Some("c1".into())), (A, Some("c2".into()))]);
    let deleted = session
        .sockets
        .host
        .log
        .borrow()
        .iter()
        .filter(|l| l.starts_with("delete"))
        .count();
    assert_eq!(deleted, 1);
}

// ------------------------------------------------ publishing and guard

const LOCAL: &str = "192.0.2.1";

/// A request of network `default` (guard=yes, isolate=yes) publishing
/// `publish`.
fn publishing(publish: &[&str]) -> Request {
    let mut req = request(None, None);
    req.network.isolate = true;
    req.publish = publish
        .iter()
        .map(|p| crate::ports::Mapping::parse(p).unwrap())
        .collect();
    req
}

/// A host whose changes and its filters' share one log, with LOCAL as
/// its address and udp 53 held by a socket.
fn shared() -> (FakeLinks, FakeFilters) {
    let mut host = host();
    host.local = vec![LOCAL.parse().unwrap()];
    host.listening = vec![(netplumb::Protocol::Udp, 53)];
    let filters = FakeFilters::default();
    host.log = filters.log.clone();
    (host, filters)
}

fn wire_with(
    host: FakeLinks,
    filters: &FakeFilters,
    store: &Store,
    req: &Request,
    uid: u32,
    container: Option<&str>,
) -> (FakeLinks, Result<Wired, Failure>) {
    let target = NetNs::current().unwrap();
    let session = Session::new(
        sockets(host, Some(FakeLinks::default()), filters),
        Some(&target),
        store,
        req,
        uid,
    );
    let result = block_on(session.create(container.map(Into::into)));
    (session.sockets.host, result)
}

fn position(log: &[String], prefix: &str) -> usize {
    log.iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {log:?}"))
}

fn ports_of(store: &Store, address: &str) -> Vec<String> {
    let ledger = store.lock().unwrap();
    let ports = ledger.ports_of(address.parse().unwrap()).unwrap();
    ports.iter().map(ToString::to_string).collect()
}

#[test]
fn create_records_publishes_then_guards_the_host_end_before_it_is_up() {
    let dir = Scratch::new("publish");
    let store = dir.store(A);
    let (host, filters) = shared();
    let req = publishing(&["tcp:8080:80", "udp:192.0.2.1:5353:53"]);
    let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
    let wired = wired.unwrap();
    let log = filters.log.borrow().clone();
    let tcp = position(&log, "publish tcp:8080:80 for 10.10.10.2");
    let udp = position(&log, "publish udp:192.0.2.1:5353:53 for 10.10.10.2");
    let attach = position(&log, "attach veth0a0a0a02");
    let guard = position(&log, "guard veth0a0a0a02");
    let up = position(&log, &format!("up #{}", wired.host_index));
    let isolate = position(&log, "isolate brg0");
    let hairpin = position(&log, "hairpin brg0");
    // The isolation rule after the last refusal (a claimed port), before
    // the pair.
    assert!(
        tcp < udp && udp < isolate && isolate < hairpin && hairpin < attach,
        "{log:?}"
    );
    // The pair exists, its host end is still down: guarded, then up.
    assert!(attach < guard && guard < up, "{log:?}");
    assert!(filters.lines("masquerade").is_empty(), "nat=no: {log:?}");
    let mac = [0x02, 0x6e, 10, 10, 10, 2];
    assert_eq!(wired.mac, Some(mac));
    assert_eq!((wired.guard, wired.isolated), (true, true));
    assert_eq!(wired.published, req.publish);
    // Isolated, learning and unknown unicast off, the MAC pinned.
    let port = host.ports.borrow()[&wired.host_index];
    assert_eq!(port, netplumb::BridgePort::new(true, Learning::Pinned(mac)));
    assert_eq!(host.pinned.borrow()[&(1, mac)], wired.host_index);
    assert_eq!(
        ports_of(&store, "10.10.10.2"),
        ["tcp:8080:80", "udp:192.0.2.1:5353:53"]
    );
    // guard=no, isolate=no: neither; nothing published, no hairpin.
    let mut plain = request(None, None);
    plain.network.guard = false;
    let (host, wired) = wire_with(host, &filters, &store, &plain, A, None);
    let wired = wired.unwrap();
    assert_eq!((wired.guard, wired.isolated), (false, false));
    assert!(filters.lines("guard veth0a0a0a03").is_empty());
    assert!(!host.ports.borrow().contains_key(&wired.host_index));
    assert_eq!(host.pinned.borrow().len(), 1);
    assert_eq!(filters.lines("hairpin").len(), 1);
    assert_eq!(filters.lines("isolate").len(), 1, "isolate=no: no rule");
    assert!(ports_of(&store, "10.10.10.3").is_empty());
}

#[test]
fn refused_publications_change_nothing() {
    let dir = Scratch::new("refused");
    let store = dir.store(A);
    for (publish, why) in [
        (
            &["tcp:8080:80", "tcp:198.51.100.1:8081:80"][..],
            "not an address of this host",
        ),
        (&["tcp:8080:80", "udp:53:53"], "listens on udp port 53"),
    ] {
        let (host, filters) = shared();
        let (host, wired) = wire_with(host, &filters, &store, &publishing(publish), A, None);
        let refused = wired.unwrap_err();
        assert_eq!(refused.kind, Kind::Refused);
        assert!(refused.message.contains(why), "{refused}");
        assert!(
            filters.log.borrow().is_empty(),
            "{:?}",
            filters.log.borrow()
        );
        assert!(host.log.borrow().is_empty());
        assert!(leases(&store).is_empty());
    }
    // Published already, by someone else: refused, and what this call
    // did before (the first publication) is undone, before any rule,
    // pair or guard chain was made; the other claim is untouched.
    let (host, filters) = shared();
    let other: std::net::Ipv4Addr = "10.10.10.77".parse().unwrap();
    filters.claims.borrow_mut().insert((6, 8081), other);
    let req = publishing(&["tcp:8080:80", "tcp:8081:80"]);
    let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
    let refused = wired.unwrap_err();
    assert!(refused.message.contains("already published"), "{refused}");
    let log = filters.log.borrow().clone();
    assert!(position(&log, "unpublish tcp:8080:80") > position(&log, "publish tcp:8080:80"));
    for never in ["guard", "hairpin", "masquerade", "isolate", "attach"] {
        assert!(filters.lines(never).is_empty(), "{never}: {log:?}");
    }
    assert_eq!(filters.claims.borrow().len(), 1);
    assert_eq!(filters.claims.borrow()[&(6, 8081)], other);
    assert!(filters.guarded.borrow().is_empty());
    assert!(leases(&store).is_empty());
    assert!(ports_of(&store, "10.10.10.2").is_empty());
    drop(host);
}

#[test]
fn a_call_refused_at_its_quota_makes_no_rule() {
    let dir = Scratch::new("quotarules");
    let store = dir.store(A);
    let (host, filters) = shared();
    let mut req = publishing(&[]);
    req.network.nat = true;
    req.quota = Some(1);
    let (host, first) = wire_with(host, &filters, &store, &req, A, None);
    first.unwrap();
    filters.log.borrow_mut().clear();
    req.publish = vec![crate::ports::Mapping::parse("tcp:8080:80").unwrap()];
    // Another container (the host's id for its namespace is another).
    let mut host = host;
    host.target_nsid = Some(TARGET + 1);
    let (_, second) = wire_with(host, &filters, &store, &req, A, None);
    let refused = second.unwrap_err();
    assert!(refused.message.contains("1 of your 1"), "{refused}");
    let log = filters.log.borrow().clone();
    for never in ["publish", "guard", "masquerade", "isolate", "hairpin"] {
        assert!(filters.lines(never).is_empty(), "{never}: {log:?}");
    }
}

#[test]
fn a_bridge_with_the_most_ports_linux_allows_is_refused_before_anything_is_made() {
    let dir = Scratch::new("fullbridge");
    let store = dir.store(A);
    let (host, filters) = shared();
    let mut req = publishing(&["tcp:8080:80"]);
    req.network.nat = true;
    // One port short of full: the call is served (and makes the last port).
    host.extra_ports.set(crate::policy::BRIDGE_PORTS - 1);
    let (host, first) = wire_with(host, &filters, &store, &req, A, None);
    first.unwrap();
    filters.log.borrow_mut().clear();
    host.log.borrow_mut().clear();
    // Full: refused, naming the bridge, its limit and what to do, before
    // any lease, rule or link. (Without -publish: a -publish here would
    // be one on the container the first call wired.)
    req.publish.clear();
    let (host, second) = wire_with(host, &filters, &store, &req, A, None);
    let refused = second.unwrap_err();
    assert_eq!(refused.kind, Kind::Unavailable, "{refused}");
    for said in ["bridge brg0", "is full", "1023 ports", "until one leaves"] {
        assert!(refused.message.contains(said), "{said}: {refused}");
    }
    assert_eq!(leases(&store).len(), 1);
    assert!(
        filters.log.borrow().is_empty(),
        "{:?}",
        filters.log.borrow()
    );
    assert!(host.log.borrow().is_empty(), "{:?}", host.log.borrow());
}

/// A call that would make no firewall state (nothing published, no NAT,
/// no isolation) does not count the ports: the kernel refuses the pair's
/// creating request (EXFULL) and unregisters both ends, and the call
/// undoes its lease, so it leaves nothing and says why.
#[test]
fn a_full_bridge_is_left_to_the_kernel_when_the_call_makes_no_rule() {
    let dir = Scratch::new("fullkernel");
    let store = dir.store(A);
    let (host, filters) = shared();
    let mut req = publishing(&[]);
    req.network.isolate = false;
    host.extra_ports.set(crate::policy::BRIDGE_PORTS - 1);
    let (host, first) = wire_with(host, &filters, &store, &req, A, None);
    first.unwrap();
    filters.log.borrow_mut().clear();
    let links: Vec<_> = host.links.borrow().keys().copied().collect();
    let guarded = filters.guarded.borrow().clone();
    // Full, for another container of the caller's.
    let mut host = host;
    host.target_nsid = Some(TARGET + 1);
    let (host, second) = wire_with(host, &filters, &store, &req, A, None);
    let refused = second.unwrap_err();
    assert_eq!(refused.kind, Kind::Unavailable, "{refused}");
    for said in ["bridge brg0", "is full", "1023 ports", "until one leaves"] {
        assert!(refused.message.contains(said), "{said}: {refused}");
    }
    // Its lease undone (the teardown forgets a guard chain that was never
    // made); no link, guard or rule.
    assert_eq!(leases(&store).len(), 1);
    assert!(ledger_is_free(&store, "10.10.10.3"));
    let after: Vec<_> = host.links.borrow().keys().copied().collect();
    assert_eq!(after, links);
    assert_eq!(*filters.guarded.borrow(), guarded);
    assert_eq!(*filters.log.borrow(), ["unguard veth0a0a0a03"]);
    // With room for one, the same call is served.
    host.extra_ports.set(crate::policy::BRIDGE_PORTS - 2);
    let (_, third) = wire_with(host, &filters, &store, &req, A, None);
    assert_eq!(third.unwrap().host_interface, "veth0a0a0a03");
}

fn ledger_is_free(store: &Store, address: &str) -> bool {
    store.lock().unwrap().is_free(address.parse().unwrap())
}

#[test]
fn a_failure_at_any_step_undoes_the_earlier_ones() {
    for step in ["guard", "publish tcp", "publish udp", "isolate", "attach"] {
        let dir = Scratch::new("rollback");
        let store = dir.store(A);
        let (host, filters) = shared();
        if step == "attach" {
            host.fail_attach.set(true);
        } else {
            *filters.fail.borrow_mut() = Some(step.into());
        }
        let req = publishing(&["tcp:8080:80", "udp:5353:53"]);
        let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
        assert!(wired.is_err(), "{step}");
        assert!(filters.claims.borrow().is_empty(), "{step}");
        assert!(filters.guarded.borrow().is_empty(), "{step}");
        assert!(leases(&store).is_empty(), "{step}");
        assert!(ports_of(&store, "10.10.10.2").is_empty(), "{step}");
        assert!(host.index_of("veth0a0a0a02").unwrap().is_none(), "{step}");
        // And the next call succeeds.
        let (_, again) = wire_with(host, &filters, &store, &req, A, None);
        assert_eq!(again.unwrap().host_interface, "veth0a0a0a02", "{step}");
    }
}

/// The undo runs in reverse: a call that created the bridge and fails
/// after its lease and publication were made (its guard refused) removes
/// its pair, then its publication, guard and lease, then the bridge, last.
#[test]
fn the_undo_removes_what_a_call_made_in_reverse_the_bridge_last() {
    let dir = Scratch::new("undo");
    let store = dir.store(A);
    let (host, filters) = shared();
    host.links.borrow_mut().clear();
    *filters.fail.borrow_mut() = Some("guard".into());
    let req = publishing(&["tcp:8080:80"]);
    let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
    assert!(wired.is_err());
    let log = filters.log.borrow().clone();
    let created = position(&log, "create bridge brg0");
    let published = position(&log, "publish tcp:8080:80 for 10.10.10.2");
    let pair = position(&log, "delete #2");
    let unpublished = position(&log, "unpublish tcp:8080:80 for 10.10.10.2");
    let unguarded = position(&log, "unguard veth0a0a0a02");
    let bridge = position(&log, "delete #1");
    assert!(created < published && published < pair, "{log:?}");
    assert!(pair < unpublished && unpublished < unguarded, "{log:?}");
    assert_eq!(bridge, log.len() - 1, "{log:?}");
    assert!(host.index_of("brg0").unwrap().is_none());
    assert!(leases(&store).is_empty() && ports_of(&store, "10.10.10.2").is_empty());
}

/// A bridge the call created and could not make ready (its gateway
/// address refused) is deleted again, and nothing else was made.
#[test]
fn a_bridge_the_call_created_and_could_not_ready_is_deleted() {
    let dir = Scratch::new("bridge-undo");
    let store = dir.store(A);
    let (host, filters) = shared();
    host.links.borrow_mut().clear();
    host.fail_address.set(true);
    let req = publishing(&["tcp:8080:80"]);
    let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
    assert!(wired.is_err());
    let log = filters.log.borrow().clone();
    assert!(position(&log, "create bridge brg0") < position(&log, "delete #1"));
    assert!(host.index_of("brg0").unwrap().is_none(), "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("publish")), "{log:?}");
    assert!(leases(&store).is_empty());
    // And the next call succeeds, making the bridge anew.
    let (host, again) = wire_with(host, &filters, &store, &req, A, None);
    assert_eq!(again.unwrap().bridge, "brg0");
    assert!(host.index_of("brg0").unwrap().is_some());
}

#[test]
fn garbage_collection_and_poststop_remove_only_their_leases_publications() {
    let dir = Scratch::new("gcports");
    let store = dir.store(A);
    let (host, filters) = shared();
    let (host, first) = wire_with(
        host,
        &filters,
        &store,
        &publishing(&["tcp:8080:80"]),
        A,
        None,
    );
    let (host, second) = wire_with(
        host,
        &filters,
        &store,
        &publishing(&["tcp:8081:80"]),
        B,
        Some("c1"),
    );
    let (first, _) = (first.unwrap(), second.unwrap());
    // The first container is gone (its pair with it), and its host
    // port was taken over meanwhile: the claim is another's now.
    host.links.borrow_mut().remove(&first.host_index);
    filters
        .claims
        .borrow_mut()
        .insert((6, 8080), "10.10.10.99".parse().unwrap());
    let (host, third) = wire_with(host, &filters, &store, &request(None, None), A, None);
    third.unwrap();
    assert!(filters.lines("unpublish tcp:8080:80").is_empty());
    assert_eq!(filters.lines("unguard veth0a0a0a02").len(), 1);
    // The freed address went to the third container, guarded afresh.
    let log = filters.log.borrow().clone();
    let unguard = position(&log, "unguard veth0a0a0a02");
    assert_eq!(filters.lines("guard veth0a0a0a02").len(), 2);
    assert!(log[unguard + 1..].contains(&"guard veth0a0a0a02".to_string()));
    assert!(ports_of(&store, "10.10.10.2").is_empty());
    assert_eq!(filters.claims.borrow().len(), 2, "8081 and the other 8080");
    // Poststop of B's container: its publication and guard go.
    let req = publishing(&[]);
    let session = Session::new(sockets(host, None, &filters), None, &store, &req, B);
    block_on(session.release("c1")).unwrap();
    assert_eq!(
        filters.lines("unpublish tcp:8081:80 for 10.10.10.3").len(),
        1
    );
    assert_eq!(filters.lines("unguard veth0a0a0a03").len(), 1);
    assert!(ports_of(&store, "10.10.10.3").is_empty());
    let left: Vec<String> = leases(&store).into_iter().map(|l| l.ifname).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], "veth0a0a0a03");
}

#[test]
fn a_lease_whose_publications_cannot_be_removed_is_kept_for_the_next_call() {
    let dir = Scratch::new("keep");
    let store = dir.store(A);
    let (host, filters) = shared();
    let (host, first) = wire_with(
        host,
        &filters,
        &store,
        &publishing(&["tcp:8080:80"]),
        A,
        None,
    );
    let first = first.unwrap();
    host.links.borrow_mut().remove(&first.host_index);
    *filters.fail.borrow_mut() = Some("unpublish".into());
    let (host, failed) = wire_with(host, &filters, &store, &request(None, None), A, None);
    assert!(failed.is_err());
    assert_eq!(
        leases(&store).len(),
        1,
        "the record outlives no publication"
    );
    assert_eq!(ports_of(&store, "10.10.10.2"), ["tcp:8080:80"]);
    let (_, again) = wire_with(host, &filters, &store, &request(None, None), A, None);
    again.unwrap();
    assert!(filters.claims.borrow().is_empty());
    assert!(ports_of(&store, "10.10.10.2").is_empty());
}

#[test]
fn delete_and_check_cover_publications_guard_and_isolation() {
    let dir = Scratch::new("delports");
    let store = dir.store(A);
    let (host, filters) = shared();
    let req = publishing(&["tcp:8080:80"]);
    let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
    let wired = wired.unwrap();
    let target = NetNs::current().unwrap();
    let inside = container_links(wired.host_index);
    let session = Session::new(
        sockets(host, Some(inside), &filters),
        Some(&target),
        &store,
        &req,
        A,
    );
    // Intact as made (the fake container has no addresses; nothing else
    // may be missing).
    let made = block_on(session.check()).map(drop).unwrap_err().message;
    for word in [
        "published",
        "guarded",
        "isolated",
        "isolation",
        "learns",
        "unicast",
        "pinned",
    ] {
        assert!(!made.contains(word), "{made}");
    }
    filters.claims.borrow_mut().clear();
    filters.guarded.borrow_mut().clear();
    filters.isolated.borrow_mut().clear();
    session.sockets.host.ports.borrow_mut().clear();
    session.sockets.host.pinned.borrow_mut().clear();
    let broken = block_on(session.check()).unwrap_err();
    for missing in [
        "publication tcp:8080:80 is missing",
        "the guard of host end veth0a0a0a02 is missing",
        "the isolation rule of bridge brg0 is missing",
        "run `netsetgo -restore` as root",
        "host end veth0a0a0a02 is not isolated",
        "bridge port veth0a0a0a02 learns source MACs",
        "bridge port veth0a0a0a02 gets unknown unicast",
        "MAC 02:6e:0a:0a:0a:02 is not pinned to bridge port veth0a0a0a02",
    ] {
        assert!(broken.message.contains(missing), "{broken}");
    }
    filters
        .claims
        .borrow_mut()
        .insert((6, 8080), "10.10.10.2".parse().unwrap());
    filters.guarded.borrow_mut().push("veth0a0a0a02".into());
    block_on(session.delete()).unwrap();
    assert!(filters.claims.borrow().is_empty());
    assert!(filters.guarded.borrow().is_empty());
    assert!(leases(&store).is_empty());
    assert!(ports_of(&store, "10.10.10.2").is_empty());
}

// ----------------------------------------- publications on a living container

/// A session of `uid` on `store` for `req`, over `host` and the
/// container's links `inside`, sharing `filters`.
fn living<'a>(
    host: FakeLinks,
    inside: FakeLinks,
    filters: &'a FakeFilters,
    target: &'a NetNs,
    store: &'a Store,
    req: &'a Request,
    uid: u32,
) -> Session<'a, FakeLinks, &'a FakeFilters> {
    Session::new(
        sockets(host, Some(inside), filters),
        Some(target),
        store,
        req,
        uid,
    )
}

fn unpublishing(ports: &[&str]) -> Request {
    let mut req = publishing(&[]);
    req.unpublish = ports
        .iter()
        .map(|p| crate::ports::HostPort::parse(p).unwrap())
        .collect();
    req
}

/// What a refusal must leave as it was: the log, the claims, the leases
/// and the ports record of 10.10.10.2.
fn unchanged_by<T: std::fmt::Debug>(
    filters: &FakeFilters,
    store: &Store,
    call: impl FnOnce() -> Result<T, Failure>,
) -> Failure {
    let before = (
        filters.log.borrow().clone(),
        filters.claims.borrow().clone(),
        leases(store),
        ports_of(store, "10.10.10.2"),
    );
    let refused = call().unwrap_err();
    let after = (
        filters.log.borrow().clone(),
        filters.claims.borrow().clone(),
        leases(store),
        ports_of(store, "10.10.10.2"),
    );
    assert_eq!(before, after, "{refused}");
    refused
}

/// The links of a container whose interface (peer of host link
/// `host_index`) its owner renamed to `eth9`: no `veth1` to hint at it.
fn renamed_links(host_index: u32) -> FakeLinks {
    let inside = FakeLinks::default();
    inside.add(link(1, "lo", None));
    let mut peer = link(2, "eth9", Some("veth"));
    peer.link = Some(host_index);
    inside.add(peer);
    inside
}

#[test]
fn publish_on_a_wired_container_adds_to_its_lease_and_makes_nothing_else() {
    let dir = Scratch::new("livepub");
    let store = dir.store(A);
    let (host, filters) = shared();
    let first = publishing(&["tcp:8080:80"]);
    let (host, wired) = wire_with(host, &filters, &store, &first, A, None);
    let index = wired.unwrap().host_index;
    let target = NetNs::current().unwrap();
    let more = publishing(&["tcp:8080:80", "udp:5353:53", "tcp:192.0.2.1:8443:443"]);
    let attached = filters.lines("attach").len();
    let session = living(
        host,
        container_links(index),
        &filters,
        &target,
        &store,
        &more,
        A,
    );
    let added = block_on(session.create(None)).unwrap();
    assert_eq!(added.host_interface, "veth0a0a0a02");
    assert_eq!(added.published, more.publish);
    assert_eq!(filters.lines("attach").len(), attached, "no second pair");
    assert_eq!(
        filters.lines("publish tcp:8080:80").len(),
        1,
        "held: not again"
    );
    for made in [
        "publish udp:5353:53 for 10.10.10.2",
        "publish tcp:192.0.2.1:8443:443 for 10.10.10.2",
    ] {
        assert_eq!(filters.lines(made).len(), 1, "{:?}", filters.log.borrow());
    }
    assert_eq!(leases(&store).len(), 1);
    let all = ["tcp:8080:80", "udp:5353:53", "tcp:192.0.2.1:8443:443"];
    assert_eq!(ports_of(&store, "10.10.10.2"), all);
    // Asked twice: no error, nothing changes.
    let log = filters.log.borrow().len();
    assert_eq!(
        block_on(session.create(None)).unwrap().published,
        more.publish
    );
    assert_eq!(filters.log.borrow().len(), log);
    // One the record holds that the kernel lost (a flushed ruleset, a
    // call killed before it published): asked again, published again.
    filters.claims.borrow_mut().remove(&(17, 5353));
    block_on(session.create(None)).unwrap();
    assert_eq!(filters.lines("publish udp:5353:53").len(), 2);
    assert_eq!(filters.log.borrow().len(), log + 2, "and the hairpin");
    assert_eq!(ports_of(&store, "10.10.10.2"), all);
    assert!(filters.claims.borrow().contains_key(&(17, 5353)));

    // Refusals change nothing: a port another lease publishes (the port
    // asked before it is published and removed again), one the lease
    // holds with another mapping, more than 16 in all. The container
    // renamed its interface: it is found from the host side all the same.
    let other: Ipv4Addr = "10.10.10.77".parse().unwrap();
    filters.claims.borrow_mut().insert((6, 8081), other);
    let mut host = session.sockets.host;
    for (asked, why) in [
        (
            vec!["tcp:8082:80".to_string(), "tcp:8081:80".into()],
            "already published",
        ),
        (vec!["tcp:8080:81".to_string()], "-unpublish tcp:8080 first"),
        (
            (0..14).map(|i| format!("tcp:{}:80", 9000 + i)).collect(),
            "at most 16",
        ),
    ] {
        let asked: Vec<&str> = asked.iter().map(String::as_str).collect();
        let req = publishing(&asked);
        let s = living(
            host,
            renamed_links(index),
            &filters,
            &target,
            &store,
            &req,
            A,
        );
        let claims = filters.claims.borrow().clone();
        let refused = block_on(s.create(None)).unwrap_err();
        assert!(refused.message.contains(why), "{refused}");
        assert_eq!(*filters.claims.borrow(), claims);
        assert_eq!(ports_of(&store, "10.10.10.2"), all);
        assert_eq!(leases(&store).len(), 1);
        assert_eq!(filters.lines("attach").len(), attached);
        host = s.sockets.host;
    }
    // Another -containerAddress than the lease's: refused.
    let mut elsewhere = publishing(&["tcp:8091:80"]);
    elsewhere.address = Some("10.10.10.9".parse().unwrap());
    let s = living(
        host,
        renamed_links(index),
        &filters,
        &target,
        &store,
        &elsewhere,
        A,
    );
    let refused = block_on(s.create(None)).unwrap_err();
    assert!(refused.message.contains("has 10.10.10.2"), "{refused}");
    assert!(!filters.claims.borrow().contains_key(&(6, 8091)));
    let host = s.sockets.host;
    // A failure after publishing (the hairpin) undoes this call's.
    *filters.fail.borrow_mut() = Some("hairpin".into());
    let req = publishing(&["tcp:8090:80"]);
    let s = living(
        host,
        renamed_links(index),
        &filters,
        &target,
        &store,
        &req,
        A,
    );
    assert!(block_on(s.create(None)).is_err());
    assert!(!filters.claims.borrow().contains_key(&(6, 8090)));
    assert_eq!(ports_of(&store, "10.10.10.2"), all);

    // The lease ends: every publication goes with it, the added ones too.
    block_on(s.delete()).unwrap();
    assert_eq!(filters.claims.borrow().len(), 1, "only the other lease's");
    assert!(leases(&store).is_empty());
}

#[test]
fn publish_adds_only_to_the_callers_own_lease_in_that_namespace() {
    let dir = Scratch::new("livepubown");
    let (store_a, store_b) = (dir.store(A), dir.store(B));
    let (host, filters) = shared();
    let plain = publishing(&[]);
    let (host, a) = wire_with(host, &filters, &store_a, &plain, A, None);
    let (host, b) = wire_with(host, &filters, &store_b, &plain, B, None);
    let (a, b) = (a.unwrap().host_index, b.unwrap().host_index);
    let target = NetNs::current().unwrap();
    let req = publishing(&["tcp:8080:80"]);

    // A's container has renamed A's interface and made a veth1 whose peer
    // has the index of B's host end: the hint leads to B's lease, which is
    // not A's; A's own lease is the one that publishes.
    let forged = renamed_links(a);
    let mut fake = link(3, "veth1", Some("veth"));
    fake.link = Some(b);
    forged.add(fake);
    let s = living(host, forged, &filters, &target, &store_a, &req, A);
    assert_eq!(
        block_on(s.create(None)).unwrap().host_interface,
        "veth0a0a0a02"
    );
    assert_eq!(ports_of(&store_a, "10.10.10.2"), ["tcp:8080:80"]);
    assert!(ports_of(&store_b, "10.10.10.3").is_empty());

    // B, naming the same namespace (which stage 7 refuses in reality),
    // with the hint at A's interface, publishes nothing on A's lease, only
    // on its own there.
    let host = s.sockets.host;
    let req_b = publishing(&["tcp:8081:80"]);
    let s = living(
        host,
        container_links(a),
        &filters,
        &target,
        &store_b,
        &req_b,
        B,
    );
    let made = block_on(s.create(None)).unwrap();
    assert_eq!(made.host_interface, "veth0a0a0a03");
    assert_eq!(ports_of(&store_a, "10.10.10.2"), ["tcp:8080:80"]);
    assert_eq!(ports_of(&store_b, "10.10.10.3"), ["tcp:8081:80"]);

    // The namespace was replaced (a reused pid: the host's id for it is
    // another): A's old lease is not added to; the new namespace is
    // wired anew.
    let mut host = s.sockets.host;
    host.target_nsid = Some(TARGET + 1);
    let req = publishing(&["tcp:8082:80"]);
    let s = living(
        host,
        container_links(a),
        &filters,
        &target,
        &store_a,
        &req,
        A,
    );
    let made = block_on(s.create(None)).unwrap();
    assert_eq!(made.host_interface, "veth0a0a0a04");
    assert_eq!(ports_of(&store_a, "10.10.10.2"), ["tcp:8080:80"]);
    assert_eq!(ports_of(&store_a, "10.10.10.4"), ["tcp:8082:80"]);
}

#[test]
fn unpublish_removes_only_the_callers_own_mappings() {
    let dir = Scratch::new("unpub");
    let (store_a, store_b) = (dir.store(A), dir.store(B));
    let (host, filters) = shared();
    let first = publishing(&["tcp:8080:80", "udp:5353:53"]);
    let (host, a) = wire_with(host, &filters, &store_a, &first, A, None);
    let (host, b) = wire_with(
        host,
        &filters,
        &store_b,
        &publishing(&["tcp:8081:80"]),
        B,
        None,
    );
    let (a, b) = (a.unwrap().host_index, b.unwrap().host_index);
    let target = NetNs::current().unwrap();
    let mut host = host;
    // Another's mapping, one of another address, one that does not exist,
    // even beside one of its own; or a caller without an interface there:
    // refused, nothing changes.
    for (uid, store, asked) in [
        (A, &store_a, vec!["tcp:8080", "tcp:8081"]),
        (A, &store_a, vec!["tcp:192.0.2.1:8080"]),
        (A, &store_a, vec!["tcp:9999"]),
        (B, &store_b, vec!["tcp:8080"]),
    ] {
        let req = unpublishing(&asked);
        let s = living(
            host,
            container_links(a),
            &filters,
            &target,
            store,
            &req,
            uid,
        );
        let refused = unchanged_by(&filters, &store_a, || block_on(s.unpublish()));
        assert_eq!(refused.kind, Kind::Refused, "{refused}");
        assert_eq!(ports_of(&store_b, "10.10.10.3"), ["tcp:8081:80"]);
        host = s.sockets.host;
    }
    let req = unpublishing(&["tcp:8080"]);
    let s = living(host, renamed_links(a), &filters, &target, &store_a, &req, A);
    let Outcome::Wired { wired, .. } = block_on(s.unpublish()).unwrap() else {
        panic!("not a wiring");
    };
    assert_eq!(wired.published, publishing(&["udp:5353:53"]).publish);
    assert_eq!(
        filters.lines("unpublish tcp:8080:80 for 10.10.10.2").len(),
        1
    );
    assert_eq!(ports_of(&store_a, "10.10.10.2"), ["udp:5353:53"]);
    let claims: Vec<_> = filters.claims.borrow().keys().copied().collect();
    assert_eq!(claims, [(6, 8081), (17, 5353)]);
    // Gone already: refused now.
    assert!(block_on(s.unpublish()).is_err());
    assert_eq!(Some(b), s.sockets.host.index_of("veth0a0a0a03").unwrap());
}

// ------------------------------------------------------------ restore

/// Ports 8000-8999 for every owner but root, whom nothing binds.
fn granted(uid: u32, _: &Network) -> Result<Covered, Failure> {
    Ok((uid != 0).then(|| {
        vec![Ports {
            protocol: netplumb::Protocol::Tcp,
            first: 8000,
            last: 8999,
        }]
    }))
}

/// What a firewall restart does to our objects: all gone.
fn flush(filters: &FakeFilters) {
    filters.claims.borrow_mut().clear();
    filters.guarded.borrow_mut().clear();
    filters.isolated.borrow_mut().clear();
}

fn restore_one(
    host: FakeLinks,
    filters: &FakeFilters,
    request: Request,
    store: Store,
    grants: &Grants<'_>,
) -> Restored {
    let networks = [Restorable {
        request,
        store: Ok(store),
    }];
    // A table of the netdev guard of before: deleted once the network is
    // restored whole, kept (named) otherwise.
    let legacy = vec!["table netdev netsetgo_guard_3".to_string()];
    filters.legacy.replace(legacy.clone());
    let (mut done, upkeep) = block_on(restore_all(host, filters, &networks, grants));
    assert_eq!(done.len(), 1);
    let whole = done[0].failed.is_empty() && !done[0].not_restored;
    let (removed, kept) = match whole {
        true => (legacy, Vec::new()),
        false => (Vec::new(), legacy),
    };
    assert_eq!(
        (upkeep.legacy_removed, upkeep.legacy_kept),
        (removed, kept.clone())
    );
    assert_eq!(*filters.legacy.borrow(), kept);
    assert_eq!(upkeep.failed, Vec::<String>::new());
    done.remove(0)
}

/// Three containers on a nat=yes guard=yes network: A's publishing
/// 8080, B's, and A's third whose interface is gone.
fn three(dir: &Scratch, filters: &FakeFilters) -> (FakeLinks, Request) {
    let (mut host, _) = shared();
    host.log = filters.log.clone();
    let mut req = publishing(&["tcp:8080:80"]);
    req.network.nat = true;
    let (host, _) = wire_with(host, filters, &dir.store(A), &req, A, None);
    let mut plain = req.clone();
    plain.publish.clear();
    let (host, _) = wire_with(host, filters, &dir.store(B), &plain, B, None);
    let (host, dead) = wire_with(host, filters, &dir.store(A), &plain, A, None);
    host.links.borrow_mut().remove(&dead.unwrap().host_index);
    (host, plain)
}

#[test]
fn restore_recreates_what_the_firewall_lost_and_a_second_run_changes_nothing() {
    let dir = Scratch::new("restore");
    let filters = FakeFilters::default();
    let (host, req) = three(&dir, &filters);
    flush(&filters);
    let done = restore_one(host.clone(), &filters, req.clone(), dir.store(0), &granted);
    assert_eq!(
        done,
        Restored {
            network: "default".into(),
            bridge: "brg0".into(),
            leases: 2,
            guarded: 2,
            guards_restored: 2,
            publications: 1,
            publications_restored: 1,
            masquerade: true,
            isolation: true,
            hairpin: true,
            collected: 1,
            ..Restored::default()
        }
    );
    assert_eq!(*filters.isolated.borrow(), ["brg0"]);
    assert_eq!(
        filters.claims.borrow()[&(6, 8080)],
        "10.10.10.2".parse::<Ipv4Addr>().unwrap()
    );
    assert_eq!(*filters.guarded.borrow(), ["veth0a0a0a02", "veth0a0a0a03"]);
    assert_eq!(
        leases(&dir.store(A)).len(),
        2,
        "the dead lease is collected"
    );
    // Again: everything is in place; nothing is added.
    let before = filters.log.borrow().len();
    let again = restore_one(host, &filters, req, dir.store(0), &granted);
    assert_eq!((again.guards_restored, again.publications_restored), (0, 0));
    assert_eq!((again.leases, again.guarded, again.publications), (2, 2, 1));
    let added: Vec<String> = filters.log.borrow()[before..]
        .iter()
        .filter(|l| l.starts_with("guard") || l.starts_with("publish") || l.starts_with("un"))
        .cloned()
        .collect();
    assert!(added.is_empty(), "{added:?}");
    assert!(
        again.line().contains("nothing was missing"),
        "{}",
        again.line()
    );
}

#[test]
fn restore_removes_publications_no_grant_covers_and_keeps_roots() {
    let dir = Scratch::new("revoke");
    let filters = FakeFilters::default();
    let (host, req) = three(&dir, &filters);
    // Root's own publication on the same network, outside any grant.
    let root = publishing(&["tcp:80:80"]);
    let (host, _) = wire_with(host, &filters, &dir.store(0), &root, 0, None);
    let revoked = |uid: u32, _: &Network| Ok((uid != 0).then(Vec::new));
    let done = restore_one(host, &filters, req, dir.store(0), &revoked);
    assert_eq!(done.revoked, ["tcp:8080:80 of 10.10.10.2"]);
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    assert_eq!((done.publications, done.leases), (1, 3));
    assert!(!filters.claims.borrow().contains_key(&(6, 8080)));
    assert!(filters.claims.borrow().contains_key(&(6, 80)));
    assert!(ports_of(&dir.store(A), "10.10.10.2").is_empty());
    assert_eq!(ports_of(&dir.store(0), "10.10.10.4"), ["tcp:80:80"]);
    // The lease itself stays: its interface lives.
    assert_eq!(leases(&dir.store(A)).len(), 3);
    assert!(done
        .line()
        .contains("removed (no grant covers them): tcp:8080:80 of 10.10.10.2"));
}

#[test]
fn grants_that_cannot_be_judged_revoke_nothing_and_are_reported() {
    let dir = Scratch::new("unjudged");
    let filters = FakeFilters::default();
    let (host, req) = three(&dir, &filters);
    flush(&filters);
    let unreadable = |_: u32, _: &Network| Err(Failure::refused("/etc/group: unreadable"));
    let done = restore_one(host, &filters, req, dir.store(0), &unreadable);
    assert!(done.revoked.is_empty());
    assert_eq!((done.publications_restored, done.guards_restored), (1, 2));
    assert_eq!(
        done.failed,
        [
            format!("the grants of uid {A}: /etc/group: unreadable"),
            format!("the grants of uid {B}: /etc/group: unreadable")
        ]
    );
}

#[test]
fn restore_of_a_network_that_left_the_policy_frees_its_ports_and_guards_what_lives() {
    let dir = Scratch::new("retired");
    let filters = FakeFilters::default();
    let (host, _) = three(&dir, &filters);
    flush(&filters);
    // Its port is claimed again (the flush freed it), as before.
    filters
        .claims
        .borrow_mut()
        .insert((6, 8080), "10.10.10.2".parse().unwrap());
    let gateway = "10.10.10.1/24".parse().unwrap();
    let req = Request::restoring(Network::retired("brg0", gateway), Known::Recorded);
    filters.log.borrow_mut().clear();
    let done = restore_one(host, &filters, req, dir.store(0), &granted);
    assert!(done.retired);
    // Its isolated ports stay isolated: a retired network's isolation is
    // not recorded, and -restore only adds protection (review r20b, B).
    let ports = filters.lines("bridge port #");
    assert!(
        ports.iter().all(|l| !l.contains("isolated: false")),
        "{ports:?}"
    );
    assert_eq!(done.revoked, ["tcp:8080:80 of 10.10.10.2"]);
    assert!(filters.claims.borrow().is_empty(), "the claim is freed");
    assert!(ports_of(&dir.store(A), "10.10.10.2").is_empty());
    // Live leases stay, guarded; nothing is published or masqueraded.
    assert_eq!((done.leases, done.guarded, done.collected), (2, 2, 1));
    assert_eq!(
        (done.masquerade, done.hairpin, done.publications),
        (false, false, 0)
    );
    assert!(filters.lines("unguard veth0a0a0a02").is_empty());
    assert!(filters.lines("unguard veth0a0a0a03").is_empty());
    assert_eq!(leases(&dir.store(A)).len(), 2);
    assert!(done
        .line()
        .starts_with("restore: bridge brg0 (no longer in the policy): 2 leases kept"));
}

#[test]
fn restore_reports_what_it_could_not_restore_and_restores_the_rest() {
    let dir = Scratch::new("claimed");
    let filters = FakeFilters::default();
    let (host, req) = three(&dir, &filters);
    flush(&filters);
    let other: Ipv4Addr = "10.20.0.9".parse().unwrap();
    filters.claims.borrow_mut().insert((6, 8080), other);
    let broken = Restorable {
        request: Request::restoring(
            Network::retired("brg9", "10.9.0.1/24".parse().unwrap()),
            Known::Recorded,
        ),
        store: Err(Failure::refused("state of brg9 is not private")),
    };
    let networks = [
        broken,
        Restorable {
            request: req,
            store: Ok(dir.store(0)),
        },
    ];
    filters
        .legacy
        .replace(vec!["table netdev netsetgo_guard_3".into()]);
    let (done, upkeep) = block_on(restore_all(host, &filters, &networks, &granted));
    // A network not restored whole: the netdev guard of before stays.
    assert_eq!(upkeep.legacy_kept, ["table netdev netsetgo_guard_3"]);
    assert!(upkeep.legacy_removed.is_empty());
    assert_eq!(filters.legacy.borrow().len(), 1);
    assert_eq!(done[0].failed, ["state of brg9 is not private"]);
    assert!(done[0].not_restored, "{:?}", done[0]);
    let default = &done[1];
    assert!(!default.not_restored, "{default:?}");
    assert_eq!(default.failed.len(), 1, "{:?}", default.failed);
    assert!(
        default.failed[0].starts_with("publication tcp:8080:80 of 10.10.10.2: ")
            && default.failed[0].contains("already published"),
        "{:?}",
        default.failed
    );
    assert_eq!(
        filters.claims.borrow()[&(6, 8080)],
        other,
        "another's claim untouched"
    );
    assert_eq!(default.guards_restored, 2, "the rest is restored");
    let outcome = Outcome::Restored(done, upkeep);
    let failure = outcome.failure().unwrap();
    assert!(failure.message.contains("network brg9 (brg9)"), "{failure}");
    assert!(
        failure
            .message
            .contains("network default (brg0): publication"),
        "{failure}"
    );
}

#[test]
fn check_names_what_the_firewall_lost_and_the_restore() {
    let dir = Scratch::new("checkrestore");
    let store = dir.store(A);
    let (host, filters) = shared();
    let req = publishing(&["tcp:8080:80"]);
    let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
    let wired = wired.unwrap();
    let target = NetNs::current().unwrap();
    let inside = container_links(wired.host_index);
    flush(&filters);
    let session = Session::new(
        sockets(host, Some(inside), &filters),
        Some(&target),
        &store,
        &req,
        A,
    );
    let broken = block_on(session.check()).unwrap_err();
    assert!(
        broken
            .message
            .contains("publication tcp:8080:80 is missing"),
        "{broken}"
    );
    assert!(
        broken
            .message
            .contains("the guard of host end veth0a0a0a02 is missing"),
        "{broken}"
    );
    assert!(
        broken.message.contains("run `netsetgo -restore` as root"),
        "{broken}"
    );
    assert!(
        broken
            .message
            .contains("the isolation rule of bridge brg0 is missing"),
        "{broken}"
    );
}

#[test]
fn check_names_a_lost_isolation_rule_alone_and_the_restore_brings_it_back() {
    let dir = Scratch::new("checkisolate");
    let store = dir.store(A);
    let (host, filters) = shared();
    let req = publishing(&[]);
    let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
    let wired = wired.unwrap();
    assert_eq!(*filters.isolated.borrow(), ["brg0"]);
    let target = NetNs::current().unwrap();
    let session = Session::new(
        sockets(
            host.clone(),
            Some(container_links(wired.host_index)),
            &filters,
        ),
        Some(&target),
        &store,
        &req,
        A,
    );
    filters.isolated.borrow_mut().clear();
    let broken = block_on(session.check()).unwrap_err().message;
    for said in [
        "the isolation rule of bridge brg0 is missing",
        "run `netsetgo -restore` as root",
    ] {
        assert!(broken.contains(said), "{said:?}: {broken}");
    }
    for not in ["publication", "the guard of"] {
        assert!(!broken.contains(not), "{not:?}: {broken}");
    }
    let done = restore_one(host, &filters, req.clone(), dir.store(0), &granted);
    assert!(done.isolation, "{done:?}");
    assert!(done.line().contains(", isolation"), "{}", done.line());
    assert_eq!(*filters.isolated.borrow(), ["brg0"]);
    let fixed = block_on(session.check()).unwrap_err().message;
    assert!(!fixed.contains("isolation"), "{fixed}");
}

#[test]
fn restore_makes_no_isolation_rule_on_a_network_without_isolate() {
    let dir = Scratch::new("noisolate");
    let filters = FakeFilters::default();
    let (host, mut req) = three(&dir, &filters);
    flush(&filters);
    req.network.isolate = false;
    let before = filters.lines("isolate").len();
    let done = restore_one(host, &filters, req, dir.store(0), &granted);
    assert!(!done.isolation && done.masquerade, "{done:?}");
    assert_eq!(filters.lines("isolate").len(), before);
    assert!(filters.isolated.borrow().is_empty());
}
