//! Fuzzes `netsetgo::cli::parse`, the command line of a setuid binary, with
//! arbitrary argument vectors: the input split on NUL bytes, as argv is.
//!
//! Beyond "does not panic": an accepted command line has at most 32
//! arguments, a pid in 1..=i32::MAX if any (always one to create or delete),
//! and no value longer than the parser's 256-byte limit; lxc-user-nic's form
//! (`create`/`delete` first) always names a pid, a bridge and a valid
//! interface name; every rejection can be printed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netsetgo::cli;

fuzz_target!(|data: &[u8]| {
    let args: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    match cli::parse(args.iter().copied()) {
        Ok(parsed) => {
            assert!(args.len() <= 32, "accepted {} arguments", args.len());
            if let Some(pid) = parsed.pid {
                assert!((1..=i32::MAX as u32).contains(&pid), "accepted pid {pid}");
            }
            // Creating and deleting act on a pid; only modes that learn it
            // elsewhere (the OCI hook) may go without.
            if matches!(parsed.mode, cli::Mode::Create | cli::Mode::Delete) {
                assert!(parsed.pid.is_some(), "{:?} without -pid", parsed.mode);
            }
            if let Some(nic) = &parsed.nic {
                let name = match nic {
                    cli::Nic::Create { ifname } => ifname,
                    cli::Nic::Delete { host_ifname } => host_ifname,
                };
                assert!(
                    (1..=15).contains(&name.len())
                        && name != "."
                        && name != ".."
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
                    "accepted interface name {name:?}"
                );
                assert!(parsed.bridge_name.is_some() && !parsed.json);
                assert!(matches!(args.first(), Some(&(b"create" | b"delete"))));
            }
            for value in [
                &parsed.bridge_name,
                &parsed.bridge_address,
                &parsed.container_address,
                &parsed.veth_prefix,
            ]
            .into_iter()
            .flatten()
            {
                assert!(value.len() <= 256, "accepted a {}-byte value", value.len());
            }
        }
        Err(usage) => {
            let _ = usage.to_string();
        }
    }
});
