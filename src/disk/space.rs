//! Disk space: the cache folder stays within 1.5 times `disk_capacity`.
//!
//! The folder holds the database file, the side files (`blobs/`, counted exactly by their
//! lengths) and a few small files. The database file takes far more than its records' bytes:
//!
//! - B-tree leaves are partly empty, every entry carries its key and offsets, a read record
//!   has a row in the access table. Measured: 1.4 to 2 bytes of allocated pages per byte of
//!   record, the most for small records.
//! - A commit copies every page it changes, and redb reuses the pages the commit before it
//!   freed only once it is done: while it runs, the file must hold both copies. A commit of a
//!   thousand small records into a small tree copies most of it.
//! - redb grows the file by doubling it (until it reaches its 4 GiB regions), and shrinks it
//!   by itself only when its tail is free. Right after a growth, half of it is unused.
//!
//! So the tier estimates its database's bytes as `ratio` times its records' bytes, moved from
//! the last measure of redb's allocated pages (`stats()`: a walk over every page, about as
//! costly as the scan eviction makes anyway). It measures when the file has grown, every few
//! evictions, and before a compaction, and learns from a growth its `slack`: the most a commit
//! needed beyond what the file held once it was done. Both are kept in the database across
//! restarts. With `A` the database's estimated bytes, `S` the slack (at most `2A`: a commit
//! cannot copy more than the tree) and `B` the side files', eviction keeps
//!
//! ```text
//!     B + A <= capacity   and   B + 2 (A + S) <= 1.5 x capacity
//! ```
//!
//! The second is the doubling: the file grows only when a commit needs more than it holds, at
//! most `A + S`, and then to at most twice that; so the folder stays within 1.5 times the
//! capacity. Eviction runs within each commit (on the estimate), and each commit takes at most
//! a sixteenth of the capacity in record bytes, so that no commit overshoots by much. A cache
//! of small values therefore holds a fraction of `disk_capacity` in record bytes (measured
//! with 100 B values and record format 3: about 10% at 4 to 20 MiB, where each commit copies
//! the whole tree, and 27% at 100 MiB; a larger tier does better, as a commit copies a smaller
//! share of its tree):
//! that is what its folder really costs.
//!
//! Deleted records leave free pages that later commits reuse, but the file does not shrink.
//! Compaction (redb's `Database::compact`: pages moved to the front, the free tail cut off)
//! does, but it is slow on a big file and readers wait for it, so it runs by itself only when
//! it pays: when the folder is past 1.5 times the capacity (a lowered capacity, an estimate
//! that was off), or when at least three quarters of the file are free (large deletions) and
//! that is a sizeable amount. Either way only when the file is more than twice what it needs
//! (`2 (A + S)`): a compacted file ends at what it uses and grows back to that at most, so
//! compacting a file any smaller would be undone by the next commits.
//! [`Cache::compact`](crate::Cache::compact) runs one whatever the figures.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::guard::{catch, Caught};
use super::health::Failure;
use super::tables::{Tables, Totals};
use super::writer::Outcome;
use super::{lock, Shared};
use crate::explain::{Explanation, Graveyard};

/// The ratio assumed until one is measured: a little above the highest measured.
const PRIOR_RATIO_MILLI: u64 = 2_000;
/// Bounds on a measured ratio: a record takes at least its bytes, and a measure past the
/// upper bound says more about a mostly empty file than about its records.
const MIN_RATIO_MILLI: u64 = 1_000;
const MAX_RATIO_MILLI: u64 = 8_000;
/// Allocated bytes of a cache database that holds nothing (redb's system tables, our small
/// tables; measured: 52 KiB), taken out of a measure before computing the ratio.
const BASE: u64 = 52 << 10;
/// A measure over fewer record bytes than this says nothing reliable about the ratio.
const MIN_SAMPLE: u64 = 256 << 10;
/// Eviction starts past the limits and goes down to this share of them (in thousandths), so
/// that its scan of every record runs once per tenth of the capacity written.
const EVICT_TO_MILLI: u64 = 900;
/// The least free space worth an automatic compaction, and its share of the capacity.
const MIN_FREE: u64 = 1 << 20;
const MIN_FREE_SHARE: u64 = 32;
/// Evictions between two measures, at most: they keep the estimate honest when the file
/// does not grow.
const EVICTIONS_PER_MEASURE: u32 = 8;
/// How long compaction waits for readers to let go of the database before giving up.
const LET_GO: Duration = Duration::from_secs(2);

