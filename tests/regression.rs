//! One test per bug found by review (and probes that did not find one, kept as regressions):
//! each tries to break one promise of `docs/guide.md` through the public API.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tiered::{Cache, Durability, Options};

use common::{race, GatedClock};

// ---- remove's answer against a concurrent write ----

/// `remove` decides "did a live entry exist" before it takes the key's lock. An expired entry
/// is judged dead, a fresh insert lands and returns, and then `remove` deletes that fresh value
/// while answering `false`: no order of the two calls explains both outcomes.
#[test]
fn remove_that_deletes_a_live_value_says_it_existed() {
    let dir = common::tempdir();
    let clock = GatedClock::new();
    let cache = common::open(dir.path(), &clock);
    cache
        .insert_with("k", 1u32, &Options::new().ttl(Duration::from_secs(1)))
        .unwrap();
    clock.0.advance(Duration::from_secs(2)); // the entry is now expired
    let c = cache.clone();
    let removed = race(
        move || c.remove("k").unwrap(),
        || cache.insert("k", 2u32).unwrap(),
    );
    let after = cache.get::<_, u32>("k").unwrap();
    assert!(
        removed || after.as_deref() == Some(&2),
        "remove answered {removed} (no live entry) yet the acknowledged insert of 2 is gone \
         (get = {after:?})"
    );
}

/// Two removes of one live entry: only one of them can have removed it.
#[test]
fn two_concurrent_removes_of_one_entry_report_it_once() {
    let dir = common::tempdir();
    let clock = GatedClock::new();
    let cache = common::open(dir.path(), &clock);
    // An expiry makes the memory probe read the clock: that is where the first remove pauses.
    cache
        .insert_with("k", 1u32, &Options::new().ttl(Duration::from_secs(3600)))
        .unwrap();
    let c = cache.clone();
    let mut second = None;
    let first = race(
        move || c.remove("k").unwrap(),
        || second = Some(cache.remove("k").unwrap()),
    );
    let second = second.unwrap();
    assert!(
        !(first && second),
        "both removes reported removing the one live entry"
    );
}

// ---- back-pressure and long batch windows ----

/// Opens a batched cache, queues one insert (the writer opens its batch and parks for the
/// window), then inserts `n` more on a thread; returns whether they all returned within `limit`.
fn inserts_after_a_batch_opened_finish_within(
    window: Duration,
    n: u32,
    limit: Duration,
) -> Result<Duration, String> {
    let dir = common::tempdir();
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Batched(window))
        .open()
        .unwrap();
    cache.insert("first", 0u64).unwrap();
    thread::sleep(Duration::from_millis(200)); // the batch is open, the writer parked
    let c = cache.clone();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let t = Instant::now();
        let mut worst = Duration::ZERO;
        for i in 0..n {
            let s = Instant::now();
            c.insert(&i, u64::from(i)).unwrap();
            worst = worst.max(s.elapsed());
        }
        let _ = tx.send((t.elapsed(), worst));
    });
    match rx.recv_timeout(limit) {
        Ok((total, worst)) if worst < limit => Ok(total),
        Ok((total, worst)) => Err(format!("total {total:?}, one insert waited {worst:?}")),
        Err(_) => Err(format!("{n} inserts did not return within {limit:?}")),
    }
}

/// A liveness bound, not a timing goal: the bugs below stall for the whole window (an hour) or
/// for five seconds per 1,024 inserts (over a minute for 20,000); a slow machine takes seconds.
const LIVENESS: Duration = Duration::from_secs(60);

/// `Batched(Duration::MAX)`: inserts that fill the queue must wake the writer parked in its
/// batch. (Before the fix, each 1,025th insert waited out the writer's 5 s park.)
#[test]
fn batched_max_window_inserts_never_stall_for_seconds() {
    if let Err(e) = inserts_after_a_batch_opened_finish_within(Duration::MAX, 20_000, LIVENESS) {
        panic!("Batched(Duration::MAX): {e}");
    }
}

/// `Batched(1 h)`: the queue's limit is reached long before the window closes; an insert that
/// must wait for room wakes the writer instead of waiting for the rest of the window.
#[test]
fn a_long_batch_window_does_not_block_inserts_for_the_window() {
    if let Err(e) =
        inserts_after_a_batch_opened_finish_within(Duration::from_secs(3600), 2_000, LIVENESS)
    {
        panic!("Batched(1 h): {e}");
    }
}

/// A record larger than the queue's byte budget is admitted only when the queue is empty; a
/// steady stream of small inserts from another thread must not keep it out for ever.
#[test]
fn a_record_larger_than_the_byte_budget_is_not_starved_by_small_inserts() {
    let dir = common::tempdir();
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Batched(Duration::from_millis(50)))
        .open()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (c, stop) = (cache.clone(), stop.clone());
        thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                c.insert(&("small", i % 10_000), "x".repeat(200)).unwrap();
                i += 1;
            }
            i
        })
    };
    thread::sleep(Duration::from_millis(500)); // the writer has been measured
    let big = "y".repeat(8 << 20);
    let (tx, rx) = mpsc::channel();
    {
        let c = cache.clone();
        thread::spawn(move || {
            let t = Instant::now();
            c.insert("big", big).unwrap();
            let _ = tx.send(t.elapsed());
        });
    }
    let got = rx.recv_timeout(LIVENESS);
    stop.store(true, Ordering::Relaxed);
    let n = producer.join().unwrap();
    assert!(
        got.is_ok(),
        "an 8 MiB insert did not return within {LIVENESS:?} while {n} small inserts went through"
    );
}

