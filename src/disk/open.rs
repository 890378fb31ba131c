//! Opening the cache folder: create it (0700, see `private.rs`), take the database (waiting
//! for another process to let go), set a damaged file aside when asked, and read the tables'
//! state.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{ReadableTable, ReadableTableMetadata};

use super::guard::{catch, guarded, Caught};
use super::space::Learned;
use super::tables::*;
use crate::error::{Error, Result};
use crate::DamagedFile;

/// The database file inside the cache folder.
pub(crate) const DB_FILE: &str = "tiered.redb";
/// The file naming the process that has the folder open.
pub(crate) const OWNER_FILE: &str = "owner";

/// What an open found in the database.
pub(crate) struct Opened {
    pub db: redb::Database,
    pub generations: Vec<(String, u64)>,
    pub totals: Totals,
    /// What `space.rs` learned of the file.
    pub learned: Learned,
    pub entries: u64,
    /// A damaged file was moved aside to open this one.
    pub set_aside: bool,
    /// The database file's descriptor, which the child of a fork lets go of (see `fork.rs`).
    pub watch: crate::fork::Watch,
}

/// Creates the cache folder (and its parents) 0700 if missing, and makes an existing one
/// private (see `private.rs`); a path that is a file is refused with a message saying so.
pub(crate) fn create_folder(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists && dir.exists() && !dir.is_dir() {
            Error::Config(format!(
                "the cache path {} is a file, not a folder: choose a folder path (it is \
                 created if missing), e.g. ./.cache/app",
                dir.display()
            ))
        } else {
            Error::io(dir, e)
        }
    })?;
    super::private::secure_folder(dir)
}

/// How to open the database, whether at start or when the tier comes back into service.
#[derive(Clone, Debug)]
pub(crate) struct OpenSettings {
    pub page_cache: usize,
    pub on_damage: DamagedFile,
    /// Tests: a backend that fails on command.
    #[cfg(any(test, feature = "testing-faults"))]
    pub faults: Option<std::sync::Arc<super::faults::Faults>>,
}

impl OpenSettings {
    fn create(&self, path: &Path) -> Result<(redb::Database, crate::fork::Watch), redb::Error> {
        let mut builder = redb::Database::builder();
        builder.set_cache_size(self.page_cache);
        // Created here, 0600: redb would create it with the default mode.
        let file = super::private::open_db_file(path)?;
        // The file's locks (redb's) belong to the open file: a child of a fork must let go.
        let watch = crate::fork::watch(&file);
        #[cfg(any(test, feature = "testing-faults"))]
        if let Some(faults) = &self.faults {
            let backend = super::faults::FaultyBackend::new(path, file, faults.clone())?;
            return Ok((builder.create_with_backend(backend)?, watch));
        }
        Ok((
            builder.create_with_backend(redb::backends::FileBackend::new(file)?)?,
            watch,
        ))
    }
}

/// Opens (or creates) the database in `dir`, retrying while another process holds it.
pub(crate) fn open_database(
    dir: &Path,
    timeout: Duration,
    settings: &OpenSettings,
) -> Result<Opened> {
    let on_damage = settings.on_damage;
    let path = dir.join(DB_FILE);
    let started = Instant::now();
    let mut set_aside_done = false;
    loop {
        let attempt = catch(|| settings.create(&path));
        let attempt = match attempt {
            Err(Caught::Redb(redb::Error::DatabaseAlreadyOpen)) => None,
            Err(caught) => Some(Err(caught.into_error(&path))),
            Ok((db, watch)) => Some(read_state(&path, db, watch)),
        };
        match attempt {
            Some(Ok(opened)) => {
                write_owner(dir);
                return Ok(Opened {
                    set_aside: set_aside_done,
                    ..opened
                });
            }
            None => {
                let waited = started.elapsed();
                if waited >= timeout {
                    return Err(Error::Locked {
                        path: dir.to_path_buf(),
                        pid: read_owner(dir),
                        waited,
                    });
                }
                std::thread::sleep((timeout - waited).min(Duration::from_millis(25)));
            }
            Some(Err(Error::Corrupt { detail, .. }))
                if on_damage == DamagedFile::SetAside && !set_aside_done =>
            {
                tracing::warn!(file = %path.display(), %detail, "cache database is damaged");
                set_aside(&path).map_err(|e| Error::io(&path, e))?;
                set_aside_done = true;
            }
            Some(Err(e)) => return Err(e),
        }
    }
}

/// `tiered.redb.damaged-<unix ms>`, with `-2`, `-3`... if that name is taken: a rename would
/// replace the file already set aside under it.
fn set_aside_path(path: &Path) -> PathBuf {
    let stamp = crate::expiry::to_ms(std::time::SystemTime::now());
    let name = format!("{DB_FILE}.damaged-{stamp}");
    let mut aside = path.with_file_name(&name);
    let mut n = 1;
    while aside.symlink_metadata().is_ok() {
        n += 1;
        aside = path.with_file_name(format!("{name}-{n}"));
    }
    aside
}

