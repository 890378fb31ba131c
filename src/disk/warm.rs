//! The disk side of the warm restart: which records to load at open, and reading them.
//!
//! Both steps run in small read transactions, so that neither the writer (whose freed pages
//! a long reader would pin) nor other readers ever wait on the loader. The memory side (what
//! goes into the memory tier, under the ordering rule) is in `engine/warm.rs`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::tables::{last_access, ACCESS, RECORDS};
use super::{blobs, lock, Shared, Stored};
use crate::record::{self, BlobRef};

/// Records ranked per read transaction.
const SCAN_BATCH: usize = 1024;

/// A live record worth loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Candidate {
    /// Its last use: its last recorded read, else its creation (unix ms).
    pub used_ms: u64,
    pub digest: u128,
    /// What it would weigh in the memory tier, undecoded.
    pub weight: u64,
}

/// Read access to the disk tier for the loader thread: it holds no database handle between
/// transactions, so dropping the cache closes the file whatever the loader is doing.
pub(crate) struct Source {
    shared: Arc<Shared>,
}

impl super::LocalTier {
    /// What the warm restart reads through.
    pub fn warm_source(&self) -> Source {
        Source {
            shared: self.shared.clone(),
        }
    }
}

impl Source {
    /// The database file, for messages.
    pub fn path(&self) -> &std::path::Path {
        &self.shared.path
    }

    /// The live records to load, most recently used first: the longest run of them, in that
    /// order, whose weights add up to at most `budget` (a record heavier than `max_entry` or
    /// the whole budget is passed over). `None` if `stop` was raised or the tier is out of
    /// service.
    ///
    /// Every record is judged (a dead one is never chosen), in batches of [`SCAN_BATCH`] per
    /// read transaction; only the chosen ones are kept meanwhile, so the memory this takes is
    /// bounded by the budget, not by the number of records.
    pub fn rank(&self, budget: u64, max_entry: u64, stop: &AtomicBool) -> Option<Vec<Candidate>> {
        let mut chosen: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
        let mut total = 0u64;
        let mut cursor: Option<u128> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let now = self.shared.clock.now_ms();
            let (last, scanned, found) = self.shared.read(|txn| {
                let records = txn.open_table(RECORDS)?;
                let access = txn.open_table(ACCESS)?;
                let lower = cursor.map_or(Bound::Unbounded, Bound::Excluded);
                let mut rows = Vec::with_capacity(SCAN_BATCH);
                for item in records.range::<u128>((lower, Bound::Unbounded))? {
                    let (digest, bytes) = item?;
                    rows.push((digest.value(), bytes));
                    if rows.len() == SCAN_BATCH {
                        break;
                    }
                }
                let Some(&(last, _)) = rows.last() else {
                    return Ok((None, 0, Vec::new()));
                };
                // Read times of the same digests, in the same (ascending) order.
                let mut read_at = Vec::new();
                for item in access.range::<u128>((lower, Bound::Included(last)))? {
                    let (digest, value) = item?;
                    read_at.push((digest.value(), value.value().0));
                }
                let mut read_at = read_at.into_iter().peekable();
                let mut found = Vec::new();
                for (digest, bytes) in &rows {
                    while read_at.next_if(|(d, _)| d < digest).is_some() {}
                    let at = read_at.next_if(|(d, _)| d == digest).map(|(_, t)| t);
                    let Ok(rec) = record::decode(bytes.value()) else {
                        continue; // damaged or outdated: a reader or the sweeper drops it
                    };
                    if rec.judge(*digest, now, at, &self.shared.gens).is_some() {
                        continue;
                    }
                    let payload = rec.blob().map_or(rec.payload.len() as u64, |b| b.len);
                    let weight = crate::memory::raw_weight(
                        rec.key.len(),
                        usize::try_from(payload).unwrap_or(usize::MAX),
                        rec.generations().count(),
                    );
                    found.push(Candidate {
                        used_ms: at.unwrap_or(0).max(rec.meta.created_ms),
                        digest: *digest,
                        weight: u64::from(weight),
                    });
                }
                Ok((Some(last), rows.len(), found))
            })?;
            for c in found {
                if c.weight > budget || c.weight > max_entry {
                    continue;
                }
                // Older than everything kept, with no room left: it would go first (this
                // spares most records of a large cache a push and a pop).
                let full = total + c.weight > budget;
                if full && chosen.peek().is_some_and(|Reverse(oldest)| c < *oldest) {
                    continue;
                }
                chosen.push(Reverse(c));
                total += c.weight;
                // Keep the most recent run that fits: the oldest go first.
                while total > budget {
                    let Some(Reverse(oldest)) = chosen.pop() else {
                        break;
                    };
                    total -= oldest.weight;
                }
            }
            cursor = last;
            if scanned < SCAN_BATCH {
                break;
            }
        }
        let mut out: Vec<Candidate> = chosen.into_iter().map(|Reverse(c)| c).collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        Some(out)
    }

    /// The records of `digests` as a reader would see them, in one read transaction; `None`
    /// if the tier is out of service. A key this process has written since open and not yet
    /// committed (or whose write was kept in memory only) reads as `None`: the file's record
    /// is older than that write. The overlay is checked before the transaction begins, so a
    /// write that has left it is in the transaction's snapshot.
    pub fn read(&self, digests: &[u128]) -> Option<Vec<Option<Stored>>> {
        let shared = &self.shared;
        let mut written: Vec<bool> = if shared.pending_len.load(Ordering::Acquire) != 0 {
            let pending = lock(&shared.pending);
            digests.iter().map(|d| pending.contains_key(d)).collect()
        } else {
            vec![false; digests.len()]
        };
        // Then the shadows, in that order: a failed write is shadowed before it leaves the
        // overlay (see `writer.rs`), so it is seen in one or the other.
        for (w, d) in written.iter_mut().zip(digests) {
            *w = *w || shared.health.is_shadowed(*d);
        }
        shared.read(|txn| {
            let records = txn.open_table(RECORDS)?;
            let access = txn.open_table(ACCESS)?;
            let mut out = Vec::with_capacity(digests.len());
            for (digest, written) in digests.iter().zip(written) {
                let stored = match records.get(*digest)? {
                    Some(guard) if !written => Some(Stored {
                        last_access_ms: last_access(&access, *digest, guard.value())?,
                        bytes: Arc::from(guard.value()),
                    }),
                    _ => None,
                };
                out.push(stored);
            }
            Ok(out)
        })
    }

    /// A side file's bytes, or why it cannot be read (no warning: the loader decides).
    pub fn read_blob(&self, blob: &BlobRef) -> Result<Vec<u8>, String> {
        blobs::try_read(&self.shared.dir, blob)
    }
}
