//! The disk tier: redb, one writer thread with group commit, reads from any thread.
//!
//! Writes are queued to the writer thread. Until their commit, they sit in `pending` so that a
//! read on this process sees its own writes (and removals) whatever the durability mode. A
//! failed commit never drops them silently: see `health.rs` for how the tier goes out of
//! service and comes back, and `backlog.rs` for how the queue stays bounded.

mod backlog;
pub(crate) mod blobs;
#[cfg(test)]
mod fault_tests;
#[cfg(any(test, feature = "testing-faults"))]
pub(crate) mod faults;
mod guard;
mod health;
mod labels;
mod open;
pub(crate) mod private;
pub(crate) mod scan;
mod space;
mod sweep;
#[cfg(test)]
mod sweep_tests;
mod tables;
pub(crate) mod warm;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::ReadableDatabase;

pub(crate) use health::Outage;
pub(crate) use open::{create_folder, read_owner, OpenSettings, DB_FILE};
pub(crate) use writer::SETTLE_BUDGET;

use crate::error::{Error, Result};
use crate::expiry::Clock;
use crate::generations::Generations;
use crate::stats::Counters;
use crate::{DamagedFile, Durability};
use backlog::Backlog;
use guard::catch;
use health::{Failure, HealthState};
use tables::{ACCESS, RECORDS};
use writer::{Msg, Op};

/// At most this many read times wait for the writer; more are dropped (they only steer idle
/// expiry and eviction order).
const MAX_TOUCHES: usize = 100_000;

/// Read times by digest. Digests are uniform already: folded, not hashed again (a read
/// notes one under a lock every disk hit).
pub(crate) type Touches =
    HashMap<u128, u64, std::hash::BuildHasherDefault<crate::memory::DigestHasher>>;

/// A write not yet committed: its sequence number and the record, or `None` for a removal.
type Pending = (u64, Option<Arc<[u8]>>);

/// The records table as of the last commit, and the database it belongs to (declared after
/// it, so that it is dropped after the table).
struct Snapshot {
    records: redb::ReadOnlyTable<u128, &'static [u8]>,
    /// The database the table is of: the file stays open while a reader uses the table.
    db: Arc<guard::Db>,
}

/// What the writer thread and the readers share.
pub(crate) struct Shared {
    pub path: PathBuf,
    pub dir: PathBuf,
    /// The open database; `None` while the tier is out of service and being reopened.
    db: RwLock<Option<Arc<guard::Db>>>,
    /// The records table of the last commit, read by every reader: a read transaction and a
    /// table opened per read were most of a small disk hit's cost. Only the writer thread
    /// replaces it, after each of its commits and before the writes it committed leave
    /// `pending` ([`Shared::transact`]): a reader looks in `pending` first and in the snapshot
    /// second, so it never misses a write that left `pending`. `None` falls back to a read
    /// transaction per read.
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    pub pending: Mutex<HashMap<u128, Pending>>,
    /// `pending.len()`, readable without the lock: reads skip the lock when nothing is pending.
    pub pending_len: AtomicUsize,
    /// Read times waiting for the next commit, one per record.
    pub touches: Mutex<Touches>,
    /// Whether `touches` holds the read time of a record with an idle limit.
    pub idle_touched: AtomicBool,
    pub gens: Arc<Generations>,
    pub counters: Arc<Counters>,
    pub clock: Arc<dyn Clock>,
    pub capacity: u64,
    /// What `space.rs` learned of the database file, written with every commit.
    pub learned: Mutex<space::Learned>,
    pub open: open::OpenSettings,
    pub health: HealthState,
    pub backlog: Backlog,
    writer_thread: OnceLock<std::thread::Thread>,
}

