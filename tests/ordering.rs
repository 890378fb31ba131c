//! The per-key ordering rule (`src/ordering.rs`) under attack, through the public API only:
//!
//! 1. a disk hit whose decoding is slow never promotes its old value over a newer write;
//! 2. dropping a dead entry (undecodable, expired, damaged, another type) never deletes a newer
//!    write;
//! 3. two writers of one key leave both tiers holding the same value;
//! 4. a read-through that starts after `invalidate_tag` returned never gets the value of a
//!    computation that began before it;
//! 5. nested read-throughs that wait for each other get `Error::Deadlock` instead of hanging;
//!
//! and a randomised invariant over all of them (`common/invariant.rs`).
//!
//! The races are made deterministic with a gate (`common::gate`): the reader pauses inside
//! user code the cache calls (a `Deserialize`, a `Clock`), the other thread writes, then the
//! reader goes on.

mod common;
#[path = "common/invariant.rs"]
mod invariant;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use tiered::{Cache, Durability, Error, Options};

use common::{gate, race, GatedClock, Slow};

/// A port number. Once `PORTS_VALIDATED` is set (a newer build that added validation),
/// `Deserialize` rejects 0 (after passing the gate), so a `Port(0)` stored before is a dead,
/// undecodable record. (Before that, `Port(0)` round-trips, so `insert` accepts it.)
#[derive(Debug, PartialEq, Serialize)]
struct Port(u16);

static PORTS_VALIDATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = u16::deserialize(d)?;
        gate::pass();
        if p == 0 && PORTS_VALIDATED.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(D::Error::custom("port 0 is not a port"));
        }
        Ok(Port(p))
    }
}

/// Without the warm restart, so that a reopened key is on disk only and its first read
/// promotes it (`tests/warm.rs` races the warm restart's loaded entries the same way).
fn open(dir: &Path) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .warm_restart(0)
        .open()
        .expect("open cache")
}

/// `newer` is what `key` holds, in the open `cache` and again after a restart (`reopen`).
fn assert_kept<V>(cache: Cache, reopen: impl FnOnce() -> Cache, key: &str, newer: &V, what: &str)
where
    V: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    assert_eq!(
        cache.get::<_, V>(key).unwrap().as_deref(),
        Some(newer),
        "{what}"
    );
    drop(cache);
    assert_eq!(
        reopen().get::<_, V>(key).unwrap().as_deref(),
        Some(newer),
        "after a restart: {what}"
    );
}

// ---- 1. promotion ----

#[test]
fn slow_promotion_never_replaces_a_newer_insert() {
    let dir = common::tempdir();
    open(dir.path()).insert("k", Slow(1)).unwrap();
    let cache = open(dir.path()); // the key is on disk only
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, Slow>("k").unwrap(),
        || cache.insert("k", Slow(2)).unwrap(),
    );
    assert_eq!(
        seen.as_deref(),
        Some(&Slow(1)),
        "the reader decoded the record it read before the insert"
    );
    assert_kept(
        cache,
        || open(dir.path()),
        "k",
        &Slow(2),
        "the slow reader promoted its old value over the newer insert",
    );
}

#[test]
fn slow_promotion_never_brings_back_a_removed_value() {
    let dir = common::tempdir();
    open(dir.path()).insert("k", Slow(1)).unwrap();
    let cache = open(dir.path());
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, Slow>("k").unwrap(),
        || assert!(cache.remove("k").unwrap(), "the value was there to remove"),
    );
    assert_eq!(seen.as_deref(), Some(&Slow(1)));
    assert_eq!(
        cache.get::<_, Slow>("k").unwrap(),
        None,
        "the removed value came back through the slow reader's promotion"
    );
    assert!(!cache.contains_key("k").unwrap());
    drop(cache);
    assert_eq!(open(dir.path()).get::<_, Slow>("k").unwrap(), None);
}

