//! The target: the network namespace of the pid the caller names, resolved
//! once into an fd, and the proof that the caller may wire it.

use netplumb::{NetNs, NsId};

use crate::error::Failure;
use crate::privilege::Caller;

/// Opens the network namespace of `pid` and checks that `caller` may wire
/// it: its owning user namespace must belong to the caller's real uid (only
/// root may name anyone's), and it must not be `own`, the namespace we run
/// in.
///
/// For an unprivileged caller every failure gives the same message, so the
/// answer reveals nothing about pids that are not the caller's: a pid that
/// does not exist, one of another user, one hidden by hidepid, the host's.
pub fn open(pid: u32, caller: &Caller, own: &NsId) -> Result<NetNs, Failure> {
    let not_yours = || {
        Failure::refused(format!(
            "process {pid} does not exist or its network namespace is not yours \
             (it must belong to a user namespace you created, e.g. unshare -U -r -n)"
        ))
    };
    let ns = NetNs::from_pid(pid).map_err(|e| {
        if caller.is_root() {
            Failure::from(e)
        } else {
            not_yours()
        }
    })?;
    let target = ns.id().map_err(Failure::from)?;
    if !caller.is_root() {
        let owner = ns.owner_uid().map_err(|_| not_yours())?;
        if owner != caller.uid || target == *own {
            return Err(not_yours());
        }
    } else if target == *own {
        return Err(Failure::refused(format!(
            "process {pid} is in the network namespace netsetgo runs in; name a container's process"
        )));
    }
    Ok(ns)
}
