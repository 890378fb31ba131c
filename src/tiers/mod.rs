//! The boundary between the memory tier and the tiers below it.
//!
//! The chain, top to bottom: the engine (`engine/`) and its memory tier (`memory.rs`); then
//! the tier below memory: today the folder (`process::DiskTier`: this process's own redb file
//! in `disk/` as the folder's owner, or a client of the process that owns it), or none for a
//! cache in memory only.
//!
//! A tier below memory calls upward only through [`Above`]: the cache it serves, seen as the
//! few things a lower tier may ask of it, never the engine itself (moka's housekeeper sees
//! its cache the same way, through `InnerSync`). The folder's process layer holds a
//! `Weak<dyn Above>`; a Redis tier and a test stand-in are meant to use the same trait.
//!
//! Still to come here (issue 16, "Shape first"): the downward half, a `Lower` trait that the
//! engine holds instead of `Option<DiskTier>`, with a do-nothing tier for a cache in memory
//! only.

use crate::error::Result;
use crate::ordering::Held;
use crate::stats::Stats;

/// What a tier below memory may ask of the cache above it. Implemented by the engine
/// (`engine/above.rs`).
///
/// # Locking
///
/// Every method but [`forget_held`](Above::forget_held) takes the locks it needs (a key's
/// stripe lock, the memory tier's): a tier calls them holding none of the cache's locks,
/// never from inside a write it was given under a stripe lock (`ordering.rs`).
pub(crate) trait Above: Send + Sync {
    /// Another process or machine replaced or removed the record of `digest`: reads running
    /// now do not promote what they read, a read-through running now is not joined, and the
    /// memory tier lets its copy go. Takes the key's stripe lock.
    fn forget(&self, digest: u128);

    /// [`forget`](Above::forget), with the key's stripe lock already held (`held`): for a
    /// tier that applies another process's write in the key's order.
    fn forget_held(&self, held: &mut Held<'_>, digest: u128);

    /// The tier may have missed changes made elsewhere (its connection ended, another process
    /// took the folder over): the memory tier drops every value that came from, or went to,
    /// the tier below; values kept in memory only stay.
    fn lost_contact(&self);

    /// Generations were raised elsewhere (the tier already raised them in the cache's
    /// `Generations`): entries kept in memory only that they made stale are let go now.
    fn generations_changed(&self);

    /// The cache's counters and sizes, for another process that asks.
    fn stats(&self) -> Stats;

    /// Deletes every expired entry now (for another process that asks, or after a takeover);
    /// how many.
    ///
    /// # Errors
    /// If the disk tier is out of service.
    fn clear_expired(&self) -> Result<u64>;
}
