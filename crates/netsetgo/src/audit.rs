//! The audit trail: one syslog record (authpriv) per grant and refusal,
//! with the caller's uid, the target pid, the network and the result.
//! Without a syslog socket it is skipped quietly.

use std::os::unix::net::UnixDatagram;

use crate::error::Failure;

const LOG_AUTHPRIV: u8 = 10 << 3;
const LOG_NOTICE: u8 = 5;
const LOG_INFO: u8 = 6;

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
    let (severity, outcome) = match result {
        Ok(detail) => (LOG_INFO, format!("result=granted {detail}")),
        Err(f) => (
            LOG_NOTICE,
            format!(
                "result={} reason=\"{}\"",
                f.code(),
                f.message.replace('"', "'")
            ),
        ),
    };
    let message = format!(
        "<{}>netsetgo[{}]: uid={uid} pid={} action={action} network={} {outcome}",
        LOG_AUTHPRIV | severity,
        std::process::id(),
        pid.map_or("-".to_string(), |p| p.to_string()),
        network.unwrap_or("-"),
    );
    let _ = socket.send_to(message.as_bytes(), "/dev/log");
}
