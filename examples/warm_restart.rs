//! A dev-loop restart, measured: fills a cache with small entries once, then reopens it
//! without and with the warm restart and reports how long `open` took, how long the first
//! reads took while the loader ran, when the loader finished, and where later reads hit.
//!
//! ```text
//! cargo run --release --example warm_restart -- [ENTRIES] [FOLDER]
//! ```
//! ENTRIES defaults to 100000 (values of about 100 bytes); FOLDER to a folder under the
//! system's temporary folder, kept between runs so that only the first run fills it.

use std::time::{Duration, Instant};

use tiered::{Cache, Durability};

fn value(i: u64) -> String {
    format!("{i:0>100}")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(100_000, |a| a.parse().expect("ENTRIES"));
    let dir = args.next().map_or_else(
        || std::env::temp_dir().join(format!("tiered-warm-restart-{n}")),
        Into::into,
    );
    {
        let cache = Cache::builder()
            .path(&dir)
            .durability(Durability::Batched(Duration::from_secs(1)))
            .warm_restart(0)
            .open()
            .expect("open");
        if cache.stats().entries < n {
            let t = Instant::now();
            for i in 0..n {
                cache.insert(&i, value(i)).expect("insert");
            }
            cache.flush().expect("flush");
            println!("filled {n} entries in {:?}", t.elapsed());
        }
    }
    let probe: Vec<u64> = (0..5).map(|k| (k * 7919 + 13) % n).collect();
    for (label, warm) in [("cold", Some(0)), ("warm (default budget)", None)] {
        let mut builder = Cache::builder().path(&dir);
        if let Some(budget) = warm {
            builder = builder.warm_restart(budget);
        }
        let start = Instant::now();
        let cache = builder.open().expect("open");
        let opened = start.elapsed();
        // The first reads, while the loader (if any) runs.
        let mut firsts = Vec::new();
        for &k in &probe {
            let t = Instant::now();
            let v = cache.get::<_, String>(&k).expect("get");
            firsts.push(t.elapsed());
            assert_eq!(v.as_deref(), Some(&value(k)));
        }
        let loading = cache.stats().warming;
        while cache.stats().warming {
            std::thread::sleep(Duration::from_millis(1));
        }
        let done = start.elapsed();
        let s = cache.stats();
        // Reads once it is done: memory hits for what it loaded.
        let sample = 1000.min(n);
        let t = Instant::now();
        for i in 0..sample {
            let k = (i * 104_729) % n;
            cache.get::<_, String>(&k).expect("get").expect("hit");
        }
        let per_get = t.elapsed() / sample as u32;
        let memory = cache.stats().memory_hits - s.memory_hits;
        println!(
            "{label}: open {opened:?}; first 5 gets {firsts:?} (loader running: {loading}); \
             loader done {done:?} after open began, {} entries loaded ({} bytes in memory); \
             then {memory}/{sample} gets were memory hits, {per_get:?} per get",
            s.warm_loaded, s.memory_bytes,
        );
    }
}
