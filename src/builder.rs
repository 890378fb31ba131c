//! [`CacheBuilder`]: every setting of a cache, validated by [`open`](CacheBuilder::open).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::disk::{create_folder, DiskConfig, OpenSettings};
use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::expiry::{Clock, SystemClock};
use crate::generations::Generations;
use crate::memory::MemoryTier;
use crate::options::Options;
use crate::ordering::Stripes;
use crate::process::DiskTier;
use crate::registry;
use crate::stats::Counters;
use crate::tiers::{Lower, NoTier};

/// The smallest disk tier that can hold anything useful: a few records and redb's own pages.
const MIN_DISK_CAPACITY: u64 = 1 << 20;

/// When an insert reaches the disk.
///
/// Either way a crash never corrupts the file, and everything [`Cache::flush`] returned for is
/// kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// An insert is on disk (fsync) when it returns. Concurrent inserts share one commit, so
    /// throughput grows with the number of writers.
    Immediate,
    /// Inserts return at once and are committed together at most this long after the first of
    /// them. A crash loses about the last two windows (the window, and the commit that follows
    /// it); inserts wait rather than let the queue outgrow that. [`Cache::flush`] forces a
    /// commit. `Duration::MAX` means "only when a batch is full or on flush".
    Batched(Duration),
}

impl Default for Durability {
    /// `Batched(50 ms)`.
    fn default() -> Self {
        Durability::Batched(Duration::from_millis(50))
    }
}

/// What [`CacheBuilder::open`] does with a database file that is damaged beyond repair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamagedFile {
    /// Return [`Error::Corrupt`] naming the file (the default): nothing is deleted.
    #[default]
    Fail,
    /// Rename the file to `tiered.redb.damaged-<unix ms>` beside it, log a warning and start
    /// an empty cache.
    SetAside,
}

/// Settings for a [`Cache`]; made by [`Cache::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use tiered::{Cache, Durability, Options};
///
/// let cache = Cache::builder()
///     .path("./.cache/app")
///     .memory_capacity(512 << 20)
///     .disk_capacity(8 << 30)
///     .default_options(Options::new().ttl(Duration::from_secs(3600)))
///     .durability(Durability::Batched(Duration::from_millis(50)))
///     .open_timeout(Duration::from_secs(10))
///     .open()?;
/// # Ok::<(), tiered::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct CacheBuilder {
    path: Option<PathBuf>,
    memory_capacity: u64,
    disk_capacity: u64,
    page_cache: usize,
    defaults: Options,
    durability: Durability,
    open_timeout: Duration,
    request_timeout: Duration,
    clock: Arc<dyn Clock>,
    on_damaged_file: DamagedFile,
    /// The warm restart's budget; `None`: the default for the memory capacity.
    warm_restart: Option<u64>,
    #[cfg(any(test, feature = "testing-faults"))]
    faults: Option<Arc<crate::disk::faults::Faults>>,
    /// Redis below the memory tier; an empty URL for none.
    #[cfg(feature = "redis")]
    redis: crate::tiers::redis::RedisConfig,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            path: None,
            memory_capacity: 256 << 20,
            disk_capacity: 4 << 30,
            page_cache: 32 << 20,
            defaults: Options::new(),
            durability: Durability::default(),
            open_timeout: Duration::from_secs(10),
            request_timeout: crate::process::REQUEST_TIMEOUT,
            clock: Arc::new(SystemClock),
            on_damaged_file: DamagedFile::Fail,
            warm_restart: None,
            #[cfg(any(test, feature = "testing-faults"))]
            faults: None,
            #[cfg(feature = "redis")]
            redis: crate::tiers::redis::RedisConfig::new(String::new()),
        }
    }
}

