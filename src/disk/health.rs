//! Whether the disk tier is in service, and what it owes when it is not.
//!
//! When a commit fails (a full disk, an I/O error) or the file turns out damaged, the tier goes
//! *out of service*: reads skip the database (memory hits still work; the rest are misses),
//! and every write it receives is kept in memory only. Each such key is *shadowed*: its digest
//! is remembered so that the older record still in the file is never read again. The writer
//! thread then tries to bring the tier back (reopen the file; set a damaged one aside when
//! asked), deletes the shadowed records and writes the current generations in one commit, and
//! only then serves reads from the file again. So a failure never exposes a value older than
//! an acknowledged write or removal.
//!
//! A failure is logged once, when the tier goes out of service, and once more when it returns.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use super::lock;

/// Why a write or read of the database failed.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// What happened, without the file's path.
    pub detail: String,
    /// The file is damaged (not a passing I/O condition).
    pub damaged: bool,
}

/// The tier is out of service since `since`, because of `failure`.
#[derive(Clone, Debug)]
pub(crate) struct Outage {
    pub failure: Failure,
    pub since: SystemTime,
}

#[derive(Default)]
pub(crate) struct HealthState {
    outage: Mutex<Option<Outage>>,
    down: AtomicBool,
    shadows: Mutex<HashSet<u128>>,
    shadows_len: AtomicUsize,
    /// Writes nobody waited for that were kept in memory only since the last flush.
    lost: AtomicU64,
    /// The first failure among them, for the flush that reports them.
    lost_reason: Mutex<Option<String>>,
}

impl HealthState {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub fn outage(&self) -> Option<Outage> {
        lock(&self.outage).clone()
    }

    /// Takes the tier out of service; returns whether this starts an outage (the caller logs
    /// it). A failure while the tier is on probation (see [`resume`](Self::resume)) continues
    /// the same outage: a disk that is still full is reported once, not at every retry.
    pub fn go_down(&self, failure: Failure) -> bool {
        let mut outage = lock(&self.outage);
        self.down.store(true, Ordering::Release);
        if let Some(o) = outage.as_mut() {
            // A damage report outranks a passing I/O failure.
            if failure.damaged && !o.failure.damaged {
                o.failure = failure;
            }
            return false;
        }
        *outage = Some(Outage {
            failure,
            since: SystemTime::now(),
        });
        true
    }

    /// The file is open again: serve from it, on probation until it has gone a while without
    /// failing ([`confirm`](Self::confirm)); the outage stays on record until then.
    pub fn resume(&self) {
        self.down.store(false, Ordering::Release);
    }

    /// A commit succeeded: ends an outage on probation; returns how long it lasted.
    pub fn confirm(&self) -> Option<std::time::Duration> {
        if self.is_down() {
            return None;
        }
        let was = lock(&self.outage).take();
        was.map(|o| o.since.elapsed().unwrap_or_default())
    }

    /// Remembers that the record of `digest` in the file is out of date.
    pub fn shadow(&self, digest: u128) {
        let mut shadows = lock(&self.shadows);
        shadows.insert(digest);
        self.shadows_len.store(shadows.len(), Ordering::Release);
    }

    pub fn is_shadowed(&self, digest: u128) -> bool {
        self.shadows_len.load(Ordering::Acquire) != 0 && lock(&self.shadows).contains(&digest)
    }

    /// The shadowed digests, to delete from the file on recovery.
    pub fn shadowed(&self) -> Vec<u128> {
        lock(&self.shadows).iter().copied().collect()
    }

    /// Forgets shadows whose records were deleted.
    pub fn unshadow(&self, digests: &[u128]) {
        let mut shadows = lock(&self.shadows);
        for d in digests {
            shadows.remove(d);
        }
        self.shadows_len.store(shadows.len(), Ordering::Release);
    }

    /// Counts a write nobody waited for that did not reach the file.
    pub fn lose(&self, reason: &str) {
        self.lost.fetch_add(1, Ordering::AcqRel);
        lock(&self.lost_reason).get_or_insert_with(|| reason.to_string());
    }

    /// The writes lost since the last call, and why, for `flush` to report once.
    pub fn take_lost(&self) -> Option<(u64, String)> {
        let n = self.lost.swap(0, Ordering::AcqRel);
        let reason = lock(&self.lost_reason).take();
        (n > 0).then(|| (n, reason.unwrap_or_default()))
    }
}
