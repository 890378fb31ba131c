//! Opening a folder: by several paths at once, while another folder waits for another
//! process, and the errors for paths that cannot be a cache folder.

mod common;

use std::io::BufReader;
use std::sync::mpsc;
use std::time::Duration;

use tiered::{Cache, Durability, Error};

/// Long enough that an open which waited it out would be noticed, not raced.
const LONG: Duration = Duration::from_secs(30);

/// Child: opens the folder, says so, holds it for TIERED_HOLD_MS, then exits.
#[test]
#[ignore = "child process of unrelated_folder_opens_while_another_waits"]
fn child_holding() {
    common::hold_folder_as_child();
}

/// Opens `first`, inserts, then opens `second` (another path to the same folder) with a long
/// `open_timeout`: it must return the open cache, not wait for ourselves and fail.
fn second_path_shares_the_cache(first: &std::path::Path, second: &std::path::Path) {
    let a = Cache::builder()
        .path(first)
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    a.insert("k", 7u32).unwrap();
    let b = Cache::builder()
        .path(second)
        .durability(Durability::Immediate)
        .open_timeout(LONG)
        .open()
        .unwrap_or_else(|e| panic!("opening {} again: {e}", second.display()));
    assert_eq!(b.get::<_, u32>("k").unwrap().as_deref(), Some(&7));
    b.insert("from-b", 8u32).unwrap();
    assert_eq!(a.get::<_, u32>("from-b").unwrap().as_deref(), Some(&8));
}

#[cfg(unix)]
#[test]
fn open_through_symlink_returns_the_open_cache() {
    let dir = common::tempdir();
    let real = dir.path().join("real");
    let link = dir.path().join("link");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    second_path_shares_the_cache(&real, &link);
}

#[test]
fn open_through_dotdot_returns_the_open_cache() {
    let dir = common::tempdir();
    let real = dir.path().join("real");
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let dotdot = dir.path().join("other").join("..").join("real");
    second_path_shares_the_cache(&real, &dotdot);
}

#[test]
fn a_second_open_with_other_settings_returns_the_open_cache() {
    // The warning naming the ignored settings is unit-tested in src/registry.rs.
    let dir = common::tempdir();
    let a = Cache::builder()
        .path(dir.path())
        .memory_capacity(1 << 20)
        .open()
        .unwrap();
    a.insert("k", 1u8).unwrap();
    let b = Cache::builder()
        .path(dir.path())
        .memory_capacity(2 << 20)
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    assert_eq!(b.get::<_, u8>("k").unwrap().as_deref(), Some(&1));
}

#[derive(Debug, PartialEq)]
enum Event {
    HeldFolderOpened,
    HeldFolderFailed(String),
    OtherFolderOpened,
    OtherFolderFailed(String),
}

#[test]
fn unrelated_folder_opens_while_another_waits() {
    let held = common::tempdir();
    let other = common::tempdir();
    let mut child = common::spawn_child(
        "child_holding",
        held.path(),
        &[("TIERED_HOLD_MS", "120000".to_string())],
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    common::wait_for_line(&mut out, "ready");
    // A holder nobody can reach, so that the open of `held` waits (a served folder opens at
    // once as a client: `tests/processes.rs`).
    #[cfg(unix)]
    std::fs::remove_file(held.path().join("tiered.sock")).unwrap();

    let (tx, rx) = mpsc::channel();
    let waiter = {
        let (tx, path) = (tx.clone(), held.path().to_path_buf());
        std::thread::spawn(move || {
            let result = Cache::builder()
                .path(&path)
                .open_timeout(Duration::from_secs(60))
                .open();
            let _ = tx.send(match &result {
                Ok(_) => Event::HeldFolderOpened,
                Err(e) => Event::HeldFolderFailed(e.to_string()),
            });
            result
        })
    };
    // Let the waiter get into its open; the ordering of events below is the assertion.
    std::thread::sleep(Duration::from_millis(300));
    let opener = {
        let path = other.path().to_path_buf();
        std::thread::spawn(move || {
            let result = Cache::builder().path(&path).open();
            let _ = tx.send(match &result {
                Ok(_) => Event::OtherFolderOpened,
                Err(e) => Event::OtherFolderFailed(e.to_string()),
            });
        })
    };

    let first = rx.recv_timeout(Duration::from_secs(20));
    // Let the waiter through whatever happened, so that no thread outlives the test.
    child.kill().unwrap();
    child.wait().unwrap();
    let second = rx.recv_timeout(Duration::from_secs(60));
    opener.join().unwrap();
    let held_cache = waiter.join().unwrap();

    assert_eq!(
        first,
        Ok(Event::OtherFolderOpened),
        "the other folder must open while the held one is waited for"
    );
    assert_eq!(second, Ok(Event::HeldFolderOpened));
    let held_cache = held_cache.unwrap();
    assert_eq!(
        held_cache.get::<_, u8>("from-child").unwrap().as_deref(),
        Some(&1)
    );
}

#[test]
fn empty_path_is_a_config_error() {
    for result in [Cache::open(""), Cache::builder().path("").open()] {
        match result {
            Err(Error::Config(message)) => {
                assert!(message.contains("path is empty"), "{message}");
                assert!(message.contains("give a folder"), "{message}");
            }
            Err(other) => panic!("expected Config, got {other:?}"),
            Ok(_) => panic!("an empty path opened a cache"),
        }
    }
}

#[test]
fn path_that_is_a_file_says_so() {
    let dir = common::tempdir();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"data").unwrap();
    let err = Cache::open(&file).expect_err("a file is not a cache folder");
    let message = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("is a file, not a folder"), "{message}");
    assert!(message.contains("choose a folder path"), "{message}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"data",
        "the file is untouched"
    );

    // A path under a file: the operating system says "not a directory"; the message says what
    // to do.
    let under = file.join("cache");
    let message = Cache::open(&under).expect_err("under a file").to_string();
    assert!(message.contains(&under.display().to_string()), "{message}");
    assert!(message.contains("choose a folder path"), "{message}");
}

#[cfg(unix)]
#[test]
fn permission_denied_says_what_to_do() {
    use std::os::unix::fs::PermissionsExt;

    let dir = common::tempdir();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    // Root (and anyone with CAP_DAC_OVERRIDE) ignores permissions; CI runs as root, where the
    // message is checked by a unit test in src/error.rs instead.
    if std::fs::create_dir(locked.join("probe")).is_ok() {
        eprintln!("permission_denied_says_what_to_do: skipped, this user ignores permissions");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
        return;
    }

    // The folder cannot be created.
    let inside = locked.join("cache");
    let folder_err = Cache::open(&inside).expect_err("the parent is read-only");
    // The folder exists but the database file cannot be created in it.
    let file_err = Cache::open(&locked).expect_err("the folder is read-only");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The database file is named by the folder's canonical path.
    let locked = std::fs::canonicalize(&locked).unwrap();

    for (err, path) in [(folder_err, inside), (file_err, locked)] {
        let message = err.to_string();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("Fix the permissions"), "{message}");
        assert!(message.contains("choose another folder"), "{message}");
    }
}
