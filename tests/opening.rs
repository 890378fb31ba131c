//! Opening a folder: by several paths at once, while another folder waits for another
//! process, and the errors for paths that cannot be a cache folder.

mod common;

use tiered::{Cache, Error};

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
