//! `/run/netsetgo/net-<ino>/ports+claimed` (a name no bridge can have):
//! whether netsetgo's table `inet netsetgo` of this host namespace has
//! held claims of published ports
//! (since `/run` was made, i.e. since boot, like the ruleset). Root's file
//! (0600 in the namespace's 0700 directory), opened before the drop by a
//! call that publishes and by `-restore`; the worker reads and sets it
//! through that fd.
//!
//! It tells a first publication on a fresh host (the claims map missing,
//! the mark unset: the claims are made) from one after a flushed ruleset
//! (the claims map missing, the mark set: every claim of every network is
//! gone until `-restore`, and a port published then could be another
//! network's lease's, which no record of this network shows): refused.
//! Set before the claims map is made, never unset: whenever the map has
//! existed, the mark is set.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use netplumb::NsId;

use super::files::{io_failure, open_dir_at, open_file_at, open_root_dir};
use super::STATE_DIR;
use crate::error::Failure;

/// The byte the mark holds once set (the file is empty before).
const SET: u8 = b'1';
/// Its name: the `+` keeps it out of [`Store::bridges`](super::Store::bridges).
const NAME: &str = "ports+claimed";

/// The claims mark of one host namespace, opened as root.
pub struct Claimed {
    file: File,
}

impl Claimed {
    /// Opens (creating it unset) the mark of host network namespace
    /// `netns`. Must run as root, before privileges are dropped.
    pub fn open(netns: &NsId) -> Result<Claimed, Failure> {
        Claimed::open_under(Path::new(STATE_DIR), 0, netns)
    }

    /// [`Claimed::open`] under `dir`, owned by `owner`.
    pub fn open_under(dir: &Path, owner: u32, netns: &NsId) -> Result<Claimed, Failure> {
        let root = open_root_dir(dir, owner)?;
        let namespace = open_dir_at(&root, &format!("net-{}", netns.ino), owner)?;
        let file = open_file_at(&namespace, NAME, owner)?;
        Ok(Claimed { file })
    }

    /// Whether the claims map has been made: one `pread`.
    pub fn is_set(&self) -> Result<bool, Failure> {
        let mut byte = [0u8; 1];
        match self.file.read_at(&mut byte, 0).map_err(io_failure)? {
            0 => Ok(false),
            _ => Ok(byte[0] == SET),
        }
    }

    /// Sets it, before the claims map is made.
    pub fn set(&self) -> Result<(), Failure> {
        self.file.write_all_at(&[SET], 0).map_err(io_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_starts_unset_and_stays_set() {
        let dir =
            std::env::temp_dir().join(format!("netsetgo-unit-claimed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let owner = nix::unistd::geteuid().as_raw();
        let ns = NsId { dev: 0, ino: 7 };
        let mark = Claimed::open_under(&dir, owner, &ns).unwrap();
        assert!(!mark.is_set().unwrap());
        mark.set().unwrap();
        assert!(mark.is_set().unwrap());
        let again = Claimed::open_under(&dir, owner, &ns).unwrap();
        assert!(again.is_set().unwrap(), "read back by another open");
        let other = Claimed::open_under(&dir, owner, &NsId { dev: 0, ino: 8 }).unwrap();
        assert!(!other.is_set().unwrap(), "another namespace has its own");
        let bridges = super::super::Store::bridges_under(&dir, owner, &ns).unwrap();
        assert!(
            bridges.is_empty(),
            "the mark is no network's state: {bridges:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
