//! netsetgo: a setuid-root helper that wires a rootless container's network
//! namespace to a bridge on the host.
//!
//! Theory of operation. `main` runs [`stages::run`], which calls the
//! stages in the order SECURITY.md gives them (and is unit-tested for it);
//! each narrows what the next may do. Here they are implemented with the
//! real system, each saying why it needs what it holds.

#![deny(missing_docs)]
#![deny(unreachable_pub)]
// The unit-test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

use std::ffi::{c_char, c_int};
use std::io::Write;
use std::os::unix::ffi::OsStringExt;

use netplumb::{NetNs, NsId};
use netsetgo::cli::{self, Args, Mode, Usage};
use netsetgo::dhcp::responder::{self, Responder};
use netsetgo::error::Failure;
use netsetgo::leases::{Claimed, Store};
use netsetgo::output::{self, Outcome};
use netsetgo::policy::{Network, SystemAccounts};
use netsetgo::privilege::{self, Caller, PacketSocket, Worker};
use netsetgo::reaper::Reaper;
use netsetgo::request::{Intent, Request};
use netsetgo::stages::{self, Stages, Work};
use netsetgo::system::{Kernel, System};
use netsetgo::wiring::{runtime, Restorable, Sockets};
use netsetgo::{audit, filters, links, nat, oci, request, target, wiring};

/// The exit status of a call.
type ExitCode = u8;
/// The call did what it was asked (or printed the help).
const SUCCESS: ExitCode = 0;
/// The call failed or was refused.
const FAILURE: ExitCode = 1;
/// The command line was not understood.
const USAGE_ERROR: ExitCode = 2;

/// The entry point glibc's start-up calls. `no_main`: Rust's own start-up
/// (`lang_start`) does not run, since stage 1 redoes or undoes all of it:
/// it would poll fds 0-2 (stage 1 opens what is closed), read
/// /proc/self/maps and map an alternate stack for a SIGSEGV handler
/// (stage 1 resets every catchable signal to its default) and ignore
/// SIGPIPE (so does stage 1). The arguments are read through
/// `std::env::args_os`, which std records when glibc runs its
/// initialisers, before this.
#[cfg_attr(not(test), no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    let exit = stages::run(&mut Helper {
        sys: Kernel,
        call: None,
        format: Format::Line,
        responder: None,
        reaper: None,
    });
    // What lang_start's clean-up did: what is left of stdout goes out.
    let _ = std::io::stdout().flush();
    c_int::from(exit)
}

/// The stages with the real system; [`stages::run`] puts them in order, and
/// [`Stages`] says why each is where it is.
struct Helper {
    sys: Kernel,
    /// What the audit record says of this call, once its arguments are
    /// parsed; the stages fill it in as they learn who, which pid and
    /// which network, so that a refusal is audited with everything known
    /// by then.
    call: Option<Call>,
    format: Format,
    /// The DHCP responder a `create` in lxc-user-nic mode bound, to be
    /// forked once the line is out.
    responder: Option<Responder>,
    /// The reaper of the lease such a `create` made, to be forked after
    /// the responder.
    reaper: Option<Reaper>,
}

impl Helper {
    fn call(&mut self) -> &mut Call {
        self.call.as_mut().expect("the arguments are parsed")
    }
}

/// What one call did, for the audit record.
struct Call {
    uid: u32,
    pid: Option<u32>,
    action: &'static str,
    network: Option<String>,
}

/// What this call does, once the hook state (if any) is read; the pid it
/// names, if any, is the call's.
enum Action {
    Wire { container: Option<String> },
    Delete,
    Check,
    Release { container: String },
    Unpublish,
}

/// The target namespace, if the call names one, and the host's (open, to
/// come back to after opening a socket inside the target).
struct Target {
    host: NsId,
    home: NetNs,
    netns: Option<NetNs>,
}

impl Stages for Helper {
    type Caller = Caller;
    type Action = Action;
    type Request = (Request, Worker);
    type Target = Target;
    type State = Store;
    type Sockets = Opened;
    type Outcome = Outcome;
    type Exit = ExitCode;

    /// A failure is audited as the start's: nothing else is known yet.
    fn sanitise(&mut self) -> Result<(), Failure> {
        privilege::sanitize(&self.sys).inspect_err(|f| {
            let uid = nix::unistd::getuid().as_raw();
            audit::record(uid, None, "start", None, Err(f));
        })
    }

