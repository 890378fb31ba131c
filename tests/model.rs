//! A model-based test: random sequences of operations on one cache, each checked against a
//! model of what the calls acknowledged so far promise (a map from each key to the states it
//! may be in).
//!
//! Operations: insert (small values and side-file values, with tags and ttls), get, remove,
//! get_or_insert_with, invalidate_tag, namespace clear, clear, clock advances, flush, compact,
//! drop and reopen, a crash (the folder as of the last completed sync, opened as the cache
//! from then on), a sweep of orphan side files, and injected failures (a full disk under the
//! database, side files that cannot be written; healed by a later operation).
//!
//! What is checked:
//! - every read returns a value the model allows, never torn;
//! - no call fails unless a failure was injected (and not healed since);
//! - after healing, `flush` brings the disk tier back;
//! - after each drop, crash and sweep: the database's stored byte totals are the count of its
//!   records and side files, no record references a missing side file, and after a sweep
//!   with the orphan age passed no side file is left that no record references.
//!
//! With `Durability::Immediate` every acknowledged write survives a crash; with `Batched`,
//! those before the last `flush` that returned `Ok`.
//!
//! `TIERED_FUZZ_CASES` (default 24) sets the number of cases and `TIERED_FUZZ_OPS` (default
//! 60) the most operations in one; `PROPTEST_RNG_SEED` makes a run repeatable (every run prints
//! the seed it used, shown with a failure). For a long
//! run: `TIERED_FUZZ_CASES=2000 cargo test --release --features testing-faults --test model`.

#[path = "common/model.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tiered::{Cache, Durability, Faults, ManualClock};

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Every write and sync of the database fails.
    DiskFull,
    /// Every side file fails to write.
    SideFiles,
    /// Both switched off; the tier must come back.
    Heal,
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        k: K,
        large: bool,
        tags: u8,
        ttl: u8,
    },
    GetOrInsert {
        k: K,
        large: bool,
        tags: u8,
        ttl: u8,
    },
    Get(K),
    Remove(K),
    Invalidate(u8),
    ClearNamespace(u8),
    Clear,
    Advance(u8),
    Flush,
    Compact,
    Reopen,
    Crash,
    Sweep,
    Fault(Fault),
}

fn key() -> impl Strategy<Value = K> {
    (0..SCOPES, 0..KEYS).prop_map(|(scope, key)| K { scope, key })
}

fn op() -> impl Strategy<Value = Op> {
    // Large values are rarer: each is a side file and an fsync or two.
    let large = prop::bool::weighted(0.25);
    prop_oneof![
        12 => (key(), large, 0..4u8, 0..3u8)
            .prop_map(|(k, large, tags, ttl)| Op::Insert { k, large, tags, ttl }),
        4 => (key(), large, 0..4u8, 0..3u8)
            .prop_map(|(k, large, tags, ttl)| Op::GetOrInsert { k, large, tags, ttl }),
        10 => key().prop_map(Op::Get),
        4 => key().prop_map(Op::Remove),
        2 => (0..TAGS).prop_map(Op::Invalidate),
        1 => (1..SCOPES).prop_map(Op::ClearNamespace),
        1 => Just(Op::Clear),
        3 => (0..3u8).prop_map(Op::Advance),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        2 => Just(Op::Reopen),
        3 => Just(Op::Crash),
        1 => Just(Op::Sweep),
        1 => Just(Op::Fault(Fault::DiskFull)),
        1 => Just(Op::Fault(Fault::SideFiles)),
        2 => Just(Op::Fault(Fault::Heal)),
    ]
}

/// ttl choices: none, 10.5 s, 95.5 s (never on a whole second, so never on a clock reading).
fn ttl_ms(ttl: u8) -> Option<u64> {
    [None, Some(10_500), Some(95_500)][ttl as usize]
}

fn advance_by(a: u8) -> Duration {
    Duration::from_secs([1, 10, 100][a as usize])
}

/// The model of one key.
#[derive(Clone, Debug)]
struct Slot {
    /// The states a read in this process may see.
    now: Vec<State>,
    /// The states a crash may leave on disk.
    durable: Vec<State>,
    /// Changed while the disk failed: what a drop or a crash leaves is any of `durable`.
    tainted: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            now: vec![None],
            durable: vec![None],
            tainted: false,
        }
    }
}

fn union(a: &mut Vec<State>, b: impl IntoIterator<Item = State>) {
    for s in b {
        if !a.contains(&s) {
            a.push(s);
        }
    }
}

struct Model {
    slots: BTreeMap<K, Slot>,
    immediate: bool,
    /// A failure is injected, or was and the tier has not been seen back since.
    faulty: bool,
    next_id: u64,
}

