//! The one error type of the crate.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `Result<T, tiered::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `tiered`.
///
/// Each message says what happened and, where there is something to do, what to do.
/// A damaged record, an expired entry or a value whose type changed shape is *not* an error:
/// it reads as a miss (see [`Stats`](crate::Stats)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder of the cache could not be read or written.
    ///
    /// For the common causes (permissions, a full disk, a read-only file system, a file where
    /// a folder should be) the message ends with what to do.
    #[error("I/O error on {path}: {source}{hint}", hint = io_hint(source.kind()))]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Another process has the cache folder open, cannot be reached through the folder's
    /// socket, and did not let go within `open_timeout`.
    ///
    /// When the folder's `owner` file names this very process, the message says so: another
    /// `Cache` on the same folder is still closing here, or is open under a path that does not
    /// canonicalize to the same one (a bind mount, say).
    #[error("{}", locked_message(path, *pid, *waited))]
    Locked {
        /// The cache folder.
        path: PathBuf,
        /// The process id written in the folder's `owner` file, when it could be read.
        pid: Option<u32>,
        /// How long this open waited.
        waited: Duration,
    },

    /// The database file is damaged beyond what redb can repair.
    #[error(
        "cache database {path} is damaged ({detail}). Delete it, or open with \
         `.on_damaged_file(DamagedFile::SetAside)` to move it aside and start an empty cache"
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What redb reported.
        detail: String,
    },

    /// The disk tier failed (for example a full disk) or was closed.
    #[error("cache database {path}: {detail}")]
    Storage {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },

    /// A key or value could not be encoded, or a value would not read back as it was written.
    #[error("could not encode {what} for the cache: {detail}")]
    Encode {
        /// `"key"` or the value's type name.
        what: String,
        /// The serializer's message.
        detail: String,
    },

    /// [`Cache::resource`](crate::Cache::resource) found the name taken by a value of another type.
    #[error("resource {name:?} holds a value of another type than {expected}")]
    ResourceType {
        /// The resource's name.
        name: String,
        /// The type that was asked for.
        expected: &'static str,
    },

    /// The builder was given settings that cannot work together.
    #[error("invalid cache configuration: {0}")]
    Config(String),

    /// A value too large for the tier it must be stored in.
    #[error(
        "{what} encodes to {bytes} bytes, more than the disk tier's capacity ({capacity} \
         bytes): raise `disk_capacity`, or keep it in memory with `Options::memory_only()`"
    )]
    TooLarge {
        /// The value's type.
        what: String,
        /// The size of its record.
        bytes: u64,
        /// The disk tier's capacity.
        capacity: u64,
    },

    /// A read-through computation would wait for itself: it asks, directly or through a
    /// computation on another thread, for a key whose computation is waiting for it.
    #[error(
        "get_or_insert_with would wait forever: this computation waits, directly or through \
         another thread, for a key whose computation waits for it. Compute the inner value \
         before the outer call, or give the computations keys that do not depend on each other"
    )]
    Deadlock,

    /// The process that holds the cache folder (this process is its client) did not answer
    /// within [`request_timeout`](crate::CacheBuilder::request_timeout): it is stopped (a
    /// debugger, SIGSTOP, a frozen container) or overloaded. A write may still be applied if
    /// that process resumes; until it answers again, calls do not wait for it.
    #[error(
        "the process that holds the cache folder {path} (pid {pid}) did not answer within {waited:?}: it is stopped or overloaded. This call was not confirmed (a write may still be applied if that process resumes); reads meanwhile are misses. Resume or end that process, or raise CacheBuilder::request_timeout"
    )]
    OwnerNotAnswering {
        /// The cache folder.
        path: PathBuf,
        /// The process id of the folder's owner.
        pid: u32,
        /// How long the call waited.
        waited: std::time::Duration,
    },

    /// [`Cache::flush`](crate::Cache::flush) of a client: `Durability::Batched` writes that
    /// the process holding the cache folder had acknowledged (queued) were lost when it ended
    /// before committing them (it was killed). Reported by the first flush of each thread
    /// after the loss.
    #[error(
        "{writes} batched write(s) that the process holding the cache folder {path} had \
         acknowledged may be lost: it ended (killed) before committing them. Write them again \
         if they matter, or use Durability::Immediate for writes that must survive that \
         process's crash"
    )]
    WritesLost {
        /// The cache folder.
        path: PathBuf,
        /// How many acknowledged writes may be lost (some may have been committed).
        writes: u64,
    },

    /// [`Cache::export`](crate::Cache::export) could not write its stream.
    #[error(
        "could not write the cache export after {exported} entries: {source}. The export is \
         incomplete (an import of it stops with an error at the cut); free space or fix the \
         destination and export again"
    )]
    Export {
        /// Entries written before the failure.
        exported: u64,
        /// The writer's error.
        #[source]
        source: std::io::Error,
    },

    /// [`Cache::import`](crate::Cache::import) met a stream it cannot read on: damaged, cut
    /// short, not an export, or written by a newer `tiered`. The entries before that point
    /// were imported and stay.
    #[error("{}", import_message(*imported, detail))]
    Import {
        /// Entries imported before the stream stopped being readable.
        imported: u64,
        /// What is wrong with the stream.
        detail: String,
    },

    /// A bug in `tiered` (a panic caught where none should happen). Please report it.
    #[error("internal error in tiered (please report it): {0}")]
    Internal(String),
}