impl Shared {
    /// The database, unless the tier is out of service.
    fn db(&self) -> Option<Arc<guard::Db>> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `db` is the tier's database (not let go of, as a damaged file is).
    fn is_current(&self, db: &Arc<guard::Db>) -> bool {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, db))
    }

    /// Replaces the database, dropping the snapshot of the old one (a reader still holding it
    /// keeps the old database alive until it is done: see `writer::release`).
    fn set_db(&self, db: Option<Arc<guard::Db>>) -> Option<Arc<guard::Db>> {
        // Both locks at once, in `refresh_snapshot`'s order (snapshot, then database): a
        // refresh cannot slip a snapshot of the old database in between.
        let (snapshot, old) = {
            let mut slot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
            let mut current = self.db.write().unwrap_or_else(|e| e.into_inner());
            (slot.take(), std::mem::replace(&mut *current, db))
        };
        guard::drop_guarded(snapshot);
        old
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes the records table as `db` holds it now. Called by the writer thread only,
    /// after each commit: see [`Shared::snapshot`](field@Shared::snapshot).
    fn refresh_snapshot(&self, db: &Arc<guard::Db>) {
        let fresh = catch(|| Ok(db.begin_read()?.open_table(RECORDS)?)).ok();
        let fresh = fresh.map(|records| {
            Arc::new(Snapshot {
                records,
                db: db.clone(),
            })
        });
        let old = {
            let mut slot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
            // The database may have been replaced meanwhile (a damaged file let go of).
            let current = self.db.read().unwrap_or_else(|e| e.into_inner());
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, db)) {
                std::mem::replace(&mut *slot, fresh)
            } else {
                slot.take()
            }
        };
        guard::drop_guarded(old);
    }

    /// Runs `f` over the tables in one durable write transaction (redb `Immediate`, with
    /// quick-repair), then publishes the new byte and record totals.
    fn transact<T>(
        &self,
        f: impl FnOnce(&mut tables::Tables<'_>) -> Result<T, redb::Error>,
    ) -> Result<T, Failure> {
        let Some(db) = self.db() else {
            return Err(self.outage_failure());
        };
        let (out, done) = catch(|| {
            let mut txn = db.begin_write()?;
            txn.set_quick_repair(true);
            let (out, done) = {
                let learned = *lock(&self.learned);
                let mut t = tables::Tables::open(&txn, self.totals(), learned)?;
                let out = f(&mut t)?;
                (out, t.finish()?)
            };
            if !self.is_current(&db) {
                // Let go of (found damaged) since the transaction began: not into that file.
                let _ = txn.abort();
                return Ok(None);
            }
            txn.commit()?;
            Ok(Some((out, done)))
        })
        .map_err(|c| Failure {
            detail: c.detail(),
            damaged: c.is_damage(),
        })?
        .filter(|_| self.is_current(&db))
        // A commit into a file that a reader found damaged meanwhile is not durable: the file
        // is set aside. The writes are kept in memory and reported as such, like any failed
        // commit's.
        .ok_or_else(|| self.outage_failure())?;
        self.refresh_snapshot(&db);
        self.set_totals(done.totals, done.entries);
        // Committed: the side files of the records it removed are garbage now.
        blobs::delete(&self.dir, &done.doomed);
        Ok(out)
    }

    /// The logical totals as of the last commit.
    fn totals(&self) -> tables::Totals {
        tables::Totals {
            bytes: self.counters.disk_bytes.load(Ordering::Relaxed),
            blob_bytes: self.counters.disk_blob_bytes.load(Ordering::Relaxed),
        }
    }

    fn set_totals(&self, totals: tables::Totals, entries: u64) {
        let c = &self.counters;
        c.disk_bytes.store(totals.bytes, Ordering::Relaxed);
        c.disk_blob_bytes
            .store(totals.blob_bytes, Ordering::Relaxed);
        c.disk_entries.store(entries, Ordering::Relaxed);
    }

    /// The database file's length (0 if it cannot be read).
    fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Runs `f` in a read transaction; a failure takes the tier out of service.
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Option<T> {
        let db = self.db()?;
        self.guarded(&db, || f(&db.begin_read()?))
    }

    /// Runs `f` over `db`, catching redb's errors and panics; a failure takes the tier out of
    /// service if `db` is still the tier's database.
    fn guarded<T>(
        &self,
        db: &Arc<guard::Db>,
        f: impl FnOnce() -> Result<T, redb::Error>,
    ) -> Option<T> {
        match catch(f) {
            Ok(v) => Some(v),
            Err(c) => {
                self.fail_on(
                    db,
                    Failure {
                        detail: c.detail(),
                        damaged: c.is_damage(),
                    },
                );
                None
            }
        }
    }

    /// A failure of the writer's (a commit, a maintenance), or at open: takes the tier out of
    /// service (logged once) and wakes the writer to bring it back.
    pub fn fail(&self, failure: Failure) {
        self.take_down(None, failure);
    }

    /// A reader's failure on `db`: as [`fail`](Self::fail), unless `db` is no longer the
    /// tier's database. A reader still on a damaged file that the writer has already replaced
    /// (set aside for a fresh one, or reopened) must not take the new file out of service: that
    /// would have the fresh file set aside with what was written to it, or leave the tier
    /// without a database and no outage on record.
    fn fail_on(&self, db: &Arc<guard::Db>, failure: Failure) {
        self.take_down(Some(db), failure);
    }

    fn take_down(&self, seen_on: Option<&Arc<guard::Db>>, failure: Failure) {
        let damaged = failure.damaged;
        let detail = failure.detail.clone();
        let (starts, snapshot, old) = {
            // `set_db`'s lock order: snapshot, then database. Under both, the outage and the
            // database's removal are one step for anyone who looks at them.
            let mut slot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
            let mut current = self.db.write().unwrap_or_else(|e| e.into_inner());
            if let Some(db) = seen_on {
                if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, db)) {
                    tracing::debug!(error = %detail,
                        "a failure on a database already let go of: ignored");
                    return;
                }
            }
            let starts = self.health.go_down(failure);
            if damaged {
                // A damaged file may panic again on the next read: stop reading it at once.
                (starts, slot.take(), current.take())
            } else {
                (starts, None, None)
            }
        };
        guard::drop_guarded(snapshot);
        guard::drop_guarded(old);
        if starts {
            Counters::bump(&self.counters.disk_failures);
            let what = if damaged {
                match self.open.on_damage {
                    DamagedFile::SetAside => "the file is damaged; setting it aside",
                    DamagedFile::Fail => {
                        "the file is damaged; serving from memory until it is deleted \
                         (or open with DamagedFile::SetAside)"
                    }
                }
            } else {
                "serving from memory and retrying"
            };
            tracing::error!(file = %self.path.display(), error = %detail,
                "cache disk tier out of service: {what}");
        }
        if let Some(t) = self.writer_thread.get() {
            t.unpark();
        }
    }

    fn outage_failure(&self) -> Failure {
        self.health.outage().map_or_else(
            || Failure {
                detail: "the disk tier is out of service".into(),
                damaged: false,
            },
            |o| o.failure,
        )
    }

    /// The message a caller gets while the tier is out of service.
    fn outage_message(&self) -> String {
        let f = self.outage_failure();
        format!(
            "the disk tier is out of service ({}); values are kept in memory only until it \
             recovers",
            f.detail
        )
    }
}

