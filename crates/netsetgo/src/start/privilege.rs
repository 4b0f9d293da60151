//! Privilege: making a setuid-root start safe, checking that we really are
//! privileged, and shedding everything but CAP_NET_ADMIN.
//!
//! The order matters and is fixed by [`stages::run`](crate::stages::run):
//! `sanitize` first, before any
//! other code looks at the process; `Caller::identify` next; `restrict`
//! narrows the capabilities to what the privileged setup needs; after the
//! namespace socket is open `drop_to` becomes the system user `_netsetgo`
//! with CAP_NET_ADMIN alone.

use std::collections::HashSet;
use std::fs;

use caps::Capability;
use nix::sys::prctl;
use nix::unistd::{getegid, geteuid, getgid, getuid};

use crate::accounts::SystemAccounts;
use crate::error::Failure;
use crate::system::System;

/// Capabilities held between `restrict` and `drop_to`.
const SETUP_CAPS: [Capability; 6] = [
    Capability::CAP_NET_ADMIN,
    Capability::CAP_SYS_ADMIN, // setns() into the target to open a socket there
    Capability::CAP_SYS_PTRACE, // open /proc/PID/ns/net of the caller's process
    Capability::CAP_SETUID,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP, // empty the bounding set
];

/// The number of resource limits Linux has: `RLIM_NLIMITS` of
/// include/uapi/asm-generic/resource.h, unchanged since 2.6.25 added
/// RLIMIT_RTTIME (the libc crate deprecates its copy of it).
pub const RLIM_NLIMITS: usize = 16;

/// One resource limit as sanitising sets it: soft and hard limit alike.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// The `RLIMIT_*` number.
    pub resource: u32,
    /// The `RLIMIT_*` name, for messages.
    pub name: &'static str,
    /// The soft and hard limit (`RLIM_INFINITY` for none).
    pub value: u64,
    /// The least hard limit the helper finishes every call with. Raising
    /// a hard limit needs CAP_SYS_RESOURCE: where the caller's is below
    /// `value` and the bounding set took that capability away, the
    /// caller's hard limit becomes the soft one too if it is at least
    /// this, and the call is refused if it is not.
    pub need: u64,
}

const fn limit(resource: u32, name: &'static str, value: u64, need: u64) -> Limit {
    Limit {
        resource,
        name,
        value,
        need,
    }
}

const MIB: u64 = 1024 * 1024;
const UNLIMITED: u64 = libc::RLIM_INFINITY;

