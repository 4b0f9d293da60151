//! The guard's layer 3: what a container's host end may receive from the
//! container. Each guarded host end has a netdev table of its own,
//! `<table>_port_<name>` ([`guard_table_name`]), holding one base chain on
//! that device's ingress hook, `port_<name>` ([`guard_chain_name`]; the
//! name escaped so that nft reads the listing back whatever it is). For a
//! port with MAC `M`, IPv4 addresses `A...` and IPv6
//! addresses `X...` (nft 1.0.6 lists it so, and loads the listing back as
//! the same rules):
//!
//! ```text
//! chain port_veth0a0a0a02 {
//!     type filter hook ingress device "veth0a0a0a02" priority -500; policy drop;
//!     ether saddr != M drop
//!     ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop
//!     ether type != arp ether type != ip ether type != ip6 drop
//!     arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether M arp saddr ip A accept      (each A)
//!     arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether M arp saddr ip 0.0.0.0 accept
//!     meta protocol ip meta l4proto != tcp meta l4proto != udp meta l4proto != icmp meta l4proto != igmp meta l4proto != sctp drop
//!     meta protocol ip6 meta l4proto != tcp meta l4proto != udp meta l4proto != ipv6-icmp meta l4proto != sctp drop
//!     ip frag-off & 8191 == 0 udp sport 67 drop
//!     ip frag-off & 8191 == 0 udp dport 68 drop
//!     ip6 nexthdr udp udp sport 547 drop
//!     ip6 nexthdr udp udp dport 546 drop
//!     ip6 nexthdr ipv6-frag @nh,336,16 & 0xfff8 == 0x0 @nh,384,16 0x223 drop
//!     ip saddr A meta l4proto != udp accept                                        (each A)
//!     ip saddr A meta l4proto udp ip frag-off & 8191 == 0 accept
//!     ip saddr A meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5 @nh,176,16 != 0x44 accept
//!     ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67 accept
//!     icmpv6 type nd-router-advert drop
//!     icmpv6 type nd-redirect drop
//!     icmpv6 type nd-router-solicit ip6 nexthdr != ipv6-icmp drop
//!     icmpv6 type nd-router-solicit ip6 length != 8 ip6 length != 16 drop
//!     icmpv6 type nd-router-solicit ip6 length 16 @th,64,64 != 0x0101M drop
//!     icmpv6 type nd-neighbor-solicit ip6 nexthdr != ipv6-icmp drop
//!     icmpv6 type nd-neighbor-solicit ip6 length != 24 ip6 length != 32 drop
//!     icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: @th,192,64 != 0x0101M drop
//!     icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr :: @th,192,16 != 0xe01 drop
//!     icmpv6 type nd-neighbor-solicit ip6 saddr :: @th,64,128 != X ... drop
//!     icmpv6 type nd-neighbor-advert ip6 nexthdr != ipv6-icmp drop
//!     icmpv6 type nd-neighbor-advert ip6 length != 24 ip6 length != 32 drop
//!     icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,64 != 0x0201M drop
//!     icmpv6 type nd-neighbor-advert @th,64,128 != X ... drop
//!     ip6 saddr X meta l4proto != udp accept                                       (each X)
//!     ip6 saddr X meta l4proto udp ip6 nexthdr udp accept
//!     ip6 saddr X meta l4proto udp ip6 nexthdr ipv6-frag @nh,400,16 != 0x222 accept
//!     ip6 saddr :: icmpv6 type nd-neighbor-solicit accept
//!     ip6 saddr :: icmpv6 type mld2-listener-report accept
//! }
//! ```
//!
//! # Why every frame passes it
//!
//! A frame the container sends leaves its veth end and is received by the
//! host end: `veth_xmit` hands it to the host end's receive path, and
//! `__netif_receive_skb_core` runs, in this order, the packet taps, tc
//! ingress, then netfilter's netdev ingress hook (`nf_ingress`), and only
//! then the device's `rx_handler`, which for a bridge port is
//! `br_handle_frame`: the bridge's forwarding, its local delivery, its
//! learning, the link-local groups' special path (`__br_handle_local_finish`)
//! and the host end's own IP stack all come after this chain. It runs for
//! every EtherType and whatever the destination. A VLAN tag the device took
//! out of the frame (`skb_vlan_untag` before the hook, or one that travels
//! in `skb->vlan_tci` from the start) is put back by the link-layer payload
//! load (`nft_payload_copy_vlan`), so `ether type` reads 802.1Q or 802.1ad
//! and the whitelist on `ether type` drops the frame.
//!
//! The `ip`, `ip6`, `arp` and `icmpv6` matches are behind `meta protocol`
//! (what nft itself writes for that text, so the rules load back from a
//! listing as they are): `skb->protocol` is the inner type of a tagged
//! frame, but tagged frames never get past the `ether type` whitelist,
//! which is written as `ether type !=` matches because nft prints an
//! `ether type` equality in front of `ip ...` as nothing and reads it back
//! as `meta protocol`.
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
//!
//! # Neighbour discovery
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
//!
//! Everything is a constant of the port's own chain: a packet walks only its
//! port's rules, and adding or removing a port costs the same whatever the
//! number of others. That is why each port has a table of its own: rules
//! with verdicts or `meta` loads mark their table as needing validation
//! (`NFT_VALIDATE_NEED`), and the commit then walks every base chain and
//! rule of that table (`nft_table_validate`); with one table for all ports
//! a port's batch took time in proportion to the number of ports (about
//! 7.7 ms with 1000 on 6.18, against 1.9 ms with a table per port). The
//! validation state is per table (`table->validate_state`) since "netfilter:
//! nf_tables: make validation state per table" (around 6.2/6.3); before it
//! (5.10 among them) it is per network namespace and every table is walked,
//! so there a port's batch still grows with the number of ports, whatever
//! the tables. The bridge's forwarding database is guarded in the
//! bridge itself (see [`Learning::Pinned`](crate::Learning::Pinned)), where
//! no ruleset flush reaches it.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::batch::Batch;
use super::expr::{
    Base, Expr, NFT_CMP_NEQ, NFT_META_IIFTYPE, NFT_META_L4PROTO, NFT_META_PROTOCOL, NF_ACCEPT,
    NF_DROP,
};
use super::guarded_port::GuardedPort;
use super::proto::{check_table, Family};
use super::socket::Nftables;
use crate::error::Result;
use crate::links::check_name;

