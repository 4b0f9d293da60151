//! The netlink and nfnetlink message codec: building requests (header,
//! `struct nfgenmsg`, attributes) and reading answers. Nothing here knows
//! nf_tables beyond the nfnetlink header.

use std::io;

use crate::error::{Error, NetlinkError, Step};

// <linux/netlink.h>
pub(super) const NLMSG_HDRLEN: usize = 16;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
pub(super) const NLMSG_MIN_TYPE: u16 = 0x10;
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_DUMP: u16 = 0x300;
pub(super) const NLM_F_EXCL: u16 = 0x200;
pub(super) const NLM_F_CREATE: u16 = 0x400;
pub(super) const NLM_F_APPEND: u16 = 0x800;
pub(super) const NLA_F_NESTED: u16 = 0x8000;
pub(super) const NLA_TYPE_MASK: u16 = 0x3fff;
pub(super) const NETLINK_CAP_ACK: libc::c_int = 10;

// <linux/netfilter/nfnetlink.h>
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = NLMSG_MIN_TYPE;
pub(super) const NFNL_MSG_BATCH_END: u16 = NLMSG_MIN_TYPE + 1;
pub(super) const NFNL_BATCH_GENID: u16 = 1;
pub(super) const NFNETLINK_V0: u8 = 0;

/// The message type of nf_tables message `msg`.
pub(super) fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// One netlink message with its `struct nfgenmsg`, attributes appended.
pub(super) struct Message {
    buf: Vec<u8>,
}

impl Message {
    pub(super) fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Message {
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

    pub(super) fn attrs(&mut self) -> Attrs<'_> {
        Attrs(&mut self.buf)
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// Appends netlink attributes (`struct nlattr`, 4-byte aligned) to a buffer.
pub(super) struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    pub(super) fn bytes(&mut self, kind: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).expect("attribute under 64 KiB");
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.pad();
    }

    /// A NUL-terminated string.
    pub(super) fn string(&mut self, kind: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.bytes(kind, &data);
    }

    /// nf_tables integers are big-endian.
    pub(super) fn be32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    pub(super) fn be64(&mut self, kind: u16, value: u64) {
        self.bytes(kind, &value.to_be_bytes());
    }

    pub(super) fn nest(&mut self, kind: u16, inner: impl FnOnce(&mut Attrs<'_>)) {
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
pub(super) struct Reply<'a> {
    pub(super) kind: u16,
    pub(super) seq: u32,
    /// Everything after `struct nlmsghdr`.
    pub(super) body: &'a [u8],
}

/// The messages of one datagram.
pub(super) fn messages(buf: &[u8]) -> std::result::Result<Vec<Reply<'_>>, Failure> {
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
pub(super) fn error_code(body: &[u8]) -> std::result::Result<i32, Failure> {
    let raw = body
        .get(..4)
        .ok_or_else(|| Failure::malformed("a short error message"))?;
    let code = i32::from_ne_bytes(raw.try_into().expect("4 bytes"));
    Ok(code.checked_neg().unwrap_or(libc::EINVAL))
}

/// The attributes in `buf` (a message body after `struct nfgenmsg`, or the
/// payload of a nested attribute).
pub(super) fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
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

/// The payload of the first attribute of type `kind` in `buf`.
pub(super) fn attribute(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(buf)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
}

pub(super) fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Reads a NUL-terminated string attribute.
pub(super) fn c_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// How a single exchange failed.
pub(super) enum Failure {
    /// The kernel answered with this errno.
    Kernel(i32),
    /// The socket failed, or the answer made no sense.
    Socket(io::Error),
}

impl Failure {
    pub(super) fn malformed(what: &str) -> Failure {
        Failure::Socket(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("nf_tables: {what}"),
        ))
    }

    pub(super) fn errno(&self) -> Option<i32> {
        match self {
            Failure::Kernel(errno) => Some(*errno),
            Failure::Socket(_) => None,
        }
    }

    pub(super) fn into_error(self, step: Step, object: impl Into<String>) -> Error {
        match self {
            Failure::Kernel(errno) => kernel_error(step, object, errno),
            Failure::Socket(e) => Error::os(step, object, e),
        }
    }
}

/// An error carrying the kernel's `errno` for `step` on `object`.
pub(super) fn kernel_error(step: Step, object: impl Into<String>, errno: i32) -> Error {
    Error::Netlink {
        step,
        object: object.into(),
        source: NetlinkError::Errno(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_carry_their_length_and_flag() {
        let mut msg = Message::new(nft_type(6), NLM_F_REQUEST, 7, 1, 0);
        msg.attrs().nest(4, |a| a.string(1, "masq"));
        let buf = msg.finish();
        assert_eq!(buf.len(), 16 + 4 + 4 + 12);
        assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()), 36);
        assert_eq!(u16::from_ne_bytes([buf[22], buf[23]]), 4 | NLA_F_NESTED);
        let attrs = attributes(&buf[20..]);
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].0, 4);
        assert_eq!(attributes(attrs[0].1), vec![(1, &b"masq\0"[..])]);
        assert_eq!(attribute(attrs[0].1, 1), Some(&b"masq\0"[..]));
    }

    #[test]
    fn replies_are_split_and_errors_read() {
        let mut buf = Message::new(NLMSG_ERROR, 0, 9, 0, 0).finish();
        // An NLMSG_ERROR body is the negated errno, here in place of nfgenmsg.
        buf[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let mut two = buf.clone();
        two.extend_from_slice(&buf);
        let replies = messages(&two).ok().unwrap();
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[1].seq, 9);
        assert_eq!(error_code(replies[0].body).ok(), Some(libc::EEXIST));
    }
}
