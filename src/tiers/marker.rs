//! Which tier a folder serves, kept in the folder: a folder in front of Redis (`chain.rs`)
//! holds copies stamped with Redis's tokens, which a process without Redis would judge
//! invalidated and reclaim, emptying the folder for everyone. So such a folder carries a
//! marker file, `redis-copies` (the server's URL without its password, and the prefix), and
//! a process that opens it without Redis is refused with a message that says what to do.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// The marker's file name in the folder.
pub(crate) const FILE: &str = "redis-copies";

/// Marks `folder` as holding copies of the cache in Redis at `shown` (no password).
///
/// # Errors
/// [`Error::Io`] if the marker cannot be written.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn mark(folder: &Path, shown: &str) -> Result<()> {
    let path = folder.join(FILE);
    if std::fs::read_to_string(&path).is_ok_and(|held| held == shown) {
        return Ok(());
    }
    let mut file = crate::disk::private::create_file(&path).map_err(|e| Error::io(&path, e))?;
    file.write_all(shown.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&path, e))
}

/// Refuses `folder` to a process without Redis if it holds copies of a cache in Redis: if the
/// marker is there at all, readable or not (a marker another user cannot read, a broken link,
/// garbage, all refuse).
///
/// # Errors
/// [`Error::Config`] naming the server, and what to do.
pub(crate) fn refuse_if_marked(folder: &Path) -> Result<()> {
    let path = folder.join(FILE);
    if path.symlink_metadata().is_err() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} holds copies of the cache in Redis at {} (its file {FILE} says so): open it with \
         that Redis server (CacheBuilder::redis; the tiered command: --redis URL instead of the \
         folder), or delete the folder, which holds only copies, to use it without Redis",
        folder.display(),
        shown(&path)
    )))
}

/// Refuses `folder` to a process with Redis if it holds a cache of its own (a database file
/// and no marker): its records are not copies of Redis's, and would be deleted as such.
///
/// # Errors
/// [`Error::Config`] saying so, and what to do.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn refuse_if_local(folder: &Path) -> Result<()> {
    if folder.join(FILE).symlink_metadata().is_ok()
        || folder
            .join(crate::disk::DB_FILE)
            .symlink_metadata()
            .is_err()
    {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} holds a cache without Redis: its entries are not copies of Redis's, and a folder \
         in front of Redis would drop them. Give the cache in front of Redis a folder of its \
         own (or delete this one)",
        folder.display()
    )))
}

/// What the marker at `path` names, for a message: at most its first 256 bytes.
fn shown(path: &Path) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(256).read_to_end(&mut head));
    match read {
        Ok(_) if !head.is_empty() => format!("`{}`", String::from_utf8_lossy(&head).trim()),
        _ => "(unreadable)".into(),
    }
}