/// What the tier learned of its database file, kept in it across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Learned {
    /// Bytes of allocated pages per byte of record, in thousandths.
    pub ratio_milli: u64,
    /// The most a commit needed beyond what the file held once it was done: the pages it
    /// copied, and those the commit before it freed, which redb reuses only after it.
    pub slack: u64,
}

impl Default for Learned {
    fn default() -> Self {
        Learned {
            ratio_milli: PRIOR_RATIO_MILLI,
            slack: 0,
        }
    }
}

/// The bounds `disk_capacity` sets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub capacity: u64,
}

/// A commit copies at most every page it finds, and the one before it freed at most as many:
/// the slack to allow for is at most twice what the database uses.
fn slack_for(used: u128, slack: u64) -> u128 {
    u128::from(slack).min(2 * used)
}

impl Limits {
    /// Whether `db` bytes of database, with `slack` more needed while a commit runs, and
    /// `blobs` bytes of side files are within `milli` thousandths of both limits (see the
    /// module's documentation).
    pub fn within(&self, db: u64, slack: u64, blobs: u64, milli: u64) -> bool {
        let cap = u128::from(self.capacity) * u128::from(milli) / 1000;
        let (db, blobs) = (u128::from(db), u128::from(blobs));
        let peak = db + slack_for(db, slack);
        blobs + db <= cap && 2 * (blobs + 2 * peak) <= 3 * cap
    }

    /// Whether a database file of `file` bytes that uses `used` bytes (with `slack`), beside
    /// `blobs` bytes of side files, takes the folder past its bound, and compacting it would
    /// bring it back for good.
    pub fn past_bound(&self, file: u64, used: u64, slack: u64, blobs: u64) -> bool {
        let (file, used, blobs) = (u128::from(file), u128::from(used), u128::from(blobs));
        // Compacted, the file ends at `used`; it grows back to at most twice its peak.
        let regrown = 2 * (used + slack_for(used, slack));
        file > regrown && 2 * (file + blobs) > 3 * u128::from(self.capacity)
    }

    /// Whether at least three quarters of a database file of `file` bytes that uses `used`
    /// bytes are free, and that is worth a compaction.
    pub fn mostly_free(&self, file: u64, used: u64) -> bool {
        let min_free = MIN_FREE.max(self.capacity / MIN_FREE_SHARE);
        u128::from(file) >= 4 * u128::from(used) && file - used >= min_free
    }
}

/// What a file that grew from `before` to `after` bytes held just before its last growth: a
/// commit needed more than that. redb doubles a file up to its 4 GiB regions, then adds whole
/// regions, so one commit may have doubled it more than once.
fn held_before_growth(before: u64, after: u64) -> u64 {
    const REGION: u64 = 4 << 30;
    if after <= REGION {
        before.max(after / 2)
    } else {
        before
    }
}

/// The database bytes `record_bytes` of records take at `ratio_milli`.
fn estimate(record_bytes: u64, ratio_milli: u64) -> u64 {
    let scaled = u128::from(record_bytes) * u128::from(ratio_milli) / 1000;
    BASE.saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX))
}

/// The ratio a measure of `allocated` bytes over `record_bytes` bytes of records shows, if it
/// shows one.
fn learn(allocated: u64, record_bytes: u64) -> Option<u64> {
    if record_bytes < MIN_SAMPLE {
        return None;
    }
    let ratio = u128::from(allocated.saturating_sub(BASE)) * 1000 / u128::from(record_bytes);
    let ratio = u64::try_from(ratio).unwrap_or(u64::MAX);
    Some(ratio.clamp(MIN_RATIO_MILLI, MAX_RATIO_MILLI))
}

/// Why maintenance stopped short.
#[derive(Debug)]
pub(crate) enum Trouble {
    /// A commit, a measure or a compaction failed in a way that may leave redb unusable: the
    /// tier goes out of service, to be reopened at once.
    Tier(Failure),
    /// A compaction asked for did not run (logged); the tier goes on.
    Compaction(String),
}

impl From<Failure> for Trouble {
    fn from(f: Failure) -> Self {
        Trouble::Tier(f)
    }
}

