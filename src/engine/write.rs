//! The write path: insert, remove and read-through, each applying the ordering rule of
//! `ordering.rs`: the memory tier and the disk queue change together inside the key's stripe
//! lock, so the last write wins in both tiers; waiting (back-pressure, a commit) and user code
//! (a computation) happen outside it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Inner, Scope};
use crate::codec;
use crate::disk::blobs;
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::key::{encode_key, EncodedKey};
use crate::memory::{self, MemEntry, Value};
use crate::options::Options;
use crate::process::Ticket;
use crate::record::{self, Meta};
use crate::stats::Counters;

/// Whether a store must check that its generations are still current (a computed value that
/// an invalidation may have overtaken) and, for one computed by an async caller, that the
/// caller has not ended (a cancelled task: see `through.rs`).
pub(super) enum IfCurrent {
    Always,
    Check(Option<Arc<AtomicBool>>),
}

impl IfCurrent {
    fn call_ended(&self) -> bool {
        matches!(self, IfCurrent::Check(Some(ended)) if ended.load(Ordering::Acquire))
    }
}

impl Inner {
    pub fn insert<K, V>(&self, scope: &Scope, key: &K, value: V, opts: &Options) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + Send + Sync + 'static + DeserializeOwned,
    {
        self.insert_encoded(scope, encode_key(&scope.name, key)?, value, opts)
    }

    /// [`insert`](Inner::insert) for a key encoded beforehand.
    pub fn insert_encoded<V>(
        &self,
        scope: &Scope,
        ek: EncodedKey,
        value: V,
        opts: &Options,
    ) -> Result<()>
    where
        V: Serialize + Send + Sync + 'static + DeserializeOwned,
    {
        let opts = opts.merged(&self.defaults);
        let stamp = self.stamp(scope, &opts);
        self.store(ek, Arc::new(value), &opts, stamp, IfCurrent::Always)
    }

    /// An insert that ignores the cache's default options: a record the cache keeps for
    /// itself (a memoized function's version) must not expire with the user's entries.
    pub fn insert_own<K, V>(&self, scope: &Scope, key: &K, value: V) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + Send + Sync + 'static + DeserializeOwned,
    {
        let ek = encode_key(&scope.name, key)?;
        let opts = Options::new();
        let stamp = self.stamp(scope, &opts);
        self.store(ek, Arc::new(value), &opts, stamp, IfCurrent::Always)
    }

