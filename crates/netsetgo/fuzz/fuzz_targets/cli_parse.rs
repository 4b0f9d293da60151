//! Fuzzes `netsetgo::cli::parse`, the command line of a setuid binary, with
//! arbitrary argument vectors: the input split on NUL bytes, as argv is.
//!
//! Beyond "does not panic": an accepted command line has at most 64
//! arguments, a pid in 1..=i32::MAX if any (always one to create or delete),
//! and no value longer than the parser's 256-byte limit; `-publish` only
//! when creating or in a hook, at most 16, no host port (per protocol)
//! twice, no port 0, each printing back to a form that parses to itself;
//! lxc-user-nic's form
//! (`create`/`delete` first) always names a pid, a bridge and a valid
//! interface name; every rejection can be printed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netsetgo::cli;
use netsetgo::ports::Mapping;

fuzz_target!(|data: &[u8]| {
    let args: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    match cli::parse(args.iter().copied()) {
        Ok(parsed) => {
            assert!(
                args.len() <= cli::MAX_ARGS,
                "accepted {} arguments",
                args.len()
            );
            let publish = &parsed.publish;
            assert!(publish.len() <= 16, "accepted {} -publish", publish.len());
            if !publish.is_empty() {
                assert!(matches!(parsed.mode, cli::Mode::Create | cli::Mode::OciHook));
                assert!(parsed.nic.is_none());
            }
            for (i, m) in publish.iter().enumerate() {
                assert!(m.host_port != 0 && m.container_port != 0, "{m}");
                assert_eq!(Mapping::parse(&m.to_string()).as_ref(), Ok(m));
                assert!(
                    !publish[..i]
                        .iter()
                        .any(|o| o.protocol == m.protocol && o.host_port == m.host_port),
                    "host port {m} accepted twice"
                );
            }
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
