//! The writer thread: owns every write transaction and commits in groups.
//!
//! A batch opens a write transaction at its first operation and applies each later one as it
//! arrives, so that encoding on the callers' threads and B-tree work here overlap. With
//! `Durability::Immediate` it commits as soon as the queue is empty, so writers that arrive
//! during one fsync share the next (group commit). With `Durability::Batched(d)` it keeps the
//! batch open up to `d` after the first operation, unless someone waits for a commit. Every
//! commit is redb-`Immediate` with quick-repair. When idle it sweeps dead records (`sweep.rs`).
//!
//! Every message is settled exactly once: its sender is told the outcome, its pending entry
//! leaves the overlay only once it is committed (or shadowed, see `health.rs`), and it leaves
//! the backlog. Writes to one key reach this thread in the order their stripe lock gave them
//! (see `ordering.rs`) and are applied in channel order, so the last write wins on disk too.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::ReadableTable;

use super::guard::{self, panic_message};
use super::health::Failure;
use super::labels::{self, LabelGc};
use super::space::{Space, Trouble};
use super::sweep::Sweeper;
use super::tables::Tables;
use super::{blobs, lock, open, Shared};
use crate::generations::Generations;
use crate::record;
use crate::DamagedFile;

/// What a waiting caller is told: committed, or why not.
pub(crate) type Outcome = Result<(), String>;

pub(crate) enum Op {
    Put {
        digest: u128,
        record: Arc<[u8]>,
        seq: u64,
        /// What the backlog counted for it: the record, and its side file (if any).
        bytes: u64,
        side: u64,
    },
    Remove {
        digest: u128,
        seq: u64,
    },
    Bump {
        label: String,
        generation: u64,
        /// Whether a close waits for the sweep pass it starts (see [`SETTLE_BUDGET`]).
        settle: bool,
    },
    Flush,
    /// `Cache::compact`: answered once the maintenance after this commit is done.
    Compact,
    /// Before a close: answered once the sweep passes this process's invalidations asked for
    /// are done, or at `until` (see [`SETTLE_BUDGET`]).
    Settle {
        until: Instant,
    },
    Shutdown,
}

impl Op {
    /// The bytes this operation holds in the backlog.
    pub fn bytes(&self) -> u64 {
        match self {
            Op::Put { bytes, .. } => *bytes,
            _ => 0,
        }
    }

    /// The bytes of side file this operation holds in the backlog.
    pub fn side_bytes(&self) -> u64 {
        match self {
            Op::Put { side, .. } => *side,
            _ => 0,
        }
    }
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
/// First and longest wait between attempts to bring the tier back into service.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Read times of records without an idle limit are committed on their own (without writes to
/// ride along with) once this many wait, or once the oldest has waited `TOUCH_DELAY`.
const TOUCH_BATCH: usize = 4096;
const TOUCH_DELAY: Duration = Duration::from_secs(30);
/// Longest a close (or the exit of the process, for all its caches together) waits for the
/// sweep passes its invalidations asked for: a short-lived program (a script, a dev loop's
/// run) would otherwise leave the records it made dead for the next run, which restarts the
/// pass.
pub(crate) const SETTLE_BUDGET: Duration = Duration::from_secs(1);
/// How long a tier back on probation must go without failing to count as back.
pub(crate) const PROBATION: Duration = Duration::from_secs(5);
/// A write that waits for its commit triggers an attempt, at most this often.
const RETRY_URGENT: Duration = Duration::from_millis(50);

enum Step {
    Continue,
    Stop,
}

struct Writer<'a> {
    shared: &'a Shared,
    rx: &'a Receiver<Msg>,
    window: Option<Duration>,
    sweeper: Sweeper,
    space: Space,
    /// The messages of the batch being committed (kept here so that a panic cannot lose them).
    batch: Vec<Msg>,
    retry_at: Instant,
    retry_wait: Duration,
    last_attempt: Option<Instant>,
    /// The outage (by its start) whose damaged file was set aside: once per outage, or a
    /// retry would set aside the fresh file that a failed attempt left.
    aside_for: Option<std::time::SystemTime>,
    /// When the tier last came back on probation.
    resumed_at: Option<Instant>,
    /// Since when read times have waited for a commit (see `touches_due`).
    touches_since: Option<Instant>,
    /// The puts (digest, sequence number) of the batch being committed whose side file was
    /// missing: applied as removals, and their writers told so.
    vanished: HashSet<(u128, u64)>,
}

