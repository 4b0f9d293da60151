//! Privilege: making a setuid-root start safe, checking that we really are
//! privileged, and shedding everything but CAP_NET_ADMIN.
//!
//! The order matters and is fixed by `main`: `sanitize` first, before any
//! other code looks at the process; `Caller::identify` next; `restrict`
//! narrows the capabilities to what the privileged setup needs; after the
//! namespace socket is open `drop_to` becomes the system user `_netsetgo`
//! with CAP_NET_ADMIN alone.

use std::collections::HashSet;
use std::fs;

use caps::{CapSet, Capability};
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::prctl;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{
    chdir, getegid, geteuid, getgid, getgroups, getuid, setresgid, setresuid, Gid, Uid,
};

use crate::error::Failure;

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
/// | NPROC      | unlimited | 4096      | counts the processes of the real uid: the DHCP responder is forked as the system user, which every caller's helpers share, so a finite value lets many helpers at once make one's fork fail (the call then fails and rolls back) |
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
pub fn sanitize() -> Result<(), Failure> {
    // Limits first: nothing below may allocate, open or fault its stack
    // under the caller's.
    let short = set_limits()?;
    disarm_timers()?;
    reset_signals()?;
    // fds 0-2 open, so nothing we open later lands on them.
    for fd in 0..=2 {
        if fcntl(unsafe_borrow(fd), FcntlArg::F_GETFD).is_err() {
            let opened = open("/dev/null", OFlag::O_RDWR, Mode::empty())
                .map_err(|e| Failure::internal(format!("open /dev/null: {e}")))?;
            // The lowest free fd is this one, since all lower ones are open.
            std::mem::forget(opened);
        }
    }
    // Close every other inherited fd: nothing of the caller's reaches our
    // code.
    // SAFETY: we own no fds above 2 yet.
    unsafe { close_from(3) };
    // SAFETY: a plain libc call. Never read, never passed on: the
    // environment is the caller's.
    unsafe { libc::clearenv() };
    umask(Mode::from_bits_truncate(0o077));
    // Not a directory the caller chose (one it may make unreadable, or
    // remove): no path we open is relative, but a core or a child would
    // start there.
    chdir("/").map_err(|e| Failure::internal(format!("chdir /: {e}")))?;
    prctl::set_dumpable(false).map_err(|e| Failure::internal(format!("prctl dumpable: {e}")))?;
    short.map_or(Ok(()), Err)
}

