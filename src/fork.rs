//! A cache used on both sides of `fork()`.
//!
//! After `fork()` the child has one thread (the one that forked) and a copy of everything
//! else: the cache's `Inner` with its writer, server and takeover state (whose threads are
//! gone), and every descriptor, among them the database file whose locks (redb's OFD range
//! locks and `flock`) belong to the open file, shared with the parent. Left alone, the child
//! would write through the parent's database, and after the parent exits its copy of the
//! file would keep the folder locked: no process could take it over.
//!
//! So, once a folder has been opened, a `pthread_atfork` child handler
//! ([`install`]) does two things, with no allocation and no lock of its own to wait for:
//!
//! - it bumps the process's fork [`generation`];
//! - it puts `/dev/null` over every descriptor that carries a lock or the owner's role (the
//!   database file, the socket's listener, each connection to or from another process, a
//!   side file's pin), as registered with [`watch`]: the file stays the parent's, and nothing
//!   in the child can reach it by a reused descriptor number. Closing would free the number
//!   for the child's next open while objects it cannot drop still name it.
//!
//! Each [`Handle`] (what a `Cache` holds) compares its cache's generation with the process's
//! on every use: one atomic load, no system call. The first use in the child after a fork
//! opens the folder again with the same settings, as a fresh cache of that process (a client
//! of the parent, or the owner if no process holds the folder), and uses it from then on. The
//! parent's cache is left to the parent: the child never drops it (its `Drop` would close the
//! parent's database and join threads that do not exist), so what the parent had queued is
//! committed by the parent alone. The registry of open folders and the exit hook see only
//! the caches of the current generation.
//!
//! A cache in memory only is kept as it is: nothing of it lies outside the process.

use std::ops::Deref;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::disk::lock;
use crate::engine::Inner;

/// How many `fork()`s this process descends from since the first cache folder was opened
/// (0 in the process that opened it).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The process's fork generation: see the module's documentation.
pub(crate) fn generation() -> u64 {
    // Changed only by the child handler, while the child has a single thread.
    GENERATION.load(Ordering::Relaxed)
}

// ---- descriptors to let go of in a child ----

/// A descriptor the child of a fork must not keep: its number and the file it was (device
/// and inode), so that a number closed and reused since is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Watched {
    fd: i32,
    dev: u64,
    ino: u64,
}

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());

/// Registers a descriptor for the child of a fork to let go of; dropping the value forgets it
/// (drop it after the descriptor is closed: a fork in between finds the number closed or
/// holding another file, and leaves it).
#[derive(Debug)]
pub(crate) struct Watch(Option<Watched>);

/// Watches `fd`'s descriptor: see [`Watch`].
#[cfg(unix)]
pub(crate) fn watch(fd: &impl std::os::fd::AsRawFd) -> Watch {
    let fd = fd.as_raw_fd();
    let Some((dev, ino)) = identity(fd) else {
        return Watch(None);
    };
    let watched = Watched { fd, dev, ino };
    lock(&WATCHED).push(watched);
    Watch(Some(watched))
}

#[cfg(not(unix))]
pub(crate) fn watch<T>(_fd: &T) -> Watch {
    Watch(None)
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(watched) = self.0 {
            let mut all = lock(&WATCHED);
            if let Some(i) = all.iter().position(|w| *w == watched) {
                all.swap_remove(i);
            }
        }
    }
}

/// The device and inode of the file open on `fd`.
#[cfg(unix)]
fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: `st` is valid for writes; fstat checks the descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; fstat is async-signal-safe.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// In the child: puts `/dev/null` over each watched descriptor that still holds its file.
/// Only async-signal-safe calls (`open`, `fstat`, `dup2`, `fcntl`, `close`).
#[cfg(unix)]
fn let_go(watched: &[Watched]) {
    if watched.is_empty() {
        return;
    }
    // SAFETY: a constant NUL-terminated path.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if null < 0 {
        return;
    }
    for w in watched {
        if w.fd == null || identity(w.fd) != Some((w.dev, w.ino)) {
            continue;
        }
        // SAFETY: both descriptors are open; `dup2` replaces `w.fd` atomically, releasing
        // this process's hold on the file (its locks stay the parent's).
        unsafe {
            if libc::dup2(null, w.fd) >= 0 {
                // As the descriptor was: not passed to a program the child runs.
                libc::fcntl(w.fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
    // SAFETY: `null` is ours.
    unsafe { libc::close(null) };
}

// ---- the fork handlers ----

/// The locks the handlers hold across a fork, so that the child finds what they guard whole:
/// the registry of open folders, the count of closes under way, the watched descriptors.
/// Each is held only briefly by other threads, never while waiting on another process.
struct Held {
    slots: MutexGuard<'static, crate::registry::Slots>,
    closes: MutexGuard<'static, usize>,
    watched: MutexGuard<'static, Vec<Watched>>,
}

thread_local! {
    static HELD: std::cell::RefCell<Option<Held>> = const { std::cell::RefCell::new(None) };
}

/// Registers the fork handlers, once per process (the first time a folder is opened).
pub(crate) fn install() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: the handlers are plain `extern "C" fn`s that never unwind.
            let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
            if rc != 0 {
                tracing::warn!(
                    "could not register the fork handlers: a child of fork() must not use a \
                     cache opened before the fork"
                );
            }
        });
    }
}

