//! Damaged files: a clear error naming the file (or, when asked, a fresh start), damaged
//! records read as misses, and never a panic or wrong data.

mod common;

use std::path::Path;

use common::damage::{damage_in_place, fill_values, filled_value, value_page};
use tiered::{Cache, DamagedFile, Durability, Error, Health};

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

// ---------------------------------------------------------------------------------------------
// Damage to a filled file, opened in a child process whose stderr the parent reads: nothing
// panics (not even silently-caught panics may print), no wrong value, no endless errors, and
// `health()` (or the stats) say why values went missing.

const FILLED: u32 = 2_000;

/// A value of 100-1000 bytes that says which key it belongs to.
fn damaged_mode() -> DamagedFile {
    match std::env::var("TIERED_DAMAGED").as_deref() {
        Ok("set-aside") => DamagedFile::SetAside,
        _ => DamagedFile::Fail,
    }
}

fn open_with(dir: &Path, mode: DamagedFile) -> tiered::Result<Cache> {
    Cache::builder().path(dir).on_damaged_file(mode).open()
}

/// Reads every filled key; returns (hits, misses, errors) or the first wrong value.
fn read_all(cache: &Cache, n: u32) -> Result<(u32, u32, Vec<String>), String> {
    let (mut hits, mut misses, mut errors) = (0, 0, Vec::new());
    for i in 0..n {
        match cache.get::<_, String>(&i) {
            Ok(Some(v)) if *v == filled_value(i) => hits += 1,
            Ok(Some(v)) => {
                return Err(format!(
                    "key {i} read a wrong value: {:?}",
                    &v[..v.len().min(40)]
                ))
            }
            Ok(None) => misses += 1,
            Err(e) => errors.push(format!("key {i}: {e}")),
        }
    }
    Ok((hits, misses, errors))
}

fn health_is_damaged(h: &Health) -> bool {
    matches!(h, Health::DiskOutOfService { damaged: true, .. })
}

