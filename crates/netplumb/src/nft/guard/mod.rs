//! The guard's layer 3: what the bridge takes from a container's host end.
//! One bridge-family table for every guarded port, [`guard_table_name`]
//! (`<table>_guard`), holds:
//!
//! - two base chains, `prerouting` and `input` (priority -500, policy
//!   accept), shared by every port: prerouting jumps to [`GUARD_PORT_CHAIN`]
//!   for a host end in the set `ports`; input drops what a guarded port
//!   sends to 01:80:c2:00:00:0X (see below);
//! - [`GUARD_PORT_CHAIN`], the rules that read the port's MAC and
//!   addresses, each a lookup of `iifname . <field>` in one of the guard's
//!   sets (`macs`, `v4`, `v6`, `senders`, and `lladdrs` and `targets`, the
//!   same MACs and IPv6 addresses typed for neighbour discovery's raw
//!   loads), ending in a drop;
//! - [`GUARD_COMMON_CHAIN`], the rules that read neither, which the port
//!   chain jumps to right after its MAC rule.
//!
//! nft 1.0.6 lists them so (sets first; `common`, unchanged, is in the
//! `guard_structure_as_documented` test), and loads the listing back as the
//! same rules:
//!
//! ```text
//! set ports { type ifname; elements = { "veth0a0a0a02", ... } }
//! set macs { type ifname . ether_addr; ... }
//! set v4 { type ifname . ipv4_addr; ... }
//! set v6 { type ifname . ipv6_addr; ... }
//! set senders { type ifname . ether_addr . ipv4_addr; ... }
//! set lladdrs { typeof iifname . @th,80,48; ... }
//! set targets { typeof iifname . @th,64,128; ... }
//!
//! chain port {
//!     iifname . ether saddr != @macs drop
//!     jump common
//!     iifname . ip saddr @v4 meta l4proto != udp accept
//!     iifname . ip saddr @v4 meta l4proto udp ip frag-off & 8191 == 0 accept
//!     iifname . ip saddr @v4 meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5 @nh,176,16 != 0x44 accept
//!     icmpv6 type nd-router-solicit ip6 length 16 @th,64,16 != 0x101 drop
//!     icmpv6 type nd-router-solicit ip6 length 16 iifname . @th,80,48 != @lladdrs drop
//!     icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: @th,192,16 != 0x101 drop
//!     icmpv6 type nd-neighbor-solicit ip6 length 32 ip6 saddr != :: iifname . @th,208,48 != @lladdrs drop
//!     icmpv6 type nd-neighbor-solicit ip6 saddr :: iifname . @th,64,128 != @targets drop
//!     icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,16 != 0x201 drop
//!     icmpv6 type nd-neighbor-advert ip6 length 32 iifname . @th,208,48 != @lladdrs drop
//!     icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @targets drop
//!     iifname . ip6 saddr @v6 meta l4proto != udp accept
//!     iifname . ip6 saddr @v6 meta l4proto udp ip6 nexthdr udp accept
//!     iifname . ip6 saddr @v6 meta l4proto udp ip6 nexthdr ipv6-frag @nh,320,8 0x11 @nh,400,16 != 0x222 accept
//!     ip6 saddr :: icmpv6 type nd-neighbor-solicit accept
//!     ip6 saddr :: icmpv6 type mld2-listener-report accept
//!     arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . arp saddr ether . arp saddr ip @senders accept
//!     drop
//! }
//!
//! chain prerouting {
//!     type filter hook prerouting priority -500; policy accept;
//!     iifname @ports jump port
//! }
//!
//! chain input {
//!     type filter hook input priority -500; policy accept;
//!     iifname @ports ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop
//! }
//! ```
//!
//! A port's guard is its elements in those sets: [`Guard::allow`] adds them
//! in one batch of seven messages, [`Guard::forget`] deletes them. No chain,
//! rule or verdict is added per port, so a call neither registers a hook nor
//! makes the kernel validate the table's chains, and a device's
//! registration walks no netdev hook of ours (see
//! `BRIDGE-PATHS.md`). The rules decide each frame as the per-port netdev
//! chains before them did (the same rules, a constant of a port's chain
//! replaced by a lookup keyed by the input device's name; the link-layer
//! option check split into its type and its MAC), written as nft 1.0.6
//! writes them in a bridge table, so that a saved listing loads back as the
//! same bytecode: no `meta iiftype` dependency, `ether type` before
//! `icmpv6` and `arp` matches (tagged frames never get that far: the shared
//! chain's `ether type` whitelist drops them).
//!
//! # Why every frame passes it
//!
//! Only with the port's group forwarding mask
//! ([`LINK_LOCAL_FORWARDED`](crate::LINK_LOCAL_FORWARDED), set with
//! [`Learning::Pinned`](crate::Learning::Pinned) before the host end is up):
//! `br_handle_frame` then sends every frame to 01:80:c2:00:00:0X but pause
//! (dropped) down its forwarding path, through bridge prerouting, and every
//! other frame goes there anyway; nothing the bridge learns, forwards or
//! delivers (to the bridge's own stack, through input) skips prerouting,
//! and nothing reaches the host end's own stack. Without the mask LLDP
//! (0x0E) would go to the host end's stack past every bridge hook, and the
//! other groups through input only (which the input rule drops). The
//! exceptions are root's: an ebtables `broute` rule (which runs before
//! priority -500) and MRP/CFM instances on the bridge. `BRIDGE-PATHS.md`
//! lists every return of `br_handle_frame` and what it passes.
//!
//! The table and its sets and chains are shared structure: they stay when
//! the last port goes. A container's owner cannot change them (no
//! `CAP_NET_ADMIN` in the host namespace); root can, and [`Guard::missing`]
//! names a chain without its rules and a port without its entry in `ports`
//! or `macs`, and [`Guard::allow`] makes them whole again.

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

/// A chain of the guard: its name, its hook (for a base chain) and its
/// rules.
type Chain = (&'static str, Option<u32>, Vec<Vec<Expr>>);

/// The guard's chains, in the order they are made (a chain before the
/// chains that jump to it).
fn chains() -> [Chain; 4] {
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
