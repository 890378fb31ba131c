//! Two versions of tiered on one folder: after a `cargo update` in a dev loop, the new build
//! meets the old build's process holding the folder, whose protocol it cannot speak.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiered::{Cache, Durability, Health};

/// A process of an older tiered: it holds the database file and answers every greeting on
/// the socket with a frame of protocol version 1, then closes the connection.
struct OldOwner {
    db: Option<redb::Database>,
    stop: Arc<AtomicBool>,
    serving: Option<std::thread::JoinHandle<()>>,
}

impl OldOwner {
    fn start(dir: &std::path::Path) -> OldOwner {
        std::fs::create_dir_all(dir).unwrap();
        let db = redb::Database::create(dir.join("tiered.redb")).unwrap();
        std::fs::write(dir.join("owner"), format!("{}\n", std::process::id())).unwrap();
        let listener = UnixListener::bind(dir.join("tiered.sock")).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let serving = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            conn.set_nonblocking(false).unwrap();
                            let mut header = [0u8; 5];
                            if conn.read_exact(&mut header).is_ok() {
                                // "protocol version 2, expected 1", as an old owner says it.
                                let _ = conn.write_all(&[1, 1, 0, 0, 0, 0]);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        OldOwner {
            db: Some(db),
            stop,
            serving: Some(serving),
        }
    }

    /// The old process exits: it stops serving and lets go of the file.
    fn exit(mut self, dir: &std::path::Path) {
        self.stop.store(true, Ordering::Relaxed);
        self.serving.take().unwrap().join().unwrap();
        let _ = std::fs::remove_file(dir.join("tiered.sock"));
        drop(self.db.take());
    }
}

/// Issue 14, item 11: a frame of another protocol version was refused and the open waited
/// `open_timeout` and failed with `Locked`: an upgrade broke the app until the old process
/// exited. Now the open succeeds at once, the cache serves from memory with one warning
/// (`health()` says why), and the new process takes the folder over when the old one exits.
#[test]
fn an_owner_of_another_version_neither_fails_nor_blocks_the_open_and_is_taken_over_when_it_exits() {
    let dir = common::tempdir();
    // A folder with a history: owners of this version raised every client's slot before.
    drop(Cache::open(dir.path()).unwrap());
    drop(Cache::open(dir.path()).unwrap());
    let old = OldOwner::start(dir.path());
    let started = Instant::now();
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Immediate)
        .open_timeout(Duration::from_secs(20))
        .open()
        .expect("an owner of another version does not fail the open");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the open waited {:?} (open_timeout 20 s)",
        started.elapsed()
    );
    assert!(
        matches!(cache.health(), Health::WaitingForFolder { .. }),
        "{:?}",
        cache.health()
    );
    // Served from memory meanwhile; a write says it is not on disk.
    let written = cache.insert("k", "v".to_string());
    assert!(written.is_err(), "Immediate means on disk: {written:?}");
    assert_eq!(
        cache
            .get::<_, String>("k")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("v")
    );
    let v = cache
        .get_or_insert_with("computed", &tiered::Options::new(), || 7u32)
        .unwrap();
    assert_eq!(*v, 7);

    old.exit(dir.path());
    assert!(
        common::eventually(20, || cache.owner_pid().is_none()),
        "this process takes the folder over once the old one exits"
    );
    cache.insert("k2", "v2".to_string()).unwrap();
    assert!(cache.health().is_healthy(), "{:?}", cache.health());
    drop(cache);
    let reopened = Cache::open(dir.path()).unwrap();
    assert_eq!(
        reopened
            .get::<_, String>("k2")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("v2")
    );
}

/// Copies a folder written by an older release (in `tests/fixtures/`) to a fresh place.
fn fixture(name: &str) -> tempfile::TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let to = common::tempdir();
    copy_folder(&from, to.path());
    to
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Issue 14, item 11: a folder written by the release before record format 3 (format 2:
/// `tests/fixtures/format2`, made by that release with tags, a namespace, a side file and an
/// invalidation) opens in this one: its records read as misses explained as written by
/// another version, they are reclaimed with their side file, and the folder works.
#[test]
fn a_folder_of_the_previous_record_format_opens_and_its_records_are_reclaimed() {
    let dir = fixture("format2");
    let cache = Cache::open(dir.path()).expect("an older folder opens");
    let key = ("price", 3u32);
    assert_eq!(cache.get::<_, String>(&key).unwrap(), None);
    assert!(
        matches!(
            cache.explain::<_, String>(&key).unwrap(),
            tiered::Explanation::WrittenByAnotherVersion | tiered::Explanation::NeverWritten
        ),
        "{:?}",
        cache.explain::<_, String>(&key).unwrap()
    );
    assert_eq!(cache.get::<_, Vec<u8>>("big").unwrap(), None);
    cache.insert(&key, "new".to_string()).unwrap();
    cache.invalidate_tag("prices").unwrap();
    cache.insert("after", 1u32).unwrap();
    cache.compact().unwrap();
    assert_eq!(cache.get::<_, u32>("after").unwrap().as_deref(), Some(&1));
    let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        blobs.is_empty(),
        "the old side file was reclaimed: {blobs:?}"
    );
    drop(cache);
    let reopened = Cache::open(dir.path()).unwrap();
    assert_eq!(
        reopened.get::<_, u32>("after").unwrap().as_deref(),
        Some(&1)
    );
    assert_eq!(
        reopened
            .get::<_, String>(&key)
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("new")
    );
    // The old release's 22 records are gone; this one's two remain.
    assert_eq!(reopened.stats().entries, 2, "{:?}", reopened.stats());
}

/// Issue 14, item 11: a folder written by the build before this one (record format 3,
/// protocol 1, files 0644, a stale `owner` file left at exit) opens, and every entry reads
/// back: plain, tagged, in a namespace, and a large value in its side file.
#[test]
fn a_folder_of_the_last_build_opens_and_every_entry_reads_back() {
    let dir = fixture("release-0.1-pre");
    let cache = Cache::open(dir.path()).expect("the last build's folder opens");
    for i in 0..20u32 {
        let expected = format!("old-{i}");
        assert_eq!(
            cache.get::<_, String>(&("price", i)).unwrap().as_deref(),
            Some(&expected)
        );
    }
    assert_eq!(
        cache
            .namespace("session/1")
            .get::<_, u64>("user")
            .unwrap()
            .as_deref(),
        Some(&42)
    );
    assert_eq!(
        cache.get::<_, Vec<u8>>("big").unwrap().as_deref(),
        Some(&vec![7u8; 100_000])
    );
    cache.invalidate_tag("prices").unwrap();
    assert_eq!(cache.get::<_, String>(&("price", 0u32)).unwrap(), None);
    drop(cache);
    let reopened = Cache::open(dir.path()).unwrap();
    assert_eq!(reopened.get::<_, String>(&("price", 0u32)).unwrap(), None);
    assert_eq!(
        reopened.get::<_, Vec<u8>>("big").unwrap().as_deref(),
        Some(&vec![7u8; 100_000])
    );
}
