//! Opening a 1,000,000-entry cache, after a clean close and after a SIGKILL, and the bytes an
//! entry takes on disk.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tiered::{Cache, Durability};

use crate::{digest, folder_bytes, row, RAW};

/// Set in a child process: the folder it writes into before it is killed.
pub const CHILD_ENV: &str = "TIERED_BENCH_KILLED_CHILD";

/// Child: inserts into the cache for a while without flushing, then dies by SIGKILL, so that
/// the next open finds a file that was not closed.
pub fn child_killed_mid_batch(dir: &Path) -> ! {
    let cache = Cache::builder()
        .path(dir)
        .memory_capacity(16 << 20)
        .durability(Durability::Batched(Duration::from_millis(20)))
        .open()
        .unwrap();
    let until = Instant::now() + Duration::from_millis(200);
    let mut i = 2_000_000u64;
    while Instant::now() < until {
        cache.insert(&i, i).unwrap();
        i += 1;
    }
    // SAFETY: sends a signal to this very process; nothing of ours runs after it.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL");
}

fn open_and_read(dir: &Path) -> Duration {
    let start = Instant::now();
    let cache = Cache::builder()
        .path(dir)
        .memory_capacity(16 << 20)
        .open()
        .unwrap();
    assert_eq!(cache.get::<_, u64>(&7u64).unwrap().as_deref(), Some(&7));
    let took = start.elapsed();
    drop(cache);
    took
}

/// Open and first read of a 1,000,000-entry cache: after a clean close, and after the last
/// process to have it open was killed mid-batch (the child is not timed).
pub fn open_1m(c: &mut Criterion) {
    if !crate::wanted("open_1m") {
        return;
    }
    let dir = crate::million();
    let mut g = c.benchmark_group("open_1m");
    g.sample_size(10);
    g.bench_function("clean_close", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| open_and_read(dir)).sum())
    });
    g.bench_function("after_sigkill", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let status = Command::new(std::env::current_exe().unwrap())
                        .env(CHILD_ENV, dir)
                        .status()
                        .unwrap();
                    assert!(!status.success(), "the child was to be killed");
                    open_and_read(dir)
                })
                .sum()
        })
    });
    g.finish();
}

/// Bytes of pages redb has allocated in the database at `path` (the file's length less its
/// free pages: unlike the length, which grows in steps, it follows what is stored).
fn allocated_bytes(path: &Path) -> u64 {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    let stats = txn.stats().unwrap();
    stats.allocated_pages() * stats.page_size() as u64
}

/// Prints the bytes per 100 B entry for tiered and for raw redb storing the same rows under
/// the same digests at 1,000 per transaction: pages allocated, and the folder (or file) on
/// disk, whose length grows in steps (not timed: sizes, for docs/performance.md).
pub fn bytes_per_entry(_c: &mut Criterion) {
    if !crate::wanted("bytes_per_entry") {
        return;
    }
    for n in [100_000u64, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("tiered")).unwrap();
        for i in 0..n {
            cache.insert(&format!("key-{i}"), row(i)).unwrap();
        }
        cache.flush().unwrap();
        drop(cache);
        let ours_folder = folder_bytes(&dir.path().join("tiered"));
        let ours = allocated_bytes(&dir.path().join("tiered").join("tiered.redb"));
        let raw_path = dir.path().join("raw.redb");
        let db = redb::Database::create(&raw_path).unwrap();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
            let mut txn = db.begin_write().unwrap();
            txn.set_quick_repair(true);
            {
                let mut t = txn.open_table(RAW).unwrap();
                for &i in chunk {
                    let bytes = postcard::to_allocvec(&row(i)).unwrap();
                    t.insert(digest(format!("key-{i}").as_bytes()), bytes.as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        drop(db);
        let raw_file = std::fs::metadata(&raw_path).unwrap().len();
        let raw = allocated_bytes(&raw_path);
        println!(
            "bytes_per_entry/{n}: allocated: tiered {} B, raw redb {} B, ratio {:.2}; \
             on disk: tiered {} B, raw redb {} B, ratio {:.2}",
            ours / n,
            raw / n,
            ours as f64 / raw as f64,
            ours_folder / n,
            raw_file / n,
            ours_folder as f64 / raw_file as f64
        );
    }
}
