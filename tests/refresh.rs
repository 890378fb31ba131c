//! Refresh ahead (`Options::refresh_after` with `get_or_refresh_with`): once a value exists,
//! readers get it at once while one background recomputation per key replaces it. Time is a
//! manual clock; waits are bounds, never timing goals.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiered::{Cache, Options};

fn opts() -> Options {
    Options::new()
        .ttl(Duration::from_secs(600))
        .refresh_after(Duration::from_secs(60))
}

/// A computation that counts its runs and, from `gate`, waits until it is let through.
struct Source {
    runs: AtomicUsize,
    gate: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Source {
    fn new() -> Arc<Source> {
        Arc::new(Source {
            runs: AtomicUsize::new(0),
            gate: Mutex::new(None),
        })
    }

    /// From now on, a computation waits for the sender's word.
    fn hold(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel();
        *self.gate.lock().unwrap() = Some(rx);
        tx
    }

    fn compute(&self, value: u64) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = self.gate.lock().unwrap().as_ref() {
            let _ = gate.recv_timeout(Duration::from_secs(10));
        }
        value
    }
}

fn read(cache: &Cache, source: &Arc<Source>, value: u64) -> u64 {
    let source = source.clone();
    *cache
        .get_or_refresh_with("price", &opts(), move || source.compute(value))
        .unwrap()
}

#[test]
fn readers_never_wait_for_a_refresh_and_it_runs_once_while_many_read() {
    let clock = common::clock();
    let dir = common::tempdir();
    let cache = common::open(dir.path(), &clock);
    let source = Source::new();
    assert_eq!(read(&cache, &source, 1), 1);
    clock.advance(Duration::from_secs(30));
    assert_eq!(read(&cache, &source, 2), 1, "fresh: no refresh");
    assert_eq!(source.runs.load(Ordering::SeqCst), 1);

    clock.advance(Duration::from_secs(31)); // 61 s old: due
    let release = source.hold();
    // Eight threads read many times while the one refresh is held: each gets the old value.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(
                        read(&cache, &source, 2),
                        1,
                        "a reader waited or got no value"
                    );
                }
            });
        }
    });
    assert!(common::eventually(10, || source
        .runs
        .load(Ordering::SeqCst)
        >= 2));
    assert_eq!(
        source.runs.load(Ordering::SeqCst),
        2,
        "one recomputation for the key"
    );
    release.send(()).unwrap();
    assert!(
        common::eventually(10, || read(&cache, &source, 3) == 2),
        "the refreshed value never replaced the old one"
    );
    assert!(common::eventually(10, || cache.stats().refreshes == 1));
    // The new value's age counts from its own write.
    clock.advance(Duration::from_secs(30));
    assert_eq!(read(&cache, &source, 3), 2);
    assert_eq!(source.runs.load(Ordering::SeqCst), 2);
}

#[test]
fn a_failed_refresh_keeps_the_old_value_until_its_deadline() {
    let clock = common::clock();
    let cache = Cache::builder().clock(clock.clone()).open().unwrap();
    let failing = |n: &Arc<AtomicUsize>| {
        let n = n.clone();
        move || {
            n.fetch_add(1, Ordering::SeqCst);
            Err::<u64, _>(tiered::Error::Config("the database is down".into()))
        }
    };
    let attempts = Arc::new(AtomicUsize::new(0));
    let v = cache
        .try_get_or_refresh_with("k", &opts(), || Ok::<u64, tiered::Error>(1))
        .unwrap();
    assert_eq!(*v, 1);
    clock.advance(Duration::from_secs(61));
    let v = cache
        .try_get_or_refresh_with("k", &opts(), failing(&attempts))
        .unwrap();
    assert_eq!(*v, 1, "the old value, at once");
    assert!(common::eventually(10, || cache.stats().refresh_failures == 1));
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    // Still served (and tried again) until its deadline.
    let v = cache
        .try_get_or_refresh_with("k", &opts(), failing(&attempts))
        .unwrap();
    assert_eq!(*v, 1);
    assert!(common::eventually(10, || cache.stats().refresh_failures == 2));
    // A panic counts the same way, and harms no one.
    let v = cache
        .try_get_or_refresh_with("k", &opts(), || -> Result<u64, tiered::Error> {
            panic!("a deliberate panic in a refresh")
        })
        .unwrap();
    assert_eq!(*v, 1);
    assert!(common::eventually(10, || cache.stats().refresh_failures == 3));
    // Past its deadline: gone; the caller's own computation's error is its own.
    clock.advance(Duration::from_secs(600));
    let r = cache.try_get_or_refresh_with("k", &opts(), failing(&attempts));
    assert!(r.is_err(), "an expired value was served");
}

#[test]
fn a_write_during_a_refresh_wins_over_the_refreshed_value() {
    let clock = common::clock();
    let cache = Cache::builder().clock(clock.clone()).open().unwrap();
    let source = Source::new();
    assert_eq!(read(&cache, &source, 1), 1);
    clock.advance(Duration::from_secs(61));
    let release = source.hold();
    assert_eq!(read(&cache, &source, 2), 1);
    assert!(common::eventually(10, || source
        .runs
        .load(Ordering::SeqCst)
        == 2));
    cache.insert("price", 9u64).unwrap();
    release.send(()).unwrap();
    // Once the refresh ended, the insert made during it is still the value.
    assert!(common::eventually(10, || cache.stats().refreshes == 1));
    assert_eq!(*cache.get::<_, u64>("price").unwrap().unwrap(), 9);
}

