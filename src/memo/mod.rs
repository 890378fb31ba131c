//! Memoized functions: what `#[tiered::memoize]` expands to, usable by hand.
//!
//! A memoized function's entries live in a namespace named by the function's path; their key
//! is (code version, arguments). The first call of each version in a process on a cache
//! compares the version with the one the cache last saw for that function (a binding such as
//! Python's may run several versions in one process: an app file edited under a reloading
//! server) and, if it changed, clears the namespace
//! (one generation bump: the sweeper reclaims the old entries in both tiers, side files
//! included, and a close waits briefly for it), so that a dev loop's edits never pile up
//! entries of dead versions.

#[cfg(feature = "tokio")]
mod asynchronous;
pub mod check;
mod global;
mod refresh;

use std::collections::HashMap;
use std::future::{ready, Future};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::Cache;
use crate::disk::lock;
use crate::engine::runner::{block_on, Blocking, Runner};
use crate::engine::{Inner, Scope};
use crate::error::{Error, Result};
use crate::key::{encode_key_in, EncodedKey};
use crate::options::Options;

pub use global::{global, global_status, GlobalStatus};

/// The namespace where a cache keeps the code version of each memoized function it has seen.
pub(crate) const VERSIONS: &str = "tiered/memoize-versions";
/// In [`VERSIONS`], `(REPLACED, path)`: the version whose entries the last version change
/// dropped, for `explain` in later processes.
pub(crate) const REPLACED: &str = "replaced";
/// In [`VERSIONS`], `(CALL_FORM, path)`: the hidden part of the function's keys, in hex (the
/// latest form noted, one per function).
pub(crate) const CALL_FORM: &str = "call-form";

/// A memoized function: its path (the namespace of its entries) and its code version.
///
/// `#[tiered::memoize]` makes one for each function it marks; the methods below are what the
/// generated code calls, and what `my_fn::memo()` gives to code that wants to reach the
/// function's entries in a cache of its choice.
///
/// ```
/// use tiered::{Cache, Memoized, Options};
///
/// static SQUARE: Memoized = Memoized::new("docs::square", 1);
///
/// fn square(cache: &Cache, x: u64) -> u64 {
///     SQUARE.call(cache, &Options::new(), SQUARE.key(&(x,)), || x * x)
/// }
///
/// let cache = Cache::in_memory();
/// assert_eq!(square(&cache, 12), 144); // computed
/// assert_eq!(square(&cache, 12), 144); // from the cache
/// let stats = SQUARE.stats(&cache);
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memoized {
    path: &'static str,
    version: u64,
}

/// A memoized function's figures in one cache, since the cache was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoStats {
    /// Calls answered without running the function (from either tier, or by waiting for
    /// another caller's computation of the same arguments).
    pub hits: u64,
    /// Calls that ran the function.
    pub misses: u64,
}

/// The key of one call, encoded before the call (see [`Memoized::key`]).
#[derive(Debug)]
pub struct MemoKey {
    key: Result<EncodedKey>,
    keep: Keep,
}

/// Where a call's entry may be kept, whatever its options say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// As the options say.
    AsOptions,
    /// In memory only: the key holds something that means nothing to another process or
    /// build (a closure's type).
    MemoryOnly,
    /// Nowhere: the key cannot tell this call from others that may give another result (a
    /// function pointer's type). The function runs at each call.
    Nowhere,
}

impl Memoized {
    /// A memoized function at `path` (the namespace of its entries: keep it unique, such as
    /// `concat!(module_path!(), "::name")`) whose code is at `version`.
    pub const fn new(path: &'static str, version: u64) -> Self {
        Memoized { path, version }
    }