/// `preexisting`: the side files in the folder when it was opened, listed before any write of
/// this process could add one.
pub(crate) fn run(
    shared: &Shared,
    rx: &Receiver<Msg>,
    window: Option<Duration>,
    preexisting: HashSet<u64>,
) {
    let mut sweeper = Sweeper::new(SWEEP_EVERY);
    sweeper.preexisting = preexisting;
    let mut w = Writer {
        shared,
        rx,
        window,
        sweeper,
        space: Space::new(shared),
        batch: Vec::new(),
        retry_at: Instant::now(),
        retry_wait: RETRY_FIRST,
        last_attempt: None,
        aside_for: None,
        resumed_at: None,
        touches_since: None,
        vanished: HashSet::new(),
    };
    loop {
        match catch_unwind(AssertUnwindSafe(|| w.step())) {
            Ok(Step::Continue) => {}
            Ok(Step::Stop) => return,
            Err(panic) => {
                // A bug of ours: keep every promise made to the messages in hand, and go on.
                let failure = Failure {
                    detail: format!("internal error in the writer: {}", panic_message(&*panic)),
                    damaged: false,
                };
                w.shared.fail(failure.clone());
                if w.settle_failed(&failure.detail) {
                    return;
                }
            }
        }
    }
}

impl Writer<'_> {
    fn step(&mut self) -> Step {
        let step = if self.shared.health.is_down() {
            self.step_out_of_service()
        } else {
            self.step_in_service()
        };
        if matches!(step, Step::Continue) {
            self.maintain();
        }
        step
    }

    fn step_in_service(&mut self) -> Step {
        let first = if self.sweeper.active() {
            match self.rx.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return Step::Stop,
            }
        } else {
            match self.rx.recv_timeout(IDLE_TICK) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Step::Stop,
            }
        };
        match first {
            Some(first) => {
                self.batch.push(first);
                self.commit_batch()
            }
            None => self.idle(),
        }
    }

    /// Keeps the folder within `disk_capacity` (see `space.rs`), and runs the compactions
    /// callers asked for.
    fn maintain(&mut self) {
        let shared = self.shared;
        if !self.space.waiters.is_empty() {
            let outcome = self.compact_now();
            for waiter in std::mem::take(&mut self.space.waiters) {
                let _ = waiter.send(outcome.clone());
            }
            return;
        }
        if shared.health.is_down() {
            return;
        }
        if let Err(f) = self.space.check(shared, !self.sweeper.active()) {
            self.fail(f);
        }
    }

    /// `Cache::compact`: a whole sweep pass, then eviction past the limits and compaction.
    fn compact_now(&mut self) -> Outcome {
        let shared = self.shared;
        if !shared.health.is_down() {
            self.sweeper.start(true);
            while self.sweeper.active() {
                if let Err(f) = self.sweeper.step(shared) {
                    self.sweeper.pause();
                    self.fail(f);
                }
            }
        }
        if shared.health.is_down() {
            return Err(shared.outage_message());
        }
        match self.space.rebalance(shared, None, true) {
            Ok(()) => Ok(()),
            Err(Trouble::Compaction(detail)) => Err(detail),
            Err(Trouble::Tier(f)) => {
                self.fail(f);
                Err(shared.outage_message())
            }
        }
    }

    /// Takes the tier out of service after a failed maintenance, to be reopened at once.
    fn fail(&mut self, failure: super::health::Failure) {
        self.shared.fail(failure);
        self.retry_at = Instant::now();
    }

    /// Sweeps a batch, or commits waiting read times.
    fn idle(&mut self) -> Step {
        if self.resumed_at.is_some_and(|t| t.elapsed() >= PROBATION) {
            self.confirm();
        }
        if self.sweeper.active() || self.sweeper.due() {
            if let Err(f) = self.sweeper.step(self.shared) {
                self.shared.fail(f);
                self.sweeper.pause();
            }
            Step::Continue
        } else if self.touches_due() {
            self.commit_batch()
        } else {
            Step::Continue
        }
    }

    /// Whether read times waiting for a commit should get one of their own. They ride along
    /// with the next commit of writes; alone, they are committed at once when one belongs to
    /// a record with an idle limit (idle expiry, also across a restart, depends on it), and
    /// otherwise only when many wait or the oldest has waited [`TOUCH_DELAY`]: they steer
    /// only the eviction order, and a commit (an fsync) per burst of reads would compete
    /// with the reads themselves. A crash loses at most that much of the eviction order.
    fn touches_due(&mut self) -> bool {
        let waiting = lock(&self.shared.touches).len();
        if waiting == 0 {
            self.touches_since = None;
            return false;
        }
        let since = *self.touches_since.get_or_insert_with(Instant::now);
        self.shared.idle_touched.load(Ordering::Relaxed)
            || waiting >= TOUCH_BATCH
            || since.elapsed() >= TOUCH_DELAY
    }

    /// Commits the batch with whatever joins it, then settles every message.
    fn commit_batch(&mut self) -> Step {
        let started = Instant::now();
        let mut parked = Duration::ZERO;
        let shared = self.shared;
        let (rx, batch, space) = (self.rx, &mut self.batch, &self.space);
        let shape = Shape {
            window: self.window,
            max_bytes: space.batch_bytes(),
        };
        let labels = &mut self.sweeper.labels;
        shared.idle_touched.store(false, Ordering::Relaxed);
        // Taken whole; the next batch starts as large as this one, so that a run of reads
        // does not grow the map again from nothing at every commit.
        let touches = {
            let mut held = lock(&shared.touches);
            let room = held.len();
            std::mem::replace(
                &mut *held,
                super::Touches::with_capacity_and_hasher(room, Default::default()),
            )
        };
        self.touches_since = None;
        let vanished = &mut self.vanished;
        vanished.clear();
        let result = shared.transact(|t| {
            let mut ctx = Apply {
                gens: &shared.gens,
                labels,
                dir: &shared.dir,
                vanished: &mut *vanished,
            };
            for msg in batch.iter() {
                ctx.apply(t, &msg.op)?;
            }
            gather(rx, batch, shape, t, &mut parked, &mut ctx, &shared.backlog)?;
            touch(t, &touches)?;
            space.evict_if_over(shared, t)
        });
        match result {
            Ok(evicted) => {
                crate::stats::Counters::add(&shared.counters.evictions, evicted);
                let busy = started.elapsed().saturating_sub(parked);
                let bytes = self.batch.iter().map(|m| m.op.bytes()).sum();
                shared.backlog.observe(self.batch.len(), bytes, busy);
                // Only a quiet probation ends an outage, not the first commit that succeeds: on
                // a disk that is still nearly full, a flush, a removal or a few small records
                // fit in the file's free pages while the next larger commit fails again, and
                // that is one outage, not one per failed commit.
                if self.resumed_at.is_some_and(|t| t.elapsed() >= PROBATION) {
                    self.confirm();
                }
                if self.settle_committed() {
                    Step::Stop
                } else {
                    Step::Continue
                }
            }
            Err(failure) => {
                self.shared.fail(failure.clone());
                self.retry_at = Instant::now();
                if self.settle_failed(&self.shared.outage_message()) {
                    Step::Stop
                } else {
                    Step::Continue
                }
            }
        }
    }

    /// Settles a committed batch; returns whether it held a shutdown.
    fn settle_committed(&mut self) -> bool {
        {
            let mut pending = lock(&self.shared.pending);
            for msg in &self.batch {
                if let Op::Put { digest, seq, .. } | Op::Remove { digest, seq } = &msg.op {
                    if pending.get(digest).is_some_and(|(s, _)| s == seq) {
                        pending.remove(digest);
                    }
                }
            }
            self.shared
                .pending_len
                .store(pending.len(), Ordering::Release);
        }
        self.finish_batch(&Ok(()))
    }

    /// Settles a batch that did not reach the file: its writes are kept in memory only, and
    /// their keys shadowed so that the file's older records are never read again.
    /// Returns whether it held a shutdown.
    fn settle_failed(&mut self, detail: &str) -> bool {
        for msg in &self.batch {
            self.shelve(msg, detail);
        }
        self.finish_batch(&Err(detail.to_string()))
    }

    /// Keeps one write in memory only (the tier is out of service).
    fn shelve(&self, msg: &Msg, detail: &str) {
        let health = &self.shared.health;
        if let Op::Put { digest, seq, .. } | Op::Remove { digest, seq } = &msg.op {
            // Shadow first, then leave the overlay: a reader sees one or the other.
            health.shadow(*digest);
            let mut pending = lock(&self.shared.pending);
            if pending.get(digest).is_some_and(|(s, _)| s == seq) {
                pending.remove(digest);
            }
            self.shared
                .pending_len
                .store(pending.len(), Ordering::Release);
            if msg.ack.is_none() {
                health.lose(detail);
            }
        }
    }

    /// Tells every sender `outcome` and releases the batch from the backlog.
    fn finish_batch(&mut self, outcome: &super::writer::Outcome) -> bool {
        let (mut ops, mut bytes, mut side, mut shutdown) = (0, 0, 0, false);
        let mut settling = Vec::new();
        for msg in self.batch.drain(..) {
            ops += 1;
            bytes += msg.op.bytes();
            side += msg.op.side_bytes();
            match msg.op {
                Op::Bump { settle, .. } => self.sweeper.start(settle),
                Op::Shutdown => shutdown = true,
                _ => {}
            }
            if let Some(ack) = msg.ack {
                match (&msg.op, outcome.is_ok()) {
                    // Committed: the compaction follows (see `maintain`), the sweeps below.
                    (Op::Compact, true) => self.space.waiters.push(ack),
                    (Op::Settle { until }, true) => settling.push((ack, *until)),
                    (Op::Put { digest, seq, .. }, true)
                        if self.vanished.contains(&(*digest, *seq)) =>
                    {
                        let _ = ack.send(Err(format!(
                            "the side file of a large value vanished before its record was \
                             committed (written more than {:?} earlier?): the key was removed \
                             instead; insert it again",
                            blobs::ORPHAN_AGE
                        )));
                    }
                    _ => {
                        let _ = ack.send(outcome.clone());
                    }
                }
            }
        }
        self.shared.backlog.release(ops, bytes);
        self.shared.backlog.release_side(side);
        if let Some(until) = settling.iter().map(|(_, until)| *until).max() {
            self.settle(until);
            for (ack, _) in settling {
                let _ = ack.send(Ok(()));
            }
        }
        shutdown
    }

    /// Runs the sweep passes this process's invalidations asked for, until `until`.
    fn settle(&mut self, until: Instant) {
        while self.sweeper.asked() && Instant::now() < until {
            if let Err(f) = self.sweeper.step(self.shared) {
                self.sweeper.pause();
                self.fail(f);
                return;
            }
        }
    }

    /// Out of service: try to come back when due (or when someone waits), and meanwhile keep
    /// every write in memory only.
    fn step_out_of_service(&mut self) -> Step {
        if Instant::now() >= self.retry_at && self.recover() {
            return Step::Continue;
        }
        let wait = self
            .retry_at
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), RETRY_MAX);
        let msg = match self.rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return Step::Continue,
            Err(RecvTimeoutError::Disconnected) => return Step::Stop,
        };
        // A flush or a close always tries to bring the tier back; a write that waits (an
        // Immediate insert) tries at most every RETRY_URGENT, so a storm of them stays cheap.
        let explicit = matches!(
            msg.op,
            Op::Flush | Op::Compact | Op::Settle { .. } | Op::Shutdown
        );
        let may_retry = explicit
            || (msg.urgent()
                && self
                    .last_attempt
                    .is_none_or(|t| t.elapsed() >= RETRY_URGENT));
        if may_retry && self.recover() {
            self.batch.push(msg);
            return self.commit_batch();
        }
        self.batch.push(msg);
        if self.settle_failed(&self.shared.outage_message()) {
            Step::Stop
        } else {
            Step::Continue
        }
    }

    /// Brings the tier back: reopens the file (setting a damaged one aside when asked),
    /// deletes the shadowed records and writes the current generations in one commit.
    fn recover(&mut self) -> bool {
        let shared = self.shared;
        let Some(outage) = shared.health.outage() else {
            return true;
        };
        if outage.failure.damaged && shared.open.on_damage == DamagedFile::Fail {
            // Nothing to retry: the file stays damaged until someone deletes it.
            self.retry_at = Instant::now() + Duration::from_secs(3600);
            return false;
        }
        self.last_attempt = Some(Instant::now());
        if let Some(db) = shared.set_db(None) {
            release(db);
        }
        if outage.failure.damaged && self.aside_for != Some(outage.since) {
            if let Err(e) = open::set_aside(&shared.path) {
                tracing::debug!(error = %e, "could not set the damaged file aside yet");
                return self.retry_later();
            }
            self.aside_for = Some(outage.since);
        }
        let opened = match open::open_database(&shared.dir, Duration::ZERO, &shared.open) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::debug!(error = %e, "the disk tier is still out of service");
                return self.retry_later();
            }
        };
        shared.set_totals(opened.totals, opened.entries);
        *lock(&shared.learned) = opened.learned;
        shared.set_db(Some(Arc::new(super::guard::Db::new(
            opened.db,
            Some(opened.watch),
        ))));
        let shadows = shared.health.shadowed();
        let gens = shared.gens.snapshot();
        let restored = shared.transact(|t| {
            for digest in &shadows {
                t.remove(*digest)?;
            }
            for (label, generation) in &gens {
                let stored = t.gens.get(label.as_ref())?.map_or(0, |g| g.value());
                t.gens.insert(label.as_ref(), stored.max(*generation))?;
            }
            Ok(())
        });
        match restored {
            Ok(()) => {
                shared.health.unshadow(&shadows);
                shared.health.resume();
                self.sweeper.start(false);
                if outage.failure.damaged {
                    // A fresh file in place of the damaged one: nothing left to doubt.
                    self.confirm();
                } else {
                    // On probation: a quiet while without failure confirms it
                    // (`commit_batch`, `idle`).
                    self.resumed_at = Some(Instant::now());
                }
                true
            }
            Err(f) => {
                tracing::debug!(error = %f.detail, "the disk tier is still out of service");
                if let Some(db) = shared.set_db(None) {
                    release(db);
                }
                self.retry_later()
            }
        }
    }

    /// Ends an outage (logged once) if the tier is serving again.
    fn confirm(&mut self) {
        if let Some(out) = self.shared.health.confirm() {
            self.resumed_at = None;
            self.retry_wait = RETRY_FIRST;
            tracing::info!(file = %self.shared.path.display(), after = ?out,
                "cache disk tier back in service");
        }
    }

    fn retry_later(&mut self) -> bool {
        self.retry_at = Instant::now() + self.retry_wait;
        self.retry_wait = (self.retry_wait * 2).min(RETRY_MAX);
        false
    }
}