#[test]
fn get_or_insert_with_ignores_refresh_after() {
    let clock = common::clock();
    let cache = Cache::builder().clock(clock.clone()).open().unwrap();
    let runs = AtomicUsize::new(0);
    let compute = || {
        runs.fetch_add(1, Ordering::SeqCst);
        1u64
    };
    cache.get_or_insert_with("k", &opts(), compute).unwrap();
    clock.advance(Duration::from_secs(61));
    cache.get_or_insert_with("k", &opts(), compute).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Two machines sharing Redis: the value due on both is recomputed once.
#[cfg(feature = "redis")]
#[test]
fn a_value_due_on_two_machines_is_refreshed_once() {
    use common::redis::{listening, Server};
    let Some(server) = Server::start() else {
        return;
    };
    let clock = common::clock();
    let machine = || {
        Cache::builder()
            .redis(server.url())
            .clock(clock.clone())
            .open()
            .unwrap()
    };
    let (a, b) = (machine(), machine());
    listening(&server, 2);
    let source = Source::new();
    assert_eq!(read(&a, &source, 1), 1);
    assert!(common::eventually(10, || read(&b, &source, 9) == 1));
    assert_eq!(source.runs.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(61));
    let release = source.hold();
    assert_eq!(read(&a, &source, 2), 1, "a: the old value at once");
    assert!(common::eventually(10, || source
        .runs
        .load(Ordering::SeqCst)
        == 2));
    assert_eq!(read(&b, &source, 3), 1, "b: the old value at once");
    // b's refresh waits for a's lease in the background, then takes a's value.
    std::thread::sleep(Duration::from_millis(200));
    release.send(()).unwrap();
    assert!(
        common::eventually(10, || read(&b, &source, 4) == 2),
        "b never got a's refresh"
    );
    assert_eq!(read(&a, &source, 5), 2);
    assert_eq!(
        source.runs.load(Ordering::SeqCst),
        2,
        "the key was recomputed on both machines"
    );
}

#[test]
fn dropping_the_cache_while_a_refresh_runs_lets_the_folder_go() {
    let clock = common::clock();
    let dir = common::tempdir();
    let cache = common::open(dir.path(), &clock);
    let source = Source::new();
    assert_eq!(read(&cache, &source, 1), 1);
    clock.advance(Duration::from_secs(61));
    let release = source.hold();
    assert_eq!(read(&cache, &source, 2), 1);
    assert!(common::eventually(10, || source
        .runs
        .load(Ordering::SeqCst)
        == 2));
    // The refresh is held; the cache is dropped: the folder is free at once.
    drop(cache);
    let reopened = Cache::builder()
        .path(dir.path())
        .clock(clock.clone())
        .open_timeout(Duration::from_secs(2))
        .open()
        .expect("the folder was kept by a refresh of a dropped cache");
    release.send(()).unwrap();
    // The refreshed value of the dropped cache is not stored anywhere.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(*reopened.get::<_, u64>("price").unwrap().unwrap(), 1);
}

#[test]
fn an_early_refresh_spreads_the_recomputations_of_keys_written_together() {
    let clock = common::clock();
    let dir = common::tempdir();
    let cache = common::open(dir.path(), &clock);
    let runs = Arc::new(AtomicUsize::new(0));
    let opts = Options::new()
        .ttl(Duration::from_secs(3600))
        .refresh_after(Duration::from_secs(300))
        .refresh_early(Duration::from_secs(60));
    let read_all = |value: u64| {
        for key in 0..200u32 {
            let runs = runs.clone();
            cache
                .get_or_refresh_with(&key, &opts, move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    value
                })
                .unwrap();
        }
    };
    read_all(1); // all written at once
    assert_eq!(runs.load(Ordering::SeqCst), 200);
    clock.advance(Duration::from_secs(230));
    read_all(2);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        200,
        "before the window: none early"
    );
    // 280 s old, two thirds into the window: each read starts one with probability e^-1.
    clock.advance(Duration::from_secs(50));
    read_all(2);
    // Once the background runs are done (each counted when it ends), and no more start:
    let settled = || {
        let n = runs.load(Ordering::SeqCst) - 200;
        n > 0 && cache.stats().refreshes as usize == n
    };
    assert!(common::eventually(10, || settled() && {
        std::thread::sleep(Duration::from_millis(100));
        settled()
    }));
    let n = runs.load(Ordering::SeqCst) - 200;
    assert!(
        (30..=130).contains(&n),
        "{n} of 200 refreshed early, expected about 74"
    );
    // Without the option, none would have been: checked by a key of its own.
    let plain = Options::new()
        .ttl(Duration::from_secs(3600))
        .refresh_after(Duration::from_secs(300));
    let late = Arc::new(AtomicUsize::new(0));
    let counted = |late: &Arc<AtomicUsize>| {
        let late = late.clone();
        move || {
            late.fetch_add(1, Ordering::SeqCst);
            0u64
        }
    };
    cache
        .get_or_refresh_with("plain", &plain, counted(&late))
        .unwrap();
    clock.advance(Duration::from_secs(299));
    for _ in 0..100 {
        cache
            .get_or_refresh_with("plain", &plain, counted(&late))
            .unwrap();
    }
    assert_eq!(
        late.load(Ordering::SeqCst),
        1,
        "no early refresh without the option"
    );
}
