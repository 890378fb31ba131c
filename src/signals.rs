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
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| Error::io("signal handlers", e))?;
    std::thread::Builder::new()
        .name("tiered-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                crate::registry::flush_all("on a signal");
                crate::registry::leave_all();
                crate::process::wait_for_closes(
                    std::time::Instant::now() + crate::registry::EXIT_CLOSE_WAIT,
                );
                // End the process the way the signal would have (exit status included).
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .map_err(|e| Error::io("signal handlers", e))?;
    let _ = INSTALLED.set(());
    Ok(())
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
    let mut signals = Signals::new([SIGTERM]).map_err(|e| Error::io("signal handlers", e))?;
    std::thread::Builder::new()
        .name("tiered-sigterm".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                crate::registry::flush_all("on SIGTERM");
                crate::registry::leave_all();
                crate::process::wait_for_closes(
                    std::time::Instant::now() + crate::registry::EXIT_CLOSE_WAIT,
                );
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .map_err(|e| Error::io("signal handlers", e))?;
    Ok(())
}

/// Without Unix signals there is nothing to install.
///
/// # Errors
/// None.
#[cfg(not(unix))]
pub fn flush_on_terminate() -> Result<()> {
    Ok(())
}
