//! [`Explanation`]: why a key is not a hit, for [`Cache::explain`](crate::Cache::explain).
//!
//! What the tiers still hold is judged as a read would judge it (expired when, invalidated by
//! which tag or clear, stored as which type). What is gone is looked up in a small graveyard of
//! the last [`KEEP`] keys removed, evicted or swept, so explaining costs nothing on the hot path
//! and little memory.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::disk::lock;
use crate::generations::Generations;
use crate::record::{Dead, Record};

/// How many dropped keys the graveyard remembers.
const KEEP: usize = 16_384;

/// Why a key is, or is not, a hit; see [`Cache::explain`](crate::Cache::explain).
///
/// ```
/// use std::time::Duration;
/// use tiered::{Cache, Explanation, Invalidation, Options};
///
/// let cache = Cache::in_memory();
/// cache.insert_with("q", 1u32, &Options::new().tags(["prices"]))?;
/// cache.invalidate_tag("prices")?;
/// assert_eq!(
///     cache.explain::<_, u32>("q")?,
///     Explanation::Invalidated { by: Invalidation::Tag("prices".into()) }
/// );
/// println!("{}", cache.explain::<_, u32>("never")?); // "never written, as far as the cache can tell"
/// # Ok::<(), tiered::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Explanation {
    /// A live value of the asked type: a read would hit.
    Hit,
    /// Nothing is known of the key: never written, or dropped too long ago to remember.
    NeverWritten,
    /// It expired (ttl, expires_at or idle) at this time.
    Expired {
        /// When it expired.
        at: SystemTime,
    },
    /// A tag invalidation or a clear made it stale.
    Invalidated {
        /// What invalidated it.
        by: Invalidation,
    },
    /// Dropped to keep a tier within its capacity.
    Evicted,
    /// Removed with `remove` (or replaced by a value kept in memory only, then lost).
    Removed,
    /// A value of another type is stored under the key (it stays for readers of that type).
    OtherType {
        /// The stored value's type, when this process knows its name.
        stored: String,
    },
    /// Written by a build whose type had another shape; it was (or will be) reclaimed.
    OutdatedShape,
    /// Its record failed its checksum, or its value's side file (a large value) is missing or
    /// damaged.
    Damaged,
    /// Written by another version of tiered's record format; reclaimed.
    WrittenByAnotherVersion,
    /// A memoized call: the cache held it under another version of the function's code, whose
    /// entries are dropped (at the function's next call, if not yet).
    CodeChanged,
    /// The memory tier does not hold it and the tier below cannot be read now: the disk tier
    /// is out of service, the process that holds the folder does not answer, or the Redis
    /// server cannot be reached. Its record may be there.
    DiskOutOfService {
        /// Why the disk tier is out of service.
        reason: String,
    },
}

/// What invalidated an entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Invalidation {
    /// `invalidate_tag` of this tag.
    Tag(String),
    /// `Namespace::clear` of this namespace.
    Namespace(String),
    /// `Cache::clear`.
    Clear,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Explanation::Hit => f.write_str("a live value: a read hits"),
            Explanation::NeverWritten => f.write_str("never written, as far as the cache can tell"),
            Explanation::Expired { at } => {
                let ago = SystemTime::now().duration_since(*at).unwrap_or_default();
                write!(f, "expired {} s ago", ago.as_secs())
            }
            Explanation::Invalidated { by } => match by {
                Invalidation::Tag(t) => write!(f, "invalidated by invalidate_tag({t:?})"),
                Invalidation::Namespace(n) => write!(f, "invalidated by clearing namespace {n:?}"),
                Invalidation::Clear => f.write_str("invalidated by Cache::clear"),
            },
            Explanation::Evicted => f.write_str("evicted to keep the cache within its capacity"),
            Explanation::Removed => f.write_str("removed"),
            Explanation::OtherType { stored } => {
                write!(
                    f,
                    "stored as another type ({stored}): a read of this type misses"
                )
            }
            Explanation::OutdatedShape => {
                f.write_str("written by a build whose type had another shape")
            }
            Explanation::Damaged => {
                f.write_str("its record or its side file was damaged or missing")
            }
            Explanation::WrittenByAnotherVersion => {
                f.write_str("written by another version of tiered")
            }
            Explanation::CodeChanged => f.write_str(
                "the function's code changed since this call was stored: the older version's \
                 entries are dropped",
            ),
            Explanation::DiskOutOfService { reason } => {
                write!(
                    f,
                    "not in memory, and the tier below cannot be read ({reason})"
                )
            }
        }
    }
}

/// The fate of the last [`KEEP`] keys dropped from the cache.
///
/// The process that holds a cache folder keeps it across restarts in the folder's
/// [`FATES_FILE`]: written at its flushes and at its close (only when something was buried
/// since), read back the first time a lookup misses. A file that does not read back (damaged,
/// of another version) is ignored: fates are a courtesy, never a reason to fail.
#[derive(Debug, Default)]
pub(crate) struct Graveyard {
    graves: Mutex<Graves>,
}

#[derive(Debug, Default)]
struct Graves {
    fate: HashMap<u128, Explanation>,
    order: VecDeque<u128>,
    /// Something was buried since the last save.
    dirty: bool,
    /// The folder's file was read (or found missing) once.
    loaded: bool,
    /// When the fates were last saved.
    saved_at: Option<std::time::Instant>,
}

