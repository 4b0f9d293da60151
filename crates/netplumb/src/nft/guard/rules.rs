//! The guard's rules: pure builders of the expressions of its four chains
//! (the two base chains, the port chain and `common`), in the order of the
//! listing in [the guard's docs](super), each as nft 1.0.6 writes that text
//! in a bridge table: no `meta iiftype` before an `ether` match, `ether
//! type` (not `meta protocol`) before an `icmpv6` or `arp` match.
//!
//! # DHCP, router advertisements, fragments
//!
//! A container is never a DHCP or DHCPv6 server, nor a router: UDP from
//! source port 67 or 547, and UDP to a client's port 68 or 546, is dropped
//! (rootlesskit's DHCP client, nclient4, reads raw frames and takes any UDP
//! to port 68, whatever its source port), and so are router advertisements
//! and redirects. No rule reads a port from a non-first fragment: since
//! 5.17 (a9e8503def0f, "nft_payload: dont allow th access for fragments",
//! in 5.16's stable series but not 5.10's) a transport-header load fails
//! there, but before it `nft_payload_eval` (and its fast path) loads from
//! `thoff` of any packet `nft_set_pktinfo_ipv4_validate` or
//! `_ipv6_validate` parsed (5.10 checks only `pkt->tprot_set`), so a rule
//! on `udp dport` reads a non-first fragment's data as ports and would drop
//! a legitimate datagram whose data read 67, 68, 547 or 546 there. So the
//! port rules read the transport header only of an unfragmented packet or a
//! first fragment: IPv4 with a fragment offset of 0, IPv6 with UDP right
//! after the IPv6 header, or a fragment header there with offset 0 and the
//! UDP source port read at its place (network offset 48; a first fragment's
//! destination port is the fragment rule's below). A non-first fragment
//! passes only where it cannot read as a reply to a client, since nclient4
//! ignores the fragment offset too: an IPv4 one only with a 20-byte header
//! and without 68 where a UDP destination port would be (network offset
//! 22), an IPv6 one only with the fragment header right after the IPv6
//! header and without 546 at network offset 50.
//!
//! # Transport protocols, malformed IP
//!
//! From its own addresses a container sends only TCP, UDP, ICMP, IGMP and
//! SCTP over IPv4, and TCP, UDP, ICMPv6 and SCTP over IPv6 (`meta l4proto`,
//! the protocol after the IPv6 extension headers the kernel skips): the
//! rules on UDP ports and ICMPv6 types must see the real transport header,
//! and they would not behind an IPsec header (for IPv6 the kernel stops
//! there, `IP6_FH_F_AUTH`; for IPv4 it is the protocol) or inside a tunnel
//! (IPv4 or IPv6 in IPv4 or IPv6, GRE), which could carry a DHCP reply or a
//! router advertisement from any source. **Tunnels and IPsec between
//! containers therefore need `guard=no`.** Non-first fragments keep the
//! fragment rules above, for these protocols only. Where the kernel could
//! not parse the IP header (`nft_set_pktinfo_unspec`: a length beyond the
//! frame, a truncated extension header) `meta l4proto` ends the rule that
//! reads it: every rule that accepts IP reads it, so such a packet meets
//! the policy.

use std::net::{Ipv4Addr, Ipv6Addr};

use self::neighbour::neighbour_rules;
use super::sets::{own, MACS, PORTS, SENDERS, V4, V6};
use super::{GUARD_COMMON_CHAIN, GUARD_PORT_CHAIN};
use crate::nft::expr::{
    Base, Expr, NFT_CMP_NEQ, NFT_META_IIF, NFT_META_L4PROTO, NFT_META_PROTOCOL, NFT_RETURN,
    NF_ACCEPT, NF_DROP,
};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const IPV6_FRAGMENT: u8 = 44;
/// What a container may send from its own IPv4 address: TCP, UDP, ICMP,
/// IGMP, SCTP.
const IPV4_ALLOWED: &[u8] = &[6, UDP, 1, 2, 132];
/// What it may send from its own IPv6 address: TCP, UDP, ICMPv6, SCTP.
const IPV6_ALLOWED: &[u8] = &[6, UDP, ICMPV6, 132];
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const MLD2_LISTENER_REPORT: u8 = 143;

