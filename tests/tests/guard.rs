//! The guard and isolation (issue 11), end to end. On a `guard=yes`
//! network (the default) a container's host port passes only frames from
//! that container's MAC (02:6e:<its IPv4 octets>) and leased addresses, and
//! ARP and neighbour discovery only for those: a container that takes
//! another container's or the gateway's address, changes its MAC, or
//! forges ARP, IPv4, IPv6, neighbour or router advertisements gets nothing
//! through, and its victims' neighbour entries stay as they were;
//! legitimate traffic still flows. The same attacks on a `guard=no` network do pass, which
//! proves these tests can fail. On an `isolate=yes` network containers
//! reach the gateway but not each other.
//!
//! Forged frames are sent from inside the attacker's network namespace on
//! a raw packet socket ([`Client`]) and looked for, by a marker in each,
//! with raw sockets at the attacker's host end (proof that they were sent),
//! on the bridge and in the other containers.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netsetgo_e2e::checks::{json_object, wire, wire_with};
use netsetgo_e2e::dhcp::Client;
use netsetgo_e2e::fixtures::{wait_for_ports, world_with, A, B, GATEWAY};
use netsetgo_e2e::nft::{NftTable, TABLE};
use netsetgo_e2e::traffic::Outside;
use netsetgo_e2e::{has_flag, require_root, time_scale, Container, Output, World};
use serde_json::{json, Value};

/// The bridge's MAC, read from the world.
fn bridge_mac(world: &World) -> [u8; 6] {
    netsetgo_e2e::dhcp::mac_in(world.pid(), "brg0")
}

/// The MAC the helper gives the container leased 10.10.10.`last`.
fn container_mac(last: u8) -> [u8; 6] {
    [0x02, 0x6e, 10, 10, 10, last]
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The EUI-64 link-local address of `mac`.
fn link_local(mac: [u8; 6]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    a
}

fn ipv6_text(a: [u8; 16]) -> String {
    std::net::Ipv6Addr::from(a).to_string()
}

const BROADCAST: [u8; 6] = [0xff; 6];
/// The all-nodes multicast group's MAC and address.
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// A MAC no container has.
const STRANGER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

fn ip(last: u8) -> [u8; 4] {
    [10, 10, 10, last]
}

fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 UDP datagram (port 9 to 9) carrying `data`.
fn ipv4_udp(src: [u8; 4], dst: [u8; 4], data: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + data.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(data);
    p
}

/// An ARP packet (Ethernet/IPv4), operation `op` (1 request, 2 reply),
/// followed by `trailer` (it ends up in the frame's padding).
fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4], trailer: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa);
    p.extend_from_slice(trailer);
    p
}

/// An IPv6 packet with next header `next` and `payload`, hop limit 255.
fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next);
    p.push(255);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// A UDP datagram (port 9 to 9, no checksum) carrying `data`.
fn udp(data: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(data);
    p
}

/// A router advertisement carrying `data`.
fn router_advertisement(data: &[u8]) -> Vec<u8> {
    let mut p = vec![134, 0, 0, 0];
    // hop limit, flags, router lifetime 1800 s, reachable, retransmit
    p.extend_from_slice(&[64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(data);
    p
}

/// A redirect (to the attacker's own link-local, for the all-nodes
/// address) carrying `data`.
fn redirect(data: &[u8]) -> Vec<u8> {
    let mut p = vec![137, 0, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&link_local(container_mac(4)));
    p.extend_from_slice(&ALL_NODES);
    p.extend_from_slice(data);
    p
}

/// An unsolicited neighbour advertisement (override) for `target`
/// carrying `data`.
fn neighbour_advertisement(target: [u8; 16], data: &[u8]) -> Vec<u8> {
    let mut p = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    p.extend_from_slice(&target);
    p.extend_from_slice(data);
    p
}

/// 16 bytes that mark frame `n` of this test.
fn marker(n: u8) -> Vec<u8> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut m = b"NSGGUARD".to_vec();
    m.extend_from_slice(&nanos.to_be_bytes());
    m.extend_from_slice(&std::process::id().to_be_bytes());
    m[15] = n;
    m
}

fn contains(frame: &[u8], marker: &[u8]) -> bool {
    frame.windows(marker.len()).any(|w| w == marker)
}

/// A network with three containers: the victim (nsg-a, 10.10.10.2), a
/// peer (nsg-a, .3) and the attacker (nsg-b, .4), each checked to reach
/// the gateway and each other.
struct Lab {
    world: World,
    victim: Container,
    peer: Container,
    attacker: Container,
    attacker_host: String,
}

/// `network default` with `keys` (e.g. ` guard=no`).
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
    let lab = Lab {
        world,
        victim,
        peer,
        attacker,
        attacker_host: w.host,
    };
    lab.assert_legitimate_traffic_flows();
    lab
}

