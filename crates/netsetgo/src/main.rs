//! netsetgo: a setuid-root helper that wires a rootless container's network
//! namespace to a bridge on the host.
//!
//! Theory of operation. `main` runs the stages below in this order, the
//! order SECURITY.md gives them; each narrows what the next may do, and each
//! privileged step says why it needs what it holds.

#![deny(missing_docs)]
#![deny(unreachable_pub)]

use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use netplumb::{NetNs, NsId};
use netsetgo::cli::{self, Args, Mode, Usage};
use netsetgo::dhcp::responder::Responder;
use netsetgo::error::Failure;
use netsetgo::leases::Store;
use netsetgo::output::{self, Outcome};
use netsetgo::policy::{Network, SystemAccounts};
use netsetgo::privilege::{self, Caller, PacketSocket, Worker};
use netsetgo::request::{Intent, Request};
use netsetgo::system::{Kernel, System};
use netsetgo::wiring::{Restorable, Sockets};
use netsetgo::{audit, filters, links, nat, oci, request, target, wiring};

fn main() -> ExitCode {
    let sys = Kernel;
    // 1. Sanitise.
    if let Err(f) = sanitise(&sys) {
        return report(Err(f), Format::Line);
    }
    // 2. Parse.
    let args = match parse() {
        Ok(args) => args,
        Err(status) => return status,
    };
    // 3-12. Identify, restrict, hook state, policy, target, state,
    //       sockets, drop, locked work.
    let call = run(&sys, &args);
    // 13. Report.
    audit_call(&call);
    report(call.result, Format::of(&args))
}

/// The privileged stages, 3 to 12, in SECURITY.md's order; `call` learns
/// who, which pid and which network as soon as each is known, so that a
/// refusal is audited with everything known by then.
fn privileged(sys: &impl System, args: &Args, call: &mut Call) -> Result<Outcome, Failure> {
    let caller = Caller::identify()?; // 3
    restrict(sys, args)?; // 4
    if args.mode == Mode::Restore {
        return restore(sys, &caller);
    }
    let action = hook_state(args, &caller, call)?; // 5
    let (mut request, worker) = policy(args, &caller, &action, call)?; // 6
    let host_ns = NetNs::current()?.id()?;
    let target = open_target(call.pid, &caller, &host_ns)?; // 7
    let store = state(&host_ns, &mut request, &caller)?; // 8
    let sockets = open_sockets(&request, &action, target.as_ref(), worker)?; // 9
    privilege::drop_to(sys, worker)?; // 10
    locked_work(
        sockets,
        target.as_ref(),
        &store,
        &request,
        caller.uid,
        action,
    ) // 11-12
}

/// Stage 1, **Sanitise** the process the caller built for us, before anything
/// else looks at it: every resource limit, timers, signals, fds,
/// environment, umask, working directory (requirement 19). Needs nothing
/// but the process; a failure is audited as the start's.
fn sanitise(sys: &impl System) -> Result<(), Failure> {
    privilege::sanitize(sys).inspect_err(|f| {
        let uid = nix::unistd::getuid().as_raw();
        audit::record(uid, None, "start", None, Err(f));
    })
}

/// Stage 2, **Parse** the command line (bounded, Go `flag` syntax), after
/// sanitising: the arguments are the caller's. `Err` is the exit status
/// of a call that ends here: help (0), or a usage error (2, audited as
/// the refusal it is).
fn parse() -> Result<Args, ExitCode> {
    match cli::parse(std::env::args_os().skip(1).map(OsStringExt::into_vec)) {
        Ok(args) => Ok(args),
        Err(Usage::Help) => {
            print!("{}", cli::USAGE);
            Err(ExitCode::SUCCESS)
        }
        Err(Usage::Error(e)) => {
            let refusal = Failure::refused(format!("usage: {e}"));
            let uid = nix::unistd::getuid().as_raw();
            audit::record(uid, None, "usage", None, Err(&refusal));
            eprint!("netsetgo: {e}\n{}", cli::USAGE);
            Err(ExitCode::from(2))
        }
    }
}