    /// The function's path: the namespace its entries live in.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The function's code version.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn scope(&self) -> Scope {
        Scope::new(self.path)
    }

    /// The key of a call with `args` (a tuple of the arguments that take part in the key).
    /// Encoded at once, so that the arguments can then move into the computation.
    pub fn key<A: Serialize + ?Sized>(&self, args: &A) -> MemoKey {
        self.key_kept(args, Keep::AsOptions)
    }

    pub(crate) fn key_kept<A: Serialize + ?Sized>(&self, args: &A, keep: Keep) -> MemoKey {
        let key = match keep {
            Keep::Nowhere => Err(Error::Internal("a key that is never stored".into())),
            _ => encode_key_in(Some(self.path), &(self.version, args)),
        };
        MemoKey { key, keep }
    }

    /// The value of the call with `key`: from the cache, else computed by `f` and stored.
    ///
    /// Never fails: if the cache cannot be used (a key that cannot be encoded, a computation
    /// that asks for its own key), `f` runs without it and a warning is logged once per
    /// function. Concurrent calls with one key run `f` once.
    pub fn call<V, F>(&self, cache: &Cache, options: &Options, key: MemoKey, f: F) -> V
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> V,
    {
        match self.call_result(cache, options, key, || {
            Ok::<V, std::convert::Infallible>(f())
        }) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// The value of the call with `key` if the memory tier holds it, counted as a hit; `None`
    /// (counting nothing) otherwise, and then [`call`](Memoized::call) gives the full answer.
    /// Never reads the disk or waits: for callers that must not block (an event loop, a
    /// binding holding a global lock).
    ///
    /// ```
    /// use tiered::{Cache, Memoized, Options};
    ///
    /// static DOUBLE: Memoized = Memoized::new("docs::double", 1);
    /// let cache = Cache::in_memory();
    /// assert_eq!(DOUBLE.get_from_memory::<u64>(&cache, &DOUBLE.key(&(4u64,))), None);
    /// DOUBLE.call(&cache, &Options::new(), DOUBLE.key(&(4u64,)), || 8u64);
    /// assert_eq!(DOUBLE.get_from_memory::<u64>(&cache, &DOUBLE.key(&(4u64,))), Some(8));
    /// ```
    pub fn get_from_memory<V>(&self, cache: &Cache, key: &MemoKey) -> Option<V>
    where
        V: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if key.keep == Keep::Nowhere {
            return None;
        }
        let ek = key.key.as_ref().ok()?;
        let state = cache.inner.memo.state(self.path);
        let v = cache.inner.memory_hit::<V>(&state.scope.name, ek)?;
        state.keep_version_noted(&cache.inner, self.path);
        state.count(false);
        Some(Arc::unwrap_or_clone(v))
    }

    /// Like [`call`](Memoized::call) for a function returning `Result`: only `Ok` is cached;
    /// an `Err` is returned and the next call runs the function again.
    ///
    /// # Errors
    /// The function's own error.
    pub fn call_result<V, E, F>(
        &self,
        cache: &Cache,
        options: &Options,
        key: MemoKey,
        f: F,
    ) -> std::result::Result<V, E>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> std::result::Result<V, E>,
    {
        block_on(self.run::<Blocking, _, _, _, _, _>(
            cache,
            options,
            key,
            || ready(f()),
            no_refresh,
        ))
    }

    /// A memoized call, for blocking and async callers alike (see `engine/runner.rs`). On a
    /// hit, the computation goes to `on_hit` ([`no_refresh`], or a refresh ahead).
    async fn run<R, V, E, F, Fut, H>(
        &self,
        cache: &Cache,
        options: &Options,
        key: MemoKey,
        f: F,
        on_hit: H,
    ) -> std::result::Result<V, E>
    where
        R: Runner,
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        H: FnOnce(F, &Arc<Inner>, &Scope, EncodedKey, &Options),
    {
        let state = self.prepare::<R>(cache).await;
        state.keep_version_noted(&cache.inner, self.path);
        let memory_only;
        let options = match key.keep {
            Keep::AsOptions => options,
            Keep::MemoryOnly => {
                memory_only = options.clone().memory_only();
                &memory_only
            }
            Keep::Nowhere => {
                state.count(true);
                return f().await;
            }
        };
        let mut f = Some(f);
        let mut ran = false;
        let outcome = match key.key {
            Ok(ek) => {
                let (inner, scope) = (&cache.inner, &state.scope);
                match inner.find::<R, V>(scope, &ek).await {
                    Some(v) => {
                        if let Some(f) = f.take() {
                            on_hit(f, inner, scope, ek, options);
                        }
                        Ok(v)
                    }
                    None => {
                        state.note_call_form(inner, self.path, &ek);
                        let computation = || {
                            ran = true;
                            let f = f.take();
                            async move {
                                match f {
                                    Some(f) => f().await.map_err(Failed::User),
                                    None => Err(Failed::Cache(Error::Internal("ran twice".into()))),
                                }
                            }
                        };
                        inner
                            .compute_missing::<R, _, _, _, _>(scope, ek, options, computation)
                            .await
                    }
                }
            }
            Err(e) => Err(Failed::Cache(e)),
        };
        // Without the cache (below), the function runs: a miss too.
        state.count(ran || matches!(outcome, Err(Failed::Cache(_))));
        match outcome {
            Ok(v) => Ok(Arc::unwrap_or_clone(v)),
            Err(Failed::User(e)) => Err(e),
            // The cache could not be used (the function has not run: an error after it ran
            // is logged by the engine, and its value returned): run it without the cache.
            Err(Failed::Cache(e)) => {
                state.warn_once(self.path, &e);
                match f.take() {
                    Some(f) => f().await,
                    None => unreachable_outcome(e),
                }
            }
        }
    }

    /// Like [`call`](Memoized::call) for a function returning `Option`, when `None` must not
    /// be cached (`#[memoize(cache_none = false)]`): a `None` is returned and the next call
    /// runs the function again.
    pub fn call_option<V, F>(
        &self,
        cache: &Cache,
        options: &Options,
        key: MemoKey,
        f: F,
    ) -> Option<V>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Option<V>,
    {
        self.call_result(cache, options, key, || f().ok_or(())).ok()
    }

    /// Drops every entry of this function in `cache` (both tiers; O(1), the space is
    /// reclaimed in the background).
    ///
    /// # Errors
    /// As [`Namespace::clear`](crate::Namespace::clear).
    pub fn clear(&self, cache: &Cache) -> Result<()> {
        cache.inner.clear_scope(&self.scope())
    }

    /// Drops the entry of one call; returns whether there was one.
    ///
    /// # Errors
    /// As [`Cache::remove`].
    pub fn remove(&self, cache: &Cache, key: MemoKey) -> Result<bool> {
        match key.keep {
            Keep::Nowhere => Ok(false),
            _ => cache.inner.remove_encoded(key.key?),
        }
    }

    /// Why the call with `key` would not be answered from `cache`, or that it would
    /// ([`Explanation::Hit`](crate::Explanation::Hit)): what [`Cache::explain`] says of the key, or
    /// [`Explanation::CodeChanged`](crate::Explanation::CodeChanged) when the cache held this same call under another version
    /// of the function's code (its entries are dropped at the next call, or were at this
    /// process's first). Changes nothing: no drop, no promotion, no read time, nothing counted.
    ///
    /// ```
    /// use tiered::{Cache, Explanation, Memoized, Options};
    ///
    /// static V1: Memoized = Memoized::new("docs::price", 1);
    /// static V2: Memoized = Memoized::new("docs::price", 2); // the code changed
    /// let cache = Cache::in_memory();
    /// assert_eq!(V1.explain::<u32>(&cache, &V1.key(&("eu",)))?, Explanation::NeverWritten);
    /// V1.call(&cache, &Options::new(), V1.key(&("eu",)), || 7u32);
    /// assert_eq!(V1.explain::<u32>(&cache, &V1.key(&("eu",)))?, Explanation::Hit);
    /// assert_eq!(V2.explain::<u32>(&cache, &V2.key(&("eu",)))?, Explanation::CodeChanged);
    /// assert_eq!(V2.explain::<u32>(&cache, &V2.key(&("us",)))?, Explanation::NeverWritten);
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] if the key could not be encoded.
    pub fn explain<V>(&self, cache: &Cache, key: &MemoKey) -> Result<crate::Explanation>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        use crate::explain::{Explanation, Invalidation};
        let ek = match (key.keep, &key.key) {
            // Never stored: nothing to explain but that it is not cached.
            (Keep::Nowhere, _) => return Ok(Explanation::NeverWritten),
            (_, Ok(ek)) => ek,
            (_, Err(e)) => {
                return Err(Error::Encode {
                    what: "key".into(),
                    detail: e.to_string(),
                })
            }
        };
        let inner = &cache.inner;
        let found = inner.explain_encoded::<V>(ek);
        // The version the cache holds now, if another: the version before this one (still
        // noted: the next call drops its entries), or that of another build sharing the
        // folder, whose first call dropped this one's.
        let noted = || {
            encode_key_in(Some(VERSIONS), self.path)
                .ok()
                .and_then(|nk| inner.read_quietly::<u64>(&nk))
                .filter(|v| *v != self.version)
        };
        if let Explanation::Invalidated {
            by: Invalidation::Namespace(ns),
        } = &found
        {
            if ns == self.path && noted().is_some() {
                return Ok(Explanation::CodeChanged);
            }
        }
        if found != Explanation::NeverWritten {
            return Ok(found);
        }
        // Or dropped by this process's first call, or by an earlier process's (its note).
        let noted = noted();
        let replaced_note = || {
            encode_key_in(Some(VERSIONS), &(REPLACED, self.path))
                .ok()
                .and_then(|nk| inner.read_quietly::<u64>(&nk))
                .filter(|v| *v != self.version)
        };
        let older = noted
            .or(*lock(&inner.memo.state(self.path).replaced))
            .or_else(replaced_note);
        let Some(old_key) = older.and_then(|older| self.at_version(ek, older)) else {
            return Ok(found);
        };
        let held_before = match inner.explain_encoded::<V>(&old_key) {
            Explanation::Hit => true,
            Explanation::Invalidated {
                by: Invalidation::Namespace(ns),
            } => ns == self.path,
            _ => false,
        };
        Ok(if held_before {
            Explanation::CodeChanged
        } else {
            found
        })
    }

    /// The key of the same call at another code version: a key is `(version, args)` in the
    /// function's namespace, and a tuple is encoded as a sequence, so the two differ only in
    /// the version's bytes after a common head.
    fn at_version(&self, ek: &EncodedKey, version: u64) -> Option<EncodedKey> {
        let head = |v: u64| -> Option<Vec<u8>> {
            let mut b = encode_key_in(Some(self.path), &(v,)).ok()?.bytes.to_vec();
            b.pop(); // the sequence's end
            Some(b)
        };
        let rest = ek.bytes.strip_prefix(&head(self.version)?[..])?;
        let mut bytes = head(version)?;
        bytes.extend_from_slice(rest);
        Some(EncodedKey::from_bytes(&bytes))
    }

    /// This function's hits and misses in `cache` since it was opened.
    pub fn stats(&self, cache: &Cache) -> MemoStats {
        let state = cache.inner.memo.state(self.path);
        MemoStats {
            hits: state.hits.load(Ordering::Relaxed),
            misses: state.misses.load(Ordering::Relaxed),
        }
    }

    /// The function's state in `cache`, after making sure, once per version, process and
    /// cache, that the entries of its other versions are gone (disk work: where `R` puts it).
    async fn prepare<R: Runner>(&self, cache: &Cache) -> Arc<FnState> {
        let state = cache.inner.memo.state(self.path);
        // Keys hold the version, so versions never read each other's entries; reclaiming
        // clears the function's namespace, which on a tier another build shares at the same
        // time would clear that build's entries at each first call of either.
        if cache.inner.lower.shared_by_builds() {
            return state;
        }
        if !lock(&state.checked).contains(&self.version) {
            let (memo, inner, state) = (*self, cache.inner.clone(), state.clone());
            let checked = R::blocking(move || {
                let _one_at_a_time = lock(&state.checking);
                if !lock(&state.checked).contains(&memo.version) {
                    // The cache's own bookkeeping: not counted in its figures.
                    crate::stats::uncounted(|| memo.reclaim_other_versions(&inner));
                    lock(&state.checked).push(memo.version);
                }
            });
            if let Err(e) = checked.await {
                tracing::warn!(function = self.path, error = %e, "could not check the code version");
            }
        }
        state
    }

    /// Clears the function's namespace if the cache last saw another version of it, and
    /// notes this one. No user code runs here.
    ///
    /// Across processes, one does it and the others wait for it: the check is a read-through
    /// of a note of its own (one computation per key across processes, by the folder's
    /// leases). Two first calls of a new version in two processes each clearing the namespace
    /// would make the second clear discard the first's value, computed meanwhile.
    fn reclaim_other_versions(&self, inner: &Arc<Inner>) {
        let versions = Scope::new(VERSIONS);
        let marker = ("checking", self.path, self.version);
        let mut checked_here = false;
        let check = inner.get_or_try_insert::<_, bool, Error, _>(
            &versions,
            &marker,
            &Options::new(),
            || {
                self.check_version(inner);
                checked_here = true;
                Ok(true)
            },
        );
        if let Err(e) = check {
            tracing::warn!(function = self.path, error = %e, "could not check the code version");
        }
        // The marker only makes concurrent first calls wait: once the version is noted, a
        // later check finds it and clears nothing. Gone, it leaves a later return of this
        // version (after another one) to clear that one's entries.
        if checked_here {
            let _ = inner.remove(&versions, &marker);
        }
    }

    /// [`reclaim_other_versions`](Memoized::reclaim_other_versions)'s work, in the process
    /// that does it.
    fn check_version(&self, inner: &Inner) {
        let versions = Scope::new(VERSIONS);
        let seen = inner.get::<_, u64>(&versions, self.path).ok().flatten();
        if seen.as_deref() == Some(&self.version) {
            return;
        }
        // Another version: reclaim its entries now (a close waits briefly for the sweep). None
        // noted: a first use, or a cache cleared or a note evicted while entries of an older
        // version stayed; clear too (one generation), but leave the space to the sweeper's
        // own pace, so that a new function does not make a close of a large cache wait.
        tracing::debug!(
            function = self.path,
            "code version changed: older entries reclaimed"
        );
        if let Some(older) = &seen {
            *lock(&inner.memo.state(self.path).replaced) = Some(**older);
            if let Err(e) = inner.insert_own(&versions, &(REPLACED, self.path), **older) {
                tracing::debug!(function = self.path, error = %e, "could not note the replaced version");
            }
        }
        let scope = self.scope();
        let cleared = match seen {
            Some(_) => inner.clear_scope(&scope),
            None => inner.clear_scope_later(&scope),
        };
        if let Err(e) = cleared {
            tracing::warn!(function = self.path, error = %e, "could not clear older versions");
        }
        if let Err(e) = inner.insert_own(&versions, self.path, self.version) {
            tracing::warn!(function = self.path, error = %e, "could not note the code version");
        }
    }
}

