//! Who serves the folder: at open, and when a client's owner goes away. Without Unix
//! sockets, only the first: a process waits for the holder to let go, up to `open_timeout`.

use std::sync::Arc;
#[cfg(unix)]
use std::sync::Weak;
use std::time::{Duration, Instant};

#[cfg(unix)]
use super::client::Client;
#[cfg(unix)]
use super::server::Server;
#[cfg(unix)]
use super::{Holder, Leases};
use super::{Owner, Role, State};
#[cfg(unix)]
use crate::disk::lock;
use crate::disk::LocalTier;
use crate::error::{Error, Result};

/// How often a process waiting to open the folder tries again.
const RETRY: Duration = Duration::from_millis(20);

/// Takes the database if no other process holds it, without waiting.
fn try_own(state: &State) -> Result<LocalTier> {
    let mut cfg = state.cfg.clone();
    cfg.open_timeout = Duration::ZERO;
    LocalTier::open(
        cfg,
        state.clock.clone(),
        state.counters.clone(),
        state.gens.clone(),
    )
}

/// Opens the folder as its owner or as a client of the process that holds it, waiting up to
/// `open_timeout` for either (another process may be letting go, or starting to serve).
pub(super) fn first_role(state: &Arc<State>, started: Instant) -> Result<()> {
    let deadline = started + state.cfg.open_timeout;
    loop {
        let locked = match try_own(state) {
            Ok(local) => {
                state.set_first_role(Role::Owner(Owner::new(
                    local,
                    Default::default(),
                    &state.dir,
                )));
                return Ok(());
            }
            Err(locked @ Error::Locked { .. }) => locked,
            Err(e) => return Err(e),
        };
        #[cfg(unix)]
        match Client::connect(state) {
            Ok(client) => {
                state.set_first_role(Role::Client(client));
                return Ok(());
            }
            Err(e) => {
                // Another version of tiered holds the folder (a dev loop after an upgrade):
                // open anyway, serving from memory, and take the folder over when it exits.
                if let Some(detached) = super::client::detached_for(state, &e) {
                    state.set_first_role(Role::Client(detached));
                    owner_gone(Arc::downgrade(state));
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(match locked {
                Error::Locked { path, pid, .. } => Error::Locked {
                    path,
                    pid,
                    waited: started.elapsed(),
                },
                other => other,
            });
        }
        std::thread::sleep(RETRY);
    }
}

/// Starts serving the folder's socket (the owner, once its cache exists). A process that
/// cannot serve still works; other processes then wait for it to let go, as before.
#[cfg(unix)]
pub(super) fn serve(state: &Arc<State>, owner: &Arc<Owner>) {
    match Server::start(state, owner) {
        Ok(server) => *lock(&owner.server) = Some(server),
        Err(e) => tracing::warn!(
            error = %e,
            folder = %state.dir.display(),
            "could not serve the cache folder to other processes; they will wait for this one \
             to close it"
        ),
    }
}

/// A client's owner went away: forget what it may have missed, then take the folder over or
/// connect to whoever did, in the background. Callers wait meanwhile (`State::usable_role`).
#[cfg(unix)]
pub(super) fn owner_gone(state: Weak<State>) {
    let spawned = std::thread::Builder::new()
        .name("tiered-takeover".into())
        .spawn(move || take_over(&state));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start taking over the cache folder");
    }
}

#[cfg(unix)]
fn take_over(state: &Weak<State>) {
    let mut pause = RETRY;
    loop {
        let Some(state) = state.upgrade() else { return };
        if state.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        if matches!(state.role(), Some(Role::Client(ref c)) if !c.is_alive()) {
            state.set_role(None);
        }
        // The leases this process holds go to the new owner before anyone can ask it.
        let held: Vec<u128> = lock(&state.leases_held).iter().copied().collect();
        let role = match try_own(&state) {
            Ok(local) => {
                let leases = Leases::default();
                for digest in &held {
                    leases.relet(*digest, Holder::Owner);
                }
                Some(Role::Owner(Owner::new(local, leases, &state.dir)))
            }
            Err(Error::Locked { .. }) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not take over the cache folder; retrying");
                None
            }
        };
        let role = role.or_else(|| match Client::connect(&state) {
            Ok(client) => {
                client.relet(held.clone());
                Some(Role::Client(client))
            }
            Err(e) => {
                // Another version holds the folder: usable meanwhile, from memory.
                let detached =
                    matches!(state.role(), Some(Role::Client(ref c)) if c.detached.is_some());
                if !detached {
                    if let Some(client) = super::client::detached_for(&state, &e) {
                        state.set_role(Some(Role::Client(client)));
                    }
                }
                None
            }
        });
        if let Some(role) = role {
            if let Role::Owner(o) = &role {
                // The old owner's other clients drop their memory tier when they see it
                // gone; no write is applied here before they had the time to.
                std::thread::sleep(super::lease::GRACE);
                // From when it serves: holders of leases reach it and give them again.
                o.leases.hold_new();
            }
            // The role first: a caller waiting for it may hold a key's stripe lock (a
            // removal asks whether its key is live), which `forget_persisted` takes.
            state.set_role(Some(role.clone()));
            // A lease given back while there was no owner to give it to.
            let still = lock(&state.leases_held).clone();
            for digest in held.iter().filter(|d| !still.contains(d)) {
                match &role {
                    Role::Owner(o) => o.leases.release(*digest, Holder::Owner),
                    Role::Client(c) => c.release(*digest),
                }
            }
            // Notices may have been lost with the connection: no value read before it is
            // kept, and no read already running promotes what it read.
            forget_persisted(&state);
            super::refresh_view(&state);
            if let Role::Owner(owner) = role {
                if state.above().is_some() {
                    serve(&state, &owner);
                }
                tracing::info!(folder = %state.dir.display(), "took over the cache folder");
            }
            return;
        }
        drop(state);
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Drops every value of the memory tier that came from (or went to) the disk, and makes every
/// read already running skip its promotion: the owner may have changed any of them.
#[cfg(unix)]
fn forget_persisted(state: &State) {
    state.stripes.bump_all();
    if let Some(above) = state.above() {
        above.lost_contact();
    }
}