    pub(super) fn store<V>(
        &self,
        ek: EncodedKey,
        value: Arc<V>,
        opts: &Options,
        stamp: Vec<(u64, u64)>,
        if_current: IfCurrent,
    ) -> Result<()>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let now = self.clock.now_ms();
        let expiry = opts.expiry(now);
        // An entry dead on arrival (ttl or idle of zero, a past expires_at) is not stored; it
        // still replaces whatever the key held.
        let dead = expiry.is_expired(now, now);
        let persist = self.disk.is_some() && !opts.memory_only && !dead;
        let mut pinned = None;
        // A persisted value is encoded (and checked to decode back) by the codec; one kept in
        // memory only is encoded just to weigh it.
        let (payload_len, encoded) = match (&self.disk, persist) {
            (Some(disk), true) => {
                let codec::Encoded {
                    payload,
                    self_describing,
                } = codec::encode(&*value)?;
                let size = (payload.len() + ek.bytes.len() + 16 * stamp.len() + 64) as u64;
                if size > disk.capacity() {
                    // It would be evicted by its own commit: say so instead of dropping it.
                    return Err(Error::TooLarge {
                        what: std::any::type_name::<V>().to_string(),
                        bytes: size,
                        capacity: disk.capacity(),
                    });
                }
                let in_blob = payload.len() >= blobs::THRESHOLD;
                let meta = Meta {
                    fingerprint: fingerprint::of::<V>(),
                    type_name_id: fingerprint::name_id::<V>(),
                    self_describing,
                    in_blob,
                    expiry,
                    created_ms: now,
                };
                // A large payload goes to a side file, durably, before its record is queued:
                // the record then holds its reference (see `disk/blobs.rs`).
                // Room for the side file first: the files of writes not yet committed are
                // bounded too (back-pressure, holding no lock).
                let side = in_blob.then(|| disk.reserve_side(payload.len()));
                let stored = if in_blob {
                    let (blob, pin) = disk.write_blob(&payload)?;
                    // Held until the put below has been waited for: see `disk/blobs.rs`.
                    pinned = Some(pin);
                    blob.to_bytes().to_vec()
                } else {
                    payload
                };
                let len = if in_blob { size as usize } else { stored.len() };
                (len, Some((meta, stored, side)))
            }
            _ => (codec::weigh(&*value), None),
        };
        let (encoded, side) = match encoded {
            Some((meta, payload, side)) => (Some((meta, payload)), side),
            None => (None, None),
        };
        let mut record = encoded
            .as_ref()
            .map(|(meta, payload)| record::encode(meta, &stamp, &ek.bytes, payload));
        let mut entry = MemEntry {
            value: Value::Decoded {
                value,
                type_name: std::any::type_name::<V>(),
            },
            weight: memory::weight::<V>(ek.bytes.len(), payload_len, stamp.len()),
            key: Box::from(&*ek.bytes),
            expiry,
            last_access_ms: now.into(),
            disk_touch_ms: now.into(),
            gens: stamp.into_boxed_slice(),
            checked_epoch: 0.into(),
            on_disk: persist,
            written_at: 0,
        };
        // Room in the writer's queue first: back-pressure waits here, holding no lock.
        let reservation = match (&self.disk, &record) {
            (Some(disk), Some(record)) => {
                let reservation = disk.reserve(record.len());
                Some(match side {
                    Some(side) => reservation.with_side(side),
                    None => reservation,
                })
            }
            _ => None,
        };
        let digest = ek.digest;
        let ticket = {
            let mut held = self.stripes.lock(digest);
            // A computed value that an invalidation overtook, or whose caller has ended:
            // its caller has it (or is gone), later readers must not. A side file written
            // for it has no record to belong to.
            let stale = !self.gens.is_current(entry.gens.iter().copied());
            if if_current.call_ended() || (stale && matches!(if_current, IfCurrent::Check(_))) {
                if let (Some(disk), Some(blob)) = (&self.disk, record.as_deref()) {
                    disk.discard_blob_of(blob);
                }
                return Ok(());
            }
            if stale {
                // An invalidation came between the stamp and now (a slow Serialize, a wait for
                // room in the queue). This write takes effect now, after it, so it carries the
                // current generations; stored as stale, it would erase a newer live value.
                // Rare, and no user code runs: the payload is already encoded.
                let ids: Vec<u64> = entry.gens.iter().map(|(id, _)| *id).collect();
                let fresh = self.gens.stamp(&ids);
                if let (Some(r), Some((meta, payload))) = (record.as_mut(), encoded.as_ref()) {
                    *r = record::encode(meta, &fresh, &ek.bytes, payload);
                }
                entry.gens = fresh.into_boxed_slice();
            }
            held.bump();
            if matches!(if_current, IfCurrent::Always) {
                // A plain insert overtakes any read-through of the key already running.
                self.flights.detach(digest);
            }
            entry.written_at = held.version();
            if dead {
                self.memory.remove(digest);
            } else {
                self.memory.insert(digest, entry);
            }
            match (&self.disk, record, reservation) {
                (Some(disk), Some(record), Some(r)) => Some(disk.put(digest, record, r)),
                // A value kept in memory only must not leave an older persisted one behind.
                (Some(disk), None, _) if disk.may_contain(digest) => Some(disk.remove(digest)),
                // Nothing to remove here, but another process may hold the key in memory.
                (Some(disk), None, _) => disk.forget_elsewhere(digest),
                _ => None,
            }
        };
        Counters::bump(&self.counters.inserts);
        let result = ticket.map_or(Ok(()), Ticket::wait);
        drop(pinned);
        result
    }

    pub fn remove<K>(&self, scope: &Scope, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        self.remove_encoded(encode_key(&scope.name, key)?)
    }

    /// [`remove`](Inner::remove) for a key encoded beforehand.
    pub fn remove_encoded(&self, ek: EncodedKey) -> Result<bool> {
        // The clock is user code too: read it before the lock.
        let now = self.clock.now_ms();
        let (existed, ticket) = {
            let mut held = self.stripes.lock(ek.digest);
            // Decided under the lock, so that the answer and the removal are one step: no
            // write can land between them.
            let existed = self.is_live(&ek, now);
            held.bump();
            self.flights.detach(ek.digest);
            self.memory.remove(ek.digest);
            let ticket = match &self.disk {
                Some(disk) if existed || disk.may_contain(ek.digest) => {
                    Some(disk.remove(ek.digest))
                }
                Some(disk) => disk.forget_elsewhere(ek.digest),
                None => None,
            };
            (existed, ticket)
        };
        if existed {
            self.counters
                .graveyard
                .bury(ek.digest, crate::Explanation::Removed);
        }
        ticket.map_or(Ok(()), Ticket::wait)?;
        Ok(existed)
    }
}
