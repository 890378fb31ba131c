//! The writer thread: owns every write transaction and commits in groups.
//!
//! A batch opens a write transaction at its first operation and applies each later one as it
//! arrives, so that encoding on the callers' threads and B-tree work here overlap. With
//! `Durability::Immediate` it commits as soon as the queue is empty, so writers that arrive
//! during one fsync share the next (group commit). With `Durability::Batched(d)` it keeps the
//! batch open up to `d` after the first operation, unless someone waits for a commit. Every
//! commit is redb-`Immediate` with quick-repair. When idle it sweeps dead records (`sweep.rs`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::ReadableTable;

use super::sweep::Sweeper;
use super::tables::Tables;
use super::{lock, Shared};

/// What a waiting caller is told: committed, or why not.
pub(crate) type Outcome = Result<(), String>;

pub(crate) enum Op {
    Put {
        digest: u128,
        record: Arc<[u8]>,
        seq: u64,
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

impl Msg {
    /// Someone waits for this commit: do not hold the batch open for more.
    fn urgent(&self) -> bool {
        self.ack.is_some()
    }
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
        let shutdown = match first {
            Some(first) => commit_and_settle(shared, rx, vec![first], window, &mut sweeper),
            None => idle(shared, rx, &mut sweeper),
        };
        if shutdown {
            return;
        }
    }
}

/// Sweeps a batch, or commits waiting read times. Returns whether a shutdown was committed.
fn idle(shared: &Shared, rx: &Receiver<Msg>, sweeper: &mut Sweeper) -> bool {
    if sweeper.active() || sweeper.due() {
        if let Err(e) = sweeper.step(shared) {
            tracing::warn!(error = %e, "cache sweep failed; retrying later");
            sweeper.pause();
        }
        false
    } else if !lock(&shared.touches).is_empty() {
        // Messages queued meanwhile join this commit, so it must settle them like any other.
        commit_and_settle(shared, rx, Vec::new(), None, sweeper)
    } else {
        false
    }
}

/// Commits `batch` with whatever joins it, then tells every message's sender. Returns whether
/// the batch held a shutdown.
fn commit_and_settle(
    shared: &Shared,
    rx: &Receiver<Msg>,
    mut batch: Vec<Msg>,
    window: Option<Duration>,
    sweeper: &mut Sweeper,
) -> bool {
    let result = commit(shared, rx, &mut batch, window);
    if let Err(e) = &result {
        tracing::error!(file = %shared.path.display(), error = %e, "cache commit failed");
    }
    let shutdown = batch.iter().any(|m| matches!(m.op, Op::Shutdown));
    settle(shared, batch, &result, sweeper);
    shutdown
}

/// Tells waiters the outcome and drops committed writes from `pending`.
fn settle(shared: &Shared, batch: Vec<Msg>, result: &Outcome, sweeper: &mut Sweeper) {
    {
        let mut pending = lock(&shared.pending);
        for msg in &batch {
            if let Op::Put { digest, seq, .. } | Op::Remove { digest, seq } = &msg.op {
                if pending.get(digest).is_some_and(|(s, _)| s == seq) {
                    pending.remove(digest);
                }
            }
        }
        shared.pending_len.store(pending.len(), Ordering::Release);
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

/// Applies `batch` (plus whatever joins it while the batch is open, and the queued read times)
/// in one durable transaction. Messages that join are appended to `batch`.
fn commit(
    shared: &Shared,
    rx: &Receiver<Msg>,
    batch: &mut Vec<Msg>,
    window: Option<Duration>,
) -> Outcome {
    let evicted = shared.transact(|t| {
        for msg in batch.iter() {
            apply(t, &msg.op)?;
        }
        gather(rx, batch, window, t)?;
        let touches = std::mem::take(&mut *lock(&shared.touches));
        touch(t, &touches)?;
        if t.bytes > shared.capacity {
            evict(t, shared.capacity)
        } else {
            Ok(0)
        }
    })?;
    shared
        .counters
        .evictions
        .fetch_add(evicted, Ordering::Relaxed);
    Ok(())
}

/// Receives and applies what should share this commit.
///
/// While a batch window is open the writer sleeps instead of waiting on the channel, so that
/// an insert's `send` never has to wake it (a wake is a syscall: far more than the insert
/// costs). Whoever waits for a commit unparks the writer after sending.
fn gather(
    rx: &Receiver<Msg>,
    batch: &mut Vec<Msg>,
    window: Option<Duration>,
    t: &mut Tables<'_>,
) -> Result<(), redb::Error> {
    let mut urgent = batch.iter().any(Msg::urgent);
    let until = window.map(|w| Instant::now() + w);
    loop {
        while batch.len() < MAX_BATCH {
            let Ok(msg) = rx.try_recv() else { break };
            apply(t, &msg.op)?;
            urgent |= msg.urgent();
            batch.push(msg);
        }
        let left = until.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        });
        if urgent || batch.len() >= MAX_BATCH || left.is_zero() {
            return Ok(());
        }
        std::thread::park_timeout(left);
    }
}

fn apply(t: &mut Tables<'_>, op: &Op) -> Result<(), redb::Error> {
    match op {
        Op::Put { digest, record, .. } => t.put(*digest, record)?,
        Op::Remove { digest, .. } => {
            t.remove(*digest)?;
        }
        Op::Bump { label, generation } => {
            let stored = t.gens.get(label.as_str())?.map_or(0, |g| g.value());
            t.gens.insert(label.as_str(), stored.max(*generation))?;
        }
        Op::Flush | Op::Shutdown => {}
    }
    Ok(())
}

/// Records read times of records that still exist.
fn touch(t: &mut Tables<'_>, touches: &HashMap<u128, u64>) -> Result<(), redb::Error> {
    for (digest, at_ms) in touches {
        let len = t.records.get(digest)?.map(|g| g.value().len() as u64);
        if let Some(len) = len {
            t.access.insert(digest, (*at_ms, len))?;
        }
    }
    Ok(())
}

/// Drops the least recently used records until the tier holds at most 90% of `capacity`,
/// so that eviction (a scan of every record's header) runs once per tenth of capacity
/// written. A record's last use is its last recorded read, else its creation.
fn evict(t: &mut Tables<'_>, capacity: u64) -> Result<u64, redb::Error> {
    let target = capacity / 10 * 9;
    let mut by_age = Vec::new();
    for item in t.records.range::<u128>(..)? {
        let (digest, bytes) = item?;
        let created = crate::record::created_ms(bytes.value()).unwrap_or(0);
        by_age.push((created, digest.value()));
    }
    for item in t.access.range::<u128>(..)? {
        let (digest, value) = item?;
        by_age.push((value.value().0, digest.value()));
    }
    // Keep each record's latest use, then take the oldest first.
    by_age.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
    by_age.dedup_by_key(|e| e.1);
    by_age.sort_unstable();
    let mut evicted = 0;
    for (_, digest) in by_age {
        if t.bytes <= target {
            break;
        }
        if t.remove(digest)? {
            evicted += 1;
        }
    }
    tracing::debug!(
        evicted,
        bytes = t.bytes,
        capacity,
        "disk tier evicted least recently used records"
    );
    Ok(evicted)
}
