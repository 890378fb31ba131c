//! One computation per missing key: the first caller runs it, the others wait for its result.
//!
//! Three rules beyond that:
//! - A write to the key (insert, remove) detaches its running flight: a caller that starts
//!   after the write returned never gets a result that began before it.
//! - A flight remembers the generations (tags, namespace, cache-wide) current when it began.
//!   A caller that arrives after one of them was bumped (an invalidation returned before it
//!   started) does not join: it starts a new flight. The old leader's result then goes only to
//!   the callers that were already waiting.
//! - Waiting never deadlocks. Each read-through call is a node of a process-wide wait graph
//!   (across every cache: a cycle may pass through two), with two kinds of edges: a call
//!   waits for the call leading a flight, and a call leading a flight depends on the calls its
//!   computation makes (nested calls, on its thread or its task). Before a call waits, the
//!   graph is searched from the flight's leader; if this call is reachable (a computation
//!   asking for its own key, directly or through other computations, threads or tasks), the
//!   wait would never end and is refused with [`Error::Deadlock`]. Two calls of one
//!   computation that run concurrently (`join!`) are siblings, not a cycle.
//!
//! Blocking threads and async tasks share one flight per key and one graph; `engine/runner.rs`
//! says how a call finds the computation it runs in.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::disk::lock;
use crate::error::Error;
use crate::generations::Generations;

type Shared = Arc<dyn Any + Send + Sync>;

/// One read-through call: a node of the wait graph.
/// Ids grow: a call made inside a computation is newer than the call that leads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Actor(u64);

impl Actor {
    /// A new call, never equal to another.
    pub fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Actor(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A call made inside the computation of `parent`: an edge of the wait graph for as long as
/// it lives (see the module's docs).
pub(crate) struct Nested(Actor);

impl Nested {
    pub fn enter(me: Actor, parent: Option<Actor>) -> Option<Nested> {
        let parent = parent?;
        lock(graph()).parents.insert(me, parent);
        Some(Nested(me))
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        lock(graph()).parents.remove(&self.0);
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

/// An edge "`me` waits for this flight" in the wait graph, removed when dropped.
struct Waiting(Actor);

impl Waiting {
    /// Enters the wait graph, unless waiting would close a cycle. `None` if the flight has
    /// already ended (no wait, no cycle).
    fn enter(flight: &Arc<Flight>, me: Actor) -> Result<Option<Waiting>, Error> {
        if !flight.running() {
            return Ok(None);
        }
        let mut graph = lock(graph());
        if graph.reaches(flight.leader, me) {
            return Err(Error::Deadlock);
        }
        graph.waits.insert(me, flight.clone());
        Ok(Some(Waiting(me)))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        lock(graph()).waits.remove(&self.0);
    }
}

/// The wait graph of every cache of the process.
#[derive(Default)]
struct Graph {
    /// The flight each waiting call waits for.
    waits: HashMap<Actor, Arc<Flight>>,
    /// The computation each nested call is made in.
    parents: HashMap<Actor, Actor>,
}

impl Graph {
    /// Whether `from` cannot end before `to` does: a path of "leads a computation that made
    /// the call" and "waits for the flight led by" edges.
    fn reaches(&self, from: Actor, to: Actor) -> bool {
        let mut seen = HashSet::new();
        let mut next = vec![from];
        while let Some(call) = next.pop() {
            if call == to {
                return true;
            }
            if !seen.insert(call) {
                continue;
            }
            if let Some(flight) = self.waits.get(&call).filter(|f| f.running()) {
                next.push(flight.leader);
            }
            next.extend(
                self.parents
                    .iter()
                    .filter(|(_, parent)| **parent == call)
                    .map(|(child, _)| *child),
            );
        }
        false
    }
}

fn graph() -> &'static Mutex<Graph> {
    static GRAPH: OnceLock<Mutex<Graph>> = OnceLock::new();
    GRAPH.get_or_init(Default::default)
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

    const ME: Actor = Actor(0);

    fn leader<'a>(flights: &'a Flights, gens: &Generations, d: u128) -> Leader<'a> {
        match flights.join(d, gens.stamp(&[1]), gens, ME) {
            Role::Leader(l) => l,
            Role::Follower(_) => panic!("expected to lead"),
        }
    }

    fn follower(flights: &Flights, gens: &Generations, d: u128) -> Arc<Flight> {
        match flights.join(d, gens.stamp(&[1]), gens, ME) {
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
        let old2 = match flights.join(2, gens.stamp(&[crate::generations::id(&label)]), &gens, ME) {
            Role::Leader(l) => l,
            Role::Follower(_) => unreachable!(),
        };
        gens.bump(&label);
        let new = match flights.join(2, Vec::new(), &gens, ME) {
            Role::Leader(l) => l,
            Role::Follower(_) => panic!("joined a flight begun before the invalidation"),
        };
        // The old leader finishing must not unregister the new flight.
        old2.complete(Arc::new(1u8));
        assert!(matches!(
            flights.join(2, Vec::new(), &gens, ME),
            Role::Follower(_)
        ));
        drop((new, old));
    }

    #[test]
    fn waiting_for_a_flight_this_thread_leads_is_refused() {
        let (flights, gens) = (Flights::default(), Generations::default());
        let _l = leader(&flights, &gens, 9);
        let f = follower(&flights, &gens, 9);
        assert!(matches!(f.wait(ME), Err(Error::Deadlock)));
    }
}