    /// `Err` is the exit status: help (0), or a usage error (2, audited as
    /// the refusal it is).
    fn parse(&mut self) -> Result<Args, ExitCode> {
        match cli::parse(std::env::args_os().skip(1).map(OsStringExt::into_vec)) {
            Ok(args) => {
                self.format = Format::of(&args);
                self.call = Some(Call {
                    uid: nix::unistd::getuid().as_raw(),
                    pid: args.pid,
                    action: match args.mode {
                        Mode::Create => "create",
                        Mode::Delete => "delete",
                        Mode::Check => "check",
                        Mode::OciHook => "hook",
                        Mode::Restore => "restore",
                        Mode::Unpublish => "unpublish",
                    },
                    network: None,
                });
                Ok(args)
            }
            Err(Usage::Help) => {
                print!("{}", cli::USAGE);
                Err(SUCCESS)
            }
            Err(Usage::Error(e)) => {
                let refusal = Failure::refused(format!("usage: {e}"));
                let uid = nix::unistd::getuid().as_raw();
                audit::record(uid, None, "usage", None, Err(&refusal));
                eprint!("netsetgo: {e}\n{}", cli::USAGE);
                Err(USAGE_ERROR)
            }
        }
    }

    fn identify(&mut self) -> Result<Caller, Failure> {
        Caller::identify()
    }

    /// CAP_NET_RAW is kept only for lxc-user-nic's create, whose DHCP
    /// responder's packet socket stage 9 opens.
    fn restrict(&mut self, args: &Args) -> Result<(), Failure> {
        let packet = match args.nic {
            Some(cli::Nic::Create { .. }) => PacketSocket::Dhcp,
            _ => PacketSocket::None,
        };
        privilege::restrict(&self.sys, packet)
    }

    fn restore(&mut self, caller: &Caller) -> Result<Outcome, Failure> {
        restore(&self.sys, caller)
    }

    /// Read and parsed by a child that has become the caller holding
    /// nothing, with a size bound and a deadline. Names the call's action
    /// and pid.
    fn hook_state(&mut self, args: &Args, caller: &Caller) -> Result<Action, Failure> {
        Ok(match args.mode {
            Mode::Create => Action::Wire { container: None },
            Mode::Delete => Action::Delete,
            Mode::Check => Action::Check,
            Mode::Unpublish => Action::Unpublish,
            Mode::Restore => unreachable!("restored at stage 4"),
            Mode::OciHook => match oci::read_unprivileged(caller)? {
                oci::Hook::Wire { pid, id } => {
                    self.call().action = "create";
                    self.call().pid = Some(pid);
                    Action::Wire {
                        container: Some(id),
                    }
                }
                oci::Hook::Release { id } => {
                    self.call().action = "release";
                    Action::Release { container: id }
                }
            },
        })
    }

    /// The one place that decides what a call may publish: only a wiring
    /// call publishes. The identity to work as later is looked up now, so
    /// that a machine without it refuses before anything is opened. Names
    /// the call's network.
    fn policy(
        &mut self,
        args: &Args,
        caller: &Caller,
        action: &Action,
    ) -> Result<(Request, Worker), Failure> {
        let intent = match action {
            Action::Wire { .. } => Intent::Wire,
            Action::Check => Intent::Check,
            Action::Delete | Action::Release { .. } | Action::Unpublish => Intent::Remove,
        };
        // /etc/passwd is read once, for the grants and the worker alike.
        let accounts = SystemAccounts::default();
        let request = request::resolve(args, caller, intent, &accounts)?;
        self.call().network = Some(request.network.name.clone());
        let worker = Worker::resolve(caller, &accounts)?;
        Ok((request, worker))
    }

    /// With the capabilities restricted: CAP_SYS_PTRACE opens the ns file.
    fn open_target(&mut self, caller: &Caller) -> Result<Target, Failure> {
        let home = NetNs::current()?;
        let host = home.id()?;
        let netns = self
            .call()
            .pid
            .map(|pid| target::open(pid, caller, &host))
            .transpose()?;
        Ok(Target { host, home, netns })
    }

