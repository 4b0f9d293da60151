//! The guard's batches against the number of guarded ports (issue 17's
//! "O(1) per call"), outside bench/run: how long one port's `allow`,
//! `present` (what `-check` and `-restore` ask) and `forget` take when N
//! ports are guarded already.
//!
//! Run as root: `guardbatch N...` (for example `guardbatch 1 100 500 1000`).
//! It first moves itself into a network namespace of its own (nothing it
//! makes outlives it), creates max(N) + 1 veth pairs there (`ip -batch`;
//! host ends `veth0a<6 hex digits>`, the shape of netsetgo's names) and
//! guards their host ends one by one. Whenever N ports are guarded it
//! times, 21 times each, the N+1th port's `allow`, `present` and `forget`
//! (so the count stays N), and the `allow` of the oldest and of the newest
//! guarded port again, and prints the medians in ms:
//! `N=<n> allow <ms> present <ms> forget <ms> reallow_oldest <ms>
//! reallow_newest <ms>`.
//!
//! Build: `cargo build --release -p netplumb-bench --bin guardbatch`.

use std::error::Error;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Instant;

use netplumb::{GuardedPort, Nftables};

/// How often each batch is timed.
const REPEATS: usize = 21;

/// Port `i`: host end `veth0a` and i in 6 hex digits (at its index in
/// this namespace, 0 before it exists), MAC and addresses from i, as
/// netsetgo derives them from a lease.
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
        ipv6: vec![
            format!("fd00::{a:x}:{b:x}:{c:x}")
                .parse()
                .expect("an address"),
            format!("fe80::6e:aff:fe{a:02x}:{b:x}{c:02x}")
                .parse()
                .expect("an address"),
        ],
    }
}

/// The median of `times`.
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// How long `f` takes, in ms.
fn ms<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64() * 1e3)
}

/// The median of `REPEATS` timings of `f`, in ms.
fn median_ms(mut f: impl FnMut() -> Result<(), Box<dyn Error>>) -> Result<f64, Box<dyn Error>> {
    let mut times = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let (out, t) = ms(&mut f);
        out?;
        times.push(t);
    }
    Ok(median(times))
}

/// A network namespace of this process's own, with veth pairs whose host
/// ends are `port(0..=max)`'s.
fn throwaway_namespace(max: u32) -> Result<(), Box<dyn Error>> {
    // SAFETY: unshare takes no pointers; the process has one thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error()).into());
    }
    let mut ip = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()?;
    let mut stdin = ip.stdin.take().ok_or("ip's stdin")?;
    for i in 0..=max {
        writeln!(
            stdin,
            "link add {} type veth peer name p{i}",
            port(i).ifname
        )?;
    }
    drop(stdin);
    if !ip.wait()?.success() {
        return Err("ip -batch failed".into());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let counts = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u32>())
        .collect::<Result<Vec<_>, _>>()?;
    let max = *counts.iter().max().ok_or("usage: guardbatch N...")?;
    throwaway_namespace(max)?;
    let nft = Nftables::open()?;
    let guard = nft.guard("netsetgo");
    let extra = port(max);
    let mut guarded = 0;
    for n in counts {
        while guarded < n {
            guard.allow(&port(guarded)).execute()?;
            guarded += 1;
        }
        let (mut allow, mut present, mut forget) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            let (out, t) = ms(|| guard.allow(&extra).execute());
            out?;
            allow.push(t);
            let (out, t) = ms(|| guard.present(&extra));
            if !out? {
                return Err("the port just guarded is not".into());
            }
            present.push(t);
            let (out, t) = ms(|| guard.forget(&extra).execute());
            if !out? {
                return Err("the port just guarded had no chain".into());
            }
            forget.push(t);
        }
        let oldest = median_ms(|| Ok(guard.allow(&port(0)).execute()?))?;
        let newest = median_ms(|| Ok(guard.allow(&port(n.max(1) - 1)).execute()?))?;
        println!(
            "N={n} allow {:.3} present {:.3} forget {:.3} reallow_oldest {oldest:.3} reallow_newest {newest:.3}",
            median(allow),
            median(present),
            median(forget),
        );
    }
    Ok(())
}
