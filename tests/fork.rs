//! A cache used on both sides of `fork()` (see `docs/processes.md`, "Fork"): the child
//! becomes a client of the parent (or of the parent's owner), never writes through the
//! parent's database, and does not keep the folder locked after the parent exits.
//!
//! The test binary never forks itself (other tests run on its threads): each test starts it
//! again on the `fork_helper` child, which opens the folder, forks, and runs both sides of a
//! scenario. A forked side ends with `std::process::exit`, as a program's child would (the
//! exit hook runs), and prints its verdict on the stdout it shares with the helper: the test
//! reads that stdout to its end, which comes when both processes have exited.

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::app::child_open_timeout;
use tiered::{Cache, Durability};

const SCENARIO: &str = "TIERED_FORK_SCENARIO";
/// Each forked process ends by itself after this long, whatever happens: a test never hangs.
const ALARM_SECS: u32 = 120;

fn open(dir: &Path) -> Cache {
    Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .open_timeout(child_open_timeout())
        .open()
        .expect("open cache")
}

fn get(cache: &Cache, key: &str) -> Option<u64> {
    cache.get::<_, u64>(key).expect("get").map(|v| *v)
}

/// A pipe between the two sides of a fork: one byte says "go on".
struct Pipe {
    read: std::fs::File,
    write: std::fs::File,
}

impl Pipe {
    fn new() -> Pipe {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both are fresh descriptors owned by nothing else.
        unsafe {
            Pipe {
                read: std::fs::File::from_raw_fd(fds[0]),
                write: std::fs::File::from_raw_fd(fds[1]),
            }
        }
    }

    fn signal(&mut self) {
        self.write.write_all(b"!").expect("signal through the pipe");
    }

    /// Waits for the other side's byte; `Err` if it exited first.
    fn wait(&mut self) -> Result<(), String> {
        let mut byte = [0u8];
        match self.read.read(&mut byte) {
            Ok(1) => Ok(()),
            other => Err(format!("the other side of the fork ended first: {other:?}")),
        }
    }
}

/// Forks; the child runs `side` and exits (0 if it returned `Ok`, printing
/// `child: ok` or `child: failed: WHY`). Returns the child's pid to the parent.
fn fork(side: impl FnOnce() -> Result<(), String>) -> libc::pid_t {
    // SAFETY: the child runs only `side` (what this file tests) and then exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(ALARM_SECS) };
        let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(side))
            .unwrap_or_else(|_| Err("panicked".into()));
        let code = match verdict {
            Ok(()) => {
                println!("child: ok");
                0
            }
            Err(why) => {
                println!("child: failed: {why}");
                1
            }
        };
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    pid
}

/// The exit code of the child `pid` (it must end by itself).
fn wait_child(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: `status` is valid for writes.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid");
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    }
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

/// Child: runs the scenario named in `TIERED_FORK_SCENARIO` on its folder.
#[test]
#[ignore]
fn fork_helper() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(ALARM_SECS + 60) };
    match std::env::var(SCENARIO).expect("a scenario").as_str() {
        "both-write" => both_write(&dir),
        "child-sleeps" => child_sleeps(&dir),
        "child-reads" => child_reads(&dir),
        "client-forks" => client_forks(&dir),
        other => panic!("unknown scenario {other}"),
    }
}

/// Starts the helper on `scenario`, stdin and stdout piped.
fn helper(dir: &Path, scenario: &str) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "fork_helper",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(common::CHILD_DIR, dir)
    .env(SCENARIO, scenario)
    .env("TIERED_DIR", dir.join("global"))
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    common::default_signals(&mut cmd);
    cmd.spawn().expect("spawn the fork helper")
}

/// Every line the helper and its forked child print, until both have exited.
fn all_lines(out: impl Read) -> Vec<String> {
    BufReader::new(out).lines().map_while(Result::ok).collect()
}

// ---- writes from both sides ----