/// What one call did, for the audit record and the output.
struct Call {
    uid: u32,
    pid: Option<u32>,
    action: &'static str,
    network: Option<String>,
    result: Result<Outcome, Failure>,
}

/// What this call does, once the hook state (if any) is read; the pid it
/// names, if any, is the call's.
enum Action {
    Wire { container: Option<String> },
    Delete,
    Check,
    Release { container: String },
}

/// Stages 3 to 12 for the parsed `args`, with what the audit record needs.
fn run(sys: &impl System, args: &Args) -> Call {
    let mut call = Call {
        uid: nix::unistd::getuid().as_raw(),
        pid: args.pid,
        action: match args.mode {
            Mode::Create => "create",
            Mode::Delete => "delete",
            Mode::Check => "check",
            Mode::OciHook => "hook",
            Mode::Restore => "restore",
        },
        network: None,
        result: Err(Failure::internal("not run")),
    };
    call.result = privileged(sys, args, &mut call);
    call
}

/// Stage 4, **Restrict**: once the caller is known (3, `Caller::identify`) and
/// before anything is opened on its behalf: undo the scheduling and
/// priorities the caller chose, then keep only the capabilities the setup
/// needs (CAP_NET_RAW only for lxc-user-nic's create, whose DHCP
/// responder's packet socket stage 9 opens).
fn restrict(sys: &impl System, args: &Args) -> Result<(), Failure> {
    let packet = match args.nic {
        Some(cli::Nic::Create { .. }) => PacketSocket::Dhcp,
        _ => PacketSocket::None,
    };
    privilege::restrict(sys, packet)
}

/// Stage 5, **Hook state**: in -oci-hook mode, the state on stdin, read and
/// parsed by a child that has become the caller holding nothing, with a
/// size bound and a deadline (nothing the caller sends is read while
/// holding more). Needs the caller; names the call's action and pid.
fn hook_state(args: &Args, caller: &Caller, call: &mut Call) -> Result<Action, Failure> {
    Ok(match args.mode {
        Mode::Create => Action::Wire { container: None },
        Mode::Delete => Action::Delete,
        Mode::Check => Action::Check,
        Mode::Restore => unreachable!("restored at stage 4"),
        Mode::OciHook => match oci::read_unprivileged(caller)? {
            oci::Hook::Wire { pid, id } => {
                call.action = "create";
                call.pid = Some(pid);
                Action::Wire {
                    container: Some(id),
                }
            }
            oci::Hook::Release { id } => {
                call.action = "release";
                Action::Release { container: id }
            }
        },
    })
}

/// Stage 6, **Policy**: the caller's flags against its grants in the root-owned
/// policy, before anything has been opened on the caller's behalf (the
/// one place that decides what a call may publish: only a wiring call
/// publishes). The identity to work as later is looked up now, so that a
/// machine without it refuses before anything is opened. Names the
/// call's network.
fn policy(
    args: &Args,
    caller: &Caller,
    action: &Action,
    call: &mut Call,
) -> Result<(Request, Worker), Failure> {
    let intent = match action {
        Action::Wire { .. } => Intent::Wire,
        Action::Check => Intent::Check,
        Action::Delete | Action::Release { .. } => Intent::Remove,
    };
    // /etc/passwd is read once, for the grants and the worker alike.
    let accounts = SystemAccounts::default();
    let request = request::resolve(args, caller, intent, &accounts)?;
    call.network = Some(request.network.name.clone());
    let worker = Worker::resolve(caller, &accounts)?;
    Ok((request, worker))
}

/// Stage 7, **Target**: with the capabilities restricted: the pid resolved once
/// into a pinned namespace fd, and proof that the caller owns it
/// (CAP_SYS_PTRACE opens its ns file) and that it is not `host_ns`, the
/// namespace we run in. From here on the pid is not used again.
fn open_target(
    pid: Option<u32>,
    caller: &Caller,
    host_ns: &NsId,
) -> Result<Option<NetNs>, Failure> {
    pid.map(|pid| target::open(pid, caller, host_ns))
        .transpose()
}

