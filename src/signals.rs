//! [`flush_on_exit_signals`]: commit batched writes when a dev server is stopped.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Flushes every open cache when the process receives SIGINT (Ctrl-C), SIGTERM or SIGHUP,
/// then lets the signal end the process as it would have. A cache folder this process serves
/// is left as at a normal exit: its socket and `owner` files are removed.
///
/// Without it, those signals end the process at once, like a crash: with
/// `Durability::Batched(d)` the writes of about the last `2·d` are lost (nothing is ever
/// corrupted). Call it once, early in `main`, in programs that are stopped with a signal, such
/// as dev servers. Programs that handle these signals themselves (a graceful shutdown) should
/// call [`Cache::flush`](crate::Cache::flush) in their own handler instead: this function
/// installs process-wide handlers, and a later handler of the program may replace them.
/// Calling it again does nothing.
///
/// ```no_run
/// fn main() -> Result<(), tiered::Error> {
///     tiered::flush_on_exit_signals()?;
///     let cache = tiered::Cache::open("./.cache/app")?;
///     // ... serve until Ctrl-C: batched writes are committed before the process ends.
///     # drop(cache);
///     Ok(())
/// }
/// ```
///
/// # Errors
/// [`Error::Io`] if the handlers cannot be installed.
#[cfg(unix)]
pub fn flush_on_exit_signals() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| Error::io("signal handlers", e))?;
    flush_on(signals, "tiered-signals")?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// A thread that waits for one of `signals`, then does what an exit does to this process's
/// caches (`registry::leave_before_exit`) and ends the process the way the signal would have
/// (exit status included).
#[cfg(unix)]
fn flush_on(mut signals: signal_hook::iterator::Signals, name: &str) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                crate::registry::leave_before_exit();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .map(|_| ())
        .map_err(|e| Error::io("signal handlers", e))
}

/// Like [`flush_on_exit_signals`], for SIGTERM alone, and once per process rather than once per
/// program: a forked child (whose parent's signal thread did not survive the fork) can install
/// its own. For hosts that keep SIGINT for themselves (Python's `KeyboardInterrupt`) and
/// end their workers with SIGTERM (`multiprocessing.Pool.terminate`, `docker stop`).
///
/// # Errors
/// [`Error::Io`] if the handler cannot be installed.
#[cfg(unix)]
pub fn flush_on_terminate() -> Result<()> {
    use signal_hook::consts::SIGTERM;
    use signal_hook::iterator::Signals;
    use std::sync::atomic::{AtomicU32, Ordering};

    static INSTALLED_IN: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    if INSTALLED_IN.swap(pid, Ordering::AcqRel) == pid {
        return Ok(());
    }
    let signals = Signals::new([SIGTERM]).map_err(|e| Error::io("signal handlers", e))?;
    flush_on(signals, "tiered-sigterm")
}

/// Without Unix signals there is nothing to install.
///
/// # Errors
/// None.
#[cfg(not(unix))]
pub fn flush_on_terminate() -> Result<()> {
    Ok(())
}