    /// A network that left the policy (a -delete or poststop of one's own
    /// interface there) is known by the subnet its state recorded, which
    /// the request learns here; without state there is nothing of the
    /// caller's on it.
    fn state(
        &mut self,
        target: &Target,
        (request, _): &mut (Request, Worker),
        caller: &Caller,
    ) -> Result<Store, Failure> {
        if request.known == request::Known::Recorded {
            request.network.gateway =
                Store::recorded_gateway(&target.host, &request.network.bridge)?.ok_or_else(
                    || {
                        Failure::refused(format!(
                            "no interface of yours from network {} is in that container",
                            request.network.name
                        ))
                    },
                )?;
        }
        Store::open(
            &target.host,
            &request.network.bridge,
            request.network.gateway,
            caller.uid,
        )
    }

    /// Netlink inside the target (CAP_SYS_ADMIN's only use: setns for one
    /// socket()), in the host, and nf_tables for our own tables
    /// (masquerading, published ports, the guard, and the garbage
    /// collection of other leases' publications), with forwarding switched
    /// on for nat=yes networks and for a call that publishes ports
    /// (/proc/sys is root's). In lxc-user-nic mode, the DHCP responder's
    /// packet socket (CAP_NET_RAW's only use; unbound, it receives nothing
    /// yet), opened for the worker.
    fn open_sockets(
        &mut self,
        (request, worker): &(Request, Worker),
        action: &Action,
        target: &Target,
    ) -> Result<Opened, Failure> {
        let inside = target
            .netns
            .as_ref()
            .map(|netns| netns.netlink_socket_from(&target.home))
            .transpose()?;
        let host = netplumb::Netlink::open_socket()?;
        let nft = nat::prepare(&request.network, &request.publish)?;
        let claimed = match request.publish.is_empty() {
            true => None,
            false => Some(Claimed::open(&target.host)?),
        };
        let dhcp = match action {
            Action::Wire { .. } if request.by_dhcp() => {
                Some(Responder::open(worker.uid, worker.gid)?)
            }
            _ => None,
        };
        Ok(Opened {
            host,
            inside,
            nft,
            claimed,
            dhcp,
        })
    }

    /// The system user _netsetgo, which the caller can neither signal nor
    /// trace, holding CAP_NET_ADMIN alone.
    fn drop_privileges(&mut self, (_, worker): &(Request, Worker)) -> Result<(), Failure> {
        privilege::drop_to(&self.sys, *worker)
    }

