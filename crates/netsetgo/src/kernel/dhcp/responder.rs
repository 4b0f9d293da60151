//! The responder: a process of its own for one host end, forked by the
//! helper (never exec'd), holding nothing but a packet socket bound to that
//! host end (SECURITY.md, "The DHCP responder").
//!
//! The socket is opened while the helper still holds CAP_NET_RAW
//! ([`Responder::open`]; unbound, it receives nothing), given its filter
//! and bound under the network's lock once the host end exists
//! ([`Responder::bind`]; a client's requests queue on it from then on),
//! and the responder is forked last, after the lock is released and the
//! helper's line is written ([`Responder::start`]).
//!
//! The helper forks it only after it has put /dev/null on its own fds 0-2
//! ([`null_stdio`]; fds 3 and up were closed when it started), so the
//! responder never holds a descriptor of the caller's, not even between
//! the fork and its first run: a fork copies the descriptor table, and a
//! table with no descriptor of the caller's in it has none to copy. The
//! caller (rootlesskit reads the helper's output to its end before its
//! DHCP client starts) thus sees the end of our output when the helper
//! exits, however late the scheduler first runs the responder. (Keeping
//! the fork under the lock and having the child close the caller's fds,
//! as before, made that end wait for the child's first run: up to 9.8 ms
//! after the helper's exit under load. Parking the caller's fds on other
//! numbers around the fork leaves copies in the child; close-on-exec does
//! nothing without an exec, and no clone(2) flag gives a child an empty
//! table.) A fork that fails at that point comes after the line reported
//! success: the helper audits the failure and exits non-zero, and the
//! lease stays until the caller deletes it or garbage collection finds its
//! interface gone.
//!
//! The child leaves the caller's session, keeps no fd but /dev/null on 0-2 and
//! the socket, becomes the given unprivileged uid and gid with no
//! supplementary group, no capability in any set (bounding included),
//! no_new_privs and not dumpable, checks all of that, and only then reads a
//! packet. It exits after its ACK, after [`LIFETIME`], after
//! [`MAX_PACKETS`] requests, or as soon as the host end goes away.

use std::cell::OnceCell;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use caps::CapSet;
use libc::{c_int, c_void, sock_filter, sockaddr, sockaddr_ll, socklen_t};
use nix::sys::prctl;
use nix::unistd::{fork, getgroups, getresgid, getresuid, setsid, ForkResult, Gid, Uid};

use super::{answer, Reply, Terms};
use crate::error::Failure;
use crate::privilege;
use crate::system::{Kernel, System};

/// How long a responder waits for its client. rootlesskit asks within
/// milliseconds of the helper's exit and waits 30 s for each answer.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// How many requests it reads before giving up: a client needs two; a
/// container that floods its own responder only loses its own answer.
pub const MAX_PACKETS: u32 = 64;

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
/// From linux/if_packet.h (4.20): do not see what we send ourselves, nor
/// what the bridge forwards out of this port to the container.
const PACKET_IGNORE_OUTGOING: c_int = 23;
/// From asm-generic/socket.h.
const SO_ATTACH_FILTER: c_int = 26;
/// An Ethernet payload; anything longer is not a request we answer.
const BUFFER: usize = 1500;

/// A packet socket for one host end, whom the responder runs as, and
/// (once bound) whom it answers.
pub struct Responder {
    socket: OwnedFd,
    uid: u32,
    gid: u32,
    terms: OnceCell<Terms>,
}

