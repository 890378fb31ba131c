//! A second review's attacks, kept as regression tests: tag names known to every process
//! (kept in the folder, sent with scans), a client's batched read times keeping idle entries
//! alive, leases given back during a takeover, a stopped client and a client slow to read its
//! greeting costing others at most the 5 s acknowledgement limit, a greeting that stays small
//! with many tags. Real processes: this test binary run again as `child_app`.

#![cfg(unix)]

mod common;

use common::app::App;

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiered::{Cache, Durability, EntryFilter, Options};

fn open_d(dir: &Path, durability: Durability) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(durability)
        .open_timeout(Duration::from_secs(20))
        .open()
        .unwrap()
}

fn open(dir: &Path) -> Cache {
    open_d(dir, Durability::Immediate)
}

fn tags_of(cache: &Cache, key: &str) -> String {
    let want = format!("{key:?}");
    let entries = cache.entries(&EntryFilter::new()).unwrap();
    match entries.iter().find(|e| e.key == want) {
        Some(e) => e.tags.join(","),
        None => "absent".into(),
    }
}

fn show(v: Option<Arc<String>>) -> String {
    match v {
        Some(v) => format!("Some({v})"),
        None => "None".into(),
    }
}

/// `client` reads `k` (an entry with a 2 s idle limit) every 200 ms for 5 s, from its memory:
/// the owner and `other` must still see it live.
fn reads_keep_k_alive(client: &Cache, mut owner: App, mut other: App) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert_eq!(show(client.get::<_, String>("k").unwrap()), "Some(v)");
        std::thread::sleep(Duration::from_millis(200));
    }
    let at_other = other.ask("get k");
    let at_owner = owner.ask("get k");
    other.quit();
    owner.quit();
    assert_eq!(
        (at_other.as_str(), at_owner.as_str()),
        ("Some(v)", "Some(v)")
    );
}

/// Child: opens its folder and obeys one command per line of stdin, answering `=> ANSWER`.
#[test]
#[ignore = "child process of the process_edges tests"]
fn child_app() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let timeout = common::app::child_open_timeout();
    let cache = Cache::builder()
        .path(&dir)
        .durability(Durability::Immediate)
        .open_timeout(timeout)
        .open()
        .unwrap();
    println!("ready");
    if std::env::var_os("ATTACK_EXIT_AFTER_READY").is_some() {
        return;
    }
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["get", k] => show(cache.get::<_, String>(*k).unwrap()),
            ["insert", k, v] => format!("{:?}", cache.insert(*k, v.to_string()).is_ok()),
            ["insert-tagged", k, v, tag] => format!(
                "{:?}",
                cache
                    .insert_with(*k, v.to_string(), &Options::new().tags([*tag]))
                    .is_ok()
            ),
            ["insert-idle", k, v, ms] => format!(
                "{:?}",
                cache
                    .insert_with(
                        *k,
                        v.to_string(),
                        &Options::new().idle(Duration::from_millis(ms.parse().unwrap()))
                    )
                    .is_ok()
            ),
            ["tags", k] => tags_of(&cache, k),
            ["explain", k] => {
                format!("{:?}", cache.explain::<_, String>(*k).unwrap()).replace('\n', " ")
            }
            ["owner"] => format!("{:?}", cache.owner_pid()),
            ["timed-insert", k, v] => {
                let t = Instant::now();
                let ok = cache.insert(*k, v.to_string()).is_ok();
                format!("{ok:?} {}", t.elapsed().as_millis())
            }
            ["compute", k] => {
                let got = cache.get_or_insert_with(*k, &Options::new(), || {
                    format!("by-{}", std::process::id())
                });
                show(got.ok())
            }
            ["quit"] => break,
            other => panic!("unknown command {other:?}"),
        };
        println!("=> {answer}");
    }
}

// ---------------------------------------------------------------------------------------
// 1. Tag names

/// A client connected before the owner first used a tag lists the owner's entry carrying it
/// with the tag's hash, not its name: the name reaches a client only in the greeting.
#[test]
fn a_client_names_a_tag_the_owner_first_used_after_it_connected() {
    let dir = common::tempdir();
    let owner = open(dir.path());
    let mut client = App::start(dir.path());
    assert_ne!(client.ask("owner"), "None");
    owner
        .insert_with("k", "v".to_string(), &Options::new().tags(["late"]))
        .unwrap();
    owner.flush().unwrap();
    assert_eq!(tags_of(&owner, "k"), "late");
    let seen = client.ask("tags k");
    // A client started now (greeting after the tag) names it.
    let mut fresh = App::start(dir.path());
    let fresh_seen = fresh.ask("tags k");
    client.quit();
    fresh.quit();
    assert_eq!(fresh_seen, "late", "a client started after the tag");
    assert_eq!(
        seen, "late",
        "a client connected before the owner used the tag"
    );
}