/// Every resource limit, indexed by its number, and the value sanitising
/// gives it whatever the caller's was (requirement 19: the caller must not
/// choose where its helper crashes, stalls or fails; inherited limits
/// survive exec, setuid or not), and what the helper needs where only a
/// lower one can be had (see [`Limit::need`]):
///
/// | resource   | value     | need      | why |
/// |------------|-----------|-----------|-----|
/// | CPU        | unlimited | unlimited | SIGXCPU/SIGKILL at a CPU time of the caller's choosing (CPU time spent before the exec counts, so any finite limit is a deadline the caller can bring forward); the helper's work is bounded by its own code and lock timeouts |
/// | FSIZE      | unlimited | unlimited | SIGXFSZ in the middle of a lease or ports record |
/// | DATA       | unlimited | 256 MiB   | an allocation failing half way (an abort holding the lock); the helper allocates a few MiB |
/// | STACK      | 8 MiB     | 8 MiB     | the usual default; the main thread's stack, mapped at exec with the caller's limit, grows up to it (the kernel checks the limit when the stack faults, and the exec left a gap of at least 128 MiB below it for mappings); with a small limit the helper died by SIGSEGV holding the lock |
/// | CORE       | 0         | 0         | no core dump of a privileged process, whatever `suid_dumpable` says (lowering needs no privilege) |
/// | RSS        | unlimited | 0         | ignored by Linux since 2.6; set anyway so that nothing inherited is left |
/// | NPROC      | unlimited | 4096      | counts the processes of the real uid: the DHCP responder is forked as the system user, which every caller's helpers share, so a finite value lets many helpers at once make one's fork fail (the call then exits non-zero, the failure audited; see `dhcp::responder`) |
/// | NOFILE     | 1024      | 64        | the helper opens a few dozen descriptors at most; 1024 is the usual soft limit and keeps every descriptor below FD_SETSIZE |
/// | MEMLOCK    | 8 MiB     | 0         | the kernel's own default since 5.16; the helper locks no memory |
/// | AS         | unlimited | 256 MiB   | as DATA: a mapping failing half way |
/// | LOCKS      | unlimited | 0         | ignored by Linux since 2.4.25; the helper holds one flock per call |
/// | SIGPENDING | unlimited | 0         | counts queued signals per real uid; the helper relies on no queued signal (SIGCHLD is delivered without a queue entry) |
/// | MSGQUEUE   | 819200    | 0         | the kernel's default (`MQ_BYTES_MAX`); the helper uses no POSIX message queue |
/// | NICE       | 0         | 0         | the default ceiling: the helper never raises its own priority (the nice value itself is reset by `restrict`) |
/// | RTPRIO     | 0         | 0         | the default: the helper never asks for a real-time policy (the policy itself is reset by `restrict`) |
/// | RTTIME     | unlimited | 0         | applies only to real-time policies, which `restrict` resets before any work |
// The `as u32` casts are no-ops with glibc and needed with musl, whose
// RLIMIT_* are c_int.
#[allow(clippy::unnecessary_cast)]
pub const LIMITS: [Limit; RLIM_NLIMITS] = [
    limit(libc::RLIMIT_CPU as u32, "RLIMIT_CPU", UNLIMITED, UNLIMITED),
    limit(
        libc::RLIMIT_FSIZE as u32,
        "RLIMIT_FSIZE",
        UNLIMITED,
        UNLIMITED,
    ),
    limit(
        libc::RLIMIT_DATA as u32,
        "RLIMIT_DATA",
        UNLIMITED,
        256 * MIB,
    ),
    limit(libc::RLIMIT_STACK as u32, "RLIMIT_STACK", 8 * MIB, 8 * MIB),
    limit(libc::RLIMIT_CORE as u32, "RLIMIT_CORE", 0, 0),
    limit(libc::RLIMIT_RSS as u32, "RLIMIT_RSS", UNLIMITED, 0),
    limit(libc::RLIMIT_NPROC as u32, "RLIMIT_NPROC", UNLIMITED, 4096),
    limit(libc::RLIMIT_NOFILE as u32, "RLIMIT_NOFILE", 1024, 64),
    limit(libc::RLIMIT_MEMLOCK as u32, "RLIMIT_MEMLOCK", 8 * MIB, 0),
    limit(libc::RLIMIT_AS as u32, "RLIMIT_AS", UNLIMITED, 256 * MIB),
    limit(libc::RLIMIT_LOCKS as u32, "RLIMIT_LOCKS", UNLIMITED, 0),
    limit(
        libc::RLIMIT_SIGPENDING as u32,
        "RLIMIT_SIGPENDING",
        UNLIMITED,
        0,
    ),
    limit(libc::RLIMIT_MSGQUEUE as u32, "RLIMIT_MSGQUEUE", 819_200, 0),
    limit(libc::RLIMIT_NICE as u32, "RLIMIT_NICE", 0, 0),
    limit(libc::RLIMIT_RTPRIO as u32, "RLIMIT_RTPRIO", 0, 0),
    limit(libc::RLIMIT_RTTIME as u32, "RLIMIT_RTTIME", UNLIMITED, 0),
];

// The table is indexed by resource number: entry i is resource i.
const _: () = {
    let mut i = 0;
    while i < RLIM_NLIMITS {
        assert!(LIMITS[i].resource as usize == i);
        assert!(LIMITS[i].need <= LIMITS[i].value);
        i += 1;
    }
};

