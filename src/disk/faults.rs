//! A storage backend that fails on command, for tests: redb's `FileBackend` underneath, with
//! switches that make writes, syncs or length changes fail as a full disk would, a switch that
//! makes side files fail to write, counters of what redb asked for, and crash images.
//!
//! Built for the crate's own tests and, with the `testing-faults` feature, for integration
//! tests (`tests/model.rs`, `tests/crash_points.rs`); never part of the documented API.
//!
//! A crash image is the folder as a crash right after a given sync would leave it: the
//! database file exactly as of that completed sync (every write before it, none after), and
//! the side files that had been renamed into `blobs/` by then. Recording one is cheap: the
//! backend journals what redb writes (the file's bytes at open, then each write and length
//! change) and marks each completed sync; at each mark the side files present are hard-linked
//! into a vault (they never change once named), and temporary side files are noted by name.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The switches and counters shared by a test and every backend it made.
///
/// Give it to a cache with `CacheBuilder::faults`; then flip the switches, or record crash
/// images with [`Faults::record_images`] and write one out with [`Faults::write_image`].
#[derive(Debug, Default)]
pub struct Faults {
    /// Every write and length change of the database file fails (`StorageFull`).
    pub fail_writes: AtomicBool,
    /// Every sync of the database file fails (`StorageFull`).
    pub fail_syncs: AtomicBool,
    /// Every side file fails to write (`StorageFull`), after its temporary file was created.
    pub fail_side_files: AtomicBool,
    /// Writes redb asked for (failed ones included).
    pub writes: AtomicU64,
    /// Syncs redb asked for (failed ones included).
    pub syncs: AtomicU64,
    /// The cache folder of the last backend opened with these faults.
    dir: Mutex<Option<PathBuf>>,
    journal: Mutex<Option<Journal>>,
}

/// What the backends wrote, for crash images.
#[derive(Debug)]
struct Journal {
    /// Where the side files seen at a sync are hard-linked.
    vault: PathBuf,
    events: Vec<Event>,
    /// One per completed sync, in order.
    marks: Vec<Mark>,
}

#[derive(Debug)]
enum Event {
    /// A backend opened the file, which held these bytes.
    Base(Vec<u8>),
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug)]
struct Mark {
    /// The events before this sync: `events[..upto]`.
    upto: usize,
    /// The names of the side files in `blobs/` right after the sync (temporary ones too).
    side_files: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn full() -> io::Error {
    io::Error::from(io::ErrorKind::StorageFull)
}

impl Faults {
    /// Makes every write, length change and sync fail (or work again).
    pub fn disk_full(&self, full: bool) {
        self.fail_writes.store(full, Ordering::SeqCst);
        self.fail_syncs.store(full, Ordering::SeqCst);
    }

    /// Makes every side file fail to write (or work again).
    pub fn side_files_fail(&self, fail: bool) {
        self.fail_side_files.store(fail, Ordering::SeqCst);
    }

