//! A folder in front of Redis (`path` and `redis` together, feature `redis`): the folder
//! keeps copies of Redis's records, so that a value read again after a restart, or after
//! the memory tier let it go, is read from the local disk rather than sent again by the
//! server.
//!
//! The rule that makes it safe: **a copy is served only after Redis confirmed it.** Redis
//! holds the truth; the folder holds records exactly as Redis keeps them (with Redis's
//! tokens for their labels, not the folder's generations: see
//! [`Generations::foreign`](crate::generations::Generations::foreign)), and each read of a
//! copy asks Redis, in one round trip, whether the key's record still ends with the copy's
//! checksum ([`RedisTier::confirm`]); if not, Redis's record (or its absence) is the answer
//! and the copy is replaced. The labels' tokens are then checked as for any record read from
//! Redis. So a copy can never be staler than a read from Redis: not after a restart, a lost
//! connection, another machine's write or invalidation, nor when the copies were written out
//! of order. That is why the copies are written in the background, in no particular order
//! (by [`Copier`]), and why this tier needs no listener of its own.
//!
//! What it costs: a copy read is a disk read and a small round trip instead of a `GET`; what
//! it saves is sending the value. When Redis cannot be reached, a read is a miss, as without
//! the folder: an unconfirmed copy is never served.
//!
//! Everything else goes to Redis: writes (their copies follow once stored), removals,
//! invalidations, leases, listings.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::redis::{Confirmed, RedisTier, Replica};
use super::{Above, Lease, Lower, Reservation, Scanned, Staged, Staging, Stored, Ticket};
use crate::disk::lock;
use crate::error::Result;
use crate::generations::Generations;
use crate::process::DiskTier;
use crate::stats::Stats;

/// Copies waiting to be written to the folder; beyond, a copy is skipped (it is only a copy:
/// the next read of the key takes Redis's record and copies it again).
const QUEUED_COPIES: usize = 1024;

/// How long a flush waits for the copies queued before it.
const COPIES_WAITED: Duration = Duration::from_secs(10);

/// What the copier thread is given.
enum Copy {
    /// A key's record as Redis keeps it, or `None`: deleted there.
    Record(u128, Option<Vec<u8>>),
    /// Answered once the copies before it are in the folder's queue.
    Flush(SyncSender<()>),
}

/// The folder (near) in front of Redis (far).
pub(crate) struct Chain {
    near: Arc<DiskTier>,
    far: RedisTier,
    copier: Arc<Copier>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Hands copies to the thread that writes them to the folder.
pub(crate) struct Copier {
    tx: Mutex<Option<SyncSender<Copy>>>,
    /// The folder's capacity: a larger record is not copied (it would push out every other
    /// copy, itself included), and the key's older copy goes.
    max: u64,
}

impl Replica for Copier {
    fn copy(&self, digest: u128, record: Option<Vec<u8>>) {
        let Some(tx) = lock(&self.tx).clone() else {
            return;
        };
        let record = record.filter(|r| r.len() as u64 <= self.max);
        match tx.try_send(Copy::Record(digest, record)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::trace!("the folder is behind Redis: a copy is skipped");
            }
        }
    }
}

