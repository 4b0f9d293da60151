//! lxc-user-nic mode: its command line against the installed binary, and
//! the DHCP responder (SECURITY.md requirement 17).
//!
//! The responder first against the library, in a world: a veth pair
//! `h0`/`c0`, the responder forked (as nobody) on `h0`, a client's raw
//! socket on `c0` that may forge any Ethernet source. Then against the
//! installed setuid binary: `netsetgo create ...` as an unprivileged user,
//! hostile DHCP traffic from inside the container, which gets nothing and
//! changes nothing, and the real exchange, which gets exactly the lease;
//! `netsetgo delete ...` of one's own interface only.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use dhcproto::v4;

use netsetgo::dhcp::message::code;
use netsetgo::dhcp::responder::{Responder, MAX_PACKETS};
use netsetgo::dhcp::{client_request, MessageType, Terms};
use netsetgo_e2e::checks::{assert_refused, assert_refused_unchanged, assert_unchanged, wire_line};
use netsetgo_e2e::dhcp::{
    assert_holds_nothing, gone_within, in_netns_of, in_syscall, index_in, mac_in, Client,
};
use netsetgo_e2e::fixtures::{uid, wait_for_ports, world_with, A, B, POLICY};
use netsetgo_e2e::frames::link_local;
use netsetgo_e2e::nft::NftTable;
use netsetgo_e2e::traffic::{netns_prefix, request, token, Server};
use netsetgo_e2e::{ensure_worker, ns_of, require_root, Container, Lease, Snapshot, World};

/// nobody: what the library's responder runs as here.
const NOBODY: u32 = 65534;
const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

fn requested(address: &str) -> (u8, Vec<u8>) {
    let address: Ipv4Addr = address.parse().unwrap();
    (code::REQUESTED_ADDRESS, address.octets().to_vec())
}

fn server_id(address: &str) -> (u8, Vec<u8>) {
    let address: Ipv4Addr = address.parse().unwrap();
    (code::SERVER_ID, address.octets().to_vec())
}

/// The pair in `world`, a client on c0 and a responder on h0 for c0's MAC;
/// the responder's pid (a child of this process).
fn library_responder(world: &World) -> (Terms, Client, u32) {
    for cmd in [
        "ip link add h0 type veth peer name c0",
        "ip link set h0 up",
        "ip link set c0 up",
    ] {
        let argv: Vec<&str> = cmd.split(' ').collect();
        world.run(&argv).expect_success(cmd);
    }
    let terms = Terms {
        mac: mac_in(world.pid(), "c0"),
        address: "10.10.10.7".parse().unwrap(),
        gateway: "10.10.10.1/24".parse().unwrap(),
        dns: vec!["10.10.10.1".parse().unwrap()],
    };
    let client = Client::on(world.pid(), "c0");
    let h0 = index_in(world.pid(), "h0");
    let forked = terms.clone();
    // Forked from inside the world, so that the world takes it down.
    let pid = in_netns_of(world.pid(), move || {
        let responder = Responder::open(NOBODY, NOBODY).expect("open");
        responder.bind(h0, &forked).expect("bind");
        responder
            .start()
            .expect("start")
            .expect("a bound responder")
    });
    // It sheds its privileges after the fork, then waits for frames: what
    // `/proc` shows of it before it polls is still in the middle of that.
    let waiting =
        netsetgo_e2e::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            in_syscall(pid, libc::SYS_poll)
        });
    assert!(waiting, "responder {pid} never waited in poll");
    (terms, client, pid)
}

