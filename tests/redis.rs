//! The Redis tier against a real `redis-server` (Debian's package), started by each test on a
//! free loopback port. `.ci/run` installs it; elsewhere, without it, these tests say so loudly
//! and pass (in CI, `CI=true`, they fail instead).

#![cfg(feature = "redis")]

mod common;

use common::redis::{eventually, get, held_in_memory, listening, put, Server};
use common::redis_server;

use std::path::PathBuf;
#[cfg(feature = "redis-tls")]
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tiered::{Cache, Health, Options};

/// Runs `test` over two caches standing for two machines: over Redis alone, then with a
/// folder of each in front (each with a fresh server).
fn on_both_setups(test: impl Fn(&Server, Cache, Cache)) {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = server.pair();
    test(&server, a, b);
    let server = Server::start().expect("started once already");
    let (dir_a, dir_b) = (common::tempdir(), common::tempdir());
    let (a, b) = server.pair_with_folders(dir_a.path(), dir_b.path());
    test(&server, a, b);
}

#[test]
fn a_value_written_on_one_machine_is_read_on_another_then_served_from_its_memory() {
    on_both_setups(written_then_read);
}

fn written_then_read(server: &Server, a: Cache, b: Cache) {
    put(&a, "k", "v".to_string());
    assert_eq!(get(&b, "k").as_deref(), Some("v"));
    assert!(held_in_memory(&b, "k", "v"));
    // Other GETs may come meanwhile (a listener reading a label's new token): a memory hit
    // must come at least once with none.
    let quiet = eventually(|| {
        let gets = server.calls("get");
        get(&b, "k").as_deref() == Some("v") && server.calls("get") == gets
    });
    assert!(quiet, "every memory hit sent Redis a GET");
    assert!(b.stats().disk_hits >= 1, "the first read came from Redis");
}

#[test]
fn an_overwrite_a_tag_a_namespace_and_a_clear_elsewhere_reach_the_other_memory() {
    on_both_setups(changes_elsewhere);
}

fn changes_elsewhere(_server: &Server, a: Cache, b: Cache) {
    let tagged = Options::new().tags(["prices"]);
    a.insert("k", "v1".to_string()).unwrap();
    a.insert_with("t", "tagged".to_string(), &tagged).unwrap();
    a.namespace("user:1").insert("n", "ns".to_string()).unwrap();
    a.flush().unwrap();
    assert!(held_in_memory(&b, "k", "v1"));
    assert!(held_in_memory(&b, "t", "tagged"));
    let ns = b.namespace("user:1");
    assert!(ns.get::<_, String>("n").unwrap().is_some());

    a.insert("k", "v2".to_string()).unwrap();
    assert!(
        eventually(|| get(&b, "k").as_deref() == Some("v2")),
        "overwrite not seen"
    );
    a.invalidate_tag("prices").unwrap();
    assert!(
        eventually(|| get(&b, "t").is_none()),
        "tag invalidation not seen"
    );
    a.namespace("user:1").clear().unwrap();
    assert!(
        eventually(|| ns.get::<_, String>("n").unwrap().is_none()),
        "namespace clear not seen"
    );
    a.clear().unwrap();
    assert!(eventually(|| get(&b, "k").is_none()), "clear not seen");
    // What is written after an invalidation is live for both.
    a.insert_with("t", "again".to_string(), &tagged).unwrap();
    a.flush().unwrap();
    assert!(eventually(|| get(&b, "t").as_deref() == Some("again")));
}

#[test]
fn a_killed_listener_comes_back_and_what_changed_meanwhile_is_not_served_stale() {
    on_both_setups(killed_listener);
}

fn killed_listener(server: &Server, a: Cache, b: Cache) {
    put(&a, "k", "v1".to_string());
    assert_eq!(get(&b, "k").as_deref(), Some("v1"));
    let killed = server.kill_listeners();
    assert_eq!(killed, 2);
    put(&a, "k", "v2".to_string());
    assert!(eventually(|| get(&b, "k").as_deref() == Some("v2")));
    listening(server, 2);
    // Coherent again afterwards: b holds v2 in memory, and hears of v3.
    assert!(held_in_memory(&b, "k", "v2"));
    a.insert("k", "v3".to_string()).unwrap();
    assert!(eventually(|| get(&b, "k").as_deref() == Some("v3")));
}

#[test]
fn flushall_empties_every_memory_tier_of_what_came_from_redis() {
    on_both_setups(flushall);
}