impl Lab {
    /// Pings between the gateway and every container, and between the
    /// containers, pass.
    #[track_caller]
    fn assert_legitimate_traffic_flows(&self) {
        let all = [
            (&self.victim, "10.10.10.2"),
            (&self.peer, "10.10.10.3"),
            (&self.attacker, "10.10.10.4"),
        ];
        for (c, own) in all {
            assert!(c.pings(GATEWAY), "{own} cannot reach the gateway");
            for (_, other) in all.iter().filter(|(_, o)| *o != own) {
                assert!(c.pings(other), "{own} cannot reach {other}");
            }
            assert!(world_pings(&self.world, own), "the host cannot reach {own}");
        }
    }
}

/// Whether one of up to 3 pings from the world's own namespace reaches
/// `address`.
fn world_pings(world: &World, address: &str) -> bool {
    (0..3).any(|_| {
        world
            .run(&["ping", "-n", "-q", "-c1", "-W1", address])
            .success()
    })
}

/// Runs `cmd` (split at spaces) as root in `c`'s network namespace.
#[track_caller]
fn inside(c: &Container, cmd: &str) -> Output {
    let argv: Vec<&str> = cmd.split(' ').collect();
    let out = c.exec(&argv);
    out.expect_success(cmd);
    out
}

/// The lladdr of the entry for `address` in `ip -j neigh show` output
/// (`None` if there is none, or none with an address).
fn lladdr(out: &Output, address: &str) -> Option<String> {
    out.expect_success("ip -j neigh show");
    let entries: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(json!([]));
    entries
        .as_array()?
        .iter()
        .find(|e| e["dst"] == address)?
        .get("lladdr")?
        .as_str()
        .map(str::to_string)
}

/// What the world believes `address`'s MAC is (on brg0).
fn host_neighbour(world: &World, address: &str) -> Option<String> {
    let out = world.run(&["ip", "-j", "neigh", "show", address, "dev", "brg0"]);
    lladdr(&out, address)
}

/// What container `c` believes `address`'s MAC is.
fn neighbour(c: &Container, address: &str) -> Option<String> {
    let out = c.exec(&["ip", "-j", "neigh", "show", address, "dev", "veth1"]);
    lladdr(&out, address)
}

// ---------------------------------------------------------------------------
// Forged frames

/// Where each labelled frame was seen.
struct Seen {
    /// Label → the sniffing points that saw it.
    by_label: Vec<(String, BTreeSet<&'static str>)>,
}

impl Seen {
    fn at(&self, label: &str) -> &BTreeSet<&'static str> {
        &self
            .by_label
            .iter()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no frame {label}"))
            .1
    }
}

const CONTROLS: [&str; 4] = [
    "IPv4 from itself",
    "ARP for itself",
    "IPv6 from itself",
    "a neighbour advertisement for itself",
];
const FORGED: [&str; 13] = [
    "a neighbour advertisement for the victim",
    "a redirect",
    "IPv4 from itself in a VLAN tag",
    "another EtherType",
    "IPv4 as the victim",
    "IPv4 as the gateway",
    "IPv4 from another MAC",
    "IPv4 from the victim's MAC",
    "ARP as the victim",
    "ARP as the gateway",
    "ARP naming another MAC",
    "IPv6 as the victim",
    "a router advertisement",
];
const EVERYWHERE: [&str; 4] = [
    "the attacker's host end",
    "the bridge",
    "the victim",
    "the peer",
];

