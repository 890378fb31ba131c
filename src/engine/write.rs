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
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::key::{encode_key, EncodedKey};
use crate::memory::{self, MemEntry, Value};
use crate::options::Options;
use crate::record::{self, Meta};
use crate::stats::Counters;
use crate::tiers::{Staging, Ticket};

/// Whether a store must check that its generations are still current (a computed value that
/// an invalidation may have overtaken) and, for one computed by an async caller, that the
/// caller has not ended (a cancelled task: see `through.rs`).
pub(super) enum IfCurrent {
    Always,
    Check(Option<Arc<AtomicBool>>),
    /// A value recomputed in the background (`refresh.rs`): stored only if no write of the
    /// key came since this entry, the value it replaces (`Inner::untouched_since`), and its
    /// generations are current.
    Unchanged(Arc<MemEntry>),
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
        let persist = self.lower.keeps_records() && !opts.memory_only && !dead;
        // A persisted value is encoded (and checked to decode back) by the codec; one kept in
        // memory only is encoded just to weigh it.
        let mut encoded = None;
        let payload_len = if persist {
            let codec::Encoded {
                payload,
                self_describing,
            } = codec::encode(&*value)?;
            let size = (payload.len() + ek.bytes.len() + 16 * stamp.len() + 64) as u64;
            // The tier may put a large payload out of line (durably, before its record is
            // queued: see `disk/blobs.rs`); the record then carries the reference.
            match self.lower.stage(payload, size)? {
                Staging::Ready(staged) => {
                    let meta = Meta {
                        fingerprint: fingerprint::of::<V>(),
                        type_name_id: fingerprint::name_id::<V>(),
                        self_describing,
                        in_blob: staged.out_of_line,
                        expiry,
                        created_ms: now,
                    };
                    let len = if staged.out_of_line {
                        size as usize
                    } else {
                        staged.payload.len()
                    };
                    encoded = Some((meta, staged));
                    len
                }
                // It would be evicted by its own commit: say so instead of dropping it.
                Staging::TooLarge { capacity } => {
                    return Err(Error::TooLarge {
                        what: std::any::type_name::<V>().to_string(),
                        bytes: size,
                        capacity,
                    })
                }
                // Kept in memory, not below; the older record below is removed. Still counted
                // as shared (`on_disk`): another process's write of the key replaces it here.
                Staging::KeepAbove(payload) => payload.len(),
            }
        } else {
            codec::weigh(&*value)
        };
        let mut record = encoded
            .as_ref()
            .map(|(meta, staged)| record::encode(meta, &stamp, &ek.bytes, &staged.payload));
        let mut entry = MemEntry {
            value: Value::Decoded {
                value,
                type_name: std::any::type_name::<V>(),
            },
            weight: memory::weight::<V>(ek.bytes.len(), payload_len, stamp.len()),
            key: Box::from(&*ek.bytes),
            expiry,
            created_ms: now,
            last_access_ms: now.into(),
            disk_touch_ms: now.into(),
            gens: stamp.into_boxed_slice(),
            checked_epoch: 0.into(),
            on_disk: persist,
            written_at: 0,
        };
        // Room in the writer's queue first: back-pressure waits here, holding no lock.
        let reservation = match (&mut encoded, &record) {
            (Some((_, staged)), Some(record)) => Some(self.lower.reserve(record.len(), staged)),
            _ => None,
        };
        let digest = ek.digest;
        let ticket = {
            let mut held = self.stripes.lock(digest);
            // A computed value that an invalidation overtook, or whose caller has ended:
            // its caller has it (or is gone), later readers must not. A side file written
            // for it has no record to belong to.
            let stale = !self.gens.is_current(entry.gens.iter().copied());
            let overtaken = matches!(&if_current, IfCurrent::Unchanged(replaced)
                if !self.untouched_since(&held, digest, replaced));
            let checked = !matches!(if_current, IfCurrent::Always);
            if if_current.call_ended() || overtaken || (stale && checked) {
                if let Some((_, staged)) = encoded {
                    self.lower.unstage(staged);
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
                if let (Some(r), Some((meta, staged))) = (record.as_mut(), encoded.as_ref()) {
                    *r = record::encode(meta, &fresh, &ek.bytes, &staged.payload);
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
            let lower = &self.lower;
            match (record, reservation) {
                (Some(record), Some(r)) => Some(lower.put(digest, record, r)),
                _ if !lower.keeps_records() => None,
                // A value kept in memory only must not leave an older persisted one behind.
                _ if lower.may_contain(digest) => Some(lower.remove(digest)),
                // Nothing to remove here, but another process may hold the key in memory.
                _ => lower.forget_elsewhere(digest),
            }
        };
        Counters::bump(&self.counters.inserts);
        let result = ticket.map_or(Ok(()), Ticket::wait);
        // What the tier kept alive for the record (a side file's pin) goes only now.
        drop(encoded);
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
            let lower = &self.lower;
            let ticket = if !lower.keeps_records() {
                None
            } else if existed || lower.may_contain(ek.digest) {
                Some(lower.remove(ek.digest))
            } else {
                lower.forget_elsewhere(ek.digest)
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
