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

use super::{drop, icmpv6_type, ne, GuardedPort, ICMPV6, ND_NEIGHBOR_SOLICIT};
use crate::nft::expr::{Base, Expr};

const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_REDIRECT: u8 = 137;
const ND_OPT_SOURCE_LLADDR: u8 = 1;
const ND_OPT_TARGET_LLADDR: u8 = 2;
/// RFC 7527's nonce, which Linux puts in its duplicate address detection.
const ND_OPT_NONCE: u8 = 14;

/// No router advertisement or redirect. Neighbour discovery names only
/// the port's MAC: no extension header, and the IPv6 payload length bounds
/// the message to its fixed part alone or with one link-layer address
/// option (length 1) holding the port's MAC. The unspecified source sends
/// only duplicate address detection: a solicitation of one of the port's
/// own addresses, with no option or a nonce (RFC 7527), never a link-layer
/// address. No neighbour advertisement for another target.
pub(super) fn neighbour_discovery_rules(port: &GuardedPort) -> Vec<Vec<Expr>> {
    let mut rules = vec![
        [icmpv6_type(ND_ROUTER_ADVERT), vec![drop()]].concat(),
        [icmpv6_type(ND_REDIRECT), vec![drop()]].concat(),
    ];
    for (t, fixed, option) in [
        (ND_ROUTER_SOLICIT, 8u16, ND_OPT_SOURCE_LLADDR),
        (ND_NEIGHBOR_SOLICIT, 24, ND_OPT_SOURCE_LLADDR),
        (ND_NEIGHBOR_ADVERT, 24, ND_OPT_TARGET_LLADDR),
    ] {
        rules.extend(message_rules(port, t, fixed, option));
        match t {
            ND_NEIGHBOR_SOLICIT => rules.extend(duplicate_address_rules(port)),
            // A neighbour advertisement's target address is none of the
            // port's.
            ND_NEIGHBOR_ADVERT => {
                rules.push([icmpv6_type(t), own_targets(port), vec![drop()]].concat())
            }
            _ => {}
        }
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

/// `@th,64,128 != X` for each of the port's IPv6 addresses: the message's
/// target is none of them.
fn own_targets(port: &GuardedPort) -> Vec<Expr> {
    port.ipv6
        .iter()
        .flat_map(|x| [Expr::payload(Base::Transport, 8, 16), ne(&x.octets())])
        .collect()
}

/// The rules of message type `t` (`fixed` bytes without options): no
/// extension header, the fixed part alone or with one option, and that
/// option (of type `option`) holding the port's MAC; from `::` a neighbour
/// solicitation's option is checked by [`duplicate_address_rules`].
fn message_rules(port: &GuardedPort, t: u8, fixed: u16, option: u8) -> Vec<Vec<Expr>> {
    let mut lladdr = vec![option, 1];
    lladdr.extend_from_slice(&port.mac);
    let mut option_rule = [
        icmpv6_type(t),
        vec![payload_length(), Expr::eq(&with_option(fixed))],
    ]
    .concat();
    if t == ND_NEIGHBOR_SOLICIT {
        option_rule.extend([saddr(), ne(&Ipv6Addr::UNSPECIFIED.octets())]);
    }
    option_rule.extend([
        Expr::payload(Base::Transport, u32::from(fixed), 8),
        ne(&lladdr),
        drop(),
    ]);
    vec![
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
        option_rule,
    ]
}

/// Duplicate address detection, the only neighbour solicitation from `::`:
/// its one option, if any, is a nonce, and its target one of the port's
/// addresses.
fn duplicate_address_rules(port: &GuardedPort) -> Vec<Vec<Expr>> {
    let t = ND_NEIGHBOR_SOLICIT;
    let any = Ipv6Addr::UNSPECIFIED.octets();
    vec![
        [
            icmpv6_type(t),
            vec![
                payload_length(),
                Expr::eq(&with_option(24)),
                saddr(),
                Expr::eq(&any),
                Expr::payload(Base::Transport, 24, 2),
                ne(&[ND_OPT_NONCE, 1]),
                drop(),
            ],
        ]
        .concat(),
        [
            icmpv6_type(t),
            vec![saddr(), Expr::eq(&any)],
            own_targets(port),
            vec![drop()],
        ]
        .concat(),
    ]
}
