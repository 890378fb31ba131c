//! The concurrency invariant of the per-key ordering rule, checked against a history.
//!
//! Several threads run random `insert` / `remove` / `get` / `get_or_insert_with` /
//! `invalidate_tag` on a few hundred keys of one cache (a small memory tier, so that reads also
//! come from the disk tier), every inserted value unique. Each operation is stamped with its
//! start and end on one global atomic counter. Afterwards (join, flush) every key must read the
//! same through the open cache and after a restart, and that value must be the effect of a
//! *last* write of the key: a write `O` such that no other write of the key started after `O`
//! ended (an insert of the value; `None` after a remove or an invalidation of the key's tag).
//!
//! Reads are checked too, as a register would be: a read that returns a value never returns one
//! that a later write had surely replaced before the read began, nor one computed before an
//! invalidation of its tag that returned before the read began; a read returns `None` only if
//! some write could have removed the value (or none was written).
//!
//! Shared by `tests/ordering.rs` (a few seconds) and `benches/invariant.rs` (long).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tiered::{Cache, Durability, Options};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub threads: usize,
    pub keys: u64,
    /// Each key carries the tag `t{key % tags}`.
    pub tags: u64,
    /// Stop after this long ...
    pub duration: Duration,
    /// ... or after this many operations per thread, whichever comes first.
    pub max_ops_per_thread: u64,
    pub memory_capacity: u64,
    pub durability: Durability,
    pub seed: u64,
    /// The warm restart's budget (`None`: the default).
    pub warm_restart: Option<u64>,
    /// When not zero, this many other keys are written, then every key, and the cache is
    /// reopened: the workload then races the warm restart, which loads the workload's keys
    /// first (they are the most recent) and the other keys after them.
    pub prefill_fillers: u64,
}

impl Config {
    /// The settings of the brief run, lasting `duration`.
    pub fn standard(duration: Duration) -> Self {
        Config {
            threads: 8,
            keys: 300,
            tags: 8,
            duration,
            max_ops_per_thread: u64::MAX,
            // About a hundred of the ~300 entries fit: evictions all the time.
            memory_capacity: 16 << 10,
            durability: Durability::Batched(Duration::from_millis(10)),
            seed: 0x5eed,
            warm_restart: None,
            prefill_fillers: 0,
        }
    }

