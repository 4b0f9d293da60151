//! The guard's layer 3: what a container's host end may receive from the
//! container. Each guarded host end has one base chain on that device's
//! ingress hook, `port_<name>` ([`guard_chain_name`]; the name escaped so
//! that nft reads the listing back whatever it is), in one of
//! [`GUARD_TABLES`] netdev tables, `<table>_guard_<n>` ([`guard_table_name`],
//! `n` from a hash of the name; see "What a port costs" below). What holds
//! for every port is in one regular chain per table,
//! [`GUARD_COMMON_CHAIN`], which each port's chain jumps to right after its
//! MAC rule; the port's chain has only the rules that read its MAC `M`, its
//! IPv4 addresses `A...` or its IPv6 addresses `X...` (nft 1.0.6 lists them
//! so, and loads the listing back as the same rules):
//!
//! ```text
//! chain common {
//!     ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop
//!     ether type != arp ether type != ip ether type != ip6 drop
//!     meta protocol ip meta l4proto != tcp meta l4proto != udp meta l4proto != icmp meta l4proto != igmp meta l4proto != sctp drop
//!     ip frag-off & 8191 == 0 udp sport 67 drop
//!     ip frag-off & 8191 == 0 udp dport 68 drop
//!     ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67 accept
//!     meta protocol != ip6 return
//!     meta protocol ip6 meta l4proto != tcp meta l4proto != udp meta l4proto != ipv6-icmp meta l4proto != sctp drop
//!     ip6 nexthdr udp udp sport 547 drop
//!     ip6 nexthdr udp udp dport 546 drop
//!     ip6 nexthdr ipv6-frag @nh,336,16 & 0xfff8 == 0x0 @nh,384,16 0x223 drop
//!     icmpv6 type nd-router-advert drop
//!     icmpv6 type nd-redirect drop
//!     icmpv6 type nd-router-solicit ip6 nexthdr != ipv6-icmp drop
//!     icmpv6 type nd-router-solicit ip6 length != 8 ip6 length != 16 drop
//!     icmpv6 type nd-neighbor-solicit ip6 nexthdr != ipv6-icmp drop
//!     icmpv6 type nd-neighbor-solicit ip6 length != 24 ip6 length != 32 drop
//!     icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr :: @th,192,16 != 0xe01 drop
//!     icmpv6 type nd-neighbor-advert ip6 nexthdr != ipv6-icmp drop
//!     icmpv6 type nd-neighbor-advert ip6 length != 24 ip6 length != 32 drop
//! }
//!
//! chain port_veth0a0a0a02 {
//!     type filter hook ingress device "veth0a0a0a02" priority -500; policy drop;
//!     ether saddr != M drop
//!     jump common
//!     ip saddr A meta l4proto != udp accept                                        (each A)
//!     ip saddr A meta l4proto udp ip frag-off & 8191 == 0 accept
//!     ip saddr A meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5 @nh,176,16 != 0x44 accept
//!     icmpv6 type nd-router-solicit ip6 length 16 @th,64,64 != 0x0101M drop
//!     icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: @th,192,64 != 0x0101M drop
//!     icmpv6 type nd-neighbor-solicit ip6 saddr :: @th,64,128 != X ... drop
//!     icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,64 != 0x0201M drop
//!     icmpv6 type nd-neighbor-advert @th,64,128 != X ... drop
//!     ip6 saddr X meta l4proto != udp accept                                       (each X)
//!     ip6 saddr X meta l4proto udp ip6 nexthdr udp accept
//!     ip6 saddr X meta l4proto udp ip6 nexthdr ipv6-frag @nh,320,8 0x11 @nh,400,16 != 0x222 accept
//!     ip6 saddr :: icmpv6 type nd-neighbor-solicit accept
//!     ip6 saddr :: icmpv6 type mld2-listener-report accept
//!     arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether M arp saddr ip A accept      (each A)
//!     arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether M arp saddr ip 0.0.0.0 accept
//! }
//! ```
//!
//! # Why the two chains decide as one did
//!
//! Until 2026-12 each port's chain held all of these rules itself, in this
//! order: the MAC drop; the link-local group and EtherType drops; the ARP
//! accepts; both transport protocol whitelists and the five DHCP/DHCPv6
//! port drops; the IPv4 accepts and DHCP discovery; every neighbour
//! discovery drop (the shared ones and the port's); the IPv6 accepts and
//! the two accepts from `::`. The split keeps each of its decisions. A
//! `drop` in `common` is final and an `accept` there ends the port's chain
//! (and the hook's other base chains run after it, as after an accept in
//! the port's chain); `return`, or the chain's end, continues after the
//! `jump`. A packet's verdict is that of the first rule it matches, so
//! moving rules changes nothing as long as no packet matches both a moved
//! drop and an accept it was moved past (or an accept and a drop it was
//! moved before); rules of one kind may be reordered freely. Every rule
//! but the first three of the old order tests `meta protocol` (`ip`,
//! `ip6`, `arp`: nft writes it before every `ip`, `ip6`, `arp` and
//! `icmpv6` match), and a packet has one protocol, so only rules of the
//! same protocol can match the same packet. Per protocol, after the MAC,
//! link-local and EtherType drops, which come first in both:
//!
//! - ARP meets only the ARP accepts in either order (`return` sends it
//!   back to the port's chain, where they are last), then the policy.
//! - IPv4 meets its whitelist and its two DHCP drops, then its accepts
//!   (discovery from 0.0.0.0 now before the port's addresses: both accept),
//!   then the policy, in both orders: nothing after the `return` or after
//!   the IPv4 accepts in the port's chain is IPv4.
//! - IPv6 meets its whitelist, the three DHCPv6 drops and the neighbour
//!   discovery drops, then its accepts, then the policy, in both orders:
//!   the port's chain has its neighbour discovery drops before every IPv6
//!   accept, as before.
//!
//! Every accept of IP still reads `meta l4proto`, so a packet whose IP
//! header the kernel could not parse still meets the policy (see the
//! `rules` module). A container's owner cannot change either chain: it has no
//! `CAP_NET_ADMIN` in the host namespace. Root can (`nft flush chain`, or
//! the flush of the whole ruleset a firewall restart does); deleting
//! `common` alone is refused while a port's chain jumps to it (`EBUSY`).
//! [`Guard::missing`] (what `-check` asks) names a `common` without all its
//! rules, and [`Guard::allow`] (what `-restore` runs) makes it whole again.
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
//! A port's batch is its chain, a flush and its own rules: 20 for one IPv4
//! and two IPv6 addresses (4 per IPv4 address, one of them ARP, 3 per IPv6
//! address, 10 others), 22 messages (41 when every rule was in the port's
//! chain: its table, chain, flush and 38 rules). Before it, one look-up of
//! the table's `common` (`NFT_MSG_GETRULE`); only when that is missing or
//! lacks rules does the batch also make it (the table if missing, a chain
//! and 20 rules), tied to the ruleset generation of the look-up. The messages matter, not the expressions: each
//! names its table, which `nft_table_lookup` finds by walking the
//! namespace's list of tables (oldest first) comparing names, and each
//! `NEWRULE` looks up its chain and every expression type by name and
//! allocates. With 1000 ports a call's `allow` took 0.67 ms against 1.00 ms
//! with 38 rules a port, with 100 ports 0.57 against 0.86 ms and with one
//! 0.60 against 0.93 ms (6.18, the median of six runs' medians of
//! `guardbatch`, on a shared machine). `present` reads two chains instead
//! of one: 0.17 against 0.16 ms.
//!
//! A packet walks only its own port's chain and its table's `common`: a
//! TCP segment or a UDP datagram from the port's IPv4 address is accepted
//! at the 10th rule (MAC, jump, the 7 rules of `common` up to its `return`,
//! its accept; 13th before), an IPv6 packet from its first address at the
//! 31st (as before), ARP after all IPv4 and IPv6 rules (the least frequent).
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
//!   through `common`, so the split does not shorten it.
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
//! The tables and their `common` chains are shared structure: they stay
//! when a table's last port chain goes, since deleting them could race
//! another network's call adding a chain. The bridge's forwarding database
//! is guarded in the bridge itself (see
//! [`Learning::Pinned`](crate::Learning::Pinned)), where no ruleset flush
//! reaches it.