/// Before everything nft users usually hook at netdev ingress.
const PRIORITY: i32 = -500;
/// `ARPHRD_ETHER`: what nft checks before an `ether` match in a netdev table.
const ARPHRD_ETHER: u16 = 1;
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
const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_REDIRECT: u8 = 137;
const MLD2_LISTENER_REPORT: u8 = 143;
const ND_OPT_SOURCE_LLADDR: u8 = 1;
const ND_OPT_TARGET_LLADDR: u8 = 2;
/// RFC 7527's nonce, which Linux puts in its duplicate address detection.
const ND_OPT_NONCE: u8 = 14;

impl Nftables {
    /// The guard of containers' host ends, each in a netdev table of its
    /// own whose name starts with `<table>_` ([`guard_table_name`]).
    pub fn guard<'a>(&'a self, table: &'a str) -> Guard<'a> {
        Guard { nft: self, table }
    }
}

/// The guard of host ends, a netdev table each: [`Nftables::guard`].
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    nft: &'a Nftables,
    table: &'a str,
}

impl<'a> Guard<'a> {
    /// Guards `port`: from then on its host end receives only frames from
    /// its MAC with its addresses (and ARP and neighbour discovery for
    /// those, DHCP discovery, duplicate address detection), nothing posing
    /// as a DHCP server or a router. One batch: the port's table if missing,
    /// its chain if missing, its rules replaced by the port's; so it may
    /// be run again at any time (after a ruleset flush, say) and leaves the
    /// same chain. On kernels before 6.16 the host end must exist.
    pub fn allow(self, port: &GuardedPort) -> AllowPort<'a> {
        AllowPort {
            at: self,
            port: port.clone(),
        }
    }

    /// Stops guarding `port`: deletes its table, chain and all, if there is
    /// one. (Before Linux 6.16 the kernel deletes a single-device netdev
    /// chain itself when the device goes away, leaving the empty table;
    /// from 6.16 on the chain stays.)
    pub fn forget(self, port: &GuardedPort) -> ForgetPort<'a> {
        ForgetPort {
            at: self,
            port: port.clone(),
        }
    }

    /// Whether `port`'s chain is there, in its table, with as many rules
    /// as the guard gives it.
    pub fn present(self, port: &GuardedPort) -> Result<bool> {
        let table = checked_table(self.table, &port.ifname)?;
        let rules = self
            .nft
            .rules(Family::Netdev, &table, &guard_chain_name(&port.ifname))?;
        Ok(rules.len() == guard_rules(port).len())
    }
}

/// A request of [`Guard::allow`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct AllowPort<'a> {
    at: Guard<'a>,
    port: GuardedPort,
}

