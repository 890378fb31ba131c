//! The async front (feature `tokio`): one computation per key across tasks and threads, disk
//! work off the executor, cancellation, deadlocks refused, invalidations respected.
#![cfg(feature = "tokio")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tiered::{AsyncCache, Cache, Durability, Error, Options};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn tasks_and_threads_asking_for_one_missing_key_compute_once() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let rt = runtime();
    let opts = Options::new();

    // The leader: a task whose computation waits until every other caller is waiting.
    let leader = {
        let (cache, runs, mut released) = (cache.to_async(), runs.clone(), released.clone());
        let opts = opts.clone();
        rt.spawn(async move {
            cache
                .get_or_insert_with(&"k", &opts, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|r| *r).await;
                    "computed once".to_string()
                })
                .await
        })
    };
    while runs.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (cache, runs, opts) = (cache.to_async(), runs.clone(), opts.clone());
            rt.spawn(async move {
                cache
                    .get_or_insert_with(&"k", &opts, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        "computed twice".to_string()
                    })
                    .await
            })
        })
        .collect();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, runs, opts) = (cache.clone(), runs.clone(), opts.clone());
            std::thread::spawn(move || {
                cache.get_or_insert_with(&"k", &opts, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    "computed twice".to_string()
                })
            })
        })
        .collect();
    // Let the others reach the flight, then release the leader.
    std::thread::sleep(Duration::from_millis(200));
    release.send(true).unwrap();

    let mut answers = vec![rt.block_on(leader).unwrap().unwrap()];
    for t in tasks {
        answers.push(rt.block_on(t).unwrap().unwrap());
    }
    for t in threads {
        answers.push(t.join().unwrap().unwrap());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(answers.iter().all(|a| a.as_str() == "computed once"));
}

#[test]
fn a_cancelled_leader_hands_the_computation_to_a_waiting_task() {
    let cache = Cache::in_memory().to_async();
    let rt = runtime();
    let started = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (cache, started) = (cache.clone(), started.clone());
        rt.spawn(async move {
            cache
                .get_or_insert_with(&"k", &Options::new(), || async move {
                    started.notify_one();
                    std::future::pending::<u32>().await
                })
                .await
        })
    };
    rt.block_on(started.notified());
    let follower = {
        let cache = cache.clone();
        rt.spawn(async move {
            cache
                .get_or_insert_with(&"k", &Options::new(), || async { 7u32 })
                .await
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    leader.abort();
    let v = rt.block_on(follower).unwrap().unwrap();
    assert_eq!(*v, 7);
}

#[test]
fn an_async_computation_asking_for_its_own_key_is_refused_not_hung() {
    let cache = Cache::in_memory().to_async();
    let rt = runtime();
    let outcome = rt.block_on(async {
        let inner = cache.clone();
        cache
            .try_get_or_insert_with(&"self", &Options::new(), || async move {
                inner
                    .get_or_insert_with(&"self", &Options::new(), || async { 1u8 })
                    .await
                    .map(|v| *v)
            })
            .await
    });
    assert!(matches!(outcome, Err(Error::Deadlock)), "{outcome:?}");
}

#[test]
fn an_async_error_is_returned_and_not_cached() {
    let cache = Cache::in_memory().to_async();
    let rt = runtime();
    rt.block_on(async {
        let failed = cache
            .try_get_or_insert_with(&"q", &Options::new(), || async {
                Err::<u32, Error>(Error::Internal("database down".into()))
            })
            .await;
        assert!(failed.is_err());
        assert!(cache.get::<_, u32>(&"q").await.unwrap().is_none());
        let v = cache
            .try_get_or_insert_with(&"q", &Options::new(), || async { Ok::<u32, Error>(5) })
            .await
            .unwrap();
        assert_eq!(*v, 5);
    });
}

#[test]
fn an_invalidation_during_an_async_computation_keeps_its_result_out_of_the_cache() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap().to_async();
    let rt = runtime();
    rt.block_on(async {
        let opts = Options::new().tags(["prices"]);
        let inner = cache.clone();
        let v = cache
            .get_or_insert_with(&"p", &opts, || async move {
                inner.invalidate_tag("prices").await.unwrap();
                1u32
            })
            .await
            .unwrap();
        assert_eq!(*v, 1, "the caller still gets what it computed");
        assert!(cache.get::<_, u32>(&"p").await.unwrap().is_none());
    });
}

#[test]
fn async_and_blocking_handles_see_the_same_entries_and_namespaces() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    let rt = runtime();
    let a = cache.to_async();
    rt.block_on(async {
        a.insert(&"x", 1u64).await.unwrap();
        a.namespace("reports").insert(&"x", 2u64).await.unwrap();
        assert!(a.contains_key(&"x").await.unwrap());
        a.flush().await.unwrap();
    });
    assert_eq!(cache.get::<_, u64>(&"x").unwrap().as_deref(), Some(&1));
    let ns = cache.namespace("reports");
    assert_eq!(ns.get::<_, u64>(&"x").unwrap().as_deref(), Some(&2));
    rt.block_on(async {
        ns.to_async().clear().await.unwrap();
        assert!(
            a.get::<_, u64>(&"x").await.unwrap().is_some(),
            "only the namespace"
        );
        assert!(a.remove(&"x").await.unwrap());
        assert!(!a.contains_key(&"x").await.unwrap());
    });
    assert!(ns.get::<_, u64>(&"x").unwrap().is_none());
}

