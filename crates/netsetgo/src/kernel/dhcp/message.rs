//! The DHCP message (RFC 2131 section 2, options of RFC 2132), exactly as
//! far as the responder needs it: a client's DISCOVER or REQUEST is read
//! into a [`Request`], strictly, and an OFFER or ACK is written from a
//! [`Reply`]. Every read is bounds-checked; anything this parser does not
//! know (an option other than the nine a client sends in a DISCOVER or
//! REQUEST, a length it may not have, an option twice, no End) makes the
//! whole message malformed.

use std::net::Ipv4Addr;

/// The BOOTP minimum message size (RFC 1542): some clients drop shorter.
pub const MIN_MESSAGE: usize = 300;
/// The magic cookie that starts the options (RFC 2131 3).
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Offset of the magic cookie: the fixed BOOTP fields come before it.
pub const MAGIC_AT: usize = 236;
/// Offset of the first option.
const OPTIONS_AT: usize = MAGIC_AT + 4;
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
/// Hardware type Ethernet (RFC 1700) and its address length.
const ETHERNET: u8 = 1;
const MAC_LEN: u8 = 6;
/// The broadcast bit of `flags` (RFC 2131 2, figure 2).
const BROADCAST: u16 = 0x8000;

/// Option codes (RFC 2132).
pub mod code {
    /// Pad (RFC 2132 3.1): one byte, no length.
    pub const PAD: u8 = 0;
    /// Subnet mask (3.3).
    pub const SUBNET_MASK: u8 = 1;
    /// Routers (3.5).
    pub const ROUTER: u8 = 3;
    /// Domain name servers (3.8).
    pub const DNS: u8 = 6;
    /// Host name (3.14).
    pub const HOST_NAME: u8 = 12;
    /// Requested IP address (9.1).
    pub const REQUESTED_ADDRESS: u8 = 50;
    /// IP address lease time (9.2).
    pub const LEASE_TIME: u8 = 51;
    /// DHCP message type (9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier (9.7).
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list (9.8).
    pub const PARAMETER_LIST: u8 = 55;
    /// Maximum DHCP message size (9.10).
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Vendor class identifier (9.13).
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier (9.14).
    pub const CLIENT_ID: u8 = 61;
    /// End (3.2): one byte, no length.
    pub const END: u8 = 255;
}

/// The options a client may send in a DISCOVER or REQUEST (RFC 2131 table
/// 5, less what a client of ours has no use for), each with the lengths it
/// may have: (code, shortest, longest).
const CLIENT_OPTIONS: [(u8, u8, u8); 9] = [
    (code::HOST_NAME, 1, 255),
    (code::REQUESTED_ADDRESS, 4, 4),
    (code::LEASE_TIME, 4, 4),
    (code::MESSAGE_TYPE, 1, 1),
    (code::SERVER_ID, 4, 4),
    (code::PARAMETER_LIST, 1, 255),
    (code::MAX_MESSAGE_SIZE, 2, 2),
    (code::VENDOR_CLASS, 1, 255),
    (code::CLIENT_ID, 2, 255),
];

/// The DHCP message types (RFC 2132 9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A client looks for servers.
    Discover = 1,
    /// A server offers an address.
    Offer = 2,
    /// A client asks for the offered address.
    Request = 3,
    /// A client says the address is in use.
    Decline = 4,
    /// A server confirms.
    Ack = 5,
    /// A server refuses.
    Nak = 6,
    /// A client gives its address up.
    Release = 7,
    /// A client asks for configuration only.
    Inform = 8,
}

impl MessageType {
    fn from_code(code: u8) -> Option<MessageType> {
        use MessageType::*;
        [Discover, Offer, Request, Decline, Ack, Nak, Release, Inform]
            .into_iter()
            .find(|kind| *kind as u8 == code)
    }
}

/// What the responder reads of a client's message: a BOOTREQUEST from an
/// Ethernet client, not relayed, with a message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The transaction id, echoed in the reply.
    pub xid: u32,
    /// The client asks for broadcast replies.
    pub broadcast: bool,
    /// The client's current address (`ciaddr`).
    pub ciaddr: Ipv4Addr,
    /// The client's hardware address (`chaddr`, its first 6 bytes).
    pub chaddr: [u8; 6],
    /// The message type option.
    pub kind: MessageType,
    /// The requested IP address option.
    pub requested: Option<Ipv4Addr>,
    /// The server identifier option.
    pub server: Option<Ipv4Addr>,
    /// The client identifier option, echoed in the reply (RFC 6842).
    pub client_id: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// Reads a client's message (the UDP payload); `None` if it is not a
    /// well-formed BOOTREQUEST of an Ethernet client with a message type,
    /// or if it is relayed (`hops` or `giaddr` set).
    pub fn parse(message: &'a [u8]) -> Option<Request<'a>> {
        let fixed = message.get(..OPTIONS_AT)?;
        let address =
            |at: usize| Ipv4Addr::new(fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]);
        if fixed[..4] != [BOOTREQUEST, ETHERNET, MAC_LEN, 0]
            || !address(24).is_unspecified()
            || fixed[MAGIC_AT..] != MAGIC
        {
            return None;
        }
        let mut chaddr = [0u8; 6];
        chaddr.copy_from_slice(&fixed[28..34]);
        let mut request = Request {
            xid: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            broadcast: u16::from_be_bytes([fixed[10], fixed[11]]) & BROADCAST != 0,
            ciaddr: address(12),
            chaddr,
            kind: MessageType::Discover,
            requested: None,
            server: None,
            client_id: None,
        };
        let mut kind = None;
        for (code, value) in options(&message[OPTIONS_AT..])? {
            let ipv4 = || Some(Ipv4Addr::new(value[0], value[1], value[2], value[3]));
            match code {
                code::MESSAGE_TYPE => kind = MessageType::from_code(value[0]),
                code::REQUESTED_ADDRESS => request.requested = ipv4(),
                code::SERVER_ID => request.server = ipv4(),
                code::CLIENT_ID => request.client_id = Some(value),
                _ => {}
            }
        }
        request.kind = kind?;
        Some(request)
    }
}

