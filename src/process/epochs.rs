//! Whether a client's memory tier is still current, in one atomic load per memory hit.
//!
//! A client drops what a write replaced when the owner's notice arrives, and the write's call
//! returns only once every client acknowledged it, or was cut off for not answering within
//! `peers::ACK_TIMEOUT`. A client cut off that way (stopped with SIGSTOP, a VM pause, heavy
//! swapping) only learns it when its threads run again, and its readers may run first: they
//! would serve the replaced value from memory until its connection thread notices the end.
//!
//! So the folder holds `tiered.epochs`: [`SLOTS`] counters in a small memory-mapped file.
//! Each connection of a client is given a slot and the slot's value in the owner's greeting.
//! The owner raises the slot *before* it lets a write return without that client's
//! acknowledgement (whenever it cuts a connection), and a process that becomes the owner
//! raises every slot before it applies any write (the old owner's clients may be stopped
//! too). A client's memory hit on an entry that came from (or went to) the disk compares
//! its slot with the value it was given, a load from shared memory with no system call: a
//! difference makes the hit a miss and drops every such entry (see `memory::View`).
//!
//! Slots are reused modulo [`SLOTS`]: a connection sharing a slot with one that was cut off
//! drops its entries once more than it had to, never fewer. The file is never shrunk (a
//! mapping past the end of a file faults), and created 0600.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The file's name in the cache folder.
pub(crate) const EPOCHS_FILE: &str = "tiered.epochs";
/// How many counters the file holds.
pub(crate) const SLOTS: usize = 4096;
const BYTES: usize = SLOTS * 8;

/// The folder's counters, mapped into this process.
pub(crate) struct Epochs {
    base: *const AtomicU64,
    _file: File,
}

// SAFETY: the mapping is shared memory accessed only through atomics, and lives as long as
// the value (unmapped in `drop`).
unsafe impl Send for Epochs {}
// SAFETY: as above.
unsafe impl Sync for Epochs {}

impl Epochs {
    /// Maps the folder's counters, creating the file if missing.
    pub fn open(dir: &Path) -> io::Result<Epochs> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(dir.join(EPOCHS_FILE))?;
        if file.metadata()?.len() < BYTES as u64 {
            // Grown only: another process may have it mapped.
            file.set_len(BYTES as u64)?;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of `BYTES` bytes of a file at least that long; the
        // kernel checks the descriptor and the protection.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Epochs {
            base: base.cast::<AtomicU64>().cast_const(),
            _file: file,
        })
    }

    fn slot(&self, slot: usize) -> &AtomicU64 {
        // SAFETY: `slot % SLOTS` is within the mapping, which is page-aligned (so each u64 is
        // aligned) and lives as long as `self`.
        unsafe { &*self.base.add(slot % SLOTS) }
    }

    /// The value of a slot now.
    pub fn load(&self, slot: usize) -> u64 {
        self.slot(slot).load(Ordering::SeqCst)
    }

    /// Raises a slot: its client's memory tier is no longer current.
    pub fn raise(&self, slot: usize) {
        self.slot(slot).fetch_add(1, Ordering::SeqCst);
    }

    /// Raises every slot: no client's memory tier is current (a new owner).
    pub fn raise_all(&self) {
        for slot in 0..SLOTS {
            self.raise(slot);
        }
    }
}

impl Drop for Epochs {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, of `BYTES` bytes; no reference into it outlives
        // `self` (`slot` borrows it).
        unsafe {
            libc::munmap(self.base.cast_mut().cast(), BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_folder_see_each_others_raises() {
        let dir = tempfile::tempdir().unwrap();
        let a = Epochs::open(dir.path()).unwrap();
        let b = Epochs::open(dir.path()).unwrap();
        let before = b.load(7);
        a.raise(7);
        assert_eq!(b.load(7), before + 1);
        a.raise_all();
        assert_eq!(b.load(7 + SLOTS), before + 2, "slots wrap");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(EPOCHS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