/// Sends the attacker's frames (each twice) and reports where each
/// arrived.
fn send_forged_frames(lab: &Lab) -> Seen {
    let world = &lab.world;
    let me = container_mac(4);
    let victim = container_mac(2);
    let frames: Vec<(&str, Vec<u8>, Vec<u8>)> = [
        ("IPv4 from itself", ip(4), me),
        ("IPv4 as the victim", ip(2), me),
        ("IPv4 as the gateway", ip(1), me),
        ("IPv4 from another MAC", ip(4), STRANGER),
        ("IPv4 from the victim's MAC", ip(2), victim),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, (label, src, mac))| {
        let m = marker(n as u8);
        let frame = ether(
            BROADCAST,
            mac,
            0x0800,
            &ipv4_udp(src, [10, 10, 10, 255], &m),
        );
        (label, frame, m)
    })
    .chain(
        [
            ("ARP for itself", me, ip(4)),
            ("ARP as the victim", me, ip(2)),
            ("ARP as the gateway", me, ip(1)),
            ("ARP naming another MAC", STRANGER, ip(4)),
        ]
        .into_iter()
        .enumerate()
        .map(|(n, (label, sha, spa))| {
            let m = marker(16 + n as u8);
            // A gratuitous reply, broadcast from the attacker's own MAC.
            let frame = ether(BROADCAST, me, 0x0806, &arp(2, sha, spa, BROADCAST, spa, &m));
            (label, frame, m)
        }),
    )
    .chain(
        [
            (
                "IPv6 from itself",
                link_local(me),
                udp as fn(&[u8]) -> Vec<u8>,
                17u8,
            ),
            ("IPv6 as the victim", link_local(victim), udp, 17),
            (
                "a router advertisement",
                link_local(me),
                router_advertisement,
                58,
            ),
            (
                "a neighbour advertisement for itself",
                link_local(me),
                |m: &[u8]| neighbour_advertisement(link_local(container_mac(4)), m),
                58,
            ),
            (
                "a neighbour advertisement for the victim",
                link_local(me),
                |m: &[u8]| neighbour_advertisement(link_local(container_mac(2)), m),
                58,
            ),
            ("a redirect", link_local(me), redirect, 58),
        ]
        .into_iter()
        .enumerate()
        .map(|(n, (label, src, body, next))| {
            let m = marker(32 + n as u8);
            let payload = body(&m);
            let frame = ether(
                ALL_NODES_MAC,
                me,
                0x86dd,
                &ipv6(src, ALL_NODES, next, &payload),
            );
            (label, frame, m)
        }),
    )
    .chain({
        // Valid content from its own MAC and address, but in a VLAN tag
        // (0x8100, VLAN 1) or under an EtherType the guard has no rule for.
        let m = marker(48);
        let mut tagged = vec![0, 1, 0x08, 0x00];
        tagged.extend(ipv4_udp(ip(4), [10, 10, 10, 255], &m));
        let vlan = ether(BROADCAST, me, 0x8100, &tagged);
        let m2 = marker(49);
        let other = ether(BROADCAST, me, 0x88b5, &m2);
        [
            ("IPv4 from itself in a VLAN tag", vlan, m),
            ("another EtherType", other, m2),
        ]
    })
    .collect();

    let points: Vec<(&'static str, Client)> = vec![
        (EVERYWHERE[0], Client::on(world.pid(), &lab.attacker_host)),
        (EVERYWHERE[1], Client::on(world.pid(), "brg0")),
        (EVERYWHERE[2], Client::on(lab.victim.pid(), "veth1")),
        (EVERYWHERE[3], Client::on(lab.peer.pid(), "veth1")),
    ];
    let sender = Client::on(lab.attacker.pid(), "veth1");
    for _ in 0..2 {
        for (_, frame, _) in &frames {
            sender.send_frame(frame);
        }
    }
    let wait = Duration::from_millis(700) * time_scale();
    let received: Vec<(&'static str, Vec<Vec<u8>>)> = points
        .iter()
        .map(|(name, sniffer)| (*name, sniffer.frames(wait)))
        .collect();
    Seen {
        by_label: frames
            .iter()
            .map(|(label, _, m)| {
                let at = received
                    .iter()
                    .filter(|(_, got)| got.iter().any(|f| contains(f, m)))
                    .map(|(name, _)| *name)
                    .collect();
                (label.to_string(), at)
            })
            .collect(),
    }
}

#[test]
fn forged_frames_get_nothing_through() {
    require_root!();
    let lab = lab("");
    let seen = send_forged_frames(&lab);
    let everywhere: BTreeSet<&str> = EVERYWHERE.into_iter().collect();
    for label in CONTROLS {
        assert_eq!(seen.at(label), &everywhere, "{label}: the control frame");
    }
    for label in FORGED {
        assert_eq!(
            seen.at(label),
            &BTreeSet::from([EVERYWHERE[0]]),
            "{label}: sent (seen at the attacker's host end) but must go no further"
        );
    }
    // Nobody was hurt: the bridge learned no forged source, every
    // container still reaches every other and the gateway.
    lab.assert_legitimate_traffic_flows();
}

#[test]
fn without_the_guard_forged_frames_pass() {
    require_root!();
    let lab = lab(" guard=no");
    let seen = send_forged_frames(&lab);
    let everywhere: BTreeSet<&str> = EVERYWHERE.into_iter().collect();
    for label in CONTROLS.iter().chain(FORGED.iter()) {
        assert_eq!(
            seen.at(label),
            &everywhere,
            "{label}: guard=no lets it through"
        );
    }
    if let Some(table) = NftTable::guard(&lab.world) {
        let guarded = table.chains();
        assert!(guarded.is_empty(), "a guard=no network guards {guarded:?}");
    }
}

// ---------------------------------------------------------------------------
// Forged ARP and neighbour entries