/// The exit status of our child `pid`, waiting at most 5 s (then killing
/// it: `None`).
fn exit_status(pid: u32) -> Option<i32> {
    let exited = gone_within(pid, Duration::from_secs(5));
    let mut status = 0;
    // SAFETY: our own child, not yet reaped.
    unsafe {
        if !exited {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        libc::waitpid(pid as i32, &mut status, 0);
    }
    (exited && libc::WIFEXITED(status)).then(|| libc::WEXITSTATUS(status))
}

/// Hostile packets from inside: another Ethernet source, another chaddr,
/// another address or server, a garbled magic cookie, a truncated packet,
/// and a packet as large as the MTU allows, full of unknown options.
fn hostile(mac: [u8; 6]) -> Vec<([u8; 6], Vec<u8>)> {
    let mut garbled = client_request(mac, MessageType::Discover, &[]);
    garbled[28 + 236] ^= 0xff;
    // 28 + 244 + 4 * 257 + 200 = 1500 bytes: the MTU.
    let unknown: Vec<(u8, Vec<u8>)> = (224..229)
        .map(|code| {
            let len = if code < 228 { 255 } else { 198 };
            (code, vec![0xa5; len])
        })
        .collect();
    let huge = client_request(mac, MessageType::Discover, &unknown);
    assert_eq!(huge.len(), 1500);
    vec![
        (OTHER_MAC, client_request(mac, MessageType::Discover, &[])),
        (mac, client_request(OTHER_MAC, MessageType::Discover, &[])),
        (
            mac,
            client_request(mac, MessageType::Request, &[requested("10.10.10.250")]),
        ),
        (
            mac,
            client_request(
                mac,
                MessageType::Request,
                &[requested("10.10.10.2"), server_id("10.10.10.99")],
            ),
        ),
        (mac, garbled),
        (mac, vec![0x45; 7]),
        (mac, huge),
    ]
}

/// rootlesskit's exchange from `mac`: DISCOVER -> OFFER, REQUEST -> ACK,
/// each for `address` and to `mac`.
#[track_caller]
fn exchange(client: &Client, mac: [u8; 6], address: Ipv4Addr, gateway: &str) {
    client.send(mac, &client_request(mac, MessageType::Discover, &[]));
    let offers = client.replies(Duration::from_secs(2));
    assert_eq!(offers.len(), 1, "one OFFER: {offers:?}");
    let (to, offer) = &offers[0];
    assert_eq!((*to, offer.yiaddr()), (mac, address));
    assert_eq!(offer.opts().msg_type(), Some(v4::MessageType::Offer));
    let asked = [requested(&address.to_string()), server_id(gateway)];
    client.send(mac, &client_request(mac, MessageType::Request, &asked));
    let acks = client.replies(Duration::from_secs(2));
    assert_eq!(acks.len(), 1, "one ACK: {acks:?}");
    assert_eq!(acks[0].1.opts().msg_type(), Some(v4::MessageType::Ack));
    assert_eq!((acks[0].0, acks[0].1.yiaddr()), (mac, address));
}

#[test]
fn library_responder_holds_nothing_and_answers_only_its_lease() {
    require_root!();
    let world = World::new();
    let (terms, client, pid) = library_responder(&world);
    assert_holds_nothing(pid, NOBODY, NOBODY);
    for (src, packet) in hostile(terms.mac) {
        client.send(src, &packet);
    }
    assert_eq!(client.replies(Duration::from_millis(300)), vec![]);
    exchange(&client, terms.mac, terms.address, "10.10.10.1");
    assert_eq!(exit_status(pid), Some(0), "done after its ACK");
}

#[test]
fn library_responder_is_gone_with_its_interface() {
    require_root!();
    let world = World::new();
    let (_, _, pid) = library_responder(&world);
    world
        .run(&["ip", "link", "del", "h0"])
        .expect_success("delete h0");
    assert_eq!(exit_status(pid), Some(0));
}

#[test]
fn library_responder_ends_after_a_flood_without_an_answer() {
    require_root!();
    let world = World::new();
    let (terms, client, pid) = library_responder(&world);
    let other = client_request(OTHER_MAC, MessageType::Discover, &[]);
    for _ in 0..MAX_PACKETS {
        client.send(terms.mac, &other);
    }
    assert_eq!(exit_status(pid), Some(0));
    client.send(
        terms.mac,
        &client_request(terms.mac, MessageType::Discover, &[]),
    );
    assert_eq!(client.replies(Duration::from_millis(300)), vec![]);
}

/// The responder processes in `world`: netsetgo processes of the worker.
fn responders(world: &World) -> Vec<u32> {
    let net = ns_of(world.pid(), "net");
    let worker = ensure_worker().uid.to_string();
    fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            ns_of(pid, "net") == net
                && netsetgo_e2e::dhcp::status_field(pid, "Name") == "netsetgo"
                && netsetgo_e2e::dhcp::status_field(pid, "Uid").starts_with(&worker)
        })
        .collect()
}

