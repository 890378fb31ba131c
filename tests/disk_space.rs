//! Disk space: the cache folder (every file in it) stays within 1.5 times `disk_capacity`
//! once background work has run, comes back down after large deletions, shrinks on
//! `compact()` and at open past a lowered capacity; compaction loses nothing, whatever runs
//! beside it or kills it.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiered::{Cache, Durability, Options};

fn db_file(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("tiered.redb")).unwrap().len()
}

fn open(dir: &Path, capacity: u64, durability: Durability) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(durability)
        .memory_capacity(1 << 20)
        .disk_capacity(capacity)
        .open()
        .unwrap()
}

/// A value of `len` bytes that says which key and version it belongs to.
fn value(key: u64, version: u64, len: usize) -> Vec<u8> {
    let mut v = vec![(key ^ version) as u8; len.max(16)];
    v[..8].copy_from_slice(&key.to_le_bytes());
    v[8..16].copy_from_slice(&version.to_le_bytes());
    v
}

/// Whether `key` reads back as `expected` (an assertion on it prints no kilobytes of bytes).
fn reads<K: serde::Serialize + ?Sized>(cache: &Cache, key: &K, expected: Option<Vec<u8>>) -> bool {
    cache.get::<_, Vec<u8>>(key).unwrap().as_deref() == expected.as_ref()
}

/// 10 B to 1 KiB, spread.
fn small_len(i: u64) -> usize {
    [10, 100, 1_000, 40, 300, 700, 24, 1_024][(i % 8) as usize]
}

#[test]
fn the_folder_stays_within_one_and_a_half_times_disk_capacity_over_a_mixed_workload() {
    let dir = common::tempdir();
    let capacity: u64 = 2 << 20;
    let cache = open(dir.path(), capacity, Durability::default());
    let mut written = 0;
    for i in 0..8_000u64 {
        // Every 500th value goes to a side file (64 to 512 KiB).
        let len = if i % 500 == 499 {
            (64 << 10) << (i / 500 % 4)
        } else {
            small_len(i)
        };
        written += len as u64;
        cache.insert(&i, value(i, 0, len)).unwrap();
    }
    cache.flush().unwrap();
    assert!(written > 3 * capacity, "the workload fills the tier");
    let bound = capacity / 2 * 3;
    // `disk_file_bytes` is as of the writer's last look: both settle.
    let settled =
        || common::folder_bytes(dir.path()) <= bound && cache.stats().disk_file_bytes <= bound;
    assert!(
        common::eventually(20, settled),
        "the folder holds {} bytes, past 1.5 x {capacity}: {:?}",
        common::folder_bytes(dir.path()),
        cache.stats()
    );
    let s = cache.stats();
    assert!(s.evictions > 0, "{s:?}");
    let newest = cache.get::<_, Vec<u8>>(&7_998u64).unwrap();
    assert!(
        newest.is_some_and(|v| *v == value(7_998, 0, small_len(7_998))),
        "the newest value is kept"
    );
}

#[test]
fn the_folder_comes_back_down_after_large_deletions() {
    let dir = common::tempdir();
    let cache = open(dir.path(), 32 << 20, Durability::default());
    let doomed = Options::new().tags(["doomed"]);
    for i in 0..6_000u64 {
        let opts = if i % 10 == 0 {
            Options::new()
        } else {
            doomed.clone()
        };
        cache.insert_with(&i, value(i, 0, 1_000), &opts).unwrap();
    }
    cache.flush().unwrap();
    let full = common::folder_bytes(dir.path());
    assert!(full > 6_000_000, "{full}");
    cache.invalidate_tag("doomed").unwrap();
    assert!(
        common::eventually(30, || common::folder_bytes(dir.path()) < full / 4),
        "the folder stayed at {} bytes (from {full}) after 90% of it was invalidated: {:?}",
        common::folder_bytes(dir.path()),
        cache.stats()
    );
    for i in (0..6_000u64).step_by(10) {
        assert!(reads(&cache, &i, Some(value(i, 0, 1_000))), "key {i}");
    }
}