/// Child: opens a filled cache whose file was damaged in the middle, with the `DamagedFile`
/// mode of `TIERED_DAMAGED`, and checks what the cache promises.
#[test]
#[ignore = "child process of the damaged_middle tests"]
fn child_open_damaged_middle() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let mode = damaged_mode();
    let live = std::env::var_os("TIERED_DAMAGE_LIVE").is_some();
    let opened = if live {
        // Open the clean file with a tiny page cache, then damage it under the open cache.
        let cache = Cache::builder()
            .path(&dir)
            .on_damaged_file(mode)
            .disk_page_cache(0)
            .open()
            .expect("open the clean file");
        let path = db(&dir);
        let (start, end) = damage_region(&std::fs::read(&path).unwrap(), At::Values);
        damage_in_place(&path, start, end);
        eprintln!("damaged {start}..{end} under the open cache");
        Ok(cache)
    } else {
        open_with(&dir, mode)
    };
    let cache = match opened {
        Ok(cache) => cache,
        Err(e @ Error::Corrupt { .. }) if mode == DamagedFile::Fail => {
            assert!(e.to_string().contains("tiered.redb"), "{e}");
            println!("damaged middle: done (refused at open: {e})");
            return;
        }
        Err(e) => panic!("open ({mode:?}) of a file damaged in the middle: {e:?}"),
    };
    let mut problems = Vec::new();
    // Damage found by the open itself: SetAside started on an empty file (see
    // a_file_set_aside_at_open_shows_in_health_or_stats for what says so).
    let aside_at_open = !common::files_starting_with(&dir, "tiered.redb.damaged-").is_empty();
    let (hits, misses, errors) = read_all(&cache, FILLED).unwrap_or_else(|e| panic!("{e}"));
    let health = cache.health();
    let stats = cache.stats();
    eprintln!(
        "first pass: {hits} hits, {misses} misses, {} errors; {health:?}; {stats:?}",
        errors.len()
    );
    if misses + errors.len() as u32 > 0
        && !aside_at_open
        && health.is_healthy()
        && stats.damaged_records == 0
        && stats.disk_failures == 0
    {
        problems.push(format!(
            "{misses} misses and {} errors, yet health() is Healthy and the stats count no \
             damage: {stats:?}",
            errors.len()
        ));
    }
    let damage_seen = stats.disk_failures > 0 || health_is_damaged(&health);
    if mode == DamagedFile::SetAside && damage_seen {
        // The file is set aside and the tier continues on a fresh one, without a restart.
        let started = std::time::Instant::now();
        while !cache.health().is_healthy() && started.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !cache.health().is_healthy() {
            problems.push(format!(
                "SetAside: still out of service 10 s later: {:?}",
                cache.health()
            ));
        }
        if common::files_starting_with(&dir, "tiered.redb.damaged-").is_empty() {
            problems.push("SetAside: no tiered.redb.damaged-* in the folder".into());
        }
    }
    // No call keeps returning errors.
    let (hits2, misses2, errors2) = read_all(&cache, FILLED).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "second pass: {hits2} hits, {misses2} misses, {} errors; {:?}",
        errors2.len(),
        cache.health()
    );
    if !errors2.is_empty() {
        problems.push(format!(
            "reads still fail on a second pass: {} errors, e.g. {}",
            errors2.len(),
            errors2[0]
        ));
    }
    match cache.insert("fresh", String::from("after the damage")) {
        Ok(()) => {}
        Err(e) => problems.push(format!("insert after the damage: {e}")),
    }
    let flushed = cache.flush().or_else(|_| cache.flush());
    if mode == DamagedFile::SetAside {
        if let Err(e) = flushed {
            problems.push(format!("SetAside: flush after the damage fails twice: {e}"));
        }
        drop(cache);
        match open_with(&dir, mode) {
            Ok(cache) => {
                let got = cache.get::<_, String>("fresh").unwrap();
                if got.as_deref().map(String::as_str) != Some("after the damage") {
                    problems.push(format!(
                        "SetAside: after reopening, the insert made after the damage reads {got:?}"
                    ));
                }
                if !cache.health().is_healthy() {
                    problems.push(format!(
                        "SetAside: reopened out of service: {:?}",
                        cache.health()
                    ));
                }
                read_all(&cache, FILLED).unwrap_or_else(|e| panic!("after reopening: {e}"));
            }
            Err(e) => problems.push(format!("SetAside: reopening failed: {e}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    println!("damaged middle: done");
}

/// Where to damage a filled file.
#[derive(Clone, Copy)]
enum At {
    /// 16 KiB around the middle of the file.
    Middle,
    /// 16 KiB from the start of the page holding the value of key FILLED / 2: a B-tree leaf
    /// that the open does not read.
    Values,
}

/// The 16 KiB of `file` to damage.
fn damage_region(file: &[u8], at: At) -> (usize, usize) {
    let start = match at {
        At::Middle => (file.len() / 2).saturating_sub(8 << 10),
        At::Values => value_page(file, FILLED / 2),
    };
    (start, (start + (16 << 10)).min(file.len()))
}

/// Fills a cache, overwrites 16 KiB of its file with `fill`, and reopens it in a child with
/// `mode`; without `fill`, the child damages the file (random bytes) under its open cache.
fn damaged_middle(mode: &str, at: At, fill: Option<fn(&mut [u8])>) {
    let dir = common::tempdir();
    fill_values(dir.path(), FILLED);
    let path = db(dir.path());
    let mut file = std::fs::read(&path).unwrap();
    let (start, end) = damage_region(&file, at);
    let mut env = vec![("TIERED_DAMAGED", mode.to_string())];
    if let Some(fill) = fill {
        fill(&mut file[start..end]);
        std::fs::write(&path, &file).unwrap();
    } else {
        env.push(("TIERED_DAMAGE_LIVE", "1".into()));
    }
    let finished = common::finish(
        common::spawn_child_piped("child_open_damaged_middle", dir.path(), &env),
        std::time::Duration::from_secs(60),
    );
    eprintln!("{}", finished.stderr);
    for line in finished
        .stdout
        .lines()
        .filter(|l| l.contains("damaged middle"))
    {
        eprintln!("{line}");
    }
    assert!(
        finished.status.is_some_and(|s| s.success())
            && finished.stdout.contains("damaged middle: done"),
        "file of {} bytes damaged at {start}..{end}:\n{}",
        file.len(),
        finished.transcript()
    );
    assert!(
        !finished.stderr.contains("panicked at"),
        "{}",
        finished.transcript()
    );
}

fn garbage(bytes: &mut [u8]) {
    rand::fill(bytes);
}

fn zeros(bytes: &mut [u8]) {
    bytes.fill(0);
}

#[test]
fn damaged_middle_set_aside_garbage() {
    damaged_middle("set-aside", At::Middle, Some(garbage));
}

#[test]
fn damaged_middle_set_aside_zeros() {
    damaged_middle("set-aside", At::Middle, Some(zeros));
}

#[test]
fn damaged_middle_fail_garbage() {
    damaged_middle("fail", At::Middle, Some(garbage));
}

#[test]
fn damaged_values_set_aside_garbage() {
    damaged_middle("set-aside", At::Values, Some(garbage));
}

#[test]
fn damaged_values_set_aside_zeros() {
    damaged_middle("set-aside", At::Values, Some(zeros));
}

#[test]
fn damaged_values_fail_garbage() {
    damaged_middle("fail", At::Values, Some(garbage));
}

#[test]
fn damaged_under_an_open_cache_set_aside() {
    damaged_middle("set-aside", At::Values, None);
}

#[test]
fn damaged_under_an_open_cache_fail() {
    damaged_middle("fail", At::Values, None);
}

/// A file set aside at open leaves a trace an application can see: it lost every entry.
#[test]
fn a_file_set_aside_at_open_shows_in_health_or_stats() {
    let dir = common::tempdir();
    fill(dir.path(), 10);
    overwrite(&db(dir.path()), 0, &[0xAA; 512]);
    let cache = Cache::builder()
        .path(dir.path())
        .on_damaged_file(DamagedFile::SetAside)
        .open()
        .expect("fresh start");
    assert_eq!(
        common::files_starting_with(dir.path(), "tiered.redb.damaged-").len(),
        1
    );
    let (health, stats) = (cache.health(), cache.stats());
    assert!(
        !health.is_healthy() || stats.disk_failures > 0,
        "the damaged file was set aside at open (10 entries lost), yet health() is {health:?} \
         and {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Many differently damaged copies, in one child.

const COPIES: u64 = 200;
const COPY_VALUES: u32 = 500;

/// Child: fills a cache, then opens COPIES damaged copies of its file (random offsets in the
/// header, middle or end; 1 B-64 KiB of random bytes or zeros, or a truncation), each with
/// either `DamagedFile` mode, and reads every key back.
#[test]
#[ignore = "child process of many_damaged_copies_never_panic_nor_read_wrong_values"]
fn child_many_damaged_copies() {
    use rand::{Rng, SeedableRng};
    let Some(dir) = common::child_dir() else {
        return;
    };
    let seed: u64 = std::env::var("TIERED_SEED").unwrap().parse().unwrap();
    println!("seed {seed}");
    let clean = dir.join("clean");
    fill_values(&clean, COPY_VALUES);
    let original = std::fs::read(db(&clean)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    let mut problems = Vec::new();
    for copy in 0..COPIES {
        let mut file = original.clone();
        let region = rng.random_range(0..3u8);
        let len = 1usize << rng.random_range(0..=16u32);
        let len = rng.random_range(1..=len).min(file.len());
        let offset = match region {
            0 => rng.random_range(0..8_192.min(file.len())),
            1 => rng.random_range(0..file.len()),
            _ => file.len() - rng.random_range(1..=(64 << 10).min(file.len())),
        };
        let kind = rng.random_range(0..3u8);
        let end = (offset + len).min(file.len());
        let what = match kind {
            0 => {
                rng.fill(&mut file[offset..end]);
                "garbage"
            }
            1 => {
                file[offset..end].fill(0);
                "zeros"
            }
            _ => {
                file.truncate(offset);
                "truncated"
            }
        };
        let mode = if copy % 2 == 0 {
            DamagedFile::Fail
        } else {
            DamagedFile::SetAside
        };
        let label = format!(
            "seed {seed} copy {copy}: {what} at {offset}..{end} of {} ({mode:?})",
            original.len()
        );
        println!("{label}");
        let copy_dir = dir.join(format!("copy-{copy}"));
        std::fs::create_dir_all(&copy_dir).unwrap();
        std::fs::write(db(&copy_dir), &file).unwrap();
        let cache = match open_with(&copy_dir, mode) {
            Ok(cache) => cache,
            Err(e @ Error::Corrupt { .. }) if mode == DamagedFile::Fail => {
                if !e.to_string().contains("tiered.redb") {
                    problems.push(format!("{label}: the error does not name the file: {e}"));
                }
                *outcomes.entry("refused at open".into()).or_default() += 1;
                continue;
            }
            Err(e) => {
                problems.push(format!("{label}: open failed with {e:?}"));
                continue;
            }
        };
        match read_all(&cache, COPY_VALUES) {
            Ok((hits, _, errors)) => {
                if !errors.is_empty() {
                    problems.push(format!(
                        "{label}: {} reads failed, e.g. {}",
                        errors.len(),
                        errors[0]
                    ));
                }
                let outcome = if hits == COPY_VALUES {
                    "all read back"
                } else if hits == 0 {
                    "none read back"
                } else {
                    "some read back"
                };
                *outcomes.entry(outcome.into()).or_default() += 1;
            }
            Err(wrong) => problems.push(format!("{label}: {wrong}")),
        }
        drop(cache);
        std::fs::remove_dir_all(&copy_dir).unwrap();
    }
    eprintln!("seed {seed}: {outcomes:?}");
    assert!(
        problems.is_empty(),
        "{} of {COPIES} copies misbehaved:\n{}",
        problems.len(),
        problems.join("\n")
    );
    println!("many damaged copies: done");
}

#[test]
fn many_damaged_copies_never_panic_nor_read_wrong_values() {
    let seed = std::env::var("TIERED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("seed {seed} (set TIERED_SEED to replay)");
    let dir = common::tempdir();
    let started = std::time::Instant::now();
    let finished = common::finish(
        common::spawn_child_piped(
            "child_many_damaged_copies",
            dir.path(),
            &[("TIERED_SEED", seed.to_string())],
        ),
        std::time::Duration::from_secs(120),
    );
    eprintln!("{:?}; {}", started.elapsed(), finished.stderr);
    let tail = |s: &str| {
        s.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        finished.status.is_some_and(|s| s.success())
            && finished.stdout.contains("many damaged copies: done"),
        "seed {seed}: status {:?}\n--- stdout (end) ---\n{}\n--- stderr ---\n{}",
        finished.status,
        tail(&finished.stdout),
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("panicked at"),
        "seed {seed}: something panicked:\n{}",
        finished.stderr
    );
}

/// A file cut inside its header is damage like any other: `Corrupt`, or a fresh start.
#[test]
fn a_file_truncated_inside_its_header_is_damage() {
    let dir = common::tempdir();
    fill(dir.path(), 10);
    let file = std::fs::read(db(dir.path())).unwrap();
    std::fs::write(db(dir.path()), &file[..100]).unwrap();
    match Cache::open(dir.path()) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("a file cut at 100 bytes opens with {other:?}, expected Corrupt"),
    }
    let cache = Cache::builder()
        .path(dir.path())
        .on_damaged_file(DamagedFile::SetAside)
        .open();
    assert!(
        cache.is_ok(),
        "SetAside on a file cut at 100 bytes: {:?}",
        cache.err()
    );
}
