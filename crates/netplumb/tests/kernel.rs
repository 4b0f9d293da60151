//! Real-kernel tests for netplumb. Every test builds its own throwaway
//! namespaces (`ip netns add nt-<pid>-<tag>-<n>`), opens netlink sessions
//! inside them only, checks the results from outside with `ip -j`, and
//! removes the namespaces on drop (also when it panics). The namespace the
//! tests run in is never changed. Needs root; skips loudly otherwise.

mod common;

use std::net::IpAddr;
use std::os::fd::AsFd;

use common::{flags, ifindex, is_up, net, ns_shape, ChildGuard, TestNs};
use netplumb::{Attachment, Error, IpNetwork, NetNs, Netlink, Step, VethPair};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// A pair whose peer is born in `peer_ns`.
fn pair<'a>(
    name: &'a str,
    peer_name: &'a str,
    peer_ns: Option<&'a NetNs>,
    master: Option<u32>,
    up: bool,
) -> VethPair<'a> {
    VethPair {
        name,
        peer_name,
        peer_netns: peer_ns.map(|ns| ns.as_fd()),
        master,
        mtu: None,
        peer_mac: None,
        up,
    }
}

// ---------------------------------------------------------------- bridges

#[tokio::test(flavor = "current_thread")]
async fn ensure_bridge_creates_up_then_reuses() {
    require_root!("ensure_bridge_creates_up_then_reuses");
    let host = TestNs::new("br");
    let nl = host.session();

    let first = nl.ensure_bridge("brt0", Some(1400)).await.unwrap();
    assert!(first.created, "first call must create the bridge");
    assert_eq!(first.link.name, "brt0");
    assert_eq!(first.link.kind.as_deref(), Some("bridge"));
    assert!(first.link.up, "library reports the new bridge down");

    let seen = host.must_link("brt0");
    assert_eq!(seen["linkinfo"]["info_kind"], "bridge");
    assert!(is_up(&seen), "bridge not up: {:?}", flags(&seen));
    assert_eq!(seen["mtu"], 1400);
    assert_eq!(ifindex(&seen), first.link.index);

    let again = nl.ensure_bridge("brt0", None).await.unwrap();
    assert!(!again.created, "second call must reuse the bridge");
    assert_eq!(again.link.index, first.link.index);
    assert_eq!(host.links_of_kind("bridge"), vec!["brt0".to_string()]);
    // Reusing must not reset the MTU it was created with.
    assert_eq!(host.must_link("brt0")["mtu"], 1400);

    // A bridge created by someone else is reused too.
    host.ip(&["link", "add", "brx", "type", "bridge"]);
    let brx = ifindex(&host.must_link("brx"));
    let other = nl.ensure_bridge("brx", None).await.unwrap();
    assert!(!other.created);
    assert_eq!(other.link.index, brx);
    assert_eq!(host.links_of_kind("bridge").len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn ensure_bridge_refuses_other_devices_untouched() {
    require_root!("ensure_bridge_refuses_other_devices_untouched");
    let host = TestNs::new("nab");
    let nl = host.session();
    let kind = common::add_plain_device(&host, "dumx");
    let before = host.ip(&["-j", "-d", "link", "show", "dumx"]);

    match nl.ensure_bridge("dumx", Some(1280)).await {
        Err(Error::NotABridge { name, kind: got }) => {
            assert_eq!(name, "dumx");
            assert_eq!(got, format!("a {kind} device"));
        }
        other => panic!("expected NotABridge, got {other:?}"),
    }
    let after = host.ip(&["-j", "-d", "link", "show", "dumx"]);
    assert_eq!(before, after, "the dummy device was modified");
    assert!(host.links_of_kind("bridge").is_empty());

    // lo has no link kind: refused as well, and left down.
    let err = nl.ensure_bridge("lo", None).await.unwrap_err();
    assert!(
        matches!(err, Error::NotABridge { ref name, .. } if name == "lo"),
        "{err:?}"
    );
    assert!(!is_up(&host.must_link("lo")));

    // Invalid names are refused before any request.
    let err = nl.ensure_bridge("bad/name", None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidName(_)), "{err:?}");
}

// ---------------------------------------------------------------- veths

#[tokio::test(flavor = "current_thread")]
async fn veth_pair_peer_born_in_other_namespace() {
    require_root!("veth_pair_peer_born_in_other_namespace");
    let host = TestNs::new("vh");
    let cont = TestNs::new("vc");
    let nl = host.session();
    let inside = cont.session();
    let cont_ns = cont.open();
    let bridge = nl.ensure_bridge("brv", None).await.unwrap();

    let mut p = pair(
        "vethh0",
        "vethc0",
        Some(&cont_ns),
        Some(bridge.link.index),
        true,
    );
    p.mtu = Some(1400);
    nl.create_veth_pair(&p).await.unwrap();

    let h = host.must_link("vethh0");
    assert_eq!(h["linkinfo"]["info_kind"], "veth");
    assert_eq!(h["master"], "brv");
    assert!(is_up(&h), "host end not up: {:?}", flags(&h));
    assert_eq!(h["mtu"], 1400);
    assert!(host.link("vethc0").is_none(), "peer appeared in host ns");

    let c = cont.must_link("vethc0");
    assert_eq!(c["linkinfo"]["info_kind"], "veth");
    assert_eq!(c["mtu"], 1400);
    assert!(!is_up(&c), "peer is documented as born down");
    assert!(c.get("master").is_none(), "peer has a master: {c}");
    assert!(
        cont.link("vethh0").is_none(),
        "host end appeared in container"
    );

    // The library sees the same: master, and IFLA_LINK naming the peer.
    let hl = nl.link_by_name("vethh0").await.unwrap().unwrap();
    let cl = inside.link_by_name("vethc0").await.unwrap().unwrap();
    assert_eq!(hl.master, Some(bridge.link.index));
    assert_eq!(hl.link, Some(cl.index));
    assert_eq!(cl.link, Some(hl.index));
    assert_eq!(cl.kind.as_deref(), Some("veth"));
    assert!(hl.up && !cl.up);
    assert_eq!(hl.mtu, Some(1400));
}

#[tokio::test(flavor = "current_thread")]
async fn veth_pair_create_is_exclusive() {
    require_root!("veth_pair_create_is_exclusive");
    let host = TestNs::new("xh");
    let cont = TestNs::new("xc");
    let nl = host.session();
    let cont_ns = cont.open();
    let bridge = nl.ensure_bridge("brx", None).await.unwrap();
    let b = Some(bridge.link.index);
    nl.create_veth_pair(&pair("vethh0", "vethc0", Some(&cont_ns), b, true))
        .await
        .unwrap();
    let host_before = ns_shape(&host);
    let cont_before = ns_shape(&cont);

    // Same names again; the same host name with another peer name; another
    // host name with a peer name that exists in the target.
    for (name, peer) in [
        ("vethh0", "vethc0"),
        ("vethh0", "vethc1"),
        ("vethh1", "vethc0"),
    ] {
        let err = nl
            .create_veth_pair(&pair(name, peer, Some(&cont_ns), b, true))
            .await
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EEXIST), "{name}/{peer}: {err:?}");
        assert_eq!(err.step(), Some(Step::CreateVeth), "{err:?}");
        assert_eq!(
            ns_shape(&host),
            host_before,
            "host changed by {name}/{peer}"
        );
        assert_eq!(
            ns_shape(&cont),
            cont_before,
            "container changed by {name}/{peer}"
        );
    }

    // A name the kernel would take but the library refuses: nothing made.
    let err = nl
        .create_veth_pair(&pair("vethh2", "../x", Some(&cont_ns), b, true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidName(ref n) if n == "../x"),
        "{err:?}"
    );
    assert_eq!(ns_shape(&host), host_before);
}