fn flushall(server: &Server, a: Cache, b: Cache) {
    a.insert("k", "v".to_string()).unwrap();
    let only = Options::new().memory_only();
    b.insert_with("mine", "kept".to_string(), &only).unwrap();
    a.flush().unwrap();
    assert_eq!(get(&b, "k").as_deref(), Some("v"));
    server.cli(&["FLUSHALL"]);
    assert!(eventually(
        || get(&b, "k").is_none() && get(&a, "k").is_none()
    ));
    assert_eq!(
        get(&b, "mine").as_deref(),
        Some("kept"),
        "memory-only values stay"
    );
    put(&a, "k", "after".to_string());
    assert!(eventually(|| get(&b, "k").as_deref() == Some("after")));
}

#[test]
fn a_server_restart_gives_no_caller_an_error_and_everything_works_afterwards() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let (a, b) = server.pair();
    put(&a, "k", "v".to_string());
    assert_eq!(get(&b, "k").as_deref(), Some("v"));
    server.shutdown();
    // Down: no error reaches a caller; a read past memory misses.
    a.insert("down", "x".to_string()).unwrap();
    let v = a
        .get_or_insert_with("computed", &Options::new(), || "c".to_string())
        .unwrap();
    assert_eq!(*v, "c");
    assert!(eventually(|| matches!(
        a.health(),
        Health::RedisUnreachable { .. }
    )));
    assert!(
        eventually(|| get(&b, "k").is_none()),
        "b kept a value it may no longer hear about"
    );
    server.launch();
    listening(&server, 2);
    put(&a, "k", "back".to_string());
    assert!(eventually(|| get(&b, "k").as_deref() == Some("back")));
    assert!(eventually(|| a.health().is_healthy()));
}

#[test]
fn ttl_and_expires_at_hold_in_redis_and_a_past_deadline_is_never_written() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = server.cache();
    a.insert_with("ttl", 1, &Options::new().ttl(Duration::from_secs(3600)))
        .unwrap();
    let at = SystemTime::now() + Duration::from_secs(600);
    a.insert_with("at", 1, &Options::new().expires_at(at))
        .unwrap();
    a.insert_with(
        "past",
        1,
        &Options::new().expires_at(SystemTime::now() - Duration::from_secs(1)),
    )
    .unwrap();
    a.flush().unwrap();
    let ttls: Vec<i64> = server
        .cli(&["--scan", "--pattern", "tiered:r:*"])
        .lines()
        .map(|key| server.cli(&["PTTL", key]).parse().unwrap())
        .collect();
    assert_eq!(ttls.len(), 2, "the past deadline was written: {ttls:?}");
    let mut ttls = ttls;
    ttls.sort();
    assert!(ttls[0] > 590_000 && ttls[0] <= 600_000, "{ttls:?}");
    assert!(ttls[1] > 3_590_000 && ttls[1] <= 3_600_000, "{ttls:?}");
}

#[test]
fn a_cold_key_is_computed_once_across_machines() {
    let Some(server) = Server::start() else {
        return;
    };
    let caches: Vec<Cache> = (0..3).map(|_| server.cache()).collect();
    let runs = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for cache in &caches {
            for _ in 0..4 {
                let runs = runs.clone();
                s.spawn(move || {
                    let v = cache
                        .get_or_insert_with("cold", &Options::new(), || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            42
                        })
                        .unwrap();
                    assert_eq!(*v, 42);
                });
            }
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1, "computed more than once");
}

#[test]
fn an_unreachable_server_makes_misses_not_errors() {
    let port = redis_server::free_port();
    let cache = Cache::builder()
        .redis(format!("redis://127.0.0.1:{port}"))
        .redis_timeouts(Duration::from_millis(100), Duration::from_millis(100))
        .open()
        .unwrap();
    cache.insert("k", 1).unwrap();
    assert_eq!(
        *cache.get::<_, i32>("k").unwrap().unwrap(),
        1,
        "memory still serves"
    );
    assert!(cache.get::<_, i32>("other").unwrap().is_none());
    assert!(eventually(|| matches!(
        cache.health(),
        Health::RedisUnreachable { .. }
    )));
}

#[test]
fn a_bad_url_is_a_config_error_that_never_shows_the_password() {
    let err = Cache::builder()
        .redis("redis://user:s3cret@127.0.0.1:notaport")
        .open()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, tiered::Error::Config(_)), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    // With a folder in front, the same; and the folder is not left taken.
    let dir = tempfile::tempdir().unwrap();
    let err = Cache::builder()
        .path(dir.path())
        .redis("redis://user:s3cret@127.0.0.1:notaport")
        .open()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, tiered::Error::Config(_)), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let cache = Cache::open(dir.path()).expect("the folder is free");
    drop(cache);
}