#[cfg(unix)]
extern "C" fn prepare() {
    let _ = std::panic::catch_unwind(|| {
        let held = Held {
            slots: crate::registry::lock_slots(),
            closes: crate::process::lock_closes(),
            watched: lock(&WATCHED),
        };
        let _ = HELD.try_with(|h| *h.borrow_mut() = Some(held));
    });
}

#[cfg(unix)]
extern "C" fn parent() {
    let _ = std::panic::catch_unwind(|| {
        let _ = HELD.try_with(|h| h.borrow_mut().take());
    });
}

#[cfg(unix)]
extern "C" fn child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    let _ = std::panic::catch_unwind(|| {
        let _ = HELD.try_with(|h| {
            if let Some(mut held) = h.borrow_mut().take() {
                let_go(&held.watched);
                held.watched.clear();
                // The closes under way were the parent's threads'; none will end here.
                *held.closes = 0;
                drop(held.slots);
            }
        });
    });
}

// ---- the handle a `Cache` holds ----

/// What a `Cache` (and each of its clones) holds: its cache, replaced once by a fresh one in
/// the child of a fork (see the module's documentation). Dereferences to the `Arc<Inner>` of
/// this process's generation.
pub(crate) struct Handle(Arc<Cell>);

struct Cell {
    /// Never null; a replaced value is leaked with its `Inner` (it is another process's).
    current: AtomicPtr<Current>,
    /// The generation whose reopen a thread has claimed (see [`Handle::follow`]).
    claimed: AtomicU64,
}

struct Current {
    inner: Arc<Inner>,
    /// The generation `inner` belongs to; [`ANY`] for a cache in memory only.
    generation: u64,
}

/// The generation of a cache that is the same on both sides of a fork (in memory only).
const ANY: u64 = u64::MAX;

// The pointer hides what the cell shares between threads: an `Arc<Inner>`.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Arc<Inner>>();
};

impl Current {
    fn new(inner: Arc<Inner>) -> *mut Current {
        let generation = if inner.recipe.is_some() {
            inner.generation
        } else {
            ANY
        };
        Box::into_raw(Box::new(Current { inner, generation }))
    }

    fn is_current(&self) -> bool {
        self.generation == ANY || self.generation == generation()
    }
}

impl Handle {
    pub fn new(inner: Arc<Inner>) -> Handle {
        Handle(Arc::new(Cell {
            current: AtomicPtr::new(Current::new(inner)),
            claimed: AtomicU64::new(generation()),
        }))
    }

    fn load(&self) -> &Current {
        // SAFETY: the pointer is never null, and what it points to is freed only when the
        // cell is dropped (no handle, so no borrow, is left); a replaced value is leaked.
        unsafe { &*self.0.current.load(Ordering::Acquire) }
    }

    /// The first use after a fork: opens the folder again in this process, once for all the
    /// handle's clones (other threads wait for it).
    #[cold]
    #[inline(never)]
    fn follow(&self) -> &Arc<Inner> {
        let now = generation();
        loop {
            let current = self.load();
            if current.is_current() {
                return &current.inner;
            }
            let claimed = self.0.claimed.load(Ordering::Acquire);
            // A claim of an earlier generation was made by a thread that does not exist here.
            if claimed != now
                && self
                    .0
                    .claimed
                    .compare_exchange(claimed, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                let fresh = Current::new(crate::builder::reopen(&current.inner));
                // The old value stays allocated (leaked): its cache is the parent's.
                self.0.current.store(fresh, Ordering::Release);
                // SAFETY: as in `load`.
                return unsafe { &(*fresh).inner };
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl Deref for Handle {
    type Target = Arc<Inner>;

    #[inline]
    fn deref(&self) -> &Arc<Inner> {
        let current = self.load();
        if current.is_current() {
            &current.inner
        } else {
            self.follow()
        }
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        Handle(self.0.clone())
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        // SAFETY: made by `Box::into_raw` in `Current::new`, and no handle is left.
        let current = unsafe { Box::from_raw(*self.current.get_mut()) };
        if !current.is_current() {
            // The parent's cache, never followed here: dropping it would close the parent's
            // database from this process.
            std::mem::forget(current);
        }
    }
}
