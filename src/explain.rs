//! [`Explanation`]: why a key is not a hit, for [`Cache::explain`](crate::Cache::explain).
//!
//! What the tiers still hold is judged as a read would judge it (expired when, invalidated by
//! which tag or clear, stored as which type). What is gone is looked up in a small graveyard of
//! the last [`KEEP`] keys removed, evicted or swept, so explaining costs nothing on the hot path
//! and little memory.

use std::collections::{HashMap, VecDeque};
use std::fmt;
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The disk tier is out of service and the memory tier does not hold it.
    DiskOutOfService {
        /// Why the disk tier is out of service.
        reason: String,
    },
}

/// What invalidated an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
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
                    "not in memory, and the disk tier is out of service ({reason})"
                )
            }
        }
    }
}

/// The fate of the last [`KEEP`] keys dropped from the cache.
#[derive(Debug, Default)]
pub(crate) struct Graveyard {
    graves: Mutex<Graves>,
}

#[derive(Debug, Default)]
struct Graves {
    fate: HashMap<u128, Explanation>,
    order: VecDeque<u128>,
}

impl Graveyard {
    pub fn bury(&self, digest: u128, why: Explanation) {
        let mut g = lock(&self.graves);
        if g.fate.insert(digest, why).is_none() {
            g.order.push_back(digest);
            if g.order.len() > KEEP {
                if let Some(old) = g.order.pop_front() {
                    g.fate.remove(&old);
                }
            }
        }
    }

    pub fn fate(&self, digest: u128) -> Option<Explanation> {
        lock(&self.graves).fate.get(&digest).cloned()
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
