//! The warm restart: at open, a background thread loads the most recently used records into
//! the memory tier, so that the first reads after a restart are memory hits.
//!
//! The loader does not know the value types, so it loads payloads undecoded
//! ([`Value::Raw`]); the first read as the stored type decodes one (see `read.rs`). It obeys
//! the ordering rule of `ordering.rs` like any reader: it notes each key's stripe version
//! before it reads the record, and puts the entry in only if, under the stripe lock, the
//! version is unchanged *and* the memory tier has no entry for the key. So a write, a removal,
//! or a read that promoted the key first always wins, and the loader never replaces anything.
//! It never writes to disk or drops a record either: a dead one is passed over (the sweeper
//! or a read drops it).
//!
//! It never delays `open` (it starts after it) nor reads (it holds a stripe lock only to put
//! one entry in, and reads in small transactions: see `disk/warm.rs`). It stops between two
//! batches when the cache is dropped: dropping the cache waits for it, so the folder is
//! released when the drop returns, as without it.
//!
//! Side files (values of 64 KiB or more, in `blobs/`) are loaded like other records, within
//! the budget: a data frame read again after a restart is the most valuable entry to have in
//! memory, and the budget bounds what the loader reads. Each is read whole, checked, outside
//! any transaction; a missing or damaged one is passed over quietly (a reader of it drops its
//! record with a warning).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::Inner;
use crate::disk::warm::{Candidate, Source};
use crate::expiry::Clock;
use crate::generations::Generations;
use crate::memory::{self, MemEntry, MemoryTier, Raw, Value};
use crate::ordering::Stripes;
use crate::record;
use crate::stats::Counters;

/// Records read per read transaction (and per check of the stop flag).
const LOAD_BATCH: usize = 64;

/// The default budget is this fraction of `memory_capacity`…
const DEFAULT_SHARE: u64 = 4;
/// …capped at this.
const DEFAULT_CAP: u64 = 64 << 20;

/// The warm restart's budget when the builder does not set one: a quarter of the memory
/// tier, at most 64 MiB. A quarter leaves most of the tier to the session's own work (loaded
/// entries that are never read again only leave by eviction); the cap bounds what every
/// open reads from disk and holds for a large tier, since a dev server restarts often and
/// its first requests touch far less than that (64 MiB is ~100,000 entries of 100 bytes).
pub(crate) fn default_budget(memory_capacity: u64) -> u64 {
    (memory_capacity / DEFAULT_SHARE).min(DEFAULT_CAP)
}

/// The running loader: stopped (and waited for) when the cache is dropped.
pub(crate) struct Loader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Loader {
    /// Raises the stop flag and waits for the thread, which ends after its current batch.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the loader thread holds: parts of the cache, never the cache itself, so that the
/// cache can be dropped (and stop it) while it runs.
struct Run {
    memory: MemoryTier,
    stripes: Arc<Stripes>,
    gens: Arc<Generations>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    source: Source,
    stop: Arc<AtomicBool>,
    budget: u64,
}

impl Inner {
    /// Starts the warm restart with `budget` bytes (0: none). Returns at once.
    pub(crate) fn start_warm_restart(&self, budget: u64) {
        // Only the owner reads the file; a client's memory fills as it reads.
        let Some(source) = self.lower.folder().and_then(|d| d.warm_source()) else {
            return;
        };
        let budget = budget.min(self.memory.capacity());
        if budget == 0 {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        // Raised before the thread starts, so that a snapshot taken after `open` returned
        // never misses a loader that has yet to begin.
        self.counters.warming.store(true, Ordering::Relaxed);
        let run = Run {
            memory: self.memory.clone(),
            stripes: self.stripes.clone(),
            gens: self.gens.clone(),
            clock: self.clock.clone(),
            counters: self.counters.clone(),
            source,
            stop: stop.clone(),
            budget,
        };
        match std::thread::Builder::new()
            .name("tiered-warm".into())
            .spawn(move || run.run())
        {
            Ok(thread) => {
                let _ = self.warm.set(Loader {
                    stop,
                    thread: Some(thread),
                });
            }
            Err(e) => {
                self.counters.warming.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not start the warm restart; skipped");
            }
        }
    }
}

/// Lets the application's threads go first when the CPU is busy: the loader is background
/// work, and the first requests after a restart must not wait behind it. Linux only, where a
/// thread has its own nice value; elsewhere the loader runs at the normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id and priority.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10)
        };
        if rc != 0 {
            tracing::debug!("warm restart: could not lower the loader's priority");
        }
    }
}