mod rules;
mod sets;

use self::rules::{common_rules, input_rules, port_rules, prerouting_rules};
use self::sets::{port_elements, PORTS, SETS};
use super::batch::Batch;
use super::expr::Expr;
use super::guarded_port::GuardedPort;
use super::objects::Op;
use super::proto::{check_table, Family, NF_BR_LOCAL_IN, NF_BR_PRE_ROUTING};
use super::socket::Nftables;
use crate::error::Result;
use crate::links::check_name;

/// Before everything nft users usually hook at bridge prerouting and input
/// (ebtables' `broute` table excepted, at `NF_BR_PRI_FIRST`).
const PRIORITY: i32 = -500;

/// The regular chain that [`GUARD_PORT_CHAIN`] jumps to: the rules that
/// read neither the port's MAC nor its addresses.
pub const GUARD_COMMON_CHAIN: &str = "common";

/// The regular chain prerouting jumps to for every guarded port: the rules
/// that read the port's MAC and addresses, from the guard's sets.
pub const GUARD_PORT_CHAIN: &str = "port";

/// The guard's chains: name, hook (for the two base chains) and rules, in
/// the order they are made (a chain before the chains that jump to it).
fn chains() -> [(&'static str, Option<u32>, Vec<Vec<Expr>>); 4] {
    [
        (GUARD_COMMON_CHAIN, None, common_rules()),
        (GUARD_PORT_CHAIN, None, port_rules()),
        ("prerouting", Some(NF_BR_PRE_ROUTING), prerouting_rules()),
        ("input", Some(NF_BR_LOCAL_IN), input_rules()),
    ]
}

impl Nftables {
    /// The guard of containers' host ends: one bridge table,
    /// [`guard_table_name`], for every port.
    pub fn guard<'a>(&'a self, table: &'a str) -> Guard<'a> {
        Guard { nft: self, table }
    }
}

/// The guard of host ends: [`Nftables::guard`].
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    nft: &'a Nftables,
    table: &'a str,
}

