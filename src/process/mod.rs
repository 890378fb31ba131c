//! Many processes, one cache folder.
//!
//! redb lets one process hold the database file. That process is the folder's *owner*: it
//! serves a Unix socket in the folder (`server.rs`). Every other process that opens the folder
//! becomes a *client* (`client.rs`): it keeps its own memory tier and sends what would go to
//! the disk tier (reads past its memory, writes, invalidations, leases) to the owner, which
//! applies them to both of its tiers and answers after the commit the client's durability
//! asks for. Each change is sent to the other clients, which drop what it replaced from their
//! memory tier before the call that made it returns (`peers.rs`). Leases make a missing key
//! computed once across processes (`lease.rs`).
//!
//! When the owner exits or dies, its clients see the connection end; each drops its memory
//! tier (it may have missed a notice), and one of them takes the file lock and becomes the
//! owner while the others connect to it (`takeover.rs`). A call that was waiting on the old
//! owner is sent again to the new one (writes in their order, see `client.rs`), so callers see
//! no error and nothing acknowledged is lost.
//!
//! [`DiskTier`] is what the engine sees either way, as its `tiers::Lower` (`lower.rs`): the
//! same calls, done here or by the owner.

#[cfg(unix)]
mod client;
#[cfg(unix)]
mod epochs;
mod lease;
mod lower;
#[cfg(unix)]
mod peers;
#[cfg(unix)]
mod server;
#[cfg(unix)]
pub(crate) mod socket;
mod takeover;
#[cfg(unix)]
pub(crate) mod wire;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock, Weak};
use std::time::Instant;

use crate::disk::{self, lock, DiskConfig, LocalTier, Reservation, Stored};
use crate::error::{Error, Result};
use crate::expiry::Clock;
use crate::generations::Generations;
use crate::memory::View;
use crate::ordering::Stripes;
use crate::stats::Counters;
use crate::tiers::{Above, Lower};

#[cfg(unix)]
pub(crate) use epochs::Epochs;

/// Without Unix sockets a process is always its folder's owner: nothing to check.
#[cfg(not(unix))]
pub(crate) struct Epochs;

#[cfg(not(unix))]
impl Epochs {
    pub fn load(&self, _slot: usize) -> u64 {
        0
    }
}
pub(crate) use lease::{Asked, Holder, Leases};

/// The default of `CacheBuilder::request_timeout`.
pub(crate) const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The disk tier as the engine sees it: this process's database, or the owner's.
pub(crate) struct DiskTier {
    state: Arc<State>,
}

impl DiskTier {
    /// The bytes the folder may hold (`disk_capacity`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn capacity(&self) -> u64 {
        self.state.cfg.capacity
    }
}

/// What the disk tier's front shares with its background threads.
pub(crate) struct State {
    pub dir: PathBuf,
    pub db_path: PathBuf,
    pub cfg: DiskConfig,
    pub clock: Arc<dyn Clock>,
    pub counters: Arc<Counters>,
    pub gens: Arc<Generations>,
    pub stripes: Arc<Stripes>,
    /// Whether the memory tier may serve its disk entries (see `memory::View`): kept by this
    /// tier, checked by the memory tier.
    pub view: Arc<View>,
    /// The cache this tier belongs to, once it exists (see [`DiskTier::attach`]), as a tier
    /// below memory sees it.
    pub above: OnceLock<Weak<dyn Above>>,
    /// `None` while no owner can be reached (a client's owner went away and no process has
    /// taken over yet).
    role: RwLock<Option<Role>>,
    /// Bumped (and waiters woken) whenever the role changes.
    changed: (Mutex<u64>, Condvar),
    /// One more than the `changed` count at which a wait for a usable role last ran out:
    /// until the role changes again, calls fail at once (see [`State::usable_role`]).
    gave_up_at: std::sync::atomic::AtomicU64,
    pub closed: AtomicBool,
    /// A client's writes not yet answered: the number of the latest per key (see
    /// `client.rs`).
    pub writes: Mutex<std::collections::HashMap<u128, u64>>,
    pub write_number: std::sync::atomic::AtomicU64,
    /// The leases this process holds from its owner, to give again to a new owner.
    pub leases_held: Mutex<std::collections::HashSet<u128>>,
    /// The pid of the last owner this process was a client of.
    pub last_owner: std::sync::atomic::AtomicU32,
    /// Batched writes an owner acknowledged (queued) and that no flush covered when its
    /// connection ended, in all: they may be lost, and the next `flush()` says so.
    pub batched_lost: std::sync::atomic::AtomicU64,
    /// Tells this tier's state from any other (for the per-thread marks of `flush`).
    pub id: u64,
}

