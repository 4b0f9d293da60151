//! Published ports: DNAT of a host port to a container, keeping the
//! client's address, in table `inet <table>`:
//!
//! ```text
//! map published { type inet_proto . inet_service : ipv4_addr }   # the claim: one owner per host port
//! map dnat4     { type inet_proto . inet_service : ipv4_addr . inet_service }
//! map dnat4addr { type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service }
//! map dnat6     { type inet_proto . inet_service : ipv6_addr . inet_service }
//! map dnat6addr { type inet_proto . ipv6_addr . inet_service : ipv6_addr . inet_service }
//! chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump publish }
//! chain output     { type nat hook output priority dstnat; policy accept; jump publish }
//! chain publish {
//!     ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . ip daddr . th dport map @dnat4addr
//!     ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . th dport map @dnat4
//!     ip6 daddr != ::1 fib daddr type local dnat ip6 to meta l4proto . ip6 daddr . th dport map @dnat6addr
//!     ip6 daddr != ::1 fib daddr type local dnat ip6 to meta l4proto . th dport map @dnat6
//! }
//! chain postrouting { ... jump hairpin comment "netplumb hairpin" }
//! chain hairpin {
//!     oifname "<bridge>" ip saddr <subnet> ct status dnat masquerade comment "netplumb hairpin <bridge>"
//! }
//! ```
//!
//! A publication is a handful of map elements, so a packet and a call cost
//! the same whatever the number of publications. Traffic to a loopback
//! address is never translated (that would need `route_localnet`).

use ipnetwork::{IpNetwork, Ipv4Network};

use super::batch::Batch;
use super::expr::{
    Base, Expr, IPS_DST_NAT, NFPROTO_IPV4, NFPROTO_IPV6, NFT_CMP_NEQ, NFT_CT_STATUS,
    NFT_META_L4PROTO, NFT_META_OIFNAME, NFT_REG_2,
};
use super::objects::{user_comment, Op};
use super::postrouting::{hairpin_tag, saddr_in, JumpedRule, HAIRPIN, POSTROUTING_CHAIN};
use super::proto::{check_table, datatype, Family, SetSpec};
use super::publication::{
    claim, describe, entries, keys, Publication, DNAT4, DNAT4ADDR, DNAT6, DNAT6ADDR, PUBLISHED,
};
use super::socket::Nftables;
use super::wire::kernel_error;
use crate::error::{Result, Step};
use crate::links::check_name;

/// The regular chain both DNAT base chains jump to.
const PUBLISH: &str = "publish";
const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";
/// `NF_INET_PRE_ROUTING`, `NF_INET_LOCAL_OUT`.
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_LOCAL_OUT: u32 = 3;
/// `NF_IP_PRI_NAT_DST`, what nft calls `dstnat`.
const PRIORITY_DSTNAT: i32 = -100;

const PROTO: (u32, u32) = (datatype::INET_PROTOCOL, 1);
const SERVICE: (u32, u32) = (datatype::INET_SERVICE, 2);
const ADDR4: (u32, u32) = (datatype::IPADDR, 4);
const ADDR6: (u32, u32) = (datatype::IP6ADDR, 16);

const SETS: [SetSpec; 5] = [
    SetSpec {
        name: PUBLISHED,
        key: &[PROTO, SERVICE],
        data: &[ADDR4],
        key_typeof: &[],
    },
    SetSpec {
        name: DNAT4,
        key: &[PROTO, SERVICE],
        data: &[ADDR4, SERVICE],
        key_typeof: &[],
    },
    SetSpec {
        name: DNAT4ADDR,
        key: &[PROTO, ADDR4, SERVICE],
        data: &[ADDR4, SERVICE],
        key_typeof: &[],
    },
    SetSpec {
        name: DNAT6,
        key: &[PROTO, SERVICE],
        data: &[ADDR6, SERVICE],
        key_typeof: &[],
    },
    SetSpec {
        name: DNAT6ADDR,
        key: &[PROTO, ADDR6, SERVICE],
        data: &[ADDR6, SERVICE],
        key_typeof: &[],
    },
];

