//! The guard against the real kernel, both layers: the bridge port of a
//! guarded container learns nothing and has its MAC pinned
//! (`Learning::Pinned`), and its host end's netdev ingress chain
//! (`Nftables::guard`) passes only the container's own MAC and addresses.
//! Forged frames are sent raw (AF_PACKET) from the attacker's namespace and
//! looked for, by a marker in each, with raw sockets in the victim's
//! namespace and with UDP sockets of the host. Each attack has a guard-off
//! twin that shows it works without the guard. Needs root; every test
//! works in its own throwaway namespaces (deleted on drop, also on panic).
//! Nothing here touches the namespace the tests run in.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::ops::Deref;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestNs;
use netplumb::{
    guard_table_name, BridgePort, GuardedPort, Learning, Netlink, Nftables, GUARD_COMMON_CHAIN,
    GUARD_PORT_CHAIN,
};
use serde_json::Value;

const TABLE: &str = "nsgguard";
const MAC_A: [u8; 6] = [0x02, 0x6e, 10, 77, 0, 2];
const MAC_B: [u8; 6] = [0x02, 0x6e, 10, 77, 0, 3];
const BROADCAST: [u8; 6] = [0xff; 6];
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const HOST_PORT: u16 = 9999;

struct Ns(TestNs);

impl Deref for Ns {
    type Target = TestNs;

    fn deref(&self) -> &TestNs {
        &self.0
    }
}

impl Ns {
    fn new(tag: &str) -> Ns {
        Ns(TestNs::new(&format!("grd-{tag}")))
    }

    /// `p` at the index its host end has in this namespace (0 without one).
    fn indexed(&self, p: &GuardedPort) -> GuardedPort {
        p.clone()
            .at(self.link(&p.ifname).map_or(0, |l| common::ifindex(&l)))
    }

    /// Every interface index of this namespace.
    fn indexes(&self) -> Vec<u32> {
        self.links().iter().map(common::ifindex).collect()
    }

    /// One ping with a 1 s timeout, up to `attempts` times; `from` picks
    /// the source address.
    fn ping(&self, from: Option<&str>, to: &str, attempts: u32) -> bool {
        let mut args = vec!["ping", "-c1", "-W1", "-n"];
        if let Some(from) = from {
            args.extend(["-I", from]);
        }
        args.push(to);
        (0..attempts).any(|_| self.output(&args).status.success())
    }

    /// Sends each frame three times from `eth0` with an AF_PACKET socket,
    /// and gives them 200 ms to arrive.
    fn send_raw(&self, frames: &[Vec<u8>]) {
        self.send_raw_now(frames);
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Sends each frame three times from `eth0`, and returns at once.
    fn send_raw_now(&self, frames: &[Vec<u8>]) {
        let list: Vec<String> = frames.iter().map(|f| format!("'{}'", hex(f))).collect();
        let script = format!(
            "import socket, time\n\
             s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
             s.bind(('eth0', 0))\n\
             for _ in range(3):\n\
             \x20   for f in [{}]:\n\
             \x20       s.send(bytes.fromhex(f))\n\
             \x20   time.sleep(0.05)\n",
            list.join(", ")
        );
        // A bound, not a wait: 300 frames sent three times through the
        // guard took over 10 s in an emulated (TCG) 6.1 guest.
        self.run(&["timeout", "60", "python3", "-c", &script]);
    }

    /// Sends one UDP datagram of `size` bytes (starting with `marker`) to
    /// `to` port `port` through the namespace's own stack.
    fn send_udp(&self, to: &str, port: u16, marker: &[u8], size: usize) {
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             m = bytes.fromhex('{}')\n\
             s.sendto((m * ({size} // len(m) + 1))[:{size}], ('{to}', {port}))\n",
            hex(marker)
        );
        self.run(&["timeout", "10", "python3", "-c", &script]);
    }
}

/// A listener in a namespace (a raw socket on a device, or a UDP socket on
/// a port) that reports which of some markers it saw.
struct Listener(Child);

const LISTEN: &str = r#"
import socket, select, sys, time
mode, where, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
markers = [bytes.fromhex(m) for m in sys.argv[4:]]
if mode == 'raw':
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((where, 0))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', int(where)))
print('ready', flush=True)
seen = set()
end = time.time() + wait
while time.time() < end:
    r, _, _ = select.select([s], [], [], max(0.0, end - time.time()))
    if r:
        data = s.recv(65535)
        seen.update(i for i, m in enumerate(markers) if m in data)
print(' '.join(str(i) for i in sorted(seen)), flush=True)
"#;

/// How many times longer the listeners wait: `NETSETGO_E2E_TIME_SCALE`
/// (default 1), which the kernel matrix sets to 10 in its emulated guests,
/// where starting the sender's python alone can take longer than 2 s.
fn time_scale() -> u64 {
    match std::env::var("NETSETGO_E2E_TIME_SCALE") {
        Err(_) => 1,
        Ok(v) => match v.parse() {
            Ok(n) if n >= 1 => n,
            _ => panic!("NETSETGO_E2E_TIME_SCALE={v:?}: want a whole number from 1"),
        },
    }
}

impl Listener {
    /// Starts listening in `ns` (`raw DEV` or `udp PORT`) for `markers`,
    /// for 2 s times [`time_scale`]; returns once the socket is bound.
    fn start(ns: &Ns, mode: &str, at: &str, markers: &[Vec<u8>]) -> Listener {
        let wait = 2 * time_scale();
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            ns.name.clone(),
            "timeout".into(),
            (wait + 13).to_string(),
            "python3".into(),
            "-c".into(),
            LISTEN.into(),
            mode.into(),
            at.into(),
            wait.to_string(),
        ];
        args.extend(markers.iter().map(|m| hex(m)));
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the listener");
        let mut line = String::new();
        let stdout = child.stdout.as_mut().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the listener's first line");
        assert_eq!(line.trim(), "ready", "the listener did not start");
        Listener(child)
    }

    /// The indexes of the markers seen, once the listener is done.
    fn seen(self) -> Vec<usize> {
        let out = self.0.wait_with_output().expect("wait for the listener");
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default();
        last.split_whitespace()
            .map(|n| n.parse().expect("a marker index"))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The EUI-64 link-local address of `mac`.
fn link_local(mac: &[u8; 6]) -> Ipv6Addr {
    let mut b = [0u8; 16];
    b[0] = 0xfe;
    b[1] = 0x80;
    b[8..11].copy_from_slice(&[mac[0] ^ 2, mac[1], mac[2]]);
    b[11..13].copy_from_slice(&[0xff, 0xfe]);
    b[13..].copy_from_slice(&mac[3..]);
    Ipv6Addr::from(b)
}

/// 16 bytes that mark frame `n` of test `tag`.
fn marker(tag: u8, n: u8) -> Vec<u8> {
    let mut m = b"NSGGUARD".to_vec();
    m.extend_from_slice(&std::process::id().to_be_bytes());
    m.extend_from_slice(&[tag, n, 0xa5, 0x5a]);
    m
}

fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (`frag`: flags and fragment offset field).
fn ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, protocol, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A UDP header (no checksum) and `data`.
fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut p = sport.to_be_bytes().to_vec();
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(data);
    p
}

/// An IPv6 packet with next header `next`, hop limit 255.
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 255]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// An ARP request for `target` from `eth_src`, claiming `sender_ip` is at
/// `sender_mac`.
fn arp(eth_src: &[u8; 6], sender_mac: &[u8; 6], sender_ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0, 6, 4, 0, 1];
    p.extend_from_slice(sender_mac);
    p.extend_from_slice(&sender_ip);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target);
    ether(BROADCAST, *eth_src, 0x0806, &p)
}

/// An unsolicited neighbour advertisement from `mac` at `source` (a
/// legitimate source address) to all nodes: "`target` is at `mac`", with
/// the override flag and a valid checksum.
fn neighbour_advert(mac: &[u8; 6], source: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst: Ipv6Addr = "ff02::1".parse().unwrap();
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(mac);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&icmp);
    let sum = checksum(&pseudo);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    ether(ALL_NODES_MAC, *mac, 0x86dd, &ipv6(source, dst, 58, &icmp))
}

