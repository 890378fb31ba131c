//! The disk tier: redb, one writer thread with group commit, reads from any thread.
//!
//! Writes are queued to the writer thread. Until their commit, they sit in `pending` so that a
//! read on this process sees its own writes (and removals) whatever the durability mode.

mod guard;
mod open;
mod sweep;
mod tables;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::ReadableDatabase;

pub(crate) use open::{create_folder, DB_FILE};

use crate::error::{Error, Result};
use crate::expiry::Clock;
use crate::generations::Generations;
use crate::stats::Counters;
use crate::{DamagedFile, Durability};
use guard::guarded;
use tables::{ACCESS, RECORDS};
use writer::{Msg, Op};

/// At most this many read times wait for the writer; more are dropped (they only steer idle
/// expiry and eviction order).
const MAX_TOUCHES: usize = 100_000;

/// A write not yet committed: its sequence number and the record, or `None` for a removal.
type Pending = (u64, Option<Arc<[u8]>>);

/// What the writer thread and the readers share.
pub(crate) struct Shared {
    pub path: PathBuf,
    pub db: redb::Database,
    pub pending: Mutex<HashMap<u128, Pending>>,
    /// `pending.len()`, readable without the lock: reads skip the lock when nothing is pending.
    pub pending_len: AtomicUsize,
    /// Read times waiting for the next commit, one per record.
    pub touches: Mutex<HashMap<u128, u64>>,
    pub gens: Arc<Generations>,
    pub counters: Arc<Counters>,
    pub clock: Arc<dyn Clock>,
    pub capacity: u64,
    /// The error of the last commit that nobody waited for; `flush` reports it once.
    pub failure: Mutex<Option<String>>,
}

impl Shared {
    /// Runs `f` over the tables in one durable write transaction (redb `Immediate`, with
    /// quick-repair), then publishes the new byte and record totals. Errors, redb panics
    /// included, come back as text for whoever waits on the commit.
    fn transact<T>(
        &self,
        f: impl FnOnce(&mut tables::Tables<'_>) -> Result<T, redb::Error>,
    ) -> Result<T, String> {
        let (out, bytes, entries) = guard::catch(|| {
            let mut txn = self.db.begin_write()?;
            txn.set_quick_repair(true);
            let (out, bytes, entries) = {
                let bytes = self.counters.disk_bytes.load(Ordering::Relaxed);
                let mut t = tables::Tables::open(&txn, bytes)?;
                let out = f(&mut t)?;
                let (bytes, entries) = t.finish()?;
                (out, bytes, entries)
            };
            txn.commit()?;
            Ok((out, bytes, entries))
        })
        .map_err(|c| c.into_error(&self.path).to_string())?;
        self.counters.disk_bytes.store(bytes, Ordering::Relaxed);
        self.counters.disk_entries.store(entries, Ordering::Relaxed);
        Ok(out)
    }
}

pub(crate) struct DiskConfig {
    pub dir: PathBuf,
    pub open_timeout: Duration,
    pub durability: Durability,
    pub capacity: u64,
    pub page_cache: usize,
    pub on_damage: DamagedFile,
}

/// A stored record as a reader sees it.
pub(crate) struct Found<'a> {
    pub bytes: &'a [u8],
    /// When the record was last read or written, if known.
    pub last_access_ms: Option<u64>,
}

pub(crate) struct DiskTier {
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer thread, to wake it when someone waits for a commit.
    writer_thread: std::thread::Thread,
    durability: Durability,
    seq: AtomicU64,
}

