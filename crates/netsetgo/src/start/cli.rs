//! The command line, parsed the way Go's `flag` package parses it, so that
//! runtimes written for the original netsetgo work unchanged: `-pid 42`,
//! `-pid=42`, `--pid 42` and `--pid=42` are the same; boolean flags take no
//! separate value (`-json` or `-json=true`); parsing stops at `--` or at the
//! first non-flag argument, and stray arguments are a usage error.
//!
//! A first argument `create` or `delete` selects lxc-user-nic's positional
//! form instead, as rootlesskit's `--net=lxc-user-nic` driver calls it
//! (`create /dev/null dummy PID veth BRIDGE eth0`).

use std::fmt;

use crate::ports::{self, HostPort, Mapping};

/// The text `-h` prints.
pub const USAGE: &str = "\
Usage: netsetgo -pid PID [flags]
       netsetgo -restore [-json]
       netsetgo create LXCPATH NAME PID veth BRIDGE [IFNAME]
       netsetgo delete LXCPATH NAME /proc/PID/ns/net veth BRIDGE HOSTIF
Wire the network namespace of process PID to a bridge on this host.
The second form is lxc-user-nic's (rootlesskit --net=lxc-user-nic): the
interface is IFNAME (default eth0), its IPv4 address left to DHCP (its
IPv6 one, on a network with gateway6, set by the call); it prints
IFNAME:IFINDEX:HOSTIF:HOSTINDEX. LXCPATH and NAME are ignored.

  -pid int                 the process whose network namespace is wired (required)
  -bridgeName string       bridge on the host (default \"brg0\")
  -bridgeAddress string    the bridge's address, the container's gateway (default \"10.10.10.1/24\")
  -containerAddress string the container's address (default: first free in the bridge's subnet)
  -vethNamePrefix string   prefix of the veth names; inside the container the
                           interface is <prefix>1 (default \"veth\")
  -publish PROTO:[HOSTADDR:]HOSTPORT:CONTAINERPORT
                           publish a host port (tcp or udp) to the container, within
                           your publish grants; an IPv6 HOSTADDR in []; repeatable
                           (at most 16); with -pid or -oci-hook only. On a container
                           you wired already (with -pid or the create form), it
                           adds these to your interface there and changes nothing else
  -unpublish PROTO:[HOSTADDR:]HOSTPORT
                           with -pid: remove a host port your interface in that
                           container publishes; repeatable (at most 16)
  -json                    print the result as one JSON object
  -delete                  remove your interface from the container and free its address
  -check                   say whether the container's wiring is intact
  -oci-hook                OCI runtime hook: read the container state JSON on stdin;
                           wire its pid (createRuntime/prestart) or release
                           what was recorded for its id (poststop)
  -restore                 root only: re-create from the leases the firewall rules
                           netsetgo owns (after the firewall flushed them), and
                           bring the state in line with the policy
  -help                    show this help
";

/// The bridge the original netsetgo wires to without `-bridgeName`.
pub const DEFAULT_BRIDGE: &str = "brg0";
/// The bridge's address without `-bridgeAddress`.
pub const DEFAULT_BRIDGE_ADDRESS: &str = "10.10.10.1/24";
/// The host end's name prefix without `-vethNamePrefix`.
pub const DEFAULT_PREFIX: &str = "veth";
/// lxc-user-nic's default interface name inside the container.
pub const DEFAULT_NIC: &str = "eth0";

/// What the caller asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-pid` alone: wire the process's namespace.
    Create,
    /// `-delete`: remove the caller's interface from it.
    Delete,
    /// `-check`: say whether the wiring is intact.
    Check,
    /// `-oci-hook`: the pid (or the release) from the OCI state on stdin.
    OciHook,
    /// `-restore`: root re-creates our nftables objects from the leases.
    Restore,
    /// `-pid` with `-unpublish`: remove publications of the caller's own
    /// interface in the process's namespace.
    Unpublish,
}

/// Parsed flags. `None` means "not given": the policy then decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// What the call does.
    pub mode: Mode,
    /// `-pid`: the process whose network namespace is meant.
    pub pid: Option<u32>,
    /// `-bridgeName`.
    pub bridge_name: Option<String>,
    /// `-bridgeAddress`.
    pub bridge_address: Option<String>,
    /// `-containerAddress`.
    pub container_address: Option<String>,
    /// `-vethNamePrefix`.
    pub veth_prefix: Option<String>,
    /// `-json`: the outcome as one JSON object.
    pub json: bool,
    /// `-publish`: host ports to publish to the container.
    pub publish: Vec<Mapping>,
    /// `-unpublish`: host ports the caller's interface publishes, to remove.
    pub unpublish: Vec<HostPort>,
    /// Set by lxc-user-nic's form.
    pub nic: Option<Nic>,
}

