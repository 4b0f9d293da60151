//! `netplumb-bridge`: a CNI plugin (specification 1.1.0) that wires a
//! container's network namespace to a host bridge with netplumb.
//!
//! The engine runs it as root with the operation and the attachment in the
//! environment (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_PATH`) and the network configuration on stdin. It answers on stdout:
//! a result for ADD, plugin information for VERSION, nothing for the other
//! operations, or the specification's error object with a non-zero exit.

#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod attachment;
mod check;
mod commands;
mod conf;
mod gc;
mod host;
mod ipam;
mod ports;
mod routes;

use std::io::Read;
use std::process::ExitCode;

use rscni_types::error::Error;
use rscni_types::types::{Cmd, ErrorResult, NetConf, CNI_COMMAND};
use rscni_types::version::{PluginInfo, SpecVersion};

use crate::conf::{Env, Options};

/// The specification versions this plugin speaks: 0.4.0 (the first with
/// CHECK), 1.0.0 (what podman 4.3's conflists declare) and 1.1.0.
const SUPPORTED: [SpecVersion; 3] = [
    SpecVersion::new(0, 4, 0),
    SpecVersion::new(1, 0, 0),
    SpecVersion::CURRENT,
];

/// A network configuration is a few KiB; refuse to buffer more than this.
const MAX_STDIN: u64 = 1 << 20;

const ABOUT: &str = "netplumb-bridge: CNI bridge plugin on netplumb (CNI 0.4.0, 1.0.0, 1.1.0)";

/// Everything one invocation needs, read and checked before any work.
pub struct Request<'a> {
    /// The operation.
    pub cmd: Cmd,
    /// The network configuration as the engine sent it.
    pub conf: NetConf,
    /// This plugin's keys of the configuration.
    pub options: Options,
    /// The `CNI_*` variables.
    pub env: Env,
    /// Stdin as read, passed unchanged to the IPAM plugin.
    pub stdin: &'a [u8],
    /// The negotiated version: results are reported in it.
    pub version: SpecVersion,
}

fn main() -> ExitCode {
    let command = std::env::var(CNI_COMMAND).unwrap_or_default();
    if command.is_empty() {
        eprintln!("{ABOUT}");
        return ExitCode::SUCCESS;
    }
    let mut version = SpecVersion::CURRENT;
    match run(&command, &mut version) {
        Ok(Some(output)) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let result = ErrorResult::new(version, &e);
            println!(
                "{}",
                serde_json::to_string(&result).expect("an error result serializes")
            );
            ExitCode::FAILURE
        }
    }
}

/// Runs one operation. `version` is updated as soon as the configuration's
/// version is known, so that errors are reported in it.
fn run(command: &str, version: &mut SpecVersion) -> Result<Option<String>, Error> {
    let cmd: Cmd = command.parse()?;
    let info = PluginInfo::new(SpecVersion::CURRENT, SUPPORTED.to_vec());
    if cmd == Cmd::Version {
        return to_json(&info).map(Some);
    }
    let mut stdin = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut stdin)
        .map_err(|e| Error::IOFailure(format!("read network configuration from stdin: {e}")))?;
    if stdin.len() as u64 > MAX_STDIN {
        return Err(Error::IOFailure(format!(
            "network configuration on stdin is larger than {MAX_STDIN} bytes"
        )));
    }
    let conf: NetConf = serde_json::from_slice(&stdin)
        .map_err(|e| Error::FailedToDecode(format!("network configuration on stdin: {e}")))?;
    if let Ok(declared) = conf.version() {
        *version = declared;
    }
    let version = info.negotiate(&conf, cmd)?;
    conf.validate_name()?;
    let options = Options::parse(&stdin, cmd)?;
    let env = Env::read(cmd)?;
    let request = Request {
        cmd,
        conf,
        options,
        env,
        stdin: &stdin,
        version,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::IOFailure(format!("start the tokio runtime: {e}")))?;
    runtime.block_on(commands::run(&request))
}

/// Serializes an answer for stdout.
pub fn to_json(value: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::IOFailure(format!("encode the result: {e}")))
}
