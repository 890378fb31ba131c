//! Counters and the [`Stats`] snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::record::Dead;

/// A snapshot of what the cache has done since it was opened (counters) and holds now (sizes).
///
/// ```
/// let cache = tiered::Cache::in_memory();
/// cache.insert("k", 1u32)?;
/// assert!(cache.get::<_, u32>("k")?.is_some());
/// assert!(cache.get::<_, u32>("other")?.is_none());
/// let s = cache.stats();
/// assert_eq!((s.memory_hits, s.misses, s.inserts), (1, 1, 1));
/// # Ok::<(), tiered::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Reads answered by the memory tier.
    pub memory_hits: u64,
    /// Reads answered by the disk tier (the value was then promoted into memory).
    pub disk_hits: u64,
    /// Reads that found no live entry.
    pub misses: u64,
    /// Values inserted (directly or by a read-through computation).
    pub inserts: u64,
    /// Entries the memory tier dropped to stay within `memory_capacity`, plus records the disk
    /// tier dropped to stay within `disk_capacity`.
    pub evictions: u64,
    /// Entries found expired (ttl, expires_at or idle) and dropped; each entry counts once.
    pub expirations: u64,
    /// Calls to `invalidate_tag`, `Namespace::clear` and `Cache::clear`.
    pub invalidations: u64,
    /// Reads that found a value stored as another type (a miss; the stored value is kept for
    /// readers of its own type), or written by a build whose type had another shape (a miss;
    /// that record was dropped, as it can never be read again).
    pub type_mismatches: u64,
    /// Records that failed their checksum or could not be decoded; each was dropped.
    pub damaged_records: u64,
    /// Approximate bytes held by the memory tier (encoded sizes).
    pub memory_bytes: u64,
    /// Bytes of records in the disk tier, their side files included (0 for an in-memory
    /// cache). This is what the entries hold; the folder takes more (see `disk_file_bytes`).
    pub disk_bytes: u64,
    /// Bytes the disk tier's files take in its folder: the database file's length plus the side
    /// files, as of the last commit (0 for an in-memory cache). The database file holds more
    /// than its records (B-tree pages are partly empty, and a commit copies the pages it
    /// changes), and it grows by doubling: `disk_capacity` bounds this figure, which stays
    /// under 1.5 times it once background work has run (see the guide's "Disk space").
    pub disk_file_bytes: u64,
    /// Records in the disk tier as of the last commit (batched writes not yet committed are
    /// not counted), stale ones not yet swept included; for an in-memory cache, entries in the
    /// memory tier.
    pub entries: u64,
    /// Times the disk tier went out of service (a failed commit, a damaged file), or a damaged
    /// file was set aside at open; see [`Cache::health`](crate::Cache::health).
    pub disk_failures: u64,
    /// Entries the warm restart loaded into the memory tier at open (see
    /// [`CacheBuilder::warm_restart`](crate::CacheBuilder::warm_restart)). Their reads count
    /// as memory hits.
    pub warm_loaded: u64,
    /// Whether the warm restart is still loading entries.
    pub warming: bool,
    /// Inserts and disk hits of values larger than the whole memory tier
    /// (`memory_capacity`): such a value is not kept in memory, so each read of it is served
    /// from disk (a value kept in memory only is not kept at all).
    pub too_large_for_memory: u64,
    /// Values recomputed in the background because they were older than their
    /// [`refresh_after`](crate::Options::refresh_after) (stored, unless a write of the key
    /// came meanwhile).
    pub refreshes: u64,
    /// Background recomputations that failed (an error, or a panic); the older value stays
    /// until its deadline.
    pub refresh_failures: u64,
}

impl Stats {
    /// The share of reads that hit (memory or disk), or `None` before any read.
    ///
    /// ```
    /// let cache = tiered::Cache::in_memory();
    /// cache.insert("k", 1u32)?;
    /// let _ = cache.get::<_, u32>("k")?; // a hit
    /// let _ = cache.get::<_, u32>("other")?; // a miss
    /// assert_eq!(cache.stats().hit_ratio(), Some(0.5));
    /// # Ok::<(), tiered::Error>(())
    /// ```
    pub fn hit_ratio(&self) -> Option<f64> {
        let hits = self.memory_hits + self.disk_hits;
        let reads = hits + self.misses;
        (reads > 0).then(|| hits as f64 / reads as f64)
    }
}

