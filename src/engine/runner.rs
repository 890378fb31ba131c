//! How a read-through waits and where its disk work runs: the one thing that differs between
//! blocking callers and async ones. The read-through itself (`through.rs`) is written once, as
//! an `async fn` generic over a [`Runner`]; blocking callers run it with [`block_on`], where
//! every step completes at once.

use std::cell::Cell;
use std::future::{ready, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::error::Result;
use crate::flight::{Actor, Flight};

type Shared = Arc<dyn std::any::Any + Send + Sync>;

pub(crate) trait Runner {
    /// Disk work (a read, a store): inline for a blocking caller, off the executor for an
    /// async one.
    fn blocking<T, W>(work: W) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static;

    /// Waits for another caller's computation: its value, or `None` if it failed.
    fn wait(flight: Arc<Flight>, me: Actor) -> impl Future<Output = Result<Option<Shared>>> + Send;

    /// Runs the computation of the call `me`, so that the calls it makes (on its thread or
    /// task) are known to be made inside it: see [`parent`].
    fn lead<F, Fut>(me: Actor, computation: F) -> impl Future<Output = Fut::Output>
    where
        F: FnOnce() -> Fut,
        Fut: Future;
}

thread_local! {
    /// The call whose blocking computation this thread runs, if any.
    static COMPUTING: Cell<Option<Actor>> = const { Cell::new(None) };
}

/// The call whose computation the caller runs in, if any: that of its task (an async
/// computation) or that of its thread (a blocking computation, which may also drive an async
/// call with a `block_on`, or be called from an async computation). When both are set, one
/// computation runs inside the other, and the inner one is the newer call (the larger id).
pub(crate) fn parent() -> Option<Actor> {
    let thread = COMPUTING.with(Cell::get);
    #[cfg(feature = "tokio")]
    let thread = thread.max(tokio_runner::current());
    thread
}

/// Blocking callers: each step completes when it returns.
pub(crate) struct Blocking;

impl Runner for Blocking {
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

    async fn lead<F, Fut>(me: Actor, computation: F) -> Fut::Output
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        struct Restore(Option<Actor>);
        impl Drop for Restore {
            fn drop(&mut self) {
                COMPUTING.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(COMPUTING.with(|c| c.replace(Some(me))));
        computation().await
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

        fn lead<F, Fut>(me: Actor, computation: F) -> impl Future<Output = Fut::Output>
        where
            F: FnOnce() -> Fut,
            Fut: Future,
        {
            LEADER.scope(me, async move { computation().await })
        }
    }
}
