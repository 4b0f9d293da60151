//! The session: a `NETLINK_NETFILTER` socket, its request/answer
//! exchanges, and the look-ups that read nf_tables state (a chain, a set,
//! a set element, a chain's rules, the ruleset generation).

use std::cell::Cell;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{SystemTime, UNIX_EPOCH};

use rtnetlink::sys::protocols::NETLINK_NETFILTER;

use super::expr::{NFTA_DATA_VALUE, NFTA_RULE_EXPRESSIONS};
use super::proto::{
    put_elements, Family, NFPROTO_UNSPEC, NFTA_CHAIN_NAME, NFTA_CHAIN_TABLE, NFTA_GEN_ID,
    NFTA_LIST_ELEM, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_TABLE, NFTA_RULE_USERDATA,
    NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_NAME, NFTA_SET_TABLE, NFTA_TABLE_NAME, NFT_MSG_GETCHAIN,
    NFT_MSG_GETGEN, NFT_MSG_GETRULE, NFT_MSG_GETSET, NFT_MSG_GETSETELEM, NFT_MSG_GETTABLE,
};
use super::wire::{
    attribute, attributes, c_string, error_code, messages, nft_type, Failure, Message,
    NETLINK_CAP_ACK, NLMSG_DONE, NLMSG_ERROR, NLMSG_MIN_TYPE, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use crate::error::{Error, Result, Step};
use crate::netns::NetNs;
use crate::RawSocket;

/// How long one answer from the kernel may take.
const RECV_TIMEOUT_SECS: libc::time_t = 5;
const RECV_BUF: usize = 64 * 1024;

/// Whether a read waits for a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Up to the receive timeout; no answer by then is an error.
    UpToTimeout,
    /// Takes only what is queued already.
    No,
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

    /// The names of every table of `family` (one dump).
    pub(super) fn tables(&self, family: Family) -> Result<Vec<String>> {
        let (seq, msg) = self.request(NFT_MSG_GETTABLE, NLM_F_DUMP, family.nfproto());
        let replies = self
            .exchange(&msg.finish(), seq)
            .map_err(|f| f.into_error(Step::NftLookUp, format!("tables {}", family.name())))?;
        Ok(replies
            .iter()
            .filter_map(|body| attribute(body, NFTA_TABLE_NAME))
            .map(c_string)
            .collect())
    }

    /// Whether chain `name` exists in table `<family> <table>`.
    pub(super) fn chain_exists(&self, family: Family, table: &str, name: &str) -> Result<bool> {
        let attrs = (NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME);
        self.exists(NFT_MSG_GETCHAIN, attrs, "chain", family, table, name)
    }

    /// Whether set (or map) `name` exists in table `<family> <table>`.
    pub(super) fn set_exists(&self, family: Family, table: &str, name: &str) -> Result<bool> {
        let attrs = (NFTA_SET_TABLE, NFTA_SET_NAME);
        self.exists(NFT_MSG_GETSET, attrs, "set", family, table, name)
    }

    /// Whether the `kind` object `name` of table `<family> <table>` exists:
    /// asks with `get`, naming the table and the object by `attrs`;
    /// `ENOENT` is no.
    fn exists(
        &self,
        get: u16,
        (table_attr, name_attr): (u16, u16),
        kind: &str,
        family: Family,
        table: &str,
        name: &str,
    ) -> Result<bool> {
        let (seq, mut msg) = self.request(get, NLM_F_ACK, family.nfproto());
        msg.attrs().string(table_attr, table);
        msg.attrs().string(name_attr, name);
        match self.exchange(&msg.finish(), seq) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ENOENT) => Ok(false),
            Err(f) => Err(f.into_error(
                Step::NftLookUp,
                format!("{kind} {} {table} {name}", family.name()),
            )),
        }
    }

    /// One element of set `<family> <table> <set>` by its key
    /// (`NFT_MSG_GETSETELEM`): `None` when absent, else the value it maps
    /// to (empty for a plain set).
    pub(super) fn element(
        &self,
        family: Family,
        table: &str,
        set: &str,
        key: &[u8],
        object: &str,
    ) -> Result<Option<Vec<u8>>> {
        let (seq, mut msg) = self.request(NFT_MSG_GETSETELEM, NLM_F_ACK, family.nfproto());
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

    /// Whether set `<family> <table> <set>` holds every one of `keys`: one
    /// `NFT_MSG_GETSETELEM` naming them all, which the kernel answers
    /// element by element and fails with `ENOENT` at the first it lacks.
    pub(super) fn has_elements(
        &self,
        family: Family,
        table: &str,
        set: &str,
        keys: &[Vec<u8>],
        object: &str,
    ) -> Result<bool> {
        let (seq, mut msg) = self.request(NFT_MSG_GETSETELEM, NLM_F_ACK, family.nfproto());
        let keys: Vec<_> = keys.iter().map(|k| (k.as_slice(), None)).collect();
        put_elements(&mut msg.attrs(), table, set, &keys);
        match self.exchange(&msg.finish(), seq) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ENOENT) => Ok(false),
            Err(f) => Err(f.into_error(Step::NftLookUp, object)),
        }
    }

    /// Every element of set `<family> <table> <set>` (one dump) as (key,
    /// value) pairs, the value empty for a plain set; none when there is no
    /// such set. Costs in proportion to the set's size: for collection, not
    /// for the per-call path.
    pub(super) fn elements(
        &self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let replies = self.dump(
            NFT_MSG_GETSETELEM,
            family,
            &[
                (NFTA_SET_ELEM_LIST_TABLE, table),
                (NFTA_SET_ELEM_LIST_SET, set),
            ],
            || format!("elements of set {} {table} {set}", family.name()),
        )?;
        let value = |element: &[u8], kind| {
            attribute(element, kind)
                .and_then(|v| attribute(v, NFTA_DATA_VALUE))
                .map(<[u8]>::to_vec)
        };
        let mut out = Vec::new();
        for body in &replies {
            let Some(list) = attribute(body, NFTA_SET_ELEM_LIST_ELEMENTS) else {
                continue;
            };
            for (kind, element) in attributes(list) {
                if kind != NFTA_LIST_ELEM {
                    continue;
                }
                if let Some(key) = value(element, NFTA_SET_ELEM_KEY) {
                    out.push((key, value(element, NFTA_SET_ELEM_DATA).unwrap_or_default()));
                }
            }
        }
        Ok(out)
    }

    /// The replies of a dump of message type `ty` (`NFT_MSG_GET...`) in
    /// `family` whose request names `names` (table, then set or chain):
    /// none when the kernel has no such object (`ENOENT`); any other error
    /// names `what` was looked up.
    fn dump(
        &self,
        ty: u16,
        family: Family,
        names: &[(u16, &str)],
        what: impl FnOnce() -> String,
    ) -> Result<Vec<Vec<u8>>> {
        let (seq, mut msg) = self.request(ty, NLM_F_DUMP, family.nfproto());
        for &(kind, name) in names {
            msg.attrs().string(kind, name);
        }
        match self.exchange(&msg.finish(), seq) {
            Ok(replies) => Ok(replies),
            Err(f) if f.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
            Err(f) => Err(f.into_error(Step::NftLookUp, what())),
        }
    }

    /// The rules of chain `<family> <table> <chain>`, empty if there is no
    /// such chain.
    pub(super) fn rules(&self, family: Family, table: &str, chain: &str) -> Result<Vec<RuleInfo>> {
        self.rules_of(family, table, Some(chain))
    }

    /// The rules of every chain of table `<family> <table>` (one dump),
    /// empty if there is no such table.
    pub(super) fn table_rules(&self, family: Family, table: &str) -> Result<Vec<RuleInfo>> {
        self.rules_of(family, table, None)
    }

    /// The rules of table `<family> <table>`, of `chain` only if given.
    fn rules_of(&self, family: Family, table: &str, chain: Option<&str>) -> Result<Vec<RuleInfo>> {
        let mut names = vec![(NFTA_RULE_TABLE, table)];
        names.extend(chain.map(|chain| (NFTA_RULE_CHAIN, chain)));
        let replies = self.dump(NFT_MSG_GETRULE, family, &names, || {
            let chain = chain.map_or(String::new(), |c| format!(" chain {c}"));
            format!("rules of table {} {table}{chain}", family.name())
        })?;
        let mut rules = Vec::new();
        for body in replies {
            let mut rule = RuleInfo {
                table: String::new(),
                chain: String::new(),
                handle: 0,
                userdata: Vec::new(),
                expressions: Vec::new(),
            };
            for (kind, value) in attributes(&body) {
                match kind {
                    NFTA_RULE_TABLE => rule.table = c_string(value),
                    NFTA_RULE_CHAIN => rule.chain = c_string(value),
                    NFTA_RULE_HANDLE if value.len() == 8 => {
                        rule.handle = u64::from_be_bytes(value.try_into().expect("8 bytes"))
                    }
                    NFTA_RULE_USERDATA => rule.userdata = value.to_vec(),
                    NFTA_RULE_EXPRESSIONS => rule.expressions = value.to_vec(),
                    _ => {}
                }
            }
            // The kernel filters the dump by table and chain; check anyway.
            if rule.table == table && chain.is_none_or(|c| rule.chain == c) {
                rules.push(rule);
            }
        }
        Ok(rules)
    }

    /// The current ruleset generation (`NFT_MSG_GETGEN`).
    pub(super) fn generation(&self) -> Result<u32> {
        let object = "ruleset generation";
        let (seq, msg) = self.request(NFT_MSG_GETGEN, NLM_F_ACK, NFPROTO_UNSPEC);
        let replies = self
            .exchange(&msg.finish(), seq)
            .map_err(|f| f.into_error(Step::NftLookUp, object))?;
        replies
            .iter()
            .flat_map(|body| attributes(body))
            .find(|(kind, value)| *kind == NFTA_GEN_ID && value.len() == 4)
            .map(|(_, value)| u32::from_be_bytes([value[0], value[1], value[2], value[3]]))
            .ok_or_else(|| {
                Failure::malformed("no NFTA_GEN_ID in the answer")
                    .into_error(Step::NftLookUp, object)
            })
    }

    /// A request of nf_tables message type `msg` for `family`, with
    /// `flags` besides `NLM_F_REQUEST`, under the next sequence number.
    fn request(&self, msg: u16, flags: u16, family: u8) -> (u32, Message) {
        let seq = self.next_seq();
        (
            seq,
            Message::new(nft_type(msg), NLM_F_REQUEST | flags, seq, family, 0),
        )
    }

    pub(super) fn next_seq(&self) -> u32 {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        seq
    }

    pub(super) fn send(&self, buf: &[u8]) -> std::result::Result<(), Failure> {
        let sent = self.sock.send(buf, 0).map_err(Failure::Socket)?;
        if sent != buf.len() {
            return Err(Failure::malformed("the kernel took a partial message"));
        }
        Ok(())
    }

    /// Reads one datagram; `None` when told not to wait and nothing is
    /// queued.
    pub(super) fn recv(&self, wait: Wait) -> std::result::Result<Option<Vec<u8>>, Failure> {
        let dontwait = wait == Wait::No;
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
    pub(super) fn exchange(
        &self,
        msg: &[u8],
        seq: u32,
    ) -> std::result::Result<Vec<Vec<u8>>, Failure> {
        self.send(msg)?;
        let mut data = Vec::new();
        // Each datagram holds at least one message; a dump of one chain's
        // rules is far shorter than this bound.
        for _ in 0..100_000 {
            let buf = self.recv(Wait::UpToTimeout)?.unwrap_or_default();
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
pub(super) struct RuleInfo {
    pub(super) table: String,
    pub(super) chain: String,
    pub(super) handle: u64,
    pub(super) userdata: Vec<u8>,
    /// Its `NFTA_RULE_EXPRESSIONS`, as the kernel dumps them
    /// ([`payload_comparisons`](super::expr::payload_comparisons) reads them).
    pub(super) expressions: Vec<u8>,
}
