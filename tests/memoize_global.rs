//! `tiered::global()`, the default cache of memoized functions: on a folder it cannot open,
//! memoized functions keep working in memory, the reason is written once to stderr (these
//! processes install no `tracing` subscriber), and `tiered::global_status()` says so. Each
//! case runs in a child process, since the global cache is opened once per process.

mod common;

use std::time::Duration;

#[tiered::memoize]
fn square(x: u64) -> u64 {
    x * x
}

/// The start of the stderr notice.
const NOTICE: &str = "tiered: the global cache could not open";

/// The child: uses the global cache through a memoized function, then prints its status.
#[test]
#[ignore = "run as a child process by the tests of this file"]
fn child_uses_the_global_cache() {
    if common::child_dir().is_none() {
        return;
    }
    for _ in 0..3 {
        assert_eq!(square(3), 9);
    }
    let status = tiered::global_status();
    println!(
        "on_disk={} folder={} error={:?}",
        status.is_on_disk(),
        status.folder().display(),
        status.error().map(|e| e.to_string())
    );
}

/// Runs the child with `TIERED_DIR` set to `folder`.
fn child(folder: &std::path::Path) -> common::Finished {
    let dir = common::tempdir();
    let env = [("TIERED_DIR", folder.display().to_string())];
    let child = common::spawn_child_piped("child_uses_the_global_cache", dir.path(), &env);
    let done = common::finish(child, Duration::from_secs(60));
    assert!(
        done.status.is_some_and(|s| s.success()),
        "{}",
        done.transcript()
    );
    done
}

#[test]
fn a_global_folder_that_cannot_be_opened_is_said_once_on_stderr_and_by_global_status() {
    let dir = common::tempdir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let folder = file.join("cache");
    let done = child(&folder);
    assert_eq!(
        done.stderr.matches(NOTICE).count(),
        1,
        "{}",
        done.transcript()
    );
    assert!(done.stderr.contains("TIERED_DIR"), "{}", done.transcript());
    let line = format!("on_disk=false folder={} error=Some(", folder.display());
    assert!(done.stdout.contains(&line), "{}", done.transcript());
}

#[test]
fn a_global_folder_that_opens_is_on_disk_and_says_nothing() {
    let dir = common::tempdir();
    let folder = dir.path().join("cache");
    let done = child(&folder);
    assert!(!done.stderr.contains(NOTICE), "{}", done.transcript());
    let line = format!("on_disk=true folder={} error=None", folder.display());
    assert!(done.stdout.contains(&line), "{}", done.transcript());
}
