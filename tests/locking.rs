//! A folder held by another process. Normally the opener becomes its client at once (see
//! `tests/processes.rs`); when the holder cannot be reached (it serves no socket: an older
//! build, another platform), the opener waits up to open_timeout, then gets an error naming
//! the holder's pid; when the holder lets go in time, the open succeeds.

mod common;

use std::io::BufReader;
use std::time::Duration;

use tiered::{Cache, Error};

/// Child: opens the folder, says so, holds it for TIERED_HOLD_MS, then exits.
#[test]
#[ignore = "child process of the locking tests"]
fn child_holding() {
    common::hold_folder_as_child();
}

#[test]
fn a_held_folder_that_is_not_served_gives_an_error_naming_the_holder_after_the_timeout() {
    let dir = common::tempdir();
    let mut child = common::spawn_child(
        "child_holding",
        dir.path(),
        &[("TIERED_HOLD_MS", "30000".to_string())],
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    common::wait_for_line(&mut out, "ready");
    // A holder nobody can reach.
    #[cfg(unix)]
    std::fs::remove_file(dir.path().join("tiered.sock")).unwrap();

    let started = std::time::Instant::now();
    let result = Cache::builder()
        .path(dir.path())
        .open_timeout(Duration::from_millis(300))
        .open();
    let waited = started.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();

    let err = result.expect_err("the folder is held by the child");
    match &err {
        Error::Locked { pid, waited: w, .. } => {
            assert_eq!(*pid, Some(child.id()));
            assert!(*w >= Duration::from_millis(300));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(waited >= Duration::from_millis(300));
    let message = err.to_string();
    assert!(message.contains(&child.id().to_string()), "{message}");
    assert!(message.contains("open_timeout"), "{message}");
}

#[test]
fn an_open_waits_for_a_holder_that_lets_go_in_time() {
    let dir = common::tempdir();
    let mut child = common::spawn_child(
        "child_holding",
        dir.path(),
        &[("TIERED_HOLD_MS", "500".to_string())],
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    common::wait_for_line(&mut out, "ready");
    let cache = Cache::builder()
        .path(dir.path())
        .open_timeout(Duration::from_secs(60))
        .open()
        .expect("the child exits after 500 ms");
    child.wait().unwrap();
    assert_eq!(
        cache.get::<_, u8>("from-child").unwrap().as_deref(),
        Some(&1)
    );
}