fn both_write(dir: &Path) {
    let cache = open(dir);
    assert_eq!(cache.owner_pid(), None, "the helper opens the folder first");
    let mut half_done = Pipe::new();
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    fork(|| {
        for i in 0..500u64 {
            cache
                .insert(&format!("child-{i}"), i)
                .map_err(|e| e.to_string())?;
        }
        half_done.signal();
        // The rest after the parent is gone: this process takes the folder over.
        // SAFETY: getppid has no preconditions.
        while unsafe { libc::getppid() } == parent {
            std::thread::sleep(Duration::from_millis(10));
        }
        for i in 500..1000u64 {
            cache
                .insert(&format!("child-{i}"), i)
                .map_err(|e| e.to_string())?;
        }
        for i in 0..1000u64 {
            let got = get(&cache, &format!("child-{i}"));
            check(got == Some(i), || format!("child-{i} read {got:?}"))?;
        }
        Ok(())
    });
    half_done.wait().unwrap();
    for i in 0..1000u64 {
        cache.insert(&format!("parent-{i}"), i).unwrap();
    }
    println!("parent: done");
    // The process exits with the cache open, as one kept in a `static` (what `#[memoize]` and
    // a Python module's global use): the exit hook stops serving, and the database file's
    // locks go with the process's last descriptor of it.
    std::mem::forget(cache);
}

#[test]
fn writes_from_parent_and_child_of_a_fork_all_survive() {
    let dir = common::tempdir();
    let mut helper = helper(dir.path(), "both-write");
    let lines = all_lines(helper.stdout.take().unwrap());
    assert!(
        helper.wait().unwrap().success(),
        "the parent failed: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("child: ok")),
        "the child failed: {lines:?}"
    );

    // Both have exited: a third process takes the folder and finds every write.
    let cache = open(dir.path());
    assert_eq!(cache.owner_pid(), None, "the folder is free to take");
    assert!(cache.health().is_healthy());
    for side in ["parent", "child"] {
        for i in 0..1000u64 {
            assert_eq!(get(&cache, &format!("{side}-{i}")), Some(i), "{side}-{i}");
        }
    }
}

// ---- the folder after the parent exits ----

