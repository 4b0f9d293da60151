//! The DHCP responder against the kernel. Each test re-runs itself under
//! `unshare --net` (a network namespace of its own, gone when it exits),
//! makes a veth pair there, puts the responder on one end (`h0`) and a
//! client's raw packet socket on the other (`c0`), which may forge any
//! Ethernet source. Needs root; without it each test says SKIPPED.

use std::fs;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Decoder};
use netsetgo::dhcp::responder::{self, Responder};
use netsetgo::dhcp::{client_request, Terms};

const INSIDE: &str = "NETSETGO_RESPONDER_TEST_INSIDE";
/// nobody: what the responder becomes in these tests.
const NOBODY: u32 = 65534;

/// True when running inside the test's own namespace; otherwise runs
/// `test` there and checks that it passed.
fn in_own_netns(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("\n*** SKIPPED: needs root: responder::{test} ***");
        return false;
    }
    let out = Command::new("timeout")
        .args(["120", "unshare", "--net", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("test result: ok. 1 passed"),
        "{test} in its own network namespace:\n{text}"
    );
    false
}

fn ip(args: &str) {
    let out = Command::new("ip").args(args.split(' ')).output().unwrap();
    assert!(out.status.success(), "ip {args}: {out:?}");
}

fn index_of(name: &str) -> u32 {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {name:?}");
    index
}