/// The same with a tag another client used first.
#[test]
fn a_client_names_a_tag_another_client_used_after_it_connected() {
    let dir = common::tempdir();
    let owner = open(dir.path());
    let mut a = App::start(dir.path());
    let mut b = App::start(dir.path());
    assert_eq!(a.ask("insert-tagged k v from_a"), "true");
    assert_eq!(tags_of(&owner, "k"), "from_a");
    let seen_by_b = b.ask("tags k");
    a.quit();
    b.quit();
    assert_eq!(seen_by_b, "from_a");
}

/// Invalidation still holds across a restart with the generation-0 rows.
#[test]
fn invalidated_entry_stays_gone_after_reopen_and_tags_are_named() {
    let dir = common::tempdir();
    {
        let c = open(dir.path());
        let o = Options::new().tags(["t"]);
        c.insert_with("old", "1".to_string(), &o).unwrap();
        c.invalidate_tag("t").unwrap();
        c.insert_with("new", "2".to_string(), &o).unwrap();
        c.insert_with("other", "3".to_string(), &Options::new().tags(["u"]))
            .unwrap();
        c.flush().unwrap();
        drop(c);
    }
    {
        let c = open(dir.path());
        assert_eq!(show(c.get::<_, String>("old").unwrap()), "None");
        assert_eq!(show(c.get::<_, String>("new").unwrap()), "Some(2)");
        assert_eq!(tags_of(&c, "new"), "t");
        assert_eq!(tags_of(&c, "other"), "u");
        c.invalidate_tag("u").unwrap();
        c.flush().unwrap();
        drop(c);
    }
    let c = open(dir.path());
    assert_eq!(show(c.get::<_, String>("other").unwrap()), "None");
    assert_eq!(show(c.get::<_, String>("new").unwrap()), "Some(2)");
}

// ---------------------------------------------------------------------------------------
// 2. Batched read times

