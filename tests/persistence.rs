//! What one process writes, the next one reads: from disk first, then from memory.

mod common;

use std::time::Duration;

use tiered::{Cache, Durability, Options};

const N: u64 = 1_000;

fn value(i: u64) -> (String, Vec<u64>) {
    (format!("row-{i}"), (0..8).map(|j| i * j).collect())
}

/// Child: writes N entries with batched durability into a cache kept in a `static`, and
/// returns without flushing: the exit hook must commit them.
#[test]
#[ignore = "child process of a_new_process_reads_every_entry"]
fn child_writer() {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let Some(dir) = common::child_dir() else {
        return;
    };
    let cache = CACHE.get_or_init(|| {
        Cache::builder()
            .path(&dir)
            .durability(Durability::Batched(Duration::from_secs(30)))
            .open()
            .unwrap()
    });
    for i in 0..N {
        cache.insert(&i, value(i)).unwrap();
    }
}

#[test]
fn a_new_process_reads_every_entry_first_from_disk_then_from_memory() {
    let dir = common::tempdir();
    let status = common::spawn_child("child_writer", dir.path(), &[])
        .wait()
        .unwrap();
    assert!(status.success());

    let cache = common::cold(dir.path());
    assert_eq!(cache.stats().entries, N);
    for i in 0..N {
        let v = cache.get::<_, (String, Vec<u64>)>(&i).unwrap();
        assert_eq!(v.as_deref(), Some(&value(i)), "entry {i}");
    }
    let s = cache.stats();
    assert_eq!((s.disk_hits, s.memory_hits, s.misses), (N, 0, 0));
    for i in 0..N {
        assert!(cache.get::<_, (String, Vec<u64>)>(&i).unwrap().is_some());
    }
    let s = cache.stats();
    assert_eq!((s.disk_hits, s.memory_hits), (N, N));
    assert!(s.disk_bytes > 0);
}

#[test]
fn memory_only_entries_are_never_written_to_disk() {
    let dir = common::tempdir();
    let marker = "memory-only-marker-5d1f0c7e";
    {
        let cache = Cache::builder()
            .path(dir.path())
            .durability(Durability::Immediate)
            .open()
            .unwrap();
        cache
            .insert_with("plot", marker.to_string(), &Options::new().memory_only())
            .unwrap();
        cache.insert("kept", 1u8).unwrap();
        assert_eq!(
            cache
                .get::<_, String>("plot")
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some(marker)
        );
        cache.flush().unwrap();
        assert_eq!(cache.stats().entries, 1);
    }
    let file = std::fs::read(dir.path().join("tiered.redb")).unwrap();
    assert!(
        !file.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "a memory-only value reached the database file"
    );
    let cache = Cache::open(dir.path()).unwrap();
    assert!(cache.get::<_, String>("plot").unwrap().is_none());
    assert!(cache.get::<_, u8>("kept").unwrap().is_some());
}

#[test]
fn a_memory_only_insert_replaces_a_persisted_value() {
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert("k", 1u32).unwrap();
        cache
            .insert_with("k", 2u32, &Options::new().memory_only())
            .unwrap();
        assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&2));
    }
    let cache = Cache::open(dir.path()).unwrap();
    assert!(
        cache.get::<_, u32>("k").unwrap().is_none(),
        "the old value came back"
    );
}

#[test]
fn remove_and_flush_persist() {
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert("a", 1u8).unwrap();
        cache.insert("b", 2u8).unwrap();
        assert!(cache.remove("a").unwrap());
        assert!(!cache.remove("a").unwrap());
        assert!(
            cache.get::<_, u8>("a").unwrap().is_none(),
            "read-your-removal before commit"
        );
        cache.flush().unwrap();
    }
    let cache = Cache::open(dir.path()).unwrap();
    assert!(!cache.contains_key("a").unwrap());
    assert!(cache.contains_key("b").unwrap());
}

