//! The caches this process has open: one per folder, each flushed when the process exits.
//!
//! A cache kept in a `static` (the memoize default) is never dropped, so its last batched
//! writes would be lost at exit without the `atexit` hook registered here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock, Weak};

use crate::disk::lock;
use crate::engine::Inner;

fn open_caches() -> &'static Mutex<HashMap<PathBuf, Weak<Inner>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// The open caches, locked: hold it across an open so that two threads opening one folder
/// share one cache.
pub(crate) fn lock_open() -> MutexGuard<'static, HashMap<PathBuf, Weak<Inner>>> {
    lock(open_caches())
}

pub(crate) fn register(
    open: &mut HashMap<PathBuf, Weak<Inner>>,
    folder: PathBuf,
    inner: &Arc<Inner>,
) {
    open.retain(|_, w| w.strong_count() > 0);
    open.insert(folder, Arc::downgrade(inner));
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: `flush_at_exit` is a plain `extern "C" fn` that never unwinds.
        let rc = unsafe { libc::atexit(flush_at_exit) };
        if rc != 0 {
            tracing::warn!("could not register the exit hook; call Cache::flush before exiting");
        }
    });
}

extern "C" fn flush_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let live: Vec<Arc<Inner>> = lock(open_caches())
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for inner in live {
            if let Err(e) = inner.flush() {
                eprintln!("tiered: flushing the cache at exit failed: {e}");
            }
        }
    });
}