/// What the host and the containers believe the victim's and the
/// gateway's MACs are.
#[derive(Debug, PartialEq, Eq)]
struct Beliefs {
    host_of_victim: Option<String>,
    peer_of_victim: Option<String>,
    victim_of_gateway: Option<String>,
    peer_of_gateway: Option<String>,
}

fn beliefs(lab: &Lab) -> Beliefs {
    Beliefs {
        host_of_victim: host_neighbour(&lab.world, "10.10.10.2"),
        peer_of_victim: neighbour(&lab.peer, "10.10.10.2"),
        victim_of_gateway: neighbour(&lab.victim, GATEWAY),
        peer_of_gateway: neighbour(&lab.peer, GATEWAY),
    }
}

/// The attacker claims the victim's and the gateway's addresses with its
/// own MAC, in ARP replies and requests, unicast and broadcast, after the
/// neighbour entries have aged past their lock time. Returns what everyone
/// believed before and after.
fn forge_arp(lab: &Lab) -> (Beliefs, Beliefs) {
    let before = beliefs(lab);
    let gateway_mac = bridge_mac(&lab.world);
    let truth = Beliefs {
        host_of_victim: Some(mac_text(container_mac(2))),
        peer_of_victim: Some(mac_text(container_mac(2))),
        victim_of_gateway: Some(mac_text(gateway_mac)),
        peer_of_gateway: Some(mac_text(gateway_mac)),
    };
    assert_eq!(before, truth, "the entries the pings made");
    // Past the lock time (1 s by default) a received ARP may override an
    // entry.
    std::thread::sleep(Duration::from_millis(1500));
    let me = container_mac(4);
    let peer = container_mac(3);
    let victim = container_mac(2);
    let frames = [
        ether(
            gateway_mac,
            me,
            0x0806,
            &arp(2, me, ip(2), gateway_mac, ip(1), &[]),
        ),
        ether(peer, me, 0x0806, &arp(2, me, ip(2), peer, ip(3), &[])),
        ether(victim, me, 0x0806, &arp(2, me, ip(1), victim, ip(2), &[])),
        ether(peer, me, 0x0806, &arp(2, me, ip(1), peer, ip(3), &[])),
        ether(
            BROADCAST,
            me,
            0x0806,
            &arp(2, me, ip(2), BROADCAST, ip(2), &[]),
        ),
        ether(
            BROADCAST,
            me,
            0x0806,
            &arp(2, me, ip(1), BROADCAST, ip(1), &[]),
        ),
        ether(
            BROADCAST,
            me,
            0x0806,
            &arp(1, me, ip(2), [0; 6], ip(3), &[]),
        ),
        ether(
            BROADCAST,
            me,
            0x0806,
            &arp(1, me, ip(1), [0; 6], ip(3), &[]),
        ),
    ];
    let sender = Client::on(lab.attacker.pid(), "veth1");
    // Rounds over 2 s: whatever refreshed an entry last, some round comes
    // after its lock time.
    for _ in 0..5 {
        for frame in &frames {
            sender.send_frame(frame);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_millis(300));
    (before, beliefs(lab))
}

#[test]
fn forged_arp_changes_no_neighbour_entry() {
    require_root!();
    let lab = lab("");
    let (before, after) = forge_arp(&lab);
    assert_eq!(after, before, "a forged ARP changed a neighbour entry");
    lab.assert_legitimate_traffic_flows();
}

#[test]
fn without_the_guard_forged_arp_poisons_neighbour_entries() {
    require_root!();
    let lab = lab(" guard=no");
    let (before, after) = forge_arp(&lab);
    let attacker = Some(mac_text(container_mac(4)));
    assert_ne!(after, before, "guard=no: the forged ARP changed nothing");
    assert_eq!(after.host_of_victim, attacker, "guard=no: {after:?}");
    assert_eq!(after.peer_of_gateway, attacker, "guard=no: {after:?}");
}

// ---------------------------------------------------------------------------
// Taking another's address or changing one's MAC

/// Gives the attacker `address` (instead of its own) and a default route.
fn take_address(c: &Container, address: &str) {
    inside(c, "ip -4 addr flush dev veth1");
    inside(c, &format!("ip addr add {address}/24 dev veth1"));
    let route = c.exec(&[
        "ip", "route", "replace", "default", "via", GATEWAY, "dev", "veth1",
    ]);
    // Holding the gateway's own address, the route is not needed.
    assert!(route.success() || address == GATEWAY, "{route}");
}

/// Gives the attacker `mac`.
fn set_mac(c: &Container, mac: [u8; 6]) {
    inside(c, "ip link set veth1 down");
    inside(c, &format!("ip link set veth1 address {}", mac_text(mac)));
    inside(c, "ip link set veth1 up");
    inside(
        c,
        &format!("ip route replace default via {GATEWAY} dev veth1"),
    );
}

/// The IPv4 and ARP frames from `mac` among `frames`.
fn ipv4_or_arp_from(frames: &[Vec<u8>], mac: [u8; 6]) -> usize {
    frames
        .iter()
        .filter(|f| {
            f.len() >= 14 && f[6..12] == mac && matches!(f[12..14], [0x08, 0x00] | [0x08, 0x06])
        })
        .count()
}

/// What got through while the attacker held the victim's address, the
/// gateway's address, or another MAC: whether its pings were answered,
/// and how many of its IPv4/ARP frames the peer and the bridge received.
#[derive(Debug)]
struct Impersonation {
    as_victim_reached_gateway: bool,
    as_victim_reached_peer: bool,
    as_gateway_reached_peer: bool,
    with_other_mac_reached_gateway: bool,
    frames_at_peer: usize,
    frames_at_bridge: usize,
}

fn impersonate(lab: &Lab) -> Impersonation {
    let a = &lab.attacker;
    let peer_sniffer = Client::on(lab.peer.pid(), "veth1");
    let bridge_sniffer = Client::on(lab.world.pid(), "brg0");
    take_address(a, "10.10.10.2");
    let as_victim_reached_gateway = a.pings(GATEWAY);
    let as_victim_reached_peer = a.pings("10.10.10.3");
    take_address(a, GATEWAY);
    let as_gateway_reached_peer = a.pings("10.10.10.3");
    let wait = Duration::from_millis(300) * time_scale();
    let me = container_mac(4);
    let mut frames_at_peer = ipv4_or_arp_from(&peer_sniffer.frames(wait), me);
    let mut frames_at_bridge = ipv4_or_arp_from(&bridge_sniffer.frames(wait), me);
    take_address(a, "10.10.10.4");
    set_mac(a, STRANGER);
    let with_other_mac_reached_gateway = a.pings(GATEWAY);
    frames_at_peer += ipv4_or_arp_from(&peer_sniffer.frames(wait), STRANGER);
    frames_at_bridge += ipv4_or_arp_from(&bridge_sniffer.frames(wait), STRANGER);
    set_mac(a, me);
    Impersonation {
        as_victim_reached_gateway,
        as_victim_reached_peer,
        as_gateway_reached_peer,
        with_other_mac_reached_gateway,
        frames_at_peer,
        frames_at_bridge,
    }
}

#[test]
fn a_container_that_takes_an_address_or_a_mac_gets_nothing_through() {
    require_root!();
    let lab = lab("");
    let before = beliefs(&lab);
    let got = impersonate(&lab);
    assert!(!got.as_victim_reached_gateway, "{got:?}");
    assert!(!got.as_victim_reached_peer, "{got:?}");
    assert!(!got.as_gateway_reached_peer, "{got:?}");
    assert!(!got.with_other_mac_reached_gateway, "{got:?}");
    assert_eq!(
        (got.frames_at_peer, got.frames_at_bridge),
        (0, 0),
        "{got:?}"
    );
    // The victim is unaffected, and the attacker, itself again, works.
    assert_eq!(beliefs(&lab), before, "a neighbour entry changed");
    lab.assert_legitimate_traffic_flows();
}

#[test]
fn without_the_guard_taking_an_address_or_a_mac_works() {
    require_root!();
    let lab = lab(" guard=no");
    let got = impersonate(&lab);
    assert!(got.as_victim_reached_gateway, "{got:?}");
    assert!(got.as_gateway_reached_peer, "{got:?}");
    assert!(got.with_other_mac_reached_gateway, "{got:?}");
    assert!(
        got.frames_at_peer > 0 && got.frames_at_bridge > 0,
        "{got:?}"
    );
}

// ---------------------------------------------------------------------------
// Legitimate traffic, the kernel's elements, -check

/// The rules of a guard chain on a network with IPv6: 3 link-layer, 2 ARP,
/// one for malformed IP, 4 for DHCP and DHCPv6 ports, 3 for the IPv4
/// lease, DHCP discovery, 3 neighbour discovery drops, 3 for each IPv6
/// address (the lease's and the link-local), 2 for duplicate address
/// detection.
const GUARD_RULES: usize = 3 + 2 + 1 + 4 + 3 + 1 + 3 + 2 * 3 + 2;

/// The layer 2 guard of `host`'s bridge port: it learns nothing, gets no
/// unknown unicast, and `mac` is pinned to it (static and sticky) and to
/// no other port.
#[track_caller]
fn assert_pinned(world: &World, host: &str, mac: [u8; 6]) {
    let out = world.run(&["ip", "-j", "-d", "link", "show", "dev", host]);
    out.expect_success("ip -d link show");
    let link: Value = serde_json::from_str(&out.stdout).expect("ip -j prints JSON");
    let port = &link[0]["linkinfo"]["info_slave_data"];
    assert_eq!(
        (&port["learning"], &port["flood"]),
        (&json!(false), &json!(false)),
        "{port}"
    );
    let out = world.run(&["bridge", "-j", "-d", "fdb", "show", "br", "brg0"]);
    out.expect_success("bridge fdb show");
    let fdb: Value = serde_json::from_str(&out.stdout).expect("bridge -j prints JSON");
    let entries: Vec<&Value> = fdb
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["mac"] == mac_text(mac))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["ifname"], json!(host), "{entries:?}");
    assert_eq!(entries[0]["state"], json!("static"), "{entries:?}");
    let flags = entries[0]["flags"].to_string();
    assert!(flags.contains("sticky"), "{entries:?}");
}