#[derive(Clone)]
pub(crate) struct DiskConfig {
    pub dir: PathBuf,
    pub open_timeout: Duration,
    /// How long a client waits for its owner's answer: see `CacheBuilder::request_timeout`.
    pub request_timeout: Duration,
    pub durability: Durability,
    pub capacity: u64,
    pub open: open::OpenSettings,
}

pub(crate) use crate::tiers::Stored;

pub(crate) struct LocalTier {
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    durability: Durability,
    seq: AtomicU64,
}

impl LocalTier {
    /// Opens the tier and returns it with the generations stored in it.
    ///
    /// A database that cannot be written because the disk is full opens the tier out of
    /// service (logged): the cache serves from memory and the writer retries.
    pub fn open(
        cfg: DiskConfig,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
        gens: Arc<Generations>,
    ) -> Result<Self> {
        // The builder created the folder (and resolved it to its canonical path).
        let (opened, failure) = match open::open_database(&cfg.dir, cfg.open_timeout, &cfg.open) {
            Ok(opened) => (Some(opened), None),
            Err(Error::Io { source, .. }) if open::is_full(&source) => (
                None,
                Some(Failure {
                    detail: source.to_string(),
                    damaged: false,
                }),
            ),
            Err(e) => return Err(e),
        };
        // The file's generations, with any newer ones this process already knows (a client
        // taking over may have been told of a bump its owner had not committed): those are
        // written back below.
        let stored = opened
            .as_ref()
            .map(|o| o.generations.clone())
            .unwrap_or_default();
        let newer = gens.merge_file(&stored);
        if let Some(o) = &opened {
            if o.set_aside {
                // The damaged file's entries are gone: count it as a failure of the tier.
                Counters::bump(&counters.disk_failures);
            }
            counters.disk_bytes.store(o.totals.bytes, Ordering::Relaxed);
            counters
                .disk_blob_bytes
                .store(o.totals.blob_bytes, Ordering::Relaxed);
            counters.disk_entries.store(o.entries, Ordering::Relaxed);
        }
        let learned = opened.as_ref().map(|o| o.learned).unwrap_or_default();
        let window = match cfg.durability {
            Durability::Batched(d) => Some(d),
            Durability::Immediate => None,
        };
        let shared = Arc::new(Shared {
            path: cfg.dir.join(DB_FILE),
            dir: cfg.dir.clone(),
            db: RwLock::new(opened.map(|o| Arc::new(guard::Db::new(o.db, Some(o.watch))))),
            snapshot: RwLock::new(None),
            pending: Mutex::default(),
            pending_len: AtomicUsize::new(0),
            touches: Mutex::default(),
            idle_touched: AtomicBool::new(false),
            gens: gens.clone(),
            counters,
            clock,
            capacity: cfg.capacity,
            learned: Mutex::new(learned),
            open: cfg.open,
            health: HealthState::default(),
            backlog: Backlog::new(window, cfg.capacity),
            writer_thread: OnceLock::new(),
        });
        shared.counters.disk_file_bytes.store(
            shared.file_len().saturating_add(shared.totals().blob_bytes),
            Ordering::Relaxed,
        );
        if let Some(failure) = failure {
            shared.fail(failure);
        }
        if let Some(db) = shared.db() {
            shared.refresh_snapshot(&db);
        }
        // Listed before `open` returns, so before any write of this process adds a side file.
        let preexisting = blobs::list(&cfg.dir);
        let (tx, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("tiered-writer".into())
            .spawn(move || writer::run(&thread_shared, &rx, window, preexisting))
            .map_err(|e| Error::io(&cfg.dir, e))?;
        let _ = shared.writer_thread.set(writer.thread().clone());
        shared.backlog.set_writer(writer.thread().clone());
        let tier = LocalTier {
            shared,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            durability: cfg.durability,
            seq: AtomicU64::new(0),
        };
        for (label, generation) in newer {
            tier.bump(label, generation, false).wait()?;
        }
        Ok(tier)
    }

    /// Why the tier is out of service, if it is.
    pub fn outage(&self) -> Option<Outage> {
        self.shared.health.outage()
    }

    /// The record of `digest`: this process's uncommitted writes first, then the file.
    /// A failure to read is a miss (and takes the tier out of service, logged once).
    pub fn read(&self, digest: u128) -> Option<Stored> {
        if self.shared.pending_len.load(Ordering::Acquire) != 0 {
            if let Some((_, record)) = lock(&self.shared.pending).get(&digest).cloned() {
                return record.map(|bytes| Stored {
                    bytes,
                    last_access_ms: None,
                });
            }
        }
        self.read_file(digest)
    }

    /// The committed record of `digest`, past the overlay of this process's pending writes.
    fn read_file(&self, digest: u128) -> Option<Stored> {
        if self.shared.health.is_shadowed(digest) {
            return None;
        }
        let snapshot = self.shared.snapshot();
        let stored = match &snapshot {
            Some(snapshot) => self.shared.guarded(&snapshot.db, || {
                Ok(snapshot.records.get(digest)?.map(|g| Arc::from(g.value())))
            })?,
            None => self.shared.read(|txn| {
                Ok(txn
                    .open_table(RECORDS)?
                    .get(digest)?
                    .map(|g| Arc::from(g.value())))
            })?,
        };
        drop(snapshot);
        let bytes: Arc<[u8]> = stored?;
        // Only a record with an idle limit needs its read time: opening that table is a good
        // share of a read's cost.
        let last_access_ms = if crate::record::has_idle_limit(&bytes) {
            self.shared
                .read(|txn| tables::last_access(&txn.open_table(ACCESS)?, digest, &bytes))?
        } else {
            None
        };
        Some(Stored {
            bytes,
            last_access_ms,
        })
    }

    /// The size of the write a caller is about to queue, admitted against the backlog before
    /// it takes any lock: see `backlog.rs`.
    pub fn reserve(&self, bytes: usize) -> Reservation {
        self.shared.backlog.admit(bytes as u64, true);
        Reservation {
            shared: Some(self.shared.clone()),
            bytes: bytes as u64,
            side: 0,
            used: false,
        }
    }

    /// Room for a side file of `bytes` about to be written for a record not yet queued:
    /// waits while the side files of uncommitted writes hold their limit (`backlog.rs`), so
    /// that they cannot take the folder far past `disk_capacity`. Hand it to the record's
    /// [`Reservation::with_side`]; dropped unused, it is given back.
    pub fn reserve_side(&self, bytes: usize) -> SideReservation {
        self.shared.backlog.admit_side(bytes as u64);
        SideReservation {
            shared: Some(self.shared.clone()),
            bytes: bytes as u64,
        }
    }

    /// Queues a record (admitted by `reservation`). Call inside the key's stripe lock; then
    /// [`Ticket::wait`] outside it.
    pub fn put(&self, digest: u128, record: Vec<u8>, mut reservation: Reservation) -> Ticket {
        reservation.used = true;
        let record: Arc<[u8]> = record.into();
        let (bytes, side) = (reservation.bytes, reservation.side);
        let wait = self.durability == Durability::Immediate;
        self.write(digest, Some(record.clone()), wait, |seq| Op::Put {
            digest,
            record,
            seq,
            bytes,
            side,
        })
    }

    /// Queues the removal of a record. Call inside the key's stripe lock.
    pub fn remove(&self, digest: u128) -> Ticket {
        let wait = self.durability == Durability::Immediate;
        self.write(digest, None, wait, |seq| Op::Remove { digest, seq })
    }

    /// Queues the removal of a dead record; never waits for its commit. Call inside the key's
    /// stripe lock.
    pub fn discard(&self, digest: u128) {
        let ticket = self.write(digest, None, false, |seq| Op::Remove { digest, seq });
        if let Err(e) = ticket.wait() {
            tracing::debug!(error = %e, "could not queue the removal of a dead record");
        }
    }

    fn write(
        &self,
        digest: u128,
        pending: Option<Arc<[u8]>>,
        wait: bool,
        op: impl FnOnce(u64) -> Op,
    ) -> Ticket {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = lock(&self.shared.pending);
            map.insert(digest, (seq, pending));
            self.shared.pending_len.store(map.len(), Ordering::Release);
        }
        self.send(op(seq), wait)
    }

