//! Refresh ahead (`Options::refresh_after`): a read-through that finds a value older than its
//! refresh age, but not expired, returns it at once and recomputes the key on a thread of its
//! own; the new value replaces the old when ready.
//!
//! One recomputation per key: within the process, the key is marked as refreshing (a read
//! that finds it marked starts none); across processes, the recomputation holds the key's
//! lease of the tier below (the folder's owner, Redis), taken with `force` (the record there
//! is the one being replaced). A process that finds the lease held waits for it on its
//! background thread, never in a reader, and then leaves the key to the value the holder
//! stored.
//!
//! The new value is stored only if no write of the key came since the value it replaces was
//! read (`IfCurrent::Unchanged`: an insert, a removal or an invalidation meanwhile wins), and
//! with the generations current when the recomputation started, so an invalidation during it
//! makes it stale. A failed recomputation (an error or a panic) is counted and logged; the
//! older value stays until its own deadline.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::write::IfCurrent;
use super::{Inner, Scope};
use crate::disk::lock;
use crate::error::{Error, Result};
use crate::key::EncodedKey;
use crate::memory::MemEntry;
use crate::options::Options;
use crate::stats::Counters;
use crate::tiers::Lease;

/// Recomputations running at once in a process, at most (each on a thread of its own).
const MAX_RUNNING: usize = 64;

/// Unmarks a key when its recomputation ends, however it ends (if the cache is still open).
struct Refreshing {
    inner: Weak<Inner>,
    digest: u128,
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            lock(&inner.refreshing).remove(&self.digest);
        }
    }
}

