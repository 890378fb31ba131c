//! Side files and the room held for them, through every way a large write can end: stored,
//! overtaken by an invalidation, failed, refused as too large, imported; and caches in
//! memory only, which encode nothing. (These paths go through `tiers::Lower::stage`,
//! `reserve` and `unstage`: a leaked room would make the next large write wait for good.)

#![cfg(feature = "testing-faults")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tiered::{Cache, Durability, Faults, Health, Options};

fn blobs(dir: &Path) -> Vec<PathBuf> {
    common::files_starting_with(&dir.join("blobs"), "")
}

fn big(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// 4 MiB of disk: a side-file limit of 1 MiB (backlog.rs).
fn small_folder(dir: &Path, faults: Option<Arc<Faults>>) -> Cache {
    let mut b = Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .disk_capacity(4 << 20)
        .warm_restart(0);
    if let Some(f) = faults {
        b = b.faults(f);
    }
    b.open().unwrap()
}

/// Runs `f` on a thread; panics if it does not finish within `secs` (a leaked side-file
/// room would make the next large insert wait forever).
fn within(secs: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: did not finish in {secs}s (room leaked?)"));
}

#[test]
fn overtaken_large_values_delete_their_side_file_and_give_back_their_room() {
    let dir = common::tempdir();
    let cache = small_folder(dir.path(), None);
    let tagged = Options::new().tags(["t"]);
    for i in 0..12u32 {
        let inside = cache.clone();
        let v = cache
            .get_or_insert_with(&i, &tagged, || {
                inside.invalidate_tag("t").unwrap();
                big(i as u8, 700 << 10)
            })
            .unwrap();
        assert_eq!(v.len(), 700 << 10);
    }
    assert_eq!(
        blobs(dir.path()),
        Vec::<PathBuf>::new(),
        "side files left behind"
    );
    let c = cache.clone();
    within(20, "a large insert after overtaken ones", move || {
        for i in 0..4u8 {
            c.insert(&format!("after{i}"), big(i, 900 << 10)).unwrap();
        }
    });
    cache.flush().unwrap();
    assert_eq!(blobs(dir.path()).len(), 4);
}

#[test]
fn failed_side_files_give_back_their_room() {
    let dir = common::tempdir();
    let faults = Arc::new(Faults::default());
    let cache = small_folder(dir.path(), Some(faults.clone()));
    faults.side_files_fail(true);
    let c = cache.clone();
    within(20, "failed large inserts", move || {
        for i in 0..8u8 {
            let e = c.insert(&i, big(i, 900 << 10)).unwrap_err();
            assert!(matches!(e, tiered::Error::Io { .. }), "{e}");
        }
    });
    faults.side_files_fail(false);
    let c = cache.clone();
    within(20, "a large insert after failed ones", move || {
        for i in 0..4u8 {
            c.insert(&format!("after{i}"), big(i, 900 << 10)).unwrap();
        }
    });
    assert_eq!(blobs(dir.path()).len(), 4);
    // Overwrites: the replaced files go with the commit that replaces their record.
    for i in 0..4u8 {
        cache
            .insert(&format!("after{i}"), big(i + 1, 900 << 10))
            .unwrap();
    }
    cache.flush().unwrap();
    assert!(common::eventually(10, || blobs(dir.path()).len() == 4));
}

#[test]
fn too_large_is_refused_before_any_side_file() {
    let dir = common::tempdir();
    let cache = small_folder(dir.path(), None);
    let e = cache.insert("huge", big(1, 5 << 20)).unwrap_err();
    assert!(
        matches!(e, tiered::Error::TooLarge { capacity, .. } if capacity == 4 << 20),
        "{e}"
    );
    assert!(blobs(dir.path()).is_empty());
    // And the import path.
    let src = common::tempdir();
    let source = Cache::open(src.path()).unwrap();
    source.insert("huge", big(1, 5 << 20)).unwrap();
    let mut stream = Vec::new();
    source.export(&mut stream).unwrap();
    let e = cache.import(&stream[..]).unwrap_err();
    assert!(matches!(e, tiered::Error::TooLarge { .. }), "{e}");
    assert!(blobs(dir.path()).is_empty());
    let c = cache.clone();
    within(20, "an insert after refused ones", move || {
        c.insert("ok", big(2, 900 << 10)).unwrap();
    });
}

#[test]
fn imports_of_large_values_give_back_their_room() {
    let src = common::tempdir();
    let source = Cache::open(src.path()).unwrap();
    for i in 0..6u8 {
        source.insert(&i, big(i, 900 << 10)).unwrap();
    }
    let mut stream = Vec::new();
    assert_eq!(source.export(&mut stream).unwrap(), 6);
    let dir = common::tempdir();
    let cache = small_folder(dir.path(), None);
    let c = cache.clone();
    within(30, "imports", move || {
        for _ in 0..3 {
            assert_eq!(c.import(&stream[..]).unwrap(), 6);
        }
        c.insert("after", big(9, 900 << 10)).unwrap();
    });
    cache.flush().unwrap();
    assert!(common::eventually(10, || blobs(dir.path()).len() <= 7));
    assert_eq!(
        cache.get::<_, Vec<u8>>(&3u8).unwrap().as_deref(),
        Some(&big(3, 900 << 10))
    );
}

/// A value whose `Serialize` and `Deserialize` always fail.
struct Unencodable;
impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no"))
    }
}
impl<'de> Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(_d: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("no"))
    }
}

#[test]
fn memory_only_caches_encode_nothing_and_answer_as_before() {
    for cache in [Cache::in_memory(), Cache::builder().open().unwrap()] {
        cache.insert("u", Unencodable).unwrap();
        assert!(cache.get::<_, Unencodable>("u").unwrap().is_some());
        cache.insert("big", big(1, 2 << 20)).unwrap();
        cache
            .insert_with("short", 1u8, &Options::new().ttl(Duration::ZERO))
            .unwrap();
        let v = cache
            .get_or_insert_with("f", &Options::new(), || 5u32)
            .unwrap();
        assert_eq!(*v, 5);
        let s = cache.stats();
        assert_eq!(s.entries, 3, "{s:?}");
        assert_eq!(s.disk_bytes, 0);
        assert_eq!(s.disk_hits, 0);
        assert!(
            matches!(cache.health(), Health::Healthy),
            "{:?}",
            cache.health()
        );
        cache.compact().unwrap();
        cache.flush().unwrap();
        assert_eq!(cache.clear_expired().unwrap(), 0);
        assert_eq!(cache.owner_pid(), None);
        assert!(format!("{cache:?}").contains("memory only"));
        let mut out = Vec::new();
        assert_eq!(cache.export(&mut out).unwrap(), 0);
        assert!(cache.remove("big").unwrap());
        assert!(!cache.remove("big").unwrap());
        cache.invalidate_tag("x").unwrap();
        cache.clear().unwrap();
        assert_eq!(cache.stats().entries, 0);
    }
}

#[test]
fn a_large_import_into_memory_reads_back() {
    let src = common::tempdir();
    let source = Cache::open(src.path()).unwrap();
    source.insert("big", big(4, 1 << 20)).unwrap();
    let mut stream = Vec::new();
    source.export(&mut stream).unwrap();
    let cache = Cache::in_memory();
    assert_eq!(cache.import(&stream[..]).unwrap(), 1);
    assert_eq!(
        cache.get::<_, Vec<u8>>("big").unwrap().as_deref(),
        Some(&big(4, 1 << 20))
    );
    assert_eq!(cache.stats().entries, 1);
}
