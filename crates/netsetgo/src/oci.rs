//! The OCI runtime state a hook reads on stdin (runtime-spec "State"), as
//! runc, crun and youki pass it to createRuntime, prestart and poststop
//! hooks. Read with a size bound and parsed strictly: only the fields we
//! use are required, and they must be well-formed.

use std::io::Read;

use serde::Deserialize;

use crate::error::Failure;

/// States are a few hundred bytes; annotations can add some.
const MAX_STATE: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// createRuntime / prestart: wire the container's process.
    Wire { pid: u32, id: String },
    /// poststop: release what was recorded for this container id.
    Release { id: String },
}

#[derive(Deserialize)]
struct State {
    id: String,
    status: String,
    #[serde(default)]
    pid: Option<i64>,
}

pub fn read(input: impl Read) -> Result<Hook, Failure> {
    let mut text = Vec::new();
    input
        .take(MAX_STATE + 1)
        .read_to_end(&mut text)
        .map_err(|e| Failure::refused(format!("read OCI state from stdin: {e}")))?;
    if text.len() as u64 > MAX_STATE {
        return Err(Failure::refused("OCI state on stdin is larger than 64 KiB"));
    }
    parse(&text)
}

pub fn parse(text: &[u8]) -> Result<Hook, Failure> {
    let state: State = serde_json::from_slice(text)
        .map_err(|e| Failure::refused(format!("OCI state on stdin is not valid: {e}")))?;
    check_id(&state.id)?;
    match (state.status.as_str(), state.pid) {
        ("stopped", _) => Ok(Hook::Release { id: state.id }),
        ("creating" | "created" | "running", Some(pid)) if pid > 0 && pid <= i64::from(i32::MAX) => {
            Ok(Hook::Wire { pid: pid as u32, id: state.id })
        }
        (status, _) => Err(Failure::refused(format!(
            "OCI state has status {status:?} without a valid pid; use netsetgo -oci-hook in createRuntime, prestart or poststop"
        ))),
    }
}

/// Container ids are recorded in lease files: keep them short and plain.
fn check_id(id: &str) -> Result<(), Failure> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Failure::refused(
            "OCI container id must be 1-64 characters from A-Z a-z 0-9 _ . + -",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages() {
        let wire = br#"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{"a":"b"}}"#;
        assert_eq!(
            parse(wire).unwrap(),
            Hook::Wire {
                pid: 42,
                id: "c1".into()
            }
        );
        let stop = br#"{"ociVersion":"1.0.2","id":"c1","status":"stopped","bundle":"/b"}"#;
        assert_eq!(parse(stop).unwrap(), Hook::Release { id: "c1".into() });
    }

    #[test]
    fn refusals() {
        for bad in [
            &br#"{"id":"c1","status":"creating"}"#[..],
            br#"{"id":"c1","status":"creating","pid":0}"#,
            br#"{"id":"c1","status":"creating","pid":-5}"#,
            br#"{"id":"c1","status":"creating","pid":99999999999}"#,
            br#"{"id":"../x","status":"creating","pid":5}"#,
            br#"{"id":"c1","status":"paused","pid":5}"#,
            br#"{"status":"creating","pid":5}"#,
            br#"not json"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(read(&vec![b' '; 70 * 1024][..]).is_err());
    }
}