/// Stage 8, **State**: the root-only state of this host namespace's network,
/// opened as root and kept as fds. A network that left the policy (a
/// -delete or poststop of one's own interface there) is known by the
/// subnet its state recorded, which `request` learns here; without state
/// there is nothing of the caller's on it.
fn state(host_ns: &NsId, request: &mut Request, caller: &Caller) -> Result<Store, Failure> {
    if request.known == request::Known::Recorded {
        request.network.gateway = Store::recorded_gateway(host_ns, &request.network.bridge)?
            .ok_or_else(|| {
                Failure::refused(format!(
                    "no interface of yours from network {} is in that container",
                    request.network.name
                ))
            })?;
    }
    Store::open(
        host_ns,
        &request.network.bridge,
        request.network.gateway,
        caller.uid,
    )
}

/// Stage 9, **Sockets**: the last privileged opens: netlink inside the target
/// (CAP_SYS_ADMIN's only use: setns for one socket()), in the host, and
/// nf_tables for our own tables (masquerading, published ports, the
/// guard, and the garbage collection of other leases' publications), with
/// forwarding switched on for nat=yes networks and for a call that
/// publishes ports (/proc/sys is root's). In lxc-user-nic mode, the DHCP
/// responder's packet socket (CAP_NET_RAW's only use; unbound, it
/// receives nothing yet), opened for `worker`. Held as fds across the drop.
fn open_sockets(
    request: &Request,
    action: &Action,
    target: Option<&NetNs>,
    worker: Worker,
) -> Result<Opened, Failure> {
    let inside = target.map(|t| t.netlink_socket()).transpose()?;
    let host = netplumb::Netlink::open_socket()?;
    let nft = nat::prepare(&request.network, &request.publish)?;
    let dhcp = match action {
        Action::Wire { .. } if request.by_dhcp() => Some(Responder::open(worker.uid, worker.gid)?),
        _ => None,
    };
    Ok(Opened {
        host,
        inside,
        nft,
        dhcp,
    })
}

/// The sockets stage 9 opened, before the runtime adopts them.
struct Opened {
    host: netplumb::RawSocket,
    inside: Option<netplumb::RawSocket>,
    nft: netplumb::Nftables,
    dhcp: Option<Responder>,
}

/// Stages 11-12, **Locked work**: after the drop (10, `privilege::drop_to`: the
/// system user _netsetgo, which the caller can neither signal nor trace,
/// holding CAP_NET_ADMIN alone). The netlink work under the network's lock
/// (bounded wait): the host addresses and ports to publish checked
/// (local, no host socket on them), the bridge, garbage collection (of
/// leases, and their publications and guard chains), quota, address,
/// write-ahead lease and ports record, the publications, the pair (peer
/// with its deterministic MAC; before the host end is up: its bridge port
/// isolated on isolate=yes networks, and on guard=yes networks learning
/// and unknown unicast off, the MAC pinned to it and its netdev guard
/// chain added) and its configuration, the lease completed (and in
/// lxc-user-nic mode the DHCP responder forked, which holds nothing
/// before it reads a packet); any failure deletes what this call made.
/// The lock is released on return.
fn locked_work(
    opened: Opened,
    target: Option<&NetNs>,
    store: &Store,
    request: &Request,
    uid: u32,
    action: Action,
) -> Result<Outcome, Failure> {
    runtime()?.block_on(async {
        let sockets = Sockets::open(opened.host, opened.inside, opened.nft, opened.dhcp)?;
        let session = wiring::Session::new(sockets, target, store, request, uid);
        match action {
            Action::Wire { container, .. } => {
                let wired = session.create(container).await?;
                Ok(if request.by_dhcp() {
                    Outcome::Nic(wired)
                } else {
                    Outcome::Wired {
                        wired,
                        intact: false,
                    }
                })
            }
            Action::Delete => session.delete().await,
            Action::Check => session.check().await,
            Action::Release { container } => session.release(&container).await,
        }
    })
}

/// Stage 13, **Report**: first half: one audit record, fed from the result. The
/// network's lock is long released, so a caller that never reads our
/// output stalls nobody but itself. A restore that could not restore
/// everything is audited as the failure it is.
fn audit_call(call: &Call) {
    let detail = call.result.as_ref().map(Outcome::line);
    let incomplete = call.result.as_ref().ok().and_then(Outcome::failure);
    audit::record(
        call.uid,
        call.pid,
        call.action,
        call.network.as_deref(),
        match &incomplete {
            Some(f) => Err(f),
            None => detail.as_deref().map_err(|f| *f),
        },
    );
}

