//! The sweeper: what it writes, what it deletes, and which generation rows it forgets.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redb::ReadableTableMetadata;

use super::faults::Faults;
use super::sweep::Sweeper;
use super::tables::GENERATIONS;
use crate::{Cache, ManualClock, Options};

/// Runs one whole sweep pass on the cache's disk tier, here and now.
fn sweep(cache: &Cache) {
    let owner = cache.inner.lower.folder().unwrap().owner().unwrap();
    let disk = &owner.local;
    let mut sweeper = Sweeper::new(Duration::from_secs(3600));
    while sweeper.active() {
        sweeper.step(&disk.shared).unwrap();
    }
}

fn generation_rows(cache: &Cache) -> u64 {
    let owner = cache.inner.lower.folder().unwrap().owner().unwrap();
    let disk = &owner.local;
    disk.shared
        .read(|txn| Ok(txn.open_table(GENERATIONS)?.len()?))
        .unwrap()
}

#[test]
fn a_sweep_over_live_records_writes_nothing_and_deletes_dead_ones() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let cache = Cache::builder()
        .path(dir.path())
        .clock(clock.clone())
        .faults(faults.clone())
        .open()
        .unwrap();
    for i in 0..600u32 {
        let opts = if i % 2 == 0 {
            Options::new()
        } else {
            Options::new().ttl(Duration::from_secs(60))
        };
        cache.insert_with(&i, i, &opts).unwrap();
    }
    cache.flush().unwrap();
    let writes = faults.writes.load(Ordering::SeqCst);
    sweep(&cache);
    assert_eq!(
        faults.writes.load(Ordering::SeqCst),
        writes,
        "a pass over live records"
    );
    clock.advance(Duration::from_secs(61));
    sweep(&cache);
    assert!(
        faults.writes.load(Ordering::SeqCst) > writes,
        "dead records deleted"
    );
    assert_eq!(cache.stats().entries, 300);
}

#[test]
fn generation_rows_of_cleared_namespaces_do_not_accumulate() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = Cache::open(dir.path()).unwrap();
        for i in 0..50 {
            let session = cache.namespace(format!("session/{i}"));
            session.insert("k", 1u8).unwrap();
            session.clear().unwrap();
        }
        cache.invalidate_tag("once").unwrap();
        cache.flush().unwrap();
        assert!(generation_rows(&cache) >= 51);
        sweep(&cache);
        assert!(
            generation_rows(&cache) <= 1,
            "rows left: {}",
            generation_rows(&cache)
        );
        // Cleared entries stay cleared in this process.
        assert!(cache
            .namespace("session/3")
            .get::<_, u8>("k")
            .unwrap()
            .is_none());
        // A namespace used again writes its row back with the record.
        cache.namespace("session/5").insert("k2", 2u8).unwrap();
        cache.flush().unwrap();
    }
    let cache = Cache::open(dir.path()).unwrap();
    assert!(
        cache
            .namespace("session/3")
            .get::<_, u8>("k")
            .unwrap()
            .is_none(),
        "no revival"
    );
    assert_eq!(
        cache
            .namespace("session/5")
            .get::<_, u8>("k2")
            .unwrap()
            .as_deref(),
        Some(&2),
        "an entry written after its row was forgotten survives the restart"
    );
}

#[test]
fn a_record_stamped_before_an_invalidation_never_lands() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let opts = Options::new().tags(["t"]);
    // Stamp as an insert would, then invalidate, then store: the writer must not keep it.
    let scope = cache.inner.root.clone();
    let stamp = cache.inner.stamp(&scope, &opts.merged(&Options::new()));
    cache.invalidate_tag("t").unwrap();
    let ek = crate::key::encode_key(&scope.name, "k").unwrap();
    let meta = crate::record::Meta::for_test();
    let record = crate::record::encode(&meta, &stamp, &ek.bytes, b"\x01");
    let owner = cache.inner.lower.folder().unwrap().owner().unwrap();
    let disk = &owner.local;
    disk.put(ek.digest, record, disk.reserve(0)).wait().unwrap();
    cache.flush().unwrap();
    assert_eq!(cache.stats().entries, 0, "the stale record was not stored");
}

#[test]
fn the_sweeper_judges_idle_records_by_read_times_not_yet_written() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let open = || {
        Cache::builder()
            .path(dir.path())
            .clock(clock.clone())
            .open()
            .unwrap()
    };
    {
        let cache = open();
        for i in 0..300u32 {
            let opts = Options::new().idle(Duration::from_secs(10));
            cache.insert_with(&i, i, &opts).unwrap();
        }
    }
    clock.advance(Duration::from_secs(8));
    let cache = open();
    // Read from disk: the read times wait for the writer's next commit.
    for i in 0..300u32 {
        assert!(cache.get::<_, u32>(&i).unwrap().is_some());
    }
    clock.advance(Duration::from_secs(4)); // 12 s after the insert, 4 s after the read
    sweep(&cache);
    assert_eq!(
        cache.stats().entries,
        300,
        "read 4 s ago with a 10 s idle limit: alive"
    );
}

/// Issue 14, item 1: a client writes its side file, then sends the put; when the owner
/// changes in between, the next owner found the file in the folder at open and its first
/// sweep pass deleted it (no record referenced it yet). A live writer's file is pinned now;
/// a crash's leftover (no process pins it) still goes at the first pass.
#[test]
fn a_side_file_pinned_by_a_live_writer_survives_the_first_pass_of_a_new_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (on_its_way, _pin) = super::blobs::write(dir.path(), &[1u8; 100_000]).unwrap();
    let (leftover, pin) = super::blobs::write(dir.path(), &[2u8; 100_000]).unwrap();
    drop(pin); // its writer died
    let cache = Cache::open(dir.path()).unwrap();
    let owner = cache.inner.lower.folder().unwrap().owner().unwrap();
    let mut sweeper = Sweeper::new(Duration::from_secs(3600));
    sweeper.preexisting = super::blobs::list(dir.path());
    while sweeper.active() {
        sweeper.step(&owner.local.shared).unwrap();
    }
    assert!(
        super::blobs::present(dir.path(), &on_its_way),
        "the pinned side file of a put on its way was deleted"
    );
    assert!(
        !super::blobs::present(dir.path(), &leftover),
        "a crash's leftover stays after the first whole pass"
    );
}

/// Issue 14, item 1: a client's put sent again to the next owner after the last one had
/// committed it was applied twice; the second application counted the record it replaced
/// (itself) as gone and deleted its side file: `get` missed and `explain` said hit.
#[test]
fn a_put_applied_twice_keeps_its_side_file() {
    let dir = tempfile::tempdir().unwrap();
    let value = vec![7u8; 100_000];
    {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert(&1u32, value.clone()).unwrap();
        cache.flush().unwrap();
        let owner = cache.inner.lower.folder().unwrap().owner().unwrap();
        let digest = crate::key::encode_key(&crate::key::ScopeName::root(), &1u32)
            .unwrap()
            .digest;
        let stored = owner.local.read(digest).unwrap().bytes.to_vec();
        let reservation = owner.local.reserve(stored.len());
        owner.local.put(digest, stored, reservation).wait().unwrap();
        cache.flush().unwrap();
    }
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(
        cache.get::<_, Vec<u8>>(&1u32).unwrap().as_deref(),
        Some(&value)
    );
}
