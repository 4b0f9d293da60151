//! netsetgo: a setuid-root helper that wires a rootless container's network
//! namespace to a bridge on the host.
//!
//! Theory of operation. `main` runs the stages below in this order, the
//! order SECURITY.md gives them; each narrows what the next may do, and each
//! privileged step says why it needs what it holds.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use netsetgo::cli::{self, Args, Mode, Usage};
use netsetgo::dhcp::responder::Responder;
use netsetgo::error::Failure;
use netsetgo::output::{self, Outcome};
use netsetgo::policy::{Network, SystemAccounts};
use netsetgo::privilege::{self, Caller, Worker};
use netsetgo::request::Intent;
use netsetgo::wiring::Restorable;
use netsetgo::{audit, filters, leases, links, nat, oci, request, target, wiring};

fn main() -> ExitCode {
    // 1. Sanitise the process the caller built for us, before anything
    //    else looks at it: every resource limit, timers, signals, fds,
    //    environment, umask, working directory (requirement 19).
    if let Err(f) = privilege::sanitize() {
        let uid = nix::unistd::getuid().as_raw();
        audit::record(uid, None, "start", None, Err(&f));
        return report(Err(f), false);
    }
    // 2. Parse the command line (bounded, Go `flag` syntax).
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
    let call = run(&args);
    // 13. One audit record, fed from the result, then one line out: the
    //     network's lock is long released, so a caller that never reads
    //     our output stalls nobody but itself. A restore that could not
    //     restore everything is audited as the failure it is.
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
    report(call.result, args.json)
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

fn run(args: &Args) -> Call {
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
    call.result = privileged(args, &mut call);
    call
}

/// The privileged stages, 3 to 12; `call` learns who, which pid and which
/// network as soon as each is known, so that a refusal is audited with
/// everything known by then.
fn privileged(args: &Args, call: &mut Call) -> Result<Outcome, Failure> {
    // 3. Are we really privileged (setuid root, initial user namespace,
    //    no no_new_privs)? And who is calling, by the kernel's real ids.
    let caller = Caller::identify()?;
    // 4. Restrict: undo the scheduling and priorities the caller chose,
    //    then keep only the capabilities the setup needs (CAP_NET_RAW only
    //    for lxc-user-nic's create).
    privilege::restrict(matches!(args.nic, Some(cli::Nic::Create { .. })))?;
    if args.mode == Mode::Restore {
        return restore(&caller);
    }
    // 5. In -oci-hook mode, the state on stdin: read and parsed by a child
    //    that has become the caller holding nothing, with a size bound and
    //    a deadline.
    let action = match args.mode {
        Mode::Create => Action::Wire { container: None },
        Mode::Delete => Action::Delete,
        Mode::Check => Action::Check,
        Mode::Restore => unreachable!("restored above"),
        Mode::OciHook => match oci::read_unprivileged(&caller)? {
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
    };
    // 6. Policy: the caller's flags against its grants in the root-owned
    //    policy; nothing has been opened on the caller's behalf yet.
    //    The identity to work as later is looked up now, so that a machine
    //    without it refuses before anything is opened.
    let intent = match action {
        Action::Wire { .. } => Intent::Wire,
        Action::Check => Intent::Check,
        Action::Delete | Action::Release { .. } => Intent::Remove,
    };
    let mut request = request::resolve(args, &caller, intent)?;
    call.network = Some(request.network.name.clone());
    let worker = Worker::resolve(&caller)?;
    // 7. Target: the pid resolved once into a pinned namespace fd, and
    //    proof that the caller owns it (CAP_SYS_PTRACE opens its ns file)
    //    and that it is not the namespace we run in, the host's.
    let host_ns = netplumb::NetNs::current()?.id()?;
    let target = call
        .pid
        .map(|pid| target::open(pid, &caller, &host_ns))
        .transpose()?;
    // 8. State: the root-only state of this host namespace's network,
    //    opened as root and kept as fds. A network that left the policy
    //    (a -delete or poststop of one's own interface there) is known by
    //    the subnet its state recorded; without state there is nothing of
    //    the caller's on it.
    if request.known == request::Known::Recorded {
        request.network.gateway =
            leases::Store::recorded_gateway(&host_ns, &request.network.bridge)?.ok_or_else(
                || {
                    Failure::refused(format!(
                        "no interface of yours from network {} is in that container",
                        request.network.name
                    ))
                },
            )?;
    }
    let store = leases::Store::open(
        &host_ns,
        &request.network.bridge,
        request.network.gateway,
        caller.uid,
    )?;
    // 9. Sockets: netlink inside the target (CAP_SYS_ADMIN's only use:
    //    setns for one socket()), in the host, and nf_tables for our own
    //    tables (masquerading, published ports, the guard, and the garbage
    //    collection of other leases' publications), with forwarding
    //    switched on for nat=yes networks and for a call that publishes
    //    ports (/proc/sys is root's).
    let inside = target.as_ref().map(|t| t.netlink_socket()).transpose()?;
    let host = netplumb::Netlink::open_socket()?;
    let publish = match action {
        Action::Wire { .. } => request.publish.as_slice(),
        _ => &[],
    };
    let nft = nat::prepare(&request.network, publish)?;
    //    In lxc-user-nic mode, the DHCP responder's packet socket
    //    (CAP_NET_RAW's only use; unbound, it receives nothing yet).
    let dhcp = match action {
        Action::Wire { .. } if request.by_dhcp() => Some(Responder::open(worker.uid, worker.gid)?),
        _ => None,
    };
    // 10. Drop: become the system user _netsetgo, which the caller can
    //     neither signal nor trace, holding CAP_NET_ADMIN alone.
    privilege::drop_to(worker)?;
    // 11-12. The netlink work under the network's lock (bounded wait): the
    //     host addresses and ports to publish checked (local, no host
    //     socket on them), the bridge, garbage collection (of leases, and
    //     their publications and guard chains), quota, address,
    //     write-ahead lease and ports record, the publications, the pair
    //     (peer with its deterministic MAC; before the host end is up: its
    //     bridge port isolated on isolate=yes networks, and on guard=yes
    //     networks learning and unknown unicast off, the MAC pinned to it
    //     and its netdev guard chain added) and its configuration, the lease completed (and in
    //     lxc-user-nic mode the DHCP responder forked, which holds nothing
    //     before it reads a packet); any failure deletes what this call
    //     made. The lock is released on return.
    runtime()?.block_on(async {
        let sockets = wiring::Sockets::open(host, inside, nft, dhcp)?;
        let session = wiring::Session::new(sockets, target.as_ref(), &store, &request, caller.uid);
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

/// `-restore`: stages 6 to 12 for root, over every network with state.
fn restore(caller: &Caller) -> Result<Outcome, Failure> {
    // 6. Policy: root only; the networks as the policy defines them now
    //    (and the grants publications are judged by).
    let policy = request::restorable(caller)?;
    let worker = Worker::resolve(caller)?;
    // 7. No target: the networks of the host namespace we run in.
    let host_ns = netplumb::NetNs::current()?.id()?;
    // 8. State: every network with state in this host namespace, as the
    //    policy defines it or, once it left the policy, as its state
    //    recorded it (state that never held a lease has nothing to restore).
    let bridges = leases::Store::bridges(&host_ns)?;
    let mut networks = Vec::new();
    for bridge in bridges {
        let recorded = leases::Store::recorded_gateway(&host_ns, &bridge);
        let (request, store) = match recorded {
            Ok(recorded) => match request::restoring(&policy, &bridge, recorded) {
                Some(request) => {
                    let gateway = request.network.gateway;
                    let store = leases::Store::open(&host_ns, &bridge, gateway, caller.uid);
                    (request, store)
                }
                None => continue,
            },
            // Reported as that network's failure; the others go on.
            Err(e) => (request::unreadable(&policy, &bridge), Err(e)),
        };
        networks.push(Restorable { request, store });
    }
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
    privilege::drop_to(worker)?;
    // 11-12. Each network under its own lock (bounded wait), one after
    //     the other: collect, reconcile with the grants, re-create.
    runtime()?.block_on(async {
        let host = links::Kernel::new(netplumb::Netlink::from_socket(host)?);
        let filters = filters::Kernel::new(nft);
        let grants =
            |uid, network: &Network| policy.ports_of_owner(uid, &network.name, &SystemAccounts);
        let restored = wiring::restore_all(host, &filters, &networks, &grants).await;
        Ok(Outcome::Restored(restored))
    })
}

/// The single-threaded runtime the netlink work runs on.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Failure::internal(format!("start runtime: {e}")))
}

fn report(result: Result<Outcome, Failure>, json: bool) -> ExitCode {
    match result {
        Ok(outcome) => {
            let line = if json { outcome.json() } else { outcome.line() };
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
            if json {
                let _ = writeln!(std::io::stdout(), "{}", output::failure_json(&f));
            }
            let _ = writeln!(std::io::stderr(), "netsetgo: {f}");
            ExitCode::FAILURE
        }
    }
}
