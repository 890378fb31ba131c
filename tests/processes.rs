//! Many processes on one cache folder: the first holds the database and serves the others
//! (see `docs/processes.md`). Every test here runs real processes: this test binary started
//! again as an "app" child that obeys commands on its stdin.

#![cfg(unix)]

mod common;

use common::app::App;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiered::{Cache, Durability, Options};

/// Child: opens its folder (Immediate durability) and obeys one command per line of stdin,
/// answering `=> ANSWER` on stdout: `get K`, `insert K V`, `insert-tagged K V TAG`,
/// `compute K MS` (a read-through whose computation takes MS ms, answering what it returned
/// and how many computations ran here), `invalidate TAG`, `quit`.
#[test]
#[ignore = "child process of the processes tests"]
fn child_app() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let cache = Cache::builder()
        .path(&dir)
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    println!("ready");
    let computed = Arc::new(AtomicU64::new(0));
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["get", k] => format!("{:?}", cache.get::<_, String>(*k).unwrap().as_deref()),
            ["insert", k, v] => format!("{:?}", cache.insert(*k, v.to_string()).is_ok()),
            ["insert-tagged", k, v, tag] => {
                let opts = Options::new().tags([*tag]);
                format!("{:?}", cache.insert_with(*k, v.to_string(), &opts).is_ok())
            }
            ["compute", k, ms] => {
                let ms: u64 = ms.parse().unwrap();
                let counter = computed.clone();
                let pid = std::process::id();
                println!("computing");
                let v = cache
                    .get_or_insert_with(*k, &Options::new(), move || {
                        counter.fetch_add(1, Ordering::SeqCst);
                        println!("inside");
                        std::thread::sleep(Duration::from_millis(ms));
                        format!("by-{pid}")
                    })
                    .unwrap();
                format!("{} {}", v, computed.load(Ordering::SeqCst))
            }
            ["invalidate", tag] => format!("{:?}", cache.invalidate_tag(tag).is_ok()),
            ["invalidations"] => format!("{}", cache.stats().invalidations),
            ["quit"] => break,
            other => panic!("unknown command {other:?}"),
        };
        println!("=> {answer}");
    }
}

fn open(dir: &Path) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .open_timeout(Duration::from_secs(20))
        .open()
        .unwrap()
}

#[test]
fn a_second_process_opens_at_once_and_shares_the_entries_both_ways() {
    let dir = common::tempdir();
    let mut app = App::start(dir.path());
    assert_eq!(app.ask("insert a from-app"), "true");

    let started = std::time::Instant::now();
    let cache = open(dir.path());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a client does not wait for the owner"
    );
    assert_eq!(
        cache
            .get::<_, String>("a")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("from-app")
    );
    cache.insert("b", "from-test".to_string()).unwrap();
    assert_eq!(app.ask("get b"), "Some(\"from-test\")");
    assert!(cache.remove("a").unwrap());
    assert_eq!(app.ask("get a"), "None");
    assert_eq!(
        cache.stats().entries,
        1,
        "a client reports the folder's entries"
    );
    app.quit();
}

#[test]
fn an_overwrite_or_invalidation_in_one_process_is_seen_by_the_others_next_read() {
    let dir = common::tempdir();
    let mut app = App::start(dir.path());
    let cache = open(dir.path());

    // Both hold `k` in memory.
    assert_eq!(app.ask("insert k v1"), "true");
    assert_eq!(
        cache
            .get::<_, String>("k")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("v1")
    );
    assert_eq!(app.ask("get k"), "Some(\"v1\")");

    // The client overwrites: the owner's next read has the new value.
    cache.insert("k", "v2".to_string()).unwrap();
    assert_eq!(app.ask("get k"), "Some(\"v2\")");
    // The owner overwrites: the client's next read has it, though it held v2 in memory.
    assert_eq!(app.ask("insert k v3"), "true");
    assert_eq!(
        cache
            .get::<_, String>("k")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("v3")
    );

    // A tag invalidated by the client: the owner misses at once, and the other way round.
    assert_eq!(app.ask("insert-tagged p 10 prices"), "true");
    assert_eq!(app.ask("insert-tagged q 20 quotes"), "true");
    assert!(cache.get::<_, String>("p").unwrap().is_some());
    assert!(cache.get::<_, String>("q").unwrap().is_some());
    cache.invalidate_tag("prices").unwrap();
    assert_eq!(app.ask("get p"), "None");
    assert_eq!(app.ask("get q"), "Some(\"20\")");
    assert_eq!(app.ask("invalidate quotes"), "true");
    assert!(cache.get::<_, String>("q").unwrap().is_none());
    app.quit();
}

#[test]
fn each_process_counts_its_own_invalidations_only() {
    // The folder's owner applies a client's invalidation; the client counted it, and the
    // owner does not count it again (summed over processes, it is one invalidation).
    let dir = common::tempdir();
    let owner = open(dir.path());
    let mut client = App::start(dir.path());
    assert_eq!(client.ask("invalidate prices"), "true");
    assert_eq!(client.ask("invalidations"), "1");
    assert_eq!(owner.stats().invalidations, 0);
    owner.invalidate_tag("reports").unwrap();
    assert_eq!(owner.stats().invalidations, 1);
    assert_eq!(client.ask("invalidations"), "1");
    client.quit();
}