/// Removals in one commit, with nothing written after them: the pages that commit freed
/// (redb lets them go only at the next one) must not hide that most of the file is free.
#[test]
fn the_folder_comes_back_down_after_removing_most_entries_at_once() {
    let dir = common::tempdir();
    // Commits only when a batch is full or on flush: the removals below make one commit.
    let cache = open(dir.path(), 32 << 20, Durability::Batched(Duration::MAX));
    for i in 0..6_000u64 {
        cache.insert(&i, value(i, 0, 1_000)).unwrap();
    }
    cache.flush().unwrap();
    let full = common::folder_bytes(dir.path());
    for i in 0..6_000u64 {
        if i % 10 != 0 {
            cache.remove(&i).unwrap();
        }
    }
    cache.flush().unwrap();
    assert!(
        common::eventually(30, || common::folder_bytes(dir.path()) < full / 4),
        "the folder stayed at {} bytes (from {full}) after 90% of the entries were removed: {:?}",
        common::folder_bytes(dir.path()),
        cache.stats()
    );
    assert!(reads(&cache, &10u64, Some(value(10, 0, 1_000))));
}

#[test]
fn clear_then_compact_gives_the_space_back_at_once() {
    let dir = common::tempdir();
    let cache = open(dir.path(), 64 << 20, Durability::default());
    for i in 0..3_000u64 {
        cache.insert(&i, value(i, 0, 1_000)).unwrap();
    }
    cache.insert("frame", value(0, 0, 300 << 10)).unwrap();
    cache.flush().unwrap();
    let full = common::folder_bytes(dir.path());
    cache.clear().unwrap();
    cache.compact().unwrap();
    let after = common::folder_bytes(dir.path());
    assert!(
        after < 256 << 10,
        "{after} bytes left of {full} after clear() and compact()"
    );
    let s = cache.stats();
    assert_eq!((s.entries, s.disk_bytes), (0, 0), "{s:?}");
    assert!(
        s.disk_file_bytes <= after,
        "{s:?} vs {after} bytes in the folder"
    );
    // The cache goes on.
    cache.insert("after", 1u8).unwrap();
    cache.flush().unwrap();
    assert_eq!(cache.get::<_, u8>("after").unwrap().as_deref(), Some(&1));
    // A cache in memory only has nothing to compact.
    Cache::in_memory().compact().unwrap();
}

#[test]
fn compact_shrinks_the_file_and_keeps_every_entry() {
    let dir = common::tempdir();
    {
        let cache = open(dir.path(), 64 << 20, Durability::default());
        for i in 0..4_000u64 {
            cache.insert(&i, value(i, 1, 600)).unwrap();
        }
        cache.flush().unwrap();
        // Every other record goes: free pages all through the file.
        for i in (0..4_000u64).step_by(2) {
            assert!(cache.remove(&i).unwrap());
        }
        cache.flush().unwrap();
        let before = db_file(dir.path());
        cache.compact().unwrap();
        let after = db_file(dir.path());
        assert!(
            after < before * 3 / 4,
            "compact() left the file at {after} bytes (from {before})"
        );
        for i in 0..4_000u64 {
            let expected = (i % 2 == 1).then(|| value(i, 1, 600));
            assert!(reads(&cache, &i, expected), "key {i}");
        }
    }
    let cache = open(dir.path(), 64 << 20, Durability::Immediate);
    for i in (1..4_000u64).step_by(2) {
        assert!(
            reads(&cache, &i, Some(value(i, 1, 600))),
            "key {i} after a restart"
        );
    }
}

#[test]
fn a_file_past_a_lowered_capacity_shrinks_at_open() {
    let dir = common::tempdir();
    {
        let cache = open(dir.path(), 64 << 20, Durability::default());
        for i in 0..6_000u64 {
            cache.insert(&i, value(i, 0, 1_000)).unwrap();
        }
        cache.insert("frame", value(1, 0, 2 << 20)).unwrap();
        cache.insert("last", value(2, 0, 1_000)).unwrap();
    }
    let capacity: u64 = 1 << 20;
    let before = common::folder_bytes(dir.path());
    assert!(before > 6 * capacity, "{before}");
    let cache = open(dir.path(), capacity, Durability::default());
    // Reads are served while the tier shrinks.
    assert!(reads(&cache, "last", Some(value(2, 0, 1_000))));
    assert!(
        common::eventually(30, || common::folder_bytes(dir.path()) <= capacity / 2 * 3),
        "the folder holds {} bytes (from {before}), past 1.5 x {capacity}: {:?}",
        common::folder_bytes(dir.path()),
        cache.stats()
    );
    assert!(
        reads(&cache, "last", Some(value(2, 0, 1_000))),
        "the most recently used entry is kept"
    );
    assert!(cache.stats().evictions > 0);
}