/// Sets every limit of [`LIMITS`] to its value. A resource the kernel does
/// not know (EINVAL) is skipped. Where a hard limit may not be raised
/// (EPERM: no CAP_SYS_RESOURCE), the caller's hard limit becomes the soft
/// one too; if it is below the need, that is the refusal returned.
/// Anything else fails.
fn set_limits() -> Result<Option<Failure>, Failure> {
    let set = |l: Limit, value: u64| {
        let fixed = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads `fixed`, valid for the call.
        match unsafe { libc::setrlimit(l.resource as _, &fixed) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    };
    let mut short = None;
    for l in LIMITS {
        let e = match set(l, l.value) {
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
        let (_, hard) = getrlimit_raw(l)?;
        set(l, hard).map_err(|e| {
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

fn getrlimit_raw(l: Limit) -> Result<(u64, u64), Failure> {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes `now`, valid for the call.
    if unsafe { libc::getrlimit(l.resource as _, &mut now) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::internal(format!("getrlimit {}: {e}", l.name)));
    }
    Ok((now.rlim_cur, now.rlim_max))
}

fn shown(value: u64) -> String {
    if value == UNLIMITED {
        "unlimited".into()
    } else {
        value.to_string()
    }
}

/// Disarms the interval timers, which survive exec: an armed ITIMER_REAL
/// would deliver SIGALRM (and its default action) when the caller chose.
fn disarm_timers() -> Result<(), Failure> {
    let zero = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    for which in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF] {
        // SAFETY: setitimer reads `zero`; the old value is not asked for.
        if unsafe { libc::setitimer(which, &zero, std::ptr::null_mut()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Failure::internal(format!("disarm interval timers: {e}")));
        }
    }
    Ok(())
}

/// Every catchable signal, standard and real-time: first ignored, which
/// discards what the caller left pending (blocked signals stay pending
/// across exec), then set to its default (or ignored, [`IGNORED`]); then
/// the mask emptied. A signal the libc reserves for itself (glibc's
/// SIGCANCEL and SIGSETXID: its sigaction says EINVAL) is left to it.
fn reset_signals() -> Result<(), Failure> {
    let set = |signo: libc::c_int, handler: libc::sighandler_t| {
        // SAFETY: sigaction is plain data; sigemptyset writes within it.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler;
        // SAFETY: as above; installing SIG_DFL/SIG_IGN runs no code of ours.
        let done = unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signo, &action, std::ptr::null_mut())
        };
        match done {
            0 => Ok(()),
            _ => match std::io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
                e => Err(Failure::internal(format!("sigaction {signo}: {e}"))),
            },
        }
    };
    for signo in 1..=libc::SIGRTMAX() {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP {
            continue;
        }
        set(signo, libc::SIG_IGN)?;
        if !IGNORED.contains(&signo) {
            set(signo, libc::SIG_DFL)?;
        }
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| Failure::internal(format!("sigprocmask: {e}")))?;
    Ok(())
}

/// Closes every fd from `first` up. close_range(2) is 5.9+; on 5.8 a
/// bounded loop does it.
///
/// # Safety
/// No object that owns one of those fds may be used or dropped afterwards.
pub unsafe fn close_from(first: u32) {
    // SAFETY: plain syscalls on fd numbers; the caller vouches that nothing
    // owns them any more.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) != 0 {
            for fd in first..4096 {
                libc::close(fd as i32);
            }
        }
    }
}

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for F_GETFD, which is harmless on any fd number.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Who called us, from the kernel's real ids.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
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
        let mut groups: Vec<u32> = getgroups()
            .map_err(|e| Failure::internal(format!("getgroups: {e}")))?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
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

/// Narrows to the capabilities the privileged setup needs (and
/// CAP_NET_RAW with `packet_socket`: the DHCP responder's socket, in
/// lxc-user-nic mode); fails clearly if the caller's bounding set took one
/// of them away.
pub fn restrict(packet_socket: bool) -> Result<(), Failure> {
    reset_timing()?;
    let mut wanted = cap_set(&SETUP_CAPS);
    if packet_socket {
        wanted.insert(Capability::CAP_NET_RAW);
    }
    let permitted = caps::read(None, CapSet::Permitted)
        .map_err(|e| Failure::internal(format!("read capabilities: {e}")))?;
    if let Some(missing) = wanted.iter().find(|c| !permitted.contains(c)) {
        return Err(Failure::refused(format!(
            "netsetgo needs {missing} but the calling process's bounding set removed it"
        )));
    }
    set_caps(&wanted)?;
    // setuid gives us euid 0 but keeps the caller's egid: files we create
    // must be root's, group included.
    setresgid(getgid(), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(|e| Failure::internal(format!("set root group: {e}")))
}

/// Undoes the timing the caller chose for us: scheduling policy, CPU
/// affinity, nice value, I/O priority and timer slack are inherited across
/// exec, and each would let the caller slow the helper down at a moment of
/// its choosing (its interval timers `sanitize` disarmed already). Runs as root, before the
/// capabilities are narrowed (CAP_SYS_NICE undoes a nice value or SCHED_IDLE).
fn reset_timing() -> Result<(), Failure> {
    let fail = |what: &str| {
        let e = std::io::Error::last_os_error();
        Failure::refused(format!(
            "netsetgo cannot reset the {what} its caller set ({e}); call it with the default scheduling"
        ))
    };
    let normal = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `normal`, valid for the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &normal) } != 0 {
        return Err(fail("scheduling policy"));
    }
    // Every CPU (the kernel keeps us within our cpuset): pinned to one CPU
    // next to the caller's busy loops we would crawl.
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; the kernel
    // reads it for the length given.
    let every_cpu = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if every_cpu != 0 {
        return Err(fail("CPU affinity"));
    }
    // SAFETY: plain syscall on our own process.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) } != 0 {
        return Err(fail("nice value"));
    }
    // ioprio_set(IOPRIO_WHO_PROCESS, self, class none: follow the nice value).
    // SAFETY: plain syscall on our own process.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, 0) } != 0 {
        return Err(fail("I/O priority"));
    }
    // The kernel's usual 50 us, whatever slack the caller gave its timers.
    // SAFETY: plain prctl on our own thread.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 50_000u64, 0, 0, 0) } != 0 {
        return Err(fail("timer slack"));
    }
    Ok(())
}

