//! Regressions found by attacking the async front: deadlock detection inside async
//! computations, cancelled read-throughs, panics and shutdowns, disk work off the executor.
#![cfg(feature = "tokio")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tiered::{Cache, Error, Memoized, Options};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// P1: two concurrent read-throughs of one key from inside one async computation (tokio::join!).
// Waiting would not deadlock: the first branch's computation progresses on its own.
#[test]
fn two_joined_calls_for_one_key_inside_a_computation_are_not_a_deadlock() {
    let cache = Cache::in_memory().to_async();
    let rt = rt();
    let out = rt.block_on(async {
        let c = cache.clone();
        cache
            .try_get_or_insert_with(&"outer", &Options::new(), || async move {
                let o = Options::new();
                let (a, b) = tokio::join!(
                    c.get_or_insert_with(&"inner", &o, || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        1u32
                    }),
                    c.get_or_insert_with(&"inner", &o, || async { 2u32 }),
                );
                Ok::<u32, Error>(*a? + *b?)
            })
            .await
    });
    assert!(out.is_ok(), "false deadlock: {out:?}");
}

// P1b: memoized async fib with join! (the textbook memoized recursion).
static FIB: Memoized = Memoized::new("async_regressions::fib", 1);
static FIB_RUNS: AtomicUsize = AtomicUsize::new(0);

fn fib(cache: Cache, n: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> {
    Box::pin(async move {
        let c = cache.clone();
        FIB.call_async(&cache, &Options::new(), FIB.key(&(n,)), || async move {
            FIB_RUNS.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                return n;
            }
            let (a, b) = tokio::join!(fib(c.clone(), n - 1), fib(c.clone(), n - 2));
            a + b
        })
        .await
    })
}

#[test]
fn a_memoized_async_fib_with_join_runs_each_argument_once() {
    let cache = Cache::in_memory();
    let rt = rt();
    let v = rt.block_on(fib(cache.clone(), 20));
    let runs = FIB_RUNS.load(Ordering::SeqCst);
    assert_eq!(v, 6765);
    assert_eq!(runs, 21, "each argument should run once");
}

// ---------------------------------------------------------------------------------------------
// P2: a real cycle missed because two concurrent waits of one computation share one wait-graph
// slot. A (leads k1) joins: X = k2 (led by B), Y = k3 (led by C, ends soon). B's computation
// then asks for k1: a cycle A -> B -> A. Expected Error::Deadlock for someone, not a hang.
#[test]
fn a_cycle_is_refused_after_a_sibling_wait_of_the_computation_ended() {
    let cache = Cache::in_memory().to_async();
    let rt = rt();
    let out = rt.block_on(async {
        let b_started = Arc::new(tokio::sync::Notify::new());
        let c_release = Arc::new(tokio::sync::Notify::new());
        // C leads k3 until released.
        let c_task = {
            let (cache, rel) = (cache.clone(), c_release.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with(&"k3", &Options::new(), || async move {
                        rel.notified().await;
                        3u32
                    })
                    .await
            })
        };
        // B leads k2; its computation waits, then asks for k1.
        let b_go = Arc::new(tokio::sync::Notify::new());
        let b_task = {
            let (cache, started, go) = (cache.clone(), b_started.clone(), b_go.clone());
            tokio::spawn(async move {
                let c2 = cache.clone();
                cache
                    .try_get_or_insert_with(&"k2", &Options::new(), || async move {
                        started.notify_one();
                        go.notified().await;
                        let v = c2
                            .get_or_insert_with(&"k1", &Options::new(), || async { 1u32 })
                            .await?;
                        Ok::<u32, Error>(*v + 2)
                    })
                    .await
            })
        };
        b_started.notified().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A leads k1: X waits on k2 (B), Y waits on k3 (C).
        let a_task = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let c = cache.clone();
                cache
                    .try_get_or_insert_with(&"k1", &Options::new(), || async move {
                        let x = async {
                            c.get_or_insert_with(&"k2", &Options::new(), || async { 20u32 })
                                .await
                        };
                        let y = async {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            c.get_or_insert_with(&"k3", &Options::new(), || async { 30u32 })
                                .await
                        };
                        let (x, y) = tokio::join!(x, y);
                        Ok::<u32, Error>(*x? + *y?)
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        c_release.notify_one(); // Y's wait ends, its wait-graph slot is removed
        tokio::time::sleep(Duration::from_millis(50)).await;
        b_go.notify_one(); // B asks for k1: the cycle closes
        let r = tokio::time::timeout(Duration::from_secs(5), async {
            (a_task.await.unwrap(), b_task.await.unwrap())
        })
        .await;
        let _ = c_task.await;
        r
    });
    assert!(out.is_ok(), "hung: a cycle A->B->A was not detected");
}

// ---------------------------------------------------------------------------------------------
// P3: a blocking leader whose computation asks for its own key through the async front
// (Handle::block_on), the way a sync memoized function can call an async one.
#[test]
fn a_blocking_leader_asking_for_its_own_key_through_the_async_front_is_refused() {
    let cache = Cache::in_memory();
    let rt = rt();
    let handle = rt.handle().clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let c = cache.clone();
    std::thread::spawn(move || {
        let inner = c.to_async();
        let r = c.try_get_or_insert_with(&"self", &Options::new(), || {
            handle
                .block_on(inner.get_or_insert_with(&"self", &Options::new(), || async { 1u8 }))
                .map(|v| *v)
        });
        let _ = tx.send(r);
    });
    let out = rx.recv_timeout(Duration::from_secs(5));
    assert!(
        matches!(out, Ok(Err(Error::Deadlock))),
        "expected Error::Deadlock, got {out:?} (Timeout = hang)"
    );
}

// ---------------------------------------------------------------------------------------------
// P4: a cancelled leader's store outlives its call and overwrites an insert (or undoes a
// remove) made after the call was over.
static SLOW_ONE: AtomicBool = AtomicBool::new(true);

#[derive(Clone, Debug, PartialEq)]
struct Num(u32);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 1 && SLOW_ONE.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(400));
        }
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(Num)
    }
}