/// Signals whose disposition is "ignore" after sanitising; every other
/// catchable one is reset to its default. SIGPIPE: a closed stdout must
/// not kill us before a rollback. The terminal's signals, which the
/// kernel sends to its foreground process group without asking whose
/// members are (no permission check, so the caller's terminal reaches its
/// helper after the drop too, requirements 16 and 19): SIGTSTP, SIGTTIN,
/// SIGTTOU, whose job control would stop the helper while it holds a
/// network's lock, and SIGINT (^C), SIGQUIT (^\) and SIGHUP (the terminal
/// closed), which would end it at a moment the caller chose. Nothing the
/// helper forks needs them: the DHCP responder leaves the session
/// (`setsid`) and ends by itself, and the OCI state reader is killed with
/// SIGKILL.
const IGNORED: [libc::c_int; 7] = [
    libc::SIGPIPE,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
];

/// Makes the process safe to run code in, whatever the caller left us
/// (requirements 2, 16 and 19): every resource limit set to its value in
/// [`LIMITS`]; interval timers disarmed; pending signals discarded, every
/// catchable signal's disposition the default (but `IGNORED`) and none
/// blocked; stdio open and no other inherited fd; empty environment;
/// umask 077; working directory `/`; not dumpable. Refuses, once all of
/// that is done, if a hard limit is below what the helper needs and may
/// not be raised (see [`Limit::need`]).
pub fn sanitize(sys: &impl System) -> Result<(), Failure> {
    // Limits first: nothing below may allocate, open or fault its stack
    // under the caller's.
    let short = set_limits(sys)?;
    sys.disarm_timers()?;
    sys.reset_signals(&IGNORED)?;
    // fds 0-2 open, so nothing we open later lands on them.
    sys.open_stdio()?;
    // Close every other inherited fd: nothing of the caller's reaches our
    // code.
    // SAFETY: we own no fds above 2 yet.
    unsafe { sys.close_from(3) };
    sys.clear_env();
    sys.set_umask(0o077);
    // Not a directory the caller chose (one it may make unreadable, or
    // remove): no path we open is relative, but a core or a child would
    // start there.
    sys.chdir_root()?;
    sys.not_dumpable()?;
    short.map_or(Ok(()), Err)
}

/// Sets every limit of [`LIMITS`] to its value. A resource the kernel does
/// not know (EINVAL) is skipped. Where a hard limit may not be raised
/// (EPERM: no CAP_SYS_RESOURCE), the caller's hard limit becomes the soft
/// one too; if it is below the need, that is the refusal returned.
/// Anything else fails.
fn set_limits(sys: &impl System) -> Result<Option<Failure>, Failure> {
    let mut short = None;
    for l in LIMITS {
        let e = match sys.set_rlimit(l.resource, l.value) {
            Ok(()) => continue,
            Err(e) => e,
        };
        match e.raw_os_error() {
            Some(libc::EINVAL) => continue,
            Some(libc::EPERM) => {}
            _ => {
                return Err(Failure::internal(format!(
                    "setrlimit {} to {}: {e}",
                    l.name,
                    shown(l.value)
                )))
            }
        }
        let (_, hard) = sys
            .rlimit(l.resource)
            .map_err(|e| Failure::internal(format!("getrlimit {}: {e}", l.name)))?;
        sys.set_rlimit(l.resource, hard).map_err(|e| {
            Failure::internal(format!("setrlimit {} to {}: {e}", l.name, shown(hard)))
        })?;
        if hard < l.need && short.is_none() {
            short = Some(Failure::refused(format!(
                "netsetgo needs {} of at least {} but the hard limit is {} and raising it \
                 needs CAP_SYS_RESOURCE, which the calling process's bounding set removed; \
                 call it without lowering that hard limit",
                l.name,
                shown(l.need),
                shown(hard)
            )));
        }
    }
    Ok(short)
}

fn shown(value: u64) -> String {
    if value == UNLIMITED {
        "unlimited".into()
    } else {
        value.to_string()
    }
}

