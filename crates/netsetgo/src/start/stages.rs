//! The order of a call, written once: [`run`] calls the [`Stages`] in the
//! order SECURITY.md gives them ("Order of operations", numbered as there),
//! each narrowing what the next may do. `main.rs` implements the stages
//! with the real system and runs exactly this; a unit test implements them
//! with a recording fake (over the [`System`](crate::system::System) fake
//! for the privilege stages) and proves the order, and that a failing
//! stage stops every later one.

use crate::cli::{Args, Mode};
use crate::error::Failure;

/// The stages of one call. What a stage hands the next is an associated
/// type, so no stage can run without what the earlier ones made.
pub trait Stages {
    /// Who called (stage 3).
    type Caller;
    /// What the call does, once the hook state is read (stage 5).
    type Action;
    /// The caller's flags within its grants, and whom to work as (stage 6).
    type Request;
    /// The target namespace, pinned, and the host's (stage 7).
    type Target;
    /// The network's root-only state, kept as fds (stage 8).
    type State;
    /// The sockets the work goes through (stage 9).
    type Sockets;
    /// What a call that got through did.
    type Outcome;
    /// How the process ends.
    type Exit;

    /// Stage 1, **sanitise** the process the caller built for us, before
    /// anything else looks at it: every resource limit, timers, signals,
    /// fds, environment, umask, working directory (requirement 19). Needs
    /// nothing but the process.
    fn sanitise(&mut self) -> Result<(), Failure>;
    /// Stage 2, **parse** the command line (bounded, Go `flag` syntax),
    /// after sanitising: the arguments are the caller's. `Err` is how a
    /// call that ends here ends, already answered: help, or a usage error.
    fn parse(&mut self) -> Result<Args, Self::Exit>;
    /// Stage 3, **identify**: are we really privileged (the initial user
    /// namespace, no no_new_privs, setuid root), and who is the caller.
    fn identify(&mut self) -> Result<Self::Caller, Failure>;
    /// Stage 4, **restrict**: once the caller is known and before anything
    /// is opened on its behalf: undo the scheduling and priorities the
    /// caller chose, then keep only the capabilities the setup needs.
    fn restrict(&mut self, args: &Args) -> Result<(), Failure>;
    /// `-restore` (root only): stages 6 to 12 over every network with
    /// state, instead of one request's.
    fn restore(&mut self, caller: &Self::Caller) -> Result<Self::Outcome, Failure>;
    /// Stage 5, **hook state**: in `-oci-hook` mode the state on stdin,
    /// read by a child that holds nothing; what the call does.
    fn hook_state(&mut self, args: &Args, caller: &Self::Caller) -> Result<Self::Action, Failure>;
    /// Stage 6, **policy**: the caller's flags against its grants in the
    /// root-owned policy, and the identity to work as, before anything has
    /// been opened on the caller's behalf.
    fn policy(
        &mut self,
        args: &Args,
        caller: &Self::Caller,
        action: &Self::Action,
    ) -> Result<Self::Request, Failure>;
    /// Stage 7, **target**: the pid resolved once into a pinned namespace
    /// fd the caller owns and that is not the host's; the pid is not used
    /// again.
    fn open_target(&mut self, caller: &Self::Caller) -> Result<Self::Target, Failure>;
    /// Stage 8, **state**: the root-only state of this host namespace's
    /// network, opened as root.
    fn state(
        &mut self,
        target: &Self::Target,
        request: &mut Self::Request,
        caller: &Self::Caller,
    ) -> Result<Self::State, Failure>;
    /// Stage 9, **sockets**: the last privileged opens, held as fds across
    /// the drop.
    fn open_sockets(
        &mut self,
        request: &Self::Request,
        action: &Self::Action,
        target: &Self::Target,
    ) -> Result<Self::Sockets, Failure>;
    /// Stage 10, **drop**: the system user, CAP_NET_ADMIN alone; from here
    /// on the caller can neither signal nor trace its helper.
    fn drop_privileges(&mut self, request: &Self::Request) -> Result<(), Failure>;
    /// Stages 11-12, **locked work**: the call's work under the network's
    /// lock; any failure undoes what this call made.
    fn locked_work(
        &mut self,
        work: Work<Self>,
        caller: Self::Caller,
        action: Self::Action,
    ) -> Result<Self::Outcome, Failure>;
    /// Stage 13, **report**: one audit record and one line out, once the
    /// lock is released (then, in lxc-user-nic mode, the DHCP responder
    /// and the lease's reaper forked); the exit status.
    fn report(&mut self, result: Result<Self::Outcome, Failure>) -> Self::Exit;
}