/// (/sys shows the machine's namespace, not this one: ask `ip`.)
fn mac_of(name: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["-o", "link", "show", name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {text:?}"));
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(hex.split(':')) {
        *byte = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

/// The pair, up, and the responder's terms for the client end's MAC.
fn pair() -> Terms {
    ip("link add h0 type veth peer name c0");
    ip("link set h0 up");
    ip("link set c0 up");
    Terms {
        mac: mac_of("c0"),
        address: "10.10.10.7".parse().unwrap(),
        gateway: "10.10.10.1/24".parse().unwrap(),
        dns: vec!["10.10.10.1".parse().unwrap()],
    }
}

/// The pair, a client on c0 and a responder on h0 (its pid).
fn start() -> (Terms, Client, u32) {
    let terms = pair();
    let client = Client::new();
    let responder = Responder::open(NOBODY, NOBODY).expect("open");
    let pid = responder.start(index_of("h0"), &terms).expect("start");
    (terms, client, pid)
}

/// The client: a raw packet socket on c0 (frames with their Ethernet
/// header, sent as given).
struct Client {
    fd: OwnedFd,
    ifindex: i32,
}

impl Client {
    fn new() -> Client {
        let ifindex = index_of("c0") as i32;
        // SAFETY: plain syscalls; the address is a sockaddr_ll.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            );
            assert!(fd >= 0);
            let fd = OwnedFd::from_raw_fd(fd);
            let mut at: libc::sockaddr_ll = zeroed();
            at.sll_family = libc::AF_PACKET as u16;
            at.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            at.sll_ifindex = ifindex;
            let bound = libc::bind(
                fd.as_raw_fd(),
                &at as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(bound, 0);
            let one: i32 = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                23, // PACKET_IGNORE_OUTGOING
                &one as *const i32 as *const libc::c_void,
                4,
            );
            Client { fd, ifindex }
        }
    }

    /// Sends `packet` (IPv4) in a broadcast frame from Ethernet `src`.
    fn send(&self, src: [u8; 6], packet: &[u8]) {
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(packet);
        // SAFETY: all-zero is a valid sockaddr_ll; the frame is ours.
        let sent = unsafe {
            let mut to: libc::sockaddr_ll = zeroed();
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_ifindex = self.ifindex;
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &to as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(sent, frame.len() as isize);
    }

    /// The DHCP replies (from port 67) that arrive within `limit`, with
    /// the Ethernet destination of each.
    fn replies(&self, limit: Duration) -> Vec<([u8; 6], Message)> {
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let mut ready = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd, and a buffer of the size given.
            let got = unsafe {
                if libc::poll(&mut ready, 1, left.as_millis().max(1) as i32) != 1 {
                    break;
                }
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            let frame = &buf[..got.max(0) as usize];
            // Ethernet, IPv4 without options, UDP from port 67.
            if frame.len() > 42 && frame[12..14] == [8, 0] && frame[34..36] == [0, 67] {
                let mut to = [0u8; 6];
                to.copy_from_slice(&frame[..6]);
                let message = Message::decode(&mut Decoder::new(&frame[42..])).unwrap();
                out.push((to, message));
            }
        }
        out
    }
}

fn status_of(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or("")
        .trim()
}

/// Waits (at most 5 s) for the responder to exit; its exit status, or
/// `None` (and it is killed) if it did not.
fn exit_status(pid: u32) -> Option<i32> {
    let end = Instant::now() + Duration::from_secs(5);
    let mut status = 0;
    loop {
        // SAFETY: our own child.
        if unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) } == pid as i32 {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if Instant::now() > end {
            // SAFETY: our own child, not yet reaped.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::waitpid(pid as i32, &mut status, 0);
            }
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Waits until the responder has shed its privileges; its status then.
fn shed_status(pid: u32) -> String {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let status = status_of(pid);
        if field(&status, "Uid").starts_with(&NOBODY.to_string()) || Instant::now() > end {
            return status;
        }
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn holds_nothing_and_answers_only_its_lease() {
    if !in_own_netns("holds_nothing_and_answers_only_its_lease") {
        return;
    }
    let (terms, client, pid) = start();

    // Before it reads a packet it is nobody, holding nothing.
    let status = shed_status(pid);
    let nobody = format!("{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}");
    assert_eq!(field(&status, "Uid"), nobody, "{status}");
    assert_eq!(field(&status, "Gid"), nobody, "{status}");
    assert_eq!(field(&status, "Groups"), "", "{status}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&status, set), "0000000000000000", "{set}: {status}");
    }
    assert_eq!(field(&status, "NoNewPrivs"), "1", "{status}");
    let mut fds: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2", "3"]);
    assert!(fs::read_link(format!("/proc/{pid}/fd/3"))
        .unwrap()
        .to_string_lossy()
        .starts_with("socket:"));
    for std in 0..=2 {
        assert_eq!(
            fs::read_link(format!("/proc/{pid}/fd/{std}")).unwrap(),
            std::path::Path::new("/dev/null")
        );
    }

    // Hostile traffic gets nothing.
    let other = [0x02, 0, 0, 0, 0, 0x42];
    let requested = |a: &str| DhcpOption::RequestedIpAddress(a.parse().unwrap());
    let mut garbled = client_request(terms.mac, MessageType::Discover, &[]);
    garbled[28 + 236] ^= 0xff; // the magic cookie
    let hostile: Vec<([u8; 6], Vec<u8>)> = vec![
        (other, client_request(terms.mac, MessageType::Discover, &[])),
        (terms.mac, client_request(other, MessageType::Discover, &[])),
        (
            terms.mac,
            client_request(terms.mac, MessageType::Request, &[requested("10.10.10.8")]),
        ),
        (terms.mac, garbled),
        (terms.mac, vec![0x45; 7]),
    ];
    for (src, packet) in &hostile {
        client.send(*src, packet);
    }
    assert!(client.replies(Duration::from_millis(300)).is_empty());

    // rootlesskit's exchange: DISCOVER -> OFFER, REQUEST -> ACK.
    client.send(
        terms.mac,
        &client_request(terms.mac, MessageType::Discover, &[]),
    );
    let offers = client.replies(Duration::from_secs(2));
    assert_eq!(offers.len(), 1, "{offers:?}");
    assert_eq!(offers[0].0, terms.mac);
    assert_eq!(offers[0].1.yiaddr(), terms.address);
    assert_eq!(offers[0].1.opts().msg_type(), Some(MessageType::Offer));
    client.send(
        terms.mac,
        &client_request(
            terms.mac,
            MessageType::Request,
            &[
                requested("10.10.10.7"),
                DhcpOption::ServerIdentifier("10.10.10.1".parse().unwrap()),
            ],
        ),
    );
    let acks = client.replies(Duration::from_secs(2));
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0].1.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(acks[0].1.yiaddr(), terms.address);
    // Its work is done.
    assert_eq!(exit_status(pid), Some(0));
}

#[test]
fn gone_with_its_interface() {
    if !in_own_netns("gone_with_its_interface") {
        return;
    }
    let (_, _, pid) = start();
    shed_status(pid);
    ip("link del h0");
    assert_eq!(exit_status(pid), Some(0));
}

#[test]
fn a_flood_ends_it_without_an_answer() {
    if !in_own_netns("a_flood_ends_it_without_an_answer") {
        return;
    }
    let (terms, client, pid) = start();
    shed_status(pid);
    let other = client_request([0x02, 0, 0, 0, 0, 0x42], MessageType::Discover, &[]);
    for _ in 0..responder::MAX_PACKETS {
        client.send(terms.mac, &other);
    }
    assert_eq!(exit_status(pid), Some(0));
    // Nothing answered the flood, and nothing answers after it.
    client.send(
        terms.mac,
        &client_request(terms.mac, MessageType::Discover, &[]),
    );
    assert!(client.replies(Duration::from_millis(300)).is_empty());
}