#[test]
fn a_value_above_the_size_bound_stays_in_memory_and_removes_the_older_one() {
    let Some(server) = Server::start() else {
        return;
    };
    let small = || {
        Cache::builder()
            .redis(server.url())
            .redis_max_value_bytes(1024)
            .open()
            .unwrap()
    };
    let (a, b) = (small(), small());
    put(&a, "k", "short".to_string());
    assert_eq!(get(&b, "k").as_deref(), Some("short"));
    let big = "x".repeat(4096);
    a.insert("k", big.clone()).unwrap();
    a.flush().unwrap();
    assert_eq!(get(&a, "k").as_deref(), Some(big.as_str()));
    assert!(
        eventually(|| get(&b, "k").is_none()),
        "b still reads the older value"
    );
    // Not in Redis, but not a's own either: another machine's write replaces it.
    put(&b, "k", "newer".to_string());
    assert!(eventually(|| get(&a, "k").as_deref() == Some("newer")));
}

/// A cache (from `builder`) that reaches `server` through a proxy of its own, once it and
/// one other cache hear each other; the proxy's faults.
fn proxied(server: &Server, builder: tiered::CacheBuilder) -> (Cache, Arc<proxy::Faults>) {
    let (port, faults) = proxy::start(server.port);
    let cache = builder
        .redis(format!("redis://127.0.0.1:{port}"))
        .open()
        .unwrap();
    listening(server, 2);
    (cache, faults)
}

/// A TCP proxy in front of the server, to play a network that delays or drops one kind of
/// connection: the listener (its first command is `HELLO 3`) or the others.
mod proxy {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Default)]
    pub struct Faults {
        /// Listener connections stop passing bytes (they stay open).
        pub freeze_listeners: AtomicBool,
        /// Replies to the other connections wait this many ms.
        pub delay_replies_ms: AtomicU64,
        /// What reaches listeners waits this many ms (a lost packet's retransmission).
        pub delay_listeners_ms: AtomicU64,
    }

    pub fn start(server_port: u16) -> (u16, Arc<Faults>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Faults::default());
        let f = faults.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                let f = f.clone();
                std::thread::spawn(move || pipe(client, server, f));
            }
        });
        (port, faults)
    }

    fn pipe(mut client: TcpStream, server: TcpStream, faults: Arc<Faults>) {
        let mut first = [0u8; 256];
        let Ok(n) = client.read(&mut first) else {
            return;
        };
        let text = String::from_utf8_lossy(&first[..n]).to_uppercase();
        let listener = text.contains("HELLO") && text.contains("\r\n3\r\n");
        let mut to_server = server.try_clone().unwrap();
        if to_server.write_all(&first[..n]).is_err() {
            return;
        }
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = faults.clone();
        std::thread::spawn(move || copy(&mut c2, &mut to_server, listener, &up, false));
        copy(&mut s2, &mut client, listener, &faults, true);
    }

    fn copy(from: &mut TcpStream, to: &mut TcpStream, listener: bool, f: &Faults, reply: bool) {
        let mut buf = [0u8; 16384];
        loop {
            let Ok(n) = from.read(&mut buf) else { return };
            if n == 0 {
                let _ = to.shutdown(std::net::Shutdown::Both);
                return;
            }
            // A frozen listener's bytes are held for good; its connection stays open.
            while listener && f.freeze_listeners.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let ms = f.delay_replies_ms.load(Ordering::SeqCst);
            if reply && !listener && ms > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            let ms = f.delay_listeners_ms.load(Ordering::SeqCst);
            if reply && listener && ms > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            if to.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    }
}

#[test]
fn a_listener_that_dies_silently_is_noticed_and_nothing_stale_is_served_after() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = server.cache();
    let (b, faults) = proxied(&server, Cache::builder());
    put(&a, "k", "v1".to_string());
    assert!(held_in_memory(&b, "k", "v1"));
    // The server still thinks b's listener is there; b hears nothing.
    faults.freeze_listeners.store(true, Ordering::Relaxed);
    put(&a, "k", "v2".to_string());
    assert!(
        eventually(|| get(&b, "k").as_deref() == Some("v2")),
        "b served the old value with a deaf listener"
    );
}

/// Whether a read of `key` was answered from memory.
fn memory_hit(cache: &Cache, key: &str) -> bool {
    let before = cache.stats();
    let _ = get(cache, key);
    let after = cache.stats();
    after.memory_hits > before.memory_hits && after.disk_hits == before.disk_hits
}