/// The rules of the chain every port of a table jumps to
/// ([`GUARD_COMMON_CHAIN`]), in order, each as nft 1.0.6 writes the text in
/// the module docs: the link layer, then IPv4's drops and DHCP discovery's
/// accept, a `return` for IPv4 (nothing after it matches IPv4), ARP's
/// accept, a `return` for everything but IPv6, IPv6's drops, a `return`
/// for IPv6 but ICMPv6 (nothing after it matches one), then neighbour
/// discovery's drops and what `::` may send. The accepts pass only what
/// nothing after the jump could drop (see the module docs).
pub(super) fn common_rules() -> Vec<Vec<Expr>> {
    let mut rules = link_rules();
    rules.push(protocol_rule(ETH_P_IP, IPV4_ALLOWED));
    rules.extend(dhcp_port_rules());
    rules.push(dhcp_discovery_rule());
    rules.push([protocol(ETH_P_IP), vec![Expr::Verdict(NFT_RETURN)]].concat());
    rules.push(arp_rule());
    rules.push(
        [
            vec![Expr::meta(NFT_META_PROTOCOL), ne(&ETH_P_IPV6.to_be_bytes())],
            vec![Expr::Verdict(NFT_RETURN)],
        ]
        .concat(),
    );
    rules.push(protocol_rule(ETH_P_IPV6, IPV6_ALLOWED));
    rules.extend(dhcpv6_port_rules());
    rules.push(vec![
        Expr::meta(NFT_META_L4PROTO),
        ne(&[ICMPV6]),
        Expr::Verdict(NFT_RETURN),
    ]);
    rules.extend(neighbour_rules());
    rules.push(from_unspecified(ND_NEIGHBOR_SOLICIT));
    rules.push(from_unspecified(MLD2_LISTENER_REPORT));
    rules
}

/// Bridge prerouting's two rules: `iif . ether saddr @macs jump port`
/// (a guarded port's frame from its own MAC: one look-up tells both),
/// then `iif @ports drop`: a guarded port's frame from another MAC, and
/// what the port chain does not accept (its end, or the whole chain if
/// root emptied it), is dropped. Frames from host ends that are not
/// guarded pass (policy accept) after two look-ups.
pub(super) fn prerouting_rules() -> Vec<Vec<Expr>> {
    vec![
        [
            own(MACS, &[(Base::Link, 6, 6)], false),
            vec![Expr::Jump(GUARD_PORT_CHAIN.into())],
        ]
        .concat(),
        [guarded(), vec![drop()]].concat(),
    ]
}

/// Bridge input's one rule: nothing from a guarded port to
/// 01:80:c2:00:00:0X, the destination compared first (most frames stop
/// there, before the look-up). With the port's group forwarding mask such
/// frames pass prerouting first; should root reset the mask, this still
/// stops all of them but 0x0E (LLDP), which the bridge then hands to the
/// port's own stack without a hook.
pub(super) fn input_rules() -> Vec<Vec<Expr>> {
    let mut link = link_rules().swap_remove(0);
    link.pop();
    vec![[link, guarded(), vec![drop()]].concat()]
}

/// `iif @ports`.
fn guarded() -> Vec<Expr> {
    vec![
        Expr::meta(NFT_META_IIF),
        Expr::Lookup {
            set: PORTS.into(),
            map: false,
            invert: false,
        },
    ]
}

/// The rules of the port chain ([`GUARD_PORT_CHAIN`]) that prerouting
/// jumps to for a guarded port's frame from its own MAC, in order, each as
/// nft 1.0.6 writes the text in the module docs: the jump, IPv4 (the most
/// frequent) first, then IPv6, each a look-up of the input device's values
/// in the sets. Its end returns to prerouting, whose next rule drops.
pub(super) fn port_rules() -> Vec<Vec<Expr>> {
    let mut rules = vec![vec![Expr::Jump(GUARD_COMMON_CHAIN.into())]];
    rules.extend(ipv4_rules());
    rules.extend(ipv6_rules());
    rules
}

/// `ether type <t>`: the dependency nft writes in a bridge table before an
/// `icmpv6` or `arp` match (and reads back so). A tagged frame never gets
/// this far (the `ether type` whitelist of `common` drops it), so it
/// decides as `meta protocol` would.
fn ether_type(t: u16) -> Vec<Expr> {
    vec![Expr::payload(Base::Link, 12, 2), Expr::eq(&t.to_be_bytes())]
}

/// `meta protocol <t>`.
fn protocol(t: u16) -> Vec<Expr> {
    vec![Expr::meta(NFT_META_PROTOCOL), Expr::eq(&t.to_be_bytes())]
}

/// `meta l4proto <p>`.
fn l4proto(p: u8) -> Vec<Expr> {
    vec![Expr::meta(NFT_META_L4PROTO), Expr::eq(&[p])]
}

/// `!= <data>`.
fn ne(data: &[u8]) -> Expr {
    Expr::Cmp(NFT_CMP_NEQ, data.to_vec())
}

fn accept() -> Expr {
    Expr::Verdict(NF_ACCEPT)
}

fn drop() -> Expr {
    Expr::Verdict(NF_DROP)
}

/// `ip frag-off & 0x1fff`: the fragment offset.
fn frag_offset() -> Vec<Expr> {
    vec![
        Expr::payload(Base::Network, 6, 2),
        Expr::Mask(vec![0x1f, 0xff]),
    ]
}