/// The guard chain of host end `host`: `port_` and its name (netplumb's
/// `guard_chain_name`, for names without `_`, `.` or `-`).
fn chain_name(host: &str) -> String {
    assert!(host.bytes().all(|b| b.is_ascii_alphanumeric()), "{host}");
    format!("port_{host}")
}

/// How many rules the guard chain of host end `host` has (`None`: no
/// chain).
fn chain_of(world: &World, host: &str) -> Option<usize> {
    NftTable::guard(world)?
        .chains()
        .get(&chain_name(host))
        .copied()
}

/// Wires `c` with `-json`; returns the JSON.
#[track_caller]
fn wire_json(world: &World, c: &Container, extra: &[&str]) -> serde_json::Map<String, Value> {
    let pid = c.pid_arg();
    let mut args = vec!["-json"];
    args.extend_from_slice(extra);
    args.extend(["-pid", &pid]);
    let out = world.netsetgo(c.user(), &args);
    assert_eq!(out.code(), Some(0), "{out}");
    json_object(&out)
}

const DUAL: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64
network open bridge=openbr0 gateway=10.70.0.1/24 guard=no
allow nsg-a default 8
allow nsg-a open 4
";

#[test]
fn the_guard_follows_the_lease_and_check_sees_it() {
    require_root!();
    let world = world_with(DUAL);
    let c = world.container(A);
    let json = wire_json(&world, &c, &[]);
    let host = json["host_interface"]
        .as_str()
        .expect("host_interface")
        .to_string();
    let mac = container_mac(2);
    assert_eq!(json["mac"], json!(mac_text(mac)), "the deterministic MAC");
    assert_eq!(json["guard"], json!(true), "guard is on by default");
    assert_eq!(json["isolated"], json!(false));
    let inside_view = c.snapshot();
    assert_eq!(
        inside_view.link("veth1").expect("veth1")["address"],
        json!(mac_text(mac))
    );
    let lladdr = ipv6_text(link_local(mac));
    let v6: Vec<String> = inside_view
        .addrs
        .iter()
        .filter(|a| a["ifname"] == "veth1")
        .flat_map(|a| a["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["family"] == "inet6")
        .filter_map(|i| i["local"].as_str().map(str::to_string))
        .collect();
    assert!(v6.contains(&lladdr), "EUI-64 link-local {lladdr} in {v6:?}");

    assert_eq!(
        chain_of(&world, &host),
        Some(GUARD_RULES),
        "{:?}",
        NftTable::guard(&world)
    );
    assert_pinned(&world, &host, mac);

    // IPv4 and IPv6, global and link-local, between guarded containers.
    let d = world.container(A);
    let d_json = wire_json(&world, &d, &[]);
    let d_host = d_json["host_interface"]
        .as_str()
        .expect("host_interface")
        .to_string();
    let d_lladdr = ipv6_text(link_local(container_mac(3)));
    for (from, to) in [
        (&c, "10.10.10.3"),
        (&d, "10.10.10.2"),
        (&c, "10.10.10.1"),
        (&c, "fd00:10::1"),
        (&c, "fd00:10::3"),
        (&d, "fd00:10::2"),
    ] {
        assert!(ping_retrying(from, to), "{} cannot reach {to}", from.pid());
    }
    let scoped = format!("{d_lladdr}%veth1");
    assert!(ping_retrying(&c, &scoped), "link-local {scoped}");

    // -check: intact; broken once the chain is deleted behind its back, or
    // the port learns again.
    let check = || world.netsetgo(A, &["-check", "-pid", &c.pid_arg()]);
    let out = check();
    assert_eq!(out.code(), Some(0), "{out}");
    world
        .run(&[
            "nft",
            "delete",
            "chain",
            "netdev",
            TABLE,
            &chain_name(&host),
        ])
        .expect_success("delete the guard chain");
    let out = check();
    assert_eq!(out.code(), Some(1), "-check without the chain:\n{out}");
    assert!(out.stderr.starts_with("netsetgo: "), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "host end {host} is not guarded (run `netsetgo -restore`)"
        )),
        "{out}"
    );
    world
        .run(&["bridge", "link", "set", "dev", &host, "learning", "on"])
        .expect_success("learning on");
    let out = check();
    assert!(
        out.stderr
            .contains(&format!("bridge port {host} learns source MACs")),
        "{out}"
    );

    // -delete forgets its port's chain, and only that.
    assert_eq!(chain_of(&world, &d_host), Some(GUARD_RULES));
    let out = world.netsetgo(A, &["-delete", "-pid", &c.pid_arg()]);
    assert_eq!(out.code(), Some(0), "-delete:\n{out}");
    assert_eq!(chain_of(&world, &host), None, "-delete left the chain");
    assert_eq!(
        chain_of(&world, &d_host),
        Some(GUARD_RULES),
        "-delete touched another port"
    );

    // Exit (the kernel deletes the chain with its device before 6.16, not
    // from then on) and the next call's garbage collection leave no chain.
    let mut d = d;
    d.kill();
    wait_for_ports(&world, 0);
    let e = world.container(A);
    let e_json = wire_json(&world, &e, &[]);
    let e_host = e_json["host_interface"].as_str().expect("host_interface");
    assert_ne!(
        e_host, d_host,
        "the new container took the freed first address"
    );
    assert_eq!(chain_of(&world, &d_host), None, "GC left the chain");
    assert_eq!(
        chain_of(&world, e_host),
        Some(GUARD_RULES),
        "the new port is guarded"
    );
    assert_pinned(&world, e_host, container_mac(2));

    // A guard=no network guards nothing.
    let f = world.container(A);
    let f_json = wire_json(&world, &f, &["-bridgeName", "openbr0"]);
    assert_eq!(f_json["guard"], json!(false), "{f_json:?}");
    let f_host = f_json["host_interface"].as_str().expect("host_interface");
    assert_eq!(chain_of(&world, f_host), None, "guard=no port has a chain");
    let out = world.netsetgo(
        A,
        &["-check", "-bridgeName", "openbr0", "-pid", &f.pid_arg()],
    );
    assert_eq!(out.code(), Some(0), "{out}");
}