    /// The brief run against a warm restart: every key already on disk, and loaded into a
    /// memory tier that holds them all while the workload runs.
    pub fn warm(duration: Duration) -> Self {
        Config {
            memory_capacity: 32 << 20,
            warm_restart: Some(32 << 20),
            prefill_fillers: 10_000,
            seed: 0x3a4d,
            ..Config::standard(duration)
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub ops: u64,
    pub reads_checked: u64,
    pub computed: u64,
    pub invalidations: u64,
    pub keys_present: u64,
    pub elapsed: Duration,
    /// Entries the warm restart loaded while the workload ran.
    pub warm_loaded: u64,
    /// Whether the warm restart was still loading once the workload had begun.
    pub warming_while_running: bool,
}

/// The value every write stores: a unique id and a padding derived from it (to weigh, and to
/// detect torn values).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Val {
    pub id: u64,
    pub pad: Vec<u8>,
}

impl Val {
    fn new(id: u64) -> Self {
        Val {
            id,
            pad: pad_of(id),
        }
    }
}

fn pad_of(id: u64) -> Vec<u8> {
    id.to_le_bytes().iter().cycle().take(64).copied().collect()
}

fn tag_of(key: u64, tags: u64) -> String {
    format!("t{}", key % tags)
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `insert_with`, always stored.
    Insert {
        id: u64,
    },
    Remove,
    /// A read (`get`, or a `get_or_insert_with` whose computation did not run here).
    Read {
        got: Option<u64>,
    },
    /// A `get_or_insert_with` whose computation ran here: stored unless invalidated meanwhile.
    Computed {
        id: u64,
        compute_start: u64,
    },
    /// `invalidate_tag` of tag `key % tags`: a write of every key with that tag.
    Invalidate {
        tag: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Event {
    key: u64,
    kind: Kind,
    start: u64,
    end: u64,
}

/// What a write leaves behind.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Effect {
    Value(u64),
    /// A computed value: stored, or nothing (an invalidation came in while it was computed).
    MaybeValue(u64),
    Absent,
}

#[derive(Clone, Copy, Debug)]
struct Write {
    start: u64,
    end: u64,
    effect: Effect,
    /// Which thread and which of its events, for messages.
    who: (usize, usize),
}

fn open(dir: &Path, cfg: &Config) -> Cache {
    let mut builder = Cache::builder()
        .path(dir)
        .memory_capacity(cfg.memory_capacity)
        .durability(cfg.durability);
    if let Some(budget) = cfg.warm_restart {
        builder = builder.warm_restart(budget);
    }
    builder.open().expect("open cache")
}

/// Writes every key, then `cfg.prefill_fillers` other keys, in a cache that is then closed;
/// returns the log of the keys' writes (they happen before anything else).
fn prefill(dir: &Path, cfg: &Config, clock: &AtomicU64, next_id: &AtomicU64) -> Vec<Event> {
    let cache = Cache::builder()
        .path(dir)
        .durability(Durability::Batched(Duration::from_secs(5)))
        .warm_restart(0)
        .open()
        .expect("open cache");
    let tick = || clock.fetch_add(1, Ordering::SeqCst);
    for i in 0..cfg.prefill_fillers {
        cache.insert(&("filler", i), Val::new(0)).expect("prefill");
    }
    let mut log = Vec::new();
    for key in 0..cfg.keys {
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let opts = Options::new().tags([tag_of(key, cfg.tags)]);
        let start = tick();
        cache
            .insert_with(&key, Val::new(id), &opts)
            .expect("prefill");
        log.push(Event {
            key,
            kind: Kind::Insert { id },
            start,
            end: tick(),
        });
    }
    cache.flush().expect("prefill");
    log
}

/// Runs the workload in `dir` and checks the invariant; `Err` lists the violations found.
pub fn run(dir: &Path, cfg: &Config) -> Result<Summary, String> {
    let began = Instant::now();
    let clock = Arc::new(AtomicU64::new(1));
    let next_id = Arc::new(AtomicU64::new(1));
    let mut logs = Vec::new();
    if cfg.prefill_fillers > 0 {
        logs.push(prefill(dir, cfg, &clock, &next_id));
    }
    let cache = open(dir, cfg);
    let before_workers = clock.load(Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(cfg.threads));
    let handles: Vec<_> = (0..cfg.threads)
        .map(|t| {
            let (cache, clock, next_id, stop, barrier, cfg) = (
                cache.clone(),
                clock.clone(),
                next_id.clone(),
                stop.clone(),
                barrier.clone(),
                cfg.clone(),
            );
            std::thread::spawn(move || worker(t, &cache, &cfg, &clock, &next_id, &stop, &barrier))
        })
        .collect();
    // The workers are past their barrier once one of them has logged an operation; the
    // main thread only looks at the loader meanwhile.
    let warming_while_running = {
        while clock.load(Ordering::SeqCst) <= before_workers {
            std::thread::yield_now();
        }
        cache.stats().warming
    };
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok((log, errs)) => {
                logs.push(log);
                errors.extend(errs);
            }
            Err(_) => errors.push("a worker thread panicked".to_string()),
        }
    }
    if let Err(e) = cache.flush() {
        errors.push(format!("flush failed: {e}"));
    }
    let warm_loaded = cache.stats().warm_loaded;
    let open_values = read_all(&cache, cfg, &mut errors);
    // Once more: the first pass promoted what it read from disk; the answers must not move.
    let again = read_all(&cache, cfg, &mut errors);
    for k in 0..cfg.keys {
        if open_values[k as usize] != again[k as usize] {
            errors.push(format!(
                "key {k}: read {:?} then {:?} from the open cache",
                open_values[k as usize], again[k as usize]
            ));
        }
    }
    drop(cache);
    let reopened = open(dir, cfg);
    let disk_values = read_all(&reopened, cfg, &mut errors);
    drop(reopened);