impl Model {
    /// The next value written, with its options as of `now`.
    fn new_entry(&mut self, large: bool, tags: u8, ttl: u8, now: u64) -> Entry {
        let entry = Entry {
            id: self.next_id,
            large,
            tags,
            deadline: ttl_ms(ttl).map(|t| now + t),
        };
        self.next_id += 1;
        entry
    }

    fn new(immediate: bool) -> Self {
        Model {
            slots: K::all().map(|k| (k, Slot::default())).collect(),
            immediate,
            faulty: false,
            next_id: 1,
        }
    }

    /// A change of the key `k` by `f`, acknowledged (`ok`) or not.
    fn apply(&mut self, k: K, ok: bool, constant: bool, f: impl Fn(State) -> State) {
        let faulty = self.faulty;
        let immediate = self.immediate;
        let slot = self.slots.get_mut(&k).unwrap();
        let changed: Vec<State> = slot.now.iter().map(|s| f(*s)).collect();
        if ok {
            slot.now.clear();
        }
        union(&mut slot.now, changed.iter().copied());
        if ok && !faulty && immediate {
            let durable: Vec<State> = slot.durable.iter().map(|s| f(*s)).collect();
            slot.durable.clear();
            union(&mut slot.durable, durable);
            if constant {
                slot.tainted = false;
            }
        } else {
            union(&mut slot.durable, changed);
            if !ok || faulty {
                // Coming back into service, the tier deletes the record a write kept in memory
                // only has overtaken, and that write is never committed: a crash then leaves
                // the key with neither (reported to the lead; a miss, never a wrong value).
                union(&mut slot.durable, [None]);
                slot.tainted = true;
            }
        }
    }

    fn apply_all(&mut self, ok: bool, f: impl Fn(K, State) -> State) {
        for k in K::all() {
            self.apply(k, ok, false, |s| f(k, s));
        }
    }

    /// The disk starts failing: with `Batched`, writes not yet committed fail with the next
    /// commit, are kept in memory only (the one flush that says so may be the recovery's), and
    /// the records they overtook are deleted on recovery.
    fn failing_disk(&mut self) {
        if self.immediate {
            return;
        }
        for slot in self.slots.values_mut() {
            if slot.durable != slot.now {
                let now = slot.now.clone();
                union(&mut slot.durable, now);
                union(&mut slot.durable, [None]);
                slot.tainted = true;
            }
        }
    }

    fn flushed(&mut self) {
        for slot in self.slots.values_mut() {
            if !slot.tainted {
                slot.durable = slot.now.clone();
            }
        }
    }

    fn crashed(&mut self) {
        for slot in self.slots.values_mut() {
            slot.now = slot.durable.clone();
        }
    }

    fn reopened(&mut self, faulty: bool) {
        for slot in self.slots.values_mut() {
            if faulty || slot.tainted {
                let durable = slot.durable.clone();
                union(&mut slot.now, durable);
                let now = slot.now.clone();
                union(&mut slot.durable, now);
            }
        }
    }
}

/// One case's cache, its folder and its faults.
struct Run {
    root: PathBuf,
    clock: Arc<ManualClock>,
    durability: Durability,
    generation: u32,
    dir: PathBuf,
    faults: Arc<Faults>,
    cache: Option<Cache>,
    /// What the case did, for the report.
    crashes: u32,
    sync_points: usize,
}

impl Run {
    fn new(root: &Path, durability: Durability) -> Result<Run, String> {
        let mut run = Run {
            root: root.to_path_buf(),
            clock: clock(),
            durability,
            generation: 0,
            dir: root.join("c0"),
            faults: Arc::new(Faults::default()),
            cache: None,
            crashes: 0,
            sync_points: 0,
        };
        run.open_here()?;
        Ok(run)
    }

    fn cache(&self) -> &Cache {
        self.cache.as_ref().unwrap()
    }

    /// Opens `self.dir` on fresh faults that record crash images.
    fn open_here(&mut self) -> Result<(), String> {
        self.faults = Arc::new(Faults::default());
        let vault = self.root.join(format!("vault{}", self.generation));
        self.faults
            .record_images(&vault)
            .map_err(|e| e.to_string())?;
        let cache = open(&self.dir, &self.clock, self.durability, &self.faults)
            .map_err(|e| format!("open {}: {e}", self.dir.display()))?;
        self.cache = Some(cache);
        Ok(())
    }

    fn heal(&self) {
        self.faults.disk_full(false);
        self.faults.side_files_fail(false);
    }

