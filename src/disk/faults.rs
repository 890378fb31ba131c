//! A storage backend that fails on command, for tests: redb's `FileBackend` underneath, with
//! switches that make writes, syncs or length changes fail as a full disk would, and counters
//! of what redb asked for.

use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The switches and counters shared by a test and every backend it made.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub fail_writes: AtomicBool,
    pub fail_syncs: AtomicBool,
    pub writes: AtomicU64,
    pub syncs: AtomicU64,
}

impl Faults {
    /// Makes every write, length change and sync fail (or work again).
    pub fn disk_full(&self, full: bool) {
        self.fail_writes.store(full, Ordering::SeqCst);
        self.fail_syncs.store(full, Ordering::SeqCst);
    }
}

#[derive(Debug)]
pub(crate) struct FaultyBackend {
    inner: FileBackend,
    faults: Arc<Faults>,
}

impl FaultyBackend {
    pub fn new(file: std::fs::File, faults: Arc<Faults>) -> Result<Self, redb::DatabaseError> {
        Ok(FaultyBackend {
            inner: FileBackend::new(file)?,
            faults,
        })
    }

    fn check(&self, switch: &AtomicBool) -> io::Result<()> {
        if switch.load(Ordering::SeqCst) {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check(&self.faults.fail_writes)?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        self.check(&self.faults.fail_syncs)?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.writes.fetch_add(1, Ordering::SeqCst);
        self.check(&self.faults.fail_writes)?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