impl CacheBuilder {
    fn settings(&self) -> registry::Settings {
        registry::Settings {
            memory_capacity: self.memory_capacity,
            disk_capacity: self.disk_capacity,
            page_cache: self.page_cache,
            durability: self.durability,
            defaults: self.defaults.clone(),
            open_timeout: self.open_timeout,
            request_timeout: self.request_timeout,
            on_damaged_file: self.on_damaged_file,
            warm_restart: self.warm_restart,
            #[cfg(feature = "redis")]
            redis: match !self.redis.given {
                true => String::new(),
                false => format!("{} {}", self.redis.shown_url(), self.redis.prefix),
            },
            #[cfg(not(feature = "redis"))]
            redis: String::new(),
        }
    }

    /// The disk tier's folder, created (mode 0700) if missing; an existing one open to other
    /// users is made 0700 at open (see `docs/format.md`, "Permissions"). Default: none, which
    /// makes a memory-only cache.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Bytes the memory tier may hold, weighed by each entry's encoded size. Default: 256 MiB.
    pub fn memory_capacity(mut self, bytes: u64) -> Self {
        self.memory_capacity = bytes;
        self
    }

    /// Bytes the disk tier's folder may take: the least recently used records are deleted so
    /// that the folder (the database file and the side files) stays within 1.5 times this once
    /// background work has run. The database file takes more than its records (partly empty
    /// pages, the copies a commit makes, growth by doubling), so a cache of small values holds
    /// well under this in record bytes; see the guide's "Disk space". A folder that already
    /// holds more (a lowered capacity) is brought under it in the background after `open`.
    /// At least 1 MiB; a value whose record is larger is refused at insert
    /// ([`Error::TooLarge`]). Default: 4 GiB.
    pub fn disk_capacity(mut self, bytes: u64) -> Self {
        self.disk_capacity = bytes;
        self
    }

    /// Warm restart: at open, a background thread loads the most recently used entries (by
    /// their last read, else their creation) into the memory tier, up to `budget_bytes` of
    /// it (weighed as [`Stats::memory_bytes`](crate::Stats::memory_bytes) weighs them), so
    /// that the first reads after a restart are memory hits. `open` does not wait for it, and
    /// reads, writes and removals go ahead meanwhile; whatever they do to a key wins over the
    /// loader. Entries are loaded undecoded: the first read of one decodes it. Dropping the
    /// cache stops it. [`Stats::warm_loaded`](crate::Stats::warm_loaded) counts what it loaded.
    ///
    /// `0` turns it off; a budget above `memory_capacity` is taken as `memory_capacity`.
    /// Default: a quarter of `memory_capacity`, at most 64 MiB.
    pub fn warm_restart(mut self, budget_bytes: u64) -> Self {
        self.warm_restart = Some(budget_bytes);
        self
    }

    /// Bytes of redb's own page cache, on top of the memory tier. Default: 32 MiB.
    pub fn disk_page_cache(mut self, bytes: usize) -> Self {
        self.page_cache = bytes;
        self
    }

    /// Options for entries that do not set their own (see [`Options`]). Default: none.
    pub fn default_options(mut self, options: Options) -> Self {
        self.defaults = options;
        self
    }

