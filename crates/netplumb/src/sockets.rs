//! Which local ports are taken by sockets of this network namespace, asked
//! of the kernel over `NETLINK_SOCK_DIAG` (what `ss -ltn`/`ss -lun` use),
//! in-process: no program is run and no `/proc/net` file is parsed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result, Step};
use crate::Protocol;

// <linux/netlink.h>
const NETLINK_SOCK_DIAG: libc::c_int = 4;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
// <linux/sock_diag.h>
const SOCK_DIAG_BY_FAMILY: u16 = 20;
// <linux/inet_diag.h>
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_S_EQ: u8 = 11;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, sockid.
const REQ_LEN: usize = 4 + 4 + 48;
/// `struct inet_diag_msg` up to and including the source port.
const MSG_SPORT_END: usize = 6;
// <net/tcp_states.h>
const TCP_LISTEN: u32 = 10;

/// How long one answer from the kernel may take.
const RECV_TIMEOUT_SECS: libc::time_t = 5;
const RECV_BUF: usize = 32 * 1024;

/// Whether a socket of this network namespace holds local `port`: for TCP
/// one in `LISTEN`, for UDP any bound one; IPv4 or IPv6 (dual-stack
/// included), on any local address. Dumped by the kernel with a filter on
/// the port, so only matching sockets are sent back. Needs no privilege.
pub fn listening(protocol: Protocol, port: u16) -> Result<bool> {
    let states = match protocol {
        Protocol::Tcp => 1u32 << TCP_LISTEN,
        Protocol::Udp => u32::MAX,
    };
    let ipproto = protocol.number();
    let socket = open()?;
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        if dump_finds(&socket, family, ipproto, states, port)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn fail(object: &str, e: io::Error) -> Error {
    Error::os(Step::ListSockets, object, e)
}

fn open() -> Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(fail("NETLINK_SOCK_DIAG", io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT_SECS,
        tv_usec: 0,
    };
    // SAFETY: SO_RCVTIMEO reads one timeval through the pointer.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(fail("NETLINK_SOCK_DIAG", io::Error::last_os_error()));
    }
    Ok(socket)
}

/// The dump request: `inet_diag_req_v2` and a bytecode filter "source port
/// equals `port`" (as `ss 'sport = :PORT'` sends it).
fn request(family: u8, ipproto: u8, states: u32, port: u16) -> Vec<u8> {
    // Two ops: {S_EQ, yes: past the end (accept), no: beyond it (reject)},
    // then the port in the second op's `no`.
    let mut bytecode = Vec::with_capacity(8);
    bytecode.extend_from_slice(&[INET_DIAG_BC_S_EQ, 8]);
    bytecode.extend_from_slice(&12u16.to_ne_bytes());
    bytecode.extend_from_slice(&[0, 0]);
    bytecode.extend_from_slice(&port.to_ne_bytes());
    let attr_len = 4 + bytecode.len();
    let len = NLMSG_HDRLEN + REQ_LEN + attr_len;
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    msg.extend_from_slice(&[family, ipproto, 0, 0]);
    msg.extend_from_slice(&states.to_ne_bytes());
    msg.extend_from_slice(&[0u8; 48]); // any socket id
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    msg.extend_from_slice(&bytecode);
    msg
}

/// Sends one dump request and reads its answer until a socket with that
/// source port turns up (true) or the dump ends (false).
fn dump_finds(socket: &OwnedFd, family: u8, ipproto: u8, states: u32, port: u16) -> Result<bool> {
    let object = format!(
        "{} {}",
        if family == libc::AF_INET as u8 {
            "IPv4"
        } else {
            "IPv6"
        },
        if ipproto == libc::IPPROTO_TCP as u8 {
            "TCP"
        } else {
            "UDP"
        }
    );
    let msg = request(family, ipproto, states, port);
    // SAFETY: sends msg.len() bytes from msg to the kernel (the default
    // destination of an unconnected netlink socket is the kernel).
    let sent = unsafe { libc::send(socket.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if sent < 0 {
        return Err(fail(&object, io::Error::last_os_error()));
    }
    let mut buf = vec![0u8; RECV_BUF];
    // Bounded: the kernel ends every dump with NLMSG_DONE, and each
    // receive waits at most RECV_TIMEOUT_SECS.
    loop {
        // SAFETY: receives at most buf.len() bytes into buf.
        let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(fail(&object, io::Error::last_os_error()));
        }
        let mut rest = &buf[..n as usize];
        if rest.is_empty() {
            return Err(fail(&object, io::ErrorKind::UnexpectedEof.into()));
        }
        while rest.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
            if len < NLMSG_HDRLEN || len > rest.len() {
                return Err(fail(&object, io::ErrorKind::InvalidData.into()));
            }
            let payload = &rest[NLMSG_HDRLEN..len];
            match kind {
                NLMSG_DONE => return Ok(false),
                NLMSG_ERROR => {
                    let code = payload
                        .get(..4)
                        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                        .ok_or_else(|| fail(&object, io::ErrorKind::InvalidData.into()))?;
                    if code == 0 {
                        return Ok(false);
                    }
                    return Err(fail(&object, io::Error::from_raw_os_error(-code)));
                }
                // idiag_sport, network byte order; checked again here
                // whatever the filter did.
                SOCK_DIAG_BY_FAMILY
                    if payload.len() >= MSG_SPORT_END
                        && u16::from_be_bytes([payload[4], payload[5]]) == port =>
                {
                    return Ok(true);
                }
                _ => {}
            }
            let aligned = (len + 3) & !3;
            rest = rest.get(aligned..).unwrap_or(&[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_what_ss_sends() {
        let msg = request(libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 1 << 10, 8080);
        assert_eq!(msg.len(), 16 + 56 + 12);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 84);
        assert_eq!(&msg[16..20], &[2, 6, 0, 0]);
        // The filter: S_EQ yes 8 no 12, then the port.
        assert_eq!(u16::from_ne_bytes([msg[72], msg[73]]), 12);
        assert_eq!(u16::from_ne_bytes([msg[74], msg[75]]), 1);
        assert_eq!(&msg[76..78], &[11, 8]);
        assert_eq!(u16::from_ne_bytes([msg[82], msg[83]]), 8080);
    }
}
