//! The guard's cost per packet, outside bench/run: the CPU time one
//! process spends sending frames from a guarded port's own MAC and address
//! into its host end, with and without the guard, for three kinds of
//! frame: UDP over IPv4 and over IPv6 (the hot path) and a neighbour
//! solicitation with the port's MAC as its source option (the rare path
//! through every neighbour discovery check).
//!
//! Run as root: `guardpkt PORTS FRAMES ROUNDS` (for example `guardpkt 1000
//! 200000 7`). It moves itself into a network namespace of its own
//! (nothing it makes outlives it), creates PORTS veth pairs there (host
//! ends `veth0a<6 hex digits>`, as guardbatch does), and sends FRAMES
//! frames with `sendmmsg` on a packet socket on the container end of port
//! 0; each frame is received by the host end (`veth_xmit`,
//! `__netif_receive_skb_core`, its netdev ingress hook, and, port 0 being
//! the one port of bridge `gbr0`, the bridge's prerouting hook and its
//! local delivery), within the send's own CPU time. It does this ROUNDS times unguarded for each kind, then
//! guards every port and does it ROUNDS times again, and prints the median
//! CPU time (user + system, `getrusage`) per frame of each in ns, and the
//! difference, a line per kind: `<kind> off <ns> on <ns> guard <ns>`
//! (`ipv4`, `ipv6`, `nd`).
//!
//! Build: `cargo build --release -p netplumb-bench --bin guardpkt`.

use std::error::Error;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use netplumb::{GuardedPort, Nftables};

/// Frames per `sendmmsg`.
const BATCH: usize = 64;

/// Port `i`, as guardbatch makes it (at its index in this namespace, 0
/// before it exists).
fn port(i: u32) -> GuardedPort {
    let [_, a, b, c] = i.to_be_bytes();
    let ifname = format!("veth0a{i:06x}");
    let name = std::ffi::CString::new(ifname.clone()).expect("no NUL");
    // SAFETY: a NUL-terminated name; if_nametoindex reads it only.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    GuardedPort {
        ifname,
        ifindex,
        mac: [2, 0x6e, 10, a, b, c],
        ipv4: vec![Ipv4Addr::new(10, a, b, c)],
        ipv6: vec![format!("fd00::{a:x}:{b:x}:{c:x}")
            .parse()
            .expect("an address")],
    }
}

/// An IPv4 packet from `p`'s MAC and first address to 10.255.255.254:
/// UDP to port 9 with 18 bytes (checksums left 0: the host end drops it
/// after the hook, having no address).
fn frame4(p: &GuardedPort) -> Vec<u8> {
    let mut f = ether(p, 0x0800);
    f.extend_from_slice(&[0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&p.ipv4[0].octets());
    f.extend_from_slice(&[10, 255, 255, 254]);
    f.extend_from_slice(&[0x30, 0x39, 0, 9, 0, 26, 0, 0]);
    f.extend_from_slice(&[0; 18]);
    f
}

/// The same datagram over IPv6, from `p`'s first IPv6 address to fd00::ffff.
fn frame6(p: &GuardedPort) -> Vec<u8> {
    let mut f = ipv6(p, 26, 17, &"fd00::ffff".parse().expect("an address"));
    f.extend_from_slice(&[0x30, 0x39, 0, 9, 0, 26, 0, 0]);
    f.extend_from_slice(&[0; 18]);
    f
}

/// A neighbour solicitation from `p`'s first IPv6 address for fd00::1,
/// with `p`'s MAC as its source link-layer address option (checksum 0: the
/// host end drops it after the hook).
fn frame_nd(p: &GuardedPort) -> Vec<u8> {
    let target: Ipv6Addr = "fd00::1".parse().expect("an address");
    let mut f = ipv6(p, 32, 58, &"ff02::1:ff00:1".parse().expect("an address"));
    f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&target.octets());
    f.extend_from_slice(&[1, 1]);
    f.extend_from_slice(&p.mac);
    f
}