/// An IPsec authentication header (RFC 4302) without an ICV, `next`
/// after it.
fn auth_header(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![next, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    p.extend_from_slice(rest);
    p
}

/// A neighbour discovery message of type `t` (with `target` after its 4
/// reserved bytes, none for a router solicitation) and `options`, from
/// `src` to all nodes. Its checksum and reserved bytes hold the last 6
/// bytes of `marker`, the frame's marker: the bridge trims what follows
/// the IPv6 payload.
fn nd(t: u8, src: Ipv6Addr, target: Option<Ipv6Addr>, options: &[u8], marker: &[u8]) -> Marked {
    let mut icmp = vec![t, 0];
    icmp.extend_from_slice(&marker[10..]);
    if let Some(target) = target {
        icmp.extend_from_slice(&target.octets());
    }
    icmp.extend_from_slice(options);
    let p = ipv6(src, "ff02::1".parse().unwrap(), 58, &icmp);
    (
        ether(ALL_NODES_MAC, MAC_A, 0x86dd, &p),
        marker[10..].to_vec(),
    )
}

/// A link-layer address option of type `t` holding `mac`.
fn lladdr(t: u8, mac: &[u8; 6]) -> Vec<u8> {
    let mut o = vec![t, 1];
    o.extend_from_slice(mac);
    o
}

fn port(name: &str, mac: [u8; 6], addr: &str, addr6: &str) -> GuardedPort {
    GuardedPort {
        ifname: name.to_string(),
        ifindex: 0,
        mac,
        ipv4: vec![addr.parse().unwrap()],
        ipv6: vec![addr6.parse().unwrap(), link_local(&mac)],
    }
}

/// A host with bridge br0 (10.77.0.1/24, fd00:77::1/64) and two
/// containers on it, plugged as netsetgo plugs them: the attacker `a`
/// (port ga0, .2) and the victim `b` (port gb0, .3), both guarded or
/// neither.
struct Lab {
    host: Ns,
    a: Ns,
    b: Ns,
    nft: Nftables,
    runtime: tokio::runtime::Runtime,
    netlink: Netlink,
    guarded: bool,
}

impl Lab {
    fn new(tag: &str, guarded: bool) -> Lab {
        let host = Ns::new(&format!("{tag}h"));
        let a = Ns::new(&format!("{tag}a"));
        let b = Ns::new(&format!("{tag}b"));
        // The host's own stack takes packets from any source on any port
        // (the host's setting, not ours): what an attack through the host
        // end's own stack needs.
        for conf in ["all", "default"] {
            host.run(&[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{conf}.rp_filter=0"),
            ]);
        }
        host.run(&["ip", "link", "add", "br0", "type", "bridge"]);
        host.run(&["ip", "addr", "add", "10.77.0.1/24", "dev", "br0"]);
        host.run(&["ip", "addr", "add", "fd00:77::1/64", "dev", "br0", "nodad"]);
        host.run(&["ip", "link", "set", "br0", "up"]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime");
        let netlink = runtime.block_on(async { host.session() });
        let nft = host.nftables();
        let lab = Lab {
            host,
            a,
            b,
            nft,
            runtime,
            netlink,
            guarded,
        };
        lab.plug(&lab.a, &lab.port_a());
        lab.plug(&lab.b, &lab.port_b());
        assert!(lab.a.ping(None, "10.77.0.1", 3));
        assert!(lab.b.ping(None, "10.77.0.1", 3));
        assert!(lab.a.ping(None, "10.77.0.3", 3));
        lab
    }

    fn port_a(&self) -> GuardedPort {
        self.host
            .indexed(&port("ga0", MAC_A, "10.77.0.2", "fd00:77::2"))
    }

    fn port_b(&self) -> GuardedPort {
        self.host
            .indexed(&port("gb0", MAC_B, "10.77.0.3", "fd00:77::3"))
    }

    /// A container on br0 behind `p`; when guarded, its port pinned and
    /// its elements added before the host end is up.
    fn plug(&self, container: &Ns, p: &GuardedPort) {
        let host = &self.host;
        host.run(&[
            "ip",
            "link",
            "add",
            &p.ifname,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "address",
            &mac_text(&p.mac),
            "netns",
            &container.name,
        ]);
        host.run(&["ip", "link", "set", &p.ifname, "master", "br0"]);
        if self.guarded {
            let index = common::ifindex(&host.must_link(&p.ifname));
            self.runtime.block_on(async {
                let nl = &self.netlink;
                let pinned = BridgePort::new(false, Learning::Pinned(p.mac));
                nl.set_bridge_port(index, &pinned).await.unwrap();
                nl.pin_mac(index, p.mac).await.unwrap();
            });
            self.nft
                .guard(TABLE)
                .allow(&p.clone().at(index))
                .execute()
                .unwrap();
        }
        host.run(&["ip", "link", "set", &p.ifname, "up"]);
        container.run(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
        container.run(&["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"]);
        let v4 = format!("{}/24", p.ipv4[0]);
        let v6 = format!("{}/64", p.ipv6[0]);
        container.run(&["ip", "addr", "add", &v4, "dev", "eth0"]);
        container.run(&["ip", "addr", "add", &v6, "dev", "eth0", "nodad"]);
        container.run(&["ip", "link", "set", "eth0", "up"]);
        container.run(&["ip", "link", "set", "lo", "up"]);
    }

    /// The ports the bridge maps `mac` to, each once: a kernel built with
    /// VLAN filtering lists a pinned entry once per VLAN of its port.
    fn fdb_ports(&self, mac: &[u8; 6]) -> Vec<String> {
        let text = self.host.run(&["bridge", "-j", "fdb", "show", "br", "br0"]);
        let all: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut ports: Vec<String> = all
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["mac"] == mac_text(mac) && e["master"] == "br0")
                    .filter_map(|e| e["ifname"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        ports.sort();
        ports.dedup();
        ports
    }

    /// Frames from the victim's MAC to each reserved link-local group, to
    /// broadcast and to the victim itself, in 5 rounds; after each, the
    /// ports the bridge maps the victim's MAC to (the victim's own traffic
    /// may move it back at any moment). Returns every port seen.
    fn steal_victims_mac(&self) -> BTreeSet<String> {
        let mut frames: Vec<Vec<u8>> = (0..16u8)
            .map(|g| ether([0x01, 0x80, 0xc2, 0, 0, g], MAC_B, 0x88b5, &marker(1, g)))
            .collect();
        frames.push(ether(BROADCAST, MAC_B, 0x0806, &[0; 28]));
        frames.push(ether(MAC_B, MAC_B, 0x0800, &[0x45; 28]));
        let mut seen = BTreeSet::new();
        for _ in 0..5 {
            self.a.send_raw_now(&frames);
            seen.extend(self.fdb_ports(&MAC_B));
        }
        seen
    }

    /// Which of `frames` (each with its marker) reach the victim's eth0.
    fn at_victim(&self, frames: &[Marked]) -> Vec<usize> {
        let markers: Vec<Vec<u8>> = frames.iter().map(|(_, m)| m.clone()).collect();
        let listener = Listener::start(&self.b, "raw", "eth0", &markers);
        let sent: Vec<Vec<u8>> = frames.iter().map(|(f, _)| f.clone()).collect();
        self.a.send_raw(&sent);
        listener.seen()
    }

    /// Which of `frames` reach a UDP socket of the host on HOST_PORT.
    fn at_host(&self, frames: &[Marked]) -> Vec<usize> {
        let markers: Vec<Vec<u8>> = frames.iter().map(|(_, m)| m.clone()).collect();
        let listener = Listener::start(&self.host, "udp", &HOST_PORT.to_string(), &markers);
        let sent: Vec<Vec<u8>> = frames.iter().map(|(f, _)| f.clone()).collect();
        self.a.send_raw(&sent);
        listener.seen()
    }
}

/// The attacks on the forwarding database: frames from the victim's MAC to
/// every reserved link-local group, to broadcast and to the victim. Returns
/// every port the bridge mapped the victim's MAC to meanwhile.
fn fdb_attack(lab: &Lab) -> Vec<String> {
    assert_eq!(lab.fdb_ports(&MAC_B), ["gb0"], "before the attack");
    lab.steal_victims_mac().into_iter().collect()
}

#[test]
fn the_bridge_never_maps_the_victims_mac_to_a_guarded_attacker() {
    require_root!("the_bridge_never_maps_the_victims_mac_to_a_guarded_attacker");
    let lab = Lab::new("fdb", true);
    assert_eq!(fdb_attack(&lab), ["gb0"]);
    // Nor any other MAC the attacker invents: it never appears at all.
    lab.a.send_raw(&[ether(
        [0x01, 0x80, 0xc2, 0, 0, 0x0e],
        [0x02, 0, 0, 0, 0, 0x42],
        0x88cc,
        &[0; 32],
    )]);
    assert!(lab.fdb_ports(&[0x02, 0, 0, 0, 0, 0x42]).is_empty());
    // The victim still gets the host's traffic.
    assert!(lab.host.ping(None, "10.77.0.3", 3));
    assert_eq!(lab.fdb_ports(&MAC_B), ["gb0"]);

    // After `nft flush ruleset` layer 2 holds on its own: the same frames
    // pass the (now empty) ruleset, and the bridge still learns nothing.
    lab.host.run(&["nft", "flush", "ruleset"]);
    assert!(!lab.nft.guard(TABLE).present(&lab.port_a()).unwrap());
    assert_eq!(fdb_attack(&lab), ["gb0"]);
    assert!(lab.host.ping(None, "10.77.0.3", 3));
    // `allow` restores layer 3, and again is no error.
    let forged = |lab: &Lab| {
        lab.at_victim(&[(
            ether(
                BROADCAST,
                MAC_A,
                0x0800,
                &ipv4(
                    [10, 77, 0, 3],
                    [10, 77, 0, 255],
                    17,
                    0,
                    &udp(9, 9, &marker(2, 0)),
                ),
            ),
            marker(2, 0),
        )])
    };
    assert_eq!(forged(&lab), [0], "unguarded after the flush");
    for _ in 0..2 {
        lab.nft.guard(TABLE).allow(&lab.port_a()).execute().unwrap();
        assert!(lab.nft.guard(TABLE).present(&lab.port_a()).unwrap());
    }
    assert!(forged(&lab).is_empty(), "guarded again");
    assert!(lab.a.ping(None, "10.77.0.1", 3));
}

#[test]
fn without_the_guard_the_attacker_takes_the_victims_mac() {
    require_root!("without_the_guard_the_attacker_takes_the_victims_mac");
    let lab = Lab::new("fdbo", false);
    assert!(fdb_attack(&lab).contains(&"ga0".to_string()));
}

/// A frame and the marker in it.
type Marked = (Vec<u8>, Vec<u8>);

/// Frames that must not get from a guarded container to its neighbour,
/// each with its marker; and controls that must.
fn forged_frames() -> (Vec<Marked>, Vec<Marked>) {
    let own = [10, 77, 0, 2];
    let all = [10, 77, 0, 255];
    let m = |n| marker(3, n);
    let ll = link_local(&MAC_A);
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let udp4 = |n| ipv4(own, all, 17, 0, &udp(9, 9, &m(n)));
    let mut vlan = vec![0, 1, 0x08, 0x00];
    vlan.extend(udp4(3));
    let mut qinq = vec![0, 2, 0x81, 0x00, 0, 1, 0x08, 0x00];
    qinq.extend(udp4(4));
    let mut ra = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    ra.extend(m(5));
    // A non-first fragment (offset 1480) shaped as UDP to port 68.
    let fragment_68 = ipv4(own, all, 17, 185, &udp(1234, 68, &m(6)));
    let forged: Vec<Marked> = vec![
        // DHCP and DHCPv6 server replies, from the attacker's own address.
        ipv4(own, [255; 4], 17, 0, &udp(67, 68, &m(0))),
        ipv6(ll, all_nodes, 17, &udp(547, 546, &m(1))),
        ipv4(own, all, 17, 0, &udp(67, 9, &m(2))),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, p)| {
        let kind = if i == 1 { 0x86dd } else { 0x0800 };
        let dst = if i == 1 { ALL_NODES_MAC } else { BROADCAST };
        (ether(dst, MAC_A, kind, &p), m(i as u8))
    })
    .chain([
        (ether(BROADCAST, MAC_A, 0x8100, &vlan), m(3)),
        (ether(BROADCAST, MAC_A, 0x88a8, &qinq), m(4)),
        (
            ether(ALL_NODES_MAC, MAC_A, 0x86dd, &ipv6(ll, all_nodes, 58, &ra)),
            m(5),
        ),
        (ether(BROADCAST, MAC_A, 0x0800, &fragment_68), m(6)),
        (ether(BROADCAST, MAC_A, 0x88b5, &m(7)), m(7)),
        // IPv4 from the victim's address.
        (
            ether(
                BROADCAST,
                MAC_A,
                0x0800,
                &ipv4([10, 77, 0, 3], all, 17, 0, &udp(9, 9, &m(8))),
            ),
            m(8),
        ),
        // DHCP and DHCPv6 replies from another source port: a raw-socket
        // client (nclient4) checks only the destination port.
        (
            ether(
                BROADCAST,
                MAC_A,
                0x0800,
                &ipv4(own, [255; 4], 17, 0, &udp(1234, 68, &m(9))),
            ),
            m(9),
        ),
        (
            ether(
                ALL_NODES_MAC,
                MAC_A,
                0x86dd,
                &ipv6(ll, all_nodes, 17, &udp(1234, 546, &m(10))),
            ),
            m(10),
        ),
    ])
    .chain(smuggled(own, ll))
    .chain(neighbour_discovery(ll))
    .collect();
    let c = |n| marker(4, n);
    let controls = vec![
        // Its own UDP, a DHCP discovery, a non-first fragment of another
        // shape, IPv6 UDP from its link-local address.
        (
            ether(
                BROADCAST,
                MAC_A,
                0x0800,
                &ipv4(own, all, 17, 0, &udp(9, 9, &c(0))),
            ),
            c(0),
        ),
        (
            ether(
                BROADCAST,
                MAC_A,
                0x0800,
                &ipv4([0; 4], [255; 4], 17, 0, &udp(68, 67, &c(1))),
            ),
            c(1),
        ),
        (
            ether(
                BROADCAST,
                MAC_A,
                0x0800,
                &ipv4(own, all, 17, 185, &udp(1234, 9, &c(2))),
            ),
            c(2),
        ),
        (
            ether(
                ALL_NODES_MAC,
                MAC_A,
                0x86dd,
                &ipv6(ll, all_nodes, 17, &udp(546, 547, &c(3))),
            ),
            c(3),
        ),
        // A non-first fragment of TCP; neighbour discovery as Linux sends
        // it: a solicitation with its source MAC, an advertisement with its
        // target MAC, a router solicitation, duplicate address detection of
        // its own address with a nonce, a unicast solicitation with none.
        (
            ether(BROADCAST, MAC_A, 0x0800, &ipv4(own, all, 6, 185, &c(4))),
            c(4),
        ),
        nd(135, ll, Some(link_local(&MAC_B)), &lladdr(1, &MAC_A), &c(5)),
        nd(136, ll, Some(ll), &lladdr(2, &MAC_A), &c(6)),
        nd(133, ll, None, &lladdr(1, &MAC_A), &c(7)),
        nd(
            135,
            Ipv6Addr::UNSPECIFIED,
            Some(ll),
            &[14, 1, 1, 2, 3, 4, 5, 6],
            &c(8),
        ),
        nd(135, ll, Some(link_local(&MAC_B)), &[], &c(9)),
    ];
    (forged, controls)
}

/// What the guard would not see behind an IPsec authentication header or
/// inside a tunnel, from the attacker's own addresses: router
/// advertisements, DHCP and DHCPv6 replies; a non-first fragment of a
/// tunnel.
fn smuggled(own: [u8; 4], ll: Ipv6Addr) -> Vec<Marked> {
    let m = |n| marker(7, n);
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let ra = |n| {
        let mut ra = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        ra.extend(m(n));
        ra
    };
    let dhcp = |src, n| ipv4(src, [255; 4], 17, 0, &udp(67, 68, &m(n)));
    let victim = [10, 77, 0, 3];
    let mut gre = vec![0, 0, 0x08, 0];
    gre.extend(dhcp([10, 77, 0, 1], 5));
    let v4 = |p: Vec<u8>| ether(BROADCAST, MAC_A, 0x0800, &p);
    let v6 = |p: Vec<u8>| ether(ALL_NODES_MAC, MAC_A, 0x86dd, &p);
    vec![
        v6(ipv6(ll, all_nodes, 51, &auth_header(58, &ra(0)))),
        v6(ipv6(
            ll,
            all_nodes,
            51,
            &auth_header(17, &udp(547, 546, &m(1))),
        )),
        v4(ipv4(
            own,
            [255; 4],
            51,
            0,
            &auth_header(17, &udp(67, 68, &m(2))),
        )),
        v4(ipv4(own, victim, 4, 0, &dhcp([10, 77, 0, 1], 3))),
        v4(ipv4(
            own,
            victim,
            41,
            0,
            &ipv6(link_local(&[2, 0, 0, 0, 0, 1]), all_nodes, 58, &ra(4)),
        )),
        v4(ipv4(own, victim, 47, 0, &gre)),
        v4(ipv4(own, victim, 4, 185, &dhcp([10, 77, 0, 1], 6))),
        // A DHCPv6 reply behind an atomic fragment header and then a
        // destination options header (found by review: the fragment rules
        // read UDP's ports right after the fragment header).
        v6(ipv6(ll, all_nodes, 44, &{
            let mut p = vec![60, 0, 0, 0, 0, 0, 0x12, 0x34];
            p.extend([17, 0, 1, 4, 0, 0, 0, 0]);
            p.extend(udp(547, 546, &m(7)));
            p
        })),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, f)| (f, m(n as u8)))
    .collect()
}

/// Neighbour discovery from the attacker's own link-local address `ll`
/// that ties it to another MAC (the victim's), one such option hidden
/// among others, behind an extension header; and duplicate address
/// detection of the victim's address, or with a link-layer address.
fn neighbour_discovery(ll: Ipv6Addr) -> Vec<Marked> {
    let m = |n| marker(8, n);
    let victim = link_local(&MAC_B);
    let mut two = lladdr(1, &MAC_A);
    two.extend(lladdr(1, &MAC_B));
    // Behind a destination options header (8 bytes, padding).
    let short = m(6)[10..].to_vec();
    let mut behind = vec![58, 0, 1, 4, 0, 0, 0, 0, 135, 0];
    behind.extend_from_slice(&short);
    behind.extend_from_slice(&victim.octets());
    let behind = ipv6(ll, "ff02::1".parse().unwrap(), 60, &behind);
    let unspecified = Ipv6Addr::UNSPECIFIED;
    let nonce = [14, 1, 1, 2, 3, 4, 5, 6];
    vec![
        nd(135, ll, Some(victim), &lladdr(1, &MAC_B), &m(0)),
        nd(136, ll, Some(ll), &lladdr(2, &MAC_B), &m(1)),
        nd(133, ll, None, &lladdr(1, &MAC_B), &m(2)),
        nd(135, ll, Some(victim), &two, &m(3)),
        nd(135, unspecified, Some(victim), &[], &m(4)),
        nd(135, unspecified, Some(victim), &nonce, &m(5)),
        (ether(ALL_NODES_MAC, MAC_A, 0x86dd, &behind), short),
        nd(135, unspecified, Some(ll), &lladdr(1, &MAC_A), &m(7)),
    ]
}

#[test]
fn forged_frames_never_reach_the_neighbour() {
    require_root!("forged_frames_never_reach_the_neighbour");
    let lab = Lab::new("fwd", true);
    let (forged, controls) = forged_frames();
    assert_eq!(
        lab.at_victim(&controls),
        (0..controls.len()).collect::<Vec<_>>(),
        "the controls"
    );
    assert_eq!(lab.at_victim(&forged), Vec::<usize>::new());
    assert!(lab.a.ping(None, "10.77.0.3", 3));
}

#[test]
fn without_the_guard_forged_frames_reach_the_neighbour() {
    require_root!("without_the_guard_forged_frames_reach_the_neighbour");
    let lab = Lab::new("fwdo", false);
    let (forged, controls) = forged_frames();
    assert_eq!(
        lab.at_victim(&controls),
        (0..controls.len()).collect::<Vec<_>>(),
        "the controls"
    );
    assert_eq!(
        lab.at_victim(&forged),
        (0..forged.len()).collect::<Vec<_>>()
    );
}

/// Neighbour discovery as Linux itself sends it passes the guard: counted
/// by a chain after it on the same hook (an accept in one base chain goes
/// on to the next), each kind from the container's own link-local or
/// global address, with the option and length the guard allows.
#[test]
fn linux_neighbour_discovery_passes_the_guard() {
    require_root!("linux_neighbour_discovery_passes_the_guard");
    let lab = Lab::new("lnd", true);
    let (host, a) = (&lab.host, &lab.a);
    host.run(&["nft", "add", "table", "netdev", "probe"]);
    host.run(&[
        "nft",
        "add chain netdev probe c { type filter hook ingress device \"ga0\" priority 0; }",
    ]);
    let kinds = [
        // Duplicate address detection with a nonce, of its own address.
        "icmpv6 type nd-neighbor-solicit ip6 saddr :: ip6 length 32 @th,192,16 0x0e01",
        // A solicitation with its source MAC.
        "icmpv6 type nd-neighbor-solicit ip6 saddr != :: ip6 length 32",
        // A solicited advertisement with its target MAC.
        "icmpv6 type nd-neighbor-advert ip6 length 32",
        // A router solicitation with its source MAC.
        "icmpv6 type nd-router-solicit ip6 length 16",
    ];
    for kind in kinds {
        let rule = format!("add rule netdev probe c {kind} counter");
        host.run(&["nft", &rule]);
    }
    a.run(&["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=1"]);
    a.run(&["sysctl", "-qw", "net.ipv6.conf.eth0.enhanced_dad=1"]);
    // Its link comes up again: a router solicitation, and DAD of its
    // link-local address, then of its global one (which the link's going
    // down took away).
    a.run(&["ip", "link", "set", "eth0", "down"]);
    a.run(&["ip", "link", "set", "eth0", "up"]);
    a.run(&["ip", "addr", "replace", "fd00:77::2/64", "dev", "eth0"]);
    std::thread::sleep(Duration::from_millis(2500));
    let addrs = a.run(&["ip", "-6", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains("fd00:77::2/64"), "{addrs}");
    assert!(!addrs.contains("tentative"), "{addrs}");
    host.run(&["ip", "-6", "neigh", "flush", "dev", "br0"]);
    assert!(host.ping(None, "fd00:77::2", 3));
    a.run(&["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    assert!(a.ping(None, "fd00:77::3", 3));
    let text = host.run(&["nft", "list", "chain", "netdev", "probe", "c"]);
    let counted: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .map(|c| c.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counted.len(), kinds.len(), "{text}");
    assert!(counted.iter().all(|&n| n > 0), "{text}");
}

/// IPv4 with the victim's source address to a UDP socket of the host, in
/// frames to each reserved link-local group (which the bridge hands to the
/// host end's own stack), to the bridge's MAC and to broadcast.
fn to_the_host(lab: &Lab) -> Vec<Marked> {
    let bridge_mac = lab.host.must_link("br0")["address"]
        .as_str()
        .expect("br0's MAC")
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect::<Vec<u8>>();
    let bridge_mac: [u8; 6] = bridge_mac.try_into().expect("6 bytes");
    let mut dsts: Vec<[u8; 6]> = (0..16u8).map(|g| [0x01, 0x80, 0xc2, 0, 0, g]).collect();
    dsts.push(bridge_mac);
    dsts.into_iter()
        .enumerate()
        .map(|(n, dst)| {
            let m = marker(5, n as u8);
            let p = ipv4(
                [10, 77, 0, 3],
                [10, 77, 0, 1],
                17,
                0,
                &udp(4000, HOST_PORT, &m),
            );
            (ether(dst, MAC_A, 0x0800, &p), m)
        })
        .collect()
}

#[test]
fn the_host_never_receives_a_forged_source_and_fragments_of_its_own_arrive() {
    require_root!("the_host_never_receives_a_forged_source_and_fragments_of_its_own_arrive");
    let lab = Lab::new("host", true);
    assert_eq!(lab.at_host(&to_the_host(&lab)), Vec::<usize>::new());
    // A fragmented datagram from the container's own address arrives
    // whole, even where a fragment's data read as UDP ports: 32 bytes
    // repeated, so that (1480-byte fragments) the second one's data start
    // with 67 and 546, which a kernel before 5.17 reads as `udp sport` and
    // `udp dport` there.
    let mut m = vec![0, 67, 2, 0x22];
    m.extend(marker(6, 0));
    m.extend([0x5a; 12]);
    let listener = Listener::start(
        &lab.host,
        "udp",
        &HOST_PORT.to_string(),
        std::slice::from_ref(&m),
    );
    lab.a.send_udp("10.77.0.1", HOST_PORT, &m, 4000);
    assert_eq!(listener.seen(), [0], "a fragmented datagram of its own");
}

#[test]
fn without_the_guard_the_host_receives_forged_sources() {
    require_root!("without_the_guard_the_host_receives_forged_sources");
    let lab = Lab::new("hosto", false);
    let frames = to_the_host(&lab);
    let seen = lab.at_host(&frames);
    // At least link-local groups the bridge hands to the host end's own
    // stack (02, 03, 0e) and the bridge's own MAC.
    for n in [2, 3, 14, 16] {
        assert!(seen.contains(&n), "frame {n} not received: {seen:?}");
    }
}

#[test]
fn guarded_ports_pass_only_their_own_addresses() {
    require_root!("guarded_ports_pass_only_their_own_addresses");
    let lab = Lab::new("own", true);
    let (host, a, b) = (&lab.host, &lab.a, &lab.b);
    // A foreign table at the same hook stays as it is.
    host.run(&["nft", "add", "table", "netdev", "other"]);
    host.run(&[
        "nft",
        "add chain netdev other c { type filter hook ingress device \"ga0\" priority 0; }",
    ]);
    host.run(&["nft", "add", "rule", "netdev", "other", "c", "counter"]);
    let other = || {
        host.run(&["nft", "list", "table", "netdev", "other"])
            .lines()
            .filter(|l| !l.contains("counter packets"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = other();
    let (port_a, port_b) = (lab.port_a(), lab.port_b());
    assert!(lab.nft.guard(TABLE).present(&port_a).unwrap());
    assert!(lab.nft.guard(TABLE).present(&port_b).unwrap());

    // Legitimate traffic flows: to the gateway, to the neighbour, IPv6.
    assert!(a.ping(None, "10.77.0.1", 3));
    assert!(a.ping(None, "10.77.0.3", 3));
    assert!(a.ping(None, "fd00:77::1", 3));
    assert!(a.ping(None, "fd00:77::3", 3));
    assert!(host.ping(None, "10.77.0.3", 3));
    let neighbour = |addr: &str| {
        let text = host.run(&["ip", "-j", "neigh", "show", addr, "dev", "br0"]);
        let all: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        all.as_array()?
            .iter()
            .find_map(|n| n["lladdr"].as_str().map(String::from))
    };
    assert_eq!(neighbour("10.77.0.3"), Some(mac_text(&MAC_B)));

    // Another source address gets nothing through, IPv4 or IPv6.
    a.run(&["ip", "addr", "add", "10.77.0.9/32", "dev", "eth0"]);
    a.run(&[
        "ip",
        "addr",
        "add",
        "fd00:77::9/128",
        "dev",
        "eth0",
        "nodad",
    ]);
    assert!(!a.ping(Some("10.77.0.9"), "10.77.0.1", 2));
    assert!(!a.ping(Some("fd00:77::9"), "fd00:77::1", 2));

    // Forged ARP: "10.77.0.3 is at A's MAC" does not poison the host.
    let forged = arp(&MAC_A, &MAC_A, [10, 77, 0, 3], [10, 77, 0, 1]);
    a.send_raw(std::slice::from_ref(&forged));
    assert_eq!(neighbour("10.77.0.3"), Some(mac_text(&MAC_B)));
    // A forged neighbour advertisement ("fd00:77::3 is at A's MAC", sent
    // from A's own link-local address) does not either.
    assert!(host.ping(None, "fd00:77::3", 3));
    assert_eq!(neighbour("fd00:77::3"), Some(mac_text(&MAC_B)));
    let forged_na = neighbour_advert(&MAC_A, link_local(&MAC_A), "fd00:77::3".parse().unwrap());
    a.send_raw(std::slice::from_ref(&forged_na));
    assert_eq!(neighbour("fd00:77::3"), Some(mac_text(&MAC_B)));

    // A changed MAC gets nothing through, not even its own address.
    a.run(&["ip", "link", "set", "eth0", "address", "02:00:00:00:00:99"]);
    assert!(!a.ping(None, "10.77.0.1", 2));
    a.run(&["ip", "link", "set", "eth0", "address", &mac_text(&MAC_A)]);
    assert!(a.ping(None, "10.77.0.1", 3));

    // The victim is unaffected.
    assert!(b.ping(None, "10.77.0.1", 3));
    assert!(b.ping(None, "fd00:77::1", 3));

    // Once A's elements are forgotten, layer 3 forgeries go through: they
    // were what stopped them.
    assert!(lab.nft.guard(TABLE).forget(&port_a).execute().unwrap());
    assert!(!lab.nft.guard(TABLE).forget(&port_a).execute().unwrap());
    assert!(!lab.nft.guard(TABLE).present(&port_a).unwrap());
    assert!(lab.nft.guard(TABLE).present(&port_b).unwrap());
    assert!(a.ping(Some("10.77.0.9"), "10.77.0.1", 3));
    a.send_raw(&[forged]);
    assert_eq!(neighbour("10.77.0.3"), Some(mac_text(&MAC_A)));
    a.send_raw(&[forged_na]);
    assert_eq!(neighbour("fd00:77::3"), Some(mac_text(&MAC_A)));

    assert_eq!(other(), before);
}

#[test]
fn forget_removes_a_ports_elements_also_after_its_device_went() {
    require_root!("forget_removes_a_ports_elements_also_after_its_device_went");
    let host = Ns::new("gone");
    host.run(&[
        "ip", "link", "add", "gx0", "type", "veth", "peer", "name", "gx1",
    ]);
    let nft = host.nftables();
    let p = host.indexed(&port("gx0", MAC_A, "10.77.0.2", "fd00:77::2"));
    assert!(!nft.guard(TABLE).forget(&p).execute().unwrap(), "no table");
    nft.guard(TABLE).allow(&p).execute().unwrap();
    assert!(nft.guard(TABLE).present(&p).unwrap());
    host.run(&["ip", "link", "del", "gx0"]);
    // The elements outlive the device (nothing binds them to it), keyed
    // by an index no device has now; forget, given the index, removes
    // them, and the table, which other ports share, stays.
    let table = guard_table_name(TABLE);
    let listed = host.run(&["nft", "list", "set", "bridge", &table, "v4_v3"]);
    assert!(listed.contains("10.77.0.2"), "{listed}");
    assert!(nft.guard(TABLE).forget(&p).execute().unwrap());
    assert!(!nft.guard(TABLE).present(&p).unwrap());
    assert!(!nft.guard(TABLE).forget(&p).execute().unwrap(), "forgotten");
    let ruleset = host.run(&["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("10.77.0.2"), "{ruleset}");
    assert!(
        ruleset.contains(&format!("table bridge {table} {{")),
        "{ruleset}"
    );
    // Without an index (a device gone unrecorded) there is nothing it can
    // name: no error, nothing changed.
    nft.guard(TABLE).allow(&p).execute().unwrap();
    let before = host.run(&["nft", "list", "ruleset"]);
    assert!(!nft.guard(TABLE).forget(&p.clone().at(0)).execute().unwrap());
    assert_eq!(host.run(&["nft", "list", "ruleset"]), before);
    // And allow without an index is refused, changing nothing.
    let refused = nft.guard(TABLE).allow(&p.clone().at(0)).execute();
    assert_eq!(refused.unwrap_err().errno(), Some(libc::EINVAL));
    assert_eq!(host.run(&["nft", "list", "ruleset"]), before);
}

/// Issue 17, stale elements: a host end deleted without `forget` (a crash
/// between the deletion and it, a CNI DEL that knows no address) and made
/// again under the same name with another address (a CNI ADD after the
/// crash, IPAM's next address) passes only its new address: the old
/// port's elements, still in the sets, are keyed by the old device's
/// index. Keyed by the name, they would pass the old address (the
/// elements this test finds still there).
#[test]
fn a_host_end_made_again_under_its_name_passes_none_of_the_old_values() {
    require_root!("a_host_end_made_again_under_its_name_passes_none_of_the_old_values");
    let lab = Lab::new("remade", true);
    let old = lab.port_a();
    assert!(lab.a.ping(Some("10.77.0.2"), "10.77.0.1", 3));
    lab.host.run(&["ip", "link", "del", "ga0"]);
    let again = port("ga0", MAC_A, "10.77.0.9", "fd00:77::9");
    lab.plug(&lab.a, &again);
    let again = lab.host.indexed(&again);
    assert_ne!(again.ifindex, old.ifindex);
    let table = guard_table_name(TABLE);
    let v4 = lab
        .host
        .run(&["nft", "list", "set", "bridge", &table, "v4_v3"]);
    assert!(v4.contains("10.77.0.2") && v4.contains("10.77.0.9"), "{v4}");
    // The container holds both addresses now; only the new one passes.
    lab.a
        .run(&["ip", "addr", "add", "10.77.0.2/32", "dev", "eth0"]);
    lab.a.run(&[
        "ip",
        "addr",
        "add",
        "fd00:77::2/128",
        "dev",
        "eth0",
        "nodad",
    ]);
    assert!(lab.a.ping(Some("10.77.0.9"), "10.77.0.1", 3));
    assert!(lab.a.ping(Some("fd00:77::9"), "fd00:77::1", 3));
    assert!(!lab.a.ping(Some("10.77.0.2"), "10.77.0.1", 2));
    assert!(!lab.a.ping(Some("fd00:77::2"), "fd00:77::1", 2));
    let forged: Vec<Marked> = (0..4u8)
        .map(|n| {
            let m = marker(7, n);
            let p = ipv4(
                [10, 77, 0, 2],
                [10, 77, 0, 1],
                17,
                0,
                &udp(4000, HOST_PORT, &m),
            );
            (ether(BROADCAST, MAC_A, 0x0800, &p), m)
        })
        .collect();
    assert_eq!(lab.at_host(&forged), Vec::<usize>::new());
    // Prune (what -restore runs) takes the old device's elements, and
    // only those.
    let guard = lab.nft.guard(TABLE);
    let dumped = guard.elements().unwrap();
    let pruned = guard.prune(dumped, &lab.host.indexes()).unwrap();
    // ports, macs, v4, v6 (2), senders (2), lladdrs, targets (2).
    assert_eq!(pruned, 10);
    let v4 = lab
        .host
        .run(&["nft", "list", "set", "bridge", &table, "v4_v3"]);
    assert!(
        !v4.contains("10.77.0.2") && v4.contains("10.77.0.9"),
        "{v4}"
    );
    assert!(guard.present(&again).unwrap());
    assert!(guard.present(&lab.port_b()).unwrap());
    let dumped = guard.elements().unwrap();
    assert_eq!(guard.prune(dumped, &lab.host.indexes()).unwrap(), 0);
}

/// Review r20, F2: root emptying the port chain (or truncating it) leaves
/// every guarded port failing closed, as an emptied netdev port chain
/// did: prerouting drops what the port chain returns. Before the fix
/// (prerouting's one rule, a policy accept) a forged source reached the
/// host. An emptied `common_v3` fails open for what only it drops, as
/// `common_v2` did (documented).
#[test]
fn an_emptied_port_chain_fails_closed() {
    require_root!("an_emptied_port_chain_fails_closed");
    let lab = Lab::new("closed", true);
    let forged = |tag: u8| -> Vec<Marked> {
        (0..4u8)
            .map(|n| {
                let m = marker(tag, n);
                let udp = udp(4000, HOST_PORT, &m);
                let p = ipv4([10, 77, 0, 3], [10, 77, 0, 1], 17, 0, &udp);
                (ether(BROADCAST, MAC_A, 0x0800, &p), m)
            })
            .collect()
    };
    assert_eq!(lab.at_host(&forged(8)), Vec::<usize>::new(), "whole");
    let table = guard_table_name(TABLE);
    lab.host
        .run(&["nft", "flush", "chain", "bridge", &table, GUARD_PORT_CHAIN]);
    assert_eq!(lab.at_host(&forged(9)), Vec::<usize>::new(), "emptied");
    assert!(!lab.a.ping(None, "10.77.0.1", 2), "closed: nothing passes");
    let guard = lab.nft.guard(TABLE);
    let named = format!("chain bridge {table} {GUARD_PORT_CHAIN}");
    assert_eq!(guard.missing(&lab.port_a()).unwrap(), vec![named]);
    guard.allow(&lab.port_a()).restore().unwrap();
    assert!(lab.a.ping(None, "10.77.0.1", 3), "whole again");
    assert_eq!(lab.at_host(&forged(10)), Vec::<usize>::new(), "restored");
}

#[test]
fn prune_takes_the_elements_of_devices_that_are_gone_only() {
    require_root!("prune_takes_the_elements_of_devices_that_are_gone_only");
    let host = Ns::new("prune");
    let (p, q, _) = guarded_pair(&host);
    let nft = host.nftables();
    let guard = nft.guard(TABLE);
    let dumped = guard.elements().unwrap();
    let mut both = [p.ifindex, q.ifindex];
    both.sort_unstable();
    assert_eq!(dumped.indexes(), both);
    // Both live: nothing goes.
    assert_eq!(guard.prune(dumped, &host.indexes()).unwrap(), 0);
    assert!(guard.present(&p).unwrap() && guard.present(&q).unwrap());
    // A device `live` does not name is gone to prune: its 10 elements go,
    // the other's stay.
    let dumped = guard.elements().unwrap();
    assert_eq!(guard.prune(dumped, &[q.ifindex]).unwrap(), 10);
    assert!(!guard.present(&p).unwrap() && guard.present(&q).unwrap());
    assert_eq!(guard.elements().unwrap().indexes(), [q.ifindex]);
}

#[test]
fn guard_structure_as_documented() {
    require_root!("guard_structure_as_documented");
    let host = Ns::new("shape");
    host.run(&[
        "ip", "link", "add", "gx0", "type", "veth", "peer", "name", "gx1",
    ]);
    let nft = host.nftables();
    let p = host.indexed(&port("gx0", MAC_A, "10.77.0.2", "fd00:77::2"));
    nft.guard(TABLE).allow(&p).execute().unwrap();
    // The guard's one bridge table: its seven sets and four chains.
    assert_eq!(guard_table_name(TABLE), "nsgguard_guard");
    assert_eq!(
        host.run(&["nft", "list", "tables"]),
        "table bridge nsgguard_guard\n"
    );
    let text = host.run(&["nft", "list", "table", "bridge", "nsgguard_guard"]);
    assert_eq!(text.matches("chain ").count(), 4, "{text}");
    assert_eq!(text.matches("set ").count(), 7, "{text}");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // Each set's elements and each chain's rules in this order, one after
    // the other (the index printed as its device's name).
    let chains: [&[&str]; 11] = [
        &[
            "set ports_v3 {",
            "type iface_index",
            r#"elements = { "gx0" }"#,
            "}",
        ],
        &[
            "set macs_v3 {",
            "type iface_index . ether_addr",
            r#"elements = { "gx0" . 02:6e:0a:4d:00:02 }"#,
            "}",
        ],
        &[
            "set v4_v3 {",
            "type iface_index . ipv4_addr",
            r#"elements = { "gx0" . 10.77.0.2 }"#,
            "}",
        ],
        &[
            "set v6_v3 {",
            "type iface_index . ipv6_addr",
            r#"elements = { "gx0" . fd00:77::2,"#,
            r#""gx0" . fe80::6e:aff:fe4d:2 }"#,
            "}",
        ],
        &[
            "set senders_v3 {",
            "type iface_index . ether_addr . ipv4_addr",
            r#"elements = { "gx0" . 02:6e:0a:4d:00:02 . 0.0.0.0,"#,
            r#""gx0" . 02:6e:0a:4d:00:02 . 10.77.0.2 }"#,
            "}",
        ],
        &[
            "set lladdrs_v3 {",
            "typeof iif . @th,80,48",
            r#"elements = { "gx0" . 0x26e0a4d0002 }"#,
            "}",
        ],
        &[
            "set targets_v3 {",
            "typeof iif . @th,64,128",
            r#"elements = { "gx0" . 0xfd000077000000000000000000000002,"#,
            r#""gx0" . 0xfe80000000000000006e0afffe4d0002 }"#,
            "}",
        ],
        &[
            "chain common_v3 {",
            "ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop",
            "ether type != arp ether type != ip ether type != ip6 drop",
            "meta protocol ip meta l4proto != tcp meta l4proto != udp meta l4proto != icmp meta l4proto != igmp meta l4proto != sctp drop",
            "ip frag-off & 8191 == 0 udp sport 67 drop",
            "ip frag-off & 8191 == 0 udp dport 68 drop",
            "ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67 accept",
            "meta protocol ip return",
            "arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iif . arp saddr ether . arp saddr ip @senders_v3 accept",
            "meta protocol != ip6 return",
            "meta protocol ip6 meta l4proto != tcp meta l4proto != udp meta l4proto != ipv6-icmp meta l4proto != sctp drop",
            "ip6 nexthdr udp udp sport 547 drop",
            "ip6 nexthdr udp udp dport 546 drop",
            "ip6 nexthdr ipv6-frag @nh,336,16 & 0xfff8 == 0x0 @nh,384,16 0x223 drop",
            "meta l4proto != ipv6-icmp return",
            "icmpv6 type nd-router-advert drop",
            "icmpv6 type nd-redirect drop",
            "icmpv6 type nd-router-solicit ip6 nexthdr != ipv6-icmp drop",
            "icmpv6 type nd-router-solicit ip6 length != 8 ip6 length != 16 drop",
            "icmpv6 type nd-neighbor-solicit ip6 nexthdr != ipv6-icmp drop",
            "icmpv6 type nd-neighbor-solicit ip6 length != 24 ip6 length != 32 drop",
            "icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr :: @th,192,16 != 0xe01 drop",
            "icmpv6 type nd-neighbor-advert ip6 nexthdr != ipv6-icmp drop",
            "icmpv6 type nd-neighbor-advert ip6 length != 24 ip6 length != 32 drop",
            "icmpv6 type nd-router-solicit ip6 length 16 @th,64,16 != 0x101 drop",
            "icmpv6 type nd-router-solicit ip6 length 16 iif . @th,80,48 != @lladdrs_v3 drop",
            "icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: @th,192,16 != 0x101 drop",
            "icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: iif . @th,208,48 != @lladdrs_v3 drop",
            "icmpv6 type nd-neighbor-solicit ip6 saddr :: iif . @th,64,128 != @targets_v3 drop",
            "icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,16 != 0x201 drop",
            "icmpv6 type nd-neighbor-advert ip6 length 32 iif . @th,208,48 != @lladdrs_v3 drop",
            "icmpv6 type nd-neighbor-advert iif . @th,64,128 != @targets_v3 drop",
            "ip6 saddr :: icmpv6 type nd-neighbor-solicit accept",
            "ip6 saddr :: icmpv6 type mld2-listener-report accept",
            "}",
        ],
        &[
            "chain port_v3 {",
            "jump common_v3",
            "iif . ip saddr @v4_v3 meta l4proto != udp accept",
            "iif . ip saddr @v4_v3 meta l4proto udp ip frag-off & 8191 == 0 accept",
            "iif . ip saddr @v4_v3 meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5 @nh,176,16 != 0x44 accept",
            "iif . ip6 saddr @v6_v3 meta l4proto != udp accept",
            "iif . ip6 saddr @v6_v3 meta l4proto udp ip6 nexthdr udp accept",
            "iif . ip6 saddr @v6_v3 meta l4proto udp ip6 nexthdr ipv6-frag @nh,320,8 0x11 @nh,400,16 != 0x222 accept",
            "}",
        ],
        &[
            "chain prerouting_v3 {",
            "type filter hook prerouting priority -500; policy accept;",
            "iif . ether saddr @macs_v3 jump port_v3",
            "iif @ports_v3 drop",
            "}",
        ],
        &[
            "chain input_v3 {",
            "type filter hook input priority -500; policy accept;",
            "ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 iif @ports_v3 drop",
            "}",
        ],
    ];
    for expected in chains {
        let start = lines
            .iter()
            .position(|l| *l == expected[0])
            .unwrap_or_else(|| panic!("{:?} missing:\n{text}", expected[0]));
        let listed: Vec<&str> = lines[start..]
            .iter()
            .copied()
            .filter(|l| !l.is_empty())
            .take(expected.len())
            .collect();
        assert_eq!(listed, expected, "{text}");
    }
}

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("{}.nft", common::unique("ruleset")));
        std::fs::write(&path, text).expect("write the saved ruleset");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `nft --debug=netlink list table` up to the listing itself: each set's
/// elements (sorted) and each rule's expressions, without the handles.
fn normalised_bytecode(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().take_while(|l| !l.starts_with("table ")) {
        if line.starts_with("bridge ") {
            let header = line
                .split_whitespace()
                .filter(|w| !w.bytes().all(|b| b.is_ascii_digit()))
                .collect::<Vec<_>>()
                .join(" ");
            blocks.push((header, Vec::new()));
        } else if !line.trim().is_empty() {
            let block = blocks.last_mut().expect("a line before the first header");
            block.1.push(line.trim().to_string());
        }
    }
    // A set's elements in the kernel's hash order, which a reload changes.
    for (header, lines) in &mut blocks {
        if header.contains(" @") {
            lines.sort();
        }
    }
    blocks
}

#[test]
fn the_guard_ruleset_can_be_saved_and_restored() {
    require_root!("the_guard_ruleset_can_be_saved_and_restored");
    let host = Ns::new("save");
    // A name nft reads back only quoted (a leading digit, `.`, `-`).
    let odd = "9v.a-b_0";
    for (i, dev) in ["gs0", "gs1", odd].into_iter().enumerate() {
        let peer = format!("gsp{i}");
        host.run(&[
            "ip", "link", "add", dev, "type", "veth", "peer", "name", &peer,
        ]);
    }
    let nft = host.nftables();
    let p = host.indexed(&port("gs0", MAC_A, "10.77.0.2", "fd00:77::2"));
    let q = host.indexed(&port("gs1", MAC_B, "10.77.0.3", "fd00:77::3"));
    let r = host.indexed(&port(
        odd,
        [0x02, 0x6e, 10, 77, 0, 4],
        "10.77.0.4",
        "fd00:77::4",
    ));
    for port in [&p, &q, &r] {
        nft.guard(TABLE).allow(port).execute().unwrap();
    }
    // What an administrator does: `nft list ruleset > /etc/nftables.conf`.
    let saved = host.run(&["nft", "list", "ruleset"]);
    let table = guard_table_name(TABLE);
    assert!(
        saved.contains(&format!("table bridge {table} {{")),
        "{saved}"
    );
    assert!(saved.contains(&format!("\"{odd}\"")), "{saved}");
    let bytecode = || {
        normalised_bytecode(&host.run(&[
            "nft",
            "--debug=netlink",
            "list",
            "table",
            "bridge",
            &table,
        ]))
    };
    let before = bytecode();
    // The seven sets' elements, the shared chain's 33 rules, the port
    // chain's 7, prerouting's 2, input's 1.
    assert_eq!(before.len(), 7 + 33 + 7 + 2 + 1, "{before:?}");
    let file = TempFile::new(&saved);
    // `nft -c -f`: parsed and checked against the kernel, nothing committed.
    host.run(&["nft", "-c", "-f", file.path()]);
    host.run(&["nft", "flush", "ruleset"]);
    assert!(!nft.guard(TABLE).present(&p).unwrap());
    host.run(&["nft", "-f", file.path()]);
    assert_eq!(host.run(&["nft", "list", "ruleset"]), saved);
    assert_eq!(bytecode(), before, "the restored rules differ");
    // The restored table is the guard's: present, forget and allow work on
    // it.
    for port in [&p, &q, &r] {
        assert!(nft.guard(TABLE).present(port).unwrap());
    }
    assert!(nft.guard(TABLE).forget(&p).execute().unwrap());
    assert!(!nft.guard(TABLE).present(&p).unwrap());
    assert!(nft.guard(TABLE).present(&q).unwrap());
    nft.guard(TABLE).allow(&p).execute().unwrap();
    assert!(nft.guard(TABLE).present(&p).unwrap());
}

/// Two ports, `gc0` and `gc1`, and the guard's table.
fn two_ports() -> (GuardedPort, GuardedPort, String) {
    (
        port("gc0", MAC_A, "10.77.0.2", "fd00:77::2"),
        port("gc1", MAC_B, "10.77.0.3", "fd00:77::3"),
        guard_table_name(TABLE),
    )
}

/// How many chains `common` and how many `jump common` rules the guard's
/// table holds, and the shared chain's rules.
fn common_chains(host: &Ns, table: &str) -> (usize, usize, usize) {
    let text = host.run(&["nft", "list", "table", "bridge", table]);
    let chain = format!("chain {GUARD_COMMON_CHAIN} {{");
    let rules = text.split(&chain).nth(1).map_or(0, |rest| {
        rest.split('}')
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    });
    (
        text.matches(&chain).count(),
        text.matches(&format!("jump {GUARD_COMMON_CHAIN}")).count(),
        rules,
    )
}

/// Review round 19 (F1): another version's shared chains, here `common`
/// and `port` as the unversioned bridge prototype named them, each with
/// one rule of its own, are neither judged nor refilled by this version's
/// calls, and this version's ports jump to their own: mixing versions
/// never rewrites the chain the other version's ports jump to.
#[test]
fn a_shared_chain_of_another_version_is_left_as_it_is() {
    require_root!("a_shared_chain_of_another_version_is_left_as_it_is");
    assert_ne!(GUARD_COMMON_CHAIN, "common");
    assert_ne!(GUARD_PORT_CHAIN, "port");
    let host = Ns::new("oldcommon");
    let (p, q, table) = two_ports();
    add_veths(&host, &[&p, &q]);
    host.run(&["nft", "add", "table", "bridge", &table]);
    for old in ["common", "port"] {
        host.run(&["nft", "add", "chain", "bridge", &table, old]);
        host.run(&["nft", "add", "rule", "bridge", &table, old, "counter"]);
    }
    let old_rules = || {
        ["common", "port"].map(|old| {
            let text = host.run(&["nft", "list", "chain", "bridge", &table, old]);
            text.lines().filter(|l| l.contains("counter")).count()
        })
    };
    let nft = host.nftables();
    let guard = nft.guard(TABLE);
    for port in [&p, &q] {
        let port = host.indexed(port);
        guard.allow(&port).execute().unwrap();
        assert!(guard.missing(&port).unwrap().is_empty());
    }
    assert_eq!(old_rules(), [1, 1]);
    assert_eq!(common_chains(&host, &table), (1, 1, 33));
    let listing = host.run(&["nft", "list", "table", "bridge", &table]);
    assert!(!listing.contains("jump common\n"), "{listing}");
    assert!(!listing.contains("jump port\n"), "{listing}");
}

/// [`two_ports`], their veth pairs in `host`, both guarded (with their
/// indexes).
fn guarded_pair(host: &Ns) -> (GuardedPort, GuardedPort, String) {
    let (p, q, table) = two_ports();
    add_veths(host, &[&p, &q]);
    let (p, q) = (host.indexed(&p), host.indexed(&q));
    let nft = host.nftables();
    for port in [&p, &q] {
        nft.guard(TABLE).allow(port).execute().unwrap();
    }
    (p, q, table)
}

/// A veth pair in `host` for each port, the port's host end named as it is.
fn add_veths(host: &Ns, ports: &[&GuardedPort]) {
    for (i, port) in ports.iter().enumerate() {
        let peer = format!("gcp{i}");
        host.run(&[
            "ip",
            "link",
            "add",
            &port.ifname,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
    }
}

#[test]
fn the_ports_share_the_chains_that_check_and_restore_follow() {
    require_root!("the_ports_share_the_chains_that_check_and_restore_follow");
    let host = Ns::new("common");
    let (p, q, table) = guarded_pair(&host);
    let nft = host.nftables();
    let guard = nft.guard(TABLE);
    guard.allow(&p).execute().unwrap();
    // One shared chain of 33 rules, jumped to from the port chain, also
    // after a port was guarded again.
    assert_eq!(common_chains(&host, &table), (1, 1, 33));
    for port in [&p, &q] {
        assert!(guard.missing(port).unwrap().is_empty());
    }

    // Root empties the shared chain (a container's owner cannot): both
    // ports name it as missing, and allowing one port (what -restore does)
    // fills it again, once, for both.
    host.run(&[
        "nft",
        "flush",
        "chain",
        "bridge",
        &table,
        GUARD_COMMON_CHAIN,
    ]);
    let named = format!("chain bridge {table} {GUARD_COMMON_CHAIN}");
    for port in [&p, &q] {
        assert_eq!(guard.missing(port).unwrap(), vec![named.clone()]);
        assert!(!guard.present(port).unwrap());
    }
    // Deleting it is refused while the port chain jumps to it.
    let deleted = host.output(&[
        "nft",
        "delete",
        "chain",
        "bridge",
        &table,
        GUARD_COMMON_CHAIN,
    ]);
    assert!(!deleted.status.success());
    // A call's allow does not look at the chains; -restore's does.
    guard.allow(&q).execute().unwrap();
    assert_eq!(common_chains(&host, &table), (1, 1, 0));
    guard.allow(&q).restore().unwrap();
    // Root empties the port chain: the ports fail closed (prerouting
    // drops what it returns), both name it, -restore's allow fills it.
    host.run(&["nft", "flush", "chain", "bridge", &table, GUARD_PORT_CHAIN]);
    let port_chain = format!("chain bridge {table} {GUARD_PORT_CHAIN}");
    assert_eq!(guard.missing(&p).unwrap(), vec![port_chain]);
    let prerouting = host.run(&["nft", "list", "chain", "bridge", &table, "prerouting_v3"]);
    assert!(prerouting.contains("iif @ports_v3 drop"), "{prerouting}");
    guard.allow(&p).restore().unwrap();
    assert_eq!(common_chains(&host, &table), (1, 1, 33));
    for port in [&p, &q] {
        assert!(guard.present(port).unwrap());
    }

    // Root deletes a port's `ports` element (which fails open): that port
    // names it, the other does not, and allowing it again puts it back.
    let index = p.ifindex.to_string();
    let element = format!("{{ {index} }}");
    host.run(&[
        "nft", "delete", "element", "bridge", &table, "ports_v3", &element,
    ]);
    let own = format!("element bridge {table} ports_v3 {}", p.ifname);
    assert_eq!(guard.missing(&p).unwrap(), vec![own.clone()]);
    assert!(guard.present(&q).unwrap());
    guard.allow(&p).execute().unwrap();
    assert!(guard.present(&p).unwrap());

    // Without the table, every chain and the port's elements are named,
    // and allow makes them again.
    host.run(&["nft", "delete", "table", "bridge", &table]);
    let missing = guard.missing(&p).unwrap();
    let macs = format!("element bridge {table} macs_v3 {}", p.ifname);
    let chains = [
        GUARD_COMMON_CHAIN,
        GUARD_PORT_CHAIN,
        "prerouting_v3",
        "input_v3",
    ]
    .map(|c| format!("chain bridge {table} {c}"));
    assert_eq!(
        missing,
        [chains.to_vec(), vec![own.clone(), macs.clone()]].concat()
    );
    guard.allow(&p).execute().unwrap();
    assert!(guard.present(&p).unwrap());
    assert_eq!(common_chains(&host, &table), (1, 1, 33));

    // The chains and the sets stay when the last port goes; the port's
    // elements go with it.
    for port in [&p, &q] {
        guard.forget(port).execute().unwrap();
    }
    assert_eq!(common_chains(&host, &table), (1, 1, 33));
    assert_eq!(guard.missing(&p).unwrap(), vec![own, macs]);
}

#[test]
fn forget_takes_every_element_of_the_host_end_whatever_addresses_it_is_given() {
    require_root!("forget_takes_every_element_of_the_host_end_whatever_addresses_it_is_given");
    let host = Ns::new("forgetall");
    let (p, q, table) = guarded_pair(&host);
    let nft = host.nftables();
    let guard = nft.guard(TABLE);
    let elements = |port: &GuardedPort| {
        let text = host.run(&["nft", "list", "table", "bridge", &table]);
        text.matches(&format!("\"{}\"", port.ifname)).count()
    };
    assert_eq!(elements(&p), 10);
    // What the CNI plugin's DEL knows: the name, the index, the MAC, no
    // address.
    let bare = GuardedPort {
        ipv4: Vec::new(),
        ipv6: Vec::new(),
        ..p.clone()
    };
    assert!(guard.forget(&bare).execute().unwrap());
    assert_eq!(elements(&p), 0);
    assert_eq!(elements(&q), 10);
    assert!(guard.present(&q).unwrap());
    // With other values than allow added (the policy's gateway6 changed
    // since, review r20 F6): every element of its index still goes.
    guard.allow(&p).execute().unwrap();
    let changed = GuardedPort {
        ipv6: vec!["fd00:99::2".parse().unwrap()],
        ..p.clone()
    };
    assert!(guard.forget(&changed).execute().unwrap());
    assert_eq!(elements(&p), 0);
    assert_eq!(elements(&q), 10);
    // With all its addresses but without one of its elements (root
    // emptied a set): the others still go.
    guard.allow(&p).execute().unwrap();
    host.run(&["nft", "flush", "set", "bridge", &table, "targets_v3"]);
    assert!(guard.forget(&p).execute().unwrap());
    assert_eq!(elements(&p), 0);
    assert_eq!(elements(&q), 8);
    assert!(guard.present(&q).unwrap());
}

#[test]
fn concurrent_first_guards_make_one_structure() {
    require_root!("concurrent_first_guards_make_one_structure");
    let host = Ns::new("commonrace");
    let (p, q, table) = two_ports();
    add_veths(&host, &[&p, &q]);
    let (p, q) = (host.indexed(&p), host.indexed(&q));
    for round in 0..8 {
        std::thread::scope(|s| {
            for port in [&p, &q] {
                let host = &host;
                s.spawn(move || host.nftables().guard(TABLE).allow(port).execute().unwrap());
            }
        });
        assert_eq!(common_chains(&host, &table), (1, 1, 33), "round {round}");
        let listing = host.run(&["nft", "list", "table", "bridge", &table]);
        assert_eq!(listing.matches("hook prerouting").count(), 1, "{listing}");
        host.run(&["nft", "delete", "table", "bridge", &table]);
    }
}

/// The legacy netdev guard as main made it for port `p`: its table, the
/// shared chain and the port's ingress chain (a few of its rules: what
/// the migration reads is the names).
fn legacy_guard(host: &Ns, p: &GuardedPort, table: &str) {
    let listing = format!(
        "table netdev {table} {{\n  chain common_v2 {{\n    ether type != arp ether type != ip ether type != ip6 drop\n  }}\n\
         chain port_{name} {{\n    type filter hook ingress device \"{name}\" priority -500; policy drop;\n    ether saddr != {mac} drop\n    jump common_v2\n    ip saddr {a} accept\n  }}\n}}\n",
        name = p.ifname,
        mac = mac_text(&p.mac),
        a = p.ipv4[0],
    );
    let file = TempFile::new(&listing);
    host.run(&["nft", "-f", file.path()]);
}

/// Migration from the netdev guard (issue 17): only the legacy guard's
/// tables, by their exact names, are named and dropped; forget drops a
/// port's legacy chain too.
#[test]
fn the_legacy_guard_tables_are_named_and_dropped_by_their_exact_names() {
    require_root!("the_legacy_guard_tables_are_named_and_dropped_by_their_exact_names");
    let host = Ns::new("legacy");
    let (p, q, _) = guarded_pair(&host);
    // gc0 hashed to table 29 and gc1 to 10 in the netdev guard
    // (FNV-1a of the name modulo 32).
    legacy_guard(&host, &p, "nsgguard_guard_29");
    legacy_guard(&host, &q, "nsgguard_guard_10");
    for other in ["nsgguard_guard_32", "nsgguard_guard_x", "other_guard_1"] {
        host.run(&["nft", "add", "table", "netdev", other]);
    }
    host.run(&["nft", "add", "table", "inet", "nsgguard_guard_1"]);
    let nft = host.nftables();
    let guard = nft.guard(TABLE);
    let legacy = [
        "table netdev nsgguard_guard_10".to_string(),
        "table netdev nsgguard_guard_29".to_string(),
    ];
    assert_eq!(guard.legacy().unwrap(), legacy);
    // A teardown takes the port's legacy chain with its elements.
    assert!(guard.forget(&p).execute().unwrap());
    let old = host.run(&["nft", "list", "table", "netdev", "nsgguard_guard_29"]);
    assert!(!old.contains("port_gc0"), "{old}");
    assert!(old.contains("common_v2"), "{old}");
    // Dropped: the two, nothing else.
    let others = || {
        let mut t: Vec<String> = host
            .run(&["nft", "list", "tables"])
            .lines()
            .map(String::from)
            .filter(|l| !legacy.contains(l))
            .collect();
        t.sort();
        t
    };
    let before = others();
    assert_eq!(
        guard.drop_legacy().unwrap(),
        ["nsgguard_guard_10", "nsgguard_guard_29"]
    );
    assert!(guard.legacy().unwrap().is_empty());
    let tables = host.run(&["nft", "list", "tables"]);
    assert!(!tables.contains("netdev nsgguard_guard_10"), "{tables}");
    assert_eq!(others(), before);
    assert!(guard.present(&q).unwrap());
    assert!(guard.drop_legacy().unwrap().is_empty(), "a second run");
}

/// The netdev port chain every guarded port had before the hybrid and the
/// bridge guards (main at 66810bf: the port's 20 rules and `common`'s 20,
/// listed by nft 1.0.6) for `p` (one IPv4 and two IPv6 addresses), on host
/// end `p.ifname`'s ingress at priority -600, each verdict turned into a
/// mark and an accept (1: it accepted, 2: it dropped, also by its policy),
/// so that the bridge guard, after ingress, still decides. Counted at
/// ingress -550 (every frame, by the old verdict) and at bridge prerouting
/// -400 (the frames the bridge guard, at -500, passed), there only frames
/// of `p`'s host end.
fn old_guard_marking(p: &GuardedPort) -> String {
    let (m, a) = (mac_text(&p.mac), p.ipv4[0]);
    let (x1, x2) = (p.ipv6[0], p.ipv6[1]);
    let (h1, h2) = (hex(&x1.octets()), hex(&x2.octets()));
    let opt = |t: u8| format!("0x{t:x}01{}", hex(&p.mac));
    let common = [
        "ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop",
        "ether type != arp ether type != ip ether type != ip6 drop",
        "meta protocol ip meta l4proto != tcp meta l4proto != udp meta l4proto != icmp meta l4proto != igmp meta l4proto != sctp drop",
        "ip frag-off & 8191 == 0 udp sport 67 drop",
        "ip frag-off & 8191 == 0 udp dport 68 drop",
        "ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67 accept",
        "meta protocol != ip6 return",
        "meta protocol ip6 meta l4proto != tcp meta l4proto != udp meta l4proto != ipv6-icmp meta l4proto != sctp drop",
        "ip6 nexthdr udp udp sport 547 drop",
        "ip6 nexthdr udp udp dport 546 drop",
        "ip6 nexthdr ipv6-frag @nh,336,16 & 0xfff8 == 0x0 @nh,384,16 0x223 drop",
        "icmpv6 type nd-router-advert drop",
        "icmpv6 type nd-redirect drop",
        "icmpv6 type nd-router-solicit ip6 nexthdr != ipv6-icmp drop",
        "icmpv6 type nd-router-solicit ip6 length != 8 ip6 length != 16 drop",
        "icmpv6 type nd-neighbor-solicit ip6 nexthdr != ipv6-icmp drop",
        "icmpv6 type nd-neighbor-solicit ip6 length != 24 ip6 length != 32 drop",
        "icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr :: @th,192,16 != 0xe01 drop",
        "icmpv6 type nd-neighbor-advert ip6 nexthdr != ipv6-icmp drop",
        "icmpv6 type nd-neighbor-advert ip6 length != 24 ip6 length != 32 drop",
    ]
    .map(String::from);
    let mut own = vec![
        format!("ether saddr != {m} drop"),
        "jump common".to_string(),
        format!("ip saddr {a} meta l4proto != udp accept"),
        format!("ip saddr {a} meta l4proto udp ip frag-off & 8191 == 0 accept"),
        format!("ip saddr {a} meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5 @nh,176,16 != 0x44 accept"),
        format!("icmpv6 type nd-router-solicit ip6 length 16 @th,64,64 != {} drop", opt(1)),
        format!("icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: @th,192,64 != {} drop", opt(1)),
        format!("icmpv6 type nd-neighbor-solicit ip6 saddr :: @th,64,128 != 0x{h1} @th,64,128 != 0x{h2} drop"),
        format!("icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,64 != {} drop", opt(2)),
        format!("icmpv6 type nd-neighbor-advert @th,64,128 != 0x{h1} @th,64,128 != 0x{h2} drop"),
    ];
    for x in [x1, x2] {
        own.push(format!("ip6 saddr {x} meta l4proto != udp accept"));
        own.push(format!(
            "ip6 saddr {x} meta l4proto udp ip6 nexthdr udp accept"
        ));
        own.push(format!("ip6 saddr {x} meta l4proto udp ip6 nexthdr ipv6-frag @nh,320,8 0x11 @nh,400,16 != 0x222 accept"));
    }
    own.push("ip6 saddr :: icmpv6 type nd-neighbor-solicit accept".into());
    own.push("ip6 saddr :: icmpv6 type mld2-listener-report accept".into());
    for sender in [a.to_string(), "0.0.0.0".to_string()] {
        own.push(format!("arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether {m} arp saddr ip {sender} accept"));
    }
    own.push("meta mark set 0x2".into());
    let marked = |rules: &[String]| {
        rules
            .iter()
            .map(|r| {
                let r = r
                    .strip_suffix(" drop")
                    .map_or(r.clone(), |r| format!("{r} meta mark set 0x2 accept"));
                let r = r
                    .strip_suffix(" accept")
                    .filter(|_| !r.contains("mark set 0x2"))
                    .map_or(r.clone(), |r| format!("{r} meta mark set 0x1 accept"));
                format!("    {r}\n")
            })
            .collect::<String>()
    };
    format!(
        "table netdev diffold {{\n  chain common {{\n{}  }}\n  chain port {{\n    type filter hook ingress device \"{}\" priority -600; policy accept;\n{}  }}\n}}\n\
         table netdev diffobs {{\n  counter old_accept {{ }}\n  counter old_drop {{ }}\n\
         chain before {{\n    type filter hook ingress device \"{dev}\" priority -550; policy accept;\n    meta mark 0x1 counter name \"old_accept\"\n    meta mark 0x2 counter name \"old_drop\"\n  }}\n}}\n\
         table bridge diffnew {{\n  counter both {{ }}\n  counter new_only {{ }}\n\
         chain after {{\n    type filter hook prerouting priority -400; policy accept;\n    iifname \"{dev}\" meta mark 0x1 counter name \"both\"\n    iifname \"{dev}\" meta mark 0x2 counter name \"new_only\"\n  }}\n}}\n",
        marked(&common),
        p.ifname,
        marked(&own),
        dev = p.ifname,
    )
}

/// Frames for the differential test: every frame class of the other tests
/// (forged and controls, smuggled, neighbour discovery), each also
/// mutated `mutants` times (one to three bytes of its first 90 set to
/// pseudo-random values, from a fixed seed).
fn differential_frames(mutants: usize) -> Vec<Vec<u8>> {
    let ll = link_local(&MAC_A);
    let (forged, controls) = forged_frames();
    let base: Vec<Vec<u8>> = [
        forged,
        controls,
        smuggled([10, 77, 0, 2], ll),
        neighbour_discovery(ll),
    ]
    .concat()
    .into_iter()
    .map(|(f, _)| f)
    .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = base.clone();
    for f in &base {
        for _ in 0..mutants {
            let mut g = f.clone();
            for _ in 0..=(next() % 3) {
                let at = 6 + (next() as usize) % (g.len().min(90) - 6);
                g[at] = next() as u8;
            }
            out.push(g);
        }
    }
    out
}

#[test]
fn the_bridge_guard_decides_every_frame_as_the_port_chain_before_it() {
    require_root!("the_bridge_guard_decides_every_frame_as_the_port_chain_before_it");
    let lab = Lab::new("diff", true);
    let file = TempFile::new(&old_guard_marking(&lab.port_a()));
    lab.host.run(&["nft", "-f", file.path()]);
    let frames = differential_frames(24);
    for chunk in frames.chunks(300) {
        lab.a.send_raw_now(chunk);
    }
    std::thread::sleep(Duration::from_millis(200));
    let count = |name: &str| -> u64 {
        let (family, table) = match name {
            "old_accept" | "old_drop" => ("netdev", "diffobs"),
            _ => ("bridge", "diffnew"),
        };
        let text = lab
            .host
            .run(&["nft", "list", "counter", family, table, name]);
        let at = text.find("packets ").expect("a packet count") + "packets ".len();
        text[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // The frames are judged in softirq after the sender exits: read the
    // four counters until two readings agree (an emulated guest was still
    // counting when they were read once, 200 ms after the last send).
    let read = || {
        [
            count("old_accept"),
            count("old_drop"),
            count("both"),
            count("new_only"),
        ]
    };
    let mut last = read();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let now = read();
        if now == last {
            break;
        }
        last = now;
    }
    let [accepted, dropped, both, new_only] = last;
    // Every frame sent (three times each) met the old chain.
    assert!(
        accepted + dropped >= 3 * frames.len() as u64,
        "{accepted} + {dropped}"
    );
    assert_eq!(new_only, 0, "accepted now, dropped before");
    assert_eq!(
        both,
        accepted,
        "accepted before, dropped now: {}",
        accepted.abs_diff(both)
    );
    // Both verdicts were given, many times.
    assert!(accepted > 200 && dropped > 2000, "{accepted} {dropped}");
}
