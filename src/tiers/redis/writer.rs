//! The one connection that writes. Every write of this process goes through it, in the order
//! it was queued (so a key's writes land in their order), a queue's worth at a time as one
//! pipeline. Tracking is enabled on this connection with `NOLOOP`, redirected to the listener:
//! other clients' writes reach the listener, this process's own do not (they would make it
//! drop what it just wrote).
//!
//! Failures: a write that could not be sent is retried as a `DEL` of its key before anything
//! else once the server answers (a skipped write would leave the old value for every other
//! machine; a `DEL` is allowed even when the server is full), and a write the server refused
//! (`OOM` under `noeviction`) becomes a `DEL` at once. An invalidation that could not be sent
//! is sent again. Callers never see these errors: `health()` and the log do.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Connection, Value};

use super::keys::Changed;
use super::Shared;
use crate::record;

/// How often, at most, the writer checks that tracking still reaches the listener (more
/// often for a short listener timeout: half of it).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// At most this many writes in one pipeline.
const BATCH: usize = 256;

pub(super) enum Op {
    Put {
        digest: u128,
        record: Vec<u8>,
        /// Its number among this process's writes (`Shared::pending`).
        seq: u64,
    },
    Remove {
        digest: u128,
        seq: u64,
    },
    /// This process invalidated a label: its key gets the fresh token.
    Generation {
        id: u64,
        token: u64,
    },
    /// Answered once everything queued before it was sent.
    Flush,
    /// The listener (re)connected: enable tracking towards it.
    Track,
}

/// What a command of a pipeline writes.
enum Sent {
    /// A record's key, the write's number, and what it was set to (`None`: deleted) if a
    /// replica takes copies.
    Record(u128, u64, Option<Vec<u8>>),
    Generation(u64),
    /// The pub/sub notice of the others (pub/sub mode).
    Notice,
}

pub(super) struct Job {
    pub op: Op,
    pub done: Option<SyncSender<()>>,
    /// Room in the queue, given back when the job is done (dropped).
    #[allow(dead_code)]
    pub permit: Option<super::Permit>,
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    con: Option<Connection>,
    /// Keys whose write was not sent (with the write's number): deleted first once the
    /// server answers.
    unsent: HashMap<u128, u64>,
    /// Invalidations not sent: label id → token.
    unsent_generations: BTreeMap<u64, u64>,
    last_heartbeat: Instant,
}

pub(super) fn run(shared: Arc<Shared>, rx: Receiver<Job>) {
    let mut w = Writer {
        shared,
        con: None,
        unsent: HashMap::new(),
        unsent_generations: BTreeMap::new(),
        last_heartbeat: Instant::now(),
    };
    // A probe is written every twice the listener timeout, and must be heard back within it.
    let heartbeat = HEARTBEAT
        .min(w.shared.cfg.listener_timeout / 2)
        .max(Duration::from_millis(5));
    loop {
        let first = match rx.recv_timeout(heartbeat) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut jobs: Vec<Job> = first.into_iter().collect();
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        w.connect();
        if !jobs.is_empty() {
            w.send(&jobs);
        }
        // On time, busy or not.
        if w.last_heartbeat.elapsed() >= heartbeat {
            w.last_heartbeat = Instant::now();
            w.heartbeat();
        }
        for job in jobs {
            if let Some(done) = job.done {
                let _ = done.send(());
            }
        }
    }
    // The cache is closing: what could not be sent stays unsent (reported once).
    if !w.unsent.is_empty() || !w.unsent_generations.is_empty() {
        tracing::warn!(
            writes = w.unsent.len(),
            invalidations = w.unsent_generations.len(),
            "the cache closed before the Redis server answered: these writes were not sent"
        );
    }
}

