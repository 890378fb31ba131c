//! Damaged files: a clear error naming the file (or, when asked, a fresh start), damaged
//! records read as misses, and never a panic or wrong data.

mod common;

use std::path::Path;

use tiered::{Cache, DamagedFile, Durability, Error};

fn db(dir: &Path) -> std::path::PathBuf {
    dir.join("tiered.redb")
}

fn fill(dir: &Path, n: u32) {
    let cache = Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    for i in 0..n {
        cache
            .insert(&i, format!("MARKER-{i:05}-{}", "v".repeat(40)))
            .unwrap();
    }
}

fn overwrite(path: &Path, offset: usize, bytes: &[u8]) {
    let mut file = std::fs::read(path).unwrap();
    let end = (offset + bytes.len()).min(file.len());
    file[offset..end].copy_from_slice(&bytes[..end - offset]);
    std::fs::write(path, file).unwrap();
}

#[test]
fn an_overwritten_header_gives_a_clear_error_naming_the_file() {
    let dir = common::tempdir();
    fill(dir.path(), 10);
    overwrite(&db(dir.path()), 0, &[0xAA; 512]);
    let err = Cache::open(dir.path()).expect_err("damaged header");
    match &err {
        Error::Corrupt { path, .. } => assert_eq!(path, &db(dir.path())),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("tiered.redb"), "{message}");
    assert!(message.contains("SetAside"), "says what to do: {message}");
    // Nothing was deleted.
    assert!(db(dir.path()).exists());
}

#[test]
fn set_aside_moves_the_damaged_file_and_starts_fresh() {
    let dir = common::tempdir();
    fill(dir.path(), 10);
    overwrite(&db(dir.path()), 0, &[0xAA; 512]);
    let damaged = std::fs::read(db(dir.path())).unwrap();
    let cache = Cache::builder()
        .path(dir.path())
        .on_damaged_file(DamagedFile::SetAside)
        .open()
        .expect("fresh start");
    assert_eq!(cache.stats().entries, 0);
    cache.insert("new", 1u8).unwrap();
    assert!(cache.get::<_, u8>("new").unwrap().is_some());
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tiered.redb.damaged-")
        })
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the damaged file is kept beside the new one"
    );
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), damaged);
}

#[test]
fn a_damaged_value_reads_as_a_miss_and_others_survive() {
    let dir = common::tempdir();
    fill(dir.path(), 50);
    let path = db(dir.path());
    let mut file = std::fs::read(&path).unwrap();
    let needle = b"MARKER-00017";
    let mut hits = 0;
    for i in 0..file.len() - needle.len() {
        if &file[i..i + needle.len()] == needle {
            file[i + 8] ^= 0x01; // MARKER-00017 -> MARKER-01017
            hits += 1;
        }
    }
    assert!(hits > 0, "marker not found in the file");
    std::fs::write(&path, file).unwrap();

    let cache = Cache::open(dir.path()).unwrap();
    assert!(
        cache.get::<_, String>(&17u32).unwrap().is_none(),
        "damaged value returned"
    );
    assert_eq!(cache.stats().damaged_records, 1);
    for i in (0..50u32).filter(|i| *i != 17) {
        let v = cache.get::<_, String>(&i).unwrap();
        assert!(v.unwrap().starts_with(&format!("MARKER-{i:05}")));
    }
}

#[test]
fn random_damage_never_panics_nor_returns_wrong_data() {
    let clean = common::tempdir();
    fill(clean.path(), 200);
    let original = std::fs::read(db(clean.path())).unwrap();
    let pages = original.len() / 4096;
    for seed in 0..24u64 {
        let dir = common::tempdir();
        let mut file = original.clone();
        // Overwrite a run of bytes somewhere past the first page with garbage.
        let page = 1 + (seed as usize * 7919) % (pages - 1).max(1);
        let start = page * 4096 + (seed as usize * 131) % 4000;
        for (j, b) in file[start..(start + 64).min(original.len())]
            .iter_mut()
            .enumerate()
        {
            *b = (seed as u8).wrapping_mul(31).wrapping_add(j as u8) ^ 0x5A;
        }
        std::fs::write(db(dir.path()), &file).unwrap();
        let opened = std::panic::catch_unwind(|| Cache::open(dir.path()));
        let cache = match opened.expect("open must not panic") {
            Ok(cache) => cache,
            Err(Error::Corrupt { .. }) => continue,
            Err(other) => panic!("seed {seed}: unexpected error {other:?}"),
        };
        for i in 0..200u32 {
            match cache.get::<_, String>(&i) {
                Ok(Some(v)) => assert!(
                    v.starts_with(&format!("MARKER-{i:05}-")),
                    "seed {seed}: wrong data for {i}: {v}"
                ),
                Ok(None) | Err(Error::Corrupt { .. }) => {}
                Err(other) => panic!("seed {seed}: unexpected error {other:?}"),
            }
        }
    }
}
