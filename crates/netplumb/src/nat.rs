//! Masquerading with nf_tables, spoken in-process over `NETLINK_NETFILTER`.
//!
//! No `nft` or `iptables` binary is run: the messages of
//! `<linux/netfilter/nfnetlink.h>` and `<linux/netfilter/nf_tables.h>` are
//! built here by hand and exchanged with the kernel on a plain netlink
//! socket, one request (or one atomic batch) at a time.
//!
//! What [`Nftables::ensure_masquerade`] maintains, and nothing else:
//!
//! ```text
//! table inet <table> {
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         jump net-<bridge> comment "netplumb network <bridge>"
//!     }
//!     chain net-<bridge> {
//!         ip saddr <subnet> oifname != "<bridge>" masquerade comment "netplumb masquerade <subnet>"
//!         ip6 saddr <subnet6> oifname != "<bridge>" masquerade comment "netplumb masquerade <subnet6>"
//!     }
//! }
//! ```
//!
//! Rules are recognised by their comment (rule user data), which this module
//! writes and compares byte for byte. Every change is one nf_tables batch
//! carrying the ruleset generation that was current when the state was read
//! (`NFNL_BATCH_GENID`): if anything changed the ruleset in between, the
//! kernel refuses the whole batch with `ERESTART` and the state is read
//! again. So concurrent callers never add a rule twice, and a failed call
//! changes nothing. Other tables, and the legacy iptables tables, are never
//! read or written.

use std::cell::Cell;
use std::collections::HashSet;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnetwork::IpNetwork;
use rtnetlink::sys::protocols::NETLINK_NETFILTER;

use crate::error::{Error, NetlinkError, Result, Step};
use crate::links::check_name;
use crate::netns::NetNs;
use crate::RawSocket;

// <linux/netlink.h>
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_MIN_TYPE: u16 = 0x10;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NETLINK_CAP_ACK: libc::c_int = 10;

// <linux/netfilter/nfnetlink.h>
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = NLMSG_MIN_TYPE;
const NFNL_MSG_BATCH_END: u16 = NLMSG_MIN_TYPE + 1;
const NFNL_BATCH_GENID: u16 = 1;
const NFNETLINK_V0: u8 = 0;

// <linux/netfilter.h>
const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NF_INET_POST_ROUTING: u32 = 4;
/// `NF_IP_PRI_NAT_SRC`, what nft calls `srcnat`.
const PRIORITY_SRCNAT: i32 = 100;

// <linux/netfilter/nf_tables.h>
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_GETGEN: u16 = 16;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_GEN_ID: u16 = 1;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_NFPROTO: u32 = 15;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_JUMP: i32 = -3;
const IFNAMSIZ: usize = 16;

// libnftnl's user data TLV, so that `nft list` shows our tags as comments.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;

