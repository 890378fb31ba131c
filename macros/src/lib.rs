//! The `#[memoize]` and `#[fingerprint]` attributes of [tiered](https://docs.rs/tiered).
//!
//! Use them through `tiered` (`#[tiered::memoize]`): the generated code names `::tiered`, and
//! the guide and runnable examples are in tiered's documentation and `docs/memoize.md`.

mod args;
mod duration;
mod expand;
mod key;
mod signature;
mod version;

use proc_macro::TokenStream;

/// Caches a function's results by its arguments, in a cache that survives restarts, and drops
/// them when the function's code changes.
///
/// ```ignore
/// #[tiered::memoize(ttl = "5m", tags = ["prices"])]
/// fn load_prices(day: u32, _conn: &Conn) -> Result<Vec<f64>, DbError> { ... }
/// ```
///
/// Options: `cache`, `ttl`, `idle`, `refresh`, `expires_at`, `at`, `tags`, `memory_only`,
/// `version`, `deps`, `skip_self`, `cache_none`. See `tiered::memoize` for what each does.
#[proc_macro_attribute]
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::memoize(attr.into(), item.into()).into()
}

/// Gives a free function a code version (`f::VERSION`) that memoized functions calling it can
/// list in `deps = [f]`, so that editing it invalidates their entries.
///
/// ```ignore
/// #[tiered::fingerprint]
/// fn parse_row(line: &str) -> Row { ... }
///
/// #[tiered::memoize(deps = [parse_row])]
/// fn load(path: String) -> Vec<Row> { ... }
/// ```
#[proc_macro_attribute]
pub fn fingerprint(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::fingerprint(attr.into(), item.into()).into()
}
