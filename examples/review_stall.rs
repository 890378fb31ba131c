//! Reviewer's probe: how long single Batched inserts wait with a long batch window.
//! `cargo run --example review_stall -- SECS N` (SECS = 0 means Duration::MAX).
use std::time::{Duration, Instant};
use tiered::{Cache, Durability};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).map_or(60, |s| s.parse().unwrap());
    let n: u32 = args.get(2).map_or(3_000, |s| s.parse().unwrap());
    let window = if secs == 0 {
        Duration::MAX
    } else {
        Duration::from_secs(secs)
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Batched(window))
        .open()
        .unwrap();
    let t = Instant::now();
    let (mut worst, mut at) = (Duration::ZERO, 0);
    for i in 0..n {
        let s = Instant::now();
        cache.insert(&i, u64::from(i)).unwrap();
        if s.elapsed() > worst {
            (worst, at) = (s.elapsed(), i);
        }
    }
    println!(
        "window {window:?}: {n} inserts in {:?}; worst single insert {worst:?} (insert #{at})",
        t.elapsed()
    );
}
