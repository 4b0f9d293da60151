//! The undo record of a create: what it has made that would outlive it,
//! in the order it was made. When a later step fails, `create` undoes it,
//! last first (netlink deletions are asynchronous and `Drop` cannot await,
//! so the undo is explicit, with the lock still held).

use crate::leases::Lease;

/// One thing a create made.
pub(super) enum Made {
    /// The bridge, which this call created (the host end's index).
    Bridge(u32),
    /// The lease, reserved: its ports record, publications and guard go
    /// with it (`Session::teardown`).
    Lease(Lease),
    /// The veth pair (its host end's index).
    Pair(u32),
}

/// What a create has made so far, in the order it was made.
#[derive(Default)]
pub(super) struct Undo {
    made: Vec<Made>,
}

impl Undo {
    /// The call created the bridge of this index.
    pub(super) fn bridge(&mut self, index: u32) {
        self.made.push(Made::Bridge(index));
    }

    /// The call reserved `lease`.
    pub(super) fn lease(&mut self, lease: &Lease) {
        self.made.push(Made::Lease(lease.clone()));
    }

    /// The call made the pair whose host end has this index: the lease
    /// reserved before it is the lease of that host end (so that its
    /// teardown forgets the guard's elements of that index).
    pub(super) fn pair(&mut self, host_index: u32) {
        for made in &mut self.made {
            if let Made::Lease(lease) = made {
                lease.ifindex = host_index;
            }
        }
        self.made.push(Made::Pair(host_index));
    }

    /// What was made, last first: the order to undo it in.
    pub(super) fn last_first(self) -> impl Iterator<Item = Made> {
        self.made.into_iter().rev()
    }
}