/// The file in a cache folder that keeps the fates of its dropped keys across restarts.
pub(crate) const FATES_FILE: &str = "fates";
/// The file's format version (its first byte).
const FATES_VERSION: u8 = 1;
/// A larger file is not read (KEEP fates take well under this).
const FATES_MAX_BYTES: u64 = 16 << 20;
/// Saves on a flush come at most this often (a close always saves).
const SAVE_EVERY: Duration = Duration::from_secs(10);

impl Graves {
    fn bury(&mut self, digest: u128, why: Explanation) {
        if self.fate.insert(digest, why).is_none() {
            self.order.push_back(digest);
            if self.order.len() > KEEP {
                if let Some(old) = self.order.pop_front() {
                    self.fate.remove(&old);
                }
            }
        }
    }
}

impl Graveyard {
    pub fn bury(&self, digest: u128, why: Explanation) {
        let mut g = lock(&self.graves);
        g.bury(digest, why);
        g.dirty = true;
    }

    pub fn fate(&self, digest: u128) -> Option<Explanation> {
        lock(&self.graves).fate.get(&digest).cloned()
    }

    /// Reads the folder's saved fates once, as older than every fate buried here.
    pub fn load_once(&self, folder: &Path) {
        let mut g = lock(&self.graves);
        if g.loaded {
            return;
        }
        g.loaded = true;
        let Some(saved) = read_fates(&folder.join(FATES_FILE)) else {
            return;
        };
        let newer: Vec<(u128, Explanation)> = g
            .order
            .iter()
            .filter_map(|d| Some((*d, g.fate.get(d)?.clone())))
            .collect();
        g.fate.clear();
        g.order.clear();
        for (digest, why) in saved.into_iter().chain(newer) {
            g.bury(digest, why);
        }
    }

    /// Writes the fates to the folder's file if any was buried since the last save (and,
    /// unless `now`, the last save is [`SAVE_EVERY`] old): the file is replaced whole
    /// (written beside it, then renamed), readable by its owner only.
    pub fn save(&self, folder: &Path, now: bool) {
        self.load_once(folder);
        let body = {
            let mut g = lock(&self.graves);
            let recent = g.saved_at.is_some_and(|at| at.elapsed() < SAVE_EVERY);
            if !g.dirty || (recent && !now) {
                return;
            }
            g.dirty = false;
            g.saved_at = Some(std::time::Instant::now());
            let all: Vec<(u128, &Explanation)> = g
                .order
                .iter()
                .filter_map(|d| Some((*d, g.fate.get(d)?)))
                .collect();
            postcard::to_allocvec(&(FATES_VERSION, all))
        };
        let Ok(body) = body else { return };
        let path = folder.join(FATES_FILE);
        // Named for this process: the folder's next holder may be saving its own meanwhile.
        let tmp = folder.join(format!("{FATES_FILE}.{}.tmp", std::process::id()));
        let written = crate::disk::private::create_file(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &body))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            // Kept in memory; the next save tries again.
            lock(&self.graves).dirty = true;
            tracing::debug!(file = %path.display(), error = %e, "could not save the fates of dropped keys");
        }
    }
}

fn read_fates(path: &Path) -> Option<Vec<(u128, Explanation)>> {
    let len = std::fs::metadata(path).ok()?.len();
    if len > FATES_MAX_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    match postcard::from_bytes::<(u8, Vec<(u128, Explanation)>)>(&bytes) {
        Ok((FATES_VERSION, fates)) => Some(fates),
        _ => {
            tracing::debug!(file = %path.display(), "saved fates of dropped keys ignored: they do not read back");
            None
        }
    }
}

/// Why a dead record is dead, in a user's words.
pub(crate) fn of_dead(
    why: Dead,
    rec: Option<&Record<'_>>,
    last_access_ms: Option<u64>,
    gens: &Generations,
) -> Explanation {
    match (why, rec) {
        (Dead::Damaged, _) => Explanation::Damaged,
        (Dead::Outdated, _) => Explanation::WrittenByAnotherVersion,
        (Dead::Expired, Some(rec)) => expired(rec.expired_at(last_access_ms)),
        (Dead::Stale, Some(rec)) => invalidated(rec.generations(), gens),
        _ => Explanation::NeverWritten,
    }
}

pub(crate) fn expired(at_ms: u64) -> Explanation {
    Explanation::Expired {
        at: UNIX_EPOCH + Duration::from_millis(at_ms),
    }
}

/// What made an entry written under `recorded` generations stale.
pub(crate) fn invalidated(
    recorded: impl IntoIterator<Item = (u64, u64)>,
    gens: &Generations,
) -> Explanation {
    let label = recorded
        .into_iter()
        .find(|(id, generation)| !gens.is_current([(*id, *generation)]))
        .and_then(|(id, _)| gens.label_of(id))
        .map(|(label, _)| label);
    let by = match label.as_deref() {
        Some(l) => match (l.strip_prefix("tag:"), l.strip_prefix("ns:")) {
            (Some(tag), _) => Invalidation::Tag(tag.to_string()),
            (_, Some(ns)) => Invalidation::Namespace(ns.to_string()),
            // `all` (Cache::clear); the root scope is never cleared on its own.
            _ => Invalidation::Clear,
        },
        None => Invalidation::Clear,
    };
    Explanation::Invalidated { by }
}
