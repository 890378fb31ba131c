//! The warm restart: at open, the most recently used entries are loaded into the memory tier
//! in the background, so that the first reads after a restart are memory hits; and nothing a
//! caller does meanwhile is ever undone by it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use tiered::{Cache, Durability, Explanation, ManualClock, Options, Stats};

use common::{eventually, race, Slow};

/// Counts its decodes.
#[derive(Debug, PartialEq, Serialize)]
struct Counted(u64);

static DECODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Counted(u64::deserialize(d)?))
    }
}

/// `dir` reopened with the warm restart's `budget` (and the test's clock).
fn reopen(dir: &Path, clock: &Arc<ManualClock>, budget: u64) -> Cache {
    Cache::builder()
        .path(dir)
        .clock(clock.clone())
        .durability(Durability::Immediate)
        .warm_restart(budget)
        .open()
        .expect("open cache")
}

/// The cache's stats once its warm restart has finished.
fn warmed(cache: &Cache) -> Stats {
    assert!(
        eventually(60, || !cache.stats().warming),
        "the warm restart never finished"
    );
    cache.stats()
}

/// Whether reading `key` now is a memory hit (it must be a hit).
fn memory_hit(cache: &Cache, key: &str) -> bool {
    let before = cache.stats();
    assert!(
        cache.get::<_, u64>(key).unwrap().is_some(),
        "{key} is a hit"
    );
    let after = cache.stats();
    after.memory_hits > before.memory_hits
}

#[test]
fn recently_used_entries_are_memory_hits_after_a_restart() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        for i in 0..100u64 {
            cache.insert(&format!("k{i}"), i).unwrap();
        }
    }
    let cache = common::open(dir.path(), &clock); // the default budget
    let s = warmed(&cache);
    assert_eq!(s.warm_loaded, 100, "{s:?}");
    for i in 0..100u64 {
        assert_eq!(
            cache.get::<_, u64>(&format!("k{i}")).unwrap().as_deref(),
            Some(&i)
        );
    }
    let s = cache.stats();
    assert_eq!((s.memory_hits, s.disk_hits), (100, 0), "{s:?}");
    // Decoded once: read again, they are plain memory hits.
    assert!(memory_hit(&cache, "k7"));
    assert_eq!(cache.stats().disk_hits, 0);
}

#[test]
fn the_budget_holds_the_most_recently_used_entries() {
    let dir = common::tempdir();
    let clock = common::clock();
    let n = 40u64;
    {
        let cache = common::open(dir.path(), &clock);
        for i in 0..n {
            clock.advance(Duration::from_secs(1)); // k0 oldest, k39 newest
            cache.insert(&format!("k{i}"), i).unwrap();
        }
    }
    {
        // Read the two oldest last, from disk (a memory hit notes no read time unless the
        // entry has an idle limit): their read time makes them the most recently used.
        let cache = reopen(dir.path(), &clock, 0);
        clock.advance(Duration::from_secs(1));
        for key in ["k0", "k1"] {
            assert!(!memory_hit(&cache, key));
        }
    }
    // One entry's weight, as the memory tier counts it.
    let weight = {
        let cache = reopen(dir.path(), &clock, 1 << 20);
        let s = warmed(&cache);
        assert_eq!(s.warm_loaded, n, "{s:?}");
        s.memory_bytes / n
    };
    let budget = weight * 10 + weight / 2;
    let cache = reopen(dir.path(), &clock, budget);
    let s = warmed(&cache);
    assert_eq!(s.warm_loaded, 10, "{s:?}");
    assert!(s.memory_bytes <= budget, "{s:?}");
    // The read ones, then the eight newest; none of the others.
    let loaded: Vec<u64> = (0..n)
        .filter(|i| memory_hit(&cache, &format!("k{i}")))
        .collect();
    assert_eq!(loaded, [0, 1, 32, 33, 34, 35, 36, 37, 38, 39]);
}

#[test]
fn zero_turns_the_warm_restart_off() {
    let dir = common::tempdir();
    let clock = common::clock();
    common::open(dir.path(), &clock).insert("k", 1u64).unwrap();
    let cache = reopen(dir.path(), &clock, 0);
    let s = cache.stats();
    assert!(!s.warming, "{s:?}");
    assert_eq!(s.warm_loaded, 0);
    assert!(!memory_hit(&cache, "k"), "a disk hit");
}

