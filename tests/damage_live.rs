//! A file damaged under an open cache: what is written once the damage is known is never lost
//! to the file that is set aside, and damage to the file's table definitions is damage too.
//! (Found by attacking the recovery; see also `corruption.rs`.)

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::damage::{damage_in_place, fill_values, value_page};
use tiered::{Cache, DamagedFile, Health};

const FILLED: u32 = 2_000;

fn db(dir: &Path) -> PathBuf {
    dir.join("tiered.redb")
}

fn damaged_files(dir: &Path) -> usize {
    common::files_starting_with(dir, "tiered.redb.damaged-").len()
}

/// A read finds the damage while the writer holds a batch open on the file; an insert made
/// once `health()` says so, then `flush()`: either the flush reports the insert as kept in
/// memory only, or it is in the fresh file after a reopen. (The batch was committed into the
/// damaged file, then set aside with it, and `flush()` said Ok.)
#[test]
fn an_insert_made_after_the_damage_is_found_is_not_committed_to_the_damaged_file() {
    let _watchdog = common::watchdog("insert after damage", 300);
    let mut found = 0;
    for round in 0..4 {
        let dir = common::tempdir();
        fill_values(dir.path(), FILLED);
        let cache = Cache::builder()
            .path(dir.path())
            .on_damaged_file(DamagedFile::SetAside)
            .disk_page_cache(0)
            .memory_capacity(1)
            .warm_restart(0)
            .open()
            .unwrap();
        let path = db(dir.path());
        let start = value_page(&std::fs::read(&path).unwrap(), FILLED / 2);
        damage_in_place(&path, start, start + (16 << 10));
        cache.insert("opener", 1u32).unwrap(); // the writer opens a batch on the file
        let _ = cache.get::<_, String>(&(FILLED / 2)); // the read of the damaged page
        if cache.health().is_healthy() {
            eprintln!("round {round}: that read did not find the damage");
            continue;
        }
        found += 1;
        cache.insert("during", 2u32).unwrap();
        let flushed = cache.flush();
        assert!(
            common::eventually(20, || cache.health().is_healthy()),
            "round {round}: the tier did not come back: {:?}",
            cache.health()
        );
        drop(cache);
        let cache = Cache::builder()
            .path(dir.path())
            .warm_restart(0)
            .open()
            .unwrap();
        let got = cache.get::<_, u32>("during").unwrap();
        assert!(
            flushed.is_err() || got.as_deref() == Some(&2),
            "round {round}: flush() said Ok, yet the insert is gone after a reopen"
        );
        assert_eq!(damaged_files(dir.path()), 1, "round {round}");
    }
    assert!(
        found > 0,
        "no round found the damage: the test tested nothing"
    );
}

/// Overwrites one byte of the stored definition of the records table (its key type's width),
/// in every copy of the table tree: redb then refuses the table as of another type.
fn damage_table_definition(path: &Path) -> usize {
    let file = std::fs::read(path).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut damaged = 0;
    let mut from = 0;
    while let Some(p) = file[from..].windows(7).position(|w| w == b"records") {
        let at = from + p + 55;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(at as u64)).unwrap();
        std::io::Write::write_all(&mut f, &[file[at] ^ 0x5a]).unwrap();
        damaged += 1;
        from += p + 1;
    }
    f.sync_all().unwrap();
    damaged
}

/// A stored table definition that no longer matches was `Error::Storage`, retried forever: the
/// tier never came back, even with `DamagedFile::SetAside`, and a reopen failed.
#[test]
fn a_damaged_table_definition_is_damage() {
    let _watchdog = common::watchdog("table definition", 300);
    for mode in [DamagedFile::SetAside, DamagedFile::Fail] {
        let dir = common::tempdir();
        fill_values(dir.path(), 20);
        let cache = Cache::builder()
            .path(dir.path())
            .on_damaged_file(mode)
            .disk_page_cache(0)
            .warm_restart(0)
            .open()
            .unwrap();
        cache.insert("before", 1u32).unwrap();
        cache.flush().unwrap();
        assert!(damage_table_definition(&db(dir.path())) > 0);
        cache.insert("k", 1u32).unwrap();
        let _ = cache.flush();
        match mode {
            DamagedFile::SetAside => {
                let back = common::eventually(20, || {
                    let _ = cache.flush();
                    cache.health().is_healthy()
                });
                assert!(back, "SetAside: not back: {:?}", cache.health());
                assert_eq!(damaged_files(dir.path()), 1);
                cache.insert("after", 3u32).unwrap();
                cache.flush().unwrap();
                drop(cache);
                let cache = Cache::builder()
                    .path(dir.path())
                    .on_damaged_file(mode)
                    .open()
                    .expect("reopen after the set-aside");
                assert_eq!(cache.get::<_, u32>("after").unwrap().as_deref(), Some(&3));
            }
            _ => {
                let health = cache.health();
                assert!(
                    matches!(health, Health::DiskOutOfService { damaged: true, .. }),
                    "Fail: {health:?}"
                );
                // Reads are misses, not errors, meanwhile.
                assert!(cache.get::<_, u32>("before").is_ok());
                drop(cache);
                std::thread::sleep(Duration::from_millis(10));
                let reopened = Cache::builder()
                    .path(dir.path())
                    .on_damaged_file(mode)
                    .open();
                assert!(
                    matches!(reopened, Err(tiered::Error::Corrupt { .. })),
                    "Fail: reopening a damaged file: {:?}",
                    reopened.map(|_| ())
                );
            }
        }
    }
}