/// The one responder in `world` not in `before`, once it waits for frames
/// (in `poll`), waiting at most 5 s for that: the helper forks it after
/// its line, and only then does it shed the helper's identity and
/// capabilities, so what `/proc` shows of it before is the helper's.
fn new_responder(world: &World, before: &[u32]) -> u32 {
    let mut new = Vec::new();
    let waiting =
        netsetgo_e2e::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            new = responders(world)
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect();
            new.len() == 1 && in_syscall(new[0], libc::SYS_poll)
        });
    assert_eq!(new.len(), 1, "one new responder: {new:?}");
    assert!(waiting, "responder {} never waited in poll", new[0]);
    new[0]
}

/// `netsetgo create /dev/null dummy PID veth brg0 eth0` as the container's
/// user, as rootlesskit calls it; returns the lease and the responder's
/// pid, after checking the line and that eth0 has no IPv4 address or
/// route (DHCP's to give) and, on a network without IPv6 (`gateway6`
/// `None`), no IPv6 either; with it, exactly its lease's IPv6 address (see
/// [`ipv6_of_lease`]), its link-local address and the default route via
/// `gateway6`.
fn create(world: &World, c: &Container, gateway6: Option<&str>) -> (Lease, u32) {
    let before = responders(world);
    let pid = c.pid_arg();
    let args = ["create", "/dev/null", "dummy", &pid, "veth", "brg0", "eth0"];
    let out = world.netsetgo(c.user(), &args);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(out.stderr, "");
    let fields: Vec<&str> = out.stdout.trim_end().split(':').collect();
    let inside = c.snapshot();
    let eth0 = inside.link("eth0").expect("eth0 in the container");
    assert_eq!(fields.len(), 4, "{out}");
    assert_eq!(fields[0], "eth0");
    assert_eq!(fields[1], eth0["ifindex"].to_string());
    assert_eq!(fields[3], eth0["link_index"].to_string());
    assert!(inside.ipv4_of("eth0").is_empty(), "no address: {inside:?}");
    assert_eq!(inside.default_route(), None, "no route: {inside:?}");
    let lease = world
        .leases("brg0")
        .into_iter()
        .find(|l| l.ifname == fields[2])
        .unwrap_or_else(|| panic!("no lease for {}", fields[2]));
    assert_eq!(lease.uid, uid(c.user()));
    let (v6, routes6) = match gateway6 {
        None => (vec![], vec![]),
        Some(gw6) => {
            let link_local = Ipv6Addr::from(link_local(mac_in(c.pid(), "eth0")));
            let mut v6 = vec![
                format!("{}/64", ipv6_of_lease(lease.address)),
                format!("{link_local}/64"),
            ];
            v6.sort();
            (v6, vec![(gw6.to_string(), "eth0".to_string())])
        }
    };
    assert_eq!(inside.ipv6_of("eth0"), v6, "{inside:?}");
    assert_eq!(Snapshot::ipv6_default_routes(c.pid()), routes6);
    let responder = new_responder(world, &before);
    c.exec(&["ip", "link", "set", "eth0", "up"])
        .expect_success("eth0 up");
    (lease, responder)
}

#[test]
fn hostile_dhcp_from_a_container_gets_nothing_and_changes_nothing() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    let (lease, responder) = create(&world, &c, None);
    let worker = ensure_worker();
    assert_holds_nothing(responder, worker.uid, worker.gid);
    let mac = mac_in(c.pid(), "eth0");
    let client = Client::on(c.pid(), "eth0");
    assert_unchanged(&world, &[&c], || {
        for (src, packet) in hostile(mac) {
            client.send(src, &packet);
        }
        assert_eq!(client.replies(Duration::from_millis(500)), vec![]);
        c.exec(&["ip", "-4", "addr", "show", "eth0"])
    });
    // Still there, it answers the real exchange with exactly the lease.
    exchange(&client, mac, lease.address, "10.10.10.1");
    assert!(gone_within(responder, Duration::from_secs(5)));
}

#[test]
fn a_dhcp_flood_from_a_container_gets_nothing_and_ends_its_responder() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    let (_, responder) = create(&world, &c, None);
    let mac = mac_in(c.pid(), "eth0");
    let client = Client::on(c.pid(), "eth0");
    assert_unchanged(&world, &[&c], || {
        let flood = hostile(mac);
        for i in 0..4 * MAX_PACKETS as usize {
            let (src, packet) = &flood[i % flood.len()];
            client.send(*src, packet);
        }
        assert_eq!(client.replies(Duration::from_millis(500)), vec![]);
        c.exec(&["ip", "-4", "addr", "show", "eth0"])
    });
    assert!(gone_within(responder, Duration::from_secs(5)));
}