impl Responder {
    /// Opens the socket; needs CAP_NET_RAW in the host namespace, so it is
    /// done before privileges are dropped. Protocol 0: until it is bound
    /// it receives nothing. The responder will run as `uid`/`gid`, which
    /// must not be root's.
    pub fn open(uid: u32, gid: u32) -> Result<Responder, Failure> {
        if uid == 0 || gid == 0 {
            return Err(Failure::refused(format!(
                "the DHCP responder never runs as root and needs the system user {}; \
                 an administrator must create it",
                crate::privilege::WORKER_USER
            )));
        }
        // SAFETY: a plain syscall; the fd returned is ours alone.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(os_failure("open a packet socket"));
        }
        // SAFETY: fd was just returned to us and is owned by nothing else.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Responder {
            socket,
            uid,
            gid,
            terms: OnceCell::new(),
        })
    }

    /// Filters the socket down to IPv4 UDP to port 67 that arrives from
    /// the container, binds it to the host end `ifindex` (ETH_P_ALL: a
    /// bridge port's frames reach protocol-specific sockets only after the
    /// bridge took them, i.e. never), and keeps `terms` for
    /// [`Responder::start`]. Requests queue on the socket from now on.
    pub fn bind(&self, ifindex: u32, terms: &Terms) -> Result<(), Failure> {
        if self.terms.get().is_some() {
            return Err(Failure::internal("DHCP responder: bound twice"));
        }
        let filter = filter();
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut sock_filter,
        };
        self.set_option(libc::SOL_SOCKET, SO_ATTACH_FILTER, &program)?;
        self.set_option(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &1 as &c_int)?;
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut at: sockaddr_ll = unsafe { zeroed() };
        at.sll_family = libc::AF_PACKET as u16;
        at.sll_protocol = ETH_P_ALL.to_be();
        at.sll_ifindex = ifindex as c_int;
        // SAFETY: `at` is a sockaddr_ll of the size given.
        let bound = unsafe {
            libc::bind(
                self.socket.as_raw_fd(),
                &at as *const sockaddr_ll as *const sockaddr,
                size_of::<sockaddr_ll>() as socklen_t,
            )
        };
        if bound != 0 {
            return Err(os_failure("bind the packet socket"));
        }
        let _ = self.terms.set(terms.clone());
        Ok(())
    }

    /// Forks the responder of a bound socket and returns its pid (`None`:
    /// never bound, nothing to serve). The child inherits every fd of the
    /// calling process and closes all but the socket before it reads a
    /// packet, but may run only after the caller returned: the helper
    /// calls this last, with /dev/null on its fds 0-2 (see the module's
    /// doc).
    ///
    /// The caller must be single-threaded (the helper is: its runtime runs
    /// on the main thread and starts none), so the child may run ordinary
    /// code.
    pub fn start(self) -> Result<Option<u32>, Failure> {
        let Some(terms) = self.terms.get() else {
            return Ok(None);
        };
        // SAFETY: single-threaded (above); the child never returns.
        match unsafe { fork() } {
            Err(e) => Err(Failure::internal(format!("DHCP responder: fork: {e}"))),
            Ok(ForkResult::Parent { child }) => Ok(Some(child.as_raw() as u32)),
            Ok(ForkResult::Child) => {
                let code = match isolate(self.socket.as_raw_fd())
                    .and_then(|fd| shed(self.uid, self.gid).map(|()| fd))
                {
                    Ok(fd) => {
                        serve(fd, terms);
                        0
                    }
                    Err(()) => 1,
                };
                // SAFETY: ends the child without running the parent's exit
                // handlers or flushing its buffers.
                unsafe { libc::_exit(code) }
            }
        }
    }

    fn set_option<T>(&self, level: c_int, name: c_int, value: &T) -> Result<(), Failure> {
        // SAFETY: `value` points to a T of the size given.
        let set = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                level,
                name,
                value as *const T as *const c_void,
                size_of::<T>() as socklen_t,
            )
        };
        if set != 0 {
            return Err(os_failure("set up the packet socket"));
        }
        Ok(())
    }
}

fn os_failure(what: &str) -> Failure {
    Failure::internal(format!(
        "DHCP responder: {what}: {}",
        io::Error::last_os_error()
    ))
}

/// The classic BPF program: accept (whole) IPv4 packets whose protocol is
/// UDP, that are not fragments, to port 67; drop everything else. Offsets
/// are from the IP header (a SOCK_DGRAM socket).
fn filter() -> [sock_filter; 11] {
    use libc::{
        BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX,
        BPF_MSH, BPF_RET, BPF_W, SKF_AD_OFF, SKF_AD_PROTOCOL,
    };
    let op = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    [
        op(
            BPF_LD | BPF_W | BPF_ABS,
            (SKF_AD_OFF + SKF_AD_PROTOCOL) as u32,
        ),
        jump(BPF_JMP | BPF_JEQ | BPF_K, u32::from(ETH_P_IP), 0, 8),
        op(BPF_LD | BPF_B | BPF_ABS, 9),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 6),
        op(BPF_LD | BPF_H | BPF_ABS, 6),
        jump(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 4, 0),
        op(BPF_LDX | BPF_B | BPF_MSH, 0),
        op(BPF_LD | BPF_H | BPF_IND, 2),
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            u32::from(super::SERVER_PORT),
            0,
            1,
        ),
        op(BPF_RET | BPF_K, u32::from(u16::MAX)),
        op(BPF_RET | BPF_K, 0),
    ]
}

