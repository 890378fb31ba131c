//! The engine's rules over a stand-in tier below memory (`tiers/stand_in.rs`): what another
//! process or machine does is played by the stand-in at the worst moment, without a folder.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::tiers::stand_in::StandIn;
use crate::{Cache, Options};

/// A cache over a fresh stand-in, which checks that writes come under the key's lock.
fn over_stand_in() -> (Cache, Arc<StandIn>) {
    let stand_in = Arc::new(StandIn::default());
    let cache = Cache::builder().open_over_tier(Box::new(stand_in.clone()));
    let _ = stand_in.stripes.set(cache.inner.stripes.clone());
    (cache, stand_in)
}

fn digest(cache: &Cache, key: &str) -> u128 {
    crate::key::encode_key(&cache.inner.root.name, key)
        .unwrap()
        .digest
}

fn get(cache: &Cache, key: &str) -> Option<String> {
    cache.get::<_, String>(key).unwrap().map(|v| (*v).clone())
}

#[test]
fn a_read_does_not_promote_what_a_write_made_meanwhile_replaced() {
    let (cache, stand_in) = over_stand_in();
    cache.insert("k", "old".to_string()).unwrap();
    cache.inner.memory.clear();
    // The write lands while the read's answer is on its way.
    let writer = cache.clone();
    *crate::disk::lock(&stand_in.after_read) = Some(Box::new(move || {
        writer.insert("k", "new".to_string()).unwrap();
    }));
    assert_eq!(get(&cache, "k").as_deref(), Some("old"), "what was read");
    assert_eq!(
        get(&cache, "k").as_deref(),
        Some("new"),
        "the read promoted the value the write replaced"
    );
}

#[test]
fn losing_contact_drops_shared_values_and_keeps_memory_only_ones() {
    let (cache, stand_in) = over_stand_in();
    cache.insert("shared", "s".to_string()).unwrap();
    let only = Options::new().memory_only();
    cache.insert_with("only", "m".to_string(), &only).unwrap();
    stand_in.above().lost_contact();
    let memory = &cache.inner.memory;
    assert!(memory.get(digest(&cache, "shared")).is_none());
    assert!(memory.get(digest(&cache, "only")).is_some());
    assert_eq!(get(&cache, "only").as_deref(), Some("m"));
    // Read again from the tier below.
    assert_eq!(get(&cache, "shared").as_deref(), Some("s"));
    assert_eq!(cache.stats().disk_hits, 1);
}

#[test]
fn a_forgotten_key_is_not_joined_to_the_computation_running_for_it() {
    let (cache, stand_in) = over_stand_in();
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let first = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache
                .get_or_insert_with("k", &Options::new(), || {
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    "first".to_string()
                })
                .map(|v| (*v).clone())
        })
    };
    started.recv().unwrap();
    // Another process wrote the key: a caller from now on must not get the running value.
    stand_in.above().forget(digest(&cache, "k"));
    let (done_tx, done) = mpsc::channel();
    {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let v = cache.get_or_insert_with("k", &Options::new(), || "second".to_string());
            let _ = done_tx.send(v.map(|v| (*v).clone()));
        });
    }
    // A bound, not a timing goal: a joined caller would wait for `go` forever.
    let second = done.recv_timeout(Duration::from_secs(30));
    go.send(()).unwrap();
    assert_eq!(
        second
            .expect("the second caller joined the forgotten computation")
            .unwrap(),
        "second"
    );
    assert_eq!(first.join().unwrap().unwrap(), "first");
}

#[test]
fn a_value_stored_elsewhere_before_the_lease_is_used_instead_of_computing() {
    let (cache, stand_in) = over_stand_in();
    cache.insert("k", "stored".to_string()).unwrap();
    let d = digest(&cache, "k");
    let record = stand_in.take(d).unwrap();
    cache.inner.memory.clear();
    // Misses on every read, then another process stores it just before the lease is asked.
    *crate::disk::lock(&stand_in.stored_before_lease) = Some((d, record));
    let ran = AtomicBool::new(false);
    let v = cache
        .get_or_insert_with("k", &Options::new(), || {
            ran.store(true, Ordering::Relaxed);
            "computed".to_string()
        })
        .unwrap();
    assert_eq!(*v, "stored");
    assert!(
        !ran.load(Ordering::Relaxed),
        "computed although the lease found the value"
    );
    assert_eq!(stand_in.calls.leases.load(Ordering::Relaxed), 1);
}

#[test]
fn a_value_an_invalidation_overtook_is_not_stored_below() {
    let (cache, stand_in) = over_stand_in();
    let opts = Options::new().tags(["t"]);
    let inside = cache.clone();
    let v = cache
        .get_or_insert_with("k", &opts, || {
            inside.invalidate_tag("t").unwrap();
            "computed".to_string()
        })
        .unwrap();
    assert_eq!(*v, "computed", "its caller still gets it");
    assert_eq!(stand_in.calls.puts.load(Ordering::Relaxed), 0);
    assert!(stand_in.record(digest(&cache, "k")).is_none());
    assert_eq!(get(&cache, "k"), None);
}

