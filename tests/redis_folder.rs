//! A folder in front of Redis (`path` and `redis` together): each machine's folder keeps
//! copies of Redis's records, and a copy is served only once Redis confirmed it. Against a
//! real `redis-server`, as in `tests/redis.rs`.

#![cfg(feature = "redis")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::redis::{eventually, get, listening, put, Server};
use tiered::{Cache, Options};

/// The builder of a cache with the folder `folder` in front of `server`.
fn in_front(server: &Server, folder: &Path) -> tiered::CacheBuilder {
    Cache::builder()
        .path(folder)
        .redis(server.url())
        .redis_timeouts(Duration::from_millis(500), Duration::from_millis(500))
}

/// A cache with its own folder in front of `server`, as one machine would open it.
fn machine(server: &Server, folder: &Path) -> Cache {
    in_front(server, folder).open().unwrap()
}

/// Closes `cache` (its copies written) and opens its folder again: a restart.
fn restart(server: &Server, folder: &Path, cache: Cache) -> Cache {
    cache.flush().unwrap();
    drop(cache);
    machine(server, folder)
}

/// Bytes the server has sent to its clients (`INFO stats`).
fn sent_bytes(server: &Server) -> u64 {
    let info = server.cli(&["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_net_output_bytes in INFO stats")
}

#[test]
fn a_restarted_machine_reads_its_copy_from_the_folder_without_the_value_sent_again() {
    let Some(server) = Server::start() else {
        return;
    };
    let (dir_a, dir_b) = (common::tempdir(), common::tempdir());
    let a = machine(&server, dir_a.path());
    let b = machine(&server, dir_b.path());
    let frame = "x".repeat(100_000);
    put(&a, "frame", frame.clone());
    assert_eq!(get(&b, "frame").as_deref(), Some(frame.as_str()));
    let b = restart(&server, dir_b.path(), b);
    let (sent, confirms) = (sent_bytes(&server), server.calls("eval"));
    assert_eq!(get(&b, "frame").as_deref(), Some(frame.as_str()));
    let resent = sent_bytes(&server) - sent;
    assert!(
        resent < 10_000,
        "the server sent {resent} bytes for a 100 kB value the folder had"
    );
    assert_eq!(server.calls("eval"), confirms + 1, "one confirmation");
    assert_eq!(b.stats().disk_hits, 1);
    assert!(dir_b.path().join("tiered.redb").exists());
}

#[test]
fn what_changed_elsewhere_while_a_machine_was_down_is_never_served_from_its_folder() {
    let Some(server) = Server::start() else {
        return;
    };
    let (dir_a, dir_b) = (common::tempdir(), common::tempdir());
    let a = machine(&server, dir_a.path());
    let mut b = machine(&server, dir_b.path());
    let tagged = Options::new().tags(["prices"]);
    a.insert("overwritten", "old".to_string()).unwrap();
    a.insert("removed", "old".to_string()).unwrap();
    a.insert_with("tagged", "old".to_string(), &tagged).unwrap();
    a.namespace("user:7")
        .insert("in a namespace", "old".to_string())
        .unwrap();
    a.insert("cleared", "old".to_string()).unwrap();
    a.flush().unwrap();
    for key in ["overwritten", "removed", "tagged", "cleared"] {
        assert_eq!(get(&b, key).as_deref(), Some("old"), "{key}");
    }
    assert!(b
        .namespace("user:7")
        .get::<_, String>("in a namespace")
        .unwrap()
        .is_some());

    // Each change made while b is down; b restarts with the old copy in its folder.
    let changes: [(&str, &dyn Fn()); 5] = [
        ("overwritten", &|| put(&a, "overwritten", "new".to_string())),
        ("removed", &|| {
            a.remove("removed").unwrap();
            a.flush().unwrap();
        }),
        ("tagged", &|| a.invalidate_tag("prices").unwrap()),
        ("in a namespace", &|| a.namespace("user:7").clear().unwrap()),
        ("cleared", &|| a.clear().unwrap()),
    ];
    for (key, change) in changes {
        b.flush().unwrap();
        drop(b);
        change();
        b = machine(&server, dir_b.path());
        let read = match key {
            "in a namespace" => b
                .namespace("user:7")
                .get::<_, String>(key)
                .unwrap()
                .map(|v| (*v).clone()),
            _ => get(&b, key),
        };
        let want = (key == "overwritten").then_some("new");
        assert_eq!(read.as_deref(), want, "{key}: the folder's copy was served");
    }
}

#[test]
fn a_change_elsewhere_reaches_a_running_machine_s_memory_and_folder() {
    let Some(server) = Server::start() else {
        return;
    };
    let (dir_a, dir_b) = (common::tempdir(), common::tempdir());
    let a = machine(&server, dir_a.path());
    // A memory tier too small to keep the value: every read of it goes to the folder.
    let b = in_front(&server, dir_b.path())
        .memory_capacity(1024)
        .open()
        .unwrap();
    listening(&server, 2);
    let big = |v: &str| v.repeat(10_000);
    put(&a, "k", big("1"));
    assert_eq!(get(&b, "k"), Some(big("1")));
    b.flush().unwrap();
    assert_eq!(get(&b, "k"), Some(big("1")));
    assert!(b.stats().disk_hits >= 1, "{:?}", b.stats());
    put(&a, "k", big("2"));
    assert!(
        eventually(|| get(&b, "k") == Some(big("2"))),
        "the folder's old copy was served after the overwrite"
    );
    a.invalidate_tag("none-of-these").unwrap();
    put(&a, "k", big("3"));
    a.clear().unwrap();
    assert!(
        eventually(|| get(&b, "k").is_none()),
        "served after a clear"
    );
}

#[test]
fn with_the_server_gone_a_folder_copy_is_a_miss_and_no_caller_sees_an_error() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let cache = machine(&server, dir.path());
    put(&cache, "k", "v".to_string());
    let cache = restart(&server, dir.path(), cache);
    server.stop();
    assert_eq!(get(&cache, "k"), None, "an unconfirmed copy was served");
    cache.insert("other", "w".to_string()).unwrap();
    assert_eq!(get(&cache, "other").as_deref(), Some("w"));
    server.launch();
    // The server came back empty: nothing to confirm the copy with.
    assert!(eventually(|| cache.health().is_healthy()));
    assert_eq!(get(&cache, "k"), None);
    put(&cache, "k", "again".to_string());
    let cache = restart(&server, dir.path(), cache);
    assert_eq!(get(&cache, "k").as_deref(), Some("again"));
}

