//! Generations across machines. Each label (a tag, a namespace, `all`) has one small key in
//! Redis holding a random token, replaced by a fresh one on every invalidation; a record in
//! Redis carries the tokens it was written under. A missing key means "invalidated" (evicted
//! or flushed), never "generation 0", and tokens need no agreement on counters.
//!
//! The engine stamps and judges records with the cache's own counters (`Generations`); this
//! module translates between the two at the boundary: a record's local generations become
//! tokens on the way to Redis, and tokens become local generations on the way back (a token
//! that is not the label's current one becomes a generation that is never current).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::disk::lock;
use crate::generations::Generations;

/// A local generation that is never current (counters start at 0 and count up by one).
const NEVER: u64 = u64::MAX;

/// The bit that marks a token written by an invalidation; a token written at a label's first
/// use has it clear.
pub(super) const BUMPED: u64 = 1 << 63;

/// What this process knows of each label's token.
#[derive(Default)]
pub(super) struct Tokens {
    known: Mutex<HashMap<u64, Known>>,
    /// Raised whenever a token may have changed: a lookup that started before it does not
    /// keep what it read.
    changes: AtomicU64,
}

#[derive(Clone, Copy)]
struct Known {
    token: u64,
    /// The local generation the label had when the token was current.
    local: u64,
}

impl Tokens {
    /// The tokens for a record stamped with `stamp` (local generations), fetching (or
    /// creating) a label's token with `fetch` when it is not known. `None` if a generation is
    /// no longer current: the record is stale and must not be written.
    ///
    /// # Errors
    /// What `fetch` gives.
    pub fn outgoing<E>(
        &self,
        gens: &Generations,
        stamp: impl IntoIterator<Item = (u64, u64)>,
        mut fetch: impl FnMut(u64) -> Result<u64, E>,
    ) -> Result<Option<Vec<(u64, u64)>>, E> {
        let mut out = Vec::new();
        for (id, generation) in stamp {
            if generation != gens.current(id) {
                return Ok(None);
            }
            let known = lock(&self.known).get(&id).copied();
            let token = match known {
                Some(k) if k.local == generation => k.token,
                _ => {
                    let before = self.changes.load(Ordering::Acquire);
                    let token = fetch(id)?;
                    // A change heard meanwhile (of any label) keeps the token from being
                    // remembered; the write itself is stale only if this label moved on.
                    if !self.keep(gens, id, token, generation, before)
                        && generation != gens.current(id)
                    {
                        return Ok(None);
                    }
                    token
                }
            };
            out.push((id, token));
        }
        Ok(Some(out))
    }

    /// The local generations for a record read with `stamp` (tokens), fetching a label's
    /// token with `fetch` when it is not known (`None`: the label's key is gone).
    ///
    /// # Errors
    /// What `fetch` gives.
    pub fn incoming<E>(
        &self,
        gens: &Generations,
        stamp: impl IntoIterator<Item = (u64, u64)>,
        mut fetch: impl FnMut(u64) -> Result<Option<u64>, E>,
    ) -> Result<Vec<(u64, u64)>, E> {
        let mut out = Vec::new();
        for (id, token) in stamp {
            let known = lock(&self.known).get(&id).copied();
            // The label's token, and the local generation it stood for when it was read: a
            // change heard meanwhile makes that generation an old one.
            let (current, generation) = match known {
                Some(k) if k.local == gens.current(id) => (Some(k.token), k.local),
                _ => {
                    let before = self.changes.load(Ordering::Acquire);
                    let generation = gens.current(id);
                    let fetched = fetch(id)?;
                    if let Some(t) = fetched {
                        self.keep(gens, id, t, generation, before);
                    }
                    (fetched, generation)
                }
            };
            let generation = match current {
                Some(t) if t == token => generation,
                _ => NEVER,
            };
            out.push((id, generation));
        }
        Ok(out)
    }

    /// Keeps `token` as the current one of `id` at local `generation`, unless a change was
    /// heard of since the lookup began (`before`); whether it did.
    fn keep(&self, gens: &Generations, id: u64, token: u64, generation: u64, before: u64) -> bool {
        let mut known = lock(&self.known);
        if self.changes.load(Ordering::Acquire) != before || gens.current(id) != generation {
            return false;
        }
        known.insert(
            id,
            Known {
                token,
                local: generation,
            },
        );
        true
    }

    /// This process invalidated `label` with the fresh `token`: the local generation moves
    /// on, and records written from now on carry the token.
    pub fn ours(&self, gens: &Generations, label: &str, token: u64) {
        let mut known = lock(&self.known);
        self.changes.fetch_add(1, Ordering::AcqRel);
        let generation = gens.bump(label);
        known.insert(
            crate::generations::id(label),
            Known {
                token,
                local: generation,
            },
        );
    }