/// Drops the last handle on a database once readers (who hold it only for a moment, never
/// across user code) have let go, so that the file can be opened again.
fn release(db: Arc<super::guard::Db>) {
    let until = Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&db) > 1 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    guard::drop_guarded(db);
}

/// Receives and applies what should share this commit.
///
/// While a batch window is open the writer sleeps instead of waiting on the channel, so that
/// an insert's `send` never has to wake it (a wake is a syscall: far more than the insert
/// costs). Whoever waits for a commit unparks the writer after sending.
fn gather(
    rx: &Receiver<Msg>,
    batch: &mut Vec<Msg>,
    shape: Shape,
    t: &mut Tables<'_>,
    parked: &mut Duration,
    ctx: &mut Apply<'_>,
    backlog: &super::backlog::Backlog,
) -> Result<(), redb::Error> {
    let mut urgent = batch.iter().any(Msg::urgent);
    let mut bytes: u64 = batch.iter().map(|m| m.op.bytes()).sum();
    // A window too large to add to now (Duration::MAX) has no end: the batch closes when it
    // is full or someone waits.
    let until = shape.window.map(|w| Instant::now().checked_add(w));
    let window_over = || matches!(until, Some(Some(u)) if Instant::now() >= u);
    let full = |len: usize, bytes: u64| len >= MAX_BATCH || bytes >= shape.max_bytes;
    loop {
        // A busy channel must not hold the batch open past its window either.
        while !full(batch.len(), bytes) && !window_over() {
            let Ok(msg) = rx.try_recv() else { break };
            urgent |= msg.urgent();
            bytes += msg.op.bytes();
            // In the batch before it is applied: whatever happens next, it is settled.
            batch.push(msg);
            if let Some(msg) = batch.last() {
                ctx.apply(t, &msg.op)?;
            }
        }
        let left = match until {
            None => Duration::ZERO,
            Some(None) => RETRY_MAX,
            Some(Some(u)) => u.saturating_duration_since(Instant::now()),
        };
        if urgent || full(batch.len(), bytes) || left.is_zero() || backlog.is_full() {
            return Ok(());
        }
        let before = Instant::now();
        std::thread::park_timeout(left);
        *parked += before.elapsed();
    }
}