#[test]
fn slow_disk_hit_in_read_through_never_replaces_a_newer_insert() {
    let dir = common::tempdir();
    open(dir.path()).insert("k", Slow(1)).unwrap();
    let cache = open(dir.path());
    let c = cache.clone();
    let seen = race(
        move || {
            c.get_or_insert_with("k", &Options::new(), || Slow(99))
                .unwrap()
        },
        || cache.insert("k", Slow(2)).unwrap(),
    );
    assert_eq!(*seen, Slow(1), "the read-through found the old record");
    assert_eq!(
        cache.get::<_, Slow>("k").unwrap().as_deref(),
        Some(&Slow(2))
    );
    drop(cache);
    assert_eq!(
        open(dir.path()).get::<_, Slow>("k").unwrap().as_deref(),
        Some(&Slow(2))
    );
}

// ---- 2. dropping dead entries ----

#[test]
fn dropping_an_undecodable_record_never_deletes_a_newer_insert() {
    let dir = common::tempdir();
    open(dir.path()).insert("port", Port(0)).unwrap();
    PORTS_VALIDATED.store(true, std::sync::atomic::Ordering::SeqCst);
    let cache = open(dir.path());
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, Port>("port").unwrap(),
        || cache.insert("port", Port(8080)).unwrap(),
    );
    assert_eq!(seen, None, "Port(0) does not decode");
    assert_kept(
        cache,
        || open(dir.path()),
        "port",
        &Port(8080),
        "dropping the undecodable Port(0) deleted the newer insert",
    );
}

/// The reader pauses where it first reads the clock: after it read the record from disk (and
/// noted the key's version), before it judges it expired.
#[test]
fn dropping_an_expired_record_never_deletes_a_newer_insert() {
    let dir = common::tempdir();
    let clock = GatedClock::new();
    common::open(dir.path(), &clock)
        .insert_with("k", 1u64, &Options::new().ttl(Duration::from_secs(60)))
        .unwrap();
    let cache = common::open_cold(dir.path(), &clock); // on disk only
                                                       // The sweep that runs at open must find the record still live, or it deletes it before
                                                       // the reader gets there (and the reader never reaches its gate): let that one-record
                                                       // pass end before the record expires. Not a timing assertion: a longer pause is fine.
    std::thread::sleep(Duration::from_millis(300));
    clock.0.advance(Duration::from_secs(120)); // now expired
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, u64>("k").unwrap(),
        || cache.insert("k", 2u64).unwrap(),
    );
    assert_eq!(seen, None, "the reader judged the old record expired");
    assert_kept(
        cache,
        || common::open(dir.path(), &clock),
        "k",
        &2u64,
        "dropping the expired record deleted the newer insert",
    );
}

/// The same in the memory tier: the reader pauses after it took the expired entry from memory.
#[test]
fn dropping_an_expired_memory_entry_never_deletes_a_newer_insert() {
    let dir = common::tempdir();
    let clock = GatedClock::new();
    let cache = common::open(dir.path(), &clock);
    cache
        .insert_with("k", 1u64, &Options::new().ttl(Duration::from_secs(60)))
        .unwrap();
    clock.0.advance(Duration::from_secs(120));
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, u64>("k").unwrap(),
        || cache.insert("k", 2u64).unwrap(),
    );
    assert_eq!(seen, None, "the reader judged the old entry expired");
    assert_kept(
        cache,
        || common::open(dir.path(), &clock),
        "k",
        &2u64,
        "dropping the expired memory entry deleted the newer insert",
    );
}

#[test]
fn dropping_a_record_of_another_type_never_deletes_a_newer_insert() {
    let dir = common::tempdir();
    let clock = GatedClock::new();
    common::open(dir.path(), &clock).insert("k", 1u64).unwrap();
    let cache = common::open_cold(dir.path(), &clock);
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, String>("k").unwrap(),
        || cache.insert("k", 2u64).unwrap(),
    );
    assert_eq!(seen, None, "a u64 read as a String is a miss");
    assert_eq!(
        cache.get::<_, u64>("k").unwrap().as_deref(),
        Some(&2),
        "dropping the record of another type deleted the newer insert"
    );
    drop(cache);
    assert_eq!(
        common::open(dir.path(), &clock)
            .get::<_, u64>("k")
            .unwrap()
            .as_deref(),
        Some(&2)
    );
}

