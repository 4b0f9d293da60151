//! The benchmark's stopwatch (bench/run): runs one command per line of
//! standard input and answers one line per command with the wall-clock time
//! from just before `fork` to just after `wait4`, the exit status, and the
//! peak RSS that `wait4` reports for the direct child (the maximum over it
//! and the descendants it reaped).
//!
//! It is a small static process so that what a forked child carries over
//! before `exec` (counted in its peak RSS by the kernel) stays below what any
//! measured tool uses, and so that fork costs the same for every tool.
//!
//! Request, fields separated by 0x1f:
//! `uid  gid  groups(comma separated)  stdin-path  stdout-path  stderr-path
//!  env(entries separated by 0x1e)  argv0  argv1 ...`
//! An empty uid keeps root's credentials; an empty stdin path is /dev/null.
//!
//! Answer: `elapsed_ns status peak_rss_kib user_us system_us minor_faults`,
//! where status is the exit code, or minus the signal number, or -1000 when
//! the command could not be run; the last four come from `wait4`'s rusage
//! (the child and the descendants it reaped).
//!
//! Build (static, as bench/run does):
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release
//!  --target x86_64-unknown-linux-gnu -p netplumb-bench --bin calltimer`

#![warn(missing_docs)]
#![deny(unreachable_pub)]

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// Seconds after which a command still running is killed (SIGALRM,
/// armed just before `exec`; it reports as status -14).
const CALL_TIMEOUT_S: libc::c_uint = 120;

struct Request {
    uid: Option<libc::uid_t>,
    gid: Option<libc::gid_t>,
    groups: Vec<libc::gid_t>,
    stdin: String,
    stdout: String,
    stderr: String,
    env: Vec<CString>,
    argv: Vec<CString>,
}

fn parse(line: &str) -> Result<Request, String> {
    let fields: Vec<&str> = line.split('\x1f').collect();
    if fields.len() < 8 {
        return Err(format!("expected at least 8 fields, got {}", fields.len()));
    }
    let id = |s: &str| -> Result<Option<u32>, String> {
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| format!("bad id {s:?}"))
        }
    };
    let cstring = |s: &str| CString::new(s).map_err(|_| format!("NUL in {s:?}"));
    let groups = fields[2]
        .split(',')
        .filter(|g| !g.is_empty())
        .map(|g| g.parse().map_err(|_| format!("bad group {g:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let env = fields[6]
        .split('\x1e')
        .filter(|e| !e.is_empty())
        .map(cstring)
        .collect::<Result<Vec<_>, _>>()?;
    let argv = fields[7..]
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Request {
        uid: id(fields[0])?,
        gid: id(fields[1])?,
        groups,
        stdin: fields[3].to_string(),
        stdout: fields[4].to_string(),
        stderr: fields[5].to_string(),
        env,
        argv,
    })
}

fn open_out(path: &str) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// What one run measured.
struct Measured {
    elapsed_ns: u128,
    status: i64,
    usage: libc::rusage,
}

fn micros(t: libc::timeval) -> i64 {
    t.tv_sec * 1_000_000 + t.tv_usec
}

/// Runs one request.
fn run(req: &Request) -> std::io::Result<Measured> {
    let stdin = File::open(if req.stdin.is_empty() {
        "/dev/null"
    } else {
        &req.stdin
    })?;
    let stdout = open_out(&req.stdout)?;
    let stderr = open_out(&req.stderr)?;
    let mut argv: Vec<*const libc::c_char> = req.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = req.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let fds = [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()];

    let start = Instant::now();
    // SAFETY: this program has a single thread, so the child may do anything
    // between fork and exec; it only calls async-signal-safe functions on
    // data prepared above, and leaves with exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; every pointer refers to live, NUL-terminated data.
        unsafe {
            for (target, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, target as i32) < 0 {
                    libc::_exit(126);
                }
            }
            if let Some(gid) = req.gid {
                if libc::setgroups(req.groups.len(), req.groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                {
                    libc::_exit(126);
                }
            }
            if let Some(uid) = req.uid {
                if libc::setuid(uid) != 0 {
                    libc::_exit(126);
                }
            }
            // A bound on every call: SIGALRM ends a command that hangs.
            libc::alarm(CALL_TIMEOUT_S);
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes status and usage for our own child.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed().as_nanos();
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        i64::from(libc::WEXITSTATUS(status))
    } else {
        -i64::from(libc::WTERMSIG(status))
    };
    Ok(Measured {
        elapsed_ns: elapsed,
        status: code,
        usage,
    })
}

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let answer = match parse(&line) {
            Ok(req) => match run(&req) {
                Ok(m) => format!(
                    "{} {} {} {} {} {}",
                    m.elapsed_ns,
                    m.status,
                    m.usage.ru_maxrss,
                    micros(m.usage.ru_utime),
                    micros(m.usage.ru_stime),
                    m.usage.ru_minflt
                ),
                Err(e) => format!("0 -1000 0 0 0 0 {e}"),
            },
            Err(e) => format!("0 -1000 0 0 0 0 {e}"),
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}
