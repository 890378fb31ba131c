//! The cache as the tiers below memory see it: [`Above`] for [`Inner`]. A write made elsewhere
//! changes this process's tiers under the per-key ordering rule of `ordering.rs`, like its
//! own writes.

use super::Inner;
use crate::error::Result;
use crate::ordering::Held;
use crate::stats::Stats;
use crate::tiers::Above;

impl Above for Inner {
    fn forget(&self, digest: u128) {
        let mut held = self.stripes.lock(digest);
        self.drop_key(&mut held, digest);
    }

    fn forget_held(&self, held: &mut Held<'_>, digest: u128) {
        self.drop_key(held, digest);
    }

    fn lost_contact(&self) {
        self.memory.drop_persisted();
    }

    fn missed_changes(&self) {
        // Reads running now noted their versions before: none of them promotes what it read.
        self.stripes.bump_all();
        self.memory.drop_persisted();
    }

    fn generations_changed(&self) {
        self.free_invalidated();
    }

    fn stats(&self) -> Stats {
        Inner::stats(self)
    }

    fn own_stats(&self) -> Stats {
        Inner::own_stats(self)
    }

    fn fate(&self, digest: u128) -> Option<crate::Explanation> {
        // The holder asks no one below it: its graveyard, then the folder's saved fates.
        Inner::fate(self, digest)
    }

    fn bury_removal(&self, digest: u128, stored: Option<crate::tiers::Stored>) {
        let Some(stored) = stored else { return };
        let Ok(rec) = crate::record::decode(&stored.bytes) else {
            return;
        };
        let now = self.clock.now_ms();
        let fate = match rec.judge(digest, now, stored.last_access_ms, &self.gens) {
            None => crate::Explanation::Removed,
            Some(dead) => {
                crate::explain::of_dead(dead, Some(&rec), stored.last_access_ms, &self.gens)
            }
        };
        self.counters.graveyard.bury(digest, fate);
    }

    fn clear_expired(&self) -> Result<u64> {
        self.clear_expired_now()
    }
}

impl Inner {
    /// A write to `digest` made elsewhere: reads running now do not promote what they read,
    /// a read-through running now is not joined, and the memory tier lets its copy of the
    /// record go. A value kept in memory only is this process's own (`docs/processes.md`:
    /// it never leaves its process) and stays: another process's write of the key, persisted
    /// or kept in its own memory, does not replace it.
    fn drop_key(&self, held: &mut Held<'_>, digest: u128) {
        held.bump();
        self.flights.detach(digest);
        if self.memory.get(digest).is_none_or(|entry| entry.on_disk) {
            self.memory.remove(digest);
        }
    }
}
