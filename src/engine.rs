//! The read and write paths over both tiers, shared by [`Cache`](crate::Cache) and
//! [`Namespace`](crate::Namespace).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::disk::{lock, DiskTier};
use crate::error::{Error, Result};
use crate::expiry::Clock;
use crate::fingerprint::{self, TypeCheck};
use crate::flight::{Flights, Role};
use crate::generations::{self, Generations};
use crate::key::{encode_key, EncodedKey};
use crate::memory::{self, MemEntry, MemoryTier};
use crate::options::Options;
use crate::record::{self, Dead, Meta};
use crate::stats::{Counters, Stats};

/// Where keys live: a namespace's name and the id of its generation.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub name: Arc<str>,
    pub id: u64,
}

impl Scope {
    pub fn new(name: &str) -> Self {
        Scope {
            name: name.into(),
            id: generations::id(&generations::namespace_label(name)),
        }
    }
}

type AnyValue = Arc<dyn Any + Send + Sync>;

pub(crate) struct Inner {
    pub memory: MemoryTier,
    pub disk: Option<DiskTier>,
    pub gens: Arc<Generations>,
    pub counters: Arc<Counters>,
    pub clock: Arc<dyn Clock>,
    pub defaults: Options,
    pub flights: Flights,
    pub resources: Mutex<HashMap<String, Arc<OnceLock<AnyValue>>>>,
    pub root: Scope,
    all_id: u64,
}

/// What a memory probe found.
enum Probe {
    Live(Arc<MemEntry>),
    /// There was an entry for this key and it is dead: a definitive miss.
    Dead,
    Absent,
}

/// What a disk read found, decided while the record is borrowed.
enum OnDisk<V> {
    Hit(V, Meta, Vec<(u64, u64)>, usize),
    Dead(Dead),
    TypeMismatch,
    /// A value of another type (its name id): a miss that leaves the record alone.
    OtherType(u64),
    /// A record of another key with the same digest: leave it alone.
    OtherKey,
}

impl Inner {
    pub fn new(
        memory: MemoryTier,
        disk: Option<DiskTier>,
        gens: Arc<Generations>,
        counters: Arc<Counters>,
        clock: Arc<dyn Clock>,
        defaults: Options,
    ) -> Self {
        Inner {
            memory,
            disk,
            gens,
            counters,
            clock,
            defaults,
            flights: Flights::default(),
            resources: Mutex::default(),
            root: Scope::new(""),
            all_id: generations::id(generations::ALL),
        }
    }

    // ---- reads ----