#[tokio::test(flavor = "current_thread")]
async fn link_operations() {
    require_root!("link_operations");
    let host = TestNs::new("lh");
    let cont = TestNs::new("lc");
    let nl = host.session();
    let inside = cont.session();
    let cont_ns = cont.open();
    let bridge = nl.ensure_bridge("brl", None).await.unwrap();

    // Created down and without a master.
    nl.create_veth_pair(&pair("vh", "vc", Some(&cont_ns), None, false))
        .await
        .unwrap();
    let h = host.must_link("vh");
    assert!(!is_up(&h));
    assert!(h.get("master").is_none(), "{h}");
    let hi = ifindex(&h);

    // link_by_name / link_by_index
    let by_name = nl.link_by_name("vh").await.unwrap().expect("vh by name");
    assert_eq!(by_name.index, hi);
    assert_eq!(by_name.master, None);
    assert!(!by_name.up);
    let mac = h["address"].as_str().unwrap();
    let lib_mac = by_name
        .mac
        .map(|m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap();
    assert_eq!(lib_mac, mac);
    let by_index = nl.link_by_index(hi).await.unwrap().expect("vh by index");
    assert_eq!(by_index, by_name);
    assert!(nl.link_by_name("nosuch").await.unwrap().is_none());
    assert!(nl.link_by_index(999_999).await.unwrap().is_none());
    // The peer is not visible from the host session.
    assert!(nl.link_by_name("vc").await.unwrap().is_none());
    assert!(matches!(
        nl.link_by_name("0123456789abcdef").await,
        Err(Error::InvalidName(_))
    ));

    // set_master
    nl.set_master(hi, bridge.link.index).await.unwrap();
    assert_eq!(host.must_link("vh")["master"], "brl");
    assert_eq!(
        nl.link_by_index(hi).await.unwrap().unwrap().master,
        Some(bridge.link.index)
    );
    let err = nl.set_master(999_999, bridge.link.index).await.unwrap_err();
    assert_eq!(err.step(), Some(Step::SetMaster), "{err:?}");
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err:?}");
    assert_eq!(host.must_link("vh")["master"], "brl");

    // set_up
    nl.set_up(hi).await.unwrap();
    assert!(is_up(&host.must_link("vh")));
    let err = nl.set_up(999_999).await.unwrap_err();
    assert_eq!(err.step(), Some(Step::SetUp));
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err:?}");

    // rename (the peer, still down, from inside its namespace)
    let ci = ifindex(&cont.must_link("vc"));
    inside.rename(ci, "eth7").await.unwrap();
    assert!(cont.link("vc").is_none());
    assert_eq!(ifindex(&cont.must_link("eth7")), ci);
    let err = inside.rename(ci, "lo").await.unwrap_err();
    assert_eq!(err.step(), Some(Step::Rename));
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err:?}");
    assert!(matches!(
        inside.rename(ci, "a/b").await,
        Err(Error::InvalidName(_))
    ));
    assert_eq!(ifindex(&cont.must_link("eth7")), ci);

    // delete_link removes both ends
    nl.delete_link(hi).await.unwrap();
    assert!(host.link("vh").is_none());
    assert!(cont.link("eth7").is_none());
    assert!(host.links_of_kind("veth").is_empty());
    assert!(cont.links_of_kind("veth").is_empty());
    assert!(nl.link_by_index(hi).await.unwrap().is_none());
    let err = nl.delete_link(hi).await.unwrap_err();
    assert_eq!(err.step(), Some(Step::DeleteLink));
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err:?}");
    // The bridge is still there.
    assert!(host.link("brl").is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn veth_pair_in_one_namespace_and_delete_from_peer() {
    require_root!("veth_pair_in_one_namespace_and_delete_from_peer");
    let ns = TestNs::new("one");
    let nl = ns.session();
    nl.create_veth_pair(&pair("va0", "vb0", None, None, true))
        .await
        .unwrap();
    assert!(is_up(&ns.must_link("va0")));
    assert!(!is_up(&ns.must_link("vb0")));
    let b = ifindex(&ns.must_link("vb0"));
    nl.delete_link(b).await.unwrap();
    assert!(ns.links_of_kind("veth").is_empty(), "{:?}", ns.link_names());
}

// ---------------------------------------------------------------- addresses

#[tokio::test(flavor = "current_thread")]
async fn addresses() {
    require_root!("addresses");
    let ns = TestNs::new("ad");
    let nl = ns.session();
    nl.create_veth_pair(&pair("va", "vb", None, None, true))
        .await
        .unwrap();
    let a = ifindex(&ns.must_link("va"));
    let b = ifindex(&ns.must_link("vb"));
    nl.set_up(b).await.unwrap();

    nl.add_address(a, net("10.61.0.2/24")).await.unwrap();
    let entry = ns.addr("va", "10.61.0.2").expect("address on va");
    assert_eq!(entry["prefixlen"], 24);
    assert_eq!(entry["family"], "inet");

    let err = nl.add_address(a, net("10.61.0.2/24")).await.unwrap_err();
    assert_eq!(err.step(), Some(Step::AddAddress));
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err:?}");

    assert!(!nl.ensure_address(a, net("10.61.0.2/24")).await.unwrap());
    assert!(nl.ensure_address(a, net("10.61.1.2/16")).await.unwrap());
    assert!(!nl.ensure_address(a, net("10.61.1.2/16")).await.unwrap());
    let v4: Vec<_> = ns
        .addrs("va")
        .into_iter()
        .filter(|e| e["family"] == "inet")
        .map(|e| (e["local"].clone(), e["prefixlen"].clone()))
        .collect();
    assert_eq!(
        v4,
        vec![
            (serde_json::json!("10.61.0.2"), serde_json::json!(24)),
            (serde_json::json!("10.61.1.2"), serde_json::json!(16)),
        ]
    );

    // Errors other than EEXIST are not swallowed by ensure_address.
    let err = nl
        .ensure_address(999_999, net("10.61.2.2/24"))
        .await
        .unwrap_err();
    assert_eq!(err.step(), Some(Step::AddAddress));
    assert!(err.errno().is_some(), "{err:?}");

    // IPv6 with nodad: usable at once, not tentative. The control address
    // added by ip on the other end (with DAD) shows that the check can fail.
    nl.add_address(a, net("fd61::2/64")).await.unwrap();
    ns.ip(&["addr", "add", "fd61::3/64", "dev", "vb"]);
    let lib = ns.addr("va", "fd61::2").expect("v6 address on va");
    let control = ns.addr("vb", "fd61::3").expect("control address on vb");
    assert_eq!(lib["prefixlen"], 64);
    assert_eq!(lib["nodad"], true, "{lib}");
    assert!(lib.get("tentative").is_none(), "{lib}");
    assert_eq!(
        control["tentative"], true,
        "control not tentative: {control}"
    );
    assert!(!nl.ensure_address(a, net("fd61::2/64")).await.unwrap());

    // addresses_of lists exactly what ip lists for the link (v4, v6 and
    // the kernel's link-local address), and nothing of the other end.
    let mut listed: Vec<String> = nl
        .addresses_of(a)
        .await
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let mut seen: Vec<String> = ns
        .addrs("va")
        .iter()
        .map(|e| format!("{}/{}", e["local"].as_str().unwrap(), e["prefixlen"]))
        .collect();
    listed.sort();
    seen.sort();
    assert_eq!(listed, seen);
    assert!(listed.contains(&"fd61::2/64".to_string()), "{listed:?}");
    assert!(!listed.contains(&"fd61::3/64".to_string()), "{listed:?}");
    assert!(nl.addresses_of(999_999).await.unwrap().is_empty());
}