// ---- keys ----

/// Two equal `HashMap`s (same entries, different hasher seeds, so different iteration order)
/// as keys: the guide says keys are equal when their serde data is; a user reading "equal"
/// expects one entry.
#[test]
fn equal_hashmaps_as_keys_name_one_entry() {
    let cache = Cache::in_memory();
    let a: HashMap<u32, u32> = (0..64).map(|i| (i, i)).collect();
    let b: HashMap<u32, u32> = (0..64).rev().map(|i| (i, i)).collect();
    assert_eq!(a, b);
    let order_differs = a.keys().ne(b.keys());
    cache.insert(&a, 1u8).unwrap();
    assert_eq!(
        cache.get::<_, u8>(&b).unwrap().as_deref(),
        Some(&1),
        "an equal HashMap names another entry (iteration orders differ: {order_differs})"
    );
}

// ---- values ----

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(untagged)]
enum Wide {
    Big { n: u128 },
    Text(String),
}

/// A u128 inside an untagged enum (serde_json cannot carry it either, so this is no promise
/// of the JSON rule): insert must refuse it naming the type, or it must read back after a
/// restart; never a silent miss.
#[test]
fn a_u128_in_an_untagged_enum_is_refused_or_round_trips() {
    let v = Wide::Big { n: 5 };
    let dir = common::tempdir();
    let put = {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert("w", Wide::Big { n: 5 })
    };
    match put {
        Err(e) => {
            println!("refused: {e}");
            assert!(
                e.to_string().contains("Wide"),
                "refused without the type: {e}"
            );
        }
        Ok(()) => {
            println!("accepted");
            let cache = Cache::open(dir.path()).unwrap();
            assert_eq!(cache.get::<_, Wide>("w").unwrap().as_deref(), Some(&v));
        }
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Unit;

/// `Option<()>` and a unit struct, stored and read after a restart.
#[test]
fn unit_like_values_round_trip_through_a_restart() {
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert("some", Some(())).unwrap();
        cache.insert("none", None::<()>).unwrap();
        cache.insert("unit", Unit).unwrap();
    }
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(
        cache.get::<_, Option<()>>("some").unwrap().as_deref(),
        Some(&Some(()))
    );
    assert_eq!(
        cache.get::<_, Option<()>>("none").unwrap().as_deref(),
        Some(&None)
    );
    assert_eq!(
        cache.get::<_, Unit>("unit").unwrap().as_deref(),
        Some(&Unit)
    );
}

// ---- label GC across sweeps and restarts ----

/// A namespace and a tag are cleared, the sweeper deletes their records and (at the end of the
/// pass) their generation rows; entries written afterwards under the same names must survive a
/// restart, and nothing cleared may come back, through several rounds.
#[test]
fn entries_written_after_their_labels_were_forgotten_survive_restarts_and_cleared_ones_stay_gone() {
    let dir = common::tempdir();
    let open = || {
        Cache::builder()
            .path(dir.path())
            .durability(Durability::Immediate)
            .open()
            .unwrap()
    };
    let tagged = Options::new().tags(["t"]);
    for round in 0..3u32 {
        {
            let cache = open();
            let ns = cache.namespace("s");
            // Whatever the last round left must be readable now.
            if round > 0 {
                assert_eq!(
                    ns.get::<_, u32>(&("after", round - 1)).unwrap().as_deref(),
                    Some(&(round - 1)),
                    "round {round}: an entry written after the clear was lost"
                );
                assert_eq!(
                    cache
                        .get::<_, u32>(&("tag-after", round - 1))
                        .unwrap()
                        .as_deref(),
                    Some(&(round - 1)),
                    "round {round}: a tagged entry written after the invalidation was lost"
                );
            }
            for old in 0..=round {
                assert!(
                    ns.get::<_, u32>(&("before", old)).unwrap().is_none(),
                    "round {round}: a cleared entry came back"
                );
                assert!(
                    cache.get::<_, u32>(&("tag-before", old)).unwrap().is_none(),
                    "round {round}: an invalidated entry came back"
                );
            }
            // Remove what the last round left, so that nothing uses the labels any more.
            ns.remove(&("after", round.wrapping_sub(1))).unwrap();
            cache.remove(&("tag-after", round.wrapping_sub(1))).unwrap();
            ns.insert(&("before", round), round).unwrap();
            cache
                .insert_with(&("tag-before", round), round, &tagged)
                .unwrap();
            ns.clear().unwrap();
            cache.invalidate_tag("t").unwrap();
            // The pass the invalidations started deletes the stale records, then the rows.
            assert!(
                common::eventually(10, || cache.stats().entries == 0),
                "round {round}: the sweeper did not delete the stale records"
            );
            thread::sleep(Duration::from_millis(300));
            ns.insert(&("after", round), round).unwrap();
            cache
                .insert_with(&("tag-after", round), round, &tagged)
                .unwrap();
            assert_eq!(
                ns.get::<_, u32>(&("after", round)).unwrap().as_deref(),
                Some(&round)
            );
        }
        // Restart: a second cache on the folder right after (another sweep at open).
        let cache = open();
        assert_eq!(
            cache
                .namespace("s")
                .get::<_, u32>(&("after", round))
                .unwrap()
                .as_deref(),
            Some(&round),
            "round {round}: lost after a restart"
        );
        assert!(
            cache
                .namespace("s")
                .get::<_, u32>(&("before", round))
                .unwrap()
                .is_none(),
            "round {round}: the cleared entry came back after a restart"
        );
    }
}
