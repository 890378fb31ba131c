//! Attacks on the multi-process layer, kept as regression tests (a reviewer's probes of the
//! change that made a second process a client): stale reads under many threads with a slow
//! `Deserialize`, writes while the owner exits or is killed, three processes, leases whose
//! holder fails or whose owner dies, threads that outlive their clients. Each test runs real
//! processes: this test binary started again as a child that obeys commands on stdin (see
//! `child_app`).

#![cfg(unix)]

mod common;

use common::app::App;

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tiered::{Cache, Durability, Options};

/// A value whose `Deserialize` is slow (0-2 ms): widens every read-then-promote window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Val(pub String);

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if std::env::var_os("ATTACK_SLOW").is_some() {
            let n = (std::process::id() as u64 ^ s.len() as u64 ^ now_nanos()) % 3;
            std::thread::sleep(Duration::from_micros(n * 700));
        }
        Ok(Val(s))
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// An error of a computation (or of the cache), for `try_get_or_insert_with`.
#[derive(Debug)]
pub struct Failed(pub String);

impl From<tiered::Error> for Failed {
    fn from(e: tiered::Error) -> Self {
        Failed(e.to_string())
    }
}

fn open(dir: &Path) -> Cache {
    open_t(dir, Duration::from_secs(20))
}

fn open_t(dir: &Path, timeout: Duration) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .open_timeout(timeout)
        .open()
        .unwrap()
}

fn show(v: Option<Arc<Val>>) -> String {
    match v {
        Some(v) => format!("Some({})", v.0),
        None => "None".into(),
    }
}

/// Child: opens its folder (Immediate durability; `ATTACK_TIMEOUT_MS` as open_timeout) and
/// obeys one command per line of stdin, answering `=> ANSWER`.
#[test]
#[ignore = "child process of the process_attacks tests"]
fn child_app() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let timeout = common::app::child_open_timeout();
    let cache = open_t(&dir, timeout);
    println!("ready");
    let computed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut spinners = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["get", k] => show(cache.get::<_, Val>(*k).unwrap()),
            ["insert", k, v] => format!("{:?}", cache.insert(*k, Val(v.to_string())).is_ok()),
            ["insert-tagged", k, v, tag] => {
                let opts = Options::new().tags([*tag]);
                format!(
                    "{:?}",
                    cache.insert_with(*k, Val(v.to_string()), &opts).is_ok()
                )
            }
            ["remove", k] => format!("{:?}", cache.remove(*k)),
            ["invalidate", tag] => format!("{:?}", cache.invalidate_tag(tag).is_ok()),
            ["clear"] => format!("{:?}", cache.clear().is_ok()),
            ["ns-insert", ns, k, v] => format!(
                "{:?}",
                cache.namespace(*ns).insert(*k, Val(v.to_string())).is_ok()
            ),
            ["ns-get", ns, k] => show(cache.namespace(*ns).get::<_, Val>(*k).unwrap()),
            ["ns-clear", ns] => format!("{:?}", cache.namespace(*ns).clear().is_ok()),
            ["owner"] => format!("{:?}", cache.owner_pid()),
            ["pid"] => format!("{}", std::process::id()),
            ["flush"] => format!("{:?}", cache.flush().is_ok()),
            ["compute", k, ms, how] => {
                let ms: u64 = ms.parse().unwrap();
                let counter = computed.clone();
                let pid = std::process::id();
                let how = how.to_string();
                println!("computing");
                let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cache.try_get_or_insert_with::<_, Val, Failed, _>(
                        *k,
                        &Options::new(),
                        move || {
                            counter.fetch_add(1, Ordering::SeqCst);
                            println!("inside");
                            std::thread::sleep(Duration::from_millis(ms));
                            match how.as_str() {
                                // Unwinds without the panic hook: no message and no
                                // backtrace in the output of a passing run.
                                "panic" => std::panic::resume_unwind(Box::new(
                                    "computation panics on purpose",
                                )),
                                "err" => Err(Failed("computation failed on purpose".to_string())),
                                _ => Ok(Val(format!("by-{pid}"))),
                            }
                        },
                    )
                }));
                let v = match got {
                    Ok(Ok(v)) => v.0.clone(),
                    Ok(Err(e)) => format!("err:{}", e.0.replace(' ', "_")),
                    Err(_) => "panicked".to_string(),
                };
                format!("{} {}", v, computed.load(Ordering::SeqCst))
            }
            // Background readers of K (plain gets and read-throughs) until `quit`.
            ["spin", k, n] => {
                let n: usize = n.parse().unwrap();
                for i in 0..n {
                    let (cache, stop, k) = (cache.clone(), stop.clone(), k.to_string());
                    spinners.push(std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            if i % 3 == 2 {
                                let _ = cache.get_or_insert_with(&k, &Options::new(), || {
                                    Val("spinner".into())
                                });
                            } else {
                                let _ = cache.get::<_, Val>(&k);
                            }
                        }
                    }));
                }
                "spinning".into()
            }
            // Reads K and compares with the expectation ("None" or a value).
            ["check", k, want] => {
                let got = show(cache.get::<_, Val>(*k).unwrap());
                let want = if *want == "None" {
                    "None".to_string()
                } else {
                    format!("Some({want})")
                };
                // A spinner's read-through may legitimately store its value at any time.
                if got == want || got == "Some(spinner)" {
                    "ok".into()
                } else {
                    format!("STALE:got={got},want={want}")
                }
            }
            ["ns-check", ns, k] => {
                let got = show(cache.namespace(*ns).get::<_, Val>(*k).unwrap());
                if got == "None" {
                    "ok".into()
                } else {
                    format!("STALE:got={got},want=None")
                }
            }
            ["quit"] => break,
            other => panic!("unknown command {other:?}"),
        };
        println!("=> {answer}");
    }
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
}