/// What to do about an I/O error of this kind, as the end of a sentence-ending message.
fn io_hint(kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind as K;
    match kind {
        K::PermissionDenied => {
            ". Fix the permissions of this path or of the folder it is in (this user must be \
             able to read and write them), or choose another folder"
        }
        K::StorageFull | K::QuotaExceeded => {
            ". The disk is full or over quota: free some space, lower `disk_capacity`, or \
             choose a folder on another disk"
        }
        K::FileTooLarge => {
            ". The file system refuses a file this large: lower `disk_capacity` or choose a \
             folder on another file system"
        }
        K::ReadOnlyFilesystem => {
            ". The file system is read-only: choose a folder on a writable one"
        }
        K::NotADirectory => ". Part of the path is a file, not a folder: choose a folder path",
        K::IsADirectory => ". A folder is where the cache expects a file: move it away",
        _ => "",
    }
}

fn import_message(imported: u64, detail: &str) -> String {
    let what = if imported == 0 {
        format!("nothing was imported: {detail}")
    } else {
        format!(
            "cache import stopped after {imported} entries: {detail}. The entries before that \
             point were imported"
        )
    };
    format!(
        "{what}; export again from the source cache (or upgrade tiered if the export is newer) \
         and import the new file"
    )
}

fn locked_message(path: &Path, pid: Option<u32>, waited: Duration) -> String {
    let path = path.display();
    let holder = match pid {
        Some(pid) if pid == std::process::id() => {
            return format!(
                "cache folder {path} is held by this process: another Cache on the same folder \
                 is still open or closing; waited {waited:?}. Drop that Cache first, or point \
                 this one at another folder"
            )
        }
        Some(pid) => format!("process {pid}"),
        None => "another process (pid unknown)".to_string(),
    };
    format!(
        "cache folder {path} is held by {holder}; waited {waited:?}. Stop that process, point \
         this one at another folder, or raise `open_timeout`"
    )
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn permission_denied_names_the_path_and_says_what_to_do() {
        let e = Error::io(
            "/srv/app/cache",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        let message = e.to_string();
        assert!(message.contains("/srv/app/cache"), "{message}");
        assert!(message.contains("permissions"), "{message}");
        assert!(message.contains("choose another folder"), "{message}");
    }

    #[test]
    fn io_errors_of_common_kinds_get_a_hint_and_others_none() {
        for (kind, words) in [
            (io::ErrorKind::StorageFull, "disk is full"),
            (io::ErrorKind::QuotaExceeded, "over quota"),
            (io::ErrorKind::FileTooLarge, "disk_capacity"),
            (io::ErrorKind::ReadOnlyFilesystem, "read-only"),
            (io::ErrorKind::NotADirectory, "not a folder"),
        ] {
            let message = Error::io("/c", io::Error::from(kind)).to_string();
            assert!(message.contains(words), "{kind:?}: {message}");
        }
        let message = Error::io("/c", io::Error::other("boom")).to_string();
        assert_eq!(message, "I/O error on /c: boom");
    }

    #[test]
    fn locked_by_this_process_says_so_instead_of_naming_a_pid() {
        let e = Error::Locked {
            path: "/c".into(),
            pid: Some(std::process::id()),
            waited: Duration::from_secs(10),
        };
        let message = e.to_string();
        assert!(message.contains("held by this process"), "{message}");
        assert!(message.contains("still open or closing"), "{message}");
        let pid = format!("process {}", std::process::id());
        assert!(!message.contains(&pid), "{message}");

        let other = std::process::id().wrapping_add(1);
        let e = Error::Locked {
            path: "/c".into(),
            pid: Some(other),
            waited: Duration::from_secs(10),
        };
        let message = e.to_string();
        assert!(message.contains(&format!("process {other}")), "{message}");
        assert!(message.contains("open_timeout"), "{message}");
    }
}
