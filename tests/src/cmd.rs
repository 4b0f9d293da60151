//! Running commands with a bound on their time and a clean environment.

use std::fmt;
use std::process::{Command, ExitStatus, Stdio};

/// Every command the harness runs to completion is killed after this long
/// (times [`time_scale`]).
pub const TIMEOUT_SECS: u32 = 20;

/// How many times longer than usual the harness lets a command run or a
/// poll wait before calling it hung: `NETSETGO_E2E_TIME_SCALE` (default 1),
/// set by scripts/kernel-matrix in guests whose CPU is emulated. It only
/// moves the bounds on hangs, never what a test asserts about timing.
pub fn time_scale() -> u32 {
    static SCALE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *SCALE.get_or_init(|| match std::env::var("NETSETGO_E2E_TIME_SCALE") {
        Err(_) => 1,
        Ok(v) => match v.parse() {
            Ok(n) if n >= 1 => n,
            _ => panic!("NETSETGO_E2E_TIME_SCALE={v:?}: want a whole number from 1"),
        },
    })
}

/// The PATH every command gets (the caller's is never passed on).
pub(crate) const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a finished command did.
#[derive(Clone)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Output {
    /// The exit code; `None` if killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the whole output unless the command succeeded.
    #[track_caller]
    pub fn expect_success(&self, what: &str) -> &Output {
        assert!(self.success(), "{what} failed:\n{self}");
        self
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  status: {}\n  stdout: {:?}\n  stderr: {:?}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `timeout -k 2 20 <argv>`, with an empty environment but PATH.
pub(crate) fn bounded<S: AsRef<str>>(argv: &[S]) -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "2", &(TIMEOUT_SECS * time_scale()).to_string()]);
    c.args(argv.iter().map(AsRef::as_ref));
    clean_env(&mut c);
    c
}

/// Clears the environment except for a fixed PATH and the C locale.
pub(crate) fn clean_env(c: &mut Command) {
    c.env_clear().env("PATH", SAFE_PATH).env("LC_ALL", "C");
}

/// Runs to completion (stdin is /dev/null), capturing stdout and stderr.
pub(crate) fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"))
        .into()
}

/// Runs a command on the machine (not in a world), bounded; for harness
/// set-up only (useradd, gcc, nsenter into a container's netns).
pub(crate) fn run_here<S: AsRef<str>>(argv: &[S]) -> Output {
    run(bounded(argv))
}
