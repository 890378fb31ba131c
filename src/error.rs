//! The one error type of the crate.

use std::path::PathBuf;
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
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Another process has the cache folder open and did not let go within `open_timeout`.
    #[error(
        "cache folder {path} is held by {holder}; waited {waited:?}. Stop that process, \
         point this one at another folder, or raise `open_timeout`",
        holder = match pid { Some(pid) => format!("process {pid}"), None => "another process (pid unknown)".to_string() }
    )]
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

    /// A key or value could not be encoded with postcard.
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

    /// A read-through computation would wait for itself: it asks, directly or through a
    /// computation on another thread, for a key whose computation is waiting for it.
    #[error(
        "get_or_insert_with would wait forever: this computation waits, directly or through \
         another thread, for a key whose computation waits for it. Compute the inner value \
         before the outer call, or give the computations keys that do not depend on each other"
    )]
    Deadlock,

    /// A bug in `tiered` (a panic caught where none should happen). Please report it.
    #[error("internal error in tiered (please report it): {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
