//! Network namespace handles.
//!
//! A [`NetNs`] is an open file descriptor on a network namespace. Once it is
//! open, nothing refers to the namespace by pid or path again: links are
//! moved with `IFLA_NET_NS_FD`, and netlink sessions inside the namespace are
//! opened by entering it through the fd for the duration of one `socket()`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;

use crate::error::{Error, Result, Step};
use crate::RawSocket;

// From <linux/nsfs.h>: _IO(0xb7, n).
const NS_GET_USERNS: libc::c_ulong = 0xb701;
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
}

/// A namespace's identity: the (device, inode) pair of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsId {
    /// The device of the nsfs file.
    pub dev: u64,
    /// The inode of the nsfs file: unique per namespace on that device.
    pub ino: u64,
}

impl NetNs {
    /// The network namespace of the calling thread.
    pub fn current() -> Result<NetNs> {
        NetNs::from_path("/proc/thread-self/ns/net")
    }

    /// Opens a namespace file such as `/run/netns/NAME` or `/proc/PID/ns/net`
    /// and checks that it is a network namespace.
    pub fn from_path(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::os(Step::OpenNamespace, path.display().to_string(), e))?;
        let ns = NetNs { fd };
        // SAFETY: NS_GET_NSTYPE takes no argument and returns the type.
        let kind = unsafe { libc::ioctl(ns.fd.as_raw_fd(), NS_GET_NSTYPE) };
        if kind < 0 {
            return Err(Error::os(
                Step::QueryNamespace,
                path.display().to_string(),
                std::io::Error::last_os_error(),
            ));
        }
        if kind != libc::CLONE_NEWNET {
            return Err(Error::os(
                Step::OpenNamespace,
                path.display().to_string(),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            ));
        }
        Ok(ns)
    }

    /// The network namespace of process `pid`, resolved exactly once.
    ///
    /// The pid is pinned with `pidfd_open` first; the namespace is then opened
    /// through `/proc/PID/ns/net` and the pidfd is asked whether its process
    /// is still alive. If it is, the pid cannot have been recycled between the
    /// two steps, so the namespace really belongs to that process.
    pub fn from_pid(pid: u32) -> Result<NetNs> {
        let object = format!("of pid {pid}");
        let pid_t = libc::pid_t::try_from(pid)
            .map_err(|_| Error::os(Step::OpenNamespace, &object, nix::Error::ESRCH))?;
        if pid_t <= 0 {
            return Err(Error::os(Step::OpenNamespace, &object, nix::Error::ESRCH));
        }
        // SAFETY: pidfd_open(2) with flags 0 returns a new fd or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid_t, 0) };
        if raw < 0 {
            return Err(Error::os(
                Step::OpenNamespace,
                &object,
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: raw is a freshly opened fd that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        let ns = NetNs::from_path(format!("/proc/{pid}/ns/net"))
            .map_err(|e| Error::os(Step::OpenNamespace, &object, errno_of(&e)))?;
        // SAFETY: pidfd_send_signal(2) with signal 0 only checks liveness.
        let alive = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                0,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if alive < 0 {
            let e = std::io::Error::last_os_error();
            // EPERM means the process lives but we may not signal it; that
            // still proves the pid was not recycled.
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(Error::os(Step::OpenNamespace, &object, e));
            }
        }
        Ok(ns)
    }

    /// The (device, inode) identity of this namespace.
    pub fn id(&self) -> Result<NsId> {
        let meta = nix::sys::stat::fstat(&self.fd)
            .map_err(|e| Error::os(Step::QueryNamespace, "identity", e))?;
        Ok(NsId {
            dev: meta.st_dev,
            ino: meta.st_ino,
        })
    }

    /// The uid that owns the user namespace this network namespace belongs
    /// to (`NS_GET_USERNS`, then `NS_GET_OWNER_UID`). For the initial user
    /// namespace this is 0.
    pub fn owner_uid(&self) -> Result<u32> {
        // SAFETY: NS_GET_USERNS returns a new fd on the owning user namespace.
        let raw = unsafe { libc::ioctl(self.fd.as_raw_fd(), NS_GET_USERNS) };
        if raw < 0 {
            return Err(Error::os(
                Step::QueryNamespace,
                "owning user namespace",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: raw is a fresh fd we own.
        let userns = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut uid: libc::uid_t = 0;
        // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer.
        let rc = unsafe { libc::ioctl(userns.as_raw_fd(), NS_GET_OWNER_UID, &mut uid) };
        if rc < 0 {
            return Err(Error::os(
                Step::QueryNamespace,
                "owner of user namespace",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(uid)
    }

    /// Runs `f` with the calling thread inside this namespace, then returns
    /// the thread to the namespace it was in. Needs CAP_SYS_ADMIN.
    ///
    /// If the return fails the thread is left inside this namespace and
    /// [`Step::LeaveNamespace`] is reported: treat that as fatal.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        self.enter_from(&NetNs::current()?, f)
    }

    /// [`NetNs::enter`] from `home`, the namespace the thread is in, opened
    /// already (no look-up of it in /proc).
    pub fn enter_from<T>(&self, home: &NetNs, f: impl FnOnce() -> T) -> Result<T> {
        setns(&self.fd, CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::os(Step::EnterNamespace, "target", e))?;
        let out = f();
        setns(&home.fd, CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::os(Step::LeaveNamespace, "target", e))?;
        Ok(out)
    }

    /// A NETLINK_ROUTE socket that lives in this namespace, whatever namespace
    /// later uses it. Needs CAP_SYS_ADMIN (to enter); the socket itself
    /// carries no privilege beyond its namespace.
    pub fn netlink_socket(&self) -> Result<RawSocket> {
        self.netlink_socket_from(&NetNs::current()?)
    }

    /// [`NetNs::netlink_socket`] from `home`, the namespace the thread is in
    /// ([`NetNs::enter_from`]).
    pub fn netlink_socket_from(&self, home: &NetNs) -> Result<RawSocket> {
        self.enter_from(home, || {
            RawSocket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)
        })?
        .map_err(|e| Error::os(Step::OpenSocket, "in target namespace", e))
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<OwnedFd> for NetNs {
    /// Wraps an fd the caller knows to be a network namespace.
    fn from(fd: OwnedFd) -> Self {
        NetNs { fd }
    }
}

fn errno_of(e: &Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.errno().unwrap_or(libc::EIO))
}