/// A broadcast Ethernet header from `p`'s MAC.
fn ether(p: &GuardedPort, ethertype: u16) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&p.mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Ethernet and an IPv6 header from `p`'s first IPv6 address to `dst`,
/// `length` bytes of payload, next header `next`, hop limit 255.
fn ipv6(p: &GuardedPort, length: u16, next: u8, dst: &Ipv6Addr) -> Vec<u8> {
    let mut f = ether(p, 0x86dd);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&length.to_be_bytes());
    f.extend_from_slice(&[next, 255]);
    f.extend_from_slice(&p.ipv6[0].octets());
    f.extend_from_slice(&dst.octets());
    f
}

/// This process's CPU time so far, in ns.
fn cpu_ns() -> u128 {
    // SAFETY: a zeroed rusage is valid.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let ns = |t: libc::timeval| t.tv_sec as u128 * 1_000_000_000 + t.tv_usec as u128 * 1000;
    ns(r.ru_utime) + ns(r.ru_stime)
}

/// A packet socket bound to interface `index`.
fn packet_socket(index: u32) -> Result<i32, Box<dyn Error>> {
    // SAFETY: plain socket calls on a new fd.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()).into());
    }
    // SAFETY: a zeroed sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = index as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
    // SAFETY: sll outlives the call.
    if unsafe { libc::bind(fd, &sll as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(format!("bind: {}", std::io::Error::last_os_error()).into());
    }
    Ok(fd)
}

/// The CPU time per frame, in ns, of sending `frames` copies of `f` on `fd`.
fn send(fd: i32, f: &[u8], frames: usize) -> Result<f64, Box<dyn Error>> {
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|_| libc::iovec {
            iov_base: f.as_ptr() as *mut _,
            iov_len: f.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: a zeroed mmsghdr is valid; it points at `iov`.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let start = cpu_ns();
    let mut sent = 0;
    while sent < frames {
        // SAFETY: msgs and iov live across the call.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n < 0 {
            return Err(format!("sendmmsg: {}", std::io::Error::last_os_error()).into());
        }
        sent += n as usize;
    }
    Ok((cpu_ns() - start) as f64 / sent as f64)
}

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let [ports, frames, rounds] = args[..] else {
        return Err("usage: guardpkt PORTS FRAMES ROUNDS".into());
    };
    // SAFETY: unshare takes no pointers; the process has one thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()).into());
    }
    let mut ip = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()?;
    let mut stdin = ip.stdin.take().ok_or("ip's stdin")?;
    for i in 0..ports as u32 {
        let p = port(i);
        let mac = p.mac.map(|b| format!("{b:02x}")).join(":");
        writeln!(
            stdin,
            "link add {} type veth peer name p{i} address {mac}",
            p.ifname
        )?;
    }
    // Port 0 on a bridge (the bridge guard's hook is the bridge's), up.
    writeln!(stdin, "link add gbr0 type bridge")?;
    writeln!(stdin, "link set gbr0 up")?;
    writeln!(stdin, "link set {} master gbr0", port(0).ifname)?;
    writeln!(stdin, "link set {} up", port(0).ifname)?;
    writeln!(stdin, "link set p0 up")?;
    drop(stdin);
    if !ip.wait()?.success() {
        return Err("ip -batch failed".into());
    }
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c"p0".as_ptr()) };
    let fd = packet_socket(index)?;
    let p = port(0);
    let kinds = [
        ("ipv4", frame4(&p)),
        ("ipv6", frame6(&p)),
        ("nd", frame_nd(&p)),
    ];
    let measure = |f: &[u8]| -> Result<f64, Box<dyn Error>> {
        send(fd, f, frames)?;
        Ok(median(
            (0..rounds)
                .map(|_| send(fd, f, frames))
                .collect::<Result<_, _>>()?,
        ))
    };
    let off: Vec<f64> = kinds
        .iter()
        .map(|(_, f)| measure(f))
        .collect::<Result<_, _>>()?;
    let nft = Nftables::open()?;
    for i in 0..ports as u32 {
        nft.guard("netsetgo").allow(&port(i)).execute()?;
    }
    for ((kind, f), off) in kinds.iter().zip(off) {
        let on = measure(f)?;
        println!("{kind} off {off:.1} on {on:.1} guard {:.1}", on - off);
    }
    Ok(())
}