    /// The netlink work under the network's lock (bounded wait): the host
    /// addresses and ports to publish checked (local, no host socket on
    /// them), the bridge, garbage collection (of leases, and their
    /// publications and guard elements), quota, address, write-ahead lease
    /// and ports record, the publications, the pair (peer with its
    /// deterministic MAC; before the host end is up: its bridge port
    /// isolated on isolate=yes networks, and on guard=yes networks learning
    /// and unknown unicast off, link-local frames through prerouting, the
    /// MAC pinned to it and its guard elements added) and its configuration, the lease completed (and in
    /// lxc-user-nic mode the DHCP responder's socket bound, kept for stage
    /// 13); any failure deletes what this call made. The lock is released
    /// on return. A create in lxc-user-nic mode keeps the network's state
    /// and definition for the lease's reaper, forked at stage 13.
    fn locked_work(
        &mut self,
        work: Work<Self>,
        caller: Caller,
        action: Action,
    ) -> Result<Outcome, Failure> {
        let Work {
            sockets: opened,
            target,
            state: store,
            request: (request, _),
        } = work;
        let responder = &mut self.responder;
        let outcome = runtime()?.block_on(async {
            let mut sockets = Sockets::open(opened.host, opened.inside, opened.nft, opened.dhcp)?;
            if let Some(mark) = opened.claimed {
                sockets.filters.claim_by(mark);
            }
            let session =
                wiring::Session::new(sockets, target.netns.as_ref(), &store, &request, caller.uid);
            match action {
                Action::Wire { container, .. } => {
                    let wired = session.create(container).await?;
                    *responder = session.into_responder();
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
                Action::Unpublish => session.unpublish().await,
            }
        })?;
        if let Outcome::Nic(wired) = &outcome {
            let pid = self.call().pid;
            self.reaper = Reaper::new(store, request, caller.uid, pid, wired);
        }
        Ok(outcome)
    }

    /// The audit record (a start that failed sanitising was audited there)
    /// and the output; then, in lxc-user-nic mode, the DHCP responder and
    /// the lease's reaper.
    fn report(&mut self, result: Result<Outcome, Failure>) -> ExitCode {
        if let Some(call) = &self.call {
            audit_call(call, &result);
        }
        let exit = report(result, self.format);
        match (self.responder.take(), &self.call) {
            (Some(responder), Some(call)) => {
                start_children(responder, self.reaper.take(), call, exit)
            }
            _ => exit,
        }
    }
}

/// Stage 13, **Report**: last, in lxc-user-nic mode: the DHCP responder
/// bound at stage 12, then the lease's reaper, are forked only now that
/// the line is written and /dev/null is on fds 0-2 (fds 3 and up were
/// closed at stage 1), so neither holds a descriptor of the caller's: the
/// caller's read of our output ends when we exit, not when a child first
/// runs (see `dhcp::responder`). Both exist only after a create that
/// succeeded. A failure here comes after the line that reported success:
/// it is audited; the responder's makes the exit status non-zero (stderr
/// is /dev/null by then), the reaper's does not (the container has its
/// network; only its release waits for the next call's garbage
/// collection, as before the reaper existed). Nothing is forked if
/// /dev/null cannot be put on fds 0-2 (a child would hold the caller's).
// Never inlined into `main`: its frame is on the stack of stage 1's
// refusal too, which must fit in 8 KiB (see `stages::run`).
#[inline(never)]
fn start_children(
    responder: Responder,
    reaper: Option<Reaper>,
    call: &Call,
    exit: ExitCode,
) -> ExitCode {
    // A caller that stopped reading loses the line; the responder still
    // serves the interface, as when the line was read.
    let _ = std::io::stdout().flush();
    let failed = |f: &Failure| {
        audit::record(
            call.uid,
            call.pid,
            call.action,
            call.network.as_deref(),
            Err(f),
        )
    };
    if let Err(f) = responder::null_stdio() {
        failed(&f);
        return FAILURE;
    }
    let mut exit = exit;
    if let Err(f) = responder.start() {
        failed(&f);
        exit = FAILURE;
    }
    // Forked even when the responder was not: the lease exists either way.
    if let Some(Err(f)) = reaper.map(Reaper::start) {
        failed(&f);
    }
    exit
}

/// The sockets stage 9 opened, before the runtime adopts them.
struct Opened {
    host: netplumb::RawSocket,
    inside: Option<netplumb::RawSocket>,
    nft: netplumb::Nftables,
    /// The host's claims mark, for a call that publishes.
    claimed: Option<Claimed>,
    dhcp: Option<Responder>,
}

/// Stage 13, **Report**: first half: one audit record, fed from the result
/// (`action=publish` for a `-publish` added to a container wired already). The
/// network's lock is long released, so a caller that never reads our
/// output stalls nobody but itself. A restore that could not restore
/// everything is audited as the failure it is.
fn audit_call(call: &Call, result: &Result<Outcome, Failure>) {
    let detail = result.as_ref().map(Outcome::line);
    let incomplete = result.as_ref().ok().and_then(Outcome::failure);
    // A -publish added to a container wired already made no interface.
    let action = match result {
        Ok(Outcome::Wired { wired, .. }) if call.action == "create" && wired.existing => "publish",
        _ => call.action,
    };
    audit::record(
        call.uid,
        call.pid,
        action,
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
    let claimed = Claimed::open(&host_ns)?;
    // 10. Drop: the system user (uid 0 without one), CAP_NET_ADMIN alone.
    privilege::drop_to(sys, worker)?;
    // 11-12. Each network under its own lock (bounded wait), one after
    //     the other: collect, reconcile with the grants, re-create.
    runtime()?.block_on(async {
        let host = links::Kernel::new(netplumb::Netlink::from_socket(host)?);
        let filters = filters::Kernel::restoring(nft, claimed)?;
        let grants = |uid, network: &Network| policy.ports_of_owner(uid, &network.name, &accounts);
        let (restored, upkeep) = wiring::restore_all(host, &filters, &networks, &grants).await;
        Ok(Outcome::Restored(restored, upkeep))
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
                    FAILURE
                }
                None => SUCCESS,
            }
        }
        Err(f) => {
            if let Format::Json = format {
                let _ = writeln!(std::io::stdout(), "{}", output::failure_json(&f));
            }
            let _ = writeln!(std::io::stderr(), "netsetgo: {f}");
            FAILURE
        }
    }
}