#[test]
fn the_listener_timeout_decides_how_soon_a_deaf_listener_is_noticed() {
    let Some(server) = Server::start() else {
        return;
    };
    let _other = server.cache(); // `proxied` waits for two listeners
                                 // A long timeout: a deaf listener goes unnoticed for a while (about 3.5 times it), and
                                 // what the cache holds from Redis stays in memory meanwhile.
    let (patient, faults) = proxied(
        &server,
        Cache::builder().redis_listener_timeout(Duration::from_secs(60)),
    );
    put(&patient, "k", "v".to_string());
    assert!(held_in_memory(&patient, "k", "v"));
    faults.freeze_listeners.store(true, Ordering::Relaxed);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(
            memory_hit(&patient, "k"),
            "a deaf listener was noticed before its 60 s timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(patient);
    // A short one: noticed (its probe is not heard back), so what came from Redis is read
    // from Redis again; and kept in memory again once the listener hears.
    let (eager, faults) = proxied(
        &server,
        Cache::builder().redis_listener_timeout(Duration::from_millis(100)),
    );
    assert!(held_in_memory(&eager, "k", "v"));
    faults.freeze_listeners.store(true, Ordering::Relaxed);
    assert!(
        eventually(|| !memory_hit(&eager, "k")),
        "a deaf listener went unnoticed with a 100 ms timeout"
    );
    faults.freeze_listeners.store(false, Ordering::Relaxed);
    assert!(held_in_memory(&eager, "k", "v"));
}

#[test]
fn a_reply_that_arrives_after_the_invalidation_is_not_kept_in_memory() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = server.cache();
    let slow = Cache::builder().redis_timeouts(Duration::from_secs(2), Duration::from_secs(2));
    let (b, faults) = proxied(&server, slow);
    put(&a, "k", "v1".to_string());
    faults.delay_replies_ms.store(400, Ordering::Relaxed);
    let gets = server.calls("get");
    std::thread::scope(|s| {
        let reader = s.spawn(|| get(&b, "k"));
        // The GET was served (v1), its reply is on its way; then the key changes.
        assert!(eventually(|| server.calls("get") > gets));
        put(&a, "k", "v2".to_string());
        assert_eq!(
            reader.join().unwrap().as_deref(),
            Some("v1"),
            "what was read"
        );
    });
    assert_eq!(
        get(&b, "k").as_deref(),
        Some("v2"),
        "the late reply was kept in memory after its invalidation"
    );
}

/// A child process of `a_cold_key_is_computed_once_by_four_processes_of_eight_threads`:
/// 8 threads ask for one cold key at the given moment; each computation is noted in a file.
#[test]
#[ignore = "child process of a_cold_key_is_computed_once_by_four_processes_of_eight_threads"]
fn child_cold_key() {
    let url = std::env::var("TIERED_TEST_REDIS").unwrap();
    let runs = PathBuf::from(std::env::var("TIERED_TEST_RUNS").unwrap());
    let start: u64 = std::env::var("TIERED_TEST_START").unwrap().parse().unwrap();
    let cache = Cache::builder().redis(url).open().unwrap();
    let start = SystemTime::UNIX_EPOCH + Duration::from_millis(start);
    if let Ok(wait) = start.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let v = cache
                    .get_or_insert_with("cold", &Options::new(), || {
                        use std::io::Write;
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .create(true)
                            .open(&runs)
                            .unwrap();
                        writeln!(f, "{}", std::process::id()).unwrap();
                        std::thread::sleep(Duration::from_millis(100));
                        42u64
                    })
                    .unwrap();
                assert_eq!(*v, 42);
            });
        }
    });
    println!("done");
}

#[test]
fn a_cold_key_is_computed_once_by_four_processes_of_eight_threads() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let children: Vec<_> = (0..4)
        .map(|_| {
            common::spawn_child_piped(
                "child_cold_key",
                dir.path(),
                &[
                    ("TIERED_TEST_REDIS", server.url()),
                    ("TIERED_TEST_RUNS", runs.display().to_string()),
                    ("TIERED_TEST_START", start.to_string()),
                ],
            )
        })
        .collect();
    for child in children {
        let done = common::finish(child, Duration::from_secs(60));
        assert!(
            done.status.is_some_and(|s| s.success()) && done.stdout.contains("done"),
            "a process failed or hung: {}",
            done.transcript()
        );
    }
    let computed = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!(
        (1..=2).contains(&computed),
        "computed {computed} times by 32 callers in 4 processes"
    );
}