/// What this process is to the folder.
#[derive(Clone)]
pub(crate) enum Role {
    Owner(Arc<Owner>),
    #[cfg(unix)]
    Client(Arc<client::Client>),
}

/// The holder of the database file.
pub(crate) struct Owner {
    pub local: LocalTier,
    pub leases: Leases,
    #[cfg(unix)]
    pub peers: peers::Peers,
    #[cfg(unix)]
    server: Mutex<Option<server::Server>>,
    /// The folder's epochs file (see `epochs.rs`); `None` if it could not be mapped.
    #[cfg(unix)]
    pub epochs: Option<Arc<Epochs>>,
    /// Set when this owner stops serving: requests that arrive from then on are left
    /// unanswered (their clients send them to the next owner).
    pub quiet: AtomicBool,
    /// Requests being applied now (see [`stop_serving`](Owner::stop_serving)).
    pub busy: std::sync::atomic::AtomicUsize,
}

impl Owner {
    /// The new owner of the folder. Every client's memory tier, of this owner or an earlier
    /// one, is made not current before any write of this owner is applied: a client of the
    /// last owner may be stopped, and would not see that owner go.
    fn new(local: LocalTier, leases: Leases, dir: &Path) -> Arc<Self> {
        #[cfg(unix)]
        let epochs = match Epochs::open(dir) {
            Ok(epochs) => {
                epochs.raise_all();
                Some(Arc::new(epochs))
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "could not map the cache folder's epochs file: clients will read \
                     through this process instead of serving disk entries from memory"
                );
                None
            }
        };
        #[cfg(not(unix))]
        let _ = dir;
        Arc::new(Owner {
            local,
            leases,
            #[cfg(unix)]
            peers: peers::Peers::default(),
            #[cfg(unix)]
            server: Mutex::new(None),
            #[cfg(unix)]
            epochs,
            quiet: AtomicBool::new(false),
            busy: Default::default(),
        })
    }

    /// Whether a lease's holder still runs: a client is asked (a ping it must acknowledge
    /// within `peers::ACK_TIMEOUT`) and cut off if it does not; this process runs.
    fn holder_runs(&self, holder: Holder) -> bool {
        match holder {
            Holder::Owner => true,
            #[cfg(unix)]
            Holder::Client(id) => self.peers.ping(id),
            #[cfg(not(unix))]
            Holder::Client(_) => true,
        }
    }

    /// Sends `notice` to the clients; wait on the result for them to apply it.
    #[cfg(unix)]
    fn tell(&self, notice: wire::Notice) -> Option<peers::Acks> {
        Some(self.peers.broadcast(notice))
    }

    #[cfg(not(unix))]
    fn tell(&self, _notice: ()) -> Option<()> {
        None
    }

    /// Stops serving: clients see their connection end and one of them takes over once this
    /// process lets go of the file. First no new request is applied, then everything
    /// acknowledged so far is committed, and only then are the clients told that the end is
    /// clean (their unflushed batched writes are safe: see `client.rs`).
    fn stop_serving(&self) {
        #[cfg(unix)]
        if let Some(server) = lock(&self.server).take() {
            self.quiet.store(true, Ordering::SeqCst);
            // A connection's thread closing the cache from inside a request counts itself.
            let own = server::own_busy();
            let until = Instant::now() + std::time::Duration::from_secs(2);
            while self.busy.load(Ordering::SeqCst) > own && Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let clean = self.local.flush().is_ok();
            server.stop(&self.peers, clean);
        }
    }
}

