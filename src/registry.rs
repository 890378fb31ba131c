//! The caches this process has open: one per folder, each flushed when the process exits.
//!
//! A cache kept in a `static` (the memoize default) is never dropped, so its last batched
//! writes would be lost at exit without the `atexit` hook registered here, and an owner would
//! leave its socket and `owner` file behind (the hook removes them).
//!
//! Each folder (by its canonical path) has a [`Slot`]. The process-wide map is locked only to
//! find a folder's slot; the slot's own `opening` lock is held while that folder is opened,
//! which may wait `open_timeout` for another process. So two threads opening one folder share
//! one cache, and opens of other folders go ahead meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock, Weak};
use std::time::Duration;

use crate::builder::{DamagedFile, Durability};
use crate::disk::lock;
use crate::engine::Inner;
use crate::options::Options;

/// The settings a folder was opened with, to tell a later open of it with other settings
/// (which get the open cache, so its settings win) that they were ignored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Settings {
    pub memory_capacity: u64,
    pub disk_capacity: u64,
    pub page_cache: usize,
    pub durability: Durability,
    pub defaults: Options,
    pub open_timeout: Duration,
    pub request_timeout: Duration,
    pub on_damaged_file: DamagedFile,
    /// `None`: the default budget.
    pub warm_restart: Option<u64>,
    /// The Redis server the folder is in front of (its URL without the password, and the
    /// prefix), empty for none.
    pub redis: String,
}

impl Settings {
    /// Each setting of `asked` that differs from these, named as the builder's method, with
    /// both values: `memory_capacity (open: 268435456, asked: 1024)`.
    pub fn differences(&self, asked: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        macro_rules! differ {
            ($name:literal, $field:ident) => {
                if self.$field != asked.$field {
                    out.push(format!(
                        concat!($name, " (open: {:?}, asked: {:?})"),
                        self.$field, asked.$field
                    ));
                }
            };
        }
        differ!("memory_capacity", memory_capacity);
        differ!("disk_capacity", disk_capacity);
        differ!("disk_page_cache", page_cache);
        differ!("durability", durability);
        differ!("default_options", defaults);
        differ!("open_timeout", open_timeout);
        differ!("request_timeout", request_timeout);
        differ!("on_damaged_file", on_damaged_file);
        differ!("warm_restart", warm_restart);
        differ!("redis", redis);
        out
    }
}

/// One folder's place in the registry.
pub(crate) struct Slot {
    /// The fork generation the slot was made in: the child of a fork ignores (and never
    /// locks) the slots it inherited, whose caches are its parent's (see `fork.rs`).
    generation: u64,
    /// Held across an open of the folder.
    opening: Mutex<()>,
    /// The cache open in the folder (possibly dropped since) and its settings. Locked only
    /// briefly, so the exit hook never waits for an open.
    open: Mutex<Option<(Weak<Inner>, Settings)>>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            generation: crate::fork::generation(),
            opening: Mutex::default(),
            open: Mutex::default(),
        }
    }

    /// Whether the slot was made in this process (not inherited through a fork).
    fn is_current(&self) -> bool {
        self.generation == crate::fork::generation()
    }

    /// Locks the folder for opening: hold the guard until the cache is [`set`](Slot::set) or
    /// the open failed.
    pub fn lock_opening(&self) -> MutexGuard<'_, ()> {
        lock(&self.opening)
    }

    /// The cache open in the folder, if it is still alive, with its settings.
    pub fn live(&self) -> Option<(Arc<Inner>, Settings)> {
        let open = lock(&self.open);
        let (weak, settings) = open.as_ref()?;
        Some((weak.upgrade()?, settings.clone()))
    }

    /// Records the cache just opened in the folder.
    pub fn set(&self, inner: &Arc<Inner>, settings: Settings) {
        *lock(&self.open) = Some((Arc::downgrade(inner), settings));
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            // SAFETY: `flush_at_exit` is a plain `extern "C" fn` that never unwinds.
            let rc = unsafe { libc::atexit(flush_at_exit) };
            if rc != 0 {
                tracing::warn!(
                    "could not register the exit hook; call Cache::flush before exiting"
                );
            }
        });
    }

    /// Whether the slot can be forgotten: nobody is opening the folder through it (the map
    /// holds the only `Arc`) and its cache, if any, is gone.
    fn is_unused(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) == 1
            && lock(&self.open)
                .as_ref()
                .is_none_or(|(weak, _)| weak.strong_count() == 0)
    }
}

/// Every folder's slot, by canonical path.
pub(crate) type Slots = HashMap<PathBuf, Arc<Slot>>;

fn slots() -> &'static Mutex<Slots> {
    static SLOTS: OnceLock<Mutex<Slots>> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