/// Runs one write step `i` in `writer` and returns what a reader must then see for `k`.
fn write_step(writer: &Cache, i: u64) -> (String, &'static str) {
    match i % 6 {
        0 | 3 => {
            writer.insert("k", Val(i.to_string())).unwrap();
            (i.to_string(), "insert")
        }
        1 => {
            writer.remove("k").unwrap();
            ("None".into(), "remove")
        }
        2 => {
            writer
                .insert_with("k", Val(i.to_string()), &Options::new().tags(["t"]))
                .unwrap();
            (i.to_string(), "insert-tagged")
        }
        4 => {
            writer
                .insert_with("k", Val(i.to_string()), &Options::new().tags(["t"]))
                .unwrap();
            writer.invalidate_tag("t").unwrap();
            ("None".into(), "invalidate_tag")
        }
        _ => {
            writer.insert("k", Val(i.to_string())).unwrap();
            writer.clear().unwrap();
            ("None".into(), "clear")
        }
    }
}

fn stale_loop(writer: &Cache, reader: &mut App, iterations: u64) -> Vec<String> {
    let mut stale = Vec::new();
    for i in 0..iterations {
        // The reader holds the current value in memory first (when there is one).
        let _ = reader.ask("get k");
        let (want, what) = write_step(writer, i);
        let got = reader.ask(&format!("check k {want}"));
        if got != "ok" {
            stale.push(format!("iteration {i} after {what}: {got}"));
        }
    }
    stale
}

/// The test process owns the folder and writes; a client child, with 6 threads reading the
/// key all the time (a slow Deserialize), must see each write once the call returned.
#[test]
fn client_never_serves_what_the_owner_replaced() {
    let dir = common::tempdir();
    let owner = open(dir.path());
    let mut reader = App::start_env(dir.path(), &[("ATTACK_SLOW", "1")]);
    assert_ne!(reader.ask("owner"), "None");
    reader.ask("spin k 6");
    let stale = stale_loop(&owner, &mut reader, 600);
    reader.quit();
    assert!(stale.is_empty(), "stale reads: {stale:#?}");
}

/// Owner is a child; the test process and another child are clients: one client writes, the
/// other must see it.
#[test]
fn client_never_serves_what_another_client_replaced() {
    let dir = common::tempdir();
    let _holder = App::start(dir.path());
    let writer = open(dir.path());
    assert!(writer.owner_pid().is_some());
    let mut reader = App::start_env(dir.path(), &[("ATTACK_SLOW", "1")]);
    assert_ne!(reader.ask("owner"), "None");
    reader.ask("spin k 6");
    let stale = stale_loop(&writer, &mut reader, 600);
    reader.quit();
    assert!(stale.is_empty(), "stale reads: {stale:#?}");
}