    /// Heals, then flushes until the tier is back (a first flush may report writes lost).
    fn recover(&self) -> Result<(), String> {
        self.heal();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            match self.cache().flush() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > until => {
                    return Err(format!(
                        "the disk tier did not come back after healing: {e}"
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Drops the cache and audits its folder.
    fn close(&mut self, what: &str) -> Result<tiered::Audit, String> {
        self.sync_points += self.faults.sync_points();
        self.cache = None;
        self.heal();
        audit_consistent(&self.dir, what)
    }
}

/// What all cases did, for the report.
static OPS: AtomicU64 = AtomicU64::new(0);
static CRASHES: AtomicU64 = AtomicU64::new(0);
static SYNC_POINTS: AtomicU64 = AtomicU64::new(0);
static FAILED_CALLS: AtomicU64 = AtomicU64::new(0);
static SWEEPS: AtomicU64 = AtomicU64::new(0);

fn run_case(durability: Durability, ops: &[Op]) -> Result<(), TestCaseError> {
    let root = tempfile::tempdir().unwrap();
    let immediate = durability == Durability::Immediate;
    let mut run = Run::new(root.path(), durability).map_err(TestCaseError::fail)?;
    let mut model = Model::new(immediate);
    for (i, op) in ops.iter().enumerate() {
        step(&mut run, &mut model, op).map_err(|e| {
            TestCaseError::fail(format!("operation {i} ({op:?}) with {durability:?}: {e}"))
        })?;
    }
    // The end: every key read, then a crash image and a reopen checked the same way.
    check_all(&run, &model, "at the end")?;
    step(&mut run, &mut model, &Op::Crash).map_err(TestCaseError::fail)?;
    check_all(&run, &model, "after the final crash")?;
    run.close("at the end").map_err(TestCaseError::fail)?;
    OPS.fetch_add(ops.len() as u64, Relaxed);
    CRASHES.fetch_add(u64::from(run.crashes), Relaxed);
    SYNC_POINTS.fetch_add(run.sync_points as u64, Relaxed);
    Ok(())
}

/// Checks a read against the model; while the disk fails, a read that only the file could
/// answer is a miss (the tier is out of service).
fn check(model: &Model, k: K, got: Option<&Val>, now: u64, what: &str) -> Result<(), String> {
    if got.is_none() && model.faulty {
        return Ok(());
    }
    check_read(k, got, &model.slots[&k].now, now, what)
}

fn check_all(run: &Run, model: &Model, what: &str) -> Result<(), TestCaseError> {
    let now = now_ms(&run.clock);
    for k in model.slots.keys() {
        match get(run.cache(), *k) {
            Ok(got) => check(model, *k, got.as_deref(), now, what).map_err(TestCaseError::fail)?,
            Err(e) => return Err(TestCaseError::fail(format!("{what}: get {k:?}: {e}"))),
        }
    }
    Ok(())
}

/// An error is a failure of the test unless a fault is injected.
fn allowed<T>(model: &Model, r: &tiered::Result<T>, what: &str) -> Result<bool, String> {
    match r {
        Ok(_) => Ok(true),
        Err(_) if model.faulty => {
            FAILED_CALLS.fetch_add(1, Relaxed);
            Ok(false)
        }
        Err(e) => Err(format!("{what} failed with no fault injected: {e}")),
    }
}

fn step(run: &mut Run, model: &mut Model, op: &Op) -> Result<(), String> {
    let now = now_ms(&run.clock);
    match *op {
        Op::Insert {
            k,
            large,
            tags,
            ttl,
        } => {
            let entry = model.new_entry(large, tags, ttl, now);
            let r = insert(
                run.cache(),
                k,
                Val::new(entry.id, large),
                &entry.options(now),
            );
            let ok = allowed(model, &r, "insert")?;
            model.apply(k, ok, true, |_| Some(entry));
        }
        Op::GetOrInsert {
            k,
            large,
            tags,
            ttl,
        } => {
            let entry = model.new_entry(large, tags, ttl, now);
            let r = get_or_insert(
                run.cache(),
                k,
                Val::new(entry.id, large),
                &entry.options(now),
            );
            match r {
                Ok(v) if v.id == entry.id => {
                    check(model, k, None, now, "get_or_insert_with computed")?;
                    let ok = !model.faulty;
                    model.apply(k, ok, true, |_| Some(entry));
                }
                Ok(v) => check(model, k, Some(&v), now, "get_or_insert_with")?,
                Err(e) if model.faulty => {
                    let _ = e;
                    model.apply(k, false, true, |_| Some(entry));
                }
                Err(e) => return Err(format!("get_or_insert_with failed: {e}")),
            }
        }
        Op::Get(k) => {
            let got = get(run.cache(), k).map_err(|e| format!("get: {e}"))?;
            check(model, k, got.as_deref(), now, "get")?;
        }
        Op::Remove(k) => {
            let r = remove(run.cache(), k);
            let ok = allowed(model, &r, "remove")?;
            model.apply(k, ok, true, |_| None);
        }
        Op::Invalidate(t) => {
            let r = run.cache().invalidate_tag(&tag_name(t));
            let ok = allowed(model, &r, "invalidate_tag")?;
            model.apply_all(ok, |_, s| s.filter(|e| e.tags & (1 << t) == 0));
        }
        Op::ClearNamespace(scope) => {
            let r = run.cache().namespace(ns_name(scope)).clear();
            let ok = allowed(model, &r, "namespace clear")?;
            model.apply_all(ok, |k, s| s.filter(|_| k.scope != scope));
        }
        Op::Clear => {
            let r = run.cache().clear();
            let ok = allowed(model, &r, "clear")?;
            model.apply_all(ok, |_, _| None);
        }
        Op::Advance(a) => run.clock.advance(advance_by(a)),
        Op::Flush => {
            let r = run.cache().flush();
            if allowed(model, &r, "flush")? && !model.faulty {
                model.flushed();
            }
        }
        Op::Compact => {
            let r = run.cache().compact();
            allowed(model, &r, "compact")?;
        }
        Op::Reopen => {
            let faulty = model.faulty;
            run.close("after a drop")?;
            model.reopened(faulty);
            model.faulty = false;
            run.open_here()?;
        }
        Op::Crash => {
            let n = run.faults.sync_points();
            if n == 0 {
                return Ok(());
            }
            run.generation += 1;
            let image = run.root.join(format!("c{}", run.generation));
            run.faults
                .write_image(n - 1, &image)
                .map_err(|e| format!("crash image: {e}"))?;
            run.crashes += 1;
            run.close("the crashed cache, dropped")
                .map(drop)
                .or_else(|e| if model.faulty { Ok(()) } else { Err(e) })?;
            audit_consistent(&image, "a crash image")?;
            run.dir = image;
            model.crashed();
            model.faulty = false;
            run.open_here()?;
        }
        Op::Sweep => {
            if model.faulty {
                run.recover()?;
                model.faulty = false;
            }
            sweep_orphans(run.cache(), &run.dir, &run.clock).map_err(|e| format!("sweep: {e}"))?;
            let audit = run.close("after a sweep")?;
            SWEEPS.fetch_add(1, Relaxed);
            if !audit.unreferenced.is_empty() {
                return Err(format!(
                    "side files no record references survived a sweep past the orphan \
                     age: {:?}",
                    audit.unreferenced
                ));
            }
            model.reopened(false);
            run.open_here()?;
        }
        Op::Fault(Fault::DiskFull) => {
            run.faults.disk_full(true);
            model.faulty = true;
            model.failing_disk();
        }
        Op::Fault(Fault::SideFiles) => {
            run.faults.side_files_fail(true);
            model.faulty = true;
        }
        Op::Fault(Fault::Heal) => {
            if model.faulty {
                run.recover()?;
                model.faulty = false;
            }
        }
    }
    Ok(())
}

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_operations_keep_what_each_acknowledged_call_promised() {
    let cases = env("TIERED_FUZZ_CASES", 24);
    let max_ops = env("TIERED_FUZZ_OPS", 60) as usize;
    // A seed of our own unless one is given, printed, so that a failure in CI can be replayed
    // with `PROPTEST_RNG_SEED=<seed>`.
    use std::hash::BuildHasher;
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
        });
    println!("model: PROPTEST_RNG_SEED={seed}");
    let config = Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        // Shrinking replays whole cases; a few hundred are enough to find a short one.
        max_shrink_iters: 400,
        ..Config::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let durability = prop_oneof![
        Just(Durability::Immediate),
        Just(Durability::Batched(Duration::from_millis(20))),
        Just(Durability::Batched(Duration::MAX)),
    ];
    let strategy = (durability, prop::collection::vec(op(), 1..=max_ops));
    let result = runner.run(&strategy, |(durability, ops)| run_case(durability, &ops));
    println!(
        "model: {cases} cases of up to {max_ops} operations in {:.1?}: {} operations \
         (shrinking included), {} crashes, {} sync points recorded, {} calls failed as \
         injected, {} orphan sweeps checked",
        started.elapsed(),
        OPS.load(Relaxed),
        CRASHES.load(Relaxed),
        SYNC_POINTS.load(Relaxed),
        FAILED_CALLS.load(Relaxed),
        SWEEPS.load(Relaxed),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
