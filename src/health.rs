//! [`Health`]: whether every tier of a cache is in service.

use std::time::SystemTime;

/// Whether every tier of a cache is in service; see [`Cache::health`](crate::Cache::health).
///
/// When the disk tier fails (a full disk, an I/O error, a damaged file), the cache keeps
/// working from memory: reads are memory hits or misses, never older values, and writes are
/// kept in memory only. The failure is logged once. The tier comes back by itself when it can
/// (it reads again at once, and counts as healthy again once a write has been committed; space
/// returns; a damaged file is set aside with
/// [`DamagedFile::SetAside`](crate::DamagedFile::SetAside)), and [`Cache::flush`](crate::Cache::flush)
/// reports the writes that were kept in memory only meanwhile.
///
/// ```
/// let cache = tiered::Cache::in_memory();
/// assert!(cache.health().is_healthy());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Every tier works (a cache without a disk tier is always healthy).
    Healthy,
    /// The disk tier is out of service.
    DiskOutOfService {
        /// What failed, as reported by the storage.
        reason: String,
        /// When it went out of service.
        since: SystemTime,
        /// Whether the database file is damaged: then it comes back only if the cache was
        /// opened with `DamagedFile::SetAside` (the file is moved aside for a fresh one);
        /// otherwise delete the file and reopen.
        damaged: bool,
    },
    /// This process is a client of the process that holds the cache folder, and that process
    /// has not answered for `request_timeout` (see
    /// [`CacheBuilder::request_timeout`](crate::CacheBuilder::request_timeout)): reads are
    /// misses and writes fail with [`Error::OwnerNotAnswering`](crate::Error::OwnerNotAnswering)
    /// until it answers again.
    OwnerNotAnswering {
        /// The process id of the folder's owner.
        pid: u32,
        /// Since when it has not answered.
        since: SystemTime,
    },
    /// The Redis server cannot be reached, or refused a command (see `docs/redis.md`): reads
    /// that miss memory are misses, writes wait (briefly) and are sent, or their keys
    /// deleted, once it answers; no call fails because of it.
    RedisUnreachable {
        /// The last error, as the `redis` crate reports it (never the password).
        reason: String,
        /// Since when.
        since: SystemTime,
    },
    /// The Redis server refuses `CLIENT TRACKING` (an ACL, a managed service): the cache
    /// works, and writes and invalidations made through `tiered` reach every process
    /// through a pub/sub channel its writers publish to, but other clients' writes, flushes
    /// (`FLUSHALL`) and evictions are not heard (see `docs/redis.md`).
    RedisUntracked {
        /// Since when.
        since: SystemTime,
    },
    /// Another version of `tiered`, whose protocol this one cannot speak, holds the cache
    /// folder: this process keeps entries in memory only and takes the folder over when that
    /// process lets go of it.
    WaitingForFolder {
        /// Why, with the other process's id when known.
        reason: String,
        /// Since when.
        since: SystemTime,
    },
}

impl Health {
    /// Whether every tier is in service.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}

impl From<Option<crate::disk::Outage>> for Health {
    fn from(outage: Option<crate::disk::Outage>) -> Self {
        match outage {
            None => Health::Healthy,
            Some(o) => Health::DiskOutOfService {
                reason: o.failure.detail,
                since: o.since,
                damaged: o.failure.damaged,
            },
        }
    }
}
