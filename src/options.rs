//! Per-entry [`Options`]: expiry, tags, memory-only.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::expiry::{duration_ms, to_ms, Expiry};

/// How one entry is kept: when it expires, which tags it carries, whether it may touch the disk.
///
/// Options that an entry does not set come from the cache's
/// [`default_options`](crate::CacheBuilder::default_options): expiry (ttl, expires_at, idle) is
/// taken from the defaults only when the entry sets none of the three; tags are the union of
/// both; `memory_only` holds if either sets it.
///
/// ```
/// use std::time::Duration;
/// use tiered::Options;
///
/// let opts = Options::new()
///     .ttl(Duration::from_secs(300))
///     .tags(["prices", "eu"]);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub(crate) ttl: Option<Duration>,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) idle: Option<Duration>,
    pub(crate) tags: Vec<Arc<str>>,
    pub(crate) memory_only: bool,
    pub(crate) refresh_after: Option<Duration>,
    pub(crate) refresh_early: Option<Duration>,
}

impl Options {
    /// No expiry, no tags, kept on disk: the cache's defaults apply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expires `ttl` after it is inserted (relative expiry). Default: never.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Expires at this wall-clock time (absolute expiry, kept across restarts); see
    /// [`next_local_time`](crate::next_local_time). Default: never.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Expires when not read for `idle`. Default: never. `Duration::ZERO` expires at once,
    /// as `ttl(Duration::ZERO)` does. A read refreshes it; `contains_key` does not.
    ///
    /// The memory tier tracks reads exactly; the disk tier records read times in batches, so
    /// after a restart an entry may live up to a few seconds longer than `idle` since its last read.
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// Tags for [`Cache::invalidate_tag`](crate::Cache::invalidate_tag); adds to any given before.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.tags
            .extend(tags.into_iter().map(|t| Arc::from(t.as_ref())));
        self
    }

    /// Keeps the entry in the memory tier only: it is never written to disk and does not survive
    /// a restart. Default: off.
    pub fn memory_only(mut self) -> Self {
        self.memory_only = true;
        self
    }

    /// Refresh ahead: a read through
    /// [`get_or_refresh_with`](crate::Cache::get_or_refresh_with) (or its `try_` form) of an
    /// entry older than `after` but not expired returns it at once and starts one background
    /// recomputation of the key (one per key across the process's threads, and across the
    /// processes that share the folder or Redis); the new value replaces it when ready. A
    /// failed recomputation is counted (`Stats::refresh_failures`) and the older value stays
    /// until its deadline. Combine it with a `ttl` longer than `after`, so that a value never
    /// read for a while still expires. Default: never.
    ///
    /// [`get_or_insert_with`](crate::Cache::get_or_insert_with) cannot run its computation
    /// later (it may borrow from the caller), so it ignores this option, as do memoized
    /// functions without `#[memoize(refresh = "..")]` ([`Memoized::call`](crate::Memoized::call)
    /// and kin; [`Memoized::call_refresh`](crate::Memoized::call_refresh) honours it).
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = tiered::Options::new()
    ///     .ttl(Duration::from_secs(3600))
    ///     .refresh_after(Duration::from_secs(300));
    /// # let _ = opts;
    /// ```
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.refresh_after = Some(after);
        self
    }

    /// With [`refresh_after`](Options::refresh_after): a read in the last `window` before the
    /// refresh age may start the recomputation early, with a probability that rises toward
    /// 1 as the age nears `after` (the "XFetch" rule of Vattani, Chierichetti and Lowenstein,
    /// VLDB 2015: a read at age `a` starts it when `a + (window / 3) · ln(1 / u) ≥ after`,
    /// `u` uniform in (0, 1]; about 5 % of reads at the window's start, 37 % at two thirds of
    /// it). Keys written together (a deploy, a pre-warm) then have their recomputations
    /// spread over the window instead of all at their common refresh age, and a hot key is
    /// refreshed before it is due. A key read once per window is refreshed at `after`, as
    /// without it. Default: none.
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = tiered::Options::new()
    ///     .ttl(Duration::from_secs(3600))
    ///     .refresh_after(Duration::from_secs(300))
    ///     .refresh_early(Duration::from_secs(60)); // from 240 s on, more and more likely
    /// # let _ = opts;
    /// ```
    pub fn refresh_early(mut self, window: Duration) -> Self {
        self.refresh_early = Some(window);
        self
    }

    fn sets_expiry(&self) -> bool {
        self.ttl.is_some() || self.expires_at.is_some() || self.idle.is_some()
    }

    /// These options with the gaps filled from `defaults` (see the type's docs).
    pub(crate) fn merged(&self, defaults: &Options) -> Options {
        let mut out = if self.sets_expiry() {
            self.clone()
        } else {
            Options {
                tags: self.tags.clone(),
                memory_only: self.memory_only,
                ..defaults.clone()
            }
        };
        for t in &defaults.tags {
            if !out.tags.contains(t) {
                out.tags.push(t.clone());
            }
        }
        out.memory_only |= defaults.memory_only;
        out.refresh_after = self.refresh_after.or(defaults.refresh_after);
        out.refresh_early = self.refresh_early.or(defaults.refresh_early);
        out
    }

    /// The entry's deadlines if it is written at `now_ms`.
    pub(crate) fn expiry(&self, now_ms: u64) -> Expiry {
        let ttl = self.ttl.map(|d| now_ms.saturating_add(duration_ms(d)));
        // An `expires_at` at or before the epoch is "already expired", never "no deadline".
        let at = self.expires_at.map(|t| to_ms(t).max(1));
        let deadline_ms = match (ttl, at) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        // An idle limit of zero means "expired at once", as a ttl of zero does.
        let deadline_ms = match self.idle {
            Some(d) if d.is_zero() => match deadline_ms {
                0 => now_ms.max(1),
                d => d.min(now_ms.max(1)),
            },
            _ => deadline_ms,
        };
        Expiry {
            deadline_ms,
            idle_ms: self.idle.map_or(0, duration_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_deadline_wins_and_defaults_fill_gaps() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(5_000);
        let o = Options::new().ttl(Duration::from_secs(10)).expires_at(at);
        assert_eq!(o.expiry(1_000).deadline_ms, 5_000);
        assert_eq!(o.expiry(0).deadline_ms, 5_000);
        let o = Options::new().ttl(Duration::from_secs(1));
        assert_eq!(o.expiry(1_000).deadline_ms, 2_000);

        let defaults = Options::new().ttl(Duration::from_secs(60)).tags(["d"]);
        let m = Options::new().tags(["x"]).merged(&defaults);
        assert_eq!(m.ttl, Some(Duration::from_secs(60)));
        assert_eq!(m.tags.len(), 2);
        let m = Options::new()
            .idle(Duration::from_secs(1))
            .merged(&defaults);
        assert_eq!(m.ttl, None);
        assert!(
            Options::new()
                .merged(&Options::new().memory_only())
                .memory_only
        );
    }

    #[test]
    fn expires_at_before_epoch_is_expired_not_eternal() {
        let o = Options::new().expires_at(SystemTime::UNIX_EPOCH);
        assert!(o.expiry(10).is_expired(10, 10));
    }
}
