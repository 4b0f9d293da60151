//! IPAM delegation, as the reference bridge plugin does it: the plugin named
//! by `ipam.type` is looked for in `CNI_PATH` and run with this plugin's
//! environment (only `CNI_COMMAND` changed, where it differs) and this
//! plugin's stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rscni_types::error::Error;
use rscni_types::types::{CNIResult, ErrorResult, NetConf, CNI_COMMAND};
use rscni_types::version::{PluginInfo, SpecVersion};

use crate::conf::Env;

/// Error code for an IPAM plugin that could not be found or run, or that
/// answered something that is not CNI.
pub(crate) const IPAM_FAILED: u32 = 101;

/// The IPAM plugin of one network.
pub(crate) struct Ipam<'a> {
    plugin: PathBuf,
    stdin: &'a [u8],
}

impl<'a> Ipam<'a> {
    /// The IPAM plugin the configuration names, or `None` when it names
    /// none (the bridge then carries layer 2 only).
    pub(crate) fn of(
        conf: &NetConf,
        env: &Env,
        stdin: &'a [u8],
    ) -> Result<Option<Ipam<'a>>, Error> {
        let Some(ipam) = &conf.ipam else {
            return Ok(None);
        };
        let name = ipam.r#type.as_str();
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::InvalidNetworkConfig(format!(
                "ipam.type {name:?} is not a plugin name"
            )));
        }
        let plugin = env
            .path
            .split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| Path::new(dir).join(name))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                failed(format!(
                    "IPAM plugin {name:?} not found in CNI_PATH {:?}",
                    env.path
                ))
            })?;
        Ok(Some(Ipam { plugin, stdin }))
    }

    /// ADD: the addresses, routes and DNS settings for the attachment.
    pub(crate) fn add(&self) -> Result<CNIResult, Error> {
        let out = self.exec("ADD", self.stdin)?;
        serde_json::from_slice(&out).map_err(|e| {
            failed(format!(
                "{} answered ADD with no result: {e}",
                self.plugin.display()
            ))
        })
    }

    /// Runs `command` (DEL, CHECK, GC, STATUS), which answers nothing on
    /// success.
    pub(crate) fn call(&self, command: &str) -> Result<(), Error> {
        self.exec(command, self.stdin).map(drop)
    }

    /// Whether the plugin speaks `version` (asked with VERSION): GC and
    /// STATUS exist from 1.1.0 on, and plugins from before then refuse them.
    pub(crate) fn speaks(&self, version: SpecVersion) -> Result<bool, Error> {
        let query = format!(r#"{{"cniVersion":"{version}"}}"#);
        let out = self.exec("VERSION", query.as_bytes())?;
        let info: PluginInfo = serde_json::from_slice(&out).map_err(|e| {
            failed(format!(
                "{} answered VERSION with no plugin information: {e}",
                self.plugin.display()
            ))
        })?;
        Ok(info.supported_versions().contains(&version))
    }

    /// Runs the plugin with `command` and `stdin`; returns its stdout on
    /// success and its own error (code and all) on failure.
    fn exec(&self, command: &str, stdin: &[u8]) -> Result<Vec<u8>, Error> {
        let what = || format!("{} ({command})", self.plugin.display());
        let mut child = Command::new(&self.plugin)
            .env(CNI_COMMAND, command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| failed(format!("run {}: {e}", what())))?;
        let mut input = child.stdin.take().expect("stdin is piped");
        // Written from a second thread so that a plugin that answers before
        // reading all of stdin cannot block us on a full pipe.
        let output = std::thread::scope(|scope| {
            scope.spawn(move || {
                // A plugin that exits without reading stdin closes the pipe;
                // its exit status says what went wrong.
                let _ = input.write_all(stdin);
            });
            child.wait_with_output()
        })
        .map_err(|e| failed(format!("wait for {}: {e}", what())))?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        match serde_json::from_slice::<ErrorResult>(&output.stdout) {
            Ok(result) => Err(Error::from(result)),
            Err(_) => Err(failed(format!(
                "{} failed ({}) with no CNI error: {}",
                what(),
                output.status,
                String::from_utf8_lossy(&output.stdout).trim()
            ))),
        }
    }
}

fn failed(details: String) -> Error {
    Error::Custom(IPAM_FAILED, "IPAM plugin failed".to_string(), details)
}