    /// When inserts reach the disk. Default: `Durability::Batched(50 ms)`.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long `open` waits for another process to let go of the folder when that process
    /// cannot be reached (a process that serves the folder is used through it at once: see
    /// `docs/processes.md`), and how long a client waits for a new owner when its owner went
    /// away. Default: 10 s.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// How long a call waits for the answer of the process that holds the folder, when this
    /// process is its client (see `docs/processes.md`). Past it, the owner counts as not
    /// answering (stopped by a debugger or SIGSTOP, a frozen container): a read is a miss,
    /// `get_or_insert_with` computes and returns its value, a write, an invalidation, a
    /// flush or a listing returns [`Error::OwnerNotAnswering`](crate::Error::OwnerNotAnswering)
    /// (the write may still be applied if the owner resumes), and [`Cache::health`] says so.
    /// Until the owner answers again, calls do not wait for it. A key's lease held by a
    /// live process that is still computing is waited for as long as it computes; one
    /// held by a process that stopped answering is not. Default: 5 s (it should stay above
    /// the 2 s that a write waits for a stopped client's acknowledgement).
    ///
    /// [`Cache::health`]: crate::Cache::health
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Shares the cache through the Redis server at `url`
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` over TLS with the feature
    /// `redis-tls`), below this process's memory tier: a value written here is read by every
    /// process and machine that opens the same server with the same prefix, and each one's
    /// memory tier hears of the writes and invalidations made elsewhere (see
    /// `docs/redis.md`). The password is never logged or shown.
    ///
    /// With a [`path`](CacheBuilder::path) too, the folder sits between memory and Redis and
    /// keeps copies of Redis's records: a value read again after a restart is read from the
    /// local disk, once Redis confirmed (in one small round trip, plus a lookup of each of
    /// its labels' tokens this process does not hold yet) that the copy is still its record;
    /// an unconfirmed copy is never served. A process without Redis is refused such a folder
    /// (`Error::Config`).
    ///
    /// ```no_run
    /// let cache = tiered::Cache::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .redis_prefix("myapp:")
    ///     .open()?;
    /// cache.insert("k", 1)?;
    /// # Ok::<(), tiered::Error>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis.url = url.into();
        self.redis.given = true;
        self
    }

    /// The prefix of every key the cache writes to Redis (default `tiered:`): caches with
    /// different prefixes on one server are independent.
    #[cfg(feature = "redis")]
    pub fn redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redis.prefix = prefix.into();
        self
    }

    /// How long connecting to Redis (default 1 s) and each command (default 1 s) may take
    /// before the server counts as unreachable: a read then misses; a write that could not
    /// be sent is replaced by a deletion of its key once the server answers (an invalidation
    /// is sent again).
    #[cfg(feature = "redis")]
    pub fn redis_timeouts(mut self, connect: Duration, command: Duration) -> Self {
        self.redis.connect_timeout = connect.max(Duration::from_millis(1));
        self.redis.command_timeout = command.max(Duration::from_millis(1));
        self
    }

    /// How long a process's listener may go without hearing back the probe it writes
    /// (default 1 s): a listener that hears nothing within it counts as deaf (a half-open
    /// connection), and what the process holds from Redis is dropped until it hears again.
    /// A probe is written every twice this, so a deaf listener is noticed within about 3.5
    /// times it. Shorter notices sooner, at one small write per probe period (tracking
    /// itself is checked every half of it, at most every 0.5 s); at least 10 ms.
    #[cfg(feature = "redis")]
    pub fn redis_listener_timeout(mut self, timeout: Duration) -> Self {
        self.redis.listener_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// For a `rediss://` server whose certificate chains to a private authority: that
    /// authority's certificate (PEM), trusted instead of the system's roots.
    #[cfg(feature = "redis-tls")]
    pub fn redis_tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis.root_cert = Some(pem.into());
        self
    }

    /// For a `rediss://` server that asks its clients for a certificate (mutual TLS,
    /// `tls-auth-clients yes`): the certificate chain and its private key this client shows,
    /// both PEM. Read at [`open`](CacheBuilder::open): one that cannot be parsed fails it
    /// with [`Error::Config`](crate::Error::Config); a certificate the server refuses makes
    /// the server unreachable (`health()` says why). The key is never logged or shown.
    #[cfg(feature = "redis-tls")]
    pub fn redis_tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.redis.client_cert = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The largest record sent to Redis (default 8 MiB); a larger value stays in this
    /// process's memory tier, and the key's older value in Redis is deleted.
    #[cfg(feature = "redis")]
    pub fn redis_max_value_bytes(mut self, bytes: u64) -> Self {
        self.redis.max_record_bytes = bytes;
        self
    }

    /// Where the cache reads the time; tests pass a [`ManualClock`](crate::ManualClock).
    /// Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Tests: open the database on a backend that fails on command and records crash images
    /// (feature `testing-faults`; not part of the documented API).
    #[cfg(any(test, feature = "testing-faults"))]
    #[doc(hidden)]
    pub fn faults(mut self, faults: Arc<crate::disk::faults::Faults>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// What to do with a damaged database file. Default: [`DamagedFile::Fail`].
    pub fn on_damaged_file(mut self, what: DamagedFile) -> Self {
        self.on_damaged_file = what;
        self
    }

    /// Opens the cache.
    ///
    /// Within one process, opening a folder that is already open, by any path that resolves to
    /// it (a symlink, `..`), returns the open cache: its settings win, and a warning is logged
    /// naming each setting that differs. If another process holds the folder, this process
    /// becomes its client at once (see `docs/processes.md`); one that cannot be reached is
    /// waited for up to `open_timeout`, and meanwhile this process can open other folders.
    ///
    /// # Errors
    /// - [`Error::Config`] for a zero memory capacity, a disk capacity under 1 MiB, a
    ///   `Batched` window of zero, an empty path, a path that is a file, or a folder of another
    ///   user that others may write to (see `docs/format.md`, "Permissions").
    /// - [`Error::Locked`] when another process holds the folder, cannot be reached (it serves
    ///   no socket) and does not let go within `open_timeout`; it names that process.
    /// - [`Error::Corrupt`] when the database file is damaged (unless
    ///   [`DamagedFile::SetAside`]).
    /// - [`Error::Io`] when the folder cannot be created or read.
    pub fn open(self) -> Result<Cache> {
        self.open_inner(None).map(Cache::from_inner)
    }

    /// A cache with the tier `lower` makes below its memory tier and no folder: [`NoTier`]
    /// for a cache in memory only (its counters published as `label`).
    fn open_over(
        self,
        lower: impl FnOnce(&Arc<Generations>) -> Result<Box<dyn Lower>>,
        label: &str,
        recipe: Option<CacheBuilder>,
    ) -> Result<Arc<Inner>> {
        let gens = Arc::new(Generations::default());
        let lower = lower(&gens)?;
        let counters = Arc::new(Counters::default());
        #[cfg(feature = "metrics")]
        counters.publish(label);
        #[cfg(not(feature = "metrics"))]
        let _ = label;
        let memory = MemoryTier::new(self.memory_capacity, self.clock.clone(), counters.clone());
        let mut inner = Inner::new(
            memory,
            lower,
            gens,
            counters,
            self.clock,
            self.defaults,
            Arc::default(),
        );
        inner.recipe = recipe;
        let inner = Arc::new(inner);
        let above: std::sync::Weak<Inner> = Arc::downgrade(&inner);
        inner.lower.attach(above);
        Ok(inner)
    }

    /// A cache over a test's stand-in tier (`tiers/stand_in.rs`).
    #[cfg(test)]
    pub(crate) fn open_over_tier(self, lower: Box<dyn Lower>) -> Cache {
        match self.open_over(|_| Ok(lower), "stand-in", None) {
            Ok(inner) => Cache::from_inner(inner),
            Err(e) => unreachable!("a stand-in tier opens without I/O: {e}"),
        }
    }

    /// A cache with Redis below its memory tier (see `docs/redis.md`); opened again, with
    /// new connections, in the child of a fork.
    #[cfg(feature = "redis")]
    fn open_redis(self) -> Result<Arc<Inner>> {
        // A child of a fork opens its own connections and threads (see `fork.rs`).
        crate::fork::install();
        let recipe = self.clone();
        let cfg = self.redis.clone();
        let clock = self.clock.clone();
        let label = cfg.shown_url();
        self.open_over(
            |gens| {
                let tier = crate::tiers::redis::RedisTier::new(cfg, gens.clone(), clock)?;
                Ok(Box::new(tier))
            },
            &label,
            Some(recipe),
        )
    }

    /// [`open`](CacheBuilder::open)'s work; `waiting`: for a child of a fork that could not
    /// reach the folder, why (the disk tier then waits for the folder, as for a holder of
    /// another version: see `process::DiskTier::waiting`).
    fn open_inner(self, waiting: Option<String>) -> Result<Arc<Inner>> {
        if self.memory_capacity == 0 {
            return Err(Error::Config(
                "memory_capacity is 0: give the memory tier some bytes".into(),
            ));
        }
        if self.durability == Durability::Batched(Duration::ZERO) {
            return Err(Error::Config(
                "Durability::Batched needs a window above zero; use Durability::Immediate".into(),
            ));
        }
        #[cfg(feature = "redis")]
        if self.redis.given && self.path.is_none() {
            return self.open_redis();
        }
        let Some(path) = self.path.clone() else {
            return self.open_over(|_| Ok(Box::new(NoTier)), "memory", None);
        };
        if self.disk_capacity < MIN_DISK_CAPACITY {
            return Err(Error::Config(format!(
                "disk_capacity is {} bytes: give the disk tier at least {} (1 MiB), or build \
                 without a path for a cache in memory only",
                self.disk_capacity, MIN_DISK_CAPACITY
            )));
        }
        if path.as_os_str().is_empty() {
            return Err(Error::Config(
                "the cache path is empty: give a folder, e.g. ./.cache/app".into(),
            ));
        }
        // The registry knows a folder by its canonical path, so that a symlink or a `..` path
        // to an open folder finds its cache; canonicalizing needs the folder to exist.
        create_folder(&path)?;
        let folder = std::fs::canonicalize(&path).map_err(|e| Error::io(&path, e))?;
        let span = tracing::info_span!("tiered.open", folder = %folder.display());
        let _entered = span.enter();
        let settings = self.settings();
        let slot = registry::slot(&folder);
        let _opening = slot.lock_opening();
        if let Some((inner, open_settings)) = slot.live() {
            // Where values go is not a setting to ignore: a cache asked for with Redis must
            // not quietly be one without it, nor the reverse.
            if open_settings.redis != settings.redis {
                let shown = |r: &str| match r {
                    "" => "without Redis".to_string(),
                    r => format!("in front of Redis ({r})"),
                };
                return Err(Error::Config(format!(
                    "the folder {} is already open in this process {}, and was asked for {}: \
                     open it the same way, or use the open cache",
                    folder.display(),
                    shown(&open_settings.redis),
                    shown(&settings.redis)
                )));
            }
            let differences = open_settings.differences(&settings);
            if !differences.is_empty() {
                tracing::warn!(
                    ignored = %differences.join("; "),
                    "the folder is already open in this process with other settings; \
                     returning the open cache, whose settings win"
                );
            }
            return Ok(inner);
        }
        // A folder of copies of a cache in Redis is not opened without it (`tiers/marker.rs`);
        // one in front of Redis is marked once it is open.
        match settings.redis.is_empty() {
            true => crate::tiers::marker::refuse_if_marked(&folder)?,
            false => crate::tiers::marker::refuse_if_local(&folder)?,
        }
        crate::fork::install();
        // What a child of a fork opens again (see `fork.rs`): this folder, these settings.
        let recipe = CacheBuilder {
            path: Some(folder.clone()),
            ..self.clone()
        };
        let counters = Arc::new(Counters::default());
        #[cfg(feature = "metrics")]
        counters.publish(&folder.to_string_lossy());
        let memory = MemoryTier::new(self.memory_capacity, self.clock.clone(), counters.clone());
        let cfg = DiskConfig {
            dir: folder.clone(),
            open_timeout: self.open_timeout,
            request_timeout: self.request_timeout,
            durability: self.durability,
            capacity: self.disk_capacity,
            open: OpenSettings {
                page_cache: self.page_cache,
                on_damage: self.on_damaged_file,
                #[cfg(any(test, feature = "testing-faults"))]
                faults: self.faults.clone(),
            },
        };
        let gens = Arc::new(Generations::default());
        // In front of Redis, the folder keeps copies of Redis's records, stamped with its
        // tokens: judged by their deadlines only (see `tiers/chain.rs`).
        #[cfg(feature = "redis")]
        let in_front = self.redis.given;
        #[cfg(not(feature = "redis"))]
        let in_front = false;
        let folder_gens = match in_front {
            true => Arc::new(Generations::foreign()),
            false => gens.clone(),
        };
        // Before the folder is taken: a URL that cannot be used fails the open at once.
        #[cfg(feature = "redis")]
        let far = match in_front {
            true => Some(crate::tiers::redis::RedisTier::new(
                self.redis.clone(),
                gens.clone(),
                self.clock.clone(),
            )?),
            false => None,
        };
        let stripes = Arc::new(Stripes::default());
        let disk = match waiting {
            None => DiskTier::open(
                cfg,
                self.clock.clone(),
                counters.clone(),
                folder_gens.clone(),
                stripes.clone(),
                memory.view.clone(),
            )?,
            Some(why) => DiskTier::waiting(
                cfg,
                self.clock.clone(),
                counters.clone(),
                folder_gens,
                stripes.clone(),
                memory.view.clone(),
                why,
            )?,
        };
        // The folder's copies are not loaded at open: each is served only once Redis
        // confirmed it, on its first read.
        let warm_budget = match in_front {
            true => 0,
            false => self
                .warm_restart
                .unwrap_or_else(|| crate::engine::warm::default_budget(self.memory_capacity)),
        };
        #[cfg(feature = "redis")]
        let lower: Box<dyn Lower> = match far {
            Some(far) => {
                crate::tiers::marker::mark(&folder, &settings.redis)?;
                Box::new(crate::tiers::chain::Chain::new(disk, far))
            }
            None => Box::new(disk),
        };
        #[cfg(not(feature = "redis"))]
        let lower: Box<dyn Lower> = Box::new(disk);
        let mut inner = Inner::new(
            memory,
            lower,
            gens,
            counters,
            self.clock,
            self.defaults,
            stripes,
        );
        inner.recipe = Some(recipe);
        let inner = Arc::new(inner);
        let above: std::sync::Weak<Inner> = Arc::downgrade(&inner);
        inner.lower.attach(above);
        slot.set(&inner, settings);
        tracing::info!(
            entries = inner
                .counters
                .disk_entries
                .load(std::sync::atomic::Ordering::Relaxed),
            "cache opened"
        );
        inner.start_warm_restart(warm_budget);
        Ok(inner)
    }
}

