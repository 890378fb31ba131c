//! The boundary between the memory tier and the tiers below it.
//!
//! The chain, top to bottom: the engine (`engine/`) and its memory tier (`memory.rs`); then
//! one tier below memory, held as a `Box<dyn` [`Lower`]`>`:
//!
//! - [`NoTier`] (`none.rs`) for a cache in memory only: it keeps nothing;
//! - the folder, `process::DiskTier` (its `Lower` in `process/lower.rs`): this process's own
//!   redb file in `disk/` as the folder's owner, or a client of the process that owns it;
//! - Redis (`redis/`, feature `redis`): a server shared by processes on many machines;
//! - a folder in front of Redis (`chain.rs`): the folder keeps copies of Redis's records,
//!   each served only once Redis confirmed it.
//!
//! Downward, the engine asks a tier for records by key digest (in `record.rs`'s format) and
//! hands it records to keep, through the few handles in `handles.rs`: a write's [`Ticket`],
//! the [`Reservation`] of room for it, a payload [`Staged`] before its record is built, a
//! key's [`Lease`]. Each tier puts its own state inside them; the engine only passes them on.
//!
//! Upward, a tier calls only through [`Above`]: the cache it serves, seen as the few things a
//! lower tier may ask of it, never the engine itself (moka's housekeeper sees its cache the
//! same way, through `InnerSync`). The folder's process layer holds a `Weak<dyn Above>`.
//!
//! The engine's own tests run over a stand-in tier (`stand_in.rs`, tests only) that keeps
//! records in a map and plays another process's write at the worst moment.
//!
//! The rule that orders a key's reads and writes across both sides (which calls run inside
//! the key's stripe lock, which outside) is in `ordering.rs`, and each method below says
//! which side it is on.

#[cfg(feature = "redis")]
pub(crate) mod chain;
mod handles;
pub(crate) mod marker;
mod none;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(test)]
pub(crate) mod stand_in;

use std::sync::{Arc, Weak};
use std::time::Instant;

pub(crate) use handles::{Lease, LeaseGuard, Reservation, Staged, Staging, Ticket, Wait};
pub(crate) use none::NoTier;

use crate::error::Result;
use crate::generations::Generations;
use crate::ordering::Held;
use crate::record::BlobRef;
use crate::stats::Stats;

/// A stored record as a reader sees it, copied out of the tier so that decoding it (user
/// code) holds nothing of the tier's.
pub(crate) struct Stored {
    pub bytes: Arc<[u8]>,
    /// When the record was last read or written, if known.
    pub last_access_ms: Option<u64>,
}

/// One record as a page of [`Lower::scan`] holds it.
pub(crate) struct Scanned {
    pub digest: u128,
    pub bytes: Arc<[u8]>,
    /// The latest read time known (stored or not yet written), for records with an idle limit.
    pub last_access_ms: Option<u64>,
}