impl Nftables {
    /// Published ports in table `inet <table>`.
    pub fn ports<'a>(&'a self, table: &'a str) -> Ports<'a> {
        Ports { nft: self, table }
    }
}

/// Published ports in one `inet` table: [`Nftables::ports`].
#[derive(Debug, Clone, Copy)]
pub struct Ports<'a> {
    pub(super) nft: &'a Nftables,
    pub(super) table: &'a str,
}

impl<'a> Ports<'a> {
    /// Publishes `publication`: its claim (the host port and protocol, with
    /// its owner) and one map element per target, in one batch. The
    /// table's maps and chains are created on first use.
    ///
    /// A host port claimed already (by anyone, for any host address) is an
    /// error whose [`errno`](crate::Error::errno) is `EEXIST`, and nothing is
    /// added.
    pub fn publish(self, publication: &Publication) -> Publish<'a> {
        Publish {
            at: self,
            publication: publication.clone(),
            make_claims: true,
        }
    }

    /// Whether the table has its claims map (one look-up): it has held
    /// claims since it was made, unless a flushed ruleset took it.
    pub fn has_claims(self) -> Result<bool> {
        check_table(self.table)?;
        self.nft.set_exists(Family::Inet, self.table, PUBLISHED)
    }

    /// Creates the table's maps and chains unless they are there (what
    /// [`publish`](Ports::publish) does first), e.g. to give a flushed
    /// table its (empty) claims back before anything is published again.
    pub fn prepare(self) -> Result<()> {
        check_table(self.table)?;
        self.ensure_structure(true)
    }

    /// Removes `publication`, only when its claim belongs to its owner:
    /// another owner's publication, or none, is left untouched. Every map
    /// element of the claimed host port goes, whatever target it holds (the
    /// claim makes them all the owner's), so a publication made when its
    /// network had other addresses (another `gateway6`, or none) leaves
    /// nothing behind.
    pub fn unpublish(self, publication: &Publication) -> Unpublish<'a> {
        Unpublish {
            at: self,
            publication: publication.clone(),
        }
    }

    /// Whether `publication` is in place: the table's chains hold their
    /// rules (a fixed number: the look-ups cost the same whatever the
    /// number of publications), its claim has its owner and every map
    /// element is present with its target.
    pub fn present(self, publication: &Publication) -> Result<bool> {
        check_table(self.table)?;
        let entries = entries(self.table, publication)?;
        if !self.rules_intact()? {
            return Ok(false);
        }
        let (key, owner) = claim(publication);
        if self.get(PUBLISHED, &key, publication)? != Some(owner) {
            return Ok(false);
        }
        for entry in &entries {
            if self.get(entry.map, &entry.key, publication)?.as_ref() != Some(&entry.data) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Makes sure traffic from `subnet` (a bridge's IPv4 subnet) that was
    /// DNATed back out through `bridge`, from one container to a published
    /// port of another on the same bridge, is masqueraded to the bridge's
    /// address: otherwise the answer would go straight back over the bridge
    /// and miss the translation. Every other client keeps its address.
    /// Idempotent; removed with the network's masquerading by
    /// [`Masquerade::remove`](super::Masquerade::remove).
    pub fn hairpin(self, bridge: &str, subnet: Ipv4Network) -> Hairpin<'a> {
        Hairpin {
            at: self,
            bridge: bridge.to_string(),
            subnet,
        }
    }

    fn get(&self, map: &str, key: &[u8], publication: &Publication) -> Result<Option<Vec<u8>>> {
        self.nft.element(
            Family::Inet,
            self.table,
            map,
            key,
            &format!("{} in map inet {} {map}", describe(publication), self.table),
        )
    }

    /// Whether the chains hold their rules (a fixed number each: the
    /// look-ups cost the same whatever the number of publications).
    fn rules_intact(&self) -> Result<bool> {
        let (nft, table, inet) = (self.nft, self.table, Family::Inet);
        let rules = publish_rules().len();
        for (chain, rules) in [(PUBLISH, rules), (PREROUTING, 1), (OUTPUT, 1)] {
            if nft.rules(inet, table, chain)?.len() != rules {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Creates the maps and chains unless they are there, and gives the
    /// chains their rules again when one was deleted (the elements in the
    /// maps stay); four look-ups when all is in place. Without
    /// `make_claims`, a missing claims map is an `ENOENT` error instead,
    /// decided in the same ruleset generation as the creation would be.
    fn ensure_structure(&self, make_claims: bool) -> Result<()> {
        let (nft, table, inet) = (self.nft, self.table, Family::Inet);
        nft.transact(&format!("on table inet {table}"), |genid| {
            let have_claims = nft.set_exists(inet, table, PUBLISHED)?;
            if !have_claims && !make_claims {
                let object = format!("map inet {table} {PUBLISHED} (the claims)");
                return Err(kernel_error(Step::NftLookUp, object, libc::ENOENT));
            }
            if have_claims && self.rules_intact()? {
                return Ok(None);
            }
            let mut batch = Batch::new(nft, inet, Some(genid), format!("on table inet {table}"));
            batch.table(inet, table);
            for set in &SETS {
                if !nft.set_exists(inet, table, set.name)? {
                    batch.new_set(inet, table, set);
                }
            }
            if nft.chain_exists(inet, table, PUBLISH)? {
                batch.flush_chain(inet, table, PUBLISH);
            } else {
                batch.new_chain(inet, table, PUBLISH);
            }
            for (i, rule) in publish_rules().iter().enumerate() {
                batch.rule(inet, table, PUBLISH, rule, None, &format!("rule {}", i + 1));
            }
            for (chain, hook) in [
                (PREROUTING, NF_INET_PRE_ROUTING),
                (OUTPUT, NF_INET_LOCAL_OUT),
            ] {
                let existed = nft.chain_exists(inet, table, chain)?;
                batch.base_chain(inet, table, chain, "nat", hook, PRIORITY_DSTNAT);
                if existed {
                    batch.flush_chain(inet, table, chain);
                }
                batch.rule(
                    inet,
                    table,
                    chain,
                    &[Expr::Jump(PUBLISH.to_string())],
                    None,
                    &format!("jump {PUBLISH}"),
                );
            }
            Ok(Some(batch))
        })?;
        Ok(())
    }
}

/// A request of [`Ports::publish`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct Publish<'a> {
    at: Ports<'a>,
    publication: Publication,
    make_claims: bool,
}

impl Publish<'_> {
    /// Publishes only into the table's existing claims map: when it is
    /// missing (never made, or lost to a flushed ruleset), or goes before
    /// the claim is added, the error's [`errno`](crate::Error::errno) is
    /// `ENOENT` and nothing is added. For a publisher that must not start
    /// claims afresh while publications it knows of are not restored.
    pub fn into_existing_claims(mut self) -> Self {
        self.make_claims = false;
        self
    }

    /// Applies it.
    pub fn execute(self) -> Result<()> {
        let Ports { nft, table } = self.at;
        check_table(table)?;
        let p = &self.publication;
        let entries = entries(table, p)?;
        self.at.ensure_structure(self.make_claims)?;
        let what = describe(p);
        let mut batch = Batch::new(nft, Family::Inet, None, format!("publish {what}"));
        let (key, owner) = claim(p);
        batch.element(
            Op::AddNew,
            table,
            PUBLISHED,
            &key,
            Some(&owner),
            format!("claim of {what} in map inet {table} {PUBLISHED}"),
        );
        for entry in &entries {
            batch.element(
                Op::Add,
                table,
                entry.map,
                &entry.key,
                Some(&entry.data),
                format!("{what} in map inet {table} {}", entry.map),
            );
        }
        batch.commit_once()
    }
}

/// A request of [`Ports::unpublish`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct Unpublish<'a> {
    at: Ports<'a>,
    publication: Publication,
}

impl Unpublish<'_> {
    /// Applies it. Returns `true` when the publication was removed, `false`
    /// when there was none of that owner (nothing is touched then).
    pub fn execute(self) -> Result<bool> {
        let Ports { nft, table } = self.at;
        check_table(table)?;
        let p = &self.publication;
        let (key, owner) = claim(p);
        if self.at.get(PUBLISHED, &key, p)? != Some(owner) {
            return Ok(false);
        }
        let what = describe(p);
        let mut batch = Batch::new(nft, Family::Inet, None, format!("unpublish {what}"));
        for (map, entry) in keys(p) {
            if self.at.get(map, &entry, p)?.is_some() {
                batch.element(
                    Op::Delete,
                    table,
                    map,
                    &entry,
                    None,
                    format!("{what} in map inet {table} {map}"),
                );
            }
        }
        batch.element(
            Op::Delete,
            table,
            PUBLISHED,
            &key,
            None,
            format!("claim of {what} in map inet {table} {PUBLISHED}"),
        );
        batch.commit_once()?;
        Ok(true)
    }
}

