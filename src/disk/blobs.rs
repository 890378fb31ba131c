//! Large payloads as side files in `blobs/`.
//!
//! redb keeps a value whole in power-of-two runs of pages and never shrinks its file: a 100 MB
//! value took a 268 MB file, and writing one was many times slower than writing a file. So a
//! payload of [`THRESHOLD`] bytes or more is written to `blobs/<id>` instead, and the record
//! holds its [`BlobRef`] (id, length, checksum). The rules that keep the two consistent:
//!
//! - A blob is written under a temporary name, synced, renamed and its folder synced *before*
//!   the put that references it is queued: a committed record never points at a missing file.
//! - Ids are fresh for every write, so a blob belongs to one record. The writer deletes it after
//!   the commit that removes or replaces that record (never before: a failed commit keeps it).
//! - A blob whose record never committed (a crash, a disk that failed) is an orphan: a sweep
//!   pass that saw no record (committed or queued) reference it deletes it once it is older
//!   than [`ORPHAN_AGE`], or at the first whole pass if it was in the folder before this
//!   process opened it (a crash's leftovers go at once) — unless it is *pinned*.
//! - A writer pins its blob ([`Pin`]: a shared `flock` on the file, taken before the file
//!   has its final name) until its put is queued by the folder's owner. A client of the owner
//!   writes its blob and then sends the put; when the owner changes in between, the put
//!   reaches the next owner, for which the file was already there at open: the pin keeps it,
//!   and a process that died holds no pin, so its leftovers still go at once.
//! - The writer checks that a put's blob is there before committing it, on the thread that
//!   also deletes orphans (between two commits), so a committed record never points at a
//!   deleted file; a put whose file vanished anyway is applied as a removal and its writer
//!   gets an error.
//! - A missing or damaged blob reads as a miss (with a warning); its record is dropped.

use crate::bytes::Source;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use xxhash_rust::xxh3::xxh3_64;

use crate::record::BlobRef;

/// Payloads at least this large go to side files. A guess to be measured (issue 6): below it,
/// a file and an fsync per value cost more than redb's page rounding.
pub(crate) const THRESHOLD: usize = 64 << 10;
/// The folder of side files, inside the cache folder.
pub(crate) const FOLDER: &str = "blobs";
/// A blob no record references is deleted once it is this old: far longer than any insert
/// takes between writing its blob and queueing its record.
pub(crate) const ORPHAN_AGE: Duration = Duration::from_secs(600);
/// How old a temporary side file found at open must be before the first pass deletes it (it
/// is pinned only once created).
const TMP_GRACE: Duration = Duration::from_secs(60);

fn folder(dir: &Path) -> PathBuf {
    dir.join(FOLDER)
}

fn path(dir: &Path, id: u64) -> PathBuf {
    folder(dir).join(format!("{id:016x}"))
}

/// A fresh id: unique across this process's writes, and across processes by the pid and the
/// time mixed in.
fn fresh_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut seed = [0u8; 28];
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    seed[20..].copy_from_slice(&n.to_le_bytes());
    xxh3_64(&seed)
}

/// A side file on its way to its record: while this is held, no sweeper (of any process)
/// deletes the file as an orphan. Drop it once the put that references the file is queued by
/// the folder's owner (or abandoned).
#[derive(Debug)]
pub(crate) struct Pin {
    _file: fs::File,
    /// Dropped after the file is closed: a child of a fork lets go of the pin (`fork.rs`).
    _watch: crate::fork::Watch,
}

/// Takes a shared lock on `file` (`exclusive`: an exclusive one), without waiting; `false` if
/// another open of the file holds a conflicting one.
#[cfg(unix)]
fn try_flock(file: &fs::File, exclusive: bool) -> bool {
    use std::os::fd::AsRawFd;
    let kind = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock on a valid open descriptor has no other precondition.
    unsafe { libc::flock(file.as_raw_fd(), kind | libc::LOCK_NB) == 0 }
}

/// Whether another open of the file at `path` pins it (see [`Pin`]).
fn pinned(path: &Path) -> bool {
    #[cfg(unix)]
    {
        // Opened read-only: the lock is taken on this open and dropped with it.
        fs::File::open(path).is_ok_and(|f| !try_flock(&f, true))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Writes `payload` to a new side file, durably, and returns its reference and its pin.
pub(crate) fn write(dir: &Path, payload: &[u8]) -> io::Result<(BlobRef, Pin)> {
    let folder = folder(dir);
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&folder)?;
    let id = fresh_id();
    let final_path = path(dir, id);
    let tmp = final_path.with_extension("tmp");
    let written = (|| {
        let mut file = super::private::create_file(&tmp)?;
        // Pinned before it has its final name, so that it is never an unpinned orphan while
        // this process lives.
        #[cfg(unix)]
        if !try_flock(&file, false) {
            return Err(io::Error::other("could not lock a new side file"));
        }
        file.write_all(payload)?;
        #[cfg(any(test, feature = "testing-faults"))]
        super::faults::side_file_write(dir)?;
        file.sync_all()?;
        fs::rename(&tmp, &final_path)?;
        fs::File::open(&folder)?.sync_all()?;
        Ok(file)
    })();
    let file = match written {
        Ok(file) => file,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&final_path);
            return Err(e);
        }
    };
    let blob = BlobRef {
        id,
        len: payload.len() as u64,
        sum: xxh3_64(payload),
    };
    let watch = crate::fork::watch(&file);
    Ok((
        blob,
        Pin {
            _file: file,
            _watch: watch,
        },
    ))
}