/// The writer's view of the folder: when to measure, evict and compact.
pub(crate) struct Space {
    limits: Limits,
    /// The database file's length when last looked at.
    file_len: u64,
    /// The last measure: allocated bytes, and the record bytes then. Later estimates move
    /// from it by the ratio, so that they agree with it.
    anchor: Option<(u64, u64)>,
    /// No automatic compaction until the file is longer than this: the last one gave back
    /// little (0: none yet).
    compact_floor: u64,
    /// The most the database has used since the last compaction (`None`: none yet). A file
    /// found mostly free is compacted again only once what it uses is half of that or less:
    /// records were deleted since (a file that merely grew back by the slack of its commits
    /// would grow back again after another compaction).
    peak_since_compaction: Option<u64>,
    /// Evictions since the last measure.
    evictions: std::cell::Cell<u32>,
    /// Callers of `Cache::compact` waiting for the next maintenance.
    pub waiters: Vec<SyncSender<Outcome>>,
}

/// What the folder holds, as the writer sees it between measures.
struct View {
    file: u64,
    /// Estimated bytes of the database's pages.
    used: u64,
    slack: u64,
    blobs: u64,
}

impl Space {
    pub fn new(shared: &Shared) -> Self {
        let space = Space {
            limits: Limits {
                capacity: shared.capacity,
            },
            file_len: shared.file_len(),
            anchor: None,
            compact_floor: 0,
            peak_since_compaction: None,
            evictions: std::cell::Cell::new(0),
            waiters: Vec::new(),
        };
        space.publish(shared);
        space
    }

    /// Publishes what the folder takes, for `Stats::disk_file_bytes`.
    fn publish(&self, shared: &Shared) {
        let blobs = shared.totals().blob_bytes;
        shared
            .counters
            .disk_file_bytes
            .store(self.file_len.saturating_add(blobs), Ordering::Relaxed);
    }

    /// The estimated bytes of database that `records` bytes of records take.
    fn used(&self, shared: &Shared, records: u64) -> u64 {
        let ratio = lock(&shared.learned).ratio_milli;
        match self.anchor {
            None => estimate(records, ratio),
            Some((allocated, then)) if records >= then => {
                allocated.saturating_add(estimate(records - then, ratio) - BASE)
            }
            Some((allocated, then)) => allocated
                .saturating_sub(estimate(then - records, ratio) - BASE)
                .max(BASE),
        }
    }

    fn view(&self, shared: &Shared) -> View {
        let totals = shared.totals();
        View {
            file: self.file_len,
            used: self.used(shared, totals.record_bytes()),
            slack: lock(&shared.learned).slack,
            blobs: totals.blob_bytes,
        }
    }

    fn within(&self, v: &View, milli: u64) -> bool {
        self.limits.within(v.used, v.slack, v.blobs, milli)
    }

    fn compaction_pays(&self, v: &View) -> bool {
        let deleted_since = self
            .peak_since_compaction
            .is_none_or(|peak| v.used <= peak / 2);
        v.file > self.compact_floor
            && (self.limits.past_bound(v.file, v.used, v.slack, v.blobs)
                || (deleted_since && self.limits.mostly_free(v.file, v.used)))
    }

    /// Evicts the least recently used records, down to 90% of the limits, if the records in
    /// `t` are past them; returns how many. Called within every batch's commit, so that no
    /// commit leaves the tier past its limits (as far as the estimate can tell), and after a
    /// measure that says they are.
    pub fn evict_if_over(&self, shared: &Shared, t: &mut Tables<'_>) -> Result<u64, redb::Error> {
        let slack = lock(&shared.learned).slack;
        let limits = self.limits;
        let within = |totals: &Totals, milli| {
            let used = self.used(shared, totals.record_bytes());
            limits.within(used, slack, totals.blob_bytes, milli)
        };
        if within(&t.totals, 1000) {
            return Ok(0);
        }
        let evicted = evict(
            t,
            |totals| within(totals, EVICT_TO_MILLI),
            &shared.counters.graveyard,
        )?;
        self.evictions.set(self.evictions.get().saturating_add(1));
        tracing::debug!(
            evicted,
            bytes = t.totals.bytes,
            capacity = limits.capacity,
            "disk tier evicted least recently used records"
        );
        Ok(evicted)
    }

    /// The most record bytes one commit takes: a sixteenth of the capacity, so that one
    /// commit can neither carry the database far past its limits nor copy much more of it than
    /// the learned slack (it matters only for small capacities: a default commit is far
    /// smaller).
    pub fn batch_bytes(&self) -> u64 {
        (self.limits.capacity / 16).max(64 << 10)
    }