#[test]
fn an_invalidation_a_full_server_refuses_still_reaches_every_cache() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = server.pair();
    let tagged = Options::new().tags(["prices"]);
    a.insert_with("t", "old".to_string(), &tagged).unwrap();
    a.namespace("ns").insert("n", "old".to_string()).unwrap();
    a.flush().unwrap();
    assert!(held_in_memory(&b, "t", "old"));
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    a.invalidate_tag("prices").unwrap();
    a.namespace("ns").clear().unwrap();
    a.flush().unwrap();
    assert!(
        matches!(a.health(), Health::RedisUnreachable { .. }),
        "refused writes are not reported: {:?}",
        a.health()
    );
    assert_eq!(get(&a, "t"), None);
    assert!(
        eventually(|| get(&b, "t").is_none()),
        "b kept the invalidated value"
    );
    let ns = b.namespace("ns");
    assert!(eventually(|| ns.get::<_, String>("n").unwrap().is_none()));
    server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    let c = server.cache();
    for cache in [&a, &b, &c] {
        assert_eq!(get(cache, "t"), None, "an invalidated value came back");
        let n = cache.namespace("ns").get::<_, String>("n").unwrap();
        assert!(n.is_none(), "a cleared namespace came back");
    }
    // Writes work again, and health comes back.
    a.insert_with("t", "new".to_string(), &tagged).unwrap();
    a.flush().unwrap();
    assert!(eventually(|| get(&b, "t").as_deref() == Some("new")));
    assert!(eventually(|| a.health().is_healthy()), "{:?}", a.health());
}

#[test]
fn a_healthy_cache_keeps_what_it_read_from_redis_in_memory() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = server.pair();
    put(&a, "k", "v".to_string());
    assert!(held_in_memory(&b, "k", "v"));
    // Several probe rounds of both caches (every 2 s): none may drop b's memory.
    let reads_from_redis = b.stats().disk_hits;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(get(&b, "k").as_deref(), Some("v"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        b.stats().disk_hits,
        reads_from_redis,
        "a healthy cache dropped its memory tier"
    );
}

#[test]
fn a_read_through_over_an_invalidated_record_is_computed_once_across_machines() {
    let Some(server) = Server::start() else {
        return;
    };
    let caches: Vec<Cache> = (0..4).map(|_| server.cache()).collect();
    listening(&server, 4);
    let tagged = Options::new().tags(["t"]);
    caches[0].insert_with("k", 1u64, &tagged).unwrap();
    caches[0].invalidate_tag("t").unwrap();
    caches[0].flush().unwrap();
    let runs = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for cache in &caches {
            for _ in 0..8 {
                let (runs, tagged) = (&runs, &tagged);
                s.spawn(move || {
                    let v = cache
                        .get_or_insert_with("k", tagged, || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            2u64
                        })
                        .unwrap();
                    assert_eq!(*v, 2);
                });
            }
        }
    });
    let runs = runs.load(Ordering::SeqCst);
    assert!(
        runs <= 2,
        "computed {runs} times: every process computed in turn"
    );
}

#[test]
fn dropping_caches_in_any_state_panics_no_thread_of_theirs() {
    let Some(server) = Server::start() else {
        return;
    };
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("tiered-redis"))
        {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        eprintln!("panic: {info}");
    }));
    let a = server.cache();
    put(&a, "k", 0);
    for i in 0..60u64 {
        let b = server.cache();
        let _ = b.get::<_, i32>("k").unwrap();
        std::thread::sleep(Duration::from_micros(i * 300));
        drop(b);
    }
    std::thread::sleep(Duration::from_millis(500));
    std::panic::set_hook(previous);
    assert_eq!(panics.load(Ordering::SeqCst), 0);
}