    /// Starts recording crash images, one per completed sync from now on (the file as it is
    /// now is the base of the first), hard-linking side files into `vault` (created if
    /// missing; the test owns it). Starts over if already recording.
    ///
    /// # Errors
    /// If `vault` cannot be created, or the database file cannot be read.
    pub fn record_images(&self, vault: &Path) -> io::Result<()> {
        fs::create_dir_all(vault)?;
        let mut events = Vec::new();
        if let Some(dir) = lock(&self.dir).clone() {
            match fs::read(dir.join(super::DB_FILE)) {
                Ok(bytes) => events.push(Event::Base(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        *lock(&self.journal) = Some(Journal {
            vault: vault.to_path_buf(),
            events,
            marks: Vec::new(),
        });
        Ok(())
    }

    /// How many sync points have been recorded since [`Faults::record_images`].
    pub fn sync_points(&self) -> usize {
        lock(&self.journal).as_ref().map_or(0, |j| j.marks.len())
    }

    /// Writes into `dest` (created if missing) the cache folder as a crash right after the
    /// `n`-th recorded sync (from 0) would leave it: `tiered.redb` as of that sync and the side
    /// files then in `blobs/` (temporary ones empty).
    ///
    /// # Errors
    /// If `n` was not recorded, or a file cannot be written.
    pub fn write_image(&self, n: usize, dest: &Path) -> io::Result<()> {
        let journal = lock(&self.journal);
        let Some(journal) = journal.as_ref() else {
            return Err(io::Error::other("no crash images recorded"));
        };
        let Some(mark) = journal.marks.get(n) else {
            return Err(io::Error::other(format!(
                "sync point {n} not recorded ({} were)",
                journal.marks.len()
            )));
        };
        let events = &journal.events[..mark.upto];
        let start = events
            .iter()
            .rposition(|e| matches!(e, Event::Base(_)))
            .unwrap_or(0);
        let mut file = Vec::new();
        for event in &events[start..] {
            match event {
                Event::Base(bytes) => file.clone_from(bytes),
                Event::Write(offset, data) => {
                    let offset = usize::try_from(*offset).map_err(io::Error::other)?;
                    let end = offset + data.len();
                    if file.len() < end {
                        file.resize(end, 0);
                    }
                    file[offset..end].copy_from_slice(data);
                }
                Event::SetLen(len) => {
                    file.resize(usize::try_from(*len).map_err(io::Error::other)?, 0);
                }
            }
        }
        fs::create_dir_all(dest)?;
        fs::write(dest.join(super::DB_FILE), &file)?;
        let blobs = dest.join(super::blobs::FOLDER);
        let _ = fs::remove_dir_all(&blobs);
        if !mark.side_files.is_empty() {
            fs::create_dir_all(&blobs)?;
        }
        for name in &mark.side_files {
            if name.ends_with(".tmp") {
                fs::write(blobs.join(name), b"")?;
            } else {
                fs::copy(journal.vault.join(name), blobs.join(name))?;
            }
        }
        Ok(())
    }

    fn opened(&self, path: &Path, bytes: impl FnOnce() -> io::Result<Vec<u8>>) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            *lock(&self.dir) = Some(dir.to_path_buf());
        }
        if let Some(journal) = lock(&self.journal).as_mut() {
            journal.events.push(Event::Base(bytes()?));
        }
        Ok(())
    }

    fn journal(&self, event: impl FnOnce() -> Event) {
        if let Some(journal) = lock(&self.journal).as_mut() {
            journal.events.push(event());
        }
    }

    /// Marks a completed sync: the side files present now belong to its image.
    fn synced(&self) {
        let mut journal = lock(&self.journal);
        let Some(journal) = journal.as_mut() else {
            return;
        };
        let dir = lock(&self.dir).clone();
        let mut side_files = BTreeSet::new();
        if let Some(entries) = dir.and_then(|d| fs::read_dir(d.join(super::blobs::FOLDER)).ok()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".tmp") {
                    let kept = journal.vault.join(&name);
                    // Gone meanwhile (deleted after a commit): not in this image either.
                    if !kept.exists() && fs::hard_link(entry.path(), &kept).is_err() {
                        continue;
                    }
                }
                side_files.insert(name);
            }
        }
        journal.marks.push(Mark {
            upto: journal.events.len(),
            side_files: side_files.into_iter().collect(),
        });
    }
}

/// What a cache folder holds, read straight from its database file (which must not be open):
/// see [`Faults::audit`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Records in the database.
    pub records: u64,
    /// `disk_bytes` as the database stores it (records and side files).
    pub stored_bytes: u64,
    /// `blob_bytes` as the database stores it (the side files' share).
    pub stored_blob_bytes: u64,
    /// The records' bytes plus the lengths of the side files they reference, counted.
    pub counted_bytes: u64,
    /// The lengths of the side files the records reference, counted.
    pub counted_blob_bytes: u64,
    /// Side files some record references, by file name.
    pub referenced: BTreeSet<String>,
    /// Side files some record references that are missing or of another length.
    pub missing: BTreeSet<String>,
    /// Files in `blobs/` no record references (temporary ones included).
    pub unreferenced: BTreeSet<String>,
    /// The generation rows: label and generation.
    pub generations: Vec<(String, u64)>,
}