    /// Looks at the folder after a commit (cheap: the file's length and the totals), and
    /// measures, evicts or compacts if that is due. `settled`: no sweep pass is under way
    /// (compaction waits for its end, so that it runs once after large deletions).
    pub fn check(&mut self, shared: &Shared, settled: bool) -> Result<(), Failure> {
        let before = self.file_len;
        self.file_len = shared.file_len();
        self.publish(shared);
        let v = self.view(shared);
        if let Some(peak) = &mut self.peak_since_compaction {
            *peak = (*peak).max(v.used);
        }
        // A growth teaches the slack, which matters only once a file twice this long would
        // take the folder past its bound: before that, the walk of a measure is not worth it.
        let grew = self.file_len > before && !self.limits.within(self.file_len, 0, v.blobs, 1000);
        let stale = self.evictions.get() >= EVICTIONS_PER_MEASURE;
        let due = grew || stale || !self.within(&v, 1000) || (settled && self.compaction_pays(&v));
        if !due {
            return Ok(());
        }
        // A file that grew needed more than it held: learn from it.
        let grown_from = grew.then(|| held_before_growth(before, self.file_len));
        match self.rebalance(shared, grown_from, false) {
            Err(Trouble::Tier(f)) => Err(f),
            // Logged; only a compaction asked for reports one.
            Ok(()) | Err(Trouble::Compaction(_)) => Ok(()),
        }
    }

    /// Measures the database, evicts past the limits, and compacts if that pays (always,
    /// when `explicit`). `grown_from`: the file's length before it last grew.
    ///
    /// # Errors
    /// [`Trouble::Tier`] for a failed commit or measure, or a compaction that may have left
    /// redb unusable; with `explicit`, [`Trouble::Compaction`] for a compaction that did not
    /// run.
    pub fn rebalance(
        &mut self,
        shared: &Shared,
        grown_from: Option<u64>,
        explicit: bool,
    ) -> Result<(), Trouble> {
        let allocated = self.measure(shared)?;
        if let Some(held) = grown_from {
            // The commit needed more than `held` bytes, and leaves `allocated` in use.
            let mut learned = lock(&shared.learned);
            learned.slack = learned.slack.max(held.saturating_sub(allocated));
        }
        let v = self.view(shared);
        if !self.within(&v, 1000) {
            let evicted = shared.transact(|t| self.evict_if_over(shared, t))?;
            crate::stats::Counters::add(&shared.counters.evictions, evicted);
            self.file_len = shared.file_len();
            self.publish(shared);
        }
        let v = self.view(shared);
        if explicit || self.compaction_pays(&v) {
            self.compact(shared, explicit)?;
        }
        Ok(())
    }

    /// Measures the bytes the database's pages take (redb's allocated pages): the new anchor
    /// of estimates, and what it says of the ratio.
    fn measure(&mut self, shared: &Shared) -> Result<u64, Failure> {
        // The pages the last commit freed stay allocated until the next one: after large
        // deletions they would hide that most of the file is free. One empty commit lets them
        // go (a measure is rare: after a growth, every few evictions, before a compaction).
        shared.transact(|_| Ok(()))?;
        let Some(db) = shared.db() else {
            return Err(shared.outage_failure());
        };
        let started = Instant::now();
        let stats = catch(|| {
            let txn = db.begin_write()?;
            let stats = txn.stats()?;
            txn.abort()?;
            Ok(stats)
        });
        drop(db);
        let stats = stats.map_err(|c| Failure {
            detail: c.detail(),
            damaged: c.is_damage(),
        })?;
        let allocated = stats
            .allocated_pages()
            .saturating_mul(stats.page_size() as u64);
        let records = shared.totals().record_bytes();
        let mut learned = lock(&shared.learned);
        if let Some(ratio) = learn(allocated, records) {
            learned.ratio_milli = ratio;
        }
        self.anchor = Some((allocated, records));
        self.evictions.set(0);
        tracing::debug!(
            allocated,
            records,
            learned = ?*learned,
            took = ?started.elapsed(),
            "disk tier measured its database"
        );
        Ok(allocated)
    }