impl<'a> Guard<'a> {
    /// Guards `port`: from then on the bridge passes from its host end only
    /// frames from its MAC with its addresses (and ARP and neighbour
    /// discovery for those, DHCP discovery, duplicate address detection),
    /// nothing posing as a DHCP server or a router. One batch of the port's
    /// set elements; the table, its sets and chains too when a look-up finds
    /// them missing or short of rules. It may be run again at any time
    /// (after a ruleset flush, say). The host end must be a bridge port
    /// with [`LINK_LOCAL_FORWARDED`](crate::LINK_LOCAL_FORWARDED) in its
    /// group forwarding mask (`Learning::Pinned`) for link-local frames to
    /// reach the guard.
    pub fn allow(self, port: &GuardedPort) -> AllowPort<'a> {
        AllowPort {
            at: self,
            port: port.clone(),
        }
    }

    /// Stops guarding `port`: deletes its set elements, if any; the table,
    /// its sets and chains, which other ports share, stay.
    pub fn forget(self, port: &GuardedPort) -> ForgetPort<'a> {
        ForgetPort {
            at: self,
            port: port.clone(),
        }
    }

    /// What of `port`'s guard is missing or lacks rules, named (`chain
    /// bridge <table> <chain>`, `element bridge <table> <set> <name>`): the
    /// shared chains, the port's entry in the set of guarded ports and its
    /// MAC; empty when all are there.
    pub fn missing(self, port: &GuardedPort) -> Result<Vec<String>> {
        let table = checked_table(self.table, &port.ifname)?;
        let mut missing = short_chains(self.nft, &table)?;
        let elements = port_elements(port);
        for (set, keys) in SETS.iter().zip(&elements).take(2) {
            let object = format!("element bridge {table} {} {}", set.name, port.ifname);
            if self
                .nft
                .element(Family::Bridge, &table, set.name, &keys[0], &object)?
                .is_none()
            {
                missing.push(object);
            }
        }
        Ok(missing)
    }

    /// Whether nothing of `port`'s guard is missing ([`Guard::missing`]).
    pub fn present(self, port: &GuardedPort) -> Result<bool> {
        Ok(self.missing(port)?.is_empty())
    }
}

/// The shared chains that are missing or lack rules, named.
fn short_chains(nft: &Nftables, table: &str) -> Result<Vec<String>> {
    let mut short = Vec::new();
    for (chain, _, rules) in chains() {
        if nft.rules(Family::Bridge, table, chain)?.len() != rules.len() {
            short.push(format!("chain bridge {table} {chain}"));
        }
    }
    Ok(short)
}

/// A request of [`Guard::allow`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct AllowPort<'a> {
    at: Guard<'a>,
    port: GuardedPort,
}

