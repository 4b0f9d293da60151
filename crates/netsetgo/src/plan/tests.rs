//! Given a network and an address, the exact plan.

use super::*;

fn request(network: Network, publish: &[&str]) -> Request {
    Request {
        network,
        quota: None,
        address: None,
        prefix: "veth".into(),
        nic: None,
        unpublish: Vec::new(),
        publish: publish.iter().map(|p| Mapping::parse(p).unwrap()).collect(),
        known: crate::request::Known::Defined,
    }
}

fn lease(ifname: &str) -> Lease {
    Lease {
        address: "10.10.10.2".parse().unwrap(),
        uid: 1000,
        ifindex: 0,
        ifname: ifname.into(),
        container: None,
    }
}

fn texts<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[test]
fn deterministic_mac_and_its_link_local() {
    let mac = mac_of("10.10.10.2".parse().unwrap());
    assert_eq!(mac, [0x02, 0x6e, 10, 10, 10, 2]);
    assert_eq!(
        GuardedPort::new("veth0a0a0a02", mac, &[]).ipv6,
        vec!["fe80::6e:aff:fe0a:a02".parse::<Ipv6Addr>().unwrap()]
    );
    assert_eq!(mac_text(mac), "02:6e:0a:0a:0a:02");
}

#[test]
fn the_guard_lets_through_what_the_lease_and_the_mac_derive() {
    let mut network = Network::example(Some("fd00:10::1/64"));
    let lease = lease("veth0a0a0a02");
    let plan = Plan::of_lease(&request(network.clone(), &[]), &lease, &[]);
    let port = plan.guard.unwrap();
    assert_eq!(port.ifname, "veth0a0a0a02");
    assert_eq!(port.mac, [0x02, 0x6e, 10, 10, 10, 2]);
    assert_eq!(port.ipv4, vec![lease.address]);
    let v6: Vec<String> = port.ipv6.iter().map(ToString::to_string).collect();
    assert_eq!(v6, ["fd00:10::2", "fe80::6e:aff:fe0a:a02"]);
    network.gateway6 = None;
    let m = Mapping::parse("tcp:8080:80").unwrap();
    let plan = Plan::of_lease(&request(network, &[]), &lease, &[m]);
    assert_eq!(plan.guard.unwrap().ipv6.len(), 1);
    let p = &plan.publications[0].kernel;
    assert_eq!(p.targets, vec![IpAddr::V4(lease.address)]);
    assert_eq!((p.host_port, p.container_port), (8080, 80));
}

#[test]
fn targets_follow_the_host_addresss_family() {
    let owner = "10.10.10.2".parse().unwrap();
    let shown = |text: &str| -> Vec<String> {
        let plan = Plan::new(
            &request(Network::example(Some("fd00:10::1/64")), &[text]),
            owner,
        );
        texts(&plan.publications[0].kernel.targets)
    };
    assert_eq!(shown("tcp:8080:80"), ["10.10.10.2", "fd00:10::2"]);
    assert_eq!(shown("tcp:192.0.2.1:8080:80"), ["10.10.10.2"]);
    assert_eq!(shown("tcp:[2001:db8::1]:8080:80"), ["fd00:10::2"]);
    let plan = Plan::new(&request(Network::example(None), &["tcp:8080:80"]), owner);
    assert_eq!(plan.publications[0].kernel.targets.len(), 1);
}

/// A network, a lease, and the addresses, gateways and host end's name it
/// implies.
type Case<'a> = (Network, &'a str, &'a [&'a str], &'a [&'a str], &'a str);