/// brg0 is guarded (the default) and publishes; pubbr0 publishes, is
/// masqueraded and not guarded.
const SAVED: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64
network pub bridge=pubbr0 gateway=10.30.0.1/24 gateway6=fd00:30::1/64 guard=no nat=yes
allow nsg-a default 8
allow nsg-a pub 4
publish nsg-a default tcp 8000-8999
publish nsg-a default udp 8000-8999
publish nsg-a pub tcp 8000-8999
";

/// The rules of `nft --debug=netlink list table` output, each its
/// chain and expressions (handles, set elements and the listing left out).
fn rule_expressions(text: &str) -> Vec<(String, Vec<String>)> {
    let mut rules: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_rule = false;
    for line in text.lines().take_while(|l| !l.starts_with("table ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(char::is_whitespace) && !line.is_empty() {
            // `FAMILY TABLE CHAIN HANDLE [POSITION]` or `FAMILY TABLE @SET`.
            in_rule = words.len() >= 3 && !words[2].starts_with('@');
            if in_rule {
                rules.push((words[2].to_string(), Vec::new()));
            }
        } else if in_rule && line.trim_start().starts_with('[') {
            let rule = rules.last_mut().expect("a rule header first");
            rule.1.push(line.trim().to_string());
        }
    }
    rules
}