/// How the loader ended.
#[derive(Debug)]
enum Ended {
    Done,
    Stopped,
    OutOfService,
}

impl Run {
    fn run(self) {
        // Lowered however the loader ends (a panic included).
        struct Warming<'a>(&'a AtomicBool);
        impl Drop for Warming<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _warming = Warming(&self.counters.warming);
        lower_priority();
        let started = Instant::now();
        let file = self.source.path().display().to_string();
        tracing::debug!(
            file,
            budget = self.budget,
            "warm restart: loading recently used entries"
        );
        let (mut loaded, mut bytes, mut ranked_ms) = (0u64, 0u64, 0u64);
        let ended = match self
            .source
            .rank(self.budget, self.memory.capacity(), &self.stop)
        {
            None if self.stop.load(Ordering::Relaxed) => Ended::Stopped,
            None => Ended::OutOfService,
            Some(chosen) => {
                ranked_ms = started.elapsed().as_millis() as u64;
                self.load(&chosen, &mut loaded, &mut bytes)
            }
        };
        tracing::debug!(
            file,
            loaded,
            bytes,
            ranked_ms,
            ms = started.elapsed().as_millis() as u64,
            ?ended,
            "warm restart: finished"
        );
    }

    /// Loads `chosen` in batches, most recent first.
    fn load(&self, chosen: &[Candidate], loaded: &mut u64, bytes: &mut u64) -> Ended {
        for batch in chosen.chunks(LOAD_BATCH) {
            if self.stop.load(Ordering::Relaxed) {
                return Ended::Stopped;
            }
            // Noted before the read: see `ordering.rs`.
            let noted: Vec<u64> = batch
                .iter()
                .map(|c| self.stripes.version(c.digest))
                .collect();
            let digests: Vec<u128> = batch.iter().map(|c| c.digest).collect();
            let Some(stored) = self.source.read(&digests) else {
                return Ended::OutOfService;
            };
            for ((digest, version), stored) in digests.into_iter().zip(noted).zip(stored) {
                let Some(entry) = stored.and_then(|s| self.entry(digest, version, &s)) else {
                    continue;
                };
                if *bytes + u64::from(entry.weight) > self.budget {
                    continue;
                }
                let weight = entry.weight;
                if self.put(digest, version, entry) {
                    *loaded += 1;
                    *bytes += u64::from(weight);
                    Counters::bump(&self.counters.warm_loaded);
                }
                if self.stop.load(Ordering::Relaxed) {
                    return Ended::Stopped;
                }
            }
        }
        Ended::Done
    }

    /// The raw memory entry for a record read at stripe version `version`, if it is live (and
    /// its side file, if any, reads back intact).
    fn entry(&self, digest: u128, version: u64, stored: &crate::tiers::Stored) -> Option<MemEntry> {
        let rec = record::decode(&stored.bytes).ok()?;
        let now = self.clock.now_ms();
        if rec
            .judge(digest, now, stored.last_access_ms, &self.gens)
            .is_some()
        {
            return None;
        }
        let payload: Box<[u8]> = match rec.blob() {
            None => rec.payload.into(),
            Some(blob) => match self.source.read_blob(&blob) {
                Ok(bytes) => bytes.into_boxed_slice(),
                Err(why) => {
                    // Replaced or removed meanwhile, or damaged: a reader will tell (and warn).
                    tracing::debug!(why, "warm restart: side file not loaded");
                    return None;
                }
            },
        };
        let gens: Box<[(u64, u64)]> = rec.generations().collect();
        let weight = memory::raw_weight(rec.key.len(), payload.len(), gens.len());
        let last = rec.last_used_ms(stored.last_access_ms);
        Some(MemEntry {
            value: Value::Raw(Raw {
                payload,
                meta: rec.meta,
            }),
            key: Box::from(rec.key),
            expiry: rec.meta.expiry,
            created_ms: rec.meta.created_ms,
            last_access_ms: last.into(),
            disk_touch_ms: last.into(),
            gens,
            checked_epoch: 0.into(),
            weight,
            on_disk: true,
            written_at: version,
        })
    }

    /// Puts `entry` in unless a write came since `version` was noted or the memory tier
    /// already has the key (a read promoted it, a write put it there): those always win.
    fn put(&self, digest: u128, version: u64, entry: MemEntry) -> bool {
        if !self.memory.admits(entry.weight) {
            return false;
        }
        let held = self.stripes.lock(digest);
        if held.version() != version || self.memory.contains(digest) {
            return false;
        }
        self.memory.insert(digest, entry);
        true
    }
}