#[test]
fn dropping_a_damaged_record_never_deletes_a_newer_insert() {
    let dir = common::tempdir();
    let clock = GatedClock::new();
    let marker = "DAMAGE-ME-PLEASE";
    common::open(dir.path(), &clock)
        .insert("k", format!("{marker}{}", "x".repeat(40)))
        .unwrap();
    // Flip one byte of the value wherever the file holds it: the record's checksum fails.
    let db = dir.path().join("tiered.redb");
    let mut file = std::fs::read(&db).unwrap();
    let mut hits = 0;
    for i in 0..file.len() - marker.len() {
        if &file[i..i + marker.len()] == marker.as_bytes() {
            file[i] ^= 0x01;
            hits += 1;
        }
    }
    assert!(hits > 0, "the value was not found in the file");
    std::fs::write(&db, file).unwrap();

    let cache = common::open_cold(dir.path(), &clock);
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, String>("k").unwrap(),
        || cache.insert("k", "fresh".to_string()).unwrap(),
    );
    assert_eq!(seen, None, "the damaged record is a miss");
    assert_eq!(
        cache.get::<_, String>("k").unwrap().as_deref(),
        Some(&"fresh".to_string()),
        "dropping the damaged record deleted the newer insert"
    );
    drop(cache);
    assert_eq!(
        common::open(dir.path(), &clock)
            .get::<_, String>("k")
            .unwrap()
            .as_deref(),
        Some(&"fresh".to_string())
    );
}

/// An insert stamped with the generations before an invalidation, but stored after it (its
/// writer paused between the two: here in the clock, in real life in back-pressure or a slow
/// `Serialize`), must not replace a newer insert that began after the invalidation returned.
#[test]
fn an_insert_overtaken_by_an_invalidation_never_erases_a_newer_insert() {
    let dir = common::tempdir();
    let clock = GatedClock::new();
    let cache = common::open(dir.path(), &clock);
    let tagged = Options::new().tags(["prices"]);
    let c = cache.clone();
    let t = tagged.clone();
    race(
        move || c.insert_with("k", 1u64, &t).unwrap(),
        || {
            cache.invalidate_tag("prices").unwrap();
            cache.insert_with("k", 2u64, &tagged).unwrap();
        },
    );
    // Linearisable outcomes: 2 (the slow insert took effect before the invalidation, or
    // before the newer insert) or 1 (it took effect last, after the invalidation).
    let now = cache.get::<_, u64>("k").unwrap();
    assert!(
        matches!(now.as_deref(), Some(1 | 2)),
        "both acknowledged inserts are lost: the key reads {now:?}"
    );
    drop(cache);
    let again = common::open(dir.path(), &clock).get::<_, u64>("k").unwrap();
    assert_eq!(again, now, "after a restart");
}

