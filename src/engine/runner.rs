//! How a read-through waits and where its disk work runs: the one thing that differs between
//! blocking callers and async ones. The read-through itself (`through.rs`) is written once, as
//! an `async fn` generic over a [`Runner`]; blocking callers run it with [`block_on`], where
//! every step completes at once.

use std::future::{ready, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::error::Result;
use crate::flight::{Actor, Flight};

type Shared = Arc<dyn std::any::Any + Send + Sync>;

pub(crate) trait Runner {
    /// The caller: its thread, or its task.
    fn actor() -> Actor;

    /// Disk work (a read, a store): inline for a blocking caller, off the executor for an
    /// async one.
    fn blocking<T, W>(work: W) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static;

    /// Waits for another caller's computation: its value, or `None` if it failed.
    fn wait(flight: Arc<Flight>, me: Actor) -> impl Future<Output = Result<Option<Shared>>> + Send;

    /// Runs the leader's computation, so that a read-through it makes is known to come from
    /// `me` (a computation asking for its own key is then refused, not left waiting forever).
    fn lead<F: Future>(me: Actor, computation: F) -> impl Future<Output = F::Output>;
}

/// Blocking callers: each step completes when it returns.
pub(crate) struct Blocking;

impl Runner for Blocking {
    fn actor() -> Actor {
        // A blocking call made inside an async computation belongs to that computation.
        #[cfg(feature = "tokio")]
        if let Some(me) = tokio_runner::current() {
            return me;
        }
        Actor::thread()
    }

    fn blocking<T, W>(work: W) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        ready(Ok(work()))
    }

    fn wait(flight: Arc<Flight>, me: Actor) -> impl Future<Output = Result<Option<Shared>>> + Send {
        ready(flight.wait(me))
    }

    fn lead<F: Future>(_me: Actor, computation: F) -> impl Future<Output = F::Output> {
        computation
    }
}

/// Runs a future whose steps complete at once (a read-through with [`Blocking`]) on the
/// calling thread. Should a step ever be pending, the thread sleeps until it is woken.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    }
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    })
}

#[cfg(feature = "tokio")]
pub(crate) use tokio_runner::Tokio;

#[cfg(feature = "tokio")]
mod tokio_runner {
    use super::*;
    use crate::error::Error;

    tokio::task_local! {
        /// The actor of the computation this task runs for a read-through, if any.
        static LEADER: Actor;
    }

    pub fn current() -> Option<Actor> {
        LEADER.try_with(|me| *me).ok()
    }

    /// Async callers on tokio: disk work on its blocking pool.
    pub(crate) struct Tokio;

    impl Runner for Tokio {
        fn actor() -> Actor {
            // Inside a computation: that computation. Otherwise a task that leads nothing
            // yet; a fresh actor (its thread may run other tasks meanwhile).
            current().unwrap_or_else(Actor::fresh)
        }

        async fn blocking<T, W>(work: W) -> Result<T>
        where
            T: Send + 'static,
            W: FnOnce() -> T + Send + 'static,
        {
            // Outside a runtime there is no executor to keep free: run it here.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return Ok(work());
            };
            match runtime.spawn_blocking(work).await {
                Ok(out) => Ok(out),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(Error::Internal(
                    "the tokio runtime shut down before the cache's disk work ran".into(),
                )),
            }
        }

        async fn wait(flight: Arc<Flight>, me: Actor) -> Result<Option<Shared>> {
            Ok(flight.wait_async(me)?.await)
        }

        fn lead<F: Future>(me: Actor, computation: F) -> impl Future<Output = F::Output> {
            LEADER.scope(me, computation)
        }
    }
}
