//! [`global`]: the cache `#[tiered::memoize]` uses when no `cache = …` is given, and
//! [`global_status`]: whether it keeps entries on disk.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cache::Cache;
use crate::error::Error;

/// The folder of the global cache: `TIERED_DIR`, else `./.cache/tiered`.
fn folder() -> PathBuf {
    match std::env::var_os("TIERED_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(".cache").join("tiered"),
    }
}

/// Where the global cache ([`global`]) keeps its entries: see [`global_status`].
#[derive(Debug)]
#[non_exhaustive]
pub enum GlobalStatus {
    /// In memory and on disk, in `folder`: they survive restarts.
    OnDisk {
        /// The cache folder.
        folder: PathBuf,
    },
    /// In memory only, for the life of the process, because `folder` could not be opened.
    MemoryOnly {
        /// The folder that could not be opened.
        folder: PathBuf,
        /// Why.
        error: Error,
    },
}

impl GlobalStatus {
    /// Whether entries go to disk (and survive a restart).
    pub fn is_on_disk(&self) -> bool {
        matches!(self, GlobalStatus::OnDisk { .. })
    }

    /// The folder the global cache uses, or could not open.
    pub fn folder(&self) -> &Path {
        match self {
            GlobalStatus::OnDisk { folder } | GlobalStatus::MemoryOnly { folder, .. } => folder,
        }
    }

    /// Why the folder could not be opened, when it could not.
    pub fn error(&self) -> Option<&Error> {
        match self {
            GlobalStatus::OnDisk { .. } => None,
            GlobalStatus::MemoryOnly { error, .. } => Some(error),
        }
    }
}

fn opened() -> &'static (Cache, GlobalStatus) {
    static GLOBAL: OnceLock<(Cache, GlobalStatus)> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let folder = folder();
        match Cache::open(&folder) {
            Ok(cache) => (cache, GlobalStatus::OnDisk { folder }),
            Err(error) => {
                tracing::error!(
                    folder = %folder.display(),
                    error = %error,
                    "the global cache keeps entries in memory only"
                );
                // Without a subscriber, the line above goes nowhere: say it where a new user
                // looks, once.
                if tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>())
                {
                    eprintln!("{}", memory_only_notice(&folder, &error));
                }
                (
                    Cache::in_memory(),
                    GlobalStatus::MemoryOnly { folder, error },
                )
            }
        }
    })
}

/// The line written to stderr when the global folder cannot be opened and no `tracing`
/// subscriber would show the error.
fn memory_only_notice(folder: &Path, error: &Error) -> String {
    format!(
        "tiered: the global cache could not open {}: {error}. It keeps entries in memory only: \
         memoized results are computed again after a restart. Set TIERED_DIR to a folder this \
         process may write to, or give the functions a cache of their own (`cache = …`).",
        folder.display()
    )
}

/// The process-wide cache, opened with default settings on first use in the folder named by
/// the `TIERED_DIR` environment variable, else `./.cache/tiered` (relative to the working
/// directory). It is the default cache of `#[tiered::memoize]`.
///
/// Like every open cache, it is flushed when the process exits normally (and on Ctrl-C once
/// [`flush_on_exit_signals`](crate::flush_on_exit_signals) was called). If the folder cannot
/// be opened (no permission, a damaged file that cannot be set aside, another process holding
/// it past the open timeout), the global cache keeps entries in memory only for the life of
/// the process: memoized functions keep working. The error is logged with `tracing`, and also
/// written once to stderr when no `tracing` subscriber is installed; [`global_status`] tells.
///
/// ```no_run
/// let cache = tiered::global();
/// cache.insert("greeting", "hello".to_string())?;
/// # Ok::<(), tiered::Error>(())
/// ```
pub fn global() -> &'static Cache {
    &opened().0
}

/// Whether the global cache ([`global`]) keeps its entries on disk, in which folder, and if
/// not, why. Opens the global cache if it is not open yet.
///
/// ```no_run
/// let status = tiered::global_status();
/// if !status.is_on_disk() {
///     eprintln!("memoized results will not survive a restart: {:?}", status.error());
/// }
/// ```
pub fn global_status() -> &'static GlobalStatus {
    &opened().1
}