impl AllowPort<'_> {
    /// Applies it.
    pub fn execute(self) -> Result<()> {
        let Guard { nft, table } = self.at;
        let name = &self.port.ifname;
        let table = &checked_table(table, name)?;
        let chain = guard_chain_name(name);
        let mut batch = Batch::new(nft, Family::Netdev, None, format!("guard port {name}"));
        batch.table(Family::Netdev, table);
        batch.ingress_chain(table, &chain, name, PRIORITY);
        batch.flush_chain(Family::Netdev, table, &chain);
        for (i, rule) in guard_rules(&self.port).iter().enumerate() {
            batch.rule(
                Family::Netdev,
                table,
                &chain,
                rule,
                None,
                &format!("rule {}", i + 1),
            );
        }
        batch.commit_once()
    }
}

/// A request of [`Guard::forget`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct ForgetPort<'a> {
    at: Guard<'a>,
    port: GuardedPort,
}

impl ForgetPort<'_> {
    /// Applies it. Returns `true` when a table was deleted (possibly one
    /// whose chain the kernel had deleted with its device).
    pub fn execute(self) -> Result<bool> {
        let Guard { nft, table } = self.at;
        let name = &self.port.ifname;
        let table = checked_table(table, name)?;
        let mut batch = Batch::new(nft, Family::Netdev, None, format!("forget port {name}"));
        batch.delete_table(Family::Netdev, &table);
        match batch.commit_once() {
            Ok(()) => Ok(true),
            // No table.
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The name of the netdev table of host end `ifname` (a name
/// [`check_name`] accepts) for the guard of [`Nftables::guard`]`(table)`:
/// `<table>_` and its chain's name ([`guard_chain_name`]), so
/// `netsetgo_port_veth0a0a0a02` for `netsetgo` and `veth0a0a0a02`.
pub fn guard_table_name(table: &str, ifname: &str) -> String {
    format!("{table}_{}", guard_chain_name(ifname))
}

/// [`guard_table_name`], once `table` and `ifname` are valid names and so
/// is the result.
fn checked_table(table: &str, ifname: &str) -> Result<String> {
    check_table(table)?;
    check_name(ifname)?;
    let name = guard_table_name(table, ifname);
    check_table(&name)?;
    Ok(name)
}

/// The name of the chain of host end `ifname` (a name [`check_name`]
/// accepts): `port_` and the name with `_` written `__`, `.` `_d` and `-`
/// `_h`. nft 1.0.6 lists chain names unquoted and reads back only plain
/// identifiers (a leading digit, a `.` or a keyword fail), so the whole
/// listing would not load; each host end still has a chain of its own.
pub fn guard_chain_name(ifname: &str) -> String {
    let mut out = String::from("port_");
    for c in ifname.chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            '-' => out.push_str("_h"),
            c => out.push(c),
        }
    }
    out
}

/// The rules of `port`'s chain, in order, each as nft 1.0.6 writes the
/// text in the module docs.
fn guard_rules(port: &GuardedPort) -> Vec<Vec<Expr>> {
    let mut rules = link_rules(&port.mac);
    rules.extend(arp_rules(port));
    rules.extend(protocol_rules());
    rules.extend(server_port_rules());
    rules.extend(ipv4_rules(&port.ipv4));
    rules.extend(neighbour_discovery_rules(port));
    rules.extend(ipv6_rules(&port.ipv6));
    rules
}

/// `meta iiftype ether`: what nft puts before an `ether` match.
fn ether() -> Vec<Expr> {
    vec![
        Expr::meta(NFT_META_IIFTYPE),
        Expr::eq(&ARPHRD_ETHER.to_ne_bytes()),
    ]
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
        protocol(ETH_P_IPV6),
        l4proto(ICMPV6),
        vec![Expr::payload(Base::Transport, 0, 1), Expr::eq(&[t])],
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

/// The link layer: the port's MAC only, no link-local group (STP, LLDP,
/// pause frames), and only ARP, IPv4 and IPv6.
fn link_rules(mac: &[u8; 6]) -> Vec<Vec<Expr>> {
    let load = Expr::payload;
    vec![
        [ether(), vec![load(Base::Link, 6, 6), ne(mac), drop()]].concat(),
        [
            ether(),
            vec![
                load(Base::Link, 0, 6),
                Expr::Mask(vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]),
                Expr::eq(&[0x01, 0x80, 0xc2, 0, 0, 0]),
                drop(),
            ],
        ]
        .concat(),
        [
            ether(),
            [ETH_P_ARP, ETH_P_IP, ETH_P_IPV6]
                .iter()
                .flat_map(|t| [load(Base::Link, 12, 2), ne(&t.to_be_bytes())])
                .collect(),
            vec![drop()],
        ]
        .concat(),
    ]
}

/// ARP from the port's MAC and one of its IPv4 addresses (or 0.0.0.0, for
/// duplicate address detection).
fn arp_rules(port: &GuardedPort) -> Vec<Vec<Expr>> {
    let load = Expr::payload;
    let mut rules = Vec::new();
    for a in port.ipv4.iter().chain([&Ipv4Addr::UNSPECIFIED]) {
        // htype 1 ptype ip, hlen 6 plen 4, sender MAC and address: as nft
        // merges them.
        let mut sender = port.mac.to_vec();
        sender.extend_from_slice(&a.octets());
        rules.push(
            [
                protocol(ETH_P_ARP),
                vec![
                    load(Base::Network, 0, 4),
                    Expr::eq(&[0, 1, 8, 0]),
                    load(Base::Network, 4, 2),
                    Expr::eq(&[6, 4]),
                    load(Base::Network, 8, 10),
                    Expr::eq(&sender),
                    accept(),
                ],
            ]
            .concat(),
        );
    }
    rules
}

/// Only the whitelisted transport protocols, nothing behind an IPsec header
/// or in a tunnel; IPv4 protocol 0 neither. Where the kernel could not
/// parse the IP header, `meta l4proto` ends the rule instead: every rule
/// that accepts IP reads it, so such a packet meets the policy.
fn protocol_rules() -> Vec<Vec<Expr>> {
    [(ETH_P_IP, IPV4_ALLOWED), (ETH_P_IPV6, IPV6_ALLOWED)]
        .into_iter()
        .map(|(t, allowed)| {
            [
                protocol(t),
                allowed
                    .iter()
                    .flat_map(|p| [Expr::meta(NFT_META_L4PROTO), ne(&[*p])])
                    .collect(),
                vec![drop()],
            ]
            .concat()
        })
        .collect()
}

/// Nothing from a DHCP or DHCPv6 server's port, nothing to a client's (a
/// raw-socket client such as nclient4 checks the destination port only),
/// read only where the transport header is one (not in a non-first
/// fragment, see the module docs). One rule each: nft 1.0.6 merges `udp
/// sport != 67 udp dport != 68` into one comparison of both, which means
/// something else.
fn server_port_rules() -> Vec<Vec<Expr>> {
    let port_is = |offset, port: u16| {
        vec![
            Expr::payload(Base::Transport, offset, 2),
            Expr::eq(&port.to_be_bytes()),
            drop(),
        ]
    };
    let mut rules: Vec<Vec<Expr>> = [(0, 67u16), (2, 68)]
        .into_iter()
        .map(|(offset, port)| [first_ipv4_udp(), port_is(offset, port)].concat())
        .collect();
    rules.extend([(0, 547u16), (2, 546)].into_iter().map(|(offset, port)| {
        [
            protocol(ETH_P_IPV6),
            ip6_nexthdr(UDP),
            port_is(offset, port),
        ]
        .concat()
    }));
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
/// as a reply to a DHCP client), and DHCP discovery from 0.0.0.0.
fn ipv4_rules(addresses: &[Ipv4Addr]) -> Vec<Vec<Expr>> {
    let load = Expr::payload;
    let mut rules = Vec::new();
    for a in addresses {
        rules.push(
            [
                ip_saddr(a),
                vec![Expr::meta(NFT_META_L4PROTO), ne(&[UDP]), accept()],
            ]
            .concat(),
        );
        // UDP, whole or a first fragment: its ports were checked above.
        rules.push(
            [
                ip_saddr(a),
                l4proto(UDP),
                frag_offset(),
                vec![Expr::eq(&[0, 0]), accept()],
            ]
            .concat(),
        );
        rules.push(
            [
                ip_saddr(a),
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
        );
    }
    rules.push(
        [
            ip_saddr(&Ipv4Addr::UNSPECIFIED),
            frag_offset(),
            vec![Expr::eq(&[0, 0])],
            l4proto(UDP),
            // udp sport 68 udp dport 67, as nft merges them.
            vec![
                load(Base::Transport, 0, 4),
                Expr::eq(&[0, 68, 0, 67]),
                accept(),
            ],
        ]
        .concat(),
    );
    rules
}

/// No router advertisement or redirect. Neighbour discovery names only
/// the port's MAC: no extension header, and the IPv6 payload length bounds
/// the message to its fixed part alone or with one link-layer address
/// option (length 1) holding the port's MAC. The unspecified source sends
/// only duplicate address detection: a solicitation of one of the port's
/// own addresses, with no option or a nonce (RFC 7527), never a link-layer
/// address. No neighbour advertisement for another target.
fn neighbour_discovery_rules(port: &GuardedPort) -> Vec<Vec<Expr>> {
    let mut rules = vec![
        [icmpv6_type(ND_ROUTER_ADVERT), vec![drop()]].concat(),
        [icmpv6_type(ND_REDIRECT), vec![drop()]].concat(),
    ];
    let load = Expr::payload;
    let payload_length = || load(Base::Network, 4, 2);
    let saddr = || load(Base::Network, 8, 16);
    let any = Ipv6Addr::UNSPECIFIED.octets();
    let own_targets = || -> Vec<Expr> {
        port.ipv6
            .iter()
            .flat_map(|x| [load(Base::Transport, 8, 16), ne(&x.octets())])
            .collect()
    };
    for (t, fixed, option) in [
        (ND_ROUTER_SOLICIT, 8u16, ND_OPT_SOURCE_LLADDR),
        (ND_NEIGHBOR_SOLICIT, 24, ND_OPT_SOURCE_LLADDR),
        (ND_NEIGHBOR_ADVERT, 24, ND_OPT_TARGET_LLADDR),
    ] {
        let with_option = (fixed + 8).to_be_bytes();
        let mut lladdr = vec![option, 1];
        lladdr.extend_from_slice(&port.mac);
        let option_load = |len| load(Base::Transport, u32::from(fixed), len);
        rules.push(
            [
                icmpv6_type(t),
                vec![load(Base::Network, 6, 1), ne(&[ICMPV6]), drop()],
            ]
            .concat(),
        );
        rules.push(
            [
                icmpv6_type(t),
                vec![
                    payload_length(),
                    ne(&fixed.to_be_bytes()),
                    payload_length(),
                    ne(&with_option),
                    drop(),
                ],
            ]
            .concat(),
        );
        let mut option_rule = [
            icmpv6_type(t),
            vec![payload_length(), Expr::eq(&with_option)],
        ]
        .concat();
        if t == ND_NEIGHBOR_SOLICIT {
            option_rule.extend([saddr(), ne(&any)]);
        }
        option_rule.extend([option_load(8), ne(&lladdr), drop()]);
        rules.push(option_rule);
        match t {
            ND_NEIGHBOR_SOLICIT => {
                rules.push(
                    [
                        icmpv6_type(t),
                        vec![
                            payload_length(),
                            Expr::eq(&with_option),
                            saddr(),
                            Expr::eq(&any),
                            option_load(2),
                            ne(&[ND_OPT_NONCE, 1]),
                            drop(),
                        ],
                    ]
                    .concat(),
                );
                rules.push(
                    [
                        icmpv6_type(t),
                        vec![saddr(), Expr::eq(&any)],
                        own_targets(),
                        vec![drop()],
                    ]
                    .concat(),
                );
            }
            // A neighbour advertisement's target address is none of the
            // port's.
            ND_NEIGHBOR_ADVERT => {
                rules.push([icmpv6_type(t), own_targets(), vec![drop()]].concat())
            }
            _ => {}
        }
    }
    rules
}

/// IPv6 from the port's addresses (fragments only where they cannot read
/// as a reply to a DHCPv6 client), and neighbour solicitation and MLD
/// reports from `::`.
fn ipv6_rules(addresses: &[Ipv6Addr]) -> Vec<Vec<Expr>> {
    let load = Expr::payload;
    let mut rules = Vec::new();
    for x in addresses {
        rules.push(
            [
                ip6_saddr(x),
                vec![Expr::meta(NFT_META_L4PROTO), ne(&[UDP]), accept()],
            ]
            .concat(),
        );
        // UDP right after the IPv6 header: its ports were checked above.
        rules.push([ip6_saddr(x), l4proto(UDP), ip6_nexthdr(UDP), vec![accept()]].concat());
        rules.push(
            [
                ip6_saddr(x),
                l4proto(UDP),
                ip6_nexthdr(IPV6_FRAGMENT),
                vec![
                    // Where a UDP destination port would be, after the
                    // fragment header.
                    load(Base::Network, 50, 2),
                    ne(&546u16.to_be_bytes()),
                    accept(),
                ],
            ]
            .concat(),
        );
    }
    for t in [ND_NEIGHBOR_SOLICIT, MLD2_LISTENER_REPORT] {
        rules.push(
            [
                ip6_saddr(&Ipv6Addr::UNSPECIFIED),
                l4proto(ICMPV6),
                vec![load(Base::Transport, 0, 1), Expr::eq(&[t]), accept()],
            ]
            .concat(),
        );
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port() -> GuardedPort {
        GuardedPort {
            ifname: "ga0".into(),
            mac: [2, 0x6e, 10, 77, 0, 2],
            ipv4: vec!["10.77.0.2".parse().unwrap()],
            ipv6: vec![
                "fd00:77::2".parse().unwrap(),
                "fe80::6e:aff:fe4d:2".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn chain_names_are_plain_identifiers_one_per_host_end() {
        assert_eq!(guard_chain_name("veth0a0a0a02"), "port_veth0a0a0a02");
        assert_eq!(guard_chain_name("9v.a-b_0"), "port_9v_da_hb__0");
        assert_ne!(guard_chain_name("a_d"), guard_chain_name("a."));
        assert_ne!(guard_chain_name("a_h"), guard_chain_name("a-"));
        assert_eq!(
            guard_table_name("netsetgo", "9v.a-b_0"),
            "netsetgo_port_9v_da_hb__0"
        );
    }

    #[test]
    fn table_names_are_checked() {
        assert_eq!(
            checked_table("netsetgo", "veth0a0a0a02").unwrap(),
            "netsetgo_port_veth0a0a0a02"
        );
        assert!(checked_table("net setgo", "veth0").is_err());
        assert!(checked_table("netsetgo", "a/b").is_err());
        // Valid alone, too long with the host end's name.
        assert!(checked_table(&"t".repeat(60), "veth0").is_err());
    }

    #[test]
    fn guard_rules_match_what_nft_generates() {
        let rules = guard_rules(&port());
        // 3 link-layer rules, 2 ARP, 2 protocol whitelists, 5 DHCP ports, 3
        // per IPv4 address, DHCP discovery, 2 RA and redirect, 3 RS, 5 NS,
        // 4 NA, 3 per IPv6 address, 2 from `::`.
        assert_eq!(rules.len(), 3 + 2 + 2 + 5 + 3 + 1 + 2 + 3 + 5 + 4 + 6 + 2);
        // `ether saddr != 02:6e:0a:4d:00:02 drop` (nft --debug=netlink, netdev):
        // [ meta load iiftype => reg 1 ] [ cmp eq reg 1 0x00000001 ]
        // [ payload load 6b @ link header + 6 => reg 1 ]
        // [ cmp neq reg 1 0x4d0a6e02 0x00000200 ] [ immediate reg 0 drop ]
        assert_eq!(
            rules[0],
            vec![
                Expr::meta(NFT_META_IIFTYPE),
                Expr::eq(&1u16.to_ne_bytes()),
                Expr::payload(Base::Link, 6, 6),
                Expr::Cmp(NFT_CMP_NEQ, vec![2, 0x6e, 10, 77, 0, 2]),
                Expr::Verdict(NF_DROP),
            ]
        );
        // `ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop`:
        // [ bitwise reg 1 = ( reg 1 & 0xffffffff 0x0000f0ff ) ^ 0 ]
        // [ cmp eq reg 1 0x00c28001 0x00000000 ]
        assert_eq!(
            rules[1][3],
            Expr::Mask(vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xf0])
        );
        assert_eq!(rules[1][4], Expr::eq(&[1, 0x80, 0xc2, 0, 0, 0]));
        // `ether type != arp ether type != ip ether type != ip6 drop`: three
        // loads of link header + 12, each `cmp neq`.
        assert_eq!(rules[2].len(), 2 + 6 + 1);
        assert_eq!(rules[2][7], Expr::Cmp(NFT_CMP_NEQ, vec![0x86, 0xdd]));
        // ARP: [ meta load protocol ] [ cmp eq reg 1 0x00000608 ] ...
        // [ payload load 10b @ network header + 8 ]
        // [ cmp eq reg 1 0x4d0a6e02 0x4d0a0200 0x00000200 ]
        assert_eq!(rules[3][1], Expr::eq(&[8, 6]));
        assert_eq!(
            rules[3][7],
            Expr::eq(&[2, 0x6e, 10, 77, 0, 2, 10, 77, 0, 2])
        );
        assert_eq!(rules[4][7], Expr::eq(&[2, 0x6e, 10, 77, 0, 2, 0, 0, 0, 0]));
        // `meta protocol ip meta l4proto != tcp meta l4proto != udp meta
        // l4proto != icmp meta l4proto != igmp meta l4proto != sctp drop`:
        // [ meta load protocol ] [ cmp eq reg 1 0x00000008 ], then each
        // [ meta load l4proto ] [ cmp neq reg 1 0x00000006 ] ... 0x00000084.
        let not = |p: u8| {
            [
                Expr::meta(NFT_META_L4PROTO),
                Expr::Cmp(NFT_CMP_NEQ, vec![p]),
            ]
        };
        assert_eq!(
            rules[5],
            [
                vec![Expr::meta(NFT_META_PROTOCOL), Expr::eq(&[8, 0])],
                [6, 17, 1, 2, 0x84].into_iter().flat_map(not).collect(),
                vec![Expr::Verdict(NF_DROP)],
            ]
            .concat()
        );
        // The IPv6 one: protocol 0x0000dd86, not 6, 17, 0x3a, 0x84.
        assert_eq!(rules[6][1], Expr::eq(&[0x86, 0xdd]));
        assert_eq!(
            rules[6][2..10],
            [6, 17, 0x3a, 0x84]
                .into_iter()
                .flat_map(not)
                .collect::<Vec<_>>()
        );
        // `ip frag-off & 8191 == 0 udp dport 68 drop`: [ meta load protocol ]
        // [ cmp eq reg 1 0x00000008 ] [ payload load 2b @ network header + 6 ]
        // [ bitwise reg 1 = ( reg 1 & 0x0000ff1f ) ^ 0 ] [ cmp eq reg 1 0 ]
        // [ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x00000011 ]
        // [ payload load 2b @ transport header + 2 ]
        // [ cmp eq reg 1 0x00004400 ] [ immediate reg 0 drop ]
        assert_eq!(
            rules[8],
            vec![
                Expr::meta(NFT_META_PROTOCOL),
                Expr::eq(&[8, 0]),
                Expr::payload(Base::Network, 6, 2),
                Expr::Mask(vec![0x1f, 0xff]),
                Expr::eq(&[0, 0]),
                Expr::meta(NFT_META_L4PROTO),
                Expr::eq(&[17]),
                Expr::payload(Base::Transport, 2, 2),
                Expr::eq(&[0, 68]),
                Expr::Verdict(NF_DROP)
            ]
        );
        // `ip6 nexthdr udp udp sport 547 drop`: [ meta load protocol ]
        // [ cmp eq reg 1 0x0000dd86 ] [ payload load 1b @ network header + 6 ]
        // [ cmp eq reg 1 0x00000011 ] [ payload load 2b @ transport header + 0 ]
        // [ cmp eq reg 1 0x00002302 ] [ immediate reg 0 drop ]
        assert_eq!(
            rules[9],
            vec![
                Expr::meta(NFT_META_PROTOCOL),
                Expr::eq(&[0x86, 0xdd]),
                Expr::payload(Base::Network, 6, 1),
                Expr::eq(&[17]),
                Expr::payload(Base::Transport, 0, 2),
                Expr::eq(&[2, 0x23]),
                Expr::Verdict(NF_DROP)
            ]
        );
        // `ip6 nexthdr ipv6-frag @nh,336,16 & 0xfff8 == 0x0 @nh,384,16 0x223
        // drop`: ... [ cmp eq reg 1 0x0000002c ]
        // [ payload load 2b @ network header + 42 ]
        // [ bitwise reg 1 = ( reg 1 & 0x0000f8ff ) ^ 0 ] [ cmp eq reg 1 0 ]
        // [ payload load 2b @ network header + 48 ] [ cmp eq reg 1 0x00002302 ]
        assert_eq!(
            rules[11][2..],
            [
                Expr::payload(Base::Network, 6, 1),
                Expr::eq(&[44]),
                Expr::payload(Base::Network, 42, 2),
                Expr::Mask(vec![0xff, 0xf8]),
                Expr::eq(&[0, 0]),
                Expr::payload(Base::Network, 48, 2),
                Expr::eq(&[2, 0x23]),
                Expr::Verdict(NF_DROP)
            ]
        );
        // `ip saddr A meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5
        // @nh,176,16 != 0x44`: [ meta load l4proto ] [ cmp eq reg 1 0x00000011 ]
        // [ payload load 2b @ network header + 6 ] [ bitwise ( & 0x0000ff1f ) ]
        // [ cmp neq reg 1 0 ] [ payload load 1b @ network header + 0 ]
        // [ bitwise ( & 0x0f ) ] [ cmp eq 5 ] [ payload load 2b @ network header + 22 ]
        // [ cmp neq reg 1 0x00004400 ]
        assert_eq!(
            rules[14][4..8],
            [
                Expr::meta(NFT_META_L4PROTO),
                Expr::eq(&[17]),
                Expr::payload(Base::Network, 6, 2),
                Expr::Mask(vec![0x1f, 0xff])
            ]
        );
        assert_eq!(rules[14][12], Expr::payload(Base::Network, 22, 2));
        assert_eq!(rules[14][13], Expr::Cmp(NFT_CMP_NEQ, vec![0, 68]));
        // `ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67
        // accept`: [ payload load 2b @ network header + 6 ] [ bitwise ( &
        // 0x0000ff1f ) ] [ cmp eq reg 1 0 ] [ meta load l4proto ] ...
        // [ payload load 4b @ transport header + 0 ] [ cmp eq reg 1 0x43004400 ]
        assert_eq!(rules[15][4..7], first_ipv4_udp()[2..5]);
        assert_eq!(rules[15][10], Expr::eq(&[0, 68, 0, 67]));
        // `icmpv6 type nd-neighbor-solicit ip6 nexthdr != ipv6-icmp drop`:
        // [ meta load protocol ] [ cmp eq reg 1 0x0000dd86 ]
        // [ meta load l4proto ] [ cmp eq reg 1 0x0000003a ]
        // [ payload load 1b @ transport header + 0 ] [ cmp eq reg 1 0x00000087 ]
        // [ payload load 1b @ network header + 6 ] [ cmp neq reg 1 0x0000003a ]
        let ns = [
            Expr::meta(NFT_META_PROTOCOL),
            Expr::eq(&[0x86, 0xdd]),
            Expr::meta(NFT_META_L4PROTO),
            Expr::eq(&[0x3a]),
            Expr::payload(Base::Transport, 0, 1),
            Expr::eq(&[0x87]),
        ];
        assert_eq!(
            rules[21],
            [
                ns.to_vec(),
                vec![
                    Expr::payload(Base::Network, 6, 1),
                    Expr::Cmp(NFT_CMP_NEQ, vec![0x3a]),
                    Expr::Verdict(NF_DROP)
                ]
            ]
            .concat()
        );
        // `... ip6 length != 24 ip6 length != 32 drop`:
        // [ payload load 2b @ network header + 4 ] [ cmp neq reg 1 0x00001800 ]
        // [ payload load 2b @ network header + 4 ] [ cmp neq reg 1 0x00002000 ]
        assert_eq!(
            rules[22][6..],
            [
                Expr::payload(Base::Network, 4, 2),
                Expr::Cmp(NFT_CMP_NEQ, vec![0, 24]),
                Expr::payload(Base::Network, 4, 2),
                Expr::Cmp(NFT_CMP_NEQ, vec![0, 32]),
                Expr::Verdict(NF_DROP)
            ]
        );
        // `... ip6 length 32 ip6 saddr != :: @th,192,64 != 0x101026e0a4d0002
        // drop`: [ cmp eq reg 1 0x00002000 ] [ payload load 16b @ network
        // header + 8 ] [ cmp neq reg 1 0 0 0 0 ] [ payload load 8b @ transport
        // header + 24 ] [ cmp neq reg 1 0x6e020101 0x02004d0a ]
        assert_eq!(
            rules[23],
            [
                ns.to_vec(),
                vec![
                    Expr::payload(Base::Network, 4, 2),
                    Expr::eq(&[0, 32]),
                    Expr::payload(Base::Network, 8, 16),
                    Expr::Cmp(NFT_CMP_NEQ, vec![0; 16]),
                    Expr::payload(Base::Transport, 24, 8),
                    Expr::Cmp(NFT_CMP_NEQ, vec![1, 1, 2, 0x6e, 10, 77, 0, 2]),
                    Expr::Verdict(NF_DROP)
                ]
            ]
            .concat()
        );
        // `... ip6 length 32 ip6 saddr :: @th,192,16 != 0xe01 drop`:
        // [ payload load 2b @ transport header + 24 ] [ cmp neq reg 1 0x0000010e ]
        assert_eq!(rules[24][9], Expr::eq(&[0; 16]));
        assert_eq!(rules[24][10], Expr::payload(Base::Transport, 24, 2));
        assert_eq!(rules[24][11], Expr::Cmp(NFT_CMP_NEQ, vec![14, 1]));
        // `... ip6 saddr :: @th,64,128 != X ... drop`: one `cmp neq` per own
        // address, as for the neighbour advertisement's target.
        assert_eq!(rules[25].len(), 6 + 2 + 2 * 2 + 1);
        assert_eq!(rules[25][8..], rules[29][6..]);
        // The router solicitation's source option: [ payload load 8b @
        // transport header + 8 ]; the advertisement's target option: type 2.
        assert_eq!(rules[20][8], Expr::payload(Base::Transport, 8, 8));
        assert_eq!(
            rules[28][9],
            Expr::Cmp(NFT_CMP_NEQ, vec![2, 1, 2, 0x6e, 10, 77, 0, 2])
        );
        // The neighbour advertisement: one `cmp neq` per own address.
        assert_eq!(rules[29].len(), 6 + 2 * 2 + 1);
        // `ip6 saddr X meta l4proto udp ip6 nexthdr udp accept`.
        assert_eq!(
            rules[31][4..],
            [
                Expr::meta(NFT_META_L4PROTO),
                Expr::eq(&[17]),
                Expr::payload(Base::Network, 6, 1),
                Expr::eq(&[17]),
                Expr::Verdict(NF_ACCEPT)
            ]
        );
        // `ip6 saddr X meta l4proto udp ip6 nexthdr ipv6-frag @nh,400,16 !=
        // 0x222 accept`.
        assert_eq!(rules[32][9], Expr::Cmp(NFT_CMP_NEQ, vec![2, 0x22]));
        assert_eq!(rules.last().unwrap()[7], Expr::eq(&[143]));
    }
}
