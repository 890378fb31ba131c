//! A client of the folder's owner: one connection, requests answered by id, notices applied
//! in order by a thread of their own and acknowledged.
//!
//! # Writes and a lost owner
//!
//! A write (`Put`, `Remove`) is sent inside the key's stripe lock, so the owner receives one
//! key's writes in this process's order; the caller waits for the answer outside it. If the
//! owner goes away before answering, the write is sent again to whoever serves the folder
//! next (this process, once it took over, or the new owner), again inside the key's stripe
//! lock, unless a later write of this process to the same key was made meanwhile: that one
//! carries the key's newest state and is sent again itself. A write the old owner had applied
//! is applied twice, which changes nothing.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::wire::{self, Down, Notice, Reply, Request, Up, UpRef};
use super::{socket, takeover, Lease, LeaseGuard, Role, State};
use crate::disk::{lock, Stored};
use crate::error::{Error, Result};
use crate::Durability;

/// How long a new connection waits for the owner's greeting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct Client {
    pub owner_pid: u32,
    stream: UnixStream,
    writer: Mutex<UnixStream>,
    waiting: Mutex<HashMap<u64, SyncSender<Reply>>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    /// Set by [`close`](Client::close): the end of the connection is this process's doing.
    closing: AtomicBool,
    durable: bool,
    /// Read times not sent yet, the latest per key (so as many as keys read), and when the
    /// first of them was noted. Only the notices' thread sends them: see [`touch`](Client::touch).
    touches: Mutex<(NotedTouches, std::time::Instant)>,
    /// This connection's slot in the folder's epochs file and the value it held at the
    /// greeting (see `epochs.rs`).
    pub slot: usize,
    pub epoch: u64,
    /// How long a request waits for its answer: `CacheBuilder::request_timeout`.
    timeout: Duration,
    /// When the owner last sent anything, as time since `born`.
    heard: AtomicU64,
    /// How many messages the owner has sent on this connection.
    heard_count: AtomicU64,
    /// The `heard_count` the next round of read times waits for: one more than when the last
    /// round went out (0: none yet).
    touches_wait_for: AtomicU64,
    born: Instant,
    /// Since when the owner has not answered (a request timed out), until it sends anything.
    silent: Mutex<Option<std::time::SystemTime>>,
    /// When this process last asked a silent owner whether it runs again.
    pinged: Mutex<Option<Instant>>,
    /// Batched writes the owner acknowledged on this connection, and how many of them the
    /// last successful flush covered (see `State::batched_lost`).
    batched_acked: AtomicU64,
    batched_flushed: AtomicU64,
    /// When this process last sent its counters, and what they were.
    reported: Mutex<(Option<Instant>, Option<crate::Stats>)>,
    /// Not connected: the folder's holder runs another version of tiered (why, for
    /// messages). Calls fail as with a silent owner until this process takes the folder over.
    pub detached: Option<String>,
    /// The connection's descriptors, which a child of a fork lets go of (`fork.rs`); last,
    /// so dropped after them.
    _watch: [crate::fork::Watch; 2],
}

/// What waiting for an answer gave.
pub(super) enum Answer {
    Reply(Reply),
    /// The connection ended: send the request again to whoever serves the folder next.
    Gone,
    /// The owner did not answer in time (see `CacheBuilder::request_timeout`).
    Silent,
}

/// Read times noted for the owner and not sent yet: the latest per key (and whether the key
/// has an idle limit), sent oldest-noted first, so that no key waits behind keys read more.
#[derive(Default)]
struct NotedTouches {
    latest: std::collections::HashMap<u128, (u64, bool)>,
    order: std::collections::VecDeque<u128>,
}