#[test]
fn two_builds_of_a_memoized_function_sharing_redis_never_clear_each_other() {
    let Some(server) = Server::start() else {
        return;
    };
    let old = tiered::Memoized::new("redis::builds::price", 1);
    let new = tiered::Memoized::new("redis::builds::price", 2);
    let ran = AtomicUsize::new(0);
    let call = |cache: &Cache, memo: &tiered::Memoized, made_by: &str| -> String {
        memo.call(cache, &Options::new(), memo.key(&(7u32,)), || {
            ran.fetch_add(1, Ordering::SeqCst);
            made_by.to_string()
        })
    };
    // A replica of each build, then a fresh replica of the old one (a rolling deploy).
    let (a, b) = (server.cache(), server.cache());
    assert_eq!(call(&a, &old, "old"), "old");
    a.flush().unwrap();
    assert_eq!(
        call(&b, &new, "new"),
        "new",
        "a new version reads its own entries"
    );
    b.flush().unwrap();
    let c = server.cache();
    assert_eq!(
        call(&c, &old, "recomputed"),
        "old",
        "the new build cleared the old one's"
    );
    let d = server.cache();
    assert_eq!(
        call(&d, &new, "recomputed"),
        "new",
        "the old build cleared the new one's"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

/// What a client of [`tls_server`] may need: the authority that signed the server's
/// certificate, and a client certificate and key it signed too (PEM).
#[cfg(feature = "redis-tls")]
struct TlsFiles {
    ca: Vec<u8>,
    client_cert: Vec<u8>,
    client_key: Vec<u8>,
}

/// A `redis-server` that speaks only TLS (asking clients for a certificate with
/// `auth_clients`), with certificates of a throwaway authority made by `openssl`; `None`
/// (loudly) where either program is missing outside CI.
#[cfg(feature = "redis-tls")]
fn tls_server(auth_clients: bool) -> Option<(Server, TlsFiles)> {
    let server = Server::start()?; // checks redis-server; its plain port stays unused
    let dir = server.dir.path();
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // A key and a certificate named `name`, signed by the authority, with the extensions
    // `ext` (version 3 certificates: rustls takes no other).
    let signed = |name: &str, subject: &str, ext: &str| {
        let (key, csr, crt, cnf) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.cnf"),
        );
        std::fs::write(dir.join(&cnf), ext).is_ok()
            && openssl(&[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                subject,
            ])
            && openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "1",
                "-extfile",
                &cnf,
            ])
    };
    let made = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=tiered-test-ca",
    ]) && signed(
        "server",
        "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ) && signed(
        "client",
        "/CN=tiered-test-client",
        "extendedKeyUsage=clientAuth",
    );
    if !made {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is needed for the TLS test in CI"
        );
        eprintln!("\n*** SKIPPED: openssl could not make test certificates ***\n");
        return None;
    }
    let port = redis_server::free_port();
    let mut tls = Server {
        port,
        child: None,
        dir: tempfile::tempdir().unwrap(),
    };
    let file = |name: &str| dir.join(name).display().to_string();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let tls_port = port.to_string();
    tls.child = Some(redis_server::spawn(
        port,
        tls.dir.path(),
        &[
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-auth-clients",
            if auth_clients { "yes" } else { "no" },
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
        ],
    ));
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let files = TlsFiles {
        ca: read("ca.crt"),
        client_cert: read("client.crt"),
        client_key: read("client.key"),
    };
    drop(server);
    Some((tls, files))
}

#[cfg(feature = "redis-tls")]
#[test]
fn a_cache_over_tls_reads_writes_and_hears_invalidations() {
    let Some((server, TlsFiles { ca, .. })) = tls_server(false) else {
        return;
    };
    let url = format!("rediss://localhost:{}", server.port);
    let open = || {
        Cache::builder()
            .redis(&url)
            .redis_tls_root_cert(ca.clone())
            .open()
            .unwrap()
    };
    let (a, b) = (open(), open());
    put(&a, "k", "v1".to_string());
    assert!(
        held_in_memory(&b, "k", "v1"),
        "b could not read over TLS: {:?}",
        b.health()
    );
    a.insert("k", "v2".to_string()).unwrap();
    assert!(eventually(|| get(&b, "k").as_deref() == Some("v2")));
    // Without the authority, the server's certificate is refused: a miss, and health says why.
    let stranger = Cache::builder().redis(&url).open().unwrap();
    assert_eq!(get(&stranger, "k"), None);
    assert!(matches!(stranger.health(), Health::RedisUnreachable { .. }));
}

#[cfg(feature = "redis-tls")]
#[test]
fn a_server_that_asks_for_client_certificates_serves_only_a_cache_that_shows_one() {
    let Some((server, files)) = tls_server(true) else {
        return;
    };
    let url = format!("rediss://localhost:{}", server.port);
    let with_cert = || {
        Cache::builder()
            .redis(&url)
            .redis_tls_root_cert(files.ca.clone())
            .redis_tls_client_cert(files.client_cert.clone(), files.client_key.clone())
            .open()
            .unwrap()
    };
    let (a, b) = (with_cert(), with_cert());
    put(&a, "k", "v1".to_string());
    assert!(
        held_in_memory(&b, "k", "v1"),
        "b could not read over mutual TLS: {:?}",
        b.health()
    );
    a.insert("k", "v2".to_string()).unwrap();
    assert!(eventually(|| get(&b, "k").as_deref() == Some("v2")));
    // Without a certificate the server refuses the connection: a miss, and health says so.
    let without = Cache::builder()
        .redis(&url)
        .redis_tls_root_cert(files.ca.clone())
        .open()
        .unwrap();
    assert_eq!(get(&without, "k"), None);
    without.insert("k", "never stored".to_string()).unwrap();
    assert!(matches!(without.health(), Health::RedisUnreachable { .. }));
    assert_eq!(get(&b, "k").as_deref(), Some("v2"));
    // A key that is not PEM fails the open, and says what to give.
    let err = Cache::builder()
        .redis(&url)
        .redis_tls_client_cert(files.client_cert.clone(), b"not a key".to_vec())
        .open()
        .unwrap_err();
    assert!(matches!(err, tiered::Error::Config(_)), "{err}");
    assert!(err.to_string().contains("redis_tls_client_cert"), "{err}");
}

