//! The guard: what a container's bridge port may send, in table
//! `bridge <table>`:
//!
//! ```text
//! set guarded { type ifname }
//! set mac     { type ifname . ether_addr }
//! set addr4   { type ifname . ipv4_addr }
//! set addr6   { type ifname . ipv6_addr }
//! chain prerouting { type filter hook prerouting priority -200; policy accept; iifname @guarded jump guard }
//! chain guard {
//!     iifname . ether saddr != @mac drop
//!     arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . arp saddr ether @mac iifname . arp saddr ip @addr4 accept
//!     arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . arp saddr ether @mac arp saddr ip 0.0.0.0 accept
//!     iifname . ip saddr @addr4 accept
//!     ip saddr 0.0.0.0 ip protocol udp udp sport 68 udp dport 67 accept
//!     icmpv6 type nd-router-advert drop
//!     icmpv6 type nd-redirect drop
//!     icmpv6 type nd-neighbor-advert iifname . icmpv6 taddr != @addr6 drop
//!     iifname . ip6 saddr @addr6 accept
//!     ip6 saddr :: icmpv6 type nd-neighbor-solicit accept
//!     ip6 saddr :: icmpv6 type mld2-listener-report accept
//!     drop
//! }
//! ```
//!
//! (each `ip`, `arp`, `ip6` match behind its `ether type`). Bridge
//! prerouting runs before the bridge learns the source MAC, so a forged
//! frame neither passes nor poisons the forwarding database. A guarded port
//! is a handful of set elements: a packet and a call cost the same
//! whatever the number of ports.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::expr::{
    ifname, Base, Expr, NFT_META_IIFNAME, NFT_META_L4PROTO, NFT_REG_1, NFT_REG_2, NF_ACCEPT,
    NF_DROP,
};
use super::wire::NLM_F_CREATE;
use super::{check_table, datatype, Batch, Family, Nftables, SetSpec};
use crate::error::Result;
use crate::links::check_name;

const GUARDED: &str = "guarded";
const MAC: &str = "mac";
const ADDR4: &str = "addr4";
const ADDR6: &str = "addr6";
const PREROUTING: &str = "prerouting";
const GUARD: &str = "guard";
/// `NF_BR_PRE_ROUTING`.
const NF_BR_PRE_ROUTING: u32 = 0;
/// Before everything nft users usually hook there (`NF_BR_PRI_NAT_DST_BRIDGED` is -300).
const PRIORITY: i32 = -200;

const IFNAME: (u32, u32) = (datatype::IFNAME, 16);
const SETS: [SetSpec; 4] = [
    SetSpec {
        name: GUARDED,
        key: &[IFNAME],
        data: &[],
    },
    SetSpec {
        name: MAC,
        key: &[IFNAME, (datatype::ETHERADDR, 6)],
        data: &[],
    },
    SetSpec {
        name: ADDR4,
        key: &[IFNAME, (datatype::IPADDR, 4)],
        data: &[],
    },
    SetSpec {
        name: ADDR6,
        key: &[IFNAME, (datatype::IP6ADDR, 16)],
        data: &[],
    },
];

/// A bridge port whose container may send only from its own addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedPort {
    /// The host end of the container's veth pair (the bridge port).
    pub ifname: String,
    /// The container interface's MAC address.
    pub mac: [u8; 6],
    /// Its IPv4 addresses.
    pub ipv4: Vec<Ipv4Addr>,
    /// Its IPv6 addresses, the link-local one included.
    pub ipv6: Vec<Ipv6Addr>,
}

/// The guard of bridge ports in one `bridge` table: [`Nftables::guard`].
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    pub(super) nft: &'a Nftables,
    pub(super) table: &'a str,
}