    let mut summary = Summary {
        ops: logs.iter().map(|l| l.len() as u64).sum(),
        warm_loaded,
        warming_while_running,
        ..Summary::default()
    };
    check(
        cfg,
        &logs,
        &open_values,
        &disk_values,
        &mut summary,
        &mut errors,
    );
    summary.keys_present = open_values.iter().filter(|v| v.is_some()).count() as u64;
    summary.elapsed = began.elapsed();
    if errors.is_empty() {
        Ok(summary)
    } else {
        let n = errors.len();
        errors.truncate(40);
        Err(format!(
            "{n} violation(s) in {} operations ({summary:?}); the first ones:\n{}",
            summary.ops,
            errors.join("\n")
        ))
    }
}

fn read_all(cache: &Cache, cfg: &Config, errors: &mut Vec<String>) -> Vec<Option<u64>> {
    (0..cfg.keys)
        .map(|k| match cache.get::<_, Val>(&k) {
            Ok(v) => v.map(|v| {
                if v.pad != pad_of(v.id) {
                    errors.push(format!("key {k}: torn value {v:?}"));
                }
                v.id
            }),
            Err(e) => {
                errors.push(format!("key {k}: get failed after the run: {e}"));
                None
            }
        })
        .collect()
}

fn worker(
    t: usize,
    cache: &Cache,
    cfg: &Config,
    clock: &AtomicU64,
    next_id: &AtomicU64,
    stop: &AtomicBool,
    barrier: &Barrier,
) -> (Vec<Event>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut log = Vec::new();
    let mut errors = Vec::new();
    let tick = || clock.fetch_add(1, Ordering::SeqCst);
    barrier.wait();
    let began = Instant::now();
    let mut n = 0u64;
    while n < cfg.max_ops_per_thread && !stop.load(Ordering::Relaxed) {
        if n.is_multiple_of(64) && began.elapsed() >= cfg.duration {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        n += 1;
        let key = rng.random_range(0..cfg.keys);
        let opts = Options::new().tags([tag_of(key, cfg.tags)]);
        let roll = rng.random_range(0..1000u32);
        let start;
        let kind = if roll < 350 {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            start = tick();
            if let Err(e) = cache.insert_with(&key, Val::new(id), &opts) {
                errors.push(format!("thread {t}: insert of key {key} failed: {e}"));
            }
            Kind::Insert { id }
        } else if roll < 500 {
            start = tick();
            if let Err(e) = cache.remove(&key) {
                errors.push(format!("thread {t}: remove of key {key} failed: {e}"));
            }
            Kind::Remove
        } else if roll < 800 {
            start = tick();
            match cache.get::<_, Val>(&key) {
                Ok(v) => {
                    if let Some(v) = &v {
                        if v.pad != pad_of(v.id) {
                            errors.push(format!("thread {t}: key {key}: torn value {v:?}"));
                        }
                    }
                    Kind::Read {
                        got: v.map(|v| v.id),
                    }
                }
                Err(e) => {
                    errors.push(format!("thread {t}: get of key {key} failed: {e}"));
                    Kind::Read { got: None }
                }
            }
        } else if roll < 995 {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let mut compute_start = None;
            start = tick();
            let r = cache.get_or_insert_with(&key, &opts, || {
                compute_start = Some(tick());
                Val::new(id)
            });
            match (r, compute_start) {
                (Ok(v), Some(compute_start)) => {
                    if v.id != id {
                        errors.push(format!(
                            "thread {t}: key {key}: ran its computation ({id}) but got {}",
                            v.id
                        ));
                    }
                    Kind::Computed { id, compute_start }
                }
                (Ok(v), None) => {
                    if v.pad != pad_of(v.id) {
                        errors.push(format!("thread {t}: key {key}: torn value {v:?}"));
                    }
                    Kind::Read { got: Some(v.id) }
                }
                (Err(e), c) => {
                    errors.push(format!(
                        "thread {t}: get_or_insert_with of key {key} failed: {e}"
                    ));
                    match c {
                        Some(compute_start) => Kind::Computed { id, compute_start },
                        None => Kind::Read { got: None },
                    }
                }
            }
        } else {
            let tag = rng.random_range(0..cfg.tags);
            start = tick();
            if let Err(e) = cache.invalidate_tag(&format!("t{tag}")) {
                errors.push(format!("thread {t}: invalidate_tag t{tag} failed: {e}"));
            }
            Kind::Invalidate { tag }
        };
        let end = tick();
        log.push(Event {
            key,
            kind,
            start,
            end,
        });
    }
    (log, errors)
}

/// Writes of one key sorted by start, with the prefix maximum and suffix minimum of their ends,
/// for interval questions in O(log n).
struct Writes {
    w: Vec<Write>,
    prefix_max_end: Vec<u64>,
    suffix_min_end: Vec<u64>,
}

impl Writes {
    fn new(mut w: Vec<Write>) -> Self {
        w.sort_by_key(|w| w.start);
        let mut prefix_max_end = Vec::with_capacity(w.len());
        let mut m = 0;
        for x in &w {
            m = m.max(x.end);
            prefix_max_end.push(m);
        }
        let mut suffix_min_end = vec![u64::MAX; w.len() + 1];
        for i in (0..w.len()).rev() {
            suffix_min_end[i] = suffix_min_end[i + 1].min(w[i].end);
        }
        Writes {
            w,
            prefix_max_end,
            suffix_min_end,
        }
    }

    /// Some write began after `after` and ended before `before`.
    fn any_within(&self, after: u64, before: u64) -> Option<&Write> {
        let i = self.w.partition_point(|w| w.start <= after);
        if self.suffix_min_end[i] < before {
            self.w[i..]
                .iter()
                .find(|w| w.start > after && w.end < before)
        } else {
            None
        }
    }
}

fn check(
    cfg: &Config,
    logs: &[Vec<Event>],
    open_values: &[Option<u64>],
    disk_values: &[Option<u64>],
    summary: &mut Summary,
    errors: &mut Vec<String>,
) {
    // Every write of every key (an invalidation is a write of each key with its tag).
    let mut writes: Vec<Vec<Write>> = vec![Vec::new(); cfg.keys as usize];
    let mut invalidations: Vec<Vec<Write>> = vec![Vec::new(); cfg.tags as usize];
    // Value id -> (key, its write, the start of its computation if computed).
    let mut origin: HashMap<u64, (u64, Write, Option<u64>)> = HashMap::new();
    for (t, log) in logs.iter().enumerate() {
        for (i, e) in log.iter().enumerate() {
            let mut w = Write {
                start: e.start,
                end: e.end,
                effect: Effect::Absent,
                who: (t, i),
            };
            match e.kind {
                Kind::Insert { id } => {
                    w.effect = Effect::Value(id);
                    origin.insert(id, (e.key, w, None));
                }
                Kind::Computed { id, compute_start } => {
                    summary.computed += 1;
                    w.effect = Effect::MaybeValue(id);
                    origin.insert(id, (e.key, w, Some(compute_start)));
                }
                Kind::Remove => {}
                Kind::Invalidate { tag } => {
                    summary.invalidations += 1;
                    invalidations[tag as usize].push(w);
                    continue;
                }
                Kind::Read { .. } => continue,
            }
            writes[e.key as usize].push(w);
        }
    }
    for k in 0..cfg.keys {
        let tag = (k % cfg.tags) as usize;
        writes[k as usize].extend(invalidations[tag].iter().copied());
    }
    let writes: Vec<Writes> = writes.into_iter().map(Writes::new).collect();
    let invalidations: Vec<Writes> = invalidations.into_iter().map(Writes::new).collect();

    // The final value of each key.
    for k in 0..cfg.keys as usize {
        let (open, disk) = (open_values[k], disk_values[k]);
        if open != disk {
            errors.push(format!(
                "key {k}: the open cache read {open:?}, the reopened one {disk:?} (tiers disagree)"
            ));
        }
        let w = &writes[k].w;
        let Some(max_start) = w.iter().map(|w| w.start).max() else {
            if open.is_some() {
                errors.push(format!("key {k}: never written, reads {open:?}"));
            }
            continue;
        };
        // The last writes: those no other write of the key started after.
        let last: Vec<&Write> = w.iter().filter(|w| w.end > max_start).collect();
        let explained = last.iter().any(|w| match (w.effect, open) {
            (Effect::Value(id) | Effect::MaybeValue(id), Some(v)) => id == v,
            (Effect::Absent, None) => true,
            _ => false,
        });
        if !explained {
            errors.push(format!(
                "key {k}: ends as {open:?} but its last writes were {:?}{}",
                last.iter()
                    .map(|w| (w.effect, w.start, w.end))
                    .collect::<Vec<_>>(),
                match open.and_then(|v| origin.get(&v)) {
                    Some((_, o, _)) =>
                        format!(" (that value: {:?} {}..{})", o.effect, o.start, o.end),
                    None => String::new(),
                }
            ));
        }
    }

    // Every read.
    for (t, log) in logs.iter().enumerate() {
        for e in log {
            let Kind::Read { got } = e.kind else { continue };
            summary.reads_checked += 1;
            let k = e.key as usize;
            let ws = &writes[k];
            match got {
                Some(v) => {
                    let Some((vk, o, compute_start)) = origin.get(&v) else {
                        errors.push(format!("thread {t}: key {k} read {v}, never written"));
                        continue;
                    };
                    if *vk as usize != k {
                        errors.push(format!("thread {t}: key {k} read {v}, a value of key {vk}"));
                        continue;
                    }
                    if o.start > e.end {
                        errors.push(format!(
                            "thread {t}: key {k} read {v} in {}..{}, written later ({}..{})",
                            e.start, e.end, o.start, o.end
                        ));
                    }
                    if let Some(w) = ws.any_within(o.end, e.start) {
                        errors.push(format!(
                            "thread {t}: key {k} read {v} ({:?} {}..{}) in {}..{}, but {:?} \
                             in {}..{} came after it and before the read",
                            o.effect, o.start, o.end, e.start, e.end, w.effect, w.start, w.end
                        ));
                    }
                    if let Some(cs) = compute_start {
                        if let Some(i) =
                            invalidations[k % cfg.tags as usize].any_within(*cs, e.start)
                        {
                            errors.push(format!(
                                "thread {t}: key {k} read {v}, computed from {cs}, in {}..{}, \
                                 after an invalidation of its tag in {}..{} returned",
                                e.start, e.end, i.start, i.end
                            ));
                        }
                    }
                }
                None => {
                    // Only a lone insert that ended before the read, with no other write that
                    // could have come after it, forbids `None`.
                    let n = ws.w.partition_point(|w| w.start < e.end);
                    if n == 0 {
                        continue;
                    }
                    let o = &ws.w[n - 1];
                    let alone = n == 1 || ws.prefix_max_end[n - 2] < o.start;
                    if let (Effect::Value(id), true, true) = (o.effect, o.end < e.start, alone) {
                        errors.push(format!(
                            "thread {t}: key {k} read None in {}..{}, but the insert of {id} \
                             in {}..{} (thread {}) was its only write that could be in effect",
                            e.start, e.end, o.start, o.end, o.who.0
                        ));
                    }
                }
            }
        }
    }
}