#[test]
fn huge_capacities_work() {
    let dir = common::tempdir();
    let cache = open(dir.path(), u64::MAX, Durability::Immediate);
    cache.insert("k", value(1, 1, 100)).unwrap();
    cache.insert("frame", value(2, 2, 100 << 10)).unwrap();
    cache.compact().unwrap();
    assert!(reads(&cache, "k", Some(value(1, 1, 100))));
}

/// Threads insert, overwrite and read while `compact()` runs again and again: no call fails,
/// every read is a value that was written for its key, and every acknowledged write is there
/// at the end, also after a restart.
#[test]
fn compaction_beside_readers_and_writers_loses_nothing() {
    let _watchdog = common::watchdog("compaction beside readers and writers", 120);
    let dir = common::tempdir();
    const KEYS: u64 = 400;
    let cache = open(dir.path(), 64 << 20, Durability::Immediate);
    for k in 0..KEYS {
        cache.insert(&k, value(k, 0, 500)).unwrap();
    }
    // The last acknowledged version of each key (writers own disjoint keys).
    let acked = Arc::new(Mutex::new(vec![0u64; KEYS as usize]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..2u64 {
        let (cache, acked, stop) = (cache.clone(), acked.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut version = 0;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                for k in (w..KEYS).step_by(2) {
                    // Lengths change, so that records move and leave free pages.
                    let len = 200 + ((k + version) % 5) as usize * 300;
                    cache.insert(&k, value(k, version, len)).unwrap();
                    acked.lock().unwrap()[k as usize] = version;
                }
            }
        }));
    }
    for r in 0..2u64 {
        let (cache, stop) = (cache.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = (reads * 7 + r) % KEYS;
                let v = cache
                    .get::<_, Vec<u8>>(&k)
                    .unwrap()
                    .expect("every key exists");
                assert_eq!(&v[..8], &k.to_le_bytes(), "a value of another key");
                let version = u64::from_le_bytes(v[8..16].try_into().unwrap());
                let len = if version == 0 {
                    500
                } else {
                    200 + ((k + version) % 5) as usize * 300
                };
                assert!(*v == value(k, version, len), "key {k}: a damaged value");
                reads += 1;
            }
            assert!(reads > 0);
        }));
    }
    for _ in 0..6 {
        cache.compact().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("no thread failed");
    }
    let acked = acked.lock().unwrap().clone();
    let check = |cache: &Cache, when: &str| {
        for k in 0..KEYS {
            let v = cache
                .get::<_, Vec<u8>>(&k)
                .unwrap()
                .expect("every key exists");
            let version = u64::from_le_bytes(v[8..16].try_into().unwrap());
            assert_eq!(version, acked[k as usize], "key {k} {when}");
        }
    };
    check(&cache, "at the end");
    drop(cache);
    let cache = open(dir.path(), 64 << 20, Durability::Immediate);
    check(&cache, "after a restart");
}

/// The child: fills a cache, says `ready`, then churns and compacts until it is killed.
#[test]
#[ignore = "child process of killed_while_compacting_loses_nothing_committed"]
fn child_compacting() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let cache = open(&dir, 64 << 20, Durability::default());
    for k in 0..2_000u64 {
        cache.insert(&k, value(k, 0, 1_000)).unwrap();
    }
    cache.flush().unwrap();
    println!("ready");
    let mut version = 0;
    loop {
        version += 1;
        // Churn outside the kept keys, so that every compaction has pages to move.
        for k in 10_000..10_500u64 {
            cache.insert(&k, value(k, version, 1_000)).unwrap();
        }
        for k in 10_000..10_500u64 {
            cache.remove(&k).unwrap();
        }
        println!("compacting {version}");
        cache.compact().unwrap();
        println!("compacted {version}");
    }
}

#[cfg(unix)]
#[test]
fn killed_while_compacting_loses_nothing_committed() {
    use std::io::{BufReader, Read};
    let mut inside = 0;
    for round in 0..3u64 {
        let dir = common::tempdir();
        let mut child = common::spawn_child("child_compacting", dir.path(), &[]);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        common::wait_for_line(&mut out, "ready");
        common::wait_for_line(&mut out, "compacting 1");
        // Into the compaction (the child says so before it starts it), at a different point
        // each round.
        std::thread::sleep(Duration::from_millis(round * 20));
        common::signal(&child, libc::SIGKILL);
        let _ = child.wait();
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        if !rest.contains("compacted 1") {
            inside += 1;
        }
        let cache = open(dir.path(), 64 << 20, Durability::Immediate);
        for k in 0..2_000u64 {
            assert!(
                reads(&cache, &k, Some(value(k, 0, 1_000))),
                "round {round}: key {k} after a kill during compaction"
            );
        }
        cache.insert("after", 1u8).unwrap();
        cache.compact().unwrap();
    }
    eprintln!("{inside} of 3 kills landed inside a compaction");
    assert!(inside > 0, "no kill landed inside a compaction");
}