/// What an administrator does with the ruleset the helper leaves: saves it
/// (`nft list ruleset > /etc/nftables.conf`) and loads it back later. Every
/// rule of both helper tables (guard, published ports, masquerade, hairpin)
/// must load back as it was.
#[test]
fn the_ruleset_the_helper_leaves_can_be_saved_and_restored() {
    require_root!();
    let world = world_with(SAVED);
    let _outside = Outside::new(&world);
    let guarded = world.container(A);
    wire_with(
        &world,
        &guarded,
        &[
            "-publish",
            "tcp:8080:80",
            "-publish",
            "udp:192.0.2.1:8053:53",
        ],
    );
    let open = world.container(A);
    wire_with(
        &world,
        &open,
        &["-bridgeName", "pubbr0", "-publish", "tcp:8081:80"],
    );
    // As nft shows them, and the rules' expressions as the kernel holds
    // them: `ip saddr` loads back the same whether behind `ether type` or
    // `meta protocol`, but only one of the two sees through a VLAN tag.
    let tables = || {
        let shown = [NftTable::publishing(&world), NftTable::guard(&world)]
            .map(|t| t.expect("the helper's tables").normalised());
        let held = [("inet", TABLE), ("netdev", TABLE)].map(|(family, name)| {
            let out = world.run(&["nft", "--debug=netlink", "list", "table", family, name]);
            out.expect_success("nft --debug=netlink list table");
            rule_expressions(&out.stdout)
        });
        (shown, held)
    };
    let before = tables();
    let saved = netsetgo_e2e::nft::ruleset(&world);
    for part in [
        "table netdev netsetgo",
        "table inet netsetgo",
        "udp dport 68 drop",
        "ip saddr 10.10.10.2 ip frag-off & 8191 == 0 accept",
        "ct status dnat masquerade",
        "oifname != \"pubbr0\" masquerade",
    ] {
        assert!(saved.contains(part), "{part} missing:\n{saved}");
    }
    assert!(
        before.1.iter().all(|rules| rules.len() > 5),
        "{:?}",
        before.1
    );
    // `nft -c -f`: parsed and checked, nothing committed.
    let out = netsetgo_e2e::nft::apply(&world, &["-c"], &saved);
    assert!(
        out.success(),
        "nft -c -f of the saved ruleset fails:\n{out}\n{saved}"
    );
    world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset in the world");
    let out = netsetgo_e2e::nft::apply(&world, &[], &saved);
    assert!(
        out.success(),
        "nft -f of the saved ruleset fails:\n{out}\n{saved}"
    );
    assert_eq!(netsetgo_e2e::nft::ruleset(&world), saved);
    let after = tables();
    assert!(after.0 == before.0, "the restored tables differ");
    assert_eq!(after.1, before.1, "the restored rules differ");
    // The helper recognises the restored tables as its own.
    for (c, extra) in [(&guarded, None), (&open, Some("pubbr0"))] {
        let pid = c.pid_arg();
        let mut args = vec!["-check"];
        if let Some(bridge) = extra {
            args.extend(["-bridgeName", bridge]);
        }
        args.extend(["-pid", &pid]);
        let out = world.netsetgo(A, &args);
        assert_eq!(out.code(), Some(0), "-check after the restore:\n{out}");
    }
}