#[test]
fn lxc_user_nic_delete_removes_ones_own_interface_only() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    let (lease, responder) = create(&world, &c, None);
    let nspath = format!("/proc/{}/ns/net", c.pid());
    let delete = |host: &str| {
        vec![
            "delete".to_string(),
            "/dev/null".into(),
            "dummy".into(),
            nspath.clone(),
            "veth".into(),
            "brg0".into(),
            host.to_string(),
        ]
    };
    let own = delete(&lease.ifname);
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    // Another user, and another host end, are refused.
    assert_refused(&world, &[&c], B, &own);
    let other = delete("veth0a0a0a63");
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    assert_refused(&world, &[&c], A, &other);
    // Its own: both ends and the lease gone, and with them the responder.
    let out = world.netsetgo(A, &own);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(c.snapshot().link("eth0").is_none(), "eth0 is still there");
    assert!(world.snapshot().link(&lease.ifname).is_none());
    assert_eq!(world.leases("brg0"), vec![]);
    assert!(gone_within(responder, Duration::from_secs(5)));
}

#[test]
fn lxc_user_nic_create_needs_a_granted_bridge_and_a_veth() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    let pid = c.pid_arg();
    assert_refused(
        &world,
        &[&c],
        A,
        &["create", "/dev/null", "dummy", &pid, "veth", "brg9", "eth0"],
    );
    for bad in [
        [
            "create",
            "/dev/null",
            "dummy",
            &pid,
            "macvlan",
            "brg0",
            "eth0",
        ],
        ["create", "/dev/null", "dummy", &pid, "veth", "brg0", "a/b"],
    ] {
        assert_refused_unchanged(&world, &[&c], 2, || world.netsetgo(A, &bad));
    }
}

/// IPv6 in the lxc-user-nic form: a guarded network with IPv6.
const POLICY6: &str = "\
network six bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64 guard=yes
allow nsg-a six 4
";
const GATEWAY6: &str = "fd00:10::1";

/// The names of the world's guard chains (`port_<host end>`), whatever
/// tables hold them.
fn guard_chains(world: &World) -> Vec<String> {
    NftTable::guard(world)
        .map(|t| t.port_chains().into_keys().collect())
        .unwrap_or_default()
}

/// The IPv6 address the helper derives for the IPv4 lease `v4` of
/// 10.10.10.0/24 on fd00:10::/64: the same offset.
fn ipv6_of_lease(v4: Ipv4Addr) -> Ipv6Addr {
    let offset = u32::from(v4) & 0xff;
    Ipv6Addr::from(u128::from("fd00:10::".parse::<Ipv6Addr>().unwrap()) + u128::from(offset))
}

/// Whether one of up to 5 `ping -6` from the container reaches `address`
/// (the first may wait for neighbour discovery).
fn pings6(c: &Container, address: &str) -> bool {
    (0..5).any(|_| {
        c.exec(&["ping", "-6", "-n", "-q", "-c1", "-W1", address])
            .success()
    })
}

/// What rootlesskit does after its DHCP exchange: the leased IPv4 address
/// and the default route via the gateway, with `ip`.
fn configure_ipv4_as_rootlesskit(c: &Container, lease: &Lease) {
    let address = format!("{}/24", lease.address);
    c.exec(&["ip", "addr", "add", &address, "dev", "eth0"])
        .expect_success("ip addr add");
    c.exec(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "10.10.10.1",
        "dev",
        "eth0",
    ])
    .expect_success("ip route add default");
}