fn set_caps(set: &HashSet<Capability>) -> Result<(), Failure> {
    let fail = |e: caps::errors::CapsError| Failure::internal(format!("set capabilities: {e}"));
    caps::set(None, CapSet::Effective, set).map_err(fail)?;
    caps::set(None, CapSet::Permitted, set).map_err(fail)?;
    caps::clear(None, CapSet::Inheritable).map_err(fail)?;
    Ok(())
}

/// The system user the helper works as once privileges are dropped: an
/// identity the caller can neither signal nor trace, so that a caller
/// cannot stop its helper while it holds a network's lock (SECURITY.md,
/// "No hostages"). The packages create it.
pub const WORKER_USER: &str = "_netsetgo";

/// The identity the helper works as after the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    pub uid: u32,
    pub gid: u32,
}

impl Worker {
    /// The system user [`WORKER_USER`] from `/etc/passwd` (read like the
    /// policy). Without it an unprivileged caller is refused: the helper
    /// would otherwise work under the caller's own uid, which the caller may
    /// signal. Root needs no protection from itself and keeps uid 0.
    pub fn resolve(caller: &Caller) -> Result<Worker, Failure> {
        let passwd = crate::policy::read_trusted(std::path::Path::new(crate::policy::PASSWD))?;
        match find_user(&passwd, WORKER_USER) {
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
pub fn drop_to(worker: Worker) -> Result<(), Failure> {
    let fail = |what: &str, e: String| Failure::internal(format!("drop privileges ({what}): {e}"));
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e.to_string()))?;
    for cap in caps::all() {
        caps::drop(None, CapSet::Bounding, cap).map_err(|e| fail("bounding", e.to_string()))?;
    }
    prctl::set_keepcaps(true).map_err(|e| fail("keepcaps", e.to_string()))?;
    become_ids(worker.uid, worker.gid).map_err(|e| fail("ids", e.to_string()))?;
    set_caps(&cap_set(&[Capability::CAP_NET_ADMIN]))?;
    prctl::set_keepcaps(false).map_err(|e| fail("keepcaps", e.to_string()))?;
    prctl::set_no_new_privs().map_err(|e| fail("no_new_privs", e.to_string()))?;
    // Changing ids resets dumpability to the sysctl's choice; insist.
    prctl::set_dumpable(false).map_err(|e| fail("dumpable", e.to_string()))?;
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
pub fn drop_everything(uid: u32, gid: u32) -> Result<(), Failure> {
    let fail = |what: &str, e: String| Failure::internal(format!("drop privileges ({what}): {e}"));
    become_ids(uid, gid).map_err(|e| fail("ids", e.to_string()))?;
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| fail("capabilities", e.to_string()))?;
    }
    prctl::set_no_new_privs().map_err(|e| fail("no_new_privs", e.to_string()))?;
    prctl::set_dumpable(false).map_err(|e| fail("dumpable", e.to_string()))
}

fn become_ids(uid: u32, gid: u32) -> nix::Result<()> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    // Needs CAP_SETGID even when there is nothing to drop (as in a child of
    // the worker, which has none left).
    if !getgroups()?.is_empty() {
        nix::unistd::setgroups(&[])?;
    }
    setresgid(gid, gid, gid)?;
    setresuid(uid, uid, uid)
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
            getrlimit_raw(LIMITS[i]).unwrap_or_else(|f| panic!("{f}"));
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
}
