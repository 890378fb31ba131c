//! Keeping the cache folder private: a cache may hold query results and user data, so every
//! file the crate creates is 0600 and every folder 0700, whatever the process's umask.
//!
//! - Files are created with mode 0600 (`create_file`, `open_db_file`: redb would create its
//!   file with the default mode, so the database file is opened here and handed to redb).
//!   An existing regular file of this user that is open to others (an earlier build made them
//!   0644) is tightened when it is opened.
//! - At every open, [`secure_folder`] checks the cache folder: one of this user that is open
//!   to others (`mkdir -p` gives 0755) is tightened to 0700, with a warning; the cache's own
//!   files and `blobs/` in it are tightened too. A folder of another user that others may
//!   write to is refused: anyone could plant a file or a link where the cache reads and
//!   writes. One of another user that others may only read is used, with a warning (this
//!   user may not change its mode).
//!
//! Without Unix permissions (Windows), all of this does nothing.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::error::Result;

/// The group and other bits: a cache's files and folders have none.
#[cfg(unix)]
const OPEN_BITS: u32 = 0o077;

/// Creates (or truncates) `path` for writing, mode 0600.
pub(crate) fn create_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    tighten_open(&file, path);
    Ok(file)
}

/// Opens the database file for reading and writing, creating it empty (mode 0600) if missing:
/// redb takes an empty file as a new database.
pub(crate) fn open_db_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    tighten_open(&file, path);
    Ok(file)
}

/// Removes the group and other bits of an open regular file of this user, with a warning;
/// one it cannot change is reported, not refused (its folder keeps others out).
fn tighten_open(file: &File, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(meta) = file.metadata() else {
            return;
        };
        if !meta.is_file() || meta.mode() & OPEN_BITS == 0 || meta.uid() != my_uid() {
            return;
        }
        let was = format!("{:o}", meta.mode() & 0o7777);
        let tight = std::fs::Permissions::from_mode(meta.mode() & 0o7700);
        match file.set_permissions(tight) {
            Ok(()) => {
                tracing::warn!(file = %path.display(), was,
                    "a cache file was open to other users; made it private");
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), was, error = %e,
                    "a cache file is open to other users and its mode could not be changed");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
}

#[cfg(unix)]
fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks the cache folder `dir` (which exists): see the module's documentation.
///
/// # Errors
/// `Error::Config` for a folder of another user that others may write to; `Error::Io` if the
/// folder's mode cannot be read.
pub(crate) fn secure_folder(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use crate::error::Error;
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        let mode = meta.mode() & 0o7777;
        if meta.uid() != my_uid() {
            if mode & 0o022 != 0 {
                return Err(Error::Config(format!(
                    "the cache folder {} belongs to another user (uid {}) and others may write \
                     to it (mode {mode:o}): anyone could plant files where the cache reads and \
                     writes. Use a folder of your own, or have its owner make it 0700",
                    dir.display(),
                    meta.uid()
                )));
            }
            if mode & OPEN_BITS != 0 {
                tracing::warn!(folder = %dir.display(), mode = format!("{mode:o}"),
                    "the cache folder belongs to another user and others may read it; \
                     its files are private (0600) but their names are not");
            }
            return Ok(());
        }
        let mut tightened = tighten_path(dir, &meta, true);
        // The cache's own files (an earlier build left them 0644), and `blobs/`.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let ours = name.starts_with(super::open::DB_FILE)
                    || name.starts_with(super::open::OWNER_FILE)
                    || name == super::blobs::FOLDER;
                if !ours {
                    continue;
                }
                let path = entry.path();
                if let Ok(meta) = std::fs::symlink_metadata(&path) {
                    tightened |= tighten_path(&path, &meta, meta.is_dir());
                }
            }
        }
        // Side files: each written 0644 by an earlier build, whose other files gave it away.
        // A folder found private is not walked again at every open.
        if tightened {
            let blobs = dir.join(super::blobs::FOLDER);
            if let Ok(entries) = std::fs::read_dir(blobs) {
                for entry in entries.flatten() {
                    if let Ok(meta) = entry.metadata() {
                        tighten_path(&entry.path(), &meta, false);
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes the group and other bits of a regular file or folder (not a link) of this user;
/// whether it had any. A failure is a warning: the open goes on.
#[cfg(unix)]
fn tighten_path(path: &Path, meta: &std::fs::Metadata, folder: bool) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let regular = if folder {
        meta.is_dir()
    } else {
        meta.is_file()
    };
    if !regular || meta.uid() != my_uid() || meta.mode() & OPEN_BITS == 0 {
        return false;
    }
    let was = meta.mode() & 0o7777;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(was & 0o7700)) {
        Ok(()) => {
            tracing::warn!(path = %path.display(), was = format!("{was:o}"),
                "part of the cache folder was open to other users; made it private");
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), was = format!("{was:o}"), error = %e,
                "part of the cache folder is open to other users and its mode could not be \
                 changed");
        }
    }
    true
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_file_created_over_an_open_one_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner");
        std::fs::write(&path, b"1").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(create_file(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        drop(open_db_file(&dir.path().join("new")).unwrap());
        assert_eq!(mode(&dir.path().join("new")), 0o600);
    }

    #[test]
    fn only_the_cache_files_of_an_open_folder_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("app");
        std::fs::create_dir(&folder).unwrap();
        std::fs::create_dir(folder.join("blobs")).unwrap();
        for name in ["tiered.redb", "blobs/00000000000000ff", "notes.txt"] {
            std::fs::write(folder.join(name), b"x").unwrap();
            std::fs::set_permissions(folder.join(name), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        for sub in [&folder, &folder.join("blobs")] {
            std::fs::set_permissions(sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        secure_folder(&folder).unwrap();
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(mode(&folder.join("blobs")), 0o700);
        assert_eq!(mode(&folder.join("tiered.redb")), 0o600);
        assert_eq!(mode(&folder.join("blobs/00000000000000ff")), 0o600);
        assert_eq!(mode(&folder.join("notes.txt")), 0o644, "not the cache's");
    }
}
