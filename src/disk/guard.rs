//! Calls into redb, guarded: redb can panic on some damaged files, and its errors are mapped
//! to ours with the file's path.
//!
//! A panic caught here prints nothing: a process-wide panic hook, installed on first use and
//! chaining to the hook that was there before, stays silent for panics raised inside a guarded
//! call and records where they came from. A panic raised in redb's own code is file damage; a
//! panic anywhere else (a bug of ours) is reported as such, never as damage.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use crate::error::Error;

/// What went wrong in a guarded call.
#[derive(Debug)]
pub(crate) enum Caught {
    Redb(redb::Error),
    /// redb panicked: the file is damaged.
    Panic(String),
    /// Code outside redb panicked inside a guarded call: a bug, not damage.
    Bug(String),
}

impl Caught {
    pub fn into_error(self, path: &Path) -> Error {
        match self {
            Caught::Redb(e) => from_redb(path, e),
            Caught::Panic(message) => Error::Corrupt {
                path: path.to_path_buf(),
                detail: format!("redb panicked: {message}"),
            },
            Caught::Bug(message) => Error::Internal(message),
        }
    }

    /// Whether this says the file is damaged.
    pub fn is_damage(&self) -> bool {
        match self {
            Caught::Panic(_) => true,
            Caught::Redb(e) => matches!(from_kind(e), Kind::Damage),
            Caught::Bug(_) => false,
        }
    }

    /// What happened, without the file's path (callers add it once).
    pub fn detail(&self) -> String {
        match self {
            Caught::Redb(e) => e.to_string(),
            Caught::Panic(m) => format!("redb panicked: {m}"),
            Caught::Bug(m) => format!("internal error: {m}"),
        }
    }
}

thread_local! {
    /// Depth of guarded calls on this thread: the hook stays silent while it is above zero.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// Where the last silenced panic came from (file of its location).
    static LAST_PANIC_FILE: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.try_with(Cell::get).unwrap_or(0) > 0 {
                let file = info.location().map(|l| l.file().to_string());
                let _ = LAST_PANIC_FILE.try_with(|f| *f.borrow_mut() = file);
            } else {
                previous(info);
            }
        }));
    });
}

/// Whether a panic at `file` (a source path) was raised by redb.
fn in_redb(file: &str) -> bool {
    file.split(['/', '\\'])
        .any(|part| part == "redb" || part.starts_with("redb-"))
}

/// Runs `f`, catching a panic, silently.
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T, redb::Error>) -> Result<T, Caught> {
    install_hook();
    // `try_with`: at exit (the exit hook's reads) this thread's locals may be gone already.
    let _ = GUARDED.try_with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    let _ = GUARDED.try_with(|g| g.set(g.get() - 1));
    match result {
        Ok(result) => result.map_err(Caught::Redb),
        Err(panic) => {
            let message = panic_message(&*panic);
            let file = LAST_PANIC_FILE
                .try_with(|f| f.borrow_mut().take())
                .ok()
                .flatten();
            match file {
                Some(file) if !in_redb(&file) => Err(Caught::Bug(format!("{message} at {file}"))),
                _ => Err(Caught::Panic(message)),
            }
        }
    }
}

/// Runs `f`, turning redb's errors and panics into ours.
pub(crate) fn guarded<T>(
    path: &Path,
    f: impl FnOnce() -> Result<T, redb::Error>,
) -> Result<T, Error> {
    catch(f).map_err(|c| c.into_error(path))
}

/// A database whose drop is guarded, wherever it happens: the last holder of a damaged file's
/// database may be any reader's thread (a user's `get`), and redb's close (a commit, an fsync)
/// may panic on the damage.
pub(crate) struct Db {
    db: Option<redb::Database>,
    /// The database file's descriptor, watched for a fork (`fork.rs`) until it is closed.
    _watch: Option<crate::fork::Watch>,
}

impl Db {
    pub fn new(db: redb::Database, watch: Option<crate::fork::Watch>) -> Self {
        Db {
            db: Some(db),
            _watch: watch,
        }
    }
}

impl std::ops::Deref for Db {
    type Target = redb::Database;

    fn deref(&self) -> &redb::Database {
        // Taken only by `drop`.
        self.db.as_ref().expect("a database until dropped")
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut redb::Database {
        self.db.as_mut().expect("a database until dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            drop_guarded(db);
        }
    }
}

/// Drops `value` (a database, a transaction) inside the guard: redb may panic on drop too.
pub(crate) fn drop_guarded<T>(value: T) {
    let _ = catch(move || {
        drop(value);
        Ok(())
    });
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

enum Kind {
    Damage,
    Io,
    Other,
}

fn from_kind(e: &redb::Error) -> Kind {
    match e {
        redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_) => Kind::Damage,
        // Every table of the file is tiered's, opened with the types it was created with: a
        // stored definition that differs is a damaged table tree (or not tiered's file).
        redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_) => Kind::Damage,
        // A file cut short (inside its header, say) reads past its end: damage too.
        redb::Error::Io(source)
            if matches!(
                source.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Kind::Damage
        }
        redb::Error::Io(_) => Kind::Io,
        _ => Kind::Other,
    }
}

pub(crate) fn from_redb(path: &Path, e: redb::Error) -> Error {
    let path = path.to_path_buf();
    match (from_kind(&e), e) {
        (_, redb::Error::UpgradeRequired(v)) => Error::Corrupt {
            path,
            detail: format!("file format {v} is older than this build reads"),
        },
        (Kind::Damage, e) => Error::Corrupt {
            path,
            detail: match e {
                redb::Error::Corrupted(detail) => detail,
                other => other.to_string(),
            },
        },
        (_, redb::Error::Io(source)) => Error::Io { path, source },
        (_, other) => Error::Storage {
            path,
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_outside_redb_is_a_bug_not_damage() {
        let caught = catch::<()>(|| panic!("overflow")).unwrap_err();
        assert!(matches!(&caught, Caught::Bug(m) if m.contains("overflow")));
        assert!(!caught.is_damage());
        assert!(matches!(
            caught.into_error(Path::new("x")),
            Error::Internal(_)
        ));
    }

    #[test]
    fn redb_sources_are_recognised() {
        assert!(in_redb(
            "/root/.cargo/registry/src/index.crates.io-1/redb-4.6.0/src/tree_store/btree.rs"
        ));
        assert!(!in_redb("src/disk/writer.rs"));
    }
}