/// What stages 6 to 9 made, handed to the locked work.
pub struct Work<S: Stages + ?Sized> {
    /// The sockets (9).
    pub sockets: S::Sockets,
    /// The target (7).
    pub target: S::Target,
    /// The state (8).
    pub state: S::State,
    /// The request (6).
    pub request: S::Request,
}

/// One call, stage by stage: what `main` runs.
///
/// Stage 1 runs in this small frame and the rest in `parsed`'s, which
/// is never inlined here: under a caller's hard RLIMIT_STACK that stage 1
/// cannot raise (16 KiB, of which the kernel's randomised stack top takes
/// up to 8), the refusal must be reported before a frame holding every
/// later stage's locals (several KiB) is entered.
pub fn run<S: Stages>(stages: &mut S) -> S::Exit {
    match stages.sanitise() {
        Ok(()) => parsed(stages),
        Err(f) => stages.report(Err(f)), // 1
    }
}

/// Stages 2 to 13.
#[inline(never)]
fn parsed<S: Stages>(stages: &mut S) -> S::Exit {
    let args = match stages.parse() {
        Ok(args) => args, // 2
        Err(exit) => return exit,
    };
    let result = privileged(stages, &args); // 3-12
    stages.report(result) // 13
}

/// Stages 3 to 12.
fn privileged<S: Stages>(stages: &mut S, args: &Args) -> Result<S::Outcome, Failure> {
    let caller = stages.identify()?; // 3
    stages.restrict(args)?; // 4
    if args.mode == Mode::Restore {
        return stages.restore(&caller);
    }
    let action = stages.hook_state(args, &caller)?; // 5
    let mut request = stages.policy(args, &caller, &action)?; // 6
    let target = stages.open_target(&caller)?; // 7
    let state = stages.state(&target, &mut request, &caller)?; // 8
    let sockets = stages.open_sockets(&request, &action, &target)?; // 9
    stages.drop_privileges(&request)?; // 10
    let work = Work {
        sockets,
        target,
        state,
        request,
    };
    stages.locked_work(work, caller, action) // 11-12
}

#[cfg(test)]
mod tests {
    use nix::unistd::{getegid, geteuid};

    use super::*;
    use crate::cli;
    use crate::privilege::{self, PacketSocket, Worker};
    use crate::system::fake::{Call, Recording};

    /// Stages that mark where each begins in a recording of system calls
    /// and fail where told; sanitise, restrict and drop are the real
    /// privilege functions over that recording.
    struct Fake {
        sys: Recording,
        args: Args,
        fail: Option<&'static str>,
    }

    impl Fake {
        fn new(args: &[&str], fail: Option<&'static str>) -> Fake {
            let args = cli::parse(args.iter().map(|a| a.as_bytes())).unwrap();
            Fake {
                sys: Recording::new(),
                args,
                fail,
            }
        }

        fn stage(&self, name: &'static str) -> Result<(), Failure> {
            self.sys.push(Call::Stage(name));
            match self.fail == Some(name) {
                true => Err(Failure::internal(format!("{name} failed"))),
                false => Ok(()),
            }
        }