/// A client reads an idle-limited entry once; the read time waits in its batch until its
/// next read (here: none), so the owner judges the entry by an older read time and another
/// process sees it expired before its idle limit from that read.
#[test]
fn a_single_client_read_keeps_an_idle_entry_alive() {
    let dir = common::tempdir();
    let mut owner = App::start(dir.path());
    let client = open(dir.path());
    assert!(client.owner_pid().is_some());
    let mut other = App::start(dir.path());
    let start = Instant::now();
    client
        .insert_with(
            "k",
            "v".to_string(),
            &Options::new().idle(Duration::from_secs(2)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // The one read: a memory hit here, whose read time is due for the disk (idle / 4 late).
    assert_eq!(show(client.get::<_, String>("k").unwrap()), "Some(v)");
    let read_at = start.elapsed();
    std::thread::sleep(Duration::from_millis(1300));
    // 2.5 s after the insert, 1.3 s after the read: live until 3.2 s.
    let elapsed = start.elapsed();
    let seen = other.ask("get k");
    let seen_owner = owner.ask("get k");
    other.quit();
    owner.quit();
    assert!(
        elapsed < read_at + Duration::from_millis(1900),
        "too slow a machine"
    );
    assert_eq!(
        (seen.as_str(), seen_owner.as_str()),
        ("Some(v)", "Some(v)"),
        "read {read_at:?} after the insert, checked {elapsed:?} after it (idle 2 s)"
    );
}

/// Control of the test above: the same, but 300 ms after its read of `k` the client reads
/// another key from the owner (a disk hit), which sends the waiting batch: the entry then
/// stays alive (the owner's writer commits read times within its 500 ms tick).
#[test]
fn a_single_client_read_then_another_read_keeps_an_idle_entry_alive() {
    let dir = common::tempdir();
    let owner = App::start(dir.path());
    let client = open(dir.path());
    let mut other = App::start(dir.path());
    assert_eq!(other.ask("insert z z"), "true");
    let start = Instant::now();
    client
        .insert_with(
            "k",
            "v".to_string(),
            &Options::new().idle(Duration::from_secs(2)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(show(client.get::<_, String>("k").unwrap()), "Some(v)");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(show(client.get::<_, String>("z").unwrap()), "Some(z)");
    std::thread::sleep(Duration::from_millis(1000));
    let elapsed = start.elapsed();
    let seen = other.ask("get k");
    other.quit();
    owner.quit();
    assert_eq!(seen, "Some(v)", "checked {elapsed:?} after the insert");
}

/// A client reads, every 200 ms for 5 s, an idle-limited (2 s) entry the owner wrote: the
/// owner, which holds it in its memory tier, must still see it live.
#[test]
fn client_reads_keep_an_owner_written_idle_entry_alive_at_the_owner() {
    let dir = common::tempdir();
    let mut owner = App::start(dir.path());
    let client = open(dir.path());
    assert_eq!(owner.ask("insert-idle k v 2000"), "true");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert_eq!(show(client.get::<_, String>("k").unwrap()), "Some(v)");
        std::thread::sleep(Duration::from_millis(200));
    }
    let at_owner = owner.ask("get k");
    let at_client = show(client.get::<_, String>("k").unwrap());
    owner.quit();
    assert_eq!(
        (at_owner.as_str(), at_client.as_str()),
        ("Some(v)", "Some(v)")
    );
}

/// The same entry written by a client (the owner holds it on disk only): the reads keep it
/// alive for another client.
#[test]
fn client_reads_keep_a_client_written_idle_entry_alive() {
    let dir = common::tempdir();
    let owner = App::start(dir.path());
    let client = open(dir.path());
    let mut other = App::start(dir.path());
    assert_eq!(other.ask("insert-idle k v 2000"), "true");
    reads_keep_k_alive(&client, owner, other);
}

// ---------------------------------------------------------------------------------------
// 4. Answers written under the connection's write lock

/// A client stopped with SIGSTOP while holding an entry: a write of the owner and of another
/// client returns within about 5 s, later writes at once.
#[test]
fn a_stopped_client_delays_writes_at_most_about_5_s() {
    let dir = common::tempdir();
    let owner = open(dir.path());
    let mut stopped = App::start(dir.path());
    let mut other = App::start(dir.path());
    owner.insert("k", "1".to_string()).unwrap();
    assert_eq!(stopped.ask("get k"), "Some(1)");
    common::signal(&stopped.child, libc::SIGSTOP);
    // Stopped for sure before the write (state T in /proc/PID/stat).
    let stat = format!("/proc/{}/stat", stopped.child.id());
    assert!(common::eventually(5, || std::fs::read_to_string(&stat)
        .is_ok_and(|s| s
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('T'))));
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    owner.insert("k", "2".to_string()).unwrap();
    let first = t.elapsed();
    let answer = other.ask("timed-insert k2 x");
    let t = Instant::now();
    for i in 0..50 {
        owner.insert(&format!("n{i}"), "x".to_string()).unwrap();
    }
    let fifty = t.elapsed();
    common::signal(&stopped.child, libc::SIGCONT);
    let after = stopped.ask("get k");
    stopped.quit();
    other.quit();
    let other_ms: u64 = answer.split(' ').nth(1).unwrap().parse().unwrap();
    eprintln!("TIMES first {first:?} other {other_ms} ms fifty {fifty:?} after {after}");
    assert!(
        first < Duration::from_millis(6500),
        "owner's first write took {first:?}"
    );
    assert!(
        other_ms < 1500,
        "the other client's write took {other_ms} ms"
    );
    assert!(
        fifty < Duration::from_secs(3),
        "50 owner writes took {fifty:?}"
    );
    // Not asserted: once in 4 runs `after` was Some(1), the old value, read after SIGCONT
    // (see the report: the documented "a read already running" caveat, or not).
}

fn greeting_frame() -> Vec<u8> {
    // Up { id: 1, request: Hello { pid } } in postcard: varint id, variant 0, varint pid.
    let mut body = vec![1u8, 0u8];
    let mut pid = std::process::id();
    loop {
        let byte = (pid & 0x7f) as u8;
        pid >>= 7;
        if pid == 0 {
            body.push(byte);
            break;
        }
        body.push(byte | 0x80);
    }
    let mut frame = vec![1u8];
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// A client that connects and then reads its greeting slowly (the owner knowing many tags)
/// must not hold the owner's writes: the greeting is queued, not written under the clients'
/// lock (it was, and every write of every process waited while the client read).
#[test]
fn a_slow_reading_new_connection_does_not_block_writes() {
    let dir = common::tempdir();
    let owner = open_d(dir.path(), Durability::Batched(Duration::from_millis(50)));
    // 20,000 distinct tags (a tag per user): a greeting of about 400 KB.
    for i in 0..20_000u32 {
        owner
            .insert_with(
                &i,
                i,
                &Options::new().tags([format!("user-with-a-longish-id-{i:08}")]),
            )
            .unwrap();
    }
    owner.flush().unwrap();
    let mut sock = std::os::unix::net::UnixStream::connect(dir.path().join("tiered.sock")).unwrap();
    sock.write_all(&greeting_frame()).unwrap();
    // Reads 16 KiB every 2 s.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let mut sock = sock.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 << 10];
            let mut total = 0;
            std::thread::sleep(Duration::from_millis(500));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match sock.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            total
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let writer = {
        let owner = owner.clone();
        std::thread::spawn(move || owner.insert("w", "x".to_string()).unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !writer.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = t.elapsed();
    let finished = writer.is_finished();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sock.shutdown(std::net::Shutdown::Both);
    let read = reader.join().unwrap();
    writer.join().unwrap();
    assert!(
        finished && took < Duration::from_secs(7),
        "an owner insert took {took:?} (finished: {finished}) while a connection read its \
         greeting slowly ({read} bytes read)"
    );
}

/// A greeting over the frame bound (16 MiB): every tag name ever used goes in it, so a folder
/// whose records carry enough distinct (long) tag names can no longer take clients.
#[test]
fn a_client_can_open_a_folder_with_many_long_tag_names() {
    let dir = common::tempdir();
    let owner = open_d(dir.path(), Durability::Batched(Duration::from_millis(50)));
    let long = "x".repeat(1000);
    for i in 0..18_000u32 {
        owner
            .insert_with(&i, i, &Options::new().tags([format!("{long}-{i}")]))
            .unwrap();
    }
    owner.flush().unwrap();
    let child = common::spawn_child_piped(
        "child_app",
        dir.path(),
        &[
            ("ATTACK_TIMEOUT_MS", "5000".to_string()),
            ("ATTACK_EXIT_AFTER_READY", "1".to_string()),
        ],
    );
    let done = common::finish(child, Duration::from_secs(20));
    assert!(
        done.stdout.contains("ready"),
        "a client could not open the folder:\n{}",
        done.transcript()
    );
}

/// Experiment: the client inserts an idle (2 s) entry then reads it every 200 ms for 5 s
/// (memory hits): another process must still see it live.
#[test]
fn client_reads_keep_its_own_idle_entry_alive() {
    let dir = common::tempdir();
    let owner = App::start(dir.path());
    let client = open(dir.path());
    let other = App::start(dir.path());
    client
        .insert_with(
            "k",
            "v".to_string(),
            &Options::new().idle(Duration::from_secs(2)),
        )
        .unwrap();
    reads_keep_k_alive(&client, owner, other);
}

// ---------------------------------------------------------------------------------------
// 3. Leases across a takeover

/// A computation's error.
#[derive(Debug)]
pub struct Failed;

impl From<tiered::Error> for Failed {
    fn from(_: tiered::Error) -> Self {
        Failed
    }
}

/// A client's computation fails (gives its lease back) while the process takes the folder
/// over from its dead owner: the takeover had already listed the lease to give to the new
/// owner (itself) and the give-back went nowhere, so the new table keeps the lease for good
/// and another process's read-through of the key waits forever.
#[test]
fn a_lease_given_back_during_a_takeover_is_not_kept_forever() {
    let _dog = common::watchdog("lease probe", 240);
    let mut stuck = Vec::new();
    for d in (0..80).step_by(5) {
        let dir = common::tempdir();
        let owner = App::start(dir.path());
        let client = open(dir.path());
        assert!(client.owner_pid().is_some());
        let computing = {
            let client = client.clone();
            std::thread::spawn(move || {
                client.try_get_or_insert_with::<_, String, Failed, _>("k", &Options::new(), || {
                    std::thread::sleep(Duration::from_millis(300));
                    Err(Failed)
                })
            })
        };
        std::thread::sleep(Duration::from_millis(300 - d));
        owner.kill();
        let _ = computing.join().unwrap();
        assert!(common::eventually(10, || client.owner_pid().is_none()));
        let mut other = App::start(dir.path());
        other.send("compute k");
        let other_pid = other.child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let answer = other.answer();
            let _ = tx.send(answer);
            other
        });
        match rx.recv_timeout(Duration::from_secs(4)) {
            Ok(answer) => {
                waiter.join().unwrap().quit();
                assert!(answer.starts_with("Some(by-"), "{answer}");
            }
            Err(_) => {
                stuck.push(d);
                // The child is stuck in its read-through.
                // SAFETY: kill(2) on our child's pid, not reaped yet.
                unsafe { libc::kill(other_pid as libc::pid_t, libc::SIGKILL) };
                break;
            }
        }
    }
    assert!(
        stuck.is_empty(),
        "another process's read-through of the key waited > 4 s after a failed computation \
         ended during the takeover (kill {stuck:?} ms before its end)"
    );
}
