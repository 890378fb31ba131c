//! Forgetting generation rows that no record uses.
//!
//! Every cleared namespace and invalidated tag leaves a row in the `generations` table; a web
//! app with a namespace per session would grow that table (and every open) forever. So after
//! each full sweep pass, rows whose label no record referenced during the pass are deleted.
//! The in-memory generations of this process keep them, so nothing stale revives here. Three
//! rules keep it safe across restarts, where a deleted row reads as generation 0:
//! - a pass counts the labels of every live record it scans *and* of every record the writer
//!   stores while the pass runs;
//! - the writer never stores a record whose generations are already stale (it removes the key
//!   instead), so no record written under an old generation can land after its row is gone;
//! - a record stored later under a deleted label writes the row back in the same commit.

use std::collections::HashSet;

use redb::ReadableTable;

use super::tables::GENERATIONS;
use crate::generations::{self, Generations};

/// What records referenced during a sweep pass: generation labels (this module) and side
/// files (`blobs.rs`, whose orphans a whole pass deletes).
#[derive(Default)]
pub(crate) struct LabelGc {
    /// Label ids referenced during the current pass.
    seen: HashSet<u64>,
    /// Side files referenced during the current pass.
    blobs: HashSet<u64>,
    /// Whether the current pass began at the first record (only a whole pass may judge).
    whole_pass: bool,
    /// Label ids whose rows this process deleted.
    deleted: HashSet<u64>,
    /// Label ids never bumped whose rows this process wrote (so that the folder knows their
    /// names: a tag carried by records but never invalidated).
    named: HashSet<u64>,
}

impl LabelGc {
    /// A pass begins at the first record.
    pub fn begin(&mut self) {
        self.seen.clear();
        self.blobs.clear();
        self.whole_pass = true;
    }

    /// Whether the pass now ending saw every record (it may judge).
    pub fn whole_pass(&self) -> bool {
        self.whole_pass
    }

    /// A pass was cut short (it restarts): it may not judge.
    pub fn interrupt(&mut self) {
        self.whole_pass = false;
    }

    pub fn note(&mut self, ids: impl IntoIterator<Item = u64>) {
        self.seen.extend(ids);
    }

    /// A record referencing side file `id` was seen or stored.
    pub fn note_blob(&mut self, id: u64) {
        self.blobs.insert(id);
    }

    /// At the end of a whole pass: whether side file `id` was referenced during it. Before the
    /// end of a whole pass, every file counts as referenced.
    pub fn blob_referenced(&self, id: u64) -> bool {
        !self.whole_pass || self.blobs.contains(&id)
    }

    /// The deleted labels among `ids`, whose rows a record stored now must write back.
    pub fn revived<'a>(&'a self, ids: &'a [(u64, u64)]) -> impl Iterator<Item = u64> + 'a {
        ids.iter()
            .map(|(id, _)| *id)
            .filter(|id| self.deleted.contains(id))
    }

    /// The labels among `ids` still at generation 0 whose names this process knows and has
    /// not written yet: a record stored now writes their rows (at 0), so that listings and
    /// exports of the folder name them.
    pub fn unnamed(&mut self, ids: &[(u64, u64)], gens: &Generations) -> Vec<u64> {
        let fresh: Vec<u64> = ids
            .iter()
            .filter(|(id, generation)| *generation == 0 && !self.named.contains(id))
            .filter(|(id, _)| gens.label_of(*id).is_some())
            .map(|(id, _)| *id)
            .collect();
        self.named.extend(&fresh);
        fresh
    }

    /// At the end of a whole pass: the rows of labels nothing referenced, to delete.
    pub fn unreferenced(&mut self, stored: &[(String, u64)]) -> Vec<String> {
        if !std::mem::take(&mut self.whole_pass) {
            return Vec::new();
        }
        // Labels used again since their deletion were written back: forget them.
        self.deleted.retain(|id| !self.seen.contains(id));
        let root = generations::namespace_label(&crate::key::ScopeName::root());
        stored
            .iter()
            .filter(|(label, _)| label != generations::ALL && *label != root)
            .filter(|(label, _)| !self.seen.contains(&generations::id(label)))
            .map(|(label, _)| label.clone())
            .collect()
    }

    pub fn deleted(&mut self, labels: &[String]) {
        for id in labels.iter().map(|l| generations::id(l)) {
            self.named.remove(&id);
            self.deleted.insert(id);
        }
    }
}

/// Writes back the rows of `ids` (labels a stored record uses) at their current generation.
pub(crate) fn write_back(
    t: &mut redb::Table<'_, &'static str, u64>,
    gens: &Generations,
    ids: impl IntoIterator<Item = u64>,
) -> Result<(), redb::Error> {
    for id in ids {
        if let Some((label, generation)) = gens.label_of(id) {
            let stored = t.get(label.as_ref())?.map_or(0, |g| g.value());
            t.insert(label.as_ref(), stored.max(generation))?;
        }
    }
    Ok(())
}

/// Every stored generation row.
pub(crate) fn stored_rows(txn: &redb::ReadTransaction) -> Result<Vec<(String, u64)>, redb::Error> {
    let table = txn.open_table(GENERATIONS)?;
    let mut rows = Vec::new();
    for item in table.range::<&str>(..)? {
        let (label, generation) = item?;
        rows.push((label.value().to_string(), generation.value()));
    }
    Ok(rows)
}
