//! netsetgo: a setuid-root helper that wires a rootless container's network
//! namespace to a bridge on the host. See SECURITY.md for the threat model;
//! the order of the steps in `run_as` is part of it.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use netsetgo::cli::{self, Args, Mode, Usage};
use netsetgo::error::Failure;
use netsetgo::output::{self, Outcome};
use netsetgo::privilege::{self, Caller};
use netsetgo::{audit, leases, nat, oci, request, target, wiring};

fn main() -> ExitCode {
    // Before anything else looks at the process the caller built for us.
    if let Err(f) = privilege::sanitize() {
        return report(Err(f), false);
    }
    let args = match cli::parse(std::env::args_os().skip(1).map(OsStringExt::into_vec)) {
        Ok(args) => args,
        Err(Usage::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(Usage::Error(e)) => {
            // A refusal too: audited like the others.
            let refusal = Failure::refused(format!("usage: {e}"));
            let uid = nix::unistd::getuid().as_raw();
            audit::record(uid, None, "usage", None, Err(&refusal));
            eprint!("netsetgo: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    report(run(&args), args.json)
}

fn report(result: Result<Outcome, Failure>, json: bool) -> ExitCode {
    match result {
        Ok(outcome) => {
            let line = if json { outcome.json() } else { outcome.line() };
            let _ = writeln!(std::io::stdout(), "{line}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            if json {
                let _ = writeln!(std::io::stdout(), "{}", output::failure_json(&f));
            }
            let _ = writeln!(std::io::stderr(), "netsetgo: {f}");
            ExitCode::FAILURE
        }
    }
}

/// What this call does, once the hook state (if any) is read.
enum Action {
    Wire { pid: u32, container: Option<String> },
    Delete { pid: u32 },
    Check { pid: u32 },
    Release { container: String },
}

impl Action {
    fn pid(&self) -> Option<u32> {
        match self {
            Action::Wire { pid, .. } | Action::Delete { pid } | Action::Check { pid } => Some(*pid),
            Action::Release { .. } => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Action::Wire { .. } => "create",
            Action::Delete { .. } => "delete",
            Action::Check { .. } => "check",
            Action::Release { .. } => "release",
        }
    }
}

fn run(args: &Args) -> Result<Outcome, Failure> {
    let caller = Caller::identify()?;
    let action = match (args.mode, args.pid) {
        (Mode::Create, Some(pid)) => Action::Wire {
            pid,
            container: None,
        },
        (Mode::Delete, Some(pid)) => Action::Delete { pid },
        (Mode::Check, Some(pid)) => Action::Check { pid },
        (Mode::OciHook, None) => match oci::read(std::io::stdin().lock())? {
            oci::Hook::Wire { pid, id } => Action::Wire {
                pid,
                container: Some(id),
            },
            oci::Hook::Release { id } => Action::Release { container: id },
        },
        _ => unreachable!("cli::parse pairs -pid with the modes that need it"),
    };
    let mut network = None;
    let result = run_as(&caller, args, &action, &mut network);
    let detail = result.as_ref().map(Outcome::line);
    audit::record(
        caller.uid,
        action.pid(),
        action.name(),
        network.as_deref(),
        detail.as_deref().map_err(|f| *f),
    );
    result
}

/// The privileged sequence. Each step narrows what the next may do:
/// restrict capabilities -> check the request against the policy -> pin the
/// target namespace and prove the caller owns it -> open the root-only state
/// -> open netlink sockets (in the target: CAP_SYS_ADMIN's only use) ->
/// become the caller with CAP_NET_ADMIN alone -> the netlink work, under the
/// network's lock.
fn run_as(
    caller: &Caller,
    args: &Args,
    action: &Action,
    network: &mut Option<String>,
) -> Result<Outcome, Failure> {
    privilege::restrict()?;
    let request = request::resolve(args, caller)?;
    *network = Some(request.network.name.clone());
    let target = action
        .pid()
        .map(|pid| target::open(pid, caller))
        .transpose()?;
    let store = leases::Store::open(&request.network.bridge, request.network.gateway, caller.uid)?;
    let inside = target.as_ref().map(|t| t.netlink_socket()).transpose()?;
    let host = netplumb::Netlink::open_socket()?;
    let nft = match action {
        Action::Wire { .. } => nat::prepare(&request.network)?,
        _ => None,
    };
    privilege::drop_to_caller(caller)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Failure::internal(format!("start runtime: {e}")))?;
    runtime.block_on(async {
        let session = wiring::Session::new(
            host,
            inside,
            target.as_ref(),
            &store,
            &request,
            nft,
            caller.uid,
        )?;
        match action {
            Action::Wire { container, .. } => {
                session
                    .create(container.clone())
                    .await
                    .map(|wired| Outcome::Wired {
                        wired,
                        intact: false,
                    })
            }
            Action::Delete { .. } => session.delete().await,
            Action::Check { .. } => session.check().await,
            Action::Release { container } => session.release(container).await,
        }
    })
}