/// Combines code versions (a function's own and those of its `deps`) into one, at compile time.
///
/// ```
/// const V: u64 = tiered::combine_versions(&[1, 2]);
/// assert_ne!(V, tiered::combine_versions(&[2, 1]));
/// ```
pub const fn combine_versions(parts: &[u64]) -> u64 {
    // FNV-1a over the parts' bytes, then a final mix: order matters, any change shows.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let bytes = parts[i].to_le_bytes();
        let mut j = 0;
        while j < 8 {
            h ^= bytes[j] as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            j += 1;
        }
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// What a memoized call does with its computation on a hit, without refresh ahead: nothing.
fn no_refresh<F>(_: F, _: &Arc<Inner>, _: &Scope, _: EncodedKey, _: &Options) {}

enum Failed<E> {
    User(E),
    Cache(Error),
}

/// The error of a function returning `Option` that gave `None` (with `cache_none = false`).
struct NoneReturned;

/// As a failed refresh is logged: the function's error need not be `Display`.
impl<E: 'static> std::fmt::Display for Failed<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::User(_)
                if std::any::TypeId::of::<E>() == std::any::TypeId::of::<NoneReturned>() =>
            {
                f.write_str("the memoized function returned `None`")
            }
            Failed::User(_) => write!(
                f,
                "the memoized function returned an `Err` (a `{}`)",
                std::any::type_name::<E>()
            ),
            Failed::Cache(e) => e.fmt(f),
        }
    }
}