/// A request of [`Ports::hairpin`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct Hairpin<'a> {
    at: Ports<'a>,
    bridge: String,
    subnet: Ipv4Network,
}

impl Hairpin<'_> {
    /// Applies it. Returns `true` when it changed the ruleset.
    pub fn execute(self) -> Result<bool> {
        let Ports { nft, table } = self.at;
        let bridge = self.bridge.as_str();
        check_table(table)?;
        check_name(bridge)?;
        let subnet = Ipv4Network::new(self.subnet.network(), self.subnet.prefix())
            .expect("the network address of a valid prefix is valid");
        let rule = JumpedRule {
            base: POSTROUTING_CHAIN,
            chain: HAIRPIN,
            exprs: hairpin(bridge, subnet),
            tag: hairpin_tag(bridge),
            what: format!("hairpin {bridge}"),
            jump_tag: user_comment("netplumb hairpin"),
        };
        rule.ensure(nft, table)
    }
}

/// `oifname "<bridge>" ip saddr <subnet> ct status dnat masquerade`
fn hairpin(bridge: &str, subnet: Ipv4Network) -> Vec<Expr> {
    let mut exprs = vec![
        Expr::meta(NFT_META_OIFNAME),
        Expr::eq(&super::expr::ifname(bridge)),
    ];
    exprs.extend(saddr_in(IpNetwork::V4(subnet)));
    exprs.push(Expr::Ct(NFT_CT_STATUS));
    exprs.push(Expr::Mask(IPS_DST_NAT.to_ne_bytes().to_vec()));
    exprs.push(Expr::Cmp(NFT_CMP_NEQ, vec![0; 4]));
    exprs.push(Expr::Masquerade);
    exprs
}

