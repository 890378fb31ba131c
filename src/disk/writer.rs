//! The writer thread: owns every write transaction and commits in groups.
//!
//! With `Durability::Immediate` it commits whatever is queued as soon as it can, so writers that
//! arrive during one fsync share the next (group commit). With `Durability::Batched(d)` it waits
//! up to `d` after the first queued write, unless someone waits for a commit. Every commit is
//! redb-`Immediate` with quick-repair. When idle it sweeps dead records (see `sweep.rs`).

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::guard::catch;
use super::sweep::Sweeper;
use super::tables::*;
use super::{lock, Shared};

/// What a waiting caller is told: committed, or why not.
pub(crate) type Outcome = Result<(), String>;

pub(crate) enum Op {
    Put {
        digest: u128,
        record: Arc<[u8]>,
        seq: u64,
        at_ms: u64,
    },
    Remove {
        digest: u128,
        seq: u64,
    },
    Bump {
        label: String,
        generation: u64,
    },
    Flush,
    Shutdown,
}

pub(crate) struct Msg {
    pub op: Op,
    pub ack: Option<SyncSender<Outcome>>,
}

/// Most operations in one commit.
const MAX_BATCH: usize = 8_192;
/// How often an idle writer wakes to write read times and start a sweep pass.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// How often a full sweep pass starts without an invalidation asking for one.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub(crate) fn run(shared: &Shared, rx: &Receiver<Msg>, window: Option<Duration>) {
    let mut sweeper = Sweeper::new(SWEEP_EVERY);
    loop {
        let first = if sweeper.active() {
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return,
            }
        } else {
            match rx.recv_timeout(IDLE_TICK) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let Some(first) = first else {
            idle(shared, &mut sweeper);
            continue;
        };
        let mut batch = vec![first];
        gather(rx, &mut batch, window);
        let shutdown = batch.iter().any(|m| matches!(m.op, Op::Shutdown));
        let result = commit(shared, &batch);
        if let Err(e) = &result {
            tracing::error!(file = %shared.path.display(), error = %e, "cache commit failed");
        }
        settle(shared, batch, &result, &mut sweeper);
        if shutdown {
            return;
        }
    }
}

fn idle(shared: &Shared, sweeper: &mut Sweeper) {
    if sweeper.active() || sweeper.due() {
        if let Err(e) = sweeper.step(shared) {
            tracing::warn!(error = %e, "cache sweep failed; retrying later");
            sweeper.pause();
        }
    } else if !lock(&shared.touches).is_empty() {
        if let Err(e) = commit(shared, &[]) {
            tracing::warn!(error = %e, "writing read times failed");
        }
    }
}

