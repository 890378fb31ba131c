//! `tiered::flush_on_exit_signals`: a dev server stopped with Ctrl-C or SIGTERM keeps its
//! batched writes.
#![cfg(unix)]

mod common;

use std::io::BufReader;
use std::time::Duration;

use tiered::{Cache, Durability};

const KEYS: u32 = 500;

/// The child: a batch window far longer than the test, so only the signal's flush can commit.
#[test]
#[ignore = "child process of the signal tests"]
fn child_inserts_then_waits_for_a_signal() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    tiered::flush_on_exit_signals().unwrap();
    tiered::flush_on_exit_signals().unwrap(); // twice is harmless
    let cache = Cache::builder()
        .path(&dir)
        .durability(Durability::Batched(Duration::from_secs(3600)))
        .open()
        .unwrap();
    for i in 0..KEYS {
        cache.insert(&i, i * 2).unwrap();
    }
    println!("inserted");
    std::thread::sleep(Duration::from_secs(120));
    panic!("no signal came");
}

fn stop_with(signal: i32) {
    let dir = common::tempdir();
    let mut child = common::spawn_child("child_inserts_then_waits_for_a_signal", dir.path(), &[]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    common::wait_for_line(&mut out, "inserted");
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(signal),
        "ended by the signal, as without us: {status:?}"
    );
    let cache = Cache::open(dir.path()).unwrap();
    for i in 0..KEYS {
        assert_eq!(
            cache.get::<_, u32>(&i).unwrap().as_deref(),
            Some(&(i * 2)),
            "key {i} was committed before the process ended"
        );
    }
}

#[test]
fn sigterm_flushes_batched_writes_then_ends_the_process() {
    stop_with(libc::SIGTERM);
}

#[test]
fn sigint_flushes_batched_writes_then_ends_the_process() {
    stop_with(libc::SIGINT);
}
