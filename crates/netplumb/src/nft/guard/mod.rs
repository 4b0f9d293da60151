//! The guard's layer 3: what the bridge takes from a container's host end.
//! One bridge-family table for every guarded port, [`guard_table_name`]
//! (`<table>_guard`), holds four chains shared by every port and seven
//! sets that hold each port's values, keyed by its host end's interface
//! index `I` (`meta iif`). nft 1.0.6 lists them so (a host end's index
//! printed as its name while it lives), and loads the listing back as the
//! same rules and elements:
//!
//! ```text
//! set ports_v3 { type iface_index; elements = { "P" } }
//! set macs_v3 { type iface_index . ether_addr; elements = { "P" . M } }
//! set v4_v3 { type iface_index . ipv4_addr; elements = { "P" . A, ... } }
//! set v6_v3 { type iface_index . ipv6_addr; elements = { "P" . X, ... } }
//! set senders_v3 { type iface_index . ether_addr . ipv4_addr;
//!                  elements = { "P" . M . 0.0.0.0, "P" . M . A, ... } }
//! set lladdrs_v3 { typeof iif . @th,80,48; elements = { "P" . 0xM } }
//! set targets_v3 { typeof iif . @th,64,128; elements = { "P" . 0xX, ... } }
//!
//! chain common_v3 {
//!  1  ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop
//!  2  ether type != arp ether type != ip ether type != ip6 drop
//!  3  meta protocol ip meta l4proto != tcp ... != sctp drop
//!  4  ip frag-off & 8191 == 0 udp sport 67 drop
//!  5  ip frag-off & 8191 == 0 udp dport 68 drop
//!  6  ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67 accept
//!  7  meta protocol ip return
//!  8  arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iif . arp saddr ether . arp saddr ip @senders_v3 accept
//!  9  meta protocol != ip6 return
//! 10-13  IPv6's protocol whitelist and the three DHCPv6 drops
//! 14  meta l4proto != ipv6-icmp return
//! 15-31  neighbour discovery's drops; those that read the port's MAC or
//!        addresses look up `iif . @th,... @lladdrs_v3` / `@targets_v3`
//! 32  ip6 saddr :: icmpv6 type nd-neighbor-solicit accept
//! 33  ip6 saddr :: icmpv6 type mld2-listener-report accept
//! }
//!
//! chain port_v3 {
//!     jump common_v3
//!     iif . ip saddr @v4_v3 meta l4proto != udp accept
//!     iif . ip saddr @v4_v3 meta l4proto udp ip frag-off & 8191 == 0 accept
//!     iif . ip saddr @v4_v3 meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5 @nh,176,16 != 0x44 accept
//!     iif . ip6 saddr @v6_v3 meta l4proto != udp accept
//!     iif . ip6 saddr @v6_v3 meta l4proto udp ip6 nexthdr udp accept
//!     iif . ip6 saddr @v6_v3 meta l4proto udp ip6 nexthdr ipv6-frag @nh,320,8 0x11 @nh,400,16 != 0x222 accept
//! }
//!
//! chain prerouting_v3 {
//!     type filter hook prerouting priority -500; policy accept;
//!     iif . ether saddr @macs_v3 jump port_v3
//!     iif @ports_v3 drop
//! }
//!
//! chain input_v3 {
//!     type filter hook input priority -500; policy accept;
//!     ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 iif @ports_v3 drop
//! }
//! ```
//!
//! (`common_v3`'s rules in full are in the `guard_structure_as_documented`
//! test; they are main's `common_v2` of the netdev guard with `iif` for
//! `iifname`, written as nft writes them in a bridge table: no `meta
//! iiftype` before an `ether` match, `ether type` before `icmpv6` and
//! `arp`.) A port's guard is its elements: [`Guard::allow`] adds them in
//! one batch of seven messages, [`Guard::forget`] deletes them. No chain,
//! rule or verdict is added per port, so a call neither registers a hook
//! nor makes the kernel validate the table, and a device's registration
//! walks no netdev hook of ours.
//!
//! # Versions
//!
//! Every chain and set name ends in the listing's version ([`VERSION`]; the
//! netdev guard's shared chain was `common_v2`): a binary judges and
//! refills only chains and sets of its own names, so an older or newer
//! binary on the same host never rebuilds (by its own rule count) a chain
//! this version's ports jump to, nor adds elements of another layout to
//! this version's sets. Two versions' base chains both run; each passes
//! only what its own rules pass for the ports in its own `ports` set.
//!
//! # Keyed by the device
//!
//! Every key begins with the host end's interface index, not its name. An
//! index is unique among the host namespace's devices while the device
//! lives and is not handed out again soon after (the kernel allocates them
//! cyclically: `dev_new_index` counts up, from 6.6 `xa_alloc_cyclic`), and
//! only root can bring a device with a chosen index into the host
//! namespace. So an element only ever passes frames of the device it was
//! added for: a host end deleted without [`Guard::forget`] (a crash between
//! the deletion and it, the kernel deleting the pair with the container's
//! namespace, a CNI DEL that knows no addresses) leaves elements no device
//! matches, and a new host end of the same name (a CNI ADD re-made after a
//! crash, with other addresses from IPAM; a netsetgo lease re-made) is a
//! new index that starts with no element: it passes only what its own
//! `allow` added. Names would not do this: a name is free again the moment
//! its device goes. Elements of a gone device are garbage, not a hole;
//! [`Guard::prune`] (run by `-restore`) deletes them.
//!
//! # Why every frame passes it
//!
//! Only with the port's group forwarding mask
//! ([`LINK_LOCAL_FORWARDED`](crate::LINK_LOCAL_FORWARDED), set with
//! [`Learning::Pinned`](crate::Learning::Pinned) before the host end is
//! up): `br_handle_frame` then sends every frame to 01:80:c2:00:00:0X but
//! pause (dropped) down its forwarding path, through bridge prerouting, and
//! every other frame goes there anyway; nothing the bridge learns,
//! forwards or delivers (to the bridge's own stack, through input) skips
//! prerouting, and nothing reaches the host end's own stack. Without the
//! mask LLDP (0x0E) would go to the host end's stack past every bridge
//! hook, and the other groups through input only (which the input rule
//! drops). The exceptions are root's: an ebtables `broute` rule (which runs
//! before priority -500) and MRP/CFM instances on the bridge.
//! `BRIDGE-PATHS.md` lists every return of `br_handle_frame` and what it
//! passes, on 5.10, 6.1 and 6.18.
//!
//! # Why the shared chains decide as the port's own chain did
//!
//! A look-up of `iif . field` in a set replaces a comparison of the field
//! with the port's constants and matches exactly when it did, because a
//! port's elements are exactly its values under its own index, and a
//! frame's `iif` is the port it came in by. `common_v3` is the netdev
//! guard's `common_v2` with `iif` for `iifname`, and `port_v3` its port
//! chain with look-ups for constants; its MAC rule (`ether saddr != M
//! drop`) is prerouting's jump, taken only for the port's own MAC, and
//! prerouting's `iif @ports_v3 drop` after it is that rule's drop and the
//! netdev chain's policy drop (a regular chain's end returns to the base
//! chain), so an emptied `port_v3` fails closed too. The early returns
//! for IPv4 (rule 7) and for IPv6 but ICMPv6 (rule 14) hold as they did:
//! nothing after them matches such a frame. The differential test
//! `the_bridge_guard_decides_every_frame_as_the_port_chain_before_it`
//! proves the decisions equal frame by frame.
//!
//! # What a port costs
//!
//! Per call: [`Guard::allow`] commits one batch of seven `NEWSETELEM`
//! messages (the structure only when that finds the table or a set
//! missing; `-restore`'s [`AllowPort::restore`] also reads the table's
//! rules to find a chain root emptied);
//! [`Guard::forget`] one batch of seven `DELSETELEM`; [`Guard::missing`]
//! the four chains and the port's `ports` and `macs` elements. None of it
//! grows with the number of ports. Per frame, a guarded port's: one
//! look-up of its index and MAC in prerouting, then the rules of
//! `common_v3` up to its return and one look-up for the address accept
//! (IPv4 at the port chain's 2nd rule); frames of ports that are not
//! guarded pay two look-ups, frames to the host a comparison in input.
//! The numbers are in the README's bench section.
//!
//! The table and its sets and chains are shared structure: they stay when
//! the last port goes. A container's owner cannot change them (no
//! `CAP_NET_ADMIN` in the host namespace); root can, and [`Guard::missing`]
//! names a chain without its rules and a port without its `ports` or
//! `macs` element, and [`AllowPort::restore`] makes them whole again. A missing
//! `ports` element fails open (the port's frames skip the guard), any
//! other missing element fails closed (its frames meet the drop).

