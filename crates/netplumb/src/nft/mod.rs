//! nf_tables, spoken in-process over `NETLINK_NETFILTER`: masquerading,
//! published ports and the bridge guard.
//!
//! No `nft` or `iptables` binary is run: the messages of
//! `<linux/netfilter/nfnetlink.h>` and `<linux/netfilter/nf_tables.h>` are
//! built here by hand and exchanged with the kernel on a plain netlink
//! socket, one request (or one atomic batch) at a time. The layers:
//! `wire` (the netlink codec), `expr` (expressions and registers), `batch`
//! (atomic batches and the transaction loop), and one module per family of
//! operations, each reached from a session [`Nftables`] with a request
//! builder shaped like rtnetlink's:
//!
//! ```no_run
//! # fn main() -> netplumb::Result<()> {
//! use netplumb::{Nftables, Publication, Protocol};
//! let nft = Nftables::open()?;
//! nft.masquerade("demo").add("br0", "10.20.0.0/24".parse().unwrap()).execute()?;
//! nft.ports("demo").publish(&Publication {
//!     protocol: Protocol::Tcp,
//!     host_address: None,
//!     host_port: 8080,
//!     container_port: 80,
//!     owner: "10.20.0.2".parse().unwrap(),
//!     targets: vec!["10.20.0.2".parse().unwrap()],
//! }).execute()?;
//! # Ok(()) }
//! ```
//!
//! * [`Masquerade`]: source NAT for a bridge's subnets (`table inet`).
//! * [`Ports`]: published ports, DNAT through maps (`table inet`).
//! * [`Guard`]: what a container's host end may receive from it, one
//!   ingress chain per host end (`table netdev`).
//!
//! Structure (tables, sets, chains, rules) is created on first use in one
//! batch carrying the ruleset generation that was current when the state
//! was read (`NFNL_BATCH_GENID`): if anything changed the ruleset in
//! between, the kernel refuses the whole batch with `ERESTART` and the
//! state is read again. So concurrent callers never add a rule twice, and a
//! failed call changes nothing. Publications and guarded ports are set and
//! map elements: adding or removing one costs the same whatever the number
//! of others, and so does every packet. Other tables are never read or
//! written.

mod batch;
mod expr;
mod guard;
mod masquerade;
mod ports;
mod wire;

use std::cell::Cell;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{SystemTime, UNIX_EPOCH};

use rtnetlink::sys::protocols::NETLINK_NETFILTER;

use self::batch::Batch;
use self::expr::{put_expressions, Expr, NFTA_DATA_VALUE};
use self::wire::{
    attribute, attributes, c_string, error_code, messages, nft_type, Failure, Message,
    NETLINK_CAP_ACK, NLMSG_DONE, NLMSG_ERROR, NLMSG_MIN_TYPE, NLM_F_ACK, NLM_F_APPEND,
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use crate::error::{Error, Result, Step};
use crate::netns::NetNs;
use crate::RawSocket;

pub use self::guard::{guard_chain_name, AllowPort, ForgetPort, Guard, GuardedPort};
pub use self::masquerade::{AddMasquerade, Masquerade, RemoveMasquerade};
pub use self::ports::{Hairpin, Ports, Protocol, Publication, Publish, Unpublish};

// <linux/netfilter.h>
const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;
const NFPROTO_NETDEV: u8 = 5;

// <linux/netfilter/nf_tables.h>
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;
/// `NF_NETDEV_INGRESS`.
const NF_NETDEV_INGRESS: u32 = 0;
const NF_DROP: u32 = 0;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFT_SET_MAP: u32 = 0x8;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_LIST_ELEM: u16 = 1;
const NF_ACCEPT: u32 = 1;

// libnftnl's user data TLVs, so that `nft list` shows our tags as comments
// and prints set elements in their byte order.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
const NFTNL_UDATA_SET_KEYBYTEORDER: u8 = 0;
const NFTNL_UDATA_SET_DATABYTEORDER: u8 = 1;
/// nft's `enum byteorder`: what nft writes for a concatenation and for an
/// address or port.
const BYTEORDER_INVALID: u32 = 0;
const BYTEORDER_BIG_ENDIAN: u32 = 2;

/// How long one answer from the kernel may take.
const RECV_TIMEOUT_SECS: libc::time_t = 5;
const RECV_BUF: usize = 64 * 1024;

/// nft's data types (`enum datatypes` of nftables), for set keys and values;
/// a concatenation is the types shifted in 6 bits at a time.
mod datatype {
    pub const IPADDR: u32 = 7;
    pub const IP6ADDR: u32 = 8;
    pub const INET_PROTOCOL: u32 = 12;
    pub const INET_SERVICE: u32 = 13;

    /// The type of the concatenation of `types`, and its length in the
    /// register file: each field rounded up to 4 bytes.
    pub fn concat(types: &[(u32, u32)]) -> (u32, u32) {
        types.iter().fold((0, 0), |(t, len), &(kind, size)| {
            ((t << 6) | kind, len + size.div_ceil(4) * 4)
        })
    }
}

/// The family of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Inet,
    Netdev,
}