/// `-restore`: stages 6 to 12 for root, over every network with state.
fn restore(sys: &impl System, caller: &Caller) -> Result<Outcome, Failure> {
    // 6. Policy: root only; the networks as the policy defines them now
    //    (and the grants publications are judged by).
    let policy = request::restorable(caller)?;
    let accounts = SystemAccounts::default();
    let worker = Worker::resolve(caller, &accounts)?;
    // 7. No target: the networks of the host namespace we run in.
    let host_ns = NetNs::current()?.id()?;
    let networks = restore_state(&host_ns, &policy, caller)?; // 8
                                                              // 9. Sockets: netlink in the host and nf_tables, with forwarding
                                                              //    switched on for the nat=yes networks of the policy.
    for Restorable { request, .. } in &networks {
        if request.known == request::Known::Defined {
            nat::forward(&request.network, &[])?;
        }
    }
    let host = netplumb::Netlink::open_socket()?;
    let nft = netplumb::Nftables::open()?;
    // 10. Drop: the system user (uid 0 without one), CAP_NET_ADMIN alone.
    privilege::drop_to(sys, worker)?;
    // 11-12. Each network under its own lock (bounded wait), one after
    //     the other: collect, reconcile with the grants, re-create.
    runtime()?.block_on(async {
        let host = links::Kernel::new(netplumb::Netlink::from_socket(host)?);
        let filters = filters::Kernel::new(nft);
        let grants = |uid, network: &Network| policy.ports_of_owner(uid, &network.name, &accounts);
        let restored = wiring::restore_all(host, &filters, &networks, &grants).await;
        Ok(Outcome::Restored(restored))
    })
}

/// `-restore`'s stage 8, **state**: every network with state in this host
/// namespace, as the policy defines it or, once it left the policy, as its
/// state recorded it (state that never held a lease has nothing to
/// restore). A network whose state cannot be read is kept, to be reported
/// as that network's failure; the others go on.
fn restore_state(
    host_ns: &NsId,
    policy: &netsetgo::policy::Policy,
    caller: &Caller,
) -> Result<Vec<Restorable>, Failure> {
    let mut networks = Vec::new();
    for bridge in Store::bridges(host_ns)? {
        let (request, store) = match Store::recorded_gateway(host_ns, &bridge) {
            Ok(recorded) => match request::restoring(policy, &bridge, recorded) {
                Some(request) => {
                    let gateway = request.network.gateway;
                    let store = Store::open(host_ns, &bridge, gateway, caller.uid);
                    (request, store)
                }
                None => continue,
            },
            Err(e) => (request::unreadable(policy, &bridge), Err(e)),
        };
        networks.push(Restorable { request, store });
    }
    Ok(networks)
}

/// The single-threaded runtime the netlink work runs on.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Failure::internal(format!("start runtime: {e}")))
}

/// How the outcome is written: `-json` or the line.
#[derive(Clone, Copy)]
enum Format {
    Line,
    Json,
}

impl Format {
    fn of(args: &Args) -> Format {
        if args.json {
            Format::Json
        } else {
            Format::Line
        }
    }
}

/// Stage 13, **Report**: second half: one line out, in `format`, and the exit
/// status.
fn report(result: Result<Outcome, Failure>, format: Format) -> ExitCode {
    match result {
        Ok(outcome) => {
            let line = match format {
                Format::Json => outcome.json(),
                Format::Line => outcome.line(),
            };
            let _ = writeln!(std::io::stdout(), "{line}");
            match outcome.failure() {
                Some(f) => {
                    let _ = writeln!(std::io::stderr(), "netsetgo: {f}");
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(f) => {
            if let Format::Json = format {
                let _ = writeln!(std::io::stdout(), "{}", output::failure_json(&f));
            }
            let _ = writeln!(std::io::stderr(), "netsetgo: {f}");
            ExitCode::FAILURE
        }
    }
}
