//! Typed errors: every failure names the step that failed and the object it
//! was acting on, so a caller can print one actionable line.

use std::fmt;
use std::io;

/// The step of the plumbing that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Opening a namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`) or pinning its process.
    OpenNamespace,
    /// Entering a namespace with `setns`.
    EnterNamespace,
    /// Returning the thread to its own namespace after [`NetNs::enter`](crate::NetNs::enter).
    LeaveNamespace,
    /// Asking the kernel about a namespace: its type, owner or identity.
    QueryNamespace,
    /// Opening a netlink socket.
    OpenSocket,
    /// Looking one link up by name or index.
    LookUpLink,
    /// Listing links, such as the ports of a bridge.
    ListLinks,
    /// Creating a bridge.
    CreateBridge,
    /// Creating a veth pair.
    CreateVeth,
    /// Attaching a link to a bridge.
    SetMaster,
    /// Bringing a link up.
    SetUp,
    /// Setting a link's alias (`IFLA_IFALIAS`).
    SetAlias,
    /// Setting a bridge port's flags (isolation, learning, unicast flooding).
    SetBridgePort,
    /// Pinning a MAC address to a bridge port (a static forwarding entry).
    PinMac,
    /// Getting one entry of a bridge's forwarding database.
    GetFdb,
    /// Renaming a link.
    Rename,
    /// Deleting a link.
    DeleteLink,
    /// Adding an address to a link.
    AddAddress,
    /// Listing a link's addresses.
    ListAddresses,
    /// Adding a route.
    AddRoute,
    /// Listing routes.
    ListRoutes,
    /// Looking up the route to one address.
    LookUpRoute,
    /// Listing sockets (`NETLINK_SOCK_DIAG`).
    ListSockets,
    /// Reading nf_tables state: the ruleset generation, a chain, a set, a
    /// set element, a dump of a chain's rules.
    NftLookUp,
    /// Creating an nf_tables table or chain.
    NftCreate,
    /// Adding an nf_tables rule.
    NftAddRule,
    /// Deleting an nf_tables rule or chain.
    NftDelete,
    /// Adding an element to an nf_tables set or map (a publication's claim
    /// or mapping, a guarded port's address).
    NftAddElement,
    /// Deleting an element of an nf_tables set or map.
    NftDeleteElement,
    /// Committing an nf_tables batch as a whole.
    NftCommit,
    /// Switching forwarding on (a sysctl under `/proc/sys/net`).
    EnableForwarding,
    /// Switching IPv6 off on a link (a sysctl under `/proc/sys/net`).
    DisableIpv6,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::OpenNamespace => "open network namespace",
            Step::EnterNamespace => "enter network namespace",
            Step::LeaveNamespace => "return from network namespace",
            Step::QueryNamespace => "query network namespace",
            Step::OpenSocket => "open netlink socket",
            Step::LookUpLink => "look up link",
            Step::ListLinks => "list links",
            Step::CreateBridge => "create bridge",
            Step::CreateVeth => "create veth pair",
            Step::SetMaster => "attach link to bridge",
            Step::SetUp => "bring link up",
            Step::SetAlias => "set link alias",
            Step::SetBridgePort => "set bridge port flags",
            Step::PinMac => "pin MAC address to bridge port",
            Step::GetFdb => "get forwarding entry",
            Step::Rename => "rename link",
            Step::DeleteLink => "delete link",
            Step::AddAddress => "add address",
            Step::ListAddresses => "list addresses",
            Step::AddRoute => "add route",
            Step::ListRoutes => "list routes",
            Step::LookUpRoute => "look up route",
            Step::ListSockets => "list sockets",
            Step::NftLookUp => "look up nftables",
            Step::NftCreate => "create nftables",
            Step::NftAddRule => "add nftables rule",
            Step::NftDelete => "delete nftables",
            Step::NftAddElement => "add nftables element",
            Step::NftDeleteElement => "delete nftables element",
            Step::NftCommit => "commit nftables batch",
            Step::EnableForwarding => "enable forwarding",
            Step::DisableIpv6 => "disable IPv6",
        })
    }
}

