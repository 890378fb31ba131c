//! ttl, expires_at and idle expire when they should, in memory and on disk, across restarts.
//! Time is a `ManualClock`: nothing here sleeps.

mod common;

use std::time::{Duration, SystemTime};

use tiered::Options;

const S: Duration = Duration::from_secs(1);

fn live(cache: &tiered::Cache, key: &str) -> bool {
    cache.get::<_, String>(key).unwrap().is_some()
}

#[test]
fn ttl_expires_in_memory_and_counts() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    cache
        .insert_with("t", "v".to_string(), &Options::new().ttl(60 * S))
        .unwrap();
    cache.insert("forever", "v".to_string()).unwrap();
    clock.advance(59 * S);
    assert!(live(&cache, "t"));
    clock.advance(S);
    assert!(!live(&cache, "t"));
    assert!(!cache.contains_key("t").unwrap());
    assert!(live(&cache, "forever"));
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn expires_at_is_absolute_and_earliest_deadline_wins() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    let now = SystemTime::now();
    clock.set(now);
    cache
        .insert_with(
            "at",
            "v".to_string(),
            &Options::new().expires_at(now + 10 * S),
        )
        .unwrap();
    let both = Options::new().ttl(100 * S).expires_at(now + 20 * S);
    cache.insert_with("both", "v".to_string(), &both).unwrap();
    let past = Options::new().expires_at(now - S);
    cache.insert_with("past", "v".to_string(), &past).unwrap();
    assert!(!live(&cache, "past"));
    clock.advance(9 * S);
    assert!(live(&cache, "at"));
    clock.advance(S);
    assert!(!live(&cache, "at"));
    assert!(live(&cache, "both"));
    clock.advance(10 * S);
    assert!(!live(&cache, "both"), "expires_at came before ttl");
}

#[test]
fn idle_restarts_on_every_read() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    cache
        .insert_with("i", "v".to_string(), &Options::new().idle(30 * S))
        .unwrap();
    for _ in 0..5 {
        clock.advance(29 * S);
        assert!(live(&cache, "i"));
    }
    clock.advance(30 * S);
    assert!(!live(&cache, "i"));
}

#[test]
fn deadlines_hold_across_restarts() {
    let dir = common::tempdir();
    let clock = common::clock();
    let start = SystemTime::now();
    clock.set(start);
    {
        let cache = common::open(dir.path(), &clock);
        cache
            .insert_with("ttl", "v".to_string(), &Options::new().ttl(60 * S))
            .unwrap();
        cache
            .insert_with(
                "at",
                "v".to_string(),
                &Options::new().expires_at(start + 90 * S),
            )
            .unwrap();
        cache
            .insert_with("idle", "v".to_string(), &Options::new().idle(30 * S))
            .unwrap();
        cache.insert("forever", "v".to_string()).unwrap();
    }
    clock.advance(20 * S);
    {
        // From disk: nothing has expired yet; reading "idle" restarts its idle time.
        let cache = common::open_cold(dir.path(), &clock);
        for k in ["ttl", "at", "idle", "forever"] {
            assert!(live(&cache, k), "{k} expired too early");
        }
        assert_eq!(cache.stats().disk_hits, 4);
    }
    clock.advance(40 * S); // t = 60 s; "idle" was last read at 20 s
    {
        let cache = common::open(dir.path(), &clock);
        assert!(!live(&cache, "ttl"));
        assert!(live(&cache, "at"));
        assert!(
            !live(&cache, "idle"),
            "idle limit passed since the last read"
        );
        assert_eq!(cache.stats().expirations, 2);
    }
    clock.advance(30 * S); // t = 90 s
    let cache = common::open(dir.path(), &clock);
    assert!(!live(&cache, "at"));
    assert!(live(&cache, "forever"));
}

#[test]
fn an_idle_entry_read_from_disk_stays_alive_after_restart() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        cache
            .insert_with("i", "v".to_string(), &Options::new().idle(30 * S))
            .unwrap();
    }
    for round in 0..4 {
        clock.advance(25 * S);
        let cache = common::open(dir.path(), &clock);
        assert!(live(&cache, "i"), "round {round}");
    }
}