/// Locks the registry; for the fork handlers, which hold it across a fork.
pub(crate) fn lock_slots() -> MutexGuard<'static, Slots> {
    lock(slots())
}

/// The slot of `folder` (a canonical path), made if missing. The process-wide lock is held
/// only while looking it up.
pub(crate) fn slot(folder: &Path) -> Arc<Slot> {
    let mut slots = lock(slots());
    // Inherited slots first, unlocked: a thread of the parent may have held their locks.
    slots.retain(|_, slot| slot.is_current() && !slot.is_unused());
    slots
        .entry(folder.to_path_buf())
        .or_insert_with(|| Arc::new(Slot::new()))
        .clone()
}

/// How long the exit waits for closes under way on other threads.
pub(crate) const EXIT_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

extern "C" fn flush_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        flush_all("at exit");
        leave_all();
        crate::process::wait_for_closes(std::time::Instant::now() + EXIT_CLOSE_WAIT);
    });
}

/// Does what a normal exit does to this process's caches (see the module's docs): commits
/// every open cache, stops serving the folders this process holds once its clients'
/// acknowledged writes are committed, and lets go of them, waiting briefly for closes under
/// way. For hosts that end the process without running exit hooks (`os._exit`, as Python's
/// `multiprocessing` does with its children): call it last. A cache used afterwards works
/// as a client of the folder's next holder.
pub fn leave_before_exit() {
    flush_at_exit();
}

/// The caches of this process still alive, whatever holds them; not those its parent had
/// open when it forked this process (they are the parent's to flush and close).
fn live() -> Vec<Arc<Inner>> {
    let slots: Vec<Arc<Slot>> = lock(slots())
        .values()
        .filter(|slot| slot.is_current())
        .cloned()
        .collect();
    slots
        .iter()
        .filter_map(|slot| slot.live().map(|(inner, _)| inner))
        .collect()
}

/// The process is ending with caches it never dropped: each owner stops serving and removes
/// its socket and owner files, if they are still its own (not those of an owner that took
/// over). Call after [`flush_all`].
pub(crate) fn leave_all() {
    for inner in live() {
        // One cache's panic must not keep the others from leaving.
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.lower.leave_at_exit()));
    }
}

/// Flushes every cache this process has open; failures are printed (there may be no logger
/// left at exit).
pub(crate) fn flush_all(when: &str) {
    let live = live();
    // One budget for every cache: an exit waits at most that long for sweeps.
    let until = std::time::Instant::now() + crate::disk::SETTLE_BUDGET;
    for inner in live {
        // One cache's panic must not keep the others from being flushed.
        let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.flush()));
        match flushed {
            Ok(Err(e)) => eprintln!("tiered: flushing the cache {when} failed: {e}"),
            Err(_) => eprintln!("tiered: flushing the cache {when} failed: an internal error"),
            Ok(Ok(())) => {}
        }
        // As a close would: the sweep passes this process's invalidations asked for, briefly.
        let _ = inner.lower.settle(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            memory_capacity: 256 << 20,
            disk_capacity: 4 << 30,
            page_cache: 32 << 20,
            durability: Durability::default(),
            defaults: Options::new(),
            open_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            on_damaged_file: DamagedFile::Fail,
            warm_restart: None,
            redis: String::new(),
        }
    }

    #[test]
    fn equal_settings_have_no_differences() {
        assert!(settings().differences(&settings()).is_empty());
    }

    #[test]
    fn every_differing_setting_is_named_with_both_values() {
        let open = settings();
        let asked = Settings {
            memory_capacity: 1024,
            disk_capacity: 2048,
            page_cache: 0,
            durability: Durability::Immediate,
            defaults: Options::new().ttl(Duration::from_secs(5)),
            open_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            on_damaged_file: DamagedFile::SetAside,
            warm_restart: Some(0),
            redis: "redis://127.0.0.1:6379 tiered:".into(),
        };
        let differences = open.differences(&asked);
        let names: Vec<&str> = differences
            .iter()
            .map(|d| d.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "memory_capacity",
                "disk_capacity",
                "disk_page_cache",
                "durability",
                "default_options",
                "open_timeout",
                "request_timeout",
                "on_damaged_file",
                "warm_restart",
                "redis"
            ]
        );
        assert_eq!(
            differences[0],
            format!("memory_capacity (open: {}, asked: 1024)", 256u64 << 20)
        );

        let only_timeout = Settings {
            open_timeout: Duration::from_secs(30),
            ..settings()
        };
        assert_eq!(
            open.differences(&only_timeout),
            ["open_timeout (open: 10s, asked: 30s)"]
        );
    }
}
