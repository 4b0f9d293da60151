//! netsetgo: a setuid-root helper that wires a rootless container's network
//! namespace to a bridge on the host. See SECURITY.md for the threat model;
//! the order of the steps in `run` is part of it.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use netsetgo::cli::{self, Args, Mode, Usage};
use netsetgo::error::Failure;
use netsetgo::output::{self, Outcome};
use netsetgo::privilege::{self, Caller};
use netsetgo::{audit, leases, request, target, wiring};

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

fn run(args: &Args) -> Result<Outcome, Failure> {
    let caller = Caller::identify()?;
    let pid = args.pid.expect("parse requires -pid outside hook mode");
    let mut network = None;
    let result = run_as(&caller, args, pid, &mut network);
    let action = match args.mode {
        Mode::Create => "create",
        Mode::Delete => "delete",
    };
    let detail = result.as_ref().map(Outcome::line);
    audit::record(
        caller.uid,
        Some(pid),
        action,
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
    pid: u32,
    network: &mut Option<String>,
) -> Result<Outcome, Failure> {
    privilege::restrict()?;
    let request = request::resolve(args, caller)?;
    *network = Some(request.network.name.clone());
    let target = target::open(pid, caller)?;
    let store = leases::Store::open(&request.network.bridge, request.network.gateway, caller.uid)?;
    let inside = target.netlink_socket().map_err(Failure::from)?;
    let host = netplumb::Netlink::open_socket().map_err(Failure::from)?;
    privilege::drop_to_caller(caller)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Failure::internal(format!("start runtime: {e}")))?;
    runtime.block_on(async {
        let session = wiring::Session::new(host, inside, &target, &store, &request, caller.uid)?;
        match args.mode {
            Mode::Create => session.create(None).await.map(Outcome::Wired),
            Mode::Delete => session.delete().await,
        }
    })
}
