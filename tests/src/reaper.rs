//! The reaper of an lxc-user-nic `create` seen from outside: which
//! processes of a world are reapers, and what `/proc` shows of one.

use std::fs;
use std::time::Duration;

use crate::dhcp::{in_syscall, status_field};
use crate::world::{ns_of, World};

/// The reaper's process name (`/proc/PID/comm`).
pub const NAME: &str = "netsetgo-reaper";

/// The reapers running in `world`'s network namespace.
pub fn reapers(world: &World) -> Vec<u32> {
    let net = ns_of(world.pid(), "net");
    let mut found: Vec<u32> = fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| status_field(pid, "Name") == NAME && ns_of(pid, "net") == net)
        .filter(|&pid| !matches!(status_field(pid, "State").chars().next(), Some('Z')))
        .collect();
    found.sort();
    found
}

/// The one reaper of `world` that is not among `before`, once it sleeps
/// waiting for its notification (in `recvfrom`), waiting at most 5 s for
/// that (the helper forks it as its last step; then it sheds the caller's
/// session and descriptors).
pub fn new_reaper(world: &World, before: &[u32]) -> u32 {
    let mut new = Vec::new();
    let asleep = crate::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        new = reapers(world)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        new.iter().any(|&p| in_syscall(p, libc::SYS_recvfrom))
    });
    assert_eq!(new.len(), 1, "one new reaper: {new:?}");
    assert!(asleep, "reaper {} never waited in recvfrom", new[0]);
    new[0]
}

/// Asserts what `/proc` shows of a reaper running as `uid`/`gid`: those
/// ids everywhere, no groups, `CAP_NET_ADMIN` alone (effective and
/// permitted; nothing inheritable, ambient or in the bounding set),
/// no_new_privs, root-owned `/proc` files (not dumpable), out of its
/// caller's session, and no fd but /dev/null on 0-2, one netlink socket
/// and the network's four state files under `state_dir`.
#[track_caller]
pub fn assert_reaper_holds_only_its_watch(pid: u32, uid: u32, gid: u32, state_dir: &str) {
    use std::os::unix::fs::MetadataExt;
    let ids = |id: u32| format!("{id}\t{id}\t{id}\t{id}");
    assert_eq!(status_field(pid, "Uid"), ids(uid), "reaper {pid}");
    assert_eq!(status_field(pid, "Gid"), ids(gid), "reaper {pid}");
    assert_eq!(status_field(pid, "Groups"), "", "reaper {pid}");
    for (set, value) in [
        ("CapEff", "0000000000001000"),
        ("CapPrm", "0000000000001000"),
        ("CapInh", "0000000000000000"),
        ("CapBnd", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(status_field(pid, set), value, "{set} of reaper {pid}");
    }
    assert_eq!(status_field(pid, "NoNewPrivs"), "1", "reaper {pid}");
    let owner = fs::metadata(format!("/proc/{pid}/status")).expect("status");
    assert_eq!(owner.uid(), 0, "reaper {pid} is dumpable");
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let session = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().nth(3));
    assert_eq!(
        session,
        Some(pid.to_string().as_str()),
        "its own session: {stat}"
    );
    let mut targets: Vec<(u32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the reaper's fds")
        .flatten()
        .map(|e| {
            let fd = e.file_name().to_string_lossy().parse().unwrap_or(u32::MAX);
            let target = fs::read_link(e.path()).unwrap_or_default();
            (fd, target.to_string_lossy().into_owned())
        })
        .collect();
    targets.sort();
    assert_eq!(targets.len(), 8, "fds of reaper {pid}: {targets:?}");
    assert!(
        targets[..3]
            .iter()
            .all(|(fd, t)| *fd < 3 && t == "/dev/null"),
        "{targets:?}"
    );
    let sockets = targets
        .iter()
        .filter(|(_, t)| t.starts_with("socket:"))
        .count();
    assert_eq!(sockets, 1, "one socket: {targets:?}");
    let files = targets
        .iter()
        .filter(|(_, t)| t.starts_with(state_dir))
        .count();
    assert_eq!(
        files, 4,
        "the state's four files under {state_dir}: {targets:?}"
    );
    // The socket is the netlink socket: /proc/net/netlink lists its inode.
    let inode = targets
        .iter()
        .find_map(|(_, t)| t.strip_prefix("socket:[")?.strip_suffix(']'))
        .expect("a socket");
    let netlink = fs::read_to_string(format!("/proc/{pid}/net/netlink")).unwrap_or_default();
    let listed = netlink.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // sk Eth Pid Groups ... Inode: NETLINK_ROUTE (0), RTMGRP_LINK (1).
        f.len() > 9 && f[1] == "0" && f[3] == "00000001" && f[9] == inode
    });
    assert!(
        listed,
        "socket {inode} is no rtnetlink socket of RTMGRP_LINK:\n{netlink}"
    );
}
