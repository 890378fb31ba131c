//! Redis as the tier below memory (feature `redis`): one cache shared by processes on many
//! machines, each keeping its own memory tier in front, kept coherent by the server's own
//! invalidation messages. See `docs/redis.md`.
//!
//! - `keys.rs`: where records, generations and leases live (one key each, Cluster-safe).
//! - `tokens.rs`: generations across machines (a random token per label in Redis).
//! - `link.rs`: the connections for reads and leases, backoff, and what is wrong.
//! - `writer.rs`: the one connection that writes, in order, with tracking enabled.
//! - `listener.rs`: the connection that hears other clients' writes.

mod keys;
mod link;
mod listener;
mod tokens;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Client, ProtocolVersion};

use super::{Above, Lease, LeaseGuard, Lower, Reservation, Scanned, Staged, Staging, Stored};
use super::{Ticket, Wait};
use crate::disk::lock;
use crate::error::{Error, Result};
use crate::expiry::Clock;
use crate::generations::Generations;
use crate::record;
use keys::Keys;
use link::Link;
use tokens::Tokens;
use writer::{Job, Op};

/// At most this many writes wait to be sent; a writer beyond waits (holding no lock) for
/// room, up to the command timeout.
const MAX_QUEUED: usize = 4096;

/// How a cache reaches its Redis server: see `CacheBuilder::redis`.
#[derive(Clone)]
pub(crate) struct RedisConfig {
    /// Whether `CacheBuilder::redis` was called (an empty URL given is refused at open).
    pub given: bool,
    pub url: String,
    pub prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// How long the listener may take to hear a probe back before it counts as deaf; a
    /// probe is written every twice that.
    pub listener_timeout: Duration,
    /// Records larger than this stay in the memory tier.
    pub max_record_bytes: u64,
    /// How long a lease keeps other machines from computing the same key.
    pub lease: Duration,
    /// The certificate (PEM) that a `rediss://` server's must chain to, instead of the
    /// system's roots.
    pub root_cert: Option<Vec<u8>>,
    /// The certificate chain and private key (PEM) this client shows a `rediss://` server
    /// that asks for one (mutual TLS).
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

/// Shows the URL without its password.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.shown_url())
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("listener_timeout", &self.listener_timeout)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("lease", &self.lease)
            .field("root_cert", &self.root_cert.as_ref().map(|_| "(PEM)"))
            .field("client_cert", &self.client_cert.as_ref().map(|_| "(PEM)"))
            .finish()
    }
}

impl RedisConfig {
    pub fn new(url: String) -> Self {
        RedisConfig {
            given: false,
            url,
            prefix: "tiered:".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            listener_timeout: Duration::from_secs(1),
            max_record_bytes: 8 << 20,
            lease: Duration::from_secs(30),
            root_cert: None,
            client_cert: None,
        }
    }