    /// Another client changed the key of `id`; `current` is its token now (`None`: gone).
    /// An invalidation ([`BUMPED`] token, even one already looked up) or a key gone (deleted
    /// because the server was full, or evicted) makes the label move on here; a key created
    /// at a label's first use invalidates no one's values in memory. Whether the label moved
    /// on.
    pub fn heard(&self, gens: &Generations, id: u64, current: Option<u64>) -> bool {
        let mut known = lock(&self.known);
        self.changes.fetch_add(1, Ordering::AcqRel);
        known.remove(&id);
        // Even a token this process already knows: a read may have looked it up (and taken
        // it as the current one) before its invalidation was heard.
        let moved = match current {
            Some(token) => token & BUMPED != 0,
            None => true,
        };
        if moved {
            gens.bump_id(id);
        }
        moved
    }

    /// Forgets the token of `id` (its key was deleted): looked up afresh at next use.
    pub fn forget(&self, id: u64) {
        let mut known = lock(&self.known);
        self.changes.fetch_add(1, Ordering::AcqRel);
        known.remove(&id);
    }

    /// Changes may have been missed (the listener was lost, the server flushed): tokens are
    /// looked up afresh. The cache drops what it read from Redis at the same time; what it
    /// keeps in memory only stays.
    pub fn forget_all(&self) {
        let mut known = lock(&self.known);
        self.changes.fetch_add(1, Ordering::AcqRel);
        known.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T>(v: T) -> Result<T, ()> {
        Ok(v)
    }

    #[test]
    fn a_record_read_back_is_current_until_its_token_changes() {
        let gens = Generations::default();
        let tokens = Tokens::default();
        let id = crate::generations::id("tag:t");
        let written = tokens
            .outgoing(&gens, gens.stamp(&[id]), |_| ok(7))
            .unwrap()
            .unwrap();
        assert_eq!(written, vec![(id, 7)]);
        let read = tokens
            .incoming(&gens, written.clone(), |_| -> Result<Option<u64>, ()> {
                panic!("known")
            })
            .unwrap();
        assert!(gens.is_current(read));
        assert!(tokens.heard(&gens, id, Some(8 | BUMPED)));
        let read = tokens
            .incoming(&gens, written, |_| ok(Some(8 | BUMPED)))
            .unwrap();
        assert!(
            !gens.is_current(read),
            "a replaced token must not be current"
        );
    }

    #[test]
    fn a_missing_generation_key_means_invalidated() {
        let gens = Generations::default();
        let tokens = Tokens::default();
        let id = crate::generations::id("all");
        let read = tokens.incoming(&gens, [(id, 7)], |_| ok(None)).unwrap();
        assert!(!gens.is_current(read));
    }

    #[test]
    fn a_stamp_older_than_the_label_is_not_written() {
        let gens = Generations::default();
        let tokens = Tokens::default();
        let id = crate::generations::id("tag:t");
        let stamp = gens.stamp(&[id]);
        tokens.ours(&gens, "tag:t", 9);
        assert_eq!(tokens.outgoing(&gens, stamp, |_| ok(1)).unwrap(), None);
        let fresh = gens.stamp(&[id]);
        assert_eq!(
            tokens.outgoing(&gens, fresh, |_| ok(1)).unwrap(),
            Some(vec![(id, 9)])
        );
    }

    #[test]
    fn a_write_whose_token_lookup_another_label_overtook_is_still_written() {
        let gens = Generations::default();
        let tokens = Tokens::default();
        let id = crate::generations::id("tag:t");
        let other = crate::generations::id("tag:other");
        let written = tokens
            .outgoing(&gens, gens.stamp(&[id]), |_| {
                // Another process created another label's key meanwhile.
                tokens.heard(&gens, other, Some(3));
                ok(7)
            })
            .unwrap();
        assert_eq!(written, Some(vec![(id, 7)]), "a current write was dropped");
        // And one whose own label moved on meanwhile is not written.
        let stamp = gens.stamp(&[id]);
        let written = tokens
            .outgoing(&gens, stamp, |_| {
                tokens.heard(&gens, id, Some(9 | BUMPED));
                ok(9 | BUMPED)
            })
            .unwrap();
        assert_eq!(written, None);
    }

    #[test]
    fn a_lookup_that_a_change_overtook_is_not_kept() {
        let gens = Generations::default();
        let tokens = Tokens::default();
        let id = crate::generations::id("tag:t");
        let read = tokens
            .incoming(&gens, [(id, 5)], |_| {
                // The listener hears of a change while the token is being read.
                tokens.heard(&gens, id, Some(6 | BUMPED));
                ok(Some(5))
            })
            .unwrap();
        assert!(
            !gens.is_current(read),
            "judged against the generation before the change"
        );
        assert!(lock(&tokens.known).is_empty());
    }

    #[test]
    fn a_label_key_created_elsewhere_invalidates_nothing_in_memory_and_one_gone_does() {
        let gens = Generations::default();
        let tokens = Tokens::default();
        let id = crate::generations::id("tag:t");
        let stamp = gens.stamp(&[id]);
        assert!(!tokens.heard(&gens, id, Some(5)), "created at first use");
        assert!(gens.is_current(stamp.clone()));
        assert!(
            tokens.heard(&gens, id, None),
            "deleted or evicted: invalidated"
        );
        let stamp = gens.stamp(&[id]);
        assert!(tokens.heard(&gens, id, Some(5 | BUMPED)), "invalidated");
        assert!(!gens.is_current(stamp));
    }
}
