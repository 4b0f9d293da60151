//! The process-level system calls the privileged stages make: the ones
//! that change the process's privilege or state (resource limits, timers,
//! signal dispositions, inherited fds, environment, umask, working
//! directory, scheduling, capability sets, ids, no_new_privs,
//! dumpability), behind one small trait, so that the order in which the
//! stages make them (SECURITY.md, "Order of operations";
//! [`stages::run`](crate::stages::run)) is unit-tested without root through
//! a recording fake (youki's syscall trait). [`Kernel`] is the real one.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::prctl;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chdir, getgid, setresgid, setresuid, Gid, Uid};

use crate::error::Failure;

/// The process-level system calls of the privileged stages. Each method
/// is one kernel operation (or one loop of the same operation) on the
/// calling process; errors name the operation.
pub trait System {
    /// setrlimit(2) of `resource`, soft and hard limit to `value`.
    fn set_rlimit(&self, resource: u32, value: u64) -> std::io::Result<()>;
    /// getrlimit(2) of `resource`: (soft, hard).
    fn rlimit(&self, resource: u32) -> std::io::Result<(u64, u64)>;
    /// setitimer(2): the three interval timers disarmed.
    fn disarm_timers(&self) -> Result<(), Failure>;
    /// sigaction(2) of every catchable signal: the pending ones (sigpending(2))
    /// first ignored, which discards them; then each the default unless in
    /// `ignored`; then sigprocmask(2): nothing blocked.
    fn reset_signals(&self, ignored: &[libc::c_int]) -> Result<(), Failure>;
    /// fds 0-2 open, `/dev/null` onto closed ones.
    fn open_stdio(&self) -> Result<(), Failure>;
    /// close_range(2) of every fd from `first` up.
    ///
    /// # Safety
    /// No object that owns one of those fds may be used or dropped
    /// afterwards.
    unsafe fn close_from(&self, first: u32);
    /// clearenv(3).
    fn clear_env(&self);
    /// umask(2).
    fn set_umask(&self, mask: u32);
    /// chdir(2) to `/`.
    fn chdir_root(&self) -> Result<(), Failure>;
    /// prctl(PR_SET_DUMPABLE, 0).
    fn not_dumpable(&self) -> Result<(), Failure>;
    /// Scheduling policy SCHED_OTHER, every CPU, nice 0, I/O priority
    /// class none, timer slack 50 us; what failed is named, with its error.
    fn reset_timing(&self) -> Result<(), (&'static str, std::io::Error)>;
    /// The permitted capability set.
    fn permitted(&self) -> Result<HashSet<Capability>, Failure>;
    /// Effective and permitted sets to `set`, inheritable emptied.
    fn set_caps(&self, set: &HashSet<Capability>) -> Result<(), Failure>;
    /// setresgid(2): effective and saved gid root's, the real one kept.
    fn root_egid(&self) -> Result<(), Failure>;
    /// The ambient set emptied.
    fn clear_ambient(&self) -> Result<(), Failure>;
    /// Every capability dropped from the bounding set.
    fn clear_bounding(&self) -> Result<(), Failure>;
    /// Every capability set emptied (ambient, inheritable, effective,
    /// permitted).
    fn clear_caps(&self) -> Result<(), Failure>;
    /// prctl(PR_SET_KEEPCAPS) on or off.
    fn set_keepcaps(&self, keep: bool) -> Result<(), Failure>;
    /// No supplementary groups, then setresgid(2) and setresuid(2) to
    /// `uid`/`gid` (real, effective, saved).
    fn become_ids(&self, uid: u32, gid: u32) -> Result<(), Failure>;
    /// prctl(PR_SET_NO_NEW_PRIVS, 1).
    fn no_new_privs(&self) -> Result<(), Failure>;
}

/// The kernel's system calls, on this process.
pub struct Kernel;

impl System for Kernel {
    fn set_rlimit(&self, resource: u32, value: u64) -> std::io::Result<()> {
        let fixed = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads `fixed`, valid for the call.
        match unsafe { libc::setrlimit(resource as _, &fixed) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    fn rlimit(&self, resource: u32) -> std::io::Result<(u64, u64)> {
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes `now`, valid for the call.
        if unsafe { libc::getrlimit(resource as _, &mut now) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((now.rlim_cur, now.rlim_max))
    }

    fn disarm_timers(&self) -> Result<(), Failure> {
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

    fn reset_signals(&self, ignored: &[libc::c_int]) -> Result<(), Failure> {
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
        // Only a blocked signal can be pending here (the mask survives the
        // exec; an unblocked one was delivered before it). Ignoring a
        // signal discards it, so the pending ones are ignored first; the
        // others go straight to their final disposition, one call each.
        // One sent after this look, before the mask is emptied below, is
        // delivered with that final disposition: as if sent a moment
        // later, which the caller may do anyway until the drop.
        // SAFETY: sigset_t is plain data that sigemptyset initialises and
        // sigpending fills.
        let pending = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            match libc::sigpending(&mut set) {
                0 => set,
                _ => {
                    let e = std::io::Error::last_os_error();
                    return Err(Failure::internal(format!("sigpending: {e}")));
                }
            }
        };
        for signo in 1..=libc::SIGRTMAX() {
            if signo == libc::SIGKILL || signo == libc::SIGSTOP {
                continue;
            }
            // SAFETY: `pending` was initialised above; signo is in range.
            let is_pending = unsafe { libc::sigismember(&pending, signo) } == 1;
            let fixed = if ignored.contains(&signo) {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            if is_pending && fixed != libc::SIG_IGN {
                set(signo, libc::SIG_IGN)?;
            }
            set(signo, fixed)?;
        }
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
            .map_err(|e| Failure::internal(format!("sigprocmask: {e}")))?;
        Ok(())
    }

    fn open_stdio(&self) -> Result<(), Failure> {
        for fd in 0..=2 {
            // SAFETY: only used for F_GETFD, which is harmless on any fd
            // number.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            if fcntl(borrowed, FcntlArg::F_GETFD).is_err() {
                let opened = open("/dev/null", OFlag::O_RDWR, Mode::empty())
                    .map_err(|e| Failure::internal(format!("open /dev/null: {e}")))?;
                // The lowest free fd is this one, since all lower ones are open.
                std::mem::forget(opened);
            }
        }
        Ok(())
    }

    unsafe fn close_from(&self, first: u32) {
        // SAFETY: plain syscalls on fd numbers; the caller vouches that
        // nothing owns them any more.
        unsafe {
            if libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) != 0 {
                for fd in first..4096 {
                    libc::close(fd as i32);
                }
            }
        }
    }

    fn clear_env(&self) {
        // SAFETY: a plain libc call. Never read, never passed on: the
        // environment is the caller's.
        unsafe { libc::clearenv() };
    }

    fn set_umask(&self, mask: u32) {
        umask(Mode::from_bits_truncate(mask));
    }

    fn chdir_root(&self) -> Result<(), Failure> {
        chdir("/").map_err(|e| Failure::internal(format!("chdir /: {e}")))
    }

    fn not_dumpable(&self) -> Result<(), Failure> {
        prctl::set_dumpable(false).map_err(|e| Failure::internal(format!("prctl dumpable: {e}")))
    }

    fn reset_timing(&self) -> Result<(), (&'static str, std::io::Error)> {
        let normal = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads `normal`, valid for the call.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &normal) } != 0 {
            return Err(("scheduling policy", std::io::Error::last_os_error()));
        }
        // Every CPU (the kernel keeps us within our cpuset): pinned to one
        // CPU next to the caller's busy loops we would crawl.
        // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; the
        // kernel reads it for the length given.
        let every_cpu = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for cpu in 0..libc::CPU_SETSIZE as usize {
                libc::CPU_SET(cpu, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if every_cpu != 0 {
            return Err(("CPU affinity", std::io::Error::last_os_error()));
        }
        // SAFETY: plain syscall on our own process.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) } != 0 {
            return Err(("nice value", std::io::Error::last_os_error()));
        }
        // ioprio_set(IOPRIO_WHO_PROCESS, self, class none: follow the nice value).
        // SAFETY: plain syscall on our own process.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, 0) } != 0 {
            return Err(("I/O priority", std::io::Error::last_os_error()));
        }
        // The kernel's usual 50 us, whatever slack the caller gave its timers.
        // SAFETY: plain prctl on our own thread.
        if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 50_000u64, 0, 0, 0) } != 0 {
            return Err(("timer slack", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn permitted(&self) -> Result<HashSet<Capability>, Failure> {
        caps::read(None, CapSet::Permitted)
            .map_err(|e| Failure::internal(format!("read capabilities: {e}")))
    }

    fn set_caps(&self, set: &HashSet<Capability>) -> Result<(), Failure> {
        let mask = set.iter().fold(0, |mask, cap| mask | cap.bitmask());
        capset(mask, mask, 0).map_err(|e| Failure::internal(format!("set capabilities: {e}")))
    }

    fn root_egid(&self) -> Result<(), Failure> {
        setresgid(getgid(), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(|e| Failure::internal(format!("set root group: {e}")))
    }

    fn clear_ambient(&self) -> Result<(), Failure> {
        caps::clear(None, CapSet::Ambient).map_err(|e| dropping("ambient", e))
    }

    fn clear_bounding(&self) -> Result<(), Failure> {
        let drop_one = |cap: u32| {
            // SAFETY: PR_CAPBSET_DROP takes a capability number and
            // touches no memory of ours.
            let rc =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            if rc == 0 {
                Ok(())
            } else {
                Err(nix::Error::last())
            }
        };
        drop_bounding(drop_one)
            .map(drop)
            .map_err(|e| dropping("bounding", e))
    }

    fn clear_caps(&self) -> Result<(), Failure> {
        self.clear_ambient()?;
        capset(0, 0, 0).map_err(|e| dropping("capabilities", e))
    }

    fn set_keepcaps(&self, keep: bool) -> Result<(), Failure> {
        prctl::set_keepcaps(keep).map_err(|e| dropping("keepcaps", e))
    }

    fn become_ids(&self, uid: u32, gid: u32) -> Result<(), Failure> {
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        let ids = || -> nix::Result<()> {
            // Needs CAP_SETGID even when there is nothing to drop (as in a
            // child of the worker, which has none left): refused then, and
            // that is fine only if there is nothing to drop.
            match nix::unistd::setgroups(&[]) {
                Err(nix::Error::EPERM) if group_count() == 0 => {}
                other => other?,
            }
            setresgid(gid, gid, gid)?;
            setresuid(uid, uid, uid)
        };
        ids().map_err(|e| dropping("ids", e))
    }

    fn no_new_privs(&self) -> Result<(), Failure> {
        prctl::set_no_new_privs().map_err(|e| dropping("no_new_privs", e))
    }
}

/// Drops every capability the kernel has from the bounding set with
/// `drop_one`, by number from 0 until the kernel says there is no such
/// capability (EINVAL): one call per capability, none for the numbers the
/// kernel does not have (its last differs between kernels, 40 since 5.9,
/// and a capability newer than this program's list is dropped too), and no
/// call to learn the last one. Linux has no call that empties the set at
/// once. Returns how many capabilities the kernel has.
pub fn drop_bounding(mut drop_one: impl FnMut(u32) -> nix::Result<()>) -> nix::Result<u32> {
    // CAP_CHOWN, number 0, exists everywhere: EINVAL for it is a real
    // error (a kernel without the bounding set), not the end.
    for cap in 0..64 {
        match drop_one(cap) {
            Ok(()) => {}
            Err(nix::Error::EINVAL) if cap > 0 => return Ok(cap),
            Err(e) => return Err(e),
        }
    }
    Ok(64)
}

/// One `capset(2)` of the effective, permitted and inheritable sets
/// together (the caps crate reads and writes each set on its own: two
/// calls per set).
fn capset(effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    /// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two `Data`.
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let half = |set: u64, i: u32| (set >> (32 * i)) as u32;
    let data = [0, 1].map(|i| Data {
        effective: half(effective, i),
        permitted: half(permitted, i),
        inheritable: half(inheritable, i),
    });
    // SAFETY: capset(2) reads one header and, for version 3, two data
    // structs, both alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How many supplementary groups the process has (one `getgroups(0)`;
/// nix's `getgroups` first reads `/proc/sys/kernel/ngroups_max`).
pub fn group_count() -> usize {
    // SAFETY: with a size of 0 getgroups(2) writes nothing.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    usize::try_from(n).unwrap_or(0)
}

/// A failure to drop privileges, naming the step.
fn dropping(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::internal(format!("drop privileges ({what}): {e}"))
}

/// A recording fake: every call, in order, with what it was given; it
/// succeeds and reports the permitted set it was built with.
#[cfg(test)]
pub(crate) mod fake {
    use std::cell::RefCell;
    use std::collections::HashSet;

    use caps::Capability;

    use super::System;
    use crate::error::Failure;

    /// One recorded call.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Call {
        SetRlimit(u32),
        Rlimit(u32),
        DisarmTimers,
        ResetSignals,
        OpenStdio,
        CloseFrom(u32),
        ClearEnv,
        Umask(u32),
        ChdirRoot,
        NotDumpable,
        ResetTiming,
        Permitted,
        SetCaps(Vec<Capability>),
        RootEgid,
        ClearAmbient,
        ClearBounding,
        ClearCaps,
        Keepcaps(bool),
        BecomeIds(u32, u32),
        NoNewPrivs,
        /// Not a system call: a stage of `stages::run` beginning, as a
        /// fake of the stages marks it between the calls it makes.
        Stage(&'static str),
    }

    /// The fake; `calls` is what it was asked, in order.
    pub(crate) struct Recording {
        pub(crate) calls: RefCell<Vec<Call>>,
        pub(crate) permitted: HashSet<Capability>,
    }

    impl Recording {
        /// A fake whose permitted set is every capability.
        pub(crate) fn new() -> Recording {
            Recording {
                calls: RefCell::new(Vec::new()),
                permitted: caps::all(),
            }
        }

        /// Records `call`.
        pub(crate) fn push(&self, call: Call) {
            self.calls.borrow_mut().push(call);
        }

        /// The calls so far.
        pub(crate) fn calls(&self) -> Vec<Call> {
            self.calls.borrow().clone()
        }
    }

    impl System for Recording {
        fn set_rlimit(&self, resource: u32, _: u64) -> std::io::Result<()> {
            self.push(Call::SetRlimit(resource));
            Ok(())
        }
        fn rlimit(&self, resource: u32) -> std::io::Result<(u64, u64)> {
            self.push(Call::Rlimit(resource));
            Ok((libc::RLIM_INFINITY, libc::RLIM_INFINITY))
        }
        fn disarm_timers(&self) -> Result<(), Failure> {
            self.push(Call::DisarmTimers);
            Ok(())
        }
        fn reset_signals(&self, _: &[libc::c_int]) -> Result<(), Failure> {
            self.push(Call::ResetSignals);
            Ok(())
        }
        fn open_stdio(&self) -> Result<(), Failure> {
            self.push(Call::OpenStdio);
            Ok(())
        }
        unsafe fn close_from(&self, first: u32) {
            self.push(Call::CloseFrom(first));
        }
        fn clear_env(&self) {
            self.push(Call::ClearEnv);
        }
        fn set_umask(&self, mask: u32) {
            self.push(Call::Umask(mask));
        }
        fn chdir_root(&self) -> Result<(), Failure> {
            self.push(Call::ChdirRoot);
            Ok(())
        }
        fn not_dumpable(&self) -> Result<(), Failure> {
            self.push(Call::NotDumpable);
            Ok(())
        }
        fn reset_timing(&self) -> Result<(), (&'static str, std::io::Error)> {
            self.push(Call::ResetTiming);
            Ok(())
        }
        fn permitted(&self) -> Result<HashSet<Capability>, Failure> {
            self.push(Call::Permitted);
            Ok(self.permitted.clone())
        }
        fn set_caps(&self, set: &HashSet<Capability>) -> Result<(), Failure> {
            let mut set: Vec<Capability> = set.iter().copied().collect();
            set.sort_by_key(|c| c.index());
            self.push(Call::SetCaps(set));
            Ok(())
        }
        fn root_egid(&self) -> Result<(), Failure> {
            self.push(Call::RootEgid);
            Ok(())
        }
        fn clear_ambient(&self) -> Result<(), Failure> {
            self.push(Call::ClearAmbient);
            Ok(())
        }
        fn clear_bounding(&self) -> Result<(), Failure> {
            self.push(Call::ClearBounding);
            Ok(())
        }
        fn clear_caps(&self) -> Result<(), Failure> {
            self.push(Call::ClearCaps);
            Ok(())
        }
        fn set_keepcaps(&self, keep: bool) -> Result<(), Failure> {
            self.push(Call::Keepcaps(keep));
            Ok(())
        }
        fn become_ids(&self, uid: u32, gid: u32) -> Result<(), Failure> {
            self.push(Call::BecomeIds(uid, gid));
            Ok(())
        }
        fn no_new_privs(&self) -> Result<(), Failure> {
            self.push(Call::NoNewPrivs);
            Ok(())
        }
    }
}