/// The owner reads while a client writes: the owner (a child with spinning readers) must see
/// the client's writes.
#[test]
fn owner_never_serves_what_a_client_replaced() {
    let dir = common::tempdir();
    let mut reader = App::start_env(dir.path(), &[("ATTACK_SLOW", "1")]);
    let writer = open(dir.path());
    assert!(writer.owner_pid().is_some());
    reader.ask("spin k 6");
    let stale = stale_loop(&writer, &mut reader, 600);
    reader.quit();
    assert!(stale.is_empty(), "stale reads: {stale:#?}");
}

/// Client threads insert and remove (keys not in their memory, so `remove` asks the owner
/// whether the key exists) while the owner exits; every call must succeed, every remove of
/// a key the owner stored must say `true`, and no call may stall for long.
fn writes_while_owner_goes(graceful: bool) {
    let dir = common::tempdir();
    let mut owner = App::start(dir.path());
    // Keys the owner stored: not in the client's memory.
    for i in 0..400 {
        assert_eq!(owner.ask(&format!("insert o{i} x")), "true");
    }
    let client = open_t(dir.path(), Duration::from_secs(4));
    assert!(client.owner_pid().is_some());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let (client, stop, next, failures, slowest) = (
                client.clone(),
                stop.clone(),
                next.clone(),
                failures.clone(),
                slowest.clone(),
            );
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let started = Instant::now();
                    let what = if t < 2 {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= 400 {
                            continue;
                        }
                        let key = format!("o{i}");
                        match client.remove(&key) {
                            Ok(true) => String::new(),
                            other => format!("remove({key}) = {other:?}, the owner had stored it"),
                        }
                    } else if n.is_multiple_of(2) {
                        match client.remove(&format!("never-{t}-{n}")) {
                            Ok(false) => String::new(),
                            other => format!("remove(never-{t}-{n}) = {other:?}"),
                        }
                    } else {
                        match client.insert(&format!("c{t}-{n}"), Val("v".into())) {
                            Ok(()) => String::new(),
                            Err(e) => format!("insert(c{t}-{n}) = Err({e})"),
                        }
                    };
                    let took = started.elapsed();
                    {
                        let mut s = slowest.lock().unwrap();
                        if took > *s {
                            *s = took;
                        }
                    }
                    if !what.is_empty() {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{what} (after {took:?})"));
                    }
                    if t < 2 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    if graceful {
        owner.quit();
    } else {
        owner.kill();
    }
    let gone = Instant::now();
    assert!(
        common::eventually(30, || client.owner_pid().is_none()),
        "the client took over"
    );
    let took_over = gone.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let slowest = *slowest.lock().unwrap();
    assert!(
        failures.is_empty() && slowest < Duration::from_secs(2),
        "took over after {took_over:?}; slowest call {slowest:?}; {} failures: {:#?}",
        failures.len(),
        &failures[..failures.len().min(12)]
    );
}

#[test]
fn writes_while_the_owner_exits() {
    writes_while_owner_goes(true);
}

#[test]
fn writes_while_the_owner_is_killed() {
    writes_while_owner_goes(false);
}

/// Three processes; the owner is killed: exactly one of the two clients owns the folder
/// afterwards, the other is its client, and a write in either is seen by the other.
#[test]
fn three_processes_kill_the_owner() {
    let _watchdog = common::watchdog("three_processes_kill_the_owner", 120);
    let dir = common::tempdir();
    let owner = App::start(dir.path());
    let mut a = App::start(dir.path());
    let mut b = App::start(dir.path());
    assert_eq!(a.ask("insert k v1"), "true");
    assert_eq!(b.ask("check k v1"), "ok");
    assert_eq!(a.ask("check k v1"), "ok");
    owner.kill();
    // Both go on without an error.
    assert_eq!(a.ask("insert k v2"), "true");
    assert_eq!(b.ask("check k v2"), "ok");
    assert_eq!(b.ask("insert k v3"), "true");
    assert_eq!(a.ask("check k v3"), "ok");
    let (pa, pb) = (a.ask("pid"), b.ask("pid"));
    let (oa, ob) = (a.ask("owner"), b.ask("owner"));
    let one_owner = (oa == "None" && ob == format!("Some({pa})"))
        || (ob == "None" && oa == format!("Some({pb})"));
    assert!(one_owner, "a: pid {pa} owner {oa}; b: pid {pb} owner {ob}");
    a.quit();
    b.quit();
}

