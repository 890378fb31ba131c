//! One computation per missing key: the first caller runs it, the others wait for its result.
//!
//! Three rules beyond that:
//! - A write to the key (insert, remove) detaches its running flight: a caller that starts
//!   after the write returned never gets a result that began before it.
//! - A flight remembers the generations (tags, namespace, cache-wide) current when it began.
//!   A caller that arrives after one of them was bumped (an invalidation returned before it
//!   started) does not join: it starts a new flight. The old leader's result then goes only to
//!   the callers that were already waiting.
//! - Waiting never deadlocks. Before a caller waits for a flight, it follows the chain "the
//!   leader of that flight waits for the flight of …" in a process-wide wait graph; if the chain
//!   comes back to this caller (a computation asking for its own key, or two computations asking
//!   for each other's keys), the wait is refused with [`Error::Deadlock`].
//!
//! Callers are [`Actor`]s, not threads: a blocking caller is its thread, an async caller its
//! task (see `engine/runner.rs`), so that blocking threads and async tasks share one flight
//! per key and one wait graph.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::disk::lock;
use crate::error::Error;
use crate::generations::Generations;

type Shared = Arc<dyn Any + Send + Sync>;

/// Who waits or leads: a thread for blocking callers, a task for async ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Actor(u64);

impl Actor {
    /// A new actor, never equal to another.
    pub fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Actor(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The calling thread.
    pub fn thread() -> Self {
        thread_local! {
            static ME: Actor = Actor::fresh();
        }
        ME.with(|me| *me)
    }
}

enum State {
    /// Running, with the async callers to wake when it ends.
    Running(Vec<Waker>),
    Done(Shared),
    Failed,
}

pub(crate) struct Flight {
    state: Mutex<State>,
    changed: Condvar,
    /// The caller running the computation.
    leader: Actor,
    /// The generations current when the computation began.
    pub stamp: Vec<(u64, u64)>,
}

impl Flight {
    fn running(&self) -> bool {
        matches!(*lock(&self.state), State::Running(_))
    }

    /// The outcome if the flight has ended: its value, or `None` if it failed (or panicked).
    fn outcome(state: &State) -> Option<Option<Shared>> {
        match state {
            State::Running(_) => None,
            State::Done(v) => Some(Some(v.clone())),
            State::Failed => Some(None),
        }
    }

    /// Blocks the thread until the leader ends: its value, or `None` if it failed.
    ///
    /// # Errors
    /// [`Error::Deadlock`] if the leader waits, directly or through other callers, for `me`.
    pub fn wait(self: &Arc<Self>, me: Actor) -> Result<Option<Shared>, Error> {
        let _waiting = Waiting::enter(self, me)?;
        let mut state = lock(&self.state);
        loop {
            if let Some(outcome) = Self::outcome(&state) {
                return Ok(outcome);
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`wait`](Flight::wait) without blocking: a future that ends with the leader.
    ///
    /// # Errors
    /// As [`wait`](Flight::wait).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub fn wait_async(self: &Arc<Self>, me: Actor) -> Result<FlightEnd, Error> {
        Ok(FlightEnd {
            flight: self.clone(),
            _waiting: Waiting::enter(self, me)?,
        })
    }
}

/// The future of [`Flight::wait_async`]; dropping it (a cancelled task) leaves the wait graph.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) struct FlightEnd {
    flight: Arc<Flight>,
    _waiting: Option<Waiting>,
}

impl Future for FlightEnd {
    type Output = Option<Shared>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.flight.state);
        if let Some(outcome) = Flight::outcome(&state) {
            return Poll::Ready(outcome);
        }
        if let State::Running(wakers) = &mut *state {
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

/// An entry "`me` waits for this flight" in the wait graph, removed when dropped.
struct Waiting(Actor);

impl Waiting {
    /// Enters the wait graph, unless waiting would close a cycle. `None` if the flight has
    /// already ended (no wait, no cycle).
    fn enter(flight: &Arc<Flight>, me: Actor) -> Result<Option<Waiting>, Error> {
        if !flight.running() {
            return Ok(None);
        }
        let mut waits = lock(waits());
        let mut leader = flight.leader;
        // Each step moves to the leader of a running flight; a chain longer than the number
        // of waiting callers would have to repeat one, so it ends.
        for _ in 0..=waits.len() {
            if leader == me {
                return Err(Error::Deadlock);
            }
            match waits.get(&leader).filter(|f| f.running()) {
                Some(next) => leader = next.leader,
                None => break,
            }
        }
        waits.insert(me, flight.clone());
        Ok(Some(Waiting(me)))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        lock(waits()).remove(&self.0);
    }
}

/// Which flight each waiting caller waits for, across every cache of the process (a cycle may
/// pass through two caches).
fn waits() -> &'static Mutex<HashMap<Actor, Arc<Flight>>> {
    static WAITS: OnceLock<Mutex<HashMap<Actor, Arc<Flight>>>> = OnceLock::new();
    WAITS.get_or_init(Default::default)
}

#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<u128, Arc<Flight>>>,
    /// `running.len()`, readable without the lock: writes skip it when nothing runs.
    count: std::sync::atomic::AtomicUsize,
}

