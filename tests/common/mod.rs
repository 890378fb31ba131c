//! Helpers shared by the test files: temporary folders, clocks, and child processes.
//!
//! A test that needs a second process re-runs its own test binary on one `#[ignore]`d test
//! (the child), passing the cache folder in `TIERED_CHILD_DIR`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use tiered::{Cache, Durability, ManualClock};

pub const CHILD_DIR: &str = "TIERED_CHILD_DIR";

/// The folder a child was given, or `None` when the test runs as an ordinary (ignored) test.
pub fn child_dir() -> Option<PathBuf> {
    std::env::var_os(CHILD_DIR).map(PathBuf::from)
}

/// Starts this test binary running only `test`, with `dir` and extra environment.
pub fn spawn_child(test: &str, dir: &Path, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}

/// Reads the child's stdout until a line ending with `marker` (the test harness prints
/// `test NAME ... ` without a newline before the test's own output).
pub fn wait_for_line(out: &mut BufReader<ChildStdout>, marker: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("read child output");
        assert!(n > 0, "child exited before printing {marker:?}");
        if line.trim_end().ends_with(marker) {
            return;
        }
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemTime::now()))
}

/// A disk cache in `dir` reading time from `clock`, committing each write before it returns.
pub fn open(dir: &Path, clock: &Arc<ManualClock>) -> Cache {
    Cache::builder()
        .path(dir)
        .clock(clock.clone())
        .durability(Durability::Immediate)
        .open()
        .expect("open cache")
}

/// The body of a child that opens its folder, says `ready`, holds the folder for
/// `TIERED_HOLD_MS`, then exits (each test file names its own `#[ignore]`d entry point).
pub fn hold_folder_as_child() {
    let Some(dir) = child_dir() else {
        return;
    };
    let hold: u64 = std::env::var("TIERED_HOLD_MS").unwrap().parse().unwrap();
    let cache = Cache::open(&dir).unwrap();
    cache.insert("from-child", 1u8).unwrap();
    cache.flush().unwrap();
    println!("ready");
    std::thread::sleep(std::time::Duration::from_millis(hold));
}
