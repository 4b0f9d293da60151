//! The guard's rules for neighbour discovery: router and neighbour
//! solicitations and advertisements, and redirects.
//!
//! Router and neighbour solicitations and neighbour advertisements name no
//! MAC but the port's. Options may come in any number and order, so the
//! message is bounded instead: with no extension header (which neighbour
//! discovery never carries), the IPv6 payload length is the message's, and
//! it is its fixed part alone (8 bytes for a router solicitation, 24 for the
//! others) or followed by exactly one link-layer address option (type 1
//! source, 2 target, length 1) holding the port's MAC. The unspecified
//! address sends only duplicate address detection: a neighbour solicitation
//! of one of the port's own addresses, without an option or with the nonce
//! Linux adds (RFC 7527, type 14, length 1), never a link-layer address.
//! So no container knocks out another's address (the next container's
//! predictable link-local one, say) with probes of its own for it. A
//! neighbour advertisement's target is one of the port's addresses.

use std::net::Ipv6Addr;

use super::super::sets::{own, LLADDRS, TARGETS};
use super::{drop, icmpv6_type, ne, ICMPV6, ND_NEIGHBOR_SOLICIT};
use crate::nft::expr::{Base, Expr};

const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_REDIRECT: u8 = 137;
const ND_OPT_SOURCE_LLADDR: u8 = 1;
const ND_OPT_TARGET_LLADDR: u8 = 2;
/// RFC 7527's nonce, which Linux puts in its duplicate address detection.
const ND_OPT_NONCE: u8 = 14;

/// The message types this module checks: router and neighbour
/// solicitations and neighbour advertisements, each with the size of its
/// fixed part and the type of the link-layer address option it may carry.
const MESSAGES: [(u8, u16, u8); 3] = [
    (ND_ROUTER_SOLICIT, 8, ND_OPT_SOURCE_LLADDR),
    (ND_NEIGHBOR_SOLICIT, 24, ND_OPT_SOURCE_LLADDR),
    (ND_NEIGHBOR_ADVERT, 24, ND_OPT_TARGET_LLADDR),
];

/// Every rule of neighbour discovery, all drops: no router advertisement
/// or redirect; router and neighbour solicitations and advertisements
/// without an extension header and bounded by the IPv6 payload length to
/// their fixed part alone or with one option of length 1; from the
/// unspecified source, that option only a nonce (RFC 7527); then what reads
/// the port's own values in the sets: the one option, if any, holds the
/// port's MAC ([`LLADDRS`]; from `::` a neighbour solicitation's option is
/// the nonce); duplicate address detection and neighbour advertisements
/// only for the port's own addresses ([`TARGETS`]).
pub(super) fn neighbour_rules() -> Vec<Vec<Expr>> {
    let mut rules = vec![
        [icmpv6_type(ND_ROUTER_ADVERT), vec![drop()]].concat(),
        [icmpv6_type(ND_REDIRECT), vec![drop()]].concat(),
    ];
    for (t, fixed, _) in MESSAGES {
        rules.extend(shape_rules(t, fixed));
        if t == ND_NEIGHBOR_SOLICIT {
            rules.push(nonce_rule());
        }
    }
    for (t, fixed, option) in MESSAGES {
        rules.extend(option_rules(t, fixed, option));
        // Which messages name one of the port's addresses as their target:
        // duplicate address detection (from `::`) and every advertisement.
        let which = match t {
            ND_NEIGHBOR_SOLICIT => vec![saddr(), Expr::eq(&Ipv6Addr::UNSPECIFIED.octets())],
            ND_NEIGHBOR_ADVERT => Vec::new(),
            _ => continue,
        };
        let target = own(TARGETS, &[(Base::Transport, 8, 16)], true);
        rules.push([icmpv6_type(t), which, target, vec![drop()]].concat());
    }
    rules
}

/// `ip6 length`: the IPv6 payload length.
fn payload_length() -> Expr {
    Expr::payload(Base::Network, 4, 2)
}

/// `ip6 saddr`.
fn saddr() -> Expr {
    Expr::payload(Base::Network, 8, 16)
}

/// The payload length of a neighbour discovery message of `fixed` bytes
/// with one option of length 1 (8 bytes).
fn with_option(fixed: u16) -> [u8; 2] {
    (fixed + 8).to_be_bytes()
}

/// The rules of message type `t` (`fixed` bytes without options) that
/// hold for every port: no extension header, the fixed part alone or with
/// one option.
fn shape_rules(t: u8, fixed: u16) -> [Vec<Expr>; 2] {
    [
        [
            icmpv6_type(t),
            vec![Expr::payload(Base::Network, 6, 1), ne(&[ICMPV6]), drop()],
        ]
        .concat(),
        [
            icmpv6_type(t),
            vec![
                payload_length(),
                ne(&fixed.to_be_bytes()),
                payload_length(),
                ne(&with_option(fixed)),
                drop(),
            ],
        ]
        .concat(),
    ]
}

/// The one option of a message of type `t`, if any (of type `option`),
/// holds the port's MAC: its type and length, then the address in
/// [`ND_MACS`]; from `::` a neighbour solicitation's option is checked by
/// [`nonce_rule`].
fn option_rules(t: u8, fixed: u16, option: u8) -> [Vec<Expr>; 2] {
    let mut head = [
        icmpv6_type(t),
        vec![payload_length(), Expr::eq(&with_option(fixed))],
    ]
    .concat();
    if t == ND_NEIGHBOR_SOLICIT {
        head.extend([saddr(), ne(&Ipv6Addr::UNSPECIFIED.octets())]);
    }
    let at = u32::from(fixed);
    [
        [
            head.clone(),
            vec![
                Expr::payload(Base::Transport, at, 2),
                ne(&[option, 1]),
                drop(),
            ],
        ]
        .concat(),
        [
            head,
            own(LLADDRS, &[(Base::Transport, at + 2, 6)], true),
            vec![drop()],
        ]
        .concat(),
    ]
}

/// Duplicate address detection, the only neighbour solicitation from `::`:
/// its one option, if any, is a nonce.
fn nonce_rule() -> Vec<Expr> {
    [
        icmpv6_type(ND_NEIGHBOR_SOLICIT),
        vec![
            payload_length(),
            Expr::eq(&with_option(24)),
            saddr(),
            Expr::eq(&Ipv6Addr::UNSPECIFIED.octets()),
            Expr::payload(Base::Transport, 24, 2),
            ne(&[ND_OPT_NONCE, 1]),
            drop(),
        ],
    ]
    .concat()
}
