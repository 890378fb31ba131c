//! The files a cache keeps in its folder (`docs/format.md`): private to their user (files 0600,
//! folders 0700) whatever the umask, and none of a process's own left after it exits.
//!
//! Every test of this binary runs with a umask of 0, the most permissive there is: the umask
//! is process-wide, so these tests have a binary of their own.

#![cfg(unix)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Once, OnceLock};
use std::time::Duration;

use tiered::{Cache, Durability, Error};

/// A value large enough for a side file in `blobs/`.
fn large() -> Vec<u8> {
    vec![7u8; 100_000]
}

fn permissive_umask() {
    static SET: Once = Once::new();
    // SAFETY: umask has no preconditions; every test of this binary wants the same one.
    SET.call_once(|| unsafe {
        libc::umask(0);
    });
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn blob_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn filled(dir: &Path) -> Cache {
    let cache = Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    cache.insert("small", 1u32).unwrap();
    cache.insert("large", large()).unwrap();
    cache
}

#[test]
fn every_file_and_folder_the_cache_creates_is_private_whatever_the_umask() {
    permissive_umask();
    let tmp = common::tempdir();
    let dir = tmp.path().join("a/cache");
    let cache = filled(&dir);
    assert_eq!(mode(&tmp.path().join("a")), 0o700, "a parent it created");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("blobs")), 0o700);
    for file in ["tiered.redb", "owner", "tiered.sock"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let blobs = blob_files(&dir);
    assert_eq!(blobs.len(), 1);
    assert_eq!(mode(&blobs[0]), 0o600, "a side file");
    drop(cache);
}

#[test]
fn a_folder_and_files_left_open_by_an_earlier_build_are_made_private_at_open() {
    permissive_umask();
    let tmp = common::tempdir();
    let dir = tmp.path().join("cache");
    // As `mkdir -p` and an earlier build left them.
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o755);
    drop(filled(&dir));
    let blob = blob_files(&dir).remove(0);
    let aside = dir.join("tiered.redb.damaged-1700000000000");
    std::fs::write(&aside, b"damaged").unwrap();
    std::fs::write(dir.join("owner"), b"1\n").unwrap();
    for file in [&dir.join("tiered.redb"), &dir.join("owner"), &blob, &aside] {
        set_mode(file, 0o644);
    }
    set_mode(&dir.join("blobs"), 0o755);
    set_mode(&dir, 0o755);

    let cache = Cache::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("blobs")), 0o700);
    for file in [&dir.join("tiered.redb"), &dir.join("owner"), &blob, &aside] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(cache.get::<_, u32>("small").unwrap().as_deref(), Some(&1));
    assert_eq!(
        cache.get::<_, Vec<u8>>("large").unwrap().as_deref(),
        Some(&large())
    );
}

/// Root only (it can give a folder away): a folder of another user that others may write to
/// is refused; one they may only read is used.
#[test]
fn a_folder_of_another_user_that_others_may_write_to_is_refused() {
    permissive_umask();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only root can give a folder to another user");
        return;
    }
    let tmp = common::tempdir();
    let dir = tmp.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    set_mode(&dir, 0o777);
    let err = Cache::open(&dir).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(err.to_string().contains("another user"), "{err}");
    assert!(!dir.join("tiered.redb").exists(), "nothing written in it");
    assert_eq!(mode(&dir), 0o777, "not ours to change");

    set_mode(&dir, 0o755);
    let cache = Cache::open(&dir).unwrap();
    assert_eq!(mode(&dir.join("tiered.redb")), 0o600);
    drop(cache);
}

/// Child: keeps a cache in a `static` (never dropped) and returns; with
/// `TIERED_TAKEN_OVER`, first puts another owner's socket and owner file in the folder.
#[test]
#[ignore = "child process of the exit tests"]
fn child_static_owner() {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let Some(dir) = common::child_dir() else {
        return;
    };
    let cache = CACHE.get_or_init(|| {
        Cache::builder()
            .path(&dir)
            .durability(Durability::Batched(Duration::from_secs(30)))
            .open()
            .unwrap()
    });
    cache.insert("k", 1u32).unwrap();
    assert!(dir.join("tiered.sock").exists() && dir.join("owner").exists());
    if std::env::var_os("TIERED_TAKEN_OVER").is_some() {
        // As a new owner would: its own socket, served, and its pid in the owner file.
        std::fs::remove_file(dir.join("tiered.sock")).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(dir.join("tiered.sock")).unwrap();
        std::mem::forget(listener);
        std::fs::write(dir.join("owner"), "4194000\n").unwrap();
    }
}

fn run_static_owner(dir: &Path, env: &[(&str, String)]) {
    let status = common::spawn_child("child_static_owner", dir, env)
        .wait()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_static_cache_leaves_no_socket_or_owner_file_after_a_normal_exit() {
    permissive_umask();
    let dir = common::tempdir();
    run_static_owner(dir.path(), &[]);
    assert!(!dir.path().join("tiered.sock").exists(), "socket left");
    assert!(!dir.path().join("owner").exists(), "owner file left");
    // And its batched write was committed.
    let cache = common::cold(dir.path());
    assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&1));
}

#[test]
fn an_exiting_owner_leaves_the_socket_and_owner_file_of_one_that_took_over() {
    permissive_umask();
    let dir = common::tempdir();
    run_static_owner(dir.path(), &[("TIERED_TAKEN_OVER", "1".into())]);
    let socket = std::fs::symlink_metadata(dir.path().join("tiered.sock")).unwrap();
    assert!(socket.mode() & libc::S_IFMT == libc::S_IFSOCK);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("owner")).unwrap(),
        "4194000\n"
    );
}

#[test]
fn a_closed_cache_leaves_no_owner_file() {
    permissive_umask();
    let dir = common::tempdir();
    drop(filled(dir.path()));
    assert!(!dir.path().join("owner").exists());
    assert!(!dir.path().join("tiered.sock").exists());
}