/// A read-through of `"k"` cancelled (a timeout) while the slow `Serialize` of its `Num(1)`
/// stores it.
async fn cancel_while_storing(cache: &tiered::AsyncCache) {
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        cache.get_or_insert_with(&"k", &Options::new(), || async { Num(1) }),
    )
    .await;
    assert!(r.is_err(), "the call should have timed out (it is storing)");
}

#[test]
fn a_cancelled_read_through_never_overwrites_a_later_insert() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap().to_async();
    let rt = rt();
    let got = rt.block_on(async {
        cancel_while_storing(&cache).await;
        // The read-through is over (cancelled). Now a newer write:
        cache.insert(&"k", Num(2)).await.unwrap();
        let right_after: Option<Arc<Num>> = cache.get(&"k").await.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        let later: Option<Arc<Num>> = cache.get(&"k").await.unwrap();
        (right_after, later)
    });
    let reopened = {
        let c = cache.cache().clone();
        drop(cache);
        c.flush().unwrap();
        drop(c);
        Cache::open(dir.path())
            .unwrap()
            .get::<_, Num>(&"k")
            .unwrap()
    };
    assert_eq!(got.0.as_deref(), Some(&Num(2)));
    assert_eq!(
        got.1.as_deref(),
        Some(&Num(2)),
        "a later insert was overwritten"
    );
    assert_eq!(reopened.as_deref(), Some(&Num(2)), "and on disk");
}

#[test]
fn a_cancelled_read_through_never_undoes_a_later_remove() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap().to_async();
    let rt = rt();
    let got = rt.block_on(async {
        cancel_while_storing(&cache).await;
        cache.remove(&"k").await.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        cache.get::<_, Num>(&"k").await.unwrap()
    });
    assert_eq!(got, None, "a value came back after remove returned");
}

// P5: the runtime of an async leader shuts down mid-computation: a blocking follower takes over.
#[test]
fn a_runtime_shut_down_mid_computation_hands_it_to_a_blocking_follower() {
    let cache = Cache::in_memory();
    let rt = rt();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    {
        let a = cache.to_async();
        rt.spawn(async move {
            a.get_or_insert_with(&"k", &Options::new(), || async move {
                tx.send(()).unwrap();
                std::future::pending::<u32>().await
            })
            .await
        });
    }
    rx.recv().unwrap();
    let (done_tx, done) = std::sync::mpsc::channel();
    let c = cache.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(
            c.get_or_insert_with(&"k", &Options::new(), || 5u32)
                .map(|v| *v),
        );
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(rt);
    let out = done.recv_timeout(Duration::from_secs(5));
    assert!(matches!(out, Ok(Ok(5))));
}