/// Given a network and an address, every field of the plan.
#[test]
fn a_network_and_an_address_give_the_exact_plan() {
    let mut dual = Network::example(Some("fd00:10::1/64"));
    dual.isolate = true;
    let mut open = Network::example(None);
    open.guard = false;
    let cases: [Case; 3] = [
        (
            dual,
            "10.10.10.7",
            &["10.10.10.7/24", "fd00:10::7/64"],
            &["10.10.10.1", "fd00:10::1"],
            "veth0a0a0a07",
        ),
        (
            open,
            "10.10.10.254",
            &["10.10.10.254/24"],
            &["10.10.10.1"],
            "veth0a0a0afe",
        ),
        (
            Network::example(None),
            "10.10.10.2",
            &["10.10.10.2/24"],
            &["10.10.10.1"],
            "veth0a0a0a02",
        ),
    ];
    for (network, address, addresses, gateways, host_name) in cases {
        let (guard, isolate) = (network.guard, network.isolate);
        let req = request(network, &["udp:5353:53"]);
        let address: Ipv4Addr = address.parse().unwrap();
        let plan = Plan::new(&req, address);
        let [a, b, c, d] = address.octets();
        let mac = [0x02, 0x6e, a, b, c, d];
        assert_eq!(plan.address, address);
        assert_eq!(texts(&plan.addresses), addresses);
        assert_eq!(texts(&plan.gateways), gateways);
        assert_eq!(plan.mac, mac);
        assert_eq!(plan.host_name, host_name);
        assert_eq!(plan.peer_name, "veth1");
        assert_eq!(plan.configure, Configure::Static);
        assert_eq!(plan.isolated, isolate);
        assert_eq!(
            plan.learning,
            if guard {
                Learning::Pinned(mac)
            } else {
                Learning::On
            }
        );
        assert_eq!(plan.guard.is_some(), guard);
        let p = &plan.publications[0];
        assert_eq!(p.mapping.to_string(), "udp:5353:53");
        assert_eq!(p.kernel.owner, address);
        assert_eq!(
            texts(&p.kernel.targets),
            addresses
                .iter()
                .map(|a| a.split('/').next().unwrap())
                .collect::<Vec<_>>()
        );
        // Read back from its lease, the same plan.
        let lease = Lease {
            address,
            uid: 1000,
            ifindex: 9,
            ifname: plan.host_name.clone(),
            container: None,
        };
        // Its guard keyed by the lease's host end (the new plan's: not
        // known before the pair exists).
        let read = Plan::of_lease(&req, &lease, &req.publish);
        assert_eq!(
            read.guard.as_ref().map(|g| g.ifindex),
            plan.guard.as_ref().map(|_| 9)
        );
        assert_eq!(
            plan.guard.as_ref().map(|g| g.ifindex),
            plan.guard.as_ref().map(|_| 0)
        );
        let plan = Plan {
            guard: plan.guard.map(|g| g.at(9)),
            ..plan
        };
        assert_eq!(read, plan);
        assert_eq!(plan.mappings(), req.publish);
    }
}

#[test]
fn lxc_user_nics_create_names_the_peer_and_leaves_it_to_dhcp() {
    let mut req = request(Network::example(Some("fd00:10::1/64")), &[]);
    req.nic = Some(Nic::Create {
        ifname: "eth0".into(),
    });
    req.prefix = "lxc".into();
    let plan = Plan::new(&req, "10.10.10.3".parse().unwrap());
    assert_eq!(
        (plan.peer_name.as_str(), plan.configure),
        ("eth0", Configure::Dhcp)
    );
    assert_eq!(plan.host_name, "lxc0a0a0a03");
    let target = NetNsFd::current();
    let attachment = plan.attachment(&req.network, 1, Some(1400), target.fd());
    // IPv4 is left to DHCP; IPv6 (which rootlesskit's client leaves
    // alone) is the call's: the lease's address, the route, link-local.
    let v6: IpNetwork = "fd00:10::3/64".parse().unwrap();
    let gw6: IpAddr = "fd00:10::1".parse().unwrap();
    assert_eq!(plan.addresses[1], v6);
    assert_eq!(
        (attachment.addresses, attachment.gateways),
        (&[v6][..], &[gw6][..])
    );
    assert!(attachment.peer_link_local);
    assert_eq!(
        (attachment.mtu, attachment.peer_mac),
        (Some(1400), Some(plan.mac))
    );
    // Without IPv6 on the network, nothing at all.
    let mut v4_only = req.clone();
    v4_only.network = Network::example(None);
    let plan4 = Plan::new(&v4_only, "10.10.10.3".parse().unwrap());
    let attachment = plan4.attachment(&v4_only.network, 1, None, target.fd());
    assert!(attachment.addresses.is_empty() && attachment.gateways.is_empty());
    assert!(!attachment.peer_link_local);
    // Configured by the call, the peer gets its addresses and link-local.
    req.nic = None;
    let plan = Plan::new(&req, "10.10.10.3".parse().unwrap());
    let attachment = plan.attachment(&req.network, 1, Some(1400), target.fd());
    assert_eq!(attachment.addresses, plan.addresses.as_slice());
    assert_eq!(attachment.gateways, plan.gateways.as_slice());
    assert!(attachment.peer_link_local);
    assert_eq!(attachment.learning, Learning::Pinned(plan.mac));
}

/// Any open descriptor stands for the target namespace here: the plan
/// only passes it on.
struct NetNsFd(std::fs::File);

impl NetNsFd {
    fn current() -> NetNsFd {
        NetNsFd(std::fs::File::open("/dev/null").unwrap())
    }
    fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.0.as_fd()
    }
}

#[test]
fn a_host_ends_name_gives_back_its_lease_as_a_hint() {
    for address in ["10.10.10.2", "172.30.255.254", "0.0.0.1"] {
        let address: Ipv4Addr = address.parse().unwrap();
        let name = host_name("veth", address);
        assert_eq!(address_of_host_name("veth", &name), Some(address));
    }
    assert_eq!(address_of_host_name("lxc", "veth0a0a0a02"), None);
    assert_eq!(address_of_host_name("veth", "vethzz"), None);
    assert_eq!(address_of_host_name("veth", "veth"), None);
}