    /// The URL without its user, password and query (which may hold a password too), for
    /// messages.
    pub fn shown_url(&self) -> String {
        let url = self.url.split(['?', '#']).next().unwrap_or_default();
        let Some((scheme, rest)) = url.split_once("://") else {
            return "(a Redis URL that does not parse)".into();
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        match authority.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}{path}"),
            None => format!("{scheme}://{authority}{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RedisConfig;

    #[test]
    fn a_shown_url_holds_no_password() {
        for (url, shown) in [
            ("redis://user:p@ss@host:6379/2", "redis://…@host:6379/2"),
            ("redis://:secret@host", "redis://…@host"),
            ("redis://host:6379", "redis://host:6379"),
            (
                "redis+unix:///tmp/r.sock?pass=secret",
                "redis+unix:///tmp/r.sock",
            ),
            ("unix:///tmp/r.sock?pass=secret", "unix:///tmp/r.sock"),
            ("nonsense secret", "(a Redis URL that does not parse)"),
        ] {
            assert_eq!(RedisConfig::new(url.into()).shown_url(), shown);
        }
    }
}

/// What the tier's threads share.
pub(crate) struct Shared {
    keys: Keys,
    link: Link,
    /// The listener connects in RESP3, to receive pushes.
    listener_client: Client,
    gens: Arc<Generations>,
    clock: Arc<dyn Clock>,
    tokens: Tokens,
    above: OnceLock<Weak<dyn Above>>,
    /// The listener connection's client id, while it is connected.
    listener: Mutex<Option<i64>>,
    /// Whether the writer's tracking is known to reach the listener now.
    tracking: AtomicBool,
    closed: AtomicBool,
    /// The last liveness probe written and the last one heard (see `writer.rs`).
    probe: Mutex<Probe>,
    /// Why and since when the server refuses writes (`OOM`), while it does.
    refused: Mutex<Option<(String, std::time::SystemTime)>>,
    /// The server refused `CLIENT TRACKING`: writers publish their changed keys to a channel
    /// (`keys.rs`) that listeners subscribe to; since when.
    pubsub: AtomicBool,
    pubsub_since: Mutex<Option<std::time::SystemTime>>,
    /// The listener asked for, and got, its subscription (pub/sub mode).
    subscribing: AtomicBool,
    subscribed: AtomicBool,
    /// This process's token in the channel's messages.
    me: u64,
    /// Labels whose name this process asked Redis for.
    asked_names: Mutex<std::collections::HashSet<u64>>,
    /// Set when the listener must connect again (it heard no probe).
    restart_listener: AtomicBool,
    /// Counts invalidations heard; lease waiters wake on it.
    heard: (Mutex<u64>, Condvar),
    queued: (Mutex<usize>, Condvar),
    tx: Mutex<Option<Sender<Job>>>,
    /// Keys with a write of this process not yet in Redis (queued, in flight, or waiting to
    /// be retried as a deletion), with the newest one's number: a read of such a key is a
    /// miss, never Redis's older record (which the memory tier would then keep over the
    /// write it is about to receive).
    pending: Mutex<HashMap<u128, u64>>,
    next_write: std::sync::atomic::AtomicU64,
    /// Where the writer copies what it stored (a folder in front: `tiers/chain.rs`).
    replica: OnceLock<Arc<dyn Replica>>,
    /// Until when the confirming script is not sent (the server answered it with an error:
    /// an ACL, a server before Redis 7, one still loading): copies are confirmed by reading
    /// the whole record instead, and the script is tried again after [`SCRIPT_RETRY`].
    no_scripts: Mutex<Option<Instant>>,
    cfg: RedisConfig,
}

/// Takes a copy of each record the writer stored in Redis (as Redis keeps it), or the news
/// that a key was deleted there. Called from the writer thread: it must not wait.
pub(crate) trait Replica: Send + Sync {
    fn copy(&self, digest: u128, record: Option<Vec<u8>>);
}

/// What Redis holds for a key, next to a copy of one of its records.
pub(crate) enum Confirmed {
    /// The same record as the copy (its checksum is the same).
    Same,
    /// Another record, or none.
    Other(Option<Vec<u8>>),
}

/// How long copies are confirmed by whole reads after the script failed.
const SCRIPT_RETRY: Duration = Duration::from_secs(60);

/// Answers 1 if the key's last 8 bytes (a record's checksum) are `ARGV[1]`, else the key's
/// value (nil if none): one round trip, and the value is sent only if it differs. Flagged as
/// writing nothing, so that a server pausing writes (`CLIENT PAUSE WRITE`, as a failover does)
/// still runs it (Redis 7; an older server refuses the flag, and reads are then plain `GET`s).
const CONFIRM: &str = "#!lua flags=no-writes
if redis.call('GETRANGE', KEYS[1], -8, -1) == ARGV[1] then return 1 end
return redis.call('GET', KEYS[1])";

impl Shared {
    fn above(&self) -> Option<Arc<dyn Above>> {
        self.above.get().and_then(Weak::upgrade)
    }

    /// Whether `send` could queue the job.
    fn send(&self, job: Job) -> bool {
        match &*lock(&self.tx) {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    fn nudge_writer(&self) {
        self.send(Job {
            op: Op::Track,
            done: None,
            permit: None,
        });
    }

    /// Tracking reaches the listener again: what was read while it did not may be stale.
    fn tracking_confirmed(&self) {
        lock(&self.probe).sent = None;
        self.tracking.store(true, Ordering::Release);
        self.drop_shared_entries();
        tracing::debug!("Redis invalidations reach this process");
    }

    /// Tracking no longer reaches the listener: what this process holds from Redis may be
    /// stale from now on.
    fn tracking_lost(&self, why: &str) {
        if self.tracking.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                reason = %why,
                "lost Redis invalidations: values read from Redis are dropped and kept only \
                 briefly until they are heard again"
            );
        }
        self.drop_shared_entries();
    }

    /// Drops every value this process holds from, or wrote to, Redis.
    fn drop_shared_entries(&self) {
        self.tokens.forget_all();
        if let Some(above) = self.above() {
            above.missed_changes();
        }
        self.wake_waiters();
    }

    fn wake_waiters(&self) {
        *lock(&self.heard.0) += 1;
        self.heard.1.notify_all();
    }

    /// Notes a write of `digest` about to be queued; its number.
    fn writing(&self, digest: u128) -> u64 {
        let seq = self.next_write.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).insert(digest, seq);
        seq
    }

    /// The write `seq` of `digest` is in Redis as `record` (`None`: deleted): unless a newer
    /// one is pending, reads may ask Redis for the key again; the replica takes the copy.
    fn landed(&self, digest: u128, seq: u64, record: Option<Vec<u8>>) {
        {
            let mut pending = lock(&self.pending);
            if pending.get(&digest) == Some(&seq) {
                pending.remove(&digest);
            }
        }
        self.copy(digest, record);
    }

    /// Gives the replica, if any, what Redis holds for `digest` now (`None`: nothing).
    fn copy(&self, digest: u128, record: Option<Vec<u8>>) {
        if let Some(replica) = self.replica.get() {
            replica.copy(digest, record);
        }
    }

    /// Whether a write of `digest` by this process is not in Redis yet.
    fn is_pending(&self, digest: u128) -> bool {
        lock(&self.pending).contains_key(&digest)
    }

    /// A record read from Redis, its tokens turned into this process's generations.
    fn read(&self, digest: u128) -> std::result::Result<Option<Vec<u8>>, String> {
        match self.read_raw(digest)? {
            Some(bytes) => self.local(bytes).map(Some),
            None => Ok(None),
        }
    }

    /// A record as Redis keeps it (with tokens); none while a write of this process to the
    /// key is pending.
    fn read_raw(&self, digest: u128) -> std::result::Result<Option<Vec<u8>>, String> {
        if self.is_pending(digest) {
            return Ok(None);
        }
        let key = self.keys.record(digest);
        self.link
            .run(|con| redis::cmd("GET").arg(&key).query::<Option<Vec<u8>>>(con))
    }

    /// Learns the name of label `id` from Redis if this process does not know it (once per
    /// label), so that listings name it: only a name whose id is `id` is taken.
    fn learn_name(&self, id: u64) {
        if self.gens.label_of(id).is_some() || !lock(&self.asked_names).insert(id) {
            return;
        }
        let key = self.keys.name(id);
        let name = self
            .link
            .run(|con| redis::cmd("GET").arg(&key).query::<Option<String>>(con));
        if let Ok(Some(label)) = name {
            if crate::generations::id(&label) == id {
                self.gens.know(&label, id);
            }
        }
    }

    /// `bytes` (a record as Redis keeps it) as the engine judges it.
    fn local(&self, bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        // A damaged record is handed on as it is: the engine drops it and says so.
        match self.translate(&bytes)? {
            Some((local, _)) => Ok(local),
            None => Ok(bytes),
        }
    }

    /// `bytes` (a record as Redis keeps it) with its tokens turned into this process's
    /// generations, and whether they are all current; `None` if it does not decode.
    fn translate(&self, bytes: &[u8]) -> std::result::Result<Option<(Vec<u8>, bool)>, String> {
        let Ok(rec) = record::decode(bytes) else {
            return Ok(None);
        };
        let generations = self.tokens.incoming(&self.gens, rec.generations(), |id| {
            self.learn_name(id);
            let key = self.keys.generation(id);
            self.link
                .run(|con| redis::cmd("GET").arg(&key).query::<Option<u64>>(con))
        })?;
        let current = self.gens.is_current(generations.iter().copied());
        let local = record::encode(&rec.meta, &generations, rec.key, rec.payload);
        Ok(Some((local, current)))
    }
}

/// A liveness probe: the last one written (its token, when) and the last one heard.
#[derive(Default)]
struct Probe {
    sent: Option<(u64, Instant)>,
    heard: u64,
}

/// Room for one write in the writer's queue, given back when the write was sent.
pub(crate) struct Permit(Arc<Shared>);

impl Drop for Permit {
    fn drop(&mut self) {
        *lock(&self.0.queued.0) -= 1;
        self.0.queued.1.notify_one();
    }
}

/// A write queued for the writer; waits (bounded) for it to be sent.
struct Sent {
    rx: mpsc::Receiver<()>,
    bound: Duration,
}

impl Wait for Sent {
    /// Never an error: a write Redis could not take is retried as a removal by the writer,
    /// reported by `health()` and the log.
    fn wait(self: Box<Self>) -> Result<()> {
        let _ = self.rx.recv_timeout(self.bound);
        Ok(())
    }
}

/// A lease held in Redis; released (only if still ours) when dropped.
struct Held {
    shared: Arc<Shared>,
    key: String,
    token: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let released = self.shared.link.run(|con| {
            redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(&self.key)
                .arg(self.token)
                .query::<i64>(con)
        });
        if let Err(e) = released {
            tracing::debug!(error = %e, "could not give a Redis lease back; it expires by itself");
        }
    }
}

