//! Read-through: the value for a key, computed at most once across concurrent callers,
//! blocking threads and async tasks alike. Written once, generic over a [`Runner`] (which says
//! how to wait and where disk work runs); see `runner.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::runner::{self, block_on, Blocking, Runner};
use super::write::IfCurrent;
use super::{Inner, Scope};
use crate::error::{Error, Result};
use crate::flight::{Actor, Nested, Role};
use crate::key::{encode_key, EncodedKey};
use crate::options::Options;
use crate::stats::Counters;
use crate::tiers::{Lease, LeaseGuard};

impl Inner {
    /// Read-through for a blocking caller.
    pub fn get_or_try_insert<K, V, E, F>(
        self: &Arc<Self>,
        scope: &Scope,
        key: &K,
        opts: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Result<V, E>,
    {
        let ek = encode_key(&scope.name, key)?;
        self.get_or_try_insert_encoded(scope, ek, opts, f)
    }

    /// [`get_or_try_insert`](Inner::get_or_try_insert) for a key encoded beforehand.
    pub fn get_or_try_insert_encoded<V, E, F>(
        self: &Arc<Self>,
        scope: &Scope,
        ek: EncodedKey,
        opts: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Result<V, E>,
    {
        // A hit needs no machinery.
        if let Some(v) = self.lookup::<V>(&scope.name, &ek) {
            return Ok(v);
        }
        self.compute_blocking(scope, ek, opts, f)
    }

    /// The rest of a blocking read-through once `ek` missed: see
    /// [`compute_missing`](Inner::compute_missing).
    pub(super) fn compute_blocking<V, E, F>(
        self: &Arc<Self>,
        scope: &Scope,
        ek: EncodedKey,
        opts: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Result<V, E>,
    {
        block_on(
            self.compute_missing::<Blocking, _, _, _, _>(scope, ek, opts, || {
                std::future::ready(f())
            }),
        )
    }

    /// Both tiers, as the runner `R` reads: the memory tier here, the disk where `R` puts
    /// disk work. Counts hits, not misses.
    pub(crate) async fn find<R, V>(
        self: &Arc<Self>,
        scope: &Scope,
        ek: &EncodedKey,
    ) -> Option<Arc<V>>
    where
        R: Runner,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        if let Some(answer) = self.memory_answer::<V>(&scope.name, ek) {
            return answer;
        }
        let (inner, name, ek) = (self.clone(), scope.name.clone(), ek.clone());
        match R::blocking(move || inner.lookup::<V>(&name, &ek)).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cache read failed; counted as a miss");
                None
            }
        }
    }

    /// The rest of a read-through once `ek` missed: join the key's flight or lead it. The
    /// computation `f` runs on the caller's side (a closure's thread, an async task); reads
    /// and the store go where `R` puts disk work.
    pub(crate) async fn compute_missing<R, V, E, F, Fut>(
        self: &Arc<Self>,
        scope: &Scope,
        ek: EncodedKey,
        opts: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        R: Runner,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        Counters::bump(&self.counters.misses);
        let opts = opts.merged(&self.defaults);
        // This call, as a node of the wait graph (see `flight.rs`).
        let me = Actor::fresh();
        let _nested = Nested::enter(me, runner::parent());
        loop {
            // Stamped before computing: an invalidation during `f` makes its result stale,
            // and a caller arriving after one does not join this flight.
            let stamp = self.stamp(scope, &opts);
            let leader = match self.flights.join(ek.digest, stamp, &self.gens, me) {
                Role::Leader(leader) => leader,
                Role::Follower(flight) => {
                    let shared = R::wait(flight, me).await?;
                    if let Some(v) = shared.and_then(|v| v.downcast::<V>().ok()) {
                        return Ok(v);
                    }
                    // The leader failed (or computed another type): try again, perhaps as
                    // the leader.
                    if let Some(v) = self.find::<R, V>(scope, &ek).await {
                        return Ok(v);
                    }
                    continue;
                }
            };
            // Another leader may have finished between our miss and `join`.
            if let Some(v) = self.find::<R, V>(scope, &ek).await {
                leader.complete(v.clone());
                return Ok(v);
            }
            // Across processes: the key's lease, or the value another process stored since.
            let _lease = match self.lease::<R, V>(scope, &ek).await {
                Leased::Found(v) => {
                    leader.complete(v.clone());
                    return Ok(v);
                }
                // Given back once the value is stored (or the computation failed).
                Leased::Held(guard) => guard,
            };
            // A failure or a cancelled task drops `leader`: a waiting caller takes over.
            let v = Arc::new(R::lead(me, f).await?);
            let (inner, stamp, value) = (self.clone(), leader.flight.stamp.clone(), v.clone());
            let (ek, opts) = (ek.clone(), opts.clone());
            // A caller cancelled while its store waits on the blocking pool has returned:
            // the store must not land after the writes that follow (see `write.rs`).
            let ended = CallEnded::default();
            let if_current = IfCurrent::Check(Some(ended.0.clone()));
            let stored =
                R::blocking(move || inner.store(ek, value, &opts, stamp, if_current)).await;
            drop(ended);
            if let Err(e) = stored.and_then(|r| r) {
                tracing::warn!(error = %e, "computed value could not be cached; returning it anyway");
            }
            leader.complete(v.clone());
            return Ok(v);
        }
    }
}

/// What asking for a key's lease across processes gave.
enum Leased<V> {
    /// Another process stored the value meanwhile.
    Found(Arc<V>),
    /// This call computes; `None` without a disk tier, or if the owner could not be asked
    /// (logged: the call then computes without one).
    Held(Option<LeaseGuard>),
}

impl Inner {
    /// The lease of `ek` across the processes of the folder: see `process/lease.rs`.
    async fn lease<R, V>(self: &Arc<Self>, scope: &Scope, ek: &EncodedKey) -> Leased<V>
    where
        R: Runner,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        if !self.lower.keeps_records() {
            return Leased::Held(None);
        }
        // After a record this call cannot use (another type, an outdated shape), the lease
        // is asked for without looking for one.
        let mut force = false;
        loop {
            // Noted before the record is read: see `ordering.rs`.
            let version = self.stripes.version(ek.digest);
            let (inner, digest) = (self.clone(), ek.digest);
            let asked = R::blocking(move || inner.lower.lease(digest, force)).await;
            let stored = match asked {
                Ok(Ok(Lease::Granted(guard))) => return Leased::Held(Some(guard)),
                Ok(Ok(Lease::Found(stored))) => stored,
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(error = %e, "could not ask other processes for the key; computing it here");
                    return Leased::Held(None);
                }
            };
            let (inner, name, key) = (self.clone(), scope.name.clone(), ek.clone());
            let found =
                R::blocking(move || inner.lookup_stored::<V>(&name, &key, version, stored)).await;
            match found {
                Ok(Some(v)) => return Leased::Found(v),
                Ok(None) => force = true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the key; computing it here");
                    return Leased::Held(None);
                }
            }
        }
    }
}

/// Set when dropped: the read-through call is over, returned or cancelled. A store still
/// waiting to run then does nothing.
#[derive(Default)]
struct CallEnded(Arc<AtomicBool>);

impl Drop for CallEnded {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}
