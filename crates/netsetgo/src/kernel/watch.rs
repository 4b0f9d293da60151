//! A watch on one host end: an rtnetlink socket of the host's namespace
//! subscribed to its link notifications (`RTNLGRP_LINK`), filtered in the
//! kernel down to the deletion of that one interface, for the reaper of an
//! lxc-user-nic `create` (SECURITY.md, "The reaper").
//!
//! What it reads is written by the kernel alone: a container cannot send
//! on this socket, and the only notification that passes the filter is
//! `RTM_DELLINK` of family `AF_UNSPEC` for the host end's index, which the
//! host namespace's kernel sends when that interface goes (the bridge's
//! `AF_BRIDGE` one, sent when a port only leaves the bridge, does not
//! pass) (its container's namespace died,
//! its peer was deleted, or someone with `CAP_NET_ADMIN` in the host
//! deleted it). The socket is opened without any privilege; it holds no
//! timer and wakes for nothing else, so a watch costs a sleeping process
//! and one socket whatever the host's other interfaces do.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use libc::{c_void, sock_filter, sockaddr, sockaddr_nl, socklen_t};

use crate::error::Failure;

/// `RTNLGRP_LINK`'s bit in the legacy group mask (linux/rtnetlink.h).
const RTMGRP_LINK: u32 = 1;
/// From linux/rtnetlink.h.
const RTM_DELLINK: u16 = 17;
/// Offsets in a notification: `nlmsg_type` in the netlink header, and
/// `ifi_family` and `ifi_index` in the `ifinfomsg` after it.
const TYPE_AT: u32 = 4;
const FAMILY_AT: u32 = 16;
const INDEX_AT: u32 = 16 + 4;
/// A notification of one link is a few KiB at the most; a longer one is
/// read truncated, which is enough to see its type and index.
const BUFFER: usize = 8192;

/// A subscription to the deletion of one host end.
pub struct Watch {
    socket: OwnedFd,
    ifindex: u32,
    ifname: String,
}

impl Watch {
    /// Subscribes to the host namespace's link notifications, filtered
    /// (classic BPF, in the kernel) down to `RTM_DELLINK` of `ifindex`
    /// (family `AF_UNSPEC`: the device itself went).
    /// From the moment this returns, that deletion is queued on the
    /// socket; one that came before is seen by [`Watch::wait`]'s first
    /// look.
    pub fn subscribe(ifindex: u32, ifname: &str) -> Result<Watch, Failure> {
        // SAFETY: a plain syscall; the fd returned is ours alone.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(os_failure("open a netlink socket"));
        }
        // SAFETY: fd was just returned to us and is owned by nothing else.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let filter = filter(ifindex);
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut sock_filter,
        };
        // SAFETY: `program` points to `filter`, alive for the call.
        let set = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &program as *const libc::sock_fprog as *const c_void,
                size_of::<libc::sock_fprog>() as socklen_t,
            )
        };
        if set != 0 {
            return Err(os_failure("filter the netlink socket"));
        }
        // SAFETY: all-zero is a valid sockaddr_nl.
        let mut at: sockaddr_nl = unsafe { zeroed() };
        at.nl_family = libc::AF_NETLINK as u16;
        at.nl_groups = RTMGRP_LINK;
        // SAFETY: `at` is a sockaddr_nl of the size given.
        let bound = unsafe {
            libc::bind(
                fd,
                &at as *const sockaddr_nl as *const sockaddr,
                size_of::<sockaddr_nl>() as socklen_t,
            )
        };
        if bound != 0 {
            return Err(os_failure("subscribe to link notifications"));
        }
        Ok(Watch {
            socket,
            ifindex,
            ifname: ifname.to_string(),
        })
    }

    /// The socket, for a process that keeps only what it needs.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Blocks until the host end is gone (deleted, or no longer that index
    /// by that name): first a look at whether it is
    /// there now (by name, with the index recorded: it may have gone
    /// before the subscription), then sleeps in `recv` until its deletion
    /// arrives. A queue that overflowed (`ENOBUFS`) means a notification
    /// may be lost: it looks again. Any other error of the socket is
    /// returned.
    pub fn wait(&self) -> Result<(), Failure> {
        let mut buffer = [0u8; BUFFER];
        loop {
            if !self.is_there()? {
                return Ok(());
            }
            loop {
                // SAFETY: the buffer is ours and of the size given.
                let got = unsafe {
                    libc::recv(
                        self.socket.as_raw_fd(),
                        buffer.as_mut_ptr() as *mut c_void,
                        buffer.len(),
                        libc::MSG_TRUNC,
                    )
                };
                if let Ok(got) = usize::try_from(got) {
                    if self.is_deletion(&buffer[..got.min(BUFFER)]) {
                        return Ok(());
                    }
                    continue;
                }
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => break,
                    _ => return Err(os_failure("read link notifications")),
                }
            }
        }
    }

    /// Whether `message` is the deletion of our index (what the filter
    /// passes; checked again here, in full).
    fn is_deletion(&self, message: &[u8]) -> bool {
        let half = |at: usize| {
            message
                .get(at..at + 2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        };
        let word = |at: usize| {
            message
                .get(at..at + 4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        half(TYPE_AT as usize) == Some(RTM_DELLINK)
            && message.get(FAMILY_AT as usize) == Some(&(libc::AF_UNSPEC as u8))
            && word(INDEX_AT as usize) == Some(self.ifindex)
    }

    /// Whether the host namespace has an interface of our name with our
    /// index (`SIOCGIFINDEX`, answered for any socket of the namespace).
    fn is_there(&self) -> Result<bool, Failure> {
        // SAFETY: all-zero is a valid ifreq.
        let mut request: libc::ifreq = unsafe { zeroed() };
        let name = self.ifname.as_bytes();
        if name.len() >= request.ifr_name.len() {
            return Ok(false);
        }
        for (to, from) in request.ifr_name.iter_mut().zip(name) {
            *to = *from as libc::c_char;
        }
        // SAFETY: an ifreq of ours, filled by the kernel on success.
        let done = unsafe {
            libc::ioctl(
                self.socket.as_raw_fd(),
                libc::SIOCGIFINDEX as _,
                &mut request,
            )
        };
        if done != 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::ENODEV) => Ok(false),
                _ => Err(os_failure("look up the host end")),
            };
        }
        // SAFETY: on success the kernel filled the ifindex member.
        Ok(unsafe { request.ifr_ifru.ifru_ifindex } as u32 == self.ifindex)
    }
}

