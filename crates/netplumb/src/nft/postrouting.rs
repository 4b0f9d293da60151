//! The part of table `inet <table>` that masquerading and the hairpin of
//! published ports share: the base chain `postrouting` (type nat, priority
//! srcnat), a jump from it to a regular chain of their own, and in that
//! chain a rule recognised by its comment:
//!
//! ```text
//! chain postrouting {
//!     type nat hook postrouting priority srcnat; policy accept;
//!     jump net-<bridge> comment "netplumb network <bridge>"    (masquerade)
//!     jump hairpin comment "netplumb hairpin"                 (ports)
//! }
//! ```

use ipnetwork::IpNetwork;

use super::batch::Batch;
use super::expr::{Base, Expr, NFPROTO_IPV4, NFPROTO_IPV6};
use super::objects::user_comment;
use super::proto::Family;
use super::socket::Nftables;
use crate::error::Result;

/// The base chain every jump rule lives in.
pub(super) const POSTROUTING: &str = "postrouting";
/// `NF_INET_FORWARD`.
const NF_INET_FORWARD: u32 = 2;
/// `NF_INET_POST_ROUTING`.
const NF_INET_POST_ROUTING: u32 = 4;
/// `NF_IP_PRI_NAT_SRC`, what nft calls `srcnat`.
const PRIORITY_SRCNAT: i32 = 100;
/// The regular chain of the hairpin masquerade rules.
pub(super) const HAIRPIN: &str = "hairpin";

/// A base chain of the table that regular chains are jumped to from.
#[derive(Debug, Clone, Copy)]
pub(super) struct BaseChain {
    name: &'static str,
    kind: &'static str,
    hook: u32,
    priority: i32,
}

/// `forward` (type filter, priority filter): isolation.
pub(super) const FORWARD_CHAIN: BaseChain = BaseChain {
    name: "forward",
    kind: "filter",
    hook: NF_INET_FORWARD,
    priority: 0,
};

/// `postrouting` (type nat, priority srcnat): masquerading and the hairpin.
pub(super) const POSTROUTING_CHAIN: BaseChain = BaseChain {
    name: POSTROUTING,
    kind: "nat",
    hook: NF_INET_POST_ROUTING,
    priority: PRIORITY_SRCNAT,
};

/// The comment of a bridge's hairpin rule.
pub(super) fn hairpin_tag(bridge: &str) -> Vec<u8> {
    user_comment(&format!("netplumb hairpin {bridge}"))
}

/// A rule (recognised by its comment) in a regular chain that a base
/// chain (`postrouting`, or `forward` for isolation) jumps to (one jump,
/// recognised by its own comment): what masquerading, the hairpin of
/// published ports and isolation all keep.
pub(super) struct JumpedRule<'c> {
    pub(super) base: BaseChain,
    pub(super) chain: &'c str,
    pub(super) exprs: Vec<Expr>,
    pub(super) tag: Vec<u8>,
    /// How errors name the rule.
    pub(super) what: String,
    pub(super) jump_tag: Vec<u8>,
}

impl JumpedRule<'_> {
    /// Creates, as needed and in one generation-tied batch: the table, its
    /// base chain, the regular chain with the jump to it, and the rule.
    /// Returns `true` when it changed the ruleset.
    pub(super) fn ensure(&self, nft: &Nftables, table: &str) -> Result<bool> {
        let inet = Family::Inet;
        let chain = self.chain;
        nft.transact(&format!("on table inet {table}"), |genid| {
            let (have_chain, have_rule, have_jump) = self.found(nft, table)?;
            if have_rule && have_jump {
                return Ok(None);
            }

            let mut batch = Batch::new(nft, inet, Some(genid), format!("on table inet {table}"));
            batch.table(inet, table);
            let base = self.base;
            batch.base_chain(inet, table, base.name, base.kind, base.hook, base.priority);
            if !have_chain {
                batch.new_chain(inet, table, chain);
            }
            if !have_rule {
                batch.rule(inet, table, chain, &self.exprs, Some(&self.tag), &self.what);
            }
            if !have_jump {
                batch.rule(
                    inet,
                    table,
                    base.name,
                    &[Expr::Jump(chain.to_string())],
                    Some(&self.jump_tag),
                    &format!("jump {chain}"),
                );
            }
            Ok(Some(batch))
        })
    }

    /// Whether the rule and the jump to its chain are both there.
    pub(super) fn present(&self, nft: &Nftables, table: &str) -> Result<bool> {
        let (_, have_rule, have_jump) = self.found(nft, table)?;
        Ok(have_rule && have_jump)
    }

    /// Whether the regular chain, the rule in it and the jump to it exist.
    fn found(&self, nft: &Nftables, table: &str) -> Result<(bool, bool, bool)> {
        let inet = Family::Inet;
        let tagged = |chain: &str, tag: &[u8]| -> Result<bool> {
            Ok(nft
                .rules(inet, table, chain)?
                .iter()
                .any(|r| r.userdata == tag))
        };
        let have_chain = nft.chain_exists(inet, table, self.chain)?;
        let have_rule = have_chain && tagged(self.chain, &self.tag)?;
        let have_jump = have_chain && tagged(self.base.name, &self.jump_tag)?;
        Ok((have_chain, have_rule, have_jump))
    }
}

/// `ip saddr <subnet>` (or `ip6 saddr`), encoded as nft itself would in an
/// inet table: the family check, then the address bytes of the prefix.
pub(super) fn saddr_in(subnet: IpNetwork) -> Vec<Expr> {
    let (nfproto, offset, addr) = match subnet {
        IpNetwork::V4(net) => (NFPROTO_IPV4, 12, net.network().octets().to_vec()),
        IpNetwork::V6(net) => (NFPROTO_IPV6, 8, net.network().octets().to_vec()),
    };
    let prefix = usize::from(subnet.prefix());
    let mut exprs = Expr::nfproto(nfproto).to_vec();
    if prefix % 8 == 0 && prefix > 0 {
        // Whole bytes: load and compare just those.
        let len = prefix / 8;
        exprs.push(Expr::payload(Base::Network, offset, len as u32));
        exprs.push(Expr::eq(&addr[..len]));
    } else if prefix > 0 {
        // Load the whole address and mask it.
        let mask: Vec<u8> = (0..addr.len())
            .map(|i| {
                let bits = prefix.saturating_sub(i * 8).min(8);
                (0xff00u16 >> bits) as u8
            })
            .collect();
        exprs.push(Expr::payload(Base::Network, offset, addr.len() as u32));
        exprs.push(Expr::Mask(mask));
        exprs.push(Expr::eq(&addr));
    }
    exprs
}