/// A blob's bytes, mapped read-only rather than copied (see `bytes.rs`), checked: `None` if
/// it is missing or damaged (logged).
pub(crate) fn read_shared(dir: &Path, blob: &BlobRef) -> Option<std::sync::Arc<Source>> {
    let path = path(dir, blob.id);
    let checked = fs::File::open(&path)
        .and_then(|f| Source::open(&f, &path))
        .map_err(|e| e.to_string())
        .and_then(|source| {
            if source.len() as u64 == blob.len && xxh3_64(&source) == blob.sum {
                Ok(source)
            } else {
                Err("damaged (length or checksum)".to_string())
            }
        });
    match checked {
        Ok(source) => Some(std::sync::Arc::new(source)),
        Err(why) => {
            tracing::warn!(file = %path.display(), why, "cache side file unreadable: a miss");
            None
        }
    }
}

/// Reads a blob in one pass into its final buffer, or says why it cannot: for a caller that
/// decides itself whether that is worth a warning.
pub(crate) fn try_read(dir: &Path, blob: &BlobRef) -> Result<Vec<u8>, String> {
    match fs::read(path(dir, blob.id)) {
        Ok(bytes) if bytes.len() as u64 == blob.len && xxh3_64(&bytes) == blob.sum => Ok(bytes),
        Ok(_) => Err("damaged (length or checksum)".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Deletes the blobs of records that are gone (after the commit that removed them).
pub(crate) fn delete(dir: &Path, ids: &[u64]) {
    for id in ids {
        match fs::remove_file(path(dir, *id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!(id, error = %e, "could not delete a cache side file"),
        }
    }
}

/// The ids of the side files (and temporary files) in the folder now.
pub(crate) fn list(dir: &Path) -> HashSet<u64> {
    let Ok(entries) = fs::read_dir(folder(dir)) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            u64::from_str_radix(name.strip_suffix(".tmp").unwrap_or(&name), 16).ok()
        })
        .collect()
}

/// Whether `blob`'s file is in the folder with its length (its content is checked when read).
pub(crate) fn present(dir: &Path, blob: &BlobRef) -> bool {
    fs::metadata(path(dir, blob.id)).is_ok_and(|m| m.len() == blob.len)
}

/// Deletes side files that `referenced` does not keep, that no live process pins (see
/// [`Pin`]), and that are older than [`ORPHAN_AGE`] or were in the folder before this process
/// opened it (`preexisting`: a crash's leftovers go at the first whole pass); returns how
/// many. Temporary files left by a crash mid-write go the same way.
pub(crate) fn delete_orphans(
    dir: &Path,
    referenced: impl Fn(u64) -> bool,
    preexisting: &HashSet<u64>,
) -> usize {
    let Ok(entries) = fs::read_dir(folder(dir)) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut deleted = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let (stem, tmp) = match name.strip_suffix(".tmp") {
            Some(stem) => (stem, true),
            None => (&*name, false),
        };
        let Ok(id) = u64::from_str_radix(stem, 16) else {
            continue; // not ours
        };
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .map_or(Duration::ZERO, |t| {
                now.duration_since(t).unwrap_or_default()
            });
        // A temporary file is pinned a moment after it is created: one that was there at
        // open may be a live writer's in that moment, so it must also be a little old.
        let old = age >= ORPHAN_AGE || (preexisting.contains(&id) && (!tmp || age >= TMP_GRACE));
        if old
            && (tmp || !referenced(id))
            && !pinned(&entry.path())
            && fs::remove_file(entry.path()).is_ok()
        {
            deleted += 1;
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_reads_back_and_a_damaged_one_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let payload = vec![7u8; 100_000];
        let (blob, _pin) = write(dir.path(), &payload).unwrap();
        assert_eq!(
            read_shared(dir.path(), &blob).as_deref().map(|s| &s[..]),
            Some(&payload[..])
        );
        let mut bad = payload.clone();
        bad[500] ^= 1;
        fs::write(path(dir.path(), blob.id), &bad).unwrap();
        assert!(read_shared(dir.path(), &blob).is_none());
        delete(dir.path(), &[blob.id]);
        assert!(read_shared(dir.path(), &blob).is_none(), "missing");
        assert_ne!(
            write(dir.path(), &payload).unwrap().0.id,
            blob.id,
            "fresh ids"
        );
    }
}