fn os_failure(what: &str) -> Failure {
    Failure::internal(format!("reaper: {what}: {}", io::Error::last_os_error()))
}

/// Accept `RTM_DELLINK` of family `AF_UNSPEC` and index `ifindex`, drop
/// everything else (the bridge's `AF_BRIDGE` deletion of a port that only
/// left it among them). Classic BPF
/// loads are big-endian and netlink is in host order: the constants are
/// the host-order bytes read as big-endian.
fn filter(ifindex: u32) -> [sock_filter; 8] {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let op = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let deletion = u32::from(u16::from_be_bytes(RTM_DELLINK.to_ne_bytes()));
    let index = u32::from_be_bytes(ifindex.to_ne_bytes());
    [
        op(BPF_LD | BPF_H | BPF_ABS, TYPE_AT, 0, 0),
        op(BPF_JMP | BPF_JEQ | BPF_K, deletion, 0, 5),
        op(BPF_LD | BPF_B | BPF_ABS, FAMILY_AT, 0, 0),
        op(BPF_JMP | BPF_JEQ | BPF_K, libc::AF_UNSPEC as u32, 0, 3),
        op(BPF_LD | BPF_W | BPF_ABS, INDEX_AT, 0, 0),
        op(BPF_JMP | BPF_JEQ | BPF_K, index, 0, 1),
        op(BPF_RET | BPF_K, u32::MAX, 0, 0),
        op(BPF_RET | BPF_K, 0, 0, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification as the kernel writes it: header, then ifinfomsg.
    fn message(kind: u16, index: u32) -> Vec<u8> {
        family_message(kind, libc::AF_UNSPEC as u8, index)
    }

    /// [`message`] of another family.
    fn family_message(kind: u16, family: u8, index: u32) -> Vec<u8> {
        let mut m = vec![0u8; 32];
        m[..4].copy_from_slice(&32u32.to_ne_bytes());
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        m[16] = family;
        m[20..24].copy_from_slice(&index.to_ne_bytes());
        m
    }

    /// Runs the classic BPF program the way the kernel does (loads
    /// big-endian), for the few instructions it uses.
    fn run(program: &[sock_filter], packet: &[u8]) -> u32 {
        let mut a = 0u32;
        let mut pc = 0usize;
        loop {
            let i = program[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) => {
                    let at = i.k as usize;
                    a = u32::from(u16::from_be_bytes([packet[at], packet[at + 1]]));
                }
                c if c == (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) => {
                    a = u32::from(packet[i.k as usize]);
                }
                c if c == (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) => {
                    let at = i.k as usize;
                    a = u32::from_be_bytes(packet[at..at + 4].try_into().unwrap());
                }
                c if c == (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                c if c == (libc::BPF_RET | libc::BPF_K) => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_passes_only_the_deletion_of_its_index() {
        let program = filter(0x1234_5678);
        assert_eq!(run(&program, &message(RTM_DELLINK, 0x1234_5678)), u32::MAX);
        assert_eq!(run(&program, &message(RTM_DELLINK, 0x1234_5679)), 0);
        assert_eq!(run(&program, &message(16, 0x1234_5678)), 0);
        assert_eq!(run(&program, &message(RTM_DELLINK, 0x7856_3412)), 0);
        // The bridge's notice that the port left it: the device lives.
        let bridge = family_message(RTM_DELLINK, libc::AF_BRIDGE as u8, 0x1234_5678);
        assert_eq!(run(&program, &bridge), 0);
    }

    /// The first look, by name and index, in this process's namespace,
    /// whose `lo` is always index 1: an interface gone before the
    /// subscription ends the wait at once.
    #[test]
    fn the_first_look_needs_that_name_with_that_index() {
        assert!(Watch::subscribe(1, "lo").unwrap().is_there().unwrap());
        assert!(!Watch::subscribe(2, "lo").unwrap().is_there().unwrap());
        let gone = Watch::subscribe(1, "nsg-no-such0").unwrap();
        assert!(!gone.is_there().unwrap());
        gone.wait().unwrap();
    }

    #[test]
    fn only_a_whole_deletion_of_its_index_counts() {
        let watch = Watch {
            socket: std::fs::File::open("/dev/null").unwrap().into(),
            ifindex: 9,
            ifname: "x".into(),
        };
        assert!(watch.is_deletion(&message(RTM_DELLINK, 9)));
        assert!(!watch.is_deletion(&message(RTM_DELLINK, 8)));
        assert!(!watch.is_deletion(&message(16, 9)));
        assert!(!watch.is_deletion(&message(RTM_DELLINK, 9)[..22]));
        let bridge = family_message(RTM_DELLINK, libc::AF_BRIDGE as u8, 9);
        assert!(!watch.is_deletion(&bridge));
    }
}