impl Family {
    fn nfproto(self) -> u8 {
        match self {
            Family::Inet => NFPROTO_INET,
            Family::Netdev => NFPROTO_NETDEV,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Netdev => "netdev",
        }
    }
}

/// A named set or map as it is created.
struct SetSpec {
    name: &'static str,
    /// Fields of the key: (nft datatype, length in bytes).
    key: &'static [(u32, u32)],
    /// Fields of a map's value; empty for a plain set.
    data: &'static [(u32, u32)],
}

/// An nf_tables session: a `NETLINK_NETFILTER` socket in one network
/// namespace.
///
/// Calls are synchronous, each one or a few request/response exchanges. The
/// session is `Send` but not `Sync`: use it from one thread at a time.
/// Needs CAP_NET_ADMIN in the namespace the socket belongs to.
#[derive(Debug)]
pub struct Nftables {
    sock: RawSocket,
    seq: Cell<u32>,
}

impl Nftables {
    /// Opens a session in the calling thread's network namespace.
    pub fn open() -> Result<Nftables> {
        let sock = RawSocket::new(NETLINK_NETFILTER)
            .map_err(|e| Error::os(Step::OpenSocket, "NETLINK_NETFILTER", e))?;
        Nftables::from_socket(sock)
    }

    /// Opens a session inside `ns` (entering it just long enough to create
    /// the socket; needs CAP_SYS_ADMIN for that).
    pub fn open_in(ns: &NetNs) -> Result<Nftables> {
        let sock = ns
            .enter(|| RawSocket::new(NETLINK_NETFILTER))?
            .map_err(|e| Error::os(Step::OpenSocket, "NETLINK_NETFILTER in target namespace", e))?;
        Nftables::from_socket(sock)
    }