#[test]
fn lxc_user_nic_create_on_an_ipv6_network_sets_ipv6_and_leaves_ipv4_to_dhcp() {
    require_root!();
    let world = world_with(POLICY6);
    let c = world.container(A);
    let (lease, _) = create(&world, &c, Some(GATEWAY6));
    let own6 = ipv6_of_lease(lease.address).to_string();
    assert_eq!(
        guard_chains(&world),
        [format!("port_{}", lease.ifname)],
        "the port is guarded"
    );

    // Through the guard (neighbour discovery for its address and its
    // link-local one included): the gateway, and a container wired by
    // `-pid`, both ways; a TCP server in that container sees its address.
    let other = world.container(A);
    let line = wire_line(&world, &other, &[]);
    let other6 = "fd00:10::3";
    assert!(line.contains(&format!("{other6}/64")), "{line}");
    assert!(pings6(&c, GATEWAY6), "eth0 cannot reach {GATEWAY6}");
    assert!(pings6(&c, other6), "eth0 cannot reach {other6}");
    assert!(pings6(&other, &own6), "{other6} cannot reach {own6}");
    let mut server = Server::start(&netns_prefix(other.pid()), "tcp", "::", 8080);
    let t = token();
    let out = request(&netns_prefix(c.pid()), "tcp", other6, 8080, &t);
    assert!(out.success(), "TCP over IPv6: {out}");
    assert_eq!(
        server.peer_of(&t, Duration::from_secs(5)),
        Some(own6.clone())
    );

    // IPv4 is still DHCP's: the real exchange gets the lease; once
    // configured as rootlesskit does, `-check` finds the wiring intact,
    // and names the IPv6 address when it is taken away.
    let mac = mac_in(c.pid(), "eth0");
    exchange(
        &Client::on(c.pid(), "eth0"),
        mac,
        lease.address,
        "10.10.10.1",
    );
    configure_ipv4_as_rootlesskit(&c, &lease);
    let pid = c.pid_arg();
    let check = world.netsetgo(A, &["-check", "-pid", &pid]);
    assert_eq!(check.code(), Some(0), "{check}");
    let own6_cidr = format!("{own6}/64");
    c.exec(&["ip", "-6", "addr", "del", &own6_cidr, "dev", "eth0"])
        .expect_success("ip -6 addr del");
    let check = world.netsetgo(A, &["-check", "-pid", &pid]);
    assert_eq!(check.code(), Some(1), "{check}");
    assert!(
        check
            .stderr
            .contains(&format!("eth0 lacks address {own6_cidr}")),
        "{check}"
    );
}

#[test]
fn lxc_user_nic_ipv6_is_freed_by_delete_and_by_its_reaper() {
    require_root!();
    let world = world_with(POLICY6);
    let mut c = world.container(A);
    let (first, _) = create(&world, &c, Some(GATEWAY6));
    assert_eq!(guard_chains(&world), [format!("port_{}", first.ifname)]);
    // The container exits: its reaper frees its lease and guard with no
    // call, and a new container gets the same IPv4 lease, so the same
    // IPv6 address.
    c.kill();
    wait_for_ports(&world, 0);
    let freed = netsetgo_e2e::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        world.leases("brg0").is_empty() && guard_chains(&world).is_empty()
    });
    assert!(freed, "not freed: {:?}", world.leases("brg0"));
    let d = world.container(A);
    let (second, _) = create(&world, &d, Some(GATEWAY6));
    assert_eq!(second.address, first.address);
    assert_eq!(world.leases("brg0"), vec![second.clone()]);
    assert_eq!(guard_chains(&world), [format!("port_{}", second.ifname)]);
    // delete: eth0, its IPv6 address and route, the lease and the guard go.
    let nspath = format!("/proc/{}/ns/net", d.pid());
    let args = [
        "delete",
        "/dev/null",
        "dummy",
        &nspath,
        "veth",
        "brg0",
        &second.ifname,
    ];
    let out = world.netsetgo(A, &args);
    assert_eq!(out.code(), Some(0), "{out}");
    let inside = d.snapshot();
    assert!(inside.link("eth0").is_none(), "{inside:?}");
    assert_eq!(Snapshot::ipv6_default_routes(d.pid()), vec![]);
    assert_eq!(world.leases("brg0"), vec![]);
    assert_eq!(guard_chains(&world), Vec::<String>::new());
}

/// A pipe whose write end is full: a write of one more byte blocks until
/// the read end is read. Returns (read end, write end, the pipe's inode).
fn full_pipe() -> (fs::File, fs::File, u64) {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::MetadataExt;
    let mut fds = [0; 2];
    // SAFETY: two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just returned to us and are owned by nothing else.
    let (read, write) = unsafe { (fs::File::from_raw_fd(fds[0]), fs::File::from_raw_fd(fds[1])) };
    let flags = |set: libc::c_int| {
        // SAFETY: fcntl on an fd we own.
        assert_eq!(unsafe { libc::fcntl(fds[1], libc::F_SETFL, set) }, 0);
    };
    flags(libc::O_NONBLOCK);
    for chunk in [4096, 1] {
        let bytes = vec![b'x'; chunk];
        // Bounded: a pipe holds at most 1 MiB by default.
        for _ in 0..(1 << 20) {
            // SAFETY: writes from a buffer of that length.
            if unsafe { libc::write(fds[1], bytes.as_ptr().cast(), chunk) } < 0 {
                break;
            }
        }
    }
    flags(0);
    let inode = read.metadata().expect("the pipe").ino();
    (read, write, inode)
}

