//! The netdev guard of versions before the bridge guard (until 2026-12):
//! a base chain `port_<name>` on each guarded host end's ingress hook, in
//! one of [`LEGACY_GUARD_TABLES`] netdev tables `<table>_guard_<n>`.
//! Installs upgraded from it keep those tables until `-restore` has given
//! every live lease the bridge guard and then deletes them
//! ([`Guard::drop_legacy`]); until then both guard a legacy port (each
//! passes only that port's own frames), and a teardown deletes the
//! port's legacy chain with its elements ([`Guard::forget`]).

use super::{Guard, Nftables};
use crate::error::Result;
use crate::nft::batch::Batch;
use crate::nft::proto::{check_table, Family};

/// How many netdev tables the legacy guard spread its chains over.
pub const LEGACY_GUARD_TABLES: u32 = 32;

/// The netdev table of the legacy guard of `table` that held the chain of
/// host end `ifname`: `<table>_guard_<n>`, `n` the 32-bit FNV-1a hash of
/// the name modulo [`LEGACY_GUARD_TABLES`].
fn legacy_table(table: &str, ifname: &str) -> String {
    let hash = ifname.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{table}_guard_{}", hash % LEGACY_GUARD_TABLES)
}

/// The legacy guard's name for the chain of host end `ifname`: `port_` and
/// the name with `_` written `__`, `.` `_d` and `-` `_h`.
fn legacy_chain(ifname: &str) -> String {
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

/// Whether `name` is one of the legacy guard's tables of `table`: exactly
/// `<table>_guard_<n>`, `n` in `0..LEGACY_GUARD_TABLES` written without a
/// leading zero.
fn is_legacy(table: &str, name: &str) -> bool {
    let Some(n) = name
        .strip_prefix(table)
        .and_then(|rest| rest.strip_prefix("_guard_"))
    else {
        return false;
    };
    n.parse::<u32>()
        .is_ok_and(|v| v < LEGACY_GUARD_TABLES && v.to_string() == n)
}

/// The legacy guard's netdev tables of `table` that exist (one dump of
/// the netdev tables), sorted.
fn legacy_tables(nft: &Nftables, table: &str) -> Result<Vec<String>> {
    check_table(table)?;
    let mut out: Vec<String> = nft
        .tables(Family::Netdev)?
        .into_iter()
        .filter(|name| is_legacy(table, name))
        .collect();
    out.sort();
    Ok(out)
}

impl Guard<'_> {
    /// The legacy guard's netdev tables of this guard's table that exist
    /// (`legacy_tables`), named `table netdev <name>`.
    pub fn legacy(self) -> Result<Vec<String>> {
        let tables = legacy_tables(self.nft, self.table)?;
        Ok(tables.iter().map(|t| format!("table netdev {t}")).collect())
    }

    /// Deletes the legacy guard's netdev tables of this guard's table (only
    /// those, by their exact names), in one batch; returns their names. Run
    /// only once every live port has the bridge guard.
    pub fn drop_legacy(self) -> Result<Vec<String>> {
        let tables = legacy_tables(self.nft, self.table)?;
        if !tables.is_empty() {
            let mut batch = Batch::new(self.nft, Family::Netdev, None, "drop legacy guard".into());
            for t in &tables {
                batch.delete_table(Family::Netdev, t);
            }
            batch.commit_once()?;
        }
        Ok(tables)
    }

    /// Deletes the legacy chain of host end `ifname`, if there is one
    /// (one look-up; a batch only when there is); whether there was.
    pub(super) fn drop_legacy_chain(self, ifname: &str) -> Result<bool> {
        let table = legacy_table(self.table, ifname);
        check_table(&table)?;
        let chain = legacy_chain(ifname);
        if !self.nft.chain_exists(Family::Netdev, &table, &chain)? {
            return Ok(false);
        }
        let what = format!("forget legacy port {ifname}");
        let mut batch = Batch::new(self.nft, Family::Netdev, None, what);
        batch.delete_chain(Family::Netdev, &table, &chain);
        match batch.commit_once() {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_are_main_s() {
        // As the netdev guard named them (its own unit test's values).
        assert_eq!(legacy_table("netsetgo", "veth0a0a0a02"), "netsetgo_guard_1");
        assert_eq!(legacy_table("netsetgo", "9v.a-b_0"), "netsetgo_guard_7");
        assert_eq!(legacy_chain("9v.a-b_0"), "port_9v_da_hb__0");
        assert!(is_legacy("netsetgo", "netsetgo_guard_0"));
        assert!(is_legacy("netsetgo", "netsetgo_guard_31"));
        for other in [
            "netsetgo_guard_32",
            "netsetgo_guard_01",
            "netsetgo_guard_",
            "netsetgo_guard",
            "netsetgo_guard_1x",
            "netsetgo_guard_-1",
            "other_guard_1",
            "netsetgo_x_guard_1",
        ] {
            assert!(!is_legacy("netsetgo", other), "{other}");
        }
    }
}