    /// Wraps a socket opened earlier, for instance in another namespace or
    /// before privileges were dropped. It must be a `NETLINK_NETFILTER`
    /// socket; a receive timeout is set on it and acknowledgements are
    /// capped to the header of the failed message.
    pub fn from_socket(sock: RawSocket) -> Result<Nftables> {
        let fd = sock.as_raw_fd();
        let mut protocol: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_PROTOCOL writes one int through the pointer.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PROTOCOL,
                (&mut protocol as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(Error::os(
                Step::OpenSocket,
                "NETLINK_NETFILTER",
                io::Error::last_os_error(),
            ));
        }
        if protocol as isize != NETLINK_NETFILTER {
            return Err(Error::os(
                Step::OpenSocket,
                "NETLINK_NETFILTER",
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the socket speaks netlink protocol {protocol}, not NETLINK_NETFILTER"),
                ),
            ));
        }
        let timeout = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: SO_RCVTIMEO reads one timeval.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(Error::os(
                Step::OpenSocket,
                "NETLINK_NETFILTER",
                io::Error::last_os_error(),
            ));
        }
        let one: libc::c_int = 1;
        // SAFETY: NETLINK_CAP_ACK reads one int. Failure only means longer
        // acknowledgements, which are parsed the same way.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_NETLINK,
                NETLINK_CAP_ACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        // Start sequence numbers somewhere that stale answers queued on a
        // reused socket are unlikely to match.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        Ok(Nftables {
            sock,
            seq: Cell::new(start),
        })
    }

    /// Masquerading in table `inet <table>`.
    pub fn masquerade<'a>(&'a self, table: &'a str) -> Masquerade<'a> {
        Masquerade { nft: self, table }
    }

    /// Published ports in table `inet <table>`.
    pub fn ports<'a>(&'a self, table: &'a str) -> Ports<'a> {
        Ports { nft: self, table }
    }

    /// The guard of containers' host ends in table `netdev <table>`.
    pub fn guard<'a>(&'a self, table: &'a str) -> Guard<'a> {
        Guard { nft: self, table }
    }

    /// Whether chain `name` exists in table `<family> <table>`.
    fn chain_exists(&self, family: Family, table: &str, name: &str) -> Result<bool> {
        let seq = self.next_seq();
        let mut msg = Message::new(
            nft_type(NFT_MSG_GETCHAIN),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            family.nfproto(),
            0,
        );
        msg.attrs().string(NFTA_CHAIN_TABLE, table);
        msg.attrs().string(NFTA_CHAIN_NAME, name);
        match self.exchange(&msg.finish(), seq) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ENOENT) => Ok(false),
            Err(f) => Err(f.into_error(
                Step::NftLookUp,
                format!("chain {} {table} {name}", family.name()),
            )),
        }
    }

    /// Whether set (or map) `name` exists in table `<family> <table>`.
    fn set_exists(&self, family: Family, table: &str, name: &str) -> Result<bool> {
        let seq = self.next_seq();
        let mut msg = Message::new(
            nft_type(NFT_MSG_GETSET),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            family.nfproto(),
            0,
        );
        msg.attrs().string(NFTA_SET_TABLE, table);
        msg.attrs().string(NFTA_SET_NAME, name);
        match self.exchange(&msg.finish(), seq) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ENOENT) => Ok(false),
            Err(f) => Err(f.into_error(
                Step::NftLookUp,
                format!("set {} {table} {name}", family.name()),
            )),
        }
    }

    /// One element of set `<family> <table> <set>` by its key
    /// (`NFT_MSG_GETSETELEM`): `None` when absent, else the value it maps
    /// to (empty for a plain set).
    fn element(
        &self,
        family: Family,
        table: &str,
        set: &str,
        key: &[u8],
        object: &str,
    ) -> Result<Option<Vec<u8>>> {
        let seq = self.next_seq();
        let mut msg = Message::new(
            nft_type(NFT_MSG_GETSETELEM),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            family.nfproto(),
            0,
        );
        put_elements(&mut msg.attrs(), table, set, &[(key, None)]);
        let replies = match self.exchange(&msg.finish(), seq) {
            Ok(replies) => replies,
            Err(f) if f.errno() == Some(libc::ENOENT) => return Ok(None),
            Err(f) => return Err(f.into_error(Step::NftLookUp, object)),
        };
        let malformed = || {
            Failure::malformed("an element answer without the element")
                .into_error(Step::NftLookUp, object)
        };
        let body = replies.first().ok_or_else(malformed)?;
        let elements = attribute(body, NFTA_SET_ELEM_LIST_ELEMENTS).ok_or_else(malformed)?;
        let element = attribute(elements, NFTA_LIST_ELEM).ok_or_else(malformed)?;
        Ok(Some(
            attribute(element, NFTA_SET_ELEM_DATA)
                .and_then(|data| attribute(data, NFTA_DATA_VALUE))
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
        ))
    }

    /// The rules of chain `<family> <table> <chain>`, empty if there is no
    /// such chain.
    fn rules(&self, family: Family, table: &str, chain: &str) -> Result<Vec<RuleInfo>> {
        let seq = self.next_seq();
        let mut msg = Message::new(
            nft_type(NFT_MSG_GETRULE),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            family.nfproto(),
            0,
        );
        msg.attrs().string(NFTA_RULE_TABLE, table);
        msg.attrs().string(NFTA_RULE_CHAIN, chain);
        let replies = match self.exchange(&msg.finish(), seq) {
            Ok(replies) => replies,
            Err(f) if f.errno() == Some(libc::ENOENT) => return Ok(Vec::new()),
            Err(f) => {
                return Err(f.into_error(
                    Step::NftLookUp,
                    format!("rules of chain {} {table} {chain}", family.name()),
                ))
            }
        };
        let mut rules = Vec::new();
        for body in replies {
            let mut rule = RuleInfo {
                table: String::new(),
                chain: String::new(),
                handle: 0,
                userdata: Vec::new(),
            };
            for (kind, value) in attributes(&body) {
                match kind {
                    NFTA_RULE_TABLE => rule.table = c_string(value),
                    NFTA_RULE_CHAIN => rule.chain = c_string(value),
                    NFTA_RULE_HANDLE if value.len() == 8 => {
                        rule.handle = u64::from_be_bytes(value.try_into().expect("8 bytes"))
                    }
                    NFTA_RULE_USERDATA => rule.userdata = value.to_vec(),
                    _ => {}
                }
            }
            // The kernel filters the dump by table and chain; check anyway.
            if rule.table == table && rule.chain == chain {
                rules.push(rule);
            }
        }
        Ok(rules)
    }

    fn next_seq(&self) -> u32 {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        seq
    }

    fn send(&self, buf: &[u8]) -> std::result::Result<(), Failure> {
        let sent = self.sock.send(buf, 0).map_err(Failure::Socket)?;
        if sent != buf.len() {
            return Err(Failure::malformed("the kernel took a partial message"));
        }
        Ok(())
    }

    /// Reads one datagram; `None` when `dontwait` and nothing is queued.
    fn recv(&self, dontwait: bool) -> std::result::Result<Option<Vec<u8>>, Failure> {
        let flags = libc::MSG_TRUNC | if dontwait { libc::MSG_DONTWAIT } else { 0 };
        loop {
            let mut buf = Vec::with_capacity(RECV_BUF);
            match self.sock.recv(&mut buf, flags) {
                Ok(n) if n > RECV_BUF => {
                    return Err(Failure::malformed("an answer did not fit the buffer"))
                }
                Ok(_) => return Ok(Some(buf)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && dontwait => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(Failure::Socket(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from nf_tables within {RECV_TIMEOUT_SECS} s"),
                    )))
                }
                Err(e) => return Err(Failure::Socket(e)),
            }
        }
    }

    /// Sends one request and collects the bodies (after `struct nfgenmsg`)
    /// of the messages that answer it, up to its acknowledgement, its error
    /// or the end of its dump.
    fn exchange(&self, msg: &[u8], seq: u32) -> std::result::Result<Vec<Vec<u8>>, Failure> {
        self.send(msg)?;
        let mut data = Vec::new();
        // Each datagram holds at least one message; a dump of one chain's
        // rules is far shorter than this bound.
        for _ in 0..100_000 {
            let buf = self.recv(false)?.unwrap_or_default();
            for reply in messages(&buf)? {
                if reply.seq != seq {
                    continue;
                }
                match reply.kind {
                    NLMSG_ERROR => {
                        return match error_code(reply.body)? {
                            0 => Ok(data),
                            errno => Err(Failure::Kernel(errno)),
                        }
                    }
                    NLMSG_DONE => {
                        return match error_code(reply.body).unwrap_or(0) {
                            0 => Ok(data),
                            errno => Err(Failure::Kernel(errno)),
                        }
                    }
                    kind if kind < NLMSG_MIN_TYPE => {}
                    _ => data.push(reply.body.get(4..).unwrap_or_default().to_vec()),
                }
            }
        }
        Err(Failure::malformed("the answer never ended"))
    }
}