impl State {
    fn new(
        cfg: DiskConfig,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
        gens: Arc<Generations>,
        stripes: Arc<Stripes>,
        view: Arc<View>,
    ) -> Arc<State> {
        Arc::new(State {
            dir: cfg.dir.clone(),
            db_path: cfg.dir.join(disk::DB_FILE),
            cfg: cfg.clone(),
            clock,
            counters,
            gens,
            stripes,
            view,
            above: OnceLock::new(),
            role: RwLock::new(None),
            changed: (Mutex::new(0), Condvar::new()),
            gave_up_at: Default::default(),
            closed: AtomicBool::new(false),
            writes: Mutex::default(),
            write_number: Default::default(),
            last_owner: Default::default(),
            leases_held: Mutex::default(),
            batched_lost: Default::default(),
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        })
    }

    pub fn role(&self) -> Option<Role> {
        self.role.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_role(&self, role: Option<Role>) {
        self.replace_role(|slot| *slot = role);
    }

    /// The first role, unless a takeover already replaced it (a connection that ended at
    /// once).
    pub(crate) fn set_first_role(&self, role: Role) {
        self.replace_role(|slot| {
            slot.get_or_insert(role);
        });
    }

    fn replace_role(&self, change: impl FnOnce(&mut Option<Role>)) {
        change(&mut self.role.write().unwrap_or_else(|e| e.into_inner()));
        let (count, cv) = &self.changed;
        *lock(count) += 1;
        cv.notify_all();
    }

    /// A role that can serve a request now: the owner, or a client whose connection is up,
    /// waiting for a takeover until `open_timeout` has passed. Once a wait ran out, the calls
    /// after it fail at once until the role changes (a takeover, a new connection): an
    /// owner that is stopped, not gone, keeps the folder locked and its socket unanswered,
    /// and each call would otherwise wait `open_timeout` again.
    pub fn usable_role(&self) -> Result<Role> {
        let deadline = Instant::now() + self.cfg.open_timeout;
        let (count, cv) = &self.changed;
        let mut seen = lock(count);
        loop {
            if let Some(role) = self.role().filter(Role::is_usable) {
                return Ok(role);
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(self.closed_error());
            }
            let gave_up = self.gave_up_at.load(Ordering::Acquire) == *seen + 1;
            let now = Instant::now();
            if gave_up || now >= deadline {
                self.gave_up_at.store(*seen + 1, Ordering::Release);
                return Err(Error::Storage {
                    path: self.dir.clone(),
                    detail: format!(
                        "the process that held the cache folder went away or stopped answering, \
                         and no process took it over within open_timeout ({:?}); calls fail at \
                         once until one does; retry, or check the folder's permissions",
                        self.cfg.open_timeout
                    ),
                });
            }
            seen = cv
                .wait_timeout(
                    seen,
                    (deadline - now).min(std::time::Duration::from_millis(50)),
                )
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn closed_error(&self) -> Error {
        Error::Storage {
            path: self.db_path.clone(),
            detail: "the cache is closed".into(),
        }
    }

    /// The cache this tier belongs to, unless it is gone (being dropped).
    pub fn above(&self) -> Option<Arc<dyn Above>> {
        self.above.get().and_then(Weak::upgrade)
    }
}

impl Role {
    fn is_usable(&self) -> bool {
        match self {
            Role::Owner(_) => true,
            #[cfg(unix)]
            Role::Client(c) => c.is_alive(),
        }
    }
}

impl DiskTier {
    /// Opens the folder's disk tier: as its owner if this process can take the database, else
    /// as a client of the process that holds it, waiting up to `open_timeout` for either.
    ///
    /// # Errors
    /// [`Error::Locked`] if neither happened in time; what opening the database can give.
    pub fn open(
        cfg: DiskConfig,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
        gens: Arc<Generations>,
        stripes: Arc<Stripes>,
        view: Arc<View>,
    ) -> Result<Self> {
        let started = Instant::now();
        let state = State::new(cfg, clock, counters, gens, stripes, view);
        takeover::first_role(&state, started)?;
        Ok(DiskTier { state })
    }

    /// A disk tier that waits for the folder in the background (the child of a fork that
    /// could not reach it, `why`): it serves from memory, its calls that need the folder fail
    /// at once, and it takes the folder over, or connects to its owner, as soon as it can.
    ///
    /// # Errors
    /// [`Error::Io`] if the stand-in connection cannot be made.
    #[cfg(unix)]
    pub fn waiting(
        cfg: DiskConfig,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
        gens: Arc<Generations>,
        stripes: Arc<Stripes>,
        view: Arc<View>,
        why: String,
    ) -> Result<Self> {
        let state = State::new(cfg, clock, counters, gens, stripes, view);
        let detached =
            client::Client::detached(&state, why).map_err(|e| Error::io(&state.dir, e))?;
        state.set_first_role(Role::Client(detached));
        takeover::owner_gone(Arc::downgrade(&state));
        Ok(DiskTier { state })
    }

    /// Without Unix sockets no other process can hold the folder for a child to reach.
    ///
    /// # Errors
    /// As [`DiskTier::open`].
    #[cfg(not(unix))]
    pub fn waiting(
        cfg: DiskConfig,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
        gens: Arc<Generations>,
        stripes: Arc<Stripes>,
        view: Arc<View>,
        _why: String,
    ) -> Result<Self> {
        Self::open(cfg, clock, counters, gens, stripes, view)
    }

    /// The process id of the folder's owner, if this process is a client.
    pub fn owner_pid(&self) -> Option<u32> {
        match self.state.role() {
            Some(Role::Owner(_)) => None,
            #[cfg(unix)]
            Some(Role::Client(c)) => Some(c.owner_pid),
            // Between two owners: the last one known (0 if none was).
            None => Some(self.state.last_owner.load(Ordering::Relaxed)),
        }
    }

    /// The owner's side, if this process holds the database (tests reach its internals).
    #[cfg(test)]
    pub fn owner(&self) -> Option<Arc<Owner>> {
        match self.state.role() {
            Some(Role::Owner(o)) => Some(o),
            _ => None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.state.db_path
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.state.dir
    }

    /// Whether this process holds the folder now.
    pub fn is_owner(&self) -> bool {
        matches!(self.state.role(), Some(Role::Owner(_)))
    }

    /// What the warm restart reads through: only the owner has the file to read.
    pub fn warm_source(&self) -> Option<disk::warm::Source> {
        match self.state.role() {
            Some(Role::Owner(o)) => Some(o.local.warm_source()),
            _ => None,
        }
    }
}

/// Closes under way in this process, on whatever thread let go of a cache last: the exit
/// hook waits for them (a user's drop may return while another thread of the cache still
/// holds it and closes it a moment later).
static CLOSES: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// A close under way (see [`CLOSES`]), from its start to the end of this value.
pub(crate) struct Closing;

impl Closing {
    pub(crate) fn begin() -> Closing {
        *lock(&CLOSES.0) += 1;
        Closing
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        let mut n = lock(&CLOSES.0);
        *n -= 1;
        if *n == 0 {
            CLOSES.1.notify_all();
        }
    }
}

/// Locks the count of closes under way; for the fork handlers, which hold it across a fork
/// and set it to 0 in the child (the closes were its parent's threads').
pub(crate) fn lock_closes() -> std::sync::MutexGuard<'static, usize> {
    lock(&CLOSES.0)
}

/// Waits (up to `until`) for the closes under way to end; for the exit hook.
pub(crate) fn wait_for_closes(until: Instant) {
    let mut n = lock(&CLOSES.0);
    while *n > 0 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        n = CLOSES
            .1
            .wait_timeout(n, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

impl Drop for DiskTier {
    fn drop(&mut self) {
        if !self.state.closed.load(Ordering::Acquire) {
            if let Err(e) = self.close() {
                tracing::error!(error = %e, "closing the cache lost writes");
            }
        }
    }
}

/// Tells the memory tier what keeps its disk entries current (see `memory::View`): nothing
/// to check for the owner; a client's slot in the epochs file. Call after the memory tier
/// dropped what a new connection may not have been told.
pub(crate) fn refresh_view(state: &State) {
    if state.above().is_none() {
        return;
    }
    let view = &state.view;
    match state.role() {
        Some(Role::Owner(_)) => view.uncheck(),
        // Waiting for another version's process to let go: no owner of ours to follow, and
        // what this process holds is all it serves.
        #[cfg(unix)]
        Some(Role::Client(c)) if c.detached.is_some() => view.uncheck(),
        #[cfg(unix)]
        Some(Role::Client(c)) => {
            if view.epochs().is_none() {
                match Epochs::open(&state.dir) {
                    Ok(epochs) => {
                        view.set_epochs(Arc::new(epochs));
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "could not map the cache folder's epochs file: disk entries are read \
                         through the owner, not served from memory"
                    ),
                }
            }
            view.check(c.slot, c.epoch);
        }
        // Between two owners: what a client held is not current.
        None => {}
    }
}

/// A write of the owner: queued, then sent to the clients, in one step under the key's
/// stripe lock (the caller's).
pub(crate) fn owner_write(
    o: &Arc<Owner>,
    digest: u128,
    record: Option<Vec<u8>>,
    reservation: Option<Reservation>,
) -> Ticket {
    let ticket = match record {
        Some(record) => {
            let r = match reservation {
                Some(r) if r.is_held() => r,
                // Reserved as a client, or a client's write sent again after this process
                // took over: admitted now.
                _ => o.local.reserve(record.len()),
            };
            o.local.put(digest, record, r)
        }
        None => o.local.remove(digest),
    };
    #[cfg(unix)]
    let acks = o.tell(wire::Notice::Forget { digest });
    #[cfg(not(unix))]
    let acks = None;
    Ticket::Owner(ticket, acks)
}

/// The owner's own read-through asking for a key's lease.
fn owner_lease(o: &Arc<Owner>, digest: u128, force: bool) -> Lease {
    match o.leases.ask(
        digest,
        Holder::Owner,
        force,
        || o.local.read(digest),
        |holder| o.holder_runs(holder),
    ) {
        Asked::Found(stored) => Lease::Found(stored),
        Asked::Granted => Lease::Granted(LeaseGuard::Owner(o.clone(), digest)),
    }
}

/// An invalidation of the owner: persisted, then sent to the clients.
pub(crate) fn owner_bump(o: &Arc<Owner>, label: String, generation: u64, settle: bool) -> Ticket {
    let ticket = o.local.bump(label.clone(), generation, settle);
    #[cfg(unix)]
    let acks = o.tell(wire::Notice::Generation { label, generation });
    #[cfg(not(unix))]
    let acks = None;
    Ticket::Owner(ticket, acks)
}

/// A queued write: wait on it (outside any lock) for its commit, if the durability asks, and
/// for the other processes to have applied it.
#[must_use = "a write's outcome is known only by waiting on its ticket"]
pub(crate) enum Ticket {
    #[cfg(unix)]
    Owner(disk::Ticket, Option<peers::Acks>),
    #[cfg(not(unix))]
    Owner(disk::Ticket, Option<()>),
    #[cfg(unix)]
    Client(client::Sent),
    /// Nothing written here; other processes told.
    #[cfg(unix)]
    Told(peers::Acks),
}

impl Ticket {
    /// Waits for the commit and the other processes.
    ///
    /// # Errors
    /// [`Error::Storage`] if the commit failed, the cache is closed, or no owner could be
    /// reached within `open_timeout`.
    pub fn wait(self) -> Result<()> {
        match self {
            Ticket::Owner(ticket, acks) => {
                let result = ticket.wait();
                #[cfg(unix)]
                if let Some(acks) = acks {
                    acks.wait();
                }
                #[cfg(not(unix))]
                let _ = acks;
                result
            }
            #[cfg(unix)]
            Ticket::Client(sent) => sent.wait(),
            #[cfg(unix)]
            Ticket::Told(acks) => {
                acks.wait();
                Ok(())
            }
        }
    }
}

/// What asking for a key's lease gave.
pub(crate) enum Lease {
    /// The key has a record: decode it instead of computing.
    Found(Stored),
    /// This process computes the key; dropping the guard gives the lease back.
    Granted(LeaseGuard),
}

/// A held lease; given back when dropped (after the computed value was stored).
pub(crate) enum LeaseGuard {
    Owner(Arc<Owner>, u128),
    /// A lease from the owner process; given back to whoever serves the folder by then.
    #[cfg(unix)]
    Client(Arc<State>, u128),
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        match self {
            LeaseGuard::Owner(o, digest) => o.leases.release(*digest, Holder::Owner),
            #[cfg(unix)]
            LeaseGuard::Client(state, digest) => {
                lock(&state.leases_held).remove(digest);
                match state.role() {
                    Some(Role::Owner(o)) => o.leases.release(*digest, Holder::Owner),
                    Some(Role::Client(c)) => c.release(*digest),
                    None => {}
                }
            }
        }
    }
}
