//! Traffic for the plugin's tests, all between namespaces the test made:
//! an "outside machine" joined to the world's host by a veth, a TCP server
//! in a container that answers each client with the address it saw, and
//! forged frames sent raw from a container with a receiver that reports
//! the sources it got. Every wait is bounded (`timeout`, counted retries).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, TestNs};

/// The host's uplink address, which the outside machine connects to.
pub(crate) const UPLINK: &str = "192.0.2.1";
/// The outside machine's address.
pub(crate) const OUTSIDE: &str = "192.0.2.2";

/// A namespace joined to `host` by a veth: `UPLINK/24` on the host side,
/// `OUTSIDE/24` on its own side.
pub(crate) fn outside_machine(host: &TestNs) -> TestNs {
    let outside = TestNs::new("out");
    host.ip(&[
        "link",
        "add",
        "uplink0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &outside.name,
    ]);
    host.ip(&["addr", "add", &format!("{UPLINK}/24"), "dev", "uplink0"]);
    host.ip(&["link", "set", "uplink0", "up"]);
    outside.ip(&["addr", "add", &format!("{OUTSIDE}/24"), "dev", "eth0"]);
    outside.ip(&["link", "set", "eth0", "up"]);
    outside.ip(&["link", "set", "lo", "up"]);
    outside
}

/// A process killed and reaped on drop.
pub(crate) struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Background {
    /// Waits (at most 10 s) for it to end and returns its stdout.
    pub(crate) fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        }
        out
    }
}

fn python_in(ns: &TestNs, seconds: &str, script: &str) -> Background {
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "timeout", seconds, "python3", "-c", script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python3");
    Background(child)
}

/// Whether something in `ns` listens on `proto` port `port` (`ss`).
fn bound(ns: &TestNs, proto: &str, port: u16) -> bool {
    let out = ns.output(&["ss", "-Hn", proto, "-l", &format!("sport = :{port}")]);
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// Waits (at most 5 s) until something in `ns` listens on `port`.
fn wait_bound(ns: &TestNs, proto: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bound(ns, proto, port) {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} in {}",
            ns.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP server in `ns` on `port` (for 60 s at the most) that answers
/// each connection with the client's address as it sees it.
pub(crate) fn echo_peer_server(ns: &TestNs, port: u16) -> Background {
    let script = format!(
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', {port})); s.listen(8)\n\
         while True:\n    c, a = s.accept(); c.sendall(a[0].encode()); c.close()\n"
    );
    let server = python_in(ns, "60", &script);
    wait_bound(ns, "-t", port);
    server
}

/// A TCP listener in `ns` on `port` (for 60 s at the most) that does
/// nothing else: a host program holding a port.
pub(crate) fn listener(ns: &TestNs, port: u16) -> Background {
    let script = format!(
        "import socket, time\n\
         s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(1); time.sleep(60)\n"
    );
    let server = python_in(ns, "60", &script);
    wait_bound(ns, "-t", port);
    server
}

/// Connects from `ns` to `address:port` (3 tries of 2 s) and returns what
/// the server said, `None` if no connection was answered.
pub(crate) fn fetch(ns: &TestNs, address: &str, port: u16) -> Option<String> {
    let script = format!(
        "import socket\n\
         c = socket.create_connection(('{address}', {port}), timeout=2)\n\
         print(c.recv(100).decode())\n"
    );
    (0..3).find_map(|_| {
        let out = ns.output(&["timeout", "5", "python3", "-c", &script]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    })
}

/// A UDP receiver in `ns` on `address:port` for `seconds`, then it prints
/// the source address of every datagram it got, one a line. The window must
/// outlast every send of the test, each a python start-up (seconds on a
/// loaded machine): a datagram sent after it closes is neither counted nor
/// missed, which would make a test of absence pass for nothing.
pub(crate) fn udp_sources(ns: &TestNs, address: &str, port: u16, seconds: u32) -> Background {
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('{address}', {port}))\n\
         s.settimeout(0.2); end = time.time() + {seconds}\n\
         while time.time() < end:\n    try:\n        d, a = s.recvfrom(2000); print(a[0], flush=True)\n    except socket.timeout:\n        pass\n"
    );
    let receiver = python_in(ns, &(seconds + 5).to_string(), &script);
    wait_bound(ns, "-u", port);
    receiver
}

/// Sends, three times from `ifname` in `ns` on an AF_PACKET socket, an
/// Ethernet frame `src_mac -> dst_mac` carrying UDP `src_ip:4444 ->
/// dst_ip:port`: forged whenever the sources are not the sender's own.
pub(crate) fn send_forged_udp(
    ns: &TestNs,
    ifname: &str,
    (src_mac, dst_mac): (&str, &str),
    (src_ip, dst_ip): (&str, &str),
    port: u16,
) {
    let script = format!(
        "import socket, struct\n\
         def csum(b):\n    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))\n    s = (s >> 16) + (s & 0xffff); s += s >> 16\n    return ~s & 0xffff\n\
         data = b'forged'\n\
         udp = struct.pack('!HHHH', 4444, {port}, 8 + len(data), 0) + data\n\
         ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton('{src_ip}'), socket.inet_aton('{dst_ip}'))\n\
         ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]\n\
         eth = bytes.fromhex('{dst}') + bytes.fromhex('{src}') + b'\\x08\\x00'\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('{ifname}', 0))\n\
         for _ in range(3): s.send(eth + ip + udp)\n",
        dst = dst_mac.replace(':', ""),
        src = src_mac.replace(':', ""),
    );
    ns.run(&["timeout", "10", "python3", "-c", &script]);
}

/// The port the bridge's forwarding database sends `mac` to, if any.
pub(crate) fn fdb_port(host: &TestNs, bridge: &str, mac: &str) -> Option<String> {
    let out = common::run(
        "bridge",
        &["-n", &host.name, "-j", "fdb", "show", "br", bridge],
    );
    let fdb: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    common::as_vec(fdb)
        .into_iter()
        .find(|e| e["mac"] == mac && e["ifname"].is_string())
        .and_then(|e| e["ifname"].as_str().map(String::from))
}