mod legacy;
mod rules;
mod sets;

pub use self::legacy::LEGACY_GUARD_TABLES;
use self::rules::{common_rules, input_rules, port_rules, prerouting_rules};
use self::sets::{index_of, key_len, port_elements, SetKeys, PORTS, SETS};
use super::batch::Batch;
use super::expr::Expr;
use super::guarded_port::GuardedPort;
use super::objects::Op;
use super::proto::{check_table, Family, NF_BR_LOCAL_IN, NF_BR_PRE_ROUTING};
use super::socket::Nftables;
use crate::error::{Error, Result, Step};
use crate::links::check_name;

/// Before everything nft users usually hook at bridge prerouting and input
/// (ebtables' `broute` table excepted, at `NF_BR_PRI_FIRST`).
const PRIORITY: i32 = -500;

/// The version of the guard's listing, the suffix of every chain and set
/// name (see "Versions" in the module docs).
pub const VERSION: &str = "v3";

/// The regular chain that [`GUARD_PORT_CHAIN`] jumps to: the rules that
/// read neither the port's MAC nor its addresses, and the rare ones that
/// look up its neighbour discovery and ARP values. The docs call it
/// `common`.
pub const GUARD_COMMON_CHAIN: &str = "common_v3";

/// The regular chain prerouting jumps to for every guarded port: its MAC
/// and its address accepts, from the guard's sets (prerouting drops what
/// it returns).
pub const GUARD_PORT_CHAIN: &str = "port_v3";