/// The base chain every network's jump rule lives in.
const POSTROUTING: &str = "postrouting";
/// How often a batch is rebuilt when the ruleset changed under it.
const ATTEMPTS: usize = 16;
/// How long one answer from the kernel may take.
const RECV_TIMEOUT_SECS: libc::time_t = 5;
const RECV_BUF: usize = 64 * 1024;

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

    /// The regular chain that holds the rules of the network on `bridge`:
    /// `net-<bridge>`.
    pub fn network_chain(bridge: &str) -> String {
        format!("net-{bridge}")
    }

    /// Makes sure traffic from `subnet` that leaves through any interface
    /// but `bridge` is masqueraded, in table `inet <table>`. Returns `true`
    /// when it changed the ruleset, `false` when everything was in place.
    ///
    /// Creates, as needed and in one atomic batch: the table; its base chain
    /// `postrouting` (type nat, hook postrouting, priority 100 = srcnat,
    /// policy accept); the regular chain [`net-<bridge>`](Self::network_chain)
    /// with one `jump` to it from `postrouting`; and in it one rule
    /// `ip saddr <subnet> oifname != "<bridge>" masquerade` (`ip6 saddr` for
    /// an IPv6 subnet). Host bits of `subnet` are ignored. Call it once per
    /// subnet of a bridge (IPv4 and IPv6) and for as many bridges as needed;
    /// repeated calls, also concurrent ones, never add a second copy.
    ///
    /// An existing `postrouting` chain in that table that is not the base
    /// chain described above is an error ([`Step::NftCreate`] with the
    /// kernel's `EEXIST` or `EOPNOTSUPP`); nothing is changed then.
    pub fn ensure_masquerade(&self, table: &str, bridge: &str, subnet: IpNetwork) -> Result<bool> {
        check_table(table)?;
        check_name(bridge)?;
        let subnet = IpNetwork::new(subnet.network(), subnet.prefix())
            .expect("the network address of a valid prefix is valid");
        let chain = Nftables::network_chain(bridge);
        let masq_tag = user_comment(&format!("netplumb masquerade {subnet}"));
        let jump_tag = user_comment(&format!("netplumb network {bridge}"));

        self.transact(table, |genid| {
            let have_chain = self.chain_exists(table, &chain)?;
            let have_masq = have_chain
                && self
                    .rules(table, &chain)?
                    .iter()
                    .any(|r| r.userdata == masq_tag);
            let have_jump = have_chain
                && self
                    .rules(table, POSTROUTING)?
                    .iter()
                    .any(|r| r.userdata == jump_tag);
            if have_masq && have_jump {
                return Ok(None);
            }

            let mut batch = Batch::new(self, genid, format!("on table inet {table}"));
            batch.add(
                NFT_MSG_NEWTABLE,
                NLM_F_CREATE,
                Step::NftCreate,
                format!("table inet {table}"),
                false,
                |a| a.string(NFTA_TABLE_NAME, table),
            );
            batch.add(
                NFT_MSG_NEWCHAIN,
                NLM_F_CREATE,
                Step::NftCreate,
                format!("chain inet {table} {POSTROUTING}"),
                false,
                |a| {
                    a.string(NFTA_CHAIN_TABLE, table);
                    a.string(NFTA_CHAIN_NAME, POSTROUTING);
                    a.nest(NFTA_CHAIN_HOOK, |a| {
                        a.be32(NFTA_HOOK_HOOKNUM, NF_INET_POST_ROUTING);
                        a.be32(NFTA_HOOK_PRIORITY, PRIORITY_SRCNAT as u32);
                    });
                    a.string(NFTA_CHAIN_TYPE, "nat");
                },
            );
            if !have_chain {
                // EXCL: if it appeared meanwhile, someone else is creating
                // this network's rules; look again.
                batch.add(
                    NFT_MSG_NEWCHAIN,
                    NLM_F_CREATE | NLM_F_EXCL,
                    Step::NftCreate,
                    format!("chain inet {table} {chain}"),
                    true,
                    |a| {
                        a.string(NFTA_CHAIN_TABLE, table);
                        a.string(NFTA_CHAIN_NAME, &chain);
                    },
                );
            }
            if !have_masq {
                let exprs = masquerade(subnet, bridge);
                batch.add(
                    NFT_MSG_NEWRULE,
                    NLM_F_CREATE | NLM_F_APPEND,
                    Step::NftAddRule,
                    format!("masquerade {subnet} in chain inet {table} {chain}"),
                    false,
                    |a| {
                        a.string(NFTA_RULE_TABLE, table);
                        a.string(NFTA_RULE_CHAIN, &chain);
                        put_expressions(a, &exprs);
                        a.bytes(NFTA_RULE_USERDATA, &masq_tag);
                    },
                );
            }
            if !have_jump {
                let exprs = [Expr::Jump(chain.clone())];
                batch.add(
                    NFT_MSG_NEWRULE,
                    NLM_F_CREATE | NLM_F_APPEND,
                    Step::NftAddRule,
                    format!("jump {chain} in chain inet {table} {POSTROUTING}"),
                    false,
                    |a| {
                        a.string(NFTA_RULE_TABLE, table);
                        a.string(NFTA_RULE_CHAIN, POSTROUTING);
                        put_expressions(a, &exprs);
                        a.bytes(NFTA_RULE_USERDATA, &jump_tag);
                    },
                );
            }
            Ok(Some(batch))
        })
    }

    /// Deletes what [`ensure_masquerade`](Self::ensure_masquerade) made for
    /// `bridge` in table `inet <table>`: the jump rule(s) in `postrouting`
    /// and the chain `net-<bridge>` with its rules, in one batch. The table
    /// and `postrouting` stay. Returns `true` when something was deleted.
    pub fn remove_network(&self, table: &str, bridge: &str) -> Result<bool> {
        check_table(table)?;
        check_name(bridge)?;
        let chain = Nftables::network_chain(bridge);
        let jump_tag = user_comment(&format!("netplumb network {bridge}"));

        self.transact(table, |genid| {
            let have_chain = self.chain_exists(table, &chain)?;
            let jumps: Vec<u64> = self
                .rules(table, POSTROUTING)?
                .into_iter()
                .filter(|r| r.userdata == jump_tag)
                .map(|r| r.handle)
                .collect();
            if !have_chain && jumps.is_empty() {
                return Ok(None);
            }
            let mut batch = Batch::new(self, genid, format!("on table inet {table}"));
            for handle in jumps {
                batch.add(
                    NFT_MSG_DELRULE,
                    0,
                    Step::NftDelete,
                    format!("rule {handle} (jump {chain}) in chain inet {table} {POSTROUTING}"),
                    true,
                    |a| {
                        a.string(NFTA_RULE_TABLE, table);
                        a.string(NFTA_RULE_CHAIN, POSTROUTING);
                        a.be64(NFTA_RULE_HANDLE, handle);
                    },
                );
            }
            if have_chain {
                batch.add(
                    NFT_MSG_DELCHAIN,
                    0,
                    Step::NftDelete,
                    format!("chain inet {table} {chain}"),
                    true,
                    |a| {
                        a.string(NFTA_CHAIN_TABLE, table);
                        a.string(NFTA_CHAIN_NAME, &chain);
                    },
                );
            }
            Ok(Some(batch))
        })
    }

    /// Reads the ruleset generation and lets `plan` build a batch from the
    /// state it reads; commits it tied to that generation. If the ruleset
    /// changed in between, the kernel refuses the batch and we start over,
    /// at most ATTEMPTS times. Returns whether a batch was committed.
    fn transact<'s>(
        &'s self,
        table: &str,
        mut plan: impl FnMut(u32) -> Result<Option<Batch<'s>>>,
    ) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let Some(batch) = plan(self.generation()?)? else {
                return Ok(false);
            };
            match batch.commit() {
                Ok(()) => return Ok(true),
                Err(f) if f.retry => continue,
                Err(f) => return Err(f.error),
            }
        }
        Err(kernel_error(
            Step::NftCommit,
            format!("on table inet {table}: the ruleset kept changing"),
            libc::ERESTART,
        ))
    }

    /// The current ruleset generation (`NFT_MSG_GETGEN`).
    fn generation(&self) -> Result<u32> {
        let object = "ruleset generation";
        let seq = self.next_seq();
        let msg = Message::new(
            nft_type(NFT_MSG_GETGEN),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            NFPROTO_UNSPEC,
            0,
        );
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

    /// Whether chain `name` exists in table `inet <table>`.
    fn chain_exists(&self, table: &str, name: &str) -> Result<bool> {
        let seq = self.next_seq();
        let mut msg = Message::new(
            nft_type(NFT_MSG_GETCHAIN),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            NFPROTO_INET,
            0,
        );
        msg.attrs().string(NFTA_CHAIN_TABLE, table);
        msg.attrs().string(NFTA_CHAIN_NAME, name);
        match self.exchange(&msg.finish(), seq) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ENOENT) => Ok(false),
            Err(f) => Err(f.into_error(Step::NftLookUp, format!("chain inet {table} {name}"))),
        }
    }

    /// The rules of chain `inet <table> <chain>`, empty if there is no such
    /// chain.
    fn rules(&self, table: &str, chain: &str) -> Result<Vec<RuleInfo>> {
        let seq = self.next_seq();
        let mut msg = Message::new(
            nft_type(NFT_MSG_GETRULE),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            NFPROTO_INET,
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
                    format!("rules of chain inet {table} {chain}"),
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

/// One nf_tables batch under construction.
struct Batch<'a> {
    nft: &'a Nftables,
    buf: Vec<u8>,
    first: u32,
    what: String,
    parts: Vec<Part>,
}

/// A message of a batch, with what to say when the kernel refuses it.
struct Part {
    seq: u32,
    step: Step,
    object: String,
    /// `EEXIST`/`ENOENT` here means a concurrent caller got there first:
    /// read the state again rather than fail.
    racy: bool,
}

/// A refused batch.
struct BatchFailure {
    error: Error,
    /// Worth reading the state again and rebuilding the batch.
    retry: bool,
}

impl<'a> Batch<'a> {
    /// Starts a batch that the kernel applies only while the ruleset is
    /// still at generation `genid`.
    fn new(nft: &'a Nftables, genid: u32, what: String) -> Batch<'a> {
        let first = nft.next_seq();
        let mut begin = Message::new(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST | NLM_F_ACK,
            first,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        begin.attrs().be32(NFNL_BATCH_GENID, genid);
        Batch {
            nft,
            buf: begin.finish(),
            first,
            what,
            parts: Vec::new(),
        }
    }

    fn add(
        &mut self,
        msg: u16,
        flags: u16,
        step: Step,
        object: String,
        racy: bool,
        attrs: impl FnOnce(&mut Attrs<'_>),
    ) {
        let seq = self.nft.next_seq();
        let mut message = Message::new(
            nft_type(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            NFPROTO_INET,
            0,
        );
        attrs(&mut message.attrs());
        self.buf.extend_from_slice(&message.finish());
        self.parts.push(Part {
            seq,
            step,
            object,
            racy,
        });
    }

    /// Sends the batch and reads every answer to it. The kernel handles a
    /// batch while it is being sent, so all answers are queued by the time
    /// the first one can be read.
    fn commit(mut self) -> std::result::Result<(), BatchFailure> {
        let last = self.nft.next_seq();
        let end = Message::new(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST | NLM_F_ACK,
            last,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.buf.extend_from_slice(&end.finish());

        let whole = |f: Failure, what: &str| BatchFailure {
            error: f.into_error(Step::NftCommit, what),
            retry: false,
        };
        self.nft.send(&self.buf).map_err(|f| whole(f, &self.what))?;
        let mut datagrams = vec![self.nft.recv(false).map_err(|f| whole(f, &self.what))?];
        while let Some(buf) = self.nft.recv(true).map_err(|f| whole(f, &self.what))? {
            datagrams.push(Some(buf));
        }

        let mut acked = HashSet::new();
        let mut refused: Option<(u32, i32)> = None;
        for buf in datagrams.iter().flatten() {
            for reply in messages(buf).map_err(|f| whole(f, &self.what))? {
                let ours = if self.first <= last {
                    (self.first..=last).contains(&reply.seq)
                } else {
                    reply.seq >= self.first || reply.seq <= last
                };
                if reply.kind != NLMSG_ERROR || !ours {
                    continue;
                }
                match error_code(reply.body).map_err(|f| whole(f, &self.what))? {
                    0 => {
                        acked.insert(reply.seq);
                    }
                    errno => {
                        refused.get_or_insert((reply.seq, errno));
                    }
                }
            }
        }
        if let Some((seq, errno)) = refused {
            // ERESTART: the generation moved on since we looked. It refuses
            // the batch as a whole, but when the kernel replayed the batch
            // to load a module (nft_masq on first use), Debian's 6.1 answers
            // it on the message that needed the module.
            let moved = errno == libc::ERESTART;
            return Err(match self.parts.iter().find(|p| p.seq == seq) {
                Some(part) => BatchFailure {
                    error: kernel_error(part.step, part.object.clone(), errno),
                    retry: moved || part.racy && (errno == libc::EEXIST || errno == libc::ENOENT),
                },
                None => BatchFailure {
                    error: kernel_error(Step::NftCommit, self.what.clone(), errno),
                    retry: moved,
                },
            });
        }
        if self.parts.iter().all(|p| acked.contains(&p.seq)) {
            Ok(())
        } else {
            Err(whole(
                Failure::malformed("not every message of the batch was acknowledged"),
                &self.what,
            ))
        }
    }
}

/// How a single exchange failed.
enum Failure {
    /// The kernel answered with this errno.
    Kernel(i32),
    /// The socket failed, or the answer made no sense.
    Socket(io::Error),
}

impl Failure {
    fn malformed(what: &str) -> Failure {
        Failure::Socket(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("nf_tables: {what}"),
        ))
    }

    fn errno(&self) -> Option<i32> {
        match self {
            Failure::Kernel(errno) => Some(*errno),
            Failure::Socket(_) => None,
        }
    }

    fn into_error(self, step: Step, object: impl Into<String>) -> Error {
        match self {
            Failure::Kernel(errno) => kernel_error(step, object, errno),
            Failure::Socket(e) => Error::os(step, object, e),
        }
    }
}

fn kernel_error(step: Step, object: impl Into<String>, errno: i32) -> Error {
    Error::Netlink {
        step,
        object: object.into(),
        source: NetlinkError::Errno(io::Error::from_raw_os_error(errno)),
    }
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

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// The expressions this module writes; all but the jump work on register 1.
enum Expr {
    /// `meta load <key> => reg 1`
    Meta(u32),
    /// `cmp <op> reg 1 <data>`
    Cmp(u32, Vec<u8>),
    /// `payload load <len>b @ network header + <offset> => reg 1`
    Payload { offset: u32, len: u32 },
    /// `bitwise reg 1 = (reg 1 & <mask>) ^ 0`
    Mask(Vec<u8>),
    /// `masq`
    Masquerade,
    /// `immediate reg 0 jump -> <chain>`
    Jump(String),
}

/// `ip saddr <subnet> oifname != "<bridge>" masquerade` (or `ip6 saddr`),
/// encoded as nft itself would in an inet table.
fn masquerade(subnet: IpNetwork, bridge: &str) -> Vec<Expr> {
    let (nfproto, offset, addr) = match subnet {
        IpNetwork::V4(net) => (NFPROTO_IPV4, 12, net.network().octets().to_vec()),
        IpNetwork::V6(net) => (NFPROTO_IPV6, 8, net.network().octets().to_vec()),
    };
    let prefix = usize::from(subnet.prefix());
    let mut exprs = vec![
        Expr::Meta(NFT_META_NFPROTO),
        Expr::Cmp(NFT_CMP_EQ, vec![nfproto]),
    ];
    if prefix % 8 == 0 && prefix > 0 {
        // Whole bytes: load and compare just those.
        let len = prefix / 8;
        exprs.push(Expr::Payload {
            offset,
            len: len as u32,
        });
        exprs.push(Expr::Cmp(NFT_CMP_EQ, addr[..len].to_vec()));
    } else if prefix > 0 {
        // Load the whole address and mask it.
        let mask: Vec<u8> = (0..addr.len())
            .map(|i| {
                let bits = prefix.saturating_sub(i * 8).min(8);
                (0xff00u16 >> bits) as u8
            })
            .collect();
        exprs.push(Expr::Payload {
            offset,
            len: addr.len() as u32,
        });
        exprs.push(Expr::Mask(mask));
        exprs.push(Expr::Cmp(NFT_CMP_EQ, addr));
    }
    let mut name = vec![0u8; IFNAMSIZ];
    name[..bridge.len()].copy_from_slice(bridge.as_bytes());
    exprs.push(Expr::Meta(NFT_META_OIFNAME));
    exprs.push(Expr::Cmp(NFT_CMP_NEQ, name));
    exprs.push(Expr::Masquerade);
    exprs
}

fn put_expressions(a: &mut Attrs<'_>, exprs: &[Expr]) {
    a.nest(NFTA_RULE_EXPRESSIONS, |a| {
        for expr in exprs {
            a.nest(NFTA_LIST_ELEM, |a| put_expression(a, expr));
        }
    });
}

fn put_expression(a: &mut Attrs<'_>, expr: &Expr) {
    match expr {
        Expr::Meta(key) => {
            a.string(NFTA_EXPR_NAME, "meta");
            a.nest(NFTA_EXPR_DATA, |a| {
                a.be32(NFTA_META_DREG, NFT_REG_1);
                a.be32(NFTA_META_KEY, *key);
            });
        }
        Expr::Cmp(op, data) => {
            a.string(NFTA_EXPR_NAME, "cmp");
            a.nest(NFTA_EXPR_DATA, |a| {
                a.be32(NFTA_CMP_SREG, NFT_REG_1);
                a.be32(NFTA_CMP_OP, *op);
                a.nest(NFTA_CMP_DATA, |a| a.bytes(NFTA_DATA_VALUE, data));
            });
        }
        Expr::Payload { offset, len } => {
            a.string(NFTA_EXPR_NAME, "payload");
            a.nest(NFTA_EXPR_DATA, |a| {
                a.be32(NFTA_PAYLOAD_DREG, NFT_REG_1);
                a.be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
                a.be32(NFTA_PAYLOAD_OFFSET, *offset);
                a.be32(NFTA_PAYLOAD_LEN, *len);
            });
        }
        Expr::Mask(mask) => {
            a.string(NFTA_EXPR_NAME, "bitwise");
            a.nest(NFTA_EXPR_DATA, |a| {
                a.be32(NFTA_BITWISE_SREG, NFT_REG_1);
                a.be32(NFTA_BITWISE_DREG, NFT_REG_1);
                a.be32(NFTA_BITWISE_LEN, mask.len() as u32);
                a.nest(NFTA_BITWISE_MASK, |a| a.bytes(NFTA_DATA_VALUE, mask));
                a.nest(NFTA_BITWISE_XOR, |a| {
                    a.bytes(NFTA_DATA_VALUE, &vec![0; mask.len()])
                });
            });
        }
        Expr::Masquerade => a.string(NFTA_EXPR_NAME, "masq"),
        Expr::Jump(chain) => {
            a.string(NFTA_EXPR_NAME, "immediate");
            a.nest(NFTA_EXPR_DATA, |a| {
                a.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                a.nest(NFTA_IMMEDIATE_DATA, |a| {
                    a.nest(NFTA_DATA_VERDICT, |a| {
                        a.be32(NFTA_VERDICT_CODE, NFT_JUMP as u32);
                        a.string(NFTA_VERDICT_CHAIN, chain);
                    });
                });
            });
        }
    }
}

/// One netlink message with its `struct nfgenmsg`, attributes appended.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Message {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel's
        buf.push(family);
        buf.push(NFNETLINK_V0);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Message { buf }
    }

    fn attrs(&mut self) -> Attrs<'_> {
        Attrs(&mut self.buf)
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// Appends netlink attributes (`struct nlattr`, 4-byte aligned) to a buffer.
struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    fn bytes(&mut self, kind: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).expect("attribute under 64 KiB");
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.pad();
    }

    /// A NUL-terminated string.
    fn string(&mut self, kind: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.bytes(kind, &data);
    }

    /// nf_tables integers are big-endian.
    fn be32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    fn be64(&mut self, kind: u16, value: u64) {
        self.bytes(kind, &value.to_be_bytes());
    }

    fn nest(&mut self, kind: u16, inner: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.0.len();
        self.0.extend_from_slice(&0u16.to_ne_bytes());
        self.0
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        inner(&mut Attrs(self.0));
        let len = u16::try_from(self.0.len() - start).expect("attribute under 64 KiB");
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
    }
}

/// One received netlink message.
struct Reply<'a> {
    kind: u16,
    seq: u32,
    /// Everything after `struct nlmsghdr`.
    body: &'a [u8],
}

fn messages(buf: &[u8]) -> std::result::Result<Vec<Reply<'_>>, Failure> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(Failure::malformed("a message with a bad length"));
        }
        out.push(Reply {
            kind: u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes")),
            seq: u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes")),
            body: &rest[NLMSG_HDRLEN..len],
        });
        rest = &rest[align4(len).min(rest.len())..];
    }
    Ok(out)
}

