//! The read path: memory first, then disk, with promotion and the drop of dead entries.
//!
//! Reads follow the ordering rule of `ordering.rs`: a reader notes its key's stripe version
//! before it reads the disk and changes the tiers afterwards (a promotion, a drop) only if no
//! write came in between.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{Inner, Scope};
use crate::codec;
use crate::error::Result;
use crate::explain::{self, Explanation};
use crate::fingerprint::{self, TypeCheck};
use crate::key::{encode_key, EncodedKey, ScopeName};
use crate::memory::{self, MemEntry, Raw, Value};
use crate::ordering::Held;
use crate::record::{self, Dead, Record};
use crate::stats::Counters;
use crate::tiers::Stored;

/// What a memory probe found.
pub(super) enum Probe {
    Live(Arc<MemEntry>),
    /// There was an entry for this key and it is dead: a definitive miss.
    Dead,
    Absent,
}

/// What the memory tier says of a key.
pub(super) enum InMemory<V> {
    Hit(Arc<V>),
    /// A definitive miss: the entry was dead, or of another type.
    Miss,
    /// Nothing there: ask the disk.
    Absent,
}

/// Most time between two disk read-time refreshes of an idle entry that lives in memory.
const MAX_TOUCH_LAG_MS: u64 = 1_000;

impl Inner {
    pub fn get<K, V>(&self, scope: &Scope, key: &K) -> Result<Option<Arc<V>>>
    where
        K: serde::Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let ek = encode_key(&scope.name, key)?;
        let found = self.lookup::<V>(&scope.name, &ek);
        if found.is_none() {
            self.count_miss(scope);
        }
        Ok(found)
    }

    /// The memory tier's answer alone, counting a hit and never a miss: no disk read, no
    /// message to another process, no decode of an entry the warm restart loaded undecoded.
    pub fn get_from_memory<K, V>(&self, scope: &Scope, key: &K) -> Result<Option<Arc<V>>>
    where
        K: serde::Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let ek = encode_key(&scope.name, key)?;
        Ok(self.memory_hit(&scope.name, &ek))
    }

    /// [`get`](Inner::get), with what may wait (a decode of an entry the warm restart loaded,
    /// a disk read, a request to the folder's owner) run inside `wait`; a memory hit and a
    /// miss the memory tier can tell alone do not call it. The key is encoded once.
    pub fn get_waiting<K, V>(
        &self,
        scope: &Scope,
        key: &K,
        wait: impl FnOnce(&(dyn Fn() -> Option<Arc<V>> + Sync)) -> Option<Arc<V>>,
    ) -> Result<Option<Arc<V>>>
    where
        K: serde::Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let ek = encode_key(&scope.name, key)?;
        let found = match self.memory_answer::<V>(&scope.name, &ek) {
            Some(answer) => answer,
            None => wait(&|| self.lookup::<V>(&scope.name, &ek)),
        };
        if found.is_none() {
            self.count_miss(scope);
        }
        Ok(found)
    }

    /// What the memory tier can answer alone, counting a hit: `Some` of the answer, or
    /// `None` when only the tier below can tell (a key the memory tier does not hold, or one
    /// the warm restart loaded undecoded, in a cache with a tier below). For callers that
    /// run the rest elsewhere: without their lock, on an async runtime's blocking pool.
    pub(super) fn memory_answer<V>(
        &self,
        scope: &ScopeName,
        ek: &EncodedKey,
    ) -> Option<Option<Arc<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        match self.lookup_memory::<V>(scope, ek, false) {
            InMemory::Hit(v) => Some(Some(v)),
            InMemory::Miss => Some(None),
            InMemory::Absent if !self.lower.keeps_records() => Some(None),
            InMemory::Absent => None,
        }
    }

    /// [`get_from_memory`](Inner::get_from_memory) for a key encoded beforehand.
    pub(crate) fn memory_hit<V>(&self, scope: &ScopeName, ek: &EncodedKey) -> Option<Arc<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        match self.lookup_memory::<V>(scope, ek, false) {
            InMemory::Hit(v) => Some(v),
            InMemory::Miss | InMemory::Absent => None,
        }
    }

    /// A plain read (not a read-through) that found nothing, blocking or async.
    pub(crate) fn count_miss(&self, scope: &Scope) {
        Counters::bump(&self.counters.misses);
        tracing::debug!(namespace = %scope.name, "miss");
    }

    /// Both tiers, counting hits (the caller counts the miss).
    pub(super) fn lookup<V>(&self, scope: &ScopeName, ek: &EncodedKey) -> Option<Arc<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        match self.lookup_memory::<V>(scope, ek, true) {
            InMemory::Hit(v) => Some(v),
            InMemory::Miss => None,
            InMemory::Absent => self.lookup_disk(scope, ek),
        }
    }

    /// The memory tier's answer, counting a hit. Never touches the disk (an async caller
    /// runs it on the executor); without `decode`, an entry the warm restart loaded undecoded
    /// (user code, a large payload) is left to [`lookup`](Inner::lookup): `Absent`.
    pub(super) fn lookup_memory<V>(
        &self,
        scope: &ScopeName,
        ek: &EncodedKey,
        decode: bool,
    ) -> InMemory<V>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let entry = match self.probe_memory(ek, true) {
            Probe::Live(entry) => entry,
            Probe::Dead => return InMemory::Miss,
            Probe::Absent => return InMemory::Absent,
        };
        let found = match &entry.value {
            Value::Decoded { value, type_name } => match value.clone().downcast::<V>() {
                Ok(v) => {
                    Counters::bump(&self.counters.memory_hits);
                    Some(v)
                }
                Err(_) => {
                    self.other_type::<V>(scope, type_name);
                    None
                }
            },
            Value::Raw(_) if !decode => return InMemory::Absent,
            Value::Raw(raw) => self.decode_raw::<V>(scope, ek, &entry, raw),
        };
        found.map_or(InMemory::Miss, InMemory::Hit)
    }

    /// The disk tier's answer (with promotion), counting a hit.
    fn lookup_disk<V>(&self, scope: &ScopeName, ek: &EncodedKey) -> Option<Arc<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        if !self.lower.keeps_records() {
            return None;
        }
        // Noted before the read: see `ordering.rs`.
        let version = self.stripes.version(ek.digest);
        let stored = self.lower.read(ek.digest)?;
        self.lookup_stored(scope, ek, version, stored)
    }

    /// A memory hit on an entry loaded by the warm restart: checked like a disk record (another
    /// type is a miss that keeps the entry), decoded holding no lock, and put back decoded
    /// unless a write came since the entry was loaded (see `ordering.rs`).
    fn decode_raw<V>(
        &self,
        scope: &ScopeName,
        ek: &EncodedKey,
        entry: &Arc<MemEntry>,
        raw: &Raw,
    ) -> Option<Arc<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        match TypeCheck::of::<V>(&raw.meta) {
            TypeCheck::Same => {}
            TypeCheck::OtherType => {
                self.other_type::<V>(scope, &fingerprint::describe(raw.meta.type_name_id));
                return None;
            }
            TypeCheck::OutdatedShape => {
                self.outdated_shape::<V>(scope, ek.digest, || {
                    self.drop_memory_entry(ek.digest, entry)
                });
                return None;
            }
        }
        // User code (a slow Deserialize) runs here, holding no lock.
        let Some(v) = codec::decode::<V>(&raw.payload, raw.meta.self_describing) else {
            self.outdated_shape::<V>(scope, ek.digest, || {
                self.drop_memory_entry(ek.digest, entry)
            });
            return None;
        };
        let v = Arc::new(v);
        Counters::bump(&self.counters.memory_hits);
        let mut decoded = MemEntry {
            value: Value::Decoded {
                value: v.clone(),
                type_name: std::any::type_name::<V>(),
            },
            key: entry.key.clone(),
            expiry: entry.expiry,
            created_ms: entry.created_ms,
            last_access_ms: entry.last_access_ms.load(Ordering::Relaxed).into(),
            disk_touch_ms: entry.disk_touch_ms.load(Ordering::Relaxed).into(),
            gens: entry.gens.clone(),
            checked_epoch: entry.checked_epoch.load(Ordering::Relaxed).into(),
            weight: memory::weight::<V>(entry.key.len(), raw.payload.len(), entry.gens.len()),
            on_disk: entry.on_disk,
            written_at: 0,
        };
        {
            // Like a promotion: never over a write that came after the entry was loaded (a
            // newer value, a removal, the drop of this entry once dead).
            let held = self.stripes.lock(ek.digest);
            if self.untouched_since(&held, ek.digest, entry) {
                decoded.written_at = held.version();
                self.memory.insert(ek.digest, decoded);
            }
        }
        // Its first use this run: noted like a disk hit's, so that the next restart ranks it
        // as recently used.
        if entry.on_disk {
            self.lower
                .touch(ek.digest, self.clock.now_ms(), entry.expiry.idle_ms != 0);
        }
        Some(v)
    }

    /// The memory tier's entry for `ek`, judged. A read (`touch`) refreshes an idle entry;
    /// `contains_key` does not.
    pub(super) fn probe_memory(&self, ek: &EncodedKey, touch: bool) -> Probe {
        let Some(entry) = self.memory.get(ek.digest) else {
            return Probe::Absent;
        };
        if *entry.key != ek.bytes[..] {
            return Probe::Absent;
        }
        if entry.expiry != Default::default() {
            let now = self.clock.now_ms();
            let last = entry.last_access_ms.load(Ordering::Relaxed);
            if entry.expiry.is_expired(now, last) {
                if self.drop_memory_entry(ek.digest, &entry) {
                    Counters::bump(&self.counters.expirations);
                    let at = explain::expired(entry.expiry.expired_at(last));
                    self.counters.graveyard.bury(ek.digest, at);
                    tracing::debug!("expired entry dropped");
                }
                return Probe::Dead;
            }
            if touch && entry.expiry.idle_ms != 0 {
                entry.touch(now);
                self.refresh_disk_read_time(ek.digest, &entry, now);
            }
        }
        let epoch = self.gens.epoch();
        if entry.checked_epoch.load(Ordering::Acquire) != epoch {
            if !self.gens.is_current(entry.gens.iter().copied()) {
                if self.drop_memory_entry(ek.digest, &entry) {
                    let why = explain::invalidated(entry.gens.iter().copied(), &self.gens);
                    self.counters.graveyard.bury(ek.digest, why);
                }
                tracing::debug!("invalidated entry dropped");
                return Probe::Dead;
            }
            entry.checked_epoch.store(epoch, Ordering::Release);
        }
        Probe::Live(entry)
    }

    /// Keeps the disk's read time of an idle entry close to the memory tier's, so that the
    /// entry outlives a restart (and the sweeper) as long as it is read: at most a quarter of
    /// its idle limit (and a second) behind.
    fn refresh_disk_read_time(&self, digest: u128, entry: &MemEntry, now: u64) {
        if !entry.on_disk {
            return;
        }
        let lag = (entry.expiry.idle_ms / 4).clamp(1, MAX_TOUCH_LAG_MS);
        let written = entry.disk_touch_ms.load(Ordering::Relaxed);
        if now.saturating_sub(written) >= lag {
            entry.disk_touch_ms.store(now, Ordering::Relaxed);
            self.lower.touch(digest, now, true);
        }
    }

    /// Whether no write to `digest` came after `entry` entered the memory tier, judged under
    /// the key's stripe lock (`held`): the stripe still has the version the entry entered at,
    /// or the tier still holds that very entry (every write to the key replaces or removes
    /// its entry, under this lock; a write to another key of the stripe only changes the
    /// version, and must not make the entry look overwritten for good).
    pub(super) fn untouched_since(
        &self,
        held: &Held<'_>,
        digest: u128,
        entry: &Arc<MemEntry>,
    ) -> bool {
        held.version() == entry.written_at || self.memory.holds(digest, entry)
    }

    /// Drops a dead memory entry (and its record) unless a write replaced it meanwhile;
    /// returns whether it did.
    fn drop_memory_entry(&self, digest: u128, entry: &Arc<MemEntry>) -> bool {
        let mut held = self.stripes.lock(digest);
        // Not only "is it still in memory": moka may have let it go by itself meanwhile, and
        // its record must still be dropped. Whether a write came after it is what matters.
        if !self.untouched_since(&held, digest, entry) {
            return false;
        }
        held.bump();
        self.memory.remove(digest);
        if entry.on_disk {
            self.lower.discard(digest);
        }
        true
    }

    /// Drops a dead record (and any memory entry of it) unless a write came after `version`;
    /// returns whether it did.
    fn drop_record(&self, digest: u128, version: u64) -> bool {
        let mut held = self.stripes.lock(digest);
        if held.version() != version {
            return false;
        }
        held.bump();
        self.memory.remove(digest);
        self.lower.discard(digest);
        true
    }

    /// A record read (or handed over with a lease) after the key's stripe had `version`:
    /// judged, decoded, promoted unless a write came after `version`, and counted as a disk
    /// hit if it gives a value.
    pub(super) fn lookup_stored<V>(
        &self,
        scope: &ScopeName,
        ek: &EncodedKey,
        version: u64,
        stored: Stored,
    ) -> Option<Arc<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let now = self.clock.now_ms();
        let rec = match record::decode(&stored.bytes) {
            Ok(rec) => rec,
            Err(damage) => {
                self.drop_dead(ek.digest, version, damage.dead(), None, None);
                return None;
            }
        };
        if rec.key != &ek.bytes[..] {
            return None; // another key with the same digest: leave it alone
        }
        if let Some(why) = rec.judge(ek.digest, now, stored.last_access_ms, &self.gens) {
            self.drop_dead(ek.digest, version, why, Some(&rec), stored.last_access_ms);
            return None;
        }
        match TypeCheck::of::<V>(&rec.meta) {
            TypeCheck::Same => {}
            TypeCheck::OtherType => {
                self.other_type::<V>(scope, &fingerprint::describe(rec.meta.type_name_id));
                return None;
            }
            TypeCheck::OutdatedShape => {
                self.outdated_shape::<V>(scope, ek.digest, || self.drop_record(ek.digest, version));
                return None;
            }
        }
        // A large payload is in a side file: mapped, checked; missing or damaged, the record is
        // dropped as damaged (the read logged why). `Bytes` in the value share the mapping.
        let side_file = match rec.blob() {
            None => None,
            Some(blob) => match self.lower.out_of_line(&blob) {
                Some(source) => Some(source),
                None => {
                    self.drop_dead(ek.digest, version, Dead::Damaged, Some(&rec), None);
                    return None;
                }
            },
        };
        // User code (a slow Deserialize) runs here, holding no lock.
        let decoded = match &side_file {
            None => codec::decode::<V>(rec.payload, rec.meta.self_describing),
            Some(source) => crate::bytes::decoding_from(source, || {
                codec::decode::<V>(source, rec.meta.self_describing)
            }),
        };
        let Some(v) = decoded else {
            self.outdated_shape::<V>(scope, ek.digest, || self.drop_record(ek.digest, version));
            return None;
        };
        // A value from here on: a disk hit, promoted or not.
        Counters::bump(&self.counters.disk_hits);
        let v = Arc::new(v);
        let gens: Box<[(u64, u64)]> = rec.generations().collect();
        let payload_len = side_file.as_ref().map_or(rec.payload.len(), |s| s.len());
        let weight = memory::weight::<V>(ek.bytes.len(), payload_len, gens.len());
        if !self.memory.admits(weight) {
            // Too large for the memory tier: served from disk every time, nothing to promote.
            self.memory.too_large(weight, true, "disk hit");
            self.lower
                .touch(ek.digest, now, rec.meta.expiry.idle_ms != 0);
            return Some(v);
        }
        let idle = rec.meta.expiry.idle_ms != 0;
        let entry = MemEntry {
            value: Value::Decoded {
                value: v.clone(),
                type_name: std::any::type_name::<V>(),
            },
            key: Box::from(&*ek.bytes),
            expiry: rec.meta.expiry,
            created_ms: rec.meta.created_ms,
            last_access_ms: now.into(),
            disk_touch_ms: now.into(),
            gens,
            checked_epoch: 0.into(),
            weight,
            on_disk: true,
            written_at: version,
        };
        {
            // A promotion never replaces a newer value: only if no write came since the read.
            let held = self.stripes.lock(ek.digest);
            if held.version() == version {
                self.memory.insert(ek.digest, entry);
            }
        }
        self.lower.touch(ek.digest, now, idle);
        Some(v)
    }

    /// A read as another type than the stored one: a miss that leaves the entry alone.
    fn other_type<V: 'static>(&self, scope: &ScopeName, stored: &str) {
        Counters::bump(&self.counters.type_mismatches);
        tracing::debug!(
            namespace = %scope,
            stored,
            requested = std::any::type_name::<V>(),
            "value stored as another type: a miss; the entry is kept"
        );
    }

    /// A record of an outdated shape of `V` (or whose payload no longer decodes): reclaimed by
    /// `drop` (which says whether it dropped it: not over a newer write).
    fn outdated_shape<V: 'static>(
        &self,
        scope: &ScopeName,
        digest: u128,
        drop: impl FnOnce() -> bool,
    ) {
        Counters::bump(&self.counters.type_mismatches);
        tracing::debug!(
            namespace = %scope,
            ty = std::any::type_name::<V>(),
            "record of an outdated shape of the type dropped"
        );
        if drop() {
            self.counters
                .graveyard
                .bury(digest, Explanation::OutdatedShape);
        }
    }

    fn drop_dead(
        &self,
        digest: u128,
        version: u64,
        why: Dead,
        rec: Option<&Record<'_>>,
        last_access_ms: Option<u64>,
    ) {
        if self.drop_record(digest, version) {
            self.counters.count_dead(why);
            let fate = explain::of_dead(why, rec, last_access_ms, &self.gens);
            self.counters.graveyard.bury(digest, fate);
            if why == Dead::Damaged {
                match self.lower.folder() {
                    Some(folder) => tracing::warn!(
                        file = %folder.path().display(),
                        "damaged cache record dropped"
                    ),
                    None => tracing::warn!("damaged cache record dropped"),
                }
            }
            tracing::debug!(?why, "dead record dropped");
        }
    }

    pub fn contains_key<K>(&self, scope: &Scope, key: &K) -> Result<bool>
    where
        K: serde::Serialize + ?Sized,
    {
        let ek = encode_key(&scope.name, key)?;
        Ok(self.contains(&ek))
    }

    /// Whether a live entry exists, whatever its type; refreshes nothing.
    pub(crate) fn contains(&self, ek: &EncodedKey) -> bool {
        match self.probe_memory(ek, false) {
            Probe::Live(_) => true,
            Probe::Dead => false,
            Probe::Absent => self.live_on_disk(ek, self.clock.now_ms()),
        }
    }

    /// Whether a live entry exists at `now`, judged without changing either tier or taking a
    /// lock, and without user code: for a writer that holds the key's stripe lock.
    pub(super) fn is_live(&self, ek: &EncodedKey, now: u64) -> bool {
        match self.memory.get(ek.digest) {
            Some(entry) if *entry.key == ek.bytes[..] => {
                let last = entry.last_access_ms.load(Ordering::Relaxed);
                !entry.expiry.is_expired(now, last)
                    && self.gens.is_current(entry.gens.iter().copied())
            }
            _ => self.live_on_disk(ek, now),
        }
    }

    fn live_on_disk(&self, ek: &EncodedKey, now: u64) -> bool {
        let Some(stored) = self.lower.read(ek.digest) else {
            return false;
        };
        record::decode(&stored.bytes).is_ok_and(|rec| {
            rec.key == &ek.bytes[..]
                && rec
                    .judge(ek.digest, now, stored.last_access_ms, &self.gens)
                    .is_none()
        })
    }
}