/// The processes named `name` whose fd `fd` is the pipe `inode`.
fn holding(name: &str, fd: u32, inode: u64) -> Vec<u32> {
    let pipe = format!("pipe:[{inode}]");
    fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            netsetgo_e2e::dhcp::status_field(pid, "Name") == name
                && fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                    .is_ok_and(|t| t.to_string_lossy() == pipe)
        })
        .collect()
}

/// rootlesskit reads the helper's output to its end before its DHCP client
/// starts, so the responder must never hold the caller's stdout, not even
/// until its first run. The helper's stdout here is a pipe kept full: the
/// helper blocks writing its line, and while it does it has no child (a
/// responder forked before the line, as before, would exist by then and
/// hold the pipe until it first ran). Once the test reads, the output ends
/// with the helper's exit while its responder lives on, holding nothing
/// but /dev/null and its socket, and answers the lease.
#[test]
fn the_responder_is_forked_after_the_line_and_never_holds_the_callers_output() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    let before = responders(&world);
    let (mut read, write, inode) = full_pipe();
    let bin = netsetgo_e2e::installed_binary()
        .to_string_lossy()
        .into_owned();
    let pid = c.pid_arg();
    let args = [
        &bin,
        "create",
        "/dev/null",
        "dummy",
        &pid,
        "veth",
        "brg0",
        "eth0",
    ];
    let mut cmd = world.command(Some(c.user()), &args);
    cmd.stdin(std::process::Stdio::null())
        .stdout(write)
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn netsetgo");
    drop(cmd); // our copy of the write end
    let writes = [libc::SYS_write, libc::SYS_writev].map(|n| format!("{n} 0x1 "));
    let mut helper = None;
    let blocked =
        netsetgo_e2e::wait_until(Duration::from_secs(30), Duration::from_millis(10), || {
            helper = holding("netsetgo", 1, inode).first().copied();
            helper.is_some_and(|h| {
                let call = fs::read_to_string(format!("/proc/{h}/syscall")).unwrap_or_default();
                writes.iter().any(|w| call.starts_with(w.as_str()))
            })
        });
    let helper = helper.expect("the helper holds the pipe on fd 1");
    assert!(blocked, "helper {helper} never blocked writing to fd 1");
    let children = fs::read_to_string(format!("/proc/{helper}/task/{helper}/children"));
    assert_eq!(
        children.expect("children"),
        "",
        "no responder before the line"
    );
    assert_eq!(
        responders(&world).len(),
        before.len() + 1,
        "only the helper"
    );
    let (sender, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut read, &mut out);
        let _ = sender.send(out);
    });
    let out = ended
        .recv_timeout(Duration::from_secs(30))
        .expect("the output ends");
    let status = child.wait().expect("wait for netsetgo");
    assert!(status.success(), "{status}");
    let line = String::from_utf8_lossy(&out)
        .trim_start_matches('x')
        .to_string();
    let fields: Vec<&str> = line.trim_end().split(':').collect();
    assert_eq!((fields.len(), fields[0]), (4, "eth0"), "{line:?}");
    let responder = new_responder(&world, &before);
    let worker = ensure_worker();
    assert_holds_nothing(responder, worker.uid, worker.gid);
    let lease = world
        .leases("brg0")
        .into_iter()
        .find(|l| l.ifname == fields[2])
        .unwrap_or_else(|| panic!("no lease for {}", fields[2]));
    c.exec(&["ip", "link", "set", "eth0", "up"])
        .expect_success("eth0 up");
    let mac = mac_in(c.pid(), "eth0");
    exchange(
        &Client::on(c.pid(), "eth0"),
        mac,
        lease.address,
        "10.10.10.1",
    );
    assert!(gone_within(responder, Duration::from_secs(5)));
}