/// No gate: many threads read expired entries (from memory and from disk: the memory tier is
/// small) while others re-insert them; every acknowledged insert must stay. The readers follow
/// the writers' cursors, so that the reads of a dead entry and its re-insert meet.
#[test]
fn expired_entries_read_while_reinserted_lose_no_acknowledged_insert() {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    const KEYS: u64 = 400;
    const ROUNDS: u64 = 12;
    const READERS: usize = 4;
    const WRITERS: u64 = 2;
    const DONE: u64 = u64::MAX;
    let dir = common::tempdir();
    let clock = common::clock();
    let open = || {
        Cache::builder()
            .path(dir.path())
            .clock(clock.clone())
            .memory_capacity(8 << 10)
            .durability(Durability::Batched(Duration::from_millis(2)))
            .open()
            .unwrap()
    };
    let cache = open();
    let ttl = Options::new().ttl(Duration::from_secs(60));
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            cache.insert_with(&k, (round, k, 0u8), &ttl).unwrap();
        }
        clock.advance(Duration::from_secs(120)); // every one of them is dead now
                                                 // Where each writer is: the key it writes next.
        let cursors: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(AtomicU64::new).collect());
        let barrier = Arc::new(Barrier::new(READERS + WRITERS as usize));
        let mut handles = Vec::new();
        for r in 0..READERS {
            let (cache, barrier, cursors) = (cache.clone(), barrier.clone(), cursors.clone());
            handles.push(thread::spawn(move || {
                barrier.wait();
                let mut i = r as u64;
                loop {
                    let w = (i % WRITERS) as usize;
                    let at = cursors[w].load(SeqCst);
                    if cursors.iter().all(|c| c.load(SeqCst) == DONE) {
                        break;
                    }
                    i += 1;
                    if at == DONE {
                        continue;
                    }
                    // The key being written, or the writer's next one.
                    let k = (at + (i / WRITERS % 2) * WRITERS) % KEYS;
                    if let Some(v) = cache.get::<_, (u64, u64, u8)>(&k).unwrap() {
                        assert_eq!(*v, (round, k, 1), "read a dead or foreign value");
                    }
                }
            }));
        }
        for w in 0..WRITERS {
            let (cache, barrier, cursors) = (cache.clone(), barrier.clone(), cursors.clone());
            handles.push(thread::spawn(move || {
                barrier.wait();
                for k in (w..KEYS).step_by(WRITERS as usize) {
                    cursors[w as usize].store(k, SeqCst);
                    thread::yield_now(); // let a reader find the dead entry first
                    cache.insert(&k, (round, k, 1u8)).unwrap();
                }
                cursors[w as usize].store(DONE, SeqCst);
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        let lost: Vec<u64> = (0..KEYS)
            .filter(|k| {
                cache.get::<_, (u64, u64, u8)>(k).unwrap().as_deref() != Some(&(round, *k, 1))
            })
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged inserts lost to the drop of expired entries: {lost:?}"
        );
    }
    cache.flush().unwrap();
    drop(cache);
    let cache = open();
    for k in 0..KEYS {
        assert_eq!(
            cache.get::<_, (u64, u64, u8)>(&k).unwrap().as_deref(),
            Some(&(ROUNDS - 1, k, 1)),
            "key {k} after a restart"
        );
    }
}

// ---- 3. two writers of one key ----

/// Two threads write each key at the same moment (`both` per key); afterwards returns what
/// the open cache reads for each key.
fn lockstep(
    cache: &Cache,
    keys: u64,
    a: fn(&Cache, u64),
    b: fn(&Cache, u64),
) -> Vec<Option<String>> {
    let barrier = Arc::new(Barrier::new(2));
    let spawn = |write: fn(&Cache, u64)| {
        let (cache, barrier) = (cache.clone(), barrier.clone());
        thread::spawn(move || {
            for k in 0..keys {
                barrier.wait();
                write(&cache, k);
            }
        })
    };
    let (ta, tb) = (spawn(a), spawn(b));
    ta.join().unwrap();
    tb.join().unwrap();
    (0..keys)
        .map(|k| cache.get::<_, String>(&k).unwrap().map(|v| (*v).clone()))
        .collect()
}

fn assert_same_after_restart(dir: &Path, before: &[Option<String>], open: impl Fn() -> Cache) {
    let cache = open();
    let mut differ = Vec::new();
    for (k, was) in before.iter().enumerate() {
        let now = cache.get::<_, String>(&(k as u64)).unwrap();
        if now.as_deref() != was.as_ref() {
            differ.push((k, was.clone(), now.map(|v| (*v).clone())));
        }
    }
    assert!(
        differ.is_empty(),
        "{} key(s) in {} hold another value on disk than in memory (key, memory, disk): {:?}",
        differ.len(),
        dir.display(),
        &differ[..differ.len().min(10)]
    );
}

fn batched(dir: &Path) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(Durability::Batched(Duration::from_millis(5)))
        .open()
        .unwrap()
}

