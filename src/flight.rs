//! One computation per missing key: the first caller runs it, the others wait for its result.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use crate::disk::lock;

type Shared = Arc<dyn Any + Send + Sync>;

enum State {
    Running,
    Done(Shared),
    Failed,
}

pub(crate) struct Flight {
    state: Mutex<State>,
    changed: Condvar,
}

impl Flight {
    /// Waits for the leader: its value, or `None` if it failed (or panicked).
    pub fn wait(&self) -> Option<Shared> {
        let mut state = lock(&self.state);
        loop {
            match &*state {
                State::Running => {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                State::Done(v) => return Some(v.clone()),
                State::Failed => return None,
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<u128, Arc<Flight>>>,
}

pub(crate) enum Role<'a> {
    /// Run the computation, then call [`Leader::complete`]; dropping the guard marks it failed.
    Leader(Leader<'a>),
    /// Someone else runs it: [`Flight::wait`].
    Follower(Arc<Flight>),
}

impl Flights {
    pub fn join(&self, digest: u128) -> Role<'_> {
        let mut running = lock(&self.running);
        if let Some(flight) = running.get(&digest) {
            return Role::Follower(flight.clone());
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Running),
            changed: Condvar::new(),
        });
        running.insert(digest, flight.clone());
        Role::Leader(Leader {
            flights: self,
            digest,
            flight,
        })
    }
}

pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    digest: u128,
    flight: Arc<Flight>,
}

impl Leader<'_> {
    pub fn complete(self, value: Shared) {
        self.finish(State::Done(value));
    }

    fn finish(&self, outcome: State) {
        lock(&self.flights.running).remove(&self.digest);
        *lock(&self.flight.state) = outcome;
        self.flight.changed.notify_all();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let running = matches!(*lock(&self.flight.state), State::Running);
        if running {
            self.finish(State::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_see_the_leaders_value_or_failure() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join(1) else {
            panic!("first caller leads")
        };
        let Role::Follower(f) = flights.join(1) else {
            panic!("second caller follows")
        };
        leader.complete(Arc::new(5u8));
        assert_eq!(f.wait().unwrap().downcast::<u8>().unwrap().as_ref(), &5);

        let Role::Leader(leader) = flights.join(1) else {
            panic!("the key is free again")
        };
        let Role::Follower(f) = flights.join(1) else {
            panic!("follows")
        };
        drop(leader);
        assert!(f.wait().is_none());
    }
}
