//! The per-key ordering rule: one order of writes per key, in both tiers.
//!
//! # The rule
//!
//! Every write to a key — insert, remove, the drop of a dead entry — happens inside that key's
//! *stripe* lock, and inside it does three things in one step: bumps the stripe's version,
//! changes the memory tier, and queues the disk write (which enters the pending overlay and the
//! writer's channel in that same step). So for any key:
//!
//! - the memory tier, the pending overlay and the writer's channel see its writes in one order,
//!   and the writer applies them to redb in channel order: the last write wins in both tiers;
//! - a write that returned is visible to every read that starts after it (memory or overlay).
//!
//! Work that needs user code — decoding a record (a slow `Deserialize`), computing a value —
//! never runs inside the lock. A reader that wants to change the memory tier after such work
//! (promote a decoded value, drop a dead record) notes the stripe's version *before* it reads
//! the disk, and does the change only if the version is unchanged when it takes the lock:
//! otherwise a write came in between, and the reader's view is out of date, so it leaves the
//! tiers alone. A promotion therefore never replaces a newer value, and a drop never removes a
//! newer write.
//!
//! # Across processes
//!
//! The owner of a folder applies a client's writes with this same rule, in the order the
//! client sent them (each client's messages are read and applied by one thread, and a client
//! sends a key's writes inside its own stripe lock): the last write the owner applies wins in
//! its tiers and in its file. Every such write is also sent to the other clients inside the
//! owner's stripe lock, so each client drops its copy of a key in the owner's order, under its
//! own stripe lock (bumping the version, so that its reads running then do not promote what
//! they read), before the call that made the write returns (`process/peers.rs`).
//!
//! Stripes are shared by unrelated keys (their digests fall in one stripe): a write to one
//! only makes a reader of another skip a promotion, never return a wrong value.

use std::sync::{Mutex, MutexGuard};

use crate::disk::lock;

/// How many stripes: enough that unrelated keys rarely share one under many threads.
const STRIPES: usize = 1024;

/// Per-key write versions behind striped locks.
pub(crate) struct Stripes {
    versions: Box<[Mutex<u64>]>,
}

impl Default for Stripes {
    fn default() -> Self {
        Stripes {
            versions: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
        }
    }
}

/// A held stripe: the caller may change both tiers for keys of this stripe.
pub(crate) struct Held<'a>(MutexGuard<'a, u64>);

impl Held<'_> {
    /// The version the stripe had when it was locked.
    pub fn version(&self) -> u64 {
        *self.0
    }

    /// Marks a write: readers that noted an older version will not touch the tiers.
    pub fn bump(&mut self) {
        *self.0 += 1;
    }
}

impl Stripes {
    fn slot(&self, digest: u128) -> &Mutex<u64> {
        // Digests are uniform: the low bits pick the stripe.
        &self.versions[(digest as usize) % STRIPES]
    }

    /// Locks the stripe of `digest`.
    pub fn lock(&self, digest: u128) -> Held<'_> {
        Held(lock(self.slot(digest)))
    }

    /// Marks a write on every stripe: no read running now changes the tiers afterwards.
    pub fn bump_all(&self) {
        for slot in self.versions.iter() {
            *lock(slot) += 1;
        }
    }

    /// The current version of the stripe of `digest`, to compare later.
    pub fn version(&self, digest: u128) -> u64 {
        *lock(self.slot(digest))
    }

    /// Whether any stripe is locked now, by any thread: for tests of the rule.
    #[cfg(test)]
    pub fn any_locked(&self) -> bool {
        self.versions
            .iter()
            .any(|slot| matches!(slot.try_lock(), Err(std::sync::TryLockError::WouldBlock)))
    }

    /// Whether the stripe of `digest` is locked now, by any thread: for tests of the rule.
    #[cfg(test)]
    pub fn is_locked(&self, digest: u128) -> bool {
        matches!(
            self.slot(digest).try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_changes_the_version_a_reader_noted() {
        let s = Stripes::default();
        let noted = s.version(7);
        s.lock(7).bump();
        assert_ne!(s.lock(7).version(), noted);
        // Another stripe is untouched.
        assert_eq!(s.version(8), 0);
    }
}
