//! [`Cache`]: the handle users hold. Its methods are thin; the work is in `engine.rs`.

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::builder::CacheBuilder;
use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::health::Health;
use crate::namespace::Namespace;
use crate::options::Options;
use crate::stats::Stats;

/// A two-tier cache: decoded values in memory, encoded records on disk.
///
/// `Cache` is `Clone + Send + Sync`; clones share one cache. When the last clone is dropped,
/// pending writes are committed and the folder is released; a cache still open when the process
/// exits is flushed then.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use tiered::Cache;
///
/// let cache = Cache::open(dir.path())?;
/// cache.insert("answer", 42u64)?;
/// assert_eq!(cache.get::<_, u64>("answer")?.as_deref(), Some(&42));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Cache {
    /// Dereferences to the cache of this process (a new one in the child of a fork: see
    /// `fork.rs`).
    pub(crate) inner: crate::fork::Handle,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Cache");
        match self.inner.lower.folder() {
            Some(folder) => d.field("path", &folder.path()),
            None => d.field("path", &"(memory only)"),
        };
        d.finish_non_exhaustive()
    }
}

impl Cache {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Cache {
            inner: crate::fork::Handle::new(inner),
        }
    }

    /// Opens (or creates) a cache in `path` with default settings.
    ///
    /// # Errors
    /// As [`CacheBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Cache> {
        Cache::builder().path(path).open()
    }

    /// A cache with a memory tier only: nothing touches the disk.
    pub fn in_memory() -> Cache {
        match Cache::builder().open() {
            Ok(cache) => cache,
            // The default settings are valid and an in-memory open does no I/O.
            Err(e) => unreachable!("in-memory cache with default settings: {e}"),
        }
    }

    /// Settings for a cache; see [`CacheBuilder`].
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// The value stored for `key`, if there is a live one of type `V`.
    ///
    /// A memory hit returns the shared `Arc` without decoding. A disk hit decodes the record and
    /// promotes it into memory. An expired or invalidated entry, a damaged record, or one stored
    /// as another type is a miss (the entry stays for readers of its own type); a record
    /// written by a build whose `V` had another shape is a miss and is dropped. A disk tier
    /// out of service (see [`Cache::health`]) makes disk reads misses, never errors.
    ///
    /// # Errors
    /// [`Error::Encode`] if the key cannot be encoded.
    pub fn get<K, V>(&self, key: &K) -> Result<Option<Arc<V>>>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.inner.get(&self.inner.root, key)
    }

    /// [`get`](Cache::get), with the part that may wait (a disk read, a request to the
    /// folder's owner, the decode of an entry the warm restart loaded) run inside `wait`, which
    /// must call the function it is given, once, and return its answer. A memory hit never
    /// calls `wait`. For a binding that lets go of a global lock while it waits and keeps it
    /// for a memory hit, without encoding the key twice (as
    /// [`get_from_memory`](Cache::get_from_memory) then `get` would); Python's `Cache.get`
    /// runs its disk reads with the GIL released this way.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use tiered::Cache;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// cache.insert("k", 7u32)?;
    /// cache.flush()?;
    /// drop(cache);
    ///
    /// let cache = Cache::builder().path(dir.path()).warm_restart(0).open()?;
    /// let waited = AtomicBool::new(false);
    /// let read = |io: &(dyn Fn() -> Option<std::sync::Arc<u32>> + Sync)| {
    ///     waited.store(true, Ordering::Relaxed); // a binding lets go of its lock here
    ///     io()
    /// };
    /// assert_eq!(cache.get_waiting("k", read)?.as_deref(), Some(&7)); // from disk
    /// assert!(waited.swap(false, Ordering::Relaxed));
    /// assert_eq!(cache.get_waiting("k", read)?.as_deref(), Some(&7)); // a memory hit
    /// assert!(!waited.load(Ordering::Relaxed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] if the key cannot be encoded.
    pub fn get_waiting<K, V>(
        &self,
        key: &K,
        wait: impl FnOnce(&(dyn Fn() -> Option<Arc<V>> + Sync)) -> Option<Arc<V>>,
    ) -> Result<Option<Arc<V>>>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.inner.get_waiting(&self.inner.root, key, wait)
    }

    /// The value stored for `key` if the memory tier holds a live one of type `V`: never reads
    /// the disk, never asks another process, never blocks on I/O. `None` says nothing about
    /// the disk: follow it with [`get`](Cache::get) for the full answer. A hit counts as a
    /// memory hit in [`stats`](Cache::stats); a `None` counts nothing.
    ///
    /// For callers that must not wait (an event loop, a binding that holds a global lock):
    ///
    /// ```
    /// use tiered::Cache;
    ///
    /// let cache = Cache::in_memory();
    /// cache.insert("k", 7u32)?;
    /// assert_eq!(cache.get_from_memory::<_, u32>("k")?.as_deref(), Some(&7));
    /// assert_eq!(cache.get_from_memory::<_, u32>("other")?, None);
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] if the key cannot be encoded.
    pub fn get_from_memory<K, V>(&self, key: &K) -> Result<Option<Arc<V>>>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.inner.get_from_memory(&self.inner.root, key)
    }

    /// Drops from the memory tier, at once, the entries kept in memory only (`memory_only`)
    /// that invalidations have made stale: a read would not return them, but they hold their
    /// values until read again or evicted, which for an object of the application's (a
    /// session's plots) may be long. One pass over the memory tier; entries also on disk are
    /// left alone. Another process's invalidations do this here by themselves.
    ///
    /// ```
    /// use tiered::{Cache, Options};
    ///
    /// let cache = Cache::in_memory();
    /// cache.insert_with("plot", vec![0u8; 1 << 20], &Options::new().memory_only().tags(["session-7"]))?;
    /// cache.invalidate_tag("session-7")?; // the session ended
    /// cache.free_invalidated();            // its plot's memory goes now
    /// assert_eq!(cache.stats().memory_bytes, 0);
    /// # Ok::<(), tiered::Error>(())
    /// ```
    pub fn free_invalidated(&self) {
        self.inner.free_invalidated();
    }

    /// Stores `value` under `key` with the cache's default options.
    ///
    /// With `Durability::Batched`, the insert may wait while the writer's queue is full
    /// (back-pressure), so that a crash loses only about the last two batch windows.
    ///
    /// # Errors
    /// [`Error::Encode`] if the key or value cannot be encoded, or the value would not read
    /// back as it was written (it names the type); [`Error::TooLarge`] if its record is larger
    /// than `disk_capacity`; with `Durability::Immediate`,
    /// [`Error::Storage`] if the commit fails or the disk tier is out of service (the value
    /// stays in memory).
    pub fn insert<K, V>(&self, key: &K, value: V) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.inner
            .insert(&self.inner.root, key, value, &Options::new())
    }

    /// Stores `value` under `key` with `options` (expiry, tags, memory-only).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tiered::{Cache, Options};
    ///
    /// let cache = Cache::in_memory();
    /// let opts = Options::new().ttl(Duration::from_secs(300)).tags(["prices"]);
    /// cache.insert_with(&("prices", 20261122u32), vec![1.5f64, 2.5], &opts)?;
    /// cache.invalidate_tag("prices")?;
    /// assert!(!cache.contains_key(&("prices", 20261122u32))?);
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Cache::insert`].
    pub fn insert_with<K, V>(&self, key: &K, value: V, options: &Options) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.inner.insert(&self.inner.root, key, value, options)
    }

    /// Whether a live entry exists for `key`, whatever its type.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub fn contains_key<K>(&self, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        self.inner.contains_key(&self.inner.root, key)
    }

    /// Removes the entry for `key` from both tiers; returns whether a live one existed.
    ///
    /// # Errors
    /// As [`Cache::insert`].
    pub fn remove<K>(&self, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        self.inner.remove(&self.inner.root, key)
    }

    /// The value for `key`, computed by `f` and stored if missing.
    ///
    /// Concurrent callers of one missing key run `f` once: the others wait and share its
    /// result. No lock is held while `f` runs, so `f` may use the cache itself; if it asks for
    /// its own key (or two computations ask for each other's), the call that would wait forever
    /// returns [`Error::Deadlock`]. A caller that starts after an invalidation of the entry's
    /// tags or namespace never gets a computation begun before it. If `f` panics,
    /// a waiting caller runs its own `f`. If the computed value cannot be stored (a full disk),
    /// it is still returned and a warning is logged.
    ///
    /// ```
    /// let cache = tiered::Cache::in_memory();
    /// let v = cache.get_or_insert_with(&"slow", &tiered::Options::new(), || 6 * 7)?;
    /// assert_eq!(*v, 42);
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] if the key cannot be encoded; [`Error::Deadlock`] as above.
    pub fn get_or_insert_with<K, V, F>(&self, key: &K, options: &Options, f: F) -> Result<Arc<V>>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> V,
    {
        self.inner
            .get_or_try_insert(&self.inner.root, key, options, || Ok::<V, Error>(f()))
    }

    /// Like [`get_or_insert_with`](Cache::get_or_insert_with) for a fallible computation: an
    /// `Err` is returned to the caller that ran `f` and is never cached; a waiting caller then
    /// runs its own `f`.
    ///
    /// ```
    /// #[derive(Debug)]
    /// enum AppError { Cache(tiered::Error), Db(String) }
    /// impl From<tiered::Error> for AppError {
    ///     fn from(e: tiered::Error) -> Self { AppError::Cache(e) }
    /// }
    ///
    /// let cache = tiered::Cache::in_memory();
    /// let opts = tiered::Options::new();
    /// let r = cache.try_get_or_insert_with(&"q", &opts, || Err::<u32, _>(AppError::Db("down".into())));
    /// assert!(matches!(r, Err(AppError::Db(_))));
    /// let v = cache.try_get_or_insert_with(&"q", &opts, || Ok::<u32, AppError>(7))?;
    /// assert_eq!(*v, 7);
    /// # Ok::<(), AppError>(())
    /// ```
    ///
    /// # Errors
    /// `f`'s error, or a cache error converted with `E: From<tiered::Error>`.
    pub fn try_get_or_insert_with<K, V, E, F>(
        &self,
        key: &K,
        options: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Result<V, E>,
    {
        self.inner
            .get_or_try_insert(&self.inner.root, key, options, f)
    }

    /// [`get_or_insert_with`](Cache::get_or_insert_with) with refresh ahead: with
    /// [`Options::refresh_after`], a read that finds a value older than that (and not expired)
    /// returns it at once and recomputes the key in the background, once per key across
    /// threads and processes; the new value replaces the old when ready. So readers wait for
    /// `f` only when no value exists. `f` must be able to run later on another thread: `Send`
    /// and `'static` (clone what it needs into it).
    ///
    /// A panic in a background `f` is caught, counted in `Stats::refresh_failures` and logged;
    /// the older value stays until its deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tiered::{Cache, Options};
    ///
    /// let cache = Cache::in_memory();
    /// let opts = Options::new()
    ///     .ttl(Duration::from_secs(3600))
    ///     .refresh_after(Duration::from_secs(300));
    /// let region = String::from("eu");
    /// let price = cache.get_or_refresh_with(&("price", "eu"), &opts, move || {
    ///     // A slow query, rerun in the background once the value is 5 minutes old.
    ///     if region == "eu" { 1.5f64 } else { 2.5 }
    /// })?;
    /// assert_eq!(*price, 1.5);
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`get_or_insert_with`](Cache::get_or_insert_with).
    pub fn get_or_refresh_with<K, V, F>(&self, key: &K, options: &Options, f: F) -> Result<Arc<V>>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> V + Send + 'static,
    {
        self.try_get_or_refresh_with(key, options, move || Ok::<V, Error>(f()))
    }

    /// [`get_or_refresh_with`](Cache::get_or_refresh_with) for a fallible computation: an
    /// `Err` of a caller's `f` is returned to it, as with
    /// [`try_get_or_insert_with`](Cache::try_get_or_insert_with); one of a background `f` is
    /// counted in `Stats::refresh_failures` and logged (hence `E: Display`), and the older
    /// value stays until its deadline.
    ///
    /// # Errors
    /// `f`'s error, or a cache error converted with `E: From<tiered::Error>`.
    pub fn try_get_or_refresh_with<K, V, E, F>(
        &self,
        key: &K,
        options: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error> + std::fmt::Display + Send + 'static,
        F: FnOnce() -> Result<V, E> + Send + 'static,
    {
        let ek = crate::key::encode_key(&self.inner.root.name, key)?;
        self.inner
            .get_or_try_refresh(&self.inner.root, ek, options, f)
    }

    /// Invalidates every entry carrying `tag`, in every namespace, in both tiers, persistently.
    ///
    /// Costs the same for ten entries or ten million: one generation bump. The sweeper
    /// reclaims the disk space in the background.
    ///
    /// # Errors
    /// With `Durability::Immediate`, [`Error::Storage`] if the bump cannot be committed.
    pub fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.inner.invalidate_tag(tag)
    }

    /// A namespace: the same methods as the cache, over keys that never meet other namespaces'.
    ///
    /// ```
    /// let cache = tiered::Cache::in_memory();
    /// let (a, b) = (cache.namespace("a"), cache.namespace("b"));
    /// a.insert("k", 1u8)?;
    /// assert!(b.get::<_, u8>("k")?.is_none());
    /// a.clear()?;
    /// assert!(a.get::<_, u8>("k")?.is_none());
    /// # Ok::<(), tiered::Error>(())
    /// ```
    pub fn namespace(&self, name: impl Into<String>) -> Namespace {
        Namespace::new(self.clone(), &name.into())
    }

    /// Drops every entry of every namespace (resources excepted).
    ///
    /// # Errors
    /// As [`Cache::invalidate_tag`].
    pub fn clear(&self) -> Result<()> {
        self.inner.clear()
    }

    /// An object that cannot (or need not) be serialized, such as a connection pool: created
    /// once per name by `f`, kept in memory by reference, never written to disk or evicted.
    ///
    /// ```
    /// let cache = tiered::Cache::in_memory();
    /// let pool = cache.resource("pool", || std::sync::Mutex::new(Vec::<u8>::new()))?;
    /// let again = cache.resource("pool", || unreachable!("made once"))?;
    /// assert!(std::sync::Arc::ptr_eq(&pool, &again));
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ResourceType`] if `name` already holds a value of another type.
    pub fn resource<T, F>(&self, name: &str, f: F) -> Result<Arc<T>>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> T,
    {
        self.inner.resource(name, f)
    }

    /// Waits until everything inserted so far is durable. If the disk tier is out of service,
    /// it first tries to bring it back.
    ///
    /// # Errors
    /// [`Error::Storage`] if this commit failed, or if writes made since the last flush were
    /// kept in memory only because the disk tier was out of service (reported once).
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Gives disk space back: commits what is queued, deletes dead records (expired,
    /// invalidated), evicts past `disk_capacity`, then compacts the database file so that it
    /// ends where its data ends.
    ///
    /// The cache does this by itself when it pays (see the guide's "Disk space"); call it after
    /// large deletions to get the space back at once, or before copying the folder. It runs on
    /// the writer thread: reads from the disk tier wait while the file is compacted (memory
    /// hits do not), and inserts queue behind it. It takes about as long as copying the
    /// records (measured: 2.5 s for a file holding 100 MB, 0.5 s for a 285 MB file with a tenth
    /// of it in use). A crash meanwhile loses nothing that was committed. For a cache in memory
    /// only it does nothing.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let cache = tiered::Cache::open(dir.path())?;
    /// for i in 0..1_000u32 {
    ///     cache.insert(&i, vec![0u8; 1_000])?;
    /// }
    /// cache.clear()?;
    /// cache.compact()?;
    /// assert!(cache.stats().disk_file_bytes < 1 << 20);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Cache::flush`]; [`Error::Storage`] if the disk tier is out of service, or if the
    /// compaction could not run (the cache goes on without it; the message says why).
    pub fn compact(&self) -> Result<()> {
        self.inner.lower.compact()
    }

    /// Counters and sizes; see [`Stats`].
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Each process's figures: this one's, and, for a cache folder that other processes
    /// have open, every connected process's counters (hits, misses, inserts, evictions…)
    /// and memory bytes, the holder of the folder first (see [`ProcessStats`](crate::ProcessStats)). Summed with
    /// `+=`, they give the hit ratio of a whole app that runs several workers; the `tiered
    /// stats` command shows them for a running app.
    ///
    /// This process's figures are read now; another process's are as of its last report
    /// (each client sends its counters to the holder once a second while they change). A
    /// process that closed its cache or exited is no longer listed. A cache in memory only,
    /// or in Redis without a folder, lists this process alone.
    ///
    /// ```
    /// let cache = tiered::Cache::in_memory();
    /// cache.insert("k", 1u32)?;
    /// let _ = cache.get::<_, u32>("k")?;
    /// let all = cache.stats_by_process()?;
    /// assert_eq!(all.len(), 1);
    /// assert!(all[0].this_process);
    /// assert_eq!(all[0].stats.memory_hits, 1);
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::OwnerNotAnswering`] if the process that holds the folder does not answer
    /// within [`request_timeout`](crate::CacheBuilder::request_timeout) (stopped, or busy).
    pub fn stats_by_process(&self) -> Result<Vec<crate::ProcessStats>> {
        self.inner.stats_by_process()
    }

    /// Why `key` is, or is not, a hit for a read as `V`: expired when, invalidated by which
    /// tag or clear, evicted, removed, stored as another type… (see [`Explanation`]; its
    /// `Display` says it in words). Changes nothing, refreshes nothing.
    ///
    /// What the tiers hold is judged exactly; of keys already dropped, the cache remembers the
    /// fate of the last 16,384, and older ones read as [`Explanation::NeverWritten`]. With a
    /// folder, the process that holds it remembers for every process (a client asks it,
    /// its own removals included) and keeps that memory in the folder across restarts
    /// (saved at flushes, at most every 10 s, and at close; a crash loses the newest).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tiered::{Cache, Explanation, ManualClock, Options};
    ///
    /// let clock = std::sync::Arc::new(ManualClock::new(std::time::SystemTime::now()));
    /// let cache = Cache::builder().clock(clock.clone()).open()?;
    /// cache.insert_with("report", 1u32, &Options::new().ttl(Duration::from_secs(60)))?;
    /// assert_eq!(cache.explain::<_, u32>("report")?, Explanation::Hit);
    /// assert!(matches!(cache.explain::<_, String>("report")?, Explanation::OtherType { .. }));
    /// clock.advance(Duration::from_secs(61));
    /// assert!(matches!(cache.explain::<_, u32>("report")?, Explanation::Expired { .. }));
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] if the key cannot be encoded.
    pub fn explain<K, V>(&self, key: &K) -> Result<Explanation>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.inner.explain::<K, V>(&self.inner.root, key)
    }

    /// The process id of the process that holds the cache folder, when it is another one:
    /// this process is then its client (see `docs/processes.md`). `None` when this process
    /// holds the folder, or for a cache in memory only.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let cache = tiered::Cache::open(dir.path())?;
    /// assert_eq!(cache.owner_pid(), None); // the first process to open a folder holds it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn owner_pid(&self) -> Option<u32> {
        self.inner.lower.folder().and_then(|d| d.owner_pid())
    }

    /// Whether every tier is in service, and if not, why; see [`Health`].
    pub fn health(&self) -> Health {
        self.inner
            .lower
            .health()
            .unwrap_or_else(|| self.inner.outage().into())
    }
}
