//! Calls into redb, guarded: redb can panic on some damaged files, and its errors are mapped
//! to ours with the file's path.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::error::Error;

/// What went wrong in a guarded call.
pub(crate) enum Caught {
    Redb(redb::Error),
    Panic(String),
}

impl Caught {
    pub fn into_error(self, path: &Path) -> Error {
        match self {
            Caught::Redb(e) => from_redb(path, e),
            Caught::Panic(message) => Error::Corrupt {
                path: path.to_path_buf(),
                detail: format!("redb panicked: {message}"),
            },
        }
    }
}

/// Runs `f`, catching a panic inside redb.
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T, redb::Error>) -> Result<T, Caught> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(Caught::Redb),
        Err(panic) => Err(Caught::Panic(panic_message(&*panic))),
    }
}

/// Runs `f`, turning redb's errors and panics into ours; a panic becomes [`Error::Corrupt`].
pub(crate) fn guarded<T>(
    path: &Path,
    f: impl FnOnce() -> Result<T, redb::Error>,
) -> Result<T, Error> {
    catch(f).map_err(|c| c.into_error(path))
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

pub(crate) fn from_redb(path: &Path, e: redb::Error) -> Error {
    let path = path.to_path_buf();
    match e {
        redb::Error::Corrupted(detail) => Error::Corrupt { path, detail },
        redb::Error::UpgradeRequired(v) => Error::Corrupt {
            path,
            detail: format!("file format {v} is older than this build reads"),
        },
        redb::Error::Io(source) if source.kind() == std::io::ErrorKind::InvalidData => {
            Error::Corrupt {
                path,
                detail: source.to_string(),
            }
        }
        redb::Error::Io(source) => Error::Io { path, source },
        other => Error::Storage {
            path,
            detail: other.to_string(),
        },
    }
}
