//! Back-pressure: the writes queued for the writer thread stay within what it can commit in
//! one batch window, and within a byte budget.
//!
//! `Durability::Batched(d)` promises that a crash loses at most the writes of about the last
//! `d`. That holds only if the queue drains in about `d`: an insert that returns at 220k/s in
//! front of a writer that commits 70k/s would otherwise grow the queue (and memory) without
//! bound, and a crash would lose seconds of acknowledged writes. So the writer measures how
//! many operations and bytes it commits per second, and an insert waits while the queue holds
//! more than that rate times `d`, in operations or in bytes (and never more than
//! [`MAX_BYTES`]). Waiting happens before the insert takes
//! any lock, so readers are never held up by it.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::lock;

/// Most bytes of records queued for the writer, whatever the measured rate.
pub(crate) const MAX_BYTES: u64 = 64 << 20;
/// The queue may always hold this many operations and bytes, whatever the measured rate.
const MIN_OPS: u64 = 1_024;
const MIN_BYTES: u64 = 1 << 20;
/// And never more than this many operations.
const MAX_OPS: u64 = 1 << 20;

struct State {
    ops: u64,
    bytes: u64,
    /// What the writer commits in one window, as last measured.
    limit_ops: u64,
    limit_bytes: u64,
    /// Operations and bytes per second, smoothed (0 until measured).
    op_rate: f64,
    byte_rate: f64,
    /// Records larger than the byte limit waiting for an empty queue: while there are any,
    /// nobody else is admitted, so that a stream of small records cannot starve them.
    oversized_waiting: u32,
    /// Bytes of side files written for records not yet committed, and inserts waiting for
    /// room there (see [`Backlog::admit_side`]).
    side_bytes: u64,
    side_waiting: u32,
}

pub(crate) struct Backlog {
    state: Mutex<State>,
    drained: Condvar,
    /// The batch window; `None` (Immediate) uses a window of 50 ms for the limit.
    window: Duration,
    /// The writer, woken when someone must wait for room: a writer holding its batch open
    /// for the window would otherwise keep them waiting for all of it.
    writer: std::sync::OnceLock<std::thread::Thread>,
    /// Most bytes of side files waiting for their records' commit: a quarter of
    /// `disk_capacity` (within [`MIN_BYTES`] and [`MAX_BYTES`]), so that the files of
    /// uncommitted writes cannot take the folder far past its bound.
    side_limit: u64,
}

impl Backlog {
    pub fn new(window: Option<Duration>, capacity: u64) -> Self {
        Backlog {
            state: Mutex::new(State {
                ops: 0,
                bytes: 0,
                // Until the writer has been measured: small enough to drain quickly anywhere.
                limit_ops: MIN_OPS,
                limit_bytes: 4 * MIN_BYTES,
                op_rate: 0.0,
                byte_rate: 0.0,
                oversized_waiting: 0,
                side_bytes: 0,
                side_waiting: 0,
            }),
            drained: Condvar::new(),
            window: window.unwrap_or(Duration::from_millis(50)),
            writer: std::sync::OnceLock::new(),
            side_limit: (capacity / 4).clamp(MIN_BYTES, MAX_BYTES),
        }
    }

    /// Counts a side file of `bytes` about to be written, first waiting while the side files
    /// of uncommitted writes already hold the limit (a file larger than the limit waits until
    /// none is pending). Released with its record's operation ([`Backlog::release_side`]).
    pub fn admit_side(&self, bytes: u64) {
        let mut s = lock(&self.state);
        s.side_waiting += 1;
        s = self.wait_while(s, |s| {
            s.side_bytes > 0 && s.side_bytes.saturating_add(bytes) > self.side_limit
        });
        s.side_waiting -= 1;
        s.side_bytes = s.side_bytes.saturating_add(bytes);
    }

    /// The records of side files of `bytes` in total were committed (or given up).
    pub fn release_side(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut s = lock(&self.state);
        s.side_bytes = s.side_bytes.saturating_sub(bytes);
        drop(s);
        self.drained.notify_all();
    }

    /// The thread to wake when the queue is full.
    pub fn set_writer(&self, writer: std::thread::Thread) {
        let _ = self.writer.set(writer);
    }

    /// Counts an operation of `bytes` into the queue, first waiting (if `wait`) while the
    /// queue is full. A record larger than the byte limit waits for an empty queue, and
    /// nobody is admitted ahead of it meanwhile, so it cannot wait forever either.
    pub fn admit(&self, bytes: u64, wait: bool) {
        let mut s = lock(&self.state);
        let oversized = bytes > s.limit_bytes;
        if wait && oversized {
            s.oversized_waiting += 1;
        }
        let must_wait = |s: &State| {
            if oversized {
                s.ops > 0
            } else {
                s.oversized_waiting > 0
                    || (s.ops > 0 && (s.ops >= s.limit_ops || s.bytes + bytes > s.limit_bytes))
            }
        };
        if wait {
            s = self.wait_while(s, must_wait);
        }
        if wait && oversized {
            s.oversized_waiting -= 1;
            self.drained.notify_all();
        }
        s.ops += 1;
        s.bytes += bytes;
    }

