//! Leases: one computation per missing key across processes.
//!
//! The owner keeps one table of leases for its folder. A read-through that missed asks for
//! the key's lease: if the key has a live record by then, it gets the record; if another
//! holder (a client, or the owner's own read-through) has the lease, it waits for it to be
//! given back and then looks again; otherwise the lease is its own until it stores the value
//! or gives up. A client's leases are given back when its connection ends, so a lease whose
//! holder died (killed mid-computation) is released at once.
//!
//! Looking for the record and granting the lease happen under the table's lock, and a holder
//! gives its lease back only after its record is queued (visible to reads), so a caller never
//! misses a value another process just stored and computes it again.
//!
//! The table lives in the owner's memory. When the owner dies, the clients that hold leases
//! give them to the new owner again ([`Leases::relet`]) as soon as they reach it, and a new
//! owner grants no new lease for [`GRACE`] after it took over, so that a process waiting for a
//! key does not compute it while its holder is still at work.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::disk::lock;

/// Who holds a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A read-through of the owner process itself.
    Owner,
    /// A client connection.
    Client(u64),
}

/// What asking for a lease gave.
pub(crate) enum Asked<T> {
    /// The key has a record now: read it instead of computing.
    Found(T),
    /// The lease is the caller's.
    Granted,
}

/// How long a new owner that took the folder over waits for the holders of leases to give
/// them again before it grants new ones.
pub(crate) const GRACE: Duration = Duration::from_millis(500);
/// How often a process waiting for a lease asks whether its holder still runs.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<u128, Holder>>,
    released: Condvar,
    /// No new lease before this instant (a new owner's [`GRACE`]).
    granting_from: Mutex<Option<Instant>>,
}

impl Leases {
    /// Grants no new lease for [`GRACE`] from now: the owner took the folder over and starts
    /// serving.
    pub fn hold_new(&self) {
        *lock(&self.granting_from) = Some(Instant::now() + GRACE);
    }

    /// A lease its holder had from the previous owner, given to this one (unless another
    /// holder has the key by now).
    pub fn relet(&self, digest: u128, who: Holder) {
        lock(&self.held).entry(digest).or_insert(who);
    }

    /// The record of `digest` (`look`) if there is one, else the lease, waiting while another
    /// holder has it. With `force`, a record is not looked for (the caller found one it cannot
    /// use: another type, an outdated shape). Every [`CHECK_EVERY`] of waiting, `runs` is
    /// asked whether the holder still runs (a client stopped with SIGSTOP holds its lease
    /// but computes nothing); one that does not loses its leases.
    pub fn ask<T>(
        &self,
        digest: u128,
        who: Holder,
        force: bool,
        look: impl Fn() -> Option<T>,
        runs: impl Fn(Holder) -> bool,
    ) -> Asked<T> {
        let from = *lock(&self.granting_from);
        let mut held = lock(&self.held);
        let mut waited = false;
        loop {
            match held.get(&digest) {
                Some(holder) if *holder != who => {
                    let holder = *holder;
                    waited = true;
                    let (again, slept) = self
                        .released
                        .wait_timeout(held, CHECK_EVERY)
                        .unwrap_or_else(|e| e.into_inner());
                    held = again;
                    if slept.timed_out() && held.get(&digest) == Some(&holder) {
                        // Asked without the table's lock: a holder may give leases back.
                        drop(held);
                        let alive = runs(holder);
                        held = lock(&self.held);
                        if !alive {
                            held.retain(|_, h| *h != holder);
                            self.released.notify_all();
                        }
                    }
                }
                _ => match from.map(|t| t.saturating_duration_since(Instant::now())) {
                    // A new owner's grace: a holder may still give this key's lease again.
                    Some(left) if !left.is_zero() => {
                        held = self
                            .released
                            .wait_timeout(held, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    _ => break,
                },
            }
        }
        // After a wait, look even when forced: the holder may have stored a usable value.
        if !force || waited {
            if let Some(found) = look() {
                return Asked::Found(found);
            }
        }
        held.insert(digest, who);
        Asked::Granted
    }

    /// Gives back `who`'s lease on `digest`, if it holds it.
    pub fn release(&self, digest: u128, who: Holder) {
        let mut held = lock(&self.held);
        if held.get(&digest) == Some(&who) {
            held.remove(&digest);
            self.released.notify_all();
        }
    }

    /// Gives back every lease of a client whose connection ended.
    pub fn release_all(&self, who: Holder) {
        let mut held = lock(&self.held);
        let before = held.len();
        held.retain(|_, holder| *holder != who);
        if held.len() != before {
            self.released.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_waiter_gets_the_record_its_holder_stored_or_the_lease_if_none() {
        let leases = Arc::new(Leases::default());
        assert!(matches!(
            leases.ask(1, Holder::Client(1), false, || None::<()>, |_| true),
            Asked::Granted
        ));
        let stored = Arc::new(Mutex::new(None));
        let waiter = {
            let (leases, stored) = (leases.clone(), stored.clone());
            std::thread::spawn(move || {
                matches!(
                    leases.ask(1, Holder::Client(2), false, || *lock(&stored), |_| true),
                    Asked::Found(7)
                )
            })
        };
        *lock(&stored) = Some(7);
        leases.release(1, Holder::Client(1));
        assert!(waiter.join().unwrap());

        // A holder that dies: its leases go, and the next asker gets the lease.
        assert!(matches!(
            leases.ask(2, Holder::Client(3), false, || None::<()>, |_| true),
            Asked::Granted
        ));
        leases.release_all(Holder::Client(3));
        assert!(matches!(
            leases.ask(2, Holder::Owner, false, || None::<()>, |_| true),
            Asked::Granted
        ));
    }
}