/// Who called us, from the kernel's real ids.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The real uid.
    pub uid: u32,
    /// The real gid.
    pub gid: u32,
    /// Real gid and supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// Real root may do anything the original netsetgo allowed.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Checks that this start really carries root's privilege and says who
    /// the caller is. Refuses, saying why, under no_new_privs, outside the
    /// initial user namespace, and when not started setuid-root.
    pub fn identify() -> Result<Caller, Failure> {
        if !in_initial_user_namespace() {
            return Err(Failure::refused(
                "netsetgo runs only in the initial user namespace; call it from outside your container",
            ));
        }
        if prctl::get_no_new_privs().unwrap_or(true) {
            return Err(Failure::refused(
                "netsetgo cannot work under no_new_privs (the setuid bit is ignored); call it without it",
            ));
        }
        let (uid, gid) = (getuid().as_raw(), getgid().as_raw());
        if uid != 0 {
            // SAFETY: getauxval reads the aux vector the kernel gave us.
            let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
            if !secure || !geteuid().is_root() {
                return Err(Failure::refused(
                    "netsetgo is not installed setuid root (needs owner root, mode 4755 on a filesystem without nosuid)",
                ));
            }
        }
        let mut groups = vec![0; crate::system::group_count()];
        // SAFETY: getgroups(2) writes at most groups.len() gids into groups.
        let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
        groups.truncate(usize::try_from(n).map_err(|_| {
            Failure::internal(format!("getgroups: {}", std::io::Error::last_os_error()))
        })?);
        groups.push(gid);
        groups.sort_unstable();
        groups.dedup();
        Ok(Caller { uid, gid, groups })
    }
}

fn in_initial_user_namespace() -> bool {
    // The initial namespace maps every id onto itself.
    fs::read_to_string("/proc/self/uid_map")
        .map(|map| map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(false)
}

fn cap_set(caps: &[Capability]) -> HashSet<Capability> {
    caps.iter().copied().collect()
}

/// Whether the privileged setup opens a packet socket: only lxc-user-nic's
/// `create` does (the DHCP responder's), and only it holds CAP_NET_RAW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketSocket {
    /// No packet socket: CAP_NET_RAW is not kept.
    None,
    /// The DHCP responder's packet socket: CAP_NET_RAW is kept until the drop.
    Dhcp,
}

/// Narrows to the capabilities the privileged setup needs (and
/// CAP_NET_RAW for [`PacketSocket::Dhcp`]), after undoing the timing the
/// caller chose (see [`System::reset_timing`]: scheduling policy, CPU
/// affinity, nice value, I/O priority and timer slack are inherited across
/// exec, and each would let the caller slow the helper down at a moment of
/// its choosing; that needs root, before the capabilities are narrowed, as
/// CAP_SYS_NICE undoes a nice value or SCHED_IDLE); fails clearly if the
/// caller's bounding set took one of them away. Then the effective gid
/// becomes root's.
pub fn restrict(sys: &impl System, packet: PacketSocket) -> Result<(), Failure> {
    sys.reset_timing().map_err(|(what, e)| {
        Failure::refused(format!(
            "netsetgo cannot reset the {what} its caller set ({e}); call it with the default scheduling"
        ))
    })?;
    let mut wanted = cap_set(&SETUP_CAPS);
    if packet == PacketSocket::Dhcp {
        wanted.insert(Capability::CAP_NET_RAW);
    }
    let permitted = sys.permitted()?;
    if let Some(missing) = wanted.iter().find(|c| !permitted.contains(c)) {
        return Err(Failure::refused(format!(
            "netsetgo needs {missing} but the calling process's bounding set removed it"
        )));
    }
    sys.set_caps(&wanted)?;
    // setuid gives us euid 0 but keeps the caller's egid: files we create
    // must be root's, group included.
    sys.root_egid()
}

/// Where the system's users are.
pub const PASSWD: &str = "/etc/passwd";

/// The system user the helper works as once privileges are dropped: an
/// identity the caller can neither signal nor trace, so that a caller
/// cannot stop its helper while it holds a network's lock (SECURITY.md,
/// "No hostages"). The packages create it.
pub const WORKER_USER: &str = "_netsetgo";

