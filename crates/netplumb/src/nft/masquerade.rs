//! Masquerading a bridge's subnets, in table `inet <table>`:
//!
//! ```text
//! table inet <table> {
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         jump net-<bridge> comment "netplumb network <bridge>"
//!     }
//!     chain net-<bridge> {
//!         ip saddr <subnet> oifname != "<bridge>" masquerade comment "netplumb masquerade <subnet>"
//!         ip6 saddr <subnet6> oifname != "<bridge>" masquerade comment "netplumb masquerade <subnet6>"
//!     }
//! }
//! ```
//!
//! Rules are recognised by their comment (rule user data), which this module
//! writes and compares byte for byte.

use ipnetwork::IpNetwork;

use super::batch::Batch;
use super::expr::{ifname, Expr, NFT_CMP_NEQ, NFT_META_OIFNAME};
use super::objects::user_comment;
use super::postrouting::{
    hairpin_tag, saddr_in, JumpedRule, HAIRPIN, POSTROUTING, POSTROUTING_CHAIN,
};
use super::proto::{check_table, Family};
use super::socket::Nftables;
use crate::error::Result;
use crate::links::check_name;

impl Nftables {
    /// Masquerading in table `inet <table>`.
    pub fn masquerade<'a>(&'a self, table: &'a str) -> Masquerade<'a> {
        Masquerade { nft: self, table }
    }
}

/// Masquerading in one `inet` table: [`Nftables::masquerade`].
#[derive(Debug, Clone, Copy)]
pub struct Masquerade<'a> {
    nft: &'a Nftables,
    table: &'a str,
}

impl<'a> Masquerade<'a> {
    /// The regular chain that holds the rules of the network on `bridge`:
    /// `net-<bridge>`.
    pub fn network_chain(bridge: &str) -> String {
        format!("net-{bridge}")
    }

    /// Traffic from `subnet` that leaves through any interface but `bridge`
    /// is masqueraded.
    ///
    /// Creates, as needed and in one atomic batch: the table; its base chain
    /// `postrouting` (type nat, hook postrouting, priority 100 = srcnat,
    /// policy accept); the regular chain
    /// [`net-<bridge>`](Self::network_chain) with one `jump` to it from
    /// `postrouting`; and in it one rule `ip saddr <subnet> oifname !=
    /// "<bridge>" masquerade` (`ip6 saddr` for an IPv6 subnet). Host bits of
    /// `subnet` are ignored. Add each subnet of a bridge (IPv4 and IPv6), for
    /// as many bridges as needed; repeated requests, also concurrent ones,
    /// never add a second copy.
    ///
    /// An existing `postrouting` chain in that table that is not the base
    /// chain described above is an error ([`Step::NftCreate`] with the
    /// kernel's `EEXIST` or `EOPNOTSUPP`); nothing is changed then.
    ///
    /// [`Step::NftCreate`]: crate::Step::NftCreate
    pub fn add(self, bridge: &str, subnet: IpNetwork) -> AddMasquerade<'a> {
        AddMasquerade {
            at: self,
            bridge: bridge.to_string(),
            subnet,
        }
    }

    /// Deletes what [`add`](Self::add) (and
    /// [`Ports::hairpin`](super::Ports::hairpin)) made for `bridge`: the jump
    /// rule(s) in `postrouting`, the chain `net-<bridge>` with its rules and
    /// the bridge's hairpin rule, in one batch. The table and the base
    /// chains stay.
    pub fn remove(self, bridge: &str) -> RemoveMasquerade<'a> {
        RemoveMasquerade {
            at: self,
            bridge: bridge.to_string(),
        }
    }
}

/// A request of [`Masquerade::add`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct AddMasquerade<'a> {
    at: Masquerade<'a>,
    bridge: String,
    subnet: IpNetwork,
}

impl AddMasquerade<'_> {
    /// Applies it. Returns `true` when it changed the ruleset, `false` when
    /// everything was in place.
    pub fn execute(self) -> Result<bool> {
        let Masquerade { nft, table } = self.at;
        let bridge = self.bridge.as_str();
        check_table(table)?;
        check_name(bridge)?;
        let subnet = IpNetwork::new(self.subnet.network(), self.subnet.prefix())
            .expect("the network address of a valid prefix is valid");
        let chain = Masquerade::network_chain(bridge);
        let rule = JumpedRule {
            base: POSTROUTING_CHAIN,
            chain: &chain,
            exprs: masquerade(subnet, bridge),
            tag: user_comment(&format!("netplumb masquerade {subnet}")),
            what: format!("masquerade {subnet}"),
            jump_tag: user_comment(&format!("netplumb network {bridge}")),
        };
        rule.ensure(nft, table)
    }
}

