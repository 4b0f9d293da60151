//! How the state's files are opened (as root, without following symlinks,
//! checked on the opened fd) and locked (with a bounded wait).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::Flock;
use nix::sys::stat::FileStat;

use super::{LOCK_TIMEOUT_SECS, STATE_DIR};
use crate::error::Failure;

use crate::secure::{self, Access, Refusal, Rule};

pub(super) fn io_failure(e: std::io::Error) -> Failure {
    Failure::internal(format!("netsetgo state in {STATE_DIR}: {e}"))
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Blocks in flock(2), interrupted by an alarm after LOCK_TIMEOUT_SECS.
/// The lock is held until the returned guard is dropped (or the process
/// ends, however it ends).
pub(super) fn wait_for_lock(file: &File) -> Result<Flock<File>, Failure> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    // No SA_RESTART: the alarm must interrupt flock with EINTR.
    let action = SigAction::new(
        SigHandler::Handler(on_alarm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing.
    unsafe { sigaction(Signal::SIGALRM, &action) }
        .map_err(|e| Failure::internal(format!("sigaction: {e}")))?;
    // SAFETY: alarm(2) only arms a timer.
    unsafe { libc::alarm(LOCK_TIMEOUT_SECS) };
    let result = Flock::lock(
        file.try_clone().map_err(io_failure)?,
        nix::fcntl::FlockArg::LockExclusive,
    );
    // SAFETY: alarm(2) only disarms the timer.
    unsafe { libc::alarm(0) };
    match result {
        Ok(guard) => Ok(guard),
        Err((_, nix::Error::EINTR)) => Err(Failure::unavailable(format!(
            "another netsetgo call has held this network's lock for {LOCK_TIMEOUT_SECS} s; try again"
        ))),
        Err((_, e)) => Err(Failure::internal(format!("lock {STATE_DIR}: {e}"))),
    }
}

/// A state directory (0700) or file (0600, one name) of `owner`.
fn private(dir: bool, owner: u32) -> Rule {
    Rule {
        dir,
        owner,
        forbidden: 0o077,
        one_link: true,
    }
}

fn opened(fd: Result<(OwnedFd, FileStat), Refusal>, what: &str) -> Result<OwnedFd, Failure> {
    match fd {
        Ok((fd, _)) => Ok(fd),
        Err(Refusal::Open(e)) => Err(Failure::internal(format!("open {what}: {e}"))),
        Err(Refusal::Unsafe) => Err(Failure::refused(format!(
            "{what} must be owned by root and private (mode 0700/0600); an administrator must remove it"
        ))),
    }
}

/// `path` under `dir` if it exists, every component a private one of
/// `owner` (directories, then a file), creating nothing.
pub(super) fn open_existing(
    dir: &Path,
    path: &str,
    owner: u32,
) -> Result<Option<OwnedFd>, Failure> {
    let mut at = match secure::open(None, dir, Access::Read, private(true, owner)) {
        Err(Refusal::Open(nix::Error::ENOENT)) => return Ok(None),
        fd => opened(fd, &dir.display().to_string())?,
    };
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let is_dir = i + 1 < parts.len() || !path.ends_with("map");
        let fd = secure::open(
            Some(at.as_fd()),
            Path::new(part),
            Access::Read,
            private(is_dir, owner),
        );
        at = match fd {
            Err(Refusal::Open(nix::Error::ENOENT)) => return Ok(None),
            fd => opened(fd, &format!("{STATE_DIR}/.../{part}"))?,
        };
    }
    Ok(Some(at))
}

pub(super) fn open_root_dir(path: &Path, owner: u32) -> Result<OwnedFd, Failure> {
    let fd = secure::open(None, path, Access::Create(0o700), private(true, owner));
    opened(fd, &path.display().to_string())
}

pub(super) fn open_dir_at(parent: &OwnedFd, name: &str, owner: u32) -> Result<OwnedFd, Failure> {
    let fd = secure::open(
        Some(parent.as_fd()),
        Path::new(name),
        Access::Create(0o700),
        private(true, owner),
    );
    opened(fd, &format!("{STATE_DIR}/.../{name}"))
}

pub(super) fn open_file_at(parent: &OwnedFd, name: &str, owner: u32) -> Result<File, Failure> {
    let fd = secure::open(
        Some(parent.as_fd()),
        Path::new(name),
        Access::Create(0o600),
        private(false, owner),
    );
    opened(fd, &format!("{STATE_DIR}/.../{name}")).map(File::from)
}