/// Found by review: after one automatic compaction, a later round of large deletions never
/// compacted again (the gate wanted what the database used to halve below what the previous
/// compaction had left, which a refill and a new deletion never do).
#[test]
fn the_folder_comes_back_down_after_every_round_of_large_deletions() {
    const N: u64 = 6_000;
    let dir = common::tempdir();
    let cache = open(dir.path(), 32 << 20, Durability::default());
    for round in 0..2u64 {
        for i in 0..N {
            cache.insert(&i, value(i, round, 1_000)).unwrap();
        }
        cache.flush().unwrap();
        let full = common::folder_bytes(dir.path());
        for i in (0..N).filter(|i| i % 10 != 0) {
            cache.remove(&i).unwrap();
        }
        cache.flush().unwrap();
        assert!(
            common::eventually(20, || common::folder_bytes(dir.path()) < full / 4),
            "round {round}: the folder stayed at {} (from {full}) after removing 90%: {:?}",
            common::folder_bytes(dir.path()),
            cache.stats()
        );
    }
}

/// Child: side-file values into a small tier with a long batch window, until killed.
#[test]
#[ignore = "child process of side_files_left_by_a_crash_go_at_the_first_pass_after_reopening"]
fn child_streams_side_files() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let cache = open(&dir, 4 << 20, Durability::Batched(Duration::from_secs(1)));
    for i in 0.. {
        cache.insert(&i, value(i, 0, 512 << 10)).unwrap();
        if i == 20 {
            println!("ready");
        }
    }
}

/// Found by review: side files written for puts a crash cut short were orphans kept for
/// ORPHAN_AGE (10 min), so the reopened folder stayed ~100x past the bound, even after
/// `compact()`. Side files already in the folder when it is opened are judged by the first
/// whole sweep pass, whatever their age.
#[test]
fn side_files_left_by_a_crash_go_at_the_first_pass_after_reopening() {
    let dir = common::tempdir();
    let capacity: u64 = 4 << 20;
    let mut child = common::spawn_child_piped("child_streams_side_files", dir.path(), &[]);
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    common::wait_for_line(&mut out, "ready");
    std::thread::sleep(Duration::from_millis(1_500));
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let crashed = common::folder_bytes(dir.path());
    let cache = open(dir.path(), capacity, Durability::default());
    cache.compact().unwrap(); // a whole sweep pass, then compaction
    assert!(
        common::eventually(20, || common::folder_bytes(dir.path()) <= capacity / 2 * 3),
        "after the crash the folder held {crashed}; after reopening and compact() it holds {} \
         > 1.5 x {capacity}: {:?}",
        common::folder_bytes(dir.path()),
        cache.stats()
    );
}

/// Found by review: side files written for records not yet committed were not counted by the
/// back-pressure (only their small records were), so a stream of large values with a long
/// batch window took a 4 MiB folder to ~100x its capacity between commits. They now wait for
/// room once a quarter of the capacity (at least 1 MiB) of them is pending.
#[test]
fn side_files_waiting_for_their_commit_stay_within_a_budget() {
    let dir = common::tempdir();
    let capacity: u64 = 4 << 20;
    let cache = open(
        dir.path(),
        capacity,
        Durability::Batched(Duration::from_secs(1)),
    );
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (dir, done) = (dir.path().to_path_buf(), done.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(common::folder_bytes(&dir));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    for i in 0..40u64 {
        cache.insert(&i, value(i, 0, 512 << 10)).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert!(
        peak <= 2 * capacity,
        "the folder peaked at {peak} bytes while 20 MiB of side files streamed into a \
         {capacity}-byte tier with a 1 s batch window"
    );
    cache.flush().unwrap();
    assert_eq!(
        cache.get::<_, Vec<u8>>(&39u64).unwrap().as_deref(),
        Some(&value(39, 0, 512 << 10))
    );
}