#[test]
fn a_folder_in_front_of_redis_gets_the_same_answers_as_redis_alone() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let cache = machine(&server, dir.path());
    let alone = server.cache();
    listening(&server, 2);
    // Computed once across both.
    let computed = std::sync::atomic::AtomicUsize::new(0);
    for c in [&cache, &alone, &cache] {
        let v = c
            .get_or_insert_with("lazy", &Options::new(), || {
                computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                "computed".to_string()
            })
            .unwrap();
        assert_eq!(*v, "computed");
    }
    assert_eq!(computed.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Expiry holds in the copy too.
    cache
        .insert_with(
            "brief",
            "v".to_string(),
            &Options::new().ttl(Duration::from_millis(300)),
        )
        .unwrap();
    cache.flush().unwrap();
    let cache = restart(&server, dir.path(), cache);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(get(&cache, "brief"), None, "an expired copy was served");
    assert_eq!(get(&alone, "brief"), None);
}

#[test]
fn a_folder_open_without_redis_is_not_handed_out_as_one_in_front_of_redis_nor_the_reverse() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let plain = Cache::open(dir.path()).unwrap();
    let err = in_front(&server, dir.path()).open().unwrap_err();
    assert!(matches!(err, tiered::Error::Config(_)), "{err}");
    assert!(err.to_string().contains("without Redis"), "{err}");
    drop(plain);
    let dir = common::tempdir();
    let in_front = machine(&server, dir.path());
    let err = Cache::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("in front of Redis"), "{err}");
    drop(in_front);
}