/// What lxc-user-nic's form names besides the pid and the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nic {
    /// `create`: the interface's name inside the container.
    Create {
        /// The name inside.
        ifname: String,
    },
    /// `delete`: the host end's name.
    Delete {
        /// The host end's name.
        host_ifname: String,
    },
}

/// Why the command line was not accepted (exit status 2), or a request
/// for help (exit status 0).
#[derive(Debug, PartialEq, Eq)]
pub enum Usage {
    /// `-h` or `-help`.
    Help,
    /// A command line not accepted, and why.
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

/// Room for every flag and 16 `-publish` with separate values.
pub const MAX_ARGS: usize = 64;
const MAX_ARG_LEN: usize = 256;

/// The command line after the program's name, Go `flag` style or lxc-user-nic's form; bounded
/// in count and length.
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
        publish: Vec::new(),
        unpublish: Vec::new(),
        nic: None,
    };
    let args: Vec<S> = args.into_iter().take(MAX_ARGS + 1).collect();
    if args.len() > MAX_ARGS {
        return Err(Usage::Error("too many arguments".into()));
    }
    if matches!(
        args.first().map(|a| a.as_ref()),
        Some(b"create" | b"delete")
    ) {
        let words = args
            .iter()
            .map(|a| text(a.as_ref()))
            .collect::<Result<Vec<&str>, Usage>>()?;
        return parse_nic(&words, parsed);
    }
    let mut modes = Modes::default();
    let mut rest = args.iter().map(|a| a.as_ref());
    while let Some(raw) = rest.next() {
        let arg = text(raw)?;
        if arg == "--" {
            break;
        }
        parse_flag(arg, &mut rest, &mut parsed, &mut modes)?;
    }
    if let Some(extra) = rest.next() {
        return Err(Usage::Error(format!(
            "unexpected argument {:?}",
            String::from_utf8_lossy(extra)
        )));
    }
    parsed.mode = modes.mode()?;
    combined(parsed)
}

/// The mode flags as given (the last value of each counts, as with Go's
/// `flag`); at most one may be set.
#[derive(Default)]
struct Modes {
    delete: bool,
    check: bool,
    hook: bool,
    restore: bool,
}

impl Modes {
    /// The one mode asked for, `-pid`'s create without any.
    fn mode(&self) -> Result<Mode, Usage> {
        match (self.delete, self.check, self.hook, self.restore) {
            (false, false, false, false) => Ok(Mode::Create),
            (true, false, false, false) => Ok(Mode::Delete),
            (false, true, false, false) => Ok(Mode::Check),
            (false, false, true, false) => Ok(Mode::OciHook),
            (false, false, false, true) => Ok(Mode::Restore),
            _ => Err(Usage::Error(
                "-delete, -check, -oci-hook and -restore exclude each other".into(),
            )),
        }
    }
}

/// One flag, `arg` (`-name`, `--name`, `-name=value`); a flag that takes a
/// value without an inline one takes the next argument of `rest`.
fn parse_flag<'a>(
    arg: &str,
    rest: &mut impl Iterator<Item = &'a [u8]>,
    parsed: &mut Args,
    modes: &mut Modes,
) -> Result<(), Usage> {
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
        "delete" => modes.delete = boolean(inline)?,
        "check" => modes.check = boolean(inline)?,
        "oci-hook" => modes.hook = boolean(inline)?,
        "restore" => modes.restore = boolean(inline)?,
        "pid" | "bridgeName" | "bridgeAddress" | "containerAddress" | "vethNamePrefix"
        | "publish" | "unpublish" => {
            // An inline value is part of an argument already bounded.
            let value = match inline {
                Some(v) => v,
                None => text(
                    rest.next()
                        .ok_or_else(|| Usage::Error(format!("flag needs an argument: -{name}")))?,
                )?,
            };
            let value = value.to_string();
            match name {
                "pid" => parsed.pid = Some(parse_pid(&value, "flag -pid")?),
                "bridgeName" => parsed.bridge_name = Some(value),
                "bridgeAddress" => parsed.bridge_address = Some(value),
                "containerAddress" => parsed.container_address = Some(value),
                "publish" => publish(&mut parsed.publish, &value)?,
                "unpublish" => unpublish(&mut parsed.unpublish, &value)?,
                _ => parsed.veth_prefix = Some(value),
            }
        }
        _ => {
            return Err(Usage::Error(format!(
                "flag provided but not defined: -{name}"
            )))
        }
    }
    Ok(())
}

