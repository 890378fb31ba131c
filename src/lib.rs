//! # tiered
//!
//! A two-tier cache for Rust applications: a fast memory tier ([moka]) in front of a persistent
//! disk tier ([redb]), so that expensive results — database queries, data frames, model outputs,
//! rendered reports — survive restarts of a dev server or a deploy, expire when they should, and
//! can be invalidated by tag or namespace.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use std::time::Duration;
//! use tiered::{Cache, Options};
//!
//! let cache = Cache::open(dir.path())?;           // memory + disk, default settings
//! let opts = Options::new().ttl(Duration::from_secs(300)).tags(["prices"]);
//!
//! // Computed once; then from memory; after a restart, from disk.
//! let prices = cache.get_or_insert_with(&("prices", "2026-11-22"), &opts, || {
//!     vec![101.5f64, 99.0, 100.25] // a slow query in real life
//! })?;
//! assert_eq!(prices.len(), 3);
//!
//! cache.invalidate_tag("prices")?;                // every entry tagged "prices", at once
//! assert!(!cache.contains_key(&("prices", "2026-11-22"))?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What it does
//!
//! | feature | how |
//! |---|---|
//! | survives restarts | records in a redb file in the cache folder |
//! | memory hits right after a restart | [`CacheBuilder::warm_restart`] loads recently used entries in the background |
//! | no decoding on memory hits | the memory tier holds `Arc<V>` |
//! | one computation per missing key | [`Cache::get_or_insert_with`] |
//! | expiry: relative, absolute, idle | [`Options::ttl`], [`Options::expires_at`], [`Options::idle`], [`next_local_time`] |
//! | O(1) invalidation | [`Cache::invalidate_tag`], [`Namespace::clear`], [`Cache::clear`] |
//! | type changes are misses, not garbage | a fingerprint of the value type's shape in every record |
//! | crash safety | every commit durable with redb's quick-repair; a checksum on every record |
//! | failures | a full disk or a damaged file takes the disk tier out of service, never the cache: [`Cache::health`] |
//! | durability you choose | [`Durability::Immediate`] or [`Durability::Batched`] (default) |
//! | memoized functions, invalidated when their code changes | `#[tiered::memoize]` (feature `macros`, on by default); guide: `docs/memoize.md` |
//! | async, disk work off the executor | `Cache::to_async` → `AsyncCache` (feature `tokio`); guide: `docs/async.md` |
//!
//! Keys are any `Serialize` value; two keys are equal when they serialize to the same serde
//! data, so `"a"` and `String::from("a")` name one entry while `1u32` and `1u64` name two.
//! Values are any `Serialize + DeserializeOwned + Send + Sync + 'static` type that round-trips
//! through serde (as through JSON); one that cannot is refused at insert.
//!
//! The guide (`docs/guide.md`) explains tiers, expiry, invalidation, durability and what a
//! crash can lose; `docs/format.md` gives the on-disk format.
//!
//! MSRV: Rust 1.90.
//!
//! [moka]: https://docs.rs/moka
//! [redb]: https://docs.rs/redb

mod admin;
#[cfg(feature = "tokio")]
mod async_cache;
mod builder;
mod bytes;
mod cache;
mod codec;
mod disk;
mod engine;
mod error;
mod expiry;
mod explain;
mod fingerprint;
mod flight;
mod fork;
mod generations;
mod health;
mod key;
mod memo;
mod memory;
mod namespace;
mod options;
mod ordering;
mod process;
mod record;
mod registry;
mod signals;
mod stats;
mod tiers;

