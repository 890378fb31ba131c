//! [`global`]: the cache `#[tiered::memoize]` uses when no `cache = …` is given.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::cache::Cache;

/// The folder of the global cache: `TIERED_DIR`, else `./.cache/tiered`.
fn folder() -> PathBuf {
    match std::env::var_os("TIERED_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(".cache").join("tiered"),
    }
}

/// The process-wide cache, opened with default settings on first use in the folder named by
/// the `TIERED_DIR` environment variable, else `./.cache/tiered` (relative to the working
/// directory). It is the default cache of `#[tiered::memoize]`.
///
/// Like every open cache, it is flushed when the process exits normally (and on Ctrl-C once
/// [`flush_on_exit_signals`](crate::flush_on_exit_signals) was called). If the folder cannot
/// be opened (no permission, a damaged file that cannot be set aside, another process holding
/// it past the open timeout), the error is logged and the global cache keeps entries in memory
/// only for the life of the process: memoized functions keep working.
///
/// ```no_run
/// let cache = tiered::global();
/// cache.insert("greeting", "hello".to_string())?;
/// # Ok::<(), tiered::Error>(())
/// ```
pub fn global() -> &'static Cache {
    static GLOBAL: OnceLock<Cache> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let dir = folder();
        Cache::open(&dir).unwrap_or_else(|e| {
            tracing::error!(
                folder = %dir.display(),
                error = %e,
                "the global cache keeps entries in memory only"
            );
            Cache::in_memory()
        })
    })
}
