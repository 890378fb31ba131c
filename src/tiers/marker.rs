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

/// Refuses `folder` to a process without Redis if it holds copies of a cache in Redis.
///
/// # Errors
/// [`Error::Config`] naming the server, and what to do.
pub(crate) fn refuse_if_marked(folder: &Path) -> Result<()> {
    let Ok(shown) = std::fs::read_to_string(folder.join(FILE)) else {
        return Ok(());
    };
    Err(Error::Config(format!(
        "{} holds copies of the cache in Redis at {}: open it with that Redis server \
         (CacheBuilder::redis; the tiered command: --redis URL instead of the folder), or \
         delete the folder to use it without Redis",
        folder.display(),
        shown.trim()
    )))
}