// ---- the executor is never blocked on disk work ----

/// Ticks of a timer task on the runtime under test.
static TICKS: AtomicU64 = AtomicU64::new(0);
/// Set when a gate waited for the timer in vain: its code ran on the executor's only thread.
static STARVED: AtomicBool = AtomicBool::new(false);

/// Waits until the timer task has ticked a few more times; on a current-thread runtime it can
/// only tick if this code runs on another thread.
fn wait_for_the_timer() {
    let start = TICKS.load(Ordering::SeqCst);
    let give_up = Instant::now() + Duration::from_secs(60);
    while TICKS.load(Ordering::SeqCst) < start + 3 {
        if Instant::now() > give_up {
            STARVED.store(true, Ordering::SeqCst);
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A large value whose encoding and decoding (the cache's disk work) wait for the timer.
#[derive(Clone, Debug, PartialEq)]
struct Large(Vec<u8>);

impl Serialize for Large {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wait_for_the_timer();
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Large {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Vec<u8>, E> {
                Ok(b.to_vec())
            }
        }
        wait_for_the_timer();
        d.deserialize_byte_buf(Bytes).map(Large)
    }
}

#[test]
fn a_current_thread_runtime_keeps_its_timer_ticking_while_a_large_value_is_written_and_read() {
    let dir = common::tempdir();
    // A memory tier too small for the value: the read comes from the disk (a side file).
    let cache = Cache::builder()
        .path(dir.path())
        .memory_capacity(1 << 20)
        .durability(Durability::Immediate)
        .warm_restart(0)
        .open()
        .unwrap()
        .to_async();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let value = Large((0..16u32 << 20).map(|i| i as u8).collect());
    let max_gap = rt.block_on(async {
        let ticker = tokio::spawn(async {
            let mut last = Instant::now();
            let mut max_gap = Duration::ZERO;
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                max_gap = max_gap.max(last.elapsed());
                last = Instant::now();
                TICKS.fetch_add(1, Ordering::SeqCst);
                if STOP.load(Ordering::SeqCst) {
                    return max_gap;
                }
            }
        });
        cache.insert(&"large", value.clone()).await.unwrap();
        let read: Arc<Large> = cache.get(&"large").await.unwrap().expect("a disk hit");
        assert!(*read == value);
        let computed = cache
            .get_or_insert_with(&"computed", &Options::new(), || async { value.clone() })
            .await
            .unwrap();
        assert_eq!(computed.0.len(), value.0.len());
        STOP.store(true, Ordering::SeqCst);
        ticker.await.unwrap()
    });
    assert!(
        !STARVED.load(Ordering::SeqCst),
        "encoding or decoding ran on the executor's thread: the timer could not tick"
    );
    let stats = cache.cache().stats();
    assert!(stats.disk_hits >= 1, "{stats:?}");
    eprintln!("longest pause of the timer: {max_gap:?}");
}

static STOP: AtomicBool = AtomicBool::new(false);

#[test]
fn async_callers_wait_for_a_blocking_leader_without_blocking_the_executor() {
    let cache = Cache::in_memory();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let (release, rx) = std::sync::mpsc::channel::<()>();
    let leader = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache.get_or_insert_with(&"k", &Options::new(), || {
                started_tx.send(()).unwrap();
                rx.recv().unwrap();
                11u32
            })
        })
    };
    started.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a: AsyncCache = cache.to_async();
    let got = rt.block_on(async move {
        let waiter = tokio::spawn({
            let a = a.clone();
            async move {
                a.get_or_insert_with(&"k", &Options::new(), || async { 99u32 })
                    .await
            }
        });
        // The only executor thread still runs this task (a timer) while the waiter waits.
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.send(()).unwrap();
        waiter.await.unwrap().unwrap()
    });
    assert_eq!(*got, 11);
    assert_eq!(*leader.join().unwrap().unwrap(), 11);
}