/// A request of [`Masquerade::remove`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is executed"]
pub struct RemoveMasquerade<'a> {
    at: Masquerade<'a>,
    bridge: String,
}

impl RemoveMasquerade<'_> {
    /// Applies it. Returns `true` when something was deleted.
    pub fn execute(self) -> Result<bool> {
        let Masquerade { nft, table } = self.at;
        let bridge = self.bridge.as_str();
        check_table(table)?;
        check_name(bridge)?;
        let chain = Masquerade::network_chain(bridge);
        let jump_tag = user_comment(&format!("netplumb network {bridge}"));
        let hairpin_tag = hairpin_tag(bridge);
        let inet = Family::Inet;

        nft.transact(&format!("on table inet {table}"), |genid| {
            let have_chain = nft.chain_exists(inet, table, &chain)?;
            let jumps: Vec<u64> = nft
                .rules(inet, table, POSTROUTING)?
                .into_iter()
                .filter(|r| r.userdata == jump_tag)
                .map(|r| r.handle)
                .collect();
            let hairpins: Vec<u64> = nft
                .rules(inet, table, HAIRPIN)?
                .into_iter()
                .filter(|r| r.userdata == hairpin_tag)
                .map(|r| r.handle)
                .collect();
            if !have_chain && jumps.is_empty() && hairpins.is_empty() {
                return Ok(None);
            }
            let mut batch = Batch::new(nft, inet, Some(genid), format!("on table inet {table}"));
            for handle in jumps {
                batch.delete_rule(inet, table, POSTROUTING, handle, &format!("jump {chain}"));
            }
            for handle in hairpins {
                batch.delete_rule(inet, table, HAIRPIN, handle, &format!("hairpin {bridge}"));
            }
            if have_chain {
                batch.delete_chain(inet, table, &chain);
            }
            Ok(Some(batch))
        })
    }
}

/// `ip saddr <subnet> oifname != "<bridge>" masquerade` (or `ip6 saddr`).
fn masquerade(subnet: IpNetwork, bridge: &str) -> Vec<Expr> {
    let mut exprs = saddr_in(subnet);
    exprs.push(Expr::meta(NFT_META_OIFNAME));
    exprs.push(Expr::Cmp(NFT_CMP_NEQ, ifname(bridge)));
    exprs.push(Expr::Masquerade);
    exprs
}

#[cfg(test)]
mod tests {
    use super::super::expr::{Base, NFT_CMP_EQ, NFT_META_NFPROTO, NFT_REG_1};
    use super::*;

    #[test]
    fn masquerade_matches_what_nft_generates() {
        let exprs = masquerade("10.77.0.0/24".parse().unwrap(), "br0");
        assert_eq!(
            exprs,
            vec![
                Expr::Meta {
                    key: NFT_META_NFPROTO,
                    dreg: NFT_REG_1
                },
                Expr::Cmp(NFT_CMP_EQ, vec![2]),
                Expr::payload(Base::Network, 12, 3),
                Expr::Cmp(NFT_CMP_EQ, vec![10, 77, 0]),
                Expr::meta(NFT_META_OIFNAME),
                Expr::Cmp(
                    NFT_CMP_NEQ,
                    vec![98, 114, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
                ),
                Expr::Masquerade,
            ]
        );
    }

    #[test]
    fn unaligned_prefix_is_masked() {
        let exprs = masquerade("10.77.16.0/20".parse().unwrap(), "br0");
        assert_eq!(exprs[2], Expr::payload(Base::Network, 12, 4));
        assert_eq!(exprs[3], Expr::Mask(vec![0xff, 0xff, 0xf0, 0]));
        assert_eq!(exprs[4], Expr::Cmp(NFT_CMP_EQ, vec![10, 77, 16, 0]));
        let exprs = masquerade("fd00:77::/63".parse().unwrap(), "br0");
        assert_eq!(exprs[2], Expr::payload(Base::Network, 8, 16));
        assert!(matches!(&exprs[3], Expr::Mask(m)
            if m[..8] == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe] && m[8..] == [0; 8]));
    }
}