pub(crate) enum Role<'a> {
    /// Run the computation, then call [`Leader::complete`]; dropping the guard marks it failed.
    Leader(Leader<'a>),
    /// Someone else runs it: [`Flight::wait`].
    Follower(Arc<Flight>),
}

impl Flights {
    /// Joins the flight for `digest` if one is running under current generations, else starts
    /// one stamped with `stamp` (the generations the caller's entry would be written under).
    pub fn join(
        &self,
        digest: u128,
        stamp: Vec<(u64, u64)>,
        gens: &Generations,
        me: Actor,
    ) -> Role<'_> {
        let mut running = lock(&self.running);
        if let Some(flight) = running.get(&digest) {
            if gens.is_current(flight.stamp.iter().copied()) {
                return Role::Follower(flight.clone());
            }
            // Begun before an invalidation this caller saw return: not this caller's value.
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Running(Vec::new())),
            changed: Condvar::new(),
            leader: me,
            stamp,
        });
        running.insert(digest, flight.clone());
        self.count.store(running.len(), Ordering::Release);
        Role::Leader(Leader {
            flights: self,
            digest,
            flight,
        })
    }
}

impl Flights {
    /// A write to the key (an insert, a remove) landed: the running flight's result, whatever
    /// it is, began before that write, so callers arriving after it must not join it. Callers
    /// already waiting still get it. Call under the key's stripe lock.
    pub fn detach(&self, digest: u128) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut running = lock(&self.running);
        running.remove(&digest);
        self.count.store(running.len(), Ordering::Release);
    }
}

pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    digest: u128,
    pub flight: Arc<Flight>,
}

impl Leader<'_> {
    pub fn complete(self, value: Shared) {
        self.finish(State::Done(value));
    }

    fn finish(&self, outcome: State) {
        {
            let mut running = lock(&self.flights.running);
            // A newer flight may have replaced this one (after an invalidation): leave it.
            if running
                .get(&self.digest)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                running.remove(&self.digest);
                self.flights.count.store(running.len(), Ordering::Release);
            }
        }
        let before = std::mem::replace(&mut *lock(&self.flight.state), outcome);
        self.flight.changed.notify_all();
        if let State::Running(wakers) = before {
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if self.flight.running() {
            self.finish(State::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader<'a>(flights: &'a Flights, gens: &Generations, d: u128) -> Leader<'a> {
        match flights.join(d, gens.stamp(&[1]), gens, Actor::thread()) {
            Role::Leader(l) => l,
            Role::Follower(_) => panic!("expected to lead"),
        }
    }

    fn follower(flights: &Flights, gens: &Generations, d: u128) -> Arc<Flight> {
        match flights.join(d, gens.stamp(&[1]), gens, Actor::thread()) {
            Role::Follower(f) => f,
            Role::Leader(_) => panic!("expected to follow"),
        }
    }

    #[test]
    fn followers_see_the_leaders_value_or_failure() {
        let (flights, gens) = (Flights::default(), Generations::default());
        let l = leader(&flights, &gens, 1);
        let f = std::thread::scope(|s| {
            let f = follower(&flights, &gens, 1);
            let waiter = s.spawn(move || f.wait(Actor::fresh()).unwrap());
            l.complete(Arc::new(5u8));
            waiter.join().unwrap()
        });
        assert_eq!(f.unwrap().downcast::<u8>().unwrap().as_ref(), &5);

        let l = leader(&flights, &gens, 1);
        let f = follower(&flights, &gens, 1);
        drop(l);
        assert!(f.wait(Actor::fresh()).unwrap().is_none());
    }

    #[test]
    fn a_caller_after_an_invalidation_does_not_join_an_older_flight() {
        let (flights, gens) = (Flights::default(), Generations::default());
        let old = leader(&flights, &gens, 1);
        let label = crate::generations::tag_label("t");
        // The flight's stamp covers id 1; bump a label with that id.
        let gens = Generations::load([(label.clone(), 0)]);
        let old2 = match flights.join(
            2,
            gens.stamp(&[crate::generations::id(&label)]),
            &gens,
            Actor::thread(),
        ) {
            Role::Leader(l) => l,
            Role::Follower(_) => unreachable!(),
        };
        gens.bump(&label);
        let new = match flights.join(2, Vec::new(), &gens, Actor::thread()) {
            Role::Leader(l) => l,
            Role::Follower(_) => panic!("joined a flight begun before the invalidation"),
        };
        // The old leader finishing must not unregister the new flight.
        old2.complete(Arc::new(1u8));
        assert!(matches!(
            flights.join(2, Vec::new(), &gens, Actor::thread()),
            Role::Follower(_)
        ));
        drop((new, old));
    }

    #[test]
    fn waiting_for_a_flight_this_thread_leads_is_refused() {
        let (flights, gens) = (Flights::default(), Generations::default());
        let _l = leader(&flights, &gens, 9);
        let f = follower(&flights, &gens, 9);
        assert!(matches!(f.wait(Actor::thread()), Err(Error::Deadlock)));
    }
}