        /// The stages that began, in order.
        fn stages(&self) -> Vec<&'static str> {
            let calls = self.sys.calls();
            calls
                .iter()
                .filter_map(|c| match c {
                    Call::Stage(name) => Some(*name),
                    _ => None,
                })
                .collect()
        }
    }

    impl Stages for Fake {
        type Caller = ();
        type Action = ();
        type Request = ();
        type Target = ();
        type State = ();
        type Sockets = ();
        type Outcome = ();
        type Exit = Result<(), Failure>;

        fn sanitise(&mut self) -> Result<(), Failure> {
            self.stage("sanitise")?;
            privilege::sanitize(&self.sys)
        }
        fn parse(&mut self) -> Result<Args, Self::Exit> {
            self.stage("parse").map_err(Err)?;
            Ok(self.args.clone())
        }
        fn identify(&mut self) -> Result<(), Failure> {
            self.stage("identify")
        }
        fn restrict(&mut self, _: &Args) -> Result<(), Failure> {
            self.stage("restrict")?;
            privilege::restrict(&self.sys, PacketSocket::None)
        }
        fn restore(&mut self, _: &()) -> Result<(), Failure> {
            self.stage("restore")
        }
        fn hook_state(&mut self, _: &Args, _: &()) -> Result<(), Failure> {
            self.stage("hook state")
        }
        fn policy(&mut self, _: &Args, _: &(), _: &()) -> Result<(), Failure> {
            self.stage("policy")
        }
        fn open_target(&mut self, _: &()) -> Result<(), Failure> {
            self.stage("target")
        }
        fn state(&mut self, _: &(), _: &mut (), _: &()) -> Result<(), Failure> {
            self.stage("state")
        }
        fn open_sockets(&mut self, _: &(), _: &(), _: &()) -> Result<(), Failure> {
            self.stage("sockets")
        }
        fn drop_privileges(&mut self, _: &()) -> Result<(), Failure> {
            self.stage("drop")?;
            // The ids this test runs as, which drop_to's last check finds.
            let worker = Worker {
                uid: geteuid().as_raw(),
                gid: getegid().as_raw(),
            };
            privilege::drop_to(&self.sys, worker)
        }
        fn locked_work(&mut self, _: Work<Self>, _: (), _: ()) -> Result<(), Failure> {
            self.stage("locked work")
        }
        fn report(&mut self, result: Result<(), Failure>) -> Self::Exit {
            self.sys.push(Call::Stage("report"));
            result
        }
    }

    const WIRE: [&str; 12] = [
        "sanitise",
        "parse",
        "identify",
        "restrict",
        "hook state",
        "policy",
        "target",
        "state",
        "sockets",
        "drop",
        "locked work",
        "report",
    ];
    const RESTORE: [&str; 6] = [
        "sanitise", "parse", "identify", "restrict", "restore", "report",
    ];

    /// Where `call` is in `calls`.
    fn at(calls: &[Call], call: Call) -> usize {
        calls.iter().position(|c| *c == call).expect("called")
    }

    #[test]
    fn a_call_runs_the_stages_in_securitys_order() {
        let mut fake = Fake::new(&["-pid", "42", "-publish", "tcp:8080:80"], None);
        run(&mut fake).unwrap();
        assert_eq!(fake.stages(), WIRE);
        let calls = fake.sys.calls();
        let stage = |name| at(&calls, Call::Stage(name));
        // Sanitising is all done before the arguments are read, and
        // nothing privileged happens before the caller is identified.
        let limits = calls.iter().position(|c| matches!(c, Call::SetRlimit(_)));
        assert_eq!(limits, Some(stage("sanitise") + 1), "{calls:?}");
        assert!(at(&calls, Call::ChdirRoot) < stage("parse"));
        assert!(at(&calls, Call::ResetTiming) > stage("identify"));
        // Restricted (the setup's capabilities, root's group) before the
        // hook state is read and anything is opened.
        let setup = calls
            .iter()
            .position(|c| matches!(c, Call::SetCaps(set) if set.len() > 1))
            .unwrap();
        assert!(stage("restrict") < setup && setup < stage("hook state"));
        assert!(at(&calls, Call::RootEgid) < stage("hook state"));
        // Dropped after the last privileged open, before the work: the
        // bounding set, the ids, CAP_NET_ADMIN alone, sealed.
        let ids = at(
            &calls,
            Call::BecomeIds(geteuid().as_raw(), getegid().as_raw()),
        );
        assert!(stage("sockets") < at(&calls, Call::ClearBounding));
        assert!(at(&calls, Call::ClearBounding) < ids);
        let net_admin = Call::SetCaps(vec![caps::Capability::CAP_NET_ADMIN]);
        assert!(ids < at(&calls, net_admin.clone()));
        assert!(at(&calls, Call::NoNewPrivs) < stage("locked work"));
        let last_caps = calls.iter().rfind(|c| matches!(c, Call::SetCaps(_)));
        assert_eq!(last_caps, Some(&net_admin));
    }

    #[test]
    fn restore_runs_the_start_then_its_own_stages() {
        let mut fake = Fake::new(&["-restore"], None);
        run(&mut fake).unwrap();
        assert_eq!(fake.stages(), RESTORE);
    }

    #[test]
    fn a_failing_stage_stops_every_later_one() {
        for (args, order) in [
            (&["-pid", "42"][..], &WIRE[..]),
            (&["-restore"][..], &RESTORE[..]),
        ] {
            for (i, failing) in order.iter().enumerate().filter(|(_, s)| **s != "report") {
                let mut fake = Fake::new(args, Some(failing));
                let result = run(&mut fake);
                let failure = result.unwrap_err().to_string();
                assert!(failure.contains(failing), "{failing}: {failure}");
                // A call that ends at parsing has answered there; any other
                // failure is reported, and nothing else runs.
                let mut expected = order[..=i].to_vec();
                if *failing != "parse" {
                    expected.push("report");
                }
                assert_eq!(fake.stages(), expected, "{failing} failed");
            }
        }
    }
}