// ---------------------------------------------------------------- routes

#[tokio::test(flavor = "current_thread")]
async fn default_routes_and_loopback() {
    require_root!("default_routes_and_loopback");
    let ns = TestNs::new("rt");
    let nl = ns.session();
    nl.create_veth_pair(&pair("va", "vb", None, None, true))
        .await
        .unwrap();
    let a = ifindex(&ns.must_link("va"));
    nl.set_up(ifindex(&ns.must_link("vb"))).await.unwrap();

    // No address on the link yet: the gateway is unreachable.
    assert!(nl.default_gateways(false).await.unwrap().is_empty());
    let err = nl.add_default_route(ip("10.62.0.1"), a).await.unwrap_err();
    assert_eq!(err.step(), Some(Step::AddRoute));
    assert!(err.errno().is_some(), "{err:?}");
    assert!(err.to_string().contains("add route"), "{err}");
    assert!(ns.default_routes("-4").is_empty());

    nl.add_address(a, net("10.62.0.2/24")).await.unwrap();
    nl.add_default_route(ip("10.62.0.1"), a).await.unwrap();
    let d = ns.default_routes("-4");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["gateway"], "10.62.0.1");
    assert_eq!(d[0]["dev"], "va");
    let err = nl.add_default_route(ip("10.62.0.1"), a).await.unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err:?}");
    assert_eq!(ns.default_routes("-4").len(), 1);

    assert!(ns.default_routes("-6").is_empty());
    nl.add_address(a, net("fd62::2/64")).await.unwrap();
    nl.add_default_route(ip("fd62::1"), a).await.unwrap();
    let d6 = ns.default_routes("-6");
    assert_eq!(d6.len(), 1, "{d6:?}");
    assert_eq!(d6[0]["gateway"], "fd62::1");
    assert_eq!(d6[0]["dev"], "va");

    // default_gateways: per family, main table only.
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "10.62.0.9",
        "dev",
        "va",
        "table",
        "100",
    ]);
    assert_eq!(
        nl.default_gateways(false).await.unwrap(),
        vec![(ip("10.62.0.1"), Some(a))]
    );
    assert_eq!(
        nl.default_gateways(true).await.unwrap(),
        vec![(ip("fd62::1"), Some(a))]
    );

    assert!(!is_up(&ns.must_link("lo")));
    nl.loopback_up().await.unwrap();
    assert!(is_up(&ns.must_link("lo")));
    assert!(ns.addr("lo", "127.0.0.1").is_some());
    assert!(ns.exec_succeeds(&["ping", "-c1", "-W1", "-n", "127.0.0.1"]));
    nl.loopback_up().await.unwrap(); // idempotent
}