#[test]
fn lockstep_inserts_leave_both_tiers_with_one_value() {
    const KEYS: u64 = 2_000;
    let dir = common::tempdir();
    let cache = batched(dir.path());
    let before = lockstep(
        &cache,
        KEYS,
        |c, k| c.insert(&k, "A".to_string()).unwrap(),
        |c, k| c.insert(&k, "B".to_string()).unwrap(),
    );
    let a = before.iter().filter(|v| v.as_deref() == Some("A")).count();
    assert_eq!(
        before.iter().filter(|v| v.is_none()).count(),
        0,
        "an insert vanished"
    );
    println!("A won {a} keys, B {}", KEYS as usize - a);
    cache.flush().unwrap();
    drop(cache);
    assert_same_after_restart(dir.path(), &before, || batched(dir.path()));
}

#[test]
fn lockstep_insert_and_remove_leave_both_tiers_agreeing() {
    const KEYS: u64 = 2_000;
    let dir = common::tempdir();
    let cache = batched(dir.path());
    // Each key starts present, so that the remove has something to remove.
    for k in 0..KEYS {
        cache.insert(&k, "old".to_string()).unwrap();
    }
    let before = lockstep(
        &cache,
        KEYS,
        |c, k| c.insert(&k, "A".to_string()).unwrap(),
        |c, k| {
            c.remove(&k).unwrap();
        },
    );
    assert!(
        before
            .iter()
            .all(|v| v.is_none() || v.as_deref() == Some("A")),
        "a value other than the insert's survived a remove"
    );
    let a = before.iter().filter(|v| v.is_some()).count();
    println!("the insert won {a} keys, the remove {}", KEYS as usize - a);
    cache.flush().unwrap();
    drop(cache);
    assert_same_after_restart(dir.path(), &before, || batched(dir.path()));
}

/// With a memory tier that holds a handful of entries, evictions expose the disk tier within
/// the process: whatever `get` says right after the two writes, it says after the entry was
/// evicted, and after a restart.
#[test]
fn with_a_tiny_memory_tier_eviction_never_changes_what_get_returns() {
    const KEYS: u64 = 1_500;
    let dir = common::tempdir();
    let open = || {
        Cache::builder()
            .path(dir.path())
            .memory_capacity(2 << 10) // about ten entries
            .durability(Durability::Batched(Duration::from_millis(5)))
            .open()
            .unwrap()
    };
    let cache = open();
    for k in 0..KEYS {
        cache.insert(&k, "old".to_string()).unwrap();
    }
    let barrier = Arc::new(Barrier::new(2));
    let spawn = |a: bool| {
        let (cache, barrier) = (cache.clone(), barrier.clone());
        thread::spawn(move || {
            let mut seen = Vec::new();
            for k in 0..KEYS {
                barrier.wait();
                match (a, k % 3) {
                    (true, _) => cache.insert(&k, format!("A{k}")).unwrap(),
                    (false, 0) => {
                        cache.remove(&k).unwrap();
                    }
                    (false, _) => cache.insert(&k, format!("B{k}")).unwrap(),
                }
                barrier.wait();
                if a {
                    // Right after both writes: most likely a memory hit.
                    seen.push(cache.get::<_, String>(&k).unwrap().map(|v| (*v).clone()));
                }
            }
            seen
        })
    };
    let (ta, tb) = (spawn(true), spawn(false));
    let right_after = ta.join().unwrap();
    tb.join().unwrap();
    let stats = cache.stats();
    assert!(stats.evictions > 0, "nothing was evicted: {stats:?}");
    let mut differ = Vec::new();
    for (k, was) in right_after.iter().enumerate() {
        let now = cache.get::<_, String>(&(k as u64)).unwrap();
        if now.as_deref() != was.as_ref() {
            differ.push((k, was.clone(), now.map(|v| (*v).clone())));
        }
    }
    assert!(
        differ.is_empty(),
        "{} key(s) read otherwise once evicted (key, right after the writes, later): {:?}",
        differ.len(),
        &differ[..differ.len().min(10)]
    );
    cache.flush().unwrap();
    drop(cache);
    assert_same_after_restart(dir.path(), &right_after, open);
}

// ---- 4. read-through after an invalidation ----

