//! The guard's layer 3: what a container's host end may receive from the
//! container. Each guarded host end has one base chain on that device's
//! ingress hook, `port_<name>` ([`guard_chain_name`]; the name escaped so
//! that nft reads the listing back whatever it is), in one of
//! [`GUARD_TABLES`] netdev tables, `<table>_guard_<n>` ([`guard_table_name`],
//! `n` from a hash of the name; see "What a port costs" below). What holds
//! for every port is in one regular chain per table,
//! [`GUARD_COMMON_CHAIN`], which each port's chain jumps to right after its
//! MAC rule. The port's chain holds what the frequent frames meet, as
//! constants: its MAC `M` and its IPv4 addresses `A...` and IPv6 addresses
//! `X...`. What only the rare frames read of the port (the MAC in a
//! neighbour discovery option, a neighbour discovery target, an ARP
//! sender) is in three sets of its table, each keyed by the host end `P`
//! (`meta iifname`), which `common` looks up. nft 1.0.6 lists them so, and
//! loads the listing back as the same rules and elements:
//!
//! ```text
//! set nd_macs { typeof iifname . @th,80,48; elements = { "P" . 0xM } }
//! set nd_targets { typeof iifname . @th,64,128; elements = { "P" . 0xX, ... } }
//! set arp_senders { type ifname . ether_addr . ipv4_addr;
//!                   elements = { "P" . M . 0.0.0.0, "P" . M . A, ... } }
//!
//! chain common_v2 {
//!  1  ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop
//!  2  ether type != arp ether type != ip ether type != ip6 drop
//!  3  meta protocol ip meta l4proto != tcp meta l4proto != udp meta l4proto != icmp meta l4proto != igmp meta l4proto != sctp drop
//!  4  ip frag-off & 8191 == 0 udp sport 67 drop
//!  5  ip frag-off & 8191 == 0 udp dport 68 drop
//!  6  ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67 accept
//!  7  meta protocol ip return
//!  8  arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . arp saddr ether . arp saddr ip @arp_senders accept
//!  9  meta protocol != ip6 return
//! 10  meta protocol ip6 meta l4proto != tcp meta l4proto != udp meta l4proto != ipv6-icmp meta l4proto != sctp drop
//! 11  ip6 nexthdr udp udp sport 547 drop
//! 12  ip6 nexthdr udp udp dport 546 drop
//! 13  ip6 nexthdr ipv6-frag @nh,336,16 & 0xfff8 == 0x0 @nh,384,16 0x223 drop
//! 14  meta l4proto != ipv6-icmp return
//! 15  icmpv6 type nd-router-advert drop
//! 16  icmpv6 type nd-redirect drop
//! 17  icmpv6 type nd-router-solicit ip6 nexthdr != ipv6-icmp drop
//! 18  icmpv6 type nd-router-solicit ip6 length != 8 ip6 length != 16 drop
//! 19  icmpv6 type nd-neighbor-solicit ip6 nexthdr != ipv6-icmp drop
//! 20  icmpv6 type nd-neighbor-solicit ip6 length != 24 ip6 length != 32 drop
//! 21  icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr :: @th,192,16 != 0xe01 drop
//! 22  icmpv6 type nd-neighbor-advert ip6 nexthdr != ipv6-icmp drop
//! 23  icmpv6 type nd-neighbor-advert ip6 length != 24 ip6 length != 32 drop
//! 24  icmpv6 type nd-router-solicit ip6 length 16 @th,64,16 != 0x101 drop
//! 25  icmpv6 type nd-router-solicit ip6 length 16 iifname . @th,80,48 != @nd_macs drop
//! 26  icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: @th,192,16 != 0x101 drop
//! 27  icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: iifname . @th,208,48 != @nd_macs drop
//! 28  icmpv6 type nd-neighbor-solicit ip6 saddr :: iifname . @th,64,128 != @nd_targets drop
//! 29  icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,16 != 0x201 drop
//! 30  icmpv6 type nd-neighbor-advert ip6 length 32 iifname . @th,208,48 != @nd_macs drop
//! 31  icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @nd_targets drop
//! 32  ip6 saddr :: icmpv6 type nd-neighbor-solicit accept
//! 33  ip6 saddr :: icmpv6 type mld2-listener-report accept
//! }
//!
//! chain port_veth0a0a0a02 {
//!     type filter hook ingress device "veth0a0a0a02" priority -500; policy drop;
//!     ether saddr != M drop
//!     jump common_v2
//!     ip saddr A meta l4proto != udp accept                                        (each A)
//!     ip saddr A meta l4proto udp ip frag-off & 8191 == 0 accept
//!     ip saddr A meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5 @nh,176,16 != 0x44 accept
//!     ip6 saddr X meta l4proto != udp accept                                       (each X)
//!     ip6 saddr X meta l4proto udp ip6 nexthdr udp accept
//!     ip6 saddr X meta l4proto udp ip6 nexthdr ipv6-frag @nh,320,8 0x11 @nh,400,16 != 0x222 accept
//! }
//! ```
//!
//! (Numbers added here. The neighbour discovery look-ups read raw payload,
//! which nft types as an integer: their sets are declared by the
//! expressions of their key, `typeof`, nft's set user data, so that nft
//! accepts the listing back. `arp` is a keyword of nft's, so that set is
//! `arp_senders`.)
//!
//! # Why the two chains and the sets decide as one chain did
//!
//! Until 2026-12 each port's chain held all of these checks itself, as
//! constants, in this order: the MAC drop; the link-local group and
//! EtherType drops; the ARP accepts; both transport protocol whitelists and
//! the five DHCP/DHCPv6 port drops; the IPv4 accepts and DHCP discovery;
//! every neighbour discovery drop (rules 15-23 above and five that read the
//! port's MAC or addresses); the IPv6 accepts and the two accepts from
//! `::`. Two things changed, each keeping every decision.
//!
//! **Look-ups for constants.** Each look-up replaces one comparison with
//! the port's values and matches exactly when it did, because a port's
//! elements are exactly its values under its own host end's name: `allow`
//! adds them in the batch that makes its chain, `forget` deletes every
//! element under the name in the batch that deletes the chain (whatever
//! addresses its caller knows), and a frame's `iifname` is the host end
//! whose ingress hook runs the chain. So `iifname . @th,208,48 !=
//! @nd_macs` is `@th,208,48 != M`; `iifname . @th,64,128 != @nd_targets`
//! is `@th,64,128 != X1 @th,64,128 != X2 ...` (with no IPv6 address the
//! set holds none of the port's and the rule drops every such message, as
//! the conjunction of no comparisons did); `iifname . arp saddr ether .
//! arp saddr ip @arp_senders` is one accept per sender (`M`, each `A` and
//! 0.0.0.0), a single rule that accepts what their union did. A neighbour
//! discovery option's 8 bytes `!= 0x0101M` (`0x0201M` for an
//! advertisement) become two drops, its type and length then its MAC:
//! the 8 bytes differ exactly when either part does.
//!
//! **Order.** A `drop` in `common` is final and an `accept` there ends the
//! port's chain (and the hook's other base chains run after it, as after an
//! accept in the port's chain); `return`, or the chain's end, continues
//! after the `jump`. A packet's verdict is that of the first rule it
//! matches, so moving rules changes nothing as long as no packet matches
//! both a moved drop and an accept it was moved past (or an accept and a
//! drop it was moved before); rules of one kind may be reordered freely,
//! and a `return` changes nothing when no rule it skips could match the
//! packets it returns. Every rule but the first three of the old order
//! tests `meta protocol` (`ip`, `ip6`, `arp`: nft writes it before every
//! `ip`, `ip6`, `arp` and `icmpv6` match), and a packet has one protocol,
//! so only rules of the same protocol can match the same packet. Per
//! protocol, after the MAC, link-local and EtherType drops, which come
//! first in both:
//!
//! - IPv4 meets its whitelist and its two DHCP drops, then DHCP discovery's
//!   accept (now before the port's addresses: both accept), then rule 7
//!   returns it to its accepts in the port's chain, then the policy: rules
//!   8-33 are ARP or IPv6 only.
//! - ARP meets only its accept (rule 8; before, the accepts last in the
//!   port's chain), then rule 9 returns it and nothing in the port's chain
//!   is ARP: the policy.
//! - IPv6 meets its whitelist, the three DHCPv6 drops and then, if ICMPv6,
//!   every neighbour discovery drop and the two accepts from `::`, then its
//!   accepts in the port's chain, then the policy. Rule 14 returns IPv6
//!   that is not ICMPv6 past rules 15-33, which all read `meta l4proto
//!   ipv6-icmp`; where the kernel could not parse the header, `meta
//!   l4proto` ends rule 14 and every later rule that reads it, so such a
//!   packet still meets the policy. Every neighbour discovery drop is
//!   before every IPv6 accept, as before; the two accepts from `::` are
//!   now before the port's address accepts (both accept, and none of those
//!   matches `::`).
//!
//! Every accept of IP still reads `meta l4proto`, so a packet whose IP
//! header the kernel could not parse still meets the policy (see the
//! `rules` module). A container's owner cannot change either chain: it has no
//! `CAP_NET_ADMIN` in the host namespace. Root can (`nft flush chain`, or
//! the flush of the whole ruleset a firewall restart does); deleting
//! `common` alone is refused while a port's chain jumps to it (`EBUSY`).
//! [`Guard::missing`] (what `-check` asks) names a `common` without all its
//! rules and a set without all the port's elements, and [`Guard::allow`]
//! (what `-restore` runs) makes them whole again. (A set root emptied
//! fails closed: the rare checks then drop what they would have passed.)
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
//! # What a port costs
//!
//! A port's batch is its chain, a flush, its own rules and one message per
//! set with all its elements of that set: 11 rules for one IPv4 and two
//! IPv6 addresses (3 per address, the MAC and the jump), 16 messages (22
//! when the neighbour discovery, ARP and `::` rules were the port's too, 41
//! when every rule was in the port's chain). Before it, one look-up of the
//! table's `common` (`NFT_MSG_GETRULE`); only when that is missing or lacks
//! rules does the batch also make it (the table and the sets if missing, a
//! chain and 33 rules), tied to the ruleset generation of the look-up. The
//! messages matter more than what they carry: each names its table, which
//! `nft_table_lookup` finds by walking the namespace's list of tables
//! (oldest first) comparing names, and each `NEWRULE` looks up its chain and
//! every expression type by name and allocates, while a `NEWSETELEM` with
//! several elements looks up its set once. With 1000 ports a new port's
//! `allow` took 0.44 ms against 0.65 ms with 20 rules a port, with 100
//! ports 0.39 against 0.57 ms and with one 0.43 against 0.59 ms; the
//! `allow` of a port already guarded (what `-restore` does) 0.44-0.48
//! against 0.56-0.64 ms, as it also reads the port's chain (see below)
//! (6.18, medians of eight alternating runs of `guardbatch` on a shared
//! machine, bench/results/hybrid). `present` reads two chains and asks each
//! set for the port's elements in one message (`NFT_MSG_GETSETELEM` naming
//! them all): 0.21 against 0.17 ms. `forget` reads the port's chain to
//! learn its MAC and addresses and deletes the chain and those elements in
//! one batch: 0.08-0.09 ms against 0.03-0.05, flat; only without the chain
//! (gone with its device before 6.16) or when root emptied a set does it
//! dump the three sets, a 32nd of the ports' elements. `allow` reads the
//! port's chain too, and dumps the sets only when the chain holds other
//! values than the port's (a host end of that name guarded before with
//! other addresses and never forgotten), to delete what that port had.
//!
//! A packet walks only its own port's chain and its table's `common`: a
//! TCP segment or a UDP datagram from the port's IPv4 address is accepted
//! at the 10th rule (MAC, jump, the 7 rules of `common` up to its `return`,
//! its accept), the same expressions as with 20 rules a port; an IPv6
//! packet that is not ICMPv6 from its first address at the 20th (the 31st
//! before: rule 14 returns it before the neighbour discovery rules); ARP
//! at the 11th. Only neighbour discovery meets a look-up (a hash of the
//! host end's name and the field), one for a solicitation or an
//! advertisement with an option, two for an advertisement's option and
//! target. Per frame (`guardpkt`, CPU time of the sender, medians of six
//! alternating runs): UDP over IPv4 as before (562 against 591 ns with one
//! port, 576 against 582 with 1000, within the runs' spread), over IPv6
//! less (738 against 953, 759 against 980), a neighbour solicitation with
//! its option more (1528 against 1147, 1522 against 1131).
//!
//! The chains are spread over [`GUARD_TABLES`] tables by a hash of the host
//! end's name, because of two walks in the kernel
//! (`net/netfilter/nf_tables_api.c`):
//!
//! - With a table per port, each message walked past every older port's
//!   table in `nft_table_lookup`: with 1000 ports the newest port's batch
//!   took 2.1 ms, the oldest port's (found first) 0.8 ms (6.18, 41
//!   messages).
//! - Rules with verdicts mark their table as needing validation
//!   (`NFT_VALIDATE_NEED`), and the commit walks every base chain and rule
//!   of such a table, following jumps (`nf_tables_validate`,
//!   `nft_table_validate`): with one table for all ports the 1000th port's
//!   batch took 7.7 ms or more. Each port's chain still leads the walk
//!   through `common`, so the split does not shorten it (a set's
//!   elements are not walked).
//!
//! With 32 tables a lookup passes at most 32 of ours, and a commit
//! validates the chains of one table, about N/32 of N. The validation state
//! is per table (`table->validate_state`) since "netfilter: nf_tables: make
//! validation state per table" (around 6.2/6.3); before it (5.10 and 6.1)
//! it is per network namespace, so a commit that adds a rule with a verdict
//! validates every table of the namespace, and the commit also visits every
//! chain of every table (`nf_tables_commit`, step 2): there a port's batch
//! still grows with the number of ports, whatever the layout (every rule
//! here ends in a verdict, and nothing a batch sends avoids either walk). A
//! `jump` from a netdev base chain to a regular chain of its table, and
//! `return`, are as old as nf_tables.
//!
//! The tables, their `common` chains and their sets are shared structure:
//! they stay (the sets empty) when a table's last port chain goes, since
//! deleting them could race another network's call adding a chain. The bridge's forwarding database
//! is guarded in the bridge itself (see
//! [`Learning::Pinned`](crate::Learning::Pinned)), where no ruleset flush
//! reaches it.

