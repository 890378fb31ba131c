//! A crash at every sync point: a scripted workload (inserts, side files, removes, tag
//! invalidations, namespace clears, sweeps, compaction) runs once with every sync of the
//! database recorded; then, for each sync in turn, the folder as a crash right after it would
//! leave it (see `Faults::write_image`) is opened and checked against the model:
//!
//! - the stored byte totals are the count of the records and their side files, and no record
//!   references a missing side file;
//! - every key reads as the workload left it after its last acknowledged call before that
//!   sync, or as the call under way then left it (`Durability::Immediate`: an acknowledged call
//!   is on disk);
//! - after a sweep with the orphan age passed, no side file is left that no record references.

#[path = "common/model.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use tiered::{Cache, Durability, Faults, ManualClock};

#[derive(Clone, Copy, Debug)]
enum Step {
    Insert(K, Entry),
    Remove(K),
    Invalidate(u8),
    ClearNamespace(u8),
    Advance(Duration),
    Compact,
}

type Snapshot = BTreeMap<K, State>;

/// The workload: every kind of write, side files replaced and removed, entries that expire
/// and are swept, and compactions.
fn script(start_ms: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut id = 0;
    let mut entry = |large: bool, tags: u8, ttl: Option<u64>| {
        id += 1;
        Entry {
            id,
            large,
            tags,
            deadline: ttl.map(|t| start_ms + t),
        }
    };
    let k = |scope, key| K { scope, key };
    for key in 0..KEYS {
        steps.push(Step::Insert(k(0, key), entry(key % 3 == 0, key % 4, None)));
        steps.push(Step::Insert(k(1, key), entry(key % 2 == 1, 1, None)));
    }
    for key in 0..3 {
        steps.push(Step::Insert(k(2, key), entry(key == 1, 2, Some(10_500))));
    }
    steps.push(Step::Remove(k(0, 3)));
    steps.push(Step::Remove(k(1, 1)));
    steps.push(Step::Invalidate(0));
    steps.push(Step::Insert(k(0, 0), entry(true, 2, None)));
    steps.push(Step::Insert(k(1, 3), entry(false, 0, None)));
    steps.push(Step::ClearNamespace(1));
    steps.push(Step::Insert(k(1, 4), entry(true, 0, Some(30_500))));
    steps.push(Step::Advance(Duration::from_secs(20)));
    steps.push(Step::Compact);
    steps.push(Step::Insert(k(2, 4), entry(true, 3, None)));
    steps.push(Step::Insert(k(0, 2), entry(true, 0, None)));
    steps.push(Step::Insert(k(0, 2), entry(true, 1, None)));
    steps.push(Step::Invalidate(1));
    steps.push(Step::Advance(Duration::from_secs(20)));
    steps.push(Step::Compact);
    steps.push(Step::Remove(k(2, 4)));
    steps.push(Step::Insert(k(2, 0), entry(false, 0, None)));
    steps.push(Step::ClearNamespace(2));
    steps.push(Step::Insert(k(0, 4), entry(true, 0, None)));
    steps.push(Step::Compact);
    steps
}

/// The model after `step`.
fn apply(model: &mut Snapshot, step: &Step) {
    match *step {
        Step::Insert(k, e) => {
            model.insert(k, Some(e));
        }
        Step::Remove(k) => {
            model.insert(k, None);
        }
        Step::Invalidate(t) => {
            for s in model.values_mut() {
                *s = s.filter(|e| e.tags & (1 << t) == 0);
            }
        }
        Step::ClearNamespace(scope) => {
            for (k, s) in model.iter_mut() {
                if k.scope == scope {
                    *s = None;
                }
            }
        }
        Step::Advance(_) | Step::Compact => {}
    }
}

fn run(cache: &Cache, clock: &ManualClock, step: &Step, now_ms: u64) {
    match *step {
        Step::Insert(k, e) => insert(cache, k, Val::new(e.id, e.large), &e.options(now_ms)),
        Step::Remove(k) => remove(cache, k).map(drop),
        Step::Invalidate(t) => cache.invalidate_tag(&tag_name(t)),
        Step::ClearNamespace(scope) => cache.namespace(ns_name(scope)).clear(),
        Step::Advance(by) => {
            clock.advance(by);
            Ok(())
        }
        Step::Compact => cache.compact(),
    }
    .unwrap_or_else(|e| panic!("{step:?}: {e}"));
}