/// Puts /dev/null on this process's fds 0-2, letting go of whatever they
/// were (the helper's caller's, before it forks the responder).
pub fn null_stdio() -> Result<(), Failure> {
    let failed = |what: &str| os_failure(&format!("{what} (for fds 0-2)"));
    // SAFETY: plain syscalls on fd numbers; fds 0-2 stay open (now on
    // /dev/null) for whatever owns them.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null < 0 {
            return Err(failed("open /dev/null"));
        }
        for std in 0..=2 {
            if libc::dup2(null, std) != std {
                return Err(failed("dup2 /dev/null"));
            }
        }
        if null > 2 {
            libc::close(null);
        }
    }
    Ok(())
}

/// Leaves the caller's session (no terminal signals) and keeps no fd but
/// /dev/null on 0-2 and the socket, moved to fd 3.
fn isolate(fd: RawFd) -> Result<RawFd, ()> {
    const SOCKET: RawFd = 3;
    setsid().map_err(drop)?;
    // SAFETY: plain syscalls on fd numbers. The objects that own the fds
    // closed here are never used or dropped again: this process _exits.
    unsafe {
        if fd != SOCKET && libc::dup3(fd, SOCKET, 0) != SOCKET {
            return Err(());
        }
    }
    null_stdio().map_err(drop)?;
    // SAFETY: as above.
    unsafe { Kernel.close_from(SOCKET as u32 + 1) };
    Ok(SOCKET)
}

/// Drops every privilege for good (the bounding set first, while that is
/// still possible; after the helper's own drop it is empty already), and
/// checks that it is gone.
fn shed(uid: u32, gid: u32) -> Result<(), ()> {
    for cap in caps::all() {
        if caps::has_cap(None, CapSet::Bounding, cap).map_err(drop)? {
            caps::drop(None, CapSet::Bounding, cap).map_err(drop)?;
        }
    }
    privilege::drop_everything(&Kernel, uid, gid).map_err(drop)?;
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    let uids = getresuid().map_err(drop)?;
    let gids = getresgid().map_err(drop)?;
    let empty = [
        CapSet::Ambient,
        CapSet::Bounding,
        CapSet::Effective,
        CapSet::Inheritable,
        CapSet::Permitted,
    ]
    .into_iter()
    .all(|set| caps::read(None, set).is_ok_and(|s| s.is_empty()));
    let ok = [uids.real, uids.effective, uids.saved] == [uid; 3]
        && [gids.real, gids.effective, gids.saved] == [gid; 3]
        && getgroups().is_ok_and(|g| g.is_empty())
        && empty
        && prctl::get_no_new_privs().unwrap_or(false);
    ok.then_some(()).ok_or(())
}

/// Answers on `fd` until the exchange is complete or a bound is reached.
fn serve(fd: RawFd, terms: &Terms) {
    let deadline = Instant::now() + LIFETIME;
    let mut buffer = [0u8; BUFFER];
    for _ in 0..MAX_PACKETS {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        let mut ready = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = left.as_millis().clamp(1, i32::MAX as u128) as c_int;
        // SAFETY: one pollfd, ours.
        match unsafe { libc::poll(&mut ready, 1, wait) } {
            1 => {}
            -1 if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
            _ => return,
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut from: sockaddr_ll = unsafe { zeroed() };
        let mut from_len = size_of::<sockaddr_ll>() as socklen_t;
        // SAFETY: the buffer and the address are ours and of the sizes
        // given. MSG_TRUNC: the result is the packet's whole length.
        let got = unsafe {
            libc::recvfrom(
                fd,
                buffer.as_mut_ptr() as *mut c_void,
                buffer.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                &mut from as *mut sockaddr_ll as *mut sockaddr,
                &mut from_len,
            )
        };
        // An error: the host end is gone (ENETDOWN) or worse.
        let Ok(got) = usize::try_from(got) else {
            return;
        };
        if got > buffer.len() || from.sll_protocol != ETH_P_IP.to_be() || from.sll_halen != 6 {
            continue;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&from.sll_addr[..6]);
        if let Some(reply) = answer(mac, &buffer[..got], terms) {
            if !send(fd, from.sll_ifindex, &reply) || reply.done {
                return;
            }
        }
    }
}

fn send(fd: RawFd, ifindex: c_int, reply: &Reply) -> bool {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut to: sockaddr_ll = unsafe { zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_IP.to_be();
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&reply.to);
    // SAFETY: the packet and the address are ours and of the sizes given.
    let sent = unsafe {
        libc::sendto(
            fd,
            reply.packet.as_ptr() as *const c_void,
            reply.packet.len(),
            0,
            &to as *const sockaddr_ll as *const sockaddr,
            size_of::<sockaddr_ll>() as socklen_t,
        )
    };
    sent == reply.packet.len() as isize
}