#[tokio::test(flavor = "current_thread")]
async fn route_overlapping() {
    require_root!("route_overlapping");
    let ns = TestNs::new("ov");
    let nl = ns.session();
    for (dev, addr) in [("d0", "10.77.0.1/24"), ("d1", "10.88.0.1/24")] {
        common::add_plain_device(&ns, dev);
        ns.ip(&["link", "set", dev, "up"]);
        ns.ip(&["addr", "add", addr, "dev", dev]);
    }
    ns.ip(&["route", "add", "default", "via", "10.77.0.254", "dev", "d0"]);
    ns.ip(&["route", "add", "10.99.0.0/24", "dev", "d1", "table", "100"]);
    let d0 = ifindex(&ns.must_link("d0"));
    let d1 = ifindex(&ns.must_link("d1"));

    // The network contains a route's destination, and the other way round.
    assert_eq!(
        nl.route_overlapping(net("10.77.0.0/16"), None)
            .await
            .unwrap(),
        Some(net("10.77.0.0/24"))
    );
    assert_eq!(
        nl.route_overlapping(net("10.77.0.128/25"), None)
            .await
            .unwrap(),
        Some(net("10.77.0.0/24"))
    );
    // The default route overlaps everything and is ignored.
    assert_eq!(
        nl.route_overlapping(net("10.50.0.0/24"), None)
            .await
            .unwrap(),
        None
    );
    // Routes out of the excepted link are ignored.
    assert_eq!(
        nl.route_overlapping(net("10.77.0.0/16"), Some(d0))
            .await
            .unwrap(),
        None
    );
    ns.ip(&["route", "add", "10.77.5.0/24", "dev", "d1"]);
    assert_eq!(
        nl.route_overlapping(net("10.77.0.0/16"), Some(d0))
            .await
            .unwrap(),
        Some(net("10.77.5.0/24"))
    );
    assert_eq!(
        nl.route_overlapping(net("10.77.0.0/16"), Some(d1))
            .await
            .unwrap(),
        Some(net("10.77.0.0/24"))
    );
    // Routes of other tables (here 100, and the local table) are ignored.
    assert_eq!(
        nl.route_overlapping(net("10.99.0.0/16"), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        nl.route_overlapping(net("127.0.0.0/8"), None)
            .await
            .unwrap(),
        None
    );
    // A whole /8 contains both connected routes; the answer is one of them.
    let hit = nl.route_overlapping(net("10.0.0.0/8"), None).await.unwrap();
    assert!(
        [
            net("10.77.0.0/24"),
            net("10.88.0.0/24"),
            net("10.77.5.0/24")
        ]
        .contains(&hit.expect("an overlap in 10/8")),
        "{hit:?}"
    );

    // IPv6 ignores the v4 routes and finds v6 ones.
    assert_eq!(
        nl.route_overlapping(net("fd77::/48"), None).await.unwrap(),
        None
    );
    ns.ip(&["addr", "add", "fd77::1/64", "dev", "d0", "nodad"]);
    assert_eq!(
        nl.route_overlapping(net("fd77::/48"), None).await.unwrap(),
        Some(net("fd77::/64"))
    );
    assert_eq!(
        nl.route_overlapping(net("fd77::/48"), Some(d0))
            .await
            .unwrap(),
        None
    );
}

// ---------------------------------------------------------------- namespaces

#[tokio::test(flavor = "current_thread")]
async fn netns_identity_and_from_pid() {
    require_root!("netns_identity_and_from_pid");
    let one = TestNs::new("id1");
    let two = TestNs::new("id2");
    let id1 = one.open().id().unwrap();
    assert_eq!(one.open().id().unwrap(), id1, "same namespace, same id");
    assert_ne!(two.open().id().unwrap(), id1);
    assert_ne!(NetNs::current().unwrap().id().unwrap(), id1);

    let child = ChildGuard::spawn("ip", &["netns", "exec", &one.name, "sleep", "30"], "sleep");
    let by_pid = NetNs::from_pid(child.pid()).unwrap();
    assert_eq!(by_pid.id().unwrap(), id1);
    let by_proc = NetNs::from_path(format!("/proc/{}/ns/net", child.pid())).unwrap();
    assert_eq!(by_proc.id().unwrap(), id1);
    // A session through the pid's handle acts in that namespace.
    let nl = Netlink::connect_in(&by_pid).unwrap();
    nl.loopback_up().await.unwrap();
    assert!(is_up(&one.must_link("lo")));
    assert!(!is_up(&two.must_link("lo")));

    assert_eq!(one.open().owner_uid().unwrap(), 0);
    assert_eq!(by_pid.owner_uid().unwrap(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn netns_owner_uid_of_user_namespace() {
    require_root!("netns_owner_uid_of_user_namespace");
    let child = ChildGuard::spawn(
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "unshare",
            "-U",
            "-r",
            "-n",
            "sleep",
            "30",
        ],
        "sleep",
    );
    let ns = NetNs::from_pid(child.pid()).unwrap();
    assert_eq!(ns.owner_uid().unwrap(), 65534);
    assert_ne!(ns.id().unwrap(), NetNs::current().unwrap().id().unwrap());
    // Root can still open a session there; the namespace has only lo.
    let nl = Netlink::connect_in(&ns).unwrap();
    let lo = nl.link_by_name("lo").await.unwrap().expect("lo");
    assert_eq!(lo.index, 1);
    assert_eq!(lo.kind, None);
    assert!(nl.link_by_index(2).await.unwrap().is_none());
}

#[test]
fn netns_open_failures() {
    require_root!("netns_open_failures");
    // A pid that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let err = NetNs::from_pid(pid).unwrap_err();
    assert_eq!(err.step(), Some(Step::OpenNamespace), "{err:?}");
    assert_eq!(err.errno(), Some(libc::ESRCH), "{err:?}");
    assert!(err.to_string().contains(&pid.to_string()), "{err}");

    for bad in [0u32, u32::MAX] {
        let err = NetNs::from_pid(bad).unwrap_err();
        assert_eq!(err.step(), Some(Step::OpenNamespace), "{bad}: {err:?}");
    }

    let err = NetNs::from_path("/run/netns/nt-does-not-exist").unwrap_err();
    assert_eq!(err.step(), Some(Step::OpenNamespace));
    assert_eq!(err.errno(), Some(libc::ENOENT));

    // A namespace file of another type, and a file that is no namespace.
    let err = NetNs::from_path("/proc/self/ns/uts").unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err:?}");
    let err = NetNs::from_path("/proc/self/status").unwrap_err();
    assert_eq!(err.step(), Some(Step::QueryNamespace), "{err:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn netns_enter_and_sockets() {
    require_root!("netns_enter_and_sockets");
    let ns = TestNs::new("en");
    let handle = ns.open();
    let target = handle.id().unwrap();
    let home = NetNs::current().unwrap().id().unwrap();
    assert_ne!(home, target);

    let inside = handle
        .enter(|| NetNs::current().unwrap().id().unwrap())
        .unwrap();
    assert_eq!(inside, target);
    assert_eq!(
        NetNs::current().unwrap().id().unwrap(),
        home,
        "not returned"
    );

    // Netlink::connect inside enter() binds the session to that namespace
    // for good, wherever it is used afterwards.
    let nl = handle.enter(Netlink::connect).unwrap().unwrap();
    assert_eq!(NetNs::current().unwrap().id().unwrap(), home);
    nl.loopback_up().await.unwrap();
    assert!(is_up(&ns.must_link("lo")));

    // A socket opened early, driven later.
    let other = TestNs::new("en2");
    let socket = other.open().netlink_socket().unwrap();
    let nl2 = Netlink::from_socket(socket).unwrap();
    nl2.ensure_bridge("brs", None).await.unwrap();
    assert!(other.link("brs").is_some());
    assert!(ns.link("brs").is_none());

    // Same with a socket opened by open_socket() inside enter().
    let socket = handle.enter(Netlink::open_socket).unwrap().unwrap();
    let nl3 = Netlink::from_socket(socket).unwrap();
    assert!(nl3.link_by_name("brs").await.unwrap().is_none());
    nl3.ensure_bridge("brt", None).await.unwrap();
    assert!(ns.link("brt").is_some());
    assert!(other.link("brt").is_none());
}

#[test]
fn netlink_session_needs_a_runtime() {
    require_root!("netlink_session_needs_a_runtime");
    let ns = TestNs::new("nort");
    let socket = ns.open().netlink_socket().unwrap();
    assert!(matches!(
        Netlink::from_socket(socket),
        Err(Error::NoRuntime)
    ));
    assert!(matches!(
        Netlink::connect_in(&ns.open()),
        Err(Error::NoRuntime)
    ));
}

// ---------------------------------------------------------------- attach

#[tokio::test(flavor = "current_thread")]
async fn attach_end_to_end() {
    require_root!("attach_end_to_end");
    let host = TestNs::new("ah");
    let cont = TestNs::new("ac");
    let nl = host.session();
    let inside = cont.session();
    let cont_ns = cont.open();

    let bridge = nl.ensure_bridge("brg0", None).await.unwrap();
    assert!(nl
        .ensure_address(bridge.link.index, net("10.70.0.1/24"))
        .await
        .unwrap());
    assert!(nl
        .ensure_address(bridge.link.index, net("fd70::1/64"))
        .await
        .unwrap());

    let addresses = [net("10.70.0.2/24"), net("fd70::2/64")];
    let gateways = [ip("10.70.0.1"), ip("fd70::1")];
    let attached = nl
        .attach(
            &inside,
            &Attachment {
                bridge: bridge.link.index,
                host_name: "veth0a460002",
                peer_name: "veth1",
                peer_netns: cont_ns.as_fd(),
                mtu: Some(1450),
                addresses: &addresses,
                gateways: &gateways,
                peer_link_local: true,
                peer_mac: None,
                isolated: false,
                learning: netplumb::Learning::On,
            },
        )
        .await
        .unwrap();

    assert_eq!(attached.peer.name, "veth1");
    assert!(attached.peer.up);
    assert_eq!(attached.peer.link, Some(attached.host_index));

    let h = host.must_link("veth0a460002");
    assert_eq!(h["master"], "brg0");
    assert!(is_up(&h));
    assert_eq!(h["mtu"], 1450);
    assert_eq!(ifindex(&h), attached.host_index);
    // The host end, a bridge port, has no IPv6 address at all (addrgenmode
    // none); the peer was asked for a link-local one.
    assert_eq!(h["inet6_addr_gen_mode"], "none", "{h}");

    let p = cont.must_link("veth1");
    assert!(is_up(&p), "peer not up: {:?}", flags(&p));
    assert_eq!(p["mtu"], 1450);
    assert_eq!(ifindex(&p), attached.peer.index);
    assert_eq!(cont.addr("veth1", "10.70.0.2").unwrap()["prefixlen"], 24);
    let v6 = cont.addr("veth1", "fd70::2").unwrap();
    assert!(v6.get("tentative").is_none(), "{v6}");
    let d4 = cont.default_routes("-4");
    assert_eq!(d4.len(), 1, "{d4:?}");
    assert_eq!(
        (&d4[0]["gateway"], &d4[0]["dev"]),
        (&"10.70.0.1".into(), &"veth1".into())
    );
    let d6 = cont.default_routes("-6");
    assert_eq!(d6.len(), 1, "{d6:?}");
    assert_eq!(
        (&d6[0]["gateway"], &d6[0]["dev"]),
        (&"fd70::1".into(), &"veth1".into())
    );
    assert!(is_up(&cont.must_link("lo")));
    // Only lo and the peer inside; host: lo, bridge, host end.
    assert_eq!(cont.link_names().len(), 2, "{:?}", cont.link_names());
    assert_eq!(host.link_names().len(), 3, "{:?}", host.link_names());

    assert!(
        common::ping_from(&cont, "10.70.0.1", 5),
        "container cannot ping the bridge over IPv4"
    );
    assert!(
        common::ping_from(&cont, "fd70::1", 5),
        "container cannot ping the bridge over IPv6"
    );
}

/// Shapes of the links in both namespaces, for before/after comparisons.
///
/// A bridge takes its address from its first port and keeps it after the
/// port is gone: that is what attaching a port does to a bridge, so the
/// bridge's address is left out.
fn world(host: &TestNs, cont: &TestNs) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let host_shape = ns_shape(host)
        .into_iter()
        .map(|mut l| {
            if l["kind"] == "bridge" {
                l["address"] = serde_json::Value::Null;
            }
            l
        })
        .collect();
    (host_shape, ns_shape(cont))
}

#[tokio::test(flavor = "current_thread")]
async fn attach_rolls_back_on_failure() {
    require_root!("attach_rolls_back_on_failure");
    let host = TestNs::new("rh");
    let cont = TestNs::new("rc");
    let nl = host.session();
    let inside = cont.session();
    let cont_ns = cont.open();
    let bridge = nl.ensure_bridge("brg0", None).await.unwrap();
    nl.ensure_address(bridge.link.index, net("10.72.0.1/24"))
        .await
        .unwrap();
    let before = world(&host, &cont);

    let attach = |addresses: &'static [&'static str], gateways: &'static [&'static str]| {
        let addresses: Vec<IpNetwork> = addresses.iter().map(|a| net(a)).collect();
        let gateways: Vec<IpAddr> = gateways.iter().map(|g| ip(g)).collect();
        let (nl, inside, cont_ns, b) = (&nl, &inside, &cont_ns, bridge.link.index);
        async move {
            nl.attach(
                inside,
                &Attachment {
                    bridge: b,
                    host_name: "veth0a480002",
                    peer_name: "veth1",
                    peer_netns: cont_ns.as_fd(),
                    mtu: None,
                    addresses: &addresses,
                    gateways: &gateways,
                    peer_link_local: false,
                    peer_mac: None,
                    isolated: false,
                    learning: netplumb::Learning::On,
                },
            )
            .await
        }
    };

    // Gateway outside the peer's subnet: the route step fails.
    let err = attach(&["10.72.0.2/24"], &["10.73.0.1"]).await.unwrap_err();
    assert_eq!(err.step(), Some(Step::AddRoute), "{err:?}");
    assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err:?}");
    assert!(err.to_string().starts_with("add route"), "{err}");
    assert!(
        host.links_of_kind("veth").is_empty(),
        "{:?}",
        host.link_names()
    );
    assert!(
        cont.links_of_kind("veth").is_empty(),
        "{:?}",
        cont.link_names()
    );
    assert_eq!(world(&host, &cont), before);

    // The second gateway fails after the first route went in.
    let err = attach(&["10.72.0.2/24"], &["10.72.0.1", "fd72::1"])
        .await
        .unwrap_err();
    assert_eq!(err.step(), Some(Step::AddRoute), "{err:?}");
    assert!(cont.default_routes("-4").is_empty());
    assert_eq!(world(&host, &cont), before);

    // The same address twice: the address step fails.
    let err = attach(&["10.72.0.2/24", "10.72.0.2/24"], &[])
        .await
        .unwrap_err();
    assert_eq!(err.step(), Some(Step::AddAddress), "{err:?}");
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err:?}");
    assert_eq!(world(&host, &cont), before);

    // A session in the wrong namespace: the peer cannot be found there, so
    // the look-up step fails after the pair exists; the pair is removed.
    let addresses = [net("10.72.0.2/24")];
    let err = nl
        .attach(
            &nl,
            &Attachment {
                bridge: bridge.link.index,
                host_name: "veth0a480002",
                peer_name: "veth1",
                peer_netns: cont_ns.as_fd(),
                mtu: None,
                addresses: &addresses,
                gateways: &[],
                peer_link_local: false,
                peer_mac: None,
                isolated: false,
                learning: netplumb::Learning::On,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.step(), Some(Step::LookUpLink), "{err:?}");
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err:?}");
    assert_eq!(world(&host, &cont), before);

    // The peer's name is taken in the container: nothing is created and
    // the existing device is left alone.
    common::add_plain_device(&cont, "veth1");
    let before_taken = world(&host, &cont);
    let err = attach(&["10.72.0.2/24"], &["10.72.0.1"]).await.unwrap_err();
    assert_eq!(err.step(), Some(Step::CreateVeth), "{err:?}");
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err:?}");
    assert_eq!(world(&host, &cont), before_taken);
    cont.ip(&["link", "del", "veth1"]);

    // And after all that, the same attachment succeeds.
    let ok = attach(&["10.72.0.2/24"], &["10.72.0.1"]).await.unwrap();
    let h = host.must_link("veth0a480002");
    assert_eq!(h["master"], "brg0");
    assert_eq!(ifindex(&h), ok.host_index);
    // Neither end of an IPv4-only attachment has an IPv6 address.
    assert_eq!(h["inet6_addr_gen_mode"], "none", "{h}");
    assert_eq!(cont.must_link("veth1")["inet6_addr_gen_mode"], "none");
    assert!(common::ping_from(&cont, "10.72.0.1", 5));
}

// ---------------------------------------------------------------- sysctl

#[test]
fn forwarding_is_switched_on_in_the_namespace_only() {
    use netplumb::sysctl::{enable_forwarding, IpVersion};
    require_root!("forwarding_is_switched_on_in_the_namespace_only");
    let ns = TestNs::new("fwd");
    let read = |key: &str| ns.run(&["cat", key]).trim().to_string();
    for version in [IpVersion::V4, IpVersion::V6] {
        let path = version.forwarding_path();
        assert_eq!(read(path), "0", "a new namespace forwards already: {path}");
        ns.open()
            .enter(|| enable_forwarding(version))
            .unwrap()
            .unwrap();
        assert_eq!(read(path), "1", "{path} not switched on");
        // Finding it on changes nothing and is no error.
        ns.open()
            .enter(|| enable_forwarding(version))
            .unwrap()
            .unwrap();
        assert_eq!(read(path), "1", "{path}");
    }
}