#[test]
fn two_processes_compute_a_missing_key_once() {
    let dir = common::tempdir();
    let mut owner = App::start(dir.path());
    let mut client = App::start(dir.path());
    owner.send("compute slow 1500");
    client.send("compute slow 1500");
    let a = owner.answer();
    let b = client.answer();
    let (va, na) = a.split_once(' ').unwrap();
    let (vb, nb) = b.split_once(' ').unwrap();
    assert_eq!(va, vb, "both got the one computed value");
    let runs: u64 = na.parse::<u64>().unwrap() + nb.parse::<u64>().unwrap();
    assert_eq!(
        runs, 1,
        "the computation ran once across both processes ({a} / {b})"
    );
    owner.quit();
    client.quit();
}

#[test]
fn a_killed_lease_holder_lets_the_waiting_process_compute() {
    let dir = common::tempdir();
    let cache = open(dir.path()); // this process owns the folder
    let mut holder = App::start(dir.path());
    holder.send("compute key 600000");
    // Wait until the holder is inside its computation (it holds the lease).
    loop {
        let mut line = String::new();
        holder.output.read_line(&mut line).unwrap();
        if line.trim_end().ends_with("inside") {
            break;
        }
    }
    let waiter = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache
                .get_or_insert_with("key", &Options::new(), || "by-waiter".to_string())
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiter.is_finished(),
        "the waiter waits for the lease holder"
    );
    holder.kill();
    let watchdog = common::watchdog("the waiter after the holder died", 30);
    assert_eq!(waiter.join().unwrap().as_str(), "by-waiter");
    drop(watchdog);
}

/// Child: a client that writes `TIERED_BASE + i` with Immediate durability from 4 threads,
/// printing each key once its insert returned, until killed; its owner is killed meanwhile.
#[test]
#[ignore = "child process of the processes tests"]
fn child_writer() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let cache = open(&dir);
    println!("ready");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let (cache, out) = (cache.clone(), out.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let key = i * 4 + t;
                    cache.insert(&key, format!("value-{key}")).unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(out, "acked {key}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn killing_the_owner_while_a_client_writes_loses_no_acknowledged_write() {
    let dir = common::tempdir();
    let owner = App::start(dir.path());
    let mut writer = common::spawn_child("child_writer", dir.path(), &[]);
    let mut out = BufReader::new(writer.stdout.take().unwrap());
    common::wait_for_line(&mut out, "ready");
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let reading = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if let Some(k) = line.strip_prefix("acked ") {
                    acked.lock().unwrap().push(k.parse().unwrap());
                }
            }
        })
    };
    let count = |acked: &Arc<Mutex<Vec<u64>>>| acked.lock().unwrap().len();
    assert!(
        common::eventually(30, || count(&acked) >= 200),
        "the client writes"
    );
    owner.kill();
    let at_kill = count(&acked);
    // The client takes over within its open_timeout and goes on writing without an error.
    assert!(
        common::eventually(30, || count(&acked) >= at_kill + 200),
        "the client went on writing after its owner died ({} acked at the kill, {} now)",
        at_kill,
        count(&acked)
    );
    common::signal(&writer, libc::SIGKILL);
    writer.wait().unwrap();
    reading.join().unwrap();
    let cache = open(dir.path());
    let acked = acked.lock().unwrap().clone();
    for key in &acked {
        assert_eq!(
            cache
                .get::<_, String>(key)
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some(format!("value-{key}").as_str()),
            "acknowledged write {key} is present"
        );
    }
}

#[test]
fn a_new_process_is_a_client_at_once_then_the_owner_when_the_old_one_exits() {
    let dir = common::tempdir();
    let mut old = App::start(dir.path());
    assert_eq!(old.ask("insert k kept"), "true");
    let new = open(dir.path());
    assert!(new.owner_pid().is_some());
    old.quit();
    assert!(
        common::eventually(20, || new.owner_pid().is_none()),
        "the new process took the folder over"
    );
    assert_eq!(
        new.get::<_, String>("k")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("kept")
    );
    new.insert("after", "ok".to_string()).unwrap();
    // And a process started now is its client.
    let mut third = App::start(dir.path());
    assert_eq!(third.ask("get after"), "Some(\"ok\")");
    third.quit();
}

/// The dev loop under a reloader (`cargo watch -x run`, `watchexec -r`): the new build starts
/// while the old one is still running, and the reloader stops the old one with SIGTERM (or
/// SIGKILL when it does not exit in time).
#[test]
fn a_reloader_restart_hands_the_folder_to_the_new_process() {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let dir = common::tempdir();
        let mut old = App::start(dir.path());
        assert_eq!(old.ask("insert report v1"), "true");
        let mut new = App::start(dir.path());
        // At once a client: it serves the old process's entries while the old one runs.
        assert_eq!(new.ask("get report"), "Some(\"v1\")");
        common::signal(&old.child, signal);
        old.child.wait().unwrap();
        // The new process goes on without an error: it writes (taking the folder over) and
        // reads what the old one wrote.
        assert_eq!(new.ask("insert report v2"), "true");
        assert_eq!(new.ask("get report"), "Some(\"v2\")");
        new.quit();
        let cache = open(dir.path());
        assert_eq!(
            cache
                .get::<_, String>("report")
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some("v2"),
            "after signal {signal}"
        );
    }
}