#[test]
fn writes_below_memory_come_inside_the_key_lock() {
    let (cache, stand_in) = over_stand_in();
    let expiring = Options::new().ttl(Duration::ZERO);
    for i in 0..50 {
        let key = format!("k{i}");
        cache.insert(&key, i).unwrap();
        cache
            .get_or_insert_with(&format!("f{i}"), &Options::new(), || i)
            .unwrap();
        cache.insert_with(&format!("e{i}"), i, &expiring).unwrap();
        cache.remove(&key).unwrap();
    }
    cache.clear_expired().unwrap();
    let calls = &stand_in.calls;
    assert!(calls.puts.load(Ordering::Relaxed) >= 100);
    assert!(calls.removes.load(Ordering::Relaxed) >= 50);
    assert_eq!(calls.unlocked_writes.load(Ordering::Relaxed), 0);
}

#[test]
fn generations_raised_elsewhere_free_memory_only_entries_at_once() {
    let (cache, stand_in) = over_stand_in();
    let opts = Options::new().tags(["t"]).memory_only();
    cache.insert_with("k", "v".to_string(), &opts).unwrap();
    // Another process invalidated the tag; the tier raised it in the cache's generations.
    cache.inner.gens.bump(&crate::generations::tag_label("t"));
    stand_in.above().generations_changed();
    assert!(cache.inner.memory.get(digest(&cache, "k")).is_none());
}

#[test]
fn the_discard_of_a_dead_record_comes_inside_the_key_lock() {
    let clock = Arc::new(crate::ManualClock::new(std::time::SystemTime::now()));
    let stand_in = Arc::new(StandIn::default());
    let cache = Cache::builder()
        .clock(clock.clone())
        .open_over_tier(Box::new(stand_in.clone()));
    let _ = stand_in.stripes.set(cache.inner.stripes.clone());
    let ttl = Options::new().ttl(Duration::from_secs(60));
    cache.insert_with("a", 1u32, &ttl).unwrap();
    cache.inner.memory.clear();
    clock.advance(Duration::from_secs(61));
    // A read of an expired record drops it: a discard.
    assert!(cache.get::<_, u32>("a").unwrap().is_none());
    assert!(
        stand_in.record(digest(&cache, "a")).is_none(),
        "not discarded"
    );
    assert_eq!(stand_in.calls.unlocked_writes.load(Ordering::Relaxed), 0);
}

#[test]
fn the_lease_is_held_until_the_value_is_stored_and_given_back_after() {
    let (cache, stand_in) = over_stand_in();
    let held = stand_in.leases_held.clone();
    let v = cache
        .get_or_insert_with("k", &Options::new(), || {
            assert_eq!(held.load(Ordering::SeqCst), 1, "no lease while computing");
            7u32
        })
        .unwrap();
    assert_eq!(*v, 7);
    assert_eq!(stand_in.calls.puts.load(Ordering::Relaxed), 1);
    assert_eq!(
        stand_in.held_at_put.load(Ordering::SeqCst),
        1,
        "the lease was given back before the value was stored"
    );
    assert_eq!(
        held.load(Ordering::SeqCst),
        0,
        "the lease was not given back"
    );
}

#[test]
fn a_value_an_invalidation_overtook_gives_back_what_it_staged() {
    let (cache, stand_in) = over_stand_in();
    let opts = Options::new().tags(["t"]);
    let inside = cache.clone();
    cache
        .get_or_insert_with("o", &opts, || {
            inside.invalidate_tag("t").unwrap();
            vec![1u8; 4096]
        })
        .unwrap();
    assert_eq!(stand_in.unstaged.load(Ordering::SeqCst), 1, "not unstaged");
    assert_eq!(
        stand_in.kept.load(Ordering::SeqCst),
        0,
        "what it staged is still kept"
    );
    assert_eq!(stand_in.calls.unlocked_writes.load(Ordering::Relaxed), 0);
}

#[test]
fn what_a_tier_keeps_for_a_staged_value_outlives_the_wait_for_its_put() {
    let (cache, stand_in) = over_stand_in();
    cache.insert("big", vec![7u8; 4096]).unwrap();
    assert_eq!(*crate::disk::lock(&stand_in.kept_at_wait), vec![1]);
    assert_eq!(
        stand_in.kept.load(Ordering::SeqCst),
        0,
        "kept after the store"
    );
}

#[test]
fn what_a_tier_keeps_for_an_imported_value_outlives_the_wait_for_its_put() {
    let (source, _) = over_stand_in();
    source.insert("big", vec![7u8; 4096]).unwrap();
    let mut stream = Vec::new();
    assert_eq!(source.export(&mut stream).unwrap(), 1);
    let (cache, stand_in) = over_stand_in();
    assert_eq!(cache.import(&stream[..]).unwrap(), 1);
    assert_eq!(*crate::disk::lock(&stand_in.kept_at_wait), vec![1]);
    assert_eq!(stand_in.kept.load(Ordering::SeqCst), 0);
    assert_eq!(
        cache.get::<_, Vec<u8>>("big").unwrap().map(|v| v.len()),
        Some(4096)
    );
}

#[test]
fn a_read_in_flight_when_changes_were_missed_does_not_keep_what_it_read() {
    let (cache, stand_in) = over_stand_in();
    cache.insert("k", "v".to_string()).unwrap();
    cache.inner.memory.clear();
    // The tier finds it missed changes while the read's answer is on its way (the answer
    // may be older than what it missed).
    let tier = stand_in.clone();
    *crate::disk::lock(&stand_in.after_read) =
        Some(Box::new(move || tier.above().missed_changes()));
    assert_eq!(get(&cache, "k").as_deref(), Some("v"));
    let before = cache.stats().disk_hits;
    assert_eq!(get(&cache, "k").as_deref(), Some("v"));
    assert_eq!(
        cache.stats().disk_hits,
        before + 1,
        "the read kept its answer in memory"
    );
}