/// For the first use of a cache in the child of a fork (see `fork.rs`): the folder of
/// `parents` (the cache inherited from the parent, left untouched) opened again in this
/// process with the same settings, or the cache this process opened there since. If the
/// folder cannot be reached now, the cache waits for it (calls that need the folder fail
/// meanwhile, [`Cache::health`] says why), and if even that fails it keeps entries in memory
/// only; both are logged.
pub(crate) fn reopen(parents: &Inner) -> Arc<Inner> {
    let Some(recipe) = parents.recipe.clone() else {
        unreachable!("a cache in memory only is never opened again after a fork");
    };
    let error = match recipe.clone().open_inner(None) {
        Ok(inner) => return inner,
        Err(e) => e,
    };
    tracing::error!(error = %error, "after fork(), the cache folder could not be opened again");
    let why = format!("after fork(), this process could not reach the cache folder: {error}");
    match recipe.clone().open_inner(Some(why)) {
        Ok(inner) => inner,
        Err(e) => {
            tracing::error!(error = %e, "after fork(), the cache keeps entries in memory only");
            let memory_only = CacheBuilder {
                path: None,
                #[cfg(feature = "redis")]
                redis: crate::tiers::redis::RedisConfig::new(String::new()),
                ..recipe
            };
            match memory_only.open_inner(None) {
                Ok(inner) => inner,
                // The settings were valid for the parent's open, and a memory-only open does
                // no I/O.
                Err(e) => unreachable!("in-memory cache with the parent's settings: {e}"),
            }
        }
    }
}