/// The identity the helper works as after the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    /// The uid.
    pub uid: u32,
    /// The gid.
    pub gid: u32,
}

impl Worker {
    /// The system user [`WORKER_USER`] from `/etc/passwd` (read like the
    /// policy, once per call: `accounts` may have read it for the grants
    /// already). Without it an unprivileged caller is refused: the helper
    /// would otherwise work under the caller's own uid, which the caller may
    /// signal. Root needs no protection from itself and keeps uid 0.
    pub fn resolve(caller: &Caller, accounts: &SystemAccounts) -> Result<Worker, Failure> {
        match find_user(accounts.passwd()?, WORKER_USER) {
            Some(worker) if worker.uid != 0 && worker.uid != caller.uid => Ok(worker),
            _ if caller.is_root() => Ok(Worker { uid: 0, gid: 0 }),
            Some(_) => Err(Failure::refused(format!(
                "the system user {WORKER_USER} must have a uid of its own (not 0, not a caller's); an administrator must fix /etc/passwd"
            ))),
            None => Err(Failure::refused(format!(
                "the system user {WORKER_USER} does not exist; an administrator must create it \
                 (useradd --system --no-create-home --shell /usr/sbin/nologin {WORKER_USER}; the packages do)"
            ))),
        }
    }
}

/// The uid and gid of `name` in passwd-format `text`.
fn find_user(text: &str, name: &str) -> Option<Worker> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then_some(())?;
        Some(Worker {
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
        })
    })
}

/// Becomes `worker` (real, effective, saved and fs ids; no supplementary
/// groups) holding only CAP_NET_ADMIN, with empty bounding, inheritable and
/// ambient sets, no_new_privs set and the process not dumpable.
pub fn drop_to(sys: &impl System, worker: Worker) -> Result<(), Failure> {
    sys.clear_ambient()?;
    sys.clear_bounding()?;
    sys.set_keepcaps(true)?;
    sys.become_ids(worker.uid, worker.gid)?;
    sys.set_caps(&cap_set(&[Capability::CAP_NET_ADMIN]))?;
    sys.set_keepcaps(false)?;
    sys.no_new_privs()?;
    // Changing ids resets dumpability to the sysctl's choice; insist.
    sys.not_dumpable()?;
    if getuid().as_raw() != worker.uid
        || geteuid().as_raw() != worker.uid
        || getegid().as_raw() != worker.gid
    {
        return Err(Failure::internal("drop privileges: ids did not change"));
    }
    Ok(())
}