#[test]
fn expired_and_invalidated_records_are_not_loaded() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        let ttl = Options::new().ttl(Duration::from_secs(10));
        cache.insert_with("expires", 1u64, &ttl).unwrap();
        let idle = Options::new().idle(Duration::from_secs(10));
        cache.insert_with("idles", 1u64, &idle).unwrap();
        cache
            .insert_with("tagged", 1u64, &Options::new().tags(["t"]))
            .unwrap();
        cache.invalidate_tag("t").unwrap();
        cache.namespace("ns").insert("cleared", 1u64).unwrap();
        cache.namespace("ns").clear().unwrap();
        cache.insert("live", 1u64).unwrap();
    }
    clock.advance(Duration::from_secs(11));
    let cache = common::open(dir.path(), &clock);
    let s = warmed(&cache);
    assert_eq!(s.warm_loaded, 1, "only the live entry: {s:?}");
    assert!(memory_hit(&cache, "live"));
    assert_eq!(cache.get::<_, u64>("expires").unwrap(), None);
    assert_eq!(cache.get::<_, u64>("idles").unwrap(), None);
    assert_eq!(cache.get::<_, u64>("tagged").unwrap(), None);
}

#[test]
fn a_loaded_entry_read_as_another_type_is_a_miss_that_keeps_it() {
    let dir = common::tempdir();
    let clock = common::clock();
    common::open(dir.path(), &clock).insert("k", 7u64).unwrap();
    let cache = common::open(dir.path(), &clock);
    assert_eq!(warmed(&cache).warm_loaded, 1);
    assert!(matches!(
        cache.explain::<_, String>("k").unwrap(),
        Explanation::OtherType { .. }
    ));
    assert_eq!(cache.get::<_, String>("k").unwrap(), None);
    assert_eq!(cache.stats().type_mismatches, 1);
    assert_eq!(cache.explain::<_, u64>("k").unwrap(), Explanation::Hit);
    assert!(memory_hit(&cache, "k"), "kept, and still a memory hit");
    assert_eq!(
        cache.get::<_, String>("k").unwrap(),
        None,
        "decoded: still a miss"
    );
    let s = cache.stats();
    assert_eq!((s.type_mismatches, s.disk_hits), (2, 0), "{s:?}");
}

#[test]
fn a_loaded_entry_is_decoded_once_even_after_writes_to_other_keys() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = common::tempdir();
    let clock = common::clock();
    common::open(dir.path(), &clock)
        .insert("k", Counted(5))
        .unwrap();
    let cache = common::open(dir.path(), &clock);
    assert_eq!(warmed(&cache).warm_loaded, 1);
    // Writes to many other keys: some share the key's lock stripe (1024 of them).
    let elsewhere = Options::new().memory_only();
    for i in 0..20_000u64 {
        cache.insert_with(&i, i, &elsewhere).unwrap();
    }
    let before = DECODES.load(SeqCst);
    for _ in 0..3 {
        assert_eq!(
            cache.get::<_, Counted>("k").unwrap().as_deref(),
            Some(&Counted(5))
        );
    }
    assert_eq!(DECODES.load(SeqCst) - before, 1, "decoded on every read");
    let s = cache.stats();
    assert_eq!((s.memory_hits, s.disk_hits), (3, 0), "{s:?}");
}

#[test]
fn a_loaded_entry_expires_like_any_other() {
    let dir = common::tempdir();
    let clock = common::clock();
    let ttl = Options::new().ttl(Duration::from_secs(60));
    common::open(dir.path(), &clock)
        .insert_with("k", 1u64, &ttl)
        .unwrap();
    let cache = common::open(dir.path(), &clock);
    assert_eq!(warmed(&cache).warm_loaded, 1);
    clock.advance(Duration::from_secs(61));
    assert!(matches!(
        cache.explain::<_, u64>("k").unwrap(),
        Explanation::Expired { .. }
    ));
    assert_eq!(cache.get::<_, u64>("k").unwrap(), None);
    assert_eq!(cache.stats().expirations, 1);
    drop(cache);
    clock.set(std::time::SystemTime::now()); // back before the deadline: the record is gone
    assert_eq!(
        common::open(dir.path(), &clock).get::<_, u64>("k").unwrap(),
        None
    );
}