/// Adds every figure of `other` to these (sizes too, so that the sum of several processes'
/// [`ProcessStats::stats`] holds their memory tiers' bytes); `warming` is true if either is.
impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, other: Stats) {
        let Stats {
            memory_hits,
            disk_hits,
            misses,
            inserts,
            evictions,
            expirations,
            invalidations,
            type_mismatches,
            damaged_records,
            memory_bytes,
            disk_bytes,
            disk_file_bytes,
            entries,
            disk_failures,
            warm_loaded,
            warming,
            too_large_for_memory,
            refreshes,
            refresh_failures,
        } = other;
        self.memory_hits += memory_hits;
        self.disk_hits += disk_hits;
        self.misses += misses;
        self.inserts += inserts;
        self.evictions += evictions;
        self.expirations += expirations;
        self.invalidations += invalidations;
        self.type_mismatches += type_mismatches;
        self.damaged_records += damaged_records;
        self.memory_bytes += memory_bytes;
        self.disk_bytes += disk_bytes;
        self.disk_file_bytes += disk_file_bytes;
        self.entries += entries;
        self.disk_failures += disk_failures;
        self.warm_loaded += warm_loaded;
        self.warming |= warming;
        self.too_large_for_memory += too_large_for_memory;
        self.refreshes += refreshes;
        self.refresh_failures += refresh_failures;
    }
}

/// One process's figures, as [`Cache::stats_by_process`](crate::Cache::stats_by_process)
/// lists them: what that process's cache has counted since it opened, and its memory tier's
/// bytes. The folder's figures (`entries`, `disk_bytes`, `disk_file_bytes`) are 0 here: they
/// are the folder's, in [`Cache::stats`](crate::Cache::stats).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ProcessStats {
    /// The process id.
    pub pid: u32,
    /// Whether this process holds the folder (it serves the others: see `docs/processes.md`).
    pub holds_folder: bool,
    /// Whether it is the process that asked.
    pub this_process: bool,
    /// Its counters. Another process's are as of its last report: each connected process
    /// sends its counters to the folder's holder once a second while they change.
    pub stats: Stats,
}

/// One event counter: counted here, and published through the `metrics` facade when that
/// feature is on and [`Counters::publish`] registered it.
#[derive(Debug, Default)]
pub(crate) struct Count {
    n: AtomicU64,
    #[cfg(feature = "metrics")]
    published: std::sync::OnceLock<metrics::Counter>,
}

impl Count {
    pub fn load(&self) -> u64 {
        self.n.load(Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub memory_hits: Count,
    pub disk_hits: Count,
    pub misses: Count,
    pub inserts: Count,
    pub evictions: Count,
    pub expirations: Count,
    pub invalidations: Count,
    pub type_mismatches: Count,
    pub damaged_records: Count,
    pub disk_bytes: AtomicU64,
    /// The side files' share of `disk_bytes`.
    pub disk_blob_bytes: AtomicU64,
    pub disk_file_bytes: AtomicU64,
    pub disk_entries: AtomicU64,
    pub disk_failures: Count,
    pub warm_loaded: Count,
    pub warming: AtomicBool,
    pub too_large_for_memory: Count,
    pub refreshes: Count,
    pub refresh_failures: Count,
    /// What happened to the keys dropped lately, for `Cache::explain`.
    pub graveyard: crate::explain::Graveyard,
}

thread_local! {
    /// Set while this thread does the cache's own bookkeeping (a memoized function's version
    /// check and note): its reads, writes and invalidations are not the user's.
    static BOOKKEEPING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's counting off (see [`BOOKKEEPING`]), restoring it afterwards.
pub(crate) fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = BOOKKEEPING.try_with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BOOKKEEPING.with(|b| b.replace(true)));
    f()
}

impl Counters {
    pub fn bump(counter: &Count) {
        Self::add(counter, 1);
    }

