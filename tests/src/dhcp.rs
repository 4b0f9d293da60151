//! A DHCP client's side for tests: a raw packet socket on one interface of
//! a network namespace named by a process in it. It may forge any Ethernet
//! source, and it collects the DHCP replies that arrive. Also: finding the
//! responder processes of a world, and what `/proc` says they hold.

use std::fs::{self, File};
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder};

use crate::cmd::{bounded, run};

/// Runs `f` on a thread of its own that has joined the network namespace
/// of `pid` (sockets made there stay in it; nothing else of this process
/// moves).
pub fn in_netns_of<T: Send + 'static>(pid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = File::open(format!("/proc/{pid}/ns/net"))
        .unwrap_or_else(|e| panic!("open the network namespace of {pid}: {e}"));
    thread::spawn(move || {
        // SAFETY: setns on an fd we own; it moves only this thread.
        let joined = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(joined, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("the thread in the namespace panicked")
}

/// The index of interface `name` in the network namespace of `pid`.
pub fn index_in(pid: u32, name: &str) -> u32 {
    let name = std::ffi::CString::new(name).expect("a name without NUL");
    in_netns_of(pid, move || {
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(index, 0, "no interface {name:?}");
        index
    })
}

/// The MAC address of interface `name` in the network namespace of `pid`.
pub fn mac_in(pid: u32, name: &str) -> [u8; 6] {
    let pid_arg = pid.to_string();
    let out = run(bounded(&[
        "nsenter", "-t", &pid_arg, "-n", "--", "ip", "-j", "link", "show", name,
    ]));
    let links: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("ip -j link show {name} in {pid}: {e}:\n{out}"));
    let text = links[0]["address"].as_str().unwrap_or_default();
    let mut mac = [0u8; 6];
    let parts: Vec<u8> = text
        .split(':')
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    assert_eq!(parts.len(), 6, "no MAC for {name} in {pid}: {text:?}");
    mac.copy_from_slice(&parts);
    mac
}

/// A raw packet socket on one interface, frames with their Ethernet
/// header; what it sends itself is not read back.
pub struct Client {
    fd: OwnedFd,
    ifindex: i32,
}

impl Client {
    /// On interface `name` in the network namespace of `pid`.
    pub fn on(pid: u32, name: &str) -> Client {
        let ifindex = index_in(pid, name) as i32;
        let fd = in_netns_of(pid, move || {
            let all = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain syscalls on a socket we own; the address is a
            // sockaddr_ll of the size given.
            unsafe {
                let fd = libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(all),
                );
                assert!(
                    fd >= 0,
                    "packet socket: {}",
                    std::io::Error::last_os_error()
                );
                let fd = OwnedFd::from_raw_fd(fd);
                let mut at: libc::sockaddr_ll = zeroed();
                at.sll_family = libc::AF_PACKET as u16;
                at.sll_protocol = all;
                at.sll_ifindex = ifindex;
                let bound = libc::bind(
                    fd.as_raw_fd(),
                    &at as *const _ as *const libc::sockaddr,
                    size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
                let one: libc::c_int = 1;
                let ignore_outgoing = libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    23, // PACKET_IGNORE_OUTGOING
                    &one as *const libc::c_int as *const libc::c_void,
                    size_of::<libc::c_int>() as u32,
                );
                assert_eq!(ignore_outgoing, 0);
                // Room for a flood: what a test reads is never dropped.
                let room: libc::c_int = 4 << 20;
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    &room as *const libc::c_int as *const libc::c_void,
                    size_of::<libc::c_int>() as u32,
                );
                fd
            }
        });
        Client { fd, ifindex }
    }

    /// Sends the IPv4 packet `packet` in a broadcast frame from Ethernet
    /// address `src`.
    pub fn send(&self, src: [u8; 6], packet: &[u8]) {
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(packet);
        self.send_frame(&frame);
    }

    /// Sends `frame` as it is: a whole Ethernet frame, header included, so
    /// any source, destination and type may be forged.
    pub fn send_frame(&self, frame: &[u8]) {
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
        assert_eq!(
            sent,
            frame.len() as isize,
            "send a frame: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Every frame that arrives (or has arrived since the socket was
    /// made) within `limit`, whole.
    pub fn frames(&self, limit: Duration) -> Vec<Vec<u8>> {
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
            if got > 0 {
                out.push(buf[..got as usize].to_vec());
            }
        }
        out
    }

    /// The DHCP replies (IPv4 without options, UDP from port 67) that
    /// arrive within `limit`, each with its Ethernet destination.
    pub fn replies(&self, limit: Duration) -> Vec<([u8; 6], Message)> {
        let mut out = Vec::new();
        for frame in self.frames(limit) {
            if frame.len() > 42 && frame[12..14] == [8, 0] && frame[34..36] == [0, 67] {
                let mut to = [0u8; 6];
                to.copy_from_slice(&frame[..6]);
                match Message::decode(&mut Decoder::new(&frame[42..])) {
                    Ok(message) => out.push((to, message)),
                    Err(e) => panic!("an undecodable reply: {e}"),
                }
            }
        }
        out
    }
}

/// One field of `/proc/<pid>/status` (empty if it or the process is gone).
pub fn status_field(pid: u32, key: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| Some(l.strip_prefix(key)?.strip_prefix(':')?.trim().to_string()))
        .unwrap_or_default()
}

/// Whether `pid` sleeps in the system call numbered `nr` (as
/// `/proc/<pid>/syscall` shows it; false if it or the process is gone).
/// A helper's child sheds what it holds before it first waits: this is the
/// moment from which `/proc` shows what it keeps.
pub fn in_syscall(pid: u32, nr: libc::c_long) -> bool {
    fs::read_to_string(format!("/proc/{pid}/syscall"))
        .is_ok_and(|s| s.split(' ').next() == Some(nr.to_string().as_str()))
}

/// Asserts what `/proc` shows of a responder running as `uid`/`gid`:
/// those ids everywhere, no groups, no capability in any set, no_new_privs,
/// and no fd but /dev/null on 0-2 and one socket.
#[track_caller]
pub fn assert_holds_nothing(pid: u32, uid: u32, gid: u32) {
    let ids = |id: u32| format!("{id}\t{id}\t{id}\t{id}");
    assert_eq!(status_field(pid, "Uid"), ids(uid), "responder {pid}");
    assert_eq!(status_field(pid, "Gid"), ids(gid), "responder {pid}");
    assert_eq!(status_field(pid, "Groups"), "", "responder {pid}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(pid, set), "0000000000000000", "{set} of {pid}");
    }
    assert_eq!(status_field(pid, "NoNewPrivs"), "1", "responder {pid}");
    let mut fds: Vec<(String, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the responder's fds")
        .flatten()
        .map(|e| {
            let target = fs::read_link(e.path()).unwrap_or_default();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, target.to_string_lossy().into_owned())
        })
        .collect();
    fds.sort();
    let names: Vec<&str> = fds.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["0", "1", "2", "3"], "fds of {pid}: {fds:?}");
    assert!(fds[..3].iter().all(|(_, t)| t == "/dev/null"), "{fds:?}");
    assert!(fds[3].1.starts_with("socket:"), "{fds:?}");
}

/// Waits at most `limit` until `pid` is gone (or a zombie).
pub fn gone_within(pid: u32, limit: Duration) -> bool {
    crate::wait_until(limit, Duration::from_millis(20), || {
        matches!(status_field(pid, "State").chars().next(), None | Some('Z'))
    })
}