/// The options of a client's message, each of [`CLIENT_OPTIONS`] with a
/// length it may have and at most once, up to an End option; `None` if
/// they are anything else. What follows End (padding) is not read.
fn options(mut rest: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut found: Vec<(u8, &[u8])> = Vec::with_capacity(CLIENT_OPTIONS.len());
    loop {
        match rest {
            [code::END, ..] => return Some(found),
            [code::PAD, tail @ ..] => rest = tail,
            [code, len, tail @ ..] => {
                let known = CLIENT_OPTIONS
                    .iter()
                    .any(|&(c, min, max)| c == *code && (min..=max).contains(len));
                if !known || found.iter().any(|(seen, _)| seen == code) {
                    return None;
                }
                let (value, tail) = tail.split_at_checked(usize::from(*len))?;
                found.push((*code, value));
                rest = tail;
            }
            _ => return None,
        }
    }
}

/// An OFFER or ACK: what the responder tells its one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Offer or Ack.
    pub kind: MessageType,
    /// The request's transaction id.
    pub xid: u32,
    /// Whether the broadcast bit is set (as the client asked).
    pub broadcast: bool,
    /// The client's current address, as its request gave it.
    pub ciaddr: Ipv4Addr,
    /// The address handed out (`yiaddr`).
    pub yiaddr: Ipv4Addr,
    /// The client's hardware address.
    pub chaddr: [u8; 6],
    /// The server identifier, also the router.
    pub server: Ipv4Addr,
    /// The lease time in seconds.
    pub lease: u32,
    /// The subnet mask.
    pub mask: Ipv4Addr,
    /// DNS servers; the option is left out when there are none.
    pub dns: &'a [Ipv4Addr],
    /// The request's client identifier, echoed (RFC 6842).
    pub client_id: Option<&'a [u8]>,
}

impl Reply<'_> {
    /// The message, padded to [`MIN_MESSAGE`]; `None` if an option would
    /// not fit its one-byte length (more than 63 DNS servers).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let flags = if self.broadcast { BROADCAST } else { 0 };
        let mut m = header(
            BOOTREPLY,
            self.xid,
            flags,
            self.ciaddr,
            self.yiaddr,
            self.chaddr,
        );
        let dns: Vec<u8> = self.dns.iter().flat_map(|a| a.octets()).collect();
        let (kind, server) = ([self.kind as u8], self.server.octets());
        let (lease, mask) = (self.lease.to_be_bytes(), self.mask.octets());
        let mut options: Vec<(u8, &[u8])> = vec![
            (code::MESSAGE_TYPE, &kind),
            (code::SERVER_ID, &server),
            (code::LEASE_TIME, &lease),
            (code::SUBNET_MASK, &mask),
            (code::ROUTER, &server),
        ];
        if !dns.is_empty() {
            options.push((code::DNS, &dns));
        }
        options.extend(self.client_id.map(|id| (code::CLIENT_ID, id)));
        finish(&mut m, &options)?;
        Some(m)
    }
}

/// A client's message as rootlesskit's client sends it (a BOOTREQUEST,
/// flags 0, all addresses 0): the message type, then `options` as they
/// are, End, padding to [`MIN_MESSAGE`]. For tests and fuzz seeds, which
/// may forge any option. Panics if a value is longer than 255 bytes.
pub(super) fn client_message(
    chaddr: [u8; 6],
    kind: MessageType,
    options: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = header(BOOTREQUEST, 0x842e_ee42, 0, z, z, chaddr);
    let kind = [kind as u8];
    let mut all: Vec<(u8, &[u8])> = vec![(code::MESSAGE_TYPE, &kind)];
    all.extend(options.iter().map(|(code, value)| (*code, &value[..])));
    finish(&mut m, &all).expect("option values of at most 255 bytes");
    m
}

/// The fixed fields and the magic cookie of a BOOTP message from an
/// Ethernet host: `secs`, `siaddr`, `giaddr`, `sname` and `file` zero.
fn header(
    op: u8,
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    chaddr: [u8; 6],
) -> Vec<u8> {
    let mut m = vec![0u8; OPTIONS_AT];
    m[..4].copy_from_slice(&[op, ETHERNET, MAC_LEN, 0]);
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[10..12].copy_from_slice(&flags.to_be_bytes());
    m[12..16].copy_from_slice(&ciaddr.octets());
    m[16..20].copy_from_slice(&yiaddr.octets());
    m[28..34].copy_from_slice(&chaddr);
    m[MAGIC_AT..].copy_from_slice(&MAGIC);
    m
}

/// Appends `options`, End and padding up to [`MIN_MESSAGE`]; `None` if a
/// value is longer than 255 bytes.
fn finish(m: &mut Vec<u8>, options: &[(u8, &[u8])]) -> Option<()> {
    for (code, value) in options {
        m.push(*code);
        m.push(u8::try_from(value.len()).ok()?);
        m.extend_from_slice(value);
    }
    m.push(code::END);
    m.resize(m.len().max(MIN_MESSAGE), code::PAD);
    Some(())
}
