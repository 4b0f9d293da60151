//! The one way netsetgo opens a file or directory as root: the last
//! component is never followed if it is a symbolic link, and what was
//! opened is judged by its fd (kind, owner, mode, links), never by its path.
//! The policy, `/etc/passwd` and `/etc/group` are read this way
//! ([`read_trusted`]), and every state directory and file is created and
//! opened this way.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, mkdirat, FileStat, Mode};

use crate::error::Failure;

/// What an opened object must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub dir: bool,
    pub owner: u32,
    /// Mode bits that must be clear (0o022: not writable by group or
    /// others; 0o077: private).
    pub forbidden: u32,
    /// A regular file must have no other name (a hard link elsewhere).
    pub one_link: bool,
}

/// Why an object was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The kernel refused (`ELOOP`: the last component is a symbolic link).
    Open(nix::Error),
    /// It opened, but is not what the rule asks for.
    Unsafe,
}

/// How to open: read-only, or read-write creating it (a directory with
/// `mkdirat`, a file with `O_CREAT`) with this mode if missing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    Read,
    Create(u32),
}

/// Opens `path` (relative to `at`, or absolute) under `rule`.
pub(crate) fn open(
    at: Option<BorrowedFd<'_>>,
    path: &Path,
    access: Access,
    rule: Rule,
) -> Result<(OwnedFd, FileStat), Refusal> {
    let at = at.unwrap_or(AT_FDCWD);
    let mut flags = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut mode = Mode::empty();
    if rule.dir {
        flags |= OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        if let Access::Create(bits) = access {
            match mkdirat(at.as_fd(), path, Mode::from_bits_truncate(bits)) {
                Ok(()) | Err(nix::Error::EEXIST) => {}
                Err(e) => return Err(Refusal::Open(e)),
            }
        }
    } else {
        // O_NONBLOCK: a FIFO planted in its place cannot make us wait.
        flags |= OFlag::O_NONBLOCK;
        match access {
            Access::Read => flags |= OFlag::O_RDONLY,
            Access::Create(bits) => {
                flags |= OFlag::O_RDWR | OFlag::O_CREAT;
                mode = Mode::from_bits_truncate(bits);
            }
        }
    }
    let fd = openat(at, path, flags, mode).map_err(Refusal::Open)?;
    let st = fstat(&fd).map_err(Refusal::Open)?;
    let kind = st.st_mode & libc::S_IFMT;
    let kind_ok = if rule.dir {
        kind == libc::S_IFDIR
    } else {
        kind == libc::S_IFREG && (!rule.one_link || st.st_nlink == 1)
    };
    if !kind_ok || st.st_uid != rule.owner || st.st_mode & rule.forbidden != 0 {
        return Err(Refusal::Unsafe);
    }
    Ok((fd, st))
}

/// A bound on what we read of the policy file and the user and group
/// databases: generous, since a site that copies its directory into
/// /etc/passwd can have a large one.
const MAX_FILE: u64 = 16 << 20;

/// Reads a root-owned configuration file: opened without following a final
/// symlink, checked on the opened fd (regular, owner root, not group/world
/// writable), with every parent directory root-owned and not group/world
/// writable either. Errors name the path (an administrator's file, whose
/// existence is no secret) but say nothing about other files.
pub(crate) fn read_trusted(path: &Path) -> Result<String, Failure> {
    let bad = |why: &str| {
        Failure::refused(format!(
            "{}: {why}; an administrator must fix it",
            path.display()
        ))
    };
    let trusted = |dir| Rule {
        dir,
        owner: 0,
        forbidden: 0o022,
        one_link: false,
    };
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        open(None, dir, Access::Read, trusted(true)).map_err(|e| match e {
            Refusal::Unsafe => {
                bad("a directory on its path is not a root-owned, non-writable directory")
            }
            Refusal::Open(_) => bad("cannot inspect its directories"),
        })?;
    }
    let (fd, meta) = open(None, path, Access::Read, trusted(false)).map_err(|e| match e {
        Refusal::Open(nix::Error::ELOOP) => bad("is a symbolic link"),
        Refusal::Open(_) => bad("cannot be opened"),
        Refusal::Unsafe => {
            bad("must be a regular file owned by root and not writable by group or others")
        }
    })?;
    let file = File::from(fd);
    let size = meta.st_size as u64;
    if size > MAX_FILE {
        return Err(bad("is too large"));
    }
    // Room for the whole file up front: read in one call, not in doubling
    // probes (this is every call's start-up).
    let mut text = String::with_capacity(size as usize + 1);
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|_| bad("is not readable UTF-8 text"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_what_it_opened() {
        let me = nix::unistd::geteuid().as_raw();
        let dir = std::env::temp_dir().join(format!("netsetgo-secure-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let private = Rule {
            dir: true,
            owner: me,
            forbidden: 0o077,
            one_link: false,
        };
        let (root, _) = open(None, &dir, Access::Create(0o700), private).unwrap();
        let file = Rule {
            dir: false,
            one_link: true,
            ..private
        };
        let name = Path::new("state");
        assert!(open(Some(root.as_fd()), name, Access::Create(0o600), file).is_ok());
        // A symbolic link, a second name, a wrong owner, a lax mode: refused.
        std::os::unix::fs::symlink("state", dir.join("link")).unwrap();
        let link = open(Some(root.as_fd()), Path::new("link"), Access::Read, file);
        assert_eq!(link.unwrap_err(), Refusal::Open(nix::Error::ELOOP));
        std::fs::hard_link(dir.join("state"), dir.join("again")).unwrap();
        let again = open(Some(root.as_fd()), name, Access::Read, file);
        assert_eq!(again.unwrap_err(), Refusal::Unsafe);
        let other = Rule {
            owner: me + 1,
            ..private
        };
        assert_eq!(
            open(None, &dir, Access::Read, other).unwrap_err(),
            Refusal::Unsafe
        );
        let lax = Rule {
            forbidden: 0o700,
            ..private
        };
        assert_eq!(
            open(None, &dir, Access::Read, lax).unwrap_err(),
            Refusal::Unsafe
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