/// `icmpv6 type <t>`.
fn icmpv6_type(t: u8) -> Vec<Expr> {
    [
        ether_type(ETH_P_IPV6),
        l4proto(ICMPV6),
        vec![Expr::payload(Base::Transport, 0, 1), Expr::eq(&[t])],
    ]
    .concat()
}

/// `iif . ip saddr @v4`: from one of the port's IPv4 addresses.
fn own_ip_saddr() -> Vec<Expr> {
    [
        protocol(ETH_P_IP),
        own(V4, &[(Base::Network, 12, 4)], false),
    ]
    .concat()
}

/// `iif . ip6 saddr @v6`: from one of the port's IPv6 addresses.
fn own_ip6_saddr() -> Vec<Expr> {
    [
        protocol(ETH_P_IPV6),
        own(V6, &[(Base::Network, 8, 16)], false),
    ]
    .concat()
}

/// `ip saddr <a>`.
fn ip_saddr(a: &Ipv4Addr) -> Vec<Expr> {
    [
        protocol(ETH_P_IP),
        vec![Expr::payload(Base::Network, 12, 4), Expr::eq(&a.octets())],
    ]
    .concat()
}

/// `ip6 saddr <a>`.
fn ip6_saddr(a: &Ipv6Addr) -> Vec<Expr> {
    [
        protocol(ETH_P_IPV6),
        vec![Expr::payload(Base::Network, 8, 16), Expr::eq(&a.octets())],
    ]
    .concat()
}

/// The link layer, after the port's own rule on the source MAC: no
/// link-local group (STP, LLDP, pause frames), and only ARP, IPv4 and
/// IPv6.
fn link_rules() -> Vec<Vec<Expr>> {
    let load = Expr::payload;
    vec![
        vec![
            load(Base::Link, 0, 6),
            Expr::Mask(vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]),
            Expr::eq(&[0x01, 0x80, 0xc2, 0, 0, 0]),
            drop(),
        ],
        [ETH_P_ARP, ETH_P_IP, ETH_P_IPV6]
            .iter()
            .flat_map(|t| [load(Base::Link, 12, 2), ne(&t.to_be_bytes())])
            .chain([drop()])
            .collect(),
    ]
}

/// ARP from the port's MAC and one of its IPv4 addresses (or 0.0.0.0, for
/// duplicate address detection): the sender, with the host end, in the
/// [`SENDERS`] set.
fn arp_rule() -> Vec<Expr> {
    let load = Expr::payload;
    [
        ether_type(ETH_P_ARP),
        vec![
            // htype 1 ptype ip, hlen 6 plen 4: as nft merges them.
            load(Base::Network, 0, 4),
            Expr::eq(&[0, 1, 8, 0]),
            load(Base::Network, 4, 2),
            Expr::eq(&[6, 4]),
        ],
        own(
            SENDERS,
            &[(Base::Network, 8, 6), (Base::Network, 14, 4)],
            false,
        ),
        vec![accept()],
    ]
    .concat()
}

/// Only the whitelisted transport protocols of EtherType `t`, nothing
/// behind an IPsec header or in a tunnel; IPv4 protocol 0 neither. Where
/// the kernel could not parse the IP header, `meta l4proto` ends the rule
/// instead: every rule that accepts IP reads it, so such a packet meets
/// the policy.
fn protocol_rule(t: u16, allowed: &[u8]) -> Vec<Expr> {
    [
        protocol(t),
        allowed
            .iter()
            .flat_map(|p| [Expr::meta(NFT_META_L4PROTO), ne(&[*p])])
            .collect(),
        vec![drop()],
    ]
    .concat()
}

/// Nothing from a DHCP server's port, nothing to a client's (a raw-socket
/// client such as nclient4 checks the destination port only), read only
/// where the transport header is one (not in a non-first fragment, see the
/// module docs). One rule each: nft 1.0.6 merges `udp sport != 67 udp
/// dport != 68` into one comparison of both, which means something else.
fn dhcp_port_rules() -> Vec<Vec<Expr>> {
    [(0, 67u16), (2, 68)]
        .into_iter()
        .map(|(offset, port)| [first_ipv4_udp(), udp_port_is(offset, port)].concat())
        .collect()
}

/// [`dhcp_port_rules`] for DHCPv6 (546, 547): UDP right after the IPv6
/// header, or a first fragment's source port after the fragment header.
fn dhcpv6_port_rules() -> Vec<Vec<Expr>> {
    let mut rules: Vec<Vec<Expr>> = [(0, 547u16), (2, 546)]
        .into_iter()
        .map(|(offset, port)| {
            [
                protocol(ETH_P_IPV6),
                ip6_nexthdr(UDP),
                udp_port_is(offset, port),
            ]
            .concat()
        })
        .collect();
    rules.push(
        [
            protocol(ETH_P_IPV6),
            ip6_nexthdr(IPV6_FRAGMENT),
            vec![
                // The fragment header's offset: 0.
                Expr::payload(Base::Network, 42, 2),
                Expr::Mask(vec![0xff, 0xf8]),
                Expr::eq(&[0, 0]),
                // The UDP source port after it.
                Expr::payload(Base::Network, 48, 2),
                Expr::eq(&547u16.to_be_bytes()),
                drop(),
            ],
        ]
        .concat(),
    );
    rules
}