    /// Compacts the database file. A failure is logged and the tier goes on; one that may
    /// have left redb unusable is returned, for the tier to be reopened at once.
    /// With `explicit` (for `Cache::compact`), any failure is returned.
    fn compact(&mut self, shared: &Shared, explicit: bool) -> Result<(), Trouble> {
        let before = shared.file_len();
        let started = Instant::now();
        let result = compact_file(shared);
        let after = shared.file_len();
        self.file_len = after;
        self.publish(shared);
        let (detail, harmful) = match result {
            Ok(()) => {
                // Little given back: no automatic compaction until the file grows past this.
                self.compact_floor = if after > before / 10 * 9 { after } else { 0 };
                self.peak_since_compaction =
                    Some(self.used(shared, shared.totals().record_bytes()));
                tracing::info!(
                    file = %shared.path.display(),
                    before,
                    after,
                    took = ?started.elapsed(),
                    "cache database compacted"
                );
                return Ok(());
            }
            Err(Stop::Busy) => (
                "readers did not let go of the database in time".to_string(),
                false,
            ),
            Err(Stop::OutOfService) => ("the disk tier is out of service".to_string(), false),
            Err(Stop::Failed(caught)) => (caught.detail(), !harmless(&caught)),
        };
        let detail = format!("compaction failed: {detail}");
        self.compact_floor = after;
        tracing::warn!(file = %shared.path.display(), error = %detail,
            "cache compaction did not run; the disk tier goes on");
        if harmful {
            return Err(Trouble::Tier(Failure {
                detail,
                damaged: false,
            }));
        }
        if explicit {
            return Err(Trouble::Compaction(detail));
        }
        Ok(())
    }
}

/// Why a compaction did not run to its end.
enum Stop {
    Busy,
    OutOfService,
    Failed(Caught),
}

/// A compaction refused before it changed anything.
fn harmless(caught: &Caught) -> bool {
    matches!(
        caught,
        Caught::Redb(
            redb::Error::TransactionInProgress
                | redb::Error::PersistentSavepointExists
                | redb::Error::EphemeralSavepointExists
        )
    )
}

/// Runs redb's compaction, which needs the only handle on the database and no read
/// transaction: the readers' snapshot of the last commit is dropped first (readers then read
/// through the database), and new readers wait on the lock meanwhile (rather than miss).
/// Readers already in hold their handle only for a moment, never across user code. The
/// snapshot is taken again afterwards, whatever happened. redb commits a compaction in two
/// phases, so a crash during it leaves the last committed state.
fn compact_file(shared: &Shared) -> Result<(), Stop> {
    let result = {
        drop_snapshot(shared);
        let mut guard = shared.db.write().unwrap_or_else(|e| e.into_inner());
        compact_locked(&mut guard)
    };
    if let Some(db) = shared.db() {
        shared.refresh_snapshot(&db);
    }
    result
}

fn drop_snapshot(shared: &Shared) {
    let old = shared
        .snapshot
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    super::guard::drop_guarded(old);
}

