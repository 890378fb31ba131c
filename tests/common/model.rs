//! What `tests/model.rs` (random operations) and `tests/crash_points.rs` (a crash after each
//! sync) share: the values, the keys, the model of one key, and the checks of a folder.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tiered::{Cache, Durability, Faults, ManualClock, Options};

/// Keys per scope.
pub const KEYS: u8 = 5;
/// Scopes: the cache itself, then the namespaces `a` and `b`.
pub const SCOPES: u8 = 3;
/// Tags: `t0`, `t1`.
pub const TAGS: u8 = 2;
/// A large value's padding: its payload goes to a side file (at least 64 KiB).
pub const LARGE: usize = 70_000;
/// Past the orphan age of side files (10 minutes), with a margin.
pub const PAST_ORPHAN_AGE: Duration = Duration::from_secs(1_300);

/// Every stored value: a unique id and a padding derived from it, so that a torn or mixed up
/// value shows.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Val {
    pub id: u64,
    pub pad: Vec<u8>,
}

impl Val {
    pub fn new(id: u64, large: bool) -> Self {
        Val {
            id,
            pad: pad_of(id, large),
        }
    }

    /// Whether the padding is the one its id makes.
    pub fn intact(&self) -> bool {
        self.pad == pad_of(self.id, self.pad.len() >= LARGE)
    }
}

fn pad_of(id: u64, large: bool) -> Vec<u8> {
    let len = if large { LARGE } else { (id % 40) as usize };
    id.to_le_bytes().iter().cycle().take(len).copied().collect()
}

/// A key: its scope and its number in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct K {
    pub scope: u8,
    pub key: u8,
}

impl K {
    pub fn all() -> impl Iterator<Item = K> {
        (0..SCOPES).flat_map(|scope| (0..KEYS).map(move |key| K { scope, key }))
    }
}

pub fn tag_name(t: u8) -> String {
    format!("t{t}")
}

pub fn ns_name(scope: u8) -> &'static str {
    ["", "a", "b"][scope as usize]
}

/// An entry as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub large: bool,
    /// A bit per tag.
    pub tags: u8,
    /// Unix ms, if it has a ttl.
    pub deadline: Option<u64>,
}

impl Entry {
    pub fn options(&self, now_ms: u64) -> Options {
        let mut o = Options::new().tags(
            (0..TAGS)
                .filter(|t| self.tags & (1 << t) != 0)
                .map(tag_name),
        );
        if let Some(d) = self.deadline {
            o = o.ttl(Duration::from_millis(d - now_ms));
        }
        o
    }

    pub fn live(&self, now_ms: u64) -> bool {
        self.deadline.is_none_or(|d| now_ms < d)
    }
}

/// What a key may hold: `None` is absent.
pub type State = Option<Entry>;

/// Checks what a read returned against the states a key may be in at `now_ms`.
pub fn check_read(
    k: K,
    got: Option<&Val>,
    states: &[State],
    now_ms: u64,
    what: &str,
) -> Result<(), String> {
    let live: Vec<&Entry> = states.iter().flatten().filter(|e| e.live(now_ms)).collect();
    let absent_ok = states.iter().any(|s| s.is_none_or(|e| !e.live(now_ms)));
    match got {
        Some(v) if !v.intact() => Err(format!("{what}: {k:?} read a torn value (id {})", v.id)),
        Some(v)
            if live
                .iter()
                .any(|e| e.id == v.id && e.large == (v.pad.len() >= LARGE)) =>
        {
            Ok(())
        }
        Some(v) => Err(format!(
            "{what}: {k:?} read id {} but the model allows {states:?} (now {now_ms})",
            v.id
        )),
        None if absent_ok => Ok(()),
        None => Err(format!(
            "{what}: {k:?} read nothing but the model allows only {states:?} (now {now_ms})"
        )),
    }
}

/// The clock every case starts with: a whole second, so that deadlines of `x.5` seconds never
/// fall on a clock reading.
pub fn clock() -> Arc<ManualClock> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs()),
    ))
}

pub fn now_ms(clock: &ManualClock) -> u64 {
    tiered::Clock::now_ms(clock)
}

/// A cache on `dir` with `faults`, large enough that nothing is evicted from either tier.
pub fn open(
    dir: &Path,
    clock: &Arc<ManualClock>,
    durability: Durability,
    faults: &Arc<Faults>,
) -> Result<Cache, tiered::Error> {
    Cache::builder()
        .path(dir)
        .clock(clock.clone())
        .durability(durability)
        .memory_capacity(256 << 20)
        .disk_capacity(1 << 30)
        .open_timeout(Duration::from_secs(5))
        .faults(faults.clone())
        .open()
}

/// Reads `k` as a `Val`.
pub fn get(cache: &Cache, k: K) -> tiered::Result<Option<Arc<Val>>> {
    match k.scope {
        0 => cache.get(&k.key),
        s => cache.namespace(ns_name(s)).get(&k.key),
    }
}

pub fn insert(cache: &Cache, k: K, v: Val, o: &Options) -> tiered::Result<()> {
    match k.scope {
        0 => cache.insert_with(&k.key, v, o),
        s => cache.namespace(ns_name(s)).insert_with(&k.key, v, o),
    }
}

pub fn remove(cache: &Cache, k: K) -> tiered::Result<bool> {
    match k.scope {
        0 => cache.remove(&k.key),
        s => cache.namespace(ns_name(s)).remove(&k.key),
    }
}

pub fn get_or_insert(cache: &Cache, k: K, v: Val, o: &Options) -> tiered::Result<Arc<Val>> {
    match k.scope {
        0 => cache.get_or_insert_with(&k.key, o, || v),
        s => cache
            .namespace(ns_name(s))
            .get_or_insert_with(&k.key, o, || v),
    }
}

/// The folder's database, read straight: its stored byte totals must be the count of its
/// records and their side files, and no record may reference a missing side file.
pub fn audit_consistent(dir: &Path, what: &str) -> Result<tiered::Audit, String> {
    let audit = Faults::audit(dir).map_err(|e| format!("{what}: audit: {e}"))?;
    if (audit.stored_bytes, audit.stored_blob_bytes)
        != (audit.counted_bytes, audit.counted_blob_bytes)
    {
        return Err(format!(
            "{what}: stored totals (bytes {}, side files {}) differ from the count of the \
             records (bytes {}, side files {})",
            audit.stored_bytes,
            audit.stored_blob_bytes,
            audit.counted_bytes,
            audit.counted_blob_bytes
        ));
    }
    if !audit.missing.is_empty() {
        return Err(format!(
            "{what}: records reference missing side files {:?}",
            audit.missing
        ));
    }
    Ok(audit)
}

/// Sets every side file's modification time back past the orphan age, as if they had been
/// there that long.
pub fn age_side_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join("blobs")) else {
        return;
    };
    let past = SystemTime::now() - 2 * PAST_ORPHAN_AGE;
    for entry in entries.flatten() {
        if let Ok(f) = std::fs::File::options().write(true).open(entry.path()) {
            let _ = f.set_modified(past);
        }
    }
}

/// Runs the sweep passes that delete orphan side files: one, then the clock and the files'
/// times past the orphan age, then another (whatever rule dates an orphan: its file's time,
/// or when a pass first saw it).
pub fn sweep_orphans(cache: &Cache, dir: &Path, clock: &ManualClock) -> tiered::Result<()> {
    cache.compact()?;
    clock.advance(PAST_ORPHAN_AGE);
    age_side_files(dir);
    cache.compact()
}
