//! Masquerades a bridge's subnet with [`Nftables`], or stops doing so: the
//! NAT a host needs so that containers on a private subnet reach beyond it.
//!
//! ```text
//! masquerade TABLE BRIDGE SUBNET     # add (idempotent)
//! masquerade TABLE BRIDGE --remove   # remove that bridge's rules
//! cargo run -p netplumb --example masquerade -- demo brdemo0 10.20.0.0/24
//! nft list table inet demo
//! ```
//!
//! Run it as root (CAP_NET_ADMIN), in the namespace whose traffic leaves.
//! It speaks nf_tables over netlink and runs no `nft`; forwarding
//! (`net.ipv4.ip_forward`) is the caller's to switch on.

use netplumb::{IpNetwork, Nftables};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [table, bridge, what] = args.as_slice() else {
        eprintln!("usage: masquerade TABLE BRIDGE SUBNET|--remove");
        std::process::exit(2);
    };
    let changed = apply(table, bridge, what)?;
    println!(
        "table inet {table}, bridge {bridge}: {}",
        if changed { "changed" } else { "already so" }
    );
    Ok(())
}

/// Adds the masquerade rule for `what` (a subnet), or with `--remove`
/// removes the bridge's rules. Returns whether the ruleset changed.
pub fn apply(table: &str, bridge: &str, what: &str) -> Result<bool, Box<dyn std::error::Error>> {
    // Synchronous: nf_tables sessions need no runtime.
    let nft = Nftables::open()?;
    if what == "--remove" {
        return Ok(nft.masquerade(table).remove(bridge).execute()?);
    }
    let subnet: IpNetwork = what.parse()?;
    Ok(nft.masquerade(table).add(bridge, subnet).execute()?)
}