impl<E> From<Error> for Failed<E> {
    fn from(e: Error) -> Self {
        Failed::Cache(e)
    }
}

fn unreachable_outcome<T>(e: Error) -> T {
    // A `Result`-free signature cannot carry this; it would be a bug in the engine.
    panic!("tiered: a memoized computation ran but no value came back: {e}")
}

/// The memoized functions a cache has seen: see [`Memoized`].
#[derive(Default)]
pub(crate) struct Functions {
    states: Mutex<HashMap<&'static str, Arc<FnState>>>,
}

impl Functions {
    fn state(&self, path: &'static str) -> Arc<FnState> {
        lock(&self.states)
            .entry(path)
            .or_insert_with(|| Arc::new(FnState::new(path)))
            .clone()
    }
}

struct FnState {
    /// The function's namespace.
    scope: Scope,
    hits: AtomicU64,
    misses: AtomicU64,
    /// The versions whose first call in this process checked the cache's note of the
    /// function's version (one, unless a binding runs edited code without a restart).
    checked: Mutex<Vec<u64>>,
    /// Held while a version is checked, so that concurrent first calls check once.
    checking: Mutex<()>,
    warned: AtomicBool,
    /// When the note of the function's version was last marked as read.
    noted_ms: AtomicU64,
    /// The older version whose entries this process dropped at its first call, for `explain`.
    replaced: Mutex<Option<u64>>,
    /// Whether this process noted the hidden part of the function's keys (see
    /// [`note_call_form`](FnState::note_call_form)).
    call_form_noted: AtomicBool,
}

