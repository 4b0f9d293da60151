//! The undo guard of a create: what it has made that would outlive it,
//! recorded as it is made and undone in reverse when the call fails.
//!
//! Netlink deletions are asynchronous and `Drop` cannot await, so the undo
//! is explicit: [`Undo::settle`] takes the call's result, and on failure
//! runs the undo before the error is returned (the lock still held).

use crate::filters::Filters;
use crate::leases::{Lease, Ledger};
use crate::links::Links;

use super::Session;

/// What a create has made so far, in the order it was made.
#[derive(Default)]
pub(super) struct Undo {
    /// The bridge, if this call created it.
    bridge: Option<u32>,
    /// The lease, reserved: its ports record, publications and guard go
    /// with it (`Session::teardown`).
    lease: Option<Lease>,
    /// The host end of the veth pair.
    pair: Option<u32>,
}

impl Undo {
    /// The call created the bridge of this index.
    pub(super) fn bridge(&mut self, index: u32) {
        self.bridge = Some(index);
    }

    /// The call reserved `lease`.
    pub(super) fn lease(&mut self, lease: &Lease) {
        self.lease = Some(lease.clone());
    }

    /// The call made the pair whose host end has this index.
    pub(super) fn pair(&mut self, host_index: u32) {
        self.pair = Some(host_index);
    }

    /// Keeps everything if `result` is a success (the call commits);
    /// otherwise undoes, in reverse, what was made, each step tried even
    /// if an earlier one failed (their failures are not reported: the
    /// failure that started the undo is what the caller is told; a lease
    /// whose teardown failed is left for the next garbage collection).
    pub(super) async fn settle<T, E, L: Links, F: Filters>(
        self,
        result: Result<T, E>,
        session: &Session<'_, L, F>,
        ledger: &mut Ledger<'_>,
    ) -> Result<T, E> {
        if result.is_err() {
            let host = &session.sockets.host;
            if let Some(index) = self.pair {
                let _ = host.delete_link(index).await;
            }
            if let Some(lease) = &self.lease {
                let _ = session.teardown(ledger, lease);
            }
            if let Some(index) = self.bridge {
                let _ = host.delete_link(index).await;
            }
        }
        result
    }
}