#[test]
fn keys_of_equal_encoding_name_one_entry() {
    let cache = Cache::in_memory();
    cache.insert("a", 1u8).unwrap();
    assert_eq!(
        cache.get::<_, u8>(&String::from("a")).unwrap().as_deref(),
        Some(&1)
    );
}

#[test]
fn opening_a_folder_twice_in_one_process_shares_the_cache() {
    let dir = common::tempdir();
    let a = Cache::open(dir.path()).unwrap();
    let b = Cache::open(dir.path()).unwrap();
    a.insert("k", 5u8).unwrap();
    assert_eq!(b.get::<_, u8>("k").unwrap().as_deref(), Some(&5));
}

#[cfg(unix)]
#[test]
fn the_folder_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::tempdir();
    let folder = dir.path().join("a/b");
    let _cache = Cache::open(&folder).unwrap();
    let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// `get_from_memory` answers from this process's memory tier alone: after a reopen the value
/// is on disk only, so it says `None` (counting nothing) until a full `get` has promoted it.
#[test]
fn get_from_memory_never_reads_the_disk_and_counts_only_hits() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert("k", 7u64).unwrap();
        assert_eq!(
            cache.get_from_memory::<_, u64>("k").unwrap().as_deref(),
            Some(&7)
        );
    }
    let cache = Cache::open(dir.path()).unwrap();
    // The warm restart may load entries into memory undecoded; those are left to `get` too.
    assert_eq!(cache.get_from_memory::<_, u64>("k").unwrap(), None);
    let s = cache.stats();
    assert_eq!((s.memory_hits, s.disk_hits, s.misses), (0, 0, 0));
    assert_eq!(cache.get::<_, u64>("k").unwrap().as_deref(), Some(&7));
    assert_eq!(
        cache.get_from_memory::<_, u64>("k").unwrap().as_deref(),
        Some(&7)
    );
    let ns = cache.namespace("n");
    assert_eq!(ns.get_from_memory::<_, u64>("k").unwrap(), None);
    let s = cache.stats();
    assert_eq!(
        s.misses, 0,
        "a memory probe that finds nothing is not a miss"
    );
    assert!(s.memory_hits + s.disk_hits >= 2);
}

/// `get_waiting` runs only what may wait inside its wrapper (a binding lets go of its lock
/// there): a disk read after a reopen, in the root and in a namespace; a memory hit never. It
/// counts as `get` does: a disk hit, a memory hit, one miss per absent key.
#[test]
fn get_waiting_waits_only_for_the_disk_and_counts_as_get() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert("k", 7u64).unwrap();
        cache.namespace("n").insert("k", 8u64).unwrap();
    }
    let cache = Cache::builder()
        .path(dir.path())
        .warm_restart(0)
        .open()
        .unwrap();
    let waits = AtomicUsize::new(0);
    let wait = |io: &(dyn Fn() -> Option<Arc<u64>> + Sync)| {
        waits.fetch_add(1, Ordering::SeqCst);
        io()
    };
    assert_eq!(cache.get_waiting("k", wait).unwrap().as_deref(), Some(&7));
    assert_eq!(waits.swap(0, Ordering::SeqCst), 1, "a disk read waits");
    assert_eq!(cache.get_waiting("k", wait).unwrap().as_deref(), Some(&7));
    assert_eq!(waits.swap(0, Ordering::SeqCst), 0, "a memory hit does not");
    let ns = cache.namespace("n");
    assert_eq!(ns.get_waiting("k", wait).unwrap().as_deref(), Some(&8));
    assert_eq!(waits.swap(0, Ordering::SeqCst), 1);
    assert_eq!(cache.get_waiting("absent", wait).unwrap(), None);
    assert_eq!(waits.swap(0, Ordering::SeqCst), 1, "only the disk can tell");
    let s = cache.stats();
    assert_eq!((s.memory_hits, s.disk_hits, s.misses), (1, 2, 1));
}
