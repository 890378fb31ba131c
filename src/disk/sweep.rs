//! The sweeper: deletes dead records (expired, invalidated, damaged) in small batches while the
//! writer is idle, so that space comes back without blocking writes.

use std::ops::Bound;
use std::time::{Duration, Instant};

use redb::ReadableTable;

use super::tables::last_access;
use super::Shared;
use crate::record;

/// Records judged per transaction: small, so that a write queued behind a sweep waits little.
const BATCH: usize = 256;
/// How long to wait after a failed batch.
const BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Sweeper {
    every: Duration,
    active: bool,
    /// An invalidation arrived mid-pass: run one more full pass after this one.
    again: bool,
    cursor: Option<u128>,
    next_due: Instant,
}

impl Sweeper {
    /// A sweeper that starts with a pass (leftovers of the last run) and then runs one `every`.
    pub fn new(every: Duration) -> Self {
        Sweeper {
            every,
            active: true,
            again: false,
            cursor: None,
            next_due: Instant::now() + every,
        }
    }

    pub fn active(&self) -> bool {
        self.active
    }

    pub fn due(&self) -> bool {
        Instant::now() >= self.next_due
    }

    /// Asks for a full pass (after an invalidation).
    pub fn start(&mut self) {
        if self.active {
            self.again = true;
        } else {
            self.active = true;
            self.cursor = None;
        }
    }

    pub fn pause(&mut self) {
        self.active = false;
        self.next_due = Instant::now() + BACKOFF;
    }

    /// Judges one batch of records and deletes the dead ones.
    pub fn step(&mut self, shared: &Shared) -> Result<(), String> {
        if !self.active {
            self.active = true;
            self.cursor = None;
        }
        let now_ms = shared.clock.now_ms();
        let cursor = self.cursor;
        let (last, scanned, dead) = shared.transact(|t| {
            let mut doomed = Vec::new();
            let mut last = None;
            let mut scanned = 0;
            let lower = cursor.map_or(Bound::Unbounded, Bound::Excluded);
            for item in t.records.range::<u128>((lower, Bound::Unbounded))? {
                let (digest, bytes) = item?;
                let digest = digest.value();
                last = Some(digest);
                scanned += 1;
                let last_access = last_access(&t.access, digest, bytes.value())?;
                if let Some(why) =
                    record::judge(bytes.value(), digest, now_ms, last_access, &shared.gens)
                {
                    doomed.push((digest, why));
                }
                if scanned >= BATCH {
                    break;
                }
            }
            for (digest, _) in &doomed {
                t.remove(*digest)?;
            }
            Ok((last, scanned, doomed))
        })?;
        for (_, why) in &dead {
            shared.counters.count_dead(*why);
        }
        if !dead.is_empty() {
            tracing::debug!(
                deleted = dead.len(),
                scanned,
                "cache sweep deleted dead records"
            );
        }
        self.cursor = last;
        if scanned < BATCH {
            self.cursor = None;
            if self.again {
                self.again = false;
            } else {
                self.active = false;
                self.next_due = Instant::now() + self.every;
            }
        }
        Ok(())
    }
}
