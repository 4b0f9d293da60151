//! nf_tables batches (`NFNL_MSG_BATCH_BEGIN` .. `NFNL_MSG_BATCH_END`): built
//! message by message, committed atomically, optionally tied to the ruleset
//! generation they were planned on (`NFNL_BATCH_GENID`), with the
//! transaction loop that plans again when the kernel says `ERESTART`. The
//! messages for each kernel object are built by the methods in
//! [`objects`](super::objects).

use std::collections::HashSet;

use super::proto::{Family, NFPROTO_UNSPEC};
use super::socket::{Nftables, Wait};
use super::wire::{
    error_code, kernel_error, messages, nft_type, Attrs, Failure, Message, NFNL_BATCH_GENID,
    NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NLMSG_ERROR, NLM_F_ACK,
    NLM_F_REQUEST,
};
use crate::error::{Error, Result, Step};

/// How often a batch is planned again when the ruleset changed under it.
const ATTEMPTS: usize = 16;

/// What `EEXIST` or `ENOENT` from the kernel means for a message of a
/// batch planned on the state read at one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IfRaced {
    /// An error like any other: the call fails.
    Fail,
    /// A concurrent caller got there first: read the state again and plan
    /// the batch anew.
    Replan,
}

/// One nf_tables batch under construction.
pub(super) struct Batch<'a> {
    nft: &'a Nftables,
    family: Family,
    buf: Vec<u8>,
    first: u32,
    what: String,
    parts: Vec<Part>,
    sets: u32,
}

/// A message of a batch, with what to say when the kernel refuses it.
struct Part {
    seq: u32,
    step: Step,
    object: String,
    /// What `EEXIST`/`ENOENT` here means.
    if_raced: IfRaced,
}

/// A refused batch.
pub(super) struct BatchFailure {
    pub(super) error: Error,
    /// Worth reading the state again and rebuilding the batch.
    pub(super) retry: bool,
}

impl<'a> Batch<'a> {
    /// Starts a batch on objects of `family`. With `genid`, the kernel
    /// applies it only while the ruleset is still at that generation.
    pub(super) fn new(
        nft: &'a Nftables,
        family: Family,
        genid: Option<u32>,
        what: String,
    ) -> Batch<'a> {
        let first = nft.next_seq();
        let mut begin = Message::new(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST | NLM_F_ACK,
            first,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        if let Some(genid) = genid {
            begin.attrs().be32(NFNL_BATCH_GENID, genid);
        }
        Batch {
            nft,
            family,
            buf: begin.finish(),
            first,
            what,
            parts: Vec::new(),
            sets: 0,
        }
    }

    /// Appends nf_tables message `msg` with `flags` (besides REQUEST and
    /// ACK). `step` and `object` say what failed if the kernel refuses it,
    /// `if_raced` what its `EEXIST` or `ENOENT` means.
    pub(super) fn add(
        &mut self,
        msg: u16,
        flags: u16,
        step: Step,
        object: String,
        if_raced: IfRaced,
        attrs: impl FnOnce(&mut Attrs<'_>),
    ) {
        let seq = self.nft.next_seq();
        let mut message = Message::new(
            nft_type(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            self.family.nfproto(),
            0,
        );
        attrs(&mut message.attrs());
        self.buf.extend_from_slice(&message.finish());
        self.parts.push(Part {
            seq,
            step,
            object,
            if_raced,
        });
    }

    /// A set ID (`NFTA_SET_ID`) not used before in this batch.
    pub(super) fn next_set_id(&mut self) -> u32 {
        self.sets += 1;
        self.sets
    }

    /// Sends the batch and reads every answer to it. The kernel handles a
    /// batch while it is being sent, so all answers are queued by the time
    /// the first one can be read.
    pub(super) fn commit(mut self) -> std::result::Result<(), BatchFailure> {
        let last = self.nft.next_seq();
        let end = Message::new(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST | NLM_F_ACK,
            last,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.buf.extend_from_slice(&end.finish());

        let whole = |f: Failure, what: &str| BatchFailure {
            error: f.into_error(Step::NftCommit, what),
            retry: false,
        };
        self.nft.send(&self.buf).map_err(|f| whole(f, &self.what))?;
        let mut datagrams = vec![self
            .nft
            .recv(Wait::UpToTimeout)
            .map_err(|f| whole(f, &self.what))?];
        while let Some(buf) = self.nft.recv(Wait::No).map_err(|f| whole(f, &self.what))? {
            datagrams.push(Some(buf));
        }

        let mut acked = HashSet::new();
        let mut refused: Option<(u32, i32)> = None;
        for buf in datagrams.iter().flatten() {
            for reply in messages(buf).map_err(|f| whole(f, &self.what))? {
                let ours = if self.first <= last {
                    (self.first..=last).contains(&reply.seq)
                } else {
                    reply.seq >= self.first || reply.seq <= last
                };
                if reply.kind != NLMSG_ERROR || !ours {
                    continue;
                }
                match error_code(reply.body).map_err(|f| whole(f, &self.what))? {
                    0 => {
                        acked.insert(reply.seq);
                    }
                    errno => {
                        refused.get_or_insert((reply.seq, errno));
                    }
                }
            }
        }
        if let Some((seq, errno)) = refused {
            // ERESTART: the generation moved on since we looked. It refuses
            // the batch as a whole, but when the kernel replayed the batch
            // to load a module (nft_masq on first use), Debian's 6.1 answers
            // it on the message that needed the module.
            let moved = errno == libc::ERESTART;
            return Err(match self.parts.iter().find(|p| p.seq == seq) {
                Some(part) => BatchFailure {
                    error: kernel_error(part.step, part.object.clone(), errno),
                    retry: moved
                        || part.if_raced == IfRaced::Replan
                            && (errno == libc::EEXIST || errno == libc::ENOENT),
                },
                None => BatchFailure {
                    error: kernel_error(Step::NftCommit, self.what.clone(), errno),
                    retry: moved,
                },
            });
        }
        if self.parts.iter().all(|p| acked.contains(&p.seq)) {
            Ok(())
        } else {
            Err(whole(
                Failure::malformed("not every message of the batch was acknowledged"),
                &self.what,
            ))
        }
    }

    /// Commits a batch that is not tied to a generation: a failure is final.
    pub(super) fn commit_once(self) -> Result<()> {
        self.commit().map_err(|f| f.error)
    }
}

impl Nftables {
    /// Reads the ruleset generation and lets `plan` build a batch from the
    /// state it reads; commits it tied to that generation. If the ruleset
    /// changed in between, the kernel refuses the batch and we start over,
    /// at most ATTEMPTS times. Returns whether a batch was committed.
    pub(super) fn transact<'s>(
        &'s self,
        what: &str,
        mut plan: impl FnMut(u32) -> Result<Option<Batch<'s>>>,
    ) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let Some(batch) = plan(self.generation()?)? else {
                return Ok(false);
            };
            match batch.commit() {
                Ok(()) => return Ok(true),
                Err(f) if f.retry => continue,
                Err(f) => return Err(f.error),
            }
        }
        Err(kernel_error(
            Step::NftCommit,
            format!("{what}: the ruleset kept changing"),
            libc::ERESTART,
        ))
    }
}