impl Inner {
    /// Read-through with refresh ahead, for a computation that can run later on another
    /// thread.
    pub fn get_or_try_refresh<V, E, F>(
        self: &Arc<Self>,
        scope: &Scope,
        ek: EncodedKey,
        opts: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error> + std::fmt::Display + Send + 'static,
        F: FnOnce() -> Result<V, E> + Send + 'static,
    {
        if let Some(v) = self.lookup::<V>(&scope.name, &ek) {
            self.refresh_hit(scope, ek, opts, f);
            return Ok(v);
        }
        self.compute_blocking(scope, ek, opts, f)
    }

    /// After a hit of `ek`: starts its recomputation by `f` if `opts` (or the cache's default
    /// options) ask for refresh ahead and the value is due; else drops `f`. For read-throughs
    /// of their own (a memoized call), which find the value first.
    pub(crate) fn refresh_hit<V, E, F>(
        self: &Arc<Self>,
        scope: &Scope,
        ek: EncodedKey,
        opts: &Options,
        f: F,
    ) where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error> + std::fmt::Display + Send + 'static,
        F: FnOnce() -> Result<V, E> + Send + 'static,
    {
        let merged = opts.merged(&self.defaults);
        if let Some(after) = merged.refresh_after {
            self.refresh_if_due(scope, ek, merged, after, f);
        }
    }

    /// Starts the recomputation of `ek` if the value in memory is at least `after` old and
    /// no other recomputation of it runs in this process.
    fn refresh_if_due<V, E, F>(
        self: &Arc<Self>,
        scope: &Scope,
        ek: EncodedKey,
        opts: Options,
        after: Duration,
        f: F,
    ) where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error> + std::fmt::Display + Send + 'static,
        F: FnOnce() -> Result<V, E> + Send + 'static,
    {
        // The value just read is in memory (a disk hit was promoted); one too large for the
        // memory tier is not refreshed ahead, only recomputed at its deadline.
        let Some(entry) = self.memory.get(ek.digest) else {
            return;
        };
        let now = self.clock.now_ms();
        let age = now.saturating_sub(entry.created_ms);
        if !due(age, after, opts.refresh_early, ek.digest ^ u128::from(now)) {
            return;
        }
        {
            // At most MAX_RUNNING threads: beyond, a due value waits for a later read.
            let mut running = lock(&self.refreshing);
            if running.len() >= MAX_RUNNING || !running.insert(ek.digest) {
                return;
            }
        }
        let marked = Refreshing {
            inner: Arc::downgrade(self),
            digest: ek.digest,
        };
        // Stamped now: an invalidation while it computes makes the new value stale.
        let stamp = self.stamp(scope, &opts);
        let spawned = std::thread::Builder::new()
            .name("tiered-refresh".into())
            .spawn(move || {
                refresh(&marked.inner, ek, &opts, stamp, entry, f);
                drop(marked);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start a refresh thread; the value is recomputed at its deadline");
        }
    }
}

/// Whether a value of `age` ms is due for its refresh at `after`: at once past `after`; within
/// the window `early` before it, with the XFetch probability (see `Options::refresh_early`),
/// drawn from `seed` (the key and the time) and a counter.
fn due(age: u64, after: Duration, early: Option<Duration>, seed: u128) -> bool {
    let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    if age >= after_ms {
        return true;
    }
    let Some(window) = early.filter(|w| !w.is_zero()) else {
        return false;
    };
    let window_ms = window.as_millis() as f64;
    // Only within the window (XFetch alone would allow, rarely, earlier starts).
    if (after_ms - age) as f64 > window_ms {
        return false;
    }
    // u uniform in (0, 1]: 53 bits of a mixed hash, plus one.
    static DRAWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let draw = DRAWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bits = xxhash_rust::xxh3::xxh3_64_with_seed(&seed.to_le_bytes(), draw) >> 11;
    let u = (bits + 1) as f64 / (1u64 << 53) as f64;
    age as f64 + window_ms / 3.0 * (1.0 / u).ln() >= after_ms as f64
}

/// The recomputation itself, on its own thread. The cache is held only to take the lease and
/// to store: while `f` runs it may be dropped (and its folder let go); the value is then
/// dropped too.
fn refresh<V, E, F>(
    cache: &Weak<Inner>,
    ek: EncodedKey,
    opts: &Options,
    stamp: Vec<(u64, u64)>,
    replaced: Arc<MemEntry>,
    f: F,
) where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
    E: From<Error> + std::fmt::Display + Send + 'static,
    F: FnOnce() -> Result<V, E> + Send + 'static,
{
    // Another process may be recomputing the key: its lease is waited for here, and the
    // value it stored is the refresh.
    let _guard = {
        let Some(inner) = cache.upgrade() else { return };
        match inner.lower.lease(ek.digest, true) {
            Ok(Lease::Found(_)) => return,
            Ok(Lease::Granted(guard)) => Some(guard),
            Err(_) => None,
        }
    };
    let computed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let Some(inner) = cache.upgrade() else { return };
    let value = match computed {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            Counters::bump(&inner.counters.refresh_failures);
            tracing::warn!(error = %e, "a refresh failed; the older value stays until its deadline");
            return;
        }
        Err(_) => {
            Counters::bump(&inner.counters.refresh_failures);
            tracing::warn!("a refresh panicked; the older value stays until its deadline");
            return;
        }
    };
    // Storing runs user code too (the value's Serialize): a panic there is a failure too.
    let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        inner.store(
            ek,
            Arc::new(value),
            opts,
            stamp,
            IfCurrent::Unchanged(replaced),
        )
    }));
    match stored {
        Ok(Ok(())) => Counters::bump(&inner.counters.refreshes),
        Ok(Err(e)) => {
            Counters::bump(&inner.counters.refresh_failures);
            tracing::warn!(error = %e, "a refreshed value could not be stored");
        }
        Err(_) => {
            Counters::bump(&inner.counters.refresh_failures);
            tracing::warn!("storing a refreshed value panicked (its Serialize)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share of reads at `age` (ms) that start a refresh due at 300 s, window 60 s.
    fn share(age: u64) -> f64 {
        let (after, early) = (Duration::from_secs(300), Some(Duration::from_secs(60)));
        let n = 20_000;
        let hits = (0..n)
            .filter(|i| due(age, after, early, u128::from(*i as u64) << 64 | 7))
            .count();
        hits as f64 / f64::from(n)
    }

    #[test]
    fn an_early_refresh_grows_likelier_toward_the_refresh_age_and_never_before_its_window() {
        assert_eq!(share(200_000), 0.0, "before the window");
        assert_eq!(share(239_999), 0.0, "just before the window");
        // At the window's start e^-3 = 5 %, at two thirds e^-1 = 37 %: within sampling noise.
        assert!((share(240_000) - 0.0498).abs() < 0.01, "{}", share(240_000));
        assert!((share(280_000) - 0.3679).abs() < 0.02, "{}", share(280_000));
        assert_eq!(share(300_000), 1.0, "due");
        assert_eq!(share(400_000), 1.0, "past due");
        // Without a window: at the refresh age only.
        let after = Duration::from_secs(300);
        assert!(!due(299_999, after, None, 1));
        assert!(due(300_000, after, None, 1));
        assert!(!due(299_999, after, Some(Duration::ZERO), 1));
    }
}