/// How often a used function marks its version note as read.
const NOTE_REFRESH_MS: u64 = 60_000;

impl FnState {
    fn new(path: &str) -> Self {
        FnState {
            scope: Scope::new(path),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            checked: Mutex::new(Vec::new()),
            checking: Mutex::new(()),
            warned: AtomicBool::new(false),
            noted_ms: AtomicU64::new(0),
            replaced: Mutex::new(None),
            call_form_noted: AtomicBool::new(false),
        }
    }

    /// Notes, once per process, the hidden part of the function's keys (`#[memoize]`'s
    /// `Hidden`: what the build decided, the types), so that a tool that has only the call's
    /// text (`tiered explain DIR 'f("eu", 5)'`) can build its key even when no entry of the
    /// function is left (`admin/explain_shown.rs`). Bookkeeping: not counted.
    fn note_call_form(&self, inner: &Inner, path: &str, ek: &EncodedKey) {
        if self.call_form_noted.swap(true, Ordering::Relaxed) || !inner.lower.keeps_records() {
            return;
        }
        let Some((_, key)) = crate::admin::readable::split_scope(&ek.bytes) else {
            return;
        };
        let Some((_, hidden)) = crate::admin::readable::split_call(key) else {
            return;
        };
        if hidden.is_empty() {
            return;
        }
        let hex: String = hidden.iter().map(|b| format!("{b:02x}")).collect();
        let versions = Scope::new(VERSIONS);
        // One note per function (the latest form): the bookkeeping never grows with builds.
        let noted =
            crate::stats::uncounted(|| inner.insert_own(&versions, &(CALL_FORM, path), hex));
        if let Err(e) = noted {
            tracing::debug!(function = path, error = %e, "could not note the function's key form");
        }
    }

    /// Marks the function's version note as read now and then while the function is used,
    /// so that a full cache evicts it with the function's entries, not long before them
    /// (which would make the next process clear entries of the current version).
    fn keep_version_noted(&self, inner: &Inner, path: &str) {
        if !inner.lower.keeps_records() {
            return;
        }
        let now = inner.clock.now_ms();
        let last = self.noted_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < NOTE_REFRESH_MS
            || self
                .noted_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Ok(ek) = encode_key_in(Some(VERSIONS), path) {
            inner.lower.touch(ek.digest, now, false);
        }
    }

    fn count(&self, ran: bool) {
        let counter = if ran { &self.misses } else { &self.hits };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn warn_once(&self, path: &str, e: &Error) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(function = path, error = %e, "memoized function runs without the cache");
        }
    }
}
