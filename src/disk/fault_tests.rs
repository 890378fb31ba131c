//! The disk tier under injected faults (a backend that fails writes and syncs on command):
//! nothing acknowledged is lost, no older value is exposed, and the tier comes back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::faults::Faults;
use crate::{Cache, Durability, Error, Health, Options};

fn open(dir: &std::path::Path, faults: &Arc<Faults>, durability: Durability) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(durability)
        .faults(faults.clone())
        .open()
        .expect("open")
}

/// A cache whose memory tier keeps nothing: every read goes to the disk tier.
fn open_without_memory(dir: &std::path::Path, faults: &Arc<Faults>) -> Cache {
    Cache::builder()
        .path(dir)
        .memory_capacity(1)
        .durability(Durability::Batched(Duration::from_millis(5)))
        .faults(faults.clone())
        .open()
        .expect("open")
}

#[test]
fn a_failed_commit_never_exposes_an_older_value_and_the_tier_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    {
        let cache = open_without_memory(dir.path(), &faults);
        cache.insert("a", 1u32).unwrap();
        cache.insert("b", 2u32).unwrap();
        cache.flush().unwrap();

        faults.disk_full(true);
        assert!(cache.remove("a").unwrap(), "a existed");
        cache.insert("b", 3u32).unwrap();
        cache.insert("c", 4u32).unwrap();
        assert!(cache.flush().is_err(), "the commit failed");
        assert!(matches!(
            cache.health(),
            Health::DiskOutOfService { damaged: false, .. }
        ));
        // Memory keeps nothing here, so these reads go to the disk tier: the older committed
        // records must not come back.
        assert_eq!(
            cache.get::<_, u32>("a").unwrap(),
            None,
            "removed stays removed"
        );
        assert_ne!(
            cache.get::<_, u32>("b").unwrap().as_deref(),
            Some(&2),
            "no older value"
        );
        assert!(cache.stats().disk_failures >= 1);

        faults.disk_full(false);
        // The first flush brings the tier back and reports, once, what stayed in memory.
        let first = cache.flush();
        assert!(
            matches!(&first, Err(Error::Storage { detail, .. }) if detail.contains("memory only")),
            "{first:?}"
        );
        cache.flush().expect("the tier is back");
        // Back on probation: a quiet while without failure confirms it.
        cache.insert("e", 6u32).unwrap();
        cache.flush().unwrap();
        let until = std::time::Instant::now() + super::writer::PROBATION * 3;
        while cache.health() != Health::Healthy && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(cache.health(), Health::Healthy);
        assert_eq!(cache.get::<_, u32>("a").unwrap(), None);
        assert_ne!(cache.get::<_, u32>("b").unwrap().as_deref(), Some(&2));

        cache.insert("d", 5u32).unwrap();
        cache.flush().unwrap();
    }
    let cache = open_without_memory(dir.path(), &Arc::new(Faults::default()));
    assert_eq!(cache.get::<_, u32>("a").unwrap(), None, "removal survived");
    assert_ne!(cache.get::<_, u32>("b").unwrap().as_deref(), Some(&2));
    assert_eq!(cache.get::<_, u32>("d").unwrap().as_deref(), Some(&5));
}

#[test]
fn an_immediate_insert_while_out_of_service_is_an_error_but_stays_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let cache = open(dir.path(), &faults, Durability::Immediate);
    cache.insert("k", 1u8).unwrap();
    faults.disk_full(true);
    let err = cache.insert("k", 2u8).unwrap_err();
    assert!(err.to_string().contains("out of service"), "{err}");
    assert_eq!(cache.get::<_, u8>("k").unwrap().as_deref(), Some(&2));
    // Each later write is refused quickly, without a commit per write.
    let syncs = faults.syncs.load(Ordering::SeqCst);
    for i in 0..20u8 {
        assert!(cache.insert(&i, i).is_err());
    }
    assert!(faults.syncs.load(Ordering::SeqCst) - syncs < 20);
    faults.disk_full(false);
    let _ = cache.flush();
    cache.insert("k", 3u8).expect("back in service");
    drop(cache);
    let cache = open(
        dir.path(),
        &Arc::new(Faults::default()),
        Durability::Immediate,
    );
    assert_eq!(cache.get::<_, u8>("k").unwrap().as_deref(), Some(&3));
}