fn child_sleeps(dir: &Path) {
    let cache = open(dir);
    cache.insert("before", 1u64).unwrap();
    let child = fork(|| {
        // Never touches the cache, and outlives the parent.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    println!("parent: child {child}");
    // Exits with the cache open (see `both_write`).
    std::mem::forget(cache);
}

#[test]
fn a_forked_child_does_not_keep_the_folder_locked_after_the_parent_exits() {
    let dir = common::tempdir();
    let mut helper = helper(dir.path(), "child-sleeps");
    let mut out = BufReader::new(helper.stdout.take().unwrap());
    let mut child = None;
    let mut line = String::new();
    while child.is_none() {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the helper ended early"
        );
        child = line
            .trim_end()
            .rsplit_once("parent: child ")
            .map(|(_, pid)| pid.parse::<libc::pid_t>().unwrap());
    }
    let child = child.unwrap();
    assert!(helper.wait().unwrap().success(), "the parent failed");
    // SAFETY: kill with signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(child, 0) }, 0, "the child still runs");

    // The parent is gone, its child lives on: the folder is free to take, within the bound.
    let taken = Cache::builder()
        .path(dir.path())
        .durability(Durability::Immediate)
        .open_timeout(child_open_timeout())
        .open();
    // SAFETY: the child is ours to end (it sleeps forever).
    unsafe { libc::kill(child, libc::SIGKILL) };
    let cache = taken.expect("a third process takes the folder over while the child lives");
    assert_eq!(cache.owner_pid(), None);
    cache.insert("after", 2u64).unwrap();
    assert_eq!(get(&cache, "before"), Some(1));
    assert_eq!(get(&cache, "after"), Some(2));
    drop(out);
}

// ---- what the child reads, and the parent after the child exits ----

fn child_reads(dir: &Path) {
    let cache = open(dir);
    cache.insert("k", 1u64).unwrap();
    // Made before the fork, like the cache: they follow it in the child.
    let namespace = cache.namespace("ns");
    namespace.insert("k", 1u64).unwrap();
    let global = tiered::global(); // in TIERED_DIR, another folder
    global.insert("k", 1u64).unwrap();
    let (mut to_child, mut to_parent) = (Pipe::new(), Pipe::new());
    let child = fork(|| {
        let first = get(&cache, "k");
        check(first == Some(1), || format!("k read {first:?} before"))?;
        to_parent.signal();
        to_child.wait()?;
        let then = get(&cache, "k");
        check(then == Some(2), || {
            format!("k read {then:?} after the parent wrote 2")
        })?;
        let then = namespace.get::<_, u64>("k").map_err(|e| e.to_string())?;
        check(then.as_deref() == Some(&2), || {
            format!("the namespace's k read {then:?} after the parent wrote 2")
        })?;
        let then = get(global, "k");
        check(then == Some(2), || {
            format!("the global cache's k read {then:?} after the parent wrote 2")
        })?;
        cache
            .insert("from-child", 3u64)
            .map_err(|e| e.to_string())?;
        check(cache.owner_pid().is_some(), || {
            "the child is a client of its parent".into()
        })?;
        Ok(())
    });
    to_parent.wait().unwrap();
    cache.insert("k", 2u64).unwrap();
    namespace.insert("k", 2u64).unwrap();
    global.insert("k", 2u64).unwrap();
    to_child.signal();
    assert_eq!(wait_child(child), 0, "the child failed");

    // The child's exit closed nothing of the parent's.
    assert!(
        dir.join("tiered.sock").exists(),
        "the parent's socket is still there"
    );
    assert_eq!(cache.owner_pid(), None);
    assert_eq!(get(&cache, "from-child"), Some(3));
    cache.insert("k", 4u64).unwrap();
    assert_eq!(get(&cache, "k"), Some(4));
    println!("parent: serving");
    // Serves until the test says so (a line, or the end of stdin).
    let _ = std::io::stdin().read_line(&mut String::new());
}

#[test]
fn a_forked_childs_cache_is_current_and_its_exit_leaves_the_parent_serving() {
    let dir = common::tempdir();
    let mut helper = helper(dir.path(), "child-reads");
    let pid = helper.id();
    let mut out = BufReader::new(helper.stdout.take().unwrap());
    common::wait_for_line(&mut out, "parent: serving");

    // A third process reaches the parent, which still serves the folder.
    let cache = open(dir.path());
    assert_eq!(cache.owner_pid(), Some(pid));
    assert_eq!(get(&cache, "k"), Some(4));
    assert_eq!(get(&cache, "from-child"), Some(3));
    drop(cache);

    writeln!(helper.stdin.take().unwrap(), "quit").unwrap();
    let rest = all_lines(out);
    assert!(
        helper.wait().unwrap().success(),
        "the parent failed: {rest:?}"
    );
}

// ---- a client that forks ----

fn client_forks(dir: &Path) {
    let cache = open(dir);
    // SAFETY: getppid has no preconditions.
    let owner = unsafe { libc::getppid() } as u32;
    assert_eq!(
        cache.owner_pid(),
        Some(owner),
        "the test process holds the folder"
    );
    cache.insert("parent-0", 0u64).unwrap();
    let child = fork(|| {
        for i in 0..100u64 {
            cache
                .insert(&format!("child-{i}"), i)
                .map_err(|e| e.to_string())?;
        }
        let got = get(&cache, "parent-0");
        check(got == Some(0), || format!("parent-0 read {got:?}"))?;
        check(cache.owner_pid() == Some(owner), || {
            format!("the child's owner is {:?}", cache.owner_pid())
        })?;
        Ok(())
    });
    assert_eq!(wait_child(child), 0, "the child failed");
    cache.insert("parent-1", 1u64).unwrap();
    for i in 0..100u64 {
        assert_eq!(get(&cache, &format!("child-{i}")), Some(i));
    }
}

#[test]
fn a_forked_child_of_a_client_process_is_a_client_of_the_same_owner() {
    let dir = common::tempdir();
    let cache = open(dir.path());
    let mut helper = helper(dir.path(), "client-forks");
    let lines = all_lines(helper.stdout.take().unwrap());
    assert!(
        helper.wait().unwrap().success(),
        "the helper failed: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("child: ok")),
        "the child failed: {lines:?}"
    );
    assert_eq!(cache.owner_pid(), None, "still the owner");
    assert_eq!(get(&cache, "parent-0"), Some(0));
    assert_eq!(get(&cache, "parent-1"), Some(1));
    for i in 0..100u64 {
        assert_eq!(get(&cache, &format!("child-{i}")), Some(i));
    }
}