impl AllowPort<'_> {
    /// Applies it: one batch, and before it a look-up of the shared chains.
    /// Only when one is missing or lacks rules does the batch (re)make the
    /// structure, tied to the ruleset generation it was planned at, so that
    /// of two calls making it at once one wins and the other plans again.
    pub fn execute(self) -> Result<()> {
        let Guard { nft, table } = self.at;
        let name = &self.port.ifname;
        let table = &checked_table(table, name)?;
        let what = format!("guard port {name}");
        let elements = port_elements(&self.port);
        let add = |batch: &mut Batch<'_>| {
            for (set, keys) in SETS.iter().zip(&elements) {
                let object = format!("element bridge {table} {} {name}", set.name);
                batch.keys(Op::Add, table, set.name, keys, object);
            }
        };
        if short_chains(nft, table)?.is_empty() {
            let mut batch = Batch::new(nft, Family::Bridge, None, what);
            add(&mut batch);
            return batch.commit_once();
        }
        nft.transact(&what, |genid| {
            let mut batch = Batch::new(nft, Family::Bridge, Some(genid), what.clone());
            structure(nft, &mut batch, table)?;
            add(&mut batch);
            Ok(Some(batch))
        })
        .map(drop)
    }
}

/// Appends to `batch` the table, the sets it lacks and every chain with
/// its rules (an existing chain flushed first).
fn structure(nft: &Nftables, batch: &mut Batch<'_>, table: &str) -> Result<()> {
    let bridge = Family::Bridge;
    batch.table(bridge, table);
    for set in &SETS {
        if !nft.set_exists(bridge, table, set.name)? {
            batch.new_set(bridge, table, set);
        }
    }
    for (chain, hook, rules) in chains() {
        match hook {
            Some(hook) => batch.base_chain(bridge, table, chain, "filter", hook, PRIORITY),
            None if !nft.chain_exists(bridge, table, chain)? => {
                batch.new_chain(bridge, table, chain)
            }
            None => {}
        }
        batch.flush_chain(bridge, table, chain);
        for (i, rule) in rules.iter().enumerate() {
            batch.rule(bridge, table, chain, rule, None, &format!("rule {}", i + 1));
        }
    }
    Ok(())
}

/// A request of [`Guard::forget`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct ForgetPort<'a> {
    at: Guard<'a>,
    port: GuardedPort,
}

impl ForgetPort<'_> {
    /// Applies it. Returns `true` when the port was in the set of guarded
    /// ports. One batch deletes every element; if one is missing (`ENOENT`,
    /// which fails the whole batch), each set's go in a batch of their own.
    pub fn execute(self) -> Result<bool> {
        let Guard { nft, table } = self.at;
        let name = &self.port.ifname;
        let table = checked_table(table, name)?;
        let elements = port_elements(&self.port);
        let delete = |sets: &[(usize, &Vec<Vec<u8>>)]| {
            let mut batch = Batch::new(nft, Family::Bridge, None, format!("forget port {name}"));
            for &(i, keys) in sets {
                let object = format!("element bridge {table} {} {name}", SETS[i].name);
                batch.keys(Op::Delete, &table, SETS[i].name, keys, object);
            }
            match batch.commit_once() {
                Ok(()) => Ok(true),
                Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
                Err(e) => Err(e),
            }
        };
        let all: Vec<_> = elements.iter().enumerate().collect();
        if delete(&all)? {
            return Ok(true);
        }
        let mut guarded = false;
        for one in all {
            let deleted = delete(&[one])?;
            guarded |= deleted && SETS[one.0].name == PORTS;
        }
        Ok(guarded)
    }
}

/// The name of the bridge table that holds the guard of every host end of
/// [`Nftables::guard`]`(table)`: `<table>_guard`.
pub fn guard_table_name(table: &str) -> String {
    format!("{table}_guard")
}

/// [`guard_table_name`], once `table` and `ifname` are valid names and so
/// is the result.
fn checked_table(table: &str, ifname: &str) -> Result<String> {
    check_table(table)?;
    check_name(ifname)?;
    let name = guard_table_name(table);
    check_table(&name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert_eq!(
            checked_table("netsetgo", "veth0a0a0a02").unwrap(),
            "netsetgo_guard"
        );
        assert!(checked_table("net setgo", "veth0").is_err());
        assert!(checked_table("netsetgo", "a/b").is_err());
        // Valid alone, too long with the suffix.
        assert!(checked_table(&"t".repeat(60), "veth0").is_err());
    }

    #[test]
    fn the_port_chain_ends_in_a_drop_and_base_chains_jump_only_for_guarded_ports() {
        let [_, port, pre, input] = chains();
        assert_eq!(port.2.last(), Some(&vec![Expr::Verdict(0)]));
        assert_eq!(pre.2.len(), 1);
        assert_eq!(input.2.len(), 1);
        assert!(pre.2[0].contains(&Expr::Jump(GUARD_PORT_CHAIN.into())));
    }
}