    /// Persists a generation bump; with `settle`, a close waits (briefly) for the sweep pass
    /// that reclaims what it made dead.
    pub fn bump(&self, label: String, generation: u64, settle: bool) -> Ticket {
        let wait = self.durability == Durability::Immediate;
        let op = Op::Bump {
            label,
            generation,
            settle,
        };
        self.send(op, wait)
    }

    /// Notes a read, for idle expiry (`idle`: the record has an idle limit) and eviction
    /// order; written with the next commit, or on its own when due (`writer::touches_due`).
    pub fn touch(&self, digest: u128, now_ms: u64, idle: bool) {
        let mut touches = lock(&self.shared.touches);
        if touches.len() < MAX_TOUCHES || touches.contains_key(&digest) {
            touches.insert(digest, now_ms);
            if idle {
                self.shared.idle_touched.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Waits until everything queued so far is committed.
    ///
    /// # Errors
    /// If this commit failed, or writes nobody waited for were kept in memory only since the
    /// last flush (the tier was out of service).
    pub fn flush(&self) -> Result<()> {
        self.send(Op::Flush, true).wait()?;
        match self.shared.health.take_lost() {
            Some((n, reason)) => Err(self.storage_error(format!(
                "{n} write(s) since the last flush were kept in memory only: {reason}"
            ))),
            None => Ok(()),
        }
    }

    /// Commits everything queued, sweeps dead records, evicts past the limits and compacts
    /// the database file (see `space.rs`).
    ///
    /// # Errors
    /// As [`flush`](Self::flush); [`Error::Storage`] if the tier is out of service or the
    /// compaction did not run.
    pub fn compact(&self) -> Result<()> {
        self.flush()?;
        self.send(Op::Compact, true).wait()
    }

    /// Whether a record for `digest` may exist (committed or queued).
    pub fn may_contain(&self, digest: u128) -> bool {
        if let Some((_, record)) = lock(&self.shared.pending).get(&digest) {
            return record.is_some();
        }
        // Out of service: assume it may, so that removals are still queued (and shadowed).
        self.shared.health.is_down() || self.read_file(digest).is_some()
    }

    /// Sends `op` to the writer. Every message counts in the backlog until the writer settles
    /// it; a `Put` was admitted (and may have waited) by its reservation, the others never wait.
    fn send(&self, op: Op, wait: bool) -> Ticket {
        let (bytes, side) = (op.bytes(), op.side_bytes());
        if !matches!(op, Op::Put { .. }) {
            self.shared.backlog.admit(0, false);
        }
        let (ack, rx) = if wait {
            let (tx, rx) = mpsc::sync_channel(1);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let tx = lock(&self.tx);
        let sent = tx
            .as_ref()
            .is_some_and(|tx| tx.send(Msg { op, ack }).is_ok());
        drop(tx);
        if !sent {
            self.shared.backlog.release(1, bytes);
            self.shared.backlog.release_side(side);
        }
        if wait {
            if let Some(t) = self.shared.writer_thread.get() {
                t.unpark();
            }
        }
        Ticket {
            rx: if sent { rx } else { None },
            closed: !sent,
            path: self.shared.path.clone(),
        }
    }

    fn storage_error(&self, detail: String) -> Error {
        Error::Storage {
            path: self.shared.path.clone(),
            detail,
        }
    }

    /// Commits everything queued and runs, until `until`, the sweep passes this process's
    /// invalidations asked for (so that a short-lived program does not leave the records it
    /// made dead behind: `writer::SETTLE_BUDGET`).
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn settle(&self, until: std::time::Instant) -> Result<()> {
        self.send(Op::Settle { until }, true).wait()
    }

    /// Commits everything queued, settles (see [`settle`](Self::settle)), stops the writer and
    /// releases the file.
    pub fn close(&self) -> Result<()> {
        let _ = self.settle(std::time::Instant::now() + writer::SETTLE_BUDGET);
        let result = self.send(Op::Shutdown, true).wait();
        lock(&self.tx).take();
        if let Some(handle) = lock(&self.writer).take() {
            let _ = handle.join();
        }
        if let Some(db) = self.shared.set_db(None) {
            // While the file is still held, so no owner can have taken over.
            open::remove_owner(&self.shared.dir);
            guard::drop_guarded(db);
        }
        result
    }

    /// At the exit of a process whose cache is never dropped (a `static`): removes the owner
    /// file if it still names this process and the file is still held (the process lets go of
    /// it as it ends).
    pub fn leave_at_exit(&self) {
        if self.shared.db().is_some() {
            open::remove_owner(&self.shared.dir);
        }
    }
}

/// Room in the writer's queue for one record (and its side file, if any); returned unused if
/// dropped. A client's writes are admitted by the owner: theirs hold no room here.
pub(crate) struct Reservation {
    shared: Option<Arc<Shared>>,
    bytes: u64,
    side: u64,
    used: bool,
}

impl Reservation {
    /// No room held: a client's write.
    pub fn none() -> Self {
        Reservation {
            shared: None,
            bytes: 0,
            side: 0,
            used: false,
        }
    }

    /// Whether this holds room in this process's queue.
    pub fn is_held(&self) -> bool {
        self.shared.is_some()
    }

    /// Takes over the room of the record's side file, given back with the record's operation.
    pub fn with_side(mut self, side: SideReservation) -> Self {
        self.side += side.bytes;
        std::mem::forget(side);
        self
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let (false, Some(shared)) = (self.used, &self.shared) {
            shared.backlog.release(1, self.bytes);
            shared.backlog.release_side(self.side);
        }
    }
}

/// Room for a side file of a write not yet queued; given back if dropped.
pub(crate) struct SideReservation {
    shared: Option<Arc<Shared>>,
    bytes: u64,
}

impl SideReservation {
    /// No room held: a client's side file.
    pub fn none() -> Self {
        SideReservation {
            shared: None,
            bytes: 0,
        }
    }
}

impl Drop for SideReservation {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.backlog.release_side(self.bytes);
        }
    }
}

/// A queued write: wait on it (outside any lock) for its commit, if the durability asks.
#[must_use = "a write's outcome is known only by waiting on its ticket"]
pub(crate) struct Ticket {
    rx: Option<mpsc::Receiver<writer::Outcome>>,
    closed: bool,
    path: PathBuf,
}

impl Ticket {
    /// Waits for the commit (if this write waits for one).
    ///
    /// # Errors
    /// [`Error::Storage`] if the commit failed or the cache is closed.
    pub fn wait(self) -> Result<()> {
        let storage = |detail: String| Error::Storage {
            path: self.path.clone(),
            detail,
        };
        if self.closed {
            return Err(storage("the cache is closed".into()));
        }
        let Some(rx) = self.rx else { return Ok(()) };
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(detail)) => Err(storage(detail)),
            Err(_) => Err(storage("the writer thread stopped".into())),
        }
    }
}

impl Drop for LocalTier {
    fn drop(&mut self) {
        if lock(&self.writer).is_some() {
            if let Err(e) = self.close() {
                tracing::error!(error = %e, "closing the cache lost writes");
            }
        }
    }
}

/// Locks a mutex, recovering it if a thread panicked while holding it: every structure guarded
/// here stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
