//! Memoized `async fn`s: [`Memoized::call_async`] and kin (feature `tokio`), over the same
//! call as the blocking ones (`Memoized::run`).

use std::future::Future;

use serde::{de::DeserializeOwned, Serialize};

use super::{no_refresh, MemoKey, Memoized};
use crate::cache::Cache;
use crate::engine::runner::Tokio;
use crate::options::Options;

impl Memoized {
    /// [`call`](Memoized::call) for an `async fn` (feature `tokio`): `f` gives the future of
    /// the function's body, which runs on the calling task; disk work runs off the executor.
    pub async fn call_async<V, F, Fut>(
        &self,
        cache: &Cache,
        options: &Options,
        key: MemoKey,
        f: F,
    ) -> V
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let f = || async { Ok::<V, std::convert::Infallible>(f().await) };
        match self
            .run::<Tokio, _, _, _, _, _>(cache, options, key, f, no_refresh)
            .await
        {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// [`call_result`](Memoized::call_result) for an `async fn` (feature `tokio`).
    ///
    /// # Errors
    /// The function's own error.
    pub async fn call_result_async<V, E, F, Fut>(
        &self,
        cache: &Cache,
        options: &Options,
        key: MemoKey,
        f: F,
    ) -> std::result::Result<V, E>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
    {
        self.run::<Tokio, _, _, _, _, _>(cache, options, key, f, no_refresh)
            .await
    }

    /// [`call_option`](Memoized::call_option) for an `async fn` (feature `tokio`).
    pub async fn call_option_async<V, F, Fut>(
        &self,
        cache: &Cache,
        options: &Options,
        key: MemoKey,
        f: F,
    ) -> Option<V>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<V>>,
    {
        let f = || async { f().await.ok_or(()) };
        self.run::<Tokio, _, _, _, _, _>(cache, options, key, f, no_refresh)
            .await
            .ok()
    }
}