/// The client of `cfg`'s URL: over TLS for `rediss://` (feature `redis-tls`), with the
/// authority and the client certificate given, if any.
fn client(cfg: &RedisConfig) -> redis::RedisResult<Client> {
    #[cfg(feature = "redis-tls")]
    if cfg.url.starts_with("rediss://") && (cfg.root_cert.is_some() || cfg.client_cert.is_some()) {
        return Client::build_with_tls(
            cfg.url.as_str(),
            redis::TlsCertificates {
                client_tls: cfg.client_cert.clone().map(|(client_cert, client_key)| {
                    redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    }
                }),
                root_cert: cfg.root_cert.clone(),
            },
        );
    }
    Client::open(cfg.url.as_str())
}

/// Deletes a lease only if it is still the caller's (a compare-and-delete).
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Redis below the memory tier.
pub(crate) struct RedisTier {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

impl RedisTier {
    /// A tier for `cfg`'s server. Connects nothing yet: the threads start at `attach`, and
    /// an unreachable server makes reads miss until it answers.
    ///
    /// # Errors
    /// [`Error::Config`] if the URL cannot be used.
    pub fn new(cfg: RedisConfig, gens: Arc<Generations>, clock: Arc<dyn Clock>) -> Result<Self> {
        let bad = |e: redis::RedisError| {
            if cfg.url.starts_with("rediss://")
                && (cfg.root_cert.is_some() || cfg.client_cert.is_some())
                && e.kind() != redis::ErrorKind::InvalidClientConfig
            {
                // The URL parsed; a certificate or key did not (the detail names which).
                return Error::Config(format!(
                    "the TLS certificates given for {} cannot be used: {}; give PEM files \
                     (redis_tls_root_cert, redis_tls_client_cert)",
                    cfg.shown_url(),
                    e
                ));
            }
            Error::Config(format!(
                "the Redis URL {} cannot be used ({:?}): give redis://[user:password@]host:port[/db]",
                cfg.shown_url(),
                e.kind()
            ))
        };
        if cfg.url.trim().is_empty() {
            return Err(Error::Config(
                "the Redis URL is empty: give redis://[user:password@]host:port[/db], or leave \
                 CacheBuilder::redis out for a cache without Redis"
                    .into(),
            ));
        }
        if cfg.url.starts_with("rediss://") && !cfg!(feature = "redis-tls") {
            return Err(Error::Config(format!(
                "{} is a TLS URL: build tiered with the feature `redis-tls`",
                cfg.shown_url()
            )));
        }
        let client = client(&cfg).map_err(bad)?;
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let listener_client = Client::open(info.set_redis_settings(resp3)).map_err(bad)?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            keys: Keys::new(&cfg.prefix),
            link: Link::new(
                client,
                cfg.shown_url(),
                cfg.connect_timeout,
                cfg.command_timeout,
            ),
            listener_client,
            gens,
            clock,
            tokens: Tokens::default(),
            above: OnceLock::new(),
            listener: Mutex::new(None),
            tracking: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            probe: Mutex::default(),
            refused: Mutex::default(),
            pubsub: AtomicBool::new(false),
            pubsub_since: Mutex::default(),
            subscribing: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            me: writer::fresh_token(),
            asked_names: Mutex::default(),
            restart_listener: AtomicBool::new(false),
            heard: Default::default(),
            queued: Default::default(),
            tx: Mutex::new(Some(tx)),
            pending: Mutex::default(),
            next_write: std::sync::atomic::AtomicU64::new(0),
            replica: OnceLock::new(),
            no_scripts: Mutex::new(None),
            cfg,
        });
        Ok(RedisTier {
            shared,
            writer: Mutex::new(None),
            rx: Mutex::new(Some(rx)),
        })
    }

    /// Gives every record the writer stores from now on to `replica` as well.
    pub fn copy_to(&self, replica: Arc<dyn Replica>) {
        let _ = self.shared.replica.set(replica);
    }

    /// What Redis holds for `digest` next to `copy`, a copy of one of its records: checked
    /// by the record's trailing checksum, in one round trip.
    ///
    /// # Errors
    /// If the server cannot be asked.
    pub fn confirm(&self, digest: u128, copy: &[u8]) -> std::result::Result<Confirmed, String> {
        let tail = copy.len().checked_sub(8).map(|at| &copy[at..]);
        let scripts = lock(&self.shared.no_scripts).is_none_or(|until| Instant::now() >= until);
        let Some(tail) = tail.filter(|_| scripts) else {
            return Ok(Confirmed::Other(self.shared.read_raw(digest)?));
        };
        let key = self.shared.keys.record(digest);
        let answer = self.shared.link.run(|con| {
            redis::cmd("EVAL")
                .arg(CONFIRM)
                .arg(1)
                .arg(&key)
                .arg(tail)
                .query::<redis::Value>(con)
        });
        match answer {
            Ok(redis::Value::Int(1)) => Ok(Confirmed::Same),
            Ok(redis::Value::BulkString(bytes)) => Ok(Confirmed::Other(Some(bytes))),
            Ok(_) => Ok(Confirmed::Other(None)),
            // A server that refuses scripts (an ACL, an older server): whole records from
            // now on.
            Err(e) if self.shared.link.outage().is_none() => {
                let before = lock(&self.shared.no_scripts).replace(Instant::now() + SCRIPT_RETRY);
                if before.is_none() {
                    tracing::warn!(
                        error = %e,
                        "the Redis server answers the script that confirms the folder's copies \
                         with an error: copies are confirmed by reading the whole record, and \
                         the script is tried again every minute"
                    );
                }
                Ok(Confirmed::Other(self.shared.read_raw(digest)?))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether a write of `digest` by this process is not in Redis yet (a read of it is then
    /// a miss: Redis still holds the record the write replaces).
    pub fn is_pending(&self, digest: u128) -> bool {
        self.shared.is_pending(digest)
    }

    /// The record of `digest` as Redis keeps it (with tokens).
    ///
    /// # Errors
    /// If the server cannot be asked.
    pub fn read_raw(&self, digest: u128) -> std::result::Result<Option<Vec<u8>>, String> {
        self.shared.read_raw(digest)
    }

    /// A record as Redis keeps it, as the engine judges it (tokens turned into this
    /// process's generations), and whether its labels are all current; `None` if it is
    /// damaged (it does not decode).
    ///
    /// # Errors
    /// If a label's token cannot be looked up.
    pub fn localize(&self, bytes: &[u8]) -> std::result::Result<Option<(Vec<u8>, bool)>, String> {
        self.shared.translate(bytes)
    }

    /// Queues `op` and returns its ticket.
    fn queue(&self, op: Op, permit: Option<Permit>) -> Ticket {
        let (done, rx) = mpsc::sync_channel(1);
        let queued = self.shared.send(Job {
            op,
            done: Some(done),
            permit,
        });
        if !queued {
            return Ticket::done();
        }
        let cfg = &self.shared.cfg;
        Ticket::new(Sent {
            rx,
            bound: cfg.connect_timeout + cfg.command_timeout * 3,
        })
    }
}

impl Lower for RedisTier {
    fn attach(&self, above: Weak<dyn Above>) {
        let _ = self.shared.above.set(above);
        let Some(rx) = lock(&self.rx).take() else {
            return;
        };
        let shared = self.shared.clone();
        let writer = std::thread::Builder::new()
            .name("tiered-redis-writer".into())
            .spawn(move || writer::run(shared, rx));
        match writer {
            Ok(handle) => *lock(&self.writer) = Some(handle),
            Err(e) => tracing::error!(error = %e, "could not start the Redis writer thread"),
        }
        let weak = Arc::downgrade(&self.shared);
        if let Err(e) = std::thread::Builder::new()
            .name("tiered-redis-listener".into())
            .spawn(move || listener::run(weak))
        {
            tracing::error!(error = %e, "could not start the Redis listener thread");
        }
    }

    /// A failure is a miss.
    fn read(&self, digest: u128) -> Option<Stored> {
        match self.shared.read(digest) {
            Ok(found) => found.map(|bytes| Stored {
                bytes: bytes.into(),
                last_access_ms: None,
            }),
            Err(_) => None,
        }
    }

    /// Reads refresh nothing in Redis: an idle limit is kept by each process's memory tier.
    fn touch(&self, _digest: u128, _now_ms: u64, _idle: bool) {}

    /// Without asking the server it cannot tell.
    fn may_contain(&self, _digest: u128) -> bool {
        true
    }

    /// `SCAN` over the record keys; the cursor is the server's. A key may come twice.
    fn scan(&self, after: Option<u128>, max: usize) -> Result<(Vec<Scanned>, Option<u128>)> {
        let shared = &self.shared;
        let storage = |detail: String| Error::Storage {
            path: shared.cfg.shown_url().into(),
            detail,
        };
        let cursor = u64::try_from(after.unwrap_or(0)).unwrap_or(0);
        let pattern = shared.keys.records_pattern();
        let (next, found): (u64, Vec<Vec<u8>>) = shared
            .link
            .run(|con| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(max.max(1))
                    .query(con)
            })
            .map_err(storage)?;
        let mut page = Vec::new();
        for key in found {
            let Some(keys::Changed::Record(digest)) = shared.keys.parse(&key) else {
                continue;
            };
            if let Ok(Some(bytes)) = shared.read(digest) {
                page.push(Scanned {
                    digest,
                    bytes: bytes.into(),
                    last_access_ms: None,
                });
            }
        }
        Ok((page, (next != 0).then_some(u128::from(next))))
    }

    /// A record larger than the configured bound stays in the memory tier.
    fn stage(&self, payload: Vec<u8>, record_bytes: u64) -> Result<Staging> {
        if record_bytes > self.shared.cfg.max_record_bytes {
            return Ok(Staging::KeepAbove(payload));
        }
        Ok(Staging::Ready(Staged::inline(payload)))
    }

    /// Room in the writer's queue; waits (holding no lock) up to the command timeout.
    fn reserve(&self, _record_len: usize, _staged: &mut Staged) -> Reservation {
        let shared = &self.shared;
        let until = Instant::now() + shared.cfg.command_timeout;
        let mut queued = lock(&shared.queued.0);
        while *queued >= MAX_QUEUED {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queued = shared
                .queued
                .1
                .wait_timeout(queued, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *queued += 1;
        Reservation::new(Permit(shared.clone()))
    }

    fn put(&self, digest: u128, record: Vec<u8>, room: Reservation) -> Ticket {
        let seq = self.shared.writing(digest);
        self.queue(
            Op::Put {
                digest,
                record,
                seq,
            },
            room.take::<Permit>(),
        )
    }

    fn remove(&self, digest: u128) -> Ticket {
        let seq = self.shared.writing(digest);
        self.queue(Op::Remove { digest, seq }, None)
    }

    /// Never needed: a removal is always sent.
    fn forget_elsewhere(&self, _digest: u128) -> Option<Ticket> {
        None
    }

    /// Never: another build's records are left to their deadlines and to eviction (during a
    /// rolling deploy two builds share the server).
    fn discard(&self, _digest: u128) {}

    /// A fresh token in the label's key; other machines hear of it through tracking. The
    /// label moves on here at once; if the server cannot be reached the token is sent when
    /// it answers again (reported by `health()`).
    fn bump(&self, gens: &Generations, label: String, _settle: bool) -> Result<()> {
        let token = writer::fresh_token() | tokens::BUMPED;
        self.shared.tokens.ours(gens, &label, token);
        let id = crate::generations::id(&label);
        self.queue(Op::Generation { id, token }, None).wait()
    }

    /// The record if another machine stored it, else a lease in Redis (`SET NX PX`); while
    /// another machine holds it, waits for the key to be written (woken by its
    /// invalidation, polling at least every 50 ms) up to the lease's length, then computes.
    fn lease(&self, digest: u128, force: bool) -> Result<Lease> {
        let shared = &self.shared;
        let key = shared.keys.lease(digest);
        let lease_ms = u64::try_from(shared.cfg.lease.as_millis()).unwrap_or(u64::MAX);
        let until = Instant::now() + shared.cfg.lease;
        // With `force`, the caller could not use the record there now: only another one
        // (written since by whoever held the lease) is worth handing back.
        let unusable = if force {
            shared.read(digest).ok().flatten()
        } else {
            None
        };
        let found = || match shared.read(digest) {
            Ok(Some(bytes)) if unusable.as_ref() != Some(&bytes) => Some(Stored {
                bytes: bytes.into(),
                last_access_ms: None,
            }),
            _ => None,
        };
        let mut first = true;
        loop {
            if !force || !first {
                if let Some(stored) = found() {
                    return Ok(Lease::Found(stored));
                }
            }
            first = false;
            let token = writer::fresh_token();
            let heard = *lock(&shared.heard.0);
            let taken = shared.link.run(|con| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .query::<Option<String>>(con)
            });
            match taken {
                Ok(Some(_)) => {
                    let held = Held {
                        shared: shared.clone(),
                        key,
                        token,
                    };
                    // The holder before may have stored the value and let go between the
                    // read above and this lease: it stores before it lets go.
                    if let Some(stored) = found() {
                        drop(held);
                        return Ok(Lease::Found(stored));
                    }
                    return Ok(Lease::Granted(LeaseGuard::new(held)));
                }
                Ok(None) if Instant::now() < until => {
                    let seen = lock(&shared.heard.0);
                    if *seen == heard {
                        let _ = shared.heard.1.wait_timeout(seen, Duration::from_millis(50));
                    }
                }
                // Another machine held it all along, or the server cannot be asked: compute.
                Ok(None) | Err(_) => return Ok(Lease::Granted(LeaseGuard::none())),
            }
        }
    }

    fn flush(&self) -> Result<()> {
        self.queue(Op::Flush, None).wait()
    }

    fn leave_at_exit(&self) {
        let _ = self.flush();
    }

    /// Sends what is queued (each write bounded by the timeouts) and stops the threads.
    fn close(&self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        lock(&self.shared.tx).take();
        if let Some(writer) = lock(&self.writer).take() {
            // The writer itself may let go of the cache last (it held it for a moment): it
            // then ends by itself once the queue is empty.
            if writer.thread().id() != std::thread::current().id() {
                let _ = writer.join();
            }
        }
        Ok(())
    }

    fn health(&self) -> Option<crate::Health> {
        let shared = &self.shared;
        if let Some((reason, since)) = shared
            .link
            .outage()
            .or_else(|| lock(&shared.refused).clone())
        {
            return Some(crate::Health::RedisUnreachable { reason, since });
        }
        let since = (*lock(&shared.pubsub_since))?;
        Some(crate::Health::RedisUntracked { since })
    }

    /// Replicas of two builds share the server during a rolling deploy.
    fn shared_by_builds(&self) -> bool {
        true
    }
}

impl Drop for RedisTier {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
