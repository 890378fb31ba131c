//! The admin work, a page at a time, on the engine: listing, export, import and clearing
//! expired entries. The public [`Cache`](crate::Cache) methods loop over pages, so that a
//! process that does not own the folder can have the owner serve each page (the cursor is the
//! last key digest seen, `None` to start and when done).

use std::collections::{HashMap, HashSet};

use super::listing::{self, EntryFilter, EntryInfo};
use super::readable;
use super::transfer::{Exported, ExportedTag};
use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::expiry::Expiry;
use crate::generations;
use crate::key::ScopeName;
use crate::memory::{self, MemEntry, Raw, Value};
use crate::record::{self, Dead, Meta, Record};
use crate::stats::Counters;
use crate::tiers::{Lower, Scanned, Staging, Ticket};

impl Inner {
    /// Runs `visit` on each record of the disk tier's next `max` records after `after`,
    /// decoded and judged at one moment (damaged records are skipped: they are gone for
    /// users), and returns the cursor to continue from (`None`: done). A cache in memory only
    /// has no records.
    pub(super) fn each_stored(
        &self,
        after: Option<u128>,
        max: usize,
        mut visit: impl FnMut(&dyn Lower, &Scanned, Record<'_>, Option<Dead>),
    ) -> Result<Option<u128>> {
        let disk = &*self.lower;
        let (page, cursor) = disk.scan(after, max)?;
        let now = self.clock.now_ms();
        for s in &page {
            if let Ok(rec) = record::decode(&s.bytes) {
                let dead = rec.judge(s.digest, now, s.last_access_ms, &self.gens);
                visit(disk, s, rec, dead);
            }
        }
        Ok(cursor)
    }

    /// The entries of the disk tier among the next `max` records after `after` that `filter`
    /// lets through, and the cursor to continue from (`None`: done). Live and expired
    /// entries are listed; invalidated, damaged and outdated records are not (they are gone
    /// for users). A cache in memory only lists nothing.
    ///
    /// # Errors
    /// [`Error::Storage`] if the disk tier is out of service.
    pub(crate) fn list_page(
        &self,
        filter: &EntryFilter,
        after: Option<u128>,
        max: usize,
    ) -> Result<(Vec<EntryInfo>, Option<u128>)> {
        let mut out = Vec::new();
        let mut keys = Vec::new();
        let cursor = self.each_stored(after, max, |_, s, rec, dead| {
            let expired = match dead {
                None => false,
                // Judged expired before stale: an expired entry may be invalidated too, and
                // then it is gone for users.
                Some(Dead::Expired) if self.gens.is_current(rec.generations()) => true,
                Some(_) => return,
            };
            let Some(d) = listing::describe(&rec) else {
                return;
            };
            if !filter.matches(&d, expired) {
                return;
            }
            let at = rec.expired_at(s.last_access_ms);
            let blob_len = rec.blob().map_or(0, |b| b.len);
            keys.push(d.key.to_vec());
            out.push(EntryInfo {
                key: readable::render(d.key),
                tags: d
                    .tag_ids
                    .iter()
                    .map(|id| {
                        listing::tag_name(*id, &filter.tags, &self.gens)
                            .unwrap_or_else(|| listing::unknown_tag(*id))
                    })
                    .collect(),
                namespace: d.namespace,
                bytes: (s.bytes.len() as u64).saturating_add(blob_len),
                created: listing::time_of(rec.meta.created_ms),
                expires: (at != u64::MAX).then(|| listing::time_of(at)),
                expired,
                type_name: crate::fingerprint::name_of(rec.meta.type_name_id)
                    .map_or_else(|| format!("#{:08x}", rec.meta.type_name_id), str::to_string),
                call: None,
            });
        })?;
        self.name_calls(&mut out, &keys);
        Ok((out, cursor))
    }

    /// Fills in `call` for the entries of memoized functions: those of a namespace for which
    /// the cache noted a code version (`memo/mod.rs`), whose key has the shape of a call.
    fn name_calls(&self, entries: &mut [EntryInfo], keys: &[Vec<u8>]) {
        let mut memoized: HashMap<String, bool> = HashMap::new();
        for (entry, key) in entries.iter_mut().zip(keys) {
            let Some(ns) = entry.namespace.as_deref() else {
                continue;
            };
            let noted = *memoized.entry(ns.to_string()).or_insert_with(|| {
                crate::key::encode_key_in(Some(crate::memo::VERSIONS), ns)
                    .is_ok_and(|ek| self.read_quietly::<u64>(&ek).is_some())
            });
            if noted {
                entry.call = readable::render_call(call_name(ns), key).map(|(_, call)| call);
            }
        }
    }

    /// The live entries among the next `max` records after `after`, ready to export, and the
    /// cursor to continue from. A record whose side file is missing or damaged is left out
    /// (a read would find it a miss). A cache in memory only exports nothing: its values are
    /// held decoded, and their types are not known here.
    ///
    /// # Errors
    /// [`Error::Storage`] if the disk tier is out of service.
    pub(crate) fn export_page(
        &self,
        after: Option<u128>,
        max: usize,
    ) -> Result<(Vec<Exported>, Option<u128>)> {
        let mut out = Vec::new();
        let cursor = self.each_stored(after, max, |disk, _, rec, dead| {
            if dead.is_some() {
                return;
            }
            let Some(d) = listing::describe(&rec) else {
                return;
            };
            let payload = match rec.blob() {
                None => rec.payload.to_vec(),
                Some(blob) => match disk.out_of_line_bytes(&blob) {
                    Ok(bytes) => bytes,
                    Err(why) => {
                        tracing::warn!(why, "export: a side file is unreadable; entry left out");
                        return;
                    }
                },
            };
            out.push(Exported {
                key: rec.key.to_vec(),
                namespace: d.namespace,
                tags: d
                    .tag_ids
                    .iter()
                    .map(|id| ExportedTag {
                        name: listing::tag_name(*id, &[], &self.gens),
                        id: *id,
                    })
                    .collect(),
                fingerprint: rec.meta.fingerprint,
                type_name_id: rec.meta.type_name_id,
                self_describing: rec.meta.self_describing,
                created_ms: rec.meta.created_ms,
                deadline_ms: rec.meta.expiry.deadline_ms,
                idle_ms: rec.meta.expiry.idle_ms,
                payload,
            });
        })?;
        Ok((out, cursor))
    }

    /// Stores exported entries through the write path, stamped with this cache's current
    /// generations (so `invalidate_tag` and `clear` here reach them); returns how many were
    /// stored. Entries already expired are skipped. An idle limit counts from the import.
    ///
    /// # Errors
    /// [`Error::Import`] for an entry whose key or tags do not hold together (its stream
    /// was forged or damaged past its checksum; the entries before it are stored);
    /// [`Error::TooLarge`], and with `Durability::Immediate` [`Error::Storage`], as
    /// [`Cache::insert`](crate::Cache::insert).
    pub(crate) fn import_entries(&self, entries: Vec<Exported>) -> Result<u64> {
        let mut stored = 0;
        for entry in entries {
            match self.import_one(entry) {
                Ok(true) => stored += 1,
                Ok(false) => {}
                Err(Error::Import { detail, .. }) => {
                    return Err(Error::Import {
                        imported: stored,
                        detail,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(stored)
    }

    /// Deletes every expired entry from both tiers now; returns how many keys it dropped.
    ///
    /// # Errors
    /// [`Error::Storage`] if the disk tier is out of service.
    pub(crate) fn clear_expired_now(&self) -> Result<u64> {
        // A client asks the owner, which holds the records (and drops them from its memory).
        if let Some(asked) = self.lower.clear_expired_elsewhere() {
            return asked;
        }
        let mut dropped: HashSet<u128> = HashSet::new();
        let mut after = None;
        loop {
            let cursor = self.each_stored(after, 1024, |disk, s, rec, dead| {
                // Invalidated ones are gone for users already; the sweeper takes them.
                if dead != Some(Dead::Expired) || !self.gens.is_current(rec.generations()) {
                    return;
                }
                let mut held = self.stripes.lock(s.digest);
                // Unless a write replaced it since the page was read.
                let same = disk
                    .read(s.digest)
                    .is_some_and(|now| now.bytes[..] == s.bytes[..]);
                if !same {
                    return;
                }
                held.bump();
                self.memory.remove(s.digest);
                disk.discard(s.digest);
                drop(held);
                self.counters.count_dead(Dead::Expired);
                self.counters.graveyard.bury(
                    s.digest,
                    crate::explain::expired(rec.expired_at(s.last_access_ms)),
                );
                dropped.insert(s.digest);
            })?;
            match cursor {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        let now = self.clock.now_ms();
        for (digest, entry) in self.memory.entries() {
            let last = entry
                .last_access_ms
                .load(std::sync::atomic::Ordering::Relaxed);
            if dropped.contains(&digest)
                || !entry.expiry.is_expired(now, last)
                || !self.gens.is_current(entry.gens.iter().copied())
            {
                continue;
            }
            let mut held = self.stripes.lock(digest);
            if !self.memory.holds(digest, &entry) {
                continue;
            }
            held.bump();
            self.memory.remove(digest);
            drop(held);
            self.counters.count_dead(Dead::Expired);
            self.counters.graveyard.bury(
                digest,
                crate::explain::expired(entry.expiry.expired_at(last)),
            );
            dropped.insert(digest);
        }
        Ok(dropped.len() as u64)
    }

    /// Stores one exported entry; `false` if it had expired.
    fn import_one(&self, e: Exported) -> Result<bool> {
        let damaged = |detail: String| Error::Import {
            imported: 0,
            detail,
        };
        let now = self.clock.now_ms();
        let expiry = Expiry {
            deadline_ms: e.deadline_ms,
            idle_ms: e.idle_ms,
        };
        if expiry.is_expired(now, now) {
            return Ok(false);
        }
        let Some((namespace, _)) = readable::split_scope(&e.key) else {
            return Err(damaged("an entry's key has no valid scope".into()));
        };
        if namespace != e.namespace {
            return Err(damaged(format!(
                "an entry's namespace ({:?}) is not its key's ({namespace:?})",
                e.namespace
            )));
        }
        let scope = namespace
            .as_deref()
            .map_or_else(ScopeName::root, ScopeName::named);
        let mut ids = vec![
            generations::id(generations::ALL),
            generations::id(&generations::namespace_label(&scope)),
        ];
        for tag in &e.tags {
            if let Some(name) = &tag.name {
                let label = generations::tag_label(name);
                if generations::id(&label) != tag.id {
                    return Err(damaged(format!("tag {name:?} does not match its id")));
                }
                // Named, as an insert with the tag names it: the record writes its row, so
                // that listings and exports of this folder name it too.
                self.gens.know(&label, tag.id);
            }
            if !ids.contains(&tag.id) {
                ids.push(tag.id);
            }
        }
        let digest = xxhash_rust::xxh3::xxh3_128(&e.key);
        let stamp = self.gens.stamp(&ids);
        let mut meta = Meta {
            fingerprint: e.fingerprint,
            type_name_id: e.type_name_id,
            self_describing: e.self_describing,
            in_blob: false,
            expiry,
            created_ms: e.created_ms,
        };
        let disk = &*self.lower;
        if !disk.keeps_records() {
            self.hold_raw(digest, e.key, e.payload, meta, stamp, now, false)?;
            return Ok(true);
        }
        let size = (e.payload.len() + e.key.len() + 16 * stamp.len() + 64) as u64;
        // As `engine/write.rs` stores a value: staged first (a large payload put out of line
        // before its record is queued), room next (back-pressure, no lock held), then both
        // tiers under the key's stripe lock.
        let mut staged = match disk.stage(e.payload, size)? {
            Staging::Ready(staged) => staged,
            Staging::TooLarge { capacity } => {
                return Err(Error::TooLarge {
                    what: format!(
                        "an imported value of type {}",
                        crate::fingerprint::describe(e.type_name_id)
                    ),
                    bytes: size,
                    capacity,
                })
            }
            Staging::KeepAbove(payload) => {
                self.hold_raw(digest, e.key, payload, meta, stamp, now, true)?;
                return Ok(true);
            }
        };
        meta.in_blob = staged.out_of_line;
        let mut record = record::encode(&meta, &stamp, &e.key, &staged.payload);
        let reservation = disk.reserve(record.len(), &mut staged);
        let ticket: Ticket = {
            let mut held = self.stripes.lock(digest);
            if !self.gens.is_current(stamp.iter().copied()) {
                // An invalidation came since the stamp: this write lands after it.
                let fresh = self.gens.stamp(&ids);
                record = record::encode(&meta, &fresh, &e.key, &staged.payload);
            }
            held.bump();
            self.flights.detach(digest);
            // The memory tier may hold an older value of the key: the import replaces it.
            self.memory.remove(digest);
            disk.put(digest, record, reservation)
        };
        Counters::bump(&self.counters.inserts);
        let waited = ticket.wait();
        // What the tier kept alive for the record (a side file's pin) goes only now.
        drop(staged);
        waited.map(|()| true)
    }
}

impl Inner {
    /// Holds an imported entry in the memory tier only, undecoded (as a warm restart holds
    /// it; the first read as its type decodes it), replacing the key's record below if the
    /// tier keeps records. `shared`: a value the tier below would not take, which another
    /// process's write of the key replaces here (`MemEntry::on_disk`).
    #[allow(clippy::too_many_arguments)]
    fn hold_raw(
        &self,
        digest: u128,
        key: Vec<u8>,
        payload: Vec<u8>,
        meta: Meta,
        stamp: Vec<(u64, u64)>,
        now: u64,
        shared: bool,
    ) -> Result<()> {
        let weight = memory::raw_weight(key.len(), payload.len(), stamp.len());
        let ticket = {
            let mut held = self.stripes.lock(digest);
            held.bump();
            self.flights.detach(digest);
            self.memory.insert(
                digest,
                MemEntry {
                    value: Value::Raw(Raw {
                        payload: payload.into_boxed_slice(),
                        meta,
                    }),
                    key: key.into_boxed_slice(),
                    expiry: meta.expiry,
                    created_ms: meta.created_ms,
                    last_access_ms: now.into(),
                    disk_touch_ms: now.into(),
                    gens: stamp.into_boxed_slice(),
                    checked_epoch: 0.into(),
                    weight,
                    on_disk: shared,
                    written_at: held.version(),
                },
            );
            self.lower
                .keeps_records()
                .then(|| self.lower.remove(digest))
        };
        Counters::bump(&self.counters.inserts);
        ticket.map_or(Ok(()), Ticket::wait)
    }
}

/// The name a listing gives a memoized function's calls: the last segment of its path (after
/// the last `::`, else the last `:`), or the whole path if that segment is empty.
pub(crate) fn call_name(path: &str) -> &str {
    let last = path
        .rsplit_once("::")
        .or_else(|| path.rsplit_once(':'))
        .map_or(path, |(_, last)| last);
    if last.is_empty() {
        path
    } else {
        last
    }
}