/// What the recorded run left: for each step, the sync points completed when it returned, the
/// model and the clock after it.
struct Recorded {
    syncs_after: Vec<usize>,
    models: Vec<Snapshot>,
    clocks: Vec<u64>,
    sync_points: usize,
}

#[test]
fn a_crash_after_any_sync_keeps_every_acknowledged_call() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let clock = clock();
    let start_ms = now_ms(&clock);
    let steps = script(start_ms);
    let faults = Arc::new(Faults::default());
    faults.record_images(&root.path().join("vault")).unwrap();
    let mut recorded = Recorded {
        syncs_after: Vec::new(),
        models: Vec::new(),
        clocks: Vec::new(),
        sync_points: 0,
    };
    let mut model: Snapshot = K::all().map(|k| (k, None)).collect();
    {
        let cache = open(&dir, &clock, Durability::Immediate, &faults).unwrap();
        for step in &steps {
            run(&cache, &clock, step, now_ms(&clock));
            apply(&mut model, step);
            recorded.syncs_after.push(faults.sync_points());
            recorded.models.push(model.clone());
            recorded.clocks.push(now_ms(&clock));
        }
        // Drop: the close's own syncs are crash points too.
    }
    recorded.sync_points = faults.sync_points();
    let initial: Snapshot = K::all().map(|k| (k, None)).collect();

    let mut orphans_checked = 0;
    let mut unfinished_creation = 0;
    for n in 0..recorded.sync_points {
        // Steps surely on disk: those that had returned by the end of sync `n`; the next one
        // may or may not be.
        let done = recorded
            .syncs_after
            .iter()
            .take_while(|&&after| after <= n + 1)
            .count();
        let before = if done == 0 {
            &initial
        } else {
            &recorded.models[done - 1]
        };
        let during = recorded.models.get(done).unwrap_or(before);
        // Read at the clock of the step under way (or the last): a sweep in it may have
        // deleted what had expired by then.
        let at = recorded.clocks[done.min(steps.len() - 1)];
        let what = format!("the crash after sync {n} (steps done: {done})");

        let image = root.path().join(format!("image{n}"));
        faults.write_image(n, &image).unwrap();
        // A crash while redb creates the file, before it writes its magic number last, leaves
        // a file that neither redb nor the cache opens (`Error::Corrupt`): a known gap,
        // reported, not checked here. Only the first open can leave one.
        let head = std::fs::read(image.join("tiered.redb")).unwrap_or_default();
        if head.len() >= 9 && head[..9] == [0; 9] {
            assert_eq!(done, 0, "{what}: a database without its magic number");
            unfinished_creation += 1;
            std::fs::remove_dir_all(&image).unwrap();
            continue;
        }
        audit_consistent(&image, &what).unwrap_or_else(|e| panic!("{e}"));

        let clock = Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_millis(at),
        ));
        let cache = open(&image, &clock, Durability::Immediate, &Arc::default())
            .unwrap_or_else(|e| panic!("{what}: open: {e}"));
        for k in K::all() {
            let got = get(&cache, k).unwrap_or_else(|e| panic!("{what}: get {k:?}: {e}"));
            check_read(k, got.as_deref(), &[before[&k], during[&k]], at, &what)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        sweep_orphans(&cache, &image, &clock).unwrap_or_else(|e| panic!("{what}: sweep: {e}"));
        drop(cache);
        let audit =
            audit_consistent(&image, &format!("{what}, swept")).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            audit.unreferenced.is_empty(),
            "{what}: side files no record references survived a sweep past the orphan age: {:?}",
            audit.unreferenced
        );
        orphans_checked += 1;
        std::fs::remove_dir_all(&image).unwrap();
    }
    println!(
        "crash points: {} sync points visited, {} images checked and swept ({} steps), {} in \
         the database's creation skipped",
        recorded.sync_points,
        orphans_checked,
        steps.len(),
        unfinished_creation
    );
    assert!(
        recorded.sync_points >= 2 * steps.len(),
        "the workload made only {} syncs",
        recorded.sync_points
    );
}
