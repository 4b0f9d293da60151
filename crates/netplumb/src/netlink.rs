//! A netlink session bound to one network namespace.

use std::os::fd::IntoRawFd;
use std::os::unix::io::FromRawFd;

use futures::TryStreamExt;
use rtnetlink::sys::TokioSocket;

use crate::error::{Error, Result, Step};
use crate::netns::NetNs;
use crate::RawSocket;

/// A NETLINK_ROUTE session. Every operation acts in the network namespace the
/// socket was opened in, whichever namespace the caller is in now.
///
/// Sessions drive their socket on the current tokio runtime (either flavour;
/// a `current_thread` runtime is enough).
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// A session in the calling thread's current network namespace.
    pub fn connect() -> Result<Netlink> {
        Netlink::from_socket(Netlink::open_socket()?)
    }

    /// A NETLINK_ROUTE socket in the current namespace, not yet driven by a
    /// runtime: open it early (say, before dropping privileges), hand it to
    /// [`Netlink::from_socket`] later.
    pub fn open_socket() -> Result<RawSocket> {
        RawSocket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)
            .map_err(|e| Error::os(Step::OpenSocket, "in current namespace", e))
    }

    /// A session inside `ns`; needs CAP_SYS_ADMIN for the moment it takes to
    /// open the socket there.
    pub fn connect_in(ns: &NetNs) -> Result<Netlink> {
        Netlink::from_socket(ns.netlink_socket()?)
    }

    /// A session on a socket opened earlier, for example by
    /// [`NetNs::netlink_socket`] before privileges were dropped.
    pub fn from_socket(socket: RawSocket) -> Result<Netlink> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        // SAFETY: the fd comes straight out of an owned Socket; TokioSocket
        // takes over ownership (it registers it with the runtime's reactor).
        let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

/// Drains a request whose only answer is an acknowledgement or an error.
pub(crate) async fn first<T>(
    stream: impl futures::Stream<Item = std::result::Result<T, rtnetlink::Error>>,
) -> std::result::Result<Option<T>, rtnetlink::Error> {
    futures::pin_mut!(stream);
    stream.try_next().await
}