mod rules;
mod sets;

use self::rules::{common_rules, port_rules};
use self::sets::{port_elements, port_of_chain, SetKeys, SETS};
use super::batch::Batch;
use super::expr::{ifname, Expr};
use super::guarded_port::GuardedPort;
use super::objects::Op;
use super::proto::{check_table, Family};
use super::socket::Nftables;
use crate::error::Result;
use crate::links::check_name;

/// Before everything nft users usually hook at netdev ingress.
const PRIORITY: i32 = -500;

/// The regular chain of each guard table that every port's chain jumps to:
/// the rules that read neither the port's MAC nor its addresses. Shared
/// structure, like the table: it stays when the table's last port goes.
/// Its name carries the listing's version (the set look-ups of the hybrid
/// listing are version 2): a binary of another version judges and refills
/// a shared chain of its own name only, so that mixing versions (an
/// upgrade, a downgrade, until `-restore` re-makes every port's chain)
/// never rewrites the chain another version's ports jump to. The docs call
/// it `common`.
pub const GUARD_COMMON_CHAIN: &str = "common_v2";

impl Nftables {
    /// The guard of containers' host ends, each a chain in one of
    /// [`GUARD_TABLES`] netdev tables named `<table>_guard_<n>`
    /// ([`guard_table_name`]).
    pub fn guard<'a>(&'a self, table: &'a str) -> Guard<'a> {
        Guard { nft: self, table }
    }
}

