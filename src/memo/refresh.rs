//! Memoized calls with refresh ahead (`#[memoize(refresh = "1m")]`): [`Memoized::call_refresh`]
//! and kin, over the same call as [`Memoized::call`] (`Memoized::run`: the version check, the
//! figures, the key), whose computation, on a hit that is due, goes to the engine's refresh
//! (see `engine/refresh.rs`) instead of being dropped.

use std::future::ready;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Failed, MemoKey, Memoized, NoneReturned};
use crate::cache::Cache;
use crate::engine::runner::{block_on, Blocking};
use crate::options::Options;

impl Memoized {
    /// [`call`](Memoized::call) with refresh ahead: with
    /// [`Options::refresh_after`] (in `options` or the cache's defaults), a call that finds a
    /// value older than that, not expired, returns it at once and runs `f` on a background
    /// thread, once per key across threads and processes; the new value replaces the old when
    /// ready. `f` must be able to run later on another thread: `Send` and `'static` (the
    /// arguments move into it; the key is encoded before). A panic in a background `f` is
    /// counted in `Stats::refresh_failures` and logged, and the older value stays until its
    /// deadline.
    ///
    /// A background run counts in neither the function's hits nor its misses (the call it
    /// came from counted a hit); the cache counts it in `Stats::refreshes`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tiered::{Cache, Memoized, Options};
    ///
    /// static PRICE: Memoized = Memoized::new("docs::price", 1);
    ///
    /// fn price(cache: &Cache, region: String) -> f64 {
    ///     let opts = Options::new()
    ///         .ttl(Duration::from_secs(3600))
    ///         .refresh_after(Duration::from_secs(300));
    ///     let key = PRICE.key(&(&region,));
    ///     // A slow query in real life, rerun in the background once the value is 5 minutes old.
    ///     PRICE.call_refresh(cache, &opts, key, move || if region == "eu" { 1.5 } else { 2.5 })
    /// }
    ///
    /// let cache = Cache::in_memory();
    /// assert_eq!(price(&cache, "eu".into()), 1.5);
    /// ```
    pub fn call_refresh<V, F>(&self, cache: &Cache, options: &Options, key: MemoKey, f: F) -> V
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> V + Send + 'static,
    {
        let f = move || Ok::<V, std::convert::Infallible>(f());
        match self.call_result_refresh(cache, options, key, f) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// [`call_result`](Memoized::call_result) with refresh ahead (see
    /// [`call_refresh`](Memoized::call_refresh)): only `Ok` is cached. An `Err` of the call's
    /// own run is returned; one of a background run is counted in `Stats::refresh_failures`
    /// and logged (with its type's name: `E` need not be `Display`), and the older value
    /// stays until its deadline.
    ///
    /// # Errors
    /// The function's own error, when the call ran it.
    pub fn call_result_refresh<V, E, F>(
        &self,
        cache: &Cache,
        options: &Options,
        key: MemoKey,
        f: F,
    ) -> std::result::Result<V, E>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> std::result::Result<V, E> + Send + 'static,
    {
        let computation = move || ready(f());
        block_on(self.run::<Blocking, _, _, _, _, _>(
            cache,
            options,
            key,
            computation,
            |computation, inner, scope, ek, options| {
                let background = move || computation().into_inner().map_err(Failed::User);
                inner.refresh_hit(scope, ek, options, background);
            },
        ))
    }

    /// [`call_option`](Memoized::call_option) with refresh ahead (see
    /// [`call_refresh`](Memoized::call_refresh)): only `Some` is cached; a background run
    /// that gives `None` counts as a failed refresh, and the older value stays until its
    /// deadline.
    pub fn call_option_refresh<V, F>(
        &self,
        cache: &Cache,
        options: &Options,
        key: MemoKey,
        f: F,
    ) -> Option<V>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Option<V> + Send + 'static,
    {
        self.call_result_refresh(cache, options, key, move || f().ok_or(NoneReturned))
            .ok()
    }
}