#[cfg(not(feature = "redis-tls"))]
#[test]
fn a_tls_url_without_the_tls_feature_says_which_feature() {
    let err = Cache::builder()
        .redis("rediss://user:secret@localhost:6380")
        .open()
        .unwrap_err();
    assert!(err.to_string().contains("redis-tls"), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn writes_of_caches_that_use_a_label_first_at_once_all_reach_redis() {
    let Some(server) = Server::start() else {
        return;
    };
    let caches: Vec<Cache> = (0..8).map(|_| server.cache()).collect();
    listening(&server, 8);
    let reader = server.cache();
    let mut lost = Vec::new();
    for round in 0..10u64 {
        let barrier = std::sync::Barrier::new(caches.len());
        let tagged = Options::new().tags([format!("tag{round}")]);
        std::thread::scope(|s| {
            for (i, cache) in caches.iter().enumerate() {
                let (barrier, tagged) = (&barrier, &tagged);
                s.spawn(move || {
                    barrier.wait();
                    cache.insert_with(&(round, i), round, tagged).unwrap();
                    cache.flush().unwrap();
                });
            }
        });
        for i in 0..caches.len() {
            if reader.get::<_, u64>(&(round, i)).unwrap().is_none() {
                lost.push((round, i));
            }
        }
    }
    assert!(lost.is_empty(), "writes that never reached Redis: {lost:?}");
}

#[test]
fn an_idle_limit_counts_from_the_last_write_in_redis_and_expired_entries_go() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = server.cache();
    let idle = Options::new().idle(Duration::from_millis(300));
    a.insert_with("k", 1, &idle).unwrap();
    a.flush().unwrap();
    let key = server.cli(&["--scan", "--pattern", "tiered:r:*"]);
    let pttl: i64 = server.cli(&["PTTL", &key]).parse().unwrap();
    assert!(
        pttl > 0 && pttl <= 300,
        "idle entry kept in Redis for {pttl} ms"
    );
    assert!(eventually(|| server
        .cli(&["--scan", "--pattern", "tiered:r:*"])
        .is_empty()));
    a.clear_expired().unwrap();
    assert_eq!(
        a.clear_expired().unwrap(),
        0,
        "counted what it did not delete"
    );
}

#[test]
fn a_server_that_refuses_tracking_keeps_caches_coherent_through_pub_sub() {
    let Some(server) = Server::start() else {
        return;
    };
    // As a managed service or an ACL may: everything but CLIENT TRACKING.
    let acl = ["ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all"];
    server.cli(&[&acl[..], &["-client|tracking"]].concat());
    let url = format!("redis://app:pw@127.0.0.1:{}", server.port);
    // A prefix with a space: the notices name keys by digest, not by their text.
    let open = || {
        Cache::builder()
            .redis(&url)
            .redis_prefix("my app:")
            .open()
            .unwrap()
    };
    let (a, b) = (open(), open());
    for cache in [&a, &b] {
        assert!(
            eventually(|| matches!(cache.health(), Health::RedisUntracked { .. })),
            "health does not say that tracking is refused: {:?}",
            cache.health()
        );
    }
    put(&a, "k", "v1".to_string());
    assert!(held_in_memory(&b, "k", "v1"));
    a.insert("k", "v2".to_string()).unwrap();
    assert!(
        eventually(|| get(&b, "k").as_deref() == Some("v2")),
        "overwrite not heard"
    );
    let tagged = Options::new().tags(["prices"]);
    a.insert_with("t", "old".to_string(), &tagged).unwrap();
    a.flush().unwrap();
    assert!(held_in_memory(&b, "t", "old"));
    a.invalidate_tag("prices").unwrap();
    assert!(
        eventually(|| get(&b, "t").is_none()),
        "tag invalidation not heard"
    );
    b.remove("k").unwrap();
    b.flush().unwrap();
    assert!(eventually(|| get(&a, "k").is_none()), "removal not heard");
    // A replica's first writes, before it knows that it may not track, are heard too.
    put(&a, "k", "v3".to_string());
    assert!(held_in_memory(&b, "k", "v3"));
    let fresh = open();
    put(&fresh, "k", "v4".to_string());
    assert!(
        eventually(|| get(&b, "k").as_deref() == Some("v4")),
        "a fresh write not heard"
    );
    // And a cache whose user may track tells those that may not.
    let tracking = Cache::builder()
        .redis(server.url())
        .redis_prefix("my app:")
        .open()
        .unwrap();
    put(&tracking, "k", "v5".to_string());
    assert!(
        eventually(|| get(&b, "k").as_deref() == Some("v5")),
        "a tracking cache's write not heard by an untracked one"
    );
}

#[test]
fn an_invalidation_heard_late_still_frees_what_its_label_covered() {
    let Some(server) = Server::start() else {
        return;
    };
    let b = server.cache();
    let (c, faults) = proxied(&server, Cache::builder());
    let tagged = Options::new().tags(["t"]);
    c.insert_with("mine", "held".to_string(), &tagged.clone().memory_only())
        .unwrap();
    // c hears everything 300 ms late; meanwhile it reads a value written under the label's
    // new token.
    faults.delay_listeners_ms.store(300, Ordering::SeqCst);
    b.invalidate_tag("t").unwrap();
    b.insert_with("x", "new".to_string(), &tagged).unwrap();
    b.flush().unwrap();
    assert_eq!(get(&c, "x").as_deref(), Some("new"));
    faults.delay_listeners_ms.store(0, Ordering::SeqCst);
    assert!(
        eventually(|| get(&c, "mine").is_none()),
        "c kept a value of a label invalidated elsewhere"
    );
}

#[test]
fn under_allkeys_lru_evictions_no_invalidated_value_is_served_and_no_call_fails() {
    let Some(server) = Server::start() else {
        return;
    };
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    server.cli(&["CONFIG", "SET", "maxmemory", "2mb"]);
    let (a, b) = server.pair();
    let tagged = Options::new().tags(["t"]);
    for i in 0..20u32 {
        a.insert_with(&i, format!("tagged {i}"), &tagged).unwrap();
    }
    a.flush().unwrap();
    for i in 0..20u32 {
        assert!(b.get::<_, String>(&i).unwrap().is_some());
    }
    // More than the server holds: records and label keys get evicted (and b hears of it).
    let filler = "x".repeat(1024);
    for i in 100..4100u32 {
        a.insert(&i, filler.clone()).unwrap();
    }
    a.flush().unwrap();
    let evicted: u64 = server
        .cli(&["INFO", "stats"])
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(evicted > 0, "nothing was evicted: the test proves nothing");
    a.invalidate_tag("t").unwrap();
    a.flush().unwrap();
    for i in 0..20u32 {
        assert!(
            eventually(|| b.get::<_, String>(&i).unwrap().is_none()),
            "entry {i} served after its tag was invalidated"
        );
    }
    // And it works afterwards.
    put(&a, "after", "v".to_string());
    assert!(eventually(|| get(&b, "after").as_deref() == Some("v")));
}

/// A read while this process's own write of the key is on its way (the server pausing
/// writes) never gets the value the write replaces from Redis, and never keeps it: a removed
/// key reads as removed at once, and after the removal returned.
#[test]
fn a_read_during_a_write_on_its_way_never_gets_or_keeps_the_older_value() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    for folder in [None, Some(dir.path())] {
        let mut builder = Cache::builder()
            .redis(server.url())
            .redis_timeouts(Duration::from_secs(1), Duration::from_secs(5));
        if let Some(folder) = folder {
            builder = builder.path(folder);
        }
        let cache = builder.open().unwrap();
        put(&cache, "k", "v1".to_string());
        assert_eq!(get(&cache, "k").as_deref(), Some("v1"));
        server.cli(&["CLIENT", "PAUSE", "1000", "WRITE"]);
        std::thread::scope(|s| {
            let remover = s.spawn(|| cache.remove("k").unwrap());
            std::thread::sleep(Duration::from_millis(100)); // queued, not sent
            let mut reads = 0;
            while !remover.is_finished() {
                assert_eq!(
                    get(&cache, "k"),
                    None,
                    "the removed value, read back from Redis ({folder:?})"
                );
                reads += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(reads > 10, "the removal was not held by the pause");
        });
        cache.flush().unwrap();
        assert_eq!(get(&cache, "k"), None, "after the removal ({folder:?})");
        drop(cache);
    }
}