    /// Counts `n` events at once (unless this thread does the cache's own bookkeeping).
    pub fn add(counter: &Count, n: u64) {
        if BOOKKEEPING.try_with(|b| b.get()) == Ok(true) {
            return;
        }
        counter.n.fetch_add(n, Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(published) = counter.published.get() {
            published.increment(n);
        }
    }

    /// The event counters with their names and descriptions in the `metrics` facade (see
    /// [`Stats`] for what each counts).
    #[cfg(feature = "metrics")]
    fn named(&self) -> [(&'static str, &'static str, &Count); 14] {
        [
            (
                "tiered_memory_hits_total",
                "reads answered by the memory tier",
                &self.memory_hits,
            ),
            (
                "tiered_disk_hits_total",
                "reads answered by the disk tier",
                &self.disk_hits,
            ),
            (
                "tiered_misses_total",
                "reads that found nothing (read-throughs: computations)",
                &self.misses,
            ),
            (
                "tiered_inserts_total",
                "values stored (inserts and computations)",
                &self.inserts,
            ),
            (
                "tiered_evictions_total",
                "entries let go to stay within memory_capacity, and records within disk_capacity",
                &self.evictions,
            ),
            (
                "tiered_expirations_total",
                "entries found expired",
                &self.expirations,
            ),
            (
                "tiered_invalidations_total",
                "tag, namespace and whole-cache invalidations",
                &self.invalidations,
            ),
            (
                "tiered_type_mismatches_total",
                "reads as another type than the stored one",
                &self.type_mismatches,
            ),
            (
                "tiered_damaged_records_total",
                "damaged records found and dropped",
                &self.damaged_records,
            ),
            (
                "tiered_disk_failures_total",
                "failed disk writes and commits",
                &self.disk_failures,
            ),
            (
                "tiered_warm_loaded_total",
                "entries the warm restart loaded into memory",
                &self.warm_loaded,
            ),
            (
                "tiered_too_large_for_memory_total",
                "values larger than the whole memory tier",
                &self.too_large_for_memory,
            ),
            (
                "tiered_refreshes_total",
                "values recomputed in the background past refresh_after",
                &self.refreshes,
            ),
            (
                "tiered_refresh_failures_total",
                "background recomputations that failed",
                &self.refresh_failures,
            ),
        ]
    }

    /// Registers the event counters with the `metrics` recorder installed now, labelled
    /// `cache` = `label` (the folder, or `memory`), and describes them; from then on each count
    /// also goes to the recorder. Called as the cache opens, before anything is counted.
    /// Without a recorder the handles do nothing.
    #[cfg(feature = "metrics")]
    pub fn publish(&self, label: &str) {
        for (name, description, count) in self.named() {
            metrics::describe_counter!(name, metrics::Unit::Count, description);
            let _ = count
                .published
                .set(metrics::counter!(name, "cache" => label.to_string()));
        }
    }

    /// Counts a dead entry found by a read or the sweeper (stale ones count at invalidation).
    pub fn count_dead(&self, why: Dead) {
        match why {
            Dead::Expired => Self::bump(&self.expirations),
            Dead::Damaged => Self::bump(&self.damaged_records),
            // Outdated: a record of another format version, reclaimed once after an upgrade.
            Dead::Stale | Dead::Outdated => {}
        }
    }

    pub fn snapshot(&self) -> Stats {
        Stats {
            memory_hits: self.memory_hits.load(),
            disk_hits: self.disk_hits.load(),
            misses: self.misses.load(),
            inserts: self.inserts.load(),
            evictions: self.evictions.load(),
            expirations: self.expirations.load(),
            invalidations: self.invalidations.load(),
            type_mismatches: self.type_mismatches.load(),
            damaged_records: self.damaged_records.load(),
            memory_bytes: 0,
            disk_bytes: self.disk_bytes.load(Relaxed),
            disk_file_bytes: self.disk_file_bytes.load(Relaxed),
            entries: self.disk_entries.load(Relaxed),
            disk_failures: self.disk_failures.load(),
            warm_loaded: self.warm_loaded.load(),
            // Pairs with the loader's store: what it loaded is visible once this reads false.
            warming: self.warming.load(std::sync::atomic::Ordering::Acquire),
            too_large_for_memory: self.too_large_for_memory.load(),
            refreshes: self.refreshes.load(),
            refresh_failures: self.refresh_failures.load(),
        }
    }
}