/// Adds to `batch` what should share its commit.
fn gather(rx: &Receiver<Msg>, batch: &mut Vec<Msg>, window: Option<Duration>) {
    let urgent = |m: &Msg| m.ack.is_some();
    if let (Some(window), false) = (window, batch.iter().any(urgent)) {
        let until = Instant::now() + window;
        while batch.len() < MAX_BATCH {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(m) => {
                    let stop = urgent(&m);
                    batch.push(m);
                    if stop {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(m) => batch.push(m),
            Err(_) => break,
        }
    }
}

/// Tells waiters the outcome and drops committed writes from `pending`.
fn settle(shared: &Shared, batch: Vec<Msg>, result: &Result<(), String>, sweeper: &mut Sweeper) {
    {
        let mut pending = lock(&shared.pending);
        for msg in &batch {
            if let Op::Put { digest, seq, .. } | Op::Remove { digest, seq } = &msg.op {
                if pending.get(digest).is_some_and(|(s, _)| s == seq) {
                    pending.remove(digest);
                }
            }
        }
    }
    let mut someone_waited = false;
    for msg in batch {
        if matches!(msg.op, Op::Bump { .. }) {
            sweeper.start();
        }
        if let Some(ack) = msg.ack {
            someone_waited = true;
            let _ = ack.send(result.clone());
        }
    }
    if let (Err(e), false) = (result, someone_waited) {
        *lock(&shared.failure) = Some(e.clone());
    }
}

/// Applies a batch (and the queued read times) in one durable transaction.
pub(super) fn commit(shared: &Shared, batch: &[Msg]) -> Result<(), String> {
    let touches = std::mem::take(&mut *lock(&shared.touches));
    let (bytes, entries, evicted) = catch(|| {
        let mut txn = shared.db.begin_write()?;
        txn.set_quick_repair(true);
        let counts = apply(shared, &txn, batch, &touches)?;
        txn.commit()?;
        Ok(counts)
    })
    .map_err(|c| c.into_error(&shared.path).to_string())?;
    let c = &shared.counters;
    c.disk_bytes.store(bytes, Ordering::Relaxed);
    c.disk_entries.store(entries, Ordering::Relaxed);
    c.evictions.fetch_add(evicted, Ordering::Relaxed);
    Ok(())
}

fn apply(
    shared: &Shared,
    txn: &WriteTransaction,
    batch: &[Msg],
    touches: &[(u128, u64)],
) -> Result<(u64, u64, u64), redb::Error> {
    let mut records = txn.open_table(RECORDS)?;
    let mut access = txn.open_table(ACCESS)?;
    let mut gens = txn.open_table(GENERATIONS)?;
    let mut meta = txn.open_table(META)?;
    let mut bytes = shared.counters.disk_bytes.load(Ordering::Relaxed);
    for msg in batch {
        match &msg.op {
            Op::Put {
                digest,
                record,
                at_ms,
                ..
            } => {
                if let Some(old) = records.insert(digest, &record[..])? {
                    bytes = bytes.saturating_sub(old.value().len() as u64);
                }
                bytes += record.len() as u64;
                access.insert(digest, (*at_ms, record.len() as u64))?;
            }
            Op::Remove { digest, .. } => {
                if let Some(old) = records.remove(digest)? {
                    bytes = bytes.saturating_sub(old.value().len() as u64);
                }
                access.remove(digest)?;
            }
            Op::Bump { label, generation } => {
                let stored = gens.get(label.as_str())?.map_or(0, |g| g.value());
                gens.insert(label.as_str(), stored.max(*generation))?;
            }
            Op::Flush | Op::Shutdown => {}
        }
    }
    for (digest, at_ms) in touches {
        let len = access.get(digest)?.map(|g| g.value().1);
        if let Some(len) = len {
            access.insert(digest, (*at_ms, len))?;
        }
    }
    let mut evicted = 0;
    if bytes > shared.capacity {
        evicted = evict(&mut records, &mut access, &mut bytes, shared.capacity)?;
    }
    meta.insert(DISK_BYTES, bytes)?;
    Ok((bytes, records.len()?, evicted))
}

/// Drops the least recently used records until the disk tier holds at most 90% of `capacity`,
/// so that eviction (a scan of the access table) runs once per tenth of capacity written.
fn evict(
    records: &mut redb::Table<'_, u128, &[u8]>,
    access: &mut redb::Table<'_, u128, (u64, u64)>,
    bytes: &mut u64,
    capacity: u64,
) -> Result<u64, redb::Error> {
    let target = capacity / 10 * 9;
    let mut by_age = Vec::new();
    for item in access.range::<u128>(..)? {
        let (digest, value) = item?;
        let (at_ms, _) = value.value();
        by_age.push((at_ms, digest.value()));
    }
    by_age.sort_unstable();
    let mut evicted = 0;
    for (_, digest) in by_age {
        if *bytes <= target {
            break;
        }
        if let Some(old) = records.remove(digest)? {
            *bytes = bytes.saturating_sub(old.value().len() as u64);
            evicted += 1;
        }
        access.remove(digest)?;
    }
    tracing::debug!(
        evicted,
        bytes = *bytes,
        capacity,
        "disk tier evicted least recently used records"
    );
    Ok(evicted)
}
