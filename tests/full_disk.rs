//! A full disk (a commit fails): the cache keeps serving from memory, says so in `health()`,
//! never lets a removed or overwritten key read back its old value, comes back by itself when
//! space returns, and reports once (by `flush`) the writes that were kept in memory only.
//!
//! A full disk is played by `RLIMIT_FSIZE` in a child process (with SIGXFSZ ignored, a write
//! past the limit fails with EFBIG); the parent checks the child's exit and that nothing
//! panicked on its stderr.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use tiered::{Cache, Durability, Health};

/// Keys flushed before the disk fills.
const BASE: u32 = 200;
/// The base key removed, and the one overwritten, while the disk is full.
const REMOVED: u32 = 3;
const OVERWRITTEN: u32 = 5;
/// Inserts made while the disk is full, and after it recovered.
const AFTER: u32 = 50;

fn base_value(i: u32) -> String {
    format!("base-{i}-{}", "b".repeat(100 + (i as usize * 37) % 900))
}

fn fill_value(i: u32) -> Vec<u8> {
    vec![(i % 251) as u8; 16 << 10]
}

fn open(dir: &Path, durability: Durability) -> Cache {
    Cache::builder()
        .path(dir)
        .memory_capacity(128 << 20)
        .durability(durability)
        .open()
        .expect("open")
}

fn durability_from_env() -> Durability {
    match std::env::var("TIERED_DURABILITY").as_deref() {
        Ok("immediate") => Durability::Immediate,
        _ => Durability::Batched(Duration::from_millis(50)),
    }
}