#[test]
fn a_copy_larger_than_the_folder_is_not_kept_and_pushes_out_no_other() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let cache = in_front(&server, dir.path())
        .disk_capacity(1 << 20)
        .open()
        .unwrap();
    for i in 0..20u32 {
        cache.insert(&i, "x".repeat(1000)).unwrap();
    }
    cache.flush().unwrap();
    let copies = cache.stats().entries;
    assert_eq!(copies, 20, "{:?}", cache.stats());
    // Larger than the folder, smaller than redis_max_value_bytes: in Redis, not copied.
    cache.insert("large", "y".repeat(3 << 20)).unwrap();
    cache.flush().unwrap();
    assert_eq!(cache.stats().entries, copies, "{:?}", cache.stats());
    assert_eq!(cache.stats().evictions, 0);
    let cache = restart(&server, dir.path(), cache);
    assert_eq!(get(&cache, "large").map(|v| v.len()), Some(3 << 20));
}

#[test]
fn a_copy_read_recently_outlives_older_ones_when_the_folder_is_full() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let cache = in_front(&server, dir.path())
        .disk_capacity(1 << 20)
        .memory_capacity(1024) // every read goes past memory
        .open()
        .unwrap();
    let value = |i: u32| format!("{i:08}").repeat(2_500); // 20 kB
    cache.insert("unread", value(0)).unwrap();
    cache.insert("read", value(1)).unwrap();
    cache.flush().unwrap();
    // Newer copies until the folder evicts, "read" read (its copy) before each.
    let mut i = 2;
    while cache.stats().evictions == 0 {
        assert!(i < 1000, "the folder never evicted: {:?}", cache.stats());
        assert_eq!(get(&cache, "read"), Some(value(1)));
        cache.insert(&i, value(i)).unwrap();
        cache.flush().unwrap();
        i += 1;
    }
    assert!(cache.stats().disk_hits > 1, "{:?}", cache.stats());
    // After a restart, what the folder still holds is read without the value sent again.
    let cache = restart(&server, dir.path(), cache);
    let sent = sent_bytes(&server);
    assert_eq!(get(&cache, "unread"), Some(value(0)));
    assert!(
        sent_bytes(&server) - sent > 20_000,
        "the copy never read outlived newer ones"
    );
    let sent = sent_bytes(&server);
    assert_eq!(get(&cache, "read"), Some(value(1)));
    assert!(
        sent_bytes(&server) - sent < 10_000,
        "the copy read last was evicted before older ones"
    );
}

#[test]
fn a_copy_is_confirmed_while_the_server_pauses_writes_as_in_a_failover() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let cache = in_front(&server, dir.path())
        .memory_capacity(1024) // every read goes past memory, to the copy
        .redis_timeouts(Duration::from_millis(500), Duration::from_millis(500))
        .open()
        .unwrap();
    let value = "v".repeat(5000);
    put(&cache, "k", value.clone());
    assert_eq!(get(&cache, "k"), Some(value.clone()));
    // Longer than the command timeout: a script the pause held would time out.
    server.cli(&["CLIENT", "PAUSE", "3000", "WRITE"]);
    for _ in 0..3 {
        assert_eq!(
            get(&cache, "k"),
            Some(value.clone()),
            "{:?}",
            cache.health()
        );
    }
    assert!(cache.health().is_healthy(), "{:?}", cache.health());
    server.cli(&["CLIENT", "UNPAUSE"]);
}