/// Commits in large batches: many small writes go fast (tests that need a loader busy for a
/// while write thousands of entries).
const LARGE_BATCHES: Durability = Durability::Batched(Duration::from_secs(5));

#[test]
fn a_loaded_idle_entry_counts_its_idle_time_from_its_last_use() {
    let dir = common::tempdir();
    let clock = common::clock();
    let idle = Options::new().idle(Duration::from_secs(10));
    {
        let cache = common::open(dir.path(), &clock);
        cache.insert_with("read", 1u64, &idle).unwrap();
        cache.insert_with("unread", 1u64, &idle).unwrap();
    }
    clock.advance(Duration::from_secs(4));
    let cache = common::open(dir.path(), &clock);
    assert_eq!(warmed(&cache).warm_loaded, 2);
    clock.advance(Duration::from_secs(4)); // t = 8 s
    assert!(memory_hit(&cache, "read"), "read at 8 s: idle until 18 s");
    clock.advance(Duration::from_secs(3)); // t = 11 s
    assert_eq!(
        cache.get::<_, u64>("unread").unwrap(),
        None,
        "idle since it was written at 0 s, not since it was loaded at 4 s"
    );
    assert!(memory_hit(&cache, "read"));
    clock.advance(Duration::from_secs(11)); // t = 22 s
    assert_eq!(cache.get::<_, u64>("read").unwrap(), None);
    assert_eq!(cache.stats().expirations, 2);
}

/// `n` keys holding their index, on disk.
fn filled(dir: &Path, n: u64) {
    let cache = Cache::builder()
        .path(dir)
        .durability(LARGE_BATCHES)
        .warm_restart(0)
        .open()
        .unwrap();
    for i in 0..n {
        cache.insert(&i, i).unwrap();
    }
}

/// `dir` with a loader that may load everything, committing in large batches.
fn warming(dir: &Path) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(LARGE_BATCHES)
        .warm_restart(1 << 30)
        .open()
        .unwrap()
}

#[test]
fn writes_and_removals_racing_the_loader_always_win() {
    // The loader runs at a lower priority: on a loaded machine it may not get a turn while
    // the writes go on. Each attempt checks every key; the race itself must happen in one.
    for _attempt in 0..8 {
        if writes_and_removals_race_the_loader() {
            return;
        }
    }
    panic!("the loader never ran while the writes went on, in 8 attempts");
}

/// One attempt: every key ends as its last write says, in memory and after a reopen. Returns
/// whether the loader put entries in while the writes went on.
fn writes_and_removals_race_the_loader() -> bool {
    let dir = common::tempdir();
    let n = 20_000u64;
    filled(dir.path(), n);
    let cache = warming(dir.path());
    let loaded_before = cache.stats().warm_loaded;
    for i in 0..n {
        if i % 3 == 0 {
            cache.remove(&i).unwrap();
        } else {
            cache.insert(&i, i + n).unwrap();
        }
        // A moment for the loader (a lower priority) now and then, on a busy machine.
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let s = warmed(&cache);
    let overlapped = s.warm_loaded > loaded_before;
    for i in 0..n {
        let want = (i % 3 != 0).then_some(i + n);
        assert_eq!(
            cache.get::<_, u64>(&i).unwrap().as_deref(),
            want.as_ref(),
            "key {i}"
        );
    }
    drop(cache);
    let cache = Cache::builder().path(dir.path()).open().unwrap();
    warmed(&cache);
    for i in 0..n {
        let want = (i % 3 != 0).then_some(i + n);
        assert_eq!(
            cache.get::<_, u64>(&i).unwrap().as_deref(),
            want.as_ref(),
            "key {i}"
        );
    }
    overlapped
}

#[test]
fn threads_writing_while_the_loader_runs_read_their_own_writes() {
    let dir = common::tempdir();
    let n = 8_000u64;
    filled(dir.path(), n);
    let cache = warming(dir.path());
    let threads = 4u64;
    // Each thread owns the keys equal to its number modulo `threads`: what it last did to a
    // key is what every read of that key must see.
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let mut model: Vec<Option<u64>> = (0..n).map(Some).collect();
                for round in 0..3u64 {
                    for i in (t..n).step_by(threads as usize) {
                        match (i + round) % 4 {
                            0 => {
                                cache.remove(&i).unwrap();
                                model[i as usize] = None;
                            }
                            1 => {
                                cache.insert(&i, i * 10 + round).unwrap();
                                model[i as usize] = Some(i * 10 + round);
                            }
                            _ => {}
                        }
                        let got = cache.get::<_, u64>(&i).unwrap();
                        assert_eq!(got.as_deref(), model[i as usize].as_ref(), "key {i}");
                    }
                }
                model
            })
        })
        .collect();
    let models: Vec<Vec<Option<u64>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    warmed(&cache);
    for i in 0..n {
        let want = models[(i % threads) as usize][i as usize];
        assert_eq!(
            cache.get::<_, u64>(&i).unwrap().as_deref(),
            want.as_ref(),
            "key {i}"
        );
    }
}