impl Writer {
    /// Connects if need be, enables tracking if the listener is there and it is not on, and
    /// sends what is owed.
    fn connect(&mut self) {
        if self.con.is_none() {
            match self.shared.link.connect() {
                Ok(con) => self.con = Some(con),
                Err(_) => return,
            }
        }
        if !self.shared.tracking.load(Ordering::Acquire) {
            if !self.shared.pubsub.load(Ordering::Acquire) {
                self.enable_tracking();
            } else if self.shared.subscribed.load(Ordering::Acquire) {
                self.shared.tracking_confirmed();
            }
        }
        if !self.unsent.is_empty() || !self.unsent_generations.is_empty() {
            self.send_owed();
        }
    }

    fn enable_tracking(&mut self) {
        let Some(listener) = *crate::disk::lock(&self.shared.listener) else {
            return;
        };
        let Some(con) = self.con.as_mut() else { return };
        let [records, generations, probes] = self.shared.keys.tracked();
        let mut pipe = redis::pipe();
        // Off first: the server refuses prefixes that overlap those of tracking still on.
        pipe.cmd("CLIENT").arg("TRACKING").arg("OFF").ignore();
        pipe.cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("REDIRECT")
            .arg(listener)
            .arg("BCAST")
            .arg("PREFIX")
            .arg(records)
            .arg("PREFIX")
            .arg(generations)
            .arg("PREFIX")
            .arg(probes)
            .arg("NOLOOP")
            .ignore();
        let enabled: redis::RedisResult<()> = pipe.query(con);
        match enabled {
            Ok(()) => self.shared.tracking_confirmed(),
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                self.lost(&e.to_string())
            }
            // Refused (an ACL, a managed service): the writers' channel instead.
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "the Redis server refuses CLIENT TRACKING: invalidations go through a \
                     pub/sub channel that tiered's writers publish to; other clients' writes, \
                     flushes and evictions are not heard"
                );
                *crate::disk::lock(&self.shared.pubsub_since) = Some(std::time::SystemTime::now());
                self.shared.pubsub.store(true, Ordering::Release);
            }
        }
    }

    /// Checks that tracking still reaches the listener (the server keeps a redirect to a
    /// connection that ended, flagged `broken_redirect`).
    fn heartbeat(&mut self) {
        if !self.shared.tracking.load(Ordering::Acquire) {
            // Deaf to other clients: what this process holds from Redis lives briefly.
            self.shared.drop_shared_entries();
            return;
        }
        if self.shared.pubsub.load(Ordering::Acquire) {
            // No tracking to check: the probe says whether the channel still reaches us.
            self.probe();
            return;
        }
        let Some(con) = self.con.as_mut() else { return };
        let info: redis::RedisResult<Value> = redis::cmd("CLIENT").arg("TRACKINGINFO").query(con);
        match info {
            Ok(info) if mentions(&info, "broken_redirect") || mentions(&info, "off") => {
                self.shared
                    .tracking_lost("tracking no longer reaches the listener");
            }
            Ok(_) => {
                self.shared.link.answered();
                self.probe();
            }
            Err(e) => self.lost(&e.to_string()),
        }
    }

    /// End to end: a probe key written through another connection must come back to the
    /// listener as an invalidation. A listener that heard nothing within the listener timeout is
    /// deaf (a connection that died silently): it starts over, and what this process holds
    /// from Redis is dropped.
    fn probe(&mut self) {
        let shared = self.shared.clone();
        let wait = shared.cfg.listener_timeout;
        let every = wait * 2;
        let mut probe = crate::disk::lock(&shared.probe);
        match probe.sent {
            Some((token, at)) if probe.heard != token => {
                if at.elapsed() >= wait {
                    probe.sent = None;
                    drop(probe);
                    shared.restart_listener.store(true, Ordering::Release);
                    shared.tracking_lost("the listener heard nothing back from the server");
                }
                return;
            }
            Some((_, at)) if at.elapsed() < every => return,
            _ => {}
        }
        let token = fresh_token();
        let key = shared.keys.probe(token);
        let ms = u64::try_from((every * 2).as_millis()).unwrap_or(u64::MAX);
        probe.sent = Some((token, Instant::now()));
        drop(probe);
        let pubsub = shared.pubsub.load(Ordering::Acquire);
        let sent = shared.link.run(|con| {
            if pubsub {
                let message = super::keys::notice(shared.me, &[Changed::Probe(token)]);
                return redis::cmd("PUBLISH")
                    .arg(shared.keys.channel())
                    .arg(message)
                    .query::<()>(con);
            }
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("PX")
                .arg(ms)
                .query::<()>(con)
        });
        if sent.is_err() {
            crate::disk::lock(&shared.probe).sent = None;
        }
    }

    /// The connection failed: dropped, and everything this process holds from Redis with it.
    fn lost(&mut self, why: &str) {
        self.con = None;
        self.shared.link.failed(why);
        self.shared.tracking_lost(why);
    }

    /// Deletes the keys whose writes were not sent and sends the invalidations owed.
    fn send_owed(&mut self) {
        let shared = self.shared.clone();
        if self.con.is_none() {
            return;
        }
        let deletions: Vec<(u128, u64)> = self.unsent.iter().map(|(d, s)| (*d, *s)).collect();
        let invalidations: Vec<(u64, u64)> = self
            .unsent_generations
            .iter()
            .map(|(i, t)| (*i, *t))
            .collect();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (digest, _) in &deletions {
            pipe.del(shared.keys.record(*digest));
        }
        for (id, token) in &invalidations {
            pipe.set(shared.keys.generation(*id), *token);
        }
        let changed: Vec<Changed> = deletions
            .iter()
            .map(|(d, _)| Changed::Record(*d))
            .chain(invalidations.iter().map(|(id, _)| Changed::Generation(*id)))
            .collect();
        // Its reply comes last, after those read below.
        self.notice(&mut pipe, &changed);
        let Some(con) = self.con.as_mut() else { return };
        let replies = match pipe.query::<Vec<redis::RedisResult<Value>>>(con) {
            Ok(replies) => replies,
            Err(e) => return self.lost(&e.to_string()),
        };
        let (deleted, invalidated) = replies.split_at(deletions.len().min(replies.len()));
        let mut refused = None;
        for ((digest, seq), reply) in deletions.iter().zip(deleted) {
            match reply {
                Ok(_) => {
                    self.unsent.remove(digest);
                    shared.landed(*digest, *seq, None);
                }
                Err(e) => refused = Some(e.to_string()),
            }
        }
        let mut full = Vec::new();
        for ((id, _), reply) in invalidations.iter().zip(invalidated) {
            self.unsent_generations.remove(id);
            if let Err(e) = reply {
                full.push(*id);
                refused = Some(e.to_string());
            }
        }
        if !full.is_empty() {
            self.delete_generations(&full);
        }
        self.refusals(refused);
    }

    /// Invalidations the server refused to store (full): the labels' keys are deleted instead
    /// (a `DEL` is allowed when memory is full). A missing key invalidates what it covered
    /// for every process, and this one looks its token up afresh.
    fn delete_generations(&mut self, ids: &[u64]) {
        let shared = self.shared.clone();
        if self.con.is_none() {
            self.unsent_generations.extend(
                ids.iter()
                    .map(|id| (*id, fresh_token() | super::tokens::BUMPED)),
            );
            return;
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.del(shared.keys.generation(*id)).ignore();
        }
        let changed: Vec<Changed> = ids.iter().map(|id| Changed::Generation(*id)).collect();
        if self.notice(&mut pipe, &changed) {
            pipe.ignore();
        }
        let Some(con) = self.con.as_mut() else { return };
        match pipe.query::<()>(con) {
            Ok(()) => {
                tracing::warn!(
                    labels = ids.len(),
                    "the Redis server refused invalidations (full?): their labels' keys are \
                     deleted instead, which invalidates the same entries"
                );
                for id in ids {
                    shared.tokens.forget(*id);
                }
            }
            Err(e) => {
                self.unsent_generations.extend(
                    ids.iter()
                        .map(|id| (*id, fresh_token() | super::tokens::BUMPED)),
                );
                self.lost(&e.to_string());
            }
        }
    }

    /// Adds to `pipe` the message that tells the processes whose server refused them
    /// tracking which of this cache's keys changed (`keys::notice`); whether it did. Sent
    /// whatever this process's own mode: a deployment may mix users that may track and users
    /// that may not, and a process does not know its mode until its first tracking attempt.
    /// Where no one subscribes, a `PUBLISH` costs the server next to nothing.
    fn notice(&self, pipe: &mut redis::Pipeline, changed: &[Changed]) -> bool {
        if changed.is_empty() {
            return false;
        }
        pipe.cmd("PUBLISH")
            .arg(self.shared.keys.channel())
            .arg(super::keys::notice(self.shared.me, changed));
        true
    }

    /// Notes whether the server refused writes in the last round (for `health()`).
    fn refusals(&self, refused: Option<String>) {
        let mut state = crate::disk::lock(&self.shared.refused);
        match refused {
            Some(why) => {
                if state.is_none() {
                    *state = Some((
                        format!("the server refuses writes: {why}"),
                        std::time::SystemTime::now(),
                    ));
                }
            }
            None => *state = None,
        }
    }

    /// Sends `jobs` as one pipeline; a write that cannot be stored becomes a removal.
    fn send(&mut self, jobs: &[Job]) {
        let shared = self.shared.clone();
        let keys = &shared.keys;
        let now = shared.clock.now_ms();
        let mut pipe = redis::pipe();
        // One reply per command, an error among them not failing the others.
        pipe.ignore_errors();
        // What each command writes, to delete it if the server refuses the write.
        let mut sent: Vec<Sent> = Vec::new();
        let copying = shared.replica.get().is_some();
        for job in jobs {
            match &job.op {
                Op::Put {
                    digest,
                    record,
                    seq,
                } => {
                    let key = keys.record(*digest);
                    let written = self.for_redis(record, now);
                    match &written {
                        Some((bytes, Some(px))) => {
                            pipe.cmd("SET").arg(&key).arg(bytes).arg("PX").arg(px);
                        }
                        Some((bytes, None)) => {
                            pipe.set(&key, bytes);
                        }
                        // Stale or dead on arrival: whatever the key held is replaced by
                        // nothing.
                        None => {
                            pipe.del(&key);
                        }
                    }
                    let copy = written.filter(|_| copying).map(|(bytes, _)| bytes);
                    sent.push(Sent::Record(*digest, *seq, copy));
                }
                Op::Remove { digest, seq } => {
                    pipe.del(keys.record(*digest));
                    sent.push(Sent::Record(*digest, *seq, None));
                }
                Op::Generation { id, token } => {
                    pipe.set(keys.generation(*id), *token);
                    sent.push(Sent::Generation(*id));
                }
                Op::Flush | Op::Track => {}
            }
        }
        if sent.is_empty() {
            return;
        }
        let changed: Vec<Changed> = sent
            .iter()
            .filter_map(|what| match what {
                Sent::Record(d, _, _) => Some(Changed::Record(*d)),
                Sent::Generation(id) => Some(Changed::Generation(*id)),
                Sent::Notice => None,
            })
            .collect();
        if self.notice(&mut pipe, &changed) {
            sent.push(Sent::Notice);
        }
        let replies = match self.con.as_mut() {
            None => Err("not connected".to_string()),
            Some(con) => pipe
                .query::<Vec<redis::RedisResult<Value>>>(con)
                .map_err(|e| e.to_string()),
        };
        match replies {
            Ok(replies) => {
                shared.link.answered();
                let mut refused = None;
                let mut full = Vec::new();
                for (reply, what) in replies.iter().zip(sent) {
                    let Err(e) = reply else {
                        // Stored: reads may ask Redis for the key again, and the copy goes to
                        // the replica.
                        if let Sent::Record(digest, seq, copy) = what {
                            shared.landed(digest, seq, copy);
                        }
                        continue;
                    };
                    refused = Some(e.to_string());
                    match what {
                        Sent::Record(digest, seq, _) => {
                            // To be deleted: the key's copy goes now.
                            shared.copy(digest, None);
                            self.unsent.insert(digest, seq);
                        }
                        Sent::Generation(id) => full.push(id),
                        Sent::Notice => {}
                    }
                }
                if refused.is_some() {
                    tracing::warn!(
                        "the Redis server refused writes (full?): their keys are deleted \
                         instead, so no machine reads an older value"
                    );
                }
                if !full.is_empty() {
                    self.delete_generations(&full);
                }
                self.refusals(refused.clone());
                if !self.unsent.is_empty() {
                    self.send_owed();
                    if refused.is_some() {
                        // send_owed cleared the state if its deletions went through.
                        self.refusals(refused);
                    }
                }
            }
            Err(why) => {
                for job in jobs {
                    match &job.op {
                        Op::Put { digest, seq, .. } | Op::Remove { digest, seq } => {
                            self.unsent.insert(*digest, *seq);
                        }
                        Op::Generation { id, token } => {
                            self.unsent_generations.insert(*id, *token);
                        }
                        Op::Flush | Op::Track => {}
                    }
                }
                if self.con.is_some() {
                    self.lost(&why);
                }
            }
        }
    }

    /// The record as Redis keeps it (local generations turned into tokens) and its lifetime
    /// in ms, or `None` if it must not be written (stale, dead on arrival, damaged).
    fn for_redis(&mut self, bytes: &[u8], now: u64) -> Option<(Vec<u8>, Option<u64>)> {
        let rec = record::decode(bytes).ok()?;
        let deadline = rec.meta.expiry.deadline_ms;
        let px = match deadline {
            0 => None,
            d if d <= now => return None, // a past deadline is never written
            d => Some(d - now),
        };
        // Reads are not sent to Redis: there, an idle limit counts from the last write (as
        // other processes judge the record, from its write time).
        let px = match (px, rec.meta.expiry.idle_ms) {
            (px, 0) => px,
            (None, idle) => Some(idle),
            (Some(px), idle) => Some(px.min(idle)),
        };
        let shared = self.shared.clone();
        let con = self.con.as_mut()?;
        let tokens = shared
            .tokens
            .outgoing(&shared.gens, rec.generations(), |id| {
                // A first use's token: its mark clear (see `tokens.rs`).
                let token = fresh_token() & !super::tokens::BUMPED;
                let token = fetch_or_create(con, &shared.keys.generation(id), token)?;
                // And its name, for other processes' listings.
                if let Some((label, _)) = shared.gens.label_of(id) {
                    redis::cmd("SET")
                        .arg(shared.keys.name(id))
                        .arg(&*label)
                        .arg("NX")
                        .query::<()>(con)?;
                }
                Ok::<u64, redis::RedisError>(token)
            })
            .ok()??;
        Some((record::encode(&rec.meta, &tokens, rec.key, rec.payload), px))
    }
}

/// The token of a label's key, set to `token` if the key had none.
fn fetch_or_create(con: &mut Connection, key: &str, token: u64) -> redis::RedisResult<u64> {
    let old: Option<u64> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("GET")
        .query(con)?;
    Ok(old.unwrap_or(token))
}

/// A fresh random token (std's hasher keys are random per process; the count and the time
/// make each call's differ).
pub(super) fn fresh_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::AtomicU64;
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether `value` holds the string `what` anywhere.
fn mentions(value: &Value, what: &str) -> bool {
    match value {
        Value::BulkString(b) => b == what.as_bytes(),
        Value::SimpleString(s) => s == what,
        Value::Array(items) | Value::Set(items) => items.iter().any(|v| mentions(v, what)),
        Value::Map(pairs) => pairs
            .iter()
            .any(|(k, v)| mentions(k, what) || mentions(v, what)),
        _ => false,
    }
}
