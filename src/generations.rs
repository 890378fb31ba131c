//! Generations of tags and namespaces: invalidation in O(1).
//!
//! Every tag and namespace has a `u64` generation (0 until first bumped). A record carries the
//! generations of its namespace, its tags and the cache-wide "all" label at the time it was
//! written; it is live only while all of them are still current. Invalidating is one bump here
//! plus one tiny commit, whatever the number of entries; the sweeper reclaims the space later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use xxhash_rust::xxh3::xxh3_64;

use crate::key::ScopeName;

/// The label every record carries, bumped by `Cache::clear`.
pub(crate) const ALL: &str = "all";
/// The label of the root namespace (which is not `namespace("")`, labelled `ns:`).
pub(crate) const ROOT: &str = "root";

pub(crate) fn tag_label(tag: &str) -> String {
    format!("tag:{tag}")
}

/// `ns:NAME` for a namespace; `root` for the root, which is not `namespace("")`.
pub(crate) fn namespace_label(scope: &ScopeName) -> String {
    match scope.name() {
        Some(name) => format!("ns:{name}"),
        None => ROOT.to_string(),
    }
}

/// The id a label is stored under in records.
pub(crate) fn id(label: &str) -> u64 {
    xxh3_64(label.as_bytes())
}

/// The current generation of every label that was ever bumped, mirrored from the disk tier.
#[derive(Debug, Default)]
pub(crate) struct Generations {
    /// Label id → current generation.
    current: RwLock<HashMap<u64, u64>>,
    /// Label id → label, for writing every generation back to a fresh or reopened file.
    labels: RwLock<HashMap<u64, Arc<str>>>,
    /// Bumped after every change, so a memory hit that already checked its generations at this
    /// epoch need not check them again.
    epoch: AtomicU64,
    /// The records judged against these carry another tier's generations (see
    /// [`foreign`](Generations::foreign)): every stamp counts as current here.
    foreign: bool,
}

impl Generations {
    #[cfg(test)]
    pub fn load(pairs: impl IntoIterator<Item = (String, u64)>) -> Self {
        let mut current = HashMap::new();
        let mut labels = HashMap::new();
        for (label, generation) in pairs {
            let id = id(&label);
            current.insert(id, generation);
            labels.insert(id, Arc::from(label));
        }
        Generations {
            current: RwLock::new(current),
            labels: RwLock::new(labels),
            epoch: AtomicU64::new(1),
            foreign: false,
        }
    }

    /// The generations of a folder in front of Redis (`tiers/chain.rs`): its records are
    /// copies of Redis's, stamped with Redis's tokens, which the tier above checks on every
    /// read. The folder judges them by their deadlines only, never by these.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn foreign() -> Self {
        Generations {
            foreign: true,
            ..Generations::default()
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The current generation of `id` (0 for a label never bumped).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn current(&self, id: u64) -> u64 {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.get(&id).copied().unwrap_or(0)
    }

    /// The current generation of each id, for a record about to be written.
    pub fn stamp(&self, ids: &[u64]) -> Vec<(u64, u64)> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .map(|id| (*id, current.get(id).copied().unwrap_or(0)))
            .collect()
    }

    /// Whether every recorded generation is still the current one.
    pub fn is_current(&self, recorded: impl IntoIterator<Item = (u64, u64)>) -> bool {
        if self.foreign {
            return true;
        }
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        recorded
            .into_iter()
            .all(|(id, generation)| current.get(&id).copied().unwrap_or(0) == generation)
    }

    /// The label of `id` and its current generation, if this process knows it.
    pub fn label_of(&self, id: u64) -> Option<(Arc<str>, u64)> {
        let label = self
            .labels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)?
            .clone();
        let generation = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .unwrap_or(0);
        Some((label, generation))
    }

    /// Every label with its current generation.
    pub fn snapshot(&self) -> Vec<(Arc<str>, u64)> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let labels = self.labels.read().unwrap_or_else(|e| e.into_inner());
        labels
            .iter()
            .map(|(id, label)| (label.clone(), current.get(id).copied().unwrap_or(0)))
            .collect()
    }

    /// Notes the name of a label that may never have been bumped (a tag), so that listings
    /// and exports can name it; changes no generation.
    pub fn know(&self, label: &str, id: u64) {
        let known = self
            .labels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id);
        if !known {
            self.labels
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id)
                .or_insert_with(|| Arc::from(label));
        }
    }

    /// Sets `label` to `generation` if that is newer (a bump another process made).
    pub fn raise(&self, label: &str, generation: u64) {
        self.set(label, generation, |old, new| new > old);
    }

    /// Takes every generation of `pairs` as it is: the owner's, which a client follows.
    pub fn assign(&self, pairs: Vec<(String, u64)>) {
        for (label, generation) in pairs {
            self.set(&label, generation, |old, new| new != old);
        }
    }

    /// Loads a file's generations, keeping newer ones this process knows; returns those, to
    /// be written back to the file.
    pub fn merge_file(&self, stored: &[(String, u64)]) -> Vec<(String, u64)> {
        for (label, generation) in stored {
            self.raise(label, *generation);
        }
        let on_file: HashMap<&str, u64> = stored.iter().map(|(l, g)| (l.as_str(), *g)).collect();
        self.snapshot()
            .into_iter()
            .filter(|(label, generation)| on_file.get(&**label).copied().unwrap_or(0) < *generation)
            .map(|(label, generation)| (label.to_string(), generation))
            .collect()
    }

    fn set(&self, label: &str, generation: u64, change: impl Fn(u64, u64) -> bool) {
        // Named even when its generation stays: a row (or an owner's label) at generation 0
        // names a tag that was never invalidated.
        self.know(label, id(label));
        {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            let id = id(label);
            let slot = current.entry(id).or_insert(0);
            if !change(*slot, generation) {
                return;
            }
            *slot = generation;
            self.labels
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id)
                .or_insert_with(|| Arc::from(label));
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Moves the label of `id` to a new generation, whether or not its name is known (a tier
    /// that hears of a change by id).
    #[cfg(feature = "redis")]
    pub fn bump_id(&self, id: u64) {
        {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            *current.entry(id).or_insert(0) += 1;
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Moves `label` to a new generation and returns it.
    pub fn bump(&self, label: &str) -> u64 {
        let next = {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            let id = id(label);
            let slot = current.entry(id).or_insert(0);
            *slot += 1;
            let next = *slot;
            self.labels
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id)
                .or_insert_with(|| Arc::from(label));
            next
        };
        self.epoch.fetch_add(1, Ordering::AcqRel);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_makes_old_stamps_stale_and_leaves_others() {
        let g = Generations::load([("tag:x".to_string(), 4)]);
        let (x, y) = (id("tag:x"), id("tag:y"));
        let stamp = g.stamp(&[x, y]);
        assert_eq!(stamp, vec![(x, 4), (y, 0)]);
        let e = g.epoch();
        assert_eq!(g.bump("tag:y"), 1);
        assert!(g.epoch() > e);
        assert!(!g.is_current(stamp.clone()));
        assert!(g.is_current([(x, 4)]));
    }

    #[test]
    fn the_root_and_the_empty_namespace_have_their_own_labels() {
        let root = namespace_label(&ScopeName::root());
        let empty = namespace_label(&ScopeName::named(""));
        assert_ne!(root, empty);
        assert_ne!(id(&root), id(&empty));
        assert_eq!(empty, "ns:");
    }
}