/// The flags of `parsed`, its mode set, checked together: `-restore`
/// alone (but `-json`), `-pid` exactly when not `-oci-hook`, `-publish`
/// only when wiring, `-unpublish` only with `-pid` alone (its mode).
fn combined(mut parsed: Args) -> Result<Args, Usage> {
    if parsed.mode == Mode::Restore {
        // Every network with state, as the policy defines it: nothing to pick.
        let picked = parsed.pid.is_some()
            || parsed.bridge_name.is_some()
            || parsed.bridge_address.is_some()
            || parsed.container_address.is_some()
            || parsed.veth_prefix.is_some()
            || !parsed.publish.is_empty()
            || !parsed.unpublish.is_empty();
        if picked {
            return Err(Usage::Error(
                "-restore takes no other flag than -json: it restores every network".into(),
            ));
        }
        return Ok(parsed);
    }
    match (parsed.mode, parsed.pid) {
        (Mode::OciHook, Some(_)) => {
            return Err(Usage::Error(
                "-oci-hook takes the pid from the state on stdin, not -pid".into(),
            ))
        }
        (Mode::OciHook, None) | (_, Some(_)) => {}
        (_, None) => return Err(Usage::Error("-pid is required".into())),
    }
    if !parsed.publish.is_empty() && !matches!(parsed.mode, Mode::Create | Mode::OciHook) {
        return Err(Usage::Error(
            "-publish goes with -pid or -oci-hook, not with -delete or -check".into(),
        ));
    }
    if !parsed.unpublish.is_empty() {
        let alone = parsed.mode == Mode::Create
            && parsed.publish.is_empty()
            && parsed.container_address.is_none();
        if !alone {
            return Err(Usage::Error(
                "-unpublish goes with -pid alone: not with -publish, -containerAddress, -delete, -check or -oci-hook".into(),
            ));
        }
        parsed.mode = Mode::Unpublish;
    }
    Ok(parsed)
}

/// One more `-publish`: at most [`ports::MAX_MAPPINGS`], each host port
/// (per protocol) once.
fn publish(list: &mut Vec<Mapping>, value: &str) -> Result<(), Usage> {
    let mapping = Mapping::parse(value).map_err(Usage::Error)?;
    if list.len() == ports::MAX_MAPPINGS {
        return Err(Usage::Error(format!(
            "at most {} -publish per call",
            ports::MAX_MAPPINGS
        )));
    }
    if list
        .iter()
        .any(|m| m.protocol == mapping.protocol && m.host_port == mapping.host_port)
    {
        return Err(Usage::Error(format!(
            "-publish {value}: {} host port {} is published twice",
            mapping.protocol.name(),
            mapping.host_port
        )));
    }
    list.push(mapping);
    Ok(())
}

/// One more `-unpublish`: at most [`ports::MAX_MAPPINGS`], each once.
fn unpublish(list: &mut Vec<HostPort>, value: &str) -> Result<(), Usage> {
    let port = HostPort::parse(value).map_err(Usage::Error)?;
    if list.len() == ports::MAX_MAPPINGS {
        return Err(Usage::Error(format!(
            "at most {} -unpublish per call",
            ports::MAX_MAPPINGS
        )));
    }
    if list.contains(&port) {
        return Err(Usage::Error(format!("-unpublish {value} is given twice")));
    }
    list.push(port);
    Ok(())
}

/// An argument, bounded and UTF-8.
fn text(raw: &[u8]) -> Result<&str, Usage> {
    if raw.len() > MAX_ARG_LEN {
        return Err(Usage::Error("argument too long".into()));
    }
    std::str::from_utf8(raw).map_err(|_| Usage::Error("arguments must be UTF-8".into()))
}