fn ping_retrying(c: &Container, to: &str) -> bool {
    (0..10).any(|_| {
        let ok = c.exec(&["ping", "-n", "-q", "-c1", "-W1", to]).success();
        if !ok {
            std::thread::sleep(Duration::from_millis(200));
        }
        ok
    })
}

// ---------------------------------------------------------------------------
// Isolation

#[test]
fn isolated_containers_reach_the_gateway_not_each_other() {
    require_root!();
    let world = world_with(
        "network iso bridge=isobr0 gateway=10.60.0.1/24 isolate=yes\n\
         network default bridge=brg0 gateway=10.10.10.1/24\n\
         allow nsg-a iso 4\n\
         allow nsg-a default 4\n",
    );
    let mut iso = Vec::new();
    for _ in 0..2 {
        let c = world.container(A);
        let json = wire_json(&world, &c, &["-bridgeName", "isobr0"]);
        assert_eq!(json["isolated"], json!(true), "{json:?}");
        iso.push((
            c,
            json["host_interface"].as_str().expect("host").to_string(),
        ));
    }
    let mut open = Vec::new();
    for _ in 0..2 {
        let c = world.container(A);
        let json = wire_json(&world, &c, &["-bridgeName", "brg0"]);
        assert_eq!(json["isolated"], json!(false), "{json:?}");
        open.push((
            c,
            json["host_interface"].as_str().expect("host").to_string(),
        ));
    }
    let snap = world.settled_snapshot();
    for (ports, isolated) in [(&iso, true), (&open, false)] {
        for (_, host) in ports.iter() {
            let link = snap
                .link(host)
                .unwrap_or_else(|| panic!("{host} not in the world"));
            assert!(has_flag(link, "UP"), "{link}");
            assert_eq!(
                link["linkinfo"]["info_slave_data"]["isolated"],
                json!(isolated),
                "{link}"
            );
        }
    }
    let (a, b) = (&iso[0].0, &iso[1].0);
    assert!(a.pings("10.60.0.1"), "A cannot reach the gateway");
    assert!(b.pings("10.60.0.1"), "B cannot reach the gateway");
    assert!(world_pings(&world, "10.60.0.2") && world_pings(&world, "10.60.0.3"));
    assert!(!a.pings("10.60.0.3"), "A reaches B on an isolated network");
    assert!(!b.pings("10.60.0.2"), "B reaches A on an isolated network");
    // Control: on a network without isolate they do reach each other.
    let (c, d) = (&open[0].0, &open[1].0);
    assert!(c.pings("10.10.10.3"), "no isolation, yet C cannot reach D");
    assert!(d.pings("10.10.10.2"), "no isolation, yet D cannot reach C");
}
