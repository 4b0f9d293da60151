//! Isolation at layer 3 in table `inet <table>`: bridge port isolation
//! (`IFLA_BRPORT_ISOLATED`) keeps isolated ports from reaching each other
//! through the bridge, but a container can send its packets for another
//! to the gateway's MAC and the host routes them back out of the same
//! bridge. This drops everything the host would forward from a bridge
//! back to it, connections to published ports included: reaching another
//! container's published port through a host address (the hairpin) is
//! reaching that container too. Bridge port isolation does not stop the
//! hairpin by itself: the host sends the DNATed packet from the bridge
//! device, not from the client's port, unless `br_netfilter` is active
//! (`bridge-nf-call-iptables`), which hands a DNATed packet back to the
//! bridge as one it forwards from the client's port.
//!
//! ```text
//! chain forward { type filter hook forward priority filter; policy accept;
//!     jump isolate comment "netplumb isolate" }
//! chain isolate {
//!     iifname "<bridge>" oifname "<bridge>" drop comment "netplumb isolate2 <bridge>"
//! }
//! ```
//!
//! (`isolate2`: until 2026-12 the rule passed DNATed connections and was
//! tagged `netplumb isolate <bridge>`; a ruleset that holds only that one
//! is not isolated, so that [`Nftables::isolated`] says so and
//! [`Nftables::isolate`] adds this rule beside it. The older rule drops
//! a part of what this one drops, and stays until the table goes.)

use super::expr::{ifname, Expr, NFT_META_IIFNAME, NFT_META_OIFNAME, NF_DROP};
use super::objects::user_comment;
use super::postrouting::{JumpedRule, FORWARD_CHAIN};
use super::proto::check_table;
use super::socket::Nftables;
use crate::error::Result;
use crate::links::check_name;

/// The regular chain of the isolation rules.
const ISOLATE: &str = "isolate";

impl Nftables {
    /// Isolates the containers on `bridge` from each other at layer 3 in
    /// table `inet <table>`: nothing the host routes from `bridge` back to
    /// it passes, not even to a published port (which stays reachable
    /// from anywhere else through a host address). Creates, as needed and in one
    /// atomic batch, the table, its base chain `forward` (type filter,
    /// priority 0, policy accept), the regular chain `isolate` with one
    /// jump to it and the bridge's rule; a repeated request changes
    /// nothing. Returns `true` when it changed the ruleset.
    pub fn isolate(&self, table: &str, bridge: &str) -> Result<bool> {
        isolation(table, bridge)?.ensure(self, table)
    }

    /// Whether [`isolate`](Self::isolate)'s rule for `bridge` and the jump
    /// to its chain are in table `inet <table>`.
    pub fn isolated(&self, table: &str, bridge: &str) -> Result<bool> {
        isolation(table, bridge)?.present(self, table)
    }
}

/// The rule that isolates `bridge`, checked.
fn isolation(table: &str, bridge: &str) -> Result<JumpedRule<'static>> {
    check_table(table)?;
    check_name(bridge)?;
    let name = ifname(bridge);
    Ok(JumpedRule {
        base: FORWARD_CHAIN,
        chain: ISOLATE,
        exprs: vec![
            Expr::meta(NFT_META_IIFNAME),
            Expr::eq(&name),
            Expr::meta(NFT_META_OIFNAME),
            Expr::eq(&name),
            Expr::Verdict(NF_DROP),
        ],
        tag: user_comment(&format!("netplumb isolate2 {bridge}")),
        what: format!("isolate {bridge}"),
        jump_tag: user_comment("netplumb isolate"),
    })
}