/// The errno of an `NLMSG_ERROR` (or `NLMSG_DONE`) body; 0 for an ack.
fn error_code(body: &[u8]) -> std::result::Result<i32, Failure> {
    let raw = body
        .get(..4)
        .ok_or_else(|| Failure::malformed("a short error message"))?;
    let code = i32::from_ne_bytes(raw.try_into().expect("4 bytes"));
    Ok(code.checked_neg().unwrap_or(libc::EINVAL))
}

/// The top-level attributes of a message body (after `struct nfgenmsg`).
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Reads a NUL-terminated string attribute.
fn c_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_matches_what_nft_generates() {
        let exprs = masquerade("10.77.0.0/24".parse().unwrap(), "br0");
        let shapes: Vec<String> = exprs
            .iter()
            .map(|e| match e {
                Expr::Meta(k) => format!("meta {k}"),
                Expr::Cmp(op, d) => format!("cmp {op} {d:?}"),
                Expr::Payload { offset, len } => format!("payload {offset} {len}"),
                Expr::Mask(m) => format!("mask {m:?}"),
                Expr::Masquerade => "masq".into(),
                Expr::Jump(c) => format!("jump {c}"),
            })
            .collect();
        assert_eq!(
            shapes,
            [
                "meta 15",
                "cmp 0 [2]",
                "payload 12 3",
                "cmp 0 [10, 77, 0]",
                "meta 7",
                "cmp 1 [98, 114, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]",
                "masq",
            ]
        );
    }

    #[test]
    fn unaligned_prefix_is_masked() {
        let exprs = masquerade("10.77.16.0/20".parse().unwrap(), "br0");
        assert!(matches!(&exprs[2], Expr::Payload { offset: 12, len: 4 }));
        assert!(matches!(&exprs[3], Expr::Mask(m) if m == &[0xff, 0xff, 0xf0, 0]));
        assert!(matches!(&exprs[4], Expr::Cmp(NFT_CMP_EQ, d) if d == &[10, 77, 16, 0]));
        let exprs = masquerade("fd00:77::/63".parse().unwrap(), "br0");
        assert!(matches!(&exprs[2], Expr::Payload { offset: 8, len: 16 }));
        assert!(matches!(&exprs[3], Expr::Mask(m)
            if m[..8] == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe] && m[8..] == [0; 8]));
    }

    #[test]
    fn nests_carry_their_length_and_flag() {
        let mut msg = Message::new(nft_type(NFT_MSG_NEWRULE), NLM_F_REQUEST, 7, NFPROTO_INET, 0);
        msg.attrs()
            .nest(NFTA_RULE_EXPRESSIONS, |a| a.string(NFTA_EXPR_NAME, "masq"));
        let buf = msg.finish();
        assert_eq!(buf.len(), 16 + 4 + 4 + 12);
        assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()), 36);
        let attrs = attributes(&buf[20..]);
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].0, NFTA_RULE_EXPRESSIONS);
        assert_eq!(
            attributes(attrs[0].1),
            vec![(NFTA_EXPR_NAME, &b"masq\0"[..])]
        );
    }

    #[test]
    fn table_names_are_checked() {
        assert!(check_table("netsetgo").is_ok());
        assert!(check_table("").is_err());
        assert!(check_table("a b").is_err());
        assert!(check_table(&"x".repeat(65)).is_err());
    }
}