/// Becomes `uid`/`gid` with nothing at all: no capability in any set, no
/// supplementary groups, no_new_privs, not dumpable. For a child process
/// that reads what the caller sends (the OCI state on stdin, as the caller;
/// DHCP packets, as the worker).
pub fn drop_everything(sys: &impl System, uid: u32, gid: u32) -> Result<(), Failure> {
    sys.become_ids(uid, gid)?;
    sys.clear_caps()?;
    sys.no_new_privs()?;
    sys.not_dumpable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_table_covers_every_resource_the_kernel_has() {
        let named = [
            (libc::RLIMIT_CPU, "RLIMIT_CPU"),
            (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
            (libc::RLIMIT_DATA, "RLIMIT_DATA"),
            (libc::RLIMIT_STACK, "RLIMIT_STACK"),
            (libc::RLIMIT_CORE, "RLIMIT_CORE"),
            (libc::RLIMIT_RSS, "RLIMIT_RSS"),
            (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
            (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
            (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
            (libc::RLIMIT_AS, "RLIMIT_AS"),
            (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
            (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
            (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
            (libc::RLIMIT_NICE, "RLIMIT_NICE"),
            (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
            (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
        ];
        assert_eq!(named.len(), RLIM_NLIMITS);
        for (i, (resource, name)) in named.into_iter().enumerate() {
            assert_eq!(resource as usize, i, "{name}");
            assert_eq!(LIMITS[i].resource as usize, i, "{name}");
            assert_eq!(LIMITS[i].name, name);
            // The running kernel knows it...
            crate::system::Kernel
                .rlimit(LIMITS[i].resource)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // ... and no resource after the last.
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes `now`, valid for the call.
        let known = unsafe { libc::getrlimit(RLIM_NLIMITS as _, &mut now) };
        assert_eq!(known, -1, "the kernel has a resource {RLIM_NLIMITS}");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
        // The values that must be exactly so.
        let value = |name: &str| LIMITS.iter().find(|l| l.name == name).unwrap().value;
        assert_eq!(value("RLIMIT_CORE"), 0);
        assert_eq!(value("RLIMIT_STACK"), 8 * MIB);
        assert!((64..=1024).contains(&value("RLIMIT_NOFILE")));
        for unlimited in ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_AS"] {
            assert_eq!(value(unlimited), UNLIMITED, "{unlimited}");
        }
    }

    #[test]
    fn finds_the_worker_by_exact_name() {
        let passwd = "root:x:0:0::/root:/bin/sh\n_netsetgox:x:5:5::/:/x\n_netsetgo:x:998:997::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            find_user(passwd, "_netsetgo"),
            Some(Worker { uid: 998, gid: 997 })
        );
        assert_eq!(find_user("_netsetgo:x:abc:1::/:/x\n", "_netsetgo"), None);
        assert_eq!(find_user("netsetgo:x:1:1::/:/x\n", "_netsetgo"), None);
    }

    use crate::system::fake::{Call, Recording};

    /// Where the first call matching `which` is in `calls`.
    fn first(calls: &[Call], which: impl Fn(&Call) -> bool) -> usize {
        calls.iter().position(which).expect("called")
    }

    /// Where the last call matching `which` is in `calls`.
    fn last(calls: &[Call], which: impl Fn(&Call) -> bool) -> usize {
        calls.iter().rposition(which).expect("called")
    }

    fn privileged(call: &Call) -> bool {
        matches!(
            call,
            Call::ResetTiming
                | Call::Permitted
                | Call::SetCaps(_)
                | Call::RootEgid
                | Call::ClearAmbient
                | Call::ClearBounding
                | Call::ClearCaps
                | Call::Keepcaps(_)
                | Call::BecomeIds(..)
                | Call::NoNewPrivs
        )
    }

    #[test]
    fn sanitise_sets_every_limit_first_and_touches_no_privilege() {
        let sys = Recording::new();
        sanitize(&sys).unwrap();
        let calls = sys.calls();
        // Every limit, in the table's order, before anything else: nothing
        // may allocate, open or fault its stack under the caller's limits.
        let limits: Vec<Call> = LIMITS.iter().map(|l| Call::SetRlimit(l.resource)).collect();
        assert_eq!(calls[..RLIM_NLIMITS], limits[..]);
        assert!(!calls[RLIM_NLIMITS..]
            .iter()
            .any(|c| matches!(c, Call::SetRlimit(_))));
        // Stdio open before the rest is closed, then the rest of the
        // process state, and not dumpable; nothing privileged at all.
        let stdio = first(&calls, |c| *c == Call::OpenStdio);
        assert!(first(&calls, |c| *c == Call::ResetSignals) < stdio);
        assert!(stdio < first(&calls, |c| *c == Call::CloseFrom(3)));
        for then in [Call::ClearEnv, Call::Umask(0o077), Call::ChdirRoot] {
            assert!(first(&calls, |c| *c == Call::CloseFrom(3)) < first(&calls, |c| *c == then));
        }
        assert_eq!(calls.last(), Some(&Call::NotDumpable));
        assert!(!calls.iter().any(privileged), "{calls:?}");
    }

    #[test]
    fn restrict_resets_timing_as_root_then_narrows_then_takes_roots_group() {
        for (packet, raw) in [(PacketSocket::None, false), (PacketSocket::Dhcp, true)] {
            let sys = Recording::new();
            restrict(&sys, packet).unwrap();
            let calls = sys.calls();
            assert_eq!(calls[0], Call::ResetTiming, "{calls:?}");
            let narrowed = first(&calls, |c| matches!(c, Call::SetCaps(_)));
            assert!(first(&calls, |c| *c == Call::Permitted) < narrowed);
            assert_eq!(calls.last(), Some(&Call::RootEgid));
            let Call::SetCaps(kept) = &calls[narrowed] else {
                unreachable!()
            };
            assert_eq!(kept.contains(&Capability::CAP_NET_RAW), raw, "{packet:?}");
            assert_eq!(kept.len(), SETUP_CAPS.len() + usize::from(raw));
        }
    }

    #[test]
    fn restrict_refuses_what_the_bounding_set_removed_before_narrowing() {
        let mut sys = Recording::new();
        sys.permitted.remove(&Capability::CAP_NET_RAW);
        let f = restrict(&sys, PacketSocket::Dhcp).unwrap_err();
        assert!(f.to_string().contains("CAP_NET_RAW"), "{f}");
        assert_eq!(sys.calls(), [Call::ResetTiming, Call::Permitted]);
        // Without the packet socket, the same caller is served.
        restrict(&sys, PacketSocket::None).unwrap();
        assert_eq!(sys.calls().last(), Some(&Call::RootEgid));
    }

    #[test]
    fn drop_empties_the_bounding_set_before_the_ids_and_seals_after() {
        let sys = Recording::new();
        // The fake changes no id, so the final check refuses: the calls
        // are all made before it.
        let worker = Worker { uid: 998, gid: 997 };
        assert!(drop_to(&sys, worker).is_err());
        let calls = sys.calls();
        let ids = first(&calls, |c| *c == Call::BecomeIds(998, 997));
        assert!(first(&calls, |c| *c == Call::ClearAmbient) < ids);
        assert!(first(&calls, |c| *c == Call::ClearBounding) < ids);
        // Keeping capabilities across the id change, then CAP_NET_ADMIN
        // alone.
        assert!(first(&calls, |c| *c == Call::Keepcaps(true)) < ids);
        let net_admin = Call::SetCaps(vec![Capability::CAP_NET_ADMIN]);
        let narrowed = first(&calls, |c| *c == net_admin);
        assert!(ids < narrowed);
        assert!(narrowed < first(&calls, |c| *c == Call::Keepcaps(false)));
        // no_new_privs and not dumpable after the ids changed (a change of
        // ids resets dumpability).
        assert!(ids < first(&calls, |c| *c == Call::NoNewPrivs));
        assert!(ids < last(&calls, |c| *c == Call::NotDumpable));
    }

    #[test]
    fn the_bounding_set_is_dropped_up_to_the_kernels_last_capability_in_one_call_each() {
        use crate::system::drop_bounding;
        // 5.8 (last 39), 5.9 to 6.18 (40), a future kernel (45).
        for last in [39u32, 40, 45] {
            let mut calls = Vec::new();
            let known = drop_bounding(|cap| {
                calls.push(cap);
                if cap > last {
                    Err(nix::Error::EINVAL)
                } else {
                    Ok(())
                }
            })
            .unwrap();
            assert_eq!(known, last + 1);
            // Every capability once, in order, then the one probe past the end.
            assert_eq!(calls, (0..=last + 1).collect::<Vec<_>>());
        }
        // Any other refusal stops it, and so does EINVAL for CAP_CHOWN.
        let eperm = |cap| {
            if cap == 3 {
                Err(nix::Error::EPERM)
            } else {
                Ok(())
            }
        };
        assert_eq!(drop_bounding(eperm), Err(nix::Error::EPERM));
        assert_eq!(
            drop_bounding(|_| Err(nix::Error::EINVAL)),
            Err(nix::Error::EINVAL)
        );
    }

    #[test]
    fn a_reader_of_the_callers_input_holds_nothing() {
        let sys = Recording::new();
        drop_everything(&sys, 1000, 1000).unwrap();
        assert_eq!(
            sys.calls(),
            [
                Call::BecomeIds(1000, 1000),
                Call::ClearCaps,
                Call::NoNewPrivs,
                Call::NotDumpable
            ]
        );
    }
}