/// What a dump says about one rule.
struct RuleInfo {
    table: String,
    chain: String,
    handle: u64,
    userdata: Vec<u8>,
}

/// `NFTA_SET_ELEM_LIST_*` for `elements` (key, and value for a map).
fn put_elements(
    a: &mut wire::Attrs<'_>,
    table: &str,
    set: &str,
    elements: &[(&[u8], Option<&[u8]>)],
) {
    a.string(NFTA_SET_ELEM_LIST_TABLE, table);
    a.string(NFTA_SET_ELEM_LIST_SET, set);
    a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |a| {
        for (key, data) in elements {
            a.nest(NFTA_LIST_ELEM, |a| {
                a.nest(NFTA_SET_ELEM_KEY, |a| a.bytes(NFTA_DATA_VALUE, key));
                if let Some(data) = data {
                    a.nest(NFTA_SET_ELEM_DATA, |a| a.bytes(NFTA_DATA_VALUE, data));
                }
            });
        }
    });
}

/// The object-level messages of a batch.
impl Batch<'_> {
    /// `add table <family> <table>` (no error if it exists).
    fn table(&mut self, family: Family, table: &str) {
        self.add(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            Step::NftCreate,
            format!("table {} {table}", family.name()),
            false,
            |a| a.string(NFTA_TABLE_NAME, table),
        );
    }

    /// A base chain with policy accept. It may exist as exactly that; any
    /// other chain of that name is an error.
    fn base_chain(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
        kind: &str,
        hook: u32,
        priority: i32,
    ) {
        self.add(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            Step::NftCreate,
            format!("chain {} {table} {name}", family.name()),
            false,
            |a| {
                a.string(NFTA_CHAIN_TABLE, table);
                a.string(NFTA_CHAIN_NAME, name);
                a.nest(NFTA_CHAIN_HOOK, |a| {
                    a.be32(NFTA_HOOK_HOOKNUM, hook);
                    a.be32(NFTA_HOOK_PRIORITY, priority as u32);
                });
                a.be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
                a.string(NFTA_CHAIN_TYPE, kind);
            },
        );
    }

    /// Base chain `name` on the ingress hook of device `device` (`netdev`
    /// family), with policy drop. It may exist as exactly that (the kernel
    /// then updates nothing but the policy).
    fn ingress_chain(&mut self, table: &str, name: &str, device: &str, priority: i32) {
        let family = Family::Netdev;
        self.add(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            Step::NftCreate,
            format!("chain {} {table} {name}", family.name()),
            false,
            |a| {
                a.string(NFTA_CHAIN_TABLE, table);
                a.string(NFTA_CHAIN_NAME, name);
                a.nest(NFTA_CHAIN_HOOK, |a| {
                    a.be32(NFTA_HOOK_HOOKNUM, NF_NETDEV_INGRESS);
                    a.be32(NFTA_HOOK_PRIORITY, priority as u32);
                    a.string(NFTA_HOOK_DEV, device);
                });
                a.be32(NFTA_CHAIN_POLICY, NF_DROP);
                a.string(NFTA_CHAIN_TYPE, "filter");
            },
        );
    }

    /// Deletes every rule of `chain` (`NFT_MSG_DELRULE` without a handle).
    fn flush_chain(&mut self, family: Family, table: &str, chain: &str) {
        self.add(
            NFT_MSG_DELRULE,
            0,
            Step::NftDelete,
            format!("rules of chain {} {table} {chain}", family.name()),
            false,
            |a| {
                a.string(NFTA_RULE_TABLE, table);
                a.string(NFTA_RULE_CHAIN, chain);
            },
        );
    }

    /// A regular chain that must not exist yet: if it appeared meanwhile,
    /// someone else is creating the same structure, and the state is read
    /// again.
    fn new_chain(&mut self, family: Family, table: &str, name: &str) {
        self.add(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE | NLM_F_EXCL,
            Step::NftCreate,
            format!("chain {} {table} {name}", family.name()),
            true,
            |a| {
                a.string(NFTA_CHAIN_TABLE, table);
                a.string(NFTA_CHAIN_NAME, name);
            },
        );
    }

    /// Appends a rule to `chain`, with `tag` (a comment) if given.
    fn rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        exprs: &[Expr],
        tag: Option<&[u8]>,
        what: &str,
    ) {
        self.add(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            Step::NftAddRule,
            format!("{what} in chain {} {table} {chain}", family.name()),
            false,
            |a| {
                a.string(NFTA_RULE_TABLE, table);
                a.string(NFTA_RULE_CHAIN, chain);
                put_expressions(a, exprs);
                if let Some(tag) = tag {
                    a.bytes(NFTA_RULE_USERDATA, tag);
                }
            },
        );
    }

    /// Deletes rule `handle` of `chain`.
    fn delete_rule(&mut self, family: Family, table: &str, chain: &str, handle: u64, what: &str) {
        self.add(
            NFT_MSG_DELRULE,
            0,
            Step::NftDelete,
            format!(
                "rule {handle} ({what}) in chain {} {table} {chain}",
                family.name()
            ),
            true,
            |a| {
                a.string(NFTA_RULE_TABLE, table);
                a.string(NFTA_RULE_CHAIN, chain);
                a.be64(NFTA_RULE_HANDLE, handle);
            },
        );
    }

    /// Deletes chain `name` (and its rules).
    fn delete_chain(&mut self, family: Family, table: &str, name: &str) {
        self.add(
            NFT_MSG_DELCHAIN,
            0,
            Step::NftDelete,
            format!("chain {} {table} {name}", family.name()),
            true,
            |a| {
                a.string(NFTA_CHAIN_TABLE, table);
                a.string(NFTA_CHAIN_NAME, name);
            },
        );
    }

    /// A hash set (or map) that must not exist yet (see
    /// [`new_chain`](Self::new_chain)).
    fn new_set(&mut self, family: Family, table: &str, spec: &SetSpec) {
        let (key_type, key_len) = datatype::concat(spec.key);
        let (data_type, data_len) = datatype::concat(spec.data);
        let kind = if spec.data.is_empty() { "set" } else { "map" };
        // The kernel wants an ID unique in the batch, by which later
        // messages of the batch could name the set.
        let id = self.next_set_id();
        self.add(
            NFT_MSG_NEWSET,
            NLM_F_CREATE | NLM_F_EXCL,
            Step::NftCreate,
            format!("{kind} {} {table} {}", family.name(), spec.name),
            true,
            |a| {
                a.string(NFTA_SET_TABLE, table);
                a.string(NFTA_SET_NAME, spec.name);
                a.be32(
                    NFTA_SET_FLAGS,
                    if spec.data.is_empty() { 0 } else { NFT_SET_MAP },
                );
                a.be32(NFTA_SET_KEY_TYPE, key_type);
                a.be32(NFTA_SET_KEY_LEN, key_len);
                if !spec.data.is_empty() {
                    a.be32(NFTA_SET_DATA_TYPE, data_type);
                    a.be32(NFTA_SET_DATA_LEN, data_len);
                }
                a.be32(NFTA_SET_ID, id);
                a.bytes(NFTA_SET_USERDATA, &set_userdata(spec));
            },
        );
    }

    /// Adds (`NFT_MSG_NEWSETELEM`, `flags` such as `NLM_F_EXCL`) or deletes
    /// (`NFT_MSG_DELSETELEM`) one element.
    #[allow(clippy::too_many_arguments)]
    fn element(
        &mut self,
        delete: bool,
        flags: u16,
        table: &str,
        set: &str,
        key: &[u8],
        data: Option<&[u8]>,
        object: String,
    ) {
        let (msg, step) = if delete {
            (NFT_MSG_DELSETELEM, Step::NftDeleteElement)
        } else {
            (NFT_MSG_NEWSETELEM, Step::NftAddElement)
        };
        self.add(msg, flags, step, object, false, |a| {
            put_elements(a, table, set, &[(key, data)])
        });
    }
}