pub use admin::{EntryFilter, EntryInfo};
#[cfg(feature = "tokio")]
pub use async_cache::AsyncCache;
pub use builder::{CacheBuilder, DamagedFile, Durability};
pub use bytes::Bytes;
pub use cache::Cache;
#[cfg(feature = "testing-faults")]
#[doc(hidden)]
pub use disk::faults::{Audit, Faults};
pub use error::{Error, Result};
pub use expiry::{next_local_time, Clock, ManualClock, SystemClock};
pub use explain::{Explanation, Invalidation};
pub use health::Health;
#[doc(hidden)]
pub use memo::check as __memoize;
pub use memo::{
    combine_versions, global, global_status, GlobalStatus, MemoKey, MemoStats, Memoized,
};
pub use namespace::Namespace;
pub use options::Options;
#[cfg(unix)]
pub use registry::leave_before_exit;
pub use signals::{flush_on_exit_signals, flush_on_terminate};
pub use stats::{ProcessStats, Stats};
#[cfg(feature = "macros")]
/// Gives a free function a code version, `name::VERSION`, for the `deps` of memoized
/// functions that call it: editing it then invalidates their entries too.
///
/// ```
/// # static CACHE: std::sync::LazyLock<tiered::Cache> =
/// #     std::sync::LazyLock::new(tiered::Cache::in_memory);
/// #[tiered::fingerprint]
/// fn parse(line: &str) -> u64 {
///     line.trim().parse().unwrap_or(0)
/// }
///
/// #[tiered::memoize(cache = CACHE, deps = [parse])]
/// fn total(lines: Vec<String>) -> u64 {
///     lines.iter().map(|l| parse(l)).sum()
/// }
///
/// assert_eq!(total(vec!["1".into(), " 2".into()]), 3);
/// let _: u64 = parse::VERSION;
/// ```
pub use tiered_macros::fingerprint;
#[cfg(feature = "macros")]
/// Caches a function's results by its arguments and drops them when its code changes.
///
/// ```
/// use std::sync::LazyLock;
/// use tiered::Cache;
///
/// // In memory for this example; `Cache::open(folder)` keeps entries across restarts.
/// static CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);
///
/// #[tiered::memoize(cache = CACHE, ttl = "5m", tags = ["prices"])]
/// fn load_prices(day: u32, _conn: &str) -> Result<Vec<f64>, String> {
///     Ok(vec![100.0 + day as f64]) // a slow query in real life
/// }
///
/// assert_eq!(load_prices(7, "db-a"), Ok(vec![107.0])); // computed
/// assert_eq!(load_prices(7, "db-b"), Ok(vec![107.0])); // from the cache: `_conn` is not in the key
/// let stats = load_prices::stats();
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// assert!(load_prices::remove(&7)?);                  // one call's entry
/// load_prices::clear()?;                              // every entry of the function
/// # Ok::<(), tiered::Error>(())
/// ```
///
/// The key is the function's path, its code version, the arguments whose names do not
/// start with `_`, the types of generic and `impl Trait` arguments (a closure's keeps the call
/// in memory only), and what the build decided (`cfg!(debug_assertions)`, `cfg!(test)` and
/// each `cfg` the function names). The code version is a hash of the function's tokens (signature and body;
/// comments, doc comments and formatting aside): an edit makes new entries, and the first call
/// of the new build reclaims the old ones. Without `cache = …` the cache is [`global()`].
///
/// Beside a free function `f` the macro adds a field-less struct `f` (types and functions have
/// separate namespaces) with `f::VERSION`, `f::memo()` (its [`Memoized`]), `f::clear()`,
/// `f::remove(..)` (the key arguments, owned ones by reference), `f::explain(..)` (the same
/// arguments; why that call would not be a hit, as an [`Explanation`]) and `f::stats()`. A
/// method `m` gets associated functions `m_memo()` and `m_explain(..)` instead. Works on `fn`,
/// `async fn` (feature `tokio`), methods and generic functions.
///
/// Options: `cache = EXPR`, `ttl = "5m"`, `idle = "30m"`, `refresh = "1m"`,
/// `expires_at = EXPR`, `at = "16:00"`, `tags = [..]`, `memory_only`, `version = N`,
/// `deps = [f, g]`, `skip_self`, `cache_none = false`. `refresh = d` returns a value older
/// than `d` at once and recomputes it in the background (once per call across threads and
/// processes); its arguments must be `Send + 'static`, and it does not work on `async fn`.
/// The guide `docs/memoize.md` describes each, methods, generics, `async fn`, and what
/// invalidates entries by itself and what does not.
pub use tiered_macros::memoize;

#[cfg(test)]
mod tests {
    fn assert_clone_send_sync<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn handles_are_clone_send_sync() {
        assert_clone_send_sync::<crate::Cache>();
        assert_clone_send_sync::<crate::Namespace>();
        #[cfg(feature = "tokio")]
        assert_clone_send_sync::<crate::AsyncCache>();
        fn error_is_std<E: std::error::Error + Send + Sync + 'static>() {}
        error_is_std::<crate::Error>();
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The memoize guide's examples, compiled and run as doc tests.
#[cfg(all(doctest, feature = "macros"))]
#[doc = include_str!("../docs/memoize.md")]
struct MemoizeGuideDoctests;

/// The Redis guide's examples, compiled as doc tests.
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../docs/redis.md")]
struct RedisGuideDoctests;