/// lxc-user-nic's `create LXCPATH NAME PID veth BRIDGE [IFNAME]` and
/// `delete LXCPATH NAME NSPATH veth BRIDGE HOSTIF`. LXCPATH and NAME mean
/// nothing here. NSPATH must be `/proc/PID/ns/net` and is never opened:
/// only its PID is used, as with `-pid`.
fn parse_nic(words: &[&str], mut parsed: Args) -> Result<Args, Usage> {
    let (pid, kind, bridge, nic) = match words {
        ["create", _, _, pid, kind, bridge, ifname @ ..] if ifname.len() <= 1 => (
            parse_pid(pid, "PID")?,
            kind,
            bridge,
            Nic::Create {
                ifname: interface_name(ifname.first().copied().unwrap_or(DEFAULT_NIC))?,
            },
        ),
        ["delete", _, _, nspath, kind, bridge, host] => {
            let pid = nspath
                .strip_prefix("/proc/")
                .and_then(|p| p.strip_suffix("/ns/net"))
                .ok_or_else(|| {
                    Usage::Error(format!("NSPATH must be /proc/PID/ns/net, not {nspath:?}"))
                })?;
            (
                parse_pid(pid, "NSPATH")?,
                kind,
                bridge,
                Nic::Delete {
                    host_ifname: interface_name(host)?,
                },
            )
        }
        [mode, ..] => {
            return Err(Usage::Error(format!(
                "wrong number of arguments for {mode} (see the second form below)"
            )))
        }
        [] => unreachable!("called with create or delete first"),
    };
    if *kind != "veth" {
        return Err(Usage::Error(format!(
            "only the veth type is supported, not {kind:?}"
        )));
    }
    parsed.mode = match nic {
        Nic::Create { .. } => Mode::Create,
        Nic::Delete { .. } => Mode::Delete,
    };
    parsed.pid = Some(pid);
    parsed.bridge_name = Some(bridge.to_string());
    parsed.nic = Some(nic);
    Ok(parsed)
}

fn interface_name(name: &str) -> Result<String, Usage> {
    netplumb::check_name(name)
        .map(|()| name.to_string())
        .map_err(|e| Usage::Error(e.to_string()))
}