/// A set's user data as nft writes it: the byte order of the key (and
/// value), which nft needs to print the elements, and for a `typeof` key
/// its expressions.
fn set_userdata(spec: &SetSpec) -> Vec<u8> {
    let order = |fields: &[(u32, u32)]| match fields {
        [_] => BYTEORDER_BIG_ENDIAN,
        _ => BYTEORDER_INVALID,
    };
    let mut out = Vec::new();
    out.extend_from_slice(&[NFTNL_UDATA_SET_KEYBYTEORDER, 4]);
    out.extend_from_slice(&order(spec.key).to_ne_bytes());
    if !spec.data.is_empty() {
        out.extend_from_slice(&[NFTNL_UDATA_SET_DATABYTEORDER, 4]);
        out.extend_from_slice(&order(spec.data).to_ne_bytes());
    }
    out
}

/// Table names this module accepts: short, and plain enough to type into
/// `nft` unquoted.
fn check_table(table: &str) -> Result<()> {
    let ok = (1..=64).contains(&table.len())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTableName(table.to_string()))
    }
}

/// A rule comment in libnftnl's user data encoding.
fn user_comment(text: &str) -> Vec<u8> {
    let mut out = vec![NFTNL_UDATA_RULE_COMMENT, (text.len() + 1) as u8];
    out.extend_from_slice(text.as_bytes());
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(check_table("netsetgo").is_ok());
        assert!(check_table("").is_err());
        assert!(check_table("a b").is_err());
        assert!(check_table(&"x".repeat(65)).is_err());
    }

    #[test]
    fn concatenations_round_fields_to_four_bytes() {
        use datatype::*;
        // What nft sends for `type inet_proto . inet_service : ipv6_addr . inet_service`.
        assert_eq!(concat(&[(INET_PROTOCOL, 1), (INET_SERVICE, 2)]), (0x30d, 8));
        assert_eq!(concat(&[(IP6ADDR, 16), (INET_SERVICE, 2)]), (0x20d, 20));
        assert_eq!(concat(&[(IPADDR, 4)]), (7, 4));
    }
}
