//! Many threads on one cache: one computation per missing key, failures not cached, no lost
//! or torn values under a mixed load.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use tiered::{Cache, Durability, Options};

const THREADS: usize = 16;

#[test]
fn sixteen_threads_on_one_missing_key_compute_once() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache
                    .get_or_insert_with(&("report", 7u32), &Options::new(), || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        vec![1u64, 2, 3]
                    })
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the computation ran more than once"
    );
    assert!(results.iter().all(|r| **r == [1, 2, 3]));
    // Everyone shares the leader's Arc: no copies.
    assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
}

#[derive(Debug, PartialEq)]
enum AppError {
    Cache(String),
    Db,
}

impl From<tiered::Error> for AppError {
    fn from(e: tiered::Error) -> Self {
        AppError::Cache(e.to_string())
    }
}

#[test]
fn a_failed_computation_is_not_cached_and_a_waiter_runs_it_again() {
    let cache = Cache::in_memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.try_get_or_insert_with("k", &Options::new(), || {
                    let n = runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    if n == 0 {
                        Err(AppError::Db)
                    } else {
                        Ok(n as u32)
                    }
                })
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let errors = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        errors, 1,
        "only the caller that ran the failing computation sees its error"
    );
    assert!(results.contains(&Err(AppError::Db)));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one failure, then one success shared by all"
    );
    let ok: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|v| **v)
        .collect();
    assert!(ok.iter().all(|v| *v == 1));
    assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&1));
}

#[test]
fn a_panicking_computation_releases_the_key() {
    let cache = Cache::in_memory();
    let c2 = cache.clone();
    let panicked = std::thread::spawn(move || {
        c2.get_or_insert_with("k", &Options::new(), || -> u32 { panic!("boom") })
    })
    .join();
    assert!(panicked.is_err());
    let v = cache
        .get_or_insert_with("k", &Options::new(), || 3u32)
        .unwrap();
    assert_eq!(*v, 3);
}

#[test]
fn a_computation_may_use_the_cache() {
    let cache = Cache::in_memory();
    let outer = cache
        .get_or_insert_with("outer", &Options::new(), || {
            let inner = cache
                .get_or_insert_with("inner", &Options::new(), || 2u32)
                .unwrap();
            *inner * 10
        })
        .unwrap();
    assert_eq!(*outer, 20);
}

#[test]
fn hammered_from_many_threads_every_read_is_a_value_that_was_written() {
    let dir = common::tempdir();
    let cache = Cache::builder()
        .path(dir.path())
        .memory_capacity(64 << 10) // small: forces evictions and disk reads
        .durability(Durability::Batched(Duration::from_millis(5)))
        .open()
        .unwrap();
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                for i in 0..2_000u64 {
                    let k = (i * 7 + t) % 97;
                    match i % 5 {
                        0 | 1 => cache.insert(&k, vec![k; 16]).unwrap(),
                        2 => {
                            cache.remove(&k).unwrap();
                        }
                        3 => {
                            let v = cache.get_or_insert_with(&k, &Options::new(), || vec![k; 16]);
                            assert_eq!(*v.unwrap(), vec![k; 16]);
                        }
                        _ => {
                            if let Some(v) = cache.get::<_, Vec<u64>>(&k).unwrap() {
                                assert_eq!(*v, vec![k; 16], "torn or foreign value");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    cache.flush().unwrap();
    for k in 0..97u64 {
        if let Some(v) = cache.get::<_, Vec<u64>>(&k).unwrap() {
            assert_eq!(*v, vec![k; 16]);
        }
    }
}

#[test]
fn immediate_durability_commits_concurrent_writers_together() {
    let dir = common::tempdir();
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    let handles: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    cache.insert(&(t, i), t * 1000 + i).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    drop(cache);
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(cache.stats().entries, THREADS as u64 * 50);
}

#[test]
fn resources_are_made_once_and_shared_by_reference() {
    let cache = Cache::in_memory();
    let made = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cache, made) = (cache.clone(), made.clone());
            std::thread::spawn(move || {
                cache
                    .resource("pool", || {
                        made.fetch_add(1, Ordering::SeqCst);
                        std::sync::Mutex::new(0u32)
                    })
                    .unwrap()
            })
        })
        .collect();
    let pools: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(made.load(Ordering::SeqCst), 1);
    assert!(pools.iter().all(|p| Arc::ptr_eq(p, &pools[0])));
    let wrong = cache.resource("pool", || 5u8);
    assert!(matches!(wrong, Err(tiered::Error::ResourceType { .. })));
}
