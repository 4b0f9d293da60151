//! The command line, parsed the way Go's `flag` package parses it, so that
//! runtimes written for the original netsetgo work unchanged: `-pid 42`,
//! `-pid=42`, `--pid 42` and `--pid=42` are the same; boolean flags take no
//! separate value (`-json` or `-json=true`); parsing stops at `--` or at the
//! first non-flag argument, and stray arguments are a usage error.

use std::fmt;

pub const USAGE: &str = "\
Usage: netsetgo -pid PID [flags]
Wire the network namespace of process PID to a bridge on this host.

  -pid int                 the process whose network namespace is wired (required)
  -bridgeName string       bridge on the host (default \"brg0\")
  -bridgeAddress string    the bridge's address, the container's gateway (default \"10.10.10.1/24\")
  -containerAddress string the container's address (default: first free in the bridge's subnet)
  -vethNamePrefix string   prefix of the veth names; inside the container the
                           interface is <prefix>1 (default \"veth\")
  -json                    print the result as one JSON object
  -delete                  remove your interface from the container and free its address
  -check                   say whether the container's wiring is intact
  -oci-hook                OCI runtime hook: read the container state JSON on stdin;
                           wire its pid (createRuntime/prestart) or release
                           what was recorded for its id (poststop)
  -help                    show this help
";

pub const DEFAULT_BRIDGE: &str = "brg0";
pub const DEFAULT_BRIDGE_ADDRESS: &str = "10.10.10.1/24";
pub const DEFAULT_PREFIX: &str = "veth";

/// What the caller asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Delete,
    Check,
    OciHook,
}

/// Parsed flags. `None` means "not given": the policy then decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub mode: Mode,
    pub pid: Option<u32>,
    pub bridge_name: Option<String>,
    pub bridge_address: Option<String>,
    pub container_address: Option<String>,
    pub veth_prefix: Option<String>,
    pub json: bool,
}

/// Why the command line was not accepted (exit status 2), or a request
/// for help (exit status 0).
#[derive(Debug, PartialEq, Eq)]
pub enum Usage {
    Help,
    Error(String),
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Usage::Help => f.write_str("help requested"),
            Usage::Error(e) => f.write_str(e),
        }
    }
}

const MAX_ARGS: usize = 32;
const MAX_ARG_LEN: usize = 256;

pub fn parse<I, S>(args: I) -> Result<Args, Usage>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut parsed = Args {
        mode: Mode::Create,
        pid: None,
        bridge_name: None,
        bridge_address: None,
        container_address: None,
        veth_prefix: None,
        json: false,
    };
    let (mut delete, mut check, mut hook) = (false, false, false);
    let args: Vec<S> = args.into_iter().take(MAX_ARGS + 1).collect();
    if args.len() > MAX_ARGS {
        return Err(Usage::Error("too many arguments".into()));
    }
    let mut rest = args.iter().map(|a| a.as_ref());
    while let Some(raw) = rest.next() {
        if raw.len() > MAX_ARG_LEN {
            return Err(Usage::Error("argument too long".into()));
        }
        let arg =
            std::str::from_utf8(raw).map_err(|_| Usage::Error("arguments must be UTF-8".into()))?;
        if arg == "--" {
            break;
        }
        let Some(flag) = arg
            .strip_prefix('-')
            .map(|f| f.strip_prefix('-').unwrap_or(f))
        else {
            return Err(Usage::Error(format!("unexpected argument {arg:?}")));
        };
        if flag.is_empty() || flag.starts_with('-') || flag.starts_with('=') {
            return Err(Usage::Error(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        let boolean = |v: Option<&str>| -> Result<bool, Usage> {
            match v {
                None => Ok(true),
                Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
                Some(other) => Err(Usage::Error(format!(
                    "invalid boolean value {other:?} for -{name}"
                ))),
            }
        };
        match name {
            "h" | "help" => return Err(Usage::Help),
            "json" => parsed.json = boolean(inline)?,
            "delete" => delete = boolean(inline)?,
            "check" => check = boolean(inline)?,
            "oci-hook" => hook = boolean(inline)?,
            "pid" | "bridgeName" | "bridgeAddress" | "containerAddress" | "vethNamePrefix" => {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        let next = rest.next().ok_or_else(|| {
                            Usage::Error(format!("flag needs an argument: -{name}"))
                        })?;
                        std::str::from_utf8(next)
                            .map_err(|_| Usage::Error("arguments must be UTF-8".into()))?
                    }
                };
                if value.len() > MAX_ARG_LEN {
                    return Err(Usage::Error("argument too long".into()));
                }
                let value = value.to_string();
                match name {
                    "pid" => parsed.pid = Some(parse_pid(&value)?),
                    "bridgeName" => parsed.bridge_name = Some(value),
                    "bridgeAddress" => parsed.bridge_address = Some(value),
                    "containerAddress" => parsed.container_address = Some(value),
                    _ => parsed.veth_prefix = Some(value),
                }
            }
            _ => {
                return Err(Usage::Error(format!(
                    "flag provided but not defined: -{name}"
                )))
            }
        }
    }
    if let Some(extra) = rest.next() {
        return Err(Usage::Error(format!(
            "unexpected argument {:?}",
            String::from_utf8_lossy(extra)
        )));
    }
    parsed.mode = match (delete, check, hook) {
        (false, false, false) => Mode::Create,
        (true, false, false) => Mode::Delete,
        (false, true, false) => Mode::Check,
        (false, false, true) => Mode::OciHook,
        _ => {
            return Err(Usage::Error(
                "-delete, -check and -oci-hook exclude each other".into(),
            ))
        }
    };
    match (parsed.mode, parsed.pid) {
        (Mode::OciHook, Some(_)) => {
            return Err(Usage::Error(
                "-oci-hook takes the pid from the state on stdin, not -pid".into(),
            ))
        }
        (Mode::OciHook, None) | (_, Some(_)) => {}
        (_, None) => return Err(Usage::Error("-pid is required".into())),
    }
    Ok(parsed)
}

