//! The read and write paths over both tiers, shared by [`Cache`](crate::Cache) and
//! [`Namespace`](crate::Namespace): reads in `read.rs`, writes in `write.rs`, both under the
//! per-key ordering rule of `ordering.rs`.

mod above;
mod explain;
mod read;
mod refresh;
pub(crate) mod runner;
#[cfg(test)]
mod tests;
mod through;
pub(crate) mod warm;
mod write;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::disk::lock;
use crate::error::{Error, Result};
use crate::expiry::Clock;
use crate::flight::Flights;
use crate::generations::{self, Generations};
use crate::memory::MemoryTier;
use crate::options::Options;
use crate::ordering::Stripes;
use crate::stats::{Counters, Stats};
use crate::tiers::Lower;

/// Where keys live: the root or a namespace, and the id of its generation.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub name: crate::key::ScopeName,
    pub id: u64,
}

impl Scope {
    /// The scope of the `Cache`'s own methods; not `namespace("")`.
    pub fn root() -> Self {
        Self::of(crate::key::ScopeName::root())
    }

    pub fn new(name: &str) -> Self {
        Self::of(crate::key::ScopeName::named(name))
    }

    fn of(name: crate::key::ScopeName) -> Self {
        Scope {
            id: generations::id(&generations::namespace_label(&name)),
            name,
        }
    }
}

type AnyValue = Arc<dyn Any + Send + Sync>;

pub(crate) struct Inner {
    pub memory: MemoryTier,
    /// The tier below memory: the folder, or `tiers::NoTier` for a cache in memory only.
    pub lower: Box<dyn Lower>,
    pub gens: Arc<Generations>,
    pub counters: Arc<Counters>,
    pub clock: Arc<dyn Clock>,
    pub defaults: Options,
    pub flights: Flights,
    pub resources: Mutex<HashMap<String, Arc<OnceLock<AnyValue>>>>,
    pub root: Scope,
    /// The per-key ordering rule's locks: see `ordering.rs`.
    pub stripes: Arc<Stripes>,
    /// The memoized functions used with this cache: see `memo.rs`.
    pub memo: crate::memo::Functions,
    /// Keys being recomputed in the background (`refresh.rs`).
    pub refreshing: Mutex<std::collections::HashSet<u128>>,
    /// The warm restart's loader, if one was started: see `warm.rs`.
    warm: OnceLock<warm::Loader>,
    all_id: u64,
    /// The fork generation this cache was opened in (see `fork.rs`).
    pub generation: u64,
    /// How to open this cache again in the child of a fork: its builder, with the folder's
    /// canonical path; `None` for a cache in memory only, which the child keeps.
    pub recipe: Option<crate::builder::CacheBuilder>,
}

impl Drop for Inner {
    /// Stops the warm restart's loader before the tiers close, so that the folder is
    /// released when the last clone of the cache is dropped, as without it.
    fn drop(&mut self) {
        // Counted from here: the exit waits for a close that another thread runs.
        let _closing = crate::process::Closing::begin();
        // Other processes stop sending requests this cache can no longer answer: they go to
        // the process that takes the folder over.
        self.lower.stop_serving();
        if let Some(loader) = self.warm.get_mut() {
            loader.stop();
        }
        // Whether this process holds the folder is asked before the close lets it go; the
        // fates are saved after it, once the sweeper (which buries what it deletes) stopped.
        let fates = self.fates_folder();
        // Closed here, inside the count above (its own drop would close it a moment later,
        // outside it).
        if let Err(e) = self.lower.close() {
            tracing::error!(error = %e, "closing the cache lost writes");
        }
        if let Some(folder) = fates {
            self.counters.graveyard.save(&folder, true);
        }
    }
}

impl Inner {
    pub fn new(
        memory: MemoryTier,
        lower: Box<dyn Lower>,
        gens: Arc<Generations>,
        counters: Arc<Counters>,
        clock: Arc<dyn Clock>,
        defaults: Options,
        stripes: Arc<Stripes>,
    ) -> Self {
        Inner {
            memory,
            lower,
            gens,
            counters,
            clock,
            defaults,
            flights: Flights::default(),
            resources: Mutex::default(),
            root: Scope::root(),
            stripes,
            memo: Default::default(),
            refreshing: Mutex::default(),
            warm: OnceLock::new(),
            all_id: generations::id(generations::ALL),
            generation: crate::fork::generation(),
            recipe: None,
        }
    }

    /// The generations an entry written now in `scope` with `opts` carries.
    pub(crate) fn stamp(&self, scope: &Scope, opts: &Options) -> Vec<(u64, u64)> {
        let mut ids = Vec::with_capacity(2 + opts.tags.len());
        ids.push(self.all_id);
        ids.push(scope.id);
        ids.extend(opts.tags.iter().map(|t| {
            let label = generations::tag_label(t);
            let id = generations::id(&label);
            // Named for listings and exports, and written to the file with the record.
            self.gens.know(&label, id);
            id
        }));
        self.gens.stamp(&ids)
    }

    // ---- invalidation ----

    /// Bumps `label`'s generation; with `settle`, a close of this process waits (briefly) for
    /// the sweep that reclaims what it made dead (see `disk::SETTLE_BUDGET`).
    pub fn bump(&self, label: String, settle: bool) -> Result<()> {
        Counters::bump(&self.counters.invalidations);
        tracing::debug!(%label, "invalidated");
        // The tier decides when the cache's generation moves: see `Lower::bump`.
        self.lower.bump(&self.gens, label, settle)
    }

