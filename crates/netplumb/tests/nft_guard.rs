//! The bridge guard (`Nftables::guard`) against the real kernel: a
//! container on a guarded port gets nothing through with another source
//! MAC, another source address or forged ARP, while its own traffic and its
//! neighbour's still flow. Forged frames are sent raw (AF_PACKET) from the
//! container's namespace. Needs root; every test works in its own throwaway
//! namespaces (deleted on drop, also on panic). Nothing here touches the
//! namespace the tests run in.

mod common;

use std::net::Ipv6Addr;
use std::ops::Deref;
use std::time::Duration;

use common::TestNs;
use netplumb::{GuardedPort, Nftables};
use serde_json::Value;

const TABLE: &str = "nsgguard";
const MAC_A: [u8; 6] = [0x02, 0x6e, 10, 77, 0, 2];
const MAC_B: [u8; 6] = [0x02, 0x6e, 10, 77, 0, 3];

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

    /// Sends `frame` (hex) three times from `eth0` with an AF_PACKET socket.
    fn send_raw(&self, frame: &str) {
        let script = format!(
            "import socket, time\n\
             s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
             s.bind(('eth0', 0))\n\
             for _ in range(3):\n\
             \x20   s.send(bytes.fromhex('{frame}'))\n\
             \x20   time.sleep(0.05)\n"
        );
        self.run(&["timeout", "10", "python3", "-c", &script]);
        std::thread::sleep(Duration::from_millis(200));
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

/// An ARP request for `target` from `eth_src`, claiming `sender_ip` is at
/// `sender_mac`.
fn arp(eth_src: &[u8; 6], sender_mac: &[u8; 6], sender_ip: [u8; 4], target: [u8; 4]) -> String {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(eth_src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(sender_mac);
    f.extend_from_slice(&sender_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    hex(&f)
}

/// An unsolicited neighbour advertisement from `mac` at `source` (a
/// legitimate source address) to all nodes: "`target` is at `mac`", with
/// the override flag.
fn neighbour_advert(mac: &[u8; 6], source: Ipv6Addr, target: Ipv6Addr) -> String {
    let dst: Ipv6Addr = "ff02::1".parse().unwrap();
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(mac);
    // The checksum covers the pseudo-header and the message.
    let mut sum: u32 = 0;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    for pair in pseudo.chunks(2).chain(icmp.chunks(2)) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    icmp[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());

    let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
    f.extend_from_slice(mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    hex(&f)
}

/// A container on `br0` of `host` behind port `port` with `mac`.
fn plug(host: &Ns, container: &Ns, port: &str, mac: &[u8; 6], addr: &str, addr6: &str) {
    host.run(&[
        "ip",
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "address",
        &mac_text(mac),
        "netns",
        &container.name,
    ]);
    host.run(&["ip", "link", "set", port, "master", "br0", "up"]);
    container.run(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
    container.run(&["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"]);
    container.run(&["ip", "addr", "add", addr, "dev", "eth0"]);
    container.run(&["ip", "addr", "add", addr6, "dev", "eth0", "nodad"]);
    container.run(&["ip", "link", "set", "eth0", "up"]);
    container.run(&["ip", "link", "set", "lo", "up"]);
}

fn port(name: &str, mac: [u8; 6], addr: &str, addr6: &str) -> GuardedPort {
    GuardedPort {
        ifname: name.to_string(),
        mac,
        ipv4: vec![addr.parse().unwrap()],
        ipv6: vec![addr6.parse().unwrap(), link_local(&mac)],
    }
}

/// The MAC the host's neighbour table has for `addr` on br0, if any.
fn neighbour(host: &Ns, addr: &str) -> Option<String> {
    let text = host.run(&["ip", "-j", "neigh", "show", addr, "dev", "br0"]);
    let all: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    all.as_array()?
        .iter()
        .find_map(|n| n["lladdr"].as_str().map(String::from))
}

/// The MACs the bridge learnt on `dev`.
fn learnt(host: &Ns, dev: &str) -> Vec<String> {
    let text = host.run(&["bridge", "-j", "fdb", "show", "dev", dev]);
    let all: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    all.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["mac"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn guarded_ports_pass_only_their_own_addresses() {
    require_root!("guarded_ports_pass_only_their_own_addresses");
    let host = Ns::new("host");
    let a = Ns::new("a");
    let b = Ns::new("b");
    host.run(&["ip", "link", "add", "br0", "type", "bridge"]);
    host.run(&["ip", "addr", "add", "10.77.0.1/24", "dev", "br0"]);
    host.run(&["ip", "addr", "add", "fd00:77::1/64", "dev", "br0", "nodad"]);
    host.run(&["ip", "link", "set", "br0", "up"]);
    plug(&host, &a, "ga0", &MAC_A, "10.77.0.2/24", "fd00:77::2/64");
    plug(&host, &b, "gb0", &MAC_B, "10.77.0.3/24", "fd00:77::3/64");
    // A foreign bridge table stays as it is.
    host.run(&["nft", "add", "table", "bridge", "other"]);
    host.run(&[
        "nft",
        "add chain bridge other c { type filter hook prerouting priority 0; }",
    ]);
    host.run(&["nft", "add", "rule", "bridge", "other", "c", "counter"]);
    let other = || {
        host.run(&["nft", "list", "table", "bridge", "other"])
            .lines()
            .filter(|l| !l.contains("counter packets"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = other();

    let nft = Nftables::open_in(&host.open()).unwrap();
    let port_a = port("ga0", MAC_A, "10.77.0.2", "fd00:77::2");
    let port_b = port("gb0", MAC_B, "10.77.0.3", "fd00:77::3");
    assert!(!nft.guard(TABLE).present(&port_a).unwrap());
    nft.guard(TABLE).allow(&port_a).execute().unwrap();
    nft.guard(TABLE).allow(&port_b).execute().unwrap();
    nft.guard(TABLE).allow(&port_a).execute().unwrap(); // again: no error
    assert!(nft.guard(TABLE).present(&port_a).unwrap());
    assert!(nft.guard(TABLE).present(&port_b).unwrap());
    host.run(&["nft", "-j", "list", "ruleset"]);

    // Legitimate traffic flows: to the gateway, to the neighbour, IPv6.
    assert!(a.ping(None, "10.77.0.1", 3));
    assert!(a.ping(None, "10.77.0.3", 3));
    assert!(a.ping(None, "fd00:77::1", 3));
    assert!(a.ping(None, "fd00:77::3", 3));
    assert!(host.ping(None, "10.77.0.3", 3));
    assert_eq!(neighbour(&host, "10.77.0.3"), Some(mac_text(&MAC_B)));

    // Another source address (the neighbour's, or any other) gets nothing
    // through, IPv4 or IPv6.
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
    a.send_raw(&forged);
    assert_eq!(neighbour(&host, "10.77.0.3"), Some(mac_text(&MAC_B)));
    // Nor does a frame from B's MAC teach the bridge that B is behind A.
    let stolen_mac = arp(&MAC_B, &MAC_B, [10, 77, 0, 3], [10, 77, 0, 1]);
    a.send_raw(&stolen_mac);
    assert!(!learnt(&host, "ga0").contains(&mac_text(&MAC_B)));
    assert_eq!(neighbour(&host, "10.77.0.3"), Some(mac_text(&MAC_B)));

    // A forged neighbour advertisement ("fd00:77::3 is at A's MAC", sent
    // from A's own link-local address) does not poison the host either.
    assert!(host.ping(None, "fd00:77::3", 3));
    assert_eq!(neighbour(&host, "fd00:77::3"), Some(mac_text(&MAC_B)));
    let forged_na = neighbour_advert(&MAC_A, link_local(&MAC_A), "fd00:77::3".parse().unwrap());
    a.send_raw(&forged_na);
    assert_eq!(neighbour(&host, "fd00:77::3"), Some(mac_text(&MAC_B)));

    // A changed MAC gets nothing through, not even its own address.
    a.run(&["ip", "link", "set", "eth0", "address", "02:00:00:00:00:99"]);
    assert!(!a.ping(None, "10.77.0.1", 2));
    a.run(&["ip", "link", "set", "eth0", "address", &mac_text(&MAC_A)]);
    assert!(a.ping(None, "10.77.0.1", 3));

    // The victim is unaffected.
    assert!(b.ping(None, "10.77.0.1", 3));
    assert!(b.ping(None, "fd00:77::1", 3));

    // Once A's port is forgotten, the same forgeries go through: the guard
    // was what stopped them.
    assert!(nft.guard(TABLE).forget(&port_a).execute().unwrap());
    assert!(!nft.guard(TABLE).forget(&port_a).execute().unwrap());
    assert!(!nft.guard(TABLE).present(&port_a).unwrap());
    assert!(nft.guard(TABLE).present(&port_b).unwrap());
    assert!(a.ping(Some("10.77.0.9"), "10.77.0.1", 3));
    a.send_raw(&forged);
    assert_eq!(neighbour(&host, "10.77.0.3"), Some(mac_text(&MAC_A)));
    a.send_raw(&forged_na);
    assert_eq!(neighbour(&host, "fd00:77::3"), Some(mac_text(&MAC_A)));

    assert_eq!(other(), before);
}

#[test]
fn guard_structure_as_documented() {
    require_root!("guard_structure_as_documented");
    let host = Ns::new("shape");
    let nft = Nftables::open_in(&host.open()).unwrap();
    let p = port("gx0", MAC_A, "10.77.0.2", "fd00:77::2");
    assert!(!nft.guard(TABLE).forget(&p).execute().unwrap(), "no table");
    nft.guard(TABLE).allow(&p).execute().unwrap();
    let text = host.run(&["nft", "list", "table", "bridge", TABLE]);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for expected in [
        "type ifname . ether_addr",
        r#"elements = { "gx0" . 02:6e:0a:4d:00:02 }"#,
        r#"elements = { "gx0" . 10.77.0.2 }"#,
        r#"elements = { "gx0" }"#,
        "type filter hook prerouting priority filter; policy accept;",
        "iifname @guarded jump guard",
        "iifname . ether saddr != @mac drop",
        "ether type 8021q drop",
        "ether type 8021ad drop",
        "iifname . ip saddr @addr4 accept",
        "ip saddr 0.0.0.0 ip protocol udp udp sport 68 udp dport 67 accept",
        "iifname . ip6 saddr @addr6 accept",
        "typeof iifname . @th,64,128",
        r#"elements = { "gx0" . 0xfd000077000000000000000000000002,"#,
        "icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @nd_target drop",
        "drop",
    ] {
        assert!(lines.contains(&expected), "{expected:?} missing:\n{text}");
    }
    assert!(nft.guard(TABLE).forget(&p).execute().unwrap());
    assert!(!text.is_empty());
    assert!(!host
        .run(&["nft", "list", "table", "bridge", TABLE])
        .contains("gx0"));
}

/// A file under the temporary directory, removed on drop.
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

/// `nft --debug=netlink list table` up to the listing itself: each rule's
/// expressions and each set's elements, without the handles and with the
/// elements sorted.
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
    for (header, lines) in &mut blocks {
        if header.contains('@') {
            lines.sort();
        }
    }
    blocks
}

#[test]
fn the_guard_ruleset_can_be_saved_and_restored() {
    require_root!("the_guard_ruleset_can_be_saved_and_restored");
    let host = Ns::new("save");
    let nft = Nftables::open_in(&host.open()).unwrap();
    let p = port("gs0", MAC_A, "10.77.0.2", "fd00:77::2");
    let q = port("gs1", MAC_B, "10.77.0.3", "fd00:77::3");
    nft.guard(TABLE).allow(&p).execute().unwrap();
    nft.guard(TABLE).allow(&q).execute().unwrap();
    // What an administrator does: `nft list ruleset > /etc/nftables.conf`.
    let saved = host.run(&["nft", "list", "ruleset"]);
    assert!(
        saved.contains("iifname . @th,64,128 != @nd_target drop"),
        "{saved}"
    );
    let bytecode = || {
        normalised_bytecode(&host.run(&[
            "nft",
            "--debug=netlink",
            "list",
            "table",
            "bridge",
            TABLE,
        ]))
    };
    let before = bytecode();
    let file = TempFile::new(&saved);
    // `nft -c -f`: parsed and checked against the kernel, nothing committed.
    host.run(&["nft", "-c", "-f", file.path()]);
    host.run(&["nft", "flush", "ruleset"]);
    assert!(!nft.guard(TABLE).present(&p).unwrap());
    host.run(&["nft", "-f", file.path()]);
    assert_eq!(host.run(&["nft", "list", "ruleset"]), saved);
    assert_eq!(bytecode(), before, "the restored rules differ");
    // The restored table is the guard's: present, forget and allow work on it.
    assert!(nft.guard(TABLE).present(&p).unwrap());
    assert!(nft.guard(TABLE).present(&q).unwrap());
    assert!(nft.guard(TABLE).forget(&p).execute().unwrap());
    assert!(!nft.guard(TABLE).present(&p).unwrap());
    assert!(nft.guard(TABLE).present(&q).unwrap());
    nft.guard(TABLE).allow(&p).execute().unwrap();
    assert!(nft.guard(TABLE).present(&p).unwrap());
}