/// What a tier below memory does, for records by key digest.
///
/// # Locking (`ordering.rs`)
///
/// - [`stage`](Lower::stage) and [`reserve`](Lower::reserve) run holding no lock, and may
///   wait (for room: back-pressure).
/// - [`put`](Lower::put), [`remove`](Lower::remove),
///   [`forget_elsewhere`](Lower::forget_elsewhere), [`discard`](Lower::discard) and
///   [`unstage`](Lower::unstage) run inside the key's stripe lock: they queue and never wait
///   on another process or machine, and never call [`Above`] (whose methods take stripe
///   locks). The [`Ticket`] they give is waited for outside every lock.
/// - A reader notes the key's stripe version before [`read`](Lower::read) or
///   [`lease`](Lower::lease), and promotes what it read only if no write came since.
///
/// A failure to read is a miss (the tier logs it); a failure to write reaches the caller
/// through the ticket. The provided methods are what a tier that keeps nothing out of line,
/// serves no one and never fails for long does.
pub(crate) trait Lower: Send + Sync + 'static {
    /// Whether the tier keeps records at all; `false` only for [`NoTier`], so that a cache
    /// in memory only never encodes its values.
    fn keeps_records(&self) -> bool {
        true
    }

    /// Ties the tier to the cache it serves, once, right after the cache is built.
    fn attach(&self, above: Weak<dyn Above>);

    /// The record of `digest`, if the tier holds one.
    fn read(&self, digest: u128) -> Option<Stored>;

    /// Notes a read of `digest` at `now_ms` (`idle`: the entry has an idle limit, and the
    /// time must be kept); may be batched or dropped.
    fn touch(&self, _digest: u128, _now_ms: u64, _idle: bool) {}

    /// Whether a record of `digest` may exist (a removal of nothing need not be sent).
    fn may_contain(&self, digest: u128) -> bool;

    /// The bytes of a payload kept out of line (a side file), or `None` if missing or
    /// damaged (logged).
    fn out_of_line(&self, _blob: &BlobRef) -> Option<Arc<crate::bytes::Source>> {
        None
    }

    /// Whether a payload kept out of line is there with its length (nothing large is read).
    fn out_of_line_present(&self, _blob: &BlobRef) -> bool {
        false
    }

    /// The bytes of a payload kept out of line, or why they cannot be read.
    fn out_of_line_bytes(&self, _blob: &BlobRef) -> std::result::Result<Vec<u8>, String> {
        Err("this tier keeps every payload in its record".into())
    }

    /// Up to `max` records after the cursor `after` (`None`: from the start), and the cursor
    /// to continue from (`None`: done).
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) if the tier cannot be read.
    fn scan(&self, after: Option<u128>, max: usize) -> Result<(Vec<Scanned>, Option<u128>)>;

    /// Prepares `payload` to go into a record of `record_bytes` bytes: refused if the tier
    /// could never hold it; a large payload is put out of line, durably, before its record
    /// exists. Runs holding no lock; may wait for room.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the payload could not be put out of line (a full
    /// disk).
    fn stage(&self, payload: Vec<u8>, record_bytes: u64) -> Result<Staging>;

    /// Room for a record of `record_len` bytes (and what `staged` put out of line) among the
    /// writes not yet done: back-pressure waits here, holding no lock.
    fn reserve(&self, record_len: usize, staged: &mut Staged) -> Reservation;

    /// `staged` will never be put (its write was overtaken): what it put out of line goes.
    /// Inside the key's stripe lock.
    fn unstage(&self, _staged: Staged) {}

    /// Queues `record` as the record of `digest`. Inside the key's stripe lock.
    fn put(&self, digest: u128, record: Vec<u8>, room: Reservation) -> Ticket;

    /// Queues the removal of `digest`'s record. Inside the key's stripe lock.
    fn remove(&self, digest: u128) -> Ticket;

    /// For a write that changes nothing here (no record of `digest`): other processes that
    /// share the tier still let go of their copy. Inside the key's stripe lock.
    fn forget_elsewhere(&self, _digest: u128) -> Option<Ticket> {
        None
    }

    /// Queues the removal of a dead record; never waits; a tier may leave it to its own
    /// sweeping. Inside the key's stripe lock.
    fn discard(&self, _digest: u128) {}

    /// Raises `label`'s generation in `gens` (the cache's) and wherever the tier keeps
    /// generations, and tells whoever shares the tier. With `settle`, a close waits briefly
    /// for what it made dead to be reclaimed.
    ///
    /// # Errors
    /// If the new generation could not be kept or sent.
    fn bump(&self, gens: &Generations, label: String, settle: bool) -> Result<()>;

    /// The record of `digest` if the tier holds one, else the right to compute it (one
    /// computation per missing key among those who share the tier).
    ///
    /// # Errors
    /// If the tier could not be asked (the caller then computes without a lease).
    fn lease(&self, digest: u128, force: bool) -> Result<Lease>;

    /// Waits until everything queued so far is kept.
    ///
    /// # Errors
    /// If a write could not be kept, or writes acknowledged earlier were lost.
    fn flush(&self) -> Result<()>;

    /// Reclaims the tier's space now.
    ///
    /// # Errors
    /// If the tier is out of service or could not compact.
    fn compact(&self) -> Result<()> {
        Ok(())
    }

    /// Commits what is queued and runs the reclaiming asked for, until `until` at most.
    ///
    /// # Errors
    /// As [`flush`](Lower::flush).
    fn settle(&self, _until: Instant) -> Result<()> {
        Ok(())
    }

    /// For a tier whose records another process holds: that process drops every expired
    /// entry and says how many. `None`: the caller does it itself, over [`scan`](Lower::scan).
    fn clear_expired_elsewhere(&self) -> Option<Result<u64>> {
        None
    }

    /// The cache is closing: stop serving other processes.
    fn stop_serving(&self) {}

    /// The process ends without closing the cache (a `static`): let go of what others
    /// would otherwise wait for.
    fn leave_at_exit(&self) {}

    /// Commits everything queued and lets go of the tier.
    ///
    /// # Errors
    /// If queued writes could not be committed.
    fn close(&self) -> Result<()>;

    /// What keeps the tier from serving, if anything.
    fn health(&self) -> Option<crate::Health> {
        None
    }

    /// Why the tier is out of service, if it is (for `explain`).
    fn outage(&self) -> Option<crate::disk::Outage> {
        None
    }

    /// The figures of the store that the tier shares with others (its entries and sizes), if
    /// another process holds them.
    fn shared_stats(&self) -> Option<Stats> {
        None
    }

    /// What became of a dropped key, as the process that holds the tier remembers it (for a
    /// client's `explain`). None by default, and when the holder does not answer in time.
    fn fate(&self, _digest: u128) -> Option<crate::Explanation> {
        None
    }

    /// The figures of the other processes that share this tier (their pids, whether each
    /// holds it, their counters), for `Cache::stats_by_process`. None by default.
    ///
    /// # Errors
    /// If the process that holds the folder does not answer in time.
    fn other_processes(&self) -> Result<Vec<crate::ProcessStats>> {
        Ok(Vec::new())
    }

    /// Whether processes of other builds may share this tier at the same time (Redis during
    /// a rolling deploy): then nothing of another build is reclaimed through it (a memoized
    /// function's other code versions are left to deadlines and eviction), since both builds
    /// keep writing. A folder is held by the processes of one build at a time.
    fn shared_by_builds(&self) -> bool {
        false
    }

    /// The folder, if this tier is one: its path, its owner, its warm restart.
    fn folder(&self) -> Option<&crate::process::DiskTier> {
        None
    }
}

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
    /// the tier below; values kept in memory only stay. Takes no stripe lock: a writer of
    /// the cache may hold one while it waits on the tier.
    fn lost_contact(&self);

    /// [`lost_contact`](Above::lost_contact), and no read running now keeps what it read
    /// (every key's version moves on first). Takes every stripe lock, one at a time: only
    /// for a tier whose writes never make a writer wait while it holds a stripe lock (the
    /// folder's client does: its takeover bumps the stripes itself, once it can).
    #[cfg_attr(not(any(test, feature = "redis")), allow(dead_code))]
    fn missed_changes(&self);

    /// Generations were raised elsewhere (the tier already raised them in the cache's
    /// `Generations`): entries kept in memory only that they made stale are let go now.
    fn generations_changed(&self);

    /// The cache's counters and sizes, for another process that asks.
    fn stats(&self) -> Stats;

    /// This process's counters and memory bytes, without the folder's figures (for the
    /// holder of the folder, which lists every process's; see `Cache::stats_by_process`).
    fn own_stats(&self) -> Stats;

    /// What became of a dropped key, as this process remembers it (or the folder's saved
    /// fates): for a client that asks.
    fn fate(&self, digest: u128) -> Option<crate::Explanation>;

    /// A client removes a key: its fate, judged from the record it removes (removed if live,
    /// else why it was dead), is remembered here for every process's `explain`.
    fn bury_removal(&self, digest: u128, stored: Option<Stored>);

    /// Deletes every expired entry now (for another process that asks, or after a takeover);
    /// how many.
    ///
    /// # Errors
    /// If the disk tier is out of service.
    fn clear_expired(&self) -> Result<u64>;
}
