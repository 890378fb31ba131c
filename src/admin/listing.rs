//! What a listing shows of an entry ([`EntryInfo`]) and which entries it shows
//! ([`EntryFilter`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::generations::{self, Generations};
use crate::key::ScopeName;
use crate::record::Record;

use super::readable;

/// One entry of the disk tier, as [`Cache::entries`](crate::Cache::entries) lists it.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use tiered::{Cache, EntryFilter, Options};
///
/// let cache = Cache::open(dir.path())?;
/// cache.insert_with(&("prices", 3u32), 1.5f64, &Options::new().tags(["prices"]))?;
/// // The filter names the tag, so the listing can show its name (see `tags`).
/// let entries = cache.entries(&EntryFilter::new().tag("prices"))?;
/// assert_eq!(entries[0].key, r#"("prices", 3)"#);
/// assert_eq!(entries[0].tags, ["prices"]);
/// assert_eq!(entries[0].namespace, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The entry's namespace; `None` for the cache's own keys (the root).
    pub namespace: Option<String>,
    /// The key in a readable form: strings quoted (`"paris"`), numbers, `true`, tuples and
    /// sequences in parentheses (`("prices", 3)`), structs and enums by name
    /// (`Day { n: 3 }`, `Kind::Daily`); a key that cannot be read back is shown in hex
    /// (`0x…`). Numbers do not show their width: `3u32` and `3u64` are two keys shown alike.
    pub key: String,
    /// The entry's tags. A record keeps a hash of each tag's name and the folder keeps the
    /// names; a name the folder does not have (a record written by a build before it kept
    /// them) is shown as the hash, `#` and 16 hex digits, unless the listing's filter names it.
    pub tags: Vec<String>,
    /// Bytes the entry takes on disk: its record, plus its side file for a large value.
    pub bytes: u64,
    /// When it was written.
    pub created: SystemTime,
    /// When it expires (or expired), if ever; with an idle limit, as of its last read.
    pub expires: Option<SystemTime>,
    /// Whether it has expired (it reads as a miss, and is reclaimed by the sweeper or
    /// [`Cache::clear_expired`](crate::Cache::clear_expired)).
    pub expired: bool,
    /// The value's type when this process knows it (it stored or read one), otherwise `#`
    /// and the 8 hex digits of the type name id kept in the record.
    pub type_name: String,
    /// For an entry of a memoized function (its namespace is the function's path): the call
    /// it holds, as `load_prices("eu", 1, 5)` (a method's `self` first), named by the path's
    /// last segment. `key` keeps the stored form, `(code version, arguments)`, and tells the
    /// entries of two versions of the function's code apart.
    pub call: Option<String>,
}

/// Which entries [`Cache::entries`](crate::Cache::entries) lists: all of them by default;
/// each setting narrows the list.
///
/// ```
/// use tiered::EntryFilter;
///
/// let expired_prices = EntryFilter::new().tag("prices").expired_only();
/// let reports = EntryFilter::new().namespace("reports");
/// # let _ = (expired_prices, reports);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EntryFilter {
    /// Only entries of this namespace.
    pub namespace: Option<String>,
    /// Only entries carrying every one of these tags.
    pub tags: Vec<String>,
    /// Only expired entries.
    pub expired_only: bool,
    /// Also the cache's own bookkeeping: the code version it last saw of each memoized
    /// function (namespace `tiered/memoize-versions`). Listed anyway when `namespace` names it.
    pub bookkeeping: bool,
}

impl EntryFilter {
    /// Every entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only entries of namespace `name` (not the root's).
    pub fn namespace(mut self, name: impl Into<String>) -> Self {
        self.namespace = Some(name.into());
        self
    }

    /// Only entries carrying `tag`; given more than once, entries carrying all of them.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Only entries that have expired but are not reclaimed yet.
    pub fn expired_only(mut self) -> Self {
        self.expired_only = true;
        self
    }

    /// Also the cache's own bookkeeping entries, left out by default: the code version of
    /// each memoized function it has seen.
    pub fn bookkeeping(mut self) -> Self {
        self.bookkeeping = true;
        self
    }
}

/// What a record says of its entry, in the terms of a listing.
pub(crate) struct Described<'a> {
    pub namespace: Option<String>,
    /// The key's own bytes, after the scope.
    pub key: &'a [u8],
    /// The ids of its tags: its generations but `all` and its namespace's.
    pub tag_ids: Vec<u64>,
}

/// `None` for a key whose scope does not parse (no build of this format writes one).
pub(crate) fn describe<'a>(rec: &Record<'a>) -> Option<Described<'a>> {
    let (namespace, key) = readable::split_scope(rec.key)?;
    let scope = match &namespace {
        Some(name) => ScopeName::named(name),
        None => ScopeName::root(),
    };
    let all = generations::id(generations::ALL);
    let ns = generations::id(&generations::namespace_label(&scope));
    let tag_ids = rec
        .generations()
        .map(|(id, _)| id)
        .filter(|id| *id != all && *id != ns)
        .collect();
    Some(Described {
        namespace,
        key,
        tag_ids,
    })
}

/// The name of tag `id`: among `hints` (names the caller gave), else as this process knows
/// the label; `None` if neither does.
pub(crate) fn tag_name(id: u64, hints: &[String], gens: &Generations) -> Option<String> {
    if let Some(hint) = hints
        .iter()
        .find(|h| generations::id(&generations::tag_label(h)) == id)
    {
        return Some(hint.clone());
    }
    let (label, _) = gens.label_of(id)?;
    label.strip_prefix("tag:").map(str::to_string)
}

/// A tag shown by its hash, when its name is unknown.
pub(crate) fn unknown_tag(id: u64) -> String {
    format!("#{id:016x}")
}

impl EntryFilter {
    pub(crate) fn matches(&self, d: &Described<'_>, expired: bool) -> bool {
        if self.expired_only && !expired {
            return false;
        }
        if d.namespace.as_deref() == Some(crate::memo::VERSIONS)
            && !self.bookkeeping
            && self.namespace.is_none()
        {
            return false;
        }
        if let Some(ns) = &self.namespace {
            if d.namespace.as_deref() != Some(ns.as_str()) {
                return false;
            }
        }
        self.tags.iter().all(|t| {
            let id = generations::id(&generations::tag_label(t));
            d.tag_ids.contains(&id)
        })
    }
}

pub(crate) fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