/// A chain of the guard: its name, its hook (for a base chain) and its
/// rules.
type Chain = (&'static str, Option<u32>, Vec<Vec<Expr>>);

/// The guard's chains, in the order they are made (a chain before the
/// chains that jump to it).
fn chains() -> [Chain; 4] {
    [
        (GUARD_COMMON_CHAIN, None, common_rules()),
        (GUARD_PORT_CHAIN, None, port_rules()),
        ("prerouting_v3", Some(NF_BR_PRE_ROUTING), prerouting_rules()),
        ("input_v3", Some(NF_BR_LOCAL_IN), input_rules()),
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
    /// Guards `port`: from then on the bridge passes from its host end (the
    /// device of index `port.ifindex`) only frames from its MAC with its
    /// addresses (and ARP and neighbour discovery for those, DHCP
    /// discovery, duplicate address detection), nothing posing as a DHCP
    /// server or a router. One batch of the port's set elements; the
    /// table, its sets and chains too when they are missing (and, with
    /// [`AllowPort::restore`], when a chain is short of rules). It may be
    /// run again at any time (after a ruleset flush, say). The host end must be a bridge port with
    /// [`LINK_LOCAL_FORWARDED`](crate::LINK_LOCAL_FORWARDED) in its group
    /// forwarding mask (`Learning::Pinned`) for link-local frames to reach
    /// the guard. Refused (`EINVAL`) without an index.
    pub fn allow(self, port: &GuardedPort) -> AllowPort<'a> {
        AllowPort {
            at: self,
            port: port.clone(),
        }
    }

    /// Stops guarding `port`: deletes every element of its index ([`Guard::forget`]'s
    /// request says how); the table, its sets and chains, which other ports
    /// share, stay.
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
        let table = checked_table(self.table, port)?;
        let mut missing = short_chains(self.nft, &table)?;
        for (set, keys) in port_elements(port).iter().take(2) {
            let object = format!("element bridge {table} {set} {}", port.ifname);
            let found = self
                .nft
                .has_elements(Family::Bridge, &table, set, keys, &object)?;
            if !found {
                missing.push(object);
            }
        }
        Ok(missing)
    }

    /// Whether nothing of `port`'s guard is missing ([`Guard::missing`]).
    pub fn present(self, port: &GuardedPort) -> Result<bool> {
        Ok(self.missing(port)?.is_empty())
    }

    /// Every element of the guard's sets (one dump of each), for
    /// [`Guard::prune`]: costs in proportion to the sets, for `-restore`
    /// and collection, not for the per-call path.
    pub fn elements(self) -> Result<GuardElements> {
        let table = guard_table_name(self.table);
        check_table(&table)?;
        let mut sets = Vec::new();
        for spec in &SETS {
            let keys: Vec<Vec<u8>> = self
                .nft
                .elements(Family::Bridge, &table, spec.name)?
                .into_iter()
                .map(|(key, _)| key)
                .filter(|key| key.len() == key_len(spec))
                .collect();
            sets.push((spec.name, keys));
        }
        Ok(GuardElements { sets })
    }

    /// Deletes, of `dumped` ([`Guard::elements`]), every element whose
    /// index is not in `live`, in one batch. `live` must list the devices
    /// that exist *after* `dumped` was taken: a port guarded in between has
    /// its device from before its elements, so it is live to the caller,
    /// and an index, once its device is gone, is not handed out again
    /// soon. Returns how many elements were deleted.
    pub fn prune(self, dumped: GuardElements, live: &[u32]) -> Result<usize> {
        let table = guard_table_name(self.table);
        check_table(&table)?;
        let keep = |key: &Vec<u8>| index_of(key).is_some_and(|i| live.contains(&i));
        let stale: Vec<SetKeys> = dumped
            .sets
            .into_iter()
            .map(|(set, keys)| (set, keys.into_iter().filter(|k| !keep(k)).collect()))
            .collect();
        let count = stale.iter().map(|(_, keys)| keys.len()).sum();
        if count > 0 {
            let what = "prune the guard".to_string();
            let mut batch = Batch::new(self.nft, Family::Bridge, None, what);
            set_elements(&mut batch, Op::Delete, &table, &stale, "of no device");
            batch.commit_once()?;
        }
        Ok(count)
    }
}