/// When a batch closes: its window (`None`: as soon as the queue is empty), and the most
/// record bytes it takes (see `Space::batch_bytes`).
#[derive(Clone, Copy)]
struct Shape {
    window: Option<Duration>,
    max_bytes: u64,
}

/// What applying an operation needs besides the tables.
struct Apply<'a> {
    gens: &'a Generations,
    labels: &'a mut LabelGc,
    /// The cache folder, where side files are.
    dir: &'a std::path::Path,
    /// Puts whose side file was missing (see `Writer::vanished`).
    vanished: &'a mut HashSet<(u128, u64)>,
}

impl Apply<'_> {
    fn apply(&mut self, t: &mut Tables<'_>, op: &Op) -> Result<(), redb::Error> {
        match op {
            Op::Put {
                digest,
                record,
                seq,
                ..
            } => {
                let Ok(rec) = record::decode(record) else {
                    return t.put(*digest, record, None);
                };
                let stamp: Vec<(u64, u64)> = rec.generations().collect();
                if !self.gens.is_current(stamp.iter().copied()) {
                    // Stamped before an invalidation that is already applied: the key holds
                    // no live value, and a stale record must never land (see `labels.rs`).
                    // Its side file, if any, belongs to nothing.
                    if let Some(blob) = rec.blob() {
                        t.doomed_blobs.push(blob.id);
                    }
                    t.remove(*digest)?;
                    return Ok(());
                }
                if let Some(blob) = rec.blob() {
                    // Checked here, on the thread that also deletes orphans (between two
                    // commits): a file present now stays until this record is gone. One
                    // missing (its writer stalled past `blobs::ORPHAN_AGE`, or someone
                    // deleted it) must not be committed as a hit that reads nothing: the
                    // write takes effect as a removal, so no older value shows through.
                    if !blobs::present(self.dir, &blob) {
                        tracing::warn!(
                            id = blob.id,
                            "a large value's side file vanished before its record was \
                             committed: the key is removed instead"
                        );
                        self.vanished.insert((*digest, *seq));
                        t.remove(*digest)?;
                        return Ok(());
                    }
                    self.labels.note_blob(blob.id);
                }
                self.labels.note(stamp.iter().map(|(id, _)| *id));
                let mut rows: Vec<u64> = self.labels.revived(&stamp).collect();
                rows.extend(self.labels.unnamed(&stamp, self.gens));
                if !rows.is_empty() {
                    labels::write_back(&mut t.gens, self.gens, rows)?;
                }
                t.put(*digest, record, rec.blob())?
            }
            Op::Remove { digest, .. } => {
                t.remove(*digest)?;
            }
            Op::Bump {
                label, generation, ..
            } => {
                let stored = t.gens.get(label.as_str())?.map_or(0, |g| g.value());
                t.gens.insert(label.as_str(), stored.max(*generation))?;
            }
            Op::Flush | Op::Compact | Op::Settle { .. } | Op::Shutdown => {}
        }
        Ok(())
    }
}

/// Records read times of records that still exist.
fn touch(t: &mut Tables<'_>, touches: &super::Touches) -> Result<(), redb::Error> {
    for (digest, at_ms) in touches {
        let len = t.records.get(digest)?.map(|g| g.value().len() as u64);
        if let Some(len) = len {
            t.access.insert(digest, (*at_ms, len))?;
        }
    }
    Ok(())
}