impl<'a> Guard<'a> {
    /// Guards `port`: from then on it passes only frames from its MAC with
    /// its addresses (and ARP and neighbour discovery for those, DHCP
    /// discovery, duplicate address detection). All of its elements are
    /// added in one batch; the table is created on first use. Adding a port
    /// again is no error.
    pub fn allow(self, port: &GuardedPort) -> AllowPort<'a> {
        AllowPort {
            at: self,
            port: port.clone(),
        }
    }

    /// Stops guarding `port`: deletes those of its elements that exist.
    pub fn forget(self, port: &GuardedPort) -> ForgetPort<'a> {
        ForgetPort {
            at: self,
            port: port.clone(),
        }
    }

    /// Whether every element of `port` is present.
    pub fn present(self, port: &GuardedPort) -> Result<bool> {
        check_table(self.table)?;
        check_name(&port.ifname)?;
        for (set, key) in elements(port) {
            if self.get(set, &key, port)?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn get(&self, set: &str, key: &[u8], port: &GuardedPort) -> Result<Option<Vec<u8>>> {
        self.nft.element(
            Family::Bridge,
            self.table,
            set,
            key,
            &format!("port {} in set bridge {} {set}", port.ifname, self.table),
        )
    }

    /// Creates the sets and chains unless they are there; one look-up when
    /// they are.
    fn ensure_structure(&self) -> Result<()> {
        let (nft, table, bridge) = (self.nft, self.table, Family::Bridge);
        nft.transact(&format!("on table bridge {table}"), |genid| {
            if nft.set_exists(bridge, table, GUARDED)? {
                return Ok(None);
            }
            let mut batch =
                Batch::new(nft, bridge, Some(genid), format!("on table bridge {table}"));
            batch.table(bridge, table);
            for set in &SETS {
                batch.new_set(bridge, table, set);
            }
            batch.new_chain(bridge, table, GUARD);
            for (i, rule) in guard_rules().iter().enumerate() {
                batch.rule(bridge, table, GUARD, rule, None, &format!("rule {}", i + 1));
            }
            batch.base_chain(
                bridge,
                table,
                PREROUTING,
                "filter",
                NF_BR_PRE_ROUTING,
                PRIORITY,
            );
            batch.rule(
                bridge,
                table,
                PREROUTING,
                &[
                    Expr::meta(NFT_META_IIFNAME),
                    lookup(GUARDED, false),
                    Expr::Jump(GUARD.to_string()),
                ],
                None,
                &format!("jump {GUARD}"),
            );
            Ok(Some(batch))
        })?;
        Ok(())
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
        check_table(table)?;
        check_name(&self.port.ifname)?;
        self.at.ensure_structure()?;
        let name = &self.port.ifname;
        let mut batch = Batch::new(nft, Family::Bridge, None, format!("guard port {name}"));
        for (set, key) in elements(&self.port) {
            batch.element(
                false,
                NLM_F_CREATE,
                table,
                set,
                &key,
                None,
                format!("port {name} in set bridge {table} {set}"),
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
    /// Applies it. Returns `true` when something was deleted.
    pub fn execute(self) -> Result<bool> {
        let Guard { nft, table } = self.at;
        check_table(table)?;
        check_name(&self.port.ifname)?;
        let name = &self.port.ifname;
        let mut batch = Batch::new(nft, Family::Bridge, None, format!("forget port {name}"));
        for (set, key) in elements(&self.port) {
            if self.at.get(set, &key, &self.port)?.is_some() {
                batch.element(
                    true,
                    0,
                    table,
                    set,
                    &key,
                    None,
                    format!("port {name} in set bridge {table} {set}"),
                );
            }
        }
        if batch.is_empty() {
            return Ok(false);
        }
        batch.commit_once()?;
        Ok(true)
    }
}

/// The elements of `port`, `guarded` last.
fn elements(port: &GuardedPort) -> Vec<(&'static str, Vec<u8>)> {
    let name = ifname(&port.ifname);
    let with = |bytes: &[u8]| {
        let mut key = name.clone();
        key.extend_from_slice(bytes);
        key.resize(key.len().div_ceil(4) * 4, 0);
        key
    };
    let mut out = vec![(MAC, with(&port.mac))];
    out.extend(port.ipv4.iter().map(|a| (ADDR4, with(&a.octets()))));
    out.extend(port.ipv6.iter().map(|a| (ADDR6, with(&a.octets()))));
    out.push((GUARDED, name));
    out
}

fn lookup(set: &str, invert: bool) -> Expr {
    Expr::Lookup {
        set: set.to_string(),
        map: false,
        invert,
    }
}

/// `iifname . <field>` in registers 1 and 2, ready for a lookup.
fn iifname_and(base: Base, offset: u32, len: u32) -> [Expr; 2] {
    [
        Expr::Meta {
            key: NFT_META_IIFNAME,
            dreg: NFT_REG_1,
        },
        Expr::Payload {
            base,
            offset,
            len,
            dreg: NFT_REG_2,
        },
    ]
}

/// The rules of chain `guard`, in order.
fn guard_rules() -> Vec<Vec<Expr>> {
    const ICMPV6: u8 = 58;
    let ether_type = |t: u16| vec![Expr::payload(Base::Link, 12, 2), Expr::eq(&t.to_be_bytes())];
    let arp = || {
        let mut e = ether_type(0x0806);
        // htype 1, ptype ip; hlen 6, plen 4: as nft merges them.
        e.push(Expr::payload(Base::Network, 0, 4));
        e.push(Expr::eq(&[0, 1, 8, 0]));
        e.push(Expr::payload(Base::Network, 4, 2));
        e.push(Expr::eq(&[6, 4]));
        e.extend(iifname_and(Base::Network, 8, 6));
        e.push(lookup(MAC, false));
        e
    };
    let icmpv6_type = |t: u8| {
        vec![
            Expr::meta(NFT_META_L4PROTO),
            Expr::eq(&[ICMPV6]),
            Expr::payload(Base::Transport, 0, 1),
            Expr::eq(&[t]),
        ]
    };
    let unspecified6 = || {
        vec![
            Expr::payload(Base::Network, 8, 16),
            Expr::eq(&Ipv6Addr::UNSPECIFIED.octets()),
        ]
    };
    let rule = |parts: Vec<Vec<Expr>>| parts.concat();
    let accept = || vec![Expr::Verdict(NF_ACCEPT)];
    let drop = || vec![Expr::Verdict(NF_DROP)];
    vec![
        rule(vec![
            iifname_and(Base::Link, 6, 6).to_vec(),
            vec![lookup(MAC, true)],
            drop(),
        ]),
        rule(vec![
            arp(),
            iifname_and(Base::Network, 14, 4).to_vec(),
            vec![lookup(ADDR4, false)],
            accept(),
        ]),
        rule(vec![
            arp(),
            vec![Expr::payload(Base::Network, 14, 4), Expr::eq(&[0; 4])],
            accept(),
        ]),
        rule(vec![
            ether_type(0x0800),
            iifname_and(Base::Network, 12, 4).to_vec(),
            vec![lookup(ADDR4, false)],
            accept(),
        ]),
        rule(vec![
            ether_type(0x0800),
            vec![
                Expr::payload(Base::Network, 12, 4),
                Expr::eq(&[0; 4]),
                Expr::payload(Base::Network, 9, 1),
                Expr::eq(&[libc::IPPROTO_UDP as u8]),
                // udp sport 68 udp dport 67, as nft merges them.
                Expr::payload(Base::Transport, 0, 4),
                Expr::eq(&[0, 68, 0, 67]),
            ],
            accept(),
        ]),
        rule(vec![ether_type(0x86dd), icmpv6_type(134), drop()]),
        rule(vec![ether_type(0x86dd), icmpv6_type(137), drop()]),
        rule(vec![
            ether_type(0x86dd),
            icmpv6_type(136),
            // The target address of a neighbour advertisement.
            iifname_and(Base::Transport, 8, 16).to_vec(),
            vec![lookup(ADDR6, true)],
            drop(),
        ]),
        rule(vec![
            ether_type(0x86dd),
            iifname_and(Base::Network, 8, 16).to_vec(),
            vec![lookup(ADDR6, false)],
            accept(),
        ]),
        rule(vec![
            ether_type(0x86dd),
            unspecified6(),
            icmpv6_type(135),
            accept(),
        ]),
        rule(vec![
            ether_type(0x86dd),
            unspecified6(),
            icmpv6_type(143),
            accept(),
        ]),
        drop(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_padded_concatenations() {
        let port = GuardedPort {
            ifname: "veth0".into(),
            mac: [2, 0x6e, 10, 0, 0, 2],
            ipv4: vec!["10.0.0.2".parse().unwrap()],
            ipv6: vec!["fe80::6e:aff:fe00:2".parse().unwrap()],
        };
        let e = elements(&port);
        assert_eq!(
            e.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [MAC, ADDR4, ADDR6, GUARDED]
        );
        assert_eq!(e[0].1.len(), 24);
        assert_eq!(&e[0].1[..6], b"veth0\0");
        assert_eq!(&e[0].1[16..], &[2, 0x6e, 10, 0, 0, 2, 0, 0]);
        assert_eq!(&e[1].1[16..], &[10, 0, 0, 2]);
        assert_eq!(e[2].1.len(), 32);
        assert_eq!(e[3].1.len(), 16);
    }

    #[test]
    fn guard_rules_match_what_nft_generates() {
        let rules = guard_rules();
        assert_eq!(rules.len(), 12);
        // `iifname . ether saddr != @mac drop`:
        // [ meta load iifname => reg 1 ] [ payload load 6b @ link header + 6 => reg 2 ]
        // [ lookup reg 1 set mac 0x1 ] [ immediate reg 0 drop ]
        assert_eq!(
            rules[0],
            vec![
                Expr::meta(NFT_META_IIFNAME),
                Expr::Payload {
                    base: Base::Link,
                    offset: 6,
                    len: 6,
                    dreg: NFT_REG_2
                },
                lookup(MAC, true),
                Expr::Verdict(NF_DROP),
            ]
        );
        // The ARP header check: `[ cmp eq reg 1 0x00080100 ]` `[ cmp eq reg 1 0x00000406 ]`.
        assert_eq!(rules[1][3], Expr::eq(&[0, 1, 8, 0]));
        assert_eq!(rules[1][5], Expr::eq(&[6, 4]));
        assert_eq!(rules[11], vec![Expr::Verdict(NF_DROP)]);
    }
}