/// A pid as Go's strconv.Atoi would accept it, but positive and in range.
fn parse_pid(value: &str) -> Result<u32, Usage> {
    let bad = || {
        Usage::Error(format!(
            "invalid value {value:?} for flag -pid: not a process id"
        ))
    };
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.parse::<u32>() {
        Ok(pid) if pid > 0 && pid <= i32::MAX as u32 => Ok(pid),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, Usage> {
        parse(args.iter().map(|s| s.as_bytes()))
    }

    #[test]
    fn go_flag_spellings_are_equivalent() {
        for form in [
            &["-pid", "42"][..],
            &["-pid=42"],
            &["--pid", "42"],
            &["--pid=42"],
        ] {
            assert_eq!(p(form).unwrap().pid, Some(42), "{form:?}");
        }
    }

    #[test]
    fn original_flags_and_defaults() {
        let a = p(&[
            "-pid",
            "7",
            "-bridgeName",
            "br1",
            "-bridgeAddress=10.1.0.1/16",
            "-containerAddress",
            "10.1.0.9/16",
            "-vethNamePrefix",
            "v",
        ])
        .unwrap();
        assert_eq!(a.bridge_name.as_deref(), Some("br1"));
        assert_eq!(a.bridge_address.as_deref(), Some("10.1.0.1/16"));
        assert_eq!(a.container_address.as_deref(), Some("10.1.0.9/16"));
        assert_eq!(a.veth_prefix.as_deref(), Some("v"));
        let d = p(&["-pid", "7"]).unwrap();
        assert_eq!((d.bridge_name, d.mode, d.json), (None, Mode::Create, false));
    }

    #[test]
    fn booleans_take_no_separate_value() {
        assert!(p(&["-pid", "1", "-json"]).unwrap().json);
        assert!(!p(&["-pid", "1", "-json=false"]).unwrap().json);
        assert!(matches!(
            p(&["-pid", "1", "-json", "true"]),
            Err(Usage::Error(_))
        ));
        assert_eq!(p(&["-pid", "1", "-delete"]).unwrap().mode, Mode::Delete);
        assert_eq!(p(&["-pid", "1", "-check"]).unwrap().mode, Mode::Check);
        assert_eq!(
            p(&["-oci-hook", "-bridgeName", "b"]).unwrap().mode,
            Mode::OciHook
        );
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["-pid"],
            &["-pid", "abc"],
            &["-pid", "0"],
            &["-pid", "-1"],
            &["-pid", "99999999999999999999"],
            &["-pid", "4294967296"],
            &["-pid", "1", "extra"],
            &["-nope"],
            &["-pid", "1", "-delete", "-check"],
            &["-oci-hook", "-pid", "1"],
            &["---pid=1"],
            &["-=1"],
        ] {
            assert!(matches!(p(bad), Err(Usage::Error(_))), "{bad:?}");
        }
        assert_eq!(p(&["-help"]), Err(Usage::Help));
        assert_eq!(p(&["--h"]), Err(Usage::Help));
    }

    #[test]
    fn terminator_and_last_value_wins() {
        assert_eq!(p(&["-pid", "1", "-pid", "2", "--"]).unwrap().pid, Some(2));
        assert!(p(&["-pid", "1", "--", "x"]).is_err());
    }
}