impl DiskTier {
    /// Opens the tier and returns it with the generations stored in it.
    pub fn open(
        cfg: DiskConfig,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
    ) -> Result<(Self, Arc<Generations>)> {
        create_folder(&cfg.dir)?;
        let opened =
            open::open_database(&cfg.dir, cfg.open_timeout, cfg.page_cache, cfg.on_damage)?;
        let gens = Arc::new(Generations::load(opened.generations));
        counters
            .disk_bytes
            .store(opened.disk_bytes, Ordering::Relaxed);
        counters
            .disk_entries
            .store(opened.entries, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            path: cfg.dir.join(DB_FILE),
            db: opened.db,
            pending: Mutex::default(),
            pending_len: AtomicUsize::new(0),
            touches: Mutex::default(),
            gens: gens.clone(),
            counters,
            clock,
            capacity: cfg.capacity,
            failure: Mutex::default(),
        });
        let (tx, rx) = mpsc::channel();
        let window = match cfg.durability {
            Durability::Batched(d) => Some(d),
            Durability::Immediate => None,
        };
        let thread_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("tiered-writer".into())
            .spawn(move || writer::run(&thread_shared, &rx, window))
            .map_err(|e| Error::io(&cfg.dir, e))?;
        let tier = DiskTier {
            shared,
            writer_thread: writer.thread().clone(),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            durability: cfg.durability,
            seq: AtomicU64::new(0),
        };
        Ok((tier, gens))
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Reads the record of `digest` (this process's uncommitted writes first) and hands it to `f`.
    pub fn read<R>(&self, digest: u128, f: impl FnOnce(Found<'_>) -> R) -> Result<Option<R>> {
        let pending = if self.shared.pending_len.load(Ordering::Acquire) == 0 {
            None
        } else {
            lock(&self.shared.pending).get(&digest).cloned()
        };
        if let Some((_, record)) = pending {
            return Ok(record.map(|bytes| {
                f(Found {
                    bytes: &bytes,
                    last_access_ms: None,
                })
            }));
        }
        guarded(&self.shared.path, || {
            let txn = self.shared.db.begin_read()?;
            let records = txn.open_table(RECORDS)?;
            let Some(guard) = records.get(digest)? else {
                return Ok(None);
            };
            let last_access_ms =
                tables::last_access(&txn.open_table(ACCESS)?, digest, guard.value())?;
            Ok(Some(f(Found {
                bytes: guard.value(),
                last_access_ms,
            })))
        })
    }

    /// Queues a record; with `Durability::Immediate`, returns after its commit.
    pub fn put(&self, digest: u128, record: Vec<u8>) -> Result<()> {
        let record: Arc<[u8]> = record.into();
        self.write(digest, Some(record.clone()), |seq| Op::Put {
            digest,
            record,
            seq,
        })
    }

    /// Queues the removal of a record; with `Durability::Immediate`, returns after its commit.
    pub fn remove(&self, digest: u128) -> Result<()> {
        self.write(digest, None, |seq| Op::Remove { digest, seq })
    }

    /// Queues the removal of a dead record; never waits for its commit.
    pub fn discard(&self, digest: u128) -> Result<()> {
        self.write_with(digest, None, false, |seq| Op::Remove { digest, seq })
    }

    fn write(
        &self,
        digest: u128,
        pending: Option<Arc<[u8]>>,
        op: impl FnOnce(u64) -> Op,
    ) -> Result<()> {
        let wait = self.durability == Durability::Immediate;
        self.write_with(digest, pending, wait, op)
    }

    fn write_with(
        &self,
        digest: u128,
        pending: Option<Arc<[u8]>>,
        wait: bool,
        op: impl FnOnce(u64) -> Op,
    ) -> Result<()> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        // Held while sending so that the writer applies writes to one digest in `seq` order.
        let mut map = lock(&self.shared.pending);
        map.insert(digest, (seq, pending));
        self.shared.pending_len.store(map.len(), Ordering::Release);
        let ack = self.send(op(seq), wait);
        drop(map);
        self.wait(ack?)
    }

    /// Persists a generation bump.
    pub fn bump(&self, label: String, generation: u64) -> Result<()> {
        let wait = self.durability == Durability::Immediate;
        let ack = self.send(Op::Bump { label, generation }, wait)?;
        self.wait(ack)
    }

    /// Notes a read, for idle expiry and eviction order; written with the next commit.
    pub fn touch(&self, digest: u128, now_ms: u64) {
        let mut touches = lock(&self.shared.touches);
        if touches.len() < MAX_TOUCHES || touches.contains_key(&digest) {
            touches.insert(digest, now_ms);
        }
    }

    /// Waits until everything queued so far is committed.
    pub fn flush(&self) -> Result<()> {
        let ack = self.send(Op::Flush, true)?;
        self.wait(ack)?;
        match lock(&self.shared.failure).take() {
            Some(detail) => {
                Err(self.storage_error(format!("an earlier batched write was lost: {detail}")))
            }
            None => Ok(()),
        }
    }

    /// Whether a record for `digest` may exist (committed or queued).
    pub fn may_contain(&self, digest: u128) -> bool {
        if let Some((_, record)) = lock(&self.shared.pending).get(&digest) {
            return record.is_some();
        }
        self.read(digest, |_| ())
            .map_or(true, |found| found.is_some())
    }

    fn send(&self, op: Op, wait: bool) -> Result<Option<mpsc::Receiver<writer::Outcome>>> {
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
        if wait {
            self.writer_thread.unpark();
        }
        if sent {
            Ok(rx)
        } else {
            Err(self.storage_error("the cache is closed".into()))
        }
    }

    fn wait(&self, rx: Option<mpsc::Receiver<writer::Outcome>>) -> Result<()> {
        let Some(rx) = rx else { return Ok(()) };
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(detail)) => Err(self.storage_error(detail)),
            Err(_) => Err(self.storage_error("the writer thread stopped".into())),
        }
    }

    fn storage_error(&self, detail: String) -> Error {
        Error::Storage {
            path: self.shared.path.clone(),
            detail,
        }
    }

    /// Commits everything queued, stops the writer and releases the file.
    pub fn close(&self) -> Result<()> {
        let result = self.send(Op::Shutdown, true).and_then(|ack| self.wait(ack));
        lock(&self.tx).take();
        if let Some(handle) = lock(&self.writer).take() {
            let _ = handle.join();
        }
        result
    }
}

impl Drop for DiskTier {
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