fn compact_locked(db: &mut Option<Arc<super::guard::Db>>) -> Result<(), Stop> {
    let Some(handle) = db.as_mut() else {
        return Err(Stop::OutOfService);
    };
    let until = Instant::now() + LET_GO;
    while Arc::strong_count(handle) > 1 {
        if Instant::now() >= until {
            return Err(Stop::Busy);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let Some(db) = Arc::get_mut(handle) else {
        return Err(Stop::Busy);
    };
    catch(|| db.compact().map(drop).map_err(redb::Error::from)).map_err(Stop::Failed)
}

/// Drops the least recently used records until `done` says the totals are low enough. A
/// record's last use is its last recorded read, else its creation.
pub(crate) fn evict(
    t: &mut Tables<'_>,
    done: impl Fn(&Totals) -> bool,
    graveyard: &Graveyard,
) -> Result<u64, redb::Error> {
    use redb::ReadableTable;
    let mut by_age = Vec::new();
    for item in t.records.range::<u128>(..)? {
        let (digest, bytes) = item?;
        let created = crate::record::created_ms(bytes.value()).unwrap_or(0);
        by_age.push((created, digest.value()));
    }
    for item in t.access.range::<u128>(..)? {
        let (digest, value) = item?;
        by_age.push((value.value().0, digest.value()));
    }
    // Keep each record's latest use, then take the oldest first.
    by_age.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
    by_age.dedup_by_key(|e| e.1);
    by_age.sort_unstable();
    let mut evicted = 0;
    for (_, digest) in by_age {
        if done(&t.totals) {
            break;
        }
        if t.remove(digest)? {
            evicted += 1;
            graveyard.bury(digest, Explanation::Evicted);
        }
    }
    Ok(evicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_limits_allow_for_a_file_that_doubles() {
        let l = Limits {
            capacity: 100 * MIB,
        };
        // Side files alone: up to the capacity.
        assert!(l.within(0, 0, 100 * MIB, 1000));
        assert!(!l.within(0, 0, 101 * MIB, 1000));
        // Database alone: up to three quarters, as the file may double.
        assert!(l.within(75 * MIB, 0, 0, 1000));
        assert!(!l.within(76 * MIB, 0, 0, 1000));
        // Both: the folder of a doubled file stays within 1.5x.
        assert!(l.within(40 * MIB, 0, 50 * MIB, 1000));
        assert!(!l.within(40 * MIB, 0, 71 * MIB, 1000));
        assert!(l.within(50 * MIB, 0, 45 * MIB, 1000));
        assert!(
            !l.within(60 * MIB, 0, 35 * MIB, 1000),
            "a doubled file would pass 1.5x"
        );
        // The eviction target is a tenth lower.
        assert!(!l.within(70 * MIB, 0, 0, EVICT_TO_MILLI));
        assert!(l.within(67 * MIB, 0, 0, EVICT_TO_MILLI));
    }

    #[test]
    fn the_limits_allow_for_what_a_commit_needs_while_it_runs() {
        let l = Limits {
            capacity: 100 * MIB,
        };
        // A commit may need 10 MiB more: the file may double from 76 MiB.
        assert!(l.within(66 * MIB, 0, 0, 1000));
        assert!(!l.within(66 * MIB, 10 * MIB, 0, 1000));
        assert!(l.within(65 * MIB, 10 * MIB, 0, 1000));
        // No commit needs more than twice what the database uses: a slack learned on a
        // larger database does not empty a small one.
        assert!(l.within(MIB, 80 * MIB, 0, 1000));
        assert!(l.within(25 * MIB, 80 * MIB, 0, 1000));
        assert!(!l.within(26 * MIB, 80 * MIB, 0, 1000));
    }

    #[test]
    fn huge_capacities_and_sizes_do_not_overflow() {
        let l = Limits { capacity: u64::MAX };
        assert!(l.within(u64::MAX / 4, 0, 0, 1000));
        assert!(!l.within(u64::MAX, u64::MAX, u64::MAX, 1000));
        assert!(!l.past_bound(u64::MAX, u64::MAX, u64::MAX, u64::MAX));
        assert!(!l.mostly_free(u64::MAX, u64::MAX));
        assert_eq!(estimate(u64::MAX, MAX_RATIO_MILLI), u64::MAX);
        assert_eq!(learn(u64::MAX, MIN_SAMPLE), Some(MAX_RATIO_MILLI));
    }

    #[test]
    fn compaction_runs_past_the_bound_only_when_it_gives_back_for_long() {
        let l = Limits { capacity: 64 * MIB };
        // Past the folder's bound, and more than twice what it uses.
        assert!(l.past_bound(100 * MIB, 40 * MIB, 0, 0));
        assert!(l.past_bound(50 * MIB, 20 * MIB, 0, 50 * MIB));
        // Within it.
        assert!(!l.past_bound(90 * MIB, 40 * MIB, 0, 0));
        // Past the bound but mostly used: eviction, not compaction, must make room.
        assert!(!l.past_bound(100 * MIB, 60 * MIB, 0, 0));
        // ...or the commits' slack would grow it back.
        assert!(!l.past_bound(100 * MIB, 30 * MIB, 25 * MIB, 0));
    }

    #[test]
    fn a_mostly_free_file_is_compacted_unless_little_is_free() {
        let l = Limits { capacity: 64 * MIB };
        assert!(l.mostly_free(40 * MIB, 10 * MIB));
        assert!(!l.mostly_free(40 * MIB, 11 * MIB));
        assert!(!l.mostly_free(MIB, 0), "a few free pages");
        assert!(l.mostly_free(2 * MIB + 1, 0));
    }

    #[test]
    fn a_file_that_doubled_twice_in_one_commit_held_half_its_length() {
        assert_eq!(held_before_growth(4 * MIB, 16 * MIB), 8 * MIB);
        assert_eq!(held_before_growth(4 * MIB, 8 * MIB), 4 * MIB);
        assert_eq!(held_before_growth(8 << 30, 12 << 30), 8 << 30);
    }

    #[test]
    fn a_measure_teaches_a_ratio_within_bounds() {
        assert_eq!(learn(BASE + 3 * MIB, 2 * MIB), Some(1_500));
        assert_eq!(learn(BASE + MIB, 2 * MIB), Some(MIN_RATIO_MILLI));
        assert_eq!(learn(100 * MIB, MIN_SAMPLE - 1), None, "too few records");
        assert_eq!(estimate(2 * MIB, 1_500), BASE + 3 * MIB);
    }
}