/// A pid as Go's strconv.Atoi would accept it, but positive and in range.
fn parse_pid(value: &str, what: &str) -> Result<u32, Usage> {
    let bad = || {
        Usage::Error(format!(
            "invalid value {value:?} for {what}: not a process id"
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
        let restore = p(&["--restore", "-json"]).unwrap();
        assert_eq!(
            (restore.mode, restore.pid, restore.json),
            (Mode::Restore, None, true)
        );
        assert_eq!(
            p(&["-restore=false", "-pid", "1"]).unwrap().mode,
            Mode::Create
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
            &["-restore", "-pid", "1"],
            &["-restore", "-bridgeName", "brg0"],
            &["-restore", "-bridgeAddress", "10.10.10.1/24"],
            &["-restore", "-containerAddress", "10.10.10.2/24"],
            &["-restore", "-vethNamePrefix", "v"],
            &["-restore", "-publish", "tcp:8080:80"],
            &["-restore", "-check"],
            &["-restore", "-oci-hook"],
            &["-restore", "x"],
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
    fn lxc_user_nic_form_as_rootlesskit_calls_it() {
        let a = p(&["create", "/dev/null", "dummy", "42", "veth", "brg0", "eth0"]).unwrap();
        assert_eq!((a.mode, a.pid, a.json), (Mode::Create, Some(42), false));
        assert_eq!(a.bridge_name.as_deref(), Some("brg0"));
        let eth0 = Some(Nic::Create {
            ifname: "eth0".into(),
        });
        assert_eq!(a.nic, eth0);
        // IFNAME is optional; LXCPATH and NAME are anything.
        let a = p(&["create", "x", "-pid", "7", "veth", "br1"]).unwrap();
        assert_eq!((a.pid, a.nic), (Some(7), eth0));
        let a = p(&["create", "", "", "7", "veth", "br1", "net0"]).unwrap();
        let net0 = Nic::Create {
            ifname: "net0".into(),
        };
        assert_eq!(a.nic, Some(net0));
        let d = p(&[
            "delete",
            "/dev/null",
            "dummy",
            "/proc/42/ns/net",
            "veth",
            "brg0",
            "veth0a0a0a02",
        ])
        .unwrap();
        assert_eq!((d.mode, d.pid), (Mode::Delete, Some(42)));
        let host = Nic::Delete {
            host_ifname: "veth0a0a0a02".into(),
        };
        assert_eq!(d.nic, Some(host));
        // The flag form sets no nic.
        assert_eq!(p(&["-pid", "7"]).unwrap().nic, None);
    }

    #[test]
    fn lxc_user_nic_form_errors() {
        let ok = ["create", "l", "n", "42", "veth", "brg0", "eth0"];
        assert!(p(&ok).is_ok());
        let mut cases: Vec<Vec<&str>> = Vec::new();
        for (at, bad) in [
            (3, "0"),
            (3, "abc"),
            (3, "-1"),
            (4, "macvlan"),
            (4, "VETH"),
            (6, "a/b"),
            (6, "sixteen-bytes-xx"),
            (6, ".."),
            (6, ""),
        ] {
            let mut v = ok.to_vec();
            v[at] = bad;
            cases.push(v);
        }
        cases.push(vec!["create", "l", "n", "42", "veth"]);
        cases.push(vec!["create", "l", "n", "42", "veth", "brg0", "eth0", "x"]);
        cases.push(vec!["delete", "l", "n", "/proc/42/ns/net", "veth", "brg0"]);
        for nspath in [
            "42",
            "/proc/42/ns/mnt",
            "/proc/self/ns/net",
            "/proc/42/fd/3",
        ] {
            cases.push(vec!["delete", "l", "n", nspath, "veth", "brg0", "h0"]);
        }
        cases.push(vec![
            "delete",
            "l",
            "n",
            "/proc/42/ns/net",
            "veth",
            "brg0",
            "a/b",
        ]);
        for bad in &cases {
            assert!(matches!(p(bad), Err(Usage::Error(_))), "{bad:?}");
        }
        // Only as the first argument.
        assert!(p(&["-pid", "1", "create"]).is_err());
    }

    #[test]
    fn publish_is_repeatable_with_pid_or_the_hook_only() {
        let a = p(&[
            "-pid",
            "7",
            "-publish",
            "tcp:8080:80",
            "--publish=udp:[2001:db8::1]:5353:53",
            "-publish",
            "tcp:192.0.2.1:8443:443",
            "-publish",
            "udp:8080:80",
        ])
        .unwrap();
        let shown: Vec<String> = a.publish.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "tcp:8080:80",
                "udp:[2001:db8::1]:5353:53",
                "tcp:192.0.2.1:8443:443",
                "udp:8080:80"
            ]
        );
        let hook = p(&["-oci-hook", "-publish", "tcp:8080:80"]).unwrap();
        assert_eq!((hook.mode, hook.publish.len()), (Mode::OciHook, 1));
        assert!(p(&["-pid", "7"]).unwrap().publish.is_empty());
        // Sixteen at most, as separate values (34 arguments).
        let mut args = vec!["-pid".to_string(), "7".to_string()];
        for port in 0..16 {
            args.push("-publish".into());
            args.push(format!("tcp:{}:80", 8000 + port));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(p(&refs).unwrap().publish.len(), 16);
        args.push("-publish=tcp:9000:80".into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(matches!(p(&refs), Err(Usage::Error(e)) if e.contains("at most 16")));
        for bad in [
            &["-pid", "7", "-publish"][..],
            &["-pid", "7", "-publish", "tcp:80"],
            &["-pid", "7", "-publish", "tcp:0:80"],
            &["-pid", "7", "-publish", "icmp:80:80"],
            &[
                "-pid",
                "7",
                "-publish",
                "tcp:8080:80",
                "-publish",
                "tcp:8080:81",
            ],
            &[
                "-pid",
                "7",
                "-publish",
                "tcp:192.0.2.1:8080:80",
                "-publish",
                "tcp:8080:81",
            ],
            &["-pid", "7", "-delete", "-publish", "tcp:8080:80"],
            &["-pid", "7", "-check", "-publish", "tcp:8080:80"],
        ] {
            assert!(matches!(p(bad), Err(Usage::Error(_))), "{bad:?}");
        }
    }

    #[test]
    fn unpublish_goes_with_pid_alone() {
        let a = p(&[
            "-pid",
            "7",
            "-unpublish",
            "tcp:8080",
            "--unpublish=udp:[2001:db8::1]:53",
        ])
        .unwrap();
        assert_eq!(a.mode, Mode::Unpublish);
        let shown: Vec<String> = a.unpublish.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["tcp:8080", "udp:[2001:db8::1]:53"]);
        let with = |extra: &[&str]| {
            let mut args = vec!["-pid", "7", "-unpublish", "tcp:8080"];
            args.extend_from_slice(extra);
            p(&args)
        };
        assert_eq!(
            with(&["-json", "-bridgeName", "br1"]).unwrap().mode,
            Mode::Unpublish
        );
        for extra in [
            &["-publish", "tcp:8081:80"][..],
            &["-containerAddress", "10.10.10.9/24"],
            &["-delete"],
            &["-check"],
            &["-restore"],
            &["-unpublish", "tcp:8080"],
            &["-unpublish", "tcp:8080:80"],
        ] {
            assert!(matches!(with(extra), Err(Usage::Error(_))), "{extra:?}");
        }
        assert!(p(&["-oci-hook", "-unpublish", "tcp:8080"]).is_err());
        assert!(p(&["-unpublish", "tcp:8080"]).is_err());
    }

    #[test]
    fn terminator_and_last_value_wins() {
        assert_eq!(p(&["-pid", "1", "-pid", "2", "--"]).unwrap().pid, Some(2));
        assert!(p(&["-pid", "1", "--", "x"]).is_err());
    }
}
