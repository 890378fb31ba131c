//! The owner's clients, as far as notices go: each write that replaces or removes a record
//! and each invalidation is sent to every client but the one that asked for it, and the
//! call that made it returns only once they all applied it (or were disconnected for not
//! answering within [`ACK_TIMEOUT`]).
//!
//! A notice is numbered per connection and sent in the order of the writes: the owner sends
//! it inside the key's stripe lock, in the same step as the write (see `ordering.rs`), so a
//! client applies one key's changes in the owner's order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::wire::{self, Down, Notice};
use crate::disk::lock;

/// How long a write waits for a client to apply its notice before the client is cut off (its
/// epochs slot is raised first, so its memory tier's disk entries are not served again; see
/// `epochs.rs`). Well under the default `request_timeout`, so that a client's write that
/// waits on a stopped client still gets its answer in time.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// One connected client.
pub(crate) struct Peer {
    pub id: u64,
    /// Frames to send, in order; the connection's sending thread writes them.
    out: Mutex<(Option<Sender<Vec<u8>>>, u64)>,
    acked: Mutex<u64>,
    acked_changed: Condvar,
    alive: AtomicBool,
    /// Shuts the connection down (both ways), ending its threads.
    pub stream: std::os::unix::net::UnixStream,
    /// Where whole frames are written: answers by the thread that has them, notices by the
    /// connection's sending thread.
    writer: Mutex<std::os::unix::net::UnixStream>,
    /// The folder's epochs file, whose slot `id` this client checks (see `epochs.rs`).
    epochs: Option<Arc<super::Epochs>>,
    /// The client's process id (from its greeting) and its last reported counters.
    figures: Mutex<(u32, Option<crate::Stats>)>,
    /// The connection's descriptors, which a child of a fork lets go of (`fork.rs`); last,
    /// so dropped after them.
    _watch: [crate::fork::Watch; 2],
}

impl Peer {
    pub fn new(
        id: u64,
        out: Sender<Vec<u8>>,
        stream: std::os::unix::net::UnixStream,
        writer: std::os::unix::net::UnixStream,
        epochs: Option<Arc<super::Epochs>>,
    ) -> Self {
        Peer {
            id,
            out: Mutex::new((Some(out), 0)),
            acked: Mutex::new(0),
            acked_changed: Condvar::new(),
            alive: AtomicBool::new(true),
            _watch: [crate::fork::watch(&stream), crate::fork::watch(&writer)],
            stream,
            writer: Mutex::new(writer),
            epochs,
            figures: Mutex::new((0, None)),
        }
    }

    /// The client's process id, from its greeting.
    pub fn greeted(&self, pid: u32) {
        lock(&self.figures).0 = pid;
    }

    /// The client's counters, as it reported them last.
    pub fn reported(&self, stats: crate::Stats) {
        lock(&self.figures).1 = Some(stats);
    }

    /// The client's figures, once it reported any.
    fn figures(&self) -> Option<crate::ProcessStats> {
        let (pid, stats) = *lock(&self.figures);
        Some(crate::ProcessStats {
            pid,
            holds_folder: false,
            this_process: false,
            stats: stats?,
        })
    }

    /// The client's slot in the epochs file, and the value it holds now.
    pub fn slot(&self) -> (u32, u64) {
        let slot = (self.id % super::epochs::SLOTS as u64) as u32;
        let epoch = self.epochs.as_ref().map_or(0, |e| e.load(slot as usize));
        (slot, epoch)
    }

    /// Writes a frame now (an answer: the sooner, the faster the client's call). An answer
    /// may pass a notice still queued; the client then applies the notice after it, which
    /// only drops what the answer brought (see `ordering.rs`).
    pub fn write_now(&self, frame: &[u8]) {
        use std::io::Write;
        if lock(&self.writer).write_all(frame).is_err() {
            self.cut();
        }
    }

    /// Queues a frame for the connection's sending thread (never waits for the client).
    pub fn queue(&self, frame: Vec<u8>) {
        if let Some(out) = &lock(&self.out).0 {
            let _ = out.send(frame);
        }
    }

