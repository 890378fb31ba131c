//! Large values live in side files (`blobs/`): written before their record, read back whole,
//! deleted with their record, and reclaimed when orphaned; a missing or damaged one is a miss.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tiered::{Cache, Durability};

fn blobs(dir: &Path) -> Vec<PathBuf> {
    common::files_starting_with(&dir.join("blobs"), "")
}

/// Without the warm restart: reads after a reopen go to the side files (`tests/warm.rs`
/// tests loading them).
fn open(dir: &Path) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .warm_restart(0)
        .open()
        .unwrap()
}

fn big(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn large_values_live_in_side_files_and_read_back_after_a_restart() {
    let dir = common::tempdir();
    {
        let cache = open(dir.path());
        cache.insert("frame", big(1, 4 << 20)).unwrap();
        cache.insert("small", big(2, 1_000)).unwrap();
        assert_eq!(
            blobs(dir.path()).len(),
            1,
            "one side file, for the large value only"
        );
        assert!(
            cache.stats().disk_bytes >= 4 << 20,
            "side files count in disk_bytes"
        );
    }
    let db = std::fs::metadata(dir.path().join("tiered.redb"))
        .unwrap()
        .len();
    assert!(
        db < 2 << 20,
        "the database holds no copy of the 4 MiB value: {db} bytes"
    );
    let cache = open(dir.path());
    assert_eq!(
        cache.get::<_, Vec<u8>>("frame").unwrap().as_deref(),
        Some(&big(1, 4 << 20))
    );
    assert_eq!(cache.stats().disk_hits, 1);
}

#[test]
fn replacing_or_removing_a_large_value_deletes_its_side_file() {
    let dir = common::tempdir();
    let cache = open(dir.path());
    cache.insert("k", big(1, 200_000)).unwrap();
    let first = blobs(dir.path());
    assert_eq!(first.len(), 1);
    cache.insert("k", big(2, 200_000)).unwrap();
    let second = blobs(dir.path());
    assert_eq!(second.len(), 1, "the replaced value's file is gone");
    assert_ne!(first, second);
    assert!(cache.remove("k").unwrap());
    assert!(
        blobs(dir.path()).is_empty(),
        "the removed value's file is gone"
    );
}

#[test]
fn a_missing_or_damaged_side_file_is_a_miss() {
    let dir = common::tempdir();
    {
        let cache = open(dir.path());
        cache.insert("gone", big(1, 100_000)).unwrap();
    }
    for file in blobs(dir.path()) {
        std::fs::remove_file(file).unwrap();
    }
    {
        let cache = open(dir.path());
        assert_eq!(cache.get::<_, Vec<u8>>("gone").unwrap(), None);
        assert_eq!(cache.stats().damaged_records, 1);
        cache.insert("bent", big(2, 100_000)).unwrap();
    }
    for file in blobs(dir.path()) {
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[50_000] ^= 0x40;
        std::fs::write(&file, bytes).unwrap();
    }
    let cache = open(dir.path());
    assert_eq!(
        cache.get::<_, Vec<u8>>("bent").unwrap(),
        None,
        "never wrong data"
    );
    assert_eq!(cache.stats().damaged_records, 1);
}

/// Makes a file look old, as an orphan left by a crash long ago would.
fn age(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn an_orphaned_side_file_is_reclaimed_and_a_referenced_one_kept() {
    let dir = common::tempdir();
    {
        let cache = open(dir.path());
        cache.insert("kept", big(1, 100_000)).unwrap();
    }
    let kept = blobs(dir.path());
    assert_eq!(kept.len(), 1);
    age(&kept[0]);
    // An orphan: a side file whose record never committed (a crash between the two).
    let orphan = dir.path().join("blobs").join("00000000deadbeef");
    std::fs::write(&orphan, b"no record points here").unwrap();
    age(&orphan);
    // A temporary file left by a crash mid-write.
    let tmp = dir.path().join("blobs").join("00000000feedf00d.tmp");
    std::fs::write(&tmp, b"half written").unwrap();
    age(&tmp);
    // The sweep pass at open reclaims them.
    let cache = open(dir.path());
    assert!(
        common::eventually(30, || !orphan.exists() && !tmp.exists()),
        "orphans left: {:?}",
        blobs(dir.path())
    );
    assert!(
        kept[0].exists(),
        "a side file its record references is kept"
    );
    assert_eq!(
        cache.get::<_, Vec<u8>>("kept").unwrap().as_deref(),
        Some(&big(1, 100_000))
    );
}

#[test]
fn large_values_past_disk_capacity_are_evicted_with_their_files() {
    let dir = common::tempdir();
    let capacity = 4 << 20;
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Immediate)
        .memory_capacity(1)
        .disk_capacity(capacity)
        .open()
        .unwrap();
    for i in 0..12u32 {
        cache.insert(&i, big(i as u8, 1 << 20)).unwrap();
    }
    let s = cache.stats();
    assert!(s.disk_bytes <= capacity, "{s:?}");
    assert!(s.evictions > 0, "{s:?}");
    let on_disk: u64 = blobs(dir.path())
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(on_disk <= capacity, "side files hold {on_disk} bytes");
    assert_eq!(
        cache.get::<_, Vec<u8>>(&11u32).unwrap().as_deref(),
        Some(&big(11, 1 << 20)),
        "the newest value is kept"
    );
}