/// What [`Guard::elements`] found in the guard's sets.
#[derive(Debug)]
pub struct GuardElements {
    sets: Vec<SetKeys>,
}

impl GuardElements {
    /// The interface indexes the elements are keyed by, each once, sorted.
    pub fn indexes(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .sets
            .iter()
            .flat_map(|(_, keys)| keys.iter().filter_map(|k| index_of(k)))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The shared chains that are missing or lack rules, named: one dump of
/// the table's rules.
fn short_chains(nft: &Nftables, table: &str) -> Result<Vec<String>> {
    let listed = nft.table_rules(Family::Bridge, table)?;
    let mut short = Vec::new();
    for (chain, _, rules) in chains() {
        if listed.iter().filter(|r| r.chain == chain).count() != rules.len() {
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
    /// Applies it: one batch of the port's elements. Only when that fails
    /// for want of the table or a set (`ENOENT`: a fresh host, a flushed
    /// ruleset) is the structure made, in a batch tied to the ruleset
    /// generation it was planned at, so that of two calls making it at
    /// once one wins and the other plans again. It does not look at the
    /// chains (that would cost a dump of the table's rules a call):
    /// [`AllowPort::restore`] does.
    pub fn execute(self) -> Result<()> {
        let (nft, table, name, elements) = self.parts()?;
        let mut batch = Batch::new(nft, Family::Bridge, None, format!("guard port {name}"));
        set_elements(&mut batch, Op::Add, &table, &elements, name);
        match batch.commit_once() {
            Err(e) if e.errno() == Some(libc::ENOENT) => self.rebuild(&table, &elements),
            done => done,
        }
    }

    /// [`AllowPort::execute`], after one dump of the table's rules: when a
    /// shared chain is missing or short of rules (root flushed or deleted
    /// it), the structure is made again in the same batch as the
    /// elements. What `-restore` runs.
    pub fn restore(self) -> Result<()> {
        let (nft, table, _, elements) = self.parts()?;
        match short_chains(nft, &table)?.is_empty() {
            true => self.execute(),
            false => self.rebuild(&table, &elements),
        }
    }

    /// The session, the checked table, the port's name and its elements;
    /// refused (`EINVAL`) without an index.
    fn parts(&self) -> Result<(&Nftables, String, &str, Vec<SetKeys>)> {
        let Guard { nft, table } = self.at;
        let name = self.port.ifname.as_str();
        let table = checked_table(table, &self.port)?;
        if self.port.ifindex == 0 {
            let object = format!("guard port {name}: no interface index");
            let einval = std::io::Error::from_raw_os_error(libc::EINVAL);
            return Err(Error::os(Step::NftAddElement, object, einval));
        }
        Ok((nft, table, name, port_elements(&self.port)))
    }

    /// One batch, tied to the generation: the structure and `elements`.
    fn rebuild(&self, table: &str, elements: &[SetKeys]) -> Result<()> {
        let (nft, name) = (self.at.nft, &self.port.ifname);
        let what = format!("guard port {name}");
        nft.transact(&what, |genid| {
            let mut batch = Batch::new(nft, Family::Bridge, Some(genid), what.clone());
            structure(nft, &mut batch, table)?;
            set_elements(&mut batch, Op::Add, table, elements, name);
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

/// Adds or deletes (`op`) `elements` of the sets of `table` (`host end`'s,
/// named in errors), one message per set that has any.
fn set_elements(batch: &mut Batch<'_>, op: Op, table: &str, elements: &[SetKeys], host_end: &str) {
    for (set, keys) in elements.iter().filter(|(_, keys)| !keys.is_empty()) {
        let keys: Vec<_> = keys.iter().map(|k| (k.as_slice(), None)).collect();
        let object = format!("element bridge {table} {set} {host_end}");
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
    /// Applies it: one batch deletes the port's elements, as its values
    /// give them. When the port names no IPv4 address (the CNI plugin's
    /// DEL knows none) or one of its elements is missing (`ENOENT`, which
    /// fails the whole batch), the elements of its index are found by one
    /// dump of each set instead. The port's chain of the legacy netdev
    /// guard goes too, if it is still there (one more request). Returns
    /// `true` when the port was in the set of guarded ports or had a
    /// legacy chain. A port without an index (its device gone
    /// unrecorded) has no element any device matches: nothing to do
    /// ([`Guard::prune`] collects them).
    pub fn execute(self) -> Result<bool> {
        let Guard { nft, table } = self.at;
        let port = &self.port;
        let table = checked_table(table, port)?;
        let legacy = self.at.drop_legacy_chain(&port.ifname)?;
        if port.ifindex == 0 {
            return Ok(legacy);
        }
        let delete = |elements: &[SetKeys]| {
            let what = format!("forget port {}", port.ifname);
            let mut batch = Batch::new(nft, Family::Bridge, None, what);
            set_elements(&mut batch, Op::Delete, &table, elements, &port.ifname);
            batch.commit_once()
        };
        if !port.ipv4.is_empty() {
            match delete(&port_elements(port)) {
                Ok(()) => return Ok(true),
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        let found: Vec<SetKeys> = (self.at.elements()?.sets.into_iter())
            .map(|(set, keys)| {
                let own = keys
                    .into_iter()
                    .filter(|k| index_of(k) == Some(port.ifindex));
                (set, own.collect())
            })
            .collect();
        let guarded = found
            .iter()
            .any(|(set, keys)| *set == PORTS && !keys.is_empty());
        if found.iter().any(|(_, keys)| !keys.is_empty()) {
            delete(&found)?;
        }
        Ok(guarded || legacy)
    }
}

/// The name of the bridge table that holds the guard of every host end of
/// [`Nftables::guard`]`(table)`: `<table>_guard`.
pub fn guard_table_name(table: &str) -> String {
    format!("{table}_guard")
}

/// [`guard_table_name`], once `table` and the port's name are valid names
/// and so is the result.
fn checked_table(table: &str, port: &GuardedPort) -> Result<String> {
    check_table(table)?;
    check_name(&port.ifname)?;
    let name = guard_table_name(table);
    check_table(&name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str) -> GuardedPort {
        GuardedPort::new(name, [2, 0, 0, 0, 0, 2], &[]).at(7)
    }

    #[test]
    fn table_names_are_checked() {
        assert_eq!(
            checked_table("netsetgo", &port("veth0a0a0a02")).unwrap(),
            "netsetgo_guard"
        );
        assert!(checked_table("net setgo", &port("veth0")).is_err());
        assert!(checked_table("netsetgo", &port("a/b")).is_err());
        // Valid alone, too long with the suffix.
        assert!(checked_table(&"t".repeat(60), &port("veth0")).is_err());
    }

    #[test]
    fn prerouting_drops_what_the_port_chain_returns_and_acts_only_on_guarded_ports() {
        let [common, port, pre, input] = chains();
        assert_eq!((common.2.len(), port.2.len()), (33, 7));
        assert_eq!(pre.2.len(), 2);
        assert_eq!(input.2.len(), 1);
        assert!(pre.2[0].contains(&Expr::Jump(GUARD_PORT_CHAIN.into())));
        assert_eq!(pre.2[1].last(), Some(&Expr::Verdict(0)));
        // Each base chain rule acts only on ports in the set of guarded
        // ports (the jump: its index and MAC in `macs_v3`).
        let looks_up = |rule: &[Expr], name: &str| {
            rule.iter()
                .any(|e| matches!(e, Expr::Lookup { set, invert: false, .. } if set == name))
        };
        assert!(looks_up(&pre.2[0], "macs_v3"));
        assert!(looks_up(&pre.2[1], "ports_v3") && looks_up(&input.2[0], "ports_v3"));
        assert_eq!(port.2[0], vec![Expr::Jump(GUARD_COMMON_CHAIN.into())]);
        for (name, _, _) in chains() {
            assert!(name.ends_with(VERSION), "{name}");
        }
        assert_eq!(sets::MACS, "macs_v3");
    }
}
