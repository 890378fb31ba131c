//! What the owner of a folder does for its clients, and what a client does with the owner's
//! notices: changes to this process's tiers under the per-key ordering rule of
//! `ordering.rs`, like its own writes.

use super::Inner;
use crate::process::{self, DiskTier, Ticket};
use crate::stats::Counters;

impl Inner {
    /// A client's record, stored like an insert of this process: in the key's order, in both
    /// tiers (the memory tier drops its value, which this process cannot decode without its
    /// type), and sent to the other clients.
    pub(crate) fn apply_put(&self, disk: &DiskTier, digest: u128, record: Vec<u8>) -> Ticket {
        let reservation = disk.reserve(record.len());
        let mut held = self.stripes.lock(digest);
        self.drop_key(&mut held, digest);
        disk.put(digest, record, reservation)
    }

    /// A client's removal.
    pub(crate) fn apply_remove(&self, disk: &DiskTier, digest: u128) -> Ticket {
        let mut held = self.stripes.lock(digest);
        self.drop_key(&mut held, digest);
        disk.remove(digest)
    }

    /// A client's invalidation: bumped here, persisted and sent to the other clients. Returns
    /// the new generation and what to wait on.
    pub(crate) fn bump_served(
        &self,
        owner: &std::sync::Arc<process::Owner>,
        label: String,
        settle: bool,
    ) -> (u64, Ticket) {
        let generation = self.gens.bump(&label);
        Counters::bump(&self.counters.invalidations);
        tracing::debug!(%label, generation, "invalidated by a client");
        (
            generation,
            process::owner_bump(owner, label, generation, settle),
        )
    }

    /// The owner's notice that another process replaced or removed the record of `digest`.
    pub(crate) fn forget(&self, digest: u128) {
        let mut held = self.stripes.lock(digest);
        self.drop_key(&mut held, digest);
    }

    /// A write to `digest` made elsewhere: reads running now do not promote what they read,
    /// a read-through running now is not joined, and the memory tier lets its copy of the
    /// record go. A value kept in memory only is this process's own (`docs/processes.md`:
    /// it never leaves its process) and stays: another process's write of the key, persisted
    /// or kept in its own memory, does not replace it.
    fn drop_key(&self, held: &mut crate::ordering::Held<'_>, digest: u128) {
        held.bump();
        self.flights.detach(digest);
        if self.memory.get(digest).is_none_or(|entry| entry.on_disk) {
            self.memory.remove(digest);
        }
    }
}