/// The four rules of chain `publish`, in order.
fn publish_rules() -> [Vec<Expr>; 4] {
    use super::expr::reg32;
    let lookup = |set: &str| Expr::Lookup {
        set: set.to_string(),
        map: true,
        invert: false,
    };
    let not_loopback4 = [
        Expr::payload(Base::Network, 16, 1),
        Expr::Cmp(NFT_CMP_NEQ, vec![127]),
    ];
    let not_loopback6 = [
        Expr::payload(Base::Network, 24, 16),
        Expr::Cmp(NFT_CMP_NEQ, std::net::Ipv6Addr::LOCALHOST.octets().to_vec()),
    ];
    let dport = |n| Expr::Payload {
        base: Base::Transport,
        offset: 2,
        len: 2,
        dreg: reg32(n),
    };
    let daddr = |offset, len| Expr::Payload {
        base: Base::Network,
        offset,
        len,
        dreg: reg32(1),
    };
    let head = |nfproto: u8, not_loopback: &[Expr]| {
        let mut exprs = Expr::nfproto(nfproto).to_vec();
        exprs.extend_from_slice(not_loopback);
        exprs.push(Expr::FibDaddrLocal);
        exprs.push(Expr::meta(NFT_META_L4PROTO));
        exprs
    };
    let rule = |mut exprs: Vec<Expr>, tail: Vec<Expr>| {
        exprs.extend(tail);
        exprs
    };
    let dnat4 = Expr::Dnat {
        family: NFPROTO_IPV4,
        proto_reg: reg32(1),
    };
    let dnat6 = Expr::Dnat {
        family: NFPROTO_IPV6,
        proto_reg: NFT_REG_2,
    };
    [
        rule(
            head(NFPROTO_IPV4, &not_loopback4),
            vec![daddr(16, 4), dport(2), lookup(DNAT4ADDR), dnat4.clone()],
        ),
        rule(
            head(NFPROTO_IPV4, &not_loopback4),
            vec![dport(1), lookup(DNAT4), dnat4],
        ),
        rule(
            head(NFPROTO_IPV6, &not_loopback6),
            vec![daddr(24, 16), dport(5), lookup(DNAT6ADDR), dnat6.clone()],
        ),
        rule(
            head(NFPROTO_IPV6, &not_loopback6),
            vec![dport(1), lookup(DNAT6), dnat6],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn hairpin_is_nfts_bytes() {
        // nft --debug=mnl add rule inet u publish oifname "br0"
        //     ip saddr 10.1.0.0/24 ct status dnat masquerade
        let nft = "b401048024000180090001006d6574610000000014000280080002000000000708000100000000\
                   013800018008000100636d70002c00028008000100000000010800020000000000180003801400\
                   01006272300000000000000000000000000024000180090001006d6574610000000014000280080002\
                   000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200\
                   000000000c0003800500010002000000340001800c0001007061796c6f61640024000280080001000000\
                   00010800020000000001080003000000000c08000400000000032c00018008000100636d700020000280\
                   080001000000000108000200000000000c000380070001000a0100002000018007000100637400001400\
                   028008000200000000020800010000000001440001800c0001006269747769736500340002800800010000\
                   000001080002000000000108000300000000040c00048008000100200000000c0005800800010000000000\
                   2c00018008000100636d700020000280080001000000000108000200000000010c00038008000100000000\
                   0014000180090001006d6173710000000004000280";
        let exprs = hairpin("br0", "10.1.0.0/24".parse().unwrap());
        assert_eq!(
            super::super::expr::tests::encoded(&exprs),
            nft.replace(' ', "")
        );
    }

    #[test]
    fn publish_rules_use_nfts_registers() {
        let rules = publish_rules();
        // `... meta l4proto . ip daddr . th dport map @dnat4addr`: reg 1,
        // reg 9, reg 10, then `nat dnat ip addr_min reg 1 proto_min reg 9`.
        let r = &rules[0];
        assert!(r.contains(&Expr::Payload {
            base: Base::Network,
            offset: 16,
            len: 4,
            dreg: 9
        }));
        assert!(r.contains(&Expr::Payload {
            base: Base::Transport,
            offset: 2,
            len: 2,
            dreg: 10
        }));
        assert_eq!(
            r.last(),
            Some(&Expr::Dnat {
                family: NFPROTO_IPV4,
                proto_reg: 9
            })
        );
        // ipv6: `th dport` to reg 13, `proto_min reg 2`.
        assert!(rules[2].contains(&Expr::Payload {
            base: Base::Transport,
            offset: 2,
            len: 2,
            dreg: 13
        }));
        assert_eq!(
            rules[3].last(),
            Some(&Expr::Dnat {
                family: NFPROTO_IPV6,
                proto_reg: NFT_REG_2
            })
        );
    }
}