    fn notify(&self, notice: &Notice) -> u64 {
        let mut out = lock(&self.out);
        out.1 += 1;
        let seq = out.1;
        let frame = wire::frame(&Down::Notice {
            seq,
            notice: notice.clone(),
        });
        if out.0.as_ref().is_none_or(|o| o.send(frame).is_err()) {
            self.alive.store(false, Ordering::Release);
        }
        seq
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// The client applied every notice up to `seq`.
    pub fn acked(&self, seq: u64) {
        let mut acked = lock(&self.acked);
        if seq > *acked {
            *acked = seq;
            self.acked_changed.notify_all();
        }
    }

    /// Marks the connection dead and lets its sending thread write what is queued (an error
    /// answer) and then close it.
    pub fn finish(&self) {
        self.alive.store(false, Ordering::Release);
        lock(&self.out).0 = None;
        let _guard = lock(&self.acked);
        self.acked_changed.notify_all();
    }

    /// Marks the connection dead and shuts it down at once: waits for its acknowledgements
    /// end. Its epochs slot is raised first: the client may have missed notices, and must not
    /// serve its memory tier's disk entries again, even before it sees the connection end.
    pub fn cut(&self) {
        if let Some(epochs) = &self.epochs {
            epochs.raise(self.slot().0 as usize);
        }
        self.alive.store(false, Ordering::Release);
        lock(&self.out).0 = None;
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let _guard = lock(&self.acked);
        self.acked_changed.notify_all();
    }

    fn wait_acked(&self, seq: u64, deadline: Instant) -> bool {
        let mut acked = lock(&self.acked);
        while *acked < seq && self.alive.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            acked = self
                .acked_changed
                .wait_timeout(acked, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Every connected client.
#[derive(Default)]
pub(crate) struct Peers {
    peers: Mutex<HashMap<u64, Arc<Peer>>>,
}

thread_local! {
    /// The client whose request this thread is applying: its own write is not sent back to it.
    static ORIGIN: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` as the application of client `id`'s request.
pub(crate) fn on_behalf_of<T>(id: u64, f: impl FnOnce() -> T) -> T {
    ORIGIN.with(|o| o.set(Some(id)));
    let out = f();
    ORIGIN.with(|o| o.set(None));
    out
}

impl Peers {
    /// Adds a client and runs `then` before any change can be sent to it: a change is either
    /// seen by `then` or sent to the client after it.
    pub fn add_then(&self, peer: Arc<Peer>, then: impl FnOnce()) {
        let mut peers = lock(&self.peers);
        peers.insert(peer.id, peer);
        then();
    }

    pub fn remove(&self, id: u64) {
        lock(&self.peers).remove(&id);
    }

    pub fn all(&self) -> Vec<Arc<Peer>> {
        lock(&self.peers).values().cloned().collect()
    }

    /// The figures of every connected client that reported any, by process id.
    pub fn figures(&self) -> Vec<crate::ProcessStats> {
        let mut out: Vec<_> = self.all().iter().filter_map(|p| p.figures()).collect();
        out.sort_by_key(|p| p.pid);
        out
    }

    /// Whether client `id` runs: it must acknowledge a ping within [`ACK_TIMEOUT`], or it is
    /// cut off. A client already gone counts as running: its leases are given back with its
    /// connection.
    pub fn ping(&self, id: u64) -> bool {
        let Some(peer) = lock(&self.peers).get(&id).cloned() else {
            return true;
        };
        let seq = peer.notify(&Notice::Ping);
        if peer.wait_acked(seq, Instant::now() + ACK_TIMEOUT) {
            return true;
        }
        tracing::warn!(
            client = id,
            "a client holding a key's lease did not answer within {ACK_TIMEOUT:?}; \
             disconnecting it and giving its leases to others"
        );
        peer.cut();
        false
    }

    /// Sends `notice` to every client but the origin of the current request; wait on the
    /// result (outside any lock) for them to apply it.
    pub fn broadcast(&self, notice: Notice) -> Acks {
        // `try_with`: at exit this thread's locals may be gone already.
        let origin = ORIGIN.try_with(|o| o.get()).unwrap_or(None);
        let peers = lock(&self.peers);
        if peers.is_empty() {
            return Acks(Vec::new());
        }
        let waits = peers
            .values()
            .filter(|p| Some(p.id) != origin)
            .map(|p| (p.clone(), p.notify(&notice)))
            .collect();
        Acks(waits)
    }
}

/// The clients a change was sent to, and the number of its notice on each connection.
#[must_use]
pub(crate) struct Acks(Vec<(Arc<Peer>, u64)>);

impl Acks {
    /// Waits until every client applied the notice; a client that does not answer within
    /// [`ACK_TIMEOUT`] is cut off.
    pub fn wait(self) {
        let deadline = Instant::now() + ACK_TIMEOUT;
        for (peer, seq) in self.0 {
            if !peer.wait_acked(seq, deadline) {
                tracing::warn!(
                    client = peer.id,
                    "a client did not apply a change within {ACK_TIMEOUT:?}; disconnecting it"
                );
                peer.cut();
            }
        }
    }
}