/// Read times sent in one message at most.
const TOUCH_BATCH: usize = 1024;
/// How long a read time may wait for its batch (idle limits are much longer).
const TOUCH_EVERY: Duration = Duration::from_millis(250);
/// How often the notices' thread looks again while read times wait (for the owner's answer
/// to the previous round, or for their turn).
const TOUCH_RETRY: Duration = Duration::from_millis(10);
/// Read times sent in one round at most (about 60 KB): a round waits for a message from the
/// owner after the previous one, so at most two are in its socket, under a socket's default
/// buffer; see [`Client::send_touches`].
const TOUCH_ROUND: usize = 2 * TOUCH_BATCH;
/// How often a client sends its counters to the owner, while they change (for
/// `Cache::stats_by_process`).
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl Client {
    /// Connects to the owner of the folder, takes its generations and starts the threads that
    /// read its messages and apply its notices.
    pub fn connect(state: &Arc<State>) -> std::io::Result<Arc<Client>> {
        let mut stream = socket::connect(&state.dir)?;
        stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
        let hello = Up {
            id: 1,
            request: Request::Hello {
                pid: std::process::id(),
            },
        };
        wire::write_frame(&mut stream, &wire::frame(&hello))?;
        let (pid, generations, slot, epoch) = match wire::read_frame::<Down>(&mut stream) {
            Ok(Down::Reply {
                reply:
                    Reply::Hello {
                        pid,
                        generations,
                        slot,
                        epoch,
                    },
                ..
            }) => (pid, generations, slot, epoch),
            Ok(other) => return Err(protocol(format!("unexpected greeting {other:?}"))),
            Err(wire::FrameError::Version(v)) => return Err(other_version(v)),
            Err(e) => return Err(protocol(e.to_string())),
        };
        stream.set_read_timeout(None)?;
        // A stopped owner cannot hold a caller in a write forever: past this, the connection
        // is given up (a frame may be cut in the middle).
        stream.set_write_timeout(Some(state.cfg.request_timeout))?;
        state.gens.assign(generations);
        state.last_owner.store(pid, Ordering::Relaxed);
        let client = Arc::new(Client::new(
            state,
            &stream,
            pid,
            (slot as usize, epoch),
            None,
        )?);
        let (notices, applied) = mpsc::channel();
        let weak = Arc::downgrade(state);
        {
            let client = client.clone();
            let watch = crate::fork::watch(&stream);
            std::thread::Builder::new()
                .name("tiered-client".into())
                .spawn(move || {
                    client.read_messages(stream, notices, weak);
                    drop(watch);
                })?;
        }
        {
            let (client, weak) = (client.clone(), Arc::downgrade(state));
            std::thread::Builder::new()
                .name("tiered-notices".into())
                .spawn(move || client.apply_notices(applied, weak))?;
        }
        tracing::info!(
            owner = pid,
            "the cache folder is held by another process: using it as a client"
        );
        Ok(client)
    }

    /// A stand-in for a connection to a holder of the folder that runs another version of
    /// tiered (`why`): this process serves from memory, its calls that need the folder fail
    /// at once, and the takeover thread takes the folder over when that process lets go.
    pub fn detached(state: &State, why: String) -> std::io::Result<Arc<Client>> {
        let (stream, _) = UnixStream::pair()?;
        tracing::warn!(
            folder = %state.dir.display(),
            "{why}: this process keeps entries in memory only, and takes the folder over once \
             that process exits"
        );
        let pid = crate::disk::read_owner(&state.dir).unwrap_or(0);
        Ok(Arc::new(Client::new(
            state,
            &stream,
            pid,
            (0, 0),
            Some(why),
        )?))
    }

    /// A client over `stream`, of owner `pid`, with its epochs slot and value; `detached`:
    /// see [`detached`](Client::detached) (silent from the start).
    fn new(
        state: &State,
        stream: &UnixStream,
        pid: u32,
        (slot, epoch): (usize, u64),
        detached: Option<String>,
    ) -> std::io::Result<Client> {
        let (writer, stream) = (stream.try_clone()?, stream.try_clone()?);
        Ok(Client {
            _watch: [crate::fork::watch(&writer), crate::fork::watch(&stream)],
            owner_pid: pid,
            writer: Mutex::new(writer),
            stream,
            waiting: Mutex::default(),
            next_id: AtomicU64::new(2),
            alive: AtomicBool::new(true),
            closing: AtomicBool::new(false),
            durable: detached.is_none() && state.cfg.durability == Durability::Immediate,
            touches: Mutex::new((NotedTouches::default(), Instant::now())),
            slot,
            epoch,
            timeout: state.cfg.request_timeout,
            heard: AtomicU64::new(0),
            heard_count: AtomicU64::new(0),
            touches_wait_for: AtomicU64::new(0),
            born: Instant::now(),
            silent: Mutex::new(detached.is_some().then(std::time::SystemTime::now)),
            pinged: Mutex::new(None),
            batched_acked: AtomicU64::new(0),
            batched_flushed: AtomicU64::new(0),
            reported: Mutex::new((None, None)),
            detached,
        })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Sends a request; the answer comes on the receiver (which errs if the owner went away).
    fn send(&self, request: &Request) -> Option<Receiver<Reply>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&self.waiting).insert(id, tx);
        let frame = wire::frame(&UpRef { id, request });
        if !self.is_alive() || !self.write(&frame) {
            lock(&self.waiting).remove(&id);
            return None;
        }
        Some(rx)
    }

    /// Writes a whole frame; on a failure (the owner stopped reading for `request_timeout`,
    /// or went away) the connection is given up, since a frame may be cut in the middle: its
    /// end starts the takeover as if the owner had gone.
    fn write(&self, frame: &[u8]) -> bool {
        if self.detached.is_some() {
            return false; // no one to write to; the takeover thread looks for the folder
        }
        if lock(&self.writer).write_all(frame).is_ok() {
            return true;
        }
        self.alive.store(false, Ordering::Release);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        false
    }

    /// Sends a request and waits for its answer: see [`wait`](Client::wait).
    pub(super) fn ask(&self, request: &Request, patient: bool) -> Answer {
        if self.is_silent() {
            self.ping_if_due();
            return Answer::Silent;
        }
        match self.send(request) {
            Some(rx) => self.wait(&rx, patient),
            None => Answer::Gone,
        }
    }

    /// Waits for an answer up to `request_timeout`; `patient`: as long as the owner keeps
    /// answering pings (a lease whose holder computes, a compaction).
    pub(super) fn wait(&self, rx: &Receiver<Reply>, patient: bool) -> Answer {
        let started = Instant::now();
        // When the owner was last asked something it answers at once (a patient wait pings).
        let mut asked: Option<Instant> = None;
        loop {
            let slice = if patient {
                self.timeout / 2
            } else {
                self.timeout.saturating_sub(started.elapsed())
            };
            match rx.recv_timeout(slice) {
                Ok(reply) => return Answer::Reply(reply),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Answer::Gone,
                Err(mpsc::RecvTimeoutError::Timeout) if !patient => {
                    if started.elapsed() < self.timeout {
                        continue;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => match asked {
                    // It answered (or sent anything) since it was last asked: it runs.
                    Some(at) if self.heard_since(at) => {
                        asked = Some(Instant::now());
                        self.tell(Request::Ping);
                        continue;
                    }
                    Some(at) if at.elapsed() < self.timeout => continue,
                    Some(_) => {}
                    None => {
                        asked = Some(Instant::now());
                        self.tell(Request::Ping);
                        continue;
                    }
                },
            }
            self.fall_silent();
            return Answer::Silent;
        }
    }

    /// Whether the owner sent anything since `at`.
    fn heard_since(&self, at: Instant) -> bool {
        let heard = self.heard.load(Ordering::Acquire);
        let at = u64::try_from(at.saturating_duration_since(self.born).as_millis()).unwrap_or(0);
        heard >= at
    }

    fn heard_now(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard.store(now, Ordering::Release);
        self.heard_count.fetch_add(1, Ordering::AcqRel);
        if lock(&self.silent).take().is_some() {
            tracing::info!(
                owner = self.owner_pid,
                "the cache folder's owner answers again"
            );
        }
    }

    /// Whether the owner has not answered a request in time and sent nothing since.
    pub fn is_silent(&self) -> bool {
        lock(&self.silent).is_some()
    }

    /// Since when the owner has not answered, if it has not.
    pub fn silent_since(&self) -> Option<std::time::SystemTime> {
        *lock(&self.silent)
    }

    fn fall_silent(&self) {
        if self.detached.is_some() {
            return;
        }
        let mut silent = lock(&self.silent);
        if silent.is_none() {
            *silent = Some(std::time::SystemTime::now());
            tracing::warn!(
                owner = self.owner_pid,
                timeout = ?self.timeout,
                "the process that holds the cache folder does not answer (stopped or \
                 overloaded): reads are misses and writes fail until it answers again"
            );
        }
        drop(silent);
        self.tell(Request::Ping);
    }

    /// Asks a silent owner whether it runs again, at most every 200 ms.
    fn ping_if_due(&self) {
        let mut pinged = lock(&self.pinged);
        if pinged.is_none_or(|at| at.elapsed() >= Duration::from_millis(200)) {
            *pinged = Some(Instant::now());
            drop(pinged);
            self.tell(Request::Ping);
        }
    }

    /// The error of a call the owner did not answer.
    pub(super) fn silent_error(&self, state: &State) -> Error {
        if let Some(why) = &self.detached {
            return Error::Storage {
                path: state.dir.clone(),
                detail: format!(
                    "{why}: not written to the folder (kept in memory only) until that \
                     process exits and this one takes the folder over"
                ),
            };
        }
        Error::OwnerNotAnswering {
            path: state.dir.clone(),
            pid: self.owner_pid,
            waited: self.timeout,
        }
    }

    /// A message that needs no answer.
    fn tell(&self, request: Request) {
        let frame = wire::frame(&Up { id: 0, request });
        self.write(&frame);
    }

    /// Notes a read time, without any I/O: a read (a memory hit of an entry with an idle
    /// limit among them) must never wait for the owner's socket, which a stopped owner stops
    /// draining. The notices' thread sends them in batches of [`TOUCH_BATCH`] (a message per
    /// read would cost the owner a wake-up per read) once the first has waited
    /// [`TOUCH_EVERY`], a round at a time: see [`send_touches`](Client::send_touches).
    pub fn touch(&self, digest: u128, now_ms: u64, idle: bool) {
        let mut touches = lock(&self.touches);
        if touches.0.order.is_empty() {
            touches.1 = std::time::Instant::now();
        }
        let noted = &mut touches.0;
        let latest = noted.latest.entry(digest).or_insert_with(|| {
            noted.order.push_back(digest);
            (now_ms, idle)
        });
        latest.0 = latest.0.max(now_ms);
        latest.1 |= idle;
    }

    /// Whether read times wait to be sent: the notices' thread then wakes more often.
    fn touches_pending(&self) -> bool {
        !lock(&self.touches).0.order.is_empty()
    }

    /// Sends the read times noted, from the notices' thread: a round of at most
    /// [`TOUCH_ROUND`], oldest-noted first, once the first has waited [`TOUCH_EVERY`] or
    /// more than a batch waits, and only once the owner sent anything after the previous
    /// round (each round ends with a ping that it answers); otherwise it pings the owner (at
    /// most every 200 ms) and keeps them. So at most two rounds are ever in the owner's
    /// socket (a message it sent before reading the last round lets the next one go): a
    /// stopped owner drains nothing, and a write into a full socket would wait
    /// `request_timeout`, then end the connection.
    fn send_touches(&self) {
        let due = {
            let touches = lock(&self.touches);
            let pending = touches.0.order.len();
            pending > TOUCH_BATCH || (pending > 0 && touches.1.elapsed() >= TOUCH_EVERY)
        };
        if due {
            self.send_touches_now();
        }
    }

    /// One round, if the owner answered the previous one; whether one went out.
    fn send_touches_now(&self) -> bool {
        if self.heard_count.load(Ordering::Acquire) < self.touches_wait_for.load(Ordering::Acquire)
        {
            self.ping_if_due();
            return false;
        }
        let round: Vec<wire::Touch> = {
            let mut touches = lock(&self.touches);
            let noted = &mut touches.0;
            let n = noted.order.len().min(TOUCH_ROUND);
            let round = noted
                .order
                .drain(..n)
                .filter_map(|d| {
                    noted
                        .latest
                        .remove(&d)
                        .map(|(now_ms, idle)| (d, now_ms, idle))
                })
                .collect();
            touches.1 = std::time::Instant::now();
            round
        };
        if round.is_empty() {
            return false;
        }
        for batch in round.chunks(TOUCH_BATCH) {
            self.tell(Request::Touch {
                touches: batch.to_vec(),
            });
        }
        let heard = self.heard_count.load(Ordering::Acquire);
        self.touches_wait_for.store(heard + 1, Ordering::Release);
        self.tell(Request::Ping);
        true
    }

    /// At close: every round, each once the owner answered the one before, within
    /// `request_timeout` in all (what is left then is dropped: read times are hints to the
    /// owner's idle limits and warm restart, and this process is leaving).
    fn send_all_touches(&self) {
        let deadline = Instant::now() + self.timeout;
        while self.touches_pending() && Instant::now() < deadline {
            if !self.send_touches_now() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    pub fn release(&self, digest: u128) {
        self.tell(Request::Release { digest });
    }

    /// Gives the new owner the leases this process held from the previous one.
    pub fn relet(&self, digests: Vec<u128>) {
        if !digests.is_empty() {
            self.tell(Request::Relet { digests });
        }
    }

    /// The owner's figures.
    pub fn stats(&self) -> Option<crate::Stats> {
        match self.ask(&Request::Stats, false) {
            Answer::Reply(Reply::Stats(stats)) => Some(*stats),
            _ => None,
        }
    }

    /// What became of a dropped key, as the owner remembers it; `None` also when it does not
    /// answer in time.
    pub fn fate(&self, digest: u128) -> Option<crate::Explanation> {
        match self.ask(&Request::Fate { digest }, false) {
            Answer::Reply(Reply::Fate(fate)) => fate,
            _ => None,
        }
    }

    /// Sends this process's counters if [`REPORT_EVERY`] passed since the last report and
    /// they changed (the first report goes at once).
    fn report_if_due(&self, state: &State) {
        let mut reported = lock(&self.reported);
        if reported.0.is_some_and(|at| at.elapsed() < REPORT_EVERY) {
            return;
        }
        let Some(above) = state.above() else { return };
        let stats = above.own_stats();
        reported.0 = Some(Instant::now());
        if reported.1 != Some(stats) {
            reported.1 = Some(stats);
            drop(reported);
            self.tell(Request::Report { stats });
        }
    }

    /// Ends the connection (this process closes its cache).
    pub fn close(&self) {
        self.send_all_touches();
        self.closing.store(true, Ordering::Release);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    fn read_messages(
        self: Arc<Self>,
        stream: UnixStream,
        notices: mpsc::Sender<(u64, Notice)>,
        state: Weak<State>,
    ) {
        // Buffered: a frame's header and body in one read.
        let mut stream = std::io::BufReader::with_capacity(64 << 10, stream);
        loop {
            let frame = wire::read_frame::<Down>(&mut stream);
            if frame.is_ok() {
                self.heard_now();
            }
            match frame {
                Ok(Down::Reply { id, reply }) => {
                    let waiter = lock(&self.waiting).remove(&id);
                    // A caller that gave up waiting has dropped its receiver: its answer is
                    // handled here like one nobody waits for.
                    let late = match waiter {
                        Some(tx) => tx.send(reply).err().map(|e| e.0),
                        None => Some(reply),
                    };
                    match late {
                        None => {}
                        // An invalidation whose caller gave up waiting (the owner was
                        // stopped) and that the owner applied after all: this process's
                        // generation follows, as the others' did with the notice.
                        Some(Reply::Bumped { label, generation }) => {
                            if let Some(state) = state.upgrade() {
                                state.gens.raise(&label, generation);
                            }
                        }
                        Some(Reply::Error(e)) => {
                            tracing::warn!(error = %e, "the cache folder's owner refused a message");
                        }
                        // Its close commits what it acknowledged: nothing is lost.
                        Some(Reply::Closing) => {
                            let acked = self.batched_acked.load(Ordering::Acquire);
                            self.batched_flushed.fetch_max(acked, Ordering::AcqRel);
                        }
                        Some(_) => {}
                    }
                }
                Ok(Down::Notice { seq, notice }) => {
                    if notices.send((seq, notice)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    if !self.closing.load(Ordering::Acquire) {
                        tracing::info!(error = %e, "lost the connection to the cache folder's owner");
                    }
                    break;
                }
            }
        }
        self.alive.store(false, Ordering::Release);
        // Before any waiting caller learns of the end (a flush sent again must see this).
        let acked = self.batched_acked.load(Ordering::Acquire);
        let flushed = self.batched_flushed.load(Ordering::Acquire);
        if acked > flushed && !self.closing.load(Ordering::Acquire) {
            if let Some(state) = state.upgrade() {
                state
                    .batched_lost
                    .fetch_add(acked - flushed, Ordering::AcqRel);
            }
        }
        // Every request still waiting is sent again by its caller.
        lock(&self.waiting).clear();
        drop(notices);
        if !self.closing.load(Ordering::Acquire) {
            // At once, before a new owner can apply a write (it waits `lease::GRACE` first):
            // this process may have missed the notice of any change since.
            if let Some(above) = state.upgrade().and_then(|s| s.above()) {
                above.lost_contact();
            }
            takeover::owner_gone(state);
        }
    }

    fn apply_notices(self: Arc<Self>, notices: Receiver<(u64, Notice)>, state: Weak<State>) {
        loop {
            let wait = if self.touches_pending() {
                TOUCH_RETRY
            } else {
                TOUCH_EVERY
            };
            let (mut seq, notice) = match notices.recv_timeout(wait) {
                Ok(next) => next,
                // Quiet: read times noted since go now, not with some later read.
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.send_touches();
                    if let Some(state) = state.upgrade() {
                        self.report_if_due(&state);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let Some(state) = state.upgrade() else { return };
            apply(&state, notice);
            // Applied in a batch, acknowledged once.
            while let Ok((next, notice)) = notices.try_recv() {
                apply(&state, notice);
                seq = next;
            }
            self.tell(Request::Ack { seq });
            // Read times go now if due, also while notices keep coming.
            self.send_touches();
            self.report_if_due(&state);
        }
    }
}

fn apply(state: &State, notice: Notice) {
    match notice {
        Notice::Forget { digest } => match state.above() {
            Some(above) => above.forget(digest),
            None => state.stripes.lock(digest).bump(),
        },
        Notice::Generation { label, generation } => {
            state.gens.raise(&label, generation);
            if let Some(above) = state.above() {
                above.generations_changed();
            }
        }
        Notice::Ping => {}
    }
}

fn protocol(detail: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, detail)
}

/// The owner speaks protocol `version`, not this one's (another release of tiered): see
/// [`is_other_version`].
fn other_version(version: u8) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!(
            "the process that holds the cache folder runs another version of tiered (protocol \
             {version}, this one speaks {})",
            wire::VERSION
        ),
    )
}

/// Whether a failed connection met an owner of another protocol version.
pub(super) fn is_other_version(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
}

/// The client role for an open that met `e`, if it says the holder runs another version.
pub(super) fn detached_for(state: &State, e: &std::io::Error) -> Option<Arc<Client>> {
    if !is_other_version(e) {
        return None;
    }
    Client::detached(state, e.to_string()).ok()
}

fn refused(state: &State, detail: String) -> Error {
    Error::Storage {
        path: state.db_path.clone(),
        detail: format!("the cache folder's owner refused the request: {detail}"),
    }
}

fn unexpected(state: &State, reply: Reply) -> Error {
    match reply {
        Reply::Error(detail) => refused(state, detail),
        other => refused(state, format!("unexpected answer {other:?}")),
    }
}

/// A record through whoever serves the folder; a failure is a miss (logged).
pub(super) fn read(state: &Arc<State>, digest: u128) -> Option<Stored> {
    loop {
        let role = match state.usable_role() {
            Ok(role) => role,
            Err(e) => {
                tracing::warn!(error = %e, "cache read failed; counted as a miss");
                return None;
            }
        };
        match role {
            Role::Owner(o) => return o.local.read(digest),
            Role::Client(c) => match c.ask(&Request::Read { digest }, false) {
                Answer::Reply(Reply::Record(found)) => return found.map(stored),
                Answer::Reply(other) => {
                    tracing::warn!(error = %unexpected(state, other), "cache read failed; counted as a miss");
                    return None;
                }
                // Said once, when the owner fell silent.
                Answer::Silent => return None,
                Answer::Gone => continue,
            },
        }
    }
}

fn stored(r: wire::StoredRecord) -> Stored {
    Stored {
        bytes: r.bytes.into(),
        last_access_ms: r.last_access_ms,
    }
}

/// A write sent to the owner (or to be sent once one is reachable again).
pub(crate) struct Sent {
    state: Arc<State>,
    digest: u128,
    /// This write's number among the writes of this process: see `State::writes`.
    number: u64,
    record: Option<Vec<u8>>,
    answer: Option<(Arc<Client>, Receiver<Reply>)>,
}

/// Sends a write; called inside the key's stripe lock.
pub(super) fn write(
    state: &Arc<State>,
    client: Option<&Arc<Client>>,
    digest: u128,
    record: Option<Vec<u8>>,
) -> super::Ticket {
    let number = state.write_number.fetch_add(1, Ordering::Relaxed);
    lock(&state.writes).insert(digest, number);
    // Not sent to a silent owner: the call fails (below) and nothing is left to land later.
    let client = client.filter(|c| !c.is_silent());
    let answer = client.and_then(|c| {
        let rx = c.send(&write_request(state, c, digest, record.as_ref()))?;
        Some((c.clone(), rx))
    });
    super::Ticket::Client(Sent {
        state: state.clone(),
        digest,
        number,
        record,
        answer,
    })
}

fn write_request(state: &State, c: &Client, digest: u128, record: Option<&Vec<u8>>) -> Request {
    match record {
        Some(record) => Request::Put {
            digest,
            record: record.clone(),
            durable: c.durable,
            labels: unbumped_labels(state, record),
        },
        None => Request::Remove {
            digest,
            durable: c.durable,
        },
    }
}

/// The names of a record's labels at generation 0 (its tags never invalidated).
fn unbumped_labels(state: &State, record: &[u8]) -> Vec<String> {
    let Ok(rec) = crate::record::decode(record) else {
        return Vec::new();
    };
    rec.generations()
        .filter(|(_, generation)| *generation == 0)
        .filter_map(|(id, _)| state.gens.label_of(id))
        .map(|(label, _)| label.to_string())
        .collect()
}

impl Sent {
    /// Waits for the owner's answer, sending the write again if the owner went away.
    pub fn wait(mut self) -> Result<()> {
        let result = self.finish();
        let latest = {
            let mut writes = lock(&self.state.writes);
            let latest = writes.get(&self.digest) == Some(&self.number);
            if latest {
                writes.remove(&self.digest);
            }
            latest
        };
        // Not confirmed by the owner (it did not answer, or refused): the folder and the other
        // processes may not have this write, so this process must not keep serving it from
        // memory either; its next read asks the owner. Unless a later write of this process
        // to the key carries the key's newest state, or no process can hold the folder yet
        // (another version's: then memory is all there is).
        let detached =
            matches!(self.state.role(), Some(Role::Client(ref c)) if c.detached.is_some());
        if result.is_err() && latest && !detached {
            if let Some(above) = self.state.above() {
                above.forget(self.digest);
            }
        }
        result
    }

    fn finish(&mut self) -> Result<()> {
        loop {
            if let Some((client, answer)) = self.answer.take() {
                match client.wait(&answer, false) {
                    Answer::Reply(Reply::Done) => {
                        if !client.durable {
                            // Queued by the owner, not committed: a flush must cover it.
                            client.batched_acked.fetch_add(1, Ordering::AcqRel);
                        }
                        return Ok(());
                    }
                    Answer::Reply(other) => return Err(unexpected(&self.state, other)),
                    Answer::Silent => return Err(client.silent_error(&self.state)),
                    Answer::Gone => {} // the owner went away: send it again
                }
            }
            let role = self.state.usable_role()?;
            if let Role::Client(c) = &role {
                if c.is_silent() {
                    c.ping_if_due();
                    return Err(c.silent_error(&self.state));
                }
            }
            let held = self.state.stripes.lock(self.digest);
            if lock(&self.state.writes).get(&self.digest) != Some(&self.number) {
                // A later write of this process to the key carries its newest state.
                return Ok(());
            }
            match role {
                Role::Owner(o) => {
                    let ticket = super::owner_write(&o, self.digest, self.record.take(), None);
                    drop(held);
                    return ticket.wait();
                }
                Role::Client(c) => {
                    let request = write_request(&self.state, &c, self.digest, self.record.as_ref());
                    self.answer = c.send(&request).map(|rx| (c.clone(), rx));
                }
            }
        }
    }
}

/// An invalidation through the owner; this process's generations follow the owner's answer.
pub(super) fn bump(state: &Arc<State>, label: String, settle: bool) -> Result<()> {
    loop {
        match state.usable_role()? {
            // Taken over meanwhile: the bump is this process's own now.
            Role::Owner(o) => {
                let generation = state.gens.bump(&label);
                return super::owner_bump(&o, label, generation, settle).wait();
            }
            Role::Client(c) => {
                let request = Request::Bump {
                    label: label.clone(),
                    settle,
                    durable: c.durable,
                };
                match c.ask(&request, false) {
                    Answer::Reply(Reply::Bumped { generation, .. }) => {
                        state.gens.raise(&label, generation);
                        return Ok(());
                    }
                    Answer::Reply(other) => return Err(unexpected(state, other)),
                    Answer::Silent => return Err(c.silent_error(state)),
                    Answer::Gone => continue,
                }
            }
        }
    }
}

/// A flush or a compaction, by whoever serves the folder.
pub(super) fn simple(state: &Arc<State>, request: Request) -> Result<()> {
    loop {
        match state.usable_role()? {
            Role::Owner(o) => {
                return match request {
                    Request::Compact => o.local.compact(),
                    _ => o.local.flush(),
                }
            }
            // A compaction may take long: waited for while the owner answers pings.
            Role::Client(c) => {
                // The batched writes acknowledged before the request was sent are covered by
                // its answer (the owner applies one connection's messages in order).
                let covered = c.batched_acked.load(Ordering::Acquire);
                match c.ask(&request, matches!(request, Request::Compact)) {
                    Answer::Reply(Reply::Done) => {
                        c.batched_flushed.fetch_max(covered, Ordering::AcqRel);
                        return Ok(());
                    }
                    Answer::Reply(other) => return Err(unexpected(state, other)),
                    Answer::Silent => return Err(c.silent_error(state)),
                    Answer::Gone => continue,
                }
            }
        }
    }
}

/// Every process that has the folder open, with its counters: the owner's clients (their last
/// reports), or, for a client, every process as the owner has them. Sent again to the next
/// owner when this one goes away.
pub(super) fn processes(state: &Arc<State>) -> Result<Vec<crate::ProcessStats>> {
    loop {
        // Not connected (the holder runs another version of tiered): no one to ask. Without
        // a role (a takeover under way), the next one is waited for.
        if let Some(Role::Client(c)) = state.role() {
            if c.detached.is_some() {
                return Ok(Vec::new());
            }
        }
        match state.usable_role()? {
            Role::Owner(o) => return Ok(o.peers.figures()),
            Role::Client(c) => match c.ask(&Request::Processes, false) {
                Answer::Reply(Reply::Processes(all)) => return Ok(all),
                Answer::Reply(Reply::Error(e)) => return Err(refused(state, e)),
                Answer::Reply(other) => return Err(unexpected(state, other)),
                Answer::Silent => return Err(c.silent_error(state)),
                Answer::Gone => continue,
            },
        }
    }
}

/// The record of `digest`, or its lease, from whoever serves the folder.
pub(super) fn lease(state: &Arc<State>, digest: u128, force: bool) -> Result<Lease> {
    loop {
        match state.usable_role()? {
            Role::Owner(o) => return Ok(super::owner_lease(&o, digest, force)),
            // Waited for while the owner answers pings: the holder may be computing.
            Role::Client(c) => match c.ask(&Request::Lease { digest, force }, true) {
                Answer::Reply(Reply::Record(Some(found))) => {
                    return Ok(Lease::Found(stored(found)))
                }
                Answer::Reply(Reply::Granted) => {
                    lock(&state.leases_held).insert(digest);
                    return Ok(Lease::Granted(LeaseGuard::Client(state.clone(), digest)));
                }
                Answer::Reply(other) => return Err(unexpected(state, other)),
                // The caller computes without a lease.
                Answer::Silent => return Err(c.silent_error(state)),
                Answer::Gone => continue,
            },
        }
    }
}

/// A page of records, from whoever serves the folder. The owner bounds a page's bytes, so a
/// page may hold fewer than `max` records.
pub(super) fn scan(
    state: &Arc<State>,
    after: Option<u128>,
    max: usize,
) -> Result<(Vec<crate::disk::scan::Scanned>, Option<u128>)> {
    let max = u32::try_from(max).unwrap_or(u32::MAX);
    loop {
        match state.usable_role()? {
            Role::Owner(o) => return o.local.scan(after, max as usize),
            Role::Client(c) => match c.ask(&Request::Scan { after, max }, false) {
                Answer::Reply(Reply::Scanned {
                    records,
                    next,
                    labels,
                }) => {
                    for label in labels {
                        state.gens.know(&label, crate::generations::id(&label));
                    }
                    let page = records
                        .into_iter()
                        .map(|r| crate::disk::scan::Scanned {
                            digest: r.digest,
                            bytes: r.bytes.into(),
                            last_access_ms: r.last_access_ms,
                        })
                        .collect();
                    return Ok((page, next));
                }
                Answer::Reply(other) => return Err(unexpected(state, other)),
                Answer::Silent => return Err(c.silent_error(state)),
                Answer::Gone => continue,
            },
        }
    }
}

/// Expired entries dropped by whoever serves the folder.
pub(super) fn clear_expired(state: &Arc<State>) -> Result<u64> {
    loop {
        match state.usable_role()? {
            Role::Owner(_) => match state.above() {
                Some(above) => return above.clear_expired(),
                None => return Ok(0),
            },
            Role::Client(c) => match c.ask(&Request::ClearExpired, false) {
                Answer::Reply(Reply::Count(n)) => return Ok(n),
                Answer::Reply(other) => return Err(unexpected(state, other)),
                Answer::Silent => return Err(c.silent_error(state)),
                Answer::Gone => continue,
            },
        }
    }
}
