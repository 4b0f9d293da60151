//! The OCI runtime state a hook reads on stdin (runtime-spec "State"), as
//! runc, crun and youki pass it to createRuntime, prestart and poststop
//! hooks. Read with a size bound and a deadline and parsed strictly, in a
//! child process that holds nothing (the caller's ids, no capability):
//! only the fields we use are required, and they must be well-formed.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, ForkResult};

use serde::Deserialize;

use crate::error::Failure;
use crate::privilege::{self, Caller};
use crate::system::Kernel;

/// States are a few hundred bytes; annotations can add some.
const MAX_STATE: u64 = 64 * 1024;
/// Runtimes write the state as they start the hook.
const DEADLINE: Duration = Duration::from_secs(5);
/// What the reader sends back: a verdict line, never the state itself.
const MAX_VERDICT: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
/// What an OCI hook's state asks for.
pub enum Hook {
    /// createRuntime / prestart: wire the container's process.
    Wire {
        /// The container's process.
        pid: u32,
        /// The container's id.
        id: String,
    },
    /// poststop: release what was recorded for this container id.
    Release {
        /// The container's id.
        id: String,
    },
}

#[derive(Deserialize)]
struct State {
    id: String,
    status: String,
    #[serde(default)]
    pid: Option<i64>,
}

/// Reads and parses the state on stdin in a child process that has become
/// the caller with no capability (security.md 3: nothing the caller sends is
/// read while holding more), waiting at most `DEADLINE`. The child sends
/// back one verdict line, which is checked again here.
pub fn read_unprivileged(caller: &Caller) -> Result<Hook, Failure> {
    let fail =
        |what: &str, e: nix::Error| Failure::internal(format!("OCI state reader: {what}: {e}"));
    let (from_child, to_parent) = pipe().map_err(|e| fail("pipe", e))?;
    // SAFETY: the process is single-threaded here (no runtime has been
    // started), so the child may run arbitrary code before it exits.
    match unsafe { fork() }.map_err(|e| fail("fork", e))? {
        ForkResult::Child => {
            drop(from_child);
            let verdict = privilege::drop_everything(&Kernel, caller.uid, caller.gid)
                .and_then(|()| read(std::io::stdin().lock()))
                .map_or_else(|f| format!("error {}", f.message), |hook| hook.verdict());
            let _ = std::fs::File::from(to_parent).write_all(verdict.as_bytes());
            // SAFETY: _exit ends the child without running the parent's
            // destructors or flushing its buffers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(to_parent);
            let verdict = read_verdict(from_child);
            // Whatever it did, the reader does not outlive its use; it runs
            // under the caller's uid, which our real uid is, so we may kill it.
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            Hook::from_verdict(&verdict?)
        }
    }
}

/// Reads the child's verdict until end of file, at most [`MAX_VERDICT`]
/// bytes, by the deadline.
fn read_verdict(pipe: OwnedFd) -> Result<String, Failure> {
    let late = || {
        Failure::refused(format!(
            "no OCI state on stdin within {} s",
            DEADLINE.as_secs()
        ))
    };
    let start = Instant::now();
    let mut file = std::fs::File::from(pipe);
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = DEADLINE.checked_sub(start.elapsed()).ok_or_else(late)?;
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return Err(late()),
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Failure::internal(format!("OCI state reader: poll: {e}"))),
        }
        let n = file
            .read(&mut buf)
            .map_err(|e| Failure::internal(format!("OCI state reader: read: {e}")))?;
        if n == 0 {
            return String::from_utf8(out)
                .map_err(|_| Failure::internal("OCI state reader: verdict is not text"));
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > MAX_VERDICT {
            return Err(Failure::internal("OCI state reader: verdict too long"));
        }
    }
}

impl Hook {
    /// The one line a reader sends back.
    fn verdict(&self) -> String {
        match self {
            Hook::Wire { pid, id } => format!("wire {pid} {id}"),
            Hook::Release { id } => format!("release {id}"),
        }
    }

    /// The hook a verdict line names, checked as strictly as the state was.
    fn from_verdict(line: &str) -> Result<Hook, Failure> {
        let bad = || Failure::internal("OCI state reader sent a malformed verdict");
        let (word, rest) = line.split_once(' ').ok_or_else(bad)?;
        let hook = match word {
            "error" => return Err(Failure::refused(rest)),
            "release" => Hook::Release {
                id: rest.to_string(),
            },
            "wire" => {
                let (pid, id) = rest.split_once(' ').ok_or_else(bad)?;
                let pid: u32 = pid.parse().map_err(|_| bad())?;
                if pid == 0 || pid > i32::MAX as u32 {
                    return Err(bad());
                }
                Hook::Wire {
                    pid,
                    id: id.to_string(),
                }
            }
            _ => return Err(bad()),
        };
        match &hook {
            Hook::Wire { id, .. } | Hook::Release { id } => check_id(id)?,
        }
        Ok(hook)
    }
}

/// The state from `input`, at most 64 KiB.
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

/// The state in `text`: which hook, the pid, the container id.
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

    #[test]
    fn verdicts_round_trip_and_are_checked() {
        for hook in [
            Hook::Wire {
                pid: 42,
                id: "c1".into(),
            },
            Hook::Release { id: "c.2+x".into() },
        ] {
            assert_eq!(Hook::from_verdict(&hook.verdict()).unwrap(), hook);
        }
        let refusal = Hook::from_verdict("error OCI state is not valid").unwrap_err();
        assert_eq!(refusal.message, "OCI state is not valid");
        for bad in [
            "",
            "wire",
            "wire 0 c1",
            "wire -1 c1",
            "wire 4294967295 c1",
            "wire 5 ../x",
            "release a b",
            "release ",
            "other c1",
            "wire 5",
        ] {
            assert!(Hook::from_verdict(bad).is_err(), "{bad:?}");
        }
    }
}
