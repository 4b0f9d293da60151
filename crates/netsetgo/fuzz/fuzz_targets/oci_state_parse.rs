//! Fuzzes `netsetgo::oci::parse`, the OCI runtime state a hook reads from a
//! caller-controlled stdin. Beyond "does not panic": an accepted state wires
//! a pid in 1..=i32::MAX or releases an id, and ids are 1-64 plain
//! characters (they are written into lease records).

#![no_main]

use libfuzzer_sys::fuzz_target;
use netsetgo::oci::{self, Hook};

fuzz_target!(|data: &[u8]| {
    let id = match oci::parse(data) {
        Ok(Hook::Wire { pid, id }) => {
            assert!((1..=i32::MAX as u32).contains(&pid), "accepted pid {pid}");
            id
        }
        Ok(Hook::Release { id }) => id,
        Err(_) => return,
    };
    assert!(
        (1..=64).contains(&id.len()),
        "accepted id of {} bytes",
        id.len()
    );
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b)),
        "accepted id {id:?}"
    );
});
