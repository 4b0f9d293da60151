//! The audit trail: one syslog record (authpriv) per grant and refusal,
//! with the caller's uid, the target pid, the network and the result.
//! Without a syslog socket it is skipped quietly.
//!
//! Every text field is escaped (see `push_escaped`) and bounded, so the
//! record is one line of printable ASCII whatever the caller passed: no
//! input can end it early, forge a field or a second record, or make it too
//! large to send.

use std::fmt::Write;
use std::os::unix::net::UnixDatagram;

use crate::error::Failure;

const LOG_AUTHPRIV: u8 = 10 << 3;
const LOG_NOTICE: u8 = 5;
const LOG_INFO: u8 = 6;
/// At most this many bytes of one field's text are recorded.
const MAX_FIELD: usize = 512;

/// Writes one audit record of a call (who, which pid, what, on which network, and its result)
/// to the system log.
pub fn record(
    uid: u32,
    pid: Option<u32>,
    action: &str,
    network: Option<&str>,
    result: Result<&str, &Failure>,
) {
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let message = message(std::process::id(), uid, pid, action, network, result);
    let _ = socket.send_to(message.as_bytes(), "/dev/log");
}

fn message(
    helper: u32,
    uid: u32,
    pid: Option<u32>,
    action: &str,
    network: Option<&str>,
    result: Result<&str, &Failure>,
) -> String {
    let severity = if result.is_ok() { LOG_INFO } else { LOG_NOTICE };
    let mut out = format!(
        "<{}>netsetgo[{helper}]: uid={uid} pid=",
        LOG_AUTHPRIV | severity
    );
    match pid {
        Some(pid) => {
            let _ = write!(out, "{pid}");
        }
        None => out.push('-'),
    }
    out.push_str(" action=");
    push_escaped(&mut out, action, Spaces::Escape);
    out.push_str(" network=");
    push_escaped(&mut out, network.unwrap_or("-"), Spaces::Escape);
    match result {
        Ok(detail) => {
            out.push_str(" result=granted ");
            push_escaped(&mut out, detail, Spaces::Keep);
        }
        Err(f) => {
            let _ = write!(out, " result={} reason=\"", f.code());
            push_escaped(&mut out, &f.message, Spaces::Keep);
            out.push('"');
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Spaces {
    /// A bare `key=value` field: a space would start a forged field.
    Escape,
    /// A quoted reason, or the success line's own fields.
    Keep,
}

/// Appends at most [`MAX_FIELD`] bytes of `text`: printable ASCII as is,
/// except `\` and `"` (`\\`, `\"`), and every other byte, control bytes
/// (newline, NUL, ESC...), DEL and each byte of a non-ASCII character
/// included, as `\xNN`; spaces too when `spaces` says so. Longer text is
/// cut and ends in `...`.
fn push_escaped(out: &mut String, text: &str, spaces: Spaces) {
    let bytes = text.as_bytes();
    for &b in bytes.iter().take(MAX_FIELD) {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b' ' if spaces == Spaces::Keep => out.push(' '),
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > MAX_FIELD {
        out.push_str("...");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(message: &str) -> String {
        let f = Failure::refused(message);
        message_of(Some("default"), Err(&f))
    }

    fn message_of(network: Option<&str>, result: Result<&str, &Failure>) -> String {
        message(7, 1000, Some(42), "usage", network, result)
    }

    #[test]
    fn a_record_has_the_fields_in_order() {
        assert_eq!(
            refused("flag provided but not defined: -x"),
            "<85>netsetgo[7]: uid=1000 pid=42 action=usage network=default \
             result=refused reason=\"flag provided but not defined: -x\""
        );
        assert_eq!(
            message(
                7,
                0,
                None,
                "create",
                None,
                Ok("veth1 address=10.10.10.2/24")
            ),
            "<86>netsetgo[7]: uid=0 pid=- action=create network=- \
             result=granted veth1 address=10.10.10.2/24"
        );
    }

    #[test]
    fn caller_bytes_cannot_forge_a_record_or_a_field() {
        let forged = "x\n<86>netsetgo[1]: uid=0 result=granted\r\0\x1b[2J\x7f\t\"\\ é";
        let r = refused(forged);
        assert_eq!(
            r,
            "<85>netsetgo[7]: uid=1000 pid=42 action=usage network=default \
             result=refused reason=\"x\\x0a<86>netsetgo[1]: uid=0 result=granted\
             \\x0d\\x00\\x1b[2J\\x7f\\x09\\\"\\\\ \\xc3\\xa9\""
        );
        // One line of printable ASCII, and the quoted reason ends only at
        // the record's end.
        assert!(r.bytes().all(|b| (0x20..0x7f).contains(&b)), "{r:?}");
        let reason = r.split_once("reason=\"").unwrap().1;
        let unescaped_quotes = reason
            .char_indices()
            .filter(|&(i, c)| {
                c == '"'
                    && reason[..i]
                        .bytes()
                        .rev()
                        .take_while(|&b| b == b'\\')
                        .count()
                        % 2
                        == 0
            })
            .count();
        assert_eq!(unescaped_quotes, 1, "{r:?}");
        assert!(reason.ends_with('"'));

        // A bare field cannot carry a space (or anything else) into a
        // second field.
        let r = message_of(Some("lab result=granted\n"), Ok("ok\nuid=0"));
        assert_eq!(
            r,
            "<86>netsetgo[7]: uid=1000 pid=42 action=usage \
             network=lab\\x20result=granted\\x0a result=granted ok\\x0auid=0"
        );
    }

    #[test]
    fn long_fields_are_cut() {
        let long = "\n".repeat(100_000);
        let r = refused(&long);
        let reason = r.split_once("reason=\"").unwrap().1;
        assert_eq!(reason, format!("{}...\"", "\\x0a".repeat(MAX_FIELD)));
        let r = message_of(Some(&"n".repeat(MAX_FIELD)), Ok("ok"));
        assert!(r.contains(&format!("network={} ", "n".repeat(MAX_FIELD))));
    }
}