/// Leader L computes key "k" (tagged "prices") and blocks; `invalidate` returns; then caller C
/// asks for "k": it must run its own computation, L's caller still gets L's value, and later
/// reads never see L's value.
fn read_through_after(
    make: impl Fn(&Path) -> Cache,
    scope: fn(&Cache) -> Either,
    invalidate: fn(&Cache),
) {
    let _watchdog = common::watchdog("read-through after an invalidation", 60);
    let dir = common::tempdir();
    let cache = make(dir.path());
    let opts = Options::new().tags(["prices"]);
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let leader = {
        let (cache, opts) = (cache.clone(), opts.clone());
        thread::spawn(move || {
            scope(&cache)
                .get_or_insert_with("k", &opts, move || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    "L".to_string()
                })
                .unwrap()
        })
    };
    started_rx.recv().unwrap();
    invalidate(&cache);
    let (c_tx, c_rx) = mpsc::channel();
    let late = {
        let (cache, opts) = (cache.clone(), opts.clone());
        thread::spawn(move || {
            let mut ran = false;
            let v = scope(&cache)
                .get_or_insert_with("k", &opts, || {
                    ran = true;
                    "C".to_string()
                })
                .unwrap();
            c_tx.send(((*v).clone(), ran)).unwrap();
        })
    };
    let late_got = c_rx.recv_timeout(Duration::from_secs(10));
    release_tx.send(()).unwrap();
    let late_got = late_got.unwrap_or_else(|_| {
        // It was waiting for L: see what it gets once L is done.
        let got = c_rx.recv().unwrap();
        panic!("the caller after the invalidation waited for the older computation and got {got:?}")
    });
    late.join().unwrap();
    assert_eq!(
        late_got,
        ("C".to_string(), true),
        "the caller after the invalidation must run its own computation"
    );
    assert_eq!(*leader.join().unwrap(), "L", "L's caller gets L's value");
    assert_eq!(
        scope(&cache).get::<String>("k").unwrap().as_deref(),
        Some(&"C".to_string()),
        "a read after both finished must not see L's stale value"
    );
    drop(cache);
    assert_eq!(
        scope(&make(dir.path()))
            .get::<String>("k")
            .unwrap()
            .as_deref(),
        Some(&"C".to_string()),
        "after a restart"
    );
}

/// The root or a namespace, through one interface.
enum Either {
    Root(Cache),
    Ns(tiered::Namespace),
}

impl Either {
    fn get_or_insert_with<V, F>(&self, key: &str, opts: &Options, f: F) -> tiered::Result<Arc<V>>
    where
        V: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> V,
    {
        match self {
            Either::Root(c) => c.get_or_insert_with(key, opts, f),
            Either::Ns(n) => n.get_or_insert_with(key, opts, f),
        }
    }

    fn get<V>(&self, key: &str) -> tiered::Result<Option<Arc<V>>>
    where
        V: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        match self {
            Either::Root(c) => c.get(key),
            Either::Ns(n) => n.get(key),
        }
    }
}

#[test]
fn read_through_after_invalidate_tag_never_gets_the_older_computation() {
    read_through_after(
        open,
        |c| Either::Root(c.clone()),
        |c| c.invalidate_tag("prices").unwrap(),
    );
}

#[test]
fn read_through_after_invalidate_tag_never_gets_the_older_computation_in_memory() {
    // A memory-only cache: `make` returns the same cache, so the "restart" reads it again.
    let mem = Cache::in_memory();
    read_through_after(
        move |_| mem.clone(),
        |c| Either::Root(c.clone()),
        |c| c.invalidate_tag("prices").unwrap(),
    );
}

#[test]
fn read_through_after_namespace_clear_never_gets_the_older_computation() {
    read_through_after(
        open,
        |c| Either::Ns(c.namespace("reports")),
        |c| c.namespace("reports").clear().unwrap(),
    );
}

#[test]
fn read_through_after_cache_clear_never_gets_the_older_computation() {
    read_through_after(open, |c| Either::Root(c.clone()), |c| c.clear().unwrap());
}