impl Faults {
    /// Reads the database file of the cache folder `dir` (not open: drop the cache first, or
    /// give a crash image) and counts what it holds against its stored totals. Opening it may
    /// repair it, as any open does.
    ///
    /// # Errors
    /// The database's error, as text, if it cannot be opened or read.
    pub fn audit(dir: &Path) -> Result<Audit, String> {
        use redb::{ReadableDatabase, TableError};

        use super::tables::{BLOB_BYTES, DISK_BYTES, GENERATIONS, META, RECORDS};

        let inner = || -> Result<Audit, redb::Error> {
            let db = redb::Database::create(dir.join(super::DB_FILE))?;
            let txn = db.begin_read()?;
            let mut audit = Audit::default();
            match txn.open_table(META) {
                Ok(meta) => {
                    audit.stored_bytes = meta.get(DISK_BYTES)?.map_or(0, |v| v.value());
                    audit.stored_blob_bytes = meta.get(BLOB_BYTES)?.map_or(0, |v| v.value());
                }
                Err(TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match txn.open_table(RECORDS) {
                Ok(records) => {
                    for item in records.range::<u128>(..)? {
                        let (_, record) = item?;
                        let record = record.value();
                        audit.records += 1;
                        audit.counted_bytes += record.len() as u64;
                        if let Some(blob) = crate::record::blob_of(record) {
                            audit.counted_bytes += blob.len;
                            audit.counted_blob_bytes += blob.len;
                            let name = format!("{:016x}", blob.id);
                            let path = dir.join(super::blobs::FOLDER).join(&name);
                            if fs::metadata(&path).map(|m| m.len()).ok() != Some(blob.len) {
                                audit.missing.insert(name.clone());
                            }
                            audit.referenced.insert(name);
                        }
                    }
                }
                Err(TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match txn.open_table(GENERATIONS) {
                Ok(gens) => {
                    for item in gens.range::<&str>(..)? {
                        let (label, generation) = item?;
                        audit
                            .generations
                            .push((label.value().to_string(), generation.value()));
                    }
                }
                Err(TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(audit)
        };
        let mut audit = inner().map_err(|e| e.to_string())?;
        if let Ok(entries) = fs::read_dir(dir.join(super::blobs::FOLDER)) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !audit.referenced.contains(&name) {
                    audit.unreferenced.insert(name);
                }
            }
        }
        Ok(audit)
    }
}

/// The faults of each cache folder opened with some, for the side files' seam.
static BY_FOLDER: Mutex<Vec<(PathBuf, Weak<Faults>)>> = Mutex::new(Vec::new());

fn register(dir: &Path, faults: &Arc<Faults>) {
    let mut all = lock(&BY_FOLDER);
    all.retain(|(d, f)| f.strong_count() > 0 && d != dir);
    all.push((dir.to_path_buf(), Arc::downgrade(faults)));
}

/// The seam in `blobs::write`: fails while the folder's faults say side files fail.
pub(crate) fn side_file_write(dir: &Path) -> io::Result<()> {
    let faults = lock(&BY_FOLDER)
        .iter()
        .find(|(d, _)| d == dir)
        .and_then(|(_, f)| f.upgrade());
    match faults {
        Some(f) if f.fail_side_files.load(Ordering::SeqCst) => Err(full()),
        _ => Ok(()),
    }
}

#[derive(Debug)]
pub(crate) struct FaultyBackend {
    inner: FileBackend,
    faults: Arc<Faults>,
}

impl FaultyBackend {
    /// A backend over `file`, the database at `path` (opened by the caller, 0600).
    pub fn new(
        path: &Path,
        file: std::fs::File,
        faults: Arc<Faults>,
    ) -> Result<Self, redb::DatabaseError> {
        if let Some(dir) = path.parent() {
            register(dir, &faults);
        }
        faults.opened(path, || fs::read(path))?;
        Ok(FaultyBackend {
            inner: FileBackend::new(file)?,
            faults,
        })
    }

    fn check(&self, switch: &AtomicBool) -> io::Result<()> {
        if switch.load(Ordering::SeqCst) {
            Err(full())
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
        self.inner.set_len(len)?;
        self.faults.journal(|| Event::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        self.check(&self.faults.fail_syncs)?;
        self.inner.sync_data()?;
        self.faults.synced();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.writes.fetch_add(1, Ordering::SeqCst);
        self.check(&self.faults.fail_writes)?;
        self.inner.write(offset, data)?;
        self.faults.journal(|| Event::Write(offset, data.to_vec()));
        Ok(())
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