#[test]
fn a_folder_of_copies_is_refused_to_a_process_without_redis_and_keeps_its_copies() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let cache = machine(&server, dir.path());
    put(&cache, "frame", "x".repeat(100_000));
    cache.flush().unwrap();
    drop(cache);
    let err = Cache::open(dir.path()).unwrap_err();
    assert!(matches!(err, tiered::Error::Config(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("copies of the cache in Redis"), "{text}");
    assert!(text.contains(&server.url()), "names the server: {text}");
    // The copy is still there for the next process with Redis.
    let cache = machine(&server, dir.path());
    let sent = sent_bytes(&server);
    assert_eq!(get(&cache, "frame").map(|v| v.len()), Some(100_000));
    assert!(sent_bytes(&server) - sent < 10_000, "the copy was lost");
}

#[test]
fn a_damaged_copy_is_read_from_redis_instead() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let value = format!("MARKER{}END", "q".repeat(2000));
    let cache = machine(&server, dir.path());
    put(&cache, "k", value.clone());
    cache.flush().unwrap();
    drop(cache);
    // One byte inside the payload, its checksum (the last 8 bytes) intact.
    let file = dir.path().join("tiered.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == b"MARKER")
        .expect("the copy in the file");
    bytes[at + 500] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let cache = machine(&server, dir.path());
    assert_eq!(get(&cache, "k"), Some(value), "a damaged copy made a miss");
}

#[test]
fn a_server_that_refuses_scripts_still_gets_every_copy_confirmed_by_a_whole_read() {
    let Some(server) = Server::start() else {
        return;
    };
    server.cli(&[
        "ACL",
        "SETUSER",
        "noscripts",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "-eval",
        "-evalsha",
    ]);
    let url = format!("redis://noscripts:pw@127.0.0.1:{}", server.port);
    let open = |dir: &Path| {
        Cache::builder()
            .path(dir)
            .redis(&url)
            .memory_capacity(1024)
            .open()
            .unwrap()
    };
    let (dir_a, dir_b) = (common::tempdir(), common::tempdir());
    let a = machine(&server, dir_a.path());
    let b = open(dir_b.path());
    put(&a, "k", "v1".repeat(1000));
    assert_eq!(get(&b, "k"), Some("v1".repeat(1000)));
    assert_eq!(
        get(&b, "k"),
        Some("v1".repeat(1000)),
        "the copy, read whole"
    );
    put(&a, "k", "v2".repeat(1000));
    assert!(
        eventually(|| get(&b, "k") == Some("v2".repeat(1000))),
        "an old copy was served without the script"
    );
    assert!(b.health().is_healthy(), "{:?}", b.health());
}

#[test]
fn a_folder_holding_a_cache_of_its_own_is_refused_in_front_of_redis_and_keeps_its_entries() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = common::tempdir();
    let local = Cache::open(dir.path()).unwrap();
    for i in 0..20u32 {
        local.insert(&i, format!("local{i}")).unwrap();
    }
    local.flush().unwrap();
    // Held by a process without Redis, then not held: refused both times, unmarked.
    for holder in [Some(local), None] {
        for url in [server.url(), "redis://127.0.0.1:1".to_string()] {
            let err = Cache::builder()
                .path(dir.path())
                .redis(url)
                .open()
                .unwrap_err();
            assert!(matches!(err, tiered::Error::Config(_)), "{err}");
            assert!(err.to_string().contains("without Redis"), "{err}");
        }
        drop(holder);
    }
    let local = Cache::open(dir.path()).expect("the folder is still a cache without Redis");
    for i in 0..20u32 {
        assert_eq!(
            local
                .get::<_, String>(&i)
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some(format!("local{i}").as_str())
        );
    }
}

#[test]
fn a_marker_that_cannot_be_read_still_refuses_a_process_without_redis() {
    let dir = common::tempdir();
    std::fs::create_dir(dir.path().join("redis-copies")).unwrap();
    let err = Cache::open(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("copies of the cache in Redis"),
        "{err}"
    );
    #[cfg(unix)]
    {
        let dir = common::tempdir();
        std::os::unix::fs::symlink("/nonexistent/marker", dir.path().join("redis-copies")).unwrap();
        let err = Cache::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("(unreadable)"), "{err}");
    }
}

#[test]
fn an_empty_redis_url_is_refused_not_taken_for_no_redis() {
    let dir = common::tempdir();
    for builder in [
        Cache::builder().redis(""),
        Cache::builder().path(dir.path()).redis("  "),
    ] {
        let err = builder.open().unwrap_err();
        assert!(err.to_string().contains("the Redis URL is empty"), "{err}");
    }
    assert!(!dir.path().join("redis-copies").exists());
}
