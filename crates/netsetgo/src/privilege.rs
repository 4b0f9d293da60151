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
use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use nix::sys::signal::{
    sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{getegid, geteuid, getgid, getgroups, getuid, setresgid, setresuid, Gid, Uid};

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

/// The fds we ourselves open stay well below this; a caller's low
/// RLIMIT_NOFILE must not make us fail half way.
const MIN_NOFILE: u64 = 64;

/// Room for `more` descriptors besides the [`MIN_NOFILE`] every call has:
/// raises the soft `RLIMIT_NOFILE` as far as the hard limit allows (root's
/// `-restore` holds four per network with state until the drop).
pub fn room_for_files(more: u64) -> Result<(), Failure> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| Failure::internal(format!("getrlimit: {e}")))?;
    let want = MIN_NOFILE.saturating_add(more).min(hard);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard)
            .map_err(|e| Failure::internal(format!("setrlimit RLIMIT_NOFILE {want}: {e}")))?;
    }
    Ok(())
}

/// Makes the process safe to run code in, whatever the caller left us:
/// stdio open, no inherited fds, empty environment, umask 077, no core
/// dumps, default signal dispositions, limits that cannot kill a write.
pub fn sanitize() -> Result<(), Failure> {
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
    prctl::set_dumpable(false).map_err(|e| Failure::internal(format!("prctl dumpable: {e}")))?;
    // Limits the caller could kill or cripple us with at a moment of its
    // choosing: CPU time (SIGXCPU), file size (SIGXFSZ in the middle of a
    // lease record), memory (an allocation failing half way).
    setrlimit(Resource::RLIMIT_CORE, 0, 0)
        .map_err(|e| Failure::internal(format!("setrlimit RLIMIT_CORE: {e}")))?;
    for resource in UNLIMITED {
        unlimit(resource)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| Failure::internal(format!("getrlimit: {e}")))?;
    if soft < MIN_NOFILE {
        // Raising the hard limit needs CAP_SYS_RESOURCE, which the caller's
        // bounding set may have removed: then say what the caller can do.
        setrlimit(Resource::RLIMIT_NOFILE, MIN_NOFILE, hard.max(MIN_NOFILE)).map_err(|_| {
            Failure::refused(format!(
                "netsetgo needs {MIN_NOFILE} open files but the limit is {hard}; raise ulimit -n"
            ))
        })?;
    }
    // Default dispositions and an empty mask. SIGPIPE stays ignored: a
    // closed stdout must not kill us before a rollback.
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // The terminal's job control stops a process group without asking
        // whose it is: the helper must not be stopped while it holds a
        // network's lock.
        let action = if matches!(
            signal,
            Signal::SIGPIPE | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
        ) {
            &ignore
        } else {
            &default
        };
        // SAFETY: installing SIG_DFL/SIG_IGN runs no code of ours.
        let _ = unsafe { sigaction(signal, action) };
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| Failure::internal(format!("sigprocmask: {e}")))?;
    Ok(())
}

/// Limits raised to unlimited while sanitising.
const UNLIMITED: [Resource; 5] = [
    Resource::RLIMIT_CPU,
    Resource::RLIMIT_FSIZE,
    Resource::RLIMIT_AS,
    Resource::RLIMIT_DATA,
    Resource::RLIMIT_RTTIME,
];

/// Raises `resource` to unlimited. Raising a hard limit needs
/// CAP_SYS_RESOURCE, which the caller's bounding set may have removed: then
/// say what the caller can do.
fn unlimit(resource: Resource) -> Result<(), Failure> {
    let (soft, hard) = getrlimit(resource)
        .map_err(|e| Failure::internal(format!("getrlimit {resource:?}: {e}")))?;
    if soft == RLIM_INFINITY && hard == RLIM_INFINITY {
        return Ok(());
    }
    setrlimit(resource, RLIM_INFINITY, RLIM_INFINITY).map_err(|_| {
        Failure::refused(format!(
            "netsetgo needs {resource:?} unlimited but the hard limit is {hard}; raise it (ulimit)"
        ))
    })
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
/// affinity, nice value, I/O priority, interval timers and timer slack are
/// inherited across exec, and each would let the caller slow the helper
/// down (or signal it through a timer) at a moment of its choosing. Runs as root, before the
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
            return Err(fail("interval timers"));
        }
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