// P6: a panic inside an async computation: blocking and async followers take over.
#[test]
fn a_panic_in_an_async_computation_hands_it_to_the_followers() {
    let cache = Cache::in_memory();
    let rt = rt();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let leader = {
        let a = cache.to_async();
        rt.spawn(async move {
            a.get_or_insert_with(&"k", &Options::new(), || async move {
                tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
                if true {
                    panic!("boom");
                }
                0u32
            })
            .await
        })
    };
    rx.recv().unwrap();
    let af = {
        let a = cache.to_async();
        rt.spawn(async move {
            a.get_or_insert_with(&"k", &Options::new(), || async { 7u32 })
                .await
        })
    };
    let c = cache.clone();
    let bf = std::thread::spawn(move || c.get_or_insert_with(&"k", &Options::new(), || 7u32));
    assert!(rt.block_on(leader).is_err(), "the leader panicked");
    let a = rt.block_on(af).unwrap().unwrap();
    let b = bf.join().unwrap().unwrap();
    assert_eq!((*a, *b), (7, 7));
}

// P7: stress: tasks + threads on one key, random timeouts/aborts, invalidations. Checks no hang
// and that no caller that started after invalidate_tag returned gets a value computed before.
#[test]
fn cancellations_and_invalidations_under_load_never_give_a_stale_value_or_hang() {
    use std::sync::atomic::AtomicU64;
    let cache = Cache::in_memory();
    let rt = rt();
    let epoch = Arc::new(AtomicU64::new(0)); // number of invalidations returned
                                             // Held across an invalidation and its count, and by a computation reading the count: a
                                             // computation that starts between the two (its stamp after the bump) must not read the
                                             // count before it moves, which under load made fresh values look stale.
    let counting = Arc::new(std::sync::Mutex::new(()));
    let opts = Options::new().tags(["t"]);
    let bad = Arc::new(AtomicUsize::new(0));
    let deadlocks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Invalidator thread.
    let inv = {
        let (c, e, s, m) = (cache.clone(), epoch.clone(), stop.clone(), counting.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(3));
                let _counting = m.lock().unwrap();
                c.invalidate_tag("t").unwrap();
                e.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Blocking threads.
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (c, e, b, d, s, o) = (
                cache.clone(),
                epoch.clone(),
                bad.clone(),
                deadlocks.clone(),
                stop.clone(),
                opts.clone(),
            );
            let m = counting.clone();
            std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    let start = e.load(Ordering::SeqCst);
                    match c.get_or_insert_with(&"k", &o, || {
                        let at = {
                            let _counting = m.lock().unwrap();
                            e.load(Ordering::SeqCst)
                        };
                        std::thread::sleep(Duration::from_micros(500));
                        at
                    }) {
                        Ok(v) if *v < start => {
                            b.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(Error::Deadlock) => {
                            d.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let a = cache.to_async();
    let res = rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..32u64 {
            let (a, e, b, d, o) = (
                a.clone(),
                epoch.clone(),
                bad.clone(),
                deadlocks.clone(),
                opts.clone(),
            );
            let m = counting.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..300u64 {
                    let start = e.load(Ordering::SeqCst);
                    let (e2, m2) = (e.clone(), m.clone());
                    let fut = a.get_or_insert_with(&"k", &o, || async move {
                        let at = {
                            let _counting = m2.lock().unwrap();
                            e2.load(Ordering::SeqCst)
                        };
                        tokio::time::sleep(Duration::from_micros(300 + (t * 37 + i * 13) % 700))
                            .await;
                        at
                    });
                    let limit = Duration::from_micros(200 + (t * 71 + i * 29) % 2000);
                    match tokio::time::timeout(limit, fut).await {
                        Ok(Ok(v)) if *v < start => {
                            b.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Ok(_)) | Err(_) => {}
                        Ok(Err(Error::Deadlock)) => {
                            d.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Err(e)) => panic!("{e}"),
                    }
                }
            }));
        }
        tokio::time::timeout(Duration::from_secs(60), async {
            for h in handles {
                h.await.unwrap();
            }
        })
        .await
    });
    stop.store(true, Ordering::SeqCst);
    inv.join().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert!(res.is_ok(), "hang");
    assert_eq!(bad.load(Ordering::SeqCst), 0);
    assert_eq!(deadlocks.load(Ordering::SeqCst), 0);
}