/// The guard of host ends, a netdev chain each: [`Nftables::guard`].
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    nft: &'a Nftables,
    table: &'a str,
}

impl<'a> Guard<'a> {
    /// Guards `port`: from then on its host end receives only frames from
    /// its MAC with its addresses (and ARP and neighbour discovery for
    /// those, DHCP discovery, duplicate address detection), nothing posing
    /// as a DHCP server or a router. One batch: the port's table (shared
    /// with other ports) and its sets if missing, the table's
    /// [`GUARD_COMMON_CHAIN`] if missing or without all its rules, the
    /// port's chain if missing, its rules replaced by the port's, its MAC
    /// and addresses added to the sets (one message per set); so it may be
    /// run again at any time (after a ruleset flush, say) and leaves the
    /// same chains and elements. On kernels before 6.16 the host end must
    /// exist.
    pub fn allow(self, port: &GuardedPort) -> AllowPort<'a> {
        AllowPort {
            at: self,
            port: port.clone(),
        }
    }

    /// Stops guarding `port`: deletes its chain, if there is one, and its
    /// elements of the table's sets, whatever addresses `port` names (they
    /// are read from the chain); the table, its [`GUARD_COMMON_CHAIN`] and
    /// its sets, which other ports share, stay. (Before Linux 6.16 the
    /// kernel deletes a single-device netdev chain itself when the device
    /// goes away, and the elements are then found by a dump of the sets;
    /// from 6.16 on the chain stays.)
    pub fn forget(self, port: &GuardedPort) -> ForgetPort<'a> {
        ForgetPort {
            at: self,
            port: port.clone(),
        }
    }

    /// What of `port`'s guard is missing or lacks rules, named (`chain
    /// netdev <table> <chain>`, `set netdev <table> <set> elements of
    /// <name>`): its table's shared [`GUARD_COMMON_CHAIN`], its own chain
    /// and its elements of the table's sets; empty when the chains are there
    /// with as many rules as the guard gives them and the sets hold every
    /// element of the port's. Two look-ups of rules and one per set,
    /// whatever the number of ports.
    pub fn missing(self, port: &GuardedPort) -> Result<Vec<String>> {
        let table = checked_table(self.table, &port.ifname)?;
        let mut missing = Vec::new();
        for (chain, rules) in [
            (GUARD_COMMON_CHAIN.to_string(), common_rules().len()),
            (guard_chain_name(&port.ifname), port_rules(port).len()),
        ] {
            if self.nft.rules(Family::Netdev, &table, &chain)?.len() != rules {
                missing.push(format!("chain netdev {table} {chain}"));
            }
        }
        for (set, keys) in port_elements(port) {
            let object = format!("set netdev {table} {set}");
            if !self
                .nft
                .has_elements(Family::Netdev, &table, set, &keys, &object)?
            {
                missing.push(format!("{object} elements of {}", port.ifname));
            }
        }
        Ok(missing)
    }

    /// Whether `port`'s chain and its table's shared chain are there with
    /// as many rules as the guard gives them ([`Guard::missing`]).
    pub fn present(self, port: &GuardedPort) -> Result<bool> {
        Ok(self.missing(port)?.is_empty())
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
    /// Applies it: one batch, and before it a look-up of the table's
    /// shared chain and of the port's own. Only when the shared chain is
    /// missing or lacks rules does the batch (re)make it (and the table and
    /// sets if missing), tied to the ruleset generation it was planned at,
    /// so that of two calls making it at once one wins and the other plans
    /// again. Only when the port's chain holds other values than `port`'s
    /// (an earlier port of the same host end name, never forgotten) are the
    /// sets dumped, and that port's elements `port` lacks deleted in the
    /// batch: a port's elements are always exactly its values.
    pub fn execute(self) -> Result<()> {
        let Guard { nft, table } = self.at;
        let name = &self.port.ifname;
        let table = &checked_table(table, name)?;
        let (netdev, common) = (Family::Netdev, common_rules());
        let what = format!("guard port {name}");
        let intact = || Ok(nft.rules(netdev, table, GUARD_COMMON_CHAIN)?.len() == common.len());
        let (chain, elements) = (guard_chain_name(name), port_elements(&self.port));
        // Elements of an earlier port of this name (its chain names other
        // values) that this one does not have go in the same batch.
        let stale = match port_of_chain(name, &nft.rules(netdev, table, &chain)?) {
            Some(old) if port_elements(&old) != elements => {
                stale_elements(nft, table, name, &elements)?
            }
            _ => Vec::new(),
        };
        let port = |batch: &mut Batch<'_>| {
            batch.ingress_chain(table, &chain, name, PRIORITY);
            batch.flush_chain(netdev, table, &chain);
            add_rules(batch, table, &chain, &port_rules(&self.port));
            set_elements(batch, Op::Delete, table, &stale, name);
            set_elements(batch, Op::Add, table, &elements, name);
        };
        // With `common` in place the table is too: were it deleted before
        // the commit, the jump to `common` would fail anyway.
        if intact()? {
            let mut batch = Batch::new(nft, netdev, None, what);
            port(&mut batch);
            return batch.commit_once();
        }
        nft.transact(&what, |genid| {
            let mut batch = Batch::new(nft, netdev, Some(genid), what.clone());
            if !intact()? {
                batch.table(netdev, table);
                for spec in &SETS {
                    if !nft.set_exists(netdev, table, spec.name)? {
                        batch.new_set(netdev, table, spec);
                    }
                }
                if nft.chain_exists(netdev, table, GUARD_COMMON_CHAIN)? {
                    batch.flush_chain(netdev, table, GUARD_COMMON_CHAIN);
                } else {
                    batch.new_chain(netdev, table, GUARD_COMMON_CHAIN);
                }
                add_rules(&mut batch, table, GUARD_COMMON_CHAIN, &common);
            }
            port(&mut batch);
            Ok(Some(batch))
        })
        .map(drop)
    }
}