/// Polls `health()` until it is healthy, for at most `limit`; returns how long it took.
fn wait_healthy(cache: &Cache, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if cache.health().is_healthy() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn assert_out_of_service(cache: &Cache, when: &str) {
    match cache.health() {
        Health::DiskOutOfService {
            reason, damaged, ..
        } => {
            assert!(
                !damaged,
                "{when}: a full disk is not a damaged file ({reason})"
            );
            assert!(!reason.is_empty(), "{when}: health() says why");
        }
        other => panic!("{when}: health() is {other:?}, expected DiskOutOfService"),
    }
}

/// Child: fills a cache until a commit fails on the file-size limit, then checks what the
/// cache promises while the disk is full and after space returns.
#[test]
#[ignore = "child process of the full-disk tests"]
fn child_full_disk() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let durability = durability_from_env();
    let immediate = durability == Durability::Immediate;
    let cache = open(&dir, durability);
    for i in 0..BASE {
        cache.insert(&("base", i), base_value(i)).unwrap();
    }
    cache.flush().unwrap();
    assert!(cache.health().is_healthy());

    // The file may not grow any more.
    let size = std::fs::metadata(dir.join("tiered.redb")).unwrap().len();
    common::limit_file_size(Some(size));
    let mut filled = 0;
    let mut failure = None;
    for i in 0..4_000u32 {
        filled = i + 1;
        let inserted = cache.insert(&("fill", i), fill_value(i));
        match (immediate, inserted) {
            (true, Err(e)) => {
                failure = Some(e.to_string());
                break;
            }
            (false, Err(e)) => panic!("a Batched insert failed on a full disk: {e}"),
            (_, Ok(())) => {}
        }
        if !immediate && i % 8 == 7 {
            if let Err(e) = cache.flush() {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let failure =
        failure.unwrap_or_else(|| panic!("no commit failed after {filled} inserts of 16 KiB"));
    eprintln!("file limited to {size} bytes; the commit failed after {filled} inserts: {failure}");
    let mut problems = Vec::new();
    if cache.health().is_healthy() {
        problems.push(format!(
            "right after the failed commit ({failure}), health() is Healthy although the file \
             still cannot grow"
        ));
    }

    // The disk stays full for a while: every commit of 16 KiB values fails. The failure is
    // one outage, logged once, not one per failed commit.
    let (mut samples, mut healthy) = (0, 0);
    let started = Instant::now();
    let mut i = filled;
    while started.elapsed() < Duration::from_millis(1_500) {
        let inserted = cache.insert(&("fill", i), fill_value(i));
        match (immediate, inserted) {
            (false, r) => r.expect("a Batched insert returns Ok while the disk is full"),
            (true, Err(e)) => assert!(
                e.to_string().contains("out of service"),
                "the error says the disk tier is out of service: {e}"
            ),
            (true, Ok(())) => {}
        }
        if !immediate && i % 8 == 7 {
            let _ = cache.flush();
        }
        samples += 1;
        healthy += usize::from(cache.health().is_healthy());
        i += 1;
    }
    let outages = cache.stats().disk_failures;
    if outages != 1 {
        problems.push(format!(
            "while the file could not grow for 1.5 s, the tier went out of service {outages} \
             times (each logged) and health() was Healthy in {healthy} of {samples} samples"
        ));
    }

    // Now nothing can be written to the file at all.
    common::limit_file_size(Some(0));
    let probe = cache.insert("probe", 1u8);
    let flushed = cache.flush();
    assert!(
        probe.is_err() || flushed.is_err(),
        "a commit succeeded with a file-size limit of 0"
    );
    assert_out_of_service(&cache, "after a failed commit (limit 0)");
    let outages = cache.stats().disk_failures;

    // The cache keeps serving.
    for i in 0..AFTER {
        let inserted = cache.insert(&("after", i), format!("after-{i}"));
        match (immediate, inserted) {
            (false, r) => r.expect("a Batched insert returns Ok while the disk is full"),
            (true, Ok(())) => panic!("an Immediate insert returned Ok while the disk is full"),
            (true, Err(e)) => assert!(
                e.to_string().contains("out of service"),
                "the error says the disk tier is out of service: {e}"
            ),
        }
    }
    if !immediate {
        for i in 0..AFTER {
            assert_eq!(
                cache.get::<_, String>(&("after", i)).unwrap().as_deref(),
                Some(&format!("after-{i}")),
                "a value inserted while the disk is full reads back from memory"
            );
        }
    }
    let removed = cache.remove(&("base", REMOVED));
    assert!(
        immediate || removed.is_ok(),
        "Batched remove on a full disk: {removed:?}"
    );
    assert_eq!(
        cache.get::<_, String>(&("base", REMOVED)).unwrap(),
        None,
        "a key removed while the disk is full reads back"
    );
    let overwritten = cache.insert(&("base", OVERWRITTEN), String::from("new"));
    assert!(immediate || overwritten.is_ok(), "{overwritten:?}");
    let got = cache.get::<_, String>(&("base", OVERWRITTEN)).unwrap();
    assert!(
        got.as_deref() != Some(&base_value(OVERWRITTEN)),
        "a key overwritten while the disk is full reads back its old value"
    );
    for i in 0..BASE {
        let got = cache.get::<_, String>(&("base", i)).unwrap();
        if i != OVERWRITTEN {
            assert!(
                got.is_none() || got.as_deref() == Some(&base_value(i)),
                "base key {i} reads {got:?} while the disk is full"
            );
        }
    }
    assert_out_of_service(&cache, "after more writes");
    let flushed = cache.flush();
    assert!(flushed.is_err(), "flush() succeeded while the disk is full");
    assert_eq!(
        cache.stats().disk_failures,
        outages,
        "the failure counts (and is logged) once, not once per write"
    );

    // Space returns: the tier comes back by itself.
    common::limit_file_size(None);
    let back = wait_healthy(&cache, Duration::from_secs(12));
    eprintln!("back in service after {back:?}");
    assert!(
        back.is_some(),
        "the disk tier is not back 12 s after space returned: {:?}",
        cache.health()
    );
    let first = cache.flush();
    if !immediate {
        let e =
            first.expect_err("the first flush after recovery reports the writes kept in memory");
        assert!(
            e.to_string().contains("kept in memory only"),
            "the report says what happened: {e}"
        );
    }
    cache.flush().expect("the next flush is Ok");
    assert!(cache.health().is_healthy(), "{:?}", cache.health());
    assert_eq!(cache.get::<_, String>(&("base", REMOVED)).unwrap(), None);
    let got = cache.get::<_, String>(&("base", OVERWRITTEN)).unwrap();
    assert!(
        got.is_none() || got.as_deref().map(String::as_str) == Some("new"),
        "{got:?}"
    );
    for i in 0..AFTER {
        cache.insert(&("post", i), format!("post-{i}")).unwrap();
    }
    cache.flush().expect("a flush after recovery");
    assert_eq!(cache.stats().disk_failures, outages);
    drop(cache);

    // Everything a successful flush acknowledged is there; no removed key is back.
    let cache = open(&dir, durability);
    assert!(cache.health().is_healthy(), "{:?}", cache.health());
    for i in 0..BASE {
        let got = cache.get::<_, String>(&("base", i)).unwrap();
        match i {
            REMOVED => assert_eq!(got, None, "the removed key is back after reopening"),
            OVERWRITTEN => assert!(
                got.is_none() || got.as_deref().map(String::as_str) == Some("new"),
                "the overwritten key reads {got:?} after reopening"
            ),
            _ => assert_eq!(
                got.as_deref(),
                Some(&base_value(i)),
                "flushed base key {i} lost"
            ),
        }
    }
    for i in 0..AFTER {
        assert_eq!(
            cache.get::<_, String>(&("post", i)).unwrap().as_deref(),
            Some(&format!("post-{i}")),
            "an insert flushed after recovery is lost"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    println!("full disk: done");
}

/// Child: opens caches in empty folders while the file cannot grow (below what an open
/// needs): each opens, serves from memory, says it is out of service, and comes back.
#[test]
#[ignore = "child process of a_cache_opened_on_a_full_disk_serves_from_memory"]
fn child_open_on_full_disk() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    for limit in [0u64, 4 << 10, 64 << 10] {
        let sub = dir.join(format!("limit-{limit}"));
        common::limit_file_size(Some(limit));
        let cache = Cache::builder()
            .path(&sub)
            .open()
            .unwrap_or_else(|e| panic!("open with the file limited to {limit} bytes: {e}"));
        let health = cache.health();
        eprintln!("opened with the file limited to {limit} bytes: {health:?}");
        if limit == 0 {
            assert_out_of_service(&cache, "opened with no room for the file");
        }
        cache.insert("k", 7u32).expect("insert on a full disk");
        assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&7));

        common::limit_file_size(None);
        let back = wait_healthy(&cache, Duration::from_secs(12));
        assert!(
            back.is_some(),
            "limit {limit}: not back 12 s after space returned: {:?}",
            cache.health()
        );
        let _ = cache.flush(); // may report `k` as kept in memory only
        cache.insert("k2", 8u32).unwrap();
        cache.flush().expect("a flush after recovery");
        drop(cache);
        let cache = Cache::open(&sub).unwrap();
        assert!(cache.health().is_healthy(), "{:?}", cache.health());
        assert_eq!(cache.get::<_, u32>("k2").unwrap().as_deref(), Some(&8));
    }
    println!("open on full disk: done");
}

fn run(child: &str, env: &[(&str, String)], done: &str) -> common::Finished {
    let dir = common::tempdir();
    let started = Instant::now();
    let finished = common::finish(
        common::spawn_child_piped(child, dir.path(), env),
        Duration::from_secs(90),
    );
    eprintln!("{child} {env:?}: {:?}", started.elapsed());
    assert!(
        finished.status.is_some_and(|s| s.success()) && finished.stdout.contains(done),
        "the child failed:\n{}",
        finished.transcript()
    );
    assert!(
        !finished.stderr.contains("panicked at"),
        "something panicked:\n{}",
        finished.transcript()
    );
    finished
}

#[test]
fn batched_cache_survives_a_full_disk() {
    run(
        "child_full_disk",
        &[("TIERED_DURABILITY", "batched".into())],
        "full disk: done",
    );
}

#[test]
fn immediate_cache_survives_a_full_disk() {
    run(
        "child_full_disk",
        &[("TIERED_DURABILITY", "immediate".into())],
        "full disk: done",
    );
}

#[test]
fn a_cache_opened_on_a_full_disk_serves_from_memory() {
    run("child_open_on_full_disk", &[], "open on full disk: done");
}