/// `th` at `offset` is `port`: drop.
fn udp_port_is(offset: u32, port: u16) -> Vec<Expr> {
    vec![
        Expr::payload(Base::Transport, offset, 2),
        Expr::eq(&port.to_be_bytes()),
        drop(),
    ]
}

/// `ip frag-off & 8191 == 0` and `meta l4proto udp`, as nft writes them
/// before a UDP port: IPv4 UDP, unfragmented or a first fragment.
fn first_ipv4_udp() -> Vec<Expr> {
    [
        protocol(ETH_P_IP),
        frag_offset(),
        vec![Expr::eq(&[0, 0])],
        l4proto(UDP),
    ]
    .concat()
}

/// `ip6 nexthdr <p>` (after `meta protocol ip6`).
fn ip6_nexthdr(p: u8) -> Vec<Expr> {
    vec![Expr::payload(Base::Network, 6, 1), Expr::eq(&[p])]
}

/// IPv4 from the port's addresses (fragments only where they cannot read
/// as a reply to a DHCP client).
fn ipv4_rules() -> Vec<Vec<Expr>> {
    let load = Expr::payload;
    vec![
        [
            own_ip_saddr(),
            vec![Expr::meta(NFT_META_L4PROTO), ne(&[UDP]), accept()],
        ]
        .concat(),
        // UDP, whole or a first fragment: its ports were checked in common.
        [
            own_ip_saddr(),
            l4proto(UDP),
            frag_offset(),
            vec![Expr::eq(&[0, 0]), accept()],
        ]
        .concat(),
        [
            own_ip_saddr(),
            l4proto(UDP),
            frag_offset(),
            vec![
                ne(&[0, 0]),
                // ip hdrlength 5
                load(Base::Network, 0, 1),
                Expr::Mask(vec![0x0f]),
                Expr::eq(&[5]),
                // Where a UDP destination port would be.
                load(Base::Network, 22, 2),
                ne(&68u16.to_be_bytes()),
                accept(),
            ],
        ]
        .concat(),
    ]
}

/// DHCP discovery from 0.0.0.0 (whole, from port 68 to 67).
fn dhcp_discovery_rule() -> Vec<Expr> {
    [
        ip_saddr(&Ipv4Addr::UNSPECIFIED),
        frag_offset(),
        vec![Expr::eq(&[0, 0])],
        l4proto(UDP),
        // udp sport 68 udp dport 67, as nft merges them.
        vec![
            Expr::payload(Base::Transport, 0, 4),
            Expr::eq(&[0, 68, 0, 67]),
            accept(),
        ],
    ]
    .concat()
}

/// IPv6 from the port's addresses (fragments only where they cannot read
/// as a reply to a DHCPv6 client).
fn ipv6_rules() -> Vec<Vec<Expr>> {
    let load = Expr::payload;
    vec![
        [
            own_ip6_saddr(),
            vec![Expr::meta(NFT_META_L4PROTO), ne(&[UDP]), accept()],
        ]
        .concat(),
        // UDP right after the IPv6 header: its ports were checked in common.
        [
            own_ip6_saddr(),
            l4proto(UDP),
            ip6_nexthdr(UDP),
            vec![accept()],
        ]
        .concat(),
        [
            own_ip6_saddr(),
            l4proto(UDP),
            ip6_nexthdr(IPV6_FRAGMENT),
            vec![
                // UDP right after the fragment header: behind another
                // extension header (destination options, say) the reads
                // below and the port drops would not see UDP's ports, so
                // such a packet meets the final drop.
                load(Base::Network, 40, 1),
                Expr::eq(&[UDP]),
                // Where a UDP destination port would be, after the
                // fragment header.
                load(Base::Network, 50, 2),
                ne(&546u16.to_be_bytes()),
                accept(),
            ],
        ]
        .concat(),
    ]
}

/// ICMPv6 of type `t` from `::` (neighbour solicitations for duplicate
/// address detection, MLD reports).
fn from_unspecified(t: u8) -> Vec<Expr> {
    [
        ip6_saddr(&Ipv6Addr::UNSPECIFIED),
        l4proto(ICMPV6),
        vec![
            Expr::payload(Base::Transport, 0, 1),
            Expr::eq(&[t]),
            accept(),
        ],
    ]
    .concat()
}

mod neighbour;
#[cfg(test)]
mod tests;