/// Appends `rules` to chain `netdev <table> <chain>` in `batch`.
fn add_rules(batch: &mut Batch<'_>, table: &str, chain: &str, rules: &[Vec<Expr>]) {
    for (i, rule) in rules.iter().enumerate() {
        batch.rule(
            Family::Netdev,
            table,
            chain,
            rule,
            None,
            &format!("rule {}", i + 1),
        );
    }
}

/// Adds or deletes (`op`) `port`'s elements of the sets of `table`
/// (`host end`'s, as [`port_elements`] gives them), one message per set.
fn set_elements(batch: &mut Batch<'_>, op: Op, table: &str, port: &[SetKeys], host_end: &str) {
    for (set, keys) in port {
        let keys: Vec<_> = keys.iter().map(|k| (k.as_slice(), None)).collect();
        let object = format!("set netdev {table} {set} elements of {host_end}");
        batch.elements(op, table, set, &keys, object);
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
    /// Applies it: one batch, the chain and every element of the host end
    /// in the table's sets, whatever addresses the caller names (the CNI
    /// plugin's DEL knows none): the port's values are read from its chain
    /// (one look-up of its rules). Without the chain (gone with its device,
    /// say), or when the sets lack an element it names, the host end's
    /// elements are found by one dump of each set instead. Returns `true`
    /// when a chain was deleted.
    pub fn execute(self) -> Result<bool> {
        let Guard { nft, table } = self.at;
        let name = &self.port.ifname;
        let table = checked_table(table, name)?;
        let chain = guard_chain_name(name);
        let rules = nft.rules(Family::Netdev, &table, &chain)?;
        if let Some(port) = port_of_chain(name, &rules) {
            match forget_batch(nft, &table, name, true, &port_elements(&port)) {
                Ok(()) => return Ok(true),
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        let stale = stale_elements(nft, &table, name, &[])?;
        match forget_batch(nft, &table, name, true, &stale) {
            Ok(()) => Ok(true),
            // No table, or no chain (gone with its device, say).
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                if !stale.is_empty() {
                    forget_batch(nft, &table, name, false, &stale)?;
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Every element of host end `name` in the sets of `table` but those of
/// `keep`, found by one dump of each set (a 32nd of the ports' elements).
fn stale_elements(
    nft: &Nftables,
    table: &str,
    name: &str,
    keep: &[SetKeys],
) -> Result<Vec<SetKeys>> {
    let own = ifname(name);
    let mut stale = Vec::new();
    for spec in &SETS {
        let kept = keep.iter().find(|(set, _)| *set == spec.name);
        let keys: Vec<Vec<u8>> = nft
            .elements(Family::Netdev, table, spec.name)?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| key.starts_with(&own))
            .filter(|key| !kept.is_some_and(|(_, keys)| keys.contains(key)))
            .collect();
        if !keys.is_empty() {
            stale.push((spec.name, keys));
        }
    }
    Ok(stale)
}

/// One batch that deletes host end `name`'s chain (if `chain`) and
/// `elements` of the sets of `table`.
fn forget_batch(
    nft: &Nftables,
    table: &str,
    name: &str,
    chain: bool,
    elements: &[SetKeys],
) -> Result<()> {
    let netdev = Family::Netdev;
    let mut batch = Batch::new(nft, netdev, None, format!("forget port {name}"));
    if chain {
        batch.delete_chain(netdev, table, &guard_chain_name(name));
    }
    set_elements(&mut batch, Op::Delete, table, elements, name);
    batch.commit_once()
}

/// How many netdev tables hold the guard's chains. A batch names its table
/// in every message, and the kernel finds a table by walking the list of
/// all tables (`nft_table_lookup`), while a commit validates every base
/// chain of a table it marked (`nft_table_validate`): a fixed number of
/// tables bounds the first walk, and spreading the ports over them keeps
/// the second short (see the module docs).
pub const GUARD_TABLES: u32 = 32;

/// The name of the netdev table that holds the chain of host end `ifname`
/// (a name [`check_name`] accepts) for the guard of
/// [`Nftables::guard`]`(table)`: `<table>_guard_<n>`, `n` the 32-bit FNV-1a
/// hash of the name modulo [`GUARD_TABLES`], so `netsetgo_guard_13` for
/// `netsetgo` and `veth0a0a0a02`. The mapping never changes: `-restore`,
/// `-check` and the removal of a lease find the chain by it.
pub fn guard_table_name(table: &str, ifname: &str) -> String {
    let hash = ifname.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{table}_guard_{}", hash % GUARD_TABLES)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_plain_identifiers_one_per_host_end() {
        assert_eq!(guard_chain_name("veth0a0a0a02"), "port_veth0a0a0a02");
        assert_eq!(guard_chain_name("9v.a-b_0"), "port_9v_da_hb__0");
        assert_ne!(guard_chain_name("a_d"), guard_chain_name("a."));
        assert_ne!(guard_chain_name("a_h"), guard_chain_name("a-"));
    }

    #[test]
    fn host_ends_spread_over_a_fixed_number_of_tables() {
        // FNV-1a of the name, modulo 32: fixed for good.
        assert_eq!(
            guard_table_name("netsetgo", "veth0a0a0a02"),
            "netsetgo_guard_1"
        );
        assert_eq!(guard_table_name("netsetgo", "9v.a-b_0"), "netsetgo_guard_7");
        // A thousand host ends of one network: every table used, none with
        // more than 36 of them.
        let mut count = [0u32; GUARD_TABLES as usize];
        for i in 1..=1000u32 {
            let name = guard_table_name("netsetgo", &format!("veth0a0a{i:04x}"));
            let n: usize = name["netsetgo_guard_".len()..].parse().unwrap();
            count[n] += 1;
        }
        assert!(count.iter().all(|&c| (1..=36).contains(&c)), "{count:?}");
    }

    #[test]
    fn table_names_are_checked() {
        assert_eq!(
            checked_table("netsetgo", "veth0a0a0a02").unwrap(),
            "netsetgo_guard_1"
        );
        assert!(checked_table("net setgo", "veth0").is_err());
        assert!(checked_table("netsetgo", "a/b").is_err());
        // Valid alone, too long with the suffix.
        assert!(checked_table(&"t".repeat(60), "veth0").is_err());
    }
}