/// The copier thread: writes each copy to the folder, then waits for a batch's writes
/// together (a client of the folder waits for its owner's answers): when the queue runs
/// empty, every 64 copies, and for a flush.
fn write_copies(near: Arc<DiskTier>, rx: Receiver<Copy>) {
    let settle = |pending: &mut Vec<Ticket>| {
        for ticket in pending.drain(..) {
            let _ = ticket.wait();
        }
    };
    let mut pending: Vec<Ticket> = Vec::new();
    loop {
        let next = match rx.try_recv() {
            Ok(next) => next,
            Err(mpsc::TryRecvError::Empty) => {
                settle(&mut pending);
                match rx.recv() {
                    Ok(next) => next,
                    Err(_) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        match next {
            Copy::Flush(done) => {
                settle(&mut pending);
                let _ = done.send(());
            }
            Copy::Record(digest, record) => {
                pending.push(match record {
                    Some(record) => {
                        let mut staged = Staged::inline(Vec::new());
                        let room = near.reserve(record.len(), &mut staged);
                        near.put(digest, record, room)
                    }
                    None => near.remove(digest),
                });
                if pending.len() >= 64 {
                    settle(&mut pending);
                }
            }
        }
    }
    settle(&mut pending);
}

impl Chain {
    pub fn new(near: DiskTier, far: RedisTier) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUED_COPIES);
        let near = Arc::new(near);
        let copier = Arc::new(Copier {
            tx: Mutex::new(Some(tx)),
            max: near.capacity(),
        });
        far.copy_to(copier.clone());
        let writer = near.clone();
        let thread = std::thread::Builder::new()
            .name("tiered-folder-copies".into())
            .spawn(move || write_copies(writer, rx));
        let thread = match thread {
            Ok(handle) => Some(handle),
            Err(e) => {
                // Then no copy is kept: every read goes to Redis.
                tracing::error!(error = %e, "could not start the thread that copies Redis's records to the folder");
                lock(&copier.tx).take();
                None
            }
        };
        Chain {
            near,
            far,
            copier,
            thread: Mutex::new(thread),
        }
    }

    /// Redis's answer for `digest` (`raw`, or none), as the engine judges it: the folder's
    /// copy follows it, unless it is not worth keeping (damaged, invalidated, larger than
    /// the folder).
    fn answer(&self, digest: u128, raw: Option<Vec<u8>>) -> Option<Stored> {
        let Some(raw) = raw else {
            self.copier.copy(digest, None);
            return None;
        };
        match self.far.localize(&raw) {
            Ok(Some((local, current))) => {
                self.copier.copy(digest, current.then_some(raw));
                Some(stored(local))
            }
            // Damaged: handed on as it is, for the engine to drop and report.
            Ok(None) => {
                self.copier.copy(digest, None);
                Some(stored(raw))
            }
            Err(_) => {
                self.copier.copy(digest, None);
                None
            }
        }
    }
}

/// A record for the engine, read time unknown (as from Redis).
fn stored(bytes: Vec<u8>) -> Stored {
    Stored {
        bytes: bytes.into(),
        last_access_ms: None,
    }
}

impl Lower for Chain {
    /// The folder serves this process's neighbours on the machine; Redis's threads start.
    fn attach(&self, above: Weak<dyn Above>) {
        self.near.attach(above.clone());
        self.far.attach(above);
    }

    /// The folder's copy if Redis confirms it, else Redis's record (copied to the folder).
    /// A failure to reach Redis is a miss, copy or not.
    fn read(&self, digest: u128) -> Option<Stored> {
        // This process's own write of the key is on its way: Redis (and so the copy) still
        // holds what it replaces.
        if self.far.is_pending(digest) {
            return None;
        }
        let raw = match self.near.read(digest) {
            Some(copy) => match self.far.confirm(digest, &copy.bytes) {
                Ok(Confirmed::Same) => match self.far.localize(&copy.bytes) {
                    Ok(Some((local, _))) => return Some(stored(local)),
                    // A damaged copy counts as none (Redis's record replaces it): its
                    // checksum, the part Redis confirms, may be intact.
                    Ok(None) => {
                        tracing::warn!(
                            "a damaged copy of a Redis record in the folder is read from Redis"
                        );
                        self.far.read_raw(digest).ok()?
                    }
                    Err(_) => return None,
                },
                Ok(Confirmed::Other(raw)) => raw,
                Err(_) => return None,
            },
            None => self.far.read_raw(digest).ok()?,
        };
        self.answer(digest, raw)
    }

    /// Read times go to the folder, whose eviction takes the least recently used copies
    /// first.
    fn touch(&self, digest: u128, now_ms: u64, idle: bool) {
        self.near.touch(digest, now_ms, idle);
    }

    /// Without asking the server it cannot tell.
    fn may_contain(&self, _digest: u128) -> bool {
        true
    }

    /// Redis's records: the folder holds only copies of them.
    fn scan(&self, after: Option<u128>, max: usize) -> Result<(Vec<Scanned>, Option<u128>)> {
        self.far.scan(after, max)
    }

    /// As Redis's: a record above its bound stays in the memory tier.
    fn stage(&self, payload: Vec<u8>, record_bytes: u64) -> Result<Staging> {
        self.far.stage(payload, record_bytes)
    }

    fn reserve(&self, record_len: usize, staged: &mut Staged) -> Reservation {
        self.far.reserve(record_len, staged)
    }

    /// To Redis; the writer hands the copy on once Redis has it.
    fn put(&self, digest: u128, record: Vec<u8>, room: Reservation) -> Ticket {
        self.far.put(digest, record, room)
    }

    fn remove(&self, digest: u128) -> Ticket {
        self.far.remove(digest)
    }

    /// A dead record's copy goes (Redis's is left to its deadline and eviction).
    fn discard(&self, digest: u128) {
        self.near.discard(digest);
    }

    /// In Redis; the copies' tokens are checked against it on every read.
    fn bump(&self, gens: &Generations, label: String, settle: bool) -> Result<()> {
        self.far.bump(gens, label, settle)
    }

    fn lease(&self, digest: u128, force: bool) -> Result<Lease> {
        self.far.lease(digest, force)
    }

    /// Everything queued is sent to Redis, and the copies made so far are in the folder (or
    /// still being written after [`COPIES_WAITED`]).
    ///
    /// A folder that cannot keep its copies (a full disk) fails no flush: the writes are in
    /// Redis, and a missing copy only costs a read from Redis (the folder logs its trouble).
    fn flush(&self) -> Result<()> {
        self.far.flush()?;
        let until = Instant::now() + COPIES_WAITED;
        let tx = lock(&self.copier.tx).clone();
        if let Some(tx) = tx {
            let (done, copied) = mpsc::sync_channel(1);
            // Bounded: a copy is only a copy, and the writes themselves are in Redis.
            let mut flush = Copy::Flush(done);
            let queued = loop {
                match tx.try_send(flush) {
                    Ok(()) => break true,
                    Err(TrySendError::Full(back)) if Instant::now() < until => {
                        flush = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break false,
                }
            };
            if queued {
                let _ = copied.recv_timeout(until.saturating_duration_since(Instant::now()));
            }
        }
        if let Err(e) = self.near.flush() {
            tracing::debug!(error = %e, "the folder's copies of Redis's records are not all kept");
        }
        Ok(())
    }

    fn compact(&self) -> Result<()> {
        self.near.compact()
    }

    fn settle(&self, until: Instant) -> Result<()> {
        self.near.settle(until)
    }

    fn stop_serving(&self) {
        self.near.stop_serving();
    }

    fn leave_at_exit(&self) {
        self.far.leave_at_exit();
        self.near.leave_at_exit();
    }

    /// Sends what is queued to Redis, writes the last copies, then lets the folder go. Only
    /// Redis's failures count: the folder holds copies.
    fn close(&self) -> Result<()> {
        let far = self.far.close();
        lock(&self.copier.tx).take();
        if let Some(thread) = lock(&self.thread).take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
        if let Err(e) = self.near.close() {
            tracing::debug!(error = %e, "the folder's last copies of Redis's records were not kept");
        }
        far
    }

    /// Redis's state first (it decides what is served), then the folder's.
    fn health(&self) -> Option<crate::Health> {
        self.far.health().or_else(|| self.near.health())
    }

    /// None: a folder out of service only keeps no copies meanwhile (the folder logs why);
    /// every value is still in Redis.
    fn outage(&self) -> Option<crate::disk::Outage> {
        None
    }

    fn shared_stats(&self) -> Option<Stats> {
        self.near.shared_stats()
    }

    fn other_processes(&self) -> Result<Vec<crate::ProcessStats>> {
        self.near.other_processes()
    }

    fn fate(&self, digest: u128) -> Option<crate::Explanation> {
        self.near.fate(digest)
    }

    fn shared_by_builds(&self) -> bool {
        true
    }

    fn folder(&self) -> Option<&DiskTier> {
        Some(&self.near)
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