// P8: executor-blocking detector on paths the shipped test does not cover: warm-restart raw
// entries (get, try_get_or_insert_with), memoized async disk hits, Immediate remove/contains.
static TICKS8: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static STARVED8: AtomicBool = AtomicBool::new(false);
static GATE8: AtomicBool = AtomicBool::new(false);

fn wait_ticks8() {
    if !GATE8.load(Ordering::SeqCst) {
        return;
    }
    let start = TICKS8.load(Ordering::SeqCst);
    let give_up = std::time::Instant::now() + Duration::from_secs(3);
    while TICKS8.load(Ordering::SeqCst) < start + 3 {
        if std::time::Instant::now() > give_up {
            STARVED8.store(true, Ordering::SeqCst);
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Gated(Vec<u8>);
impl Serialize for Gated {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wait_ticks8();
        s.serialize_bytes(&self.0)
    }
}
impl<'de> Deserialize<'de> for Gated {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        wait_ticks8();
        <Vec<u8>>::deserialize(d).map(Gated)
    }
}

static GATED: Memoized = Memoized::new("attack2::gated", 1);

#[test]
fn every_async_path_keeps_disk_work_off_the_executor() {
    let dir = common::tempdir();
    let open = || {
        Cache::builder()
            .path(dir.path())
            .durability(tiered::Durability::Immediate)
            .open()
            .unwrap()
    };
    {
        let c = open();
        for k in ["a", "b", "c", "d"] {
            c.insert(&k, Gated(vec![1; 1000])).unwrap();
        }
        let _ = GATED.call(&c, &Options::new(), GATED.key(&(1u8,)), || {
            Gated(vec![2; 1000])
        });
        c.flush().unwrap();
    }
    let cache = open();
    // let the warm restart finish
    assert!(common::eventually(10, || !cache.stats().warming));
    let a = cache.to_async();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    GATE8.store(true, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let mut results = Vec::new();
    rt.block_on(async {
        let s2 = stop.clone();
        let ticker = tokio::spawn(async move {
            while !s2.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                TICKS8.fetch_add(1, Ordering::SeqCst);
            }
        });
        let mut step = |name: &str| {
            results.push((name.to_string(), STARVED8.swap(false, Ordering::SeqCst)));
        };
        let g: Option<Arc<Gated>> = a.get(&"a").await.unwrap();
        assert!(g.is_some());
        step("get warm raw");
        let g = a
            .try_get_or_insert_with(&"b", &Options::new(), || async {
                Ok::<_, Error>(Gated(vec![]))
            })
            .await
            .unwrap();
        assert_eq!(g.0.len(), 1000);
        step("try_get_or_insert_with warm raw");
        let g = GATED
            .call_async(&cache, &Options::new(), GATED.key(&(1u8,)), || async {
                Gated(vec![])
            })
            .await;
        assert_eq!(g.0.len(), 1000);
        step("memo call_async hit");
        let g = GATED
            .call_async(&cache, &Options::new(), GATED.key(&(2u8,)), || async {
                Gated(vec![3; 10])
            })
            .await;
        assert_eq!(g.0.len(), 10);
        step("memo call_async miss");
        assert!(a.contains_key(&"c").await.unwrap());
        step("contains_key");
        assert!(a.remove(&"d").await.unwrap());
        step("remove");
        a.insert_with(&"e", Gated(vec![4; 100]), &Options::new())
            .await
            .unwrap();
        step("insert Immediate");
        stop.store(true, Ordering::SeqCst);
        ticker.await.unwrap();
    });
    GATE8.store(false, Ordering::SeqCst);
    assert!(results.iter().all(|(_, s)| !s));
}