#[test]
fn a_slow_first_decode_never_replaces_a_newer_insert() {
    let dir = common::tempdir();
    let clock = common::clock();
    common::open(dir.path(), &clock)
        .insert("k", Slow(1))
        .unwrap();
    let cache = common::open(dir.path(), &clock);
    assert_eq!(warmed(&cache).warm_loaded, 1);
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, Slow>("k").unwrap(),
        || cache.insert("k", Slow(2)).unwrap(),
    );
    assert_eq!(seen.as_deref(), Some(&Slow(1)), "decoded what it had");
    assert_eq!(
        cache.get::<_, Slow>("k").unwrap().as_deref(),
        Some(&Slow(2))
    );
    assert_eq!(cache.stats().disk_hits, 0);
    drop(cache);
    let cache = common::open(dir.path(), &clock);
    assert_eq!(
        cache.get::<_, Slow>("k").unwrap().as_deref(),
        Some(&Slow(2))
    );
}

#[test]
fn a_slow_first_decode_never_brings_back_a_removed_value() {
    let dir = common::tempdir();
    let clock = common::clock();
    common::open(dir.path(), &clock)
        .insert("k", Slow(1))
        .unwrap();
    let cache = common::open(dir.path(), &clock);
    assert_eq!(warmed(&cache).warm_loaded, 1);
    let c = cache.clone();
    let seen = race(
        move || c.get::<_, Slow>("k").unwrap(),
        || assert!(cache.remove("k").unwrap()),
    );
    assert_eq!(seen.as_deref(), Some(&Slow(1)));
    assert_eq!(cache.get::<_, Slow>("k").unwrap(), None);
    drop(cache);
    assert_eq!(
        common::open(dir.path(), &clock)
            .get::<_, Slow>("k")
            .unwrap(),
        None
    );
}

#[test]
fn a_cache_dropped_while_loading_reopens_at_once() {
    let dir = common::tempdir();
    filled(dir.path(), 20_000);
    for _ in 0..3 {
        let cache = warming(dir.path());
        assert!(cache.stats().warming, "the loader is running when dropped");
        drop(cache);
        // No wait for the folder: the drop released it.
        let again = Cache::builder()
            .path(dir.path())
            .open_timeout(Duration::ZERO)
            .warm_restart(0)
            .open()
            .expect("reopened at once");
        assert_eq!(again.get::<_, u64>(&7u64).unwrap().as_deref(), Some(&7));
    }
}

#[test]
fn large_values_in_side_files_are_loaded_within_the_budget() {
    let dir = common::tempdir();
    let clock = common::clock();
    let frame = vec![3u8; 200 << 10];
    {
        let cache = common::open(dir.path(), &clock);
        cache.insert("old-frame", frame.clone()).unwrap();
        clock.advance(Duration::from_secs(1));
        cache.insert("frame", frame.clone()).unwrap();
    }
    // Room for one frame only: the newer.
    let cache = reopen(dir.path(), &clock, 300 << 10);
    assert_eq!(warmed(&cache).warm_loaded, 1);
    let got = cache.get::<_, Vec<u8>>("frame").unwrap();
    assert_eq!(got.as_deref(), Some(&frame));
    assert_eq!(cache.stats().memory_hits, 1);
    let got = cache.get::<_, Vec<u8>>("old-frame").unwrap();
    assert_eq!(got.as_deref(), Some(&frame));
    assert_eq!(cache.stats().disk_hits, 1);
}