#[test]
fn default_options_apply_to_plain_inserts() {
    let clock = common::clock();
    let cache = tiered::Cache::builder()
        .clock(clock.clone())
        .default_options(Options::new().ttl(10 * S))
        .open()
        .unwrap();
    cache.insert("d", "v".to_string()).unwrap();
    cache
        .insert_with("own", "v".to_string(), &Options::new().ttl(100 * S))
        .unwrap();
    clock.advance(10 * S);
    assert!(!live(&cache, "d"));
    assert!(live(&cache, "own"));
}

#[test]
fn the_sweeper_deletes_expired_records_from_disk() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        for i in 0..100u32 {
            cache
                .insert_with(&i, i, &Options::new().ttl(10 * S))
                .unwrap();
        }
        cache.insert("kept", 1u32).unwrap();
        assert_eq!(cache.stats().entries, 101);
    }
    clock.advance(11 * S);
    // A newly opened cache starts with a sweep pass; wait for it (bounded).
    let cache = common::open(dir.path(), &clock);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // The sweeper counts the expirations just after the commit that deleted them.
    let swept = |s: &tiered::Stats| s.entries == 1 && s.expirations == 100;
    while !swept(&cache.stats()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = cache.stats();
    assert_eq!(s.entries, 1, "expired records were not swept");
    assert_eq!(s.expirations, 100);
    assert!(live_u32(&cache, "kept"));
}

fn live_u32(cache: &tiered::Cache, key: &str) -> bool {
    cache.get::<_, u32>(key).unwrap().is_some()
}

// ---- idle: regressions ----

#[test]
fn a_hot_idle_entry_read_from_memory_survives_a_restart() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        cache
            .insert_with("hot", "v".to_string(), &Options::new().idle(10 * S))
            .unwrap();
        // Read twice a second for 30 s: every read is a memory hit, under 1 s apart.
        for _ in 0..60 {
            clock.advance(S / 2);
            assert!(live(&cache, "hot"));
        }
        assert_eq!(cache.stats().disk_hits, 0);
    }
    clock.advance(S);
    let cache = common::open(dir.path(), &clock);
    assert!(
        live(&cache, "hot"),
        "read 1 s before the restart, idle limit 10 s"
    );
}

#[test]
fn idle_records_read_just_before_a_restart_survive_it() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        for i in 0..200 {
            cache
                .insert_with(
                    &format!("k{i}"),
                    "v".to_string(),
                    &Options::new().idle(10 * S),
                )
                .unwrap();
        }
        clock.advance(8 * S);
        for i in 0..200 {
            assert!(live(&cache, &format!("k{i}")));
        }
    }
    clock.advance(5 * S); // 13 s after the insert, 5 s after the read
    let cache = common::open(dir.path(), &clock);
    let alive = (0..200).filter(|i| live(&cache, &format!("k{i}"))).count();
    assert_eq!(alive, 200, "every record read 5 s ago is alive (idle 10 s)");
}

#[test]
fn contains_key_does_not_refresh_idle() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    cache
        .insert_with("k", "v".to_string(), &Options::new().idle(10 * S))
        .unwrap();
    clock.advance(6 * S);
    assert!(cache.contains_key("k").unwrap());
    clock.advance(6 * S);
    assert!(
        !live(&cache, "k"),
        "12 s without a read: contains_key is not a read"
    );
}

#[test]
fn idle_zero_expires_at_once_like_ttl_zero() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    cache.insert("k", "old".to_string()).unwrap();
    cache
        .insert_with("k", "v".to_string(), &Options::new().idle(Duration::ZERO))
        .unwrap();
    assert!(
        !live(&cache, "k"),
        "idle(ZERO) is expired, and replaced the old value"
    );
    cache
        .insert_with("t", "v".to_string(), &Options::new().ttl(Duration::ZERO))
        .unwrap();
    assert!(!live(&cache, "t"));
    drop(cache);
    let cache = common::open(dir.path(), &clock);
    assert!(!live(&cache, "k"), "nor after a restart");
}