    /// Waits while `full` says there is no room, waking the writer (which may be holding its
    /// batch open for the window) each time it looks.
    fn wait_while<'a>(
        &self,
        mut s: MutexGuard<'a, State>,
        full: impl Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        while full(&s) {
            if let Some(writer) = self.writer.get() {
                writer.unpark();
            }
            s = self
                .drained
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s
    }

    /// Whether inserts are waiting for room: the writer should commit now rather than hold
    /// its batch open for the rest of the window (nothing more can arrive until it does).
    pub fn is_full(&self) -> bool {
        let s = lock(&self.state);
        s.ops >= s.limit_ops
            || s.bytes >= s.limit_bytes
            || s.oversized_waiting > 0
            || s.side_waiting > 0
    }

    /// The writer settled `ops` operations of `bytes` in total.
    pub fn release(&self, ops: u64, bytes: u64) {
        let mut s = lock(&self.state);
        s.ops = s.ops.saturating_sub(ops);
        s.bytes = s.bytes.saturating_sub(bytes);
        drop(s);
        self.drained.notify_all();
    }

    /// The writer committed `ops` operations of `bytes` in `busy` (time spent working, not
    /// waiting): the queue may hold what it commits in one window, in operations and in bytes.
    pub fn observe(&self, ops: usize, bytes: u64, busy: Duration) {
        if ops < 64 || busy.is_zero() {
            return; // too small a sample to say anything about throughput
        }
        let secs = busy.as_secs_f64();
        let window = self.window.as_secs_f64();
        let mut s = lock(&self.state);
        s.op_rate = smooth(s.op_rate, ops as f64 / secs);
        s.byte_rate = smooth(s.byte_rate, bytes as f64 / secs);
        s.limit_ops = clamp(s.op_rate * window, MIN_OPS, MAX_OPS);
        s.limit_bytes = clamp(s.byte_rate * window, MIN_BYTES, MAX_BYTES);
    }

    /// Operations queued now (for tests and stats).
    #[cfg(test)]
    pub fn queued(&self) -> u64 {
        lock(&self.state).ops
    }
}

fn smooth(old: f64, sample: f64) -> f64 {
    if old == 0.0 {
        sample
    } else {
        0.7 * old + 0.3 * sample
    }
}

/// `x` as a whole number within `[lo, hi]` (an infinite or huge `x` is `hi`).
fn clamp(x: f64, lo: u64, hi: u64) -> u64 {
    if x.is_finite() && x < hi as f64 {
        (x as u64).clamp(lo, hi)
    } else {
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_full_queue_waits_until_the_writer_drains_it() {
        let b = Arc::new(Backlog::new(Some(Duration::from_millis(10)), u64::MAX));
        // A slow writer: 1,000 ops in 1 s at a 10 ms window gives the minimum limit.
        b.observe(1_000, 1_000, Duration::from_secs(1));
        for _ in 0..MIN_OPS {
            b.admit(1, true);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            b2.admit(1, true);
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "admitted past the limit"
        );
        b.release(10, 10);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("admitted after a drain");
        t.join().unwrap();
        assert_eq!(b.queued(), MIN_OPS - 10 + 1);
    }

    #[test]
    fn an_empty_queue_admits_a_record_larger_than_the_budget() {
        let b = Backlog::new(None, u64::MAX);
        b.admit(MAX_BYTES * 2, true);
        assert_eq!(b.queued(), 1);
    }

    #[test]
    fn a_huge_window_does_not_overflow() {
        let b = Backlog::new(Some(Duration::MAX), u64::MAX);
        b.observe(10_000, 10 << 20, Duration::from_millis(1));
        assert_eq!(lock(&b.state).limit_ops, MAX_OPS);
        assert_eq!(lock(&b.state).limit_bytes, MAX_BYTES);
    }

    #[test]
    fn large_records_are_limited_by_the_bytes_the_writer_commits_per_window() {
        let b = Backlog::new(Some(Duration::from_millis(50)), u64::MAX);
        // 13 MB/s, as a debug build writes 16 KiB records: 50 ms of it is under the minimum.
        b.observe(800, 13 << 20, Duration::from_secs(1));
        assert_eq!(lock(&b.state).limit_bytes, MIN_BYTES);
        b.admit(MIN_BYTES - 10, true);
        let (tx, rx) = std::sync::mpsc::channel();
        let b = Arc::new(b);
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            b2.admit(16 << 10, true);
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "admitted past the bytes"
        );
        b.release(1, MIN_BYTES - 10);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("admitted after a drain");
        t.join().unwrap();
    }

    #[test]
    fn side_files_of_uncommitted_writes_wait_for_room() {
        let b = Arc::new(Backlog::new(None, 8 << 20)); // a side-file limit of 2 MiB
        b.admit_side(1 << 20);
        b.admit_side(1 << 20);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || {
                b.admit_side(1 << 20);
                tx.send(()).unwrap();
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a third side file was admitted past the limit"
        );
        assert!(b.is_full(), "the writer is told to commit now");
        b.release_side(1 << 20);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
        // A file larger than the limit waits only for the pending ones.
        b.release_side(2 << 20);
        b.admit_side(100 << 20);
    }
}
