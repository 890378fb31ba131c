//! Why a key is not a hit: the tiers judged as a read would judge them, then the graveyard.

use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;

use super::{Inner, Scope};
use crate::codec;
use crate::error::Result;
use crate::explain::{self, Explanation};
use crate::fingerprint::{self, TypeCheck};
use crate::key::{encode_key, EncodedKey};
use crate::memory::Value;
use crate::record;

impl Inner {
    /// Changes nothing: no drop, no promotion, no read time.
    pub fn explain<K, V>(&self, scope: &Scope, key: &K) -> Result<Explanation>
    where
        K: serde::Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let ek = encode_key(&scope.name, key)?;
        Ok(self.explain_encoded::<V>(&ek))
    }

    /// [`explain`](Inner::explain) for a key encoded beforehand.
    pub(crate) fn explain_encoded<V>(&self, ek: &EncodedKey) -> Explanation
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let now = self.clock.now_ms();
        if let Some(found) = self.explain_memory::<V>(ek, now) {
            return found;
        }
        if let Some(found) = self.explain_disk::<V>(ek, now) {
            return found;
        }
        if let Some(fate) = self.fate(ek.digest) {
            return fate;
        }
        if let Some(outage) = self.outage() {
            return Explanation::DiskOutOfService {
                reason: outage.failure.detail,
            };
        }
        // A tier below that could not be asked (a stopped owner, Redis away): its record may
        // well be there.
        let unreachable = match self.lower.health() {
            Some(crate::Health::OwnerNotAnswering { pid, .. }) => Some(format!(
                "the process that holds the cache folder (pid {pid}) does not answer: its \
                 record of the key cannot be read"
            )),
            Some(crate::Health::WaitingForFolder { reason, .. }) => Some(reason),
            Some(crate::Health::RedisUnreachable { reason, .. }) => {
                Some(format!("the Redis server cannot be reached: {reason}"))
            }
            Some(crate::Health::DiskOutOfService { reason, .. }) => Some(reason),
            _ => None,
        };
        if let Some(reason) = unreachable {
            return Explanation::DiskOutOfService { reason };
        }
        Explanation::NeverWritten
    }

    /// The live value of `key`, read as `explain` reads: no promotion, no drop, no read time,
    /// nothing counted. For the cache's own notes (a memoized function's version).
    pub(crate) fn read_quietly<V>(&self, ek: &EncodedKey) -> Option<V>
    where
        V: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let now = self.clock.now_ms();
        if let Some(entry) = self.memory.get(ek.digest) {
            let last = entry.last_access_ms.load(Ordering::Relaxed);
            if *entry.key == ek.bytes[..]
                && !entry.expiry.is_expired(now, last)
                && self.gens.is_current(entry.gens.iter().copied())
            {
                match &entry.value {
                    Value::Decoded { value, .. } => {
                        if let Some(v) = value.downcast_ref::<V>() {
                            return Some(v.clone());
                        }
                    }
                    Value::Raw(raw) => {
                        if matches!(TypeCheck::of::<V>(&raw.meta), TypeCheck::Same) {
                            return codec::decode::<V>(&raw.payload, raw.meta.self_describing);
                        }
                    }
                }
            }
        }
        let stored = self.lower.read(ek.digest)?;
        let rec = record::decode(&stored.bytes).ok()?;
        let live = rec.key == &ek.bytes[..]
            && rec
                .judge(ek.digest, now, stored.last_access_ms, &self.gens)
                .is_none()
            && matches!(TypeCheck::of::<V>(&rec.meta), TypeCheck::Same);
        // The cache's notes are small: never in a side file.
        (live && rec.blob().is_none())
            .then(|| codec::decode::<V>(rec.payload, rec.meta.self_describing))
            .flatten()
    }

    fn explain_memory<V: DeserializeOwned + 'static>(
        &self,
        ek: &EncodedKey,
        now: u64,
    ) -> Option<Explanation> {
        let entry = self.memory.get(ek.digest)?;
        if *entry.key != ek.bytes[..] {
            return None;
        }
        let last = entry.last_access_ms.load(Ordering::Relaxed);
        Some(if entry.expiry.is_expired(now, last) {
            explain::expired(entry.expiry.expired_at(last))
        } else if !self.gens.is_current(entry.gens.iter().copied()) {
            explain::invalidated(entry.gens.iter().copied(), &self.gens)
        } else {
            match &entry.value {
                Value::Decoded { value, type_name } if !(**value).is::<V>() => {
                    Explanation::OtherType {
                        stored: type_name.to_string(),
                    }
                }
                Value::Decoded { .. } => Explanation::Hit,
                // Loaded by the warm restart, not decoded yet: judged as its record would be.
                Value::Raw(raw) => match TypeCheck::of::<V>(&raw.meta) {
                    TypeCheck::OtherType => Explanation::OtherType {
                        stored: entry.value.type_name().into_owned(),
                    },
                    TypeCheck::OutdatedShape => Explanation::OutdatedShape,
                    TypeCheck::Same => Explanation::Hit,
                },
            }
        })
    }

    fn explain_disk<V>(&self, ek: &EncodedKey, now: u64) -> Option<Explanation>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let stored = self.lower.read(ek.digest)?;
        let rec = match record::decode(&stored.bytes) {
            Ok(rec) => rec,
            Err(damage) => {
                return Some(explain::of_dead(damage.dead(), None, None, &self.gens));
            }
        };
        if rec.key != &ek.bytes[..] {
            return None; // another key with the same digest
        }
        if let Some(why) = rec.judge(ek.digest, now, stored.last_access_ms, &self.gens) {
            return Some(explain::of_dead(
                why,
                Some(&rec),
                stored.last_access_ms,
                &self.gens,
            ));
        }
        Some(match TypeCheck::of::<V>(&rec.meta) {
            TypeCheck::OtherType => Explanation::OtherType {
                stored: fingerprint::describe(rec.meta.type_name_id).into_owned(),
            },
            TypeCheck::OutdatedShape => Explanation::OutdatedShape,
            // A read would find the side file missing (or cut short) and miss.
            TypeCheck::Same
                if rec
                    .blob()
                    .is_some_and(|b| !self.lower.out_of_line_present(&b)) =>
            {
                Explanation::Damaged
            }
            TypeCheck::Same => Explanation::Hit,
        })
    }
}