/// Creates the tables if missing and reads the generations and counters.
fn read_state(path: &Path, db: redb::Database, watch: crate::fork::Watch) -> Result<Opened> {
    let state = guarded(path, || {
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(true);
        let state = {
            // One by one, so that a panic in an open cannot abort the process (see `open_after`).
            let records = txn.open_table(RECORDS)?;
            let (records, access) = open_after(&txn, records, ACCESS)?;
            drop(access);
            let (records, gens) = open_after(&txn, records, GENERATIONS)?;
            let ((records, gens), mut meta) = open_after(&txn, (records, gens), META)?;
            let version = meta.get(DB_VERSION)?.map(|v| v.value());
            match version {
                None => {
                    meta.insert(DB_VERSION, CURRENT_DB_VERSION)?;
                }
                Some(CURRENT_DB_VERSION) => {}
                Some(other) => {
                    return Err(redb::Error::Corrupted(format!(
                        "database layout {other} was written by another version of tiered \
                         (this one reads {CURRENT_DB_VERSION})"
                    )))
                }
            }
            let bytes = meta.get(DISK_BYTES)?.map(|v| v.value());
            let blob_bytes = meta.get(BLOB_BYTES)?.map(|v| v.value());
            let totals = match (bytes, blob_bytes) {
                (Some(bytes), Some(blob_bytes)) => Totals { bytes, blob_bytes },
                // A new file, or one written before the side files' share was kept: count once.
                _ => {
                    let mut totals = Totals::default();
                    for item in records.range::<u128>(..)? {
                        let (_, record) = item?;
                        let record = record.value();
                        let blob = crate::record::blob_of(record).map_or(0, |b| b.len);
                        totals.bytes = (totals.bytes)
                            .saturating_add(record.len() as u64)
                            .saturating_add(blob);
                        totals.blob_bytes = totals.blob_bytes.saturating_add(blob);
                    }
                    meta.insert(DISK_BYTES, totals.bytes)?;
                    meta.insert(BLOB_BYTES, totals.blob_bytes)?;
                    totals
                }
            };
            let prior = Learned::default();
            let learned = Learned {
                ratio_milli: meta
                    .get(SPACE_RATIO)?
                    .map_or(prior.ratio_milli, |v| v.value()),
                slack: meta.get(SPACE_SLACK)?.map_or(prior.slack, |v| v.value()),
            };
            let mut generations = Vec::new();
            for item in gens.range::<&str>(..)? {
                let (label, generation) = item?;
                generations.push((label.value().to_string(), generation.value()));
            }
            (generations, totals, learned, records.len()?)
        };
        txn.commit()?;
        Ok(state)
    });
    match state {
        Ok((generations, totals, learned, entries)) => Ok(Opened {
            db,
            generations,
            totals,
            learned,
            entries,
            set_aside: false,
            watch,
        }),
        Err(e) => {
            // redb may panic while dropping a damaged database too.
            super::guard::drop_guarded(db);
            Err(e)
        }
    }
}

fn write_owner(dir: &Path) {
    let tmp = dir.join(format!("{OWNER_FILE}.{}", std::process::id()));
    let result = super::private::create_file(&tmp)
        .and_then(|mut f| writeln!(f, "{}", std::process::id()))
        .and_then(|()| fs::rename(&tmp, dir.join(OWNER_FILE)));
    if let Err(e) = result {
        // Only the message of a later `Locked` error depends on it.
        tracing::warn!(dir = %dir.display(), error = %e, "could not write the owner file");
    }
}

/// Removes the folder's owner file if it names this process (a closing or exiting owner; the
/// file of an owner that took over since is left alone).
pub(crate) fn remove_owner(dir: &Path) {
    if read_owner(dir) == Some(std::process::id()) {
        let _ = fs::remove_file(dir.join(OWNER_FILE));
    }
}

/// The pid in the folder's owner file, if there is a readable one.
pub(crate) fn read_owner(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join(OWNER_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether an I/O error means the disk (or the process's file-size limit) is full: the tier
/// can then wait for space instead of failing the open.
pub(crate) fn is_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge
    )
}

/// Moves a damaged database file aside (`tiered.redb.damaged-<unix ms>`), so that a fresh one
/// can take its place.
pub(crate) fn set_aside(path: &Path) -> std::io::Result<()> {
    let aside = set_aside_path(path);
    match fs::rename(path, &aside) {
        Ok(()) => {
            tracing::warn!(file = %path.display(), aside = %aside.display(),
                "damaged cache database moved aside; continuing on an empty one");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
