//! The sweeper: deletes dead records (expired, invalidated, damaged, outdated) in small
//! batches while the writer is idle, so that space comes back without blocking writes.
//!
//! It judges records in read transactions and opens a write transaction only to delete what
//! it found dead: a pass over live records writes nothing. Records with a queued write are
//! left to that write, and an idle record is judged by its latest read time, including read
//! times not yet written.

use std::collections::HashSet;
use std::ops::Bound;
use std::time::{Duration, Instant};

use super::blobs;
use super::health::Failure;
use super::labels::{self, LabelGc};
use super::tables::{last_access, ACCESS, RECORDS};
use super::{lock, Shared};
use crate::explain;
use crate::record;

/// Records judged per step: small, so that a write queued behind a sweep waits little.
const BATCH: usize = 256;
/// How long to wait after a failed batch.
const BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Sweeper {
    every: Duration,
    active: bool,
    /// An invalidation arrived mid-pass: run one more full pass after this one.
    again: bool,
    /// A pass an invalidation (or a compaction) asked for is under way.
    asked: bool,
    cursor: Option<u128>,
    next_due: Instant,
    /// Which generation labels records use: see `labels.rs`.
    pub labels: LabelGc,
    /// Side files in the folder before this process opened it: see `blobs::delete_orphans`.
    pub preexisting: HashSet<u64>,
}

impl Sweeper {
    /// A sweeper that starts with a pass (leftovers of the last run) and then runs one `every`.
    pub fn new(every: Duration) -> Self {
        Sweeper {
            every,
            active: true,
            again: false,
            asked: false,
            cursor: None,
            next_due: Instant::now() + every,
            labels: LabelGc::default(),
            preexisting: HashSet::new(),
        }
    }

    pub fn active(&self) -> bool {
        self.active
    }

    pub fn due(&self) -> bool {
        Instant::now() >= self.next_due
    }

    /// Whether a pass an invalidation asked for is still under way.
    pub fn asked(&self) -> bool {
        self.asked && self.active
    }

    /// Asks for a full pass (after an invalidation); `asked`: a close waits for it.
    pub fn start(&mut self, asked: bool) {
        self.asked |= asked;
        if self.active {
            self.again = true;
        } else {
            self.active = true;
            self.cursor = None;
        }
    }

    pub fn pause(&mut self) {
        self.labels.interrupt();
        self.active = false;
        self.next_due = Instant::now() + BACKOFF;
    }

    /// Judges one batch of records and deletes the dead ones.
    pub fn step(&mut self, shared: &Shared) -> Result<(), Failure> {
        if !self.active {
            self.active = true;
            self.cursor = None;
        }
        let now_ms = shared.clock.now_ms();
        let cursor = self.cursor;
        if cursor.is_none() {
            self.labels.begin();
        }
        let gc = &mut self.labels;
        let judged = shared.read(|txn| {
            let records = txn.open_table(RECORDS)?;
            let access = txn.open_table(ACCESS)?;
            let pending = lock(&shared.pending);
            let touches = lock(&shared.touches);
            let mut doomed = Vec::new();
            let mut last = None;
            let mut scanned = 0;
            let lower = cursor.map_or(Bound::Unbounded, Bound::Excluded);
            for item in records.range::<u128>((lower, Bound::Unbounded))? {
                let (digest, bytes) = item?;
                let digest = digest.value();
                last = Some(digest);
                scanned += 1;
                if !pending.contains_key(&digest) {
                    let stored = last_access(&access, digest, bytes.value())?;
                    let latest = match (stored, touches.get(&digest)) {
                        (Some(a), Some(b)) => Some(a.max(*b)),
                        (a, b) => a.or(b.copied()),
                    };
                    // Decoded (and checksummed) once, for the judgement and what follows it.
                    let rec = record::decode(bytes.value());
                    let dead = match &rec {
                        Err(damage) => Some(damage.dead()),
                        Ok(rec) => rec.judge(digest, now_ms, latest, &shared.gens),
                    };
                    match (dead, rec.ok()) {
                        (Some(why), rec) => {
                            let fate = explain::of_dead(why, rec.as_ref(), latest, &shared.gens);
                            doomed.push((digest, why, fate));
                        }
                        (None, Some(rec)) => {
                            gc.note(rec.generations().map(|(id, _)| id));
                            if let Some(blob) = rec.blob() {
                                gc.note_blob(blob.id);
                            }
                        }
                        (None, None) => {}
                    }
                }
                if scanned >= BATCH {
                    break;
                }
            }
            Ok((last, scanned, doomed))
        });

        // Out of service (the failure is recorded): nothing to do until it comes back.
        let Some((last, scanned, doomed)) = judged else {
            self.pause();
            return Ok(());
        };
        if !doomed.is_empty() {
            // Buried before the commit: `explain` looks on disk before the graveyard, so a
            // record is explained by one or the other at every moment (buried after, it was
            // "never written" in between). A failed commit leaves the records on disk, where
            // they are still explained as dead.
            for (digest, _, fate) in doomed.iter().cloned() {
                shared.counters.graveyard.bury(digest, fate);
            }
            // Only this thread writes, so nothing changed these records since they were judged.
            shared.transact(|t| {
                for (digest, ..) in &doomed {
                    t.remove(*digest)?;
                }
                Ok(())
            })?;
            for (_, why, _) in &doomed {
                shared.counters.count_dead(*why);
            }
            tracing::debug!(
                deleted = doomed.len(),
                scanned,
                "cache sweep deleted dead records"
            );
        }
        self.cursor = last;
        if scanned < BATCH {
            self.cursor = None;
            self.forget_unused_labels(shared)?;
            if self.again {
                self.again = false;
            } else {
                self.active = false;
                self.asked = false;
                self.next_due = Instant::now() + self.every;
            }
        }
        Ok(())
    }

    /// At the end of a whole pass: deletes the side files and the generation rows no record
    /// used during it.
    fn forget_unused_labels(&mut self, shared: &Shared) -> Result<(), Failure> {
        // Puts queued but not applied yet reference their side files too.
        let queued: HashSet<u64> = lock(&shared.pending)
            .values()
            .filter_map(|(_, record)| record.as_deref().and_then(record::blob_of))
            .map(|blob| blob.id)
            .collect();
        let orphans = blobs::delete_orphans(
            &shared.dir,
            |id| self.labels.blob_referenced(id) || queued.contains(&id),
            &self.preexisting,
        );
        if self.labels.whole_pass() {
            // Judged once by a whole pass: from now on the age rule alone applies.
            self.preexisting.clear();
        }
        if orphans > 0 {
            tracing::debug!(orphans, "cache side files no record references deleted");
        }
        let Some(rows) = shared.read(labels::stored_rows) else {
            return Ok(());
        };
        let unused = self.labels.unreferenced(&rows);
        if unused.is_empty() {
            return Ok(());
        }
        shared.transact(|t| {
            for label in &unused {
                t.gens.remove(label.as_str())?;
            }
            Ok(())
        })?;
        self.labels.deleted(&unused);
        tracing::debug!(
            labels = unused.len(),
            "generation rows of unused tags and namespaces deleted"
        );
        Ok(())
    }
}