#[test]
fn an_invalidation_made_while_out_of_service_is_persisted_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    {
        let cache = open(
            dir.path(),
            &faults,
            Durability::Batched(Duration::from_millis(5)),
        );
        cache
            .insert_with("k", 1u8, &Options::new().tags(["t"]))
            .unwrap();
        cache.flush().unwrap();
        faults.disk_full(true);
        cache.invalidate_tag("t").unwrap();
        assert!(cache.get::<_, u8>("k").unwrap().is_none());
        faults.disk_full(false);
        let _ = cache.flush();
        cache.flush().unwrap();
    }
    let cache = open(dir.path(), &faults, Durability::Immediate);
    assert!(
        cache.get::<_, u8>("k").unwrap().is_none(),
        "invalidation kept"
    );
}

/// The process's own disk tier (it owns the folder), whose state its writer and readers share.
fn owner_of(cache: &Cache) -> Arc<crate::process::Owner> {
    cache.inner.lower.folder().unwrap().owner().unwrap()
}

/// A reader's report of damage, as `guarded` makes it when redb panics.
fn damage() -> super::health::Failure {
    super::health::Failure {
        detail: "redb panicked: internal error: entered unreachable code".into(),
        damaged: true,
    }
}

/// A reader that was still on a damaged file when the writer replaced it reports its failure
/// after the replacement: it must not take the new file out of service (with
/// `DamagedFile::SetAside`, that set aside the fresh file and what had been written to it; it
/// also left the tier without a database and no outage on record, so the next commit failed).
#[test]
fn a_reader_failure_on_a_database_already_replaced_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let cache = open(dir.path(), &faults, Durability::Immediate);
    cache.insert("kept", 1u32).unwrap();
    let owner = owner_of(&cache);
    let shared = &owner.local.shared;
    let damaged = damage();

    // What the writer's recovery does: the file's database let go of, a new one in its place.
    let replaced = shared.db().expect("the tier's database");
    let stand_in = Arc::new(super::guard::Db::new(
        redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap(),
        None,
    ));
    let file_db = shared.set_db(Some(stand_in.clone())).unwrap();

    shared.fail_on(&replaced, damaged.clone());
    assert!(cache.health().is_healthy(), "{:?}", cache.health());
    assert!(
        shared.db().is_some_and(|db| Arc::ptr_eq(&db, &stand_in)),
        "the new database stays in place"
    );

    // The same failure on the tier's current database takes it out of service.
    shared.set_db(Some(file_db));
    drop(replaced);
    let current = shared.db().unwrap();
    shared.fail_on(&current, damaged);
    drop(current);
    assert!(matches!(
        cache.health(),
        Health::DiskOutOfService { damaged: true, .. }
    ));
    assert!(shared.db().is_none(), "a damaged file is not read again");
}

/// Damage found while the disk is full: each failed attempt to come back left a fresh file,
/// which the next attempt set aside too (one damage, several `damaged-*` files).
#[test]
fn damage_found_while_the_disk_is_full_sets_one_file_aside() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Immediate)
        .on_damaged_file(crate::DamagedFile::SetAside)
        .faults(faults.clone())
        .open()
        .unwrap();
    for i in 0..200u32 {
        cache
            .insert(&i, format!("value {i} {}", "x".repeat(100)))
            .unwrap();
    }
    let owner = owner_of(&cache);
    let shared = &owner.local.shared;
    faults.disk_full(true);
    let current = shared.db().unwrap();
    shared.fail_on(&current, damage());
    drop(current);
    for _ in 0..6 {
        assert!(cache.flush().is_err(), "the disk is full");
    }
    faults.disk_full(false);
    let back = (0..50).any(|_| {
        let ok = cache.flush().is_ok() && cache.health().is_healthy();
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(back, "{:?}", cache.health());
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tiered.redb.damaged-")
        })
        .map(|e| e.metadata().unwrap().len())
        .collect();
    assert_eq!(aside.len(), 1, "one damage, one file set aside: {aside:?}");
    assert!(
        aside[0] > 10_000,
        "the damaged file is the one kept: {aside:?}"
    );
}