// ---- 5. nested read-throughs ----

#[derive(Debug)]
enum AppError {
    Cache(Error),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Cache(e)
    }
}

/// Each thread `i` leads `keys[i]` and, once every thread leads its key, asks (nested) for
/// `keys[(i + 1) % n]`: a cycle of waits. Returns each thread's nested outcome.
fn cycle(caches: &[Cache], keys: &[&'static str]) -> Vec<Result<u32, String>> {
    let n = keys.len();
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let outer_cache = caches[i % caches.len()].clone();
            let inner_cache = caches[(i + 1) % caches.len()].clone();
            let (outer, inner) = (keys[i], keys[(i + 1) % n]);
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut nested = None;
                let v = outer_cache
                    .try_get_or_insert_with(outer, &Options::new(), || {
                        barrier.wait();
                        let r = inner_cache.try_get_or_insert_with(inner, &Options::new(), || {
                            Ok::<u32, AppError>(100)
                        });
                        nested = Some(r.map(|v| *v));
                        Ok::<u32, AppError>(i as u32)
                    })
                    .unwrap();
                assert_eq!(*v, i as u32, "each thread computed its own outer key");
                match nested.expect("the outer computation ran") {
                    Ok(v) => Ok(v),
                    Err(AppError::Cache(Error::Deadlock)) => Err("Deadlock".to_string()),
                    Err(AppError::Cache(e)) => Err(format!("{e:?}")),
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn assert_one_deadlock(outcomes: &[Result<u32, String>]) {
    let deadlocks = outcomes.iter().filter(|o| o.is_err()).count();
    assert_eq!(
        deadlocks, 1,
        "exactly one nested call must get Error::Deadlock, the others its value: {outcomes:?}"
    );
    assert!(outcomes
        .iter()
        .all(|o| o.is_ok() || o.as_ref().is_err_and(|e| e == "Deadlock")));
}

#[test]
fn nested_read_through_in_opposite_orders_returns_deadlock_to_one_thread() {
    let _watchdog = common::watchdog("two nested read-throughs in opposite orders", 60);
    for _ in 0..20 {
        assert_one_deadlock(&cycle(&[Cache::in_memory()], &["a", "b"]));
    }
    // A disk-backed cache too.
    let dir = common::tempdir();
    assert_one_deadlock(&cycle(&[open(dir.path())], &["a", "b"]));
}

#[test]
fn nested_read_through_with_get_or_insert_with_returns_deadlock() {
    let _watchdog = common::watchdog("nested get_or_insert_with", 60);
    let cache = Cache::in_memory();
    let barrier = Arc::new(Barrier::new(2));
    let run = |outer: &'static str, inner: &'static str| {
        let (cache, barrier) = (cache.clone(), barrier.clone());
        thread::spawn(move || {
            let mut nested = None;
            let v = cache
                .get_or_insert_with(outer, &Options::new(), || {
                    barrier.wait();
                    nested = Some(
                        cache
                            .get_or_insert_with(inner, &Options::new(), || 7u8)
                            .map(|v| *v),
                    );
                    1u8
                })
                .unwrap();
            assert_eq!(*v, 1);
            nested.unwrap()
        })
    };
    let (a, b) = (run("x", "y"), run("y", "x"));
    let outcomes = [a.join().unwrap(), b.join().unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Err(Error::Deadlock)))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.iter().any(|o| matches!(o, Ok(1))), "{outcomes:?}");
}

#[test]
fn nested_read_through_of_its_own_key_returns_deadlock() {
    let _watchdog = common::watchdog("a read-through nested in itself", 60);
    let cache = Cache::in_memory();
    let mut nested = None;
    let v = cache
        .get_or_insert_with("self", &Options::new(), || {
            nested = Some(cache.get_or_insert_with("self", &Options::new(), || 2u32));
            1u32
        })
        .unwrap();
    assert_eq!(*v, 1);
    assert!(
        matches!(nested, Some(Err(Error::Deadlock))),
        "got {nested:?}"
    );

    // Through try_get_or_insert_with's error conversion.
    let mut nested = None;
    let v = cache
        .try_get_or_insert_with("self-try", &Options::new(), || {
            nested = Some(
                cache
                    .try_get_or_insert_with("self-try", &Options::new(), || Ok::<u32, AppError>(2))
                    .map(|v| *v),
            );
            Ok::<u32, AppError>(1)
        })
        .unwrap();
    assert_eq!(*v, 1);
    assert!(
        matches!(nested, Some(Err(AppError::Cache(Error::Deadlock)))),
        "got {nested:?}"
    );
    // The key was released: a plain read-through works.
    assert_eq!(
        *cache
            .get_or_insert_with("self", &Options::new(), || 3u32)
            .unwrap(),
        1
    );
}

#[test]
fn a_three_thread_cycle_of_read_throughs_returns_deadlock_to_one() {
    let _watchdog = common::watchdog("a three-thread cycle of read-throughs", 60);
    for _ in 0..10 {
        assert_one_deadlock(&cycle(&[Cache::in_memory()], &["p", "q", "r"]));
    }
}

#[test]
fn a_cycle_through_two_caches_returns_deadlock_to_one() {
    let _watchdog = common::watchdog("a cycle of read-throughs through two caches", 60);
    for _ in 0..10 {
        // Thread 0 leads "k" in cache 0 and asks cache 1; thread 1 the other way round.
        assert_one_deadlock(&cycle(
            &[Cache::in_memory(), Cache::in_memory()],
            &["k", "k"],
        ));
    }
}

/// After deadlocks were refused, ordinary waiting still works: no stale wait is left behind
/// that would refuse an innocent follower.
#[test]
fn after_a_refused_deadlock_followers_still_wait_normally() {
    let _watchdog = common::watchdog("followers after a refused deadlock", 60);
    let cache = Cache::in_memory();
    assert_one_deadlock(&cycle(std::slice::from_ref(&cache), &["m", "n"]));
    let (started_tx, started_rx) = mpsc::channel();
    let leader = {
        let cache = cache.clone();
        thread::spawn(move || {
            *cache
                .get_or_insert_with("slow", &Options::new(), || {
                    started_tx.send(()).unwrap();
                    thread::sleep(Duration::from_millis(300));
                    5u32
                })
                .unwrap()
        })
    };
    started_rx.recv().unwrap();
    let followers: Vec<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            thread::spawn(move || {
                cache
                    .try_get_or_insert_with("slow", &Options::new(), || Ok::<u32, AppError>(6))
                    .map(|v| *v)
            })
        })
        .collect();
    assert_eq!(leader.join().unwrap(), 5);
    for f in followers {
        match f.join().unwrap() {
            Ok(v) => assert_eq!(v, 5),
            Err(e) => panic!("an innocent follower was refused: {e:?}"),
        }
    }
}

// ---- the invariant ----

#[test]
fn random_concurrent_operations_leave_every_key_explained_by_its_last_operation() {
    let _watchdog = common::watchdog("the brief invariant run", 120);
    let dir = common::tempdir();
    let began = Instant::now();
    let cfg = invariant::Config::standard(Duration::from_secs(3));
    match invariant::run(dir.path(), &cfg) {
        Ok(summary) => println!(
            "invariant held: {summary:?} in {:.1} s",
            began.elapsed().as_secs_f64()
        ),
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn random_operations_racing_the_warm_restart_leave_every_key_explained() {
    let _watchdog = common::watchdog("the invariant run against a warm restart", 120);
    let dir = common::tempdir();
    let began = Instant::now();
    let cfg = invariant::Config::warm(Duration::from_secs(3));
    match invariant::run(dir.path(), &cfg) {
        Ok(summary) => {
            println!(
                "invariant held: {summary:?} in {:.1} s",
                began.elapsed().as_secs_f64()
            );
            assert!(
                summary.warming_while_running && summary.warm_loaded > 0,
                "the loader never raced the workload: {summary:?}"
            );
        }
        Err(report) => panic!("{report}"),
    }
}
