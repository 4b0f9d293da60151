//! Traffic between namespaces a test made: an "outside" namespace joined to
//! a world by a veth (the world's uplink), TCP and UDP servers that report
//! the peer address they saw, and a client. All processes run as root on
//! the machine, each entering only the network namespace it serves; every
//! wait is bounded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::Duration;

use crate::cmd::{bounded, clean_env, run, time_scale, Output};
use crate::world::{ns_of, Proc, World};

/// The world's end of its uplink (TEST-NET-1).
pub const UPLINK4: &str = "192.0.2.1";
/// The outside's address on the uplink.
pub const OUTSIDE4: &str = "192.0.2.2";
/// The world's end of its uplink, IPv6 (the documentation prefix).
pub const UPLINK6: &str = "2001:db8:2::1";
/// The outside's IPv6 address on the uplink.
pub const OUTSIDE6: &str = "2001:db8:2::2";

/// `nsenter -t PID -n --`: a prefix that runs a command as root in the
/// network namespace of `pid`.
pub fn netns_prefix(pid: u32) -> Vec<String> {
    ["nsenter", "-t", &pid.to_string(), "-n", "--"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A root `unshare -n sleep` started in the world (so dropping the world
/// kills it too), joined to the world by the veth `up0` (world,
/// 192.0.2.1/24 and 2001:db8:2::1/64) ↔ `eth0` (outside, .2). The outside
/// has no route to any container subnet: whatever reaches a container from
/// it was translated by the world.
pub struct Outside {
    proc: Proc,
}

impl Outside {
    /// Starts the outside machine: a namespace joined to `world` by a veth.
    pub fn new(world: &World) -> Outside {
        let mut proc = world.spawn(&["unshare", "-n", "--", "sleep", "600"]);
        proc.wait_for_exec("sleep");
        let pid = proc.pid();
        let own = ns_of(pid, "net");
        assert!(
            own.is_some() && own != ns_of(world.pid(), "net"),
            "the outside {pid} has no network namespace of its own"
        );
        let outside = Outside { proc };
        let opid = pid.to_string();
        for argv in [
            &[
                "ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", &opid,
            ][..],
            &["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"],
            &[
                "ip",
                "addr",
                "add",
                "2001:db8:2::1/64",
                "dev",
                "up0",
                "nodad",
            ],
            &["ip", "link", "set", "up0", "up"],
        ] {
            world.run(argv).expect_success(&argv.join(" "));
        }
        for argv in [
            &["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"][..],
            &[
                "ip",
                "addr",
                "add",
                "2001:db8:2::2/64",
                "dev",
                "eth0",
                "nodad",
            ],
            &["ip", "link", "set", "eth0", "up"],
            &["ip", "link", "set", "lo", "up"],
        ] {
            outside.run(argv).expect_success(&argv.join(" "));
        }
        outside
    }

    /// The pid of its process (for `nsenter -t`).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The prefix that enters the outside's network namespace.
    pub fn enter(&self) -> Vec<String> {
        netns_prefix(self.pid())
    }

    /// Runs `argv` as root in the outside's network namespace.
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut all = self.enter();
        all.extend(argv.iter().map(|s| s.to_string()));
        run(bounded(&all))
    }

    /// Asserts that a TCP request from the outside to the world's uplink
    /// address on `port` (a published port) is answered by `server`
    /// within [`OUTSIDE_TRIES`] tries, and that `server` saw the outside's
    /// own address.
    #[track_caller]
    pub fn assert_reaches(&self, server: &mut Server, port: u16) {
        let token = token();
        let out = request_retrying(&self.enter(), "tcp", UPLINK4, port, &token, OUTSIDE_TRIES);
        assert!(
            out.success() && out.stdout.trim_end().ends_with(" hello"),
            "tcp {UPLINK4}:{port} not answered from the outside:\n{out}"
        );
        assert_eq!(
            server.peer_of(&token, Duration::from_secs(5)).as_deref(),
            Some(OUTSIDE4),
            "the server saw another client address"
        );
    }

    /// Asserts that a TCP request from the outside to the world's uplink
    /// address on `port` is not answered.
    #[track_caller]
    pub fn assert_unanswered(&self, port: u16) {
        let out = request(&self.enter(), "tcp", UPLINK4, port, &token());
        assert!(
            !out.success() && !out.stdout.contains("hello"),
            "tcp {UPLINK4}:{port} was answered:\n{out}"
        );
    }
}

/// How often [`Outside::assert_reaches`] tries a request before a
/// published port counts as unreachable.
pub const OUTSIDE_TRIES: u32 = 15;

/// Serves `argv[1]` (`tcp` or `udp`) on `argv[2]` port `argv[3]` and exits
/// after `argv[4]` seconds at the latest. Prints `listening` once bound and
/// `peer ADDR TOKEN` for each connection or datagram (TOKEN: the second
/// word the client sent, `-` if none), and answers each with `hello`. An IPv6 address serves IPv4 too (IPv4 peers are printed as
/// IPv4-mapped addresses). It is the process nsenter execs, so killing that
/// kills the server.
const SERVER: &str = r#"
import signal, socket, sys
signal.alarm(int(sys.argv[4]))
proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if family == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((addr, port))
if proto == "tcp":
    s.listen(16)
print("listening", flush=True)
def token(data):
    words = data.decode(errors="replace").split()
    return words[1] if len(words) > 1 else "-"
while True:
    try:
        if proto == "tcp":
            c, peer = s.accept()
            c.settimeout(2)
            try:
                data = c.recv(256)
            except OSError:
                data = b""
            print("peer", peer[0], token(data), flush=True)
            try:
                c.sendall(b"hello\n")
            except OSError:
                pass
            c.close()
        else:
            data, peer = s.recvfrom(2048)
            print("peer", peer[0], token(data), flush=True)
            s.sendto(b"hello\n", peer)
    except OSError:
        pass
"#;

/// Sends `ping TOKEN` (TOKEN: `argv[5]`) to `argv[2]` port `argv[3]` over
/// `argv[1]` and waits at most `argv[4]` seconds for the answer; prints
/// its own address and the answer. Fails (non-zero) if no answer comes.
const CLIENT: &str = r#"
import socket, sys
proto, addr, port, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
if proto == "tcp":
    s = socket.create_connection((addr, port), timeout=limit)
else:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(limit)
    s.connect((addr, port))
s.send(b"ping " + sys.argv[5].encode() + b"\n")
print(s.getsockname()[0], s.recv(16).decode().strip())
"#;

/// A token no other request of this process carries.
pub fn token() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A peer address as the server printed it, IPv4-mapped IPv6 addresses as
/// IPv4.
fn plain_address(text: &str) -> String {
    text.strip_prefix("::ffff:").unwrap_or(text).to_string()
}

/// A TCP or UDP server in some network namespace that reports every peer.
/// Killed when dropped.
pub struct Server {
    child: Child,
    peers: Receiver<String>,
}

impl Server {
    /// Starts the server as root with `prefix` (a namespace-entering
    /// command, see [`netns_prefix`]) on `addr` port `port`; returns once
    /// it listens (bounded), panics if it does not.
    pub fn start(prefix: &[String], proto: &str, addr: &str, port: u16) -> Server {
        let mut argv: Vec<String> = prefix.to_vec();
        let lifetime = (120 * time_scale()).to_string();
        let port = port.to_string();
        argv.extend(
            ["python3", "-c", SERVER, proto, addr, &port, &lifetime]
                .iter()
                .map(|s| s.to_string()),
        );
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        clean_env(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the server {argv:?}: {e}"));
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut server = Server { child, peers: rx };
        let first = server
            .peers
            .recv_timeout(Duration::from_secs(10) * time_scale());
        if first.as_deref() != Ok("listening") {
            let status = server.child.try_wait();
            panic!("the {proto} server on {addr}:{port} did not start ({first:?}, {status:?})");
        }
        server
    }

    /// `(address, token)` of a `peer` line.
    fn parse(line: &str) -> Option<(String, String)> {
        let mut words = line.strip_prefix("peer ")?.split(' ');
        let address = plain_address(words.next()?);
        Some((address, words.next().unwrap_or("-").to_string()))
    }

    /// The peer address of the next connection or datagram, if one comes
    /// within `limit` (times [`time_scale`]).
    pub fn next_peer(&mut self, limit: Duration) -> Option<String> {
        let line = self.peers.recv_timeout(limit * time_scale()).ok()?;
        Self::parse(&line).map(|(address, _)| address)
    }

    /// The peer address of the first request that carried `token` (see
    /// [`request`]), if it arrives within `limit` (times [`time_scale`]);
    /// reports of other requests (a retried datagram that arrived late)
    /// are skipped.
    pub fn peer_of(&mut self, token: &str, limit: Duration) -> Option<String> {
        let end = std::time::Instant::now() + limit * time_scale();
        while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
            let line = self.peers.recv_timeout(left).ok()?;
            if let Some((address, t)) = Self::parse(&line) {
                if t == token {
                    return Some(address);
                }
            }
        }
        None
    }

    /// Every peer reported within `limit` (times [`time_scale`]) from now.
    pub fn peers_within(&mut self, limit: Duration) -> Vec<String> {
        let end = std::time::Instant::now() + limit * time_scale();
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
            match self.peers.recv_timeout(left) {
                Ok(line) => out.extend(Self::parse(&line).map(|(address, _)| address)),
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request of the client, run as root with `prefix`, to `addr` port
/// `port` over `proto`, carrying `token` (see [`Server::peer_of`]),
/// waiting at most 2 s (times [`time_scale`]) for the answer. On success
/// stdout is `<own address> hello`.
pub fn request(prefix: &[String], proto: &str, addr: &str, port: u16, token: &str) -> Output {
    let mut argv: Vec<String> = prefix.to_vec();
    let limit = (2 * time_scale()).to_string();
    let port = port.to_string();
    argv.extend(
        ["python3", "-c", CLIENT, proto, addr, &port, &limit, token]
            .iter()
            .map(|s| s.to_string()),
    );
    run(bounded(&argv))
}

/// [`request`] up to `tries` times, 200 ms apart, until one is answered
/// (a published port may need a moment: neighbour resolution, DAD);
/// returns the last output. Every try carries `token`.
pub fn request_retrying(
    prefix: &[String],
    proto: &str,
    addr: &str,
    port: u16,
    token: &str,
    tries: u32,
) -> Output {
    let mut last = request(prefix, proto, addr, port, token);
    for _ in 1..tries {
        if last.success() {
            break;
        }
        thread::sleep(Duration::from_millis(200));
        last = request(prefix, proto, addr, port, token);
    }
    last
}

/// What a host's services would receive: a dual-stack UDP socket on one
/// port and raw ICMP and ICMPv6 sockets (which see every echo request the
/// stack delivers locally), all in the network namespace of a process.
/// [`Sources::received`] reads what arrived, with its source address.
pub struct Sources {
    sockets: Vec<std::os::fd::OwnedFd>,
}

impl Sources {
    /// Opens them in the network namespace of `pid`, the UDP socket on
    /// `[::]:port` (IPv4 too).
    pub fn open(pid: u32, port: u16) -> Sources {
        use std::os::fd::FromRawFd;
        let sockets = crate::dhcp::in_netns_of(pid, move || {
            let open = |family: i32, kind: i32, proto: i32| {
                // Close-on-exec: a sibling test's fork would otherwise
                // carry the socket into its program (a container's `sleep
                // 600`), where it keeps the port bound after the drop.
                // SAFETY: a plain socket call; the fd is owned at once.
                let fd = unsafe {
                    libc::socket(
                        family,
                        kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        proto,
                    )
                };
                assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
                // SAFETY: a new fd nobody else owns.
                unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
            };
            let udp = open(libc::AF_INET6, libc::SOCK_DGRAM, 0);
            let icmp = open(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
            let icmp6 = open(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6);
            let all = [udp, icmp, icmp6];
            let zero: libc::c_int = 0;
            let big: libc::c_int = 4 << 20;
            // SAFETY: setsockopt and bind with values and sizes that match.
            unsafe {
                for s in &all {
                    let fd = std::os::fd::AsRawFd::as_raw_fd(s);
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUFFORCE,
                        &big as *const _ as *const libc::c_void,
                        4,
                    );
                }
                let fd = std::os::fd::AsRawFd::as_raw_fd(&all[0]);
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    &zero as *const _ as *const libc::c_void,
                    4,
                );
                let mut at: libc::sockaddr_in6 = std::mem::zeroed();
                at.sin6_family = libc::AF_INET6 as u16;
                at.sin6_port = port.to_be();
                let bound = libc::bind(
                    fd,
                    &at as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as u32,
                );
                assert_eq!(
                    bound,
                    0,
                    "bind [::]:{port}: {}",
                    std::io::Error::last_os_error()
                );
            }
            all.into_iter().collect()
        });
        Sources { sockets }
    }

    /// Every datagram and ICMP message that has arrived since the last
    /// call: its source address (IPv4-mapped ones as IPv4) and its bytes
    /// (the raw ICMP socket's with their IPv4 header).
    pub fn received(&self) -> Vec<(std::net::IpAddr, Vec<u8>)> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        for s in &self.sockets {
            loop {
                // SAFETY: recvfrom into buffers of the sizes given.
                let (got, from) = unsafe {
                    let mut from: libc::sockaddr_storage = std::mem::zeroed();
                    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as u32;
                    let got = libc::recvfrom(
                        std::os::fd::AsRawFd::as_raw_fd(s),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                        &mut from as *mut _ as *mut libc::sockaddr,
                        &mut len,
                    );
                    (got, from)
                };
                if got < 0 {
                    break;
                }
                let address = match i32::from(from.ss_family) {
                    libc::AF_INET => {
                        // SAFETY: the kernel wrote a sockaddr_in.
                        let a = unsafe { *(&from as *const _ as *const libc::sockaddr_in) };
                        IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)))
                    }
                    _ => {
                        // SAFETY: the kernel wrote a sockaddr_in6.
                        let a = unsafe { *(&from as *const _ as *const libc::sockaddr_in6) };
                        let v6 = Ipv6Addr::from(a.sin6_addr.s6_addr);
                        v6.to_ipv4_mapped()
                            .map(IpAddr::V4)
                            .unwrap_or(IpAddr::V6(v6))
                    }
                };
                out.push((address, buf[..got as usize].to_vec()));
            }
        }
        out
    }
}