    pub fn get<K, V>(&self, scope: &Scope, key: &K) -> Result<Option<Arc<V>>>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let ek = encode_key(&scope.name, key)?;
        let found = self.lookup::<V>(&ek)?;
        if found.is_none() {
            Counters::bump(&self.counters.misses);
            tracing::debug!(namespace = %scope.name, "miss");
        }
        Ok(found)
    }

    /// Both tiers, counting hits (the caller counts the miss).
    fn lookup<V>(&self, ek: &EncodedKey) -> Result<Option<Arc<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        match self.probe_memory(ek) {
            Probe::Live(entry) => match entry.value.clone().downcast::<V>() {
                Ok(v) => {
                    Counters::bump(&self.counters.memory_hits);
                    return Ok(Some(v));
                }
                Err(_) => {
                    let stored = fingerprint::name_of_type((*entry.value).type_id());
                    self.other_type::<V>(ek, stored.unwrap_or("unknown type"));
                    return Ok(None);
                }
            },
            Probe::Dead => return Ok(None),
            Probe::Absent => {}
        }
        let found = self.read_disk::<V>(ek)?;
        if found.is_some() {
            Counters::bump(&self.counters.disk_hits);
        }
        Ok(found)
    }

    fn probe_memory(&self, ek: &EncodedKey) -> Probe {
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
                Counters::bump(&self.counters.expirations);
                tracing::debug!("expired entry dropped");
                self.drop_entry(ek.digest, entry.on_disk);
                return Probe::Dead;
            }
            if entry.expiry.idle_ms != 0 {
                entry.touch(now);
                if let (Some(disk), true) = (&self.disk, now.saturating_sub(last) >= 1_000) {
                    disk.touch(ek.digest, now);
                }
            }
        }
        let epoch = self.gens.epoch();
        if entry.checked_epoch.load(Ordering::Acquire) != epoch {
            if !self.gens.is_current(entry.gens.iter().copied()) {
                tracing::debug!("invalidated entry dropped");
                self.drop_entry(ek.digest, entry.on_disk);
                return Probe::Dead;
            }
            entry.checked_epoch.store(epoch, Ordering::Release);
        }
        Probe::Live(entry)
    }

    fn read_disk<V>(&self, ek: &EncodedKey) -> Result<Option<Arc<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let Some(disk) = &self.disk else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let found = disk.read(ek.digest, |found| {
            let rec = match record::decode(found.bytes) {
                Ok(rec) => rec,
                Err(damage) => return OnDisk::Dead(damage.dead()),
            };
            if rec.key != &ek.bytes[..] {
                return OnDisk::OtherKey;
            }
            if let Some(dead) = rec.judge(ek.digest, now, found.last_access_ms, &self.gens) {
                return OnDisk::Dead(dead);
            }
            match TypeCheck::of::<V>(&rec.meta) {
                TypeCheck::Same => {}
                TypeCheck::OtherType => return OnDisk::OtherType(rec.meta.type_name_id),
                TypeCheck::OutdatedShape => return OnDisk::TypeMismatch,
            }
            match codec::decode::<V>(rec.payload, rec.meta.self_describing) {
                Some(v) => OnDisk::Hit(v, rec.meta, rec.generations().collect(), rec.payload.len()),
                None => OnDisk::TypeMismatch,
            }
        })?;
        match found {
            None | Some(OnDisk::OtherKey) => Ok(None),
            Some(OnDisk::Dead(why)) => {
                self.counters.count_dead(why);
                if why == Dead::Damaged {
                    tracing::warn!(file = %disk.path().display(), "damaged cache record dropped");
                }
                tracing::debug!(?why, "dead record dropped");
                self.drop_entry(ek.digest, true);
                Ok(None)
            }
            Some(OnDisk::TypeMismatch) => {
                self.type_mismatch::<V>(ek);
                Ok(None)
            }
            Some(OnDisk::OtherType(stored)) => {
                self.other_type::<V>(ek, &fingerprint::describe(stored));
                Ok(None)
            }
            Some(OnDisk::Hit(v, meta, gens, payload_len)) => {
                let v = Arc::new(v);
                self.memory.insert(
                    ek.digest,
                    MemEntry {
                        value: v.clone(),
                        key: Box::from(&*ek.bytes),
                        expiry: meta.expiry,
                        last_access_ms: now.into(),
                        gens: gens.into_boxed_slice(),
                        checked_epoch: 0.into(),
                        weight: memory::weight(ek.bytes.len(), payload_len),
                        on_disk: true,
                    },
                );
                disk.touch(ek.digest, now);
                Ok(Some(v))
            }
        }
    }

    /// A record of an outdated shape of `V` (or whose payload no longer decodes): reclaimed.
    fn type_mismatch<V: 'static>(&self, ek: &EncodedKey) {
        Counters::bump(&self.counters.type_mismatches);
        tracing::debug!(
            namespace = namespace_of(ek),
            ty = std::any::type_name::<V>(),
            "record of an outdated shape of the type dropped"
        );
        self.drop_entry(ek.digest, true);
    }

    /// A read as another type than the stored one: a miss that leaves the entry alone.
    fn other_type<V: 'static>(&self, ek: &EncodedKey, stored: &str) {
        Counters::bump(&self.counters.type_mismatches);
        tracing::debug!(
            namespace = namespace_of(ek),
            stored,
            requested = std::any::type_name::<V>(),
            "value stored as another type: a miss; the entry is kept"
        );
    }

    /// Drops a dead entry from both tiers; the disk removal need not be durable.
    fn drop_entry(&self, digest: u128, on_disk: bool) {
        self.memory.remove(digest);
        if let (Some(disk), true) = (&self.disk, on_disk) {
            if let Err(e) = disk.discard(digest) {
                tracing::warn!(error = %e, "could not drop a dead record");
            }
        }
    }

    pub fn contains_key<K>(&self, scope: &Scope, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        let ek = encode_key(&scope.name, key)?;
        self.contains(&ek)
    }

    fn contains(&self, ek: &EncodedKey) -> Result<bool> {
        match self.probe_memory(ek) {
            Probe::Live(_) => return Ok(true),
            Probe::Dead => return Ok(false),
            Probe::Absent => {}
        }
        let Some(disk) = &self.disk else {
            return Ok(false);
        };
        let now = self.clock.now_ms();
        let live = disk.read(ek.digest, |found| match record::decode(found.bytes) {
            Ok(rec) => {
                rec.key == &ek.bytes[..]
                    && rec
                        .judge(ek.digest, now, found.last_access_ms, &self.gens)
                        .is_none()
            }
            Err(_) => false,
        })?;
        Ok(live == Some(true))
    }

    // ---- writes ----

    pub fn insert<K, V>(&self, scope: &Scope, key: &K, value: V, opts: &Options) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + Send + Sync + 'static + DeserializeOwned,
    {
        let ek = encode_key(&scope.name, key)?;
        let opts = opts.merged(&self.defaults);
        let stamp = self.stamp(scope, &opts);
        self.store(ek, Arc::new(value), &opts, stamp)
    }

    /// The generations an entry written now in `scope` with `opts` carries.
    fn stamp(&self, scope: &Scope, opts: &Options) -> Vec<(u64, u64)> {
        let mut ids = Vec::with_capacity(2 + opts.tags.len());
        ids.push(self.all_id);
        ids.push(scope.id);
        ids.extend(
            opts.tags
                .iter()
                .map(|t| generations::id(&generations::tag_label(t))),
        );
        self.gens.stamp(&ids)
    }

    fn store<V>(
        &self,
        ek: EncodedKey,
        value: Arc<V>,
        opts: &Options,
        stamp: Vec<(u64, u64)>,
    ) -> Result<()>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let now = self.clock.now_ms();
        let expiry = opts.expiry(now);
        let codec::Encoded {
            payload,
            self_describing,
        } = codec::encode(&*value)?;
        let on_disk = self.disk.is_some() && !opts.memory_only;
        let record = on_disk.then(|| {
            let meta = Meta {
                fingerprint: fingerprint::of::<V>(),
                type_name_id: fingerprint::name_id::<V>(),
                self_describing,
                expiry,
                created_ms: now,
            };
            record::encode(&meta, &stamp, &ek.bytes, &payload)
        });
        let digest = ek.digest;
        self.memory.insert(
            digest,
            MemEntry {
                value,
                weight: memory::weight(ek.bytes.len(), payload.len()),
                key: Box::from(&*ek.bytes),
                expiry,
                last_access_ms: now.into(),
                gens: stamp.into_boxed_slice(),
                checked_epoch: 0.into(),
                on_disk,
            },
        );
        Counters::bump(&self.counters.inserts);
        match (&self.disk, record) {
            (Some(disk), Some(record)) => disk.put(digest, record),
            // A memory-only value must not leave an older persisted value behind it.
            (Some(disk), None) if disk.may_contain(digest) => disk.remove(digest),
            _ => Ok(()),
        }
    }

    pub fn remove<K>(&self, scope: &Scope, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        let ek = encode_key(&scope.name, key)?;
        let existed = self.contains(&ek)?;
        self.memory.remove(ek.digest);
        if let Some(disk) = &self.disk {
            if existed || disk.may_contain(ek.digest) {
                disk.remove(ek.digest)?;
            }
        }
        Ok(existed)
    }

    /// Read-through: the value for `key`, computed by `f` at most once across concurrent callers.
    pub fn get_or_try_insert<K, V, E, F>(
        &self,
        scope: &Scope,
        key: &K,
        opts: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Result<V, E>,
    {
        let ek = encode_key(&scope.name, key)?;
        if let Some(v) = self.lookup::<V>(&ek)? {
            return Ok(v);
        }
        Counters::bump(&self.counters.misses);
        let opts = opts.merged(&self.defaults);
        loop {
            let leader = match self.flights.join(ek.digest) {
                Role::Leader(leader) => leader,
                Role::Follower(flight) => {
                    if let Some(v) = flight.wait().and_then(|v| v.downcast::<V>().ok()) {
                        return Ok(v);
                    }
                    // The leader failed: try again, perhaps as the leader.
                    if let Some(v) = self.lookup::<V>(&ek)? {
                        return Ok(v);
                    }
                    continue;
                }
            };
            // Another leader may have finished between our miss and `join`.
            if let Some(v) = self.lookup::<V>(&ek)? {
                leader.complete(v.clone());
                return Ok(v);
            }
            // Stamped before computing: an invalidation during `f` makes its result stale.
            let stamp = self.stamp(scope, &opts);
            let v = Arc::new(f()?);
            if let Err(e) = self.store(ek.clone(), v.clone(), &opts, stamp) {
                tracing::warn!(error = %e, "computed value could not be cached; returning it anyway");
            }
            leader.complete(v.clone());
            return Ok(v);
        }
    }

    // ---- invalidation ----

    pub fn bump(&self, label: String) -> Result<()> {
        let generation = self.gens.bump(&label);
        Counters::bump(&self.counters.invalidations);
        tracing::debug!(%label, generation, "invalidated");
        match &self.disk {
            Some(disk) => disk.bump(label, generation),
            None => Ok(()),
        }
    }

    pub fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.bump(generations::tag_label(tag))
    }

    pub fn clear_scope(&self, scope: &Scope) -> Result<()> {
        self.bump(generations::namespace_label(&scope.name))
    }

    pub fn clear(&self) -> Result<()> {
        self.bump(generations::ALL.to_string())?;
        self.memory.clear();
        Ok(())
    }

    // ---- resources, housekeeping ----

    pub fn resource<T, F>(&self, name: &str, f: F) -> Result<Arc<T>>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> T,
    {
        let cell = lock(&self.resources)
            .entry(name.to_string())
            .or_default()
            .clone();
        let value = cell.get_or_init(|| Arc::new(f())).clone();
        value.downcast::<T>().map_err(|_| Error::ResourceType {
            name: name.to_string(),
            expected: std::any::type_name::<T>(),
        })
    }

    pub fn flush(&self) -> Result<()> {
        match &self.disk {
            Some(disk) => disk.flush(),
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.counters.snapshot();
        s.memory_bytes = self.memory.bytes();
        if self.disk.is_none() {
            s.entries = self.memory.len();
        }
        s
    }
}

/// The namespace an encoded key belongs to (its postcard-encoded prefix), for messages.
fn namespace_of(ek: &EncodedKey) -> &str {
    postcard::take_from_bytes::<&str>(&ek.bytes).map_or("?", |(ns, _)| ns)
}