/// Everything that can go wrong in netplumb.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel (or the netlink transport) refused a request.
    #[error("{step} {object}: {source}")]
    Netlink {
        /// The step that failed.
        step: Step,
        /// What it acted on: a link (`#index` or name), an address, a route.
        object: String,
        /// The kernel's answer.
        #[source]
        source: NetlinkError,
    },
    /// A system call failed.
    #[error("{step} {object}: {source}")]
    Os {
        /// The step that failed.
        step: Step,
        /// What it acted on: a path, a namespace, a pid.
        object: String,
        /// The system call's error (with its errno).
        #[source]
        source: io::Error,
    },
    /// A device of the requested bridge's name exists and is something else.
    #[error("device {name} exists and is {kind}, not a bridge; it was left untouched")]
    NotABridge {
        /// The device's name.
        name: String,
        /// What it is instead, as a phrase ("a dummy device").
        kind: String,
    },
    /// An interface name the kernel would refuse or that could be a path.
    #[error("invalid interface name {0:?}: use 1-15 characters from A-Z a-z 0-9 _ . -")]
    InvalidName(String),
    /// An nf_tables table name outside what [`Nftables`](crate::Nftables)
    /// accepts.
    #[error("invalid nftables table name {0:?}: use 1-64 characters from A-Z a-z 0-9 _ -")]
    InvalidTableName(String),
    /// A netlink session needs a tokio runtime to drive its socket.
    #[error("open netlink socket: no tokio runtime is running")]
    NoRuntime,
}

/// The kernel's answer to a netlink request, kept as an errno when it is one.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// An error code: the request was understood and refused.
    #[error("{0}")]
    Errno(io::Error),
    /// Anything else: the transport failed, or the answer could not be
    /// read. Told in a few words, never by formatting the message: that
    /// (rtnetlink's `Display` of an unexpected message is its `Debug`
    /// form) would keep the `Debug` code of every netlink message type in
    /// every binary built on netplumb.
    #[error("{0}")]
    Protocol(String),
}

impl From<rtnetlink::Error> for NetlinkError {
    fn from(e: rtnetlink::Error) -> Self {
        use rtnetlink::Error as E;
        NetlinkError::Protocol(match e {
            E::NetlinkError(msg) if msg.raw_code() != 0 => return NetlinkError::Errno(msg.to_io()),
            E::NetlinkError(_) => "an error message without an error code".into(),
            E::UnexpectedMessage(msg) => format!(
                "an unexpected netlink message of type {}",
                msg.header.message_type
            ),
            E::RequestFailed => "the netlink request failed".into(),
            E::NamespaceError(_) => "a namespace error".into(),
            E::InvalidHardwareAddress(_) => "an invalid hardware address attribute".into(),
            E::InvalidIp(_) | E::InvalidAddress(..) => "an invalid address attribute".into(),
            E::InvalidNla(_) => "an invalid attribute".into(),
        })
    }
}

impl Error {
    pub(crate) fn netlink(step: Step, object: impl Into<String>, e: rtnetlink::Error) -> Self {
        Error::Netlink {
            step,
            object: object.into(),
            source: e.into(),
        }
    }

    pub(crate) fn os(step: Step, object: impl Into<String>, e: impl Into<io::Error>) -> Self {
        Error::Os {
            step,
            object: object.into(),
            source: e.into(),
        }
    }

    /// The errno behind this error, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink {
                source: NetlinkError::Errno(e),
                ..
            }
            | Error::Os { source: e, .. } => e.raw_os_error(),
            _ => None,
        }
    }

    /// The step that failed, for errors that come from a step.
    pub fn step(&self) -> Option<Step> {
        match self {
            Error::Netlink { step, .. } | Error::Os { step, .. } => Some(*step),
            _ => None,
        }
    }
}

/// netplumb's results: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use rtnetlink::packet_core::{ErrorMessage, NetlinkHeader, NetlinkMessage, NetlinkPayload};

    use super::NetlinkError;

    #[test]
    fn an_error_code_stays_an_errno_and_the_rest_is_told_in_words() {
        let mut refused = ErrorMessage::default();
        refused.code = NonZeroI32::new(-libc::EEXIST);
        let e = NetlinkError::from(rtnetlink::Error::NetlinkError(refused));
        assert!(matches!(&e, NetlinkError::Errno(io) if io.raw_os_error() == Some(libc::EEXIST)));

        let mut header = NetlinkHeader::default();
        header.message_type = 16;
        let unexpected = NetlinkMessage::new(header, NetlinkPayload::Noop);
        for (error, text) in [
            (
                rtnetlink::Error::UnexpectedMessage(unexpected),
                "an unexpected netlink message of type 16",
            ),
            (
                rtnetlink::Error::NetlinkError(ErrorMessage::default()),
                "an error message without an error code",
            ),
            (
                rtnetlink::Error::RequestFailed,
                "the netlink request failed",
            ),
            (
                rtnetlink::Error::InvalidIp(vec![1, 2, 3]),
                "an invalid address attribute",
            ),
        ] {
            assert_eq!(NetlinkError::from(error).to_string(), text);
        }
    }
}
