//! Pausing a netsetgo call from outside, at a chosen system call, so that a
//! test can act while it is paused: the helper runs under
//! `strace -f -u USER` (as root, in the world), which starts a setuid
//! program with its privileges, and strace's fault injection sends it
//! SIGSTOP on the n-th call of one system call. The signal arrives when
//! that call returns (a netlink `sendto` has then been carried out by the
//! kernel, its reply not yet read). That the helper stopped is read from
//! strace's own log (`--- stopped by SIGSTOP ---`), not guessed from time.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::binary::installed_binary;
use crate::cmd::Output;
use crate::world::{wait_until, Call, World};

static TRACES: AtomicUsize = AtomicUsize::new(0);

/// A netsetgo call under strace. Killed when dropped.
pub struct Traced {
    call: Call,
    log: PathBuf,
}

/// How to start a traced call.
pub struct Trace<'a> {
    /// The calling user.
    pub user: &'a str,
    /// The system call to trace (and to pause at), e.g. `sendto`.
    pub syscall: &'a str,
    /// Pause at its n-th invocation (1-based), or never.
    pub pause_at: Option<usize>,
    /// Programs that exec the helper, run as the user (e.g. `chrt -i 0`):
    /// the kernel honours the setuid bit under a root tracer.
    pub wrap: &'a [&'a str],
}

impl World {
    /// Starts the installed binary with `args` as `t.user` under strace.
    pub fn start_traced(&self, t: &Trace, args: &[&str]) -> Traced {
        let n = TRACES.fetch_add(1, Ordering::Relaxed);
        let inside = format!("/run/nsg-e2e-trace.{n}");
        let mut argv: Vec<String> = [
            "strace",
            "-f",
            "-q",
            "-u",
            t.user,
            "-o",
            &inside,
            "-e",
            &format!("trace={}", t.syscall),
            "-e",
            "signal=SIGSTOP,SIGCONT",
        ]
        .map(String::from)
        .to_vec();
        if let Some(n) = t.pause_at {
            argv.push("-e".into());
            argv.push(format!("inject={}:signal=SIGSTOP:when={n}", t.syscall));
        }
        argv.extend(t.wrap.iter().map(|s| s.to_string()));
        argv.push(installed_binary().to_string_lossy().into_owned());
        argv.extend(args.iter().map(|s| s.to_string()));
        Traced {
            call: self.start(&argv),
            log: self.path(&inside),
        }
    }
}

impl Traced {
    /// strace's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The traced system calls in order, each as its file descriptor and,
    /// for netlink, the message type (`3 RTM_NEWLINK`, `5 0x13`), else the
    /// start of its arguments.
    pub fn calls(&self, syscall: &str) -> Vec<String> {
        let open = format!(" {syscall}(");
        self.log()
            .lines()
            .filter_map(|l| l.split_once(&open).map(|(_, rest)| rest))
            .map(|rest| {
                let fd = rest.split(',').next().unwrap_or("?");
                match rest.split_once("nlmsg_type=") {
                    Some((_, t)) => {
                        format!("{fd} {}", t.split([',', ' ']).next().unwrap_or("?"))
                    }
                    None => format!("{fd} {}", rest.chars().skip(4).take(20).collect::<String>()),
                }
            })
            .collect()
    }

    /// Waits (at most `limit`) until strace reports the helper stopped by
    /// the injected SIGSTOP, and returns the helper's pid; `None` if the
    /// call ended (or never got there) first.
    pub fn wait_paused(&mut self, limit: Duration) -> Option<u32> {
        let mut paused = None;
        wait_until(limit, Duration::from_millis(2), || {
            let log = self.log();
            paused = log.lines().find_map(|l| {
                let (pid, what) = l.split_once(' ')?;
                (what.trim() == "--- stopped by SIGSTOP ---").then(|| pid.parse().ok())?
            });
            paused.is_some()
                || log.contains("+++ exited")
                || log.contains("+++ killed")
                || self.call.has_exited()
        });
        paused
    }

    /// Waits at most `limit` for strace (and so the helper) to end, then
    /// returns what it printed: the helper's stdout and stderr.
    pub fn finish(&mut self, limit: Duration) -> Output {
        self.call.finish(limit)
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.log);
    }
}

/// Sends `signal` to `pid` as root; whether it was delivered.
pub fn signal(pid: u32, signal: i32) -> bool {
    // SAFETY: kill(2) has no memory effects; a pid that is gone gives ESRCH.
    unsafe { libc::kill(pid as i32, signal) == 0 }
}

/// Whether `pid` holds an exclusive flock on the file with inode `ino`
/// (as `/proc/locks` shows it).
pub fn holds_flock(pid: u32, ino: u64) -> bool {
    let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:2f:56 0 EOF"
        f.len() >= 6
            && f[1] == "FLOCK"
            && f[3] == "WRITE"
            && f[4] == pid.to_string()
            && f[5].rsplit(':').next() == Some(&ino.to_string())
    })
}