    /// Drops at once the entries kept in memory only that invalidations made stale: such an
    /// entry holds what no other tier would free (an application's object), and nothing reads
    /// it again. Each goes as a write of its key would (in the key's order: a read-through
    /// running now is not joined by later callers). Entries also on disk are left to their
    /// next read or to eviction. One pass over the memory tier: run after an invalidation has
    /// returned (`Cache::free_invalidated`), and when another process's invalidation is heard
    /// of, never inside one (it would widen the moment where a computation starting during the
    /// invalidation is stamped after it).
    pub(crate) fn free_invalidated(&self) {
        let stale = self.memory.invalidated_memory_only(&self.gens);
        for &digest in &stale {
            let mut held = self.stripes.lock(digest);
            let still = self.memory.get(digest).is_some_and(|entry| {
                !entry.on_disk && !self.gens.is_current(entry.gens.iter().copied())
            });
            if still {
                held.bump();
                self.flights.detach(digest);
                self.memory.remove(digest);
            }
        }
        if !stale.is_empty() {
            // moka lets go of a removed value at its next housekeeping: now.
            self.memory.run_pending_tasks();
        }
    }

    pub fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.bump(generations::tag_label(tag), true)
    }

    /// [`clear_scope`](Inner::clear_scope) whose space a close need not wait for: entries
    /// that are probably not there (a memoized function's first use).
    pub fn clear_scope_later(&self, scope: &Scope) -> Result<()> {
        self.bump(generations::namespace_label(&scope.name), false)
    }

    pub fn clear_scope(&self, scope: &Scope) -> Result<()> {
        self.bump(generations::namespace_label(&scope.name), true)
    }

    pub fn clear(&self) -> Result<()> {
        self.bump(generations::ALL.to_string(), true)?;
        self.memory.clear();
        Ok(())
    }

    // ---- resources, housekeeping ----

    pub fn resource<T, F>(&self, name: &str, f: F) -> Result<Arc<T>>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> T,
    {
        let cell = lock(&self.resources)
            .entry(name.to_string())
            .or_default()
            .clone();
        let value = cell.get_or_init(|| Arc::new(f())).clone();
        value.downcast::<T>().map_err(|_| Error::ResourceType {
            name: name.to_string(),
            expected: std::any::type_name::<T>(),
        })
    }

    pub fn flush(&self) -> Result<()> {
        let flushed = self.lower.flush();
        self.save_fates(false);
        flushed
    }

    /// Keeps the fates of dropped keys in the folder this process holds, for `explain` after
    /// a restart (see `explain::Graveyard`); `now`: whatever the time since the last save.
    pub(crate) fn save_fates(&self, now: bool) {
        if let Some(folder) = self.fates_folder() {
            self.counters.graveyard.save(&folder, now);
        }
    }

    /// The folder this process holds, whose fates it keeps.
    fn fates_folder(&self) -> Option<std::path::PathBuf> {
        let folder = self.lower.folder().filter(|f| f.is_owner())?;
        Some(folder.dir().to_path_buf())
    }

    /// What became of a key dropped from the cache, as far as any process can tell: this
    /// process's graveyard, the holder of the folder's, the fates saved in the folder.
    pub(crate) fn fate(&self, digest: u128) -> Option<crate::Explanation> {
        let graveyard = &self.counters.graveyard;
        if let Some(fate) = graveyard.fate(digest) {
            return Some(fate);
        }
        if let Some(fate) = self.lower.fate(digest) {
            return Some(fate);
        }
        let folder = self.lower.folder()?;
        graveyard.load_once(folder.dir());
        graveyard.fate(digest)
    }

    pub fn stats(&self) -> Stats {
        // The memory tier's pending work (evictions it has decided on) is counted first, so
        // that the snapshot is consistent with the sizes it reports.
        self.memory.run_pending_tasks();
        let mut s = self.counters.snapshot();
        s.memory_bytes = self.memory.bytes();
        if !self.lower.keeps_records() {
            s.entries = self.memory.len();
        } else if let Some(shared) = self.lower.shared_stats() {
            // A client's disk figures are the owner's: the folder's.
            s.entries = shared.entries;
            s.disk_bytes = shared.disk_bytes;
            s.disk_file_bytes = shared.disk_file_bytes;
        }
        s
    }

    /// This process's own figures: its counters and its memory tier's bytes, without the
    /// folder's (see [`ProcessStats`](crate::ProcessStats)). No I/O.
    pub fn own_stats(&self) -> Stats {
        // As in `stats`: the memory tier's pending work first, so that its bytes are current.
        self.memory.run_pending_tasks();
        let mut s = self.counters.snapshot();
        s.memory_bytes = self.memory.bytes();
        s.entries = 0;
        s.disk_bytes = 0;
        s.disk_file_bytes = 0;
        s
    }

    /// See [`Cache::stats_by_process`](crate::Cache::stats_by_process).
    pub fn stats_by_process(&self) -> Result<Vec<crate::ProcessStats>> {
        let mut all = self.lower.other_processes()?;
        let holds_folder = self.lower.folder().is_some_and(|f| f.is_owner());
        all.push(crate::ProcessStats {
            pid: std::process::id(),
            holds_folder,
            this_process: true,
            stats: self.own_stats(),
        });
        // The holder first, then by process id.
        all.sort_by_key(|p| (!p.holds_folder, p.pid));
        Ok(all)
    }

    /// Why the disk tier is out of service, if it is.
    pub fn outage(&self) -> Option<crate::disk::Outage> {
        self.lower.outage()
    }
}
