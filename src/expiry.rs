//! Wall-clock deadlines, the [`Clock`] they are read from, and [`next_local_time`].
//!
//! Deadlines are unix milliseconds so that they mean the same thing after a restart.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the cache reads the time. Tests give the cache a [`ManualClock`] and advance it
/// instead of sleeping.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Now, in milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        to_ms(SystemTime::now())
    }
}

/// A clock that moves only when told to; share it (`Arc`) between the test and the cache.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use tiered::{Cache, ManualClock, Options};
///
/// let clock = Arc::new(ManualClock::new(std::time::SystemTime::now()));
/// let cache = Cache::builder().clock(clock.clone()).open()?;
/// cache.insert_with("k", 1u8, &Options::new().ttl(Duration::from_secs(60)))?;
/// clock.advance(Duration::from_secs(61));
/// assert!(cache.get::<_, u8>("k")?.is_none());
/// # Ok::<(), tiered::Error>(())
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `start` until advanced.
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now_ms: AtomicU64::new(to_ms(start)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(duration_ms(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to` (it may go backwards).
    pub fn set(&self, to: SystemTime) {
        self.now_ms.store(to_ms(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the unix epoch; times before it count as 0.
pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, duration_ms)
}

/// A duration in whole milliseconds, saturating; a non-zero duration is at least 1 ms.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 && !d.is_zero() {
        1
    } else {
        ms
    }
}

/// When an entry stops being live. `0` in a field means "never" (the on-disk convention).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Expiry {
    /// Absolute deadline in unix ms (the earliest of ttl and expires_at), or 0.
    pub deadline_ms: u64,
    /// Idle limit in ms, or 0.
    pub idle_ms: u64,
}

impl Expiry {
    /// Whether the entry is dead at `now`, given when it was last read (or written).
    pub fn is_expired(&self, now_ms: u64, last_access_ms: u64) -> bool {
        (self.deadline_ms != 0 && now_ms >= self.deadline_ms)
            || (self.idle_ms != 0 && now_ms >= last_access_ms.saturating_add(self.idle_ms))
    }

    /// When the entry expires (or expired), given when it was last read or written; `u64::MAX`
    /// for never.
    pub fn expired_at(&self, last_access_ms: u64) -> u64 {
        let deadline = if self.deadline_ms == 0 {
            u64::MAX
        } else {
            self.deadline_ms
        };
        let idle = if self.idle_ms == 0 {
            u64::MAX
        } else {
            last_access_ms.saturating_add(self.idle_ms)
        };
        deadline.min(idle)
    }

    /// How long until the entry is dead, for the memory tier's own bookkeeping.
    pub fn remaining(&self, now_ms: u64) -> Option<Duration> {
        let mut left: Option<u64> = None;
        if self.deadline_ms != 0 {
            left = Some(self.deadline_ms.saturating_sub(now_ms));
        }
        if self.idle_ms != 0 {
            left = Some(left.map_or(self.idle_ms, |l| l.min(self.idle_ms)));
        }
        left.map(Duration::from_millis)
    }
}

/// The next time the system's local clock reads `hour:minute`, for
/// [`Options::expires_at`](crate::Options::expires_at): "valid until 16:00".
///
/// If that time is now or has passed today, tomorrow's is returned. Where a daylight-saving
/// change skips or repeats the time, the later of the possible instants is used: a repeated
/// 01:30 is the second one (so it is still ahead during the first), and a skipped 02:30 is read
/// with the offset from before the change, which the clock shows as 03:30. An hour above 23
/// or a minute above 59 is taken as 23 or 59, so the result is never in the past. Without a
/// readable time zone the system's zone falls back to UTC.
///
/// ```
/// use std::time::SystemTime;
/// let t = tiered::next_local_time(16, 0);
/// let wait = t.duration_since(SystemTime::now()).unwrap();
/// assert!(wait.as_secs() <= 25 * 3600);
/// ```
pub fn next_local_time(hour: u8, minute: u8) -> SystemTime {
    next_local_time_after(jiff::Zoned::now(), hour, minute)
}

fn next_local_time_after(now: jiff::Zoned, hour: u8, minute: u8) -> SystemTime {
    let (h, m) = (hour.min(23) as i8, minute.min(59) as i8);
    let mut date = now.date();
    for _ in 0..3 {
        // `later()`: in a fold the second occurrence, in a gap the later of the two readings.
        let at = now
            .time_zone()
            .to_ambiguous_timestamp(date.at(h, m, 0, 0))
            .later()
            .ok()
            .filter(|t| *t > now.timestamp());
        if let Some(t) = at {
            return SystemTime::from(t);
        }
        match date.tomorrow() {
            Ok(d) => date = d,
            Err(_) => break,
        }
    }
    // Only reachable at the end of jiff's supported range (year 9999).
    SystemTime::from(now.timestamp()) + Duration::from_secs(24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoned(s: &str) -> jiff::Zoned {
        s.parse().unwrap()
    }

    #[test]
    fn next_local_time_is_later_today_or_tomorrow() {
        let now = zoned("2026-03-10T09:30:00[Europe/Paris]");
        let t = next_local_time_after(now.clone(), 16, 0);
        assert_eq!(
            jiff::Timestamp::try_from(t).unwrap(),
            zoned("2026-03-10T16:00:00[Europe/Paris]").timestamp()
        );
        let t = next_local_time_after(now, 9, 30);
        assert_eq!(
            jiff::Timestamp::try_from(t).unwrap(),
            zoned("2026-03-11T09:30:00[Europe/Paris]").timestamp()
        );
    }

    #[test]
    fn next_local_time_clamps_bad_input_and_survives_dst_gap() {
        let now = zoned("2026-03-29T01:00:00[Europe/Paris]");
        // 02:30 does not exist that day in Paris; it is read as 03:30 (see the gap test below).
        let t = next_local_time_after(now.clone(), 2, 30);
        assert!(jiff::Timestamp::try_from(t).unwrap() > now.timestamp());
        let t = next_local_time_after(now, 99, 99);
        assert_eq!(
            jiff::Timestamp::try_from(t).unwrap(),
            zoned("2026-03-29T23:59:00[Europe/Paris]").timestamp()
        );
    }

    #[test]
    fn next_local_time_in_a_fold_from_the_first_occurrence_is_the_later_instant_today() {
        // London repeats 01:00-02:00 on 2026-10-25: first BST (+01), then GMT (+00).
        let now = zoned("2026-10-25T01:45:00+01:00[Europe/London]");
        let t = next_local_time_after(now, 1, 30);
        assert_eq!(
            jiff::Timestamp::try_from(t).unwrap(),
            "2026-10-25T01:30:00Z".parse::<jiff::Timestamp>().unwrap()
        );
    }

    #[test]
    fn next_local_time_in_a_fold_from_the_second_occurrence_is_tomorrow() {
        let now = zoned("2026-10-25T01:45:00+00:00[Europe/London]");
        let t = next_local_time_after(now, 1, 30);
        assert_eq!(
            jiff::Timestamp::try_from(t).unwrap(),
            zoned("2026-10-26T01:30:00[Europe/London]").timestamp()
        );
    }

    #[test]
    fn next_local_time_in_a_gap_is_as_far_past_the_gap_as_asked_into_it() {
        // Paris skips 02:00-03:00 on 2026-03-29; 02:30 is taken as 03:30 CEST (01:30 UTC),
        // the later of 02:30 +01 and 02:30 +02.
        let now = zoned("2026-03-29T01:00:00[Europe/Paris]");
        let t = next_local_time_after(now, 2, 30);
        assert_eq!(
            jiff::Timestamp::try_from(t).unwrap(),
            "2026-03-29T01:30:00Z".parse::<jiff::Timestamp>().unwrap()
        );
    }

    #[test]
    fn expiry_earliest_wins() {
        let e = Expiry {
            deadline_ms: 1_000,
            idle_ms: 100,
        };
        assert!(!e.is_expired(950, 900));
        assert!(e.is_expired(1_000, 999));
        assert!(e.is_expired(500, 400));
        assert_eq!(e.remaining(950), Some(Duration::from_millis(50)));
        assert_eq!(Expiry::default().remaining(5), None);
        assert!(!Expiry::default().is_expired(u64::MAX, 0));
    }
}