/// Three processes ask for one missing key at once: one computation.
#[test]
fn three_processes_compute_once() {
    let _watchdog = common::watchdog("three_processes_compute_once", 120);
    let dir = common::tempdir();
    let mut apps: Vec<App> = (0..3).map(|_| App::start(dir.path())).collect();
    for app in &mut apps {
        app.send("compute slow 1500 ok");
    }
    let answers: Vec<String> = apps.iter_mut().map(App::answer).collect();
    let runs: u64 = answers
        .iter()
        .map(|a| a.split_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    let values: std::collections::HashSet<&str> = answers
        .iter()
        .map(|a| a.split_once(' ').unwrap().0)
        .collect();
    assert!(runs == 1 && values.len() == 1, "answers: {answers:?}");
    for app in apps {
        app.quit();
    }
}

/// A lease holder whose computation panics or fails: the waiting process computes instead.
fn failing_holder(how: &str, holder_is_owner: bool) {
    let _watchdog = common::watchdog("failing_holder", 120);
    let dir = common::tempdir();
    let (mut holder, mut waiter) = if holder_is_owner {
        let h = App::start(dir.path());
        (h, App::start(dir.path()))
    } else {
        let w = App::start(dir.path());
        (App::start(dir.path()), w)
    };
    holder.send(&format!("compute key 1000 {how}"));
    holder.wait_line("inside");
    waiter.send("compute key 10 ok");
    let h = holder.answer();
    let w = waiter.answer();
    assert!(
        h.starts_with(if how == "panic" { "panicked" } else { "err:" }),
        "holder: {h}"
    );
    assert!(w.starts_with("by-") && w.ends_with(" 1"), "waiter: {w}");
    holder.quit();
    waiter.quit();
}

#[test]
fn lease_holder_client_panics() {
    failing_holder("panic", false);
}

#[test]
fn lease_holder_owner_panics() {
    failing_holder("panic", true);
}

#[test]
fn lease_holder_client_fails() {
    failing_holder("err", false);
}

/// A client holds a lease granted by the owner; the owner dies; another client waits for the
/// key: nobody hangs, everybody gets a value.
#[test]
fn lease_granted_then_owner_dies() {
    let _watchdog = common::watchdog("lease_granted_then_owner_dies", 120);
    let dir = common::tempdir();
    let owner = App::start(dir.path());
    let mut holder = App::start(dir.path());
    let mut waiter = App::start(dir.path());
    holder.send("compute key 1500 ok");
    holder.wait_line("inside");
    waiter.send("compute key 10 ok");
    std::thread::sleep(Duration::from_millis(300));
    owner.kill();
    let h = holder.answer();
    let w = waiter.answer();
    eprintln!("holder: {h}; waiter: {w}");
    assert!(
        h.starts_with("by-") && w.starts_with("by-"),
        "holder {h}, waiter {w}"
    );
    assert!(
        w.ends_with(" 0"),
        "the waiter computed too although a lease was held (holder {h}, waiter {w})"
    );
    holder.quit();
    waiter.quit();
}

fn task_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

const HELLO: [u8; 8] = [1, 3, 0, 0, 0, 1, 0, 1];

/// 200 connections greet the owner and go away (and 5 real client processes come and go):
/// the owner's threads for them end.
#[test]
fn owner_threads_end_when_clients_go() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let dir = common::tempdir();
    let cache = open(dir.path());
    cache.insert("k", Val("v".into())).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = task_count();
    for _ in 0..200 {
        let mut s = UnixStream::connect(dir.path().join("tiered.sock")).unwrap();
        s.write_all(&HELLO).unwrap();
        let mut header = [0u8; 5];
        s.read_exact(&mut header).unwrap();
    }
    for _ in 0..5 {
        let mut app = App::start(dir.path());
        assert_eq!(app.ask("check k v"), "ok");
        app.send("compute other 1 ok");
        app.answer();
        app.quit();
    }
    // A connection that never greets, closed.
    for _ in 0..50 {
        drop(UnixStream::connect(dir.path().join("tiered.sock")).unwrap());
    }
    let settled = common::eventually(10, || task_count() <= before + 2);
    assert!(
        settled,
        "threads before {before}, after {} ({:?})",
        task_count(),
        thread_names()
    );
}

fn thread_names() -> std::collections::BTreeMap<String, usize> {
    let mut names = std::collections::BTreeMap::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap_or_default();
        *names.entry(comm.trim().to_string()).or_default() += 1;
    }
    names
}
